"""An explorer of pre-copy live migration over IOMMU dirty tracking (ipywidgets 8).

Sliders for the device's write rate, its working set, the guest memory, the link and the
downtime budget; the explorer runs :func:`iommu_lab.review.migration.compare` and shows the
table and the bytes-per-round figure for 4 KiB and 2 MiB leaves and the VFIO type1 baseline.
No migration logic lives here.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from iommu_lab.core.ranges import fmt_size
from iommu_lab.render.html import esc
from iommu_lab.render.migration import migration_rounds
from iommu_lab.review.migration import DirtyRate, compare, migrate
from iommu_lab.widgets.common import ErrorView, FigureView, close_tree

__all__ = ["MigrationExplorer"]

_GiB, _K4, _M2 = 1 << 30, 4096, 2 << 20


class MigrationExplorer(W.VBox):
    """Pre-copy rounds for a device writing ``rate`` pages per second over a working set.

    Attributes
    ----------
    rate, working_set, memory, link, downtime : ipywidgets sliders
    table : ipywidgets.HTML
        The comparison (one row per leaf/bitmap size, plus type1).
    figure_view : FigureView
        Bytes per round.
    runs : int
        How many times the model was run (tests read it).
    """

    def __init__(self, **kwargs: Any) -> None:
        style = {"description_width": "11em"}
        lay = W.Layout(width="34em")
        self.rate = W.IntSlider(20_000, min=0, max=200_000, step=1000, description="writes per second",
                                style=style, layout=lay, continuous_update=False)
        self.working_set = W.IntSlider(1, min=1, max=16, description="working set (GiB)", style=style,
                                       layout=lay, continuous_update=False)
        self.memory = W.IntSlider(4, min=1, max=64, description="guest memory (GiB)", style=style,
                                  layout=lay, continuous_update=False)
        self.link = W.IntSlider(10, min=1, max=100, description="link (Gbit/s)", style=style, layout=lay,
                                continuous_update=False)
        self.downtime = W.IntSlider(300, min=10, max=2000, step=10, description="downtime budget (ms)",
                                    style=style, layout=lay, continuous_update=False)
        self.errors = ErrorView()
        self.table = W.HTML()
        self.figure_view = FigureView()
        self.runs = 0
        for w in (self.rate, self.working_set, self.memory, self.link, self.downtime):
            w.observe(self._on_change, names="value")
        super().__init__([self.rate, self.working_set, self.memory, self.link, self.downtime, self.errors,
                          self.table, self.figure_view], **kwargs)
        self.refresh()

    def _on_change(self, _change: Any) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Run the model with the sliders' values and redraw."""
        self.errors.clear()
        source = DirtyRate(self.rate.value, self.working_set.value * _GiB)
        memory = self.memory.value * _GiB
        bandwidth = self.link.value * 1e9 / 8
        budget = self.downtime.value / 1e3
        try:
            df = compare(source, memory=memory, bandwidth=bandwidth, downtime=budget)
            runs = [migrate(source, memory=memory, bandwidth=bandwidth, downtime=budget, leaf=lf, max_rounds=12)
                    for lf in (_K4, _M2)]
            runs.append(migrate(source, memory=memory, bandwidth=bandwidth, downtime=budget, type1=True,
                                max_rounds=12))
        except (ValueError, TypeError) as exc:
            self.errors.show(exc)
            return
        rows = "".join(
            f"<tr><td>{esc(r.setup)}</td><td>{'yes' if r.converged else 'no'}</td><td>{r.rounds}</td>"
            f"<td>{r.downtime_ms:.1f} ms</td><td>{esc(fmt_size(int(r.bytes_sent), approx=True))}</td></tr>"
            for r in df.itertuples()
        )
        self.table.value = ("<table><tr><th>setup</th><th>converged</th><th>rounds</th><th>downtime</th>"
                            f"<th>bytes sent</th></tr>{rows}</table>")
        self.figure_view.show(migration_rounds(runs))
        self.runs += 1

    def close(self) -> None:
        close_tree(self)
