"""Devices, domains, reserved regions, allowed ranges and alignment (reference iommufd.md §1, §2, §7)."""

import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet
from iommu_lab.hardware.device import Device, ReservedRegion
from iommu_lab.iommufd.ioas import IOAS

PAGE = 0x1000
MOCK = dict(aperture=IovaRange(0x100_0000, 0x7FFF_FFFF), pgsizes=0x800)  # selftest mock domain


def snapshot(ioas):
    return (ioas.areas, ioas.reserved, ioas.allowed, ioas.devices, ioas.iova_alignment, ioas.huge_pages,
            ioas.iova_ranges(), len(ioas.history))


def fails(errno, fn, *args, **kwargs):
    with pytest.raises(IommuError) as info:
        fn(*args, **kwargs)
    assert info.value.errno == errno, str(info.value)
    return info.value


# -- §7 attach / detach ------------------------------------------------------------------------
def test_mock_aperture_example_7_3_narrows_iova_ranges_and_sets_alignment():
    ioas = IOAS()
    ioas.attach(Device("mock", **MOCK))
    assert list(ioas.iova_ranges()) == [IovaRange(0x100_0000, 0x7FFF_FFFF)]
    assert ioas.iova_alignment == 0x800
    assert {(r.start, r.last, r.kind, r.owner) for r in ioas.reserved} == {
        (0, 0xFF_FFFF, "aperture", "mock"), (0x8000_0000, U64_MAX, "aperture", "mock")}


def test_attach_reserves_every_region_but_direct_relaxable_rule_7_1():
    dev = Device("gpu", reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi"), ReservedRegion(0x0, 0xFFFFFF, "direct-relaxable"),
                                  ReservedRegion(0xE000_0000, 0xE0FF_FFFF, "direct")])
    ioas = IOAS()
    ioas.attach(dev)
    assert [(r.start, r.type.value) for r in ioas.reserved] == [(0xE000_0000, "direct"), (0xFEE00000, "msi")]
    assert ioas.map(PAGE, 0x1000).iova == 0x1000  # relaxable region stays mappable


