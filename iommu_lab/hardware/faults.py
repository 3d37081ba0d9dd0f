"""Vendor fault codes: what SMMUv3, VT-d and AMD log for each vendor-neutral fault, as tables.

Every table is keyed by the one fault vocabulary (:class:`~iommu_lab.core.faults.FaultKind`,
:class:`~iommu_lab.core.faults.FaultReason`) and gives a vendor enum; nothing here or above
matches on message text.

* **SMMUv3** event records (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h ``EVT_ID_*``,
  ``EVTQ_1_S2`` bit 39, ``EVTQ_1_CLASS`` bits 41:40; QEMU smmuv3-internal.h ``SMMUEventType``,
  ``SMMUTranslationClass``).
* **VT-d** scalable-mode fault reasons, verbatim from ``dma_remap_sm_fault_reasons``
  (drivers/iommu/intel/dmar.c); the model walks scalable mode (root, context, PASID directory,
  PASID table), so these are the codes it raises. Second-stage entries have no present bit
  (present = R|W): an unmapped GPA is 0x79, which Linux prints as a "Read/Write permission
  error"; a missing stage-2 mapping of a first-stage table is a read-permission error: 0x75 for
  the top (FL-PML4/PML5) table and 0x76 below **(inferred from the reason strings)**.
* **AMD** ``IO_PAGE_FAULT`` (event type 0x2) flag bits (amd_iommu_types.h ``EVENT_FLAG_*`` and
  the spec's GN/NX/US/PE/RZ positions between them). TR marks an ATS *translation request*
  (the spec's "TR: 1 = translation request, 0 = transaction"), so a DMA transaction's fault
  has TR clear; the kind table never sets it.

Reading logs, the tables go the other way (code -> text and kind), as the kernel's own tables:

* **VT-d** ``dma_remap_fault_reasons`` (legacy, 0x00..0x0d), ``irq_remap_fault_reasons``
  (interrupt remapping, 0x20..0x26) and ``dma_remap_sm_fault_reasons`` (scalable mode,
  0x30..0x90), chosen by ``dmar_get_fault_reason`` (drivers/iommu/intel/dmar.c). Legacy
  second-stage entries have no present bit, so an unmapped IOVA logs "PTE Read access is not
  set" (0x06) or "PTE Write access is not set" (0x05): their kind is PERMISSION.
* **AMD** event types (``EVENT_TYPE_*``) with the names ``iommu_print_event`` logs.
* **SMMUv3** ``event_str`` names by event id and ``event_class_str`` (arm-smmu-v3.c).
* **SMMUv2** context-bank ``FSR`` and ``FSYNR0`` bits (``ARM_SMMU_CB_FSR_*``,
  ``ARM_SMMU_CB_FSYNR0_*`` in arm-smmu.h).
"""

from __future__ import annotations

import enum

from iommu_lab.core.faults import FaultKind

__all__ = [
    "AMD_EVENT_FLAGS",
    "AMD_EVENT_MEANING",
    "AMD_EVENT_TYPES",
    "SMMUV2_FSR_BITS",
    "SMMUV2_FSYNR0_BITS",
    "SMMU_CLASS_TEXT",
    "SMMU_EVENT_NAMES",
    "VTD_IR_REASON_TEXT",
    "VTD_LEGACY_REASON_TEXT",
    "VTD_SM_REASON_TEXT",
    "amd_page_fault_kind",
    "vtd_reason",
    "AMD_FLAGS_OF_KIND",
    "SMMU_CLASS",
    "SMMU_EVENT_IDS",
    "SMMU_EVENT_OF_KIND",
    "VTD_S1_REASON",
    "VTD_S1_TABLE_REASON",
    "VTD_S2_ACCESS_REASON",
    "VTD_S2_REASON",
    "VTD_SM_REASONS",
    "AmdEventFlag",
    "SmmuClass",
    "SmmuEventId",
    "VtdReason",
    "vendor_code_text",
]


# -- SMMUv3 -------------------------------------------------------------------------------------


class SmmuEventId(enum.IntEnum):
    """SMMUv3 event IDs this model raises (``EVT_ID_*``)."""

    C_BAD_SUBSTREAMID = 0x08
    F_CD_FETCH = 0x09
    C_BAD_CD = 0x0A
    F_WALK_EABT = 0x0B
    F_TRANSLATION = 0x10
    F_ADDR_SIZE = 0x11
    F_ACCESS = 0x12
    F_PERMISSION = 0x13


