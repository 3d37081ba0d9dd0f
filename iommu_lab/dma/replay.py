"""Replaying a DMA trace through the IOTLB and the paging-structure caches.

``replay(trace, target, caches)`` plays every row of a :class:`~iommu_lab.dma.trace.Trace` against
one translation — a single-stage :class:`~iommu_lab.pagetable.PageTable`, an :class:`IOAS`
with an attached device's domain, a hardware-nested :class:`~iommu_lab.nesting.Nested` pair, or
a VMM's :class:`~iommu_lab.nesting.shadow.ShadowNesting` — and counts what the IOMMU would do: IOTLB hits,
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
  of the stage-1 and stage-2 pages that produced it (as the SMMU architecture's combined stage-1+2 TLB entries). A hit reads no memory.
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

One engine (:class:`~iommu_lab.dma.engine.ReplayEngine`) runs in three modes.
``engine="compiled"`` translates each distinct (page, direction, PASID) of a
stretch between two map/unmap rows once with the vectorised walker, then charges every access
in a numba-compiled loop over array caches (:mod:`~iommu_lab.dma.kernels`, laid out by
:mod:`~iommu_lab.dma.bank`); ``engine="fast"`` uses the same walker, collapses runs of accesses
to one 4 KiB page (after the first, each is a hit that changes no replacement state) and charges
the rest in Python; ``engine="step"`` walks every access with the scalar walker and probes every
cache: the oracle. ``engine="auto"`` (the default) runs the compiled loop on long traces and
streams, and on short ones only once it is loaded, so a short replay never waits for numba.
Tests check all three against each other and against a plain reference
model, access by access; RANDOM replacement draws the same victims in all of them (one seeded
xorshift stream per cache). Accesses are made and charged in pieces of at most ``PIECE``, and a
trace file may be streamed (:class:`~iommu_lab.dma.trace.TraceStream`), so memory does not grow
with the trace.

The pieces: :mod:`~iommu_lab.dma.accesses` (rows into requests), :mod:`~iommu_lab.dma.targets`
(what is walked), :mod:`~iommu_lab.dma.engine` (the pass over the trace), and here the entry
point and its result.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iommu_lab.core import display
from iommu_lab.core.enums import member_of
from iommu_lab.core.ranges import exact_int, fmt_size
from iommu_lab.dma.accesses import REQUEST_BOUNDARY, Accesses, access_counts, split_accesses
from iommu_lab.dma.caches import Caches
from iommu_lab.dma.engine import ReplayEngine, compiled_loaded
from iommu_lab.dma.iova import FlushPolicy, FlushQueue
from iommu_lab.dma.targets import as_target
from iommu_lab.dma.trace import Trace, TraceStream
from iommu_lab.pagetable.dirty import DirtyTracker

__all__ = ["Accesses", "Engine", "FlushPolicy", "FlushQueue", "REQUEST_BOUNDARY", "Replay", "replay", "split_accesses"]

#: Show a progress bar by default when a trace has at least this many accesses.
PROGRESS_THRESHOLD = 200_000
#: ``engine="auto"`` compiles (or loads) the compiled loop for traces of at least this many accesses.
AUTO_COMPILED = 200_000
#: ... and on streamed trace files of at least this many bytes.
PROGRESS_BYTES = 16 << 20
#: Most 4 KiB requests one replay makes by default (about an hour at 5 M/s).
MAX_ACCESSES = 1 << 34


class Engine(enum.Enum):
    """Which engine charges the accesses: ``AUTO`` (the default) picks ``COMPILED`` for long
    traces, streams, or once the compiled loop is loaded in this process, else ``FAST`` (a
    short trace then never waits for numba to compile or load it); ``STEP`` is the oracle."""

    AUTO = "auto"
    COMPILED = "compiled"
    FAST = "fast"
    STEP = "step"


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
    engine: Engine = Engine.COMPILED

    @property
    def hit_rate(self) -> float:
        return float(self.summary["iotlb_hit_rate"])

    @property
    def refs_per_access(self) -> float:
        return float(self.summary["refs_per_access"])

    plot = display.plot

    def to_dataframe(self) -> pd.DataFrame:
        """One row per access (the ``accesses`` columns), ``iova`` and ``page_size`` as pandas
        ``UInt64`` (``df.il.hex()`` shows them in hex)."""
        out = self.accesses.astype({"iova": "UInt64", "page_size": "UInt64"})
        out.attrs["hex_columns"] = ["iova", "page_size"]
        return out

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
    engine: Engine | str = Engine.AUTO,
    progress: bool | None = None,
    seed: int = 0,
    in_place: bool = False,
    domains: str = "per-device",
    keep_accesses: bool = True,
    max_accesses: int = MAX_ACCESSES,
    dirty: DirtyTracker | None = None,
    _scratch: bool = False,
) -> Replay:
    """Replay ``trace`` against ``target`` through ``caches``; the model passed is never changed.

    ``trace`` is a :class:`~iommu_lab.dma.trace.Trace`, or a
    :class:`~iommu_lab.dma.trace.TraceStream` (``Trace.scan(path)``) read chunk by chunk.
    ``target`` is a PageTable, an IOAS with an attached device, a Nested pair or a
    ShadowNesting (or a catalogue platform's name is refused here: give the model).
    ``caches`` defaults to the target platform's documented defaults when the target knows its
    platform, else to ``Caches.for_platform`` of the format's family.
    A trace with map/unmap rows runs against a deep copy of the target, so the model you pass
    stays as it was; ``in_place=True`` then applies the trace's map/unmap rows to the model
    itself (to inspect the table the trace built) — only once the whole replay has succeeded,
    so a replay that fails leaves the model as it was. ``progress=None`` shows a ``tqdm.auto``
    bar on traces of at least ``PROGRESS_THRESHOLD`` accesses.

    Memory stays flat however long the trace or one DMA row: accesses are made and charged in
    pieces of at most ``engine.PIECE`` requests. ``keep_accesses=False`` keeps no per-access
    outcome (``Replay.accesses`` is then empty; the summary and cache statistics are complete).
    ``max_accesses`` bounds the work: a trace asking for more 4 KiB requests (a single row of
    2**64 - 1 bytes asks for 2**52) is refused before it starts (ValueError).

    ``dirty`` is a :class:`~iommu_lab.pagetable.dirty.DirtyTracker` of the table the trace's DMA
    walks (a PageTable target, or an IOAS's domain): every write access the table accepts
    marks its leaf dirty as the hardware does (VT-d D, AMD HD, Arm DBM) while tracking is on,
    and ``summary["dirty_writes"]`` counts them. The replay must then walk that very table, so
    the trace may not carry map/unmap rows (which run on a copy); map first, then replay.

    ``domains="per-device"`` (Linux's default: each device's group gets its own DMA domain)
    tags each device's IOTLB and walk-cache entries with its own domain id and gives it its own
    flush queue; the devices still share the one table passed, so give them disjoint IOVAs.
    ``"shared"`` attaches every device to one domain.
    """
    if not isinstance(trace, (Trace, TraceStream)):
        raise TypeError(f"trace must be an iommu_lab.dma.trace.Trace or TraceStream, got {type(trace).__name__}")
    policy = FlushPolicy.parse(policy)
    engine = member_of(Engine, engine, "replay engine", non_text=TypeError)
    if flush_queue is not None and not isinstance(flush_queue, FlushQueue):
        raise TypeError(f"flush_queue={_short(flush_queue)} must be an iommu_lab.dma.iova.FlushQueue "
                        f"(e.g. FlushQueue(256, 10_000_000)) or None for Linux's defaults")
    if domains not in ("per-device", "shared"):
        raise ValueError(f"domains={_short(domains)} is not one of 'per-device', 'shared'")
    if caches is not None and not isinstance(caches, Caches):
        raise TypeError(f"caches must be an iommu_lab.dma.caches.Caches, got {type(caches).__name__}")
    for name, value in (("keep_accesses", keep_accesses), ("in_place", in_place)):
        if not isinstance(value, bool):
            raise TypeError(f"{name}={_short(value)} must be True or False")
    max_accesses = exact_int(max_accesses, "max_accesses")
    if max_accesses < 1:
        raise ValueError(f"max_accesses={max_accesses} must be >= 1")
    seed = exact_int(seed, "seed")
    frames = [trace.frame] if isinstance(trace, Trace) else trace
    total = _count(trace.frame, max_accesses) if isinstance(trace, Trace) else None
    has_events = _has_events(trace.frame) if isinstance(trace, Trace) else True
    if dirty is not None and not isinstance(dirty, DirtyTracker):
        raise TypeError(f"dirty={_short(dirty)} must be an iommu_lab.pagetable.dirty.DirtyTracker or None")
    if dirty is not None and has_events:
        raise ValueError(
            "dirty= tracks the table the DMA walks, but a trace with map/unmap rows replays on a copy; "
            "apply the maps to the table first and replay the DMA rows alone"
        )
    # _scratch: the caller built ``target`` for this replay alone (what_if), so it is played on
    # directly, without the copy that keeps a user's model as it was
    model = _copy_model(target) if has_events and not _scratch else target
    tgt = as_target(model)
    if dirty is not None and getattr(tgt, "table", None) is not dirty.table:
        raise ValueError(
            f"dirty= tracks {dirty.table.fmt.name} table {id(dirty.table):#x}, not the table this replay walks "
            f"({tgt.label}); build the DirtyTracker on the target's own table"
        )
    if caches is None:
        caches = _default_caches(target, tgt)
    if engine is Engine.AUTO:
        long = total is None or total >= AUTO_COMPILED
        engine = Engine.COMPILED if long or compiled_loaded() else Engine.FAST
    run = ReplayEngine(tgt, caches, policy=policy, flush_queue=flush_queue, mode=engine.value,
                       domains=domains, seed=seed, keep_accesses=keep_accesses)
    run.dirty = dirty
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress={_short(progress)} must be True, False or None (a bar on long traces)")
    big = total >= PROGRESS_THRESHOLD if total is not None else trace.nbytes >= PROGRESS_BYTES
    show = progress if progress is not None else big
    run.progress = _progress_bar(total, show, f"replay {tgt.kind}")
    seen = 0
    try:
        for chunk in frames:
            frame = chunk.frame if isinstance(chunk, Trace) else chunk
            if total is None:
                seen += _count(frame, max_accesses - seen)
            run.feed(frame)
        run.finish()
    finally:
        if run.progress is not None:
            run.progress.close()
    if in_place and has_events and not _scratch:
        _apply_events(trace, as_target(target))
    return Replay(
        target=tgt.label,
        kind=tgt.kind,
        caches=caches,
        policy=policy,
        accesses=run.accesses_frame(),
        events=run.events_frame(),
        summary=run.summary(tgt.label),
        cache_stats=run.cache_stats(),
        trace_name=trace.name,
        engine=engine,
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _has_events(frame: pd.DataFrame) -> bool:
    return bool((frame["op"].cat.codes.to_numpy() >= 2).any())


def _count(frame: pd.DataFrame, allowed: int) -> int:
    """The 4 KiB requests of a frame's DMA rows; ValueError, before any work, past ``allowed``."""
    codes = frame["op"].cat.codes.to_numpy()
    dma = codes <= 1
    counts = access_counts(frame["iova"].to_numpy(dtype=np.uint64)[dma], frame["length"].to_numpy(dtype=np.uint64)[dma])
    # summed as floats first: 2**52 requests per row times many rows would wrap int64
    if counts.size and (float(counts.astype(np.float64).sum()) > allowed or int(counts.sum()) > allowed):
        big = int(np.argmax(counts))
        raise ValueError(
            f"the trace asks for more than {allowed:,} 4 KiB translation requests (its largest DMA "
            f"row, length {fmt_size(int(frame['length'].to_numpy()[dma][big]))}, alone makes "
            f"{int(counts[big]):,}); a PCIe request never crosses a 4 KiB boundary, so each 4 KiB "
            f"is one translation; raise max_accesses= (default {MAX_ACCESSES:,}) to replay it"
        )
    return int(counts.sum())


def _apply_events(trace: Any, tgt: Any) -> None:
    """Commit an in-place replay: the trace's map/unmap rows, in order, on the model itself.

    The replay ran them on a copy first, so they cannot fail here.
    """
    frames = [trace.frame] if isinstance(trace, Trace) else trace
    for chunk in frames:
        f = chunk.frame if isinstance(chunk, Trace) else chunk
        codes = f["op"].cat.codes.to_numpy()
        rows = np.nonzero(codes >= 2)[0]
        cols = [f[c].to_numpy()[rows].tolist() for c in ("iova", "length", "pa", "stage")]
        for k, r in enumerate(rows.tolist()):
            tgt.apply("map" if codes[r] == 2 else "unmap", *(int(col[k]) for col in cols))


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


