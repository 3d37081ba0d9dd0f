"""PageTable map/unmap/walk: worked walks, real raw entries, errors leave memory unchanged."""

import numpy as np
import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import GiB, KiB, MiB
from iommu_lab.hardware import formats
from iommu_lab.pagetable import (
    FaultReason,
    HostMemory,
    PageTable,
    Perm,
    PhysicalMemory,
    UnmapPolicy,
)


def test_vtd_worked_walk_reads_the_reference_entries():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x7F1234567000, 0x123456000, 4 * KiB)
    w = pt.walk(0x7F123456789A)
    assert [(s.table, s.index, s.entry_address, s.raw) for s in w.steps] == [
        (0x10000000, 254, 0x100007F0, 0x10001003),
        (0x10001000, 72, 0x10001240, 0x10002003),
        (0x10002000, 418, 0x10002D10, 0x10003003),
        (0x10003000, 359, 0x10003B38, 0x123456003),
    ]
    assert w.pa == 0x12345689A and w.references == 4
    assert w.accesses == [0x100007F0, 0x10001240, 0x10002D10, 0x10003B38]


def test_vtd_superpage_walk_takes_three_references():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x7F1234400000, 0x40200000, 2 * MiB)
    w = pt.walk(0x7F123456789A)
    assert w.steps[-1].raw == 0x40200083 and w.pa == 0x40200000 + 0x16789A and w.references == 3


def test_amd_nl7_page_is_replicated_and_walks_like_the_reference():
    pt = PageTable("amd-v1-3level")
    pt.map(0x5ABCDE8000, 0x100000, 32 * KiB)
    leaf_table = pt.walk(0x5ABCDEF123).steps[-1].table
    slots = [pt.memory.read_u64(leaf_table + 8 * i) for i in range(486, 498)]
    assert slots[:2] == [0, 0] and slots[-2:] == [0, 0]
    assert slots[2:10] == [0x7000000000103E01] * 8
    w = pt.walk(0x5ABCDEF123)
    assert w.pa == 0x107123 and w.page_size == 32 * KiB and w.references == 3
    assert w.steps[0].raw & 0xE00 == 2 << 9 and w.steps[1].raw & 0xE00 == 1 << 9
    assert [m.size for m in pt.mappings()] == [32 * KiB]  # replicas count once


def test_arm_worked_block_walk():
    pt = PageTable("arm-lpae-s1-4k-48bit")
    pt.map(0x7F1234400000, 0x40200000, 2 * MiB, prot="rwx")
    w = pt.walk(0x7F123456789A)
    assert [s.index for s in w.steps] == [254, 72, 418]
    assert w.steps[-1].raw == 0x40200F45 and w.pa == 0x4036789A
    assert [s.name for s in w.steps] == ["L0", "L1", "L2"]


def test_arm_s2_concatenated_walk_is_three_references():
    pt = PageTable("arm-lpae-s2-4k-40bit")
    pt.map(0xABCDEF1000, 0x1000, 4 * KiB)
    w = pt.walk(0xABCDEF1234)
    assert w.references == 3 and w.steps[0].index == 687
    assert w.steps[0].entry_address == pt.root + 687 * 8  # in the second concatenated page
    assert pt.memory.allocations()[0] == (pt.root, 8 * KiB)


def test_map_uses_the_kernel_split_and_walks_agree():
    pt = PageTable("vtd-ss-4level")
    runs = pt.map(0x1000, 0x1000, 4 * MiB)
    assert [(s, c) for _v, _p, s, c in runs] == [(4 * KiB, 511), (2 * MiB, 1), (4 * KiB, 1)]
    assert pt.walk(0x1FF000).page_size == 4 * KiB
    assert pt.walk(0x200000).page_size == 2 * MiB
    assert pt.walk(0x400000).page_size == 4 * KiB
    assert pt.walk(0x401000).fault.reason is FaultReason.NOT_PRESENT
    assert [m.size for m in pt.mappings()][509:] == [4 * KiB, 4 * KiB, 2 * MiB, 4 * KiB]


