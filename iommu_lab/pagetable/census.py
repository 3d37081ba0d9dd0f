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

from iommu_lab.hardware.formats import EntryKind
from iommu_lab.pagetable.walker import Tables, walk_range

__all__ = ["LeafArrays", "TableTree", "leaf_arrays", "table_tree"]

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
