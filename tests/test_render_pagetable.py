"""The page-table icicle: tests on the boxes it draws per level, occupancy, leaves and cost."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from iommu_lab import render
from iommu_lab.core.ranges import fmt_size
from iommu_lab.gallery import example_big_pagetable, example_pagetable
from iommu_lab.pagetable import PageTable
from iommu_lab.render.draw import figure
from iommu_lab.render.pagetable import PAGETABLE, pagetable_data
from iommu_lab.review.workload import table_tree


def test_table_tree_matches_the_models_own_census():
    pt = example_pagetable()
    tree = table_tree(pt)
    ref = pt.tables
    assert len(tree) == len(ref)
    assert sorted(tree.address.tolist()) == sorted(t.address for t in ref)
    by_addr = {t.address: t for t in ref}
    for a, lv, used, off in zip(tree.address.tolist(), tree.level.tolist(), tree.used.tolist(), tree.offset.tolist()):
        t = by_addr[a]
        assert (t.level, t.used, t.iova) == (lv, used, off)
    mix = Counter()
    for m in pt.mappings():
        mix[m.size] += m.size
    assert tree.mix() == dict(mix)
    assert tree.table_bytes == pt.table_bytes


def test_amd_nl7_replicated_leaves_count_once():
    pt = PageTable("amd-v1-3level")
    pt.map(0x10000, 0x10000, 0x8000)  # one 32 KiB leaf in 8 slots
    tree = table_tree(pt)
    assert tree.mix() == {0x8000: 0x8000} and tree.leaves == 1


def test_one_box_per_table_page_per_level_with_its_occupancy():
    pt = example_pagetable()
    d = pagetable_data(pt)
    tree = table_tree(pt)
    assert [b.level for b in d.bands] == [3, 2, 1, 0]
    for b in d.bands:
        m = tree.level == b.level
        assert b.tables == int(m.sum()) == int(b.count.sum()) == b.x0.size  # small: nothing aggregated
        assert sorted(b.occupancy.tolist()) == sorted((tree.used[m] / tree.entries[m]).tolist())
    root = d.bands[0]
    assert root.x0.tolist() == [0.0] and root.x1[0] == pytest.approx(d.x_max)
    assert root.used.tolist() == [2]  # PML4 entries 0 and 1 (IOVA 0 .. 1 TiB)
    # Boxes of one level never overlap and children sit inside their parent.
    for b in d.bands:
        assert np.all(b.x0[1:] >= b.x1[:-1] - 1e-9)
    pd_band = d.bands[2]
    pt_band = d.bands[3]
    for x0, x1 in zip(pt_band.x0, pt_band.x1):
        assert any(a - 1e-9 <= x0 and x1 <= b + 1e-9 for a, b in zip(pd_band.x0, pd_band.x1))


def test_the_figure_shades_by_occupancy_pale_to_saturated_with_a_colourbar_and_writes_the_bytes():
    pt = example_pagetable()
    drawing = figure(PAGETABLE, pt)
    fig, d = drawing.figure, drawing.data
    ax = fig.axes[0]
    for b in d.bands:
        coll = drawing.drawn[b.level]
        assert coll.get_cmap().name == "occupancy"
        # an empty table is pale, never a near-black block
        assert min(coll.get_cmap()(0.0)[:3]) > 0.75
        assert np.allclose(coll.get_array(), b.occupancy)
        assert len(coll.get_paths()) == b.x0.size
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "share of a table's entries in use"
    texts = [t.get_text() for t in ax.texts if t.get_gid() == "pagetable:band-bytes"]
    assert texts == ["1 × 4 KiB = 4 KiB", "2 × 4 KiB = 8 KiB", "2 × 4 KiB = 8 KiB", "3 × 4 KiB = 12 KiB"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["4 KiB leaves: ≈ 2.01 MiB", "1 GiB leaves: 3 GiB"]
    assert set(d.leaf_runs) == {4096, 1 << 30}


def test_thousands_of_table_pages_draw_as_collections_in_well_under_a_second():
    pt = example_big_pagetable()  # 8 GiB of 4 KiB pages
    t = time.perf_counter()
    drawing = figure(PAGETABLE, pt)
    elapsed = time.perf_counter() - t
    ax, d = drawing.figure.axes[0], drawing.data
    leaf = d.bands[-1]
    assert leaf.tables == 4096
    assert int(leaf.count.sum()) == 4096 and leaf.x0.size < 4096  # sub-pixel boxes aggregated
    assert len(ax.patches) == 0  # no patch per table: collections only
    # The aggregate keeps the true occupancy: the table with the 1 MiB hole is half used.
    assert leaf.used.sum() == 4096 * 512 - 256
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    assert d.title == "vtd-ss-4level: 4,106 table pages, ≈ 16 MiB of tables"


def test_figure_sizes_use_the_one_size_formatter():
    assert fmt_size(16 << 20, approx=True) == "16 MiB"
    assert fmt_size((16 << 20) + (40 << 10), approx=True) == "≈ 16 MiB"
    assert fmt_size((8 << 30) - (1 << 20), approx=True) == "≈ 8 GiB"
    assert fmt_size(4096, approx=True) == "4 KiB"


@pytest.mark.parametrize("st", ["light", "dark"])
def test_both_styles_are_opaque(st):
    fig = render.pagetable(example_pagetable(), style=st)
    assert to_rgba(fig.get_facecolor())[3] == 1.0
    ax = fig.axes[0]
    assert to_rgba(ax.get_facecolor())[3] == 1.0
    for c in ax.collections:
        fc = c.get_facecolor()
        assert fc.size == 0 or np.all(fc[:, 3] == 1.0)


def test_ax_and_filename_keywords(tmp_path):
    fig = Figure(figsize=(12, 8), layout="constrained")
    a, b = fig.subplots(2)
    pt = example_pagetable()
    assert render.pagetable(pt, ax=b, filename=tmp_path / "p.svg") is fig
    assert not a.collections and b.collections
    one = (tmp_path / "p.svg").read_bytes()
    fig2 = Figure(figsize=(12, 8), layout="constrained")
    render.pagetable(pt, ax=fig2.subplots(2)[1], filename=tmp_path / "q.svg")
    assert (tmp_path / "q.svg").read_bytes() == one
    render.pagetable(pt, filename=tmp_path / "p.pdf", style="dark")
    assert (tmp_path / "p.pdf").read_bytes()[:4] == b"%PDF"


def test_pagetable_does_not_mutate_the_table():
    pt = example_pagetable()
    before = pt.memory.snapshot()
    render.pagetable(pt)
    assert pt.memory.snapshot() == before


def test_an_empty_table_draws_its_root():
    d = pagetable_data(PageTable("arm-lpae-s2-4k-40bit"))
    assert [b.tables for b in d.bands] == [1] and d.leaf_runs == {}
    render.pagetable(PageTable("arm-lpae-s2-4k-40bit"))


# -- image regression: drawn-data fingerprint + thumbnail (see test_render_walk.check_reference) --
def _entries():
    from iommu_lab.gallery import ENTRIES

    return ENTRIES


REFERENCE_FIGURES = {
    "pagetable-mixed-light": lambda: _entries()["pagetable-mixed"]("light"),
    "pagetable-8g-4k-dark": lambda: _entries()["pagetable-8g-4k"]("dark"),
}
REFERENCES: dict[str, tuple[str, str]] = {
    "pagetable-8g-4k-dark": ("220aa5be4aef1cfc900d2ec55c9e633b4b6cc94b361e3e7b82207705a97ee38e", "1c1c1c1c1c1c1c1c263c3b30313a362f2c30422f453836374b342e2b40292c363f3d383b2d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c261c1c1e2d253733261c1c1c1c1c1c1c1c1c1c4483838383838383838383838383838383838383838383838383838383838383838383838383838383838384848f8484445d391c1c1c1c1c34343932323e343e63e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9ca888086819799808493496b3f3d3c2a312e1c1c1c1c1c1c1c1c4891919191919191919191919191919191919191919191919191919191919191919191919191919191919245444444442f78411c1c1c44451c3434403c3e343b62e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7c8877f858047472e32412d85451c1c1c53451c1c1c1c1c1c1c1c3c676767676867676767686767676767686767676768676767676867676767676867676767686767676765282828282825924b3d3a2854421c1c3f373f3e3438374f4f4f4f52504f4f4f52504f4f4f4f534f4f4f4f534f4f4f4f52504f4f4f4f534f4f4f4f534c3e3f424e3d354d30412d9f4d1c1c1c584f1c1c1c1c1c1c1c1c3242424242444342424244434242424245424242424542424242444342424242454242424245424242423c282828282825ac533d2e2952521c1c3f36343d3439364f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f494a50483c423e5346323c353f2cb9551c1c1c5f421c1c1c1c1c1c1c1c31414141414141414141414141414141414141414141414141414141414141414141413d3a3a3c3a3a3a37272729272725c65b3d3926554a1c1c1c1c2c2d2d2c364e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e42282828282825d35d1c1c1c1c1c1c1c1c1c262d28293244444444444444444444444444444444444444444444444444444444444444444444444444444444443b282828282825df611f1e1d1c1c1c1c1c1c1c1c313130212121212121212121212121212121212121212121212121212121212121212121212121212125414439212243345a2d3a293a34271c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c323535443a36201c3c4b40342d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c20362d2730312d3632322d282f37302d2b2e31353a2d3d2c313935253428332a3d342f352e2b281c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c30371f2e30393c3c39333f313347221c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"),
    "pagetable-mixed-light": ("0e9eeeecd0ca658b08f1237fa6ee26329e6340ddfdd77c2672e71fabbde6291e", "fffffffffffffffff4dbdce9e7dde2eae6d3dadde3ccdbeae5e9e0e0d8dadfdcecfffff3fffffffffffffffffffffffffffffffffffffff3fdd2ece1e6f4ffffffffffffffffffffeef2f2f2f2f2f2f2f2eaeaf2f2f2f2f2f2f2e6eef2f2f2f2f2f2f1e4f1f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2e4f15bc2ffffffffffe4e4dce6e6d7e4d7e9e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8eadce6dfe4c7cae7e0cee569c4dadaf0dbe7ffffffffffffffffecedededededededede9e7ededededededede7e9ededededededebe7e8edededededededededededededededededececf276cbffffffcdd0ffe4e4d3d8d9e4dce9e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e1e9e9e9e9e9e9e9e9e9ead9e6dfe4c6cadce0cfe983cff9fbfcb9cffffffffffffffffff0f6f6f6f6f6f6f6f6efebecedededededecebebededededededeaebf1f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f5f0f490d0e0e1f5b8d4ffffd7dfd7dae4e0f1fffffffffffffffff6eee6e8e8e8e8e8e6eee9e9e9e9e9e9e9e6eefafffffffffffffffffffde2f0e9eed1d3e7ebd2e99ed7ffffffadc4fffffffffffffffff3fffffffffffffffff6efbebfbfdbeaeae8efebeaeaeaeaeaeae8f0fafffffffffffffffffffffffffffffffffffff1f4abd9daebf0cabeffffd7e2e4dbe4def1fffffffffffffffff6ee4f4f4fb3e9e9e6eee8e8e8e8e8e8e8e6f1faffffffffffffffffffdff0f1ead9dee7d2ecd3eab8dfffffffa8d0fffffffffffffffff3fffffffffffffffff6ef999999d2f0f0eeefedf0f0f0f0f0f0edf1fafffffffffffffffffffffffffffffffffffff1f4c5e1dadef4c4c7ffffffffe2d9dfdec66c6c6b6b6c6c6c6cc2ef777777cffffffff1f6fffffffdcffffaf1966c6c6c6c6b6b6c6cfdfffffffffffffffffff1f4d2e7ffffffffffffffffffffffffffdbb0b0b0b0afb0b0b0d7edb5b5b5e2fafafaedf2fafafaf9e2faf5eec3b0b0b0b0b0b0afb0f8fafafafafafafafafaeef3dee9e2eaf5ffffffffffffffffe7e7edfffffff2e4e0dbd6fefffffef7e6dfd1e2fefffffff7fad1dce9fffffffffceee6d8d7e6fefffffffffff3f1c5d8bdeefffff7f7fcffffffffffffffffffffffffe0d9e0f9f5fffff0e6dfd9e1f8f9ffffdbe2dfd4e5e6fffffffaded6e1daedf6fdffffffffffffffdbd7e2f7fefffffffffffffffffffffffffffffffffffffffffffffae1ecf3e8e7ece2e6e6ebf1e9e0e7ebedeae7e2dcecd9ece7dee3f4e3f2e5efd9e3e9e2ebedf2fffffffffffffffffffffffffffffffffffffffffffffffffffffffdcbcbf4ebdce5c8e8ccf3d8e5e3e8e8d0fffdc8d8e8e2d0edcbead2eee2d2e8ffffffffffffffffffffffffffffffffff"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    from figcheck import check_reference

    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)
