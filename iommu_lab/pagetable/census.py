"""The census of a page table: every table page and every leaf, read from the entries.

A visitor of the one range iterator (``walker.walk_range``) that descends into every table
entry of a level at once, so a level is one gather (in chunks of about a million entries,
keeping temporaries cache-friendly): tens of thousands of table pages take well under a second.
It answers what generic_pt's kunit suite checks on exit (no table memory leaked) and what a
design review asks (table pages per level, bytes, the page-size mix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iommu_lab.core import display
from iommu_lab.core.ranges import exact_int, fmt_size
from iommu_lab.hardware import formats as _formats
from iommu_lab.hardware.formats import EntryKind, Format
from iommu_lab.pagetable.walker import Tables, walk_range

__all__ = ["LeafArrays", "Periodic", "TableCensus", "TableTree", "leaf_arrays", "table_census", "table_tree"]

_U64 = np.uint64


@dataclass
class TableTree:
    """Every table page and every leaf of a page table, as arrays (read from the entries).

    Table arrays are in IOVA order within each level (top level first). ``offset`` is the first
    input offset a table covers (``iova - va_base`` for a TCE window; the lower canonical half
    comes first for sign-extended formats). ``span`` is the input bytes one table covers. Leaf
    arrays hold one row per run of equal, neighbouring leaves (replicated AMD NL=7 slots once).
    """

    fmt: Any
    level: np.ndarray
    address: np.ndarray
    offset: np.ndarray
    span: np.ndarray  # float64: a top table may span 2**64
    used: np.ndarray
    entries: np.ndarray
    nbytes: np.ndarray
    leaf_offset: np.ndarray  #: first offset of each run of equal, neighbouring leaves
    leaf_size: np.ndarray  #: page size of the run's leaves
    leaf_count: np.ndarray  #: leaves in the run
    leaf_level: np.ndarray

    def __len__(self) -> int:
        return int(self.level.size)

    @property
    def table_bytes(self) -> int:
        return int(self.nbytes.sum())

    def per_level(self) -> dict[int, tuple[int, int]]:
        """``{level: (tables, bytes)}``, top level first."""
        out = {}
        for lv in range(self.fmt.top_level, -1, -1):
            m = self.level == lv
            out[lv] = (int(m.sum()), int(self.nbytes[m].sum()))
        return out

    def mix(self) -> dict[int, int]:
        """``{page size: bytes mapped}``, smallest page first."""
        out: dict[int, int] = {}
        for s, c in zip(self.leaf_size.tolist(), self.leaf_count.tolist()):
            out[int(s)] = out.get(int(s), 0) + int(s) * int(c)
        return dict(sorted(out.items()))

    @property
    def leaves(self) -> int:
        return int(self.leaf_count.sum())

    def native_refs(self) -> float | None:
        """Byte-weighted references of a cold single-stage walk: levels from the root to the leaf."""
        if not self.leaf_size.size:
            return None
        refs = (self.fmt.top_level - self.leaf_level + 1).astype(np.float64)
        w = self.leaf_size.astype(np.float64) * self.leaf_count
        return float((refs * w).sum() / w.sum())


@dataclass(frozen=True)
class LeafArrays:
    """Every leaf as parallel arrays in offset order of discovery (one row per leaf)."""

    offset: np.ndarray  #: uint64 first table offset of each leaf
    pa: np.ndarray  #: uint64 output address
    lg2: np.ndarray  #: int64 log2 of the leaf size
    perm: np.ndarray  #: uint8 ``Perm`` bits
    level: np.ndarray  #: int8 table level of the leaf entry


def _every_entry(fmt) -> tuple[int, int]:
    return 0, (1 << fmt.va_bits) - 1


def _first_slots(t: Tables, leaf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The leaf entries that start a leaf (replicated AMD NL=7 slots count once), with lg2."""
    lg2 = t.fmt.rules.leaf_lg2(t.fmt, t.raw[leaf], t.level).astype(np.int64)
    first = (t.slot[leaf] & ((np.int64(1) << (lg2 - t.shift)) - 1)) == 0
    return leaf[first], lg2[first]


