"""PASID, context and device structures: entry layouts and the levels a PASID lookup walks.

The layouts are bit-field tables (:class:`~iommu_lab.core.bits.EntryLayout`) numbered as the
specifications number them, with every field the model reads or writes named once:

* **VT-d scalable mode** (drivers/iommu/intel/iommu.h, iommu.c, pasid.[ch]): the 16-byte root
  entry indexed by bus, whose low half points at the context table of devfn 0..127 and high half
  at devfn 128..255, and the 32-byte scalable-mode context entry indexed by ``devfn & 0x7f``
  (``iommu_context_addr``: ``devfn -= 0x80; entry = &root->hi; devfn *= 2`` over 16-byte
  ``struct context_entry`` slots); it points at the PASID directory
  (``context_entry_set_pasid_table``). Then 8-byte directory entries
  (``struct pasid_dir_entry``) and 64-byte PASID entries (``struct pasid_entry { u64 val[8]; }``),
  field positions from the ``pasid_set_*`` helpers; a 20-bit PASID splits 14 + 6
  (``PASID_PDE_SHIFT`` 6, ``PASID_PTE_MASK`` 0x3f).
* **SMMUv3** (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h): the 64-byte STE and CD and the 8-byte
  level-1 CD descriptor; two-level CD tables split ``SSID[S1CDmax-1:10]`` / ``SSID[9:0]``.
* **AMD** (amd_iommu_types.h, drivers/iommu/amd/iommu.c): the first 256 bits of the DTE and the
  8-byte GCR3 entry; every GCR3 level indexes 9 PASID bits (``__get_gcr3_pte``).

A PASID lookup is one walk over a list of :class:`StructureLevel` s (the PASID-structure
counterpart of a page-table format's levels): each level says which PASID bits index it, which
layout its entries have, which field is the valid bit and which the pointer to the next level,
and which fault the hardware raises for an invalid entry or set reserved bits
(:mod:`iommu_lab.hardware.faults` codes). The walker lives in the nesting layer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from iommu_lab.core.bits import ADDRESS, EntryLayout, Field
from iommu_lab.core.errors import IommuError
from iommu_lab.core.faults import FaultReason
from iommu_lab.hardware.faults import AmdEventFlag, SmmuEventId, VtdReason
from iommu_lab.hardware.platform import IommuFamily, Stage1Binding

__all__ = [
    "AMD_DTE",
    "AMD_GCR3_BITS_PER_LEVEL",
    "AMD_GCR3_ENTRY",
    "DEFAULT_STAGE1_BINDING",
    "SMMU_CD",
    "SMMU_CD_L1_DESC",
    "SMMU_CD_L2_BITS",
    "SMMU_LINEAR_CDMAX",
    "SMMU_STE",
    "VTD_CONTEXT_ENTRY",
    "VTD_PASID_BITS",
    "VTD_PASID_DIR_ENTRY",
    "VTD_PASID_ENTRY",
    "VTD_PDE_SHIFT",
    "VTD_ROOT_ENTRY",
    "Pgtt",
    "SteConfig",
    "StructureLevel",
    "amd_gcr3_index",
    "amd_gcr3_levels",
    "amd_gcr3_levels_of",
    "check_pasid",
    "smmu_cd_index",
    "vtd_pasid_index",
    "smmu_cd_levels",
    "vtd_pasid_levels",
    "vtd_context_slot",
    "vtd_pdts",
]


def _layout(name: str, size: int, rows: list[tuple], source: str) -> EntryLayout:
    """An entry layout from ``(name, hi, lo, doc, role)`` rows, bits counted across the entry."""
    fields = []
    for name_, hi, lo, doc, role in rows:
        lo = hi if lo is None else lo
        fields.append(Field(name_, lo, hi - lo + 1, doc, role, 8 * size))
    return EntryLayout(name, size, fields, source)


#: VT-d scalable-mode root entry, 16 bytes (``struct root_entry { u64 lo; u64 hi; }``): the low
#: half points at the context table of devfn 0..127, the high half at devfn 128..255
#: (``iommu_context_addr`` writes ``phys | 1`` into ``root->lo`` or ``root->hi``).
VTD_ROOT_ENTRY = _layout("VT-d scalable-mode root entry", 16, [
    ("LP", 0, None, "lower present: the context table of devfn 0..127 is valid", ""),
    ("LCTP", 63, 12, "lower context-table pointer, host-physical (VTD_PAGE_MASK)", ADDRESS),
    ("UP", 64, None, "upper present: the context table of devfn 128..255 is valid", ""),
    ("UCTP", 127, 76, "upper context-table pointer, host-physical", ADDRESS),
], "drivers/iommu/intel/iommu.h struct root_entry; iommu.c iommu_context_addr")

#: VT-d scalable-mode context entry, 32 bytes (two 16-byte ``struct context_entry`` slots), as
#: ``context_entry_set_pasid_table`` fills it: the PASID directory pointer and its size (PDTS),
#: RID_PASID (``context_set_sm_rid2pasid``), DTE/PASIDE/PRE (``context_set_sm_dte``,
#: ``context_set_pasid``, ``context_set_sm_pre``).
VTD_CONTEXT_ENTRY = _layout("VT-d scalable-mode context entry", 32, [
    ("P", 0, None, "present (context_set_present)", ""),
    ("FPD", 1, None, "fault processing disable (cleared by context_set_fault_enable)", ""),
    ("DTE", 2, None, "device-TLB (ATS) enable (context_set_sm_dte)", ""),
    ("PASIDE", 3, None, "PASID enable: requests with a PASID are translated (context_set_pasid)", ""),
    ("PRE", 4, None, "page request enable (context_set_sm_pre)", ""),
    ("PDTS", 11, 9, "PASID directory size: 2^(PDTS + 7) entries (context_pdts)", ""),
    ("PASIDDIRPTR", 63, 12, "PASID directory pointer, host-physical", ADDRESS),
    ("RID_PASID", 83, 64, "PASID used for requests without one (context_set_sm_rid2pasid)", ""),
], "drivers/iommu/intel/iommu.h context_* helpers; pasid.c context_entry_set_pasid_table")

#: VT-d PASID directory entry, 8 bytes (``struct pasid_dir_entry``; ``PASID_PTE_PRESENT``,
#: ``PDE_PFN_MASK``).
VTD_PASID_DIR_ENTRY = _layout("VT-d PASID directory entry", 8, [
    ("P", 0, None, "present (PASID_PTE_PRESENT)", ""),
    ("FPD", 1, None, "fault processing disable", ""),
    ("PTP", 63, 12, "PASID table pointer, host-physical (PDE_PFN_MASK)", ADDRESS),
], "drivers/iommu/intel/pasid.h struct pasid_dir_entry")

#: VT-d scalable-mode PASID table entry, 64 bytes; fields Linux never sets (PAT, EMT, PCD/PWT...)
#: are not named, so the model treats those bits as reserved.
VTD_PASID_ENTRY = _layout("VT-d scalable-mode PASID entry", 64, [
    ("P", 0, None, "present (pasid_set_present)", ""),
    ("FPD", 1, None, "fault processing disable", ""),
    ("AW", 4, 2, "second-stage address width (agaw)", ""),
    ("PGTT", 8, 6, "PASID granular translation type: 1 FS, 2 SS, 3 nested, 4 PT", ""),
    ("SSADE", 9, None, "second-stage A/D enable (dirty tracking)", ""),
    ("SSPTPTR", 63, 12, "second-stage table pointer, HPA (pasid_set_slptr)", ADDRESS),
    ("DID", 79, 64, "domain ID (pasid_set_domain_id)", ""),
    ("PWSNP", 87, None, "page-walk snoop", ""),
    ("PGSNP", 88, None, "page snoop", ""),
    ("SRE", 128, None, "supervisor request enable", ""),
    ("FLPM", 131, 130, "first-stage paging mode: 0 = 4-level, 1 = 5-level", ""),
    ("WPE", 132, None, "write protect enable", ""),
    ("EAFE", 135, None, "extended access flag enable", ""),
    ("FSPTPTR", 191, 140, "first-stage table pointer (a GPA when nested; pasid_set_flptr)", ADDRESS),
], "drivers/iommu/intel/pasid.h pasid_set_* helpers")

#: SMMUv3 stream table entry, 64 bytes; only the fields the nested configuration uses.
SMMU_STE = _layout("SMMUv3 STE", 64, [
    ("V", 0, None, "valid", ""),
    ("Config", 3, 1, "0 abort, 4 bypass, 5 S1, 6 S2, 7 nested (S1+S2)", ""),
    ("S1Fmt", 5, 4, "0 linear CD table, 2 two-level with 64K leaves", ""),
    ("S1ContextPtr", 51, 6, "CD table base (an IPA when nested)", ADDRESS),
    ("S1CDMax", 63, 59, "log2 of the number of CDs", ""),
    ("S1DSS", 65, 64, "default substream: 0 terminate, 1 bypass, 2 SSID0", ""),
    ("S2VMID", 143, 128, "VMID", ""),
    ("S2T0SZ", 165, 160, "VTCR.T0SZ: 64 - IPA size", ""),
    ("S2SL0", 167, 166, "VTCR.SL0: start level", ""),
    ("S2TG", 175, 174, "VTCR.TG: granule", ""),
    ("S2PS", 178, 176, "VTCR.PS: output size", ""),
    ("S2AA64", 179, None, "AArch64 stage-2 tables", ""),
    ("S2TTB", 243, 196, "stage-2 table base, PA", ADDRESS),
], "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h STRTAB_STE_0_*/1_*/2_*/3_*")

#: SMMUv3 context descriptor, 64 bytes (``CTXDESC_CD_*``).
SMMU_CD = _layout("SMMUv3 context descriptor", 64, [
    ("T0SZ", 5, 0, "64 - input size", ""),
    ("TG0", 7, 6, "granule: 0 4K, 1 64K, 2 16K", ""),
    ("IRGN0", 9, 8, "", ""),
    ("ORGN0", 11, 10, "", ""),
    ("SH0", 13, 12, "", ""),
    ("EPD0", 14, None, "TTB0 walks disabled", ""),
    ("ENDI", 15, None, "big-endian tables", ""),
    ("EPD1", 30, None, "TTB1 walks disabled", ""),
    ("V", 31, None, "valid", ""),
    ("IPS", 34, 32, "intermediate (output) size", ""),
    ("TBI0", 38, None, "", ""),
    ("AA64", 41, None, "AArch64 tables", ""),
    ("HD", 42, None, "", ""),
    ("HA", 43, None, "", ""),
    ("S", 44, None, "", ""),
    ("R", 45, None, "", ""),
    ("A", 46, None, "", ""),
    ("ASET", 47, None, "", ""),
    ("ASID", 63, 48, "address space ID", ""),
    ("TTB0", 115, 68, "stage-1 table base (an IPA when nested)", ADDRESS),
], "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h CTXDESC_CD_0_*/1_*")

#: SMMUv3 level-1 CD descriptor, 8 bytes (``CTXDESC_L1_DESC_V``, ``CTXDESC_L1_DESC_L2PTR_MASK``).
SMMU_CD_L1_DESC = _layout("SMMUv3 L1 CD descriptor", 8, [
    ("V", 0, None, "valid", ""),
    ("L2Ptr", 51, 12, "level-2 CD table (64 KiB, 1024 CDs)", ADDRESS),
], "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h CTXDESC_L1_DESC_*")

#: AMD device table entry, the first 256 bits (``DTE_*``). The GCR3 table root is split over
#: three fields, as ``DTE_GCR3_14_12``/``30_15``/``51_31`` say.
AMD_DTE = _layout("AMD device table entry", 32, [
    ("V", 0, None, "valid", ""),
    ("TV", 1, None, "translation valid", ""),
    ("Mode", 11, 9, "host (v1) paging mode = levels", ""),
    ("PTRoot", 51, 12, "host v1 page-table root, HPA", ADDRESS),
    ("GIOV", 54, None, "guest I/O protection valid", ""),
    ("GV", 55, None, "guest translation valid (required for nesting)", ""),
    ("GLX", 57, 56, "GCR3 table levels - 1", ""),
    ("GCR3_14_12", 60, 58, "GCR3 root bits 14:12", ""),
    ("IR", 61, None, "", ""),
    ("IW", 62, None, "", ""),
    ("DomainID", 79, 64, "", ""),
    ("GCR3_30_15", 95, 80, "GCR3 root bits 30:15", ""),
    ("GCR3_51_31", 127, 107, "GCR3 root bits 51:31", ""),
    ("GPTLevel", 183, 182, "guest paging: 0 = 4-level, 1 = 5-level", ""),
], "drivers/iommu/amd/amd_iommu_types.h DTE_*; drivers/iommu/amd/nested.c set_dte_nested")

#: AMD GCR3 table entry, 8 bytes: every level, including the leaf that holds the guest CR3.
AMD_GCR3_ENTRY = _layout("AMD GCR3 table entry", 8, [
    ("V", 0, None, "valid (GCR3_VALID)", ""),
    ("Addr", 51, 12, "next GCR3 level, or at level 0 the guest page-table root", ADDRESS),
], "drivers/iommu/amd/iommu.c __get_gcr3_pte, update_gcr3")


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


#: The binding each hardware-nesting family uses natively: VT-d's hardware never walks a guest
#: PASID table (QEMU shadows guest PASID entries); SMMUv3 and AMD point at the guest's table.
DEFAULT_STAGE1_BINDING: dict[IommuFamily, Stage1Binding] = {
    IommuFamily.VTD: Stage1Binding.PGTABLE,
    IommuFamily.SMMUV3: Stage1Binding.PASID_TABLE,
    IommuFamily.AMD: Stage1Binding.PASID_TABLE,
}

VTD_PASID_BITS = 20  # MAX_NR_PASID_BITS
VTD_PDE_SHIFT = 6  # PASID_PDE_SHIFT
SMMU_CD_L2_BITS = 10  # CTXDESC_L2_ENTRIES = 1024
SMMU_LINEAR_CDMAX = 10  # CTXDESC_LINEAR_CDMAX = ilog2(64K / 64)
AMD_GCR3_BITS_PER_LEVEL = 9


def check_pasid(pasid: int, bits: int, what: str = "PASID") -> int:
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
    check_pasid(pasid, bits)
    return pasid >> VTD_PDE_SHIFT, pasid & ((1 << VTD_PDE_SHIFT) - 1)


def vtd_context_slot(devfn: int) -> tuple[str, int]:
    """Which root-entry half and which 32-byte context entry serve ``devfn``.

    As ``iommu_context_addr`` in scalable mode: devfn 0x80..0xff use ``root->hi`` and
    ``devfn - 0x80``; each context table holds 128 entries of 32 bytes (one 4 KiB page).
    devfn 0x08 -> ("lo", 8); devfn 0x81 -> ("hi", 1).
    """
    check_pasid(devfn, 8, "devfn")
    return ("hi", devfn - 0x80) if devfn >= 0x80 else ("lo", devfn)


def vtd_pdts(pasid_bits: int) -> int:
    """The context entry's PDTS for a ``pasid_bits``-wide table, as ``context_get_sm_pds``.

    ``max_pde = max_pasid >> PASID_PDE_SHIFT``; PDTS = (lowest set bit of max_pde) - 7, at
    least 0: the directory covers ``2^(PDTS + 7)`` entries, i.e. PASIDs below
    ``2^(PDTS + 13)``. 20 bits -> 7; 13 bits or fewer -> 0.
    """
    max_pde = (1 << pasid_bits) >> VTD_PDE_SHIFT
    pds = (max_pde & -max_pde).bit_length() - 1 if max_pde else 0
    return max(0, pds - 7)


def smmu_cd_index(ssid: int, s1cdmax: int, two_level: bool) -> tuple[int, ...]:
    """CD-table indices of an SSID: ``(ssid,)`` linear, or ``(ssid >> 10, ssid & 0x3ff)``.

    Mirrors ``arm_smmu_cdtab_l1_idx``/``arm_smmu_cdtab_l2_idx`` (SSID[S1CDMax-1:10] and
    SSID[9:0]); SSID 0x12345 with S1CDMax 20 -> (0x48, 0x345).
    """
    check_pasid(ssid, s1cdmax, "SSID")
    if not two_level:
        return (ssid,)
    return ssid >> SMMU_CD_L2_BITS, ssid & ((1 << SMMU_CD_L2_BITS) - 1)


def amd_gcr3_levels(pasid_bits: int) -> int:
    """Number of GCR3 levels for ``pasid_bits``: ``ceil(bits / 9)``, at least 1 (GLX = levels - 1).

    Mirrors ``get_gcr3_levels``: ``levels = get_count_order(pasids)``, GLX 0 for a table of one
    PASID (``pasid_bits`` 0: PASID 0 only, what ``setup_gcr3_table(..., 1)`` builds for a
    v2 domain without PASIDs) up to 512, GLX 1 up to 2^18, GLX 2 for 2^20.
    """
    if isinstance(pasid_bits, bool) or not isinstance(pasid_bits, int):
        raise TypeError(f"AMD PASID width must be an int, got {type(pasid_bits).__name__}")
    if pasid_bits < 0 or pasid_bits > 20:
        raise IommuError("EINVAL", f"AMD PASID width {pasid_bits} is outside 0..20 bits (get_gcr3_levels)")
    return max(1, -(-pasid_bits // AMD_GCR3_BITS_PER_LEVEL))


def amd_gcr3_index(pasid: int, levels: int) -> tuple[int, ...]:
    """GCR3 indices from the top level down: ``(pasid >> 9L) & 0x1ff`` for L = levels-1 .. 0.

    PASID 0x12345 with 3 levels -> (0x0, 0x91, 0x145).
    """
    check_pasid(pasid, AMD_GCR3_BITS_PER_LEVEL * levels)
    return tuple(
        (pasid >> (AMD_GCR3_BITS_PER_LEVEL * lvl)) & 0x1FF for lvl in range(levels - 1, -1, -1)
    )


@dataclass(frozen=True)
class StructureLevel:
    """One level of a PASID structure: how the PASID indexes it and what its entries mean.

    Attributes
    ----------
    structure : str
        The name the level's references and faults carry ("PASID directory", "CD").
    layout : EntryLayout
    level : int
        Level number (0 is the entry that selects the address space).
    shift : int
        Lowest PASID bit of the index.
    bits : int or None
        Index width; None takes every PASID bit from ``shift`` up (the top level).
    valid : str
        The present / valid field.
    next : str or None
        The field pointing at the next level's table; None at the last level.
    invalid : (FaultReason, vendor code, text)
        What the hardware raises for an entry whose valid bit is clear.
    reserved : (vendor code, text) or None
        What it raises for set reserved bits; None where the hardware does not check them.
    owner : str
        Whose entry a fault blames ("host" or "guest").
    """

    structure: str
    layout: EntryLayout
    level: int
    shift: int
    bits: int | None
    valid: str
    next: str | None
    invalid: tuple[FaultReason, enum.Enum, str]
    reserved: tuple[enum.Enum, str] | None = None
    owner: str = "host"

    def index(self, pasid: int) -> int:
        i = pasid >> self.shift
        return i if self.bits is None else i & ((1 << self.bits) - 1)

    @property
    def table_bytes(self) -> int | None:
        """Bytes of one table of this level (None for the top, whose size the owner chose)."""
        return None if self.bits is None else self.layout.size << self.bits


def vtd_pasid_levels() -> tuple[StructureLevel, ...]:
    """Directory (``pasid >> 6``) then PASID table (``pasid & 0x3f``), as ``intel_pasid_get_entry``."""
    return (
        StructureLevel(
            "PASID directory", VTD_PASID_DIR_ENTRY, 1, VTD_PDE_SHIFT, None, "P", "PTP",
            (FaultReason.NOT_PRESENT, VtdReason.SM_PDE_NOT_PRESENT, "Present bit in Directory Entry is clear"),
            (VtdReason.SM_PDE_RESERVED, "Non-zero reserved field set in PASID Directory Entry"),
        ),
        StructureLevel(
            "PASID table", VTD_PASID_ENTRY, 0, 0, VTD_PDE_SHIFT, "P", None,
            (FaultReason.NOT_PRESENT, VtdReason.SM_PTE_NOT_PRESENT, "Present bit in PASID Table Entry is clear"),
            (VtdReason.SM_PTE_RESERVED, "Non-zero reserved field set in PASID Table Entry"),
        ),
    )


def smmu_cd_levels(two_level: bool) -> tuple[StructureLevel, ...]:
    """Linear: the CD array indexed by the SSID; two-level: L1 descriptor (``SSID[S1CDmax-1:10]``)
    then CD (``SSID[9:0]``), as ``arm_smmu_get_cd_ptr``."""
    bad_cd = SmmuEventId.C_BAD_CD
    cd = StructureLevel(
        "CD", SMMU_CD, 0, 0, SMMU_CD_L2_BITS if two_level else None, "V", None,
        (FaultReason.NOT_PRESENT, bad_cd, "CD.V is 0"), None, "guest",
    )
    if not two_level:
        return (cd,)
    l1 = StructureLevel(
        "L1 CD descriptor", SMMU_CD_L1_DESC, 1, SMMU_CD_L2_BITS, None, "V", "L2Ptr",
        (FaultReason.NOT_PRESENT, bad_cd, "L1 descriptor not valid"), None, "guest",
    )
    return (l1, cd)


def amd_gcr3_levels_of(levels: int) -> tuple[StructureLevel, ...]:
    """``levels`` GCR3 levels from the top, 9 PASID bits each (``__get_gcr3_pte``); the last
    level's ``Addr`` is the guest CR3.

    A bad GCR3 entry is logged as an ``IO_PAGE_FAULT`` with GN set (only a request with a PASID
    walks the GCR3 table) and RZ for reserved bits. TR stays clear: it marks an ATS translation
    request (AMD IOMMU specification, I/O page fault event: "TR: 1 = translation request,
    0 = transaction"), not the kind of structure that faulted.
    """
    out = []
    for lvl in range(levels - 1, -1, -1):
        out.append(StructureLevel(
            f"GCR3 level {lvl}", AMD_GCR3_ENTRY, lvl, AMD_GCR3_BITS_PER_LEVEL * lvl, AMD_GCR3_BITS_PER_LEVEL,
            "V", "Addr" if lvl else None,
            (FaultReason.NOT_PRESENT, AmdEventFlag.GN, "GCR3 entry not valid"),
            (AmdEventFlag.GN | AmdEventFlag.RZ, "reserved bits set in GCR3 entry"), "guest",
        ))
    return tuple(out)
