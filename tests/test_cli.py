"""The iommu-lab command end to end, in a subprocess, including its failures (exit 2, one line)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ROOT / "data" / "sysfs" / "intel-host" / "iommu_groups"


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "iommu_lab", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=120)


def test_help_lists_every_command():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("platforms", "info", "layout", "import"):
        assert cmd in r.stdout


@pytest.mark.parametrize("cmd", ["platforms", "info", "layout", "import"])
def test_each_command_has_its_own_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0 and "usage: iommu-lab " + cmd in r.stdout


def test_platforms_lists_the_catalogue():
    r = run("platforms")
    assert r.returncode == 0 and "power9-pseries" in r.stdout and "intel-vtd-48" in r.stdout


def test_info_answers_get_info_for_a_platform():
    r = run("info", "power9-pseries")
    assert r.returncode == 0
    assert "[0x0, 0x3fff_ffff]" in r.stdout and "[0x800_0000_0000_0000, 0x800_1fff_ffff_ffff]" in r.stdout


def test_info_of_unknown_platform_exits_2_with_one_line_naming_it():
    r = run("info", "sparc-iommu")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "sparc-iommu" in r.stderr and "power9-pseries" in r.stderr


def test_import_reads_a_groups_tree():
    r = run("import", str(GROUPS))
    assert r.returncode == 0
    assert "group 1 (DMA): 0000:00:1f.0, 0000:00:1f.3" in r.stdout and "direct-relaxable" in r.stdout


def test_import_writes_csv_with_hex_addresses(tmp_path):
    out = tmp_path / "regions.csv"
    r = run("import", str(GROUPS / "7" / "reserved_regions"), "-o", str(out))
    assert r.returncode == 0
    assert out.read_text().splitlines() == ["start,last,type", "0x7b800000,0x7fffffff,direct", "0xfee00000,0xfeefffff,msi"]


def test_import_of_malformed_file_exits_2_naming_file_and_line(tmp_path):
    bad = tmp_path / "reserved_regions"
    bad.write_text("0x00000000fee00000 0x00000000feefffff msi\n0x1000 nothex direct\n")
    r = run("import", str(bad))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"{bad}:2:" in r.stderr and "Traceback" not in r.stderr


def test_unknown_output_suffix_exits_2(tmp_path):
    r = run("info", "intel-vtd-48", "-o", str(tmp_path / "x.docx"))
    assert r.returncode == 2 and "unknown suffix" in r.stderr
