"""Hardware nesting: the 2-D walk, its reference counts, fault attribution and platform rules."""

import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware import formats
from iommu_lab.nesting.nested import (
    FaultOwner,
    FaultSite,
    GuestMemory,
    Nested,
    NestingCapability,
    Stage,
    nested_walk_refs,
)
from iommu_lab.pagetable.memory import PhysicalMemory
from iommu_lab.pagetable.table import PageTable

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def small_page_pair(f1, f2, *, guest_ram=2 * MiB):
    """Guest RAM backed granule by granule, so every stage-2 walk ends at the smallest page."""
    return Nested.build(f1, f2, guest_ram=guest_ram, backing="lazy")


def map_data(nested, iova, gpa, *, prot="rw"):
    """Map one smallest stage-1 page to ``gpa`` and back ``gpa`` with a smallest stage-2 page."""
    g1 = nested.stage1.min_pgsize
    nested.map(iova, gpa, g1, prot=prot)
    nested.guest_memory.back(gpa, g1)


# -- the formula ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, m, refs",
    [(4, 4, 24), (5, 5, 35), (4, 5, 29), (5, 4, 29), (4, 3, 19), (3, 3, 15), (0, 4, 4), (4, 0, 4)],
)
def test_nested_walk_refs_is_n_plus_1_times_m_plus_1_minus_1(n, m, refs):
    assert nested_walk_refs(n, m) == refs


def test_nested_walk_refs_with_large_stage2_leaves():
    # a stage 2 of 1 GiB blocks under a 4-level stage 1: five 2-reference walks
    assert nested_walk_refs(4, [2, 2, 2, 2, 2]) == 14


# -- the worked translation ------------------------------------------------------------------


def test_worked_nested_translation_vtd_first_stage_over_second_stage():
    """IOVA 0x4000_0123 through a 4-level x86-64 stage 1 and a VT-d SS stage 2, by hand.

    Host RAM starts at 0x1000_0000; the stage-2 root takes the first frame, and the 16 MiB of
    guest RAM is the next 16 MiB-aligned block, HPA 0x1100_0000, mapped GPA 0 -> HPA
    0x1100_0000 with 2 MiB SL-PDE leaves. The guest's tables take GPA 0x0 (PML4), 0x1000 (PDPT),
    0x2000 (PD), 0x3000 (PT). IOVA 0x4000_0123 has indices PML4 0, PDPT 1, PD 0, PT 0, offset
    0x123; it maps to GPA 0x10_0000, so the GPA is 0x10_0123 and the HPA 0x1110_0123.
    """
    n = Nested.for_platform("intel-vtd-48", guest_ram=16 * MiB)
    assert n.guest_memory.ram_hpa == 0x1100_0000
    n.map(0x4000_0000, 0x10_0000, 0x1000)
    w = n.walk(0x4000_0123)
    assert w.ok and w.gpa == 0x10_0123 and w.output == 0x1110_0123

    s1 = [r for r in w.refs if r.stage is Stage.STAGE1]
    assert [r.address for r in s1] == [0x1100_0000, 0x1100_1008, 0x1100_2000, 0x1100_3000]
    assert [r.raw for r in s1] == [0x1027, 0x2027, 0x3027, 0x8000_0000_0010_0067]
    assert [r.level for r in s1] == [3, 2, 1, 0]
    # each stage-2 walk: SL-PML4E, SL-PDPE, then a 2 MiB SL-PDE leaf (3 references)
    s2 = [r for r in w.refs if r.stage is Stage.STAGE2]
    assert len(s2) == 5 * 3 and w.n_pagetable_refs == 4 + 15 == 19
    assert s2[0].address == n.stage2.root  # every stage-2 walk starts at the parent's root
    leaf = s2[2]
    assert leaf.raw & ~0xFFF & ((1 << 52) - 1) == 0x1100_0000 and leaf.raw & 0x80  # SP=1, HPA base
    # the order is the hardware's: stage-2 walk of each table's GPA, then that stage-1 read
    assert [r.stage for r in w.refs[:4]] == [Stage.STAGE2] * 3 + [Stage.STAGE1]
    assert w.refs[-1].gpa == 0x10_0123 and w.refs[-1].row == 4