class SmmuClass(enum.IntEnum):
    """``EVTQ_1_CLASS``: the fault came from a CD fetch, a table fetch (TT) or the input (IN)."""

    CD = 0
    TT = 1
    IN = 2


#: Event ID by name (``EVT_ID_*``), for readers who have a name from a log line.
SMMU_EVENT_IDS: dict[str, int] = {e.name: int(e) for e in SmmuEventId}

#: ``EVTQ_1_CLASS`` value -> its name.
SMMU_CLASS: dict[int, str] = {int(c): c.name for c in SmmuClass}

#: The translation-fault event for each kind; an invalid descriptor encoding and a
#: non-canonical input are translation faults on the SMMU.
SMMU_EVENT_OF_KIND: dict[FaultKind, SmmuEventId] = {
    FaultKind.TRANSLATION: SmmuEventId.F_TRANSLATION,
    FaultKind.RESERVED: SmmuEventId.F_TRANSLATION,
    FaultKind.NON_CANONICAL: SmmuEventId.F_TRANSLATION,
    FaultKind.PERMISSION: SmmuEventId.F_PERMISSION,
    FaultKind.ADDRESS_SIZE: SmmuEventId.F_ADDR_SIZE,
}


# -- VT-d ---------------------------------------------------------------------------------------


class VtdReason(enum.IntEnum):
    """VT-d scalable-mode fault reasons this model can raise (index into
    ``dma_remap_sm_fault_reasons``, offset 0x30, drivers/iommu/intel/dmar.c).

    The root- and context-entry reasons are the ones the scalable-mode root/context walk
    (``iommu_context_addr``, ``intel_pasid_get_entry``) stops on: the root or context entry not
    present or with reserved bits set, PASIDs disabled in the context entry, and a PASID beyond
    the directory the context entry sizes (PDTS).
    """

    SM_ROOT_NOT_PRESENT = 0x39
    SM_ROOT_RESERVED = 0x3A
    SM_CTX_NOT_PRESENT = 0x41
    SM_CTX_RESERVED = 0x42
    SM_CTX_PASID_DISABLED = 0x45
    SM_CTX_PASID_TOO_LARGE = 0x46
    SM_PDE_NOT_PRESENT = 0x51
    SM_PDE_RESERVED = 0x52
    SM_PTE_NOT_PRESENT = 0x59
    SM_PTE_RESERVED = 0x5A
    SM_PTE_INVALID = 0x5B
    FL_NOT_PRESENT = 0x71
    FL_RESERVED = 0x72
    FL_TABLE_BEYOND_MGAW = 0x74
    FL_PML4_READ = 0x75
    FL_TABLE_READ = 0x76
    SL_PERMISSION = 0x79
    SL_RESERVED = 0x7A
    NON_CANONICAL = 0x80
    BEYOND_DMA_MAX = 0x83
    SL_BEYOND_MAX = 0x84
    NO_WRITE = 0x85
    NO_READ = 0x86


#: The strings Linux prints, verbatim from ``dma_remap_sm_fault_reasons``.
VTD_SM_REASONS: dict[VtdReason, str] = {
    VtdReason.SM_ROOT_NOT_PRESENT: "SM: Present bit in Root Entry is clear",
    VtdReason.SM_ROOT_RESERVED: "SM: Non-zero reserved field set in Root Entry",
    VtdReason.SM_CTX_NOT_PRESENT: "SM: Present bit in Context Entry is clear",
    VtdReason.SM_CTX_RESERVED: "SM: Non-zero reserved field set in the Context Entry",
    VtdReason.SM_CTX_PASID_DISABLED: "SM: PASID Enable field in Context Entry is clear",
    VtdReason.SM_CTX_PASID_TOO_LARGE: "SM: PASID is larger than the max in Context Entry",
    VtdReason.SM_PDE_NOT_PRESENT: "SM: Present bit in Directory Entry is clear",
    VtdReason.SM_PDE_RESERVED: "SM: Non-zero reserved field set in PASID Directory Entry",
    VtdReason.SM_PTE_NOT_PRESENT: "SM: Present bit in PASID Table Entry is clear",
    VtdReason.SM_PTE_RESERVED: "SM: Non-zero reserved field set in PASID Table Entry",
    VtdReason.SM_PTE_INVALID: "SM: Invalid Scalable-Mode PASID Table Entry",
    VtdReason.FL_NOT_PRESENT: "SM: Present bit in first-level paging entry is clear",
    VtdReason.FL_RESERVED: "SM: Non-zero reserved field set in first-level paging entry",
    VtdReason.FL_TABLE_BEYOND_MGAW: "SM: First-level entry address beyond MGAW in Nested translation",
    VtdReason.FL_PML4_READ: "SM: Read permission error in FL-PML4 entry in Nested translation",
    VtdReason.FL_TABLE_READ: "SM: Read permission error in first-level paging entry in Nested translation",
    VtdReason.SL_PERMISSION: "SM: Read/Write permission error in second-level paging entry",
    VtdReason.SL_RESERVED: "SM: Non-zero reserved field set in second-level paging entry",
    VtdReason.NON_CANONICAL: "SM: Address in first-level translation is not canonical",
    VtdReason.BEYOND_DMA_MAX: "SM: Address beyond the DMA hardware max",
    VtdReason.SL_BEYOND_MAX: "SM: Second-level entry address beyond the max",
    VtdReason.NO_WRITE: "SM: No write permission for Write/AtomicOp request",
    VtdReason.NO_READ: "SM: No read permission for Read/AtomicOp request",
}

