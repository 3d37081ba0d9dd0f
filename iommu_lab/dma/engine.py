"""The replay engine: one pass over a trace, charging every access to the IOTLB and walk caches.

:class:`ReplayEngine` walks the trace in order: stretches of DMA between map/unmap rows, and
the rows themselves, which change the target's tables and invalidate the caches as the flush
policy says (see :mod:`iommu_lab.dma.replay` for the rules and where they come from).

For each stretch a *front end* finds, per access, the facts the charging needs
(:class:`~iommu_lab.dma.targets.Walked`): the fast front end with the vectorised walker, which
also collapses runs of accesses to the same 4 KiB page (after the first, each is a hit that
changes no replacement state); the step front end with one scalar walk per access and no
collapsing. Both feed the one charging loop, :meth:`ReplayEngine._charge`: IOTLB lookup, then
on a miss the walk below the deepest paging-structure-cache hit, its stage-2 costs in nesting,
and the fills.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import fmt_addr, fmt_size
from iommu_lab.dma.accesses import Accesses, access_pieces, dma_columns, tag_names
from iommu_lab.dma.bank import BankState
from iommu_lab.dma.caches import Caches
from iommu_lab.dma.iotlb import Iotlb
from iommu_lab.dma.iova import FlushPolicy, FlushQueue, IovaFq
from iommu_lab.dma.kernels import charge, distinct
from iommu_lab.dma.psc import PagingStructureCache
from iommu_lab.dma.targets import Walked
from iommu_lab.pagetable.dirty import record_writes

__all__ = ["Counters", "ReplayEngine", "compiled_loaded"]

_U64 = np.uint64
_STAGE2 = ("stage-2", 0)  # tag of stage-2 entries: shared by every PASID of the VM
#: Accesses per piece: the engine never holds more requests than this at once (one piece of
#: walk facts and outcomes, ~100 bytes each), whatever one DMA row or the trace asks for.
PIECE = 1 << 20
EVENT_COLUMNS = ["t", "op", "iova", "length", "queued", "iotlb_invalidated", "note"]


@dataclass
class Counters:
    """The totals a replay reports in ``Replay.summary``."""

    accesses: int = 0
    hits: int = 0
    collapsed: int = 0
    stale_hits: int = 0
    walks: int = 0
    faults: int = 0
    refs: int = 0
    s1_refs: int = 0
    s2_refs: int = 0
    stale_psc: int = 0
    invalidations: int = 0  # range invalidation commands (strict)
    flushes: int = 0  # domain-wide flushes (lazy queue full / timer, or stage-2 changes)
    iotlb_invalidated: int = 0
    psc_invalidated: int = 0
    maps: int = 0
    unmaps: int = 0
    reused_before_flush: int = 0  # lazy: a map over an IOVA still waiting in the flush queue
    traps: int = 0  # VM exits for guest invalidations (nested) or guest requests (shadow)
    dirty_writes: int = 0  # writes that set a dirty bit through a DirtyTracker


@dataclass
class _Outcomes:
    """Per-access results, filled in as the engine goes."""

    n: int
    hit: np.ndarray = field(init=False)
    refs: np.ndarray = field(init=False)
    s2_refs: np.ndarray = field(init=False)
    fault: np.ndarray = field(init=False)
    lg2: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.hit = np.ones(self.n, dtype=bool)
        self.refs = np.zeros(self.n, dtype=np.int32)
        self.s2_refs = np.zeros(self.n, dtype=np.int32)
        self.fault = np.zeros(self.n, dtype=bool)
        self.lg2 = np.zeros(self.n, dtype=np.int8)


class _CacheState:
    """The instantiated caches of one replay and the invalidation rules that act on them."""

    def __init__(self, caches: Caches, target: Any, seed: int) -> None:
        self.iotlb = Iotlb(caches.iotlb, name="IOTLB", seed=seed)
        self.psc = PagingStructureCache(target.fmt, caches.psc, name="PSC", seed=seed + 1)
        self.nested = target.nested
        if self.nested:
            self.s2tlb = Iotlb(caches.stage2_tlb, name="S2 TLB", seed=seed + 2)
            self.s2psc = PagingStructureCache(target.fmt2, caches.stage2_psc, name="S2 PSC", seed=seed + 3)

    def all_caches(self) -> Iterator[tuple[str, int | None, Any]]:
        yield "IOTLB", None, self.iotlb.cache
        for lvl, c in sorted(self.psc.caches.items()):
            yield "PSC", lvl, c
        if self.nested:
            yield "S2 TLB", None, self.s2tlb.cache
            for lvl, c in sorted(self.s2psc.caches.items()):
                yield "S2 PSC", lvl, c

    def invalidate_range(self, domain: int, iova: int, length: int, tables_freed: bool, c: Counters) -> None:
        """A strict unmap's range invalidation of one domain (every PASID tag of it)."""
        n = 0
        for tag in {k[0] for k in self.iotlb.cache.keys()}:
            if tag[0] == domain:
                n += self.iotlb.invalidate_range(tag, iova, length)
        c.iotlb_invalidated += n
        if tables_freed:
            for tag in {k[0] for cache in self.psc.caches.values() for k in cache.keys()}:
                if tag[0] == domain:
                    c.psc_invalidated += self.psc.invalidate_range(tag, iova, length)
        c.invalidations += 1

    def flush_domain(self, c: Counters, domain: int | None = None) -> None:
        """``flush_iotlb_all``: every IOTLB and stage-1 walk-cache entry of ``domain`` (None:
        of every domain, as a stage-2 change needs)."""
        keep = (lambda tag: True) if domain is None else (lambda tag: tag[0] == domain)
        c.iotlb_invalidated += self.iotlb.invalidate_where(keep)
        c.psc_invalidated += self.psc.invalidate_where(keep)
        c.flushes += 1

    def stage2_changed(self, gpa: int, length: int, tables_freed: bool, c: Counters) -> None:
        """A host change of the nest parent: its own range, then everything combined."""
        c.iotlb_invalidated += self.s2tlb.invalidate_range(_STAGE2, gpa, length)
        if tables_freed:
            c.psc_invalidated += self.s2psc.invalidate_range(_STAGE2, gpa, length)
        c.invalidations += 1
        self.flush_domain(c)


