"""POWER TCE tables (``arch/powerpc/include/asm/tce.h``; ``kernel/iommu.c`` ``iommu_alloc``).

One level, named as the architecture names its entries: ``TCE``. A DMA window is a *linear*
array of 8-byte TCEs indexed by the whole window (``index = (dma >> it_page_shift) -
it_offset``), with one page size per table: no radix tree, no choice of leaf size.

A TCE is ``(pa & ~(page-1)) | READ | WRITE``; an entry with neither is not mapped. powernv sets
READ whenever WRITE is set (``pnv_tce_build``).
"""

from __future__ import annotations

import numpy as np

from iommu_lab.core.bits import Field, FieldTable
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import IovaRange, fmt_addr, fmt_size
from iommu_lab.hardware.formats.descriptor import EntryKind, Format, Rules, u64

__all__ = ["TceRules", "power_tce"]

# ---- the bits ---------------------------------------------------------------------------
READ = Field("R", 0, 1, "TCE_PCI_READ")
WRITE = Field("W", 1, 1, "TCE_PCI_WRITE")
RPN = Field("RPN", 12, 40, "real page number")

TCE = FieldTable([READ, WRITE, RPN], "TCE")
#: Page shifts ``ibm,query-pe-dma-window`` can report (``iommu_get_page_shift``).
PAGE_SHIFTS = (12, 16, 21, 24, 25, 26, 27, 28, 34)


# ---- the rules ----------------------------------------------------------------------------
class TceRules(Rules):
    """Entry rules of a TCE table (see the module docstring)."""

    family = "power-tce"
    level_names = ("TCE",)
    linear = True
    addr_mask = RPN.mask
    perm_bits = Perm.RW  # TCE_PCI_READ / TCE_PCI_WRITE only
    # A TCE slot is overwritten by H_PUT_TCE / tce_build; the iommu API path (iommu_tce_xchg)
    # swaps the old value out. Mapping over a slot is refused here as a busy slot.
    map_exists_errno = "EBUSY"

    def __init__(self) -> None:
        self.table_fields = self.leaf_fields = TCE

    def classify(self, fmt, raw, level):
        mapped = (raw & u64(READ.mask | WRITE.mask)) != 0
        return np.where(mapped, EntryKind.LEAF, EntryKind.EMPTY).astype(np.int8)

    def kind_mask(self, fmt, level):
        return READ.mask | WRITE.mask

    def leaf_perm(self, fmt, raw, level):
        granted = (READ.get(raw) * int(Perm.READ)) | (WRITE.get(raw) * int(Perm.WRITE))
        return granted.astype(np.uint8) | np.uint8(Perm.EXEC | Perm.USER)

    def normalise_perm(self, perm):
        perm &= Perm.RW
        return perm | Perm.READ if perm & Perm.WRITE else perm

    def table_bits(self, fmt, level):
        raise ValueError("a TCE table has no table entries")

    def leaf_bits(self, fmt, level, lg2, perm):
        return READ.put(bool(perm & Perm.READ)) | WRITE.put(bool(perm & Perm.WRITE))


# ---- the factory --------------------------------------------------------------------------
def power_tce(page_shift: int = 12, *, window_bits: int = 31, base: int = 0, name: str | None = None) -> Format:
    """A POWER TCE window: one flat table of 8-byte TCEs, one page size (``it_page_shift``).

    ``index = (dma >> it_page_shift) - it_offset`` (``iommu_alloc``): one level, whose index is
    the whole window. Defaults: a 2 GiB 32-bit window at bus address 0 (powernv/pseries
    default window). ``power-tce-64k`` is a 64 GiB DDW at ``1 << 59`` (powernv TVE #1).
    """
    if page_shift not in PAGE_SHIFTS:
        raise ValueError(f"TCE page shift {page_shift} is not one ibm,query-pe-dma-window reports")
    if not page_shift < window_bits <= 59:
        raise ValueError(f"window of 2^{window_bits} bytes must be larger than one 2^{page_shift} page")
    if base % (1 << window_bits):
        raise ValueError(f"window base {fmt_addr(base)} must be aligned to the window size")
    nbits = window_bits - page_shift
    last = base + (1 << window_bits) - 1
    return Format(
        name or f"power-tce-{(1 << page_shift) // 1024}k", "power-tce", 1, page_shift, nbits, 1, nbits,
        window_bits, RPN.shift + RPN.width, frozenset({0}), 1 << page_shift, IovaRange(base, last), TceRules(),
        va_base=base,
        description=f"POWER TCE window [{fmt_addr(base)}, {fmt_addr(last)}], "
        f"{fmt_size(1 << page_shift)} pages, flat {fmt_size(8 << nbits)} table",
    )
