"""NestingExplorer: the 2-D walk reference by reference, hardware vs shadow costs (no kernel)."""

from __future__ import annotations

import pytest

from iommu_lab import widgets
from iommu_lab.nesting.nested import Nested, nested_walk_refs


@pytest.fixture
def w():
    return widgets.NestingExplorer()


def test_nesting_explorer_builds_with_no_arguments_and_walks_in_two_dimensions(w):
    assert w.nested.stage1.fmt.name == "x86-64-4level"
    assert w.nested.stage2.fmt.name == "vtd-ss-4level"
    assert w.walk.ok and w.walk.iova == 0x1234
    assert w.ref_slider.max == len(w.walk.refs) - 1
    assert "HPA" in w.summary.value and str(nested_walk_refs(4, 4)) in w.summary.value
    assert "il-nesting-iova" in w.iova_input.get_state()["_dom_classes"]
    assert "il-nesting-view" in w.walk_view.get_state()["_dom_classes"]
    assert w.error.value == ""


def test_stepping_lights_each_reference_on_the_grid(w):
    ref = w.walk.refs[5]
    w.ref_slider.value = 5
    assert f"reference 6 of {len(w.walk.refs)}" in w.ref_view.value
    assert f"{ref.raw:#018x}" in w.ref_view.value
    assert ">6</td>" in w.grid_view.value and "font-weight: bold" in w.grid_view.value
    w.next_button.click()
    assert w.ref_slider.value == 6
    w.prev_button.click()
    w.prev_button.click()
    assert w.ref_slider.value == 4


def test_play_is_linked_to_the_reference_slider_in_the_browser(w):
    assert w.play.max == w.ref_slider.max
    assert w._play_link.get_state()["source"][1] == "value"


def test_submitting_an_iova_in_a_2m_guest_page_walks_one_stage1_row_less(w):
    full = w.walk.counts["stage1"]
    w.iova_input.value = "0x20_1234"
    assert w.walk.iova == 0x20_1234 and w.walk.ok
    assert w.walk.counts["stage1"] == full - 1


def test_an_unmapped_iova_is_a_guest_fault_shown_in_the_summary(w):
    w.iova_input.value = "0x9000_0000"
    assert not w.walk.ok
    assert "FAULT" in w.summary.value
    assert w.error.value == ""


def test_guest_map_then_walk(w):
    w.map_iova_input.value = "0x40_0000"
    w.map_gpa_input.value = "0x80_0000"
    w.map_size_input.value = "4K"
    w.map_button.click()
    assert w.error.value == ""
    w.iova_input.value = "0x40_0010"
    assert w.walk.ok and w.walk.gpa == 0x80_0010


def test_a_refused_guest_map_shows_its_errno(w):
    w.map_iova_input.value = "0x1000"  # already mapped
    w.map_gpa_input.value = "0x90_0000"
    w.map_button.click()
    assert w.error.errno
    assert w.error.errno in w.error.value


def test_costs_compare_the_2d_walk_with_the_shadow_walk(w):
    assert w.shadow is not None
    assert str(w.walk.n_pagetable_refs) in w.costs.value
    assert "shadow_pte_writes" in w.costs.value
    w.compare_button.click()
    assert "hardware nesting" in w.compare_table.value and "walk_refs" in w.compare_table.value


def test_platform_without_nesting_is_refused_with_eopnotsupp_and_the_pair_kept(w):
    old = w.nested
    w.platform_picker.value = "power9-pseries"
    assert w.error.errno == "EOPNOTSUPP"
    assert w.nested is old


def test_platform_with_hardware_nesting_rebuilds_and_replays(w):
    w.platform_picker.value = "arm-smmuv3-48"
    assert w.error.value == ""
    assert w.stage1_picker.value.startswith("arm-lpae-s1") and w.stage2_picker.value.startswith(
        "arm-lpae-s2"
    )
    assert w.walk.ok and w.walk.gpa == 0x10_0234


def test_an_impossible_format_pair_is_refused_inline(w):
    old = w.nested
    w.stage2_picker.value = "arm-lpae-s2-4k-48bit"  # x86-64 stage 1 over an ARM stage 2
    assert w.error.errno == "EOPNOTSUPP"
    assert w.nested is old


def test_a_given_nested_pair_is_the_one_walked():
    nested = Nested.build("x86-64-4level", "amd-v1-4level")
    nested.map(0x5000, 0x3000, 0x1000)
    w = widgets.NestingExplorer(nested, iova="0x5008")
    assert w.nested is nested
    assert w.walk.ok and w.walk.gpa == 0x3008


def test_the_nested_walk_figure_is_drawn_once_per_walk_not_per_reference(w):
    assert w.figure_view.value[:4] == b"\x89PNG"
    before = w.figure_view.renders
    w.ref_slider.value = 3
    assert w.figure_view.renders == before
    w.iova_input.value = "0x20_0010"
    assert w.figure_view.renders == before + 1
