"""The IOTLB: final translations, tagged by domain and PASID, one entry per page of any size.

For hardware nesting the combined entry is no larger than the smaller of the stage-1 and
stage-2 pages that cover the address (:func:`nested_entry_lg2`): one entry can only describe a
range that is contiguous in both stages (the research notes' section 2.3, "What the caches
hold").
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

from iommu_lab.dma.cache import Cache, CacheConfig, CacheStats, range_args

__all__ = ["Iotlb", "nested_entry_lg2"]


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
        iova, size = range_args(iova, size)
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

    @property
    def stats(self) -> CacheStats:
        """The counters now, as a :class:`~iommu_lab.dma.cache.CacheStats`."""
        return self.cache.stats

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

    def to_dataframe(self):
        """The cached entries, one row each (:meth:`entries`): ``iova`` and ``size`` as ``UInt64``."""
        return self.entries()

    def __repr__(self) -> str:
        return f"Iotlb({self.config}; {len(self)} cached, hits={self.hits}, misses={self.misses})"


def nested_entry_lg2(stage1_lg2: int, stage2_lg2: int) -> int:
    """lg2 of the combined IOTLB entry for a nested translation: the smaller of the two pages.

    One IOTLB entry maps an aligned block that must be contiguous in both stages: inside a
    stage-1 page of ``2**stage1_lg2`` bytes the GPA moves with the IOVA, and inside a stage-2
    page of ``2**stage2_lg2`` bytes the HPA moves with the GPA, so only the smaller aligned
    block is contiguous end to end (a 2 MiB guest page backed by 4 KiB host pages caches as
    4 KiB entries).
    """
    return stage1_lg2 if stage1_lg2 < stage2_lg2 else stage2_lg2
