"""Stage 1 over stage 2: the 2-D walk, fault attribution, PASID structures, shadowing and the
guest lookup aid (``explain``), all on top of the single page-table walker.
"""

from iommu_lab.nesting.nested import (
                                      AmdEvent,
                                      FaultKind,
                                      FaultOwner,
                                      FaultSite,
                                      GuestMemory,
                                      Nested,
                                      NestedFault,
                                      NestedRef,
                                      NestedWalk,
                                      NestingCapability,
                                      NestParent,
                                      SmmuEvent,
                                      Stage,
                                      VtdFault,
                                      check_nest_pair,
                                      nested_walk_refs,
)
from iommu_lab.nesting.pasid import AmdGcr3Table, Binding, SmmuCdTable, VtdPasidTable
from iommu_lab.nesting.shadow import DmaPattern, ShadowNesting, compare_costs

__all__ = ["AmdEvent", "AmdGcr3Table", "Binding", "DmaPattern", "FaultKind", "FaultOwner", "FaultSite",
           "GuestMemory", "NestParent", "Nested", "NestedFault", "NestedRef", "NestedWalk",
           "NestingCapability", "ShadowNesting", "SmmuCdTable", "SmmuEvent", "Stage", "VtdFault",
           "VtdPasidTable", "check_nest_pair", "compare_costs", "nested_walk_refs"]
