"""PASID-structure lookups: the references a resolution makes, its faults, and the one walker.

The results of resolving a PASID (:class:`PasidLookup`, one :class:`PasidRef` per entry read,
a :class:`PasidFault` when the hardware stops) and the walker every structure shares
(:func:`walk_structure` reads, :func:`install_path` writes) over the levels a structure
declares in :mod:`iommu_lab.hardware.structures`. The structures themselves (VT-d scalable-mode
root/context/PASID tables, SMMUv3 CD tables, AMD GCR3 tables) are in
:mod:`iommu_lab.nesting.pasid`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iommu_lab.core import display
from iommu_lab.core.bits import EntryLayout
from iommu_lab.core.faults import FaultKind, FaultReason
from iommu_lab.core.ranges import fmt_addr
from iommu_lab.core.words import plural
from iommu_lab.hardware.faults import vendor_code_text
from iommu_lab.hardware.platform import Stage1Binding as Binding
from iommu_lab.hardware.structures import Pgtt, StructureLevel

__all__ = ["PasidFault", "PasidLookup", "PasidRef", "RefKind", "StructureFetchFault", "Translate",
           "install_path", "mem_alloc", "walk_structure"]


def mem_alloc(memory: Any, size: int, align: int | None = None) -> int:
    """Allocate zeroed, naturally aligned bytes and return the block's physical address.

    ``PhysicalMemory.alloc`` hands out power-of-two runs of 4 KiB frames aligned to their size,
    as ``iommu_alloc_pages_node`` does, so asking for ``max(size, align)`` gives both.
    """
    return int(memory.alloc(max(size, align or size)))


# Resolution results


class RefKind(str, enum.Enum):
    """What a reference made while resolving a PASID read (a ``str`` enum: ``== "pasid"`` holds)."""

    PASID = "pasid"  #: a PASID-structure entry
    STAGE2 = "stage2"  #: a stage-2 entry read to reach a guest-owned structure

    def __str__(self) -> str:
        return self.value


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
    kind: RefKind = RefKind.PASID


@dataclass(frozen=True)
class PasidFault:
    """A fault while resolving the PASID: which structure, why, and the hardware's code for it.

    ``reason`` is the one fault vocabulary's reason (``NOT_PRESENT`` for a clear valid bit,
    ``RESERVED_BITS``, ``OUT_OF_RANGE`` for an SSID beyond the table); ``vendor`` the code the
    hardware logs (:mod:`iommu_lab.hardware.faults`); ``detail`` the spec's words.
    """

    structure: str
    detail: str
    address: int
    vendor: enum.Enum | None = None
    owner: str = "host"
    reason: FaultReason = FaultReason.NOT_PRESENT

    @property
    def kind(self) -> FaultKind:
        return self.reason.kind

    @property
    def code(self) -> str:
        """The vendor code as the logs write it (``0x59``, ``C_BAD_CD (0x0a)``)."""
        return vendor_code_text(self.vendor)

    def __str__(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        return f"{self.owner} fault in {self.structure} at {fmt_addr(self.address)}: {self.detail}{code}"


@dataclass(frozen=True)
class PasidLookup:
    """The result of resolving one PASID: references made, the entry found, what it selects.

    ``stage1_root`` is the stage-1 table pointer the entry holds (a GPA in nesting);
    ``pgtt`` the translation type the entry selects, in VT-d's PGTT words (an SMMUv3 STE with
    Config=NESTED and an AMD DTE with GV=1 select NESTED); ``mode`` says the same as a word for
    people ("PGTT=NESTED", "CD valid, TTB0").
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
    pgtt: Pgtt | None = None

    @property
    def ok(self) -> bool:
        return self.fault is None

    @property
    def n_refs(self) -> int:
        return len(self.refs)

    @property
    def n_pasid_refs(self) -> int:
        return sum(1 for r in self.refs if r.kind is RefKind.PASID)

    def _rows(self) -> list[tuple]:
        return [
            (i, str(r.kind), r.structure, r.level, r.index, fmt_addr(r.address),
             fmt_addr(r.host_address), f"{r.raw:#x}")
            for i, r in enumerate(self.refs)
        ]

    def __str__(self) -> str:
        head = f"{self.family} PASID {self.pasid:#x} ({self.binding.value} binding): {plural(self.n_refs, 'reference')}"
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
                "kind": [str(r.kind) for r in self.refs],
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


