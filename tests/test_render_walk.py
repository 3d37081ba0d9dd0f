"""The single-IOVA walk figure: tests on the data it draws (bit fields, rows, arrows, fault)."""

from __future__ import annotations

import io

import pytest
from figcheck import check_reference
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from iommu_lab import render
from iommu_lab.pagetable import PageTable
from iommu_lab.render import style
from iommu_lab.render.draw import figure
from iommu_lab.render.walk import WALK, fmt_raw, walk_data


@pytest.fixture()
def vtd():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x7F_1234_5000, 0x2_0000_0000, 0x1000)
    pt.map(0x40_0000_0000, 0x4000_0000, 1 << 30)
    return pt


def _drawn(w, **kw):
    """The figure of ``w`` and what its draw function reports drawing."""
    drawing = figure(WALK, w, **kw)
    return drawing.figure, drawing.drawn


def test_bit_fields_span_each_levels_index_bits_then_the_offset(vtd):
    d = walk_data(vtd.walk(0x7F_1234_5678))
    spans = [(f.kind, f.hi, f.lo, f.label) for f in d.fields]
    assert spans == [
        ("high", 63, 48, "[63:48] must be 0"),
        ("level", 47, 39, "SL-PML4E [47:39]"),
        ("level", 38, 30, "SL-PDPE [38:30]"),
        ("level", 29, 21, "SL-PDE [29:21]"),
        ("level", 20, 12, "SL-PTE [20:12]"),
        ("offset", 11, 0, "offset [11:0] (4 KiB page)"),
    ]
    assert [f.value for f in d.fields if f.kind == "level"] == [0, 508, 145, 325]
    assert d.fields[-1].value == 0x678
    # The bar tiles all 64 bits without gaps or overlaps.
    assert sum(f.width for f in d.fields) == 64


def test_a_1g_leaf_makes_the_lower_index_bits_part_of_the_offset(vtd):
    d = walk_data(vtd.walk(0x40_0123_4567))
    assert [(f.kind, f.hi, f.lo) for f in d.fields][-2:] == [("level", 38, 30), ("offset", 29, 0)]
    assert d.result_text.startswith("PA 0x4123_4567 = page 0x4000_0000 + offset 0x123_4567")


def test_x86_upper_half_shows_sign_extension_bits():
    pt = PageTable("x86-64-4level")
    pt.map(0xFFFF_8000_0000_0000, 0x1000, 0x1000)
    d = walk_data(pt.walk(0xFFFF_8000_0000_0000))
    assert d.fields[0].label == "[63:48] sign extension of bit 47"
    assert d.fields[0].value == 0xFFFF
    assert d.fields[1].value == 256  # the upper half starts at PML4 index 256


def test_one_row_per_entry_with_table_index_and_raw_hex(vtd):
    w = vtd.walk(0x7F_1234_5678)
    d = walk_data(w)
    assert [(r.level, r.table, r.index) for r in d.rows] == [(s.level, s.table, s.index) for s in w.steps]
    assert [r.raw_text for r in d.rows] == [fmt_raw(s.raw) for s in w.steps]
    assert d.rows[0].raw_text == "0x0000_0000_1000_1003"
    assert [r.kind for r in d.rows] == ["table", "table", "table", "leaf"]
    assert d.rows[0].fields == "R=1 W=1 ADDR=0x10001"
    assert d.rows[-1].decoded.startswith("leaf: 4 KiB page at 0x2_0000_0000")
    # The figure writes exactly these strings.
    fig = render.walk(w)
    texts = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "walk:row-raw"]
    assert texts == [r.raw_text for r in d.rows]


def test_arrows_point_from_each_table_entry_to_the_next_rows_table_and_the_leaf_to_the_result(vtd):
    w = vtd.walk(0x7F_1234_5678)
    d = walk_data(w)
    assert d.arrows == [(0, 1, w.steps[1].table), (1, 2, w.steps[2].table), (2, 3, w.steps[3].table),
                        (3, "result", 0x2_0000_0000)]
    for i, j, target in d.arrows[:-1]:
        assert d.rows[i].target == target == d.rows[j].table
    fig, drawn = _drawn(w)
    drawn = drawn["arrows"]
    assert [(i, j) for i, j, *_ in drawn] == [(i, j) for i, j, _ in d.arrows]
    assert sum(1 for p in fig.axes[0].patches if p.get_gid() == "walk:arrow") == 4


def test_reserved_bits_are_decoded_and_shown():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x5000, 0x1000)
    leaf = pt.walk(0x1000).steps[-1]
    pt.memory.write_u64(leaf.read_address, leaf.raw | (1 << 55))
    d = walk_data(pt.walk(0x1000))
    assert d.rows[-1].reserved == 1 << 55
    assert "reserved bits 0x80000000000000" in d.rows[-1].fields


