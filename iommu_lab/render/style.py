"""Themes, the categorical palette and deterministic export shared by every renderer.

Every category a figure draws is told apart three ways at once -- a colour from a
colourblind-safe palette (Okabe-Ito, with two greys and two hues from matplotlib's
``petroff10`` where Okabe-Ito runs out), a hatch pattern, and a legend label -- so the figure
still reads in greyscale print and for readers with any common colour-vision deficiency
(STYLE.md: "colour plus pattern or label for every category").

Figures are built on the object-oriented API (``matplotlib.figure.Figure``), never on pyplot,
so nothing lands in pyplot's global registry and ipympl does not auto-display them
(matplotlib's "Embedding in a web application server" advice). Backgrounds are always opaque: a transparent figure with dark text
vanishes on a dark notebook theme.

``save`` writes by suffix (``.svg``, ``.png``, ``.pdf``); SVG is byte-identical across runs
(fixed ``svg.hashsalt``, no date metadata), PNG is written at 200 dpi.

Text is sized for where the figures are read. A JupyterLab cell is about 900 CSS px wide and
shows an inline figure at 96 px per inch, shrinking anything wider; so a figure is at most
``FIG_WIDTH`` = 9.375 in (900 px) wide and no text is under ``MIN_TEXT_PT`` = 10 pt, which is then
10 pt as displayed. The ``"slides"`` and ``"slides-dark"`` styles draw the same picture
1.3 times larger (12.2 in wide, text at least 13 pt) for a 16:9 review deck, where it fills
the slide's width at its own size. Inline PNGs are rendered at twice the display resolution
and shown at their CSS size, so they stay crisp on HiDPI screens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iommu_lab.core.ranges import fmt_size

# matplotlib is imported where a figure is made, not here: the text views (the CLI's default
# output) import this module for its themes and categories and never draw.
if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Theme",
    "THEMES",
    "Category",
    "CATEGORIES",
    "theme",
    "category",
    "register_category",
    "reservation_category",
    "mapped_category",
    "pgsize_category",
    "hatch_color",
    "new_figure",
    "root_figure",
    "save",
    "rc_context",
    "PNG_DPI",
    "DISPLAY_DPI",
    "CELL_WIDTH_PX",
    "FIG_WIDTH",
    "MIN_TEXT_PT",
    "SLIDE_WIDTH_IN",
    "SAVE_FORMATS",
    "displayed_pt",
    "png_for_display",
    "wrap",
]

PNG_DPI = 200
#: Width of a JupyterLab output cell in CSS px, and CSS px per inch of an inline figure.
CELL_WIDTH_PX = 900
DISPLAY_DPI = 96
#: Widest default figure (inches): exactly a 900 px cell at 96 px/in without shrinking.
FIG_WIDTH = 9.375
#: Smallest text at its displayed size, in points, in a notebook cell and on a slide.
MIN_TEXT_PT = 10.0
#: Width of the body of a 16:9 slide (13.33 in) inside its margins.
SLIDE_WIDTH_IN = 12.2
SAVE_FORMATS = (".svg", ".png", ".pdf")
SVG_HASHSALT = "iommu_lab"

# Okabe & Ito (2008), "Color Universal Design": distinguishable under protan, deutan and tritan.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}
# Two more hues from matplotlib's petroff10 cycle (Petroff 2021, also chosen for CVD safety).
PETROFF = {"brown": "#a96b59", "violet": "#832db6"}


@dataclass(frozen=True)
class Theme:
    """Colours and fonts of one style ("light" or "dark"); every background is opaque."""

    name: str
    background: str
    axes_background: str
    foreground: str
    muted: str
    grid: str
    break_fill: str
    free: str
    outside: str
    font_family: str = "DejaVu Sans"
    mono_family: str = "DejaVu Sans Mono"
    font_size: float = 11.0
    small_size: float = 10.0
    title_size: float = 12.5
    #: Figure size and every font are multiplied by this (1.3 for slides).
    scale: float = 1.0


THEMES: dict[str, Theme] = {
    "light": Theme(
        name="light",
        background="#ffffff",
        axes_background="#ffffff",
        foreground="#1a1a1a",
        muted="#5f5f5f",
        grid="#c8c8c8",
        break_fill="#f1f1f1",
        free="#e4e4e4",
        outside="#b8b8b8",
    ),
    "dark": Theme(
        name="dark",
        background="#1b1b1f",
        axes_background="#1b1b1f",
        foreground="#e8e8e8",
        muted="#a8a8a8",
        grid="#4a4a50",
        break_fill="#26262b",
        free="#3b3b42",
        outside="#5c5c64",
    ),
}
_SLIDE_SCALE = 1.3
for _base in ("light", "dark"):
    _b = THEMES[_base]
    _name = "slides" if _base == "light" else "slides-dark"
    THEMES[_name] = Theme(**{**_b.__dict__, "name": _name, "scale": _SLIDE_SCALE,
                             "font_size": _b.font_size * _SLIDE_SCALE, "small_size": _b.small_size * _SLIDE_SCALE,
                             "title_size": _b.title_size * _SLIDE_SCALE})


def wrap(text: str, th: Theme, *, size: float | None = None, width_in: float | None = None) -> str:
    """``text`` broken into lines that fit ``width_in`` (default: the figure width) at ``size`` pt."""
    import textwrap

    size = size or th.title_size
    width_in = (width_in or FIG_WIDTH) * th.scale
    chars = max(20, int(width_in * 72 / (0.56 * size)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def displayed_pt(font_pt: float, fig_width_in: float, where: str = "notebook") -> float:
    """The size in points at which text of ``font_pt`` reads once its figure is placed.

    ``"notebook"``: the figure is shown at 96 CSS px per inch and shrunk to fit a 900 px cell,
    so text shrinks by ``900 / (width * 96)`` when the figure is wider than the cell.
    ``"slide"``: the figure is scaled to the width of a 16:9 slide's body (12.2 in).
    """
    if where == "notebook":
        return font_pt * min(1.0, CELL_WIDTH_PX / (fig_width_in * DISPLAY_DPI))
    if where == "slide":
        return font_pt * SLIDE_WIDTH_IN / fig_width_in
    raise ValueError(f"unknown place {where!r}; choose 'notebook' or 'slide'")


def theme(style: str | Theme) -> Theme:
    """The ``Theme`` for ``style`` ("light" or "dark"); a clear ValueError otherwise."""
    if isinstance(style, Theme):
        return style
    try:
        return THEMES[style]
    except (KeyError, TypeError):
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(map(repr, THEMES))}") from None


@dataclass(frozen=True)
class Category:
    """One thing a figure can draw: its legend label, colour and hatch.

    ``color`` may name a theme slot (``"theme:free"``, ``"theme:outside"``) for the neutral
    categories whose grey must differ between light and dark backgrounds. ``outline`` marks
    something present but not enforced (a firmware region the kernel relaxes): it is drawn as
    a light tint of ``color`` with a dashed edge and hatch in ``color`` itself, so it never
    reads as a solid, enforced block.
    """

    key: str
    label: str
    color: str
    hatch: str
    lane: str
    outline: bool = False

    def face(self, th: Theme) -> str:
        if self.color.startswith("theme:"):
            return getattr(th, self.color.split(":", 1)[1])
        if self.outline:
            return tint(self.color, th.axes_background, OUTLINE_TINT)
        return self.color

    def edge(self, th: Theme, default: str) -> str:
        """The edge colour: ``color`` for an outline category, else ``default``."""
        return self.color if self.outline else default

    def hatch_color(self, th: Theme) -> str:
        """Hatch lines: ``color`` on an outline category's tint, else contrast with the fill."""
        return self.color if self.outline else hatch_color(self.face(th))


