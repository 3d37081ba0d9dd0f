"""Replay one DMA trace interactively: platform, page sizes, flush policy and cache sizes.

The explorer holds no IOMMU logic: each change calls :func:`iommu_lab.dma.whatif.what_if` for one
platform, one page-size policy and one flush policy (a fresh domain the trace's maps fill), then
shows the run's summary and ``render.replay`` of it.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from iommu_lab import render
from iommu_lab.hardware.platform import platforms as _catalogue
from iommu_lab.widgets.common import ErrorView, FigureView, close_tree, reporting, rows_html

__all__ = ["ReplayExplorer", "default_trace"]


def default_trace() -> Any:
    """A NIC receiving into fresh buffers (map, DMA, unmap per packet, as the DMA API does
    without page recycling) beside an NVMe queue: its unmaps make strict and lazy flushing
    differ (330 range invalidations strict, 3 domain flushes lazy on VT-d)."""
    from iommu_lab.dma.trace import Trace, nic_rx_ring, storage_sg

    return Trace.merge(
        nic_rx_ring(300, gbps=25, recycle=False, seed=1),
        storage_sg(30, segments=(1, 4), seed=2),
        name="NIC RX + NVMe",
    )

#: Page-size policies offered; "platform" is the platform's own bitmap.
PGSIZE_CHOICES = ("4K", "4K+2M", "platform")
#: The IOTLB slider's "the platform's documented size" position.
PLATFORM_DEFAULT = -1
#: IOTLB sizes offered (0 = no IOTLB: every access walks).
IOTLB_CHOICES = (0, 16, 64, 256, 1024, 4096)
SUMMARY_ROWS = (
    ("accesses", "4 KiB translation requests"),
    ("iotlb_hit_rate", "IOTLB hit rate"),
    ("walks", "walks (IOTLB misses)"),
    ("refs_per_access", "page-table references per access"),
    ("refs_per_walk", "references per walk"),
    ("invalidations", "range invalidations (strict)"),
    ("flushes", "domain flushes (lazy queue, stage 2)"),
    ("stale_hits", "hits on unmapped IOVAs"),
    ("faults", "faults"),
)


class ReplayExplorer(W.VBox):
    """Replay ``trace`` on a platform and change what the IOMMU has to work with.

    Attributes
    ----------
    trace : Trace (default: :func:`default_trace`)
        The trace replayed (it must carry its map rows, as the generators' traces do).
    platform_picker : ipywidgets.Dropdown
        Catalogue platforms with a paging format.
    pgsize_picker : ipywidgets.ToggleButtons
        The domain's page-size policy (``PGSIZE_CHOICES``).
    flush_picker : ipywidgets.ToggleButtons
        ``"strict"`` or ``"lazy"`` invalidation.
    iotlb_picker : ipywidgets.SelectionSlider
        IOTLB entries (``IOTLB_CHOICES``), or ``PLATFORM_DEFAULT`` for the platform's documented size.
    summary : ipywidgets.HTML
        The run's figures.
    figure_view : FigureView
        ``render.replay`` of the run.
    error : ErrorView
        Why the last run failed.
    result : Replay or None
        The last run.
    """

    def __init__(self, trace: Any = None, platform: str = "intel-vtd-48", **kwargs: Any) -> None:
        self.trace = default_trace() if trace is None else trace
        names = [n for n in _catalogue.names() if "paging" in _catalogue.get(n).formats]
        self.platform_picker = W.Dropdown(options=names, value=platform, description="platform")
        self.platform_picker.add_class("il-replay-platform")
        self.pgsize_picker = W.ToggleButtons(options=PGSIZE_CHOICES, value="4K", description="pages")
        self.pgsize_picker.add_class("il-replay-pgsizes")
        self.flush_picker = W.ToggleButtons(options=["strict", "lazy"], value="strict", description="flush")
        self.flush_picker.add_class("il-replay-flush")
        self.iotlb_picker = W.SelectionSlider(
            options=[("platform", PLATFORM_DEFAULT)] + [(str(n), n) for n in IOTLB_CHOICES],
            value=PLATFORM_DEFAULT,
            description="IOTLB",
        )
        self.iotlb_picker.add_class("il-replay-iotlb")
        self.summary = W.HTML()
        self.summary.add_class("il-replay-summary")
        self.figure_view = FigureView()
        self.figure_view.add_class("il-replay-figure")
        self.error = ErrorView()
        self.error.add_class("il-replay-error")
        self.result: Any = None
        super().__init__(
            children=[
                W.HBox([self.platform_picker, self.iotlb_picker]),
                W.HBox([self.pgsize_picker, self.flush_picker]),
                self.error,
                self.summary,
                self.figure_view,
            ],
            **kwargs,
        )
        self.add_class("il-replay")
        for w in (self.platform_picker, self.pgsize_picker, self.flush_picker, self.iotlb_picker):
            w.observe(self._on_change, names="value")
        self.refresh()

    def close(self) -> None:
        """Close the explorer and every widget in it."""
        close_tree(self)

    def _on_change(self, change: dict) -> None:
        self.refresh()

    def caches(self):
        """The platform's documented caches, with the IOTLB size the slider picked."""
        from iommu_lab.dma.caches import Caches

        c = Caches.for_platform(self.platform_picker.value)
        entries = self.iotlb_picker.value
        return c if entries == PLATFORM_DEFAULT else c.replace(iotlb=entries)

    def refresh(self) -> None:
        """Replay the trace with the current choices and redraw."""
        from iommu_lab.dma.whatif import what_if

        pol = self.pgsize_picker.value
        with reporting(self.error) as out:
            w = what_if(
                self.trace,
                platforms=[self.platform_picker.value],
                pgsizes=[None if pol == "platform" else pol],
                caches=self.caches(),
                policy=self.flush_picker.value,
                progress=False,
            )
            row = w.frame.iloc[0]
            if row["note"]:
                raise ValueError(row["note"])
            self.result = w.runs[0]
        if not out.ok:
            self.result = None
            self.summary.value = ""
            self.figure_view.clear()
            return
        s = self.result.summary
        rows = [[label, _fmt(key, s[key])] for key, label in SUMMARY_ROWS]
        title = f"{self.trace.name or 'trace'} on {row['platform']} ({row['format']}, {row['pgsizes']})"
        self.summary.value = rows_html(title, ["", "value"], rows)
        self.figure_view.show(render.replay(self.result))


def _fmt(key: str, value: Any) -> str:
    """Rates as percentages, ratios with three figures, counts with separators."""
    if key.endswith("_rate"):
        return f"{value:.1%}"
    if key.startswith("refs_per"):
        return f"{value:.3g}"
    return f"{int(value):,}"
