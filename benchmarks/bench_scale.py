"""How time and memory grow as the work grows 10x: guest RAM, IOAS areas, mappings, trace length, census.

Each row runs in a fresh process (``bench_cli.measure``) so its peak RSS is its own; every row
prints beside the previous one (the ratio), and the first row of each series is its baseline.

Run:  python benchmarks/bench_scale.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from bench_cli import cli_env, measure

GUEST = """
from iommu_lab.nesting.nested import Nested
from iommu_lab.nesting.memory import host_memory_for
from iommu_lab.hardware import formats
ram = {n}
n = Nested.for_platform("intel-vtd-48", guest_ram=ram, backing="eager",
                        host=host_memory_for(formats.get("vtd-ss-4level"), at_least=ram))
n.map(0x1000, ram - 0x1000, 0x1000)
assert n.walk(0x1000).ok
"""

MAPPINGS = """
from iommu_lab.pagetable import PageTable
pt = PageTable("vtd-ss-4level")
for i in range({n}):
    pt.map(i << 21, i << 21, 0x1000)
assert pt.walk(({n} - 1) << 21).ok
"""

AREAS = """
from iommu_lab.iommufd import IOAS
ioas = IOAS.from_platform("intel-vtd-48")
for i in range({n}):
    ioas.map(0x1000, iova=0x1_0000_0000 + (i << 21))
assert len(ioas.areas) == {n}
"""

#: Written once per size, outside the measured process: one map row, then random 256 B accesses
#: over 64 MiB in chunks of a million, each chunk's clock after the last (one file of N accesses).
TRACE_FILE = """
import pyarrow as pa, pyarrow.parquet as pq
from iommu_lab.dma import random_working_set
n, chunk, writer, t0 = {n}, 1_000_000, None, 0
for k in range(max(1, n // chunk)):
    df = random_working_set(min(n, chunk), working_set=64 << 20, size=256, seed=k).frame
    if k:
        df = df[df["op"] != "map"]
    df = df.assign(t=df["t"] + t0, op=df["op"].astype(str), device=df["device"].astype(str))
    t0 = int(df["t"].iloc[-1]) + 128
    table = pa.Table.from_pandas(df, preserve_index=False)
    writer = writer or pq.ParquetWriter({path!r}, table.schema)
    writer.write_table(table)
writer.close()
"""

#: The measured process: stream the file chunk by chunk and keep only the summary.
TRACE = """
from iommu_lab.dma import Caches, replay
from iommu_lab.dma.trace import TraceStream
from iommu_lab.pagetable import PageTable
from iommu_lab.hardware.platform import platforms
vtd = platforms.get("intel-vtd-48")
r = replay(TraceStream({path!r}), PageTable(vtd.format("paging")), Caches.for_platform(vtd),
           keep_accesses=False, progress=False)
assert r.summary["accesses"] >= {n}
"""

CENSUS = """
from iommu_lab.pagetable.census import Periodic, table_census
c = table_census("vtd-ss-4level", Periodic(0, {n}, 2 << 20, 4096))
assert c.tables[0] == {n}
"""


def series(title: str, code: str, values: list[int], label, setup: str | None = None) -> None:
    print(f"\n{title}")
    print(f"{'work':>14}{'s':>8}{'MB':>8}{'x time':>8}{'x MB':>7}")
    prev = None
    for v in values:
        path = f"{tempfile.gettempdir()}/bench-scale-trace-{v}.parquet"
        if setup is not None:
            subprocess.run([sys.executable, "-c", setup.format(n=v, path=path)], env=cli_env(), check=True)
        r = measure([sys.executable, "-c", code.format(n=v, path=path)], cli_env())
        if setup is not None:
            os.unlink(path)
        if r["rc"]:
            print(f"{label(v):>14}  failed: {r['stderr'].strip().splitlines()[-1:]}")
            continue
        xs = f"{r['seconds'] / prev['seconds']:>8.2f}{r['mb'] / prev['mb']:>7.2f}" if prev else f"{'base':>8}{'':>7}"
        print(f"{label(v):>14}{r['seconds']:>8.2f}{r['mb']:>8.0f}{xs}", flush=True)
        prev = r


def main() -> None:
    series("guest RAM (eager stage 2, one mapping, one nested walk)", GUEST,
           [1 << 30, 10 << 30, 100 << 30, 1 << 40, 10 << 40], lambda v: f"{v / (1 << 30):,.0f} GiB")
    if "--quick" in sys.argv:
        return
    series("4 KiB mappings, one map() call each, 2 MiB apart (VT-d 4-level)", MAPPINGS,
           [100, 1_000, 10_000, 100_000], lambda v: f"{v:,}")
    series("IOAS areas, one IOMMU_IOAS_MAP of 4 KiB each, 2 MiB apart (VT-d domain attached)", AREAS,
           [100, 1_000, 10_000], lambda v: f"{v:,}")
    series("trace length: a Parquet trace of random 256 B accesses over 64 MiB, streamed (summary only)",
           TRACE, [10**4, 10**5, 10**6, 10**7], lambda v: f"{v:,}", setup=TRACE_FILE)
    series("table census of a periodic layout (no tables built)", CENSUS,
           [10**2, 10**4, 10**6, 10**8], lambda v: f"{v:,}")


if __name__ == "__main__":
    main()