def table_tree(pt: Any) -> TableTree:
    """Read every table page and leaf of ``pt`` from its entries, one gather per level.

    Read-only: the iterator reads each level's tables with the memory's ``gather`` and the
    format's rules classify them.
    """
    f = pt.fmt
    cols: dict[str, list] = {k: [] for k in ("level", "address", "offset", "used", "lo", "ls", "lc", "ll")}

    def visit(t: Tables) -> None:
        cols["level"].append(np.full(t.table.size, t.level, dtype=np.int8))
        cols["address"].append(t.table)
        cols["offset"].append(t.tva)
        busy = t.kinds != EntryKind.EMPTY
        cols["used"].append(np.bincount(t.tab[busy], minlength=t.table.size).astype(np.int64))
        leaf = t.where(EntryKind.LEAF)
        if leaf.size:
            _leaf_runs(t, leaf, cols)
        if t.level > 0:
            t.descend(t.where(EntryKind.TABLE))

    walk_range(f, pt.memory, int(pt.root), *_every_entry(f), visit)
    cat = lambda xs, dt: np.concatenate(xs).astype(dt, copy=False) if xs else np.zeros(0, dtype=dt)  # noqa: E731
    level, address, offset = cat(cols["level"], np.int8), cat(cols["address"], _U64), cat(cols["offset"], _U64)
    order = np.lexsort((offset, -level.astype(np.int64)))  # top level first, IOVA order within
    level, address, offset = level[order], address[order], offset[order]
    used = cat(cols["used"], np.int64)[order]
    entries = np.array([f.entries(lv) for lv in level.tolist()], dtype=np.int64)
    nbytes = np.array([f.table_bytes(lv) for lv in level.tolist()], dtype=np.int64)
    span = entries.astype(np.float64) * np.array([float(1 << f.shift(lv)) for lv in level.tolist()])
    lo, ls = cat(cols["lo"], _U64), cat(cols["ls"], _U64)
    lc, ll = cat(cols["lc"], np.int64), cat(cols["ll"], np.int8)
    if lo.size > 1:  # join runs that continue across tables (same size and level)
        o = np.argsort(lo, kind="stable")
        lo, ls, lc, ll = lo[o], ls[o], lc[o], ll[o]
        end = lo + lc.astype(_U64) * ls
        join = np.zeros(lo.size, dtype=bool)
        join[1:] = (lo[1:] == end[:-1]) & (ls[1:] == ls[:-1]) & (ll[1:] == ll[:-1])
        idx = np.flatnonzero(~join)
        lc = np.add.reduceat(lc, idx)
        lo, ls, ll = lo[idx], ls[idx], ll[idx]
    return TableTree(f, level, address, offset, span, used, entries, nbytes, lo, ls, lc, ll)


def _leaf_runs(t: Tables, leaf: np.ndarray, cols: dict) -> None:
    """Append the runs of neighbouring leaves of one batch (consecutive entries of one table)."""
    if t.fmt.fixed_leaf_size:
        prev = np.zeros(leaf.size, dtype=bool)
        prev[1:] = (leaf[1:] == leaf[:-1] + 1) & (t.tab[leaf[1:]] == t.tab[leaf[:-1]])
        starts = np.flatnonzero(~prev)
        counts = np.diff(np.append(starts, leaf.size))
        cols["lo"].append(t.offset[leaf[starts]])
        cols["ls"].append(np.full(starts.size, t.item, dtype=_U64))
        cols["lc"].append(counts.astype(np.int64))
        cols["ll"].append(np.full(starts.size, t.level, dtype=np.int8))
        return
    js, lg2 = _first_slots(t, leaf)
    cols["lo"].append(t.offset[js])
    cols["ls"].append((np.int64(1) << lg2).astype(_U64))
    cols["lc"].append(np.ones(js.size, dtype=np.int64))
    cols["ll"].append(np.full(js.size, t.level, dtype=np.int8))


def leaf_arrays(fmt: Any, memory: Any, root: int) -> LeafArrays:
    """Every leaf of the table at ``root``, decoded from the entries (one row per leaf)."""
    parts: list[tuple[np.ndarray, ...]] = []
    rules = fmt.rules

    def visit(t: Tables) -> None:
        leaf = t.where(EntryKind.LEAF)
        if leaf.size:
            js, lg2 = _first_slots(t, leaf)
            raw = t.raw[js]
            base = rules.leaf_base(fmt, raw, t.level, lg2)
            perm = rules.leaf_perm(fmt, raw, t.level)
            parts.append((t.offset[js], base.astype(_U64), lg2, perm.astype(np.uint8), np.full(js.size, t.level, dtype=np.int8)))
        if t.level > 0:
            t.descend(t.where(EntryKind.TABLE))

    walk_range(fmt, memory, int(root), *_every_entry(fmt), visit)
    if not parts:
        z = np.zeros(0, dtype=_U64)
        return LeafArrays(z, z, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int8))
    return LeafArrays(*(np.concatenate(c) for c in zip(*parts)))


