"""Every gallery figure is legible where it is read: in a JupyterLab cell about 900 px wide and on
a 16:9 slide, no text is under 10 pt at its displayed size (iommu_lab.render.style)."""

from __future__ import annotations

import pytest
from matplotlib.text import Text

from iommu_lab import gallery
from iommu_lab.render import style

NAMES = list(gallery.ENTRIES)


def _texts(fig):
    fig.canvas.draw()  # lay out first: constrained layout and legends place their texts on draw
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def test_displayed_size_follows_the_cell_width():
    # A 12 in figure is shown at 900 px, not 1152: its 9 pt text reads as about 7 pt.
    assert style.displayed_pt(9.0, 12.0) == pytest.approx(9.0 * 900 / 1152)
    # A figure no wider than the cell is shown at its own size.
    assert style.displayed_pt(10.0, 9.0) == 10.0
    # On a slide the figure fills the slide's body (12.2 in).
    assert style.displayed_pt(10.0, 12.2, "slide") == pytest.approx(10.0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("st", ["light", "dark"])
def test_no_text_under_10_pt_in_a_900_px_cell(name, st):
    fig = gallery.ENTRIES[name](st)
    width = fig.get_figwidth()
    small = [(t.get_text()[:40], round(style.displayed_pt(t.get_fontsize(), width), 1)) for t in _texts(fig)
             if style.displayed_pt(t.get_fontsize(), width) < style.MIN_TEXT_PT - 1e-6]
    assert not small, f"{name} ({st}, {width:.2f} in wide): text under 10 pt as displayed: {small[:5]}"
    assert width * style.DISPLAY_DPI <= style.CELL_WIDTH_PX + 0.5


@pytest.mark.parametrize("name", NAMES[::3])
def test_slides_style_is_the_same_picture_larger_with_text_of_13_pt_on_a_slide(name):
    fig = gallery.ENTRIES[name]("slides")
    width = fig.get_figwidth()
    assert width == pytest.approx(style.FIG_WIDTH * 1.3)
    sizes = [style.displayed_pt(t.get_fontsize(), width, "slide") for t in _texts(fig)]
    assert min(sizes) >= 12.9, f"{name}: smallest text on a slide is {min(sizes):.1f} pt"


def test_default_figures_read_at_13_pt_on_a_slide_too():
    fig = gallery.ENTRIES["walk-vtd-4k"]("light")
    sizes = [style.displayed_pt(t.get_fontsize(), fig.get_figwidth(), "slide") for t in _texts(fig)]
    assert min(sizes) >= 12.9


def test_inline_png_is_rendered_at_twice_its_css_size_for_hidpi_screens():
    fig = gallery.ENTRIES["layout-seed-power"]("light")
    data, meta = fig._repr_png_()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import struct

    w, _ = struct.unpack(">II", data[16:24])
    assert meta["width"] == round(fig.get_figwidth() * 96) <= 900
    assert w == 2 * meta["width"]
