"""Poke at one I/O address space: map, unmap, allow, attach, and watch the layout change."""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from iommu_lab import render
from iommu_lab.core.ranges import fmt_addr, fmt_size
from iommu_lab.hardware.platform import platforms as _catalogue
from iommu_lab.render.html import esc
from iommu_lab.widgets.common import (
    AddressInput,
    ErrorView,
    FigureView,
    action_button,
    close_tree,
    frame_html,
    reporting,
    rows_html,
)

__all__ = ["LayoutExplorer"]

DEFAULT_PLATFORM = "intel-vtd-48"


#: Area rows shown before the table says how many more there are.
AREA_ROWS = 20


def _areas_frame(ioas: Any) -> Any:
    """``ioas.to_dataframe()`` with the pinned pages shown by their size, not their object id
    (a COPY shares its source's pages: the same size, pinned once)."""
    df = ioas.to_dataframe()
    if "pages" in df.columns:
        pinned = [fmt_size(a.pages.length) for a in ioas.areas]
        df = df.drop(columns=["pages"]).assign(pinned=pinned)
    return df


def _ioas_class():
    # The model layer is imported when an explorer is built, not when this module is.
    from iommu_lab.iommufd.ioas import IOAS

    return IOAS


def _semantics_names() -> list[str]:
    from iommu_lab.iommufd.ioas import Semantics

    return [s.value for s in Semantics]


def _info_rows(info: Any) -> list[tuple[str, str]]:
    """GET_INFO as (attribute, value) rows: formatting only, every value comes from ``info``."""
    caps = info.capabilities
    flags = [
        name
        for name, on in (
            ("map/unmap", caps.type1_map_unmap),
            ("pgtable binding", caps.pgtable_binding),
            ("pasid-table binding", caps.pasid_table_binding),
        )
        if on
    ]
    return [
        ("semantics", getattr(info.semantics, "value", str(info.semantics))),
        ("capabilities", ", ".join(flags + [f"nesting: {caps.nesting}"])),
        (
            "page sizes",
            ", ".join(fmt_size(s) for s in info.page_sizes[:8])
            + (" …" if len(info.page_sizes) > 8 else ""),
        ),
        ("IOVA alignment", fmt_size(info.iova_alignment)),
        ("permitted", ", ".join(str(r) for r in info.permitted) or "none"),
        ("max mappings", "no limit" if info.max_mappings is None else str(info.max_mappings)),
    ]


