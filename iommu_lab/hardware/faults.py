"""Vendor fault codes: what SMMUv3, VT-d and AMD log for each vendor-neutral fault, as tables.

Every table is keyed by the one fault vocabulary (:class:`~iommu_lab.core.faults.FaultKind`,
:class:`~iommu_lab.core.faults.FaultReason`) and gives a vendor enum; nothing here or above
matches on message text.

* **SMMUv3** event records (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h ``EVT_ID_*``,
  ``EVTQ_1_S2`` bit 39, ``EVTQ_1_CLASS`` bits 41:40; QEMU smmuv3-internal.h ``SMMUEventType``,
  ``SMMUTranslationClass``).
* **VT-d** scalable-mode fault reasons, verbatim from ``dma_remap_sm_fault_reasons``
  (drivers/iommu/intel/dmar.c). Second-stage entries have no present bit (present = R|W), so a
  missing stage-2 mapping of a first-stage table is a read-permission error: 0x75 for the top
  (FL-PML4/PML5) table and 0x76 below **(inferred from the reason strings)**.
* **AMD** ``IO_PAGE_FAULT`` (event type 0x2) flag bits (amd_iommu_types.h ``EVENT_FLAG_*`` and
  the spec's GN/NX/US/PE/RZ positions between them).
"""

from __future__ import annotations

import enum

from iommu_lab.core.faults import FaultKind

__all__ = [
    "AMD_EVENT_FLAGS",
    "AMD_FLAGS_OF_KIND",
    "SMMU_CLASS",
    "SMMU_EVENT_IDS",
    "SMMU_EVENT_OF_KIND",
    "VTD_S1_REASON",
    "VTD_S1_TABLE_REASON",
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
    ``dma_remap_sm_fault_reasons``, offset 0x30)."""

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

#: A second-stage fault on the input (second-stage-only) or the output GPA.
VTD_S2_REASON: dict[FaultKind, VtdReason] = {
    FaultKind.TRANSLATION: VtdReason.SL_PERMISSION,
    FaultKind.PERMISSION: VtdReason.SL_PERMISSION,
    FaultKind.RESERVED: VtdReason.SL_RESERVED,
    FaultKind.ADDRESS_SIZE: VtdReason.BEYOND_DMA_MAX,
    FaultKind.NON_CANONICAL: VtdReason.BEYOND_DMA_MAX,
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

#: The flags each kind sets on top of TR (a translation, not a transaction, fault): a
#: permission or reserved-bit fault found the entry present.
AMD_FLAGS_OF_KIND: dict[FaultKind, AmdEventFlag] = {
    FaultKind.TRANSLATION: AmdEventFlag.TR,
    FaultKind.PERMISSION: AmdEventFlag.TR | AmdEventFlag.PR | AmdEventFlag.PE,
    FaultKind.RESERVED: AmdEventFlag.TR | AmdEventFlag.PR | AmdEventFlag.RZ,
    FaultKind.ADDRESS_SIZE: AmdEventFlag.TR,
    FaultKind.NON_CANONICAL: AmdEventFlag.TR,
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
        extra = [f.name for f in AmdEventFlag if f & code and f is not AmdEventFlag.TR]
        return "IO_PAGE_FAULT" + (f" ({'|'.join(extra)})" if extra else "")
    raise TypeError(f"not a vendor fault code: {code!r}")
