"""Areas of an I/O address space and the index that finds them and the holes between them.

An *area* is iommufd's ``struct iopt_area``: one mapping object made by one MAP or by one
piece of a COPY, covering ``[iova, last]`` exactly, backed by a slice of a *pages* object
(``struct iopt_pages``: the pinned user memory, shared between the areas a COPY makes).

``AreaIndex`` stores areas in a ``SortedDict`` keyed by IOVA, so a point lookup, an overlap
check and an insert or remove are O(log n), and keeps an index of the *free gaps* (the holes
of reserved ∪ areas) bucketed by size class, so the automatic allocator (``iopt_alloc_iova``,
rule 3 of the reference) finds the lowest fitting hole without walking every area.
"""

from __future__ import annotations

import enum
import itertools
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Union

from sortedcontainers import SortedList

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, fmt_addr, fmt_size

__all__ = ["PAGE_SIZE", "HPAGE_SIZE", "Prot", "Pages", "Area", "AreaIndex", "align_up", "roundup_pow_of_two"]

#: CPU page size the model assumes (x86-64 / arm64 4K kernels), ``PAGE_SIZE`` in the kernel.
PAGE_SIZE = 0x1000
#: Transparent huge page size on x86-64 with THP (``HPAGE_SIZE``), the auto-allocation cap.
HPAGE_SIZE = 0x20_0000


class Prot(enum.IntFlag):
    """Mapping permissions, bit for bit the kernel's ``IOMMU_READ`` (1) and ``IOMMU_WRITE`` (2)
    (include/linux/iommu.h), which iommufd derives from ``IOMMU_IOAS_MAP_READABLE|WRITEABLE``."""

    NONE = 0
    READ = 1
    WRITE = 2
    RW = 3

    @classmethod
    def parse(cls, value: Union[str, int, "Prot"]) -> "Prot":
        """Read ``"rw"``, ``"r"``, ``"w"``, ``""``, a ``Prot`` or an int of IOMMU_READ/WRITE bits.

        Unknown letters raise ``ValueError``; unknown bits in an int are flags the uapi does
        not define, refused with EOPNOTSUPP as ``iommufd_ioas_map`` does first (rule 4.1).
        """
        if isinstance(value, Prot):
            return value
        if isinstance(value, str):
            known = _PROT_STRINGS.get(value)
            if known is not None:
                return known
        if isinstance(value, bool):
            raise TypeError(f"prot must be 'rw', 'r', 'w' or Prot flags, got bool {value!r}")
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"prot {value} is negative; use Prot.READ | Prot.WRITE")
            if value & ~int(cls.RW):
                raise IommuError(
                    "EOPNOTSUPP",
                    f"prot {value:#x} has bits outside IOMMU_READ|IOMMU_WRITE (0x3); the map "
                    f"flags accept only FIXED_IOVA, WRITEABLE and READABLE (rule 4.1)",
                )
            return cls(value)
        if not isinstance(value, str):
            raise TypeError(f"prot must be 'rw', 'r', 'w' or Prot flags, got {type(value).__name__} {value!r}")
        out = cls.NONE
        for ch in value.lower():
            if ch == "r":
                out |= cls.READ
            elif ch == "w":
                out |= cls.WRITE
            elif ch not in " -|":
                raise ValueError(f"prot {value!r} has unknown letter {ch!r}; use 'r', 'w' or 'rw'")
        return out

    @property
    def text(self) -> str:
        """``"rw"``, ``"r-"``, ``"-w"`` or ``"--"``."""
        return _PROT_TEXT[int(self) & 3]

    @property
    def letters(self) -> str:
        """The form ``parse`` reads back: ``"rw"``, ``"r"``, ``"w"`` or ``""``."""
        return _PROT_TEXT[int(self) & 3].replace("-", "")


_PROT_TEXT = ("--", "r-", "-w", "rw")
#: Prot by its int value (enum construction is slow on the map path).
PROT_BY_INT = (Prot.NONE, Prot.READ, Prot.WRITE, Prot.RW)
_PROT_STRINGS = {"rw": Prot.RW, "wr": Prot.RW, "r": Prot.READ, "w": Prot.WRITE, "": Prot.NONE}


_pages_ids = itertools.count(1)


@dataclass(frozen=True, eq=False)
class Pages:
    """The pinned user memory behind one or more areas, as ``struct iopt_pages``.

    Identity matters, not value: a COPY shares the source's pages object, and whether a
    writable mapping may be made of them is decided by ``writable`` — set when the original
    MAP asked for write access (pages.c ``iopt_alloc_pages``: ``writable = iommu_prot &
    IOMMU_WRITE``), so a WRITEABLE copy from a read-only map fails EPERM (rule 6.6).
    """

    user_va: int
    length: int
    writable: bool
    id: int = field(default_factory=lambda: next(_pages_ids))

    def __repr__(self) -> str:
        return f"Pages(#{self.id}, va={fmt_addr(self.user_va)}, {fmt_size(self.length)}, {'rw' if self.writable else 'ro'})"


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


def roundup_pow_of_two(n: int) -> int:
    """``roundup_pow_of_two`` of include/linux/log2.h (``n >= 1``)."""
    return 1 << (n - 1).bit_length()


def align_up(value: int, align: int) -> int | None:
    """``ALIGN_UP`` with the overflow check of ``__alloc_iova_check_range``: None when it wraps."""
    if value + align - 1 > U64_MAX:
        return None
    return (value + align - 1) & ~(align - 1)


def _fits(start: int, last: int, length: int, align: int, page_offset: int) -> int | None:
    """Mirrors io_pagetable.c ``__alloc_iova_check_range``: the aligned start in ``[start, last]``
    or None. Rejects a wrapping ALIGN_UP, ``aligned >= last`` (so a 1-byte hole never takes a
    1-byte map, reference §11) and a hole too short for ``length``."""
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
            # Adjacent nodes merge, as interval_tree_span_iter does (rule 1.2).
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
            found = _fits(lo, min(gap[1], hi), length, align, page_offset)
            if found is not None:
                return found
        min_bits = length.bit_length()
        for k, bucket in self._buckets.items():
            if k < min_bits:
                continue
            for start in bucket.irange(lo + 1, hi if best is None else min(hi, best - 1)):
                found = _fits(start, min(self._gaps[start], hi), length, align, page_offset)
                if found is not None:
                    best = found if best is None else min(best, found)
                    break
        return best
