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
    "pagetable-8g-4k-dark": ("141caa30d560ae8ea00d80641e595403c9f70fd708f312bcad8db4a2117ffd63", "1c1c1c1c344b36443e2f3c44433f48504d2f3a3635473f4c4c1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2d3e302d3943423a313d371e1e1c1c1c1c1c1c1c241c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d1d1e1f1f1f311f1f1f1e84852c281c222225242a25252525252525252525252525252525252525252525252525252525252525252525252525252525252525252525262b262b36322b2c80801c1c1c2d2f2b2c2a24242424242424242424242424242424242424242424242424242424242424242424242424242424242424242424262b282a312b2a2c7a7c2d2e1c1c1c1c1c2924242424242424242424242424242424242424242424242424242424242424242424242424242424242424242425282828282828282474741c1c1c2f3738322d2828282828282828282828282828282828282828282828282828282828282828282828282828282828282828282728322a31433931376d6e2a283a1c1c1c1c5a6969696967686969696966696969696966696969696768696969696669696969696669696969696669696969695128282828282828246666202746273d2c3191b5b5b5b5b0b2b5b5b5b5aeb5b5b5b5b5aeb5b5b5b5b0b2b5b5b5b5aeb5b5b5b5b5aeb5b5b5b5b5aeb5b5b5b5b582312f2c37493f31385f5f1c1c561c1c1c1c5a68686868676868686868666868686868666868686867686868686866686868686866686868686866686868686853282828282828282456572c27481d3f373193b0b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5af5d46262e3d3e3f2e374f4f1c1c1c1c1c1c1c6e80838383838383838383838383838383838383838383838383838383838383838383838383838383838383838366282828282828282447482d2c1c1c1c2120454b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b3f28282828282828243f3f1c1c1c1c1c2f2f464b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b3f282828282828282433331c1c1c1c1c1c292c22222222222222222222222222222222222222222222222222222222222222222222222222222222222222222d40242424242424304e23252f2b1c1c1c1c221c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c24454d3d1e1c1c1c1c2d584f2b1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2b2d3c3f342a31332f373c3a3b332a30383435271f1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"),
    "pagetable-mixed-light": ("23a45aa7a189f0888dfc017fd4b3875ce20208afbe9ec84f14934a80a298c9c7", "ffffffffe4cae2d2d9ead4c9dbc9bfe9cdeacfd7c9c9fefffffffffffffffffffffffffffffffffdcbe2e1dadedce0e8eee3bbead9ddd3d4e4d9e0fdfdfffffffffffffff6fffffffffffffffffeedfefffffffffffffff3f6fffffffffffffffeedfefffffffffffefefefefefefefefefefefefefefefefce6fdc1c0edf1fff4f4f2f35d282828282828282828282828282828282828282828282828282828282828282828282828282828282828282828282b6a716a5c626a91bebeffffffefeeefef764c4c4c4c4c4c4c4c4b4a4b4c4c4c4c4c4c4c4a4a4c4c4c4c4c4c4c4b4a4b4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4e7679777275759db8b7eceaffffffffff9171717171717171716f6c70717171717171716c6c717171717171716f6c75707070707070707070707070707070707088898888cef1f6b2b2ffffffece7e8e95d292929292929292929292929292929292929292929292929292929292930272727272727272727272727272727272b74807866b6e2dfabaaedefd7fffffffff6fffffffffffffffff8f1ad94949494949496f1f196949494949494abf1fcfffffffffffffffffffffffffffffffffffffffffff6f1f6a4a4fff8cff2d7e9e8f4fffffffffffffffff8f15c26262626262629f1f1282525252525255bf1fcfffffffffffffffffffffffffffffffffee9f5ecd9d8e2df9c9cffffcbfffffffff6fffffffffffffffff8f1b6a0a0a07f727274f1f174727272727272a3f1fcfffffffffffffffffffffffffffffffffffffffffff6f1f69492ecf3d2ffd8e2e8f4fffffffffffffffff8f1c5b5b5b54e252528f1f1292626262626268ef1fcffffffffffffffffffffffffffffffffeeeef2e6d0e0e5df8c8cfffffffffffffff6fffffffffffffffff8f1e1dadadaa8949496f1f196949494949494c4f1fcfffffffffffffffffffffffffffffffffffffffffff6f1f68483ecefffffffe8ea8d706f6f7070706f6faff1977a7a7adcfffffff1f1fffffffffcfffff8f18e706f6f7070706f6fb6fffffffffffffffffffffffff6f1f67b7bfffffffffffcfcb5a5a5a6a5a5a5a5a6c9eebcacacace7fcfcfceeeefcfcfcfcfafcfcf5eeb7a5a5a6a5a5a5a5a6d0fcfcfcfcfcfcfcfcfcfcfcfcf3eef47171ffffffffffffe9f1fbfbfbfbfbfbfbd9dffbfbfbfbfbfbfbf3ccf7fbfbfbfbfbfbfbe7e0fbfbfbfbfbfbfbfbfbd7e2fbfbfbfbfbfbfbfbfbfbfbfbf4d1bafcfbe8ecfffffffffffffffffffffffccfefffffffffffffffd6d6feffffffffffffdad1e2ffffffffffffffffd3d1f1ffffffffffffffffffffffffecc3e3ffffffffffffffffffffffffffffffffffffffffffffffffffffeeecdbd7e3efe7e4e9e0dadddce5efe8dfe3e2f2fcffffffffffffffffffffffffffffffffffffffffffffff"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    from figcheck import check_reference

    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)
