"""How time and memory grow as the work grows 10x: guest RAM, IOAS areas, mappings, trace length, census.

Each row runs in a fresh process (``bench_cli.measure``) so its peak RSS is its own; every row
prints beside the previous one (the ratio), and the first row of each series is its baseline.

Run:  python benchmarks/bench_scale.py
"""

from __future__ import annotations

import sys

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

TRACE = """
from iommu_lab.dma import Caches, random_working_set, replay
from iommu_lab.pagetable import PageTable
from iommu_lab.hardware.platform import platforms
vtd = platforms.get("intel-vtd-48")
t = random_working_set({n}, working_set=64 << 20, size=256, seed=1)
r = replay(t, PageTable(vtd.format("paging")), Caches.for_platform(vtd), keep_accesses=False,
           progress=False)
assert r.summary["accesses"] >= {n}
"""

CENSUS = """
from iommu_lab.pagetable.census import Periodic, table_census
c = table_census("vtd-ss-4level", Periodic(0, {n}, 2 << 20, 4096))
assert c.tables[0] == {n}
"""


def series(title: str, code: str, values: list[int], label) -> None:
    print(f"\n{title}")
    print(f"{'work':>14}{'s':>8}{'MB':>8}{'x time':>8}{'x MB':>7}")
    prev = None
    for v in values:
        r = measure([sys.executable, "-c", code.format(n=v)], cli_env())
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
    series("trace length: random 256 B accesses over 64 MiB, replayed (summary only)", TRACE,
           [10**4, 10**5, 10**6, 10**7], lambda v: f"{v:,}")
    series("table census of a periodic layout (no tables built)", CENSUS,
           [10**2, 10**4, 10**6, 10**8], lambda v: f"{v:,}")


if __name__ == "__main__":
    main()
