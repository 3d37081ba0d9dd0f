"""One suite over every format the registry can produce, as generic_pt's kunit suite runs over
every format: map, unmap, walk, translate and the census agree; every entry kind round-trips
through decode and encode; level names come from the descriptor."""

import numpy as np
import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.core.faults import FaultKind, FaultReason
from iommu_lab.core.perm import Perm
from iommu_lab.hardware import formats
from iommu_lab.hardware.formats import EntryKind, UnmapPolicy
from iommu_lab.pagetable import PageTable, table_tree

EXTRA = {
    "arm-lpae-s2-64k-52bit-oas52": lambda: formats.arm_lpae(2, 65536, 52, 52),
    "arm-lpae-s1-4k-48bit-split": lambda: formats.arm_lpae(1, 4096, 48, unmap_policy=UnmapPolicy.SPLIT),
    "arm-lpae-s2-4k-48bit-opportunistic": lambda: formats.arm_lpae(2, 4096, 48, 40, concat="opportunistic"),
    "vtd-ss-4level-gaw46": lambda: formats.vtd_ss(4, gaw=46),
    "x86-64-4level-no-sign-extend": lambda: formats.x86_64(4, sign_extend=False),
}
ALL = formats.names() + list(EXTRA)


def fmt_of(name):
    return EXTRA[name]() if name in EXTRA else formats.get(name)


