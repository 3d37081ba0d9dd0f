"""Intel domain_translation_struct and dmar_translation_struct dumps of every kernel era and
the forms users paste them in."""

import pytest

from iommu_lab.hardware.structures import Pgtt
from iommu_lab.io import ParseError, parse_dmar_translation, parse_domain_translation
from iommu_lab.io.debugfs import format_domain_translation
from iommu_lab.pagetable import PageTable


def _table(fmt="vtd-ss-4level"):
    pt = PageTable(fmt)
    pt.map(0x0, 0x1234_0000, 0x3000, prot="rw")
    pt.map(0x20_0000, 0x4000_0000, 0x20_0000, prot="rw")
    pt.map(0x4000_0000, 0x8000_0000, 0x4000_0000, prot="r")
    return pt


def _same_walks(pt, dump):
    for m in pt.mappings():
        a, b = pt.walk(m.iova), dump.pagetable.walk(m.iova)
        assert b.ok and (a.pa, a.page_size) == (b.pa, b.page_size)


def test_v6_7_rows_are_cut_after_the_superpage_leaf_and_still_walk():
    pt = _table()
    text = format_domain_translation(pt, era="v6.7+", pasid=0x1a)
    widths = sorted({len(ln.split("|")[1].split()) for ln in text.splitlines() if "|" in ln})
    assert widths == [3, 4, 5]
    (dump,) = parse_domain_translation(text)
    assert dump.era == "v6.7+" and dump.pasid == 0x1A
    _same_walks(pt, dump)


def test_old_top_level_file_prints_the_default_pasid_in_decimal():
    text = format_domain_translation(_table(), era="v5.3-v6.6", pasid=10)
    (dump,) = parse_domain_translation(text)
    assert dump.era == "v5.3-v6.6" and dump.pasid == 10


def test_the_documentation_half_table_form_is_stitched_back_row_by_row():
    pt = _table()
    for era in ("v5.3-v6.6", "v6.7+"):
        text = format_domain_translation(pt, era=era, split=True)
        (dump,) = parse_domain_translation(text)
        _same_walks(pt, dump)


def test_the_abi_document_example_reads_with_its_prompt_and_elision():
    text = """ $ sudo cat /sys/kernel/debug/iommu/intel/0000:00:02.0/domain_translation_struct

 Device 0000:00:02.0 @0x1017f8000
 IOVA_PFN                PML5E                   PML4E
 0x000000008d800 |       0x0000000000000000      0x00000001017f9003
 0x000000008d801 |       0x0000000000000000      0x00000001017f9003

 PDPE                    PDE                     PTE
 0x00000001017fa003      0x00000001017fb003      0x000000008d800003
 0x00000001017fa003      0x00000001017fb003      0x000000008d801003

 [...]
"""
    (dump,) = parse_domain_translation(text)
    assert dump.device == "0000:00:02.0" and dump.pagetable.walk(0x8d801000).pa == 0x8d801000


def test_rewrapped_rows_crlf_and_upper_case_hex_read_as_the_original():
    pt = _table()
    text = format_domain_translation(pt)
    wrapped = []
    for ln in text.splitlines():
        if "|" in ln:
            cut = ln.rsplit("\t", 2)
            wrapped += [cut[0], "\t".join(cut[1:])]
        else:
            wrapped.append(ln)
    crlf = "\r\n".join(wrapped).upper().replace("DEVICE", "Device").replace("IOVA_PFN", "IOVA_PFN") + "\r\n"
    crlf = crlf.replace("0X", "0x")
    (dump,) = parse_domain_translation(crlf)
    _same_walks(pt, dump)


def test_a_row_split_far_from_its_start_is_refused_with_the_line():
    text = format_domain_translation(_table()).splitlines()
    text.insert(3, "")
    text.insert(4, "0x0000000000000000")
    with pytest.raises(ParseError) as e:
        parse_domain_translation("\n".join(text))
    assert e.value.line == 5


def test_empty_and_not_enabled_per_device_files_are_valid_dumps_without_a_table():
    assert len(parse_domain_translation("")) == 0
    assert "pass-through" in parse_domain_translation(b"\n").describe_empty()
    d = parse_domain_translation("DMA Remapping is not enabled on dmar1\n")
    assert len(d) == 0 and d.disabled == ("dmar1",) and "dmar1" in d.describe_empty()


