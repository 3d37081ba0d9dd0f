"""The iommufd object graph of one ``/dev/iommu``: its objects as boxes by kind, and the edges
between them, as a figure, as text and as notebook HTML.

The graph is the one iommufd keeps in ``struct iommufd_ctx`` (drivers/iommu/iommufd/main.c):
every object an id, and the references that make IOMMU_DESTROY answer EBUSY. Edges point
from the user to what it uses:

=====================  ==================================================================
edge                   meaning
=====================  ==================================================================
attached to            a DEVICE's RID (or one PASID, written on the edge) is translated by a
                       HWPT (``iommufd_device_attach`` / ``iommufd_device_replace``)
built on               the object holds a reference on the other one: a HWPT_PAGING on its
                       IOAS, a HWPT_NESTED on its parent or vIOMMU, a vIOMMU on its nest
                       parent, a VDEVICE on its vIOMMU, an ACCESS on its IOAS
virtual id of          a VDEVICE names a bound DEVICE inside its vIOMMU (vSID, vDeviceID)
reports faults to      a HWPT allocated with FAULT_ID_VALID delivers page requests to a FAULT
=====================  ==================================================================

Columns run from devices (left) to address spaces (right), in the order a DMA's translation
goes through them. ``object_graph_data`` computes everything (pure; tests and the text view
read it); ``draw_object_graph`` draws it with text of at least 10 pt on a 9-inch figure, so it
stays legible shown 900 px wide.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import iommu_lab.render.style as _style
from iommu_lab.core.ranges import fmt_size
from iommu_lab.core.words import plural
from iommu_lab.iommufd.context import IommufdContext
from iommu_lab.iommufd.objects import (
    NO_PASID,
    AccessObj,
    DeviceObj,
    HwptFlag,
    HwptNested,
    HwptPaging,
    IoasObj,
    ObjectInfo,
    ObjType,
    VdeviceObj,
    ViommuObj,
)
from iommu_lab.render.draw import Renderer, figure, register
from iommu_lab.render.html import table_html

__all__ = ["GraphNode", "GraphEdge", "ObjectGraph", "object_graph_data", "object_graph", "object_graph_text",
           "object_graph_html", "draw_object_graph", "OBJECT_GRAPH", "KIND_COLUMN", "RELATIONS"]

#: Which column each kind sits in: a DMA's translation goes left to right.
KIND_COLUMN: dict[ObjType, int] = {
    ObjType.DEVICE: 0,
    ObjType.HWPT_NESTED: 1,
    ObjType.VDEVICE: 1,
    ObjType.VIOMMU: 2,
    ObjType.HWPT_PAGING: 3,
    ObjType.ACCESS: 3,
    ObjType.IOAS: 4,
    ObjType.FAULT: 4,
}

_O = _style.OKABE_ITO
for _kind, _color, _hatch in (
    (ObjType.DEVICE, _O["orange"], "//"),
    (ObjType.HWPT_NESTED, _O["sky"], ".."),
    (ObjType.VDEVICE, _O["yellow"], "xx"),
    (ObjType.VIOMMU, _O["purple"], "++"),
    (ObjType.HWPT_PAGING, _O["green"], "\\\\"),
    (ObjType.ACCESS, _style.PETROFF["brown"], "--"),
    (ObjType.IOAS, _O["blue"], ""),
    (ObjType.FAULT, _O["vermillion"], "oo"),
):
    _style.register_category(f"obj-{_kind.value}", _kind.value, _color, _hatch, "objects")

#: Edge relations, in legend order: (line style, width, drawn in the foreground colour).
RELATIONS: dict[str, tuple[str, float, bool]] = {
    "attached to": ("-", 2.0, True),
    "built on": ("--", 1.3, False),
    "virtual id of": (":", 1.5, False),
    "reports faults to": ("-.", 1.3, False),
}

FIG_WIDTH = 9.0  # inches; shown 900 px wide at the notebook's 100 dpi
TEXT_PT = 10.0  # every text on the figure is at least this
TITLE_PT = 12.0
LINE_IN = TEXT_PT * 1.3 / 72  # one text line
PAD_IN = 0.07
GAP_IN = 0.22  # between boxes of one column
MARGIN_IN = 0.08
SKIP_ROOM_IN = 0.45  # above the boxes, for edges that skip a column
STRIP_IN = 0.1  # the hatched kind strip at a box's left edge


@dataclass(frozen=True)
class GraphNode:
    """One object as a box: its id and kind, the title and key lines written on it, and where
    it sits (column, and the box's lower-left corner and size in inches)."""

    id: int
    kind: ObjType
    title: str
    lines: tuple[str, ...]
    column: int
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0

    @property
    def category(self) -> str:
        return f"obj-{self.kind.value}"


@dataclass(frozen=True)
class GraphEdge:
    """One edge, from the object that uses to the one used; ``label`` e.g. ``"pasid 5"``."""

    source: int
    target: int
    relation: str
    label: str = ""


@dataclass(frozen=True)
class ObjectGraph:
    """Everything the object-graph figure draws (sizes in inches)."""

    title: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    width: float
    height: float

    def node(self, obj_id: int) -> GraphNode:
        return next(n for n in self.nodes if n.id == obj_id)

    @property
    def kinds(self) -> tuple[ObjType, ...]:
        """Kinds present, in column order (the legend's order)."""
        present = {n.kind for n in self.nodes}
        return tuple(k for k in KIND_COLUMN if k in present)

    @property
    def relations(self) -> tuple[str, ...]:
        present = {e.relation for e in self.edges}
        return tuple(r for r in RELATIONS if r in present)


# -- model → data --------------------------------------------------------------------------------
def _flag_lines(flags: HwptFlag) -> list[str]:
    names = [m.name for m in HwptFlag if m.value and int(flags) & m.value]
    extra = int(flags) & ~0xF
    return names + ([f"flags {extra:#x}"] if extra else []) or ["no flags"]


def _lines(obj: Any) -> list[str]:
    """The key facts written on an object's box (its id and kind are the title)."""
    if isinstance(obj, IoasObj):
        return [plural(len(obj.ioas.areas), "area"), f"align {fmt_size(obj.ioas.iova_alignment)}"]
    if isinstance(obj, DeviceObj):
        where = obj.platform.name if obj.platform is not None else "no platform"
        on = [f"{'RID' if p == NO_PASID else f'pasid {p}'} → HWPT {h}" for p, h in sorted(obj.attached.items())]
        return [obj.device.name, where] + (on or ["detached"])
    if isinstance(obj, HwptPaging):
        out = (["auto (attach)"] if obj.auto_domain else []) + _flag_lines(obj.flags)
        if obj.dirty_enabled:
            out.append("dirty tracking on")
        return out + [obj.driver.name]
    if isinstance(obj, HwptNested):
        out = [obj.data.name]
        if obj.flags & HwptFlag.PASID:
            out.append("PASID")
        return out + [obj.driver.name]
    if isinstance(obj, ViommuObj):
        return [obj.vtype.name, f"on {obj.iommu}", plural(len(obj.vdevs), "vDEVICE")]
    if isinstance(obj, VdeviceObj):
        return [f"virt_id {obj.virt_id:#x}"]
    if isinstance(obj, AccessObj):
        return ["in-kernel access"]
    return ["fault queue"] if obj.type is ObjType.FAULT else []


def _edges(ctx: IommufdContext) -> list[GraphEdge]:
    edges: list[GraphEdge] = []
    for a in ctx.attachments():
        edges.append(GraphEdge(a.dev_id, a.hwpt_id, "attached to", f"pasid {a.pasid}" if a.pasid else ""))
    for oid in sorted(ctx.objects_by_id):
        obj = ctx.objects_by_id[oid]
        fault = getattr(obj, "fault_id", None)
        for ref in obj.refs:
            if ref == fault:
                edges.append(GraphEdge(oid, ref, "reports faults to"))
            elif isinstance(obj, VdeviceObj) and ref == obj.dev_id:
                edges.append(GraphEdge(oid, ref, "virtual id of"))
            else:
                edges.append(GraphEdge(oid, ref, "built on"))
    return edges


def _text_width(text: str, *, bold: bool = False) -> float:
    """Width in inches of ``text`` at TEXT_PT in the theme's font (measured, not estimated)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    prop = FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal", size=TEXT_PT)
    return TextPath((0, 0), text, prop=prop).get_extents().width / 72.0


def _fit(text: str, room: float, *, bold: bool = False) -> str:
    """``text`` cut with "…" to fit ``room`` inches (the figure only; text and HTML keep it whole)."""
    if _text_width(text, bold=bold) <= room:
        return text
    while len(text) > 1 and _text_width(text + "…", bold=bold) > room:
        text = text[:-1]
    return text.rstrip() + "…"


def _place(raw: list[tuple[int, ObjType, str, list[str]]], edges: list[GraphEdge], title: str) -> ObjectGraph:
    """Columns of boxes: only the columns in use, each ordered so its boxes sit near what they
    point at (placed right to left, by the mean row of their targets)."""
    used = sorted({KIND_COLUMN[k] for _, k, _, _ in raw})
    col_of = {c: i for i, c in enumerate(used)}
    n_cols = max(len(used), 1)
    col_w = (FIG_WIDTH - 2 * MARGIN_IN) / n_cols
    box_w = col_w * 0.9
    by_col: dict[int, list[tuple[int, ObjType, str, list[str]]]] = {}
    for item in raw:
        by_col.setdefault(col_of[KIND_COLUMN[item[1]]], []).append(item)
    rank: dict[int, float] = {}
    targets: dict[int, list[int]] = {}
    for e in edges:
        targets.setdefault(e.source, []).append(e.target)
    for c in sorted(by_col, reverse=True):
        def key(item: tuple, c: int = c) -> tuple:
            right = [rank[t] for t in targets.get(item[0], ()) if t in rank]
            return (sum(right) / len(right) if right else float("inf"), item[1].value, item[0])

        by_col[c].sort(key=key)
        for r, item in enumerate(by_col[c]):
            rank[item[0]] = r
    heights = {c: [2 * PAD_IN + LINE_IN * (1 + len(it[3])) for it in items] for c, items in by_col.items()}
    body = max((sum(h) + GAP_IN * (len(h) - 1) for h in heights.values()), default=0.6)
    column = {item[0]: col_of[KIND_COLUMN[item[1]]] for item in raw}
    # An edge that skips a column arcs over the boxes between: leave it room above them.
    skips = any(abs(column.get(e.target, 0) - column.get(e.source, 0)) > 1 for e in edges)
    body += SKIP_ROOM_IN if skips else 0.0
    top = body + MARGIN_IN
    nodes = []
    for c, items in by_col.items():
        y = top - (SKIP_ROOM_IN if skips else 0.0)
        for item, h in zip(items, heights[c]):
            y -= h
            x = MARGIN_IN + c * col_w + (col_w - box_w) / 2
            nodes.append(GraphNode(item[0], item[1], item[2], tuple(item[3]), c, x, y, box_w, h))
            y -= GAP_IN
    nodes.sort(key=lambda n: n.id)
    return ObjectGraph(title, tuple(nodes), tuple(edges), FIG_WIDTH, body + 2 * MARGIN_IN)


def object_graph_data(obj: Any, *, title: str | None = None) -> ObjectGraph:
    """What the figure shows for an ``IommufdContext`` (every object and edge) or one
    ``ObjectInfo`` row (its box alone, the ids it holds written on it)."""
    if isinstance(obj, ObjectInfo):
        lines = [s.strip() for s in obj.detail.split(";") if s.strip()]
        if obj.refs:
            lines.append("holds " + ", ".join(map(str, obj.refs)))
        raw = [(obj.id, obj.type, f"{obj.type.value} {obj.id}", lines)]
        return _place(raw, [], title if title is not None else obj.label)
    if not isinstance(obj, IommufdContext):
        raise TypeError(f"object_graph draws an IommufdContext or an ObjectInfo, got {type(obj).__name__}")
    raw = [(o.id, o.type, f"{o.type.value} {o.id}", _lines(o)) for o in (obj.objects_by_id[i] for i in sorted(obj.objects_by_id))]
    edges = _edges(obj)
    if title is None:
        n = len(raw)
        title = f"iommufd objects (kernel {obj.kernel.value}): {plural(n, 'object')}"
        att = sum(e.relation == "attached to" for e in edges)
        title += f", {plural(att, 'attachment')}"
    return _place(raw, edges, title)


# -- drawing -------------------------------------------------------------------------------------
def _size(data: ObjectGraph, legend: bool = True) -> tuple[float, float]:
    entries = len(data.kinds) + len(data.relations) if legend and data.nodes else 0
    rows = -(-entries // 5)
    return (data.width, data.height + 0.45 + rows * 0.3 + (0.15 if rows else 0.0))


def _tint(color: str, th: _style.Theme, amount: float = 0.28) -> tuple[float, float, float]:
    """The kind's colour washed into the background, so theme-coloured text on it stays readable."""
    from matplotlib.colors import to_rgb

    c, b = to_rgb(color), to_rgb(th.axes_background)
    return tuple(b[i] + (c[i] - b[i]) * amount for i in range(3))  # type: ignore[return-value]


def _route(start: tuple[float, float], end: tuple[float, float], others: list[GraphNode], top: float) -> float:
    """The least-bent ``arc3`` curvature whose curve passes clear of every other box and stays
    below ``top``, so an edge that skips a column never seems to enter a box it passes (0.12 if
    none is clear)."""
    (x1, y1), (x2, y2) = start, end
    margin = 0.04

    def clear(rad: float) -> bool:
        cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
        for i in range(1, 40):
            t = i / 40
            px = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t * t * x2
            py = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t * t * y2
            if not 0.0 <= py <= top:
                return False
            for n in others:
                if n.x - margin <= px <= n.x + n.width + margin and n.y - margin <= py <= n.y + n.height + margin:
                    return False
        return True

    for rad in (0.0, 0.12, -0.12, 0.25, -0.25, 0.4, -0.4, 0.6, -0.6, 0.8, -0.8, 1.0, -1.0, 1.3, -1.3):
        if clear(rad):
            return rad
    return 0.12


def draw_object_graph(ax: Any, data: ObjectGraph, th: _style.Theme, *, owns_figure: bool = True,
                      legend: bool = True) -> dict:
    """Draw ``data`` into ``ax``; returns the boxes and labels by object id, the edges drawn, the
    waypoints of those routed over skipped columns and the legend's labels."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle
    from matplotlib.path import Path

    boxes: dict[int, Any] = {}
    labels: dict[int, list[Any]] = {}
    for n in data.nodes:
        cat = _style.category(n.category)
        color = cat.face(th)
        boxes[n.id] = ax.add_patch(FancyBboxPatch(
            (n.x, n.y), n.width, n.height, boxstyle="round,pad=0,rounding_size=0.05", facecolor=_tint(color, th),
            edgecolor=color, linewidth=1.8, zorder=3, gid=f"objects:box:{n.id}"))
        strip = Rectangle((n.x, n.y), STRIP_IN, n.height, facecolor=color, edgecolor=color, linewidth=0,
                          hatch=cat.hatch or None, zorder=4, gid=f"objects:kind:{n.id}")
        if cat.hatch:
            strip.set_hatchcolor(_style.hatch_color(color))
        ax.add_patch(strip)
        tx = n.x + STRIP_IN + PAD_IN
        room = n.width - STRIP_IN - 2 * PAD_IN
        ty = n.y + n.height - PAD_IN
        texts = [ax.text(tx, ty, _fit(n.title, room, bold=True), ha="left", va="top", fontsize=TEXT_PT, fontweight="bold",
                         color=th.foreground, zorder=5, gid=f"objects:title:{n.id}")]
        for i, line in enumerate(n.lines):
            texts.append(ax.text(tx, ty - LINE_IN * (i + 1), _fit(line, room), ha="left", va="top", fontsize=TEXT_PT,
                                 color=th.foreground, zorder=5, gid=f"objects:line:{n.id}"))
        labels[n.id] = texts
    pos = {n.id: n for n in data.nodes}
    drawn_edges = []
    skipped = 0
    routes: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for e in data.edges:
        a, b = pos.get(e.source), pos.get(e.target)
        if a is None or b is None:
            continue
        style, lw, strong = RELATIONS[e.relation]
        colour = th.foreground if strong else th.muted
        if b.x >= a.x:
            start, end = (a.x + a.width, a.y + a.height / 2), (b.x, b.y + b.height / 2)
        else:
            start, end = (a.x, a.y + a.height / 2), (b.x + b.width, b.y + b.height / 2)
        common = dict(arrowstyle="-|>", mutation_scale=14, linestyle=style, linewidth=lw, color=colour, zorder=2,
                      gid=f"objects:edge:{e.source}-{e.target}")
        if abs(b.column - a.column) > 1:
            # Over the boxes between, in the channel left free above them: up in the gap after
            # the source's column, across, down in the gap before the target's.
            lane = data.height - SKIP_ROOM_IN / 2 + 0.09 * (skipped % 3 - 1)
            skipped += 1
            step = (a.width / 0.9) * 0.05 * (1 if b.x >= a.x else -1)  # half the gap between columns
            verts = [start, (start[0] + step, start[1]), (start[0] + step, lane), (end[0] - step, lane),
                     (end[0] - step, end[1]), end]
            arrow = FancyArrowPatch(path=Path(verts), **common)
            routes[(e.source, e.target)] = verts
        else:
            rad = _route(start, end, [n for n in data.nodes if n.id not in (e.source, e.target)], data.height)
            arrow = FancyArrowPatch(start, end, connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2, **common)
        ax.add_patch(arrow)
        drawn_edges.append(e)
    if not data.nodes:
        ax.text(data.width / 2, data.height / 2, "no objects: allocate an IOAS or bind a device", ha="center",
                va="center", fontsize=TEXT_PT, color=th.muted, gid="objects:empty")
    ax.set_xlim(0, data.width)
    ax.set_ylim(0, data.height)
    ax.set_axis_off()
    ax.set_title(data.title, fontsize=TITLE_PT, color=th.foreground, loc="left")
    legend_labels: list[str] = []
    if legend and data.nodes:
        handles = []
        for kind in data.kinds:
            cat = _style.category(f"obj-{kind.value}")
            h = Patch(facecolor=cat.face(th), edgecolor=cat.face(th), hatch=cat.hatch or None, label=cat.label)
            if cat.hatch:
                h.set_hatchcolor(_style.hatch_color(cat.face(th)))
            handles.append(h)
        for rel in data.relations:
            style, lw, strong = RELATIONS[rel]
            handles.append(Line2D([], [], linestyle=style, linewidth=lw, color=th.foreground if strong else th.muted,
                                  label=rel))
        common = dict(handles=handles, fontsize=TEXT_PT, frameon=False, handlelength=2.4, handleheight=1.1)
        if owns_figure:
            leg = ax.figure.legend(loc="outside lower center", ncol=min(len(handles), 5), **common)
        else:
            leg = ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), ncol=1, **common)
        for txt in leg.get_texts():
            txt.set_color(th.foreground)
        leg.set_gid("objects:legend")
        legend_labels = [t.get_text() for t in leg.get_texts()]
    return {"boxes": boxes, "labels": labels, "edges": drawn_edges, "routes": routes, "legend": legend_labels}


#: The object-graph figure: ``object_graph_data`` drawn by ``draw_object_graph``.
OBJECT_GRAPH = Renderer("object_graph", object_graph_data, draw_object_graph, _size, options=("legend",))


def object_graph(obj: Any, *, ax: Any = None, filename: str | os.PathLike | None = None, style: str = "light",
                 title: str | None = None, legend: bool = True, figsize: tuple[float, float] | None = None):
    """Draw an iommufd context's object graph (or one ``ObjectInfo`` row as its box).

    Parameters
    ----------
    obj : IommufdContext or ObjectInfo
    ax : matplotlib Axes, optional
        Draw into this Axes (its figure is returned); default: a new ``Figure`` (OO API).
    filename : str or path, optional
        Also save; the suffix picks SVG, PNG (200 dpi) or PDF.
    style : {"light", "dark"}
    title : str, optional
        Default: the kernel, the number of objects and of attachments.
    legend : bool (default: True)
        One entry per object kind and edge relation present.
    figsize : (float, float), optional
        Default 9 inches wide (legible at 900 px), as tall as the longest column.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return figure(OBJECT_GRAPH, obj, ax=ax, filename=filename, style=style, figsize=figsize, title=title,
                  legend=legend).figure


# -- text and HTML ---------------------------------------------------------------------------------
def _edge_text(e: GraphEdge, data: ObjectGraph) -> str:
    target = data.node(e.target)
    return f"{e.relation} {target.kind.value} {target.id}" + (f" ({e.label})" if e.label else "")


def object_graph_text(obj: Any) -> str:
    """The graph as text: one line per object (kind, id, key facts), then its outgoing edges."""
    data = object_graph_data(obj)
    out = [data.title]
    if not data.nodes:
        return out[0] + "\n  (no objects)"
    for n in sorted(data.nodes, key=lambda n: (n.column, n.id)):
        out.append(f"  {n.title}: " + ", ".join(n.lines))
        for e in data.edges:
            if e.source == n.id:
                out.append(f"      -> {_edge_text(e, data)}")
    return "\n".join(out)


def object_graph_html(obj: Any) -> str:
    """The notebook view: a table of objects and what each points at, the text form inside."""
    data = object_graph_data(obj)
    rows = []
    for n in data.nodes:
        uses = "; ".join(_edge_text(e, data) for e in data.edges if e.source == n.id)
        if isinstance(obj, ObjectInfo) and obj.refs:
            uses = "holds " + ", ".join(map(str, obj.refs))
        rows.append((n.id, n.kind.value, ", ".join(n.lines), uses))
    return table_html(data.title, ("id", "kind", "key facts", "points at"), rows, text=object_graph_text(obj))


register(object_graph, "mpl", IommufdContext, ObjectInfo)
register(object_graph_text, "text", IommufdContext, ObjectInfo)
register(object_graph_html, "html", IommufdContext, ObjectInfo)


def gallery(add: Any) -> None:
    """Gallery entries: one VT-d device nested on its parent, one SMMUv3 device through a vIOMMU."""
    from iommu_lab.iommufd.context import IommufdContext

    def both(style: str):
        ctx = IommufdContext()
        ioas = ctx.ioas_alloc()
        vtd = ctx.bind("intel-vtd-48")
        parent = ctx.hwpt_alloc(vtd, ioas, "NEST_PARENT")
        ctx.attach(vtd, ctx.hwpt_alloc(vtd, parent, data_type="VTD_S1"))
        smmu = ctx.bind("arm-smmuv3-48")
        viommu = ctx.viommu_alloc(smmu, ctx.hwpt_alloc(smmu, ioas, "NEST_PARENT"), "ARM_SMMUV3")
        ctx.vdevice_alloc(viommu, smmu, 0x10)
        ctx.attach(smmu, ctx.hwpt_alloc(smmu, viommu, data_type="ARM_SMMUV3"))
        return object_graph(ctx, style=style)

    add("objects-vtd-and-smmuv3-nesting", both)
