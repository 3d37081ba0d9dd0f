"""IOMMU_HWPT_ALLOC: a paging HWPT on an IOAS, or a nested HWPT on a parent or a vIOMMU.

Mirrors drivers/iommu/iommufd/hw_pagetable.c. ``check_alloc`` runs the checks of
``iommufd_hwpt_alloc`` in its order, then those of the branch the ``pt_id`` picks:
``iommufd_hwpt_paging_alloc`` (generic flag checks, then the driver's
``domain_alloc_paging_flags``, then ``iopt_table_add_domain``), ``iommufd_hwpt_nested_alloc``
(the parent must be a user-allocated NEST_PARENT of the same driver; then the driver's
``domain_alloc_nested``) or ``iommufd_viommu_alloc_hwpt_nested`` (the vIOMMU's
``alloc_domain_nested``); the fault queue named by ``fault_id`` is looked up last, as the ioctl
does after the domain exists. Nothing here changes the context: the caller commits the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iommu_lab.core.errors import IommuError
from iommu_lab.iommufd.drivers import dirty_capable
from iommu_lab.iommufd.objects import (
    DeviceObj,
    FaultObj,
    HwptData,
    HwptFlag,
    HwptNested,
    HwptPaging,
    IoasObj,
    Kernel,
    ViommuObj,
)

__all__ = ["HwptPlan", "check_alloc", "check_fault", "paging_flags_valid", "make_nested", "iommu_of"]


def paging_flags_valid(kernel: Kernel) -> HwptFlag:
    """``valid_flags`` of ``iommufd_hwpt_paging_alloc`` in this kernel: none in 6.6 (the ioctl
    refused any flag), NEST_PARENT and DIRTY_TRACKING from 6.7, FAULT_ID_VALID from 6.11, PASID
    from 6.15."""
    flags = HwptFlag.NONE
    if kernel.has(6, 7):
        flags |= HwptFlag.NEST_PARENT | HwptFlag.DIRTY_TRACKING
    if kernel.has(6, 11):
        flags |= HwptFlag.FAULT_ID_VALID
    if kernel.has(6, 15):
        flags |= HwptFlag.PASID
    return flags


@dataclass(frozen=True)
class HwptPlan:
    """What a HWPT_ALLOC that passed every check will make."""

    kind: str  # "paging" or "nested"
    idev: DeviceObj
    flags: HwptFlag
    data: HwptData
    ioas: IoasObj | None = None
    parent: HwptPaging | None = None
    viommu: ViommuObj | None = None
    fault: FaultObj | None = None


def _fail(errno: str, what: str, why: str) -> IommuError:
    return IommuError(errno, f"HWPT_ALLOC {what}: {why}")


def check_alloc(ctx: Any, dev_id: int, pt_id: int, flags: HwptFlag, data: HwptData, data_len: int) -> HwptPlan:
    """Every check of IOMMU_HWPT_ALLOC in the kernel's order; the plan, or the first refusal.

    ``iommufd_hwpt_alloc``: ``data_type`` NONE with ``data_len`` != 0, or another type with 0 →
    EINVAL; ``dev_id`` not a bound device → ENOENT; ``pt_id`` unknown → EINVAL (6.6 looked up an
    IOAS only: ENOENT); ``pt_id`` neither IOAS, HWPT_PAGING nor VIOMMU → EINVAL. Then the
    branch's own rules (see the module docstring). ``check_fault`` runs once the domain exists.
    """
    what = f"(dev_id={dev_id}, pt_id={pt_id}, flags={flags.text})"
    kernel: Kernel = ctx.kernel
    if (data is HwptData.NONE and data_len) or (data is not HwptData.NONE and not data_len):
        raise _fail("EINVAL", what, f"data_type {data.name} with data_len {data_len}; NONE takes no data and every "
                    "other type needs some (iommufd_hwpt_alloc)")
    if not kernel.has(6, 7) and (int(flags) or data is not HwptData.NONE):
        raise _fail("EOPNOTSUPP", what, "kernel 6.6's IOMMU_HWPT_ALLOC takes no flags and no driver data "
                    "(both arrived in 6.7)")
    idev = ctx.device_obj(dev_id, f"HWPT_ALLOC dev_id {dev_id}", "iommufd_hwpt_alloc")
    pt = ctx.objects_by_id.get(pt_id)
    if pt is None:
        errno = "EINVAL" if kernel.has(6, 7) else "ENOENT"
        raise _fail(errno, what, f"no object has id {pt_id}; pt_id must name an IOAS, a HWPT_PAGING (nest parent) "
                    f"or a vIOMMU (iommufd_hwpt_alloc)")
    if isinstance(pt, IoasObj):
        plan = _check_paging(ctx, what, idev, pt, flags, data)
    elif isinstance(pt, HwptPaging) and kernel.has(6, 7):
        plan = _check_nested_on_parent(what, idev, pt, flags, data)
    elif isinstance(pt, ViommuObj) and kernel.has(6, 13):
        plan = _check_nested_on_viommu(what, idev, pt, flags, data)
    else:
        allowed = "an IOAS" if not kernel.has(6, 7) else "an IOAS, a HWPT_PAGING or a vIOMMU"
        raise _fail("EINVAL" if kernel.has(6, 7) else "ENOENT", what,
                    f"pt_id {pt_id} is a {pt.type.value}; it must be {allowed} (iommufd_hwpt_alloc)")
    return plan


def check_fault(ctx: Any, flags: HwptFlag, fault_id: int | None, what: str) -> FaultObj | None:
    """The FAULT object FAULT_ID_VALID names, looked up after the domain exists as
    ``iommufd_hwpt_alloc`` does (ENOENT if ``fault_id`` names none)."""
    if not flags & HwptFlag.FAULT_ID_VALID:
        return None
    fault = ctx.objects_by_id.get(fault_id) if fault_id is not None else None
    if not isinstance(fault, FaultObj):
        raise _fail("ENOENT", what, f"fault_id {fault_id} names no FAULT object; allocate one with "
                    "fault_queue_alloc() (iommufd_get_fault)")
    return fault


def _check_paging(ctx: Any, what: str, idev: DeviceObj, ioas: IoasObj, flags: HwptFlag, data: HwptData) -> HwptPlan:
    """``iommufd_hwpt_paging_alloc`` then the driver's ``domain_alloc_paging_flags``."""
    kernel: Kernel = ctx.kernel
    drv = idev.driver
    if (int(flags) or data is not HwptData.NONE) and not drv.paging_flags_op:
        raise _fail("EOPNOTSUPP", what, f"the {drv.name} driver has no domain_alloc_paging_flags, so it takes neither "
                    "flags nor driver data (iommufd_hwpt_paging_alloc)")
    valid = paging_flags_valid(kernel)
    if int(flags) & ~int(valid):
        raise _fail("EOPNOTSUPP", what, f"flags {HwptFlag(int(flags) & ~int(valid)).text} are not valid for a paging "
                    f"HWPT in kernel {kernel.value}; valid: {valid.text} (iommufd_hwpt_paging_alloc)")
    if flags & HwptFlag.DIRTY_TRACKING and not dirty_capable(idev.platform):
        raise _fail("EOPNOTSUPP", what, f"device {idev.device.name!r} has no IOMMU_CAP_DIRTY_TRACKING "
                    f"({_plat(idev)}'s IOMMU_GET_HW_INFO reports no IOMMU_HW_CAP_DIRTY_TRACKING) "
                    "(iommufd_hwpt_paging_alloc)")
    if kernel.has(6, 15) and flags & HwptFlag.FAULT_ID_VALID and flags & HwptFlag.NEST_PARENT:
        raise _fail("EOPNOTSUPP", what, "a nest parent may not carry a fault queue: faults are reported on the "
                    "nested HWPT (iommufd_hwpt_paging_alloc, since 6.15)")
    if data is not HwptData.NONE:
        raise _fail("EOPNOTSUPP", what, f"driver data {data.name} makes a nested HWPT; a paging HWPT on an IOAS takes "
                    f"none ({drv.paging_source})")
    refusal = drv.paging_refusal(flags, idev.platform)
    if refusal is not None:
        raise _fail("EOPNOTSUPP", what, refusal)
    return HwptPlan("paging", idev, flags, data, ioas=ioas)


