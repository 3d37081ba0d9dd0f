"""The IOTLB at work over a DMA trace, and what-if comparisons of replays side by side.

``replay(x)`` draws either result of the trace-replay layer:

* a :class:`~iommu_lab.dma.replay.Replay` as three panels --
  (a) cumulative page-table references and cumulative IOTLB misses (walks) over the trace, with
  every domain flush as a vertical line (where a lazy flush queue's collateral misses start)
  and the map/unmap rows as ticks along the bottom;
  (b) the IOTLB miss rate in consecutive windows of accesses, which shows the burst of misses
  after each flush that the cumulative curve only bends at;
  (c) the hit rate of every cache the replay drove (IOTLB, each paging-structure-cache level,
  and in nesting the stage-2 TLB and walk caches) from ``Replay.cache_stats``;
* a :class:`~iommu_lab.dma.whatif.WhatIf` as two panels of horizontal bars, one bar per run grouped
  by platform -- (a) page-table references per access (log scale when the values span more
  than 20x), (b) IOTLB hit rate -- with a run that could not be made (a row with a ``note``)
  drawn as an annotated gap. The title is the what-if's ``question``.

Long replays are downsampled for drawing (at most ``max_points`` points per curve), but every
total written on the figure is the replay's exact figure.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

import iommu_lab.render.style as _style
from iommu_lab.core.ranges import fmt_size, parse_size
from iommu_lab.core.words import plural
from iommu_lab.render.draw import Renderer, figure, register

__all__ = ["replay", "replay_data", "whatif_data", "draw_replay", "draw_whatif", "REPLAY", "WHATIF",
           "ReplayData", "WhatIfData", "sizes_label", "pct"]

_style.register_category("rp-refs", "page-table references", _style.OKABE_ITO["blue"], "", "replay")
_style.register_category("rp-misses", "IOTLB misses (walks)", _style.OKABE_ITO["orange"], "--", "replay")
_style.register_category("rp-flush", "domain flush", _style.OKABE_ITO["vermillion"], ":", "replay")
_style.register_category("rp-unmap", "unmap", _style.OKABE_ITO["purple"], "", "replay")
_style.register_category("rp-map", "map", _style.OKABE_ITO["green"], "", "replay")
# One colour per meaning in all three panels: the IOTLB is orange whether its misses are counted
# ((a), (b)) or its hit rate drawn ((c)); blue is only the page-table references, and no other
# cache borrows either colour.
_style.register_category("rp-IOTLB", "IOTLB", _style.OKABE_ITO["orange"], "", "replay")
_style.register_category("rp-PSC", "paging-structure cache", _style.OKABE_ITO["sky"], "//", "replay")
_style.register_category("rp-S2 TLB", "stage-2 TLB", _style.PETROFF["brown"], "\\\\", "replay")
_style.register_category("rp-S2 PSC", "stage-2 walk cache", _style.OKABE_ITO["yellow"], "..", "replay")

# One look per series of a what-if (page-size policy or nesting mode), in frame order.
_SERIES_LOOKS = (
    (_style.OKABE_ITO["blue"], ""),
    (_style.OKABE_ITO["sky"], "//"),
    (_style.OKABE_ITO["green"], "\\\\"),
    (_style.OKABE_ITO["orange"], ".."),
    (_style.OKABE_ITO["purple"], "++"),
    (_style.PETROFF["brown"], "--"),
)
_MODE_SLOT = {"native": 0, "nested": 3, "shadowed": 2}

#: The bands, as fractions of the largest total, where panel (a) ticks the map and unmap rows.
RUG_MAP = (-0.17, -0.11)
RUG_UNMAP = (-0.09, -0.03)
#: Default cap on the points drawn per curve: enough for a smooth line at review size.
MAX_POINTS = 2000
#: Windows of accesses in the miss-rate panel, each of at least MIN_WINDOW accesses.
MISS_WINDOWS = 200
MIN_WINDOW = 16

_TIME_UNITS = (("s", 1e9), ("ms", 1e6), ("µs", 1e3), ("ns", 1.0))


def _time_unit(span_ns: float) -> tuple[str, float]:
    for name, scale in _TIME_UNITS:
        if span_ns >= 10 * scale:
            return name, scale
    return "ns", 1.0


# ----------------------------------------------------------------------------------------------
# Data: what each figure draws, computed from the model without touching it
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayData:
    """What ``replay(r)`` draws for a Replay: sampled running totals, events, windows, caches."""

    kind: str
    target: str
    policy: str
    x: str
    accesses: int
    index: np.ndarray
    pos: np.ndarray
    cum_refs: np.ndarray
    cum_misses: np.ndarray
    total_refs: int
    total_misses: int
    flushes: dict
    maps: dict
    unmaps: dict
    window_edges: np.ndarray
    window_miss_rate: np.ndarray
    window_sizes: np.ndarray
    caches: list
    summary: Any

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class WhatIfData:
    """What ``replay(w)`` draws for a WhatIf: one row per run, grouped by platform, and the series."""

    question: str
    by: str
    platforms: list
    rows: list
    series: dict

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def replay_data(r: Any, *, x: str = "time", max_points: int = MAX_POINTS, windows: int = MISS_WINDOWS) -> ReplayData:
    """The numbers ``replay(r)`` draws for a Replay, as plain arrays and dicts.

    ``x="time"`` places accesses and events at their trace time (ns); ``x="access"`` at the
    access index, an event at the first access at or after its time. Curves are sampled at
    ``max_points`` evenly spaced accesses, always including the last, so the curves end at the
    exact totals.
    """
    if x not in ("time", "access"):
        raise ValueError(f"x={x!r}: choose 'time' (trace time) or 'access' (access index)")
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"max_points={max_points!r}: must be an integer of at least 2")
    acc, ev, s = r.accesses, r.events, r.summary
    n = len(acc)
    t = acc["t"].to_numpy(dtype=np.int64)
    refs = acc["refs"].to_numpy()
    miss = ~acc["hit"].to_numpy(dtype=bool)
    cum_refs = np.cumsum(refs, dtype=np.int64)
    cum_miss = np.cumsum(miss, dtype=np.int64)
    if n:
        idx = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(np.int64))
    else:
        idx = np.zeros(0, dtype=np.int64)
    pos = t if x == "time" else np.arange(n, dtype=np.int64)

    ev_t = ev["t"].to_numpy(dtype=np.int64)
    ev_op = ev["op"].astype(str).to_numpy()
    ev_x = ev_t if x == "time" else np.searchsorted(t, ev_t, side="left")

    def events_of(op: str) -> dict:
        sel = ev_op == op
        return {"count": int(sel.sum()), "t": ev_t[sel], "x": ev_x[sel]}

    flushes = events_of("flush")
    flushes["note"] = ev.loc[ev_op == "flush", "note"].astype(str).tolist()

    k = max(1, min(windows, n // MIN_WINDOW))
    edges = np.linspace(0, n, k + 1).round().astype(np.int64) if n else np.zeros(1, dtype=np.int64)
    edges = np.unique(edges)
    starts = edges[:-1]
    sizes = np.diff(edges)
    misses_per = np.add.reduceat(miss.astype(np.int64), starts) if n else np.zeros(0, dtype=np.int64)
    rate = misses_per / np.maximum(sizes, 1)
    if x == "time" and n:
        w_edges = np.append(t[starts], t[-1])
    else:
        w_edges = edges.astype(np.int64)

    caches = []
    for _, row in r.cache_stats.iterrows():
        level = row["level"]
        has_level = level is not None and not (isinstance(level, float) and math.isnan(level))
        name = str(row["cache"])
        caches.append({
            "cache": name,
            "level": int(level) if has_level else None,
            "label": f"{name} L{int(level)}" if has_level else name,
            "entries": int(row["entries"]),
            "lookups": int(row["lookups"]),
            "hits": int(row["hits"]),
            "hit_rate": float(row["hit_rate"]),
        })
    return ReplayData(
        kind=r.kind,
        target=r.target,
        policy=getattr(r.policy, "value", str(r.policy)),
        x=x,
        accesses=n,
        index=idx,
        pos=pos[idx],
        cum_refs=cum_refs[idx],
        cum_misses=cum_miss[idx],
        total_refs=int(s["refs"]),
        total_misses=int(s["iotlb_misses"]),
        flushes=flushes,
        maps=events_of("map"),
        unmaps=events_of("unmap"),
        window_edges=w_edges,
        window_miss_rate=rate,
        window_sizes=sizes,
        caches=caches,
        summary=s,
    )


def whatif_data(w: Any) -> WhatIfData:
    """The rows ``replay(w)`` draws for a WhatIf: one per run, grouped by platform.

    A *series* is what varies inside a platform: the nesting mode when the frame has several
    modes, else the k-th run of every platform (page-size policy, and flush policy when the
    what-if compared several). A page-size series is named by the sizes its runs used on any
    platform (the policy as far as the platforms offer it: "4 KiB + 2 MiB"); a run that used
    fewer, because its platform lacks a size, keeps the series' name and says on its row what
    it ran with (``reduced``: "ran as 4 KiB only").
    """
    df = w.frame
    by_mode = df["mode"].nunique() > 1
    by_flush = "flush" in df.columns and df["flush"].nunique() > 1
    platforms = list(dict.fromkeys(df["platform"]))
    runs = []
    for name in platforms:
        sub = df[df["platform"] == name]
        for k, (i, r) in enumerate(sub.iterrows()):
            key = _MODE_SLOT.get(str(r["mode"]), k) if by_mode else k
            runs.append((name, key, i, r, _sizes_of(str(r["pgsizes"]))))
    # The sizes a page-size series used anywhere: its policy, as far as the platforms offer it.
    union: dict[int, set] = {}
    for _, key, _, r, sizes in runs:
        union.setdefault(key, set()).update(sizes or ())
    rows = []
    series_labels: dict[int, str] = {}
    for name, key, i, r, sizes in runs:
        flush = f" · {r['flush']} invalidation" if by_flush else ""
        reduced = ""
        if by_mode:
            label = str(r["mode"])
        elif sizes is None:  # each platform's own sizes
            label = sizes_label(str(r["pgsizes"]))
        else:
            label = _policy_name(union[key])
            if sizes < union[key]:
                reduced = f"ran as {_policy_name(sizes)}: no {_size_list(union[key] - sizes)} here"
        series_labels.setdefault(key, (str(r["mode"]) if by_mode else (
            "each platform's own sizes" if sizes is None else _policy_name(union[key]))) + flush)
        note = r["note"]
        ran = not (isinstance(note, str) and note)
        rows.append({
            "row": int(df.index.get_loc(i)),
            "platform": name,
            "label": label + flush,
            "reduced": reduced if ran else "",
            "pgsizes": str(r["pgsizes"]),
            "mode": str(r["mode"]),
            "flush": str(r["flush"]) if "flush" in df.columns else "",
            "series": key,
            "ran": ran,
            "note": "" if ran else str(note),
            "refs_per_access": float(r["refs_per_access"]) if ran else float("nan"),
            "iotlb_hit_rate": float(r["iotlb_hit_rate"]) if ran else float("nan"),
            "traps": int(r["traps"]) if ran and not _isnan(r["traps"]) else 0,
            "format": str(r["format"]),
        })
    return WhatIfData(
        question=w.question,
        by="mode" if by_mode else ("pgsizes · flush" if by_flush else "pgsizes"),
        platforms=platforms,
        rows=rows,
        series=series_labels,
    )


def _sizes_of(label: str) -> frozenset | None:
    """The page sizes a frame's ``pgsizes`` label names ("4 KiB+2 MiB"); None for a platform's own."""
    if label.startswith("platform"):
        return None
    return frozenset(parse_size(part.strip()) for part in label.split("+") if part.strip())


def _size_list(sizes) -> str:
    return " + ".join(fmt_size(v) for v in sorted(sizes))


def _policy_name(sizes) -> str:
    """A page-size policy as a person says it: "4 KiB only", "4 KiB + 2 MiB"."""
    return _size_list(sizes) + (" only" if len(sizes) == 1 else "")


def sizes_label(label: str) -> str:
    """A page-size policy label as a person says it: ``"4 KiB+2 MiB"`` -> ``"4 KiB + 2 MiB"``,
    ``"4 KiB"`` -> ``"4 KiB only"``; ``"platform (4 KiB+8 KiB+...+1 GiB)"`` -> ``"platform's
    sizes: 4 KiB … 1 GiB (9 sizes)"``."""
    head, _, inner = label.partition(" (")
    body = inner.rstrip(")") if inner else head
    parts = [part.strip() for part in body.split("+")]
    if not inner:
        return " + ".join(parts) + (" only" if len(parts) == 1 else "")
    text = " + ".join(parts) if len(parts) <= 3 else f"{parts[0]} … {parts[-1]} ({len(parts)} sizes)"
    return f"{head}'s sizes: {text}"


