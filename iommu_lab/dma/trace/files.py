"""Trace files: a trace frame to and from Parquet (exact dtypes) or CSV (addresses in hex).

Only the file formats live here; :meth:`iommu_lab.dma.trace.Trace.read` validates what
:func:`read_frame` returns against the schema and names the file in any error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import fmt_size
from iommu_lab.dma.trace.schema import COLUMNS, HEX_COLUMNS

__all__ = ["MAX_READ_BYTES", "SUFFIXES", "checked_file", "file_format", "iter_frames", "read_frame", "write_frame"]

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


#: Most bytes :func:`read_frame` reads into memory at once; larger files stream
#: (:class:`~iommu_lab.dma.trace.TraceStream`).
MAX_READ_BYTES = 1 << 30


def checked_file(path: Any, *, max_bytes: int | None = None) -> tuple[Path, str]:
    """``(path, format)`` of a trace file that exists, is a regular file and (with
    ``max_bytes``) is no larger than that: checked with ``stat`` before anything opens it, so
    a FIFO never blocks and ``/dev/zero`` is never read. Errors name the path."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a trace file path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    fmt = file_format(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise IommuError("ENOENT", f"{path}: no such trace file") from None
    except OSError as exc:
        raise IommuError("EINVAL", f"{path}: cannot stat the trace file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise IommuError("EINVAL", f"{path}: is a directory; a trace is one regular {fmt} file")
    if not stat.S_ISREG(st.st_mode):
        raise IommuError(
            "EINVAL", f"{path}: not a regular file (a FIFO, device or socket); a trace is one regular {fmt} file"
        )
    if st.st_size == 0:
        raise ValueError(f"{path}: empty file; a {fmt} trace file has at least the columns {', '.join(COLUMNS)}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise ValueError(
            f"{path}: {fmt_size(st.st_size)} is more than Trace.read loads at once ({fmt_size(max_bytes)}); "
            f"replay it as a TraceStream(path), which reads it chunk by chunk"
        )
    return path, fmt


def _cut(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unreadable(path: Path, fmt: str, exc: BaseException) -> ValueError:
    if isinstance(exc, UnicodeDecodeError):
        why = f"not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start})"
    else:
        why = _cut(str(exc) or type(exc).__name__)
    return ValueError(f"{path}: not a readable {fmt} trace file: {why}")


def _check_columns(path: Path, names: list) -> None:
    missing = [c for c in COLUMNS if c not in names]
    extra = [c for c in names if c not in COLUMNS]
    if missing or extra:
        what = f"lacks column {missing[0]!r}" if missing else f"has unknown column {_cut(repr(extra[0]), 60)}"
        raise ValueError(f"{path}: trace file {what}; a trace file has the columns {', '.join(COLUMNS)}")


def iter_frames(path: Any, rows: int = 1 << 20, *, max_bytes: int | None = None) -> Iterator[pd.DataFrame]:
    """The raw frames of a trace file, ``rows`` rows at a time: Parquet record batches
    (pyarrow) or CSV chunks (pandas), columns checked; errors are ValueError naming the path.

    CSV cells are read as text (the schema parses ``0x`` hex and decimal exactly); an empty
    ``pasid`` cell stays empty and means no PASID.
    """
    path, fmt = checked_file(path, max_bytes=max_bytes)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        errors: tuple = (pa.ArrowException, OSError, ValueError)
        try:
            pf = pq.ParquetFile(path)
            _check_columns(path, list(pf.schema_arrow.names))
            batches = pf.iter_batches(batch_size=rows, columns=list(COLUMNS))
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                yield batch.to_pandas()[list(COLUMNS)]
        except errors as exc:
            if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
                raise
            raise _unreadable(path, fmt, exc) from None
    else:
        errors = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError)
        try:
            reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=rows, encoding="utf-8",
                                 encoding_errors="strict")
            with reader:
                for df in reader:
                    _check_columns(path, list(df.columns))
                    yield df[list(COLUMNS)]
        except errors as exc:
            if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
                raise
            raise _unreadable(path, fmt, exc) from None


def read_frame(path: Any, *, max_bytes: int = MAX_READ_BYTES) -> pd.DataFrame:
    """The raw frame of a ``.parquet``/``.pq`` (pyarrow) or ``.csv`` trace file, columns checked.

    The file is checked first (exists, regular, at most ``max_bytes``), then read.
    """
    frames = list(iter_frames(path, rows=1 << 22, max_bytes=max_bytes))
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    if not frames:  # a Parquet file with a schema and no rows
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS})
    return pd.concat(frames, ignore_index=True)


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
