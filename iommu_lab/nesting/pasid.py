"""PASID tables: VT-d scalable-mode PASID directory/table, SMMUv3 CD tables, AMD GCR3 tables.

A PASID (PCIe Process Address Space ID; SMMUv3 calls it a SubstreamID, SSID) selects one of many
address spaces behind one requester ID. Each IOMMU family keeps a per-device table indexed by the
PASID whose entry points at the stage-1 page table (and, on VT-d, says which stages to walk).
The three layouts modelled here are written into physical memory as the bit patterns the
hardware reads, then walked back by reading memory, never by consulting a Python dict:

* **VT-d scalable mode** (drivers/iommu/intel/pasid.[ch]): a 20-bit PASID (``MAX_NR_PASID_BITS``)
  splits into a 14-bit directory index (``pasid >> PASID_PDE_SHIFT``, 6) and a 6-bit table index
  (``pasid & PASID_PTE_MASK``, 0x3f). Directory entries are 8 bytes (``struct pasid_dir_entry``),
  PASID entries 64 bytes (``struct pasid_entry { u64 val[8]; }``), so one leaf table is
  64 x 64 B = 4 KiB. The PGTT field (bits 8:6) picks first-stage only (1), second-stage only (2),
  nested (3) or pass-through (4). The table is **host-owned and at host-physical addresses**; in
  nesting QEMU shadows guest PASID entries into it (page-table binding).
* **SMMUv3 context descriptors** (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h): the STE's
  ``S1ContextPtr`` points at a linear array of 64-byte CDs (``S1FMT_LINEAR``) or at a level-1
  array of 8-byte descriptors each pointing at 1024 CDs (``S1FMT_64K_L2``: "SSID[S1CDmax-1:10]
  indexes 1st-level table, SSID[9:0] indexes 2nd-level"). In nesting the CD table is
  **guest-owned and at IPAs** (``struct iommu_hwpt_arm_smmuv3`` vSTE), so every CD-table fetch is
  itself translated by stage 2 (PASID-table binding).
* **AMD GCR3 table** (drivers/iommu/amd/iommu.c ``get_gcr3_levels``, ``__get_gcr3_pte``): every
  level is one 4 KiB page of 512 x 8-byte entries; index at level L is ``(pasid >> 9L) & 0x1ff``;
  ``GLX`` = levels - 1. The DTE holds the GCR3 root (split over three fields); in nesting the root
  and every level pointer are GPAs (``set_dte_nested`` in drivers/iommu/amd/nested.c).

Page-table binding vs PASID-table binding (the 2021 ``/dev/ioasid`` RFC's terms, see
``Binding``) differ in who owns the table and in which address space it lives, so they differ
in how many memory references a lookup costs: :meth:`PasidStructure.lookup` takes an optional
``translate`` callback that performs (and records) the stage-2 walk of every structure address.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import fmt_addr

__all__ = [
    "AMD_DTE",
    "AMD_GCR3_ENTRY",
    "SMMU_CD",
    "SMMU_CD_L1_DESC",
    "SMMU_STE",
    "VTD_PASID_DIR_ENTRY",
    "VTD_PASID_ENTRY",
    "AmdGcr3Table",
    "Binding",
    "EntryLayout",
    "Field",
    "PasidFault",
    "PasidLookup",
    "PasidRef",
    "PasidStructure",
    "Pgtt",
    "SmmuCdTable",
    "SteConfig",
    "StructureFetchFault",
    "VtdPasidTable",
    "amd_gcr3_index",
    "amd_gcr3_levels",
    "smmu_cd_index",
    "vtd_pasid_index",
]

# ----------------------------------------------------------------------------------------------
# Memory access shim: the page-table layer owns the memory model; everything here goes through
# these three functions so the PASID structures use exactly the same storage as page tables.
# ----------------------------------------------------------------------------------------------


def mem_read64(memory: Any, addr: int) -> int:
    """Read one little-endian 64-bit word at ``addr`` from a page-table-layer memory."""
    return int(memory.read_u64(addr))


def mem_write64(memory: Any, addr: int, value: int) -> None:
    """Write one 64-bit word at ``addr`` into a page-table-layer memory."""
    memory.write_u64(addr, value)


def mem_alloc(memory: Any, size: int, align: int | None = None) -> int:
    """Allocate zeroed, naturally aligned bytes and return the block's physical address.

    ``PhysicalMemory.alloc`` hands out power-of-two runs of 4 KiB frames aligned to their size,
    as ``iommu_alloc_pages_node`` does, so asking for ``max(size, align)`` gives both.
    """
    return int(memory.alloc(max(size, align or size)))


# ----------------------------------------------------------------------------------------------
# Bit-field tables (chipsec style: name, bit range, meaning), spanning multi-word entries.
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field of a hardware structure: bits ``[lo, hi]`` counted across the whole entry.

    Bit numbers follow the specifications (VT-d "FSPTPTR bits 140-191" is word 2, bits 12..63),
    so the tables below read like the spec and like the kernel's accessor comments.
    """

    name: str
    lo: int
    hi: int
    doc: str = ""
    #: An address field keeps its bits in place (``value & mask``), as ``pasid_set_flptr`` does.
    address: bool = False

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lo

    def get(self, value: int) -> int:
        """Extract the field from the entry's integer value (all words, word 0 lowest)."""
        raw = (value & self.mask) >> self.lo
        return raw << (self.lo % 64) if self.address else raw

    def put(self, value: int, field_value: int) -> int:
        """Return ``value`` with this field replaced by ``field_value``."""
        if self.address:
            shift = self.lo % 64
            if field_value & ((1 << shift) - 1):
                raise IommuError(
                    "EINVAL",
                    f"{self.name} = {fmt_addr(field_value)} is not {1 << shift:#x}-aligned; the "
                    f"field holds address bits [{shift + self.width - 1}:{shift}]",
                )
            field_value >>= shift
        if field_value < 0 or field_value >> self.width:
            raise IommuError(
                "EINVAL",
                f"{self.name} = {field_value:#x} does not fit its {self.width}-bit field "
                f"(bits {self.hi}:{self.lo})",
            )
        return (value & ~self.mask) | (field_value << self.lo)


