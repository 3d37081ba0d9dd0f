"""Stage 1 over stage 2: the hardware two-dimensional walk, fault attribution, platform rules.

Ownership (rulebook §2.1): stage 1 (VT-d first stage, SMMU stage 1, AMD guest/v2 table) maps
gIOVA -> GPA and is **owned by the guest**; its table pointers, the root included, are GPAs.
Stage 2 (VT-d second stage, SMMU stage 2, AMD host/v1 table) maps GPA -> HPA and is **owned by
the host**: the iommufd nest parent (``IOMMU_HWPT_ALLOC_NEST_PARENT``) filled from an IOAS.

The 2-D walk (rulebook §2.2; QEMU ``smmu-common.c`` ``translate_table_addr_ipa`` translates every
stage-1 table address through stage 2, and VT-d's PGTT=NESTED PASID entry holds a GPA first-stage
pointer next to an HPA second-stage pointer): before each stage-1 entry can be read, the GPA of
the table holding it is walked through stage 2, and the entry is then loaded from *host* memory
at the resulting HPA; finally the output GPA is walked through stage 2. An n-level stage 1 over
an m-level stage 2 costs ``n*m + n + m = (n+1)(m+1) - 1`` page-table references (4x4 -> 24,
5x5 -> 35); a large leaf in either stage shortens its side. The data access itself is not
counted (the "25" sometimes quoted includes it).

Both stages are walked by the page-table layer's single walker (``iommu_lab.pagetable``): the
stage-1 walk runs with a *table-address hook* that the walker calls for every table it is about
to read, which is where the stage-2 walk is interposed. There is no second walk loop here.

With a PASID (``walk(iova, pasid=...)``) the walk first reads the PASID structures bound with
:meth:`Nested.bind_pasid` (``iommu_lab.pasid``): host-owned ones directly, guest-owned ones
(SMMUv3 CD table, AMD GCR3 table) each after a stage-2 walk of their GPA. :class:`NestParent`
allocates the stage 2 on an IOAS (``IOMMU_HWPT_ALLOC_NEST_PARENT``) and builds nested domains
on it; :class:`iommu_lab.dma.nested_iotlb.NestedIotlb` shows why a stage-2 change flushes every combined entry;
``iommu_lab.shadow`` is the software alternative, ``iommu_lab.guest`` the lookup aid.

Faults (rulebook §2.3): a stage-1 fault belongs to the guest, which fixes its own table; a
stage-2 fault belongs to the host, including one taken while fetching a stage-1 table. Linux
forwards to a guest's vEVENTQ only SMMU events with ``S2`` clear (``arm_smmu_handle_event``).
Each fault is named as the SMMUv3 event record (``EVT_ID_*``, ``EVTQ_1_S2``, ``EVTQ_1_CLASS``)
and the VT-d scalable-mode fault reason (``dma_remap_sm_fault_reasons`` in
drivers/iommu/intel/dmar.c) the hardware would log.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.core.faults import FaultKind
from iommu_lab.core.ranges import fmt_addr

__all__ = [
    "AmdEvent",
    "FaultKind",
    "FaultOwner",
    "FaultSite",
    "GuestMemory",
    "NestParent",
    "Nested",
    "NestedFault",
    "NestedRef",
    "NestedWalk",
    "NestingCapability",
    "SmmuEvent",
    "Stage",
    "VtdFault",
    "check_nest_pair",
    "nested_walk_refs",
]


# ----------------------------------------------------------------------------------------------
# Cost accounting
# ----------------------------------------------------------------------------------------------


def nested_walk_refs(n: int, m: int | Sequence[int]) -> int:
    """Page-table references of a cold 2-D walk: ``n`` stage-1 levels over an ``m``-level stage 2.

    ``(n+1)(m+1) - 1 = n*m + n + m`` (Bhargava et al., ASPLOS 2008; rulebook §2.2): each of the
    ``n`` stage-1 table addresses (root included) costs an ``m``-reference stage-2 walk before the
    stage-1 entry is read, and the output GPA costs one more stage-2 walk. ``m`` may be a list of
    the ``n + 1`` actual stage-2 walk depths when stage-2 large leaves shorten some of them.

    >>> nested_walk_refs(4, 4), nested_walk_refs(5, 5), nested_walk_refs(4, 5), nested_walk_refs(3, 3)
    (24, 35, 29, 15)
    """
    if n < 0:
        raise ValueError(f"stage-1 depth {n} is negative")
    if isinstance(m, int):
        if m < 0:
            raise ValueError(f"stage-2 depth {m} is negative")
        return (n + 1) * (m + 1) - 1
    depths = list(m)
    if len(depths) != n + 1:
        raise ValueError(
            f"need {n + 1} stage-2 walk depths (one per stage-1 table and one for the output), got {len(depths)}"
        )
    return n + sum(depths)


# ----------------------------------------------------------------------------------------------
# Fault attribution
# ----------------------------------------------------------------------------------------------


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


#: SMMUv3 event IDs (arm-smmu-v3.h ``EVT_ID_*``; QEMU smmuv3-internal.h ``SMMUEventType``).
SMMU_EVENT_IDS = {
    "C_BAD_SUBSTREAMID": 0x08,
    "F_CD_FETCH": 0x09,
    "C_BAD_CD": 0x0A,
    "F_WALK_EABT": 0x0B,
    "F_TRANSLATION": 0x10,
    "F_ADDR_SIZE": 0x11,
    "F_ACCESS": 0x12,
    "F_PERMISSION": 0x13,
}

#: ``EVTQ_1_CLASS`` values (QEMU ``SMMUTranslationClass``: CD, TT, IN).
SMMU_CLASS = {0: "CD", 1: "TT", 2: "IN"}


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
    """A VT-d scalable-mode fault reason: code and the string Linux prints for it."""

    code: int
    reason: str

    def __str__(self) -> str:
        return f"[fault reason 0x{self.code:02x}] {self.reason}"


#: The scalable-mode reasons this model can raise, verbatim from ``dma_remap_sm_fault_reasons``.
VTD_SM_REASONS = {
    0x51: "SM: Present bit in Directory Entry is clear",
    0x52: "SM: Non-zero reserved field set in PASID Directory Entry",
    0x59: "SM: Present bit in PASID Table Entry is clear",
    0x5A: "SM: Non-zero reserved field set in PASID Table Entry",
    0x5B: "SM: Invalid Scalable-Mode PASID Table Entry",
    0x71: "SM: Present bit in first-level paging entry is clear",
    0x72: "SM: Non-zero reserved field set in first-level paging entry",
    0x74: "SM: First-level entry address beyond MGAW in Nested translation",
    0x75: "SM: Read permission error in FL-PML4 entry in Nested translation",
    0x76: "SM: Read permission error in first-level paging entry in Nested translation",
    0x79: "SM: Read/Write permission error in second-level paging entry",
    0x7A: "SM: Non-zero reserved field set in second-level paging entry",
    0x80: "SM: Address in first-level translation is not canonical",
    0x83: "SM: Address beyond the DMA hardware max",
    0x84: "SM: Second-level entry address beyond the max",
    0x85: "SM: No write permission for Write/AtomicOp request",
    0x86: "SM: No read permission for Read/AtomicOp request",
}

#: AMD ``IO_PAGE_FAULT`` event flag bits (amd_iommu_types.h ``EVENT_FLAG_*`` and the spec's
#: GN/NX/US/PE/RZ positions between them).
AMD_EVENT_FLAGS = {
    "GN": 0x001,
    "NX": 0x002,
    "US": 0x004,
    "I": 0x008,
    "PR": 0x010,
    "RW": 0x020,
    "PE": 0x040,
    "RZ": 0x080,
    "TR": 0x100,
}


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
    write : bool
        Whether the faulting access was a write.
    detail : str
        The page-table layer's explanation.
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
    #: For a PASID-structure fault (``stage`` CONFIG): the structure, the hardware's code and
    #: who owns the structure (a guest CD/GCR3 table is the guest's; a VT-d PASID table the host's).
    structure: str = ""
    code: str = ""
    structure_owner: str = "host"
    #: Stage 2 translated fine but to a host address outside host RAM (a bad stage-2 leaf).
    output_beyond_host: bool = False

    @classmethod
    def from_walk(cls, stage: Stage, walk: Any, family: str, site: FaultSite, iova: int,
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
        )
        fields.update(extra)
        return cls(stage, _kind_of(wf, family), site, wf.level, iova, address, **fields)

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
        faulted.
        """
        if self.stage is Stage.CONFIG:
            name = self.code.split()[0] if self.code.startswith("C_") else "C_BAD_CD"
            return SmmuEvent(name, SMMU_EVENT_IDS[name], False, 0, self.iova, None)
        name = {
            FaultKind.TRANSLATION: "F_TRANSLATION",
            FaultKind.RESERVED: "F_TRANSLATION",  # an invalid descriptor encoding is a translation fault
            FaultKind.NON_CANONICAL: "F_TRANSLATION",
            FaultKind.PERMISSION: "F_PERMISSION",
            FaultKind.ADDRESS_SIZE: "F_ADDR_SIZE",
        }[self.kind]
        if self.stage is Stage.STAGE2:
            klass = {FaultSite.S1_TABLE: 1, FaultSite.CONFIG: 0}.get(self.site, 2)
            return SmmuEvent(name, SMMU_EVENT_IDS[name], True, klass, self.iova, self.address)
        return SmmuEvent(name, SMMU_EVENT_IDS[name], False, 2, self.iova, None)

    def vtd_fault(self) -> VtdFault:
        """The VT-d scalable-mode fault reason.

        The mapping from situation to code is read off the reason strings in
        ``dma_remap_sm_fault_reasons`` (drivers/iommu/intel/dmar.c) **(inferred)**: second-stage
        entries have no present bit (present = R|W), so a missing stage-2 mapping of a first-stage
        table is a read-permission error, 0x75 for the top (FL-PML4/PML5) table and 0x76 below.
        """
        if self.stage is Stage.CONFIG:
            code = int(self.code, 16) if self.code.startswith("0x") else 0x59
        elif self.stage is Stage.STAGE1:
            code = {
                FaultKind.TRANSLATION: 0x71,
                FaultKind.RESERVED: 0x72,
                FaultKind.NON_CANONICAL: 0x80,
                FaultKind.ADDRESS_SIZE: 0x83,
                FaultKind.PERMISSION: 0x85 if self.write else 0x86,
            }[self.kind]
        elif self.output_beyond_host:
            code = 0x84
        elif self.site is FaultSite.S1_TABLE:
            if self.kind is FaultKind.ADDRESS_SIZE:
                code = 0x74
            elif self.kind is FaultKind.RESERVED:
                code = 0x7A
            else:
                code = 0x75 if self.s1_top else 0x76
        else:
            code = {
                FaultKind.TRANSLATION: 0x79,
                FaultKind.PERMISSION: 0x79,
                FaultKind.RESERVED: 0x7A,
                FaultKind.ADDRESS_SIZE: 0x83,
                FaultKind.NON_CANONICAL: 0x83,
            }[self.kind]
        return VtdFault(code, VTD_SM_REASONS[code])

    def amd_event(self) -> AmdEvent:
        """The AMD ``IO_PAGE_FAULT`` flags: PR (entry present), RW, PE (permission), RZ (reserved),
        TR (translation, not transaction), GN (guest/PASID request). AMD has no stage bit; the
        logged address is the faulting GVA or GPA **(inferred from the event layout)**."""
        flags = AMD_EVENT_FLAGS["TR"]
        if self.kind in (FaultKind.PERMISSION, FaultKind.RESERVED):
            flags |= AMD_EVENT_FLAGS["PR"]
        if self.kind is FaultKind.PERMISSION:
            flags |= AMD_EVENT_FLAGS["PE"]
        if self.kind is FaultKind.RESERVED:
            flags |= AMD_EVENT_FLAGS["RZ"]
        if self.write:
            flags |= AMD_EVENT_FLAGS["RW"]
        if self.stage is Stage.STAGE1:
            flags |= AMD_EVENT_FLAGS["GN"]
        return AmdEvent(self.address, flags)

    def __str__(self) -> str:
        if self.stage is Stage.CONFIG:
            code = f" [{self.code}]" if self.code else ""
            return (
                f"{self.owner.value}'s fault: {self.structure} at {fmt_addr(self.address)}: {self.detail}{code} "
                f"(IOVA {fmt_addr(self.iova)})"
            )
        lvl = f" level {self.level}" if self.level is not None else ""
        where = ""
        if self.site is FaultSite.S1_TABLE:
            where = f" while fetching the stage-1 level-{self.s1_level} table at GPA {fmt_addr(self.address)}"
        elif self.stage is Stage.STAGE2:
            where = f" translating GPA {fmt_addr(self.address)}"
        detail = f": {self.detail}" if self.detail else ""
        return (
            f"{self.owner.value}'s fault: stage-{int(self.stage)} {self.kind.value} fault{lvl}{where} "
            f"(IOVA {fmt_addr(self.iova)}){detail}"
        )


