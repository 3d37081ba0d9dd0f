"""Devices and the reserved regions the IOMMU driver reports for them.

A device is what ``attach`` brings to an IOAS: an aperture (or a set of POWER-style windows)
outside which no IOVA may be used, a page-size bitmap, and reserved regions typed as Linux's
``enum iommu_resv_type`` (include/linux/iommu.h).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable, Union

from iommu_lab.core.enums import member_of
from iommu_lab.core.ranges import IovaRange, RangeSet, check_u64, fmt_addr

__all__ = ["ResvType", "ReservedRegion", "Device", "pgsizes_list", "check_pgsizes"]


class ResvType(enum.Enum):
    """Linux reserved-region types (``enum iommu_resv_type``), by the names this project uses.

    sysfs ``reserved_regions`` prints both ``MSI`` and ``SW_MSI`` as ``msi``
    (drivers/iommu/iommu.c ``iommu_group_resv_type_string``); ``sysfs_name`` gives that text.
    """

    DIRECT = "direct"
    DIRECT_RELAXABLE = "direct-relaxable"
    RESERVED = "reserved"
    MSI = "msi"
    SW_MSI = "sw-msi"

    @property
    def sysfs_name(self) -> str:
        return "msi" if self is ResvType.SW_MSI else self.value

    @property
    def becomes_hole(self) -> bool:
        """Whether iommufd reserves it at attach: every type but DIRECT_RELAXABLE
        (io_pagetable.c ``iopt_table_enforce_dev_resv_regions``)."""
        return self is not ResvType.DIRECT_RELAXABLE

    @classmethod
    def parse(cls, value: Union[str, "ResvType"]) -> "ResvType":
        """A type from its Linux name (``"msi"``, ``"sw_msi"`` or ``"sw-msi"``)."""
        return member_of(cls, value, "reserved-region type", underscores=True, non_text=TypeError)


@dataclass(frozen=True, slots=True)
class ReservedRegion:
    """A reserved IOVA region ``[start, last]`` (inclusive, as sysfs prints it) of one type."""

    start: int
    last: int
    type: ResvType = ResvType.RESERVED

    def __post_init__(self) -> None:
        IovaRange(self.start, self.last)  # validates bounds and order
        object.__setattr__(self, "type", ResvType.parse(self.type))

    @property
    def range(self) -> IovaRange:
        return IovaRange(self.start, self.last)

    @property
    def size(self) -> int:
        return self.last - self.start + 1

    def __str__(self) -> str:
        return f"{fmt_addr(self.start)}..{fmt_addr(self.last)} {self.type.value}"

    def __repr__(self) -> str:
        return f"ReservedRegion({self.start:#x}, {self.last:#x}, {self.type.value!r})"


def check_pgsizes(pgsizes: int, name: str = "pgsizes") -> int:
    """Validate a page-size bitmap as the kernel's ``pgsize_bitmap``: non-zero, each bit a size."""
    pgsizes = check_u64(pgsizes, name)
    if pgsizes == 0:
        raise ValueError(f"{name} 0x0 has no page size; set bit n for each supported 2^n-byte page (e.g. 0x40201000 = 4K|2M|1G)")
    return pgsizes


def pgsizes_list(pgsizes: int) -> list[int]:
    """The page sizes in a bitmap, smallest first: ``0x40201000`` → ``[4096, 2 MiB, 1 GiB]``."""
    return [1 << b for b in range(64) if pgsizes >> b & 1]


@dataclass(frozen=True)
class Device:
    """A device as an IOMMU driver describes it to iommufd at attach.

    Parameters
    ----------
    name : str
        A label, used as the *owner* of the reservations it causes.
    aperture : IovaRange, RangeSet or sequence of IovaRange
        Usable IOVAs: the domain aperture ``[aperture_start, aperture_end]``, or several
        windows (POWER TCE windows) — everything outside becomes reserved at attach.
        Windows are kept as separate objects even where they touch: on POWER each is its
        own TCE table, so no mapping may span two (Gibson's permitted-window rule).
    pgsizes : int
        The domain's page-size bitmap (``domain->pgsize_bitmap``).
    reserved : iterable of ReservedRegion
        Regions the driver reports (``iommu_get_resv_regions``).
    format : str or None
        Name of the page-table format its paging domain uses (see ``iommu_lab.formats``).
    platform : str or None
        The catalogue platform it came from, if any.
    """

    name: str
    aperture: Union[IovaRange, RangeSet, tuple] = field(default_factory=lambda: (IovaRange(0, (1 << 64) - 1),))
    pgsizes: int = 0x1000
    reserved: tuple[ReservedRegion, ...] = ()
    format: str | None = None
    platform: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"device name must be a non-empty string, got {self.name!r}")
        ap = self.aperture
        if isinstance(ap, (IovaRange, str)):
            ap = [ap]
        windows = sorted(r if isinstance(r, IovaRange) else (IovaRange.parse(r) if isinstance(r, str) else IovaRange(*r)) for r in ap)
        if not windows:
            raise ValueError(f"device {self.name!r} has an empty aperture; it could map nothing")
        for a, b in zip(windows, windows[1:]):
            if a.overlaps(b):
                raise ValueError(f"device {self.name!r} windows {a} and {b} overlap; windows must be disjoint")
        object.__setattr__(self, "aperture", tuple(windows))
        check_pgsizes(self.pgsizes, f"device {self.name!r} pgsizes")
        regions: Iterable = self.reserved
        regions = tuple(r if isinstance(r, ReservedRegion) else ReservedRegion(*r) for r in regions)
        object.__setattr__(self, "reserved", regions)

    @property
    def windows(self) -> tuple[IovaRange, ...]:
        """The permitted windows, each its own object (unmerged even where they touch)."""
        return self.aperture

    @property
    def permitted(self) -> RangeSet:
        """Every usable IOVA as one canonical set (touching windows merged)."""
        return RangeSet(self.aperture)

    @property
    def min_pgsize(self) -> int:
        """Smallest page size: ``1 << __ffs(pgsize_bitmap)``, what attach raises alignment to."""
        return self.pgsizes & -self.pgsizes

    def __repr__(self) -> str:
        return (
            f"Device({self.name!r}, aperture=[{', '.join(str(w) for w in self.aperture)}], pgsizes={self.pgsizes:#x}, "
            f"reserved=[{', '.join(str(r) for r in self.reserved)}])"
        )
