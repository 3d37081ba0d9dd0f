"""Translation caches of an IOMMU: the IOTLB and the paging-structure (walk) caches.

An IOMMU keeps three kinds of translation state on chip:

* the **IOTLB** (VT-d "IOTLB", SMMU TBU TLB, AMD "IOTLB"): final input-address -> output-address
  entries, tagged by domain (VT-d DID, SMMU VMID/ASID, AMD DomainID) and PASID. An entry maps
  one page of the size the walk found; for hardware nesting the combined entry is no larger than
  the smaller of the stage-1 and stage-2 pages that cover the address, since one entry can only
  describe a range that is contiguous in both stages (:func:`nested_entry_lg2`; the research
  notes' section 2.3, "What the caches hold");
* **paging-structure caches** (VT-d "paging-structure caches": PML5E, PML4E, PDPE and PDE caches;
  the SMMU TCU "walk cache"; the AMD IOMMU's cached page-directory entries, which its
  INVALIDATE_IOMMU_PAGES command drops when the PDE bit is set, Linux
  ``CMD_INV_IOMMU_PAGES_PDE_MASK``): non-leaf entries, each a pointer to the next-lower table,
  so a walk can start part-way down;
* for nesting, **stage-2 entries** (GPA -> HPA) used for the stage-1 table pointers and the final
  GPA.

:class:`Cache` is the storage all of them share: a set-associative cache of hashable keys with
LRU, FIFO or random replacement. :class:`Iotlb` and :class:`PagingStructureCache` give it the
keys and invalidation rules of the real structures. :class:`Caches` is the configuration of one
whole hierarchy, with per-family defaults from ``data/caches/defaults.toml`` (figures cited in
``data/caches/README.md``).

Walk cost with a paging-structure cache
---------------------------------------
A hit at level ``L`` for an address whose leaf sits at level ``leaf`` supplies the pointer to the
level ``L - 1`` table, so the walk reads levels ``L - 1 .. leaf``: ``L - leaf`` references. With
no hit the walk reads every level from the top: ``fmt.top_level - leaf + 1`` references.
:func:`walk_references` computes it; the replay charges it.

Levels use the numbering of :class:`iommu_lab.pagetable.formats.Format` (and of Linux's
generic_pt): level 0 holds the leaf PTEs of the smallest page, ``fmt.top_level`` is the root
table. Arm documents count the other way (level 0 is the root of a 4-level table): for a
4 KiB-granule, 48-bit table the TCU "stage 1 level 0" walk cache holds what this module calls
level 3, and Arm level 2 is this module's level 1.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import operator
import random
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping

from iommu_lab.core import display
from iommu_lab.core.enums import member_of
from iommu_lab.core.errors import IommuError

__all__ = [
    "Replacement",
    "CacheConfig",
    "Cache",
    "Iotlb",
    "PagingStructureCache",
    "Caches",
    "walk_references",
    "nested_entry_lg2",
    "CacheDefaults",
    "load_defaults",
]


class Replacement(enum.Enum):
    """Which entry of a full set a fill evicts.

    ``LRU``: the least recently used (a hit makes an entry most recent); hardware usually
    approximates it (the Arm MMU-600 TBU micro TLB offers pseudo-LRU or round-robin through
    its ``utlb_roundrobin`` tie-off). ``FIFO``: the oldest fill (round-robin); hits change
    nothing. ``RANDOM``: a victim drawn from the set by a seeded generator.
    """

    LRU = "lru"
    FIFO = "fifo"
    RANDOM = "random"

    @classmethod
    def parse(cls, value: Replacement | str) -> Replacement:
        """A member from itself or its name (``"lru"``, ``"FIFO"``); ValueError otherwise,
        naming the ``replacement=`` argument as ``CacheConfig`` takes it."""
        try:
            return member_of(cls, value, "replacement policy")
        except ValueError:
            allowed = ", ".join(repr(r.value) for r in cls)
            raise ValueError(
                f"replacement={value!r} is not a replacement policy; allowed: {allowed} (or a Replacement member)"
            ) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class CacheConfig:
    """Size, associativity and replacement policy of one cache.

    Parameters
    ----------
    entries : int
        How many entries the cache holds; 0 means the cache does not exist (every lookup
        misses and fills are dropped).
    ways : int or None (default: None)
        Entries per set. ``None`` is fully associative (one set). Otherwise ``ways`` must
        divide ``entries`` and ``sets = entries // ways`` must be a power of two, because a set
        is selected by the low bits of the page number, as hardware does.
    replacement : Replacement or str (default: Replacement.LRU)
        ``"lru"``, ``"fifo"`` or ``"random"``.
    """

    entries: int
    ways: int | None = None
    replacement: Replacement = Replacement.LRU

    def __post_init__(self) -> None:
        if not _is_int(self.entries) or self.entries < 0:
            raise ValueError(
                f"entries={self.entries!r} is not a cache size; entries must be an integer >= 0 "
                f"(0 = no such cache), not a bool, float or string"
            )
        if self.ways is not None:
            self._check_ways()
        object.__setattr__(self, "replacement", Replacement.parse(self.replacement))

    def _check_ways(self) -> None:
        ways = self.ways
        if not _is_int(ways) or ways < 1:
            raise ValueError(
                f"ways={ways!r} is not an associativity; ways must be an integer >= 1 "
                f"(entries per set) or None for a fully associative cache"
            )
        if self.entries == 0:
            return
        if self.entries % ways:
            raise ValueError(
                f"ways={ways} does not divide entries={self.entries}; ways must divide entries "
                f"so that sets = entries // ways is a power of two ({_ways_help(self.entries)}), "
                f"or be None for a fully associative cache"
            )
        sets = self.entries // ways
        if sets & (sets - 1):
            raise ValueError(
                f"ways={ways} with entries={self.entries} gives {sets} sets, not a power of two; "
                f"a set is chosen by the low bits of the page number, so sets must be a power "
                f"of two ({_ways_help(self.entries)}), or use ways=None (fully associative)"
            )

    @property
    def sets(self) -> int:
        """Number of sets: 1 when fully associative, 0 when the cache does not exist."""
        if self.entries == 0:
            return 0
        if self.ways is None:
            return 1
        return self.entries // self.ways

    @property
    def fully_associative(self) -> bool:
        return self.ways is None or self.ways == self.entries

    def __str__(self) -> str:
        if self.entries == 0:
            return "none"
        assoc = "fully associative" if self.ways is None else f"{self.ways}-way x {self.sets} sets"
        return f"{self.entries} entries, {assoc}, {self.replacement.value}"


def _range_args(iova: Any, size: Any) -> tuple[int, int]:
    """``(iova, size)`` as Python ints (numpy integers welcome); ValueError if not a range."""
    try:
        if isinstance(iova, bool) or isinstance(size, bool):
            raise TypeError
        start, length = operator.index(iova), operator.index(size)
    except TypeError:
        start = length = -1
    if start < 0 or length < 1:
        raise ValueError(
            f"invalidate_range(iova={iova!r}, size={size!r}): iova must be an integer >= 0 and "
            f"size an integer >= 1"
        )
    return start, length


def _ways_help(entries: int) -> str:
    ok = [w for w in range(1, entries + 1) if entries % w == 0 and not (entries // w) & (entries // w - 1)]
    shown = ok if len(ok) <= 8 else ok[:4] + ["..."] + ok[-2:]
    return "for entries=" + str(entries) + " ways may be " + ", ".join(str(w) for w in shown)


class Cache:
    """One set-associative cache of hashable keys: the storage of the IOTLB and the PSCs.

    Each set is an insertion-ordered ``dict`` whose first key is the next victim: LRU moves a
    hit to the end, FIFO and RANDOM leave the order alone. The set of a key is
    ``index % sets``, where ``index`` is the page number (or the table-entry number) the caller
    derives from the address, as hardware indexes with the low bits of the virtual page number.

    Counters (plain ints, reset with :meth:`reset_stats`): ``hits``, ``misses`` (only
    :meth:`lookup` counts; :meth:`probe` does not), ``fills`` (new entries inserted),
    ``evictions`` (entries pushed out by a fill), ``invalidated`` (entries removed by
    :meth:`discard`, :meth:`invalidate` or :meth:`clear`).
    """

    def __init__(self, config: CacheConfig | int, *, name: str = "", seed: int = 0) -> None:
        config = _as_config(config, "config")
        self.config = config
        self.name = name
        self.seed = seed
        nsets = max(config.sets, 1)
        self._sets: list[dict[Hashable, None]] = [{} for _ in range(nsets)]
        self._mask = nsets - 1  # sets is a power of two, so index & mask == index % sets
        self._ways = config.entries // nsets
        self._lru = config.replacement is Replacement.LRU
        self._rng = random.Random(seed) if config.replacement is Replacement.RANDOM else None
        self._count = 0
        self.reset_stats()

    # -- hot path: no validation, no allocation beyond the key itself --------------------------

    def probe(self, key: Hashable, index: int) -> bool:
        """Whether ``key`` is cached; an LRU hit becomes most recent. Counts nothing."""
        s = self._sets[index & self._mask]
        if key in s:
            if self._lru:
                s[key] = s.pop(key)
            return True
        return False

    def lookup(self, key: Hashable, index: int) -> bool:
        """:meth:`probe`, counting one hit or one miss."""
        if self.probe(key, index):
            self.hits += 1
            return True
        self.misses += 1
        return False

    def fill(self, key: Hashable, index: int) -> Hashable | None:
        """Insert ``key``; return the key it evicted, or None.

        A key already present is not duplicated: LRU makes it most recent, FIFO and RANDOM
        keep its place, and nothing is evicted. With ``entries=0`` the fill is dropped.
        """
        s = self._sets[index & self._mask]
        if key in s:
            if self._lru:
                s[key] = s.pop(key)
            return None
        if not self._ways:
            return None
        victim = None
        if len(s) >= self._ways:
            victim = self._victim(s)
            del s[victim]
            self.evictions += 1
        else:
            self._count += 1
        s[key] = None
        self.fills += 1
        return victim

    def _victim(self, s: dict[Hashable, None]) -> Hashable:
        if self._rng is None:
            return next(iter(s))
        return next(itertools.islice(s, self._rng.randrange(len(s)), None))

    # -- queries and invalidation --------------------------------------------------------------

    def contains(self, key: Hashable, index: int) -> bool:
        """Whether ``key`` is cached, changing no order and counting nothing."""
        return key in self._sets[index & self._mask]

    def discard(self, key: Hashable, index: int) -> bool:
        """Drop one key if present (counted in ``invalidated``); whether it was there."""
        s = self._sets[index & self._mask]
        if key in s:
            del s[key]
            self._count -= 1
            self.invalidated += 1
            return True
        return False

    def invalidate(self, predicate: Callable[[Any], bool]) -> int:
        """Drop every key for which ``predicate(key)`` is true; how many were dropped.

        Each cached key is passed to ``predicate`` exactly once.
        """
        dropped = 0
        for s in self._sets:
            doomed = [k for k in s if predicate(k)]
            for k in doomed:
                del s[k]
            dropped += len(doomed)
        self._count -= dropped
        self.invalidated += dropped
        return dropped

    def clear(self) -> int:
        """Drop everything (a global invalidation); how many entries there were."""
        dropped = self._count
        for s in self._sets:
            s.clear()
        self._count = 0
        self.invalidated += dropped
        return dropped

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.keys())

    def keys(self) -> list:
        """Every cached key, set by set, each set in replacement order (next victim first).

        For RANDOM the order within a set is fill order (any entry may be the next victim).
        """
        return [k for s in self._sets for k in s]

    def set_keys(self, index: int) -> list:
        """The keys of the set ``index`` maps to, next victim first."""
        return list(self._sets[index & self._mask])

    def reset_stats(self) -> None:
        """Zero the counters; the cached entries stay."""
        self.hits = 0
        self.misses = 0
        self.fills = 0
        self.evictions = 0
        self.invalidated = 0

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses); NaN before the first lookup."""
        n = self.hits + self.misses
        return self.hits / n if n else math.nan

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"Cache({label}{self.config}; {self._count} cached, hits={self.hits}, "
            f"misses={self.misses}, evictions={self.evictions})"
        )