def test_tables_are_found_by_walking():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x1000, 4 * MiB)
    t = pt.tables
    assert [x.level for x in t] == [3, 2, 1, 0, 0]
    assert [x.used for x in t] == [1, 1, 3, 511, 1]
    df = pt.to_dataframe()
    assert str(df["address"].dtype) == "UInt64" and len(df) == 5
    assert pt.table_bytes == 5 * 4 * KiB == pt.memory.bytes_used
    assert len(pt.to_dataframe("mappings")) == 513


def test_x86_upper_canonical_half_maps_and_walks():
    pt = PageTable("x86-64-4level")
    pt.map(0xFFFF800000000000, 0x200000, 4 * MiB)
    w = pt.walk(0xFFFF800000201000)
    assert w.steps[0].index == 256 and w.pa == 0x401000
    assert pt.walk(0x800000000000).fault.reason is FaultReason.NON_CANONICAL
    assert pt.mappings()[0].iova == 0xFFFF800000000000


def test_tce_window_maps_one_page_size():
    pt = PageTable("power-tce-64k")
    base = 1 << 59
    pt.map(base + 0x1230000, 0x50000, 2 * 64 * KiB)
    w = pt.walk(base + 0x123789A)
    assert w.pa == 0x5789A and w.references == 1 and w.steps[0].index == 0x123
    assert pt.walk(0x1000).fault.reason is FaultReason.OUT_OF_RANGE
    assert pt.memory.bytes_used == 8 * MiB  # one flat table for the 64 GiB window


@pytest.mark.parametrize(
    "name",
    ["vtd-ss-4level", "arm-lpae-s1-4k-48bit", "amd-v1-3level", "riscv-sv39", "x86-64-4level"],
)
def test_permission_faults(name):
    pt = PageTable(name)
    pt.map(0x40000000, 0x80000000, 2 * MiB, prot="r")
    assert pt.walk(0x40000010, access="r").ok
    w = pt.walk(0x40000010, access="w")
    assert not w.ok and w.fault.reason is FaultReason.PERMISSION and w.references >= 1
    pa, fault = pt.translate(np.array([0x40000010], dtype=np.uint64), access="w")
    assert fault[0] and pa[0] == 0
    pa, fault = pt.translate(np.array([0x40000010], dtype=np.uint64), access="r")
    assert not fault[0] and pa[0] == 0x80000010


def test_arm_noexec_is_a_permission_fault_for_exec():
    pt = PageTable("arm-lpae-s1-4k-48bit")
    pt.map(0x1000, 0x1000, 4 * KiB, prot="rw")
    assert pt.walk(0x1000, access="x").fault.reason is FaultReason.PERMISSION
    assert pt.walk(0x1000, access="rw").perm & Perm.WRITE


# ----------------------------------------------------------------------- errors, model unchanged
@pytest.fixture
def mapped():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x200000, 0x200000, 2 * MiB)
    pt.map(0x1000, 0x5000, 8 * KiB)
    return pt


@pytest.mark.parametrize(
    "args,errno",
    [
        ((0x1800, 0x1000, 0x1000), "EINVAL"),  # misaligned iova
        ((0x10000, 0x1800, 0x1000), "EINVAL"),  # misaligned pa
        ((0x10000, 0x1000, 0x1001), "EINVAL"),  # misaligned size
        ((0x10000, 0x1000, 0), "EINVAL"),  # zero length
        ((0x100000, 0x1000, 2 * MiB), "EADDRINUSE"),  # overlaps the 2M leaf (generic_pt)
        ((0x2000, 0x9000, 4 * KiB), "EADDRINUSE"),  # overlaps a 4K leaf
        ((1 << 48, 0x1000, 0x1000), "EINVAL"),  # outside the 48-bit aperture
        (((1 << 48) - 0x1000, 0x1000, 0x2000), "EINVAL"),  # straddles the end
        ((-0x1000, 0x1000, 0x1000), "EINVAL"),  # negative
        ((1 << 64, 0x1000, 0x1000), "EOVERFLOW"),  # >= 2**64
        (((1 << 64) - 0x1000, 0x1000, 0x2000), "EOVERFLOW"),  # wraps
        ((0x10000, 1 << 52, 0x1000), "EINVAL"),  # output beyond oas
    ],
)
def test_bad_map_raises_and_changes_nothing(mapped, args, errno):
    before = mapped.memory.snapshot()
    with pytest.raises(IommuError) as e:
        mapped.map(*args)
    assert e.value.errno == errno
    assert mapped.memory.snapshot() == before