def test_attach_with_sw_msi_and_msi_fails_einval_and_leaves_nothing():
    dev = Device("bad", reserved=[ReservedRegion(0x800_0000, 0x80F_FFFF, "sw-msi"), ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")])
    ioas = IOAS()
    before = snapshot(ioas)
    fails("EINVAL", ioas.attach, dev)
    two_sw = Device("bad2", reserved=[ReservedRegion(0x800_0000, 0x80F_FFFF, "sw-msi"), ReservedRegion(0x900_0000, 0x90F_FFFF, "sw-msi")])
    fails("EINVAL", ioas.attach, two_sw)
    assert snapshot(ioas) == before


def test_attach_region_over_an_area_fails_eaddrinuse_and_rolls_back_rule_7_2():
    ioas = IOAS()
    ioas.map(0x2000, 0xFEE00000)
    before = snapshot(ioas)
    e = fails("EADDRINUSE", ioas.attach, Device("nic", reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")]))
    assert "[0xfee0_0000, 0xfee0_1fff]" in str(e)
    assert snapshot(ioas) == before


def test_attach_region_over_an_allowed_range_fails_eaddrinuse():
    ioas = IOAS()
    ioas.allow_iovas([IovaRange(0xFE00_0000, 0xFEFF_FFFF)])
    before = snapshot(ioas)
    fails("EADDRINUSE", ioas.attach, Device("nic", reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")]))
    assert snapshot(ioas) == before


def test_attach_aperture_excluding_an_area_fails_eaddrinuse():
    ioas = IOAS()
    ioas.map(PAGE, 0x1000)
    before = snapshot(ioas)
    fails("EADDRINUSE", ioas.attach, Device("mock", **MOCK))
    assert snapshot(ioas) == before


def test_attach_domain_with_page_larger_than_page_size_fails_einval_rule_2_2():
    fails("EINVAL", IOAS().attach, Device("big", pgsizes=0x10000))


def test_attach_checks_regions_before_page_size_and_page_size_before_aperture():
    ioas = IOAS()
    ioas.map(PAGE, 0xFEE00000)
    ioas.map(PAGE, 0x1000)
    region_and_pgsize = Device("a", pgsizes=0x10000, reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")])
    fails("EADDRINUSE", ioas.attach, region_and_pgsize)
    pgsize_and_aperture = Device("b", aperture=IovaRange(0x10_0000, U64_MAX), pgsizes=0x10000)
    fails("EINVAL", ioas.attach, pgsize_and_aperture)


def test_raising_alignment_with_misaligned_areas_fails_eaddrinuse_rule_2_3():
    ioas = IOAS()
    ioas.map(0x800, 0x10000)  # alignment 1: a half page is fine
    ioas.map(0x1000, 0x20800)
    ioas.map(0x1000, 0x30000, user_va=0x7000_0800)
    before = snapshot(ioas)
    e = fails("EADDRINUSE", ioas.attach, Device("dom", pgsizes=0x1000))
    assert "length 0x800" in str(e)
    fails("EADDRINUSE", ioas.add_access, 0x1000)
    fails("EADDRINUSE", ioas.set_huge_pages, False)
    assert snapshot(ioas) == before
    ioas.unmap(0x10000, 0x800)
    fails("EADDRINUSE", ioas.attach, Device("dom", pgsizes=0x1000))  # iova 0x20800
    ioas.unmap(0x20800, 0x1000)
    e = fails("EADDRINUSE", ioas.attach, Device("dom", pgsizes=0x1000))  # VA page offset 0x800
    assert "VA page offset 0x800" in str(e)
    ioas.unmap(0x30000, 0x1000)
    ioas.attach(Device("dom", pgsizes=0x1000))
    assert ioas.iova_alignment == 0x1000


def test_detach_drops_the_owners_reservations_and_alignment_falls_back_rule_7_4():
    msi = [ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")]
    a, b = Device("a", reserved=msi), Device("b", reserved=msi, **MOCK)
    ioas = IOAS()
    ioas.attach(a)
    ioas.attach(b)
    assert ioas.iova_alignment == 0x1000
    ioas.detach(a)
    assert 0xFEE00000 not in ioas.iova_ranges() and ioas.iova_alignment == 0x800
    ioas.detach("b")
    assert ioas.iova_ranges() == RangeSet.full() and ioas.iova_alignment == 1 and ioas.reserved == ()
    fails("ENOENT", ioas.detach, a)


def test_attaching_the_same_device_twice_fails_einval():
    ioas = IOAS()
    ioas.attach(Device("a"))
    fails("EINVAL", ioas.attach, Device("a"))


def test_permitted_is_the_intersection_of_device_windows_kept_unmerged():
    power = Device("phb", aperture=[IovaRange(0, 0x3FFF_FFFF), IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF)])
    small = Device("dev", aperture=IovaRange(0x2000_0000, 0x800000000FFFFFF))
    ioas = IOAS()
    ioas.attach(power)
    ioas.attach(small)
    assert ioas.permitted() == (IovaRange(0x2000_0000, 0x3FFF_FFFF), IovaRange(0x800000000000000, 0x800000000FFFFFF))
    ioas.detach(power)
    assert ioas.permitted() == (IovaRange(0x2000_0000, 0x800000000FFFFFF),)


# -- §1 allowed and reserved -------------------------------------------------------------------
def test_allow_iovas_rejects_start_not_below_last_einval_rule_1_5():
    fails("EINVAL", IOAS().allow_iovas, [IovaRange(0x5000, 0x5000)])
    fails("EINVAL", IOAS().allow_iovas, [(0x6000, 0x5000)])


def test_allow_iovas_rejects_overlap_within_the_list_but_accepts_adjacent():
    ioas = IOAS()
    fails("EINVAL", ioas.allow_iovas, [IovaRange(0x1000, 0x2FFF), IovaRange(0x2000, 0x3FFF)])
    ioas.allow_iovas([IovaRange(0x1000, 0x1FFF), IovaRange(0x2000, 0x3FFF)])
    assert list(ioas.allowed) == [IovaRange(0x1000, 0x3FFF)]


def test_allow_iovas_intersecting_reserved_fails_eaddrinuse_and_old_list_stays_rule_1_6():
    ioas = IOAS()
    ioas.allow_iovas([IovaRange(0x1000, 0x1FFF)])
    ioas.reserve(IovaRange(0x8000, 0x8FFF))
    e = fails("EADDRINUSE", ioas.allow_iovas, [IovaRange(0x7000, 0x8FFF)])
    assert "old allowed list stays" in str(e)
    assert list(ioas.allowed) == [IovaRange(0x1000, 0x1FFF)]


def test_allow_iovas_ignores_existing_areas_and_empty_list_clears():
    ioas = IOAS()
    ioas.map(PAGE, 0x5000)
    ioas.allow_iovas([IovaRange(0x4000, 0x6FFF)])
    ioas.allow_iovas([])
    assert not ioas.allowed


def test_reserve_over_an_area_or_allowed_range_fails_eaddrinuse_rule_1_7():
    ioas = IOAS()
    ioas.map(PAGE, 0x5000)
    ioas.allow_iovas([IovaRange(0x9000, 0x9FFF)])
    before = snapshot(ioas)
    fails("EADDRINUSE", ioas.reserve, IovaRange(0x5FFF, 0x6FFF))
    fails("EADDRINUSE", ioas.reserve, IovaRange(0x9FFF, 0xAFFF))
    assert snapshot(ioas) == before


def test_reserved_nodes_may_overlap_and_adjacent_ones_merge_in_iova_ranges_rules_0_3_1_2():
    ioas = IOAS()
    ioas.reserve(IovaRange(0x1000, 0x2FFF))
    ioas.reserve(IovaRange(0x2000, 0x3FFF), owner="x")
    ioas.reserve(IovaRange(0x4000, 0x4FFF))
    assert len(ioas.reserved) == 3
    assert list(ioas.iova_ranges()) == [IovaRange(0, 0xFFF), IovaRange(0x5000, U64_MAX)]


def test_everything_reserved_gives_no_iova_ranges():
    ioas = IOAS()
    ioas.reserve(IovaRange(0, U64_MAX))
    assert len(ioas.iova_ranges()) == 0


# -- §2 alignment options and accesses --------------------------------------------------------------
def test_huge_pages_off_with_domain_and_area_fails_einval_rule_2_7():
    ioas = IOAS(pgsizes=0x1000)
    ioas.map(PAGE, 0x10000)
    fails("EINVAL", ioas.set_huge_pages, False)


def test_huge_pages_off_sets_page_alignment_noop_twice_and_on_goes_back_to_1():
    ioas = IOAS()
    ioas.set_huge_pages(False)
    assert ioas.iova_alignment == PAGE
    ioas.set_huge_pages(False)
    ioas.set_huge_pages(True)
    assert ioas.iova_alignment == 1


def test_access_alignment_joins_and_leaves_the_ioas_alignment_rule_2_1():
    ioas = IOAS()
    acc = ioas.add_access(0x800)
    assert ioas.iova_alignment == 0x800
    ioas.remove_access(acc)
    assert ioas.iova_alignment == 1
    fails("ENOENT", ioas.remove_access, acc)


# -- paging domains: real page tables filled with every area -------------------------------------
def vtd(name="nic0"):
    return Device(name, aperture=IovaRange.bits(48), pgsizes=0x40201000, format="vtd-ss-4level",
                  reserved=[ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")])


def test_attach_of_a_device_with_a_format_creates_a_domain_that_each_map_fills():
    ioas = IOAS()
    ioas.attach(vtd())
    area = ioas.map(0x40_0000, user_va=0x7F00_0000_0000)
    dom = ioas.domain("nic0")
    w = dom.walk(area.iova + 0x1234)
    pa = ioas.host_memory.resolve(area.user_va + 0x1234, 1)[0][1]
    assert w.ok and w.pa == pa and w.page_size == 0x20_0000  # THP-backed: 2 MiB IOPTEs
    ioas.unmap(area.iova, area.length)
    assert not dom.walk(area.iova + 0x1234).ok


def test_attach_fills_the_new_domain_with_existing_areas_and_detach_drops_it():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000, user_va=0x4000_0000)
    ioas.attach(vtd())
    assert ioas.domain("nic0").walk(0x11000).ok
    ioas.detach("nic0")
    assert ioas.domains == ()


def test_devices_without_a_format_or_page_tables_off_get_no_domain():
    ioas = IOAS(pgsizes=0x1000)
    assert ioas.domains == ()
    off = IOAS(page_tables=False)
    off.attach(vtd())
    assert off.domains == ()


def test_huge_pages_off_fills_domains_with_small_pages_so_v1_cuts_stay_exact():
    ioas = IOAS(semantics="vfio-compat-v1")
    ioas.attach(vtd())
    ioas.map(0x40_0000, 0x40_0000, user_va=0x7F00_0000_0000)
    dom = ioas.domain("nic0")
    assert dom.walk(0x40_0000).page_size == 0x1000
    assert ioas.unmap(0x40_1000, 0x1000) == 0x1000
    assert not dom.walk(0x40_1000).ok and dom.walk(0x40_0000).ok and dom.walk(0x40_2000).ok


def test_a_domain_that_refuses_the_map_rolls_the_whole_map_back():
    # host pages live above 4 GiB; a 32-bit-output ARM stage 2 cannot point at them (-ERANGE)
    narrow = Device("arm32", aperture=IovaRange.bits(32), format="arm-lpae-s2-4k-32bit")
    ioas = IOAS()
    ioas.attach(vtd())
    ioas.attach(narrow)
    before = snapshot(ioas)
    with pytest.raises(IommuError) as info:
        ioas.map(0x2000, 0x10000, user_va=0x4000_0000)
    assert info.value.errno == "EINVAL" and snapshot(ioas) == before
    assert not ioas.domain("nic0").walk(0x10000).ok  # the domain filled first was unfilled
    with pytest.raises(IommuError):
        ioas.map(0x2000, user_va=0x4000_0000)  # automatic too; the same hole is chosen next time
    assert snapshot(ioas) == before


def test_a_multi_window_device_whose_format_covers_one_window_gets_no_domain():
    power = Device("phb", aperture=[IovaRange(0, 0x3FFF_FFFF), IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF)],
                   pgsizes=0x11000, format="power-tce-4k")
    ioas = IOAS()
    ioas.attach(power)
    assert ioas.domains == ()
    assert ioas.map(0x10000, 0x800000000000000).iova == 0x800000000000000


def test_attach_whose_domain_cannot_hold_existing_areas_fails_and_leaves_nothing():
    ioas = IOAS()
    ioas.map(0x2000, 0x10000, user_va=0x4000_0000)
    before = snapshot(ioas)
    with pytest.raises(IommuError):
        ioas.attach(Device("arm32", aperture=IovaRange.bits(32), format="arm-lpae-s2-4k-32bit"))
    assert snapshot(ioas) == before and ioas.domains == ()


def test_lookup_includes_the_walk_each_domain_does_for_the_iova():
    import iommu_lab as il

    ioas = il.IOAS.from_platform(il.platforms.get("intel-vtd-48"))
    area = ioas.map(4 * il.MiB)
    found = ioas.lookup(area.iova + 0x1234)
    (walk,) = found.walks
    assert walk.ok and walk.pa == ioas.domains[0].walk(area.iova + 0x1234).pa
    assert walk.page_size == 2 * il.MiB and "SL-PDE" in str(found)
    free = ioas.lookup(0x1_0000_0000)
    assert free.status == "free" and not free.walk.ok  # nothing mapped: the hardware faults


def test_lookup_without_a_domain_has_no_walk():
    import iommu_lab as il

    assert il.IOAS().lookup(0x1000).walk is None
