"""The one page-table format descriptor: geometry computed from a few numbers, entry rules per family.

Mirrors ``io-pgtable-arm.c`` ``arm_lpae_alloc_pgtable``: a format is a handful of numbers
(granule, bits per level, input width, output width, which levels may hold leaves) from which
every derived quantity -- number of levels, index bits and shift per level, top-table width
(narrower, or concatenated at ARM stage 2), leaf sizes, table bytes -- is *computed*, the way
generic_pt computes ``pt_table_item_lg2sz(level) = GRANULE_LG2SZ + bits_per_level * level``.
Entry bits come from the family's :class:`Rules` (one file per family beside this one, as
generic_pt's ``fmt/*.h``).

Levels are numbered as generic_pt numbers them: 0 is the leaf table, ``levels - 1`` the top.
That number is internal: what a reader sees is ``fmt.level_name(level)``, the name the format's
specification gives the level (VT-d ``SL-PDE``, ARM ``L2``, AMD ``Level 1``, RISC-V ``level 0``),
and ``fmt.level_names`` lists them from the root down. ``fmt.perm_text(perm)`` writes a
permission with only the bits the format defines (a VT-d second-stage leaf is ``rw``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from iommu_lab.core import display
from iommu_lab.core.bits import FieldTable, genmask
from iommu_lab.core.faults import FaultReason
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet, fmt_addr, fmt_size
from iommu_lab.core.words import plural

__all__ = ["DecodedEntry", "EntryKind", "Format", "Rules", "UnmapPolicy", "bit", "ctz", "radix", "u64"]

_U64 = np.uint64


class EntryKind(enum.IntEnum):
    """What a 64-bit entry is at its level, after the format's rules."""

    EMPTY = 0  #: not present (VT-d: R=W=0; x86/AMD/RISC-V: P/PR/V=0; ARM: bit 0 clear)
    TABLE = 1  #: points at the next-level table
    LEAF = 2  #: produces an output address (page, block, superpage)
    RESERVED = 3  #: reserved bits or a reserved encoding set
    BAD_TYPE = 4  #: a type the level cannot hold (ARM L3 0b01, a block where none exist)
    LEVEL_SKIP = 5  #: AMD NextLevel neither 0, 7 nor this level (Linux: "no level skipping")
    MISALIGNED = 6  #: RISC-V superpage whose PPN has low bits set


_PERM_LETTERS = (("r", Perm.READ), ("w", Perm.WRITE), ("x", Perm.EXEC), ("u", Perm.USER))

_KIND_FAULT = {
    EntryKind.EMPTY: FaultReason.NOT_PRESENT,
    EntryKind.RESERVED: FaultReason.RESERVED_BITS,
    EntryKind.BAD_TYPE: FaultReason.INVALID_ENTRY,
    EntryKind.LEVEL_SKIP: FaultReason.LEVEL_SKIP,
    EntryKind.MISALIGNED: FaultReason.MISALIGNED_SUPERPAGE,
}


def u64(x) -> np.uint64:
    """A Python int as a numpy ``uint64`` scalar (for masks built from fields)."""
    return _U64(x)


def bit(raw: np.ndarray, n: int) -> np.ndarray:
    return (raw >> _U64(n)) & _U64(1)


def ctz(x: np.ndarray) -> np.ndarray:
    """Index of the lowest set bit of each non-zero uint64 (exact: powers of two are exact floats)."""
    low = x & (~x + _U64(1))
    return np.log2(low.astype(np.float64)).astype(np.int64)


class UnmapPolicy(enum.Enum):
    """What a driver does when an unmap range ends inside a large leaf.

    WHOLE_LEAF: remove the whole leaf and report its full size — VT-d ``intel_iommu_unmap``
    ("Cope with horrid API which requires us to unmap more than the size argument"), AMD v1
    ``iommu_v1_unmap_pages``, and generic_pt ``__unmap_range`` ("the entire entry is unmapped
    and the length returned will be larger than requested"; kunit ``test_unmap_split``).

    REFUSE: unmap nothing of that leaf and stop — io-pgtable-arm since commit 33729a5fc0ca
    ("Remove split on unmap behavior", v6.13): ``WARN_ONCE(true, "Unmap of a partial large
    IOPTE is not allowed"); return 0``.

    SPLIT: replace the leaf by next-level entries that map the rest of it, and unmap only the
    requested part — io-pgtable-arm before v6.13 (``arm_lpae_split_blk_unmap``: "Insert a table
    at the next level to map the old region, minus the part we want to unmap"), for a range
    that starts or ends inside the block. Choose it with ``arm_lpae(..., unmap_policy=SPLIT)``.

    Both stop, returning 0 for that leaf, when the range *starts* inside a leaf (generic_pt
    returns -EINVAL there; ``__iommu_unmap`` stops at the first 0).
    """

    WHOLE_LEAF = "whole-leaf"
    REFUSE = "refuse"
    SPLIT = "split"


