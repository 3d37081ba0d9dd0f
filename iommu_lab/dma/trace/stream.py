"""A trace file read chunk by chunk, so a replay of any length holds one chunk at a time.

:class:`TraceStream` yields the file as :class:`~iommu_lab.dma.trace.Trace` chunks of at most
``rows`` rows (Parquet record batches through pyarrow, CSV chunks through pandas), each checked
against the schema, and checks across chunks that time never goes back.
:func:`iommu_lab.dma.replay.replay` takes one wherever it takes a Trace.
"""

from __future__ import annotations

from typing import Any, Iterator

from iommu_lab.core.ranges import exact_int
from iommu_lab.dma.trace.files import checked_file, iter_frames
from iommu_lab.dma.trace.schema import TraceError
from iommu_lab.dma.trace.table import Trace

__all__ = ["TraceStream"]


class TraceStream:
    """A ``.csv`` or ``.parquet`` trace file, read ``rows`` rows at a time.

    Parameters
    ----------
    path : str or os.PathLike
        Checked at once (exists, regular file); read only when iterated.
    rows : int (default: 2**18)
        Rows per chunk, 1 .. 2**24. The default keeps a chunk's pandas and Arrow buffers to about
        a hundred MB, so peak memory stays flat however long the file (benchmarks/bench_scale.py).
    name : str, optional
        Default: the file's stem.
    """

    def __init__(self, path: Any, *, rows: int = 1 << 18, name: str | None = None) -> None:
        self.path, self.format = checked_file(path)
        rows = exact_int(rows, "rows")
        if not 1 <= rows <= 1 << 24:
            raise ValueError(f"rows={rows} is not a chunk size; allowed: 1 .. 2**24 rows per chunk")
        self.rows = rows
        self.name = self.path.stem if name is None else str(name)
        self.nbytes = self.path.stat().st_size

    def __iter__(self) -> Iterator[Trace]:
        start, last_t = 0, None
        for df in iter_frames(self.path, self.rows):
            try:
                chunk = Trace.from_frame(df.reset_index(drop=True), name=self.name)
            except TraceError as err:
                raise TraceError(err.column, None if err.row is None else start + err.row, err.value,
                                 f"in {self.path}: " + str(err).split(": ", 1)[-1].split("; allowed")[0],
                                 str(err).rsplit("; allowed: ", 1)[-1]) from None
            t = chunk.frame["t"]
            if len(t) and last_t is not None and int(t.iloc[0]) < last_t:
                raise TraceError("t", start, int(t.iloc[0]), f"in {self.path}: time goes back from {last_t}",
                                 "non-decreasing t")
            if len(t):
                last_t = int(t.iloc[-1])
            start += len(df)
            yield chunk

    def __repr__(self) -> str:
        return f"TraceStream({str(self.path)!r}, rows={self.rows})"
