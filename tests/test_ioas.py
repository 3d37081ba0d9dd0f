"""IOAS map / unmap / copy with iommufd semantics, rule by rule (reference iommufd.md §0, §4–§6)."""

import pandas as pd
import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet
from iommu_lab.hardware.device import Device, ReservedRegion, ResvType
from iommu_lab.iommufd.ioas import IOAS, CopyOp, IoasInfo, MapOp, Prot, UnmapOp

PAGE = 0x1000
POWER_WINDOWS = [IovaRange(0x0, 0x3FFF_FFFF), IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF)]


def snapshot(ioas):
    return (
        ioas.areas,
        ioas.reserved,
        ioas.allowed,
        ioas.devices,
        ioas.iova_alignment,
        ioas.huge_pages,
        ioas.iova_ranges(),
        len(ioas.history),
        ioas._next_va,
        tuple(tuple(a.pins) for a in ioas.accesses),
    )


def errno_of(fn, *args, **kwargs):
    with pytest.raises(IommuError) as info:
        fn(*args, **kwargs)
    return info.value


# -- §0 fresh state and the seed examples -------------------------------------------------
def test_fresh_ioas_has_no_reserved_no_allowed_no_areas_and_alignment_1():
    ioas = IOAS()
    assert ioas.areas == () and ioas.reserved == () and not ioas.allowed and ioas.devices == ()
    assert ioas.iova_alignment == 1
    assert ioas.iova_ranges() == RangeSet([IovaRange(0, U64_MAX)])  # rule 1.3


def test_fresh_ioas_accepts_fixed_maps_at_iova_0_and_the_last_page():
    ioas = IOAS()
    assert ioas.map(PAGE, 0).iova == 0  # rule 0.2
    top = ioas.map(PAGE, U64_MAX - 0xFFF)  # rule 4.10
    assert (top.iova, top.last) == (U64_MAX - 0xFFF, U64_MAX)


def test_seed_45_bit_window_gives_one_iova_range():
    ioas = IOAS(permitted=IovaRange.bits(45))
    assert ioas.iova_ranges() == RangeSet([IovaRange(0, 0x1FFF_FFFF_FFFF)])
    assert ioas.reserved[0].kind == "aperture" and ioas.reserved[0].start == 0x2000_0000_0000
    assert errno_of(ioas.map, PAGE, 0x2000_0000_0000).errno == "EINVAL"


def test_seed_power_two_windows_give_two_iova_ranges_and_permitted_windows():
    ioas = IOAS(permitted=POWER_WINDOWS)
    assert list(ioas.iova_ranges()) == POWER_WINDOWS
    assert ioas.permitted() == tuple(POWER_WINDOWS)
    assert ioas.map(0x10000, 0x800000000000000).iova == 0x800000000000000


def test_seed_full_64_bit_with_reserved_gives_two_iova_ranges():
    ioas = IOAS(reserved=[IovaRange(0xAAAA0000, 0xBBBAFFFF)])
    assert list(ioas.iova_ranges()) == [IovaRange(0x0, 0xAAA9FFFF), IovaRange(0xBBBB0000, U64_MAX)]
    assert ioas.info().permitted == (IovaRange(0x0, 0xAAA9FFFF), IovaRange(0xBBBB0000, U64_MAX))


def test_map_crossing_the_end_of_a_power_window_fails_einval_naming_window_and_windows():
    ioas = IOAS(permitted=POWER_WINDOWS)
    e = errno_of(ioas.map, 0x2000, 0x3FFF_F000)
    assert e.errno == "EINVAL"
    assert "map [0x3fff_f000, 0x4000_0fff] crosses the end of window [0x0, 0x3fff_ffff]" in str(e)
    assert "the permitted windows are [0x0, 0x3fff_ffff], [0x800_0000_0000_0000, 0x800_1fff_ffff_ffff]" in str(e)


