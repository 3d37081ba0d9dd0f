"""The object graph of one /dev/iommu: each errno rule of HWPT_ALLOC, VIOMMU_ALLOC, VDEVICE_ALLOC,
attach/replace/detach and DESTROY, by name, in the kernel's order."""

from __future__ import annotations

import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.iommufd import IOAS, HwptFlag, IommufdContext, ObjType


def errno_of(call, *args, **kwargs) -> str:
    with pytest.raises(IommuError) as info:
        call(*args, **kwargs)
    return info.value.errno


def state(ctx: IommufdContext):
    """Everything a failed operation must leave alone: the table, the edges, each IOAS."""
    ioases = [(o.id, o.ioas.iova_ranges(), o.ioas.iova_alignment, len(o.ioas.history), tuple(o.ioas.areas))
              for o in ctx.objects_by_id.values() if o.type is ObjType.IOAS]
    return ctx.objects(), ctx.attachments(), ioases


@pytest.fixture
def vtd():
    ctx = IommufdContext()
    ioas = ctx.ioas_alloc()
    dev = ctx.bind("intel-vtd-48")
    return ctx, ioas, dev


@pytest.fixture
def smmu():
    ctx = IommufdContext()
    ioas = ctx.ioas_alloc()
    dev = ctx.bind("arm-smmuv3-48")
    return ctx, ioas, dev


# -- iommufd_hwpt_alloc -----------------------------------------------------------------------
def test_hwpt_alloc_data_type_none_with_data_is_einval(vtd):
    ctx, ioas, dev = vtd
    assert errno_of(ctx.hwpt_alloc, dev, ioas, data_type="NONE", data_len=8) == "EINVAL"


def test_hwpt_alloc_data_type_without_data_is_einval(vtd):
    ctx, ioas, dev = vtd
    assert errno_of(ctx.hwpt_alloc, dev, ioas, data_type="VTD_S1", data_len=0) == "EINVAL"


def test_hwpt_alloc_dev_id_of_an_ioas_is_enoent(vtd):
    ctx, ioas, dev = vtd
    assert errno_of(ctx.hwpt_alloc, ioas, ioas) == "ENOENT"


def test_hwpt_alloc_unknown_pt_id_is_einval_in_mainline_and_enoent_in_6_6():
    for kernel, errno in (("mainline", "EINVAL"), ("6.6", "ENOENT")):
        ctx = IommufdContext(kernel=kernel)
        dev = ctx.bind("intel-vtd-48")
        assert errno_of(ctx.hwpt_alloc, dev, 99) == errno


def test_hwpt_alloc_on_a_device_id_is_einval(vtd):
    ctx, ioas, dev = vtd
    assert errno_of(ctx.hwpt_alloc, dev, dev) == "EINVAL"


def test_hwpt_alloc_unknown_flag_is_eopnotsupp(vtd):
    ctx, ioas, dev = vtd
    assert errno_of(ctx.hwpt_alloc, dev, ioas, 0x100) == "EOPNOTSUPP"


def test_hwpt_alloc_pasid_flag_needs_6_15():
    ctx = IommufdContext(kernel="6.12")
    ioas, dev = ctx.ioas_alloc(), ctx.bind("intel-vtd-48")
    assert errno_of(ctx.hwpt_alloc, dev, ioas, "PASID") == "EOPNOTSUPP"
    new = IommufdContext()
    n_ioas, n_dev = new.ioas_alloc(), new.bind("intel-vtd-48")
    assert new[new.hwpt_alloc(n_dev, n_ioas, "PASID")].pasid_compat


def test_hwpt_alloc_any_flag_is_eopnotsupp_in_6_6():
    ctx = IommufdContext(kernel="6.6")
    ioas, dev = ctx.ioas_alloc(), ctx.bind("intel-vtd-48")
    assert errno_of(ctx.hwpt_alloc, dev, ioas, "NEST_PARENT") == "EOPNOTSUPP"
    assert ctx.hwpt_alloc(dev, ioas) == 3


def test_dirty_tracking_on_an_iommu_without_it_is_eopnotsupp():
    ctx = IommufdContext()
    ioas, dev = ctx.ioas_alloc(), ctx.bind("riscv-sv48")
    assert errno_of(ctx.hwpt_alloc, dev, ioas, "DIRTY_TRACKING") == "EOPNOTSUPP"


