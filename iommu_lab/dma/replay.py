"""Replaying a DMA trace through the IOTLB and the paging-structure caches.

``replay(trace, target, caches)`` plays every row of a :class:`~iommu_lab.trace.Trace` against
one translation — a single-stage :class:`~iommu_lab.pagetable.PageTable`, an :class:`IOAS`
with an attached device's domain, a hardware-nested :class:`~iommu_lab.nesting.Nested` pair, or
a VMM's :class:`~iommu_lab.shadow.ShadowNesting` — and counts what the IOMMU would do: IOTLB hits,
walks, the page-table memory references each walk makes once the paging-structure caches have
cut it short, faults, and the invalidations the trace's unmaps cause.

What the model does, and where each rule comes from
---------------------------------------------------
* **Translation requests.** A DMA row is split at 4 KiB boundaries first: a PCIe request never
  crosses one ("Requests must not specify an Address/Length combination which causes a Memory
  Space access to cross a 4-KB boundary", PCIe Base Specification §2.2.7), so each 4 KiB piece
  is one translation the IOMMU performs. We call the pieces *accesses*.
* **IOTLB.** Entries are tagged ``(domain, PASID)`` (VT-d tags by domain-id and PASID; SMMU by
  VMID/ASID), cover one leaf page, and in nesting one *combined* page no larger than the smaller
  of the stage-1 and stage-2 pages that produced it (rulebook §2.3). A hit reads no memory.
* **Paging-structure caches.** On a miss the walk starts below the deepest cached table pointer
  (VT-d's PML4E/PDPE/PDE caches; SMMU walk caches): with a hit at level ``L`` it reads levels
  ``L-1`` down to the leaf. In nesting each stage-1 table address (a GPA) and the final GPA go
  through stage 2: a stage-2 TLB hit reads nothing, a miss walks stage 2 below its own
  paging-structure cache hit. With no caches at all a nested walk costs ``n·m + n + m``
  references (:func:`iommu_lab.nesting.nested_walk_refs`). Context and PASID caches are assumed
  warm: PASID-table reads are not counted.
* **Invalidation** (``FlushPolicy``). ``STRICT`` (``iommu.strict=1``): each unmap is followed by
  one range invalidation and a wait (``__iommu_dma_unmap`` → ``iommu_iotlb_sync``); VT-d flushes
  the paging-structure caches for the range too only when the unmap freed table pages
  (``intel_iommu_tlb_sync`` passes ``ih = list_empty(&gather->freelist)``). ``LAZY``
  (``IOMMU_DOMAIN_DMA_FQ``): the unmapped range is queued (``queue_iova``) and the whole domain
  is flushed (``flush_iotlb_all``) when the queue is full (256 entries,
  ``IOVA_DEFAULT_FQ_SIZE``) or 10 ms after the first queued entry (``IOVA_DEFAULT_FQ_TIMEOUT``),
  as drivers/iommu/dma-iommu.c does. A **stage-2 change** in nesting flushes every combined
  entry and every stage-1 walk-cache entry of the VM, whatever the policy: combined entries are
  indexed by input address, so the host cannot find the ones a GPA range produced
  (``arm_smmu_tlb_inv_range_domain``: "When the S2 domain changes all the nested S1 ASIDs have
  to be flushed too", ``CMDQ_OP_TLBI_NH_ALL``).
* **Stale hits.** An access the tables now refuse (unmapped, or a write to a read-only page)
  can still hit an entry nobody has invalidated yet — the window lazy flushing leaves open. It
  counts as a hit and as a ``stale_hit``; a refused access that misses walks and faults.
  Linux never hands out an IOVA again while it waits in the flush queue (``fq_ring_free``
  frees it only after the flush), so a lazy replay counts maps that do (``reused_before_flush``):
  a trace recorded under strict mode overstates lazy hit rates by that much.

Two engines give the same answers: ``engine="fast"`` translates the whole stretch between two
map/unmap rows with the vectorised walker and collapses runs of accesses to the same 4 KiB page
(after the first, each is a hit that changes no replacement state), so only the remaining
accesses reach the Python cache loop; ``engine="step"`` walks every access with the scalar
walker and probes every cache. Tests check they agree access by access.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from iommu_lab.core import display
from iommu_lab.core.enums import member_of
from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import fmt_addr, fmt_size
from iommu_lab.dma.caches import Caches, Iotlb, PagingStructureCache

__all__ = ["Engine", "FlushPolicy", "FlushQueue", "Replay", "replay", "split_accesses"]

_U64 = np.uint64
#: PCIe: no request crosses a 4 KiB boundary, so translations are requested per 4 KiB piece.
REQUEST_BOUNDARY = 4096
_NO_PASID = -1
_STAGE2 = ("stage-2", 0)  # tag of stage-2 entries: shared by every PASID of the VM
#: Show a progress bar by default when a trace has at least this many accesses.
PROGRESS_THRESHOLD = 200_000


class FlushPolicy(enum.Enum):
    """When an unmap's IOTLB invalidation happens (Linux ``iommu.strict`` / domain type)."""

    STRICT = "strict"  #: IOMMU_DOMAIN_DMA: invalidate and wait before dma_unmap returns
    LAZY = "lazy"  #: IOMMU_DOMAIN_DMA_FQ: queue the IOVA, flush the domain later


