"""Software nesting: a VMM composes the guest's stage 1 with stage 2 into one shadow table.

When the IOMMU cannot walk the guest's table (no hardware nesting, or an emulated vIOMMU), the
host keeps a single-stage table in its own format mapping **gIOVA -> HPA** directly:

* **VT-d caching mode** (QEMU ``intel-iommu,caching-mode=on``; ``vtd_panic_require_caching_mode``):
  the guest must invalidate even after a not-present -> present change; QEMU traps that
  invalidation (a VM exit), walks the guest's table over the invalidated range
  (``vtd_page_walk``) and raises MAP/UNMAP notifications, one per guest leaf.
* **virtio-iommu** (drivers/iommu/virtio-iommu.c ``viommu_map_pages`` -> ``VIRTIO_IOMMU_T_MAP``):
  the guest never writes a table; every map and unmap is a request (a VM exit) naming
  gIOVA, GPA and length.

Either way ``vfio_iommu_map_notify`` (hw/vfio/common.c) turns the gIOVA -> GPA entry into an HVA
and calls ``vfio_container_dma_map(iova=gIOVA, vaddr=HVA)``: the host kernel pins the pages and
writes the shadow PTEs, then flushes the host IOTLB. The DMA walk afterwards is native (m
references for an m-level host table) — the cost moved from walk time to map/unmap time
(QEMU ``vtd_iotlb_page_invalidate_notify``). :class:`ShadowCosts` counts that map-time work; :func:`compare_costs` runs one
workload on hardware nesting and on shadowing and puts the two side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import fmt_addr, fmt_size
from iommu_lab.hardware import formats as _formats
from iommu_lab.hardware.platform import NestingSupport, platforms
from iommu_lab.nesting.exits import CACHING_MODE, HARDWARE_NESTING, VIRTIO_IOMMU, ExitModel
from iommu_lab.nesting.memory import GuestMemory, _fmt, _memory, _walk, host_memory_for
from iommu_lab.nesting.pair import NestedPair
from iommu_lab.pagetable.memory import PhysicalMemory
from iommu_lab.pagetable.table import PageTable

__all__ = [
    "CountingMemory",
    "ShadowCosts",
    "ShadowNesting",
    "DmaPattern",
    "compare_costs",
    "run_workload",
]


class CountingMemory(PhysicalMemory):
    """Host memory that counts the 64-bit words written into it (shadow PTE writes).

    Writes through ``contiguous_view`` would bypass the count, so it is withheld and the table
    writer falls back to ``scatter``, which is counted word by word.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.words_written = 0

    def write_u64(self, addr: int, value: int) -> None:
        self.words_written += 1
        super().write_u64(addr, value)

    def scatter(self, addrs, values) -> None:
        import numpy as np

        self.words_written += int(np.asarray(addrs).size)
        super().scatter(addrs, values)

    def contiguous_view(self, addr: int, nwords: int):
        return None


