"""Dirty tracking bit-exact: the format's dirty bit in the leaf, and the uAPI bitmap."""

from __future__ import annotations

import numpy as np
import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware import dirty as hd
from iommu_lab.hardware import formats
from iommu_lab.pagetable.dirty import GET_DIRTY_BITMAP_NO_CLEAR, DirtyTracker, record_writes
from iommu_lab.pagetable.table import PageTable

TRACKING = ["vtd-ss-4level", "amd-v1-4level", "arm-lpae-s1-4k-48bit"]
M2, K4 = 0x200000, 0x1000


def leaf_raw(t: PageTable, iova: int) -> int:
    return t.walk(iova).refs[-1].raw


def tracked(fmt: str) -> tuple[PageTable, DirtyTracker]:
    t = PageTable(fmt)
    t.map(M2, 0x4000_0000, M2)  # one 2 MiB leaf
    t.map(K4, 0x5000_1000, K4)  # one 4 KiB leaf
    t.map(0x10000, 0x5001_0000, K4, prot="r")
    d = DirtyTracker(t)
    d.set_dirty_tracking(True)
    return t, d


def test_which_formats_track():
    assert [hd.supports_dirty(formats.get(f)) for f in TRACKING] == [True, True, True]
    for name, words in [("x86-64-4level", "first_stage"), ("arm-lpae-s2-4k-48bit", "stage 1 only"),
                        ("riscv-sv48", "RISC-V"), ("power-tce-4k", "TCE")]:
        with pytest.raises(IommuError) as e:
            hd.scheme_for(formats.get(name))
        assert e.value.errno == "EOPNOTSUPP" and words in str(e.value)
        with pytest.raises(IommuError):
            DirtyTracker(PageTable(name))


def test_vtd_write_sets_bit_9_of_the_second_stage_leaf_and_ssade():
    t, d = tracked("vtd-ss-4level")
    assert leaf_raw(t, K4) >> 9 & 1 == 0
    d.dma_write([K4 + 0x10])
    assert leaf_raw(t, K4) >> 9 & 1 == 1  # DMA_SL_PTE_DIRTY_BIT
    assert d.enable_word == 1 << 9  # PASID entry SSADE
    d.set_dirty_tracking(False)
    assert d.enable_word == 0


def test_amd_write_sets_bit_6_and_the_dte_had_bits():
    t, d = tracked("amd-v1-4level")
    d.dma_write([K4])
    assert leaf_raw(t, K4) >> 6 & 1 == 1  # IOMMU_PTE_HD_BIT
    assert d.enable_word == 3 << 7  # DTE_FLAG_HAD


def test_arm_dbm_leaf_goes_from_writable_clean_to_writable_dirty():
    t, d = tracked("arm-lpae-s1-4k-48bit")
    clean = leaf_raw(t, K4)
    assert clean >> 51 & 1 == 1 and clean >> 7 & 1 == 1  # DBM, AP[2]: writable-clean after enable
    d.dma_write([K4])
    dirty = leaf_raw(t, K4)
    assert dirty >> 51 & 1 == 1 and dirty >> 7 & 1 == 0  # hardware cleared AP[2]
    assert d.enable_word == 1 << 42  # CD TCR.HD
    d.get_dirty_bitmap(0, 4 * M2, K4)
    assert leaf_raw(t, K4) >> 7 & 1 == 1  # read-and-clear set AP[2] again


@pytest.mark.parametrize("fmt", TRACKING)
def test_a_large_leaf_dirties_every_bit_it_covers(fmt):
    t, d = tracked(fmt)
    d.dma_write([M2 + 0x1234])
    bm = d.get_dirty_bitmap(0, 4 * M2, K4)
    assert bm.count == 512 and bm.pages()[0] == M2 and bm.pages()[-1] == 2 * M2 - K4
    assert d.get_dirty_bitmap(0, 4 * M2, M2).count == 0  # the read above cleared it


@pytest.mark.parametrize("fmt", TRACKING)
def test_no_clear_keeps_the_bits_and_skips_the_iotlb_sync(fmt):
    t, d = tracked(fmt)
    d.dma_write([K4])
    before = d.syncs
    assert d.get_dirty_bitmap(0, M2, K4, GET_DIRTY_BITMAP_NO_CLEAR).pages() == [K4]
    assert d.syncs == before
    assert d.get_dirty_bitmap(0, M2, K4).pages() == [K4]
    assert d.syncs == before + 1
    assert d.get_dirty_bitmap(0, M2, K4).count == 0