class Engine(enum.Enum):
    """Which replay engine runs: vectorised front end + cache loop, or one walk per access."""

    FAST = "fast"
    STEP = "step"


@dataclass(frozen=True)
class FlushQueue:
    """Linux's deferred-flush queue (drivers/iommu/dma-iommu.c).

    ``size`` entries per queue (``IOVA_DEFAULT_FQ_SIZE`` = 256) and a timer that flushes
    ``timeout_ns`` after the first entry is queued (``IOVA_DEFAULT_FQ_TIMEOUT`` = 10 ms).
    :meth:`single` is the one large queue used when IOTLB flushes are shadowed by a hypervisor
    (``IOVA_SINGLE_FQ_SIZE`` = 32768, ``IOVA_SINGLE_FQ_TIMEOUT`` = 1000 ms). The model has one
    queue (one CPU).
    """

    size: int = 256
    timeout_ns: int = 10_000_000

    def __post_init__(self) -> None:
        for name in ("size", "timeout_ns"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"FlushQueue {name}={v!r}: must be a positive integer")

    @classmethod
    def single(cls) -> FlushQueue:
        """The single queue of ``shadow_on_flush`` devices: 32768 entries, 1 s."""
        return cls(32768, 1_000_000_000)


# ----------------------------------------------------------------------------------------------
# Accesses: DMA rows split into 4 KiB translation requests
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accesses:
    """The DMA rows of a trace as 4 KiB translation requests, in trace order.

    ``row`` is the trace row each access came from; ``write`` its direction.
    """

    row: np.ndarray
    t: np.ndarray
    iova: np.ndarray
    length: np.ndarray
    pasid: np.ndarray
    write: np.ndarray
    domain: np.ndarray  # the domain (DID) each access's device is attached to

    @property
    def tag(self) -> np.ndarray:
        """One integer per (domain, PASID): the IOTLB tag, packed for vectorised comparison."""
        return (self.domain << 21) | (self.pasid & 0x1FFFFF)

    def __len__(self) -> int:
        return int(self.row.shape[0])


def split_accesses(frame: pd.DataFrame, *, domains: str = "per-device") -> Accesses:
    """Split every read/write row of a trace frame at 4 KiB boundaries (vectorised).

    A row ``[iova, iova + length)`` becomes one access per 4 KiB page it touches; the first
    starts at ``iova``, the others at their page's base (PCIe §2.2.7, see the module docs).
    ``domains="per-device"`` gives each device its own domain id, ``"shared"`` puts all in 0.
    """
    op = frame["op"].to_numpy()
    dma = (op == "read") | (op == "write")
    rows = np.nonzero(dma)[0]
    iova = frame["iova"].to_numpy(dtype=_U64)[rows]
    length = frame["length"].to_numpy(dtype=_U64)[rows]
    shift = _U64(12)
    first = iova >> shift
    last = (iova + (length - _U64(1))) >> shift
    count = (last - first + _U64(1)).astype(np.int64)
    total = int(count.sum())
    rep = np.repeat(np.arange(rows.shape[0]), count)
    starts = np.cumsum(count) - count
    k = (np.arange(total, dtype=np.int64) - starts[rep]).astype(_U64)
    page = first[rep] + k
    a_iova = np.where(k == _U64(0), iova[rep], page << shift)
    a_end = np.minimum(iova[rep] + (length[rep] - _U64(1)), (page << shift) + _U64(0xFFF))
    pasid = frame["pasid"].to_numpy(dtype="float64", na_value=-1.0)[rows].astype(np.int64)
    return Accesses(
        row=rows[rep],
        t=frame["t"].to_numpy(dtype=np.int64)[rows][rep],
        iova=a_iova,
        length=a_end - a_iova + _U64(1),
        pasid=pasid[rep],
        write=(op[rows] == "write")[rep],
        domain=_domain_of_rows(frame, domains)[rows][rep],
    )


def _domain_of_rows(frame: pd.DataFrame, domains: str) -> np.ndarray:
    """Domain id of each trace row: its device's position among the trace's devices, or 0."""
    if domains == "shared":
        return np.zeros(len(frame), dtype=np.int64)
    return frame["device"].cat.codes.to_numpy().astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Targets: what the trace runs against
# ----------------------------------------------------------------------------------------------


@dataclass
class _Walked:
    """Per-access facts of a batch of translations (one stage, or a nested pair)."""

    fault: np.ndarray  # bool
    lg2: np.ndarray  # int: log2 of the IOTLB entry a success fills (combined size in nesting)
    leaf: np.ndarray  # int: stage-1 (or only stage) leaf level, -1 if none
    flevel: np.ndarray  # int: stage-1 fault level, -1 if none
    # nesting only: per stage-1 level row + a final row, the GPA and its stage-2 facts
    gpa: np.ndarray | None = None  # (top1 + 2, n) uint64
    s2_fault: np.ndarray | None = None
    s2_lg2: np.ndarray | None = None
    s2_leaf: np.ndarray | None = None
    s2_flevel: np.ndarray | None = None