#: A first-stage entry's fault, keyed by (kind, is the access a write).
VTD_S1_REASON: dict[tuple[FaultKind, bool], VtdReason] = {
    **{(k, w): r for w in (False, True) for k, r in (
        (FaultKind.TRANSLATION, VtdReason.FL_NOT_PRESENT),
        (FaultKind.RESERVED, VtdReason.FL_RESERVED),
        (FaultKind.NON_CANONICAL, VtdReason.NON_CANONICAL),
        (FaultKind.ADDRESS_SIZE, VtdReason.BEYOND_DMA_MAX),
    )},
    (FaultKind.PERMISSION, False): VtdReason.NO_READ,
    (FaultKind.PERMISSION, True): VtdReason.NO_WRITE,
}

#: A second-stage fault while fetching a first-stage table, keyed by (kind, is it the top table).
VTD_S1_TABLE_REASON: dict[tuple[FaultKind, bool], VtdReason] = {
    **{(k, top): VtdReason.FL_PML4_READ if top else VtdReason.FL_TABLE_READ
       for k in FaultKind for top in (False, True)},
    **{(FaultKind.ADDRESS_SIZE, top): VtdReason.FL_TABLE_BEYOND_MGAW for top in (False, True)},
    **{(FaultKind.RESERVED, top): VtdReason.SL_RESERVED for top in (False, True)},
}

#: A second-stage fault on the input (second-stage-only) or the output GPA, keyed by (kind, is
#: the access a write). A second-stage entry has no present bit: R=W=0 is its not-present
#: encoding, which scalable mode logs as 0x79 (the spec's second-stage fault SSL.2; Linux prints
#: it as "Read/Write permission error in second-level paging entry"). A present entry that
#: lacks the access's permission logs the scalable-mode general 0x85/0x86, as a first-stage
#: one does (VirtualBox's VT-d model, DevIommuIntel.cpp ``dmarAtFaultRecord``, maps a
#: not-present PTE to SSL.2 and a denied read/write to SGN.7/SGN.6 in scalable mode).
VTD_S2_ACCESS_REASON: dict[tuple[FaultKind, bool], VtdReason] = {
    **{(k, w): r for w in (False, True) for k, r in (
        (FaultKind.TRANSLATION, VtdReason.SL_PERMISSION),
        (FaultKind.RESERVED, VtdReason.SL_RESERVED),
        (FaultKind.ADDRESS_SIZE, VtdReason.BEYOND_DMA_MAX),
        (FaultKind.NON_CANONICAL, VtdReason.BEYOND_DMA_MAX),
    )},
    (FaultKind.PERMISSION, False): VtdReason.NO_READ,
    (FaultKind.PERMISSION, True): VtdReason.NO_WRITE,
}

#: The read access's second-stage code by kind alone (``VTD_S2_ACCESS_REASON`` has the write's).
VTD_S2_REASON: dict[FaultKind, VtdReason] = {
    k: r for (k, w), r in VTD_S2_ACCESS_REASON.items() if not w
}


# -- AMD ----------------------------------------------------------------------------------------


class AmdEventFlag(enum.IntFlag):
    """AMD ``IO_PAGE_FAULT`` event flags."""

    GN = 0x001
    NX = 0x002
    US = 0x004
    I = 0x008  # noqa: E741 - the spec's name
    PR = 0x010
    RW = 0x020
    PE = 0x040
    RZ = 0x080
    TR = 0x100