def test_map_straddling_two_touching_windows_fails_einval_though_iova_ranges_merge():
    touching = [IovaRange(0, 0x3FFF_FFFF), IovaRange(0x4000_0000, 0x7FFF_FFFF)]
    ioas = IOAS(permitted=touching)
    assert list(ioas.iova_ranges()) == [IovaRange(0, 0x7FFF_FFFF)]  # the reserved tree sees no seam
    assert ioas.permitted() == tuple(touching)
    e = errno_of(ioas.map, 0x2000, 0x3FFF_F000)
    assert e.errno == "EINVAL" and "crosses the end of window [0x0, 0x3fff_ffff]" in str(e)
    before = snapshot(ioas)
    # An automatic map of a whole window's worth never straddles the seam either.
    ioas.map(0x3FFF_0000, 0x0)
    auto = ioas.map(0x10000)
    assert auto.iova >= 0x4000_0000 or auto.last <= 0x3FFF_FFFF
    assert before != snapshot(ioas)


# -- §4 MAP errors in the kernel's order ----------------------------------------------------
def test_fixed_map_overlapping_reserved_and_area_fails_einval_before_eexist():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000)
    ioas.reserve(IovaRange(0x12000, 0x12FFF))
    e = errno_of(ioas.map, 0x4000, 0x10000)
    assert e.errno == "EINVAL" and "reserved [0x1_2000, 0x1_2fff]" in str(e)


def test_fixed_map_overlapping_an_area_fails_eexist():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000)
    e = errno_of(ioas.map, PAGE, 0x11000)
    assert e.errno == "EEXIST" and "[0x1_0000, 0x1_1fff]" in str(e)


def test_fixed_map_misaligned_iova_fails_einval_rule_4_7():
    ioas = IOAS(permitted=IovaRange.bits(48))
    e = errno_of(ioas.map, PAGE, 0x1800)
    assert e.errno == "EINVAL" and "iova_alignment 0x1000" in str(e)


def test_fixed_map_wrapping_past_2_64_fails_eoverflow():
    e = errno_of(IOAS().map, 0x2000, 0xFFFF_FFFF_FFFF_F000)
    assert e.errno == "EOVERFLOW" and "wraps" in str(e)


@pytest.mark.parametrize("kwargs", [dict(length=U64_MAX), dict(length=1 << 64), dict(length=PAGE, iova=U64_MAX), dict(length=PAGE, iova=1 << 64)])
def test_map_iova_or_length_at_or_above_ulong_max_fails_eoverflow_rule_4_2(kwargs):
    e = errno_of(IOAS().map, **kwargs)
    assert e.errno == "EOVERFLOW" and "ULONG_MAX" in str(e)


def test_map_unknown_prot_bits_fail_eopnotsupp_before_eoverflow():
    assert errno_of(IOAS().map, U64_MAX, prot=0x4).errno == "EOPNOTSUPP"


def test_prot_is_the_one_permission_type_and_its_exec_and_user_bits_are_not_map_flags():
    import iommu_lab as il
    from iommu_lab.core.perm import Perm

    assert Prot is Perm and il.Prot is Perm
    e = errno_of(IOAS().map, PAGE, 0x10000, prot=Perm.READ | Perm.EXEC)
    assert e.errno == "EOPNOTSUPP" and "iommufd_ioas_map" in str(e)
    with pytest.raises(ValueError, match="other than 'r' and 'w'"):
        IOAS().map(PAGE, 0x10000, prot="ru")


@pytest.mark.parametrize("prot", ["", 0, Prot.NONE])
def test_map_without_read_or_write_fails_einval_rule_4_3(prot):
    e = errno_of(IOAS().map, PAGE, prot=prot)
    assert e.errno == "EINVAL" and "READABLE" in str(e)


def test_map_zero_length_fails_einval_before_the_va_wrap_check():
    e = errno_of(IOAS().map, 0, user_va=U64_MAX)
    assert e.errno == "EINVAL" and "length 0x0" in str(e)