def test_first_stage_rows_decode_as_x86_64_when_the_pgtt_says_so():
    pt = _table("x86-64-4level")
    text = format_domain_translation(pt, era="v6.7+", pasid=1)
    (dump,) = parse_domain_translation(text, pgtt=Pgtt.FIRST_STAGE)
    assert dump.first_stage and dump.pagetable.fmt.name == "x86-64-4level" and "PGTT=1" in dump.format_source
    _same_walks(pt, dump)
    (assumed,) = parse_domain_translation(format_domain_translation(_table()))
    assert "assumed second stage" in assumed.format_source


def test_the_pgtt_comes_from_the_matching_dmar_translation_row():
    pt = _table("x86-64-4level")
    text = format_domain_translation(pt, device="0000:3a:00.1", era="v6.7+", pasid=1)
    # PASID entry val[0]: P=1, AW=2 (4-level), PGTT=1 (first stage); val[2]: FSPTPTR.
    v0 = 1 | (2 << 2) | (1 << 6)
    dmar = ("IOMMU dmar2: Root Table Address: 0x10f3b0000\n"
            "B.D.F\tRoot_entry\t\t\t\tContext_entry\t\t\t\tPASID\tPASID_table_entry\n"
            f"3a:00.1\t0x0000000000000000:0x000000010f3b1001\t0x0000000000000000:0x000000010f3b4001\t1     \t"
            f"0x{pt.root:016x}:0x0000000000000005:0x{v0:016x}\n")
    rows = parse_dmar_translation(dmar)
    assert rows[0].pgtt is Pgtt.FIRST_STAGE and rows[0].table_root == pt.root
    assert "fs table" in rows[0].summary()
    (dump,) = parse_domain_translation(text, contexts=rows)
    assert dump.first_stage and "dmar2" in dump.format_source


@pytest.mark.parametrize("bad,words", [
    ("Device 0000:00:02.0 with pasid -5 @0x1000", "pasid as a number"),
    ("Device 0000:00:02.0 with pasid \u0661 @0x1000", "pasid"),
    ("Device 0000:00:02.0 @0x10_000", "root as a hex address"),
    ("Device 0000:00:02.0 @0x\u0661000", "root as a hex address"),
])
def test_signs_underscores_and_non_ascii_digits_are_refused(bad, words):
    text = bad + "\nIOVA_PFN\t\tPML5E\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE\n"
    with pytest.raises(ParseError, match=words):
        parse_domain_translation(text)


def test_a_non_vtd_format_for_a_vtd_dump_is_refused():
    with pytest.raises(ParseError, match="VT-d table format"):
        parse_domain_translation(format_domain_translation(_table()), fmt="arm-lpae-s2-4k-48bit")
    with pytest.raises(ValueError, match="PGTT"):
        parse_domain_translation("", pgtt=9)


def test_the_documentation_dmar_half_tables_read_as_rows():
    text = """ $ sudo cat /sys/kernel/debug/iommu/intel/dmar_translation_struct

 IOMMU dmar1: Root Table Address: 0x103027000
 B.D.F   Root_entry
 00:02.0 0x0000000000000000:0x000000010303e001

 Context_entry
 0x0000000000000102:0x000000010303f005

 PASID   PASID_table_entry
 -1      0x0000000000000000:0x0000000000000000:0x0000000000000000

 IOMMU dmar0: Root Table Address: 0x103028000
 B.D.F   Root_entry
 00:0a.0 0x0000000000000000:0x00000001038a7001

 Context_entry
 0x0000000000000000:0x0000000103220e7d

 PASID   PASID_table_entry
 0       0x0000000000000000:0x0000000000800002:0x00000001038a5089

 [...]
"""
    legacy, scalable = parse_dmar_translation(text)
    assert legacy.pasid is None and legacy.table_root == 0x10303F000 and legacy.iommu == "dmar1"
    assert scalable.pasid == 0 and scalable.pgtt is Pgtt.SECOND_STAGE and scalable.table_root == 0x1038A5000


def test_dmar_pasid_must_be_plain_decimal():
    row = ("IOMMU dmar0: Root Table Address: 0x1000\nB.D.F\tRoot_entry\tContext_entry\tPASID\tPASID_table_entry\n"
           "00:02.0\t0x0:0x1\t0x0:0x1\t{}\t0x0:0x0:0x0\n")
    for bad in ("-5", "1_0", "\u0661"):
        with pytest.raises(ParseError, match="PASID"):
            parse_dmar_translation(row.format(bad))