#: ``translate(gpa) -> (hpa, stage2_refs)``; raises :class:`StructureFetchFault` to report a
#: stage-2 fault.
Translate = Callable[[int], "tuple[int, Sequence[PasidRef]]"]


class _Abort(Exception):
    def __init__(self, fault: Any) -> None:
        super().__init__(str(fault))
        self.fault = fault


class StructureFetchFault(Exception):
    """Raised by a ``translate`` callback when a structure address does not translate.

    ``fault`` (a :class:`~iommu_lab.nesting.faults.NestedFault` in nesting, carrying its
    ``FaultReason``/``FaultKind``) becomes the resolution's fault; ``refs`` are the stage-2
    references made before the fault, kept in the resolution's reference list.
    """

    def __init__(self, fault: Any, refs: Sequence[PasidRef] = ()) -> None:
        super().__init__(str(fault))
        self.fault = fault
        self.refs = tuple(refs)

    @property
    def reason(self) -> FaultReason:
        return self.fault.reason


# The one structure walker

#: ``read(level, index, address) -> raw entry``: one entry fetch, recorded by the caller.
Read = Callable[[StructureLevel, int, int], int]


def walk_structure(levels: Sequence[StructureLevel], root: int, pasid: int, read: Read):
    """Walk PASID-structure ``levels`` from the table at ``root`` to the entry selecting ``pasid``.

    At each level: index the table with the level's PASID bits, read the entry (``read`` does
    the fetch, through stage 2 when the structure is guest-owned), fault with the level's
    declared code if the valid bit is clear or checked reserved bits are set, and follow the
    pointer field to the next level. Returns ``(raw, decoded, address)`` of the last entry;
    raises ``_Abort`` with a :class:`PasidFault`.
    """
    table = root
    for lv in levels:
        index = lv.index(pasid)
        addr = table + lv.layout.size * index
        raw = read(lv, index, addr)
        dec = lv.layout.decode(raw)
        if not dec[lv.valid]:
            reason, code, text = lv.invalid
            raise _Abort(PasidFault(lv.structure, text, addr, code, lv.owner, reason))
        if lv.reserved is not None and raw & lv.layout.reserved_mask:
            code, text = lv.reserved
            raise _Abort(PasidFault(lv.structure, text, addr, code, lv.owner, FaultReason.RESERVED_BITS))
        if lv.next is None:
            return raw, dec, addr
        table = dec[lv.next]
    raise ValueError("a PASID structure needs at least one level")


def install_path(levels: Sequence[StructureLevel], root: int, pasid: int, memory: Any,
                 *, allocate: bool) -> int | None:
    """Address of the last-level entry for ``pasid``, allocating missing tables when asked.

    The writer's side of :func:`walk_structure`: a missing intermediate table is allocated
    zeroed and linked with ``valid=1, next=table`` (``intel_pasid_get_entry``,
    ``arm_smmu_get_cd_ptr``, ``__get_gcr3_pte`` with ``alloc``).
    """
    table = root
    for depth, lv in enumerate(levels):
        addr = table + lv.layout.size * lv.index(pasid)
        if lv.next is None:
            return addr
        dec = lv.layout.decode(lv.layout.read(memory, addr))
        if not dec[lv.valid]:
            if not allocate:
                return None
            size = levels[depth + 1].table_bytes
            new = mem_alloc(memory, size, size)
            lv.layout.write(memory, addr, lv.layout.encode(**{lv.valid: 1, lv.next: new}))
            dec = lv.layout.decode(lv.layout.read(memory, addr))
        table = dec[lv.next]
    raise ValueError("a PASID structure needs at least one level")
