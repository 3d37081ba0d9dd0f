"""The single-IOVA page-table walk figure: which IOVA bits index which level, every entry read,
and where the walk ended.

``walk(w)`` draws a ``pagetable.Walk``:

* the IOVA as a 64-bit **bit-field bar** -- each level's index bits in that level's colour and
  hatch, labelled ``SL-PML4E [47:39]`` with the index value inside, the page offset, and the
  bits above the input width (sign extension or must-be-zero);
* one **row per entry read**: the level, the table's address, the index, the raw 64-bit entry
  in hex, its decoded fields (kind, address, permissions, reserved bits), and an arrow from the
  entry to the table it points at (the next row);
* the **result** -- the physical address as page base + offset -- or the **fault**, drawn at
  the level where it happened in the fault colour and hatch with the reason written out.

Extraction (``walk_data``: pure data) is separate from drawing, so tests and ``walk_text``
read exactly what the figure shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import iommu_lab.render.style as _style
from iommu_lab.core.ranges import fmt_addr, fmt_size
from iommu_lab.core.words import plural
from iommu_lab.pagetable.walk import Walk
from iommu_lab.render.draw import Renderer, figure, register

__all__ = ["walk", "draw_walk", "WALK", "walk_data", "WalkData", "WalkRow", "BitField", "level_category", "fmt_raw"]

# Per-level colours and hatches (level numbers as the page-table layer numbers them: 0 = leaf
# table). Okabe-Ito hues, each with its own hatch so levels differ in greyscale too.
_LEVEL_LOOK = (
    ("#009E73", ""),  # level 0
    ("#E69F00", "//"),  # level 1
    ("#56B4E9", "\\\\"),  # level 2
    ("#CC79A7", ".."),  # level 3
    ("#F0E442", "++"),  # level 4
    ("#a96b59", "--"),  # level 5
)
_style.register_category("walk-offset", "page offset", "theme:free", "", "walk")
_style.register_category("walk-high", "above the input width", "theme:outside", "//", "walk")
_style.register_category("walk-result", "translated address", _style.OKABE_ITO["blue"], "", "walk")
_style.register_category("walk-fault", "fault", _style.OKABE_ITO["vermillion"], "xx", "walk")


def level_category(level: int) -> str:
    """Category key of a walk level (registered on first use)."""
    key = f"walk-level-{level}"
    if key not in _style.CATEGORIES:
        color, hatch = _LEVEL_LOOK[level % len(_LEVEL_LOOK)]
        _style.register_category(key, f"level {level} index", color, hatch, "walk")
    return key


for _lv in range(len(_LEVEL_LOOK)):
    level_category(_lv)


def fmt_raw(raw: int) -> str:
    """A 64-bit entry as 16 hex digits in groups of four: ``0x0000_0000_1000_2003``."""
    h = f"{int(raw) & ((1 << 64) - 1):016x}"
    return "0x" + "_".join(h[i : i + 4] for i in range(0, 16, 4))


@dataclass(frozen=True)
class BitField:
    """One span of IOVA bits on the bar: ``[hi:lo]`` inclusive, what it is and its value."""

    kind: str  # "level" | "offset" | "high"
    hi: int
    lo: int
    value: int
    label: str
    category: str
    level: int | None = None
    fault: bool = False

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1


@dataclass(frozen=True)
class WalkRow:
    """One entry read (or, for a fault before the read, the entry that could not be read)."""

    level: int
    name: str
    table: int
    index: int
    entry_address: int
    read_address: int
    raw: int | None
    raw_text: str
    kind: str  # "table" | "leaf" | "empty" | "reserved" | ... | "not read"
    decoded: str  # one line: kind, address, permissions
    fields: str  # the named fields with their values
    reserved: int  # bits no field of this entry kind names, set in the raw entry
    target: int | None  # next table (kind "table") or page base (kind "leaf")
    category: str
    fault: bool = False


@dataclass(frozen=True)
class WalkData:
    """Everything the walk figure draws."""

    title: str
    iova: int
    fmt_name: str
    fields: list[BitField]
    rows: list[WalkRow]
    arrows: list[tuple[int, int | str, int]]  # (from row, to row or "result", target address)
    ok: bool
    pa: int | None
    result_text: str
    fault_level: int | None = None
    fault_reason: str | None = None
    fault_text: str = ""
    references: int = 0
    extra: dict = field(default_factory=dict)


def _bit_fields(w: Any) -> list[BitField]:
    f = w.fmt
    off = (w.iova - f.va_base) if f.va_base else w.iova
    fault_level = w.fault.level if w.fault is not None else None
    if w.ok:
        page_lg2 = int(w.result.size).bit_length() - 1
        deepest = w.result.level
    else:
        page_lg2 = f.granule_lg2
        deepest = 0
    out: list[BitField] = []
    top = f.va_bits  # bits [63:va_bits] are not translated
    if top < 64:
        if f.sign_extend:
            label = f"sign extension of bit {top - 1}"
        elif f.va_base:
            label = f"window base {fmt_addr(f.va_base)}"
        else:
            label = "must be 0"
        out.append(BitField("high", 63, top, w.iova >> top, f"[63:{top}] {label}", "walk-high",
                            fault=w.fault is not None and w.fault.level is None))
    for lv in range(f.top_level, deepest - 1, -1):
        hi, lo = f.iova_bits(lv)
        lo = max(lo, page_lg2)
        if hi < lo:
            continue
        hi = min(hi, top - 1)
        value = (off >> lo) & ((1 << (hi - lo + 1)) - 1)
        out.append(BitField("level", hi, lo, value, f"{f.level_name(lv)} [{hi}:{lo}]", level_category(lv), lv,
                            fault=fault_level == lv))
    out.append(BitField("offset", page_lg2 - 1, 0, off & ((1 << page_lg2) - 1),
                        f"offset [{page_lg2 - 1}:0]" + (f" ({fmt_size(1 << page_lg2)} page)" if w.ok else ""),
                        "walk-offset"))
    return out


def _kind_text(kind: Any) -> str:
    return kind.name.lower().replace("_", " ")


def _row(f: Any, s: Any, fault: bool) -> WalkRow:
    e = s.entry
    kind = _kind_text(e.kind)
    ftable = f.fields(s.level, e.kind)
    reserved = int(s.raw) & ftable.reserved_mask
    if kind == "table":
        decoded = f"table -> {fmt_addr(e.address)}"
        if e.allows is not None:
            decoded += f"  allows {f.perm_text(e.allows)}"
        target = e.address
    elif kind == "leaf":
        decoded = f"leaf: {fmt_size(e.size)} page at {fmt_addr(e.address)}  {e.perm_text or f.perm_text(e.perm)}"
        target = e.address
    elif kind == "empty":
        decoded = "not present"
        target = None
    else:
        decoded = kind
        target = None
    parts = []
    for name, bits, value in ftable.rows(s.raw):
        if value:
            parts.append(f"{name}={value:#x}" if name in ("ADDR", "PPN", "RPN") or value > 9 else f"{name}={value}")
    fields = " ".join(parts) or "all fields 0"
    if reserved:
        fields += f"  reserved bits {reserved:#x}"
    cat = "walk-fault" if fault else level_category(s.level)
    return WalkRow(s.level, s.name, s.table, s.index, s.entry_address, s.read_address, s.raw, fmt_raw(s.raw), kind,
                   decoded, fields, reserved, target, cat, fault)


def walk_data(w: Any, *, title: str | None = None) -> WalkData:
    """What ``walk(w)`` draws, as plain data (no matplotlib)."""
    f = w.fmt
    fault = w.fault
    rows: list[WalkRow] = []
    for i, s in enumerate(w.steps):
        is_fault = fault is not None and i == len(w.steps) - 1 and fault.level == s.level
        rows.append(_row(f, s, is_fault))
    if fault is not None and fault.level is not None and not any(r.fault for r in rows):
        # The entry was never read (its table address did not translate or is outside memory).
        table = rows[-1].target if rows and rows[-1].target is not None else w.root
        idx = f.index(fault.level, w.iova)
        rows.append(WalkRow(fault.level, f.level_name(fault.level), table, idx, table + idx * f.entry_size,
                            table + idx * f.entry_size, None, "(not read)", "not read", fault.reason.value,
                            "", 0, None, "walk-fault", True))
    arrows = []
    for i, r in enumerate(rows[:-1]):
        if r.kind == "table":
            arrows.append((i, i + 1, r.target))
    if w.ok and rows:
        arrows.append((len(rows) - 1, "result", w.result.page_base))
    if w.ok:
        r = w.result
        result_text = (f"PA {fmt_addr(r.pa)} = page {fmt_addr(r.page_base)} + offset {fmt_addr(r.pa - r.page_base)}"
                       f"   ({fmt_size(r.size)} {f.level_name(r.level)} leaf, {f.perm_text(r.perm)})")
        fault_text = ""
    else:
        where = f" at {f.level_name(fault.level)}" if fault.level is not None else " before the first read"
        result_text = f"FAULT{where}: {fault.reason.value}"
        fault_text = fault.message
    t = title or f"Walk of IOVA {fmt_addr(w.iova)} in {f.name}: {plural(w.references, 'memory reference')}"
    return WalkData(t, w.iova, f.name, _bit_fields(w), rows, arrows, w.ok, w.pa, result_text,
                    fault.level if fault else None, fault.reason.value if fault else None, fault_text, w.references)


# -- drawing -----------------------------------------------------------------------------------
ROW_H = 1.0
BAR_Y = 0.0
X_LEVEL, X_TABLE, X_INDEX, X_RAW, X_DEC, X_END = 0.0, 15.0, 26.0, 31.5, 52.0, 100.0


def _size(data: WalkData) -> tuple[float, float]:
    return (_style.FIG_WIDTH, 2.4 + 0.62 * (len(data.rows) + 1))


def walk(w: Any, *, ax=None, filename: str | os.PathLike | None = None, style: str = "light",
         title: str | None = None, figsize: tuple[float, float] | None = None):
    """Draw one page-table walk: the IOVA's bit fields, every entry read, the result or fault.

    Parameters
    ----------
    w : pagetable.Walk
        From ``PageTable.walk(iova)``.
    ax : matplotlib Axes, optional
        Draw into this Axes (its figure is returned); default: a new ``Figure`` (OO API).
    filename : str or path, optional
        Also save; the suffix picks SVG, PNG (200 dpi) or PDF.
    style : {"light", "dark"}
    title : str, optional
    figsize : (float, float), optional
        Default 12 wide, height from the number of rows.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return figure(WALK, w, ax=ax, filename=filename, style=style, figsize=figsize, title=title).figure


