"""x86-64 paging entries: VT-d first stage and AMD v2 (generic_pt ``fmt/x86_64.h``).

Levels as the IOMMU specifications name first-stage entries (generic level → name, IOVA bits):
0 PTE (20:12), 1 PDE (29:21), 2 PDPE (38:30), 3 PML4E (47:39), 4 PML5E (56:48); 4 or 5 levels.
The VT-d specification's first-stage paging entries and the AMD64 APM (AMD v2 guest tables)
both say PDPE; the Intel SDM calls the same entry PDPTE.

P=0 is not present; PS makes a PDE/PDPTE a leaf and is reserved in a PML4E/PML5E (a reserved-
bit fault). Linux writes leaves as P|U|A plus RW|D when writable, PS above the PTE, and XD when
not executable; tables as P|RW|U|A (0x27). RW and U/S are ANDed along the walk, XD ORed.
Inputs are canonical: bits 63..VA-1 equal (``PT_FEAT_SIGN_EXTEND``).
"""

from __future__ import annotations

import numpy as np

from iommu_lab.core.bits import Field, FieldTable
from iommu_lab.core.faults import FaultReason
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import IovaRange
from iommu_lab.hardware.formats.descriptor import EntryKind, Format, Rules

__all__ = ["X86Rules", "x86_64"]

# ---- the bits ---------------------------------------------------------------------------
P = Field("P", 0, 1, "present")
RW = Field("RW", 1, 1, "writable")
US = Field("US", 2, 1, "user")
PWT = Field("PWT", 3, 1, "write-through")
PCD = Field("PCD", 4, 1, "cache disable")
A = Field("A", 5, 1, "accessed")
D = Field("D", 6, 1, "dirty")
PS_TABLE = Field("PS", 7, 1, "page size (0 in a table)")
PS = Field("PS", 7, 1, "page size / PAT")
G = Field("G", 8, 1, "global")
TABLE_ADDR = Field("ADDR", 12, 40, "next table >> 12")
PAGE_ADDR = Field("ADDR", 12, 40, "page >> 12")
XD = Field("XD", 63, 1, "execute disable")

TABLE = FieldTable([P, RW, US, PWT, PCD, A, PS_TABLE, TABLE_ADDR, XD], "x86-64 table")
LEAF = FieldTable([P, RW, US, PWT, PCD, A, D, PS, G, PAGE_ADDR, XD], "x86-64 leaf")


# ---- the rules ----------------------------------------------------------------------------
class X86Rules(Rules):
    """Entry rules of x86-64 paging (see the module docstring)."""

    family = "x86-64"
    level_names = ("PTE", "PDE", "PDPE", "PML4E", "PML5E")
    bad_type_reason = FaultReason.RESERVED_BITS
    addr_mask = PAGE_ADDR.mask

    def __init__(self) -> None:
        self.table_fields, self.leaf_fields = TABLE, LEAF

    def classify(self, fmt, raw, level):
        present = P.get(raw).astype(bool)
        ps = PS.get(raw).astype(bool)
        if level == 0:
            kind = np.full(raw.shape, EntryKind.LEAF, dtype=np.int8)
        elif level in fmt.leaf_levels:
            kind = np.where(ps, EntryKind.LEAF, EntryKind.TABLE).astype(np.int8)
        else:
            kind = np.where(ps, EntryKind.RESERVED, EntryKind.TABLE).astype(np.int8)
        kind[~present] = EntryKind.EMPTY
        return kind

    def kind_mask(self, fmt, level):
        return P.mask | PS.mask

    def leaf_perm(self, fmt, raw, level):
        p = np.full(raw.shape, int(Perm.READ), dtype=np.uint8)
        p |= RW.get(raw).astype(np.uint8) * np.uint8(Perm.WRITE)
        p |= US.get(raw).astype(np.uint8) * np.uint8(Perm.USER)
        p |= (XD.get(raw) ^ np.uint64(1)).astype(np.uint8) * np.uint8(Perm.EXEC)
        return p

    table_perm = leaf_perm

    def normalise_perm(self, perm):
        # P doubles as "readable": there is no write-only mapping (legacy DMA_PTE_READ is P).
        return (perm | Perm.READ | Perm.USER) if perm & Perm.WRITE else perm | Perm.USER

    def table_bits(self, fmt, level):
        return P.put(1) | RW.put(1) | US.put(1) | A.put(1)

    def leaf_bits(self, fmt, level, lg2, perm):
        writable = bool(perm & Perm.WRITE)
        return (P.put(1) | US.put(1) | A.put(1) | RW.put(writable) | D.put(writable)
                | PS.put(level > 0) | XD.put(not perm & Perm.EXEC))


# ---- the factory --------------------------------------------------------------------------
def x86_64(levels: int = 4, *, pgsize_bitmap: int = 0x40201000, sign_extend: bool = True,
           name: str | None = None) -> Format:
    """x86-64 paging: VT-d first stage and AMD v2 (generic_pt ``x86_64.h``), 4 or 5 levels.

    Canonical inputs: bits 63..VA-1 equal (``PT_FEAT_SIGN_EXTEND``); the upper half uses top
    indices >= 256. The aperture is the lower half, as VT-d first-stage domains report
    (``paging_domain_alloc``). ``sign_extend=False`` gives AMD's 47/56-bit PASID-0 layout.
    Leaves: PTE, PDE and PDPTE with PS; pgsizes 4K|2M|1G (``AMD_IOMMU_PGSIZES_V2``).
    """
    if levels not in (4, 5):
        raise ValueError(f"x86-64 paging has 4 or 5 levels, not {levels}")
    va = PAGE_ADDR.shift + 9 * levels
    ap_bits = va - 1 if sign_extend else va
    return Format(
        name or f"x86-64-{levels}level", "x86-64", 1, PAGE_ADDR.shift, 9, levels, 9, va,
        PAGE_ADDR.shift + PAGE_ADDR.width, frozenset({0, 1, 2}), pgsize_bitmap,
        IovaRange(0, (1 << ap_bits) - 1), X86Rules(), sign_extend=sign_extend,
        description=f"x86-64 {levels}-level paging (VT-d first stage, AMD v2), {va}-bit VA",
    )
