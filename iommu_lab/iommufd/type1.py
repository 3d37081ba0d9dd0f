"""VFIO type1 behaviour: real ``vfio_iommu_type1`` and iommufd's VFIO compatibility layer.

One ``IOAS`` class models all of them; ``Semantics`` picks the rule book:

========================  =====================================================================
``"iommufd"``             IOMMU_IOAS_MAP/UNMAP/COPY on an iommufd IOAS . The default.
``"vfio-compat"``         VFIO_TYPE1v2_IOMMU container ioctls served by iommufd
                          (drivers/iommu/iommufd/vfio_compat.c): same IOAS underneath, but
                          MAP_DMA is always FIXED and does not require READ/WRITE, an empty
                          UNMAP_DMA succeeds with 0 bytes, and with huge pages off the range is
                          cut at its ends first.
``"vfio-compat-v1"``      VFIO_TYPE1_IOMMU on iommufd: ``iopt_disable_large_pages`` at set-up
                          (alignment PAGE_SIZE), so any page-aligned sub-range unmaps exactly.
``"type1"``               real drivers/vfio/vfio_iommu_type1.c in v2 mode: EINVAL instead of
                          EADDRINUSE/EOVERFLOW, an atomic bisect check on unmap, a 65535 mapping limit.
``"type1-v1"``            real type1 in v1 mode: no bisect check, whole mappings go.
========================  =====================================================================

The functions here hold only what differs, written against the public methods of the IOVA
space (``io_pagetable.IoPagetable``) that iommufd's own rules use too; ``ioas.py`` picks the rule
book per operation. Real type1 cites drivers/vfio/vfio_iommu_type1.c (``vfio_dma_do_map``,
``vfio_dma_do_unmap``, ``vfio_iommu_aper_conflict``, ``vfio_iommu_resv_conflict``), the compat
layer drivers/iommu/iommufd/vfio_compat.c (``iommufd_vfio_unmap_dma``).
"""

from __future__ import annotations

import enum
from typing import Iterable

from iommu_lab.core.enums import member_of
from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, fmt_addr, fmt_size
from iommu_lab.hardware.device import Device
from iommu_lab.iommufd.area import Area, Prot, Reservation
from iommu_lab.iommufd.domains import pgsize_bitmap
from iommu_lab.iommufd.io_pagetable import IoPagetable
from iommu_lab.iommufd.pages import PAGE_SIZE, alloc_pages

__all__ = [
    "Semantics",
    "DmaEntries",
    "DMA_ENTRY_LIMIT",
    "TYPE1_OVERFLOW_ERRNO",
    "TYPE1_OVERFLOW_ERRNO_BEFORE_6_18",
    "type1_overflow_errno",
    "type1_pgsize",
    "type1_map",
    "type1_unmap",
    "type1_unmap_all",
    "type1_attach_check",
    "compat_unmap",
    "compat_pagesizes",
]

#: vfio_iommu_type1's ``dma_entry_limit`` module parameter default (U16_MAX).
DMA_ENTRY_LIMIT = 65535
#: What type1 answers for a map or unmap whose range wraps past 2^64, by kernel: EINVAL up to
#: the 6.12 long-term kernel; EOVERFLOW since Alex Mastro's overflow series ("vfio/type1:
#: handle DMA map/unmap up to the addressable limit", merged for v6.18), which
#: ``vfio_dma_do_map`` / ``vfio_dma_do_unmap`` now use. The IOAS's ``kernel`` setting picks one.
TYPE1_OVERFLOW_ERRNO = "EOVERFLOW"
TYPE1_OVERFLOW_ERRNO_BEFORE_6_18 = "EINVAL"


def type1_overflow_errno(kernel_has_6_18: bool) -> str:
    """The errno of a wrapping type1 map/unmap on a kernel with or without the v6.18 series."""
    return TYPE1_OVERFLOW_ERRNO if kernel_has_6_18 else TYPE1_OVERFLOW_ERRNO_BEFORE_6_18


