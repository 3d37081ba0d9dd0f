"""The two-dimensional nested walk figure: stage-1 steps × stage-2 steps, every reference numbered.

``nested_walk(nw)`` draws a ``nesting.NestedWalk`` as the grid of the 2-D walk (Bhargava et
al., ASPLOS 2008): row ``i`` is stage-1 step ``i`` -- its table's GPA first
walked through stage 2 (columns ``0..m-1``), then the stage-1 entry read (the last column) --
and the last row is the stage-2 walk of the output GPA. Each cell holds the 1-based order in
which the hardware makes that reference, so 4×4 reads 1..24 left to right, top to bottom.
Stage-1 and stage-2 references differ in colour *and* hatch (legend); cells the walk did not
need (a large leaf shortened a stage-2 walk, or a fault stopped it) are left empty and dashed;
a fault is marked in the cell where it was taken, with its owner (guest or host) and the
records the hardware would log. PASID-structure reads, when the walk started from a PASID,
are a strip above the grid.

``nested_walk_data`` is the pure data the figure draws.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import iommu_lab.render.style as _style
from iommu_lab.core.ranges import fmt_addr, fmt_size
from iommu_lab.core.words import plural
from iommu_lab.nesting import NestedWalk, RefRole, nested_walk_refs
from iommu_lab.render.draw import Renderer, figure, register

__all__ = [
    "nested_walk", "draw_nested_walk", "NESTED_WALK", "nested_walk_data", "NestedData", "GridCell", "grid_labels",
    "level_namer",
]

_style.register_category("nested-s1", "stage-1 reference (guest table)", _style.OKABE_ITO["orange"], "", "nested")
_style.register_category("nested-s2", "stage-2 reference (host table)", _style.OKABE_ITO["sky"], "//", "nested")
_style.register_category("nested-cfg", "PASID / context structure", _style.OKABE_ITO["purple"], "..", "nested")
_style.register_category("nested-none", "no reference (leaf or fault cut it)", "theme:axes_background", "", "nested")
_style.register_category("nested-fault", "fault", _style.OKABE_ITO["vermillion"], "xx", "nested")

_STAGE_CAT = {0: "nested-cfg", 1: "nested-s1", 2: "nested-s2"}


@dataclass(frozen=True)
class GridCell:
    """One reference on the grid (``row``/``col`` as ``NestedRef``; ``seq`` 1-based order)."""

    row: int
    col: int
    seq: int
    stage: int
    level: int
    address: int
    raw: int
    label: str
    purpose: str
    category: str
    fault: bool = False


@dataclass(frozen=True)
class NestedData:
    """Everything the nested-walk figure draws."""

    title: str
    n: int
    m: int
    rows: int
    cols: int
    row_labels: list[str]
    col_labels: list[str]
    cells: list[GridCell]
    pasid_cells: list[GridCell]
    grid: np.ndarray  # [row, col] -> seq (0: no reference)
    counts: dict
    totals_text: str
    ok: bool
    result_text: str
    fault_cell: tuple[int, int] | None = None
    fault_owner: str | None = None
    fault_text: str = ""
    fault_records: list[str] = field(default_factory=list)

    def cell(self, row: int, col: int) -> GridCell | None:
        for c in self.cells:
            if c.row == row and c.col == col:
                return c
        return None




def level_namer(nw: Any, formats: tuple[Any, Any] | None = None):
    """``name(stage, level)``: the specification's name of a level (``S1 L0``, ``S2 SL-PDE``).

    A level the walk read takes the name its reference carries (the format's ``level_name``), so
    the figure, the explorer's grid and the walk's text name one reference alike; a level the
    walk never reached takes its name from ``formats`` (stage-1, stage-2) when given, otherwise
    its step from the root (``S1 step 2``), never an internal level number.
    """
    names = {(int(r.stage), r.level): r.name for r in nw.refs if r.name}
    depth = {1: nw.n, 2: nw.m}

    def name(stage: int, level: int) -> str:
        known = names.get((stage, level))
        if not known and formats is not None and formats[stage - 1] is not None:
            known = formats[stage - 1].level_name(level)
        return f"S{stage} {known}" if known else f"S{stage} step {depth[stage] - level}"

    return name


def grid_labels(nw: Any, formats: tuple[Any, Any] | None = None) -> tuple[list[str], list[str]]:
    """The grid's row labels (each stage-1 table by name and GPA, then the output GPA) and
    column labels (each stage-2 step by name, then the stage-1 entry read)."""
    n, m = nw.n, nw.m
    _level = level_namer(nw, formats)
    rows = max([r.row for r in nw.refs if r.row >= 0] + [n]) + 1
    cols = max([r.col for r in nw.refs if r.row >= 0] + [m]) + 1
    output_rows = {r.row for r in nw.refs if r.role is RefRole.OUTPUT_GPA}
    s1_by_row = {r.row: r for r in nw.refs if r.row >= 0 and int(r.stage) == 1}
    s2_gpa: dict[int, Any] = {}
    for r in nw.refs:
        if r.row >= 0 and int(r.stage) == 2:
            s2_gpa.setdefault(r.row, r.gpa)
    # A large stage-1 leaf ends the stage-1 walk early: the output GPA is then translated in an
    # earlier row, and the rows below it are never reached.
    output_row = min(output_rows) if output_rows else rows - 1
    row_labels = []
    for i in range(rows):
        if i == output_row:
            gpa = nw.gpa if nw.gpa is not None else s2_gpa.get(i)
            row_labels.append("output GPA" + (f"\n{fmt_addr(gpa)}" if gpa is not None else ""))
        elif i > output_row:
            row_labels.append("(not needed:\nstage-1 leaf above)")
        elif i in s1_by_row:
            r = s1_by_row[i]
            row_labels.append(f"{_level(1, r.level)} table\nGPA {fmt_addr(r.table)}" if r.table is not None
                              else _level(1, r.level))
        elif i in s2_gpa and s2_gpa[i] is not None:
            row_labels.append(f"{_level(1, n - 1 - i)} table\nGPA {fmt_addr(s2_gpa[i])}")
        else:
            row_labels.append(f"{_level(1, n - 1 - i)} table\n(not reached)")
    col_labels = [f"S2 step {j + 1}\n({_level(2, m - 1 - j)})" for j in range(cols - 1)] + ["S1 entry\nread"]
    return row_labels, col_labels


def nested_walk_data(nw: Any, *, title: str | None = None,
                     formats: tuple[Any, Any] | None = None) -> NestedData:
    """What ``nested_walk(nw)`` draws, as plain data (no matplotlib).

    ``formats`` (stage-1, stage-2 ``Format``) names the levels a faulting walk never reached.
    """
    n, m = nw.n, nw.m
    grid_refs = [(k, r) for k, r in enumerate(nw.refs, start=1) if r.row >= 0]
    rows = max([r.row for _, r in grid_refs] + [n]) + 1
    cols = max([r.col for _, r in grid_refs] + [m]) + 1
    fault = nw.fault
    last_k = len(nw.refs)
    cells, pasid_cells = [], []
    for k, r in enumerate(nw.refs, start=1):
        st = int(r.stage)
        c = GridCell(r.row, r.col, k, st, r.level, r.address, r.raw, r.label, r.purpose, _STAGE_CAT[st],
                     fault is not None and k == last_k)
        (cells if r.row >= 0 else pasid_cells).append(c)
    grid = np.zeros((rows, cols), dtype=np.int64)
    for c in cells:
        grid[c.row, c.col] = c.seq
    row_labels, col_labels = grid_labels(nw, formats)
    c = nw.counts
    formula = nested_walk_refs(n, m)
    totals = (f"{plural(c['pagetable'], 'page-table reference')}: "
              f"{c['stage1']} stage-1 + {c['stage2']} stage-2")
    if nw.n_pasid_refs:
        totals += f"; + {nw.n_pasid_refs} for PASID resolution ({c['total']} in all)"
    made = c["pagetable"]
    worst = f"a cold {n}×{m} walk with 4 KiB leaves at both stages makes (n+1)(m+1)−1 = {formula}"
    if fault is not None:
        totals += f"\nstopped at the fault; {worst}"
    elif made == formula:
        totals += f"\nthe worst case: {worst}"
    else:
        totals += f"\n{'fewer' if made < formula else 'more'} than {formula}: {worst}; larger leaves end walks early"
    fault_cell = owner = None
    fault_text = ""
    records: list[str] = []
    if fault is not None:
        owner = fault.owner.value
        fault_text = str(fault)
        fc = [x for x in cells if x.fault]
        if fc:
            fault_cell = (fc[0].row, fc[0].col)
        try:
            records = [f"SMMUv3: {fault.smmu_event()}", f"VT-d: {fault.vtd_fault()}"]
        except (KeyError, ValueError):  # pragma: no cover - a fault no record names
            records = []
        result_text = f"FAULT, the {owner}'s to fix"
    else:
        ps = ""
        if nw.s1_page_size and nw.s2_page_size:
            ps = (f"\n(stage-1 leaf {fmt_size(nw.s1_page_size)}, stage-2 leaf {fmt_size(nw.s2_page_size)}:"
                  f" IOTLB entry up to {fmt_size(nw.page_size)})")
        result_text = f"IOVA {fmt_addr(nw.iova)} → GPA {fmt_addr(nw.gpa)} → HPA {fmt_addr(nw.output)}{ps}"
    plat = f" on {nw.platform}" if getattr(nw, "platform", "") else ""
    t = title or f"Nested walk of IOVA {fmt_addr(nw.iova)}{plat}: {c['pagetable']} references"
    return NestedData(t, n, m, rows, cols, row_labels, col_labels, cells, pasid_cells, grid, dict(c), totals,
                      fault is None, result_text, fault_cell, owner, fault_text, records)


# -- drawing -----------------------------------------------------------------------------------
def _size(data: NestedData, *, legend: bool = True) -> tuple[float, float]:
    extra = (0.9 if data.pasid_cells else 0.0) + (0.55 if data.fault_records else 0.0)
    return (min(_style.FIG_WIDTH, 2.4 + 1.4 * data.cols), 2.7 + 1.0 * data.rows + 0.8 * extra)


def nested_walk(nw: Any, *, ax=None, filename: str | os.PathLike | None = None, style: str = "light",
                title: str | None = None, legend: bool = True, figsize: tuple[float, float] | None = None,
                formats: tuple[Any, Any] | None = None):
    """Draw the 2-D grid of a nested walk with every reference numbered in hardware order.

    Parameters
    ----------
    nw : nesting.NestedWalk
        From ``Nested.walk(iova)``.
    ax : matplotlib Axes, optional
        Draw into this Axes (its figure is returned); default: a new ``Figure`` (OO API).
    filename : str or path, optional
        Also save; the suffix picks SVG, PNG (200 dpi) or PDF.
    style : {"light", "dark"}
    title : str, optional
    legend : bool
    figsize : (float, float), optional
    formats : (Format, Format), optional
        The stage-1 and stage-2 formats, to name levels a faulting walk never reached
        (``nested.stage1.fmt, nested.stage2.fmt``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    return figure(NESTED_WALK, nw, ax=ax, filename=filename, style=style, figsize=figsize, title=title,
                  legend=legend, formats=formats).figure


def _boxes(xy: list[tuple[float, float]], w: float, h: float) -> np.ndarray:
    v = np.empty((len(xy), 4, 2))
    for i, (x, y) in enumerate(xy):
        v[i] = ((x, y), (x, y + h), (x + w, y + h), (x + w, y))
    return v


def draw_nested_walk(ax, data: NestedData, th: _style.Theme, *, owns_figure: bool = True,
                     legend: bool = True) -> dict:
    """Draw ``data`` into ``ax``; returns the grid cells drawn per category."""
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch, Rectangle

    W, H, GAP = 1.0, 0.8, 0.12
    mono = th.mono_family

    def xy(row, col):
        return col * (W + GAP), -row * (H + GAP)

    drawn = {}
    # Empty cells first, dashed, so a missing reference reads as "not made".
    # (The output row has no stage-1 entry to read: that corner is not a cell at all.)
    empty = [(r, c) for r in range(data.rows) for c in range(data.cols)
             if data.grid[r, c] == 0 and not (r == data.rows - 1 and c == data.cols - 1)]
    if empty:
        coll = PolyCollection(_boxes([xy(r, c) for r, c in empty], W, H), facecolors=th.axes_background,
                              edgecolors=th.grid, linewidths=0.8, linestyles="--", gid="nested:cells:none", zorder=1)
        ax.add_collection(coll)
        drawn["nested-none"] = empty
    for key in ("nested-s2", "nested-s1", "nested-cfg"):
        cs = [c for c in data.cells if c.category == key]
        if not cs:
            continue
        cat = _style.category(key)
        face = cat.face(th)
        coll = PolyCollection(_boxes([xy(c.row, c.col) for c in cs], W, H), facecolors=face, edgecolors=th.muted,
                              linewidths=0.8, hatch=cat.hatch or None, gid=f"nested:cells:{key}", zorder=2)
        if cat.hatch:
            coll.set_hatchcolor(_style.hatch_color(face))
        ax.add_collection(coll)
        drawn[key] = [(c.row, c.col) for c in cs]
    # Numbers (on a small opaque disc so the hatch never hides them), level and address.
    for c in data.cells:
        x, y = xy(c.row, c.col)
        ax.text(x + W / 2, y + H * 0.72, str(c.seq), ha="center", va="center", fontsize=th.font_size + 2,
                weight="bold", color=th.foreground, zorder=4, gid="nested:seq",
                bbox=dict(boxstyle="circle,pad=0.18", facecolor=th.axes_background, edgecolor="none"))
        ax.text(x + W / 2, y + H * 0.27, f"{c.label}\n{fmt_addr(c.address)}", ha="center", va="center",
                fontsize=th.small_size, family=mono, color=th.foreground, zorder=4, gid="nested:ref",
                bbox=dict(boxstyle="square,pad=0.08", facecolor=th.axes_background, edgecolor="none"))
    # The order, as a faint path through the cell centres.
    if len(data.cells) > 1:
        pts = np.array([[xy(c.row, c.col)[0] + W / 2, xy(c.row, c.col)[1] + H / 2] for c in data.cells])
        ax.plot(pts[:, 0], pts[:, 1], color=th.muted, lw=0.8, ls=":", zorder=1.5, gid="nested:order")
    # Fault marker: outline and cross hatch in the fault colour, owner written beside it.
    fcat = _style.category("nested-fault")
    if data.fault_cell is not None:
        r, c = data.fault_cell
        x, y = xy(r, c)
        mark = Rectangle((x - 0.03, y - 0.03), W + 0.06, H + 0.06, fill=False, edgecolor=fcat.face(th), lw=2.6,
                         hatch=fcat.hatch, zorder=3.5, gid="nested:fault")
        mark.set_hatchcolor(fcat.face(th))
        ax.add_patch(mark)
        ax.annotate(f"{data.fault_owner}'s fault", xy=(x + W + 0.03, y + H / 2), xytext=(x + W + 0.2, y + H / 2),
                    ha="left", va="center", fontsize=th.font_size, weight="bold", color=th.foreground, zorder=6,
                    gid="nested:fault-owner",
                    bbox=dict(boxstyle="round,pad=0.25", facecolor=th.axes_background, edgecolor=fcat.face(th), lw=1.4))
    # Row and column labels.
    for r, lab in enumerate(data.row_labels):
        x, y = xy(r, 0)
        ax.text(x - 0.12, y + H / 2, lab, ha="right", va="center", fontsize=th.small_size, color=th.foreground,
                gid="nested:row-label")
    for c, lab in enumerate(data.col_labels):
        x, y = xy(0, c)
        ax.text(x + W / 2, y + H + 0.1, lab, ha="center", va="bottom", fontsize=th.small_size, color=th.foreground,
                gid="nested:col-label")
    top = H + 0.55
    # PASID-structure strip above the grid.
    if data.pasid_cells:
        k = len(data.pasid_cells)
        span = data.cols * (W + GAP) - GAP
        w = span / k - 0.05
        y = top + 0.25
        for i, c in enumerate(data.pasid_cells):
            x = i * (w + 0.05)
            cat = _style.category(c.category)
            face = cat.face(th)
            rect = Rectangle((x, y), w, H * 0.7, facecolor=face, edgecolor=th.muted, lw=0.8, hatch=cat.hatch or None,
                             zorder=2, gid=f"nested:pasid:{c.category}")
            if cat.hatch:
                rect.set_hatchcolor(_style.hatch_color(face))
            ax.add_patch(rect)
            ax.text(x + w / 2, y + H * 0.35, str(c.seq), ha="center", va="center", fontsize=th.font_size,
                    weight="bold", color=th.foreground, zorder=4, gid="nested:seq-pasid",
                    bbox=dict(boxstyle="circle,pad=0.15", facecolor=th.axes_background, edgecolor="none"))
        ax.text(-0.12, y + H * 0.35, "PASID\nstructures", ha="right", va="center", fontsize=th.small_size,
                color=th.foreground, gid="nested:row-label")
        top = y + H * 0.7 + 0.15
    # Totals and result below the grid.
    yb = -(data.rows - 1) * (H + GAP) - 0.25
    ax.text(-1.9, yb, data.totals_text, ha="left", va="top", fontsize=th.font_size, weight="bold",
            color=th.foreground, gid="nested:totals")
    lines = [data.result_text] + ([data.fault_text] if data.fault_text else []) + data.fault_records
    ax.text(-1.9, yb - 0.55, "\n".join(lines), ha="left", va="top", fontsize=th.small_size, color=th.foreground,
            gid="nested:result", wrap=False)
    # About one 10 pt line per 0.2 data units at the default size: no blank band above the legend.
    bottom = yb - 0.6 - 0.2 * sum(1 + x.count("\n") for x in lines)
    right = data.cols * (W + GAP) + (1.6 if data.fault_cell else 0.2)
    ax.set_xlim(-1.95, right)
    ax.set_ylim(bottom, top + 0.05)
    ax.set_axis_off()
    ax.set_title(_style.wrap(data.title, th), fontsize=th.title_size, color=th.foreground, loc="left")
    if legend:
        handles = []
        keys = [k for k in ("nested-s1", "nested-s2", "nested-cfg", "nested-none") if k in drawn or (
            k == "nested-cfg" and data.pasid_cells)]
        if data.fault_cell is not None:
            keys.append("nested-fault")
        for key in keys:
            cat = _style.category(key)
            face = cat.face(th)
            if key == "nested-fault":
                h = Patch(facecolor=th.axes_background, edgecolor=face, hatch=cat.hatch, lw=1.6, label=cat.label)
                h.set_hatchcolor(face)
            else:
                h = Patch(facecolor=face, edgecolor=th.muted, hatch=cat.hatch or None, lw=0.6, label=cat.label,
                          linestyle="--" if key == "nested-none" else "-")
                if cat.hatch:
                    h.set_hatchcolor(_style.hatch_color(face))
            handles.append(h)
        leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.0), ncols=min(3, len(handles)),
                        fontsize=th.small_size, frameon=True, borderaxespad=0.2)
        leg.get_frame().set_alpha(1.0)
    return drawn


#: The nested-walk figure: ``nested_walk_data`` drawn by ``draw_nested_walk``.
NESTED_WALK = Renderer("nested_walk", nested_walk_data, draw_nested_walk, _size, options=("legend",))
register(nested_walk, "mpl", NestedWalk)
