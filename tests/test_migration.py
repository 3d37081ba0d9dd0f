"""Pre-copy live migration over IOMMU dirty tracking, and its figures."""

from __future__ import annotations

import numpy as np
import pytest

from iommu_lab.pagetable.dirty import DirtyTracker
from iommu_lab.pagetable.table import PageTable
from iommu_lab.render.migration import heat_data, migration_heat, migration_rounds, rounds_data
from iommu_lab.review.migration import DirtyRate, Writes, compare, migrate

GiB, MiB, K4, M2 = 1 << 30, 1 << 20, 4096, 2 << 20


def test_writes_into_one_leaf_re_send_the_whole_leaf():
    # 1000 writes, all inside the first 2 MiB: 4 KiB leaves re-send the pages written,
    # 2 MiB leaves the whole leaf.
    w = Writes(np.linspace(0, 0.5, 1000), np.arange(1000, dtype=np.uint64) % 100, 1.0)
    small = migrate(w, memory=GiB, bandwidth=1e9, leaf=K4, downtime=0.0, max_rounds=2)
    big = migrate(w, memory=GiB, bandwidth=1e9, leaf=M2, downtime=0.0, max_rounds=2)
    assert small.rounds["remaining"].iloc[0] == 100 * K4
    assert big.rounds["remaining"].iloc[0] == M2


def test_the_model_agrees_with_the_dirty_bitmap_of_a_real_table():
    # The same writes through a VT-d table with 2 MiB leaves: the bitmap's dirty bytes are
    # what the migration model re-sends.
    pages = np.array([0, 1, 600, 1030], dtype=np.uint64)
    t = PageTable("vtd-ss-4level")
    t.map(0, 0x4000_0000, 8 * M2)  # 2 MiB leaves
    d = DirtyTracker(t)
    d.set_dirty_tracking()
    d.dma_write(pages * np.uint64(K4))
    bm = d.get_dirty_bitmap(0, 8 * M2, K4)
    m = migrate(Writes(np.zeros(4), pages, 1.0), memory=8 * M2, bandwidth=1e12, leaf=M2, downtime=0.0, max_rounds=1)
    assert bm.dirty_bytes == m.rounds["remaining"].iloc[0] == 3 * M2


def test_converges_when_the_remainder_fits_the_budget():
    m = migrate(DirtyRate(1000, GiB), memory=4 * GiB, bandwidth=1.25e9, downtime=0.3)
    assert m.converged and m.rounds["stop_copy"].iloc[-1]
    assert m.downtime <= 0.3
    assert m.rounds["bytes"].iloc[0] == 4 * GiB


def test_type1_baseline_resends_everything_and_does_not_converge():
    m = migrate(DirtyRate(0, GiB), memory=4 * GiB, bandwidth=1.25e9, downtime=0.3, type1=True, max_rounds=5)
    assert not m.converged and len(m.rounds) == 5
    assert (m.rounds["bytes"] == 4 * GiB).all()
    idle = migrate(DirtyRate(0, GiB), memory=4 * GiB, bandwidth=1.25e9, downtime=0.3)
    assert idle.converged and idle.rounds["bytes"].iloc[-1] == 0


def test_expected_distinct_units_of_a_dirty_rate():
    r = DirtyRate(rate=512, working_set=GiB)
    u = GiB // M2
    assert r.count(0, 1, M2) == pytest.approx(u * (1 - (1 - 1 / u) ** 512))
    assert r.count(0, 1, K4) < 512


def test_compare_table_orders_the_setups():
    w = Writes.synthetic(20000, GiB, 1.0, seed=1)
    df = compare(w, memory=4 * GiB, bandwidth=1.25e9)
    assert list(df["setup"])[-1].startswith("VFIO type1")
    row = df.set_index("setup")
    assert row.loc["4 KiB leaves, 4 KiB bitmap", "converged"]
    assert not row.loc["2 MiB leaves, 4 KiB bitmap", "converged"]
    assert row.loc["2 MiB leaves, 4 KiB bitmap", "amplification"] > 10


def test_trace_writes_are_periodic_and_expand_lengths():
    import pandas as pd

    frame = pd.DataFrame({"t": [0, 500_000_000], "op": ["write", "read"], "iova": [0x1000, 0x9000],
                          "length": [0x2000, 0x1000]})
    w = Writes.from_trace(frame)
    assert w.pages.tolist() == [1, 2]
    assert w.units(0, 10.0, K4).tolist() == [1, 2]


def test_figures_are_legible_and_pure():
    w = Writes.synthetic(5000, GiB, 1.0, seed=2)
    runs = [migrate(w, memory=2 * GiB, bandwidth=1.25e9, leaf=lf, max_rounds=4) for lf in (K4, M2)]
    before = [r.rounds.copy() for r in runs]
    fig = migration_heat(runs)
    assert len(fig.axes) == 3  # two strips and the colour bar
    for ax in fig.axes:
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            assert label.get_fontsize() >= 10
    fig2 = migration_rounds(runs)
    labels = [t.get_text() for t in fig2.axes[0].get_yticklabels()]
    assert "1 GiB" in labels
    assert all(r.rounds.equals(b) for r, b in zip(runs, before))
    assert heat_data(runs).heat[0].max() <= 1.0
    assert rounds_data(runs).keys[1] != rounds_data(runs).keys[0]