def pct(v: float) -> str:
    """A rate as a percentage that never rounds a miss away: 0.99997 is "99.997%", not "100.0%"."""
    if 0.999 < v < 1.0:
        return f"{v:.3%}"
    if 0.0 < v < 0.001:
        return f"{v:.3%}"
    return f"{v:.1%}"


def _isnan(v: Any) -> bool:
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# The renderer
# ----------------------------------------------------------------------------------------------


def replay(x: Any, *, ax=None, filename: str | os.PathLike | None = None, style: str = "light",
           title: str | None = None, time_axis: str = "time", max_points: int = MAX_POINTS,
           figsize: tuple[float, float] | None = None):
    """Draw a Replay (the caches over the trace) or a WhatIf (runs side by side).

    Parameters
    ----------
    x : Replay or WhatIf
    ax : matplotlib Axes, optional
        Draw the panels in this Axes' place (its figure is returned).
    filename : str or path, optional
        Also save; the suffix picks SVG, PNG (200 dpi) or PDF.
    style : {"light", "dark"}
    title : str, optional
        Defaults to the replay's target and policy, or the what-if's question.
    time_axis : {"time", "access"}
        Replay only: x axis in trace time or in access index.
    max_points : int
        Replay only: most points drawn per curve (totals stay exact).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from iommu_lab.dma.replay import Replay
    from iommu_lab.dma.whatif import WhatIf

    if isinstance(x, Replay):
        return figure(REPLAY, x, ax=ax, filename=filename, style=style, figsize=figsize, title=title,
                      x=time_axis, max_points=max_points).figure
    if isinstance(x, WhatIf):
        return figure(WHATIF, x, ax=ax, filename=filename, style=style, figsize=figsize, title=title).figure
    raise TypeError(
        f"render.replay draws a Replay (iommu_lab.replay(...)) or a WhatIf (iommu_lab.what_if(...)), "
        f"not {type(x).__name__}"
    )


def _title(data: dict) -> str:
    if "question" in data:
        return data["question"]
    s = data["summary"]
    return (f"{data['target']} ({data['kind']}, {data['policy']} invalidation): {data['accesses']:,} accesses,\n"
            f"IOTLB hit rate {float(s['iotlb_hit_rate']):.1%}, {float(s['refs_per_access']):.3g} references per access")


def _head(axes, d: dict, th, title: str | None, owns_figure: bool) -> None:
    """The figure's title: above the panels of a figure made for them, else over the first panel."""
    head = title if title is not None else _title(d)
    if owns_figure:
        _style.root_figure(axes[0]).suptitle(_style.wrap(head, th), fontsize=th.title_size, color=th.foreground, x=0.01, ha="left")
    else:
        axes[0].set_title(head + "\n" + axes[0].get_title(), fontsize=th.font_size, loc="left", color=th.foreground)


