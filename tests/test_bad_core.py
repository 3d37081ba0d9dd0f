"""Bad input to core's readers: sizes, addresses, ranges, permissions, enums, files and TOML.

Every row goes through the one reader a surface uses (``parse_size``, ``parse_address``,
``parse_u64``, ``IovaRange.parse``, ``RangeSet.parse``, ``Perm.parse``, ``member_of``,
``core.files``), so a row here guards every file, argument and widget that reads the same text.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from badinput import Bad, parametrize

from iommu_lab.core.enums import member_of
from iommu_lab.core.errors import IommuError
from iommu_lab.core.files import FileInputError, load_toml, parse_toml, read_text
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import (
    IovaRange,
    RangeSet,
    check_u64,
    exact_int,
    parse_address,
    parse_size,
    parse_u64,
)
from iommu_lab.dma.iova import FlushPolicy

TMP = Path(tempfile.mkdtemp(prefix="iommu-lab-bad-core-"))


def _file(name: str, data: bytes | str) -> Path:
    p = TMP / name
    if not p.exists():
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def _link(name: str, target: str) -> Path:
    p = TMP / name
    if not p.is_symlink():
        os.symlink(target, p)
    return p


def _fifo(name: str) -> Path:
    p = TMP / name
    if not p.exists():
        os.mkfifo(p)
    return p


def _eq(expected):
    def check(value):
        assert value == expected, f"{value!r} != {expected!r}"

    return check


S, R, A = "text", "text", "text"

CASES = [
    # -- sizes: bounded before computing ------------------------------------------------------
    Bad("badinput-size-huge-power", S, "memory", lambda: parse_size("2^99999999999"), ValueError,
        words=["2^", "at most 64"], isolate=True, mem_mb=200, seconds=5),
    Bad("badinput-size-huge-width", S, "memory", lambda: parse_size("99999999999-bit"), ValueError,
        words=["at most 64"], isolate=True, mem_mb=200, seconds=5),
    Bad("badinput-size-power-star", S, "silent", lambda: parse_size("2**65"), ValueError, words=["at most 64"]),
    Bad("badinput-size-long-digits", S, "message", lambda: parse_size("9" * 100_000), ValueError,
        words=["100000 characters", "at most 160"], max_message=300),
    Bad("badinput-size-long-hex", S, "message", lambda: parse_size("0x" + "f" * 5000), ValueError,
        words=["characters"], max_message=300),
    Bad("badinput-size-over-2-64", S, "silent", lambda: parse_size("18446744073709551617"), ValueError,
        words=["2^64"]),
    Bad("badinput-size-unit-overflow", S, "silent", lambda: parse_size("17E"), ValueError, words=["2^64"]),
    Bad("badinput-size-negative", S, "silent", lambda: parse_size("-4K"), ValueError, words=["cannot read", "'4K'"]),
    Bad("badinput-size-fraction", S, "silent", lambda: parse_size("1.5G"), ValueError, words=["cannot read"]),
    Bad("badinput-size-arabic-digits", S, "silent", lambda: parse_size("\u0664\u0660\u0669\u0666"), ValueError,
        words=["cannot read"]),
    Bad("badinput-size-double-underscore", S, "silent", lambda: parse_size("0x1__000"), ValueError,
        words=["cannot read"]),
    Bad("badinput-size-trailing-underscore", S, "silent", lambda: parse_size("4096_"), ValueError,
        words=["cannot read"]),
    Bad("badinput-size-unit-alone", S, "silent", lambda: parse_size("KiB"), ValueError, words=["cannot read"]),
    Bad("badinput-size-float", S, "silent", lambda: parse_size(4096.7), TypeError, words=["float", "4096.7"]),
    Bad("badinput-size-bool", S, "silent", lambda: parse_size(True), TypeError, words=["bool"]),
    Bad("badinput-size-numpy-bool", S, "silent", lambda: parse_size(np.bool_(True)), TypeError, words=["size"]),
    Bad("badinput-size-none", S, "leak", lambda: parse_size(None), TypeError, words=["NoneType"]),
    Bad("badinput-size-numpy-int-accepted", S, "refused", lambda: parse_size(np.uint64(4096)), None,
        check=_eq(4096)),
    Bad("badinput-size-grouped-hex-accepted", S, "refused", lambda: parse_size("0x20_0000"), None,
        check=_eq(2 << 20)),
    # -- exact integers --------------------------------------------------------------------------
    Bad("badinput-int-fraction-refused", S, "silent", lambda: exact_int(4096.7, "iova", integral_floats=True),
        ValueError, words=["4096.7", "whole number"]),
    Bad("badinput-int-big-float-refused", S, "silent", lambda: exact_int(2.0**60, "iova", integral_floats=True),
        ValueError, words=["2^53"]),
    Bad("badinput-int-nan-refused", S, "silent", lambda: exact_int(float("nan"), "iova", integral_floats=True),
        ValueError, words=["nan"]),
    Bad("badinput-int-integral-float-accepted", S, "refused",
        lambda: exact_int(4096.0, "iova", integral_floats=True), None, check=_eq(4096)),
    Bad("badinput-int-numpy-accepted", S, "refused", lambda: check_u64(np.uint64(4096), "iova"), None,
        check=_eq(4096)),
    Bad("badinput-u64-huge-int-message", S, "message", lambda: check_u64(10**5000, "iova"), ValueError,
        words=["bit number", "64-bit"], max_message=200),
    Bad("badinput-u64-long-repr-cut", S, "message", lambda: check_u64("x" * 10_000, "iova"), TypeError,
        words=["iova"], max_message=250),
    # -- addresses ---------------------------------------------------------------------------------
    Bad("badinput-addr-negative", A, "silent", lambda: parse_address("-0x1000"), ValueError, words=["address"]),
    Bad("badinput-addr-over-u64", A, "silent", lambda: parse_address("0x1_0000_0000_0000_0000"), ValueError,
        words=["64-bit"]),
    Bad("badinput-addr-2-64", A, "silent", lambda: parse_address("2^64"), ValueError, words=["64-bit"]),
    Bad("badinput-addr-garbage", A, "message", lambda: parse_address("fee00000h"), ValueError,
        words=["'fee00000h'", "hex"]),
    Bad("badinput-u64-underscore-in-dump", A, "silent",
        lambda: parse_u64("fee0_0000", "root", base=16, underscores=False), ValueError, words=["'_'"]),
    Bad("badinput-u64-unit-in-dump", A, "silent", lambda: parse_u64("4K", "root"), ValueError, words=["'4K'"]),
    Bad("badinput-u64-fullwidth-digit", A, "silent", lambda: parse_u64("\uff11\uff12", "did"), ValueError,
        words=["cannot read"]),
    # -- ranges: one grammar -----------------------------------------------------------------------
    Bad("badinput-rangeset-pair-is-one-range", R, "silent", lambda: RangeSet.parse("0x1000,0x1fff"), None,
        check=_eq(RangeSet([IovaRange(0x1000, 0x1FFF)]))),
    Bad("badinput-rangeset-reads-its-str", R, "refused",
        lambda: RangeSet.parse("{[0x0, 0xfff], [0x2000, 0x2fff]}"), None,
        check=_eq(RangeSet([(0, 0xFFF), (0x2000, 0x2FFF)]))),
    Bad("badinput-rangeset-ambiguous-bare-number", R, "silent", lambda: RangeSet.parse("0x0..0xfff, 1G"),
        ValueError, words=["'1G'", "ambiguous", "START..LAST"]),
    Bad("badinput-rangeset-three-numbers", R, "silent", lambda: RangeSet.parse("0x1000, 0x1fff, 0x3000"),
        ValueError, words=["ambiguous"]),
    Bad("badinput-rangeset-huge-power", R, "memory", lambda: RangeSet.parse("0x0+2^99999999999"), ValueError,
        words=["at most 64"], isolate=True, mem_mb=200, seconds=5),
    Bad("badinput-rangeset-not-text", R, "leak", lambda: RangeSet.parse(b"0x0..0xfff"), TypeError,
        words=["bytes"]),
    Bad("badinput-range-reversed", R, "silent", lambda: IovaRange.parse("0x2000..0x1000"), ValueError,
        words=["above its last"]),
    Bad("badinput-range-empty-side", R, "silent", lambda: IovaRange.parse("0x1000.."), ValueError,
        words=["START..LAST"]),
    Bad("badinput-range-zero-size", R, "silent", lambda: IovaRange.parse("0x1000+0"), ValueError,
        words=["at least 1 byte"]),
    Bad("badinput-range-wraps", R, "silent", lambda: IovaRange.parse("0xffff_ffff_ffff_f000+8K"), ValueError,
        words=["wraps"]),
    Bad("badinput-range-long-text", R, "message", lambda: IovaRange.parse("0x0.." + "1" * 50_000), ValueError,
        words=["characters"], max_message=300),
    Bad("badinput-range-unclosed-bracket", R, "message", lambda: IovaRange.parse("[0x1000, 0x1fff"), ValueError,
        words=["0x1000"]),
    # -- permissions and enums -----------------------------------------------------------------------
    Bad("badinput-perm-unknown-letter", S, "silent", lambda: Perm.parse("rwz"), ValueError, words=["'z'", "r, w, x"]),
    Bad("badinput-perm-bits-outside", S, "silent", lambda: Perm.parse(0x10), ValueError, words=["0x10", "0xf"]),
    Bad("badinput-perm-negative", S, "silent", lambda: Perm.parse(-1), ValueError, words=["READ|WRITE"]),
    Bad("badinput-perm-float", S, "silent", lambda: Perm.parse(3.0), TypeError, words=["float"]),
    Bad("badinput-perm-long-text-cut", S, "message", lambda: Perm.parse("r" * 5000 + "q"), ValueError,
        words=["'q'"], max_message=250),
    Bad("badinput-enum-unknown", S, "message", lambda: member_of(FlushPolicy, "eager", "flush policy"), ValueError,
        words=["'eager'", "strict", "lazy"]),
    Bad("badinput-enum-not-text", S, "leak", lambda: member_of(FlushPolicy, 3, "flush policy", non_text=TypeError),
        TypeError, words=["int 3"]),
    Bad("badinput-enum-long-value-cut", S, "message", lambda: member_of(FlushPolicy, "x" * 10_000, "flush policy"),
        ValueError, words=["flush policy"], max_message=300),
    # -- files: regular, bounded, text ------------------------------------------------------------------
    Bad("badinput-file-dev-zero-link", "platform-toml", "memory",
        lambda: load_toml(_link("zero.toml", "/dev/zero"), what="platform file"), FileInputError,
        words=["character device", "regular file"], isolate=True, mem_mb=300, seconds=5),
    Bad("badinput-file-fifo", "scenario-toml", "time", lambda: load_toml(_fifo("fifo.toml"), what="scenario file"),
        FileInputError, words=["FIFO"], isolate=True, seconds=5),
    Bad("badinput-file-directory", "platform-toml", "leak", lambda: load_toml(TMP, what="platform file"),
        FileInputError, words=["directory"]),
    Bad("badinput-file-missing", "platform-toml", "leak",
        lambda: load_toml(TMP / "no-such.toml", what="platform file"), FileInputError, words=["no such file"]),
    Bad("badinput-file-too-big", "cache-toml", "memory",
        lambda: load_toml(_file("big.toml", "x = 1\n" * 200_000), what="cache file", limit=1 << 20),
        FileInputError, words=["larger than", "1 MiB"]),
    Bad("badinput-file-binary", "text", "leak", lambda: read_text(_file("bin.txt", b"ok\n\x00\x01"), what="dump"),
        FileInputError, words=["binary", ":2"]),
    Bad("badinput-file-latin1", "text", "leak", lambda: read_text(_file("latin.txt", b"a\nb\nna\xefve\n"), what="dump"),
        FileInputError, words=["not UTF-8", ":3", "0xef"]),
    Bad("badinput-file-tabs-are-text", "sysfs", "refused",
        lambda: read_text(_file("tabs.txt", "0x1000\t0x1fff\tmsi\n"), what="reserved_regions"), None),
    Bad("badinput-file-path-not-text", "text", "leak", lambda: read_text(42, what="dump"), TypeError,
        words=["path"]),
    # -- TOML: depth before tomllib, errors with file and line ---------------------------------------------
    Bad("badinput-toml-deep-arrays", "scenario-toml", "leak",
        lambda: load_toml(_file("deep.toml", "a = " + "[" * 5000 + "]" * 5000), what="scenario file"),
        FileInputError, words=["deep", "at most 32", "deep.toml:1"]),
    Bad("badinput-toml-deep-inline-tables", "platform-toml", "leak",
        lambda: parse_toml("a = " + "{b = " * 3000 + "1" + "}" * 3000, what="platform file"),
        FileInputError, words=["at most 32"]),
    Bad("badinput-toml-deep-dotted-key", "cache-toml", "leak",
        lambda: parse_toml("a." * 3000 + "b = 1", what="cache file"), FileInputError, words=["levels deep"]),
    Bad("badinput-toml-malformed-line", "platform-toml", "message",
        lambda: load_toml(_file("bad.toml", "name = 'x'\nwidth = \n"), what="platform file"), FileInputError,
        words=["bad.toml:2", "not valid TOML"]),
    Bad("badinput-toml-huge-integer", "scenario-toml", "leak",
        lambda: parse_toml("x = " + "9" * 5000, what="scenario file"), FileInputError, words=["not valid TOML"]),
    Bad("badinput-toml-brackets-in-strings-are-text", "scenario-toml", "refused",
        lambda: parse_toml("a = '" + "[" * 100 + "'\nb = \"\"\"" + "{" * 100 + "\"\"\""), None),
    Bad("badinput-toml-errors-are-value-errors", "platform-toml", "leak",
        lambda: parse_toml("[x]\n[x]\n", what="platform file"), ValueError, words=["platform file", ":2"]),
]

# A FileInputError is a ValueError: the catalogue checks it as ours.
assert issubclass(FileInputError, ValueError) and not issubclass(FileInputError, IommuError)

test_bad_input = parametrize(CASES)