class _Stage2Cost:
    """Stage-2 translation of one GPA through the stage-2 TLB and walk caches."""

    def __init__(self, st: _CacheState, top2: int, c: Counters) -> None:
        self.tlb, self.psc, self.top2, self.c = st.s2tlb, st.s2psc, top2, c
        self.psc_lookup = st.s2psc.lookup if st.s2psc.caches else None

    def cost(self, gpa: int, fault: bool, lg2: int, leaf: int, flevel: int) -> tuple[int, bool]:
        """``(references, ok)``: 0 on a stage-2 TLB hit, else the stage-2 walk below its PSC hit."""
        if not fault and self.tlb.lookup(_STAGE2, gpa) is not None:
            return 0, True
        stop = flevel if fault else leaf
        if stop < 0:
            return 0, False
        h = self.psc_lookup(_STAGE2, gpa) if self.psc_lookup is not None else None
        if h is not None and h <= stop:
            self.c.stale_psc += 1
            h = None
        start = self.top2 if h is None else h - 1
        if start > stop:
            self.psc.fill(_STAGE2, gpa, range(stop + 1, start + 1))
        if fault:
            return start - stop + 1, False
        self.tlb.fill(_STAGE2, gpa, lg2)
        return start - stop + 1, True


def compiled_loaded() -> bool:
    """Whether this process has already compiled or loaded the compiled charging loop."""
    return bool(charge.signatures)