def _split(host, *, owns_figure: bool, grid: dict, places, boxes) -> list:
    """The panel Axes: a new figure's grid, a sub-grid in ``host``'s slot, or insets of ``host``."""
    if owns_figure or host.get_subplotspec() is not None:
        parent = host.figure
        gs = parent.add_gridspec(**grid) if owns_figure else host.get_subplotspec().subgridspec(**grid)
        parent.delaxes(host)
        return [parent.add_subplot(gs[p]) for p in places]
    host.set_axis_off()  # an Axes placed by hand: split its rectangle into insets
    return [host.inset_axes(list(b)) for b in boxes]


def _replay_panels(host, *, owns_figure: bool) -> list:
    axes = _split(host, owns_figure=owns_figure,
                  grid=dict(nrows=3, ncols=1, height_ratios=[1.6, 1.0, 1.0]),
                  places=((0, 0), (1, 0), (2, 0)),
                  boxes=((0.0, 0.58, 1.0, 0.42), (0.0, 0.3, 1.0, 0.22), (0.0, 0.0, 1.0, 0.22)))
    axes[1].sharex(axes[0])
    return axes


def _whatif_panels(host, *, owns_figure: bool) -> list:
    axes = _split(host, owns_figure=owns_figure, grid=dict(nrows=2, ncols=1), places=((0, 0), (1, 0)),
                  boxes=((0.0, 0.54, 1.0, 0.46), (0.0, 0.0, 1.0, 0.46)))
    axes[1].sharey(axes[0])
    return axes


