"""``draw(obj, output=...)``: one entry point for every view of every model, by type.

As Qiskit's ``circuit.draw(output="text"|"mpl")``: ``output="mpl"`` returns a matplotlib Figure
(keywords ``ax=``, ``filename=``, ``style=`` and the renderer's own), ``"text"`` a string for
terminals and the CLI, ``"html"`` the notebook view. The table below is the one place that says
which renderer draws which model; :mod:`iommu_lab.core.display` reads it for ``.plot()``.
"""

from __future__ import annotations

from typing import Any

from iommu_lab.core import display
from iommu_lab.core.ranges import RangeSet
from iommu_lab.dma.replay import Replay
from iommu_lab.dma.whatif import WhatIf
from iommu_lab.hardware.platform import Platform
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.nesting.nested import NestedWalk
from iommu_lab.pagetable.table import PageTable
from iommu_lab.pagetable.walk import Walk
from iommu_lab.render import reprs  # noqa: F401  (registers every model's HTML view)
from iommu_lab.render.compare import compare
from iommu_lab.render.layout import layout
from iommu_lab.render.nested import nested_walk
from iommu_lab.render.pagetable import pagetable
from iommu_lab.render.replay import replay
from iommu_lab.render.text import layout_text, nested_walk_text, walk_text
from iommu_lab.render.walk import walk
from iommu_lab.review.workload import Workload


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


def _compare_workload(workload: Workload, platforms: Any, **kwargs: Any):
    return compare(platforms, workload, **kwargs)


_VIEWS = {
    display.Output.MPL: {
        RangeSet: layout,
        Platform: layout,
        IOAS: layout,
        Walk: walk,
        NestedWalk: nested_walk,
        PageTable: pagetable,
        Replay: replay,
        WhatIf: replay,
        Workload: _compare_workload,
    },
    display.Output.TEXT: {
        RangeSet: layout_text,
        Platform: layout_text,
        IOAS: layout_text,
        Walk: walk_text,
        NestedWalk: nested_walk_text,
    },
}
for _output, _table in _VIEWS.items():
    for _cls, _view in _table.items():
        display.register(_cls, _output, _view)
