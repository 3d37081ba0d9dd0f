"""Stage 1 over stage 2: the 2-D walk reference by reference, and what shadowing costs."""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from iommu_lab.core.ranges import fmt_addr
from iommu_lab.core.words import plural
from iommu_lab.hardware import formats
from iommu_lab.hardware.platform import platforms
from iommu_lab.nesting.nested import Nested, nested_walk_refs
from iommu_lab.nesting.shadow import DmaPattern, compare_costs
from iommu_lab.render.html import CSS, esc, table_html
from iommu_lab.render.nested import grid_labels
from iommu_lab.render.nested import nested_walk as draw_nested_walk
from iommu_lab.widgets.common import (
    AddressInput,
    ErrorView,
    FigureView,
    action_button,
    close_tree,
    not_replayed,
    reporting,
)
from iommu_lab.widgets.walk import common_first

__all__ = ["DEFAULT_STAGE1", "DEFAULT_STAGE2", "DEMO_MAPPINGS", "NestingExplorer"]

DEFAULT_STAGE1 = "x86-64-4level"
DEFAULT_STAGE2 = "vtd-ss-4level"
#: What a fresh explorer's guest maps (IOVA -> GPA inside the default 16 MiB of guest RAM):
#: a 4 KiB page (the full 2-D walk) and a 2 MiB page (one stage-1 row shorter).
DEMO_MAPPINGS: tuple[tuple[int, int, int, str], ...] = (
    (0x0000_1000, 0x0010_0000, 0x1000, "rw"),
    (0x0020_0000, 0x0040_0000, 0x20_0000, "rw"),
)
DEFAULT_IOVA = "0x1234"
_NO_PLATFORM = "(formats below)"


# -- the 2-D grid as HTML (presentation only: positions come from the walk's references) ------

_CUR = "background: var(--jp-brand-color1, #1976d2); color: white; font-weight: bold;"
_DONE = "background: var(--jp-brand-color3, #c3e1fa); color: var(--jp-ui-font-color0, #000);"
_S1 = "background: var(--jp-warn-color3, #ffe0b2); color: var(--jp-ui-font-color0, #000);"


def grid_html(nw: Any, current: int, fmt1: Any = None, fmt2: Any = None) -> str:
    """The 2-D walk grid: rows are stage-1 steps (then the output GPA), columns stage-2 steps
    (then the stage-1 entry read); each cell holds the reference's order, ``current`` lit.

    Row and column names are the figure's (``render.nested.grid_labels``), so the grid, the
    figure and the walk's text give one reference one name."""
    grid = nw.grid()
    rows, cols = grid.shape
    row_labels, col_labels = grid_labels(nw, (fmt1, fmt2))

    def col_head(j: int) -> str:
        return col_labels[j].replace("\n", " ")

    def row_head(i: int) -> str:
        return row_labels[i].replace("\n", " ")

    head = "<tr><th></th>" + "".join(f"<th>{esc(col_head(j))}</th>" for j in range(cols)) + "</tr>"
    body = []
    for i in range(rows):
        cells = []
        for j in range(cols):
            k = int(grid[i, j])
            if k == 0:
                cells.append("<td class='il-muted'>·</td>")
                continue
            seq = k - 1
            style = (
                _CUR
                if seq == current
                else (_DONE if seq < current else (_S1 if j == cols - 1 else ""))
            )
            cells.append(f"<td style='text-align:center; {style}'>{k}</td>")
        body.append(f"<tr><th>{esc(row_head(i))}</th>{''.join(cells)}</tr>")
    cfg = [r for r in nw.refs if r.row < 0]
    extra = (
        f"<div class='il-muted'>+ {plural(len(cfg), 'PASID-structure read')} before the grid</div>"
        if cfg
        else ""
    )
    return (
        f"{CSS}<div class='il-repr'><div class='il-title'>2-D walk grid (reference order)</div>"
        f"<table>{head}{''.join(body)}</table>{extra}</div>"
    )