def draw_replay(axes, data: ReplayData, th, *, owns_figure: bool = True, title: str | None = None) -> dict:
    """Draw a replay's three panels; returns the data with what was drawn (scales, lines, totals)."""
    d = data.as_dict()
    _draw_replay(axes, d, th)
    _below(axes, d.pop("legend"), th, owns_figure=owns_figure)
    _head(axes, d, th, title, owns_figure)
    return d


def _below(axes, handles, th, *, owns_figure: bool):
    """Panel (a)'s legend under the panels, where it covers no curve."""
    if owns_figure:
        leg = _style.root_figure(axes[0]).legend(handles=handles, loc="outside lower center", ncols=2,
                                                 fontsize=th.small_size, frameon=False)
    else:
        from matplotlib.legend import Legend

        # Added as an extra artist: the last panel keeps its own legend of caches.
        leg = Legend(axes[-1], handles, [h.get_label() for h in handles], loc="upper left",
                     bbox_to_anchor=(0.0, -0.25), ncols=2, fontsize=th.small_size, frameon=True)
        axes[-1].add_artist(leg)
    leg.set_gid("replay:legend")
    return leg


def draw_whatif(axes, data: WhatIfData, th, *, owns_figure: bool = True, title: str | None = None) -> dict:
    """Draw a what-if's two panels; returns the data with the values drawn per run."""
    d = data.as_dict()
    _draw_whatif(axes, d, th)
    _head(axes, d, th, title, owns_figure)
    return d