class Iotlb:
    """IOTLB: final translations, one entry per (tag, page size, page number).

    Mirrors the VT-d IOTLB (entries tagged by domain-id and, in scalable mode, PASID; section
    "IOTLB" of the VT-d spec's "Translation Caching" chapter) and the SMMU TBU TLBs (tagged by
    VMID/ASID). The key is ``(tag, lg2, iova >> lg2)`` and the set index ``iova >> lg2``, so
    pages of each size spread across sets by their own page number. ``tag`` is any hashable the
    caller chooses; the replay uses ``(domain_id, pasid)`` with ``pasid = -1`` for requests
    without PASID.

    Hardware looks every size up in parallel; :meth:`lookup` probes only the sizes currently
    present (largest first) and counts one hit or miss per call. Under nesting, fill with
    :func:`nested_entry_lg2` of the two stages' page sizes.
    """

    def __init__(self, config: CacheConfig, *, name: str = "IOTLB", seed: int = 0) -> None:
        self.cache = Cache(config, name=name, seed=seed)
        self.name = name
        self._per_size: dict[int, int] = {}
        self._sizes: tuple[int, ...] = ()

    @property
    def config(self) -> CacheConfig:
        return self.cache.config

    def lookup(self, tag: Hashable, iova: int) -> int | None:
        """lg2 of the page size of the entry covering ``iova`` for ``tag``, or None (miss)."""
        probe = self.cache.probe
        for lg2 in self._sizes:
            vpn = iova >> lg2
            if probe((tag, lg2, vpn), vpn):
                self.cache.hits += 1
                return lg2
        self.cache.misses += 1
        return None

    def fill(self, tag: Hashable, iova: int, lg2: int) -> Hashable | None:
        """Cache the ``2**lg2``-byte page containing ``iova``; return the evicted key or None."""
        vpn = iova >> lg2
        cache = self.cache
        before = cache._count
        victim = cache.fill((tag, lg2, vpn), vpn)
        if victim is not None:
            self._forget(victim[1])
            self._remember(lg2)
        elif cache._count != before:
            self._remember(lg2)
        return victim

    def _remember(self, lg2: int) -> None:
        n = self._per_size.get(lg2, 0)
        self._per_size[lg2] = n + 1
        if not n:
            self._sizes = tuple(sorted(self._per_size, reverse=True))

    def _forget(self, lg2: int) -> None:
        n = self._per_size[lg2] - 1
        if n:
            self._per_size[lg2] = n
        else:
            del self._per_size[lg2]
            self._sizes = tuple(sorted(self._per_size, reverse=True))

    def page_sizes(self) -> dict[int, int]:
        """How many entries of each page size (by lg2) are cached."""
        return dict(sorted(self._per_size.items()))

    def _drop_where(self, predicate: Callable[[tuple], bool]) -> int:
        forget = self._forget

        def doomed(key: tuple) -> bool:
            if predicate(key):
                forget(key[1])
                return True
            return False

        return self.cache.invalidate(doomed)

    def invalidate_range(self, tag: Hashable, iova: int, size: int) -> int:
        """Drop this tag's entries overlapping ``[iova, iova + size)``; how many.

        Models a page-selective invalidation (VT-d IOTLB / PASID-based-IOTLB invalidate
        descriptor with an address mask, issued by Linux ``qi_flush_piotlb`` under
        ``cache_tag_flush_range``; SMMU ``CMDQ_OP_TLBI_NH_VA``). This model drops exactly the
        overlapping entries; hardware may drop more, since the VT-d spec lets it invalidate at
        a coarser granularity than requested.
        """
        iova, size = _range_args(iova, size)
        end = iova + size
        pages = sum(((end - 1) >> lg2) - (iova >> lg2) + 1 for lg2 in self._sizes)
        if pages <= len(self.cache):
            return self._discard_pages(tag, iova, end)
        return self._drop_where(lambda k: k[0] == tag and k[2] << k[1] < end and (k[2] + 1) << k[1] > iova)

    def _discard_pages(self, tag: Hashable, iova: int, end: int) -> int:
        dropped = 0
        for lg2 in self._sizes:
            for vpn in range(iova >> lg2, ((end - 1) >> lg2) + 1):
                if self.cache.discard((tag, lg2, vpn), vpn):
                    self._forget(lg2)
                    dropped += 1
        return dropped

    def invalidate_tag(self, tag: Hashable) -> int:
        """Drop every entry of ``tag`` (VT-d domain- or PASID-selective invalidation)."""
        return self._drop_where(lambda k: k[0] == tag)

    def invalidate_where(self, predicate_on_tag: Callable[[Any], bool]) -> int:
        """Drop every entry whose tag satisfies the predicate, e.g. all PASIDs of a domain."""
        return self._drop_where(lambda k: predicate_on_tag(k[0]))

    def flush(self) -> int:
        """Global invalidation; how many entries were dropped."""
        self._per_size.clear()
        self._sizes = ()
        return self.cache.clear()

    @property
    def hits(self) -> int:
        return self.cache.hits

    @property
    def misses(self) -> int:
        return self.cache.misses

    @property
    def hit_rate(self) -> float:
        return self.cache.hit_rate

    def reset_stats(self) -> None:
        self.cache.reset_stats()

    def __len__(self) -> int:
        return len(self.cache)

    def entries(self):
        """One row per cached entry: ``tag``, ``iova`` (page base), ``size`` (bytes), ``lg2``."""
        from iommu_lab.core.frames import addr_frame

        keys = self.cache.keys()
        return addr_frame(
            {
                "tag": [repr(k[0]) for k in keys],
                "iova": [k[2] << k[1] for k in keys],
                "size": [1 << k[1] for k in keys],
                "lg2": [k[1] for k in keys],
            },
            hex_columns=["iova", "size"],
        )

    def __repr__(self) -> str:
        return f"Iotlb({self.config}; {len(self)} cached, hits={self.hits}, misses={self.misses})"