def _check_nested_on_parent(what: str, idev: DeviceObj, parent: HwptPaging, flags: HwptFlag, data: HwptData) -> HwptPlan:
    """``iommufd_hwpt_nested_alloc`` then the driver's ``domain_alloc_nested``."""
    drv = idev.driver
    bare = HwptFlag(int(flags) & ~int(HwptFlag.FAULT_ID_VALID))
    if int(bare) & ~int(HwptFlag.PASID) or data is HwptData.NONE or not drv.nests_on_parent:
        why = ("a nested HWPT takes only FAULT_ID_VALID and PASID" if int(bare) & ~int(HwptFlag.PASID)
               else "a nested HWPT needs driver data (data_type and data_len)" if data is HwptData.NONE
               else f"the {drv.name} driver has no domain_alloc_nested: it nests through a vIOMMU; allocate one "
                    "with viommu_alloc and pass its id as pt_id")
        raise _fail("EOPNOTSUPP", what, f"{why} (iommufd_hwpt_nested_alloc)")
    if parent.auto_domain or not parent.nest_parent or parent.driver is not drv:
        why = ("parent HWPT {0} was made automatically at attach; only a HWPT allocated with NEST_PARENT can be a parent"
               if parent.auto_domain else
               "parent HWPT {0} was not allocated with NEST_PARENT" if not parent.nest_parent else
               "parent HWPT {0} belongs to another IOMMU driver")
        raise _fail("EINVAL", what, why.format(parent.id) + " (iommufd_hwpt_nested_alloc)")
    if int(bare) & ~int(drv.nested_flags):
        raise _fail("EOPNOTSUPP", what, f"{drv.nested_source} accepts flags {drv.nested_flags.text} only")
    if data is not drv.nested_data:
        raise _fail("EOPNOTSUPP", what, f"{drv.name} nests {drv.nested_data.name} data, not {data.name} ({drv.nested_source})")
    return HwptPlan("nested", idev, flags, data, parent=parent)


