"""Bad input on the importers: sysfs, debugfs, dmesg, scenario files and the import/layout CLI."""

import os
import tempfile
from pathlib import Path

from badinput import Bad, CliError, cli_call, parametrize

from iommu_lab.io import (
    ParseError,
    explain,
    parse_devtbl,
    parse_dmar_translation,
    parse_dmesg,
    parse_domain_translation,
    parse_group_listing,
    parse_iommu_regset,
    parse_register_reads,
    parse_reserved_regions,
    read,
    read_dmesg,
    read_domain_translation,
    read_iommu_groups,
    read_reserved_regions,
)
from iommu_lab.io.scenario import Scenario

TMP = Path(tempfile.mkdtemp(prefix="iommu-lab-bad-io-"))
DATA = Path(__file__).resolve().parent.parent / "data"
HDR = "IOVA_PFN\t\tPML5E\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE\n"
ROW5 = "0x0000000000000 |\t" + "\t".join(["0x0000000000000000", "0x0000000010001003", "0x0000000010002003",
                                         "0x0000000010003003", "0x0000000123400003"]) + "\n"
DMAR_HDR = "IOMMU dmar0: Root Table Address: 0x1000\nB.D.F\tRoot_entry\tContext_entry\tPASID\tPASID_table_entry\n"
DMAR_ROW = "00:02.0\t0x0:0x1\t0x0:0x1\t{}\t0x0:0x0:0x0\n"


def _file(name: str, text: str | bytes) -> Path:
    p = TMP / name
    p.parent.mkdir(parents=True, exist_ok=True)
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


def _fifo(name: str) -> Path:
    p = TMP / name
    if not p.exists():
        os.mkfifo(p)
    return p


def _symlink(name: str, target: str) -> Path:
    p = TMP / name
    if not p.is_symlink():
        p.symlink_to(target)
    return p


def _groups(*names: str, type_text: str | None = None) -> Path:
    root = TMP / ("groups-" + "-".join(names) + ("-t" if type_text else ""))
    for n in names:
        d = root / n
        (d / "devices").mkdir(parents=True, exist_ok=True)
        (d / "reserved_regions").write_text("0x00000000fee00000 0x00000000feefffff msi\n")
        if type_text is not None:
            (d / "type").write_text(type_text)
    return root


def dom(text, **kw):
    return lambda: parse_domain_translation(text, **kw)


