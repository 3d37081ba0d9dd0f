"""PTE encodings: the raw values Linux writes, and decoding of raw words per format rules."""

import numpy as np
import pytest

from iommu_lab.core.ranges import KiB, MiB
from iommu_lab.hardware import formats
from iommu_lab.pagetable import EntryKind, Field, FieldTable, Perm


def test_field_table_round_trips_and_refuses_overlaps():
    t = FieldTable([Field("R", 0, 1), Field("W", 1, 1), Field("ADDR", 12, 40)])
    assert t.decode(0x12345003) == {"R": 1, "W": 1, "ADDR": 0x12345}
    assert t.encode(R=1, W=1, ADDR=0x12345) == 0x12345003
    assert t["ADDR"].bits == "51:12" and t["R"].mask == 1
    assert t["ADDR"].get(np.array([0x12345003], dtype=np.uint64))[0] == 0x12345
    with pytest.raises(ValueError):
        FieldTable([Field("A", 0, 4), Field("B", 3, 1)])
    with pytest.raises(ValueError):
        t.encode(R=2)


def test_vtd_ss_encodings():
    f = formats.get("vtd-ss-4level")
    assert f.encode_table(0x10001000, 3) == 0x10001003
    assert f.encode_leaf(0x123456000, 4 * KiB, "rw") == 0x123456003
    assert f.encode_leaf(0x40200000, 2 * MiB, "rw") == 0x40200083
    assert f.encode_leaf(0x1000, 4 * KiB, "r") == 0x1001


def test_vtd_ss_has_no_present_bit():
    f = formats.get("vtd-ss-4level")
    assert f.classify(0x123456000, 0) == EntryKind.EMPTY  # address but R=W=0
    assert f.classify(0x123456002, 0) == EntryKind.LEAF  # write-only is present
    assert f.classify(0x40200083, 1) == EntryKind.LEAF
    assert f.classify(0x40200003, 1) == EntryKind.TABLE
    assert f.classify(0x80 | 3, 3) == EntryKind.RESERVED  # SP in a PML4E
    d = f.decode(0x40200083, 1)
    assert d["SP"] == 1 and d.address == 0x40200000 and d.size == 2 * MiB


def test_x86_encodings():
    f = formats.get("x86-64-4level")
    assert f.encode_leaf(0x1000, 4 * KiB, "rwx") == 0x1067
    assert f.encode_leaf(0x1000, 4 * KiB, "rw") == 0x8000_0000_0000_1067
    assert f.encode_leaf(0x200000, 2 * MiB, "rx") == 0x2000A5
    assert f.encode_table(0x5000, 2) == 0x5027
    assert f.classify(0x5027 | 0x80, 3) == EntryKind.RESERVED
    assert f.decode(0x8000_0000_0000_1067, 0).perm == Perm.READ | Perm.WRITE | Perm.USER


def test_amd_v1_encodings_match_the_reference():
    f = formats.get("amd-v1-3level")
    assert f.encode_table(0x5000, 2) == 0x6000000000005401
    assert f.encode_leaf(0x100000, 32 * KiB, "rw") == 0x7000000000103E01
    assert f.encode_leaf(0x100000, 4 * KiB, "rw") == 0x7000000000100001
    d = f.decode(0x7000000000103E01, 0)
    assert (
        d.kind == EntryKind.LEAF and d.size == 32 * KiB and d.address == 0x100000 and d["NL"] == 7
    )
    assert f.classify(0x6000000000005601, 2) == EntryKind.LEVEL_SKIP  # NL=3 in a level-2 PDE
    assert f.classify(0x6000000000005401, 2) == EntryKind.TABLE


def test_arm_stage1_block_matches_the_reference():
    f = formats.get("arm-lpae-s1-4k-48bit")
    assert f.encode_leaf(0x40200000, 2 * MiB, "rwx") == 0x0000000040200F45
    # read-only, no-exec 4K page: type 0b11, AP_RDONLY, XN
    assert f.encode_leaf(0x1000, 4 * KiB, "r") == 0x0060_0000_0000_1FC7
    assert f.encode_table(0x10001000, 3) == 0x10001003


def test_arm_type_bits_depend_on_the_level():
    f = formats.get("arm-lpae-s1-4k-48bit")
    assert f.classify(0x1003, 0) == EntryKind.LEAF  # L3 0b11 is a page
    assert f.classify(0x1001, 0) == EntryKind.BAD_TYPE  # L3 0b01 is reserved
    assert f.classify(0x1003, 1) == EntryKind.TABLE  # L2 0b11 is a table
    assert f.classify(0x200001, 1) == EntryKind.LEAF  # L2 0b01 is a block
    assert f.classify(0x8000000001, 3) == EntryKind.BAD_TYPE  # no 512G block at L0
    assert f.classify(0x1002, 1) == EntryKind.EMPTY


def test_arm_stage2_encoding_and_permissions():
    f = formats.get("arm-lpae-s2-4k-40bit")
    assert f.encode_leaf(0x1000, 4 * KiB, "rw") == 0x0060_0000_0000_17FF
    assert f.encode_leaf(0x1000, 4 * KiB, "w") & 0xC0 == 0x80  # S2AP can say write-only
    assert f.decode(0x0060_0000_0000_177F, 0).perm & (Perm.READ | Perm.WRITE) == Perm.READ