def test_float_and_bool_are_type_errors(mapped):
    before = mapped.memory.snapshot()
    with pytest.raises(TypeError):
        mapped.map(4096.0, 0x1000, 0x1000)
    with pytest.raises(TypeError):
        mapped.map(0x10000, 0x1000, 4096.0)
    with pytest.raises(TypeError):
        mapped.map(True, 0x1000, 0x1000)
    assert mapped.memory.snapshot() == before


def test_prot_without_read_or_write_is_refused(mapped):
    with pytest.raises(IommuError, match="neither read nor write"):
        mapped.map(0x10000, 0x1000, 0x1000, prot="x")
    with pytest.raises(ValueError):
        mapped.map(0x10000, 0x1000, 0x1000, prot="rq")


def test_non_canonical_map_is_refused_and_changes_nothing():
    pt = PageTable("x86-64-4level")
    before = pt.memory.snapshot()
    with pytest.raises(IommuError, match="non-canonical"):
        pt.map(0x0000_8000_0000_0000, 0x1000, 0x1000)
    with pytest.raises(IommuError):
        pt.map(0x7FFF_FFFF_F000, 0x1000, 0x2000)  # crosses into the hole
    assert pt.memory.snapshot() == before


def test_enomem_is_detected_before_writing():
    mem = PhysicalMemory(base=0x1000_0000, size=3 * 4096)
    pt = PageTable("vtd-ss-4level", mem)
    before = mem.snapshot()
    with pytest.raises(IommuError) as e:
        pt.map(0x1000, 0x1000, 0x1000)
    assert e.value.errno == "ENOMEM" and mem.snapshot() == before


# ----------------------------------------------------------------------- unmap
def test_unmap_returns_bytes_and_frees_fully_covered_tables():
    pt = PageTable("vtd-ss-4level", pgsize_bitmap=0x1000)
    pt.map(0, 0x1_0000_0000, 4 * MiB)
    assert pt.memory.bytes_used == 5 * 4 * KiB
    assert pt.unmap(0, 4 * MiB) == 4 * MiB
    assert pt.mappings() == []
    # generic_pt __unmap_range frees a table only when the range covers its whole span:
    # both SL-PTE tables go; the SL-PDE and SL-PDPE tables (1G and 512G spans) stay, empty.
    assert [(t.level, t.used) for t in pt.tables] == [(3, 1), (2, 1), (1, 0)]
    assert pt.memory.bytes_used == 3 * 4 * KiB
    assert not pt.walk(0x200000).ok


def test_vtd_unmap_cutting_a_large_page_removes_all_of_it():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x200000, 0x400000, 2 * MiB)
    assert pt.unmap(0x200000, 4 * KiB) == 2 * MiB  # intel_iommu_unmap rounds up to the large page
    assert not pt.walk(0x3FF000).ok


def test_amd_unmap_cutting_an_nl7_page_clears_every_replica():
    pt = PageTable("amd-v1-3level")
    pt.map(0x100000, 0x100000, 32 * KiB)
    assert pt.unmap(0x100000, 4 * KiB) == 32 * KiB
    assert pt.mappings() == []


