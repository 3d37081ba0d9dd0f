"""DMA rows as translation requests: each read/write row split at 4 KiB boundaries.

A PCIe request never crosses a 4 KiB boundary ("Requests must not specify an Address/Length
combination which causes a Memory Space access to cross a 4-KB boundary", PCIe Base
Specification §2.2.7), so each 4 KiB piece of a DMA row is one translation the IOMMU performs.
We call the pieces *accesses*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

__all__ = ["Accesses", "NO_PASID", "REQUEST_BOUNDARY", "access_counts", "access_pieces", "dma_columns", "domain_of_rows",
           "split_accesses", "tag_names"]

_U64 = np.uint64
#: PCIe: no request crosses a 4 KiB boundary, so translations are requested per 4 KiB piece.
REQUEST_BOUNDARY = 4096
#: Most requests :func:`split_accesses` makes at once (about 2.5 GiB of arrays).
SPLIT_LIMIT = 1 << 26
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
    All the accesses at once: :func:`access_pieces` yields them in bounded pieces.
    """
    cols = dma_columns(frame, domain_of_rows(frame, domains))
    total = int(access_counts(cols[2], cols[3]).astype(np.float64).sum())
    if total > SPLIT_LIMIT:
        raise ValueError(
            f"the trace's DMA rows make {total:,} 4 KiB requests, more than split_accesses holds at once "
            f"({SPLIT_LIMIT:,}); replay() and access_pieces() handle any number in bounded pieces"
        )
    pieces = list(access_pieces(*cols, limit=1 << 62))
    if not pieces:
        e = np.zeros(0, dtype=np.int64)
        return Accesses(e, e, e.astype(_U64), e.astype(_U64), e, e.astype(bool), e)
    return pieces[0]


def dma_columns(frame: pd.DataFrame, domain: np.ndarray, lo: int = 0, hi: int | None = None, row0: int = 0) -> tuple:
    """The read/write rows among ``frame`` rows ``lo .. hi``: ``(row, t, iova, length, pasid,
    write, domain)`` arrays, ``row`` counted from ``row0``."""
    op = frame["op"].cat.codes.to_numpy()[lo:hi]
    rows = np.nonzero(op <= 1)[0]  # OP_READ, OP_WRITE (the schema's op codes)
    take = rows + lo
    if rows.shape[0] == op.shape[0]:  # every row is DMA: slices, not gathers
        take = slice(lo, lo + rows.shape[0])
    return (
        rows + (lo + row0),
        frame["t"].to_numpy(dtype=np.int64)[take],
        frame["iova"].to_numpy(dtype=_U64)[take],
        frame["length"].to_numpy(dtype=_U64)[take],
        frame["pasid"].to_numpy(dtype=np.int64, na_value=-1)[take],
        op[rows] == 1,
        domain[take],
    )


def access_counts(iova: np.ndarray, length: np.ndarray) -> np.ndarray:
    """How many 4 KiB requests each row ``[iova, iova + length)`` makes."""
    shift = _U64(12)
    return ((((iova + (length - _U64(1))) >> shift) - (iova >> shift)) + _U64(1)).astype(np.int64)


def access_pieces(row, t, iova, length, pasid, write, domain, *, limit: int) -> Iterator[Accesses]:
    """DMA rows as :class:`Accesses` pieces of at most ``limit`` requests, in order.

    A row longer than ``limit`` requests is split across pieces, so no piece, whatever one row
    asks for, holds more than ``limit`` accesses.
    """
    count = access_counts(iova, length)
    if not count.size:
        return
    ends = np.cumsum(count)
    starts = ends - count
    total = int(ends[-1])
    if total == count.shape[0] and total <= limit:  # every row is one request: nothing to split
        yield Accesses(row=row, t=t, iova=iova, length=length, pasid=pasid, write=write, domain=domain)
        return
    shift = _U64(12)
    for k0 in range(0, total, limit):
        k1 = min(k0 + limit, total)
        ra = int(np.searchsorted(ends, k0, side="right"))
        rb = int(np.searchsorted(ends, k1 - 1, side="right")) + 1
        lo_k = np.maximum(starts[ra:rb], k0)
        c = np.minimum(ends[ra:rb], k1) - lo_k
        rep = np.repeat(np.arange(ra, rb), c)
        first_k = np.cumsum(c) - c
        kin = (np.arange(k1 - k0, dtype=np.int64) - first_k[rep - ra] + (lo_k - starts[ra:rb])[rep - ra]).astype(_U64)
        va, ln = iova[rep], length[rep]
        page = (va >> shift) + kin
        a_iova = np.where(kin == _U64(0), va, page << shift)
        a_end = np.minimum(va + (ln - _U64(1)), (page << shift) + _U64(0xFFF))
        yield Accesses(row=row[rep], t=t[rep], iova=a_iova, length=a_end - a_iova + _U64(1), pasid=pasid[rep],
                       write=write[rep], domain=domain[rep])


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
