"""Explain a logged IOMMU fault by walking its address in a modelled or imported table.

:func:`explain` takes a :class:`~iommu_lab.io.dmesg.FaultRecord` and a translation target — an
imported ``domain_translation_struct`` (the section of the faulting device and PASID is
chosen), a ``PageTable``, or a nested pair (walked with :func:`iommu_lab.nesting.explain.explain`,
stage 1 through stage 2) — runs the walk the hardware did for that address and access, and says
where it stopped. It then asks what the model's fault would have logged, through the same
vendor tables the walks use (:mod:`iommu_lab.hardware.faults`), and whether that agrees with the
logged reason:

* VT-d legacy mode: a second-stage entry has no present bit, so a missing or read-only entry
  logs 0x06 (read) or 0x05 (write); scalable mode (reasons 0x30 and up) uses the SM reasons of
  the stage that faulted;
* AMD: the kind of the ``IO_PAGE_FAULT`` flags (PR/PE/RZ) against the walk's kind;
* SMMUv3: the event id ``SMMU_EVENT_OF_KIND`` gives; SMMUv2: the FSR bit's kind.

``agrees`` is None where the log's event is not a translation fault the model can produce
(interrupt remapping, a device-table error, a command-queue event).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iommu_lab.core.faults import FaultKind
from iommu_lab.hardware.faults import (
    SMMU_EVENT_OF_KIND,
    VTD_S1_REASON,
    VTD_S2_ACCESS_REASON,
    VtdReason,
    amd_page_fault_kind,
)
from iommu_lab.io.debugfs import DomainDump
from iommu_lab.io.dmesg import FaultRecord
from iommu_lab.nesting.explain import explain as guest_explain
from iommu_lab.pagetable import PageTable

__all__ = ["FaultExplanation", "explain"]

#: Which stage each VT-d table format is (the second-stage format, or x86-64 for first stage).
_VTD_STAGE = {"vtd-ss": 2, "x86-64": 1}


@dataclass(frozen=True)
class FaultExplanation:
    """A logged fault beside the model's walk of the same address."""

    fault: FaultRecord
    target: str
    walk: Any  #: the walk (``Walk``) or guest lookup (``GuestLookup``) the model made
    stopped: str  #: where and why the walk stopped, or what it translated to
    model_kind: FaultKind | None
    model_code: str | None  #: what the model's fault would log, in the vendor's terms
    agrees: bool | None
    note: str = ""

    def __str__(self) -> str:
        verdict = {True: "agrees with the log", False: "DIFFERS from the log", None: "not comparable"}[self.agrees]
        lines = [f"logged: {self.fault}", f"model ({self.target}): {self.stopped}"]
        if self.model_code:
            lines.append(f"  the model would log {self.model_code}: {verdict}")
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


def _pick(target, fault: FaultRecord) -> tuple[Any, str, str]:
    """The table to walk and its name; for several dumped sections, the faulting device's."""
    if isinstance(target, DomainDump):
        return target.pagetable, f"{target.device or 'dump'} {target.pagetable.fmt.name}", ""
    if isinstance(target, (tuple, list)) and target and all(isinstance(d, DomainDump) for d in target):
        same = [d for d in target if d.device is not None and fault.device is not None
                and d.device.lower().endswith(fault.device.split(":", 1)[1])]
        if fault.pasid is not None:
            same = [d for d in same if d.pasid in (fault.pasid, None)] or same
        if not same:
            if len(target) == 1:
                d = target[0]
                return d.pagetable, f"{d.device or 'dump'} {d.pagetable.fmt.name}", \
                    f"the dump's only section ({d.device or 'unnamed'}) is not the faulting device; walked it anyway"
            names = ", ".join(str(d.device) for d in target)[:200]
            raise ValueError(f"no section of the dump is device {fault.device} (sections: {names}); "
                             f"pass the DomainDump to walk")
        d = same[0]
        return d.pagetable, f"{d.device} {d.pagetable.fmt.name}", ""
    if isinstance(target, (tuple, list)):
        raise ValueError("an empty dump has no table to walk (a pass-through device, or DMA remapping off)")
    if isinstance(target, PageTable):
        return target, target.fmt.name, ""
    if hasattr(target, "stage1") and hasattr(target, "stage2") and hasattr(target, "walk"):
        return target, "nested", ""
    raise TypeError(f"explain needs a PageTable, a DomainDump (or a parsed dump) or a Nested pair, "
                    f"got {type(target).__name__}")


