"""Real IOMMU page tables: format descriptors, PTE field tables, tables in physical memory,
``iommu_pgsize`` splitting, the single walker and vectorised translation.

>>> import iommu_lab.pagetable as ptl
>>> pt = ptl.PageTable("vtd-ss-4level")
>>> runs = pt.map(0x1000, 0x1000, 4 << 20)
>>> pt.walk(0x1000).page_size
4096
"""

from __future__ import annotations

from iommu_lab.core.bits import Field, FieldTable
from iommu_lab.core.perm import Perm
from iommu_lab.hardware import formats
from iommu_lab.hardware.formats import DecodedEntry, EntryKind, Format, UnmapPolicy, parse_perm
from iommu_lab.pagetable.census import Periodic, TableCensus, TableTree, table_census, table_tree
from iommu_lab.pagetable.memory import HostMemory, PhysicalMemory
from iommu_lab.pagetable.result import (
    Reference,
    TableFetchError,
    TranslatedBatch,
    Translation,
    Walk,
    WalkFault,
    WalkStep,
)
from iommu_lab.pagetable.table import (
    Mapping,
    PageTable,
    TablePage,
    iommu_pgsize,
    pgsize_runs,
    pgsize_split,
)
from iommu_lab.pagetable.walk import FaultReason, translate, walk

__all__ = [
    "DecodedEntry",
    "EntryKind",
    "FaultReason",
    "Field",
    "FieldTable",
    "Format",
    "HostMemory",
    "Mapping",
    "PageTable",
    "Periodic",
    "Perm",
    "PhysicalMemory",
    "Reference",
    "TableFetchError",
    "TableCensus",
    "TablePage",
    "TableTree",
    "TranslatedBatch",
    "Translation",
    "UnmapPolicy",
    "Walk",
    "WalkFault",
    "WalkStep",
    "formats",
    "iommu_pgsize",
    "parse_perm",
    "pgsize_runs",
    "pgsize_split",
    "table_census",
    "table_tree",
    "translate",
    "walk",
]
