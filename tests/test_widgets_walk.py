"""WalkExplorer: a page table, one IOVA's walk level by level (plain pytest, no kernel)."""

from __future__ import annotations

import pytest

from iommu_lab import widgets
from iommu_lab.pagetable import PageTable


@pytest.fixture
def w():
    return widgets.WalkExplorer()


def test_walk_explorer_builds_with_no_arguments_and_a_first_walk_translates(w):
    assert w.pt.fmt.name == "vtd-ss-4level"
    assert w.walk is not None and w.walk.ok
    assert w.walk.pa == 0x1234_5234
    assert len(w.walk.steps) == 4
    assert "0x1234_5234" in w.summary.value
    assert w.error.value == ""


def test_stable_css_classes_for_the_browser_test(w):
    assert "il-walk-iova" in w.iova_input.get_state()["_dom_classes"]
    assert "il-walk-view" in w.walk_view.get_state()["_dom_classes"]
    assert w.iova_input.get_state()["continuous_update"] is False


def test_submitting_an_iova_walks_it_and_changes_the_walk_display(w):
    before = (w.summary.value, w.step_view.value)
    w.iova_input.value = "0x20_1234"  # inside the 2 MiB superpage: one level shorter
    assert w.walk.iova == 0x20_1234
    assert w.walk.ok and w.walk.page_size == 0x20_0000 and len(w.walk.steps) == 3
    assert (w.summary.value, w.step_view.value) != before


def test_an_unmapped_iova_shows_the_fault_not_an_error(w):
    w.iova_input.value = "0x8000_0000"
    assert not w.walk.ok
    assert "FAULT" in w.summary.value and "not present" in w.summary.value
    assert w.error.value == ""


def test_an_unreadable_iova_is_reported_and_keeps_the_last_walk(w):
    last = w.walk
    w.iova_input.value = "0x12zz"
    assert w.walk is last
    assert "0x12zz" in w.error.text


def test_stepping_shows_each_level_with_its_entry_bits(w):
    assert w.step_slider.max == 3 and w.step_slider.value == 0
    assert w.prev_button.disabled and not w.next_button.disabled
    assert "SL-PML4E" in w.step_view.value
    w.next_button.click()
    w.next_button.click()
    w.next_button.click()
    assert w.step_slider.value == 3 and w.next_button.disabled
    step = w.walk.steps[3]
    assert step.name in w.step_view.value
    assert f"{step.raw:#018x}" in w.step_view.value
    for f in w.pt.fmt.fields(step.level):
        assert f">{f.name}<" in w.step_view.value
    w.next_button.click()
    assert w.step_slider.value == 3
    w.prev_button.click()
    assert w.step_slider.value == 2


def test_map_then_walk_finds_the_new_page(w):
    w.map_iova_input.value = "0x60_0000"
    w.map_pa_input.value = "0x7000_0000"
    w.map_size_input.value = "4K"
    w.map_button.click()
    assert w.error.value == ""
    assert w.pt.iova_to_phys(0x60_0010) == 0x7000_0010
    assert "0x60_0000" in w.mappings_table.value
    w.iova_input.value = "0x60_0010"
    assert w.walk.ok and w.walk.pa == 0x7000_0010


def test_a_refused_map_shows_its_errno_and_leaves_the_table_unchanged(w):
    before = w.pt.to_dataframe("mappings").to_dict("list")
    w.map_iova_input.value = "0x1000"  # already mapped
    w.map_pa_input.value = "0x9000_0000"
    w.map_button.click()
    assert w.error.errno  # EEXIST
    assert w.error.errno in w.error.value
    assert w.pt.to_dataframe("mappings").to_dict("list") == before


def test_write_access_to_a_read_only_page_faults_with_permission(w):
    w.iova_input.value = "0x40_0000"
    assert w.walk.ok
    w.access_picker.value = "w"
    assert not w.walk.ok and "permission" in w.summary.value


def test_picking_another_format_replays_the_mappings(w):
    w.select_format("riscv-sv39")
    assert w.format_picker.value == "riscv-sv39" and w.family_picker.value == "riscv"
    assert w.pt.fmt.name == "riscv-sv39"
    assert w.walk.ok and w.walk.pa == 0x1234_5234 and len(w.walk.steps) == 3


def test_a_format_that_refuses_a_replayed_mapping_says_which(w):
    w.select_format("arm-lpae-s1-64k-48bit")
    assert w.error.errno == "EINVAL"
    assert "not replayed" in w.error.value
    w.select_format("vtd-ss-5level")  # the refused mappings come back on a 4K format
    assert w.error.value == "" and w.walk.ok and len(w.walk.steps) == 5


def test_picking_a_family_selects_its_first_format(w):
    w.family_picker.value = "amd-v1"
    assert w.pt.fmt.name == w.format_picker.options[0]


def test_a_32_bit_oas_format_gets_table_memory_it_can_point_to(w):
    w.select_format("arm-lpae-s1-4k-32bit")
    assert w.error.value == "" and w.walk.ok


def test_a_given_page_table_is_the_one_walked():
    pt = PageTable("x86-64-4level")
    pt.map(0x4000_0000, 0x8000_0000, 0x4000_0000)
    w = widgets.WalkExplorer(pt, iova="0x4000_1234")
    assert w.pt is pt and w.format_picker.value == "x86-64-4level"
    assert w.walk.ok and w.walk.page_size == 0x4000_0000


def test_the_walk_figure_is_drawn_by_render_walk_and_restyled_on_demand(w):
    assert w.figure_view.value[:4] == b"\x89PNG" and w.figure_view.layout.display is None
    before = w.figure_view.renders
    w.step_slider.value = 2  # stepping is HTML only: no redraw
    assert w.figure_view.renders == before
    w.style_picker.value = "dark"
    assert w.figure_view.renders == before + 1


def test_an_unreadable_first_iova_leaves_the_figure_hidden_and_says_why():
    w = widgets.WalkExplorer(iova="0xzz")
    assert w.walk is None and "0xzz" in w.error.value
    assert w.figure_view.layout.display == "none" and w.figure_view.renders == 0
    assert "SL-PTE" in w.mappings_table.value or "vtd-ss-4level" in w.mappings_table.value
