"""AMD IOMMU v1 host page tables (``amd_iommu_types.h``; ``io_pgtable.c``; generic_pt ``fmt/amdv1.h``).

Levels as the AMD IOMMU specification numbers them: the page table at Level 1 holds the 4 KiB
PTEs, a DTE with Mode m points at a Level-m table whose entries are PDEs (generic level → name):
0 Level 1 (20:12), 1 Level 2 (29:21), 2 Level 3 (38:30), 3 Level 4 (47:39), 4 Level 5 (56:48),
5 Level 6 (63:57, 7 index bits).

PR=0 is not present. In a PDE at generic level x, NextLevel = x (``PM_LEVEL_PDE``). NL=0 is a
leaf of the level's default size; NL=7 a leaf of another power-of-two size, encoded as a run of
ones from bit 12 in the address field (``PAGE_SIZE_PTE``), written into ``2**((lg2-12) % 9)``
identical slots (``PAGE_SIZE_PTE_COUNT``). Any other NL is level skipping, which ``fetch_pte``
refuses; a leaf in the mode-6 top is a reserved encoding. IR/IW are ANDed along the walk, so
Linux sets them on every PDE; leaves get PR|FC plus IR/IW. The top grows on demand
(``increase_address_space``): the format is a *dynamic top* one.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from iommu_lab.core.bits import Field, FieldTable
from iommu_lab.core.faults import FaultReason
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import U64_MAX, IovaRange
from iommu_lab.hardware.formats.descriptor import (
    EntryKind,
    Format,
    Rules,
    ctz,
    mask_bitmap,
    radix,
    u64,
)

__all__ = ["AMD_IOMMU_PGSIZES", "AmdV1Rules", "amd_v1"]

# ---- the bits ---------------------------------------------------------------------------
PR = Field("PR", 0, 1, "present")
A = Field("A", 5, 1, "accessed")
D = Field("D", 6, 1, "dirty")
NL_TABLE = Field("NL", 9, 3, "NextLevel")
NL = Field("NL", 9, 3, "NextLevel (0 default size, 7 size in address)")
TABLE_ADDR = Field("ADDR", 12, 40, "next table >> 12")
PAGE_ADDR = Field("ADDR", 12, 40, "page >> 12 (NL=7: low run of ones encodes the size)")
U = Field("U", 59, 1, "untranslated")
FC = Field("FC", 60, 1, "force coherent")
IR = Field("IR", 61, 1, "read")
IW = Field("IW", 62, 1, "write")

TABLE = FieldTable([PR, A, NL_TABLE, TABLE_ADDR, IR, IW], "AMD v1 PDE")
LEAF = FieldTable([PR, A, D, NL, PAGE_ADDR, U, FC, IR, IW], "AMD v1 PTE")

NL_DEFAULT_SIZE, NL_OTHER_SIZE = 0, 7
#: Index of the highest level that may hold a leaf (generic numbering; the mode-6 top may not).
_TOP_LEAF_LEVEL = 4
#: 512 GiB pages are excluded (hardware erratum): ``GENMASK_ULL(51, 12) ^ SZ_512G``.
AMD_IOMMU_PGSIZES = PAGE_ADDR.mask ^ (1 << 39)


# ---- the rules ----------------------------------------------------------------------------
class AmdV1Rules(Rules):
    """Entry rules of the AMD v1 host table (see the module docstring)."""

    family = "amd-v1"
    level_names = ("Level 1", "Level 2", "Level 3", "Level 4", "Level 5", "Level 6")
    fixed_leaf_size = False
    perm_bits = Perm.RW  # IR/IW only
    bad_type_reason = FaultReason.RESERVED_BITS
    addr_mask = PAGE_ADDR.mask

    def __init__(self) -> None:
        self.table_fields, self.leaf_fields = TABLE, LEAF

    def possible_lg2(self, fmt, level):
        # amdv1pt_possible_sizes: 4K..1M at level 0, item..item*256 above; none at level 5;
        # 512G removed; capped at the address field's top bit.
        if level > _TOP_LEAF_LEVEL or level >= fmt.levels:
            return ()
        item = fmt.item_lg2(level)
        hi = min(item + 8, PAGE_ADDR.shift + PAGE_ADDR.width - 1)
        return tuple(lg2 for lg2 in range(item, hi + 1) if AMD_IOMMU_PGSIZES >> lg2 & 1)

    def replicas(self, fmt, level, lg2):
        return 1 << ((lg2 - PAGE_ADDR.shift) % 9)

    def classify(self, fmt, raw, level):
        present = PR.get(raw).astype(bool)
        nl = NL.get(raw).astype(np.int64)
        leaf = (nl == NL_DEFAULT_SIZE) | (nl == NL_OTHER_SIZE)
        kind = np.full(raw.shape, EntryKind.LEVEL_SKIP, dtype=np.int8)
        kind[leaf] = EntryKind.LEAF if level <= _TOP_LEAF_LEVEL else EntryKind.BAD_TYPE
        if level > 0:
            kind[nl == level] = EntryKind.TABLE
        kind[~present] = EntryKind.EMPTY
        return kind

    def kind_mask(self, fmt, level):
        return PR.mask | NL.mask

    def leaf_lg2(self, fmt, raw, level):
        other = NL.get(raw) == u64(NL_OTHER_SIZE)
        # PTE_PAGE_SIZE(pte) = 1 << (1 + ffz(pte | 0xfff))
        lg2 = 1 + ctz(~(raw | u64((1 << PAGE_ADDR.shift) - 1)))
        return np.where(other, lg2, fmt.item_lg2(level)).astype(np.int64)

    def leaf_perm(self, fmt, raw, level):
        p = (IR.get(raw).astype(np.uint8) * np.uint8(Perm.READ)) | (IW.get(raw).astype(np.uint8) * np.uint8(Perm.WRITE))
        return p | np.uint8(Perm.EXEC | Perm.USER)

    table_perm = leaf_perm

    def normalise_perm(self, perm):
        return perm & Perm.RW

    def table_bits(self, fmt, level):
        return PR.put(1) | NL_TABLE.put(level) | IR.put(1) | IW.put(1)

    def leaf_bits(self, fmt, level, lg2, perm):
        bits = PR.put(1) | FC.put(1) | IR.put(bool(perm & Perm.READ)) | IW.put(bool(perm & Perm.WRITE))
        if lg2 != fmt.item_lg2(level):
            sz = 1 << lg2
            bits |= NL.put(NL_OTHER_SIZE) | (((sz - 1) & ~(sz >> 1)) & PAGE_ADDR.mask)
        return bits

    def grown(self, fmt, levels):
        return amd_v1(levels, grow_to=fmt.grow_to)


# ---- the factory --------------------------------------------------------------------------
@cache
def amd_v1(mode: int = 3, *, grow_to: int | None = None, pgsize_bitmap: int | None = None,
           name: str | None = None) -> Format:
    """AMD IOMMU v1 host table in DTE mode ``mode`` (1..6 levels).

    Mode m translates ``12 + 9m`` bits (64 at mode 6, whose top has 7 index bits:
    ``amdv1pt_num_items_lg2``). Leaves at levels 0..4 of any power-of-two size via NL=7,
    never 512G (``AMD_IOMMU_PGSIZES = GENMASK(51,12) ^ SZ_512G``). With ``grow_to`` the top
    grows on demand as ``increase_address_space`` does (legacy start: mode 3; limit
    ``amd_iommu_hpt_level = 4 + EFR.HATS``): a new root whose entry 0 is ``PM_LEVEL_PDE(old
    mode, old root)``, whenever a mapping ends above the current width or needs a page size
    that lives higher up; the advertised bitmap is then that of the largest mode.
    """
    if not 1 <= mode <= 6:
        raise ValueError(f"AMD v1 mode must be 1..6, not {mode}")
    if grow_to is not None and not mode <= grow_to <= 6:
        raise ValueError(f"AMD v1 can grow from mode {mode} to at most mode 6, not {grow_to}")
    if grow_to is not None and pgsize_bitmap is None:
        pgsize_bitmap = amd_v1(grow_to).pgsize_bitmap
    g = PAGE_ADDR.shift
    va = min(g + 9 * mode, 64)
    levels, top = radix(va, g, 9)
    oas = PAGE_ADDR.shift + PAGE_ADDR.width
    leaf_levels = frozenset(range(min(levels, _TOP_LEAF_LEVEL + 1)))
    aperture = IovaRange(0, (1 << va) - 1 if va < 64 else U64_MAX)
    rules = AmdV1Rules()
    probe = Format(f"amd-v1-{mode}level", "amd-v1", 2, g, 9, levels, top, va, oas, leaf_levels, 0, aperture, rules)
    bitmap = mask_bitmap(AMD_IOMMU_PGSIZES & probe.leaf_bitmap, va) if pgsize_bitmap is None else pgsize_bitmap
    return Format(
        name or (f"amd-v1-{mode}level" + (f"-grow{grow_to}" if grow_to else "")), "amd-v1", 2, g, 9, levels,
        top, va, oas, leaf_levels, bitmap, aperture, rules, grow_to=grow_to,
        description=f"AMD IOMMU v1 host page table, mode {mode} ({va}-bit)"
        + (f", grows on demand up to mode {grow_to}" if grow_to else ""),
    )

