"""The bad-input catalogue as a whole: its size, and a count by surface and kind.

Every ``tests/test_bad_*.py`` file contributes its ``CASES``; this test counts them so the
catalogue cannot quietly shrink, and prints the table the team note quotes (``pytest -s``).
"""

import importlib
from collections import Counter
from pathlib import Path

from badinput import KINDS, SURFACES, Bad

HERE = Path(__file__).parent


def all_cases() -> list[Bad]:
    cases: list[Bad] = []
    for path in sorted(HERE.glob("test_bad_*.py")):
        if path.stem == "test_bad_catalogue":
            continue
        cases.extend(importlib.import_module(path.stem).CASES)
    return cases


def test_catalogue_holds_at_least_200_bad_inputs_across_surfaces():
    cases = all_cases()
    ids = [c.id for c in cases]
    dup = [i for i, n in Counter(ids).items() if n > 1]
    assert not dup, f"duplicate catalogue ids: {dup}"
    by_surface = Counter(c.surface for c in cases)
    by_kind = Counter(c.kind for c in cases)
    print(f"\nbad-input catalogue: {len(cases)} rows")
    for s in SURFACES:
        print(f"  {s:14s} {by_surface.get(s, 0):4d}")
    for k in KINDS:
        print(f"  {k:14s} {by_kind.get(k, 0):4d}")
    assert len(cases) >= 200, f"only {len(cases)} catalogue rows"