#: How much of an outline category's colour its fill keeps (the rest is the background).
OUTLINE_TINT = 0.22


def tint(color: str, background: str, amount: float) -> str:
    """``amount`` of ``color`` over ``background``, as an opaque hex colour."""
    from matplotlib.colors import to_hex, to_rgb

    c, b = to_rgb(color), to_rgb(background)
    return to_hex(tuple(amount * x + (1 - amount) * y for x, y in zip(c, b)))


# Order here is legend order.
CATEGORIES: dict[str, Category] = {}


def register_category(key: str, label: str, color: str, hatch: str, lane: str, outline: bool = False) -> Category:
    """Add (or return the existing) category; renderers added later use this for their own kinds."""
    if key in CATEGORIES:
        return CATEGORIES[key]
    cat = Category(key, label, color, hatch, lane, outline)
    CATEGORIES[key] = cat
    return cat


for _args in (
    ("range", "IOVA range", OKABE_ITO["sky"], "", "ranges"),
    ("window", "permitted window", OKABE_ITO["sky"], "", "permitted"),
    ("allowed", "allowed (user)", OKABE_ITO["green"], "//", "allowed"),
    ("resv-direct", "reserved: direct", OKABE_ITO["purple"], "++", "reserved"),
    # Firmware RMRs Linux relaxes (iommu_resv_region's IOMMU_RESV_DIRECT_RELAXABLE): iommufd
    # does not reserve them at attach (iopt_table_enforce_dev_resv_regions), so they are drawn
    # as an outline, not a block.
    ("resv-direct-relaxable", "direct-relaxable (not enforced)", PETROFF["brown"], "\\\\", "reserved", True),
    ("resv-reserved", "reserved region", OKABE_ITO["vermillion"], "xx", "reserved"),
    ("resv-msi", "reserved: msi", OKABE_ITO["orange"], "oo", "reserved"),
    ("resv-sw-msi", "reserved: sw-msi", OKABE_ITO["yellow"], "..", "reserved"),
    ("resv-user", "reserved by user", PETROFF["violet"], "--", "reserved"),
    ("resv-aperture", "outside aperture / windows", "theme:outside", "//", "reserved"),
    ("free", "free (allocatable)", "theme:free", "", "mapped"),
    ("mapped", "mapped area (page size not known)", "theme:muted", "xx", "mapped"),
):
    register_category(*_args)

