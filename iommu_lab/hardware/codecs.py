"""Per-family PTE codecs: field tables plus the few rules that read them.

This mirrors ``drivers/iommu/generic_pt/fmt/*.h``: the walker and the map loop are generic
(``walk.py``, ``table.py``); a format only supplies how an entry is classified (empty, table,
leaf, or an encoding the hardware rejects), where its address lives, what permissions it
grants, and how Linux writes table and leaf entries (``pt_load_entry_raw``, ``pt_table_pa``,
``pt_entry_oa``, ``pt_install_table``, ``pt_install_leaf_entry``, ``pt_iommu_set_prot``).

Every rule is written over numpy ``uint64`` arrays so the vectorised translator and the
single-IOVA walker run the *same* code; a scalar entry is a length-1 array.

Level numbering is generic_pt's: level 0 is the leaf table (4 KiB pages on x86), the top is
``levels - 1``. Each codec names levels the way its specification does (VT-d ``SL-PDE``,
ARM ``L2``, AMD ``L1``...).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import numpy as np

from iommu_lab.core.bits import Field, FieldTable, genmask

if TYPE_CHECKING:  # pragma: no cover
    from iommu_lab.hardware.formats import Format

__all__ = [
    "AmdV1Codec",
    "ArmLpaeCodec",
    "Codec",
    "EntryKind",
    "Perm",
    "RiscvCodec",
    "TceCodec",
    "VtdSSCodec",
    "X86Codec",
    "parse_perm",
]

_U64 = np.uint64


class Perm(enum.IntFlag):
    """Access permissions of a mapping, as the IOMMU API's ``IOMMU_READ``/``IOMMU_WRITE`` and
    the absence of ``IOMMU_NOEXEC``; ``USER`` is x86 U/S, RISC-V U and ARM AP[1] (EL0)."""

    NONE = 0
    READ = 1
    WRITE = 2
    EXEC = 4
    USER = 8

    def __str__(self) -> str:
        return "".join(
            c if self & p else "-"
            for c, p in (("r", Perm.READ), ("w", Perm.WRITE), ("x", Perm.EXEC))
        ) + ("u" if self & Perm.USER else "")


def parse_perm(prot: str | int | Perm) -> Perm:
    """``"rw"``, ``"r"``, ``"rwx"`` or a ``Perm`` → ``Perm``. ``x`` grants execute; without it
    the entry carries the format's no-execute bit (Linux's ``IOMMU_NOEXEC``)."""
    if isinstance(prot, Perm):
        return prot
    if isinstance(prot, int) and not isinstance(prot, bool):
        if prot & ~0xF:
            raise ValueError(f"permission {prot:#x} has bits outside READ|WRITE|EXEC|USER")
        return Perm(prot)
    if not isinstance(prot, str):
        raise TypeError(
            f"prot must be a string such as 'rw' or a Perm, got {type(prot).__name__} {prot!r}"
        )
    out = Perm.NONE
    for c in prot.lower().replace("-", ""):
        try:
            out |= {"r": Perm.READ, "w": Perm.WRITE, "x": Perm.EXEC, "u": Perm.USER}[c]
        except KeyError:
            raise ValueError(
                f"prot {prot!r}: unknown letter {c!r}; use r, w, x (and u for user)"
            ) from None
    return out


class EntryKind(enum.IntEnum):
    """What a 64-bit entry is at its level, after the format's rules."""

    EMPTY = 0  #: not present (VT-d: R=W=0; x86/AMD/RISC-V: P/PR/V=0; ARM: bit 0 clear)
    TABLE = 1  #: points at the next-level table
    LEAF = 2  #: produces an output address (page, block, superpage)
    RESERVED = 3  #: reserved bits or a reserved encoding set
    BAD_TYPE = 4  #: a type the level cannot hold (ARM L3 0b01, a block where none exist)
    LEVEL_SKIP = 5  #: AMD NextLevel neither 0, 7 nor this level (Linux: "no level skipping")
    MISALIGNED = 6  #: RISC-V superpage whose PPN has low bits set


