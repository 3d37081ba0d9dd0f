"""PageTable.leaves(): every leaf as arrays, the same leaves mappings() and the walker see."""

from __future__ import annotations

import numpy as np
import pytest

from iommu_lab.pagetable.table import PageTable

CASES = {
    # format: [(iova, pa, size)]
    "vtd-ss-4level": [(0x20_0000, 0x4000_0000, 0x40_0000), (0x1000, 0x5000, 0x3000), (0x80_0000_0000, 0x8000_0000, 1 << 30)],
    "amd-v1-6level": [(0x8000, 0x10_8000, 0x8000), (0x40_0000, 0x20_0000, 0x1000)],  # 32 KiB: 8 replicated slots
    "x86-64-4level": [(0xFFFF_8000_0000_0000, 0x1_0000, 0x2000), (0x1000, 0x2000, 0x1000)],  # sign-extended half
    "arm-lpae-s1-4k-48bit": [(0x4000_0000, 0x8000_0000, 0x20_1000)],
    "riscv-sv39": [(0xFFFF_FFFF_FFE0_0000, 0x4000_0000, 0x20_0000), (0x3000, 0x9000, 0x1000)],  # top 2 MiB
}


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_leaves_match_mappings_and_walks(fmt):
    pt = PageTable(fmt)
    for iova, pa, size in CASES[fmt]:
        pt.map(iova, pa, size)
    lv = pt.leaves()
    maps = pt.mappings()
    assert len(lv) == len(maps) > 0
    assert [int(x) for x in lv.iova] == [m.iova for m in maps] == sorted(int(x) for x in lv.iova)
    for i, p, sz, lev in zip(lv.iova.tolist(), lv.pa.tolist(), lv.size.tolist(), lv.level.tolist()):
        w = pt.walk(i)
        assert w.ok and w.pa == p and w.page_size == sz and w.result.level == lev
        assert pt.walk(i + sz - 1).pa == p + sz - 1
    assert int(lv.size.sum()) == sum(size for _i, _p, size in CASES[fmt])


def test_replicated_amd_entries_count_once():
    pt = PageTable("amd-v1-6level")
    pt.map(0x8000, 0x10_8000, 0x8000)
    lv = pt.leaves()
    assert len(lv) == 1 and int(lv.size[0]) == 0x8000


def test_an_empty_table_has_no_leaves():
    lv = PageTable("vtd-ss-4level").leaves()
    assert len(lv) == 0 and lv.iova.dtype == np.uint64
