"""The single walker: random maps in every format walk to the expected page, translate == walk,
and the table-fetch seam that nested walks use."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import KiB
from iommu_lab.hardware import formats
from iommu_lab.pagetable import (
    FaultReason,
    PageTable,
    PhysicalMemory,
    TableFetchError,
    UnmapPolicy,
    pgsize_runs,
    pgsize_split,
    translate,
    walk,
)

FORMATS = [
    "vtd-ss-3level",
    "vtd-ss-4level",
    "vtd-ss-5level",
    "x86-64-4level",
    "x86-64-5level",
    "amd-v1-2level",
    "amd-v1-3level",
    "amd-v1-6level",
    "arm-lpae-s1-4k-48bit",
    "arm-lpae-s2-4k-40bit",
    "arm-lpae-s1-16k-48bit",
    "arm-lpae-s2-16k-40bit",
    "arm-lpae-s1-64k-48bit",
    "arm-lpae-s1-64k-52bit",
    "arm-lpae-s2-4k-32bit",
    "riscv-sv39",
    "riscv-sv48",
    "riscv-sv57",
    "power-tce-4k",
    "power-tce-64k",
]


def _space(fmt):
    """(lowest iova, number of bytes) of the part of the input space the test draws from."""
    rng = fmt.input_ranges[-1] if fmt.sign_extend else fmt.input_ranges[0]
    return rng.start, min(rng.size, 1 << 44)


@st.composite
def scenario(draw, fmt):
    sizes = [s for s in fmt.pgsizes if s <= (1 << 32)] or [min(fmt.pgsizes)]
    start, span = _space(fmt)
    limit = 1 << min(fmt.oas - 1, 40)
    small = min(sizes)
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        big = draw(st.sampled_from(sizes))
        nbig = draw(st.integers(0, 2))
        nsmall = draw(st.integers(0 if nbig else 1, 40))
        size = nbig * big + nsmall * small
        slot = draw(st.integers(0, max(0, span // big - 4)))
        skew = draw(st.sampled_from([0, 0, 0, 1, 2, 3])) * small
        iova = start + slot * big + skew
        if draw(st.sampled_from([True, True, True, False])):
            pa = (slot * big) % limit + skew  # same offset in iova and pa: large pages possible
        else:
            pa = draw(st.integers(1, limit // small - 1)) * small
        if iova + size - 1 > start + span - 1 or (pa + size - 1) >> fmt.oas:
            continue
        if sum(c for *_x, c in pgsize_runs(fmt.pgsize_bitmap, iova, pa, size)) > 512:
            continue  # keep each example to a few hundred pages
        ops.append((iova, pa, size))
    return ops


def _check_format(name, ops):
    fmt = formats.get(name)
    pt = PageTable(fmt)
    expected, done = [], []  # pages from the kernel split; op ranges that mapped
    for iova, pa, size in ops:
        overlaps = any(iova <= v + n - 1 and v <= iova + size - 1 for v, n in done)
        before = pt.memory.snapshot()
        if overlaps:
            with pytest.raises(IommuError) as e:
                pt.map(iova, pa, size)
            assert e.value.errno == fmt.map_exists_errno
            assert pt.memory.snapshot() == before
            continue
        pt.map(iova, pa, size)
        done.append((iova, size))
        expected += pgsize_split(pt.pgsize_bitmap, iova, pa, size)
    # every leaf found in the tables is exactly the expected page list
    assert [(m.iova, m.pa, m.size) for m in pt.mappings()] == sorted(expected)
    # every page translates to its address and size (first byte, last byte, middle)
    probes = [(v + off, p + off, s) for v, p, s in expected for off in (0, s - 1, (s // 3) & ~7)]
    pa, fault, size, _lv = pt.translate(
        np.array([a for a, _p, _s in probes], dtype=np.uint64), details=True
    )
    assert not fault.any()
    assert pa.tolist() == [p for _a, p, _s in probes] and size.tolist() == [
        s for _a, _p, s in probes
    ]
    for a, p, s in probes[:: max(1, len(probes) // 30)]:  # and the single walker agrees
        w = pt.walk(a)
        assert (w.pa, w.page_size) == (p, s), str(w)
    # the neighbours of every mapped range fault as not present
    for v, n in done:
        for a in (v - 1, v + n):
            if a in fmt.input_ranges and not any(u <= a <= u + m - 1 for u, m in done):
                w = pt.walk(a)
                assert not w.ok and w.fault.reason is FaultReason.NOT_PRESENT, str(w)
                assert pt.translate(np.array([a], dtype=np.uint64))[1][0]
    # unmapping what was mapped empties the tree
    for v, n in done:
        assert pt.unmap(v, n) == n
    assert pt.mappings() == []


@pytest.mark.parametrize("name", FORMATS)
def test_random_maps_walk_to_the_expected_pages(name):
    fmt = formats.get(name)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=scenario(fmt))
    def run(ops):
        _check_format(name, ops)

    run()


@pytest.mark.parametrize("name", formats.names())
def test_translate_agrees_with_walk_on_random_samples(name):
    fmt = formats.get(name)
    pt = PageTable(fmt)
    start, span = _space(fmt)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    sizes = [s for s in fmt.pgsizes if s <= min(1 << 30, span // 64)] or [min(fmt.pgsizes)]
    for i in range(6):
        size = int(rng.choice(sizes)) * int(rng.integers(1, 3))
        stride = min(1 << 31, span // 8)
        iova = start + (int(rng.integers(0, span // stride - 1)) * stride) + i * size
        try:
            pt.map(iova, (iova - start) % (1 << 40) + (1 << 32), size, prot="r" if i % 2 else "rw")
        except IommuError:
            pass
    leaves = pt.mappings()
    near = [m.iova + int(rng.integers(0, m.size)) for m in leaves for _ in range(20)]
    far = (rng.integers(0, 1 << 63, 300, dtype=np.uint64) | np.uint64(0)).tolist()
    edge = [start, start + span - 1, (1 << 64) - 1, 0]
    iovas = np.array(near + far + edge, dtype=np.uint64)
    for access in (None, "w"):
        pa, fault, size, level = pt.translate(iovas, access=access, details=True)
        for k, a in enumerate(iovas.tolist()):
            w = pt.walk(a, access=access)
            assert w.ok == (not fault[k]), hex(a)
            if w.ok:
                assert (w.pa, w.page_size) == (int(pa[k]), int(size[k]))
            elif w.fault.level is not None:
                assert level[k] == w.fault.level


def test_translate_rejects_bad_arrays():
    pt = PageTable("vtd-ss-4level")
    with pytest.raises(TypeError):
        pt.translate(np.array([1.5]))
    with pytest.raises(ValueError):
        pt.translate(np.array([-1]))
    _pa, fault = pt.translate([0x1000, 1 << 60])
    assert fault.all()


# --------------------------------------------------------------------------- the table-fetch seam
def test_table_hook_sees_every_entry_address_and_records_detail():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x1000, 4 * KiB)
    seen = []

    def hook(addr, level):
        seen.append((addr, level))
        return addr, f"via {level}"

    w = pt.walk(0x1000, table_hook=hook)
    assert w.ok and [lv for _a, lv in seen] == [3, 2, 1, 0]
    assert [a for a, _l in seen] == [s.entry_address for s in w.steps]
    assert [s.via for s in w.steps] == ["via 3", "via 2", "via 1", "via 0"]


def test_table_hook_fault_stops_the_walk():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x1000, 4 * KiB)

    def hook(addr, level):
        if level == 1:
            raise TableFetchError("s2 miss")
        return addr

    w = pt.walk(0x1000, table_hook=hook)
    assert (
        w.fault.reason is FaultReason.TABLE_TRANSLATION
        and w.fault.detail == "s2 miss"
        and w.references == 2
    )


def test_two_dimensional_walk_costs_24_references_for_4_over_4():
    guest = PhysicalMemory(base=0, size=1 << 30, name="guest")
    host = PhysicalMemory(base=0x1_0000_0000, size=1 << 30, name="host")
    s1 = PageTable("arm-lpae-s1-4k-48bit", guest)
    s2 = PageTable("arm-lpae-s2-4k-48bit", host, pgsize_bitmap=0x1000)
    s2.map(0, 0x40_0000_0000, 1 << 22)  # guest RAM 0..4M at host 0x40_0000_0000
    s1.map(0x7F12_3456_7000, 0x20_0000, 4 * KiB)  # IOVA -> IPA 0x200000
    s2_walks = []

    def through_s2(ipa, level):
        w2 = s2.walk(ipa, access="r")
        if not w2.ok:
            raise TableFetchError(w2)
        s2_walks.append(w2)
        return ipa, w2  # the guest table's contents are read by IPA from the guest memory

    w1 = walk(s1.fmt, guest, s1.root, 0x7F12_3456_789A, table_hook=through_s2)
    final = s2.walk(w1.pa)
    assert w1.ok and final.pa == 0x40_0020_089A
    refs = w1.references + sum(s.via.references for s in w1.steps) + final.references
    assert refs == (4 + 1) * (4 + 1) - 1 == 24


def test_translate_vectorised_hook():
    pt = PageTable("vtd-ss-4level")
    pt.map(0x1000, 0x1000, 8 * KiB)
    calls = []

    def hook(addrs, level):
        calls.append(level)
        ok = np.ones(addrs.shape[0], dtype=bool)
        if level == 0:
            ok[:] = addrs % np.uint64(16) == 8  # pretend odd entries miss at stage 2
        return addrs, ok

    pa, fault = translate(
        pt.fmt, pt.memory, pt.root, np.array([0x1000, 0x2000], dtype=np.uint64), table_hook_vec=hook
    )
    assert calls == [3, 2, 1, 0] and fault.tolist() == [False, True] and pa[0] == 0x1000


# --------------------------------------------------------------------------- unmap vs a reference
def _reference_unmap(leaves, lo, hi, policy, bitmap):
    """The unmap rules written over a plain leaf list: (bytes, leaves left)."""
    leaves = sorted(leaves)
    left, total, cursor, stopped = [], 0, lo, False
    for v, p, s in leaves:
        e = v + s - 1
        if stopped or e < cursor or v > hi:
            left.append((v, p, s))
            continue
        if v > cursor:  # a hole before this leaf
            stopped = True
            left.append((v, p, s))
            continue
        head, tail = v < cursor, e > hi
        if (head or tail) and policy is UnmapPolicy.SPLIT:
            if head:
                left += pgsize_split(bitmap, v, p, cursor - v)
            if tail:
                left += pgsize_split(bitmap, hi + 1, p + hi + 1 - v, e - hi)
            total += min(hi, e) - cursor + 1
        elif head or (tail and policy is UnmapPolicy.REFUSE):
            stopped = True
            left.append((v, p, s))
            continue
        else:
            total += s
        cursor = e + 1
        if cursor > hi:
            stopped = True
    return total, sorted(left)  # running off the last leaf is a hole too: unmap stops there


UNMAP_FORMATS = {
    "vtd-ss-4level": lambda: formats.get("vtd-ss-4level"),
    "amd-v1-3level": lambda: formats.get("amd-v1-3level"),
    "arm-refuse": lambda: formats.get("arm-lpae-s1-4k-48bit"),
    "arm-split": lambda: formats.arm_lpae(1, 4096, 48, unmap_policy=UnmapPolicy.SPLIT),
    "riscv-sv48": lambda: formats.get("riscv-sv48"),
}


@pytest.mark.parametrize("label", list(UNMAP_FORMATS))
def test_unmap_matches_the_reference_rules(label):
    fmt = UNMAP_FORMATS[label]()
    sizes = [s for s in fmt.pgsizes if s <= 1 << 30]

    @settings(max_examples=40, deadline=None)
    @given(
        spans=st.lists(
            st.tuples(st.sampled_from(sizes), st.integers(1, 3), st.integers(0, 2)),
            min_size=1,
            max_size=3,
        ),
        cut=st.tuples(st.integers(0, 1 << 19), st.integers(1, 1 << 19)),
    )
    def run(spans, cut):
        pt = PageTable(fmt)
        leaves, at = [], 0
        for size, count, gap in spans:
            at = -(-at // size) * size + gap * size
            pt.map(at, at + (1 << 32), size * count)
            leaves += pgsize_split(pt.pgsize_bitmap, at, at + (1 << 32), size * count)
            at += size * count
        lo = cut[0] * 4096 % max(at, 4096)
        hi = min(lo + cut[1] * 4096, (1 << 48) - 1) - 1
        want_bytes, want_left = _reference_unmap(leaves, lo, hi, fmt.unmap_policy, pt.pgsize_bitmap)
        assert pt.unmap(lo, hi - lo + 1) == want_bytes
        assert [(m.iova, m.pa, m.size) for m in pt.mappings()] == want_left

    run()