def test_arm_64k_52bit_oa_packs_high_bits():
    f = formats.arm_lpae(1, 65536, 52, 52)
    raw = f.encode_leaf(0xF_0000_1234_0000, 64 * KiB, "rw")
    assert raw & 0xF000 == 0xF000
    assert f.decode(raw, 0).address == 0xF_0000_1234_0000


def test_arm_16k_res0_address_bits_are_reserved():
    f = formats.get("arm-lpae-s1-16k-48bit")
    assert f.classify(0x4000 | 3, 0) == EntryKind.LEAF
    assert f.classify(0x5000 | 3, 0) == EntryKind.RESERVED


def test_riscv_encodings_and_rules():
    f = formats.get("riscv-sv39")
    assert f.encode_leaf(0x1000, 4 * KiB, "rw") == (1 << 10) | 0xD7
    assert f.encode_table(0x2000, 1) == (2 << 10) | 1
    assert f.classify((1 << 10) | 0x5, 0) == EntryKind.RESERVED  # W without R
    assert f.classify((1 << 10) | 0x3, 1) == EntryKind.MISALIGNED  # 2M leaf, PPN low bits set
    assert f.classify((2 << 10) | 1, 0) == EntryKind.BAD_TYPE  # pointer in the last level
    assert f.classify(1 << 54 | 0x3, 0) == EntryKind.RESERVED


def test_tce_encoding():
    f = formats.get("power-tce-64k")
    assert f.encode_leaf(0x50000, 64 * KiB, "rw") == 0x50003
    assert f.encode_leaf(0x50000, 64 * KiB, "w") == 0x50003  # powernv sets READ with WRITE
    assert f.classify(0x50000, 0) == EntryKind.EMPTY


def test_encode_refuses_unaligned_or_impossible_leaves():
    f = formats.get("vtd-ss-4level")
    with pytest.raises(ValueError):
        f.encode_leaf(0x1000, 2 * MiB)
    with pytest.raises(ValueError):
        f.encode_leaf(0, 8 * KiB)


def test_a_multi_word_entry_keeps_address_fields_in_place_and_refuses_misaligned_ones():
    from iommu_lab.core.bits import ADDRESS, EntryLayout
    from iommu_lab.core.errors import IommuError

    layout = EntryLayout("two words", 16, [Field("P", 0, 1, entry_bits=128),
                                           Field("PTR", 76, 52, "pointer", ADDRESS, 128)])
    raw = layout.encode(P=1, PTR=0x1234_5000)
    assert raw == 1 | (0x12345 << 76) and layout.decode(raw) == {"P": 1, "PTR": 0x1234_5000}
    assert layout.reserved_mask == ((1 << 128) - 1) & ~(1 | (((1 << 52) - 1) << 76))
    with pytest.raises(IommuError, match="EINVAL.*not 0x1000-aligned"):
        layout.encode(PTR=0x1234_5008)


def test_a_64_bit_field_table_still_refuses_a_field_beyond_bit_63():
    with pytest.raises(ValueError, match="does not fit 64 bits"):
        Field("WIDE", 60, 8)


# -- Svnapot 64 KiB leaves (RISC-V privileged spec "Svnapot"; generic_pt's optional RISC-V
#    feature): N = bit 63, ppn[3:0] = 1000b, level 0 only ------------------------------------


def test_riscv_napot_is_off_by_default_and_a_named_variant():
    plain, napot = formats.get("riscv-sv48"), formats.get("riscv-sv48-napot")
    assert not plain.pgsize_bitmap & (64 * KiB) and napot.pgsize_bitmap & (64 * KiB)
    entry = (1 << 63) | (0x1238 << 10) | 0xD7  # N, ppn[3:0] = 1000b, V|R|W|A|D|U
    assert plain.classify(entry, 0) == EntryKind.RESERVED  # no Svnapot: N is reserved
    assert napot.classify(entry, 0) == EntryKind.LEAF
    assert napot.classify((1 << 63) | (0x1234 << 10) | 0xD7, 0) == EntryKind.RESERVED  # ppn[3:0] != 1000b
    assert napot.classify((1 << 63) | (0x1238 << 10) | 0xD7, 1) == EntryKind.RESERVED  # N above level 0


def test_riscv_napot_leaf_encoding_and_walk():
    from iommu_lab.pagetable.table import PageTable

    f = formats.get("riscv-sv39-napot")
    assert f.encode_leaf(0x1230000, 64 * KiB, "rw") == (1 << 63) | (0x1238 << 10) | 0xD7
    assert f.replicas(64 * KiB) == 16
    pt = PageTable(f)
    pt.map(0x4001_0000, 0x1230000, 64 * KiB)
    w = pt.walk(0x4001_f123)
    assert w.ok and w.page_size == 64 * KiB and w.pa == 0x123f123  # base is the PPN with ppn[3:0] cleared
    assert len(w.refs) == 3  # Sv39: levels 2, 1, 0 -- the walk reads one of the 16 replicas
    raws = [pt.walk(0x4001_0000 + i * 4 * KiB).refs[-1].raw for i in range(16)]
    assert len(set(raws)) == 1 and raws[0] >> 63 == 1
    import numpy as np

    assert list(pt.translate(np.array([0x4001_f123, 0x4001_0000])).output) == [0x123f123, 0x1230000]
    pt.unmap(0x4001_0000, 64 * KiB)
    assert not pt.walk(0x4001_8000).ok
