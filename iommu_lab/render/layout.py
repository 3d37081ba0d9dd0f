"""The IOVA layout figure: windows, reserved regions, allowed ranges and mapped areas of one or
more address spaces over the whole 64-bit space, on a shared segmented axis.

``layout(x)`` takes an IOAS, a Platform, a RangeSet (or IovaRange) or a list of them. Each
becomes a *track* (a row) with up to four *lanes*:

=============  ===============================================================================
lane           what it shows
=============  ===============================================================================
permitted      the hardware's permitted windows (IOAS ``permitted()``, Platform ``windows``)
allowed        the user's allowed ranges (IOAS ``allowed``, drawn only when set)
reserved       reservations by owner (outside aperture, user) and by Linux type
mapped         free IOVA (``iova_ranges()``) with the mapped areas drawn over it
ranges         the members of a bare RangeSet
=============  ===============================================================================

Extraction (model → ``Track``, pure data) is separate from drawing, so tests and the text
renderer read exactly what the figure draws. Rendering uses one ``PolyCollection`` per
category (never one patch per area), so 100,000 areas draw in well under a second; adjacent
rectangles that would touch at less than 1/4000 of the axis width (under one pixel at 200
dpi on a 12-inch figure) are merged before drawing once a band holds more than 2,000.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

import iommu_lab.render.style as _style
from iommu_lab.core.ranges import IovaRange, RangeSet
from iommu_lab.core.words import plural
from iommu_lab.hardware.platform import Platform
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.render.axis import SegmentedAxis, cluster_ranges
from iommu_lab.render.draw import Renderer, figure, register

__all__ = ["layout", "draw_layout", "LAYOUT", "Band", "Track", "LayoutData", "layout_data", "track_of", "rect_count"]

LANE_ORDER = ("ranges", "permitted", "allowed", "reserved", "mapped")
LANE_LABELS = {
    "ranges": "ranges",
    "permitted": "permitted",
    "allowed": "allowed",
    "reserved": "reserved",
    "mapped": "mapped",
}
MERGE_EPS = 1.0 / 4000.0  # of the total axis width
MERGE_ABOVE = 2000  # bands with more rectangles than this merge sub-pixel neighbours
SIZE_ROWS = 3  # at most this many staggered rows of segment sizes above the axes
TICK_MIN_GAP_IN = 0.32  # rotated hex labels closer than this overlap


@dataclass
class Band:
    """Rectangles of one category in one lane: inclusive ``[starts[i], lasts[i]]`` (uint64)."""

    category: str
    lane: str
    starts: np.ndarray
    lasts: np.ndarray
    owners: tuple[str | None, ...] | None = None

    def __len__(self) -> int:
        return int(self.starts.size)


@dataclass
class Track:
    """One row of the figure: a model's bands, and the ranges that populate the axis."""

    title: str
    kind: str  # "ioas" | "platform" | "rangeset"
    bands: list[Band]
    populated: list[IovaRange]
    clusters: list[IovaRange] = field(default_factory=list)
    area_count: int = 0

    @property
    def lanes(self) -> tuple[str, ...]:
        present = {b.lane for b in self.bands}
        return tuple(lane for lane in LANE_ORDER if lane in present)

    def bands_of(self, category: str) -> list[Band]:
        return [b for b in self.bands if b.category == category]


@dataclass(frozen=True)
class LayoutData:
    """Everything a layout figure draws: its tracks and their shared segmented axis."""

    tracks: list[Track]
    axis: SegmentedAxis
    title: str | None


# -- model → track ---------------------------------------------------------------------------
def _band(category: str, lane: str, ranges: Iterable, owners=None) -> Band | None:
    rs = list(ranges)
    if not rs:
        return None
    starts = np.array([int(r.start) for r in rs], dtype=np.uint64)
    lasts = np.array([int(r.last) for r in rs], dtype=np.uint64)
    return Band(category, lane, starts, lasts, tuple(owners) if owners is not None else None)


def _is_ioas(x: Any) -> bool:
    return hasattr(x, "areas") and hasattr(x, "reserved") and callable(getattr(x, "permitted", None))


