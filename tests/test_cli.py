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


# -- walk, nested, compare, scenario, debugfs import ---------------------------------------------
DEBUGFS = ROOT / "data" / "debugfs"
SCENARIOS = ROOT / "data" / "scenarios"


def _one_line_failure(r, *needles):
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    for n in needles:
        assert n in r.stderr


@pytest.mark.parametrize("cmd", ["walk", "nested", "compare", "scenario"])
def test_new_commands_have_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0 and "usage: iommu-lab " + cmd in r.stdout


def test_walk_prints_each_entry_and_the_translation():
    r = run("walk", "vtd-ss-4level", "--map", "0x200000:0x40000000:2M", "0x201000")
    assert r.returncode == 0
    assert "SL-PDE" in r.stdout and "PA 0x4000_1000" in r.stdout


def test_walk_writes_an_svg_figure(tmp_path):
    out = tmp_path / "w.svg"
    r = run("walk", "vtd-ss-4level", "--map", "0x1000:0x2000:4K:r", "0x1000", "-o", str(out))
    assert r.returncode == 0 and out.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("args,needle", [
    (("walk", "vtd-ss-9level", "0x1000"), "vtd-ss-9level"),
    (("walk", "vtd-ss-4level", "--map", "0x1000:zz:4K", "0x1000"), "'zz'"),
    (("walk", "vtd-ss-4level", "--map", "0x1000", "0x1000"), "IOVA:PA:SIZE"),
    (("walk", "vtd-ss-4level", "--map", "0x1001:0x2000:4K", "0x1000"), "walk: error:"),
])
def test_walk_bad_input_exits_2_in_one_line(args, needle):
    _one_line_failure(run(*args), needle)


def test_nested_shows_the_two_dimensional_grid():
    r = run("nested", "intel-vtd-48", "--map", "0x1000:0x2000:4K", "0x1000")
    assert r.returncode == 0 and "S2#1" in r.stdout and "HPA" in r.stdout


def test_nested_on_a_platform_without_nesting_exits_2_saying_why():
    _one_line_failure(run("nested", "power9-pseries", "0x1000"), "EOPNOTSUPP", "no nesting")


def test_compare_writes_csv_rows_per_platform_and_policy(tmp_path):
    out = tmp_path / "c.csv"
    r = run("compare", "intel-vtd-48", "power9-pseries", "--ram", "16G", "-o", str(out))
    assert r.returncode == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("platform,policy") and len(lines) == 5


def test_compare_of_unknown_platform_exits_2():
    _one_line_failure(run("compare", "intel-vtd-48", "sparc-iommu"), "sparc-iommu")


def test_scenario_replays_to_layout_and_walks():
    r = run("scenario", str(SCENARIOS / "vtd-nic.toml"))
    assert r.returncode == 0 and "nic0" in r.stdout and "op 3: walk 0x10_0000" in r.stdout


def test_scenario_csv_and_layout_of_a_scenario(tmp_path):
    out = tmp_path / "areas.csv"
    assert run("scenario", str(SCENARIOS / "vtd-nic.toml"), "-o", str(out)).returncode == 0
    assert "0x100000" in out.read_text()
    r = run("layout", str(SCENARIOS / "vtd-nic.toml"))
    assert r.returncode == 0 and "mapped" in r.stdout


def test_bad_scenario_exits_2_naming_file_op_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[ops]]\nop = "map"\nlength = "lots"\n')
    _one_line_failure(run("scenario", str(bad)), str(bad), "ops[0].length")


def test_import_detects_a_domain_translation_dump_and_lists_its_walks():
    r = run("import", str(DEBUGFS / "domain_translation_struct"))
    assert r.returncode == 0
    assert "device 0000:00:02.0: vtd-ss-4level, root 0x10000000" in r.stdout and "0x200000000" in r.stdout


def test_import_detects_dmar_translation_struct_and_writes_csv(tmp_path):
    out = tmp_path / "ctx.csv"
    r = run("import", str(DEBUGFS / "dmar_translation_struct"), "-o", str(out))
    assert r.returncode == 0 and "00:1f.3" in out.read_text()