def _lg2(size: np.ndarray) -> np.ndarray:
    out = np.zeros(size.shape, dtype=np.int64)
    nz = size != 0
    out[nz] = np.log2(size[nz].astype(np.float64)).astype(np.int64)
    return out


class _SingleStage:
    """One stage: a PageTable, an IOAS's domain or a shadow table."""

    kind = "native"

    def __init__(self, table: Any, *, owner: Any = None, label: str = "") -> None:
        self.table = table
        self.owner = owner  # the IOAS / ShadowNesting the table belongs to, for map/unmap
        self.label = label or table.fmt.name

    @property
    def fmt(self):
        return self.table.fmt

    @property
    def nested(self) -> bool:
        return False

    def batch(self, iova: np.ndarray, write: np.ndarray, pasid: np.ndarray) -> _Walked:
        n = iova.shape[0]
        fault = np.zeros(n, dtype=bool)
        lg2 = np.zeros(n, dtype=np.int64)
        leaf = np.full(n, -1, dtype=np.int64)
        flevel = np.full(n, -1, dtype=np.int64)
        for is_write in (False, True):
            sel = np.nonzero(write == is_write)[0]
            if sel.size == 0:
                continue
            b = self.table.translate(iova[sel], "w" if is_write else "r", paths=True)
            fault[sel] = b.fault
            lg2[sel] = _lg2(b.size)
            leaf[sel] = b.leaf_level
            flevel[sel] = b.fault_level
        return _Walked(fault, lg2, leaf, flevel)

    def walk_one(self, iova: int, write: bool, pasid: int):
        """Scalar walk: ``(fault, lg2, leaf, fault_level)``."""
        w = self.table.walk(iova, "w" if write else "r")
        if w.ok:
            return False, w.result.size.bit_length() - 1, w.result.level, -1
        lvl = w.fault.level
        return True, 0, -1, -1 if lvl is None else lvl

    def apply(self, op: str, iova: int, length: int, pa: int, stage: int) -> tuple[bool, bool]:
        """Apply a map/unmap row; returns ``(stage2_changed, tables_freed)``."""
        if stage != 1:
            raise ValueError(
                f"stage {stage}: a single-stage target has only stage 1; stage-2 rows need a Nested target"
            )
        before = self.table.memory.bytes_used
        if self.owner is None:
            if op == "map":
                self.table.map(iova, pa, length, "rw")
            else:
                self.table.unmap(iova, length)
        elif op == "map":
            if hasattr(self.owner, "guest_map"):
                self.owner.guest_map(iova, pa, length, "rw")
            else:
                self.owner.map(length, iova, user_va=pa, prot="rw")
        elif hasattr(self.owner, "guest_unmap"):
            self.owner.guest_unmap(iova, length)
        else:
            self.owner.unmap(iova, length)
        return False, self.table.memory.bytes_used < before

    def traps(self) -> int:
        """VM exits the VMM took so far (a shadow's trapped guest maps and unmaps)."""
        costs = getattr(self.owner, "costs", None)
        return int(getattr(costs, "vm_exits", 0)) if costs is not None else 0