@dataclass(frozen=True)
class EntryLayout:
    """A hardware structure entry: its size and field table.

    ``reserved_mask`` is every bit no field names: the bits that must be zero.
    """

    name: str
    size: int
    fields: tuple[Field, ...]
    source: str = ""

    @property
    def words(self) -> int:
        return self.size // 8

    @property
    def reserved_mask(self) -> int:
        used = 0
        for f in self.fields:
            used |= f.mask
        return ((1 << (8 * self.size)) - 1) & ~used

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(
            f"{self.name} has no field {name!r}; fields: {', '.join(f.name for f in self.fields)}"
        )

    def encode(self, **values: int) -> int:
        value = 0
        for name, v in values.items():
            value = self.field(name).put(value, v)
        return value

    def decode(self, value: int) -> dict[str, int]:
        return {f.name: f.get(value) for f in self.fields}

    def read(self, memory: Any, addr: int) -> int:
        """Read the whole entry (``words`` 64-bit loads) as one integer, word 0 lowest."""
        value = 0
        for i in range(self.words):
            value |= mem_read64(memory, addr + 8 * i) << (64 * i)
        return value

    def write(self, memory: Any, addr: int, value: int) -> None:
        for i in range(self.words):
            mem_write64(memory, addr + 8 * i, (value >> (64 * i)) & ((1 << 64) - 1))

    def describe(self, value: int) -> list[tuple[str, str, int, str]]:
        """(field, bits, value, meaning) rows for a decoded entry, reserved bits last."""
        rows = [
            (f.name, f"{f.hi}:{f.lo}" if f.width > 1 else f"{f.lo}", f.get(value), f.doc)
            for f in self.fields
        ]
        rsv = value & self.reserved_mask
        if rsv:
            rows.append(
                ("RESERVED", "must be 0", rsv, "non-zero reserved bits: the hardware faults")
            )
        return rows


def _f(name: str, hi: int, lo: int | None = None, doc: str = "", address: bool = False) -> Field:
    return Field(name, hi if lo is None else lo, hi, doc, address)


#: VT-d PASID directory entry, 8 bytes (``struct pasid_dir_entry``; ``PASID_PTE_PRESENT``,
#: ``PDE_PFN_MASK``).
VTD_PASID_DIR_ENTRY = EntryLayout(
    "VT-d PASID directory entry",
    8,
    (
        _f("P", 0, doc="present (PASID_PTE_PRESENT)"),
        _f("FPD", 1, doc="fault processing disable"),
        _f("PTP", 63, 12, "PASID table pointer, host-physical (PDE_PFN_MASK)", address=True),
    ),
    "drivers/iommu/intel/pasid.h struct pasid_dir_entry",
)

#: VT-d scalable-mode PASID table entry, 64 bytes (``struct pasid_entry { u64 val[8]; }``);
#: field positions from the ``pasid_set_*`` helpers in pasid.h. Fields Linux never sets
#: (PAT, EMT, PCD/PWT...) are not named, so the model treats those bits as reserved.
VTD_PASID_ENTRY = EntryLayout(
    "VT-d scalable-mode PASID entry",
    64,
    (
        _f("P", 0, doc="present (pasid_set_present)"),
        _f("FPD", 1, doc="fault processing disable"),
        _f("AW", 4, 2, "second-stage address width (agaw)"),
        _f("PGTT", 8, 6, "PASID granular translation type: 1 FS, 2 SS, 3 nested, 4 PT"),
        _f("SSADE", 9, doc="second-stage A/D enable (dirty tracking)"),
        _f("SSPTPTR", 63, 12, "second-stage table pointer, HPA (pasid_set_slptr)", address=True),
        _f("DID", 79, 64, "domain ID (pasid_set_domain_id)"),
        _f("PWSNP", 87, doc="page-walk snoop"),
        _f("PGSNP", 88, doc="page snoop"),
        _f("SRE", 128, doc="supervisor request enable"),
        _f("FLPM", 131, 130, "first-stage paging mode: 0 = 4-level, 1 = 5-level"),
        _f("WPE", 132, doc="write protect enable"),
        _f("EAFE", 135, doc="extended access flag enable"),
        _f(
            "FSPTPTR",
            191,
            140,
            "first-stage table pointer (a GPA when nested; pasid_set_flptr)",
            address=True,
        ),
    ),
    "drivers/iommu/intel/pasid.h pasid_set_* helpers",
)

#: SMMUv3 stream table entry, 64 bytes (``STRTAB_STE_*`` in arm-smmu-v3.h); only the fields the
#: nested configuration uses.
SMMU_STE = EntryLayout(
    "SMMUv3 STE",
    64,
    (
        _f("V", 0, doc="valid"),
        _f("Config", 3, 1, "0 abort, 4 bypass, 5 S1, 6 S2, 7 nested (S1+S2)"),
        _f("S1Fmt", 5, 4, "0 linear CD table, 2 two-level with 64K leaves"),
        _f("S1ContextPtr", 51, 6, "CD table base (an IPA when nested)", address=True),
        _f("S1CDMax", 63, 59, "log2 of the number of CDs"),
        _f("S1DSS", 65, 64, "default substream: 0 terminate, 1 bypass, 2 SSID0"),
        _f("S2VMID", 143, 128, "VMID"),
        _f("S2T0SZ", 165, 160, "VTCR.T0SZ: 64 - IPA size"),
        _f("S2SL0", 167, 166, "VTCR.SL0: start level"),
        _f("S2TG", 175, 174, "VTCR.TG: granule"),
        _f("S2PS", 178, 176, "VTCR.PS: output size"),
        _f("S2AA64", 179, doc="AArch64 stage-2 tables"),
        _f("S2TTB", 243, 196, "stage-2 table base, PA", address=True),
    ),
    "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h STRTAB_STE_0_*/1_*/2_*/3_*",
)