CASES = [
    # -- sysfs ------------------------------------------------------------------------------
    Bad("io-sysfs-devzero", "sysfs", "memory", lambda: read_reserved_regions(_symlink("resv-zero", "/dev/zero")),
        ParseError, words=["regular file"], isolate=True),
    Bad("io-sysfs-fifo", "sysfs", "time", lambda: read_reserved_regions(_fifo("resv-fifo")), ParseError,
        words=["regular file"], isolate=True, seconds=5),
    Bad("io-sysfs-directory", "sysfs", "leak", lambda: read_reserved_regions(TMP), ParseError, words=["directory"]),
    Bad("io-sysfs-huge", "sysfs", "memory", lambda: read_reserved_regions(_file("big_resv", b"0" * (2 << 20))),
        ParseError, words=["at most"]),
    Bad("io-sysfs-underscore-hex", "sysfs", "silent",
        lambda: parse_reserved_regions("0x0000_1000 0x00001fff direct\n"), ParseError, words=["start", ":1:"]),
    Bad("io-sysfs-nonascii-digit", "sysfs", "silent",
        lambda: parse_reserved_regions("0x\u0661000 0x1fff direct\n"), ParseError, words=["start"]),
    Bad("io-sysfs-unknown-type", "sysfs", "silent", lambda: parse_reserved_regions("0x1000 0x1fff weird\n"),
        ParseError, words=["type", "direct-relaxable"]),
    Bad("io-sysfs-end-before-start", "sysfs", "silent", lambda: parse_reserved_regions("0x2000 0x1fff direct\n"),
        ParseError, words=["inclusive"]),
    Bad("io-sysfs-tabs-accepted", "sysfs", "refused", lambda: parse_reserved_regions("0x1000\t0x1fff\tdirect\n"),
        None, check=lambda r: r[0].start == 0x1000),
    Bad("io-sysfs-bad-msi-type", "sysfs", "message", lambda: parse_reserved_regions("", msi_type="maybe"),
        ValueError, words=["software", "hardware"]),
    Bad("io-sysfs-group-3-and-03", "sysfs", "silent", lambda: read_iommu_groups(_groups("3", "03")), ParseError,
        words=["'03' and '3'", "group 3"]),
    Bad("io-sysfs-group-type-garbage", "sysfs", "silent", lambda: read_iommu_groups(_groups("1", type_text="xyzzy\n")),
        ParseError, words=["DMA-FQ", "iommu_group_show_type"]),
    Bad("io-sysfs-group-nonascii-name", "sysfs", "silent", lambda: read_iommu_groups(_groups("\u0663")), ParseError,
        words=["numbered"]),
    Bad("io-sysfs-listing-device-in-two-groups", "sysfs", "silent",
        lambda: parse_group_listing("/sys/kernel/iommu_groups/1/devices/0000:00:02.0\n"
                                    "/sys/kernel/iommu_groups/2/devices/0000:00:02.0\n"), ParseError,
        words=["one group", ":2:"]),
    Bad("io-sysfs-listing-garbage-line", "sysfs", "message",
        lambda: parse_group_listing("IOMMU Group 1:\nnot a device\n"), ParseError, words=[":2:", "lspci"]),
    Bad("io-sysfs-find-listing-accepted", "sysfs", "refused",
        lambda: read(DATA / "sysfs/listings/find-iommu_groups.txt"), None,
        check=lambda got: [g.number for g in got.value] == [0, 1, 7]),
    # -- debugfs: domain_translation_struct ----------------------------------------------------
    Bad("io-debugfs-pasid-negative", "debugfs", "silent", dom("Device 0000:00:02.0 with pasid -5 @0x1000\n" + HDR),
        ParseError, words=["pasid", ":1:"]),
    Bad("io-debugfs-pasid-nonascii", "debugfs", "silent", dom("Device 0000:00:02.0 with pasid \u0661 @0x1000\n" + HDR),
        ParseError, words=["pasid"]),
    Bad("io-debugfs-pasid-too-wide", "debugfs", "silent", dom("Device 0000:00:02.0 with pasid 1048576 @0x1000\n" + HDR),
        ParseError, words=["2^20"]),
    Bad("io-debugfs-root-underscore", "debugfs", "silent", dom("Device x @0x10_000\n" + HDR), ParseError,
        words=["root"]),
    Bad("io-debugfs-entry-underscore", "debugfs", "silent", dom("Device x @0x1000\n" + HDR + ROW5.replace("0x0000000010001003", "0x00000000_10001003")),
        ParseError, words=["PML4E", ":3:"]),
    Bad("io-debugfs-pfn-nonascii", "debugfs", "silent", dom("Device x @0x1000\n" + HDR + "0x\u0661 |\t" + ROW5.split("|")[1]),
        ParseError, words=["IOVA_PFN"]),
    Bad("io-debugfs-fmt-not-vtd", "debugfs", "silent", dom(HDR + ROW5, fmt="arm-lpae-s2-4k-48bit"), ParseError,
        words=["VT-d table format"]),
    Bad("io-debugfs-fmt-unknown", "debugfs", "leak", dom(HDR + ROW5, fmt="no-such-format"), ParseError,
        words=["format"]),
    Bad("io-debugfs-pgtt-bad", "debugfs", "message", dom("", pgtt=9), ValueError, words=["PGTT", "pasid.h"]),
    Bad("io-debugfs-pgtt-passthrough-with-rows", "debugfs", "silent", dom(HDR + ROW5, pgtt="pass-through"),
        ParseError, words=["pass-through"]),
    Bad("io-debugfs-two-entries", "debugfs", "message", dom(HDR + "0x0000000000000 |\t0x0\t0x0\n"), ParseError,
        words=["3 to 5"]),
    Bad("io-debugfs-six-entries", "debugfs", "message", dom(HDR + ROW5.strip() + "\t0x0\n"), ParseError,
        words=["3 to 5"]),
    Bad("io-debugfs-rewrap-too-long", "debugfs", "message", dom(HDR + ROW5 + "0x0\t0x0\n"), ParseError,
        words=["continuation", ":3:"]),
    Bad("io-debugfs-half-table-mismatch", "debugfs", "message",
        dom("IOVA_PFN PML5E PML4E\n0x0000000000000 | 0x0 0x1\nPDPE PDE PTE\n0x1 0x2 0x3\n0x1 0x2 0x3\n"),
        ParseError, words=["second half-table"]),
    Bad("io-debugfs-binary", "debugfs", "leak", dom(b"\x00\xff\xfe" * 10), ParseError, words=["binary"]),
    Bad("io-debugfs-huge", "debugfs", "memory", lambda: read_domain_translation(_file("big_dts", b"\n" * (5 << 20))),
        ParseError, words=["at most"]),
    Bad("io-debugfs-devzero", "debugfs", "memory", lambda: read_domain_translation(_symlink("dts-zero", "/dev/zero")),
        ParseError, words=["regular file"], isolate=True),
    Bad("io-debugfs-empty-is-pass-through", "debugfs", "refused", dom(""), None, check=lambda d: len(d) == 0),
    Bad("io-debugfs-not-enabled-accepted", "debugfs", "refused", dom("DMA Remapping is not enabled on dmar0\n"), None,
        check=lambda d: d.disabled == ("dmar0",)),
    Bad("io-debugfs-prompt-crlf-accepted", "debugfs", "refused",
        dom("$ cat domain_translation_struct\r\nDevice x @0x1000\r\n" + HDR.replace("\n", "\r\n") + ROW5.upper().replace("0X", "0x")),
        None, check=lambda d: len(d[0].rows) == 1),
    # -- debugfs: dmar_translation_struct, regset, AMD ---------------------------------------
    Bad("io-debugfs-dmar-pasid-negative", "debugfs", "silent", lambda: parse_dmar_translation(DMAR_HDR + DMAR_ROW.format("-5")),
        ParseError, words=["PASID", ":3:"]),
    Bad("io-debugfs-dmar-pasid-underscore", "debugfs", "silent", lambda: parse_dmar_translation(DMAR_HDR + DMAR_ROW.format("1_0")),
        ParseError, words=["PASID"]),
    Bad("io-debugfs-dmar-half-out-of-order", "debugfs", "message",
        lambda: parse_dmar_translation("IOMMU dmar0: Root Table Address: 0x1000\nPASID PASID_table_entry\n-1 0x0:0x0:0x0\n"),
        ParseError, words=["half-table"]),
    Bad("io-debugfs-regset-dup", "debugfs", "silent",
        lambda: parse_iommu_regset("IOMMU: dmar0 Register Base Address: fed90000\nCAP 0x08 0x1\nCAP 0x08 0x2\n"),
        ParseError, words=["twice"]),
    Bad("io-debugfs-regset-offset", "debugfs", "silent",
        lambda: parse_iommu_regset("IOMMU: dmar0 Register Base Address: fed90000\nCAP 0x10000 0x1\n"),
        ParseError, words=["4 KiB"]),
    Bad("io-debugfs-amd-devtbl-short-row", "debugfs", "message",
        lambda: parse_devtbl("DeviceId QWORD[3] QWORD[2] QWORD[1] QWORD[0] iommu\n0000:c4:00.0 0 0 0 iommu3\n"),
        ParseError, words=["QWORD", ":2:"]),
    Bad("io-debugfs-amd-capability-offset", "debugfs", "silent",
        lambda: parse_register_reads("Offset:0x18 Value:0x00000000\n"), ParseError, words=["0x14"]),
    Bad("io-debugfs-not-read-yet", "debugfs", "message", lambda: read(DATA / "debugfs/invalidation_queue"), ParseError,
        words=["invalidation_queue", "not read yet"]),
    Bad("io-debugfs-amd-cmdbuf-not-read-yet", "debugfs", "message", lambda: read(DATA / "amd/cmdbuf"), ParseError,
        words=["AMD cmdbuf", "not read yet"]),
    Bad("io-debugfs-unknown-kind", "debugfs", "message", lambda: read(_file("mystery.txt", "hello world\n")),
        ParseError, words=["kind of file", ":1:"]),
    # -- dmesg --------------------------------------------------------------------------------
    Bad("io-dmesg-cut-intel-line", "dmesg", "message",
        lambda: parse_dmesg("ok\nDMAR: [DMA Read] Request device [00:02.0] fault addr\n"), ParseError,
        words=[":2:", "fault reason"]),
    Bad("io-dmesg-smmu-missing-words", "dmesg", "message",
        lambda: parse_dmesg("arm-smmu-v3 s: event 0x10 received:\narm-smmu-v3 s: \t0x0000000000000000\nother\n"),
        ParseError, words=["raw event word 2", ":3:"]),
    Bad("io-dmesg-amd-no-flags", "dmesg", "silent",
        lambda: parse_dmesg("AMD-Vi: Event logged [IO_PAGE_FAULT device=00:14.0 domain=0x0000 address=0x1000]\n"),
        ParseError, words=["flags"]),
    Bad("io-dmesg-amd-two-line-cut", "dmesg", "message", lambda: parse_dmesg("AMD-Vi: Event logged [\n"), ParseError,
        words=["next line"]),
    Bad("io-dmesg-smmuv2-cut", "dmesg", "message",
        lambda: parse_dmesg("arm-smmu 5000000.iommu: Unhandled context fault: fsr=0x402, iova=\n"), ParseError,
        words=["fsr="]),
    Bad("io-dmesg-long-line", "dmesg", "memory", lambda: parse_dmesg("x" * 10000), ParseError, words=["4096"]),
    Bad("io-dmesg-devzero", "dmesg", "memory", lambda: read_dmesg(_symlink("dmesg-zero", "/dev/zero")), ParseError,
        words=["regular file"], isolate=True),
    Bad("io-dmesg-explain-no-address", "dmesg", "message",
        lambda: explain(parse_dmesg((DATA / "dmesg/intel-pre5.1.log").read_text())[2], None), ValueError,
        words=["no address"]),
    Bad("io-dmesg-explain-bad-target", "dmesg", "leak",
        lambda: explain(parse_dmesg((DATA / "dmesg/intel-pre5.1.log").read_text())[0], 42), TypeError,
        words=["PageTable"]),
    Bad("io-dmesg-counts-bad-bucket", "dmesg", "leak",
        lambda: parse_dmesg((DATA / "dmesg/intel-pre5.1.log").read_text()).counts(bucket=-1), ValueError,
        words=["bucket"]),
    # -- scenario files -------------------------------------------------------------------------
    Bad("io-scenario-fifo", "scenario-toml", "time", lambda: Scenario.load(_fifo("scenario.toml")),
        ParseError, words=["regular file"], isolate=True, seconds=5),
    Bad("io-scenario-devzero", "scenario-toml", "memory", lambda: Scenario.load(_symlink("zero.toml", "/dev/zero")),
        ParseError, words=["regular file"], isolate=True),
    Bad("io-scenario-deep-nesting", "scenario-toml", "leak",
        lambda: Scenario.load(_file("deep.toml", "x = " + "[" * 5000 + "]" * 5000 + "\n")), ValueError,
        words=["nested", "at most"]),
    Bad("io-scenario-huge", "scenario-toml", "memory", lambda: Scenario.load(_file("huge.toml", b"#" * (2 << 20))),
        ParseError, words=["at most"]),
    # -- CLI ----------------------------------------------------------------------------------
    Bad("io-cli-import-missing", "cli", "message", cli_call(["import", str(TMP / "nope")]), words=["no such file"],
        error=CliError),
    Bad("io-cli-import-not-read-yet", "cli", "message", cli_call(["import", str(DATA / "amd/cmdbuf")]),
        words=["not read yet"], error=CliError),
    Bad("io-cli-import-bad-fmt", "cli", "silent",
        cli_call(["import", str(DATA / "debugfs/domain_translation_struct"), "--fmt", "arm-lpae-s2-4k-48bit"]),
        words=["VT-d table format"], error=CliError),
    Bad("io-cli-import-figure-of-regset", "cli", "message",
        cli_call(["import", str(DATA / "debugfs/v6.7/iommu_regset"), "-o", str(TMP / "r.svg")]),
        words=["no figure"], error=CliError),
    Bad("io-cli-layout-of-dmesg", "cli", "message", cli_call(["layout", str(DATA / "dmesg/smmuv3.log")]),
        words=["no IOVA layout"], error=CliError),
    Bad("io-cli-layout-fifo", "cli", "time", cli_call(["layout", str(_fifo("layout-fifo"))]),
        words=["regular file"], error=CliError, isolate=True, seconds=10),
]

test_bad_input = parametrize(CASES)
