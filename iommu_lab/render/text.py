"""Text rendering of an IOVA layout, for terminals and the CLI (Qiskit's ``output="text"``).

``layout_text(x)`` reads the same ``LayoutData`` the figure draws (tracks and the shared
segmented axis), so the two never disagree. For each model it prints one compressed bar per
lane -- the segmented axis in characters, each region a few characters wide, each gap ``≈`` --
and then one line per region: start, last (inclusive), size, kind, owner, and where the
region sits on the compressed bar.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iommu_lab.core.ranges import RangeSet, fmt_addr, fmt_size
from iommu_lab.hardware.platform import Platform
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.nesting.nested import NestedWalk
from iommu_lab.pagetable.walk import Walk
from iommu_lab.render.axis import SegmentedAxis, fmt_span
from iommu_lab.render.draw import register
from iommu_lab.render.layout import LANE_LABELS, Band, LayoutData, layout_data
from iommu_lab.render.nested import nested_walk_data
from iommu_lab.render.walk import walk_data

__all__ = ["layout_text", "walk_text", "nested_walk_text", "KIND_TEXT", "LANE_CHARS"]

#: Short names of the categories, as the ``kind`` column prints them.
KIND_TEXT = {
    "range": "range",
    "window": "window",
    "allowed": "allowed",
    "resv-direct": "direct",
    "resv-direct-relaxable": "direct-relaxable (not enforced)",
    "resv-reserved": "reserved",
    "resv-msi": "msi",
    "resv-sw-msi": "sw-msi",
    "resv-user": "user-reserved",
    "resv-aperture": "outside",
    "free": "free",
    "mapped": "mapped",
}

#: The character each category fills its cells with on the compressed bar.
LANE_CHARS = {
    "range": "█",
    "window": "█",
    "allowed": "▒",
    "resv-direct": "D",
    "resv-direct-relaxable": "d",
    "resv-reserved": "X",
    "resv-msi": "M",
    "resv-sw-msi": "S",
    "resv-user": "U",
    "resv-aperture": "/",
    "free": "·",
    "mapped": "█",
}
GAP_CHAR = "≈"
BLANK = " "


def _cells(axis: SegmentedAxis, n: int) -> np.ndarray:
    """Left x of each of ``n`` character cells, with each segment given whole cells.

    Every segment gets at least one cell (two for regions when there is room), the rest in
    proportion to drawn width, so the character bar keeps the figure's segment order.
    """
    segs = axis.segments
    want = np.array([s.width for s in segs])
    base = np.array([1 if s.is_break else 2 for s in segs])
    if base.sum() > n:
        base = np.ones(len(segs), dtype=int)
    extra = max(n - int(base.sum()), 0)
    share = want / want.sum() * extra
    counts = base + np.floor(share).astype(int)
    rem = n - counts.sum()
    if rem > 0:
        order = np.argsort(-(share - np.floor(share)), kind="stable")
        counts[order[:rem]] += 1
    return counts


def _bar(axis: SegmentedAxis, counts: np.ndarray, items: list[tuple[int, int, str]], fill_gaps: bool) -> str:
    """Characters for one lane: ``items`` are (start, last, char) painted in order."""
    n = int(counts.sum())
    cells = [BLANK] * n
    bounds = np.concatenate(([0], np.cumsum(counts)))
    if fill_gaps:
        for i, s in enumerate(axis.segments):
            if s.is_break:
                for c in range(bounds[i], bounds[i + 1]):
                    cells[c] = GAP_CHAR
    if not items:
        return "".join(cells)
    starts = np.array([a for a, _, _ in items], dtype=np.uint64)
    lasts = np.array([b for _, b, _ in items], dtype=np.uint64)
    # Position inside each segment as a fraction, then onto that segment's cells.
    for which, arr in (("s", starts), ("e", lasts)):
        seg = axis.segment_index(arr)
        x = axis.x(arr) if which == "s" else axis.x_end(arr)
        x0 = np.array([axis.segments[i].x0 for i in seg])
        w = np.array([axis.segments[i].width for i in seg])
        frac = np.clip((x - x0) / w, 0.0, 1.0)
        pos = bounds[seg] + frac * counts[seg]
        if which == "s":
            c0 = np.floor(pos).astype(int)
        else:
            c1 = np.maximum(np.ceil(pos).astype(int), 1)
    for (a, b, ch), lo, hi in zip(items, c0, c1):
        lo = min(lo, n - 1)
        hi = max(hi, lo + 1)
        for c in range(lo, min(hi, n)):
            cells[c] = ch
    return "".join(cells)


def _rows(data: LayoutData, t_index: int) -> list[tuple[int, int, str, str, str]]:
    t = data.tracks[t_index]
    rows = []
    for band in t.bands:
        if band.category == "mapped" or band.category.startswith("mapped-"):
            continue
        owners = band.owners or (None,) * len(band)
        for s, last, o in zip(band.starts.tolist(), band.lasts.tolist(), owners):
            rows.append((int(s), int(last), KIND_TEXT.get(band.category, band.category), o or "-", band.category))
    mapped = [b for b in t.bands if b.category == "mapped" or b.category.startswith("mapped-")]
    if mapped:
        starts = np.concatenate([b.starts for b in mapped])
        lasts = np.concatenate([b.lasts for b in mapped])
        for c in t.clusters:
            m = (starts >= np.uint64(c.start)) & (lasts <= np.uint64(c.last))
            count = int(m.sum())
            rows.append((c.start, c.last, f"mapped ×{count}", "-", "mapped"))
    order = {k: i for i, k in enumerate(KIND_TEXT)}
    rows.sort(key=lambda r: (r[0], order.get(r[4], 99)))
    return rows


def layout_text(x: Any, width: int = 100, **kw) -> str:
    """The layout of an IOAS, Platform, RangeSet or a list of them, as plain text.

    Parameters
    ----------
    x : IOAS, Platform, RangeSet, IovaRange or a list of them
    width : int
        Line width in characters (at least 60); the compressed bars use what the table leaves.

    Returns
    -------
    str
        Per model: a title, one compressed bar per lane (``≈`` marks a compressed gap), then
        one line per region with start, last, size, kind, owner and its place on the bar.
    """
    if width < 60:
        raise ValueError(f"width {width} is too narrow for a layout table; use at least 60 characters")
    data = layout_data(x, **kw)
    axis = data.axis
    lines: list[str] = []
    label_w = max(len(v) for v in LANE_LABELS.values()) + 1
    bar_n = width - label_w - 2
    counts = _cells(axis, bar_n)
    if data.title and len(data.tracks) > 1:
        lines.append(data.title)
        lines.append("=" * min(len(data.title), width))
    gaps = ", ".join(f"[{fmt_addr(s.start)}, {fmt_addr(s.last)}] {s.label}" for s in axis.breaks)
    for ti, t in enumerate(data.tracks):
        if ti:
            lines.append("")
        lines.append(t.title[:width])
        for lane in t.lanes:
            items = []
            for band in t.bands:
                if band.lane != lane:
                    continue
                ch = LANE_CHARS.get(band.category, "#")
                items.extend((int(s), int(last), ch) for s, last in _merged(axis, band, bar_n))
            lines.append(f"{LANE_LABELS[lane]:<{label_w}}|{_bar(axis, counts, items, True)}|")
        rows = []
        for start, last, kind, owner, _cat in _rows(data, ti):
            size = fmt_span(last - start + 1)
            if len(size) > 20:
                size = fmt_size(last - start + 1, approx=True)
            rows.append((fmt_addr(start), fmt_addr(last), size, kind, owner, start, last))
        cw = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("start", "last", "size", "kind", "owner"))]
        cw[4] = min(cw[4], 12)
        mini = width - sum(cw) - len(cw) - 1
        mini_counts = _cells(axis, mini) if mini >= 8 else None
        head = " ".join(f"{h:<{w}}" for h, w in zip(("start", "last", "size", "kind", "owner"), cw))
        lines.append((head + (" where" if mini_counts is not None else "")).rstrip())
        for *cols, start, last in rows:
            cols[4] = cols[4][: cw[4]]
            row = " ".join(f"{c:<{w}}" for c, w in zip(cols, cw))
            if mini_counts is not None:
                row += " " + _bar(axis, mini_counts, [(start, last, "█")], False).replace(BLANK, "·")
            lines.append(row.rstrip())
    if axis.breaks:
        lines.append("")
        lines.append(f"{GAP_CHAR} compressed gaps: {gaps}"[: max(width, 60) * 3])
    return "\n".join(lines) + "\n"


def _merged(axis: SegmentedAxis, band: Band, n: int) -> list[tuple[int, int]]:
    """Band rectangles, neighbours closer than one character cell merged (bounded work for 100k areas)."""
    if len(band) <= 256:
        return list(zip(band.starts.tolist(), band.lasts.tolist()))
    order = np.argsort(band.starts, kind="stable")
    s, e = band.starts[order], band.lasts[order]
    x0 = axis.x(s)
    x1 = axis.x_end(e)
    eps = axis.total_width / max(n, 1) / 4
    run = np.maximum.accumulate(x1)
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    new[1:] = x0[1:] - run[:-1] > eps
    idx = np.flatnonzero(new)
    ends = np.maximum.reduceat(e, idx)
    return list(zip(s[idx].tolist(), ends.tolist()))


# -- walks -------------------------------------------------------------------------------------
def walk_text(w: Any, width: int = 100) -> str:
    """A page-table walk as plain text: the IOVA's bit fields, one line per entry, the end.

    Reads the same ``WalkData`` the figure draws (``render.walk.walk_data``): a ruler of the
    IOVA bits (each level's index bits under its name, the page offset), then per entry read
    the level, table, index, raw entry and its decoded fields, and the translation or the fault.
    """
    d = walk_data(w)
    lines = [d.title, ""]
    # Bit ruler: one character per bit, 63 at the left, so spans line up under their labels.
    marks = {"high": "·", "offset": "o"}
    bar, labels = [], []
    for i, bf in enumerate(d.fields):
        ch = marks.get(bf.kind, "0123456789"[bf.level % 10] if bf.level is not None else "?")
        bar.append(ch * bf.width)
        val = f"{bf.value}" if bf.kind == "level" else fmt_addr(bf.value)
        labels.append(f"  {ch * 2} {bf.label:<34} = {val}{'   <- fault here' if bf.fault else ''}")
    lines.append("bits  63" + " " * 56 + "0")
    lines.append("      " + "".join(bar))
    lines.extend(labels)
    lines.append("")
    head = f"  {'level':<16} {'table':<16} {'index':>5}  {'raw entry':<21}  decoded"
    lines.append(head)
    for r in d.rows:
        mark = "!!" if r.fault else "  "
        lines.append(f"{mark}{r.name:<16} {fmt_addr(r.table):<16} {r.index:>5}  "
                     f"{r.raw_text:<21}  {r.decoded}")
        if r.fields:
            lines.append(f"  {'':<16} {'':<16} {'':>5}  {'':<21}  {r.fields}")
    lines.append("")
    lines.append(("=> " if d.ok else "!! ") + d.result_text)
    if d.fault_text:
        lines.append("   " + d.fault_text)
    return "\n".join(line[: max(width, 60) * 2].rstrip() for line in lines) + "\n"


def nested_walk_text(nw: Any, cell: int = 7) -> str:
    """A nested walk's 2-D grid as characters: each cell the reference's order number, ``S1``/
    ``S2`` in the cell, ``·`` where no reference was made and ``!`` on the fault's cell.

    Reads the same ``NestedData`` the figure draws (``render.nested.nested_walk_data``).
    """
    d = nested_walk_data(nw)
    lab_w = max(len(label.replace("\n", " ")) for label in d.row_labels) + 1
    lines = [d.title, ""]
    if d.pasid_cells:
        lines.append("PASID structures: " + " ".join(f"[{c.seq} {c.label}]" for c in d.pasid_cells))
    heads = [label.split("\n")[0].replace("S2 step ", "S2#").replace("S1 entry", "S1") for label in d.col_labels]
    lines.append(" " * lab_w + "".join(f"{h:^{cell}}" for h in heads))
    by_pos = {(c.row, c.col): c for c in d.cells}
    for r in range(d.rows):
        row = []
        for c in range(d.cols):
            x = by_pos.get((r, c))
            if x is None:
                txt = "" if (r == d.rows - 1 and c == d.cols - 1) else "·"
            else:
                txt = f"{x.seq}{'s1' if x.stage == 1 else 's2' if x.stage == 2 else 'c'}" + ("!" if x.fault else "")
            row.append(f"{txt:^{cell}}")
        lines.append(f"{d.row_labels[r].replace(chr(10), ' '):<{lab_w}}" + "".join(row))
    lines.append("")
    lines.append(d.totals_text)
    lines.append(d.result_text)
    if d.fault_text:
        lines.append(d.fault_text)
        lines.extend(d.fault_records)
    return "\n".join(line.rstrip() for line in lines) + "\n"


register(layout_text, "text", RangeSet, Platform, IOAS)
register(walk_text, "text", Walk)
register(nested_walk_text, "text", NestedWalk)
