"""Peak memory and time of every tutorial executed from a clean kernel, beside the Binder budget.

Each notebook runs under ``jupyter nbconvert --execute --to notebook --stdout`` inside a small
measuring process (``bench_cli.measure``) that waits for it and reads
``getrusage(RUSAGE_CHILDREN)``: the kernel is a grandchild of that process, and RUSAGE_CHILDREN
counts every waited-for descendant, so the figure is the larger of the kernel's and nbconvert's
own peak. The first row executes an empty notebook: the baseline from the same run (a kernel
start, nbconvert itself).

Budget per tutorial: 1 GB peak RSS and 20 s, what a Binder pod (1–2 GB) and a reader's patience
allow.

Run:  python benchmarks/bench_notebooks.py [NOTEBOOK ...] [--tree OLD_CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench_cli import ROOT, cli_env, measure

BUDGET_S = 20.0
BUDGET_MB = 1024.0

_EMPTY = {
    "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": ["1"]}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def run(nb: Path, tree: Path) -> dict:
    jupyter = Path(sys.executable).with_name("jupyter")
    argv = [str(jupyter), "nbconvert", "--execute", "--to", "notebook", "--stdout",
            "--ExecutePreprocessor.timeout=600", str(nb)]
    # The kernel runs in the notebook's directory, as Binder and nbmake run it.
    return measure(argv, cli_env(tree), cwd=nb.parent)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    ap.add_argument("--tree", type=Path, default=ROOT, help="source tree whose notebooks and package to run")
    args = ap.parse_args()
    nbs = args.notebooks or sorted((args.tree / "notebooks").glob("*.ipynb"))
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.ipynb"
        empty.write_text(json.dumps(_EMPTY))
        base = run(empty, args.tree)
    print(f"budget per tutorial: {BUDGET_S:.0f} s, {BUDGET_MB:.0f} MB peak RSS; baseline = an empty notebook in this run")
    print(f"{'notebook':<40}{'s':>7}{'MB':>8}{'s - base':>10}{'MB - base':>11}  verdict")
    rows = [("(empty notebook)", base)]
    for nb in nbs:
        rows.append((nb.name, run(nb, args.tree)))
    for name, r in rows:
        ok = r["rc"] == 0 and r["seconds"] <= BUDGET_S and r["mb"] <= BUDGET_MB
        verdict = "PASS" if ok else (f"FAILED rc={r['rc']}" if r["rc"] else "MISS")
        print(
            f"{name[:39]:<40}{r['seconds']:>7.1f}{r['mb']:>8.0f}{r['seconds'] - base['seconds']:>+10.1f}"
            f"{r['mb'] - base['mb']:>+11.0f}  {verdict}",
            flush=True,
        )
        if r["rc"] and r["stderr"].strip():
            print("    " + r["stderr"].strip().splitlines()[-1])


if __name__ == "__main__":
    main()
