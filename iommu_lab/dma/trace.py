"""DMA traces: the accesses a device makes and the mapping changes its driver makes, in time order.

A :class:`Trace` is one table (``Trace.frame``) with exactly the columns of :data:`COLUMNS`:

========  ===================  ===============================================================
column    dtype                meaning
========  ===================  ===============================================================
t         int64                nanoseconds since the trace started; non-decreasing (ties keep
                               row order)
op        category             ``read``/``write``: a DMA by the device, named by what the
                               *device* does (a disk write is a DMA read of host memory);
                               ``map``/``unmap``: the driver changing the IOMMU mapping
                               (DMA API, ``iommu_map``/``iommu_unmap``)
device    category of str      requester, e.g. ``"nic0"``
pasid     UInt32 (nullable)    <NA>: a request without a PASID; else 0 .. 2**20-1 (the PCIe
                               PASID is 20 bits wide)
iova      uint64               first byte (for stage-2 map/unmap rows: the GPA)
length    uint64               bytes, > 0, and ``iova + length - 1 <= 2**64 - 1``
pa        uint64               map rows: the output address (PA; the GPA for a stage-1 map of
                               a nested target; the HPA for a stage-2 map); 0 on other rows
stage     uint8                1, except map/unmap rows that change stage 2 (the nest parent)
========  ===================  ===============================================================

Generators model four real DMA patterns, all deterministic for a ``seed`` and vectorised:
:func:`nic_rx_ring` (a NIC receive ring, page_pool recycling or per-packet streaming DMA API),
:func:`storage_sg` (an NVMe-like queue with scatter-gather lists mapped by ``dma_map_sg``),
:func:`streaming` (one large buffer streamed through) and :func:`random_working_set`.

IOVA allocation for the streaming DMA API follows Linux (drivers/iommu/dma-iommu.c and iova.c):
``iommu_dma_alloc_iova`` rounds a request of fewer than ``2**(IOVA_RANGE_CACHE_MAX_SIZE - 1)``
= 32 granules up to a power of two, ``alloc_iova`` places a fresh range naturally aligned to
that power of two, and ``free_iova_fast`` pushes a freed range onto a per-CPU magazine
(``iova_rcache``) from which ``alloc_iova_fast`` pops the most recently freed range of the same
order first -- so a busy driver mostly gets back the IOVAs it just released.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iommu_lab.core import display
from iommu_lab.core import frames as _frames  # noqa: F401  (registers the ``df.il`` accessor used for hex display)
from iommu_lab.core.ranges import U64_MAX, fmt_addr, fmt_size

__all__ = [
    "COLUMNS",
    "OPS",
    "Op",
    "PASID_BITS",
    "Trace",
    "TraceError",
    "check_mapped",
    "nic_rx_ring",
    "storage_sg",
    "streaming",
    "random_working_set",
]

#: The columns of ``Trace.frame``, in order.
COLUMNS = ("t", "op", "device", "pasid", "iova", "length", "pa", "stage")
#: The categories of the ``op`` column, in order (their codes are 0..3).
OPS = ("read", "write", "map", "unmap")

#: PCIe PASID width: the PASID TLP prefix carries a 20-bit PASID (PCIe base spec, "PASID TLP
#: Prefix"; QEMU's PCI_EXT_CAP_PASID_MAX_WIDTH and VT-d's MAX_NR_PASID_BITS are both 20).
PASID_BITS = 20
PASID_MAX = (1 << PASID_BITS) - 1

#: The IOVA granule the DMA API maps in: the smallest IOMMU page (iommu_dma_init_domain uses
#: ``__ffs(pgsize_bitmap)``), 4 KiB on x86 and on ARM with 4K pages.
GRANULE = 4096

#: iova.h: "log of max cached IOVA range size (in pages)".
IOVA_RANGE_CACHE_MAX_SIZE = 6

_READ, _WRITE, _MAP, _UNMAP = range(4)
_OP_ALIASES = {"r": "read", "w": "write"}
_REQUIRED = ("t", "op", "iova", "length")
_DEFAULT_DEVICE = "dev0"
_HEX_COLUMNS = ["iova", "pa"]


class Op(enum.StrEnum):
    """A trace row's operation; the values are the ``op`` categories."""

    READ = "read"
    WRITE = "write"
    MAP = "map"
    UNMAP = "unmap"


class TraceError(ValueError):
    """A trace value that breaks the schema: names the column, the row, the value and the rule."""

    def __init__(
        self, column: str, row: int | None, value: object, rule: str, allowed: str
    ) -> None:
        where = f"{column}[{row}]" if row is not None else column
        super().__init__(f"{where} = {value}: {rule}; allowed: {allowed}")
        self.column, self.row, self.value = column, row, value


# ============================================================================ coercion
def _show(value: object, address: bool) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and address:
        return fmt_addr(int(value)) if value >= 0 else f"-{fmt_addr(-int(value))}"
    return repr(value)


def _range_rule(value: int, lo: int, hi: int) -> str:
    if value < 0:
        return "is negative"
    if value < lo:
        return "is zero" if value == 0 else f"is below the minimum {lo}"
    return f"exceeds the maximum {fmt_addr(hi)}"


