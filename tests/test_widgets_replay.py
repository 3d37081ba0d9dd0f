"""ReplayExplorer: one trace replayed as the user changes platform, pages, flush and IOTLB."""

from __future__ import annotations

import pytest

from iommu_lab import widgets
from iommu_lab.dma import trace as T
from iommu_lab.dma.caches import Caches


@pytest.fixture(scope="module")
def trace():
    return T.random_working_set(3000, working_set=8 << 20, seed=5)


def test_builds_replays_and_draws(trace):
    w = widgets.ReplayExplorer(trace)
    assert w.error.value == ""
    assert w.figure_view.value[:4] == b"\x89PNG"
    assert w.result.summary["accesses"] == 3000
    assert "IOTLB hit rate" in w.summary.value and "intel-vtd-48" in w.summary.value
    assert w.result.caches == Caches.for_platform("intel-vtd-48")


def test_2m_pages_and_a_bigger_iotlb_change_the_run(trace):
    w = widgets.ReplayExplorer(trace)
    walks_4k = w.result.summary["walks"]
    w.pgsize_picker.value = "4K+2M"
    assert w.result.summary["walks"] == 4  # 8 MiB is four 2 MiB pages: four cold misses
    w.pgsize_picker.value = "4K"
    w.iotlb_picker.value = 4096  # holds every page of the 8 MiB working set
    assert w.result.caches.iotlb.entries == 4096
    assert w.result.summary["walks"] == trace.working_set() < walks_4k  # one cold miss per page
    before = w.figure_view.renders
    w.flush_picker.value = "lazy"
    assert w.figure_view.renders == before + 1 and w.result.policy.value == "lazy"


def test_a_run_the_platform_cannot_do_is_reported_not_raised():
    # a trace whose IOVA span no window of power9-pseries' 32-bit TCE window can hold
    big = T.streaming(3 << 30, chunk=1 << 20)
    w = widgets.ReplayExplorer(big, platform="intel-vtd-48")
    w.platform_picker.value = "power9-pseries"
    assert "ENOSPC" in w.error.value or "no permitted range" in w.error.value
    assert w.figure_view.value == b""
