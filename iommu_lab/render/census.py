"""The table census figure and notebook view: table memory per level, and the leaves behind it.

``census(c)`` draws a :class:`~iommu_lab.pagetable.census.TableCensus` (``table_census(fmt,
layout)``, counted by interval arithmetic without building the tables) as one horizontal bar
per level, root at the top, named as the format's specification names the level (``L0``,
``SL-PDE``, ``Level 3``). Bars are on a logarithmic axis (one 4 KiB root beside gigabytes of
leaf tables), ticks and labels are sizes in words ("≈ 16 MiB"), and each bar says how many
tables it is. A second panel shows the leaves by page size, coloured as every page-size
figure colours them (colour *and* hatch).

``census_data`` is what the figure draws; ``census_html`` the notebook table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

import iommu_lab.render.style as _style
from iommu_lab.core.ranges import fmt_size
from iommu_lab.core.words import plural
from iommu_lab.pagetable.census import TableCensus
from iommu_lab.render.draw import Renderer, figure, register
from iommu_lab.render.html import table_html

__all__ = ["CENSUS", "CensusData", "census", "census_data", "census_html", "draw_census"]


@dataclass(frozen=True)
class CensusData:
    """Everything the census figure draws, root level first."""

    title: str
    names: tuple[str, ...]  #: each level's specification name
    tables: tuple[int, ...]
    bytes: tuple[int, ...]
    leaf_sizes: tuple[int, ...]  #: page sizes with at least one leaf, smallest first
    leaf_bytes: tuple[int, ...]  #: bytes mapped by leaves of that size
    leaf_counts: tuple[int, ...]


def _name(fmt: Any, level: int) -> str:
    return fmt.level_name(level) if hasattr(fmt, "level_name") else f"level {level}"


def census_data(c: TableCensus, *, title: str | None = None) -> CensusData:
    """What ``census(c)`` draws, as plain data (no matplotlib)."""
    levels = sorted(c.tables, reverse=True)
    leaves = sorted((int(s), int(n)) for s, n in c.leaves.items() if n)
    name = getattr(c.fmt, "name", str(c.fmt))
    t = title or (f"Page tables for {fmt_size(c.mapped, approx=True)} mapped in {name}: "
                  f"{c.table_count:,} tables = {fmt_size(c.table_bytes, approx=True)}")
    return CensusData(t, tuple(_name(c.fmt, lv) for lv in levels), tuple(int(c.tables[lv]) for lv in levels),
                      tuple(int(c.bytes[lv]) for lv in levels), tuple(s for s, _ in leaves),
                      tuple(s * n for s, n in leaves), tuple(n for _, n in leaves))


def _size(data: CensusData) -> tuple[float, float]:
    return (_style.FIG_WIDTH, 2.4 + 0.55 * (len(data.names) + max(len(data.leaf_sizes), 1)))


def _panels(ax: Any, *, owns_figure: bool) -> tuple[Any, Any]:
    """Levels above, leaves below: a new figure's two rows, a sub-grid in ``ax``'s slot, or two
    insets of an Axes placed by hand."""
    if owns_figure:
        fig = ax.figure
        fig.delaxes(ax)
        return tuple(fig.subplots(2, 1, height_ratios=(3, 2)))
    if ax.get_subplotspec() is not None:
        spec, parent = ax.get_subplotspec(), ax.figure
        parent.delaxes(ax)
        gs = spec.subgridspec(2, 1, height_ratios=(3, 2))
        return parent.add_subplot(gs[0]), parent.add_subplot(gs[1])
    ax.set_axis_off()
    return ax.inset_axes((0.0, 0.5, 1.0, 0.45)), ax.inset_axes((0.0, 0.0, 1.0, 0.35))


def _log_size_axis(ax: Any, lo: float, hi: float, th: _style.Theme) -> None:
    ax.set_xscale("log", base=2)
    k0, k1 = int(np.floor(np.log2(lo))), int(np.ceil(np.log2(hi))) + 2
    step = max(1, (k1 - k0 + 5) // 6)
    ticks = [2.0 ** k for k in range(k0, k1 + 1, step)]
    ax.set_xticks(ticks, [fmt_size(int(t)) for t in ticks])
    ax.xaxis.set_minor_formatter(lambda v, _p: "")
    ax.set_xlim(2.0 ** k0 / 1.5, 2.0 ** k1)
    ax.tick_params(labelsize=th.small_size)


def draw_census(axes: Any, data: CensusData, th: _style.Theme, *, owns_figure: bool = True) -> dict:
    """Draw ``data`` into ``axes`` (tables panel, leaves panel); returns the bars by level name."""
    top, bottom = axes
    drawn: dict[str, Any] = {}
    y = np.arange(len(data.names))[::-1]
    face = _style.category("table-bytes").face(th)
    positive = [b for b in data.bytes if b > 0] or [4096]
    lo = min(positive)
    bars = top.barh(y, data.bytes, color=face, edgecolor=th.foreground, lw=0.6, gid="census:tables")
    for yy, name, n, b, bar in zip(y, data.names, data.tables, data.bytes, bars):
        drawn[name] = bar
        text = f"{plural(n, 'table')} = {fmt_size(b, approx=True)}" if n else "no tables"
        top.text(max(b, lo / 1.4) * 1.15, yy, text, va="center", ha="left", fontsize=th.small_size,
                 color=th.foreground, gid="census:label")
    top.set_yticks(y, data.names)
    _log_size_axis(top, lo, max(positive) * 8, th)
    top.set_xlabel("table memory per level (log scale)", fontsize=th.small_size, color=th.foreground)
    top.set_title(_style.wrap(data.title, th), fontsize=th.title_size, color=th.foreground, loc="left")
    if data.leaf_sizes:
        yl = np.arange(len(data.leaf_sizes))[::-1]
        for yy, size, b, n in zip(yl, data.leaf_sizes, data.leaf_bytes, data.leaf_counts):
            cat = _style.category(_style.pgsize_category(size))
            f = cat.face(th)
            bar = bottom.barh([yy], [b], color=f, edgecolor=th.foreground, lw=0.6, hatch=cat.hatch or None,
                              gid=f"census:leaves-{size:#x}")
            for p in bar:
                if cat.hatch:
                    p.set_hatchcolor(_style.hatch_color(f))
            bottom.text(b * 1.15, yy, f"{n:,} × {fmt_size(size)} = {fmt_size(b, approx=True)}", va="center",
                        ha="left", fontsize=th.small_size, color=th.foreground, gid="census:leaf-label")
        bottom.set_yticks(yl, [f"{fmt_size(s)} leaves" for s in data.leaf_sizes])
        _log_size_axis(bottom, min(data.leaf_bytes), max(data.leaf_bytes) * 8, th)
        bottom.set_xlabel("bytes mapped by each leaf size (log scale)", fontsize=th.small_size,
                          color=th.foreground)
    else:
        bottom.set_axis_off()
        bottom.text(0.0, 0.5, "no leaves: nothing is mapped", transform=bottom.transAxes, fontsize=th.small_size,
                    color=th.foreground)
    for ax in (top, bottom):
        ax.tick_params(axis="y", labelsize=th.small_size)
        ax.grid(axis="x", color=th.grid, lw=0.5)
        ax.set_axisbelow(True)
    return drawn


# Neutral grey: the page-size colours below mean leaf sizes, so table memory takes none of them.
_style.register_category("table-bytes", "page-table memory", "#a0a0a0", "", "census")

#: The census figure: ``census_data`` drawn by ``draw_census`` on two panels.
CENSUS = Renderer("census", census_data, draw_census, _size, panels=_panels)


def census(c: TableCensus, *, ax=None, filename: str | os.PathLike | None = None, style: str = "light",
           title: str | None = None, figsize: tuple[float, float] | None = None):
    """Draw a table census: table memory per level (log scale, sizes in words) and the leaf mix.

    Parameters
    ----------
    c : TableCensus
        From ``pagetable.table_census(fmt, layout)``.
    ax : matplotlib Axes, optional
        Draw the levels into this Axes and the leaves into an inset below it.
    filename : str or path, optional
        Also save; the suffix picks SVG, PNG or PDF.
    style : {"light", "dark", "slides", "slides-dark"}
    title : str, optional
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    return figure(CENSUS, c, ax=ax, filename=filename, style=style, figsize=figsize, title=title).figure