def placements(f):
    """``(iova, pa, size)`` for each advertised page size that fits the input range."""
    out = []
    rng = f.max_format.input_ranges[0]
    for size in f.pgsizes:
        iova = ((rng.start + size - 1) // size + 1) * size
        pa = size * (3 if size < 1 << 40 else 1)
        if iova + size - 1 <= rng.last and pa + size - 1 < 1 << f.oas:
            out.append((iova, pa, size))
    return out


@pytest.mark.parametrize("name", ALL)
def test_level_names_come_from_the_descriptor(name):
    f = fmt_of(name)
    names = [f.level_name(lv) for lv in range(f.levels)]
    assert all(names) and len(set(names)) == f.levels
    iova, pa, size = placements(f)[0]
    pt = PageTable(f)
    pt.map(iova, pa, size)
    w = pt.walk(iova)
    assert [r.name for r in w.refs] == [f.level_name(r.level) for r in w.refs]
    assert [r.entry.level_name for r in w.refs] == [r.name for r in w.refs]
    assert all(r.stage == f.stage and r.address == r.read_address for r in w.refs)
    assert [t.name for t in pt.tables] == [f.level_name(t.level) for t in pt.tables]


@pytest.mark.parametrize("name", ALL)
def test_map_walk_translate_census_and_unmap_agree_for_every_page_size(name):
    f = fmt_of(name)
    for iova, pa, size in placements(f):
        pt = PageTable(f)
        pt.map(iova, pa, size)
        offs = [0, size // 2 + 8, size - 8]
        for o in offs:
            w = pt.walk(iova + o, access="r")
            assert w.ok and w.output == w.pa == pa + o and w.page_size == size, (size, w)
            assert w.fault is None and len(w.refs) == w.references
        batch = pt.translate(np.array([iova + o for o in offs] + [iova + size], dtype=np.uint64), paths=True)
        assert batch.output[:3].tolist() == [pa + o for o in offs]
        assert batch.ok.tolist() == [True, True, True, False]
        assert batch.size[:3].tolist() == [size] * 3
        tree = table_tree(pt)
        assert tree.mix() == {size: size} and tree.leaves == 1
        assert len(tree) == len(pt.tables) and tree.table_bytes == pt.table_bytes
        assert [(m.iova, m.pa, m.size) for m in pt.mappings()] == [(iova, pa, size)]
        with pytest.raises(IommuError) as e:
            pt.map(iova, pa, size)
        assert e.value.errno == f.map_exists_errno
        assert pt.unmap(iova, size) == size
        w = pt.walk(iova)
        assert not w.ok and w.fault.reason is FaultReason.NOT_PRESENT and w.output is None
        assert table_tree(pt).leaves == 0 and pt.mappings() == []


@pytest.mark.parametrize("name", ALL)
def test_translate_agrees_with_walk_over_a_mixed_table(name):
    f = fmt_of(name)
    pt = PageTable(f)
    spots = placements(f)[:3]
    for k, (iova, pa, size) in enumerate(spots):
        if k and spots[k - 1][0] + spots[k - 1][2] > iova:
            continue
        pt.map(iova, pa, size, prot="r" if k % 2 else "rw")
    rng = np.random.default_rng(7)
    probes = [iova + int(rng.integers(0, size)) & ~7 for iova, _pa, size in spots]
    probes += [spots[0][0] - (1 << f.granule_lg2), f.max_format.input_ranges[0].start]
    arr = np.array(probes, dtype=np.uint64)
    for access in (None, "w"):
        batch = pt.translate(arr, access=access)
        pa, fault = batch  # the batch unpacks as its two arrays
        for i, v in enumerate(probes):
            w = pt.walk(v, access=access)
            assert (not fault[i]) == w.ok and (int(pa[i]) if w.ok else None) == w.output


@pytest.mark.parametrize("name", ALL)
def test_every_entry_kind_round_trips_through_decode_and_encode(name):
    f = fmt_of(name)
    for level in range(f.levels):
        assert f.decode(0, level).kind is EntryKind.EMPTY
        assert f.decode(0, level).fault is FaultReason.NOT_PRESENT
        for lg2 in f.leaf_lg2s(level):
            size = 1 << lg2
            pa = size * (5 if lg2 < 45 else 1)
            if pa + size > 1 << f.oas:
                continue
            for prot in ("r", "rw", "rwx"):
                raw = f.encode_leaf(pa, size, prot, level=level)
                d = f.decode(raw, level)
                assert d.kind is EntryKind.LEAF and d.fault is None
                assert (d.address, d.size, d.level_name) == (pa, size, f.level_name(level))
                assert Perm.parse(prot) & Perm.RW & ~d.perm == Perm.NONE
                assert f.encode_leaf(d.address, d.size, d.perm, level=level) == raw
                assert f.fields(level).decode(raw) == d.fields
        if level > 0 and not f.linear:
            table_pa = 0x1234 << f.granule_lg2
            raw = f.encode_table(table_pa, level)
            d = f.decode(raw, level)
            assert d.kind is EntryKind.TABLE and d.address == table_pa and d.fault is None
            assert f.encode_table(d.address, level) == raw


@pytest.mark.parametrize("name", ALL)
def test_every_stopping_kind_has_a_fault_reason_with_a_vendor_neutral_kind(name):
    f = fmt_of(name)
    for kind in EntryKind:
        reason = f.fault_reason(kind)
        if kind in (EntryKind.TABLE, EntryKind.LEAF):
            assert reason is None
        else:
            assert isinstance(reason.kind, FaultKind)


def test_a_type_the_level_cannot_hold_is_a_reserved_bit_fault_on_x86_style_formats_only():
    assert formats.get("x86-64-4level").fault_reason(EntryKind.BAD_TYPE).kind is FaultKind.RESERVED
    assert formats.get("vtd-ss-4level").fault_reason(EntryKind.BAD_TYPE).kind is FaultKind.RESERVED
    assert formats.get("amd-v1-6level").fault_reason(EntryKind.BAD_TYPE).kind is FaultKind.RESERVED
    assert formats.get("arm-lpae-s1-4k-48bit").fault_reason(EntryKind.BAD_TYPE) is FaultReason.INVALID_ENTRY


def test_a_leaf_in_the_amd_mode_6_top_faults_as_reserved_bits():
    f = formats.get("amd-v1-6level")
    d = f.decode(f.encode_leaf(0, 1 << 48, level=4) | 1, 5)
    assert d.kind is EntryKind.BAD_TYPE and d.fault is FaultReason.RESERVED_BITS


def test_feature_flags_replace_family_tests():
    assert formats.get("power-tce-4k").linear and not formats.get("vtd-ss-4level").linear
    assert not formats.get("amd-v1-3level").fixed_leaf_size and formats.get("x86-64-4level").fixed_leaf_size
    assert formats.get("amd-v1-dynamic").dynamic_top and not formats.get("amd-v1-3level").dynamic_top


def test_level_names_are_the_specifications():
    assert [formats.get("amd-v1-6level").level_name(lv) for lv in range(6)] == ["Level 1", "Level 2", "Level 3", "Level 4", "Level 5", "Level 6"]
    assert [formats.get("x86-64-5level").level_name(lv) for lv in range(5)] == ["PTE", "PDE", "PDPE", "PML4E", "PML5E"]
    assert formats.get("vtd-ss-5level").level_name(4) == "SL-PML5E"
    assert formats.get("arm-lpae-s1-64k-48bit").level_name(2) == "L1"  # start level 1
    assert formats.get("riscv-sv39").level_name(2) == "level 2"
    assert formats.get("power-tce-4k").level_name(0) == "TCE"