def test_stage1_entries_are_read_from_host_memory_at_the_translated_address():
    n = small_page_pair("x86-64-4level", "vtd-ss-4level")
    map_data(n, 0x1000, 0x8000)
    w = n.walk(0x1000)
    for r in w.refs:
        if r.stage is Stage.STAGE1:
            assert n.host_memory.read_u64(r.address) == r.raw
    # the same table, read by the guest at GPAs, holds the same bits
    root_gpa = n.stage1.root
    assert (
        n.guest_memory.read_u64(root_gpa) == next(r for r in w.refs if r.stage is Stage.STAGE1).raw
    )


def test_changing_stage2_moves_what_the_guest_and_the_walk_see():
    n = small_page_pair("x86-64-4level", "vtd-ss-4level")
    map_data(n, 0x1000, 0x8000)
    before = n.walk(0x1000).output
    n.stage2.unmap(0x8000, 0x1000)
    hpa = n.host_memory.alloc(0x1000)
    n.stage2.map(0x8000, hpa, 0x1000)
    assert n.walk(0x1000).output == hpa != before


# -- reference counts for every level combination --------------------------------------------

VTD_AMD_PAIRS = [(f"x86-64-{a}level", f"vtd-ss-{b}level") for a in (4, 5) for b in (3, 4, 5)] + [
    (f"x86-64-{a}level", f"amd-v1-{b}level") for a in (4, 5) for b in range(1, 7)
]
ARM_S1 = [n for n in formats.names() if n.startswith("arm-lpae-s1-")]
ARM_S2 = [n for n in formats.names() if n.startswith("arm-lpae-s2-")]


def _small_page_count(f1, f2):
    fmt1, fmt2 = formats.get(f1), formats.get(f2)
    ram = min(4 * MiB, 1 << (fmt2.va_bits - 1))  # amd-v1-1level translates only 2 MiB of GPA
    n = small_page_pair(f1, f2, guest_ram=ram)
    iova = fmt1.input_ranges[0].last - (
        fmt1.input_ranges[0].last % n.stage1.min_pgsize
    )  # every index non-zero
    gpa = ram // 2 + 3 * max(n.stage1.min_pgsize, n.stage2.min_pgsize)
    map_data(n, iova, gpa)
    w = n.walk(iova + 0x18)
    assert w.ok, w
    assert w.output == n.stage2.walk(gpa).pa + 0x18
    return w, fmt1.levels, fmt2.levels


@pytest.mark.parametrize("f1, f2", VTD_AMD_PAIRS)
def test_small_page_nested_walk_costs_the_formula_vtd_and_amd(f1, f2):
    w, n, m = _small_page_count(f1, f2)
    assert w.n_pagetable_refs == (n + 1) * (m + 1) - 1
    assert w.count(Stage.STAGE1) == n and w.count(Stage.STAGE2) == (n + 1) * m


@pytest.mark.parametrize("f1", ARM_S1)
@pytest.mark.parametrize("f2", ARM_S2)
def test_small_page_nested_walk_costs_the_formula_smmu_every_lpae_pair(f1, f2):
    fmt1, fmt2 = formats.get(f1), formats.get(f2)
    if fmt1.oas > fmt2.va_bits and fmt2.va_bits < 21:  # pragma: no cover - no such registered pair
        pytest.skip("stage 2 too narrow")
    w, n, m = _small_page_count(f1, f2)
    assert w.n_pagetable_refs == (n + 1) * (m + 1) - 1