def _u(x) -> np.ndarray:
    return np.asarray(x, dtype=_U64)


def _bit(raw: np.ndarray, n: int) -> np.ndarray:
    return (raw >> _U64(n)) & _U64(1)


def _ctz(x: np.ndarray) -> np.ndarray:
    """Index of the lowest set bit of each non-zero uint64 (exact: powers of two are exact floats)."""
    low = x & (~x + _U64(1))
    return np.log2(low.astype(np.float64)).astype(np.int64)


class Codec:
    """Base codec: the generic parts; subclasses set the family's fields and rules."""

    family = "generic"
    #: Whether every leaf at a level has that level's item size (False for AMD NL=7).
    fixed_leaf_size = True
    #: The bits Linux may have set in an entry read back as the output address.
    addr_mask = genmask(51, 12)

    def __init__(self) -> None:
        self.table_fields = FieldTable([], "table")
        self.leaf_fields = FieldTable([], "leaf")

    # -- geometry hooks --------------------------------------------------------------
    def possible_lg2(self, fmt: Format, level: int) -> tuple[int, ...]:
        """Leaf sizes (log2) an entry at ``level`` can hold (``pt_possible_sizes``)."""
        return (fmt.item_lg2(level),) if level in fmt.leaf_levels else ()

    def replicas(self, fmt: Format, level: int, lg2: int) -> int:
        """Slots one leaf of 2**lg2 occupies at ``level`` (AMD NL=7 and contiguous leaves)."""
        return 1 << (lg2 - fmt.item_lg2(level))

    def level_name(self, fmt: Format, level: int) -> str:
        return f"L{level}"

    # -- decoding (vectorised) --------------------------------------------------------
    def classify(self, fmt: Format, raw: np.ndarray, level: int) -> np.ndarray:
        raise NotImplementedError

    def oa_decode(self, fmt: Format, raw: np.ndarray) -> np.ndarray:
        return raw & _U64(self.addr_mask)

    def oa_encode(self, fmt: Format, pa):
        """Place a physical address in the entry's address field (int or array)."""
        if isinstance(pa, np.ndarray):
            return pa & _U64(self.addr_mask)
        return int(pa) & self.addr_mask

    @property
    def oa_is_identity(self) -> bool:
        """True when ``oa_encode(pa) == pa`` for every aligned pa below 2**52 (bulk fast path)."""
        return True

    def table_addr(self, fmt: Format, raw: np.ndarray, level: int) -> np.ndarray:
        return self.oa_decode(fmt, raw)

    def leaf_lg2(self, fmt: Format, raw: np.ndarray, level: int) -> np.ndarray:
        return np.full(raw.shape, fmt.item_lg2(level), dtype=np.int64)

    def leaf_base(self, fmt: Format, raw: np.ndarray, level: int, lg2: np.ndarray) -> np.ndarray:
        size_mask = (_U64(1) << lg2.astype(_U64)) - _U64(1)
        return self.oa_decode(fmt, raw) & ~size_mask

    def leaf_perm(self, fmt: Format, raw: np.ndarray, level: int) -> np.ndarray:
        raise NotImplementedError

    def table_perm(self, fmt: Format, raw: np.ndarray, level: int) -> np.ndarray:
        """Permissions a table entry lets through to the levels below (ANDed along the walk)."""
        return np.full(raw.shape, 0xF, dtype=np.uint8)

    # -- encoding (what Linux writes) -----------------------------------------------
    def normalise_perm(self, perm: Perm) -> Perm:
        """The permission the format can express for ``perm`` (e.g. write implies read)."""
        return perm

    def table_bits(self, fmt: Format, level: int) -> int:
        raise NotImplementedError

    def leaf_bits(self, fmt: Format, level: int, lg2: int, perm: Perm) -> int:
        raise NotImplementedError

    def fields_for(self, fmt: Format, level: int, kind: EntryKind) -> FieldTable:
        return self.table_fields if kind == EntryKind.TABLE else self.leaf_fields


