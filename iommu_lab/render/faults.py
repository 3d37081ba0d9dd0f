"""Logged IOMMU faults on the faulting device's address layout, and a count table.

``faults(log, subject=None)`` draws one track per device (or SMMU stream). On each track:

* what the subject says the device can reach: the ranges its table maps (an imported
  ``domain_translation_struct`` dump, a list of them matched by device, or a ``PageTable``), or an
  IOAS / Platform / RangeSet layout (windows, reserved regions and mapped areas, drawn in the
  layout figure's colours);
* the 4 KiB page of every fault, outlined -- known from the log alone, so a figure without a
  subject still shows where each device faulted (and says how to add the mappings);
* each fault as a marker at its address, one shape and colour per fault kind (colour is never
  the only cue: the shape and the legend carry the kind too).

The address axis is the layout figure's segmented axis (``render.axis.SegmentedAxis``): a fault
in a 2^64 space lands beside the mapping it missed, compressed gaps are shaded, zig-zag-edged
and labelled with their size, and the axis says it is not to scale. Log records without an
address (interrupt-remapping faults, command events) cannot be placed; the title counts them.
``fault_table(log)`` counts faults per device, reason and time bucket.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from iommu_lab.core.faults import FaultKind
from iommu_lab.core.ranges import IovaRange, RangeSet
from iommu_lab.core.words import plural
from iommu_lab.io.debugfs import DomainDump
from iommu_lab.io.dmesg import FaultLog, FaultRecord
from iommu_lab.pagetable import PageTable
from iommu_lab.render import style as _style
from iommu_lab.render.axis import SegmentedAxis, cluster_ranges
from iommu_lab.render.draw import Renderer, figure, register

__all__ = ["FaultsData", "Track", "faults_data", "faults", "draw_faults", "fault_table", "gallery", "KIND_LOOKS",
           "FAULTS", "NO_SUBJECT_NOTE", "thin_ticks"]

#: Marker and colour per fault kind (Okabe-Ito; shapes differ so colour is not the only cue).
#: Events that are no translation fault get a mid grey, visible on light and dark backgrounds.
KIND_LOOKS = {
    FaultKind.TRANSLATION: ("v", _style.OKABE_ITO["vermillion"], "translation (not present)"),
    FaultKind.PERMISSION: ("s", _style.OKABE_ITO["orange"], "permission"),
    FaultKind.RESERVED: ("X", _style.OKABE_ITO["purple"], "reserved bits"),
    FaultKind.ADDRESS_SIZE: ("D", _style.OKABE_ITO["blue"], "address size"),
    FaultKind.NON_CANONICAL: ("P", _style.OKABE_ITO["green"], "non-canonical"),
    None: ("o", "#8c8c8c", "other event"),
}

NO_SUBJECT_NOTE = ("no mapping information: pass subject= a domain_translation_struct dump, a PageTable, "
                   "an IOAS or a Platform to draw what the device maps")

PAGE = 0x1000  # the granule a fault is reported in on every IOMMU we read
MAX_MAPPED_SEGMENTS = 24  # more mapped ranges than this are clustered, as the layout figure does
MARKER_AREA = 64.0  # scatter marker area in pt^2
TICK_ROTATION = 30.0
GAP_ROWS = 3  # rows of gap sizes above the plot at most
LINE_HEIGHT = 1.3  # a text line's height over its font size, with a little air


@dataclass(frozen=True)
class Track:
    """One device's row: the subject's ranges, and its faults in log order."""

    who: str
    mapped: tuple[IovaRange, ...]
    addresses: tuple[int, ...]
    kinds: tuple[FaultKind | None, ...]
    reasons: tuple[str, ...]
    context: tuple[tuple[str, IovaRange], ...] = ()  #: (layout category key, range) from an IOAS/Platform

    @property
    def pages(self) -> tuple[IovaRange, ...]:
        """The faulting 4 KiB pages, touching ones merged."""
        return tuple(RangeSet([IovaRange(a & ~(PAGE - 1), (a & ~(PAGE - 1)) + PAGE - 1) for a in self.addresses]))


@dataclass(frozen=True)
class FaultsData:
    """Everything the fault figure draws.

    ``placed`` faults have an address and are drawn; ``left_out`` log records have none
    (interrupt-remapping faults, command events). ``note`` says what the figure could not show.
    """

    tracks: tuple[Track, ...]
    axis: SegmentedAxis
    title: str
    placed: int = 0
    left_out: int = 0
    note: str | None = None


def _who(r: FaultRecord) -> str:
    return r.device or (f"sid {r.stream_id:#x}" if r.stream_id is not None else "unknown device")


def _is_layout_model(x: Any) -> bool:
    # IOAS and Platform as render.layout recognises them (by shape, so no model import here).
    return isinstance(x, (RangeSet, IovaRange)) or (hasattr(x, "reserved") and (hasattr(x, "windows") or hasattr(x, "areas")))


def _check_subject(subject: Any) -> None:
    if subject is None or isinstance(subject, (PageTable, DomainDump)) or _is_layout_model(subject):
        return
    if isinstance(subject, (tuple, list)) and all(isinstance(d, DomainDump) for d in subject):
        return
    raise TypeError(
        "faults(subject=...) takes a domain_translation_struct dump (or a list of them, matched by "
        "device), a PageTable, an IOAS, a Platform or a RangeSet; "
        f"got {type(subject).__name__}")


def _mapped(subject: Any, who: str) -> list[IovaRange] | None:
    """The ranges ``subject`` maps for ``who``; None when it holds nothing for that device."""
    if isinstance(subject, PageTable):
        tables = [subject]
    elif isinstance(subject, DomainDump):
        tables = [subject.pagetable]
    else:  # a list of dumps: the ones naming this device (dumps print the BDF without segment)
        tail = who.split(":", 1)[-1]
        tables = [d.pagetable for d in subject if d.device and d.device.endswith(tail)]
        if not tables:
            return None
    out = []
    for pt in tables:
        out += [IovaRange(m.iova, m.iova + m.size - 1) for m in pt.mappings()]
    return list(RangeSet(out))  # touching pages drawn as one bar


def _context(subject: Any) -> tuple[tuple[tuple[str, IovaRange], ...], tuple[IovaRange, ...]]:
    """An IOAS / Platform / RangeSet as the layout figure reads it: (category, range) pairs for
    windows and reservations, and the mapped areas (free IOVA is left out: it is the background)."""
    from iommu_lab.render.layout import track_of

    t = track_of(subject)
    context, mapped = [], []
    for band in t.bands:
        ranges = [IovaRange(int(a), int(b)) for a, b in zip(band.starts, band.lasts)]
        if band.lane == "mapped" or band.category.startswith("leaf-"):
            if band.category != "free":
                mapped += ranges
        else:
            context += [(band.category, r) for r in ranges]
    return tuple(context), tuple(RangeSet(mapped))


def _populated(mapped: list[IovaRange]) -> list[IovaRange]:
    """Axis boundaries for mapped ranges: each its own segment while few, else clusters."""
    if len(mapped) <= MAX_MAPPED_SEGMENTS:
        return list(mapped)
    return cluster_ranges([r.start for r in mapped], [r.last for r in mapped], max_clusters=8)


def _title(placed: int, devices: int, left_out: int) -> str:
    text = f"{plural(placed, 'logged IOMMU fault')} on {plural(devices, 'device')}"
    if left_out:
        text += f"; {plural(left_out, 'record')} without an address left out"
    return text


def faults_data(log: Any, *, subject: Any = None, title: str | None = None) -> FaultsData:
    """Per device: the ranges ``subject`` maps (optional) and the faults, on one segmented axis.

    Parameters
    ----------
    log : FaultLog or iterable of FaultRecord
        As ``io.dmesg.read_dmesg`` returns it.
    subject : DomainDump, list of DomainDump, PageTable, IOAS, Platform or RangeSet, optional
        What the devices can reach. A list of dumps is matched to the log by device.
    title : str, optional
        Default: the counts of drawn faults, devices and records left out.
    """
    _check_subject(subject)
    records = [r for r in log if isinstance(r, FaultRecord)]
    placed = [r for r in records if r.address is not None]
    if not placed:
        raise ValueError(f"no fault with an address to draw among {plural(len(records), 'log record')} "
                         "(interrupt-remapping faults and command events have none)")
    by_who: dict[str, list[FaultRecord]] = {}
    for r in placed:
        by_who.setdefault(_who(r), []).append(r)
    context: tuple[tuple[str, IovaRange], ...] = ()
    shared: tuple[IovaRange, ...] = ()
    if subject is not None and _is_layout_model(subject):
        context, shared = _context(subject)
    tracks, populated, unknown = [], [], []
    for who, rs in by_who.items():
        if subject is None or context or shared:
            mapped = shared
        else:
            found = _mapped(subject, who)
            if found is None:
                unknown.append(who)
            mapped = tuple(found or ())
        t = Track(who, mapped, tuple(r.address for r in rs), tuple(r.kind for r in rs), tuple(r.reason for r in rs),
                  context)
        tracks.append(t)
        populated += _populated(list(mapped)) + list(t.pages)
    populated += [r for key, r in context if key != "resv-aperture"]
    note = None
    if subject is None:
        note = NO_SUBJECT_NOTE
    elif unknown:
        note = f"no dump in subject for {', '.join(unknown)}"
    axis = SegmentedAxis.from_ranges(populated)
    return FaultsData(tuple(tracks), axis, title or _title(len(placed), len(tracks), len(records) - len(placed)),
                      len(placed), len(records) - len(placed), note)


# -- drawing ---------------------------------------------------------------------------------
def _size(data: FaultsData) -> tuple[float, float]:
    return (_style.FIG_WIDTH, 3.4 + 0.8 * len(data.tracks) + (0.35 if data.note else 0.0))


def _label_width_in(text: str, size: float) -> float:
    return 0.62 * size / 72.0 * len(text)


def _axes_width_in(ax, data: FaultsData, th: _style.Theme) -> float:
    """Width of the plot area once constrained layout has made room for the device names
    (an estimate made before drawing, on the small side so tick thinning errs towards air)."""
    fig = _style.root_figure(ax)
    names = max(_label_width_in(t.who, th.font_size) for t in data.tracks)
    w = fig.get_figwidth() * ax.get_position().width
    return max(min(w, fig.get_figwidth() - names - 0.5), 1.0)


def thin_ticks(ticks: list[tuple[float, int, str]], min_gap: float) -> list[tuple[float, int, str]]:
    """Keep tick labels at least ``min_gap`` apart (x units); the first and last always stay."""
    if len(ticks) <= 2:
        return list(ticks)
    kept = [ticks[0]]
    for t in ticks[1:-1]:
        if t[0] - kept[-1][0] >= min_gap:
            kept.append(t)
    while len(kept) > 1 and ticks[-1][0] - kept[-1][0] < min_gap:
        kept.pop()
    kept.append(ticks[-1])
    return kept


def _zigzag(x: float, y0: float, y1: float, amp: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    ys = np.linspace(y0, y1, 2 * n + 1)
    return x + amp * np.where(np.arange(ys.size) % 2 == 0, -1.0, 1.0), ys


def _bars(ax, axis: SegmentedAxis, ranges, y0: float, h: float, min_w: float, **kw):
    from matplotlib.collections import PolyCollection

    x0 = axis.x(np.array([r.start for r in ranges], dtype=np.uint64))
    x1 = np.maximum(axis.x_end(np.array([r.last for r in ranges], dtype=np.uint64)), x0 + min_w)
    verts = [[(a, y0), (a, y0 + h), (b, y0 + h), (b, y0)] for a, b in zip(x0, x1)]
    coll = PolyCollection(verts, closed=True, **kw)
    ax.add_collection(coll, autolim=False)
    return coll


def draw_faults(ax, data: FaultsData, th: _style.Theme, *, owns_figure: bool = True) -> dict[str, Any]:
    """Draw ``data`` into ``ax``; returns counts and the artists tests read (markers, ticks)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    axis = data.axis
    W = axis.total_width
    axes_in = _axes_width_in(ax, data, th)
    per_in = W / axes_in
    # Room beyond both ends for a marker's half width, so a fault at 0 or at the top shows whole.
    margin = (math.sqrt(MARKER_AREA) / 2 + 3) / 72.0 * per_in
    n = len(data.tracks)
    ybottom, ytop = -0.65, n - 0.35
    drawn: dict[str, Any] = {"mapped": 0, "context": 0, "pages": 0, "markers": {}, "breaks": 0}
    handles: dict[str, Any] = {}
    min_w = 0.002 * W

    for s in axis.breaks:
        ax.add_patch(Rectangle((s.x0, ybottom), s.width, ytop - ybottom, facecolor=th.break_fill,
                               edgecolor="none", zorder=0.5, gid="faults:break-fill"))
    for s in axis.segments[1:]:
        ax.axvline(s.x0, color=th.grid, lw=0.6, zorder=0.6)

    for i, t in enumerate(data.tracks):
        y = n - 1 - i
        by_cat: dict[str, list[IovaRange]] = {}
        for key, r in t.context:
            by_cat.setdefault(key, []).append(r)
        for key, rs in by_cat.items():
            cat = _style.category(key)
            coll = _bars(ax, axis, rs, y - 0.42, 0.2, min_w, facecolors=cat.face(th),
                         edgecolors=cat.edge(th, th.foreground), linewidths=0.5, hatch=cat.hatch or None, zorder=2)
            if cat.hatch:
                coll.set_hatchcolor(cat.hatch_color(th))
            handles.setdefault(key, Patch(facecolor=cat.face(th), edgecolor=cat.edge(th, th.foreground),
                                          hatch=cat.hatch or None, lw=0.5, label=cat.label))
            drawn["context"] += len(rs)
        if t.mapped:
            _bars(ax, axis, t.mapped, y - 0.18, 0.36, min_w, facecolors=_style.OKABE_ITO["sky"],
                  edgecolors=th.foreground, linewidths=0.4, zorder=2.5)
            handles.setdefault("mapped", Patch(facecolor=_style.OKABE_ITO["sky"], edgecolor=th.foreground, lw=0.4,
                                               label="mapped"))
            drawn["mapped"] += len(t.mapped)
        _bars(ax, axis, t.pages, y - 0.18, 0.36, min_w, facecolors="none", edgecolors=th.foreground,
              linewidths=1.1, linestyles=(0, (3, 2)), zorder=2.8)
        handles.setdefault("page", Patch(facecolor="none", edgecolor=th.foreground, lw=1.1, linestyle=(0, (3, 2)),
                                         label="faulting 4 KiB page"))
        drawn["pages"] += len(t.pages)
        xs = axis.x(np.array(t.addresses, dtype=np.uint64))
        for kind in dict.fromkeys(t.kinds):
            marker, color, label = KIND_LOOKS[kind]
            sel = np.array([k is kind for k in t.kinds])
            sc = ax.scatter(xs[sel], np.full(int(sel.sum()), y + 0.36), marker=marker, s=MARKER_AREA, color=color,
                            edgecolors=th.foreground, linewidths=0.6, zorder=4, gid=f"faults:{label}")
            drawn["markers"].setdefault(t.who, []).append(sc)
            handles.setdefault(f"kind:{label}", Line2D([], [], linestyle="none", marker=marker, markersize=8,
                                                       markerfacecolor=color, markeredgecolor=th.foreground,
                                                       label=f"fault: {label}"))

    # Compressed gaps: zig-zag edges and their size above the axes, staggered where they crowd.
    amp = 0.25 * (W + 2 * margin) / 300
    rows: list[float] = []
    char_w = 0.62 * th.small_size / 72.0 * per_in
    for s in axis.breaks:
        for xe in (s.x0, s.x1):
            if 0.0 < xe < W:
                xz, yz = _zigzag(xe, ybottom, ytop, amp, max(3, int((ytop - ybottom) * 2.5)))
                ax.add_line(Line2D(xz, yz, color=th.muted, lw=1.1, zorder=3, gid="faults:break-marker"))
        text = f"gap {s.label}"
        cx, half = (s.x0 + s.x1) / 2, len(text) * char_w / 2
        drawn["breaks"] += 1
        row = next((k for k, right in enumerate(rows) if cx - half > right + char_w), len(rows))
        if row >= GAP_ROWS:  # no room left: the shaded, zig-zag-edged band still marks this gap
            continue
        if row == len(rows):
            rows.append(cx + half)
        rows[row] = cx + half
        ax.annotate(text, xy=(cx, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3 + row * LINE_HEIGHT * th.small_size),
                    textcoords="offset points", ha="center", va="bottom", fontsize=th.small_size, color=th.muted,
                    style="italic", annotation_clip=False, gid="faults:gap-size")
    if axis.breaks:
        handles["gap"] = Patch(facecolor=th.break_fill, edgecolor=th.muted, lw=1.1, label="compressed gap (not to scale)")

    ax.set_yticks(range(n), [t.who for t in reversed(data.tracks)])
    ax.tick_params(axis="y", length=0, labelsize=th.font_size)
    ax.set_ylim(ybottom, ytop)
    ax.set_xlim(-margin, W + margin)
    # Rotated labels of one font size clear each other when their anchors are a line height
    # apart measured across the slant: gap * sin(rotation) >= line height.
    line_in = LINE_HEIGHT * th.small_size / 72.0
    min_gap = line_in / math.sin(math.radians(TICK_ROTATION)) * per_in
    ticks = thin_ticks(axis.ticks(), min_gap)
    ax.set_xticks([x for x, _a, _l in ticks], [lab for _x, _a, lab in ticks])
    for lab in ax.get_xticklabels():
        lab.set_fontfamily(th.mono_family)
        lab.set_fontsize(th.small_size)
        lab.set_rotation(TICK_ROTATION)
        lab.set_horizontalalignment("right")
        lab.set_rotation_mode("anchor")
    ax.set_xticks([s.x0 for s in axis.segments[1:]], minor=True)  # a dropped label keeps its tick
    ax.tick_params(axis="x", which="minor", length=3, color=th.muted)
    drawn["ticks"] = ticks
    xlabel = "IOVA, not to scale" + ("; shaded zig-zag bands are compressed gaps" if axis.breaks else "")
    if data.note:
        xlabel += "\n" + data.note
    ax.set_xlabel(_style.wrap(xlabel, th, size=th.small_size, width_in=axes_in / th.scale), fontsize=th.small_size, color=th.muted, loc="left")
    for sp in ("top", "right"):
        ax.spines[sp].set_visible(False)
    ax.set_title(_style.wrap(data.title, th, width_in=axes_in / th.scale), fontsize=th.title_size, color=th.foreground, loc="left",
                 pad=6 + max(1, len(rows)) * LINE_HEIGHT * th.small_size)
    order = [k for k in handles if k.startswith("kind:")] + [k for k in handles if not k.startswith("kind:")]
    common = dict(handles=[handles[k] for k in order], fontsize=th.small_size, frameon=False, handlelength=2.2)
    if owns_figure:
        leg = ax.figure.legend(loc="outside lower center", ncol=min(len(order), 3), **common)
    else:
        leg = ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), ncol=1, **common)
    for txt in leg.get_texts():
        txt.set_color(th.foreground)
    return drawn


