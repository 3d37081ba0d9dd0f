"""The guest page-table lookup: how the hardware reads each raw entry of a guest-managed table.

David Gibson asked for it on the ``/dev/ioasid`` RFC (17 Jun 2021, ``<YMrKksUeNW/PEGPM@yekko>``):
"a call to allow userspace to lookup and specific IOVA in a guest managed pgtable … as a
debugging aid so you can make sure that how the kernel is interpreting that metadata in the same
way that your userspace expects". iommufd never grew such an ioctl for nested (user-owned)
tables; :func:`explain` is that aid for the model (``lookup`` is its old name; the verb
``lookup`` now means the IOAS question).

For each entry the walk reads it shows which bits were taken as the next-table address or the
output address, which as permissions, which as the entry's type or size, which as attributes,
and which bits no field names (ignored or reserved in that format). It uses the page-table
layer's walker (through :meth:`Nested.walk` for a nested pair), so what it explains is exactly
what the model's hardware did; when that walk faults — a reserved encoding, a non-present entry,
or a table pointer outside the guest's memory — the lookup shows the fault the hardware raises,
attributed to guest or host, with its SMMUv3 event and VT-d fault reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iommu_lab.core import display
from iommu_lab.core.faults import FaultReason
from iommu_lab.core.ranges import fmt_addr
from iommu_lab.hardware.formats import EntryKind
from iommu_lab.nesting.faults import FaultSite, NestedFault, Stage
from iommu_lab.nesting.memory import GuestMemory, _fmt, _memory, _walk
from iommu_lab.nesting.pair import NestedPair
from iommu_lab.pagetable.walk import TableFetchError

__all__ = ["ROLE_OF_FIELD", "EntryReading", "FieldReading", "GuestLookup", "explain", "lookup"]

#: How a field's bits are used, by field name across formats (x86-64, VT-d SS, AMD v1, ARM LPAE).
ROLE_OF_FIELD = {
    "ADDR": "address",
    "P": "present",
    "PR": "present",
    "TYPE": "present/type",
    "R": "permission",
    "W": "permission",
    "RW": "permission",
    "US": "permission",
    "XD": "permission",
    "IR": "permission",
    "IW": "permission",
    "AP": "permission",
    "S2AP": "permission",
    "UXN": "permission",
    "PXN": "permission",
    "XN": "permission",
    "APTable": "permission",
    "XNTable": "permission",
    "PXNTable": "permission",
    "U": "permission",
    "PS": "type/size",
    "SP": "type/size",
    "NL": "type/size",
    "CONT": "type/size",
}


@dataclass(frozen=True)
class FieldReading:
    """One field of one entry: its bits, value and how the walk used it."""

    name: str
    bits: str
    value: int
    role: str
    meaning: str


@dataclass(frozen=True)
class EntryReading:
    """One entry the walk read, with every field's interpretation."""

    level: int
    name: str
    table: int
    index: int
    entry_address: int
    read_address: int
    raw: int
    kind: EntryKind
    fields: tuple[FieldReading, ...]
    unnamed_bits: int
    verdict: str
    faulted: bool = False

    @property
    def address_bits(self) -> int:
        for f in self.fields:
            if f.role == "address":
                return f.value
        return 0