class VtdSSCodec(Codec):
    """Intel VT-d second-stage entries (``intel/iommu.h`` ``DMA_PTE_*``; generic_pt ``vtdss.h``).

    No present bit: an entry is present when R|W != 0 (``dma_pte_present``). SP (bit 7) makes a
    PDE/PDPE a leaf (``dma_pte_superpage``); Linux never sets it higher (``vtdss_pt_can_have_leaf``),
    and in a PML4E/PML5E it is reserved. Tables are written ``phys | R | W`` (``pfn_to_dma_pte``),
    and R/W are ANDed along the walk.
    """

    family = "vtd-ss"
    addr_mask = genmask(51, 12)

    def __init__(self) -> None:
        self.table_fields = FieldTable(
            [
                Field("R", 0, 1, "read"),
                Field("W", 1, 1, "write"),
                Field("A", 8, 1, "accessed"),
                Field("ADDR", 12, 40, "next table >> 12"),
            ],
            "VT-d SS table",
        )
        self.leaf_fields = FieldTable(
            [
                Field("R", 0, 1, "read"),
                Field("W", 1, 1, "write"),
                Field("EMT", 3, 3, "memory type"),
                Field("IPAT", 6, 1, "ignore PAT"),
                Field("SP", 7, 1, "superpage"),
                Field("A", 8, 1, "accessed"),
                Field("D", 9, 1, "dirty"),
                Field("SNP", 11, 1, "snoop"),
                Field("ADDR", 12, 40, "page >> 12"),
                Field("TM", 62, 1, "transient mapping"),
            ],
            "VT-d SS leaf",
        )

    def level_name(self, fmt, level):
        return ("SL-PTE", "SL-PDE", "SL-PDPE", "SL-PML4E", "SL-PML5E")[level]

    def classify(self, fmt, raw, level):
        present = (raw & _U64(3)) != 0
        empty, leaf, table = (
            np.int8(EntryKind.EMPTY),
            np.int8(EntryKind.LEAF),
            np.int8(EntryKind.TABLE),
        )
        if level == 0:
            return np.where(present, leaf, empty)
        sp = (raw & _U64(0x80)) != 0
        big = leaf if level in fmt.leaf_levels else np.int8(EntryKind.RESERVED)
        return np.where(present, np.where(sp, big, table), empty)

    def leaf_perm(self, fmt, raw, level):
        return ((raw & _U64(3)).astype(np.uint8)) | np.uint8(Perm.EXEC | Perm.USER)

    table_perm = leaf_perm

    def normalise_perm(self, perm):
        return perm & (Perm.READ | Perm.WRITE)

    def table_bits(self, fmt, level):
        return 0x3

    def leaf_bits(self, fmt, level, lg2, perm):
        bits = (1 if perm & Perm.READ else 0) | (2 if perm & Perm.WRITE else 0)
        return bits | (0x80 if level > 0 else 0)


