"""Replay in bounded pieces: trace files read chunk by chunk, one long DMA row split across
pieces, the per-access table optional, and work refused before it starts when it is too much."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iommu_lab.dma import trace as T
from iommu_lab.dma.caches import CacheConfig, Caches
from iommu_lab.dma.engine import ReplayEngine
from iommu_lab.dma.replay import replay
from iommu_lab.dma.targets import as_target
from iommu_lab.dma.trace import Trace, TraceError, TraceStream
from iommu_lab.pagetable.table import PageTable

K4 = 0x1000
BASE = 0x1_0000_0000


def mixed_trace() -> Trace:
    """Two devices with maps, unmaps and DMA, generated (deterministic)."""
    return Trace.merge(T.nic_rx_ring(300, recycle=False, seed=1), T.storage_sg(60, segments=(1, 4), seed=2))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("rows", [1, 7, 1 << 20])
def test_a_streamed_file_replays_exactly_as_the_trace_in_memory(tmp_path, suffix, rows):
    tr = mixed_trace()
    path = tr.save(tmp_path / f"t{suffix}")
    c = Caches.for_platform("intel-vtd-48")
    whole = replay(tr, PageTable("vtd-ss-4level"), c, policy="lazy")
    streamed = replay(TraceStream(path, rows=rows), PageTable("vtd-ss-4level"), c, policy="lazy", progress=False)
    assert streamed.accesses.equals(whole.accesses)
    assert streamed.summary.equals(whole.summary)
    assert streamed.cache_stats.equals(whole.cache_stats)
    assert streamed.events.equals(whole.events)


def test_without_the_per_access_table_the_summary_and_statistics_stay_complete():
    tr = mixed_trace()
    c = Caches.for_platform("intel-vtd-48")
    kept = replay(tr, PageTable("vtd-ss-4level"), c)
    lean = replay(tr, PageTable("vtd-ss-4level"), c, keep_accesses=False)
    assert len(lean.accesses) == 0 and list(lean.accesses.columns) == list(kept.accesses.columns)
    assert lean.summary.equals(kept.summary) and lean.cache_stats.equals(kept.cache_stats)


def test_one_long_row_is_split_across_pieces_with_the_same_outcome():
    pt = PageTable("vtd-ss-4level", pgsize_bitmap=0x40201000)
    pt.map(0, 0, 1 << 31)
    tr = Trace.from_records([{"t": 0, "op": "read", "iova": 0x10, "length": 300 * K4},
                             {"t": 1, "op": "write", "iova": 0x7FF_F000, "length": 3 * K4}])
    outs = []
    for piece in (1, 7, 1 << 20):
        eng = ReplayEngine(as_target(pt), Caches.for_platform("intel-vtd-48"), piece=piece).run(tr.frame)
        outs.append((eng.accesses_frame(), eng.summary("x")))
    for a, s in outs[1:]:
        assert a.equals(outs[0][0]) and s.equals(outs[0][1])
    assert len(outs[0][0]) == 301 + 3
    assert outs[0][0]["iova"].iloc[1] == 0x1000  # the second request starts at its page


def test_pieces_hold_no_more_than_their_bound():
    pt = PageTable("vtd-ss-4level", pgsize_bitmap=0x40201000)
    pt.map(0, 0, 1 << 31)
    tr = Trace.from_records([{"t": 0, "op": "read", "iova": 0, "length": 1000 * K4}])
    sizes = []
    eng = ReplayEngine(as_target(pt), Caches.none(), piece=64, keep_accesses=False)
    real = eng._dma_until

    def spy(upto):
        sizes.append(upto)
        real(upto)

    eng._dma_until = spy
    eng.run(tr.frame)
    assert max(sizes) == 64 and sum(sizes) == 1000
    assert eng.c.accesses == 1000 and eng.summary("x")["iotlb_misses"] == 1000


def test_a_row_asking_for_more_requests_than_allowed_is_refused_before_any_work():
    tr = Trace.from_records([{"t": 0, "op": "read", "iova": 0, "length": (1 << 64) - 1}])
    with pytest.raises(ValueError, match=r"4,503,599,627,370,496.*max_accesses="):
        replay(tr, PageTable("vtd-ss-4level"))
    small = Trace.from_records([{"t": 0, "op": "read", "iova": 0, "length": 10 * K4}])
    with pytest.raises(ValueError, match="more than 9"):
        replay(small, PageTable("vtd-ss-4level"), max_accesses=9)
    assert replay(small, PageTable("vtd-ss-4level"), max_accesses=10).summary["accesses"] == 10


def test_a_stream_whose_time_goes_back_between_chunks_names_the_row(tmp_path):
    df = pd.DataFrame({"t": [5, 6, 1], "op": ["read"] * 3, "device": ["d"] * 3, "pasid": [""] * 3,
                       "iova": ["0x1000"] * 3, "length": ["8"] * 3, "pa": ["0"] * 3, "stage": ["1"] * 3})
    path = tmp_path / "back.csv"
    df.to_csv(path, index=False)
    with pytest.raises(TraceError, match=r"t\[2\].*back.csv"):
        list(TraceStream(path, rows=2))


def test_a_stream_reads_its_file_lazily_and_replays_in_place(tmp_path):
    tr = Trace.from_records([{"t": 0, "op": "map", "iova": BASE, "length": 4 * K4, "pa": 0x4000_0000},
                             {"t": 1, "op": "read", "iova": BASE, "length": 8}])
    s = TraceStream(tr.save(tmp_path / "t.parquet"), rows=1)
    assert s.name == "t" and "rows=1" in repr(s)
    pt = PageTable("vtd-ss-4level")
    replay(s, pt, Caches(iotlb=CacheConfig(4)), in_place=True, progress=False)
    assert pt.walk(BASE).ok  # the map row reached the model once the replay succeeded


def test_progress_bar_counts_streamed_accesses_when_asked(tmp_path, capsys):
    tr = Trace.from_records([{"t": 0, "op": "map", "iova": BASE, "length": 4 * K4, "pa": 0},
                             {"t": 1, "op": "read", "iova": BASE, "length": 3 * K4}])
    path = tr.save(tmp_path / "t.csv")
    replay(TraceStream(path), PageTable("vtd-ss-4level"), progress=True)
    assert "replay native" in capsys.readouterr().err  # tqdm.auto: a text bar outside notebooks
    replay(TraceStream(path), PageTable("vtd-ss-4level"))  # a small file: no bar by default
    assert capsys.readouterr().err == ""


def test_piece_outcomes_concatenate_in_trace_order():
    tr = Trace.from_records([{"t": 0, "op": "map", "iova": BASE, "length": 8 * K4, "pa": 0}]
                            + [{"t": i, "op": "read", "iova": BASE + (i % 8) * K4, "length": 2 * K4} for i in range(1, 30)])
    eng = ReplayEngine(as_target(PageTable("vtd-ss-4level")), Caches(iotlb=CacheConfig(2)), piece=3)
    eng.run(tr.frame)
    rows = eng.accesses_frame()["row"].to_numpy()
    assert (np.diff(rows) >= 0).all() and len(rows) == 29 * 2