# ============================================================================ census by arithmetic
@dataclass(frozen=True)
class Periodic:
    """``count`` mappings of ``size`` bytes at ``start``, ``start + stride``, ... (one ``map`` each).

    The shape a stress test or a NIC ring builds: one 4 KiB buffer every 2 MiB over 16 TiB is
    ``Periodic(0, 8 << 20, 2 << 20, 4096)``. ``stride >= size`` (mappings never overlap, as
    ``iommu_map`` refuses an overlap).
    """

    start: int
    count: int
    stride: int
    size: int

    def __post_init__(self) -> None:
        for name in ("start", "count", "stride", "size"):
            v = exact_int(getattr(self, name), f"Periodic {name}")
            if not 0 <= v < 1 << 64:
                raise ValueError(f"Periodic {name} {_cut(v)} must be in [0, 2^64)")
        if self.size == 0 or self.count == 0:
            raise ValueError(f"Periodic size {self.size} and count {self.count} must be positive")
        if self.count > 1 and self.stride < self.size:
            raise ValueError(
                f"Periodic stride {self.stride:#x} is smaller than size {self.size:#x}: the mappings "
                f"would overlap, which iommu_map refuses (-EEXIST); stride must be >= size"
            )
        if self.start + (self.count - 1) * self.stride + self.size > 1 << 64:
            raise ValueError("Periodic layout ends beyond 2^64")


@dataclass(frozen=True)
class TableCensus:
    """Table pages a mapping layout needs, per level, computed without building the tables.

    ``tables[level]`` and ``bytes[level]`` are exact for a table that starts empty and receives
    the layout's ``map`` calls (each split into pages as ``iommu_pgsize`` does, with the
    physical address aligned like the IOVA), as ``PageTable.map`` would build it.
    """

    fmt: Any
    tables: dict  #: level -> distinct table pages at that level, top level first
    bytes: dict  #: level -> bytes of those tables
    leaves: dict  #: page size -> leaf entries mapped
    mapped: int  #: bytes mapped

    @property
    def table_bytes(self) -> int:
        return int(sum(self.bytes.values()))

    @property
    def table_count(self) -> int:
        return int(sum(self.tables.values()))

    def __str__(self) -> str:
        name = getattr(self.fmt, "name", str(self.fmt))
        lines = [f"table census of {name}: {fmt_size(self.mapped)} mapped, "
                 f"{self.table_count:,} table pages = {fmt_size(self.table_bytes, approx=True)}"]
        for lv, n in self.tables.items():
            named = self.fmt.level_name(lv) if hasattr(self.fmt, "level_name") else f"level {lv}"
            lines.append(f"  {named + ' tables:':<18}{n:>14,}  {fmt_size(self.bytes[lv], approx=True):>12}")
        for s, n in self.leaves.items():
            lines.append(f"  {fmt_size(s):>8} leaves: {n:,}")
        return "\n".join(lines)

    _repr_html_ = display.html
    plot = display.plot


