"""Tutorials are committed stripped: no outputs, no execution counts, no widget state.

Executing them is nbmake's job (pytest collects ``notebooks/*.ipynb`` with ``--nbmake``).
"""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted(p for p in (Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_numbered_tutorials_starting_with_start_here():
    names = [p.name for p in NOTEBOOKS]
    assert names and names[0] == "00-start-here.ipynb"
    assert all(n[:2].isdigit() and n[2] == "-" for n in names), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them before committing"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} carries saved widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_prose_before_code(path):
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown", f"{path.name} should open with an explanation"
