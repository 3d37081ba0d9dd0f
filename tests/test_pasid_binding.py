"""Page-table binding vs PASID-table binding: where the table lives and what a walk costs."""

import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.nesting.nested import FaultOwner, FaultSite, Nested, Stage, nested_walk_refs
from iommu_lab.nesting.pasid import VTD_PASID_ENTRY, Binding, Pgtt

MiB = 1 << 20


def pair(platform):
    n = Nested.for_platform(platform, guest_ram=4 * MiB, backing="lazy")
    n.map(0x4000_0000, 0x20_0000, 0x1000)
    n.guest_memory.back(0x20_0000, 0x1000)
    return n


def test_vtd_page_table_binding_writes_a_nested_pasid_entry_in_host_memory():
    n = pair("intel-vtd-48")
    t = n.bind_pasid(0x12345)
    assert t.binding is Binding.PGTABLE and t.memory is n.host_memory
    d = VTD_PASID_ENTRY.decode(VTD_PASID_ENTRY.read(n.host_memory, t.entry_address(0x12345)))
    assert d["PGTT"] == Pgtt.NESTED
    assert d["FSPTPTR"] == n.stage1.root  # a GPA: pasid_pte_config_nestd writes s1_cfg->pgtbl_addr
    assert d["SSPTPTR"] == n.stage2.root  # an HPA: virt_to_phys(s2_domain->pgd)
    assert d["AW"] == 2  # 4-level second stage


def test_vtd_walk_with_pasid_adds_four_host_reads_to_the_2d_walk():
    """Scalable mode reads root entry, context entry, PASID directory and PASID entry
    (iommu_context_addr, intel_pasid_get_entry), all host-owned: no stage-2 walk for them."""
    n = pair("intel-vtd-48")
    n.bind_pasid(0x12345)
    w = n.walk(0x4000_0000, pasid=0x12345)
    assert w.ok and w.output == n.walk(0x4000_0000).output
    assert w.counts["pasid_structures"] == 4 and w.counts["pasid_stage2"] == 0
    assert w.n_pagetable_refs == 24 and w.n_refs == 28
    assert [r.purpose for r in w.refs[:4]] == ["root entry", "context entry", "PASID directory", "PASID table"]


def test_vtd_refuses_pasid_table_binding():
    n = pair("intel-vtd-48")
    with pytest.raises(IommuError) as e:
        n.bind_pasid(1, binding="pasid-table")
    assert e.value.errno == "EOPNOTSUPP" and "shadow" in str(e.value)


def test_smmu_pasid_table_binding_translates_every_cd_fetch_through_stage2():
    n = pair("arm-smmuv3-48")
    t = n.bind_pasid(0x12345)
    assert t.binding is Binding.PASID_TABLE and t.memory is n.guest_memory and t.two_level
    w = n.walk(0x4000_0000, pasid=0x12345)
    m = n.m
    # STE (host PA), then L1 descriptor and CD, each an m-reference stage-2 walk plus the read
    assert w.counts["pasid_structures"] == 3 and w.counts["pasid_stage2"] == 2 * m
    assert w.n_refs == 1 + 2 * (m + 1) + nested_walk_refs(4, m)
    assert w.refs[0].purpose == "STE" and w.refs[1].stage is Stage.STAGE2


def test_smmu_page_table_binding_keeps_the_cd_table_in_host_memory():
    n = pair("arm-smmuv3-48")
    t = n.bind_pasid(5, binding=Binding.PGTABLE, pasid_bits=8)
    assert t.memory is n.host_memory and not t.two_level
    w = n.walk(0x4000_0000, pasid=5)
    assert w.ok and w.counts["pasid_stage2"] == 0 and w.counts["pasid_structures"] == 2


