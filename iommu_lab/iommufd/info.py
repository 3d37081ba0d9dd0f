"""What an I/O address space answers about itself: GET_INFO and the lookup of one IOVA.

``IoasInfo`` is what the ``/dev/iommu`` proposal's ``IOASID_GET_INFO`` asked for, answered from
the attached domains as ``iommufd_ioas_iova_ranges`` (permitted ranges, ``out_iova_alignment``)
and ``iommufd_get_pagesizes`` (page sizes) do; ``Capabilities`` come from the platform's
declared data (``Platform.info()``, or its ``nesting`` and ``stage1_binding``), never from
which family it is. ``Lookup`` is the model's own question — which area, reservation or window
holds an IOVA — with each domain's page-table walk for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iommu_lab.core.enums import member_of
from iommu_lab.core.ranges import IovaRange, fmt_addr
from iommu_lab.hardware.platform import NestingSupport, Stage1Binding
from iommu_lab.iommufd.area import Area, Reservation
from iommu_lab.iommufd.type1 import Semantics

__all__ = ["Capabilities", "IoasInfo", "Lookup", "capabilities_of"]


@dataclass(frozen=True)
class Capabilities:
    """What the ``/dev/ioasid`` RFC's IOASID_GET_INFO reported: the platform's capabilities.

    ``nesting`` is a :class:`~iommu_lab.hardware.platform.NestingSupport` (equal to its text,
    ``"hardware"``, ``"software"`` or ``"none"``). Without platform information
    the defaults are: type1 map/unmap yes (every IOAS is kernel-managed), page-table and
    PASID-table binding no, nesting ``"software"`` (a VMM can always shadow through map/unmap).
    """

    type1_map_unmap: bool = True
    pgtable_binding: bool = False
    pasid_table_binding: bool = False
    nesting: NestingSupport = NestingSupport.SOFTWARE


@dataclass(frozen=True)
class IoasInfo:
    """The answer to GET_INFO: capabilities, page sizes, permitted ranges and alignment.

    ``permitted`` are the usable ranges (holes of the reserved tree), split at window
    boundaries, never the reserved ones. ``pgsizes`` is the AND of the attached domains'
    bitmaps without the sizes below ``iova_alignment`` (as ``iommufd_get_pagesizes``); with no
    device every power of two from the alignment up. ``max_mappings`` is the type1
    ``dma_entry_limit`` (65535), U32_MAX for the iommufd compat layer, None for iommufd.
    """

    semantics: Semantics
    capabilities: Capabilities
    pgsizes: int
    permitted: tuple[IovaRange, ...]
    iova_alignment: int
    max_mappings: int | None

    @property
    def page_sizes(self) -> list[int]:
        return [1 << b for b in range(64) if self.pgsizes >> b & 1]


@dataclass(slots=True)
class Lookup:
    """Where one IOVA stands: ``status`` is ``"mapped"``, ``"reserved"``, ``"outside"`` (no
    window covers it) or ``"free"``; ``reason`` says it in words (formatted on demand, so a
    lookup costs a bisect and nothing more). A result record, not frozen: a frozen dataclass's
    ``__init__`` alone would cost a third of a lookup."""

    iova: int
    status: str
    area: Area | None = None
    offset: int | None = None
    user_va: int | None = None
    reservations: tuple[Reservation, ...] = ()
    window: IovaRange | None = None
    notes: tuple[str, ...] = ()
    windows: tuple[IovaRange, ...] = field(default=(), repr=False)
    domains: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def walks(self) -> tuple[Any, ...]:
        """The walk each attached domain's page table does for this IOVA (what the IOMMU reads),
        computed on first use so that a lookup itself stays a bisect."""
        return tuple(d.walk(self.iova) for d in self.domains)

    @property
    def walk(self) -> Any:
        """The first domain's walk, or None when no page-table domain is attached."""
        return self.domains[0].walk(self.iova) if self.domains else None

    @property
    def reason(self) -> str:
        if self.status == "mapped":
            a = self.area
            return (f"mapped by area {a.range} at offset {fmt_addr(self.offset)} "
                    f"(VA {fmt_addr(self.user_va)}, {a.prot.text})")
        if self.status == "reserved":
            r = next(r for r in self.reservations if r.kind != "aperture")
            who = f"device {r.owner!r}" if r.kind == "region" else (f"{r.owner!r}" if r.owner else "the user (test reservation)")
            kind = r.type.value if r.type is not None else "user"
            return f"reserved by {who}: {r.range} type {kind}"
        if self.status == "outside":
            return f"outside every window; the permitted windows are {', '.join(str(w) for w in self.windows)}"
        return "free" + (f"; {'; '.join(self.notes)}" if self.notes else "")

    def __str__(self) -> str:
        text = f"{fmt_addr(self.iova)}: {self.reason}"
        for d, w in zip(self.domains, self.walks):
            text += f"\n  domain {d.fmt.name}:\n" + "\n".join("  " + line for line in str(w).splitlines())
        return text


def capabilities_of(platform: Any) -> Capabilities:
    """The capabilities a platform declares: from its own GET_INFO answer (``platform.info()``)
    when it has one, else from its ``nesting`` and ``stage1_binding`` data, else the defaults.

    Under hardware nesting a ``pgtable`` binding hands over one stage-1 table per (device,
    PASID) (VT-d); a ``pasid-table`` binding hands over the guest's whole PASID/CD/GCR3 table
    (SMMUv3, AMD). Nothing here asks which family the platform is.
    """
    if platform is None:
        return Capabilities()
    info = getattr(platform, "info", None)
    if callable(info):
        pi = info()
        nesting = member_of(NestingSupport, str(pi.nesting), "nesting")
        return Capabilities(bool(pi.map_unmap), bool(pi.pgtable_binding), bool(pi.pasid_table_binding), nesting)
    declared_nesting = getattr(platform, "nesting", None)
    nesting = (member_of(NestingSupport, str(declared_nesting), "nesting")
               if str(declared_nesting) in {m.value for m in NestingSupport} else NestingSupport.SOFTWARE)
    declared = getattr(platform, "stage1_binding", None)
    binding = None if declared is None else member_of(Stage1Binding, declared, "stage-1 binding")
    hw = nesting is NestingSupport.HARDWARE
    return Capabilities(True, hw and binding is Stage1Binding.PGTABLE, hw and binding is Stage1Binding.PASID_TABLE, nesting)
