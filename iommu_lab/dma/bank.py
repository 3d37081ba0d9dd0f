"""The caches of one compiled replay: every cache of a hierarchy in one bank of numpy arrays.

:class:`Bank` lays out the caches :mod:`iommu_lab.dma.kernels` works on; :class:`BankState` is
the compiled engine's counterpart of the step engine's cache state (the same invalidation
rules, acting on the arrays), and :meth:`BankState.charge` runs one stretch of accesses
through the compiled charging loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from iommu_lab.dma import kernels as K
from iommu_lab.dma.cache import CacheConfig, CacheStats, Replacement, initial_state
from iommu_lab.dma.caches import Caches

__all__ = ["Bank", "BankState", "CacheView"]

_POLICY = {Replacement.LRU: 0, Replacement.FIFO: 1, Replacement.RANDOM: 2}
_EMPTY = np.zeros(0, dtype=np.int64)
_NO_OUT = (np.ones(0, dtype=bool), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int8))


@dataclass(frozen=True)
class _Spec:
    config: CacheConfig
    kind: int  # 0: any page size (IOTLB, stage-2 TLB); 1: one walk-cache level
    shift: int
    seed: int


class Bank:
    """Several caches as one int64 array (``kernels.FIELDS``); cache ``i`` is ``specs[i]``."""

    def __init__(self, specs: list[_Spec]) -> None:
        n = len(specs)
        cfg = np.zeros((n, len(K.CFG)), dtype=np.int64)
        slot = sets = cell = 0
        for i, sp in enumerate(specs):
            nsets = max(sp.config.sets, 1)
            ways = sp.config.entries // nsets
            hsize = 4
            while hsize < 2 * max(sp.config.entries, 1):
                hsize *= 2
            cfg[i] = (slot, nsets, ways, sets, cell, hsize - 1, hsize.bit_length() - 1,
                      _POLICY[sp.config.replacement], sp.kind, sp.shift)
            slot += nsets * ways
            sets += nsets
            cell += hsize
        sizes = dict(cfg=n * len(K.CFG), stats=n * 5, rng=n, sizecnt=n * 64, szlist=n * 64, nsz=n, k1=slot,
                     k2=slot, live=slot, prv=slot, nxt=slot, head=sets, tail=sets, cnt=sets, freetop=sets,
                     freestk=slot, htab=cell)
        off, at = {}, len(K.FIELDS)
        for name in K.FIELDS:
            off[name] = at
            at += sizes[name]
        assert off["cfg"] == K.CFG0  # the kernels read the layout at a fixed place
        M = np.zeros(at, dtype=np.int64)
        M[: len(K.FIELDS)] = [off[name] for name in K.FIELDS]
        M[off["cfg"]: off["cfg"] + cfg.size] = cfg.ravel()
        M[off["rng"]: off["rng"] + n] = np.array([initial_state(sp.seed) for sp in specs], dtype=np.uint64).view(np.int64)
        for name in ("prv", "nxt", "head", "tail"):
            M[off[name]: off[name] + sizes[name]] = -1
        for i in range(n):
            s0, nsets, ways, g0 = (int(v) for v in cfg[i, :4])
            for g in range(nsets):
                base = s0 + g * ways
                # popped from the top: which free slot a fill takes is irrelevant to behaviour
                M[off["freestk"] + base: off["freestk"] + base + ways] = np.arange(base, base + ways)
                M[off["freetop"] + g0 + g] = ways
        self.specs, self.M, self._off, self._cfg = specs, M, off, cfg

    def stats(self, i: int) -> CacheStats:
        at = self._off["stats"] + 5 * i
        return CacheStats(*(int(v) for v in self.M[at: at + 5]))

    def count(self, i: int) -> int:
        at = self._off["cnt"] + int(self._cfg[i, 3])
        return int(self.M[at: at + int(self._cfg[i, 1])].sum())


class CacheView:
    """One cache of a bank as the replay's statistics read it: ``config``, ``stats``, ``hits``."""

    def __init__(self, bank: Bank, index: int) -> None:
        self.bank, self.index = bank, index
        self.config = bank.specs[index].config

    @property
    def stats(self) -> CacheStats:
        return self.bank.stats(self.index)

    @property
    def hits(self) -> int:
        return self.bank.stats(self.index).hits

    def __len__(self) -> int:
        return self.bank.count(self.index)