def _predicted(fault: FaultRecord, kind: FaultKind, stage: int | None, write: bool) -> tuple[str, bool | None]:
    """What the model's fault of ``kind`` would log for this vendor, and whether that is the log."""
    if fault.vendor == "vtd":
        if fault.interrupt or fault.code is None:
            return "", None
        if fault.code < 0x30:
            code = 0x05 if write else 0x06
            if kind in (FaultKind.RESERVED,):
                code = 0x0C
            elif kind in (FaultKind.ADDRESS_SIZE, FaultKind.NON_CANONICAL):
                code = 0x04
            return f"fault reason {code:#04x}", code == fault.code
        reason = VTD_S1_REASON[(kind, write)] if stage == 1 else VTD_S2_ACCESS_REASON[(kind, write)]
        return f"fault reason {int(reason):#04x} ({VtdReason(reason).name})", int(reason) == fault.code
    if fault.vendor == "amd":
        if fault.flags is None or fault.reason != "IO_PAGE_FAULT":
            return "", None
        return f"IO_PAGE_FAULT of kind {kind.value}", kind is amd_page_fault_kind(fault.flags)
    if fault.vendor == "smmuv3":
        ev = SMMU_EVENT_OF_KIND.get(kind)
        if ev is None or fault.kind is None:
            return "", None
        return f"{ev.name} ({int(ev):#04x})", int(ev) == fault.code
    if fault.kind is None:
        return "", None
    return f"a {kind.value} fault", kind is fault.kind


def explain(fault: FaultRecord, target: Any) -> FaultExplanation:
    """Walk ``fault``'s address in ``target`` and compare where it stopped with the log.

    Parameters
    ----------
    fault : FaultRecord
        From :func:`iommu_lab.io.dmesg.parse_dmesg`; must carry an address.
    target : PageTable, DomainDump, parsed dump or Nested
        The table the device was using (see the module docstring).

    Raises
    ------
    ValueError
        When the fault has no address (an interrupt-remapping fault) or no dump section fits.
    TypeError
        When ``target`` is not a translation target.
    """
    if not isinstance(fault, FaultRecord):
        raise TypeError(f"explain needs a FaultRecord from parse_dmesg, got {type(fault).__name__}")
    if fault.address is None:
        raise ValueError(f"the fault at line {fault.line} has no address to walk ({fault.reason}: {fault.meaning})")
    table, name, note = _pick(target, fault)
    write = fault.access == "write"
    access = "w" if write else "r"
    if isinstance(table, PageTable):
        fmt = table.fmt
        if not fmt.aperture.start <= fault.address <= fmt.aperture.last and not fmt.is_canonical(fault.address):
            w = None
            stopped = f"address {fault.address:#x} is outside the {fmt.name} input range {fmt.aperture}"
            kind, stage = FaultKind.ADDRESS_SIZE, _VTD_STAGE.get(fmt.family, fmt.stage)
        else:
            w = table.walk(fault.address, access=access)
            stage = _VTD_STAGE.get(fmt.family, fmt.stage)
            if w.ok:
                kind = None
                stopped = f"translates {fault.address:#x} to {w.pa:#x} ({w.page_size:#x} page, {w.perm})"
            else:
                kind = w.fault.reason.kind
                lvl = fmt.level_name(w.fault.level) if w.fault.level is not None else "?"
                stopped = f"stopped at {lvl}: {w.fault.reason.value} ({w.fault.message})"
    else:
        w = guest_explain(table, fault.address, access=access)
        if w.ok:
            kind, stage = None, None
            stopped = f"translates {fault.address:#x} to {w.hpa:#x}"
        else:
            f = w.fault
            kind = getattr(f, "kind", None) or getattr(getattr(f, "reason", None), "kind", None)
            stage = 1 if str(getattr(f, "stage", "")).endswith("1") else 2
            stopped = f"stopped: {f}"
    if kind is None:
        return FaultExplanation(fault, name, w, stopped, None, None, False,
                                note or "the model translates this access: the table changed after the fault, or the "
                                        "device used another domain or PASID")
    code, agrees = _predicted(fault, kind, stage, write)
    return FaultExplanation(fault, name, w, stopped, kind, code or None, agrees, note)
