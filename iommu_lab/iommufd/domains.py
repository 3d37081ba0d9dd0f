"""The devices attached to an I/O address space and their paging domains.

Mirrors the domain half of drivers/iommu/iommufd: what a device brings to the IOAS when it is
attached (io_pagetable.c ``iopt_table_add_domain`` reserving everything outside the domain's
aperture, ``iopt_table_enforce_dev_resv_regions`` reserving the device's reserved regions, the
domain's smallest page joining ``iopt_calculate_iova_alignment``), and the page tables each
domain holds, filled from the pinned pages on every map and cleared on every unmap (pages.c
``iopt_fill_domain``, ``iopt_area_fill_domains``, ``iopt_area_unfill_domains``).

Beyond iommufd the model keeps each device's *windows* as separate ranges (Gibson's permitted-
window rule): ``windows_of`` intersects the attached devices' windows pairwise without merging
touching ones, so a map can be held inside one window even where no reservation separates two.

Each device whose ``format`` names a page-table format gets a real ``PageTable`` domain (one per
device; the kernel may share a compatible auto domain, which gives the same reservations).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet
from iommu_lab.hardware import formats
from iommu_lab.hardware.device import Device
from iommu_lab.iommufd.area import PROT_LETTERS, Area, Reservation
from iommu_lab.pagetable.memory import HostMemory
from iommu_lab.pagetable.table import PageTable

__all__ = ["Domains", "windows_of", "device_reservations", "pgsize_bitmap"]


def windows_of(devices: Iterable[Device]) -> tuple[IovaRange, ...]:
    """The windows a map must lie within: the pairwise intersection of the devices' windows,
    kept unmerged. No device: the whole 64-bit space."""
    windows = [IovaRange(0, U64_MAX)]
    for dev in devices:
        windows = [x for w in windows for d in dev.windows if (x := w.intersection(d)) is not None]
    return tuple(sorted(windows))


def device_reservations(device: Device) -> tuple[list[Reservation], list[Reservation]]:
    """The reserved-tree nodes attaching ``device`` adds, as ``(regions, aperture)``.

    ``regions``: every reserved region but DIRECT_RELAXABLE, owner = the device
    (``iopt_table_enforce_dev_resv_regions``). ``aperture``: everything outside the device's
    windows, as ``iopt_table_add_domain`` reserves ``[0, aperture_start - 1]`` and
    ``[aperture_end + 1, MAX]`` with the domain as owner.
    """
    regions = [Reservation(r.start, r.last, device.name, "region", r.type) for r in device.reserved if r.type.becomes_hole]
    outside = RangeSet.full() - RangeSet(device.windows)
    aperture = [Reservation(r.start, r.last, device.name, "aperture") for r in outside]
    return regions, aperture


def pgsize_bitmap(devices: Iterable[Device]) -> int:
    """The AND of the devices' page-size bitmaps (every size when there is none)."""
    bitmap = U64_MAX
    for d in devices:
        bitmap &= d.pgsizes
    return bitmap