@dataclass
class ShadowCosts:
    """What one side of the comparison spent, in events a design review can weigh.

    Attributes
    ----------
    guest_ops : int
        Map/unmap operations the guest performed.
    vm_exits : int
        Exits counted by the configuration's :class:`~iommu_lab.nesting.exits.ExitModel`:
        hardware nesting exits only for the invalidation an unmap sends (forwarded to the
        host); VT-d caching mode for the invalidation after every map and unmap; virtio-iommu
        for every MAP/UNMAP request.
    guest_pte_writes : int
        64-bit words the guest wrote into its own table (no exit by themselves).
    vmm_guest_table_reads : int
        Guest-table entries the VMM read to find what changed (QEMU ``vtd_page_walk``: each
        entry of the invalidated range once). Zero for virtio-iommu and for hardware nesting.
    stage2_lookups : int
        GPA -> HPA resolutions the VMM made (``vfio_get_xlat_addr``), one per composed run.
    host_map_calls : int
        ``VFIO_IOMMU_MAP_DMA``/``IOMMU_IOAS_MAP`` (or unmap) calls into the host kernel.
    shadow_pte_writes : int
        64-bit words written into the shadow table (leaves, table pointers, clears).
    host_iotlb_flushes : int
        Host IOTLB invalidations (``iotlb_sync``/``iotlb_sync_map`` under caching mode, or the
        nested invalidation forwarded with ``IOMMU_HWPT_INVALIDATE``).
    unbacked_bytes : int
        Guest mappings whose GPA stage 2 does not back: the VMM cannot shadow them (QEMU logs
        and skips), so DMA there faults.
    iotlb_misses : int
        DMA translations that missed the IOTLB and walked.
    walk_refs : int
        Page-table references those walks made (native m each for the shadow; the 2-D count
        for hardware nesting).
    """

    guest_ops: int = 0
    vm_exits: int = 0
    guest_pte_writes: int = 0
    vmm_guest_table_reads: int = 0
    stage2_lookups: int = 0
    host_map_calls: int = 0
    shadow_pte_writes: int = 0
    host_iotlb_flushes: int = 0
    unbacked_bytes: int = 0
    iotlb_misses: int = 0
    walk_refs: int = 0

    @property
    def refs_per_miss(self) -> float:
        return self.walk_refs / self.iotlb_misses if self.iotlb_misses else 0.0

    @property
    def map_time_memory_ops(self) -> int:
        """Memory words touched at map/unmap time (guest writes, VMM reads, shadow writes)."""
        return self.guest_pte_writes + self.vmm_guest_table_reads + self.shadow_pte_writes

    def as_dict(self) -> dict[str, float]:
        d: dict[str, float] = asdict(self)
        d["refs_per_miss"] = self.refs_per_miss
        d["map_time_memory_ops"] = self.map_time_memory_ops
        return d


def _overlaps(table: PageTable, iova: int, size: int) -> bool:
    last = iova + size - 1
    return any(m.iova <= last and iova <= m.last for m in table.mappings())


def _prot(perm: Perm) -> str:
    return ("r" if perm & Perm.READ else "") + ("w" if perm & Perm.WRITE else "")


