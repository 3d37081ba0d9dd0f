"""The design-review comparison: one workload on several platforms, as a table and a figure.

``compare_table(platforms, workload)`` computes, for each platform and page-size policy, what
``Workload.cost`` measures on the real models -- whether the workload fits the IOVA the
platform permits, page-table memory, the page-size mix, and the page-table references of an
IOTLB miss natively and nested -- as a ``pandas.DataFrame``. ``compare(platforms, workload)``
draws that frame (and nothing else) as four panels sharing one platform axis:

(a) fits: the workload's bytes inside and outside the permitted IOVA;
(b) page-table memory per policy (log scale);
(c) page-size mix under the "largest" policy;
(d) walk references of a cold miss, native and nested, per policy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import iommu_lab.render.style as _style
from iommu_lab.core.ranges import fmt_size
from iommu_lab.core.words import plural
from iommu_lab.render.draw import Renderer, figure, register
from iommu_lab.render.pagetable import pgsize_category
from iommu_lab.review.workload import POLICIES, Workload, compare_table, size_label

__all__ = ["compare", "compare_data", "draw_compare", "COMPARE", "CompareData", "compare_table", "size_label"]

# "Inside" is drawn as an empty outline: no fill colour, so no other meaning can share its look.
_style.register_category("cmp-inside", "inside the permitted IOVA (outline)", "theme:axes_background", "", "compare")
_style.register_category("cmp-outside", "outside (does not fit)", _style.OKABE_ITO["vermillion"], "xx", "compare")
# One colour per meaning across the four panels: the 4 KiB policy wears the 4 KiB page look of
# panel (c) (both mean "every page is 4 KiB"), "largest pages allowed" the only grey (its page
# sizes are panel (c)'s colours), and nested walks differ from native ones by hatch only, in the
# policy's colour.
_style.register_category("cmp-policy-4K", "4 KiB pages (in (b), (d): every page 4 KiB)",
                         _style.category(_style.pgsize_category(4096)).color, "", "compare")
_style.register_category("cmp-policy-largest", "largest pages allowed", "theme:outside", "", "compare")
_style.register_category("cmp-native", "native (one stage)", "theme:axes_background", "", "compare")
_style.register_category("cmp-nested", "nested (2-D walk): hatched", "theme:axes_background", "xx", "compare")


@dataclass(frozen=True)
class CompareData:
    """What the comparison figure draws: the ``compare_table`` frame, its platforms and title."""

    frame: Any  # pandas.DataFrame, one row per (platform, policy)
    platforms: list[str]
    title: str


def compare_data(workload: Workload, *, platforms: Sequence[Any] = (), policies: Sequence[str] = POLICIES,
                 frame=None, title: str | None = None) -> CompareData:
    """What ``compare(platforms, workload)`` draws (``frame``: a ``compare_table`` to reuse)."""
    df = frame if frame is not None else compare_table(platforms, workload, policies=policies)
    names = list(dict.fromkeys(df["platform"]))
    ram = sum(r.size for r in workload.guest_ram)
    bars = sum(r.size for r in workload.bars)
    head = title or (f"{workload.name}: {fmt_size(ram, approx=True)} RAM in {plural(len(workload.guest_ram), 'bank')}"
                     + (f" + {fmt_size(bars, approx=True)} of BARs" if bars else "") + f", on {plural(len(names), 'platform')}")
    return CompareData(df, names, head)


#: Bars per platform row in each panel with the two default policies: (b) one per policy, (d) a
#: native and a nested one per policy.
BARS_PER_ROW = (1, 2, 1, 4)
#: Height of one bar's slot: a 10 pt value label with its padding (about 14 pt) and a gap, so the
#: label written beside a bar never reaches the bar or label of the next slot.
SLOT_IN = 0.22
#: Each panel's title, x tick labels and margins.
PANEL_OVERHEAD_IN = 0.6
#: Room for a platform's name on a one-bar row (a 10 pt tick label and its gap).
ROW_MIN_IN = 0.3


def _panel_heights(n: int) -> list[float]:
    return [PANEL_OVERHEAD_IN + n * max(ROW_MIN_IN, bars * SLOT_IN) for bars in BARS_PER_ROW]


#: Panel heights for a typical six-platform review; the grid keeps these proportions.
HEIGHT_RATIOS = tuple(round(h / _panel_heights(6)[0], 2) for h in _panel_heights(6))


def _size(data: CompareData) -> tuple[float, float]:
    # The figure's title and legend above and below the panels.
    return (_style.FIG_WIDTH, 1.9 + sum(_panel_heights(len(data.platforms))))


def _panels(ax, *, owns_figure: bool) -> list:
    """Four panels sharing the platform axis: a new figure's grid, a sub-grid in ``ax``'s slot,
    or four insets of an Axes placed by hand."""
    if owns_figure:
        fig = ax.figure
        fig.delaxes(ax)
        return list(fig.subplots(4, 1, sharey=True, height_ratios=HEIGHT_RATIOS).ravel())
    if ax.get_subplotspec() is not None:
        spec = ax.get_subplotspec()
        parent = ax.figure
        parent.delaxes(ax)
        gs = spec.subgridspec(4, 1, height_ratios=HEIGHT_RATIOS)
        first = parent.add_subplot(gs[0])
        return [first] + [parent.add_subplot(gs[i], sharey=first) for i in range(1, 4)]
    ax.set_axis_off()
    boxes = ((0.0, 0.78), (0.0, 0.52), (0.0, 0.26), (0.0, 0.0))
    first = ax.inset_axes([*boxes[0], 1.0, 0.2])
    return [first] + [ax.inset_axes([*b, 1.0, 0.2], sharey=first) for b in boxes[1:]]


def compare(platforms: Sequence[Any], workload: Workload, *, ax=None, filename: str | os.PathLike | None = None,
            style: str = "light", title: str | None = None, policies: Sequence[str] = POLICIES,
            frame=None, figsize: tuple[float, float] | None = None):
    """Draw one workload on several platforms: fit, table memory, page-size mix, walk references.

    Parameters
    ----------
    platforms : sequence of Platform or platform names
    workload : Workload
    ax : matplotlib Axes, optional
        Draw the four panels in this Axes' place (its figure is returned).
    filename : str or path, optional
        Also save; the suffix picks SVG, PNG (200 dpi) or PDF.
    style : {"light", "dark"}
    title : str, optional
    policies : sequence of {"4K", "largest"}
    frame : DataFrame, optional
        A ``compare_table`` result to draw instead of recomputing it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return figure(COMPARE, workload, ax=ax, filename=filename, style=style, figsize=figsize, platforms=platforms,
                  policies=policies, frame=frame, title=title).figure


