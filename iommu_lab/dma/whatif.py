"""What-ifs: the same DMA trace replayed across page-size policies, platforms and nesting modes.

``what_if(trace, platforms=..., pgsizes=...)`` answers "with this device's DMA pattern, how
often does the IOMMU miss on each platform, and what would 2 MiB pages buy?" in one call: it
builds a fresh domain per (platform, page-size policy), lets the trace's own map/unmap rows
fill it (so ``iommu_pgsize`` picks the pages the policy allows, as ``iommu_map`` would), replays
the DMA through that platform's documented cache sizes and returns one row per run.

``nesting_modes(trace, platform)`` answers the virtualisation question for one platform: the
same trace as the host's own DMA (native), through hardware nesting (the 2-D walk) and through
a VMM's shadow table (native walks, but every guest map and unmap is a VM exit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import fmt_size, parse_size
from iommu_lab.core.words import plural
from iommu_lab.dma.caches import Caches
from iommu_lab.dma.iova import FlushPolicy
from iommu_lab.dma.replay import Replay, replay
from iommu_lab.dma.trace import Trace
from iommu_lab.hardware.platform import Platform
from iommu_lab.hardware.platform import platforms as catalogue
from iommu_lab.nesting.nested import Nested
from iommu_lab.nesting.shadow import ShadowNesting
from iommu_lab.pagetable.table import PageTable

__all__ = ["PgsizePolicy", "WhatIf", "nesting_modes", "what_if"]

_GiB = 1 << 30


@dataclass(frozen=True)
class PgsizePolicy:
    """Which page sizes a domain may use: the ``pgsize_bitmap`` ``iommu_map`` splits with.

    Parse from ``"4K"``, ``"4K+2M"``, ``"4K,2M,1G"``, a list of sizes, or a bitmap int;
    ``None`` means the platform's own bitmap. Restricting it is what ``intel_iommu=sp_off``
    (4 KiB only) or a driver's ``pgsize_bitmap`` choice does.
    """

    bitmap: int | None

    @classmethod
    def parse(cls, value: Any) -> PgsizePolicy:
        if value is None or isinstance(value, PgsizePolicy):
            return value if isinstance(value, PgsizePolicy) else cls(None)
        if isinstance(value, bool):
            raise ValueError(f"page-size policy {value!r}: give sizes like '4K+2M' or a bitmap int")
        if isinstance(value, int):
            bm = value
        else:
            parts = value.replace(",", "+").split("+") if isinstance(value, str) else list(value)
            bm = 0
            for part in parts:
                size = parse_size(part.strip()) if isinstance(part, str) else int(part)
                if size <= 0 or size & (size - 1):
                    raise ValueError(
                        f"page-size policy {value!r}: {part!r} is not a power-of-two size; "
                        f"give sizes like '4K+2M+1G'"
                    )
                bm |= size
        if bm <= 0 or bm >> 64:
            raise ValueError(f"page-size policy {value!r}: the bitmap must be a non-empty 64-bit mask")
        return cls(bm)

    def effective(self, fmt_bitmap: int) -> int:
        """The sizes both the policy and the format offer."""
        return fmt_bitmap if self.bitmap is None else self.bitmap & fmt_bitmap

    @property
    def label(self) -> str:
        return "platform" if self.bitmap is None else _sizes_label(self.bitmap)


def _sizes_label(bitmap: int) -> str:
    return "+".join(fmt_size(1 << b) for b in range(64) if bitmap >> b & 1)


@dataclass
class WhatIf:
    """The runs of a what-if: ``frame`` (one row per run) and each run's :class:`Replay`.

    ``runs[i]`` is the replay behind ``frame`` row ``i``; rows with a ``note`` (a run the
    platform could not do) have none.
    """

    question: str
    frame: pd.DataFrame
    runs: dict[int, Replay] = field(default_factory=dict)

    plot = display.plot

    def to_dataframe(self) -> pd.DataFrame:
        """One row per run (a copy of ``frame``): platform, policies, format and the replay's figures."""
        return self.frame.copy()

    _repr_html_ = display.html

    def __repr__(self) -> str:
        return f"<WhatIf {self.question!r}: {len(self.frame)} runs>"