def _human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _parse_int(value: object) -> int | None:
    """An exact integer from an int, a numpy integer or a decimal / ``0x`` hex string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if text[:2].lower() == "0x" or text[:3].lower() == "-0x":
                return int(text, 16)
            return int(text, 10)
        except ValueError:
            return None
    return None


def _int_column(
    column: str,
    series: pd.Series,
    lo: int,
    hi: int,
    dtype: type,
    allowed: str,
    *,
    address: bool = False,
) -> np.ndarray:
    """Coerce one integer column exactly (no float, no wrap), naming the first offending row."""
    if len(series) == 0:
        return np.zeros(0, dtype=dtype)
    values = series.array
    kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else None
    if kind == "b" or pd.api.types.is_bool_dtype(series.dtype):
        raise TraceError(
            column, 0, repr(bool(series.iloc[0])), "is a bool, not an integer", allowed
        )
    if kind == "f" or pd.api.types.is_float_dtype(series.dtype):
        raise TraceError(
            column,
            0,
            repr(float(series.iloc[0])),
            "is a float column (floats hold integers exactly only up to 2**53, and a missing "
            "value turns an integer column into floats)",
            allowed,
        )
    if kind in ("i", "u") or pd.api.types.is_integer_dtype(series.dtype):
        if kind is None:  # a pandas nullable integer array
            missing = np.flatnonzero(series.isna().to_numpy())
            if missing.size:
                raise TraceError(column, int(missing[0]), "<NA>", "is missing", allowed)
            arr = values.to_numpy(dtype=series.dtype.numpy_dtype)
        else:
            arr = np.asarray(values)
        if arr.dtype.kind == "i":
            bad = np.flatnonzero((arr < lo) | (arr > min(hi, np.iinfo(arr.dtype).max)))
        else:
            bad = np.flatnonzero((arr < max(lo, 0)) | (arr > min(hi, np.iinfo(arr.dtype).max)))
        if bad.size:
            row = int(bad[0])
            value = int(arr[row])
            raise TraceError(
                column, row, _show(value, address), _range_rule(value, lo, hi), allowed
            )
        return arr.astype(dtype, copy=True)
    out = []
    for row, raw in enumerate(series.tolist()):
        value = _parse_int(raw)
        if value is None:
            shown = (
                "<NA>" if raw is None or (isinstance(raw, float) and math.isnan(raw)) else repr(raw)
            )
            raise TraceError(column, row, shown, "is not an integer or a '0x' hex string", allowed)
        if value < lo or value > hi:
            raise TraceError(
                column, row, _show(value, address), _range_rule(value, lo, hi), allowed
            )
        out.append(value)
    return np.array(out, dtype=dtype)


def _is_missing(value: object) -> bool:
    return (
        value is None
        or value is pd.NA
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and value.strip() == "")
    )


def _pasid_column(series: pd.Series) -> pd.arrays.IntegerArray:
    """PASIDs: missing (None, NaN, <NA>, empty text) means a request without PASID."""
    allowed = (
        f"<NA> (no PASID) or an integer in [0, {PASID_MAX:#x}] (PCIe PASIDs are {PASID_BITS} bits)"
    )
    n = len(series)
    if pd.api.types.is_integer_dtype(series.dtype) and not isinstance(series.dtype, np.dtype):
        mask = series.isna().to_numpy()
        raw = series.to_numpy(dtype=np.int64 if series.dtype.kind == "i" else np.uint64, na_value=0)
        bad = np.flatnonzero(~mask & ((raw < 0) | (raw > PASID_MAX)))
        if bad.size:
            row = int(bad[0])
            raise TraceError(
                "pasid",
                row,
                _show(int(raw[row]), True),
                _range_rule(int(raw[row]), 0, PASID_MAX),
                allowed,
            )
        return pd.arrays.IntegerArray(raw.astype(np.uint32), mask.copy())
    values = np.zeros(n, dtype=np.uint32)
    mask = np.zeros(n, dtype=bool)
    for row, raw in enumerate(series.tolist()):
        if _is_missing(raw):
            mask[row] = True
            continue
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)  # pandas turns an int column with NaN into floats; PASIDs fit 2**53
        value = _parse_int(raw)
        if value is None:
            raise TraceError("pasid", row, repr(raw), "is not an integer or <NA>", allowed)
        if not 0 <= value <= PASID_MAX:
            raise TraceError(
                "pasid", row, _show(value, True), _range_rule(value, 0, PASID_MAX), allowed
            )
        values[row] = value
    return pd.arrays.IntegerArray(values, mask)


def _op_codes(series: pd.Series) -> np.ndarray:
    """Op codes 0..3 from op names in any case, ``r``/``w`` aliases or :class:`Op` members."""
    allowed = ", ".join(repr(o) for o in OPS) + " in any case, or 'r'/'w'"
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise TraceError("op", row, "<NA>", "is missing", allowed)
    table = np.empty(len(uniques), dtype=np.int8)
    for i, raw in enumerate(uniques):
        name = raw.strip().lower() if isinstance(raw, str) else None
        name = _OP_ALIASES.get(name, name)
        if name not in OPS:
            row = int(np.flatnonzero(codes == i)[0])
            raise TraceError("op", row, repr(raw), "is not a trace operation", allowed)
        table[i] = OPS.index(name)
    return table[codes]


def _device_column(series: pd.Series) -> pd.Categorical:
    """Device names as a categorical; a categorical input keeps its categories (and their order)."""
    allowed = "a non-empty device name (str), e.g. 'nic0'"
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes, uniques = series.cat.codes.to_numpy(), list(series.cat.categories)
    else:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise TraceError("device", row, "<NA>", "is missing", allowed)
    names = []
    for i, raw in enumerate(uniques):
        if not isinstance(raw, str) or not raw:
            hits = np.flatnonzero(codes == i)
            raise TraceError(
                "device",
                int(hits[0]) if hits.size else None,
                repr(raw),
                "is not a device name",
                allowed,
            )
        names.append(str(raw))
    return pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=str))


# ============================================================================ the table
@dataclass(frozen=True)
class _Columns:
    """The typed columns of a trace before they become a frame (checked by :func:`_check_rules`)."""

    t: np.ndarray
    op: np.ndarray
    device: pd.Categorical
    pasid: pd.arrays.IntegerArray
    iova: np.ndarray
    length: np.ndarray
    pa: np.ndarray
    stage: np.ndarray

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(
            {
                "t": self.t.astype(np.int64, copy=False),
                "op": pd.Categorical.from_codes(
                    self.op.astype(np.int8, copy=False), categories=list(OPS)
                ),
                "device": self.device,
                "pasid": self.pasid,
                "iova": self.iova.astype(np.uint64, copy=False),
                "length": self.length.astype(np.uint64, copy=False),
                "pa": self.pa.astype(np.uint64, copy=False),
                "stage": self.stage.astype(np.uint8, copy=False),
            }
        )
        df.attrs["hex_columns"] = list(_HEX_COLUMNS)
        return df


def _check_rules(c: _Columns) -> None:
    """The schema's cross-column rules, vectorised; the first offending row is named."""
    later = np.flatnonzero(c.t[1:] < c.t[:-1])
    if later.size:
        row = int(later[0]) + 1
        raise TraceError(
            "t",
            row,
            int(c.t[row]),
            f"is earlier than t[{row - 1}] = {int(c.t[row - 1])} (rows must be in time order)",
            "non-decreasing t; sort first, e.g. df.sort_values('t', kind='stable')",
        )
    zero = np.flatnonzero(c.length == 0)
    if zero.size:
        raise TraceError("length", int(zero[0]), 0, "is zero", "a length of at least 1 byte")
    past = np.flatnonzero(c.iova > np.uint64(U64_MAX) - (c.length - np.uint64(1)))
    if past.size:
        row = int(past[0])
        raise TraceError(
            "length",
            row,
            fmt_addr(int(c.length[row])),
            f"with iova {fmt_addr(int(c.iova[row]))} runs past the end of the 64-bit space",
            "iova + length - 1 <= 0xffff_ffff_ffff_ffff",
        )
    bad_stage = np.flatnonzero((c.stage != 1) & (c.stage != 2))
    if bad_stage.size:
        row = int(bad_stage[0])
        raise TraceError("stage", row, int(c.stage[row]), "is not a translation stage", "1 or 2")
    dma = c.op <= _WRITE
    s2_dma = np.flatnonzero(dma & (c.stage == 2))
    if s2_dma.size:
        row = int(s2_dma[0])
        raise TraceError(
            "stage",
            row,
            2,
            f"on a {OPS[c.op[row]]} row (devices issue DMA through stage 1)",
            "stage 2 only on map/unmap rows that change a nest parent; 1 everywhere else",
        )
    stray_pa = np.flatnonzero((c.op != _MAP) & (c.pa != 0))
    if stray_pa.size:
        row = int(stray_pa[0])
        raise TraceError(
            "pa",
            row,
            fmt_addr(int(c.pa[row])),
            f"on a {OPS[c.op[row]]} row",
            "an output address on map rows only; 0 on read/write/unmap rows",
        )


