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
    "pagetable-8g-4k-dark": ("371feaed963e3e1e09447ebb5994b4f3548133421e38b793f102ef22a8d168b2", "1c1c1c1c1c1c29423434323a35282d3c373d383a35493b2f3b2b352d3533323f3b431d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c271c1c1e2d253733261c1c1c1c1c1c1c1c66838383838383838383838383838383838383838383838383838383838383838383838383838383838383838384848f8484445d391c1c1c1c1c34343b32323ea7e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9c6888086849399828293476b3f3d3c2a312e1c1c1c1c1c1c6f919191919191919191919191919191919191919191919191919191919191919191919191919191919191917844444444442f78411c1c1c44451c3434433f3ea6e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7c4877f856841473130412a85451c1c1c53451c1c1c1c1c1c556767676768676767676768676767676867676767676867676767686767676767686767676768676767676753282828282825924b3d3a2854421c1c3f3a3f3e484f4f4f4f534f4f4f4f4f534f4f4f4f52504f4f4f4f534f4f4f4f52504f4f4f4f534f4f4f4f52504b3e41414e3d354c30412a9f4d1c1c1c584f1c1c1c1c1c1c3f424242424542424242424542424242444342424242454242424244434242424245424242424443424242423c282828282825ac533d2e2952521c1c403a343e474f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4a494e473c42404d46333b364029b9551c1c1c5f421c1c1c1c1c1c3d4141414141414141414141414141414141414141414141414141414141414141414141413d3a3a3c3a3a3a35272729272725c65b3d3926554a1c1c322b2f27464e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e42282828282825d35d1c1c1c1c1c1c1c292e28263f444444444444444444444444444444444444444444444444444444444444444444444444444444444444443b282828282825df611f1e1d1c1c1c1c1c1c353b23212121212121212121212121212121212121212121212121212121212121212121212121212121252648432d21224435592c3a293a34271c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c363b383d402e1d1c3c4d40332d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c26322b2836312d2f3535322535322d2f2b3235373336382a3b3a2e283628303634362f363128281c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c30371f2e30393c3c39333f313347221c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"),
    "pagetable-mixed-light": ("6d3e24fb0dc6aa45339edfbc232bf3763b8b4d1db2df21957d89614d1053e69d", "fffffffffffff0d4e4e4e6dde2f2e4d4d4e5cfd8d2fbd4f1dfd9e7d8dcd2fefffffff3fffffffffffffffffffffffffffffffffffffffff3fdd2ece1e6f4ffffffffffffffffe9f2f2f2f2f2f2f2f2ece8f2f2f2f2f2f2f2f1e4f1f2f2f2f2f2f2f1e4f1f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f1e4f15bc2ffffffffffe4e4dfe6e6dae1e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8eadce6dfe3cccae4e2cfe869c4dadaf0dbe7ffffffffffffe6edededededededede9e7edededededededebe7ebededededededebe7e8ededededededededededededededededededebedf276cbffffffcdd0ffe4e4d8dddbe1e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e1e9e9e9e9e9e9e9e9e9e9e8dbe6dfe3cacadae2d0ed83cff9fbfcb9cfffffffffffffedf6f6f6f6f6f6f6f6efebecededededededebecebededededededeaebf1f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f3f1f490d0e0e1f5b8d4ffffd7e0d7d8f1fffffffffffffffff6eee6e8e8e8e8e8e8e6f1e6e9e9e9e9e9e9e6eefafffffffffffffffffffffbe5f0e9ecd4d3e5ebd1ed9ed7ffffffadc4fffffffffffff3fffffffffffffffff6efbebfbfcdeaeaeae8f1e8eaeaeaeaeaeae8f0fafffffffffffffffffffffffffffffffffffffaf1f4abd9daebf0cabeffffd7dee3d7f1fffffffffffffffff6ee4f4f4f80e9e9e9e6f1e6e8e8e8e8e8e8e6f1faffffffffffffffffffffe0f0eeecd8dfead0ebd2edb8dfffffffa8d0fffffffffffff3fffffffffffffffff6ef999999b5f0f0f0edf1edf0f0f0f0f0f0edf1fafffffffffffffffffffffffffffffffffffffaf1f4c5e1dadef4c4c7ffffd8dadde9956c6c6c6c6b6b6c6cc3ef777777a2fffffffaf1fafffffffdfdfffaf1966c6c6c6c6c6b6b6cccfffffffffffffffffffaf1f4d2e7ffffffffffffffffffffffc1b0b0b0b0b0b0afb0d7edb5b5b5cbfafafaf5eef6fafafaf9f9faf5eec3b0b0b0b0b0b0b0afdffafafafafafafafafaf6eef3dee9e2eaf5ffffffffffffe2dcfefffffff5e1e4dcd1fdfffffffce6eed2d8f2fffffffff5fad1dbeefffffffffff3e4e0dbd5fefffffffffffff2f2c4d7bef0fffff7f7fcffffffffffffffffffffe3dae3f6f5ffffffe3dfe0ddeff5fffffedbdedfd8e3e9ffffffffe4dae1dde1f8f5ffffffffffffffffdbd6e2f8fefffffffffffffffffffffffffffffffffffffffffff5e5edf2e2e7ece9e3e2e6f5e3e5ece9eee6e3e1e4e1deefdcddeaf1e0f2e8e2e2e1e9e1e7f1f2fffffffffffffffffffffffffffffffffffffffffffffffffffffffffdcbcbf4ebdce5c8e8ccf3d8e5e3e8e8d0fffdc8d8e8e2d0edcbead2eee2d2e8ffffffffffffffffffffffffffffffffff"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    from figcheck import check_reference

    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)
