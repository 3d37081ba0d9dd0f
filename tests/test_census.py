"""The arithmetic table census agrees with tables that are really built."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommu_lab.hardware import formats
from iommu_lab.pagetable import PageTable
from iommu_lab.pagetable.census import Periodic, table_census, table_tree

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40


def test_one_4k_page_every_2m_over_16t_needs_8m_leaf_tables_on_vtd():
    # The stress test the kernel's page-table memory accounting was measured with: one 4 KiB
    # mapping every 2 MiB across 16 TiB of IOVA reported about 32,783 MiB of tables on 6.7.
    c = table_census("vtd-ss-4level", Periodic(0, 16 * TiB // (2 * MiB), 2 * MiB, 4 * KiB))
    assert c.tables == {3: 1, 2: 32, 1: 16_384, 0: 8_388_608}
    assert c.bytes[0] == 32 * GiB
    assert c.table_bytes == (1 + 32 + 16_384 + 8_388_608) * 4 * KiB
    assert abs(c.table_bytes / MiB - 32_783) / 32_783 < 0.01
    assert c.leaves == {4 * KiB: 8_388_608}
    assert "8,388,608" in str(c)


def test_a_gigabyte_block_needs_no_leaf_table():
    c = table_census("vtd-ss-4level", (GiB, GiB))
    assert c.tables == {3: 1, 2: 1, 1: 0, 0: 0} and c.leaves == {GiB: 1}


def _built(fmt, layout, bitmap):
    pt = PageTable(fmt, pgsize_bitmap=bitmap)
    fmt = pt.fmt
    for fam in layout:
        for i in range(fam.count):
            a = fam.start + i * fam.stride
            pt.map(a, a & ((1 << fmt.oas) - 1), fam.size)  # PA aligned like the IOVA
    return pt


# Formats whose windows and leaves a small scaled layout can exercise: every catalogue format
# except the linear TCE windows (one table, nothing to count) is drawn.
FORMATS = [n for n in formats.names() if formats.get(n).levels > 1]


@st.composite
def scaled_layouts(draw):
    fmt = formats.get(draw(st.sampled_from(FORMATS)))
    g = fmt.pgsize_bitmap & -fmt.pgsize_bitmap  # the smallest page
    span = 1 << fmt.shift(1) if fmt.levels > 1 else g  # a leaf table's reach
    bitmap = draw(st.sampled_from([g, fmt.pgsize_bitmap]))
    big = 1 << (bitmap.bit_length() - 1)
    limit = min(1 << fmt.va_bits, 1 << 40)
    layout, at = [], fmt.input_ranges[0].start
    for _ in range(draw(st.integers(1, 3))):
        at += draw(st.integers(0, 3)) * draw(st.sampled_from([g, span, span * 7]))
        size = draw(st.integers(1, 6)) * g + draw(st.sampled_from([0, span]))
        count = draw(st.integers(1, 5))
        stride = -(-size // big) * big + draw(st.integers(0, 2)) * big
        if at + count * stride + size >= fmt.input_ranges[0].start + limit:
            break
        layout.append(Periodic(at, count, stride, size))
        at += (count - 1) * stride + size
    return fmt, bitmap, layout


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scaled_layouts())
def test_census_matches_materialised_tables_on_every_format(case):
    fmt, bitmap, layout = case
    if not layout:
        return
    pt = _built(fmt, layout, bitmap)
    c = table_census(fmt, layout, pgsize_bitmap=bitmap)
    assert c.table_bytes == pt.table_bytes
    assert {lv: n for lv, (n, _) in table_tree(pt).per_level().items()} == c.tables


def test_census_refuses_overlapping_or_unordered_layouts():
    with pytest.raises(ValueError, match="overlap"):
        table_census("vtd-ss-4level", Periodic(0, 4, 0x1000, 0x2000))
    with pytest.raises(ValueError, match="increasing IOVA order"):
        table_census("vtd-ss-4level", [(0x10000, 0x1000), (0x0, 0x1000)])
