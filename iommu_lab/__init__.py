"""iommu_lab: faithful models of IOMMU address spaces, page tables, nesting and walks.

Import it as ``import iommu_lab as il``. Models live in small modules named after their
concept; plots in ``il.render``; notebook explorers in ``il.widgets`` (imported lazily, so
this package works without Jupyter installed).
"""

from __future__ import annotations

import importlib
from typing import Any

from .area import Area, Prot
from .device import Device, ReservedRegion, ResvType
from .errors import IommuError
from .ioas import IOAS, Access, Capabilities, IoasInfo, Lookup, Reservation
from .platform import IommuFamily, NestingSupport, Platform, PlatformInfo, platforms
from .type1 import Semantics
from .ranges import EiB, GiB, IovaRange, KiB, MiB, PiB, RangeSet, TiB, U64_MAX, fmt_addr, fmt_size, parse_size

__version__ = "0.1.0"

# Sub-modules reached as attributes (``il.render.layout``) but imported on first use: the
# renderers pull in matplotlib's pyplot-free API, the widgets need ipywidgets.
_LAZY_MODULES = {
    "render": ".render",
    "widgets": ".widgets",
    "io": ".io",
    "pagetable": ".pagetable",
    "formats": ".pagetable.formats",
    "nesting": ".nesting",
    "pasid": ".pasid",
    "shadow": ".shadow",
    "scenario": ".scenario",
    "trace": ".trace",
    "caches": ".caches",
    "trace_replay": ".trace_replay",
    "whatif": ".whatif",
}
_LAZY_NAMES: dict[str, tuple[str, str]] = {
    "PageTable": (".pagetable", "PageTable"),
    "PhysicalMemory": (".pagetable", "PhysicalMemory"),
    "HostMemory": (".pagetable", "HostMemory"),
    "Walk": (".pagetable", "Walk"),
    "WalkFault": (".pagetable", "WalkFault"),
    "FaultReason": (".pagetable", "FaultReason"),
    "Perm": (".pagetable", "Perm"),
    "UnmapPolicy": (".pagetable", "UnmapPolicy"),
    "iommu_pgsize": (".pagetable", "iommu_pgsize"),
    "pgsize_split": (".pagetable", "pgsize_split"),
    "Nested": (".nesting", "Nested"),
    "NestedWalk": (".nesting", "NestedWalk"),
    "NestParent": (".nesting", "NestParent"),
    "GuestMemory": (".nesting", "GuestMemory"),
    "ShadowNesting": (".shadow", "ShadowNesting"),
    "compare_costs": (".shadow", "compare_costs"),
    "VtdPasidTable": (".pasid", "VtdPasidTable"),
    "SmmuCdTable": (".pasid", "SmmuCdTable"),
    "AmdGcr3Table": (".pasid", "AmdGcr3Table"),
    "guest_lookup": (".guest", "lookup"),
    "Workload": (".workload", "Workload"),
    "DmaPattern": (".shadow", "DmaPattern"),
    "Scenario": (".scenario", "Scenario"),
    "Trace": (".trace", "Trace"),
    "Caches": (".caches", "Caches"),
    "CacheConfig": (".caches", "CacheConfig"),
    "FlushPolicy": (".trace_replay", "FlushPolicy"),
    "FlushQueue": (".trace_replay", "FlushQueue"),
    "replay": (".trace_replay", "replay"),
    "what_if": (".whatif", "what_if"),
    "nesting_modes": (".whatif", "nesting_modes"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        module = importlib.import_module(_LAZY_MODULES[name], __name__)
        globals()[name] = module
        return module
    if name in _LAZY_NAMES:
        module_name, attr = _LAZY_NAMES[name]
        value = getattr(importlib.import_module(module_name, __name__), attr)
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
