"""VFIO type1: iommufd's compat layer (§8) and real vfio_iommu_type1 (§9), row by row of the
differences table at the end of reference iommufd.md §9."""

import ast
import random
from pathlib import Path

import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet
from iommu_lab.hardware.device import Device, ReservedRegion
from iommu_lab.iommufd import type1
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.iommufd.type1 import Semantics

PAGE = 0x1000
V2 = ["iommufd", "vfio-compat", "type1"]


def outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except IommuError as e:
        return e.errno


def two_areas(semantics):
    ioas = IOAS(semantics=semantics)
    ioas.map(0x2000, 0x10000, user_va=0x4000_0000)
    ioas.map(0x4000, 0x20000, user_va=0x5000_0000)
    return ioas


# -- the differences table ------------------------------------------------------------------------
@pytest.mark.parametrize("semantics, want", [("iommufd", "ENOENT"), ("vfio-compat", 0), ("type1", 0)])
def test_difference_empty_range_unmap(semantics, want):
    assert outcome(IOAS(semantics=semantics).unmap, 0x10000, 0x1000) == want


def test_difference_range_cutting_an_area_v2_iommufd_and_compat_remove_earlier_areas():
    for semantics in ["iommufd", "vfio-compat"]:
        ioas = two_areas(semantics)
        with pytest.raises(IommuError) as info:
            ioas.unmap(0x10000, 0x12000)  # second area [0x20000, 0x23fff] sticks out
        assert info.value.errno == "ENOENT" and info.value.unmapped == 0x2000  # compat copies size back
        assert [a.iova for a in ioas.areas] == [0x20000]


def test_difference_range_cutting_an_area_v2_real_type1_is_einval_and_atomic():
    ioas = two_areas("type1")
    before = ioas.areas
    assert outcome(ioas.unmap, 0x10000, 0x12000) == "EINVAL"
    assert outcome(ioas.unmap, 0x11000, 0x1000) == "EINVAL"
    assert ioas.areas == before


def test_difference_v1_compat_cuts_and_unmaps_exactly():
    ioas = two_areas("vfio-compat-v1")
    assert ioas.iova_alignment == PAGE  # VFIO_TYPE1_IOMMU disables huge pages
    assert ioas.unmap(0x21000, 0x2000) == 0x2000
    assert [(a.iova, a.length, a.user_va) for a in ioas.areas] == [(0x10000, 0x2000, 0x4000_0000), (0x20000, 0x1000, 0x5000_0000),
                                                                   (0x23000, 0x1000, 0x5000_3000)]


def test_difference_v1_real_type1_middle_start_unmaps_nothing_and_first_iova_takes_whole_mapping():
    ioas = two_areas("type1-v1")
    assert ioas.unmap(0x21000, 0x1000) == 0
    assert len(ioas.areas) == 2
    assert ioas.unmap(0x20000, 0x1000) == 0x4000  # covers the first IOVA: the whole mapping goes
    assert [a.iova for a in ioas.areas] == [0x10000]


@pytest.mark.parametrize("semantics, want", [("iommufd", 0x2000), ("vfio-compat", 0x2000), ("type1", "EINVAL")])
def test_difference_misaligned_unmap(semantics, want):
    ioas = IOAS(semantics=semantics, pgsizes=0x1000)
    ioas.map(0x2000, 0x10000)
    assert outcome(ioas.unmap, 0xF800, 0x3000) == want


# type1 answered a wrap with EINVAL until the overflow series of v6.18 (vfio_dma_do_map and
# vfio_dma_do_unmap now say EOVERFLOW); the long-term 6.6 and 6.12 kernels still say EINVAL.
@pytest.mark.parametrize("semantics, kernel, want", [
    ("iommufd", "mainline", "EOVERFLOW"), ("vfio-compat", "mainline", "EOVERFLOW"),
    ("type1", "mainline", "EOVERFLOW"), ("type1", "6.12", "EINVAL"), ("type1", "6.6", "EINVAL")])