class ShadowNesting:
    """The shadow table a VMM maintains for one guest address space, and what it cost.

    Parameters
    ----------
    stage1 : PageTable or None
        The guest's table in :class:`GuestMemory` (VT-d caching mode, an emulated SMMU...). None
        for virtio-iommu, whose guests send MAP/UNMAP requests instead of writing a table.
    stage2 : PageTable
        The host's GPA -> HPA mapping of guest RAM (the IOAS QEMU mapped guest RAM into).
    fmt : format name or Format, optional
        The shadow table's format (default: the stage-2 table's, i.e. the host's own format).
    """

    def __init__(self, stage1: Any, stage2: Any, *, fmt: Any = None) -> None:

        if stage1 is not None and not isinstance(_memory(stage1), GuestMemory):
            raise IommuError(
                "EINVAL",
                "the guest table must live in GuestMemory backed by the stage-2 table, so the VMM can read it",
            )
        self.stage1 = stage1
        self.stage2 = stage2
        shadow_fmt = fmt if fmt is not None else _fmt(stage2)
        self.memory = CountingMemory(name="shadow")
        self.table = PageTable(shadow_fmt, memory=self.memory)
        self.memory.words_written = 0
        self.costs = ShadowCosts()
        self._synced = False

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_nested(cls, nested: NestedPair, *, fmt: Any = None) -> ShadowNesting:
        """Shadow a hardware-nested pair's current contents (``nested.shadow()``)."""
        s = cls(nested.stage1, nested.stage2, fmt=fmt)
        s.sync()
        return s

    @classmethod
    def build(
        cls,
        stage1_format: Any,
        stage2_format: Any,
        *,
        guest_ram: int = 16 << 20,
        backing: str = "eager",
        fmt: Any = None,
    ) -> ShadowNesting:
        """Fresh host memory, a stage 2 mapping guest RAM and an empty guest table
        (``stage1_format=None`` for a virtio-iommu guest that keeps no table)."""

        host = host_memory_for(_formats.get(stage2_format))
        s2 = PageTable(_formats.get(stage2_format), memory=host)
        gm = GuestMemory(s2, host, size=guest_ram, backing=backing)
        s1 = (
            PageTable(_formats.get(stage1_format), memory=gm) if stage1_format is not None else None
        )
        return cls(s1, s2, fmt=fmt)

    @classmethod
    def for_platform(
        cls, platform: Any, *, stage1_format: Any = None, host_format: Any = None, **kwargs: Any
    ) -> ShadowNesting:
        """Software nesting on a catalogue platform.

        virtio-iommu guests keep no table (``stage1_format`` stays None) and the host format must
        be given (the host IOMMU's paging format, e.g. ``"vtd-ss-4level"``); VT-d/SMMUv3/AMD
        platforms default to their own stage-1 and stage-2 formats. Platforms with
        ``nesting = "none"`` (POWER, RISC-V) raise ``EOPNOTSUPP`` with their ``nesting_hint``.
        """

        p = platforms.get(platform) if isinstance(platform, str) else platform
        if p.nesting is NestingSupport.NONE:
            raise UnsupportedError(
                f"platform {p.name!r} has no nesting to shadow: "
                + (p.nesting_hint or "its catalogue entry has no stage-1/stage-2 formats")
            )
        if p.nesting is NestingSupport.SOFTWARE:
            if host_format is None:
                raise IommuError(
                    "EINVAL",
                    f"platform {p.name!r} is a paravirtual IOMMU with no page-table format of its own; name the "
                    f"host IOMMU's format the VMM shadows into, e.g. host_format='vtd-ss-4level'",
                )
            return cls.build(stage1_format, host_format, **kwargs)
        f1 = stage1_format if stage1_format is not None else p.format_name("stage1")
        f2 = host_format if host_format is not None else p.format_name("stage2")
        return cls.build(f1, f2, **kwargs)

    @property
    def exits(self) -> ExitModel:
        """The exit rule of this shadow: virtio-iommu requests, or VT-d caching-mode invalidations."""
        return VIRTIO_IOMMU if self.stage1 is None else CACHING_MODE

    @property
    def mode(self) -> str:
        return (
            "virtio-iommu requests"
            if self.stage1 is None
            else "trapped invalidations (caching mode)"
        )

    def _snapshot(self) -> tuple:
        return replace(self.costs), self.memory.words_written

    def _restore(self, snap: tuple) -> None:
        self.costs, self.memory.words_written = snap[0], snap[1]

    # -- composition ----------------------------------------------------------------------------
    def _compose(self, iova: int, gpa: int, size: int, perm: Perm) -> None:
        """Map one guest leaf: split by stage-2 leaves into HPA-contiguous runs, as
        ``vfio_iommu_map_notify`` maps each notified IOTLB entry after ``vfio_get_xlat_addr``."""
        end = iova + size
        run: list[int] | None = None  # [iova, hpa, length, perm]
        while iova < end:
            w2 = _walk(self.stage2, gpa, access=None)
            self.costs.stage2_lookups += 1
            if not w2.ok:
                # QEMU's vfio_iommu_map_notify reports "iommu map to non memory area" and skips
                # the entry: the shadow stays empty there and a DMA to it faults on the host.
                if run:
                    self._host_map(*run)
                    run = None
                g = self.stage2.min_pgsize
                step = min(end - iova, g - (gpa & (g - 1)))
                self.costs.unbacked_bytes += step
                iova += step
                gpa += step
                continue
            step = min(end - iova, w2.page_size - (gpa & (w2.page_size - 1)))
            p = perm & w2.perm & (Perm.READ | Perm.WRITE)
            if run and run[1] + run[2] == w2.pa and run[3] == p:
                run[2] += step
            else:
                if run:
                    self._host_map(*run)
                run = [iova, w2.pa, step, p]
            iova += step
            gpa += step
        if run:
            self._host_map(*run)

    def _host_map(self, iova: int, hpa: int, size: int, perm: Perm) -> None:
        before = self.memory.words_written
        self.table.map(iova, hpa, size, prot=_prot(perm))
        self.costs.shadow_pte_writes += self.memory.words_written - before
        self.costs.host_map_calls += 1

    def _guest_leaves(self, lo: int, hi: int) -> list[tuple[int, int, int, Perm]]:
        """(iova, gpa, size, perm) of the guest's leaves in ``[lo, hi)``, found the way QEMU's
        ``vtd_page_walk`` finds them: by reading the guest table (each entry counted once)."""
        out = []
        seen: set[int] = set()
        iova = lo
        while iova < hi:
            w = _walk(self.stage1, iova)
            for st in w.steps:
                if st.read_address not in seen:
                    seen.add(st.read_address)
            if w.ok:
                base = iova - (iova & (w.page_size - 1))
                out.append((base, w.result.page_base, w.page_size, w.perm))
                iova = base + w.page_size
            else:
                lvl = w.fault.level if w.fault.level is not None else 0
                span = 1 << _fmt(self.stage1).shift(lvl)
                iova = (iova & ~(span - 1)) + span
        self.costs.vmm_guest_table_reads += len(seen)
        return out

    def sync(self) -> None:
        """Compose every guest leaf now present (the initial shadow build)."""
        if self.stage1 is None:
            return
        for m in self.stage1.mappings():
            self._compose(m.iova, m.pa, m.size, m.perm)
        self._synced = True

    # -- guest operations -----------------------------------------------------------------------
    def guest_map(self, iova: int, gpa: int, size: int, prot: str = "rw") -> None:
        """The guest maps, then the VMM catches it (invalidation or request) and shadows it.

        A refused map (the guest table's or the shadow's) changes nothing: neither table, nor
        the cost counters -- a refused call never reached the VMM.
        """
        snap = self._snapshot()
        mapped = False
        try:
            if self.stage1 is not None:
                gm: GuestMemory = _memory(self.stage1)
                before = gm.writes
                self.stage1.map(iova, gpa, size, prot=prot)
                mapped = True
                self.costs.guest_pte_writes += gm.writes - before
                for liova, lgpa, lsize, lperm in self._guest_leaves(iova, iova + size):
                    self._compose(liova, lgpa, lsize, lperm)
            else:
                self.table._check_range("map", iova, size)
                if _overlaps(self.table, iova, size):
                    # QEMU's virtio_iommu_map answers VIRTIO_IOMMU_S_INVAL for an interval that
                    # overlaps an existing one; viommu_get_req_errno turns it into -EINVAL.
                    raise IommuError(
                        "EINVAL", f"virtio-iommu MAP [{fmt_addr(iova)} + {size:#x}] overlaps an existing "
                        f"mapping (virtio_iommu_map: VIRTIO_IOMMU_S_INVAL)")
                self._compose(iova, gpa, size, Perm.parse(prot))
        except BaseException:
            if mapped:  # undo the guest's PTEs and whatever part of the shadow was written
                self.stage1.unmap(iova, size)
                self.table.unmap(iova, size)
            self._restore(snap)
            raise
        self.costs.guest_ops += 1
        self.costs.vm_exits += self.exits.on_map()
        self.costs.host_iotlb_flushes += 1  # iotlb_sync_map: caching mode needs a flush on map

    def guest_unmap(self, iova: int, size: int) -> int:
        """The guest unmaps; the VMM shadows the unmap and flushes the host IOTLB.

        A refused unmap changes nothing, the cost counters included.
        """
        snap = self._snapshot()
        try:
            if self.stage1 is not None:
                gm: GuestMemory = _memory(self.stage1)
                before = gm.writes
                done = self.stage1.unmap(iova, size)
                self.costs.guest_pte_writes += gm.writes - before
                # QEMU re-walks the invalidated range and finds the entries gone (UNMAP notify)
                self._guest_leaves(iova, iova + max(done, size))
            else:
                self.table._check_range("unmap", iova, size)
                done = size
            before = self.memory.words_written
            self.table.unmap(iova, done) if done else 0
            self.costs.shadow_pte_writes += self.memory.words_written - before
        except BaseException:
            self._restore(snap)
            raise
        self.costs.guest_ops += 1
        self.costs.vm_exits += self.exits.on_unmap()
        self.costs.host_map_calls += 1
        self.costs.host_iotlb_flushes += 1
        return done

    # -- DMA ------------------------------------------------------------------------------------
    def walk(self, iova: int, *, access: Any = "r"):
        """A native walk of the shadow table (what the IOMMU does on an IOTLB miss)."""
        w = self.table.walk(iova, access=access)
        self.costs.iotlb_misses += 1
        self.costs.walk_refs += w.references
        return w

    def translate(self, iovas: Any, access: Any = "r"):
        """Translate an array of IOVAs through the shadow table: a ``TranslatedBatch``.

        A single ``int`` keeps the old meaning for one release: :meth:`translate_one`.
        """
        if isinstance(iovas, int):
            return self.translate_one(iovas, access=access)
        return self.table.translate(iovas, access, paths=True)

    def translate_one(self, iova: int, *, access: Any = "r") -> int:
        """The host-physical address for one ``iova``, or ``IommuError("EFAULT")``."""
        w = self.table.walk(iova, access=access)
        if not w.ok:
            raise IommuError("EFAULT", f"shadow walk of {fmt_addr(iova)}: {w.summary()}")
        return int(w.pa)

    def __repr__(self) -> str:
        return (
            f"<ShadowNesting {_fmt(self.table).name} shadow via {self.mode}: "
            f"{len(self.table.mappings())} leaves, {self.costs.vm_exits} VM exits, "
            f"{self.costs.shadow_pte_writes} shadow PTE writes>"
        )

    def to_dataframe(self):
        """The shadow table's leaves (gIOVA -> HPA)."""
        return self.table.to_dataframe("mappings")

    _repr_html_ = display.html