def _legend(a, handles, th, **kw):
    kw = {"loc": "upper left", "fontsize": th.small_size, "frameon": True, **kw}
    leg = a.legend(handles=handles, **kw)
    leg.get_frame().set_alpha(1.0)
    return leg


def _line_handle(key: str, th, label: str):
    from matplotlib.lines import Line2D

    cat = _style.category(key)
    return Line2D([], [], color=cat.face(th), linestyle=cat.hatch or "-", lw=1.6, label=label)


def _patch_handle(key: str, th, label: str, *, face: str | None = None, hatch: str | None = None):
    from matplotlib.patches import Patch

    cat = _style.category(key) if key else None
    face = face or cat.face(th)
    hatch = hatch if hatch is not None else (cat.hatch if cat else "")
    h = Patch(facecolor=face, edgecolor=th.foreground, lw=0.5, hatch=hatch or None, label=label)
    if hatch:
        h.set_hatchcolor(_style.hatch_color(face))
    return h


def _text(a, x, y, s, th, *, ha="left", va="center", gid="replay:value", transform=None, size=None):
    return a.text(x, y, s, ha=ha, va=va, fontsize=size or th.small_size, color=th.foreground, gid=gid,
                  transform=transform or a.transData,
                  bbox=dict(boxstyle="round,pad=0.12", facecolor=th.axes_background, edgecolor="none"))


# ----------------------------------------------------------------------------------------------
# A Replay
# ----------------------------------------------------------------------------------------------