def ref_html(nw: Any, i: int) -> str:
    """One reference: what was read, where, why, and what it decoded to."""
    if not nw.refs:
        return f"{CSS}<div class='il-repr il-muted'>no memory reference was made</div>"
    r = nw.refs[i]
    decoded = " ".join(
        f"{k}={v:#x}" if isinstance(v, int) and v > 9 else f"{k}={v}"
        for k, v in dict(r.decoded).items()
        if v
    )
    pos = f"grid ({r.row}, {r.col})" if r.row >= 0 else "PASID structures"
    gpa = f", for GPA {esc(fmt_addr(r.gpa))}" if r.gpa is not None else ""
    return (
        f"{CSS}<div class='il-repr'><div class='il-title'>reference {i + 1} of {len(nw.refs)}: "
        f"{esc(r.label)} at {esc(pos)}</div>"
        f"<div>{esc(r.purpose)}{gpa}</div>"
        f"<div>read {esc(fmt_addr(r.address))} = <b>{r.raw:#018x}</b></div>"
        f"<div class='il-muted'>{esc(decoded) or 'all fields zero'}</div></div>"
    )


class NestingExplorer(W.VBox):
    """A guest stage-1 table nested on a host stage-2 table: the 2-D walk, step by step.

    Pick a platform (``Nested.for_platform``) or the two formats (``Nested.build``), let the
    guest map IOVA -> GPA, and walk an IOVA: every stage-1 table pointer is a GPA that stage 2
    translates first, so the grid fills row by row. The costs compare hardware nesting with a
    VMM's shadow table (``nested.shadow()``, ``shadow.compare_costs``).

    Parameters
    ----------
    nested : Nested, optional
        The pair to explore; default: ``Nested.build("x86-64-4level", "vtd-ss-4level")`` with
        ``DEMO_MAPPINGS``.
    iova : str (default: "0x1234")

    Attributes
    ----------
    nested: Nested
        The model; replaced (guest mappings replayed) when formats or platform change.
    walk: NestedWalk or None
        The last ``nested.walk(iova)``.
    shadow: ShadowNesting or None
        ``nested.shadow()`` of the current mappings, walked once at the IOVA.
    platform_picker: ipywidgets.Dropdown (default: "(formats below)")
        A platform whose hardware-nesting pair to use; refusals (POWER, virtio-iommu) show inline.
    stage1_picker, stage2_picker: ipywidgets.Dropdown (default: "x86-64-4level", "vtd-ss-4level")
        Stage-1 formats and stage-2 (nest parent) formats.
    map_iova_input, map_gpa_input: AddressInput
    map_size_input: AddressInput (default: "4K", a size)
    map_button: ipywidgets.Button
        ``nested.map(iova, gpa, size)``: the guest writes its stage-1 table.
    iova_input: AddressInput (default: "0x1234"; CSS class ``il-nesting-iova``)
        The IOVA walked, on submit.
    access_picker: ipywidgets.Dropdown (default: "r")
    ref_slider: ipywidgets.IntSlider
        The reference highlighted (0 = the first read).
    play: ipywidgets.Play
        Animates ``ref_slider`` in the browser.
    prev_button, next_button: ipywidgets.Button
    summary: ipywidgets.HTML
        Result (IOVA -> GPA -> HPA, or the fault with its owner), reference counts, formula.
    grid_view: ipywidgets.HTML
        The 2-D grid, the current reference lit.
    ref_view: ipywidgets.HTML
        The current reference: address read, raw value, purpose, decoded fields.
    refs_table: ipywidgets.HTML
        Every reference (the walk's own table).
    figure_view: FigureView
        ``render.nested_walk(walk)`` of the last walk (hidden before the first).
    style_picker: ipywidgets.ToggleButtons (default: "light")
        The figure's style, ``"light"`` or ``"dark"``.
    costs: ipywidgets.HTML
        This IOVA: 2-D walk references vs the shadow's native walk, and the shadow's map-time costs.
    workload_picker: ipywidgets.ToggleButtons (default: "dynamic")
    compare_button: ipywidgets.Button
        Run ``compare_costs`` for the workload on the current formats.
    compare_table: ipywidgets.HTML
    walk_view: ipywidgets.VBox (CSS class ``il-nesting-view``)
    error: ErrorView
    """

    def __init__(self, nested: Any = None, *, iova: str = DEFAULT_IOVA, **kwargs: Any) -> None:
        self._log: list[tuple[int, int, int, str]] = []
        if nested is None:
            nested = Nested.build(DEFAULT_STAGE1, DEFAULT_STAGE2)
            for m in DEMO_MAPPINGS:
                nested.map(*m[:3], prot=m[3])
                self._log.append(m)
        self.nested = nested
        self.walk: Any = None
        self._walk_of: Any = None
        self.stale = ""
        self._summary_value = ""
        self.shadow: Any = None
        self._quiet = False

        names = formats.names()
        stage1 = common_first([n for n in names if formats.get(n).stage == 1])
        stage2 = common_first([n for n in names if formats.get(n).stage == 2])
        f1, f2 = nested.stage1.fmt.name, nested.stage2.fmt.name
        stage1 += [f1] if f1 not in stage1 else []
        stage2 += [f2] if f2 not in stage2 else []
        self.platform_picker = W.Dropdown(
            options=[_NO_PLATFORM] + platforms.names(), value=_NO_PLATFORM, description="platform"
        )
        self.platform_picker.add_class("il-nesting-platform")
        self.stage1_picker = W.Dropdown(options=stage1, value=f1, description="stage 1")
        self.stage1_picker.add_class("il-nesting-stage1")
        self.stage2_picker = W.Dropdown(options=stage2, value=f2, description="stage 2")
        self.stage2_picker.add_class("il-nesting-stage2")
        self.pair_info = W.HTML()
        self.pair_info.add_class("il-nesting-pair")

        self.map_iova_input = AddressInput(
            "0x40_0000", label="iova", css_class="il-nesting-map-iova"
        )
        self.map_gpa_input = AddressInput("0x80_0000", label="gpa", css_class="il-nesting-map-gpa")
        self.map_size_input = AddressInput(
            "4K", kind="size", label="size", css_class="il-nesting-map-size"
        )
        self.map_button = action_button(
            "Guest map", "il-nesting-map", "nested.map(iova, gpa, size)"
        )

        self.iova_input = AddressInput(iova, label="iova", css_class="il-nesting-iova")
        self.access_picker = W.Dropdown(
            options=[("read", "r"), ("write", "w")],
            value="r",
            description="access",
            layout=W.Layout(width="12em"),
            style={"description_width": "initial"},
        )
        self.access_picker.add_class("il-nesting-access")
        self.walk_button = action_button("Walk", "il-nesting-walk", "nested.walk(iova)", "primary")

        self.ref_slider = W.IntSlider(
            value=0, min=0, max=0, description="reference", continuous_update=False
        )
        self.ref_slider.add_class("il-nesting-ref")
        self.play = W.Play(value=0, min=0, max=0, interval=600, description="play")
        self.play.add_class("il-nesting-play")
        self._play_link = W.jslink((self.play, "value"), (self.ref_slider, "value"))
        self.prev_button = action_button("◀ Prev", "il-nesting-prev", "previous reference")
        self.next_button = action_button("Next ▶", "il-nesting-next", "next reference")
        self.summary = W.HTML()
        self.summary.add_class("il-nesting-summary")
        self.grid_view = W.HTML()
        self.grid_view.add_class("il-nesting-grid")
        self.ref_view = W.HTML()
        self.ref_view.add_class("il-nesting-refview")
        self.refs_table = W.HTML()
        self.refs_table.add_class("il-nesting-refs")
        self.figure_view = FigureView(
            layout=W.Layout(max_width="100%", height="auto", display="none")
        )
        self.figure_view.add_class("il-nesting-figure")
        self.costs = W.HTML()
        self.costs.add_class("il-nesting-costs")
        self.workload_picker = W.ToggleButtons(
            options=["dynamic", "static"], value="dynamic", description="workload"
        )
        self.workload_picker.add_class("il-nesting-workload")
        self.compare_button = action_button(
            "Compare costs", "il-nesting-compare", "shadow.compare_costs(workload, stage1, stage2)"
        )
        self.compare_table = W.HTML()
        self.compare_table.add_class("il-nesting-compare-table")
        self.style_picker = W.ToggleButtons(
            options=["light", "dark"], value="light", description="figure"
        )
        self.style_picker.add_class("il-nesting-style")
        self.error = ErrorView()
        self.error.add_class("il-nesting-error")

        self.walk_view = W.VBox(
            [
                self.summary,
                W.HBox([self.play, self.prev_button, self.ref_slider, self.next_button]),
                W.HBox([self.grid_view, self.ref_view], layout=W.Layout(grid_gap="16px")),
                self.style_picker,
                self.figure_view,
                self.costs,
                self.refs_table,
            ]
        )
        self.walk_view.add_class("il-nesting-view")
        controls = W.VBox(
            [
                W.HBox([self.platform_picker, self.stage1_picker, self.stage2_picker]),
                self.pair_info,
                W.HBox([self.map_iova_input.row("guest iova"), self.map_gpa_input.row("to gpa")]),
                W.HBox([self.map_size_input.row("size"), self.map_button]),
                W.HBox([self.iova_input.row("walk iova"), self.access_picker, self.walk_button]),
            ]
        )
        compare = W.VBox([W.HBox([self.workload_picker, self.compare_button]), self.compare_table])
        super().__init__(children=[controls, self.error, self.walk_view, compare], **kwargs)
        self.add_class("il-nesting")

        self.platform_picker.observe(self._on_platform, names="value")
        self.stage1_picker.observe(self._on_formats, names="value")
        self.stage2_picker.observe(self._on_formats, names="value")
        self.map_button.on_click(self._on_map)
        self.iova_input.observe(lambda change: self.do_walk(), names="value")
        self.access_picker.observe(lambda change: self.do_walk(), names="value")
        self.walk_button.on_click(lambda b: self.do_walk())
        self.ref_slider.observe(lambda change: self._show_ref(), names="value")
        self.prev_button.on_click(lambda b: self._move(-1))
        self.style_picker.observe(lambda change: self._redraw(), names="value")
        self.next_button.on_click(lambda b: self._move(+1))
        self.compare_button.on_click(self._on_compare)
        self._show_pair()
        self.do_walk()

    def close(self) -> None:
        """Close the explorer and every widget in it (a box alone closes only itself)."""
        self._play_link.close()
        close_tree(self)

    # -- building the pair ----------------------------------------------------------------
    def _install(self, nested: Any) -> None:
        """Use ``nested``, replay the guest mappings made here, and report any it refuses."""
        refused = []
        for m in self._log:
            with reporting(self.error) as one:
                nested.map(*m[:3], prot=m[3])
            if not one.ok:
                refused.append((m, one.error))
        self.nested = nested
        self._quiet = True
        try:
            for picker, name in (
                (self.stage1_picker, nested.stage1.fmt.name),
                (self.stage2_picker, nested.stage2.fmt.name),
            ):
                if name not in picker.options:
                    picker.options = (*picker.options, name)
                picker.value = name
        finally:
            self._quiet = False
        self._show_pair()
        self.do_walk()
        if refused and not self.error.value:
            self.error.show(refused[0][1], note=not_replayed(refused, "guest map"))

    def _on_platform(self, change: dict) -> None:
        if self._quiet or change["new"] == _NO_PLATFORM:
            return
        with reporting(self.error) as out:
            nested = Nested.for_platform(change["new"])
        if out.ok:
            self._install(nested)
            return
        # Refused (no hardware nesting): the picker goes back to the pair still shown, so the
        # old pair, grid and figure never stand under the refused platform's name.
        self._set_quietly(self.platform_picker, change["old"])
        self.error.show(out.error, note=f"still showing {self._pair_name()}")

    def _on_formats(self, change: dict) -> None:
        if self._quiet:
            return
        with reporting(self.error) as out:
            nested = Nested.build(self.stage1_picker.value, self.stage2_picker.value)
        if out.ok:
            self._set_quietly(self.platform_picker, _NO_PLATFORM)
            self._install(nested)
            return
        # Refused pair: both pickers go back to the formats of the pair still shown.
        self._set_quietly(self.stage1_picker, self.nested.stage1.fmt.name)
        self._set_quietly(self.stage2_picker, self.nested.stage2.fmt.name)
        self.error.show(out.error, note=f"still showing {self._pair_name()}")

    def _set_quietly(self, picker: W.Dropdown, value: str) -> None:
        self._quiet = True
        try:
            picker.value = value
        finally:
            self._quiet = False

    def _pair_name(self) -> str:
        return f"{self.nested.stage1.fmt.name} over {self.nested.stage2.fmt.name}"

    def _show_pair(self) -> None:
        self.pair_info.value = self.nested._repr_html_()

    def _on_map(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            iova = self.map_iova_input.parse()
            gpa = self.map_gpa_input.parse()
            size = self.map_size_input.parse()
            self.nested.map(iova, gpa, size)
        if out.ok:
            self._log.append((iova, gpa, size, "rw"))
            self.do_walk()

    # -- walking --------------------------------------------------------------------------
    def do_walk(self) -> None:
        """Walk the IOVA in the box (2-D) and through the shadow table; show from reference 1."""
        with reporting(self.error) as out:
            iova = self.iova_input.parse()
            nw = self.nested.walk(iova, access=self.access_picker.value)
            shadow = self.nested.shadow()
            sw = shadow.walk(iova, access=self.access_picker.value)
        if not out.ok:
            why = str(out.error) if out.error is not None else "the walk failed"
            if self.walk is not None and self._walk_of is self.nested:
                self.mark_stale(why)
            else:
                self.clear_walk(why)
            return
        self._walk_of = self.nested
        self.walk, self.shadow = nw, shadow
        last = max(len(nw.refs) - 1, 0)
        with self.ref_slider.hold_trait_notifications():
            self.ref_slider.max = last
            self.ref_slider.value = 0
        self.play.max = last
        self.play.value = 0
        self.stale = ""
        self._summary_value = self.summary.value = self._summary_html(nw)
        self.refs_table.value = nw._repr_html_()
        self.costs.value = self._costs_html(nw, shadow, sw)
        self._show_ref()
        self._redraw()

    def mark_stale(self, why: str) -> None:
        """Keep the last walk on this pair but mark it as not the one the boxes ask for."""
        self.stale = why
        self.summary.value = (
            f"{CSS}<div class='il-repr'><div class='il-bad il-stale'>stale: still showing the walk of "
            f"{esc(fmt_addr(self.walk.iova))}; {esc(why)}</div></div>" + self._summary_value
        )

    def clear_walk(self, why: str) -> None:
        """Drop the shown walk (its IOVA or pair is no longer the one in the boxes) and say why
        in its place: summary, grid, reference, figure, costs and table all go."""
        self.walk = self.shadow = None
        self.stale = ""
        with self.ref_slider.hold_trait_notifications():
            self.ref_slider.value = 0
            self.ref_slider.max = 0
        self.play.value = 0
        self.play.max = 0
        self.summary.value = f"{CSS}<div class='il-repr il-bad'>no walk on {esc(self._pair_name())}: {esc(why)}</div>"
        for view in (self.grid_view, self.ref_view, self.refs_table, self.costs):
            view.value = ""
        self.prev_button.disabled = self.next_button.disabled = True
        self._redraw()

    def _redraw(self) -> None:
        if self.walk is None:
            self.figure_view.clear()
            self.figure_view.layout.display = "none"
            return
        fmts = (self.nested.stage1.fmt, self.nested.stage2.fmt)
        self.figure_view.show(draw_nested_walk(self.walk, style=self.style_picker.value, formats=fmts))
        self.figure_view.layout.display = None

    def _summary_html(self, nw: Any) -> str:
        c = nw.counts
        if nw.ok:
            result = (
                f"<span class='il-good'>IOVA {esc(fmt_addr(nw.iova))} → "
                f"GPA {esc(fmt_addr(nw.gpa))}"
                f" → HPA {esc(fmt_addr(nw.output))}</span>"
            )
        else:
            result = f"<span class='il-bad'>FAULT: {esc(str(nw.fault))}</span>"
        pasid = getattr(nw, "n_pasid_refs", 0)
        return (
            f"{CSS}<div class='il-repr'><div>{result}</div>"
            f"<div>{nw.n_pagetable_refs} page-table references "
            f"(stage 1: {c.get('stage1', '?')}, stage 2: {c.get('stage2', '?')})"
            + (f" + {pasid} to resolve the PASID" if pasid else "")
            + f"; a cold {nw.n}×{nw.m} walk with small pages makes (n+1)(m+1)−1 = "
            f"{nested_walk_refs(nw.n, nw.m)}</div></div>"
        )

    def _costs_html(self, nw: Any, shadow: Any, sw: Any) -> str:
        rows = [
            ("page-table references for this IOVA", nw.n_pagetable_refs, sw.references),
            ("translation", "ok" if nw.ok else "fault", "ok" if sw.ok else "fault"),
        ]
        for k, v in shadow.costs.as_dict().items():
            if k in ("iotlb_misses", "walk_refs", "refs_per_miss"):
                continue
            rows.append(
                (
                    f"shadowing the current mappings: {k}",
                    "—",
                    v if isinstance(v, int) else f"{v:.2f}",
                )
            )
        return table_html(
            "hardware nesting vs software nesting (shadow table)",
            ["cost", "hardware (2-D walk)", "shadow (native walk)"],
            rows,
        )

    def _move(self, delta: int) -> None:
        self.ref_slider.value = min(max(self.ref_slider.value + delta, 0), self.ref_slider.max)

    def _show_ref(self) -> None:
        if self.walk is None:
            return
        i = min(self.ref_slider.value, max(len(self.walk.refs) - 1, 0))
        self.grid_view.value = grid_html(
            self.walk, i, self.nested.stage1.fmt, self.nested.stage2.fmt
        )
        self.ref_view.value = ref_html(self.walk, i)
        self.prev_button.disabled = i <= 0
        self.next_button.disabled = i >= len(self.walk.refs) - 1

    # -- workload comparison ------------------------------------------------------------------
    def _on_compare(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            workload = (
                DmaPattern.dynamic() if self.workload_picker.value == "dynamic" else DmaPattern.static()
            )
            df = compare_costs(workload, self.nested.stage1.fmt.name, self.nested.stage2.fmt.name)
        if not out.ok:
            return
        rows = [
            [str(name)]
            + [
                f"{v:.2f}" if isinstance(v, float) and not float(v).is_integer() else f"{int(v)}"
                for v in row
            ]
            for name, row in zip(df.index, df.itertuples(index=False, name=None))
        ]
        self.compare_table.value = table_html(
            f"{df.attrs.get('workload', 'workload')}: {' over '.join(df.attrs.get('formats', ()))}",
            ["cost"] + [str(c) for c in df.columns],
            rows,
        )