def test_concatenated_stage2_top_saves_a_level():
    # 4K granule, IPA 40 bits: two concatenated L1 tables (1024 entries), 3 levels instead of 4
    s2 = formats.get("arm-lpae-s2-4k-40bit")
    assert s2.levels == 3 and s2.top_entries == 1024
    w, n, m = _small_page_count("arm-lpae-s1-4k-48bit", "arm-lpae-s2-4k-40bit")
    assert (n, m) == (4, 3) and w.n_pagetable_refs == 19


def test_large_leaves_shorten_each_side():
    n = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=16 * MiB, backing="eager")
    n.map(0x4000_0000, 0x20_0000, 2 * MiB)  # a 2 MiB stage-1 leaf over 2 MiB stage-2 leaves
    w = n.walk(0x4000_1234)
    assert w.ok and w.output == n.guest_memory.ram_hpa + 0x20_1234
    assert (
        w.count(Stage.STAGE1) == 3 and w.n_pagetable_refs == nested_walk_refs(3, [3, 3, 3, 3]) == 15
    )
    assert w.page_size == 2 * MiB


def test_grid_places_each_reference_at_stage1_step_times_stage2_step():
    n = small_page_pair("x86-64-4level", "vtd-ss-4level")
    map_data(n, 0x7F12_3456_7000, 0x9000)
    w = n.walk(0x7F12_3456_789A)
    g = w.grid()
    assert g.shape == (5, 5)
    assert g[4, 4] == 0  # the data access itself is not a page-table reference
    assert sorted(g.ravel().tolist()) == [0] + list(range(1, 25))
    assert g[0].tolist() == [1, 2, 3, 4, 5] and g[:, 4].tolist() == [5, 10, 15, 20, 0]
    df = w.to_dataframe()
    assert len(df) == 24 and str(df["address"].dtype) == "UInt64"
    assert "24 page-table reference" in str(w) and "<table>" in w._repr_html_()


# -- fault attribution -----------------------------------------------------------------------


@pytest.fixture
def vtd():
    n = small_page_pair("x86-64-4level", "vtd-ss-4level")
    map_data(n, 0x4000_0000, 0x8000)
    return n


def test_stage1_not_present_is_the_guests_fault(vtd):
    w = vtd.walk(0x5000_0000)
    f = w.fault
    assert f.owner is FaultOwner.GUEST and f.stage is Stage.STAGE1 and f.site is FaultSite.INPUT
    ev = f.smmu_event()
    assert (ev.name, ev.id, ev.s2, ev.klass) == (
        "F_TRANSLATION",
        0x10,
        False,
        2,
    ) and ev.forwarded_to_guest
    assert f.vtd_fault().code == 0x71


def test_stage1_reserved_bits_are_the_guests_fault(vtd):
    pml4e = next(r for r in vtd.walk(0x4000_0000).refs if r.stage is Stage.STAGE1)
    vtd.host_memory.write_u64(pml4e.address, pml4e.raw | 0x80)  # PS is reserved in a PML4E
    f = vtd.walk(0x4000_0000).fault
    assert f.owner is FaultOwner.GUEST and f.level == 3
    assert f.vtd_fault().code == 0x72 and "reserved" in f.vtd_fault().reason


def test_stage1_write_to_read_only_page_is_a_guest_permission_fault():
    n = small_page_pair("x86-64-4level", "vtd-ss-4level")
    map_data(n, 0x4000_0000, 0x8000, prot="r")
    assert n.walk(0x4000_0000, access="r").ok
    f = n.walk(0x4000_0000, access="w").fault
    assert f.owner is FaultOwner.GUEST and f.smmu_event().name == "F_PERMISSION"
    assert f.vtd_fault().code == 0x85


def test_stage2_fault_on_stage1_root_fetch_is_the_hosts(vtd):
    root = vtd.stage1.root
    vtd.stage2.unmap(root, vtd.stage2.min_pgsize)
    w = vtd.walk(0x4000_0000)
    f = w.fault
    assert f.owner is FaultOwner.HOST and f.stage is Stage.STAGE2 and f.site is FaultSite.S1_TABLE
    assert f.s1_level == 3 and f.address == root
    ev = f.smmu_event()
    assert ev.s2 and ev.klass == 1 and ev.ipa == root and not ev.forwarded_to_guest  # CLASS=TT
    assert f.vtd_fault().code == 0x75  # FL-PML4 entry in nested translation
    assert w.count(Stage.STAGE1) == 0


