"""Stage 1 over stage 2: the 2-D walk, fault attribution, PASID structures, shadowing and the
guest lookup aid (``explain``), all on top of the single page-table walker.

Modules, lowest first (each imports only modules before it): ``memory`` (guest-physical
memory), ``faults`` (attribution and vendor records), ``rules`` (which pairs nest), ``pasid``
(PASID structures and their one walker), ``walk`` (the 2-D walk and its result), ``pair`` (the
nested pair and its verbs), ``explain`` and ``shadow`` (views on a pair), ``nested`` (``Nested``
with every verb, and the IOAS nest parent).
"""

from iommu_lab.nesting.explain import explain
from iommu_lab.nesting.faults import (
                                      AmdEvent,
                                      FaultKind,
                                      FaultOwner,
                                      FaultSite,
                                      NestedFault,
                                      SmmuEvent,
                                      Stage,
                                      VtdFault,
)
from iommu_lab.nesting.memory import GuestMemory
from iommu_lab.nesting.nested import Nested, NestParent
from iommu_lab.nesting.pasid import AmdGcr3Table, Binding, SmmuCdTable, VtdPasidTable
from iommu_lab.nesting.rules import NestingCapability, check_nest_pair
from iommu_lab.nesting.shadow import DmaPattern, ShadowNesting, compare_costs
from iommu_lab.nesting.walk import NestedRef, NestedWalk, RefRole, nested_walk_refs

__all__ = ["AmdEvent", "AmdGcr3Table", "Binding", "DmaPattern", "FaultKind", "FaultOwner", "FaultSite",
           "GuestMemory", "NestParent", "Nested", "NestedFault", "NestedRef", "NestedWalk",
           "NestingCapability", "RefRole", "ShadowNesting", "SmmuCdTable", "SmmuEvent", "Stage", "VtdFault",
           "VtdPasidTable", "check_nest_pair", "compare_costs", "explain", "nested_walk_refs"]