def _draw_replay(axes, d: dict, th) -> None:
    from matplotlib.collections import LineCollection

    a, b, c = axes
    s = d["summary"]
    if d["x"] == "time":
        unit, scale = _time_unit(max(int(d["pos"][-1]) if d["pos"].size else 1, 1))
        xlabel = f"trace time ({unit})"
    else:
        unit, scale = "access", 1.0
        xlabel = "access (4 KiB translation request)"
    d["x_unit"], d["x_scale"] = unit, scale
    px = d["pos"] / scale
    span = (float(px[0]), float(px[-1])) if px.size else (0.0, 1.0)

    # (a) cumulative references and misses
    refs_cat, miss_cat = _style.category("rp-refs"), _style.category("rp-misses")
    a.plot(px, d["cum_refs"], color=refs_cat.face(th), lw=1.6, gid="replay:cum_refs")
    a.plot(px, d["cum_misses"], color=miss_cat.face(th), lw=1.4, linestyle=miss_cat.hatch, gid="replay:cum_misses")
    top = max(d["total_refs"], d["total_misses"], 1)
    flush_cat = _style.category("rp-flush")
    fx = d["flushes"]["x"] / scale
    # A flush timer can fire after the last access; it changes nothing the figure shows.
    inside = fx[(fx >= span[0]) & (fx <= span[1])]
    d["flush_lines"] = _thin(inside, MAX_POINTS) * scale
    for xx in _thin(inside, MAX_POINTS):
        a.axvline(xx, color=flush_cat.face(th), lw=0.9, linestyle=flush_cat.hatch, gid="replay:flush", zorder=1)
        b.axvline(xx, color=flush_cat.face(th), lw=0.9, linestyle=flush_cat.hatch, gid="replay:flush", zorder=1)
    rug = []
    # The map and unmap rows are ticks in two bands below zero, apart from the curves (which start
    # at zero), so neither hides the other.
    for key, ev, (y0, y1) in (("rp-map", d["maps"], RUG_MAP), ("rp-unmap", d["unmaps"], RUG_UNMAP)):
        xs = _thin(ev["x"] / scale, MAX_POINTS)
        if xs.size:
            segs = np.stack([np.stack([xs, np.full_like(xs, y0 * top)], 1),
                             np.stack([xs, np.full_like(xs, y1 * top)], 1)], 1)
            lc = LineCollection(segs, colors=_style.category(key).face(th), linewidths=0.8, gid=f"replay:{key[3:]}")
            a.add_collection(lc)
            a.text(-0.01, (y0 + y1) / 2 * top, _style.category(key).label, transform=a.get_yaxis_transform(),
                   ha="right", va="center", fontsize=th.small_size, color=th.foreground, gid="replay:rug_label")
            rug.append(key)
    a.set_ylabel("cumulative count", color=th.foreground, fontsize=th.small_size)
    a.yaxis.set_major_formatter(_count_formatter())
    a.grid(True, axis="y", color=th.grid, lw=0.5)
    fl = d["flushes"]
    why = {}
    for note in fl["note"]:
        why[note] = why.get(note, 0) + 1
    late = fl["count"] - inside.size
    flush_label = (f"domain flush ({fl['count']:,}" + (": " + ", ".join(f"{v:,} {k}" for k, v in why.items()) if why else "")
                   + (f";\n{late:,} after the last access" if late else "") + ")")
    handles = [
        _line_handle("rp-refs", th, f"page-table references ({d['total_refs']:,}; {float(s['refs_per_access']):.3g}/access)"),
        _line_handle("rp-misses", th, f"IOTLB misses ({d['total_misses']:,} of {d['accesses']:,} accesses)"),
        _line_handle("rp-flush", th, flush_label),
    ]
    for key, ev in (("rp-map", d["maps"]), ("rp-unmap", d["unmaps"])):
        handles.append(_line_handle(key, th, f"{_style.category(key).label} rows ({ev['count']:,})"))
    d["legend"] = handles
    a.set_ylim(RUG_MAP[0] * top - 0.02 * top, top * 1.08)
    inv, nfl = int(s["invalidations"]), int(s["flushes"])
    totals = (f"{plural(inv, 'range invalidation')} · {plural(nfl, 'flush', 'flushes')}"
              f" · {int(s['iotlb_invalidated']):,} IOTLB entries invalidated"
              + (f" · {int(s['stale_hits']):,} stale hits" if int(s["stale_hits"]) else "")
              + (f" · {int(s['faults']):,} faults" if int(s["faults"]) else "")
              + (f" · {int(s['traps']):,} VM exits" if int(s["traps"]) else ""))
    d["totals"] = totals
    a.set_title("(a) page-table references and IOTLB misses so far\n" + totals, fontsize=th.font_size, loc="left",
                color=th.foreground)

    # (b) miss rate per window
    we = d["window_edges"] / scale
    rate = d["window_miss_rate"]
    if rate.size:
        b.stairs(rate, we, color=miss_cat.face(th), lw=1.0, gid="replay:miss_rate", baseline=None)
        per = int(np.median(d["window_sizes"]))
        b.set_title(f"(b) IOTLB miss rate per window of ~{per:,} accesses", fontsize=th.font_size, loc="left",
                    color=th.foreground)
    b.set_ylim(0, 1.05)
    b.set_yticks([0, 0.5, 1.0], ["0", "50%", "100%"])
    b.grid(True, axis="y", color=th.grid, lw=0.5)
    b.set_xlabel(xlabel, color=th.foreground, fontsize=th.small_size)
    a.tick_params(labelbottom=False)
    pad = (span[1] - span[0]) * 0.01 or 1.0
    a.set_xlim(span[0] - pad, span[1] + pad)

    # (c) hit rate per cache
    rows = d["caches"]
    y = np.arange(len(rows))[::-1].astype(float)
    used = []
    for yy, row in zip(y, rows):
        key = f"rp-{row['cache']}" if f"rp-{row['cache']}" in _style.CATEGORIES else "rp-PSC"
        if key not in used:
            used.append(key)
        if not row["lookups"]:
            _text(c, 0.02, yy, "no lookups", th, gid="replay:cache_gap")
            continue
        cat = _style.category(key)
        face = cat.face(th)
        bars = c.barh(yy, row["hit_rate"], height=0.7, color=face, edgecolor=th.muted, lw=0.5,
                      hatch=cat.hatch or None, gid=f"replay:cache:{row['label']}")
        if cat.hatch:
            for bar in bars:
                bar.set_hatchcolor(_style.hatch_color(face))
        _text(c, min(row["hit_rate"], 1.0) + 0.02, yy, f"{pct(row['hit_rate'])} of {row['lookups']:,}", th)
    c.set_yticks(y, [f"{r['label']} ({r['entries']})" for r in rows], fontsize=th.small_size)
    c.set_xlim(0, 1.6)
    c.set_xticks([0, 0.5, 1.0], ["0", "50%", "100%"])
    c.set_ylim(-0.7, len(rows) - 0.3)
    c.set_title("(c) hit rate per cache (entries)", fontsize=th.font_size, loc="left", color=th.foreground)
    if used:
        _legend(c, [_patch_handle(k, th, _style.category(k).label) for k in used], th, loc="lower right", ncols=1)


