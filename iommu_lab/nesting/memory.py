"""Guest-physical memory seen from the host, and the seam onto the page-table layer.

:class:`GuestMemory` gives a guest's page table the page-table layer's memory interface at
guest-physical addresses and resolves every access through the host's stage-2 table, as the
guest's CPU does through EPT/NPT/stage 2 and a VMM does with ``address_space_rw``. The small
adapters below (``_fmt``, ``_root``, ``_memory``, ``_walk``) are the only place the nesting
layer names a page table's attributes or calls the single walker.
"""

from __future__ import annotations

from typing import Any

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import exact_int, fmt_addr, fmt_size, parse_size
from iommu_lab.pagetable.memory import PhysicalMemory
from iommu_lab.pagetable.walk import translate, walk

__all__ = ["GuestMemory", "host_memory_for"]


class GuestMemory:
    """Guest-physical memory as the host sees it: every GPA is backed, through stage 2, by host RAM.

    A guest's page tables live at GPAs; the bytes are in host memory at whatever HPA the host's
    stage-2 table maps that GPA to. This class gives a guest page table (``PageTable(fmt,
    memory=guest_mem)``) the page-table layer's memory interface at guest-physical addresses,
    and resolves every read and write through the stage-2 table — what the guest's own CPU
    accesses do through EPT/NPT/stage-2, and what a VMM does with ``address_space_rw`` on guest
    RAM. Changing stage 2 therefore changes what the guest sees, as on real hardware.

    Parameters
    ----------
    stage2 : PageTable
        The host's stage-2 table (GPA -> HPA).
    host : PhysicalMemory, optional
        Host RAM (default: the memory ``stage2`` keeps its own tables in).
    base, size : int or str
        The guest RAM range ``[base, base + size)`` in guest-physical space; sizes as
        ``parse_size`` reads them (``16 << 20``, ``"4G"``).
    backing : {"eager", "lazy", "external"}
        ``"eager"`` (what QEMU does when it maps all guest RAM into the IOAS at start-up):
        reserve ``size`` bytes of host RAM now, 1 GiB aligned in host-physical addresses, and
        map the whole range in stage 2 with the largest pages the format's ``iommu_pgsize``
        split allows. The host RAM is reserved, not touched: like a VM's RAM it costs nothing
        until written, so a 4 TiB guest costs its few stage-2 table pages. ``"lazy"``: back each guest
        frame with a 4 KiB stage-2 mapping when the guest first allocates it (small pages
        everywhere, the case the (n+1)(m+1)-1 formula assumes). ``"external"``: stage 2
        already maps guest RAM (a nest parent filled from an IOAS, see :class:`NestParent`).
    """

    def __init__(
        self,
        stage2: Any,
        host: Any = None,
        *,
        base: int = 0,
        size: int = 16 << 20,
        name: str = "guest",
        backing: str = "eager",
    ) -> None:

        if not isinstance(backing, str) or backing not in ("eager", "lazy", "external"):
            raise ValueError(
                f"backing must be 'eager', 'lazy' or 'external', got {_cut(repr(backing))}"
            )
        base = _size_arg(base, "guest RAM base")
        size = _size_arg(size, "guest RAM size")
        host = host if host is not None else stage2.memory
        # Frames of guest RAM are handed out by a PhysicalMemory used purely as the allocator of
        # guest-physical addresses; its own storage is never read for guest data. Built first:
        # it checks base and size (4 KiB multiples, below 2^64) before anything is allocated.
        frames = PhysicalMemory(base, size, name=name)
        ram_hpa: int | None = None
        if backing == "eager":
            try:
                ram_hpa = int(host.alloc(size))
            except IommuError as e:
                raise IommuError(
                    "ENOMEM",
                    f"{e.message}; eager backing reserves all "
                    f"{fmt_size(size)} of guest RAM in host RAM: give a larger host "
                    f"(host=host_memory_for(fmt, at_least=size)) or use backing='lazy'",
                ) from None
            try:
                stage2.map(base, ram_hpa, size, prot="rw")
            except BaseException:
                host.free(ram_hpa)  # a refused map leaves host memory as it was
                raise
        self.stage2 = stage2
        self.host = host
        self.name = name
        self.backing = backing
        self._frames = frames
        self.base = base
        self.size = size
        self.ram_hpa = ram_hpa
        self.writes = 0
        self.reads = 0

    # -- bookkeeping delegated to the guest-physical allocator --------------------------------
    @property
    def last(self) -> int:
        return self.base + self.size - 1

    @property
    def bytes_used(self) -> int:
        return self._frames.bytes_used

    @property
    def bytes_free(self) -> int:
        return self._frames.bytes_free

    def contains(self, addr: int, nbytes: int = 8) -> bool:
        return self._frames.contains(addr, nbytes)

    def frames_for(self, nbytes: int) -> int:
        return self._frames.frames_for(nbytes)

    def allocations(self) -> list[tuple[int, int]]:
        return self._frames.allocations()

    def alloc(self, nbytes: int) -> int:
        return int(self.alloc_many(1, nbytes)[0])

    def alloc_many(self, count: int, nbytes: int):
        addrs = self._frames.alloc_many(count, nbytes)
        if self.backing == "lazy":
            k = self._frames.frames_for(nbytes) * 4096
            for gpa in addrs.tolist():
                self.back(int(gpa), k)
        return addrs

    def back(self, gpa: int, size: int) -> None:
        """Give ``[gpa, gpa + size)`` host RAM with stage-2 mappings of the smallest page size
        (the stage-2 granule), skipping granules already mapped."""
        g = int(getattr(self.stage2, "min_pgsize", 4096))
        lo = gpa - gpa % g
        for region in range(lo, gpa + size, g):
            if _translate_one(self.stage2, region) is None:
                hpa = int(self.host.alloc(g))
                self.stage2.map(region, hpa, g, prot="rw")

    def free(self, addr: int) -> None:
        self._frames.free(addr)

    # -- access through stage 2 ----------------------------------------------------------------
    def gpa_to_hpa(self, gpa: int) -> int:
        """Translate a GPA through stage 2 (the guest CPU's own access; not an IOMMU reference)."""
        if not self.contains(gpa):
            raise IommuError(
                "EFAULT",
                f"guest-physical address {fmt_addr(gpa)} is outside guest RAM "
                f"[{fmt_addr(self.base)}, {fmt_addr(self.last)}]",
            )
        hpa = _translate_one(self.stage2, gpa)
        if hpa is None:
            raise IommuError(
                "EFAULT",
                f"guest-physical address {fmt_addr(gpa)} is not mapped by the stage-2 table",
            )
        return hpa

    def read_u64(self, addr: int) -> int:
        self.reads += 1
        return self.host.read_u64(self.gpa_to_hpa(int(addr)))

    def write_u64(self, addr: int, value: int) -> None:
        self.writes += 1
        self.host.write_u64(self.gpa_to_hpa(int(addr)), value)

    def gather(self, addrs):
        """Vectorised ``read_u64``: each guest frame translated once through stage 2 (with the
        vectorised walker), then one gather from host memory. ``inside`` is False where the GPA
        is outside guest RAM, not mapped by stage 2, or outside host memory."""
        import numpy as np

        flat = np.asarray(addrs, dtype=np.uint64).reshape(-1)
        out = np.zeros(flat.shape, dtype=np.uint64)
        inside = np.zeros(flat.shape, dtype=bool)
        idx = np.nonzero((flat >= np.uint64(self.base)) & (flat <= np.uint64(self.last - 7)))[0]
        if idx.size:
            a = flat[idx]
            frames, which = np.unique(a >> np.uint64(12), return_inverse=True)
            s2 = self.stage2
            base, fault = translate(_fmt(s2), _memory(s2), _root(s2), frames << np.uint64(12))
            hpa = base[which] + (a & np.uint64(0xFFF))
            good = ~fault[which]
            words, _ = self.host.gather(hpa)
            good &= (hpa >= np.uint64(self.host.base)) & (hpa <= np.uint64(self.host.last - 7))
            out[idx[good]] = words[good]
            inside[idx[good]] = True
        self.reads += int(flat.size)
        shape = np.shape(addrs)
        return out.reshape(shape), inside.reshape(shape)

    def read_block(self, addr: int, nwords: int):
        """``nwords`` consecutive words: one stage-2 translation per 4 KiB guest frame."""
        import numpy as np

        parts = []
        a, left = int(addr), int(nwords)
        while left:
            n = min(left, (0x1000 - (a & 0xFFF)) // 8)
            parts.append(self.host.read_block(self.gpa_to_hpa(a), n))
            a += 8 * n
            left -= n
        self.reads += int(nwords)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)

    def scatter(self, addrs, values) -> None:
        for a, v in zip(list(addrs), list(values)):
            self.write_u64(int(a), int(v))

    def contiguous_view(self, addr: int, nwords: int):
        return None  # guest frames are not contiguous host storage; callers fall back to scatter

    def __repr__(self) -> str:
        how = (
            f"eager at HPA {fmt_addr(self.ram_hpa)}"
            if self.ram_hpa is not None
            else "lazy 4 KiB backing"
        )
        return (
            f"GuestMemory({self.name}: GPA [{fmt_addr(self.base)}, {fmt_addr(self.last)}], {how})"
        )


