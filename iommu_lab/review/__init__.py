"""Design-review answers: a VM's memory layout as a workload, costed on each platform."""

from iommu_lab.review.migration import DirtyRate, Migration, Writes, migrate
from iommu_lab.review.workload import TableTree, Workload, WorkloadCost, compare_table, table_tree

__all__ = [
    "DirtyRate", "Migration", "TableTree", "Workload", "WorkloadCost", "Writes", "compare_table", "migrate",
    "table_tree",
]
