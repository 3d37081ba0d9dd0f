"""Replaying DMA traces through the IOTLB and paging-structure caches.

Small traces with hit/miss sequences worked out by hand, the invariants every replay must keep,
the invalidation rules (strict, lazy flush queue, stage-2 changes) and the agreement of the
vectorised and the step-by-step engines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
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
@given(small_traces(), caches_st, st.sampled_from(["strict", "lazy"]), st.sampled_from(["fast", "compiled"]))
def test_fast_and_step_engines_agree_access_by_access(tr, caches, policy, engine):
    pt = PageTable("vtd-ss-4level")
    fq = FlushQueue(size=2, timeout_ns=5)
    fast = replay(tr, pt, caches, policy=policy, flush_queue=fq, engine=engine)
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
@given(st.lists(st.integers(0, 40), min_size=1, max_size=25), caches_st, st.sampled_from(["fast", "compiled"]))
def test_nested_fast_and_step_engines_agree(pages, caches, engine):
    rows = [("map", GIOVA, 32 * K4, 0x10_0000)] + [("read", GIOVA + p * K4 + 8, 16) for p in pages]
    rows.insert(len(rows) // 2, ("unmap", GIOVA + 2 * K4, K4, 0, 1))
    tr = trace_of(*rows)
    n = nested_pair()
    fast = replay(tr, n, caches, engine=engine)
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
    # mapping over a live VT-d entry is EADDRINUSE (generic_pt's map answers it where
    # io-pgtable-arm answers EEXIST); the replay must keep the table's errno, not say EINVAL
    pt = PageTable("vtd-ss-4level")
    tr = trace_of(("map", BASE, K4, 0x4000_0000), ("map", BASE, K4, 0x5000_0000))
    with pytest.raises(IommuError) as err:
        replay(tr, pt, iotlb_only(4))
    assert err.value.errno == "EADDRINUSE"
    assert str(err.value).startswith("EADDRINUSE: trace row 1 (map iova 0x1_0000_0000")
    assert "EINVAL" not in str(err.value)
    assert isinstance(err.value.__cause__, IommuError) and err.value.__cause__.errno == "EADDRINUSE"


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


# -- both engines against a plain reference model ------------------------------------------------
#
# The reference below shares no code with the replay: requests, caches, walk-cache cut-offs,
# stage-2 costs and the strict / lazy invalidation rules are written out plainly from the
# replay's documented rules. Only the page-table walkers (tested on their own) give it the
# per-access facts: fault, leaf level, page size, and the GPA of each stage-1 entry read.

S2_TAG = "s2"


class RefCache:
    """A set-associative cache as one list per set, next victim first (LRU or FIFO)."""

    def __init__(self, cfg: CacheConfig):
        nsets = 0 if cfg.entries == 0 else (1 if cfg.ways is None else cfg.entries // cfg.ways)
        self.ways = cfg.entries // nsets if nsets else 0
        self.sets = [[] for _ in range(max(nsets, 1))]
        self.lru = cfg.replacement.value == "lru"

    def _set(self, index):
        return self.sets[index % len(self.sets)]

    def lookup(self, key, index) -> bool:
        s = self._set(index)
        if key not in s:
            return False
        if self.lru:
            s.remove(key)
            s.append(key)
        return True

    def fill(self, key, index) -> None:
        s = self._set(index)
        if key in s:
            if self.lru:
                s.remove(key)
                s.append(key)
            return
        if not self.ways:
            return
        if len(s) >= self.ways:
            s.pop(0)
        s.append(key)

    def drop(self, doomed) -> int:
        n = 0
        for s in self.sets:
            gone = [k for k in s if doomed(k)]
            for k in gone:
                s.remove(k)
            n += len(gone)
        return n

    def keys(self):
        return [k for s in self.sets for k in s]


class RefTlb:
    """Final translations keyed (tag, lg2, page number); a lookup tries the largest size first."""

    def __init__(self, cfg):
        self.c = RefCache(cfg)

    def lookup(self, tag, iova):
        for lg2 in sorted({k[1] for k in self.c.keys()}, reverse=True):
            if self.c.lookup((tag, lg2, iova >> lg2), iova >> lg2):
                return lg2
        return None

    def fill(self, tag, iova, lg2):
        self.c.fill((tag, lg2, iova >> lg2), iova >> lg2)

    def drop_range(self, tag_ok, iova, length):
        end = iova + length
        return self.c.drop(lambda k: tag_ok(k[0]) and k[2] << k[1] < end and (k[2] + 1) << k[1] > iova)


class RefWalkCache:
    """Table pointers per level L >= 1 of a 4-level, 4 KiB-granule table: an entry covers 2**(12 + 9L)."""

    def __init__(self, levels, top):
        self.levels = {lv: RefCache(cfg) for lv, cfg in sorted(levels.items()) if 1 <= lv <= top and cfg.entries}

    def lookup(self, tag, iova):
        for lv, c in self.levels.items():  # lowest level first: the deepest pointer wins
            if c.lookup((tag, lv, iova >> (12 + 9 * lv)), iova >> (12 + 9 * lv)):
                return lv
        return None

    def fill(self, tag, iova, levels):
        for lv in levels:
            if lv in self.levels:
                self.levels[lv].fill((tag, lv, iova >> (12 + 9 * lv)), iova >> (12 + 9 * lv))

    def drop(self, tag_ok, iova=None, length=None):
        n = 0
        for lv, c in self.levels.items():
            if iova is None:
                n += c.drop(lambda k: tag_ok(k[0]))
            else:
                lo, hi = iova >> (12 + 9 * lv), (iova + length - 1) >> (12 + 9 * lv)
                n += c.drop(lambda k, lo=lo, hi=hi: tag_ok(k[0]) and lo <= k[2] <= hi)
        return n


def reference_replay(tr, model, caches, policy, fq_size, fq_timeout):
    """Per-access (hit, refs, s2_refs, fault, page_size) and totals, by the plain rules."""
    import copy

    model = copy.deepcopy(model)
    nested = isinstance(model, Nested)
    s1 = model.stage1 if nested else model
    top = s1.fmt.top_level
    iotlb, psc = RefTlb(caches.iotlb), RefWalkCache(caches.psc, top)
    s2tlb = RefTlb(caches.stage2_tlb)
    s2psc = RefWalkCache(caches.stage2_psc, model.stage2.fmt.top_level if nested else 0)
    tot = dict(hits=0, walks=0, faults=0, stale_hits=0, refs=0, flushes=0, invalidations=0,
               iotlb_invalidated=0, psc_invalidated=0, reused_before_flush=0)
    queues, deadlines, rows = {}, {}, []
    devices = list(tr.frame["device"].cat.categories)

    def flush(domain):
        tot["iotlb_invalidated"] += iotlb.c.drop(lambda k: domain is None or k[0][0] == domain)
        tot["psc_invalidated"] += psc.drop(lambda tag: domain is None or tag[0] == domain)
        tot["flushes"] += 1

    def fire_timers(now):
        while deadlines and min(deadlines.values()) <= now:
            dom = min(deadlines, key=deadlines.get)
            flush(dom)
            queues[dom], _ = [], deadlines.pop(dom)

    def s2_cost(gpa, access):
        w2 = model.stage2.walk(gpa, access)
        if w2.ok and s2tlb.lookup(S2_TAG, gpa) is not None:
            return 0, True
        stop = w2.result.level if w2.ok else (-1 if w2.fault.level is None else w2.fault.level)
        if stop < 0:
            return 0, False
        h = s2psc.lookup(S2_TAG, gpa)
        start = model.stage2.fmt.top_level if h is None or h <= stop else h - 1
        s2psc.fill(S2_TAG, gpa, range(stop + 1, start + 1))
        if w2.ok:
            s2tlb.fill(S2_TAG, gpa, w2.result.size.bit_length() - 1)
        return start - stop + 1, w2.ok

    for rec in tr.frame.itertuples():
        dom = devices.index(rec.device)
        iova, length, t = int(rec.iova), int(rec.length), int(rec.t)
        fire_timers(t)
        if rec.op in ("map", "unmap"):
            table = model.stage2 if rec.stage == 2 else s1
            queue = queues.setdefault(dom, [])
            before = table.memory.bytes_used
            if rec.op == "map":
                table.map(iova, int(rec.pa), length, "rw")
                tot["reused_before_flush"] += any(q < iova + length and iova < q + n for q, n in queue)
                continue
            table.unmap(iova, length)
            freed = table.memory.bytes_used < before
            if rec.stage == 2:
                tot["iotlb_invalidated"] += s2tlb.drop_range(lambda tag: tag == S2_TAG, iova, length)
                if freed:
                    tot["psc_invalidated"] += s2psc.drop(lambda tag: tag == S2_TAG, iova, length)
                tot["invalidations"] += 1
                flush(None)
            elif policy == "strict":
                tot["iotlb_invalidated"] += iotlb.drop_range(lambda tag: tag[0] == dom, iova, length)
                if freed:
                    tot["psc_invalidated"] += psc.drop(lambda tag: tag[0] == dom, iova, length)
                tot["invalidations"] += 1
            else:
                if len(queue) >= fq_size:
                    flush(dom)
                    queue = queues[dom] = []
                    deadlines.pop(dom, None)
                queue.append((iova, length))
                deadlines.setdefault(dom, t + fq_timeout)
            continue
        access = "w" if rec.op == "write" else "r"
        tag = (dom, -1 if pd.isna(rec.pasid) else int(rec.pasid))
        page = iova & ~0xFFF
        while page <= iova + length - 1:  # one request per 4 KiB page touched
            va = max(iova, page)
            w1 = s1.walk(va, access)
            fault, lg2 = not w1.ok, (w1.result.size.bit_length() - 1 if w1.ok else 0)
            stop = w1.result.level if w1.ok else (-1 if w1.fault.level is None else w1.fault.level)
            if nested and w1.ok:
                out = model.stage2.walk(w1.pa, access)
                fault = not out.ok
                lg2 = min(lg2, out.result.size.bit_length() - 1) if out.ok else 0
            got = iotlb.lookup(tag, va)
            if got is not None:
                tot["hits"] += 1
                tot["stale_hits"] += fault
                rows.append((True, 0, 0, fault, 1 << got))
            else:
                tot["walks"] += 1
                r1 = r2 = 0
                if stop >= 0:
                    h = psc.lookup(tag, va)
                    start = top if h is None or h <= stop else h - 1
                    ok = True
                    if nested:
                        gpa_of = {s.level: s.entry_address for s in w1.steps}
                        if stop not in gpa_of:  # the faulting entry's own fetch failed in stage 2
                            table = w1.steps[-1].entry.address if w1.steps else s1.root
                            gpa_of[stop] = table + s1.fmt.index(stop, va) * s1.fmt.entry_size
                        for level in range(start, stop - 1, -1):
                            n2, ok = s2_cost(gpa_of[level], "r")
                            r2 += n2
                            if not ok:
                                break
                            r1 += 1
                        if ok and w1.ok:
                            r2 += s2_cost(w1.pa, access)[0]
                    else:
                        r1 = start - stop + 1
                    if ok:
                        psc.fill(tag, va, range(stop + 1, start + 1))
                    if not fault:
                        iotlb.fill(tag, va, lg2)
                tot["faults"] += fault
                tot["refs"] += r1 + r2
                rows.append((False, r1 + r2, r2, fault, 0 if fault else 1 << lg2))
            page += K4
    fire_timers(float("inf"))
    return rows, tot


def assert_matches_reference(r, rows, tot):
    a = r.accesses
    got = list(zip(a["hit"], a["refs"], a["s2_refs"], a["fault"], a["page_size"]))
    assert [tuple(map(int, g)) for g in got] == [tuple(map(int, x)) for x in rows]
    assert {k: int(r.summary[k if k != "hits" else "iotlb_hits"]) for k in tot} == tot


ref_caches_st = st.builds(
    lambda e, ways, repl, l1, l2: Caches(
        iotlb=CacheConfig(e, ways=ways if e and ways and e % ways == 0 and (e // ways) & (e // ways - 1) == 0 else None, replacement=repl),
        psc={1: CacheConfig(l1, replacement=repl), 2: CacheConfig(l2)},
        stage2_tlb=CacheConfig(e, replacement=repl),
        stage2_psc={1: CacheConfig(l1), 2: CacheConfig(l2)},
    ),
    st.sampled_from([0, 1, 2, 4, 8]),
    st.sampled_from([None, 1, 2]),
    st.sampled_from(["lru", "fifo"]),  # RANDOM's victim is the generator's choice: no reference
    st.sampled_from([0, 1, 4]),
    st.sampled_from([0, 2]),
)


@st.composite
def multi_domain_traces(draw):
    """Single-stage traces from two devices (two domains), with and without PASIDs, and time
    gaps that let the lazy timers fire between accesses."""
    rows, mapped, t = [dict(MAP16_ROW, t=0)], set(range(16)), 0
    for _ in range(draw(st.integers(1, 40))):
        t += draw(st.integers(0, 4))
        dev = draw(st.sampled_from(["nic0", "nvme0"]))
        kind = draw(st.sampled_from(["read", "read", "write", "unmap", "map"]))
        p = draw(st.integers(0, 17))
        if kind == "unmap" and p in mapped:
            rows.append({"t": t, "op": "unmap", "iova": page(p), "length": K4, "device": dev})
            mapped.discard(p)
        elif kind == "map" and p not in mapped and p < 16:
            rows.append({"t": t, "op": "map", "iova": page(p), "length": K4, "pa": 0x4000_0000 + p * K4, "device": dev})
            mapped.add(p)
        elif kind in ("read", "write"):
            rows.append({"t": t, "op": kind, "iova": page(p) + draw(st.integers(0, 0xFFF)),
                         "length": draw(st.integers(1, 0x1800)), "device": dev,
                         "pasid": draw(st.sampled_from([None, 1]))})
    return Trace.from_records(rows, name="drawn")


MAP16_ROW = {"op": "map", "iova": BASE, "length": 16 * K4, "pa": 0x4000_0000, "device": "nic0"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(multi_domain_traces(), ref_caches_st, st.sampled_from(["strict", "lazy"]),
       st.sampled_from(["compiled", "fast", "step"]), st.sampled_from([0x1000, 0x201000]))
def test_both_engines_match_a_plain_reference_model_access_by_access(tr, caches, policy, engine, pgsizes):
    pt = PageTable("vtd-ss-4level", pgsize_bitmap=pgsizes)
    r = replay(tr, pt, caches, policy=policy, flush_queue=FlushQueue(2, 5), engine=engine)
    assert_matches_reference(r, *reference_replay(tr, pt, caches, policy, 2, 5))


@st.composite
def nested_traces(draw):
    """Guest maps, unmaps and DMA over a nest parent, and at most one host unmap of guest RAM
    (the 2 MiB holding the guest's tables and data, or another one); after it the guest changes
    no mapping (its tables may be unreachable), only its DMA runs on."""
    rows, mapped, t, host_changed = [("map", GIOVA, 32 * K4, 0x10_0000)], set(range(32)), 0, False
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["read", "read", "write", "unmap", "map", "host"]))
        p = draw(st.integers(0, 40))
        t += draw(st.integers(0, 4))
        if kind == "unmap" and p in mapped and not host_changed:
            rows.append({"t": t, "op": "unmap", "iova": GIOVA + p * K4, "length": K4})
            mapped.discard(p)
        elif kind == "map" and p not in mapped and p < 32 and not host_changed:
            rows.append({"t": t, "op": "map", "iova": GIOVA + p * K4, "length": K4, "pa": 0x10_0000 + p * K4})
            mapped.add(p)
        elif kind == "host" and not host_changed:
            host_changed = True
            rows.append({"t": t, "op": "unmap", "iova": draw(st.sampled_from([0, 0x200_0000])), "length": M2, "stage": 2})
        elif kind in ("read", "write"):
            rows.append({"t": t, "op": kind, "iova": GIOVA + p * K4 + 8, "length": 16})
    return trace_of(*rows)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested_traces(), ref_caches_st, st.sampled_from(["strict", "lazy"]),
       st.sampled_from(["compiled", "fast", "step"]))
def test_nested_engines_match_a_plain_reference_model_access_by_access(tr, caches, policy, engine):
    n = nested_pair()
    r = replay(tr, n, caches, policy=policy, flush_queue=FlushQueue(2, 5), engine=engine)
    assert_matches_reference(r, *reference_replay(tr, n, caches, policy, 2, 5))


# -- dirty tracking ------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["compiled", "fast", "step"])
def test_a_replay_sets_the_dirty_bits_of_the_pages_its_writes_reach(engine):
    from iommu_lab.pagetable.dirty import DirtyTracker

    pt = PageTable("vtd-ss-4level")
    pt.map(BASE, 0x4000_0000, 16 * K4)
    tr = trace_of(("write", page(0), 3 * K4), ("read", page(5), 8), ("write", page(40), 8), ("write", page(0), 8))
    tracker = DirtyTracker(pt)
    tracker.set_dirty_tracking(True)
    r = replay(tr, pt, iotlb_only(4), dirty=tracker, engine=engine)
    assert r.summary["dirty_writes"] == 4  # three pages of the first row and the rewrite; page 40 faults
    assert tracker.get_dirty_bitmap(BASE, 16 * K4, K4).pages() == [page(0), page(1), page(2)]


def test_dirty_tracking_needs_the_very_table_the_dma_walks():
    from iommu_lab.pagetable.dirty import DirtyTracker

    pt, other = PageTable("vtd-ss-4level"), PageTable("vtd-ss-4level")
    pt.map(BASE, 0x4000_0000, 16 * K4)
    with pytest.raises(ValueError, match="not the table this replay walks"):
        replay(trace_of(("write", page(0), 8)), pt, dirty=DirtyTracker(other))
    with pytest.raises(ValueError, match="map/unmap rows"):
        replay(trace_of(MAP16, ("write", page(0), 8)), PageTable("vtd-ss-4level"), dirty=DirtyTracker(pt))
    with pytest.raises(TypeError, match="DirtyTracker"):
        replay(trace_of(("write", page(0), 8)), pt, dirty=True)
