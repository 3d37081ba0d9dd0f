"""What a command imports: text output never loads matplotlib, and the package loads no pandas.

A terminal call pays for every module it imports (matplotlib's figure code is about a second and
tens of MB; pandas is most of the rest). These tests read ``sys.modules`` in a fresh interpreter
after the import or the command, so they check what is loaded, not how long it takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iommu_lab.core import display

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
HEAVY = ("matplotlib", "pandas", "pyarrow", "IPython", "ipywidgets")


def loaded_after(code: str) -> set[str]:
    """The heavy packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = (
        "import contextlib, io, json, sys\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MPLBACKEND", None)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


def cli(*argv: str) -> str:
    return f"from iommu_lab.cli import main\nassert main({list(argv)!r}) == 0"


def test_importing_the_package_loads_no_pandas_and_no_matplotlib():
    assert loaded_after("import iommu_lab") == set()


def test_importing_the_command_line_loads_nothing_heavy():
    assert loaded_after("import iommu_lab.cli\niommu_lab.cli.build_parser()") == set()


def test_importing_the_views_loads_no_matplotlib():
    assert "matplotlib" not in loaded_after("import iommu_lab.render")


@pytest.mark.parametrize("argv", [("platforms",), ("info", "intel-vtd-48")], ids=" ".join)
def test_catalogue_commands_load_nothing_heavy(argv):
    assert loaded_after(cli(*argv)) == set()


@pytest.mark.parametrize(
    "argv",
    [
        ("layout", "intel-vtd-48"),
        ("walk", "vtd-ss-4level", "0x0"),
        ("walk", "vtd-ss-4level", "0x200000", "--map", "0x200000:0x40000000:2M"),
        ("nested", "intel-vtd-48", "0x0"),
        ("compare", "intel-vtd-48", "amd-v1"),
        ("scenario", str(DATA / "scenarios" / "vtd-nic.toml")),
        ("replay", str(DATA / "traces" / "nic_rx_small.csv")),
    ],
    ids=lambda a: " ".join(Path(x).name for x in a),
)
def test_text_output_never_loads_matplotlib(argv):
    assert "matplotlib" not in loaded_after(cli(*argv))


def test_a_figure_output_does_load_matplotlib(tmp_path):
    # The same command written as a figure: the check above is not vacuous.
    assert "matplotlib" in loaded_after(cli("walk", "vtd-ss-4level", "0x0", "-o", str(tmp_path / "w.svg")))


# -- views registered by a type's qualified name ------------------------------------------------
class Named:
    """A model whose view is registered by name, before the class is looked at."""


class NamedChild(Named):
    pass


@pytest.fixture
def clean_registry(monkeypatch):
    """Registrations made by a test vanish after it (other tests list every registered type)."""
    monkeypatch.setattr(display, "_HANDLERS", dict(display._HANDLERS))
    monkeypatch.setattr(display, "_BY_NAME", dict(display._BY_NAME))


def test_a_view_registered_by_name_is_found_for_the_type_and_its_subclasses(clean_registry):
    display.register(f"{__name__}.Named", "text", lambda obj: "named view")
    assert display.text(Named()) == "named view"
    assert display.text(NamedChild()) == "named view"
    assert (Named, display.Output.TEXT) in display.registered()


def test_every_view_registered_by_name_names_a_real_type():
    # registered() imports each named type's module: a renamed or moved type fails here.
    for cls, output in display.registered():
        assert isinstance(cls, type) and isinstance(output, display.Output)


def test_register_refuses_what_is_neither_a_type_nor_a_name(clean_registry):
    with pytest.raises(TypeError, match="qualified name"):
        display.register(3, "text", str)
