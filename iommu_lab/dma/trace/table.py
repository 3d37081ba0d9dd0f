"""The DMA trace table: one validated frame of device accesses and driver mapping changes.

:class:`Trace` holds ``frame`` (the schema of :mod:`iommu_lab.dma.trace.schema`), builds it from
frames, records or files, and answers the questions a trace poses before any replay: how many
bytes, over how long, how many distinct pages, which accesses hit nothing mapped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iommu_lab.core import display
from iommu_lab.core import frames as _frames  # noqa: F401  (registers the ``df.il`` accessor used for hex display)
from iommu_lab.core.ranges import fmt_size
from iommu_lab.dma.trace.checker import check_mapped
from iommu_lab.dma.trace.files import read_frame, write_frame
from iommu_lab.dma.trace.schema import (
    COLUMNS,
    DEFAULT_DEVICE,
    HEX_COLUMNS,
    OP_MAP,
    OP_READ,
    OP_UNMAP,
    OP_WRITE,
    REQUIRED,
    Columns,
    TraceError,
    check_rules,
    coerce,
)

__all__ = ["Trace"]


@dataclass(frozen=True, eq=False)
class Trace:
    """A DMA trace: device accesses and driver mapping changes in time order (see module doc).

    Build one with :meth:`from_frame`, :meth:`from_records`, :meth:`read` or a generator;
    ``frame`` always has exactly :data:`COLUMNS` with the documented dtypes. Traces compare
    by identity (a DataFrame has no single truth value); compare ``a.frame.equals(b.frame)``.
    """

    frame: pd.DataFrame
    name: str = ""

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, name: str = "") -> Trace:
        """Validate and coerce a frame (always copied; the caller's frame is never changed).

        Accepts Python/numpy ints or ``"0x..."``/decimal strings for the integer columns, op
        names in any case with ``r``/``w`` for read/write, and fills absent optional columns:
        ``pa`` 0, ``stage`` 1, ``pasid`` <NA>, ``device`` ``"dev0"``. Raises :class:`TraceError`
        (a ``ValueError``) naming the column, row, value, rule and what is allowed.
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"from_frame takes a pandas DataFrame, got {type(df).__name__}")
        return cls(coerce(df).frame(), name)

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any] | Sequence[Any]], *, name: str = ""
    ) -> Trace:
        """Build from dicts (keyed by column) or tuples in :data:`COLUMNS` order.

        Optional fields absent from a record (a short tuple, a dict without the key) take the
        defaults of :meth:`from_frame`: ``pa`` 0, ``stage`` 1, ``pasid`` <NA>, ``device`` "dev0".
        """
        defaults = {"device": DEFAULT_DEVICE, "pasid": None, "pa": 0, "stage": 1}
        table: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                rec = list(rec)
                if not len(REQUIRED) <= len(rec) <= len(COLUMNS):
                    raise ValueError(
                        f"record {i} has {len(rec)} fields; tuples follow COLUMNS = {COLUMNS}"
                    )
                rec = dict(zip(COLUMNS[: len(rec)], rec, strict=True))
            unknown = [k for k in rec if k not in table]
            if unknown:
                raise TraceError(
                    str(unknown[0]),
                    i,
                    repr(unknown[0]),
                    "is not a trace column",
                    ", ".join(COLUMNS),
                )
            for c in COLUMNS:
                if c in rec:
                    table[c].append(rec[c])
                elif c in defaults:
                    table[c].append(defaults[c])
                else:
                    raise TraceError(
                        c,
                        i,
                        "(absent)",
                        "is a required field",
                        f"records with {', '.join(REQUIRED)}",
                    )
        return cls.from_frame(
            pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in table.items()}), name=name
        )

    @classmethod
    def from_columns(cls, cols: Columns, name: str) -> Trace:
        """From typed columns (the generators' path): the cross-column rules still apply."""
        check_rules(cols)
        return cls(cols.frame(), name)

    # -- files -----------------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | Path, *, name: str | None = None) -> Trace:
        """Load a ``.parquet``/``.pq`` (pyarrow) or ``.csv`` trace written by :meth:`save`.

        CSV addresses may be ``0x`` hex or decimal; an empty ``pasid`` is <NA>.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"a trace file path must be a str or os.PathLike, got {type(path).__name__}")
        path = Path(path)
        df = read_frame(path)
        try:
            return cls.from_frame(df, name=path.stem if name is None else name)
        except TraceError as err:
            err.args = (f"{path}: {err.args[0]}",)
            raise

    def save(self, path: str | Path) -> Path:
        """Write the trace; Parquet keeps dtypes, CSV writes ``iova``/``pa`` as ``0x`` hex."""
        return write_frame(self.frame, path)

    # -- summaries ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    @property
    def _dma_mask(self) -> np.ndarray:
        return self.frame["op"].cat.codes.to_numpy() <= OP_WRITE

    @property
    def dma(self) -> pd.DataFrame:
        """The device's read/write rows (original row positions kept as the index)."""
        return self.frame[self._dma_mask]

    @property
    def n_dma(self) -> int:
        return int(self._dma_mask.sum())

    @property
    def devices(self) -> list[str]:
        return [str(d) for d in self.frame["device"].cat.categories]

    @property
    def duration_ns(self) -> int:
        t = self.frame["t"].to_numpy()
        return int(t[-1] - t[0]) if len(t) else 0

    @property
    def bytes(self) -> int:
        """Bytes moved by DMA (read + write rows)."""
        return int(self.frame["length"].to_numpy()[self._dma_mask].sum(dtype=np.uint64))

    def working_set(self, pgsize: int = 4096) -> int:
        """Distinct ``pgsize`` pages the DMA rows touch, counting every page an access spans.

        Pages are counted per IOVA (all devices and PASIDs together); vectorised: the page
        intervals are sorted and merged, then their lengths summed.
        """
        if pgsize <= 0 or pgsize & (pgsize - 1):
            raise ValueError(
                f"pgsize {pgsize!r} is not a power of two; allowed: 4096, 2 << 20, ..."
            )
        mask = self._dma_mask
        iova = self.frame["iova"].to_numpy()[mask]
        if not iova.size:
            return 0
        length = self.frame["length"].to_numpy()[mask]
        shift = np.uint64(pgsize.bit_length() - 1)
        first = iova >> shift
        last = (iova + (length - np.uint64(1))) >> shift
        order = np.argsort(first, kind="stable")
        first, last = first[order], last[order]
        reach = np.maximum.accumulate(last)
        starts = np.ones(first.size, dtype=bool)
        starts[1:] = first[1:] > reach[:-1]
        group = np.cumsum(starts) - 1
        lo = first[starts]
        hi = np.zeros(lo.size, dtype=np.uint64)
        np.maximum.at(hi, group, last)
        return int((hi - lo + np.uint64(1)).sum(dtype=np.uint64))

    def describe(self) -> pd.Series:
        """Counts, bytes, duration and working set (4 KiB and 2 MiB pages) as a Series."""
        codes = self.frame["op"].cat.codes.to_numpy()
        return pd.Series(
            {
                "rows": len(self),
                "dma accesses": self.n_dma,
                "reads": int((codes == OP_READ).sum()),
                "writes": int((codes == OP_WRITE).sum()),
                "maps": int((codes == OP_MAP).sum()),
                "unmaps": int((codes == OP_UNMAP).sum()),
                "bytes": self.bytes,
                "duration (ns)": self.duration_ns,
                "working set 4K pages": self.working_set(4096),
                "working set 2M pages": self.working_set(2 << 20),
                "devices": ", ".join(self.devices),
            },
            name=self.name or "trace",
            dtype=object,
        )

    def head(self, n: int = 5) -> pd.DataFrame:
        out = self.frame.head(n)
        out.attrs["hex_columns"] = list(HEX_COLUMNS)
        return out

    def to_dataframe(self) -> pd.DataFrame:
        """The rows as a new frame: :data:`COLUMNS`, with ``iova``, ``length`` and ``pa`` as
        pandas ``UInt64`` (``df.il.hex()`` shows the addresses in hex)."""
        out = self.frame.astype({"iova": "UInt64", "length": "UInt64", "pa": "UInt64"})
        out.attrs["hex_columns"] = list(HEX_COLUMNS)
        return out

    def unmapped_accesses(self) -> pd.DataFrame:
        """The DMA rows that touch an IOVA not mapped at that moment (see :func:`check_mapped`)."""
        return check_mapped(self)

    def __repr__(self) -> str:
        label = f"{self.name!r}: " if self.name else ""
        return (
            f"Trace({label}{len(self)} rows, {self.n_dma} DMA accesses, "
            f"{fmt_size(self.bytes)} by DMA over {self.duration_ns} ns, "
            f"devices {', '.join(self.devices) or '-'})"
        )

    _repr_html_ = display.html

    # -- combining -------------------------------------------------------------------------
    @staticmethod
    def merge(*traces: Trace, name: str = "") -> Trace:
        """Interleave traces by ``t``, e.g. a NIC and an NVMe drive behind one IOMMU.

        Stable: rows with equal ``t`` keep argument order, then their order within a trace.
        """
        if not traces:
            raise ValueError("merge needs at least one Trace")
        frames = [tr.frame for tr in traces]
        devices = pd.api.types.union_categoricals([f["device"] for f in frames], ignore_order=True)
        df = pd.concat(
            [f.assign(device=f["device"].astype(object)) for f in frames], ignore_index=True
        )
        order = np.argsort(df["t"].to_numpy(), kind="stable")
        df = df.iloc[order].reset_index(drop=True)
        df["device"] = pd.Categorical(df["device"], categories=devices.categories)
        return Trace.from_frame(df, name=name)
