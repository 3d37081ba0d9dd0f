"""The I/O address space (IOAS) with iommufd semantics, rule for rule.

``IOAS`` models ``struct io_pagetable`` (drivers/iommu/iommufd/io_pagetable.c) behind the
IOMMU_IOAS_* ioctls (ioas.c): three interval trees — areas, the user's allowed ranges and the
reserved ranges (each with an owner) — plus ``iova_alignment``. Rule numbers (``rule 4.7``) refer
to /work/shared/reference/iommufd.md. A failed operation leaves the IOAS exactly as it was:
every check runs before the first mutation, except where the kernel itself is not atomic
(UNMAP removing earlier areas before refusing a later one, rule 5.6; a VFIO v1 cut, rule 8.4).

Beyond iommufd the model keeps each attached device's *windows* as separate objects (Gibson's
permitted-window rule, nesting_pasid_windows.md §0 and §5.1): a map must lie inside one window
even where two windows touch and the reserved tree therefore shows no boundary.

``semantics=`` selects real VFIO type1 or iommufd's VFIO compatibility (see ``type1.py``).

Each attached device whose ``format`` names a page-table format gets a paging domain, a real
``iommu_lab.pagetable.PageTable``, which every map/copy fills from the pinned pages' physical
addresses (``HostMemory``) and every unmap clears (``_fill_domains`` / ``_clear_domains``, as
``iopt_area_fill_domains`` / ``iopt_area_unfill_domains``).

Storage: areas in a ``SortedList`` keyed by IOVA with a free-gap index beside it (``area.py``),
so fixed and automatic map, lookup and unmap are O(log n); reserved and allowed ranges are few
and kept as plain lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Iterable, Sequence, Union

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet, fmt_addr, fmt_size
from iommu_lab.hardware.device import Device, ResvType
from iommu_lab.iommufd import type1 as _t1
from iommu_lab.iommufd.area import (
    HPAGE_SIZE,
    PAGE_SIZE,
    PROT_BY_INT,
    Area,
    AreaIndex,
    Pages,
    Prot,
    _fits,
    roundup_pow_of_two,
)
from iommu_lab.iommufd.type1 import DMA_ENTRY_LIMIT, Semantics

__all__ = [
    "IOAS",
    "Area",
    "Prot",
    "Pages",
    "Reservation",
    "Access",
    "Lookup",
    "IoasInfo",
    "Capabilities",
    "Semantics",
    "IoasOp",
    "MapOp",
    "UnmapOp",
    "UnmapAllOp",
    "CopyOp",
    "AllowOp",
    "ReserveOp",
    "AttachOp",
    "DetachOp",
    "HugePagesOp",
    "AddAccessOp",
    "RemoveAccessOp",
]

_SIZE_MAX = U64_MAX
#: Where the model places user buffers given no ``user_va``: 2 MiB aligned, like the selftests'
#: ``posix_memalign(HUGEPAGE_SIZE)`` buffer, one after the other.
ANON_VA_BASE = 0x7F00_0000_0000


# -- small value types ----------------------------------------------------------------------
@dataclass(frozen=True)
class Reservation:
    """One node of the reserved interval tree (``struct iopt_reserved``): ``[start, last]``.

    ``kind`` says why it exists: ``"aperture"`` (outside a domain's aperture or windows,
    ``iopt_table_add_domain``), ``"region"`` (a device reserved region,
    ``iopt_table_enforce_dev_resv_regions``) or ``"user"`` (``reserve()``, the selftest's
    IOMMU_TEST_OP_ADD_RESERVED with a NULL owner unless one is given).
    """

    start: int
    last: int
    owner: str | None
    kind: str
    type: ResvType | None = None

    @property
    def range(self) -> IovaRange:
        return IovaRange(self.start, self.last)

    def __repr__(self) -> str:
        t = f", type={self.type.value!r}" if self.type is not None else ""
        return f"Reservation({fmt_addr(self.start)}, {fmt_addr(self.last)}, owner={self.owner!r}, kind={self.kind!r}{t})"

    def __str__(self) -> str:
        what = self.type.value if self.type is not None else self.kind
        return f"{self.range} {what}" + (f" ({self.owner})" if self.owner else "")


@dataclass(frozen=True)
class Capabilities:
    """What the RFC's IOASID_GET_INFO reported (nesting_pasid_windows.md §1.1).

    ``nesting`` is ``"hardware"``, ``"software"`` or ``"none"``. Without platform information
    the defaults are: type1 map/unmap yes (every IOAS is kernel-managed), page-table and
    PASID-table binding no, nesting ``"software"`` (a VMM can always shadow through map/unmap).
    """

    type1_map_unmap: bool = True
    pgtable_binding: bool = False
    pasid_table_binding: bool = False
    nesting: str = "software"


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


# -- history --------------------------------------------------------------------------------
@dataclass(frozen=True)
class IoasOp:
    """One recorded operation; ``op`` is its name. Replay with ``IOAS.replay``."""

    op: ClassVar[str] = "op"

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            if not f.repr:
                continue
            v = getattr(self, f.name)
            parts.append(f"{f.name}={fmt_addr(v) if isinstance(v, int) and not isinstance(v, bool) else repr(v)}")
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class MapOp(IoasOp):
    op: ClassVar[str] = "map"
    length: int
    iova: int | None
    user_va: int | None
    prot: str
    result: int


@dataclass(frozen=True, repr=False)
class UnmapOp(IoasOp):
    """A range unmap; ``errno`` is set for the one failed call that still changed state (5.6)."""

    op: ClassVar[str] = "unmap"
    iova: int
    length: int
    result: int
    errno: str | None = None


@dataclass(frozen=True, repr=False)
class UnmapAllOp(IoasOp):
    op: ClassVar[str] = "unmap_all"
    result: int


@dataclass(frozen=True, repr=False)
class CopyOp(IoasOp):
    """``src`` is None when the copy came from the same IOAS."""

    op: ClassVar[str] = "copy"
    src_iova: int
    length: int
    iova: int | None
    prot: str
    result: int
    src: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, repr=False)
class AllowOp(IoasOp):
    op: ClassVar[str] = "allow_iovas"
    ranges: tuple[IovaRange, ...]


@dataclass(frozen=True, repr=False)
class ReserveOp(IoasOp):
    op: ClassVar[str] = "reserve"
    start: int
    last: int
    owner: str | None


@dataclass(frozen=True, repr=False)
class AttachOp(IoasOp):
    op: ClassVar[str] = "attach"
    device: Device


@dataclass(frozen=True, repr=False)
class DetachOp(IoasOp):
    op: ClassVar[str] = "detach"
    device: Device


@dataclass(frozen=True, repr=False)
class HugePagesOp(IoasOp):
    op: ClassVar[str] = "set_huge_pages"
    enabled: bool


@dataclass(frozen=True, repr=False)
class AddAccessOp(IoasOp):
    op: ClassVar[str] = "add_access"
    iova_alignment: int


@dataclass(frozen=True, repr=False)
class RemoveAccessOp(IoasOp):
    """``index`` counts accesses in the order ``add_access`` created them."""

    op: ClassVar[str] = "remove_access"
    index: int


# -- in-kernel access ---------------------------------------------------------------------
class Access:
    """An in-kernel user of the IOAS (an mdev driver, the selftest access), ``struct iommufd_access``.

    Its ``iova_alignment`` takes part in the IOAS alignment (rule 2.1). ``pin`` pins a range as
    ``iommufd_access_pin_pages`` does; an UNMAP over pinned pages is not refused — the access
    is told (``iommufd_access_notify_unmap``, recorded in ``notifications``) and drops its pins,
    then the unmap goes on (rule 5.7). A VFIO v1 cut through a pinned area is EINVAL (8.4).
    """

    def __init__(self, ioas: "IOAS", iova_alignment: int) -> None:
        self.ioas = ioas
        self.iova_alignment = iova_alignment
        self.pins: list[IovaRange] = []
        self.notifications: list[IovaRange] = []
        self.attached = True

    def pin(self, iova: int, length: int, *, write: bool = False) -> None:
        """Pin ``[iova, iova+length-1]``: length 0 → EINVAL, wrap → EOVERFLOW, not covered by
        contiguous areas → ENOENT, write on a read-only area → EPERM."""
        iova = _u64(iova, "iova")
        length = _u64(length, "length")
        if not self.attached:
            raise IommuError("ENOENT", "this access was removed from its IOAS")
        if length == 0:
            raise IommuError("EINVAL", "pin of 0 bytes")
        if iova + length - 1 > U64_MAX:
            raise IommuError("EOVERFLOW", f"pin [{fmt_addr(iova)} + {fmt_addr(length)}] wraps past 2^64")
        pieces = self.ioas._contiguous(iova, iova + length - 1)
        if pieces is None:
            raise IommuError("ENOENT", f"pin {IovaRange(iova, iova + length - 1)} is not fully mapped by contiguous areas")
        if write and any(not a.prot & Prot.WRITE for a, _, _ in pieces):
            raise IommuError("EPERM", f"write pin of {IovaRange(iova, iova + length - 1)} covers a read-only area")
        self.pins.append(IovaRange(iova, iova + length - 1))

    def unpin(self, iova: int, length: int) -> None:
        rng = IovaRange.from_size(iova, length)
        if rng not in self.pins:
            raise ValueError(f"{rng} was not pinned by this access; pins are {[str(p) for p in self.pins]}")
        self.pins.remove(rng)

    def _notify_unmap(self, area: Area) -> None:
        self.notifications.append(area.range)
        self.pins = [p for p in self.pins if not p.overlaps(area.range)]

    def pinned(self, area: Area) -> bool:
        return any(p.overlaps(area.range) for p in self.pins)

    def __repr__(self) -> str:
        return f"Access(iova_alignment={fmt_addr(self.iova_alignment)}, pins=[{', '.join(str(p) for p in self.pins)}])"


# -- argument checking --------------------------------------------------------------------
def _u64(value: object, name: str) -> int:
    """An int argument: TypeError for floats, strings, bools; ValueError when negative.

    Values of 2**64 and above are returned as they are so that each operation refuses them
    with the errno its kernel check gives (``>= ULONG_MAX`` → EOVERFLOW for IOAS_MAP, rule 4.2).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        if type(value).__module__ == "numpy" and getattr(getattr(value, "dtype", None), "kind", "") in "iu":
            value = int(value)  # type: ignore[call-overload]
        else:
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} {value} is negative; the uapi field is an unsigned __u64")
    return value


