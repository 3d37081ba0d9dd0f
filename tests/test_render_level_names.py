"""One reference, one name: the spec's level names and the format's permissions in every view.

The nesting explorer's grid, the nested-walk figure and the walk's text name each reference
alike, and the single-stage walk's figure, text, HTML and explorer step agree, on ARM (Arm ARM
lookup levels L0..L3), VT-d (SL-PML4E ...), AMD v1 as Linux grows it (3 levels, Level 3..1) and
RISC-V (level 2..0). No view writes an internal level number beside the name.
"""

from __future__ import annotations

import re

import pytest

from iommu_lab import render, widgets
from iommu_lab.pagetable import PageTable
from iommu_lab.render.nested import nested_walk_data
from iommu_lab.render.walk import walk_data

INTERNAL = re.compile(r"\(L\d\)|\(level \d\)")


def _texts(fig, gid):
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == gid]


@pytest.mark.parametrize(
    ("platform", "s1_root", "s2_root"),
    [("arm-smmuv3-48", "S1 L0", "S2 L0"), ("intel-vtd-48", "S1 PML4E", "S2 SL-PML4E"),
     ("amd-v1", "S1 PML4E", "S2 Level 3")],
)
def test_nested_grid_figure_and_text_give_each_reference_one_name(platform, s1_root, s2_root):
    w = widgets.NestingExplorer()
    w.platform_picker.value = platform
    assert w.error.value == "" and w.walk.ok
    nw = w.walk
    fmts = (w.nested.stage1.fmt, w.nested.stage2.fmt)
    data = nested_walk_data(nw, formats=fmts)
    fig = render.nested_walk(nw, formats=fmts)
    drawn_cells = _texts(fig, "nested:ref")
    text = str(nw)
    # The root of each stage, by its spec name, heads the grid and the figure alike.
    assert s1_root in data.row_labels[0] and s1_root in w.grid_view.value
    assert s2_root in data.col_labels[0] and s2_root in w.grid_view.value
    for r in nw.refs:
        assert r.label in text
        assert any(c.startswith(r.label + "\n") for c in drawn_cells)
    # Every stage-1 entry read sits in the row named for its level, in the grid and the figure.
    for r in nw.refs:
        if int(r.stage) == 1 and r.row >= 0:
            assert data.row_labels[r.row].startswith(r.label + " table")
            assert f"<th>{r.label} table" in w.grid_view.value
    for view in (w.grid_view.value, text, *data.row_labels, *data.col_labels, *drawn_cells):
        assert not INTERNAL.search(view)


def test_amd_nested_stage_2_is_the_three_level_table_linux_starts_with():
    w = widgets.NestingExplorer()
    w.platform_picker.value = "amd-v1"
    assert w.walk.m == 3
    fmts = (w.nested.stage1.fmt, w.nested.stage2.fmt)
    assert [c.split("\n")[1] for c in nested_walk_data(w.walk, formats=fmts).col_labels[:-1]] == [
        "(S2 Level 3)", "(S2 Level 2)", "(S2 Level 1)"]


@pytest.mark.parametrize(
    ("fmt", "names"),
    [("arm-lpae-s1-4k-48bit", ["L0", "L1", "L2", "L3"]),
     ("vtd-ss-4level", ["SL-PML4E", "SL-PDPE", "SL-PDE", "SL-PTE"]),
     ("amd-v1-dynamic", ["Level 3", "Level 2", "Level 1"]),
     ("riscv-sv39", ["level 2", "level 1", "level 0"])],
)
def test_walk_figure_text_html_and_explorer_name_levels_as_the_spec(fmt, names):
    w = widgets.WalkExplorer()
    w.select_format(fmt)
    walk = w.walk
    assert walk.ok and [s.name for s in walk.steps] == names
    fig = render.walk(walk)
    assert _texts(fig, "walk:row-name") == names
    text = render.walk_text(walk)
    html = walk._repr_html_()
    for name in names:
        assert name in text and name in html
    for k, name in enumerate(names):
        w.step_slider.value = k
        assert f"step {k + 1} of {len(names)}: {name}</div>" in w.step_view.value
    for view in (text, html, w.step_view.value, *_texts(fig, "walk:row-name")):
        assert not INTERNAL.search(view)


@pytest.mark.parametrize("fmt", ["vtd-ss-4level", "power-tce-4k"])
def test_a_leaf_of_a_format_without_x_or_u_bits_reads_rw_in_every_view(fmt):
    pt = PageTable(fmt)
    pt.map(0x1000, 0x4000_0000 if fmt == "power-tce-4k" else 0x1234_5000, 0x1000, prot="rw")
    walk = pt.walk(0x1234)
    assert walk.ok
    expected = pt.fmt.perm_text(walk.result.perm)
    assert expected == "rw; format has no X/U bits"
    data = walk_data(walk)
    assert expected in data.result_text and expected in data.rows[-1].decoded
    assert "rwxu" not in render.walk_text(walk)
    assert "rwxu" not in walk._repr_html_()


def test_page_table_figure_labels_levels_by_name_only():
    pt = PageTable("arm-lpae-s1-4k-48bit")
    pt.map(0x1000, 0x4000_0000, 0x1000)
    fig = render.pagetable(pt)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[:4] == ["L0", "L1", "L2", "L3"]
