"""Logged IOMMU faults on the faulting device's address layout, and a count table.

``faults(log, subject=None)`` draws one track per device (or SMMU stream): the ranges its table
maps (from an imported ``domain_translation_struct`` or a ``PageTable``) as bars, and each fault
as a marker at its address, one marker shape and colour per fault kind (colour is never the
only cue: the shape and the legend carry the kind too). The address axis is the segmented axis
the layout figure uses, so a fault in a 2^64 space still lands beside the mapping it missed.
``fault_table(log)`` counts faults per device, reason and time bucket.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from iommu_lab.core.faults import FaultKind
from iommu_lab.core.ranges import IovaRange, RangeSet
from iommu_lab.io.debugfs import DomainDump
from iommu_lab.io.dmesg import FaultLog, FaultRecord
from iommu_lab.pagetable import PageTable
from iommu_lab.render import style as _style
from iommu_lab.render.axis import SegmentedAxis
from iommu_lab.render.draw import Renderer, figure, register

__all__ = ["FaultsData", "faults_data", "faults", "fault_table", "KIND_LOOKS"]

#: Marker and colour per fault kind (Okabe-Ito; shapes differ so colour is not the only cue).
KIND_LOOKS = {
    FaultKind.TRANSLATION: ("v", _style.OKABE_ITO["vermillion"], "translation (not present)"),
    FaultKind.PERMISSION: ("s", _style.OKABE_ITO["orange"], "permission"),
    FaultKind.RESERVED: ("X", _style.OKABE_ITO["purple"], "reserved bits"),
    FaultKind.ADDRESS_SIZE: ("D", _style.OKABE_ITO["blue"], "address size"),
    FaultKind.NON_CANONICAL: ("P", _style.OKABE_ITO["green"], "non-canonical"),
    None: ("o", _style.OKABE_ITO["black"], "other event"),
}


@dataclass(frozen=True)
class Track:
    who: str
    mapped: tuple[IovaRange, ...]
    addresses: tuple[int, ...]
    kinds: tuple[FaultKind | None, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class FaultsData:
    tracks: tuple[Track, ...]
    axis: SegmentedAxis
    title: str


def _who(r: FaultRecord) -> str:
    return r.device or (f"sid {r.stream_id:#x}" if r.stream_id is not None else "unknown device")


def _mapped(subject: Any, who: str) -> list[IovaRange]:
    tables = []
    if isinstance(subject, PageTable):
        tables = [subject]
    elif isinstance(subject, DomainDump):
        tables = [subject.pagetable]
    elif isinstance(subject, (tuple, list)):
        tail = who.split(":", 1)[-1]
        tables = [d.pagetable for d in subject if isinstance(d, DomainDump) and d.device and d.device.endswith(tail)]
    out = []
    for pt in tables:
        out += [IovaRange(m.iova, m.iova + m.size - 1) for m in pt.mappings()]
    return list(RangeSet(out))  # touching pages drawn as one bar


def faults_data(log: Any, *, subject: Any = None, title: str | None = None) -> FaultsData:
    """Per device: the mapped ranges of ``subject`` (a dump or table, optional) and the faults."""
    records = [r for r in log if isinstance(r, FaultRecord) and r.address is not None]
    if not records:
        raise ValueError("no fault with an address to draw (interrupt-remapping and command events have none)")
    by_who: dict[str, list[FaultRecord]] = {}
    for r in records:
        by_who.setdefault(_who(r), []).append(r)
    tracks, populated = [], []
    for who, rs in by_who.items():
        mapped = tuple(_mapped(subject, who)) if subject is not None else ()
        tracks.append(Track(who, mapped, tuple(r.address for r in rs), tuple(r.kind for r in rs),
                            tuple(r.reason for r in rs)))
        populated += list(mapped) + [IovaRange(a & ~0xFFF, (a & ~0xFFF) + 0xFFF) for a in (r.address for r in rs)]
    axis = SegmentedAxis.from_ranges(populated)
    return FaultsData(tuple(tracks), axis, title or f"{len(records)} logged IOMMU fault(s)")


def _size(data: FaultsData) -> tuple[float, float]:
    return (10.0, 1.2 + 0.7 * len(data.tracks))


def draw_faults(ax, data: FaultsData, th: _style.Theme, *, owns_figure: bool = True) -> dict[str, int]:
    axis = data.axis
    drawn = {"mapped": 0, "markers": 0}
    seen = set()
    for i, t in enumerate(data.tracks):
        y = len(data.tracks) - 1 - i
        if t.mapped:
            x0 = axis.x(np.array([r.start for r in t.mapped], dtype=np.uint64))
            x1 = axis.x_end(np.array([r.last for r in t.mapped], dtype=np.uint64))
            ax.broken_barh(list(zip(x0, x1 - x0)), (y - 0.2, 0.4), facecolors=_style.OKABE_ITO["sky"],
                           edgecolors=th.foreground, linewidth=0.4, label="mapped" if "mapped" not in seen else None)
            seen.add("mapped")
            drawn["mapped"] += len(t.mapped)
        xs = axis.x(np.array(t.addresses, dtype=np.uint64))
        for kind in dict.fromkeys(t.kinds):
            marker, color, label = KIND_LOOKS[kind]
            sel = [k is kind for k in t.kinds]
            ax.scatter(xs[sel], np.full(sum(sel), y + 0.32), marker=marker, s=46, color=color, edgecolors=th.foreground,
                       linewidths=0.5, zorder=3, label=None if label in seen else f"fault: {label}")
            seen.add(label)
            drawn["markers"] += sum(sel)
    ax.set_yticks(range(len(data.tracks)))
    ax.set_yticklabels([t.who for t in reversed(data.tracks)], color=th.foreground)
    ax.set_ylim(-0.7, len(data.tracks) - 0.2)
    ticks = axis.ticks()
    step = max(1, len(ticks) // 12)  # a readable number of address labels
    ticks = ticks[::step]
    ax.set_xticks([x for x, _a, _l in ticks])
    ax.set_xticklabels([lab for _x, _a, lab in ticks], rotation=30, ha="right", fontsize=th.small_size)
    ax.set_xlim(0, axis.total_width)
    ax.set_title(data.title, color=th.foreground)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=th.small_size, frameon=False)
    return drawn


FAULTS = Renderer("faults", faults_data, draw_faults, lambda data: _size(data))


def faults(log: Any, *, subject: Any = None, ax=None, filename: str | os.PathLike | None = None,
           style: str = "light", title: str | None = None):
    """Draw ``log``'s faults on their devices' layouts (see the module docstring); a Figure."""
    return figure(FAULTS, log, ax=ax, filename=filename, style=style, subject=subject, title=title).figure


def fault_table(log: Any, *, bucket: float | None = None):
    """Faults counted per device, reason and (``bucket`` seconds) time, as a DataFrame."""
    if not isinstance(log, FaultLog):
        log = FaultLog(list(log))
    return log.counts(bucket=bucket)


register(lambda obj, **kw: faults(obj, **kw), "mpl", FaultLog)
