"""Renderers: pure functions from a model to a ``matplotlib.figure.Figure`` or a string.

Every figure renderer takes ``ax=`` (draw into an existing Axes), ``filename=`` (also save;
the suffix picks SVG, PNG or PDF) and ``style="light"|"dark"``, and returns the Figure. Text
renderers return a ``str`` for terminals and the CLI. Renderers never mutate the model.

Figure renderers so far: ``layout`` (IOVA layout on a segmented 64-bit axis). ``walk``,
``nested_walk``, ``pagetable`` and ``compare`` are added by their own modules.
"""

from __future__ import annotations

from .layout import layout
from .style import save
from .text import layout_text

__all__ = ["layout", "layout_text", "save"]

# Issue 5, the remaining renderers: walks, nested walks, page-table trees, platform comparisons.
from .compare import compare, compare_table
from .nested import nested_walk
from .pagetable import pagetable
from .text import nested_walk_text, walk_text
from .walk import walk
from .replay import replay

__all__ += ["walk", "walk_text", "nested_walk", "nested_walk_text", "pagetable", "compare", "compare_table", "replay"]