def test_map_user_va_plus_length_wrapping_fails_eoverflow_rule_4_5():
    e = errno_of(IOAS().map, 0x2000, 0x10000, user_va=0xFFFF_FFFF_FFFF_F000)
    assert e.errno == "EOVERFLOW" and "user_va" in str(e)


def test_map_length_not_multiple_of_alignment_fails_einval_rule_4_6():
    ioas = IOAS(pgsizes=0x1000)
    e = errno_of(ioas.map, 0x1800, 0x10000)
    assert e.errno == "EINVAL" and "length 0x1800 is not a multiple of iova_alignment 0x1000" in str(e)


def test_map_user_va_page_offset_not_multiple_of_alignment_fails_einval_rule_4_8():
    ioas = IOAS(pgsizes=0x1000)
    e = errno_of(ioas.map, 0x1000, 0x10000, user_va=0x7000_0800)
    assert e.errno == "EINVAL" and "page offset 0x800" in str(e)


def test_map_iova_sub_page_offset_need_not_equal_va_offset_rule_2_4():
    ioas = IOAS(pgsizes=0x800)
    area = ioas.map(0x1000, 0x1800, user_va=0x7000_0000)
    assert (area.iova, area.page_offset) == (0x1800, 0)


@pytest.mark.parametrize(
    "call, exc",
    [
        (lambda io: io.map(4096.0), TypeError),
        (lambda io: io.map("0x1000"), TypeError),
        (lambda io: io.map(True), TypeError),
        (lambda io: io.map(PAGE, iova=4096.0), TypeError),
        (lambda io: io.map(PAGE, iova="0"), TypeError),
        (lambda io: io.map(PAGE, user_va=1.5), TypeError),
        (lambda io: io.map(PAGE, prot=3.0), TypeError),
        (lambda io: io.map(PAGE, prot=True), TypeError),
        (lambda io: io.map(-PAGE), ValueError),
        (lambda io: io.map(PAGE, iova=-1), ValueError),
        (lambda io: io.map(PAGE, user_va=-1), ValueError),
        (lambda io: io.map(PAGE, prot="rx"), ValueError),
        (lambda io: io.unmap(0.0, PAGE), TypeError),
        (lambda io: io.unmap(0, -1), ValueError),
        (lambda io: io.copy(io, 0, "1"), TypeError),
        (lambda io: io.copy("io", 0, PAGE), TypeError),
        (lambda io: io.allow_iovas([(0, 1.0)]), TypeError),
        (lambda io: io.reserve((0, -1)), ValueError),
        (lambda io: io.reserve(IovaRange(0, 1), owner=3), TypeError),
        (lambda io: io.attach("nic0"), TypeError),
        (lambda io: io.set_huge_pages(0), TypeError),
        (lambda io: io.add_access(3), ValueError),
        (lambda io: io.lookup(-1), ValueError),
    ],
)
def test_bad_argument_types_and_negative_values_raise_python_errors_and_change_nothing(call, exc):
    ioas = IOAS()
    ioas.map(PAGE, 0x10000)
    before = snapshot(ioas)
    with pytest.raises(exc):
        call(ioas)
    assert snapshot(ioas) == before


def test_every_failed_map_leaves_the_ioas_exactly_as_it_was():
    ioas = IOAS(permitted=POWER_WINDOWS, reserved=[ReservedRegion(0x1000_0000, 0x1000_ffff, "msi")])
    ioas.map(0x4000, 0x10000)
    ioas.allow_iovas([IovaRange(0x20_0000, 0x2F_FFFF)])
    before = snapshot(ioas)
    failing = [
        dict(length=0x4000, iova=0x10000),  # EEXIST
        dict(length=0x4000, iova=0x1000_0000),  # EINVAL reserved
        dict(length=0x2000, iova=0x3FFF_F000),  # EINVAL window
        dict(length=0x800, iova=0x40000),  # EINVAL length alignment
        dict(length=0x100_0000),  # ENOSPC inside the allowed range
        dict(length=PAGE, prot=""),  # EINVAL
        dict(length=0),  # EINVAL
    ]
    for kw in failing:
        with pytest.raises(IommuError):
            ioas.map(**kw)
        assert snapshot(ioas) == before, kw