class _NestedStages:
    """A hardware-nested pair: stage 1 in guest memory over stage 2 in host memory."""

    kind = "nested"

    def __init__(self, nested: Any) -> None:
        self.n = nested
        self.label = f"{nested.stage1.fmt.name} over {nested.stage2.fmt.name}"

    @property
    def fmt(self):
        return self.n.stage1.fmt

    @property
    def fmt2(self):
        return self.n.stage2.fmt

    @property
    def nested(self) -> bool:
        return True

    def _root(self, pasid: int) -> int | None:
        if pasid == _NO_PASID:
            return int(self.n.stage1.root)
        return self.n._pasid_roots.get(pasid)

    def batch(self, iova: np.ndarray, write: np.ndarray, pasid: np.ndarray) -> _Walked:
        from iommu_lab.pagetable.walk import translate

        f1, s1mem, s2 = self.fmt, self.n.stage1.memory, self.n.stage2
        n, rows = iova.shape[0], f1.top_level + 2
        fault = np.ones(n, dtype=bool)
        lg2 = np.zeros(n, dtype=np.int64)
        leaf = np.full(n, -1, dtype=np.int64)
        flevel = np.full(n, -1, dtype=np.int64)
        gpa = np.zeros((rows, n), dtype=_U64)
        s2_fault = np.ones((rows, n), dtype=bool)
        s2_lg2 = np.zeros((rows, n), dtype=np.int64)
        s2_leaf = np.full((rows, n), -1, dtype=np.int64)
        s2_flevel = np.full((rows, n), -1, dtype=np.int64)
        for p in (pd.unique(pasid).tolist() if pasid.size else []):
            root = self._root(int(p))
            for is_write in (False, True):
                sel = np.nonzero((pasid == p) & (write == is_write))[0]
                if sel.size == 0 or root is None:
                    continue  # an unbound PASID faults before any page-table read
                b = translate(f1, s1mem, root, iova[sel], access="w" if is_write else "r", paths=True)
                fault[sel], leaf[sel], flevel[sel] = b.fault, b.leaf_level, b.fault_level
                gpa[: f1.top_level + 1, sel] = b.entry_address
                gpa[-1, sel] = b.pa
                # stage 2 of every stage-1 entry address (reads) and of the output GPA
                stop = np.where(b.leaf_level >= 0, b.leaf_level, b.fault_level).astype(np.int64)
                levels = np.arange(f1.top_level + 1)[:, None]
                ri, ci = np.nonzero((levels >= stop[None, :]) & (stop[None, :] >= 0))
                if ri.size:
                    t = s2.translate(b.entry_address[ri, ci], "r", paths=True)
                    cols = sel[ci]
                    s2_fault[ri, cols], s2_lg2[ri, cols] = t.fault, _lg2(t.size)
                    s2_leaf[ri, cols], s2_flevel[ri, cols] = t.leaf_level, t.fault_level
                ok = np.nonzero(~b.fault)[0]
                if ok.size:
                    t = s2.translate(b.pa[ok], "w" if is_write else "r", paths=True)
                    cols = sel[ok]
                    s2_fault[-1, cols], s2_lg2[-1, cols] = t.fault, _lg2(t.size)
                    s2_leaf[-1, cols], s2_flevel[-1, cols] = t.leaf_level, t.fault_level
                    fault[cols] |= t.fault
                    lg2[cols] = np.minimum(_lg2(b.size[ok]), _lg2(t.size))
        return _Walked(fault, lg2, leaf, flevel, gpa, s2_fault, s2_lg2, s2_leaf, s2_flevel)

    def walk_one(self, iova: int, write: bool, pasid: int):
        """Scalar walks: stage 1 step by step, then stage 2 of each entry address and the output.

        Returns ``(fault, lg2, leaf, fault_level, rows)`` where ``rows`` lists, per stage-1 level
        read (top first) and then the output GPA, ``(level or None, gpa, s2 walk)``.
        """
        from iommu_lab.pagetable.walk import walk

        root = self._root(pasid)
        if root is None:
            return True, 0, -1, -1, []
        w1 = walk(self.fmt, self.n.stage1.memory, root, iova, access="w" if write else "r")
        rows = [(s.level, s.entry_address, self.n.stage2.walk(s.entry_address, "r")) for s in w1.steps]
        if not w1.ok:
            lvl = w1.fault.level
            return True, 0, -1, -1 if lvl is None else lvl, rows
        w2 = self.n.stage2.walk(w1.pa, "w" if write else "r")
        rows.append((None, w1.pa, w2))
        if not w2.ok:
            return True, 0, w1.result.level, -1, rows
        lg2 = min(w1.result.size, w2.result.size).bit_length() - 1
        return False, lg2, w1.result.level, -1, rows

    def apply(self, op: str, iova: int, length: int, pa: int, stage: int) -> tuple[bool, bool]:
        table = self.n.stage1 if stage == 1 else self.n.stage2
        before = table.memory.bytes_used
        if op == "map":
            table.map(iova, pa, length, "rw")
        else:
            table.unmap(iova, length)
        return stage == 2, table.memory.bytes_used < before

    def traps(self) -> int:
        return 0


def _target(model: Any):
    """Wrap what the user passed; a clear error for anything that cannot translate."""
    from iommu_lab.iommufd.ioas import IOAS
    from iommu_lab.nesting.nested import Nested
    from iommu_lab.nesting.shadow import ShadowNesting
    from iommu_lab.pagetable.table import PageTable

    if isinstance(model, PageTable):
        return _SingleStage(model)
    if isinstance(model, IOAS):
        if not model.domains:
            raise IommuError(
                "ENODEV",
                "the IOAS has no paging domain: attach a device with a page-table format "
                "(ioas.attach(platform.device())) so there is a table for DMA to walk",
            )
        return _SingleStage(model.domains[0], owner=model, label=f"IOAS on {model.domains[0].fmt.name}")
    if isinstance(model, Nested):
        return _NestedStages(model)
    if isinstance(model, ShadowNesting):
        model.sync()
        t = _SingleStage(model.table, owner=model, label=f"shadow {model.table.fmt.name}")
        t.kind = "shadowed"
        return t
    raise TypeError(
        f"cannot replay a trace against {type(model).__name__}; give a PageTable, an IOAS with an "
        f"attached device, a Nested pair or a ShadowNesting"
    )


# ----------------------------------------------------------------------------------------------
# The cache state one replay drives
# ----------------------------------------------------------------------------------------------


@dataclass
class _Counters:
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