#: The fault figure: ``faults_data`` drawn by ``draw_faults``.
FAULTS = Renderer("faults", faults_data, draw_faults, _size)


def faults(log: Any, *, subject: Any = None, ax=None, filename: str | os.PathLike | None = None,
           style: str = "light", title: str | None = None, figsize: tuple[float, float] | None = None):
    """Draw ``log``'s faults on their devices' layouts (see the module docstring); a Figure.

    Parameters
    ----------
    log : FaultLog or iterable of FaultRecord
    subject : DomainDump, list of DomainDump, PageTable, IOAS, Platform or RangeSet, optional
        What the devices can reach; without it only the faulting pages are known.
    ax, filename, style, title, figsize
        As every renderer takes them (``render.draw.figure``).
    """
    return figure(FAULTS, log, ax=ax, filename=filename, style=style, figsize=figsize, subject=subject,
                  title=title).figure


def fault_table(log: Any, *, bucket: float | None = None):
    """Faults counted per device, reason and (``bucket`` seconds) time, as a DataFrame."""
    if not isinstance(log, FaultLog):
        log = FaultLog(list(log))
    return log.counts(bucket=bucket)


def gallery(add: Any) -> None:
    """Gallery entries: a pre-5.1 VT-d log over the device's imported table, and an AMD log alone."""
    from iommu_lab.core.paths import data_dir
    from iommu_lab.io.debugfs import read_domain_translation
    from iommu_lab.io.dmesg import read_dmesg

    base = data_dir()
    add("faults-vtd-on-dump", lambda style: faults(
        read_dmesg(base / "dmesg/intel-pre5.1.log"),
        subject=read_domain_translation(base / "debugfs/domain_translation_struct"), style=style))
    add("faults-amd-log-only", lambda style: faults(read_dmesg(base / "dmesg/amd-5.x+.log"), style=style))


register(lambda obj, **kw: faults(obj, **kw), "mpl", FaultLog)
