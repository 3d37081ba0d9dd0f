"""Vendor fault codes the models log: VT-d scalable-mode reasons as Linux's dmar.c tables print
them, second-stage faults as the scalable-mode walk raises them, AMD flags without TR, and fault
text that names levels as each format's specification does."""

from iommu_lab.core.faults import FaultKind
from iommu_lab.hardware.faults import (
    VTD_S2_ACCESS_REASON,
    VTD_SM_REASON_TEXT,
    VTD_SM_REASONS,
    AmdEventFlag,
    VtdReason,
    amd_page_fault_kind,
)
from iommu_lab.hardware.structures import amd_gcr3_levels_of
from iommu_lab.nesting.nested import FaultSite, Nested, Stage
from iommu_lab.nesting.pasid import VTD_CONTEXT_ENTRY, Pgtt, VtdPasidTable
from iommu_lab.pagetable.memory import PhysicalMemory

MiB = 1 << 20


def vtd_pair():
    n = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=2 * MiB, backing="lazy")
    n.map(0x4000_0000, 0x8000, 0x1000)
    n.guest_memory.back(0x8000, 0x1000)
    return n


def test_root_and_context_entry_reasons_are_named_with_the_kernels_text():
    """0x39, 0x3a, 0x41, 0x42, 0x45, 0x46 are in the enum with dma_remap_sm_fault_reasons' strings."""
    for code in (0x39, 0x3A, 0x41, 0x42, 0x45, 0x46):
        reason = VtdReason(code)
        assert VTD_SM_REASONS[reason] == VTD_SM_REASON_TEXT[code][0]
    assert VTD_SM_REASONS[VtdReason.SM_CTX_PASID_TOO_LARGE] == "SM: PASID is larger than the max in Context Entry"
    # every enum member reads back as the log-reading table reads the same code
    assert all(VTD_SM_REASONS[r] == VTD_SM_REASON_TEXT[int(r)][0] for r in VtdReason)


def test_a_cleared_context_entry_logs_0x41_not_a_pasid_table_reason():
    host = PhysicalMemory(64 * MiB)
    t = VtdPasidTable(host, bus=1, devfn=0x10)
    t.set_entry(0x2000, Pgtt.FIRST_STAGE, fsptptr=0x5000)
    VTD_CONTEXT_ENTRY.write(host, t.context_addr, 0)
    fault = t.lookup(0x2000).fault
    assert fault.vendor is VtdReason.SM_CTX_NOT_PRESENT
    host.write_u64(t.root_table + 16 * 1, 0)
    assert t.lookup(0x2000).fault.vendor is VtdReason.SM_ROOT_NOT_PRESENT


def test_an_unmapped_gpa_is_0x79_and_the_text_says_the_entry_is_not_present():
    n = vtd_pair()
    n.stage2.unmap(0x8000, 0x1000)
    f = n.walk(0x4000_0010).fault
    assert f.stage is Stage.STAGE2 and f.site is FaultSite.OUTPUT and f.kind is FaultKind.TRANSLATION
    v = f.vtd_fault()
    assert v.code == 0x79 and "Read/Write permission error" in v.reason
    assert f"the {f.level_name} is not present" in str(v) and f.level_name.startswith("SL-")


def test_a_present_read_only_stage2_page_denies_a_write_with_0x85_and_a_read_passes():
    n = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=2 * MiB, backing="lazy")
    n.map(0x4000_0000, 0x8000, 0x1000)
    n.stage2.map(0x8000, n.host_memory.alloc(0x1000), 0x1000, prot="r")
    assert n.walk(0x4000_0000, access="r").ok
    f = n.walk(0x4000_0000, access="w").fault
    assert f.stage is Stage.STAGE2 and f.kind is FaultKind.PERMISSION
    assert f.vtd_fault().code == 0x85 and f.vtd_fault().note == ""
    assert VTD_S2_ACCESS_REASON[(FaultKind.PERMISSION, False)] is VtdReason.NO_READ


def test_fault_text_names_the_level_as_the_spec_does():
    n = vtd_pair()
    pml4e = next(r for r in n.walk(0x4000_0000).refs if r.stage is Stage.STAGE1)
    n.host_memory.write_u64(pml4e.address, pml4e.raw | 0x80)  # PS is reserved in a PML4E
    f = n.walk(0x4000_0000).fault
    assert f.level == 3 and f.level_name == "PML4E"
    assert "at PML4E" in str(f) and "level 3" not in str(f)


def test_amd_fault_flags_never_claim_an_ats_translation_request():
    n = vtd_pair()
    n.stage2.unmap(0x8000, 0x1000)
    assert not n.walk(0x4000_0010, access="w").fault.amd_event().flags & AmdEventFlag.TR
    for level in amd_gcr3_levels_of(3):
        invalid, reserved = level.invalid[1], level.reserved[0]
        assert not (invalid | reserved) & AmdEventFlag.TR
        assert invalid & AmdEventFlag.GN and reserved & AmdEventFlag.RZ
        assert amd_page_fault_kind(int(invalid)) is FaultKind.TRANSLATION
        assert amd_page_fault_kind(int(reserved)) is FaultKind.RESERVED