def _rect(ax, x, y, w, h, cat_key: str, th, *, gid: str, lw=0.8, edge=None, face=None, zorder=2):
    from matplotlib.patches import Rectangle

    cat = _style.category(cat_key)
    fc = face or cat.face(th)
    r = Rectangle((x, y), w, h, facecolor=fc, edgecolor=edge or th.muted, linewidth=lw, hatch=cat.hatch or None,
                  zorder=zorder, gid=gid)
    if cat.hatch:
        r.set_hatchcolor(_style.hatch_color(fc))
    ax.add_patch(r)
    return r


def _label_box(th):
    return dict(boxstyle="round,pad=0.18", facecolor=th.axes_background, edgecolor="none")


def draw_walk(ax, data: WalkData, th: _style.Theme, *, owns_figure: bool = True) -> dict:
    """Draw ``data`` into ``ax``; returns the fields, arrows and row positions drawn."""
    from matplotlib.patches import FancyArrowPatch

    mono = th.mono_family
    fs, ss = th.font_size, th.small_size
    fault_face = _style.category("walk-fault").face(th)

    # -- the bit-field bar: bit 63 at the left, bit 0 at the right ---------------------------------
    cell = X_END / 64.0
    bar_h = 0.8
    y_bar = BAR_Y
    drawn_fields = []
    for i, bf in enumerate(data.fields):
        x0 = (63 - bf.hi) * cell
        wdt = bf.width * cell
        edge = fault_face if bf.fault else th.muted
        _rect(ax, x0, y_bar, wdt, bar_h, bf.category, th, gid=f"walk:field:{bf.kind}", lw=2.2 if bf.fault else 0.8,
              edge=edge, zorder=3 if bf.fault else 2)
        drawn_fields.append((bf, x0, x0 + wdt))
        cx = x0 + wdt / 2
        # Label above, value inside (on a background box so the hatch never hides it).
        above = bf.label if wdt >= 9 or bf.kind != "high" else f"[63:{bf.lo}]"
        ax.text(cx, y_bar + bar_h + 0.12 + (0.42 if (i % 2 and wdt < 13 and bf.kind == "level") else 0.0), above,
                ha="center", va="bottom", fontsize=ss, color=th.foreground, gid="walk:field-label")
        val = fmt_addr(bf.value) if bf.kind != "level" else f"{bf.value}"
        if bf.kind == "high" and bf.value == 0:
            val = "0"
        ax.text(cx, y_bar + bar_h / 2, val, ha="center", va="center", fontsize=ss, family=mono, color=th.foreground,
                bbox=_label_box(th), zorder=4, gid="walk:field-value")
        ax.text(x0, y_bar - 0.08, str(bf.hi), ha="left", va="top", fontsize=ss, color=th.muted, gid="walk:bit")
    ax.text(X_END, y_bar - 0.08, "0", ha="right", va="top", fontsize=ss, color=th.muted, gid="walk:bit")
    for bf, x0, x1 in drawn_fields:
        if bf.fault:
            ax.text((x0 + x1) / 2, y_bar - 0.08, "fault here", ha="center", va="top", fontsize=ss, weight="bold",
                    color=fault_face, gid="walk:field-fault")

    # -- one row per entry --------------------------------------------------------------------------
    y0 = y_bar - 1.25
    heads = (("level", X_LEVEL), ("table", X_TABLE), ("index", X_INDEX), ("raw entry", X_RAW), ("decoded", X_DEC))
    for text, x in heads:
        ax.text(x + 0.3, y0 + 0.05, text, ha="left", va="bottom", fontsize=ss, color=th.muted, style="italic",
                gid="walk:head")
    row_y = []
    for k, r in enumerate(data.rows):
        y = y0 - (k + 1) * ROW_H
        row_y.append(y)
        h = ROW_H * 0.78
        yc = y + h / 2
        # Level chip in the level's colour and hatch (the fault's when it faulted here).
        _rect(ax, X_LEVEL, y, X_TABLE - X_LEVEL - 0.8, h, r.category, th, gid="walk:row-level",
              lw=2.0 if r.fault else 0.8, edge=fault_face if r.fault else None)
        ax.text((X_LEVEL + X_TABLE - 0.8) / 2, yc, r.name, ha="center", va="center", fontsize=ss,
                color=th.foreground, bbox=_label_box(th), zorder=4, gid="walk:row-name")
        # The rest of the row on a plain band (opaque), outlined in the fault colour on a fault.
        from matplotlib.patches import Rectangle

        band = Rectangle((X_TABLE, y), X_END - X_TABLE, h, facecolor=th.break_fill,
                         edgecolor=fault_face if r.fault else th.grid, linewidth=2.0 if r.fault else 0.6, zorder=1,
                         gid="walk:row")
        ax.add_patch(band)
        ax.text(X_TABLE + 0.4, yc, fmt_addr(r.table), ha="left", va="center", fontsize=ss, family=mono,
                color=th.foreground, gid="walk:row-table", zorder=3)
        ax.text(X_INDEX + 0.4, yc, f"[{r.index}]", ha="left", va="center", fontsize=ss, family=mono,
                color=th.foreground, gid="walk:row-index", zorder=3)
        ax.text(X_RAW + 0.4, yc, r.raw_text, ha="left", va="center", fontsize=ss, family=mono, color=th.foreground,
                gid="walk:row-raw", zorder=3)
        ax.text(X_DEC + 0.4, yc + h * 0.2, r.decoded, ha="left", va="center", fontsize=ss,
                color=fault_face if r.fault and th.name == "dark" else th.foreground,
                weight="bold" if r.fault else "normal", gid="walk:row-decoded", zorder=3)
        ax.text(X_DEC + 0.4, yc - h * 0.24, r.fields, ha="left", va="center", fontsize=ss, family=mono,
                color=th.muted, gid="walk:row-fields", zorder=3)

    # -- the end: result or fault -------------------------------------------------------------------
    y_end = y0 - (len(data.rows) + 1) * ROW_H - 0.15
    h = ROW_H * 0.78
    cat = "walk-result" if data.ok else "walk-fault"
    _rect(ax, X_LEVEL, y_end, X_TABLE - X_LEVEL - 0.8, h, cat, th, gid=f"walk:{'result' if data.ok else 'fault'}",
          lw=1.2)
    ax.text((X_LEVEL + X_TABLE - 0.8) / 2, y_end + h / 2, "result" if data.ok else "FAULT", ha="center", va="center",
            fontsize=fs, weight="bold", color=th.foreground, bbox=_label_box(th), zorder=4, gid="walk:end-chip")
    ax.text(X_TABLE + 0.4, y_end + h / 2 + (0.17 if data.fault_text else 0.0), data.result_text, ha="left",
            va="center", fontsize=fs, family=mono if data.ok else None, weight="bold",
            color=th.foreground, gid="walk:end-text")
    if data.fault_text:
        ax.text(X_TABLE + 0.4, y_end + h / 2 - 0.25, data.fault_text, ha="left", va="center", fontsize=ss,
                color=th.foreground, gid="walk:fault-reason")

    # -- arrows: entry -> the table it points at (its next row), leaf -> result ----------------------
    # Each arrow leaves the entry's decoded target, runs left in the gap under its row and
    # drops into the next row's table column, so it never crosses a row's text.
    from matplotlib.path import Path

    arrow_color = th.foreground
    drawn_arrows = []
    for i, j, target in data.arrows:
        xa, ya = X_DEC + 1.2, row_y[i]
        xb = X_TABLE + 5.0
        yb = (y_end + h) if j == "result" else row_y[j] + h
        ygap = (ya + yb) / 2
        path = Path([(xa, ya), (xa, ygap), (xb, ygap), (xb, yb)], [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO])
        arr = FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=8, color=arrow_color, lw=0.9, zorder=5,
                              gid="walk:arrow", shrinkA=0, shrinkB=0)
        ax.add_patch(arr)
        drawn_arrows.append((i, j, target, (xa, ya), (xb, yb)))

    ax.set_xlim(-0.5, X_END + 0.5)
    ax.set_ylim(y_end - 0.35, y_bar + bar_h + 0.75)
    ax.set_axis_off()
    ax.set_title(_style.wrap(data.title, th), fontsize=th.title_size, color=th.foreground, loc="left")
    return {"fields": drawn_fields, "arrows": drawn_arrows, "row_y": row_y}


#: The walk figure: ``walk_data`` drawn by ``draw_walk``.
WALK = Renderer("walk", walk_data, draw_walk, _size)
register(walk, "mpl", Walk)