class PagingStructureCache:
    """Per-level caches of the non-leaf entries of one stage's page table.

    Mirrors VT-d's paging-structure caches (PML5E, PML4E, PDPE and PDE caches for first-stage
    and second-stage tables; VT-d spec "Translation Caching", "Paging-structure Caches"), the
    SMMU TCU walk cache (per stage and level) and the AMD IOMMU's cached PDEs. A level-``L``
    entry (``1 <= L <= fmt.top_level``) points to a level ``L - 1`` table and covers
    ``2**fmt.item_lg2(L)`` bytes of input; its key is ``(tag, L, iova >> fmt.item_lg2(L))``.

    ``levels`` maps a level to its :class:`CacheConfig`. Levels outside ``1..fmt.top_level`` are
    ignored (so one mapping fits 3-, 4- and 5-level formats) and ``entries=0`` levels dropped.
    """

    def __init__(self, fmt: Any, levels: Mapping[int, CacheConfig], *, name: str = "PSC", seed: int = 0) -> None:
        self.fmt = fmt
        self.name = name
        top = fmt.top_level
        self.caches: dict[int, Cache] = {}
        for level in levels:
            _check_level(level, "levels")
        for level in sorted(levels):
            cfg = _as_config(levels[level], f"levels[{level}]")
            if 1 <= level <= top and cfg.entries:
                self.caches[level] = Cache(cfg, name=f"{name} L{level}", seed=seed + level)
        self._order = tuple((lv, fmt.item_lg2(lv), c) for lv, c in self.caches.items())
        self._shift = {lv: sh for lv, sh, _ in self._order}

    def lookup(self, tag: Hashable, iova: int) -> int | None:
        """The lowest cached level holding an entry for ``iova``, or None.

        Probes configured levels from the lowest upward and stops at the first hit (the
        deepest pointer saves the most reads); every probed level counts a hit or a miss in
        its own :class:`Cache`.
        """
        for level, shift, cache in self._order:
            idx = iova >> shift
            if cache.probe((tag, level, idx), idx):
                cache.hits += 1
                return level
            cache.misses += 1
        return None

    def fill(self, tag: Hashable, iova: int, levels: Iterable[int]) -> None:
        """Cache the table-pointer entries a walk read at ``levels`` (unconfigured ones ignored)."""
        caches = self.caches
        shift = self._shift
        for level in levels:
            cache = caches.get(level)
            if cache is not None:
                idx = iova >> shift[level]
                cache.fill((tag, level, idx), idx)

    def walk_references(self, hit: int | None, leaf: int = 0) -> int:
        """Table reads of a walk to a leaf at ``leaf`` after a lookup returned ``hit``."""
        return walk_references(self.fmt, hit, leaf)

    def invalidate_range(self, tag: Hashable, iova: int, size: int) -> int:
        """Drop this tag's entries whose covered input range overlaps ``[iova, iova + size)``.

        A VT-d page-selective invalidation with the invalidation hint (IH) clear must also
        drop paging-structure entries; with IH set only leaf entries change, and the
        paging-structure caches may be kept (``qi_flush_piotlb``'s ``ih`` argument; iommufd's
        ``IOMMU_VTD_INV_FLAGS_LEAF``). The replay skips this call for leaf-only invalidations.
        This model drops exactly the overlapping entries; hardware may drop more.
        """
        iova, size = _range_args(iova, size)
        end = iova + size
        dropped = 0
        for level, shift, cache in self._order:
            lo, hi = iova >> shift, (end - 1) >> shift
            dropped += cache.invalidate(lambda k, lo=lo, hi=hi: k[0] == tag and lo <= k[2] <= hi)
        return dropped

    def invalidate_tag(self, tag: Hashable) -> int:
        """Drop every entry of ``tag`` at every level."""
        return sum(c.invalidate(lambda k: k[0] == tag) for c in self.caches.values())

    def invalidate_where(self, predicate_on_tag: Callable[[Any], bool]) -> int:
        """Drop every entry whose tag satisfies the predicate."""
        return sum(c.invalidate(lambda k: predicate_on_tag(k[0])) for c in self.caches.values())

    def flush(self) -> int:
        """Drop everything at every level."""
        return sum(c.clear() for c in self.caches.values())

    def reset_stats(self) -> None:
        for c in self.caches.values():
            c.reset_stats()

    def __len__(self) -> int:
        return sum(len(c) for c in self.caches.values())

    def stats(self):
        """One row per configured level: capacity (``entries``), ``cached``, hits, misses, hit rate."""
        import pandas as pd

        rows = [
            {
                "level": lv,
                "entries": c.config.entries,
                "cached": len(c),
                "hits": c.hits,
                "misses": c.misses,
                "hit_rate": c.hit_rate,
            }
            for lv, c in self.caches.items()
        ]
        return pd.DataFrame(rows, columns=["level", "entries", "cached", "hits", "misses", "hit_rate"])

    def __repr__(self) -> str:
        levels = ", ".join(f"L{lv}: {c.config.entries}" for lv, c in self.caches.items()) or "none"
        return f"PagingStructureCache({self.name!r}, {self.fmt.name if hasattr(self.fmt, 'name') else self.fmt}; {levels})"