# ----------------------------------------------------------------------------------------------
# References and the walk result
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NestedRef:
    """One memory reference of a nested translation.

    ``row``/``col`` place it on the 2-D walk grid: row ``i`` is stage-1 step ``i`` (row ``n`` is
    the output GPA), column ``j < m`` is stage-2 step ``j`` of translating that row's GPA, and
    column ``m`` (``col == s2_depth``) is the stage-1 entry read itself. PASID-structure reads
    use ``row = -1``.
    """

    seq: int
    stage: Stage
    level: int
    address: int
    raw: int
    decoded: Mapping[str, int]
    row: int
    col: int
    purpose: str
    table: int | None = None
    index: int | None = None
    gpa: int | None = None

    @property
    def label(self) -> str:
        return {Stage.CONFIG: "cfg", Stage.STAGE1: "S1", Stage.STAGE2: "S2"}[
            self.stage
        ] + f" L{self.level}"


@dataclass
class NestedWalk:
    """The result of :meth:`Nested.walk`: every reference in order, the output or the fault.

    Attributes
    ----------
    iova : int
    refs : tuple of NestedRef
        Every memory reference, in the order the hardware makes them.
    output : int or None
        Final host-physical address.
    gpa : int or None
        Intermediate (guest-physical) address stage 1 produced.
    fault : NestedFault or None
    n, m : int
        Stage-1 and stage-2 depths (levels walked from the root on a cold walk).
    pasid : int or None
        The PASID when the walk started from a PASID table (its reads are ``Stage.CONFIG`` refs).
    """

    iova: int
    refs: tuple[NestedRef, ...]
    output: int | None
    gpa: int | None
    fault: NestedFault | None
    n: int
    m: int
    s1_page_size: int | None = None
    s2_page_size: int | None = None
    pasid: int | None = None
    platform: str = ""

    @property
    def ok(self) -> bool:
        return self.fault is None

    @property
    def n_refs(self) -> int:
        """All references, PASID-structure reads included."""
        return len(self.refs)

    # The same names a single-stage ``Walk`` answers to, so code can treat both alike.
    @property
    def pa(self) -> int | None:
        """The host-physical output address (``output``), or None on a fault."""
        return self.output

    @property
    def references(self) -> int:
        """Memory references made (``n_refs``)."""
        return len(self.refs)

    @property
    def n_pagetable_refs(self) -> int:
        """References of the 2-D page-table walk itself (the (n+1)(m+1)-1 figure)."""
        return sum(1 for r in self.refs if r.row >= 0)

    @property
    def n_pasid_refs(self) -> int:
        """References made to resolve the PASID: structure reads plus the stage-2 walks of
        guest-owned structure addresses."""
        return sum(1 for r in self.refs if r.row < 0)

    def count(self, stage: Stage | int) -> int:
        """References of one stage within the 2-D walk (PASID-structure resolution excluded)."""
        return sum(1 for r in self.refs if r.stage == stage and r.row >= 0)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "pasid_structures": sum(1 for r in self.refs if r.stage is Stage.CONFIG),
            "pasid_stage2": sum(1 for r in self.refs if r.row < 0 and r.stage is Stage.STAGE2),
            "stage1": self.count(Stage.STAGE1),
            "stage2": self.count(Stage.STAGE2),
            "pagetable": self.n_pagetable_refs,
            "total": self.n_refs,
        }

    @property
    def page_size(self) -> int | None:
        """Largest page a combined IOTLB entry could cache: the smaller of the two leaves."""
        if self.s1_page_size is None or self.s2_page_size is None:
            return None
        return min(self.s1_page_size, self.s2_page_size)

    def grid(self):
        """The 2-D walk grid as a numpy array: ``grid[row, col]`` = 1-based order of the reference.

        Rows are stage-1 steps (last row: output GPA), columns stage-2 steps then the stage-1
        entry read; 0 where no reference was made (a large leaf or a fault cut the walk short).
        """
        import numpy as np

        rows = max([r.row for r in self.refs if r.row >= 0] + [self.n]) + 1
        cols = max([r.col for r in self.refs if r.row >= 0] + [self.m]) + 1
        g = np.zeros((rows, cols), dtype=np.int64)
        for k, r in enumerate(self.refs, start=1):
            if r.row >= 0:
                g[r.row, r.col] = k
        return g

    def to_dataframe(self):
        """One row per reference: seq, stage, level, grid row/col, address, raw, purpose."""
        from iommu_lab.core.frames import addr_frame

        return addr_frame(
            {
                "seq": [r.seq for r in self.refs],
                "stage": [int(r.stage) for r in self.refs],
                "level": [r.level for r in self.refs],
                "row": [r.row for r in self.refs],
                "col": [r.col for r in self.refs],
                "address": [r.address for r in self.refs],
                "raw": [r.raw for r in self.refs],
                "gpa": [r.gpa for r in self.refs],
                "purpose": [r.purpose for r in self.refs],
            },
            hex_columns=["address", "raw", "gpa"],
        )

    def _result_line(self) -> str:
        if self.fault:
            f = self.fault
            return f"FAULT — {f}\n  SMMUv3: {f.smmu_event()}\n  VT-d:   {f.vtd_fault()}"
        return f"IOVA {fmt_addr(self.iova)} -> GPA {fmt_addr(self.gpa or 0)} -> HPA {fmt_addr(self.output or 0)}"

    def __str__(self) -> str:
        c = self.counts
        head = (
            f"nested walk of IOVA {fmt_addr(self.iova)}: {c['pagetable']} page-table reference(s) "
            f"(S1 {c['stage1']}, S2 {c['stage2']}"
            + (f"; PASID resolution {self.n_pasid_refs}" if self.n_pasid_refs else "")
            + f"); cold formula for {self.n}x{self.m}: {nested_walk_refs(self.n, self.m)}"
        )
        lines = [head]
        for r in self.refs:
            pos = f"({r.row},{r.col})" if r.row >= 0 else "(cfg)"
            lines.append(
                f"  {r.seq:>3} {r.label:<7} {pos:<7} read {fmt_addr(r.address):<22} = {r.raw:#018x}  {r.purpose}"
            )
        lines.append("  " + self._result_line().replace("\n", "\n  "))
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = (
            f"fault={self.fault.kind.value}@S{int(self.fault.stage)}"
            if self.fault
            else f"hpa={fmt_addr(self.output or 0)}"
        )
        return f"<NestedWalk iova={fmt_addr(self.iova)} refs={self.n_refs} {state}>"

    plot = display.plot

    _repr_html_ = display.html


