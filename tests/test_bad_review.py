"""Bad input to the design-review API: workloads, their cost and the comparison table."""

from __future__ import annotations

import numpy as np
from badinput import Bad, parametrize

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware.platform import platforms
from iommu_lab.review import Workload, compare_table

W = Workload([(0, "64M")], name="small")


def _snap():
    return (W.guest_ram, W.bars, W.name)


def _fits(expected):
    def check(value):
        assert value == expected

    return check


def row(id, call, error, kind="leak", **kw):
    return Bad(f"badinput-review-{id}", "api", kind, call, error, snapshot=_snap, **kw)


CASES = [
    row("float-start-truncated", lambda: Workload([(4096.7, 4096)]), TypeError, "silent", words=["float", "4096.7"]),
    row("float-size", lambda: Workload([(0, 4096.5)]), TypeError, "silent", words=["float"]),
    row("negative-start", lambda: Workload([(-4096, "4K")]), ValueError, "silent", words=["64-bit"]),
    row("wrapping-range", lambda: Workload([(0xFFFF_FFFF_FFFF_F000, "8K")]), ValueError, "silent", words=["wraps"]),
    row("size-huge-power", lambda: Workload([(0, "2^99999999999")]), ValueError, "memory", words=["at most 64"],
        isolate=True, mem_mb=300, seconds=5),
    row("ram-as-text", lambda: Workload("0x0..0xfff"), TypeError, words=["sequence"]),
    row("entry-not-pair", lambda: Workload([(0, 1, 2)]), TypeError, words=["(start, size)"]),
    row("no-ram", lambda: Workload([]), ValueError, words=["at least one"]),
    row("name-not-text", lambda: Workload([(0, "4K")], name=5), TypeError, words=["name"]),
    row("pc-guest-bool", lambda: Workload.pc_guest(True), TypeError, "silent", words=["bool"]),
    row("pc-guest-zero", lambda: Workload.pc_guest(0), ValueError, "silent", words=["empty"]),
    row("pc-guest-over-space", lambda: Workload.pc_guest("2^64"), ValueError, "silent", words=["64-bit"]),
    row("pc-guest-too-many-pages", lambda: Workload.pc_guest("1P").cost("intel-vtd-48", "4K"), ValueError, "memory",
        words=["leaf entries", "largest"], isolate=True, mem_mb=600, seconds=20),
    row("cost-unknown-platform", lambda: W.cost("intel-vtd48"), IommuError, errno="ENOENT", words=["intel-vtd-48"]),
    row("cost-platform-none", lambda: W.cost(None), TypeError, words=["Platform", "NoneType"]),
    row("cost-bad-policy", lambda: W.cost("intel-vtd-48", "huge"), ValueError, "message", words=["'huge'", "largest"]),
    row("cost-policy-list", lambda: W.cost("intel-vtd-48", ["4K"]), ValueError, words=["policy"]),
    row("compare-platform-int", lambda: compare_table([5], W), TypeError, words=["int 5"]),
    row("compare-platforms-none", lambda: compare_table(None, W), TypeError, words=["platforms"]),
    row("compare-platforms-empty", lambda: compare_table([], W), ValueError, words=["empty"]),
    row("compare-workload-not", lambda: compare_table(["intel-vtd-48"], "16G"), TypeError, words=["Workload"]),
    row("compare-bad-policy-first", lambda: compare_table(["intel-vtd-48"], W, policies=["4K", "x"]), ValueError,
        words=["'x'"]),
    row("cost-takes-a-name", lambda: W.cost("intel-vtd-48"), None, "refused",
        check=lambda c: c == W.cost(platforms.get("intel-vtd-48"))),
    row("fits-takes-a-name", lambda: W.fits("power9-pseries"), None, "refused", check=_fits(True)),
    row("numpy-ints-accepted", lambda: Workload([(np.uint64(0), np.int64(4096))]).total_bytes, None, "refused",
        check=_fits(4096)),
    row("compare-one-name", lambda: len(compare_table("intel-vtd-48", W)), None, "refused", check=_fits(2)),
]

test_bad_input = parametrize(CASES)