# -- §5 UNMAP --------------------------------------------------------------------------------
def test_unmap_0_u64max_is_unmap_all_and_succeeds_when_empty():
    ioas = IOAS()
    assert ioas.unmap(0, U64_MAX) == 0
    ioas.map(0x2000, 0x10000)
    ioas.map(0x3000, 0x40000)
    assert ioas.unmap(0, U64_MAX) == 0x5000 and ioas.areas == ()


def test_unmap_0_u64max_minus_1_is_an_ordinary_range_and_empty_fails_enoent():
    assert errno_of(IOAS().unmap, 0, U64_MAX - 1).errno == "ENOENT"


def test_unmap_all_method_returns_total_bytes():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000)
    assert ioas.unmap_all() == 0x2000 and ioas.unmap_all() == 0


@pytest.mark.parametrize(
    "iova, length, errno",
    [(U64_MAX, PAGE, "EOVERFLOW"), (0x1000, U64_MAX, "EOVERFLOW"), (1 << 64, 1, "EOVERFLOW"), (0x1000, 0, "EINVAL"),
     (0xFFFF_FFFF_FFFF_F000, 0x2000, "EOVERFLOW")],
)
def test_unmap_bad_ranges_fail_with_rule_5_2_errnos(iova, length, errno):
    ioas = IOAS()
    ioas.map(PAGE, 0x10000)
    before = snapshot(ioas)
    assert errno_of(ioas.unmap, iova, length).errno == errno
    assert snapshot(ioas) == before


def test_unmap_that_splits_an_area_fails_enoent_rule_5_3():
    ioas = IOAS()
    ioas.map(0x4000, 0x10000)
    e = errno_of(ioas.unmap, 0x10000, 0x2000)
    assert e.errno == "ENOENT" and "cuts area [0x1_0000, 0x1_3fff]" in str(e)
    assert len(ioas.areas) == 1


def test_unmap_of_nothing_mapped_fails_enoent_rule_5_4():
    e = errno_of(IOAS().unmap, 0x10000, 0x1000)
    assert e.errno == "ENOENT" and "nothing is mapped" in str(e)


def test_unmap_returns_sum_of_fully_contained_areas_rule_5_5():
    ioas = IOAS()
    for i in range(4):  # 4 areas of 8 pages at page 0, 16, 32, 48 of the range
        ioas.map(8 * PAGE, 0x100000 + 16 * i * PAGE)
    assert ioas.unmap(0x100000, 60 * PAGE) == 32 * PAGE
    assert ioas.areas == ()


def test_unmap_is_not_atomic_earlier_areas_go_before_enoent_rule_5_6():
    ioas = IOAS()
    ioas.map(0x1000, 0x10000)
    ioas.map(0x1000, 0x20000)
    ioas.map(0x4000, 0x30000)
    e = errno_of(ioas.unmap, 0x10000, 0x22000)  # the third area sticks out past 0x31fff
    assert e.errno == "ENOENT" and e.unmapped == 0x2000
    assert [a.iova for a in ioas.areas] == [0x30000]
    assert ioas.history[-1] == UnmapOp(0x10000, 0x22000, 0x2000, "ENOENT")


def test_unmap_whose_first_area_starts_before_iova_removes_nothing_rule_5_6():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000)
    ioas.map(0x1000, 0x20000)
    before = snapshot(ioas)
    e = errno_of(ioas.unmap, 0x11000, 0x10000)
    assert e.errno == "ENOENT" and e.unmapped == 0
    assert snapshot(ioas) == before


def test_unmap_does_not_check_alignment_rule_5_8():
    ioas = IOAS(pgsizes=0x1000)
    ioas.map(0x1000, 0x10000)
    assert ioas.unmap(0xF801, 0x2000) == 0x1000