#: SMMUv3 context descriptor, 64 bytes (``CTXDESC_CD_*``).
SMMU_CD = EntryLayout(
    "SMMUv3 context descriptor",
    64,
    (
        _f("T0SZ", 5, 0, "64 - input size"),
        _f("TG0", 7, 6, "granule: 0 4K, 1 64K, 2 16K"),
        _f("IRGN0", 9, 8),
        _f("ORGN0", 11, 10),
        _f("SH0", 13, 12),
        _f("EPD0", 14, doc="TTB0 walks disabled"),
        _f("ENDI", 15, doc="big-endian tables"),
        _f("EPD1", 30, doc="TTB1 walks disabled"),
        _f("V", 31, doc="valid"),
        _f("IPS", 34, 32, "intermediate (output) size"),
        _f("TBI0", 38),
        _f("AA64", 41, doc="AArch64 tables"),
        _f("HD", 42),
        _f("HA", 43),
        _f("S", 44),
        _f("R", 45),
        _f("A", 46),
        _f("ASET", 47),
        _f("ASID", 63, 48, "address space ID"),
        _f("TTB0", 115, 68, "stage-1 table base (an IPA when nested)", address=True),
    ),
    "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h CTXDESC_CD_0_*/1_*",
)

#: SMMUv3 level-1 CD descriptor, 8 bytes (``CTXDESC_L1_DESC_V``, ``CTXDESC_L1_DESC_L2PTR_MASK``).
SMMU_CD_L1_DESC = EntryLayout(
    "SMMUv3 L1 CD descriptor",
    8,
    (
        _f("V", 0, doc="valid"),
        _f("L2Ptr", 51, 12, "level-2 CD table (64 KiB, 1024 CDs)", address=True),
    ),
    "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h CTXDESC_L1_DESC_*",
)

#: AMD device table entry, the first 256 bits (``DTE_*`` in amd_iommu_types.h). The GCR3 table
#: root is split over three fields, as ``DTE_GCR3_14_12``/``30_15``/``51_31`` say.
AMD_DTE = EntryLayout(
    "AMD device table entry",
    32,
    (
        _f("V", 0, doc="valid"),
        _f("TV", 1, doc="translation valid"),
        _f("Mode", 11, 9, "host (v1) paging mode = levels"),
        _f("PTRoot", 51, 12, "host v1 page-table root, HPA", address=True),
        _f("GIOV", 54, doc="guest I/O protection valid"),
        _f("GV", 55, doc="guest translation valid (required for nesting)"),
        _f("GLX", 57, 56, "GCR3 table levels - 1"),
        _f("GCR3_14_12", 60, 58, "GCR3 root bits 14:12"),
        _f("IR", 61),
        _f("IW", 62),
        _f("DomainID", 79, 64),
        _f("GCR3_30_15", 95, 80, "GCR3 root bits 30:15"),
        _f("GCR3_51_31", 127, 107, "GCR3 root bits 51:31"),
        _f("GPTLevel", 183, 182, "guest paging: 0 = 4-level, 1 = 5-level"),
    ),
    "drivers/iommu/amd/amd_iommu_types.h DTE_*; drivers/iommu/amd/nested.c set_dte_nested",
)

#: AMD GCR3 table entry, 8 bytes: every level, including the leaf that holds the guest CR3.
AMD_GCR3_ENTRY = EntryLayout(
    "AMD GCR3 table entry",
    8,
    (
        _f("V", 0, doc="valid (GCR3_VALID)"),
        _f(
            "Addr", 51, 12, "next GCR3 level, or at level 0 the guest page-table root", address=True
        ),
    ),
    "drivers/iommu/amd/iommu.c __get_gcr3_pte, update_gcr3",
)


class Pgtt(enum.IntEnum):
    """VT-d PASID-entry PGTT values (``PASID_ENTRY_PGTT_*`` in pasid.h)."""

    FIRST_STAGE = 1
    SECOND_STAGE = 2
    NESTED = 3
    PASS_THROUGH = 4


class SteConfig(enum.IntEnum):
    """SMMUv3 ``STRTAB_STE_0_CFG`` values; NESTED (7) = S1 then S2."""

    ABORT = 0
    BYPASS = 4
    S1_TRANS = 5
    S2_TRANS = 6
    NESTED = 7


class Binding(enum.Enum):
    """How a guest's stage 1 reaches the hardware (the ``/dev/ioasid`` RFC's two protocols).

    ``PGTABLE``: the host owns the PASID table (host-physical) and writes one entry per bound
    stage-1 root (VT-d; QEMU shadows guest PASID entries). ``PASID_TABLE``: the host installs one
    pointer to the guest's whole table (SMMUv3 vSTE S1ContextPtr, AMD guest DTE GCR3 root), which
    then lives in guest-physical memory and is translated by stage 2 on every fetch.
    """

    PGTABLE = "pgtable"
    PASID_TABLE = "pasid-table"


# ----------------------------------------------------------------------------------------------
# Index arithmetic
# ----------------------------------------------------------------------------------------------

VTD_PASID_BITS = 20  # MAX_NR_PASID_BITS
VTD_PDE_SHIFT = 6  # PASID_PDE_SHIFT
SMMU_CD_L2_BITS = 10  # CTXDESC_L2_ENTRIES = 1024
SMMU_LINEAR_CDMAX = 10  # CTXDESC_LINEAR_CDMAX = ilog2(64K / 64)
AMD_GCR3_BITS_PER_LEVEL = 9


