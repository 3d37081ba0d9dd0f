"""Per-operation cost of the IOAS area index against the ``intervaltree`` package.

For each size n the IOAS holds n one-page areas (every other page, so there are n free gaps);
then, side by side in the same run, the script times

* fixed map: ``IOAS.map(PAGE, iova)`` into a gap  vs  ``tree.overlap(b, e)`` + ``tree.addi(b, e)``
  (``overlap`` is the O(log n + m) query; ``tree.overlaps(b, e)`` scans boundaries and costs
  ~10 ms at 100,000 intervals, which would flatter us)
* lookup:    ``IOAS.lookup(iova)``                vs  ``tree.at(iova)``
* unmap:     ``IOAS.unmap(iova, PAGE)``           vs  ``tree.removei(b, e, data)``
* auto map:  ``IOAS.map(PAGE)`` (no counterpart; shows the gap index keeps it O(log n))

and prints the median over several interleaved rounds of microseconds per operation and the
ratio ours / intervaltree. Our operations do the
full kernel checks (types, errnos, reserved, windows, history), the tree only the bare work.

Run:  python benchmarks/bench_ioas.py [--sizes 1000,10000,100000] [--ops 2000]
      (add 1000000 to --sizes for the million-area row; it takes a few minutes)
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

from intervaltree import Interval, IntervalTree

from iommu_lab.iommufd.ioas import IOAS

PAGE = 0x1000
BASE = 0x1_0000_0000


def build(n: int) -> tuple[IOAS, IntervalTree]:
    ioas = IOAS()
    for i in range(n):
        ioas.map(PAGE, BASE + 2 * i * PAGE, user_va=0x7000_0000_0000)
    tree = IntervalTree(Interval(BASE + 2 * i * PAGE, BASE + 2 * i * PAGE + PAGE, i) for i in range(n))
    return ioas, tree


def per_op(fn, items) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for it in items:
            fn(it)
        return (time.perf_counter() - t0) / len(items) * 1e6
    finally:
        gc.enable()


def bench(n: int, ops: int, rounds: int, rng: random.Random) -> dict[str, tuple[float, float | None]]:
    """Median over ``rounds`` of interleaved ours/theirs measurements (the machine is shared, so
    a single pass is at the mercy of whatever else runs; interleaving exposes both to the same)."""
    ioas, tree = build(n)
    samples: dict[str, list[tuple[float, float | None]]] = {}

    def ours_map(iova):
        ioas.map(PAGE, iova, user_va=0x7000_0000_0000)

    def tree_map(iova):
        if tree.overlap(iova, iova + PAGE):
            raise AssertionError("gap is taken")
        tree.addi(iova, iova + PAGE, iova)

    for _ in range(rounds):
        ioas.history.clear()
        gaps = [BASE + (2 * i + 1) * PAGE for i in rng.sample(range(n), min(ops, n))]
        points = [BASE + rng.randrange(2 * n * PAGE) for _ in range(ops)]
        samples.setdefault("map (fixed)", []).append((per_op(ours_map, gaps), per_op(tree_map, gaps)))
        samples.setdefault("lookup", []).append((per_op(ioas.lookup, points), per_op(tree.at, points)))
        samples.setdefault("unmap", []).append(
            (per_op(lambda iova: ioas.unmap(iova, PAGE), gaps), per_op(lambda iova: tree.removei(iova, iova + PAGE, iova), gaps))
        )
        made = []
        t = per_op(lambda _: made.append(ioas.map(PAGE, user_va=0x7000_0000_0000)), range(min(ops, 2000)))
        samples.setdefault("map (auto)", []).append((t, None))
        for a in made:
            ioas.unmap(a.iova, PAGE)
    out = {}
    for name, rows in samples.items():
        ours = statistics.median(r[0] for r in rows)
        theirs = None if rows[0][1] is None else statistics.median(r[1] for r in rows)
        out[name] = (ours, theirs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(2026)
    print(f"{'areas':>9} {'operation':<12} {'ours µs/op':>11} {'intervaltree µs/op':>19} {'ratio':>7}")
    for n in (int(s) for s in args.sizes.split(",")):
        for name, (ours, theirs) in bench(n, args.ops, args.rounds, rng).items():
            ratio = f"{ours / theirs:6.2f}x" if theirs else "      -"
            t = f"{theirs:19.2f}" if theirs else f"{'-':>19}"
            print(f"{n:>9} {name:<12} {ours:11.2f} {t} {ratio}")


if __name__ == "__main__":
    main()