_COLUMNS = [
    "platform",
    "pgsizes",
    "mode",
    "flush",
    "format",
    "accesses",
    "iotlb_hit_rate",
    "walks",
    "refs",
    "refs_per_access",
    "refs_per_walk",
    "faults",
    "invalidations",
    "flushes",
    "stale_hits",
    "reused_before_flush",
    "traps",
    "table_bytes",
    "note",
]


def _row(
    platform: str, policy: str, mode: str, fmt: str, r: Replay | None, table_bytes: int, flush: str, note: str = ""
) -> dict:
    row = dict.fromkeys(_COLUMNS, np.nan)
    row.update(platform=platform, pgsizes=policy, mode=mode, flush=flush, format=fmt, note=note, table_bytes=table_bytes)
    if r is not None:
        s = r.summary
        for k in ("accesses", "iotlb_hit_rate", "walks", "refs", "refs_per_access", "refs_per_walk", "faults", "invalidations", "flushes", "stale_hits", "reused_before_flush", "traps"):
            row[k] = s[k]
    return row


def as_platform(value: Any, where: str = "platform") -> Platform:
    """A :class:`~iommu_lab.hardware.platform.Platform` from itself or its catalogue name."""
    if isinstance(value, Platform):
        return value
    if isinstance(value, str):
        return catalogue.get(value)
    raise TypeError(
        f"{where}={_cut(value)} is not a platform; give a Platform or a catalogue name such as "
        f"'intel-vtd-48' (iommu_lab.hardware.platform.platforms.names())"
    )


