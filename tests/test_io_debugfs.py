"""Intel VT-d debugfs importers: dumped raw entries become a real table whose walks decode them."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iommu_lab.io import ParseError
from iommu_lab.io.debugfs import (
    detect_debugfs,
    format_domain_translation,
    parse_dmar_translation,
    parse_domain_translation,
    read_dmar_translation,
    read_domain_translation,
)
from iommu_lab.pagetable import PageTable

DATA = Path(__file__).resolve().parent.parent / "data" / "debugfs"
HEADER = "IOVA_PFN\t\tPML5E\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE\n"


def _table():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x2000_0000, 0x2000)
    pt.map(0x20_0000, 0x4000_0000, 0x20_0000, prot="r")
    pt.map(0x4000_0000, 0x8000_0000, 0x4000_0000)
    return pt


def test_every_dumped_row_walks_through_exactly_the_dumped_raw_words():
    (d,) = read_domain_translation(DATA / "domain_translation_struct")[:1]
    assert d.device == "0000:00:02.0" and d.root == 0x1000_0000 and d.pagetable.fmt.name == "vtd-ss-4level"
    for iova, raws in d.rows:
        w = d.pagetable.walk(iova)
        assert w.ok
        assert [s.raw for s in w.steps] == [r for r in raws if r]
        assert w.steps[0].table == d.root


def test_round_trip_of_a_real_table_reproduces_its_mappings_at_the_same_table_addresses():
    pt = _table()
    (d,) = parse_domain_translation(format_domain_translation(pt))
    assert d.pagetable.mappings() == pt.mappings()
    assert [t.address for t in d.pagetable.tables] == [t.address for t in pt.tables]


def test_a_superpage_row_has_zero_columns_below_its_leaf_and_becomes_a_2m_leaf():
    (d,) = parse_domain_translation(format_domain_translation(_table()))
    w = d.pagetable.walk(0x20_1234)
    assert w.ok and w.page_size == 0x20_0000 and w.pa == 0x4000_1234


def test_five_level_tables_are_recognised_by_a_non_zero_pml5e_column():
    dumps = read_domain_translation(DATA / "domain_translation_struct")
    assert [d.pagetable.fmt.name for d in dumps] == ["vtd-ss-4level", "vtd-ss-5level"]
    assert dumps[1].pagetable.walk(0x1_0000_0000_0000).pa == 0x3_0000_0000


def test_the_per_pasid_device_line_of_newer_kernels_gives_the_pasid():
    (d,) = read_domain_translation(DATA / "pasid-1_domain_translation_struct")
    assert d.pasid == 1 and d.device == "0000:3a:00.1"


def test_a_file_without_device_line_gets_a_root_clear_of_every_dumped_pointer():
    body = format_domain_translation(_table()).split("\n", 1)[1]
    (d,) = parse_domain_translation(body)
    assert d.device is None and d.pagetable.walk(0x1000).pa == 0x2000_0000


def test_rows_that_disagree_about_one_entry_are_an_error_naming_both_lines():
    text = format_domain_translation(_table()).splitlines()
    bad = text[2].replace("0x0000000010001003", "0x0000000010009003", 1)
    with pytest.raises(ParseError) as e:
        parse_domain_translation("\n".join(text[:3] + [bad]) + "\n", source="dts")
    assert e.value.line == 4 and "line 3" in str(e.value)


def test_a_non_zero_column_under_a_superpage_leaf_is_refused():
    rows = format_domain_translation(_table()).splitlines()
    sp = next(r for r in rows if "0000000040000081" in r)
    broken = sp[: -len("0x0000000000000000")] + "0x0000000000001003"
    with pytest.raises(ParseError, match="below the SL-PDE superpage"):
        parse_domain_translation("\n".join(rows[:2] + [broken]))


@pytest.mark.parametrize(
    "row,expected",
    [
        ("0x0000000000001 |\t0x0\t0x1", "0x<13 hex digits> |"),
        ("0x000000000000g |\t" + "\t".join(["0x0000000000000000"] * 5), "IOVA_PFN as 0x"),
        ("0x0000000000001 |\t0x0000000000000000\tzz\t0x0\t0x0\t0x0", "PML4E as a raw entry"),
        ("0x0000000000001 |\t0x0000000000000000\t0x0000000000000000\t0x0\t0x0\t0x0", "present SL-PML4E"),
    ],
)
def test_malformed_rows_name_file_line_and_expected_form(row, expected):
    with pytest.raises(ParseError) as e:
        parse_domain_translation("Device x @0x1000\n" + HEADER + row + "\n", source="d/dts")
    assert e.value.line == 3 and expected in str(e.value) and str(e.value).startswith("d/dts:3:")


def test_a_pml5e_in_a_dump_read_as_four_level_is_refused():
    row = "0x0000000000001 |\t0x0000000010001003\t0x0\t0x0\t0x0\t0x0\n"
    with pytest.raises(ParseError, match="zero PML5E: a 4-level table"):
        parse_domain_translation("Device x @0x1000\n" + HEADER + row, fmt="vtd-ss-4level")


def test_rows_before_any_header_and_binary_files_are_parse_errors():
    with pytest.raises(ParseError, match="first"):
        parse_domain_translation("0x0000000000001 |\t0x0\n")
    with pytest.raises(ParseError, match="binary"):
        parse_domain_translation(b"\x89PNG\r\n\x1a\n\xff\xfe")


def test_dmar_translation_struct_rows_decode_root_context_and_pasid_entries():
    rows = read_dmar_translation(DATA / "dmar_translation_struct")
    assert [(r.iommu, r.bdf, r.pasid) for r in rows] == [
        ("dmar0", "00:02.0", None), ("dmar0", "00:1f.3", None), ("dmar2", "3a:00.1", 0), ("dmar2", "3a:00.1", 1)]
    legacy = rows[0].decoded()
    assert legacy["did"] == 1 and legacy["aw"] == 2 and legacy["ss_table"] == 0x1000_0000 and legacy["tt"] == "translated"
    sm = rows[3].decoded()
    assert sm["pgtt"] == "nested" and sm["did"] == 6 and sm["fs_table"] == 0x1_2345_f000 and sm["pasid_dir"] == 0x1_0f3b_4000


def test_dmar_row_with_a_bad_entry_pair_names_its_line():
    text = (DATA / "dmar_translation_struct").read_text().replace("0x0000000000000102:0x0000000010000001", "0x102", 1)
    with pytest.raises(ParseError) as e:
        parse_dmar_translation(text, source="dmar")
    assert e.value.line == 3 and "B.D.F" in e.value.expected


def test_detection_by_the_header_the_kernel_prints():
    assert detect_debugfs((DATA / "domain_translation_struct").read_bytes()) == "domain"
    assert detect_debugfs((DATA / "dmar_translation_struct").read_text()) == "dmar"
    assert detect_debugfs("0x1000 0x1fff msi\n") is None


_VALID = format_domain_translation(_table())


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(_VALID)), st.integers(0, len(_VALID)), st.binary(max_size=20))
def test_truncated_or_corrupted_dumps_are_parse_errors_with_a_line_never_crashes(cut, at, junk):
    for text in (_VALID[:cut], _VALID[:at] + junk.decode("latin-1") + _VALID[at:]):
        try:
            dumps = parse_domain_translation(text)
        except ParseError as e:
            assert e.line >= 1 and e.expected
        else:
            for d in dumps:
                for iova, _ in d.rows:
                    assert d.pagetable.walk(iova).ok


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_dump_or_a_parse_error(text):
    for parse in (parse_domain_translation, parse_dmar_translation):
        try:
            parse(text)
        except ParseError as e:
            assert e.line >= 0 and e.expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**52 - 1), st.lists(st.integers(0, 2**64 - 1), min_size=5, max_size=5)), min_size=1, max_size=4))
def test_arbitrary_raw_words_either_build_a_consistent_table_or_name_the_bad_line(rows):
    text = "Device r @0x1000\n" + HEADER + "".join(
        f"0x{pfn:013x} |\t" + "\t".join(f"0x{v:016x}" for v in raws) + "\n" for pfn, raws in rows)
    try:
        dumps = parse_domain_translation(text)
    except ParseError as e:
        assert 3 <= e.line <= 2 + len(rows)
    else:
        (d,) = dumps
        for iova, raws in d.rows:
            assert [s.raw for s in d.pagetable.walk(iova).steps] == [r for r in raws if r]
