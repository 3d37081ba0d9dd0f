"""VFIO type1 behaviour: real ``vfio_iommu_type1`` and iommufd's VFIO compatibility layer.

One ``IOAS`` class models all of them; ``Semantics`` picks the rule book (reference §8, §9):

========================  =====================================================================
``"iommufd"``             IOMMU_IOAS_MAP/UNMAP/COPY on an iommufd IOAS (§0–§7). The default.
``"vfio-compat"``         VFIO_TYPE1v2_IOMMU container ioctls served by iommufd
                          (drivers/iommu/iommufd/vfio_compat.c, §8): same IOAS underneath, but
                          MAP_DMA is always FIXED and does not require READ/WRITE, an empty
                          UNMAP_DMA succeeds with 0 bytes, and with huge pages off the range is
                          cut at its ends first.
``"vfio-compat-v1"``      VFIO_TYPE1_IOMMU on iommufd: ``iopt_disable_large_pages`` at set-up
                          (alignment PAGE_SIZE), so any page-aligned sub-range unmaps exactly (§8.4).
``"type1"``               real drivers/vfio/vfio_iommu_type1.c in v2 mode (§9): EINVAL instead of
                          EADDRINUSE/EOVERFLOW, an atomic bisect check on unmap, a 65535 mapping limit.
``"type1-v1"``            real type1 in v1 mode: no bisect check, whole mappings go (§9.4).
========================  =====================================================================

The functions here hold only what differs; they act on an ``IOAS`` through its internal
methods, which keeps ``ioas.py`` about iommufd.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from iommu_lab.core.enums import member_of
from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, fmt_addr, fmt_size
from iommu_lab.iommufd.area import PAGE_SIZE, Area, Pages, Prot

if TYPE_CHECKING:  # pragma: no cover
    from iommu_lab.iommufd.ioas import IOAS

__all__ = ["Semantics", "DMA_ENTRY_LIMIT", "TYPE1_OVERFLOW_ERRNO"]

#: vfio_iommu_type1's ``dma_entry_limit`` module parameter default (U16_MAX).
DMA_ENTRY_LIMIT = 65535
#: Real type1 reports wrap-around as EINVAL; Alex Mastro's Oct-2025 series changes it to
#: EOVERFLOW (reference §9.1, marked [version]). The model follows the released behaviour.
TYPE1_OVERFLOW_ERRNO = "EINVAL"


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


def _err(errno: str, message: str) -> IommuError:
    return IommuError(errno, message)


# -- real vfio_iommu_type1 -----------------------------------------------------------------
def type1_pgsize(ioas: "IOAS") -> int:
    """Smallest IOMMU page of the container, never below PAGE_SIZE: ``vfio_pgsize_bitmap``
    ANDs the domains' bitmaps and folds sub-PAGE_SIZE bits up to PAGE_SIZE."""
    bitmap = U64_MAX
    for dev in ioas.devices:
        bitmap &= dev.pgsizes
    low = bitmap & -bitmap if bitmap else PAGE_SIZE
    return max(low, PAGE_SIZE)


def type1_map(ioas: "IOAS", length: int, iova: int | None, user_va: int, prot: Prot) -> Area:
    """VFIO_IOMMU_MAP_DMA on real type1, checks in ``vfio_dma_do_map`` order (rule 9.1).

    size_t fit → EINVAL; ``size == 0`` → EINVAL; no READ/WRITE → EINVAL; ``(size | iova |
    vaddr)`` not a multiple of the smallest IOMMU page → EINVAL; IOVA or VA wrap → EINVAL;
    any overlap → EEXIST (checked *before* the range, unlike iommufd); ``dma_avail == 0`` →
    ENOSPC; range not inside one ``iova_list`` entry → EINVAL.
    """
    if iova is None:
        raise ValueError("VFIO_IOMMU_MAP_DMA has no automatic IOVA; give iova= (type1 maps are always fixed)")
    for name, value in (("iova", iova), ("size", length), ("vaddr", user_va)):
        if value > U64_MAX:
            raise _err("EINVAL", f"{name} {fmt_addr(value)} does not fit the 64-bit dma_addr_t/size_t (rule 9.1)")
    if length == 0:
        raise _err("EINVAL", "map size 0: VFIO_IOMMU_MAP_DMA needs at least one page (rule 9.1)")
    if not prot & Prot.RW:
        raise _err("EINVAL", "map with neither VFIO_DMA_MAP_FLAG_READ nor WRITE (rule 9.1)")
    pgsize = type1_pgsize(ioas)
    if (length | iova | user_va) & (pgsize - 1):
        bad = [f"{n} {fmt_addr(v)}" for n, v in (("iova", iova), ("size", length), ("vaddr", user_va)) if v & (pgsize - 1)]
        raise _err("EINVAL", f"{', '.join(bad)} not a multiple of the smallest IOMMU page {fmt_size(pgsize)} (rule 9.1)")
    if iova + length - 1 > U64_MAX or user_va + length - 1 > U64_MAX:
        raise _err(
            TYPE1_OVERFLOW_ERRNO,
            f"map of {fmt_addr(length)} bytes at iova {fmt_addr(iova)} / vaddr {fmt_addr(user_va)} wraps past 2^64 (rule 9.1)",
        )
    last = iova + length - 1
    hit = ioas._index.first_overlapping(iova, last)
    if hit is not None:
        raise _err("EEXIST", f"map {IovaRange(iova, last)} overlaps the existing mapping {hit.range} (rule 9.1, vfio_find_dma)")
    if ioas._dma_avail == 0:
        raise _err(
            "ENOSPC",
            f"the container already holds dma_entry_limit={ioas._dma_limit} mappings; unmap some first (rule 9.2)",
        )
    pieces = ioas.info().permitted
    if ioas.devices and not any(p.start <= iova and last <= p.last for p in pieces):
        raise _err(
            "EINVAL",
            f"map {IovaRange(iova, last)} is not inside one valid IOVA range; the container's iova_list is "
            f"{', '.join(str(p) for p in pieces) or 'empty'} (rule 9.1, vfio_iommu_iova_dma_valid)",
        )
    pages = Pages(user_va - user_va % PAGE_SIZE, length + user_va % PAGE_SIZE, bool(prot & Prot.WRITE))
    return ioas._commit_map([(pages, user_va, length)], iova, prot)[0]