def _lowbit(x: int) -> int:
    return x & -x


RangesLike = Union[Iterable[Union[IovaRange, tuple]], RangeSet]


class IOAS:
    """An I/O address space with iommufd semantics (``struct io_pagetable``).

    Parameters
    ----------
    permitted, reserved, pgsizes : optional
        Convenience: behave as if a device ``"default"`` with these windows (IovaRange,
        RangeSet or a sequence of windows), reserved regions (ReservedRegion, IovaRange or
        ``(start, last)``; plain ranges become ``IOMMU_RESV_RESERVED``) and page-size bitmap
        were attached (a ``RangeSet`` merges touching windows; pass a list to keep them apart).
        With none of them the IOAS is fresh, as IOMMU_IOAS_ALLOC makes it: no
        reserved, no allowed, no areas, alignment 1 (rule 0.2).
    semantics : str or Semantics
        ``"iommufd"`` (default), ``"vfio-compat"``, ``"vfio-compat-v1"``, ``"type1"``,
        ``"type1-v1"`` (see ``iommu_lab.type1``).
    hpage_size : int
        ``HPAGE_SIZE``, the cap on automatic alignment (2 MiB with THP; PAGE_SIZE without).
    dma_entry_limit : int
        Real type1's mapping limit (default 65535).
    page_tables : bool
        Give each attached device whose ``format`` is set a real ``iommu_lab.pagetable.PageTable``
        domain, filled with every area as ``iopt_fill_domain``/``iopt_area_fill_domains`` do
        (default True). False keeps the IOAS a pure address-space model.
    host : iommu_lab.pagetable.HostMemory, optional
        Where user VAs resolve to physical pages when domains are filled (what
        ``pin_user_pages`` returns); default ``HostMemory()`` (2 MiB THP backing).
    """

    def __init__(
        self,
        permitted: Any = None,
        reserved: Sequence[Any] | None = None,
        pgsizes: int | None = None,
        *,
        semantics: Union[str, Semantics] = Semantics.IOMMUFD,
        hpage_size: int = HPAGE_SIZE,
        dma_entry_limit: int = DMA_ENTRY_LIMIT,
        page_tables: bool = True,
        host: Any = None,
    ) -> None:
        self.semantics = Semantics.parse(semantics)
        self._real_t1 = self.semantics.is_real_type1
        self._compat = self.semantics.is_compat
        if isinstance(hpage_size, bool) or not isinstance(hpage_size, int) or hpage_size < PAGE_SIZE or hpage_size & (hpage_size - 1):
            raise ValueError(f"hpage_size must be a power of two >= PAGE_SIZE (0x1000), got {hpage_size!r}")
        self.hpage_size = hpage_size
        self._index = AreaIndex()
        self._reservations: list[Reservation] = []
        self._allowed = RangeSet()
        self._devices: list[Device] = []
        self._accesses: list[Access] = []
        self._accesses_made = 0
        # IOMMU_OPTION_HUGE_PAGES; VFIO_TYPE1_IOMMU (v1) disables them (rule 8.4).
        self._huge_pages = self.semantics is not Semantics.VFIO_COMPAT_V1
        self._alignment = self._compute_alignment()
        self._windows: tuple[IovaRange, ...] = (IovaRange(0, U64_MAX),)
        self._next_va = ANON_VA_BASE
        self._dma_limit = dma_entry_limit
        self._dma_avail = dma_entry_limit
        self._platform: Any = None
        self._page_tables = bool(page_tables)
        self._host = host
        # One paging domain per attached device whose ``format`` names a page-table format.
        self._domains: dict[str, Any] = {}
        #: Successful operations, oldest first (plus the non-atomic failed unmap, rule 5.6).
        self.history: list[IoasOp] = []
        if permitted is not None or reserved is not None or pgsizes is not None:
            from iommu_lab.hardware.device import ReservedRegion

            regions = []
            for r in reserved or ():
                if isinstance(r, ReservedRegion):
                    regions.append(r)
                elif isinstance(r, IovaRange):
                    regions.append(ReservedRegion(r.start, r.last, ResvType.RESERVED))
                else:
                    regions.append(ReservedRegion(*r))
            kwargs: dict[str, Any] = {"reserved": tuple(regions)}
            if permitted is not None:
                kwargs["aperture"] = tuple(permitted) if isinstance(permitted, RangeSet) else permitted
            if pgsizes is not None:
                kwargs["pgsizes"] = pgsizes
            self.attach(Device("default", **kwargs))

    @classmethod
    def from_platform(cls, platform: Any, **kwargs: Any) -> "IOAS":
        """An IOAS with ``platform.device()`` attached; ``info()`` then reports the platform's
        nesting and binding capabilities where it describes them."""
        ioas = cls(**kwargs)
        ioas._platform = platform
        ioas.attach(platform.device())
        return ioas

    # -- state -------------------------------------------------------------------------------
    @property
    def areas(self) -> tuple[Area, ...]:
        """Every area, sorted by IOVA."""
        return self._index.values()

    @property
    def reserved(self) -> tuple[Reservation, ...]:
        """The reserved-tree nodes, sorted by start (they may overlap, rule 0.3)."""
        return tuple(sorted(self._reservations, key=lambda r: (r.start, r.last)))

    @property
    def allowed(self) -> RangeSet:
        """The user's ALLOW_IOVAS list (empty: automatic allocation may use any hole)."""
        return self._allowed

    @property
    def devices(self) -> tuple[Device, ...]:
        return tuple(self._devices)

    @property
    def domains(self) -> tuple[Any, ...]:
        """The paging domains (``PageTable``), one per attached device with a ``format``."""
        return tuple(self._domains.values())

    def domain(self, device: Union[Device, str]) -> Any:
        """The ``PageTable`` of one attached device (KeyError if it has none)."""
        return self._domains[device if isinstance(device, str) else device.name]

    @property
    def accesses(self) -> tuple[Access, ...]:
        return tuple(self._accesses)

    @property
    def huge_pages(self) -> bool:
        return self._huge_pages

    @property
    def iova_alignment(self) -> int:
        """``iopt->iova_alignment`` (rule 2.1); for real type1 the smallest IOMMU page."""
        if self.semantics.is_real_type1:
            return _t1.type1_pgsize(self)
        return self._alignment

    def permitted(self) -> tuple[IovaRange, ...]:
        """The windows a map must lie within: the pairwise intersection of the attached devices'
        windows, kept unmerged (nesting_pasid_windows.md §0, §5.1). No device: the whole space."""
        return self._windows

    def iova_ranges(self) -> RangeSet:
        """IOMMU_IOAS_IOVA_RANGES: the holes of the reserved tree over [0, U64_MAX], adjacent
        nodes merged (``iommufd_ioas_iova_ranges``, rules 1.1–1.3). Allowed ranges and areas do not
        change it. Real type1 answers its ``iova_list`` (the whole space while it is empty)."""
        holes = RangeSet.full() - RangeSet(r.range for r in self._reservations)
        if self.semantics.is_real_type1 and self._devices:
            return RangeSet(self._permitted_pieces())
        return holes

    def areas_in(self, iova: int, length: int) -> tuple[Area, ...]:
        """The areas intersecting ``[iova, iova+length-1]`` (e.g. the pieces one COPY made)."""
        return tuple(self._index.overlapping(iova, iova + length - 1))

    # -- alignment --------------------------------------------------------------------------
    def _compute_alignment(self, devices: Iterable[Device] | None = None, accesses: Iterable[int] | None = None,
                           huge_pages: bool | None = None) -> int:
        """``iopt_calculate_iova_alignment``: max of 1, PAGE_SIZE with huge pages off, each domain's
        smallest page and each access's alignment (rule 2.1)."""
        devices = self._devices if devices is None else devices
        accesses = [a.iova_alignment for a in self._accesses] if accesses is None else accesses
        huge = self._huge_pages if huge_pages is None else huge_pages
        align = 1 if huge else PAGE_SIZE
        for d in devices:
            align = max(align, d.min_pgsize)
        for a in accesses:
            align = max(align, a)
        return align

    def _check_alignment_raise(self, new_alignment: int, why: str) -> None:
        """``iopt_check_iova_alignment``: every area's iova, length and VA page offset must be a
        multiple of the raised alignment, else EADDRINUSE (rule 2.3)."""
        if new_alignment <= self._alignment:
            return
        mask = new_alignment - 1
        for a in self._index:
            if a.iova & mask or a.length & mask or a.page_offset & mask:
                raise IommuError(
                    "EADDRINUSE",
                    f"{why} raises iova_alignment to {fmt_addr(new_alignment)} but area {a.range} (length "
                    f"{fmt_addr(a.length)}, VA page offset {fmt_addr(a.page_offset)}) is not aligned to it (rule 2.3)",
                )

    # -- allowed and reserved ----------------------------------------------------------------
    def allow_iovas(self, ranges: RangesLike) -> None:
        """IOMMU_IOAS_ALLOW_IOVAS: replace the allowed list atomically (rules 1.5–1.8).

        Per range, in order: ``start >= last`` → EINVAL (a 1-byte range is refused); overlap with
        an earlier range of the list → EINVAL (adjacent is fine). Then any range intersecting a
        reserved one → EADDRINUSE, keeping the old list. Not checked against areas. An empty
        list clears it. Allowed ranges steer only automatic allocation.
        """
        if self.semantics.is_real_type1:
            raise UnsupportedError("real VFIO type1 has no ALLOW_IOVAS; use semantics='iommufd' or a compat mode")
        if isinstance(ranges, (IovaRange, str)):
            raise TypeError("allow_iovas takes a list of ranges, e.g. [IovaRange(0x1000, 0xfffff)]")
        items: list[IovaRange] = []
        for i, r in enumerate(ranges):
            if isinstance(r, IovaRange):
                start, last = r.start, r.last
            elif isinstance(r, tuple) and len(r) == 2:
                start, last = _u64(r[0], f"allowed[{i}] start"), _u64(r[1], f"allowed[{i}] last")
                if start > U64_MAX or last > U64_MAX:
                    raise ValueError(f"allowed[{i}] ({start:#x}, {last:#x}) does not fit the __u64 fields")
            else:
                raise TypeError(f"allowed[{i}] must be an IovaRange or a (start, last) tuple, got {r!r}")
            if start >= last:
                raise IommuError(
                    "EINVAL",
                    f"allowed range {i} [{fmt_addr(start)}, {fmt_addr(last)}] has start >= last; ALLOW_IOVAS "
                    f"needs start < last (rule 1.5, iommufd_ioas_load_iovas)",
                )
            for j, prev in enumerate(items):
                if prev.start <= last and start <= prev.last:
                    raise IommuError(
                        "EINVAL",
                        f"allowed range {i} [{fmt_addr(start)}, {fmt_addr(last)}] overlaps range {j} {prev} of the "
                        f"same list; ranges may touch but not overlap (rule 1.5)",
                    )
            items.append(IovaRange(start, last))
        for rng in items:
            for res in self._reservations:
                if res.start <= rng.last and rng.start <= res.last:
                    raise IommuError(
                        "EADDRINUSE",
                        f"allowed range {rng} intersects reserved {res}; the old allowed list stays "
                        f"(rule 1.6, iopt_set_allow_iova). Free IOVAs: {self.iova_ranges()}",
                    )
        self._allowed = RangeSet(items)
        self.history.append(AllowOp(tuple(items)))

    def reserve(self, rng: Union[IovaRange, tuple], owner: str | None = None) -> Reservation:
        """Add a reserved range as the selftest's IOMMU_TEST_OP_ADD_RESERVED (rules 1.7, 1.9).

        Intersecting an area or an allowed range → EADDRINUSE (``iopt_reserve_iova``).
        """
        if self.semantics.is_real_type1:
            raise UnsupportedError("real VFIO type1 has no reserved tree to add to; reserved regions come from attach")
        if isinstance(rng, tuple) and len(rng) == 2:
            rng = IovaRange(_u64(rng[0], "start"), _u64(rng[1], "last"))
        if not isinstance(rng, IovaRange):
            raise TypeError(f"reserve takes an IovaRange or a (start, last) tuple, got {type(rng).__name__} {rng!r}")
        if owner is not None and not isinstance(owner, str):
            raise TypeError(f"owner must be a string or None, got {type(owner).__name__} {owner!r}")
        res = Reservation(rng.start, rng.last, owner, "user")
        self._check_reservable([res], "reserve")
        self._reservations.append(res)
        self._reserved_changed()
        self.history.append(ReserveOp(rng.start, rng.last, owner))
        return res

    def _check_reservable(self, new: Iterable[Reservation], what: str) -> None:
        """``iopt_reserve_iova``: a reservation may not intersect an area or an allowed range."""
        for res in new:
            hit = self._index.first_overlapping(res.start, res.last)
            if hit is not None:
                raise IommuError(
                    "EADDRINUSE",
                    f"{what}: reserving {res.range} ({res.kind}) would cover the mapped area {hit.range}; "
                    f"unmap it first (rule 1.7/7.2, iopt_reserve_iova)",
                )
            for a in self._allowed.overlapping(res.range):
                raise IommuError(
                    "EADDRINUSE",
                    f"{what}: reserving {res.range} ({res.kind}) would cover the allowed range {a}; allowed "
                    f"ranges are promised to stay usable (rule 1.7/7.2, iopt_reserve_iova)",
                )

    def _reserved_changed(self) -> None:
        self._index.set_reserved([r.range for r in self._reservations])

    # -- devices -----------------------------------------------------------------------------
    def _windows_with(self, devices: Iterable[Device]) -> tuple[IovaRange, ...]:
        windows = [IovaRange(0, U64_MAX)]
        for dev in devices:
            nxt = []
            for w in windows:
                for d in dev.windows:
                    x = w.intersection(d)
                    if x is not None:
                        nxt.append(x)
            windows = nxt
        return tuple(sorted(windows))

    def _permitted_pieces(self, extra_devices: Sequence[Device] = (), extra_resv: Sequence[Reservation] = ()) -> tuple[IovaRange, ...]:
        """Usable ranges split at window boundaries: each window minus the reserved tree."""
        windows = self._windows_with(list(self._devices) + list(extra_devices))
        resv = RangeSet(r.range for r in list(self._reservations) + list(extra_resv))
        out: list[IovaRange] = []
        for w in windows:
            out.extend(RangeSet([w]) - resv)
        return tuple(out)

    @staticmethod
    def _aperture_reservations(device: Device) -> list[Reservation]:
        """Everything outside the device's windows, as ``iopt_table_add_domain`` reserves
        ``[0, aperture_start-1]`` and ``[aperture_end+1, MAX]`` with owner = the domain."""
        outside = RangeSet.full() - RangeSet(device.windows)
        return [Reservation(r.start, r.last, device.name, "aperture") for r in outside]

    def attach(self, device: Device) -> None:
        """Attach a device: reserve its regions, then add its domain (rules 7.1–7.4, 2.1–2.3).

        Order as ``iommufd_hwpt_paging_alloc`` with immediate attach: (1) every reserved region
        except DIRECT_RELAXABLE, owner = device; one intersecting an area or an allowed range →
        EADDRINUSE; SW_MSI together with MSI, or two SW_MSI → EINVAL
        (``iopt_table_enforce_dev_resv_regions``); (2) ``iopt_table_add_domain``: smallest page
        > PAGE_SIZE → EINVAL; raised alignment not met by an area → EADDRINUSE; the aperture
        complement reserved → EADDRINUSE on conflict. On failure nothing is left behind.
        Model extension: an existing area that would straddle two touching windows of the new
        device is refused first (EADDRINUSE; EINVAL under real type1), since no reservation
        separates touching windows and the kernel's own checks would not see it.
        Model: each device brings its own domain (the kernel may share a compatible auto
        domain; the reservations that result are the same).
        """
        if not isinstance(device, Device):
            raise TypeError(f"attach takes a Device, got {type(device).__name__} {device!r}")
        if any(d.name == device.name for d in self._devices):
            raise IommuError("EINVAL", f"device {device.name!r} is already attached to this IOAS; detach it first")
        regions = [
            Reservation(r.start, r.last, device.name, "region", r.type) for r in device.reserved if r.type.becomes_hole
        ]
        aperture = self._aperture_reservations(device)
        windows = self._windows_with(list(self._devices) + [device])
        for area in self._index:
            if not any(w.start <= area.iova and area.last <= w.last for w in windows):
                inside = RangeSet(windows).find(area.iova)
                if inside is not None and area.last in RangeSet(windows):
                    # Touching windows: nothing is reserved between them, yet the area would span
                    # two separately created tables (model extension, Gibson's window rule).
                    raise IommuError(
                        "EINVAL" if self.semantics.is_real_type1 else "EADDRINUSE",
                        f"attach {device.name!r}: existing area {area.range} would straddle two of the windows "
                        f"{', '.join(str(w) for w in windows)}; a mapping lies inside one window",
                    )
        if self.semantics.is_real_type1:
            _t1.type1_attach_check(self, device, regions + aperture)
        else:
            self._check_reservable(regions, f"attach {device.name!r}")
            n_sw = sum(r.type is ResvType.SW_MSI for r in regions)
            n_hw = sum(r.type is ResvType.MSI for r in regions)
            if (n_sw and n_hw) or n_sw > 1:
                raise IommuError(
                    "EINVAL",
                    f"attach {device.name!r}: the driver reports {n_sw} SW_MSI and {n_hw} MSI regions; iommufd accepts "
                    f"one SW_MSI or hardware MSI, not both (rule 7.1, iopt_table_enforce_dev_resv_regions)",
                )
            new_align = max(device.min_pgsize, self._alignment)
            if new_align > PAGE_SIZE:
                raise IommuError(
                    "EINVAL",
                    f"attach {device.name!r}: its smallest IOMMU page {fmt_size(device.min_pgsize)} is larger than "
                    f"PAGE_SIZE {fmt_size(PAGE_SIZE)}; iommufd needs domains that accept PAGE_SIZE (rule 2.2)",
                )
            self._check_alignment_raise(new_align, f"attach {device.name!r}")
            self._check_reservable(aperture, f"attach {device.name!r}")
        domain = self._new_domain(device)
        self._devices.append(device)
        self._reservations.extend(regions + aperture)
        if domain is not None:
            self._domains[device.name] = domain
        self._after_device_change()
        self.history.append(AttachOp(device))

    def detach(self, device: Union[Device, str]) -> None:
        """Detach: drop the reservations the device and its domain own, recompute the alignment
        (it may fall back to 1) (rule 7.4, ``iopt_remove_reserved_iova``,
        ``iopt_table_remove_domain``). A device that is not attached → ENOENT (model choice)."""
        name = device if isinstance(device, str) else getattr(device, "name", None)
        if not isinstance(name, str):
            raise TypeError(f"detach takes a Device or its name, got {type(device).__name__} {device!r}")
        found = next((d for d in self._devices if d.name == name), None)
        if found is None:
            raise IommuError("ENOENT", f"device {name!r} is not attached; attached: {[d.name for d in self._devices]}")
        self._devices.remove(found)
        self._domains.pop(name, None)
        self._reservations = [r for r in self._reservations if not (r.owner == name and r.kind in ("region", "aperture"))]
        self._after_device_change()
        self.history.append(DetachOp(found))

    def _after_device_change(self) -> None:
        self._alignment = self._compute_alignment()
        self._windows = self._windows_with(self._devices)
        self._reserved_changed()

    # -- options and accesses -----------------------------------------------------------------
    def set_huge_pages(self, enabled: bool) -> None:
        """IOMMU_OPTION_HUGE_PAGES (rule 2.7): off with a domain *and* an area → EINVAL; off sets the
        alignment to at least PAGE_SIZE subject to 2.3 (EADDRINUSE); off when off is a no-op;
        on always succeeds and recomputes (``iopt_disable_large_pages``, ``iopt_enable_large_pages``)."""
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be True or False, got {type(enabled).__name__} {enabled!r}")
        if self.semantics.is_real_type1:
            raise UnsupportedError("IOMMU_OPTION_HUGE_PAGES is an iommufd option; real type1 has no such switch")
        if not enabled and self._huge_pages:
            if self._devices and len(self._index):
                raise IommuError(
                    "EINVAL",
                    "cannot disable huge pages: a domain is attached and areas are already mapped into it "
                    "(rule 2.7, iopt_disable_large_pages); unmap everything or detach first",
                )
            new_align = self._compute_alignment(huge_pages=False)
            self._check_alignment_raise(new_align, "disabling huge pages")
        self._huge_pages = enabled
        self._alignment = self._compute_alignment()
        self.history.append(HugePagesOp(enabled))

    def add_access(self, iova_alignment: int = 1) -> Access:
        """Add an in-kernel access (``iopt_add_access``): its alignment joins the IOAS alignment;
        raising it past an area's alignment → EADDRINUSE (rules 2.1, 2.3)."""
        if isinstance(iova_alignment, bool) or not isinstance(iova_alignment, int):
            raise TypeError(f"iova_alignment must be an int, got {type(iova_alignment).__name__} {iova_alignment!r}")
        if iova_alignment < 1 or iova_alignment & (iova_alignment - 1):
            raise ValueError(f"iova_alignment {iova_alignment:#x} must be a power of two >= 1")
        if self.semantics.is_real_type1:
            raise UnsupportedError("the model's in-kernel accesses are iommufd's (struct iommufd_access)")
        new_align = max(self._alignment, iova_alignment)
        self._check_alignment_raise(new_align, "adding an access")
        access = Access(self, iova_alignment)
        self._accesses.append(access)
        self._accesses_made += 1
        access._index = self._accesses_made - 1  # type: ignore[attr-defined]
        self._alignment = self._compute_alignment()
        self.history.append(AddAccessOp(iova_alignment))
        return access

    def remove_access(self, access: Access) -> None:
        """Remove an access (``iopt_remove_access``): its pins go, the alignment is recomputed."""
        if not isinstance(access, Access):
            raise TypeError(f"remove_access takes an Access, got {type(access).__name__}")
        if access not in self._accesses:
            raise IommuError("ENOENT", "this access is not attached to this IOAS")
        self._accesses.remove(access)
        access.attached = False
        access.pins.clear()
        self._alignment = self._compute_alignment()
        self.history.append(RemoveAccessOp(access._index))  # type: ignore[attr-defined]

    # -- map ----------------------------------------------------------------------------------
    def map(self, length: int, iova: int | None = None, *, user_va: int | None = None, prot: Union[str, int, Prot] = "rw") -> Area:
        """IOMMU_IOAS_MAP: map ``length`` bytes of user memory, at ``iova`` or wherever
        ``iopt_alloc_iova`` puts it when ``iova`` is None (rule 3).

        Checks in the kernel's order (rule 4): flags → EOPNOTSUPP; ``iova``/``length`` >= U64_MAX →
        EOVERFLOW (the iova test applies even for automatic maps); no READ/WRITE → EINVAL;
        ``length`` 0 or > SIZE_MAX - PAGE_SIZE → EINVAL, then ``user_va + length`` wrap → EOVERFLOW
        (pages.c ``iopt_alloc_pages``; the reference lists these two the other way round, the code
        reads as here); ``length % iova_alignment`` → EINVAL; then automatic allocation (rule 3)
        or the FIXED checks (4.7: misaligned EINVAL, wrap EOVERFLOW, reserved or outside a window
        EINVAL, area EEXIST); then EPERM / VA-offset EINVAL (4.8). ``user_va=None`` maps a fresh
        2 MiB-aligned buffer the model places after the previous one.
        """
        length = _u64(length, "length")
        if iova is not None:
            iova = _u64(iova, "iova")
        if user_va is not None:
            user_va = _u64(user_va, "user_va")
        prot = Prot.parse(prot)
        if self._real_t1:
            va = user_va if user_va is not None else self._fresh_va(length)
            area = _t1.type1_map(self, length, iova, va, prot)
            self._dma_avail -= 1
            self._after_map(user_va, length, iova, prot, area)
            return area
        if self._compat:
            if iova is None:
                raise ValueError("VFIO_IOMMU_MAP_DMA has no automatic IOVA; give iova= (it is always a FIXED map)")
        elif (iova is not None and iova >= U64_MAX) or length >= U64_MAX:
            bad = f"iova {fmt_addr(iova)}" if iova is not None and iova >= U64_MAX else f"length {fmt_addr(length)}"
            raise IommuError("EOVERFLOW", f"{bad} is >= ULONG_MAX 0xffff_ffff_ffff_ffff (rule 4.2, iommufd_ioas_map)")
        if not int(prot) & 3 and not self._compat:
            raise IommuError("EINVAL", "map with neither READABLE nor WRITEABLE; give prot='r', 'w' or 'rw' (rule 4.3)")
        if length == 0 or length > _SIZE_MAX - PAGE_SIZE:
            raise IommuError(
                "EINVAL",
                f"map length {fmt_addr(length)} must be 1..SIZE_MAX-PAGE_SIZE (0xffff_ffff_ffff_efff) (rule 4.5, iopt_alloc_pages)",
            )
        va = user_va if user_va is not None else self._fresh_va(length)
        if va + length > U64_MAX:
            raise IommuError("EOVERFLOW", f"user_va {fmt_addr(va)} + length {fmt_addr(length)} wraps past 2^64 (rule 4.5)")
        pages = Pages(va - va % PAGE_SIZE, length + va % PAGE_SIZE, bool(int(prot) & 2))
        area = self._map_pieces([(pages, va, length)], length, iova, prot)[0]
        self._after_map(user_va, length, iova, prot, area)
        return area

    def _fresh_va(self, length: int) -> int:
        va = self._next_va
        if va + length > U64_MAX:
            va = self.hpage_size
        return va

    def _after_map(self, user_va: int | None, length: int, iova: int | None, prot: Prot, area: Area) -> None:
        if user_va is None:
            end = area.user_va + length
            self._next_va = (end + self.hpage_size - 1) // self.hpage_size * self.hpage_size
        self.history.append(MapOp(length, iova, user_va, prot.letters, area.iova))

    def _map_pieces(self, pieces: list[tuple[Pages, int, int]], length: int, iova: int | None, prot: Prot) -> list[Area]:
        """``iopt_map_pages`` → ``iopt_alloc_area_pages``: length alignment (4.6), IOVA choice or
        check (rule 3 / 4.7), then ``iopt_insert_area`` per piece (4.8), all checked before any
        area is inserted (the kernel aborts the inserted ones on error)."""
        align = self._alignment
        if length & (align - 1) or not length:
            raise IommuError(
                "EINVAL",
                f"length {fmt_addr(length)} is not a multiple of iova_alignment {fmt_addr(align)} (rule 4.6)",
            )
        if iova is None:
            pages0, va0, _ = pieces[0]
            iova = self._alloc_iova(va0, length)
        else:
            self._check_iova(iova, length)
        for pages, va, _ in pieces:
            if int(prot) & 2 and not pages.writable:
                raise IommuError(
                    "EPERM",
                    f"writeable mapping requested of read-only pages (VA {fmt_addr(va)}, mapped without write); "
                    f"copy with prot='r' (rule 4.8/6.6, iopt_insert_area)",
                )
            if va % PAGE_SIZE & (align - 1):
                raise IommuError(
                    "EINVAL",
                    f"user VA {fmt_addr(va)} has page offset {fmt_addr(va % PAGE_SIZE)}, not a multiple of "
                    f"iova_alignment {fmt_addr(align)} (rule 4.8, iopt_insert_area)",
                )
        return self._commit_map(pieces, iova, prot)

    def _commit_map(self, pieces: list[tuple[Pages, int, int]], iova: int, prot: Prot) -> list[Area]:
        """Insert the areas, then fill the domains (``iopt_map_pages``); if a fill fails, the areas
        already filled are unfilled and every new area is aborted, so the IOAS is unchanged."""
        out = []
        cur = iova
        for pages, va, n in pieces:
            area = Area(cur, n, va, PROT_BY_INT[int(prot) & 3], pages, va - pages.user_va)
            self._index.insert(area)
            out.append(area)
            cur += n
        if self._domains:
            filled = []
            try:
                for area in out:
                    self._fill_domains(area)
                    filled.append(area)
            except Exception:
                for area in filled:
                    self._clear_domains(area)
                for area in out:
                    self._index.remove(area)
                raise
        return out

    def _check_iova(self, iova: int, length: int) -> None:
        """``iopt_check_iova`` (rule 4.7), plus the window rule: misaligned → EINVAL; wrap →
        EOVERFLOW; reserved or outside the windows → EINVAL; straddling two windows → EINVAL;
        an existing area → EEXIST. So reserved + area overlap is EINVAL, never EEXIST."""
        align = self._alignment
        if iova & (align - 1):
            raise IommuError("EINVAL", f"iova {fmt_addr(iova)} is not a multiple of iova_alignment {fmt_addr(align)} (rule 4.7)")
        last = iova + length - 1
        if last > U64_MAX:
            raise IommuError("EOVERFLOW", f"iova {fmt_addr(iova)} + length {fmt_addr(length)} - 1 wraps past 2^64 (rule 4.7)")
        rng = IovaRange(iova, last)
        hits = [r for r in self._reservations if r.start <= last and iova <= r.last]
        if hits:
            res = min(hits, key=lambda r: (r.start, r.last))
            if res.kind == "aperture":
                raise IommuError("EINVAL", self._window_message(rng) + " (rule 4.7: outside the aperture is reserved)")
            raise IommuError(
                "EINVAL",
                f"map {rng} overlaps reserved {res}; free IOVAs are {self.iova_ranges()} (rule 4.7, iopt_check_iova)",
            )
        windows = self._windows
        if len(windows) == 1:
            inside = windows[0].start <= iova and last <= windows[0].last
        else:
            inside = any(w.start <= iova and last <= w.last for w in windows)
        if not inside:
            raise IommuError("EINVAL", self._window_message(rng) + " (Gibson's window rule: a map lies inside one window)")
        hit = self._index.first_overlapping(iova, last) if self._index.any_overlap(iova, last) else None
        if hit is not None:
            raise IommuError("EEXIST", f"map {rng} overlaps the existing area {hit.range}; unmap it first (rule 4.7)")

    def _window_message(self, rng: IovaRange) -> str:
        windows = ", ".join(str(w) for w in self._windows)
        inside = next((w for w in self._windows if rng.start in w), None)
        if inside is not None:
            what = f"crosses the end of window {inside}"
        else:
            later = next((w for w in self._windows if rng.start < w.start <= rng.last), None)
            what = f"crosses the start of window {later}" if later else "lies outside every window"
        return f"map {rng} {what}; the permitted windows are {windows}"

    def _alloc_iova(self, addr: int, length: int) -> int:
        """``iopt_alloc_iova`` (rule 3): lowest-address first fit.

        ``length`` 0 or >= U64_MAX/2 → EOVERFLOW; alignment = ``roundup_pow_of_two(length)``, or its
        min with the lowest set bit of the hint VA ``addr``, capped at HPAGE_SIZE; below
        ``iova_alignment`` → EINVAL. The allowed spans (or, with none, one span) clipped to
        ``[PAGE_SIZE, U64_MAX - PAGE_SIZE]`` are walked ascending, each start aligned and OR-ed with
        the VA page offset, then the holes of reserved ∪ areas inside; ALIGN_UP wrap, ``start >=
        last`` or too short rejects a candidate. Nothing fits → ENOSPC. Model extension: spans are
        also split at window boundaries, so an automatic map never straddles touching windows.
        """
        if length == 0 or length >= U64_MAX // 2:
            raise IommuError("EOVERFLOW", f"automatic map length {fmt_addr(length)} must be below 2^63-1 (rule 3.1)")
        page_offset = addr % PAGE_SIZE
        align = roundup_pow_of_two(length)
        if addr:
            align = min(align, _lowbit(addr))
        if align >= self.hpage_size:
            align = self.hpage_size
        if align < self._alignment:
            raise IommuError(
                "EINVAL",
                f"automatic alignment {fmt_addr(align)} (from length {fmt_addr(length)} and user VA {fmt_addr(addr)}) is "
                f"below iova_alignment {fmt_addr(self._alignment)} (rule 3.3)",
            )
        window = IovaRange(PAGE_SIZE, U64_MAX - PAGE_SIZE)
        spans = self._allowed.intersection([window]) if self._allowed else RangeSet([window])
        pieces = [p for w in self._windows for p in spans.intersection([w])] if len(self._windows) > 1 else list(spans)
        for span in pieces:
            start = _fits(span.start, span.last, length, align, page_offset)
            if start is None:
                continue
            found = self._index.first_fit(start, span.last, length, align, page_offset)
            if found is not None:
                return found
        raise IommuError(
            "ENOSPC",
            f"no free hole fits {fmt_addr(length)} bytes at alignment {fmt_addr(align)} (VA page offset "
            f"{fmt_addr(page_offset)}) inside {'the allowed ranges ' + str(self._allowed) if self._allowed else str(window)}"
            f" (rule 3.4)",
        )

    # -- copy -------------------------------------------------------------------------------
    def copy(self, src: "IOAS", src_iova: int, length: int, iova: int | None = None, *, prot: Union[str, int, Prot] = "rw") -> Area:
        """IOMMU_IOAS_COPY: map into this IOAS the pages behind ``src``'s ``[src_iova, +length)``.

        Rule 6, in order: flags → EOPNOTSUPP; length/src_iova/iova >= U64_MAX → EOVERFLOW; no
        READ/WRITE → EINVAL; source: length 0 → EINVAL, wrap → EOVERFLOW, not covered by
        contiguous areas → ENOENT (it may start and end inside areas); then the destination as
        MAP (4.6–4.8; automatic placement hints with the source VA of the first byte); a
        WRITEABLE copy of read-only pages → EPERM. One destination area is made per source area
        piece (6.4); the first is returned, all are ``areas_in(first.iova, length)``.
        """
        if not isinstance(src, IOAS):
            raise TypeError(f"copy source must be an IOAS, got {type(src).__name__}")
        src_iova = _u64(src_iova, "src_iova")
        length = _u64(length, "length")
        if iova is not None:
            iova = _u64(iova, "iova")
        prot = Prot.parse(prot)
        if self.semantics.is_real_type1 or src.semantics.is_real_type1:
            raise UnsupportedError("IOMMU_IOAS_COPY exists only on iommufd IOASes, not on a real VFIO type1 container")
        if length >= U64_MAX or src_iova >= U64_MAX or (iova is not None and iova >= U64_MAX):
            raise IommuError("EOVERFLOW", "copy length/src_iova/dst_iova >= ULONG_MAX (rule 6.1)")
        if not prot & Prot.RW:
            raise IommuError("EINVAL", "copy with neither READABLE nor WRITEABLE (rule 6.1)")
        if length == 0:
            raise IommuError("EINVAL", "copy of 0 bytes (rule 6.2, iopt_get_pages)")
        src_last = src_iova + length - 1
        if src_last > U64_MAX:
            raise IommuError("EOVERFLOW", f"src_iova {fmt_addr(src_iova)} + length {fmt_addr(length)} wraps past 2^64 (rule 6.2)")
        pieces = src._contiguous(src_iova, src_last)
        if pieces is None:
            raise IommuError(
                "ENOENT",
                f"source {IovaRange(src_iova, src_last)} is not covered by contiguous areas of the source IOAS (rule 6.2)",
            )
        made = self._map_pieces([(a.pages, a.va_of(s), n) for a, s, n in pieces], length, iova, prot)
        self.history.append(CopyOp(src_iova, length, iova, prot.letters, made[0].iova, None if src is self else src))
        return made[0]

    def _contiguous(self, start: int, last: int) -> list[tuple[Area, int, int]] | None:
        """``iopt_get_pages``: (area, first IOVA used, bytes) pieces covering ``[start, last]`` with
        no gap, or None (``iopt_area_contig_*``)."""
        area = self._index.find(start)
        out = []
        cur = start
        while area is not None:
            end = min(area.last, last)
            out.append((area, cur, end - cur + 1))
            if end == last:
                return out
            cur = end + 1
            nxt = self._index.next_after(area)
            area = nxt if nxt is not None and nxt.iova == cur else None
        return None

    # -- unmap ------------------------------------------------------------------------------
    def unmap(self, iova: int, length: int) -> int:
        """IOMMU_IOAS_UNMAP: remove whole areas inside ``[iova, iova+length-1]``; returns the bytes
        removed, which may be less than ``length`` (rule 5.5).

        ``(0, U64_MAX)`` is unmap-all (5.1). Otherwise ``iova``/``length`` >= U64_MAX → EOVERFLOW;
        ``length`` 0 → EINVAL; wrap → EOVERFLOW (5.2). Areas are removed in ascending order as
        ``iopt_unmap_iova_range`` does; one sticking out of the range → ENOENT — *after* the earlier
        ones are gone (5.6: not atomic; the error's ``unmapped`` gives their bytes, and if the first
        area sticks out nothing is removed). Nothing in range → ENOENT (5.4). Alignment is not
        checked (5.8). Pinned areas: the accesses are told and the unmap goes on (5.7).
        Compat and type1 modes follow rules 8.3 and 9.3/9.4 instead.
        """
        iova = _u64(iova, "iova")
        length = _u64(length, "length")
        if self._real_t1:
            n = _t1.type1_unmap(self, iova, length)
            self.history.append(UnmapOp(iova, length, n))
            return n
        if self._compat:
            try:
                n = _t1.compat_unmap(self, iova, length)
            except IommuError as e:
                if getattr(e, "unmapped", 0):
                    self.history.append(UnmapOp(iova, length, e.unmapped, e.errno))  # type: ignore[attr-defined]
                raise
            self.history.append(UnmapOp(iova, length, n))
            return n
        if iova == 0 and length == U64_MAX:
            n = self._unmap_range(0, U64_MAX, empty_ok=True)
            self.history.append(UnmapOp(iova, length, n))
            return n
        if iova >= U64_MAX or length >= U64_MAX:
            bad = f"iova {fmt_addr(iova)}" if iova >= U64_MAX else f"length {fmt_addr(length)}"
            raise IommuError("EOVERFLOW", f"{bad} is >= ULONG_MAX; only (0, U64_MAX) means unmap-all (rule 5.2)")
        if length == 0:
            raise IommuError("EINVAL", "unmap of 0 bytes (rule 5.2, iopt_unmap_iova)")
        last = iova + length - 1
        if last > U64_MAX:
            raise IommuError("EOVERFLOW", f"iova {fmt_addr(iova)} + length {fmt_addr(length)} - 1 wraps past 2^64 (rule 5.2)")
        try:
            n = self._unmap_range(iova, last, empty_ok=False)
        except IommuError as e:
            if getattr(e, "unmapped", 0):
                self.history.append(UnmapOp(iova, length, e.unmapped, e.errno))  # type: ignore[attr-defined]
            raise
        self.history.append(UnmapOp(iova, length, n))
        return n

    def unmap_all(self) -> int:
        """Unmap every area (IOMMU_IOAS_UNMAP with ``(0, U64_MAX)``, VFIO_DMA_UNMAP_FLAG_ALL):
        succeeds when empty, returns the bytes removed (``iopt_unmap_all``, rule 5.1/8.3)."""
        if self.semantics.is_real_type1:
            n = self._commit_unmap(list(self._index))
        else:
            n = self._unmap_range(0, U64_MAX, empty_ok=True)
        self.history.append(UnmapAllOp(n))
        return n

    def _unmap_range(self, start: int, last: int, *, empty_ok: bool) -> int:
        """``iopt_unmap_iova_range``: repeatedly take the first area intersecting the range; if it
        sticks out → ENOENT (earlier removals stand); else notify accesses, unfill domains, remove."""
        removed = 0
        # The kernel re-queries the first intersecting area after each removal; nothing else
        # changes the tree meanwhile, so one ascending scan visits the same areas in the same order.
        for area in self._index.overlapping(start, last):
            if area.iova < start or area.last > last:
                err = IommuError(
                    "ENOENT",
                    f"unmap {IovaRange(start, last)} cuts area {area.range}; areas are removed whole "
                    f"(rule 5.3{', and ' + fmt_size(removed) + ' of earlier areas were already removed (rule 5.6)' if removed else ''})",
                )
                err.unmapped = removed  # type: ignore[attr-defined]
                raise err
            removed += self._commit_unmap([area])
        if not removed and not empty_ok:
            err = IommuError("ENOENT", f"nothing is mapped in {IovaRange(start, last)} (rule 5.4)")
            err.unmapped = 0  # type: ignore[attr-defined]
            raise err
        return removed

    def _commit_unmap(self, areas: Iterable[Area]) -> int:
        total = 0
        for area in list(areas):
            for acc in self._accesses:
                if acc.pinned(area):
                    acc._notify_unmap(area)
            if self._domains:
                self._clear_domains(area)
            self._index.remove(area)
            if self._real_t1:
                self._dma_avail += 1
            total += area.length
        return total

    def _cut_at(self, point: int) -> None:
        """``iopt_area_split`` at ``point`` (the new last of the left piece), as ``iopt_cut_iova``:
        no area or an area edge → nothing; misaligned new start or VA offset → EINVAL; an area
        pinned by an access → EINVAL (rule 8.4)."""
        area = self._index.find(point)
        if area is None or point == area.iova or point == area.last:
            return
        new_start = point + 1
        align = self._alignment
        if new_start & (align - 1) or (area.va_of(new_start) - area.pages.user_va) & (align - 1):
            raise IommuError(
                "EINVAL",
                f"cannot cut area {area.range} at {fmt_addr(new_start)}: not a multiple of iova_alignment "
                f"{fmt_addr(align)} (rule 8.4, iopt_area_split)",
            )
        if any(acc.pinned(area) for acc in self._accesses):
            raise IommuError("EINVAL", f"cannot cut area {area.range}: an in-kernel access has it pinned (rule 8.4)")
        lhs = Area(area.iova, new_start - area.iova, area.user_va, area.prot, area.pages, area.start_byte)
        rhs = Area(new_start, area.last - point, area.va_of(new_start), area.prot, area.pages,
                   area.start_byte + (new_start - area.iova))
        self._index.replace(area, [lhs, rhs])

    # -- domains ----------------------------------------------------------------------------------
    def _new_domain(self, device: Device) -> Any:
        """A paging domain for ``device`` filled with every existing area (``iopt_table_add_domain``
        → ``iopt_fill_domain``), or None when the device names no format or its format's input
        range does not cover every window (multi-window POWER devices). A fill that fails
        (ENOMEM, a refused entry) raises before the attach commits anything."""
        fmt = getattr(device, "format", None)
        if not self._page_tables or not fmt:
            return None
        from iommu_lab.hardware import formats
        from iommu_lab.pagetable import PageTable

        f = formats.get(fmt)
        if not all(any(w in r for r in f.input_ranges) for w in device.windows):
            # POWER: each window is its own TCE table, and the catalogue format describes only the
            # default window (a flat table for a 2^45 DDW would be 64 GiB). One PageTable cannot
            # stand for them, so such a device gets no domain rather than a wrong one.
            return None
        bitmap = device.pgsizes & f.leaf_bitmap
        domain = PageTable(f, pgsize_bitmap=bitmap or None)
        for area in self._index:
            self._fill_one(domain, area)
        return domain

    def _host_memory(self) -> Any:
        if self._host is None:
            from iommu_lab.pagetable import HostMemory

            self._host = HostMemory()
        return self._host

    def _fill_one(self, domain: Any, area: Area) -> None:
        """Map one area into one domain from the pinned pages' physical runs. With huge pages off
        every run is mapped with the smallest page (``batch_iommu_map_small``), so any page can
        later be cut out (rule 8.4). An area with neither READ nor WRITE (VFIO compat) is not
        mapped, as io-pgtable maps nothing for prot 0. A failure unmaps what this call mapped."""
        if not int(area.prot) & 3:
            return
        prot = area.prot.letters
        if self._huge_pages:
            domain.map_user(area.iova, self._host_memory(), area.user_va, area.length, prot=prot)
            return
        done = 0
        try:
            for va, pa, n in self._host_memory().resolve(area.user_va, area.length):
                domain.populate(area.iova + (va - area.user_va), pa, n, domain.min_pgsize, prot=prot)
                done += n
        except Exception:
            if done:
                domain.unmap(area.iova, done)
            raise

    def _fill_domains(self, area: Area) -> None:
        """Map a new area into every domain (``iopt_area_fill_domains``); on failure the domains
        already filled are unfilled and the error propagates (the caller aborts the area)."""
        filled = []
        try:
            for dom in self._domains.values():
                self._fill_one(dom, area)
                filled.append(dom)
        except Exception:
            for dom in filled:
                if int(area.prot) & 3:
                    dom.unmap(area.iova, area.length)
            raise

    def _clear_domains(self, area: Area) -> None:
        """Unmap an area from every domain (``iopt_area_unfill_domains``)."""
        if not int(area.prot) & 3:
            return
        for dom in self._domains.values():
            dom.unmap(area.iova, area.length)

    # -- questions --------------------------------------------------------------------------
    def info(self) -> IoasInfo:
        """GET_INFO: capabilities, page sizes, permitted ranges and alignment (see ``IoasInfo``)."""
        align = self.iova_alignment
        bitmap = U64_MAX
        for d in self._devices:
            bitmap &= d.pgsizes
        bitmap &= ~(align - 1) & U64_MAX
        if self.semantics.is_real_type1:
            limit: int | None = self._dma_limit
        elif self.semantics.is_compat:
            limit = 0xFFFF_FFFF
        else:
            limit = None
        return IoasInfo(self.semantics, self._capabilities(), bitmap, self._permitted_pieces(), align, limit)

    def _capabilities(self) -> Capabilities:
        """From the platform's own GET_INFO answer when it has one (``platform.info()``), else
        from its ``nesting``/``family`` attributes, else the documented defaults."""
        p = self._platform
        if p is None:
            return Capabilities()
        info = getattr(p, "info", None)
        if callable(info):
            pi = info()
            nesting = getattr(pi.nesting, "value", pi.nesting)
            return Capabilities(bool(pi.map_unmap), bool(pi.pgtable_binding), bool(pi.pasid_table_binding), str(nesting))
        nesting = getattr(p, "nesting", None)
        nesting = getattr(nesting, "value", nesting)
        nesting = nesting if nesting in ("hardware", "software", "none") else "software"
        family = str(getattr(getattr(p, "family", ""), "value", getattr(p, "family", "")) or "").lower()
        # SMMUv3 and AMD keep the PASID/CD table in guest memory, bound as a whole
        # (nesting_pasid_windows.md §1.2, §4); VT-d binds each stage-1 table.
        whole_table = any(k in family for k in ("smmu", "amd"))
        hw = nesting == "hardware"
        return Capabilities(True, hw and not whole_table, hw and whole_table, nesting)

    def lookup(self, iova: int) -> Lookup:
        """Which area holds ``iova`` and at what offset, else why none does: reserved (by whom, of
        which type), outside every window, or free (and whether automatic allocation may use it)."""
        iova = _u64(iova, "iova")
        if iova > U64_MAX:
            raise ValueError(f"iova {fmt_addr(iova)} is outside the 64-bit space")
        windows = self._windows
        window = windows[0] if len(windows) == 1 and iova in windows[0] else next((w for w in windows if iova in w), None)
        area = self._index.find(iova)
        if area is not None:
            off = iova - area.iova
            return Lookup(iova, "mapped", area, off, area.user_va + off, window=window, domains=self.domains)
        holding = tuple(r for r in self.reserved if r.start <= iova <= r.last)
        if any(r.kind != "aperture" for r in holding):
            return Lookup(iova, "reserved", reservations=holding, window=window, domains=self.domains)
        if window is None:
            return Lookup(iova, "outside", reservations=holding, windows=windows, domains=self.domains)
        notes = []
        if iova < PAGE_SIZE or iova > U64_MAX - PAGE_SIZE:
            notes.append("automatic allocation never uses the first or last page (rule 3.4)")
        elif self._allowed and iova not in self._allowed:
            notes.append("not in the allowed list, so only a FIXED map can use it (rule 1.8)")
        return Lookup(iova, "free", window=window, notes=tuple(notes), domains=self.domains)

    # -- replay ---------------------------------------------------------------------------------
    @classmethod
    def replay(cls, ops: Iterable[IoasOp], **kwargs: Any) -> "IOAS":
        """A new IOAS that has gone through ``ops``.

        ``kwargs`` go to the constructor (``semantics=``, ``hpage_size=``...). Do not pass
        ``permitted``/``reserved``/``pgsizes`` again: the attach they caused is already the first
        recorded operation. Cross-IOAS copies use the recorded source IOAS.
        """
        ioas = cls(**kwargs)
        ioas.apply(ops)
        return ioas

    def apply(self, ops: Iterable[IoasOp]) -> None:
        """Perform recorded operations in order; an op recorded with an errno must fail with it."""
        made: list[Access] = []
        for op in ops:
            if isinstance(op, MapOp):
                self.map(op.length, op.iova, user_va=op.user_va, prot=op.prot)
            elif isinstance(op, UnmapOp):
                if op.errno is None:
                    self.unmap(op.iova, op.length)
                else:
                    try:
                        self.unmap(op.iova, op.length)
                    except IommuError as e:
                        if e.errno != op.errno:
                            raise
                    else:
                        raise AssertionError(f"replayed {op} succeeded but was recorded as failing")
            elif isinstance(op, UnmapAllOp):
                self.unmap_all()
            elif isinstance(op, CopyOp):
                self.copy(op.src if op.src is not None else self, op.src_iova, op.length, op.iova, prot=op.prot)
            elif isinstance(op, AllowOp):
                self.allow_iovas(op.ranges)
            elif isinstance(op, ReserveOp):
                self.reserve(IovaRange(op.start, op.last), owner=op.owner)
            elif isinstance(op, AttachOp):
                self.attach(op.device)
            elif isinstance(op, DetachOp):
                self.detach(op.device)
            elif isinstance(op, HugePagesOp):
                self.set_huge_pages(op.enabled)
            elif isinstance(op, AddAccessOp):
                made.append(self.add_access(op.iova_alignment))
            elif isinstance(op, RemoveAccessOp):
                self.remove_access(made[op.index])
            else:
                raise TypeError(f"cannot replay {op!r}")

    # -- presentation ----------------------------------------------------------------------------
    def to_dataframe(self, what: str = "areas"):
        """A DataFrame (addresses as pandas ``UInt64``): ``what`` = ``"areas"`` (default),
        ``"reserved"``, ``"allowed"``, ``"iova_ranges"`` or ``"permitted"``."""
        from iommu_lab.core.frames import addr_frame

        if what == "areas":
            areas = self.areas
            return addr_frame(
                {
                    "iova": [a.iova for a in areas],
                    "last": [a.last for a in areas],
                    "length": [a.length for a in areas],
                    "user_va": [a.user_va for a in areas],
                    "prot": [a.prot.text for a in areas],
                    "pages": [a.pages.id for a in areas],
                },
                hex_columns=["iova", "last", "length", "user_va"],
            )
        if what == "reserved":
            res = self.reserved
            return addr_frame(
                {
                    "start": [r.start for r in res],
                    "last": [r.last for r in res],
                    "kind": [r.kind for r in res],
                    "type": [r.type.value if r.type else None for r in res],
                    "owner": [r.owner for r in res],
                },
                hex_columns=["start", "last"],
            )
        if what == "allowed":
            return self._allowed.to_dataframe()
        if what == "iova_ranges":
            return self.iova_ranges().to_dataframe()
        if what == "permitted":
            return RangeSet(self.permitted()).to_dataframe() if len(self.permitted()) == 1 else addr_frame(
                {"start": [w.start for w in self.permitted()], "last": [w.last for w in self.permitted()]})
        raise ValueError(f"unknown table {what!r}; choose 'areas', 'reserved', 'allowed', 'iova_ranges' or 'permitted'")

    def _summary(self) -> str:
        mapped = sum(a.length for a in self._index)
        devs = ", ".join(d.name for d in self._devices) or "none"
        return (
            f"IOAS({self.semantics.value}: {len(self._index)} area(s), {fmt_size(mapped)} mapped, "
            f"alignment {fmt_addr(self.iova_alignment)}, devices: {devs})"
        )

    def __repr__(self) -> str:
        lines = [self._summary()]
        lines.append(f"  iova_ranges {self.iova_ranges()}")
        if self._allowed:
            lines.append(f"  allowed     {self._allowed}")
        areas = self.areas
        for a in areas[:8]:
            lines.append(f"  area {a}")
        if len(areas) > 8:
            lines.append(f"  ... {len(areas) - 8} more area(s)")
        return "\n".join(lines)

    plot = display.plot

    _repr_html_ = display.html

