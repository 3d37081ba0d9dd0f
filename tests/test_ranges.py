"""IovaRange / RangeSet: inclusive 64-bit arithmetic, canonical sets, size parsing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import iommu_lab as il
from iommu_lab.core.ranges import U64_MAX, GiB, IovaRange, MiB, RangeSet, fmt_size, parse_size


# -- the seed's three examples, exactly ------------------------------------------------
def test_seed_45_bit_iommu_permits_one_range():
    assert RangeSet.bits(45).ranges == (IovaRange(0x0, 0x1FFFFFFFFFFF),)


def test_seed_power_two_windows():
    power = RangeSet([IovaRange.from_size(0, il.GiB), IovaRange.bits(45, base=0x800000000000000)])
    assert power.ranges == (
        IovaRange(0x0, 0x3FFFFFFF),
        IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF),
    )


def test_seed_full_64_bit_with_msi_hole():
    permitted = RangeSet([IovaRange(0xAAAA0000, 0xBBBAFFFF)]).complement()
    assert permitted.ranges == (IovaRange(0x0, 0xAAA9FFFF), IovaRange(0xBBBB0000, 0xFFFFFFFFFFFFFFFF))


# -- IovaRange -------------------------------------------------------------------------
def test_range_size_and_exclusive_end():
    r = IovaRange(0x1000, 0x1FFF)
    assert (r.size, r.end) == (0x1000, 0x2000)


def test_top_of_space_is_representable_without_two_to_the_64():
    r = IovaRange(0, U64_MAX)
    assert r.last == 0xFFFFFFFFFFFFFFFF and r.size == 1 << 64


@pytest.mark.parametrize(
    "start,last,exc,words",
    [
        (-1, 5, ValueError, "outside the 64-bit address space"),
        (0, 1 << 64, ValueError, "outside the 64-bit address space"),
        (0x2000, 0x1FFF, ValueError, "above its last address"),
        (0.0, 5, TypeError, "must be an int"),
        ("0", 5, TypeError, "must be an int"),
        (True, 5, TypeError, "must be an int"),
    ],
)
def test_bad_range_bounds_are_refused_with_the_rule(start, last, exc, words):
    with pytest.raises(exc, match=words):
        IovaRange(start, last)


def test_from_size_refuses_wrap_and_empty():
    with pytest.raises(ValueError, match="wraps past the top"):
        IovaRange.from_size(U64_MAX, 2)
    with pytest.raises(ValueError, match="at least 1 byte"):
        IovaRange.from_size(0, 0)
    assert IovaRange.from_size(U64_MAX, 1) == IovaRange(U64_MAX, U64_MAX)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("0x0..0x3fffffff", IovaRange(0, 0x3FFFFFFF)),
        ("[0x800000000000000, 0x8001fffffffffff]", IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF)),
        ("0x800000000000000+2^45", IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF)),
        ("1G", IovaRange(0, 0x3FFFFFFF)),
        ("45-bit", IovaRange(0, 0x1FFFFFFFFFFF)),
        ("0xfee0_0000..0xfeef_ffff", IovaRange(0xFEE00000, 0xFEEFFFFF)),
    ],
)
def test_range_text_forms(text, expected):
    assert IovaRange.parse(text) == expected


def test_range_text_errors_say_what_is_allowed():
    with pytest.raises(ValueError, match="START..LAST"):
        IovaRange.parse("banana")
    with pytest.raises(ValueError, match="above its last"):
        IovaRange.parse("0x2000..0x1000")


def test_range_str_groups_hex_digits():
    assert str(IovaRange(0x3FFFF000, 0x40000FFF)) == "[0x3fff_f000, 0x4000_0fff]"


# -- parse_size ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,value",
    [("4K", 4096), ("4KiB", 4096), ("2M", 2 << 20), ("1G", 1 << 30), ("2^45", 1 << 45),
     ("2**12", 4096), ("45-bit", 1 << 45), ("0x1000", 4096), ("4096", 4096), ("64 bits", 1 << 64), (8192, 8192)],
)
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["", "4Q", "-4K", "0xZZ", "2^65", "1.5G"])
def test_parse_size_rejects_with_the_accepted_forms(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_parse_size_rejects_floats_and_bools():
    with pytest.raises(TypeError):
        parse_size(4.0)
    with pytest.raises(TypeError):
        parse_size(True)


# -- RangeSet --------------------------------------------------------------------------
def test_rangeset_is_sorted_disjoint_and_merges_adjacent():
    s = RangeSet([(0x3000, 0x3FFF), (0x0, 0xFFF), (0x1000, 0x1FFF), (0x1800, 0x27FF)])
    assert s.ranges == (IovaRange(0, 0x27FF), IovaRange(0x3000, 0x3FFF))


def test_rangeset_algebra():
    a = RangeSet(["0x0..0xffff"])
    b = RangeSet(["0x8000..0x1ffff"])
    assert (a | b) == RangeSet(["0x0..0x1ffff"])
    assert (a & b) == RangeSet(["0x8000..0xffff"])
    assert (a - b) == RangeSet(["0x0..0x7fff"])
    assert (b - a) == RangeSet(["0x10000..0x1ffff"])
    assert a.complement(within=IovaRange(0, 0x1FFFF)) == RangeSet(["0x10000..0x1ffff"])


def test_complement_of_empty_is_everything_and_of_everything_is_empty():
    assert RangeSet().complement() == RangeSet.full()
    assert RangeSet.full().complement() == RangeSet()


def test_find_and_contains():
    s = RangeSet.parse("0x0..0x3fffffff; 0x800000000000000..0x8001fffffffffff")
    assert s.find(0x800000000001234) == IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF)
    assert s.find(0x40000000) is None
    assert IovaRange(0x1000, 0x1FFF) in s
    assert IovaRange(0x3FFFF000, 0x40000FFF) not in s


def test_to_dataframe_keeps_high_addresses_exact():
    df = RangeSet([IovaRange(0xFFFFF00000001000, 0xFFFFF00000001FFF)]).to_dataframe()
    assert str(df["start"].dtype) == "UInt64"
    assert int(df["start"].iloc[0]) == 0xFFFFF00000001000


def test_html_repr_uses_theme_variables_and_has_text_fallback():
    html = RangeSet.bits(45)._repr_html_()
    assert "var(--jp-content-font-color0" in html and "0x1fff_ffff_ffff" in html and "<pre" in html


# -- properties against a naive model of sets of small integers ------------------------
small_ranges = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1])), max_size=8
)


def _points(rs):
    return {x for r in rs for x in range(r.start, r.last + 1)}


@given(small_ranges, small_ranges)
def test_algebra_agrees_with_python_sets(a, b):
    ra, rb = RangeSet(a), RangeSet(b)
    pa, pb = _points(ra), _points(rb)
    assert _points(ra | rb) == pa | pb
    assert _points(ra & rb) == pa & pb
    assert _points(ra - rb) == pa - pb
    assert _points(ra.complement(within=IovaRange(0, 300))) == set(range(301)) - pa
    for s in (ra | rb, ra & rb, ra - rb):
        for x, y in zip(s, list(s)[1:]):
            assert x.last + 1 < y.start  # canonical: disjoint and never touching


def test_frames_show_addresses_as_hex_through_the_il_accessor():
    df = RangeSet.parse("0x0..0x3fffffff; 0x800000000000000..0x8001fffffffffff").to_dataframe()
    html = df.il.hex().to_html()
    assert "0x800000000000000" in html and "0x8001fffffffffff" in html
    assert str(df["last"].dtype) == "UInt64"


def test_fmt_size_approx_reads_as_a_person_says_it():
    assert fmt_size(4 * GiB - 18 * MiB, approx=True) == "≈ 3.98 GiB"
    assert fmt_size(268435455 * MiB, approx=True) == "≈ 256 TiB"
    assert fmt_size(16 * MiB, approx=True) == "16 MiB"
    assert fmt_size(1000, approx=True) == "1000 B"
    # the exact form is unchanged
    assert fmt_size(4 * GiB - 18 * MiB) == "4078 MiB"


def test_check_u64_and_exact_int_refuse_floats_and_name_the_value():
    import numpy as np

    from iommu_lab.core.ranges import check_u64, exact_int

    assert check_u64(np.uint64(5), "iova") == 5
    assert exact_int(np.int32(-3), "delta") == -3
    with pytest.raises(TypeError, match="iova must be an int.*float 4096.7"):
        check_u64(4096.7, "iova")
    with pytest.raises(ValueError, match="outside the 64-bit address space"):
        check_u64(1 << 64, "iova")
    with pytest.raises(TypeError, match="bool"):
        exact_int(True, "count")
    # a huge value is named by its width, not printed in full
    with pytest.raises(ValueError, match="a 1001-bit number"):
        check_u64(1 << 1000, "iova")


# -- one grammar for every reader ------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["0x1000,0x1fff", "0x1000, 0x1fff", "[0x1000, 0x1fff]", "0x1000..0x1fff", "0x1000+4K", "1G", "45-bit",
     "1G..2G", "0xfee0_0000..0xfeef_ffff"],
)
def test_rangeset_reads_one_range_text_as_iovarange_does(text):
    assert RangeSet.parse(text) == RangeSet([IovaRange.parse(text)])


def test_rangeset_comma_pair_is_start_and_last_not_two_sizes():
    assert RangeSet.parse("0x1000,0x1fff").ranges == (IovaRange(0x1000, 0x1FFF),)


def test_rangeset_refuses_a_bare_number_in_a_list_of_ranges_as_ambiguous():
    with pytest.raises(ValueError, match="ambiguous"):
        RangeSet.parse("0x0..0xfff, 1G")


@given(st.lists(st.tuples(st.integers(0, U64_MAX), st.integers(0, U64_MAX)), max_size=6))
def test_str_of_a_range_and_a_set_reads_back(pairs):
    rs = RangeSet([(min(a, b), max(a, b)) for a, b in pairs])
    assert RangeSet.parse(str(rs)) == rs
    for r in rs:
        assert IovaRange.parse(str(r)) == r


@pytest.mark.parametrize("text", ["2^99999999999", "99999999999-bit", "9" * 100_000, "2**65", "0x" + "f" * 5000])
def test_huge_sizes_are_refused_before_computing_with_a_short_message(text):
    with pytest.raises(ValueError) as e:
        parse_size(text)
    assert len(str(e.value)) < 300


@pytest.mark.parametrize("text", ["١٢٣", "0x1__0", "0x1_", "_1", "4iB", "0x12\u0663"])
def test_non_ascii_digits_and_stray_underscores_are_not_numbers(text):
    with pytest.raises(ValueError, match="cannot read"):
        parse_size(text)


def test_numpy_integers_are_sizes_but_bools_and_floats_are_not():
    import numpy as np
    assert parse_size(np.uint64(4096)) == 4096
    for bad in (np.bool_(True), np.float64(4096.0), 4096.0, True):
        with pytest.raises(TypeError):
            parse_size(bad)


def test_integral_floats_pass_only_where_a_reader_of_data_asks_for_them():
    from iommu_lab.core.ranges import check_u64, exact_int

    assert exact_int(4096.0, "iova", integral_floats=True) == 4096
    with pytest.raises(ValueError, match="not a whole number"):
        exact_int(4096.7, "iova", integral_floats=True)
    with pytest.raises(ValueError, match="2\\^53"):
        check_u64(2.0**60, "iova", integral_floats=True)
    with pytest.raises(TypeError):
        exact_int(4096.0, "iova")


def test_parse_u64_reads_kernel_hex_and_refuses_what_machine_output_never_has():
    from iommu_lab.core.ranges import parse_u64

    assert parse_u64("fee00000", "base", base=16) == 0xFEE00000
    assert parse_u64("0x1000", "iova") == 0x1000
    with pytest.raises(ValueError, match="no '_'"):
        parse_u64("fee0_0000", "base", base=16, underscores=False)
    with pytest.raises(ValueError, match="outside the 64-bit"):
        parse_u64("0x1" + "0" * 16, "iova")


def test_counts_read_as_a_person_writes_them():
    from iommu_lab.core.words import plural

    assert plural(1, "area") == "1 area"
    assert plural(0, "area") == "0 areas"
    assert plural(2, "entry") == "2 entries"
    assert plural(4096, "page") == "4,096 pages"
    assert plural(3, "vDEVICE") == "3 vDEVICEs"
