"""The segmented address axis: the whole 64-bit space, populated parts readable, gaps compressed.

A linear axis hides a 1 GiB window next to one at 2^59; a log axis cannot show address 0.
Layout figures therefore draw the 64-bit space as a row of *segments*:

* a **region** segment covers addresses that something populates (a window, a reserved
  region, a cluster of mapped areas). Inside a segment the mapping is linear, so relative
  positions within it are true; its drawn width grows with log2 of its size, so a 4 KiB
  region and a 16 EiB window are both wide enough to see and to label.
* a **break** segment covers an empty stretch between regions (outside every window or
  range). It is drawn narrow, with a zig-zag marker and its size written on it.

Segment boundaries come from the edges (``start`` and ``last + 1``) of the populated ranges,
so every window, hole and cluster boundary is a segment boundary and gets a hex tick.

This module is pure data -- no matplotlib. Addresses are exact: offsets inside a segment are
computed in ``uint64`` (exact) before they are turned into floats, because float64 loses
address bits above 2**53 (``float(2**63 + 1) == float(2**63)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from iommu_lab.core.ranges import (
    U64_MAX,
    EiB,
    GiB,
    IovaRange,
    KiB,
    MiB,
    PiB,
    RangeSet,
    TiB,
    fmt_addr,
    fmt_size,
)

__all__ = [
    "Segment",
    "SegmentedAxis",
    "region_width",
    "BREAK_WIDTH",
    "cluster_ranges",
    "fmt_span",
    "as_u64",
]

SPACE = 1 << 64
BREAK_WIDTH = 0.55
BREAK_FRACTION = 0.06
MIN_REGION_WIDTH = 1.0
REGION_WIDTH_PER_BIT = 1.6 / 52.0  # a 4 KiB region is 1.0 wide, the whole 2^64 space 2.6


def region_width(size: int) -> float:
    """Drawn width of a populated segment of ``size`` bytes: 1.0 at 4 KiB, +1.6 over 52 bits.

    Log-scaled so the difference between 1 GiB and 32 TiB still shows, clamped below so a
    one-byte region keeps room for its labels.
    """
    bits = math.log2(size) if size > 0 else 0.0
    return max(MIN_REGION_WIDTH, 1.0 + (bits - 12.0) * REGION_WIDTH_PER_BIT)


def as_u64(values: Iterable[int] | np.ndarray) -> np.ndarray:
    """Addresses as a ``uint64`` array, refusing floats (they have already lost low bits)."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            raise TypeError("addresses must be integers; float64 cannot hold 64-bit addresses exactly")
        if values.dtype == np.uint64:
            return values
        if values.dtype.kind == "O":
            return np.array([int(v) for v in values], dtype=np.uint64)
        if values.dtype.kind == "i" and values.size and values.min() < 0:
            raise ValueError("addresses must not be negative")
        return values.astype(np.uint64)
    seq = list(values) if not isinstance(values, (list, tuple)) else values
    for v in seq:
        if isinstance(v, float):
            raise TypeError("addresses must be integers; float64 cannot hold 64-bit addresses exactly")
    return np.array(seq, dtype=np.uint64)