def test_stage2_fault_on_lower_stage1_table_fetch_is_the_hosts(vtd):
    pd = next(r for r in vtd.walk(0x4000_0000).refs if r.stage is Stage.STAGE1 and r.level == 1)
    vtd.stage2.unmap(pd.table, vtd.stage2.min_pgsize)
    f = vtd.walk(0x4000_0000).fault
    assert f.owner is FaultOwner.HOST and f.site is FaultSite.S1_TABLE and f.s1_level == 1
    assert f.address == pd.table + 8 * pd.index
    assert f.vtd_fault().code == 0x76 and f.smmu_event().klass == 1


def test_stage2_fault_on_the_output_address_is_the_hosts(vtd):
    vtd.stage2.unmap(0x8000, 0x1000)
    w = vtd.walk(0x4000_0010)
    f = w.fault
    assert f.owner is FaultOwner.HOST and f.site is FaultSite.OUTPUT and f.address == 0x8010
    assert w.gpa == 0x8010
    ev = f.smmu_event()
    assert ev.s2 and ev.klass == 2 and ev.ipa == 0x8010  # CLASS=IN, IPA = the GPA
    assert f.vtd_fault().code == 0x79


def test_stage2_write_protection_is_a_host_permission_fault():
    n = small_page_pair("x86-64-4level", "vtd-ss-4level")
    n.map(0x4000_0000, 0x8000, 0x1000)
    n.stage2.map(0x8000, n.host_memory.alloc(0x1000), 0x1000, prot="r")
    assert n.walk(0x4000_0000, access="r").ok
    f = n.walk(0x4000_0000, access="w").fault
    assert (
        f.owner is FaultOwner.HOST and f.smmu_event().name == "F_PERMISSION" and f.smmu_event().s2
    )


def test_stage1_pointer_beyond_the_stage2_input_is_an_address_size_fault(vtd):
    pml4e = next(r for r in vtd.walk(0x4000_0000).refs if r.stage is Stage.STAGE1)
    vtd.host_memory.write_u64(pml4e.address, (1 << 50) | 0x27)  # GPA beyond 48 bits
    f = vtd.walk(0x4000_0000).fault
    assert f.owner is FaultOwner.HOST and f.site is FaultSite.S1_TABLE
    assert f.smmu_event().name == "F_ADDR_SIZE" and f.vtd_fault().code == 0x74


def test_smmu_fault_records_name_the_stage():
    n = small_page_pair("arm-lpae-s1-4k-48bit", "arm-lpae-s2-4k-40bit")
    map_data(n, 0x1000, 0x4_0000)
    assert not n.walk(0x2000).fault.smmu_event().s2
    n.stage2.unmap(n.stage1.root, 0x1000)
    ev = n.walk(0x1000).fault.smmu_event()
    assert ev.s2 and ev.klass == 1 and "S2=1 CLASS=TT" in str(ev)


def test_translate_one_raises_efault_with_the_attribution(vtd):
    assert vtd.translate_one(0x4000_0004) == vtd.walk(0x4000_0004).output
    with pytest.raises(IommuError) as e:
        vtd.translate_one(0x5000_0000)
    assert e.value.errno == "EFAULT" and "guest's fault" in str(e.value)


def test_every_reference_says_what_it_was_for(vtd):
    from iommu_lab.nesting.walk import RefRole

    w = vtd.walk(0x4000_0004)
    out = [r for r in w.refs if r.role is RefRole.OUTPUT_GPA]
    assert out and all(r.stage is Stage.STAGE2 and r.row == w.n for r in out)
    assert [r.role for r in w.refs if r.stage is Stage.STAGE1] == [RefRole.S1_ENTRY] * w.n
    assert {r.role for r in w.refs if r.stage is Stage.STAGE2 and r.row < w.n} == {RefRole.S1_TABLE}
    assert list(w.to_dataframe()["role"]).count("OUTPUT_GPA") == len(out)


