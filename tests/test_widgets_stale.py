"""No explorer shows a view that no longer belongs to its inputs.

Each explorer is driven from Python through a failed or changed input: a refused platform, an
impossible format pair, a table that cannot be built, an unreadable IOVA, a model error. The
view then either describes what the pickers name, or is cleared (or marked stale) and says why.
"""

from __future__ import annotations

import pytest

from iommu_lab import widgets
from iommu_lab.core.errors import IommuError
from iommu_lab.dma import trace as T


# -- nesting -------------------------------------------------------------------------------
def test_a_refused_platform_leaves_no_grid_or_figure_under_its_name():
    w = widgets.NestingExplorer()
    w.platform_picker.value = "arm-smmuv3-48"
    arm_grid, arm_png = w.grid_view.value, w.figure_view.value
    w.platform_picker.value = "power9-pseries"
    assert w.error.errno == "EOPNOTSUPP" and "power9-pseries" in w.error.text
    # The picker names the pair still shown, and the error says which that is.
    assert w.platform_picker.value == "arm-smmuv3-48"
    assert "still showing arm-lpae-s1-4k-48bit over arm-lpae-s2-4k-48bit" in w.error.text
    assert (w.grid_view.value, w.figure_view.value) == (arm_grid, arm_png)


def test_a_refused_format_pair_puts_both_pickers_back_on_the_pair_shown():
    w = widgets.NestingExplorer()
    w.stage2_picker.value = "arm-lpae-s2-4k-48bit"  # x86-64 over an ARM stage 2: no IOMMU does it
    assert w.error.errno == "EOPNOTSUPP"
    assert (w.stage1_picker.value, w.stage2_picker.value) == ("x86-64-4level", "vtd-ss-4level")
    assert "vtd-ss-4level" in w.pair_info.value


def test_an_unreadable_nested_iova_marks_the_walk_shown_as_stale():
    w = widgets.NestingExplorer()
    w.iova_input.value = "0x12zz"
    assert "0x12zz" in w.error.text
    assert w.stale and "stale: still showing the walk of 0x1234" in w.summary.value
    w.iova_input.value = "0x1234"
    assert not w.stale and "stale" not in w.summary.value


def test_a_nested_walk_that_cannot_run_on_a_new_pair_clears_the_old_one():
    w = widgets.NestingExplorer()
    w.iova_input.value = "0x12zz"  # the box no longer reads; the old walk is marked stale
    w.platform_picker.value = "arm-smmuv3-48"  # a new pair: the old walk does not belong to it
    assert w.walk is None and not w.stale
    assert "no walk on arm-lpae-s1-4k-48bit over arm-lpae-s2-4k-48bit" in w.summary.value
    assert w.grid_view.value == w.ref_view.value == w.refs_table.value == w.costs.value == ""
    assert w.figure_view.value == b"" and w.figure_view.layout.display == "none"


def test_switching_the_nesting_explorer_to_arm_picks_the_48_bit_formats():
    w = widgets.NestingExplorer()
    assert w.stage1_picker.options[:1] == ("x86-64-4level",)
    arm1 = [n for n in w.stage1_picker.options if n.startswith("arm-lpae")]
    assert arm1[0] == "arm-lpae-s1-4k-48bit"


# -- walk ----------------------------------------------------------------------------------
def test_an_unreadable_iova_marks_the_walk_stale_then_a_new_format_clears_it():
    w = widgets.WalkExplorer()
    w.iova_input.value = "0x12zz"
    assert w.walk is not None and "stale: still showing the walk of 0x1234" in w.summary.value
    w.select_format("riscv-sv39")
    assert w.walk is None and "no walk in riscv-sv39" in w.summary.value
    assert w.steps_table.value == w.step_view.value == ""
    assert w.figure_view.value == b"" and w.figure_view.layout.display == "none"
    assert "vtd-ss" not in w.summary.value


def test_a_table_that_cannot_be_built_puts_the_pickers_back_on_the_table_shown(monkeypatch):
    import iommu_lab.widgets.walk as walk_module

    w = widgets.WalkExplorer()

    def refuse(name):
        raise IommuError("ENOMEM", f"no memory for a {name} table")

    monkeypatch.setattr(walk_module, "new_table", refuse)
    w.family_picker.value = "riscv"
    assert w.error.errno == "ENOMEM"
    assert (w.family_picker.value, w.format_picker.value) == ("vtd-ss", "vtd-ss-4level")
    assert w.pt.fmt.name == "vtd-ss-4level" and "vtd-ss-4level" in w.summary.value


def test_picking_arm_starts_from_the_48_bit_4k_table():
    w = widgets.WalkExplorer()
    w.family_picker.value = "arm-lpae"
    assert w.pt.fmt.name == "arm-lpae-s1-4k-48bit"
    w.family_picker.value = "amd-v1"
    assert w.pt.fmt.name == "amd-v1-dynamic"


def test_a_mappings_table_longer_than_a_screen_says_how_many_rows_it_holds():
    w = widgets.WalkExplorer()
    w.select_format("power-tce-4k")  # the 2 MiB demo mapping becomes 512 TCEs
    n = len(w.pt.to_dataframe("mappings"))
    assert n > widgets.walk.MAPPING_ROWS
    html = w.mappings_table.value
    assert f"({n} rows)" in html
    assert f"{n - widgets.walk.MAPPING_ROWS} more rows" in html
    assert html.count("<tr>") <= widgets.walk.MAPPING_ROWS + 2