def test_bitmap_layout_is_bit_i_for_page_iova_plus_i_pages():
    t = PageTable("vtd-ss-4level")
    t.map(0, 0x4000_0000, 0x100000)
    d = DirtyTracker(t)
    d.set_dirty_tracking()
    d.dma_write([0, 65 * K4, 130 * K4])
    bm = d.get_dirty_bitmap(0, 0x100000, K4)
    assert bm.words.dtype == np.uint64 and bm.words.size == 4
    assert bm.words.tolist() == [1, 1 << 1, 1 << 2, 0]
    d.dma_write([65 * K4])
    shifted = d.get_dirty_bitmap(64 * K4, 64 * K4, K4)
    assert shifted.words.tolist() == [1 << 1]


def test_bitmap_range_clips_a_partly_covered_large_leaf():
    t, d = tracked("vtd-ss-4level")
    d.dma_write([M2])
    bm = d.get_dirty_bitmap(M2 + 0x100000, M2, K4)
    assert bm.count == 256  # only the half of the 2 MiB leaf inside the range


def test_writes_before_tracking_are_not_reported_and_enable_clears_stale_bits():
    t = PageTable("vtd-ss-4level")
    t.map(0, 0x4000_0000, 0x10000)
    d = DirtyTracker(t)
    d.dma_write([0])
    assert leaf_raw(t, 0) >> 9 & 1 == 0  # SSADE off: hardware leaves D alone
    t.memory.write_u64(t.walk(0).refs[-1].entry_address, leaf_raw(t, 0) | 1 << 9)  # a stale bit
    d.set_dirty_tracking(True)
    assert d.get_dirty_bitmap(0, 0x10000, K4).count == 0


def test_read_only_and_unmapped_writes_fault_and_dirty_nothing():
    t, d = tracked("amd-v1-4level")
    ok = d.dma_write([0x10000, 0x9999000])
    assert not ok.any()
    assert d.get_dirty_bitmap(0, 4 * M2, K4).count == 0


def test_amd_replicated_leaf_is_dirty_when_any_replica_is():
    t = PageTable("amd-v1-4level")
    t.map(0, 0x4000_0000, 0x10000)  # one 64 KiB NL=7 leaf in 16 slots
    d = DirtyTracker(t)
    d.set_dirty_tracking()
    d.dma_write([0xF000])  # the last replica
    assert d.get_dirty_bitmap(0, 0x1000, K4).count == 1  # a range over the first replica only
    assert d.get_dirty_bitmap(0, 0x10000, K4).count == 0  # the clear above cleaned every replica


def test_record_writes_for_the_replay():
    t, d = tracked("vtd-ss-4level")
    assert record_writes(d, np.array([K4, M2, M2 + K4], dtype=np.uint64)) == 3
    assert record_writes(None, [K4]) == 0
    assert d.get_dirty_bitmap(0, 4 * M2, M2).count == 2


@pytest.mark.parametrize("args, errno", [
    ((0x800, M2, K4), "EINVAL"),  # iova not aligned to the IOAS
    ((0, M2 + 0x800, K4), "EINVAL"),  # end not aligned
    ((0, M2, 0), "EINVAL"),  # page_size 0
    ((K4, M2, M2), "EINVAL"),  # iova not a page_size multiple
    ((0, 0x4000, 0x3000), "EINVAL"),  # masks pass, not a power of two
    ((K4, 0, K4), "EOVERFLOW"),  # length - 1 wraps
    (((1 << 64) - K4, 2 * K4, K4), "EOVERFLOW"),
])
def test_bitmap_argument_errors_change_nothing(args, errno):
    t, d = tracked("vtd-ss-4level")
    d.dma_write([K4])
    with pytest.raises(IommuError) as e:
        d.get_dirty_bitmap(*args)
    assert e.value.errno == errno
    assert d.get_dirty_bitmap(0, M2, K4, GET_DIRTY_BITMAP_NO_CLEAR).pages() == [K4]


def test_page_size_below_the_iommu_page_is_accepted_as_the_kernel_does():
    t, d = tracked("vtd-ss-4level")
    d.dma_write([K4])
    bm = d.get_dirty_bitmap(0, 4 * K4, 0x200)
    assert bm.count == 8  # one 4 KiB leaf = 8 bits of 512 bytes


def test_length_zero_at_iova_zero_reads_nothing():
    t, d = tracked("vtd-ss-4level")
    assert d.get_dirty_bitmap(0, 0, K4).nbits == 0
