"""What users read cites public sources only: papers, specifications, Linux and QEMU.

The team keeps private notes beside the repository; users never get them, so no docstring,
message, notebook, data README or document may point at them or at their section numbers.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRIVATE = re.compile(
    r"rulebook|\.\./shared|shared/reference|(?:iommufd|iommufd_objects|kernel_artefacts|pagetable_formats"
    r"|nesting_pasid_windows|ecosystem)\.md|\brule \d+\.\d+|\[[A-Z]§"
)


def product_files():
    for sub in ("iommu_lab", "notebooks", "data", "docs", "benchmarks"):
        for path in (ROOT / sub).rglob("*"):
            if path.suffix in {".py", ".md", ".ipynb", ".toml", ".txt"} and path.is_file():
                yield path
    yield ROOT / "README.md"


def test_no_product_file_cites_the_private_notes():
    hits = []
    for path in product_files():
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if PRIVATE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "private notes cited:\n" + "\n".join(hits)


def test_the_pattern_catches_a_citation():
    assert PRIVATE.search("see nesting_pasid_windows.md §0")
    assert PRIVATE.search("(rulebook §2.3)")
    assert not PRIVATE.search("PCIe Base Specification §2.2.7")
