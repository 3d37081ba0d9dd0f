"""Fault attribution in a nested translation: which stage, whose fault, what the hardware logs.

As the drivers report them (the vIOMMU forwards stage-1 faults, the host handles stage-2 ones): a stage-1 fault belongs to the guest, which fixes its own table; a stage-2 fault
belongs to the host, including one taken while fetching a stage-1 table. Linux forwards to a
guest's vEVENTQ only SMMU events with ``S2`` clear (``arm_smmu_handle_event``). Each fault is
named as the SMMUv3 event record (``EVT_ID_*``, ``EVTQ_1_S2``, ``EVTQ_1_CLASS``), the VT-d
scalable-mode fault reason (``dma_remap_sm_fault_reasons``) and the AMD ``IO_PAGE_FAULT``
flags the hardware would log, read from the enum-keyed tables in
:mod:`iommu_lab.hardware.faults`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from iommu_lab.core.faults import FaultKind, FaultReason
from iommu_lab.core.ranges import fmt_addr
from iommu_lab.hardware.faults import (
    AMD_EVENT_FLAGS,
    AMD_FLAGS_OF_KIND,
    SMMU_CLASS,
    SMMU_EVENT_OF_KIND,
    VTD_S1_REASON,
    VTD_S1_TABLE_REASON,
    VTD_S2_ACCESS_REASON,
    VTD_SM_REASONS,
    AmdEventFlag,
    SmmuClass,
    SmmuEventId,
    VtdReason,
    vendor_code_text,
)

__all__ = ["AmdEvent", "FaultKind", "FaultOwner", "FaultSite", "NestedFault", "SmmuEvent", "Stage",
           "VtdFault"]


class Stage(enum.IntEnum):
    """Which translation stage a reference or fault belongs to (0: PASID/context structures)."""

    CONFIG = 0
    STAGE1 = 1
    STAGE2 = 2


class FaultOwner(enum.Enum):
    """Who must fix a fault: the guest (its stage-1 table) or the host (stage 2 / config)."""

    GUEST = "guest"
    HOST = "host"


class FaultSite(enum.Enum):
    """Where in the 2-D walk the fault was taken (SMMUv3 ``EVTQ_1_CLASS`` in spirit).

    ``INPUT``: while walking stage 1 for the input address (or stage 2 for the output GPA when
    ``stage`` is 2). ``S1_TABLE``: a stage-2 fault while translating the GPA of a stage-1 table
    (SMMU CLASS=TT). ``CONFIG``: a stage-2 fault while fetching a guest-owned PASID/CD/GCR3
    structure (SMMU CLASS=CD).
    """

    INPUT = "input"
    S1_TABLE = "stage-1 table fetch"
    OUTPUT = "output address"
    CONFIG = "configuration fetch"


#: The SMMU ``EVTQ_1_CLASS`` of a stage-2 fault by where it was taken (the input otherwise).
_SMMU_CLASS_OF_SITE = {FaultSite.S1_TABLE: SmmuClass.TT, FaultSite.CONFIG: SmmuClass.CD}


@dataclass(frozen=True)
class SmmuEvent:
    """An SMMUv3 event record's distinguishing fields.

    ``s2`` is ``EVTQ_1_S2`` (bit 39): the fault was in stage 2. ``klass`` is ``EVTQ_1_CLASS``
    (bits 41:40): 0 CD fetch, 1 translation-table fetch (TT), 2 input address (IN). ``addr`` is
    the input address (``EVTQ_2_ADDR``); ``ipa`` is the IPA that faulted in stage 2
    (``EVTQ_3_IPA``), meaningful only when ``s2``.
    """

    name: str
    id: int
    s2: bool
    klass: int
    addr: int
    ipa: int | None = None

    @classmethod
    def of(cls, event: SmmuEventId, s2: bool, klass: SmmuClass, addr: int, ipa: int | None = None) -> SmmuEvent:
        return cls(event.name, int(event), s2, int(klass), addr, ipa)

    @property
    def forwarded_to_guest(self) -> bool:
        """Linux forwards only S2=0 events to a vIOMMU's vEVENTQ (``arm_smmu_handle_event``)."""
        return not self.s2

    def __str__(self) -> str:
        ipa = f" IPA={fmt_addr(self.ipa)}" if self.ipa is not None else ""
        return (
            f"{self.name} (0x{self.id:02x}) S2={int(self.s2)} CLASS={SMMU_CLASS[self.klass]} "
            f"addr={fmt_addr(self.addr)}{ipa}"
        )