def test_nest_parent_with_a_fault_id_is_eopnotsupp_since_6_15(vtd):
    ctx, ioas, dev = vtd
    fault = ctx.fault_queue_alloc()
    assert errno_of(ctx.hwpt_alloc, dev, ioas, "NEST_PARENT|FAULT_ID_VALID", fault_id=fault) == "EOPNOTSUPP"
    old = IommufdContext(kernel="6.12")
    o_ioas, o_dev = old.ioas_alloc(), old.bind("intel-vtd-48")
    o_fault = old.fault_queue_alloc()
    assert old.hwpt_alloc(o_dev, o_ioas, "NEST_PARENT|FAULT_ID_VALID", fault_id=o_fault) == 4


def test_fault_id_naming_no_fault_is_enoent_and_leaves_the_ioas_alone(vtd):
    ctx, ioas, dev = vtd
    before = state(ctx)
    assert errno_of(ctx.hwpt_alloc, dev, ioas, "FAULT_ID_VALID", fault_id=ioas) == "ENOENT"
    assert state(ctx) == before


def test_smmuv3_refuses_dirty_tracking_on_a_nest_parent(smmu):
    ctx, ioas, dev = smmu
    assert errno_of(ctx.hwpt_alloc, dev, ioas, "NEST_PARENT|DIRTY_TRACKING") == "EOPNOTSUPP"
    ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    ctx.hwpt_alloc(dev, ioas, "DIRTY_TRACKING")


def test_amd_refuses_dirty_tracking_with_pasid():
    ctx = IommufdContext()
    ioas, dev = ctx.ioas_alloc(), ctx.bind("amd-v1")
    assert errno_of(ctx.hwpt_alloc, dev, ioas, "DIRTY_TRACKING|PASID") == "EOPNOTSUPP"
    ctx.hwpt_alloc(dev, ioas, "NEST_PARENT|DIRTY_TRACKING")


def test_nest_parent_without_hardware_nesting_is_eopnotsupp():
    ctx = IommufdContext()
    ioas, dev = ctx.ioas_alloc(), ctx.bind("power9-powernv")
    assert errno_of(ctx.hwpt_alloc, dev, ioas, "NEST_PARENT") == "EOPNOTSUPP"


def test_a_paging_hwpt_narrows_the_ioas_at_allocation(vtd):
    ctx, ioas, dev = vtd
    assert ctx.ioas(ioas).iova_ranges().ranges[-1].last == 2**64 - 1
    ctx.hwpt_alloc(dev, ioas)
    assert ctx.ioas(ioas).iova_ranges().ranges[-1].last == 2**48 - 1
    assert ctx.ioas(ioas).iova_alignment == 0x1000


# -- iommufd_hwpt_nested_alloc -----------------------------------------------------------------
def test_vtd_nests_on_its_parent(vtd):
    ctx, ioas, dev = vtd
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    nested = ctx.hwpt_alloc(dev, parent, data_type="VTD_S1")
    assert ctx[nested].type is ObjType.HWPT_NESTED and ctx[nested].refs == (parent,)


def test_nested_on_a_hwpt_without_nest_parent_is_einval(vtd):
    ctx, ioas, dev = vtd
    plain = ctx.hwpt_alloc(dev, ioas)
    assert errno_of(ctx.hwpt_alloc, dev, plain, data_type="VTD_S1") == "EINVAL"


def test_nested_on_an_automatic_hwpt_is_einval(vtd):
    ctx, ioas, dev = vtd
    auto = ctx.attach(dev, ioas)
    assert ctx[auto].auto_domain
    assert errno_of(ctx.hwpt_alloc, dev, auto, data_type="VTD_S1") == "EINVAL"


def test_nested_without_data_is_eopnotsupp(vtd):
    ctx, ioas, dev = vtd
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    assert errno_of(ctx.hwpt_alloc, dev, parent) == "EOPNOTSUPP"


