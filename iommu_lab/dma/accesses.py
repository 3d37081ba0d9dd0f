"""DMA rows as translation requests: each read/write row split at 4 KiB boundaries.

A PCIe request never crosses a 4 KiB boundary ("Requests must not specify an Address/Length
combination which causes a Memory Space access to cross a 4-KB boundary", PCIe Base
Specification §2.2.7), so each 4 KiB piece of a DMA row is one translation the IOMMU performs.
We call the pieces *accesses*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Accesses", "NO_PASID", "REQUEST_BOUNDARY", "domain_of_rows", "split_accesses", "tag_names"]

_U64 = np.uint64
#: PCIe: no request crosses a 4 KiB boundary, so translations are requested per 4 KiB piece.
REQUEST_BOUNDARY = 4096
#: The PASID of a request without one, in :attr:`Accesses.pasid`.
NO_PASID = -1
_PASID_FIELD = 0x1FFFFF  # 21 bits: 20-bit PASIDs and the all-ones "no PASID"


@dataclass(frozen=True)
class Accesses:
    """The DMA rows of a trace as 4 KiB translation requests, in trace order.

    ``row`` is the trace row each access came from; ``write`` its direction.
    """

    row: np.ndarray
    t: np.ndarray
    iova: np.ndarray
    length: np.ndarray
    pasid: np.ndarray
    write: np.ndarray
    domain: np.ndarray  # the domain (DID) each access's device is attached to

    @property
    def tag(self) -> np.ndarray:
        """One integer per (domain, PASID): the IOTLB tag, packed for vectorised comparison."""
        return (self.domain << 21) | (self.pasid & _PASID_FIELD)

    def __len__(self) -> int:
        return int(self.row.shape[0])


def split_accesses(frame: pd.DataFrame, *, domains: str = "per-device") -> Accesses:
    """Split every read/write row of a trace frame at 4 KiB boundaries (vectorised).

    A row ``[iova, iova + length)`` becomes one access per 4 KiB page it touches; the first
    starts at ``iova``, the others at their page's base (PCIe §2.2.7, see the module docs).
    ``domains="per-device"`` gives each device its own domain id, ``"shared"`` puts all in 0.
    """
    op = frame["op"].to_numpy()
    dma = (op == "read") | (op == "write")
    rows = np.nonzero(dma)[0]
    iova = frame["iova"].to_numpy(dtype=_U64)[rows]
    length = frame["length"].to_numpy(dtype=_U64)[rows]
    shift = _U64(12)
    first = iova >> shift
    last = (iova + (length - _U64(1))) >> shift
    count = (last - first + _U64(1)).astype(np.int64)
    total = int(count.sum())
    rep = np.repeat(np.arange(rows.shape[0]), count)
    starts = np.cumsum(count) - count
    k = (np.arange(total, dtype=np.int64) - starts[rep]).astype(_U64)
    page = first[rep] + k
    a_iova = np.where(k == _U64(0), iova[rep], page << shift)
    a_end = np.minimum(iova[rep] + (length[rep] - _U64(1)), (page << shift) + _U64(0xFFF))
    pasid = frame["pasid"].to_numpy(dtype="float64", na_value=-1.0)[rows].astype(np.int64)
    return Accesses(
        row=rows[rep],
        t=frame["t"].to_numpy(dtype=np.int64)[rows][rep],
        iova=a_iova,
        length=a_end - a_iova + _U64(1),
        pasid=pasid[rep],
        write=(op[rows] == "write")[rep],
        domain=domain_of_rows(frame, domains)[rows][rep],
    )


def domain_of_rows(frame: pd.DataFrame, domains: str) -> np.ndarray:
    """Domain id of each trace row: its device's position among the trace's devices, or 0."""
    if domains == "shared":
        return np.zeros(len(frame), dtype=np.int64)
    return frame["device"].cat.codes.to_numpy().astype(np.int64)


def tag_names(code: np.ndarray) -> dict[int, tuple[int, int]]:
    """The IOTLB tag ``(domain, pasid)`` of each packed tag present (see :attr:`Accesses.tag`)."""
    if code.size and (code == code[0]).all():
        present = [int(code[0])]
    else:
        present = pd.unique(code).tolist()
    return {c: (c >> 21, NO_PASID if c & _PASID_FIELD == _PASID_FIELD else c & _PASID_FIELD) for c in present}
