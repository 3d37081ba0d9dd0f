"""Binder cannot drift from the project: a fresh environment built from binder/ alone runs
every tutorial.

repo2docker installs ``binder/requirements.txt`` from the repository root; this test does the
same into a new virtual environment (no Docker here), then executes the notebooks with nbmake.
"""

import re
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_binder_requirements_install_the_project_with_its_notebook_extra_only():
    lines = [
        l.strip()
        for l in (ROOT / "binder/requirements.txt").read_text().splitlines()
        if l.strip() and not l.startswith("#")
    ]
    assert lines == [".[notebook]"], (
        "binder/requirements.txt must name only the project: one dependency list, in pyproject.toml"
    )
    assert (
        "notebook"
        in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )


def test_binder_runtime_pins_a_python_the_project_supports():
    runtime = (ROOT / "binder/runtime.txt").read_text().strip()
    m = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert m, f"binder/runtime.txt should read like 'python-3.11', got {runtime!r}"
    floor = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert int(m.group(1)) >= int(re.search(r"3\.(\d+)", floor).group(1))
    assert not (ROOT / "binder/environment.yml").exists(), (
        "environment.yml would override requirements.txt on Binder"
    )


@pytest.mark.slow
def test_fresh_environment_from_binder_runs_every_notebook(tmp_path):
    env_dir = tmp_path / "binder-venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"

    def run(*args, **kw):
        r = subprocess.run(
            [str(py), *args], cwd=kw.pop("cwd", ROOT), capture_output=True, text=True, **kw
        )
        assert r.returncode == 0, (
            f"{' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        )
        return r

    run("-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt")
    # The project must come from a real (non-editable) install: prove the import resolves there.
    # Run from outside the checkout, so the import cannot pick up the source tree.
    where = run(
        "-c",
        "import iommu_lab, iommu_lab.core.paths as p; print(iommu_lab.__file__); print(p.data_dir())",
        cwd=tmp_path,
    ).stdout
    module_file, data = where.splitlines()
    assert module_file.startswith(str(env_dir)) and data.startswith(str(env_dir)), where
    # Test tooling only; the notebooks' own dependencies must all come from binder/.
    run("-m", "pip", "install", "--quiet", "pytest", "nbmake")
    notebooks = sorted(str(p) for p in (ROOT / "notebooks").glob("*.ipynb"))
    run(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbmake",
        "--nbmake-timeout=300",
        *notebooks,
        "-o",
        "addopts=",
        "-o",
        "filterwarnings=",
        cwd=tmp_path,
    )
