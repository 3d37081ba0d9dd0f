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
    assert d.result_text == "FAULT at SL-PTE: not present"
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
    assert "!! FAULT at SL-PTE: not present" in out
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
    "walk-vtd-4k-light": ("8032d23b4be32a1c42b55f7e8863f36c7d7bb5a3d2bffd51b1ee9f21597e1019", "eedae9e2e6d6e6e2e0e7d4e0dce2d9e2e3f3d0e0e2e0ddd9f0ebdedaded9f0cfd2d3dcd1f5fffffffffffffffffffffffffffffffffffffffffffffffffffffff6d5dfd4e8dfdbe2c8d0dee8e3cddfcbc7b8cce4cac5c8cad8d9c8cbcfccd0b4ccc3d6e2e9e2f0d4dfc5d3f6ffffffffffffffffffffffffffffffffffffffffc9b1b1b1b1bcb1b1b1b1a09faaaba19da1a4b1afa4968887a68a887670848b7070dfe4d0cfd7d7e3e8ffffffffffffffffffffffffffffffffffffffffffffffc9b6cacacad2cacacacab2b1c1c8bebca7b3c6c5c1b29dafbcafae908da4aa9f9fcee5eeeceeede9e0fffffffffffffffffffffffffffffffffffffffffffffffbfffffffffffffffffffffffffffffffffffffffffbf2fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff9e2e6f9fffff2dee3f8ffebe0d7eeeae6edffffffede1e3e4defeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffc4ababb2af95dedfccd2d5c5bbcad4d7c8e7c8d7d7c5a2b3d1ceaad1d5c9dccbd5e0cfd2d8ded5d9d2dcd9dfd5ece6eee9d7d8ffffffffffffffffffffffffffd9cbcdcbcccbf3f5e4ede6e6eaedededede1edede4d9dce9dcd9f1dbded5e1e1e0d8e7f5f5f5f5f5f8ffffffffffffffffffffffffffffffffffffffffffffffb8afb4a3ac9cdbdecad1cdc4b6cad0d4c3dac3d4cbb28ea8bab8aabfc3b0cabcc4cac0d1d6ddd3d7d0dcd6dfd2ece6eee9d7d8ffffffffffffffffffffffffffceb4b4b4b4b4f3f4e5ecececececececececececece7eaeeeeeaf2ebeeecefedefedecf2f4f4f4eff7fffffcfffffffffffcffffffffffffffffffffffffffffa48ea9a38789dbdecbd1cdbfb8c9d3d6c8dac8d6ceb18aa9b0b2a6b6bda9c5b4bfc2bfd4d7ddd5ded1dcd9e2d5ece6eee9d9d8ffffffffffffffffffffffffffbfa5a8a8a7a1f3f4e4ececeaeaecececececececece0d2dfebe4e1dbd6dddadee7dbdde9e0e2d8d8dce7e5f1e3f6efe5e4f7ffffffffffffffffffffffffffffa08ca9a19185dddfccd2cec0b9cbd2d5c5dbc5d5cdbfa9c7b8b6b9c6bfcad1d6ebe6eaeeecedeaece7f9eefaf7fbf6f7f5fcffffffffffffffffffffffffffffcfbbc2c2c2b7fbffebf7f7f7f7f7f7f7f7f7f7f7f7f4fffffffefffffffffffffffffffffffffffffffffffefffffffffffffffffffffffffffffffffffffffe96829ba39e61e3deeae0ccdfdfd8e7d1bbf0d3dacbd7eaf7ced2cdd3eae0cfd9ffffe3f3cfd0ebdee0dfd3e3c4d3faedd8fecbe3cad6ebd2e3e6e2ecebe3efdbeae0e0e0e0e0fdffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    "walk-vtd-fault-dark": ("b43e10017db51530b483ba0d4c788a60aee36f665e3090906fcbecf396522b97", "2b3c2f3632403236313e3947393a38422a2b38403c353f2e3d2d2f4239392e4149423646311c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c4339333f37343c3b382f1c32313930373d392e3a5634443c3f3f3b463838394c3d423c392e3f39353e3d37432b1c1c414648393a382b1c1c1c1c1c1c1c3a646465656464625964646464656887858777768785878a89897b7a788989796d6d655d696d6d65515151594f5151533c3c3c3c454b393c3c3c391c1c1c1c1c3d604d4d4d4d4d484b4d4d4d4d4d4f7368645e5b6362647576665b58606665635e534d494d53535c5b544b484e52494e493333332f2f323333333f1c1c1c1c1c1f1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c24231c1c1c1c1c1c1c1c22222022221d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c213333211c1c1c1c1c2a39341c1c1c1f2c3a2535283532281c1c1c1c1c1c1c3a3136362c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c457d766f6b6a75806538334b3e3d3e4c5736274043434c334c433c404c3f3d666d4438333b4545453e4745363f434338364d444743463a44343940374c231c1c396456555555555f5023242433342d2b2e2d2b2b2b2b2b362b2b352c2b2f324238283b302f3d38403039383a2924242424242424242424242424231c1c1c1c1c4b99836b70837698753b344d41484050603e4c4244444d3f4d4447424d444d797948483b4157565a5256554a44444439374e464944493b45353a41374c241c1c385e5e5e5f5f5f5f4c232424332c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c3130262c292a2c282d282b292e2b242424242a2424272424242424251c1c1c1c1c41776b685f6872776039344c3f47484c583a4b4144444d3f4d4447414d44487f7d494f40475e5862505d5a4f414344393748454841473b44353a3e374c241c1c2a52524d4d4d4f5248272828372f2f2f322f322f2f2f2f2f2f2f2f2f2f2f2f3832343634342a28282828282828282828282828282828282828282a1c1c1c1c1c317c6f6c6562757b71443851454c48545d484d464849514351494b4951494c5f5e3641463e383b2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c351c1c1c1c1c314b4b494a4a4b4b3f313a373140322e413f313a3b423541331c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c478081646d6e6d8168394449383c51474f434f425a4352443d463b373e3f364142363f301c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c25323232323232322e1d1c231c1c1c1c1c1c1c1c1c1c1c1c1c1d1d1d1c1e1d1d1d1d1d231c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)