def test_arm_unmap_cutting_a_block_refuses_and_keeps_it():
    pt = PageTable("arm-lpae-s1-4k-48bit")
    pt.map(0x200000, 0x400000, 2 * MiB)
    before = pt.memory.snapshot()
    assert pt.unmap(0x200000, 4 * KiB) == 0  # "Unmap of a partial large IOPTE is not allowed"
    assert pt.memory.snapshot() == before and pt.walk(0x200000).ok


def test_old_arm_kernels_split_the_block_and_unmap_exactly_the_range():
    fmt = formats.arm_lpae(1, 4096, 48, unmap_policy=UnmapPolicy.SPLIT)
    pt = PageTable(fmt)
    pt.map(0x4000_0000, 0x8000_0000, 1 * GiB)
    assert pt.unmap(0x4000_0000, 4 * KiB) == 4 * KiB  # arm_lpae_split_blk_unmap
    assert not pt.walk(0x4000_0000).ok
    assert pt.walk(0x4000_1234).pa == 0x8000_1234
    sizes = [m.size for m in pt.mappings()]
    assert sizes == [4 * KiB] * 511 + [2 * MiB] * 511
    assert pt.unmap(0x4020_1000, 4 * KiB) == 4 * KiB  # starts inside a 2M block: split again
    assert pt.walk(0x4020_0000).page_size == 4 * KiB and not pt.walk(0x4020_1000).ok
    assert pt.walk(0x4020_2000).pa == 0x8020_2000


def test_unmap_starting_inside_a_large_page_unmaps_nothing():
    for name in ("vtd-ss-4level", "arm-lpae-s1-4k-48bit"):
        pt = PageTable(name)
        pt.map(0x200000, 0x400000, 2 * MiB)
        assert pt.unmap(0x201000, 4 * KiB) == 0
        assert pt.walk(0x201000).ok


def test_unmap_stops_at_a_hole():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x1000, 4 * KiB)
    pt.map(0x3000, 0x3000, 4 * KiB)
    assert pt.unmap(0x1000, 3 * 4 * KiB) == 4 * KiB
    assert pt.walk(0x3000).ok


def test_unmap_misaligned_is_einval():
    pt = PageTable("vtd-ss-4level")
    with pytest.raises(IommuError) as e:
        pt.unmap(0x1800, 0x1000)
    assert e.value.errno == "EINVAL"


def test_large_leaf_replaces_an_empty_table_and_frees_it():
    pt = PageTable("arm-lpae-s1-4k-48bit")
    pt.map(0x200000, 0x200000, 4 * KiB)
    pt.map(0x3FF000, 0x3FF000, 4 * KiB)
    assert pt.unmap(0x200000, 4 * KiB) == 4 * KiB
    assert pt.unmap(0x3FF000, 4 * KiB) == 4 * KiB
    used = pt.memory.bytes_used
    pt.map(0x200000, 0x200000, 2 * MiB)
    assert pt.walk(0x200000).page_size == 2 * MiB
    assert pt.memory.bytes_used <= used  # the empty L3 table went back to the allocator
    assert [t.level for t in pt.tables] == [3, 2, 1]


def test_remap_after_unmap_round_trips():
    pt = PageTable("riscv-sv48")
    pt.map(0, 0, 1 * GiB + 2 * MiB)
    assert pt.walk(0).page_size == 1 * GiB
    assert pt.unmap(0, 1 * GiB + 2 * MiB) == 1 * GiB + 2 * MiB
    pt.map(0, 0x4000_0000, 1 * GiB)
    assert pt.walk(0x1234).pa == 0x4000_1234


# ----------------------------------------------------------------------- populate and host memory
def test_populate_forces_one_page_size():
    pt = PageTable("vtd-ss-4level")
    pt.populate(0, 0x1_0000_0000, 4 * MiB, 4 * KiB)
    assert {m.size for m in pt.mappings()} == {4 * KiB}
    assert len(pt.mappings()) == 1024