# One look per page size across every figure (layout areas, page-table leaves, comparisons).
_PGSIZE_LOOKS = (
    ("#0072B2", ""),
    ("#56B4E9", "//"),
    ("#009E73", "\\\\"),
    ("#F0E442", ".."),
    ("#CC79A7", "++"),
    ("#a96b59", "--"),
    ("#004b75", "||"),
    ("#E69F00", "oo"),
)
_PGSIZE_SLOT = {12: 0, 21: 1, 30: 2, 16: 3, 14: 4, 25: 5, 29: 6, 24: 7}


def pgsize_category(size: int) -> str:
    """Category key for pages (leaves, mapped areas) of ``size`` bytes: one look per page size
    in every figure, registered on first use."""

    key = f"leaf-{size:#x}"
    if key not in CATEGORIES:
        lg2 = int(size).bit_length() - 1
        if lg2 in _PGSIZE_SLOT:
            color, hatch = _PGSIZE_LOOKS[_PGSIZE_SLOT[lg2]]
        else:  # uncommon sizes (AMD v1 NL=7): violet, told apart by hatch
            color, hatch = "#832db6", ("", "//", "\\\\", "..", "++", "||", "--", "oo")[lg2 % 8]
        register_category(key, f"{fmt_size(size)} pages", color, hatch, "leaves")
    return key


def mapped_category(pgsize: int) -> str:
    """The category key for areas mapped with ``pgsize``-byte pages (see ``pgsize_category``)."""
    return pgsize_category(pgsize)


def reservation_category(kind: str | None, rtype: Any = None) -> str:
    """Category key of a reservation: by owner kind first (aperture, user), then by Linux type."""
    if kind == "aperture":
        return "resv-aperture"
    if kind == "user":
        return "resv-user"
    value = getattr(rtype, "value", rtype)
    if value is None:
        return "resv-reserved"
    key = f"resv-{value}"
    if key not in CATEGORIES:
        raise ValueError(f"no category for reserved-region type {value!r}")
    return key


def category(key: str) -> Category:
    try:
        return CATEGORIES[key]
    except KeyError:
        raise ValueError(f"unknown category {key!r}; known: {', '.join(CATEGORIES)}") from None


def _luminance(color: str) -> float:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def hatch_color(face: str) -> str:
    """Hatch lines that contrast with the fill: dark on light fills, light on dark fills."""
    return "#1a1a1a" if _luminance(face) > 0.45 else "#f2f2f2"


def rc_context(th: Theme):
    """Local rcParams for building and saving a figure (never mutates the global rcParams)."""
    import matplotlib

    return matplotlib.rc_context(
        {
            "font.family": th.font_family,
            "font.size": th.font_size,
            "legend.fontsize": th.small_size,
            "legend.title_fontsize": th.small_size,
            "xtick.labelsize": th.small_size,
            "ytick.labelsize": th.small_size,
            "axes.labelsize": th.small_size,
            "axes.titlesize": th.font_size,
            "text.color": th.foreground,
            "axes.labelcolor": th.foreground,
            "axes.edgecolor": th.muted,
            "xtick.color": th.foreground,
            "ytick.color": th.foreground,
            "hatch.linewidth": 0.8,
            "legend.facecolor": th.background,
            "legend.edgecolor": th.grid,
            "legend.labelcolor": th.foreground,
            "svg.hashsalt": SVG_HASHSALT,
            "svg.fonttype": "path",
        }
    )


_LAB_FIGURE: type | None = None


