"""The import and layout commands on every kind of artefact: text, tables and figures."""

from pathlib import Path

import pytest

from iommu_lab.cli import main
from iommu_lab.io import read_dmesg
from iommu_lab.render.faults import faults, faults_data

DATA = Path(__file__).resolve().parent.parent / "data"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("rel,suffix", [
    ("sysfs/intel-host/iommu_groups/1/reserved_regions", "svg"),
    ("sysfs/intel-host/iommu_groups", "png"),
    ("debugfs/v6.7/0000-00-02.0_domain_translation_struct", "svg"),
    ("dmesg/smmuv3.log", "png"),
])
def test_import_draws_a_figure_for_every_kind_that_has_one(capsys, tmp_path, rel, suffix):
    out = tmp_path / f"fig.{suffix}"
    code, _o, err = run(capsys, "import", str(DATA / rel), "-o", str(out))
    assert code == 0 and out.stat().st_size > 1000, err


def test_import_of_a_first_stage_dump_takes_the_pgtt_from_the_context_file(capsys):
    code, out, _e = run(capsys, "import", str(DATA / "debugfs/v6.7/0000-3a-00.1_pasid1_domain_translation_struct"),
                        "--context", str(DATA / "debugfs/v6.7/dmar_translation_struct"))
    assert code == 0 and "x86-64-4level" in out and "PGTT from dmar2" in out
    code, out, _e = run(capsys, "import", str(DATA / "debugfs/v6.7/0000-3a-00.1_pasid1_domain_translation_struct"),
                        "--pgtt", "first-stage")
    assert code == 0 and "x86-64-4level" in out


def test_import_of_dmar_rows_prints_the_pointer_the_pgtt_uses(capsys):
    code, out, _e = run(capsys, "import", str(DATA / "debugfs/v6.7/dmar_translation_struct"))
    assert code == 0 and "first-stage, fs table 0x" in out and "ss table" not in out


@pytest.mark.parametrize("rel,words", [
    ("debugfs/v6.7/passthrough_domain_translation_struct", "pass-through"),
    ("debugfs/v6.7/disabled_domain_translation_struct", "not enabled on dmar1"),
])
def test_import_of_a_dump_without_a_table_says_why(capsys, rel, words):
    code, out, _e = run(capsys, "import", str(DATA / rel))
    assert code == 0 and words in out


def test_layout_of_a_groups_directory_draws_each_group_with_relaxable_regions(capsys, tmp_path):
    code, out, _e = run(capsys, "layout", str(DATA / "sysfs/intel-host/iommu_groups"))
    assert code == 0 and "group 1" in out and "direct-relaxable" in out and "not enforced" in out
    svg = tmp_path / "groups.svg"
    assert run(capsys, "layout", str(DATA / "sysfs/intel-host/iommu_groups"), "-o", str(svg))[0] == 0


def test_layout_msi_option_says_software_or_hardware(capsys):
    arm = DATA / "sysfs/arm-host/iommu_groups"
    assert "sw-msi" in run(capsys, "layout", str(arm))[1]
    out = run(capsys, "layout", str(arm), "--msi", "hardware")[1]
    assert "sw-msi" not in out and " msi" in out


def test_dmesg_import_lists_every_fault_with_its_line(capsys):
    code, out, _e = run(capsys, "import", str(DATA / "dmesg/intel-5.1-5.11.log"))
    assert code == 0 and "line 2:" in out and "dmar_fault: 10 callbacks suppressed" in out


def test_fault_figure_data_puts_each_device_on_a_track_with_kind_markers():
    log = read_dmesg(DATA / "dmesg/amd-5.x+.log")
    data = faults_data(log)
    assert [t.who for t in data.tracks] == ["0000:01:00.0", "0000:c4:00.0", "0000:00:00.2"]
    assert faults(log) is not None
