"""A combined (stage 1 + stage 2) IOTLB in front of a nested pair, with the invalidation rules
a VMM must follow: the one IOTLB of :mod:`iommu_lab.dma.caches`, tagged per PASID and access.
"""

from __future__ import annotations

import dataclasses

from iommu_lab.core.errors import IommuError
from iommu_lab.dma.cache import CacheConfig, CacheStats
from iommu_lab.dma.iotlb import Iotlb
from iommu_lab.nesting.nested import Nested

__all__ = ["IotlbStats", "NestedIotlb"]

#: The combined IOTLB's statistics are the caches' own (``walk_refs`` filled in).
IotlbStats = CacheStats


class NestedIotlb:
    """A combined IOTLB (input page -> host page, tagged by PASID) in front of a nested pair.

    Teaching-level model of a combined (stage 1 + stage 2) IOTLB. A combined entry caches the result of a whole 2-D
    walk and is indexed by the *input* address, so its size is the smaller of the stage-1 and
    stage-2 leaves that produced it. The invalidation asymmetry follows from that index:

    * a stage-1 change (the guest's ``IOMMU_HWPT_INVALIDATE`` / SMMU ``TLBI_NH_VA``) names input
      addresses, so :meth:`invalidate_stage1` drops just the entries of that range and PASID;
    * a stage-2 change names GPAs, which no combined entry is indexed by, so
      :meth:`invalidate_stage2` must drop *every* combined entry of the VM — Linux's
      ``arm_smmu_tlb_inv_range_domain``: "When the S2 domain changes all the nested S1 ASIDs have
      to be flushed too" (``CMDQ_OP_TLBI_NH_ALL``), and the whole ATC for a nest parent.
      ``naive=True`` flushes only the stage-2 range and leaves stale translations behind, the
      mistake Linux's comment above warns about.

    Each entry is cached per access type (``"r"``/``"w"``) so a hit never widens a permission.
    The entries live in the one IOTLB model, :class:`iommu_lab.dma.iotlb.Iotlb` (fully associative,
    ``entries`` slots); to measure hit rates over a whole DMA trace, with capacities and walk
    caches, use :func:`iommu_lab.dma.replay.replay` on the pair.
    """

    def __init__(self, nested: Nested, entries: int = 1 << 20) -> None:
        self.nested = nested
        # the IOTLB model of trace replays, tagged by (PASID, access); large enough by default
        # that only invalidations remove entries
        self._iotlb = Iotlb(CacheConfig(entries), name="combined IOTLB")
        self._base: dict[tuple, tuple[int, int]] = {}  # (tag, lg2, page) -> (hpa, gpa) bases
        self._walk_refs = 0

    @property
    def iotlb(self) -> Iotlb:
        """The IOTLB the combined entries live in."""
        return self._iotlb

    @property
    def stats(self) -> CacheStats:
        """Hits, misses and invalidated entries of the IOTLB, with the references the misses cost."""
        return dataclasses.replace(self._iotlb.stats, walk_refs=self._walk_refs)

    def to_dataframe(self):
        """The cached combined entries, one row each (see :meth:`Iotlb.entries`)."""
        return self._iotlb.entries()

    def __len__(self) -> int:
        return len(self._iotlb)

    def translate(self, iova: int, *, access: str = "r", pasid: int | None = None) -> int:
        """The HPA for ``iova``: from the IOTLB on a hit, else by a cold 2-D walk that fills it."""
        tag = (pasid, access)
        lg2 = self._iotlb.lookup(tag, iova)
        if lg2 is not None:
            return self._base[(tag, lg2, iova >> lg2)][0] + (iova & ((1 << lg2) - 1))
        w = self.nested.walk(iova, access=access, pasid=pasid)
        self._walk_refs += w.n_refs
        if w.fault is not None:
            raise IommuError("EFAULT", str(w.fault))
        size = w.page_size or 0x1000
        lg2 = size.bit_length() - 1
        off = iova & (size - 1)
        victim = self._iotlb.fill(tag, iova, lg2)
        if victim is not None:
            self._base.pop(victim, None)
        self._base[(tag, lg2, iova >> lg2)] = (w.output - off, w.gpa - off)
        return int(w.output)

    def invalidate_stage1(self, iova: int, size: int, *, pasid: int | None = None) -> int:
        """Drop the combined entries overlapping ``[iova, iova + size)`` for ``pasid``."""
        n = 0
        for access in {k[0][1] for k in self._iotlb.cache.keys() if k[0][0] == pasid}:
            n += self._iotlb.invalidate_range((pasid, access), iova, size)
        self._forget_dropped()
        return n

    def invalidate_stage2(self, gpa: int, size: int, *, naive: bool = False) -> int:
        """A stage-2 change: drop every combined entry (``naive=True``: none of them, since no
        combined entry is indexed by the GPA range — which leaves stale translations)."""
        if naive:
            return 0
        n = self._iotlb.flush()
        self._base.clear()
        return n

    def _forget_dropped(self) -> None:
        live = set(self._iotlb.cache.keys())
        for key in [k for k in self._base if k not in live]:
            del self._base[key]

    def __repr__(self) -> str:
        s = self.stats
        return f"<NestedIotlb {len(self)} entries, {s.hits} hits, {s.misses} misses, {s.walk_refs} walk refs>"
