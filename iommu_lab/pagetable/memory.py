"""Physical memory holding page-table pages at real addresses, and host memory behind user VAs.

``PhysicalMemory`` models the RAM the IOMMU walks: table pages are allocated at physical
addresses inside ``[base, base + size)``, and every table pointer in a PTE is such an address.
It is sparse and pooled: the contents of allocated 4 KiB frames live in one numpy array
``pool[slot, 512]`` of uint64, and ``frame → slot`` is a numpy index (slot 0 is a shared
all-zero page for frames never written), so ``gather(addresses)`` — what the vectorised
translator does at every level — is two numpy gathers with no Python loop.

Table pages are allocated like the kernel's ``iommu_alloc_pages_node`` / ``__get_free_pages``:
naturally aligned to their size (a 64 KiB-granule table is 64 KiB aligned; an ARM concatenated
stage-2 PGD of two 4 KiB tables is 8 KiB aligned), zeroed, and returned to a free list on free.

A guest's memory is just another instance whose addresses are guest-physical.

``HostMemory`` resolves a process's virtual addresses to physical runs with a contiguity policy
(4 KiB pages, 2 MiB transparent huge pages, 1 GiB hugetlbfs): what ``pin_user_pages`` hands
iommufd, and so what page sizes ``iommu_map`` can use for that buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import GiB, MiB, exact_int, fmt_addr, fmt_size
from iommu_lab.core.words import plural

__all__ = ["FRAME_SIZE", "HostMemory", "PhysicalMemory"]

FRAME_SIZE = 4096
_WORDS = FRAME_SIZE // 8
_U64 = np.uint64
#: Blocks up to this many frames (2 MiB: every table page, a TCE table) get pool slots when
#: allocated; larger blocks (guest RAM) are reserved and backed frame by frame on first write.
_BIND_FRAMES = 512
#: Natural alignment stops at 1 GiB, the largest block the kernel hands out aligned (a gigantic
#: hugetlb page); bigger blocks are 1 GiB aligned.
_MAX_ALIGN_FRAMES = GiB // FRAME_SIZE
_ZERO1 = np.zeros(1, dtype=np.int64)


class _FrameIndex:
    """Frame number → pool slot, sparse: one row of 512 slots per 2 MiB chunk of memory touched.

    While the touched chunks are mostly contiguous (table pages bump-allocated from one place)
    the rows are laid out densely from the lowest chunk, so a vectorised lookup is one gather at
    ``frame - first`` — as fast as a dense array over all frames but sized by what is touched.
    Once the chunks scatter (a write far from the others) the index switches to a sorted array
    of chunk ids searched with ``np.searchsorted``. Slot 0 means "never written".
    """

    SHIFT = 9
    CHUNK = 1 << SHIFT

    def __init__(self) -> None:
        self._rows = np.zeros((4, self.CHUNK), dtype=np.int64)
        self._nrows = 0
        self._dense = True
        self._c0 = 0  # dense: chunk id of row 0
        self._cid = np.zeros(0, dtype=np.int64)  # sparse: sorted chunk ids
        self._crow = np.zeros(0, dtype=np.int64)  # sparse: row of each chunk id
        self._live: set[int] = set()  # chunk ids that ever held a slot

    # -- layout ------------------------------------------------------------------------------
    def _grow_rows(self, need: int, front: int = 0) -> None:
        cap = self._rows.shape[0]
        if front == 0 and need <= cap:
            return
        rows = np.zeros((max(need, 2 * cap), self.CHUNK), dtype=np.int64)
        rows[front : front + self._nrows] = self._rows[: self._nrows]
        self._rows = rows

    def _row(self, c: int, create: bool) -> int:
        """Row of chunk ``c`` (-1 when absent and ``create`` is False)."""
        if self._dense:
            r = c - self._c0
            if 0 <= r < self._nrows:
                return r
            if not create:
                return -1
            if self._nrows == 0:
                self._c0, self._nrows = c, 1
                self._live.add(c)
                return 0
            lo, hi = min(self._c0, c), max(self._c0 + self._nrows, c + 1)
            if hi - lo <= 2 * len(self._live) + 64:
                front = self._c0 - lo
                self._grow_rows(hi - lo, front)
                self._c0, self._nrows = lo, hi - lo
                self._live.add(c)
                return c - lo
            self._to_sparse()
        i = int(np.searchsorted(self._cid, c))
        if i < self._cid.size and self._cid[i] == c:
            return int(self._crow[i])
        if not create:
            return -1
        self._grow_rows(self._nrows + 1)
        r = self._nrows
        self._nrows += 1
        self._cid = np.insert(self._cid, i, c)
        self._crow = np.insert(self._crow, i, r)
        self._live.add(c)
        return r

    def _to_sparse(self) -> None:
        live = np.array(sorted(self._live), dtype=np.int64)
        self._cid, self._crow = live, live - self._c0
        self._dense = False

    # -- scalar and run access ----------------------------------------------------------------
    def get(self, frame: int) -> int:
        r = self._row(frame >> self.SHIFT, False)
        return 0 if r < 0 else int(self._rows[r, frame & (self.CHUNK - 1)])

    def get_run(self, frame: int, n: int) -> np.ndarray:
        """Slots of ``n`` consecutive frames (0 where unbacked)."""
        out = np.zeros(n, dtype=np.int64)
        f, end = frame, frame + n
        while f < end:
            lo = f & (self.CHUNK - 1)
            m = min(self.CHUNK - lo, end - f)
            r = self._row(f >> self.SHIFT, False)
            if r >= 0:
                out[f - frame : f - frame + m] = self._rows[r, lo : lo + m]
            f += m
        return out

    def set_run(self, frame: int, slots: np.ndarray) -> None:
        """Set the slots of consecutive frames from ``frame``."""
        f, end = frame, frame + len(slots)
        while f < end:
            lo = f & (self.CHUNK - 1)
            m = min(self.CHUNK - lo, end - f)
            r = self._row(f >> self.SHIFT, True)
            self._rows[r, lo : lo + m] = slots[f - frame : f - frame + m]
            f += m

    def backed(self, frame: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """``(frames, slots)`` of backed frames in ``[frame, end)``, visiting only live chunks."""
        if end - frame <= 16:  # a table page or two: look each frame up
            pairs = [(f, s) for f in range(frame, end) if (s := self.get(f))]
            return (np.array([f for f, _ in pairs], dtype=np.int64),
                    np.array([s for _, s in pairs], dtype=np.int64))
        c_lo, c_hi = frame >> self.SHIFT, (end - 1) >> self.SHIFT
        if self._dense:
            cs = np.arange(max(c_lo, self._c0), min(c_hi, self._c0 + self._nrows - 1) + 1)
            rows = cs - self._c0
        else:
            i, j = np.searchsorted(self._cid, [c_lo, c_hi + 1])
            cs, rows = self._cid[i:j], self._crow[i:j]
        fr, sl = [], []
        for c, r in zip(cs.tolist(), rows.tolist()):
            s = self._rows[r]
            nz = np.flatnonzero(s)
            f = (c << self.SHIFT) + nz
            keep = (f >= frame) & (f < end)
            fr.append(f[keep])
            sl.append(s[nz[keep]])
        if not fr:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(fr), np.concatenate(sl)

    # -- vectorised lookup ---------------------------------------------------------------------
    def lookup(self, frame: np.ndarray) -> np.ndarray:
        """Slots of an int64 array of frames (0 for unbacked or out-of-range frames); the
        array is used as scratch."""
        if self._nrows == 0:
            return np.zeros(frame.shape, dtype=np.int64)
        flat = self._rows.reshape(-1)
        if self._dense:
            rel = frame
            rel -= self._c0 << self.SHIFT
            inr = rel.view(np.uint64) < np.uint64(self._nrows << self.SHIFT)
            if inr.all():
                return flat[rel]
            np.copyto(rel, 0, where=~inr)
            pos = flat[rel]
            pos[~inr] = 0
            return pos
        c = frame >> self.SHIFT
        i = np.searchsorted(self._cid, c)
        np.minimum(i, self._cid.size - 1, out=i)
        hit = self._cid[i] == c
        r = self._crow[i]
        r <<= self.SHIFT
        r |= frame & (self.CHUNK - 1)
        pos = flat[r]
        pos[~hit] = 0
        return pos

    @property
    def nbytes(self) -> int:
        return int(self._rows.nbytes + self._cid.nbytes + self._crow.nbytes)


class PhysicalMemory:
    """Sparse physical memory ``[base, base + size)`` with table-page allocation.

    Parameters
    ----------
    base : int
        Lowest physical address (default 0x1000_0000, as the reference's worked walks use).
    size : int
        Bytes of memory (default 64 GiB). Only frames that are allocated as table pages or
        written cost host RAM: a block larger than 2 MiB (guest RAM handed to a VM) is reserved
        and its frames are backed one by one on first write, like the kernel's demand paging.
    name : str
        Shown in reprs ("host", "guest", ...).

    Attributes
    ----------
    bytes_used : int
        Bytes of allocated frames (table pages), the figure a design review asks for.
    """

    def __init__(
        self, base: int = 0x1000_0000, size: int = 64 * GiB, *, name: str = "host"
    ) -> None:
        base = exact_int(base, "memory base")
        size = exact_int(size, "memory size")
        if not isinstance(name, str):
            raise TypeError(f"memory name must be a str, got {type(name).__name__}")
        if base < 0 or base % FRAME_SIZE or size % FRAME_SIZE or size <= 0:
            raise ValueError(
                f"memory base {_short(base)} and size {_short(size)} must be a non-negative base and "
                f"a positive size, both multiples of 4 KiB (the page frame the page allocator hands out)"
            )
        if base + size > 1 << 64:
            raise ValueError(
                f"memory [{_short(base)}, +{_short(size)}) must end at or below 2^64 (64-bit physical addresses)"
            )
        self.base = base
        self.size = size
        self.name = name
        self._nframes = size // FRAME_SIZE
        self._base_frame = base // FRAME_SIZE
        self._pool = np.zeros((64, _WORDS), dtype=_U64)
        self._pool_used = 1  # slot 0 is the shared zero page
        self._free_slots: list[int] = []
        self._index = _FrameIndex()  # frame index -> slot (0 = never written)
        self._next_frame = 0
        self._free_frames: dict[int, list[int]] = {}
        self._allocated: dict[int, int] = {}  # first frame -> frame count
        self._reserved: dict[int, int] = {}  # blocks above _BIND_FRAMES, backed on first write
        self._frames_in_use = 0

    # ------------------------------------------------------------------ bookkeeping
    @property
    def last(self) -> int:
        """Highest physical address (inclusive)."""
        return self.base + self.size - 1

    @property
    def bytes_used(self) -> int:
        return self._frames_in_use * FRAME_SIZE

    @property
    def bytes_free(self) -> int:
        return self.size - self.bytes_used

    @property
    def bytes_backed(self) -> int:
        """Host RAM this model holds for frame contents and their index (what it costs to run)."""
        return int(self._pool.nbytes + self._index.nbytes)

    def __repr__(self) -> str:
        return (
            f"PhysicalMemory({self.name}: [{fmt_addr(self.base)}, {fmt_addr(self.last)}], "
            f"{fmt_size(self.bytes_used)} of tables in {plural(len(self._allocated), 'allocation')})"
        )

    def _grow_pool(self, need: int) -> None:
        if need <= self._pool.shape[0]:
            return
        cap = max(need, 2 * self._pool.shape[0])
        pool = np.zeros((cap, _WORDS), dtype=_U64)
        pool[: self._pool_used] = self._pool[: self._pool_used]
        self._pool = pool

    def _new_slots(self, n: int) -> np.ndarray:
        """``n`` zeroed pool slots; consecutive when taken from the end of the pool."""
        if n == 1 and self._free_slots:
            s = self._free_slots.pop()
            self._pool[s] = 0
            return np.array([s], dtype=np.int64)
        self._grow_pool(self._pool_used + n)
        slots = np.arange(self._pool_used, self._pool_used + n, dtype=np.int64)
        self._pool_used += n
        return slots

    def _unbind(self, frame: int, end: int) -> None:
        """Drop the backing of every frame in ``[frame, end)`` (they read as zero again)."""
        frames, slots = self._index.backed(frame, end)
        for f in frames.tolist():
            self._index.set_run(f, _ZERO1)
        self._free_slots.extend(slots.tolist())

    def _bind(self, frame: int, nframes: int) -> None:
        """Make ``nframes`` frames from ``frame`` zero: table-sized blocks get consecutive pool
        slots now (the bulk writer's contiguous view), larger ones are backed on first write."""
        self._unbind(frame, frame + nframes)
        if nframes <= _BIND_FRAMES:
            self._index.set_run(frame, self._new_slots(nframes))

    # ------------------------------------------------------------------ allocation
    def alloc(self, nbytes: int) -> int:
        """Allocate a zeroed, naturally aligned block of at least ``nbytes``; return its address.

        Raises ``IommuError("ENOMEM")`` when the memory is exhausted, as ``iommu_alloc_pages``
        failing makes ``map`` return -ENOMEM.
        """
        return int(self.alloc_many(1, nbytes)[0])

    def frames_for(self, nbytes: int) -> int:
        """Frames an allocation of ``nbytes`` takes (power of two, at least one)."""
        nbytes = exact_int(nbytes, "allocation size")
        if not 0 < nbytes <= 1 << 64:
            raise ValueError(
                f"allocation of {_short(nbytes)} bytes: a block is 1 byte to 2^64 bytes "
                f"(larger than the memory fails with ENOMEM, as the page allocator does)"
            )
        n = max(1, -(-nbytes // FRAME_SIZE))
        return 1 << (n - 1).bit_length()

    def _align(self, k: int) -> int:
        """Frames a block of ``k`` frames is aligned to, in real physical addresses."""
        return min(k, _MAX_ALIGN_FRAMES)

    def _aligned_from(self, frame: int, k: int) -> int:
        a = self._align(k)
        return -(-(self._base_frame + frame) // a) * a - self._base_frame

    def _from_free(self, k: int) -> int | None:
        """A free block of ``k`` frames, splitting a larger free block buddy-style if need be."""
        free = self._free_frames.get(k)
        if free:
            return free.pop()
        bigger = sorted(s for s, lst in self._free_frames.items() if s > k and lst)
        if not bigger:
            return None
        s = bigger[0]
        f = self._free_frames[s].pop()
        while s > k:
            s //= 2
            self._free_frames.setdefault(s, []).append(f + s)
        return f

    def _free_capacity(self, k: int) -> int:
        return sum(len(lst) * (s // k) for s, lst in self._free_frames.items() if s >= k)

    def _release_gap(self, lo: int, hi: int) -> None:
        """The frames ``[lo, hi)`` skipped for alignment become free blocks, each naturally
        aligned in real addresses (so a later small table reuses them)."""
        f = lo
        while f < hi:
            real = self._base_frame + f
            s = (real & -real) if real else 1 << 62
            while f + s > hi:
                s //= 2
            self._free_frames.setdefault(s, []).append(f)
            f += s

    def alloc_many(self, count: int, nbytes: int) -> np.ndarray:
        """Allocate ``count`` blocks of ``nbytes`` each (vectorised); return their addresses.

        Blocks are naturally aligned in real physical addresses, up to 1 GiB (what the buddy
        allocator and gigantic hugetlb pages give), so a 1 GiB guest RAM block can be mapped
        with 1 GiB stage-2 pages. They come from the free list first, then from a bump
        pointer, so a bulk populate gets physically and pool-consecutive tables (which the fast
        write path exploits). All checks happen before anything changes.
        """
        count = exact_int(count, "allocation count")
        if count <= 0:
            if count < 0:
                raise ValueError(f"allocation count {count} must be >= 0")
            return np.zeros(0, dtype=_U64)
        k = self.frames_for(nbytes)
        recycled = min(count, self._free_capacity(k))
        rest = count - recycled
        start = self._aligned_from(self._next_frame, k) if rest else self._next_frame
        if count * k > self._nframes - self._frames_in_use or start + rest * k > self._nframes:
            raise IommuError(
                "ENOMEM",
                f"{self.name} memory [{fmt_addr(self.base)}, {fmt_addr(self.last)}] has "
                f"{fmt_size(self.bytes_free, approx=True)} free; {count} block(s) of {fmt_size(k * FRAME_SIZE)} do not fit",
            )
        out = np.empty(count, dtype=np.int64)
        for i in range(recycled):
            f = self._from_free(k)
            self._bind(f, k)
            self._allocated[f] = k
            if k > _BIND_FRAMES:
                self._reserved[f] = k
            out[i] = f
        if rest:
            self._release_gap(self._next_frame, start)
            end = start + rest * k
            self._next_frame = end
            fresh = np.arange(start, end, k, dtype=np.int64)
            self._unbind(start, end)
            if k <= _BIND_FRAMES:
                self._index.set_run(start, self._new_slots(rest * k))
            for f in fresh.tolist():
                self._allocated[f] = k
                if k > _BIND_FRAMES:
                    self._reserved[f] = k
            out[recycled:] = fresh
        self._frames_in_use += count * k
        return (out * FRAME_SIZE + self.base).astype(_U64)

    def free(self, addr: int) -> None:
        """Return a block from ``alloc`` to the free list (its contents become zero)."""
        if isinstance(addr, bool) or not isinstance(addr, (int, np.integer)):
            raise TypeError(f"block address must be an int, got {type(addr).__name__}")
        f = (int(addr) - self.base) // FRAME_SIZE
        k = self._allocated.get(f) if (int(addr) - self.base) % FRAME_SIZE == 0 else None
        if k is None:
            raise ValueError(
                f"{_short(int(addr))} is not the start of an allocated block in {self.name} memory"
            )
        del self._allocated[f]
        self._reserved.pop(f, None)
        self._unbind(f, f + k)
        self._free_frames.setdefault(k, []).append(f)
        self._frames_in_use -= k

    def allocations(self) -> list[tuple[int, int]]:
        """``(address, bytes)`` of every live block."""
        return sorted(
            (self.base + f * FRAME_SIZE, k * FRAME_SIZE) for f, k in self._allocated.items()
        )

    # ------------------------------------------------------------------ access
    def contains(self, addr: int, nbytes: int = 8) -> bool:
        return self.base <= addr and addr + nbytes - 1 <= self.last

    def _check(self, addr: int) -> int:
        if isinstance(addr, bool) or not isinstance(addr, (int, np.integer)):
            raise TypeError(f"physical address must be an int, got {type(addr).__name__}")
        addr = int(addr)
        if addr % 8:
            raise ValueError(
                f"physical address {_short(addr)} is not 8-byte aligned; PTEs are 64-bit words"
            )
        if not self.contains(addr):
            raise IommuError(
                "EFAULT",
                f"physical address {_short(addr)} is outside {self.name} memory [{fmt_addr(self.base)}, {fmt_addr(self.last)}]",
            )
        return addr

    def read_u64(self, addr: int) -> int:
        """The 64-bit word at physical address ``addr`` (0 where nothing was ever written)."""
        addr = self._check(addr)
        off = addr - self.base
        return int(self._pool[self._index.get(off >> 12), (off >> 3) & (_WORDS - 1)])

    def write_u64(self, addr: int, value: int) -> None:
        """Store a 64-bit word at ``addr`` (backing its frame on first write)."""
        addr = self._check(addr)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"a 64-bit word must be an int, got {type(value).__name__}")
        value = int(value)
        if not 0 <= value < 1 << 64:
            raise ValueError(f"value {_short(value)} is not a 64-bit word (0 to 2^64 - 1)")
        off = addr - self.base
        f = off >> 12
        slot = self._index.get(f)
        if slot == 0:
            slot = int(self._new_slots(1)[0])
            self._index.set_run(f, np.array([slot], dtype=np.int64))
        self._pool[slot, (off >> 3) & (_WORDS - 1)] = value

    def _flat_index(
        self, addrs: np.ndarray, consume: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat pool positions of ``addrs`` and a mask of addresses inside this memory.

        Addresses below ``base`` wrap to huge offsets; one unsigned compare catches them and
        those past the end, and unbacked frames read the zero page. With ``consume=True`` the
        uint64 ``addrs`` buffer is reused as scratch (every fresh temporary of a million words
        costs page faults).
        """
        a = np.asarray(addrs, dtype=_U64)
        if consume and a.flags.writeable and a.flags.c_contiguous:
            a -= _U64(self.base)
            off = a.view(np.int64)
        else:
            off = np.subtract(a, _U64(self.base)).view(np.int64)
        ok = off.view(_U64) <= _U64(self.size - 8)
        pos = self._index.lookup(off >> 12)
        pos <<= 9
        off >>= 3
        off &= _WORDS - 1
        pos |= off
        return pos, ok

    def gather(self, addrs: np.ndarray, *, consume: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised ``read_u64``: the words at ``addrs`` and a mask of addresses inside this
        memory (outside it, or never written, reads as 0). ``consume=True`` lets it
        overwrite ``addrs`` as scratch."""
        pos, ok = self._flat_index(addrs, consume)
        return self._pool.reshape(-1)[pos], ok

    def read_block(self, addr: int, nwords: int) -> np.ndarray:
        """``nwords`` consecutive words from ``addr`` (a copy)."""
        addrs = _U64(addr) + np.arange(nwords, dtype=_U64) * _U64(8)
        return self.gather(addrs)[0]

    # -- one word at a time: the small-operation path of map/unmap (no numpy temporaries) --
    def word(self, addr: int) -> int:
        """``gather`` of one address: the word there, 0 outside this memory or never written."""
        off = addr - self.base
        if not 0 <= off <= self.size - 8:
            return 0
        return int(self._pool[self._index.get(off >> 12), (off >> 3) & (_WORDS - 1)])

    def put_word(self, addr: int, value: int) -> None:
        """``scatter`` of one word (same backing on first write, same EFAULT outside)."""
        off = addr - self.base
        if 0 <= off <= self.size - 8:
            slot = self._index.get(off >> 12)
            if slot:
                self._pool[slot, (off >> 3) & (_WORDS - 1)] = value
                return
        self.scatter(np.array([addr], dtype=_U64), np.array([value], dtype=_U64))

    def writable(self, addr: int) -> bool:
        """Whether ``scatter`` to ``addr`` succeeds: inside, in a backed or reserved frame."""
        off = addr - self.base
        if not 0 <= off <= self.size - 8:
            return False
        return bool(self._index.get(off >> 12)) or self._in_reserved(off >> 12)

    def nonzero_words(self, addr: int, nwords: int) -> list[int]:
        """Addresses of the non-zero words among ``nwords`` from ``addr`` (a table's entries)."""
        off = addr - self.base
        w0 = (off >> 3) & (_WORDS - 1)
        if 0 <= off and off + nwords * 8 <= self.size and w0 + nwords <= _WORDS:
            nz = np.flatnonzero(self._pool[self._index.get(off >> 12), w0 : w0 + nwords])
        else:
            nz = np.flatnonzero(self.read_block(addr, nwords))
        return [addr + 8 * i for i in nz.tolist()]

    def _in_reserved(self, frame: int) -> bool:
        return any(f <= frame < f + k for f, k in self._reserved.items())

    def scatter(self, addrs: np.ndarray, values: np.ndarray) -> None:
        """Vectorised ``write_u64`` into frames that are allocated (or already written)."""
        addrs = np.asarray(addrs, dtype=_U64)
        pos, inside = self._flat_index(addrs)
        unbacked = ~inside | (pos < _WORDS)
        if unbacked.any():
            frames = np.unique((addrs[unbacked] - _U64(self.base)) >> _U64(12))
            bad = [int(f) for f in frames.tolist() if f >= self._nframes or not self._in_reserved(int(f))]
            if bad or not inside.all():
                first = int(addrs[unbacked][0])
                raise IommuError(
                    "EFAULT",
                    f"write to unallocated physical address {_short(first)} in {self.name} memory",
                )
            for f in frames.tolist():
                self._index.set_run(int(f), self._new_slots(1))
            pos, inside = self._flat_index(addrs)
        self._pool.reshape(-1)[pos] = values

    def contiguous_view(self, addr: int, nwords: int) -> np.ndarray | None:
        """A writable view of ``nwords`` words from ``addr`` when their frames sit in consecutive
        pool slots (true for tables a bulk allocation produced), else None."""
        off = addr - self.base
        f0 = off >> 12
        f1 = (off + nwords * 8 - 1) >> 12
        if f0 < 0 or f1 >= self._nframes:
            return None
        slots = self._index.get_run(f0, f1 - f0 + 1)
        if slots[0] == 0 or np.any(np.diff(slots) != 1):
            return None
        start = int(slots[0]) * _WORDS + ((off >> 3) & (_WORDS - 1))
        return self._pool.reshape(-1)[start : start + nwords]

    def snapshot(self) -> bytes:
        """Every allocated block and every written frame's contents, for before/after comparisons."""
        parts = [
            int(f).to_bytes(8, "little") + int(k).to_bytes(8, "little")
            for f, k in sorted(self._allocated.items())
        ]
        frames, slots = self._index.backed(0, self._nframes)
        order = np.argsort(frames)
        for f, s in zip(frames[order].tolist(), slots[order].tolist()):
            page = self._pool[s]
            if page.any():
                parts.append(int(f).to_bytes(8, "little") + page.tobytes())
        return b"".join(parts)


def _short(value: int) -> str:
    """A value for a message, cut to a readable length."""
    text = fmt_addr(value) if 0 <= value < 1 << 64 else f"{value:#x}"
    return text if len(text) <= 40 else text[:20] + "…" + text[-8:]


@dataclass(frozen=True)
class HostMemory:
    """A process's memory: user VAs resolve to physical runs with a contiguity policy.

    Models what ``pin_user_pages`` returns to iommufd (``iopt_pages``/``batch_from_pages``):
    within one backing page (``page_size``: 4 KiB base pages, 2 MiB with transparent huge
    pages, 1 GiB with hugetlbfs) the physical pages are contiguous and aligned like the VA;
    consecutive backing pages land on scattered frames. That decides which IOMMU page sizes a
    mapping of the buffer can use: 4 KiB pages only ever give 4 KiB IOPTEs.

    Parameters
    ----------
    page_size : int
        Contiguity of the backing: 4096, 2 MiB (THP) or 1 GiB (hugetlbfs).
    base : int
        Lowest physical address of the RAM the pages come from.
    span : int
        Bytes of that RAM; backing pages are spread over it by a fixed bijection.
    """

    page_size: int = 2 * MiB
    base: int = 0x1_0000_0000
    span: int = 256 * GiB

    def __post_init__(self) -> None:
        if self.page_size & (self.page_size - 1) or self.page_size < 4096:
            raise ValueError(f"backing page size {self.page_size} must be a power of two >= 4096")
        if self.span % self.page_size or self.base % self.page_size:
            raise ValueError("base and span must be multiples of the backing page size")

    @property
    def thp(self) -> bool:
        return self.page_size >= 2 * MiB

    def _frame(self, va_page: int) -> int:
        n = self.span // self.page_size
        bits = max(1, (n - 1).bit_length())
        # An odd multiplier is a bijection modulo 2**bits: distinct VA pages never share a frame.
        x = va_page % n
        p = (x * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & ((1 << bits) - 1)
        while p >= n:  # cycle-walk back into range, still a bijection
            p = (p * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & ((1 << bits) - 1)
        return p

    def resolve(self, user_va: int, length: int) -> list[tuple[int, int, int]]:
        """``(va, pa, length)`` runs of physically contiguous memory covering the buffer."""
        if length <= 0:
            raise ValueError("length must be positive")
        runs: list[tuple[int, int, int]] = []
        va, end = user_va, user_va + length
        while va < end:
            page = va // self.page_size
            off = va % self.page_size
            pa = self.base + self._frame(page) * self.page_size + off
            n = min(self.page_size - off, end - va)
            if runs and runs[-1][1] + runs[-1][2] == pa:
                v0, p0, l0 = runs[-1]
                runs[-1] = (v0, p0, l0 + n)
            else:
                runs.append((va, pa, n))
            va += n
        return runs
