"""Walk one IOVA through a page table, level by level, with every entry's bits decoded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W

from iommu_lab.core.ranges import fmt_addr, fmt_size
from iommu_lab.core.words import plural
from iommu_lab.hardware import formats
from iommu_lab.hardware.formats import EntryKind
from iommu_lab.hardware.platform import platforms
from iommu_lab.pagetable import PageTable, PhysicalMemory
from iommu_lab.render.html import CSS, esc
from iommu_lab.render.walk import walk as draw_walk
from iommu_lab.widgets.common import (
    AddressInput,
    ErrorView,
    FigureView,
    action_button,
    close_tree,
    frame_html,
    not_replayed,
    reporting,
)

__all__ = ["DEFAULT_FORMAT", "DEFAULT_IOVA", "DEMO_MAPPINGS", "MAPPING_ROWS", "WalkExplorer", "common_first"]

DEFAULT_FORMAT = "vtd-ss-4level"
#: What a fresh explorer maps, so the first walk finds something: (iova, pa, size, prot).
#: A 4 KiB page (a full-depth walk), a 2 MiB superpage (one level shorter) and a read-only page.
DEMO_MAPPINGS: tuple[tuple[int, int, int, str], ...] = (
    (0x0000_1000, 0x1234_5000, 0x1000, "rw"),
    (0x0020_0000, 0x4000_0000, 0x20_0000, "rw"),
    (0x0040_0000, 0x5678_9000, 0x1000, "r"),
)
DEFAULT_IOVA = "0x1234"
#: Mapping rows shown before the table says how many more there are (a 2 MiB mapping replayed
#: on a 4 KiB-only format such as POWER TCE becomes 512 rows).
MAPPING_ROWS = 12


def new_table(name: str) -> Any:
    """An empty ``PageTable(name)`` whose table memory fits the format's output addresses.

    ``PageTable``'s default memory is 64 GiB at 0x1000_0000, beyond a 32-bit-OAS format's reach;
    those get the same base with the memory cut to fit (a 32-bit OAS still leaves 3.75 GiB).
    """
    fmt = formats.get(name)
    base, size = 0x1000_0000, 64 << 30
    limit = 1 << fmt.oas
    if base + size > limit:
        size = max(limit - base, 0) // 0x1000 * 0x1000
    return PageTable(fmt, PhysicalMemory(base, size))


def common_first(names: Sequence[str]) -> list[str]:
    """``names`` with the formats a catalogued platform uses first, in catalogue order (the
    common case: ``arm-lpae-s1-4k-48bit`` before the 32-bit variant, ``amd-v1-dynamic`` before
    the fixed-depth tables), then the rest in their registered order."""
    used: list[str] = []
    for p in platforms.names():
        for n in platforms.get(p).formats.values():
            if n in names and n not in used:
                used.append(n)
    return used + [n for n in names if n not in used]


def _families(fmts: Sequence[Any]) -> dict[str, list[str]]:
    """Format names grouped by the family their descriptor names (``Format.family``), each
    family's common format first (:func:`common_first`)."""
    out: dict[str, list[str]] = {}
    for f in fmts:
        out.setdefault(f.family, []).append(f.name)
    return {fam: common_first(names) for fam, names in out.items()}


# -- HTML for one step (presentation only: every number comes from the format or the walk) -------

_HI = "background: var(--jp-brand-color3, #c3e1fa); color: var(--jp-ui-font-color0, #000);"


def _rows_table(*rows: list[str]) -> str:
    return "<table>" + "".join(f"<tr>{''.join(r)}</tr>" for r in rows) + "</table>"


def _iova_bits_html(fmt: Any, iova: int, level: int | None) -> str:
    """The IOVA split into one index per level, top first, then the page offset; ``level`` lit."""
    heads, names, values = [], [], []
    low = None
    for lv in range(fmt.top_level, -1, -1):
        hi, lo = fmt.iova_bits(lv)
        style = f" style='{_HI}'" if lv == level else ""
        heads.append(f"<th{style}>{hi}:{lo}</th>")
        names.append(f"<td{style}>{esc(fmt.level_name(lv))}</td>")
        values.append(f"<td{style}>{fmt.index(lv, iova)}</td>")
        low = lo
    if low:
        heads.append(f"<th>{low - 1}:0</th>")
        names.append("<td>offset</td>")
        values.append(f"<td>{fmt_addr(iova & ((1 << low) - 1))}</td>")
    return f"<div class='il-title'>IOVA {esc(fmt_addr(iova))}: index per level</div>" + _rows_table(
        heads, names, values
    )


