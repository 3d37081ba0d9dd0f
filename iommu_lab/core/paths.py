"""Where the project's data files are: ``data/`` in a checkout, ``iommu_lab._data`` when installed.

The repository keeps its data at top level (``data/platforms/*.toml`` and fixtures), as the
design asks; ``pyproject.toml`` maps that folder into the wheel as the package
``iommu_lab._data``, so a non-editable install (Binder) finds the same files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_dir() -> Path:
    """The directory holding ``platforms/`` and the other data files."""
    checkout = Path(__file__).resolve().parents[2] / "data"
    if (checkout / "platforms").is_dir():
        return checkout
    return Path(str(resources.files("iommu_lab._data")))
