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
    "nested-4x4-light": ("29bc47ddaac178d2092c43192af7b905407a8300b9b0d80099b42c43aee13c47", "e8e0dae6ece4e7ebeae6e2eedee7e9e2f5e7e0ebefded7dde8dbedfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff8d6d7dbd9fffffffffff2d3cbd1eaffffffffffe6d5cdd5fdffffffffffd9d9d1e1ffffffffffffeacfe4fffffffffffffffffffffffffffff0f0e5e3eebaa1a1a1b0b1a1a19ffabaa1a1a7afa8a1a19ff4a0a1a1b1aca1a1a1bad8a1a1a1b3aea1a1a1d8ac8d8d90a09b8d8d8cfaffffffffffffffffffffffffe7f0f4b49c9c9ea4a1969693f7af9c9b94a999929192f1929b9a9fa7929390b0d2949d9aaa9d909692d2a38c8d869a8785847ef9fffffffffffffffffffffffffffeffc9b6b6b6bebcb6b6b5fac8b6b6b7c0b8b6b6b5f5b5b5b4b9bcb4b4b6c9e1b6b6b6bcbdb6b6b6e2bfa7a7a9b9aca7a7a6fbfffffffffffffffffffff0d8d2cde0b69e9e9fa9ab989795f6b19d9c9bb8a0949394f2949d9cacac949591b2d4969f9bb1a6919894d2a38d8a8da08f85847ef9ffffffffffffffffffffffffffffffccbfbfbfbfc0c0c0bffbccbfbfbfc0c0c0c0b7f5b7bebebdbebebec0c7e0bcbfbfbfbfc0c0bde0bfb3b3b3b4b3b3b4a6fbfffffffffffffffffffffbdbd4cde1b2999999b2a4989896f6b19999a2a8a1989896f2969999a3af9a9898b2d3999999aea8999898d3a382828a9c8e828280f9ffffffffffffffffffffffffffffffd0c4c4c5c4c6bebdbdfbcac2c2b8c9c1bab8b4f5b5c3c1c1c6b8b8b8c8dfb7c5c1cbbfb7beb8e1bfb4bebdbdb7b5afa6fbffffffffffffffffffffffdfd7cde3b3989899b1a1999996f6b19898a2aea4999996f2969898a3b09a9999b1d4989898afa4999999d3a382828a9e8e828280f9ffffffffffffffffffffffffffffffcfc4c4c6c3c7bebdbdfbcac3c2b7cac2bbb7b4f7b5c4c1c0c7b9b7b8c8e0b8c6c1cac0b7beb7e0c0b6c1bebfb7bbb0a8fbfffffffffffffffffffffff1ebeaf2b2989898a9a1979896f6b19898a0a0a0979896f09698989fa9999798b2d3989898a7a5979798d5fffffffffffffffffffffffffffffffffffffffffffbe9e7eebaa6a5a8a8aa9f9e9ef9b4a4a497b1a49c9996f396a6a4a2af9c9a9bb2d59aa7a2ada4999f99d4ffffffffffffffffffffffffeae5d4d5d1d0dfcfd5d7e6e8dbd3ccddeeeed3e5d1d4d9eee6d5cbe6ede6dfd1e1e6e7d4e1cee0d3e7dee8d7d5ebdae9e5d9e1ddfcfffffffffffffffffffffff6eee4dce8e9ece6e3eaefede7dfdaf4f0e3e7f0ece5f2ebe1ede8f0f6f1f0e4ecf1edebf6edfcfffffefefefefefefefefefefeffffffffffffffffffffffffe7e8dae5dddfe6dee1edf3dcefdbdfe9e0dceadee9dfeafeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    "nested-guest-fault-dark": ("71a83120bca60a3e8d0748d6db797cc1e9f54a83e8be7f0963b2ee628a45e487", "2e3539302b312f2c2d34332a382e2c33242f342a31363c372e392a1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d3742585e524a372837395a575b5437272e3755546154372e2637485961553737263232455f3e32331d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2827404030999994768d9999519999997d8599994c75999984819999754c9999847a9999994b8282796f7e8283211c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c256e706a6a7078764a6f70766a717977475e6b736c7178785f406d6f7069757277426363645e6c6a6e201c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c283741442f9999947a8e999952999999778399994c75999980839999754c9999857d9999994b8282786e7b8283211c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c257b7c77757c83814f7b7c84757d84824c65787f777e85836545797b7a76817e833f69726a647272732a1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c393d432e8d8d846f829190508e8d8c6b7e918f4a6e8d8e7379908f70488d8e7e6a8e8e9042766f67656e707937383e443733473e311c1c1c1c1c1c1c1c1c1c1c1c1c1c234647433e474c4b3746474c3e474c4b363f444940474c4b3f2f464744424b484b2d3e3936393d3e3f2a1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c383747281d1c1c1c1c1c1c201d1c1c1c1c1c1c1e1e1c1c1c1c1c1c1e1e1c1c1c1c1c1c1d201c1c1c1c1c1c1d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d1e1e1e1e1e1e1e1f1e1e1e1e1e1e1e1e1f1e1e1e1e1e1e1f1e1e1e1e1e1e1e1e1e1d1d1d1d1d1d1d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c25322e231d1c1c1c1c1c1c201d1c1c1c1c1c1c1f1e1c1c1c1c1c1c1f1e1c1c1c1c1c1c1d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d1e1d1d1d1d1d1d1e1e1d1d1d1d1d1d1e1e1d1d1d1d1d1d1e1e1d1d1d1d1d1d1e1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c334753524f4d3d453f3d30353b46473629283b2f424b3c263139442f282f3441342f2e403541373b2f36303a3b2a3a2b303932391c1c1c1c1c1c1c1c1c1c1c1c3c4b5454585546464c5b46514d35524c5e5a5b4538333a36363636362f2c3125332e261c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c38355542514c40494a342022242c3d34342f312c372834282122272832271c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"),
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