class _CacheState:
    """The instantiated caches of one replay and the invalidation rules that act on them."""

    def __init__(self, caches: Caches, target: Any, seed: int) -> None:
        self.caches = caches
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

    def invalidate_range(self, domain: int, iova: int, length: int, tables_freed: bool, c: _Counters) -> None:
        """A strict unmap's range invalidation of one domain (every PASID tag of it)."""
        n = 0
        for tag in {k[0] for k in self.iotlb.cache.keys()}:
            if tag[0] == domain:
                n += self.iotlb.invalidate_range(tag, iova, length)
        c.iotlb_invalidated += n
        if tables_freed:
            for tag in {k[0] for k in self._psc_keys()}:
                if tag[0] == domain:
                    c.psc_invalidated += self.psc.invalidate_range(tag, iova, length)
        c.invalidations += 1

    def _psc_keys(self):
        for cache in self.psc.caches.values():
            yield from cache.keys()

    def flush_domain(self, c: _Counters, domain: int | None = None) -> None:
        """``flush_iotlb_all``: every IOTLB and stage-1 walk-cache entry of ``domain`` (None:
        of every domain, as a stage-2 change needs)."""
        keep = (lambda tag: True) if domain is None else (lambda tag: tag[0] == domain)
        c.iotlb_invalidated += self.iotlb.invalidate_where(keep)
        c.psc_invalidated += self.psc.invalidate_where(keep)
        c.flushes += 1

    def stage2_changed(self, gpa: int, length: int, tables_freed: bool, c: _Counters) -> None:
        """A host change of the nest parent: its own range, then everything combined."""
        c.iotlb_invalidated += self.s2tlb.invalidate_range(_STAGE2, gpa, length)
        if tables_freed:
            c.psc_invalidated += self.s2psc.invalidate_range(_STAGE2, gpa, length)
        c.invalidations += 1
        self.flush_domain(c)


# ----------------------------------------------------------------------------------------------
# The result
# ----------------------------------------------------------------------------------------------


@dataclass
class Replay:
    """What a replay measured: per-access outcomes, invalidation events and summary figures.

    ``accesses`` has one row per 4 KiB translation request: the trace ``row`` it came from,
    ``t``, ``pasid``, ``iova``, ``write``, ``hit`` (IOTLB), ``refs`` (page-table references of
    its walk, 0 on a hit), ``s2_refs`` (the stage-2 part, nesting), ``fault`` and
    ``page_size`` (the IOTLB entry that served it, 0 on a fault). ``events`` has one row per
    map/unmap row and per flush. ``summary`` is a Series of the totals and rates.
    """

    target: str
    kind: str
    caches: Caches
    policy: FlushPolicy
    accesses: pd.DataFrame
    events: pd.DataFrame
    summary: pd.Series
    cache_stats: pd.DataFrame
    trace_name: str = ""
    engine: Engine = Engine.FAST

    @property
    def hit_rate(self) -> float:
        return float(self.summary["iotlb_hit_rate"])

    @property
    def refs_per_access(self) -> float:
        return float(self.summary["refs_per_access"])

    plot = display.plot

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<Replay {self.kind} {self.target}: {int(s['accesses'])} accesses, "
            f"IOTLB hit rate {s['iotlb_hit_rate']:.1%}, {s['refs_per_access']:.3f} refs/access, "
            f"{int(s['invalidations'])} invalidations, {int(s['flushes'])} flushes ({self.policy.value})>"
        )

    _repr_html_ = display.html


# ----------------------------------------------------------------------------------------------
# The replay itself
# ----------------------------------------------------------------------------------------------