# ----------------------------------------------------------------------------------------------
# Side-by-side costs
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DmaPattern:
    """A guest DMA pattern (not to be confused with ``iommu_lab.review.workload.Workload``, a memory
    layout for design reviews): operations ``("map", iova, gpa, size)``, ``("unmap", iova, size)``
    and ``("dma", iova)`` (an IOTLB miss at ``iova``; caches are assumed cold for each).

    ``DmaPattern.dynamic(n, size)`` is the strict-mode DMA API pattern (map, one DMA, unmap per
    buffer); ``DmaPattern.static(n, size, dmas)`` maps once and reuses the buffers (DPDK-like).
    """

    ops: tuple[tuple, ...]
    name: str = "workload"

    @classmethod
    def dynamic(
        cls,
        buffers: int = 32,
        size: int = 0x1000,
        *,
        iova_base: int = 0x4000_0000,
        gpa_base: int = 0x10_0000,
    ) -> DmaPattern:
        ops = []
        for i in range(buffers):
            iova, gpa = iova_base + i * size, gpa_base + i * size
            ops += [("map", iova, gpa, size), ("dma", iova), ("unmap", iova, size)]
        return cls(tuple(ops), f"dynamic: {buffers} x map/DMA/unmap of {fmt_size(size)}")

    @classmethod
    def static(
        cls,
        buffers: int = 32,
        size: int = 0x1000,
        dmas: int = 1000,
        *,
        iova_base: int = 0x4000_0000,
        gpa_base: int = 0x10_0000,
    ) -> DmaPattern:
        ops: list[tuple] = [("map", iova_base, gpa_base, buffers * size)]
        ops += [("dma", iova_base + (k % buffers) * size) for k in range(dmas)]
        return cls(tuple(ops), f"static: {fmt_size(buffers * size)} mapped once, {dmas} DMAs")


