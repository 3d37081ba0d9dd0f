"""Compiled translation caches: set-associative arrays of tags and replacement order, in numba.

The same caches as :class:`iommu_lab.dma.cache.Cache` (the oracle), laid out as flat numpy
arrays so one compiled loop can charge a whole stretch of accesses without calling Python.
Every cache of a replay lives in one *bank* (:class:`iommu_lab.dma.bank.Bank` builds it):

* a cache ``c`` owns ``entries`` slots; slot ``s`` holds the key ``(k1[s], k2[s])``
  (``k1 = tag * 64 + lg2`` for an IOTLB entry of page size ``2**lg2``, ``tag * 64 + level`` for a
  paging-structure entry; ``k2`` the page or table-entry number, whose low bits choose the set,
  as hardware indexes);
* each set keeps its live slots in a doubly linked list in replacement order, next victim first,
  exactly the insertion order the oracle's per-set ``dict`` keeps: LRU moves a hit to the tail,
  FIFO and RANDOM leave the order alone, RANDOM evicts the ``r``-th entry for ``r`` drawn from a
  per-cache xorshift64 stream shared with the oracle (:class:`iommu_lab.dma.cache.XorShift`);
* a linear-probing hash table per cache finds a key's slot in O(1), so a fully associative
  cache of thousands of entries costs what a 4-way one does.

The bank is one int64 array ``M``: its first ``len(FIELDS)`` cells hold where each region
(:data:`FIELDS`) starts; ``cfg`` holds each cache's layout (:data:`CFG`, 10 cells per cache),
``stats`` its counters in the order of :class:`~iommu_lab.dma.cache.CacheStats` (hits, misses,
fills, evictions, invalidated). One array rather than many keeps every helper's signature
short; the helpers compile without numba's reference counting (``_nrt=False``: they allocate
nothing), since an atomic reference-count update per array argument per call cost more than
the cache work itself on a miss.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["CFG", "COUNTERS", "FIELDS", "charge", "distinct", "flush_tags", "invalidate_range", "lookup_tlb",
           "fill_tlb", "pack_facts"]

#: The regions of a bank, in header order.
FIELDS = ("cfg", "stats", "rng", "sizecnt", "szlist", "nsz", "k1", "k2", "live", "prv", "nxt",
          "head", "tail", "cnt", "freetop", "freestk", "htab")
#: Columns of ``cfg``: first slot, sets, ways, first set, first hash cell, hash mask, hash bits,
#: replacement (0 LRU, 1 FIFO, 2 RANDOM), kind (0 IOTLB-like: any page size; 1 one level of a
#: paging-structure cache), shift (a walk-cache level's ``item_lg2``).
CFG = ("slot0", "nsets", "ways", "set0", "hash0", "hmask", "hbits", "policy", "kind", "shift")
#: Counters of one stretch, in ``Counters`` field names.
COUNTERS = ("hits", "collapsed", "stale_hits", "walks", "faults", "refs", "s1_refs", "s2_refs", "stale_psc")

_SLOT0, _NSETS, _WAYS, _SET0, _HASH0, _HMASK, _HBITS, _POLICY, _KIND, _SHIFT = range(10)
_HITS, _MISSES, _FILLS, _EVICTIONS, _INVALIDATED = range(5)
_LRU, _FIFO, _RANDOM = 0, 1, 2
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0xBF58476D1CE4E5B9)


@njit(cache=True, inline="always", _nrt=False)
def _lsr(x, s):
    """Logical right shift of an address held as int64 (addresses may use bit 63)."""
    return np.int64(np.uint64(x) >> np.uint64(s))


@njit(cache=True, inline="always", _nrt=False)
def _hash(a, b, bits):
    h = (np.uint64(a) * _M1) ^ (np.uint64(b) * _M2)
    h ^= h >> np.uint64(29)
    h *= _M3
    return np.int64(h >> np.uint64(64 - bits))


#: Where ``cfg`` starts: the first region after the header (:class:`~iommu_lab.dma.bank.Bank`
#: lays it out there), a constant so reading a cache's layout costs one load, not two.
CFG0 = len(FIELDS)


@njit(cache=True, inline="always", _nrt=False)
def _cfg(M, c, j):
    return M[CFG0 + c * 10 + j]


@njit(cache=True, inline="always", _nrt=False)
def _stat(M, c, j, add):
    M[M[1] + c * 5 + j] += add


@njit(cache=True, _nrt=False)
def _find(M, c, a, b):
    k1, k2, ht = M[6], M[7], M[16] + _cfg(M, c, _HASH0)
    hm = _cfg(M, c, _HMASK)
    i = _hash(a, b, _cfg(M, c, _HBITS)) & hm
    while True:
        v = M[ht + i]
        if v == 0:
            return -1
        s = v - 1
        if M[k1 + s] == a and M[k2 + s] == b:
            return s
        i = (i + 1) & hm


@njit(cache=True, _nrt=False)
def _hash_insert(M, c, s):
    k1, k2, ht = M[6], M[7], M[16] + _cfg(M, c, _HASH0)
    hm = _cfg(M, c, _HMASK)
    i = _hash(M[k1 + s], M[k2 + s], _cfg(M, c, _HBITS)) & hm
    while M[ht + i] != 0:
        i = (i + 1) & hm
    M[ht + i] = s + 1


@njit(cache=True, _nrt=False)
def _hash_delete(M, c, s):
    """Remove slot ``s`` from the table, shifting later cells back (no tombstones)."""
    k1, k2, ht = M[6], M[7], M[16] + _cfg(M, c, _HASH0)
    hm, bits = _cfg(M, c, _HMASK), _cfg(M, c, _HBITS)
    p = _hash(M[k1 + s], M[k2 + s], bits) & hm
    while M[ht + p] != s + 1:
        p = (p + 1) & hm
    j = p
    while True:
        j = (j + 1) & hm
        v = M[ht + j]
        if v == 0:
            break
        h = _hash(M[k1 + v - 1], M[k2 + v - 1], bits) & hm
        # the entry at j may move to p unless its home lies cyclically in (p, j]
        if (p < j and (h <= p or h > j)) or (p > j and (h <= p and h > j)):
            M[ht + p] = v
            p = j
    M[ht + p] = 0


@njit(cache=True, _nrt=False)
def _unlink(M, g, s):
    prv, nxt = M[9], M[10]
    p, n = M[prv + s], M[nxt + s]
    if p >= 0:
        M[nxt + p] = n
    else:
        M[M[11] + g] = n
    if n >= 0:
        M[prv + n] = p
    else:
        M[M[12] + g] = p


@njit(cache=True, _nrt=False)
def _append(M, g, s):
    prv, nxt, tail = M[9], M[10], M[12]
    t = M[tail + g]
    M[prv + s] = t
    M[nxt + s] = -1
    if t >= 0:
        M[nxt + t] = s
    else:
        M[M[11] + g] = s
    M[tail + g] = s


@njit(cache=True, _nrt=False)
def _sizes_changed(M, c):
    """Rebuild the list of page sizes present, largest first (lookups probe only those)."""
    szc, szl = M[3] + c * 64, M[4] + c * 64
    n = 0
    for lg in range(63, -1, -1):
        if M[szc + lg] > 0:
            M[szl + n] = lg
            n += 1
    M[M[5] + c] = n


@njit(cache=True, _nrt=False)
def _remove(M, c, g, s):
    """Drop the entry in slot ``s`` of set ``g``; counts nothing."""
    _unlink(M, g, s)
    _hash_delete(M, c, s)
    M[M[8] + s] = 0
    M[M[13] + g] -= 1
    ft = M[14] + g
    M[M[15] + _cfg(M, c, _SLOT0) + (g - _cfg(M, c, _SET0)) * _cfg(M, c, _WAYS) + M[ft]] = s
    M[ft] += 1
    if _cfg(M, c, _KIND) == 0:
        i = M[3] + c * 64 + (M[M[6] + s] & 63)
        M[i] -= 1
        if M[i] == 0:
            _sizes_changed(M, c)


@njit(cache=True, _nrt=False)
def _probe(M, c, a, b):
    """Whether key ``(a, b)`` is cached; an LRU hit becomes most recent. Counts nothing."""
    s = _find(M, c, a, b)
    if s < 0:
        return False
    if _cfg(M, c, _POLICY) == _LRU:
        g = _cfg(M, c, _SET0) + (b & (_cfg(M, c, _NSETS) - 1))
        if M[M[12] + g] != s:
            _unlink(M, g, s)
            _append(M, g, s)
    return True


@njit(cache=True, _nrt=False)
def _fill(M, c, a, b):
    """Insert key ``(a, b)`` as :meth:`Cache.fill` does (present: LRU refresh; full: evict)."""
    if not _probe(M, c, a, b):
        _insert(M, c, a, b)


@njit(cache=True, _nrt=False)
def _insert(M, c, a, b):
    """Insert key ``(a, b)``, known to be absent (a lookup just missed it); full: evict.

    A full set hands the victim's slot straight to the new key (which slot an entry occupies
    changes no behaviour), so an eviction costs one hash removal and one insertion."""
    ways = _cfg(M, c, _WAYS)
    if ways == 0:
        return
    g = _cfg(M, c, _SET0) + (b & (_cfg(M, c, _NSETS) - 1))
    cnt = M[13] + g
    kind = _cfg(M, c, _KIND)
    if M[cnt] >= ways:
        s = M[M[11] + g]
        if _cfg(M, c, _POLICY) == _RANDOM:
            x = np.uint64(M[M[2] + c])
            x ^= x << np.uint64(13)
            x ^= x >> np.uint64(7)
            x ^= x << np.uint64(17)
            M[M[2] + c] = np.int64(x)
            r = np.int64(x % np.uint64(M[cnt]))
            nxt = M[10]
            for _ in range(r):
                s = M[nxt + s]
        _hash_delete(M, c, s)
        _unlink(M, g, s)
        _stat(M, c, _EVICTIONS, 1)
        old = M[M[6] + s] & 63
        if kind == 0 and old != (a & 63):
            i = M[3] + c * 64 + old
            M[i] -= 1
            j = M[3] + c * 64 + (a & 63)
            M[j] += 1
            if M[i] == 0 or M[j] == 1:
                _sizes_changed(M, c)
    else:
        ft = M[14] + g
        M[ft] -= 1
        s = M[M[15] + _cfg(M, c, _SLOT0) + (g - _cfg(M, c, _SET0)) * ways + M[ft]]
        M[M[8] + s] = 1
        M[cnt] += 1
        if kind == 0:
            i = M[3] + c * 64 + (a & 63)
            M[i] += 1
            if M[i] == 1:
                _sizes_changed(M, c)
    M[M[6] + s] = a
    M[M[7] + s] = b
    _append(M, g, s)
    _hash_insert(M, c, s)
    _stat(M, c, _FILLS, 1)


@njit(cache=True, _nrt=False)
def lookup_tlb(M, c, tag, iova):
    """lg2 of the entry covering ``iova`` for ``tag`` (largest size first), or -1; counts one
    hit or miss (:meth:`Iotlb.lookup`)."""
    szl = M[4] + c * 64
    for j in range(M[M[5] + c]):
        lg = M[szl + j]
        if _probe(M, c, tag * 64 + lg, _lsr(iova, lg)):
            _stat(M, c, _HITS, 1)
            return lg
    _stat(M, c, _MISSES, 1)
    return -1


@njit(cache=True, _nrt=False)
def fill_tlb(M, c, tag, iova, lg):
    """Cache the ``2**lg``-byte page containing ``iova`` for ``tag`` (:meth:`Iotlb.fill`) right
    after :func:`lookup_tlb` missed it: a missed key is absent, so no second probe."""
    _insert(M, c, tag * 64 + lg, _lsr(iova, lg))


@njit(cache=True, _nrt=False)
def _psc_lookup(M, ids, nlev, tag, iova):
    """The lowest configured level holding a pointer for ``iova``, or -1; each probed level
    counts a hit or a miss (:meth:`PagingStructureCache.lookup`)."""
    for j in range(nlev):
        c = ids[j]
        lv = ids[nlev + j]
        if _probe(M, c, tag * 64 + lv, _lsr(iova, _cfg(M, c, _SHIFT))):
            _stat(M, c, _HITS, 1)
            return lv
        _stat(M, c, _MISSES, 1)
    return -1


@njit(cache=True, _nrt=False)
def _psc_fill(M, ids, nlev, tag, iova, lo, hi):
    """Cache the table pointers a walk read at levels ``lo..hi`` (unconfigured ones ignored)."""
    for j in range(nlev):
        lv = ids[nlev + j]
        if lo <= lv <= hi:
            c = ids[j]
            _fill(M, c, tag * 64 + lv, _lsr(iova, _cfg(M, c, _SHIFT)))


@njit(cache=True, _nrt=False)
def _s2_cost(M, s2tlb, ids2, nlev2, top2, cnt, gpa, facts):
    """``(references, ok)`` of the stage-2 translation of one GPA (``_Stage2Cost.cost``);
    ``facts`` its stage-2 walk facts packed as :func:`pack_facts` packs them."""
    fault = (facts & 1) != 0
    if not fault and lookup_tlb(M, s2tlb, 0, gpa) >= 0:
        return 0, True
    stop = ((facts >> 24) & 255) - 1 if fault else ((facts >> 16) & 255) - 1
    if stop < 0:
        return 0, False
    h = _psc_lookup(M, ids2, nlev2, 0, gpa) if nlev2 else -1
    if h >= 0 and h <= stop:
        cnt[8] += 1
        h = -1
    start = top2 if h < 0 else h - 1
    if start > stop and nlev2:
        _psc_fill(M, ids2, nlev2, 0, gpa, stop + 1, start)
    if fault:
        return start - stop + 1, False
    fill_tlb(M, s2tlb, 0, gpa, (facts >> 8) & 255)
    return start - stop + 1, True


def pack_facts(fault, lg2, leaf, flevel):
    """One walk's facts in one int64, so the charging loop reads one word per translation:
    bit 0 the fault, bits 8-15 lg2 of the entry, bits 16-23 the leaf level + 1, bits 24-31
    the fault level + 1 (levels are -1 when absent)."""
    return (fault.astype(np.int64) | (lg2.astype(np.int64) << 8) | ((leaf.astype(np.int64) + 1) << 16)
            | ((flevel.astype(np.int64) + 1) << 24))


@njit(cache=True, _nrt=False)
def charge(M, iotlb, ids, s2tlb, ids2, top, top2, nested, keep, code, iova, inv, facts,
           hit, refs, s2refs, lg2o, cnt):
    """Charge a stretch of accesses, in order: the engine's charging loop, compiled.

    ``inv[i]`` is the row of ``facts`` that access ``i`` shares with every access to the same
    page, direction and PASID: column 0 its walk facts (:func:`pack_facts`), and in nesting,
    per stage-1 level and then the output GPA, the GPA (column ``1 + 2 * row``) and its stage-2
    facts (``2 + 2 * row``). One row per distinct page keeps what a miss reads in one or two
    cache lines, however many pages the stretch touches. ``keep``: write the per-access
    outcomes (``hit``, ``refs``, ``s2refs``, ``lg2o``); without it only ``cnt`` is counted.
    An access to the same 4 KiB page and tag as the one before, which did not fault, hits the
    entry that access left most recent: it changes no replacement state, so it is counted
    without a probe (as the fast front end collapses runs).
    """
    nlev = ids.shape[0] // 2
    nlev2 = ids2.shape[0] // 2
    ways = _cfg(M, iotlb, _WAYS)
    og = facts.shape[1] - 2  # the output GPA's column
    prev_page = np.int64(-1)
    prev_code = np.int64(-1)
    prev_fault = True
    prev_lg = 0
    for i in range(code.shape[0]):
        u = inv[i]
        tag = code[i]
        va = iova[i]
        x = facts[u, 0]
        f = (x & 1) != 0
        page = _lsr(va, 12)
        if ways > 0 and page == prev_page and tag == prev_code and not prev_fault:
            cnt[0] += 1
            cnt[1] += 1
            _stat(M, iotlb, _HITS, 1)
            if f:
                cnt[2] += 1
            if keep:
                lg2o[i] = prev_lg
            prev_fault = f
            continue
        prev_page, prev_code, prev_fault = page, tag, f
        got = lookup_tlb(M, iotlb, tag, va)
        if got >= 0:
            cnt[0] += 1
            if keep:
                lg2o[i] = got
            prev_lg = got
            if f:
                cnt[2] += 1
            continue
        if keep:
            hit[i] = False
        cnt[3] += 1
        lv, fl = ((x >> 16) & 255) - 1, ((x >> 24) & 255) - 1
        stop = lv if lv >= 0 else fl
        if stop < 0:
            cnt[4] += 1
            continue
        h = _psc_lookup(M, ids, nlev, tag, va) if nlev else -1
        if h >= 0 and h <= stop:
            cnt[8] += 1
            h = -1
        start = top if h < 0 else h - 1
        r1 = 0
        r2 = 0
        ok = True
        if not nested:
            r1 = start - stop + 1
        else:
            for level in range(start, stop - 1, -1):
                n2, ok2 = _s2_cost(M, s2tlb, ids2, nlev2, top2, cnt, facts[u, 1 + 2 * level], facts[u, 2 + 2 * level])
                r2 += n2
                if not ok2:
                    ok = False
                    break
                r1 += 1
            if ok and lv >= 0:
                n2, ok2 = _s2_cost(M, s2tlb, ids2, nlev2, top2, cnt, facts[u, og], facts[u, og + 1])
                r2 += n2
            if keep:
                s2refs[i] = r2
        if keep:
            refs[i] = r1 + r2
        cnt[5] += r1 + r2
        cnt[6] += r1
        cnt[7] += r2
        if ok and start > stop and nlev:
            _psc_fill(M, ids, nlev, tag, va, stop + 1, start)
        if f:
            cnt[4] += 1
        else:
            lg = (x >> 8) & 255
            fill_tlb(M, iotlb, tag, va, lg)
            prev_lg = lg
            if keep:
                lg2o[i] = lg


@njit(cache=True, _nrt=False)
def invalidate_range(M, c, match, domain, first, last):
    """Drop the entries of cache ``c`` whose tag matches and whose span overlaps the bytes
    ``first..last``; how many. ``match``: 0 any tag, 1 tags of ``domain`` (``tag >> 21``).
    An IOTLB-like cache spans ``2**lg2`` bytes per entry, a walk-cache level ``2**shift``."""
    s0, nsets, set0 = _cfg(M, c, _SLOT0), _cfg(M, c, _NSETS), _cfg(M, c, _SET0)
    k1, k2, live = M[6], M[7], M[8]
    dropped = 0
    for s in range(s0, s0 + nsets * _cfg(M, c, _WAYS)):
        if not M[live + s]:
            continue
        a = M[k1 + s]
        if match == 1 and (a >> 6) >> 21 != domain:
            continue
        sh = (a & 63) if _cfg(M, c, _KIND) == 0 else _cfg(M, c, _SHIFT)
        if _lsr(first, sh) <= M[k2 + s] <= _lsr(last, sh):
            _remove(M, c, set0 + (M[k2 + s] & (nsets - 1)), s)
            dropped += 1
    _stat(M, c, _INVALIDATED, dropped)
    return dropped


@njit(cache=True, _nrt=False)
def flush_tags(M, c, match, domain):
    """Drop every entry of cache ``c`` (``match`` 0) or of ``domain``'s tags (``match`` 1)."""
    s0, nsets, set0 = _cfg(M, c, _SLOT0), _cfg(M, c, _NSETS), _cfg(M, c, _SET0)
    k1, k2, live = M[6], M[7], M[8]
    dropped = 0
    for s in range(s0, s0 + nsets * _cfg(M, c, _WAYS)):
        if M[live + s] and (match == 0 or (M[k1 + s] >> 6) >> 21 == domain):
            _remove(M, c, set0 + (M[k2 + s] & (nsets - 1)), s)
            dropped += 1
    _stat(M, c, _INVALIDATED, dropped)
    return dropped


