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
    "walk-vtd-4k-light": ("e691707a78d7479b7195263e78cef96010066246a07b791b363ff7a559fd28c7", "eedae9e2e6d6e6e2e0e7d4e0dce2d9e2e3f3d0e0e2e0ddd9f0ebdedaded9f0cfd2d3dcd1f5ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffebc9e6dde2e0e0d5dee6ffffe4e4dde6e5d6dbe9cccfe4d7d4d6ced9d0e4e1e4d2d3d7dedfdbf3deded6d9d9dfdac7d3c9dee2e0e6ebe7dad0d1c2caf2deb1b1b1b1b1b1b9b5b1b1b1b1b1b1a79fa19fa7af9fa19f9fa3a3a4bca4a4a496878788959a888888767070709d72707092e3e3e3e2cfd2cae7e3e3e3ddf7ffdbb4cacacacacaccd0cacacacacacabda9c0bec4c4bec0bea9afc1c1cbc1c1c1b39dafaeb4b6aeaeae918d9f9faf9f9f9fb1cfebebeceeeceeecebebebcdf9fffcfefffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffcf2fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff9e5e5f9fffffffffffce1e6edfffffff6e6e6f4e3f1e3e4faffffffffffffffecdbe9dce6ffffffffffffffffffffffffffffffffffffffffffffffffffffffdeb0b6b7bcb4b7b5b3d1d2dac8d6d9d7c2d7e4f1d2d8c8d7d9d7c8e8cad7d7dbaab0c8e5ebd3d8cdd0d4d3cde8cdd2cfe2d6dbf2f2f2f2f2f2f2f2f2f2f0fdffe7ced0d0cecbcdcdcce0f5f5e6ebe3edebebebededededebe3edede1edede4e9ddd6f0dfdeeddfd9dadfe4d9dfe7f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f4fdffd4acc2bfa8b6c5bea8cccfd9c3d1cfd4bddbe1f0cfd5c3d1ccd4c3dac7d4cbd3999ec5d5dbcec8b5bcc1c6b6d6c1d1cde1d4daf0f0f0f0f0f0f0f0f0f0effdffe3b4b4b4b4b5b5b5b5dbf4f4e6ececececececececececececececececececece7e8f0edecf0edeeecefeeeeefecf2f4f4f4f4f4f4f4f4f4f4f4f4f4f4f3fdffcb8eaab3abafb8b37ac3d1dac8d4cdd6c0d5e1f0d1d8c7d4ced6c7dbc9d6cdd09a92c5cdd3cac1b0b4babeb0d1bdd4cee1d5daf1f1f1f1f1f1f1f1f1f1effdffdba5b2b2b2b2b1b1a0d7f4f4e5ecececeaeceaecececececececececececececd7d8deebe4dfd4ddddd5e3e1e1d8eedde6f0f4f4f4f4f4f4f4f4f4f4f4f3fdffca87a3acb1a8b1ac73c3d0dac5d3cdd6c0d9e4f1d0d7c5d3cdd5c5dbc5d5cdd7b0afe9d2d5dcc8becfccdae9e9e8f0eae9eff2f2f2f2f2f2f2f2f2f2f2f0fdffe3b7b7c0c2c2bdb7b7e3ffffedf7f7f7f7f7f7f7f7f7f7f7f7f7f6f7f6f6f7f7f4fffffffffffffffffffffffffffeffffffffffffffffffffffffffffffffffc161619b9a9e876161c0d4fad2decfdfe2f3c3cadee2d3ddccf8e4e1c6dbc9f7d2dbd3fbfff0e6e6c1f8d0edd6d4e7d9c6f2f0dfd8eafffffffffffffffffffff3e0e0e0e0e0e0e0e0f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
    "walk-vtd-fault-dark": ("d9a86fa6b99e95aa99ffacd9f4340bfbdde545786667cdf8d856acc5782c26e6", "2b3c2f3632403236313e3947393a38422a2b38403c353f2e3d2d2f4239392e4149423646311c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2b4a323c3638374140321c1c2f3337303841372e3b4b393947483b443f402b36394f3b453b372b343440443d3736421c1c1c43444a393838321c1c1c1c3a6464656564645b60646464646565678587857a778587858a89897e7f6c88898a6e6d6d655f696d6d64515150575c4a51514c3c3c3c3c454c383c3c3c3c3c383c604d4d4d4d4d4c464d4d4d4d4d4d50766662605a6264627377666158586566665c5e534c494d535355624f504a4a504f484f413333332f2f323333333344351f1d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c25221c1c1c1c1c1c1c1c1e24222022211c1c1c1c1c1c1c1c1c1c1c1c1c1c1c213332211c1c1c1c1c1c3833311c1c1c222f3a2436283331281c1c1c1c1c1c1c253834333a241c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c4267636461636363664a423e48473847484e33273d433f4b314b3f3c3e4b3d3d4a73463f323b3a46444142483b413e403c3e3b302727272727272727272727243851524f51535254533c24242d2c362b2b2e2d2b2b2b2b2b362b2b342d2b2e333343302c3c2b373b3b3d303939392424242424242424242424242424242424224b7d5d60746d59617d51433f4948424649584348404542503c5042484050434c53834f4544404657575555584c533f413d403d31282828282828282828282825385e5e5e5f5f5f5f5f3924242d2d2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2d352b272c272d2b292b282b292e292424242424242424242424242424242422416b5d565d5c52567247433f49484948494e42453e44404c3c4c4046404c414a528b51484b434d5d5b5b545e51593b413d3f3c312828282828282828282828252a50474747474747513f282831312f2f2f322f322f2f2f2f2f2f2f2f2f2f2f2f323931353534322828282828282828282828282828282828282828282828282c316f675f5b665a60765f47434d4d494c4d524e48444a46544154464c4854474d4e66393b424240333b2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c39314b4b4a4a4a4a4b4b313730362e302f3137323b2f33342b3732383636351c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c4780816a6c6c6b81804758563b4e4858504c4f544f4f524b544f4e514f53383e522949401c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c253232323232323232251d1d231c1c1c1c1c1c1c1c1c1c1c1c1d1d1d1c1d1d1d1d1d1e221c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)