def test_difference_wrapping_unmap(semantics, kernel, want):
    assert outcome(IOAS(semantics=semantics, kernel=kernel).unmap, 0xFFFF_FFFF_FFFF_F000, 0x2000) == want


@pytest.mark.parametrize("semantics, kernel, want", [
    ("iommufd", "mainline", "EOVERFLOW"), ("vfio-compat", "mainline", "EOVERFLOW"),
    ("type1", "mainline", "EOVERFLOW"), ("type1", "6.12", "EINVAL"), ("type1", "6.6", "EINVAL")])
def test_difference_wrapping_map(semantics, kernel, want):
    assert outcome(IOAS(semantics=semantics, kernel=kernel).map, 0x2000, 0xFFFF_FFFF_FFFF_F000,
                   user_va=0x10000) == want


def test_difference_mapping_count_limit():
    ioas = IOAS(semantics="type1", dma_entry_limit=3)
    for i in range(3):
        ioas.map(PAGE, 0x10000 * (i + 1))
    e = pytest.raises(IommuError, ioas.map, PAGE, 0x80000).value
    assert e.errno == "ENOSPC" and "dma_entry_limit=3" in str(e)
    ioas.unmap(0x10000, PAGE)  # gives one back
    ioas.map(PAGE, 0x80000)
    assert IOAS(semantics="type1").info().max_mappings == 65535
    assert IOAS(semantics="vfio-compat").info().max_mappings == 0xFFFF_FFFF
    assert IOAS().info().max_mappings is None