# ----------------------------------------------------------------------------------------------
# Guest-physical memory
# ----------------------------------------------------------------------------------------------


class GuestMemory:
    """Guest-physical memory as the host sees it: every GPA is backed, through stage 2, by host RAM.

    A guest's page tables live at GPAs; the bytes are in host memory at whatever HPA the host's
    stage-2 table maps that GPA to. This class gives a guest page table (``PageTable(fmt,
    memory=guest_mem)``) the page-table layer's memory interface at guest-physical addresses,
    and resolves every read and write through the stage-2 table — what the guest's own CPU
    accesses do through EPT/NPT/stage-2, and what a VMM does with ``address_space_rw`` on guest
    RAM. Changing stage 2 therefore changes what the guest sees, as on real hardware.

    Parameters
    ----------
    stage2 : PageTable
        The host's stage-2 table (GPA -> HPA).
    host : PhysicalMemory, optional
        Host RAM (default: the memory ``stage2`` keeps its own tables in).
    base, size : int
        The guest RAM range ``[base, base + size)`` in guest-physical space.
    backing : {"eager", "lazy"}
        ``"eager"`` (what QEMU does when it maps all guest RAM into the IOAS at start-up):
        allocate ``size`` bytes of host RAM now and map the whole range in stage 2 with the
        largest pages the format's ``iommu_pgsize`` split allows. ``"lazy"``: back each guest
        frame with a 4 KiB stage-2 mapping when the guest first allocates it (small pages
        everywhere, the case the (n+1)(m+1)-1 formula assumes). ``"external"``: stage 2
        already maps guest RAM (a nest parent filled from an IOAS, see :class:`NestParent`).
    """

    def __init__(
        self,
        stage2: Any,
        host: Any = None,
        *,
        base: int = 0,
        size: int = 16 << 20,
        name: str = "guest",
        backing: str = "eager",
    ) -> None:
        from iommu_lab.pagetable.memory import PhysicalMemory

        if backing not in ("eager", "lazy", "external"):
            raise ValueError(f"backing must be 'eager', 'lazy' or 'external', got {backing!r}")
        self.stage2 = stage2
        self.host = host if host is not None else stage2.memory
        self.name = name
        self.backing = backing
        # Frames of guest RAM are handed out by a PhysicalMemory used purely as the allocator of
        # guest-physical addresses; its own storage is never read for guest data.
        self._frames = PhysicalMemory(base, size, name=name)
        self.base = base
        self.size = size
        self.ram_hpa: int | None = None
        self.writes = 0
        self.reads = 0
        if backing == "eager":
            self.ram_hpa = int(self.host.alloc(size))
            stage2.map(base, self.ram_hpa, size, prot="rw")

    # -- bookkeeping delegated to the guest-physical allocator --------------------------------
    @property
    def last(self) -> int:
        return self.base + self.size - 1

    @property
    def bytes_used(self) -> int:
        return self._frames.bytes_used

    @property
    def bytes_free(self) -> int:
        return self._frames.bytes_free

    def contains(self, addr: int, nbytes: int = 8) -> bool:
        return self._frames.contains(addr, nbytes)

    def frames_for(self, nbytes: int) -> int:
        return self._frames.frames_for(nbytes)

    def allocations(self) -> list[tuple[int, int]]:
        return self._frames.allocations()

    def alloc(self, nbytes: int) -> int:
        return int(self.alloc_many(1, nbytes)[0])

    def alloc_many(self, count: int, nbytes: int):
        addrs = self._frames.alloc_many(count, nbytes)
        if self.backing == "lazy":
            k = self._frames.frames_for(nbytes) * 4096
            for gpa in addrs.tolist():
                self.back(int(gpa), k)
        return addrs

    def back(self, gpa: int, size: int) -> None:
        """Give ``[gpa, gpa + size)`` host RAM with stage-2 mappings of the smallest page size
        (the stage-2 granule), skipping granules already mapped."""
        g = int(getattr(self.stage2, "min_pgsize", 4096))
        lo = gpa - gpa % g
        for region in range(lo, gpa + size, g):
            if _translate_one(self.stage2, region) is None:
                hpa = int(self.host.alloc(g))
                self.stage2.map(region, hpa, g, prot="rw")

    def free(self, addr: int) -> None:
        self._frames.free(addr)

    # -- access through stage 2 ----------------------------------------------------------------
    def gpa_to_hpa(self, gpa: int) -> int:
        """Translate a GPA through stage 2 (the guest CPU's own access; not an IOMMU reference)."""
        if not self.contains(gpa):
            raise IommuError(
                "EFAULT",
                f"guest-physical address {fmt_addr(gpa)} is outside guest RAM "
                f"[{fmt_addr(self.base)}, {fmt_addr(self.last)}]",
            )
        hpa = _translate_one(self.stage2, gpa)
        if hpa is None:
            raise IommuError(
                "EFAULT",
                f"guest-physical address {fmt_addr(gpa)} is not mapped by the stage-2 table",
            )
        return hpa

    def read_u64(self, addr: int) -> int:
        self.reads += 1
        return self.host.read_u64(self.gpa_to_hpa(int(addr)))

    def write_u64(self, addr: int, value: int) -> None:
        self.writes += 1
        self.host.write_u64(self.gpa_to_hpa(int(addr)), value)

    def gather(self, addrs):
        """Vectorised ``read_u64``: each guest frame translated once through stage 2 (with the
        vectorised walker), then one gather from host memory. ``inside`` is False where the GPA
        is outside guest RAM, not mapped by stage 2, or outside host memory."""
        import numpy as np

        from iommu_lab.pagetable.walk import translate

        flat = np.asarray(addrs, dtype=np.uint64).reshape(-1)
        out = np.zeros(flat.shape, dtype=np.uint64)
        inside = np.zeros(flat.shape, dtype=bool)
        idx = np.nonzero((flat >= np.uint64(self.base)) & (flat <= np.uint64(self.last - 7)))[0]
        if idx.size:
            a = flat[idx]
            frames, which = np.unique(a >> np.uint64(12), return_inverse=True)
            s2 = self.stage2
            base, fault = translate(_fmt(s2), _memory(s2), _root(s2), frames << np.uint64(12))
            hpa = base[which] + (a & np.uint64(0xFFF))
            good = ~fault[which]
            words, _ = self.host.gather(hpa)
            good &= (hpa >= np.uint64(self.host.base)) & (hpa <= np.uint64(self.host.last - 7))
            out[idx[good]] = words[good]
            inside[idx[good]] = True
        self.reads += int(flat.size)
        shape = np.shape(addrs)
        return out.reshape(shape), inside.reshape(shape)

    def read_block(self, addr: int, nwords: int):
        """``nwords`` consecutive words: one stage-2 translation per 4 KiB guest frame."""
        import numpy as np

        parts = []
        a, left = int(addr), int(nwords)
        while left:
            n = min(left, (0x1000 - (a & 0xFFF)) // 8)
            parts.append(self.host.read_block(self.gpa_to_hpa(a), n))
            a += 8 * n
            left -= n
        self.reads += int(nwords)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)

    def scatter(self, addrs, values) -> None:
        for a, v in zip(list(addrs), list(values)):
            self.write_u64(int(a), int(v))

    def contiguous_view(self, addr: int, nwords: int):
        return None  # guest frames are not contiguous host storage; callers fall back to scatter

    def __repr__(self) -> str:
        how = (
            f"eager at HPA {fmt_addr(self.ram_hpa)}"
            if self.ram_hpa is not None
            else "lazy 4 KiB backing"
        )
        return (
            f"GuestMemory({self.name}: GPA [{fmt_addr(self.base)}, {fmt_addr(self.last)}], {how})"
        )


