"""The scalar path of small maps and unmaps agrees with the vectorised visitors, step by step.

Two tables of one format receive the same random sequence of small and large maps, populates
and unmaps: one forced through the vectorised visitors (``small_leaves = 0``), one allowed the
one-entry-at-a-time path. After every step both answered the same (runs, bytes, or the same
error with the same errno and message), hold byte-identical memory (every allocation, every
entry), have the same root and format, and walk the operation's IOVAs to the same result.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import GiB, MiB
from iommu_lab.hardware import formats
from iommu_lab.pagetable import PageTable, PhysicalMemory, UnmapPolicy
from iommu_lab.pagetable.memory import FRAME_SIZE

CATALOGUE = [
    "vtd-ss-3level", "vtd-ss-4level", "vtd-ss-5level",
    "x86-64-4level", "x86-64-5level",
    "amd-v1-3level", "amd-v1-6level", "amd-v1-dynamic",
    "riscv-sv39", "riscv-sv48", "riscv-sv57-napot",
    "arm-lpae-s1-4k-48bit", "arm-lpae-s2-4k-40bit", "arm-lpae-s1-4k-32bit",
    "arm-lpae-s1-16k-47bit", "arm-lpae-s2-64k-52bit",
    "power-tce-4k", "power-tce-64k",
]


def _fmt(name):
    if name == "arm-split":
        return formats.arm_lpae(1, 4096, 48, unmap_policy=UnmapPolicy.SPLIT, name="arm-split")
    return formats.get(name)


def _anchors(f) -> list[int]:
    """IOVAs where collisions and boundaries happen: the window's start, just below a 2 MiB
    and a 1 GiB boundary, the upper canonical half, the far end (growth on AMD)."""
    lo = f.max_format.input_ranges[0].start
    out = [lo, lo + 2 * MiB - 8 * f.pgsizes[0], lo + GiB - 4 * f.pgsizes[0]]
    out = [a for a in out if a <= f.input_ranges[0].last - (64 << f.granule_lg2)]
    if f.sign_extend:
        out.append(f.input_ranges[-1].start)
    top = f.max_format.input_ranges[-1].last
    if top > f.input_ranges[-1].last or top - lo > (1 << 40):
        out.append((top - (1 << 30) + 1) & ~(GiB - 1))
    return out


op = st.tuples(
    st.sampled_from(["map", "map", "map", "unmap", "unmap", "populate"]),
    st.integers(0, 4),  # anchor
    st.one_of(st.just(0), st.integers(0, 40)),  # offset in smallest pages
    st.one_of(st.integers(1, 20), st.sampled_from([-1, -2])),  # pages, or -k: k-th page size
    st.integers(0, 3),  # physical slot
    st.sampled_from(["rw", "r", "w"]),
)


def _args(f, pt, o):
    kind, a, k, n, slot, prot = o
    anchors = _anchors(f)
    m = pt.min_pgsize
    iova = anchors[a % len(anchors)] + k * m
    sizes = [s for s in f.pgsizes if s <= 512 * MiB]
    size = n * m if n > 0 else sizes[min(-n, len(sizes)) - 1]
    if kind == "populate" and n < 0:
        iova &= ~(size - 1)
    pa_room = max(0, f.oas - 31)
    pa = ((slot % (1 << pa_room)) << 30) + (iova & (GiB - 1) & ~(m - 1))
    return kind, iova, pa, size, prot


def _run(pt, kind, iova, pa, size, prot):
    try:
        if kind == "map":
            return pt.map(iova, pa, size, prot)
        if kind == "populate":
            return pt.populate(iova, pa, size, size if size in pt.fmt.leaf_sizes else pt.min_pgsize, prot)
        return pt.unmap(iova, size)
    except (IommuError, ValueError) as e:
        return (type(e).__name__, getattr(e, "errno", None), str(e))


def _pair(f, frames):
    big = min(64 * GiB, (1 << f.oas) - 0x1000_0000)
    out = []
    for small in (0, 16):
        root = PhysicalMemory().frames_for(f.table_bytes(f.top_level))
        size = big if frames is None else (root + frames) * FRAME_SIZE
        pt = PageTable(f, PhysicalMemory(size=size))
        pt.small_leaves = small
        out.append(pt)
    return out


@pytest.mark.parametrize("name", CATALOGUE + ["arm-split"])
@settings(max_examples=25)
@given(ops=st.lists(op, min_size=1, max_size=12), frames=st.one_of(st.none(), st.integers(2, 12)))
def test_small_path_matches_the_vectorised_visitors(name, ops, frames):
    f = _fmt(name)
    general, small = _pair(f, frames)
    for o in ops:
        args = _args(general.fmt, general, o)
        got_general = _run(general, *args)
        got_small = _run(small, *args)
        assert got_small == got_general, (o, args)
        assert small.fmt.name == general.fmt.name and small.root == general.root
        assert small.memory.snapshot() == general.memory.snapshot(), (o, args)
        assert small.memory.allocations() == general.memory.allocations()
        iova, size = args[1], args[3]
        for v in (iova, iova + size - 1):
            if v < 1 << 64:
                a, b = general.walk(v), small.walk(v)
                assert (a.ok, a.pa if a.ok else None, a.fault) == (b.ok, b.pa if b.ok else None, b.fault)


def test_small_path_is_taken_for_one_page():
    pt = PageTable("vtd-ss-4level")
    calls = []
    pt.memory.gather = lambda *a, **k: calls.append(a)  # the vectorised visitors read by gather
    pt.map(0x7F12_3456_7000, 0x1_2345_6000, 4096)
    assert pt.unmap(0x7F12_3456_7000, 4096) == 4096
    assert calls == []


@pytest.mark.parametrize("name", CATALOGUE + ["arm-split", "riscv-sv39-napot"])
def test_entry_kind_depends_only_on_the_kind_mask(name):
    """``classify(raw) == classify(raw & kind_mask)``: the scalar path may memoise on it."""
    f = _fmt(name)
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 1 << 63, size=4000, dtype=np.uint64) | (
        rng.integers(0, 2, size=4000, dtype=np.uint64) << np.uint64(63)
    )
    # Sparse entries too: a few bits set, as real entries are.
    sparse = np.zeros(4000, dtype=np.uint64)
    for _ in range(4):
        sparse |= np.uint64(1) << rng.integers(0, 64, size=4000, dtype=np.uint64)
    for lv in range(f.levels):
        mask = f.rules.kind_mask(f, lv)
        if mask is None:
            continue
        for r in (raw, sparse, sparse | raw & np.uint64(0xFFF)):
            assert np.array_equal(f.rules.classify(f, r, lv), f.rules.classify(f, r & np.uint64(mask), lv))
