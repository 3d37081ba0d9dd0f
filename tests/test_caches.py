"""The IOTLB and paging-structure cache models: exact hit/miss sequences, placement, invalidation."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import iommu_lab as il
from iommu_lab.core.errors import IommuError
from iommu_lab.dma.caches import (
    Cache,
    CacheConfig,
    Caches,
    Iotlb,
    PagingStructureCache,
    Replacement,
    load_defaults,
    nested_entry_lg2,
    walk_references,
)
from iommu_lab.hardware import formats

KIB4 = 12
MIB2 = 21
GIB1 = 30
TAG = (1, -1)
OTHER = (2, -1)


def run(cache: Cache, keys: str, index: int = 0) -> str:
    """Look each key up, filling on a miss; 'h' for a hit, 'm' for a miss."""
    out = []
    for k in keys:
        if cache.lookup(k, index):
            out.append("h")
        else:
            out.append("m")
            cache.fill(k, index)
    return "".join(out)


# -- Cache: replacement policies, by hand ------------------------------------------------------


def test_lru_capacity_two_over_abacba():
    # A m [A]; B m [A B]; A h [B A]; C m evicts B [A C]; B m evicts A [C B]; A m evicts C [B A]
    cache = Cache(CacheConfig(2, replacement="lru"))
    assert run(cache, "ABACBA") == "mmhmmm"
    assert cache.keys() == ["B", "A"]
    assert (cache.hits, cache.misses, cache.fills, cache.evictions) == (1, 5, 5, 3)


def test_fifo_capacity_two_over_abacba():
    # A m [A]; B m [A B]; A h [A B] (no reorder); C m evicts A [B C]; B h [B C]; A m evicts B [C A]
    cache = Cache(CacheConfig(2, replacement=Replacement.FIFO))
    assert run(cache, "ABACBA") == "mmhmhm"
    assert cache.keys() == ["C", "A"]
    assert (cache.hits, cache.misses, cache.evictions) == (2, 4, 2)


def test_lru_capacity_three_over_a_longer_sequence():
    # A m [A]; B m [A B]; C m [A B C]; A h [B C A]; D m evicts B [C A D]; B m evicts C [A D B];
    # A h [D B A]; C m evicts D [B A C]; D m evicts B [A C D]
    cache = Cache(CacheConfig(3))
    assert run(cache, "ABCADBACD") == "mmmhmmhmm"
    assert cache.keys() == ["A", "C", "D"]


def test_fill_returns_the_evicted_key():
    cache = Cache(CacheConfig(2))
    assert cache.fill("A", 0) is None
    assert cache.fill("B", 0) is None
    assert cache.fill("C", 0) == "A"


def test_refilling_a_present_key_refreshes_lru_but_not_fifo():
    lru = Cache(CacheConfig(2, replacement="lru"))
    fifo = Cache(CacheConfig(2, replacement="fifo"))
    for cache in (lru, fifo):
        cache.fill("A", 0)
        cache.fill("B", 0)
        assert cache.fill("A", 0) is None
        assert cache.fills == 2 and cache.evictions == 0
    assert lru.keys() == ["B", "A"]
    assert fifo.keys() == ["A", "B"]


def test_probe_does_not_count_and_contains_changes_nothing():
    cache = Cache(CacheConfig(2))
    cache.fill("A", 0)
    cache.fill("B", 0)
    assert cache.contains("A", 0)
    assert cache.keys() == ["A", "B"]
    assert cache.probe("A", 0) and not cache.probe("Z", 0)
    assert cache.keys() == ["B", "A"]
    assert (cache.hits, cache.misses) == (0, 0)
    assert math.isnan(cache.hit_rate)


def test_zero_entries_is_no_cache():
    cache = Cache(CacheConfig(0))
    assert run(cache, "AAAA") == "mmmm"
    assert len(cache) == 0 and cache.fills == 0
    assert cache.hit_rate == 0.0


def test_discard_invalidate_clear_count_in_invalidated():
    cache = Cache(CacheConfig(8))
    for i in range(6):
        cache.fill(i, i)
    assert cache.discard(0, 0) and not cache.discard(0, 0)
    assert cache.invalidate(lambda k: k % 2 == 1) == 3
    assert sorted(cache.keys()) == [2, 4]
    assert cache.clear() == 2
    assert len(cache) == 0 and cache.invalidated == 6
    cache.reset_stats()
    assert cache.invalidated == 0


# -- Cache: set-associative placement ---------------------------------------------------------


def test_keys_of_one_set_evict_each_other_and_leave_other_sets_alone():
    # 8 entries, 2 ways -> 4 sets; indexes 0, 4, 8 all land in set 0, index 1 in set 1
    cache = Cache(CacheConfig(8, ways=2))
    cache.fill("s1", 1)
    cache.fill("a", 0)
    cache.fill("b", 4)
    assert cache.fill("c", 8) == "a"
    assert cache.set_keys(0) == ["b", "c"]
    assert cache.set_keys(1) == ["s1"]
    assert cache.keys() == ["b", "c", "s1"]


def test_set_associative_lru_refreshes_within_its_set():
    cache = Cache(CacheConfig(4, ways=2))  # 2 sets
    cache.fill("a", 0)
    cache.fill("b", 2)
    assert cache.lookup("a", 0)
    assert cache.fill("c", 4) == "b"


def test_random_is_deterministic_per_seed_and_evicts_only_from_its_set():
    def trace(seed: int) -> list:
        cache = Cache(CacheConfig(8, ways=4, replacement="random"), seed=seed)
        cache.fill("other", 1)
        victims = [cache.fill(k, 2 * k) for k in range(40)]  # even indexes: all set 0
        assert cache.set_keys(1) == ["other"]
        return victims

    first = trace(7)
    assert first == trace(7)
    assert first[:4] == [None] * 4 and all(v is not None for v in first[4:])
    assert any(trace(seed) != first for seed in range(1, 6))


# -- CacheConfig validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"entries": -1}, "entries=-1"),
        ({"entries": True}, "entries=True"),
        ({"entries": 64.0}, "entries=64.0"),
        ({"entries": 64, "ways": 3}, "ways=3 does not divide entries=64"),
        ({"entries": 64, "ways": 0}, "ways=0"),
        ({"entries": 64, "ways": True}, "ways=True"),
        ({"entries": 24, "ways": 8}, "gives 3 sets, not a power of two"),
        ({"entries": 64, "replacement": "plru"}, "replacement='plru'"),
    ],
)
def test_bad_cache_config_names_the_value_and_the_rule(kwargs, text):
    with pytest.raises(ValueError, match=text.replace("(", r"\(")):
        CacheConfig(**kwargs)


def test_cache_config_coerces_replacement_strings_and_counts_sets():
    cfg = CacheConfig(64, 4, "FIFO")
    assert cfg.replacement is Replacement.FIFO
    assert cfg.sets == 16
    assert CacheConfig(64).sets == 1
    assert CacheConfig(0).sets == 0
    assert "ways may be 1, 2, 4, 8" in str(pytest.raises(ValueError, CacheConfig, 64, 3).value)


# -- Iotlb ------------------------------------------------------------------------------------


def test_a_2mib_entry_covers_every_4kib_page_inside_it_and_lookup_counts_once():
    tlb = Iotlb(CacheConfig(16))
    tlb.fill(TAG, 0x4000_0000, KIB4)
    tlb.fill(TAG, 0x20_0000, MIB2)
    for iova in range(0x20_0000, 0x40_0000, 0x1000):
        assert tlb.lookup(TAG, iova) == MIB2
    assert tlb.lookup(TAG, 0x4000_0fff) == KIB4
    assert tlb.lookup(TAG, 0x40_0000) is None
    assert (tlb.hits, tlb.misses) == (513, 1)
    assert tlb.page_sizes() == {KIB4: 1, MIB2: 1}


def test_iotlb_lookup_prefers_the_largest_size_present():
    tlb = Iotlb(CacheConfig(16))
    tlb.fill(TAG, 0x20_1000, KIB4)
    tlb.fill(TAG, 0x20_0000, MIB2)
    assert tlb.lookup(TAG, 0x20_1000) == MIB2


def test_iotlb_tags_are_separate():
    tlb = Iotlb(CacheConfig(16))
    tlb.fill(TAG, 0x1000, KIB4)
    assert tlb.lookup(OTHER, 0x1000) is None
    assert tlb.lookup((1, 5), 0x1000) is None
    assert tlb.lookup(TAG, 0x1000) == KIB4


def test_iotlb_eviction_keeps_the_page_size_census():
    tlb = Iotlb(CacheConfig(1))
    tlb.fill(TAG, 0, MIB2)
    victim = tlb.fill(TAG, 0x4000_0000, KIB4)
    assert victim == (TAG, MIB2, 0)
    assert tlb.page_sizes() == {KIB4: 1}
    assert tlb.lookup(TAG, 0x1000) is None


def test_invalidate_range_drops_exactly_the_overlapping_entries_of_the_tag():
    tlb = Iotlb(CacheConfig(64))
    for page in range(8):
        tlb.fill(TAG, page << KIB4, KIB4)
        tlb.fill(OTHER, page << KIB4, KIB4)
    tlb.fill(TAG, 0x20_0000, MIB2)
    # [0x2fff, 0x5000) touches pages 2, 3 and 4 (page 5 starts at the exclusive end)
    assert tlb.invalidate_range(TAG, 0x2FFF, 0x5000 - 0x2FFF) == 3
    assert [p for p in range(8) if tlb.lookup(TAG, p << KIB4) is None] == [2, 3, 4]
    assert all(tlb.lookup(OTHER, p << KIB4) == KIB4 for p in range(8))
    assert tlb.lookup(TAG, 0x20_0000) == MIB2


@settings(max_examples=200, deadline=None)
@given(
    fills=st.lists(
        st.tuples(st.sampled_from([TAG, OTHER]), st.integers(0, 0x7F_FFFF), st.sampled_from([KIB4, 16, MIB2])),
        max_size=30,
    ),
    start=st.integers(0, 0x80_0000),
    size=st.integers(1, 0x40_0000),
)
def test_invalidate_range_matches_brute_force(fills, start, size):
    # small ranges take the per-page path, large ones the scan: both must agree with this
    tlb = Iotlb(CacheConfig(32))
    for tag, iova, lg2 in fills:
        tlb.fill(tag, iova, lg2)
    before = set(tlb.cache.keys())
    doomed = {k for k in before if k[0] == TAG and k[2] << k[1] < start + size and (k[2] + 1) << k[1] > start}
    assert tlb.invalidate_range(TAG, start, size) == len(doomed)
    assert set(tlb.cache.keys()) == before - doomed
    census = {}
    for k in before - doomed:
        census[k[1]] = census.get(k[1], 0) + 1
    assert tlb.page_sizes() == dict(sorted(census.items()))


def test_invalidate_range_catches_a_large_page_overlapping_one_byte():
    tlb = Iotlb(CacheConfig(4096))
    tlb.fill(TAG, 0x20_0000, MIB2)
    assert tlb.invalidate_range(TAG, 0x3F_FFFF, 1) == 1
    assert tlb.page_sizes() == {}


def test_invalidate_range_scans_when_the_range_is_large():
    tlb = Iotlb(CacheConfig(4))
    tlb.fill(TAG, 0x1000, KIB4)
    tlb.fill(TAG, 0x4000_0000, GIB1)
    tlb.fill(OTHER, 0x1000, KIB4)
    assert tlb.invalidate_range(TAG, 0, 1 << 40) == 2
    assert len(tlb) == 1 and tlb.page_sizes() == {KIB4: 1}


@pytest.mark.parametrize("iova, size, text", [(0, 0, "size=0"), (-1, 8, "iova=-1"), (0, True, "size=True"), ("0", 8, "iova='0'")])
def test_invalidate_range_rejects_a_bad_range_naming_it(iova, size, text):
    with pytest.raises(ValueError, match=text):
        Iotlb(CacheConfig(4)).invalidate_range(TAG, iova, size)
    with pytest.raises(ValueError, match=text):
        PagingStructureCache(formats.get("vtd-ss-4level"), {1: 4}).invalidate_range(TAG, iova, size)


def test_invalidate_range_accepts_numpy_integers():
    np = pytest.importorskip("numpy")
    tlb = Iotlb(CacheConfig(4))
    tlb.fill(TAG, 0x1000, KIB4)
    assert tlb.invalidate_range(TAG, np.uint64(0x1000), np.int64(0x1000)) == 1


def test_invalidate_tag_where_and_flush():
    tlb = Iotlb(CacheConfig(16))
    for tag in [(1, -1), (1, 3), (2, -1)]:
        tlb.fill(tag, 0, KIB4)
    assert tlb.invalidate_tag((1, 3)) == 1
    assert tlb.invalidate_where(lambda tag: tag[0] == 1) == 1
    assert tlb.flush() == 1
    assert len(tlb) == 0 and tlb.page_sizes() == {}


def test_iotlb_entries_frame():
    tlb = Iotlb(CacheConfig(4))
    tlb.fill(TAG, 0x20_1234, MIB2)
    df = tlb.entries()
    assert list(df.columns) == ["tag", "iova", "size", "lg2"]
    assert int(df["iova"][0]) == 0x20_0000 and int(df["size"][0]) == 1 << MIB2


def test_a_nested_entry_is_no_larger_than_the_smaller_stage_page():
    assert nested_entry_lg2(MIB2, KIB4) == KIB4
    assert nested_entry_lg2(KIB4, GIB1) == KIB4
    assert nested_entry_lg2(GIB1, MIB2) == MIB2
    tlb = Iotlb(CacheConfig(4))
    tlb.fill(TAG, 0x20_0000, nested_entry_lg2(MIB2, KIB4))
    assert tlb.lookup(TAG, 0x20_0fff) == KIB4
    assert tlb.lookup(TAG, 0x20_1000) is None


# -- PagingStructureCache ---------------------------------------------------------------------


@pytest.fixture
def fmt4():
    return formats.get("vtd-ss-4level")


def test_psc_lookup_returns_the_deepest_cached_level_and_counts_each_probe(fmt4):
    psc = PagingStructureCache(fmt4, {1: CacheConfig(4), 2: CacheConfig(4), 3: CacheConfig(4)})
    assert psc.lookup(TAG, 0x1234_5000) is None  # probes L1, L2, L3: three misses
    psc.fill(TAG, 0x1234_5000, [3, 2])
    assert psc.lookup(TAG, 0x1234_5000) == 2  # L1 miss, L2 hit, L3 not probed
    psc.fill(TAG, 0x1234_5000, [1])
    assert psc.lookup(TAG, 0x1234_5000) == 1
    counts = {lv: (c.hits, c.misses) for lv, c in psc.caches.items()}
    assert counts == {1: (1, 2), 2: (1, 1), 3: (0, 1)}


def test_psc_entry_covers_its_level_span(fmt4):
    psc = PagingStructureCache(fmt4, {1: CacheConfig(4), 2: CacheConfig(4)})
    psc.fill(TAG, 0x20_0000, [1, 2])
    assert psc.lookup(TAG, 0x3F_F000) == 1  # same 2 MiB span as the filled PDE
    assert psc.lookup(TAG, 0x40_0000) == 2  # next 2 MiB span, same 1 GiB span
    assert psc.lookup(TAG, 0x4000_0000) is None
    assert psc.lookup(OTHER, 0x20_0000) is None


def test_psc_ignores_levels_outside_the_format_and_empty_levels(fmt4):
    psc = PagingStructureCache(fmt4, {1: CacheConfig(0), 2: CacheConfig(4), 4: CacheConfig(4), 5: CacheConfig(2)})
    assert list(psc.caches) == [2]
    psc.fill(TAG, 0, [0, 1, 2, 3, 4, 5])
    assert len(psc) == 1


def test_psc_rejects_a_leaf_level(fmt4):
    with pytest.raises(ValueError, match="level 0"):
        PagingStructureCache(fmt4, {0: CacheConfig(4)})


def test_psc_invalidate_range_per_level(fmt4):
    psc = PagingStructureCache(fmt4, {1: CacheConfig(8), 2: CacheConfig(8)})
    psc.fill(TAG, 0x0, [1, 2])
    psc.fill(TAG, 0x20_0000, [1])
    psc.fill(OTHER, 0x0, [1, 2])
    # [0x1f_f000, 0x20_0000) overlaps the first 2 MiB PDE span and the first 1 GiB span only
    assert psc.invalidate_range(TAG, 0x1F_F000, 0x1000) == 2
    assert psc.lookup(TAG, 0x20_0000) == 1
    assert psc.lookup(OTHER, 0x0) == 1
    assert psc.invalidate_tag(OTHER) == 2
    assert psc.invalidate_where(lambda tag: True) == 1
    assert psc.flush() == 0


def test_psc_stats_frame(fmt4):
    psc = PagingStructureCache(fmt4, {1: CacheConfig(4), 3: CacheConfig(2)})
    psc.lookup(TAG, 0)
    df = psc.stats()
    assert list(df["level"]) == [1, 3]
    assert list(df["misses"]) == [1, 1] and list(df["entries"]) == [4, 2]


def test_walk_cost_rule(fmt4):
    assert walk_references(fmt4, None, 0) == 4
    assert walk_references(fmt4, None, 1) == 3  # 2 MiB leaf
    assert walk_references(fmt4, 1, 0) == 1
    assert walk_references(fmt4, 3, 1) == 2
    with pytest.raises(ValueError, match="hit must be > leaf"):
        walk_references(fmt4, 1, 1)


# -- Caches -----------------------------------------------------------------------------------


def test_caches_coerce_ints_and_are_immutable_and_hashable():
    c = Caches(iotlb=128, psc={1: 16, 2: CacheConfig(4)})
    assert c.iotlb == CacheConfig(128)
    assert c.psc[1] == CacheConfig(16)
    assert hash(c) == hash(Caches(iotlb=CacheConfig(128), psc={2: 4, 1: 16}))
    with pytest.raises(TypeError):
        c.psc[3] = CacheConfig(1)
    d = c.replace(iotlb=64, stage2_tlb={"entries": 32, "ways": 4})
    assert d.iotlb.entries == 64 and d.stage2_tlb.sets == 8 and c.iotlb.entries == 128


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"iotlb": -3}, "entries=-3"),
        ({"iotlb": 8, "psc": {0: 8}}, "level 0"),
        ({"iotlb": 8, "psc": {"1": 8}}, "level '1'"),
        ({"iotlb": 8, "stage2_psc": {2: "big"}}, "'big' is not a cache configuration"),
        ({"iotlb": "64"}, "'64' is not a cache configuration"),
    ],
)
def test_bad_caches_name_the_value(kwargs, text):
    with pytest.raises(ValueError, match=text):
        Caches(**kwargs)


def test_caches_replace_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown field.*tlb"):
        Caches.none().replace(tlb=4)


def test_caches_display_as_text_and_html():
    caches = Caches.for_platform("intel-vtd-48")
    assert "psc L2" in str(caches) and "source:" in str(caches)
    html = caches._repr_html_()
    assert "stage2_psc" in html and "Neugebauer" in html
    assert "hits=0" in repr(Iotlb(CacheConfig(4))) and "L1: 4" in repr(PagingStructureCache(formats.get("vtd-ss-4level"), {1: 4}))


def test_caches_none_has_no_cache_at_all():
    none = Caches.none()
    assert none.iotlb.entries == 0 and not none.psc and not none.stage2_psc
    assert none.stage2_tlb.entries == 0


@pytest.mark.parametrize("name", il.platforms.names())
def test_every_catalogue_platform_has_defaults(name):
    platform = il.platforms.get(name)
    caches = Caches.for_platform(platform)
    assert caches == Caches.for_platform(name)
    assert caches.name == name and caches.source
    assert caches.iotlb.entries > 0
    df = caches.describe()
    assert list(df.columns) == ["cache", "level", "entries", "ways", "sets", "replacement"]
    assert df["cache"].iloc[0] == "iotlb"
    for stage in ("paging", "stage1"):
        if stage in platform.formats:
            psc = PagingStructureCache(platform.format(stage), caches.psc)
            assert all(1 <= lv <= platform.format(stage).top_level for lv in psc.caches)


def test_for_platform_unknown_name_is_enoent_listing_platforms_and_families():
    with pytest.raises(IommuError, match="ENOENT: no platform or IOMMU family .*intel-vtd-48.*families: VT-d"):
        Caches.for_platform("no-such-platform")


@pytest.mark.parametrize(
    "family, expected",
    [("VT-d", "VT-d"), ("smmuv3", "SMMUv3"), (il.IommuFamily.AMD, "AMD"), ("vtd-ss", "VT-d"), ("arm-lpae", "SMMUv3"), ("riscv", "RISC-V")],
)
def test_for_family_accepts_iommu_and_format_family_names(family, expected):
    caches = Caches.for_family(family)
    assert caches.name == expected
    assert caches == Caches.for_platform(family)


def test_for_family_refuses_a_format_family_two_iommus_share():
    with pytest.raises(IommuError, match="EINVAL: format family 'x86-64' is used by VT-d and AMD"):
        Caches.for_platform("x86-64")


def test_platform_table_overrides_family(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text(
        '[families."VT-d"]\nsource = "fam"\niotlb = { entries = 64 }\n'
        '[platforms.intel-vtd-57]\niotlb = { entries = 128, ways = 8 }\n'
    )
    d = load_defaults(path)
    assert d.for_platform("intel-vtd-57", "VT-d").iotlb == CacheConfig(128, 8)
    assert d.for_platform("intel-vtd-57", "VT-d").source == "fam"
    assert d.for_platform("intel-vtd-48", "VT-d").iotlb == CacheConfig(64)


def test_malformed_defaults_are_einval_naming_the_key(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text('[families.AMD]\niotlb = { entries = 64, ways = 3 }\n')
    with pytest.raises(IommuError, match=r"EINVAL: .*families.AMD.*ways=3"):
        load_defaults(path)
    path.write_text('[families.AMD]\ntlb = 4\n')
    with pytest.raises(IommuError, match="unknown key.*tlb"):
        load_defaults(path)


# -- against a reference model ----------------------------------------------------------------


def reference_lru(capacity: int, keys: list[int]) -> list[bool]:
    """An obviously correct LRU: a list, most recent at the end."""
    held: list[int] = []
    hits = []
    for k in keys:
        hit = k in held
        hits.append(hit)
        if hit:
            held.remove(k)
        elif len(held) == capacity:
            held.pop(0)
        held.append(k)
    return hits


def model_hits(cache: Cache, keys: list[int], index_of) -> list[bool]:
    hits = []
    for k in keys:
        hit = cache.lookup(k, index_of(k))
        hits.append(hit)
        if not hit:
            cache.fill(k, index_of(k))
    return hits


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 6), keys=st.lists(st.integers(0, 10), max_size=60))
def test_fully_associative_lru_matches_the_reference(capacity, keys):
    cache = Cache(CacheConfig(capacity))
    assert model_hits(cache, keys, lambda k: k) == reference_lru(capacity, keys)
    assert len(cache) == min(capacity, len(set(keys)))


@settings(max_examples=200, deadline=None)
@given(
    ways=st.integers(1, 3),
    sets_lg2=st.integers(0, 3),
    keys=st.lists(st.integers(0, 40), max_size=80),
)
def test_set_associative_lru_is_a_reference_lru_per_set(ways, sets_lg2, keys):
    sets = 1 << sets_lg2
    cache = Cache(CacheConfig(ways * sets, ways=ways))
    got = model_hits(cache, keys, lambda k: k)
    expected = [None] * len(keys)
    for s in range(sets):
        positions = [i for i, k in enumerate(keys) if k % sets == s]
        for i, hit in zip(positions, reference_lru(ways, [keys[i] for i in positions])):
            expected[i] = hit
    assert got == expected


def test_hot_path_is_fast_enough_for_a_replay():
    cache = Cache(CacheConfig(64))
    rng = random.Random(1)
    keys = [rng.randrange(96) for _ in range(50_000)]
    hits = 0
    for k in keys:
        if cache.probe(k, k):
            hits += 1
        else:
            cache.fill(k, k)
    assert 0 < hits < len(keys)


def test_iotlb_and_its_statistics_as_dataframes():
    tlb = Iotlb(CacheConfig(2))
    tlb.fill(TAG, 0x1000, KIB4)
    tlb.fill(TAG, 0x2000, KIB4)
    tlb.fill(TAG, 0x3000, KIB4)  # evicts 0x1000
    assert tlb.lookup(TAG, 0x3000) == KIB4 and tlb.lookup(TAG, 0x1000) is None
    tlb.invalidate_range(TAG, 0x2000, 0x1000)
    s = tlb.stats
    assert (s.hits, s.misses, s.fills, s.evictions, s.invalidated) == (1, 1, 3, 1, 1)
    assert s.lookups == 2 and s.hit_rate == 0.5 and s.flushed_entries == 1
    row = s.to_dataframe()
    assert len(row) == 1 and row.loc[0, "evictions"] == 1 and row.loc[0, "hit_rate"] == 0.5
    df = tlb.to_dataframe()
    assert str(df["iova"].dtype) == "UInt64" and df["iova"].tolist() == [0x3000]


def test_caches_and_walk_caches_as_dataframes(fmt4):
    c = Caches(iotlb=CacheConfig(8, ways=2), psc={1: 4, 2: 2})
    assert c.to_dataframe().equals(c.describe())
    assert c.to_dataframe()["cache"].tolist() == ["iotlb", "psc", "psc", "stage2_tlb"]
    psc = PagingStructureCache(fmt4, {1: 4})
    psc.lookup(TAG, 0x1000)
    assert psc.to_dataframe().loc[0, "misses"] == 1
