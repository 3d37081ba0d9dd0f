"""Page-table formats as small declarative descriptors, and the registry of named formats.

Mirrors ``io-pgtable-arm.c`` ``arm_lpae_alloc_pgtable``: a format is a handful of numbers
(granule, bits per level, input width, output width, which levels may hold leaves) from which
every derived quantity — number of levels, index bits and shift per level, top-table width
(narrower, or concatenated at ARM stage 2), leaf sizes, table bytes — is *computed*, the way
generic_pt computes ``pt_table_item_lg2sz(level) = GRANULE_LG2SZ + bits_per_level * level``.
Entry bits come from a per-family codec (``codecs.py``), as generic_pt's ``fmt/*.h``.

Levels are numbered as generic_pt numbers them: 0 is the leaf table, ``levels - 1`` the top.
``fmt.level_name(level)`` gives the specification's name (VT-d ``SL-PDE``, ARM ``L2``, ...).

>>> from iommu_lab.pagetable import formats
>>> f = formats.get("vtd-ss-4level")
>>> f.levels, f.index_bits, hex(f.pgsize_bitmap)
(4, (9, 9, 9, 9), '0x40201000')
>>> formats.arm_lpae(stage=2, granule=4096, ias=40, oas=40).top_entries   # 2 concatenated L1 tables
1024
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np

from iommu_lab.core import display
from iommu_lab.core.bits import FieldTable
from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet, fmt_addr, fmt_size
from iommu_lab.hardware.codecs import (
    AmdV1Codec,
    ArmLpaeCodec,
    Codec,
    EntryKind,
    Perm,
    RiscvCodec,
    TceCodec,
    VtdSSCodec,
    X86Codec,
    parse_perm,
)

__all__ = [
    "DecodedEntry",
    "Format",
    "UnmapPolicy",
    "amd_v1",
    "arm_lpae",
    "get",
    "names",
    "power_tce",
    "register",
    "riscv",
    "vtd_ss",
    "x86_64",
]


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
            head += f" {fmt_size(self.size)} @ {self.address:#x} {self.perm}"
        return f"{head} [{' '.join(parts)}]"


@dataclass(frozen=True, eq=False)
class Format:
    """A page-table format: geometry computed from a few numbers, entry bits from a codec.

    Parameters
    ----------
    name : str
        Registry name (``"vtd-ss-4level"``...).
    family : str
        Codec family (``"vtd-ss"``, ``"x86-64"``, ``"amd-v1"``, ``"arm-lpae"``, ``"riscv"``, ``"power-tce"``).
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
    codec : Codec
        Entry encodings.
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
    codec: Codec = field(repr=False)
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
        if self.family != "amd-v1" or not self.grow_to:
            raise ValueError(f"{self.name} has a fixed top")
        return amd_v1(levels, grow_to=self.grow_to)

    @property
    def ias(self) -> int:
        """Input address size in bits (io-pgtable's ``cfg->ias``); the same as ``va_bits``."""
        return self.va_bits

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
        return self.codec.level_name(self, level)

    # ---- sizes ------------------------------------------------------------------------
    def leaf_lg2s(self, level: int) -> tuple[int, ...]:
        return self.codec.possible_lg2(self, level)

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
        return EntryKind(int(self.codec.classify(self, np.array([raw], dtype=np.uint64), level)[0]))

    def fields(self, level: int, kind: EntryKind = EntryKind.LEAF) -> FieldTable:
        """The field table for an entry of ``kind`` at ``level``."""
        return self.codec.fields_for(self, level, kind)

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
        kind = EntryKind(int(self.codec.classify(self, a, level)[0]))
        table = self.fields(level, EntryKind.TABLE if kind == EntryKind.TABLE else EntryKind.LEAF)
        address = size = perm = allows = None
        if kind == EntryKind.TABLE:
            address = int(self.codec.table_addr(self, a, level)[0])
            allows = Perm(int(self.codec.table_perm(self, a, level)[0]))
        elif kind == EntryKind.LEAF:
            lg2 = self.codec.leaf_lg2(self, a, level)
            size = 1 << int(lg2[0])
            address = int(self.codec.leaf_base(self, a, level, lg2)[0])
            perm = Perm(int(self.codec.leaf_perm(self, a, level)[0]))
        return DecodedEntry(int(raw), level, kind, table.decode(raw), address, size, perm, allows)

    def encode_table(self, pa: int, level: int) -> int:
        """The entry Linux writes at ``level`` to point at a next-level table at ``pa``."""
        if level == 0 or level > self.top_level:
            raise ValueError(f"{self.name} has no table entries at level {level}")
        return self.codec.oa_encode(self, pa) | self.codec.table_bits(self, level)

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
        perm = self.codec.normalise_perm(parse_perm(prot))
        return self.codec.oa_encode(self, pa) | self.codec.leaf_bits(self, lv, lg2, perm)

    def replicas(self, size: int) -> int:
        lv = self.level_for_size(size)
        return self.codec.replicas(self, lv, size.bit_length() - 1)

    # ---- presentation -----------------------------------------------------------------
    def describe(self) -> str:
        lines = [
            f"{self.name}: {self.description}".rstrip(": "),
            f"  stage {self.stage}, {self.levels} level(s), ias {self.va_bits}, oas {self.oas}, granule {fmt_size(1 << self.granule_lg2)}",
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
def _radix(va_bits: int, granule_lg2: int, bits_per_level: int) -> tuple[int, int]:
    """``(levels, top_bits)`` to translate ``va_bits`` (``arm_lpae_alloc_pgtable``)."""
    va = va_bits - granule_lg2
    if va <= 0:
        raise ValueError(f"input width {va_bits} is not above the granule 2^{granule_lg2}")
    levels = -(-va // bits_per_level)
    return levels, va - bits_per_level * (levels - 1)


def _mask_bitmap(bitmap: int, max_lg2: int) -> int:
    return bitmap & ((1 << max_lg2) - 1) if max_lg2 < 64 else bitmap


# ========================================================================== families
def vtd_ss(
    levels: int = 4,
    *,
    gaw: int | None = None,
    pgsize_bitmap: int = 0x40201000,
    name: str | None = None,
) -> Format:
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
        raise ValueError(
            f"gaw {gaw} must be in ({width - 9}, {width}] for {levels} levels (width_to_agaw)"
        )
    codec = VtdSSCodec()
    return Format(
        name or f"vtd-ss-{levels}level",
        "vtd-ss",
        2,
        12,
        9,
        levels,
        9,
        width,
        52,
        frozenset(lv for lv in (0, 1, 2) if lv < levels),
        pgsize_bitmap,
        IovaRange(0, (1 << gaw) - 1),
        codec,
        description=f"Intel VT-d second stage, AGAW {levels - 2} ({width}-bit), gaw {gaw}",
    )


def x86_64(
    levels: int = 4,
    *,
    pgsize_bitmap: int = 0x40201000,
    sign_extend: bool = True,
    name: str | None = None,
) -> Format:
    """x86-64 paging: VT-d first stage and AMD v2 (generic_pt ``x86_64.h``), 4 or 5 levels.

    Canonical inputs: bits 63..VA-1 equal (``PT_FEAT_SIGN_EXTEND``); the upper half uses top
    indices >= 256. The aperture is the lower half, as VT-d first-stage domains report
    (``paging_domain_alloc``). ``sign_extend=False`` gives AMD's 47/56-bit PASID-0 layout.
    Leaves: PTE, PDE and PDPTE with PS; pgsizes 4K|2M|1G (``AMD_IOMMU_PGSIZES_V2``).
    """
    if levels not in (4, 5):
        raise ValueError(f"x86-64 paging has 4 or 5 levels, not {levels}")
    va = 48 if levels == 4 else 57
    ap_bits = va - 1 if sign_extend else va
    return Format(
        name or f"x86-64-{levels}level",
        "x86-64",
        1,
        12,
        9,
        levels,
        9,
        va,
        52,
        frozenset({0, 1, 2}),
        pgsize_bitmap,
        IovaRange(0, (1 << ap_bits) - 1),
        X86Codec(),
        sign_extend=sign_extend,
        description=f"x86-64 {levels}-level paging (VT-d first stage, AMD v2), {va}-bit VA",
    )


AMD_IOMMU_PGSIZES = ((1 << 52) - 1) & ~0xFFF ^ (1 << 39)


@cache
def amd_v1(
    mode: int = 3,
    *,
    grow_to: int | None = None,
    pgsize_bitmap: int | None = None,
    name: str | None = None,
) -> Format:
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
    va = min(12 + 9 * mode, 64)
    levels, top = _radix(va, 12, 9)
    codec = AmdV1Codec()
    probe = Format(
        f"amd-v1-{mode}level",
        "amd-v1",
        2,
        12,
        9,
        levels,
        top,
        va,
        52,
        frozenset(range(min(levels, 5))),
        0,
        IovaRange(0, (1 << va) - 1 if va < 64 else U64_MAX),
        codec,
    )
    bitmap = (
        _mask_bitmap(AMD_IOMMU_PGSIZES & probe.leaf_bitmap, va)
        if pgsize_bitmap is None
        else pgsize_bitmap
    )
    return Format(
        name or (f"amd-v1-{mode}level" + (f"-grow{grow_to}" if grow_to else "")),
        "amd-v1",
        2,
        12,
        9,
        levels,
        top,
        va,
        52,
        frozenset(range(min(levels, 5))),
        bitmap,
        probe.aperture,
        codec,
        grow_to=grow_to,
        description=f"AMD IOMMU v1 host page table, mode {mode} ({va}-bit)"
        + (f", grows on demand up to mode {grow_to}" if grow_to else ""),
    )


def _concat_mandatory(granule_lg2: int, start_level: int, ias: int, oas: int) -> bool:
    """``arm_lpae_concat_mandatory`` (Arm DDI0487 R_DXBSH, R_SRKBC)."""
    if granule_lg2 == 14 and start_level == 0 and (oas == 48 or ias == 48):
        return True
    if granule_lg2 == 12 and start_level == 0 and oas in (40, 42):
        return True
    return granule_lg2 == 14 and start_level == 1 and oas == 40


def arm_lpae(
    stage: int = 1,
    granule: int = 4096,
    ias: int = 48,
    oas: int | None = None,
    *,
    concat: str = "mandatory",
    unmap_policy: UnmapPolicy = UnmapPolicy.REFUSE,
    name: str | None = None,
) -> Format:
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
    max_bits = 52 if g == 16 else 48
    for label, v in (("ias", ias), ("oas", oas)):
        if not 32 <= v <= max_bits:
            raise ValueError(
                f"{label} {v} is outside the 32..{max_bits} bits io-pgtable-arm accepts for a {granule // 1024}K granule"
            )
    bpl = g - 3
    levels, top = _radix(ias, g, bpl)
    if levels > 4:
        raise ValueError(f"ias {ias} needs {levels} levels; LPAE has at most 4")
    start = 4 - levels
    if stage == 2 and concat != "never":
        if concat == "mandatory":
            do = _concat_mandatory(g, start, ias, oas)
        elif concat == "opportunistic":
            do = start == 0 and (1 << top) <= 16
        else:
            raise ValueError(
                f"concat must be 'mandatory', 'opportunistic' or 'never', not {concat!r}"
            )
        if do:
            if (1 << top) > 16:
                raise ValueError(
                    f"stage-2 ias {ias}/oas {oas} would need {1 << top} concatenated tables; the limit is 16 (ARM_LPAE_S2_MAX_CONCAT_PAGES)"
                )
            top += bpl
            levels -= 1
    # Blocks (generic numbering): 4K L1/L2 = levels 2/1; 16K L2 = 1; 64K L2 = 1 (+ L1 = 2 with 52-bit OA).
    blocks = {12: {1, 2}, 14: {1}, 16: {1, 2} if oas > 48 else {1}}[g]
    leaf_levels = frozenset({0} | {lv for lv in blocks if lv < levels})
    codec = ArmLpaeCodec(stage, g, oas)
    probe_bitmap = 0
    for lv in leaf_levels:
        probe_bitmap |= 1 << (g + bpl * lv)
    return Format(
        name or f"arm-lpae-s{stage}-{granule // 1024}k-{ias}bit",
        "arm-lpae",
        stage,
        g,
        bpl,
        levels,
        top,
        ias,
        oas,
        leaf_levels,
        probe_bitmap,
        IovaRange(0, (1 << ias) - 1),
        codec,
        unmap_policy=unmap_policy,
        description=f"ARM LPAE stage {stage}, {granule // 1024}K granule, ias {ias}, oas {oas}, start level {4 - levels}"
        + (" (concatenated top)" if top > bpl else ""),
    )


def riscv(levels: int = 3, *, name: str | None = None) -> Format:
    """RISC-V Sv39/Sv48/Sv57 (``riscv_iommu_alloc_paging_domain``; generic_pt ``riscv.h``).

    Leaves at any level; the driver advertises 4K|2M|1G plus 512G for Sv48/57. generic_pt
    sign-extends; the legacy driver limits the aperture to the lower half
    (``DMA_BIT_MASK(va_bits - 1)``), which is the ``aperture`` here.
    """
    if levels not in (3, 4, 5):
        raise ValueError(f"RISC-V IOMMU paging is Sv39/48/57 (3..5 levels), not {levels}")
    va = 12 + 9 * levels
    bitmap = 0x40201000 if levels == 3 else 0x8040201000
    return Format(
        name or f"riscv-sv{va}",
        "riscv",
        1,
        12,
        9,
        levels,
        9,
        va,
        56,
        frozenset(range(levels)),
        bitmap,
        IovaRange(0, (1 << (va - 1)) - 1),
        RiscvCodec(),
        sign_extend=True,
        description=f"RISC-V Sv{va} ({levels} levels)",
    )


def power_tce(
    page_shift: int = 12, *, window_bits: int = 31, base: int = 0, name: str | None = None
) -> Format:
    """A POWER TCE window: one flat table of 8-byte TCEs, one page size (``it_page_shift``).

    ``index = (dma >> it_page_shift) - it_offset`` (``iommu_alloc``): one level, whose index is
    the whole window. Defaults: a 2 GiB 32-bit window at bus address 0 (powernv/pseries
    default window). ``power-tce-64k`` is a 64 GiB DDW at ``1 << 59`` (powernv TVE #1).
    """
    if page_shift not in (12, 16, 21, 24, 25, 26, 27, 28, 34):
        raise ValueError(f"TCE page shift {page_shift} is not one ibm,query-pe-dma-window reports")
    if not page_shift < window_bits <= 59:
        raise ValueError(
            f"window of 2^{window_bits} bytes must be larger than one 2^{page_shift} page"
        )
    if base % (1 << window_bits):
        raise ValueError(f"window base {fmt_addr(base)} must be aligned to the window size")
    nbits = window_bits - page_shift
    return Format(
        name or f"power-tce-{(1 << page_shift) // 1024}k",
        "power-tce",
        1,
        page_shift,
        nbits,
        1,
        nbits,
        window_bits,
        52,
        frozenset({0}),
        1 << page_shift,
        IovaRange(base, base + (1 << window_bits) - 1),
        TceCodec(),
        va_base=base,
        description=f"POWER TCE window [{fmt_addr(base)}, {fmt_addr(base + (1 << window_bits) - 1)}], "
        f"{fmt_size(1 << page_shift)} pages, flat {fmt_size(8 << nbits)} table",
    )


# ========================================================================== registry
_FACTORIES: dict[str, Callable[[], Format]] = {}


def register(name: str, factory: Callable[[], Format]) -> None:
    """Add a named format (the factory is called once, on first ``get``)."""
    _FACTORIES[name] = factory
    _cached.cache_clear()


@cache
def _cached(name: str) -> Format:
    return _FACTORIES[name]()


def names() -> list[str]:
    """Registered format names."""
    return list(_FACTORIES)


def get(name) -> Format:
    """The registered format ``name`` (a ``Format`` passes through).

    Names of the ``arm-lpae-s{1,2}-{4,16,64}k-{ias}bit`` pattern that are not registered are
    built on the fly with ``arm_lpae`` (oas = ias).
    """
    if isinstance(name, Format):
        return name
    if not isinstance(name, str):
        raise TypeError(f"format name must be a string, got {type(name).__name__} {name!r}")
    if name in _FACTORIES:
        return _cached(name)
    import re

    m = re.fullmatch(r"arm-lpae-s([12])-(4|16|64)k-(\d+)bit", name)
    if m:
        try:
            return arm_lpae(int(m[1]), int(m[2]) * 1024, int(m[3]))
        except ValueError as e:
            raise IommuError("EINVAL", f"format {name!r}: {e}") from None
    raise IommuError(
        "EINVAL", f"unknown page-table format {name!r}; known formats: {', '.join(names())}"
    )


for _lv in (3, 4, 5):
    register(f"vtd-ss-{_lv}level", lambda lv=_lv: vtd_ss(lv))
for _lv in (4, 5):
    register(f"x86-64-{_lv}level", lambda lv=_lv: x86_64(lv))
for _m in range(1, 7):
    register(f"amd-v1-{_m}level", lambda m=_m: amd_v1(m))
for _st in (1, 2):
    for _gk, _ias_list in (
        (4, (32, 36, 39, 40, 42, 44, 48)),
        (16, (36, 40, 47, 48)),
        (64, (42, 48, 52)),
    ):
        for _ias in _ias_list:
            register(
                f"arm-lpae-s{_st}-{_gk}k-{_ias}bit",
                lambda st=_st, gk=_gk, ias=_ias: arm_lpae(st, gk * 1024, ias),
            )
register("amd-v1-dynamic", lambda: amd_v1(3, grow_to=6))
for _lv in (3, 4, 5):
    register(f"riscv-sv{12 + 9 * _lv}", lambda lv=_lv: riscv(lv))
register("power-tce-4k", lambda: power_tce(12, window_bits=31, base=0, name="power-tce-4k"))
register("power-tce-64k", lambda: power_tce(16, window_bits=36, base=1 << 59, name="power-tce-64k"))
