"""Renderers: pure functions from a model to a ``matplotlib.figure.Figure`` or a string.

Every figure renderer takes ``ax=`` (draw into an existing Axes), ``filename=`` (also save;
the suffix picks SVG, PNG or PDF) and ``style="light"|"dark"``, and returns the Figure. Text
renderers return a ``str`` for terminals and the CLI. Renderers never mutate the model.

Figure renderers so far: ``layout`` (IOVA layout on a segmented 64-bit axis). ``walk``,
``nested_walk``, ``pagetable`` and ``compare`` are added by their own modules.
"""

from __future__ import annotations

from iommu_lab.render.layout import layout
from iommu_lab.render.style import save
from iommu_lab.render.text import layout_text

__all__ = ["layout", "layout_text", "save"]

# Issue 5, the remaining renderers: walks, nested walks, page-table trees, platform comparisons.
from iommu_lab.render.compare import compare, compare_table
from iommu_lab.render.nested import nested_walk
from iommu_lab.render.pagetable import pagetable
from iommu_lab.render.text import nested_walk_text, walk_text
from iommu_lab.render.walk import walk
from iommu_lab.render.replay import replay

__all__ += ["walk", "walk_text", "nested_walk", "nested_walk_text", "pagetable", "compare", "compare_table", "replay"]