def _check_pasid(pasid: int, bits: int, what: str = "PASID") -> int:
    if isinstance(pasid, bool) or not isinstance(pasid, int):
        raise TypeError(f"{what} must be an int, got {type(pasid).__name__}")
    if pasid < 0 or pasid >> bits:
        raise IommuError(
            "EINVAL",
            f"{what} {pasid:#x} is outside the {bits}-bit space [0x0, {(1 << bits) - 1:#x}]",
        )
    return pasid


def vtd_pasid_index(pasid: int, bits: int = VTD_PASID_BITS) -> tuple[int, int]:
    """(directory index, table index) of a VT-d PASID, as ``intel_pasid_get_entry`` computes.

    ``dir_index = pasid >> PASID_PDE_SHIFT`` (6) and ``index = pasid & PASID_PTE_MASK`` (0x3f);
    PASID 0x12345 -> (0x48d, 5).
    """
    _check_pasid(pasid, bits)
    return pasid >> VTD_PDE_SHIFT, pasid & ((1 << VTD_PDE_SHIFT) - 1)


def smmu_cd_index(ssid: int, s1cdmax: int, two_level: bool) -> tuple[int, ...]:
    """CD-table indices of an SSID: ``(ssid,)`` linear, or ``(ssid >> 10, ssid & 0x3ff)``.

    Mirrors ``arm_smmu_cdtab_l1_idx``/``arm_smmu_cdtab_l2_idx`` (SSID[S1CDMax-1:10] and
    SSID[9:0]); SSID 0x12345 with S1CDMax 20 -> (0x48, 0x345).
    """
    _check_pasid(ssid, s1cdmax, "SSID")
    if not two_level:
        return (ssid,)
    return ssid >> SMMU_CD_L2_BITS, ssid & ((1 << SMMU_CD_L2_BITS) - 1)


