"""Peak memory and time of every CLI command on its default invocation, beside its budget.

Each command runs in a fresh Python process that is itself wrapped in a small measuring
process: the wrapper starts the command, waits for it, and reports ``getrusage(RUSAGE_CHILDREN)``
— the peak resident set of the command (and any process it started) alone, not of earlier runs.
The first row, ``iommu-lab platforms`` (import, read the catalogue, print), is the baseline from
the same run: what the interpreter and our imports cost before any model work.

Budget per command: 2 s and 300 MB peak RSS, what a Binder pod can afford for a terminal call.

Run:  python benchmarks/bench_cli.py [--repeat 1] [--tree OLD_CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
BUDGET_S = 2.0
BUDGET_MB = 300.0

#: Each command with the fewest arguments it needs; options left at their defaults.
COMMANDS: list[list[str]] = [
    ["platforms"],
    ["info", "intel-vtd-48"],
    ["layout", "intel-vtd-48"],
    ["import", str(DATA / "sysfs" / "intel-host" / "iommu_groups")],
    ["import", str(DATA / "debugfs" / "domain_translation_struct")],
    ["walk", "vtd-ss-4level", "0x0"],
    ["nested", "intel-vtd-48", "0x0"],
    ["compare", "intel-vtd-48", "arm-smmuv3-48", "amd-v1"],
    ["replay", str(DATA / "traces" / "nic_rx_small.csv")],
    ["scenario", str(DATA / "scenarios" / "vtd-nic.toml")],
]

# The wrapper: run argv, wait, print the child's wall time and peak RSS as JSON. The kernel of a
# notebook is a grandchild; RUSAGE_CHILDREN counts every waited-for descendant, so it is included.
_WRAPPER = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
dt = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": dt, "maxrss_kb": ru.ru_maxrss, "rc": p.returncode,
                  "stderr": p.stderr.decode(errors="replace")[-400:]}))
"""


def measure(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> dict:
    """Wall time (s), peak RSS (MB) and exit code of ``argv`` run to completion in ``cwd``
    (``python -m`` puts the working directory first on the path, so it picks the tree)."""
    out = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True, env=env, cwd=cwd, check=True
    )
    r = json.loads(out.stdout)
    r["mb"] = r.pop("maxrss_kb") / 1024  # Linux reports ru_maxrss in KiB
    return r


def cli_env(tree: Path = ROOT) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1, help="runs per command; the best time and the largest RSS are kept")
    ap.add_argument("--tree", type=Path, default=ROOT, help="source tree to run (e.g. an older checkout, for before/after)")
    args = ap.parse_args()
    env = cli_env(args.tree)
    rows = []
    for cmd in COMMANDS:
        runs = [measure([sys.executable, "-m", "iommu_lab", *cmd], env, args.tree) for _ in range(args.repeat)]
        best = {"seconds": min(r["seconds"] for r in runs), "mb": max(r["mb"] for r in runs), "rc": runs[0]["rc"],
                "stderr": runs[0]["stderr"]}
        rows.append((cmd, best))
    base = rows[0][1]
    print(f"budget per command: {BUDGET_S:.0f} s, {BUDGET_MB:.0f} MB peak RSS; baseline = `iommu-lab platforms` in this run")
    print(f"{'command':<44}{'s':>7}{'MB':>8}{'s - base':>10}{'MB - base':>11}  verdict")
    for cmd, r in rows:
        label = " ".join(Path(c).name if os.sep in c else c for c in cmd)
        ok = r["rc"] == 0 and r["seconds"] <= BUDGET_S and r["mb"] <= BUDGET_MB
        verdict = "PASS" if ok else ("FAILED rc=%d" % r["rc"] if r["rc"] else "MISS")
        print(
            f"{label[:43]:<44}{r['seconds']:>7.2f}{r['mb']:>8.0f}{r['seconds'] - base['seconds']:>+10.2f}"
            f"{r['mb'] - base['mb']:>+11.0f}  {verdict}"
        )
        if r["rc"]:
            print("    " + r["stderr"].strip().splitlines()[-1] if r["stderr"].strip() else "")


if __name__ == "__main__":
    main()
