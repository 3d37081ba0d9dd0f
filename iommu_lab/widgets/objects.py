"""Poke at iommufd's object graph: allocate, attach, replace, detach, destroy, and watch it."""

from __future__ import annotations

from typing import Any, Callable

import ipywidgets as W

from iommu_lab import render
from iommu_lab.hardware.platform import platforms as _catalogue
from iommu_lab.render.html import esc
from iommu_lab.widgets.common import (
    AddressInput,
    ErrorView,
    FigureView,
    action_button,
    close_tree,
    reporting,
)

__all__ = ["ObjectExplorer"]

DEFAULT_PLATFORM = "intel-vtd-48"


def _model() -> Any:
    # The model layer is imported when an explorer is built, not when this module is.
    import iommu_lab.iommufd as iommufd

    return iommufd


class ObjectExplorer(W.VBox):
    """One ``/dev/iommu`` with controls: every button is one ioctl of ``IommufdContext``, its
    refusal shown inline (errno first, then why and which kernel function refuses), and the
    object graph redrawn from the model after every step, refused or not.

    Parameters
    ----------
    context : IommufdContext, optional
        The context to explore; default: a fresh one of ``kernel``.
    kernel : str (default: "mainline")
        Whose rules a fresh context follows (``"mainline"``, ``"6.12"``, ``"6.6"``).

    Attributes
    ----------
    context: IommufdContext
        The model being explored; replaced by the new-context button.
    kernel_picker: ipywidgets.Dropdown (default: "mainline")
        The kernel a new context follows.
    new_button: ipywidgets.Button
        Start an empty context of the picked kernel.
    platform_picker: ipywidgets.Dropdown (default: "intel-vtd-48")
        The platform the bind button binds a device of.
    bind_button, unbind_button: ipywidgets.Button
        ``context.bind(platform)``, ``context.unbind(device)``.
    device_picker: ipywidgets.Dropdown (default: the newest bound device)
        The device (``dev_id``) of HWPT_ALLOC, VIOMMU_ALLOC, VDEVICE_ALLOC and attach.
    object_picker: ipywidgets.Dropdown (default: the newest object)
        The other object of a step: ``pt_id`` of HWPT_ALLOC and attach, ``hwpt_id`` of
        VIOMMU_ALLOC, ``viommu_id`` of VDEVICE_ALLOC, the id DESTROY destroys. Every object is
        listed, so a wrong kind can be tried and the kernel's answer read.
    flags_picker: ipywidgets.SelectMultiple (default: ())
        HWPT_ALLOC flags: NEST_PARENT, DIRTY_TRACKING, PASID.
    data_picker: ipywidgets.Dropdown (default: "VTD_S1")
        The driver data type of a nested HWPT.
    viommu_type_picker: ipywidgets.Dropdown (default: "ARM_SMMUV3")
    virt_id_input: AddressInput (default: "0x10")
        The vDEVICE's virtual id (vSID, vDeviceID).
    pasid_input: AddressInput (default: "", optional)
        The PASID of attach, replace and detach; blank is the RID.
    ioas_button, paging_button, nested_button, viommu_button, vdevice_button: ipywidgets.Button
        IOMMU_IOAS_ALLOC, IOMMU_HWPT_ALLOC on an IOAS, IOMMU_HWPT_ALLOC on a parent or vIOMMU,
        IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC.
    attach_button, replace_button, detach_button, destroy_button: ipywidgets.Button
    style_picker: ipywidgets.ToggleButtons (default: "light")
    status: ipywidgets.HTML
        What the last step did, or which step was refused.
    error: ErrorView
        The last refusal, errno first; empty after a success.
    figure_view: FigureView
        ``render.object_graph(context)``.
    table: ipywidgets.HTML
        The context's notebook view: every object and what it points at.
    shown: tuple
        ``(context.objects(), context.attachments())`` as last drawn (tests compare it with the
        model to see that nothing stale is shown).
    """

    def __init__(self, context: Any = None, *, kernel: str = "mainline", **kwargs: Any) -> None:
        m = _model()
        self.context = context if context is not None else m.IommufdContext(kernel=kernel)
        self.shown: tuple = ()
        self._selected: int | None = None
        kernels = [k.value for k in m.Kernel]
        self.kernel_picker = W.Dropdown(options=kernels, value=self.context.kernel.value, description="kernel")
        self.new_button = action_button("New context", "il-objects-new", "IommufdContext(kernel=...)")
        self.platform_picker = W.Dropdown(options=_catalogue.names(), value=DEFAULT_PLATFORM, description="platform")
        self.bind_button = action_button("Bind device", "il-objects-bind", "context.bind(platform)", "primary")
        self.unbind_button = action_button("Unbind", "il-objects-unbind", "context.unbind(dev_id)")
        self.device_picker = W.Dropdown(options=[], description="device")
        self.object_picker = W.Dropdown(options=[], description="object")
        flag_names = [f.name for f in m.HwptFlag if f.name in ("NEST_PARENT", "DIRTY_TRACKING", "PASID")]
        self.flags_picker = W.SelectMultiple(options=flag_names, value=(), description="flags", rows=3)
        self.data_picker = W.Dropdown(options=[d.name for d in m.HwptData if d.name != "NONE"], value="VTD_S1",
                                      description="data")
        self.viommu_type_picker = W.Dropdown(options=[v.name for v in m.ViommuType], value="ARM_SMMUV3",
                                             description="vIOMMU")
        self.virt_id_input = AddressInput("0x10", label="virt_id", css_class="il-objects-virt-id")
        self.pasid_input = AddressInput(label="pasid", optional=True, placeholder="RID (no PASID)",
                                        css_class="il-objects-pasid")
        self.ioas_button = action_button("IOAS", "il-objects-ioas", "context.ioas_alloc()")
        self.paging_button = action_button("HWPT_PAGING", "il-objects-paging",
                                           "context.hwpt_alloc(device, ioas, flags)")
        self.nested_button = action_button("HWPT_NESTED", "il-objects-nested",
                                           "context.hwpt_alloc(device, parent or viommu, flags, data_type=data)")
        self.viommu_button = action_button("VIOMMU", "il-objects-viommu",
                                           "context.viommu_alloc(device, hwpt, type)")
        self.vdevice_button = action_button("VDEVICE", "il-objects-vdevice",
                                            "context.vdevice_alloc(viommu, device, virt_id)")
        self.attach_button = action_button("Attach", "il-objects-attach", "context.attach(device, object, pasid=)",
                                           "primary")
        self.replace_button = action_button("Replace", "il-objects-replace", "context.replace(device, object, pasid=)")
        self.detach_button = action_button("Detach", "il-objects-detach", "context.detach(device, pasid=)")
        self.destroy_button = action_button("Destroy", "il-objects-destroy", "context.destroy(object)", "danger")
        self.style_picker = W.ToggleButtons(options=["light", "dark"], value="light", description="style")
        self.status = W.HTML()
        self.status.add_class("il-objects-status")
        self.error = ErrorView()
        self.error.add_class("il-objects-error")
        self.figure_view = FigureView()
        self.figure_view.add_class("il-objects-figure")
        self.table = W.HTML()
        self.table.add_class("il-objects-table")

        controls = W.VBox([
            W.HBox([self.kernel_picker, self.new_button]),
            W.HBox([self.platform_picker, self.bind_button, self.unbind_button]),
            W.HBox([self.device_picker, self.object_picker]),
            W.HBox([self.flags_picker, W.VBox([self.data_picker, self.viommu_type_picker]),
                    W.VBox([self.virt_id_input.row("virt_id"), self.pasid_input.row("pasid")])]),
            W.HBox([W.Label("allocate:"), self.ioas_button, self.paging_button, self.nested_button,
                    self.viommu_button, self.vdevice_button]),
            W.HBox([self.attach_button, self.replace_button, self.detach_button, self.destroy_button]),
        ])
        super().__init__(children=[controls, self.status, self.error, self.style_picker, self.figure_view,
                                   self.table], **kwargs)
        self.add_class("il-objects")

        self.new_button.on_click(self._on_new)
        self.style_picker.observe(lambda change: self.refresh(), names="value")
        for button, step in (
            (self.bind_button, self._bind), (self.unbind_button, self._unbind), (self.ioas_button, self._ioas),
            (self.paging_button, self._paging), (self.nested_button, self._nested),
            (self.viommu_button, self._viommu), (self.vdevice_button, self._vdevice),
            (self.attach_button, self._attach), (self.replace_button, self._replace),
            (self.detach_button, self._detach), (self.destroy_button, self._destroy),
        ):
            button.on_click(self._runner(button.description, step))
        self.refresh()

    def close(self) -> None:
        """Close the explorer and every widget in it (a box alone closes only itself)."""
        close_tree(self)

    # -- running one step ----------------------------------------------------------------------
    def _runner(self, name: str, step: Callable[[], str]) -> Callable[[Any], None]:
        def run(_: Any = None) -> None:
            with reporting(self.error) as out:
                done = step()
            if out.ok:
                self.status.value = f"<span class='il-objects-done'>{esc(done)}</span>"
            else:
                self.status.value = (f"<span class='il-objects-refused'>{esc(name)} refused; the graph below is the "
                                     "context as it still is</span>")
            self.refresh()

        return run

    def _device(self) -> int:
        if self.device_picker.value is None:
            raise ValueError("no device is bound; bind one first")
        return self.device_picker.value

    def _object(self) -> int:
        if self.object_picker.value is None:
            raise ValueError("no object to use; allocate an IOAS first")
        return self.object_picker.value

    def _pasid(self) -> Any:
        return self.pasid_input.parse()

    def _select(self, new_id: int) -> None:
        self._selected = new_id

    # -- the steps: each one model call; the text says what it made ----------------------------
    def _on_new(self, _: Any = None) -> None:
        with reporting(self.error) as out:
            ctx = _model().IommufdContext(kernel=self.kernel_picker.value)
        if out.ok:
            self.context = ctx
            self.status.value = f"<span class='il-objects-done'>new context (kernel {esc(ctx.kernel.value)})</span>"
        self.refresh()

    def _bind(self) -> str:
        new = self.context.bind(self.platform_picker.value)
        self.device_picker.options = self._device_options()
        self.device_picker.value = new
        return f"bound {self.context[new].label} behind {self.platform_picker.value}"

    def _unbind(self) -> str:
        dev = self._device()
        label = self.context[dev].label
        self.context.unbind(dev)
        return f"unbound {label}"

    def _ioas(self) -> str:
        new = self.context.ioas_alloc()
        self._select(new)
        return f"IOAS_ALLOC made IOAS {new}"

    def _flags(self) -> str:
        return "|".join(self.flags_picker.value)

    def _paging(self) -> str:
        new = self.context.hwpt_alloc(self._device(), self._object(), self._flags())
        self._select(new)
        return f"HWPT_ALLOC made HWPT_PAGING {new} ({self.context[new].detail})"

    def _nested(self) -> str:
        new = self.context.hwpt_alloc(self._device(), self._object(), self._flags(),
                                      data_type=self.data_picker.value)
        self._select(new)
        return f"HWPT_ALLOC made HWPT_NESTED {new} ({self.context[new].detail})"

    def _viommu(self) -> str:
        new = self.context.viommu_alloc(self._device(), self._object(), self.viommu_type_picker.value)
        self._select(new)
        return f"VIOMMU_ALLOC made VIOMMU {new} ({self.context[new].detail})"

    def _vdevice(self) -> str:
        new = self.context.vdevice_alloc(self._object(), self._device(), self.virt_id_input.parse())
        self._select(new)
        return f"VDEVICE_ALLOC made VDEVICE {new} ({self.context[new].detail})"

    def _attach(self) -> str:
        pasid = self._pasid()
        hwpt = self.context.attach(self._device(), self._object(), pasid=pasid)
        return f"attached device {self._device()} {_at(pasid)} to HWPT {hwpt}"

    def _replace(self) -> str:
        pasid = self._pasid()
        hwpt = self.context.replace(self._device(), self._object(), pasid=pasid)
        return f"replaced: device {self._device()} {_at(pasid)} now on HWPT {hwpt}"

    def _detach(self) -> str:
        pasid = self._pasid()
        self.context.detach(self._device(), pasid=pasid)
        return f"detached device {self._device()} {_at(pasid)}"

    def _destroy(self) -> str:
        obj = self._object()
        label = self.context[obj].label
        self.context.destroy(obj)
        return f"DESTROY removed {label}"

    # -- views: always from the model ----------------------------------------------------------
    def _device_options(self) -> list[tuple[str, int]]:
        return [(r.label, r.id) for r in self.context.objects() if r.type.value == "DEVICE"]

    def refresh(self) -> None:
        """Re-read every picker, the figure and the table from the context."""
        devices = self._device_options()
        keep = self.device_picker.value
        self.device_picker.options = devices
        ids = [i for _, i in devices]
        self.device_picker.value = keep if keep in ids else (ids[-1] if ids else None)
        objects = [(f"{r.id}: {r.type.value}", r.id) for r in self.context.objects()]
        want = getattr(self, "_selected", None)
        keep = want if want is not None else self.object_picker.value
        self._selected = None
        self.object_picker.options = objects
        ids = [i for _, i in objects]
        self.object_picker.value = keep if keep in ids else (ids[-1] if ids else None)
        self.shown = (self.context.objects(), self.context.attachments())
        self.figure_view.show(render.object_graph(self.context, style=self.style_picker.value))
        self.table.value = self.context._repr_html_()


def _at(pasid: Any) -> str:
    return "RID" if pasid is None else f"pasid {pasid}"
