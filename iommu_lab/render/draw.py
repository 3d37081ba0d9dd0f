"""``draw(obj, output=...)`` and the one figure sequence every renderer goes through.

As Qiskit's ``circuit.draw(output="text"|"mpl")``: ``output="mpl"`` returns a matplotlib Figure
(keywords ``ax=``, ``filename=``, ``style=`` and the renderer's own), ``"text"`` a string for
terminals and the CLI, ``"html"`` the notebook view. Views are found by the model's type in
:mod:`iommu_lab.core.display`, where each renderer module registers itself once.

A figure renderer is three things (the shape of ``render/layout.py``):

* ``X_data(model, ...) -> frozen dataclass``: what the figure shows, computed without matplotlib
  (tests and the text views read it);
* ``draw_X(ax, data, theme, *, owns_figure, ...)``: draws that data into ``ax`` (a tuple of
  Axes for a multi-panel figure) and returns what it drew, for tests;
* a :class:`Renderer` naming both, its default size and its panels, registered for the model
  types it draws.

:func:`figure` is the only code that makes a figure, applies a theme, enters the rc context
and saves a file, so every figure is themed and exported alike (deterministic SVG included).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from iommu_lab.core import display
from iommu_lab.render.style import Theme, new_figure, rc_context, save, theme

__all__ = ["Drawing", "Renderer", "draw", "figure", "register", "theme_axes"]


@dataclass(frozen=True)
class Renderer:
    """One figure renderer, as :func:`figure` drives it.

    Attributes
    ----------
    name: str
        The renderer's name (``"layout"``, ``"walk"``, ...), as ``render.<name>`` calls it.
    data: callable(model, **data_keywords) -> data
        The pure extraction (``layout_data``, ``walk_data``, ...).
    draw: callable(ax, data, theme, *, owns_figure, **options) -> drawn
        Draws ``data``; ``owns_figure`` says the figure was made for it (legends and titles may
        then use the whole figure). Returns what it drew (artists by key), for tests.
    size: callable(data, **options) -> (width, height)
        The default figure size in inches, from the data (``figsize=`` overrides it).
    options: tuple of str (default: ())
        The keywords that go to ``draw``; every other keyword goes to ``data``.
    panels: callable(ax, *, owns_figure) -> sequence of Axes, optional
        For a multi-panel figure: splits the Axes it is given (the new figure's, or the
        caller's) into the panels ``draw`` receives as a tuple. Each panel is themed here.
    """

    name: str
    data: Callable[..., Any]
    draw: Callable[..., Any]
    size: Callable[..., tuple[float, float]]
    options: tuple[str, ...] = ()
    panels: Callable[..., Sequence[Any]] | None = None


@dataclass(frozen=True)
class Drawing:
    """A drawn figure, the data it shows and what the draw function reported drawing."""

    figure: Any
    data: Any
    drawn: Any


def theme_axes(ax: Any, th: Theme) -> None:
    """Theme one panel of a multi-panel figure: opaque background, small ticks, open frame."""
    ax.set_facecolor(th.axes_background)
    ax.patch.set_alpha(1.0)
    ax.tick_params(colors=th.foreground, labelcolor=th.foreground, labelsize=th.small_size)
    for name, spine in ax.spines.items():
        spine.set_color(th.muted)
        spine.set_visible(name in ("left", "bottom"))


def figure(renderer: Renderer, obj: Any, *, ax: Any = None, filename: str | os.PathLike | None = None,
           style: str | Theme = "light", figsize: tuple[float, float] | None = None, **keywords: Any) -> Drawing:
    """Draw ``obj`` with ``renderer``: extract, make or reuse the figure, theme, draw, save.

    Parameters
    ----------
    renderer : Renderer
    obj : model
        What ``renderer.data`` extracts from.
    ax : matplotlib Axes, optional
        Draw into this Axes (the caller owns its figure); default: a new ``Figure`` (OO API).
    filename : str or path, optional
        Also save; the suffix picks SVG, PNG (200 dpi) or PDF (see ``style.save``).
    style : {"light", "dark", "slides", "slides-dark"} or Theme
        ``"slides"`` draws the same picture 1.3 times larger, for a 16:9 review deck.
    figsize : (float, float), optional
        Size of a new figure; default ``renderer.size(data, **options)`` times the style's scale.
    **keywords
        ``renderer.options`` go to the draw function, the rest to the data function.

    Returns
    -------
    Drawing
        ``.figure`` is what the public renderers return.
    """
    options = {k: keywords.pop(k) for k in renderer.options if k in keywords}
    data = renderer.data(obj, **keywords)
    th = theme(style)
    owns_figure = ax is None
    with rc_context(th):
        if figsize is None:
            w, h = renderer.size(data, **options)
            figsize = (w * th.scale, h * th.scale)
        fig, ax, th = new_figure(ax, style=th, figsize=figsize)
        target = ax
        if renderer.panels is not None:
            target = tuple(renderer.panels(ax, owns_figure=owns_figure))
            for panel in target:
                theme_axes(panel, th)
        drawn = renderer.draw(target, data, th, owns_figure=owns_figure, **options)
    if filename is not None:
        save(fig, filename, style=th)
    return Drawing(fig, data, drawn)


def register(view: Callable[..., Any], output: str, *types: type) -> None:
    """Make ``view(obj, **kwargs)`` the ``output`` view of each of ``types`` (and subclasses)."""
    for cls in types:
        display.register(cls, output, view)


def draw(obj: Any, output: str = "mpl", **kwargs: Any) -> Any:
    """Draw ``obj`` as a figure (``"mpl"``), a string (``"text"``) or notebook HTML (``"html"``).

    Raises
    ------
    TypeError
        When ``obj``'s type has no view of that kind; the message lists the types that do.
    ValueError
        When ``output`` is not one of ``"mpl"``, ``"text"``, ``"html"``.
    """
    return display.handler_for(obj, output)(obj, **kwargs)