def test_nested_with_another_drivers_data_is_eopnotsupp(vtd):
    ctx, ioas, dev = vtd
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    assert errno_of(ctx.hwpt_alloc, dev, parent, data_type="ARM_SMMUV3") == "EOPNOTSUPP"


def test_smmuv3_cannot_nest_on_the_parent_only_through_a_viommu(smmu):
    ctx, ioas, dev = smmu
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    assert errno_of(ctx.hwpt_alloc, dev, parent, data_type="ARM_SMMUV3") == "EOPNOTSUPP"
    viommu = ctx.viommu_alloc(dev, parent, "ARM_SMMUV3")
    nested = ctx.hwpt_alloc(dev, viommu, data_type="ARM_SMMUV3")
    assert ctx[nested].refs == (viommu,)


def test_nested_through_a_viommu_of_another_iommu_is_einval(smmu):
    ctx, ioas, dev = smmu
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    viommu = ctx.viommu_alloc(dev, parent, "ARM_SMMUV3")
    other = ctx.bind("intel-vtd-48")
    assert errno_of(ctx.hwpt_alloc, other, viommu, data_type="ARM_SMMUV3") == "EINVAL"


# -- iommufd_viommu_alloc_ioctl and iommufd_vdevice_alloc_ioctl -------------------------------------
def test_viommu_type_default_is_eopnotsupp(smmu):
    ctx, ioas, dev = smmu
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    assert errno_of(ctx.viommu_alloc, dev, parent, "DEFAULT") == "EOPNOTSUPP"
    assert errno_of(ctx.viommu_alloc, dev, parent, "ARM_SMMUV3", flags=1) == "EOPNOTSUPP"


def test_viommu_of_a_type_the_driver_lacks_is_eopnotsupp(vtd):
    ctx, ioas, dev = vtd
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    assert errno_of(ctx.viommu_alloc, dev, parent, "ARM_SMMUV3") == "EOPNOTSUPP"


def test_viommu_on_a_non_parent_is_einval_and_on_a_non_hwpt_enoent(smmu):
    ctx, ioas, dev = smmu
    plain = ctx.hwpt_alloc(dev, ioas)
    assert errno_of(ctx.viommu_alloc, dev, plain, "ARM_SMMUV3") == "EINVAL"
    assert errno_of(ctx.viommu_alloc, dev, ioas, "ARM_SMMUV3") == "ENOENT"


def test_ioctls_a_kernel_predates_answer_enotty_as_iommufd_fops_ioctl_does():
    ctx = IommufdContext(kernel="6.12")
    ioas, dev = ctx.ioas_alloc(), ctx.bind("arm-smmuv3-48")
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    assert errno_of(ctx.viommu_alloc, dev, parent, "ARM_SMMUV3") == "ENOTTY"
    assert errno_of(ctx.vdevice_alloc, 99, dev, 1) == "ENOTTY"
    old = IommufdContext(kernel="6.6")
    o_ioas, o_dev = old.ioas_alloc(), old.bind("intel-vtd-48")
    hwpt = old.hwpt_alloc(o_dev, o_ioas)
    assert errno_of(old.fault_queue_alloc) == "ENOTTY"
    assert errno_of(old.hwpt_set_dirty_tracking, hwpt) == "ENOTTY"
    assert errno_of(old.hwpt_get_dirty_bitmap, hwpt, 0, 0x1000, 0x1000) == "ENOTTY"


def test_vdevice_virt_id_and_device_are_each_used_once(smmu):
    ctx, ioas, dev = smmu
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    viommu = ctx.viommu_alloc(dev, parent, "ARM_SMMUV3")
    ctx.vdevice_alloc(viommu, dev, 0x10)
    assert errno_of(ctx.vdevice_alloc, viommu, dev, 0x11) == "EEXIST"
    dev2 = ctx.bind("arm-smmuv3-48")
    assert errno_of(ctx.vdevice_alloc, viommu, dev2, 0x10) == "EEXIST"
    assert ctx[viommu].vdevs[0x10] == 5
    ctx.vdevice_alloc(viommu, dev2, 0x20)