# -- size text --------------------------------------------------------------------------------
_UNITS = ((EiB, "EiB"), (PiB, "PiB"), (TiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB"))


def _term(bit: int) -> str:
    """One power of two as an engineer writes it: 2^59 for address-bit positions, else units."""
    if bit >= 50:
        return f"2^{bit}"
    if bit < 10:
        return f"{1 << bit} B"
    scale = 10 * (bit // 10)
    unit = {10: "KiB", 20: "MiB", 30: "GiB", 40: "TiB"}[scale]
    return f"{1 << (bit - scale)} {unit}"


def _naf(n: int) -> list[tuple[int, int]]:
    """Non-adjacent form of ``n``: the fewest signed powers of two, highest first."""
    out = []
    bit = 0
    while n:
        if n & 1:
            d = 2 - (n & 3)  # +1 or -1
            out.append((d, bit))
            n -= d
        n >>= 1
        bit += 1
    return out[::-1]


def fmt_span(size: int, max_terms: int = 1) -> str:
    """The size of a span as a reader says it: ``1 GiB``, ``16 EiB``, ``≈ 3.98 GiB``.

    Sizes that are a whole number of units (under 1024 of them) print exactly; any other
    size prints approximately with three significant digits (``fmt_size(approx=True)``),
    never as a sum of powers of two. ``max_terms`` above 1 allows the exact signed-power
    form (``2^64 − 2^59``) with at most that many terms, for callers that want it.
    """
    if size <= 0:
        return "0 B"
    exact = fmt_size(size)
    if not exact.endswith(" B") and not exact.startswith("0x") and int(exact.split()[0]) < 1024:
        return exact
    terms = _naf(size)
    if max_terms > 1 and len(terms) <= max_terms:
        parts = []
        for i, (sign, bit) in enumerate(terms):
            t = _term(bit)
            if i == 0:
                parts.append(t if sign > 0 else f"−{t}")
            else:
                parts.append(f"{'+' if sign > 0 else '−'} {t}")
        return " ".join(parts)
    return fmt_size(size, approx=True)


# -- segments ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """One stretch of the axis: addresses ``[start, last]`` drawn over ``[x0, x1]``."""

    start: int
    last: int
    x0: float
    x1: float
    is_break: bool

    @property
    def size(self) -> int:
        return self.last - self.start + 1

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def label(self) -> str:
        """The size written on the segment (exact where it is short, else approximate)."""
        return fmt_span(self.size)

    @property
    def range(self) -> IovaRange:
        return IovaRange(self.start, self.last)

    def __str__(self) -> str:
        kind = "break" if self.is_break else "region"
        return f"{kind} [{fmt_addr(self.start)}, {fmt_addr(self.last)}] {self.label} @ x {self.x0:.3f}..{self.x1:.3f}"


@dataclass(frozen=True)
class SegmentedAxis:
    """Contiguous segments covering ``[0, 2**64 - 1]`` and the address → x mapping.

    Build it with ``SegmentedAxis.from_ranges(populated)``. ``x(addresses)`` gives the drawn
    position of each address's left edge, ``x_end(lasts)`` the right edge of an inclusive last
    address; both take Python ints or ``uint64`` arrays and are vectorised.
    """

    segments: tuple[Segment, ...]
    _starts: np.ndarray = field(repr=False, compare=False)
    _x0: np.ndarray = field(repr=False, compare=False)
    _scale: np.ndarray = field(repr=False, compare=False)

    @classmethod
    def from_segments(
        cls,
        spans: Sequence[tuple[int, int, bool]],
        *,
        break_width: float = BREAK_WIDTH,
        break_fraction: float = BREAK_FRACTION,
    ) -> SegmentedAxis:
        """Lay out ``(start, last, is_break)`` spans, which must tile the 64-bit space in order.

        Regions get ``region_width(size)``; every break gets the same width, ``break_width``
        or ``break_fraction`` of the regions' total, whichever is larger, so a gap stays
        visible (and its label legible) however many regions there are.
        """
        if not spans or spans[0][0] != 0 or spans[-1][1] != U64_MAX:
            raise ValueError("segments must cover the whole 64-bit space [0x0, 0xffff_ffff_ffff_ffff]")
        for (start, last, _), nxt in zip(spans, list(spans[1:]) + [None]):
            if start > last:
                raise ValueError(f"segment [{fmt_addr(start)}, {fmt_addr(last)}] is empty")
            if nxt is not None and nxt[0] != last + 1:
                raise ValueError(f"segments must be contiguous; {fmt_addr(last)} is followed by {fmt_addr(nxt[0])}")
        regions_total = sum(region_width(last - start + 1) for start, last, brk in spans if not brk)
        bw = max(break_width, break_fraction * regions_total)
        segs: list[Segment] = []
        x = 0.0
        for start, last, brk in spans:
            w = bw if brk else region_width(last - start + 1)
            segs.append(Segment(start, last, x, x + w, brk))
            x += w
        starts = np.array([s.start for s in segs], dtype=np.uint64)
        x0 = np.array([s.x0 for s in segs], dtype=np.float64)
        scale = np.array([s.width / float(s.size) for s in segs], dtype=np.float64)
        return cls(tuple(segs), starts, x0, scale)

    @classmethod
    def from_ranges(cls, populated: Iterable, **kw) -> SegmentedAxis:
        """Segments from the populated ranges: every range edge is a boundary; uncovered
        stretches become breaks.

        ``populated`` holds anything with ``start``/``last`` (IovaRange, ReservedRegion...) or
        ``(start, last)`` tuples; they may overlap. With nothing populated the whole space is
        one break.
        """
        ranges = [r if isinstance(r, IovaRange) else _to_range(r) for r in populated]
        covered = RangeSet(ranges)
        edges = {0, SPACE}
        for r in ranges:
            edges.add(r.start)
            edges.add(r.last + 1)
        ordered = sorted(edges)
        spans = []
        for lo, hi in zip(ordered, ordered[1:]):
            spans.append((lo, hi - 1, covered.find(lo) is None))
        return cls.from_segments(spans, **kw)

    # -- queries ------------------------------------------------------------------------------
    @property
    def total_width(self) -> float:
        return self.segments[-1].x1

    @property
    def breaks(self) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if s.is_break)

    @property
    def regions(self) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if not s.is_break)

    def segment_index(self, addresses) -> np.ndarray:
        a = as_u64(addresses)
        return np.searchsorted(self._starts, a, side="right") - 1

    def segment_of(self, address: int) -> Segment:
        return self.segments[int(self.segment_index([address])[0])]

    def x(self, addresses) -> np.ndarray:
        """Left edge of each address (vectorised; exact offset in uint64, then float)."""
        a = as_u64(addresses)
        i = np.searchsorted(self._starts, a, side="right") - 1
        offset = (a - self._starts[i]).astype(np.float64)
        return self._x0[i] + offset * self._scale[i]

    def x_end(self, lasts) -> np.ndarray:
        """Right edge of each inclusive last address, i.e. the drawn position of ``last + 1``."""
        a = as_u64(lasts)
        i = np.searchsorted(self._starts, a, side="right") - 1
        offset = (a - self._starts[i]).astype(np.float64) + 1.0
        return self._x0[i] + offset * self._scale[i]

    def address(self, x: float) -> int:
        """The address drawn at ``x`` (inverse of ``x``, to the nearest byte; for hover/readouts)."""
        x = min(max(float(x), 0.0), self.total_width)
        for s in self.segments:
            if x <= s.x1:
                frac = (x - s.x0) / s.width if s.width else 0.0
                return min(s.start + int(frac * s.size), s.last)
        return U64_MAX  # pragma: no cover

    def ticks(self) -> list[tuple[float, int, str]]:
        """``(x, address, hex label)`` at every segment boundary; the last is the top address."""
        out = [(s.x0, s.start, fmt_addr(s.start)) for s in self.segments]
        out.append((self.total_width, U64_MAX, fmt_addr(U64_MAX)))
        return out


def _to_range(r) -> IovaRange:
    if isinstance(r, tuple):
        return IovaRange(int(r[0]), int(r[1]))
    return IovaRange(int(r.start), int(r.last))


def cluster_ranges(
    starts, lasts, *, max_clusters: int = 8, gap_ratio: float = 1.0, separation: float = 0.5
) -> list[IovaRange]:
    """Group disjoint areas into a few clusters that each become one axis segment.

    Three rules, all vectorised (100,000 areas cluster in a few milliseconds):

    1. consecutive areas stay together when the gap between them is at most ``gap_ratio``
       times the larger of the two areas (back-to-back allocations, guard pages);
    2. at most ``max_clusters``: only the ``max_clusters - 1`` widest gaps may split;
    3. a split must be a real separation: its gap at least ``separation`` times the span of
       the smaller neighbouring cluster. Randomly scattered areas thus stay one cluster
       rather than being cut at arbitrary gaps. The weakest split is merged first.
    """
    s = as_u64(starts)
    e = as_u64(lasts)
    n = s.size
    if n == 0:
        return []
    if n == 1:
        return [IovaRange(int(s[0]), int(e[0]))]
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    gaps = (s[1:] - e[:-1] - np.uint64(1)).astype(np.float64)
    sizes = (e - s).astype(np.float64) + 1.0
    idx = np.flatnonzero(gaps > np.maximum(sizes[1:], sizes[:-1]) * gap_ratio)
    if idx.size > max_clusters - 1:
        keep = idx[np.argsort(-gaps[idx], kind="stable")[: max(max_clusters - 1, 0)]]
        idx = np.sort(keep)
    splits = idx.tolist()
    while splits:
        firsts = [0] + [i + 1 for i in splits]
        lasts_i = splits + [n - 1]
        spans = [float(int(e[b]) - int(s[a]) + 1) for a, b in zip(firsts, lasts_i)]
        strength = [gaps[g] / min(spans[k], spans[k + 1]) for k, g in enumerate(splits)]
        weakest = int(np.argmin(strength))
        if strength[weakest] >= separation:
            break
        del splits[weakest]
    firsts = [0] + [i + 1 for i in splits]
    lasts_i = splits + [n - 1]
    return [IovaRange(int(s[a]), int(e[b])) for a, b in zip(firsts, lasts_i)]