@dataclass
class GuestLookup:
    """The explanation of one IOVA's lookup in a guest table (see :func:`explain`)."""

    iova: int
    format: str
    entries: tuple[EntryReading, ...]
    gpa: int | None
    hpa: int | None
    fault: Any = None
    guest_ram: tuple[int, int] | None = None
    nested: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fault is None

    def _fault_text(self) -> str:
        f = self.fault
        if isinstance(f, NestedFault):
            return f"{f}\n    SMMUv3 event: {f.smmu_event()}\n    VT-d:         {f.vtd_fault()}\n    AMD:          {f.amd_event()}"
        return f"fault: {f.reason.value}: {f.message}"

    def __str__(self) -> str:
        where = "nested (stage 1 read through stage 2)" if self.nested else "guest table"
        lines = [f"lookup IOVA {fmt_addr(self.iova)} in {self.format} — {where}"]
        for e in self.entries:
            at = f"GPA {fmt_addr(e.entry_address)}"
            if e.read_address != e.entry_address:
                at += f" (read at HPA {fmt_addr(e.read_address)})"
            lines.append(f"  {e.name} [{e.index}] at {at} = {e.raw:#018x}: {e.verdict}")
            for f in e.fields:
                if f.value or f.role in ("address", "present", "present/type"):
                    lines.append(
                        f"      {f.name:<9} [{f.bits:>5}] = {f.value:#x}  {f.role}: {f.meaning}"
                    )
            if e.unnamed_bits:
                lines.append(
                    f"      (unnamed) mask {e.unnamed_bits:#018x}  set bits no field names: ignored by "
                    f"this format, or reserved where the verdict above says the entry was rejected"
                )
        for n in self.notes:
            lines.append(f"  note: {n}")
        if self.fault is not None:
            lines.append("  => " + self._fault_text().replace("\n", "\n  "))
        else:
            tail = f" -> HPA {fmt_addr(self.hpa)}" if self.hpa is not None else ""
            lines.append(f"  => GPA {fmt_addr(self.gpa)}{tail}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = "fault" if self.fault is not None else f"gpa={fmt_addr(self.gpa)}"
        return f"<GuestLookup {fmt_addr(self.iova)} {self.format}: {len(self.entries)} entries, {state}>"

    def to_dataframe(self):
        """One row per (entry, field): level, entry, raw, field, bits, value, role, meaning."""
        from iommu_lab.core.frames import addr_frame

        cols: dict[str, list] = {
            k: []
            for k in (
                "level",
                "entry",
                "entry_address",
                "raw",
                "field",
                "bits",
                "value",
                "role",
                "meaning",
            )
        }
        for e in self.entries:
            rows = [(f.name, f.bits, f.value, f.role, f.meaning) for f in e.fields]
            if e.unnamed_bits:
                rows.append(
                    ("(unnamed)", "", e.unnamed_bits, "ignored/reserved", "bits no field names")
                )
            for name, bits, value, role, meaning in rows:
                for k, v in zip(
                    cols,
                    (e.level, e.name, e.entry_address, e.raw, name, bits, value, role, meaning),
                ):
                    cols[k].append(v)
        return addr_frame(cols, hex_columns=["entry_address", "raw", "value"])

    _repr_html_ = display.html


def _role(name: str) -> str:
    return ROLE_OF_FIELD.get(name, "attribute")


def _read_entry(fmt: Any, step: Any, guest_ram: tuple[int, int] | None) -> EntryReading:
    kind = step.entry.kind
    table = fmt.fields(step.level, EntryKind.TABLE if kind == EntryKind.TABLE else EntryKind.LEAF)
    readings = []
    for f in table:
        v = f.get(step.raw)
        role = _role(f.name)
        meaning = f.doc
        if role == "address":
            addr = v << f.shift
            if kind == EntryKind.TABLE:
                role, meaning = (
                    "next-table address",
                    f"next table at GPA {fmt_addr(step.entry.address)}",
                )
            elif kind == EntryKind.LEAF:
                role, meaning = (
                    "output address",
                    f"{step.entry.size:#x}-byte page at GPA {fmt_addr(step.entry.address)}",
                )
            else:
                meaning = f"would be {fmt_addr(addr)}"
        elif role == "type/size" and v and kind in (EntryKind.RESERVED, EntryKind.BAD_TYPE):
            # e.g. PS=1 in an x86 PML4E: the bit exists but is reserved at this level
            role, meaning = "reserved", f"must be 0 at {step.name}: {f.doc}"
        readings.append(FieldReading(f.name, f.bits, v, role, meaning))
    unnamed = step.raw & table.reserved_mask
    if kind == EntryKind.TABLE:
        verdict = f"table -> GPA {fmt_addr(step.entry.address)}"
        if guest_ram and not (guest_ram[0] <= step.entry.address <= guest_ram[1]):
            verdict += f" — OUTSIDE guest RAM [{fmt_addr(guest_ram[0])}, {fmt_addr(guest_ram[1])}]"
    elif kind == EntryKind.LEAF:
        verdict = f"leaf: {step.entry.size:#x}-byte page at GPA {fmt_addr(step.entry.address)}, {step.entry.perm}"
    elif kind == EntryKind.EMPTY:
        verdict = "not present"
    else:
        verdict = (
            f"{kind.name.lower().replace('_', ' ')} encoding at this level: the hardware rejects it"
        )
    faulted = kind not in (EntryKind.TABLE, EntryKind.LEAF)
    return EntryReading(
        step.level,
        step.name,
        step.table,
        step.index,
        step.entry_address,
        step.read_address,
        step.raw,
        kind,
        tuple(readings),
        unnamed,
        verdict,
        faulted,
    )


def explain(target: Any, iova: int, *, access: Any = "r") -> GuestLookup:
    """Explain how ``iova`` is looked up in a guest-managed stage-1 table.

    Parameters
    ----------
    target : Nested or PageTable
        A nested pair (the stage-1 walk runs through stage 2, so a table pointer outside the
        guest's memory shows as the host-attributed stage-2 fault it causes), or a guest's
        stage-1 ``PageTable`` on its own (read as the guest sees its memory).
    iova : int
    access : "r", "w" or None
    """
    if isinstance(target, NestedPair):
        nw = target.walk(iova, access=access)
        fmt = _fmt(target.stage1)
        gm: GuestMemory = target.guest_memory
        ram = (gm.base, gm.last)
        # Re-read the stage-1 steps the 2-D walk made: same walker, same seam, same entries.
        steps = _stage1_steps(target, iova, access)
        entries = tuple(_read_entry(fmt, s, ram) for s in steps)
        notes = []
        if (
            nw.fault is not None
            and nw.fault.stage is Stage.STAGE2
            and nw.fault.site is FaultSite.S1_TABLE
        ):
            notes.append(
                f"the guest's level-{nw.fault.s1_level} table pointer is GPA {fmt_addr(nw.fault.address)}, which "
                f"stage 2 does not translate: the fault record is the host's (S2=1), but the bad pointer is in "
                f"the guest's table"
            )
        return GuestLookup(iova, fmt.name, entries, nw.gpa, nw.output, nw.fault, ram, True, notes)
    fmt = _fmt(target)
    mem = _memory(target)
    ram = (mem.base, mem.last) if hasattr(mem, "base") else None
    w = _walk(target, iova, access=access)
    entries = tuple(_read_entry(fmt, s, ram) for s in w.steps)
    notes = []
    if w.fault is not None and w.fault.reason is FaultReason.TABLE_ADDRESS:
        notes.append("a table pointer leads outside the guest's memory; the read could not be made")
    return GuestLookup(iova, fmt.name, entries, w.pa, None, w.fault, ram, False, notes)


#: The old name of :func:`explain` (``il.guest_lookup``).
lookup = explain


def _stage1_steps(nested: NestedPair, iova: int, access: Any):
    """The stage-1 steps of the nested walk (the walker with the stage-2 seam, once more)."""

    def through_stage2(entry_gpa: int, level: int):
        w2 = _walk(nested.stage2, entry_gpa, access="r")
        if not w2.ok:
            raise TableFetchError(w2)
        return w2.pa, w2

    w1 = _walk(
        nested.stage1, iova, access=access, table_hook=through_stage2, memory=nested.host_memory
    )
    return w1.steps
