"""The table operations as visitors of the one range iterator (``walker.walk_range``).

Each operation is a per-level function that receives a :class:`~iommu_lab.pagetable.walker.Tables`
batch and acts on its entries -- it never computes an index or a table address:

* :func:`first_leaf` -- the map-time overlap check (generic_pt ``__map_range`` refusing an
  occupied slot with ``-EADDRINUSE``; io-pgtable-arm ``-EEXIST``);
* :func:`install` -- the map writer: tables created on the way down, then a run of leaves
  (``__map_range_leaf``; a leaf replacing an empty table frees it, as ``clear_contig``);
* :func:`unmap` -- ``__unmap_range`` with the format's :class:`UnmapPolicy` (and the old ARM
  ``arm_lpae_split_blk_unmap`` split, queued for re-mapping);
* :func:`free` -- ``__pt_free_tables``: a subtree back to the allocator.

A map or unmap of a few pages has scalar twins, :func:`map_small` and :func:`unmap_small`:
the same steps one entry at a time with plain ints (``walker.Scalar``), which read the whole
range first and answer None -- having changed nothing -- whenever the operation needs more
than they do (a leaf in the way, a large leaf to split or replace, an undecodable entry); the
caller then runs the batch visitors, which also produce every error.

The census of every table and leaf is the visitor in ``census.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iommu_lab.core.perm import Perm
from iommu_lab.hardware.formats import EntryKind, Format, UnmapPolicy
from iommu_lab.pagetable.walker import Tables, scalar, walk_range

__all__ = ["first_leaf", "free", "install", "map_small", "unmap", "unmap_small"]

_U64 = np.uint64


def first_leaf(fmt: Format, memory: Any, root: int, lo: int, hi: int) -> int | None:
    """Offset of the first leaf (or undecodable entry) overlapping ``[lo, hi]``, else None."""

    def visit(t: Tables) -> int | None:
        kinds = t.kinds
        busy = np.flatnonzero((kinds != EntryKind.EMPTY) & (kinds != EntryKind.TABLE))
        stop = int(busy[0]) if busy.size else t.n
        for j in t.where(EntryKind.TABLE).tolist():
            if j > stop:
                break
            got = t.descend_one(j)
            if got is not None:
                return got
        return max(lo, t.off(stop)) if busy.size else None

    return walk_range(fmt, memory, root, lo, hi, visit)


def free(fmt: Format, memory: Any, table: int, level: int, tva: int) -> None:
    """Free the table at ``level`` and every table below it."""

    def visit(t: Tables) -> None:
        if t.level > 0:
            t.descend(t.where(EntryKind.TABLE))
        for a in t.table.tolist():
            memory.free(a)

    last = tva + (fmt.entries(level) << fmt.shift(level)) - 1
    walk_range(fmt, memory, table, tva, last, visit, level=level, tva=tva)


def install(fmt: Format, memory: Any, root: int, off: int, pa: int, pgsize: int, count: int, perm: Perm) -> None:
    """Write ``count`` leaves of ``pgsize`` from offset ``off`` to ``pa``, creating tables.

    Validation has already run (no leaf in the range). One batch per level: the tables the
    run needs are allocated together and the leaves written in one pass per chunk.
    """
    rules = fmt.rules
    lg2 = pgsize.bit_length() - 1
    leaf_level = fmt.level_for_size(pgsize)
    rep = rules.replicas(fmt, leaf_level, lg2)
    bits = rules.leaf_bits(fmt, leaf_level, lg2, perm)
    last = off + pgsize * count - 1

    def visit(t: Tables) -> None:
        fresh = t.fresh is not None and bool(t.fresh.all())
        if t.level > leaf_level:
            kinds = t.kinds
            empty = kinds == EntryKind.EMPTY
            is_tbl = kinds == EntryKind.TABLE
            if not np.all(is_tbl | empty):
                raise AssertionError("map found a leaf that validation missed")  # pragma: no cover
            child = np.zeros(t.n, dtype=_U64)
            if not fresh and is_tbl.any():
                child[is_tbl] = t.children(np.flatnonzero(is_tbl))
            if empty.any():
                new = memory.alloc_many(int(np.count_nonzero(empty)), fmt.table_bytes(t.level - 1))
                child[empty] = new
                memory.scatter(t.eaddr[empty], rules.oa_encode(fmt, new) | _U64(rules.table_bits(fmt, t.level)))
            t.descend(np.arange(t.n), tables=child, fresh=empty)
            return
        if not fresh:
            _replace_tables(t)
        start = t.contiguous()
        first_pa = pa + (t.off(0) - off)
        view = memory.contiguous_view(start, t.n) if (start is not None and rep == 1 and rules.oa_is_identity) else None
        if view is not None:
            # One pass straight into the pool: a cache-sized ramp of page offsets plus each
            # chunk's first entry (address bits and attribute bits never overlap, so + is |).
            chunk = min(t.n, 1 << 16)
            ramp = np.arange(chunk, dtype=_U64) << _U64(lg2)
            for c in range(0, t.n, chunk):
                m = min(chunk, t.n - c)
                np.add(ramp[:m], _U64((first_pa + (c << lg2)) | bits), out=view[c : c + m])
            return
        page = ((t.offset - _U64(off)) >> _U64(lg2)) << _U64(lg2)
        memory.scatter(t.eaddr, rules.oa_encode(fmt, _U64(pa) + page) | _U64(bits))

    def _replace_tables(t: Tables) -> None:
        # A large leaf replaces an (empty) table in its slot: free the subtree first.
        tabs = t.where(EntryKind.TABLE)
        for j, child in zip(tabs.tolist(), t.children(tabs).tolist()):
            free(fmt, memory, int(child), t.level - 1, t.off(j))
        if tabs.size:
            memory.scatter(t.eaddr[tabs], np.zeros(tabs.size, dtype=_U64))

    assert rep >= 1
    walk_range(fmt, memory, root, off, last, visit)


def unmap(fmt: Format, memory: Any, root: int, lo: int, hi: int) -> tuple[int, list]:
    """Clear ``[lo, hi]`` in order, as generic_pt ``__unmap_range``; ``(bytes, pending)``.

    ``pending`` lists ``(offset, pa, length, perm)`` parts of SPLIT leaves to map back.
    """
    rules, policy = fmt.rules, fmt.unmap_policy
    pending: list[tuple[int, int, int, Perm]] = []

    def visit(t: Tables) -> tuple[int, bool]:
        sh, kinds, raw = t.shift, t.kinds, t.raw
        is_leaf = kinds == EntryKind.LEAF
        lg2 = np.zeros(t.n, dtype=np.int64)
        if is_leaf.any():
            lg2[is_leaf] = rules.leaf_lg2(fmt, raw[is_leaf], t.level)
        simple = is_leaf & (lg2 == sh)
        total, j = 0, 0
        while j < t.n:
            eva, k = t.off(j), kinds[j]
            if k == EntryKind.LEAF:
                size = 1 << int(lg2[j])
                start = eva & ~(size - 1)
                head, tail = start < lo, start + size - 1 > hi
                back = (eva - start) >> sh  # slots of this leaf before entry j (replicas)
                if (head or tail) and policy is UnmapPolicy.SPLIT:
                    total += _split(t, j, start, size)
                    j += max(1, size >> sh) - back
                    continue
                if head or (tail and policy is UnmapPolicy.REFUSE):
                    return total, True
                if simple[j] and not tail:
                    rest = simple[j:]
                    m = int(np.argmin(rest)) if not rest.all() else rest.shape[0]
                    m = min(m, max(1, (hi - eva + 1) >> sh))  # the run may pass hi
                    memory.scatter(t.slots_at(j, eva, m), np.zeros(m, dtype=_U64))
                    total += m << sh
                    j += m
                    continue
                rep = max(1, size >> sh)
                memory.scatter(t.slots_at(j, start, rep), np.zeros(rep, dtype=_U64))
                total += size
                j += rep - back
                continue
            if k == EntryKind.TABLE:
                got, stop = t.descend_one(j)
                total += got
                if t.covered(j) and t.child_empty(j):
                    memory.free(int(t.children([j])[0]))
                    memory.scatter(t.eaddr[j : j + 1], np.zeros(1, dtype=_U64))
                if stop:
                    return total, True
                j += 1
                continue
            return total, True
        return total, False

    def _split(t: Tables, j: int, start: int, size: int) -> int:
        # arm_lpae_split_blk_unmap: clear the leaf, queue the parts outside the range.
        raw = t.raw[j : j + 1]
        lg2 = rules.leaf_lg2(fmt, raw, t.level)
        base = int(rules.leaf_base(fmt, raw, t.level, lg2)[0])
        perm = Perm(int(rules.leaf_perm(fmt, raw, t.level)[0]))
        rep = max(1, size >> t.shift)
        memory.scatter(t.slots_at(j, start, rep), np.zeros(rep, dtype=_U64))
        end = start + size - 1
        if start < lo:
            pending.append((start, base, lo - start, perm))
        if end > hi:
            pending.append((hi + 1, base + (hi + 1 - start), end - hi, perm))
        return min(hi, end) - max(lo, start) + 1

    total, _ = walk_range(fmt, memory, root, lo, hi, visit)
    return total, pending


# ============================================================================ small operations
_EMPTY, _TABLE, _LEAF = int(EntryKind.EMPTY), int(EntryKind.TABLE), int(EntryKind.LEAF)


def map_small(fmt: Format, memory: Any, root: int, runs: list, perm: Perm) -> bool:
    """:func:`first_leaf` then :func:`install` for each run, one entry at a time.

    ``runs`` are ``(offset, pa, pgsize, count)``. Every entry the runs touch is read before
    anything is written; when one is not EMPTY (above the leaf level: not EMPTY or TABLE), or
    a table to write into is not writable, nothing changes and the answer is False. Otherwise
    tables are allocated level by level in the batch visitor's order (one ``alloc_many`` per
    level with the empty entries in offset order) and the leaves written; the answer is True.
    """
    sc = scalar(fmt)
    rules = fmt.rules
    word, writable = memory.word, memory.writable
    plans = []
    for off, pa, pgsize, count in runs:
        lg2 = pgsize.bit_length() - 1
        leaf_level = fmt.level_for_size(pgsize)
        last = off + pgsize * count - 1
        level, cur = fmt.top_level, [(root, 0)]
        while cur:
            nxt = []
            sh = sc.shift[level]
            for table, tva in cur:
                for j in sc.span(level, tva, off, last):
                    ea = table + 8 * j
                    raw = word(ea)
                    k = sc.kind(raw, level)
                    if k == _EMPTY:
                        if not writable(ea):
                            return False
                    elif k != _TABLE or level == leaf_level:
                        return False
                    else:
                        nxt.append((sc.child(raw, level), tva + (j << sh)))
            if level == leaf_level:
                break
            level, cur = level - 1, nxt
        plans.append((off, pa, lg2, leaf_level, last))
    put = memory.put_word
    for off, pa, lg2, leaf_level, last in plans:
        level, cur = fmt.top_level, [(root, 0, False)]
        while level > leaf_level:
            sh = sc.shift[level]
            ents = []
            for table, tva, fresh in cur:
                for j in sc.span(level, tva, off, last):
                    ea = table + 8 * j
                    raw = 0 if fresh else word(ea)
                    ents.append((ea, tva + (j << sh), raw, sc.kind(raw, level) == _EMPTY))
            n_new = sum(e[3] for e in ents)
            new = memory.alloc_many(n_new, sc.table_bytes[level - 1]).tolist() if n_new else []
            bits = rules.table_bits(fmt, level) if n_new else 0
            cur, i = [], 0
            for ea, eva, raw, empty in ents:
                if empty:
                    put(ea, rules.oa_encode(fmt, new[i]) | bits)
                    cur.append((new[i], eva, True))
                    i += 1
                else:
                    cur.append((sc.child(raw, level), eva, False))
            level -= 1
        bits = sc.leaf_bits(leaf_level, lg2, perm)
        sh = sc.shift[leaf_level]
        for table, tva, _fresh in cur:
            for j in sc.span(leaf_level, tva, off, last):
                page = ((tva + (j << sh) - off) >> lg2) << lg2
                put(table + 8 * j, rules.oa_encode(fmt, pa + page) | bits)
    return True


class _Larger(Exception):
    """The range needs the batch visitor (a SPLIT, or a leaf of another size than its slot)."""


def unmap_small(fmt: Format, memory: Any, root: int, lo: int, hi: int) -> int | None:
    """:func:`unmap` one entry at a time: the bytes unmapped, or None having changed nothing.

    The walk is planned first -- clears and frees recorded in generic_pt's depth-first order,
    reading through the clears already planned -- and applied only if it finished without
    needing a split (``UnmapPolicy.SPLIT`` with a leaf crossing an end of the range) or a
    leaf larger than its slot (AMD NL=7, Svnapot), which the batch visitor handles.
    """
    sc = scalar(fmt)
    policy = fmt.unmap_policy
    word = memory.word
    cleared: set[int] = set()
    ops: list[tuple[bool, int]] = []  # (free?, address) in the batch visitor's order

    def visit(level: int, table: int, tva: int) -> tuple[int, bool]:
        sh = sc.shift[level]
        item = 1 << sh
        total = 0
        for j in sc.span(level, tva, lo, hi):
            ea, eva = table + 8 * j, tva + (j << sh)
            raw = 0 if ea in cleared else word(ea)
            k = sc.kind(raw, level)
            if k == _LEAF:
                if sc.leaf_lg2(raw, level) != sh:
                    raise _Larger
                head, tail = eva < lo, eva + item - 1 > hi
                if (head or tail) and policy is UnmapPolicy.SPLIT:
                    raise _Larger
                if head or (tail and policy is UnmapPolicy.REFUSE):
                    return total, True
                cleared.add(ea)
                ops.append((False, ea))
                total += item
                continue
            if k == _TABLE:
                child = sc.child(raw, level)
                got, stop = visit(level - 1, child, eva)
                total += got
                if lo <= eva and eva + item - 1 <= hi and all(
                    a in cleared for a in memory.nonzero_words(child, sc.entries[level - 1])
                ):
                    ops.append((True, child))
                    cleared.add(ea)
                    ops.append((False, ea))
                if stop:
                    return total, True
                continue
            return total, True
        return total, False

    try:
        total, _ = visit(fmt.top_level, root, 0)
    except _Larger:
        return None
    for is_free, addr in ops:
        if is_free:
            memory.free(addr)
        else:
            memory.put_word(addr, 0)
    return total
