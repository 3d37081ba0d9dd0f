"""Format descriptors: geometry computed from a few numbers matches the kernel and the reference."""

import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import GiB, IovaRange, KiB, MiB, TiB
from iommu_lab.hardware import formats

REQUIRED = (
    ["vtd-ss-3level", "vtd-ss-4level", "vtd-ss-5level", "x86-64-4level", "x86-64-5level"]
    + [f"amd-v1-{m}level" for m in range(1, 7)]
    + [
        "arm-lpae-s1-4k-48bit",
        "arm-lpae-s2-4k-48bit",
        "arm-lpae-s2-4k-40bit",
        "arm-lpae-s1-16k-48bit",
        "arm-lpae-s2-16k-48bit",
        "arm-lpae-s1-64k-48bit",
        "arm-lpae-s2-64k-48bit",
    ]
    + ["riscv-sv39", "riscv-sv48", "riscv-sv57", "power-tce-4k", "power-tce-64k"]
)


@pytest.mark.parametrize("name", REQUIRED)
def test_required_names_are_registered_and_describe_themselves(name):
    f = formats.get(name)
    assert name in formats.names()
    assert f.name == name
    assert f.levels == len(f.index_bits)
    assert f.pgsize_bitmap & ~f.leaf_bitmap == 0
    assert name in f.describe()
    assert len(f.to_dataframe()) == f.levels


def test_unknown_name_lists_known_names():
    with pytest.raises(IommuError) as e:
        formats.get("vtd-ss-6level")
    assert e.value.errno == "EINVAL"
    assert "vtd-ss-4level" in str(e.value) and "riscv-sv39" in str(e.value)


def test_unregistered_arm_name_is_built_by_the_function():
    f = formats.get("arm-lpae-s1-4k-41bit")
    assert (f.levels, f.index_bits) == (4, (2, 9, 9, 9))


@pytest.mark.parametrize(
    "levels,width,bits", [(3, 39, (9, 9, 9)), (4, 48, (9, 9, 9, 9)), (5, 57, (9,) * 5)]
)
def test_vtd_ss_levels_follow_agaw(levels, width, bits):
    f = formats.get(f"vtd-ss-{levels}level")
    assert f.index_bits == bits and f.va_bits == width
    assert f.aperture == IovaRange(0, (1 << width) - 1)
    assert f.leaf_sizes == (4 * KiB, 2 * MiB, 1 * GiB)
    assert f.pgsize_bitmap == 0x40201000
    assert f.stage == 2


def test_vtd_ss_narrow_gaw_keeps_four_levels_but_shrinks_the_aperture():
    f = formats.vtd_ss(4, gaw=46)
    assert f.levels == 4 and f.aperture.last == (1 << 46) - 1


def test_vtd_worked_walk_indices():
    f = formats.get("vtd-ss-4level")
    assert f.indices(0x7F123456789A) == (254, 72, 418, 359)
    assert [f.iova_bits(lv) for lv in (3, 2, 1, 0)] == [(47, 39), (38, 30), (29, 21), (20, 12)]
    assert [f.level_name(lv) for lv in (3, 2, 1, 0)] == ["SL-PML4E", "SL-PDPE", "SL-PDE", "SL-PTE"]


def test_x86_five_level_worked_indices():
    f = formats.get("x86-64-5level")
    assert f.indices(0xABCDEF01234567) == (171, 411, 444, 9, 52)
    assert f.sign_extend and f.aperture.last == (1 << 56) - 1


def test_x86_canonical_halves():
    f = formats.get("x86-64-4level")
    assert f.is_canonical(0x7FFF_FFFF_FFFF) and f.is_canonical(0xFFFF_8000_0000_0000)
    assert not f.is_canonical(0x8000_0000_0000)
    assert f.index(3, 0xFFFF_8000_0000_0000) == 256
    assert len(f.input_ranges) == 2


@pytest.mark.parametrize(
    "mode,va,top", [(1, 21, 9), (2, 30, 9), (3, 39, 9), (4, 48, 9), (5, 57, 9), (6, 64, 7)]
)
def test_amd_v1_modes(mode, va, top):
    f = formats.get(f"amd-v1-{mode}level")
    assert f.levels == mode and f.va_bits == va and f.index_bits[0] == top
    assert 1 << 39 not in f.leaf_sizes  # 512G excluded
    assert f.pgsize_bitmap & (1 << 39) == 0


def test_amd_v1_sizes_per_level_and_top_cannot_hold_leaves():
    f = formats.get("amd-v1-6level")
    assert f.leaf_lg2s(0) == tuple(range(12, 21))
    assert f.leaf_lg2s(3) == tuple(range(40, 48))  # 1T..128T, 512G removed
    assert f.leaf_lg2s(4) == (48, 49, 50, 51)
    assert f.leaf_lg2s(5) == ()
    assert f.pgsize_bitmap == 0xFFF7FFFFFF000


