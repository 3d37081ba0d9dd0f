"""Cost of the nesting models: a cold 2-D walk, a shadow build, and one workload side by side.

Times, best of three, per platform pair:

* ``Nested.walk``           one cold two-dimensional walk (the (n+1)(m+1)-1 references, each a
                            real read of host memory through the page-table layer's walker);
* ``walk(pasid=...)``       the same walk starting from the PASID structures;
* ``nested.shadow()``       composing N guest 4 KiB leaves into a host-format shadow table;

then prints ``compare_costs`` for a dynamic (map/DMA/unmap per buffer) and a static
(map once, many DMAs) workload, the table a design review puts side by side.

Run:  python benchmarks/bench_nesting.py [--leaves 256] [--walks 200]
"""

from __future__ import annotations

import argparse
import time

from iommu_lab.nesting.nested import Nested
from iommu_lab.nesting.shadow import DmaPattern, compare_costs

MiB = 1 << 20
PAIRS = ("intel-vtd-48", "intel-vtd-57", "arm-smmuv3-48", "amd-v1")


def best(fn, repeat=3):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=256)
    ap.add_argument("--walks", type=int, default=200)
    args = ap.parse_args()
    print(f"{'platform':<15} {'refs':>5} {'walk µs':>9} {'+pasid µs':>10} {'shadow ms':>10}")
    for name in PAIRS:
        n = Nested.for_platform(name, guest_ram=8 * MiB, backing="lazy")
        for i in range(args.leaves):
            n.map(0x4000_0000 + i * 0x1000, 4 * MiB + i * 0x1000, 0x1000)
        n.guest_memory.back(4 * MiB, args.leaves * 0x1000)
        n.bind_pasid(0x40, pasid_bits=16 if name == "amd-v1" else 20)
        refs = n.walk(0x4000_0000).n_pagetable_refs
        walk = best(
            lambda n=n: [
                n.walk(0x4000_0000 + (k % args.leaves) * 0x1000) for k in range(args.walks)
            ]
        )
        pw = best(lambda n=n: [n.walk(0x4000_0000, pasid=0x40) for _ in range(args.walks)])
        sh = best(lambda n=n: n.shadow(), repeat=2)
        print(
            f"{name:<15} {refs:>5} {walk / args.walks * 1e6:>9.1f} {pw / args.walks * 1e6:>10.1f} {sh * 1e3:>10.1f}"
        )
    for wl in (DmaPattern.dynamic(64), DmaPattern.static(64, dmas=2000)):
        print(
            f"\n{wl.name} (x86-64-4level over vtd-ss-4level, guest RAM backed with 4 KiB stage-2 pages)"
        )
        print(compare_costs(wl, backing="lazy", guest_ram=8 * MiB).to_string())


if __name__ == "__main__":
    main()