# ----------------------------------------------------------------------------------------------
# Adapters onto the page-table layer (attribute names in one place)
# ----------------------------------------------------------------------------------------------


def _fmt(pt: Any):
    return pt.fmt


def _root(pt: Any) -> int:
    return int(pt.root)


def _memory(pt: Any):
    return pt.memory


def _walk(
    pt: Any, addr: int, *, access=None, table_hook=None, root: int | None = None, memory: Any = None
):
    """The page-table layer's single walker (``iommu_lab.pagetable.walk.walk``) on ``pt``."""
    from iommu_lab.pagetable.walk import walk

    return walk(
        _fmt(pt),
        _memory(pt) if memory is None else memory,
        _root(pt) if root is None else root,
        addr,
        access=access,
        table_hook=table_hook,
    )


def _host_memory_for(stage2_fmt: Any):
    """Host RAM at 0x1000_0000 (the reference's worked walks), up to 64 GiB or what the stage-2
    format's output width can point at."""
    from iommu_lab.pagetable.memory import PhysicalMemory

    base = 0x1000_0000
    size = min(64 << 30, (1 << stage2_fmt.oas) - base)
    return PhysicalMemory(base, size, name="host")


def _translate_one(stage2: Any, gpa: int) -> int | None:
    w = _walk(stage2, gpa)
    return w.pa if w.ok else None


_REASON_KIND = {
    "NOT_PRESENT": FaultKind.TRANSLATION,
    "PERMISSION": FaultKind.PERMISSION,
    "OUT_OF_RANGE": FaultKind.ADDRESS_SIZE,
    "NON_CANONICAL": FaultKind.NON_CANONICAL,
    "RESERVED_BITS": FaultKind.RESERVED,
    "INVALID_ENTRY": FaultKind.TRANSLATION,
    "LEVEL_SKIP": FaultKind.TRANSLATION,
    "MISALIGNED_SUPERPAGE": FaultKind.RESERVED,
    "TABLE_ADDRESS": FaultKind.ADDRESS_SIZE,
    "TABLE_TRANSLATION": FaultKind.TRANSLATION,
}