def test_import_of_a_corrupt_dump_exits_2_naming_file_and_line(tmp_path):
    bad = tmp_path / "dts"
    bad.write_text((DEBUGFS / "domain_translation_struct").read_text().replace("0x0000000010002003", "0x00000000100020zz", 1))
    _one_line_failure(run("import", str(bad)), f"{bad}:3:")


def test_scenario_diff_lists_what_changed_between_two_scenarios(tmp_path):
    r = run("scenario", str(SCENARIOS / "vtd-nic.toml"), "--diff", str(SCENARIOS / "vtd-nic-unmapped.toml"))
    assert r.returncode == 0
    assert "- area       [0x40_0000, 0x40_0fff] r-" in r.stdout and "+ reserved" in r.stdout
    out = tmp_path / "d.csv"
    assert run("scenario", str(SCENARIOS / "vtd-nic.toml"), "--diff", str(SCENARIOS / "vtd-nic-unmapped.toml"), "-o", str(out)).returncode == 0
    assert out.read_text().splitlines()[0] == "what,change,start,last,detail"


def test_nested_and_compare_write_figures(tmp_path):
    for args, name in ((("nested", "intel-vtd-48", "--map", "0x1000:0x2000:4K", "0x1000"), "n.svg"),
                       (("compare", "intel-vtd-48", "arm-smmuv3-48", "--ram", "4G"), "c.svg")):
        out = tmp_path / name
        r = run(*args, "-o", str(out))
        assert r.returncode == 0 and out.read_text().lstrip().startswith("<?xml")


def test_compare_takes_its_workload_from_a_scenario_file(tmp_path):
    out = tmp_path / "cmp.csv"
    r = run("compare", "intel-vtd-48", "power9-pseries", "--workload", str(ROOT / "data" / "scenarios" / "vtd-nic.toml"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "intel-vtd-48" in text and "power9-pseries" in text
    # the scenario maps 2 MiB + 4 KiB: that is the workload's size on every row
    import csv

    rows = list(csv.DictReader(text.splitlines()))
    assert {int(row["bytes_total"], 0) for row in rows} == {2 * 1024 * 1024 + 4096}


def test_compare_with_a_missing_scenario_exits_2():
    r = run("compare", "intel-vtd-48", "--workload", "no-such.toml")
    assert r.returncode == 2 and "no-such.toml" in r.stderr and r.stderr.count("\n") == 1


def test_replay_compares_flush_policies_on_a_trace_file(tmp_path):
    import pandas as pd

    out = tmp_path / "replay.csv"
    r = run("replay", "data/traces/nvme_sg_small.csv", "--platform", "intel-vtd-48", "arm-smmuv3-48",
            "--policy", "strict", "lazy", "-o", str(out))
    assert r.returncode == 0, r.stderr
    f = pd.read_csv(out)
    assert len(f) == 4 and set(f["flush"]) == {"strict", "lazy"}
    strict = f[f["flush"] == "strict"]
    lazy = f[f["flush"] == "lazy"]
    assert (strict["invalidations"] > 0).all() and (lazy["invalidations"] == 0).all()
    assert (lazy["flushes"] >= 1).all()


def test_replay_of_a_missing_or_malformed_trace_exits_2(tmp_path):
    r = run("replay", "no-such-trace.csv")
    assert r.returncode == 2 and "no such trace file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("t,op,device,pasid,iova,length,pa,stage\n0,jump,d,,0x1000,8,0,1\n")
    r = run("replay", str(bad))
    assert r.returncode == 2 and "'jump'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_reader_that_goes_away_stops_the_cli_quietly(monkeypatch):
    # `iommu-lab import dump | head`: the pipe closes, the CLI stops with no traceback.
    import subprocess
    import sys

    code = ("import sys, iommu_lab.cli as c\n"
            "c._cmd_platforms = lambda args: (_ for _ in ()).throw(BrokenPipeError(32, 'Broken pipe'))\n"
            "p = c.build_parser\n"
            "def build():\n"
            "    parser = p()\n"
            "    parser._subparsers._group_actions[0].choices['platforms'].set_defaults(func=c._cmd_platforms)\n"
            "    return parser\n"
            "c.build_parser = build\n"
            "sys.exit(c.main(['platforms']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "error" not in r.stderr