def amd_gcr3_levels(pasid_bits: int) -> int:
    """Number of GCR3 levels for ``pasid_bits``: ``ceil(bits / 9)`` (GLX = levels - 1).

    Mirrors ``get_gcr3_levels``: GLX 0 covers <= 512 PASIDs, GLX 1 <= 2^18, GLX 2 covers 2^20.
    """
    if pasid_bits < 1 or pasid_bits > 20:
        raise IommuError("EINVAL", f"AMD PASID width {pasid_bits} is outside 1..20 bits")
    return -(-pasid_bits // AMD_GCR3_BITS_PER_LEVEL)


def amd_gcr3_index(pasid: int, levels: int) -> tuple[int, ...]:
    """GCR3 indices from the top level down: ``(pasid >> 9L) & 0x1ff`` for L = levels-1 .. 0.

    PASID 0x12345 with 3 levels -> (0x0, 0x91, 0x145).
    """
    _check_pasid(pasid, AMD_GCR3_BITS_PER_LEVEL * levels)
    return tuple(
        (pasid >> (AMD_GCR3_BITS_PER_LEVEL * lvl)) & 0x1FF for lvl in range(levels - 1, -1, -1)
    )


# ----------------------------------------------------------------------------------------------
# Lookup results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasidRef:
    """One memory reference made while resolving a PASID, or a stage-2 reference it needed.

    ``address`` is the structure address as the pointer holds it (a GPA/IPA for a guest-owned
    table); ``host_address`` is where the bytes were actually read.
    """

    structure: str
    level: int
    index: int
    address: int
    host_address: int
    raw: int
    decoded: Mapping[str, int]
    layout: EntryLayout | None = None
    #: "pasid" for a PASID-structure read; "stage2" for a stage-2 reference made to reach it.
    kind: str = "pasid"


@dataclass(frozen=True)
class PasidFault:
    """A fault while resolving the PASID: which structure, why, and the hardware's name for it."""

    structure: str
    reason: str
    address: int
    code: str = ""
    owner: str = "host"

    def __str__(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        return f"{self.owner} fault in {self.structure} at {fmt_addr(self.address)}: {self.reason}{code}"


@dataclass(frozen=True)
class PasidLookup:
    """The result of resolving one PASID: references made, the entry found, what it selects.

    ``stage1_root`` is the stage-1 table pointer the entry holds (a GPA in nesting);
    ``mode`` is the VT-d PGTT / SMMU Config / AMD "GV" meaning as a word.
    """

    family: str
    pasid: int
    binding: Binding
    refs: tuple[PasidRef, ...]
    stage1_root: int | None = None
    stage2_root: int | None = None
    mode: str = ""
    fault: Any = None
    entry: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.fault is None

    @property
    def n_refs(self) -> int:
        return len(self.refs)

    @property
    def n_pasid_refs(self) -> int:
        return sum(1 for r in self.refs if r.kind == "pasid")

    def _rows(self) -> list[tuple]:
        return [
            (
                i,
                r.kind,
                r.structure,
                r.level,
                r.index,
                fmt_addr(r.address),
                fmt_addr(r.host_address),
                f"{r.raw:#x}",
            )
            for i, r in enumerate(self.refs)
        ]

    def __str__(self) -> str:
        head = f"{self.family} PASID {self.pasid:#x} ({self.binding.value} binding): {self.n_refs} reference(s)"
        lines = [head]
        for row in self._rows():
            lines.append("  #{:<2} {:<6} {:<28} L{} idx {:#x} at {} (host {}) = {}".format(*row))
        if self.fault:
            lines.append(f"  FAULT: {self.fault}")
        else:
            lines.append(f"  -> {self.mode}; stage-1 root {fmt_addr(self.stage1_root or 0)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = (
            str(self.fault)
            if self.fault
            else f"{self.mode}, stage-1 root {fmt_addr(self.stage1_root or 0)}"
        )
        return f"<PasidLookup {self.family} pasid={self.pasid:#x} refs={self.n_refs}: {state}>"

    def to_dataframe(self):
        from iommu_lab.core.frames import addr_frame

        return addr_frame(
            {
                "kind": [r.kind for r in self.refs],
                "structure": [r.structure for r in self.refs],
                "level": [r.level for r in self.refs],
                "index": [r.index for r in self.refs],
                "address": [r.address for r in self.refs],
                "host_address": [r.host_address for r in self.refs],
                "raw": [r.raw & ((1 << 64) - 1) for r in self.refs],
            },
            hex_columns=["address", "host_address", "raw"],
        )

    _repr_html_ = display.html


#: ``translate(gpa) -> (hpa, stage2_refs)``; raises to report a stage-2 fault.
Translate = Callable[[int], "tuple[int, Sequence[PasidRef]]"]


class _Abort(Exception):
    def __init__(self, fault: Any) -> None:
        super().__init__(str(fault))
        self.fault = fault


class StructureFetchFault(Exception):
    """Raised by a ``translate`` callback when a structure address does not translate.

    ``fault`` (any object with a readable ``str``) becomes the lookup's fault; ``refs`` are the
    stage-2 references made before the fault, kept in the lookup's reference list.
    """

    def __init__(self, fault: Any, refs: Sequence[PasidRef] = ()) -> None:
        super().__init__(str(fault))
        self.fault = fault
        self.refs = tuple(refs)


# ----------------------------------------------------------------------------------------------
# Structures
# ----------------------------------------------------------------------------------------------


class PasidStructure:
    """Common machinery: where the table lives and how a lookup reads it.

    Parameters
    ----------
    memory
        The page-table-layer memory the structure is written into. For page-table binding this
        is host memory; for PASID-table binding it is the guest's physical memory (a view that
        writes through stage 2), and the addresses the structure holds are GPAs/IPAs.
    binding : Binding
    """

    family = ""

    def __init__(self, memory: Any, binding: Binding) -> None:
        self.memory = memory
        self.binding = Binding(binding)

    # A read of one structure entry: translate its address through stage 2 when the table is
    # guest-owned (each such read costs an m-level stage-2 walk first), then load the bytes from
    # the host memory the translation lands in.
    def _fetch(
        self,
        refs: list[PasidRef],
        layout: EntryLayout,
        structure: str,
        level: int,
        index: int,
        addr: int,
        translate: Translate | None,
        host_memory: Any,
    ) -> int:
        hpa, mem = addr, self.memory
        if translate is not None:
            if host_memory is None:
                raise ValueError("a translated (guest-owned) lookup needs host_memory to read from")
            try:
                hpa, s2refs = translate(addr)
            except StructureFetchFault as e:
                refs.extend(e.refs)
                raise _Abort(e.fault) from None
            refs.extend(s2refs)
            mem = host_memory
        raw = layout.read(mem, hpa)
        refs.append(PasidRef(structure, level, index, addr, hpa, raw, layout.decode(raw), layout))
        return raw

    def lookup(
        self, pasid: int, *, translate: Translate | None = None, host_memory: Any = None
    ) -> PasidLookup:
        raise NotImplementedError


class VtdPasidTable(PasidStructure):
    """VT-d scalable-mode PASID directory + lazily allocated 4 KiB PASID tables.

    Mirrors ``intel_pasid_alloc_table`` (directory of ``max_pasid >> PASID_PDE_SHIFT`` 8-byte
    entries, 128 KiB for 20 bits) and ``intel_pasid_get_entry`` (allocate the leaf table on
    first use, write ``phys | PASID_PTE_PRESENT`` into the directory entry). Entries are set up
    as ``intel_pasid_setup_first_level`` / ``_second_level`` / ``_nested`` / ``_pass_through``
    write them. The table is host-owned (page-table binding): in nesting, QEMU traps the guest's
    PASID-cache invalidations and writes PGTT=NESTED entries here.
    """

    family = "VT-d"

    def __init__(self, memory: Any, pasid_bits: int = VTD_PASID_BITS) -> None:
        super().__init__(memory, Binding.PGTABLE)
        if not 1 <= pasid_bits <= VTD_PASID_BITS:
            raise IommuError(
                "EINVAL", f"VT-d PASID width {pasid_bits} is outside 1..20 bits (MAX_NR_PASID_BITS)"
            )
        self.pasid_bits = pasid_bits
        n_dir = max(1, (1 << pasid_bits) >> VTD_PDE_SHIFT)
        self.dir_entries = n_dir
        self.directory = mem_alloc(memory, max(n_dir * 8, 0x1000), 0x1000)

    def entry_address(self, pasid: int, *, allocate: bool = False) -> int | None:
        """Host address of the 64-byte PASID entry (allocating its table if asked)."""
        d, i = vtd_pasid_index(pasid, self.pasid_bits)
        pde_addr = self.directory + 8 * d
        pde = VTD_PASID_DIR_ENTRY.read(self.memory, pde_addr)
        if not pde & 1:
            if not allocate:
                return None
            table = mem_alloc(self.memory, 0x1000, 0x1000)
            VTD_PASID_DIR_ENTRY.write(
                self.memory, pde_addr, VTD_PASID_DIR_ENTRY.encode(P=1, PTP=table)
            )
            pde = VTD_PASID_DIR_ENTRY.read(self.memory, pde_addr)
        return VTD_PASID_DIR_ENTRY.field("PTP").get(pde) + 64 * i

    def set_entry(
        self,
        pasid: int,
        pgtt: Pgtt,
        *,
        fsptptr: int = 0,
        ssptptr: int = 0,
        did: int = 1,
        aw: int = 2,
        flpm: int = 0,
        ssade: bool = False,
    ) -> int:
        """Write a present PASID entry; returns its host address.

        ``fsptptr`` is the first-stage root (a GPA for PGTT=NESTED, as ``pasid_pte_config_nestd``
        writes ``s1_cfg->pgtbl_addr``); ``ssptptr`` the second-stage root (an HPA).
        """
        pgtt = Pgtt(pgtt)
        value = VTD_PASID_ENTRY.encode(
            P=1,
            AW=aw,
            PGTT=int(pgtt),
            SSADE=int(ssade),
            SSPTPTR=ssptptr,
            DID=did,
            FLPM=flpm,
            FSPTPTR=fsptptr,
        )
        addr = self.entry_address(pasid, allocate=True)
        assert addr is not None
        VTD_PASID_ENTRY.write(self.memory, addr, value)
        return addr

    def clear(self, pasid: int) -> None:
        """Clear the entry (``intel_pasid_tear_down_entry``): P=0, the leaf table stays."""
        addr = self.entry_address(pasid)
        if addr is not None:
            VTD_PASID_ENTRY.write(self.memory, addr, 0)

    def lookup(
        self, pasid: int, *, translate: Translate | None = None, host_memory: Any = None
    ) -> PasidLookup:
        """Walk directory entry then PASID entry (2 reads), with the SM fault reasons."""
        d, i = vtd_pasid_index(pasid, self.pasid_bits)
        refs: list[PasidRef] = []
        try:
            pde_addr = self.directory + 8 * d
            pde = self._fetch(
                refs, VTD_PASID_DIR_ENTRY, "PASID directory", 1, d, pde_addr, translate, host_memory
            )
            if not pde & 1:
                raise _Abort(
                    PasidFault(
                        "PASID directory",
                        "Present bit in Directory Entry is clear",
                        pde_addr,
                        "0x51",
                    )
                )
            if pde & VTD_PASID_DIR_ENTRY.reserved_mask:
                raise _Abort(
                    PasidFault(
                        "PASID directory",
                        "Non-zero reserved field set in PASID Directory Entry",
                        pde_addr,
                        "0x52",
                    )
                )
            pte_addr = VTD_PASID_DIR_ENTRY.field("PTP").get(pde) + 64 * i
            pte = self._fetch(
                refs, VTD_PASID_ENTRY, "PASID table", 0, i, pte_addr, translate, host_memory
            )
            if not pte & 1:
                raise _Abort(
                    PasidFault(
                        "PASID table", "Present bit in PASID Table Entry is clear", pte_addr, "0x59"
                    )
                )
            if pte & VTD_PASID_ENTRY.reserved_mask:
                raise _Abort(
                    PasidFault(
                        "PASID table",
                        "Non-zero reserved field set in PASID Table Entry",
                        pte_addr,
                        "0x5a",
                    )
                )
            dec = VTD_PASID_ENTRY.decode(pte)
            try:
                pgtt = Pgtt(dec["PGTT"])
            except ValueError:
                raise _Abort(
                    PasidFault(
                        "PASID table",
                        f"Invalid Scalable-Mode PASID Table Entry (PGTT={dec['PGTT']})",
                        pte_addr,
                        "0x5b",
                    )
                ) from None
        except _Abort as a:
            return PasidLookup(self.family, pasid, self.binding, tuple(refs), fault=a.fault)
        s1 = dec["FSPTPTR"] if pgtt in (Pgtt.FIRST_STAGE, Pgtt.NESTED) else None
        s2 = dec["SSPTPTR"] if pgtt in (Pgtt.SECOND_STAGE, Pgtt.NESTED) else None
        return PasidLookup(
            self.family, pasid, self.binding, tuple(refs), s1, s2, f"PGTT={pgtt.name}", None, dec
        )

    def __repr__(self) -> str:
        return f"<VtdPasidTable {self.pasid_bits}-bit, directory at {fmt_addr(self.directory)} ({self.dir_entries} entries)>"


class SmmuCdTable(PasidStructure):
    """SMMUv3 context-descriptor table, linear or two-level, plus the STE that points at it.

    Mirrors ``arm_smmu_alloc_cd_tables``: linear (``S1FMT_LINEAR``) when ``s1cdmax`` is at most
    ``CTXDESC_LINEAR_CDMAX`` (10: 1024 CDs x 64 B = 64 KiB) or the SMMU lacks ``CD2L``; otherwise
    ``S1FMT_64K_L2`` with ``2^(s1cdmax-10)`` 8-byte L1 descriptors, each leaf (1024 CDs, 64 KiB)
    allocated on first use (``arm_smmu_get_cd_ptr``). Under nesting the table is guest-owned:
    build it in guest memory and pass ``translate`` to :meth:`lookup`.
    """

    family = "SMMUv3"

    def __init__(
        self,
        memory: Any,
        s1cdmax: int,
        *,
        two_level: bool | None = None,
        binding: Binding = Binding.PASID_TABLE,
    ) -> None:
        super().__init__(memory, binding)
        if not 0 <= s1cdmax <= 20:
            raise IommuError(
                "EINVAL", f"S1CDMax {s1cdmax} is outside 0..20 (IDR1.SSIDSIZE is at most 20)"
            )
        if two_level is None:
            two_level = s1cdmax > SMMU_LINEAR_CDMAX
        if not two_level and s1cdmax > SMMU_LINEAR_CDMAX:
            raise IommuError(
                "EINVAL",
                f"a linear CD table with S1CDMax {s1cdmax} would be {64 << s1cdmax:#x} bytes; Linux caps "
                f"linear tables at 64 KiB (CTXDESC_LINEAR_CDMAX = 10) and uses two levels above that",
            )
        if two_level and s1cdmax <= SMMU_LINEAR_CDMAX:
            raise IommuError(
                "EINVAL",
                f"two-level CD tables split SSID[S1CDMax-1:10]; S1CDMax {s1cdmax} leaves no L1 index",
            )
        self.s1cdmax = s1cdmax
        self.two_level = two_level
        if two_level:
            n = 1 << (s1cdmax - SMMU_CD_L2_BITS)
            self.base = mem_alloc(memory, max(8 * n, 64), max(8 * n, 64))
        else:
            size = 64 << s1cdmax
            self.base = mem_alloc(memory, size, max(size, 64))

    @property
    def s1fmt(self) -> int:
        return 2 if self.two_level else 0

    def cd_address(self, ssid: int, *, allocate: bool = False) -> int | None:
        idx = smmu_cd_index(ssid, self.s1cdmax, self.two_level)
        if not self.two_level:
            return self.base + 64 * idx[0]
        l1_addr = self.base + 8 * idx[0]
        l1 = SMMU_CD_L1_DESC.read(self.memory, l1_addr)
        if not l1 & 1:
            if not allocate:
                return None
            leaf = mem_alloc(self.memory, 64 << SMMU_CD_L2_BITS, 64 << SMMU_CD_L2_BITS)
            SMMU_CD_L1_DESC.write(self.memory, l1_addr, SMMU_CD_L1_DESC.encode(V=1, L2Ptr=leaf))
            l1 = SMMU_CD_L1_DESC.read(self.memory, l1_addr)
        return SMMU_CD_L1_DESC.field("L2Ptr").get(l1) + 64 * idx[1]

    def set_cd(
        self,
        ssid: int,
        ttb0: int,
        *,
        asid: int = 1,
        ias: int = 48,
        granule: int = 4096,
        ips: int = 5,
    ) -> int:
        """Write a valid AArch64 CD for ``ssid`` (``arm_smmu_make_s1_cd``); returns its address."""
        tg0 = {4096: 0, 65536: 1, 16384: 2}[granule]
        value = SMMU_CD.encode(
            T0SZ=64 - ias,
            TG0=tg0,
            EPD1=1,
            V=1,
            IPS=ips,
            AA64=1,
            R=1,
            A=1,
            ASET=1,
            ASID=asid,
            TTB0=ttb0,
        )
        addr = self.cd_address(ssid, allocate=True)
        assert addr is not None
        SMMU_CD.write(self.memory, addr, value)
        return addr

    def make_ste(
        self,
        host_memory: Any,
        *,
        config: SteConfig = SteConfig.NESTED,
        s2ttb: int = 0,
        vmid: int = 1,
        ste_addr: int | None = None,
    ) -> int:
        """Write the STE that points at this CD table into host memory; returns its address.

        ``arm_smmu_make_nested_cd_table_ste``: Config NESTED (7), the guest's S1ContextPtr /
        S1Fmt / S1CDMax, the parent's S2TTB and VMID.
        """
        if ste_addr is None:
            ste_addr = mem_alloc(host_memory, 64, 64)
        value = SMMU_STE.encode(
            V=1,
            Config=int(config),
            S1Fmt=self.s1fmt,
            S1ContextPtr=self.base,
            S1CDMax=self.s1cdmax,
            S2VMID=vmid,
            S2AA64=1,
            S2TTB=s2ttb,
        )
        SMMU_STE.write(host_memory, ste_addr, value)
        self.ste_addr = ste_addr
        self.ste_memory = host_memory
        return ste_addr

    def lookup(
        self, pasid: int, *, translate: Translate | None = None, host_memory: Any = None
    ) -> PasidLookup:
        """STE (if made; host PA) -> [L1 descriptor] -> CD, each CD-table fetch via ``translate``.

        Faults are named as SMMUv3 event records: ``C_BAD_SUBSTREAMID`` (0x08) for an SSID at or
        beyond 2^S1CDMax, ``C_BAD_CD`` (0x0a) for an invalid CD or L1 descriptor; a stage-2 fault
        on a CD fetch is ``F_CD_FETCH``-adjacent and reported by the caller's translate.
        """
        refs: list[PasidRef] = []
        try:
            if getattr(self, "ste_addr", None) is not None:
                raw = SMMU_STE.read(self.ste_memory, self.ste_addr)
                refs.append(
                    PasidRef(
                        "STE",
                        2,
                        0,
                        self.ste_addr,
                        self.ste_addr,
                        raw,
                        SMMU_STE.decode(raw),
                        SMMU_STE,
                    )
                )
            if pasid < 0 or pasid >> self.s1cdmax:
                raise _Abort(
                    PasidFault(
                        "CD table",
                        f"SSID {pasid:#x} >= 2^S1CDMax ({1 << self.s1cdmax:#x})",
                        self.base,
                        "C_BAD_SUBSTREAMID (0x08)",
                    )
                )
            idx = smmu_cd_index(pasid, self.s1cdmax, self.two_level)
            if self.two_level:
                l1_addr = self.base + 8 * idx[0]
                l1 = self._fetch(
                    refs,
                    SMMU_CD_L1_DESC,
                    "L1 CD descriptor",
                    1,
                    idx[0],
                    l1_addr,
                    translate,
                    host_memory,
                )
                if not l1 & 1:
                    raise _Abort(
                        PasidFault(
                            "L1 CD descriptor",
                            "L1 descriptor not valid",
                            l1_addr,
                            "C_BAD_CD (0x0a)",
                            "guest",
                        )
                    )
                cd_addr = SMMU_CD_L1_DESC.field("L2Ptr").get(l1) + 64 * idx[1]
            else:
                cd_addr = self.base + 64 * idx[0]
            cd = self._fetch(refs, SMMU_CD, "CD", 0, idx[-1], cd_addr, translate, host_memory)
            dec = SMMU_CD.decode(cd)
            if not dec["V"]:
                raise _Abort(PasidFault("CD", "CD.V is 0", cd_addr, "C_BAD_CD (0x0a)", "guest"))
        except _Abort as a:
            return PasidLookup(self.family, pasid, self.binding, tuple(refs), fault=a.fault)
        return PasidLookup(
            self.family,
            pasid,
            self.binding,
            tuple(refs),
            dec["TTB0"],
            None,
            "CD valid, TTB0",
            None,
            dec,
        )

    def __repr__(self) -> str:
        kind = "two-level" if self.two_level else "linear"
        return f"<SmmuCdTable {kind} S1CDMax={self.s1cdmax} at {fmt_addr(self.base)} ({self.binding.value})>"


class AmdGcr3Table(PasidStructure):
    """AMD GCR3 table: ``levels`` of 4 KiB pages, 512 entries each, plus the DTE pointing at it.

    Mirrors ``setup_gcr3_table`` / ``__get_gcr3_pte``: ``GLX = levels - 1``; non-leaf entries are
    ``next_level_phys | GCR3_VALID``; the leaf entry holds the guest CR3 (stage-1 root) with the
    valid bit. With nesting the GCR3 root in the guest DTE and every level pointer are GPAs,
    walked through the host v1 table (``set_dte_nested`` in drivers/iommu/amd/nested.c).
    """

    family = "AMD"

    def __init__(
        self, memory: Any, pasid_bits: int = 16, *, binding: Binding = Binding.PASID_TABLE
    ) -> None:
        super().__init__(memory, binding)
        self.pasid_bits = pasid_bits
        self.levels = amd_gcr3_levels(pasid_bits)
        self.root = mem_alloc(memory, 0x1000, 0x1000)

    @property
    def glx(self) -> int:
        return self.levels - 1

    def set_gcr3(self, pasid: int, cr3: int) -> int:
        """Point ``pasid`` at the stage-1 root ``cr3``; allocates missing levels. Returns the leaf address."""
        _check_pasid(pasid, self.pasid_bits)
        table = self.root
        idx = amd_gcr3_index(pasid, self.levels)
        for depth, i in enumerate(idx):
            addr = table + 8 * i
            if depth == len(idx) - 1:
                AMD_GCR3_ENTRY.write(self.memory, addr, AMD_GCR3_ENTRY.encode(V=1, Addr=cr3))
                return addr
            e = AMD_GCR3_ENTRY.read(self.memory, addr)
            if not e & 1:
                nxt = mem_alloc(self.memory, 0x1000, 0x1000)
                AMD_GCR3_ENTRY.write(self.memory, addr, AMD_GCR3_ENTRY.encode(V=1, Addr=nxt))
                e = AMD_GCR3_ENTRY.read(self.memory, addr)
            table = AMD_GCR3_ENTRY.field("Addr").get(e)
        raise AssertionError("unreachable")

    def make_dte(
        self,
        host_memory: Any,
        *,
        host_root: int = 0,
        host_mode: int = 4,
        domain_id: int = 1,
        gpt_5level: bool = False,
        dte_addr: int | None = None,
    ) -> int:
        """Write the (host) DTE: v1 root and mode, GV, GLX and the split GCR3 root pointer."""
        if dte_addr is None:
            dte_addr = mem_alloc(host_memory, 32, 32)
        g = self.root
        value = AMD_DTE.encode(
            V=1,
            TV=1,
            Mode=host_mode,
            PTRoot=host_root,
            GV=1,
            GIOV=1,
            GLX=self.glx,
            GCR3_14_12=(g >> 12) & 0x7,
            IR=1,
            IW=1,
            DomainID=domain_id,
            GCR3_30_15=(g >> 15) & 0xFFFF,
            GCR3_51_31=(g >> 31) & 0x1FFFFF,
            GPTLevel=int(gpt_5level),
        )
        AMD_DTE.write(host_memory, dte_addr, value)
        self.dte_addr = dte_addr
        self.dte_memory = host_memory
        return dte_addr

    def lookup(
        self, pasid: int, *, translate: Translate | None = None, host_memory: Any = None
    ) -> PasidLookup:
        """DTE (if made; host) -> GCR3 levels (GPAs when nested) -> guest CR3."""
        refs: list[PasidRef] = []
        root = self.root
        try:
            if getattr(self, "dte_addr", None) is not None:
                raw = AMD_DTE.read(self.dte_memory, self.dte_addr)
                d = AMD_DTE.decode(raw)
                refs.append(
                    PasidRef("DTE", self.levels, 0, self.dte_addr, self.dte_addr, raw, d, AMD_DTE)
                )
                root = (d["GCR3_14_12"] << 12) | (d["GCR3_30_15"] << 15) | (d["GCR3_51_31"] << 31)
            _check_pasid(pasid, self.pasid_bits)
            table = root
            idx = amd_gcr3_index(pasid, self.levels)
            for depth, i in enumerate(idx):
                level = self.levels - 1 - depth
                addr = table + 8 * i
                e = self._fetch(
                    refs,
                    AMD_GCR3_ENTRY,
                    f"GCR3 level {level}",
                    level,
                    i,
                    addr,
                    translate,
                    host_memory,
                )
                if not e & 1:
                    raise _Abort(
                        PasidFault(
                            f"GCR3 level {level}",
                            "GCR3 entry not valid",
                            addr,
                            "IO_PAGE_FAULT",
                            "guest",
                        )
                    )
                if e & AMD_GCR3_ENTRY.reserved_mask:
                    raise _Abort(
                        PasidFault(
                            f"GCR3 level {level}",
                            "reserved bits set in GCR3 entry",
                            addr,
                            "IO_PAGE_FAULT (RZ)",
                            "guest",
                        )
                    )
                table = AMD_GCR3_ENTRY.field("Addr").get(e)
        except _Abort as a:
            return PasidLookup(self.family, pasid, self.binding, tuple(refs), fault=a.fault)
        return PasidLookup(
            self.family,
            pasid,
            self.binding,
            tuple(refs),
            table,
            None,
            "GV=1, guest CR3",
            None,
            {"GCR3": table},
        )

    def __repr__(self) -> str:
        return f"<AmdGcr3Table {self.pasid_bits}-bit, GLX={self.glx}, root {fmt_addr(self.root)} ({self.binding.value})>"


def describe_layout(layout: EntryLayout) -> list[tuple[str, str, str]]:
    """The field table of a layout as (name, bits, meaning) rows, for docs and notebooks."""
    return [(f.name, f"{f.hi}:{f.lo}" if f.width > 1 else str(f.lo), f.doc) for f in layout.fields]
