"""The code, tests and notebooks pass ruff's error rules (pyflakes and pycodestyle errors).

The rules are the ``[tool.ruff.lint]`` selection in pyproject.toml: mistakes such as unused
imports, undefined names and bare ``except`` clauses, not matters of taste.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", "--no-cache", str(ROOT)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