def _thin(x: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` distinct positions (one per bin of the span): what a line can show."""
    x = np.asarray(x, dtype=float)
    if x.size <= limit:
        return x
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return x[:1]
    bins = np.unique(((x - lo) / (hi - lo) * (limit - 1)).round())
    return lo + bins / (limit - 1) * (hi - lo)


def _count_formatter():
    from matplotlib.ticker import FuncFormatter

    def fmt(v, _pos):
        if v < 0:
            return ""
        for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(v) >= scale:
                return f"{v / scale:g}{unit}"
        return f"{v:g}"

    return FuncFormatter(fmt)


# ----------------------------------------------------------------------------------------------
# A WhatIf
# ----------------------------------------------------------------------------------------------


def _series_look(key: int) -> tuple[str, str]:
    return _SERIES_LOOKS[key % len(_SERIES_LOOKS)]


def _draw_whatif(axes, d: dict, th) -> None:
    a, b = axes
    rows = d["rows"]
    # y positions, top down: a header row naming the platform, then its runs, then a gap
    y, ypos, header = 0.0, [], {}
    for name in d["platforms"]:
        header[name] = -y
        y += 0.9
        for r in rows:
            if r["platform"] == name:
                ypos.append(-y)
                y += 1.0
        y += 0.3
    ypos = np.array(ypos)
    # keyed by the run's position in the frame (two policies can give one platform the same sizes)
    drawn = {"refs_per_access": {}, "iotlb_hit_rate": {}, "notes": {}}

    vals = [r["refs_per_access"] for r in rows if r["ran"]]
    pos_vals = [v for v in vals if v > 0]
    log = bool(pos_vals) and max(pos_vals) / min(pos_vals) > 20
    lo = 10 ** math.floor(math.log10(min(pos_vals) / 2)) if log else 0.0
    hi = max(vals + [1e-9])
    d["log"], d["refs_origin"] = log, lo

    for panel, col in ((a, "refs_per_access"), (b, "iotlb_hit_rate")):
        for yy, r in zip(ypos, rows):
            if not r["ran"]:
                if panel is a:
                    _text(a, 0.01, yy, f"not run: {r['note']}", th, transform=a.get_yaxis_transform(),
                          gid="replay:note")
                    drawn["notes"][r["row"]] = r["note"]
                else:
                    _text(b, 0.01, yy, "—", th, transform=b.get_yaxis_transform(), gid="replay:note")
                continue
            v = r[col]
            color, hatch = _series_look(r["series"])
            left = lo if panel is a else 0.0
            width = max(v - left, 0.0)
            bars = panel.barh(yy, width, left=left, height=0.72, color=color, edgecolor=th.muted, lw=0.5,
                              hatch=hatch or None, gid=f"replay:{col}")
            if hatch:
                for bar in bars:
                    bar.set_hatchcolor(_style.hatch_color(color))
            drawn[col][r["row"]] = v
            if panel is a:
                extra = (f" · {r['traps']:,} VM exits" if r["traps"] else "") + (
                    f" · {r['reduced']}" if r["reduced"] else "")
                _text(a, (v * 1.15 if log else v + hi * 0.02) if v > 0 else (lo * 1.15 if log else hi * 0.02), yy,
                      f"{v:.3g}{extra}", th)
            else:
                _text(b, v + 0.02, yy, pct(v), th)
    a.set_yticks(ypos, [r["label"] for r in rows], fontsize=th.small_size)
    for name, hy in header.items():
        for panel in (a, b):
            panel.text(0.0, hy, name, transform=panel.get_yaxis_transform(), ha="left", va="center",
                       fontsize=th.font_size, fontweight="bold", color=th.foreground, gid="replay:platform")
    if log:
        a.set_xscale("log")
        # A run's note on what it ran with needs about a decade more room beside its bar.
        a.set_xlim(lo, max(pos_vals) * (120 if any(r["reduced"] for r in rows) else 12))
        a.set_title("(a) page-table references per access (log scale)", fontsize=th.font_size, loc="left",
                    color=th.foreground)
    else:
        a.set_xlim(0, hi * (2.2 if any(r["reduced"] for r in rows) else 1.35) + 1e-9)
        a.set_title("(a) page-table references per access", fontsize=th.font_size, loc="left", color=th.foreground)
    b.set_xlim(0, 1.25)
    b.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0", "25%", "50%", "75%", "100%"])
    b.set_yticks(ypos, [r["label"] for r in rows], fontsize=th.small_size)
    b.set_title("(b) IOTLB hit rate", fontsize=th.font_size, loc="left", color=th.foreground)
    for p in (a, b):
        p.grid(True, axis="x", color=th.grid, lw=0.5)
        p.set_axisbelow(True)
        p.set_ylim(-y + 0.5, 0.6)
    handles = [_patch_handle("", th, label, face=_series_look(k)[0], hatch=_series_look(k)[1])
               for k, label in d["series"].items()]
    what = {"mode": "mode", "pgsizes": "page-size policy"}.get(d["by"], "page-size policy · invalidation")
    _legend(b, handles, th, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=min(3, len(handles)),
            title=what, title_fontsize=th.small_size, alignment="right")
    d.update(drawn)
    d["ypos"] = ypos


#: The replay figure: ``replay_data`` drawn by ``draw_replay`` in three panels.
REPLAY = Renderer("replay", replay_data, draw_replay, lambda data, **_: (_style.FIG_WIDTH, 10.5), options=("title",),
                  panels=_replay_panels)
#: The what-if figure: ``whatif_data`` drawn by ``draw_whatif`` in two panels.
WHATIF = Renderer("replay", whatif_data, draw_whatif,
                  lambda data, **_: (_style.FIG_WIDTH, 2.4 + 2 * (0.8 + 0.34 * len(data.rows) + 0.3 * len(data.platforms))),
                  options=("title",), panels=_whatif_panels)
# Registered by name: importing the views does not import the dma layer (and pandas).
register(replay, "mpl", "iommu_lab.dma.replay.Replay", "iommu_lab.dma.whatif.WhatIf")
