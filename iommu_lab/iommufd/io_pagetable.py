"""The IOVA space of an IOAS: its interval trees, the allocator and the map/unmap core.

Mirrors drivers/iommu/iommufd/io_pagetable.c (``struct io_pagetable``): three trees — areas,
the user's allowed ranges, the reserved ranges with their owners — plus ``iova_alignment`` and
``disable_large_pages``. The operations here are the ``iopt_*`` functions the ioctls call:
``iopt_alloc_iova`` (automatic placement), ``iopt_check_iova`` (a FIXED placement),
``iopt_map_pages`` → ``iopt_alloc_area_pages`` / ``iopt_insert_area``, ``iopt_unmap_iova_range``,
``iopt_cut_iova`` → ``iopt_area_split``, ``iopt_reserve_iova``, ``iopt_set_allow_iova``,
``iopt_calculate_iova_alignment`` / ``iopt_check_iova_alignment``, ``iopt_table_add_domain`` /
``iopt_table_enforce_dev_resv_regions`` and the large-page option.

What the ioctls check about their arguments (ioas.c) is in ``ioas.py``; VFIO's variants of
the rules are in ``type1.py``, written against the public methods of ``IoPagetable``. Every
check runs before the first change, except where the kernel itself is not atomic (an UNMAP
removes earlier areas before refusing a later one; a VFIO v1 cut stays when the next fails).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet, fmt_addr, fmt_size
from iommu_lab.hardware.device import Device, ResvType
from iommu_lab.iommufd.access import Access, notify_unmap, pinned_by_any
from iommu_lab.iommufd.area import (
    PROT_BY_INT,
    Area,
    AreaIndex,
    Prot,
    Reservation,
    alloc_iova_check_range,
    roundup_pow_of_two,
)
from iommu_lab.iommufd.domains import Domains
from iommu_lab.iommufd.pages import HPAGE_SIZE, PAGE_SIZE, Pages

__all__ = ["IoPagetable", "Piece"]

#: One run of pinned memory to map: (pages object, user VA of its first byte, bytes).
Piece = tuple[Pages, int, int]


class IoPagetable:
    """The IOVA space of one IOAS, ``struct io_pagetable``.

    Parameters
    ----------
    hpage_size : int
        ``HPAGE_SIZE``, the cap on automatic alignment.
    huge_pages : bool
        ``!iopt->disable_large_pages``.
    page_tables, host
        Passed to ``Domains``: whether attached devices get ``PageTable`` domains, and the host
        memory those are filled from.
    """

    def __init__(self, *, hpage_size: int = HPAGE_SIZE, huge_pages: bool = True, page_tables: bool = True,
                 host: object = None) -> None:
        self.hpage_size = hpage_size
        self.index = AreaIndex()
        self.domains = Domains(page_tables=page_tables, host=host)  # type: ignore[arg-type]
        self._reservations: list[Reservation] = []
        self._allowed = RangeSet()
        self._accesses: list[Access] = []
        self._huge_pages = huge_pages
        self._alignment = self.calculate_iova_alignment()

    # -- state ----------------------------------------------------------------------------------
    @property
    def areas(self) -> tuple[Area, ...]:
        return self.index.values()

    @property
    def reservations(self) -> tuple[Reservation, ...]:
        """The reserved-tree nodes in the order they were added."""
        return tuple(self._reservations)

    @property
    def allowed(self) -> RangeSet:
        return self._allowed

    @property
    def accesses(self) -> tuple[Access, ...]:
        return tuple(self._accesses)

    @property
    def huge_pages(self) -> bool:
        return self._huge_pages

    @property
    def alignment(self) -> int:
        """``iopt->iova_alignment``."""
        return self._alignment

    @property
    def windows(self) -> tuple[IovaRange, ...]:
        return self.domains.windows

    def find_area(self, iova: int) -> Area | None:
        return self.index.find(iova)

    def first_area_overlapping(self, start: int, last: int) -> Area | None:
        """``iopt_area_iter_first``: the lowest area intersecting ``[start, last]``."""
        return self.index.first_overlapping(start, last)

    def areas_overlapping(self, start: int, last: int) -> list[Area]:
        return self.index.overlapping(start, last)

    def gaps(self) -> Iterator[IovaRange]:
        """The holes of reserved ∪ areas, ascending (what automatic allocation chooses from)."""
        return self.index.gaps()

    def iova_ranges(self) -> RangeSet:
        """The holes of the reserved tree over [0, U64_MAX], adjacent nodes merged
        (ioas.c ``iommufd_ioas_iova_ranges``)."""
        return RangeSet.full() - RangeSet(r.range for r in self._reservations)

    def permitted_pieces(self, extra_devices: Sequence[Device] = (), extra_resv: Sequence[Reservation] = ()) -> tuple[IovaRange, ...]:
        """Usable ranges split at window boundaries: each window minus the reserved tree (with
        ``extra_devices`` attached and ``extra_resv`` reserved too)."""
        windows = self.domains.windows_with(extra_devices)
        resv = RangeSet(r.range for r in [*self._reservations, *extra_resv])
        return tuple(p for w in windows for p in RangeSet([w]) - resv)

    def contiguous(self, start: int, last: int) -> list[tuple[Area, int, int]] | None:
        """``iopt_get_pages``: (area, first IOVA used, bytes) pieces covering ``[start, last]`` with
        no gap, or None (``iopt_area_contig_*``)."""
        area = self.index.find(start)
        out = []
        cur = start
        while area is not None:
            end = min(area.last, last)
            out.append((area, cur, end - cur + 1))
            if end == last:
                return out
            cur = end + 1
            nxt = self.index.next_after(area)
            area = nxt if nxt is not None and nxt.iova == cur else None
        return None

    # -- alignment ------------------------------------------------------------------------------
    def calculate_iova_alignment(self, devices: Iterable[Device] | None = None, accesses: Iterable[int] | None = None,
                                 huge_pages: bool | None = None) -> int:
        """``iopt_calculate_iova_alignment``: max of 1, PAGE_SIZE with large pages off, each
        domain's smallest page and each access's alignment."""
        huge = self._huge_pages if huge_pages is None else huge_pages
        accesses = [a.iova_alignment for a in self._accesses] if accesses is None else accesses
        return max(1 if huge else PAGE_SIZE, self.domains.alignment(devices), *accesses)

    def check_iova_alignment(self, new_alignment: int, why: str) -> None:
        """``iopt_check_iova_alignment``: every area's iova, length and VA page offset must be a
        multiple of the raised alignment, else EADDRINUSE."""
        if new_alignment <= self._alignment:
            return
        mask = new_alignment - 1
        for a in self.index:
            if a.iova & mask or a.length & mask or a.page_offset & mask:
                raise IommuError(
                    "EADDRINUSE",
                    f"{why} raises iova_alignment to {fmt_addr(new_alignment)} but area {a.range} (length "
                    f"{fmt_addr(a.length)}, VA page offset {fmt_addr(a.page_offset)}) is not aligned to it "
                    f"(iopt_check_iova_alignment)",
                )

    def _recalculate(self) -> None:
        self._alignment = self.calculate_iova_alignment()

    # -- allowed and reserved -------------------------------------------------------------------
    def set_allow_iova(self, items: Sequence[IovaRange]) -> None:
        """``iopt_set_allow_iova``: replace the allowed list; one intersecting a reserved range →
        EADDRINUSE and the old list stays (the ranges were validated by the caller)."""
        for rng in items:
            for res in self._reservations:
                if res.start <= rng.last and rng.start <= res.last:
                    raise IommuError(
                        "EADDRINUSE",
                        f"allowed range {rng} intersects reserved {res}; the old allowed list stays "
                        f"(iopt_set_allow_iova). Free IOVAs: {self.iova_ranges()}",
                    )
        self._allowed = RangeSet(items)

    def check_reservable(self, new: Iterable[Reservation], what: str) -> None:
        """``iopt_reserve_iova``: a reservation may not intersect an area or an allowed range."""
        for res in new:
            hit = self.index.first_overlapping(res.start, res.last)
            if hit is not None:
                raise IommuError(
                    "EADDRINUSE",
                    f"{what}: reserving {res.range} ({res.kind}) would cover the mapped area {hit.range}; "
                    f"unmap it first (iopt_reserve_iova)",
                )
            for a in self._allowed.overlapping(res.range):
                raise IommuError(
                    "EADDRINUSE",
                    f"{what}: reserving {res.range} ({res.kind}) would cover the allowed range {a}; allowed "
                    f"ranges are promised to stay usable (iopt_reserve_iova)",
                )

    def reserve(self, res: Reservation) -> None:
        """``iopt_reserve_iova``: check, then add one node to the reserved tree."""
        self.check_reservable([res], "reserve")
        self._add_reserved([res])

    def _add_reserved(self, new: Iterable[Reservation]) -> None:
        self._reservations.extend(new)
        self.index.set_reserved([r.range for r in self._reservations])

    # -- placement ------------------------------------------------------------------------------
    def alloc_iova(self, addr: int, length: int) -> int:
        """``iopt_alloc_iova``: lowest-address first fit.

        ``length`` 0 or >= U64_MAX/2 → EOVERFLOW; alignment = ``roundup_pow_of_two(length)``, or its
        min with the lowest set bit of the hint VA ``addr``, capped at HPAGE_SIZE; below
        ``iova_alignment`` → EINVAL. The allowed spans (or, with none, one span) clipped to
        ``[PAGE_SIZE, U64_MAX - PAGE_SIZE]`` are walked ascending, each start aligned and OR-ed with
        the VA page offset, then the holes of reserved ∪ areas inside; ALIGN_UP wrap, ``start >=
        last`` or too short rejects a candidate. Nothing fits → ENOSPC. Model extension: spans are
        also split at window boundaries, so an automatic map never straddles touching windows.
        """
        if length == 0 or length >= U64_MAX // 2:
            raise IommuError(
                "EOVERFLOW", f"automatic map length {fmt_addr(length)} must be below 2^63-1 (iopt_alloc_iova)"
            )
        page_offset = addr % PAGE_SIZE
        align = roundup_pow_of_two(length)
        if addr:
            align = min(align, addr & -addr)
        if align >= self.hpage_size:
            align = self.hpage_size
        if align < self._alignment:
            raise IommuError(
                "EINVAL",
                f"automatic alignment {fmt_addr(align)} (from length {fmt_addr(length)} and user VA {fmt_addr(addr)}) is "
                f"below iova_alignment {fmt_addr(self._alignment)} (iopt_alloc_iova)",
            )
        window = IovaRange(PAGE_SIZE, U64_MAX - PAGE_SIZE)
        spans = self._allowed.intersection([window]) if self._allowed else RangeSet([window])
        windows = self.windows
        pieces = [p for w in windows for p in spans.intersection([w])] if len(windows) > 1 else list(spans)
        for span in pieces:
            start = alloc_iova_check_range(span.start, span.last, length, align, page_offset)
            if start is None:
                continue
            found = self.index.first_fit(start, span.last, length, align, page_offset)
            if found is not None:
                return found
        raise IommuError(
            "ENOSPC",
            f"no free hole fits {fmt_addr(length)} bytes at alignment {fmt_addr(align)} (VA page offset "
            f"{fmt_addr(page_offset)}) inside {'the allowed ranges ' + str(self._allowed) if self._allowed else str(window)}"
            f" (iopt_alloc_iova)",
        )

    def check_iova(self, iova: int, length: int) -> None:
        """``iopt_check_iova``, plus the window rule: misaligned → EINVAL; wrap → EOVERFLOW;
        reserved or outside the windows → EINVAL; straddling two windows → EINVAL; an existing
        area → EEXIST. So reserved + area overlap is EINVAL, never EEXIST."""
        align = self._alignment
        if iova & (align - 1):
            raise IommuError(
                "EINVAL", f"iova {fmt_addr(iova)} is not a multiple of iova_alignment {fmt_addr(align)} (iopt_check_iova)"
            )
        last = iova + length - 1
        if last > U64_MAX:
            raise IommuError(
                "EOVERFLOW", f"iova {fmt_addr(iova)} + length {fmt_addr(length)} - 1 wraps past 2^64 (iopt_check_iova)"
            )
        rng = IovaRange(iova, last)
        hits = [r for r in self._reservations if r.start <= last and iova <= r.last]
        if hits:
            res = min(hits, key=lambda r: (r.start, r.last))
            if res.kind == "aperture":
                raise IommuError(
                    "EINVAL", self.window_message(rng) + " (iopt_check_iova: outside the aperture is reserved)"
                )
            raise IommuError(
                "EINVAL", f"map {rng} overlaps reserved {res}; free IOVAs are {self.iova_ranges()} (iopt_check_iova)"
            )
        windows = self.windows
        if len(windows) == 1:
            inside = windows[0].start <= iova and last <= windows[0].last
        else:
            inside = any(w.start <= iova and last <= w.last for w in windows)
        if not inside:
            raise IommuError("EINVAL", self.window_message(rng) + " (Gibson's window rule: a map lies inside one window)")
        hit = self.index.first_overlapping(iova, last) if self.index.any_overlap(iova, last) else None
        if hit is not None:
            raise IommuError("EEXIST", f"map {rng} overlaps the existing area {hit.range}; unmap it first (iopt_check_iova)")

    def window_message(self, rng: IovaRange) -> str:
        """Which window ``rng`` leaves, and the permitted windows, in words."""
        windows = self.windows
        inside = next((w for w in windows if rng.start in w), None)
        if inside is not None:
            what = f"crosses the end of window {inside}"
        else:
            later = next((w for w in windows if rng.start < w.start <= rng.last), None)
            what = f"crosses the start of window {later}" if later else "lies outside every window"
        return f"map {rng} {what}; the permitted windows are {', '.join(str(w) for w in windows)}"

    # -- map ------------------------------------------------------------------------------------
    def map_pages(self, pieces: list[Piece], length: int, iova: int | None, prot: Prot) -> list[Area]:
        """``iopt_map_pages`` → ``iopt_alloc_area_pages``: length alignment, IOVA choice
        (``iopt_alloc_iova``, hinted by the first piece's VA) or check (``iopt_check_iova``), then
        ``iopt_insert_area``'s checks per piece, all before any area is inserted (the kernel
        aborts the inserted ones on error)."""
        align = self._alignment
        if length & (align - 1) or not length:
            raise IommuError(
                "EINVAL",
                f"length {fmt_addr(length)} is not a multiple of iova_alignment {fmt_addr(align)} (iopt_alloc_area_pages)",
            )
        if iova is None:
            iova = self.alloc_iova(pieces[0][1], length)
        else:
            self.check_iova(iova, length)
        for pages, va, _ in pieces:
            if int(prot) & 2 and not pages.writable:
                raise IommuError(
                    "EPERM",
                    f"writeable mapping requested of read-only pages (VA {fmt_addr(va)}, mapped without write); "
                    f"copy with prot='r' (iopt_insert_area)",
                )
            if va % PAGE_SIZE & (align - 1):
                raise IommuError(
                    "EINVAL",
                    f"user VA {fmt_addr(va)} has page offset {fmt_addr(va % PAGE_SIZE)}, not a multiple of "
                    f"iova_alignment {fmt_addr(align)} (iopt_insert_area)",
                )
        return self.insert_areas(pieces, iova, prot)

    def insert_areas(self, pieces: list[Piece], iova: int, prot: Prot) -> list[Area]:
        """Insert one area per piece from ``iova`` on, then fill the domains (``iopt_map_pages``);
        if a fill fails, the areas already filled are cleared and every new area is aborted, so
        nothing changes. The caller has checked the placement."""
        out = []
        cur = iova
        for pages, va, n in pieces:
            area = Area(cur, n, va, PROT_BY_INT[int(prot) & 3], pages, va - pages.user_va)
            self.index.insert(area)
            out.append(area)
            cur += n
        if self.domains.tables:
            filled = []
            try:
                for area in out:
                    self.domains.fill(area, huge_pages=self._huge_pages)
                    filled.append(area)
            except Exception:
                for area in filled:
                    self.domains.unfill(area)
                for area in out:
                    self.index.remove(area)
                raise
        return out

    # -- unmap ----------------------------------------------------------------------------------
    def unmap_iova_range(self, start: int, last: int, *, empty_ok: bool) -> int:
        """``iopt_unmap_iova_range``: repeatedly take the first area intersecting the range; if it
        sticks out → ENOENT (earlier removals stand, their bytes in the error's ``unmapped``);
        else notify accesses, unfill domains, remove. Nothing removed → ENOENT unless ``empty_ok``."""
        removed = 0
        # The kernel re-queries the first intersecting area after each removal; nothing else
        # changes the tree meanwhile, so one ascending scan visits the same areas in the same order.
        for area in self.index.overlapping(start, last):
            if area.iova < start or area.last > last:
                already = f", and {fmt_size(removed)} of earlier areas were already removed" if removed else ""
                err = IommuError(
                    "ENOENT",
                    f"unmap {IovaRange(start, last)} cuts area {area.range}; areas are removed whole "
                    f"(iopt_unmap_iova_range{already})",
                )
                err.unmapped = removed  # type: ignore[attr-defined]
                raise err
            removed += self.remove_areas([area])
        if not removed and not empty_ok:
            err = IommuError("ENOENT", f"nothing is mapped in {IovaRange(start, last)} (iopt_unmap_iova_range)")
            err.unmapped = 0  # type: ignore[attr-defined]
            raise err
        return removed

    def remove_areas(self, areas: Iterable[Area]) -> int:
        """Remove whole areas: tell the accesses pinning them, clear them from the domains, drop
        them from the tree. Returns the bytes removed."""
        total = 0
        for area in list(areas):
            notify_unmap(self._accesses, area)
            self.domains.unfill(area)
            self.index.remove(area)
            total += area.length
        return total

    def cut_iova(self, point: int) -> None:
        """``iopt_cut_iova`` at ``point`` (the new last of the left piece), by ``iopt_area_split``:
        no area or an area edge → nothing; misaligned new start or VA offset → EINVAL; an area
        pinned by an access → EINVAL."""
        area = self.index.find(point)
        if area is None or point == area.iova or point == area.last:
            return
        new_start = point + 1
        align = self._alignment
        if new_start & (align - 1) or (area.va_of(new_start) - area.pages.user_va) & (align - 1):
            raise IommuError(
                "EINVAL",
                f"cannot cut area {area.range} at {fmt_addr(new_start)}: not a multiple of iova_alignment "
                f"{fmt_addr(align)} (iopt_area_split)",
            )
        if pinned_by_any(self._accesses, area):
            raise IommuError("EINVAL", f"cannot cut area {area.range}: an in-kernel access has it pinned (iopt_area_split)")
        lhs = Area(area.iova, new_start - area.iova, area.user_va, area.prot, area.pages, area.start_byte)
        rhs = Area(new_start, area.last - point, area.va_of(new_start), area.prot, area.pages,
                   area.start_byte + (new_start - area.iova))
        self.index.replace(area, [lhs, rhs])

    # -- devices ----------------------------------------------------------------------------------
    def check_windows_hold_areas(self, device: Device, errno: str) -> None:
        """Model extension of attach: an existing area that would straddle two touching windows
        of the new device is refused (``errno``), since no reservation separates touching windows
        and the kernel's own checks would not see it."""
        windows = self.domains.windows_with([device])
        spans = RangeSet(windows)
        for area in self.index:
            if not any(w.start <= area.iova and area.last <= w.last for w in windows):
                if spans.find(area.iova) is not None and area.last in spans:
                    raise IommuError(
                        errno,
                        f"attach {device.name!r}: existing area {area.range} would straddle two of the windows "
                        f"{', '.join(str(w) for w in windows)}; a mapping lies inside one window",
                    )

    def check_add_device(self, device: Device, regions: list[Reservation], aperture: list[Reservation]) -> None:
        """iommufd's attach checks, in ``iommufd_hwpt_paging_alloc`` order: the regions reservable
        and at most one SW_MSI or hardware MSI (``iopt_table_enforce_dev_resv_regions``); then
        ``iopt_table_add_domain``: smallest page > PAGE_SIZE → EINVAL, a raised alignment not met
        by an area → EADDRINUSE, the aperture complement reservable."""
        what = f"attach {device.name!r}"
        self.check_reservable(regions, what)
        n_sw = sum(r.type is ResvType.SW_MSI for r in regions)
        n_hw = sum(r.type is ResvType.MSI for r in regions)
        if (n_sw and n_hw) or n_sw > 1:
            raise IommuError(
                "EINVAL",
                f"{what}: the driver reports {n_sw} SW_MSI and {n_hw} MSI regions; iommufd accepts "
                f"one SW_MSI or hardware MSI, not both (iopt_table_enforce_dev_resv_regions)",
            )
        new_align = max(device.min_pgsize, self._alignment)
        if new_align > PAGE_SIZE:
            raise IommuError(
                "EINVAL",
                f"{what}: its smallest IOMMU page {fmt_size(device.min_pgsize)} is larger than "
                f"PAGE_SIZE {fmt_size(PAGE_SIZE)}; iommufd needs domains that accept PAGE_SIZE (iopt_table_add_domain)",
            )
        self.check_iova_alignment(new_align, what)
        self.check_reservable(aperture, what)

    def add_device(self, device: Device, reservations: list[Reservation], *, force_writeable: bool = False) -> None:
        """Commit an attach whose checks passed: make and fill the device's domain (which may
        still fail, leaving nothing behind), then add the device and its reservations."""
        table = self.domains.new_table(device, self.index, huge_pages=self._huge_pages, force_writeable=force_writeable)
        self.domains.add(device, table, force_writeable=force_writeable)
        self._add_reserved(reservations)
        self._recalculate()

    def remove_device(self, name: str) -> Device:
        """``iopt_table_remove_domain`` and ``iopt_remove_reserved_iova``: drop the device, its
        domain and the reservations it owns; the alignment is recomputed (it may fall)."""
        if self.domains.find(name) is None:
            attached = [d.name for d in self.domains.devices]
            raise IommuError("ENOENT", f"device {name!r} is not attached; attached: {attached}")
        found = self.domains.remove(name)
        self._reservations = [r for r in self._reservations if not (r.owner == name and r.kind in ("region", "aperture"))]
        self.index.set_reserved([r.range for r in self._reservations])
        self._recalculate()
        return found

    # -- options and accesses ---------------------------------------------------------------------
    def set_huge_pages(self, enabled: bool) -> None:
        """``iopt_disable_large_pages`` / ``iopt_enable_large_pages``: off with a domain *and* an
        area → EINVAL; off raises the alignment to at least PAGE_SIZE (EADDRINUSE when an area
        does not meet it); on always succeeds and recomputes."""
        if not enabled and self._huge_pages:
            if self.domains.devices and len(self.index):
                raise IommuError(
                    "EINVAL",
                    "cannot disable huge pages: a domain is attached and areas are already mapped into it "
                    "(iopt_disable_large_pages); unmap everything or detach first",
                )
            self.check_iova_alignment(self.calculate_iova_alignment(huge_pages=False), "disabling huge pages")
        self._huge_pages = enabled
        self._recalculate()

    def add_access(self, access: Access) -> None:
        """``iopt_add_access``: the access's alignment joins the IOAS's; raising it past an
        area's alignment → EADDRINUSE."""
        self.check_iova_alignment(max(self._alignment, access.iova_alignment), "adding an access")
        self._accesses.append(access)
        self._recalculate()

    def remove_access(self, access: Access) -> None:
        """``iopt_remove_access``: the access goes with its pins; the alignment is recomputed."""
        if access not in self._accesses:
            raise IommuError("ENOENT", "this access is not attached to this IOAS")
        self._accesses.remove(access)
        access.detach()
        self._recalculate()