def test_nesting_pairs_are_declared_by_the_catalogue_platforms():
    from iommu_lab.hardware.platform import IommuFamily, nesting_pairs

    assert nesting_pairs() == {("x86-64", "amd-v1"): IommuFamily.AMD, ("arm-lpae", "arm-lpae"): IommuFamily.SMMUV3,
                               ("x86-64", "vtd-ss"): IommuFamily.VTD}


def test_translate_takes_arrays_and_agrees_with_one_walk_per_iova(vtd):
    import numpy as np

    iovas = np.array([0x4000_0004, 0x4000_1008, 0x5000_0000, 0x4000_0ff8], dtype=np.uint64)
    batch = vtd.translate(iovas)
    walks = [vtd.walk(int(i)) for i in iovas]
    assert list(batch.fault) == [not w.ok for w in walks]
    assert [int(p) for p, w in zip(batch.pa, walks) if w.ok] == [w.output for w in walks if w.ok]
    assert [int(s) for s, w in zip(batch.size, walks) if w.ok] == [w.page_size for w in walks if w.ok]


# -- platforms and nest-parent rules ---------------------------------------------------------


@pytest.mark.parametrize(
    "platform, family, n, m",
    [
        ("intel-vtd-48", "VT-d", 4, 4),
        ("intel-vtd-57", "VT-d", 5, 5),
        ("arm-smmuv3-48", "SMMUv3", 4, 4),
        ("amd-v1", "AMD", 4, 3),  # the v1 parent starts at mode 3 (increase_address_space grows it)
    ],
)
def test_catalogue_platforms_nest_in_hardware(platform, family, n, m):
    nested = Nested.for_platform(platform, guest_ram=4 * MiB, backing="lazy")
    assert nested.family == family and (nested.n, nested.m) == (n, m)
    assert nested.capability is NestingCapability.HARDWARE
    map_data(nested, 0x4000_0000, 0x20_0000)
    assert nested.walk(0x4000_0000).n_pagetable_refs == nested_walk_refs(n, m)
    assert family in repr(nested) and "<table>" in nested._repr_html_()


@pytest.mark.parametrize(
    "platform, why", [("power9-pseries", "no nesting"), ("virtio-iommu-q35", "software only")]
)
def test_platforms_without_hardware_nesting_say_so(platform, why):
    with pytest.raises(IommuError) as e:
        Nested.for_platform(platform)
    assert e.value.errno == "EOPNOTSUPP" and why in str(e.value)


@pytest.mark.parametrize("platform", ["riscv-sv39", "riscv-sv48", "riscv-sv57"])
def test_riscv_refusal_names_the_g_stage_linux_does_not_nest(platform):
    """The RISC-V IOMMU spec has a G-stage (iohgatp); drivers/iommu/riscv/iommu.c implements
    paging domains only (no domain_alloc_nested), so the hint is RISC-V's, never POWER's."""
    with pytest.raises(IommuError) as e:
        Nested.for_platform(platform)
    text = str(e.value)
    assert e.value.errno == "EOPNOTSUPP" and "G-stage" in text and "riscv/iommu.c" in text
    assert "H_PUT_TCE" not in text and "POWER" not in text


@pytest.mark.parametrize("platform", ["power9-pseries", "power9-powernv"])
def test_power_refusal_names_h_put_tce(platform):
    with pytest.raises(IommuError) as e:
        Nested.for_platform(platform)
    assert "H_PUT_TCE" in str(e.value) and "G-stage" not in str(e.value)