@dataclass(frozen=True)
class VtdFault:
    """A VT-d scalable-mode fault reason: code, the string Linux prints for it
    (``dmar_fault_do_one``) and, where that string hides what the hardware saw, the condition
    in the specification's terms (``note``)."""

    code: int
    reason: str
    note: str = ""

    @classmethod
    def of(cls, reason: VtdReason, note: str = "") -> VtdFault:
        return cls(int(reason), VTD_SM_REASONS[reason], note)

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"[fault reason 0x{self.code:02x}] {self.reason}{note}"


@dataclass(frozen=True)
class AmdEvent:
    """An AMD ``IO_PAGE_FAULT`` event (type 0x2): address and flags."""

    addr: int
    flags: int

    @property
    def flag_names(self) -> list[str]:
        return [k for k, v in AMD_EVENT_FLAGS.items() if self.flags & v]

    def __str__(self) -> str:
        return f"IO_PAGE_FAULT addr={fmt_addr(self.addr)} flags={self.flags:#05x} [{'|'.join(self.flag_names)}]"


@dataclass(frozen=True)
class NestedFault:
    """A fault in a nested translation, attributed to the stage, level and address that faulted.

    Attributes
    ----------
    stage : Stage
        The stage whose entry (or input) was bad.
    kind : FaultKind
    site : FaultSite
        What the walk was doing: walking the input, fetching a stage-1 table, or translating the
        output GPA.
    level : int or None
        Level of the faulting entry in that stage's own numbering (the page-table layer's).
    level_name : str
        That level's name in its format's specification (``PML4E``, ``SL-PDPE``, ``L1``), which
        is what the fault's text shows; empty where no entry was read.
    iova : int
        The input address of the whole translation.
    address : int
        The address that faulted in the faulting stage's input space: the IOVA for stage 1; the
        GPA/IPA for stage 2 (a stage-1 table's GPA for ``S1_TABLE``).
    entry_address : int or None
        Host-physical address the bad entry was read from.
    raw : int or None
        The bad entry's bits.
    s1_level : int or None
        For ``S1_TABLE``: the stage-1 level whose table could not be fetched.
    s1_level_name : str
        That stage-1 level's spec name, where the walker knows the stage-1 format.
    write : bool
        Whether the faulting access was a write.
    detail : str
        The page-table layer's explanation.
    reason : FaultReason or None
        Why the walk stopped, in the one fault vocabulary (``kind`` is its vendor-neutral class;
        each format's rules classify its own entries, so an impossible x86 type bit is already
        RESERVED_BITS and an invalid ARM descriptor INVALID_ENTRY).
    structure, vendor, structure_owner
        For a PASID-structure fault (``stage`` CONFIG): the structure, the hardware's code for
        it (a ``hardware.faults`` enum) and who owns the structure (a guest CD/GCR3 table is the
        guest's; a VT-d PASID table the host's).
    output_beyond_host : bool
        Stage 2 translated fine but to a host address outside host RAM (a bad stage-2 leaf).
    """

    stage: Stage
    kind: FaultKind
    site: FaultSite
    level: int | None
    iova: int
    address: int
    entry_address: int | None = None
    raw: int | None = None
    s1_level: int | None = None
    s1_top: bool = False
    write: bool = False
    detail: str = ""
    structure: str = ""
    vendor: enum.Enum | None = None
    structure_owner: str = "host"
    output_beyond_host: bool = False
    reason: FaultReason | None = None
    level_name: str = ""
    s1_level_name: str = ""

    @classmethod
    def from_walk(cls, stage: Stage, walk: Any, site: FaultSite, iova: int,
                  address: int, **extra: Any) -> NestedFault:
        """The fault of a failed single-stage ``walk``: kind, level, the bad entry's host address
        and bits, and the walker's explanation all come from the walk; ``extra`` sets the rest
        (or overrides, e.g. ``entry_address=None``)."""
        wf = walk.fault
        last = walk.steps[-1] if walk.steps else None
        fields = dict(
            entry_address=last.read_address if last else None,
            raw=last.raw if last else None,
            detail=wf.message,
            reason=wf.reason,
            level_name=walk.fmt.level_name(wf.level) if wf.level is not None else "",
        )
        fields.update(extra)
        return cls(stage, wf.reason.kind, site, wf.level, iova, address, **fields)

    @classmethod
    def from_structure(cls, fault: Any, iova: int) -> NestedFault:
        """A PASID-structure fault (``PasidFault``) as a nested-walk fault of stage CONFIG."""
        return cls(Stage.CONFIG, fault.kind, FaultSite.CONFIG, None, iova, fault.address,
                   detail=fault.detail, structure=fault.structure, vendor=fault.vendor,
                   structure_owner=fault.owner, reason=fault.reason)

    @property
    def code(self) -> str:
        """The structure fault's vendor code as the logs write it (``0x59``, ``C_BAD_CD (0x0a)``)."""
        return vendor_code_text(self.vendor)

    @property
    def owner(self) -> FaultOwner:
        """Stage-1 faults are the guest's; stage-2 faults are the host's; a bad PASID-structure
        entry belongs to whoever owns that structure."""
        if self.stage is Stage.CONFIG:
            return FaultOwner(self.structure_owner)
        return FaultOwner.GUEST if self.stage is Stage.STAGE1 else FaultOwner.HOST

    def smmu_event(self) -> SmmuEvent:
        """The SMMUv3 event record the fault raises.

        Stage-1 faults: S2=0, CLASS=IN. Stage-2 faults: S2=1 with CLASS=TT when hit while fetching
        a stage-1 table (QEMU passes ``SMMU_CLASS_TT`` when translating the TTB and table
        addresses), CLASS=CD when fetching a CD, CLASS=IN for the final IPA; IPA = the GPA that
        faulted. A bad structure entry is its own event (``C_BAD_CD``, ``C_BAD_SUBSTREAMID``).
        """
        if self.stage is Stage.CONFIG:
            event = self.vendor if isinstance(self.vendor, SmmuEventId) else SmmuEventId.C_BAD_CD
            return SmmuEvent.of(event, False, SmmuClass.CD, self.iova)
        event = SMMU_EVENT_OF_KIND[self.kind]
        if self.stage is Stage.STAGE2:
            klass = _SMMU_CLASS_OF_SITE.get(self.site, SmmuClass.IN)
            return SmmuEvent.of(event, True, klass, self.iova, self.address)
        return SmmuEvent.of(event, False, SmmuClass.IN, self.iova)

    def vtd_fault(self) -> VtdFault:
        """The VT-d scalable-mode fault reason (``hardware.faults`` tables).

        The model walks scalable mode, so an unmapped GPA is 0x79: a second-stage entry's
        not-present encoding is R=W=0, which Linux's table prints as a "Read/Write permission
        error"; the fault's ``note`` says so. A present second-stage entry lacking the access's
        permission is 0x85 (write) or 0x86 (read).
        """
        note = ""
        if self.stage is Stage.CONFIG:
            reason = self.vendor if isinstance(self.vendor, VtdReason) else VtdReason.SM_PTE_NOT_PRESENT
        elif self.stage is Stage.STAGE1:
            reason = VTD_S1_REASON[(self.kind, self.write)]
        elif self.output_beyond_host:
            reason = VtdReason.SL_BEYOND_MAX
        elif self.site is FaultSite.S1_TABLE:
            reason = VTD_S1_TABLE_REASON[(self.kind, self.s1_top)]
        else:
            reason = VTD_S2_ACCESS_REASON[(self.kind, self.write)]
            if self.kind is FaultKind.TRANSLATION:
                entry = self.level_name or "second-stage entry"
                note = f"R=W=0: the {entry} is not present"
        return VtdFault.of(reason, note)

    def amd_event(self) -> AmdEvent:
        """The AMD ``IO_PAGE_FAULT`` flags: PR (entry present), RW (write), PE (permission),
        RZ (reserved bits), GN (the request had a PASID, so the guest table was walked). TR stays
        clear: it marks an ATS translation request, and the model's accesses are DMA
        transactions. AMD has no stage bit; the logged address is the faulting GVA or GPA
        **(inferred from the event layout)**."""
        flags = AMD_FLAGS_OF_KIND[self.kind]
        if self.write:
            flags |= AmdEventFlag.RW
        if self.stage is Stage.STAGE1:
            flags |= AmdEventFlag.GN
        return AmdEvent(self.address, int(flags))

    def __str__(self) -> str:
        if self.stage is Stage.CONFIG:
            code = f" [{self.code}]" if self.code else ""
            return (
                f"{self.owner.value}'s fault: {self.structure} at {fmt_addr(self.address)}: {self.detail}{code} "
                f"(IOVA {fmt_addr(self.iova)})"
            )
        if self.level_name:
            lvl = f" at {self.level_name}"
        else:
            lvl = f" level {self.level}" if self.level is not None else ""
        where = ""
        if self.site is FaultSite.S1_TABLE:
            table = self.s1_level_name or f"level-{self.s1_level}"
            where = f" while fetching the stage-1 {table} table at GPA {fmt_addr(self.address)}"
        elif self.stage is Stage.STAGE2:
            where = f" translating GPA {fmt_addr(self.address)}"
        detail = f": {self.detail}" if self.detail else ""
        return (
            f"{self.owner.value}'s fault: stage-{int(self.stage)} {self.kind.value} fault{lvl}{where} "
            f"(IOVA {fmt_addr(self.iova)}){detail}"
        )