def _coerce(df: pd.DataFrame) -> _Columns:
    extra = [c for c in df.columns if c not in COLUMNS]
    if extra:
        raise TraceError(
            str(extra[0]),
            None,
            repr(extra[0]),
            "is not a trace column",
            f"the columns {', '.join(COLUMNS)} (pa, stage, pasid, device optional)",
        )
    for name in _REQUIRED:
        if name not in df.columns:
            raise TraceError(
                name,
                None,
                "(absent)",
                "is a required column",
                f"a frame with {', '.join(_REQUIRED)}",
            )
    df = df.reset_index(drop=True)
    n = len(df)
    u64 = f"integers or '0x' hex strings in [0x0, {fmt_addr(U64_MAX)}]"
    t = _int_column("t", df["t"], 0, (1 << 63) - 1, np.int64, "integer nanoseconds in [0, 2**63)")
    op = _op_codes(df["op"])
    iova = _int_column("iova", df["iova"], 0, U64_MAX, np.uint64, u64, address=True)
    length = _int_column(
        "length", df["length"], 1, U64_MAX, np.uint64, "a positive byte count: " + u64, address=True
    )
    if "pa" in df.columns:
        pa = _int_column("pa", df["pa"], 0, U64_MAX, np.uint64, u64, address=True)
    else:
        pa = np.zeros(n, dtype=np.uint64)
    if "stage" in df.columns:
        stage = _int_column("stage", df["stage"], 1, 2, np.uint8, "1 or 2")
    else:
        stage = np.ones(n, dtype=np.uint8)
    if "device" in df.columns:
        device = _device_column(df["device"])
    else:
        names = [_DEFAULT_DEVICE] if n else []
        device = pd.Categorical.from_codes(
            np.zeros(n, dtype=np.int8), categories=pd.Index(names, dtype=str)
        )
    if "pasid" in df.columns:
        pasid = _pasid_column(df["pasid"])
    else:
        pasid = pd.arrays.IntegerArray(np.zeros(n, dtype=np.uint32), np.ones(n, dtype=bool))
    cols = _Columns(t, op, device, pasid, iova, length, pa, stage)
    _check_rules(cols)
    return cols