@dataclass(frozen=True)
class DecodedEntry:
    """One raw entry decoded at its level: kind, named fields, address, size, permissions."""

    raw: int
    level: int
    kind: EntryKind
    fields: dict
    address: int | None = None  #: next table (TABLE) or output base (LEAF)
    size: int | None = None  #: leaf size in bytes
    perm: Perm | None = None
    allows: Perm | None = None  #: for a table entry: what it lets through to the levels below
    level_name: str = ""  #: the level's name in the specification (``SL-PDE``, ``L2``, ``PTE``)
    fault: FaultReason | None = None  #: why a walk stops here (None for a table or a leaf)
    perm_text: str = ""  #: ``perm`` written with only the bits the format defines

    def __getitem__(self, name: str) -> int:
        return self.fields[name]

    def __str__(self) -> str:
        parts = [
            f"{k}={v:#x}" if k.startswith("ADDR") or k == "PPN" or k == "RPN" else f"{k}={v}"
            for k, v in self.fields.items()
            if v
        ]
        head = self.kind.name.lower()
        if self.kind == EntryKind.TABLE:
            head += f" -> {self.address:#x}"
        elif self.kind == EntryKind.LEAF:
            head += f" {fmt_size(self.size)} @ {self.address:#x} {self.perm_text or self.perm}"
        return f"{head} [{' '.join(parts)}]"


class Rules:
    """A family's entry rules (generic_pt's ``fmt/*.h`` functions), over numpy ``uint64`` arrays.

    Each family file subclasses this with its named fields: ``classify`` (``pt_load_entry_raw``),
    ``oa_decode``/``oa_encode`` (``pt_entry_oa``), ``leaf_perm``/``table_perm``, ``table_bits``
    (``pt_install_table``) and ``leaf_bits`` (``pt_install_leaf_entry``). A scalar entry is a
    length-1 array, so the single-IOVA walk and the vectorised translate share every rule.
    Class attributes are the family's feature flags.
    """

    family = "generic"
    #: The names the specification gives the levels, leaf table first (``level_name``).
    level_names: tuple[str, ...] = ()
    #: A flat, one-level array indexed by the whole window (POWER TCE), not a radix tree.
    linear = False
    #: The fault a type the level cannot hold raises: a reserved-bit fault on x86-style formats
    #: (PS=1 in a PML4E), a translation fault on ARM (an invalid descriptor).
    bad_type_reason = FaultReason.INVALID_ENTRY
    #: Whether every leaf at a level has that level's item size (False for AMD NL=7).
    fixed_leaf_size = True
    #: The bits Linux may have set in an entry read back as the output address.
    addr_mask = genmask(51, 12)
    #: The permission bits an entry of the format can express. A format without execute or
    #: user bits (VT-d second stage, AMD v1, POWER TCE) lets every access kind through that its
    #: R/W allow, so ``leaf_perm`` reports EXEC|USER as granted, but its text shows only R/W.
    perm_bits: Perm = Perm.RW | Perm.EXEC | Perm.USER
    #: The errno a map over an already present entry answers: generic_pt's ``__map_range``
    #: (VT-d, AMD, x86-64, RISC-V) returns -EADDRINUSE; io-pgtable-arm ``__arm_lpae_map``
    #: returns -EEXIST ("Can't map IOVA ... already mapped").
    map_exists_errno = "EADDRINUSE"

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
        return self.level_names[level] if self.level_names else f"L{level}"

    def perm_text(self, perm: Perm) -> str:
        """``perm`` as the format can express it: ``rwxu``-style letters of the bits it has,
        plus a note naming the kinds it has no bits for (``rw; format has no X/U bits``)."""
        perm = Perm(int(perm))
        letters = "".join(c if perm & p else "-" for c, p in _PERM_LETTERS if self.perm_bits & p)
        missing = "/".join(c.upper() for c, p in _PERM_LETTERS if not self.perm_bits & p)
        return f"{letters}; format has no {missing} bits" if missing else letters

    def fault_reason(self, kind: EntryKind) -> FaultReason | None:
        """Why a walk stops at an entry of ``kind`` (None: it does not)."""
        if kind == EntryKind.BAD_TYPE:
            return self.bad_type_reason
        return _KIND_FAULT.get(kind)

    def grown(self, fmt: Format, levels: int) -> Format:
        """The same format with ``levels`` levels (formats whose top grows on demand)."""
        raise ValueError(f"{fmt.name} has a fixed top")

    # -- decoding (vectorised) --------------------------------------------------------
    def classify(self, fmt: Format, raw: np.ndarray, level: int) -> np.ndarray:
        raise NotImplementedError

    def kind_mask(self, fmt: Format, level: int) -> int | None:
        """The bits ``classify`` reads at ``level`` (None: all of them).

        ``classify(raw) == classify(raw & kind_mask)`` for every entry, so a scalar walk can
        memoise the kind of an entry on these bits (a leaf's address bits do not change what
        it is), as generic_pt's ``pt_load_entry_raw`` looks only at the type bits.
        """
        return None

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


