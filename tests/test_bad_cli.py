"""Bad input to the ``iommu-lab`` command: every command and flag, run in-process.

Each row must exit 2 with one line on stderr (the last line is checked for the words) and no
traceback; the internal-error row must exit 1 saying so and where to report it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

from badinput import Bad, CliError, cli, cli_call, parametrize

TMP = Path(tempfile.mkdtemp(prefix="iommu-lab-bad-cli-"))
DEEP = TMP / "deep.toml"
DEEP.write_text("a = " + "[" * 5000 + "]" * 5000)


def row(id, argv, kind, words=(), **kw):
    return Bad(f"badinput-cli-{id}", "cli", kind, cli_call(argv), CliError, words=words, **kw)


def _internal_error():
    def boom(args):
        raise RuntimeError("a bug inside the model")

    with mock.patch("iommu_lab.cli._cmd_platforms", boom):
        return cli_call(["platforms"], exit_code=1)()


def _help_exits_0():
    code, out, err = cli(["walk", "--help"])
    assert code == 0 and "usage: iommu-lab walk" in out and not err
    return code


W = "vtd-ss-4level"

CASES = [
    # -- the command line itself -------------------------------------------------------------------
    row("no-command", [], "leak", ["required", "COMMAND"]),
    row("unknown-command", ["wlak"], "message", ["invalid choice", "walk"]),
    row("unknown-flag", ["platforms", "--colour"], "message", ["unrecognized", "--colour"]),
    row("extra-argument", ["info", "intel-vtd-48", "extra"], "message", ["unrecognized", "extra"]),
    row("missing-argument", ["info"], "message", ["required", "platform"]),
    row("bad-style", ["info", "intel-vtd-48", "--style", "blue"], "message", ["--style", "'blue'", "light"]),
    row("flag-without-value", ["info", "intel-vtd-48", "-o"], "message", ["-o", "expected one argument"]),
    # -- output paths ------------------------------------------------------------------------------
    row("output-missing-dir", ["info", "intel-vtd-48", "-o", "/missing/dir/x.svg"], "leak",
        ["/missing/dir", "does not exist"]),
    row("output-unknown-suffix", ["info", "intel-vtd-48", "-o", str(TMP / "x.docx")], "message",
        ["unknown suffix", ".svg"]),
    row("output-is-directory", ["info", "intel-vtd-48", "-o", str(TMP / "d.svg")], "leak", ["directory"]),
    row("output-csv-without-table", ["walk", W, "0x1000", "-o", str(TMP / "nothing-here" / "x.csv")], "leak",
        ["does not exist"]),
    row("output-nul-in-path", ["info", "intel-vtd-48", "-o", "a\0b.svg"], "leak", ["NUL"]),
    # -- platforms -----------------------------------------------------------------------------------
    row("info-typo-suggests", ["info", "intel-vtd48"], "message", ["'intel-vtd48'", "did you mean", "intel-vtd-48"]),
    row("info-unknown-lists", ["info", "sparc-iommu"], "message", ["sparc-iommu", "power9-pseries"]),
    row("info-huge-name-cut", ["info", "x" * 100_000], "message", ["no platform"], max_message=800),
    row("compare-typo", ["compare", "intel-vtd-48", "armsmmuv3-48"], "message", ["did you mean", "arm-smmuv3-48"]),
    row("nested-typo", ["nested", "intel-vtd-47", "0x1000"], "message", ["intel-vtd-48"]),
    row("nested-no-nesting", ["nested", "power9-pseries", "0x1000"], "message", ["EOPNOTSUPP"]),
    row("replay-platform-typo", ["replay", "data/traces/nvme_sg_small.csv", "--platform", "intel-vtd-4"],
        "message", ["did you mean"]),
    # -- walk ------------------------------------------------------------------------------------------
    row("walk-unknown-format", ["walk", "vtd-ss-9level", "0x1000"], "message", ["vtd-ss-9level", "did you mean"]),
    row("walk-huge-power", ["walk", W, "2^99999999999"], "memory", ["IOVA", "at most 64"],
        isolate=True, mem_mb=400, seconds=10),
    row("walk-huge-width", ["walk", W, "99999999999-bit"], "memory", ["at most 64"], isolate=True, mem_mb=400,
        seconds=10),
    row("walk-long-digits", ["walk", W, "9" * 100_000], "message", ["characters"], max_message=500),
    row("walk-iova-over-u64", ["walk", W, "0x1_0000_0000_0000_0000"], "silent", ["64"]),
    row("walk-iova-garbage", ["walk", W, "banana"], "message", ["'banana'", "0x1000"]),
    row("walk-map-short", ["walk", W, "--map", "0x1000", "0x1000"], "message", ["IOVA:PA:SIZE"]),
    row("walk-map-long", ["walk", W, "--map", "1:2:3:rw:x", "0x1000"], "message", ["IOVA:PA:SIZE"]),
    row("walk-map-bad-pa", ["walk", W, "--map", "0x1000:zz:4K", "0x1000"], "message", ["'zz'", "PA"]),
    row("walk-map-bad-prot", ["walk", W, "--map", "0x1000:0x2000:4K:q", "0x1000"], "message", ["'q'"]),
    row("walk-map-misaligned", ["walk", W, "--map", "0x1001:0x2000:4K", "0x1000"], "message", ["EINVAL"]),
    row("walk-map-huge-size", ["walk", W, "--map", "0x0:0x0:2^99999", "0x1000"], "memory", ["at most 64"],
        isolate=True, mem_mb=400, seconds=10),
    row("walk-bad-access", ["walk", W, "0x1000", "--access", "rw"], "message", ["--access", "'rw'"]),
    # -- nested and compare -------------------------------------------------------------------------------
    row("nested-ram-huge", ["nested", "intel-vtd-48", "0x1000", "--ram", "2^99999999999"], "memory",
        ["--ram", "at most 64"], isolate=True, mem_mb=400, seconds=10),
    row("nested-ram-zero", ["nested", "intel-vtd-48", "0x1000", "--ram", "0"], "silent", ["size"]),
    row("compare-ram-garbage", ["compare", "intel-vtd-48", "--ram", "lots"], "message", ["'lots'", "4K"]),
    row("compare-ram-over-space", ["compare", "intel-vtd-48", "--ram", "2^64"], "silent", ["64-bit"]),
    row("compare-ram-zero", ["compare", "intel-vtd-48", "--ram", "0"], "silent", ["empty"]),
    row("compare-ram-too-many-pages", ["compare", "intel-vtd-48", "--ram", "1P"], "memory",
        ["leaf entries", "largest"], isolate=True, mem_mb=600, seconds=20),
    row("compare-ram-and-workload", ["compare", "intel-vtd-48", "--ram", "4G", "--workload", "x.toml"], "message",
        ["not allowed with"]),
    row("compare-missing-workload", ["compare", "intel-vtd-48", "--workload", str(TMP / "none.toml")], "leak",
        ["none.toml"]),
    # -- replay and scenario ----------------------------------------------------------------------------------
    row("replay-missing-trace", ["replay", str(TMP / "none.csv")], "leak", ["no such trace file"]),
    row("replay-bad-policy", ["replay", "data/traces/nvme_sg_small.csv", "--policy", "eager"], "message",
        ["'eager'", "strict"]),
    row("scenario-missing", ["scenario", str(TMP / "none.toml")], "leak", ["none.toml"]),
    row("scenario-missing-argument", ["scenario"], "message", ["required", "file"]),
    # -- exit statuses other than 2 ---------------------------------------------------------------------------
    Bad("badinput-cli-internal-error-exits-1", "cli", "leak", _internal_error, CliError,
        words=["internal error", "RuntimeError", "report"]),
    Bad("badinput-cli-help-exits-0", "cli", "refused", _help_exits_0, None),
]

(TMP / "d.svg").mkdir(exist_ok=True)

test_bad_input = parametrize(CASES)