def _entry_bits_html(fmt: Any, step: Any) -> str:
    """The raw entry as a datasheet draws it: bit ranges high to low, field names, values."""
    kind = EntryKind.TABLE if step.entry.kind == EntryKind.TABLE else EntryKind.LEAF
    table = fmt.fields(step.level, kind)
    fields = sorted(table, key=lambda f: f.shift, reverse=True)
    heads, names, values = [], [], []
    top = 63
    for f in fields + [None]:
        hi = -1 if f is None else f.shift + f.width - 1
        if top > hi:  # bits no field names
            gap_lo = hi + 1
            heads.append(f"<th class='il-muted'>{top if top == gap_lo else f'{top}:{gap_lo}'}</th>")
            names.append("<td class='il-muted'>—</td>")
            raw_gap = (step.raw >> gap_lo) & ((1 << (top - gap_lo + 1)) - 1)
            values.append(f"<td class='il-muted'>{raw_gap:#x}</td>")
        if f is None:
            break
        value = f.get(step.raw)
        heads.append(f"<th>{f.bits}</th>")
        title = f" title='{esc(f.doc)}'" if f.doc else ""
        names.append(f"<td{title}>{esc(f.name)}</td>")
        values.append(f"<td>{value:#x}</td>" if f.width > 4 else f"<td>{value}</td>")
        top = f.shift - 1
    return _rows_table(heads, names, values)


def _step_html(walk: Any, i: int) -> str:
    fmt = walk.fmt
    if not walk.steps:
        return (
            f"{CSS}<div class='il-repr'>{_iova_bits_html(fmt, walk.iova, None)}"
            f"<div class='il-bad'>no entry was read: {esc(walk.summary()[3:])}</div></div>"
        )
    s = walk.steps[i]
    n = len(walk.steps)
    head = (
        f"<div class='il-title'>step {i + 1} of {n}: {esc(s.name)}</div>"
        f"<div>table {esc(fmt_addr(s.table))} [index {s.index}] → entry at "
        f"{esc(fmt_addr(s.entry_address))}"
        + (
            f" (read at {esc(fmt_addr(s.read_address))})"
            if s.read_address != s.entry_address
            else ""
        )
        + f" = <b>{s.raw:#018x}</b></div>"
    )
    cls = "il-bad" if s.entry.kind.name not in ("TABLE", "LEAF") else "il-good"
    decoded = f"<div>decoded: <span class='{cls}'>{esc(str(s.entry))}</span></div>"
    last = ""
    if i == n - 1:
        last = f"<div class='{'il-good' if walk.ok else 'il-bad'}'>{esc(walk.summary())}</div>"
    return (
        f"{CSS}<div class='il-repr'>{head}{_iova_bits_html(fmt, walk.iova, s.level)}"
        f"<div class='il-title'>entry bits</div>{_entry_bits_html(fmt, s)}{decoded}{last}</div>"
    )