def test_unmap_of_pinned_area_notifies_the_access_and_succeeds_rule_5_7():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000)
    acc = ioas.add_access(PAGE)
    acc.pin(0x10000, PAGE, write=True)
    assert ioas.unmap(0x10000, 0x2000) == 0x2000
    assert acc.notifications == [IovaRange(0x10000, 0x11FFF)] and acc.pins == []


def test_access_pin_rules():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000, prot="r")
    acc = ioas.add_access()
    assert errno_of(acc.pin, 0x10000, 0).errno == "EINVAL"
    assert errno_of(acc.pin, 0x11000, 0x2000).errno == "ENOENT"
    assert errno_of(acc.pin, 0x10000, PAGE, write=True).errno == "EPERM"
    acc.pin(0x10000, PAGE)
    acc.unpin(0x10000, PAGE)
    assert acc.pins == []


# -- §6 COPY ---------------------------------------------------------------------------------
def test_copy_from_inside_two_areas_makes_one_destination_area_per_piece_rule_6_4():
    src = IOAS()
    src.map(0x2000, 0x10000, user_va=0x4000_0000)
    src.map(0x2000, 0x12000, user_va=0x5000_0000)
    dst = IOAS()
    first = dst.copy(src, 0x11800, 0x1000, 0x80000)  # 0x800 from each area (rule 6.2: inside areas)
    pieces = dst.areas_in(first.iova, 0x1000)
    assert [(a.iova, a.length, a.user_va) for a in pieces] == [(0x80000, 0x800, 0x4000_1800), (0x80800, 0x800, 0x5000_0000)]
    assert pieces[0].pages is src.areas[0].pages  # pages are shared, not re-pinned (6.5)
    assert dst.unmap(0x80000, 0x800) == 0x800  # the pieces unmap separately


def test_copy_of_non_contiguous_source_fails_enoent_before_destination_checks():
    src = IOAS()
    src.map(0x1000, 0x10000)
    src.map(0x1000, 0x12000)
    dst = IOAS()
    dst.map(0x2000, 0x80000)
    e = errno_of(dst.copy, src, 0x10000, 0x3000, 0x80000)  # dst would also be EEXIST
    assert e.errno == "ENOENT" and "contiguous" in str(e)


def test_copy_errors_in_rule_6_order():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000)
    assert errno_of(ioas.copy, ioas, 0x10000, U64_MAX, prot=8).errno == "EOPNOTSUPP"
    assert errno_of(ioas.copy, ioas, U64_MAX, 0x1000, prot="").errno == "EOVERFLOW"
    assert errno_of(ioas.copy, ioas, 0x10000, 0x1000, prot="").errno == "EINVAL"
    assert errno_of(ioas.copy, ioas, 0x10000, 0).errno == "EINVAL"
    assert errno_of(ioas.copy, ioas, 0xFFFF_FFFF_FFFF_F000, 0x2000).errno == "EOVERFLOW"
    assert errno_of(ioas.copy, ioas, 0x10000, 0x2000, 0x11000).errno == "EEXIST"


def test_copy_within_the_same_ioas_survives_unmapping_the_source_rule_6_5():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000, user_va=0x4000_0000)
    ioas.copy(ioas, 0x10000, 0x2000, 0x40000)
    ioas.unmap(0x10000, 0x2000)
    assert [(a.iova, a.user_va) for a in ioas.areas] == [(0x40000, 0x4000_0000)]
    assert isinstance(ioas.history[-2], CopyOp) and ioas.history[-2].src is None


def test_writeable_copy_of_read_only_source_fails_eperm_rule_6_6():
    src = IOAS()
    src.map(0x2000, 0x10000, prot="r")
    dst = IOAS()
    before = snapshot(dst)
    e = errno_of(dst.copy, src, 0x10000, 0x2000, 0x10000, prot="rw")
    assert e.errno == "EPERM"
    assert snapshot(dst) == before
    assert dst.copy(src, 0x10000, 0x2000, 0x10000, prot="r").prot == Prot.READ