def test_vtd_nest_parent_must_be_second_stage():
    with pytest.raises(IommuError) as e:
        Nested.build("x86-64-4level", "x86-64-4level")
    assert e.value.errno == "EOPNOTSUPP" and "second-stage" in str(e.value)


def test_stage1_must_be_a_stage1_format():
    with pytest.raises(IommuError) as e:
        Nested.build("vtd-ss-4level", "vtd-ss-4level")
    assert e.value.errno == "EINVAL"


@pytest.mark.parametrize(
    "f1, f2",
    [
        ("x86-64-4level", "arm-lpae-s2-4k-48bit"),
        ("arm-lpae-s1-4k-48bit", "vtd-ss-4level"),
        ("riscv-sv48", "vtd-ss-4level"),
    ],
)
def test_families_do_not_mix(f1, f2):
    with pytest.raises(IommuError) as e:
        Nested.build(f1, f2)
    assert e.value.errno in ("EOPNOTSUPP", "EINVAL")


def test_stage1_must_live_in_guest_memory_backed_by_the_parent():
    host = PhysicalMemory(name="host")
    s2 = PageTable("vtd-ss-4level", memory=host)
    plain = PageTable("x86-64-4level", memory=PhysicalMemory(base=0, size=GiB, name="guest"))
    with pytest.raises(IommuError, match="GuestMemory"):
        Nested(plain, s2)
    other = PageTable("vtd-ss-4level", memory=host)
    s1 = PageTable("x86-64-4level", memory=GuestMemory(other, host, size=2 * MiB))
    with pytest.raises(IommuError, match="different stage-2"):
        Nested(s1, s2)


def test_guest_ram_beyond_the_stage2_input_is_refused():
    host = PhysicalMemory(name="host")
    s2 = PageTable("amd-v1-1level", memory=host)  # 21-bit GPA space
    gm = GuestMemory(s2, host, size=1 * MiB, backing="lazy")
    gm_big = GuestMemory.__new__(GuestMemory)
    gm_big.__dict__.update(gm.__dict__, size=4 * MiB)
    s1 = PageTable("x86-64-4level", memory=gm)
    Nested(s1, s2)  # fits
    with pytest.raises(IommuError, match="beyond"):
        Nested(PageTable("x86-64-4level", memory=gm_big), s2)


def test_guest_memory_reads_go_through_stage2():
    host = PhysicalMemory(name="host")
    s2 = PageTable("vtd-ss-4level", memory=host)
    gm = GuestMemory(s2, host, base=0x100_0000, size=2 * MiB)
    gm.write_u64(0x100_0008, 0xDEAD)
    assert host.read_u64(gm.ram_hpa + 8) == 0xDEAD and gm.read_u64(0x100_0008) == 0xDEAD
    with pytest.raises(IommuError) as e:
        gm.read_u64(0x8)
    assert e.value.errno == "EFAULT"
    assert "GPA" in repr(gm)


def test_non_canonical_iova_is_the_guests_fault():
    n = small_page_pair("x86-64-4level", "vtd-ss-4level")
    f = n.walk(0x8000_0000_0000).fault
    assert f.owner is FaultOwner.GUEST and f.vtd_fault().code == 0x80


def test_stage2_leaf_pointing_outside_host_ram_is_the_hosts_fault(vtd):
    # remap the guest's root-table GPA to an HPA beyond host RAM: stage 2 itself is wrong
    root = vtd.stage1.root
    vtd.stage2.unmap(root, 0x1000)
    vtd.stage2.map(root, 0x40_0000_0000, 0x1000)
    w = vtd.walk(0x4000_0000)
    f = w.fault
    assert (
        f.owner is FaultOwner.HOST
        and f.site is FaultSite.S1_TABLE
        and f.entry_address == 0x40_0000_0000
    )
    assert f.vtd_fault().code == 0x84 and w.count(Stage.STAGE2) == 4


# -- the combined IOTLB and the invalidation asymmetry ----------------------------------------


