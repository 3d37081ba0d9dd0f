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

from iommu_lab.core import display
from iommu_lab.core.enums import member_of
from iommu_lab.core.ranges import IovaRange, fmt_addr, fmt_size
from iommu_lab.core.words import plural
from iommu_lab.hardware.platform import NestingSupport, Platform, Stage1Binding
from iommu_lab.hardware.registers import HW_CAP_DIRTY_TRACKING, hw_info
from iommu_lab.iommufd.area import Area, Reservation
from iommu_lab.iommufd.type1 import Semantics

__all__ = ["Capabilities", "IoasInfo", "Lookup", "capabilities_of"]


@dataclass(frozen=True)
class Capabilities:
    """What the ``/dev/ioasid`` RFC's IOASID_GET_INFO reported: the platform's capabilities, as
    iommufd now reports them through IOMMU_GET_HW_INFO.

    ``nesting`` is a :class:`~iommu_lab.hardware.platform.NestingSupport` (equal to its text,
    ``"hardware"``, ``"software"`` or ``"none"``). ``dirty_tracking`` is
    ``IOMMU_HW_CAP_DIRTY_TRACKING`` of ``out_capabilities``; ``max_pasid_log2`` is
    ``out_max_pasid_log2`` (0: no PASID). Without platform information the defaults are: type1
    map/unmap yes (every IOAS is kernel-managed), page-table and PASID-table binding no, nesting
    ``"software"`` (a VMM can always shadow through map/unmap), no dirty tracking, no PASID.
    """

    type1_map_unmap: bool = True
    pgtable_binding: bool = False
    pasid_table_binding: bool = False
    nesting: NestingSupport = NestingSupport.SOFTWARE
    dirty_tracking: bool = False
    max_pasid_log2: int = 0

    def __str__(self) -> str:
        parts = ["map/unmap" if self.type1_map_unmap else "no map/unmap"]
        if self.pgtable_binding:
            parts.append("page-table binding")
        if self.pasid_table_binding:
            parts.append("PASID-table binding")
        parts.append(f"nesting: {self.nesting.value}")
        parts.append("dirty tracking" if self.dirty_tracking else "no dirty tracking")
        parts.append(f"{self.max_pasid_log2}-bit PASIDs" if self.max_pasid_log2 else "no PASIDs")
        return ", ".join(parts)

    _repr_html_ = display.html

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython's plain-text view: the readable line, not the field dump."""
        p.text(str(self))


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

    @property
    def page_sizes_text(self) -> str:
        """The page sizes in words ("4 KiB, 2 MiB, 1 GiB"); a long run of every power of two is
        shown by its ends."""
        sizes = self.page_sizes
        if not sizes:
            return "none"
        if len(sizes) > 6:
            low = f"{sizes[0]} B" if sizes[0] < 1024 else fmt_size(sizes[0])
            return f"every power of two from {low} to {fmt_size(sizes[-1])} ({len(sizes)} sizes)"
        return ", ".join(fmt_size(s) for s in sizes)

    def __str__(self) -> str:
        def size(n: int) -> str:
            return f"{n} B" if n < 1024 else fmt_size(n)

        limit = "no limit" if self.max_mappings is None else f"at most {self.max_mappings} mappings"
        lines = [f"GET_INFO ({self.semantics.value}): {self.capabilities}",
                 f"  page sizes   {self.page_sizes_text}",
                 f"  alignment    {size(self.iova_alignment)}",
                 f"  mappings     {limit}",
                 f"  permitted    {plural(len(self.permitted), 'range')}"]
        for r in self.permitted[:8]:
            lines.append(f"    {fmt_addr(r.start)} .. {fmt_addr(r.last)}  ({fmt_size(r.last - r.start + 1, approx=True)})")
        if len(self.permitted) > 8:
            lines.append(f"    ... {len(self.permitted) - 8} more")
        return "\n".join(lines)

    _repr_html_ = display.html

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython's plain-text view: the readable form, not the field dump."""
        p.text(str(self))


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


def _from_hw_info(platform: Platform) -> Capabilities:
    """A catalogue platform's capabilities as a device behind it reports them through
    IOMMU_GET_HW_INFO: dirty tracking from ``out_capabilities``, the PASID width from
    ``out_max_pasid_log2``, hardware nesting when the decoded registers say so (VT-d ECAP.NEST,
    SMMUv3 IDR0.S1P and S2P, AMD EFR.GTSUP and GIOSUP), else the nesting the platform declares;
    the bindings from the platform's declared ``stage1_binding``."""
    hw = hw_info(platform)
    pi = platform.info()
    nesting = NestingSupport.HARDWARE if hw.decoded().nesting else member_of(NestingSupport, str(pi.nesting), "nesting")
    hardware = nesting is NestingSupport.HARDWARE
    return Capabilities(bool(pi.map_unmap), hardware and bool(pi.pgtable_binding),
                        hardware and bool(pi.pasid_table_binding), nesting,
                        bool(hw.out_capabilities & HW_CAP_DIRTY_TRACKING), hw.out_max_pasid_log2)


def capabilities_of(platform: Any) -> Capabilities:
    """The capabilities a platform reports: for a catalogue ``Platform``, what IOMMU_GET_HW_INFO
    answers for a device behind it (see ``_from_hw_info``); for another object its own GET_INFO
    answer (``platform.info()``) when it has one, else its ``nesting`` and ``stage1_binding``
    data, else the defaults.

    Under hardware nesting a ``pgtable`` binding hands over one stage-1 table per (device,
    PASID) (VT-d); a ``pasid-table`` binding hands over the guest's whole PASID/CD/GCR3 table
    (SMMUv3, AMD). Nothing here asks which family the platform is.
    """
    if platform is None:
        return Capabilities()
    if isinstance(platform, Platform):
        return _from_hw_info(platform)
    info = getattr(platform, "info", None)
    if callable(info):
        pi = info()
        nesting = member_of(NestingSupport, str(pi.nesting), "nesting")
        return Capabilities(bool(pi.map_unmap), bool(pi.pgtable_binding), bool(pi.pasid_table_binding), nesting,
                            bool(getattr(pi, "dirty_tracking", False)))
    declared_nesting = getattr(platform, "nesting", None)
    nesting = (member_of(NestingSupport, str(declared_nesting), "nesting")
               if str(declared_nesting) in {m.value for m in NestingSupport} else NestingSupport.SOFTWARE)
    declared = getattr(platform, "stage1_binding", None)
    binding = None if declared is None else member_of(Stage1Binding, declared, "stage-1 binding")
    hw = nesting is NestingSupport.HARDWARE
    return Capabilities(True, hw and binding is Stage1Binding.PGTABLE, hw and binding is Stage1Binding.PASID_TABLE, nesting)