class Domains:
    """The attached devices, their windows and their page-table domains.

    Parameters
    ----------
    page_tables : bool
        Give each device whose ``format`` is set a ``PageTable`` domain (``iopt_fill_domain``).
    host : HostMemory, optional
        Where user VAs resolve to physical pages (what ``pin_user_pages`` returns); made on
        first use when not given.
    """

    def __init__(self, *, page_tables: bool = True, host: HostMemory | None = None) -> None:
        self.page_tables = bool(page_tables)
        self._host = host
        self._devices: list[Device] = []
        self._tables: dict[str, PageTable] = {}
        #: Devices whose domain refuses read-only mappings (a VT-d nest parent: erratum
        #: ERRATA_772415_SPR17, ``__domain_mapping`` / generic_pt's ``vtdss_pt_iommu_set_prot``
        #: with PT_FEAT_VTDSS_FORCE_WRITEABLE answer EINVAL).
        self._force_writeable: set[str] = set()
        self.windows: tuple[IovaRange, ...] = windows_of(())

    # -- what is attached ---------------------------------------------------------------------
    @property
    def devices(self) -> tuple[Device, ...]:
        return tuple(self._devices)

    @property
    def tables(self) -> tuple[PageTable, ...]:
        """The paging domains, one per attached device with a ``format``."""
        return tuple(self._tables.values())

    def table(self, name: str) -> PageTable:
        """The domain of the device called ``name`` (KeyError if it has none)."""
        return self._tables[name]

    def find(self, name: str) -> Device | None:
        return next((d for d in self._devices if d.name == name), None)

    def alignment(self, devices: Iterable[Device] | None = None) -> int:
        """The devices' part of ``iopt_calculate_iova_alignment``: the largest smallest page."""
        return max((d.min_pgsize for d in (self._devices if devices is None else devices)), default=1)

    def windows_with(self, extra: Sequence[Device] = ()) -> tuple[IovaRange, ...]:
        """``windows`` as they would be with ``extra`` attached too."""
        return windows_of([*self._devices, *extra]) if extra else self.windows

    @property
    def host_memory(self) -> HostMemory:
        """The host memory the domains are filled from (``pin_user_pages``' answer)."""
        if self._host is None:
            self._host = HostMemory()
        return self._host

    # -- attach and detach ----------------------------------------------------------------------
    def new_table(self, device: Device, areas: Iterable[Area], *, huge_pages: bool,
                  force_writeable: bool = False) -> PageTable | None:
        """A paging domain for ``device`` filled with ``areas`` (``iopt_table_add_domain`` →
        ``iopt_fill_domain``), or None when the device names no format or its format's input
        range does not cover every window. A fill that fails raises before anything is kept;
        a ``force_writeable`` domain refuses a read-only area (EINVAL)."""
        if force_writeable:
            areas = list(areas)
            for area in areas:
                _check_writeable(area, device.name)
        name = getattr(device, "format", None)
        if not self.page_tables or not name:
            return None
        fmt = formats.get(name)
        # A growable table (AMD v1's dynamic levels) covers what its largest form covers.
        widest = fmt.max_format
        if not all(any(w in r for r in widest.input_ranges) for w in device.windows):
            # POWER: each window is its own TCE table, and the catalogue format describes only the
            # default window (a flat table for a 2^45 DDW would be 64 GiB). One PageTable cannot
            # stand for them, so such a device gets no domain rather than a wrong one.
            return None
        bitmap = device.pgsizes & widest.leaf_bitmap
        table = PageTable(fmt, pgsize_bitmap=bitmap or None)
        for area in areas:
            self._fill_one(table, area, huge_pages)
        return table

    def add(self, device: Device, table: PageTable | None, *, force_writeable: bool = False) -> None:
        self._devices.append(device)
        if force_writeable:
            self._force_writeable.add(device.name)
        if table is not None:
            self._tables[device.name] = table
        self.windows = windows_of(self._devices)

    def remove(self, name: str) -> Device:
        """Detach the device called ``name`` and drop its domain (``iopt_table_remove_domain``)."""
        found = self.find(name)
        if found is None:
            raise KeyError(name)
        self._devices.remove(found)
        self._tables.pop(name, None)
        self._force_writeable.discard(name)
        self.windows = windows_of(self._devices)
        return found

    # -- filling and clearing -------------------------------------------------------------------
    def fill(self, area: Area, *, huge_pages: bool) -> None:
        """Map a new area into every domain (``iopt_area_fill_domains``); on failure the domains
        already filled are cleared and the error propagates (the caller aborts the area)."""
        for name in self._force_writeable:
            _check_writeable(area, name)
        filled: list[PageTable] = []
        try:
            for table in self._tables.values():
                self._fill_one(table, area, huge_pages)
                filled.append(table)
        except Exception:
            if int(area.prot) & 3:
                for table in filled:
                    table.unmap(area.iova, area.length)
            raise

    def unfill(self, area: Area) -> None:
        """Unmap an area from every domain (``iopt_area_unfill_domains``)."""
        if not int(area.prot) & 3:
            return
        for table in self._tables.values():
            table.unmap(area.iova, area.length)

    def _fill_one(self, table: PageTable, area: Area, huge_pages: bool) -> None:
        """Map one area into one domain from the pinned pages' physical runs. With huge pages off
        every run is mapped with the smallest page (``batch_iommu_map_small``), so any page can
        later be cut out (``iopt_area_split``). An area with neither READ nor WRITE (VFIO compat)
        is not mapped, as io-pgtable maps nothing for prot 0. A failure unmaps what it mapped."""
        if not int(area.prot) & 3:
            return
        prot = PROT_LETTERS[int(area.prot) & 3]
        if huge_pages:
            table.map_user(area.iova, self.host_memory, area.user_va, area.length, prot=prot)
            return
        done = 0
        try:
            for va, pa, n in self.host_memory.resolve(area.user_va, area.length):
                table.populate(area.iova + (va - area.user_va), pa, n, table.min_pgsize, prot=prot)
                done += n
        except Exception:
            if done:
                table.unmap(area.iova, done)
            raise


def _check_writeable(area: Area, owner: str) -> None:
    """A read-only area cannot enter a domain that forces writeable leaves (a VT-d nest parent)."""
    if int(area.prot) & 3 == 1:
        raise IommuError("EINVAL", f"read-only mapping {area.range} is refused by {owner!r}, a VT-d nest parent: "
                         "read-only stage-2 mappings are not enforced while stage-1 tables are walked "
                         "(ERRATA_772415_SPR17; intel __domain_mapping, generic_pt vtdss_pt_iommu_set_prot)")