def replay(
    trace: Any,
    target: Any,
    caches: Caches | None = None,
    *,
    policy: FlushPolicy | str = FlushPolicy.STRICT,
    flush_queue: FlushQueue | None = None,
    engine: Engine | str = Engine.FAST,
    progress: bool | None = None,
    seed: int = 0,
    in_place: bool = False,
    domains: str = "per-device",
) -> Replay:
    """Replay ``trace`` against ``target`` through ``caches``; the model passed is never changed.

    ``target`` is a PageTable, an IOAS with an attached device, a Nested pair or a
    ShadowNesting. ``caches`` defaults to the target platform's documented defaults when the
    target knows its platform, else to ``Caches.for_platform`` of the format's family.
    A trace with map/unmap rows runs against a deep copy of the target, so the model you pass
    stays as it was; ``in_place=True`` applies them to the model itself instead (to inspect the
    table the trace built). ``progress=None`` shows a ``tqdm.auto`` bar on traces of at least
    ``PROGRESS_THRESHOLD`` accesses.

    ``domains="per-device"`` (Linux's default: each device's group gets its own DMA domain)
    tags each device's IOTLB and walk-cache entries with its own domain id and gives it its own
    flush queue; the devices still share the one table passed, so give them disjoint IOVAs.
    ``"shared"`` attaches every device to one domain.
    """
    from iommu_lab.dma.trace import Trace

    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be an iommu_lab.trace.Trace, got {type(trace).__name__}")
    policy = member_of(FlushPolicy, policy, "flush policy", non_text=TypeError)
    engine = member_of(Engine, engine, "replay engine", non_text=TypeError)
    fq = flush_queue if flush_queue is not None else FlushQueue()
    frame = trace.frame
    ops = frame["op"].to_numpy()
    has_events = bool(((ops == "map") | (ops == "unmap")).any())
    model = _copy_model(target) if has_events and not in_place else target
    tgt = _target(model)
    if caches is None:
        caches = _default_caches(target, tgt)
    elif not isinstance(caches, Caches):
        raise TypeError(f"caches must be an iommu_lab.caches.Caches, got {type(caches).__name__}")
    if domains not in ("per-device", "shared"):
        raise ValueError(f"domains={domains!r} is not one of 'per-device', 'shared'")
    acc = split_accesses(frame, domains=domains)
    state = _CacheState(caches, tgt, seed)
    c = _Counters(accesses=len(acc))
    out = _Outcomes(len(acc))
    runner = _FastRun if engine is Engine.FAST else _StepRun
    show = progress if progress is not None else len(acc) >= PROGRESS_THRESHOLD
    bar = _progress_bar(len(acc), show, f"replay {tgt.kind}")
    run = runner(tgt, state, c, out, acc, bar)
    traps0 = tgt.traps()
    try:
        _drive(frame, ops, acc, tgt, state, c, policy, fq, run, out, domains)
    finally:
        if bar is not None:
            bar.close()
    c.traps += tgt.traps() - traps0
    state.iotlb.cache.hits += c.collapsed  # collapsed runs were hits the loop never probed
    return _result(trace, tgt, caches, policy, engine, acc, out, c, state)


def _copy_model(target: Any) -> Any:
    """A deep copy the trace's maps can change; catalogue platforms are immutable and shared."""
    memo: dict[int, Any] = {}
    for holder in (target, getattr(target, "nested", None)):
        for attr in ("platform", "_platform"):
            p = getattr(holder, attr, None) if holder is not None else None
            if p is not None:
                memo[id(p)] = p
    return copy.deepcopy(target, memo)


def _default_caches(original: Any, tgt: Any) -> Caches:
    platform = getattr(original, "platform", None) or getattr(original, "_platform", None)
    if platform is not None:
        return Caches.for_platform(platform)
    fmt = tgt.fmt2 if tgt.nested else tgt.fmt  # stage 2 is the host IOMMU's own format
    return Caches.for_family(fmt.family)


def _progress_bar(total: int, show: bool, desc: str):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="access", unit_scale=True, leave=False)


@dataclass
class _Outcomes:
    n: int
    hit: np.ndarray = field(init=False)
    refs: np.ndarray = field(init=False)
    s2_refs: np.ndarray = field(init=False)
    fault: np.ndarray = field(init=False)
    lg2: np.ndarray = field(init=False)
    events: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hit = np.ones(self.n, dtype=bool)
        self.refs = np.zeros(self.n, dtype=np.int32)
        self.s2_refs = np.zeros(self.n, dtype=np.int32)
        self.fault = np.zeros(self.n, dtype=bool)
        self.lg2 = np.zeros(self.n, dtype=np.int8)