def _cached_pair():
    from iommu_lab.dma.nested_iotlb import NestedIotlb

    n = small_page_pair("x86-64-4level", "vtd-ss-4level")
    map_data(n, 0x4000_0000, 0x8000)
    map_data(n, 0x4000_1000, 0x9000)
    return n, NestedIotlb(n)


def test_iotlb_hit_costs_no_references_and_a_miss_costs_the_2d_walk():
    n, tlb = _cached_pair()
    hpa = tlb.translate(0x4000_0010)
    assert hpa == n.translate_one(0x4000_0010) and tlb.stats.walk_refs == 24
    assert (
        tlb.translate(0x4000_0FF0) == hpa + 0xFE0
        and tlb.stats.hits == 1
        and tlb.stats.walk_refs == 24
    )


def test_stage1_invalidation_drops_only_its_range():
    _n, tlb = _cached_pair()
    tlb.translate(0x4000_0000)
    tlb.translate(0x4000_1000)
    assert tlb.invalidate_stage1(0x4000_0000, 0x1000) == 1 and len(tlb) == 1


def test_stage2_change_must_flush_every_combined_entry():
    n, tlb = _cached_pair()
    old = tlb.translate(0x4000_0000)
    tlb.translate(0x4000_1000)
    new_hpa = n.host_memory.alloc(0x1000)
    n.stage2.unmap(0x8000, 0x1000)
    n.stage2.map(0x8000, new_hpa, 0x1000)  # the host moves the guest page
    assert tlb.invalidate_stage2(0x8000, 0x1000, naive=True) == 0
    assert (
        tlb.translate(0x4000_0000) == old != new_hpa
    )  # stale: combined entries are indexed by IOVA
    assert tlb.invalidate_stage2(0x8000, 0x1000) == 2  # TLBI_NH_ALL: everything of the VM
    assert tlb.translate(0x4000_0000) == new_hpa


def test_combined_iotlb_statistics_are_the_caches_own():
    from iommu_lab.dma.cache import CacheStats

    _n, tlb = _cached_pair()
    tlb.translate(0x4000_0000)
    tlb.translate(0x4000_0008)
    tlb.invalidate_stage1(0x4000_0000, 0x1000)
    s = tlb.stats
    assert isinstance(s, CacheStats)
    assert (s.hits, s.misses, s.invalidated, s.flushed_entries, s.walk_refs) == (1, 1, 1, 1, 24)
    assert s.to_dataframe().loc[0, "walk_refs"] == 24
    tlb.translate(0x4000_1000)
    assert tlb.to_dataframe()["iova"].tolist() == [0x4000_1000]


def test_nested_walk_answers_to_the_same_names_as_a_single_stage_walk():
    n = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=16 * MiB, backing="eager")
    n.stage1.map(0x4000_0000, 0x10_0000, 0x1000)
    w = n.walk(0x4000_0123)
    assert w.pa == w.output and w.references == w.n_refs == len(w.refs)
    assert n.walk(0x5000_0000).pa is None


def test_guest_memory_gather_agrees_with_read_u64_word_by_word():
    import numpy as np

    n = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * MiB, guest_base=0x100_0000, backing="lazy")
    n.stage1.map(0x4000_0000, 0x10_0000 + 0x100_0000, 0x3000)
    gm = n.guest_memory
    table_words = [a for a, _ in gm.allocations()]
    addrs = np.array(
        table_words + [table_words[0] + 8, 0x100_0000 + 0x30_0000, 0x50_0000, 0x100_0000 + 4 * MiB - 8, 0x100_0000 + 4 * MiB],
        dtype=np.uint64,
    )
    words, inside = gm.gather(addrs)
    for a, wd, ok in zip(addrs.tolist(), words.tolist(), inside.tolist()):
        try:
            expect = gm.read_u64(a)
        except IommuError:
            assert not ok and wd == 0
        else:
            assert ok and wd == expect
    assert inside[: len(table_words)].all() and not inside[-1] and not inside[-3]
