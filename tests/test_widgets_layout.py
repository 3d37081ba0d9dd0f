"""LayoutExplorer: map/unmap/allow/attach through the widgets, errors inline, model unchanged.

Plain pytest, no kernel: widget values are set and buttons clicked from Python; assertions
read the IOAS (the model wired) and the widgets' state.
"""

from __future__ import annotations

import pytest

from iommu_lab import widgets
from iommu_lab.core.ranges import MiB
from iommu_lab.hardware.platform import platforms
from iommu_lab.iommufd.ioas import IOAS


def spans(ioas):
    return [(a.iova, a.length) for a in ioas.areas]


@pytest.fixture
def w():
    return widgets.LayoutExplorer()


def test_layout_explorer_builds_with_no_arguments_on_intel_vtd_48(w):
    assert w.platform_picker.value == "intel-vtd-48"
    assert isinstance(w.ioas, IOAS)
    assert w.figure_view.value[:4] == b"\x89PNG"
    assert w.error.value == ""
    assert "il-layout-iova" in w.iova_input.get_state()["_dom_classes"]
    assert "il-layout-map" in w.map_button.get_state()["_dom_classes"]


def test_map_at_a_fixed_iova_adds_an_area_and_redraws(w):
    before = w.figure_view.renders
    png = w.figure_view.value
    w.iova_input.value = "0x20_0000"
    w.length_input.value = "2M"
    w.map_button.click()
    assert w.error.value == ""
    assert spans(w.ioas) == [(0x20_0000, 2 * MiB)]
    assert w.figure_view.renders == before + 1 and w.figure_view.value != png
    assert "0x20_0000" in w.table.value
    assert "mapped" in w.status.value


def test_map_with_blank_iova_lets_the_allocator_pick(w):
    w.iova_input.value = ""
    w.length_input.value = "4K"
    w.map_button.click()
    assert w.error.value == ""
    assert len(w.ioas.areas) == 1 and w.ioas.areas[0].length == 0x1000


def test_overlapping_map_shows_eexist_inline_and_leaves_the_ioas_unchanged(w):
    w.iova_input.value = "0x0"
    w.length_input.value = "2M"
    w.map_button.click()
    before, renders = spans(w.ioas), w.figure_view.renders
    w.iova_input.value = "0x10_0000"
    w.map_button.click()
    assert w.error.errno == "EEXIST"
    assert "EEXIST" in w.error.get_state()["value"]
    assert spans(w.ioas) == before
    assert w.figure_view.renders == renders


def test_map_over_the_msi_window_is_refused_with_its_errno(w):
    w.iova_input.value = "0xfee0_0000"
    w.length_input.value = "4K"
    w.map_button.click()
    assert w.error.errno  # EINVAL in iommufd: a reserved IOVA
    assert w.error.errno in w.error.value
    assert spans(w.ioas) == []


def test_unreadable_input_is_reported_without_calling_the_model(w):
    w.iova_input.value = "0xfee0_zzzz"
    w.map_button.click()
    assert w.error.errno == ""
    assert "0xfee0_zzzz" in w.error.text
    assert spans(w.ioas) == []


def test_unmap_removes_the_area_and_unmapping_nothing_is_enoent(w):
    w.iova_input.value = "0x40_0000"
    w.length_input.value = "2M"
    w.map_button.click()
    w.unmap_button.click()
    assert w.error.value == "" and spans(w.ioas) == []
    assert "unmapped 2 MiB" in w.status.value
    w.unmap_button.click()
    assert w.error.errno == "ENOENT"


def test_unmap_needs_an_iova(w):
    w.iova_input.value = ""
    w.unmap_button.click()
    assert "iova" in w.error.text and w.error.errno == ""


def test_unmap_all_empties_the_ioas(w):
    for iova in ("0x0", "0x100_0000"):
        w.iova_input.value = iova
        w.map_button.click()
    w.unmap_all_button.click()
    assert w.error.value == "" and spans(w.ioas) == []


def test_allow_iovas_restricts_the_allocator(w):
    w.allow_input.value = "0x1000_0000..0x1fff_ffff"
    w.allow_button.click()
    assert w.error.value == ""
    assert [(r.start, r.last) for r in w.ioas.allowed] == [(0x1000_0000, 0x1FFF_FFFF)]
    w.iova_input.value = ""
    w.length_input.value = "4K"
    w.map_button.click()
    assert 0x1000_0000 <= w.ioas.areas[0].iova <= 0x1FFF_FFFF


def test_attach_and_detach_a_device_of_another_platform(w):
    w.device_picker.value = "power9-pseries"
    w.attach_button.click()
    assert w.error.value == ""
    assert len(w.attached_picker.options) >= 1
    n = len(w.attached_picker.options)
    w.detach_button.click()
    assert w.error.value == ""
    assert len(w.attached_picker.options) == n - 1


def test_attach_conflicting_with_a_mapping_is_refused_and_changes_nothing(w):
    # Map above POWER9 pseries' 1 GiB 32-bit window, then try to attach a pseries device.
    w.iova_input.value = "0x8000_0000"
    w.length_input.value = "2M"
    w.map_button.click()
    devices = list(w.attached_picker.options)
    w.device_picker.value = "power9-pseries"
    w.attach_button.click()
    assert w.error.errno == "EADDRINUSE"
    assert list(w.attached_picker.options) == devices
    assert spans(w.ioas) == [(0x8000_0000, 2 * MiB)]


def test_picking_another_platform_starts_a_fresh_ioas(w):
    w.iova_input.value = "0x0"
    w.map_button.click()
    old = w.ioas
    w.platform_picker.value = "power9-pseries"
    assert w.ioas is not old and spans(w.ioas) == []
    assert w.device_picker.value == "power9-pseries"


def test_given_ioas_is_the_one_wired(w):
    ioas = IOAS.from_platform(platforms.get("arm-smmuv3-48"))
    ioas.map(0x1000, 0x1000)
    x = widgets.LayoutExplorer(ioas)
    assert x.ioas is ioas
    assert x.platform_picker.value is None
    x.iova_input.value = "0x10_0000"
    x.length_input.value = "4K"
    x.map_button.click()
    assert len(ioas.areas) == 2


def test_semantics_picker_starts_a_fresh_ioas_under_other_rules(w):
    w.iova_input.value = "0x0"
    w.map_button.click()
    w.semantics_picker.value = "type1"
    assert w.ioas.semantics.value == "type1" and spans(w.ioas) == []
    assert "type1" in w.info.value


def test_tables_show_areas_reserved_ranges_and_get_info_in_hex(w):
    w.iova_input.value = "0x1_0000_0000"
    w.length_input.value = "1G"
    w.map_button.click()
    assert "0x1_0000_0000" in w.table.value and "0x1_3fff_ffff" in w.table.value
    assert "0xfee0_0000" in w.reserved_table.value
    assert "IOVA alignment" in w.info.value


def test_style_picker_redraws_dark(w):
    before = w.figure_view.renders
    w.style_picker.value = "dark"
    assert w.figure_view.renders == before + 1


def test_lookup_says_where_an_iova_stands_without_changing_anything(w):
    w.iova_input.value = "0xfee0_0010"
    w.lookup_button.click()
    assert w.error.value == ""
    assert "reserved" in w.status.value and "msi" in w.status.value
    assert spans(w.ioas) == []
