"""One set-associative cache of hashable keys: the storage every IOMMU translation cache shares.

:class:`CacheConfig` is a cache's size, associativity and replacement policy; :class:`Cache`
the storage, indexed as hardware indexes (the low bits of a page or table-entry number select
the set); :class:`CacheStats` its counters at one moment. :mod:`iommu_lab.dma.iotlb` and
:mod:`iommu_lab.dma.psc` give it the keys and invalidation rules of the real structures.
"""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterator, Mapping

from iommu_lab.core.enums import member_of
from iommu_lab.core.ranges import exact_int

__all__ = ["Cache", "CacheConfig", "CacheStats", "Replacement", "XorShift", "as_config", "check_level", "range_args"]


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


_M64 = (1 << 64) - 1
#: Most entries one cache may have: every set is built up front, so the bound bounds memory.
MAX_ENTRIES = 1 << 20


class XorShift:
    """The seeded victim choice of RANDOM replacement: Marsaglia's xorshift64 (13, 7, 17).

    Seeded through splitmix64 so that nearby seeds give unrelated streams; the compiled cache
    loop (:mod:`iommu_lab.dma.kernels`) runs the same recurrence on the same state, so both
    engines evict the same entries.
    """

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = initial_state(seed)

    def below(self, n: int) -> int:
        """The next draw, reduced to ``0 .. n - 1``."""
        x = self.state
        x ^= (x << 13) & _M64
        x ^= x >> 7
        x ^= (x << 17) & _M64
        self.state = x
        return x % n


def initial_state(seed: int) -> int:
    """splitmix64 of ``seed`` (never 0, which xorshift cannot leave)."""
    z = (int(seed) + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    z ^= z >> 31
    return z or 1


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
        if self.entries > MAX_ENTRIES:
            raise ValueError(
                f"entries={self.entries:,} is more than a cache model holds; allowed: 0 .. {MAX_ENTRIES:,} "
                f"entries (2**20; real IOTLBs and walk caches hold a few thousand at most)"
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


def range_args(iova: Any, size: Any) -> tuple[int, int]:
    """``(iova, size)`` as Python ints (numpy integers welcome); ValueError if not a range."""
    try:
        start, length = exact_int(iova, "iova"), exact_int(size, "size")
    except TypeError:
        start = length = -1
    if start < 0 or length < 1:
        raise ValueError(
            f"invalidate_range(iova={iova!r}, size={size!r}): iova must be an integer >= 0 and "
            f"size an integer >= 1"
        )
    return start, length


def _ways_help(entries: int) -> str:
    # divisors w with entries // w a power of two: entries / 2**k for each k that divides evenly
    ok = sorted({entries >> k for k in range(entries.bit_length()) if (entries >> k) << k == entries})
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
        config = as_config(config, "config")
        self.config = config
        self.name = name
        self.seed = seed
        nsets = max(config.sets, 1)
        self._sets: list[dict[Hashable, None]] = [{} for _ in range(nsets)]
        self._mask = nsets - 1  # sets is a power of two, so index & mask == index % sets
        self._ways = config.entries // nsets
        self._lru = config.replacement is Replacement.LRU
        self._rng = XorShift(seed) if config.replacement is Replacement.RANDOM else None
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
        return next(itertools.islice(s, self._rng.below(len(s)), None))

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
    def stats(self) -> CacheStats:
        """The counters now, as a :class:`CacheStats`."""
        return CacheStats(self.hits, self.misses, self.fills, self.evictions, self.invalidated)

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



def check_level(level: Any, where: str) -> None:
    if not _is_int(level) or level < 1:
        raise ValueError(
            f"{where}: level {level!r} is not a table level; paging-structure caches hold "
            f"non-leaf entries, so levels are integers >= 1 (Format numbering: 0 = leaf PTEs)"
        )


def as_config(value: Any, where: str) -> CacheConfig:
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
    text = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise ValueError(f"{where}: {text} is not a cache configuration; give a CacheConfig, an int (entries) or a table with entries/ways/replacement")



@dataclass(frozen=True)
class CacheStats:
    """The counters of one cache at one moment (a snapshot; the cache keeps counting).

    ``hits`` and ``misses`` count lookups, ``fills`` new entries inserted, ``evictions``
    entries a fill pushed out, ``invalidated`` entries an invalidation or flush removed.
    ``walk_refs`` is the page-table references the misses cost, where the cache's owner walks
    on a miss (:class:`~iommu_lab.dma.nested_iotlb.NestedIotlb`); 0 otherwise.
    """

    hits: int = 0
    misses: int = 0
    fills: int = 0
    evictions: int = 0
    invalidated: int = 0
    walk_refs: int = 0

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        """hits / lookups; NaN before the first lookup."""
        return self.hits / self.lookups if self.lookups else math.nan

    @property
    def flushed_entries(self) -> int:
        """Entries removed by invalidations: the name the combined IOTLB's statistics used."""
        return self.invalidated

    def to_dataframe(self):
        """One row: every counter, ``lookups`` and ``hit_rate``."""
        import pandas as pd

        row = {name: getattr(self, name) for name in self.__dataclass_fields__}
        row.update(lookups=self.lookups, hit_rate=self.hit_rate)
        return pd.DataFrame([row])