def _floor_sum(n: int, m: int, a: int, b: int) -> int:
    """``sum(floor((a*i + b) / m) for i in range(n))`` in O(log) (a, b >= 0, m > 0)."""
    total = 0
    while True:
        if a >= m:
            total += (n - 1) * n // 2 * (a // m)
            a %= m
        if b >= m:
            total += n * (b // m)
            b %= m
        y = a * n + b
        if y < m:
            return total
        n, b, m, a = y // m, y % m, a, m


def _pieces(bitmap: int, iova: int, size: int) -> list[tuple[int, int, int]]:
    """``(offset in mapping, bytes, page size)`` runs of one ``map`` (pa aligned like iova)."""
    out: list[tuple[int, int, int]] = []
    v, left = iova, size
    while left:
        fits = bitmap & ((1 << left.bit_length()) - 1)
        if v:
            fits &= (v & -v) * 2 - 1
        if not fits:
            raise ValueError(
                f"no page size in {bitmap:#x} fits IOVA {_cut(v)} with {left:#x} bytes left: the "
                f"layout must be aligned to the smallest page size"
            )
        p = 1 << (fits.bit_length() - 1)
        run = left - left % p
        bigger = bitmap & ~((p << 1) - 1)
        while bigger:  # stop where a larger page becomes possible and a whole one fits
            q = bigger & -bigger
            edge = -(-v // q) * q
            if edge + q <= v + left:
                run = min(run, edge - v)
                break
            bigger &= bigger - 1
        if out and out[-1][2] == p:
            o, n, _ = out[-1]
            out[-1] = (o, n + run, p)
        else:
            out.append((v - iova, run, p))
        v += run
        left -= run
    return out


def _leaf_level(fmt: Any, p: int) -> int:
    lg2 = p.bit_length() - 1
    return max(lv for lv in range(fmt.levels) if fmt.shift(lv) <= lg2)


def _chain_blocks(runs: list[tuple[int, int, int, int]], shift: int) -> int:
    """Distinct ``2**shift``-aligned blocks touched by sorted disjoint periodic runs.

    ``runs`` are ``(lo, hi, count, stride)``: intervals ``[lo + i*stride, hi + i*stride]``
    (inclusive) for ``i < count``, listed so that the whole sequence (every run of item 0,
    then of item 1, ...) is in address order. For sorted disjoint intervals the distinct blocks
    are the blocks of each interval minus one for every neighbouring pair that shares a block.
    """
    S = 1 << shift
    total = 0
    for lo, hi, n, d in runs:
        total += _floor_sum(n, S, d, hi) - _floor_sum(n, S, d, lo) + n
    return total


def _shared(x: int, y: int, n: int, dx: int, dy: int, shift: int) -> int:
    """How many ``i < n`` have ``x + i*dx`` and ``y + i*dy`` (y > x) in the same block."""
    S = 1 << shift
    if dx == dy:
        if y - x >= S:
            return 0
        # y - x < S: their blocks differ by 0 or 1, so equality = 1 - (difference)
        return n - (_floor_sum(n, S, dx, y) - _floor_sum(n, S, dx, x))
    raise AssertionError("runs of one family share a stride")  # pragma: no cover


def table_census(fmt: Any, layout: Any, *, pgsize_bitmap: int | None = None) -> TableCensus:
    """Exact table pages and bytes per level that ``layout``'s mappings need, without tables.

    Interval arithmetic over aligned blocks: a table at level ``L`` below the top exists for
    each ``span(L)``-aligned block of input space that holds a leaf installed at level ``L`` or
    below, so counting tables is counting the distinct blocks the mapped ranges touch, level
    by level, after splitting each mapping into page-size runs as ``iommu_pgsize``
    (drivers/iommu/iommu.c) does. A periodic layout is summed in closed form (floor sums), so
    8 M mappings cost the same as one: O(families × levels × page sizes).

    Parameters
    ----------
    fmt : Format or str
        The page-table format.
    layout : Periodic, (iova, size) or a list of them
        The ``map`` calls, in increasing IOVA order and not overlapping.
    pgsize_bitmap : int, optional
        Page sizes ``map`` may use (default: the format's).

    Raises
    ------
    ValueError, TypeError
        For a layout that is unordered, overlapping, unaligned, or outside the format's input.
    """
    f = _formats.get(fmt) if isinstance(fmt, str) else fmt
    if not isinstance(f, Format):
        raise TypeError(f"fmt must be a Format or a format name, got {type(fmt).__name__}")
    bitmap = f.pgsize_bitmap if pgsize_bitmap is None else exact_int(pgsize_bitmap, "pgsize_bitmap")
    if bitmap <= 0 or bitmap >> 64:
        raise ValueError(f"pgsize_bitmap {_cut(bitmap)} must be a non-empty 64-bit mask")
    fams = _families(layout)
    if f.dynamic_top:  # the table grows a level whenever a mapping lies beyond its reach
        end = max(x.start + (x.count - 1) * x.stride + x.size - 1 for x in fams)
        while end >> f.va_bits and f.levels < (f.grow_to or f.levels):
            f = f.grown(f.levels + 1)
    if len(fams) > _MAX_FAMILIES:
        raise ValueError(f"layout has {len(fams):,} entries; at most {_MAX_FAMILIES:,} (use Periodic for regular ones)")
    top = f.top_level
    space = 1 << f.va_bits
    # per family: the page-size runs of one mapping (identical for every mapping when the stride
    # keeps the alignment, which is checked), their leaf levels, and its table-offset origin
    plans = []
    prev_end = -1
    leaves: dict[int, int] = {}
    mapped = 0
    for fam in fams:
        first, last = fam.start, fam.start + (fam.count - 1) * fam.stride + fam.size - 1
        if first <= prev_end:
            raise ValueError(
                f"layout entry at {_cut(first)} starts before the previous one ends ({_cut(prev_end)}): "
                f"list mappings in increasing IOVA order without overlap"
            )
        prev_end = last
        if not any(r.start <= first and last <= r.last for r in f.input_ranges):
            raise ValueError(
                f"layout [{_cut(first)}, {_cut(last)}] is not inside one of {f.name}'s input ranges "
                f"({', '.join(str(r) for r in f.input_ranges)})"
            )
        ps = _pieces(bitmap, fam.start, fam.size)
        big = max(p for _, _, p in ps)
        if fam.count > 1 and fam.stride % big:
            raise ValueError(
                f"stride {fam.stride:#x} is not a multiple of the largest page ({big:#x}) the first "
                f"mapping uses, so later mappings split differently; list them separately"
            )
        for _, n, p in ps:
            leaves[p] = leaves.get(p, 0) + fam.count * (n // p)
        mapped += fam.count * fam.size
        off = (fam.start - f.va_base) % space
        plans.append((off, fam, [(o, n, _leaf_level(f, p)) for o, n, p in ps]))
    tables = {top: 1}
    for L in range(top - 1, -1, -1):
        shift = f.shift(L + 1)  # a level-L table covers one level-(L+1) entry's span
        runs: list[tuple[int, int, int, int]] = []  # (lo, hi, count, stride) in address order
        seq: list[tuple[int, int, int, int, int]] = []  # per family: first lo, last hi, n, d, nruns
        for off, fam, ps in plans:
            rel: list[tuple[int, int]] = []
            for o, n, lv in ps:
                if lv <= L:
                    if rel and rel[-1][1] + 1 == o:
                        rel[-1] = (rel[-1][0], o + n - 1)
                    else:
                        rel.append((o, o + n - 1))
            if not rel:
                continue
            for a, b in rel:
                runs.append((off + a, off + b, fam.count, fam.stride))
            seq.append((off, fam, rel))
        count = _chain_blocks(runs, shift)
        # neighbours sharing a block: runs within an item, the last run of an item and the first
        # of the next, and the last run of a family and the first of the next family
        for off, fam, rel in seq:
            for (a, b), (c, _) in zip(rel, rel[1:]):
                count -= _shared(off + b, off + c, fam.count, fam.stride, fam.stride, shift)
            if fam.count > 1:
                count -= _shared(off + rel[-1][1], off + rel[0][0] + fam.stride, fam.count - 1,
                                 fam.stride, fam.stride, shift)
        for (o1, f1, r1), (o2, f2, r2) in zip(seq, seq[1:]):
            x = o1 + r1[-1][1] + (f1.count - 1) * f1.stride
            y = o2 + r2[0][0]
            count -= int(x >> shift == y >> shift)
        tables[L] = count
    nbytes = {lv: n * f.table_bytes(lv) for lv, n in tables.items()}
    return TableCensus(f, tables, nbytes, dict(sorted(leaves.items())), mapped)


_MAX_FAMILIES = 1 << 16


def _families(layout: Any) -> list[Periodic]:
    if isinstance(layout, Periodic):
        return [layout]
    if isinstance(layout, tuple) and len(layout) == 2 and all(isinstance(x, (int, np.integer)) for x in layout):
        layout = [layout]
    if isinstance(layout, (str, bytes)) or not hasattr(layout, "__iter__"):
        raise TypeError(
            f"layout must be a Periodic, an (iova, size) pair or a list of them, got {type(layout).__name__}"
        )
    out: list[Periodic] = []
    for i, item in enumerate(layout):
        if i >= _MAX_FAMILIES:
            raise ValueError(f"layout has more than {_MAX_FAMILIES:,} entries (use Periodic for regular ones)")
        if isinstance(item, Periodic):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(Periodic(item[0], 1, 0, item[1]))
        else:
            raise TypeError(f"layout entry {i} must be a Periodic or an (iova, size) pair, got {_cut(item)}")
    if not out:
        raise ValueError("layout is empty: give at least one mapping")
    return out


def _cut(value: Any, limit: int = 48) -> str:
    text = f"{value:#x}" if isinstance(value, int) else repr(value)
    return text if len(text) <= limit else text[: limit - 10] + "…" + text[-8:]