class X86Codec(Codec):
    """x86-64 paging entries: VT-d first stage and AMD v2 (generic_pt ``x86_64.h``).

    P=0 is not present; PS makes a PDE/PDPTE a leaf and is reserved in PML4E/PML5E. Linux
    writes leaves as P|U|A plus RW|D when writable, PS above level 0, and XD when not
    executable; tables as P|RW|U|A (0x27). RW and U/S are ANDed along the walk, XD ORed.
    """

    family = "x86-64"
    addr_mask = genmask(51, 12)

    def __init__(self) -> None:
        common = [
            Field("P", 0, 1, "present"),
            Field("RW", 1, 1, "writable"),
            Field("US", 2, 1, "user"),
            Field("PWT", 3, 1, "write-through"),
            Field("PCD", 4, 1, "cache disable"),
            Field("A", 5, 1, "accessed"),
        ]
        self.table_fields = FieldTable(
            common
            + [
                Field("PS", 7, 1, "page size (0 in a table)"),
                Field("ADDR", 12, 40, "next table >> 12"),
                Field("XD", 63, 1, "execute disable"),
            ],
            "x86-64 table",
        )
        self.leaf_fields = FieldTable(
            common
            + [
                Field("D", 6, 1, "dirty"),
                Field("PS", 7, 1, "page size / PAT"),
                Field("G", 8, 1, "global"),
                Field("ADDR", 12, 40, "page >> 12"),
                Field("XD", 63, 1, "execute disable"),
            ],
            "x86-64 leaf",
        )

    def level_name(self, fmt, level):
        return ("PTE", "PDE", "PDPTE", "PML4E", "PML5E")[level]

    def classify(self, fmt, raw, level):
        present = _bit(raw, 0).astype(bool)
        ps = _bit(raw, 7).astype(bool)
        if level == 0:
            kind = np.full(raw.shape, EntryKind.LEAF, dtype=np.int8)
        elif level in fmt.leaf_levels:
            kind = np.where(ps, EntryKind.LEAF, EntryKind.TABLE).astype(np.int8)
        else:
            kind = np.where(ps, EntryKind.RESERVED, EntryKind.TABLE).astype(np.int8)
        kind[~present] = EntryKind.EMPTY
        return kind

    def leaf_perm(self, fmt, raw, level):
        p = np.full(raw.shape, int(Perm.READ), dtype=np.uint8)
        p |= _bit(raw, 1).astype(np.uint8) * np.uint8(Perm.WRITE)
        p |= _bit(raw, 2).astype(np.uint8) * np.uint8(Perm.USER)
        p |= (_bit(raw, 63) ^ _U64(1)).astype(np.uint8) * np.uint8(Perm.EXEC)
        return p

    table_perm = leaf_perm

    def normalise_perm(self, perm):
        # P doubles as "readable": there is no write-only mapping (legacy DMA_PTE_READ is P).
        return (perm | Perm.READ | Perm.USER) if perm & Perm.WRITE else perm | Perm.USER

    def table_bits(self, fmt, level):
        return 0x27

    def leaf_bits(self, fmt, level, lg2, perm):
        bits = 0x1 | 0x4 | 0x20
        if perm & Perm.WRITE:
            bits |= 0x2 | 0x40
        if level > 0:
            bits |= 0x80
        if not perm & Perm.EXEC:
            bits |= 1 << 63
        return bits


