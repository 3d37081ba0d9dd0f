"""Paging-structure (walk) caches: the non-leaf entries that let a walk start part-way down.

Walk cost with a paging-structure cache
---------------------------------------
A hit at level ``L`` for an address whose leaf sits at level ``leaf`` supplies the pointer to the
level ``L - 1`` table, so the walk reads levels ``L - 1 .. leaf``: ``L - leaf`` references. With
no hit the walk reads every level from the top: ``fmt.top_level - leaf + 1`` references.
:func:`walk_references` computes it; the replay charges it.

Levels use the numbering of :class:`iommu_lab.hardware.formats.Format` (and of Linux's
generic_pt): level 0 holds the leaf PTEs of the smallest page, ``fmt.top_level`` is the root
table. Arm documents count the other way (level 0 is the root of a 4-level table): for a
4 KiB-granule, 48-bit table the TCU "stage 1 level 0" walk cache holds what this module calls
level 3, and Arm level 2 is this module's level 1.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Iterable, Mapping

from iommu_lab.dma.cache import Cache, CacheConfig, as_config, check_level, range_args

__all__ = ["PagingStructureCache", "walk_references"]


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
            check_level(level, "levels")
        for level in sorted(levels):
            cfg = as_config(levels[level], f"levels[{level}]")
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
        iova, size = range_args(iova, size)
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

    def to_dataframe(self):
        """One row per configured level (:meth:`stats`)."""
        return self.stats()

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