def draw_compare(axes, data: CompareData, th: _style.Theme, *, owns_figure: bool = True) -> dict:
    """Draw ``data`` into the four panels; returns the values drawn per panel."""
    drawn = _draw(axes, data.frame, data.platforms, th)
    _figure_legend(axes, drawn.pop("legend"), th, owns_figure=owns_figure)
    _style.root_figure(axes[0]).suptitle(_style.wrap(data.title, th), fontsize=th.title_size, color=th.foreground, x=0.01, ha="left")
    return {"frame": data.frame, "platforms": data.platforms, **drawn}


def _bar(a, y, width, key, th, *, left=0.0, height=0.36, gid=""):
    cat = _style.category(key)
    face = cat.face(th)
    # A bar without fill is an outline: its edge is drawn in the foreground so it reads as a bar.
    empty = face == th.axes_background and not cat.hatch
    bars = a.barh(y, width, left=left, height=height, color=face, edgecolor=th.foreground if empty else th.muted,
                  linewidth=1.0 if empty else 0.5, hatch=cat.hatch or None, gid=gid)
    if cat.hatch:
        for b in bars:
            b.set_hatchcolor(_style.hatch_color(face))
    return bars


def _figure_legend(axes, keys, th, *, owns_figure: bool):
    """One legend for the four panels: each colour or hatch has one meaning in all of them."""
    from matplotlib.patches import Patch

    hs = []
    for k in dict.fromkeys(keys):
        cat = _style.category(k)
        face = cat.face(th)
        h = Patch(facecolor=face, edgecolor=th.foreground, lw=0.5, hatch=cat.hatch or None, label=cat.label)
        if cat.hatch:
            h.set_hatchcolor(th.foreground if face == th.axes_background else _style.hatch_color(face))
        hs.append(h)
    if owns_figure:
        leg = _style.root_figure(axes[0]).legend(handles=hs, loc="outside lower center", ncols=3,
                                                 fontsize=th.small_size, frameon=False)
    else:
        leg = axes[-1].legend(handles=hs, loc="upper left", bbox_to_anchor=(0.0, -0.15), ncols=3,
                              fontsize=th.small_size, frameon=True)
    leg.set_gid("compare:legend")
    return leg