def _kind_of(walk_fault: Any, family: str) -> FaultKind:
    kind = _REASON_KIND.get(walk_fault.reason.name, FaultKind.TRANSLATION)
    # An x86-style entry whose type bits are impossible at its level (PS=1 in a PML4E) is a
    # reserved-bit violation there; on ARM an invalid descriptor type is a translation fault.
    if walk_fault.reason.name == "INVALID_ENTRY" and family in ("x86-64", "vtd-ss", "amd-v1"):
        kind = FaultKind.RESERVED
    return kind


# ----------------------------------------------------------------------------------------------
# Platform rules
# ----------------------------------------------------------------------------------------------


class NestingCapability(enum.Enum):
    """How a platform (or a pair of tables) nests: the ``/dev/ioasid`` GET_INFO capability."""

    HARDWARE = "hardware"
    SOFTWARE = "software"
    NONE = "none"


#: Which stage-1 families may nest on which stage-2 families, and what the pairing is called.
_PAIRS = {
    ("x86-64", "vtd-ss"): ("VT-d", "first stage (x86-64 format) over second stage, PGTT=NESTED"),
    ("x86-64", "amd-v1"): (
        "AMD",
        "v2 guest table (x86-64 format, GCR3) over v1 host table, DTE GV=1",
    ),
    ("arm-lpae", "arm-lpae"): ("SMMUv3", "LPAE stage 1 over LPAE stage 2, STE Config=NESTED"),
}


def check_nest_pair(stage1_fmt: Any, stage2_fmt: Any) -> tuple[str, str]:
    """Refuse a stage-1/stage-2 pair the hardware cannot nest; return (family, description).

    Rules: the parent must be a stage-2 format (VT-d: ``NEST_PARENT`` goes only to
    ``intel_iommu_domain_alloc_second_stage``; ``intel_iommu_domain_alloc_first_stage`` rejects
    it); the child must be a stage-1 format of the same IOMMU family; a VT-d first stage must be
    4- or 5-level (``addr_width`` 48 or 57).
    """
    s1f, s2f = stage1_fmt.family, stage2_fmt.family
    if stage2_fmt.stage != 2:
        why = ""
        if s2f == "x86-64":
            why = (
                " On VT-d a nest parent must be a second-stage domain: "
                "intel_iommu_domain_alloc_first_stage() refuses IOMMU_HWPT_ALLOC_NEST_PARENT."
            )
        raise IommuError(
            "EOPNOTSUPP",
            f"{stage2_fmt.name} is a stage-{stage2_fmt.stage} format and cannot be a nest parent (stage 2); "
            f"stage-2 formats are vtd-ss-*, amd-v1-*, arm-lpae-s2-*.{why}",
        )
    if stage1_fmt.stage != 1:
        raise IommuError(
            "EINVAL",
            f"{stage1_fmt.name} is a stage-{stage1_fmt.stage} format; a nested (child) table must be a "
            f"stage-1 format: x86-64-* over vtd-ss/amd-v1, arm-lpae-s1-* over arm-lpae-s2-*",
        )
    pair = _PAIRS.get((s1f, s2f))
    if pair is None:
        allowed = "; ".join(f"{a} over {b} ({fam})" for (a, b), (fam, _) in _PAIRS.items())
        raise IommuError(
            "EOPNOTSUPP",
            f"no IOMMU nests a {s1f} stage 1 ({stage1_fmt.name}) on a {s2f} stage 2 ({stage2_fmt.name}); "
            f"hardware nesting pairs: {allowed}",
        )
    return pair


# ----------------------------------------------------------------------------------------------
# The nested pair
# ----------------------------------------------------------------------------------------------


