"""The one range iterator over a radix page table, and the stepping rules every walk shares.

Mirrors generic_pt's ``pt_walk_range`` / ``__pt_make_level_fn`` (``drivers/iommu/generic_pt/
pt_iter.h``): the iterator computes, per level, which entries of which tables an input range
touches (indices, the top table's width, next-table addresses, the offsets each entry covers),
reads and classifies them, and hands them to a *visitor*. A visitor is one function
``visit(tables) -> result`` that acts on entries (clears them, installs leaves, counts them) and
calls ``tables.descend(js)`` to continue below entries ``js``; it never computes an index, a
sign extension or a table address. map, unmap, free, first-leaf, split and census are such
visitors (``pagetable/visitors.py``, ``pagetable/census.py``).

A :class:`Tables` batch holds one or many tables of the same level with their entries inside
the range as flat arrays (``descend`` of many entries at once visits all the children in one
gather, as the level-by-level census needs; an order-sensitive visitor such as unmap descends
one entry at a time and gets generic_pt's depth-first order).

Offsets. The iterator works in *table offsets*: ``(iova - va_base) mod 2**va_bits``, so a
POWER window's base and the upper canonical half of a sign-extended format are one range of
offsets; :func:`offset_of` and :func:`iova_of` convert (the sign extension lives here only).

The single-IOVA :func:`step_address` / :func:`next_table` rules are the same ones
``walk.walk`` and ``walk.translate`` apply per level.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from iommu_lab.core.ranges import U64_MAX
from iommu_lab.hardware.formats import EntryKind, Format

__all__ = [
    "Scalar",
    "Tables",
    "entry_addresses",
    "iova_of",
    "iova_of_array",
    "next_table",
    "offset_of",
    "scalar",
    "step_address",
    "walk_range",
]

_U64 = np.uint64
#: Entries one batch may hold before ``descend`` splits it (keeps temporaries cache-sized).
CHUNK = 1 << 20


# ============================================================================ stepping rules
def offset_of(fmt: Format, iova: int) -> int:
    """The table offset of ``iova`` (``iova - va_base`` modulo the input width)."""
    return (iova - fmt.va_base) & ((1 << fmt.va_bits) - 1)


def iova_of(fmt: Format, off: int) -> int:
    """The IOVA of table offset ``off``: sign-extended for canonical formats, else + va_base."""
    if fmt.sign_extend and off >> (fmt.va_bits - 1):
        return (off | ~((1 << fmt.va_bits) - 1)) & U64_MAX
    return off + fmt.va_base


def iova_of_array(fmt: Format, off: np.ndarray) -> np.ndarray:
    """:func:`iova_of` over a uint64 array."""
    if fmt.sign_extend:
        high = (off >> _U64(fmt.va_bits - 1)) & _U64(1)
        ext = _U64(~((1 << fmt.va_bits) - 1) & U64_MAX)
        return np.where(high == _U64(1), off | ext, off)
    return off + _U64(fmt.va_base)


def step_address(fmt: Format, level: int, table: int, iova: int) -> tuple[int, int]:
    """``(index, entry address)`` of ``iova`` in ``table`` at ``level`` (one walk step)."""
    idx = fmt.index(level, iova)
    return idx, table + idx * fmt.entry_size


def entry_addresses(fmt: Format, level: int, table, iovas: np.ndarray) -> np.ndarray:
    """:func:`step_address` over a uint64 array of IOVAs (a fresh array: callers may reuse it)."""
    ea = np.subtract(iovas, _U64(fmt.va_base)) if fmt.va_base else None
    ea = np.right_shift(iovas if ea is None else ea, _U64(fmt.shift(level)), out=ea)
    ea &= _U64((1 << fmt.bits(level)) - 1)
    ea <<= _U64(3)
    ea += table
    return ea


def next_table(fmt: Format, level: int, raw: np.ndarray) -> np.ndarray:
    """Next-table addresses of TABLE entries ``raw`` read at ``level`` (``pt_table_pa``)."""
    return fmt.rules.table_addr(fmt, raw, level)


# ============================================================================ the iterator
class Tables:
    """Tables of one level, with their entries inside ``[lo, hi]`` as flat arrays.

    Attributes (per table): ``table`` (address), ``tva`` (first offset it covers), ``first``
    and ``last`` (entry indices inside the range). Per entry, in offset order: ``raw``,
    ``kinds``, ``offset``, ``eaddr``, ``tab`` (which table), ``slot`` (index in its table).
    ``item`` is the bytes one entry covers.
    """

    def __init__(self, fmt: Format, memory: Any, level: int, table, tva, lo: int, hi: int,
                 visit: Callable, fresh: np.ndarray | None = None) -> None:
        self.fmt, self.memory, self.level, self.lo, self.hi = fmt, memory, level, lo, hi
        self.visit = visit
        self.table = np.asarray(table, dtype=_U64).reshape(-1)
        self.tva = np.asarray(tva, dtype=_U64).reshape(-1)
        self.shift = fmt.shift(level)
        self.item = 1 << self.shift
        span_last = _U64(min((fmt.entries(level) << self.shift) - 1, U64_MAX))
        first = (np.maximum(self.tva, _U64(lo)) - self.tva) >> _U64(self.shift)
        last = np.minimum(_U64(hi) - self.tva, span_last) >> _U64(self.shift)
        self.first, self.last = first.astype(np.int64), last.astype(np.int64)
        self.counts = self.last - self.first + 1
        self.fresh = fresh
        self.n = int(self.counts.sum())
        self._raw = self._kinds = self._tab = self._slot = None

    @property
    def tab(self) -> np.ndarray:
        """Which table of the batch each entry belongs to."""
        if self._tab is None:
            if self.table.shape[0] == 1:
                self._tab = np.zeros(self.n, dtype=np.int64)
            else:
                self._tab = np.repeat(np.arange(self.table.shape[0]), self.counts)
        return self._tab

    @property
    def slot(self) -> np.ndarray:
        """Each entry's index in its table."""
        if self._slot is None:
            if self.table.shape[0] == 1:
                self._slot = np.arange(self.first[0], self.first[0] + self.n, dtype=np.int64)
            else:
                starts = np.cumsum(self.counts) - self.counts
                self._slot = np.arange(self.n, dtype=np.int64) - starts[self.tab] + self.first[self.tab]
        return self._slot

    def __len__(self) -> int:
        return self.n

    @property
    def eaddr(self) -> np.ndarray:
        """Entry addresses (``table + slot * entry_size``)."""
        return self.table[self.tab] + (self.slot.astype(_U64) << _U64(3))

    @property
    def offset(self) -> np.ndarray:
        """First offset each entry covers."""
        return self.tva[self.tab] + (self.slot.astype(_U64) << _U64(self.shift))

    @property
    def raw(self) -> np.ndarray:
        if self._raw is None:
            if self.fresh is not None and self.fresh.all():
                self._raw = np.zeros(self.n, dtype=_U64)
            elif self.table.shape[0] == 1:
                self._raw = self.memory.read_block(int(self.table[0]) + int(self.first[0]) * 8, self.n)
            else:
                self._raw = self.memory.gather(self.eaddr)[0]
        return self._raw

    @property
    def kinds(self) -> np.ndarray:
        if self._kinds is None:
            self._kinds = self.fmt.rules.classify(self.fmt, self.raw, self.level)
        return self._kinds

    def invalidate(self) -> None:
        """Forget the entries read (after a visitor wrote some)."""
        self._raw = self._kinds = None

    def where(self, kind: EntryKind) -> np.ndarray:
        return np.flatnonzero(self.kinds == kind)

    def _locate(self, j: int) -> tuple[int, int]:
        """``(table, slot)`` of entry ``j`` without building the per-entry arrays."""
        if self.table.shape[0] == 1:
            return 0, int(self.first[0]) + j
        ends = np.cumsum(self.counts)
        t = int(np.searchsorted(ends, j, side="right"))
        return t, int(self.first[t]) + j - int(ends[t] - self.counts[t])

    def off(self, j: int) -> int:
        """Offset of entry ``j`` as a Python int."""
        t, slot = self._locate(j)
        return int(self.tva[t]) + (slot << self.shift)

    def covered(self, j: int) -> bool:
        """Whether the range covers entry ``j``'s whole span."""
        o = self.off(j)
        return self.lo <= o and o + self.item - 1 <= self.hi

    def slots_at(self, j: int, offset: int, count: int) -> np.ndarray:
        """Addresses of ``count`` slots of entry ``j``'s table from the one holding ``offset``
        (a replicated leaf's run, which may begin before the range)."""
        t, _ = self._locate(j)
        base = int(self.table[t]) + ((offset - int(self.tva[t])) >> self.shift) * 8
        return _U64(base) + (np.arange(count, dtype=_U64) << _U64(3))

    def child_empty(self, j: int) -> bool:
        """Whether the table below entry ``j`` holds no entry at all."""
        below = self.level - 1
        return not self.memory.read_block(int(self.children([j])[0]), self.fmt.entries(below)).any()

    def children(self, js) -> np.ndarray:
        """Next-table addresses of TABLE entries ``js``."""
        return next_table(self.fmt, self.level, self.raw[js])

    def whole_table(self, t: int) -> bool:
        """Whether the batch holds every entry of its table ``t``."""
        return int(self.counts[t]) == self.fmt.entries(self.level)

    def contiguous(self) -> int | None:
        """The address of the first entry when all entries sit at consecutive addresses."""
        tb = self.fmt.table_bytes(self.level)
        if self.table.shape[0] > 1:
            if not (np.all(self.counts[1:-1] == self.fmt.entries(self.level)) and self.last[0] == self.fmt.entries(self.level) - 1
                    and self.first[-1] == 0 and np.all(np.diff(self.table.astype(np.int64)) == tb)):
                return None
        return int(self.table[0]) + int(self.first[0]) * 8

    def descend(self, js, *, tables: np.ndarray | None = None, fresh: np.ndarray | None = None) -> list:
        """Visit the tables below entries ``js`` (all at once, in chunks); the visit results.

        ``tables`` gives the child addresses when the visitor has just installed them (else
        they are decoded from the entries); ``fresh`` marks children known to be empty, which
        are not read.
        """
        js = np.asarray(js, dtype=np.int64).reshape(-1)
        if not js.size:
            return []
        child = self.children(js) if tables is None else np.asarray(tables, dtype=_U64)
        ctva = self.offset[js]
        per = self.fmt.entries(self.level - 1)
        step = max(1, CHUNK // per)
        out = []
        for c in range(0, js.size, step):
            sl = slice(c, c + step)
            sub = Tables(self.fmt, self.memory, self.level - 1, child[sl], ctva[sl], self.lo, self.hi,
                         self.visit, None if fresh is None else fresh[sl])
            out.append(self.visit(sub))
        return out

    def descend_one(self, j: int) -> Any:
        """Visit the table below entry ``j``; its visit result."""
        return self.descend([j])[0]


def walk_range(fmt: Format, memory: Any, root: int, lo: int, hi: int, visit: Callable, *,
               level: int | None = None, tva: int = 0) -> Any:
    """Run ``visit`` on the table ``root`` (at ``level``, default the top, covering offsets from
    ``tva``) restricted to offsets ``[lo, hi]``; return what the visitor returns."""
    level = fmt.top_level if level is None else level
    hi = min(hi, U64_MAX)
    return visit(Tables(fmt, memory, level, [root], [tva], lo, hi, visit))


# ============================================================================ one entry at a time
class Scalar:
    """A format's per-level numbers as plain ints, for walks that touch a handful of entries.

    A map or unmap of a few pages reads one entry per level; the batch iterator's numpy
    temporaries cost more than the work there. This is the same stepping (``span`` gives the
    entry indices :class:`Tables` computes for a table and a range), with each entry's kind
    memoised on the bits the format's ``classify`` reads (``Rules.kind_mask``) and each table
    pointer's next-table address memoised on the entry, so the rules are still the only code
    that decodes an entry.
    """

    #: Memo entries kept before a memo is cleared (a bound on host memory, not a cache policy).
    MEMO = 1 << 16

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        n = fmt.levels
        self.shift = tuple(fmt.shift(lv) for lv in range(n))
        self.span_last = tuple(min((fmt.entries(lv) << fmt.shift(lv)) - 1, U64_MAX) for lv in range(n))
        self.table_bytes = tuple(fmt.table_bytes(lv) for lv in range(n))
        self.entries = tuple(fmt.entries(lv) for lv in range(n))
        self.kind_mask = tuple(fmt.rules.kind_mask(fmt, lv) for lv in range(n))
        self._kinds: dict[tuple[int, int], int] = {}
        self._children: dict[tuple[int, int], int] = {}
        self._leaf_bits: dict[tuple[int, int, int], int] = {}

    def span(self, level: int, tva: int, lo: int, hi: int) -> range:
        """Indices of the entries of the table at ``level`` covering offsets from ``tva`` that
        lie inside ``[lo, hi]`` (``tva <= hi``)."""
        sh = self.shift[level]
        return range((max(tva, lo) - tva) >> sh, (min(hi - tva, self.span_last[level]) >> sh) + 1)

    def kind(self, raw: int, level: int) -> int:
        """``classify`` of one entry (an ``EntryKind`` value)."""
        m = self.kind_mask[level]
        key = (level, raw if m is None else raw & m)
        k = self._kinds.get(key)
        if k is None:
            if len(self._kinds) >= self.MEMO:
                self._kinds.clear()
            a = np.array([key[1]], dtype=_U64)
            k = self._kinds[key] = int(self.fmt.rules.classify(self.fmt, a, level)[0])
        return k

    def child(self, raw: int, level: int) -> int:
        """Next-table address of one TABLE entry (``next_table``)."""
        key = (level, raw)
        c = self._children.get(key)
        if c is None:
            if len(self._children) >= self.MEMO:
                self._children.clear()
            c = self._children[key] = int(next_table(self.fmt, level, np.array([raw], dtype=_U64))[0])
        return c

    def leaf_bits(self, level: int, lg2: int, perm) -> int:
        """``rules.leaf_bits`` (a pure function of its arguments, so memoised)."""
        key = (level, lg2, int(perm))
        b = self._leaf_bits.get(key)
        if b is None:
            b = self._leaf_bits[key] = self.fmt.rules.leaf_bits(self.fmt, level, lg2, perm)
        return b

    def leaf_lg2(self, raw: int, level: int) -> int:
        """log2 of the bytes one LEAF entry maps."""
        if self.fmt.fixed_leaf_size:
            return self.shift[level]
        return int(self.fmt.rules.leaf_lg2(self.fmt, np.array([raw], dtype=_U64), level)[0])


@lru_cache(maxsize=64)
def scalar(fmt: Format) -> Scalar:
    """The :class:`Scalar` numbers of ``fmt`` (computed once per format)."""
    return Scalar(fmt)
