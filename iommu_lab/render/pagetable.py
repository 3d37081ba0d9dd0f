"""The page-table tree figure: every table page by level, how full it is, what it maps, what it costs.

``pagetable(pt)`` draws an *icicle*: one band per level (root at the top), one box per table
page, each box as wide as the IOVA span the table covers. The IOVA axis is the segmented axis
of the layout figure (``render.axis``): stretches no bottom table covers are compressed to a
narrow break, so 8 GiB of mappings in a 48-bit space is readable; inside a segment positions
are linear. Each box is shaded by its occupancy (entries used / total), pale to saturated brown, with a
colourbar; a strip under the bands shows the leaves by page size (colour *and* hatch, legend);
each band carries its table count and memory (``4,096 × 4 KiB = 16 MiB``).

The tree is read from the entries by ``workload.table_tree`` (one gather per level), and boxes
are drawn as one ``PolyCollection`` per band: neighbouring boxes narrower than a pixel are
aggregated (their occupancy summed), so a table of tens of thousands of pages draws in well
under a second.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import iommu_lab.render.style as _style
from iommu_lab.core.ranges import U64_MAX, IovaRange, fmt_addr, fmt_size
from iommu_lab.core.words import plural
from iommu_lab.pagetable.table import PageTable
from iommu_lab.render.axis import SegmentedAxis
from iommu_lab.render.draw import Renderer, figure, register
from iommu_lab.render.style import pgsize_category
from iommu_lab.review.workload import TableTree, table_tree

__all__ = ["pagetable", "draw_pagetable", "PAGETABLE", "pagetable_data", "PagetableData", "LevelBand", "AGGREGATE_EPS", "pgsize_category"]

#: Boxes narrower than this fraction of the axis (about a pixel at 200 dpi on a 12-inch
#: figure) are aggregated with their neighbours.
AGGREGATE_EPS = 1.0 / 2400.0
CMAP = "occupancy"
#: Pale (few entries used) to saturated (full): light enough at the empty end that a sparse
#: table never reads as a black block, and unlike every page-size colour of the leaves.
OCCUPANCY_COLORS = ("#fbf1cf", "#f6c667", "#d9822b", "#8c4a16")


@dataclass
class LevelBand:
    """One level: its table boxes (after aggregation) and its totals."""

    level: int
    name: str
    tables: int
    nbytes: int
    table_bytes: int  # bytes of one table at this level
    x0: np.ndarray
    x1: np.ndarray
    used: np.ndarray  # entries used, summed over aggregated tables
    entries: np.ndarray  # entries in total, summed likewise
    count: np.ndarray  # tables per drawn box

    @property
    def occupancy(self) -> np.ndarray:
        return self.used / np.maximum(self.entries, 1)

    @property
    def label(self) -> str:
        return f"{self.tables:,} × {fmt_size(self.table_bytes)} = {fmt_size(self.nbytes, approx=True)}"


@dataclass(frozen=True)
class PagetableData:
    """Everything the page-table figure draws."""

    title: str
    fmt_name: str
    tree: TableTree
    axis: SegmentedAxis
    x_max: float
    bands: list[LevelBand]
    leaf_runs: dict[int, tuple[np.ndarray, np.ndarray]]  # page size -> (x0, x1) of drawn runs
    mix: dict[int, int]
    table_bytes: int
    extra: dict = field(default_factory=dict)


# Leaf page sizes: the same size always looks the same (colour and hatch), in every figure.


def _lasts(offs: np.ndarray, span: float, vb_last: int) -> np.ndarray:
    """Inclusive last offset of tables at ``offs`` spanning ``span`` bytes (exact, uint64)."""
    if span >= 2.0**64:
        return np.full(offs.size, vb_last, dtype=np.uint64)
    return np.minimum(offs + np.uint64(int(span) - 1), np.uint64(vb_last))


def _bottom_spans(tree: TableTree, vb_last: int) -> list[IovaRange]:
    """Spans of the tables with no child table (where the leaves are): the populated axis."""
    f = tree.fmt
    out = []
    for lv in range(f.top_level, -1, -1):
        m = tree.level == lv
        if not m.any():
            continue
        offs = tree.offset[m]
        span = float(tree.span[m][0])
        lasts = _lasts(offs, span, vb_last)
        if lv > 0:
            child = np.sort(tree.offset[tree.level == lv - 1])
            leafy = np.searchsorted(child, lasts, side="right") == np.searchsorted(child, offs, side="left")
        else:
            leafy = np.ones(offs.size, dtype=bool)
        if leafy.any():
            span_u = np.uint64(0) if span >= 2.0**64 else np.uint64(int(span))
            out.extend(IovaRange(a, b) for a, b in _merge_runs(offs[leafy], span_u, vb_last))
    return out


def _merge_runs(offs: np.ndarray, span: np.uint64, vb_last: int) -> list[tuple[int, int]]:
    if span == 0:  # a table spanning the whole 64-bit space
        return [(0, vb_last)]
    o = np.sort(offs)
    ends = o + (span - np.uint64(1))
    new = np.ones(o.size, dtype=bool)
    new[1:] = o[1:] != ends[:-1] + np.uint64(1)
    idx = np.flatnonzero(new)
    run_last = ends[np.r_[idx[1:] - 1, o.size - 1]]
    return [(int(a), min(int(b), vb_last)) for a, b in zip(o[idx].tolist(), run_last.tolist())]


def _leaf_ranges(tree: TableTree, sel: np.ndarray, size: int, vb_last: int) -> list[IovaRange]:
    """Leaf runs of one page size, neighbours merged, as inclusive ranges."""
    o = tree.leaf_offset[sel]
    last = o + tree.leaf_count[sel].astype(np.uint64) * np.uint64(size) - np.uint64(1)
    order = np.argsort(o, kind="stable")
    o, last = o[order], last[order]
    new = np.ones(o.size, dtype=bool)
    new[1:] = o[1:] != last[:-1] + np.uint64(1)
    idx = np.flatnonzero(new)
    ends = last[np.r_[idx[1:] - 1, o.size - 1]] if o.size else last
    return [IovaRange(int(a), min(int(b), vb_last)) for a, b in zip(o[idx].tolist(), ends.tolist())]


def _aggregate(x0: np.ndarray, x1: np.ndarray, used: np.ndarray, entries: np.ndarray, eps: float):
    """Merge runs of neighbouring boxes narrower than ``eps`` into one box each (sums of used
    and total entries, so the shade is the run's true occupancy)."""
    order = np.argsort(x0, kind="stable")
    x0, x1, used, entries = x0[order], x1[order], used[order], entries[order]
    count = np.ones(x0.size, dtype=np.int64)
    narrow = (x1 - x0) < eps
    if x0.size < 2 or not narrow.any():
        return x0, x1, used, entries, count
    # A new drawn box starts at every wide box, and wherever a narrow box would make the
    # current group wider than eps or is not adjacent to the previous one.
    key = np.where(narrow, np.floor(x0 / eps), -1.0)
    new = np.ones(x0.size, dtype=bool)
    same = (key[1:] == key[:-1]) & narrow[1:] & narrow[:-1] & (x0[1:] - x1[:-1] < eps * 0.5)
    new[1:] = ~same
    idx = np.flatnonzero(new)
    return (x0[idx], np.maximum.reduceat(x1, idx), np.add.reduceat(used, idx), np.add.reduceat(entries, idx),
            np.add.reduceat(count, idx))


def pagetable_data(pt: Any, *, title: str | None = None, tree: TableTree | None = None) -> PagetableData:
    """What ``pagetable(pt)`` draws, as plain data (no matplotlib)."""
    tree = tree if tree is not None else table_tree(pt)
    f = tree.fmt
    vb_last = (1 << f.va_bits) - 1 if f.va_bits < 64 else U64_MAX
    populated = _bottom_spans(tree, vb_last)
    # Large leaves in upper tables cover IOVA no bottom table does.
    for size in np.unique(tree.leaf_size).tolist():
        if size > (1 << f.granule_lg2):
            sel = tree.leaf_size == np.uint64(size)
            populated.extend(_leaf_ranges(tree, sel, size, vb_last))
    populated = populated or [IovaRange(0, vb_last)]
    if vb_last < U64_MAX:
        populated = populated + [IovaRange(vb_last + 1, U64_MAX)]
    axis = SegmentedAxis.from_ranges(populated, break_width=0.22, break_fraction=0.03)
    x_max = float(axis.x_end([vb_last])[0])
    eps = AGGREGATE_EPS * x_max
    bands = []
    for lv in range(f.top_level, -1, -1):
        m = tree.level == lv
        if not m.any():
            continue
        offs = tree.offset[m]
        x0 = axis.x(offs)
        x1 = axis.x_end(_lasts(offs, float(tree.span[m][0]), vb_last))
        bx0, bx1, bu, be, bc = _aggregate(x0, x1, tree.used[m].astype(np.float64), tree.entries[m].astype(np.float64), eps)
        n = int(m.sum())
        bands.append(LevelBand(lv, f.level_name(lv), n, int(tree.nbytes[m].sum()), f.table_bytes(lv), bx0, bx1, bu, be, bc))
    runs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if tree.leaf_offset.size:
        for size in np.unique(tree.leaf_size).tolist():
            merged = _leaf_ranges(tree, tree.leaf_size == np.uint64(size), size, vb_last)
            s = np.array([r.start for r in merged], dtype=np.uint64)
            e = np.array([r.last for r in merged], dtype=np.uint64)
            x0, x1 = axis.x(s), axis.x_end(e)
            x0, x1, _, _, _ = _aggregate(x0, x1, np.zeros(x0.size), np.zeros(x0.size), eps)
            runs[int(size)] = (x0, np.maximum(x1, x0 + eps * 0.35))
    tb = tree.table_bytes
    t = title or (f"{f.name}: {plural(len(tree), 'table page')}, "
                  f"{fmt_size(tb, approx=True)} of tables")
    return PagetableData(t, f.name, tree, axis, x_max, bands, runs, tree.mix(), tb)


def _iova_of(f: Any, off: int) -> int:
    if f.sign_extend and off >> (f.va_bits - 1) and off < (1 << f.va_bits):
        return (off | ~((1 << f.va_bits) - 1)) & U64_MAX
    return off + f.va_base


def _size(data: PagetableData, *, legend: bool = True, colorbar: bool = True) -> tuple[float, float]:
    return (_style.FIG_WIDTH, 2.6 + 0.62 * (len(data.bands) + 1))


def pagetable(pt: Any, *, ax=None, filename: str | os.PathLike | None = None, style: str = "light",
              title: str | None = None, legend: bool = True, colorbar: bool = True,
              figsize: tuple[float, float] | None = None):
    """Draw a page table as an icicle of table pages by level, shaded by occupancy.

    Parameters
    ----------
    pt : pagetable.PageTable
    ax : matplotlib Axes, optional
        Draw into this Axes (its figure is returned); default: a new ``Figure`` (OO API).
    filename : str or path, optional
        Also save; the suffix picks SVG, PNG (200 dpi) or PDF.
    style : {"light", "dark"}
    title : str, optional
    legend : bool
        Legend of the leaf page sizes.
    colorbar : bool
        Occupancy colourbar (``cividis``).
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    return figure(PAGETABLE, pt, ax=ax, filename=filename, style=style, figsize=figsize, title=title, legend=legend,
                  colorbar=colorbar).figure


def _verts(x0: np.ndarray, x1: np.ndarray, y0: float, y1: float) -> np.ndarray:
    v = np.empty((x0.size, 4, 2))
    v[:, 0, 0] = v[:, 1, 0] = x0
    v[:, 2, 0] = v[:, 3, 0] = x1
    v[:, 0, 1] = v[:, 3, 1] = y0
    v[:, 1, 1] = v[:, 2, 1] = y1
    return v


def draw_pagetable(ax, data: PagetableData, th: _style.Theme, *, owns_figure: bool = True, legend: bool = True,
                   colorbar: bool = True) -> dict:
    """Draw ``data`` into ``ax``; returns the occupancy collection drawn per level."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    cmap = matplotlib.colors.LinearSegmentedColormap.from_list(CMAP, OCCUPANCY_COLORS)
    norm = Normalize(0.0, 1.0)
    f = data.tree.fmt
    H = 0.82
    collections = {}
    yticks, ylabels = [], []
    # Compressed stretches: shaded columns behind the bands.
    brk = [s for s in data.axis.segments if s.is_break and s.x0 < data.x_max]
    n_rows = len(data.bands) + (1 if data.leaf_runs else 0)
    if brk:
        bx0 = np.array([s.x0 for s in brk])
        bx1 = np.minimum(np.array([s.x1 for s in brk]), data.x_max)
        coll = PolyCollection(_verts(bx0, bx1, -n_rows + 0.5, 0.5), facecolors=th.break_fill, edgecolors="none",
                              zorder=0, gid="pagetable:breaks")
        ax.add_collection(coll)
        for s in brk:
            ax.text((s.x0 + min(s.x1, data.x_max)) / 2, 0.55, "≈", ha="center", va="bottom", fontsize=th.small_size,
                    color=th.muted, gid="pagetable:break-mark")
    for k, band in enumerate(data.bands):
        y = -k
        coll = PolyCollection(_verts(band.x0, band.x1, y - H / 2, y + H / 2), array=band.occupancy, cmap=cmap,
                              norm=norm, edgecolors=th.muted if band.x0.size < 400 else "face",
                              linewidths=0.4, zorder=2, gid=f"pagetable:level-{band.level}")
        ax.add_collection(coll)
        collections[band.level] = coll
        yticks.append(y)
        ylabels.append(band.name)
        ax.text(data.x_max * 0.995, y, band.label, ha="right", va="center", fontsize=th.small_size,
                color=th.foreground, zorder=5, gid="pagetable:band-bytes",
                bbox=dict(boxstyle="round,pad=0.2", facecolor=th.axes_background, edgecolor=th.grid, lw=0.5))
    leaf_keys = []
    if data.leaf_runs:
        y = -len(data.bands)
        for size, (x0, x1) in sorted(data.leaf_runs.items()):
            key = pgsize_category(size)
            cat = _style.category(key)
            face = cat.face(th)
            coll = PolyCollection(_verts(x0, x1, y - H * 0.35, y + H * 0.35), facecolors=face, edgecolors="face",
                                  linewidths=0.3, hatch=cat.hatch or None, zorder=2, gid=f"pagetable:leaves-{size:#x}")
            if cat.hatch:
                coll.set_hatchcolor(_style.hatch_color(face))
            ax.add_collection(coll)
            leaf_keys.append((size, key))
        yticks.append(y)
        ylabels.append("leaves")
    ax.set_yticks(yticks, ylabels, fontsize=th.small_size)
    ax.set_ylim(-n_rows + 0.45, 0.85)
    ax.set_xlim(0, data.x_max)
    # Hex IOVA ticks at segment boundaries, thinned to stay legible.
    ticks = [(s.x0, s.start) for s in data.axis.segments if s.x0 < data.x_max] + [(data.x_max, None)]
    kept, last = [], -1e9
    min_gap = data.x_max / 9.0
    for x, a in ticks:
        if x - last >= min_gap or a is None:
            if a is None and kept and x - kept[-1][0] < min_gap:
                kept.pop()
            kept.append((x, a))
            last = x
    labels = []
    for x, a in kept:
        if a is None:
            labels.append(fmt_addr(_iova_of(f, (1 << f.va_bits) - 1 if f.va_bits < 64 else U64_MAX)))
        else:
            labels.append(fmt_addr(_iova_of(f, a)))
    ax.set_xticks([x for x, _ in kept], labels, fontsize=th.small_size, rotation=20, ha="right")
    for sp in ("top", "right"):
        ax.spines[sp].set_visible(False)
    ax.set_xlabel("IOVA, not to scale: ≈ marks a compressed stretch with no table below it",
                  fontsize=th.small_size, color=th.muted)
    ax.set_title(_style.wrap(data.title, th), fontsize=th.title_size, color=th.foreground, loc="left")
    if colorbar:
        sm = ScalarMappable(norm=norm, cmap=cmap)
        cb = _style.root_figure(ax).colorbar(sm, ax=ax, fraction=0.03, pad=0.01)
        cb.set_label("share of a table's entries in use", fontsize=th.small_size, color=th.foreground)
        cb.ax.tick_params(labelsize=th.small_size, colors=th.foreground)
        cb.outline.set_edgecolor(th.muted)
    if legend and leaf_keys:
        handles = []
        for size, key in leaf_keys:
            cat = _style.category(key)
            face = cat.face(th)
            h = Patch(facecolor=face, edgecolor=th.foreground, hatch=cat.hatch or None, lw=0.5,
                      label=f"{fmt_size(size)} leaves: {fmt_size(data.mix.get(size, 0), approx=True)}")
            if cat.hatch:
                h.set_hatchcolor(_style.hatch_color(face))
            handles.append(h)
        if owns_figure:
            leg = _style.root_figure(ax).legend(handles=handles, loc="outside lower center", ncols=min(3, len(handles)),
                                                fontsize=th.small_size, frameon=False)
        else:
            leg = ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=min(3, len(handles)),
                            fontsize=th.small_size, frameon=True, borderaxespad=0.1)
        leg.get_frame().set_alpha(1.0)
    return collections


#: The page-table figure: ``pagetable_data`` drawn by ``draw_pagetable``.
PAGETABLE = Renderer("pagetable", pagetable_data, draw_pagetable, _size, options=("legend", "colorbar"))
register(pagetable, "mpl", PageTable)