def _lab_figure() -> type:
    """``LabFigure``, defined on first use so that importing this module needs no matplotlib."""
    global _LAB_FIGURE
    if _LAB_FIGURE is None:
        from matplotlib.figure import Figure

        class LabFigure(Figure):
            """A Figure that shows itself as a PNG in any notebook front end.

            A kernel only registers matplotlib's inline formatter once pyplot is imported; our
            renderers never import pyplot, so without this a returned figure would display as the
            text ``<Figure size ...>``. ``_repr_png_`` is plain matplotlib (no IPython import), and
            when the inline backend *is* active IPython's own formatter takes precedence, so
            nothing shows twice.
            """

            def _repr_png_(self):
                return png_for_display(self)

        LabFigure.__qualname__ = "LabFigure"  # pickles as style.LabFigure (module __getattr__)
        _LAB_FIGURE = LabFigure
    return _LAB_FIGURE


def __getattr__(name: str) -> Any:
    if name == "LabFigure":
        return _lab_figure()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def png_for_display(fig: Figure) -> tuple[bytes, dict[str, int]]:
    """PNG bytes at twice ``DISPLAY_DPI`` and the CSS size to show them at (HiDPI-crisp)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=2 * DISPLAY_DPI, facecolor=fig.get_facecolor(), metadata={"Software": None})
    w, h = fig.get_size_inches()
    return buf.getvalue(), {"width": round(w * DISPLAY_DPI), "height": round(h * DISPLAY_DPI)}


def new_figure(ax=None, *, style: str | Theme = "light", figsize: tuple[float, float] = (FIG_WIDTH, 3.0)):
    """A themed ``(fig, ax, theme)``: a new OO-API Figure, or the figure of the given Axes.

    With ``ax`` the caller owns the figure: only the Axes is themed (opaque facecolour, text
    colours); the figure's own background is left as the caller set it.
    """
    th = theme(style)
    if ax is None:
        fig = _lab_figure()(figsize=figsize, facecolor=th.background, layout="constrained")
        fig.patch.set_alpha(1.0)
        ax = fig.add_subplot()
    else:
        fig = root_figure(ax)
    ax.set_facecolor(th.axes_background)
    ax.patch.set_alpha(1.0)
    ax.tick_params(colors=th.foreground, labelcolor=th.foreground)
    for spine in ax.spines.values():
        spine.set_color(th.muted)
    return fig, ax, th


def root_figure(ax) -> Figure:
    """The top-level Figure of an Axes (not a SubFigure), the one ``savefig`` writes."""
    from matplotlib.figure import Figure

    fig = ax.figure
    while getattr(fig, "_parent", None) is not None and not isinstance(fig, Figure):
        fig = fig._parent
    return fig


def _savefig_kwargs(suffix: str) -> dict[str, Any]:
    if suffix == ".svg":
        return {"format": "svg", "metadata": {"Date": None}}
    if suffix == ".png":
        return {"format": "png", "dpi": PNG_DPI, "metadata": {"Software": None}}
    if suffix == ".pdf":
        return {"format": "pdf", "metadata": {"CreationDate": None, "ModDate": None, "Producer": None}}
    raise ValueError(
        f"cannot save a figure as {suffix or 'a file without a suffix'!r}; "
        f"name the file with one of {', '.join(SAVE_FORMATS)} (e.g. 'layout.svg')"
    )


def save(fig: Figure, filename: str | os.PathLike, *, style: str | Theme | None = None) -> Path:
    """Write ``fig`` to ``filename``, choosing SVG/PNG/PDF by suffix, deterministically.

    SVG: fixed ``svg.hashsalt`` and no ``Date`` so two runs give identical bytes. PNG: 200 dpi.
    The figure's own (opaque) facecolour is kept. Returns the path written.
    """
    path = Path(filename)
    kwargs = _savefig_kwargs(path.suffix.lower())
    th = theme(style) if style is not None else THEMES["light"]
    _reset_layout(fig)
    with rc_context(th):
        fig.savefig(path, facecolor=fig.get_facecolor(), **kwargs)
    return path


def _reset_layout(fig: Figure) -> None:
    """Put every grid Axes back at its gridspec place before a constrained-layout save.

    Constrained layout solves from the Axes' current positions, so a figure already drawn at
    another resolution (the notebook's inline PNG) comes out a few millionths of a point
    elsewhere, and an SVG's clip-path ids hash those coordinates: starting every save from the
    same place keeps the bytes the same however often the figure was shown or saved.
    """
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        return
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is not None:
            ax._set_position(spec.get_position(spec.get_gridspec().figure))