class Semantics(enum.Enum):
    """Which kernel interface the IOAS answers as (see the module docstring)."""

    IOMMUFD = "iommufd"
    VFIO_COMPAT = "vfio-compat"
    VFIO_COMPAT_V1 = "vfio-compat-v1"
    TYPE1 = "type1"
    TYPE1_V1 = "type1-v1"

    @classmethod
    def parse(cls, value: "str | Semantics") -> "Semantics":
        return member_of(cls, value, "semantics", non_text=TypeError)

    @property
    def is_real_type1(self) -> bool:
        return self in (Semantics.TYPE1, Semantics.TYPE1_V1)

    @property
    def is_compat(self) -> bool:
        return self in (Semantics.VFIO_COMPAT, Semantics.VFIO_COMPAT_V1)

    @property
    def is_v1(self) -> bool:
        return self in (Semantics.VFIO_COMPAT_V1, Semantics.TYPE1_V1)


# -- real vfio_iommu_type1 -----------------------------------------------------------------
class DmaEntries:
    """``iommu->dma_avail``: how many more mappings the container may hold (``dma_entry_limit``)."""

    def __init__(self, limit: int = DMA_ENTRY_LIMIT) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"dma_entry_limit must be an int (vfio_iommu_type1's unsigned int module parameter), "
                            f"got {type(limit).__name__} {str(limit)[:40]!r}")
        if not 0 <= limit <= 0xFFFF_FFFF:
            raise ValueError(f"dma_entry_limit {limit} must be 0..0xffffffff, the range of the unsigned int module "
                             f"parameter (default {DMA_ENTRY_LIMIT})")
        self.limit = limit
        self.avail = limit

    def __repr__(self) -> str:
        return f"DmaEntries({self.avail}/{self.limit} free)"


def type1_pgsize(devices: Iterable[Device]) -> int:
    """Smallest IOMMU page of the container, never below PAGE_SIZE: ``vfio_pgsize_bitmap``
    ANDs the domains' bitmaps and folds sub-PAGE_SIZE bits up to PAGE_SIZE."""
    bitmap = pgsize_bitmap(devices)
    low = bitmap & -bitmap if bitmap else PAGE_SIZE
    return max(low, PAGE_SIZE)


def type1_map(iopt: IoPagetable, entries: DmaEntries, length: int, iova: int | None, user_va: int, prot: Prot,
              *, overflow_errno: str = TYPE1_OVERFLOW_ERRNO) -> Area:
    """VFIO_IOMMU_MAP_DMA on real type1, checks in ``vfio_dma_do_map`` order.

    size_t fit → EINVAL; ``size == 0`` → EINVAL; no READ/WRITE → EINVAL; ``(size | iova |
    vaddr)`` not a multiple of the smallest IOMMU page → EINVAL; IOVA or VA wrap → EINVAL;
    any overlap → EEXIST (checked *before* the range, unlike iommufd); ``dma_avail == 0`` →
    ENOSPC; range not inside one ``iova_list`` entry → EINVAL (``vfio_iommu_iova_dma_valid``).
    """
    if iova is None:
        raise ValueError("VFIO_IOMMU_MAP_DMA has no automatic IOVA; give iova= (type1 maps are always fixed)")
    for name, value in (("iova", iova), ("size", length), ("vaddr", user_va)):
        if value > U64_MAX:
            raise IommuError("EINVAL", f"{name} {fmt_addr(value)} does not fit the 64-bit dma_addr_t/size_t (vfio_dma_do_map)")
    if length == 0:
        raise IommuError("EINVAL", "map size 0: VFIO_IOMMU_MAP_DMA needs at least one page (vfio_dma_do_map)")
    if not prot & Prot.RW:
        raise IommuError("EINVAL", "map with neither VFIO_DMA_MAP_FLAG_READ nor WRITE (vfio_dma_do_map)")
    devices = iopt.domains.devices
    pgsize = type1_pgsize(devices)
    if (length | iova | user_va) & (pgsize - 1):
        bad = [f"{n} {fmt_addr(v)}" for n, v in (("iova", iova), ("size", length), ("vaddr", user_va)) if v & (pgsize - 1)]
        raise IommuError(
            "EINVAL", f"{', '.join(bad)} not a multiple of the smallest IOMMU page {fmt_size(pgsize)} (vfio_dma_do_map)"
        )
    if iova + length - 1 > U64_MAX or user_va + length - 1 > U64_MAX:
        raise IommuError(
            overflow_errno,
            f"map of {fmt_addr(length)} bytes at iova {fmt_addr(iova)} / vaddr {fmt_addr(user_va)} wraps past 2^64 "
            f"(vfio_dma_do_map)",
        )
    last = iova + length - 1
    hit = iopt.first_area_overlapping(iova, last)
    if hit is not None:
        raise IommuError("EEXIST", f"map {IovaRange(iova, last)} overlaps the existing mapping {hit.range} (vfio_find_dma)")
    if entries.avail == 0:
        raise IommuError(
            "ENOSPC",
            f"the container already holds dma_entry_limit={entries.limit} mappings; unmap some first (vfio_dma_do_map)",
        )
    pieces = iopt.permitted_pieces()
    if devices and not any(p.start <= iova and last <= p.last for p in pieces):
        raise IommuError(
            "EINVAL",
            f"map {IovaRange(iova, last)} is not inside one valid IOVA range; the container's iova_list is "
            f"{', '.join(str(p) for p in pieces) or 'empty'} (vfio_iommu_iova_dma_valid)",
        )
    pages = alloc_pages(user_va, length, bool(prot & Prot.WRITE))
    area = iopt.insert_areas([(pages, user_va, length)], iova, prot)[0]
    entries.avail -= 1
    return area


