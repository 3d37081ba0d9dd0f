"""ARM LPAE / VMSAv8-64 translation tables (``io-pgtable-arm.c``), stage 1 or stage 2.

Levels as the Arm ARM names them, counted from the top of a 4-level walk: L0 (4K: 47:39),
L1 (38:30), L2 (29:21), L3 (20:12, the page level); generic level x is ``L{3 - x}``. A walk
*starts* at ``4 - levels`` (``start_level``): 4K ias 40 starts at L1, 64K ias 48 at L1, and a
concatenated stage-2 top starts one level lower.

Bit 0 clear is invalid. Type 0b11 is a table above L3 and a *page* at L3; 0b01 is a block where
blocks exist, and reserved at L3 (``iopte_leaf``, QEMU ``is_reserved_pte``): an invalid
descriptor, a translation fault. The output address is bits 47:g; with the 64 KiB granule and
a 52-bit OA, PA[51:48] sits in bits 15:12 (``paddr_to_iopte``/``iopte_to_paddr``). Linux's
leaves (``arm_lpae_prot_to_pte`` + ``__arm_lpae_init_pte``): AF | SH_IS, stage 1 nG |
AP_UNPRIV | AttrIndx=1 (cacheable) | AP_RDONLY without write; stage 2 MemAttr OIWB | S2AP R/W;
XN (bits 54:53) without exec. Tables are ``phys | 0b11`` (``arm_lpae_install_table``).
"""

from __future__ import annotations

import numpy as np

from iommu_lab.core.bits import Field, FieldTable, genmask
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import IovaRange
from iommu_lab.hardware.formats.descriptor import EntryKind, Format, Rules, UnmapPolicy, radix, u64

__all__ = ["ArmLpaeRules", "arm_lpae"]

# ---- the bits ---------------------------------------------------------------------------
TYPE_TABLE = Field("TYPE", 0, 2, "0b11 table")
TYPE = Field("TYPE", 0, 2, "0b01 block / 0b11 page")
VALID = Field("VALID", 0, 1, "valid")
ATTR_INDX = Field("AttrIndx", 2, 3, "MAIR index")
NS = Field("NS", 5, 1)
AP = Field("AP", 6, 2, "AP[2:1]: bit7 RO, bit6 EL0")
AP_UNPRIV = Field("AP[1]", 6, 1, "EL0 access")
AP_RDONLY = Field("AP[2]", 7, 1, "read-only")
MEM_ATTR = Field("MemAttr", 2, 4, "stage-2 memory attributes")
S2AP = Field("S2AP", 6, 2, "bit6 read, bit7 write")
S2AP_R = Field("S2AP[0]", 6, 1, "read")
S2AP_W = Field("S2AP[1]", 7, 1, "write")
SH = Field("SH", 8, 2, "shareability")
AF = Field("AF", 10, 1, "access flag")
NG = Field("nG", 11, 1)
ADDR_HI = Field("ADDR_HI", 12, 4, "PA[51:48]")
DBM = Field("DBM", 51, 1)
CONT = Field("CONT", 52, 1, "contiguous hint")
PXN = Field("PXN", 53, 1)
UXN = Field("UXN", 54, 1)
XN = Field("XN", 53, 2)
SW = Field("SW", 55, 4, "software")
PXN_TABLE = Field("PXNTable", 59, 1)
XN_TABLE = Field("XNTable", 60, 1)
AP_TABLE = Field("APTable", 61, 2)
AP_TABLE_NO_EL0 = Field("APTable[0]", 61, 1, "no EL0 access below")
AP_TABLE_RO = Field("APTable[1]", 62, 1, "no write below")
NS_TABLE = Field("NSTable", 63, 1)

DESC_TABLE, DESC_BLOCK, DESC_PAGE = 0b11, 0b01, 0b11
MEM_ATTR_OIWB, ATTR_INDX_CACHE, SH_IS = 0xF, 1, 0b11
#: Output-address bits in 48-bit configurations: PA[51:48] must be zero (no 52-bit PA).
_PA_TOP = 48


def _addr(g: int) -> Field:
    return Field("ADDR", g, _PA_TOP - g, f"address bits {_PA_TOP - 1}:{g}")


