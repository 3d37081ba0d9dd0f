"""The 2-D nested walk figure: tests on the grid it draws (numbers, stages, counts, fault)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from iommu_lab import render
from iommu_lab.gallery import example_nested
from iommu_lab.nesting.nested import Nested, Stage
from iommu_lab.render import style
from iommu_lab.render.draw import figure
from iommu_lab.render.nested import NESTED_WALK, nested_walk_data


@pytest.fixture(scope="module")
def lazy():
    return example_nested("lazy")


def test_a_4x4_walk_with_4k_pages_numbers_the_grid_1_to_24_in_hardware_order(lazy):
    nw = lazy.walk(0x4000_0123)
    d = nested_walk_data(nw)
    assert (d.rows, d.cols) == (5, 5)
    expected = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15], [16, 17, 18, 19, 20],
                         [21, 22, 23, 24, 0]])
    assert (d.grid == expected).all()
    assert (d.grid == nw.grid()).all()
    assert sorted(c.seq for c in d.cells) == list(range(1, 25))
    # Stage-1 entry reads are the last column, every other cell is stage 2.
    assert [c.seq for c in d.cells if c.stage == 1] == [5, 10, 15, 20]
    assert all(c.category == "nested-s2" for c in d.cells if c.col < 4)
    assert d.counts["pagetable"] == 24 and d.counts["stage1"] == 4 and d.counts["stage2"] == 20
    assert d.totals_text.startswith("24 page-table references: 4 stage-1 + 20 stage-2")
    assert "(n+1)(m+1)−1 = 24" in d.totals_text


def test_the_figure_writes_every_number_in_its_cell_and_the_totals(lazy):
    nw = lazy.walk(0x4000_0123)
    drawing = figure(NESTED_WALK, nw)
    ax = drawing.figure.axes[0]
    seqs = sorted(int(t.get_text()) for t in ax.texts if t.get_gid() == "nested:seq")
    assert seqs == list(range(1, 25))
    drawn = drawing.drawn
    assert len(drawn["nested-s1"]) == 4 and len(drawn["nested-s2"]) == 20
    # Stage 1 and stage 2 differ in colour AND hatch, and the legend names both.
    colls = {c.get_gid(): c for c in ax.collections}
    s1, s2 = colls["nested:cells:nested-s1"], colls["nested:cells:nested-s2"]
    assert to_rgba(s1.get_facecolor()[0]) != to_rgba(s2.get_facecolor()[0])
    assert (s1.get_hatch() or "") != (s2.get_hatch() or "")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert style.category("nested-s1").label in labels and style.category("nested-s2").label in labels
    assert any(t.get_gid() == "nested:totals" and t.get_text().startswith("24 ") for t in ax.texts)


def test_a_large_stage2_leaf_shortens_each_stage2_walk_and_leaves_empty_cells():
    nw = example_nested("eager").walk(0x4000_0123)
    d = nested_walk_data(nw)
    assert d.counts["pagetable"] == nw.n_pagetable_refs < 24
    assert (d.grid == nw.grid()).all()
    assert "nested-none" in figure(NESTED_WALK, nw).drawn


def test_a_guest_fault_is_marked_in_its_cell_with_its_owner(lazy):
    nw = lazy.walk(0x5000_0000)
    d = nested_walk_data(nw)
    assert not d.ok and d.fault_owner == "guest"
    last = nw.refs[-1]
    assert d.fault_cell == (last.row, last.col) == (2, 4)
    assert d.cell(2, 4).fault and d.cell(2, 4).stage == 1
    assert any("F_TRANSLATION" in r for r in d.fault_records)
    ax = render.nested_walk(nw).axes[0]
    marks = [p for p in ax.patches if p.get_gid() == "nested:fault"]
    assert len(marks) == 1 and marks[0].get_hatch() == style.category("nested-fault").hatch
    assert [t.get_text() for t in ax.texts if t.get_gid() == "nested:fault-owner"] == ["guest's fault"]


def test_a_stage2_fault_on_a_stage1_table_fetch_is_the_hosts():
    n = Nested.build("x86-64-4level", "vtd-ss-4level", backing="lazy")
    n.map(0x4000_0000, 0x10_0000, 0x1000)
    # The host unmaps the guest's level-2 table page from stage 2.
    gpa = n.walk(0x4000_0000).refs[7].table
    n.stage2.unmap(gpa & ~0xFFF, 0x1000)
    nw = n.walk(0x4000_0000)
    d = nested_walk_data(nw)
    assert d.fault_owner == "host"
    r, c = d.fault_cell
    assert d.cell(r, c).stage == int(Stage.STAGE2)
    ax = render.nested_walk(nw).axes[0]
    assert [t.get_text() for t in ax.texts if t.get_gid() == "nested:fault-owner"] == ["host's fault"]


def test_pasid_structure_reads_are_numbered_before_the_grid():
    n = example_nested("lazy")
    n.bind_pasid(5)
    nw = n.walk(0x4000_0123, pasid=5)
    d = nested_walk_data(nw)
    k = nw.n_pasid_refs
    assert k > 0 and [c.seq for c in d.pasid_cells] == list(range(1, k + 1))
    assert d.grid.max() == k + 24 and d.grid[0, 0] == k + 1
    ax = render.nested_walk(nw).axes[0]
    assert len([t for t in ax.texts if t.get_gid() == "nested:seq-pasid"]) == k


@pytest.mark.parametrize("st", ["light", "dark"])
def test_both_styles_are_opaque(lazy, st):
    fig = render.nested_walk(lazy.walk(0x5000_0000), style=st)
    assert to_rgba(fig.get_facecolor())[3] == 1.0
    ax = fig.axes[0]
    assert to_rgba(ax.get_facecolor())[3] == 1.0
    for c in ax.collections:
        assert np.all(c.get_facecolor()[:, 3] == 1.0)


def test_ax_and_filename_keywords(lazy, tmp_path):
    fig = Figure(figsize=(12, 6))
    a, b = fig.subplots(1, 2)
    assert render.nested_walk(lazy.walk(0x4000_0123), ax=b, filename=tmp_path / "n.svg") is fig
    assert not a.collections and b.collections
    svg1 = (tmp_path / "n.svg").read_bytes()
    render.nested_walk(lazy.walk(0x4000_0123), ax=b, filename=tmp_path / "n2.png")
    assert (tmp_path / "n2.png").read_bytes()[:4] == b"\x89PNG"
    fig2 = Figure(figsize=(12, 6))
    render.nested_walk(lazy.walk(0x4000_0123), ax=fig2.subplots(1, 2)[1], filename=tmp_path / "n3.svg")
    assert (tmp_path / "n3.svg").read_bytes() == svg1


def test_nested_walk_text_prints_the_grid_with_numbers(lazy):
    out = render.nested_walk_text(lazy.walk(0x4000_0123))
    rows = [l for l in out.splitlines() if l.startswith(("S1 ", "output"))]
    assert len(rows) == 5
    assert rows[0].split()[-5:] == ["1s2", "2s2", "3s2", "4s2", "5s1"]
    assert rows[-1].split()[-4:] == ["21s2", "22s2", "23s2", "24s2"]
    assert "24 page-table references" in out
    fault = render.nested_walk_text(lazy.walk(0x5000_0000))
    assert "15s1!" in fault and "guest's fault" in fault


# -- image regression: drawn-data fingerprint + thumbnail (see test_render_walk.check_reference) --
def _entries():
    from iommu_lab.gallery import ENTRIES

    return ENTRIES


REFERENCE_FIGURES = {
    "nested-4x4-light": lambda: _entries()["nested-4x4"]("light"),
    "nested-guest-fault-dark": lambda: _entries()["nested-guest-fault"]("dark"),
}
REFERENCES: dict[str, tuple[str, str]] = {
    "nested-4x4-light": ("7d46ab355e957262fe693640b9771ff89025668335b6350b48166cd9e1886826", "f2dbe1e1f1e4f3dfeee9efe7efe0e8e7ead5e6e4e1dfeae9efdbd7d8dacaf1fdfffffff7f8f1edf7fdfffffff6f8f2effcfffffffff7f9f4f1f8fffffffffffffffffffffffffffffffffffffffffffed9d5cecfccd6d2dbf9e9c6d5d2c8c4d4f2faedccd6c9c7c7d8f5faeccad6ccc6ccd8f5f9f0e6dabdd0e8f0f0fefffffffffffffffffff0ebf0efe1c5dad3d4f99fa5a1b2b5a3a698cea2a3a3b4af9e96c0d4a99caba9b897a0c1d4a89daab0b3989eb9cd9b8a9e98a88e948cf6fffffffffffffffffffffffffffcfbf8f9fafacacacabed2bdc7b5d6cac8c9bed1bfc6d9dccdc5cab9cdc0c3dadbcbc7c7bed2c9bfc8d5cac4c0c5c1bbbdb0f8fffffffffffffffffffff0e6ddd7d7dad7daf9999d9ba6ab9da097cd9c9c9cb5ac9a93b9d3a198a2a4af949bbad4a099a2a4ac929bb6cd8e879eb59f828e86f6fffffffffffffffffffffff9f6f3f2f4eff4fbd2d1d1c6d8c5cfbddcd2d0d1c7d8c5cce2e0d7c8d3bed5c2c9e3dfd4ccd0c4d9cfc3cfdad7d0c6d0c0c1d0bbf9ffffffffffffffffffffffeae3e0d8dde0dff99da0acc5b8a1a19acda0a0aec4b39f9cb9d2a29eb0c3b19d9fb9d3a19eb0c6b39c9fb6cd8e8da0bda58b8e85f6fffffffffffffffffffffff6eaf2ebf0e6edfaccceccc2d1c2cdb5d7cdccccc4cebec1e2dcd5c3d2bad0b9c3e3dbd3c6cec0d3c4c0cdd5d7d2bdcdc0bdd1b7f8ffffffffffffffffffffffecefe4e0e0e6e3f99698a5bbaa999896cd9898a6bcb89898b1d39898a6bca99898b2d39898a6baaa9898b2cd818193b2a081817ff6fffffffffffffffffffffff4e3f0e7ebe0eafacbcecbc2d0c1ceb5d8cdcbcbc5ccbdbfe3ddd7c0d4b9ceb5c3e5dbd3c4cfc0d1c0c0cdd6d9d2bcccc7c0d2b8f8ffffffffffffffffffffffffebe1dfead2e9faa0a1adc4bfa2a19fd2a1a1aec3bba1a1b9d6a1a0adc4b6a1a1b9d8a1a1aec7baa1a1b9ffffffffffffffffffffffffffffffffffffffffffffe4ebe0eadde7f9bdc0bdb5c1b2c0a2cebfbcbdb9bcadabd8d5c9b1c7adc3a6b2dbd4c6b4c1b3c4afacc2fffffffffffffffffffffffffff5e7eae2dbe4dbdbead5dcdfe3e1f3ebd3d1d5e0e8deddd5d9cddaf1f1f1f1f1f5f9f1f1f1f1f1f1f1f5f9f1f1f1f1f1f1f1f4fffffffffffffffffffffffffff0cbdcd3ccdad3d5d6dde3d3dadee9e2d8c0e6decee4e8d2d5c5dadae3dbd9d5ead5cddae8d8d9dce8e5e8dce2e9e3e9e9ebddf3fffffffffffffffffffffffff3c1c1c1d4d1b8d5cecdd6cab9b6cfddb7d7cdcdd4cbd0becfd5c7d9c9c4cddbdbf8fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff8dbe4e9d9d5deead5d8d9e1e0d5e2dae2d5dee5fbf1e1f0e4dbcde0edd6dbdbe3e5e3dbe5d8dfe2fdffffffffffffffffffffffffffffffffffffffffffffff"),
    "nested-guest-fault-dark": ("f41aeb29f1958961ff1a0706c794fe5e6bff766154fbe8d1608d9a525ff39eb5", "27393434283126362a2e29314844454439353a373c4d3c3630524350414a212d2b323a271e1c352b2f351e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c22585a5151565d4a675a50536754505e515264693962585155624f384359594b431e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2d2a2f2a3d4848494e64686a586874506d6e62527a655874625b65864b736967517661526a585166722d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d546e646c6f6c3e6d6b616a6e57576e626c716d3e6d6b686e6d544d604f5c5b60211c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2d3948494649504f666b6e5b6a765370705f557d6a5977655d6a8a4e766c6753796348774c5666712e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c4a5e5045535d375e5442575e4b4c5e4d51575e375e523f585e4a4e5346574f542d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c3f4643474a504e666b6950657652716759537c6959775c5365884e76655d527961496e52526e5c3b4241393e36403f211c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1f1c292b2b30302b242b2b2b352b27282b2b312e2c242b2b2b342b282f2f2f38332f251c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1f41434e4a514a451e1c1c1c1c1c201d1c1c1c1c1f1e1c1c1c1c1d201c1c1c1c1c1f1e1c1c1c1c1d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1f1e1e1e1e1e1f1f1e1e1e1e1f1f1e1e1e1e1f1f1e1e1e1e1e1f1d1d1d1d1d1d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2d33352c412b1e1c1c1c1c1c201d1c1c1c1c1f1e1c1c1c1c1d201c1c1c1c1c1e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c27302f3837393739344039333931312d3834352b262c2e383938311d1d1d1d1d1d1d1d1d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2c3f414d43373c41373d3f343636412f2c39353d32344230393d343e2e3d2e31413e313b403d2a3b353d28333033362937292e35312c1c1c1c1c1c1c1c1c1c1c4347563f44584e4c595e4c454e44333d3e33423637412e4b3141343438483838393f332d423925312e382e382e382e382e382c333234342b3e262f32331c1c1c2a3c3e394a374747464643383e3e3b373f494a4644393d444144434a434d4e3e4b494b393f3e3a36221e1e1f1e261f221d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c224f413852574838524e4e45434947464b504a2b1e1f201f292c323132302d273a282e352b2b312b291e212522322b2b1e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    from figcheck import check_reference

    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)


def test_a_large_stage1_leaf_puts_the_output_gpa_row_where_the_walk_translated_it():
    from iommu_lab.nesting.nested import Nested
    from iommu_lab.render.nested import nested_walk_data

    n = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=16 << 20, backing="eager")
    n.stage1.map(0x4000_0000, 0x20_0000, 0x20_0000)  # one 2 MiB stage-1 leaf: the walk ends at S1 L1
    data = nested_walk_data(n.walk(0x4000_1234))
    out_rows = [i for i, lab in enumerate(data.row_labels) if lab.startswith("output GPA")]
    assert out_rows == [3] and "0x20_1234" in data.row_labels[3]
    assert data.row_labels[4].startswith("(not needed")
    assert all(c.row <= 3 for c in data.cells)