def test_vdevice_of_a_device_behind_another_iommu_is_einval(smmu):
    ctx, ioas, dev = smmu
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    viommu = ctx.viommu_alloc(dev, parent, "ARM_SMMUV3")
    other = ctx.bind("intel-vtd-48")
    assert errno_of(ctx.vdevice_alloc, viommu, other, 1) == "EINVAL"
    assert errno_of(ctx.vdevice_alloc, 99, dev, 1) == "ENOENT"


# -- attach, replace, detach ----------------------------------------------------------------------
def test_attach_to_an_unknown_id_is_enoent_and_to_a_device_einval(vtd):
    ctx, ioas, dev = vtd
    assert errno_of(ctx.attach, dev, 42) == "ENOENT"
    assert errno_of(ctx.attach, dev, dev) == "EINVAL"


def test_attach_when_attached_is_einval_and_to_the_same_hwpt_ebusy(vtd):
    ctx, ioas, dev = vtd
    a = ctx.hwpt_alloc(dev, ioas)
    b = ctx.hwpt_alloc(dev, ioas)
    ctx.attach(dev, a)
    assert errno_of(ctx.attach, dev, b) == "EINVAL"
    assert errno_of(ctx.attach, dev, a) == "EBUSY"
    assert ctx.replace(dev, b) == b
    assert ctx.attachments()[0].hwpt_id == b


def test_replace_when_not_attached_is_einval(vtd):
    ctx, ioas, dev = vtd
    a = ctx.hwpt_alloc(dev, ioas)
    assert errno_of(ctx.replace, dev, a) == "EINVAL"


def test_automatic_hwpt_is_shared_and_goes_with_its_last_device(vtd):
    ctx, ioas, dev = vtd
    dev2 = ctx.bind("intel-vtd-48")
    auto = ctx.attach(dev, ioas)
    assert ctx.attach(dev2, ioas) == auto
    ctx.detach(dev)
    assert auto in ctx
    ctx.detach(dev2)
    assert auto not in ctx
    assert len(ctx.ioas(ioas).iova_ranges().ranges) == 1 and ctx.ioas(ioas).iova_alignment == 1


def test_automatic_hwpt_of_another_iommu_is_skipped(vtd):
    ctx, ioas, dev = vtd
    arm = ctx.bind("arm-smmuv3-48")
    first = ctx.attach(dev, ioas)
    second = ctx.attach(arm, ioas)
    assert first != second


def test_dirty_tracking_hwpt_attached_to_an_iommu_without_it_is_einval():
    ctx = IommufdContext()
    ioas = ctx.ioas_alloc()
    vtd = ctx.bind("intel-vtd-48")
    hwpt = ctx.hwpt_alloc(vtd, ioas, "DIRTY_TRACKING")
    assert errno_of(ctx.attach, ctx.bind("riscv-sv48"), hwpt) == "EINVAL"


def test_domain_of_another_iommu_is_einval(vtd):
    ctx, ioas, dev = vtd
    hwpt = ctx.hwpt_alloc(dev, ioas)
    arm = ctx.bind("arm-smmuv3-48")
    before = state(ctx)
    assert errno_of(ctx.attach, arm, hwpt) == "EINVAL"
    assert state(ctx) == before


def test_reserved_region_over_a_mapping_is_eaddrinuse_and_changes_nothing(vtd):
    ctx, ioas, dev = vtd
    hwpt = ctx.hwpt_alloc(dev, ioas)
    ctx.ioas(ioas).map(0x10000, 0xFEE0_0000)
    before = state(ctx)
    assert errno_of(ctx.attach, dev, hwpt) == "EADDRINUSE"
    assert state(ctx) == before


def test_pasid_attach_needs_a_pasid_capable_hwpt(vtd):
    ctx, ioas, dev = vtd
    plain = ctx.hwpt_alloc(dev, ioas)
    pasid = ctx.hwpt_alloc(dev, ioas, "PASID")
    assert errno_of(ctx.attach, dev, plain, pasid=5) == "EINVAL"
    ctx.attach(dev, pasid, pasid=5)
    assert errno_of(ctx.attach, dev, plain) == "EINVAL"  # RID beside PASIDs must be PASID-capable
    ctx.attach(dev, pasid)


