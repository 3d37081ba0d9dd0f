"""Throughput of DMA trace replay (target: >= 1,000,000 accesses/s on the vectorisable parts).

Accesses are 4 KiB translation requests (a trace row split at 4 KiB boundaries). For each
trace the script prints, best of three:

* ``front end``  the vectorised part alone: splitting rows into requests, translating every
                 request with the vectorised walker (``translate(paths=True)``) and finding
                 the runs a cache cannot change — accesses/s, and the ratio to the 1 M/s target;
* ``fast``       the whole replay with ``engine="fast"`` (front end + the sequential cache
                 loop over what runs do not settle) — accesses/s and ratio to the target;
* ``step``       the baseline: ``engine="step"``, one scalar walk and every cache probed per
                 access, on the first ``--step`` accesses — and fast/step, the speed-up.

The cache loop is inherently sequential (LRU state changes on every access that is not a
repeat of the one before), so traces whose accesses miss or jump between pages spend their
time there; the front end is the part that vectorises.

Run:  python benchmarks/bench_replay.py [--accesses 1000000] [--step 20000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from iommu_lab.dma import trace as T
from iommu_lab.dma.caches import Caches
from iommu_lab.dma.replay import replay, split_accesses
from iommu_lab.dma.targets import NestedStages, SingleStage
from iommu_lab.nesting.nested import Nested
from iommu_lab.pagetable.table import PageTable

TARGET = 1_000_000  # accesses per second


def best(fn, repeat=3):
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def front_end(trace, table) -> int:
    """Split, translate and find the runs: what ``engine='fast'`` does before its loop."""
    acc = split_accesses(trace.frame)
    stages = NestedStages(table) if isinstance(table, Nested) else SingleStage(table)
    w = stages.batch(acc.iova, acc.write, acc.pasid)
    page = acc.iova >> np.uint64(12)
    same = np.zeros(len(acc), dtype=bool)
    same[1:] = (page[1:] == page[:-1]) & (acc.pasid[1:] == acc.pasid[:-1]) & ~w.fault[:-1]
    return len(acc)


def built_table(trace, pgsizes: int, nested: bool = False):
    """A table holding the trace's maps (a what-if's domain), built once outside the timing;
    ``nested``: a VT-d guest stage 1 over stage 2 backing 1 GiB of guest RAM with 1 GiB pages."""
    if nested:
        n = Nested.for_platform("intel-vtd-48", guest_base=0, guest_ram=1 << 30, backing="eager")
        n.stage1.pgsize_bitmap = pgsizes
        pt = n.stage1
    else:
        n = pt = PageTable("vtd-ss-4level", pgsize_bitmap=pgsizes)
    f = trace.frame
    for r in f[f["op"] == "map"].itertuples():
        pt.map(int(r.iova), int(r.pa), int(r.length))
    return n


def dma_only(trace):
    from iommu_lab.dma.trace import Trace

    f = trace.frame
    return Trace.from_frame(f[f["op"].isin(["read", "write"])].reset_index(drop=True), name=trace.name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accesses", type=int, default=1_000_000)
    ap.add_argument("--step", type=int, default=20_000)
    args = ap.parse_args()
    n = args.accesses
    caches = Caches.for_platform("intel-vtd-48")
    cases = [
        ("streaming 256 B, 4K pages", T.streaming(n * 256, chunk=256), 0x1000),
        ("streaming 256 B, 2M pages", T.streaming(n * 256, chunk=256), 0x40201000),
        ("NIC RX ring (page_pool)", T.nic_rx_ring(n // 3), 0x40201000),
        ("random 64 MiB, 4K pages", T.random_working_set(n), 0x1000),
        ("random 64 MiB, 2M pages", T.random_working_set(n), 0x40201000),
        ("nested: random 16M, 4K", T.random_working_set(n // 4, working_set=16 << 20, pa=1 << 24), 0x1000),
        ("nested: streaming, 4K", T.streaming(n // 4 * 256, chunk=256, pa=1 << 24), 0x1000),
    ]
    head = f"{'trace':<28} {'accesses':>9} {'front end/s':>12} {'x target':>8} {'fast/s':>10} {'x target':>8} {'step/s':>9} {'fast/step':>9} {'hit rate':>8}"
    print(head)
    print("-" * len(head))
    for label, tr, pgsizes in cases:
        table = built_table(tr, pgsizes, nested=label.startswith("nested"))
        dma = dma_only(tr)
        t_front, count = best(lambda: front_end(dma, table))
        t_fast, r = best(lambda: replay(dma, table, caches, progress=False))
        few = dma_only(type(tr)(tr.frame.iloc[: args.step + 1], tr.name))
        t_step, _ = best(lambda: replay(few, table, caches, engine="step", progress=False), repeat=1)
        t_fast_few, _ = best(lambda: replay(few, table, caches, progress=False))
        step_rate = len(split_accesses(few.frame)) / t_step
        print(
            f"{label:<28} {count:>9} {count / t_front:>12,.0f} {count / t_front / TARGET:>8.2f} "
            f"{count / t_fast:>10,.0f} {count / t_fast / TARGET:>8.2f} {step_rate:>9,.0f} "
            f"{t_step / t_fast_few:>9.1f} {r.hit_rate:>8.1%}"
        )


if __name__ == "__main__":
    main()
