"""The DMA API's IOVA allocator and its deferred-flush queue (drivers/iommu/iova.c, dma-iommu.c).

Two things Linux does between ``dma_unmap_*`` and the next ``dma_map_*`` decide what a DMA
trace looks like and what replaying it costs:

* **When an unmap is invalidated** (:class:`FlushPolicy`). ``iommu.strict=1`` gives an
  ``IOMMU_DOMAIN_DMA`` domain: ``__iommu_dma_unmap`` invalidates the range and waits
  (``iommu_iotlb_sync``) before the IOVA is freed. ``iommu.strict=0`` gives
  ``IOMMU_DOMAIN_DMA_FQ``: the IOVA goes into a flush queue (``queue_iova``) and the whole
  domain is flushed (``fq_flush_iotlb``) when the queue is full or its timer fires; only then
  are the queued IOVAs freed (``fq_ring_free``). :class:`IovaFq` is that queue; the generators'
  allocator and the replay's invalidation both use it, so both follow the same rule.
* **Which IOVA a map gets** (:class:`IovaAllocator`). ``iommu_dma_alloc_iova`` rounds a request
  of fewer than ``2**(IOVA_RANGE_CACHE_MAX_SIZE - 1)`` = 32 granules up to a power of two,
  ``alloc_iova`` places a fresh range naturally aligned to that power of two, and
  ``free_iova_fast`` pushes a freed range onto a per-CPU magazine (``iova_rcache``) from which
  ``alloc_iova_fast`` pops the most recently freed range of the same order first -- so a busy
  driver mostly gets back the IOVAs it just released.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from iommu_lab.core.enums import member_of

__all__ = ["FlushPolicy", "FlushQueue", "GRANULE", "IOVA_FQ_SIZE", "IOVA_RANGE_CACHE_MAX_SIZE", "IovaAllocator",
           "IovaFq"]

#: The IOVA granule the DMA API maps in: the smallest IOMMU page (iommu_dma_init_domain uses
#: ``__ffs(pgsize_bitmap)``), 4 KiB on x86 and on ARM with 4K pages.
GRANULE = 4096

#: iova.h: "log of max cached IOVA range size (in pages)".
IOVA_RANGE_CACHE_MAX_SIZE = 6

#: Entries per deferred-flush queue (dma-iommu.c ``IOVA_DEFAULT_FQ_SIZE``).
IOVA_FQ_SIZE = 256


class FlushPolicy(enum.Enum):
    """When an unmap's IOTLB invalidation happens (Linux ``iommu.strict`` / the domain type).

    The generators' ``policy=`` and the replay's ``policy=`` take this type, or its value as
    text (``"strict"``, ``"LAZY"``).
    """

    STRICT = "strict"  #: IOMMU_DOMAIN_DMA: invalidate and wait before dma_unmap returns
    LAZY = "lazy"  #: IOMMU_DOMAIN_DMA_FQ: queue the IOVA, flush the domain later

    @classmethod
    def parse(cls, value: FlushPolicy | str) -> FlushPolicy:
        """The member ``value`` names; ValueError for unknown text, TypeError for a non-string."""
        return member_of(cls, value, "flush policy", non_text=TypeError)


@dataclass(frozen=True)
class FlushQueue:
    """The size and timer of Linux's deferred-flush queue (drivers/iommu/dma-iommu.c).

    ``size`` entries per queue (``IOVA_DEFAULT_FQ_SIZE`` = 256) and a timer that flushes
    ``timeout_ns`` after the first entry is queued (``IOVA_DEFAULT_FQ_TIMEOUT`` = 10 ms).
    :meth:`single` is the one large queue used when IOTLB flushes are shadowed by a hypervisor
    (``IOVA_SINGLE_FQ_SIZE`` = 32768, ``IOVA_SINGLE_FQ_TIMEOUT`` = 1000 ms). The model has one
    queue per domain (one CPU).
    """

    size: int = IOVA_FQ_SIZE
    timeout_ns: int = 10_000_000

    def __post_init__(self) -> None:
        for name in ("size", "timeout_ns"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"FlushQueue {name}={v!r}: must be a positive integer")

    @classmethod
    def single(cls) -> FlushQueue:
        """The single queue of ``shadow_on_flush`` devices: 32768 entries, 1 s."""
        return cls(32768, 1_000_000_000)


class IovaFq:
    """One deferred-flush queue: the IOVA ranges unmapped but not yet invalidated.

    Mirrors dma-iommu.c's ``struct iova_fq`` and ``queue_iova``: a range is queued; when the
    queue is full the domain is flushed (``fq_flush_iotlb``) and every queued range is freed
    (``fq_ring_free``) before the new one is added; the first range queued arms the timer
    (``fq_timer``, ``timeout_ns`` later) whose expiry flushes and frees the same way. Whoever
    owns the queue performs the flush: the allocator gives the freed ranges back to its rcache,
    the replay drops the domain's IOTLB and walk-cache entries.
    """

    __slots__ = ("config", "entries", "deadline")

    def __init__(self, config: FlushQueue | None = None) -> None:
        self.config = config if config is not None else FlushQueue()
        self.entries: list[tuple[int, int]] = []
        #: when the armed timer fires (ns), or None when the queue is empty or time is not modelled
        self.deadline: int | None = None

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def full(self) -> bool:
        """``fq_full``: the next range cannot be queued without a flush first."""
        return len(self.entries) >= self.config.size

    def queue(self, iova: int, length: int, now: int | None = None) -> list[tuple[int, int]] | None:
        """``queue_iova``: queue ``[iova, iova + length)``; the ranges a full-queue flush freed.

        Returns None when the queue had room; otherwise the owner must flush the domain now
        (before the returned ranges are reused). ``now`` (ns) arms the timer if it is not
        running; without it the timer is not modelled.
        """
        freed = self.ring_free() if self.full else None
        self.entries.append((iova, length))
        if now is not None and self.deadline is None:
            self.deadline = now + self.config.timeout_ns
        return freed

    def ring_free(self) -> list[tuple[int, int]]:
        """``fq_ring_free`` after a flush: every queued range, the queue emptied, the timer off."""
        out, self.entries, self.deadline = self.entries, [], None
        return out

    def holds(self, iova: int, length: int) -> bool:
        """Whether a queued range overlaps ``[iova, iova + length)`` (an IOVA still unflushed)."""
        return any(q < iova + length and iova < q + n for q, n in self.entries)


@dataclass
class IovaAllocator:
    """The DMA API's IOVA allocator, reduced to the behaviour a trace shows.

    * Sizes are in granules; fewer than 32 (``2**(IOVA_RANGE_CACHE_MAX_SIZE - 1)``) are rounded
      up to a power of two, as ``iommu_dma_alloc_iova`` does so that freed ranges fit the caches.
    * Freed ranges go onto a LIFO stack per rounded size and are handed back most recent first,
      as ``iova_magazine_push``/``iova_magazine_pop`` do for the per-CPU ``iova_rcache``. (The
      kernel caches only orders below IOVA_RANGE_CACHE_MAX_SIZE and returns larger ranges to
      its rbtree; reusing those LIFO too is a simplification.)
    * A fresh range is naturally aligned to its power-of-two size (``alloc_iova`` with
      ``size_aligned``). The kernel searches top-down from the DMA limit; this allocator hands
      out fresh ranges bottom-up from ``next_free`` so that IOVAs stay next to the ``base`` the
      caller chose. Only the addresses differ, not the reuse pattern.
    * Under :attr:`FlushPolicy.LAZY` a freed range waits in an :class:`IovaFq` and reaches the
      rcache only when the queue is flushed, so an IOVA is never handed out again before the
      flush that invalidates its old translation. The 10 ms timer is not modelled here: under
      the line-rate traffic the generators make, the queue fills first; a slower trace just
      allocates fresh IOVAs meanwhile.
    """

    next_free: int
    granule: int = GRANULE
    policy: FlushPolicy = FlushPolicy.STRICT
    flush_queue: FlushQueue = field(default_factory=FlushQueue)
    _stacks: dict[int, list[int]] = field(default_factory=dict)
    _fq: IovaFq = field(init=False)

    def __post_init__(self) -> None:
        self.policy = FlushPolicy.parse(self.policy)
        self._fq = IovaFq(self.flush_queue)

    def _pages(self, size: int) -> int:
        pages = -(-size // self.granule)
        if pages < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1):
            pages = 1 << (pages - 1).bit_length()
        return pages

    def alloc(self, size: int) -> int:
        """``alloc_iova_fast``: the most recently freed range of this size, else a fresh one."""
        pages = self._pages(size)
        stack = self._stacks.get(pages)
        if stack:
            return stack.pop()
        align = (1 << (pages - 1).bit_length()) * self.granule
        start = -(-self.next_free // align) * align
        self.next_free = start + pages * self.granule
        return start

    def free(self, iova: int, size: int) -> None:
        """Give a range back: at once (strict), or through the flush queue (lazy)."""
        if self.policy is FlushPolicy.STRICT:
            self._push(iova, size)
            return
        for q_iova, q_size in self._fq.queue(iova, size) or ():
            self._push(q_iova, q_size)

    def _push(self, iova: int, size: int) -> None:
        self._stacks.setdefault(self._pages(size), []).append(iova)