class BankState:
    """The caches of one compiled replay and the invalidation rules that act on them.

    Built from the same :class:`Caches` and seeds as the step engine's state: the IOTLB (seed),
    each stage-1 walk-cache level ``L`` (seed + 1 + L), the stage-2 TLB (seed + 2) and each
    stage-2 walk-cache level (seed + 3 + L), so RANDOM replacement draws the same victims.
    """

    def __init__(self, caches: Caches, target: Any, seed: int) -> None:
        self.nested = target.nested
        specs = [_Spec(caches.iotlb, 0, 0, seed)]
        self._names: list[tuple[str, int | None]] = [("IOTLB", None)]
        self.psc_ids = self._levels(specs, target.fmt, caches.psc, seed + 1, "PSC")
        self.s2tlb = -1
        self.psc2_ids = _EMPTY
        if self.nested:
            self.s2tlb = len(specs)
            specs.append(_Spec(caches.stage2_tlb, 0, 0, seed + 2))
            self._names.append(("S2 TLB", None))
            self.psc2_ids = self._levels(specs, target.fmt2, caches.stage2_psc, seed + 3, "S2 PSC")
        self.bank = Bank(specs)
        self.top = target.fmt.top_level
        self.top2 = target.fmt2.top_level if self.nested else 0

    def _levels(self, specs: list[_Spec], fmt: Any, levels: Any, seed: int, name: str) -> np.ndarray:
        ids, lvls = [], []
        for level in sorted(levels):
            cfg = levels[level]
            if 1 <= level <= fmt.top_level and cfg.entries:
                ids.append(len(specs))
                lvls.append(level)
                specs.append(_Spec(cfg, 1, fmt.item_lg2(level), seed + level))
                self._names.append((name, level))
        return np.array(ids + lvls, dtype=np.int64)

    def all_caches(self) -> Iterator[tuple[str, int | None, CacheView]]:
        """``(name, level, cache)`` in the step engine's order: IOTLB, PSC, S2 TLB, S2 PSC."""
        views = {nl: CacheView(self.bank, i) for i, nl in enumerate(self._names)}
        order = [("IOTLB", None)] + sorted(k for k in views if k[0] == "PSC")
        if self.nested:
            order += [("S2 TLB", None)] + sorted(k for k in views if k[0] == "S2 PSC")
        for name, level in order:
            yield name, level, views[(name, level)]

    def _stage1_ids(self) -> list[int]:
        return [0] + self.psc_ids[: len(self.psc_ids) // 2].tolist()

    def invalidate_range(self, domain: int, iova: int, length: int, tables_freed: bool, c: Any) -> None:
        """A strict unmap's range invalidation of one domain (every PASID tag of it)."""
        B, last = self.bank.M, _last(iova, length)
        first = _as_i64(iova)
        c.iotlb_invalidated += int(K.invalidate_range(B, 0, 1, domain, first, last))
        if tables_freed:
            for i in self._stage1_ids()[1:]:
                c.psc_invalidated += int(K.invalidate_range(B, i, 1, domain, first, last))
        c.invalidations += 1

    def flush_domain(self, c: Any, domain: int | None = None) -> None:
        """``flush_iotlb_all``: every IOTLB and stage-1 walk-cache entry of ``domain`` (None: all)."""
        B = self.bank.M
        match, dom = (0, 0) if domain is None else (1, domain)
        ids = self._stage1_ids()
        c.iotlb_invalidated += int(K.flush_tags(B, ids[0], match, dom))
        for i in ids[1:]:
            c.psc_invalidated += int(K.flush_tags(B, i, match, dom))
        c.flushes += 1

    def stage2_changed(self, gpa: int, length: int, tables_freed: bool, c: Any) -> None:
        """A host change of the nest parent: its own range, then everything combined."""
        B, first, last = self.bank.M, _as_i64(gpa), _last(gpa, length)
        c.iotlb_invalidated += int(K.invalidate_range(B, self.s2tlb, 0, 0, first, last))
        if tables_freed:
            for i in self.psc2_ids[: len(self.psc2_ids) // 2].tolist():
                c.psc_invalidated += int(K.invalidate_range(B, i, 0, 0, first, last))
        c.invalidations += 1
        self.flush_domain(c)

    def charge(self, code: np.ndarray, iova: np.ndarray, inv: np.ndarray, w: Any, out: tuple | None, c: Any) -> None:
        """Charge a stretch of accesses through the compiled loop, writing ``out``'s arrays
        (hit, refs, s2_refs, lg2 of the stretch) in place and adding to the counters ``c``;
        ``out=None`` counts only (no per-access outcome is kept)."""
        cnt = np.zeros(len(K.COUNTERS), dtype=np.int64)
        nd = w.fault.shape[0]
        if self.nested:
            rows = w.gpa.shape[0]
            facts = np.empty((nd, 1 + 2 * rows), dtype=np.int64)
            facts[:, 1::2] = w.gpa.view(np.int64).T
            facts[:, 2::2] = K.pack_facts(w.s2_fault, w.s2_lg2, w.s2_leaf, w.s2_flevel).T
        else:
            facts = np.empty((nd, 1), dtype=np.int64)
        facts[:, 0] = K.pack_facts(w.fault, w.lg2, w.leaf, w.flevel)
        keep = out is not None
        if not keep:
            out = _NO_OUT
        K.charge(self.bank.M, 0, self.psc_ids, self.s2tlb, self.psc2_ids, self.top, self.top2, self.nested, keep,
                 code, iova.view(np.int64), inv, facts, *out, cnt)
        for name, v in zip(K.COUNTERS, cnt.tolist()):
            setattr(c, name, getattr(c, name) + v)


def _as_i64(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def _last(iova: int, length: int) -> int:
    return _as_i64(min(iova + length - 1, (1 << 64) - 1))