def test_automatic_copy_uses_the_source_va_of_the_first_byte_as_hint():
    src = IOAS()
    src.map(0x4000, 0x10000, user_va=0x4000_1000)  # VA lowest set bit 0x1000
    dst = IOAS()
    # copying from the second page: VA 0x4000_2000 → alignment 0x2000, so not 0x1000 (which the
    # area's own VA 0x4000_1000 would give)
    assert dst.copy(src, 0x11000, 0x2000).iova == 0x2000


# -- history, replay, presentation, lookup, info --------------------------------------------------
def test_history_records_successful_operations_and_replays_them():
    ioas = IOAS()
    ioas.reserve(IovaRange(0x5000, 0x5FFF), owner="test")
    ioas.map(0x2000)
    ioas.map(0x1000, 0x80000, user_va=0x1234_5000, prot="r")
    with pytest.raises(IommuError):
        ioas.map(0x1000, 0x80000)
    ioas.copy(ioas, 0x80000, 0x1000, prot="r")
    ioas.unmap(0x80000, 0x1000)
    assert [op.op for op in ioas.history] == ["reserve", "map", "map", "copy", "unmap"]
    assert ioas.history[1] == MapOp(0x2000, None, None, "rw", 0x2000)
    again = IOAS.replay(ioas.history)
    assert [(a.iova, a.length, a.user_va, a.prot) for a in again.areas] == [(a.iova, a.length, a.user_va, a.prot) for a in ioas.areas]


def test_replay_reproduces_the_non_atomic_unmap():
    ioas = IOAS()
    ioas.map(0x1000, 0x10000)
    ioas.map(0x2000, 0x11000)
    with pytest.raises(IommuError):
        ioas.unmap(0x10000, 0x2000)
    again = IOAS.replay(ioas.history)
    assert [a.iova for a in again.areas] == [0x11000]


def test_user_va_none_places_fresh_2mib_aligned_buffers_one_after_another():
    ioas = IOAS()
    a = ioas.map(0x3000)
    b = ioas.map(0x1000)
    assert a.user_va % 0x20_0000 == 0 and b.user_va == a.user_va + 0x20_0000
    assert a.pages is not b.pages


def test_dataframe_has_uint64_addresses_including_above_2_63():
    ioas = IOAS()
    ioas.map(PAGE, U64_MAX - 0xFFF)
    df = ioas.to_dataframe()
    assert str(df["iova"].dtype) == "UInt64" and int(df["last"][0]) == U64_MAX
    assert list(df.columns) == ["iova", "last", "length", "user_va", "prot", "pages"]
    res = IOAS(permitted=POWER_WINDOWS).to_dataframe("reserved")
    assert str(res["start"].dtype) == "UInt64" and set(res["kind"]) == {"aperture"}
    assert isinstance(ioas.to_dataframe("iova_ranges"), pd.DataFrame)
    with pytest.raises(ValueError, match="unknown table"):
        ioas.to_dataframe("nope")


def test_repr_is_readable_hex_with_grouping_and_html_is_themed():
    ioas = IOAS(permitted=POWER_WINDOWS)
    ioas.map(0x10000, 0x800000000000000)
    text = repr(ioas)
    assert "1 area," in text and "[0x800_0000_0000_0000, 0x800_0000_0000_ffff]" in text
    html = ioas._repr_html_()
    assert "il-repr" in html and "0x800_0000_0000_0000" in html and "<script" not in html


