"""Fuzzing the command line: random argv from the real commands and flags plus garbage.

Runs in-process (``badinput.cli``). Whatever the argv, the command exits 0 or 2, never prints
a traceback, and a refusal is one line on stderr. Values are chosen so no example does a large
legitimate job (a small ``--ram``, no real trace), keeping the whole fuzz to seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from badinput import cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TMP = Path(tempfile.mkdtemp(prefix="iommu-lab-fuzz-cli-"))
(TMP / "bad.csv").write_text("t,op\n0,jump\n")
(TMP / "bad.toml").write_text("[[ops]]\nop = 'map'\nlength = 'lots'\n")
(TMP / "dir.svg").mkdir(exist_ok=True)

COMMANDS = ["platforms", "info", "walk", "nested", "compare", "replay", "scenario", "import", "layout", "wlak", ""]
GARBAGE = ["", "-", "--", "x" * 300, "\u0663", "0x", "2^99999999999", "99999999999-bit", "-1", "nan", "\0"]
VALUES = {
    "platform": ["intel-vtd-48", "power9-pseries", "intel-vtd48", "sparc", "INTEL-VTD-48"],
    "format": ["vtd-ss-4level", "arm-lpae-s2-4k-40bit", "vtd-ss-9level"],
    "address": ["0x1000", "0x201000", "4K", "0x1_0000_0000_0000_0000", "banana", "2^64", "0b101"],
    "map": ["0x1000:0x2000:4K", "0x1000:0x2000:4K:r", "0x1001:0x2000:4K", "1:2", "0x0:0x0:2^99", "a:b:c:d:e",
            "0x1000:0x2000:4K:q"],
    "ram": ["64M", "0", "lots", "2^64", "1P", "2^99999"],
    "file": [str(TMP / "missing.csv"), str(TMP / "bad.csv"), str(TMP / "bad.toml"), str(TMP), "/dev/null"],
    "output": ["/missing/dir/x.svg", str(TMP / "x.docx"), str(TMP / "o.txt"), str(TMP / "dir.svg"), "-"],
    "policy": ["strict", "lazy", "eager"],
    "style": ["light", "dark", "blue"],
}
FLAGS = [("-o", "output"), ("--output", "output"), ("--style", "style"), ("--map", "map"), ("--ram", "ram"),
         ("--access", "policy"), ("--platform", "platform"), ("--policy", "policy"), ("--pgsizes", "ram"),
         ("--nested", None), ("--diff", "file"), ("--workload", "file"), ("--help", None), ("--bogus", None)]
POSITIONAL = {"info": ["platform"], "walk": ["format", "address"], "nested": ["platform", "address"],
              "compare": ["platform", "platform"], "replay": ["file"], "scenario": ["file"], "import": ["file"],
              "layout": ["platform"]}


@st.composite
def argvs(draw):
    cmd = draw(st.sampled_from(COMMANDS))
    argv = [cmd] if cmd else []
    for kind in POSITIONAL.get(cmd, []):
        if draw(st.booleans()) or kind != "platform":
            argv.append(draw(st.sampled_from(VALUES[kind] + GARBAGE[:3])))
    for _ in range(draw(st.integers(0, 3))):
        flag, kind = draw(st.sampled_from(FLAGS))
        argv.append(flag)
        if kind is not None and draw(st.integers(0, 9)):
            argv.append(draw(st.sampled_from(VALUES[kind] + GARBAGE)))
    if draw(st.integers(0, 4)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(GARBAGE) | st.text(max_size=6)))
    if cmd in ("compare", "nested") and "--ram" not in argv and "--workload" not in argv:
        argv += ["--ram", "64M"]  # keep each example's legitimate work small
    return argv


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=argvs())
def test_any_argv_exits_0_or_2_in_one_line_without_a_traceback(argv):
    code, out, err = cli(argv)
    assert "Traceback" not in out + err, f"traceback for {argv!r}:\n{err[-2000:]}"
    assert code in (0, 2), f"exit {code} for {argv!r}: {err[-500:]}"
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, f"{len(lines)} lines for {argv!r}: {err[-800:]}"