def _drive(frame, ops, acc, tgt, state, c, policy, fq, run, out, domains) -> None:
    """Walk the trace in order: stretches of DMA between map/unmap rows, and the rows themselves.

    Each domain has its own flush queue and timer (the queue lives in the domain's DMA cookie,
    ``iommu_dma_cookie``), so in ``"per-device"`` mode one device's flushes never drop another
    device's entries.
    """
    event_rows = np.nonzero((ops == "map") | (ops == "unmap"))[0]
    # position in the access stream where each event happens (accesses of earlier rows first)
    at = np.searchsorted(acc.row, event_rows, side="left")
    iova = frame["iova"].to_numpy(dtype=_U64)
    length = frame["length"].to_numpy(dtype=_U64)
    pa = frame["pa"].to_numpy(dtype=_U64)
    stage = frame["stage"].to_numpy()
    t = frame["t"].to_numpy(dtype=np.int64)
    row_domain = _domain_of_rows(frame, domains)
    names = list(frame["device"].cat.categories) if domains == "per-device" else ["all devices"]
    queues: dict[int, list[tuple[int, int]]] = {}
    deadlines: dict[int, int] = {}
    pos = 0

    def flush_queue(domain: int, when: int, why: str) -> None:
        before = c.iotlb_invalidated
        state.flush_domain(c, domain)
        if tgt.nested:
            c.traps += 1  # the guest's flush is trapped and forwarded (IOMMU_HWPT_INVALIDATE)
        queued = queues.pop(domain, [])
        deadlines.pop(domain, None)
        out.events.append((when, "flush", 0, 0, len(queued), c.iotlb_invalidated - before, f"{why} ({names[domain]})"))

    def next_timer() -> tuple[int, int] | None:
        return min(((d, dom) for dom, d in deadlines.items()), default=None)

    def dma(upto: int) -> None:
        """Run the accesses before position ``upto``, firing flush timers where they fall."""
        nonlocal pos
        while pos < upto:
            end, timer = upto, next_timer()
            if timer is not None:
                end = pos + int(np.searchsorted(acc.t[pos:upto], timer[0], side="left"))
            if end > pos:
                run(pos, end)
                pos = end
            if pos < upto:  # the next access comes after the timer fired
                flush_queue(timer[1], timer[0], "timer")

    for k, r in enumerate(event_rows.tolist()):
        dma(int(at[k]))
        while (timer := next_timer()) is not None and t[r] >= timer[0]:
            flush_queue(timer[1], timer[0], "timer")
        op, va, ln, st = str(ops[r]), int(iova[r]), int(length[r]), int(stage[r])
        dom = int(row_domain[r])
        before = c.iotlb_invalidated
        try:
            s2_changed, freed = tgt.apply(op, va, ln, int(pa[r]), st)
        except (IommuError, ValueError) as e:
            raise IommuError(
                getattr(e, "errno_name", "EINVAL"),
                f"trace row {r} ({op} iova {fmt_addr(va)} length {fmt_size(ln)} stage {st}) failed: {e}",
            ) from e
        queue = queues.setdefault(dom, [])
        if op == "map":
            c.maps += 1
            if queue and any(q < va + ln and va < q + qn for q, qn in queue):
                c.reused_before_flush += 1
        else:
            c.unmaps += 1
            if s2_changed:
                state.stage2_changed(va, ln, freed, c)
            elif policy is FlushPolicy.STRICT:
                state.invalidate_range(dom, va, ln, freed, c)
                if tgt.nested:
                    c.traps += 1  # the guest's invalidation is trapped and forwarded
            else:
                if len(queue) >= fq.size:
                    flush_queue(dom, int(t[r]), "queue full")
                    queue = queues.setdefault(dom, [])
                queue.append((va, ln))
                deadlines.setdefault(dom, int(t[r]) + fq.timeout_ns)
        out.events.append((int(t[r]), op, va, ln, len(queue), c.iotlb_invalidated - before, f"stage {st} ({names[dom]})"))
    dma(len(acc))
    while (timer := next_timer()) is not None:  # timers still fire after the last row
        flush_queue(timer[1], timer[0], "timer")


class _FastRun:
    """Vectorised translation of a stretch, then the cache loop over what runs cannot settle."""

    def __init__(self, tgt, state: _CacheState, c: _Counters, out: _Outcomes, acc: Accesses, bar) -> None:
        self.tgt, self.state, self.c, self.out, self.acc, self.bar = tgt, state, c, out, acc, bar
        self.code = acc.tag

    def __call__(self, a: int, b: int) -> None:
        acc = self.acc
        iova, write, pasid = acc.iova[a:b], acc.write[a:b], acc.pasid[a:b]
        code = self.code[a:b]
        w = self.tgt.batch(iova, write, pasid)
        out = self.out
        out.fault[a:b] = w.fault
        # Runs: same tag and 4 KiB page as the previous access, which did not fault. After the
        # first access of a run its entry is present and most recent: a hit changing nothing.
        page = iova >> _U64(12)
        same = np.zeros(b - a, dtype=bool)
        if self.state.caches.iotlb.entries > 0 and b - a > 1:
            same[1:] = (page[1:] == page[:-1]) & (code[1:] == code[:-1]) & ~w.fault[:-1]
        todo = np.nonzero(~same)[0]
        collapsed = np.nonzero(same)[0]
        if collapsed.size:
            self.c.collapsed += int(collapsed.size)
            self.c.hits += int(collapsed.size)
            self.c.stale_hits += int(w.fault[collapsed].sum())
        self._loop(a, todo, w, iova, code)
        if collapsed.size:  # a run shares its first access's entry size
            first = np.maximum.accumulate(np.where(same, 0, np.arange(b - a)))
            out.lg2[a + collapsed] = out.lg2[a + first[collapsed]]
        if self.bar is not None:
            self.bar.update(b - a)

    def _loop(self, a, todo, w, iova, code) -> None:
        """The sequential part: IOTLB, then on a miss the walk below the deepest PSC hit."""
        st, c, out = self.state, self.c, self.out
        top = self.tgt.fmt.top_level
        tags = _tags(code)
        lookup, fill = st.iotlb.lookup, st.iotlb.fill
        psc_lookup = st.psc.lookup if st.psc.caches else None
        psc_fill = st.psc.fill
        walk_refs = self._nested_walk_refs(w, todo) if self.tgt.nested else None
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

    def _nested_walk_refs(self, w: _Walked, todo: np.ndarray):
        """``walk_refs(k, start, stop, has_output) -> (stage-1 refs, stage-2 refs, ok)`` for the
        k-th access of ``todo``: each stage-1 entry read from ``start`` down to ``stop`` costs
        one reference plus the stage-2 translation of its GPA; then the output GPA's."""
        cost = _Stage2Cost(self.state, self.tgt.fmt2.top_level, self.c).cost
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