def walk_references(fmt: Any, hit: int | None, leaf: int = 0) -> int:
    """Table entries a walk reads to reach a leaf at level ``leaf``.

    With a paging-structure-cache hit at level ``hit`` the walk starts at the level
    ``hit - 1`` table: ``hit - leaf`` reads. With no hit (``None``) it reads every level from
    the root: ``fmt.top_level - leaf + 1``.
    """
    if hit is None:
        return fmt.top_level - leaf + 1
    if hit <= leaf:
        raise ValueError(f"a paging-structure hit at level {hit} cannot serve a leaf at level {leaf}; hit must be > leaf")
    return hit - leaf


def nested_entry_lg2(stage1_lg2: int, stage2_lg2: int) -> int:
    """lg2 of the combined IOTLB entry for a nested translation: the smaller of the two pages.

    One IOTLB entry maps an aligned block that must be contiguous in both stages: inside a
    stage-1 page of ``2**stage1_lg2`` bytes the GPA moves with the IOVA, and inside a stage-2
    page of ``2**stage2_lg2`` bytes the HPA moves with the GPA, so only the smaller aligned
    block is contiguous end to end (a 2 MiB guest page backed by 4 KiB host pages caches as
    4 KiB entries).
    """
    return stage1_lg2 if stage1_lg2 < stage2_lg2 else stage2_lg2


