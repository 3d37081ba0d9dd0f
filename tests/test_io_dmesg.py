"""Fault lines from kernel logs of every era become fault records, and explain() walks them."""

from pathlib import Path

import pytest

from iommu_lab.core.faults import FaultKind
from iommu_lab.hardware.faults import AMD_FLAGS_OF_KIND, AmdEventFlag
from iommu_lab.io import (
    explain,
    format_domain_translation,
    parse_dmesg,
    parse_domain_translation,
    read_dmesg,
)
from iommu_lab.pagetable import PageTable

DMESG = Path(__file__).resolve().parent.parent / "data" / "dmesg"


def test_pre_5_1_intel_reasons_are_two_digit_decimal():
    log = read_dmesg(DMESG / "intel-pre5.1.log")
    read, write, intr = log
    assert (read.device, read.address, read.access, read.code) == ("0000:00:02.0", 0x7C000000, "read", 6)
    assert read.meaning == "PTE Read access is not set" and read.kind is FaultKind.PERMISSION
    assert write.code == 5 and write.time == pytest.approx(5.12347)
    assert intr.interrupt and intr.code == 0x25 and intr.address is None  # "37" decimal


def test_pasid_forms_of_every_era_give_the_pasid_or_none():
    assert read_dmesg(DMESG / "intel-5.1-5.11.log")[0].pasid is None  # ffffffff
    old_hex = read_dmesg(DMESG / "intel-5.12-5.13.log")[0]
    assert old_hex.device == "0000:00:02.0" and old_hex.pasid is None and old_hex.code == 6
    sm, ss, intr = read_dmesg(DMESG / "intel-5.14+.log")
    assert sm.pasid == 1 and sm.code == 0x71 and sm.kind is FaultKind.TRANSLATION and sm.meaning.startswith("SM:")
    assert ss.code == 0x79 and ss.kind is FaultKind.PERMISSION and intr.interrupt


def test_callbacks_suppressed_lines_are_counted_not_faults():
    log = read_dmesg(DMESG / "intel-5.1-5.11.log")
    assert len(log) == 1 and log.suppressed == {"dmar_fault": 10}


def test_amd_events_of_every_form():
    a, b = read_dmesg(DMESG / "amd-4.x.log")
    assert a.device == "0000:00:14.0" and a.flags == 0x10 and a.kind is FaultKind.PERMISSION
    assert b.device == "0000:04:00.0" and b.line == 2 and b.kind is FaultKind.TRANSLATION  # the two-line form
    c, d, e = read_dmesg(DMESG / "amd-5.x+.log")
    assert c.device == "0000:01:00.0" and c.access == "write" and c.domain == 0xD
    assert d.device == "0000:c4:00.0" and e.reason == "ILLEGAL_DEV_TABLE_ENTRY" and e.kind is FaultKind.RESERVED


def test_amd_kind_flags_leave_tr_to_ats_translation_requests():
    assert all(not flags & AmdEventFlag.TR for flags in AMD_FLAGS_OF_KIND.values())


def test_smmuv3_raw_words_decode_and_the_decoded_line_names_the_client():
    (r,) = read_dmesg(DMESG / "smmuv3.log")
    assert (r.stream_id, r.address, r.access, r.stage, r.reason) == (0x100, 0xDEADB000, "read", 1, "F_TRANSLATION")
    assert r.device == "0000:01:00.0" and r.kind is FaultKind.TRANSLATION


def test_smmuv2_context_fault_reads_fsr_and_fsynr():
    (r,) = read_dmesg(DMESG / "smmuv2.log")
    assert (r.stream_id, r.address, r.access, r.reason, r.kind) == (0x800, 0x12345000, "write", "TF", FaultKind.TRANSLATION)


def test_other_log_lines_are_skipped():
    assert len(parse_dmesg("[ 0.000000] Linux version 6.8\n[ 1.0] usb 1-1: new device\n")) == 0


def test_counts_per_device_reason_and_time():
    log = read_dmesg(DMESG / "intel-pre5.1.log")
    t = log.counts(bucket=1)
    assert int(t[(t.who == "0000:00:02.0")]["faults"].sum()) == 2 and set(t.columns) >= {"who", "reason", "from_s"}


def _dump():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x0, 0x1234000, 0x1000, prot="r")
    return parse_domain_translation(format_domain_translation(pt))


@pytest.mark.parametrize("line,agrees", [
    ("DMAR: [DMA Read] Request device [00:02.0] fault addr 7c000000 [fault reason 06] PTE Read access is not set", True),
    ("DMAR: [DMA Write NO_PASID] Request device [00:02.0] fault addr 0x0 [fault reason 0x05] PTE Write access is not set", True),
    ("DMAR: [DMA Read NO_PASID] Request device [00:02.0] fault addr 0x5000 [fault reason 0x0c] non-zero reserved fields in PTE", False),
    ("vfio-pci 0000:00:02.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x000d address=0x5000 flags=0x0000]", True),
])
def test_explain_walks_the_faulting_address_and_checks_the_logged_reason(line, agrees):
    (fault,) = parse_dmesg(line)
    e = explain(fault, _dump())
    assert e.agrees is agrees and "stopped at" in e.stopped and str(e)


def test_explain_of_an_address_the_table_maps_says_the_model_translates():
    (fault,) = parse_dmesg("DMAR: [DMA Read] Request device [00:02.0] fault addr 0 [fault reason 06] PTE Read access is not set")
    e = explain(fault, _dump())
    assert e.agrees is False and "translates" in e.stopped


def test_explain_on_a_nested_pair_walks_stage_one_through_stage_two():
    import iommu_lab as il

    nested = il.Nested.for_platform(il.platforms.get("intel-vtd-48"), guest_ram=1 << 30, backing="eager")
    nested.map(0x100000, 0x200000, 0x1000)
    (fault,) = parse_dmesg("DMAR: [DMA Read PASID 0x1] Request device [00:02.0] fault addr 0x500000 "
                           "[fault reason 0x71] SM: Present bit in first-level paging entry is clear")
    e = explain(fault, nested)
    assert e.agrees is True and e.model_kind is FaultKind.TRANSLATION and "FL_NOT_PRESENT" in e.model_code