class Nested:
    """A guest stage-1 table nested on a host stage-2 table (one nested HWPT on its parent).

    Mirrors iommufd's ``IOMMU_HWPT_ALLOC`` of a nested HWPT (``IOMMU_HWPT_DATA_VTD_S1``,
    ``_ARM_SMMUV3``, ``_AMD_GUEST``) on a ``NEST_PARENT`` paging HWPT: the parent is the host's
    stage 2 (GPA -> HPA), the child the guest's stage 1 (IOVA -> GPA) whose tables are in guest
    memory. Build one from two page tables, with :meth:`build` from two formats, or with
    :meth:`for_platform` from the catalogue.

    Parameters
    ----------
    stage1 : PageTable
        The guest's table; its memory must be a :class:`GuestMemory` backed through ``stage2``
        (the tables are at GPAs and their bytes live in host RAM).
    stage2 : PageTable
        The host's nest-parent table over host memory.
    platform : Platform, optional
        Where the pair runs (names the fault records and the capability).
    """

    def __init__(self, stage1: Any, stage2: Any, *, platform: Any = None) -> None:
        self.family, self.description = check_nest_pair(_fmt(stage1), _fmt(stage2))
        mem = _memory(stage1)
        if not isinstance(mem, GuestMemory):
            raise IommuError(
                "EINVAL",
                f"the stage-1 table's memory is {mem!r}, not guest-physical memory backed by the stage-2 "
                f"table; create it with PageTable(fmt, memory=GuestMemory(stage2)) (or use "
                f"Nested.build(...)) so its table pages are GPAs whose bytes live in host RAM",
            )
        if mem.stage2 is not stage2:
            raise IommuError(
                "EINVAL",
                "the stage-1 table's guest memory is backed by a different stage-2 table than the one "
                "given; a nested HWPT must use the parent that maps the guest's RAM",
            )
        self.stage1 = stage1
        self.stage2 = stage2
        self.platform = platform
        self.pasid_table: Any = None
        self._pasid_roots: dict[int, int] = {}
        #: The :class:`NestParent` this pair was built on, synced with its IOAS before each walk.
        self.parent: Any = None
        self._check_widths()

    def _check_widths(self) -> None:
        f1, f2 = _fmt(self.stage1), _fmt(self.stage2)
        gm: GuestMemory = _memory(self.stage1)
        if gm.last >> f2.va_bits:
            raise IommuError(
                "EINVAL",
                f"guest RAM ends at GPA {fmt_addr(gm.last)}, beyond the {f2.va_bits}-bit input of the "
                f"stage-2 format {f2.name}",
            )
        if f1.oas < 1 or f1.oas > 64:  # pragma: no cover - formats guarantee this
            raise IommuError("EINVAL", f"{f1.name} has output width {f1.oas}")

    # -- construction helpers ---------------------------------------------------------------
    @classmethod
    def build(
        cls,
        stage1_format: Any,
        stage2_format: Any,
        *,
        guest_ram: int = 16 << 20,
        guest_base: int = 0,
        backing: str = "eager",
        host: Any = None,
        platform: Any = None,
    ) -> Nested:
        """Host memory, a stage-2 table mapping guest RAM, and an empty guest stage-1 table.

        ``backing="eager"`` maps all of guest RAM in stage 2 at start-up (as QEMU maps guest RAM
        into the nest parent's IOAS) with the largest pages ``iommu_pgsize`` allows;
        ``"lazy"`` backs each guest table page with its own 4 KiB stage-2 mapping.
        """
        from iommu_lab.hardware import formats as _formats
        from iommu_lab.pagetable.table import PageTable

        f1, f2 = _formats.get(stage1_format), _formats.get(stage2_format)
        check_nest_pair(f1, f2)
        host = host if host is not None else _host_memory_for(f2)
        s2 = PageTable(f2, memory=host)
        gm = GuestMemory(s2, host, base=guest_base, size=guest_ram, backing=backing)
        s1 = PageTable(f1, memory=gm)
        return cls(s1, s2, platform=platform)

    @classmethod
    def for_platform(
        cls, platform: Any, stage1: Any = None, stage2: Any = None, **kwargs: Any
    ) -> Nested:
        """The nested pair a catalogue platform offers for hardware nesting.

        Raises ``EOPNOTSUPP`` on platforms without hardware nesting, saying what they offer
        instead: POWER (TCE windows) has no second stage at all; virtio-iommu has only MAP/UNMAP
        requests, so the host can only shadow (use :class:`iommu_lab.shadow.ShadowNesting`).
        """
        from iommu_lab.hardware.platform import NestingSupport, platforms

        p = platforms.get(platform) if isinstance(platform, str) else platform
        if p.nesting is NestingSupport.NONE:
            raise UnsupportedError(
                f"platform {p.name!r} ({p.title}) has no nesting: it offers no second stage, so there is "
                f"neither hardware nesting nor a stage 2 a VMM could shadow into; map guest IOVAs "
                f"directly (e.g. H_PUT_TCE on POWER)"
            )
        if p.nesting is NestingSupport.SOFTWARE:
            raise UnsupportedError(
                f"platform {p.name!r} ({p.title}) has no hardware nesting: its guests send MAP/UNMAP "
                f"requests and never write a table the IOMMU walks, so nesting is software only — "
                f"the host composes the guest's mappings into one shadow table "
                f"(iommu_lab.shadow.ShadowNesting / Nested.shadow())"
            )
        f1 = stage1 if stage1 is not None else p.format_name("stage1")
        f2 = stage2 if stage2 is not None else p.format_name("stage2")
        return cls.build(f1, f2, platform=p, **kwargs)

    # -- properties -------------------------------------------------------------------------
    @property
    def capability(self) -> NestingCapability:
        return NestingCapability.HARDWARE

    @property
    def guest_memory(self) -> GuestMemory:
        return _memory(self.stage1)

    @property
    def host_memory(self) -> Any:
        return _memory(self.stage2)

    @property
    def n(self) -> int:
        return _fmt(self.stage1).levels

    @property
    def m(self) -> int:
        return _fmt(self.stage2).levels

    def map(self, iova: int, gpa: int, size: int, prot: str = "rw") -> None:
        """The guest maps IOVA -> GPA in its stage-1 table (guest PTE writes into guest RAM)."""
        self.stage1.map(iova, gpa, size, prot=prot)

    def unmap(self, iova: int, size: int):
        return self.stage1.unmap(iova, size)

    # -- PASID binding -------------------------------------------------------------------------
    def bind_pasid(
        self, pasid: int, *, binding: Any = None, pasid_bits: int | None = None, stage1: Any = None
    ):
        """Bind a stage-1 table (default: this pair's) to ``pasid`` and return the PASID structure.

        ``binding`` defaults to the family's native mode: VT-d page-table binding (a host-owned
        scalable-mode PASID table in host memory, entry PGTT=NESTED with the guest's FSPTPTR
        (a GPA) and the parent's SSPTPTR (an HPA), as ``pasid_pte_config_nestd`` writes it);
        SMMUv3 and AMD PASID-table binding (the guest's CD / GCR3 table in guest memory, found
        through an STE / DTE in host memory that the host writes once). Page-table binding on
        SMMUv3/AMD puts the CD/GCR3 table in host memory instead (what the RFC's per-PASID
        ``BIND_PGTABLE`` would have done); PASID-table binding on VT-d is refused: its hardware
        never walks a guest PASID table (QEMU shadows guest PASID entries, rulebook §4.1).
        """
        from iommu_lab.nesting import pasid as _p

        family = self.family
        if binding is None:
            binding = _p.Binding.PGTABLE if family == "VT-d" else _p.Binding.PASID_TABLE
        binding = _p.Binding(binding)
        s1 = stage1 if stage1 is not None else self.stage1
        if s1 is not self.stage1:
            check_nest_pair(_fmt(s1), _fmt(self.stage2))
        root = _root(s1)
        if self.pasid_table is None:
            owner_mem = self.host_memory if binding is _p.Binding.PGTABLE else self.guest_memory
            if family == "VT-d":
                if binding is _p.Binding.PASID_TABLE:
                    raise UnsupportedError(
                        "VT-d hardware never walks a guest-owned PASID table: nested translation is set up "
                        "per PASID in the host's scalable-mode PASID table (PGTT=NESTED), with QEMU shadowing "
                        "the guest's PASID entries; use binding='pgtable'"
                    )
                self.pasid_table = _p.VtdPasidTable(owner_mem, pasid_bits or 20)
            elif family == "SMMUv3":
                bits = pasid_bits or 20
                self.pasid_table = _p.SmmuCdTable(owner_mem, bits, binding=binding)
                self.pasid_table.make_ste(self.host_memory, s2ttb=_root(self.stage2))
            else:
                self.pasid_table = _p.AmdGcr3Table(owner_mem, pasid_bits or 16, binding=binding)
                self.pasid_table.make_dte(
                    self.host_memory,
                    host_root=_root(self.stage2),
                    host_mode=_fmt(self.stage2).levels,
                    gpt_5level=_fmt(s1).levels == 5,
                )
        t = self.pasid_table
        if family == "VT-d":
            t.set_entry(
                pasid,
                _p.Pgtt.NESTED,
                fsptptr=root,
                ssptptr=_root(self.stage2),
                flpm=1 if _fmt(s1).levels == 5 else 0,
                aw=_fmt(self.stage2).levels - 2,
            )
        elif family == "SMMUv3":
            f1 = _fmt(s1)
            t.set_cd(pasid, root, ias=f1.va_bits, granule=1 << f1.granule_lg2)
        else:
            t.set_gcr3(pasid, root)
        self._pasid_roots[pasid] = root
        return t

    # -- the 2-D walk -------------------------------------------------------------------------
    def walk(self, iova: int, *, access: Any = "r", pasid: int | None = None) -> NestedWalk:
        """Translate ``iova`` the way the IOMMU does on a cold IOTLB: the full 2-D walk.

        With ``pasid``, the PASID structures are read first (host-owned ones directly,
        guest-owned ones each through a stage-2 walk) and the stage-1 root comes from the entry
        found there, not from this object.
        """
        if self.parent is not None:
            self.parent.sync()
        refs: list[NestedRef] = []
        f1, f2 = _fmt(self.stage1), _fmt(self.stage2)
        host = self.host_memory
        s1_root = _root(self.stage1)
        n, m = f1.levels, f2.levels

        def add(
            stage, level, address, raw, decoded, row, col, purpose, table=None, index=None, gpa=None
        ):
            refs.append(
                NestedRef(
                    len(refs),
                    stage,
                    level,
                    address,
                    raw,
                    decoded,
                    row,
                    col,
                    purpose,
                    table,
                    index,
                    gpa,
                )
            )

        def add_s2(w2, row, purpose, gpa):
            for j, st in enumerate(w2.steps):
                add(
                    Stage.STAGE2,
                    st.level,
                    st.read_address,
                    st.raw,
                    st.entry.fields,
                    row,
                    j,
                    purpose,
                    st.table,
                    st.index,
                    gpa,
                )

        def result(gpa=None, out=None, fault=None, s1ps=None, s2ps=None) -> NestedWalk:
            return NestedWalk(
                iova,
                tuple(refs),
                out,
                gpa,
                fault,
                n,
                m,
                s1ps,
                s2ps,
                pasid,
                getattr(self.platform, "name", "") or self.family,
            )

        if pasid is not None:
            look = self._pasid_lookup(pasid)
            for r in look.refs:
                st = Stage.STAGE2 if r.kind == "stage2" else Stage.CONFIG
                add(
                    st,
                    r.level,
                    r.host_address,
                    r.raw & ((1 << 64) - 1),
                    dict(r.decoded),
                    -1,
                    -1,
                    f"{r.structure}" if r.kind == "pasid" else f"stage-2 walk of {r.structure}",
                    None,
                    r.index,
                    r.address if r.kind == "stage2" else None,
                )
            if not look.ok:
                pf = look.fault
                if isinstance(pf, NestedFault):
                    return result(fault=replace(pf, iova=iova))
                return result(
                    fault=NestedFault(
                        Stage.CONFIG,
                        FaultKind.RESERVED
                        if "reserved" in pf.reason.lower()
                        else FaultKind.TRANSLATION,
                        FaultSite.CONFIG,
                        None,
                        iova,
                        pf.address,
                        None,
                        None,
                        detail=pf.reason,
                        structure=pf.structure,
                        code=pf.code,
                        structure_owner=pf.owner,
                    )
                )
            if look.stage1_root is None:
                # PGTT=PASS_THROUGH: no translation; PGTT=SECOND_STAGE: stage 2 alone walks the IOVA.
                if "PASS_THROUGH" in look.mode:
                    return result(gpa=iova, out=iova)
                w2 = _walk(self.stage2, iova, access=access, root=look.stage2_root)
                add_s2(w2, 0, "second-stage-only walk of the IOVA (PGTT=SECOND_STAGE)", iova)
                if not w2.ok:
                    return result(
                        gpa=iova,
                        fault=NestedFault.from_walk(
                            Stage.STAGE2, w2, f2.family, FaultSite.INPUT, iova, iova,
                            entry_address=None, raw=None,
                        ),
                    )
                return result(gpa=iova, out=w2.pa, s2ps=w2.page_size)
            s1_root = look.stage1_root

        # Stage 1, through the page-table layer's walker; its seam translates every entry address.
        last_s2: list[Any] = [None]

        def through_stage2(entry_gpa: int, level: int):
            w2 = _walk(self.stage2, entry_gpa, access="r")
            last_s2[0] = w2
            if not w2.ok:
                from iommu_lab.pagetable.walk import TableFetchError

                raise TableFetchError(w2)
            return w2.pa, w2

        w1 = _walk(
            self.stage1, iova, access=access, table_hook=through_stage2, root=s1_root, memory=host
        )
        for i, st in enumerate(w1.steps):
            add_s2(
                st.via,
                i,
                f"stage-2 walk of the S1 {st.name} table (GPA {fmt_addr(st.table)})",
                st.entry_address,
            )
            add(
                Stage.STAGE1,
                st.level,
                st.read_address,
                st.raw,
                st.entry.fields,
                i,
                m,
                f"S1 {st.name} entry [{st.index}]",
                st.table,
                st.index,
            )
        if not w1.ok:
            wf = w1.fault
            if wf.reason.name == "TABLE_TRANSLATION":
                w2 = wf.detail
                row = len(w1.steps)
                gpa = w2.iova
                add_s2(
                    w2,
                    row,
                    f"stage-2 walk of the S1 {f1.level_name(wf.level)} table (GPA {fmt_addr(gpa)})",
                    gpa,
                )
                return result(
                    fault=NestedFault.from_walk(
                        Stage.STAGE2, w2, f2.family, FaultSite.S1_TABLE, iova, gpa,
                        s1_level=wf.level, s1_top=wf.level == f1.top_level, write=False,
                    )
                )
            if wf.reason.name == "TABLE_ADDRESS":
                # Stage 2 translated the table's GPA to an HPA outside host RAM: the host's stage-2
                # leaf is bad (VT-d: "Second-level entry address beyond the max").
                w2 = last_s2[0]
                gpa = w2.iova if w2 is not None else 0
                if w2 is not None:
                    add_s2(
                        w2,
                        len(w1.steps),
                        f"stage-2 walk of the S1 table (GPA {fmt_addr(gpa)})",
                        gpa,
                    )
                return result(
                    fault=NestedFault(
                        Stage.STAGE2,
                        FaultKind.ADDRESS_SIZE,
                        FaultSite.S1_TABLE,
                        w2.result.level if w2 is not None and w2.ok else None,
                        iova,
                        gpa,
                        w2.pa if w2 is not None else None,
                        None,
                        s1_level=wf.level,
                        s1_top=wf.level == f1.top_level,
                        detail=wf.message,
                        output_beyond_host=True,
                    )
                )
            return result(
                fault=NestedFault.from_walk(
                    Stage.STAGE1, w1, f1.family, FaultSite.INPUT, iova, iova, write=_is_write(access)
                )
            )
        gpa = w1.pa
        w2 = _walk(self.stage2, gpa, access=access)
        add_s2(w2, len(w1.steps), f"stage-2 walk of the output GPA {fmt_addr(gpa)}", gpa)
        if not w2.ok:
            return result(
                gpa=gpa,
                fault=NestedFault.from_walk(
                    Stage.STAGE2, w2, f2.family, FaultSite.OUTPUT, iova, gpa, write=_is_write(access)
                ),
                s1ps=w1.page_size,
            )
        return result(gpa=gpa, out=w2.pa, s1ps=w1.page_size, s2ps=w2.page_size)

    def _pasid_lookup(self, pasid: int):
        from iommu_lab.nesting import pasid as _p

        if self.pasid_table is None:
            raise IommuError("ENOENT", f"no PASID table: bind_pasid({pasid:#x}) first")
        t = self.pasid_table
        if t.binding is _p.Binding.PGTABLE:
            return t.lookup(pasid)

        # Guest-owned structure: each fetch is a stage-2 walk of its GPA first.
        def translate(gpa: int):
            w2 = _walk(self.stage2, gpa, access="r")
            s2refs = [
                _p.PasidRef(
                    f"{type(t).__name__} @GPA {fmt_addr(gpa)}",
                    st.level,
                    st.index,
                    gpa,
                    st.read_address,
                    st.raw,
                    dict(st.entry.fields),
                    None,
                    "stage2",
                )
                for st in w2.steps
            ]
            if not w2.ok:
                raise _p.StructureFetchFault(
                    NestedFault.from_walk(
                        Stage.STAGE2, w2, _fmt(self.stage2).family, FaultSite.CONFIG, 0, gpa,
                        entry_address=None, raw=None,
                    ),
                    s2refs,
                )
            return w2.pa, s2refs

        return t.lookup(pasid, translate=translate, host_memory=self.host_memory)

    def translate(self, iova: int, *, access: Any = "r", pasid: int | None = None) -> int:
        """The host-physical address for ``iova``, or ``IommuError("EFAULT")`` naming the fault."""
        w = self.walk(iova, access=access, pasid=pasid)
        if w.fault:
            raise IommuError("EFAULT", str(w.fault))
        return int(w.output)

    # -- the other views ------------------------------------------------------------------------
    def lookup(self, iova: int, *, access: Any = "r"):
        """Explain, entry by entry, how the hardware reads the guest's table for ``iova``
        (see :func:`iommu_lab.guest.lookup`)."""
        from iommu_lab.nesting.explain import lookup

        return lookup(self, iova, access=access)

    def shadow(self, **kwargs: Any):
        """Software nesting: compose both stages into one host-format table
        (see :class:`iommu_lab.shadow.ShadowNesting`)."""
        from iommu_lab.nesting.shadow import ShadowNesting

        return ShadowNesting.from_nested(self, **kwargs)

    def __repr__(self) -> str:
        f1, f2 = _fmt(self.stage1), _fmt(self.stage2)
        return f"<Nested {self.family}: {f1.name} (guest, {f1.levels} levels) over {f2.name} (host, {f2.levels} levels)>"

    _repr_html_ = display.html


