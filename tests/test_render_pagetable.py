"""The page-table icicle: tests on the boxes it draws per level, occupancy, leaves and cost."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from iommu_lab import render
from iommu_lab.gallery import example_big_pagetable, example_pagetable
from iommu_lab.pagetable import PageTable
from iommu_lab.render.draw import figure
from iommu_lab.render.pagetable import PAGETABLE, human_bytes, pagetable_data
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


def test_the_figure_shades_by_occupancy_with_a_cividis_colourbar_and_writes_the_bytes():
    pt = example_pagetable()
    drawing = figure(PAGETABLE, pt)
    fig, d = drawing.figure, drawing.data
    ax = fig.axes[0]
    for b in d.bands:
        coll = drawing.drawn[b.level]
        assert coll.get_cmap().name == "cividis"
        assert np.allclose(coll.get_array(), b.occupancy)
        assert len(coll.get_paths()) == b.x0.size
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "entries used / total"
    texts = [t.get_text() for t in ax.texts if t.get_gid() == "pagetable:band-bytes"]
    assert texts == ["1 × 4 KiB = 4 KiB", "2 × 4 KiB = 8 KiB", "2 × 4 KiB = 8 KiB", "3 × 4 KiB = 12 KiB"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["4 KiB leaves: 2.012 MiB", "1 GiB leaves: 3 GiB"]
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
    assert d.title == "vtd-ss-4level: 4,106 table pages, 16.04 MiB of tables"


def test_human_bytes():
    assert human_bytes(16 << 20) == "16 MiB"
    assert human_bytes((16 << 20) + (40 << 10)) == "16.04 MiB"
    assert human_bytes((8 << 30) - (1 << 20)) == "7.999 GiB"
    assert human_bytes(4096) == "4 KiB"


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
    "pagetable-8g-4k-dark": (
        "3f3cff0ec8f4419b883372e03809fda777d48514f39124ab88b14a4eaef8c88f",
        (
            "1c1c1c1c344b36423d2f3c45413f464e4b2e383e2e3d4152402d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c38402b35393e3237433e361e1e27271c"
            "1c1c1c1c241c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1e202020322020201f838422201c"
            "2f312d2e2b2525252525252525252525252525252525252525252525252525252525252525252525252525252525252525252526312930433730367f7f1c1c1c"
            "1f1f201f292424242424242424242424242424242424242424242424242424242424242424242424242424242424242424242426252525252525227a7b2c291c"
            "1c1c1d1d2b2626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262628272728292b282474741c1c1c"
            "2f3636312d2828282828282828282828282828282828282828282828282828282828282828282828282828282828282828282728332b31423531386d6e2d2c3f"
            "1c1c1c1c5967676767656667676767646767676767646767676765666767676764676767676764676767676764676767676750282828282828282466661c2246"
            "2840313191b5b5b5b5b0b2b5b5b5b5aeb5b5b5b5b5aeb5b5b5b5b0b2b5b5b5b5aeb5b5b5b5b5aeb5b5b5b5b5aeb5b5b5b5b582322d2c39483e30385e5e1c1c4a"
            "1c1c1c1c5a68686868676868686868666868686868666868686867686868686866686868686866686868686866686868686853282828282828282456572d2744"
            "1d3b333093b0b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5ae5b46262e3d3e3f2d374e4e1c1c1c"
            "1c1c1c1c6e8083838383838383838383838383838383838383838383838383838383838383838383838383838383838383836a282828282828282447482d2c1c"
            "1c1c2422454b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b3f28282828282828243f3f1c1c1c"
            "1c1c2f2e464b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b3f282828282828282433331c1c1c"
            "1c1c1c292c22222222222222222222222222222222222222222222222222222222222222222222222222222222222222222d3f242424242424304e23252f2b1c"
            "1c1c1c221c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c24454c3d1d1c1c1c1c2d584f2b1c1c1c1c1c"
            "1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2b2d3c3f342a32332f373c3a3b332a31383435271f1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"
        ),
    ),
    "pagetable-mixed-light": (
        "cdd9fbb3771af6f7a50a0da1318447b167ff125735274da335cd0f7c7274ad43",
        (
            "ffffffffe4cae2d4daead5cbddcbc1e9cfead0d7cbcbfeffffffffffffffffffffffffffffffffffdbcbeadad6e6dce6eecdb9e8d9dcd7d8e5d9e0fdfdf3f3ff"
            "ffffffffdedddddddddddddddddccbdcddddddddddddddd1d4dddddddddddddddccadcdddddddddddddddddddddddddddddddddddddddddddbc5e7c0bff8fbff"
            "e8e6eae95b262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262b768077636f7793bdbdffffff"
            "ffffffff774c4c4c4c4c4c4c4c4b4a4b4c4c4c4c4c4c4c4a4a4c4c4c4c4c4c4c4b4a4b4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4d64646464626297b8b6edf0ff"
            "fffffefe774d4d4d4d4d4d4d4d4c4b4c4d4d4d4d4d4d4d4b4b4d4d4d4d4d4d4d4c4b524c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4e78797774c5f1f6b1b1ffffff"
            "e8dedde75d292929292929292929292929292929292929292929292929292929292930272727272727272727272727272727272b65716a58b5e4dfaaa9ecead2"
            "fffffffff6fffffffffffffffff8f19270707070707072f1f17270707070707091f1fcfffffffffffffffffffffffffffffffffffffffffff6f1f6a3a3fffbcf"
            "f5dff1e9f4fffffffffffffffff8f15c26262626262629f1f1282525252525255bf1fcfffffffffffffffffffffffffffffffffee9f5ecd8d8e3df9b9bfffdc7"
            "fffffffff6fffffffffffffffff8f1b6a0a0a07f727274f1f174727272727272a3f1fcfffffffffffffffffffffffffffffffffffffffffff6f1f69392edf5d1"
            "ffd8dfe8f4fffffffffffffffff8f1c5b5b5b54e252528f1f1292626262626268ef1fcffffffffffffffffffffffffffffffffedf0f2e5d1e0e6df8b8cffffff"
            "fffffffff6fffffffffffffffff8f1e1dadadaa8949496f1f196949494949494c4f1fcfffffffffffffffffffffffffffffffffffffffffff6f1f68483ecedff"
            "ffffe8e98d706f6f7070706f6faff1977a7a7adcfffffff1f1fffffffffcfffff8f18e706f6f7070706f6fb6fffffffffffffffffffffffff6f1f67b7bffffff"
            "fffffefeb5a5a5a6a5a5a5a5a6c9eebcacacace7fcfcfceeeefcfcfcfcfafcfcf5eeb7a5a5a6a5a5a5a5a6d0fcfcfcfcfcfcfcfcfcfcfcfcf3eef47070ffffff"
            "ffffffe9f1fbfbfbfbfbfbfbd9dffbfbfbfbfbfbfbf3ccf7fbfbfbfbfbfbfbe7e1fbfbfbfbfbfbfbfbfbd6e3fbfbfbfbfbfbfbfbfbfbfbfbf4d0b9fcfbe8ecff"
            "fffffffffffffffffffffccfefffffffffffffffd6d6feffffffffffffdad1e2ffffffffffffffffd2d1f1ffffffffffffffffffffffffebc3e3ffffffffffff"
            "ffffffffffffffffffffffffffffffffffffffffeeecdbd7e3efe6e4e9e0dadddce5efe8dfe3e2f2fcffffffffffffffffffffffffffffffffffffffffffffff"
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    from figcheck import check_reference

    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)