def test_the_access_picker_visibly_changes_the_walk_summary():
    w = widgets.WalkExplorer()
    before = w.summary.value
    w.access_picker.value = "w"
    assert w.summary.value != before and "write checked" in w.summary.value


# -- layout --------------------------------------------------------------------------------
def test_a_refused_platform_puts_the_layout_pickers_back_and_drops_the_old_status(monkeypatch):
    import iommu_lab.widgets.layout as layout_module

    w = widgets.LayoutExplorer()
    w.length_input.value = "2M"
    w.map_button.click()
    assert "mapped" in w.status.value
    real = layout_module._ioas_class()

    class Refusing:
        @staticmethod
        def from_platform(platform, semantics):
            if platform.name == "amd-v1":
                raise IommuError("ENODEV", "no IOMMU found for amd-v1")
            return real.from_platform(platform, semantics=semantics)

    monkeypatch.setattr(layout_module, "_ioas_class", lambda: Refusing)
    old = w.ioas
    w.platform_picker.value = "amd-v1"
    assert w.error.errno == "ENODEV"
    assert w.ioas is old and w.platform_picker.value == "intel-vtd-48"
    assert w.status.value == ""


def test_a_refused_map_drops_the_previous_actions_status():
    w = widgets.LayoutExplorer()
    w.iova_input.value = "0x0"
    w.map_button.click()
    assert "mapped" in w.status.value
    w.map_button.click()  # the same IOVA again: EEXIST
    assert w.error.errno == "EEXIST" and w.status.value == ""


def test_the_areas_table_shows_pinned_sizes_not_object_ids():
    w = widgets.LayoutExplorer()
    w.length_input.value = "2M"
    w.map_button.click()
    assert "<th>pinned</th>" in w.table.value and "<th>pages</th>" not in w.table.value
    assert "2 MiB" in w.table.value


# -- platforms -----------------------------------------------------------------------------
def test_a_platform_that_fails_to_load_clears_the_table_and_figure(monkeypatch):
    import iommu_lab.widgets.platforms as platforms_module

    w = widgets.PlatformExplorer()
    assert w.figure_view.value
    real = platforms_module._catalogue

    class Broken:
        def get(self, name):
            if name == "amd-v1":
                raise ValueError("platform file amd-v1.toml: no [windows] table")
            return real.get(name)

    monkeypatch.setattr(platforms_module, "_catalogue", Broken())
    w.platform_picker.value = ("intel-vtd-48", "amd-v1")
    assert "amd-v1.toml" in w.error.text
    assert w.selected == [] and w.figure_view.value == b"" and "intel" not in w.table.value


def test_changing_the_selection_clears_the_workload_comparison_of_the_old_one():
    w = widgets.PlatformExplorer(["intel-vtd-48"])
    w.ram_input.value = "4G"
    w.compare_button.click()
    assert "vtd-ss-4level" in w.compare_table.value
    w.platform_picker.value = ("intel-vtd-48", "amd-v1")
    assert "vtd-ss-4level" not in w.compare_table.value and "selection changed" in w.compare_table.value
    assert w.compare_view.value == b""


def test_a_failed_comparison_clears_the_previous_one():
    w = widgets.PlatformExplorer(["intel-vtd-48"])
    w.ram_input.value = "4G"
    w.compare_button.click()
    w.ram_input.value = "lots"
    w.compare_button.click()
    assert "lots" in w.error.text and w.compare_table.value == "" and w.compare_view.value == b""


# -- replay --------------------------------------------------------------------------------
def test_a_replay_the_platform_refuses_drops_the_last_result():
    big = T.streaming(3 << 30, chunk=1 << 20)
    w = widgets.ReplayExplorer(big, platform="intel-vtd-48")
    assert w.result is not None
    w.platform_picker.value = "power9-pseries"
    assert w.error.value and w.result is None and w.summary.value == "" and w.figure_view.value == b""


def test_the_default_trace_makes_strict_and_lazy_flushing_differ():
    w = widgets.ReplayExplorer()
    strict = dict(w.result.summary)
    w.flush_picker.value = "lazy"
    lazy = dict(w.result.summary)
    assert strict["invalidations"] > 0 and lazy["invalidations"] == 0 and lazy["flushes"] > 0


# -- migration -----------------------------------------------------------------------------
def test_a_migration_the_model_refuses_clears_the_table_and_figure(monkeypatch):
    import iommu_lab.widgets.migration as migration_module

    w = widgets.MigrationExplorer()
    assert w.table.value and w.figure_view.value

    def refuse(*args, **kwargs):
        raise ValueError("bandwidth = 0 must be a finite number > 0")

    monkeypatch.setattr(migration_module, "compare", refuse)
    w.link.value = 20
    assert "bandwidth" in w.errors.text
    assert w.table.value == "" and w.figure_view.value == b""


@pytest.mark.parametrize("name", ["WalkExplorer", "NestingExplorer", "MigrationExplorer"])
def test_every_explorer_is_exported(name):
    assert name in widgets.__all__ and getattr(widgets, name).__name__ == name