#: Flag name -> bit, in the spec's order.
AMD_EVENT_FLAGS: dict[str, int] = {f.name: int(f) for f in AmdEventFlag}

#: The flags each kind sets for a DMA transaction (TR clear: TR marks an ATS translation
#: request, which the caller adds): a permission or reserved-bit fault found the entry present.
AMD_FLAGS_OF_KIND: dict[FaultKind, AmdEventFlag] = {
    FaultKind.TRANSLATION: AmdEventFlag(0),
    FaultKind.PERMISSION: AmdEventFlag.PR | AmdEventFlag.PE,
    FaultKind.RESERVED: AmdEventFlag.PR | AmdEventFlag.RZ,
    FaultKind.ADDRESS_SIZE: AmdEventFlag(0),
    FaultKind.NON_CANONICAL: AmdEventFlag(0),
}


def vendor_code_text(code: enum.Enum | None) -> str:
    """A vendor code as the logs write it: ``0x59`` (VT-d), ``C_BAD_CD (0x0a)`` (SMMUv3),
    ``IO_PAGE_FAULT`` or ``IO_PAGE_FAULT (RZ)`` (AMD)."""
    if code is None:
        return ""
    if isinstance(code, VtdReason):
        return f"{int(code):#04x}"
    if isinstance(code, SmmuEventId):
        return f"{code.name} ({int(code):#04x})"
    if isinstance(code, AmdEventFlag):
        extra = [f.name for f in AmdEventFlag if f & code]
        return "IO_PAGE_FAULT" + (f" ({'|'.join(extra)})" if extra else "")
    raise TypeError(f"not a vendor fault code: {code!r}")


# -- reading logs: code -> (the kernel's text, kind) --------------------------------------------
_T, _P, _R, _A, _N = (FaultKind.TRANSLATION, FaultKind.PERMISSION, FaultKind.RESERVED,
                      FaultKind.ADDRESS_SIZE, FaultKind.NON_CANONICAL)

#: ``dma_remap_fault_reasons`` (legacy mode), index = fault reason.
VTD_LEGACY_REASON_TEXT: dict[int, tuple[str, FaultKind]] = {
    0x00: ("Software", _T),
    0x01: ("Present bit in root entry is clear", _T),
    0x02: ("Present bit in context entry is clear", _T),
    0x03: ("Invalid context entry", _R),
    0x04: ("Access beyond MGAW", _A),
    0x05: ("PTE Write access is not set", _P),
    0x06: ("PTE Read access is not set", _P),
    0x07: ("Next page table ptr is invalid", _A),
    0x08: ("Root table address invalid", _A),
    0x09: ("Context table ptr is invalid", _A),
    0x0A: ("non-zero reserved fields in RTP", _R),
    0x0B: ("non-zero reserved fields in CTP", _R),
    0x0C: ("non-zero reserved fields in PTE", _R),
    0x0D: ("PCE for translation request specifies blocking", _P),
}

#: ``irq_remap_fault_reasons``, index = fault reason - 0x20 (interrupt-remapping faults).
VTD_IR_REASON_TEXT: dict[int, tuple[str, FaultKind]] = {
    0x20: ("Detected reserved fields in the decoded interrupt-remapped request", _R),
    0x21: ("Interrupt index exceeded the interrupt-remapping table size", _A),
    0x22: ("Present field in the IRTE entry is clear", _T),
    0x23: ("Error accessing interrupt-remapping table pointed by IRTA_REG", _A),
    0x24: ("Detected reserved fields in the IRTE entry", _R),
    0x25: ("Blocked a compatibility format interrupt request", _P),
    0x26: ("Blocked an interrupt request due to source-id verification failure", _P),
}