def test_lookup_explains_mapped_reserved_outside_and_free():
    dev = Device("nic0", aperture=IovaRange(0x100000, 0xFFFF_FFFF), reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")])
    ioas = IOAS()
    ioas.attach(dev)
    ioas.map(0x2000, 0x200000, user_va=0x7000_0000)
    hit = ioas.lookup(0x201234)
    assert hit.status == "mapped" and hit.offset == 0x1234 and hit.user_va == 0x7000_1234
    res = ioas.lookup(0xFEE00004)
    assert res.status == "reserved" and res.reservations[0].type is ResvType.MSI and "nic0" in res.reason
    assert ioas.lookup(0x1000).status == "outside" and "permitted windows" in ioas.lookup(0x1000).reason
    assert ioas.lookup(0x300000).status == "free"


def test_info_reports_pgsizes_permitted_not_reserved_and_alignment():
    dev = Device("nic0", aperture=IovaRange.bits(48), pgsizes=0x40201000, reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")])
    ioas = IOAS()
    ioas.attach(dev)
    info = ioas.info()
    assert isinstance(info, IoasInfo)
    assert info.pgsizes == 0x40201000 and info.page_sizes == [0x1000, 0x200000, 0x40000000]
    assert info.permitted == (IovaRange(0, 0xFEDFFFFF), IovaRange(0xFEF00000, 0xFFFF_FFFF_FFFF))
    assert info.iova_alignment == 0x1000 and info.capabilities.type1_map_unmap
    assert info.capabilities.nesting == "software" and info.max_mappings is None


def test_info_capabilities_come_from_a_duck_typed_platform():
    class FakePlatform:
        nesting = "hardware"
        stage1_binding = "pasid-table"  # the whole PASID/CD table is bound, as on SMMUv3

        def device(self, name="dev0"):
            return Device(name, aperture=IovaRange.bits(48))

    caps = IOAS.from_platform(FakePlatform()).info().capabilities
    assert caps.nesting == "hardware" and caps.pasid_table_binding and not caps.pgtable_binding


@pytest.mark.parametrize("nesting, binding, want", [
    ("hardware", "pgtable", (True, False)),
    ("hardware", None, (False, False)),
    ("software", "pasid-table", (False, False)),
])
def test_info_binding_capabilities_follow_the_declared_stage1_binding(nesting, binding, want):
    class FakePlatform:
        def __init__(self):
            self.nesting, self.stage1_binding = nesting, binding

        def device(self, name="dev0"):
            return Device(name, aperture=IovaRange.bits(48))

    caps = IOAS.from_platform(FakePlatform()).info().capabilities
    assert (caps.pgtable_binding, caps.pasid_table_binding) == want and caps.nesting == nesting


def test_copy_into_an_ioas_with_larger_alignment_checks_the_source_va_offset_rule_4_8():
    src = IOAS()
    src.map(0x1000, 0x10000, user_va=0x7000_0800)
    dst = IOAS(pgsizes=0x1000)
    e = errno_of(dst.copy, src, 0x10000, 0x1000, 0x20000)
    assert e.errno == "EINVAL" and "page offset 0x800" in str(e)


def test_write_only_and_read_only_maps_keep_their_prot():
    ioas = IOAS()
    assert ioas.map(PAGE, 0x10000, prot="w").prot == Prot.WRITE
    assert ioas.map(PAGE, 0x20000, prot=Prot.READ).prot.text == "r-"


def test_history_of_a_convenience_ioas_replays_from_nothing():
    ioas = IOAS(permitted=POWER_WINDOWS, pgsizes=0x1000)
    ioas.map(0x10000)
    again = IOAS.replay(ioas.history)
    assert again.permitted() == ioas.permitted() and [a.iova for a in again.areas] == [a.iova for a in ioas.areas]


def test_an_empty_ioas_is_still_truthy():
    assert IOAS()


def test_the_areas_table_says_what_pins_each_area_in_words():
    ioas = IOAS()
    src = ioas.map(0x20_0000, 0x40_0000)
    ioas.copy(ioas, src.iova, 0x1000, 0x100_0000)
    pages = list(ioas.to_dataframe()["pages"])
    assert pages[0] == "512 pages (2 MiB) rw, shared with 1 other area"
    assert pages[1] == pages[0]  # a COPY pins nothing new: it shares the source's iopt_pages
