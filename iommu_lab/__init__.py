"""iommu_lab: faithful models of IOMMU address spaces, page tables, nesting and walks.

Import it as ``import iommu_lab as il``. Models live in small modules named after their
concept; plots in ``iommu_lab.render``; notebook explorers in ``iommu_lab.widgets`` (imported
lazily, so this package works without Jupyter).
"""

from __future__ import annotations

from .device import Device, ReservedRegion, ResvType
from .errors import IommuError
from .platform import IommuFamily, NestingSupport, Platform, PlatformInfo, platforms
from .ranges import EiB, GiB, IovaRange, KiB, MiB, PiB, RangeSet, TiB, U64_MAX, fmt_addr, fmt_size, parse_size

__version__ = "0.1.0"

__all__ = [
    "IovaRange",
    "RangeSet",
    "parse_size",
    "fmt_addr",
    "fmt_size",
    "KiB",
    "MiB",
    "GiB",
    "TiB",
    "PiB",
    "EiB",
    "U64_MAX",
    "IommuError",
    "Device",
    "ReservedRegion",
    "ResvType",
    "platforms",
    "Platform",
    "PlatformInfo",
    "IommuFamily",
    "NestingSupport",
]
