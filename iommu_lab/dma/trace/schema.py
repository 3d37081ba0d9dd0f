"""The DMA trace schema: its columns, their dtypes, and the validation that coerces a frame to it.

``Trace.frame`` has exactly the columns of :data:`COLUMNS` (the table in
:mod:`iommu_lab.dma.trace`). :func:`coerce` takes any frame a user, a file or a generator gives
and returns typed columns, or raises :class:`TraceError` naming the column, the row, the value,
the rule it broke and what is allowed. Nothing here reads files or makes traffic.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from iommu_lab.core.ranges import U64_MAX, fmt_addr

__all__ = ["COLUMNS", "Columns", "DEFAULT_DEVICE", "HEX_COLUMNS", "OPS", "OP_ALIASES", "OP_MAP", "OP_READ", "OP_UNMAP",
           "OP_WRITE", "Op", "PASID_BITS", "PASID_MAX", "REQUIRED", "TraceError", "check_rules", "coerce", "range_rule"]

#: The columns of ``Trace.frame``, in order.
COLUMNS = ("t", "op", "device", "pasid", "iova", "length", "pa", "stage")
#: The categories of the ``op`` column, in order (their codes are 0..3).
OPS = ("read", "write", "map", "unmap")

#: PCIe PASID width: the PASID TLP prefix carries a 20-bit PASID (PCIe base spec, "PASID TLP
#: Prefix"; QEMU's PCI_EXT_CAP_PASID_MAX_WIDTH and VT-d's MAX_NR_PASID_BITS are both 20).
PASID_BITS = 20
PASID_MAX = (1 << PASID_BITS) - 1

#: The ``op`` codes, in :data:`OPS` order.
OP_READ, OP_WRITE, OP_MAP, OP_UNMAP = range(4)
#: Short spellings of the DMA directions a frame may use.
OP_ALIASES = {"r": "read", "w": "write"}
#: The columns a frame must have; the others take defaults.
REQUIRED = ("t", "op", "iova", "length")
DEFAULT_DEVICE = "dev0"
#: The address columns, shown in hex.
HEX_COLUMNS = ("iova", "pa")


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


def range_rule(value: int, lo: int, hi: int) -> str:
    if value < 0:
        return "is negative"
    if value < lo:
        return "is zero" if value == 0 else f"is below the minimum {lo}"
    return f"exceeds the maximum {fmt_addr(hi)}"



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
                column, row, _show(value, address), range_rule(value, lo, hi), allowed
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
                column, row, _show(value, address), range_rule(value, lo, hi), allowed
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
                range_rule(int(raw[row]), 0, PASID_MAX),
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
                "pasid", row, _show(value, True), range_rule(value, 0, PASID_MAX), allowed
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
        name = OP_ALIASES.get(name, name)
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
class Columns:
    """The typed columns of a trace before they become a frame (checked by :func:`check_rules`)."""

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
        df.attrs["hex_columns"] = list(HEX_COLUMNS)
        return df


def check_rules(c: Columns) -> None:
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
    dma = c.op <= OP_WRITE
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
    stray_pa = np.flatnonzero((c.op != OP_MAP) & (c.pa != 0))
    if stray_pa.size:
        row = int(stray_pa[0])
        raise TraceError(
            "pa",
            row,
            fmt_addr(int(c.pa[row])),
            f"on a {OPS[c.op[row]]} row",
            "an output address on map rows only; 0 on read/write/unmap rows",
        )


def coerce(df: pd.DataFrame) -> Columns:
    extra = [c for c in df.columns if c not in COLUMNS]
    if extra:
        raise TraceError(
            str(extra[0]),
            None,
            repr(extra[0]),
            "is not a trace column",
            f"the columns {', '.join(COLUMNS)} (pa, stage, pasid, device optional)",
        )
    for name in REQUIRED:
        if name not in df.columns:
            raise TraceError(
                name,
                None,
                "(absent)",
                "is a required column",
                f"a frame with {', '.join(REQUIRED)}",
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
        names = [DEFAULT_DEVICE] if n else []
        device = pd.Categorical.from_codes(
            np.zeros(n, dtype=np.int8), categories=pd.Index(names, dtype=str)
        )
    if "pasid" in df.columns:
        pasid = _pasid_column(df["pasid"])
    else:
        pasid = pd.arrays.IntegerArray(np.zeros(n, dtype=np.uint32), np.ones(n, dtype=bool))
    cols = Columns(t, op, device, pasid, iova, length, pa, stage)
    check_rules(cols)
    return cols