def type1_unmap(iopt: IoPagetable, entries: DmaEntries, iova: int, length: int, *, v1: bool,
                overflow_errno: str = TYPE1_OVERFLOW_ERRNO) -> int:
    """VFIO_IOMMU_UNMAP_DMA on real type1 (``vfio_dma_do_unmap``).

    v2 refuses (EINVAL) a range whose first or last IOVA falls inside a mapping that sticks
    out, before removing anything (atomic); v1 stops at a mapping that starts below ``iova``
    (0 bytes) and removes every mapping whose *first* IOVA is covered, entirely. An empty
    range succeeds with 0 bytes.
    """
    pgsize = type1_pgsize(iopt.domains.devices)
    if iova > U64_MAX or length > U64_MAX:
        raise IommuError("EINVAL", f"iova {fmt_addr(iova)} / size {fmt_addr(length)} does not fit 64 bits (vfio_dma_do_unmap)")
    if iova & (pgsize - 1):
        raise IommuError(
            "EINVAL", f"unmap iova {fmt_addr(iova)} is not a multiple of the IOMMU page {fmt_size(pgsize)} (vfio_dma_do_unmap)"
        )
    if length == 0 or length & (pgsize - 1):
        raise IommuError(
            "EINVAL", f"unmap size {fmt_addr(length)} is zero or not a multiple of {fmt_size(pgsize)} (vfio_dma_do_unmap)"
        )
    last = iova + length - 1
    if last > U64_MAX:
        raise IommuError(
            overflow_errno, f"unmap [{fmt_addr(iova)} + {fmt_addr(length)}] wraps past 2^64 (vfio_dma_do_unmap)"
        )
    if not v1:
        first = iopt.find_area(iova)
        if first is not None and first.iova != iova:
            raise IommuError(
                "EINVAL", f"unmap starts at {fmt_addr(iova)} inside mapping {first.range}; type1 v2 cannot split (vfio_dma_do_unmap)"
            )
        end = iopt.find_area(last)
        if end is not None and end.last != last:
            raise IommuError(
                "EINVAL", f"unmap ends at {fmt_addr(last)} inside mapping {end.range}; type1 v2 cannot split (vfio_dma_do_unmap)"
            )
    victims: list[Area] = []
    for area in iopt.areas_overlapping(iova, last):
        if area.iova > last or (v1 and area.iova < iova):
            break
        victims.append(area)
    entries.avail += len(victims)
    return iopt.remove_areas(victims)


