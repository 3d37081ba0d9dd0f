"""Automatic IOVA allocation, exactly ``iopt_alloc_iova`` (reference iommufd.md §3)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange
from iommu_lab.hardware.device import Device
from iommu_lab.iommufd.ioas import IOAS

PAGE = 0x1000
VA_2M = 0x7F00_0000_0000  # a 2 MiB (in fact 2^40) aligned buffer, as the selftests use


def only_hole(first, last):
    """An IOAS whose single hole is ``[first, last]``."""
    ioas = IOAS()
    if first:
        ioas.reserve(IovaRange(0, first - 1))
    if last < U64_MAX:
        ioas.reserve(IovaRange(last + 1, U64_MAX))
    return ioas


def test_auto_map_never_returns_iova_0():
    assert IOAS().map(PAGE, user_va=VA_2M).iova == PAGE


def test_auto_map_never_uses_the_last_page_but_fixed_can():
    ioas = only_hole(U64_MAX - 0x2FFF, U64_MAX)
    assert ioas.map(PAGE, user_va=VA_2M).iova == U64_MAX - 0x2FFF
    assert ioas.map(PAGE, user_va=VA_2M).iova == U64_MAX - 0x1FFF
    e = pytest.raises(IommuError, ioas.map, PAGE, user_va=VA_2M).value
    assert e.errno == "ENOSPC"
    assert ioas.map(PAGE, U64_MAX - 0xFFF).last == U64_MAX


def test_auto_length_at_or_above_half_the_space_fails_eoverflow_rule_3_1():
    e = pytest.raises(IommuError, IOAS().map, 0x7FFF_FFFF_FFFF_FFFF, user_va=0).value
    assert e.errno == "EOVERFLOW" and "iopt_alloc_iova" in str(e)


def test_auto_alignment_below_iova_alignment_fails_einval_rule_3_3():
    ioas = IOAS(pgsizes=0x800)  # mock domain: MOCK_PAGE_SIZE 0x800
    e = pytest.raises(IommuError, ioas.map, 0x1000, user_va=0x7000_0400).value
    assert e.errno == "EINVAL" and "below iova_alignment 0x800" in str(e)


def test_auto_alignment_comes_from_length_when_the_va_is_2m_aligned():
    ioas = IOAS()
    ioas.map(PAGE, 0x1000)
    assert ioas.map(0x3000, user_va=VA_2M).iova == 0x4000  # roundup_pow_of_two(0x3000)


def test_auto_alignment_is_capped_at_hpage_size_rule_3_2():
    assert IOAS().map(0x40_0000, user_va=VA_2M).iova == 0x20_0000
    assert IOAS(hpage_size=PAGE).map(0x40_0000, user_va=VA_2M).iova == PAGE  # no THP


def test_worked_example_3_5_badly_placed_hole_is_skipped_for_2m_aligned_va():
    ioas = only_hole(0x3000, 0x4FFF)
    e = pytest.raises(IommuError, ioas.map, 0x2000, user_va=VA_2M).value
    assert e.errno == "ENOSPC"
    assert ioas.map(0x2000, user_va=0x7000_1000).iova == 0x3000


def test_worked_example_3_5_three_page_map_needs_a_0x4000_aligned_start():
    assert only_hole(0x3000, 0x8FFF).map(0x3000, user_va=VA_2M).iova == 0x4000


def test_worked_example_3_6_sub_page_va_offset_is_carried_into_the_iova():
    assert IOAS().map(0x1000, user_va=0x7000_0800).iova == 0x1800


def test_worked_example_3_7_reserved_overflow_is_enospc_not_a_wrapped_iova():
    ioas = IOAS()
    ioas.reserve(IovaRange.from_size(6, 0xFFFF_FFFF_FFFF_8001))
    e = pytest.raises(IommuError, ioas.map, 0x5000, user_va=VA_2M).value
    assert e.errno == "ENOSPC"


def test_one_byte_hole_never_takes_a_one_byte_map_reference_11():
    ioas = only_hole(0x5000, 0x5000)
    assert pytest.raises(IommuError, ioas.map, 1, user_va=VA_2M).value.errno == "ENOSPC"
    assert ioas.map(1, 0x5000).iova == 0x5000


def test_auto_allocation_stays_inside_the_allowed_ranges_rule_3_4():
    ioas = IOAS()
    ioas.allow_iovas([IovaRange(0x10_0000, 0x10_3FFF), IovaRange(0x40_0000, 0x4F_FFFF)])
    assert ioas.map(0x4000, user_va=VA_2M).iova == 0x10_0000
    assert ioas.map(0x4000, user_va=VA_2M).iova == 0x40_0000
    assert ioas.map(0x1000, 0x9000).iova == 0x9000  # FIXED ignores allowed (rule 1.8)
    ioas.allow_iovas([])
    assert ioas.map(0x1000, user_va=VA_2M).iova == 0x1000


def test_adjacent_allowed_ranges_merge_into_one_span():
    ioas = IOAS()
    ioas.allow_iovas([IovaRange(0x10_0000, 0x10_1FFF), IovaRange(0x10_2000, 0x10_3FFF)])
    assert ioas.map(0x4000, user_va=VA_2M).iova == 0x10_0000


def test_auto_allocation_respects_device_aperture_and_reserved_regions():
    dev = Device("mock", aperture=IovaRange(0x100_0000, 0x7FFF_FFFF), pgsizes=0x800)
    ioas = IOAS()
    ioas.attach(dev)
    assert ioas.map(0x1000, user_va=VA_2M).iova == 0x100_0000


def test_auto_map_in_packed_areas_finds_the_tail_hole():
    ioas = IOAS()
    for i in range(1, 2001):
        ioas.map(PAGE, i * PAGE)
    ioas.unmap(500 * PAGE, PAGE)
    assert ioas.map(PAGE, user_va=VA_2M).iova == 500 * PAGE
    assert ioas.map(PAGE, user_va=VA_2M).iova == 2001 * PAGE


# -- naive reference: the kernel's walk over explicit hole lists -------------------------------
def naive_alloc(used, allowed, length, addr, iova_alignment, hpage=0x20_0000):
    """iopt_alloc_iova over plain lists: ``used`` are (start, last) of reserved ∪ areas."""
    if length == 0 or length >= U64_MAX // 2:
        return "EOVERFLOW"
    off = addr % PAGE
    align = 1 << (length - 1).bit_length()
    if addr:
        align = min(align, addr & -addr)
    align = min(align, hpage)
    if align < iova_alignment:
        return "EINVAL"

    def check(start, last):
        a = start + align - 1
        if a > U64_MAX:
            return None
        a = (a & ~(align - 1)) | off
        if a >= last or last - a < length - 1:
            return None
        return a

    lo, hi = PAGE, U64_MAX - PAGE
    spans = []
    for s, l in sorted(allowed) or [(lo, hi)]:
        s, l = max(s, lo), min(l, hi)
        if s > l:
            continue
        if spans and s <= spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], max(spans[-1][1], l))
        else:
            spans.append((s, l))
    for s, l in spans:
        s0 = check(s, l)
        if s0 is None:
            continue
        cur = s0
        for us, ul in sorted(used) + [(l + 1, l + 1)]:
            if ul < cur:
                continue
            if us > l:
                us = l + 1
            if us > cur:
                got = check(cur, min(us - 1, l))
                if got is not None:
                    return got
            cur = max(cur, ul + 1)
            if cur > l:
                break
    return "ENOSPC"


pages = st.integers(0, 40)


@given(
    fixed=st.lists(st.tuples(pages, st.integers(1, 6)), max_size=12),
    reserved=st.lists(st.tuples(pages, st.integers(1, 4)), max_size=3),
    allowed=st.lists(st.tuples(pages, st.integers(2, 12)), max_size=2),
    length=st.sampled_from([1, 0x800, 0x1000, 0x1800, 0x2000, 0x3000, 0x8000, 0x40_0000]),
    va=st.sampled_from([0, 0x400, 0x800, 0x1000, 0x2000, 0x7000_3000, VA_2M, 0x123_4567]),
    top=st.booleans(),
)
def test_auto_allocation_agrees_with_a_naive_walk_of_the_kernel_algorithm(fixed, reserved, allowed, length, va, top):
    ioas = IOAS()
    base = (U64_MAX - 0x40_0000) & ~0xFFF if top else 0
    for p, n in reserved:
        try:
            ioas.reserve(IovaRange(base + p * PAGE, base + (p + n) * PAGE - 1))
        except IommuError:
            pass
    for p, n in fixed:
        try:
            ioas.map(n * PAGE, base + p * PAGE)
        except IommuError:
            pass
    try:
        ioas.allow_iovas([IovaRange(base + p * PAGE, base + (p + n) * PAGE - 1) for p, n in allowed])
    except IommuError:
        pass
    used = [(r.start, r.last) for r in ioas.reserved] + [(a.iova, a.last) for a in ioas.areas]
    want = naive_alloc(used, [(r.start, r.last) for r in ioas.allowed], length, va, ioas.iova_alignment)
    try:
        got = ioas.map(length, user_va=va).iova
    except IommuError as e:
        got = e.errno
    assert got == want
    if isinstance(got, int):
        align = min(1 << (length - 1).bit_length(), 0x20_0000, (va & -va) if va else 1 << 64)
        assert got % align == 0 and got & (va % PAGE) == va % PAGE  # alignment and VA offset kept
        assert PAGE <= got and got + length - 1 <= U64_MAX - PAGE
        assert not any(s <= got + length - 1 and got <= l for s, l in used)
        if ioas.allowed:
            assert IovaRange(got, got + length - 1) in ioas.allowed