def _is_platform(x: Any) -> bool:
    return hasattr(x, "windows") and hasattr(x, "reserved") and not hasattr(x, "areas")


def _title(x: Any, default: str) -> str:
    for attr in ("title", "name"):
        v = getattr(x, attr, None)
        if isinstance(v, str) and v:
            return v
    return default


def _area_arrays(areas: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    n = len(areas)
    starts = np.fromiter((a.iova for a in areas), dtype=np.uint64, count=n)
    lasts = np.fromiter((a.last for a in areas), dtype=np.uint64, count=n)
    return starts, lasts


def track_of(
    x: Any,
    *,
    area_category: Callable[[Any], str] | None = None,
    rangeset_as: str = "window",
    max_clusters: int = 8,
) -> Track:
    """Extract the drawable content of one model (IOAS, Platform, RangeSet or IovaRange)."""
    if isinstance(x, IovaRange):
        x = RangeSet([x])
    if isinstance(x, RangeSet):
        cat = _style.category(rangeset_as)
        lane = "ranges" if rangeset_as == "range" else cat.lane
        band = _band(cat.key, lane, x)
        return Track(
            title=f"RangeSet ({plural(len(x), 'range')})",
            kind="rangeset",
            bands=[band] if band else [],
            populated=list(x),
        )
    if _is_ioas(x):
        return _ioas_track(x, area_category=area_category, max_clusters=max_clusters)
    if _is_platform(x):
        return _platform_track(x)
    raise TypeError(
        f"layout() draws an IOAS, a Platform, a RangeSet or IovaRange, or a list of them; "
        f"got {type(x).__name__}"
    )


@dataclass(frozen=True)
class _Resv:
    """A platform's reservation in the shape of the IOAS's ``Reservation``."""

    start: int
    last: int
    owner: str | None
    kind: str
    type: Any


def _reservation_bands(items: Sequence[Any]) -> tuple[list[Band], list[IovaRange]]:
    by_cat: dict[str, list] = {}
    owners: dict[str, list] = {}
    populated = []
    for r in items:
        kind = getattr(r, "kind", "region")
        key = _style.reservation_category(kind, getattr(r, "type", None))
        by_cat.setdefault(key, []).append(r)
        owners.setdefault(key, []).append(getattr(r, "owner", None))
        if key != "resv-aperture":
            populated.append(IovaRange(int(r.start), int(r.last)))
    bands = []
    for key in _style.CATEGORIES:
        if key in by_cat:
            bands.append(_band(key, "reserved", by_cat[key], owners[key]))
    return bands, populated


def _platform_track(p: Any) -> Track:
    windows = list(p.windows)
    bands: list[Band] = []
    b = _band("window", "permitted", windows)
    if b:
        bands.append(b)
    name = getattr(p, "name", None) or "platform"
    # Outside the windows is unusable, as an IOAS shows it after attach ("aperture" holes);
    # the platform's own regions carry no owner label (it would only repeat the title).
    items = [_Resv(r.start, r.last, name, "aperture", None) for r in RangeSet(windows).complement()]
    items += [_Resv(r.start, r.last, None, "region", getattr(r, "type", None)) for r in p.reserved]
    rb, populated = _reservation_bands(items)
    bands.extend(rb)
    return Track(title=_title(p, "platform"), kind="platform", bands=bands, populated=windows + populated)


def _ioas_track(ioas: Any, *, area_category, max_clusters: int) -> Track:
    bands: list[Band] = []
    windows = [IovaRange(int(w.start), int(w.last)) for w in ioas.permitted()]
    b = _band("window", "permitted", windows)
    if b:
        bands.append(b)
    allowed = list(ioas.allowed) if ioas.allowed is not None else []
    b = _band("allowed", "allowed", allowed)
    if b:
        bands.append(b)
    rb, resv_populated = _reservation_bands(list(ioas.reserved))
    bands.extend(rb)
    # Free = where IOMMU_IOAS_MAP without an IOVA could allocate: the reserved tree's holes,
    # inside the user's allowed ranges when there are any (iopt_alloc_iova).
    free_set = ioas.iova_ranges()
    if allowed:
        free_set = free_set & RangeSet(allowed)
    free = list(free_set)
    b = _band("free", "mapped", free)
    if b:
        bands.append(b)
    areas = list(ioas.areas)
    clusters: list[IovaRange] = []
    if areas:
        starts, lasts = _area_arrays(areas)
        domains = list(getattr(ioas, "domains", ()) or ())
        if area_category is None and domains and hasattr(domains[0], "mappings"):
            # With a page-table domain, draw what the hardware holds: the leaves, by page size.
            bands.extend(_leaf_bands(domains[0].leaves()))
        elif area_category is None:
            bands.append(Band("mapped", "mapped", starts, lasts))
        else:
            keys = np.array([area_category(a) for a in areas], dtype=object)
            for key in dict.fromkeys(keys):
                _style.category(key)
                m = keys == key
                bands.append(Band(key, "mapped", starts[m], lasts[m]))
        clusters = cluster_ranges(starts, lasts, max_clusters=max_clusters)
    title = _title(ioas, "") or _ioas_title(ioas)
    return Track(
        title=title,
        kind="ioas",
        bands=bands,
        populated=windows + allowed + resv_populated + clusters,
        clusters=clusters,
        area_count=len(areas),
    )


def _leaf_bands(leaves: Any) -> list[Band]:
    """One band per page size from a domain's leaves (``PageTable.leaves()``), touching leaves
    of one size merged."""
    if not len(leaves):
        return []
    iova, size = leaves.iova, leaves.size
    last = iova + (size - np.uint64(1))
    bands = []
    for sz in np.unique(size):
        m = size == sz
        st, la = iova[m], last[m]
        # a new run starts where a leaf does not begin right after the previous one
        brk = np.ones(st.size, dtype=bool)
        brk[1:] = st[1:] != la[:-1] + np.uint64(1)
        first = np.nonzero(brk)[0]
        run_last = np.r_[first[1:] - 1, st.size - 1]
        key = _style.pgsize_category(int(sz))
        bands.append(Band(key, "mapped", st[first], la[run_last]))
    return bands


def _ioas_title(ioas: Any) -> str:
    devices = list(getattr(ioas, "devices", ()) or ())
    if not devices:
        return "IOAS (no device attached)"
    names = []
    for d in devices:
        name = getattr(d, "name", None) or str(d)
        plat = getattr(d, "platform", None)
        names.append(f"{name} on {plat}" if plat else name)
    return "IOAS with " + ", ".join(names)


def layout_data(x: Any, *, title: str | None = None, **kw) -> LayoutData:
    """The tracks and shared axis ``layout`` would draw for ``x`` (pure data, no matplotlib)."""
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    if not items:
        raise ValueError("layout() needs at least one IOAS, Platform or RangeSet to draw")
    tracks = [track_of(i, **kw) for i in items]
    populated = [r for t in tracks for r in t.populated]
    axis = SegmentedAxis.from_ranges(populated)
    if title is None and len(tracks) == 1:
        title = tracks[0].title
    return LayoutData(tracks, axis, title)


# -- drawing ---------------------------------------------------------------------------------
LANE_H = 1.0
BAR_H = 0.72
TRACK_GAP = 0.9  # room for the next track's title


def _rects(axis: SegmentedAxis, band: Band, y: float, merge_eps: float) -> np.ndarray:
    """(n, 4, 2) vertices for a band's rectangles.

    Up to ``MERGE_ABOVE`` rectangles are drawn one by one, so touching windows or areas keep
    their own outlines (on POWER each window is its own TCE table even where two touch).
    Beyond that, neighbours closer than ``merge_eps`` -- less than a pixel -- are merged.
    """
    x0 = axis.x(band.starts)
    x1 = axis.x_end(band.lasts)
    if x0.size > MERGE_ABOVE:
        order = np.argsort(x0, kind="stable")
        x0, x1 = x0[order], x1[order]
        # Start a new rectangle wherever the gap to the running right edge is visible.
        run_end = np.maximum.accumulate(x1)
        new = np.empty(x0.size, dtype=bool)
        new[0] = True
        new[1:] = x0[1:] - run_end[:-1] > merge_eps
        idx = np.flatnonzero(new)
        x0 = x0[idx]
        x1 = np.maximum.reduceat(x1, idx)
    # Keep every rectangle visible: at least ~1/3 pixel wide.
    x1 = np.maximum(x1, x0 + merge_eps * 0.35)
    y0, y1 = y - BAR_H / 2, y + BAR_H / 2
    v = np.empty((x0.size, 4, 2))
    v[:, 0, 0] = x0
    v[:, 1, 0] = x0
    v[:, 2, 0] = x1
    v[:, 3, 0] = x1
    v[:, 0, 1] = y0
    v[:, 1, 1] = y1
    v[:, 2, 1] = y1
    v[:, 3, 1] = y0
    return v


def rect_count(collection) -> int:
    """Rectangles drawn by one of layout's collections (a compound path counts each sub-path)."""
    total = 0
    for p in collection.get_paths():
        if p.codes is None:
            total += 1
        else:
            total += int(np.count_nonzero(p.codes == p.MOVETO))
    return total


def _zigzag(x: float, y0: float, y1: float, amp: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    ys = np.linspace(y0, y1, 2 * n + 1)
    xs = x + amp * np.where(np.arange(ys.size) % 2 == 0, -1.0, 1.0)
    return xs, ys


def _size(data: LayoutData, *, legend: bool = True) -> tuple[float, float]:
    n_lanes = sum(len(t.lanes) or 1 for t in data.tracks)
    return (_style.FIG_WIDTH, 2.3 + 0.5 * n_lanes + 0.4 * len(data.tracks) + (0.75 if legend else 0.0))


def layout(
    x: Any,
    *,
    ax=None,
    filename: str | os.PathLike | None = None,
    style: str = "light",
    title: str | None = None,
    legend: bool = True,
    area_category: Callable[[Any], str] | None = None,
    rangeset_as: str = "window",
    max_clusters: int = 8,
    figsize: tuple[float, float] | None = None,
):
    """Draw the IOVA layout of an IOAS, Platform, RangeSet, or a list of them (one row each).

    Parameters
    ----------
    x : IOAS, Platform, RangeSet, IovaRange, or a list of these
        Several models share one segmented axis, so their windows line up.
    ax : matplotlib Axes, optional
        Draw into this Axes (its figure is returned); default: a new ``Figure`` (OO API).
    filename : str or path, optional
        Also save to this file; the suffix picks SVG, PNG (200 dpi) or PDF.
    style : {"light", "dark"}
    title : str, optional
        Figure title; default: the model's title when there is one model.
    legend : bool
        Draw the legend of the categories present.
    area_category : callable(area) -> category key, optional
        Hook to split mapped areas into categories, e.g. by page size with
        ``style.mapped_category(pgsize)``.
    rangeset_as : str
        Category for a bare RangeSet's members: ``"window"`` (default), ``"allowed"`` or ``"range"``.
    max_clusters : int
        Most area clusters per IOAS that get their own axis segment.
    figsize : (float, float), optional
        Size of a new figure in inches; default 12 wide, height from the number of lanes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return figure(LAYOUT, x, ax=ax, filename=filename, style=style, figsize=figsize, title=title, legend=legend,
                  area_category=area_category, rangeset_as=rangeset_as, max_clusters=max_clusters).figure


def draw_layout(ax, data: LayoutData, th: _style.Theme, *, owns_figure: bool, legend: bool = True) -> dict[str, int]:
    """Draw ``data`` into ``ax``; returns the rectangles drawn per category."""
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    axis = data.axis
    W = axis.total_width
    merge_eps = MERGE_EPS * W

    # y layout: tracks top to bottom, lanes top to bottom within a track.
    y = 0.0
    lane_y: list[tuple[Track, dict[str, float]]] = []
    yticks, ylabels = [], []
    title_y = []
    for i, t in enumerate(data.tracks):
        if i or len(data.tracks) > 1:
            y -= TRACK_GAP
            title_y.append((t.title, y + TRACK_GAP * 0.45))
        ys = {}
        for lane in t.lanes or ("ranges",):
            y -= LANE_H
            ys[lane] = y + LANE_H / 2
            yticks.append(ys[lane])
            ylabels.append(LANE_LABELS[lane])
        lane_y.append((t, ys))
    ybottom, ytop = y - 0.15, 0.15

    # Break bands behind everything.
    for s in axis.breaks:
        ax.add_patch(
            Rectangle((s.x0, ybottom), s.width, ytop - ybottom, facecolor=th.break_fill, edgecolor="none",
                      zorder=0.5, gid="layout:break-fill")
        )
    # Segment boundaries (thin guides).
    for s in axis.segments[1:]:
        ax.axvline(s.x0, color=th.grid, lw=0.6, zorder=0.6)

    present: dict[str, int] = {}
    z = {"mapped": 3.0, "free": 2.0}
    for t, ys in lane_y:
        for band in t.bands:
            cat = _style.category(band.category)
            face = cat.face(th)
            verts = _rects(axis, band, ys[band.lane], merge_eps)
            if cat.outline:  # present but not enforced: a tint inside a dashed edge
                edge, lw = cat.edge(th, th.foreground), 1.2
            elif cat.lane != "mapped":
                edge, lw = th.foreground, 0.5
            elif band.category != "free" and len(verts) <= MERGE_ABOVE and np.median(verts[:, 2, 0] - verts[:, 0, 0]) >= 8 * merge_eps:
                # Areas wide enough (about 4 px) get thin separators, so touching ones stay
                # countable; narrower ones would turn into stripes of background colour.
                edge, lw = th.axes_background, 0.4
            else:
                edge, lw = "none", 0.0
            style_kw = dict(
                facecolors=face,
                edgecolors=edge,
                linewidths=lw,
                hatch=cat.hatch or None,
                zorder=z.get(band.category, z.get(cat.lane, 2.5)),
                label=cat.label,
            )
            if cat.outline:
                style_kw["linestyles"] = (0, (4, 2))
            coll = PolyCollection(verts, closed=True, **style_kw)
            if cat.hatch:
                coll.set_hatchcolor(cat.hatch_color(th))
            coll.set_gid(f"layout:{band.category}")
            ax.add_collection(coll, autolim=False)
            present[band.category] = present.get(band.category, 0) + len(verts)
            if band.owners is not None and band.lane == "reserved" and band.category != "resv-aperture":
                _owner_labels(ax, axis, band, ys[band.lane], th)

    # Zig-zag break markers and size labels on each break.
    amp = 0.035
    n_zz = max(3, int((ytop - ybottom) * 2.5))
    for s in axis.breaks:
        for xe in (s.x0, s.x1):
            if xe <= 0.0 or xe >= W:
                continue
            xs, yz = _zigzag(xe, ybottom, ytop, amp, n_zz)
            ax.add_line(Line2D(xs, yz, color=th.muted, lw=1.1, zorder=4, gid="layout:break-marker"))
    # Sizes above the axes, one per segment, staggered into rows where neighbours would collide.
    ax_w_in = _axes_width_inches(ax)
    per_in = W / ax_w_in
    rows_used = 1
    row_right: list[float] = []
    char_w = 0.56 * th.small_size / 72.0 * per_in
    for s in axis.segments:
        text = f"gap {s.label}" if s.is_break else s.label
        cx = (s.x0 + s.x1) / 2
        half = len(text) * char_w / 2
        row = next((r for r, right in enumerate(row_right) if cx - half > right + char_w), len(row_right))
        if row >= SIZE_ROWS:
            row = int(np.argmin(row_right))
        if row == len(row_right):
            row_right.append(cx + half)
        else:
            row_right[row] = cx + half
        rows_used = max(rows_used, row + 1)
        ax.annotate(
            text, xy=(cx, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3 + row * 1.35 * th.small_size),
            textcoords="offset points", ha="center", va="bottom", fontsize=th.small_size,
            color=th.muted if s.is_break else th.foreground, style="italic" if s.is_break else "normal",
            gid="layout:segment-size", annotation_clip=False,
        )
    for name, ty in title_y:
        ax.text(0.002, ty, name, transform=ax.get_yaxis_transform(), ha="left", va="center",
                fontsize=th.font_size, fontweight="bold", color=th.foreground, gid="layout:track-title")

    ax.set_xlim(0, W)
    ax.set_ylim(ybottom, ytop)
    ticks = _thin_ticks(axis.ticks(), min_gap=TICK_MIN_GAP_IN * per_in)
    ax.set_xticks([t[0] for t in ticks], [t[2] for t in ticks])
    for lab in ax.get_xticklabels():
        lab.set_fontfamily(th.mono_family)
        lab.set_fontsize(th.small_size)
        lab.set_rotation(30)
        lab.set_horizontalalignment("right")
        lab.set_rotation_mode("anchor")
    # Boundaries whose label was dropped keep an unlabelled tick.
    ax.set_xticks([s.x0 for s in axis.segments[1:]], minor=True)
    ax.tick_params(axis="x", which="minor", length=3, color=th.muted)
    ax.set_yticks(yticks, ylabels)
    ax.tick_params(axis="y", length=0, labelsize=th.font_size)
    ax.set_xlabel("IOVA, not to scale" + ("; shaded zig-zag bands are compressed gaps" if axis.breaks else ""),
                  fontsize=th.small_size, color=th.muted, loc="right")
    for sp in ("top", "right", "left"):
        ax.spines[sp].set_visible(False)
    ax.spines["bottom"].set_color(th.muted)
    if data.title:
        ax.set_title(_style.wrap(data.title, th), fontsize=th.title_size, color=th.foreground, loc="left",
                     pad=8 + rows_used * 1.35 * th.small_size)

    if legend and present:
        handles = []
        for key in _style.CATEGORIES:
            if key in present:
                cat = _style.CATEGORIES[key]
                face = cat.face(th)
                h = Patch(facecolor=face, edgecolor=cat.edge(th, th.foreground), hatch=cat.hatch or None, label=cat.label,
                          lw=1.2 if cat.outline else 0.5, linestyle=(0, (4, 2)) if cat.outline else "-")
                if cat.hatch:
                    h.set_hatchcolor(cat.hatch_color(th))
                handles.append(h)
        if axis.breaks:
            handles.append(Line2D([], [], color=th.muted, lw=1.1, marker=None, label="compressed gap"))
        common = dict(handles=handles, fontsize=th.small_size, frameon=False, handlelength=2.4, handleheight=1.2)
        if owns_figure:
            leg = ax.figure.legend(loc="outside lower center", ncol=min(len(handles), 3), **common)
        else:
            leg = ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), ncol=1, **common)
        for txt in leg.get_texts():
            txt.set_color(th.foreground)
        leg.set_gid("layout:legend")
    return present


def _axes_width_inches(ax) -> float:
    fig = _style.root_figure(ax)
    w = fig.get_figwidth() * ax.get_position().width
    # Constrained layout has not run yet: assume it leaves ~1.1 in for the lane labels.
    return max(min(w, fig.get_figwidth() - 1.1), 1.0)


def _thin_ticks(ticks: list[tuple[float, int, str]], min_gap: float) -> list[tuple[float, int, str]]:
    """Drop labels closer than ``min_gap`` to the previous kept one; first and last always stay."""
    if len(ticks) <= 2:
        return ticks
    kept = [ticks[0]]
    for t in ticks[1:-1]:
        if t[0] - kept[-1][0] >= min_gap:
            kept.append(t)
    last = ticks[-1]
    while len(kept) > 1 and last[0] - kept[-1][0] < min_gap:
        kept.pop()
    kept.append(last)
    return kept


def _owner_labels(ax, axis: SegmentedAxis, band: Band, y: float, th: _style.Theme) -> None:
    if len(band) > 64:
        return
    x0 = axis.x(band.starts)
    x1 = axis.x_end(band.lasts)
    for a, b, owner in zip(x0, x1, band.owners):
        if owner and b - a >= 0.45:
            ax.text((a + b) / 2, y, owner, ha="center", va="center", fontsize=th.small_size,
                    color=th.foreground, zorder=5, gid="layout:owner",
                    bbox=dict(boxstyle="round,pad=0.15", facecolor=th.axes_background, edgecolor="none", alpha=0.9))


#: The layout figure: ``layout_data`` drawn by ``draw_layout``.
LAYOUT = Renderer("layout", layout_data, draw_layout, _size, options=("legend",))
register(layout, "mpl", RangeSet, Platform, IOAS)