def _check_nested_on_viommu(what: str, idev: DeviceObj, viommu: ViommuObj, flags: HwptFlag, data: HwptData) -> HwptPlan:
    """``iommufd_hwpt_alloc``'s vIOMMU branch, then ``iommufd_viommu_alloc_hwpt_nested``."""
    if viommu.iommu != _iommu(idev):
        raise _fail("EINVAL", what, f"vIOMMU {viommu.id} is a slice of IOMMU {viommu.iommu!r}, but device "
                    f"{idev.device.name!r} sits behind {_iommu(idev)!r} (iommufd_hwpt_alloc)")
    bare = HwptFlag(int(flags) & ~int(HwptFlag.FAULT_ID_VALID))
    if int(bare) & ~int(HwptFlag.PASID) or data is HwptData.NONE:
        why = "only FAULT_ID_VALID and PASID" if int(bare) & ~int(HwptFlag.PASID) else "driver data"
        raise _fail("EOPNOTSUPP", what, f"a nested HWPT on a vIOMMU takes {why} (iommufd_viommu_alloc_hwpt_nested)")
    drv = viommu.driver
    if int(bare) & ~int(drv.nested_flags):
        raise _fail("EOPNOTSUPP", what, f"{drv.nested_source} accepts flags {drv.nested_flags.text} only")
    if data is not drv.nested_data:
        raise _fail("EOPNOTSUPP", what, f"{drv.name} nests {drv.nested_data.name} data, not {data.name} ({drv.nested_source})")
    return HwptPlan("nested", idev, flags, data, viommu=viommu)


def _plat(idev: DeviceObj) -> str:
    return f"platform {idev.platform.name!r}" if idev.platform is not None else "its IOMMU"


def _iommu(idev: DeviceObj) -> str:
    """The physical IOMMU instance a device sits behind (one per platform in the model)."""
    return idev.platform.name if idev.platform is not None else f"iommu of {idev.device.name}"


def make_nested(new_id: int, plan: HwptPlan) -> HwptNested:
    """The HWPT_NESTED a checked plan makes; its parent is the vIOMMU's when made through one."""
    parent_id = plan.parent.id if plan.parent is not None else plan.viommu.hwpt_id  # type: ignore[union-attr]
    driver = plan.viommu.driver if plan.viommu is not None else plan.idev.driver
    return HwptNested(new_id, parent_id, plan.viommu.id if plan.viommu is not None else None, plan.data, plan.flags,
                      driver, None)


iommu_of = _iommu
