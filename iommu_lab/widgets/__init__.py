"""Jupyter explorers that wire the models to the renderers (ipywidgets 8).

Imported lazily: ``import iommu_lab`` never imports ipywidgets; the first access to an
explorer (``il.widgets.LayoutExplorer``) imports its module, and only then ipywidgets.

=====================  ==================================================================
explorer               what it lets you poke at
=====================  ==================================================================
``LayoutExplorer``     an IOAS: pick a platform, map/unmap/allow/attach, see the layout
``WalkExplorer``       a page table: pick a format, map, walk an IOVA level by level
``NestingExplorer``    stage 1 over stage 2: the 2-D walk reference by reference, costs
``PlatformExplorer``   several platforms: GET_INFO side by side, layouts on one axis
``ReplayExplorer``     a DMA trace: platform, page sizes, flush policy, IOTLB size
``ObjectExplorer``     one /dev/iommu: allocate, attach, replace, destroy; the object graph
``MigrationExplorer``  pre-copy live migration: write rate, memory, link, downtime budget
=====================  ==================================================================

The explorers hold no IOMMU logic: they parse inputs, call model methods, show a refused
operation's errno and message inline, and call the renderers.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LayoutExplorer", "MigrationExplorer", "NestingExplorer", "ObjectExplorer",
           "PlatformExplorer", "ReplayExplorer", "WalkExplorer"]

_HOMES = {
    "LayoutExplorer": ".layout",
    "WalkExplorer": ".walk",
    "NestingExplorer": ".nesting",
    "PlatformExplorer": ".platforms",
    "ReplayExplorer": ".replay",
    "ObjectExplorer": ".objects",
    "MigrationExplorer": ".migration",
    "AddressInput": ".common",
    "ErrorView": ".common",
    "FigureView": ".common",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(
            f"module {__name__!r} has no attribute {name!r}; explorers: {', '.join(__all__)}"
        )
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
