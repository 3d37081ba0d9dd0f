"""Bad input to DMA replay: the replay API, trace CSV and Parquet files, cache defaults TOML.

Each row states the error class, the words its message must name and, where a model is
involved, a snapshot that must be unchanged after the refusal. Rows that could exhaust memory
or block run isolated under a memory cap and a timer.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
from badinput import Bad, parametrize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommu_lab.core.errors import IommuError
from iommu_lab.dma.cache import CacheConfig
from iommu_lab.dma.caches import Caches, load_defaults
from iommu_lab.dma.iova import FlushQueue
from iommu_lab.dma.replay import replay
from iommu_lab.dma.trace import Trace, TraceStream
from iommu_lab.dma.whatif import nesting_modes, what_if
from iommu_lab.pagetable.table import PageTable

K4 = 0x1000
BASE = 0x1_0000_0000
DIR = Path(tempfile.mkdtemp(prefix="bad-replay-"))
HEADER = "t,op,device,pasid,iova,length,pa,stage\n"


def _file(name: str, data: bytes | str) -> Path:
    path = DIR / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _good() -> Trace:
    return Trace.from_records([{"t": 0, "op": "map", "iova": BASE, "length": 4 * K4, "pa": 0x4000_0000},
                               {"t": 1, "op": "read", "iova": BASE, "length": 8}])


GOOD_CSV = _good().save(DIR / "good.csv")
GOOD_PQ = _good().save(DIR / "good.parquet")
MISSING = DIR / "missing.csv"
EMPTY = _file("empty.csv", b"")
BINARY = _file("binary.csv", bytes(range(256)) * 8)
LATIN1 = _file("latin1.csv", (HEADER + "0,read,nïc0,,0x1000,8,0,1\n").encode("latin-1"))
TRUNCATED = _file("truncated.csv", HEADER + "0,read,nic0,,0x1000,8,0,1\n1,read,nic0,,0x20")
QUOTE = _file("quote.csv", HEADER + '0,read,"nic0,,0x1000,8,0,1\n')
HEADER_ONLY = _file("header.csv", HEADER)
BAD_COLUMN = _file("column.csv", "t,op,device,pasid,iova,length,pa,stagex\n0,read,d,,0x1000,8,0,1\n")
BAD_VALUE = _file("value.csv", HEADER + "0,read,nic0,,0xZZ,8,0,1\n")
BAD_OP = _file("op.csv", HEADER + "0,jump,nic0,,0x1000,8,0,1\n")
BAD_PQ = _file("bad.parquet", b"PAR1" + b"\x00" * 64 + b"PAR1")
TEXT_PQ = _file("text.parquet", HEADER)
TRUNC_PQ = _file("trunc.parquet", GOOD_PQ.read_bytes()[:-40])
WRONG_PQ = DIR / "wrong.parquet"
pd.DataFrame({"x": [1, 2]}).to_parquet(WRONG_PQ)
SUBDIR = DIR / "dir.csv"
SUBDIR.mkdir()
ZERO = DIR / "zero.csv"
ZERO.symlink_to("/dev/zero")
ZERO_PQ = DIR / "zero.parquet"
ZERO_PQ.symlink_to("/dev/zero")
FIFO = DIR / "fifo.csv"
os.mkfifo(FIFO)
WRONG_SUFFIX = _file("trace.txt", HEADER)
TOML_DEEP = _file("deep.toml", "x = " + "[" * 5000 + "]" * 5000 + "\n")
TOML_BINARY = _file("binary.toml", b"\xff\xfe\x00families")
TOML_BAD_LEVEL = _file("level.toml", '[families."VT-d"]\niotlb = 64\n[families."VT-d".psc]\nx = 4\n')
TOML_PSC_SCALAR = _file("scalar.toml", '[families."VT-d"]\niotlb = 64\npsc = 5\n')
TOML_FAMILY_SCALAR = _file("famscalar.toml", 'families = 3\n')
TOML_TABLE_SCALAR = _file("tabscalar.toml", '[families]\n"VT-d" = 3\n')
TOML_HUGE = _file("huge.toml", '[families."VT-d"]\niotlb = { entries = 1073741824, ways = 1 }\n')
TOML_DIR = DIR / "dir.toml"
TOML_DIR.mkdir()
TOML_ZERO = DIR / "zero.toml"
TOML_ZERO.symlink_to("/dev/zero")
TOML_FIFO = DIR / "fifo.toml"
os.mkfifo(TOML_FIFO)


def _pt():
    pt = PageTable("vtd-ss-4level")
    pt.map(BASE, 0x4000_0000, 4 * K4)
    return pt


PT = _pt()


def _snap(pt=PT):
    return (pt.table_bytes, repr(pt.mappings()))


def row(id, surface, kind, call, error=ValueError, **kw):
    return Bad("replay-" + id, surface, kind, call, error, **kw)


def one_row(**fields) -> Trace:
    return Trace.from_records([{"t": 0, "op": "read", "iova": 0, "length": 8, **fields}])


# a failing map row after a successful one: the in-place replay must not keep the first
FAILING = Trace.from_records([
    {"t": 0, "op": "map", "iova": BASE + 8 * K4, "length": K4, "pa": 0x5000_0000},
    {"t": 1, "op": "read", "iova": BASE + 8 * K4, "length": 8},
    {"t": 2, "op": "map", "iova": BASE, "length": K4, "pa": 0x6000_0000},  # overlaps: EEXIST
])
STAGE2_ONLY = Trace.from_records([{"t": 0, "op": "map", "iova": 0, "length": 0x20_0000, "pa": 0, "stage": 2},
                                  {"t": 1, "op": "read", "iova": 0x1000, "length": 8}])

CASES = [
    # -- trace CSV files ---------------------------------------------------------------------
    row("csv-missing", "trace-csv", "leak", lambda: Trace.read(MISSING), IommuError, errno="ENOENT",
        words=["missing.csv", "no such"]),
    row("csv-empty", "trace-csv", "leak", lambda: Trace.read(EMPTY), words=["empty.csv", "empty", "columns"]),
    row("csv-binary", "trace-csv", "leak", lambda: Trace.read(BINARY), words=["binary.csv", "not a readable"]),
    row("csv-latin1", "trace-csv", "leak", lambda: Trace.read(LATIN1), words=["latin1.csv", "UTF-8", "offset"]),
    row("csv-truncated", "trace-csv", "leak", lambda: Trace.read(TRUNCATED), words=["truncated.csv"]),
    row("csv-open-quote", "trace-csv", "leak", lambda: Trace.read(QUOTE), words=["quote.csv"]),
    row("csv-bad-column", "trace-csv", "message", lambda: Trace.read(BAD_COLUMN),
        words=["column.csv", "stage", "columns"]),
    row("csv-bad-hex", "trace-csv", "message", lambda: Trace.read(BAD_VALUE), words=["value.csv", "iova", "0xZZ"]),
    row("csv-bad-op", "trace-csv", "message", lambda: Trace.read(BAD_OP), words=["op.csv", "jump", "read"]),
    row("csv-directory", "trace-csv", "leak", lambda: Trace.read(SUBDIR), IommuError, errno="EINVAL",
        words=["dir.csv", "directory"]),
    row("csv-dev-zero", "trace-csv", "memory", lambda: Trace.read(ZERO), IommuError, errno="EINVAL",
        words=["zero.csv", "regular file"], isolate=True, mem_mb=400, seconds=10),
    row("csv-fifo", "trace-csv", "time", lambda: Trace.read(FIFO), IommuError, errno="EINVAL",
        words=["fifo.csv", "FIFO"], isolate=True, seconds=10),
    row("csv-fifo-stream", "trace-csv", "time", lambda: TraceStream(FIFO), IommuError, errno="EINVAL",
        words=["fifo.csv", "regular file"], isolate=True, seconds=10),
    row("csv-wrong-suffix", "trace-csv", "message", lambda: Trace.read(WRONG_SUFFIX), words=["trace.txt", ".csv"]),
    row("csv-path-type", "trace-csv", "leak", lambda: Trace.read(42), TypeError, words=["path", "int"]),
    row("csv-header-only", "trace-csv", "refused", lambda: Trace.read(HEADER_ONLY), None,
        check=lambda tr: len(tr) == 0),
    row("csv-too-big", "trace-csv", "memory", lambda: __import__("iommu_lab.dma.trace.files", fromlist=["x"])
        .read_frame(GOOD_CSV, max_bytes=16), words=["good.csv", "TraceStream"]),
    row("csv-stream-rows", "trace-csv", "memory", lambda: TraceStream(GOOD_CSV, rows=0), words=["rows=0", "2**24"]),
    # -- trace Parquet files -----------------------------------------------------------------
    row("pq-garbage", "trace-parquet", "leak", lambda: Trace.read(BAD_PQ), words=["bad.parquet", "parquet"]),
    row("pq-text", "trace-parquet", "leak", lambda: Trace.read(TEXT_PQ), words=["text.parquet"]),
    row("pq-truncated", "trace-parquet", "leak", lambda: Trace.read(TRUNC_PQ), words=["trunc.parquet"]),
    row("pq-wrong-columns", "trace-parquet", "message", lambda: Trace.read(WRONG_PQ),
        words=["wrong.parquet", "lacks column"]),
    row("pq-dev-zero", "trace-parquet", "memory", lambda: Trace.read(ZERO_PQ), IommuError, errno="EINVAL",
        words=["zero.parquet", "regular file"], isolate=True, mem_mb=400, seconds=10),
    row("pq-missing", "trace-parquet", "leak", lambda: TraceStream(DIR / "no.parquet"), IommuError,
        errno="ENOENT", words=["no.parquet"]),
    # -- the replay API ----------------------------------------------------------------------
    row("row-2^64", "api", "memory", lambda: replay(one_row(length=(1 << 64) - 1), PageTable("vtd-ss-4level")),
        words=["4,503,599,627,370,496", "max_accesses"], isolate=True, mem_mb=600, seconds=20),
    row("split-2^64", "api", "memory", lambda: __import__("iommu_lab.dma.accesses", fromlist=["x"])
        .split_accesses(one_row(length=(1 << 64) - 1).frame), words=["split_accesses", "pieces"],
        isolate=True, mem_mb=600, seconds=20),
    row("max-accesses-type", "api", "silent", lambda: replay(_good(), PT, max_accesses=1.5), TypeError,
        words=["max_accesses"]),
    row("cacheconfig-2^30", "api", "memory", lambda: CacheConfig(2**30, ways=1),
        words=["1,073,741,824", "1,048,576"], isolate=True, mem_mb=400, seconds=10),
    row("cacheconfig-ways-help", "api", "message", lambda: CacheConfig(24, ways=5), words=["ways=5", "ways may be"]),
    row("flush-queue-text", "api", "leak", lambda: replay(_good(), PT, policy="lazy", flush_queue="x"), TypeError,
        words=["flush_queue='x'", "FlushQueue"], snapshot=_snap),
    row("flush-queue-size", "api", "silent", lambda: FlushQueue(0), words=["size=0", "positive"]),
    row("caches-type", "api", "leak", lambda: replay(_good(), PT, caches=64), TypeError, words=["Caches", "int"]),
    row("for-platform-none", "api", "leak", lambda: Caches.for_platform(None), TypeError,
        words=["platform=None", "intel-vtd-48"]),
    row("for-platform-int", "api", "leak", lambda: Caches.for_platform(5), TypeError, words=["platform=5"]),
    row("for-platform-name", "api", "refused", lambda: Caches.for_platform("intel-vtd-48"), None,
        check=lambda c: c.iotlb.entries > 0),
    row("whatif-platforms-int", "api", "leak", lambda: what_if(_good(), platforms=[5]), TypeError,
        words=["platforms entry=5", "intel-vtd-48"]),
    row("whatif-platforms-empty", "api", "silent", lambda: what_if(_good(), platforms=[]), words=["platforms=[]"]),
    row("whatif-platform-name", "api", "refused", lambda: what_if(_good(), platforms="intel-vtd-48"), None,
        check=lambda w: len(w.frame) == 1),
    row("whatif-stage2-only", "api", "leak", lambda: what_if(STAGE2_ONLY, platforms=["intel-vtd-48"]),
        words=["stage 2", "stage-1 map rows"]),
    row("whatif-trace-type", "api", "leak", lambda: what_if("trace.csv"), TypeError, words=["Trace", "str"]),
    row("nesting-modes-platform", "api", "leak", lambda: nesting_modes(_good(), None), TypeError,
        words=["platform=None"]),
    row("replay-trace-type", "api", "leak", lambda: replay(pd.DataFrame(), PT), TypeError, words=["Trace"]),
    row("replay-target-type", "api", "leak", lambda: replay(_good(), "intel-vtd-48"), TypeError,
        words=["str", "PageTable"]),
    row("replay-engine", "api", "message", lambda: replay(_good(), PT, engine="turbo"), words=["turbo", "compiled"]),
    row("replay-domains", "api", "message", lambda: replay(_good(), PT, domains="all"), words=["all", "per-device"]),
    row("replay-progress", "api", "silent", lambda: replay(_good(), PT, progress="yes"), TypeError,
        words=["progress='yes'"]),
    row("replay-in-place-fails", "api", "changed", lambda: replay(FAILING, PT, in_place=True), IommuError,
        errno="EADDRINUSE", words=["row 2"], snapshot=_snap),
    # -- cache defaults TOML -----------------------------------------------------------------
    row("toml-missing", "cache-toml", "leak", lambda: load_defaults(DIR / "none.toml"), IommuError, errno="ENOENT",
        words=["none.toml"]),
    row("toml-directory", "cache-toml", "leak", lambda: load_defaults(TOML_DIR), IommuError, errno="EINVAL",
        words=["dir.toml", "directory"]),
    row("toml-dev-zero", "cache-toml", "memory", lambda: load_defaults(TOML_ZERO), IommuError, errno="EINVAL",
        words=["zero.toml", "regular file"], isolate=True, mem_mb=400, seconds=10),
    row("toml-fifo", "cache-toml", "time", lambda: load_defaults(TOML_FIFO), IommuError, errno="EINVAL",
        words=["fifo.toml", "FIFO"], isolate=True, seconds=10),
    row("toml-deep", "cache-toml", "leak", lambda: load_defaults(TOML_DEEP), IommuError, errno="EINVAL",
        words=["deep.toml", "nested"]),
    row("toml-binary", "cache-toml", "leak", lambda: load_defaults(TOML_BINARY), IommuError, errno="EINVAL",
        words=["binary.toml", "UTF-8"]),
    row("toml-level-name", "cache-toml", "leak", lambda: load_defaults(TOML_BAD_LEVEL), IommuError, errno="EINVAL",
        words=["level.toml", "'x'", "1 .. 6"]),
    row("toml-psc-scalar", "cache-toml", "leak", lambda: load_defaults(TOML_PSC_SCALAR), IommuError, errno="EINVAL",
        words=["scalar.toml", "psc", "table of levels"]),
    row("toml-families-scalar", "cache-toml", "leak", lambda: load_defaults(TOML_FAMILY_SCALAR), IommuError,
        errno="EINVAL", words=["famscalar.toml", "families"]),
    row("toml-family-scalar", "cache-toml", "leak", lambda: load_defaults(TOML_TABLE_SCALAR), IommuError,
        errno="EINVAL", words=["tabscalar.toml", "VT-d"]),
    row("toml-huge-cache", "cache-toml", "memory", lambda: load_defaults(TOML_HUGE), IommuError, errno="EINVAL",
        words=["huge.toml", "1,048,576"], isolate=True, mem_mb=400, seconds=10),
    row("toml-path-type", "cache-toml", "leak", lambda: load_defaults(3.5), TypeError, words=["path", "float"]),
]

test_bad_input = parametrize(CASES)


# -- transactions: a failed in-place replay leaves the model and nothing else changed ----------


@st.composite
def in_place_traces(draw):
    """Maps, unmaps and DMA over the table's own range; some map rows overlap (EEXIST) or unmap
    what is not mapped, so some replays fail part-way."""
    rows, t = [], 0
    for _ in range(draw(st.integers(1, 12))):
        t += 1
        p = draw(st.integers(0, 7))
        kind = draw(st.sampled_from(["map", "unmap", "read", "write"]))
        if kind == "map":
            rows.append({"t": t, "op": "map", "iova": BASE + p * K4, "length": K4, "pa": 0x7000_0000 + p * K4})
        elif kind == "unmap":
            rows.append({"t": t, "op": "unmap", "iova": BASE + p * K4, "length": K4})
        else:
            rows.append({"t": t, "op": kind, "iova": BASE + p * K4, "length": 8})
    return Trace.from_records(rows)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(in_place_traces(), st.sampled_from(["compiled", "step"]))
def test_an_in_place_replay_is_all_or_nothing(tr, engine):
    pt = _pt()
    before = _snap(pt)
    copy_result = None
    try:
        copy_result = replay(tr, pt, Caches.for_platform("intel-vtd-48"), engine=engine)
    except IommuError:
        pass
    assert _snap(pt) == before  # never in place: untouched either way
    try:
        replay(tr, pt, Caches.for_platform("intel-vtd-48"), engine=engine, in_place=True)
    except IommuError:
        assert copy_result is None and _snap(pt) == before  # failed: as it was
    else:
        assert copy_result is not None  # succeeded: the table is what the trace built
        probe = _pt()
        for r in tr.frame.itertuples():
            if r.op == "map":
                probe.map(int(r.iova), int(r.pa), int(r.length))
            elif r.op == "unmap":
                probe.unmap(int(r.iova), int(r.length))
        assert _snap(pt) == _snap(probe)