def type1_unmap(ioas: "IOAS", iova: int, length: int) -> int:
    """VFIO_IOMMU_UNMAP_DMA on real type1 (``vfio_dma_do_unmap``, rules 9.3 and 9.4).

    v2 refuses (EINVAL) a range whose first or last IOVA falls inside a mapping that sticks
    out, before removing anything (atomic); v1 stops at a mapping that starts below ``iova``
    (0 bytes) and removes every mapping whose *first* IOVA is covered, entirely. An empty
    range succeeds with 0 bytes.
    """
    pgsize = type1_pgsize(ioas)
    if iova > U64_MAX or length > U64_MAX:
        raise _err("EINVAL", f"iova {fmt_addr(iova)} / size {fmt_addr(length)} does not fit 64 bits (rule 9.3)")
    if iova & (pgsize - 1):
        raise _err("EINVAL", f"unmap iova {fmt_addr(iova)} is not a multiple of the IOMMU page {fmt_size(pgsize)} (rule 9.3)")
    if length == 0 or length & (pgsize - 1):
        raise _err("EINVAL", f"unmap size {fmt_addr(length)} is zero or not a multiple of {fmt_size(pgsize)} (rule 9.3)")
    last = iova + length - 1
    if last > U64_MAX:
        raise _err(TYPE1_OVERFLOW_ERRNO, f"unmap [{fmt_addr(iova)} + {fmt_addr(length)}] wraps past 2^64 (rule 9.3)")
    index = ioas._index
    if not ioas.semantics.is_v1:
        first = index.find(iova)
        if first is not None and first.iova != iova:
            raise _err("EINVAL", f"unmap starts at {fmt_addr(iova)} inside mapping {first.range}; type1 v2 cannot split (rule 9.3)")
        end = index.find(last)
        if end is not None and end.last != last:
            raise _err("EINVAL", f"unmap ends at {fmt_addr(last)} inside mapping {end.range}; type1 v2 cannot split (rule 9.3)")
    victims: list[Area] = []
    for area in index.overlapping(iova, last):
        if area.iova > last:
            break
        if ioas.semantics.is_v1 and area.iova < iova:
            break
        victims.append(area)
    return ioas._commit_unmap(victims)


def type1_attach_check(ioas: "IOAS", device, new_resv: list) -> None:
    """Attach on real type1: conflicts with existing mappings are EINVAL, not EADDRINUSE, and an
    ``iova_list`` emptied by the new aperture and reserved regions is EINVAL
    (``vfio_iommu_aper_conflict``, ``vfio_iommu_resv_conflict``, ``vfio_iommu_resv_exclude``; rule 9.5)."""
    for r in new_resv:
        hit = ioas._index.first_overlapping(r.start, r.last)
        if hit is not None:
            what = "lies outside the new aperture" if r.kind == "aperture" else f"overlaps reserved region {IovaRange(r.start, r.last)}"
            raise _err("EINVAL", f"attach {device.name!r}: existing mapping {hit.range} {what} (rule 9.5)")
    pieces = ioas._permitted_pieces(extra_devices=(device,), extra_resv=new_resv)
    if not pieces:
        raise _err("EINVAL", f"attach {device.name!r} would leave the container no valid IOVA range (rule 9.5)")


# -- iommufd's VFIO compatibility ---------------------------------------------------------
def compat_unmap(ioas: "IOAS", iova: int, length: int) -> int:
    """VFIO_IOMMU_UNMAP_DMA served by iommufd (``iommufd_vfio_unmap_dma``, rule 8.3).

    With large pages disabled (TYPE1 v1, or IOMMU_OPTION_HUGE_PAGES=0) the areas are first
    cut at ``iova + size - 1`` and ``iova - 1`` (``iopt_cut_iova``; no cut before 0). A cut that
    fails returns its error, but cuts already made stay (they split an area without changing
    what is mapped). Then ``iopt_unmap_iova``: size 0 → EINVAL, wrap → EOVERFLOW, an area
    sticking out → ENOENT after removing the earlier ones (5.6; the bytes already removed are
    in the error's ``unmapped``). An empty range is success with 0 bytes (since afb47765).
    """
    if iova > U64_MAX or length > U64_MAX:
        raise _err("EOVERFLOW", f"iova {fmt_addr(iova)} / size {fmt_addr(length)} does not fit the __u64 fields (rule 8.3)")
    if not ioas._huge_pages:
        cuts = [(iova + length - 1) & U64_MAX]
        if iova:
            cuts.append(iova - 1)
        for point in cuts:
            ioas._cut_at(point)
    if length == 0:
        raise _err("EINVAL", "unmap size 0 (rule 8.3, iopt_unmap_iova)")
    if iova + length - 1 > U64_MAX:
        raise _err("EOVERFLOW", f"unmap [{fmt_addr(iova)} + {fmt_addr(length)}] wraps past 2^64 (rule 8.3)")
    return ioas._unmap_range(iova, iova + length - 1, empty_ok=True)
