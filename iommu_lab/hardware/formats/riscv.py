"""RISC-V Sv39/Sv48/Sv57 page tables (privileged spec; ``riscv/iommu.c``; generic_pt ``fmt/riscv.h``).

Levels as the privileged specification's walk numbers them: step i reads the PTE indexed by
``va.vpn[i]`` ("level i"), i = LEVELS-1 down to 0, so generic level i is ``level i`` (IOVA bits
``20+9i : 12+9i``); Sv39 starts at level 2, Sv48 at level 3, Sv57 at level 4. A leaf at level 1
is a megapage, at level 2 a gigapage, at level 3 a terapage.

V=0 is invalid; any of R/W/X makes a leaf at any level; V with R=W=X=0 points to the next
table (a pointer in the last level is a fault). W without R and bits 60:54 are reserved;
a superpage whose PPN has low bits set is misaligned. generic_pt writes A|U, R, W|D when
writable, X unless NOEXEC; tables are ``PPN << 10 | V``.

**Svnapot** (privileged spec, "Svnapot" extension; an optional feature of generic_pt's RISC-V
format, off unless selected with a ``-napot`` variant such as ``riscv-sv48-napot``): a level-0
leaf with N (bit 63) set and ``ppn[3:0] = 1000b`` is one 64 KiB naturally aligned page, written
into all 16 level-0 slots it covers; its output base is the PPN with ``ppn[3:0]`` cleared. Any
other N=1 encoding (another ppn[3:0], N at a higher level, N in a pointer) is reserved. Without
the feature N stays reserved, as on hardware without Svnapot.
"""

from __future__ import annotations

import numpy as np

from iommu_lab.core.bits import Field, FieldTable
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import IovaRange
from iommu_lab.hardware.formats.descriptor import EntryKind, Format, Rules, u64

__all__ = ["RiscvRules", "riscv"]

# ---- the bits ---------------------------------------------------------------------------
V = Field("V", 0, 1, "valid")
R = Field("R", 1, 1)
W = Field("W", 2, 1)
X = Field("X", 3, 1)
RWX = Field("RWX", 1, 3, "R|W|X: 0 for a pointer")
U = Field("U", 4, 1)
G = Field("G", 5, 1)
A = Field("A", 6, 1)
D = Field("D", 7, 1)
RSW = Field("RSW", 8, 2)
PPN_TABLE = Field("PPN", 10, 44, "next table >> 12")
PPN = Field("PPN", 10, 44)
RSV = Field("RSV", 54, 7, "reserved, must be 0")
PBMT = Field("PBMT", 61, 2)
N = Field("N", 63, 1, "Svnapot")

TABLE = FieldTable([V, R, W, X, PPN_TABLE], "RISC-V pointer")
LEAF = FieldTable([V, R, W, X, U, G, A, D, RSW, PPN, RSV, PBMT, N], "RISC-V leaf")

PAGE_SHIFT = 12
#: Svnapot's one defined size: napot_bits = 4, ``ppn[3:0] = 1000b`` -> 64 KiB.
NAPOT_LG2 = 16
NAPOT_PPN_LOW = 0b1000
_W_ONLY = W.put(1) >> R.shift  # RWX value with W but not R (reserved)


