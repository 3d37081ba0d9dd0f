"""Throughput of DMA trace replay (target: >= 5,000,000 accesses/s for the whole replay).

Accesses are 4 KiB translation requests (a trace row split at 4 KiB boundaries). For each
trace the script prints, in one run:

* ``front end``  the vectorised part alone: splitting rows into requests, translating every
                 request with the vectorised walker (``translate(paths=True)``) and finding
                 the runs a cache cannot change;
* ``compiled``   the whole replay with ``engine="compiled"`` (the default: walks once per
                 distinct page, then the numba charging loop) — accesses/s and the ratio to
                 the 5 M/s target; measured as a user calls it by default, keeping the
                 per-access outcome table (``keep_accesses=True``) and building
                 ``Replay.accesses``;
* ``no table/s`` the same with ``keep_accesses=False`` (summary and statistics only);
* ``cpu/s``      the compiled replay per second of this process's CPU time (the wall-clock
                 rate on a machine shared with other work is lower by their share);
* ``py loop``    ``engine="fast"``: the same front end with the Python charging loop (what
                 replay ran before the compiled loop existed);
* ``step``       ``engine="step"``, the oracle: one scalar walk and every cache probed per
                 access, on the first ``--step`` accesses; ``x step`` is compiled/step;
* ``lcs``        the peer anchor, when ``import libcachesim`` works: the same IOTLB page-number
                 stream (page = iova >> log2 of the entry that served it) through
                 libCacheSim's LRU at the IOTLB's capacity, fed from an oracleGeneral file;
                 ``x lcs`` is compiled/libCacheSim (a ratio, not a target). libCacheSim models
                 one fully associative cache; the replay models the IOTLB, its walk caches and
                 the walks.

The first call of the compiled loop loads it from numba's on-disk cache (``cache=True``); the
script also times a cold compile in a subprocess with an empty cache directory and prints it.
``--memory`` adds the streaming rows: peak RSS of replaying 10^6, 10^7 (and ``--big``: 10^8)
accesses, each in its own subprocess, with ``keep_accesses=False``.

Run:  python benchmarks/bench_replay.py [--accesses 1000000] [--step 20000] [--memory] [--big]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from iommu_lab.dma import trace as T
from iommu_lab.dma.caches import Caches
from iommu_lab.dma.replay import replay, split_accesses
from iommu_lab.dma.targets import NestedStages, SingleStage
from iommu_lab.nesting.nested import Nested
from iommu_lab.pagetable.table import PageTable

TARGET = 5_000_000  # accesses per second


CPU = {}  # the process CPU time of the last best() call, beside its wall time


def best(fn, repeat=3):
    """Best wall time of ``repeat`` calls (and, in ``CPU["last"]``, the best CPU time: on a
    machine shared with other work the wall clock also counts the time others ran)."""
    out, times, cpu = None, [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU["last"] = min(cpu)
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


def lcs_rate(r, entries: int):
    """libCacheSim's LRU over the replay's IOTLB page-number stream: (requests/s, hit rate)."""
    try:
        import libcachesim as lcs
    except ImportError:
        return None
    a = r.accesses
    ok = a["page_size"].to_numpy() > 0
    ids = a["iova"].to_numpy()[ok] // a["page_size"].to_numpy()[ok]
    rec = np.zeros(ids.shape[0], np.dtype([("t", "<u4"), ("id", "<u8"), ("sz", "<u4"), ("nv", "<i8")]))
    rec["t"], rec["id"], rec["sz"], rec["nv"] = np.arange(ids.shape[0]), ids, 1, -1
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "pages.oracleGeneral")
        rec.tofile(path)
        t0 = time.perf_counter()
        miss, _ = lcs.LRU(cache_size=entries).process_trace(lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE))
        dt = time.perf_counter() - t0
    return ids.shape[0] / dt, 1 - miss


COLD = """
import time, tempfile
t0 = time.perf_counter()
from iommu_lab.dma import trace as T
from iommu_lab.dma.replay import replay
from iommu_lab.pagetable.table import PageTable
pt = PageTable("vtd-ss-4level"); pt.map(0, 0, 1 << 20)
t1 = time.perf_counter()
replay(T.Trace.from_records([dict(t=0, op="read", iova=0, length=1 << 20)]), pt, progress=False, engine="compiled")
print(f"{time.perf_counter() - t1:.1f}")
"""


def compile_cost() -> str:
    """Seconds the first replay takes in a fresh process with an empty numba cache."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        out = subprocess.run([sys.executable, "-c", COLD], env=env, capture_output=True, text=True)
        if out.returncode:
            return "failed: " + out.stderr.strip().splitlines()[-1]
        cold = out.stdout.strip()
        out = subprocess.run([sys.executable, "-c", COLD], env=env, capture_output=True, text=True)
        return f"cold compile {cold} s, then from the on-disk cache {out.stdout.strip()} s (first replay in a process)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accesses", type=int, default=1_000_000)
    ap.add_argument("--step", type=int, default=20_000)
    ap.add_argument("--memory", action="store_true", help="add the streaming peak-RSS rows")
    ap.add_argument("--big", action="store_true", help="with --memory: also 10^8 accesses")
    args = ap.parse_args()
    n = args.accesses
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count()))
    print("numba:", compile_cost())
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
    head = (f"{'trace':<27} {'accesses':>9} {'front end/s':>11} {'compiled/s':>11} {'x target':>8} {'cpu/s':>10} "
            f"{'no table/s':>10} {'py loop/s':>10} {'step/s':>8} {'x step':>6} {'lcs/s':>10} {'x lcs':>5} {'hit rate':>8} {'lcs hit':>7}")
    print("compiled/s and cpu/s: replay() as called by default (keep_accesses=True, outcome table built)")
    print(head)
    print("-" * len(head))
    for label, tr, pgsizes in cases:
        table = built_table(tr, pgsizes, nested=label.startswith("nested"))
        dma = dma_only(tr)
        t_front, count = best(lambda: front_end(dma, table))
        t_comp, r = best(lambda: replay(dma, table, caches, progress=False, engine="compiled"))
        c_comp = CPU["last"]
        t_bare, _ = best(lambda: replay(dma, table, caches, progress=False, engine="compiled", keep_accesses=False))
        t_fast, _ = best(lambda: replay(dma, table, caches, engine="fast", progress=False), repeat=2)
        few = dma_only(type(tr)(tr.frame.iloc[: args.step + 1], tr.name))
        t_step, _ = best(lambda: replay(few, table, caches, engine="step", progress=False), repeat=1)
        step_rate = len(split_accesses(few.frame)) / t_step
        peer = lcs_rate(r, caches.iotlb.entries)
        rate = count / t_comp
        lcs_cols = f"{peer[0]:>10,.0f} {rate / peer[0]:>5.2f}" if peer else f"{'-':>10} {'-':>5}"
        print(
            f"{label:<27} {count:>9} {count / t_front:>11,.0f} {rate:>11,.0f} {rate / TARGET:>8.2f} {count / c_comp:>10,.0f} "
            f"{count / t_bare:>10,.0f} {count / t_fast:>10,.0f} {step_rate:>8,.0f} {rate / step_rate:>6.0f} {lcs_cols} "
            f"{r.hit_rate:>8.1%} {peer[1] if peer else float('nan'):>7.1%}"
        )
    if args.memory:
        memory_rows(args.big)
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def memory_rows(big: bool) -> None:
    """Peak RSS of streaming replays of growing length, each in a fresh subprocess."""
    sizes = [10**6, 10**7] + ([10**8] if big else [])
    print()
    print(f"{'streamed accesses':>17} {'before':>9} {'peak RSS':>9} {'time':>8} {'accesses/s':>11}   (one DMA row, keep_accesses=False)")
    for k in sizes:
        out = subprocess.run([sys.executable, "-c", MEMORY.format(n=k)], capture_output=True, text=True)
        if out.returncode:
            print(f"{k:>17,} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        base, rss, secs = out.stdout.split()
        print(f"{k:>17,} {int(base) / 1024:>6.0f} MB {int(rss) / 1024:>6.0f} MB {float(secs):>7.1f}s {k / float(secs):>11,.0f}")


MEMORY = """
import time


def hwm():
    # this process's own high-water mark (ru_maxrss would include the parent's, kept across fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

from iommu_lab.dma import trace as T
from iommu_lab.dma.replay import replay
from iommu_lab.pagetable.table import PageTable
pt = PageTable("vtd-ss-4level", pgsize_bitmap=0x40201000); pt.map(0, 0, 1 << 39)
# one DMA row of {n} 4 KiB requests over 512 GiB mapped with 1 GiB pages
tr = T.Trace.from_records([dict(t=0, op="read", iova=0, length={n} * 4096)])
base = hwm()
t0 = time.perf_counter()
replay(tr, pt, progress=False, keep_accesses=False, engine="compiled")
print(base, hwm(), time.perf_counter() - t0)
"""


if __name__ == "__main__":
    main()