#: ``dma_remap_sm_fault_reasons`` without its "Unknown" fillers, index = fault reason.
VTD_SM_REASON_TEXT: dict[int, tuple[str, FaultKind]] = {
    0x30: ("SM: Invalid Root Table Address", _A),
    0x31: ("SM: TTM 0 for request with PASID", _T),
    0x32: ("SM: TTM 0 for page group request", _T),
    0x38: ("SM: Error attempting to access Root Entry", _A),
    0x39: ("SM: Present bit in Root Entry is clear", _T),
    0x3A: ("SM: Non-zero reserved field set in Root Entry", _R),
    0x40: ("SM: Error attempting to access Context Entry", _A),
    0x41: ("SM: Present bit in Context Entry is clear", _T),
    0x42: ("SM: Non-zero reserved field set in the Context Entry", _R),
    0x43: ("SM: Invalid Context Entry", _R),
    0x44: ("SM: DTE field in Context Entry is clear", _P),
    0x45: ("SM: PASID Enable field in Context Entry is clear", _P),
    0x46: ("SM: PASID is larger than the max in Context Entry", _A),
    0x47: ("SM: PRE field in Context-Entry is clear", _P),
    0x48: ("SM: RID_PASID field error in Context-Entry", _R),
    0x50: ("SM: Error attempting to access the PASID Directory Entry", _A),
    0x51: ("SM: Present bit in Directory Entry is clear", _T),
    0x52: ("SM: Non-zero reserved field set in PASID Directory Entry", _R),
    0x58: ("SM: Error attempting to access PASID Table Entry", _A),
    0x59: ("SM: Present bit in PASID Table Entry is clear", _T),
    0x5A: ("SM: Non-zero reserved field set in PASID Table Entry", _R),
    0x5B: ("SM: Invalid Scalable-Mode PASID Table Entry", _R),
    0x5C: ("SM: ERE field is clear in PASID Table Entry", _P),
    0x5D: ("SM: SRE field is clear in PASID Table Entry", _P),
    0x70: ("SM: Error attempting to access first-level paging entry", _A),
    0x71: ("SM: Present bit in first-level paging entry is clear", _T),
    0x72: ("SM: Non-zero reserved field set in first-level paging entry", _R),
    0x73: ("SM: Error attempting to access FL-PML4 entry", _A),
    0x74: ("SM: First-level entry address beyond MGAW in Nested translation", _A),
    0x75: ("SM: Read permission error in FL-PML4 entry in Nested translation", _P),
    0x76: ("SM: Read permission error in first-level paging entry in Nested translation", _P),
    0x77: ("SM: Write permission error in first-level paging entry in Nested translation", _P),
    0x78: ("SM: Error attempting to access second-level paging entry", _A),
    0x79: ("SM: Read/Write permission error in second-level paging entry", _P),
    0x7A: ("SM: Non-zero reserved field set in second-level paging entry", _R),
    0x7B: ("SM: Invalid second-level page table pointer", _A),
    0x7C: ("SM: A/D bit update needed in second-level entry when set up in no snoop", _P),
    0x80: ("SM: Address in first-level translation is not canonical", _N),
    0x81: ("SM: U/S set 0 for first-level translation with user privilege", _P),
    0x82: ("SM: No execute permission for request with PASID and ER=1", _P),
    0x83: ("SM: Address beyond the DMA hardware max", _A),
    0x84: ("SM: Second-level entry address beyond the max", _A),
    0x85: ("SM: No write permission for Write/AtomicOp request", _P),
    0x86: ("SM: No read permission for Read/AtomicOp request", _P),
    0x87: ("SM: Invalid address-interrupt address", _A),
    0x90: ("SM: A/D bit update needed in first-level entry when set up in no snoop", _P),
}


def vtd_reason(code: int) -> tuple[str, FaultKind | None, bool]:
    """(the kernel's text, kind, is an interrupt fault) for a VT-d fault reason, chosen as
    ``dmar_get_fault_reason`` chooses: interrupt remapping 0x20.., scalable mode 0x30..,
    legacy below; anything else is "Unknown"."""
    if code in VTD_IR_REASON_TEXT:
        return (*VTD_IR_REASON_TEXT[code], True)
    for table in (VTD_SM_REASON_TEXT, VTD_LEGACY_REASON_TEXT):
        if code in table:
            return (*table[code], False)
    return ("Unknown", None, False)


#: AMD event types (``EVENT_TYPE_*``) and the names ``iommu_print_event`` logs.
AMD_EVENT_TYPES: dict[int, str] = {
    0x1: "ILLEGAL_DEV_TABLE_ENTRY", 0x2: "IO_PAGE_FAULT", 0x3: "DEV_TAB_HARDWARE_ERROR",
    0x4: "PAGE_TAB_HARDWARE_ERROR", 0x5: "ILLEGAL_COMMAND_ERROR", 0x6: "COMMAND_HARDWARE_ERROR",
    0x7: "IOTLB_INV_TIMEOUT", 0x8: "INVALID_DEVICE_REQUEST", 0x9: "INVALID_PPR_REQUEST",
    0xD: "RMP_PAGE_FAULT", 0xE: "RMP_HW_ERROR",
}