def _note(a, x, y, text, th, *, ha="left"):
    a.text(x, y, text, ha=ha, va="center", fontsize=th.small_size, color=th.foreground, gid="compare:value",
           bbox=dict(boxstyle="round,pad=0.12", facecolor=th.axes_background, edgecolor="none"))


def _draw(axes, df, names, th) -> dict:
    y = np.arange(len(names))[::-1].astype(float)
    ypos = dict(zip(names, y))
    pols = list(dict.fromkeys(df["policy"]))
    first = df.drop_duplicates("platform").set_index("platform")
    drawn: dict[str, Any] = {"fits": {}, "table_bytes": {}, "mix": {}, "refs": {}}
    legend: list[str] = ["cmp-inside"]

    # (a) fit
    a = axes[0]
    for name in names:
        r = first.loc[name]
        total = int(r["bytes_total"])
        out = int(r["bytes_outside"])
        inside = (total - out) / total
        _bar(a, ypos[name], inside, "cmp-inside", th, height=0.6, gid="compare:inside")
        if out:
            _bar(a, ypos[name], out / total, "cmp-outside", th, left=inside, height=0.6, gid="compare:outside")
        _note(a, 1.02, ypos[name], "fits" if not out else f"{fmt_size(out, approx=True)} outside", th)
        drawn["fits"][name] = (bool(r["fits"]), out)
        if out:
            legend.append("cmp-outside")
    a.set_xlim(0, 1.3)
    a.set_xticks([0, 0.5, 1.0], ["0", "50%", "100%"])
    a.set_yticks(y, names, fontsize=th.small_size)
    a.set_title("(a) share of guest memory inside the permitted IOVA (DMA address = guest-physical)",
                fontsize=th.font_size, loc="left", color=th.foreground)

    # (b) table memory, log scale
    a = axes[1]
    k = len(pols)
    hb = 0.8 / k
    vals = [int(v) for v in df["table_bytes"].dropna()] or [4096]
    lo = 2 ** math.floor(math.log2(max(min(vals), 1)))
    hi = 2 ** math.ceil(math.log2(max(vals))) * 64
    by_pol = {pol: df[df["policy"] == pol].set_index("platform") for pol in pols}
    for name in names:
        cells = {}
        for i, pol in enumerate(pols):
            v = by_pol[pol].loc[name, "table_bytes"]
            if v is None or v is np.nan or str(v) == "<NA>":
                continue
            cells[pol] = (i, int(v), int(by_pol[pol].loc[name, "table_pages"]))
        if not cells:
            _note(a, lo * 1.1, ypos[name], "no page table (map/unmap requests only)", th)
            continue
        for pol, (i, v, _pages) in cells.items():
            yy = ypos[name] + (k - 1) / 2 * hb - i * hb
            _bar(a, yy, v - lo, f"cmp-policy-{pol}", th, left=lo, height=hb * 0.9, gid=f"compare:tables:{pol}")
            drawn["table_bytes"][(name, pol)] = v
        # One label per distinct value: policies that built the same table share it.
        if len(cells) > 1 and len({c[1:] for c in cells.values()}) == 1:
            _, v, pages = next(iter(cells.values()))
            _note(a, v * 1.15, ypos[name], f"{_table_text(v, pages)} under every policy", th)
            continue
        for pol, (i, v, pages) in cells.items():
            _note(a, v * 1.15, ypos[name] + (k - 1) / 2 * hb - i * hb, _table_text(v, pages), th)
    a.set_xscale("log", base=2)
    a.set_xlim(lo, hi)
    a.xaxis.set_major_formatter(_BytesFormatter())
    a.set_title("(b) page-table memory (log scale)", fontsize=th.font_size, loc="left", color=th.foreground)
    legend += [f"cmp-policy-{p}" for p in pols]

    # (c) page-size mix, "largest" policy (or the last one)
    a = axes[2]
    pol = "largest" if "largest" in pols else pols[-1]
    sub = df[df["policy"] == pol].set_index("platform")
    sizes = df.attrs.get("mix_sizes") or sorted(int(c[4:].rstrip("KMGT")) for c in df.columns if c.startswith("mix_"))
    used_keys = []
    for name in names:
        row = sub.loc[name]
        tot = sum(int(row[f"mix_{size_label(s)}"]) for s in sizes)
        left = 0.0
        if not tot:
            _note(a, 0.02, ypos[name], "no page table", th)
            continue
        for s in sizes:
            b = int(row[f"mix_{size_label(s)}"])
            if not b:
                continue
            key = pgsize_category(s)
            if key not in used_keys:
                used_keys.append(key)
            _bar(a, ypos[name], b / tot, key, th, left=left, height=0.6, gid=f"compare:mix:{s:#x}")
            if b / tot > 0.12:
                _note(a, left + b / tot / 2, ypos[name], fmt_size(s), th, ha="center")
            drawn["mix"][(name, s)] = b / tot
            left += b / tot
    a.set_xlim(0, 1.0)
    a.set_xticks([0, 0.5, 1.0], ["0", "50%", "100%"])
    a.set_yticks(y, names, fontsize=th.small_size)
    a.set_title(f"(c) bytes by page size ({'largest pages allowed' if pol == 'largest' else pol})",
                fontsize=th.font_size, loc="left", color=th.foreground)
    used_keys.sort(key=lambda k: int(k.split("-", 1)[1], 16))
    # The 4 KiB look already has its legend entry (the 4 KiB policy): one entry per swatch.
    legend += [k for k in used_keys if k != _style.pgsize_category(4096) or "cmp-policy-4K" not in legend]

    # (d) walk references: native and nested, per policy
    a = axes[3]
    series = [(pol, kind) for pol in pols for kind in ("native", "nested")]
    hb = 0.84 / len(series)
    vmax = 1.0
    for j, (pol, kind) in enumerate(series):
        sub = df[df["policy"] == pol].set_index("platform")
        for name in names:
            yy = ypos[name] + (len(series) - 1) / 2 * hb - j * hb
            v = sub.loc[name, f"{kind}_refs"]
            if v is None or (isinstance(v, float) and math.isnan(v)) or str(v) == "<NA>":
                if kind == "nested" and j == 1:
                    native = [float(x) for x in df[df["platform"] == name]["native_refs"].dropna()]
                    _note(a, max(native, default=0.0) + 2.5, yy, "nested: " + str(sub.loc[name, "nested_note"])[:60],
                          th)
                continue
            v = float(v)
            vmax = max(vmax, v)
            bars = _bar(a, yy, v, f"cmp-policy-{pol}", th, height=hb * 0.9, gid=f"compare:refs:{kind}:{pol}")
            if kind == "nested":
                face = _style.category(f"cmp-policy-{pol}").face(th)
                for b in bars:
                    b.set_hatch("xx")
                    b.set_hatchcolor(_style.hatch_color(face))
            _note(a, v + 0.3, yy, f"{v:.3g}", th)
            drawn["refs"][(name, pol, kind)] = v
    a.set_xlim(0, vmax * 1.3 + 1)
    a.set_title("(d) page-table references per IOTLB miss, cold walk (plain: native, hatched: nested)",
                fontsize=th.font_size, loc="left", color=th.foreground)
    if any(k[2] == "nested" for k in drawn["refs"]):
        legend.append("cmp-nested")
    drawn["legend"] = legend
    return drawn


def _table_text(nbytes: int, pages: int) -> str:
    return f"{fmt_size(nbytes, approx=True)} ({plural(pages, 'page')})"


class _BytesFormatter:
    """Log-axis tick labels in binary units (matplotlib Formatter protocol)."""

    def __new__(cls):
        from matplotlib.ticker import FuncFormatter

        return FuncFormatter(lambda v, _pos: fmt_size(int(v), approx=True) if v >= 1 else "")


def _plot_workload(workload: Workload, platforms: Sequence[Any], **kwargs: Any):
    """``workload.plot(platforms)``: the comparison figure of the workload on ``platforms``."""
    return compare(platforms, workload, **kwargs)


#: The comparison figure: ``compare_data`` drawn by ``draw_compare`` in four panels.
COMPARE = Renderer("compare", compare_data, draw_compare, _size, panels=_panels)
register(_plot_workload, "mpl", Workload)