def _is_write(access: Any) -> bool:
    if access is None:
        return False
    if isinstance(access, str):
        return "w" in access.lower()
    return bool(int(access) & 2)


# ----------------------------------------------------------------------------------------------
# IOAS integration: a nest parent filled from an IOAS
# ----------------------------------------------------------------------------------------------


class NestParent:
    """A nest-parent paging domain on an IOAS (``IOMMU_HWPT_ALLOC`` with
    ``IOMMU_HWPT_ALLOC_NEST_PARENT``, ``pt_id`` = the IOAS).

    Like ``iopt_table_add_domain`` + ``iopt_fill_domain`` it holds every area of the IOAS, and
    follows later maps and unmaps (:meth:`sync`, run before every walk of a nested domain built
    on it): the IOAS's IOVAs are the guest's GPAs. A kernel nest parent is allocated by the user,
    never the domain auto-created at attach ("an HWPT that was auto-created at attach cannot be
    a parent"), so it is a table of its own beside ``ioas.domains``. The IOAS's pinned pages are
    not readable storage in the model, so the parent backs each area with a block of its own host
    memory (what ``pin_user_pages`` would have found), where the guest's tables then live.
    The parent must be a stage-2 format (VT-d: ``intel_iommu_domain_alloc_second_stage``), and
    only platforms with hardware nesting allocate one; the others report ``EOPNOTSUPP`` and say
    what they offer.

    Parameters
    ----------
    ioas : IOAS
        An IOAS made with ``IOAS.from_platform(p)`` (the platform decides the capability).
    fmt : format name, optional
        Default: the platform's ``stage2`` format.
    """

    def __init__(self, ioas: Any, *, fmt: Any = None, platform: Any = None) -> None:
        from iommu_lab.hardware import formats as _formats
        from iommu_lab.pagetable.table import PageTable

        p = platform if platform is not None else getattr(ioas, "_platform", None)
        cap = ioas.info().capabilities.nesting
        if cap != "hardware":
            name = getattr(p, "name", "this IOAS")
            offer = (
                "software nesting only: shadow the guest's mappings (iommu_lab.shadow.ShadowNesting)"
                if cap == "software"
                else "no nesting at all"
            )
            raise UnsupportedError(
                f"{name} cannot allocate a nest parent (IOMMU_HWPT_ALLOC_NEST_PARENT): it reports {offer}"
            )
        if fmt is None:
            if p is None:
                raise IommuError(
                    "EINVAL", "the IOAS has no platform; give the stage-2 format (fmt=...)"
                )
            fmt = p.format_name("stage2")
        f2 = _formats.get(fmt)
        if f2.stage != 2:
            raise IommuError(
                "EOPNOTSUPP",
                f"{f2.name} is a stage-{f2.stage} format; a nest parent must be a stage-2 (second-stage) "
                f"domain, as intel_iommu_domain_alloc_first_stage() refuses NEST_PARENT",
            )
        self.ioas = ioas
        self.platform = p
        self.table = PageTable(f2, memory=_host_memory_for(f2))
        #: (iova, length, prot) of each area mapped -> HPA of its first byte
        self._areas: dict[tuple[int, int, int], int] = {}
        #: host blocks: HPA -> (first IOVA it backs, bytes)
        self._blocks: dict[int, tuple[int, int]] = {}
        self.sync()

    @property
    def capability(self) -> NestingCapability:
        return NestingCapability.HARDWARE

    @property
    def host_memory(self) -> Any:
        return self.table.memory

    def sync(self) -> None:
        """Follow the IOAS: unmap areas that are gone, map new ones (``iopt_area_fill_domains``
        / ``iopt_area_unfill_domains``). A piece left by a partial unmap keeps its bytes: it is
        mapped to the same host block, as pinned pages stay where they are."""
        want = {(a.iova, a.length, int(a.prot) & 3) for a in self.ioas.areas}
        gone = [k for k in self._areas if k not in want]
        new = sorted(k for k in want if k not in self._areas)
        for k in gone:
            if k[2]:
                self.table.unmap(k[0], k[1])
            del self._areas[k]
        for iova, length, prot in new:
            hpa = None
            for base, (b_iova, b_len) in self._blocks.items():
                if b_iova <= iova and iova + length <= b_iova + b_len:
                    hpa = base + (iova - b_iova)
                    break
            if hpa is None:
                hpa = int(self.host_memory.alloc(length))
                self._blocks[hpa] = (iova, length)
            if prot:
                self.table.map(iova, hpa, length, prot=prot)
            self._areas[(iova, length, prot)] = hpa
        for base, (b_iova, b_len) in list(self._blocks.items()):
            if not any(b_iova <= k[0] < b_iova + b_len for k in self._areas):
                self.host_memory.free(base)
                del self._blocks[base]

    def nested(
        self,
        stage1_format: Any = None,
        *,
        guest_base: int | None = None,
        guest_size: int | None = None,
    ) -> Nested:
        """A nested domain on this parent (``IOMMU_HWPT_ALLOC`` with a stage-1 ``data_type``).

        The guest's RAM is an IOAS area (default: the first); its stage-1 tables are allocated
        in it and reached through this parent.
        """
        from iommu_lab.hardware import formats as _formats
        from iommu_lab.pagetable.table import PageTable

        self.sync()
        if guest_base is None:
            areas = self.ioas.areas
            if not areas:
                raise IommuError(
                    "ENOENT",
                    "the IOAS maps no guest RAM yet; map it (ioas.map) before nesting on it",
                )
            guest_base, guest_size = areas[0].iova, areas[0].length
        if guest_size is None:
            raise IommuError("EINVAL", "give guest_size with guest_base")
        if stage1_format is None:
            if self.platform is None:
                raise IommuError("EINVAL", "the IOAS has no platform; give the stage-1 format")
            stage1_format = self.platform.format_name("stage1")
        gm = GuestMemory(
            self.table, self.host_memory, base=guest_base, size=guest_size, backing="external"
        )
        s1 = PageTable(_formats.get(stage1_format), memory=gm)
        nested = Nested(s1, self.table, platform=self.platform)
        nested.parent = self
        return nested

    def __repr__(self) -> str:
        return f"<NestParent {self.table.fmt.name} on IOAS with {len(self.ioas.areas)} area(s)>"


# ----------------------------------------------------------------------------------------------
# Caches: the combined IOTLB and why a stage-2 change flushes everything
# ----------------------------------------------------------------------------------------------