def test_amd_gcr3_levels_are_gpas_walked_through_the_v1_host_table():
    n = pair("amd-v1")
    t = n.bind_pasid(0x1234, pasid_bits=16)
    assert t.levels == 2
    w = n.walk(0x4000_0000, pasid=0x1234)
    assert w.ok
    assert w.counts["pasid_structures"] == 1 + 2 and w.counts["pasid_stage2"] == 2 * n.m


def test_unbound_pasid_faults_in_the_structure_with_owner():
    n = pair("arm-smmuv3-48")
    n.bind_pasid(0x12345)
    f = n.walk(0x4000_0000, pasid=0x7).fault
    assert f.stage is Stage.CONFIG and f.owner is FaultOwner.GUEST  # the guest's CD table
    assert f.smmu_event().name == "C_BAD_CD"
    v = pair("intel-vtd-48")
    v.bind_pasid(0x40)
    f = v.walk(0x4000_0000, pasid=0x41).fault
    assert f.owner is FaultOwner.HOST and f.vtd_fault().code == 0x59


def test_cd_table_outside_stage2_is_a_host_fault_with_class_cd():
    n = pair("arm-smmuv3-48")
    t = n.bind_pasid(3, pasid_bits=8)
    n.stage2.unmap(t.base - t.base % n.stage2.min_pgsize, n.stage2.min_pgsize)
    w = n.walk(0x4000_0000, pasid=3)
    f = w.fault
    assert f.owner is FaultOwner.HOST and f.site is FaultSite.CONFIG
    ev = f.smmu_event()
    assert ev.s2 and ev.klass == 0  # CLASS=CD


def test_walk_with_pasid_before_binding_is_enoent():
    n = pair("intel-vtd-48")
    with pytest.raises(IommuError) as e:
        n.walk(0x4000_0000, pasid=1)
    assert e.value.errno == "ENOENT"


@pytest.mark.parametrize("pgtt", [Pgtt.SECOND_STAGE, Pgtt.PASS_THROUGH])
def test_vtd_pgtt_second_stage_only_and_pass_through(pgtt):
    n = pair("intel-vtd-48")
    t = n.bind_pasid(0x40)
    t.set_entry(0x41, pgtt, ssptptr=n.stage2.root)
    w = n.walk(0x20_0010, pasid=0x41)
    assert w.ok and w.count(Stage.STAGE1) == 0
    if pgtt is Pgtt.PASS_THROUGH:
        assert w.output == 0x20_0010 and w.n_pagetable_refs == 0
    else:
        assert w.output == n.stage2.walk(0x20_0010).pa and w.n_pagetable_refs == n.m


def test_amd_dte_follows_the_v1_parent_when_it_grows_after_a_pasid_is_bound():
    """increase_address_space adds a root; amd_iommu_domain_update then rewrites the DTE's
    host root and mode (set_dte_entry), keeping the GCR3 pointer: a PASID walk reads the new DTE."""
    from iommu_lab.nesting.pasid import AMD_DTE

    n = pair("amd-v1")
    t = n.bind_pasid(0x1234, pasid_bits=16)
    before = AMD_DTE.decode(AMD_DTE.read(n.host_memory, t.dte_addr))
    assert before["Mode"] == n.stage2.fmt.levels == 3 and before["PTRoot"] == n.stage2.root
    n.stage2.map(1 << 40, 0x2000_0000, 0x1000)  # above mode 3's 2^39: the v1 table grows to mode 4
    after = AMD_DTE.decode(AMD_DTE.read(n.host_memory, t.dte_addr))
    assert after["Mode"] == n.stage2.fmt.levels == 4 and after["PTRoot"] == n.stage2.root != before["PTRoot"]
    assert {k: after[k] for k in ("GV", "GLX", "GCR3_14_12", "GCR3_30_15", "GCR3_51_31")} == {
        k: before[k] for k in ("GV", "GLX", "GCR3_14_12", "GCR3_30_15", "GCR3_51_31")}
    w = n.walk(0x4000_0000, pasid=0x1234)
    assert w.ok and w.refs[0].decoded["Mode"] == 4