@pytest.mark.parametrize("semantics, want", [("iommufd", "EADDRINUSE"), ("vfio-compat", "EADDRINUSE"), ("type1", "EINVAL")])
def test_difference_attach_conflicts(semantics, want):
    ioas = IOAS(semantics=semantics)
    ioas.map(PAGE, 0xFEE00000)
    assert outcome(ioas.attach, Device("nic", reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")])) == want
    assert ioas.devices == () and ioas.reserved == ()
    assert outcome(ioas.attach, Device("small", aperture=IovaRange(0, 0xFFFF))) == want


@pytest.mark.parametrize("semantics, ok", [("iommufd", False), ("vfio-compat", True), ("type1", False)])
def test_difference_map_with_no_read_or_write_flag(semantics, ok):
    got = outcome(IOAS(semantics=semantics).map, PAGE, 0x10000, prot="")
    assert (got != "EINVAL") == ok


# -- other type1 rules -------------------------------------------------------------------------------
def test_real_type1_checks_overlap_eexist_before_range_einval_unlike_iommufd():
    dev = Device("nic", aperture=IovaRange(0, 0xFFFF_FFFF), reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")])
    for semantics, want in [("type1", "EEXIST"), ("iommufd", "EINVAL")]:
        ioas = IOAS(semantics=semantics)
        ioas.attach(dev)
        ioas.map(0x2000, 0xFEDFE000, user_va=0x10000)
        assert outcome(ioas.map, 0x4000, 0xFEDFE000, user_va=0x10000) == want


def test_real_type1_map_needs_page_aligned_iova_size_and_vaddr():
    ioas = IOAS(semantics="type1")
    assert outcome(ioas.map, PAGE, 0x10800, user_va=0x10000) == "EINVAL"
    assert outcome(ioas.map, 0x800, 0x10000, user_va=0x10000) == "EINVAL"
    assert outcome(ioas.map, PAGE, 0x10000, user_va=0x10800) == "EINVAL"
    assert outcome(ioas.map, 0, 0x10000, user_va=0x10000) == "EINVAL"


def test_real_type1_iova_list_starts_empty_then_follows_aperture_minus_reserved():
    ioas = IOAS(semantics="type1")
    assert ioas.iova_ranges() == RangeSet.full()
    ioas.attach(Device("nic", aperture=IovaRange(0, 0xFFFF_FFFF), reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")]))
    assert list(ioas.iova_ranges()) == [IovaRange(0, 0xFEDFFFFF), IovaRange(0xFEF00000, 0xFFFF_FFFF)]
    assert outcome(ioas.map, 0x4000, 0xFEDFE000, user_va=0x10000) == "EINVAL"
    assert outcome(ioas.attach, Device("other", aperture=IovaRange(0x1_0000_0000, U64_MAX))) == "EINVAL"  # empties the list


def test_real_type1_unmap_all_and_unsupported_operations():
    ioas = two_areas("type1")
    assert ioas.unmap_all() == 0x6000
    for call in (lambda: ioas.copy(ioas, 0, PAGE), lambda: ioas.allow_iovas([]), lambda: ioas.set_huge_pages(False),
                 lambda: ioas.reserve(IovaRange(0, 1)), lambda: ioas.add_access()):
        assert outcome(call) == "EOPNOTSUPP"
    with pytest.raises(ValueError, match="always fixed"):
        ioas.map(PAGE)


def test_compat_map_is_always_fixed():
    with pytest.raises(ValueError, match="FIXED"):
        IOAS(semantics="vfio-compat").map(PAGE)


def test_compat_unmap_with_huge_pages_off_cuts_too():
    ioas = IOAS(semantics="vfio-compat")
    ioas.set_huge_pages(False)
    ioas.map(0x4000, 0x10000)
    assert ioas.unmap(0x11000, PAGE) == PAGE and len(ioas.areas) == 2


def test_compat_v1_cut_at_misaligned_point_fails_einval_but_an_earlier_cut_stays():
    ioas = IOAS(semantics="vfio-compat-v1")
    ioas.map(0x4000, 0x10000)
    # cut at iova+size-1 = 0x11fff succeeds, cut at iova-1 = 0x107ff is misaligned → EINVAL
    assert outcome(ioas.unmap, 0x10800, 0x1800) == "EINVAL"
    assert [(a.iova, a.length) for a in ioas.areas] == [(0x10000, 0x2000), (0x12000, 0x2000)]


def test_compat_v1_cut_through_a_pinned_area_fails_einval():
    ioas = IOAS(semantics="vfio-compat-v1")
    ioas.map(0x4000, 0x10000)
    ioas.add_access(PAGE).pin(0x10000, PAGE)
    assert outcome(ioas.unmap, 0x11000, PAGE) == "EINVAL"
    assert len(ioas.areas) == 1


def test_compat_v1_huge_map_unmapped_in_16_random_chunks_all_succeed():
    ioas = IOAS(semantics="vfio-compat-v1")
    ioas.map(16 * 0x10000, 0x100000)
    chunks = list(range(16))
    random.Random(7).shuffle(chunks)
    for c in chunks:
        assert ioas.unmap(0x100000 + c * 0x10000, 0x10000) == 0x10000
    assert ioas.areas == ()


def test_compat_v2_huge_map_partial_unmap_fails_enoent():
    ioas = IOAS(semantics="vfio-compat")
    ioas.map(16 * 0x10000, 0x100000)
    assert outcome(ioas.unmap, 0x110000, 0x10000) == "ENOENT"


def test_semantics_parse_and_flags():
    assert Semantics.parse("type1-v1").is_v1 and Semantics.parse("type1-v1").is_real_type1
    assert Semantics.parse(Semantics.VFIO_COMPAT).is_compat
    with pytest.raises(ValueError, match="unknown semantics"):
        IOAS(semantics="type2")
    with pytest.raises(TypeError):
        IOAS(semantics=1)


def test_the_type1_rule_book_uses_only_public_names_of_the_core_it_shares():
    tree = ast.parse(Path(type1.__file__).read_text())
    private = sorted({n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                      and n.attr.startswith("_") and not n.attr.startswith("__")})
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert private == [] and "iommu_lab.iommufd.ioas" not in imported
