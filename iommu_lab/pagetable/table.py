"""A page table in physical memory: map, unmap and populate with the kernel's page splitting.

``PageTable(fmt, memory)`` allocates its root table in ``memory`` and writes real entries:
every table pointer is a physical address returned by the memory's allocator, every leaf is
the bit pattern the format's rules produce. ``map`` splits a range exactly as
``iommu_map`` does with ``iommu_pgsize`` (``drivers/iommu/iommu.c``; public here as
``iommu_pgsize``/``pgsize_runs``/``pgsize_split``) and writes each run of equal pages with
one vectorised pass per level — the same path a bulk ``populate`` of 64 GiB uses.

Every operation validates first and writes after, so a refused call leaves memory byte-for-
byte unchanged (compare ``memory.snapshot()``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import U64_MAX, IovaRange, check_u64, fmt_addr, fmt_size
from iommu_lab.hardware import formats as _formats
from iommu_lab.hardware.formats import Format
from iommu_lab.pagetable import visitors
from iommu_lab.pagetable.census import TableTree, leaf_arrays, table_tree
from iommu_lab.pagetable.memory import FRAME_SIZE, HostMemory, PhysicalMemory
from iommu_lab.pagetable.walk import Walk
from iommu_lab.pagetable.walk import translate as _translate
from iommu_lab.pagetable.walk import walk as _walk
from iommu_lab.pagetable.walker import iova_of, iova_of_array, offset_of

__all__ = ["Mapping", "PageSplit", "PageTable", "TablePage", "iommu_pgsize", "pgsize_runs", "pgsize_split"]

_U64 = np.uint64


# ============================================================================ iommu_pgsize
def _fls(x: int) -> int:
    return x.bit_length() - 1


def _ffs(x: int) -> int:
    return (x & -x).bit_length() - 1


def _genmask(h: int) -> int:
    return (1 << (h + 1)) - 1


def iommu_pgsize(pgsize_bitmap: int, iova: int, paddr: int, size: int) -> tuple[int, int]:
    """``(pgsize, count)`` for the next run, as ``iommu_pgsize()`` in drivers/iommu/iommu.c.

    The largest supported size no larger than ``size`` and aligned for both ``iova`` and
    ``paddr`` (alignment skipped when both are 0); then, if the next larger supported size has
    the same offset in iova and paddr and a whole one fits after reaching its boundary, the run
    stops at that boundary.
    """
    addr_merge = paddr | iova
    pgsizes = pgsize_bitmap & _genmask(_fls(size))
    if addr_merge:
        pgsizes &= _genmask(_ffs(addr_merge))
    if not pgsizes:
        raise IommuError(
            "EINVAL",
            f"no page size in {pgsize_bitmap:#x} fits iova {fmt_addr(iova)}, pa {fmt_addr(paddr)}, size {size:#x}",
        )
    idx = _fls(pgsizes)
    pgsize = 1 << idx
    bigger = pgsize_bitmap & ~_genmask(idx)
    if bigger:
        nxt = 1 << _ffs(bigger)
        if ((iova ^ paddr) & (nxt - 1)) == 0:
            offset = nxt - (addr_merge & (nxt - 1))
            if offset + nxt <= size:
                size = offset
    return pgsize, size >> idx


def pgsize_runs(
    pgsize_bitmap: int, iova: int, paddr: int, size: int
) -> list[tuple[int, int, int, int]]:
    """The ``iommu_map`` loop: ``[(iova, pa, pgsize, count), ...]`` covering ``size`` bytes."""
    out = []
    while size:
        pgsize, count = iommu_pgsize(pgsize_bitmap, iova, paddr, size)
        out.append((iova, paddr, pgsize, count))
        n = pgsize * count
        iova += n
        paddr += n
        size -= n
    return out


class PageSplit(Sequence):
    """Every page ``iommu_map`` would map, ``(iova, pa, pgsize)`` each, computed on demand.

    Holds only the runs (``pgsize_runs``: one per page size, at most a few dozen), so
    ``len(pgsize_split(bm, 0, 0, 1 << 40))`` is 2^28 without building 2^28 tuples; indexing,
    iteration and slicing produce pages as they are asked for. Compares equal to a list of
    the same pages.
    """

    def __init__(self, runs: list[tuple[int, int, int, int]]) -> None:
        self.runs = runs
        self._starts = []
        n = 0
        for run in runs:
            self._starts.append(n)
            n += run[3]
        self._len = n

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._len))]
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"page index must be an int, not {type(i).__name__}")
        i = int(i)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"page {i} of {self._len}")
        k = bisect.bisect_right(self._starts, i) - 1
        v, p, s, _ = self.runs[k]
        j = i - self._starts[k]
        return (v + j * s, p + j * s, s)

    def __iter__(self):
        for v, p, s, c in self.runs:
            for j in range(c):
                yield (v + j * s, p + j * s, s)

    def __eq__(self, other) -> bool:
        if isinstance(other, PageSplit):
            return self.runs == other.runs
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == self._len and all(a == tuple(b) for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._len <= 8:
            return repr(list(self))
        return f"<PageSplit {self._len} pages in {len(self.runs)} run(s)>"


def pgsize_split(pgsize_bitmap: int, iova: int, paddr: int, size: int) -> PageSplit:
    """Every page ``iommu_map`` would map: ``(iova, pa, pgsize)`` per page (runs expanded).

    A :class:`PageSplit` that expands the runs lazily: a terabyte of 4 KiB pages costs the
    handful of runs, not 2^28 tuples, until someone iterates it.
    """
    return PageSplit(pgsize_runs(pgsize_bitmap, iova, paddr, size))


# ============================================================================ records
@dataclass(frozen=True)
class TablePage:
    """One table page found by walking the tree."""

    level: int
    name: str
    address: int
    bytes: int
    entries: int
    used: int  #: entries that are not empty
    iova: int  #: first IOVA the table covers


@dataclass(frozen=True)
class Mapping:
    """One leaf found by walking the tree (replicated AMD NL=7 slots count once)."""

    iova: int
    pa: int
    size: int
    perm: Perm
    level: int

    @property
    def last(self) -> int:
        return self.iova + self.size - 1


@dataclass(frozen=True)
class Leaves:
    """Every leaf of a table as parallel arrays, in IOVA order (see :meth:`PageTable.leaves`)."""

    iova: np.ndarray  #: uint64 first IOVA of each leaf
    pa: np.ndarray  #: uint64 output address
    size: np.ndarray  #: uint64 bytes
    perm: np.ndarray  #: uint8 ``Perm`` bits
    level: np.ndarray  #: int8 table level of the leaf entry

    def __len__(self) -> int:
        return int(self.iova.shape[0])


# ============================================================================ PageTable
class PageTable:
    """An I/O page table of format ``fmt`` whose tables live in ``memory``.

    Parameters
    ----------
    fmt : Format or str
        A descriptor or registry name (``"vtd-ss-4level"``).
    memory : PhysicalMemory, optional
        Where table pages are allocated (default: a fresh host memory at 0x1000_0000 of 64 GiB,
        or less when the format's output addresses are narrower).
    pgsize_bitmap : int, optional
        Restrict the advertised page sizes (e.g. ``0x1000`` for ``intel_iommu=sp_off``).

    Attributes
    ----------
    fmt : Format
        The current format. For a growable AMD v1 table (``"amd-v1-dynamic"``) it changes as
        ``map`` adds roots (``increase_address_space``), and so does ``root``.
    root : int
        Physical address of the top table in ``memory``.
    small_leaves : int
        A map writing at most this many leaf slots, or an unmap of at most this many smallest
        pages, walks one entry at a time with plain ints (``visitors.map_small`` /
        ``unmap_small``) instead of the vectorised visitors; same entries, same allocations,
        same errors, ten times faster for one page. 0 forces the vectorised path (default 16).
        Only tables in a plain :class:`PhysicalMemory` take it.
    """

    small_leaves: int = 16

    def __init__(
        self, fmt, memory: PhysicalMemory | None = None, *, pgsize_bitmap: int | None = None
    ) -> None:
        self.fmt: Format = _formats.get(fmt)
        if memory is None:
            # The default memory must be addressable by the format's table pointers.
            memory = PhysicalMemory(size=min(64 << 30, (1 << self.fmt.oas) - 0x1000_0000))
        self.memory = memory
        if self.memory.last >> self.fmt.oas:
            raise ValueError(
                f"{self.fmt.name} table pointers hold {self.fmt.oas}-bit addresses; memory ends at {fmt_addr(self.memory.last)}"
            )
        bm = (
            self.fmt.pgsize_bitmap
            if pgsize_bitmap is None
            else check_u64(pgsize_bitmap, "pgsize_bitmap")
        )
        if not bm or bm & ~self.fmt.max_format.leaf_bitmap:
            raise ValueError(
                f"pgsize_bitmap {bm:#x} must be a non-empty subset of {self.fmt.name}'s leaf sizes {self.fmt.max_format.leaf_bitmap:#x}"
            )
        self.pgsize_bitmap = bm
        self.root = self.memory.alloc(self.fmt.table_bytes(self.fmt.top_level))
        self._top_watchers: list[Callable[[PageTable], None]] = []

    def watch_top(self, callback: Callable[[PageTable], None]) -> None:
        """Call ``callback(table)`` after the table grows a level (a new ``root`` and ``fmt``).

        What the driver does after ``increase_address_space``: ``amd_iommu_domain_update``
        rewrites every device's DTE with the new root and mode (generic_pt: the ``change_top``
        driver op), so a DTE written before the growth points at the new top afterwards.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self._top_watchers.append(callback)

    # ---------------------------------------------------------------- addressing
    @property
    def min_pgsize(self) -> int:
        return 1 << _ffs(self.pgsize_bitmap)

    def _off(self, iova: int) -> int:
        return offset_of(self.fmt, iova)

    def _iova(self, off: int) -> int:
        return iova_of(self.fmt, off)

    # ---------------------------------------------------------------- validation
    def _u64(self, value, name: str) -> int:
        try:
            return check_u64(value, name)
        except ValueError as e:
            raise IommuError(
                "EOVERFLOW" if isinstance(value, int) and value > U64_MAX else "EINVAL", str(e)
            ) from None

    def _check_range(self, op: str, iova, size) -> tuple[int, int]:
        iova = self._u64(iova, "iova")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise TypeError(
                f"size must be an int number of bytes, got {type(size).__name__} {size!r}"
            )
        size = int(size)
        if size <= 0:
            raise IommuError(
                "EINVAL", f"{op} of {size} bytes at {fmt_addr(iova)}: the length must be positive"
            )
        if iova + size - 1 > U64_MAX:
            raise IommuError(
                "EOVERFLOW",
                f"{op} [{fmt_addr(iova)} + {size:#x}] wraps past 2^64 (check_add_overflow)",
            )
        last = iova + size - 1
        f = self.fmt
        if not f.is_canonical(iova) or not f.is_canonical(last):
            bad = iova if not f.is_canonical(iova) else last
            raise IommuError(
                "EINVAL",
                f"{op} [{fmt_addr(iova)}, {fmt_addr(last)}]: {fmt_addr(bad)} is non-canonical for "
                f"{f.name}; bits 63..{f.va_bits - 1} must equal bit {f.va_bits - 1}",
            )
        rng = IovaRange(iova, last)
        if not any(rng in r for r in f.max_format.input_ranges):
            raise IommuError(
                "EINVAL",
                f"{op} {rng} is outside {f.name}'s input range {f.max_format.input_ranges} "
                f"(io-pgtable returns -ERANGE, iommufd -EINVAL)",
            )
        return iova, size

    def _check_pa(self, pa, size: int, align: int) -> int:
        pa = self._u64(pa, "pa")
        if pa + size - 1 > U64_MAX:
            raise IommuError(
                "EOVERFLOW", f"physical range [{fmt_addr(pa)} + {size:#x}] wraps past 2^64"
            )
        if (pa + size - 1) >> self.fmt.oas:
            raise IommuError(
                "EINVAL",
                f"physical range ends at {fmt_addr(pa + size - 1)}, beyond {self.fmt.name}'s "
                f"{self.fmt.oas}-bit output addresses (kernel: -ERANGE)",
            )
        return pa

    def _check_prot(self, prot) -> Perm:
        perm = Perm.parse(prot)
        if not perm & (Perm.READ | Perm.WRITE):
            raise IommuError(
                "EINVAL",
                f"prot {prot!r} grants neither read nor write (vtdss_pt_iommu_set_prot refuses it)",
            )
        return self.fmt.rules.normalise_perm(perm)

    def _tables_needed(self, runs, fmt: Format | None = None) -> int:
        """Upper bound on frames a map may allocate (for the ENOMEM check before writing)."""
        f = fmt or self.fmt
        frames = 0
        for iova, _pa, pgsize, count in runs:
            lo = (iova - f.va_base) & ((1 << f.va_bits) - 1)
            hi = lo + pgsize * count - 1
            leaf_level = f.level_for_size(pgsize)
            for lv in range(f.top_level, leaf_level, -1):
                n = (hi >> f.shift(lv)) - (lo >> f.shift(lv)) + 1
                frames += n * self.memory.frames_for(f.table_bytes(lv - 1))
        return frames

    def _write_run(self, off: int, pa: int, pgsize: int, count: int, perm: Perm) -> None:
        """Write ``count`` leaves of ``pgsize`` from offset ``off`` (the ``install`` visitor)."""
        visitors.install(self.fmt, self.memory, self.root, off, pa, pgsize, count, perm)

    # ---------------------------------------------------------------- public operations
    def map(self, iova, pa, size, prot="rw") -> list[tuple[int, int, int, int]]:
        """Map ``[iova, iova + size)`` to ``pa`` as ``iommu_map`` would; return the runs.

        Raises ``IommuError``: EINVAL (unaligned to the smallest page, outside the input range,
        non-canonical, output beyond oas, no read/write), EOVERFLOW (wraps 2^64), EADDRINUSE or
        EEXIST (a leaf already maps part of the range: generic_pt's ``__map_range`` -- VT-d,
        AMD, x86-64, RISC-V -- returns -EADDRINUSE, io-pgtable-arm -EEXIST; the format's
        ``map_exists_errno``), ENOMEM (no room for tables). Nothing is written unless all
        checks pass.
        """
        iova, size = self._check_range("map", iova, size)
        pa = self._check_pa(pa, size, self.min_pgsize)
        perm = self._check_prot(prot)
        m = self.min_pgsize
        if (iova | pa | size) & (m - 1):
            raise IommuError(
                "EINVAL",
                f"map iova {fmt_addr(iova)}, pa {fmt_addr(pa)}, size {size:#x} is not aligned to the "
                f"smallest page size {fmt_size(m)} (iommu_map: unaligned)",
            )
        return self._map_checked(
            iova, pa, size, perm, pgsize_runs(self.pgsize_bitmap, iova, pa, size)
        )

    def populate(self, iova, pa, size, pgsize: int, prot="rw") -> list[tuple[int, int, int, int]]:
        """Map a contiguous range with one page size (the bulk path: one pass per level).

        ``pgsize`` must be a leaf size of the format; iova, pa and size aligned to it.
        """
        iova, size = self._check_range("populate", iova, size)
        pa = self._check_pa(pa, size, pgsize)
        perm = self._check_prot(prot)
        if pgsize not in self.fmt.leaf_sizes:
            raise IommuError("EINVAL", f"{fmt_size(pgsize)} is not a leaf size of {self.fmt.name}")
        if (iova | pa | size) & (pgsize - 1):
            raise IommuError(
                "EINVAL",
                f"populate iova {fmt_addr(iova)}, pa {fmt_addr(pa)}, size {size:#x} not aligned to {fmt_size(pgsize)}",
            )
        return self._map_checked(iova, pa, size, perm, [(iova, pa, pgsize, size // pgsize)])

    def _small_ok(self) -> bool:
        """Whether the scalar path may run: enabled, and the tables live in a plain
        ``PhysicalMemory`` (a guest's memory resolves every access through stage 2, and a
        counting memory counts the batch writes, so both keep the vectorised visitors)."""
        return bool(self.small_leaves) and type(self.memory) is PhysicalMemory

    def _map_small(self, iova, size, perm, runs) -> bool:
        """The scalar path of :meth:`_map_checked` for a few leaves (``visitors.map_small``);
        False, having changed nothing, when the general path must run (growth, a leaf in the
        way, a table to replace, tables that might not fit)."""
        f = self.fmt
        if f.grow_to and self._grown_for(iova + size - 1, max(r[2] for r in runs)) is not f:
            return False
        slots = 0
        for _v, _p, pgsize, count in runs:
            slots += count * f.replicas(pgsize)
        if slots > self.small_leaves:
            return False
        if self._tables_needed(runs, f) > self.memory.bytes_free // FRAME_SIZE:
            return False
        sruns = [(self._off(v), p, s, c) for v, p, s, c in runs]
        return visitors.map_small(f, self.memory, self.root, sruns, perm)

    def _map_checked(self, iova, pa, size, perm, runs):
        if self._small_ok() and self._map_small(iova, size, perm, runs):
            return runs
        cur_last = self.fmt.input_ranges[-1].last
        if iova <= cur_last:  # above the current top nothing can be mapped yet
            lo = self._off(iova)
            hit = visitors.first_leaf(self.fmt, self.memory, self.root, lo, min(lo + size - 1, self._off(cur_last)))
        else:
            hit = None
        if hit is not None:
            w = self.walk(self._iova(hit))
            what = (
                f"a {fmt_size(w.page_size)} leaf at {fmt_addr(self._iova(hit) & ~(w.page_size - 1))}"
                if w.ok
                else f"an entry at {fmt_addr(self._iova(hit))}"
            )
            errno = self.fmt.map_exists_errno
            source = ("io-pgtable-arm __arm_lpae_map" if errno == "EEXIST"
                      else "generic_pt __map_range" if errno == "EADDRINUSE" else "the TCE slot is in use")
            raise IommuError(
                errno,
                f"map [{fmt_addr(iova)}, {fmt_addr(iova + size - 1)}] overlaps {what} ({source}); unmap it first",
            )
        target = self._grown_for(iova + size - 1, max(r[2] for r in runs))
        need = self._tables_needed(runs, target) + (target.levels - self.fmt.levels)
        free = self.memory.bytes_free // FRAME_SIZE
        if need > free:
            raise IommuError(
                "ENOMEM", f"map may need {need} table frame(s); {self.memory!r} has {free} free"
            )
        while self.fmt.levels < target.levels:
            self._increase_top()
        for r_iova, r_pa, pgsize, count in runs:
            self._write_run(self._off(r_iova), r_pa, pgsize, count, perm)
        return runs

    def _grown_for(self, last: int, pgsize: int) -> Format:
        """The format after ``increase_address_space`` has added enough roots for a mapping
        ending at ``last`` with pages up to ``pgsize`` (itself for a fixed top)."""
        f = self.fmt
        while f.grow_to and f.levels < f.grow_to:
            fits = last <= f.input_ranges[-1].last
            level_ok = any(pgsize.bit_length() - 1 in f.leaf_lg2s(lv) for lv in range(f.levels))
            if fits and level_ok:
                break
            f = f.grown(f.levels + 1)
        return f

    def _increase_top(self) -> None:
        """Add a root above the current one: entry 0 points at the old root, as
        ``increase_address_space`` writes ``PM_LEVEL_PDE(old_mode, old_root)``."""
        new_fmt = self.fmt.grown(self.fmt.levels + 1)
        new_root = self.memory.alloc(new_fmt.table_bytes(new_fmt.top_level))
        self.memory.write_u64(new_root, new_fmt.encode_table(self.root, new_fmt.top_level))
        self.fmt, self.root = new_fmt, new_root
        for callback in self._top_watchers:
            callback(self)

    def map_user(
        self, iova, host: HostMemory, user_va: int, size: int, prot="rw"
    ) -> list[tuple[int, int, int, int]]:
        """Map a user buffer: resolve it in ``host`` and map each physically contiguous run
        (what iommufd does with pinned pages); page sizes follow the backing's contiguity."""
        iova, size = self._check_range("map", iova, size)
        perm = self._check_prot(prot)
        chunks = host.resolve(user_va, size)
        runs = []
        for va, pa, n in chunks:
            self._check_pa(pa, n, self.min_pgsize)
            if ((iova + va - user_va) | pa | n) & (self.min_pgsize - 1):
                raise IommuError(
                    "EINVAL",
                    f"user range chunk at {fmt_addr(va)} is not aligned to {fmt_size(self.min_pgsize)}",
                )
            runs += pgsize_runs(self.pgsize_bitmap, iova + va - user_va, pa, n)
        return self._map_checked(iova, chunks[0][1], size, perm, runs)

    def unmap(self, iova, size) -> int:
        """Unmap ``[iova, iova + size)``; return the bytes unmapped (``iommu_unmap``).

        Leaves fully inside the range are cleared; tables whose whole span the range covers
        and that end up empty are freed (generic_pt ``__unmap_range``). A hole stops the unmap
        (``__iommu_unmap`` stops when the driver returns 0). A range that *starts* inside a
        large leaf unmaps nothing of it. A range that *ends* inside a large leaf follows the
        format's ``unmap_policy``: WHOLE_LEAF (VT-d, AMD, x86, RISC-V, TCE) removes the whole
        leaf and returns more than asked; REFUSE (io-pgtable-arm since v6.13) leaves it and
        stops; SPLIT (io-pgtable-arm before v6.13) re-maps the rest of the leaf at smaller
        sizes and unmaps exactly the range, also when it starts inside the leaf. See
        ``formats.UnmapPolicy`` for the sources.
        """
        iova, size = self._check_range("unmap", iova, size)
        m = self.min_pgsize
        if (iova | size) & (m - 1):
            raise IommuError(
                "EINVAL",
                f"unmap iova {fmt_addr(iova)}, size {size:#x} is not aligned to the smallest page "
                f"size {fmt_size(m)} (iommu_unmap: unaligned)",
            )
        cur_last = self.fmt.input_ranges[-1].last
        if iova > cur_last:
            return 0  # above a growable table's current top: nothing is mapped there
        lo = self._off(iova)
        hi = self._off(min(iova + size - 1, cur_last))
        if self._small_ok() and size <= self.small_leaves * m:
            done = visitors.unmap_small(self.fmt, self.memory, self.root, lo, hi)
            if done is not None:
                return done
        done, pending = visitors.unmap(self.fmt, self.memory, self.root, lo, hi)
        for off, pa, length, perm in pending:  # SPLIT: map back what the cut left
            for r_iova, r_pa, pgsize, count in pgsize_runs(self.pgsize_bitmap, off, pa, length):
                self._write_run(r_iova, r_pa, pgsize, count, self.fmt.rules.normalise_perm(perm))
        return done

    def walk(self, iova, access=None, *, table_hook=None) -> Walk:
        """Walk one IOVA (see ``walk.walk``); ``access="r"|"w"|"x"`` checks permissions."""
        return _walk(self.fmt, self.memory, self.root, iova, access=access, table_hook=table_hook)

    def translate(self, iovas, access=None, *, details: bool = False, paths: bool = False):
        """Vectorised translation of a uint64 array: a ``TranslatedBatch`` that unpacks as
        ``pa, fault`` (see ``walk.translate``; ``paths=True`` adds each walk's leaf level and
        entries)."""
        return _translate(
            self.fmt, self.memory, self.root, iovas, access=access, details=details, paths=paths
        )

    def iova_to_phys(self, iova) -> int:
        """``iommu_iova_to_phys``: the physical address, or 0 when unmapped."""
        w = self.walk(iova)
        return w.pa if w.ok else 0

    # ---------------------------------------------------------------- inspection
    def census(self) -> TableTree:
        """Every table page and leaf run, read from the entries (see ``census.table_tree``)."""
        return table_tree(self)

    @property
    def tables(self) -> list[TablePage]:
        """Every table page reachable from the root (top level first, IOVA order within a
        level), found by walking the entries."""
        t = self.census()
        return [
            TablePage(lv, self.fmt.level_name(lv), a, nb, e, u, self._iova(o))
            for lv, a, nb, e, u, o in zip(t.level.tolist(), t.address.tolist(), t.nbytes.tolist(),
                                          t.entries.tolist(), t.used.tolist(), t.offset.tolist())
        ]

    @property
    def table_bytes(self) -> int:
        """Exact bytes of all reachable tables (``memory.bytes_used`` counts whole frames)."""
        return self.census().table_bytes

    def leaves(self) -> Leaves:
        """Every leaf as arrays, in IOVA order, decoded from the tables (vectorised per level).

        The array form of :meth:`mappings` for large tables: a renderer drawing a million 4 KiB
        leaves needs their addresses and sizes, not a million objects.
        """
        la = leaf_arrays(self.fmt, self.memory, self.root)
        iova = iova_of_array(self.fmt, la.offset)
        order = np.argsort(iova, kind="stable")
        size = _U64(1) << la.lg2.astype(_U64)
        return Leaves(iova[order], la.pa[order], size[order], la.perm[order], la.level[order])

    def mappings(self) -> list[Mapping]:
        """Every leaf, in IOVA order, decoded from the tables (not from a side record)."""
        lv = self.leaves()
        return [
            Mapping(i, p, sz, Perm(pm), lev)
            for i, p, sz, pm, lev in zip(
                lv.iova.tolist(), lv.pa.tolist(), lv.size.tolist(), lv.perm.tolist(), lv.level.tolist()
            )
        ]

    def to_dataframe(self, what: str = "tables"):
        """``what="tables"``: one row per table page; ``"mappings"``: one row per leaf."""
        from iommu_lab.core.frames import addr_frame

        if what == "tables":
            rows = self.tables
            return addr_frame(
                {
                    "level": [t.level for t in rows],
                    "name": [t.name for t in rows],
                    "address": [t.address for t in rows],
                    "iova": [t.iova for t in rows],
                    "bytes": [t.bytes for t in rows],
                    "entries": [t.entries for t in rows],
                    "used": [t.used for t in rows],
                },
                hex_columns=["address", "iova"],
            )
        if what == "mappings":
            rows = self.mappings()
            return addr_frame(
                {
                    "iova": [m.iova for m in rows],
                    "pa": [m.pa for m in rows],
                    "size": [m.size for m in rows],
                    "perm": [str(m.perm) for m in rows],
                    "level": [m.level for m in rows],
                },
                hex_columns=["iova", "pa", "size"],
            )
        raise ValueError(f"what must be 'tables' or 'mappings', not {what!r}")

    def __repr__(self) -> str:
        return (
            f"<PageTable {self.fmt.name}: root {fmt_addr(self.root)}, pgsizes {self.pgsize_bitmap:#x}, "
            f"{fmt_size(self.memory.bytes_used)} of table memory>"
        )

    plot = display.plot

    _repr_html_ = display.html