def test_host_memory_contiguity_decides_page_sizes():
    thp = HostMemory(page_size=2 * MiB)
    base = HostMemory(page_size=4 * KiB)
    for host, sizes in ((thp, {2 * MiB}), (base, {4 * KiB})):
        pt = PageTable("vtd-ss-4level")
        pt.map_user(0x4000_0000, host, 0x7F00_0000_0000, 8 * MiB)
        assert {m.size for m in pt.mappings()} == sizes
        for m in pt.mappings():
            va = 0x7F00_0000_0000 + (m.iova - 0x4000_0000)
            assert host.resolve(va, 4096)[0][1] == m.pa


def test_memory_read_write_and_errors():
    mem = PhysicalMemory(base=0x1000_0000, size=1 * MiB)
    mem.write_u64(0x1000_0008, 0xDEAD)
    assert mem.read_u64(0x1000_0008) == 0xDEAD and mem.read_u64(0x1000_0010) == 0
    with pytest.raises(IommuError):
        mem.read_u64(0x2000_0000)
    with pytest.raises(ValueError):
        mem.read_u64(0x1000_0004)
    a = mem.alloc(8 * KiB)
    assert a % (8 * KiB) == 0 and mem.bytes_used == 8 * KiB
    mem.free(a)
    assert mem.bytes_used == 0


def test_walk_reports_render():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x1000, 4 * KiB)
    w = pt.walk(0x1234)
    text = str(w)
    assert "0x0000000010001003" in text and "SL-PTE" in text and "pa 0x1234" in text
    assert "<table>" in w._repr_html_()
    df = w.to_dataframe()
    assert len(df) == 4 and str(df["raw"].dtype) == "UInt64"
    assert "FAULT" in str(pt.walk(0x9000))
    assert (
        "<table>" in pt._repr_html_() and "SL-PML4E" in formats.get("vtd-ss-4level")._repr_html_()
    )


@pytest.mark.parametrize(
    "args,exc",
    [
        ((0x1800, 0x1000), "EINVAL"),
        ((0x1000, 0), "EINVAL"),
        ((1 << 48, 0x1000), "EINVAL"),
        ((-4096, 0x1000), "EINVAL"),
        ((1 << 64, 0x1000), "EOVERFLOW"),
        (((1 << 64) - 0x1000, 0x2000), "EOVERFLOW"),
        ((4096.0, 0x1000), TypeError),
    ],
)
def test_bad_unmap_raises_and_changes_nothing(mapped, args, exc):
    before = mapped.memory.snapshot()
    if isinstance(exc, str):
        with pytest.raises(IommuError) as e:
            mapped.unmap(*args)
        assert e.value.errno == exc
    else:
        with pytest.raises(exc):
            mapped.unmap(*args)
    assert mapped.memory.snapshot() == before


def test_amd_dynamic_top_grows_one_level_at_a_time():
    pt = PageTable("amd-v1-dynamic")
    assert pt.fmt.levels == 3 and pt.pgsize_bitmap == 0xFFF7FFFFFF000
    pt.map(0x5ABCDE8000, 0x100000, 32 * KiB)
    assert pt.walk(0x5ABCDEF123).references == 3
    old_root = pt.root
    pt.map(1 << 40, 1 << 40, 1 << 40)  # a 1T page lives at level 3: mode 4
    assert pt.fmt.levels == 4 and pt.walk((1 << 40) + 5).page_size == 1 << 40
    assert pt.memory.read_u64(pt.root) == 0x6000000000000601 | old_root  # PM_LEVEL_PDE(3, old root)
    before = pt.memory.snapshot()
    with pytest.raises(IommuError):
        pt.map(1 << 40, 0, 4 * KiB)  # overlap: refused before any growth
    assert pt.memory.snapshot() == before
    pt.map(1 << 60, 0x1000, 4 * KiB)  # needs 61 bits: mode 6
    assert pt.fmt.levels == 6 and pt.fmt.top_entries == 128
    w = pt.walk(0x5ABCDEF123)
    assert w.pa == 0x107123 and w.references == 6
    assert pt.unmap(1 << 61, 4 * KiB) == 0