# ----------------------------------------------------------------------------------------------
# Adapters onto the page-table layer (attribute names in one place)
# ----------------------------------------------------------------------------------------------


def _fmt(pt: Any):
    return pt.fmt


def _root(pt: Any) -> int:
    return int(pt.root)


def _memory(pt: Any):
    return pt.memory


def _walk(
    pt: Any, addr: int, *, access=None, table_hook=None, root: int | None = None, memory: Any = None
):
    """The page-table layer's single walker (``iommu_lab.pagetable.walk.walk``) on ``pt``."""

    return walk(
        _fmt(pt),
        _memory(pt) if memory is None else memory,
        _root(pt) if root is None else root,
        addr,
        access=access,
        table_hook=table_hook,
    )


def host_memory_for(stage2_fmt: Any, at_least: Any = 0):
    """Host RAM at 0x1000_0000 (the reference's worked walks): 64 GiB, or more when a guest of
    ``at_least`` bytes must fit beside the host's tables, up to what the stage-2 format's
    output width can point at.

    Physical memory is sparse, so the size costs nothing: only table pages and written guest
    frames are held. A guest RAM block is 1 GiB aligned, hence the spare GiB.
    """

    base = 0x1000_0000
    guest = _size_arg(at_least, "guest RAM size")
    block = 1 << max(0, guest - 1).bit_length() if guest else 0  # allocations are powers of two
    want = max(64 << 30, block + (2 << 30))
    want = -(-want // (1 << 30)) << 30
    size = min(want, (1 << stage2_fmt.oas) - base)
    return PhysicalMemory(base, size, name="host")


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 10] + "…" + text[-8:]


def _size_arg(value: Any, what: str) -> int:
    """A guest RAM base or size: an exact int or a size string as ``parse_size`` reads it."""
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
    return exact_int(value, what)


def _translate_one(stage2: Any, gpa: int) -> int | None:
    w = _walk(stage2, gpa)
    return w.pa if w.ok else None


#: The old private name, used by review/workload.py.
_host_memory_for = host_memory_for
