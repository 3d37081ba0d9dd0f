"""Compare IOMMU platforms: their GET_INFO answers side by side and their layouts on one axis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W

from iommu_lab import render
from iommu_lab.core.ranges import fmt_size
from iommu_lab.core.words import plural
from iommu_lab.hardware.platform import platforms as _catalogue
from iommu_lab.widgets.common import (
    AddressInput,
    ErrorView,
    FigureView,
    action_button,
    close_tree,
    reporting,
    rows_html,
)

__all__ = ["PlatformExplorer"]

#: intel-vtd-48, arm-smmuv3-48 and power9-pseries: one aperture, an SW_MSI hole, two windows.
DEFAULT_SELECTION = ("intel-vtd-48", "arm-smmuv3-48", "power9-pseries")


def _info_rows(platforms: Sequence[Any]) -> list[list[str]]:
    """One row per GET_INFO attribute, one column per platform (presentation only)."""
    infos = [p.info() for p in platforms]

    def ranges(rs: Any) -> str:
        return ", ".join(str(r) for r in rs) or "none"

    fields: list[tuple[str, Any]] = [
        ("title", lambda p, i: p.title),
        ("family", lambda p, i: p.family.value),
        ("input address width", lambda p, i: f"{p.ias} bits"),
        ("capabilities", lambda p, i: ", ".join(i.capabilities)),
        ("page sizes", lambda p, i: ", ".join(fmt_size(s) for s in i.pgsizes)),
        ("IOVA alignment", lambda p, i: fmt_size(i.alignment)),
        ("windows", lambda p, i: ranges(i.windows)),
        ("reserved", lambda p, i: ", ".join(str(r) for r in p.reserved) or "none"),
        ("permitted (IOVA_RANGES)", lambda p, i: ranges(i.permitted)),
        (
            "page-table formats",
            lambda p, i: ", ".join(f"{k}={v}" for k, v in i.formats.items()) or "none",
        ),
        ("PASID bits", lambda p, i: str(i.pasid_bits)),
        ("dirty tracking", lambda p, i: "yes" if i.dirty_tracking else "no"),
    ]
    return [[name] + [str(get(p, i)) for p, i in zip(platforms, infos)] for name, get in fields]


class PlatformExplorer(W.VBox):
    """Pick platforms and compare them: GET_INFO side by side, and their layouts on one axis.

    The layouts share one segmented axis (``render.layout`` of the list), so windows and
    reserved regions of different platforms line up.

    Attributes
    ----------
    platform_picker: ipywidgets.SelectMultiple (default: ``DEFAULT_SELECTION``)
        The platforms compared; options are ``platforms.names()``.
    style_picker: ipywidgets.ToggleButtons (default: "light")
        The figure style, ``"light"`` or ``"dark"``.
    table: ipywidgets.HTML
        The GET_INFO comparison: one row per attribute, one column per platform.
    figure_view: FigureView
        The layouts of the chosen platforms.
    error: ErrorView
        Why the last redraw failed (e.g. a platform file that does not load).
    selected: list of Platform
        The chosen platform objects (read-only).
    ram_input: AddressInput (default: "16G", a size)
        The RAM of a PC-style guest (``Workload.pc_guest(ram)``) for the workload comparison.
    compare_button: ipywidgets.Button
        Run the design-review comparison of that workload on the chosen platforms
        (``render.compare_table`` and ``render.compare``): fit, table memory, page-size mix,
        walk references natively and nested. Seconds of work, so only on the button.
    compare_table: ipywidgets.HTML
    compare_view: FigureView
    """

    def __init__(self, names: Sequence[str] | None = None, **kwargs: Any) -> None:
        options = _catalogue.names()
        if names is None:
            names = [n for n in DEFAULT_SELECTION if n in options] or options[:2]
        self.platform_picker = W.SelectMultiple(
            options=options, value=tuple(names), rows=min(len(options), 8), description="platforms"
        )
        self.platform_picker.add_class("il-platforms-picker")
        self.style_picker = W.ToggleButtons(
            options=["light", "dark"], value="light", description="style"
        )
        self.style_picker.add_class("il-platforms-style")
        self.table = W.HTML()
        self.table.add_class("il-platforms-table")
        self.figure_view = FigureView()
        self.figure_view.add_class("il-platforms-figure")
        self.error = ErrorView()
        self.error.add_class("il-platforms-error")
        self.selected: list[Any] = []
        self.ram_input = AddressInput(
            "16G", kind="size", label="guest RAM", css_class="il-platforms-ram"
        )
        self.compare_button = action_button(
            "Compare workload", "il-platforms-compare", "render.compare(platforms, workload)"
        )
        self.compare_table = W.HTML()
        self.compare_table.add_class("il-platforms-compare-table")
        self.compare_view = FigureView()
        self.compare_view.add_class("il-platforms-compare-figure")
        workload = W.VBox(
            [
                W.HBox([self.ram_input.row("PC guest RAM"), self.compare_button]),
                self.compare_table,
                self.compare_view,
            ]
        )
        super().__init__(
            children=[
                W.HBox([self.platform_picker, self.style_picker]),
                self.error,
                self.table,
                self.figure_view,
                workload,
            ],
            **kwargs,
        )
        self.add_class("il-platforms")
        self.platform_picker.observe(self._on_change, names="value")
        self.style_picker.observe(self._on_change, names="value")
        self.compare_button.on_click(self._on_compare)
        self.refresh()

    def close(self) -> None:
        """Close the explorer and every widget in it (a box alone closes only itself)."""
        close_tree(self)

    def _on_change(self, change: dict) -> None:
        if change["owner"] is self.platform_picker and self.compare_table.value:
            # The workload comparison was of the previous selection: clear it, say so.
            self.compare_table.value = rows_html(
                "workload comparison", ["platforms changed"], [],
                footer="the selection changed; press 'Compare workload' to compare these platforms",
            )
            self.compare_view.clear()
        self.refresh()

    def refresh(self) -> None:
        """Redraw the table and the figure for the current selection."""
        names = list(self.platform_picker.value)
        if not names:
            self.selected = []
            self.error.clear()
            self.table.value = rows_html(
                "GET_INFO", ["attribute"], [], footer="pick one or more platforms"
            )
            self.figure_view.clear()
            return
        with reporting(self.error) as out:
            chosen = [_catalogue.get(n) for n in names]
            self.table.value = rows_html("GET_INFO", ["attribute"] + names, _info_rows(chosen))
            self.figure_view.show(
                render.layout(
                    chosen,
                    style=self.style_picker.value,
                    title="permitted windows and reserved regions",
                )
            )
            self.selected = chosen
        if not out.ok:
            # Nothing of the previous selection stays under the new one.
            self.selected = []
            self.table.value = rows_html("GET_INFO", ["attribute"], [], footer="no comparison: see the error above")
            self.figure_view.clear()

    def _on_compare(self, _: Any = None) -> None:
        from iommu_lab.review.workload import Workload

        with reporting(self.error) as out:
            if not self.selected:
                raise ValueError("pick one or more platforms to compare")
            workload = Workload.pc_guest(self.ram_input.parse())
            df = render.compare_table(self.selected, workload)
            fig = render.compare(self.selected, workload, style=self.style_picker.value)
        if not out.ok:
            self.compare_table.value = ""
            self.compare_view.clear()
            return
        rows = [
            [_cell(c, v) for c, v in zip(df.columns, row)] for row in df.itertuples(index=False)
        ]
        self.compare_table.value = rows_html(
            f"{workload.name} on {plural(len(self.selected), 'platform')}",
            [str(c) for c in df.columns],
            rows,
        )
        self.compare_view.show(fig)


def _cell(column: str, value: Any) -> str:
    """Bytes as sizes, fractions with two decimals, missing values blank (presentation only)."""
    import pandas as pd

    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""
    is_bytes = column.startswith(("bytes", "mix_")) or column.endswith("_bytes")
    if is_bytes and not isinstance(value, bool):
        return fmt_size(int(value)) if value else "0"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
