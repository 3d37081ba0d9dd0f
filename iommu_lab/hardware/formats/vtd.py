"""Intel VT-d second-stage tables (``intel/iommu.h`` ``DMA_PTE_*``; generic_pt ``fmt/vtdss.h``).

Levels as the VT-d specification names them (generic level → name, IOVA bits):
0 SL-PTE (20:12), 1 SL-PDE (29:21), 2 SL-PDPE (38:30), 3 SL-PML4E (47:39), 4 SL-PML5E (56:48).
The walk starts at SL-PDPE, SL-PML4E or SL-PML5E for AGAW 1, 2, 3 (``agaw_to_level``).

There is no present bit: an entry is present when R|W != 0 (``dma_pte_present``). SP makes an
SL-PDE/SL-PDPE a leaf (``dma_pte_superpage``); Linux never sets it higher
(``vtdss_pt_can_have_leaf``), and in an SL-PML4E/SL-PML5E it is reserved. Tables are written
``phys | R | W`` (``pfn_to_dma_pte``), and R/W are ANDed along the walk.
"""

from __future__ import annotations

import numpy as np

from iommu_lab.core.bits import Field, FieldTable
from iommu_lab.core.faults import FaultReason
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import IovaRange
from iommu_lab.hardware.formats.descriptor import EntryKind, Format, Rules, u64

__all__ = ["VtdSSRules", "vtd_ss"]

# ---- the bits ---------------------------------------------------------------------------
R = Field("R", 0, 1, "read")
W = Field("W", 1, 1, "write")
EMT = Field("EMT", 3, 3, "memory type")
IPAT = Field("IPAT", 6, 1, "ignore PAT")
SP = Field("SP", 7, 1, "superpage")
A = Field("A", 8, 1, "accessed")
D = Field("D", 9, 1, "dirty")
SNP = Field("SNP", 11, 1, "snoop")
TABLE_ADDR = Field("ADDR", 12, 40, "next table >> 12")
PAGE_ADDR = Field("ADDR", 12, 40, "page >> 12")
TM = Field("TM", 62, 1, "transient mapping")

TABLE = FieldTable([R, W, A, TABLE_ADDR], "VT-d SS table")
LEAF = FieldTable([R, W, EMT, IPAT, SP, A, D, SNP, PAGE_ADDR, TM], "VT-d SS leaf")
_RW = R.mask | W.mask


# ---- the rules ----------------------------------------------------------------------------
class VtdSSRules(Rules):
    """Entry rules of the VT-d second stage (see the module docstring)."""

    family = "vtd-ss"
    level_names = ("SL-PTE", "SL-PDE", "SL-PDPE", "SL-PML4E", "SL-PML5E")
    bad_type_reason = FaultReason.RESERVED_BITS
    addr_mask = PAGE_ADDR.mask
    perm_bits = Perm.RW  # R and W only: no execute or user bit in a second-stage entry

    def __init__(self) -> None:
        self.table_fields, self.leaf_fields = TABLE, LEAF

    def classify(self, fmt, raw, level):
        present = (raw & u64(_RW)) != 0
        empty, leaf, table = np.int8(EntryKind.EMPTY), np.int8(EntryKind.LEAF), np.int8(EntryKind.TABLE)
        if level == 0:
            return np.where(present, leaf, empty)
        sp = SP.get(raw) != 0
        big = leaf if level in fmt.leaf_levels else np.int8(EntryKind.RESERVED)
        return np.where(present, np.where(sp, big, table), empty)

    def kind_mask(self, fmt, level):
        return _RW | SP.mask

    def leaf_perm(self, fmt, raw, level):
        granted = (R.get(raw) * int(Perm.READ)) | (W.get(raw) * int(Perm.WRITE))
        return granted.astype(np.uint8) | np.uint8(Perm.EXEC | Perm.USER)

    table_perm = leaf_perm

    def normalise_perm(self, perm):
        return perm & Perm.RW

    def table_bits(self, fmt, level):
        return R.put(1) | W.put(1)

    def leaf_bits(self, fmt, level, lg2, perm):
        return R.put(bool(perm & Perm.READ)) | W.put(bool(perm & Perm.WRITE)) | SP.put(level > 0)


# ---- the factory --------------------------------------------------------------------------
def vtd_ss(levels: int = 4, *, gaw: int | None = None, pgsize_bitmap: int = 0x40201000,
           name: str | None = None) -> Format:
    """Intel VT-d second stage with ``levels`` = AGAW + 2 (3, 4 or 5).

    ``agaw_to_width(agaw) = min(30 + 9*agaw, 64)``; the domain's ``gaw`` may be narrower
    (``min(agaw width, MGAW)``), which shrinks the aperture but not the walk
    (``paging_domain_alloc``). The top index is always 9 bits. Leaves: 4K, and 2M/1G with SP
    by capability (``domain_super_pgsize_bitmap``); Linux never builds 512G.
    """
    if levels not in (3, 4, 5):
        raise ValueError(f"VT-d second stage has 3, 4 or 5 levels (AGAW 1..3), not {levels}")
    width = min(30 + 9 * (levels - 2), 64)
    gaw = width if gaw is None else gaw
    if not 30 < gaw <= width:
        raise ValueError(f"gaw {gaw} must be in ({width - 9}, {width}] for {levels} levels (width_to_agaw)")
    oas = PAGE_ADDR.shift + PAGE_ADDR.width
    return Format(
        name or f"vtd-ss-{levels}level", "vtd-ss", 2, PAGE_ADDR.shift, 9, levels, 9, width, oas,
        frozenset(lv for lv in (0, 1, 2) if lv < levels), pgsize_bitmap, IovaRange(0, (1 << gaw) - 1),
        VtdSSRules(), description=f"Intel VT-d second stage, AGAW {levels - 2} ({width}-bit), gaw {gaw}",
    )

