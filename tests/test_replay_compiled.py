"""The compiled cache loop against the step engine, its oracle: access by access and in every
counter, for every replacement policy (RANDOM included: both draw victims from one xorshift
stream), strict and lazy flushing, several domains and PASIDs, small pieces, and nesting."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommu_lab.dma.cache import Cache, CacheConfig, XorShift
from iommu_lab.dma.caches import Caches
from iommu_lab.dma.engine import ReplayEngine
from iommu_lab.dma.iova import FlushPolicy
from iommu_lab.dma.replay import FlushQueue, replay
from iommu_lab.dma.targets import as_target
from iommu_lab.dma.trace import Trace
from iommu_lab.nesting.nested import Nested
from iommu_lab.pagetable.table import PageTable

K4, M2 = 0x1000, 0x20_0000
BASE = 0x1_0000_0000
GIOVA = 0x4000_0000
COLS = ["row", "t", "pasid", "iova", "write", "hit", "refs", "s2_refs", "fault", "page_size"]


def cfg(entries, ways, repl):
    ok = entries and ways and entries % ways == 0 and (entries // ways) & (entries // ways - 1) == 0
    return CacheConfig(entries, ways=ways if ok else None, replacement=repl)


caches_st = st.builds(
    lambda e, ways, r1, r2, l1, l2, e2: Caches(
        iotlb=cfg(e, ways, r1),
        psc={1: cfg(l1, 2, r2), 2: CacheConfig(l2, replacement=r1), 3: CacheConfig(1)},
        stage2_tlb=cfg(e2, 2, r2),
        stage2_psc={1: CacheConfig(l1, replacement=r2), 2: CacheConfig(l2)},
    ),
    st.sampled_from([0, 1, 2, 4, 8]),
    st.sampled_from([None, 1, 2]),
    st.sampled_from(["lru", "fifo", "random"]),
    st.sampled_from(["lru", "fifo", "random"]),
    st.sampled_from([0, 1, 4]),
    st.sampled_from([0, 2]),
    st.sampled_from([0, 2, 8]),
)


@st.composite
def single_stage_traces(draw):
    """Two devices, PASIDs or none, maps and unmaps between DMA, time gaps for lazy timers."""
    rows = [{"t": 0, "op": "map", "iova": BASE, "length": 16 * K4, "pa": 0x4000_0000, "device": "nic0"}]
    mapped, t = set(range(16)), 0
    for _ in range(draw(st.integers(1, 50))):
        t += draw(st.integers(0, 4))
        dev = draw(st.sampled_from(["nic0", "nvme0"]))
        kind = draw(st.sampled_from(["read", "read", "write", "unmap", "map"]))
        p = draw(st.integers(0, 17))
        if kind == "unmap" and p in mapped:
            rows.append({"t": t, "op": "unmap", "iova": BASE + p * K4, "length": K4, "device": dev})
            mapped.discard(p)
        elif kind == "map" and p not in mapped and p < 16:
            rows.append({"t": t, "op": "map", "iova": BASE + p * K4, "length": K4, "pa": 0x4000_0000 + p * K4,
                         "device": dev})
            mapped.add(p)
        elif kind in ("read", "write"):
            rows.append({"t": t, "op": kind, "iova": BASE + p * K4 + draw(st.integers(0, 0xFFF)),
                         "length": draw(st.integers(1, 0x3800)), "device": dev,
                         "pasid": draw(st.sampled_from([None, 1, 7]))})
    return Trace.from_records(rows, name="drawn")


@st.composite
def nested_traces(draw):
    rows, mapped, t, host = [{"t": 0, "op": "map", "iova": GIOVA, "length": 32 * K4, "pa": 0x10_0000}], set(range(32)), 0, False
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["read", "read", "write", "unmap", "map", "host"]))
        p = draw(st.integers(0, 40))
        t += draw(st.integers(0, 4))
        if kind == "unmap" and p in mapped and not host:
            rows.append({"t": t, "op": "unmap", "iova": GIOVA + p * K4, "length": K4})
            mapped.discard(p)
        elif kind == "map" and p not in mapped and p < 32 and not host:
            rows.append({"t": t, "op": "map", "iova": GIOVA + p * K4, "length": K4, "pa": 0x10_0000 + p * K4})
            mapped.add(p)
        elif kind == "host" and not host:
            host = True
            rows.append({"t": t, "op": "unmap", "iova": draw(st.sampled_from([0, 0x200_0000])), "length": M2,
                         "stage": 2})
        elif kind in ("read", "write"):
            rows.append({"t": t, "op": kind, "iova": GIOVA + p * K4 + 8, "length": draw(st.integers(1, 0x2000))})
    return Trace.from_records(rows, name="nested")


def nested_pair():
    return Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=64 << 20, backing="eager")


def agree(a, b):
    assert a.accesses[COLS].equals(b.accesses[COLS])
    assert a.summary.equals(b.summary)
    assert a.cache_stats.equals(b.cache_stats)
    assert a.events.equals(b.events)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single_stage_traces(), caches_st, st.sampled_from(["strict", "lazy"]), st.sampled_from(["per-device", "shared"]),
       st.sampled_from([0x1000, 0x201000]), st.integers(0, 3))
def test_compiled_agrees_with_step_access_by_access(tr, caches, policy, domains, pgsizes, seed):
    pt = PageTable("vtd-ss-4level", pgsize_bitmap=pgsizes)
    kw = dict(policy=policy, flush_queue=FlushQueue(2, 5), domains=domains, seed=seed)
    agree(replay(tr, pt, caches, engine="compiled", **kw), replay(tr, pt, caches, engine="step", **kw))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested_traces(), caches_st, st.sampled_from(["strict", "lazy"]), st.integers(0, 3))
def test_nested_compiled_agrees_with_step_access_by_access(tr, caches, policy, seed):
    n = nested_pair()
    kw = dict(policy=policy, flush_queue=FlushQueue(2, 5), seed=seed)
    agree(replay(tr, n, caches, engine="compiled", **kw), replay(tr, n, caches, engine="step", **kw))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single_stage_traces(), caches_st, st.sampled_from(["strict", "lazy"]), st.integers(1, 7))
def test_pieces_of_any_size_give_the_same_replay(tr, caches, policy, piece):
    """Splitting the accesses into pieces (even of one access) changes nothing measured."""
    pt = PageTable("vtd-ss-4level")
    results = []
    for size in (piece, 1 << 20):
        eng = ReplayEngine(as_target(copy.deepcopy(pt)), caches, policy=FlushPolicy.parse(policy),
                           flush_queue=FlushQueue(2, 5), piece=size)
        eng.run(tr.frame)
        results.append((eng.accesses_frame(), eng.summary("x"), eng.cache_stats(), eng.events_frame()))
    (a1, s1, c1, e1), (a2, s2, c2, e2) = results
    assert a1.equals(a2) and s1.equals(s2) and c1.equals(c2) and e1.equals(e2)


def test_random_replacement_draws_the_same_victims_in_both_engines():
    rows = [{"t": 0, "op": "map", "iova": BASE, "length": 64 * K4, "pa": 0x4000_0000}]
    order = np.random.default_rng(5).integers(0, 64, 400)
    rows += [{"t": i + 1, "op": "read", "iova": BASE + int(p) * K4, "length": 8} for i, p in enumerate(order)]
    tr = Trace.from_records(rows)
    c = Caches(iotlb=CacheConfig(16, ways=4, replacement="random"))
    for seed in (0, 1, 99):
        a = replay(tr, PageTable("vtd-ss-4level"), c, seed=seed)
        b = replay(tr, PageTable("vtd-ss-4level"), c, seed=seed, engine="step")
        assert a.accesses["hit"].equals(b.accesses["hit"])
    hits = {replay(tr, PageTable("vtd-ss-4level"), c, seed=s).accesses["hit"].sum() for s in range(6)}
    assert len(hits) > 1  # the seed matters


def test_xorshift_is_splitmix_seeded_and_never_stuck_at_zero():
    g = XorShift(0)
    draws = [g.below(1 << 32) for _ in range(4)]
    assert len(set(draws)) == 4
    assert XorShift(0).below(97) == XorShift(0).below(97)
    cache = Cache(CacheConfig(4, replacement="random"), seed=3)
    for k in range(10):
        cache.fill(k, k)
    assert len(cache) == 4 and cache.evictions == 6


def test_a_fully_associative_cache_of_thousands_of_entries_agrees_too():
    rows = [{"t": 0, "op": "map", "iova": BASE, "length": 4096 * K4, "pa": 0x4000_0000}]
    order = np.random.default_rng(1).integers(0, 4096, 3000)
    rows += [{"t": 1, "op": "write", "iova": BASE + int(p) * K4, "length": 8} for p in order]
    tr = Trace.from_records(rows)
    c = Caches(iotlb=CacheConfig(2048), psc={1: CacheConfig(512, ways=8, replacement="fifo")})
    agree(replay(tr, PageTable("vtd-ss-4level"), c), replay(tr, PageTable("vtd-ss-4level"), c, engine="step"))


def test_addresses_above_bit_63_fault_in_both_engines():
    rows = [{"t": 0, "op": "map", "iova": BASE, "length": K4, "pa": 0x4000_0000},
            {"t": 1, "op": "read", "iova": (1 << 64) - 0x2000, "length": 0x2000},
            {"t": 2, "op": "read", "iova": BASE, "length": 8}]
    tr = Trace.from_records(rows)
    c = Caches.for_platform("intel-vtd-48")
    a, b = replay(tr, PageTable("vtd-ss-4level"), c), replay(tr, PageTable("vtd-ss-4level"), c, engine="step")
    agree(a, b)
    assert a.accesses["fault"].tolist() == [True, True, False]


@pytest.mark.parametrize("engine", ["compiled", "fast", "step"])
def test_every_engine_is_selectable_by_name(engine):
    tr = Trace.from_records([{"t": 0, "op": "map", "iova": BASE, "length": K4, "pa": 0},
                             {"t": 1, "op": "read", "iova": BASE, "length": 8}])
    r = replay(tr, PageTable("vtd-ss-4level"), engine=engine)
    assert r.engine.value == engine and r.summary["walks"] == 1


def test_auto_picks_an_engine_that_gives_the_same_answer():
    tr = Trace.from_records([{"t": 0, "op": "map", "iova": BASE, "length": 4 * K4, "pa": 0},
                             {"t": 1, "op": "read", "iova": BASE, "length": 3 * K4}])
    auto = replay(tr, PageTable("vtd-ss-4level"))
    assert auto.engine.value in ("compiled", "fast")
    agree(auto, replay(tr, PageTable("vtd-ss-4level"), engine="step"))
