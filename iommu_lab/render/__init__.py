"""Views of the models: figures (matplotlib), text for terminals, and notebook HTML.

``draw(obj, output="mpl"|"text"|"html", ax=, style=, filename=)`` dispatches on the model's
type. Every figure renderer is a pure function (model in, Figure out, OO API only) that takes
``ax=`` (draw into an existing Axes), ``filename=`` (also save; the suffix picks SVG, PNG or
PDF) and ``style="light"|"dark"``. Text renderers return a ``str``. Renderers never mutate the
model. Importing this package registers every view with :mod:`iommu_lab.core.display`, which
is how ``obj.plot()`` and ``obj._repr_html_()`` find them.
"""

from __future__ import annotations

from iommu_lab.render import reprs  # noqa: F401  (registers every model's HTML view)
from iommu_lab.render.compare import compare, compare_table
from iommu_lab.render.draw import draw
from iommu_lab.render.layout import layout
from iommu_lab.render.migration import migration_heat, migration_rounds
from iommu_lab.render.nested import nested_walk
from iommu_lab.render.pagetable import pagetable
from iommu_lab.render.replay import replay
from iommu_lab.render.style import save
from iommu_lab.render.text import layout_text, nested_walk_text, walk_text
from iommu_lab.render.walk import walk

__all__ = ["compare", "compare_table", "draw", "layout", "layout_text", "migration_heat", "migration_rounds", "nested_walk", "nested_walk_text",
           "pagetable", "replay", "save", "walk", "walk_text"]