@dataclass(frozen=True, eq=False)
class Format:
    """A page-table format: geometry computed from a few numbers, entry bits from a codec.

    Parameters
    ----------
    name : str
        Registry name (``"vtd-ss-4level"``...).
    family : str
        Descriptive family name (``"vtd-ss"``, ``"x86-64"``, ``"amd-v1"``, ``"arm-lpae"``, ``"riscv"``, ``"power-tce"``).
    stage : int
        1 for a first-stage (guest/process) format, 2 for a second-stage/host format.
    granule_lg2, bits_per_level : int
        Smallest page (log2) and index bits of a full-size table.
    levels : int
        Depth of the walk.
    top_bits : int
        Index bits of the top table (narrower than ``bits_per_level``, or wider when
        concatenated at ARM stage 2, or the whole window for a flat TCE table).
    va_bits : int
        Input bits the levels translate; ``ias``.
    oas : int
        Output address bits.
    leaf_levels : frozenset
        Levels whose entries may be leaves.
    pgsize_bitmap : int
        Page sizes the driver advertises (policy; ``leaf_sizes`` is what the format can hold).
    aperture : IovaRange
        What the kernel's domain reports as usable (``domain->geometry``).
    rules : Rules
        The family's entry rules and feature flags (the family file's ``Rules`` subclass).
    va_base : int
        Lowest input address (a POWER window's bus address; 0 elsewhere).
    sign_extend : bool
        Inputs must be canonical: bits 63..va_bits-1 equal (``PT_FEAT_SIGN_EXTEND``).
    unmap_policy : UnmapPolicy
        What unmap does when the range ends inside a large leaf.
    grow_to : int, optional
        For a table whose top grows on demand (AMD ``increase_address_space``, generic_pt
        ``PT_FEAT_DYNAMIC_TOP``): the most levels it may grow to. ``PageTable`` swaps in the
        next format as it adds a root; ``max_format`` is the largest.
    description : str
        One line: what hardware uses it and where Linux builds it.
    """

    name: str
    family: str
    stage: int
    granule_lg2: int
    bits_per_level: int
    levels: int
    top_bits: int
    va_bits: int
    oas: int
    leaf_levels: frozenset
    pgsize_bitmap: int
    aperture: IovaRange
    rules: Rules = field(repr=False)
    va_base: int = 0
    sign_extend: bool = False
    unmap_policy: UnmapPolicy = UnmapPolicy.WHOLE_LEAF
    description: str = ""
    entry_size: int = 8
    grow_to: int | None = None
    _decoded: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        limit = self.max_format.leaf_bitmap if self.grow_to else self.leaf_bitmap
        bad = self.pgsize_bitmap & ~limit
        if bad:
            raise ValueError(
                f"{self.name}: pgsize_bitmap {self.pgsize_bitmap:#x} has sizes {bad:#x} the format cannot hold"
            )

    # ---- geometry ---------------------------------------------------------------------
    @property
    def max_format(self) -> Format:
        """The format this one grows into at most (itself when the top is fixed)."""
        if not self.grow_to or self.grow_to == self.levels:
            return self
        return self.grown(self.grow_to)

    def grown(self, levels: int) -> Format:
        """The same growable format with ``levels`` levels."""
        if not self.grow_to:
            raise ValueError(f"{self.name} has a fixed top")
        return self.rules.grown(self, levels)

    @property
    def ias(self) -> int:
        """Input address size in bits (io-pgtable's ``cfg->ias``); the same as ``va_bits``."""
        return self.va_bits

    @property
    def codec(self) -> Rules:
        """The entry rules (the older name of :attr:`rules`)."""
        return self.rules

    @property
    def linear(self) -> bool:
        """A flat array indexed by the whole window (POWER TCE), not a radix tree of sizes."""
        return self.rules.linear

    @property
    def fixed_leaf_size(self) -> bool:
        """Every leaf at a level has that level's item size (False for AMD NL=7 leaves)."""
        return self.rules.fixed_leaf_size

    @property
    def dynamic_top(self) -> bool:
        """The top grows on demand (AMD ``increase_address_space``, ``PT_FEAT_DYNAMIC_TOP``)."""
        return bool(self.grow_to)

    def fault_reason(self, kind: EntryKind) -> FaultReason | None:
        """The fault a walk reports when it reads an entry of ``kind`` (None for TABLE/LEAF)."""
        return self.rules.fault_reason(EntryKind(kind))

    @property
    def top_level(self) -> int:
        return self.levels - 1

    def item_lg2(self, level: int) -> int:
        """log2 of the bytes one entry at ``level`` covers (``pt_table_item_lg2sz``)."""
        return self.granule_lg2 + self.bits_per_level * level

    def shift(self, level: int) -> int:
        """Lowest IOVA bit of the index at ``level``."""
        return self.item_lg2(level)

    def bits(self, level: int) -> int:
        """Index bits at ``level``."""
        return self.top_bits if level == self.top_level else self.bits_per_level

    @property
    def index_bits(self) -> tuple[int, ...]:
        """Index bits per level, top first."""
        return tuple(self.bits(lv) for lv in range(self.top_level, -1, -1))

    @property
    def shifts(self) -> tuple[int, ...]:
        """Index shift per level, top first."""
        return tuple(self.shift(lv) for lv in range(self.top_level, -1, -1))

    def iova_bits(self, level: int) -> tuple[int, int]:
        """``(high, low)`` IOVA bits indexing ``level`` (e.g. VT-d SL-PDE → (29, 21))."""
        return self.shift(level) + self.bits(level) - 1, self.shift(level)

    def entries(self, level: int) -> int:
        return 1 << self.bits(level)

    @property
    def top_entries(self) -> int:
        return self.entries(self.top_level)

    def table_bytes(self, level: int) -> int:
        """Bytes of one table at ``level`` (the top may be smaller, or several pages)."""
        return self.entry_size << self.bits(level)

    def index(self, level: int, iova: int) -> int:
        """Table index of ``iova`` at ``level`` (``ARM_LPAE_LVL_IDX``, ``PM_LEVEL_INDEX``, ...)."""
        return ((iova - self.va_base) >> self.shift(level)) & ((1 << self.bits(level)) - 1)

    def indices(self, iova: int) -> tuple[int, ...]:
        """Index at every level, top first."""
        return tuple(self.index(lv, iova) for lv in range(self.top_level, -1, -1))

    def level_name(self, level: int) -> str:
        """The specification's name of ``level`` (0 = leaf table): VT-d ``SL-PML4E``, x86
        ``PDPE``, ARM ``L0``..``L3`` (the Arm ARM's lookup levels), AMD ``Level 1``..``Level 6``,
        RISC-V ``level 0``..``level 4``, POWER ``TCE``. Walk text, nested references, figures
        and explorers all take the name from here."""
        return self.rules.level_name(self, level)

    @property
    def level_names(self) -> tuple[str, ...]:
        """Every level's specification name, from the root down (the order a walk reads them)."""
        return tuple(self.level_name(lv) for lv in range(self.top_level, -1, -1))

    def perm_text(self, perm) -> str:
        """A permission written with only the bits this format defines: ``rw`` on a VT-d
        second-stage or POWER TCE leaf ("rw; format has no X/U bits"), ``rwxu`` on x86-64."""
        return self.rules.perm_text(Perm.parse(perm) if not isinstance(perm, Perm) else perm)

    @property
    def map_exists_errno(self) -> str:
        """The errno of a map over a present entry: EADDRINUSE (generic_pt) or EEXIST (ARM)."""
        return self.rules.map_exists_errno

    # ---- sizes ------------------------------------------------------------------------
    def leaf_lg2s(self, level: int) -> tuple[int, ...]:
        return self.rules.possible_lg2(self, level)

    @property
    def leaf_bitmap(self) -> int:
        out = 0
        for lv in range(self.levels):
            for lg2 in self.leaf_lg2s(lv):
                out |= 1 << lg2
        return out

    @property
    def leaf_sizes(self) -> tuple[int, ...]:
        """Every leaf size the format can encode, smallest first."""
        return tuple(1 << b for b in range(64) if self.leaf_bitmap >> b & 1)

    @property
    def pgsizes(self) -> tuple[int, ...]:
        """The advertised page sizes (``pgsize_bitmap``), smallest first."""
        return tuple(1 << b for b in range(64) if self.pgsize_bitmap >> b & 1)

    def level_for_size(self, size: int) -> int:
        """The level where a leaf of ``size`` bytes lives (AMD: ``PAGE_SIZE_LEVEL``)."""
        lg2 = size.bit_length() - 1
        if size & (size - 1) == 0:
            for lv in range(self.levels):
                if lg2 in self.leaf_lg2s(lv):
                    return lv
        raise ValueError(
            f"{self.name} has no {fmt_size(size)} leaf; leaf sizes: {', '.join(fmt_size(s) for s in self.leaf_sizes)}"
        )

    # ---- inputs -----------------------------------------------------------------------
    @cached_property
    def input_ranges(self) -> RangeSet:
        """Every IOVA the walk accepts: the aperture, plus the upper canonical half when
        sign-extended (generic_pt ``PT_FEAT_SIGN_EXTEND``)."""
        if self.sign_extend:
            half = 1 << (self.va_bits - 1)
            return RangeSet([IovaRange(0, half - 1), IovaRange((1 << 64) - half, U64_MAX)])
        return RangeSet(
            [
                IovaRange(
                    self.va_base, min(self.va_base + (1 << self.va_bits) - 1, self.aperture.last)
                )
            ]
        )

    def is_canonical(self, iova: int) -> bool:
        if not self.sign_extend:
            return True
        top = iova >> (self.va_bits - 1)
        return top == 0 or top == (1 << (65 - self.va_bits)) - 1

    # ---- entries ----------------------------------------------------------------------
    def classify(self, raw: int, level: int) -> EntryKind:
        return EntryKind(int(self.rules.classify(self, np.array([raw], dtype=np.uint64), level)[0]))

    def fields(self, level: int, kind: EntryKind = EntryKind.LEAF) -> FieldTable:
        """The field table for an entry of ``kind`` at ``level``."""
        return self.rules.fields_for(self, level, kind)

    def decode(self, raw: int, level: int) -> DecodedEntry:
        """Decode a raw 64-bit entry read at ``level``: kind, named fields, address, size, perm.

        Decoding is a pure function of ``(raw, level)``, so results are memoised (walks
        re-read the same table pointers constantly).
        """
        key = (int(raw), level)
        hit = self._decoded.get(key)
        if hit is None:
            if len(self._decoded) > 1 << 16:
                self._decoded.clear()
            hit = self._decoded[key] = self._decode(*key)
        return hit

    def _decode(self, raw: int, level: int) -> DecodedEntry:
        a = np.array([int(raw)], dtype=np.uint64)
        kind = EntryKind(int(self.rules.classify(self, a, level)[0]))
        table = self.fields(level, EntryKind.TABLE if kind == EntryKind.TABLE else EntryKind.LEAF)
        address = size = perm = allows = None
        if kind == EntryKind.TABLE:
            address = int(self.rules.table_addr(self, a, level)[0])
            allows = Perm(int(self.rules.table_perm(self, a, level)[0]))
        elif kind == EntryKind.LEAF:
            lg2 = self.rules.leaf_lg2(self, a, level)
            size = 1 << int(lg2[0])
            address = int(self.rules.leaf_base(self, a, level, lg2)[0])
            perm = Perm(int(self.rules.leaf_perm(self, a, level)[0]))
        return DecodedEntry(int(raw), level, kind, table.decode(raw), address, size, perm, allows,
                            self.level_name(level), self.fault_reason(kind),
                            self.perm_text(perm) if perm is not None else "")

    def encode_table(self, pa: int, level: int) -> int:
        """The entry Linux writes at ``level`` to point at a next-level table at ``pa``."""
        if level == 0 or level > self.top_level:
            raise ValueError(f"{self.name} has no table entries at level {level}")
        return self.rules.oa_encode(self, pa) | self.rules.table_bits(self, level)

    def encode_leaf(
        self, pa: int, size: int | None = None, prot="rw", level: int | None = None
    ) -> int:
        """The leaf entry Linux writes for ``pa`` of ``size`` bytes (default: the granule).

        For AMD NL=7 sizes this is the value written into each of the replicated slots.
        """
        size = size or (1 << self.granule_lg2)
        lv = self.level_for_size(size) if level is None else level
        lg2 = size.bit_length() - 1
        if lg2 not in self.leaf_lg2s(lv):
            raise ValueError(
                f"{self.name}: no {fmt_size(size)} leaf at level {lv} ({self.level_name(lv)})"
            )
        if pa & (size - 1):
            raise ValueError(
                f"output address {fmt_addr(pa)} is not aligned to the {fmt_size(size)} leaf"
            )
        perm = self.rules.normalise_perm(Perm.parse(prot))
        return self.rules.oa_encode(self, pa) | self.rules.leaf_bits(self, lv, lg2, perm)

    def replicas(self, size: int) -> int:
        lv = self.level_for_size(size)
        return self.rules.replicas(self, lv, size.bit_length() - 1)

    # ---- presentation -----------------------------------------------------------------
    def describe(self) -> str:
        lines = [
            f"{self.name}: {self.description}".rstrip(": "),
            f"  stage {self.stage}, {plural(self.levels, 'level')}, ias {self.va_bits}, oas {self.oas}, granule {fmt_size(1 << self.granule_lg2)}",
            f"  aperture {self.aperture}" + (" (sign-extended)" if self.sign_extend else ""),
            f"  pgsize_bitmap {self.pgsize_bitmap:#x}: {', '.join(fmt_size(s) for s in self.pgsizes)}",
        ]
        for lv in range(self.top_level, -1, -1):
            hi, lo = self.iova_bits(lv)
            leaves = ", ".join(fmt_size(1 << x) for x in self.leaf_lg2s(lv)) or "-"
            lines.append(
                f"  {self.level_name(lv):>9} (level {lv}): IOVA bits {hi}:{lo}, {self.entries(lv)} entries, "
                f"{fmt_size(self.table_bytes(lv))} table; leaves {leaves}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Format {self.name}: {self.levels} levels {self.index_bits}, ias {self.va_bits}, pgsizes {self.pgsize_bitmap:#x}>"

    def to_dataframe(self):
        """One row per level, top first: index bits, shift, entries, table bytes, leaf sizes."""
        import pandas as pd

        rows = []
        for lv in range(self.top_level, -1, -1):
            hi, lo = self.iova_bits(lv)
            rows.append(
                {
                    "level": lv,
                    "name": self.level_name(lv),
                    "iova_bits": f"{hi}:{lo}",
                    "index_bits": self.bits(lv),
                    "entries": self.entries(lv),
                    "table_bytes": self.table_bytes(lv),
                    "leaf_sizes": ", ".join(fmt_size(1 << x) for x in self.leaf_lg2s(lv)),
                }
            )
        return pd.DataFrame(rows)

    _repr_html_ = display.html


# ========================================================================== geometry helpers
def radix(va_bits: int, granule_lg2: int, bits_per_level: int) -> tuple[int, int]:
    """``(levels, top_bits)`` to translate ``va_bits`` (``arm_lpae_alloc_pgtable``)."""
    va = va_bits - granule_lg2
    if va <= 0:
        raise ValueError(f"input width {va_bits} is not above the granule 2^{granule_lg2}")
    levels = -(-va // bits_per_level)
    return levels, va - bits_per_level * (levels - 1)


def mask_bitmap(bitmap: int, max_lg2: int) -> int:
    return bitmap & ((1 << max_lg2) - 1) if max_lg2 < 64 else bitmap