def census_html(c: TableCensus) -> str:
    """The notebook table: one row per level (name, tables, bytes), the leaf mix in the footer."""
    d = census_data(c)
    rows = [(name, f"{n:,}", fmt_size(b, approx=True)) for name, n, b in zip(d.names, d.tables, d.bytes)]
    leaves = "; ".join(f"{n:,} × {fmt_size(s)}" for s, n in zip(d.leaf_sizes, d.leaf_counts)) or "none"
    return table_html(d.title, ("level", "tables", "bytes"), rows, text=str(c), footer=f"leaves: {leaves}")


register(census, "mpl", TableCensus)
register(lambda c, **_kw: str(c), "text", TableCensus)
register(census_html, "html", TableCensus)


def gallery(add: Any) -> None:
    """Gallery entries: a NIC's 4 KiB buffers every 2 MiB on VT-d, and AMD v1 grown by Linux."""
    from iommu_lab.pagetable.census import Periodic, table_census

    add("census-vtd-4k-buffers", lambda style: census(
        table_census("vtd-ss-4level", Periodic(0, 4096, 2 << 20, 4096)), style=style))
    add("census-amd-dynamic-mixed", lambda style: census(
        table_census("amd-v1-dynamic", [(0, 1 << 30), (1 << 31, 6 << 20), (1 << 32, 64 << 10)]), style=style))