# ============================================================================ Trace
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def _format(path: Path) -> str:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: unknown trace file suffix {path.suffix!r}; allowed: {', '.join(_SUFFIXES)}"
        )
    return fmt


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
        return cls(_coerce(df).frame(), name)

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any] | Sequence[Any]], *, name: str = ""
    ) -> Trace:
        """Build from dicts (keyed by column) or tuples in :data:`COLUMNS` order.

        Optional fields absent from a record (a short tuple, a dict without the key) take the
        defaults of :meth:`from_frame`: ``pa`` 0, ``stage`` 1, ``pasid`` <NA>, ``device`` "dev0".
        """
        defaults = {"device": _DEFAULT_DEVICE, "pasid": None, "pa": 0, "stage": 1}
        table: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                rec = list(rec)
                if not len(_REQUIRED) <= len(rec) <= len(COLUMNS):
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
                        f"records with {', '.join(_REQUIRED)}",
                    )
        return cls.from_frame(
            pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in table.items()}), name=name
        )

    @classmethod
    def _from_columns(cls, cols: _Columns, name: str) -> Trace:
        _check_rules(cols)
        return cls(cols.frame(), name)

    # -- files -----------------------------------------------------------------------------
    @classmethod
    def read(cls, path: str | Path, *, name: str | None = None) -> Trace:
        """Load a ``.parquet``/``.pq`` (pyarrow) or ``.csv`` trace written by :meth:`save`.

        CSV addresses may be ``0x`` hex or decimal; an empty ``pasid`` is <NA>.
        """
        path = Path(path)
        fmt = _format(path)
        if fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in COLUMNS if c not in df.columns]
        extra = [c for c in df.columns if c not in COLUMNS]
        if missing or extra:
            what = f"lacks column {missing[0]!r}" if missing else f"has unknown column {extra[0]!r}"
            raise ValueError(
                f"{path}: trace file {what}; a trace file has the columns {', '.join(COLUMNS)}"
            )
        try:
            return cls.from_frame(df[list(COLUMNS)], name=path.stem if name is None else name)
        except TraceError as err:
            err.args = (f"{path}: {err.args[0]}",)
            raise

    def save(self, path: str | Path) -> Path:
        """Write the trace; Parquet keeps dtypes, CSV writes ``iova``/``pa`` as ``0x`` hex."""
        path = Path(path)
        if _format(path) == "parquet":
            self.frame.to_parquet(path, index=False)
        else:
            out = self.frame.copy()
            for col in _HEX_COLUMNS:
                out[col] = [f"{v:#x}" for v in out[col].tolist()]
            out.to_csv(path, index=False, na_rep="")
        return path

    # -- summaries ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    @property
    def _dma_mask(self) -> np.ndarray:
        return self.frame["op"].cat.codes.to_numpy() <= _WRITE

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
                "reads": int((codes == _READ).sum()),
                "writes": int((codes == _WRITE).sum()),
                "maps": int((codes == _MAP).sum()),
                "unmaps": int((codes == _UNMAP).sum()),
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
        out.attrs["hex_columns"] = list(_HEX_COLUMNS)
        return out

    def unmapped_accesses(self) -> pd.DataFrame:
        """The DMA rows that touch an IOVA not mapped at that moment (see :func:`check_mapped`)."""
        return check_mapped(self)

    def __repr__(self) -> str:
        label = f"{self.name!r}: " if self.name else ""
        return (
            f"Trace({label}{len(self)} rows, {self.n_dma} DMA accesses, "
            f"{_human_bytes(self.bytes)} by DMA over {self.duration_ns} ns, "
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


# ============================================================================ checker
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
        if op == _MAP:
            space.add(iova, last)
        elif op == _UNMAP:
            space.remove(iova, last)
        elif not space.covers(iova, last):
            bad.append(row)
    out = df.iloc[bad]
    out.attrs["hex_columns"] = list(_HEX_COLUMNS)
    return out


# ============================================================================ generators
def _param_error(name: str, value: object, rule: str, allowed: str) -> ValueError:
    return ValueError(f"{name} = {value!r}: {rule}; allowed: {allowed}")


def _check_int(name: str, value: object, lo: int, hi: int = U64_MAX, *, multiple: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _param_error(name, value, "is not an integer", f"an int in [{lo}, {hi:#x}]")
    value = int(value)
    if not lo <= value <= hi:
        raise _param_error(name, value, _range_rule(value, lo, hi), f"an int in [{lo}, {hi:#x}]")
    if value % multiple:
        raise _param_error(
            name, value, f"is not a multiple of {multiple:#x}", f"multiples of {multiple:#x}"
        )
    return value


#: Entries per deferred-flush queue (drivers/iommu/dma-iommu.c ``IOVA_DEFAULT_FQ_SIZE``).
IOVA_FQ_SIZE = 256


def _check_policy(value: object) -> int | None:
    """``"strict"`` -> None (IOVAs reused at once), ``"lazy"`` -> the flush queue's size."""
    if value == "strict":
        return None
    if value == "lazy":
        return IOVA_FQ_SIZE
    raise _param_error("policy", value, "is not a flush policy", "'strict' or 'lazy'")


def _check_rate(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not (math.isfinite(value) and value > 0)
    ):
        raise _param_error(name, value, "is not a positive finite number", "a number > 0")
    return float(value)


def _check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise _param_error(name, value, "is not a fraction", "a number in [0, 1]")
    return float(value)


def _check_span(name: str, value: object, lo: int, hi: int) -> tuple[int, int]:
    """An int or an inclusive (min, max) tuple, both within [lo, hi]."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise _param_error(
                name, value, "is not an int or a (min, max) pair", f"ints in [{lo}, {hi}]"
            )
        a = _check_int(f"{name}[0]", value[0], lo, hi)
        b = _check_int(f"{name}[1]", value[1], lo, hi)
        if a > b:
            raise _param_error(name, value, "has min > max", "(min, max) with min <= max")
        return a, b
    v = _check_int(name, value, lo, hi)
    return v, v


def _check_target(device: object, pasid: object) -> tuple[str, int | None]:
    if not isinstance(device, str) or not device:
        raise _param_error(
            "device", device, "is not a device name", "a non-empty str such as 'nic0'"
        )
    if pasid is not None:
        pasid = _check_int("pasid", pasid, 0, PASID_MAX)
    return device, pasid


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


def _columns(
    t: np.ndarray,
    op: np.ndarray,
    iova: np.ndarray,
    length: np.ndarray,
    pa: np.ndarray,
    device: str,
    pasid: int | None,
) -> _Columns:
    n = len(t)
    pas = pd.arrays.IntegerArray(
        np.full(n, 0 if pasid is None else pasid, dtype=np.uint32),
        np.full(n, pasid is None, dtype=bool),
    )
    dev = pd.Categorical.from_codes(
        np.zeros(n, dtype=np.int8), categories=pd.Index([device], dtype=str)
    )
    return _Columns(
        np.asarray(t, dtype=np.int64),
        np.asarray(op, dtype=np.int8),
        dev,
        pas,
        np.asarray(iova, dtype=np.uint64),
        np.asarray(length, dtype=np.uint64),
        np.asarray(pa, dtype=np.uint64),
        np.ones(n, dtype=np.uint8),
    )


def _static_maps(regions: Sequence[tuple[int, int, int]]) -> dict[str, np.ndarray]:
    """Map rows at t=0 for (iova, pa, length) regions set up once (coherent / page_pool memory)."""
    iova, pa, length = (np.array([r[i] for r in regions], dtype=np.uint64) for i in range(3))
    k = len(regions)
    return {
        "t": np.zeros(k, np.int64),
        "op": np.full(k, _MAP, np.int8),
        "iova": iova,
        "length": length,
        "pa": pa,
    }


def _concat(*parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for key in ("t", "op", "iova", "length", "pa"):
        out[key] = np.concatenate(
            [p[key] if key in p else np.zeros(len(p["t"]), np.uint64) for p in parts]
        )
    return out


def _build(
    parts: Sequence[Mapping[str, np.ndarray]], device: str, pasid: int | None, name: str
) -> Trace:
    c = _concat(*parts)
    return Trace._from_columns(
        _columns(c["t"], c["op"], c["iova"], c["length"], c["pa"], device, pasid), name
    )


@dataclass
class _IovaAllocator:
    """The DMA API's IOVA allocator, reduced to the behaviour a trace shows.

    * Sizes are in granules; fewer than 32 (``2**(IOVA_RANGE_CACHE_MAX_SIZE - 1)``) are rounded
      up to a power of two, as ``iommu_dma_alloc_iova`` does so that freed ranges fit the caches.
    * Freed ranges go onto a LIFO stack per rounded size and are handed back most recent first,
      as ``iova_magazine_push``/``iova_magazine_pop`` do for the per-CPU ``iova_rcache``. (The
      kernel caches only orders below IOVA_RANGE_CACHE_MAX_SIZE and returns larger ranges to
      its rbtree; reusing those LIFO too is a simplification.)
    * A fresh range is naturally aligned to its power-of-two size (``alloc_iova`` with
      ``size_aligned``). The kernel searches top-down from the DMA limit; this allocator hands
      out fresh ranges bottom-up from ``next_free`` so that IOVAs stay next to the ``base`` the
      caller chose. Only the addresses differ, not the reuse pattern.
    """

    next_free: int
    granule: int = GRANULE
    #: lazy invalidation: freed IOVAs wait in a flush queue of this many entries (None: strict)
    flush_queue: int | None = None
    _stacks: dict[int, list[int]] = field(default_factory=dict)
    _queued: list[tuple[int, int]] = field(default_factory=list)

    def _pages(self, size: int) -> int:
        pages = -(-size // self.granule)
        if pages < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1):
            pages = 1 << (pages - 1).bit_length()
        return pages

    def alloc(self, size: int) -> int:
        pages = self._pages(size)
        stack = self._stacks.get(pages)
        if stack:
            return stack.pop()
        align = (1 << (pages - 1).bit_length()) * self.granule
        start = _round_up(self.next_free, align)
        self.next_free = start + pages * self.granule
        return start

    def free(self, iova: int, size: int) -> None:
        """Give a range back: at once (strict), or through the flush queue (lazy).

        Lazy mode follows ``queue_iova``: a range is queued, and when the queue is full the
        domain is flushed and every queued range goes back to the allocator
        (``fq_flush_iotlb`` then ``fq_ring_free``), so an IOVA is never handed out again
        before the flush that invalidates its old translation. The 10 ms timer flush is not
        modelled here: under the line-rate traffic these generators make, the queue fills
        first; a slower trace just allocates fresh IOVAs meanwhile.
        """
        if self.flush_queue is None:
            self._stacks.setdefault(self._pages(size), []).append(iova)
            return
        if len(self._queued) >= self.flush_queue:
            for q_iova, q_size in self._queued:
                self._stacks.setdefault(self._pages(q_size), []).append(q_iova)
            self._queued.clear()
        self._queued.append((iova, size))


def _page_pool(rng: np.random.Generator, pool: int) -> np.ndarray:
    """A seeded random order over ``pool`` physical chunks, handed out cyclically.

    The caller sizes the pool so that the chunks live at one time always lie within fewer than
    ``pool`` consecutive allocations: a live buffer never shares memory with another, while PAs
    look scattered as the buddy allocator's free lists make them.
    """
    return rng.permutation(pool).astype(np.uint64)


#: Ethernet per-frame overhead on the wire that the host never sees: 7 B preamble + 1 B start
#: delimiter + 12 B inter-frame gap + 4 B FCS (IEEE 802.3), with ``packet`` the frame without FCS.
ETHERNET_OVERHEAD = 24
#: An RX descriptor is 16 bytes (e.g. Intel's advanced RX descriptor, ixgbe ``union
#: ixgbe_adv_rx_desc``: two 64-bit words, read by the NIC and written back in place).
RX_DESC_BYTES = 16
#: NAPI's default poll budget (``NAPI_POLL_WEIGHT``, include/linux/netdevice.h): a driver
#: refills its ring after at most this many packets per poll.
NAPI_POLL_WEIGHT = 64


def nic_rx_ring(
    packets: int,
    *,
    ring: int = 512,
    buffer: int = 2048,
    packet: int | tuple[int, int] = 1500,
    gbps: float = 10.0,
    base: int = 0x1_0000_0000,
    pa: int = 0x4000_0000,
    recycle: bool = True,
    budget: int = NAPI_POLL_WEIGHT,
    policy: str = "strict",
    device: str = "nic0",
    pasid: int | None = None,
    seed: int = 0,
) -> Trace:
    """A NIC receive ring: per packet, read the RX descriptor, write the data, write it back.

    Packets arrive back to back at line rate: packet ``k`` starts ``(size + 24) * 8 / gbps`` ns
    after packet ``k - 1`` (24 bytes of Ethernet preamble, inter-frame gap and FCS). The device
    reads the slot's 16-byte descriptor when the packet starts, and writes the packet into the
    slot's buffer and the descriptor back when the packet has been received. Slots are used
    round robin, ``slot = k % ring``. The descriptor ring sits at ``base`` (coherent memory,
    mapped once at t=0, ``dma_alloc_coherent``).

    ``recycle=True`` models page_pool: the buffer area is mapped once at t=0 (PA contiguous
    after the ring's) and every slot keeps its buffer at ``base + ring area + slot * buffer``.

    ``recycle=False`` models the streaming DMA API (``dma_map_single``/``dma_unmap_single``):
    each slot's buffer gets its own granule-aligned IOVA range (``iommu_dma_map_page`` maps whole
    4 KiB granules), initially mapped at t=0. After each NAPI poll of ``min(budget, ring)``
    packets the driver unmaps those buffers (one unmap row each) and maps fresh pages for the same
    slots (one map row each, a PA from a seeded page pool); the IOVAs come back from the LIFO
    rcache, so each refill reuses the just-freed IOVAs in reverse order.

    Parameters
    ----------
    packets : number of packets received.
    ring : RX descriptors in the ring (slots).
    buffer : bytes per receive buffer.
    packet : packet size in bytes, or an inclusive (min, max) drawn uniformly per packet.
    gbps : line rate in Gbit/s.
    base, pa : IOVA and PA of the descriptor ring (4 KiB aligned).
    budget : packets per NAPI poll between refills (recycle=False).
    policy : "strict" or "lazy" (recycle=False): with "lazy" a freed IOVA is handed out again
        only after the flush queue (256 entries, ``IOVA_DEFAULT_FQ_SIZE``) has been flushed, as
        under ``iommu.strict=0``; replay such a trace with ``policy="lazy"``.
    """
    packets = _check_int("packets", packets, 0, 1 << 40)
    fq = _check_policy(policy)
    ring = _check_int("ring", ring, 1, 1 << 24)
    buffer = _check_int("buffer", buffer, 1, 1 << 32)
    lo, hi = _check_span("packet", packet, 1, 1 << 32)
    if hi > buffer:
        raise _param_error(
            "packet",
            packet,
            f"is larger than the receive buffer ({buffer} bytes)",
            f"sizes <= buffer = {buffer}",
        )
    rate = _check_rate("gbps", gbps)
    base = _check_int("base", base, 0, U64_MAX, multiple=GRANULE)
    pa = _check_int("pa", pa, 0, U64_MAX, multiple=GRANULE)
    budget = _check_int("budget", budget, 1, 1 << 24)
    device, pasid = _check_target(device, pasid)
    if not isinstance(recycle, bool):
        raise _param_error(
            "recycle", recycle, "is not a bool", "True (page_pool) or False (map per packet)"
        )
    rng = np.random.default_rng(seed)

    desc_area = _round_up(ring * RX_DESC_BYTES, GRANULE)
    buf_base, buf_pa = base + desc_area, pa + desc_area
    size = np.full(packets, lo, np.int64) if lo == hi else rng.integers(lo, hi + 1, packets)
    gap = (size + ETHERNET_OVERHEAD) * 8.0 / rate
    start = np.concatenate([[0.0], np.cumsum(gap)[:-1]]) if packets else np.zeros(0)
    t_start = np.floor(start).astype(np.int64)
    t_done = np.floor(start + size * 8.0 / rate).astype(np.int64)
    slot = (np.arange(packets) % ring).astype(np.uint64)
    desc = np.uint64(base) + slot * np.uint64(RX_DESC_BYTES)

    if recycle:
        maps = _static_maps(
            [(base, pa, desc_area), (buf_base, buf_pa, _round_up(ring * buffer, GRANULE))]
        )
        data_iova = np.uint64(buf_base) + slot * np.uint64(buffer)
        dma = _rx_rows(t_start, t_done, desc, data_iova, size)
        name = f"nic_rx_ring: {packets} packets, {ring}-slot ring, page_pool"
        return _build([maps, dma], device, pasid, name)
    return _rx_streaming(
        t_start,
        t_done,
        desc,
        size,
        ring=ring,
        buffer=buffer,
        base=base,
        pa=pa,
        desc_area=desc_area,
        batch=min(budget, ring),
        rng=rng,
        device=device,
        pasid=pasid,
        flush_queue=fq,
    )


def _rx_rows(t_start, t_done, desc, data_iova, size) -> dict[str, np.ndarray]:
    """Three rows per packet: descriptor read, data write, descriptor write-back."""
    n = len(t_start)
    t = np.stack([t_start, t_done, t_done], axis=1).ravel()
    op = np.tile(np.array([_READ, _WRITE, _WRITE], np.int8), n)
    iova = np.stack([desc, data_iova, desc], axis=1).ravel()
    desc_len = np.full(n, RX_DESC_BYTES, np.uint64)
    length = np.stack([desc_len, size.astype(np.uint64), desc_len], axis=1).ravel()
    return {"t": t, "op": op, "iova": iova, "length": length}


def _rx_streaming(
    t_start, t_done, desc, size, *, ring, buffer, base, pa, desc_area, batch, rng, device, pasid,
    flush_queue=None,
) -> Trace:
    """nic_rx_ring(recycle=False): per-poll unmap + remap of the used buffers (see its doc)."""
    n = len(t_start)
    buf_len = _round_up(buffer, GRANULE)
    alloc = _IovaAllocator(next_free=base + desc_area, flush_queue=flush_queue)
    slot_iova = np.array([alloc.alloc(buf_len) for _ in range(ring)], dtype=np.uint64)
    pool = 4 * ring  # live buffers span < ring + batch <= 2 * ring consecutive allocations
    pages = _page_pool(rng, pool)
    pa_base = np.uint64(pa + desc_area)

    def chunk_pa(j: np.ndarray) -> np.ndarray:
        return pa_base + pages[j % pool] * np.uint64(buf_len)

    setup = _static_maps([(base, pa, desc_area)])
    first = {
        "t": np.zeros(ring, np.int64),
        "op": np.full(ring, _MAP, np.int8),
        "iova": slot_iova.copy(),
        "length": np.full(ring, buf_len, np.uint64),
        "pa": chunk_pa(np.arange(ring)),
    }
    data_iova = np.empty(n, np.uint64)
    new_iova = np.empty(n, np.uint64)
    for p0 in range(0, n, batch):
        slots = np.arange(p0, min(p0 + batch, n)) % ring
        data_iova[p0 : p0 + len(slots)] = slot_iova[slots]
        for iova in slot_iova[slots].tolist():
            alloc.free(iova, buf_len)
        fresh = [alloc.alloc(buf_len) for _ in slots]
        slot_iova[slots] = fresh
        new_iova[p0 : p0 + len(slots)] = fresh
    dma = _rx_rows(t_start, t_done, desc, data_iova, size)
    # Row positions: per poll of b packets, 3b DMA rows, then b unmaps, then b maps.
    p = np.arange(n)
    p0 = (p // batch) * batch
    b = np.minimum(batch, n - p0)
    block = 5 * p0
    dma_pos = (block + 3 * (p - p0))[:, None] + np.arange(3)
    unmap_pos = block + 3 * b + (p - p0)
    map_pos = block + 4 * b + (p - p0)
    t_poll = t_done[np.minimum(p0 + b, n) - 1]
    total = 5 * n
    rows = {
        "t": np.empty(total, np.int64),
        "op": np.empty(total, np.int8),
        "iova": np.empty(total, np.uint64),
        "length": np.empty(total, np.uint64),
        "pa": np.zeros(total, np.uint64),
    }
    for key in ("t", "op", "iova", "length"):
        rows[key][dma_pos.ravel()] = dma[key]
    rows["t"][unmap_pos], rows["op"][unmap_pos] = t_poll, _UNMAP
    rows["iova"][unmap_pos], rows["length"][unmap_pos] = data_iova, buf_len
    rows["t"][map_pos], rows["op"][map_pos] = t_poll, _MAP
    rows["iova"][map_pos], rows["length"][map_pos] = new_iova, buf_len
    rows["pa"][map_pos] = chunk_pa(ring + p)
    name = f"nic_rx_ring: {n} packets, {ring}-slot ring, map per packet"
    return _build([setup, first, rows], device, pasid, name)


#: NVMe queue entry and descriptor sizes (NVMe base spec; Linux ``struct nvme_command`` is 64
#: bytes, ``struct nvme_completion`` 16, ``struct nvme_sgl_desc`` 16).
NVME_SQE_BYTES = 64
NVME_CQE_BYTES = 16
NVME_SGL_DESC_BYTES = 16


def storage_sg(
    requests: int,
    *,
    queue_depth: int = 32,
    segments: int | tuple[int, int] = (1, 32),
    segment: int = 4096,
    read_fraction: float = 0.7,
    iops: float = 500_000,
    base: int = 0x2_0000_0000,
    pa: int = 0x8000_0000,
    policy: str = "strict",
    device: str = "nvme0",
    pasid: int | None = None,
    seed: int = 0,
) -> Trace:
    """An NVMe-like I/O queue whose data buffers are scatter-gather lists mapped per request.

    Static, mapped at t=0 with PAs contiguous from ``pa``: the submission queue
    (``queue_depth`` 64-byte commands), the completion queue (16-byte entries) and one SGL page
    per queue slot. Per request, when it is submitted: the driver maps the data with
    ``dma_map_sg`` -- ``iommu_dma_map_sg`` allocates ONE IOVA range for the whole list and
    maps each segment at consecutive IOVAs, so there is one map row per segment (contiguous
    IOVAs, scattered PAs from a seeded page pool); the device reads the 64-byte command, reads
    the SGL (16 bytes per descriptor) when there is more than one segment (nvme_pci_setup_sgls
    puts a single segment inline in the command), then DMAs each segment. When it completes:
    the device writes the 16-byte completion entry and the driver unmaps the whole range with
    ONE unmap row (``iommu_dma_unmap_sg`` unmaps the single contiguous IOVA allocation).

    dma-iommu may merge IOVA-contiguous segments into one DMA segment (``__finalise_sg``); this
    generator keeps the unmerged list the block layer built, the worst case for the SGL read.

    Queueing: request ``k`` is submitted at ``k / iops`` seconds into SQ slot ``k % queue_depth``
    and completes in order ``queue_depth`` submissions later (Little's law: latency =
    ``queue_depth / iops``), just before request ``k + queue_depth`` is submitted, whose
    allocation therefore gets the range just freed when the sizes match (LIFO rcache).

    Directions are named by what the device does: a block READ (fraction ``read_fraction`` of
    the requests, the usual read/write mix of a storage benchmark) makes the device WRITE host
    memory; a block WRITE makes it READ.

    Parameters
    ----------
    requests : number of I/O requests.
    queue_depth : requests outstanding (and queue entries).
    segments : segments per request, or an inclusive (min, max) drawn uniformly; at most 256
        (one 4 KiB SGL page of 16-byte descriptors).
    segment : bytes per segment, a positive multiple of the 4 KiB granule.
    iops : request rate per second.
    base, pa : IOVA and PA of the queues (4 KiB aligned); data IOVAs follow the static area.
    policy : "strict" or "lazy": with "lazy" a freed IOVA range is reused only after the flush
        queue has been flushed (see :func:`nic_rx_ring`).
    """
    requests = _check_int("requests", requests, 0, 1 << 40)
    fq = _check_policy(policy)
    queue_depth = _check_int("queue_depth", queue_depth, 1, 1 << 16)
    seg_lo, seg_hi = _check_span("segments", segments, 1, GRANULE // NVME_SGL_DESC_BYTES)
    segment = _check_int("segment", segment, GRANULE, 1 << 32, multiple=GRANULE)
    read_fraction = _check_fraction("read_fraction", read_fraction)
    rate = _check_rate("iops", iops)
    base = _check_int("base", base, 0, U64_MAX, multiple=GRANULE)
    pa = _check_int("pa", pa, 0, U64_MAX, multiple=GRANULE)
    device, pasid = _check_target(device, pasid)
    rng = np.random.default_rng(seed)

    sq_len = _round_up(queue_depth * NVME_SQE_BYTES, GRANULE)
    cq_len = _round_up(queue_depth * NVME_CQE_BYTES, GRANULE)
    sgl_len = queue_depth * GRANULE
    sq, cq, sgl = base, base + sq_len, base + sq_len + cq_len
    static = sq_len + cq_len + sgl_len
    maps = _static_maps(
        [(sq, pa, sq_len), (cq, pa + sq_len, cq_len), (sgl, pa + sq_len + cq_len, sgl_len)]
    )

    n = requests
    nseg = np.full(n, seg_lo, np.int64) if seg_lo == seg_hi else rng.integers(seg_lo, seg_hi + 1, n)
    disk_read = rng.random(n) < read_fraction
    data_len = nseg * segment

    alloc = _IovaAllocator(next_free=base + static, flush_queue=fq)
    lens = data_len.tolist()
    start = np.empty(n, np.uint64)
    starts: list[int] = []
    for k in range(n):
        if k >= queue_depth:
            alloc.free(starts[k - queue_depth], lens[k - queue_depth])
        starts.append(alloc.alloc(lens[k]))
    start[:] = starts

    # Event order: the first queue_depth submissions, then (completion k - qd, submission k)
    # pairs, then the remaining completions.
    k = np.arange(n)
    m = max(n - queue_depth, 0)
    first = min(n, queue_depth)
    e_sub = np.where(k < first, k, queue_depth + 2 * (k - queue_depth) + 1)
    e_comp = np.where(k < m, queue_depth + 2 * k, first + 2 * m + (k - m))
    t_sub = np.floor(k * 1e9 / rate).astype(np.int64)
    t_comp = np.floor((k + queue_depth) * 1e9 / rate).astype(np.int64)
    slot = (k % queue_depth).astype(np.uint64)

    # One row per (request, segment) for the maps and the data.
    req = np.repeat(k, nseg)
    seg = np.arange(req.size) - np.repeat(np.cumsum(nseg) - nseg, nseg)
    seg_iova = start[req] + seg.astype(np.uint64) * np.uint64(segment)
    pool = 4 * queue_depth * seg_hi  # live segments span < queue_depth * max segments allocations
    pages = _page_pool(rng, pool)
    seg_pa = np.uint64(_round_up(pa + static, GRANULE)) + pages[
        np.arange(req.size) % pool
    ] * np.uint64(segment)
    listed = nseg > 1
    data_op = np.where(disk_read, _WRITE, _READ).astype(np.int8)

    width = seg_hi + 1
    parts = [
        # (event, rank within the event, index) keys, then the row's columns
        (e_sub[req], 0, seg, t_sub[req], _MAP, seg_iova, segment, seg_pa),
        (
            e_sub,
            1,
            0,
            t_sub,
            _READ,
            np.uint64(sq) + slot * np.uint64(NVME_SQE_BYTES),
            NVME_SQE_BYTES,
            0,
        ),
        (
            e_sub[listed],
            2,
            0,
            t_sub[listed],
            _READ,
            np.uint64(sgl) + slot[listed] * np.uint64(GRANULE),
            nseg[listed] * NVME_SGL_DESC_BYTES,
            0,
        ),
        (e_sub[req], 3, seg, t_sub[req], data_op[req], seg_iova, segment, 0),
        (
            e_comp,
            0,
            0,
            t_comp,
            _WRITE,
            np.uint64(cq) + slot * np.uint64(NVME_CQE_BYTES),
            NVME_CQE_BYTES,
            0,
        ),
        (e_comp, 1, 0, t_comp, _UNMAP, start, data_len, 0),
    ]
    keys, cols = [], {c: [] for c in ("t", "op", "iova", "length", "pa")}
    for event, rank, index, t, op, iova, length, out_pa in parts:
        size = len(event)
        keys.append((event.astype(np.int64) * 4 + rank) * width + np.broadcast_to(index, size))
        for c, v, dt in (
            ("t", t, np.int64),
            ("op", op, np.int8),
            ("iova", iova, np.uint64),
            ("length", length, np.uint64),
            ("pa", out_pa, np.uint64),
        ):
            cols[c].append(np.broadcast_to(np.asarray(v).astype(dt), size))
    order = np.argsort(np.concatenate(keys), kind="stable")
    rows = {c: np.concatenate(v)[order] for c, v in cols.items()}
    segs = f"{seg_lo}-{seg_hi} x {fmt_size(segment)} segments"
    name = f"storage_sg: {n} requests, QD {queue_depth}, {segs}"
    return _build([maps, rows], device, pasid, name)


def streaming(
    nbytes: int,
    *,
    chunk: int = 256,
    op: str = "read",
    gbps: float = 16.0,
    base: int = 0x3_0000_0000,
    pa: int = 0x1_0000_0000,
    device: str = "dma0",
    pasid: int | None = None,
) -> Trace:
    """One buffer mapped once, then streamed through sequentially in ``chunk``-byte DMAs.

    The single map row covers ``nbytes`` rounded up to the 4 KiB granule. The defaults place
    ``base`` and ``pa`` 1 GiB aligned, so a page-size policy that uses 2 MiB or 1 GiB pages can
    (``iommu_pgsize`` picks the largest page that IOVA, PA and size all allow). Chunk ``i``
    starts at ``i * chunk * 8 / gbps`` ns; the last chunk may be short.
    """
    nbytes = _check_int("nbytes", nbytes, 1, 1 << 48)
    chunk = _check_int("chunk", chunk, 1, 1 << 32)
    if not isinstance(op, str) or _OP_ALIASES.get(op.lower(), op.lower()) not in ("read", "write"):
        raise _param_error("op", op, "is not a DMA direction", "'read' or 'write'")
    code = OPS.index(_OP_ALIASES.get(op.lower(), op.lower()))
    rate = _check_rate("gbps", gbps)
    base = _check_int("base", base, 0, U64_MAX, multiple=GRANULE)
    pa = _check_int("pa", pa, 0, U64_MAX, multiple=GRANULE)
    device, pasid = _check_target(device, pasid)
    map_len = _round_up(nbytes, GRANULE)
    if base + map_len - 1 > U64_MAX or pa + map_len - 1 > U64_MAX:
        raise _param_error(
            "nbytes",
            nbytes,
            "runs past the end of the 64-bit space from base/pa",
            "a smaller buffer",
        )
    maps = _static_maps([(base, pa, map_len)])
    count = -(-nbytes // chunk)
    i = np.arange(count, dtype=np.uint64)
    length = np.full(count, chunk, np.uint64)
    length[-1] = nbytes - (count - 1) * chunk
    dma = {
        "t": np.floor(np.arange(count) * (chunk * 8.0 / rate)).astype(np.int64),
        "op": np.full(count, code, np.int8),
        "iova": np.uint64(base) + i * np.uint64(chunk),
        "length": length,
    }
    return _build(
        [maps, dma], device, pasid, f"streaming: {fmt_size(nbytes)} in {chunk}-byte {OPS[code]}s"
    )


def random_working_set(
    accesses: int,
    *,
    working_set: int = 64 << 20,
    size: int = 64,
    read_fraction: float = 0.5,
    skew: float = 0.0,
    gbps: float = 16.0,
    base: int = 0x4_0000_0000,
    pa: int = 0x2_0000_0000,
    device: str = "acc0",
    pasid: int | None = None,
    seed: int = 0,
) -> Trace:
    """Accesses of ``size`` bytes at random size-aligned offsets in one mapped working set.

    What is drawn, per access: a *block* -- the working set cut into 4 KiB pages when ``size``
    divides 4096, else into ``size``-byte slots -- then a uniform size-aligned slot inside the
    block, and read with probability ``read_fraction``. ``skew = 0`` draws blocks
    uniformly; ``skew = s > 0`` draws block of popularity rank ``r`` (1-based) with probability
    proportional to ``r ** -s`` (a Zipf law truncated to the working set), the ranks being a
    seeded random permutation of the blocks so that hot pages are scattered in the IOVA space.
    Access ``i`` is issued at ``i * size * 8 / gbps`` ns.
    """
    accesses = _check_int("accesses", accesses, 0, 1 << 40)
    size = _check_int("size", size, 1, 1 << 32)
    working_set = _check_int("working_set", working_set, GRANULE, 1 << 48, multiple=GRANULE)
    if working_set % size:
        raise _param_error(
            "working_set",
            working_set,
            f"is not a multiple of size = {size}",
            f"a multiple of {size} (and of 4096)",
        )
    read_fraction = _check_fraction("read_fraction", read_fraction)
    if (
        isinstance(skew, bool)
        or not isinstance(skew, (int, float))
        or not (math.isfinite(skew) and skew >= 0)
    ):
        raise _param_error(
            "skew", skew, "is not a non-negative number", "0 (uniform) or a Zipf exponent > 0"
        )
    rate = _check_rate("gbps", gbps)
    base = _check_int("base", base, 0, U64_MAX - working_set + 1, multiple=GRANULE)
    pa = _check_int("pa", pa, 0, U64_MAX - working_set + 1, multiple=GRANULE)
    device, pasid = _check_target(device, pasid)
    rng = np.random.default_rng(seed)

    block = GRANULE if GRANULE % size == 0 else size
    blocks = working_set // block
    slots_per_block = block // size
    if skew == 0:
        chosen = rng.integers(0, blocks, accesses)
    else:
        weights = np.arange(1, blocks + 1, dtype=np.float64) ** -float(skew)
        rank = rng.choice(blocks, size=accesses, p=weights / weights.sum())
        chosen = rng.permutation(blocks)[rank]
    within = rng.integers(0, slots_per_block, accesses)
    offset = chosen.astype(np.uint64) * np.uint64(block) + within.astype(np.uint64) * np.uint64(
        size
    )
    op = np.where(rng.random(accesses) < read_fraction, _READ, _WRITE).astype(np.int8)
    maps = _static_maps([(base, pa, working_set)])
    dma = {
        "t": np.floor(np.arange(accesses) * (size * 8.0 / rate)).astype(np.int64),
        "op": op,
        "iova": np.uint64(base) + offset,
        "length": np.full(accesses, size, np.uint64),
    }
    name = f"random_working_set: {accesses} x {size} B over {fmt_size(working_set)}, skew {skew:g}"
    return _build([maps, dma], device, pasid, name)
