"""What a trace replays against: one translation stage, or a hardware-nested pair.

A target answers, for a stretch of accesses, the facts the replay charges: whether each
faults, the size of the IOTLB entry a success fills, the leaf or fault level, and in nesting the
GPA of every stage-1 entry read with its own stage-2 facts. :meth:`batch` answers with the
vectorised walker, :meth:`walk_each` with one scalar walk per access; both return the same
:class:`Walked` so one charging loop serves both replay engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iommu_lab.core.errors import IommuError
from iommu_lab.dma.accesses import NO_PASID
from iommu_lab.dma.kernels import distinct
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.nesting.nested import Nested
from iommu_lab.nesting.shadow import ShadowNesting
from iommu_lab.pagetable.table import PageTable
from iommu_lab.pagetable.walk import translate, walk

__all__ = ["NestedStages", "SingleStage", "Walked", "as_target"]

_U64 = np.uint64


@dataclass
class Walked:
    """Per-access facts of a batch of translations (one stage, or a nested pair)."""

    fault: np.ndarray  # bool
    lg2: np.ndarray  # int: log2 of the IOTLB entry a success fills (combined size in nesting)
    leaf: np.ndarray  # int: stage-1 (or only stage) leaf level, -1 if none
    flevel: np.ndarray  # int: stage-1 fault level, -1 if none
    # nesting only: per stage-1 level row + a final row, the GPA and its stage-2 facts
    gpa: np.ndarray | None = None  # (top1 + 2, n) uint64
    s2_fault: np.ndarray | None = None
    s2_lg2: np.ndarray | None = None
    s2_leaf: np.ndarray | None = None
    s2_flevel: np.ndarray | None = None


def _lg2(size: np.ndarray) -> np.ndarray:
    out = np.zeros(size.shape, dtype=np.int64)
    nz = size != 0
    out[nz] = np.log2(size[nz].astype(np.float64)).astype(np.int64)
    return out


def _pages(addr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(inv, first)``: each address's distinct 4 KiB page and one address in each page."""
    page = (addr >> _U64(12)).view(np.int64)
    if distinct.signatures:  # loaded already (the compiled replay uses it): one hashing pass
        return distinct(page, np.zeros(page.shape[0], dtype=np.int64))
    # else a sort, so a short replay never waits for numba to load
    _, first, inv = np.unique(page, return_index=True, return_inverse=True)
    return inv.reshape(-1), first


class SingleStage:
    """One stage: a PageTable, an IOAS's domain or a shadow table."""

    kind = "native"

    def __init__(self, table: Any, *, owner: Any = None, label: str = "") -> None:
        self.table = table
        self.owner = owner  # the IOAS / ShadowNesting the table belongs to, for map/unmap
        self.label = label or table.fmt.name

    @property
    def fmt(self):
        return self.table.fmt

    @property
    def nested(self) -> bool:
        return False

    def batch(self, iova: np.ndarray, write: np.ndarray, pasid: np.ndarray) -> Walked:
        n = iova.shape[0]
        fault = np.zeros(n, dtype=bool)
        lg2 = np.zeros(n, dtype=np.int64)
        leaf = np.full(n, -1, dtype=np.int64)
        flevel = np.full(n, -1, dtype=np.int64)
        for is_write in (False, True):
            sel = np.nonzero(write == is_write)[0]
            if sel.size == 0:
                continue
            b = self.table.translate(iova[sel], "w" if is_write else "r", paths=True)
            fault[sel] = b.fault
            lg2[sel] = _lg2(b.size)
            leaf[sel] = b.leaf_level
            flevel[sel] = b.fault_level
        return Walked(fault, lg2, leaf, flevel)

    def walk_one(self, iova: int, write: bool, pasid: int):
        """Scalar walk: ``(fault, lg2, leaf, fault_level)``."""
        w = self.table.walk(iova, "w" if write else "r")
        if w.ok:
            return False, w.result.size.bit_length() - 1, w.result.level, -1
        lvl = w.fault.level
        return True, 0, -1, -1 if lvl is None else lvl

    def walk_each(self, iova: np.ndarray, write: np.ndarray, pasid: np.ndarray) -> Walked:
        """:meth:`batch` answered by one scalar walk per access (the step engine's front end)."""
        n = iova.shape[0]
        w = Walked(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int64),
                   np.full(n, -1, dtype=np.int64))
        for i, (va, wr, p) in enumerate(zip(iova.tolist(), write.tolist(), pasid.tolist())):
            w.fault[i], w.lg2[i], w.leaf[i], w.flevel[i] = self.walk_one(va, wr, p)
        return w

    def apply(self, op: str, iova: int, length: int, pa: int, stage: int) -> tuple[bool, bool]:
        """Apply a map/unmap row; returns ``(stage2_changed, tables_freed)``."""""
        if stage != 1:
            raise ValueError(
                f"stage {stage}: a single-stage target has only stage 1; stage-2 rows need a Nested target"
            )
        before = self.table.memory.bytes_used
        if self.owner is None:
            if op == "map":
                self.table.map(iova, pa, length, "rw")
            else:
                self.table.unmap(iova, length)
        elif op == "map":
            if hasattr(self.owner, "guest_map"):
                self.owner.guest_map(iova, pa, length, "rw")
            else:
                self.owner.map(length, iova, user_va=pa, prot="rw")
        elif hasattr(self.owner, "guest_unmap"):
            self.owner.guest_unmap(iova, length)
        else:
            self.owner.unmap(iova, length)
        return False, self.table.memory.bytes_used < before

    def traps(self) -> int:
        """VM exits the VMM took so far (a shadow's trapped guest maps and unmaps)."""
        costs = getattr(self.owner, "costs", None)
        return int(getattr(costs, "vm_exits", 0)) if costs is not None else 0