# -- the configuration of a whole hierarchy ------------------------------------------------------


class _Levels(Mapping):
    """An immutable, hashable ``{level: CacheConfig}`` mapping (levels are ints >= 1)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[int, CacheConfig]) -> None:
        self._items = dict(sorted(items.items()))

    def __getitem__(self, level: int) -> CacheConfig:
        return self._items[level]

    def __iter__(self) -> Iterator[int]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in self._items.items()) + "}"


def _check_level(level: Any, where: str) -> None:
    if not _is_int(level) or level < 1:
        raise ValueError(
            f"{where}: level {level!r} is not a table level; paging-structure caches hold "
            f"non-leaf entries, so levels are integers >= 1 (Format numbering: 0 = leaf PTEs)"
        )


def _as_config(value: Any, where: str) -> CacheConfig:
    """A CacheConfig from itself, an int (entries) or a mapping of CacheConfig fields."""
    if isinstance(value, CacheConfig):
        return value
    if _is_int(value):
        return CacheConfig(value)
    if isinstance(value, Mapping):
        unknown = set(value) - {"entries", "ways", "replacement"}
        if unknown or "entries" not in value:
            raise ValueError(
                f"{where}: {dict(value)!r} is not a cache configuration; give entries "
                f"(required), ways and replacement"
            )
        return CacheConfig(value["entries"], value.get("ways"), value.get("replacement", Replacement.LRU))
    raise ValueError(f"{where}: {value!r} is not a cache configuration; give a CacheConfig, an int (entries) or a table with entries/ways/replacement")


def _as_levels(value: Any, where: str) -> _Levels:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: {value!r} must be a mapping {{level: CacheConfig or entries}}, e.g. {{1: 32, 2: 16}}")
    items = {}
    for level, cfg in value.items():
        _check_level(level, where)
        items[level] = _as_config(cfg, f"{where}[{level}]")
    return _Levels(items)


@dataclass(frozen=True)
class Caches:
    """The cache hierarchy one replay uses.

    Parameters
    ----------
    iotlb : CacheConfig
        Final-translation entries (:class:`Iotlb`).
    psc : Mapping[int, CacheConfig] (default: {})
        Paging-structure caches of stage 1 (or of the only stage), by level.
    stage2_tlb : CacheConfig (default: CacheConfig(0))
        Nested only: GPA -> HPA leaf entries (the SMMU's stage-2 entries, VT-d second-stage
        translations) used for stage-1 table pointers and the final GPA.
    stage2_psc : Mapping[int, CacheConfig] (default: {})
        Nested only: stage-2 paging-structure caches by level.
    name : str (default: "")
    source : str (default: "")
        Where the figures come from.

    Plain ints stand for ``CacheConfig(entries)`` and mappings of levels are frozen, so a
    ``Caches`` is immutable and hashable.
    """

    iotlb: CacheConfig
    psc: Mapping[int, CacheConfig] = field(default_factory=dict)
    stage2_tlb: CacheConfig = CacheConfig(0)
    stage2_psc: Mapping[int, CacheConfig] = field(default_factory=dict)
    name: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "iotlb", _as_config(self.iotlb, "iotlb"))
        object.__setattr__(self, "stage2_tlb", _as_config(self.stage2_tlb, "stage2_tlb"))
        object.__setattr__(self, "psc", _as_levels(self.psc, "psc"))
        object.__setattr__(self, "stage2_psc", _as_levels(self.stage2_psc, "stage2_psc"))
        for key in ("name", "source"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(f"{key}={getattr(self, key)!r} must be a string")

    @classmethod
    def none(cls) -> Caches:
        """No caches at all: every translation is a cold walk."""
        return cls(CacheConfig(0), name="none", source="no caches (every access walks)")

    @classmethod
    def for_platform(cls, platform: Any) -> Caches:
        """Defaults for a platform: a :class:`~iommu_lab.platform.Platform` or a catalogue name.

        Taken from ``data/caches/defaults.toml``: the platform's own table if there is one,
        laid over its family's table. A string that names no platform is tried as a family
        (see :meth:`for_family`); ``ENOENT`` lists both kinds of name otherwise.
        """
        from iommu_lab.hardware.platform import IommuFamily, platforms

        if isinstance(platform, IommuFamily):
            return cls.for_family(platform)
        if isinstance(platform, str):
            if platform in platforms:
                platform = platforms.get(platform)
            else:
                try:
                    return cls.for_family(platform)
                except IommuError as exc:
                    if exc.errno != "ENOENT":
                        raise
                    raise IommuError(
                        "ENOENT",
                        f"no platform or IOMMU family {platform!r}; platforms: "
                        f"{', '.join(platforms.names())}; families: {_family_names()}",
                    ) from None
        family = getattr(platform.family, "value", platform.family)
        return _defaults().for_platform(platform.name, family)

    @classmethod
    def for_family(cls, family: Any) -> Caches:
        """Defaults for an IOMMU family: an :class:`~iommu_lab.platform.IommuFamily`, its name
        (``"VT-d"``, ``"smmuv3"``), or a page-table format family that belongs to exactly one
        IOMMU family (``"vtd-ss"``, ``"arm-lpae"``; not ``"x86-64"``, used by VT-d and AMD).
        """
        from iommu_lab.hardware.platform import IommuFamily

        try:
            fam = IommuFamily.parse(family)
        except ValueError:
            fam = _family_of_format(family)
        return _defaults().for_platform("", fam.value).replace(name=fam.value)

    def replace(self, **changes: Any) -> Caches:
        """A copy with some fields changed (ints and plain mappings are coerced)."""
        allowed = [f.name for f in dataclasses.fields(self)]
        unknown = [k for k in changes if k not in allowed]
        if unknown:
            raise ValueError(f"Caches.replace: unknown field(s) {', '.join(unknown)}; fields are {', '.join(allowed)}")
        return dataclasses.replace(self, **changes)

    def _rows(self) -> list[tuple[str, int | None, CacheConfig]]:
        rows: list[tuple[str, int | None, CacheConfig]] = [("iotlb", None, self.iotlb)]
        rows += [("psc", lv, c) for lv, c in self.psc.items()]
        rows.append(("stage2_tlb", None, self.stage2_tlb))
        rows += [("stage2_psc", lv, c) for lv, c in self.stage2_psc.items()]
        return rows

    def describe(self):
        """One row per cache: cache, level, entries, ways (NA = fully associative), sets, replacement."""
        import pandas as pd

        rows = self._rows()
        return pd.DataFrame(
            {
                "cache": [r[0] for r in rows],
                "level": pd.array([r[1] for r in rows], dtype="Int64"),
                "entries": [r[2].entries for r in rows],
                "ways": pd.array([r[2].ways for r in rows], dtype="Int64"),
                "sets": [r[2].sets for r in rows],
                "replacement": [r[2].replacement.value for r in rows],
            }
        )

    _repr_html_ = display.html

    def __str__(self) -> str:
        lines = [f"Caches {self.name or '(unnamed)'}"]
        for cache, level, cfg in self._rows():
            label = cache if level is None else f"{cache} L{level}"
            lines.append(f"  {label:<14} {cfg}")
        if self.source:
            lines.append(f"  source: {self.source}")
        return "\n".join(lines)


def _family_names() -> str:
    from iommu_lab.hardware.platform import IommuFamily

    return ", ".join(f.value for f in IommuFamily)


def _family_of_format(name: Any):
    """The IOMMU family whose platforms may use page-table formats called ``name``."""
    from iommu_lab.hardware.platform import _FAMILY_FORMATS

    prefix = f"{name}-" if isinstance(name, str) else None
    owners = [fam for fam, prefixes in _FAMILY_FORMATS.items() if prefix in prefixes]
    if len(owners) == 1:
        return owners[0]
    if owners:
        raise IommuError(
            "EINVAL",
            f"format family {name!r} is used by {' and '.join(f.value for f in owners)}; "
            f"pass the platform or the IOMMU family instead",
        )
    raise IommuError("ENOENT", f"{name!r} is neither an IOMMU family ({_family_names()}) nor a format family")


# -- defaults from data/caches/defaults.toml -----------------------------------------------------

_TABLE_KEYS = ("iotlb", "psc", "stage2_tlb", "stage2_psc", "source")


class CacheDefaults:
    """A parsed defaults file: one table per family, optional per-platform overrides.

    ``for_platform(name, family)`` gives the :class:`Caches` for a platform: the family's
    table with the platform's own table (if any) laid over it key by key.
    """

    def __init__(self, families: dict[str, dict], platforms: dict[str, dict], where: str) -> None:
        self.families = families
        self.platforms = platforms
        self.where = where

    def for_platform(self, name: str, family: str) -> Caches:
        if family not in self.families:
            raise IommuError("ENOENT", f"{self.where}: no [families.{family!r}] table; families with defaults: {', '.join(sorted(self.families))}")
        table = {**self.families[family], **self.platforms.get(name, {})}
        return _caches_from_table(table, f"{self.where}: {name}", name)


def _caches_from_table(table: Mapping[str, Any], where: str, name: str) -> Caches:
    try:
        return Caches(
            iotlb=table.get("iotlb", 0),
            psc={int(k): v for k, v in table.get("psc", {}).items()},
            stage2_tlb=table.get("stage2_tlb", 0),
            stage2_psc={int(k): v for k, v in table.get("stage2_psc", {}).items()},
            name=name,
            source=table.get("source", ""),
        )
    except (ValueError, TypeError) as exc:
        raise IommuError("EINVAL", f"{where}: {exc}") from None


def load_defaults(path: Any = None) -> CacheDefaults:
    """Read and check a defaults file (default: the shipped ``data/caches/defaults.toml``)."""
    from pathlib import Path

    if path is None:
        from iommu_lab.core.paths import data_dir

        path = data_dir() / "caches" / "defaults.toml"
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IommuError("ENOENT", f"no cache defaults file {path}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise IommuError("EINVAL", f"{path}: malformed TOML: {exc}") from None
    unknown = set(doc) - {"families", "platforms"}
    if unknown:
        raise IommuError("EINVAL", f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; allowed: families, platforms")
    tables: dict[str, dict[str, dict]] = {}
    for section in ("families", "platforms"):
        tables[section] = dict(doc.get(section, {}))
        for key, table in tables[section].items():
            bad = set(table) - set(_TABLE_KEYS)
            if bad:
                raise IommuError("EINVAL", f"{path}: [{section}.{key}]: unknown key(s) {', '.join(sorted(bad))}; allowed: {', '.join(_TABLE_KEYS)}")
    defaults = CacheDefaults(tables["families"], tables["platforms"], str(path))
    for family, table in defaults.families.items():
        _caches_from_table(table, f"{path}: [families.{family}]", family)
    return defaults


_loaded: CacheDefaults | None = None


def _defaults() -> CacheDefaults:
    global _loaded
    if _loaded is None:
        _loaded = load_defaults()
    return _loaded