class WalkExplorer(W.VBox):
    """A page table and one IOVA's walk through it, stepped level by level.

    Pick a format (family, then its parameter: levels, granule and IAS, page size), map a few
    pages, type an IOVA and press Enter (or "Walk"): the walk is done by the model
    (``pt.walk(iova)``, which decodes the raw entries it reads) and shown step by step: the
    IOVA bits that index each level, the raw entry with its fields, and the decoded meaning.

    Parameters
    ----------
    pt : PageTable, optional
        The table to walk; default: a ``vtd-ss-4level`` table holding ``DEMO_MAPPINGS``.
    iova : str (default: "0x1234")
        The first IOVA walked.

    Attributes
    ----------
    pt: PageTable
        The model being walked; replaced (mappings replayed) when another format is picked.
    walk: Walk or None
        The last walk (``pt.walk(iova)``).
    family_picker: ipywidgets.Dropdown (default: "vtd-ss")
        The format family, as the format descriptor names it (``Format.family``); picking one
        selects its first format.
    format_picker: ipywidgets.Dropdown (default: "vtd-ss-4level")
        The registered formats of the family (levels, granule and IAS, stage, or page size).
    map_iova_input, map_pa_input: AddressInput
        Where to map, and to which physical address.
    map_size_input: AddressInput (default: "4K", a size)
    map_prot_picker: ipywidgets.Dropdown (default: "rw")
    map_button: ipywidgets.Button
        ``pt.map(iova, pa, size, prot=...)``.
    iova_input: AddressInput (default: "0x1234"; CSS class ``il-walk-iova``)
        The IOVA to walk; the walk runs when the value is submitted (Enter or leaving the box).
    access_picker: ipywidgets.Dropdown (default: "any")
        The access the walk checks (``"r"``, ``"w"``), or none.
    walk_button: ipywidgets.Button
        Walk again (e.g. after mapping).
    step_slider: ipywidgets.IntSlider
        The step shown, 0 = the root level.
    prev_button, next_button: ipywidgets.Button
    summary: ipywidgets.HTML
        The walk's result line (``=> pa 0x1234_5234 (4 KiB SL-PTE leaf, rw), 4 memory references``).
    step_view: ipywidgets.HTML
        The current step: IOVA index bits, entry bit fields, decoded entry.
    steps_table: ipywidgets.HTML
        Every step of the walk (the walk's own HTML table).
    figure_view: FigureView
        ``render.walk(walk)`` of the last walk (hidden before the first).
    style_picker: ipywidgets.ToggleButtons (default: "light")
        The figure's style, ``"light"`` or ``"dark"``.
    mappings_table: ipywidgets.HTML
        The table's mappings.
    walk_view: ipywidgets.VBox (CSS class ``il-walk-view``)
        The whole walk display: summary, stepper, step, steps and figure.
    error: ErrorView
    """

    def __init__(self, pt: Any = None, *, iova: str = DEFAULT_IOVA, **kwargs: Any) -> None:
        #: The mappings made through this explorer, replayed when another format is picked.
        self._log: list[tuple[int, int, int, str]] = []
        if pt is None:
            pt = new_table(DEFAULT_FORMAT)
            for m in DEMO_MAPPINGS:
                pt.map(*m[:3], prot=m[3])
                self._log.append(m)
        self.pt = pt
        self.walk: Any = None
        self._walk_of: Any = None
        self.stale = ""
        self._summary_value = ""
        self._picking = False
        self._families = _families([formats.get(n) for n in formats.names()])
        name = pt.fmt.name
        if name not in self._families.get(pt.fmt.family, ()):
            # A table built from a factory call rather than a registered name.
            self._families.setdefault(pt.fmt.family, []).append(name)
        self._family_of = {n: fam for fam, names in self._families.items() for n in names}

        self.family_picker = W.Dropdown(
            options=list(self._families), value=pt.fmt.family, description="format"
        )
        self.family_picker.add_class("il-walk-family")
        self.format_picker = W.Dropdown(
            options=self._families[pt.fmt.family], value=name, description="variant"
        )
        self.format_picker.add_class("il-walk-format")
        self.format_info = W.HTML()
        self.format_info.add_class("il-walk-format-info")

        self.map_iova_input = AddressInput("0x60_0000", label="iova", css_class="il-walk-map-iova")
        self.map_pa_input = AddressInput("0x7000_0000", label="pa", css_class="il-walk-map-pa")
        self.map_size_input = AddressInput(
            "4K", kind="size", label="size", css_class="il-walk-map-size"
        )
        self.map_prot_picker = W.Dropdown(
            options=["rw", "r", "w"],
            value="rw",
            description="prot",
            layout=W.Layout(width="9em"),
            style={"description_width": "initial"},
        )
        self.map_prot_picker.add_class("il-walk-map-prot")
        self.map_button = action_button("Map", "il-walk-map", "pt.map(iova, pa, size, prot=...)")
        self.mappings_table = W.HTML()
        self.mappings_table.add_class("il-walk-mappings")

        self.iova_input = AddressInput(iova, label="iova", css_class="il-walk-iova")
        self.access_picker = W.Dropdown(
            options=[("any", None), ("read", "r"), ("write", "w")],
            value=None,
            description="access",
            layout=W.Layout(width="12em"),
            style={"description_width": "initial"},
        )
        self.access_picker.add_class("il-walk-access")
        self.walk_button = action_button("Walk", "il-walk-button", "pt.walk(iova)", "primary")

        self.step_slider = W.IntSlider(
            value=0, min=0, max=0, description="step", continuous_update=False
        )
        self.step_slider.add_class("il-walk-step")
        self.prev_button = action_button("◀ Prev", "il-walk-prev", "previous level")
        self.next_button = action_button("Next ▶", "il-walk-next", "next level")
        self.summary = W.HTML()
        self.summary.add_class("il-walk-summary")
        self.step_view = W.HTML()
        self.step_view.add_class("il-walk-stepview")
        self.steps_table = W.HTML()
        self.steps_table.add_class("il-walk-steps")
        self.figure_view = FigureView(
            layout=W.Layout(max_width="100%", height="auto", display="none")
        )
        self.figure_view.add_class("il-walk-figure")
        self.style_picker = W.ToggleButtons(
            options=["light", "dark"], value="light", description="figure"
        )
        self.style_picker.add_class("il-walk-style")
        self.error = ErrorView()
        self.error.add_class("il-walk-error")

        self.walk_view = W.VBox(
            [
                self.summary,
                W.HBox([self.prev_button, self.step_slider, self.next_button]),
                self.step_view,
                self.steps_table,
                self.style_picker,
                self.figure_view,
            ]
        )
        self.walk_view.add_class("il-walk-view")
        table_box = W.VBox(
            [
                W.HBox([self.family_picker, self.format_picker]),
                self.format_info,
                W.HBox([self.map_iova_input.row("map iova"), self.map_pa_input.row("to pa")]),
                W.HBox([self.map_size_input.row("size"), self.map_prot_picker, self.map_button]),
                self.mappings_table,
            ]
        )
        walk_box = W.HBox([self.iova_input.row("walk iova"), self.access_picker, self.walk_button])
        super().__init__(children=[table_box, walk_box, self.error, self.walk_view], **kwargs)
        self.add_class("il-walk")

        self.family_picker.observe(self._on_family, names="value")
        self.format_picker.observe(self._on_format, names="value")
        self.map_button.on_click(self._on_map)
        self.iova_input.observe(self._on_iova, names="value")
        self.access_picker.observe(lambda change: self.do_walk(), names="value")
        self.walk_button.on_click(lambda b: self.do_walk())
        self.step_slider.observe(self._on_step, names="value")
        self.prev_button.on_click(lambda b: self._move(-1))
        self.style_picker.observe(lambda change: self._redraw(), names="value")
        self.next_button.on_click(lambda b: self._move(+1))
        self._show_table()
        self.do_walk()

    def close(self) -> None:
        """Close the explorer and every widget in it (a box alone closes only itself)."""
        close_tree(self)

    # -- format ---------------------------------------------------------------------------
    def select_format(self, name: str) -> None:
        """Pick format ``name`` (its family first) and rebuild the table once."""
        self._show_format(name)
        self._rebuild(name)

    def _on_family(self, change: dict) -> None:
        # New options reset the value to the family's first format; that change rebuilds.
        self.format_picker.options = self._families[change["new"]]

    def _show_format(self, name: str) -> None:
        """Set both pickers to ``name`` without rebuilding."""
        self._picking = True
        try:
            self.family_picker.value = self._family_of[name]
            self.format_picker.value = name
        finally:
            self._picking = False

    def _on_format(self, change: dict) -> None:
        if not self._picking and change["new"] is not None:
            self._rebuild(change["new"])

    def _rebuild(self, name: str) -> None:
        """A fresh table of format ``name`` with the mappings made here replayed onto it."""
        if name == self.pt.fmt.name:
            return
        with reporting(self.error) as out:
            pt = new_table(name)
        if not out.ok:
            # The pickers go back to the table still shown, so no name labels another's walk.
            self._show_format(self.pt.fmt.name)
            return
        # Replay the mappings made here on the new table; report those the format refuses
        # (they stay in the log, so picking a format that takes them brings them back).
        refused = []
        for m in self._log:
            with reporting(self.error) as one:
                pt.map(*m[:3], prot=m[3])
            if not one.ok:
                refused.append((m, one.error))
        self.pt = pt
        self._show_table()
        self.do_walk()
        if refused and not self.error.value:
            self.error.show(refused[0][1], note=not_replayed(refused))

    # -- map ------------------------------------------------------------------------------
    def _on_map(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            iova = self.map_iova_input.parse()
            pa = self.map_pa_input.parse()
            size = self.map_size_input.parse()
            self.pt.map(iova, pa, size, prot=self.map_prot_picker.value)
        if out.ok:
            self._log.append((iova, pa, size, self.map_prot_picker.value))
            self._show_table()
            self.do_walk()

    def _show_table(self) -> None:
        fmt = self.pt.fmt
        self.format_info.value = (
            f"{CSS}<div class='il-repr il-muted'>{esc(fmt.name)}: {plural(fmt.levels, 'level')}, "
            f"index bits {'/'.join(str(b) for b in fmt.index_bits)} (top first), input "
            f"{esc(str(fmt.input_ranges))}, page sizes "
            f"{esc(', '.join(fmt_size(s) for s in fmt.pgsizes[:6]))}</div>"
        )
        df = self.pt.to_dataframe("mappings")
        self.mappings_table.value = frame_html(
            df, f"mappings in {fmt.name} ({len(df)} row{'s' if len(df) != 1 else ''})",
            empty="nothing mapped", max_rows=MAPPING_ROWS,
        )

    # -- walk -----------------------------------------------------------------------------
    def _on_iova(self, change: dict) -> None:
        self.do_walk()

    def do_walk(self) -> None:
        """Walk the IOVA in the box through ``pt`` and show the walk from its first step."""
        with reporting(self.error) as out:
            iova = self.iova_input.parse()
            walk = self.pt.walk(iova, access=self.access_picker.value)
        if not out.ok:
            why = str(out.error) if out.error is not None else "the walk failed"
            if self.walk is not None and self._walk_of is self.pt:
                self.mark_stale(why)
            else:
                self.clear_walk(why)
            return
        self._walk_of = self.pt
        self.walk = walk
        n = max(len(walk.steps), 1)
        with self.step_slider.hold_trait_notifications():
            self.step_slider.max = n - 1
            self.step_slider.value = 0
        cls = "il-good" if walk.ok else "il-bad"
        access = {None: "no access checked", "r": "read checked", "w": "write checked"}[self.access_picker.value]
        self.stale = ""
        self._summary_value = self.summary.value = (
            f"{CSS}<div class='il-repr'><span class='il-title'>walk {esc(fmt_addr(walk.iova))} in "
            f"{esc(walk.fmt.name)} ({access})</span> <span class='{cls}'>{esc(walk.summary())}</span></div>"
        )
        self.steps_table.value = walk._repr_html_()
        self._show_step()
        self._redraw()

    def mark_stale(self, why: str) -> None:
        """Keep the last walk on this table but mark it as not the one the boxes ask for."""
        self.stale = why
        self.summary.value = (
            f"{CSS}<div class='il-repr'><div class='il-bad il-stale'>stale: still showing the walk of "
            f"{esc(fmt_addr(self.walk.iova))}; {esc(why)}</div></div>" + self._summary_value
        )

    def clear_walk(self, why: str) -> None:
        """Drop the shown walk (it belongs to an IOVA or a table no longer in the boxes) and
        say why in its place: summary, steps, step view and figure all go."""
        self.walk = None
        self.stale = ""
        with self.step_slider.hold_trait_notifications():
            self.step_slider.value = 0
            self.step_slider.max = 0
        self.summary.value = (
            f"{CSS}<div class='il-repr il-bad'>no walk in {esc(self.pt.fmt.name)}: {esc(why)}</div>"
        )
        self.step_view.value = ""
        self.steps_table.value = ""
        self.prev_button.disabled = self.next_button.disabled = True
        self._redraw()

    def _redraw(self) -> None:
        if self.walk is None:
            self.figure_view.clear()
            self.figure_view.layout.display = "none"
            return
        self.figure_view.show(draw_walk(self.walk, style=self.style_picker.value))
        self.figure_view.layout.display = None

    def _on_step(self, change: dict) -> None:
        self._show_step()

    def _move(self, delta: int) -> None:
        self.step_slider.value = min(max(self.step_slider.value + delta, 0), self.step_slider.max)

    def _show_step(self) -> None:
        if self.walk is None:
            return
        i = min(self.step_slider.value, max(len(self.walk.steps) - 1, 0))
        self.step_view.value = _step_html(self.walk, i)
        self.prev_button.disabled = i <= 0
        self.next_button.disabled = i >= len(self.walk.steps) - 1
