"""ObjectExplorer: every button one ioctl of the context, refusals inline with their errno, the
graph redrawn from the model after every step so nothing stale is shown.

Plain pytest, no kernel: values are set and buttons clicked from Python; assertions read the
context (the model wired) and the widgets' state.
"""

from __future__ import annotations

import pytest

from iommu_lab import widgets
from iommu_lab.iommufd import IommufdContext, ObjType


@pytest.fixture
def w():
    return widgets.ObjectExplorer()


def model_state(ctx):
    return (ctx.objects(), ctx.attachments())


def kinds(ctx):
    return [r.type for r in ctx.objects()]


def bound(w, platform="intel-vtd-48"):
    w.platform_picker.value = platform
    w.bind_button.click()
    return w.device_picker.value


def test_the_explorer_starts_on_an_empty_mainline_context(w):
    assert isinstance(w.context, IommufdContext) and len(w.context) == 0
    assert w.kernel_picker.value == "mainline"
    assert w.figure_view.value[:4] == b"\x89PNG" and w.error.value == ""
    assert w.device_picker.value is None and w.object_picker.value is None
    assert "il-objects-attach" in w.attach_button.get_state()["_dom_classes"]


def test_bind_then_ioas_then_attach_makes_an_automatic_hwpt_and_redraws(w):
    dev = bound(w)
    w.ioas_button.click()
    assert w.object_picker.value == 1 + dev  # the new IOAS is picked for the next step
    renders = w.figure_view.renders
    w.attach_button.click()
    assert w.error.value == ""
    (att,) = w.context.attachments()
    assert att.dev_id == dev and w.context[att.hwpt_id].auto_domain
    assert w.figure_view.renders == renders + 1
    assert w.shown == model_state(w.context)
    assert "attached device" in w.status.value and "HWPT_PAGING" in w.table.value


def test_a_vtd_nest_parent_and_a_nested_hwpt_on_it(w):
    dev = bound(w)
    w.ioas_button.click()
    w.flags_picker.value = ("NEST_PARENT",)
    w.paging_button.click()
    parent = w.object_picker.value
    assert w.context[parent].nest_parent and w.error.value == ""
    w.flags_picker.value = ()
    w.data_picker.value = "VTD_S1"
    w.nested_button.click()
    nested = w.object_picker.value
    assert w.context[nested].type is ObjType.HWPT_NESTED and w.context[nested].parent_id == parent
    w.attach_button.click()
    assert [(a.dev_id, a.hwpt_id) for a in w.context.attachments()] == [(dev, nested)]


def test_smmuv3_nests_through_a_viommu_with_a_vdevice(w):
    dev = bound(w, "arm-smmuv3-48")
    w.ioas_button.click()
    w.flags_picker.value = ("NEST_PARENT",)
    w.paging_button.click()
    w.viommu_type_picker.value = "ARM_SMMUV3"
    w.viommu_button.click()
    viommu = w.object_picker.value
    w.virt_id_input.value = "0x20"
    w.vdevice_button.click()
    w.object_picker.value = viommu
    w.flags_picker.value = ()
    w.data_picker.value = "ARM_SMMUV3"
    w.nested_button.click()
    assert w.error.value == ""
    assert kinds(w.context) == [ObjType.DEVICE, ObjType.IOAS, ObjType.HWPT_PAGING, ObjType.VIOMMU,
                                ObjType.VDEVICE, ObjType.HWPT_NESTED]
    assert w.context[viommu].vdevs == {0x20: 5} and w.context[dev].type is ObjType.DEVICE


def test_a_refused_allocation_shows_its_errno_and_leaves_graph_and_model_alike(w):
    bound(w, "arm-smmuv3-48")
    w.ioas_button.click()
    before, png, renders = model_state(w.context), w.figure_view.value, w.figure_view.renders
    w.flags_picker.value = ("NEST_PARENT", "DIRTY_TRACKING")
    w.paging_button.click()
    assert w.error.errno == "EOPNOTSUPP" and "arm_smmu_domain_alloc_paging_flags" in w.error.text
    assert model_state(w.context) == before and w.shown == before
    assert w.figure_view.renders == renders + 1 and w.figure_view.value == png  # redrawn, unchanged
    assert "HWPT_PAGING refused" in w.status.value