class NestedStages:
    """A hardware-nested pair: stage 1 in guest memory over stage 2 in host memory."""

    kind = "nested"

    def __init__(self, nested: Any) -> None:
        self.n = nested
        self.label = f"{nested.stage1.fmt.name} over {nested.stage2.fmt.name}"

    @property
    def fmt(self):
        return self.n.stage1.fmt

    @property
    def fmt2(self):
        return self.n.stage2.fmt

    @property
    def nested(self) -> bool:
        return True

    def _root(self, pasid: int) -> int | None:
        if pasid == NO_PASID:
            return int(self.n.stage1.root)
        return self.n._pasid_roots.get(pasid)

    def batch(self, iova: np.ndarray, write: np.ndarray, pasid: np.ndarray) -> Walked:

        f1, s1mem, s2 = self.fmt, self.n.stage1.memory, self.n.stage2
        n, rows = iova.shape[0], f1.top_level + 2
        fault = np.ones(n, dtype=bool)
        lg2 = np.zeros(n, dtype=np.int64)
        leaf = np.full(n, -1, dtype=np.int64)
        flevel = np.full(n, -1, dtype=np.int64)
        gpa = np.zeros((rows, n), dtype=_U64)
        s2_fault = np.ones((rows, n), dtype=bool)
        s2_lg2 = np.zeros((rows, n), dtype=np.int64)
        s2_leaf = np.full((rows, n), -1, dtype=np.int64)
        s2_flevel = np.full((rows, n), -1, dtype=np.int64)
        for p in (pd.unique(pasid).tolist() if pasid.size else []):
            root = self._root(int(p))
            for is_write in (False, True):
                sel = np.nonzero((pasid == p) & (write == is_write))[0]
                if sel.size == 0 or root is None:
                    continue  # an unbound PASID faults before any page-table read
                b = translate(f1, s1mem, root, iova[sel], access="w" if is_write else "r", paths=True)
                fault[sel], leaf[sel], flevel[sel] = b.fault, b.leaf_level, b.fault_level
                gpa[: f1.top_level + 1, sel] = b.entry_address
                gpa[-1, sel] = b.pa
                # stage 2 of every stage-1 entry address (reads) and of the output GPA
                stop = np.where(b.leaf_level >= 0, b.leaf_level, b.fault_level).astype(np.int64)
                levels = np.arange(f1.top_level + 1)[:, None]
                ri, ci = np.nonzero((levels >= stop[None, :]) & (stop[None, :] >= 0))
                if ri.size:
                    # the entries read lie in a few table pages: stage 2 walks each page once
                    addr = b.entry_address[ri, ci]
                    inv, first = _pages(addr)
                    t = s2.translate(addr[first], "r", paths=True)
                    cols = sel[ci]
                    s2_fault[ri, cols], s2_lg2[ri, cols] = t.fault[inv], _lg2(t.size)[inv]
                    s2_leaf[ri, cols], s2_flevel[ri, cols] = t.leaf_level[inv], t.fault_level[inv]
                ok = np.nonzero(~b.fault)[0]
                if ok.size:
                    t = s2.translate(b.pa[ok], "w" if is_write else "r", paths=True)
                    cols = sel[ok]
                    s2_fault[-1, cols], s2_lg2[-1, cols] = t.fault, _lg2(t.size)
                    s2_leaf[-1, cols], s2_flevel[-1, cols] = t.leaf_level, t.fault_level
                    fault[cols] |= t.fault
                    lg2[cols] = np.minimum(_lg2(b.size[ok]), _lg2(t.size))
        return Walked(fault, lg2, leaf, flevel, gpa, s2_fault, s2_lg2, s2_leaf, s2_flevel)

    def walk_one(self, iova: int, write: bool, pasid: int):
        """Scalar walks: stage 1 step by step, then stage 2 of each entry address and the output.

        Returns ``(fault, lg2, leaf, fault_level, rows)`` where ``rows`` lists, per stage-1 level
        read (top first) and then the output GPA, ``(level or None, gpa, s2 walk)``.
        """

        root = self._root(pasid)
        if root is None:
            return True, 0, -1, -1, []
        w1 = walk(self.fmt, self.n.stage1.memory, root, iova, access="w" if write else "r")
        rows = [(s.level, s.entry_address, self.n.stage2.walk(s.entry_address, "r")) for s in w1.steps]
        if not w1.ok:
            lvl = w1.fault.level
            if lvl is not None and lvl not in {s.level for s in w1.steps}:
                # the entry could not be fetched: its GPA's stage-2 walk faulted, and those
                # stage-2 reads happened (the vectorised walker charges them too)
                table = w1.steps[-1].entry.address if w1.steps else root
                gpa = table + self.fmt.index(lvl, iova) * self.fmt.entry_size
                rows.append((lvl, gpa, self.n.stage2.walk(gpa, "r")))
            return True, 0, -1, -1 if lvl is None else lvl, rows
        w2 = self.n.stage2.walk(w1.pa, "w" if write else "r")
        rows.append((None, w1.pa, w2))
        if not w2.ok:
            return True, 0, w1.result.level, -1, rows
        lg2 = min(w1.result.size, w2.result.size).bit_length() - 1
        return False, lg2, w1.result.level, -1, rows

    def walk_each(self, iova: np.ndarray, write: np.ndarray, pasid: np.ndarray) -> Walked:
        """:meth:`batch` answered by scalar walks, one stage-1 walk and its stage-2 walks per access."""
        n, rows = iova.shape[0], self.fmt.top_level + 2
        w = Walked(
            np.ones(n, dtype=bool), np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int64),
            np.full(n, -1, dtype=np.int64), np.zeros((rows, n), dtype=_U64), np.ones((rows, n), dtype=bool),
            np.zeros((rows, n), dtype=np.int64), np.full((rows, n), -1, dtype=np.int64),
            np.full((rows, n), -1, dtype=np.int64),
        )
        for i, (va, wr, p) in enumerate(zip(iova.tolist(), write.tolist(), pasid.tolist())):
            w.fault[i], w.lg2[i], w.leaf[i], w.flevel[i], steps = self.walk_one(va, wr, p)
            for level, gpa, w2 in steps:
                r = -1 if level is None else level  # the output GPA takes the last row
                w.gpa[r, i] = gpa
                if w2.ok:
                    w.s2_fault[r, i], w.s2_lg2[r, i], w.s2_leaf[r, i] = False, w2.result.size.bit_length() - 1, w2.result.level
                else:
                    w.s2_flevel[r, i] = -1 if w2.fault.level is None else w2.fault.level
        return w

    def apply(self, op: str, iova: int, length: int, pa: int, stage: int) -> tuple[bool, bool]:
        table = self.n.stage1 if stage == 1 else self.n.stage2
        before = table.memory.bytes_used
        if op == "map":
            table.map(iova, pa, length, "rw")
        else:
            table.unmap(iova, length)
        return stage == 2, table.memory.bytes_used < before

    def traps(self) -> int:
        return 0


def as_target(model: Any):
    """Wrap what the user passed; a clear error for anything that cannot translate."""

    if isinstance(model, PageTable):
        return SingleStage(model)
    if isinstance(model, IOAS):
        if not model.domains:
            raise IommuError(
                "ENODEV",
                "the IOAS has no paging domain: attach a device with a page-table format "
                "(ioas.attach(platform.device())) so there is a table for DMA to walk",
            )
        return SingleStage(model.domains[0], owner=model, label=f"IOAS on {model.domains[0].fmt.name}")
    if isinstance(model, Nested):
        return NestedStages(model)
    if isinstance(model, ShadowNesting):
        model.sync()
        t = SingleStage(model.table, owner=model, label=f"shadow {model.table.fmt.name}")
        t.kind = "shadowed"
        return t
    raise TypeError(
        f"cannot replay a trace against {type(model).__name__}; give a PageTable, an IOAS with an "
        f"attached device, a Nested pair or a ShadowNesting"
    )
