"""sysfs reserved_regions and iommu_groups importers: kernel format in, models out, line-numbered errors."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import iommu_lab as il
from iommu_lab.hardware.device import ResvType
from iommu_lab.io import (
    ParseError,
    merge_regions,
    parse_reserved_regions,
    read_host,
    read_iommu_groups,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "sysfs"


def test_kernel_format_lines_become_typed_inclusive_regions():
    text = "0x0000000000000000 0x0000000000ffffff direct-relaxable\n0x00000000fee00000 0x00000000feefffff msi\n"
    regions = parse_reserved_regions(text)
    assert regions == (
        il.ReservedRegion(0, 0xFFFFFF, "direct-relaxable"),
        il.ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi"),
    )


def test_msi_lines_can_be_read_as_software_msi_because_sysfs_prints_both_alike():
    (r,) = parse_reserved_regions("0x0000000008000000 0x00000000080fffff msi\n", msi_type=ResvType.SW_MSI)
    assert r.type is ResvType.SW_MSI


def test_intel_fixture_tree_reads_groups_devices_types_and_regions():
    groups = read_iommu_groups(DATA / "intel-host" / "iommu_groups")
    assert [g.number for g in groups] == [0, 1, 7]
    g1 = groups[1]
    assert g1.devices == ("0000:00:1f.0", "0000:00:1f.3") and g1.type == "DMA"
    assert [r.type for r in g1.reserved] == [ResvType.DIRECT_RELAXABLE, ResvType.MSI]
    dev = g1.device(aperture=il.IovaRange.bits(48))
    assert dev.name == "0000:00:1f.0" and dev.reserved == g1.reserved


def test_merge_follows_iommu_insert_resv_region_same_type_touching_merges_other_types_never():
    merged = merge_regions([
        il.ReservedRegion(0x1000, 0x1FFF, "reserved"),
        il.ReservedRegion(0x2000, 0x2FFF, "reserved"),  # touches: merges
        il.ReservedRegion(0x1800, 0x27FF, "direct"),  # overlaps but other type: stays
        il.ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi"),
        il.ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi"),  # two devices, same window
    ])
    assert merged == (
        il.ReservedRegion(0x1000, 0x2FFF, "reserved"),
        il.ReservedRegion(0x1800, 0x27FF, "direct"),
        il.ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi"),
    )


@pytest.mark.parametrize(
    "text,line,expected",
    [
        ("0x1000 0x1fff msi\n0x2000 0x2fff\n", 2, "3 fields"),
        ("0x1000 0x1fff msi\n\n0x2000 0x1fff reserved\n", 3, "start <= end"),
        ("0x1000 0xfffg msi\n", 1, "end as a hex address"),
        ("1000 0x1fff msi\n", 1, "start as a hex address"),
        ("0x1000 0x1fff mmio\n", 1, "one of direct, direct-relaxable, reserved, msi"),
        ("0x10000000000000000 0x1fff msi\n", 1, "start as a hex address"),
        ("0x1000 0x1fff msi\x00junk\n", 1, "printable text"),
    ],
)
def test_malformed_lines_name_file_line_and_expected_form(text, line, expected):
    with pytest.raises(ParseError) as e:
        parse_reserved_regions(text, source="groups/7/reserved_regions")
    assert e.value.line == line and expected in str(e.value)
    assert str(e.value).startswith(f"groups/7/reserved_regions:{line}:")


def test_binary_junk_is_a_parse_error_not_a_crash():
    with pytest.raises(ParseError, match="binary"):
        parse_reserved_regions(b"\x89PNG\r\n\x1a\n\xff\xfe")


def test_huge_file_is_refused_with_the_limit():
    with pytest.raises(ParseError, match="at most"):
        parse_reserved_regions("0x1000 0x1fff msi\n" * 80_000)


def test_read_host_says_clearly_when_this_machine_has_no_groups(tmp_path):
    with pytest.raises(il.IommuError) as e:
        read_host(tmp_path / "nowhere")
    assert e.value.errno == "ENODEV" and "read_iommu_groups" in str(e.value)


def test_a_stray_entry_in_the_groups_tree_is_named(tmp_path):
    (tmp_path / "not-a-group").mkdir()
    with pytest.raises(ParseError, match="numbered group"):
        read_iommu_groups(tmp_path)


@given(st.text(max_size=300))
def test_any_text_either_parses_to_valid_regions_or_raises_parse_error(text):
    try:
        regions = parse_reserved_regions(text)
    except ParseError as e:
        assert e.line >= 0 and e.expected
    else:
        assert all(r.start <= r.last for r in regions)


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.sampled_from(["direct", "direct-relaxable", "reserved", "msi"])), max_size=6),
       st.integers(0, 60))
def test_truncating_a_valid_file_anywhere_never_crashes(rows, cut):
    text = "".join(f"0x{min(a, b):016x} 0x{max(a, b):016x} {t}\n" for a, b, t in rows)
    full = parse_reserved_regions(text)
    assert len(full) == len(rows)
    try:
        parse_reserved_regions(text[: max(len(text) - cut, 0)])
    except ParseError as e:
        assert 1 <= e.line <= len(rows)