def type1_unmap_all(iopt: IoPagetable, entries: DmaEntries) -> int:
    """VFIO_DMA_UNMAP_FLAG_ALL: every mapping goes (``vfio_dma_do_unmap`` with ``unmap_all``)."""
    victims = iopt.areas
    entries.avail += len(victims)
    return iopt.remove_areas(victims)


def type1_attach_check(iopt: IoPagetable, device: Device, new_resv: list[Reservation]) -> None:
    """Attach on real type1: conflicts with existing mappings are EINVAL, not EADDRINUSE, and an
    ``iova_list`` emptied by the new aperture and reserved regions is EINVAL
    (``vfio_iommu_aper_conflict``, ``vfio_iommu_resv_conflict``, ``vfio_iommu_resv_exclude``)."""
    for r in new_resv:
        hit = iopt.first_area_overlapping(r.start, r.last)
        if hit is not None:
            if r.kind == "aperture":
                what, check = "lies outside the new aperture", "vfio_iommu_aper_conflict"
            else:
                what, check = f"overlaps reserved region {r.range}", "vfio_iommu_resv_conflict"
            raise IommuError("EINVAL", f"attach {device.name!r}: existing mapping {hit.range} {what} ({check})")
    if not iopt.permitted_pieces(extra_devices=(device,), extra_resv=new_resv):
        raise IommuError(
            "EINVAL", f"attach {device.name!r} would leave the container no valid IOVA range (vfio_iommu_resv_exclude)"
        )


# -- iommufd's VFIO compatibility ---------------------------------------------------------
def compat_unmap(iopt: IoPagetable, iova: int, length: int) -> int:
    """VFIO_IOMMU_UNMAP_DMA served by iommufd (``iommufd_vfio_unmap_dma``).

    With large pages disabled (TYPE1 v1, or IOMMU_OPTION_HUGE_PAGES=0) the areas are first
    cut at ``iova + size - 1`` and ``iova - 1`` (``iopt_cut_iova``; no cut before 0). A cut that
    fails returns its error, but cuts already made stay (they split an area without changing
    what is mapped). Then ``iopt_unmap_iova``: size 0 → EINVAL, wrap → EOVERFLOW, an area
    sticking out → ENOENT after removing the earlier ones (the bytes already removed are in
    the error's ``unmapped``). An empty range is success with 0 bytes (since afb47765).
    """
    if iova > U64_MAX or length > U64_MAX:
        raise IommuError(
            "EOVERFLOW", f"iova {fmt_addr(iova)} / size {fmt_addr(length)} does not fit the __u64 fields (iommufd_vfio_unmap_dma)"
        )
    if not iopt.huge_pages:
        cuts = [(iova + length - 1) & U64_MAX]
        if iova:
            cuts.append(iova - 1)
        for point in cuts:
            iopt.cut_iova(point)
    if length == 0:
        raise IommuError("EINVAL", "unmap size 0 (iopt_unmap_iova)")
    if iova + length - 1 > U64_MAX:
        raise IommuError("EOVERFLOW", f"unmap [{fmt_addr(iova)} + {fmt_addr(length)}] wraps past 2^64 (iopt_unmap_iova)")
    return iopt.unmap_iova_range(iova, iova + length - 1, empty_ok=True)


def compat_pagesizes(bitmap: int, iova_alignment: int) -> int:
    """VFIO_IOMMU_GET_INFO's ``iova_pgsizes`` served by iommufd (``iommufd_get_pagesizes``): the
    AND of the domains' bitmaps (every bit with no domain); sizes below PAGE_SIZE fold up to
    PAGE_SIZE, as ``vfio_update_pgsize_bitmap`` does; then ``max(bitmap, iova_alignment)``.
    A mock domain's 0x800 becomes 0x1000; no domain gives ``~(PAGE_SIZE - 1)``."""
    if bitmap & (PAGE_SIZE - 1):
        bitmap = (bitmap & ~(PAGE_SIZE - 1) & U64_MAX) | PAGE_SIZE
    return max(bitmap, iova_alignment)
