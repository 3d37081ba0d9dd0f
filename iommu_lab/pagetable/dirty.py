"""DMA dirty tracking on a page table: the hardware's dirty-bit updates and the uAPI's bitmap.

Models the path of IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP on one
paging domain (drivers/iommu/iommufd/hw_pagetable.c ``iommufd_hwpt_set_dirty_tracking``,
``iommufd_hwpt_get_dirty_bitmap``; io_pagetable.c ``iopt_set_dirty_tracking``,
``iopt_read_and_clear_dirty_data``, ``iommufd_check_iova_range``,
``iommu_read_and_clear_dirty``), with the format's real dirty bit in the leaf entries
(:mod:`iommu_lab.hardware.dirty`):

* :meth:`DirtyTracker.dma_write` is the hardware: a write through a writable leaf sets its
  dirty bit (VT-d D, AMD HD) or clears AP[2] (ARM DBM) while tracking is on;
* :meth:`DirtyTracker.set_dirty_tracking` clears stale bits on enable, then flips the enable
  field (PASID entry SSADE, DTE HAD; ARM's CD.HD stays set);
* :meth:`DirtyTracker.get_dirty_bitmap` walks the leaves over ``[iova, iova + length)`` with
  the one range walker and returns the uAPI bitmap: u64 words, bit ``i`` for the page
  ``iova + i * page_size``; a dirty leaf sets every bit it covers (generic_pt records the
  whole leaf), so one write into a 2 MiB leaf dirties 512 bits of a 4 KiB bitmap; the dirty
  bits are cleared unless ``NO_CLEAR`` is given (then the IOTLB is not flushed either).

Errors follow the kernel's order and errno: unknown flags or reserved fields EOPNOTSUPP, then
``iommufd_check_iova_range`` (EOVERFLOW for a wrap, EINVAL for an iova or end not aligned to
the IOAS alignment or to ``page_size``, EINVAL for ``page_size`` 0), then EOPNOTSUPP for a
domain without dirty ops. Failed calls change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, fmt_addr, fmt_size
from iommu_lab.hardware.dirty import DirtyScheme, scheme_for
from iommu_lab.hardware.formats import EntryKind
from iommu_lab.pagetable.walker import Tables, offset_of, walk_range

__all__ = ["DIRTY_TRACKING_ENABLE", "GET_DIRTY_BITMAP_NO_CLEAR", "MAX_BITMAP_BITS", "DirtyBitmap",
           "DirtyTracker", "record_writes"]

_U64 = np.uint64
#: ``IOMMU_HWPT_DIRTY_TRACKING_ENABLE`` and ``IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR``.
DIRTY_TRACKING_ENABLE = 1 << 0
GET_DIRTY_BITMAP_NO_CLEAR = 1 << 0
#: The model keeps the bitmap in memory: 2^30 bits (128 MiB) at most.
MAX_BITMAP_BITS = 1 << 30


@dataclass(frozen=True)
class DirtyBitmap:
    """The GET_DIRTY_BITMAP answer: ``words`` (u64) with bit ``i`` for page ``iova + i*page_size``."""

    iova: int
    length: int
    page_size: int
    words: np.ndarray

    @property
    def nbits(self) -> int:
        return self.length // self.page_size if self.page_size else 0

    def bits(self) -> np.ndarray:
        """One bool per page, in IOVA order (bit ``i`` of word ``i // 64``)."""
        b = np.unpackbits(self.words.view(np.uint8), bitorder="little").astype(bool)
        return b[: self.nbits]

    @property
    def count(self) -> int:
        """Dirty pages."""
        return int(self.bits().sum())

    @property
    def dirty_bytes(self) -> int:
        return self.count * self.page_size

    def pages(self) -> list[int]:
        """IOVAs of the dirty pages."""
        return [self.iova + int(i) * self.page_size for i in np.flatnonzero(self.bits())]

    def __str__(self) -> str:
        return (f"dirty bitmap [{fmt_addr(self.iova)} + {fmt_size(self.length)}] per {fmt_size(self.page_size)}: "
                f"{self.count} of {self.nbits} pages dirty ({fmt_size(self.dirty_bytes)})")


def _u64_arg(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {str(value)[:40]!r}")
    value = int(value)
    if value < 0:
        raise IommuError("EINVAL", f"{name} = {value} is negative; it is a __u64 field")
    if value > U64_MAX:
        raise IommuError("EOVERFLOW", f"{name} = {value:#x} does not fit the __u64 field")
    return value


class DirtyTracker:
    """Dirty tracking of one paging domain (a ``PageTable``) as an iommufd HWPT sees it.

    Parameters
    ----------
    table : PageTable
        The domain's table; its format must track dirty (``EOPNOTSUPP`` with the driver's
        reason otherwise, as HWPT_ALLOC with DIRTY_TRACKING answers).
    iova_alignment : int, optional
        The IOAS's ``iova_alignment`` (default: the table's smallest page size).
    """

    def __init__(self, table, *, iova_alignment: int | None = None) -> None:
        self.scheme: DirtyScheme = scheme_for(table.fmt)
        self.table = table
        align = table.min_pgsize if iova_alignment is None else iova_alignment
        if isinstance(align, bool) or not isinstance(align, int) or align <= 0 or align & (align - 1):
            raise ValueError(f"iova_alignment {align!r} must be a power of two (iopt->iova_alignment)")
        self.iova_alignment = align
        self.enabled = False
        self.syncs = 0  #: IOTLB syncs a clearing read issued (``iommu_iotlb_sync``)

    # ---------------------------------------------------------------- state
    @property
    def enable_word(self) -> int:
        """The enabling field in its structure word now (PASID entry SSADE, DTE HAD, CD HD)."""
        return self.scheme.enable_word(self.enabled or self.scheme.always_on)

    @property
    def hardware_updates(self) -> bool:
        return self.enabled or self.scheme.always_on

    # ---------------------------------------------------------------- hardware
    def dma_write(self, iovas) -> np.ndarray:
        """DMA writes to ``iovas``: each write through a writable leaf marks that leaf dirty
        while the hardware updates dirty state. Returns a bool mask of writes that translated
        with write permission (faulting writes change nothing)."""
        t = self.table
        batch = t.translate(iovas, paths=True)
        ok = ~batch.fault
        if not ok.any():
            return ok
        lv = batch.leaf_level.astype(np.int64)
        idx = np.flatnonzero(ok)
        addrs = batch.entry_address[lv[idx], idx]
        raw, _ = t.memory.gather(addrs)
        writable = self.scheme.is_writable(raw)
        ok[idx[~writable]] = False
        if self.hardware_updates and writable.any():
            a, first = np.unique(addrs[writable], return_index=True)
            new = self.scheme.set_dirty(self.scheme.map_quirk(raw[writable][first]))
            t.memory.scatter(a, new)
        return ok

    # ---------------------------------------------------------------- leaves over a range
    def _leaf_runs(self, lo: int, hi: int):
        """Leaves overlapping [lo, hi]: ``(plain_base, plain_size, plain_addr)`` arrays for leaves
        of their level's item size, and ``(base, size, slot addresses)`` for replicated leaves
        (AMD NL=7), each run taken whole."""
        fmt, mem = self.table.fmt, self.table.memory
        plain: list[tuple[np.ndarray, int, np.ndarray]] = []
        runs: list[tuple[int, int, np.ndarray]] = []

        def visit(tb: Tables) -> None:
            kinds = tb.kinds
            if tb.level > 0:
                tb.descend(np.flatnonzero(kinds == EntryKind.TABLE))
            leaves = np.flatnonzero(kinds == EntryKind.LEAF)
            if not leaves.size:
                return
            item = fmt.item_lg2(tb.level)
            lg2 = fmt.rules.leaf_lg2(fmt, tb.raw[leaves], tb.level)
            same = lg2 == item
            if same.any():
                plain.append((tb.offset[leaves[same]], 1 << item, tb.eaddr[leaves[same]]))
            for j, g in zip(leaves[~same].tolist(), lg2[~same].tolist()):
                base = tb.off(j) & ~((1 << g) - 1)
                if runs and runs[-1][0] == base and runs[-1][1] == 1 << g:
                    continue  # the next replica of a run already taken whole
                runs.append((base, 1 << g, tb.slots_at(j, base, 1 << (g - item))))

        walk_range(fmt, mem, self.table.root, lo, hi, visit)
        return plain, runs

    def _read_and_clear(self, iova: int, last: int, clear: bool) -> list[tuple[int, int]]:
        """Dirty leaves overlapping [iova, last] as (leaf iova, size); cleared when ``clear``."""
        fmt, mem, sch = self.table.fmt, self.table.memory, self.scheme
        plain, runs = self._leaf_runs(offset_of(fmt, iova), offset_of(fmt, last))
        out: list[tuple[int, int]] = []
        for offs, size, addrs in plain:
            raw = sch.map_quirk(mem.gather(addrs)[0])
            dirty = sch.is_dirty(raw)
            if dirty.any():
                out.extend((int(o) + fmt.va_base, size) for o in offs[dirty].tolist())
                if clear:
                    mem.scatter(addrs[dirty], sch.clear_dirty(raw[dirty]))
        for base, size, addrs in runs:
            raw = sch.map_quirk(mem.gather(addrs)[0])
            if sch.is_dirty(raw).any():
                out.append((base + fmt.va_base, size))
                if clear:
                    mem.scatter(addrs, sch.clear_dirty(raw))
        return sorted(out)

    # ---------------------------------------------------------------- uAPI
    def set_dirty_tracking(self, enable: bool = True, *, flags: int | None = None, reserved: int = 0) -> None:
        """IOMMU_HWPT_SET_DIRTY_TRACKING: ``flags`` (default from ``enable``) may hold only
        ``IOMMU_HWPT_DIRTY_TRACKING_ENABLE``; enabling first clears every stale dirty bit
        (``iopt_set_dirty_tracking`` → ``iopt_clear_dirty_data``)."""
        flags = (DIRTY_TRACKING_ENABLE if enable else 0) if flags is None else _u64_arg(flags, "flags")
        reserved = _u64_arg(reserved, "__reserved")
        if flags & ~DIRTY_TRACKING_ENABLE or reserved:
            raise IommuError("EOPNOTSUPP", f"flags {flags:#x} / __reserved {reserved:#x}: only "
                                           "IOMMU_HWPT_DIRTY_TRACKING_ENABLE (0x1) is defined "
                                           "(iommufd_hwpt_set_dirty_tracking)")
        on = bool(flags & DIRTY_TRACKING_ENABLE)
        if on:
            self._read_and_clear(self.table.fmt.va_base, self.table.fmt.input_ranges[-1].last, True)
        self.enabled = on

    def check_iova_range(self, iova, length, page_size) -> tuple[int, int, int]:
        """``iommufd_check_iova_range``: returns (iova, last, page_size) or raises."""
        iova, length, page_size = (_u64_arg(v, n) for v, n in ((iova, "iova"), (length, "length"), (page_size, "page_size")))
        last = iova + ((length - 1) & U64_MAX)
        if last > U64_MAX:
            raise IommuError("EOVERFLOW", f"iova {fmt_addr(iova)} + length {length:#x} - 1 wraps past 2^64 "
                                          "(iommufd_check_iova_range: check_add_overflow)")
        end = (last + 1) & U64_MAX
        a = self.iova_alignment
        if iova & (a - 1) or end & (a - 1):
            raise IommuError("EINVAL", f"[{fmt_addr(iova)}, {fmt_addr(last)}] is not aligned to the IOAS "
                                       f"alignment {fmt_size(a)} (iommufd_check_iova_range)")
        if not page_size:
            raise IommuError("EINVAL", "page_size 0: the bitmap needs a page size (iommufd_check_iova_range)")
        if iova & (page_size - 1) or end & (page_size - 1):
            raise IommuError("EINVAL", f"[{fmt_addr(iova)}, {fmt_addr(last)}] is not a whole number of "
                                       f"{page_size:#x}-byte pages (iommufd_check_iova_range)")
        if page_size & (page_size - 1):
            raise IommuError("EINVAL", f"page_size {page_size:#x} is not a power of two; iova_bitmap counts pages "
                                       "of 1 << __ffs(page_size), which would misplace every bit")
        return iova, last, page_size

    def get_dirty_bitmap(self, iova, length, page_size, flags: int = 0, *, reserved: int = 0) -> DirtyBitmap:
        """IOMMU_HWPT_GET_DIRTY_BITMAP over ``[iova, iova + length)`` with one bit per ``page_size``.

        Reads and clears the leaves' dirty bits (then syncs the IOTLB) unless ``flags`` holds
        ``IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR``. Tracking need not be on: the bits are read
        as they are.
        """
        flags, reserved = _u64_arg(flags, "flags"), _u64_arg(reserved, "__reserved")
        if flags & ~GET_DIRTY_BITMAP_NO_CLEAR or reserved:
            raise IommuError("EOPNOTSUPP", f"flags {flags:#x} / __reserved {reserved:#x}: only "
                                           "IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR (0x1) is defined "
                                           "(iommufd_hwpt_get_dirty_bitmap)")
        iova, last, page_size = self.check_iova_range(iova, length, page_size)
        length = int(length)
        nbits = length // page_size
        if nbits > MAX_BITMAP_BITS:
            raise IommuError("ENOMEM", f"a bitmap of {nbits} bits ({fmt_size(nbits // 8)}) for "
                                       f"{fmt_size(length)} at {fmt_size(page_size)} pages is over the model's "
                                       f"{MAX_BITMAP_BITS}-bit limit; use a larger page_size or a shorter range")
        words = np.zeros((nbits + 63) // 64, dtype=_U64)
        if length:
            bits = np.zeros(words.size * 64, dtype=bool)
            clear = not flags & GET_DIRTY_BITMAP_NO_CLEAR
            for base, size in self._read_and_clear(iova, last, clear):
                first = max(base, iova)
                stop = min(base + size - 1, last)
                bits[(first - iova) // page_size:(stop - iova) // page_size + 1] = True
            words = np.packbits(bits, bitorder="little").view(_U64).copy()
            if clear:
                self.syncs += 1
        return DirtyBitmap(iova, length, page_size, words)

    def __repr__(self) -> str:
        return (f"DirtyTracker({self.table.fmt.name}, {'on' if self.enabled else 'off'}; "
                f"{self.scheme.describe()})")


def record_writes(tracker: DirtyTracker | None, iovas) -> int:
    """For the replay: mark a batch of written IOVAs dirty; returns how many writes landed.
    ``None`` (a domain without tracking) records nothing."""
    if tracker is None:
        return 0
    return int(tracker.dma_write(iovas).sum())