# ---- the rules ----------------------------------------------------------------------------
class ArmLpaeRules(Rules):
    """Entry rules of an LPAE table of one stage, granule and output size."""

    family = "arm-lpae"

    map_exists_errno = "EEXIST"  # __arm_lpae_map: WARN_ON(!selftest_running); return -EEXIST

    def __init__(self, stage: int, granule_lg2: int, oas: int) -> None:
        self.stage, self.g, self.oas = stage, granule_lg2, oas
        if stage == 2:  # S2AP R/W and XN; no EL0/unprivileged bit at stage 2
            self.perm_bits = Perm.RW | Perm.EXEC
        self.lpa52 = granule_lg2 == 16 and oas > _PA_TOP
        self.ADDR = _addr(granule_lg2)
        self.addr_mask = self.ADDR.mask
        addr = [self.ADDR] + ([ADDR_HI] if self.lpa52 else [])
        self.table_fields = FieldTable([TYPE_TABLE, *addr, PXN_TABLE, XN_TABLE, AP_TABLE, NS_TABLE],
                                       "ARM table descriptor")
        attrs, tail = ([ATTR_INDX, NS, AP], [PXN, UXN]) if stage == 1 else ([MEM_ATTR, S2AP], [XN])
        self.leaf_fields = FieldTable(
            [TYPE, *attrs, SH, AF] + ([NG] if stage == 1 else []) + addr + [DBM, CONT, *tail, SW],
            f"ARM stage-{stage} block/page descriptor",
        )
        # Address bits the format must hold zero: between bit 12 and the granule (unless a
        # 52-bit OA reuses 15:12) and 50:48 (no 52-bit PA in 48-bit configurations).
        res0 = genmask(DBM.shift - 1, _PA_TOP) if not self.lpa52 else 0
        if granule_lg2 > ADDR_HI.shift and not self.lpa52:
            res0 |= genmask(granule_lg2 - 1, ADDR_HI.shift)
        self.res0 = res0

    @property
    def oa_is_identity(self) -> bool:
        return not self.lpa52

    def level_name(self, fmt, level):
        return f"L{3 - level}"

    def classify(self, fmt, raw, level):
        valid = VALID.get(raw).astype(bool)
        t = TYPE.get(raw).astype(np.int64)
        kind = np.full(raw.shape, EntryKind.BAD_TYPE, dtype=np.int8)
        if level == 0:
            kind[t == DESC_PAGE] = EntryKind.LEAF
        else:
            kind[t == DESC_TABLE] = EntryKind.TABLE
            if level in fmt.leaf_levels:
                kind[t == DESC_BLOCK] = EntryKind.LEAF
        if self.res0:
            kind[((raw & u64(self.res0)) != 0) & (kind != EntryKind.BAD_TYPE)] = EntryKind.RESERVED
        kind[~valid] = EntryKind.EMPTY
        return kind

    def kind_mask(self, fmt, level):
        return TYPE.mask | self.res0

    def oa_decode(self, fmt, raw):
        pa = raw & u64(self.addr_mask)
        if self.lpa52:
            pa |= ADDR_HI.get(raw) << u64(_PA_TOP)
        return pa

    def oa_encode(self, fmt, pa):
        if isinstance(pa, np.ndarray):
            out = pa & u64(self.addr_mask)
            if self.lpa52:
                out |= ((pa >> u64(_PA_TOP)) & u64((1 << ADDR_HI.width) - 1)) << u64(ADDR_HI.shift)
            return out
        pa = int(pa)
        out = pa & self.addr_mask
        if self.lpa52:
            out |= ADDR_HI.put((pa >> _PA_TOP) & ((1 << ADDR_HI.width) - 1))
        return out

    def leaf_perm(self, fmt, raw, level):
        exec_ = (UXN.get(raw) ^ u64(1)).astype(np.uint8) * np.uint8(Perm.EXEC)
        if self.stage == 1:
            p = np.full(raw.shape, int(Perm.READ), dtype=np.uint8)
            p |= (AP_RDONLY.get(raw) ^ u64(1)).astype(np.uint8) * np.uint8(Perm.WRITE)
            p |= AP_UNPRIV.get(raw).astype(np.uint8) * np.uint8(Perm.USER)
            return p | exec_
        p = (S2AP_R.get(raw).astype(np.uint8) * np.uint8(Perm.READ)) | (S2AP_W.get(raw).astype(np.uint8) * np.uint8(Perm.WRITE))
        return p | exec_ | np.uint8(Perm.USER)

    def table_perm(self, fmt, raw, level):
        p = np.full(raw.shape, 0xF, dtype=np.uint8)
        if self.stage == 2:
            return p
        p &= ~(AP_TABLE_RO.get(raw).astype(np.uint8) * np.uint8(Perm.WRITE))
        p &= ~(AP_TABLE_NO_EL0.get(raw).astype(np.uint8) * np.uint8(Perm.USER))
        p &= ~(XN_TABLE.get(raw).astype(np.uint8) * np.uint8(Perm.EXEC))
        return p

    def normalise_perm(self, perm):
        if self.stage == 1:
            # AP cannot say write-only: Linux sets AP_RDONLY only for read-without-write.
            perm = perm | Perm.READ | Perm.USER
        return perm | Perm.USER if self.stage == 2 else perm

    def table_bits(self, fmt, level):
        return TYPE_TABLE.put(DESC_TABLE)

    def leaf_bits(self, fmt, level, lg2, perm):
        bits = TYPE.put(DESC_PAGE if level == 0 else DESC_BLOCK) | AF.put(1) | SH.put(SH_IS)
        if self.stage == 1:
            bits |= NG.put(1) | AP_UNPRIV.put(1) | ATTR_INDX.put(ATTR_INDX_CACHE)
            bits |= AP_RDONLY.put(not perm & Perm.WRITE)
        else:
            bits |= MEM_ATTR.put(MEM_ATTR_OIWB) | S2AP_R.put(bool(perm & Perm.READ)) | S2AP_W.put(bool(perm & Perm.WRITE))
        if not perm & Perm.EXEC:
            bits |= XN.put(0b11)
        return bits


