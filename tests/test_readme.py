"""The README's sessions run and print what it shows; its links stay inside the repository."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"


def test_readme_sessions_print_what_the_readme_shows():
    result = doctest.testfile(
        str(README), module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0, "the README has no >>> session to run"
    assert result.failed == 0, f"{result.failed} of {result.attempted} README examples differ (doctest printed them above)"


def test_readme_lists_every_tutorial():
    text = README.read_text()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"`{nb.stem}`" in text, f"the README's tutorial table is missing {nb.stem}"


def test_readme_links_and_paths_stay_inside_the_repository():
    text = README.read_text()
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        assert (ROOT / target.split("#")[0]).exists(), f"README links to {target}, which is not in the repository"
    for path in re.findall(r"`((?:benchmarks|docs|notebooks|data|tests|iommu_lab)/[\w./-]+)`", text):
        assert (ROOT / path).exists(), f"README names {path}, which is not in the repository"


def test_architecture_page_names_every_module_and_only_real_paths():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:benchmarks|docs|notebooks|data|tests|iommu_lab)/[\w./-]+)`", text))
    for path in named:
        assert (ROOT / path).exists(), f"docs/ARCHITECTURE.md names {path}, which is not in the repository"
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "iommu_lab").rglob("*.py")}
    missing = sorted(modules - named)
    assert not missing, f"docs/ARCHITECTURE.md does not list these modules: {', '.join(missing)}"
