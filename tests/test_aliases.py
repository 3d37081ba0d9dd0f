"""The names the README lists as kept for one release still answer, and mean the new thing."""

import importlib

import pytest

import iommu_lab as il
from iommu_lab.core.perm import Perm


@pytest.mark.parametrize("old, new", sorted(il.OLD_MODULE_PATHS.items()))
def test_an_old_module_path_imports_the_module_that_holds_its_names_now(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


@pytest.fixture(scope="module")
def nested():
    n = il.Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * il.MiB)
    n.stage1.map(0x4000_0000, 0x10_0000, 0x1000)
    return n


def test_walk_result_keeps_its_old_attribute_names():
    from iommu_lab.pagetable import Reference, WalkStep

    pt = il.PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x2000, 0x1000)
    w = pt.walk(0x1000)
    assert WalkStep is Reference
    assert w.pa == w.output == 0x2000 and w.steps == w.refs and w.references == len(w.refs)
    batch = pt.translate([0x1000])
    assert list(batch.pa) == list(batch.output) == [0x2000]


def test_perm_and_prot_are_one_type():
    from iommu_lab.hardware.formats import parse_perm
    from iommu_lab.pagetable import Perm as PagetablePerm

    assert il.Prot is Perm and PagetablePerm is Perm and il.Perm is Perm
    assert parse_perm("rw") == Perm.parse("rw") == Perm.RW


def test_the_guest_aid_is_explain_and_lookup_still_answers(nested):
    assert il.guest_lookup is il.explain
    assert nested.lookup(0x4000_0000).gpa == nested.explain(0x4000_0000).gpa == 0x10_0000


def test_pasid_resolution_is_resolve_and_lookup_still_answers():
    table = il.VtdPasidTable(il.PhysicalMemory(name="host"))
    assert table.lookup == table.resolve


def test_census_moved_to_the_page_table_layer():
    assert il.review.table_tree is il.pagetable.table_tree
    assert il.review.TableTree is il.pagetable.TableTree


def test_iotlb_statistics_are_the_caches_statistics():
    from iommu_lab.dma import CacheStats
    from iommu_lab.dma.nested_iotlb import IotlbStats

    assert IotlbStats is CacheStats


def test_format_rules_keep_the_codec_name():
    fmt = il.formats.get("vtd-ss-4level")
    assert fmt.codec is fmt.rules