def test_a_fault_is_marked_at_the_level_where_it_happened_with_its_reason(vtd):
    w = vtd.walk(0x7F_1230_0000)
    d = walk_data(w)
    assert not d.ok and d.fault_level == 0 and d.fault_reason == "not present"
    assert [r.fault for r in d.rows] == [False, False, False, True]
    assert d.rows[-1].category == "walk-fault"
    assert [f.level for f in d.fields if f.fault] == [0]
    assert d.result_text == "FAULT at SL-PTE (level 0): not present"
    fig = render.walk(w)
    ax = fig.axes[0]
    fault_chip = [p for p in ax.patches if p.get_gid() == "walk:row-level"][-1]
    cat = style.category("walk-fault")
    assert to_rgba(fault_chip.get_facecolor()) == to_rgba(cat.face(style.THEMES["light"]))
    assert fault_chip.get_hatch() == cat.hatch
    assert any(t.get_text() == d.result_text for t in ax.texts)
    assert [p for p in ax.patches if p.get_gid() == "walk:fault"]
    assert not [p for p in ax.patches if p.get_gid() == "walk:result"]


def test_a_fault_before_any_read_marks_the_input_bits():
    pt = PageTable("x86-64-4level")
    d = walk_data(pt.walk(0x0001_0000_0000_0000))  # non-canonical
    assert d.rows == [] and d.fault_reason == "non-canonical"
    assert d.fields[0].fault and d.result_text == "FAULT before the first read: non-canonical"
    render.walk(pt.walk(0x0001_0000_0000_0000))


@pytest.mark.parametrize("name", ["amd-v1-3level", "arm-lpae-s1-4k-48bit", "riscv-sv39", "power-tce-4k"])
def test_every_family_draws(name):
    pt = PageTable(name)
    pt.map(0x20_0000, 0x20_0000, 0x1000)
    w = pt.walk(0x20_0123)
    d = walk_data(w)
    assert len(d.rows) == w.references and d.ok
    assert sum(f.width for f in d.fields) == 64
    render.walk(w)


@pytest.mark.parametrize("st", ["light", "dark"])
def test_both_styles_are_opaque(vtd, st):
    fig = render.walk(vtd.walk(0x7F_1234_5678), style=st)
    assert to_rgba(fig.get_facecolor())[3] == 1.0
    assert to_rgba(fig.axes[0].get_facecolor())[3] == 1.0
    for p in fig.axes[0].patches:
        if p.get_fill():
            assert to_rgba(p.get_facecolor())[3] == 1.0


def test_ax_and_filename_keywords(vtd, tmp_path):
    fig = Figure(figsize=(12, 8))
    ax1, ax2 = fig.subplots(2)
    assert render.walk(vtd.walk(0x1000 + 0x7F_1234_4000), ax=ax2, filename=tmp_path / "w.svg") is fig
    assert not ax1.patches and ax2.patches
    assert (tmp_path / "w.svg").read_bytes().lstrip().startswith(b"<?xml")
    render.walk(vtd.walk(0x7F_1234_5678), filename=tmp_path / "w.png", style="dark")
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_walk_does_not_mutate_the_table(vtd):
    before = vtd.memory.snapshot()
    render.walk(vtd.walk(0x7F_1234_5678))
    render.walk_text(vtd.walk(0x7F_1230_0000))
    assert vtd.memory.snapshot() == before


def test_walk_text_lists_the_same_rows_and_the_fault(vtd):
    out = render.walk_text(vtd.walk(0x7F_1230_0000))
    assert "SL-PML4E [47:39]" in out and "<- fault here" in out
    assert "0x0000_0000_1000_1003" in out
    assert "!! FAULT at SL-PTE (level 0): not present" in out
    ok = render.walk_text(vtd.walk(0x7F_1234_5678))
    assert "=> PA 0x2_0000_0678" in ok


def test_gallery_has_walk_figures():
    from iommu_lab.gallery import ENTRIES

    fig = ENTRIES["walk-vtd-4k"]("dark")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