def _distinct(iova: np.ndarray, write: np.ndarray, pasid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(inv, first)``: each access's distinct (page, direction, PASID) and its first access."""
    key = (((iova >> _U64(12)) << _U64(1)) | write.astype(_U64)).view(np.int64)
    return distinct(key, pasid.astype(np.int64, copy=False))


class ReplayEngine:
    """One replay of a trace frame against a target through freshly instantiated caches.

    Mirrors what the IOMMU and dma-iommu do over time: each DMA access is looked up and walked
    (:meth:`_charge`); each map/unmap row changes the target and, by ``policy``, invalidates a
    range at once or queues it in the domain's :class:`~iommu_lab.dma.iova.IovaFq`, flushed when
    full or when its timer fires. Each domain has its own flush queue and timer (the queue lives
    in the domain's DMA cookie, ``iommu_dma_cookie``), so in ``"per-device"`` mode one device's
    flushes never drop another device's entries.

    Parameters
    ----------
    target : a :mod:`~iommu_lab.dma.targets` wrapper (``as_target(model)``).
    caches : the cache hierarchy to instantiate.
    policy : FlushPolicy (default: STRICT).
    flush_queue : FlushQueue (default: Linux's 256 entries, 10 ms).
    mode : ``"compiled"``, ``"fast"`` or ``"step"`` (default: "compiled")
        ``"compiled"``: the vectorised walker once per distinct page, then the compiled charging
        loop (:mod:`iommu_lab.dma.kernels`) over array caches; ``"fast"``: the vectorised walker
        with run collapsing, then the Python charging loop; ``"step"``: one scalar walk per
        access and every cache probed, the oracle the others are tested against.
    domains : ``"per-device"`` or ``"shared"`` (default: "per-device").
    seed : int (default: 0), for RANDOM replacement.
    progress : an object with ``update(n)`` (a tqdm bar), or None.
    keep_accesses : bool (default: True)
        Keep every access's outcome for :meth:`accesses_frame`; False keeps only the counters,
        so memory stays flat however long the trace.
    piece : int (default: PIECE)
        Most accesses handled at once.

    Feed it the trace's frames in order (:meth:`feed`, one whole frame or the chunks of a
    streamed file), then :meth:`finish`.
    """

    def __init__(
        self,
        target: Any,
        caches: Caches,
        *,
        policy: FlushPolicy = FlushPolicy.STRICT,
        flush_queue: FlushQueue | None = None,
        mode: str = "compiled",
        domains: str = "per-device",
        seed: int = 0,
        progress: Any = None,
        keep_accesses: bool = True,
        piece: int = PIECE,
    ) -> None:
        self.target, self.caches = target, caches
        self.policy = policy
        self.flush_queue = flush_queue if flush_queue is not None else FlushQueue()
        self.mode = mode
        self.domains = domains
        self.progress = progress
        self.keep_accesses = keep_accesses
        self.piece = piece
        self.dirty = None  # a DirtyTracker of the walked table: writes set its dirty bits
        self.state = BankState(caches, target, seed) if mode == "compiled" else _CacheState(caches, target, seed)
        self.c = Counters()
        self.events: list = []
        self.queues: dict[int, IovaFq] = {}
        self._dom_ids: dict[str, int] = {}
        self._names = [] if domains == "per-device" else ["all devices"]
        self._kept: list[tuple[Accesses, _Outcomes]] = []
        self._rows = 0
        self._dma_rows = 0
        self._traps0 = target.traps()

    # -- the driver ------------------------------------------------------------------------------

    def run(self, frame: pd.DataFrame) -> ReplayEngine:
        """Play a whole trace frame and finish; returns the engine, counters and outcomes filled in."""
        return self.feed(frame).finish()

    def feed(self, frame: pd.DataFrame) -> ReplayEngine:
        """Play the next rows of a trace (a whole frame, or one chunk of a streamed file).

        The DMA rows between two map/unmap rows become accesses in pieces of at most
        ``piece`` requests, so memory stays bounded however long one row or the trace is.
        """
        codes = frame["op"].cat.codes.to_numpy()
        event_rows = np.nonzero(codes >= 2)[0]  # OP_MAP, OP_UNMAP
        domain = self._domains_of(frame)
        lo = 0
        if event_rows.size:
            iova = frame["iova"].to_numpy(dtype=_U64)[event_rows].tolist()
            length = frame["length"].to_numpy(dtype=_U64)[event_rows].tolist()
            pa = frame["pa"].to_numpy(dtype=_U64)[event_rows].tolist()
            stage = frame["stage"].to_numpy()[event_rows].tolist()
            t = frame["t"].to_numpy(dtype=np.int64)[event_rows].tolist()
            dom = domain[event_rows].tolist()
            for k, r in enumerate(event_rows.tolist()):
                if r > lo:
                    self._dma_rows_between(frame, domain, lo, r)
                while (timer := self._next_timer()) is not None and t[k] >= timer[0]:
                    self._flush(timer[1], timer[0], "timer")
                op = "map" if codes[r] == 2 else "unmap"
                self._event(self._rows + r, op, iova[k], length[k], pa[k], stage[k], dom[k], t[k])
                lo = r + 1
        if lo < len(frame):
            self._dma_rows_between(frame, domain, lo, len(frame))
        self._rows += len(frame)
        return self

    def finish(self) -> ReplayEngine:
        """After the last row: the flush timers still fire; the traps are counted."""
        while (timer := self._next_timer()) is not None:
            self._flush(timer[1], timer[0], "timer")
        self.c.traps += self.target.traps() - self._traps0
        if self.mode == "fast":
            self.state.iotlb.cache.hits += self.c.collapsed  # collapsed runs were hits the loop never probed
        return self

    def _domains_of(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's domain id; per device, numbered in the order devices are first seen."""
        if self.domains == "shared":
            return np.zeros(len(frame), dtype=np.int64)
        cats = frame["device"].cat.categories
        ids = np.array([self._dom_ids.setdefault(str(d), len(self._dom_ids)) for d in cats] or [0], dtype=np.int64)
        self._names = list(self._dom_ids)
        return ids[frame["device"].cat.codes.to_numpy()]

    def _dma_rows_between(self, frame: pd.DataFrame, domain: np.ndarray, lo: int, hi: int) -> None:
        """The read/write rows ``lo .. hi`` (no map/unmap among them), piece by piece."""
        cols = dma_columns(frame, domain, lo, hi, self._rows)
        self._dma_rows += cols[0].shape[0]
        # the compiled loop needs no outcome arrays when none is kept and no write is tracked
        bare = not self.keep_accesses and self.mode == "compiled" and self.dirty is None
        for acc in access_pieces(*cols, limit=self.piece):
            self.acc, self.code, self._pos = acc, acc.tag, 0
            self.out = None if bare else _Outcomes(len(acc))
            self.c.accesses += len(acc)
            self._dma_until(len(acc))
            if self.keep_accesses:
                self._kept.append((acc, self.out))

    def _next_timer(self) -> tuple[int, int] | None:
        """The earliest armed flush-queue timer: ``(deadline, domain)``."""
        return min(((q.deadline, d) for d, q in self.queues.items() if q.deadline is not None), default=None)

    def _dma_until(self, upto: int) -> None:
        """Run the accesses before position ``upto``, firing flush timers where they fall."""
        acc = self.acc
        while self._pos < upto:
            pos, end, timer = self._pos, upto, self._next_timer()
            if timer is not None:
                end = pos + int(np.searchsorted(acc.t[pos:upto], timer[0], side="left"))
            if end > pos:
                self._stretch(pos, end)
                self._pos = end
            if self._pos < upto:  # the next access comes after the timer fired
                self._flush(timer[1], timer[0], "timer")

    def _flush(self, domain: int, when: int, why: str, queued: int | None = None) -> None:
        """The flush queue's ``fq_flush_iotlb``: the domain's entries go, the queue is freed."""
        c = self.c
        if queued is None:
            queued = len(self.queues[domain].ring_free())
        before = c.iotlb_invalidated
        self.state.flush_domain(c, domain)
        if self.target.nested:
            c.traps += 1  # the guest's flush is trapped and forwarded (IOMMU_HWPT_INVALIDATE)
        self.events.append((when, "flush", 0, 0, queued, c.iotlb_invalidated - before, f"{why} ({self._names[domain]})"))

    def _event(self, r: int, op: str, va: int, ln: int, pa: int, st: int, dom: int, t: int) -> None:
        """A map/unmap row: change the target, then invalidate as the policy says."""
        c = self.c
        before = c.iotlb_invalidated
        try:
            s2_changed, freed = self.target.apply(op, va, ln, pa, st)
        except (IommuError, ValueError) as e:
            errno, why = (e.errno, e.message) if isinstance(e, IommuError) else ("EINVAL", str(e))
            raise IommuError(
                errno, f"trace row {r} ({op} iova {fmt_addr(va)} length {fmt_size(ln)} stage {st}) failed: {why}"
            ) from e
        fq = self.queues.get(dom)
        if fq is None:
            fq = self.queues[dom] = IovaFq(self.flush_queue)
        if op == "map":
            c.maps += 1
            if fq.holds(va, ln):
                c.reused_before_flush += 1
        else:
            c.unmaps += 1
            if s2_changed:
                self.state.stage2_changed(va, ln, freed, c)
            elif self.policy is FlushPolicy.STRICT:
                self.state.invalidate_range(dom, va, ln, freed, c)
                if self.target.nested:
                    c.traps += 1  # the guest's invalidation is trapped and forwarded
            else:
                full = fq.queue(va, ln, t)
                if full is not None:
                    self._flush(dom, t, "queue full", len(full))
        self.events.append((t, op, va, ln, len(fq), c.iotlb_invalidated - before, f"stage {st} ({self._names[dom]})"))

    # -- front ends ------------------------------------------------------------------------------

    def _stretch(self, a: int, b: int) -> None:
        """The accesses ``[a, b)``, between two map/unmap rows: walk facts, then the charging."""
        acc = self.acc
        iova, write, pasid, code = acc.iova[a:b], acc.write[a:b], acc.pasid[a:b], self.code[a:b]
        if self.mode == "compiled":
            self._compiled(a, b, iova, write, pasid, code)
        elif self.mode == "step":
            w = self.target.walk_each(iova, write, pasid)
            self.out.fault[a:b] = w.fault
            self._charge(a, np.arange(b - a), w, iova, code)
        else:
            w = self.target.batch(iova, write, pasid)
            self.out.fault[a:b] = w.fault
            self._fast(a, b, w, iova, code)
        if self.dirty is not None:
            sel = write & ~self.out.fault[a:b]
            if sel.any():
                self.c.dirty_writes += record_writes(self.dirty, iova[sel])
        if self.progress is not None:
            self.progress.update(b - a)

    def _compiled(self, a: int, b: int, iova: np.ndarray, write: np.ndarray, pasid: np.ndarray,
                  code: np.ndarray) -> None:
        """Walk each distinct (4 KiB page, direction, PASID) once, then the compiled loop.

        Between two map/unmap rows the tables do not change, so every access to one page in
        one direction under one PASID has the same walk facts; ``inv`` maps each access to its
        page's row of them.
        """
        inv, first = _distinct(iova, write, pasid)
        w = self.target.batch(iova[first], write[first], pasid[first])
        out = self.out
        if out is None:  # nothing per access is kept: the loop only counts
            self.state.charge(code, iova, inv, w, None, self.c)
            return
        out.fault[a:b] = w.fault[inv]
        self.state.charge(code, iova, inv, w, (out.hit[a:b], out.refs[a:b], out.s2_refs[a:b], out.lg2[a:b]), self.c)

    def _fast(self, a: int, b: int, w: Walked, iova: np.ndarray, code: np.ndarray) -> None:
        """Collapse runs, then charge what they do not settle.

        A run: same tag and 4 KiB page as the previous access, which did not fault. After the
        first access of a run its entry is present and most recent: a hit changing nothing.
        """
        page = iova >> _U64(12)
        same = np.zeros(b - a, dtype=bool)
        if self.caches.iotlb.entries > 0 and b - a > 1:
            same[1:] = (page[1:] == page[:-1]) & (code[1:] == code[:-1]) & ~w.fault[:-1]
        todo = np.nonzero(~same)[0]
        collapsed = np.nonzero(same)[0]
        if collapsed.size:
            self.c.collapsed += int(collapsed.size)
            self.c.hits += int(collapsed.size)
            self.c.stale_hits += int(w.fault[collapsed].sum())
        self._charge(a, todo, w, iova, code)
        if collapsed.size:  # a run shares its first access's entry size
            first = np.maximum.accumulate(np.where(same, 0, np.arange(b - a)))
            self.out.lg2[a + collapsed] = self.out.lg2[a + first[collapsed]]

    # -- the charging loop -----------------------------------------------------------------------

    def _charge(self, a: int, todo: np.ndarray, w: Walked, iova: np.ndarray, code: np.ndarray) -> None:
        """The one sequential loop: IOTLB, then on a miss the walk below the deepest PSC hit.

        ``todo`` are positions in the stretch starting at access ``a``; ``w`` the stretch's
        walk facts. A hit reads nothing (a refused access that hits is a stale hit); a miss
        reads from the level below the paging-structure-cache hit (from the root without one)
        down to the leaf or the faulting entry, each stage-1 read costing its stage-2
        translation too in nesting; a successful walk fills the IOTLB and the walk caches.
        """
        st, c, out = self.state, self.c, self.out
        top = self.target.fmt.top_level
        tags = tag_names(code)
        lookup, fill = st.iotlb.lookup, st.iotlb.fill
        psc_lookup = st.psc.lookup if st.psc.caches else None
        psc_fill = st.psc.fill
        walk_refs = self._nested_walk_refs(w, todo) if self.target.nested else None
        hit, refs, s2refs, lg2o = out.hit, out.refs, out.s2_refs, out.lg2
        for k, i, va, p, f, lg, lv, fl in zip(
            range(todo.shape[0]),
            (todo + a).tolist(),
            iova[todo].tolist(),
            code[todo].tolist(),
            w.fault[todo].tolist(),
            w.lg2[todo].tolist(),
            w.leaf[todo].tolist(),
            w.flevel[todo].tolist(),
        ):
            tag = tags[p]
            got = lookup(tag, va)
            if got is not None:
                c.hits += 1
                lg2o[i] = got
                if f:
                    c.stale_hits += 1
                continue
            hit[i] = False
            c.walks += 1
            stop = lv if lv >= 0 else fl
            if stop < 0:  # refused before any read (input range, unbound PASID)
                c.faults += 1
                continue
            h = psc_lookup(tag, va) if psc_lookup is not None else None
            if h is not None and h <= stop:
                c.stale_psc += 1  # a cached pointer below the leaf: stale, walk from the top
                h = None
            start = top if h is None else h - 1
            if walk_refs is None:
                r1, r2, ok = start - stop + 1, 0, True
            else:
                r1, r2, ok = walk_refs(k, start, stop, lv >= 0)
                s2refs[i] = r2
            refs[i] = r1 + r2
            c.refs += r1 + r2
            c.s1_refs += r1
            c.s2_refs += r2
            if ok and start > stop:
                psc_fill(tag, va, range(stop + 1, start + 1))
            if f:
                c.faults += 1
            else:
                fill(tag, va, lg)
                lg2o[i] = lg

    def _nested_walk_refs(self, w: Walked, todo: np.ndarray):
        """``walk_refs(k, start, stop, has_output) -> (stage-1 refs, stage-2 refs, ok)`` for the
        k-th access of ``todo``: each stage-1 entry read from ``start`` down to ``stop`` costs
        one reference plus the stage-2 translation of its GPA; then the output GPA's."""
        cost = _Stage2Cost(self.state, self.target.fmt2.top_level, self.c).cost
        # per stage-1 level row (and the output row last), per access: the GPA and its stage 2
        gpa, s2f, s2lg, s2lv, s2fl = (
            [row[todo].tolist() for row in arr]
            for arr in (w.gpa, w.s2_fault, w.s2_lg2, w.s2_leaf, w.s2_flevel)
        )

        def walk_refs(k: int, start: int, stop: int, has_output: bool) -> tuple[int, int, bool]:
            r1 = r2 = 0
            for level in range(start, stop - 1, -1):
                n2, ok = cost(gpa[level][k], s2f[level][k], s2lg[level][k], s2lv[level][k], s2fl[level][k])
                r2 += n2
                if not ok:
                    return r1, r2, False
                r1 += 1  # the stage-1 entry itself
            if has_output:
                r2 += cost(gpa[-1][k], s2f[-1][k], s2lg[-1][k], s2lv[-1][k], s2fl[-1][k])[0]
            return r1, r2, True

        return walk_refs

    # -- what it measured ------------------------------------------------------------------------

    def accesses_frame(self) -> pd.DataFrame:
        """One row per access: trace row, time, PASID, IOVA, direction and what it cost (no
        rows when the engine keeps no per-access outcomes)."""
        kept = self._kept

        def col(get, dtype):
            parts = [get(a, o) for a, o in kept]
            if len(parts) == 1:  # the frame copies its columns: no need to concatenate first
                return parts[0]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        fault, hit, lg2 = col(lambda a, o: o.fault, bool), col(lambda a, o: o.hit, bool), col(lambda a, o: o.lg2, np.int8)
        return pd.DataFrame(
            {
                "row": col(lambda a, o: a.row, np.int64),
                "t": col(lambda a, o: a.t, np.int64),
                "pasid": col(lambda a, o: a.pasid, np.int64),
                "iova": col(lambda a, o: a.iova, _U64),
                "write": col(lambda a, o: a.write, bool),
                "hit": hit,
                "refs": col(lambda a, o: o.refs, np.int32),
                "s2_refs": col(lambda a, o: o.s2_refs, np.int32),
                "fault": fault,
                "page_size": np.where(fault & ~hit, 0, np.left_shift(1, lg2.astype(np.int64))).astype(_U64),
            }
        )

    def events_frame(self) -> pd.DataFrame:
        """One row per map/unmap row and per flush."""
        return pd.DataFrame(self.events, columns=EVENT_COLUMNS).astype({"iova": _U64, "length": _U64})

    def cache_stats(self) -> pd.DataFrame:
        """One row per instantiated cache (and walk-cache level): size and counters."""
        rows = []
        for name, level, cache in self.state.all_caches():
            s = cache.stats
            rows.append(
                {
                    "cache": name,
                    "level": level,
                    "entries": cache.config.entries,
                    "lookups": s.lookups,
                    "hits": s.hits,
                    "misses": s.misses,
                    "hit_rate": s.hit_rate,
                    "evictions": s.evictions,
                    "invalidated": s.invalidated,
                }
            )
        return pd.DataFrame(rows)

    def summary(self, label: str) -> pd.Series:
        """The totals and rates, named ``label``."""
        c = self.c
        n = max(c.accesses, 1)
        psc_hits = sum(cache.hits for nm, _l, cache in self.state.all_caches() if nm == "PSC")
        return pd.Series(
            {
                "accesses": c.accesses,
                "dma_rows": self._dma_rows,
                "iotlb_hits": c.hits,
                "iotlb_misses": c.walks,
                "iotlb_hit_rate": c.hits / c.accesses if c.accesses else float("nan"),
                "psc_hits": psc_hits,
                "walks": c.walks,
                "faults": c.faults,
                "stale_hits": c.stale_hits,
                "refs": c.refs,
                "s1_refs": c.s1_refs,
                "s2_refs": c.s2_refs,
                "refs_per_access": c.refs / n,
                "refs_per_walk": c.refs / c.walks if c.walks else 0.0,
                "maps": c.maps,
                "unmaps": c.unmaps,
                "reused_before_flush": c.reused_before_flush,
                "invalidations": c.invalidations,
                "flushes": c.flushes,
                "iotlb_invalidated": c.iotlb_invalidated,
                "psc_invalidated": c.psc_invalidated,
                "traps": c.traps,
                "dirty_writes": c.dirty_writes,
            },
            name=label,
            dtype=object,
        )
