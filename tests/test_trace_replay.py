"""Replaying DMA traces through the IOTLB and paging-structure caches.

Small traces with hit/miss sequences worked out by hand, the invariants every replay must keep,
the invalidation rules (strict, lazy flush queue, stage-2 changes) and the agreement of the
vectorised and the step-by-step engines.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommu_lab.core.errors import IommuError
from iommu_lab.dma.caches import CacheConfig, Caches
from iommu_lab.dma.replay import FlushQueue, replay, split_accesses
from iommu_lab.dma.trace import Trace
from iommu_lab.nesting.nested import Nested
from iommu_lab.pagetable.table import PageTable

K4, M2 = 0x1000, 0x20_0000
BASE = 0x1_0000_0000


def trace_of(*rows, name="t"):
    """Rows as (op, iova, length[, pa[, stage]]); times 0, 1, 2, ... unless given as 't'."""
    recs = []
    for i, r in enumerate(rows):
        if isinstance(r, dict):
            recs.append({"t": i, "pa": 0, "stage": 1, **r})
            continue
        op, iova, length, *rest = r
        d = {"t": i, "op": op, "iova": iova, "length": length, "pa": 0, "stage": 1}
        if rest:
            d["pa"] = rest[0]
        if len(rest) > 1:
            d["stage"] = rest[1]
        recs.append(d)
    return Trace.from_records(recs, name=name)


def iotlb_only(entries, replacement="lru", ways=None):
    return Caches(iotlb=CacheConfig(entries, ways=ways, replacement=replacement))


def page(i):
    return BASE + i * K4


MAP16 = ("map", BASE, 16 * K4, 0x4000_0000)


# -- hand-computed sequences --------------------------------------------------------------------


def test_lru_capacity_two_over_a_b_a_c_b_a():
    # LRU, 2 entries, fully associative. A miss [A]; B miss [A B]; A hit [B A]; C miss evicts B
    # [A C]; B miss evicts A [C B]; A miss evicts C [B A].
    A, B, C = page(0), page(1), page(2)
    tr = trace_of(MAP16, *[("read", x, 64) for x in (A, B, A, C, B, A)])
    r = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(2))
    assert r.accesses["hit"].tolist() == [False, False, True, False, False, False]
    assert r.accesses["refs"].tolist() == [4, 4, 0, 4, 4, 4]  # no PSC: every miss walks 4 levels
    assert r.summary["iotlb_hits"] == 1 and r.summary["walks"] == 5


def test_fifo_capacity_two_over_a_b_a_c_b_a():
    # FIFO, 2 entries. A miss [A]; B miss [A B]; A hit, order unchanged [A B]; C miss evicts A
    # (first in) [B C]; B hit [B C]; A miss evicts B [C A].
    A, B, C = page(0), page(1), page(2)
    tr = trace_of(MAP16, *[("read", x, 64) for x in (A, B, A, C, B, A)])
    r = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(2, "fifo"))
    assert r.accesses["hit"].tolist() == [False, False, True, False, True, False]


def test_lru_cycle_one_longer_than_the_cache_always_misses():
    # The classic LRU pathology: cycling over capacity + 1 pages evicts each just before reuse.
    tr = trace_of(MAP16, *[("read", page(i % 5), 8) for i in range(20)])
    r = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(4))
    assert not r.accesses["hit"].any()
    r = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(5))
    assert r.accesses["hit"].tolist() == [False] * 5 + [True] * 15


def test_two_way_sets_evict_only_within_their_set():
    # 4 entries, 2 ways -> 2 sets by page-number parity. Pages 0, 2, 4 share set 0; page 1 is
    # alone in set 1 and survives the thrashing of set 0.
    seq = [0, 1, 2, 4, 0, 1]
    tr = trace_of(MAP16, *[("read", page(i), 8) for i in seq])
    r = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(4, ways=2))
    # 0 miss; 1 miss; 2 miss; 4 miss evicts 0 (set 0 LRU); 0 miss; 1 hit
    assert r.accesses["hit"].tolist() == [False, False, False, False, False, True]
    page_base = (BASE >> 12) & 1
    assert page_base == 0  # the set arithmetic above assumes BASE's page number is even


def test_paging_structure_cache_cuts_the_walk_to_the_leaf():
    # The PDE cache (level 1) holds the pointer to the leaf table of a 2 MiB region: a second
    # page of the same region reads only its leaf PTE.
    c = Caches(iotlb=CacheConfig(0), psc={1: CacheConfig(4), 2: CacheConfig(4), 3: CacheConfig(4)})
    tr = trace_of(MAP16, ("read", page(0), 8), ("read", page(1), 8), ("read", page(0), 8))
    r = replay(tr, PageTable("vtd-ss-4level"), c)
    assert r.accesses["refs"].tolist() == [4, 1, 1]
    stats = r.cache_stats.set_index(["cache", "level"])
    assert stats.loc[("PSC", 1), "hits"] == 2 and stats.loc[("PSC", 1), "misses"] == 1


def test_a_2m_page_serves_every_4k_request_inside_it():
    tr = trace_of(("map", BASE, M2, 0x4000_0000), *[("read", BASE + i * K4, 8) for i in range(0, 512, 37)])
    r = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(1))
    assert r.accesses["hit"].tolist() == [False] + [True] * (len(r.accesses) - 1)
    assert r.accesses["refs"].iloc[0] == 3  # a 2 MiB leaf sits at level 1: three reads
    assert set(r.accesses["page_size"]) == {M2}


def test_a_row_crossing_4k_boundaries_is_one_request_per_page():
    tr = trace_of(MAP16, ("write", BASE + 0xF00, 0x2200))  # 0xF00..0x30FF: pages 0, 1, 2, 3
    acc = split_accesses(tr.frame)
    assert [int(x) for x in acc.iova] == [BASE + 0xF00, BASE + K4, BASE + 2 * K4, BASE + 3 * K4]
    assert [int(x) for x in acc.length] == [0x100, K4, K4, 0x100]
    assert acc.write.all() and (acc.row == 1).all()


# -- invariants ---------------------------------------------------------------------------------


@st.composite
def small_traces(draw, nested=False):
    n = draw(st.integers(1, 40))
    rows = [MAP16]
    mapped = set(range(16))
    for _ in range(n):
        kind = draw(st.sampled_from(["read", "read", "write", "unmap", "map"]))
        p = draw(st.integers(0, 17))
        if kind == "unmap":
            if p in mapped:
                rows.append(("unmap", page(p), K4))
                mapped.discard(p)
        elif kind == "map":
            if p not in mapped and p < 16:
                rows.append(("map", page(p), K4, 0x4000_0000 + p * K4))
                mapped.add(p)
        else:
            rows.append((kind, page(p) + draw(st.integers(0, 0xFFF)), draw(st.integers(1, 0x1800))))
    return trace_of(*rows)


caches_st = st.builds(
    lambda e, ways, repl, l1, l2: Caches(
        iotlb=CacheConfig(e, ways=ways if e and ways and e % ways == 0 and (e // ways) & (e // ways - 1) == 0 else None, replacement=repl),
        psc={1: CacheConfig(l1), 2: CacheConfig(l2)},
        stage2_tlb=CacheConfig(e),
        stage2_psc={1: CacheConfig(l1)},
    ),
    st.sampled_from([0, 1, 2, 4, 8]),
    st.sampled_from([None, 1, 2]),
    st.sampled_from(["lru", "fifo", "random"]),
    st.sampled_from([0, 1, 4]),
    st.sampled_from([0, 2]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_traces(), caches_st, st.sampled_from(["strict", "lazy"]))
def test_fast_and_step_engines_agree_access_by_access(tr, caches, policy):
    pt = PageTable("vtd-ss-4level")
    fq = FlushQueue(size=2, timeout_ns=5)
    fast = replay(tr, pt, caches, policy=policy, flush_queue=fq, engine="fast")
    step = replay(tr, pt, caches, policy=policy, flush_queue=fq, engine="step")
    cols = ["hit", "refs", "fault", "page_size"]
    assert fast.accesses[cols].equals(step.accesses[cols])
    assert fast.summary.equals(step.summary)
    assert fast.cache_stats.equals(step.cache_stats)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_traces(), caches_st, st.sampled_from(["strict", "lazy"]))
def test_a_hit_never_walks_and_a_walk_always_reads(tr, caches, policy):
    r = replay(tr, PageTable("vtd-ss-4level"), caches, policy=policy, flush_queue=FlushQueue(2, 5))
    a = r.accesses
    assert (a.loc[a["hit"], "refs"] == 0).all()
    in_range = a["iova"] < np.uint64(1 << 48)
    assert (a.loc[~a["hit"] & in_range, "refs"] >= 1).all()
    assert r.summary["iotlb_hits"] + r.summary["walks"] == len(a)
    assert r.summary["refs"] == a["refs"].sum()
    # strict: no access ever hits a translation its table no longer has
    if policy == "strict":
        assert r.summary["stale_hits"] == 0


def test_after_a_strict_unmap_the_next_access_misses_and_faults():
    tr = trace_of(MAP16, ("read", page(3), 8), ("read", page(3), 8), ("unmap", page(3), K4), ("read", page(3), 8))
    r = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(8))
    assert r.accesses["hit"].tolist() == [False, True, False]
    assert r.accesses["fault"].tolist() == [False, False, True]
    assert r.summary["invalidations"] == 1 and r.summary["iotlb_invalidated"] == 1


def test_lazy_unmap_leaves_a_stale_hit_until_the_flush():
    tr = trace_of(
        MAP16,
        ("read", page(3), 8),
        ("unmap", page(3), K4),
        ("read", page(3), 8),  # the IOTLB still has it: the window lazy mode leaves open
        {"t": 20_000_000, "op": "read", "iova": page(3), "length": 8},  # after the 10 ms timer
    )
    r = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(8), policy="lazy")
    assert r.accesses["hit"].tolist() == [False, True, False]
    assert r.accesses["fault"].tolist() == [False, True, True]
    assert r.summary["stale_hits"] == 1 and r.summary["flushes"] == 1 and r.summary["invalidations"] == 0


def test_flush_queue_full_flushes_the_whole_domain():
    # queue of 2: the third unmap finds it full and flushes (queue_iova: fq_full ->
    # fq_flush_iotlb); the fifth likewise; the timer flushes the last one after the trace.
    rows = [MAP16] + [("read", page(i), 8) for i in range(8, 12)]
    rows += [("unmap", page(i), K4) for i in range(5)]
    rows += [("read", page(i), 8) for i in range(8, 12)]
    tr = trace_of(*rows)
    lazy = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(16), policy="lazy", flush_queue=FlushQueue(2, 10**12))
    strict = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(16), policy="strict")
    assert lazy.summary["flushes"] == 3 and lazy.summary["invalidations"] == 0
    assert strict.summary["invalidations"] == 5 and strict.summary["flushes"] == 0
    # strict keeps the still-mapped pages 8..11 cached; the lazy flush took them with it
    assert strict.accesses["hit"].tolist()[-4:] == [True] * 4
    assert lazy.accesses["hit"].tolist()[-4:] == [False] * 4
    assert list(lazy.events["op"]).count("flush") == 3


def test_unmap_that_frees_a_table_also_flushes_the_paging_structure_cache():
    # ih = list_empty(freelist): leaf-only invalidation keeps PSC entries unless tables were freed.
    # A leaf table is freed only when the unmap covers its whole 2 MiB span.
    c = Caches(iotlb=CacheConfig(8), psc={1: CacheConfig(8)})
    keep = trace_of(("map", BASE, M2, 0x4000_0000), ("read", BASE, 8), ("unmap", BASE, K4))
    free = trace_of(("map", BASE, M2, 0x4000_0000), ("read", BASE, 8), ("unmap", BASE, M2))
    only_4k = 0x1000
    assert replay(keep, PageTable("vtd-ss-4level", pgsize_bitmap=only_4k), c).summary["psc_invalidated"] == 0
    assert replay(free, PageTable("vtd-ss-4level", pgsize_bitmap=only_4k), c).summary["psc_invalidated"] == 1


# -- nesting ------------------------------------------------------------------------------------


def nested_pair(s2_pages=None):
    n = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=64 << 20, backing="eager")
    return n


GIOVA = 0x4000_0000


def test_nested_cold_walks_cost_what_the_2d_walker_reads():
    n = nested_pair()
    tr = trace_of(("map", GIOVA, 8 * K4, 0x10_0000), *[("read", GIOVA + i * K4, 8) for i in range(8)])
    r = replay(tr, n, Caches.none())
    n.stage1.map(GIOVA, 0x10_0000, 8 * K4)  # the same state the replay built on its copy
    expected = [n.walk(GIOVA + i * K4).n_refs for i in range(8)]
    assert r.accesses["refs"].tolist() == expected
    m = n.stage2.walk(0x10_0000).references
    assert expected[0] == 4 * m + 4 + m  # n·m + n + m with n = 4


def test_combined_entry_is_no_larger_than_the_smaller_stage_page():
    n = nested_pair()  # stage 2 backs guest RAM with 2 MiB pages
    tr = trace_of(
        ("map", GIOVA, M2, 0x20_0000),  # stage-1 2 MiB over stage-2 2 MiB
        ("map", GIOVA + M2, K4, 0x40_0000),  # stage-1 4 KiB over stage-2 2 MiB
        ("read", GIOVA + 0x1234, 8),
        ("read", GIOVA + M2, 8),
    )
    r = replay(tr, n, Caches.none())
    assert r.accesses["page_size"].tolist() == [M2, K4]
    assert n.stage2.walk(0x20_0000).page_size == M2


def test_stage2_change_flushes_every_combined_entry_stage1_change_only_its_range():
    c = Caches(iotlb=CacheConfig(16), stage2_tlb=CacheConfig(16))
    base = [("map", GIOVA, 4 * K4, 0x10_0000)] + [("read", GIOVA + i * K4, 8) for i in range(4)]
    s1 = trace_of(*base, ("unmap", GIOVA, K4, 0, 1), *[("read", GIOVA + i * K4, 8) for i in range(1, 4)])
    r1 = replay(s1, nested_pair(), c)
    assert r1.accesses["hit"].tolist()[-3:] == [True] * 3  # only page 0's entry went
    # the host moves an unrelated 2 MiB of guest RAM: still every combined entry goes
    s2 = trace_of(*base, ("unmap", 0x200_0000, M2, 0, 2), *[("read", GIOVA + i * K4, 8) for i in range(1, 4)])
    r2 = replay(s2, nested_pair(), c)
    assert r2.accesses["hit"].tolist()[-3:] == [False] * 3
    assert r2.summary["flushes"] == 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 40), min_size=1, max_size=25), caches_st)
def test_nested_fast_and_step_engines_agree(pages, caches):
    rows = [("map", GIOVA, 32 * K4, 0x10_0000)] + [("read", GIOVA + p * K4 + 8, 16) for p in pages]
    rows.insert(len(rows) // 2, ("unmap", GIOVA + 2 * K4, K4, 0, 1))
    tr = trace_of(*rows)
    n = nested_pair()
    fast = replay(tr, n, caches, engine="fast")
    step = replay(tr, n, caches, engine="step")
    cols = ["hit", "refs", "s2_refs", "fault", "page_size"]
    assert fast.accesses[cols].equals(step.accesses[cols])
    assert fast.summary.equals(step.summary)


# -- targets, errors and the model left alone ---------------------------------------------------


def test_replay_never_changes_the_model_it_was_given():
    pt = PageTable("vtd-ss-4level")
    pt.map(BASE, 0x4000_0000, K4)
    before = (pt.table_bytes, [(m.iova, m.pa, m.size) for m in pt.mappings()])
    replay(trace_of(("map", BASE + K4, K4, 0x5000_0000), ("read", BASE, 8), ("unmap", BASE, K4)), pt, iotlb_only(4))
    assert (pt.table_bytes, [(m.iova, m.pa, m.size) for m in pt.mappings()]) == before


def test_a_failing_map_row_names_the_row_and_changes_nothing():
    pt = PageTable("vtd-ss-4level")
    pt.map(BASE, 0x4000_0000, K4)
    tr = trace_of(("read", BASE, 8), ("map", BASE, K4, 0x5000_0000))
    with pytest.raises(IommuError, match=r"trace row 1 \(map iova 0x1_0000_0000"):
        replay(tr, pt, iotlb_only(4))
    assert pt.translate(np.array([BASE], dtype=np.uint64))[0][0] == 0x4000_0000


def test_a_failing_row_keeps_the_models_errno():
    # mapping over a live mapping is EEXIST in the model; the replay must say so, not EINVAL
    pt = PageTable("vtd-ss-4level")
    tr = trace_of(("map", BASE, K4, 0x4000_0000), ("map", BASE, K4, 0x5000_0000))
    with pytest.raises(IommuError) as err:
        replay(tr, pt, iotlb_only(4))
    assert err.value.errno == "EEXIST"
    assert str(err.value).startswith("EEXIST: trace row 1 (map iova 0x1_0000_0000")
    assert "EINVAL" not in str(err.value)
    assert isinstance(err.value.__cause__, IommuError) and err.value.__cause__.errno == "EEXIST"


def test_a_stage_two_row_on_a_single_stage_target_is_einval():
    tr = trace_of(("map", BASE, K4, 0x4000_0000, 2))
    with pytest.raises(IommuError, match=r"^EINVAL: trace row 0 .*stage-2 rows need a Nested target"):
        replay(tr, PageTable("vtd-ss-4level"), iotlb_only(4))


def test_bad_arguments_say_what_is_allowed():
    tr = trace_of(MAP16)
    with pytest.raises(ValueError, match="unknown flush policy 'eager'; allowed: 'strict', 'lazy'"):
        replay(tr, PageTable("vtd-ss-4level"), iotlb_only(2), policy="eager")
    with pytest.raises(TypeError, match="cannot replay a trace against dict"):
        replay(tr, {}, iotlb_only(2))
    with pytest.raises(ValueError, match="size=0"):
        FlushQueue(size=0)


def test_ioas_and_shadow_targets():
    import iommu_lab as il
    from iommu_lab.nesting.shadow import ShadowNesting

    p = il.platforms.get("intel-vtd-48")
    ioas = il.IOAS()
    ioas.attach(p.device())
    tr = trace_of(("map", BASE, 4 * K4, 0x7000_0000), *[("read", BASE + i * K4, 8) for i in (0, 1, 0)], ("unmap", BASE, 4 * K4))
    r = replay(tr, ioas, iotlb_only(4))
    assert r.accesses["hit"].tolist() == [False, False, True] and r.summary["invalidations"] == 1
    assert not ioas.areas  # the IOAS we passed is untouched
    sh = ShadowNesting.from_nested(nested_pair())
    rows = [("map", GIOVA, 4 * K4, 0x10_0000), ("read", GIOVA, 8), ("unmap", GIOVA, 4 * K4)]
    rs = replay(trace_of(*rows), sh, iotlb_only(4))
    assert rs.kind == "shadowed" and rs.summary["traps"] == 2  # one VM exit per guest map/unmap
    assert rs.accesses["refs"].tolist() == [sh.table.fmt.levels]  # shadow walks are native


def test_strict_vs_lazy_in_nesting_counts_trapped_invalidations():
    rows = [("map", GIOVA, 8 * K4, 0x10_0000)] + [("unmap", GIOVA + i * K4, K4, 0, 1) for i in range(6)]
    tr = trace_of(*rows)
    strict = replay(tr, nested_pair(), iotlb_only(4), policy="strict")
    lazy = replay(tr, nested_pair(), iotlb_only(4), policy="lazy", flush_queue=FlushQueue(4, 10**12))
    assert strict.summary["traps"] == 6  # one forwarded invalidation per guest unmap
    assert lazy.summary["traps"] == 2  # one when the queue of 4 is full, one at the timer


def test_default_caches_come_from_the_targets_platform():
    import iommu_lab as il

    tr = trace_of(MAP16, ("read", BASE, 8))
    r = replay(tr, il.IOAS.from_platform(il.platforms.get("arm-smmuv3-48")))
    assert r.caches == Caches.for_platform("arm-smmuv3-48")
    r = replay(tr, PageTable("vtd-ss-4level"))  # no platform: the format's IOMMU family
    assert r.caches == Caches.for_family("VT-d")
    with pytest.raises(TypeError, match="caches must be"):
        replay(tr, PageTable("vtd-ss-4level"), {"iotlb": 4})


def test_lazy_replay_counts_iovas_reused_before_the_flush():
    tr = trace_of(("map", BASE, K4, 0x4000_0000), ("read", BASE, 8), ("unmap", BASE, K4), ("map", BASE, K4, 0x5000_0000))
    assert replay(tr, PageTable("vtd-ss-4level"), iotlb_only(4), policy="lazy").summary["reused_before_flush"] == 1
    assert replay(tr, PageTable("vtd-ss-4level"), iotlb_only(4), policy="strict").summary["reused_before_flush"] == 0


def test_each_device_has_its_own_domain_tag_and_flush_queue():
    # Two devices reading the same IOVA: per-device domains tag their entries apart, so one
    # device's unmap invalidates only its own entry; with a shared domain it takes both.
    rows = [
        MAP16,
        {"op": "read", "iova": page(1), "length": 8, "device": "nic0"},
        {"op": "read", "iova": page(1), "length": 8, "device": "nvme0"},
        {"op": "unmap", "iova": page(1), "length": K4, "device": "nic0"},
        {"op": "map", "iova": page(1), "length": K4, "pa": 0x5000_0000, "device": "nic0"},
        {"op": "read", "iova": page(1), "length": 8, "device": "nvme0"},
    ]
    tr = trace_of(*rows)
    per = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(8))
    shared = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(8), domains="shared")
    assert per.accesses["hit"].tolist() == [False, False, True]
    assert shared.accesses["hit"].tolist() == [False, True, False]
    with pytest.raises(ValueError, match="domains='one' is not one of"):
        replay(tr, PageTable("vtd-ss-4level"), iotlb_only(8), domains="one")


def test_lazy_queues_fill_per_domain():
    rows = [MAP16]
    for i in range(4):
        rows.append({"op": "unmap", "iova": page(i), "length": K4, "device": "nic0"})
        rows.append({"op": "unmap", "iova": page(8 + i), "length": K4, "device": "nvme0"})
    tr = trace_of(*rows)
    fq = FlushQueue(size=4, timeout_ns=10**12)
    per = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(8), policy="lazy", flush_queue=fq)
    shared = replay(tr, PageTable("vtd-ss-4level"), iotlb_only(8), policy="lazy", flush_queue=fq, domains="shared")
    # per device: each queue reaches 4 and is flushed by the timer at the end -> 2 flushes;
    # shared: the fifth unmap finds the queue of 4 full, the timer takes the rest -> 2 flushes
    flushes = per.events[per.events["op"] == "flush"]
    assert sorted(flushes["note"]) == ["timer (nic0)", "timer (nvme0)"]
    assert list(shared.events.loc[shared.events["op"] == "flush", "note"]) == ["queue full (all devices)", "timer (all devices)"]


def test_generators_with_lazy_iova_reuse_never_reuse_before_the_flush():
    from iommu_lab.dma import trace as T

    tr = T.Trace.merge(
        T.nic_rx_ring(1200, recycle=False, policy="lazy", seed=1),
        T.storage_sg(120, segments=(1, 4), policy="lazy", seed=2),
    )
    r = replay(tr, PageTable("vtd-ss-4level"), Caches.for_platform("intel-vtd-48"), policy="lazy")
    assert r.summary["flushes"] > 0 and r.summary["reused_before_flush"] == 0
    strict_made = T.nic_rx_ring(1200, recycle=False, seed=1)
    r = replay(strict_made, PageTable("vtd-ss-4level"), Caches.for_platform("intel-vtd-48"), policy="lazy")
    assert r.summary["reused_before_flush"] > 0  # strict-mode reuse, replayed lazily: flagged


def test_progress_bar_on_request_and_on_long_traces_only(capsys):
    tr = trace_of(MAP16, *[("read", page(i % 16), 8) for i in range(300)])
    replay(tr, PageTable("vtd-ss-4level"), iotlb_only(4), progress=True)
    err = capsys.readouterr().err
    assert "/300" in err and "replay native" in err  # tqdm.auto: a text bar outside notebooks
    replay(tr, PageTable("vtd-ss-4level"), iotlb_only(4))  # short traces: no bar by default
    assert capsys.readouterr().err == ""