@njit(cache=True)
def distinct(key, pasid):
    """``(inv, first)`` for keys ``(key[i], pasid[i])``: each one's number in order of first
    appearance, and the position where each number first appears (one pass).

    Keys of one PASID within a span at most a few times the accesses index a plain array;
    otherwise a hash table that grows with the distinct keys, not the accesses, so a long
    stretch over a small working set probes a table that stays in the processor's caches.
    """
    n = key.shape[0]
    inv = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    m = 0
    if n == 0:
        return inv, first[:0].copy()
    lo, hi, p0, one = key[0], key[0], pasid[0], True
    for i in range(n):
        lo = min(lo, key[i])
        hi = max(hi, key[i])
        one = one and pasid[i] == p0
    if one and hi - lo < 4 * n + 4096:
        # one PASID and keys in a span not much wider than the accesses: index a plain array
        # by key (no hashing, no collisions), as dense as the trace's pages are
        table = np.full(hi - lo + 1, -1, dtype=np.int64)
        for i in range(n):
            j = key[i] - lo
            f = table[j]
            if f < 0:
                table[j] = m
                first[m] = i
                f = m
                m += 1
            inv[i] = f
        return inv, first[:m].copy()
    size = 1024
    bits = 10
    table = np.full(size, -1, dtype=np.int64)
    for i in range(n):
        a, b = key[i], pasid[i]
        j = _hash(a, b, bits)
        while True:
            f = table[j]
            if f < 0:
                table[j] = m
                first[m] = i
                inv[i] = m
                m += 1
                break
            if key[first[f]] == a and pasid[first[f]] == b:
                inv[i] = f
                break
            j = (j + 1) & (size - 1)
        if 2 * m > size:  # keep the load at most one half: rehash into twice the cells
            size *= 2
            bits += 1
            table = np.full(size, -1, dtype=np.int64)
            for f in range(m):
                j = _hash(key[first[f]], pasid[first[f]], bits)
                while table[j] >= 0:
                    j = (j + 1) & (size - 1)
                table[j] = f
    return inv, first[:m].copy()
