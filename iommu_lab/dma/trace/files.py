"""Trace files: a trace frame to and from Parquet (exact dtypes) or CSV (addresses in hex).

Only the file formats live here; :meth:`iommu_lab.dma.trace.Trace.read` validates what
:func:`read_frame` returns against the schema and names the file in any error.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from iommu_lab.dma.trace.schema import COLUMNS, HEX_COLUMNS

__all__ = ["SUFFIXES", "file_format", "read_frame", "write_frame"]

#: File suffixes a trace may have, and the format each means.
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def file_format(path: Path) -> str:
    """``"parquet"`` or ``"csv"`` from the suffix; ValueError naming the allowed suffixes."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: unknown trace file suffix {path.suffix!r}; allowed: {', '.join(SUFFIXES)}"
        )
    return fmt


def read_frame(path: str | Path) -> pd.DataFrame:
    """The raw frame of a ``.parquet``/``.pq`` (pyarrow) or ``.csv`` trace file, columns checked.

    CSV cells are read as text (the schema parses ``0x`` hex and decimal exactly); an empty
    ``pasid`` cell stays empty and means no PASID.
    """
    path = Path(path)
    if file_format(path) == "parquet":
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
    return df[list(COLUMNS)]


def write_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a trace frame; Parquet keeps dtypes, CSV writes ``iova``/``pa`` as ``0x`` hex."""
    path = Path(path)
    if file_format(path) == "parquet":
        frame.to_parquet(path, index=False)
    else:
        out = frame.copy()
        for col in HEX_COLUMNS:
            out[col] = [f"{v:#x}" for v in out[col].tolist()]
        out.to_csv(path, index=False, na_rep="")
    return path
