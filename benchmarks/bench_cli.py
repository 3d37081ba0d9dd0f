"""Peak memory and time of every CLI command on its default invocation, beside its budget.

Each command runs in a fresh Python process that is itself wrapped in a small measuring
process: the wrapper starts the command, waits for it, and reports ``getrusage(RUSAGE_CHILDREN)``
— the peak resident set of the command (and any process it started) alone, not of earlier runs.
Two baselines come from the same run: ``python -c pass`` (the bare interpreter: how loaded the
machine is) and ``iommu-lab platforms`` (import, read the catalogue, print: what our imports cost
before any model work). Each command is followed by its baselines re-measured beside it, so a row
measured while other work ran on the machine shows it.

With several ``--tree`` checkouts (e.g. the code before a change and after it) every command runs
in each tree in turn, so before and after share the machine's load; one column pair per tree.

Budget per command: 2 s and 300 MB peak RSS, what a Binder pod can afford for a terminal call.
The verdict reads wall time; the CPU column (user + system) is what the command would take on
an idle core, for reading a row measured on a busy machine.

Run:  python benchmarks/bench_cli.py [--repeat 1] [--tree OLD_CHECKOUT --tree .]
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
print(json.dumps({"seconds": dt, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss, "rc": p.returncode,
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


def _best(runs: list[dict]) -> dict:
    """The best time and the largest peak RSS of repeated runs (the first run's exit status)."""
    return {"seconds": min(r["seconds"] for r in runs), "cpu": min(r["cpu"] for r in runs),
            "mb": max(r["mb"] for r in runs), "rc": runs[0]["rc"], "stderr": runs[0]["stderr"]}


def _label(cmd: list[str]) -> str:
    return " ".join(Path(c).name if os.sep in c else c for c in cmd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1, help="runs per command; the best time and the largest RSS are kept")
    ap.add_argument("--tree", type=Path, action="append",
                    help="source tree to run (repeat for before/after in one run); default: this checkout")
    args = ap.parse_args()
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    bare = [sys.executable, "-c", "pass"]
    rows = []  # (label, [per tree: result], python -c pass, [per tree: platforms baseline])
    for cmd in COMMANDS:
        per_tree, base = [], []
        for tree in trees:
            env = cli_env(tree)
            argv = [sys.executable, "-m", "iommu_lab"]
            per_tree.append(_best([measure([*argv, *cmd], env, tree) for _ in range(args.repeat)]))
            base.append(_best([measure([*argv, "platforms"], env, tree) for _ in range(args.repeat)]))
        rows.append((_label(cmd), per_tree, _best([measure(bare) for _ in range(args.repeat)]), base))

    print(f"budget per command: {BUDGET_S:.0f} s, {BUDGET_MB:.0f} MB peak RSS. Beside each row, measured right "
          f"after it: `python -c pass` and `iommu-lab platforms` (per tree)")
    for i, t in enumerate(trees):
        print(f"  tree {i}: {t}")
    head = f"{'command':<36}" + "".join(f"{f't{i} s':>7}{'cpu':>6}{'MB':>6} {'verdict':<7}" for i in range(len(trees)))
    head += f"{'pass s':>7}{'MB':>4}" + "".join(f"{f'plat{i} s':>8}{'MB':>4}" for i in range(len(trees)))
    print(head)
    failures = []
    for label, per_tree, bare_r, base in rows:
        line = f"{label[:35]:<36}"
        for i, r in enumerate(per_tree):
            ok = r["rc"] == 0 and r["seconds"] <= BUDGET_S and r["mb"] <= BUDGET_MB
            verdict = "PASS" if ok else (f"rc={r['rc']}" if r["rc"] else "MISS")
            line += f"{r['seconds']:>7.2f}{r['cpu']:>6.2f}{r['mb']:>6.0f} {verdict:<7}"
            if r["rc"] and r["stderr"].strip():
                failures.append(f"    t{i} {label}: {r['stderr'].strip().splitlines()[-1]}")
        line += f"{bare_r['seconds']:>7.2f}{bare_r['mb']:>4.0f}"
        line += "".join(f"{b['seconds']:>8.2f}{b['mb']:>4.0f}" for b in base)
        print(line)
    for f in failures:
        print(f)


if __name__ == "__main__":
    main()