class AmdV1Codec(Codec):
    """AMD IOMMU v1 host page table (``amd_iommu_types.h``; ``io_pgtable.c``; generic_pt ``amdv1.h``).

    PR=0 is not present. In a PDE at 0-based level x, NextLevel = x (``PM_LEVEL_PDE``). NL=0 is
    a leaf of the level's default size; NL=7 a leaf of another power-of-two size, encoded as a
    run of ones from bit 12 in the address field (``PAGE_SIZE_PTE``), written into
    ``2**((lg2-12) % 9)`` identical slots (``PAGE_SIZE_PTE_COUNT``). Any other NL is level
    skipping, which ``fetch_pte`` refuses. IR/IW are ANDed along the walk, so Linux sets them on
    every PDE; leaves get PR|FC plus IR/IW.
    """

    family = "amd-v1"
    fixed_leaf_size = False
    addr_mask = genmask(51, 12)

    def __init__(self) -> None:
        self.table_fields = FieldTable(
            [
                Field("PR", 0, 1, "present"),
                Field("A", 5, 1, "accessed"),
                Field("NL", 9, 3, "NextLevel"),
                Field("ADDR", 12, 40, "next table >> 12"),
                Field("IR", 61, 1, "read"),
                Field("IW", 62, 1, "write"),
            ],
            "AMD v1 PDE",
        )
        self.leaf_fields = FieldTable(
            [
                Field("PR", 0, 1, "present"),
                Field("A", 5, 1, "accessed"),
                Field("D", 6, 1, "dirty"),
                Field("NL", 9, 3, "NextLevel (0 default size, 7 size in address)"),
                Field("ADDR", 12, 40, "page >> 12 (NL=7: low run of ones encodes the size)"),
                Field("U", 59, 1, "untranslated"),
                Field("FC", 60, 1, "force coherent"),
                Field("IR", 61, 1, "read"),
                Field("IW", 62, 1, "write"),
            ],
            "AMD v1 PTE",
        )

    def possible_lg2(self, fmt, level):
        # amdv1pt_possible_sizes: 4K..1M at level 0, item..item*256 above; none at level 5;
        # 512G removed (hardware bug); capped at 2**51 (GENMASK(51,12)).
        if level > 4 or level >= fmt.levels:
            return ()
        item = fmt.item_lg2(level)
        hi = min(item + 8, 51)
        return tuple(lg2 for lg2 in range(item, hi + 1) if lg2 != 39)

    def replicas(self, fmt, level, lg2):
        return 1 << ((lg2 - 12) % 9)

    def classify(self, fmt, raw, level):
        present = _bit(raw, 0).astype(bool)
        nl = ((raw >> _U64(9)) & _U64(7)).astype(np.int64)
        leaf = (nl == 0) | (nl == 7)
        can_leaf = level <= 4
        kind = np.full(raw.shape, EntryKind.LEVEL_SKIP, dtype=np.int8)
        if can_leaf:
            kind[leaf] = EntryKind.LEAF
        else:
            kind[leaf] = EntryKind.BAD_TYPE
        if level > 0:
            kind[nl == level] = EntryKind.TABLE
        kind[~present] = EntryKind.EMPTY
        return kind

    def leaf_lg2(self, fmt, raw, level):
        nl7 = ((raw >> _U64(9)) & _U64(7)) == _U64(7)
        # PTE_PAGE_SIZE(pte) = 1 << (1 + ffz(pte | 0xfff))
        lg2 = 1 + _ctz(~(raw | _U64(0xFFF)))
        return np.where(nl7, lg2, fmt.item_lg2(level)).astype(np.int64)

    def leaf_perm(self, fmt, raw, level):
        p = (_bit(raw, 61).astype(np.uint8) * np.uint8(Perm.READ)) | (
            _bit(raw, 62).astype(np.uint8) * np.uint8(Perm.WRITE)
        )
        return p | np.uint8(Perm.EXEC | Perm.USER)

    table_perm = leaf_perm

    def normalise_perm(self, perm):
        return perm & (Perm.READ | Perm.WRITE)

    def table_bits(self, fmt, level):
        return 1 | (level << 9) | (1 << 61) | (1 << 62)

    def leaf_bits(self, fmt, level, lg2, perm):
        bits = 1 | (1 << 60)
        if perm & Perm.READ:
            bits |= 1 << 61
        if perm & Perm.WRITE:
            bits |= 1 << 62
        if lg2 != fmt.item_lg2(level):
            sz = 1 << lg2
            bits |= (7 << 9) | (((sz - 1) & ~(sz >> 1)) & genmask(51, 12))
        return bits


