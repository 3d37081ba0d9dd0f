"""IOMMU_VIOMMU_ALLOC and IOMMU_VDEVICE_ALLOC: a per-VM slice of a physical IOMMU and the
virtual-id -> device table it keeps.

Mirrors drivers/iommu/iommufd/viommu.c. Both ioctls arrived in 6.13; an older kernel has no op
for them and ``iommufd_fops_ioctl`` answers ENOTTY. ``iommufd_viommu_alloc_ioctl``: ``flags`` != 0 or type
DEFAULT → EOPNOTSUPP; ``dev_id`` not a device → ENOENT; the driver has no vIOMMU of that type
(``get_viommu_size`` answers 0) → EOPNOTSUPP; ``hwpt_id`` not a HWPT_PAGING → ENOENT
(``iommufd_get_hwpt_paging``); the HWPT not a nest parent → EINVAL; then the driver's
``viommu_init`` (SMMUv3 ``arm_vsmmu_init``: the parent must belong to the same SMMU → EINVAL).
``iommufd_vdevice_alloc_ioctl``: ``virt_id`` above 64 bits → EINVAL; vIOMMU or device unknown →
ENOENT; the device behind another IOMMU than the vIOMMU's → EINVAL; the device already has a
vDEVICE → EEXIST; the virtual id already taken in this vIOMMU → EEXIST (``xa_cmpxchg``).
"""

from __future__ import annotations

from typing import Any

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX
from iommu_lab.iommufd.hwpt import iommu_of
from iommu_lab.iommufd.objects import DeviceObj, HwptPaging, VdeviceObj, ViommuObj, ViommuType

__all__ = ["check_viommu_alloc", "check_vdevice_alloc"]


def check_viommu_alloc(ctx: Any, dev_id: int, hwpt_id: int, vtype: ViommuType, flags: int) -> tuple[DeviceObj, HwptPaging]:
    """Every check of IOMMU_VIOMMU_ALLOC in the kernel's order (see the module docstring)."""
    what = f"VIOMMU_ALLOC (dev_id={dev_id}, hwpt_id={hwpt_id}, type={vtype.name})"
    if not ctx.kernel.has(6, 13):
        raise IommuError("ENOTTY", f"{what}: IOMMU_VIOMMU_ALLOC arrived in 6.13; kernel {ctx.kernel.value} "
                         "has no such ioctl (iommufd_fops_ioctl finds no op for it)")
    if flags or vtype is ViommuType.DEFAULT:
        why = f"flags {flags:#x} must be 0" if flags else "type DEFAULT allocates nothing; name the driver's type"
        raise IommuError("EOPNOTSUPP", f"{what}: {why} (iommufd_viommu_alloc_ioctl)")
    idev = ctx.device_obj(dev_id, what, "iommufd_viommu_alloc_ioctl")
    drv = idev.driver
    if drv.viommu_type is not vtype:
        has = f"its only vIOMMU type is {drv.viommu_type.name}" if drv.viommu_type else "it has no vIOMMU"
        raise IommuError("EOPNOTSUPP", f"{what}: the {drv.name} driver allocates no {vtype.name} vIOMMU; {has} "
                         "(get_viommu_size answers 0)")
    hwpt = ctx.objects_by_id.get(hwpt_id)
    if not isinstance(hwpt, HwptPaging):
        kind = hwpt.type.value if hwpt is not None else "nothing"
        raise IommuError("ENOENT", f"{what}: hwpt_id {hwpt_id} is {kind}, not a HWPT_PAGING (iommufd_get_hwpt_paging)")
    if not hwpt.nest_parent:
        raise IommuError("EINVAL", f"{what}: HWPT {hwpt_id} was not allocated with NEST_PARENT; a vIOMMU wraps a nest "
                         "parent (iommufd_viommu_alloc_ioctl)")
    if hwpt.driver is not drv or getattr(hwpt, "iommu", None) != iommu_of(idev):
        raise IommuError("EINVAL", f"{what}: the nest parent HWPT {hwpt_id} belongs to another IOMMU than device "
                         f"{idev.device.name!r} ({drv.name} viommu_init)")
    return idev, hwpt


def check_vdevice_alloc(ctx: Any, viommu_id: int, dev_id: int, virt_id: int) -> tuple[ViommuObj, DeviceObj]:
    """Every check of IOMMU_VDEVICE_ALLOC in the kernel's order (see the module docstring)."""
    what = f"VDEVICE_ALLOC (viommu_id={viommu_id}, dev_id={dev_id}, virt_id={virt_id:#x})"
    if not ctx.kernel.has(6, 13):
        raise IommuError("ENOTTY", f"{what}: IOMMU_VDEVICE_ALLOC arrived in 6.13; kernel {ctx.kernel.value} "
                         "has no such ioctl (iommufd_fops_ioctl finds no op for it)")
    if virt_id < 0 or virt_id > U64_MAX:
        raise IommuError("EINVAL", f"{what}: virt_id must fit 64 bits (iommufd_vdevice_alloc_ioctl)")
    viommu = ctx.objects_by_id.get(viommu_id)
    if not isinstance(viommu, ViommuObj):
        raise IommuError("ENOENT", f"{what}: viommu_id {viommu_id} names no vIOMMU (iommufd_get_viommu)")
    idev = ctx.device_obj(dev_id, what, "iommufd_vdevice_alloc_ioctl")
    if viommu.iommu != iommu_of(idev):
        raise IommuError("EINVAL", f"{what}: device {idev.device.name!r} sits behind {iommu_of(idev)!r}, the vIOMMU "
                         f"is a slice of {viommu.iommu!r} (iommufd_vdevice_alloc_ioctl)")
    for obj in ctx.objects_by_id.values():
        if isinstance(obj, VdeviceObj) and obj.dev_id == dev_id:
            raise IommuError("EEXIST", f"{what}: device {idev.device.name!r} already has vDEVICE {obj.id} "
                             f"(virt_id {obj.virt_id:#x}) (iommufd_vdevice_alloc_ioctl)")
    if virt_id in viommu.vdevs:
        raise IommuError("EEXIST", f"{what}: virt_id {virt_id:#x} is already vDEVICE {viommu.vdevs[virt_id]} of vIOMMU "
                         f"{viommu_id} (iommufd_vdevice_alloc_ioctl)")
    return viommu, idev
