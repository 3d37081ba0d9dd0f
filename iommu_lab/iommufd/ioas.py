"""The I/O address space a user holds: iommufd's IOAS object and its ioctls.

Mirrors drivers/iommu/iommufd/ioas.c: each method is one ioctl (``iommufd_ioas_map``,
``iommufd_ioas_copy``, ``iommufd_ioas_unmap``, ``iommufd_ioas_allow_iovas``,
``iommufd_ioas_iova_ranges``, ``iommufd_ioas_option`` for huge pages), checking its arguments as
the ioctl does before it calls the ``iopt_*`` core of ``io_pagetable.py``. Device attach and
detach follow ``iommufd_hwpt_paging_alloc`` with immediate attach (``domains.py`` holds the
devices and their page-table domains), in-kernel accesses are ``access.py``, and every
successful operation is recorded (``history.py``) so that ``IOAS.replay`` rebuilds the state.

``semantics=`` selects iommufd, its VFIO compatibility layer or real VFIO type1; the rules that
differ are the rule book in ``type1.py``. A failed operation leaves the IOAS exactly as it was,
except where the kernel itself is not atomic (an UNMAP that removes earlier areas before
refusing a later one; a VFIO v1 cut).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence, Union

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet, check_u64, fmt_addr, fmt_size
from iommu_lab.core.words import plural
from iommu_lab.hardware.device import Device, ReservedRegion, ResvType
from iommu_lab.hardware.platform import platforms
from iommu_lab.iommufd import history
from iommu_lab.iommufd.access import Access
from iommu_lab.iommufd.area import (
    PROT_BY_INT,
    PROT_LETTERS,
    Area,
    Pages,
    Prot,
    Reservation,
    uapi_int,
)
from iommu_lab.iommufd.domains import device_reservations, pgsize_bitmap
from iommu_lab.iommufd.history import (
    AddAccessOp,
    AllowOp,
    AttachOp,
    CopyOp,
    DetachOp,
    HugePagesOp,
    IoasOp,
    MapOp,
    RemoveAccessOp,
    ReserveOp,
    UnmapAllOp,
    UnmapOp,
)
from iommu_lab.iommufd.info import Capabilities, IoasInfo, Lookup, capabilities_of
from iommu_lab.iommufd.io_pagetable import IoPagetable
from iommu_lab.iommufd.objects import Kernel, private_context_factory
from iommu_lab.iommufd.pages import HPAGE_SIZE, PAGE_SIZE, alloc_pages
from iommu_lab.iommufd.type1 import (
    DMA_ENTRY_LIMIT,
    DmaEntries,
    Semantics,
    compat_pagesizes,
    compat_unmap,
    type1_attach_check,
    type1_map,
    type1_overflow_errno,
    type1_pgsize,
    type1_unmap,
    type1_unmap_all,
)

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

#: ``SIZE_MAX`` on 64-bit.
_SIZE_MAX = U64_MAX
#: Where the model places user buffers given no ``user_va``: 2 MiB aligned, like the selftests'
#: ``posix_memalign(HUGEPAGE_SIZE)`` buffer, one after the other.
ANON_VA_BASE = 0x7F00_0000_0000


def map_prot(prot: object, *, vfio: str | None = None) -> Prot:
    """The permission of a map or copy: ``"rw"``, ``"r"``, ``"w"``, ``""``, a ``Prot`` or an int of
    ``IOMMU_READ``/``IOMMU_WRITE`` bits. Other bits are flags the uapi does not define: IOMMU_IOAS_MAP
    and IOMMU_IOAS_COPY refuse them with EOPNOTSUPP before anything else; the VFIO map ioctls
    (``vfio`` names which) refuse them with EINVAL (``iommufd_vfio_map_dma``,
    ``vfio_iommu_type1_map_dma``). Other letters are a ``ValueError``."""
    known = _MAP_PROTS.get(prot) if isinstance(prot, str) else None
    if known is not None:
        return known
    if isinstance(prot, int) and not isinstance(prot, bool) and prot >= 0 and int(prot) & ~3:
        if vfio == "vfio_iommu_type1_map_dma" and int(prot) & ~3 == 4:
            raise UnsupportedError(
                "VFIO_DMA_MAP_FLAG_VADDR (0x4) updates the vaddr of an existing mapping; the model does not implement it"
            )
        if vfio is not None:
            raise IommuError(
                "EINVAL",
                f"flags {int(prot):#x} have bits outside VFIO_DMA_MAP_FLAG_READ|WRITE (0x3); VFIO_IOMMU_MAP_DMA "
                f"refuses unknown flags with EINVAL ({vfio})",
            )
        raise IommuError(
            "EOPNOTSUPP",
            f"prot {int(prot):#x} has bits outside IOMMU_READ|IOMMU_WRITE (0x3); the map flags accept only "
            f"FIXED_IOVA, WRITEABLE and READABLE, as iommufd_ioas_map refuses any other",
        )
    parsed = Prot.parse(prot)  # type: ignore[arg-type]
    if int(parsed) & ~3:
        raise ValueError(f"prot {prot!r} has a letter other than 'r' and 'w'; an IOAS maps for read and/or write only")
    return PROT_BY_INT[int(parsed)]


_MAP_PROTS = {"rw": Prot.RW, "wr": Prot.RW, "r": Prot.READ, "w": Prot.WRITE, "": Prot.NONE}


RangesLike = Union[Iterable[Union[IovaRange, tuple]], RangeSet]


class IOAS:
    """An I/O address space with iommufd semantics (``struct iommufd_ioas``).

    Parameters
    ----------
    permitted, reserved, pgsizes : optional
        Convenience: behave as if a device ``"default"`` with these windows (IovaRange,
        RangeSet or a sequence of windows), reserved regions (ReservedRegion, IovaRange or
        ``(start, last)``; plain ranges become ``IOMMU_RESV_RESERVED``) and page-size bitmap
        were attached (a ``RangeSet`` merges touching windows; pass a list to keep them apart).
        With none of them the IOAS is fresh, as IOMMU_IOAS_ALLOC makes it (``iopt_init_table``):
        no reserved, no allowed, no areas, alignment 1.
    semantics : str or Semantics
        ``"iommufd"`` (default), ``"vfio-compat"``, ``"vfio-compat-v1"``, ``"type1"``,
        ``"type1-v1"`` (see ``iommu_lab.iommufd.type1``).
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
    kernel : str
        Whose rules to follow where they changed: ``"mainline"`` (default), ``"6.12"`` or
        ``"6.6"``. Before 6.13 IOMMU_IOAS_MAP checked the length (EINVAL) before the
        ``user_va + length`` wrap (EOVERFLOW); ``iopt_alloc_user_pages`` (6.13, the MAP_FILE
        rework) checks the wrap first. Under ``semantics="type1"`` a map or unmap that wraps
        past 2^64 answers EINVAL before 6.18 and EOVERFLOW since (the type1 overflow series in
        ``vfio_dma_do_map``/``vfio_dma_do_unmap``).

    Attributes
    ----------
    iopt : IoPagetable
        The IOVA space underneath (``ioas->iopt``): trees, allocator, devices, accesses.
    history : list of IoasOp
        Successful operations, oldest first (plus the failed UNMAP that still removed areas).
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
        kernel: Union[str, Kernel] = Kernel.MAINLINE,
    ) -> None:
        self.kernel = Kernel.parse(kernel).value
        self._context: Any = None
        self.semantics = Semantics.parse(semantics)
        # Checked before anything is built, so a bad limit leaves no half-made IOAS behind.
        self._dma = DmaEntries(dma_entry_limit)
        self._real_t1 = self.semantics.is_real_type1
        self._compat = self.semantics.is_compat
        if isinstance(hpage_size, bool) or not isinstance(hpage_size, int) or hpage_size < PAGE_SIZE or hpage_size & (hpage_size - 1):
            raise ValueError(f"hpage_size must be a power of two >= PAGE_SIZE (0x1000), got {hpage_size!r}")
        # VFIO_TYPE1_IOMMU (v1) on iommufd disables large pages at set-up (iommufd_vfio_set_iommu).
        self.iopt = IoPagetable(hpage_size=hpage_size, huge_pages=self.semantics is not Semantics.VFIO_COMPAT_V1,
                                page_tables=page_tables, host=host)
        self._accesses_made = 0
        self._next_va = ANON_VA_BASE
        #: The platform ``from_platform`` was given (public as ``platform``).
        self._platform: Any = None
        self.history: list[IoasOp] = []
        if permitted is not None or reserved is not None or pgsizes is not None:
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
        nesting and binding capabilities where it describes them. ``platform`` is a ``Platform``
        or a catalogue name such as ``"intel-vtd-48"``."""
        if isinstance(platform, str):
            platform = platforms.get(platform)
        if not callable(getattr(platform, "device", None)):
            raise TypeError(f"from_platform takes a Platform or a platform name, got {type(platform).__name__} {platform!r}")
        ioas = cls(**kwargs)
        ioas._platform = platform
        ioas.attach(platform.device())
        return ioas

    # -- state -------------------------------------------------------------------------------
    @property
    def context(self) -> Any:
        """The ``IommufdContext`` (one open ``/dev/iommu``) this IOAS is an object of; an IOAS
        made alone gets a private one on first use."""
        if self._context is None:
            factory = private_context_factory()
            if factory is None:
                raise RuntimeError("import iommu_lab.iommufd to give an IOAS its context")
            factory(self)
        return self._context

    @property
    def platform(self) -> Any:
        """The platform this IOAS was made from (``from_platform``), or None."""
        return self._platform

    @property
    def hpage_size(self) -> int:
        return self.iopt.hpage_size

    @property
    def areas(self) -> tuple[Area, ...]:
        """Every area, sorted by IOVA."""
        return self.iopt.areas

    @property
    def reserved(self) -> tuple[Reservation, ...]:
        """The reserved-tree nodes, sorted by start (they may overlap: ``iopt_reserve_iova``
        checks only areas and allowed ranges)."""
        return tuple(sorted(self.iopt.reservations, key=lambda r: (r.start, r.last)))

    @property
    def allowed(self) -> RangeSet:
        """The user's ALLOW_IOVAS list (empty: automatic allocation may use any hole)."""
        return self.iopt.allowed

    @property
    def devices(self) -> tuple[Device, ...]:
        return self.iopt.domains.devices

    @property
    def domains(self) -> tuple[Any, ...]:
        """The paging domains (``PageTable``), one per attached device with a ``format``; each is
        a translation target (``walk``, ``translate``)."""
        return self.iopt.domains.tables

    def domain(self, device: Union[Device, str]) -> Any:
        """The ``PageTable`` of one attached device (KeyError if it has none)."""
        return self.iopt.domains.table(device if isinstance(device, str) else device.name)

    @property
    def host_memory(self) -> Any:
        """The host memory the domains are filled from (``pin_user_pages``' answer)."""
        return self.iopt.domains.host_memory

    @property
    def accesses(self) -> tuple[Access, ...]:
        return self.iopt.accesses

    @property
    def huge_pages(self) -> bool:
        return self.iopt.huge_pages

    @property
    def iova_alignment(self) -> int:
        """``iopt->iova_alignment``; for real type1 the smallest IOMMU page."""
        if self._real_t1:
            return type1_pgsize(self.devices)
        return self.iopt.alignment

    def permitted(self) -> tuple[IovaRange, ...]:
        """The windows a map must lie within: the pairwise intersection of the attached devices'
        windows, kept unmerged. No device: the whole space."""
        return self.iopt.windows

    def iova_ranges(self) -> RangeSet:
        """IOMMU_IOAS_IOVA_RANGES: the holes of the reserved tree over [0, U64_MAX], adjacent
        nodes merged (``iommufd_ioas_iova_ranges``). Allowed ranges and areas do not change it.
        Real type1 answers its ``iova_list`` (the whole space while it is empty)."""
        if self._real_t1 and self.devices:
            return RangeSet(self.iopt.permitted_pieces())
        return self.iopt.iova_ranges()

    def areas_in(self, iova: int, length: int) -> tuple[Area, ...]:
        """The areas intersecting ``[iova, iova+length-1]`` (e.g. the pieces one COPY made)."""
        return tuple(self.iopt.areas_overlapping(iova, iova + length - 1))

    # -- allowed and reserved ----------------------------------------------------------------
    def allow_iovas(self, ranges: RangesLike) -> None:
        """IOMMU_IOAS_ALLOW_IOVAS: replace the allowed list atomically.

        Per range, in order (``iommufd_ioas_load_iovas``): ``start >= last`` → EINVAL (a 1-byte
        range is refused); overlap with an earlier range of the list → EINVAL (adjacent is fine).
        Then any range intersecting a reserved one → EADDRINUSE, keeping the old list
        (``iopt_set_allow_iova``). Not checked against areas. An empty list clears it. Allowed
        ranges steer only automatic allocation.
        """
        if self._real_t1:
            raise UnsupportedError("real VFIO type1 has no ALLOW_IOVAS; use semantics='iommufd' or a compat mode")
        if isinstance(ranges, (IovaRange, str)):
            raise TypeError("allow_iovas takes a list of ranges, e.g. [IovaRange(0x1000, 0xfffff)]")
        items: list[IovaRange] = []
        for i, r in enumerate(ranges):
            if isinstance(r, IovaRange):
                start, last = r.start, r.last
            elif isinstance(r, tuple) and len(r) == 2:
                start, last = check_u64(r[0], f"allowed[{i}] start"), check_u64(r[1], f"allowed[{i}] last")
            else:
                raise TypeError(f"allowed[{i}] must be an IovaRange or a (start, last) tuple, got {r!r}")
            if start >= last:
                raise IommuError(
                    "EINVAL",
                    f"allowed range {i} [{fmt_addr(start)}, {fmt_addr(last)}] has start >= last; ALLOW_IOVAS "
                    f"needs start < last (iommufd_ioas_load_iovas)",
                )
            for j, prev in enumerate(items):
                if prev.start <= last and start <= prev.last:
                    raise IommuError(
                        "EINVAL",
                        f"allowed range {i} [{fmt_addr(start)}, {fmt_addr(last)}] overlaps range {j} {prev} of the "
                        f"same list; ranges may touch but not overlap (iommufd_ioas_load_iovas)",
                    )
            items.append(IovaRange(start, last))
        self.iopt.set_allow_iova(items)
        self.history.append(AllowOp(tuple(items)))

    def reserve(self, rng: Union[IovaRange, tuple], owner: str | None = None) -> Reservation:
        """Add a reserved range as the selftest's IOMMU_TEST_OP_ADD_RESERVED.

        Intersecting an area or an allowed range → EADDRINUSE (``iopt_reserve_iova``).
        """
        if self._real_t1:
            raise UnsupportedError("real VFIO type1 has no reserved tree to add to; reserved regions come from attach")
        if isinstance(rng, tuple) and len(rng) == 2:
            rng = IovaRange(check_u64(rng[0], "start"), check_u64(rng[1], "last"))
        if not isinstance(rng, IovaRange):
            raise TypeError(f"reserve takes an IovaRange or a (start, last) tuple, got {type(rng).__name__} {rng!r}")
        if owner is not None and not isinstance(owner, str):
            raise TypeError(f"owner must be a string or None, got {type(owner).__name__} {owner!r}")
        res = Reservation(rng.start, rng.last, owner, "user")
        self.iopt.reserve(res)
        self.history.append(ReserveOp(rng.start, rng.last, owner))
        return res

    # -- devices -----------------------------------------------------------------------------
    def attach(self, device: Device, *, force_writeable: bool = False) -> None:
        """Attach a device: reserve its regions, then add its domain (``force_writeable``: the
        domain refuses read-only maps with EINVAL, as a VT-d nest parent does).

        Order as ``iommufd_hwpt_paging_alloc`` with immediate attach: (1) every reserved region
        except DIRECT_RELAXABLE, owner = device; one intersecting an area or an allowed range →
        EADDRINUSE; SW_MSI together with MSI, or two SW_MSI → EINVAL
        (``iopt_table_enforce_dev_resv_regions``); (2) ``iopt_table_add_domain``: smallest page
        > PAGE_SIZE → EINVAL; raised alignment not met by an area → EADDRINUSE; the aperture
        complement reserved → EADDRINUSE on conflict. On failure nothing is left behind.
        Model extension: an existing area that would straddle two touching windows of the new
        device is refused first (EADDRINUSE; EINVAL under real type1), since no reservation
        separates touching windows and the kernel's own checks would not see it.
        """
        if not isinstance(device, Device):
            raise TypeError(f"attach takes a Device, got {type(device).__name__} {device!r}")
        if self.iopt.domains.find(device.name) is not None:
            raise IommuError("EINVAL", f"device {device.name!r} is already attached to this IOAS; detach it first")
        regions, aperture = device_reservations(device)
        self.iopt.check_windows_hold_areas(device, "EINVAL" if self._real_t1 else "EADDRINUSE")
        if self._real_t1:
            type1_attach_check(self.iopt, device, regions + aperture)
        else:
            self.iopt.check_add_device(device, regions, aperture)
        self.iopt.add_device(device, regions + aperture, force_writeable=force_writeable)
        self.history.append(AttachOp(device, force_writeable))

    def detach(self, device: Union[Device, str]) -> None:
        """Detach: drop the reservations the device and its domain own, recompute the alignment
        (it may fall back to 1) (``iopt_remove_reserved_iova``, ``iopt_table_remove_domain``).
        A device that is not attached → ENOENT (model choice)."""
        name = device if isinstance(device, str) else getattr(device, "name", None)
        if not isinstance(name, str):
            raise TypeError(f"detach takes a Device or its name, got {type(device).__name__} {device!r}")
        found = self.iopt.remove_device(name)
        self.history.append(DetachOp(found))

    # -- options and accesses -----------------------------------------------------------------
    def set_huge_pages(self, enabled: bool) -> None:
        """IOMMU_OPTION_HUGE_PAGES (``iommufd_ioas_option``): off with a domain *and* an area →
        EINVAL; off sets the alignment to at least PAGE_SIZE (EADDRINUSE when an area does not
        meet it); off when off is a no-op; on always succeeds and recomputes
        (``iopt_disable_large_pages``, ``iopt_enable_large_pages``)."""
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be True or False, got {type(enabled).__name__} {enabled!r}")
        if self._real_t1:
            raise UnsupportedError("IOMMU_OPTION_HUGE_PAGES is an iommufd option; real type1 has no such switch")
        self.iopt.set_huge_pages(enabled)
        self.history.append(HugePagesOp(enabled))

    def add_access(self, iova_alignment: int = 1) -> Access:
        """Add an in-kernel access (``iommufd_access_create`` → ``iopt_add_access``): its alignment
        joins the IOAS alignment; raising it past an area's alignment → EADDRINUSE."""
        if isinstance(iova_alignment, bool) or not isinstance(iova_alignment, int):
            raise TypeError(f"iova_alignment must be an int, got {type(iova_alignment).__name__} {iova_alignment!r}")
        if iova_alignment < 1 or iova_alignment & (iova_alignment - 1):
            raise ValueError(f"iova_alignment {iova_alignment:#x} must be a power of two >= 1")
        if self._real_t1:
            raise UnsupportedError("the model's in-kernel accesses are iommufd's (struct iommufd_access)")
        access = Access(self, iova_alignment, iopt=self.iopt, index=self._accesses_made)
        self.iopt.add_access(access)
        self._accesses_made += 1
        self.history.append(AddAccessOp(iova_alignment))
        return access

    def remove_access(self, access: Access) -> None:
        """Remove an access (``iopt_remove_access``): its pins go, the alignment is recomputed."""
        if not isinstance(access, Access):
            raise TypeError(f"remove_access takes an Access, got {type(access).__name__}")
        self.iopt.remove_access(access)
        self.history.append(RemoveAccessOp(access.index))

    # -- map ----------------------------------------------------------------------------------
    def map(self, length: int, iova: int | None = None, *, user_va: int | None = None, prot: Union[str, int, Prot] = "rw") -> Area:
        """IOMMU_IOAS_MAP: map ``length`` bytes of user memory, at ``iova`` or wherever
        ``iopt_alloc_iova`` puts it when ``iova`` is None.

        Checks in the kernel's order (``iommufd_ioas_map``): flags → EOPNOTSUPP; ``iova``/``length``
        >= U64_MAX → EOVERFLOW (the iova test applies even for automatic maps); no READ/WRITE →
        EINVAL; ``user_va + length`` wrap → EOVERFLOW (``iopt_alloc_user_pages``), then ``length`` 0
        or > SIZE_MAX - PAGE_SIZE → EINVAL (``iopt_alloc_pages``) — before 6.13 the length came
        first (``kernel="6.12"``); ``length % iova_alignment`` → EINVAL; then
        automatic allocation or the FIXED checks of ``iopt_check_iova`` (misaligned EINVAL, wrap
        EOVERFLOW, reserved or outside a window EINVAL, area EEXIST); then ``iopt_insert_area``'s
        EPERM / VA-offset EINVAL. ``user_va=None`` maps a fresh 2 MiB-aligned buffer the model
        places after the previous one.
        """
        length = uapi_int(length, "length")
        if iova is not None:
            iova = uapi_int(iova, "iova")
        if user_va is not None:
            user_va = uapi_int(user_va, "user_va")
        vfio = ("vfio_iommu_type1_map_dma" if self._real_t1 else "iommufd_vfio_map_dma" if self._compat else None)
        prot = map_prot(prot, vfio=vfio)
        if self._real_t1:
            va = user_va if user_va is not None else self._fresh_va(length)
            area = type1_map(self.iopt, self._dma, length, iova, va, prot,
                             overflow_errno=type1_overflow_errno(Kernel(self.kernel).has(6, 18)))
            self._after_map(user_va, length, iova, prot, area)
            return area
        if self._compat:
            if iova is None:
                raise ValueError("VFIO_IOMMU_MAP_DMA has no automatic IOVA; give iova= (it is always a FIXED map)")
        elif (iova is not None and iova >= U64_MAX) or length >= U64_MAX:
            bad = f"iova {fmt_addr(iova)}" if iova is not None and iova >= U64_MAX else f"length {fmt_addr(length)}"
            raise IommuError("EOVERFLOW", f"{bad} is >= ULONG_MAX 0xffff_ffff_ffff_ffff (iommufd_ioas_map)")
        if not int(prot) & 3 and not self._compat:
            raise IommuError(
                "EINVAL", "map with neither READABLE nor WRITEABLE; give prot='r', 'w' or 'rw' (iommufd_ioas_map)"
            )
        va = user_va if user_va is not None else self._fresh_va(length)
        # Since 6.13 iopt_alloc_user_pages checks the wrap before iopt_alloc_pages checks the
        # length; older kernels checked the length first.
        wrap_first = Kernel(self.kernel).has(6, 13)
        if wrap_first:
            self._check_va_wrap(va, length)
        if length == 0 or length > _SIZE_MAX - PAGE_SIZE:
            raise IommuError(
                "EINVAL",
                f"map length {fmt_addr(length)} must be 1..SIZE_MAX-PAGE_SIZE (0xffff_ffff_ffff_efff) (iopt_alloc_pages)",
            )
        if not wrap_first:
            self._check_va_wrap(va, length)
        pages = alloc_pages(va, length, bool(int(prot) & 2))
        area = self.iopt.map_pages([(pages, va, length)], length, iova, prot)[0]
        self._after_map(user_va, length, iova, prot, area)
        return area

    @staticmethod
    def _check_va_wrap(va: int, length: int) -> None:
        if va + length > U64_MAX:
            raise IommuError(
                "EOVERFLOW",
                f"user_va {fmt_addr(va)} + length {fmt_addr(length)} wraps past 2^64 (iopt_alloc_user_pages)",
            )

    def _fresh_va(self, length: int) -> int:
        va = self._next_va
        if va + length > U64_MAX:
            va = self.hpage_size
        return va

    def _after_map(self, user_va: int | None, length: int, iova: int | None, prot: Prot, area: Area) -> None:
        if user_va is None:
            end = area.user_va + length
            self._next_va = (end + self.hpage_size - 1) // self.hpage_size * self.hpage_size
        self.history.append(MapOp(length, iova, user_va, PROT_LETTERS[int(prot)], area.iova))

    # -- copy -------------------------------------------------------------------------------
    def copy(self, src: "IOAS", src_iova: int, length: int, iova: int | None = None, *, prot: Union[str, int, Prot] = "rw") -> Area:
        """IOMMU_IOAS_COPY: map into this IOAS the pages behind ``src``'s ``[src_iova, +length)``.

        In ``iommufd_ioas_copy``'s order: flags → EOPNOTSUPP; length/src_iova/iova >= U64_MAX →
        EOVERFLOW; no READ/WRITE → EINVAL; source (``iopt_get_pages``): length 0 → EINVAL, wrap →
        EOVERFLOW, not covered by contiguous areas → ENOENT (it may start and end inside areas);
        then the destination as MAP (``iopt_map_pages``; automatic placement hints with the
        source VA of the first byte); a WRITEABLE copy of read-only pages → EPERM. One
        destination area is made per source area piece; the first is returned, all are
        ``areas_in(first.iova, length)``.
        """
        if not isinstance(src, IOAS):
            raise TypeError(f"copy source must be an IOAS, got {type(src).__name__}")
        src_iova = uapi_int(src_iova, "src_iova")
        length = uapi_int(length, "length")
        if iova is not None:
            iova = uapi_int(iova, "iova")
        prot = map_prot(prot)
        if self._real_t1 or src._real_t1:
            raise UnsupportedError("IOMMU_IOAS_COPY exists only on iommufd IOASes, not on a real VFIO type1 container")
        if length >= U64_MAX or src_iova >= U64_MAX or (iova is not None and iova >= U64_MAX):
            raise IommuError("EOVERFLOW", "copy length/src_iova/dst_iova >= ULONG_MAX (iommufd_ioas_copy)")
        if not int(prot) & 3:
            raise IommuError("EINVAL", "copy with neither READABLE nor WRITEABLE (iommufd_ioas_copy)")
        if length == 0:
            raise IommuError("EINVAL", "copy of 0 bytes (iopt_get_pages)")
        src_last = src_iova + length - 1
        if src_last > U64_MAX:
            raise IommuError(
                "EOVERFLOW", f"src_iova {fmt_addr(src_iova)} + length {fmt_addr(length)} wraps past 2^64 (iopt_get_pages)"
            )
        pieces = src.iopt.contiguous(src_iova, src_last)
        if pieces is None:
            raise IommuError(
                "ENOENT",
                f"source {IovaRange(src_iova, src_last)} is not covered by contiguous areas of the source IOAS "
                f"(iopt_get_pages)",
            )
        made = self.iopt.map_pages([(a.pages, a.va_of(s), n) for a, s, n in pieces], length, iova, prot)
        self.history.append(CopyOp(src_iova, length, iova, PROT_LETTERS[int(prot)], made[0].iova, None if src is self else src))
        return made[0]

    # -- unmap ------------------------------------------------------------------------------
    def unmap(self, iova: int, length: int) -> int:
        """IOMMU_IOAS_UNMAP: remove whole areas inside ``[iova, iova+length-1]``; returns the bytes
        removed, which may be less than ``length``.

        ``(0, U64_MAX)`` is unmap-all (``iommufd_ioas_unmap`` → ``iopt_unmap_all``). Otherwise
        ``iova``/``length`` >= U64_MAX → EOVERFLOW; ``length`` 0 → EINVAL; wrap → EOVERFLOW
        (``iopt_unmap_iova``). Areas are removed in ascending order as ``iopt_unmap_iova_range``
        does; one sticking out of the range → ENOENT — *after* the earlier ones are gone (not
        atomic; the error's ``unmapped`` gives their bytes, and if the first area sticks out
        nothing is removed). Nothing in range → ENOENT. Alignment is not checked. Pinned areas:
        the accesses are told and the unmap goes on. Compat and type1 modes follow
        ``iommufd_vfio_unmap_dma`` and ``vfio_dma_do_unmap`` instead (``type1.py``).
        """
        iova = uapi_int(iova, "iova")
        length = uapi_int(length, "length")
        if self._real_t1:
            n = type1_unmap(self.iopt, self._dma, iova, length, v1=self.semantics.is_v1,
                             overflow_errno=type1_overflow_errno(Kernel(self.kernel).has(6, 18)))
            self.history.append(UnmapOp(iova, length, n))
            return n
        if self._compat:
            return self._recorded_unmap(iova, length, lambda: compat_unmap(self.iopt, iova, length))
        if iova == 0 and length == U64_MAX:
            n = self.iopt.unmap_iova_range(0, U64_MAX, empty_ok=True)
            self.history.append(UnmapOp(iova, length, n))
            return n
        if iova >= U64_MAX or length >= U64_MAX:
            bad = f"iova {fmt_addr(iova)}" if iova >= U64_MAX else f"length {fmt_addr(length)}"
            raise IommuError("EOVERFLOW", f"{bad} is >= ULONG_MAX; only (0, U64_MAX) means unmap-all (iommufd_ioas_unmap)")
        if length == 0:
            raise IommuError("EINVAL", "unmap of 0 bytes (iopt_unmap_iova)")
        last = iova + length - 1
        if last > U64_MAX:
            raise IommuError(
                "EOVERFLOW", f"iova {fmt_addr(iova)} + length {fmt_addr(length)} - 1 wraps past 2^64 (iopt_unmap_iova)"
            )
        return self._recorded_unmap(iova, length, lambda: self.iopt.unmap_iova_range(iova, last, empty_ok=False))

    def _recorded_unmap(self, iova: int, length: int, run: Any) -> int:
        """Run an unmap and record it, including a failure that already removed areas."""
        try:
            n = run()
        except IommuError as e:
            if getattr(e, "unmapped", 0):
                self.history.append(UnmapOp(iova, length, e.unmapped, e.errno))  # type: ignore[attr-defined]
            raise
        self.history.append(UnmapOp(iova, length, n))
        return n

    def unmap_all(self) -> int:
        """Unmap every area (IOMMU_IOAS_UNMAP with ``(0, U64_MAX)``, VFIO_DMA_UNMAP_FLAG_ALL):
        succeeds when empty, returns the bytes removed (``iopt_unmap_all``)."""
        if self._real_t1:
            n = type1_unmap_all(self.iopt, self._dma)
        else:
            n = self.iopt.unmap_iova_range(0, U64_MAX, empty_ok=True)
        self.history.append(UnmapAllOp(n))
        return n

    # -- questions --------------------------------------------------------------------------
    def info(self) -> IoasInfo:
        """GET_INFO: capabilities, page sizes, permitted ranges and alignment (see ``IoasInfo``).
        Under VFIO compat the page sizes are ``iommufd_get_pagesizes``' (see ``compat_pagesizes``)."""
        align = self.iova_alignment
        if self._compat:
            bitmap = compat_pagesizes(pgsize_bitmap(self.devices), align)
        else:
            bitmap = pgsize_bitmap(self.devices) & ~(align - 1) & U64_MAX
        if self._real_t1:
            limit: int | None = self._dma.limit
        elif self._compat:
            limit = 0xFFFF_FFFF
        else:
            limit = None
        return IoasInfo(self.semantics, capabilities_of(self._platform), bitmap, self.iopt.permitted_pieces(), align, limit)

    def lookup(self, iova: int) -> Lookup:
        """Which area holds ``iova`` and at what offset, else why none does: reserved (by whom, of
        which type), outside every window, or free (and whether automatic allocation may use it)."""
        iova = check_u64(iova, "iova")
        windows = self.iopt.windows
        window = windows[0] if len(windows) == 1 and iova in windows[0] else next((w for w in windows if iova in w), None)
        domains = self.domains
        area = self.iopt.find_area(iova)
        if area is not None:
            off = iova - area.iova
            return Lookup(iova, "mapped", area, off, area.user_va + off, window=window, domains=domains)
        holding = tuple(r for r in self.reserved if r.start <= iova <= r.last)
        if any(r.kind != "aperture" for r in holding):
            return Lookup(iova, "reserved", reservations=holding, window=window, domains=domains)
        if window is None:
            return Lookup(iova, "outside", reservations=holding, windows=windows, domains=domains)
        notes = []
        if iova < PAGE_SIZE or iova > U64_MAX - PAGE_SIZE:
            notes.append("automatic allocation never uses the first or last page (iopt_alloc_iova)")
        elif self.allowed and iova not in self.allowed:
            notes.append("not in the allowed list, so only a FIXED map can use it (iopt_alloc_iova)")
        return Lookup(iova, "free", window=window, notes=tuple(notes), domains=domains)

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
        history.apply(self, ops)

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
                    "pages": _pages_column(areas),
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
            return self.allowed.to_dataframe()
        if what == "iova_ranges":
            return self.iova_ranges().to_dataframe()
        if what == "permitted":
            windows = self.permitted()
            if len(windows) == 1:
                return RangeSet(windows).to_dataframe()
            return addr_frame({"start": [w.start for w in windows], "last": [w.last for w in windows]})
        raise ValueError(f"unknown table {what!r}; choose 'areas', 'reserved', 'allowed', 'iova_ranges' or 'permitted'")

    def _summary(self) -> str:
        """One line: semantics, areas, bytes mapped, alignment, devices (the repr's first line and
        the HTML repr's heading)."""
        areas = self.areas
        mapped = sum(a.length for a in areas)
        devs = ", ".join(d.name for d in self.devices) or "none"
        return (
            f"IOAS({self.semantics.value}: {plural(len(areas), 'area')}, {fmt_size(mapped)} mapped, "
            f"alignment {fmt_addr(self.iova_alignment)}, devices: {devs})"
        )

    def __repr__(self) -> str:
        lines = [self._summary()]
        lines.append(f"  iova_ranges {self.iova_ranges()}")
        if self.allowed:
            lines.append(f"  allowed     {self.allowed}")
        areas = self.areas
        for a in areas[:8]:
            lines.append(f"  area {a}")
        if len(areas) > 8:
            lines.append(f"  ... {plural(len(areas) - 8, 'more area')}")
        return "\n".join(lines)

    plot = display.plot

    _repr_html_ = display.html


def _pages_column(areas: Sequence[Area]) -> list[str]:
    """What pins each area's memory, in words: the CPU pages of its ``iopt_pages`` (the whole
    pinned object, which a COPY shares with its source), whether they were pinned writable, and
    how many other areas share them."""
    users: dict[int, int] = {}
    for a in areas:
        users[id(a.pages)] = users.get(id(a.pages), 0) + 1
    out = []
    for a in areas:
        p = a.pages
        n = p.length // PAGE_SIZE
        text = f"{n} page{'s' if n != 1 else ''} ({fmt_size(p.length)}) {'rw' if p.writable else 'ro'}"
        others = users[id(p)] - 1
        if others:
            text += f", shared with {others} other area{'s' if others != 1 else ''}"
        out.append(text)
    return out

