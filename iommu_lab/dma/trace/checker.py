"""The mapping checker: which DMA rows of a trace touch an IOVA not mapped at that moment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from iommu_lab.dma.trace.schema import HEX_COLUMNS, OP_MAP, OP_UNMAP

if TYPE_CHECKING:
    from iommu_lab.dma.trace.table import Trace

__all__ = ["check_mapped"]


class _Intervals:
    """A mutable set of addresses as disjoint, merged inclusive ranges (the checker's state)."""

    def __init__(self) -> None:
        from sortedcontainers import SortedDict

        self._d = SortedDict()

    def add(self, start: int, last: int) -> None:
        d = self._d
        i = d.bisect_right(start) - 1
        if i >= 0:
            lo, hi = d.peekitem(i)
            if hi + 1 >= start:
                start, last = lo, max(last, hi)
                del d[lo]
        while True:
            j = d.bisect_left(start)
            if j >= len(d):
                break
            lo, hi = d.peekitem(j)
            if lo > last + 1:
                break
            last = max(last, hi)
            del d[lo]
        d[start] = last

    def remove(self, start: int, last: int) -> None:
        d = self._d
        i = d.bisect_right(start) - 1
        if i >= 0:
            lo, hi = d.peekitem(i)
            if hi >= start:
                del d[lo]
                if lo < start:
                    d[lo] = start - 1
                if hi > last:
                    d[last + 1] = hi
        while True:
            j = d.bisect_left(start)
            if j >= len(d):
                break
            lo, hi = d.peekitem(j)
            if lo > last:
                break
            del d[lo]
            if hi > last:
                d[last + 1] = hi
                break

    def covers(self, start: int, last: int) -> bool:
        i = self._d.bisect_right(start) - 1
        return i >= 0 and self._d.peekitem(i)[1] >= last


def check_mapped(trace: Trace) -> pd.DataFrame:
    """The DMA rows that touch an IOVA not mapped (stage 1) at that moment.

    Mappings are tracked per address space -- one per (device, PASID), <NA> being the
    device's requests without PASID -- by replaying the map/unmap rows in order; stage-2
    rows change the nest parent, not the device's IOVA space, and are skipped. A DMA row
    passes only if every byte it touches is mapped. A checker, not a hot path: one Python
    step per row with O(log n) interval operations.
    """
    df = trace.frame
    codes = df["op"].cat.codes.to_numpy().tolist()
    devices = df["device"].cat.codes.to_numpy().tolist()
    pasids = [None if pd.isna(p) else int(p) for p in df["pasid"].tolist()]
    iovas = df["iova"].to_numpy().tolist()
    lengths = df["length"].to_numpy().tolist()
    stages = df["stage"].to_numpy().tolist()
    spaces: dict[tuple[int, int | None], _Intervals] = {}
    bad = []
    for row, (op, dev, pasid, iova, length, stage) in enumerate(
        zip(codes, devices, pasids, iovas, lengths, stages, strict=True)
    ):
        if stage != 1:
            continue
        space = spaces.get((dev, pasid))
        if space is None:
            space = spaces[(dev, pasid)] = _Intervals()
        last = iova + length - 1
        if op == OP_MAP:
            space.add(iova, last)
        elif op == OP_UNMAP:
            space.remove(iova, last)
        elif not space.covers(iova, last):
            bad.append(row)
    out = df.iloc[bad]
    out.attrs["hex_columns"] = list(HEX_COLUMNS)
    return out
