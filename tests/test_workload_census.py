"""A workload's table memory is counted, and the count is what building the table gives."""

from __future__ import annotations

import pytest

from iommu_lab.core.ranges import GiB, IovaRange, RangeSet
from iommu_lab.hardware import formats
from iommu_lab.hardware.platform import platforms
from iommu_lab.pagetable.memory import PhysicalMemory
from iommu_lab.pagetable.table import PageTable
from iommu_lab.review.workload import Workload, table_tree

WORKLOADS = {
    "pc-guest": Workload.pc_guest("5G", bars=[(0xE000_0000, "64M")]),
    "odd": Workload([(0x1000, 0x3000), (0x20_0000_1000, "5M"), (1 << 40, "1G")], bars=[(0xFE00_0000, "64K")]),
}
PLATFORMS = ["intel-vtd-48", "intel-vtd-57", "amd-v1", "amd-v2", "arm-smmuv3-48", "riscv-sv39"]


def built(platform, workload, policy):
    """What the cost reports, from a real table: map each fitting range, read the tree back."""
    p = platforms.get(platform)
    fmt = formats.get(p.format_name("paging"))
    bitmap = p.pgsizes & fmt.leaf_bitmap
    bitmap = bitmap & -bitmap if policy == "4K" else bitmap
    mem = PhysicalMemory(base=0x1000_0000, size=min(64 << 30, (1 << fmt.oas) - 0x1000_0000), name="host")
    pt = PageTable(fmt, memory=mem, pgsize_bitmap=bitmap)
    m = pt.min_pgsize
    for r in RangeSet(workload.ranges) & p.iova_ranges():
        lo, hi = (r.start + m - 1) & ~(m - 1), (r.last + 1) & ~(m - 1)
        if hi > lo and any(IovaRange(lo, hi - 1) in ir for ir in fmt.input_ranges):
            pt.map(lo, lo, hi - lo)
    return table_tree(pt)


@pytest.mark.parametrize("policy", ["4K", "largest"])
@pytest.mark.parametrize("name", list(WORKLOADS))
@pytest.mark.parametrize("platform", PLATFORMS)
def test_counted_cost_equals_the_built_table(platform, name, policy):
    if name == "pc-guest" and policy == "4K" and platform != "intel-vtd-48":
        pytest.skip("one 4 KiB build of the 5 GiB guest is enough")
    cost = WORKLOADS[name].cost(platform, policy)
    tree = built(platform, WORKLOADS[name], policy)
    assert (cost.table_bytes, cost.table_pages, cost.mix) == (tree.table_bytes, len(tree), tree.mix())
    assert cost.native_refs == pytest.approx(tree.native_refs())


def test_a_large_guest_in_small_pages_is_counted_not_built():
    # 64 GiB in 4 KiB pages: 16 M leaves, 128 MiB of leaf tables if built.
    cost = Workload.pc_guest("64G").cost("intel-vtd-48", "4K")
    assert cost.mix == {4096: 64 * GiB + (256 << 20)}
    leaf_tables = (64 * GiB + (256 << 20)) // (2 << 20)
    assert cost.table_pages > leaf_tables
    assert cost.native_refs == 4.0
