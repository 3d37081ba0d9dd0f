"""The nodes of an I/O address space's interval trees, and the index that finds them.

Mirrors drivers/iommu/iommufd/io_pagetable.h: an *area* is ``struct iopt_area``, one mapping
object made by one MAP or by one piece of a COPY, covering ``[iova, last]`` exactly, backed by a
slice of a *pages* object (``struct iopt_pages``, ``pages.py``); a *reservation* is ``struct
iopt_reserved``, one node of the reserved tree with its owner.

``AreaIndex`` stores areas in a ``SortedList`` keyed by IOVA, so a point lookup, an overlap
check and an insert or remove are O(log n), and keeps an index of the *free gaps* (the holes
of reserved ∪ areas) bucketed by size class, so the automatic allocator (io_pagetable.c
``iopt_alloc_iova``) finds the lowest fitting hole without walking every area.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from sortedcontainers import SortedList

from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import U64_MAX, IovaRange, exact_int, fmt_addr, fmt_size
from iommu_lab.hardware.device import ResvType
from iommu_lab.iommufd.pages import HPAGE_SIZE, PAGE_SIZE, Pages

__all__ = [
    "PAGE_SIZE",
    "HPAGE_SIZE",
    "Prot",
    "Pages",
    "Area",
    "Reservation",
    "AreaIndex",
    "align_up",
    "roundup_pow_of_two",
    "uapi_int",
]

#: The IOAS's name for the one permission type: an area uses its READ and WRITE bits, which
#: are the kernel's ``IOMMU_READ``/``IOMMU_WRITE``.
Prot = Perm

#: Prot by its int value, and its ``letters`` (enum construction and flag arithmetic are slow
#: on the map path).
PROT_BY_INT = (Prot.NONE, Prot.READ, Prot.WRITE, Prot.RW)
PROT_LETTERS = ("", "r", "w", "rw")


def uapi_int(value: object, name: str) -> int:
    """An argument bound for a ``__u64`` uapi field: an exact int (``exact_int``) that is not
    negative. Values of 2**64 and above pass, so that each operation refuses them with the
    errno its own kernel check gives (``iommufd_ioas_map``'s ``>= ULONG_MAX`` is EOVERFLOW)."""
    value = exact_int(value, name)
    if value < 0:
        raise ValueError(f"{name} {value} is negative; the uapi field is an unsigned __u64")
    return value


@dataclass(frozen=True, repr=False)
class Area:
    """One mapping ``[iova, last]`` of ``length`` bytes, as iommufd's ``struct iopt_area``.

    Parameters
    ----------
    iova, length : int
        Where it starts and how many bytes it covers (``last = iova + length - 1``).
    user_va : int
        The user virtual address of its first byte (``pages.user_va + start_byte``).
    prot : Prot
        ``IOMMU_READ``/``IOMMU_WRITE`` bits the domains map it with.
    pages : Pages
        The shared pinned memory object (identity: copies share it).
    start_byte : int
        Offset of the first byte within ``pages``.
    """

    iova: int
    length: int
    user_va: int
    prot: Prot
    pages: Pages = field(repr=False)
    start_byte: int = 0

    @property
    def last(self) -> int:
        """Inclusive last IOVA (``iopt_area_last_iova``)."""
        return self.iova + self.length - 1

    @property
    def range(self) -> IovaRange:
        return IovaRange(self.iova, self.last)

    @property
    def page_offset(self) -> int:
        """``area->page_offset``: the user VA's offset within its CPU page."""
        return self.user_va % PAGE_SIZE

    def va_of(self, iova: int) -> int:
        """The user VA that ``iova`` (inside this area) reaches, as ``iopt_area_start_byte``."""
        return self.user_va + (iova - self.iova)

    def __str__(self) -> str:
        return f"{IovaRange(self.iova, self.last)} {fmt_size(self.length)} va={fmt_addr(self.user_va)} {self.prot.text}"

    def __repr__(self) -> str:
        return (f"Area(iova={fmt_addr(self.iova)}, length={fmt_addr(self.length)}, user_va={fmt_addr(self.user_va)}, "
                f"prot={self.prot.text!r}, pages=#{self.pages.id})")


@dataclass(frozen=True)
class Reservation:
    """One node of the reserved interval tree (``struct iopt_reserved``): ``[start, last]``.

    ``kind`` says why it exists: ``"aperture"`` (outside a domain's aperture or windows,
    ``iopt_table_add_domain``), ``"region"`` (a device reserved region,
    ``iopt_table_enforce_dev_resv_regions``) or ``"user"`` (``reserve()``, the selftest's
    IOMMU_TEST_OP_ADD_RESERVED with a NULL owner unless one is given).
    """

    start: int
    last: int
    owner: str | None
    kind: str
    type: ResvType | None = None

    @property
    def range(self) -> IovaRange:
        return IovaRange(self.start, self.last)

    def __repr__(self) -> str:
        t = f", type={self.type.value!r}" if self.type is not None else ""
        return f"Reservation({fmt_addr(self.start)}, {fmt_addr(self.last)}, owner={self.owner!r}, kind={self.kind!r}{t})"

    def __str__(self) -> str:
        what = self.type.value if self.type is not None else self.kind
        return f"{self.range} {what}" + (f" ({self.owner})" if self.owner else "")


def roundup_pow_of_two(n: int) -> int:
    """``roundup_pow_of_two`` of include/linux/log2.h (``n >= 1``)."""
    return 1 << (n - 1).bit_length()


def align_up(value: int, align: int) -> int | None:
    """``ALIGN_UP`` with the overflow check of ``__alloc_iova_check_range``: None when it wraps."""
    if value + align - 1 > U64_MAX:
        return None
    return (value + align - 1) & ~(align - 1)


def alloc_iova_check_range(start: int, last: int, length: int, align: int, page_offset: int) -> int | None:
    """Mirrors io_pagetable.c ``__alloc_iova_check_range``: the aligned start in ``[start, last]``
    or None. Rejects a wrapping ALIGN_UP, ``aligned >= last`` (so a 1-byte hole never takes a
    1-byte map) and a hole too short for ``length``."""
    aligned = align_up(start, align)
    if aligned is None:
        return None
    aligned |= page_offset
    if aligned >= last or last - aligned < length - 1:
        return None
    return aligned


def _floor_key(keys: SortedList, x: int) -> int | None:
    """Largest key <= ``x``, or None.

    Bisects SortedList's sublists (``_maxes``/``_lists``, its layout since sortedcontainers 2.0)
    directly: ``irange`` costs a generator per call and positional indexing rebuilds an index
    tree after every change, either of which would triple the cost of a point query.
    """
    maxes = keys._maxes
    if not maxes:
        return None
    pos = bisect_right(maxes, x)
    if pos == len(maxes):
        return maxes[-1]
    sub = keys._lists[pos]
    i = bisect_right(sub, x)
    if i:
        return sub[i - 1]
    return maxes[pos - 1] if pos else None


def _ceil_key(keys: SortedList, x: int) -> int | None:
    """Smallest key >= ``x``, or None (same layout as ``_floor_key``)."""
    maxes = keys._maxes
    pos = bisect_left(maxes, x)
    if pos == len(maxes):
        return None
    sub = keys._lists[pos]
    return sub[bisect_left(sub, x)]


class AreaIndex:
    """Areas keyed by IOVA plus a size-bucketed index of the free gaps between used spans.

    *Used* spans are the areas and the (merged) reserved ranges; a *gap* is a maximal free
    range. Area starts live in a ``SortedList`` with a dict beside it; gap starts likewise, and
    ``_buckets[k]`` is a ``SortedList`` of the starts of gaps whose size has bit length ``k``.
    Neighbour queries use ``irange`` (a bisect into the sorted sublists) rather than positional
    indexing, whose index tree sortedcontainers rebuilds after every insert or delete. A
    first-fit query visits, per non-empty bucket large enough, the gaps in address order and
    stops at the first that fits; in buckets whose gaps are at least ``length + align`` long the
    first candidate always fits, so a query costs O(buckets · log n) rather than O(n).
    """

    __slots__ = ("_keys", "_areas", "_gap_keys", "_gaps", "_buckets", "_reserved_spans")

    def __init__(self) -> None:
        self._keys = SortedList()
        self._areas: dict[int, Area] = {}
        self._reserved_spans: list[IovaRange] = []
        self._gap_keys = SortedList()
        self._gaps: dict[int, int] = {}
        self._buckets: dict[int, SortedList] = {}
        self._add_gap(0, U64_MAX)

    # -- areas ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[Area]:
        areas = self._areas
        return (areas[k] for k in self._keys)

    def values(self) -> tuple[Area, ...]:
        return tuple(self)

    def _floor(self, iova: int) -> Area | None:
        """The area with the highest start <= ``iova``."""
        key = _floor_key(self._keys, iova)
        return None if key is None else self._areas[key]

    def find(self, iova: int) -> Area | None:
        """The area holding ``iova``, or None (O(log n))."""
        area = self._floor(iova)
        return area if area is not None and area.last >= iova else None

    def first_overlapping(self, start: int, last: int) -> Area | None:
        """The lowest area that intersects ``[start, last]`` (``iopt_area_iter_first``)."""
        area = self.find(start)
        if area is not None:
            return area
        key = _ceil_key(self._keys, start)
        return self._areas[key] if key is not None and key <= last else None

    def overlapping(self, start: int, last: int) -> list[Area]:
        """Every area intersecting ``[start, last]``, ascending."""
        area = self.first_overlapping(start, last)
        out = []
        keys, areas = self._keys, self._areas
        while area is not None:
            out.append(area)
            if area.last >= last:
                break
            key = _ceil_key(keys, area.last + 1)
            area = areas[key] if key is not None and key <= last else None
        return out

    def any_overlap(self, start: int, last: int) -> bool:
        """Whether any area intersects ``[start, last]``: the last area starting <= ``last``."""
        area = self._floor(last)
        return area is not None and area.last >= start

    def next_after(self, area: Area) -> Area | None:
        key = _ceil_key(self._keys, area.iova + 1)
        return None if key is None else self._areas[key]

    def insert(self, area: Area) -> None:
        """Add an area into a free gap (the caller has checked it is free)."""
        self._keys.add(area.iova)
        self._areas[area.iova] = area
        self._occupy(area.iova, area.last)

    def remove(self, area: Area) -> None:
        self._keys.remove(area.iova)
        del self._areas[area.iova]
        self._release(area.iova, area.last)

    def replace(self, old: Area, new: Iterable[Area]) -> None:
        """Swap one area for pieces covering exactly the same IOVAs (a split): gaps unchanged."""
        self._keys.remove(old.iova)
        del self._areas[old.iova]
        for a in new:
            self._keys.add(a.iova)
            self._areas[a.iova] = a

    # -- reserved spans and gaps ---------------------------------------------------------
    def set_reserved(self, ranges: Iterable[IovaRange]) -> None:
        """Replace the reserved spans and rebuild the gap index (O(n); attach/detach are rare)."""
        merged: list[IovaRange] = []
        for r in sorted(ranges):
            # Adjacent nodes merge, as interval_tree_span_iter_next_gap does.
            if merged and r.start <= merged[-1].last + 1:
                if r.last > merged[-1].last:
                    merged[-1] = IovaRange(merged[-1].start, r.last)
            else:
                merged.append(r)
        self._reserved_spans = merged
        used = sorted([(r.start, r.last) for r in merged] + [(a.iova, a.last) for a in self._areas.values()])
        self._gap_keys = SortedList()
        self._gaps = {}
        self._buckets = {}
        cur = 0
        for s, last in used:
            if s > cur:
                self._add_gap(cur, s - 1)
            cur = max(cur, last + 1)
        if cur <= U64_MAX:
            self._add_gap(cur, U64_MAX)

    def gaps(self) -> Iterator[IovaRange]:
        """The holes of reserved ∪ areas, ascending (what auto allocation chooses from)."""
        for s in self._gap_keys:
            yield IovaRange(s, self._gaps[s])

    def _add_gap(self, start: int, last: int) -> None:
        self._gap_keys.add(start)
        self._gaps[start] = last
        k = (last - start + 1).bit_length()
        bucket = self._buckets.get(k)
        if bucket is None:
            bucket = self._buckets[k] = SortedList()
        bucket.add(start)

    def _drop_gap(self, start: int) -> int:
        last = self._gaps.pop(start)
        self._gap_keys.remove(start)
        k = (last - start + 1).bit_length()
        bucket = self._buckets[k]
        bucket.remove(start)
        if not bucket:
            del self._buckets[k]
        return last

    def _gap_holding(self, address: int) -> tuple[int, int] | None:
        s = _floor_key(self._gap_keys, address)
        if s is None:
            return None
        last = self._gaps[s]
        return (s, last) if last >= address else None

    def _resize_gap(self, start: int, new_last: int) -> None:
        """Change a gap's last address in place; it moves bucket only if its size class changes."""
        old_k = (self._gaps[start] - start + 1).bit_length()
        new_k = (new_last - start + 1).bit_length()
        self._gaps[start] = new_last
        if old_k != new_k:
            bucket = self._buckets[old_k]
            bucket.remove(start)
            if not bucket:
                del self._buckets[old_k]
            target = self._buckets.get(new_k)
            if target is None:
                target = self._buckets[new_k] = SortedList()
            target.add(start)

    def _occupy(self, start: int, last: int) -> None:
        gap = self._gap_holding(start)
        if gap is None or gap[1] < last:
            raise AssertionError(f"internal: [{start:#x}, {last:#x}] is not inside one free gap")
        gs, gl = gap
        if gs < start:
            self._resize_gap(gs, start - 1)
        else:
            self._drop_gap(gs)
        if last < gl:
            self._add_gap(last + 1, gl)

    def _release(self, start: int, last: int) -> None:
        new_last = last
        if last < U64_MAX and (last + 1) in self._gaps:
            new_last = self._drop_gap(last + 1)
        left = self._gap_holding(start - 1) if start > 0 else None
        if left is not None:
            self._resize_gap(left[0], new_last)
        else:
            self._add_gap(start, new_last)

    def first_fit(self, lo: int, hi: int, length: int, align: int, page_offset: int) -> int | None:
        """Lowest IOVA the kernel's hole walk over ``[lo, hi]`` would return, or None.

        Mirrors the inner loop of io_pagetable.c ``iopt_alloc_iova``
        (``interval_tree_for_each_double_span`` over reserved ∪ areas, each hole clipped to
        ``[lo, hi]`` and tested with ``__alloc_iova_check_range``). Holes are disjoint and
        ascending, so the first accepting hole is the one with the lowest start.
        """
        best: int | None = None
        gap = self._gap_holding(lo)
        if gap is not None:
            found = alloc_iova_check_range(lo, min(gap[1], hi), length, align, page_offset)
            if found is not None:
                return found
        min_bits = length.bit_length()
        for k, bucket in self._buckets.items():
            if k < min_bits:
                continue
            for start in bucket.irange(lo + 1, hi if best is None else min(hi, best - 1)):
                found = alloc_iova_check_range(start, min(self._gaps[start], hi), length, align, page_offset)
                if found is not None:
                    best = found if best is None else min(best, found)
                    break
        return best
