"""PlatformExplorer: compare platforms' GET_INFO and layouts (plain pytest, no kernel)."""

from __future__ import annotations

from iommu_lab import widgets
from iommu_lab.hardware.platform import platforms


def test_platform_explorer_builds_with_no_arguments_and_shows_a_figure_and_table():
    w = widgets.PlatformExplorer()
    assert len(w.platform_picker.value) >= 2
    assert w.figure_view.value[:4] == b"\x89PNG"
    for name in w.platform_picker.value:
        assert name in w.table.value
    assert "il-platforms-picker" in w.platform_picker.get_state()["_dom_classes"]


def test_picking_platforms_redraws_and_compares_their_info():
    w = widgets.PlatformExplorer()
    before = w.figure_view.renders
    w.platform_picker.value = ("power9-pseries", "riscv-sv39")
    assert w.figure_view.renders == before + 1
    assert [p.name for p in w.selected] == ["power9-pseries", "riscv-sv39"]
    p = platforms.get("power9-pseries")
    assert p.title in w.table.value
    assert "page sizes" in w.table.value


def test_empty_selection_clears_the_figure_and_asks_for_a_platform():
    w = widgets.PlatformExplorer()
    w.platform_picker.value = ()
    assert w.figure_view.value == b""
    assert "pick one or more" in w.table.value
    assert w.selected == []


def test_dark_style_redraws():
    w = widgets.PlatformExplorer(["intel-vtd-48"])
    light = w.figure_view.value
    w.style_picker.value = "dark"
    assert w.figure_view.value != light


def test_workload_comparison_runs_on_the_button_and_shows_fit_and_costs():
    w = widgets.PlatformExplorer(["intel-vtd-48", "power9-pseries"])
    assert w.compare_view.renders == 0  # heavy: never on construction
    w.ram_input.value = "8G"
    w.compare_button.click()
    assert w.error.value == ""
    assert w.compare_view.value[:4] == b"\x89PNG"
    assert "8 GiB PC guest" in w.compare_table.value
    assert "power-tce-4k" in w.compare_table.value and "vtd-ss-4level" in w.compare_table.value


def test_workload_comparison_needs_a_platform_and_readable_ram():
    w = widgets.PlatformExplorer()
    w.ram_input.value = "lots"
    w.compare_button.click()
    assert "lots" in w.error.text
    w.platform_picker.value = ()
    w.ram_input.value = "4G"
    w.compare_button.click()
    assert "pick one or more" in w.error.text