class ArmLpaeCodec(Codec):
    """ARM LPAE / VMSAv8-64 descriptors (``io-pgtable-arm.c``), stage 1 or stage 2.

    Bit 0 clear is invalid. Type 0b11 is a table above the last level and a *page* at the last
    level; 0b01 is a block where blocks exist and reserved at the last level (``iopte_leaf``,
    QEMU ``is_reserved_pte``). The output address is bits 47:g; with the 64 KiB granule and a
    52-bit OA, PA[51:48] sits in bits 15:12 (``paddr_to_iopte``/``iopte_to_paddr``).
    Linux's leaves (``arm_lpae_prot_to_pte`` + ``__arm_lpae_init_pte``): AF | SH_IS, stage 1
    nG | AP_UNPRIV | AttrIndx=1 (cacheable) | AP_RDONLY without write; stage 2 MemAttr OIWB |
    S2AP R/W; XN (bits 54:53) without exec. Tables are ``phys | 0b11`` (``arm_lpae_install_table``).
    """

    family = "arm-lpae"

    def __init__(self, stage: int, granule_lg2: int, oas: int) -> None:
        self.stage = stage
        self.g = granule_lg2
        self.oas = oas
        self.lpa52 = granule_lg2 == 16 and oas > 48
        self.addr_mask = genmask(47, granule_lg2)
        addr = [Field("ADDR", granule_lg2, 48 - granule_lg2, f"address bits 47:{granule_lg2}")]
        if self.lpa52:
            addr.append(Field("ADDR_HI", 12, 4, "PA[51:48]"))
        self.table_fields = FieldTable(
            [Field("TYPE", 0, 2, "0b11 table")]
            + addr
            + [
                Field("PXNTable", 59, 1),
                Field("XNTable", 60, 1),
                Field("APTable", 61, 2),
                Field("NSTable", 63, 1),
            ],
            "ARM table descriptor",
        )
        if stage == 1:
            attrs = [
                Field("AttrIndx", 2, 3, "MAIR index"),
                Field("NS", 5, 1),
                Field("AP", 6, 2, "AP[2:1]: bit7 RO, bit6 EL0"),
            ]
            tail = [Field("PXN", 53, 1), Field("UXN", 54, 1)]
        else:
            attrs = [
                Field("MemAttr", 2, 4, "stage-2 memory attributes"),
                Field("S2AP", 6, 2, "bit6 read, bit7 write"),
            ]
            tail = [Field("XN", 53, 2)]
        ng = [Field("nG", 11, 1)] if stage == 1 else []
        self.leaf_fields = FieldTable(
            [Field("TYPE", 0, 2, "0b01 block / 0b11 page")]
            + attrs
            + [Field("SH", 8, 2, "shareability"), Field("AF", 10, 1, "access flag")]
            + ng
            + addr
            + [Field("DBM", 51, 1), Field("CONT", 52, 1, "contiguous hint")]
            + tail
            + [Field("SW", 55, 4, "software")],
            f"ARM stage-{stage} block/page descriptor",
        )
        # Address bits the format must hold zero: between bit 12 and the granule (unless 52-bit
        # OA reuses 15:12) and 50:48 (no 52-bit PA in 48-bit configurations).
        res0 = genmask(50, 48) if not self.lpa52 else 0
        if granule_lg2 > 12 and not self.lpa52:
            res0 |= genmask(granule_lg2 - 1, 12)
        self.res0 = res0

    @property
    def oa_is_identity(self) -> bool:
        return not self.lpa52

    def level_name(self, fmt, level):
        return f"L{3 - level}"

    def classify(self, fmt, raw, level):
        valid = _bit(raw, 0).astype(bool)
        t = (raw & _U64(3)).astype(np.int64)
        kind = np.full(raw.shape, EntryKind.BAD_TYPE, dtype=np.int8)
        if level == 0:
            kind[t == 3] = EntryKind.LEAF
        else:
            kind[t == 3] = EntryKind.TABLE
            if level in fmt.leaf_levels:
                kind[t == 1] = EntryKind.LEAF
        if self.res0:
            kind[((raw & _U64(self.res0)) != 0) & (kind != EntryKind.BAD_TYPE)] = EntryKind.RESERVED
        kind[~valid] = EntryKind.EMPTY
        return kind

    def oa_decode(self, fmt, raw):
        pa = raw & _U64(self.addr_mask)
        if self.lpa52:
            pa |= ((raw >> _U64(12)) & _U64(0xF)) << _U64(48)
        return pa

    def oa_encode(self, fmt, pa):
        if isinstance(pa, np.ndarray):
            out = pa & _U64(self.addr_mask)
            if self.lpa52:
                out |= ((pa >> _U64(48)) & _U64(0xF)) << _U64(12)
            return out
        pa = int(pa)
        out = pa & self.addr_mask
        if self.lpa52:
            out |= ((pa >> 48) & 0xF) << 12
        return out

    def leaf_perm(self, fmt, raw, level):
        if self.stage == 1:
            p = np.full(raw.shape, int(Perm.READ), dtype=np.uint8)
            p |= (_bit(raw, 7) ^ _U64(1)).astype(np.uint8) * np.uint8(Perm.WRITE)
            p |= _bit(raw, 6).astype(np.uint8) * np.uint8(Perm.USER)
            p |= (_bit(raw, 54) ^ _U64(1)).astype(np.uint8) * np.uint8(Perm.EXEC)
            return p
        p = (_bit(raw, 6).astype(np.uint8) * np.uint8(Perm.READ)) | (
            _bit(raw, 7).astype(np.uint8) * np.uint8(Perm.WRITE)
        )
        p |= (_bit(raw, 54) ^ _U64(1)).astype(np.uint8) * np.uint8(Perm.EXEC)
        return p | np.uint8(Perm.USER)

    def table_perm(self, fmt, raw, level):
        if self.stage == 2:
            return np.full(raw.shape, 0xF, dtype=np.uint8)
        p = np.full(raw.shape, 0xF, dtype=np.uint8)
        p &= ~(_bit(raw, 62).astype(np.uint8) * np.uint8(Perm.WRITE))  # APTable[1]: no write
        p &= ~(_bit(raw, 61).astype(np.uint8) * np.uint8(Perm.USER))  # APTable[0]: no EL0
        p &= ~(_bit(raw, 60).astype(np.uint8) * np.uint8(Perm.EXEC))  # UXNTable
        return p

    def normalise_perm(self, perm):
        if self.stage == 1:
            # AP cannot say write-only: Linux sets AP_RDONLY only for read-without-write.
            perm = perm | Perm.READ | Perm.USER
        return perm | Perm.USER if self.stage == 2 else perm

    def table_bits(self, fmt, level):
        return 0x3

    def leaf_bits(self, fmt, level, lg2, perm):
        bits = (3 if level == 0 else 1) | (1 << 10) | (3 << 8)
        if self.stage == 1:
            bits |= (1 << 11) | (1 << 6) | (1 << 2)
            if not perm & Perm.WRITE:
                bits |= 1 << 7
        else:
            bits |= 0xF << 2
            if perm & Perm.READ:
                bits |= 1 << 6
            if perm & Perm.WRITE:
                bits |= 1 << 7
        if not perm & Perm.EXEC:
            bits |= 3 << 53
        return bits


