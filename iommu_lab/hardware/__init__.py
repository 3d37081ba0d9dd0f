"""What the hardware is: page-table format descriptors, entry layouts, platforms and devices.

Only this package knows which IOMMU family a format or a platform belongs to; every layer
above asks a descriptor for a feature instead of testing a family name.
"""

from iommu_lab.hardware import formats
from iommu_lab.hardware.device import Device, ReservedRegion, ResvType
from iommu_lab.hardware.platform import (
           IommuFamily,
           NestingSupport,
           Platform,
           PlatformInfo,
           platforms,
)

__all__ = ["Device", "IommuFamily", "NestingSupport", "Platform", "PlatformInfo", "ReservedRegion",
           "ResvType", "formats", "platforms"]
