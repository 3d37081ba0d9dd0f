"""Failed operations change nothing, and the model facts tutorials rely on hold as the kernel states them."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.core.perm import Perm
from iommu_lab.hardware import formats
from iommu_lab.hardware.structures import Pgtt
from iommu_lab.nesting.exits import CACHING_MODE, HARDWARE_NESTING, VIRTIO_IOMMU, exit_model
from iommu_lab.nesting.nested import Nested
from iommu_lab.nesting.pasid import AmdGcr3Table, Binding, SmmuCdTable
from iommu_lab.nesting.shadow import ShadowNesting
from iommu_lab.pagetable.memory import PhysicalMemory
from iommu_lab.pagetable.table import PageTable, pgsize_split

MiB = 1 << 20
HW_PLATFORMS = ["intel-vtd-48", "arm-smmuv3-48", "amd-v1"]


def pair_state(n):
    """Everything a PASID bind could change: memory bytes and blocks, the structure, the roots."""
    return (
        n.host_memory.snapshot(),
        sorted(n.host_memory.allocations()),
        sorted(n.guest_memory.allocations()),
        id(n.pasid_table),
        dict(n._pasid_roots),
    )


# -- PASID binding ------------------------------------------------------------------------------


def test_vtd_refuses_pasid_table_binding_also_once_a_pasid_is_bound():
    # intel_pasid_setup_nested: VT-d walks only its own host PASID table (page-table binding)
    n = Nested.for_platform("intel-vtd-48", guest_ram=4 * MiB, backing="lazy")
    n.bind_pasid(3)
    before = pair_state(n)
    with pytest.raises(UnsupportedError, match="never walks a guest-owned PASID table"):
        n.bind_pasid(7, binding="pasid-table")
    assert pair_state(n) == before


def test_a_second_binding_kind_on_the_same_pair_is_refused():
    n = Nested.for_platform("arm-smmuv3-48", guest_ram=4 * MiB, backing="lazy")
    n.bind_pasid(1)  # the guest's CD table (PASID-table binding)
    before = pair_state(n)
    with pytest.raises(IommuError) as e:
        n.bind_pasid(2, binding="pgtable")
    assert e.value.errno == "EINVAL" and "one PASID structure" in str(e.value)
    assert pair_state(n) == before


@pytest.mark.parametrize("platform", HW_PLATFORMS)
@pytest.mark.parametrize("pasid", [-1, 1 << 20, 1 << 25])
def test_a_bad_pasid_allocates_no_pasid_structure(platform, pasid):
    n = Nested.for_platform(platform, guest_ram=4 * MiB, backing="lazy")
    before = pair_state(n)
    with pytest.raises(IommuError) as e:
        n.bind_pasid(pasid)
    assert e.value.errno == "EINVAL"
    assert n.pasid_table is None and pair_state(n) == before


def test_amd_gcr3_checks_cr3_before_allocating_levels():
    mem = PhysicalMemory()
    t = AmdGcr3Table(mem, 16)
    before = (mem.snapshot(), sorted(mem.allocations()))
    for bad in (0x1234, -0x1000, 1 << 52):
        with pytest.raises(IommuError, match="4 KiB-aligned"):
            t.set_gcr3(0x300, bad)
    assert (mem.snapshot(), sorted(mem.allocations())) == before


def test_amd_gcr3_table_for_one_pasid_is_glx0():
    # get_gcr3_levels(1): get_count_order(1) == 0 -> GLX 0, one 4 KiB level
    t = AmdGcr3Table(PhysicalMemory(), 0)
    assert t.glx == 0 and t.levels == 1
    t.set_gcr3(0, 0x5000)
    assert t.resolve(0).stage1_root == 0x5000
    with pytest.raises(IommuError):
        t.set_gcr3(1, 0x5000)


def test_guest_owned_cd_table_may_be_linear_beyond_64k():
    # Linux's 64 KiB cap (CTXDESC_LINEAR_CDMAX) is for tables arm_smmu_alloc_cd_tables builds;
    # a guest's vSTE may point at a linear table of 2^S1CDMax CDs.
    mem = PhysicalMemory()
    t = SmmuCdTable(mem, 12, two_level=False)  # guest-owned: PASID-table binding
    assert not t.two_level and t.set_cd(0xABC, 0x7000)
    assert t.resolve(0xABC).stage1_root == 0x7000
    with pytest.raises(IommuError, match="64 KiB"):
        SmmuCdTable(mem, 12, two_level=False, binding=Binding.PGTABLE)


def test_first_stage_only_pasid_entry_is_walked_without_stage_2():
    # PGTT=FIRST_STAGE (intel_pasid_setup_first_level): FSPTPTR is host-physical, no stage 2
    n = Nested.for_platform("intel-vtd-48", guest_ram=4 * MiB, backing="lazy")
    t = n.bind_pasid(1)
    host_s1 = PageTable("x86-64-4level", memory=n.host_memory)
    host_s1.map(0x4000_0000, 0x1234_5000, 0x1000)
    t.set_entry(5, Pgtt.FIRST_STAGE, fsptptr=host_s1.root)
    w = n.walk(0x4000_0abc, pasid=5)
    assert w.ok and w.output == 0x1234_5abc
    assert {r.stage.name for r in w.refs} == {"CONFIG", "STAGE1"}
    assert sum(r.stage.name == "STAGE1" for r in w.refs) == 4  # n refs, not (n+1)(m+1)-1
    b = n.translate(np.array([0x4000_0abc, 0x5000_0000], dtype=np.uint64), pasid=5)
    assert b.outputs() == [0x1234_5abc, None]


# -- translate agrees with walk --------------------------------------------------------------


def test_translate_and_walk_agree_address_by_address_faults_included():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x4000_0000, 0x8000_0000, 4 * MiB)
    iovas = np.array([0x4000_0000, 0x4050_0000, 0x4100_0000, 0x9000_0000], dtype=np.uint64)
    b = pt.translate(iovas, paths=True)
    assert b.outputs() == [pt.walk(int(i)).output for i in iovas]
    assert [b.output_of(k) == pt.walk(int(i)).output for k, i in enumerate(iovas)] == [True] * 4
    assert b.output_of(3) is None


# -- errno of a map over a present entry --------------------------------------------------------


@pytest.mark.parametrize(
    "name, errno",
    [("vtd-ss-4level", "EADDRINUSE"), ("amd-v1-dynamic", "EADDRINUSE"), ("x86-64-4level", "EADDRINUSE"),
     ("riscv-sv48", "EADDRINUSE"), ("arm-lpae-s1-4k-48bit", "EEXIST"), ("arm-lpae-s2-4k-40bit", "EEXIST")],
)
def test_map_over_a_present_entry_answers_the_drivers_errno(name, errno):
    # generic_pt __map_range returns -EADDRINUSE; io-pgtable-arm __arm_lpae_map -EEXIST
    pt = PageTable(name)
    pt.map(0x20_0000, 0x20_0000, 0x1000)
    before = pt.memory.snapshot()
    with pytest.raises(IommuError) as e:
        pt.map(0x20_0000, 0x40_0000, 0x1000)
    assert e.value.errno == errno and pt.memory.snapshot() == before


# -- level names, permissions, AMD growth ----------------------------------------------------


def test_level_names_as_the_specifications_write_them():
    assert formats.get("arm-lpae-s1-4k-48bit").level_names == ("L0", "L1", "L2", "L3")
    assert formats.get("arm-lpae-s1-4k-39bit").level_names == ("L1", "L2", "L3")
    assert formats.get("vtd-ss-4level").level_names == ("SL-PML4E", "SL-PDPE", "SL-PDE", "SL-PTE")
    assert formats.get("x86-64-4level").level_names == ("PML4E", "PDPE", "PDE", "PTE")
    assert formats.get("amd-v1-dynamic").level_names == ("Level 3", "Level 2", "Level 1")
    assert formats.get("riscv-sv39").level_names == ("level 2", "level 1", "level 0")
    assert formats.get("power-tce-4k").level_names == ("TCE",)


def test_permissions_print_only_the_bits_the_format_has():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x1000, 0x1000, prot="r")
    assert formats.get("vtd-ss-4level").perm_text(Perm.RW | Perm.EXEC | Perm.USER) == "rw; format has no X/U bits"
    assert "r-; format has no X/U bits" in pt.walk(0x1000).summary()
    assert formats.get("power-tce-4k").perm_text(Perm.RW) == "rw; format has no X/U bits"
    assert formats.get("arm-lpae-s2-4k-40bit").perm_text(Perm.READ) == "r--; format has no U bits"
    assert formats.get("x86-64-4level").perm_text(Perm.RW | Perm.USER) == "rw-u"


def test_amd_v1_platform_tables_start_at_three_levels_and_grow():
    # increase_address_space: mode 3 until a mapping needs more
    from iommu_lab.hardware.platform import platforms

    pt = PageTable(platforms.get("amd-v1").format_name("paging"))
    pt.map(0x1000, 0x1000, 0x1000)
    assert pt.fmt.levels == 3 and pt.walk(0x1000).references == 3
    pt.map(1 << 40, 0x2000, 0x1000)
    assert pt.fmt.levels == 4 and pt.walk(0x1000).references == 4
    assert formats.get("amd-v1-6level").levels == 6  # the fixed-6 table, by name


def test_pgsize_split_of_a_terabyte_counts_without_building_the_pages():
    pages = pgsize_split(0x1000, 0, 0, 1 << 40)
    assert len(pages) == 1 << 28 and len(pages.runs) == 1
    assert pages[-1] == ((1 << 40) - 0x1000, (1 << 40) - 0x1000, 0x1000)
    assert pgsize_split(0x40201000, 0x1000, 0x1000, 0x3000) == [(0x1000, 0x1000, 0x1000), (0x2000, 0x2000, 0x1000),
                                                              (0x3000, 0x3000, 0x1000)]


# -- one VM-exit model -------------------------------------------------------------------------


def test_one_exit_rule_for_nesting_and_shadowing():
    assert (HARDWARE_NESTING.on_map(), HARDWARE_NESTING.on_unmap()) == (0, 1)
    assert (CACHING_MODE.on_map(), CACHING_MODE.on_unmap()) == (1, 1)
    assert (VIRTIO_IOMMU.on_map(), VIRTIO_IOMMU.on_unmap(lazy=True), VIRTIO_IOMMU.on_flush()) == (1, 0, 1)
    assert exit_model("nested") is HARDWARE_NESTING
    with pytest.raises(ValueError):
        exit_model("nope")


def test_refused_shadow_operations_cost_nothing():
    s = ShadowNesting.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * MiB)
    s.guest_map(0x4000_0000, 0x10_0000, 0x1000)
    snap = (repr(s.costs), s.memory.snapshot(), s.stage2.memory.snapshot())
    for call in (lambda: s.guest_map(0x4000_0000, 0x10_0000, 0x1000),  # already mapped
                 lambda: s.guest_map(0x4000_0001, 0x10_0000, 0x1000),  # unaligned
                 lambda: s.guest_unmap(0x4000_0000, 0)):  # empty
        with pytest.raises(IommuError):
            call()
        assert (repr(s.costs), s.memory.snapshot(), s.stage2.memory.snapshot()) == snap


# -- hypothesis: random valid and invalid operations, failures change nothing -------------------

_OPS = st.lists(
    st.tuples(
        st.sampled_from(["map", "unmap"]),
        st.sampled_from([0, 0x1000, 0x20_0000, 0x1FF000, 0x3000_0000, 1 << 47, (1 << 48) - 0x1000, -1, 0x1001]),
        st.sampled_from([0x1000, 0x2000, 0x20_0000, 0, 0x1001, 1 << 48]),
        st.sampled_from(["rw", "r", "", "q"]),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["vtd-ss-4level", "arm-lpae-s1-4k-48bit", "amd-v1-dynamic", "riscv-sv39"]), ops=_OPS)
def test_page_table_failures_leave_tables_and_memory_unchanged(name, ops):
    pt = PageTable(name)
    for op, iova, size, prot in ops:
        before = (pt.memory.snapshot(), sorted(pt.memory.allocations()), pt.root, pt.fmt.name)
        try:
            if op == "map":
                pt.map(iova, 0x8000_0000 + (iova & 0xFFF_F000 if iova >= 0 else 0), size, prot)
            else:
                pt.unmap(iova, size)
        except (IommuError, ValueError, TypeError):
            assert (pt.memory.snapshot(), sorted(pt.memory.allocations()), pt.root, pt.fmt.name) == before


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    platform=st.sampled_from(HW_PLATFORMS),
    ops=st.lists(st.tuples(st.sampled_from([0, 1, 7, 0x3FF, 0xFFFF, 1 << 20, -1]),
                           st.sampled_from([None, "pgtable", "pasid-table", "bogus"])), max_size=6),
)
def test_pasid_binding_failures_leave_the_pair_unchanged(platform, ops):
    n = Nested.for_platform(platform, guest_ram=4 * MiB, backing="lazy")
    for pasid, binding in ops:
        before = pair_state(n)
        try:
            n.bind_pasid(pasid, binding=binding)
        except (IommuError, ValueError, TypeError):
            assert pair_state(n) == before


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.sampled_from(["map", "unmap"]),
                              st.sampled_from([0x4000_0000, 0x4000_1000, 0x4000_0800, 1 << 50]),
                              st.sampled_from([0x1000, 0x2000, 0, 0x800])), max_size=10),
       virtio=st.booleans())
def test_shadow_failures_leave_tables_and_costs_unchanged(ops, virtio):
    s = ShadowNesting.build(None if virtio else "x86-64-4level", "vtd-ss-4level", guest_ram=4 * MiB)

    def state():
        # the guest's table lives in the stage-2 table's host memory
        return repr(s.costs), s.memory.snapshot(), s.stage2.memory.snapshot()

    for op, iova, size in ops:
        before = state()
        try:
            if op == "map":
                s.guest_map(iova, 0x10_0000, size)
            else:
                s.guest_unmap(iova, size)
        except (IommuError, ValueError, TypeError):
            assert state() == before
