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
    "nested-4x4-light": ("3e967c59d28ad79968e120fc7e5419641b995bc2b4cc6ed28bb8bafe149fd32e", "f3dee4e4f2e7f4e2f0ebf1e9f0e3eae9ecd4e4dfdbdde9ebf0dfd5d7d6c6ecfcfffffff2f3ebe5f1fcfffffff1f4ece5f7fdfffffff3f4ededf6fffffffffffffffffffffffffffffffffffffffffffdc9cbc4c7c7cdc6cef1d9becacbc5bfc8e5f3ddc4ccc3c4becce9f3dcc2ccc5c2c3cde9f1dbd6ccb6c3d6dbdafcfffffffffffffffffff1edf3f0e1c6d7d2d5f9aab1acbcc2aeae9ccdaeaeaebebea9a0cbd4b8a4bab0c6a3a7ccd4b6a6b8b7c2a9a5beccaf97afa9b396a396f6fffffffffffffffffffffffffffffffffffffbc4c2c3bcc8b8c3b9dbc3c2c1bbc5bac2d0dec1c1bebcc1b8c0d2dec1c3bdc0c6bdbdc8dab8bcb5c9c0b7b2acf8fffffffffffffffffffee2e6c9d8cdd4ccd1f9adb4afb3c6abb19ecdb0b1b1c1c8a8a6cdd4baa7bcaacaa6abcdd3b8aab9abcaaba9bfccb39dbbb5b699a699f6fffffffffffffffffffffffffffffffffffffbc5c2c4cbcabdc4bcdbc4c2c3cbc8bdc3d2dec4c1c1cbc4bac1d3dfc3c3c1cfc6bebec8dbbabbb8cbb8b8b3abf8ffffffffffffffffffffffe1d2d1c2ccc7cef9a1a9b0bdb7a7a697cda6a6b3bfb3a098c7d4b19bbeb5b59ba0c7d4af9dbdb9b7a09ebccca79da3bba28da792f6fffffffffffffffffffffffffffffffffffffbc8c6c7becbbcc8bcdbc7c5c6bec9bec6d4dfc6c5c2bdc4bac3d5dfc5c7c0c1c9c0c4c9dbbec2b7bfbbbcb7b0f8ffffffffffffffffffffffe1d1d8c9cec8cff99ba2abc1aba1a295cda0a0aec7b79a91c0d4a897b7beb2939cbfd4a698b6beb1979ab8cc9b939bbea6869b8cf6fffffffffffffffffffffffffefdfefdfefffac4c2c3b9c9b9c3b3d6c5c1c2b8c7bac0d5dbc5c0c1b4c3b8bdd6dac3c2beb8c8bfbbc5dccccec1cacec7c6b9f9ffffffffffffffffffffffffe0dcd8e2c9e0f99ea1abc2baa2a19acda0a0acc3b5a09cb8d3a29eaec3b39da0b8d4a19eadc5b59da0b5fffffffffffffffffffffffffffffffffffffffffffff4f5edf5eff3facfd1cec4d3c3cfb6d7d0cecec7d0c0c2e2dcd7c5d5bed3bcc5e4dcd4c8d0c3d5c5bfcdfffffffffffffffffffffffffff0d3dcd1c9d7cfd2dfcfd6d2d7daeee3d6c2dbe4e2e5e6d6ccc9daf6faf2f7f0faf5f6f6f9f7f2f6f6fcfbf1f9fcf8fcf8f6f9fdfffffffffffffffffffffffff3cbdbdad6d6cadcc9d6dbd4d2d0e0e4ccdfd6d8d3dce0c9ded4cfd2d7d5c6d2f1e3dbe7f1e4eae8f3ebefeeebeeedeef2f6e7f6fffffffffffffffffffffffff9e4dad9e9eddde5f1e8f1e4dad9e6eddde5f1e8eee4e6e0e6e6eaf2e3e1f1f5e0f9fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff9dfe8ecddd9e2ecd9dcdde4e4dae5dee5d9e1e8fcf2e4f2e7dfd2e3efdadfdfe6e8e6dfe8dce3e5fdffffffffffffffffffffffffffffffffffffffffffffff"),
    "nested-guest-fault-dark": ("226b552e22ebc6f349f8e174afa2dc5dca6195c0c9c1cdcf641a6bee5b7296ab", "2638333227312534292d2835433f473e37333e34394838303945474e3d40243428342d261c2a282e2e271c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c27585f53535d6055625a55616449645f5d57655a51635452646934484e6650482e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2a282d293b43423d4d557360656966526870606b754b77616f597e67577266646a7e41695f5f606d4c201c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c212829302d292d2c2b6885706d848547857c637685498585716e85676885716d82854273635760733e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c20242f382b353b37434c655a645b574e5a675f6267476a526e55735e4d655f635b713d5f565e62644b211c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c332a353338333065835e50738449836d506884488479536080666584635070843d706252607052272d322c28352f281c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2e312a2a32313f3c50454e46424544534a4b513e543c593e5b503d4f4a4e445a35435547534f402d2d2b25252b29241c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1e28332c2d3d37351f1d1d1d1d1e201d1d1d1d1d201e1d1d1d1d1f1f1d1d1d1d1e201d1d1d1d1d1f1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1f2b2b31332a34261f1e1d1e1d1e1f1e1d1e1d1e1f1e1e1e1e1d1f1f1e1d1e1d1e1f1d1d1d1d1d1e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2f34302c39291f1c1c1c1c1d201c1c1c1c1c201d1c1c1c1c1f1f1c1c1c1c1d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1e1d1d1d1d1e1e1d1d1d1d1d1e1e1d1d1d1d1e1e1d1d1d1d1e1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c354d4f63544f52574959554748464f3c434b464838404e474f51443d2d3c2d2f3d3b2f3a3c3c2939333c27312e31342834282c332f2a1c1c1c1c1c1c1c1c1c1c3b3c4b393b50433f4a533f3c45372c32362936292b32302529302d292f31352e302d35253030292c2f2d352d352d352d352d352d2a34342b31322932341d1c1c2d3d3e3748334448443f40373f3f3a373b454847483b3b4741473c43474f4d3a4b434734423d342f1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d1d1d1d1d1d1d1d1e1e1d1d1d1e1d1d1d1e1e1e1d1d1d1d1d1d1d1e1d1d1d1e1d1e1d1e1e1d1d1d1e1d1d1d1d1e1d1e1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c224b3e375155493755504f44434945464a4f492d1d1f201f2a2c373635322f2a3c2c2f392c2c322d2c1d212522362a2d1e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"),
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