def test_nested_on_smmuv3_without_a_viommu_is_refused_by_iommufd_hwpt_nested_alloc(w):
    bound(w, "arm-smmuv3-48")
    w.ioas_button.click()
    w.flags_picker.value = ("NEST_PARENT",)
    w.paging_button.click()
    w.flags_picker.value = ()
    w.data_picker.value = "ARM_SMMUV3"
    before = model_state(w.context)
    w.nested_button.click()
    assert w.error.errno == "EOPNOTSUPP" and "viommu_alloc" in w.error.text
    assert model_state(w.context) == before == w.shown


def test_destroy_answers_ebusy_while_referenced_then_succeeds_in_order(w):
    bound(w)
    w.ioas_button.click()
    ioas = w.object_picker.value
    w.flags_picker.value = ("NEST_PARENT",)
    w.paging_button.click()
    parent = w.object_picker.value
    w.object_picker.value = ioas
    w.destroy_button.click()
    assert w.error.errno == "EBUSY" and f"HWPT_PAGING {parent}" in w.error.text
    assert ioas in w.context and w.shown == model_state(w.context)
    w.object_picker.value = parent
    w.destroy_button.click()
    w.object_picker.value = ioas
    w.destroy_button.click()
    assert w.error.value == "" and ioas not in w.context and parent not in w.context


def test_replace_moves_a_device_and_a_pasid_attach_needs_a_pasid_hwpt(w):
    dev = bound(w)
    w.ioas_button.click()
    w.paging_button.click()
    first = w.object_picker.value
    w.attach_button.click()
    w.flags_picker.value = ("PASID",)
    w.object_picker.value = 2  # the IOAS
    w.paging_button.click()
    second = w.object_picker.value
    w.replace_button.click()
    assert w.context[dev].attached == {0: second} and w.error.value == ""
    w.object_picker.value = first
    w.pasid_input.value = "7"
    w.attach_button.click()
    assert w.error.errno == "EINVAL" and "iommufd_hwpt_pasid_compat" in w.error.text
    w.object_picker.value = second
    w.attach_button.click()
    assert w.context[dev].attached == {0: second, 7: second}
    w.detach_button.click()
    assert w.context[dev].attached == {0: second} and w.shown == model_state(w.context)


def test_input_errors_are_shown_without_an_errno_and_change_nothing(w):
    w.attach_button.click()
    assert w.error.errno == "" and "bind one first" in w.error.text
    bound(w)
    w.ioas_button.click()
    w.pasid_input.value = "zz"
    before = model_state(w.context)
    w.attach_button.click()
    assert w.error.text.startswith("input:") and model_state(w.context) == before == w.shown


def test_a_new_context_follows_the_picked_kernel_and_its_rules(w):
    w.kernel_picker.value = "6.6"
    w.new_button.click()
    assert w.context.kernel.value == "6.6" and len(w.context) == 0
    bound(w)
    w.ioas_button.click()
    w.flags_picker.value = ("NEST_PARENT",)
    w.paging_button.click()
    assert w.error.errno == "EOPNOTSUPP" and "6.7" in w.error.text


def test_the_explorer_wires_a_given_context_and_the_dark_style_redraws(w):
    ctx = IommufdContext()
    dev = ctx.bind("amd-v1")
    ctx.attach(dev, ctx.ioas_alloc())
    x = widgets.ObjectExplorer(ctx)
    assert x.context is ctx and x.device_picker.value == dev and x.shown == model_state(ctx)
    png = x.figure_view.value
    x.style_picker.value = "dark"
    assert x.figure_view.value != png
    x.close()