def test_amd_worked_indices():
    f = formats.get("amd-v1-3level")
    assert f.indices(0x5ABCDEF123) == (362, 486, 495)
    assert f.level_for_size(32 * KiB) == 0 and f.replicas(32 * KiB) == 8
    assert f.level_for_size(4 * MiB) == 1 and f.replicas(4 * MiB) == 2


# granule, ias, start level, pgd entries, levels — the reference's worked geometry table
@pytest.mark.parametrize(
    "granule,ias,start,pgd,levels",
    [
        (4096, 48, 0, 512, 4),
        (4096, 39, 1, 512, 3),
        (4096, 32, 1, 4, 3),
        (16384, 48, 0, 2, 4),
        (16384, 47, 1, 2048, 3),
        (16384, 36, 2, 2048, 2),
        (65536, 48, 1, 64, 3),
        (65536, 52, 1, 1024, 3),
        (65536, 42, 2, 8192, 2),
    ],
)
def test_arm_stage1_geometry(granule, ias, start, pgd, levels):
    f = formats.arm_lpae(
        stage=1, granule=granule, ias=ias, oas=max(ias, 48) if granule == 65536 else 48
    )
    assert (4 - f.levels, f.top_entries, f.levels) == (start, pgd, levels)
    assert f.level_name(f.top_level) == f"L{start}"


def test_arm_leaf_sizes_per_granule():
    assert formats.arm_lpae(1, 4096, 48).leaf_sizes == (4 * KiB, 2 * MiB, 1 * GiB)
    assert formats.arm_lpae(1, 16384, 48).leaf_sizes == (16 * KiB, 32 * MiB)
    assert formats.arm_lpae(1, 65536, 48).leaf_sizes == (64 * KiB, 512 * MiB)
    assert formats.arm_lpae(1, 65536, 52, 52).leaf_sizes == (64 * KiB, 512 * MiB, 4 * TiB)


def test_arm_s2_ias40_oas40_concatenates_two_level1_tables():
    f = formats.get("arm-lpae-s2-4k-40bit")
    assert f.levels == 3 and f.top_entries == 1024 and f.table_bytes(f.top_level) == 8 * KiB
    assert f.level_name(f.top_level) == "L1"
    # 0xabcdef1234: L1 index 687 = table 1, entry 175
    assert f.index(2, 0xABCDEF1234) == 687 and divmod(687, 512) == (1, 175)


def test_arm_s2_ias40_oas44_concatenates_only_under_the_old_rule():
    new = formats.arm_lpae(stage=2, granule=4096, ias=40, oas=44)
    old = formats.arm_lpae(stage=2, granule=4096, ias=40, oas=44, concat="opportunistic")
    assert (new.levels, new.top_entries) == (4, 2)
    assert (old.levels, old.top_entries) == (3, 1024)


def test_arm_s2_mandatory_concatenation_cases():
    assert formats.arm_lpae(2, 4096, 42, 42).top_entries == 8 * 512
    assert formats.arm_lpae(2, 16384, 48, 48).top_entries == 2 * 2048
    assert formats.arm_lpae(2, 16384, 40, 40).top_entries == 16 * 2048
    with pytest.raises(ValueError, match="16"):
        formats.arm_lpae(2, 4096, 44, 40)  # would need 32 tables


def test_arm_refuses_widths_the_kernel_refuses():
    with pytest.raises(ValueError):
        formats.arm_lpae(1, 4096, 52)
    with pytest.raises(ValueError):
        formats.arm_lpae(1, 2048, 48)


def test_riscv_modes_and_bitmaps():
    assert formats.get("riscv-sv39").pgsize_bitmap == 0x40201000
    assert formats.get("riscv-sv48").pgsize_bitmap == 0x8040201000
    assert formats.get("riscv-sv57").levels == 5
    assert formats.get("riscv-sv39").aperture.last == (1 << 38) - 1


def test_power_tce_is_one_flat_level():
    f = formats.power_tce(16, window_bits=40, base=1 << 59)
    assert f.levels == 1 and f.index_bits == (24,)
    assert f.index(0, (1 << 59) + 0x123456789A) == 0x123456
    assert f.pgsizes == (64 * KiB,)
    assert formats.get("power-tce-4k").aperture == IovaRange(0, (1 << 31) - 1)


def test_radix_invariant_levels_cover_the_input_width_exactly():
    # generic_pt kunit test_table_radix: contiguous, non-overlapping bit ranges whose union is the VA width
    for name in REQUIRED:
        f = formats.get(name)
        lo = f.granule_lg2
        for lv in range(f.levels):
            hi, low = f.iova_bits(lv)
            assert low == lo
            lo = hi + 1
        assert lo == f.va_bits or (f.family == "vtd-ss" and lo >= f.va_bits)
