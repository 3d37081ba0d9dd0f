"""Dirty tracking as the iommufd uAPI sees it: HWPT_ALLOC with DIRTY_TRACKING, SET_DIRTY_TRACKING,
GET_DIRTY_BITMAP and DMA writes, each errno rule by its kernel function; and GET_HW_INFO per device."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware.platform import platforms
from iommu_lab.hardware.registers import HW_CAP_DIRTY_TRACKING, HwInfoType
from iommu_lab.iommufd import IommufdContext, ObjType

MiB2 = 0x20_0000


def errno_of(call, *args, **kwargs) -> str:
    with pytest.raises(IommuError) as info:
        call(*args, **kwargs)
    return info.value.errno


def tracked(platform="intel-vtd-48", length=2 * MiB2):
    ctx = IommufdContext()
    ioas = ctx.ioas_alloc()
    dev = ctx.bind(platform)
    hwpt = ctx.hwpt_alloc(dev, ioas, "DIRTY_TRACKING")
    ctx.attach(dev, hwpt)
    ctx.ioas(ioas).map(length, MiB2)
    return ctx, ioas, dev, hwpt


def vtd_without_ssads():
    base = platforms.get("intel-vtd-48")
    return dataclasses.replace(base, name="intel-vtd-48-no-ssads", dirty_tracking=False)


def dirty_state(ctx):
    return [(o.id, o.tracker.enabled, tuple(o.tracker.dirty_leaves())) for o in ctx.objects_by_id.values()
            if getattr(o, "tracker", None) is not None]


@pytest.mark.parametrize("platform, fmt, bit", [("intel-vtd-48", "vtd-ss-4level", 9), ("amd-v1", "amd-v1-dynamic", 6)])
def test_a_write_sets_the_formats_dirty_bit_in_the_leaf(platform, fmt, bit):
    ctx, ioas, dev, hwpt = tracked(platform)
    table = ctx.ioas(ioas).domain(ctx[hwpt].pseudo)
    assert table.fmt.name == fmt
    ctx.hwpt_set_dirty_tracking(hwpt, True)
    assert ctx.dma_write(dev, [MiB2 + 0x3000]).tolist() == [True]
    leaf = table.walk(MiB2 + 0x3000).steps[-1].raw
    assert leaf >> bit & 1


def test_a_write_into_a_2_mib_leaf_dirties_every_4_kib_bit_it_covers():
    ctx, _, dev, hwpt = tracked()
    ctx.hwpt_set_dirty_tracking(hwpt)
    ctx.dma_write(dev, [MiB2 + 0x1000])
    bitmap = ctx.hwpt_get_dirty_bitmap(hwpt, MiB2, 2 * MiB2, 0x1000)
    assert bitmap.count == 512 and bitmap.pages()[0] == MiB2 and bitmap.pages()[-1] == 2 * MiB2 - 0x1000


def test_writes_before_tracking_is_enabled_leave_no_dirty_bits_on_vtd():
    ctx, _, dev, hwpt = tracked()
    ctx.dma_write(dev, [MiB2])
    assert ctx.hwpt_get_dirty_bitmap(hwpt, MiB2, 2 * MiB2, 0x1000).count == 0


def test_no_clear_keeps_the_bits_and_a_clearing_read_empties_them():
    ctx, _, dev, hwpt = tracked()
    ctx.hwpt_set_dirty_tracking(hwpt)
    ctx.dma_write(hwpt, [MiB2])
    assert ctx.hwpt_get_dirty_bitmap(hwpt, MiB2, MiB2, 0x1000, flags=1).count == 512
    assert ctx.hwpt_get_dirty_bitmap(hwpt, MiB2, MiB2, 0x1000).count == 512
    assert ctx.hwpt_get_dirty_bitmap(hwpt, MiB2, MiB2, 0x1000).count == 0


def test_enabling_clears_stale_bits_first_as_iopt_set_dirty_tracking_does():
    ctx, _, dev, hwpt = tracked()
    ctx.hwpt_set_dirty_tracking(hwpt)
    ctx.dma_write(dev, [MiB2])
    ctx.hwpt_set_dirty_tracking(hwpt, False)
    assert ctx.hwpt_get_dirty_bitmap(hwpt, MiB2, MiB2, 0x1000, flags=1).count == 512
    ctx.hwpt_set_dirty_tracking(hwpt, True)
    assert ctx.hwpt_get_dirty_bitmap(hwpt, MiB2, MiB2, 0x1000, flags=1).count == 0


def test_arm_maps_writable_leaves_with_dbm_so_they_read_dirty_until_cleared():
    ctx, _, _, hwpt = tracked("arm-smmuv3-48")
    assert ctx.hwpt_get_dirty_bitmap(hwpt, MiB2, MiB2, MiB2, flags=1).count == 1
    ctx.hwpt_set_dirty_tracking(hwpt)
    assert ctx.hwpt_get_dirty_bitmap(hwpt, MiB2, MiB2, MiB2).count == 0


def test_a_write_through_a_nested_hwpt_dirties_its_parent():
    ctx = IommufdContext()
    ioas, dev = ctx.ioas_alloc(), ctx.bind("intel-vtd-48")
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT|DIRTY_TRACKING")
    nested = ctx.hwpt_alloc(dev, parent, data_type="VTD_S1")
    ctx.attach(dev, nested)
    ctx.ioas(ioas).map(MiB2, MiB2)
    ctx.hwpt_set_dirty_tracking(parent)
    assert ctx.dma_write(dev, [MiB2]).all()
    assert ctx.hwpt_get_dirty_bitmap(parent, MiB2, MiB2, MiB2).count == 1
    assert errno_of(ctx.hwpt_set_dirty_tracking, nested) == "ENOENT"
    assert errno_of(ctx.hwpt_get_dirty_bitmap, nested, MiB2, MiB2, MiB2) == "ENOENT"


def test_unmapped_and_detached_writes_do_not_land():
    ctx, _, dev, hwpt = tracked()
    ctx.hwpt_set_dirty_tracking(hwpt)
    assert ctx.dma_write(dev, np.array([0x7000_0000], dtype=np.uint64)).tolist() == [False]
    ctx.detach(dev)
    assert ctx.dma_write(dev, [MiB2]).tolist() == [False]


def test_set_dirty_tracking_errnos_follow_iommufd_hwpt_set_dirty_tracking():
    ctx, ioas, dev, hwpt = tracked()
    plain = ctx.hwpt_alloc(dev, ioas)
    before = dirty_state(ctx)
    assert errno_of(ctx.hwpt_set_dirty_tracking, hwpt, flags=2) == "EOPNOTSUPP"
    assert errno_of(ctx.hwpt_set_dirty_tracking, 999, flags=2) == "EOPNOTSUPP"  # flags are checked first
    assert errno_of(ctx.hwpt_set_dirty_tracking, 999) == "ENOENT"
    assert errno_of(ctx.hwpt_set_dirty_tracking, ioas) == "ENOENT"
    assert errno_of(ctx.hwpt_set_dirty_tracking, plain) == "EOPNOTSUPP"
    assert dirty_state(ctx) == before


def test_get_dirty_bitmap_errnos_follow_iommufd_check_iova_range():
    ctx, ioas, dev, hwpt = tracked()
    plain = ctx.hwpt_alloc(dev, ioas)
    ctx.hwpt_set_dirty_tracking(hwpt)
    ctx.dma_write(dev, [MiB2])
    before = dirty_state(ctx)
    assert errno_of(ctx.hwpt_get_dirty_bitmap, hwpt, MiB2, MiB2, 0x1000, flags=2) == "EOPNOTSUPP"
    assert errno_of(ctx.hwpt_get_dirty_bitmap, hwpt, MiB2, MiB2, 0x1000, reserved=1) == "EOPNOTSUPP"
    assert errno_of(ctx.hwpt_get_dirty_bitmap, hwpt, 1 << 63, 1 << 63 | 0x1000, 0x1000) == "EOVERFLOW"
    assert errno_of(ctx.hwpt_get_dirty_bitmap, hwpt, MiB2 + 0x800, 0x1000, 0x1000) == "EINVAL"
    assert errno_of(ctx.hwpt_get_dirty_bitmap, hwpt, MiB2, MiB2, 0) == "EINVAL"
    assert errno_of(ctx.hwpt_get_dirty_bitmap, hwpt, MiB2 + 0x1000, MiB2, MiB2) == "EINVAL"
    # the range is checked before the missing dirty_ops are found
    assert errno_of(ctx.hwpt_get_dirty_bitmap, plain, MiB2, MiB2, 0) == "EINVAL"
    assert errno_of(ctx.hwpt_get_dirty_bitmap, plain, MiB2, MiB2, 0x1000) == "EOPNOTSUPP"
    assert dirty_state(ctx) == before


def test_dirty_tracking_alloc_needs_the_capability_then_a_format_that_tracks():
    ctx = IommufdContext()
    ioas = ctx.ioas_alloc()
    no_ssads = ctx.bind(vtd_without_ssads())
    with pytest.raises(IommuError, match="IOMMU_HW_CAP_DIRTY_TRACKING") as e:
        ctx.hwpt_alloc(no_ssads, ioas, "DIRTY_TRACKING")
    assert e.value.errno == "EOPNOTSUPP"
    # AMD v2 platforms map through x86-64 tables, but DIRTY_TRACKING makes the driver pick a v1 table
    amd = ctx.bind("amd-v2")
    hwpt = ctx.hwpt_alloc(amd, ioas, "DIRTY_TRACKING")
    assert ctx.ioas(ioas).domain(ctx[hwpt].pseudo).fmt.family == "amd-v1"


def test_attaching_a_device_whose_iommu_cannot_track_to_a_tracking_domain_is_einval():
    ctx = IommufdContext()
    ioas = ctx.ioas_alloc()
    dev = ctx.bind("intel-vtd-48")
    hwpt = ctx.hwpt_alloc(dev, ioas, "DIRTY_TRACKING")
    plain = ctx.hwpt_alloc(dev, ioas)
    other = ctx.bind(vtd_without_ssads())
    before = ctx.objects(), ctx.attachments()
    with pytest.raises(IommuError, match="paging_domain_compatible") as e:
        ctx.attach(other, hwpt)
    assert e.value.errno == "EINVAL" and (ctx.objects(), ctx.attachments()) == before
    # a VT-d domain serves devices behind another DMAR unit when compatible
    assert ctx.attach(other, plain) == plain


def test_a_wider_vtd_domain_on_a_narrower_iommu_is_einval():
    ctx = IommufdContext()
    ioas = ctx.ioas_alloc()
    wide = ctx.hwpt_alloc(ctx.bind("intel-vtd-57"), ioas)
    assert errno_of(ctx.attach, ctx.bind("intel-vtd-48"), wide) == "EINVAL"


# -- GET_HW_INFO ---------------------------------------------------------------------------------
@pytest.mark.parametrize("platform, kind", [("intel-vtd-48", HwInfoType.INTEL_VTD), ("arm-smmuv3-48", HwInfoType.ARM_SMMUV3),
                                            ("amd-v1", HwInfoType.AMD), ("riscv-sv39", HwInfoType.NONE)])
def test_get_hw_info_reports_the_drivers_type_and_the_dirty_capability(platform, kind):
    ctx = IommufdContext()
    info = ctx.get_hw_info(ctx.bind(platform))
    assert info.type is kind
    assert bool(info.out_capabilities & HW_CAP_DIRTY_TRACKING) == platforms.get(platform).dirty_tracking
    assert info.copy_out(4)[1] == info.data_len


def test_get_hw_info_rules_follow_iommufd_get_hw_info():
    ctx = IommufdContext()
    ioas, dev = ctx.ioas_alloc(), ctx.bind("intel-vtd-48")
    assert ctx.get_hw_info(dev, data_type="INTEL_VTD").type is HwInfoType.INTEL_VTD
    assert ctx.get_hw_info(dev, data_type="DEFAULT").type is HwInfoType.INTEL_VTD
    assert errno_of(ctx.get_hw_info, dev, data_type="ARM_SMMUV3") == "EOPNOTSUPP"
    assert errno_of(ctx.get_hw_info, dev, flags=2) == "EOPNOTSUPP"
    assert errno_of(ctx.get_hw_info, ioas) == "ENOENT"
    old = IommufdContext(kernel="6.12")
    o_dev = old.bind("arm-smmuv3-48")
    assert errno_of(old.get_hw_info, o_dev, data_type="ARM_SMMUV3") == "EOPNOTSUPP"  # INPUT_TYPE is 6.16
    info = old.get_hw_info(o_dev)
    assert info.type is HwInfoType.NONE and info.out_max_pasid_log2 == 0  # SMMUv3 hw_info is 6.13


def test_the_object_table_shows_whether_tracking_is_on():
    ctx, _, _, hwpt = tracked()
    row = next(r for r in ctx.objects() if r.id == hwpt)
    assert row.type is ObjType.HWPT_PAGING and "dirty tracking off" in row.detail
    ctx.hwpt_set_dirty_tracking(hwpt)
    assert "dirty tracking on" in next(r for r in ctx.objects() if r.id == hwpt).detail


# -- VT-d erratum 772415 -------------------------------------------------------------------------
def test_a_read_only_map_on_an_ioas_holding_a_vtd_nest_parent_is_einval():
    ctx = IommufdContext()
    ioas, dev = ctx.ioas_alloc(), ctx.bind("intel-vtd-48")
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    space = ctx.ioas(ioas)
    before = space.areas, len(space.history)
    with pytest.raises(IommuError, match="ERRATA_772415_SPR17") as e:
        space.map(MiB2, MiB2, prot="r")
    assert e.value.errno == "EINVAL" and (space.areas, len(space.history)) == before
    space.map(MiB2, MiB2, prot="rw")
    ctx.destroy(parent)
    space.map(MiB2, 4 * MiB2, prot="r")  # without the nest parent read-only is fine


def test_a_vtd_nest_parent_cannot_join_an_ioas_with_read_only_areas_and_smmu_parents_can():
    ctx = IommufdContext()
    ioas = ctx.ioas_alloc()
    ctx.ioas(ioas).map(MiB2, MiB2, prot="r")
    before = ctx.objects()
    assert errno_of(ctx.hwpt_alloc, ctx.bind("intel-vtd-48"), ioas, "NEST_PARENT") == "EINVAL"
    assert [o for o in ctx.objects() if o.type is not ObjType.DEVICE] == [o for o in before if o.type is not ObjType.DEVICE]
    ctx.hwpt_alloc(ctx.bind("arm-smmuv3-48"), ioas, "NEST_PARENT")