# ---- the rules ----------------------------------------------------------------------------
class RiscvRules(Rules):
    """Entry rules of RISC-V Sv39/48/57 (see the module docstring)."""

    family = "riscv"
    addr_mask = PPN.mask

    def __init__(self, napot: bool = False) -> None:
        self.table_fields, self.leaf_fields = TABLE, LEAF
        #: Svnapot 64 KiB leaves at level 0 (generic_pt's optional RISC-V feature).
        self.napot = bool(napot)
        self.fixed_leaf_size = not self.napot

    def possible_lg2(self, fmt, level):
        base = super().possible_lg2(fmt, level)
        return base + (NAPOT_LG2,) if self.napot and level == 0 and base else base

    def _napot_leaf(self, raw, level):
        """Entries that are Svnapot 64 KiB leaves: N=1 at level 0 with ppn[3:0] = 1000b."""
        if not self.napot or level != 0:
            return np.zeros(raw.shape, dtype=bool)
        return (N.get(raw) == u64(1)) & ((PPN.get(raw) & u64(0xF)) == u64(NAPOT_PPN_LOW))

    @property
    def oa_is_identity(self) -> bool:
        return False

    def level_name(self, fmt, level):
        return f"level {level}"

    def oa_decode(self, fmt, raw):
        return PPN.get(raw) << u64(PAGE_SHIFT)

    def oa_encode(self, fmt, pa):
        if isinstance(pa, np.ndarray):
            return (pa >> u64(PAGE_SHIFT)) << u64(PPN.shift)
        return (int(pa) >> PAGE_SHIFT) << PPN.shift

    def classify(self, fmt, raw, level):
        v = V.get(raw).astype(bool)
        rwx = RWX.get(raw).astype(np.int64)
        leaf = rwx != 0
        kind = np.where(leaf, EntryKind.LEAF, EntryKind.TABLE if level > 0 else EntryKind.BAD_TYPE).astype(np.int8)
        if level > 0:
            ppn_low = PPN.get(raw) & u64((1 << (9 * level)) - 1)
            kind[leaf & (ppn_low != 0)] = EntryKind.MISALIGNED
        kind[leaf & (level not in fmt.leaf_levels)] = EntryKind.BAD_TYPE
        napot = self._napot_leaf(raw, level) & leaf
        reserved = (RSV.get(raw) != 0) | ((N.get(raw) != 0) & ~napot) | ((rwx & (R.put(1) | W.put(1)) >> R.shift) == _W_ONLY)
        kind[reserved] = EntryKind.RESERVED
        kind[~v] = EntryKind.EMPTY
        return kind

    def kind_mask(self, fmt, level):
        # A superpage's low PPN bits decide MISALIGNED; Svnapot reads ppn[3:0] at level 0.
        low = (1 << (9 * level)) - 1 if level else (0xF if self.napot else 0)
        return V.mask | RWX.mask | RSV.mask | N.mask | (low << PPN.shift)

    def leaf_lg2(self, fmt, raw, level):
        item = np.full(raw.shape, fmt.item_lg2(level), dtype=np.int64)
        return np.where(self._napot_leaf(raw, level), NAPOT_LG2, item).astype(np.int64)

    def leaf_perm(self, fmt, raw, level):
        p = (R.get(raw).astype(np.uint8) * np.uint8(Perm.READ)) | (W.get(raw).astype(np.uint8) * np.uint8(Perm.WRITE))
        p |= (X.get(raw).astype(np.uint8) * np.uint8(Perm.EXEC)) | (U.get(raw).astype(np.uint8) * np.uint8(Perm.USER))
        return p

    def normalise_perm(self, perm):
        perm |= Perm.USER
        return perm | Perm.READ if perm & Perm.WRITE else perm

    def table_bits(self, fmt, level):
        return V.put(1)

    def leaf_bits(self, fmt, level, lg2, perm):
        writable = bool(perm & Perm.WRITE)
        napot = 0
        if lg2 == NAPOT_LG2 and level == 0:
            # The 64 KiB base has ppn[3:0] = 0; setting ppn bit 3 makes the 1000b encoding.
            napot = N.put(1) | (NAPOT_PPN_LOW << PPN.shift)
        return napot | (V.put(1) | U.put(1) | A.put(1) | R.put(bool(perm & Perm.READ)) | W.put(writable)
                | D.put(writable) | X.put(bool(perm & Perm.EXEC)))


# ---- the factory --------------------------------------------------------------------------
def riscv(levels: int = 3, *, napot: bool = False, name: str | None = None) -> Format:
    """RISC-V Sv39/Sv48/Sv57 (``riscv_iommu_alloc_paging_domain``; generic_pt ``riscv.h``).

    Leaves at any level; the driver advertises 4K|2M|1G plus 512G for Sv48/57. generic_pt
    sign-extends; the legacy driver limits the aperture to the lower half
    (``DMA_BIT_MASK(va_bits - 1)``), which is the ``aperture`` here. ``napot=True`` adds
    Svnapot 64 KiB leaves (registered as ``riscv-sv39-napot`` etc.); off by default, as the
    feature is optional in hardware and in generic_pt.
    """
    if levels not in (3, 4, 5):
        raise ValueError(f"RISC-V IOMMU paging is Sv39/48/57 (3..5 levels), not {levels}")
    va = PAGE_SHIFT + 9 * levels
    bitmap = (0x40201000 if levels == 3 else 0x8040201000) | ((1 << NAPOT_LG2) if napot else 0)
    return Format(
        name or f"riscv-sv{va}" + ("-napot" if napot else ""), "riscv", 1, PAGE_SHIFT, 9, levels, 9, va,
        PAGE_SHIFT + PPN.width, frozenset(range(levels)), bitmap, IovaRange(0, (1 << (va - 1)) - 1),
        RiscvRules(napot), sign_extend=True,
        description=f"RISC-V Sv{va} ({levels} levels)" + (", Svnapot 64 KiB leaves" if napot else ""),
    )
