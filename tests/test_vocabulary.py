"""One vocabulary: each concept has one type, shared by every layer that speaks of it."""

import numpy as np

import iommu_lab as il
from iommu_lab.core.faults import FaultKind, FaultReason
from iommu_lab.core.perm import Perm
from iommu_lab.hardware.platform import NestingSupport


def test_one_nesting_capability_type_from_platform_to_ioas_to_pair():
    from iommu_lab.nesting import NestingCapability

    assert NestingCapability is NestingSupport
    p = il.platforms.get("intel-vtd-48")
    caps = il.IOAS.from_platform(p).info().capabilities
    assert p.nesting is caps.nesting is NestingSupport.HARDWARE and caps.nesting == "hardware"
    nested = il.Nested.for_platform(p)
    assert nested.capability is NestingSupport.HARDWARE
    assert il.IOAS.from_platform(il.platforms.get("power9-pseries")).info().capabilities.nesting is not NestingSupport.HARDWARE


def test_one_permission_type_in_the_ioas_and_the_page_table():
    ioas = il.IOAS.from_platform(il.platforms.get("intel-vtd-48"))
    area = ioas.map(0x1000, prot="r")
    pt = il.PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x2000, 0x1000, prot="r")
    assert type(area.prot) is Perm and area.prot == Perm.READ
    assert isinstance(pt.walk(0x1000).refs[-1].entry.perm, Perm)


def test_one_fault_vocabulary_from_a_single_walk_to_a_nested_fault():
    pt = il.PageTable("vtd-ss-4level")
    w = pt.walk(0x1000)
    assert w.fault.reason is FaultReason.NOT_PRESENT and w.fault.reason.kind is FaultKind.TRANSLATION
    nested = il.Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * il.MiB)
    nf = nested.walk(0x4000_0000).fault
    assert nf.reason is FaultReason.NOT_PRESENT and nf.kind is FaultKind.TRANSLATION


def test_one_flush_policy_type_in_the_generators_and_the_replay():
    import importlib

    from iommu_lab.dma import FlushPolicy

    replay_module = importlib.import_module("iommu_lab.dma.replay")
    generators = importlib.import_module("iommu_lab.dma.trace.generators")
    assert replay_module.FlushPolicy is FlushPolicy is generators.FlushPolicy


def test_one_iotlb_behind_the_nested_iotlb():
    from iommu_lab.dma import Iotlb, NestedIotlb

    nested = il.Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * il.MiB)
    nested.stage1.map(0x4000_0000, 0x10_0000, 0x1000)
    tlb = NestedIotlb(nested)
    assert isinstance(tlb.iotlb, Iotlb)


def test_every_translation_target_answers_walk_and_translate_alike():
    pt = il.PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x2000, 0x1000)
    nested = il.Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * il.MiB)
    nested.stage1.map(0x1000, 0x10_0000, 0x1000)
    shadow = nested.shadow()
    for target in (pt, nested, shadow):
        w = target.walk(0x1000)
        assert w.ok and w.output is not None and w.fault is None and len(w.refs) > 0 and w.page_size == 0x1000
        assert len(w.to_dataframe()) == len(w.refs)
        batch = target.translate(np.array([0x1000, 0x3000], dtype=np.uint64))
        assert list(batch.ok) == [True, False] and int(batch.output[0]) == w.output