def test_pasid_beyond_max_pasids_is_einval(vtd):
    ctx, ioas, dev = vtd
    pasid = ctx.hwpt_alloc(dev, ioas, "PASID")
    assert errno_of(ctx.attach, dev, pasid, pasid=1 << 20) == "EINVAL"
    ctx.attach(dev, pasid, pasid=(1 << 20) - 1)


def test_pasid_attach_does_not_exist_before_6_15():
    ctx = IommufdContext(kernel="6.12")
    ioas, dev = ctx.ioas_alloc(), ctx.bind("intel-vtd-48")
    hwpt = ctx.hwpt_alloc(dev, ioas)
    assert errno_of(ctx.attach, dev, hwpt, pasid=1) == "EINVAL"


def test_detach_of_nothing_does_nothing(vtd):
    ctx, ioas, dev = vtd
    before = state(ctx)
    ctx.detach(dev)
    ctx.detach(dev, pasid=3)
    assert state(ctx) == before


# -- iommufd_destroy ------------------------------------------------------------------------------
def test_destroy_enforces_the_order_child_before_parent(smmu):
    ctx, ioas, dev = smmu
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    viommu = ctx.viommu_alloc(dev, parent, "ARM_SMMUV3")
    vdev = ctx.vdevice_alloc(viommu, dev, 1)
    nested = ctx.hwpt_alloc(dev, viommu, data_type="ARM_SMMUV3")
    ctx.attach(dev, nested)
    for busy in (ioas, parent, viommu, nested, dev):
        assert errno_of(ctx.destroy, busy) == "EBUSY"
    ctx.detach(dev)
    for obj in (nested, vdev, viommu, parent, ioas):
        ctx.destroy(obj)
    assert [o.type for o in ctx.objects()] == [ObjType.DEVICE]
    assert errno_of(ctx.destroy, ioas) == "ENOENT"


def test_destroying_a_paging_hwpt_gives_its_ioas_range_back(vtd):
    ctx, ioas, dev = vtd
    hwpt = ctx.hwpt_alloc(dev, ioas)
    ctx.destroy(hwpt)
    assert len(ctx.ioas(ioas).iova_ranges().ranges) == 1
    assert ctx.ioas(ioas).iova_alignment == 1


def test_ids_are_the_lowest_free_number(vtd):
    ctx, ioas, dev = vtd
    a = ctx.hwpt_alloc(dev, ioas)
    ctx.hwpt_alloc(dev, ioas)
    ctx.destroy(a)
    assert ctx.hwpt_alloc(dev, ioas) == a


def test_unbind_destroys_the_vdevice_since_6_17_and_is_ebusy_before(smmu):
    ctx, ioas, dev = smmu
    parent = ctx.hwpt_alloc(dev, ioas, "NEST_PARENT")
    viommu = ctx.viommu_alloc(dev, parent, "ARM_SMMUV3")
    ctx.vdevice_alloc(viommu, dev, 7)
    ctx.attach(dev, parent)
    ctx.unbind(dev)
    assert ctx[viommu].vdevs == {} and ctx.attachments() == ()
    old = IommufdContext(kernel="6.12")
    o_ioas, o_dev = old.ioas_alloc(), old.bind("arm-smmuv3-48")
    assert old.hwpt_alloc(o_dev, o_ioas, HwptFlag.NEST_PARENT) == 3


def test_an_ioas_made_alone_has_a_private_context():
    ioas = IOAS()
    ctx = ioas.context
    assert ctx.ioas(1) is ioas and ioas.context is ctx
    dev = ctx.bind("intel-vtd-48")
    ctx.attach(dev, 1)
    assert ioas.iova_alignment == 0x1000


def test_from_platform_accepts_a_platform_name():
    ioas = IOAS.from_platform("intel-vtd-48")
    assert ioas.platform.name == "intel-vtd-48" and ioas.iova_alignment == 0x1000


def test_binding_next_to_an_adopted_platform_ioas_picks_a_free_device_name():
    ioas = IOAS.from_platform("intel-vtd-48")  # carries its own dev0
    ctx = IommufdContext()
    ioas_id = ctx.adopt(ioas)
    dev = ctx.bind("intel-vtd-48")
    assert ctx[dev].device.name == "dev1"
    hwpt = ctx.attach(dev, ioas_id)
    assert ctx[hwpt].auto_domain