def _cut(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _platforms(platforms: Any) -> list:
    """The platforms to compare: None (every catalogue platform with a paging format), one
    platform or name, or an iterable of them."""
    if platforms is None:
        return [p for p in catalogue.values() if "paging" in p.formats]
    if isinstance(platforms, (str, Platform)) or not isinstance(platforms, Iterable):
        platforms = [platforms]
    out = [as_platform(p, "platforms entry") for p in platforms]
    if not out:
        raise ValueError("platforms=[] names no platform; give at least one, or None for every catalogue platform")
    return out


def _guest_ram(trace: Any) -> tuple[int, int]:
    """Guest RAM (base, size) covering every GPA the trace's stage-1 maps use, 1 GiB aligned."""
    f = trace.frame
    rows = f[(f["op"] == "map") & (f["stage"] == 1)]
    if rows.empty:
        return 0, _GiB
    lo = int(rows["pa"].min())
    hi = int((rows["pa"].astype(object) + rows["length"].astype(object)).max())
    base = lo & ~(_GiB - 1)
    size = ((hi - base + _GiB - 1) // _GiB) * _GiB
    return base, size


def place(trace: Any, usable: Any) -> tuple[Any, int]:
    """The trace moved so its stage-1 IOVAs lie inside one range of ``usable``, and the offset.

    A DMA-API IOVA allocator hands out addresses inside the domain's aperture and outside its
    reserved regions (``iommu_dma_alloc_iova`` within ``iova_reserve_iommu_regions``' holes), so
    on a platform with a narrow window (POWER's 2 GiB 32-bit TCE window) the same driver would
    have used other IOVAs. Moving every stage-1 row by one offset keeps the pattern — strides,
    sharing of pages and each address's offset within 1 GiB (2 MiB if 1 GiB alignment does not
    fit) so large pages stay usable — and changes only where it sits. ``usable`` is a
    :class:`~iommu_lab.core.ranges.RangeSet`. Raises ``ENOSPC`` when no range can hold the trace.
    """

    f = trace.frame
    rows = (f["stage"] == 1).to_numpy()
    if not rows.any():  # nothing walks stage 1: nothing to move
        return trace, 0
    iova = f["iova"].to_numpy(dtype=np.uint64)[rows]
    last = iova + (f["length"].to_numpy(dtype=np.uint64)[rows] - np.uint64(1))
    lo, hi = int(iova.min()), int(last.max())
    if usable.find(lo) is not None and usable.find(lo) is usable.find(hi):
        return trace, 0
    span = hi - lo
    for align in (_GiB, 2 << 20, 4096):
        for r in usable.ranges:
            new_lo = -(-(r.start - lo % align) // align) * align + lo % align
            if new_lo >= r.start and new_lo + span <= r.last:
                g = f.copy()
                g.loc[rows, "iova"] = (iova + np.uint64(new_lo - lo)) if new_lo >= lo else (iova - np.uint64(lo - new_lo))
                return Trace.from_frame(g, name=trace.name), new_lo - lo
    raise IommuError(
        "ENOSPC",
        f"the trace spans {fmt_size(span + 1)} of IOVA; no permitted range holds it (largest "
        f"{fmt_size(max(r.size for r in usable.ranges))})",
    )


def what_if(
    trace: Any,
    *,
    platforms: Any = None,
    pgsizes: Sequence[Any] | None = None,
    nested: bool = False,
    caches: Caches | None = None,
    policy: FlushPolicy | str | Sequence[FlushPolicy | str] = FlushPolicy.STRICT,
    progress: bool | None = None,
) -> WhatIf:
    """Replay ``trace`` on every platform × page-size policy × flush policy; one row per run.

    Each run starts from an empty domain of the platform's paging format (``nested=True``: a
    hardware-nested pair from :meth:`Nested.for_platform`, the policy restricting the guest's
    stage 1) and lets the trace's map rows fill it, so the trace must carry its maps (the
    generators in :mod:`iommu_lab.dma.trace` emit them). ``caches=None`` takes each platform's
    documented defaults (:meth:`Caches.for_platform`). ``policy`` may list several flush
    policies (``["strict", "lazy"]``) to compare invalidation costs. IOVAs the platform does not
    permit are moved into a permitted range first (:func:`place`). A platform that cannot run a
    mode gets a row whose ``note`` says why, instead of stopping the comparison.
    """

    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be an iommu_lab.dma.trace.Trace, got {type(trace).__name__}")
    f = trace.frame
    if (f["op"] == "map").any() and not ((f["op"] == "map") & (f["stage"] == 1)).any():
        raise ValueError(
            "the trace maps only stage 2 (every map row has stage 2): a what-if builds a fresh "
            "domain per run and fills it from the trace's stage-1 map rows, which the device's DMA "
            "walks; add stage-1 map rows for the ranges the DMA uses"
        )
    if not (f["op"] == "map").any():
        raise ValueError(
            "the trace has no map rows: a what-if builds a fresh domain per run and needs the trace's "
            "own maps to fill it (trace generators emit them; or add map rows for the ranges the DMA uses)"
        )
    policies = [PgsizePolicy.parse(p) for p in (pgsizes if pgsizes is not None else [None])]
    flushes = [
        FlushPolicy.parse(x)
        for x in ([policy] if isinstance(policy, (str, FlushPolicy)) else policy)
    ]
    plats = _platforms(platforms)
    rows: list[dict] = []
    runs: dict[int, Replay] = {}
    mode = "nested" if nested else "native"
    for p, pol, flush in ((p, pol, fl) for p in plats for pol in policies for fl in flushes):
        c = caches if caches is not None else Caches.for_platform(p)
        run_trace = trace
        try:
            if nested:
                base, size = _guest_ram(trace)
                target = Nested.for_platform(p, guest_base=base, guest_ram=size, backing="eager")
                f1 = target.stage1.fmt
                bm = pol.effective(f1.pgsize_bitmap)
                _check_policy(bm, pol, p.name, f1)
                target.stage1.pgsize_bitmap = bm
                fmt_name = f"{f1.name} over {target.stage2.fmt.name}"
            else:
                fmt = p.format("paging")
                bm = pol.effective(fmt.pgsize_bitmap)
                _check_policy(bm, pol, p.name, fmt)
                target = PageTable(fmt, pgsize_bitmap=bm)
                fmt_name = fmt.name
                run_trace, _ = place(trace, p.iova_ranges().intersection(fmt.input_ranges))
        except IommuError as e:
            rows.append(_row(p.name, pol.label, mode, "", None, 0, flush.value, note=str(e).split(";")[0]))
            continue
        r, table_bytes = _run_keep_table(run_trace, target, c, flush, progress)
        label = _sizes_label(bm) if pol.bitmap is not None else f"platform ({_sizes_label(bm)})"
        runs[len(rows)] = r
        rows.append(_row(p.name, label, mode, fmt_name, r, table_bytes, flush.value))
    question = f"{trace.name or 'trace'}: {mode} IOTLB behaviour across " + (
        f"{plural(len(plats), 'platform')} × {plural(len(policies), 'page-size policy', 'page-size policies')}"
    ) + (f" × {len(flushes)} flush policies" if len(flushes) > 1 else "")
    return WhatIf(question, pd.DataFrame(rows, columns=_COLUMNS), runs)


def _check_policy(bm: int, pol: PgsizePolicy, platform: str, fmt: Any) -> None:
    if bm == 0 or not bm & fmt.pgsize_bitmap & -fmt.pgsize_bitmap:
        raise IommuError(
            "EINVAL",
            f"page-size policy {pol.label} leaves {platform} ({fmt.name}) without its smallest page "
            f"{fmt_size(fmt.pgsize_bitmap & -fmt.pgsize_bitmap)}; it offers {_sizes_label(fmt.pgsize_bitmap)}",
        )


def _run_keep_table(trace, target, caches, policy, progress) -> tuple[Replay, int]:
    """Replay on ``target`` itself (it is fresh), so the table it ends with can be measured."""
    r = replay(trace, target, caches, policy=policy, progress=progress, _scratch=True)
    table = getattr(target, "table", None)  # a ShadowNesting's walked table
    if table is None:
        table = getattr(target, "stage1", target)
    return r, int(table.table_bytes)


def nesting_modes(
    trace: Any,
    platform: Any,
    *,
    caches: Caches | None = None,
    policy: FlushPolicy | str = FlushPolicy.STRICT,
    progress: bool | None = None,
) -> WhatIf:
    """The same trace native, hardware-nested and shadowed on one platform.

    * **native**: the host's own DMA domain of the platform's stage-2 format (no VM);
    * **nested**: guest stage 1 over host stage 2, the 2-D walk (Bhargava et al., ASPLOS 2008);
    * **shadowed**: the VMM composes the guest's maps into one shadow table of the stage-2
      format (:class:`~iommu_lab.nesting.shadow.ShadowNesting`): walks are native, but every guest map
      and unmap is a VM exit (``traps``).
    """

    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be an iommu_lab.dma.trace.Trace, got {type(trace).__name__}")
    p = as_platform(platform)
    c = caches if caches is not None else Caches.for_platform(p)
    base, size = _guest_ram(trace)
    rows, runs = [], {}
    nested = Nested.for_platform(p, guest_base=base, guest_ram=size, backing="eager")
    f2 = nested.stage2.fmt
    native = PageTable(f2)
    shadow = ShadowNesting.from_nested(
        Nested.for_platform(p, guest_base=base, guest_ram=size, backing="eager")
    )
    for mode, target, fmt_name in (
        ("native", native, f2.name),
        ("nested", nested, f"{nested.stage1.fmt.name} over {f2.name}"),
        ("shadowed", shadow, f"shadow {f2.name}"),
    ):
        r, tb = _run_keep_table(trace, target, c, policy, progress)
        runs[len(rows)] = r
        rows.append(_row(p.name, "platform", mode, fmt_name, r, tb, r.policy.value))
    q = f"{trace.name or 'trace'} on {p.name}: native vs nested vs shadowed"
    return WhatIf(q, pd.DataFrame(rows, columns=_COLUMNS), runs)