# -- image regression (the approach of test_render_layout: drawn-data fingerprint + thumbnail) --
REFERENCE_FIGURES = {
    "walk-vtd-4k-light": lambda: __import__("iommu_lab.gallery", fromlist=["x"]).ENTRIES["walk-vtd-4k"]("light"),
    "walk-vtd-fault-dark": lambda: __import__("iommu_lab.gallery", fromlist=["x"]).ENTRIES["walk-vtd-fault"]("dark"),
}
REFERENCES: dict[str, tuple[str, str]] = {
    "walk-vtd-4k-light": (
        "227213aa3f02ae21f972ad4bbd8b48c38c323a91aa023a1a47c76670afe01814",
        (
            "eddae8dddee8e2e1dadfd9e1eae5d6e4d7e0f0e4dad9ead7d4dad3f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "fefcfcfcfcf3dde5e6e1f5fcfcfcfcfcfce7e7dfe2e8fcfcfcf1dbe3dbe1fcfcfcfce4d9dde4fcfcfcfceddadddefcfcfcfcfcf5d1e2e1e8f0eadcd3fcfcfcfe"
            "cca7a7a7a7a7a7aaaaa7a7a7a7a7a7959493949e95949392989897a39898988b777777817e777777615b5b5b6e5b5b5b83e2e2e2e2e2e2d6d3e2e2e2e2e2e2ea"
            "dee2e2e3e3e3e2e2e3e3e3e2e2e3e3d6dddedddededddecbdcdfdededededfd5cad5d6d5d5d5d5d6c1cecececececececfeaf3f3f3f3f3f3f3f3f3f3f3f3f3ee"
            "fffffffffffffffffffffffffffffffffffffffeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "eac7dcdbdcdcdbe3eae9fafafafafafafafafae4f8fafaedececfafafafafafafafafaebdbf3fafafaf9fafafafafafafafafafafafafafafafafafafafafafc"
            "c697a9bcaeb497aae2c6c8e7f1f1f1f1f1f1f1d7f1f1f1e2c2c5c6c6caf1f1f1f1f1f1ccbbd5b2b6c4ded8e5e7f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f7"
            "dcc1c3c0c1c1c1cdf6f5f4e3ebebebebebebebebebebebebebebebebebebebebebebebe9f0f5f5f5f5f3f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5fa"
            "c698a7b4b7b098ace2c9cbe7f1f1f1f1f1f1f1dcf1f1f1e3c6c7c8c8d1f1f1f1f1f1f1ccbcd5b2b4c3dfd8e5e7f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f7"
            "cda2a3a3a3a2a2b6f4f3f1e2e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e4e9f1edeceeeceef0f1f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f9"
            "b5778b9da2987793e1c6c8e6f0f0f0f0f0f0f0d6f0f0f0e1c1c4c5c0caf0f0f0f0f0f0d0c2d6b7bac7e3dbe7e8f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f7"
            "d1a7a9aeaeaaa7bbf7f6f4e4ecececececececececececececececececececececececdedfecdbd9e6daefedf6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6fa"
            "a85b6e8b947c5b80e2c8c8e6f0f0f0f0f0f0f0d8f0f0f0e2c3c6c5c6cff0f0f0f0f0f0dcd2d8c3d7e9e4eeecf0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f7"
            "dec3c3c3c3c3c3cffefefbebf4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f2fcfefefefefefefefefefefefefefefefefefefefefefefefefefeff"
            "a961719aa7766182e9ebdad1dae1e3c4e5dad5d6e9e8ced0eadad8e9ffe1eccae8e3d8e0d0cefbdbddf4ffffffffffffffffffffffffffffffffffffffffffff"
            "eee0e0e0e0e0e0e7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        ),
    ),
    "walk-vtd-fault-dark": (
        "0021590ca95bf2848323c9b6e2ea231559e20645ae279470eed1876edcad40a0",
        (
            "2c3d303a3931333d42383d3d2f2a40383538352e40363b374240412b1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"
            "1d1e1e1e1e263a333236251e1e1e1e1f1e32323936301e1f1e283b353c371e1f1e1e343e3a341e1e1d1c2a3b38371c1c1d1e1e1e1e1e47363e361e1e1e1e1e1d"
            "4a6d6d6e6d6d6d6a6a6d6d6d6d6e6d90959595869695959999999888929999927878786f76787878625a5a575d5a5a5a5b3f3f3f3f3f3f42433f3f3f3f3f3f31"
            "3a3737363636373736363637373636484142414242414250444342424242434442393a393939393a433636423f3e36363f31292929292929292929292929292b"
            "1d1d1c1c1c1c1c1c1d1d1c1c1c1c1c1c1c1c1c1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d1d1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"
            "3151403f40403f382e2f202020202020202020332220202b2c2c2020202020202020202e3b26202020212020202020202020202020202020202020202020201e"
            "5f977c6b7672977c354e4c31282828282828283f28282835514f4e4e4a2828282828284857405f5b4f393e323128282828282828282828282828282828282822"
            "3e5e5f5d5e5e5e4f232425342c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2e28242424242624242424242424242424242424242424242424242420"
            "5f987f6d6b76987e344b493128282828282828492e2828344e4d4c4c442828282828284856405f5f52383e323128282828282828282828282828282828282822"
            "4464656565646456242627342e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e38362932343230302a2926262626262626262626262626262626262621"
            "4f796e6561657966354e503128282828282828492f282835524f4e5149282828282828414b3d54524732352e2d28282828282828282828282828282828282822"
            "314b4847484a4b472728293830303030303030313130303030303030303030303030303631322b28282828282828282828282828282828282828282828282827"
            "4680786c647180783b4b4c31282828282828284b2e282835504e4e4e46282828282828343a41302828282828282828282828282828282828282828282828282e"
            "364d4e4d4d4d4d46282a292a282c2d332b2c2d2a2a2c2c2724242424242424242424242424242424242424242424242424242424242424242424242424242421"
            "558178797176816f40505365626059595c4c4b574445462b1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"
            "2a3131313333312e1c1c1c1c1c1c1c1c1d1c1d201c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)