class RiscvCodec(Codec):
    """RISC-V Sv39/48/57 entries (privileged spec; ``riscv/iommu.c``; generic_pt ``riscv.h``).

    V=0 is invalid; any of R/W/X makes a leaf at any level; V with R=W=X=0 points to the next
    table (a pointer in the last level is a fault). W without R and bits 60:54 are reserved;
    a superpage whose PPN has low bits set is misaligned. generic_pt writes A|U, R, W|D when
    writable, X unless NOEXEC; tables are ``PPN << 10 | V``.
    """

    family = "riscv"
    addr_mask = genmask(55, 12)

    def __init__(self) -> None:
        self.table_fields = FieldTable(
            [
                Field("V", 0, 1, "valid"),
                Field("R", 1, 1),
                Field("W", 2, 1),
                Field("X", 3, 1),
                Field("PPN", 10, 44, "next table >> 12"),
            ],
            "RISC-V pointer",
        )
        self.leaf_fields = FieldTable(
            [
                Field("V", 0, 1, "valid"),
                Field("R", 1, 1),
                Field("W", 2, 1),
                Field("X", 3, 1),
                Field("U", 4, 1),
                Field("G", 5, 1),
                Field("A", 6, 1),
                Field("D", 7, 1),
                Field("RSW", 8, 2),
                Field("PPN", 10, 44),
                Field("RSV", 54, 7, "reserved, must be 0"),
                Field("PBMT", 61, 2),
                Field("N", 63, 1, "Svnapot"),
            ],
            "RISC-V leaf",
        )

    @property
    def oa_is_identity(self) -> bool:
        return False

    def level_name(self, fmt, level):
        return f"VPN[{level}]"

    def oa_decode(self, fmt, raw):
        return ((raw >> _U64(10)) & _U64((1 << 44) - 1)) << _U64(12)

    def oa_encode(self, fmt, pa):
        if isinstance(pa, np.ndarray):
            return (pa >> _U64(12)) << _U64(10)
        return (int(pa) >> 12) << 10

    def classify(self, fmt, raw, level):
        v = _bit(raw, 0).astype(bool)
        rwx = ((raw >> _U64(1)) & _U64(7)).astype(np.int64)
        leaf = rwx != 0
        kind = np.where(
            leaf, EntryKind.LEAF, EntryKind.TABLE if level > 0 else EntryKind.BAD_TYPE
        ).astype(np.int8)
        if level > 0:
            ppn_low = (raw >> _U64(10)) & _U64((1 << (9 * level)) - 1)
            kind[leaf & (ppn_low != 0)] = EntryKind.MISALIGNED
        kind[leaf & (level not in fmt.leaf_levels)] = EntryKind.BAD_TYPE
        reserved = ((raw & _U64(genmask(60, 54))) != 0) | (_bit(raw, 63) != 0) | ((rwx & 3) == 2)
        kind[reserved] = EntryKind.RESERVED
        kind[~v] = EntryKind.EMPTY
        return kind

    def leaf_perm(self, fmt, raw, level):
        p = (_bit(raw, 1).astype(np.uint8) * np.uint8(Perm.READ)) | (
            _bit(raw, 2).astype(np.uint8) * np.uint8(Perm.WRITE)
        )
        p |= (_bit(raw, 3).astype(np.uint8) * np.uint8(Perm.EXEC)) | (
            _bit(raw, 4).astype(np.uint8) * np.uint8(Perm.USER)
        )
        return p

    def normalise_perm(self, perm):
        perm |= Perm.USER
        return perm | Perm.READ if perm & Perm.WRITE else perm

    def table_bits(self, fmt, level):
        return 0x1

    def leaf_bits(self, fmt, level, lg2, perm):
        bits = 0x1 | 0x10 | 0x40
        if perm & Perm.READ:
            bits |= 0x2
        if perm & Perm.WRITE:
            bits |= 0x4 | 0x80
        if perm & Perm.EXEC:
            bits |= 0x8
        return bits