def _tags(code: np.ndarray) -> dict[int, tuple[int, int]]:
    """The IOTLB tag ``(domain, pasid)`` of each packed tag present (see ``Accesses.tag``)."""
    if code.size and (code == code[0]).all():
        present = [int(code[0])]
    else:
        present = pd.unique(code).tolist()
    return {c: (c >> 21, -1 if c & 0x1FFFFF == 0x1FFFFF else c & 0x1FFFFF) for c in present}


class _Stage2Cost:
    """Stage-2 translation of one GPA through the stage-2 TLB and walk caches."""

    def __init__(self, st: _CacheState, top2: int, c: _Counters) -> None:
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


class _StepRun(_FastRun):
    """One scalar walk per access, every cache probed: the reference the fast engine must match."""

    def __call__(self, a: int, b: int) -> None:
        acc, st, c, out, tgt = self.acc, self.state, self.c, self.out, self.tgt
        for i in range(a, b):
            va, p, wr = int(acc.iova[i]), int(acc.pasid[i]), bool(acc.write[i])
            tag = (int(acc.domain[i]), p)
            walked = tgt.walk_one(va, wr, p)
            f, lg, lv, fl = walked[:4]
            out.fault[i] = f
            got = st.iotlb.lookup(tag, va)
            if got is not None:
                c.hits += 1
                out.lg2[i] = got
                c.stale_hits += int(f)
                continue
            out.hit[i] = False
            c.walks += 1
            stop = lv if lv >= 0 else fl
            if stop < 0:
                c.faults += 1
                continue
            h = st.psc.lookup(tag, va) if st.psc.caches else None
            if h is not None and h <= stop:
                c.stale_psc += 1
                h = None
            start = tgt.fmt.top_level if h is None else h - 1
            if tgt.nested:
                r1, r2, ok = self._nested_refs(walked[4], start)
            else:
                r1, r2, ok = start - stop + 1, 0, True
            out.refs[i], out.s2_refs[i] = r1 + r2, r2
            c.refs += r1 + r2
            c.s1_refs += r1
            c.s2_refs += r2
            if start > stop and ok:
                st.psc.fill(tag, va, range(stop + 1, start + 1))
            if f:
                c.faults += 1
            else:
                st.iotlb.fill(tag, va, lg)
                out.lg2[i] = lg
        if self.bar is not None:
            self.bar.update(b - a)

    def _nested_refs(self, rows, start: int) -> tuple[int, int, bool]:
        """Stage-1 reads below ``start`` and the stage-2 cost of each one's GPA and the output's."""
        s2 = _Stage2Cost(self.state, self.tgt.fmt2.top_level, self.c)
        r1 = r2 = 0
        for level, gpa, w2 in rows:
            if level is not None and level > start:
                continue  # above the paging-structure-cache hit: not read
            if w2.ok:
                res = s2.cost(gpa, False, w2.result.size.bit_length() - 1, w2.result.level, -1)
            else:
                fl = -1 if w2.fault.level is None else w2.fault.level
                res = s2.cost(gpa, True, 0, -1, fl)
            r2 += res[0]
            if not res[1]:
                return r1, r2, False
            if level is not None:
                r1 += 1
        return r1, r2, True


def _result(trace, tgt, caches, policy, engine, acc, out, c: _Counters, state: _CacheState) -> Replay:
    frame = pd.DataFrame(
        {
            "row": acc.row,
            "t": acc.t,
            "pasid": acc.pasid,
            "iova": acc.iova,
            "write": acc.write,
            "hit": out.hit,
            "refs": out.refs,
            "s2_refs": out.s2_refs,
            "fault": out.fault,
            "page_size": np.where(out.fault & ~out.hit, 0, np.left_shift(1, out.lg2.astype(np.int64))).astype(_U64),
        }
    )
    events = pd.DataFrame(
        out.events, columns=["t", "op", "iova", "length", "queued", "iotlb_invalidated", "note"]
    ).astype({"iova": _U64, "length": _U64})
    n = max(c.accesses, 1)
    rows = []
    for name, level, cache in state.all_caches():
        look = cache.hits + cache.misses
        rows.append(
            {
                "cache": name,
                "level": level,
                "entries": cache.config.entries,
                "lookups": look,
                "hits": cache.hits,
                "misses": cache.misses,
                "hit_rate": cache.hits / look if look else float("nan"),
                "evictions": cache.evictions,
                "invalidated": cache.invalidated,
            }
        )
    stats = pd.DataFrame(rows)
    psc_hits = sum(cache.hits for nm, _l, cache in state.all_caches() if nm == "PSC")
    summary = pd.Series(
        {
            "accesses": c.accesses,
            "dma_rows": int((np.diff(acc.row) != 0).sum()) + 1 if c.accesses else 0,
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
        },
        name=tgt.label,
        dtype=object,
    )
    return Replay(
        target=tgt.label,
        kind=tgt.kind,
        caches=caches,
        policy=policy,
        accesses=frame,
        events=events,
        summary=summary,
        cache_stats=stats,
        trace_name=getattr(trace, "name", ""),
        engine=engine,
    )