#: What each AMD event means, and its kind where it is a translation fault.
AMD_EVENT_MEANING: dict[str, tuple[str, FaultKind | None]] = {
    "ILLEGAL_DEV_TABLE_ENTRY": ("the device-table entry has reserved bits set or an invalid setting", _R),
    "IO_PAGE_FAULT": ("the request did not translate or lacked permission (see PR/RW/PE/RZ flags)", None),
    "DEV_TAB_HARDWARE_ERROR": ("a hardware error reading the device table", _A),
    "PAGE_TAB_HARDWARE_ERROR": ("a hardware error reading a page table", _A),
    "ILLEGAL_COMMAND_ERROR": ("the command buffer held an invalid command", None),
    "COMMAND_HARDWARE_ERROR": ("a hardware error reading the command buffer", None),
    "IOTLB_INV_TIMEOUT": ("a device did not answer an IOTLB invalidation in time", None),
    "INVALID_DEVICE_REQUEST": ("a request the device may not make (e.g. ATS while disabled)", _P),
    "INVALID_PPR_REQUEST": ("a page request the IOMMU could not accept", None),
    "RMP_PAGE_FAULT": ("the SNP reverse map refused the access", _P),
    "RMP_HW_ERROR": ("a hardware error reading the SNP reverse map", None),
}


def amd_page_fault_kind(flags: int) -> FaultKind:
    """The kind of an ``IO_PAGE_FAULT`` from its flags: RZ reserved bits; PE, or PR (the page
    was present), a permission fault; otherwise the entry was not present: a translation fault."""
    f = AmdEventFlag(flags & 0x1FF)
    if f & AmdEventFlag.RZ:
        return FaultKind.RESERVED
    if f & (AmdEventFlag.PE | AmdEventFlag.PR):
        return FaultKind.PERMISSION
    return FaultKind.TRANSLATION


#: SMMUv3 ``event_str`` (arm-smmu-v3.c) by event id, with the kind of translation faults.
SMMU_EVENT_NAMES: dict[int, tuple[str, FaultKind | None]] = {
    0x01: ("F_UUT", None), 0x02: ("C_BAD_STREAMID", _R), 0x03: ("F_STE_FETCH", _A), 0x04: ("C_BAD_STE", _R),
    0x05: ("F_BAD_ATS_TREQ", _P), 0x06: ("F_STREAM_DISABLED", _P), 0x07: ("F_TRANSL_FORBIDDEN", _P),
    0x08: ("C_BAD_SUBSTREAMID", _R), 0x09: ("F_CD_FETCH", _A), 0x0A: ("C_BAD_CD", _R), 0x0B: ("F_WALK_EABT", _A),
    0x10: ("F_TRANSLATION", _T), 0x11: ("F_ADDR_SIZE", _A), 0x12: ("F_ACCESS", _P), 0x13: ("F_PERMISSION", _P),
    0x20: ("F_TLB_CONFLICT", None), 0x21: ("F_CFG_CONFLICT", None), 0x24: ("E_PAGE_REQUEST", None),
    0x25: ("F_VMS_FETCH", _A),
}

#: ``event_class_str``: what the fault was on (``EVTQ_1_CLASS``).
SMMU_CLASS_TEXT = ("CD fetch", "Stage 1 translation table fetch", "Input address caused fault", "Reserved")

#: SMMUv2 context-bank FSR bits (``ARM_SMMU_CB_FSR_*``), with the kind each reports.
SMMUV2_FSR_BITS: dict[str, tuple[int, str, FaultKind | None]] = {
    "TF": (1, "translation fault", _T), "AFF": (2, "access flag fault", _P), "PF": (3, "permission fault", _P),
    "EF": (4, "external fault on a table walk", _A), "TLBMCF": (5, "TLB match conflict", None),
    "TLBLKF": (6, "TLB lock fault", None), "ASF": (7, "address size fault", _A),
    "UUT": (8, "unsupported upstream transaction", None), "SS": (30, "stalled", None), "MULTI": (31, "multiple faults", None),
}
#: SMMUv2 ``FSYNR0`` bits (``ARM_SMMU_CB_FSYNR0_*``): write, privileged, instruction, table walk.
SMMUV2_FSYNR0_BITS = {"WNR": 4, "PNU": 5, "IND": 6, "NSATTR": 8, "PTWF": 10, "AFR": 11}
