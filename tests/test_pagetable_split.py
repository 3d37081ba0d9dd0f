"""iommu_pgsize splitting: the kernel's worked examples and its equivalence to the greedy rule."""

from hypothesis import given
from hypothesis import strategies as st

from iommu_lab.core.ranges import GiB, KiB, MiB
from iommu_lab.pagetable import iommu_pgsize, pgsize_runs, pgsize_split

BITMAP = 4 * KiB | 2 * MiB | 1 * GiB


def test_worked_example_4k_2m_1g_from_0x1000():
    assert iommu_pgsize(BITMAP, 0x1000, 0x1000, 4 * MiB) == (4 * KiB, 511)
    assert pgsize_runs(BITMAP, 0x1000, 0x1000, 4 * MiB) == [
        (0x1000, 0x1000, 4 * KiB, 511),
        (0x200000, 0x200000, 2 * MiB, 1),
        (0x400000, 0x400000, 4 * KiB, 1),
    ]
    pages = pgsize_split(BITMAP, 0x1000, 0x1000, 4 * MiB)
    assert len(pages) == 513 and pages[511] == (0x200000, 0x200000, 2 * MiB)


def test_kunit_test_mixed_gives_14_2m_3_1g_3_2m():
    runs = pgsize_runs(BITMAP, 0x3FE400000, 0x3FE400000, 0x4C0600000 - 0x3FE400000)
    assert [(s, c) for _v, _p, s, c in runs] == [(2 * MiB, 14), (1 * GiB, 3), (2 * MiB, 3)]


def test_kunit_pgsize_boundary_case():
    pages = pgsize_split(BITMAP, 0xFEF80000, 0x208B95D000, 0x20000)
    assert {s for _v, _p, s in pages} == {4 * KiB} and len(pages) == 32


def test_no_big_page_unless_iova_and_pa_share_the_offset():
    # Both 2M-aligned individually? No: iova 2M aligned, pa only 4K aligned -> all 4K.
    assert {s for _v, _p, s in pgsize_split(BITMAP, 0x200000, 0x201000, 4 * MiB)} == {4 * KiB}


def test_zero_addresses_are_aligned_to_everything():
    assert pgsize_runs(BITMAP, 0, 0, 2 * GiB) == [(0, 0, 1 * GiB, 2)]


def _greedy(bitmap, iova, pa, size):
    out = []
    while size:
        best = max(
            s
            for s in (1 << b for b in range(64) if bitmap >> b & 1)
            if s <= size and iova % s == 0 and pa % s == 0
        )
        out.append((iova, pa, best))
        iova, pa, size = iova + best, pa + best, size - best
    return out


@given(
    bitmap=st.sampled_from(
        [
            BITMAP,
            0x1000,
            0x201000,
            0x8040201000,
            4 * KiB | 64 * KiB | MiB | 16 * MiB,
            0xFFF7FFFFFF000,
        ]
    ),
    iova_pages=st.integers(0, 1 << 22),
    pa_pages=st.integers(0, 1 << 22),
    n=st.integers(1, 3000),
    same_offset=st.booleans(),
)
def test_split_equals_the_greedy_page_by_page_rule(bitmap, iova_pages, pa_pages, n, same_offset):
    iova = iova_pages << 12
    pa = iova if same_offset else pa_pages << 12
    size = n << 12
    got = pgsize_split(bitmap, iova, pa, size)
    assert got == _greedy(bitmap, iova, pa, size)
    assert sum(s for _v, _p, s in got) == size
