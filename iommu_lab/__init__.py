"""iommu_lab: faithful models of IOMMU address spaces, page tables, nesting and walks.

Import it as ``import iommu_lab as il``. The package tree is the layer list, lowest first:
``core``, ``hardware``, ``pagetable``, ``nesting``, ``iommufd``, ``dma``, ``review``, ``io``,
``render``, ``widgets``, then ``cli`` and ``gallery``; a package imports only from the ones
before it. Plots live in ``il.render`` and notebook explorers in ``il.widgets`` (imported
lazily, so this package works without Jupyter installed).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

from iommu_lab.core.claims import ClaimFailed, check
from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import (
    U64_MAX,
    EiB,
    GiB,
    IovaRange,
    KiB,
    MiB,
    PiB,
    RangeSet,
    TiB,
    fmt_addr,
    fmt_size,
    parse_size,
)
from iommu_lab.hardware.device import Device, ReservedRegion, ResvType
from iommu_lab.hardware.platform import (
    IommuFamily,
    NestingSupport,
    Platform,
    PlatformInfo,
    platforms,
)
from iommu_lab.iommufd.area import Area, Prot
from iommu_lab.iommufd.ioas import IOAS, Access, Capabilities, IoasInfo, Lookup, Reservation
from iommu_lab.iommufd.type1 import Semantics

__version__ = "0.1.0"

# Sub-packages and modules reached as attributes (``il.render.layout``, ``il.trace.streaming``)
# but imported on first use: the renderers pull in matplotlib, the widgets need ipywidgets.
_LAZY_MODULES = {
    "core": "iommu_lab.core",
    "hardware": "iommu_lab.hardware",
    "iommufd": "iommu_lab.iommufd",
    "dma": "iommu_lab.dma",
    "review": "iommu_lab.review",
    "render": "iommu_lab.render",
    "widgets": "iommu_lab.widgets",
    "io": "iommu_lab.io",
    "pagetable": "iommu_lab.pagetable",
    "formats": "iommu_lab.hardware.formats",
    "nesting": "iommu_lab.nesting",
    "pasid": "iommu_lab.nesting.pasid",
    "shadow": "iommu_lab.nesting.shadow",
    "scenario": "iommu_lab.io.scenario",
    "trace": "iommu_lab.dma.trace",
    "caches": "iommu_lab.dma.caches",
    "trace_replay": "iommu_lab.dma.replay",
    "whatif": "iommu_lab.dma.whatif",
}
_LAZY_NAMES: dict[str, tuple[str, str]] = {
    "PageTable": ("iommu_lab.pagetable", "PageTable"),
    "PhysicalMemory": ("iommu_lab.pagetable", "PhysicalMemory"),
    "HostMemory": ("iommu_lab.pagetable", "HostMemory"),
    "Walk": ("iommu_lab.pagetable", "Walk"),
    "WalkFault": ("iommu_lab.pagetable", "WalkFault"),
    "FaultReason": ("iommu_lab.pagetable", "FaultReason"),
    "Perm": ("iommu_lab.pagetable", "Perm"),
    "UnmapPolicy": ("iommu_lab.pagetable", "UnmapPolicy"),
    "iommu_pgsize": ("iommu_lab.pagetable", "iommu_pgsize"),
    "pgsize_split": ("iommu_lab.pagetable", "pgsize_split"),
    "Nested": ("iommu_lab.nesting", "Nested"),
    "NestedWalk": ("iommu_lab.nesting", "NestedWalk"),
    "NestParent": ("iommu_lab.nesting", "NestParent"),
    "GuestMemory": ("iommu_lab.nesting", "GuestMemory"),
    "ShadowNesting": ("iommu_lab.nesting", "ShadowNesting"),
    "compare_costs": ("iommu_lab.nesting", "compare_costs"),
    "VtdPasidTable": ("iommu_lab.nesting", "VtdPasidTable"),
    "SmmuCdTable": ("iommu_lab.nesting", "SmmuCdTable"),
    "AmdGcr3Table": ("iommu_lab.nesting", "AmdGcr3Table"),
    "explain": ("iommu_lab.nesting.explain", "explain"),
    "guest_lookup": ("iommu_lab.nesting.explain", "explain"),
    "Workload": ("iommu_lab.review", "Workload"),
    "DmaPattern": ("iommu_lab.nesting", "DmaPattern"),
    "Scenario": ("iommu_lab.io.scenario", "Scenario"),
    "Trace": ("iommu_lab.dma", "Trace"),
    "Caches": ("iommu_lab.dma", "Caches"),
    "CacheConfig": ("iommu_lab.dma", "CacheConfig"),
    "FlushPolicy": ("iommu_lab.dma", "FlushPolicy"),
    "FlushQueue": ("iommu_lab.dma", "FlushQueue"),
    "replay": ("iommu_lab.dma", "replay"),
    "what_if": ("iommu_lab.dma", "what_if"),
    "nesting_modes": ("iommu_lab.dma", "nesting_modes"),
}

# Module paths of the flat tree before the layer packages, kept importable for one release
# (``from iommu_lab.trace import streaming`` still works) and listed in the README.
OLD_MODULE_PATHS = {
    "iommu_lab.ranges": "iommu_lab.core.ranges",
    "iommu_lab.errors": "iommu_lab.core.errors",
    "iommu_lab.device": "iommu_lab.hardware.device",
    "iommu_lab.platform": "iommu_lab.hardware.platform",
    "iommu_lab.pagetable.formats": "iommu_lab.hardware.formats",
    "iommu_lab.guest": "iommu_lab.nesting.explain",
    "iommu_lab.shadow": "iommu_lab.nesting.shadow",
    "iommu_lab.pasid": "iommu_lab.nesting.pasid",
    "iommu_lab.area": "iommu_lab.iommufd.area",
    "iommu_lab.ioas": "iommu_lab.iommufd.ioas",
    "iommu_lab.type1": "iommu_lab.iommufd.type1",
    "iommu_lab.trace": "iommu_lab.dma.trace",
    "iommu_lab.caches": "iommu_lab.dma.caches",
    "iommu_lab.trace_replay": "iommu_lab.dma.replay",
    "iommu_lab.whatif": "iommu_lab.dma.whatif",
    "iommu_lab.workload": "iommu_lab.review.workload",
    "iommu_lab.scenario": "iommu_lab.io.scenario",
}


class _OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an old flat module path with the module that now holds its names."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in OLD_MODULE_PATHS:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        # The import system returns whatever sys.modules holds once this returns, so the
        # old name becomes the new module itself (one object, its own __spec__ untouched).
        sys.modules[module.__name__] = importlib.import_module(OLD_MODULE_PATHS[module.__name__])


if not any(isinstance(f, _OldPathFinder) for f in sys.meta_path):
    sys.meta_path.append(_OldPathFinder())


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        module = importlib.import_module(_LAZY_MODULES[name])
        globals()[name] = module
        return module
    if name in _LAZY_NAMES:
        module_name, attr = _LAZY_NAMES[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'iommu_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))


__all__ = [
    "IovaRange",
    "RangeSet",
    "parse_size",
    "fmt_addr",
    "fmt_size",
    "KiB",
    "MiB",
    "GiB",
    "TiB",
    "PiB",
    "EiB",
    "U64_MAX",
    "IommuError",
    "check",
    "ClaimFailed",
    "Device",
    "ReservedRegion",
    "ResvType",
    "platforms",
    "Platform",
    "PlatformInfo",
    "IommuFamily",
    "NestingSupport",
    "IOAS",
    "IoasInfo",
    "Lookup",
    "Reservation",
    "Area",
    "Prot",
    "Access",
    "Capabilities",
    "Semantics",
    *_LAZY_NAMES,
]