def _as_ops(workload: DmaPattern | Iterable[Sequence]) -> tuple[tuple, ...]:
    ops = workload.ops if isinstance(workload, DmaPattern) else tuple(tuple(o) for o in workload)
    for o in ops:
        if not o or o[0] not in ("map", "unmap", "dma"):
            raise ValueError(
                f"workload operation {o!r}: expected ('map', iova, gpa, size), ('unmap', iova, size) or ('dma', iova)"
            )
    return ops


def run_workload(
    workload: DmaPattern | Iterable[Sequence],
    stage1_format: Any,
    stage2_format: Any,
    *,
    guest_ram: int = 16 << 20,
    backing: str = "eager",
) -> tuple[ShadowCosts, ShadowCosts]:
    """Run one workload on hardware nesting and on shadowing; return both cost records."""
    ops = _as_ops(workload)
    hw = NestedPair.build(stage1_format, stage2_format, guest_ram=guest_ram, backing=backing)
    hwc = ShadowCosts()
    gm = hw.guest_memory
    sw = ShadowNesting.build(stage1_format, stage2_format, guest_ram=guest_ram, backing=backing)
    for op in ops:
        if op[0] == "map":
            _, iova, gpa, size, *rest = op
            prot = rest[0] if rest else "rw"
            before = gm.writes
            hw.map(iova, gpa, size, prot=prot)
            if backing == "lazy":  # the guest's data pages are guest RAM too
                gm.back(gpa, size)
                _memory(sw.stage1).back(gpa, size)
            hwc.guest_ops += 1
            hwc.guest_pte_writes += gm.writes - before
            # The guest writes only its own table: nothing traps (HARDWARE_NESTING.on_map() == 0).
            hwc.vm_exits += HARDWARE_NESTING.on_map()
            sw.guest_map(iova, gpa, size, prot=prot)
        elif op[0] == "unmap":
            _, iova, size = op
            before = gm.writes
            hw.unmap(iova, size)
            hwc.guest_ops += 1
            hwc.guest_pte_writes += gm.writes - before
            # The guest's invalidation traps and is forwarded (IOMMU_HWPT_INVALIDATE) to the host.
            hwc.vm_exits += HARDWARE_NESTING.on_unmap()
            hwc.host_iotlb_flushes += 1
            sw.guest_unmap(iova, size)
        else:
            w = hw.walk(op[1])
            hwc.iotlb_misses += 1
            hwc.walk_refs += w.n_pagetable_refs
            sw.walk(op[1])
    return hwc, sw.costs


def compare_costs(
    workload: DmaPattern | Iterable[Sequence],
    stage1_format: Any = "x86-64-4level",
    stage2_format: Any = "vtd-ss-4level",
    **kwargs: Any,
):
    """One workload, hardware nesting vs shadowing, as a DataFrame (rows: cost, columns: model).

    Hardware nesting pays at walk time ((n+1)(m+1)-1 references per IOTLB miss) and forwards
    each guest invalidation; shadowing pays at map/unmap time (exit, VMM walk of the guest
    table, stage-2 lookups, shadow PTE writes, host flush) and walks natively.
    """
    import pandas as pd

    hwc, swc = run_workload(workload, stage1_format, stage2_format, **kwargs)
    df = pd.DataFrame(
        {
            "hardware nesting": pd.Series(hwc.as_dict()),
            "software nesting (shadow)": pd.Series(swc.as_dict()),
        }
    )
    df.index.name = "cost"
    df.attrs["workload"] = workload.name if isinstance(workload, DmaPattern) else "workload"
    df.attrs["formats"] = (str(stage1_format), str(stage2_format))
    return df
