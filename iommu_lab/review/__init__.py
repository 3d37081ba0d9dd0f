"""Design-review answers: a VM's memory layout as a workload, costed on each platform."""

from iommu_lab.review.workload import TableTree, Workload, WorkloadCost, compare_table, table_tree

__all__ = ["TableTree", "Workload", "WorkloadCost", "compare_table", "table_tree"]
