"""IOMMU_GET_HW_INFO on a bound device of a context.

Mirrors drivers/iommu/iommufd/device.c ``iommufd_get_hw_info``: a flag other than
``IOMMU_HW_INFO_FLAG_INPUT_TYPE`` (since 6.16; before it ``flags`` had to be 0) → EOPNOTSUPP;
without that flag the requested type is ``IOMMU_HW_INFO_TYPE_DEFAULT``; ``dev_id`` not a bound
device → ENOENT; then the driver's ``hw_info`` op: a requested type that is neither DEFAULT nor
the driver's own → EOPNOTSUPP (``intel_iommu_hw_info``, ``arm_smmu_hw_info``); a driver without
the op answers type NONE with no data. The registers, ``out_capabilities`` and
``out_max_pasid_log2`` are :func:`iommu_lab.hardware.registers.hw_info`'s. Releases: SMMUv3's
``hw_info`` arrived with its nesting support in 6.13 (type NONE before); ``out_max_pasid_log2``
and the PASID capability bits arrived with PASID attach in 6.15 (0 before).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware.registers import (
    HW_CAP_PCI_PASID_EXEC,
    HW_CAP_PCI_PASID_PRIV,
    HwInfo,
    HwInfoType,
    hw_info,
)

__all__ = ["get_hw_info", "HW_INFO_FLAG_INPUT_TYPE"]

#: ``IOMMU_HW_INFO_FLAG_INPUT_TYPE``: ``in_data_type`` names the type wanted.
HW_INFO_FLAG_INPUT_TYPE = 1 << 0


def _type(value: Any) -> HwInfoType:
    if isinstance(value, HwInfoType):
        return value
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_").removeprefix("IOMMU_HW_INFO_TYPE_")
        if key == "DEFAULT":
            return HwInfoType.NONE
        try:
            return HwInfoType[key]
        except KeyError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return HwInfoType(value)
        except ValueError:
            pass
    else:
        raise TypeError(f"data_type must be a name or a number, got {type(value).__name__} {str(value)[:40]!r}")
    allowed = ", ".join(f"{t.name}={int(t)}" for t in HwInfoType)
    raise ValueError(f"unknown hw_info data_type {str(value)[:40]!r}; allowed: DEFAULT=0, {allowed}")


def get_hw_info(ctx: Any, dev_id: Any, *, data_type: Any = None, flags: Any = 0) -> HwInfo:
    """IOMMU_GET_HW_INFO (rules in the module docstring); ``data_type`` given sets
    ``IOMMU_HW_INFO_FLAG_INPUT_TYPE``."""
    if isinstance(flags, bool) or not isinstance(flags, int):
        raise TypeError(f"flags must be an int, got {type(flags).__name__} {str(flags)[:40]!r}")
    if not 0 <= flags <= 0xFFFF_FFFF:
        raise ValueError(f"flags {flags:#x} does not fit the __u32 flags of IOMMU_GET_HW_INFO")
    if isinstance(dev_id, bool) or not isinstance(dev_id, int):
        raise TypeError(f"dev_id must be an object id (int), got {type(dev_id).__name__} {str(dev_id)[:40]!r}")
    wanted = _type(data_type) if data_type is not None else None
    if wanted is not None:
        flags |= HW_INFO_FLAG_INPUT_TYPE
    kernel = ctx.kernel
    valid = HW_INFO_FLAG_INPUT_TYPE if kernel.has(6, 16) else 0
    what = f"GET_HW_INFO (dev_id={dev_id}, flags={flags:#x})"
    if flags & ~valid:
        allowed = "IOMMU_HW_INFO_FLAG_INPUT_TYPE (0x1)" if valid else f"none in kernel {kernel.value} (INPUT_TYPE arrived in 6.16)"
        raise IommuError("EOPNOTSUPP", f"{what}: flags {flags & ~valid:#x} unknown; allowed: {allowed} "
                         "(iommufd_get_hw_info)")
    idev = ctx.device_obj(dev_id, what, "iommufd_get_hw_info")
    platform = idev.platform
    if platform is None:
        return HwInfo(idev.device.name, HwInfoType.NONE, MappingProxyType({}), 0, 0)
    info = hw_info(platform)
    if info.type is HwInfoType.ARM_SMMUV3 and not kernel.has(6, 13):
        info = dataclasses.replace(info, type=HwInfoType.NONE, data=MappingProxyType({}))
    if wanted not in (None, HwInfoType.NONE) and info.type is not HwInfoType.NONE and wanted is not info.type:
        raise IommuError("EOPNOTSUPP", f"{what}: the {idev.driver.name} driver reports {info.type.name}, not "
                         f"{wanted.name} (its hw_info op refuses any type but DEFAULT and its own)")
    if not kernel.has(6, 15):
        caps = info.out_capabilities & ~(HW_CAP_PCI_PASID_EXEC | HW_CAP_PCI_PASID_PRIV)
        info = dataclasses.replace(info, out_capabilities=caps, out_max_pasid_log2=0)
    return info
