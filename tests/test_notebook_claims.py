"""Every number a tutorial's prose states is either an input its code sets or a checked claim.

A tutorial states results in prose ("a cold nested walk makes 24 references"). Each such number
must appear in the claim of a ``check(...)`` call in the same notebook -- and ``check`` raises
``ClaimFailed`` when the model stops agreeing, which fails the notebook's execution under nbmake.
A number that is an input rather than a result (the 16 GiB of guest RAM the code asks for) is
covered by appearing as a numeric literal in the notebook's code. Numbers inside code spans,
headings and link texts are names (``intel-vtd-48``, ``0xfee0_0000``, "01 · ...") and years are
dates; neither is a claim.

These are static reads of the committed notebooks; executing them is nbmake's job.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).parent.parent / "notebooks"
TUTORIALS = sorted(p for pattern in ("0[0-9]-*.ipynb", "10-*.ipynb") for p in NOTEBOOK_DIR.glob(pattern))

# A number: digits with thousands separators (1,500 or 0x1000_0000 style underscores),
# an optional decimal part, an optional power (2^59). Not part of a word or a name
# ("x86-64", "sv48", "S1", "/dev/...", "v1"), and not a version dot-suffix; "4-level" and
# "1,500-byte" are numbers with a unit.
_NUMBER = re.compile(r"(?<![\w\-/.^])(\d[\d,_]*\d|\d)(\.\d+)?(\^\d+)?(?![\w^]|\.\d|-\d)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_LINK = re.compile(r"\[[^\]]*\]\([^)]*\)")
_YEAR = re.compile(r"^(19[89]\d|20[0-4]\d)$")
# "stage 2", "bit 7", "level 1", "tutorial 08": the number is part of a name.
_NAMED = re.compile(r"(?i)\b(stage|bit|level|tutorial|example|window|step)s? \**$")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _normal(token: str) -> str:
    return token.replace(",", "").replace("_", "")


def prose_numbers(markdown: str) -> list[str]:
    """The numbers a markdown cell states as facts (see the module docstring for what is skipped)."""
    found = []
    for line in markdown.splitlines():
        if line.lstrip().startswith("#"):
            continue
        text = _LINK.sub(" ", _CODE_SPAN.sub(" ", line))
        for m in _NUMBER.finditer(text):
            token = _normal("".join(g or "" for g in m.groups()))
            if not _YEAR.match(token) and not _NAMED.search(text[: m.start()]):
                found.append(token)
    return found


def _calls_to_check(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == "check" or getattr(n.func, "attr", None) == "check")]


def _claim_text(node: ast.AST) -> str:
    # A claim may be an f-string; its constant parts are what the reader reads beside the prose.
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return ""


def _code(path: Path) -> list[ast.AST]:
    trees = []
    for c in _cells(path):
        if c["cell_type"] == "code":
            src = "".join(c["source"])
            # IPython magics are not Python; a tutorial has none, but do not crash on one.
            src = "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))
            trees.append(ast.parse(src))
    return trees


def claims_and_inputs(path: Path) -> tuple[set[str], set[str], list[ast.Call]]:
    """(numbers stated by check claims, numeric literals of the code, the check calls)."""
    claimed: set[str] = set()
    literals: set[str] = set()
    calls: list[ast.Call] = []
    for tree in _code(path):
        for call in _calls_to_check(tree):
            calls.append(call)
            if call.args:
                claimed.update(prose_numbers(_claim_text(call.args[0])))
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
                literals.add(f"{n.value:g}" if isinstance(n.value, float) else str(n.value))
    return claimed, literals, calls


def test_prose_numbers_are_found_as_a_reader_reads_them():
    text = ("A 4-level table over `vtd-ss-4level` costs (4+1)(4+1)−1 = **24** references, 1,500-byte "
            "packets, 2^59, x86-64, sv48, 0.75 s, [01 · windows](01-x.ipynb), in 2021, stage 2, bit 7.")
    assert prose_numbers(text) == ["4", "4", "1", "4", "1", "1", "24", "1500", "2^59", "0.75"]
    assert prose_numbers("# 07 · A design review") == []


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_checks_its_claims(path):
    _, _, calls = claims_and_inputs(path)
    assert calls, f"{path.name}: no check(...) cell; state each claim of the prose with il.check"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_every_check_tests_something_computed(path):
    _, _, calls = claims_and_inputs(path)
    for call in calls:
        claim = _claim_text(call.args[0]) if call.args else ""
        assert len(call.args) >= 2 or any(k.arg == "holds" for k in call.keywords), f"{path.name}: {claim!r} has no condition"
        holds = call.args[1] if len(call.args) > 1 else next(k.value for k in call.keywords if k.arg == "holds")
        assert not isinstance(holds, ast.Constant), f"{path.name}: check({claim!r}, {ast.unparse(holds)}) cannot fail"
        assert claim.strip(), f"{path.name}: a check at line {call.lineno} states no claim in words"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_every_number_in_the_prose_is_an_input_or_a_checked_claim(path):
    claimed, literals, _ = claims_and_inputs(path)
    unchecked = []
    for i, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "markdown":
            continue
        for token in prose_numbers("".join(cell["source"])):
            if token not in claimed and token not in literals:
                unchecked.append(f"cell {i}: {token}")
    assert not unchecked, (
        f"{path.name}: these prose numbers are neither set by the code nor stated by a check(...) claim: "
        + ", ".join(unchecked)
    )
