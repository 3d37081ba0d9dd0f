"""Themes, palette and deterministic export shared by every renderer (iommu_lab.render.style)."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys

import matplotlib
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from iommu_lab.gallery import SEED_EXAMPLES
from iommu_lab.render import style
from iommu_lab.render.layout import layout


# -- themes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["light", "dark"])
def test_new_figure_has_opaque_backgrounds_in_both_styles(name):
    fig, ax, th = style.new_figure(style=name)
    assert isinstance(fig, Figure)
    assert to_rgba(fig.get_facecolor())[3] == 1.0
    assert to_rgba(ax.get_facecolor())[3] == 1.0
    assert to_rgba(fig.get_facecolor())[:3] == to_rgba(th.background)[:3]


def test_dark_theme_text_contrasts_with_its_background():
    for th in style.THEMES.values():
        bg = style._luminance(th.background)
        fg = style._luminance(th.foreground)
        assert abs(bg - fg) > 0.7, th.name


def test_unknown_style_is_a_clear_value_error():
    with pytest.raises(ValueError, match="unknown style 'sepia'.*'light'.*'dark'"):
        style.theme("sepia")


def test_new_figure_with_ax_draws_there_and_leaves_the_callers_figure_background():
    fig = Figure(facecolor="#abcdef")
    ax = fig.add_subplot()
    got_fig, got_ax, _ = style.new_figure(ax, style="dark")
    assert got_fig is fig and got_ax is ax
    assert to_rgba(fig.get_facecolor()) == to_rgba("#abcdef")
    assert to_rgba(ax.get_facecolor()) == to_rgba(style.THEMES["dark"].axes_background)


# -- palette ---------------------------------------------------------------------------------
BASE_CATEGORIES = [
    "range", "window", "allowed", "resv-direct", "resv-direct-relaxable", "resv-reserved",
    "resv-msi", "resv-sw-msi", "resv-user", "resv-aperture", "free", "mapped",
]


def test_every_layout_category_has_a_label_a_colour_and_a_hatch_or_is_solid():
    for key in BASE_CATEGORIES:
        cat = style.category(key)
        assert cat.label
        for th in style.THEMES.values():
            assert to_rgba(cat.face(th))[3] == 1.0


def test_categories_shown_together_differ_in_colour_and_pattern_not_colour_alone():
    # "range" and "window" are the same thing in two contexts and never appear together.
    keys = [k for k in BASE_CATEGORIES if k != "range"]
    pairs = [(style.category(k).face(style.THEMES["light"]).lower(), style.category(k).hatch) for k in keys]
    assert len(set(pairs)) == len(pairs)
    labels = [style.category(k).label for k in keys]
    assert len(set(labels)) == len(labels)
    # Reservation types additionally differ by hatch from each other (greyscale print).
    hatches = [style.category(k).hatch for k in keys if k.startswith("resv-")]
    assert len(set(hatches)) == len(hatches)


def test_palette_is_okabe_ito_plus_petroff_plus_theme_greys():
    allowed = {c.lower() for c in (*style.OKABE_ITO.values(), *style.PETROFF.values())}
    for key in BASE_CATEGORIES:
        c = style.category(key).color
        assert c.startswith("theme:") or c.lower() in allowed, key


def test_reservation_category_by_owner_kind_then_linux_type():
    from iommu_lab.hardware.device import ResvType

    assert style.reservation_category("aperture", None) == "resv-aperture"
    assert style.reservation_category("user", None) == "resv-user"
    for t in ResvType:
        assert style.reservation_category("region", t) == f"resv-{t.value}"
    assert style.reservation_category("region", None) == "resv-reserved"


def test_mapped_category_by_page_size_is_a_hook_with_its_own_label():
    key = style.mapped_category(2 << 20)
    assert style.category(key).label == "2 MiB pages"
    assert style.mapped_category(2 << 20) == key
    # one look per page size in every figure: mapped areas and page-table leaves agree
    assert key == style.pgsize_category(2 << 20) != style.pgsize_category(4096)
    assert style.category(key).hatch != style.category(style.pgsize_category(4096)).hatch


def test_hatch_colour_contrasts_with_the_fill():
    assert style.hatch_color("#ffffff") == "#1a1a1a"
    assert style.hatch_color("#000000") == "#f2f2f2"


# -- export ----------------------------------------------------------------------------------
def _fig(st="light"):
    return layout(SEED_EXAMPLES[1], style=st)


def test_svg_is_byte_identical_across_two_builds(tmp_path):
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    style.save(_fig(), a)
    style.save(_fig(), b)
    assert a.read_bytes() == b.read_bytes()
    assert b"<dc:date>" not in a.read_bytes()


@pytest.mark.parametrize(
    "entry,theme",
    [("layout-seed-power", "light"), ("walk-vtd-fault", "light"), ("nested-4x4", "dark"),
     ("pagetable-mixed", "dark"), ("compare-8g-guest", "dark"),
     ("replay-nic-nvme-lazy", "dark"), ("whatif-working-set", "light")],
)
def test_svg_is_byte_identical_across_processes(tmp_path, entry, theme):
    """Every renderer's SVG is the same bytes from two processes with different hash seeds."""
    code = (
        "import sys; from iommu_lab.gallery import ENTRIES; import iommu_lab.render.style as s;"
        f"s.save(ENTRIES[{entry!r}]({theme!r}), sys.argv[1])"
    )
    outs = []
    for i in range(2):
        p = tmp_path / f"p{i}.svg"
        subprocess.run([sys.executable, "-c", code, str(p)], check=True, env={**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": str(i + 1)})
        outs.append(p.read_bytes())
    assert outs[0] == outs[1]


def test_png_is_written_at_200_dpi(tmp_path):
    fig = _fig()
    p = style.save(fig, tmp_path / "x.png")
    head = p.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", head[16:24])
    assert w == round(fig.get_figwidth() * style.PNG_DPI)
    assert h == round(fig.get_figheight() * style.PNG_DPI)


def test_pdf_is_written_and_deterministic(tmp_path):
    a = style.save(_fig(), tmp_path / "a.pdf").read_bytes()
    b = style.save(_fig(), tmp_path / "b.pdf").read_bytes()
    assert a.startswith(b"%PDF")
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()


def test_suffix_is_case_insensitive(tmp_path):
    p = style.save(_fig(), tmp_path / "UPPER.SVG")
    assert p.read_bytes().lstrip().startswith(b"<?xml")


@pytest.mark.parametrize("name", ["layout.jpg", "layout", "layout.svgz"])
def test_unknown_suffix_is_a_clear_value_error(tmp_path, name):
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.pdf"):
        style.save(_fig(), tmp_path / name)
    assert not (tmp_path / name).exists()


def test_save_does_not_change_global_rcparams(tmp_path):
    before = dict(matplotlib.rcParams)
    style.save(_fig("dark"), tmp_path / "x.svg")
    assert dict(matplotlib.rcParams) == before


def test_renderers_never_import_pyplot():
    code = (
        "import sys, io; from iommu_lab import render; from iommu_lab.gallery import SEED_EXAMPLES;"
        "render.layout(SEED_EXAMPLES[1]).savefig(io.BytesIO(), format='png');"
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.stdout.strip() == "False"


def test_returned_figures_display_as_png_without_pyplot_or_ipython():
    from iommu_lab import render
    from iommu_lab.core.ranges import RangeSet

    fig = render.layout(RangeSet.bits(45))
    png, meta = fig._repr_png_()
    assert meta["width"] == round(fig.get_figwidth() * 96)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