# ---- the factory --------------------------------------------------------------------------
def _concat_mandatory(granule_lg2: int, start_level: int, ias: int, oas: int) -> bool:
    """``arm_lpae_concat_mandatory`` (Arm DDI0487 R_DXBSH, R_SRKBC)."""
    if granule_lg2 == 14 and start_level == 0 and (oas == 48 or ias == 48):
        return True
    if granule_lg2 == 12 and start_level == 0 and oas in (40, 42):
        return True
    return granule_lg2 == 14 and start_level == 1 and oas == 40


def arm_lpae(stage: int = 1, granule: int = 4096, ias: int = 48, oas: int | None = None, *,
             concat: str = "mandatory", unmap_policy: UnmapPolicy = UnmapPolicy.REFUSE,
             name: str | None = None) -> Format:
    """ARM LPAE / VMSAv8-64 (``io-pgtable-arm.c`` ``arm_lpae_alloc_pgtable``) for any ias/oas.

    ``pg_shift = log2 granule``, ``bits_per_level = pg_shift - 3``,
    ``levels = ceil((ias - pg_shift) / bits_per_level)``, top ``pgd_bits`` the remainder.
    Stage 2 may concatenate up to 16 top tables (``pgd_bits += bits_per_level``, one level
    fewer): ``concat="mandatory"`` is the current kernel (``arm_lpae_concat_mandatory``),
    ``"opportunistic"`` the older rule (start level 0 and at most 16 PGD entries), ``"never"``.
    Leaves: 4K → 4K|2M|1G; 16K → 16K|32M; 64K → 64K|512M, plus 4T with a 52-bit OA
    (``arm_lpae_restrict_pgsizes``). ias/oas at most 48, or 52 with 64K. ``unmap_policy``:
    REFUSE (v6.13 and later) or SPLIT (older kernels), see ``UnmapPolicy``.
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, not {stage}")
    if granule not in (4096, 16384, 65536):
        raise ValueError(f"granule must be 4096, 16384 or 65536, not {granule}")
    g = granule.bit_length() - 1
    oas = ias if oas is None else oas
    max_bits = 52 if g == 16 else _PA_TOP
    for label, v in (("ias", ias), ("oas", oas)):
        if not 32 <= v <= max_bits:
            raise ValueError(
                f"{label} {v} is outside the 32..{max_bits} bits io-pgtable-arm accepts for a {granule // 1024}K granule"
            )
    bpl = g - 3
    levels, top = radix(ias, g, bpl)
    if levels > 4:
        raise ValueError(f"ias {ias} needs {levels} levels; LPAE has at most 4")
    start = 4 - levels
    if stage == 2 and concat != "never":
        if concat == "mandatory":
            do = _concat_mandatory(g, start, ias, oas)
        elif concat == "opportunistic":
            do = start == 0 and (1 << top) <= 16
        else:
            raise ValueError(f"concat must be 'mandatory', 'opportunistic' or 'never', not {concat!r}")
        if do:
            if (1 << top) > 16:
                raise ValueError(
                    f"stage-2 ias {ias}/oas {oas} would need {1 << top} concatenated tables; the limit is 16 (ARM_LPAE_S2_MAX_CONCAT_PAGES)"
                )
            top += bpl
            levels -= 1
    # Blocks (generic numbering): 4K L1/L2 = levels 2/1; 16K L2 = 1; 64K L2 = 1 (+ L1 = 2 with 52-bit OA).
    blocks = {12: {1, 2}, 14: {1}, 16: {1, 2} if oas > _PA_TOP else {1}}[g]
    leaf_levels = frozenset({0} | {lv for lv in blocks if lv < levels})
    bitmap = 0
    for lv in leaf_levels:
        bitmap |= 1 << (g + bpl * lv)
    return Format(
        name or f"arm-lpae-s{stage}-{granule // 1024}k-{ias}bit", "arm-lpae", stage, g, bpl, levels, top, ias,
        oas, leaf_levels, bitmap, IovaRange(0, (1 << ias) - 1), ArmLpaeRules(stage, g, oas),
        unmap_policy=unmap_policy,
        description=f"ARM LPAE stage {stage}, {granule // 1024}K granule, ias {ias}, oas {oas}, start level {4 - levels}"
        + (" (concatenated top)" if top > bpl else ""),
    )