class TceCodec(Codec):
    """POWER TCE (``arch/powerpc/include/asm/tce.h``): ``(pa & ~(page-1)) | READ | WRITE``.

    A table is a flat array with one page size; an entry with neither READ nor WRITE is not
    mapped. powernv sets READ whenever WRITE is set (``pnv_tce_build``).
    """

    family = "power-tce"
    addr_mask = genmask(51, 12)

    def __init__(self) -> None:
        fields = [
            Field("R", 0, 1, "TCE_PCI_READ"),
            Field("W", 1, 1, "TCE_PCI_WRITE"),
            Field("RPN", 12, 40, "real page number"),
        ]
        self.table_fields = FieldTable(fields, "TCE")
        self.leaf_fields = self.table_fields

    def level_name(self, fmt, level):
        return "TCE"

    def classify(self, fmt, raw, level):
        return np.where((raw & _U64(3)) != 0, EntryKind.LEAF, EntryKind.EMPTY).astype(np.int8)

    def leaf_perm(self, fmt, raw, level):
        return ((raw & _U64(3)).astype(np.uint8)) | np.uint8(Perm.EXEC | Perm.USER)

    def normalise_perm(self, perm):
        perm &= Perm.READ | Perm.WRITE
        return perm | Perm.READ if perm & Perm.WRITE else perm

    def table_bits(self, fmt, level):
        raise ValueError("a TCE table has no table entries")

    def leaf_bits(self, fmt, level, lg2, perm):
        return (1 if perm & Perm.READ else 0) | (2 if perm & Perm.WRITE else 0)
