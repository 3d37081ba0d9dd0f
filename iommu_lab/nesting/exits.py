"""The VM exits a guest's IOMMU operations cost: one counting rule for nesting and shadowing.

A guest never exits by writing its own page table: the table is ordinary guest RAM. It exits
when it tells the (virtual) IOMMU something -- an MMIO write of a queue's tail register, or a
virtqueue kick -- and the VMM handles it:

* **Hardware nesting** (VT-d PGTT=NESTED, SMMUv3 Config=NESTED, AMD GV=1): the hardware walks
  the guest's stage 1 itself, so a guest *map* needs no exit. Linux writes the PTE and, for a
  first-stage domain, invalidates nothing on map (``cache_tag_flush_range_np`` only flushes
  the write buffer when ``domain->use_first_level``; arm-smmu-v3 has no map-time TLBI). A guest
  *unmap* ends in an invalidation command -- VT-d's invalidation queue tail (``IQT_REG``),
  SMMUv3's ``CMDQ_PROD`` with ``CMD_TLBI_NH_VA`` + ``CMD_SYNC`` -- which traps; the VMM
  forwards it to the host (``IOMMU_HWPT_INVALIDATE`` / ``IOMMU_VIOMMU_INVALIDATE``: QEMU's
  ``vtd_process_inv_desc`` / ``smmuv3_cmdq_consume``). One exit per strict unmap, one per
  flush-queue flush in lazy mode.
* **Shadowing with VT-d caching mode** (QEMU ``intel-iommu,caching-mode=on``): CM=1 obliges the
  guest to invalidate after a not-present -> present change too (Linux's
  ``cache_tag_flush_range_np`` flushes when ``cap_caching_mode``), so every map and every
  unmap exits; QEMU walks the guest table (``vtd_page_walk``) and replays MAP/UNMAP
  notifications into the host table.
* **Shadowing with virtio-iommu**: every map and unmap is a request on the request virtqueue
  (``viommu_map_pages`` / ``viommu_unmap_pages`` then ``viommu_sync_req``), one kick each; in
  lazy mode the unmaps of a flush-queue batch go out with one ``viommu_flush_iotlb_all``.

:class:`ExitModel` states the rule once; :data:`HARDWARE_NESTING`, :data:`CACHING_MODE` and
:data:`VIRTIO_IOMMU` are the three cases. ``ShadowNesting``, the side-by-side cost comparison
and the DMA replay all count exits through it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["CACHING_MODE", "HARDWARE_NESTING", "VIRTIO_IOMMU", "ExitCause", "ExitModel", "exit_model"]


class ExitCause(enum.Enum):
    """What the guest did that the VMM had to handle."""

    INVALIDATION = "invalidation command (queue tail register write)"
    REQUEST = "virtio-iommu request (virtqueue kick)"


@dataclass(frozen=True)
class ExitModel:
    """How many VM exits each guest IOMMU operation costs, and why.

    Attributes
    ----------
    name : str
        The configuration, in words.
    map_exits : int
        Exits per guest map (0 under hardware nesting: the guest only writes its own table).
    unmap_exits : int
        Exits per strict-mode guest unmap (its invalidation or request).
    flush_exits : int
        Exits per lazy-mode flush-queue flush (one invalidation of the whole domain).
    cause : ExitCause
        What traps.
    traps_table_writes : bool
        Whether writes to the guest's table trap by themselves (never, in QEMU: neither the
        nesting nor the caching-mode shadow write-protects guest tables).
    """

    name: str
    map_exits: int
    unmap_exits: int
    flush_exits: int
    cause: ExitCause
    traps_table_writes: bool = False

    def on_map(self) -> int:
        """Exits for one guest map."""
        return self.map_exits

    def on_unmap(self, *, lazy: bool = False) -> int:
        """Exits for one guest unmap (0 in lazy mode: the flush pays, :meth:`on_flush`)."""
        return 0 if lazy else self.unmap_exits

    def on_flush(self) -> int:
        """Exits for one flush-queue flush in lazy mode."""
        return self.flush_exits


#: The guest walks nothing the VMM sees; only its invalidations trap and are forwarded.
HARDWARE_NESTING = ExitModel("hardware nesting", 0, 1, 1, ExitCause.INVALIDATION)
#: VT-d caching mode: invalidation after every map and every unmap, each trapped.
CACHING_MODE = ExitModel("shadowing (VT-d caching mode)", 1, 1, 1, ExitCause.INVALIDATION)
#: virtio-iommu: one request per map and per unmap; a lazy flush sends the batch at once.
VIRTIO_IOMMU = ExitModel("shadowing (virtio-iommu requests)", 1, 1, 1, ExitCause.REQUEST)


def exit_model(kind: str) -> ExitModel:
    """The model for ``"nested"`` (hardware nesting), ``"caching-mode"`` or ``"virtio"``."""
    table = {"nested": HARDWARE_NESTING, "hardware": HARDWARE_NESTING, "caching-mode": CACHING_MODE,
             "virtio": VIRTIO_IOMMU, "virtio-iommu": VIRTIO_IOMMU}
    if not isinstance(kind, str) or kind not in table:
        raise ValueError(f"exit model {str(kind)[:40]!r}: expected one of {', '.join(sorted(table))}")
    return table[kind]