class LayoutExplorer(W.VBox):
    """An IOAS with controls: map, unmap, allow IOVAs, attach devices, and its live layout.

    Every control calls one IOAS method; a refused call shows the kernel's errno and the
    model's message inline and leaves the IOAS as it was. The figure and the area table are
    redrawn after each successful operation (on the button, never per keystroke).

    Parameters
    ----------
    ioas : IOAS, optional
        The address space to explore; default: ``IOAS.from_platform`` of ``platform``.
    platform : str (default: "intel-vtd-48")
        The platform a new IOAS is made from (when ``ioas`` is not given).

    Attributes
    ----------
    ioas: IOAS
        The model being explored; replaced when another platform is picked.
    platform_picker: ipywidgets.Dropdown (default: "intel-vtd-48")
        Picking a platform starts a fresh ``IOAS.from_platform(platform)``; ``None`` when the
        explorer was given an IOAS.
    semantics_picker: ipywidgets.Dropdown (default: "iommufd", or the given IOAS's)
        The rule book (``IOAS(semantics=...)``); changing it starts a fresh IOAS, so the same
        clicks can be replayed under iommufd, its VFIO compatibility layer and real type1.
    new_button: ipywidgets.Button
        Start a fresh IOAS from the picked platform and semantics.
    iova_input: AddressInput (default: "", optional)
        The IOVA to map or unmap; blank lets the allocator pick one (``IOMMU_IOAS_MAP``
        without ``FIXED_IOVA``).
    length_input: AddressInput (default: "2M", a size)
        The length to map or unmap.
    prot_picker: ipywidgets.Dropdown (default: "rw")
        The mapping's permissions.
    map_button, unmap_button, unmap_all_button: ipywidgets.Button
        ``ioas.map(length, iova, prot=...)``, ``ioas.unmap(iova, length)``, ``ioas.unmap_all()``.
    lookup_button: ipywidgets.Button
        ``ioas.lookup(iova)``: which area holds the IOVA, or why none does (shown in ``status``).
    allow_input: AddressInput (default: "", ranges)
        Ranges for ``ioas.allow_iovas`` (``0x0..0xffff_ffff, 0x1_0000_0000+4G``).
    allow_button: ipywidgets.Button
    device_picker: ipywidgets.Dropdown (default: the picked platform)
        The platform whose ``device()`` the attach button attaches.
    attach_button, detach_button: ipywidgets.Button
    attached_picker: ipywidgets.Dropdown
        The attached devices; the detach button detaches the chosen one.
    style_picker: ipywidgets.ToggleButtons (default: "light")
    status: ipywidgets.HTML
        What the last successful operation did (``mapped [0x0, 0x1f_ffff] (2 MiB)``).
    error: ErrorView
        The last refusal, errno first; empty after a success.
    figure_view: FigureView
        ``render.layout(ioas)``.
    table: ipywidgets.HTML
        ``ioas.to_dataframe()`` (the areas) with addresses in hex.
    reserved_table: ipywidgets.HTML
        ``ioas.to_dataframe("reserved")``: the reserved tree, with owners.
    info: ipywidgets.HTML
        ``ioas.info()`` (GET_INFO).
    """

    def __init__(
        self,
        ioas: Any = None,
        *,
        platform: str = DEFAULT_PLATFORM,
        semantics: str = "iommufd",
        **kwargs: Any,
    ) -> None:
        names = _catalogue.names()
        if ioas is None:
            ioas = _ioas_class().from_platform(_catalogue.get(platform), semantics=semantics)
            picked: str | None = platform
        else:
            picked = None
            semantics = getattr(getattr(ioas, "semantics", None), "value", semantics)
        self.ioas = ioas
        self._device_count = 0
        self._quiet = False
        #: (platform, semantics) the IOAS shown was made from (platform None: given by the caller).
        self._shown = (picked, semantics)

        self.platform_picker = W.Dropdown(options=names, value=picked, description="platform")
        self.platform_picker.add_class("il-layout-platform")
        self.semantics_picker = W.Dropdown(
            options=_semantics_names(), value=semantics, description="semantics"
        )
        self.semantics_picker.add_class("il-layout-semantics")
        self.new_button = action_button(
            "New IOAS", "il-layout-new", "start a fresh IOAS from the picked platform"
        )

        self.iova_input = AddressInput(
            label="iova", optional=True, placeholder="auto (allocate)", css_class="il-layout-iova"
        )
        self.length_input = AddressInput(
            "2M", kind="size", label="length", css_class="il-layout-length"
        )
        self.prot_picker = W.Dropdown(
            options=["rw", "r", "w"],
            value="rw",
            description="prot",
            layout=W.Layout(width="9em"),
            style={"description_width": "initial"},
        )
        self.prot_picker.add_class("il-layout-prot")
        self.map_button = action_button(
            "Map", "il-layout-map", "ioas.map(length, iova, prot=...)", "primary"
        )
        self.unmap_button = action_button("Unmap", "il-layout-unmap", "ioas.unmap(iova, length)")
        self.unmap_all_button = action_button(
            "Unmap all", "il-layout-unmap-all", "ioas.unmap_all()"
        )
        self.lookup_button = action_button("Lookup", "il-layout-lookup", "ioas.lookup(iova)")

        self.allow_input = AddressInput(
            kind="ranges",
            label="allowed ranges",
            placeholder="0x0..0xffff_ffff, 0x1_0000_0000+4G",
            css_class="il-layout-allow-input",
            layout=W.Layout(width="24em"),
        )
        self.allow_button = action_button(
            "Allow IOVAs", "il-layout-allow", "ioas.allow_iovas(ranges)"
        )

        self.device_picker = W.Dropdown(
            options=names, value=picked or names[0], description="device of"
        )
        self.device_picker.add_class("il-layout-device")
        self.attach_button = action_button(
            "Attach", "il-layout-attach", "ioas.attach(platform.device())"
        )
        self.attached_picker = W.Dropdown(options=[], description="attached")
        self.attached_picker.add_class("il-layout-attached")
        self.detach_button = action_button("Detach", "il-layout-detach", "ioas.detach(device)")

        self.style_picker = W.ToggleButtons(
            options=["light", "dark"], value="light", description="style"
        )
        self.style_picker.add_class("il-layout-style")
        self.status = W.HTML()
        self.status.add_class("il-layout-status")
        self.error = ErrorView()
        self.error.add_class("il-layout-error")
        self.figure_view = FigureView()
        self.figure_view.add_class("il-layout-figure")
        self.table = W.HTML()
        self.table.add_class("il-layout-table")
        self.reserved_table = W.HTML()
        self.reserved_table.add_class("il-layout-reserved")
        self.info = W.HTML()
        self.info.add_class("il-layout-info")

        controls = W.VBox(
            [
                W.HBox([self.platform_picker, self.semantics_picker, self.new_button]),
                W.HBox([self.iova_input.row("iova"), self.length_input.row("length")]),
                W.HBox(
                    [
                        self.prot_picker,
                        self.map_button,
                        self.unmap_button,
                        self.unmap_all_button,
                        self.lookup_button,
                    ]
                ),
                self.allow_input.row("allow"),
                W.HBox([self.allow_button]),
                W.HBox(
                    [
                        self.device_picker,
                        self.attach_button,
                        self.attached_picker,
                        self.detach_button,
                    ]
                ),
            ]
        )
        tabs = W.Tab(
            children=[self.table, self.reserved_table, self.info],
            titles=["areas", "reserved", "info"],
        )
        super().__init__(
            children=[controls, self.status, self.error, self.style_picker, self.figure_view, tabs],
            **kwargs,
        )
        self.add_class("il-layout")

        self.platform_picker.observe(self._on_platform, names="value")
        self.semantics_picker.observe(self._on_platform, names="value")
        self.style_picker.observe(lambda change: self._redraw(), names="value")
        self.new_button.on_click(self._on_new)
        self.map_button.on_click(self._on_map)
        self.unmap_button.on_click(self._on_unmap)
        self.unmap_all_button.on_click(self._on_unmap_all)
        self.lookup_button.on_click(self._on_lookup)
        self.allow_button.on_click(self._on_allow)
        self.attach_button.on_click(self._on_attach)
        self.detach_button.on_click(self._on_detach)
        self.refresh()

    def close(self) -> None:
        """Close the explorer and every widget in it (a box alone closes only itself)."""
        close_tree(self)

    # -- actions: each parses, calls one model method, reports -----------------------------
    def _done(self, text: str) -> None:
        self.status.value = f"<span class='il-layout-done'>{esc(text)}</span>"
        self.refresh()

    def _failed(self) -> None:
        """A refused action: the status of the one before no longer describes the IOAS."""
        self.status.value = ""

    def _on_platform(self, change: dict) -> None:
        if not self._quiet and self.platform_picker.value is not None:
            self._on_new()

    def _on_new(self, _: Any = None) -> None:
        name = self.platform_picker.value
        with reporting(self.error) as out:
            if name is None:
                raise ValueError("pick a platform to start a fresh IOAS from")
            ioas = _ioas_class().from_platform(
                _catalogue.get(name), semantics=self.semantics_picker.value
            )
        if out.ok:
            self.ioas = ioas
            self._shown = (name, self.semantics_picker.value)
            self.device_picker.value = name
            self._done(f"new IOAS ({self.semantics_picker.value}) from platform {name}")
            return
        # Refused: the pickers go back to what the IOAS shown was made from, so its layout never
        # stands under the refused platform's name; the last action's status no longer applies.
        self._failed()
        self._quiet = True
        try:
            self.platform_picker.value, self.semantics_picker.value = self._shown
        finally:
            self._quiet = False

    def _on_map(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            length = self.length_input.parse()
            iova = self.iova_input.parse()
            area = self.ioas.map(length, iova, prot=self.prot_picker.value)
        if not out.ok:
            self._failed()
        if out.ok:
            self._done(
                f"mapped [{fmt_addr(area.iova)}, {fmt_addr(area.last)}] "
                f"({fmt_size(area.length)}, {self.prot_picker.value})"
            )

    def _on_unmap(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            iova = self.iova_input.parse()
            if iova is None:
                raise ValueError("enter the iova to unmap (e.g. '0x0')")
            length = self.length_input.parse()
            unmapped = self.ioas.unmap(iova, length)
        if not out.ok:
            self._failed()
        if out.ok:
            self._done(f"unmapped {fmt_size(unmapped)} at {fmt_addr(iova)}")

    def _on_unmap_all(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            unmapped = self.ioas.unmap_all()
        if not out.ok:
            self._failed()
        if out.ok:
            self._done(f"unmapped everything ({fmt_size(unmapped)})")

    def _on_lookup(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            iova = self.iova_input.parse()
            if iova is None:
                raise ValueError("enter the iova to look up (e.g. '0xfee0_0000')")
            found = self.ioas.lookup(iova)
        if not out.ok:
            self._failed()
        if out.ok:
            self.status.value = f"<span class='il-layout-done'>{esc(str(found))}</span>"

    def _on_allow(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            ranges = self.allow_input.parse()
            self.ioas.allow_iovas(ranges)
        if not out.ok:
            self._failed()
        if out.ok:
            self._done(f"allowed {', '.join(str(r) for r in ranges)}")

    def _on_attach(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            name = self.device_picker.value
            self._device_count += 1
            device = _catalogue.get(name).device(f"dev{self._device_count}")
            self.ioas.attach(device)
        if not out.ok:
            self._failed()
        if out.ok:
            self._done(f"attached {device.name} ({name})")

    def _on_detach(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            device = self.attached_picker.value
            if device is None:
                raise ValueError("no device is attached; attach one first")
            self.ioas.detach(device)
        if not out.ok:
            self._failed()
        if out.ok:
            self._done(f"detached {device.name}")

    # -- views --------------------------------------------------------------------------
    def _attached(self) -> list[Any]:
        return list(getattr(self.ioas, "devices", ()) or ())

    def _redraw(self) -> None:
        self.figure_view.show(render.layout(self.ioas, style=self.style_picker.value))

    def refresh(self) -> None:
        """Redraw the figure, the tables, the info and the attached-device list from the model."""
        self._redraw()
        self.table.value = frame_html(
            _areas_frame(self.ioas), f"areas ({len(self.ioas.areas)})", empty="no areas mapped",
            max_rows=AREA_ROWS,
        )
        self.reserved_table.value = frame_html(
            self.ioas.to_dataframe("reserved"), "reserved ranges", empty="nothing reserved"
        )
        self.info.value = rows_html(
            "GET_INFO", ("attribute", "value"), _info_rows(self.ioas.info())
        )
        devices = self._attached()
        self.attached_picker.options = [(getattr(d, "name", str(d)), d) for d in devices]
        self.attached_picker.value = devices[-1] if devices else None
