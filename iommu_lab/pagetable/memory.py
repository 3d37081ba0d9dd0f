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
from iommu_lab.core.ranges import GiB, MiB, fmt_addr, fmt_size

__all__ = ["FRAME_SIZE", "HostMemory", "PhysicalMemory"]

FRAME_SIZE = 4096
_WORDS = FRAME_SIZE // 8
_U64 = np.uint64


class PhysicalMemory:
    """Sparse physical memory ``[base, base + size)`` with table-page allocation.

    Parameters
    ----------
    base : int
        Lowest physical address (default 0x1000_0000, as the reference's worked walks use).
    size : int
        Bytes of memory (default 64 GiB). Only frames that are allocated or written cost host RAM.
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
        if base % FRAME_SIZE or size % FRAME_SIZE or size <= 0:
            raise ValueError(
                f"memory base {fmt_addr(base)} and size {size:#x} must be positive multiples of 4 KiB"
            )
        if base + size > 1 << 64:
            raise ValueError("memory must end at or below 2^64")
        self.base = base
        self.size = size
        self.name = name
        self._nframes = size // FRAME_SIZE
        self._pool = np.zeros((64, _WORDS), dtype=_U64)
        self._pool_used = 1  # slot 0 is the shared zero page
        self._free_slots: list[int] = []
        self._slot_of = np.zeros(1024, dtype=np.int64)  # frame index -> slot (0 = never written)
        self._next_frame = 0
        self._free_frames: dict[int, list[int]] = {}
        self._allocated: dict[int, int] = {}  # first frame -> frame count
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

    def __repr__(self) -> str:
        return (
            f"PhysicalMemory({self.name}: [{fmt_addr(self.base)}, {fmt_addr(self.last)}], "
            f"{fmt_size(self.bytes_used)} of tables in {len(self._allocated)} allocation(s))"
        )

    def _grow_pool(self, need: int) -> None:
        if need <= self._pool.shape[0]:
            return
        cap = max(need, 2 * self._pool.shape[0])
        pool = np.zeros((cap, _WORDS), dtype=_U64)
        pool[: self._pool_used] = self._pool[: self._pool_used]
        self._pool = pool

    def _grow_index(self, frame_end: int) -> None:
        if frame_end <= self._slot_of.shape[0]:
            return
        cap = max(frame_end, 2 * self._slot_of.shape[0])
        idx = np.zeros(cap, dtype=np.int64)
        idx[: self._slot_of.shape[0]] = self._slot_of
        self._slot_of = idx

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

    def _bind(self, frame: int, nframes: int) -> None:
        """Back ``nframes`` frames from ``frame`` with zeroed pool slots (allocation is zeroed,
        including frames a stray ``write_u64`` backed before they were allocated)."""
        self._grow_index(frame + nframes)
        cur = self._slot_of[frame : frame + nframes]
        backed = cur != 0
        if backed.any():
            self._pool[cur[backed]] = 0
        missing = np.nonzero(~backed)[0]
        if missing.size:
            cur[missing] = self._new_slots(int(missing.size))

    # ------------------------------------------------------------------ allocation
    def alloc(self, nbytes: int) -> int:
        """Allocate a zeroed, naturally aligned block of at least ``nbytes``; return its address.

        Raises ``IommuError("ENOMEM")`` when the memory is exhausted, as ``iommu_alloc_pages``
        failing makes ``map`` return -ENOMEM.
        """
        return int(self.alloc_many(1, nbytes)[0])

    def frames_for(self, nbytes: int) -> int:
        """Frames an allocation of ``nbytes`` takes (power of two, at least one)."""
        n = max(1, -(-nbytes // FRAME_SIZE))
        return 1 << (n - 1).bit_length()

    def alloc_many(self, count: int, nbytes: int) -> np.ndarray:
        """Allocate ``count`` blocks of ``nbytes`` each (vectorised); return their addresses.

        Blocks come from the free list first, then from a bump pointer, so a bulk populate
        gets physically and pool-consecutive tables (which the fast write path exploits).
        """
        k = self.frames_for(nbytes)
        if count <= 0:
            return np.zeros(0, dtype=_U64)
        if count * k > self._nframes - self._frames_in_use:
            raise IommuError(
                "ENOMEM",
                f"{self.name} memory [{fmt_addr(self.base)}, {fmt_addr(self.last)}] has "
                f"{fmt_size(self.bytes_free)} free; {count} table(s) of {fmt_size(k * FRAME_SIZE)} do not fit",
            )
        free = self._free_frames.setdefault(k, [])
        firsts: list[int] = []
        while free and len(firsts) < count:
            firsts.append(free.pop())
        out = np.empty(count, dtype=np.int64)
        for i, f in enumerate(firsts):
            self._bind(f, k)
            self._allocated[f] = k
            out[i] = f
        rest = count - len(firsts)
        if rest:
            start = -(-self._next_frame // k) * k
            for g in range(self._next_frame, start):  # alignment gap becomes 1-frame free blocks
                self._free_frames.setdefault(1, []).append(g)
            end = start + rest * k
            if end > self._nframes:
                raise IommuError(
                    "ENOMEM",
                    f"{self.name} memory is exhausted at {fmt_addr(self.base + start * FRAME_SIZE)}",
                )
            self._next_frame = end
            self._grow_index(end)
            fresh = np.arange(start, end, k, dtype=np.int64)
            self._slot_of[start:end] = self._new_slots(rest * k)
            for f in fresh.tolist():
                self._allocated[f] = k
            out[len(firsts) :] = fresh
        self._frames_in_use += count * k
        return (out * FRAME_SIZE + self.base).astype(_U64)

    def free(self, addr: int) -> None:
        """Return a block from ``alloc`` to the free list (its contents become zero)."""
        f = (int(addr) - self.base) // FRAME_SIZE
        k = self._allocated.pop(f, None)
        if k is None:
            raise ValueError(
                f"{fmt_addr(addr)} is not the start of an allocated block in {self.name} memory"
            )
        slots = self._slot_of[f : f + k].copy()
        self._slot_of[f : f + k] = 0
        self._free_slots.extend(int(s) for s in slots if s)
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
                f"physical address {fmt_addr(addr)} is not 8-byte aligned; PTEs are 64-bit words"
            )
        if not self.contains(addr):
            raise IommuError(
                "EFAULT",
                f"physical address {fmt_addr(addr)} is outside {self.name} memory [{fmt_addr(self.base)}, {fmt_addr(self.last)}]",
            )
        return addr

    def read_u64(self, addr: int) -> int:
        """The 64-bit word at physical address ``addr`` (0 where nothing was ever written)."""
        addr = self._check(addr)
        off = addr - self.base
        f = off >> 12
        if f >= self._slot_of.shape[0]:
            return 0
        return int(self._pool[self._slot_of[f], (off >> 3) & (_WORDS - 1)])

    def write_u64(self, addr: int, value: int) -> None:
        """Store a 64-bit word at ``addr`` (backing its frame on first write)."""
        addr = self._check(addr)
        value = int(value)
        if not 0 <= value < 1 << 64:
            raise ValueError(f"value {value:#x} is not a 64-bit word")
        off = addr - self.base
        f = off >> 12
        self._grow_index(f + 1)
        if self._slot_of[f] == 0:
            self._slot_of[f] = self._new_slots(1)[0]
        self._pool[self._slot_of[f], (off >> 3) & (_WORDS - 1)] = value

    def _flat_index(
        self, addrs: np.ndarray, consume: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat pool positions of ``addrs`` and a mask of addresses in backed-or-indexable frames.

        Addresses below ``base`` wrap to negative frame numbers and those past the frame index
        are beyond it; one unsigned compare catches both, and they read the zero page. With
        ``consume=True`` the uint64 ``addrs`` buffer is reused as scratch (every fresh
        temporary of a million words costs page faults).
        """
        a = np.asarray(addrs, dtype=_U64)
        if consume and a.flags.writeable and a.flags.c_contiguous:
            a -= _U64(self.base)
            off = a.view(np.int64)
        else:
            off = np.subtract(a, _U64(self.base)).view(np.int64)
        frame = off >> 12
        ok = frame.view(_U64) < _U64(self._slot_of.shape[0])
        if ok.all():
            pos = self._slot_of[frame]
        else:
            np.copyto(frame, 0, where=~ok)
            pos = self._slot_of[frame]
            pos[~ok] = 0
        pos <<= 9
        off >>= 3
        off &= _WORDS - 1
        pos |= off
        return pos, ok

    def gather(self, addrs: np.ndarray, *, consume: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised ``read_u64``: the words at ``addrs`` and a mask of addresses that can hold
        data (outside memory, or never written, reads as 0). ``consume=True`` lets it
        overwrite ``addrs`` as scratch."""
        pos, ok = self._flat_index(addrs, consume)
        return self._pool.reshape(-1)[pos], ok

    def read_block(self, addr: int, nwords: int) -> np.ndarray:
        """``nwords`` consecutive words from ``addr`` (a copy)."""
        addrs = _U64(addr) + np.arange(nwords, dtype=_U64) * _U64(8)
        return self.gather(addrs)[0]

    def scatter(self, addrs: np.ndarray, values: np.ndarray) -> None:
        """Vectorised ``write_u64`` into frames that are already allocated."""
        addrs = np.asarray(addrs, dtype=_U64)
        pos, inside = self._flat_index(addrs)
        if not inside.all() or np.any(pos < _WORDS):
            bad = addrs[~inside | (pos < _WORDS)][0]
            raise IommuError(
                "EFAULT",
                f"write to unallocated physical address {fmt_addr(int(bad))} in {self.name} memory",
            )
        self._pool.reshape(-1)[pos] = values

    def contiguous_view(self, addr: int, nwords: int) -> np.ndarray | None:
        """A writable view of ``nwords`` words from ``addr`` when their frames sit in consecutive
        pool slots (true for tables a bulk allocation produced), else None."""
        off = addr - self.base
        f0 = off >> 12
        f1 = (off + nwords * 8 - 1) >> 12
        if f1 >= self._slot_of.shape[0]:
            return None
        slots = self._slot_of[f0 : f1 + 1]
        if slots[0] == 0 or np.any(np.diff(slots) != 1):
            return None
        start = int(slots[0]) * _WORDS + ((off >> 3) & (_WORDS - 1))
        return self._pool.reshape(-1)[start : start + nwords]

    def snapshot(self) -> bytes:
        """Every allocated frame's contents with its address, for before/after comparisons."""
        parts = []
        for f, k in sorted(self._allocated.items()):
            parts.append(int(f).to_bytes(8, "little"))
            parts.append(self._pool[self._slot_of[f : f + k]].tobytes())
        return b"".join(parts)


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
