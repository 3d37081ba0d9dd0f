"""A bound device's attach, replace and detach, per device and per PASID.

Mirrors drivers/iommu/iommufd/device.c. ``iommufd_device_change_pt``: ``pt_id`` unknown →
ENOENT; an IOAS gets an automatic HWPT (``iommufd_device_auto_get_domain``: reuse the first
compatible automatic HWPT of that IOAS — one that answers EINVAL is skipped — or allocate one);
a HWPT is used as it is; anything else → EINVAL. ``iommufd_hw_pagetable_attach``: the device
already attached at that PASID → EBUSY to the same HWPT, EINVAL to another (use replace);
``iommufd_hwpt_pasid_compat`` (a PASID attach needs a PASID-capable HWPT, and so does the RID
once PASIDs are attached, and the other way round) → EINVAL; the RID attach reserves the
device's regions in the HWPT's IOAS (``iommufd_device_attach_reserved_iova``, EADDRINUSE on a
conflict); then the driver attach: a domain of another IOMMU → EINVAL
(``iommu_attach_group``), a dirty-tracking domain on an IOMMU without dirty tracking → EINVAL
(intel ``paging_domain_compatible``, amd ``attach_device``), a PASID at or past the device's
``max_pasids`` → EINVAL (``iommu_attach_device_pasid``). ``iommufd_device_do_replace``: not
attached → EINVAL; the same HWPT → nothing; a different IOAS moves the reserved regions
(``iommufd_group_do_replace_reserved_iova``). Detach of nothing does nothing; an automatic HWPT
goes away with its last device.
"""

from __future__ import annotations

from typing import Any

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX
from iommu_lab.hardware.device import Device
from iommu_lab.iommufd.drivers import dirty_capable
from iommu_lab.iommufd.hwpt import iommu_of
from iommu_lab.iommufd.objects import NO_PASID, DeviceObj, HwptFlag, HwptNested, HwptPaging

__all__ = ["check_pasid_compat", "check_driver_attach", "regions_device", "domain_device"]

#: Every page size: the pseudo-device that carries only a device's reserved regions must not
#: narrow the IOAS's page sizes or raise its alignment.
_ALL_SIZES = U64_MAX


def regions_device(idev: DeviceObj) -> Device:
    """The device's reserved regions as the IOAS sees them at a RID attach: owner = the device,
    no aperture of its own (the aperture belongs to the domain)."""
    return Device(idev.device.name, pgsizes=_ALL_SIZES, reserved=idev.device.reserved)


def domain_device(pseudo: str, idev: DeviceObj, flags: HwptFlag = HwptFlag.NONE) -> Device:
    """A HWPT_PAGING's domain as the IOAS sees it at ``iopt_table_add_domain``: the aperture the
    device's IOMMU gives, its page sizes and the page-table format the driver picks for
    ``flags`` (a nest parent or a dirty-tracking domain is the second-stage table on VT-d and
    AMD, a nest parent the stage-2 table on SMMUv3); owner = the HWPT."""
    d = idev.device
    fmt = idev.driver.domain_format(flags, idev.platform) if idev.platform is not None else None
    return Device(pseudo, aperture=d.windows, pgsizes=d.pgsizes, format=fmt or d.format, platform=d.platform)


def _users(ctx: Any, hwpt_id: int) -> list[tuple[int, int]]:
    return [(o.id, p) for o in ctx.objects_by_id.values() if isinstance(o, DeviceObj)
            for p, h in o.attached.items() if h == hwpt_id]


def check_pasid_compat(ctx: Any, idev: DeviceObj, pasid: int, hwpt: Any, what: str) -> None:
    """``iommufd_hwpt_pasid_compat``: PASID attaches need a HWPT allocated with ALLOC_PASID; so does
    a RID domain while PASIDs are attached, and a PASID attach next to a RID domain without it."""
    if pasid == NO_PASID:
        others = sorted(p for p in idev.attached if p != NO_PASID)
        if not hwpt.pasid_compat and others:
            raise IommuError("EINVAL", f"{what}: PASIDs {others} are attached, so the RID needs a HWPT allocated "
                             f"with the PASID flag; HWPT {hwpt.id} was not (iommufd_hwpt_pasid_compat)")
        return
    if not hwpt.pasid_compat:
        raise IommuError("EINVAL", f"{what}: HWPT {hwpt.id} was not allocated with the PASID flag, so it cannot "
                         f"translate a PASID (iommufd_hwpt_pasid_compat)")
    rid = idev.attached.get(NO_PASID)
    if rid is not None and not ctx.objects_by_id[rid].pasid_compat:
        raise IommuError("EINVAL", f"{what}: the RID is attached to HWPT {rid}, which was not allocated with the "
                         f"PASID flag; PASIDs may be attached only beside a PASID-capable RID domain "
                         f"(iommufd_hwpt_pasid_compat)")


def check_driver_attach(idev: DeviceObj, pasid: int, hwpt: HwptPaging | HwptNested, ctx: Any, what: str) -> None:
    """The driver's side of an attach (after iommufd's own checks), each EINVAL."""
    iommu = iommu_of(idev)
    paging = hwpt if isinstance(hwpt, HwptPaging) else ctx.objects_by_id[hwpt.parent_id]
    hw_iommu = paging.iommu
    if hwpt.driver is not idev.driver:
        raise IommuError("EINVAL", f"{what}: HWPT {hwpt.id} is a domain of IOMMU {hw_iommu!r} ({hwpt.driver.name}); "
                         f"device {idev.device.name!r} sits behind {iommu!r} (iommu_attach_group: domain owner)")
    if hw_iommu != iommu and not (idev.driver.spans_iommus and isinstance(hwpt, HwptPaging)):
        raise IommuError("EINVAL", f"{what}: HWPT {hwpt.id} is a domain of IOMMU {hw_iommu!r}; device "
                         f"{idev.device.name!r} sits behind {iommu!r} and a {idev.driver.name} domain serves one "
                         f"IOMMU instance (iommu_attach_group: domain owner)")
    if paging.flags & HwptFlag.DIRTY_TRACKING and not dirty_capable(idev.platform):
        raise IommuError("EINVAL", f"{what}: HWPT {paging.id} tracks dirty pages and device {idev.device.name!r}'s "
                         f"IOMMU cannot (dirty tracking is enforced at attach: intel paging_domain_compatible, "
                         f"amd_iommu_attach_device)")
    width_dom = getattr(paging.platform, "ias", None)
    width_dev = getattr(idev.platform, "ias", None)
    if hw_iommu != iommu and width_dom and width_dev and width_dom > width_dev:
        raise IommuError("EINVAL", f"{what}: HWPT {paging.id} is a {width_dom}-bit domain and device "
                         f"{idev.device.name!r}'s IOMMU translates {width_dev} bits (intel paging_domain_compatible: "
                         "domain gaw above the IOMMU's agaw)")
    if pasid != NO_PASID and pasid >= idev.max_pasids:
        limit = (f"its max_pasids is {idev.max_pasids} (PASIDs 1..{idev.max_pasids - 1})" if idev.max_pasids
                 else "its IOMMU has no PASID support")
        raise IommuError("EINVAL", f"{what}: PASID {pasid} is out of range for device {idev.device.name!r}: {limit} "
                         f"(iommu_attach_device_pasid)")


def users_of(ctx: Any, hwpt_id: int) -> list[tuple[int, int]]:
    """The (device id, PASID) pairs attached to a HWPT."""
    return _users(ctx, hwpt_id)
