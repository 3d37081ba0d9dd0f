"""Figures of a pre-copy migration: the IOVA space dirtied per round, and bytes sent per round.

* :func:`migration_heat` -- one heat strip per run: rows are rounds, columns the guest's IOVA
  space, the colour the share of each column's bytes dirtied in that round (one sequential
  scale: one meaning);
* :func:`migration_rounds` -- bytes sent in each round, one bar series per run (coloured as the
  leaf size's page-size category, the type1 baseline grey and hatched), with the stop-and-copy
  budget (bandwidth x downtime) as a dashed line.

Both take one :class:`~iommu_lab.review.migration.Migration` or a sequence of them; sizes are
written in words ("2 MiB"); text is at least 10 pt so the figures read at about 900 px wide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from iommu_lab.core.ranges import fmt_size
from iommu_lab.render import style as _style
from iommu_lab.render.draw import Renderer, figure
from iommu_lab.review.migration import Migration

__all__ = ["HeatData", "RoundsData", "heat_data", "migration_heat", "migration_rounds", "rounds_data"]

_MIN_PT = 10.0
_style.register_category("mig-type1", "VFIO type1 (all pinned pages)", "#8c8c8c", "xx", "migration")


def _runs(obj: Migration | Sequence[Migration]) -> tuple[Migration, ...]:
    runs = (obj,) if isinstance(obj, Migration) else tuple(obj)
    if not runs or not all(isinstance(r, Migration) for r in runs):
        raise TypeError("expected a Migration or a non-empty sequence of Migrations")
    return runs


def _fs(th) -> float:
    return max(th.font_size, _MIN_PT)


@dataclass(frozen=True)
class HeatData:
    labels: tuple[str, ...]
    heat: tuple[np.ndarray, ...]
    span: tuple[int, int]


def heat_data(obj) -> HeatData:
    runs = _runs(obj)
    return HeatData(tuple(r.label for r in runs), tuple(r.heat for r in runs), runs[0].heat_range)


def _heat_size(data: HeatData) -> tuple[float, float]:
    return (9.0, 1.2 + 1.6 * len(data.labels))


def _size_ticks(ax, lo: int, hi: int, th) -> None:
    ticks = np.linspace(0, 1, 5)
    ax.set_xticks(ticks, [fmt_size(int(lo + t * (hi - lo)), approx=True) if t else "0" for t in ticks],
                  fontsize=_fs(th))


def draw_heat(axes, data: HeatData, th, *, owns_figure: bool) -> dict[str, Any]:
    axes = list(axes) if isinstance(axes, (list, tuple)) else [axes]
    drawn = {}
    image = None
    for ax, label, heat in zip(axes, data.labels, data.heat):
        rounds = heat.shape[0]
        image = ax.imshow(heat, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest",
                          extent=(0, 1, rounds - 0.5, -0.5))
        ax.set_ylabel("round", fontsize=_fs(th), color=th.foreground)
        ax.set_yticks(range(rounds) if rounds <= 8 else np.linspace(0, rounds - 1, 5).round().astype(int))
        ax.tick_params(labelsize=_fs(th))
        ax.set_title(label, fontsize=_fs(th), loc="left", color=th.foreground)
        _size_ticks(ax, 0, data.span[1] - data.span[0], th)
        drawn[label] = heat
    axes[-1].set_xlabel("guest IOVA (offset into the migrated memory)", fontsize=_fs(th), color=th.foreground)
    if image is not None and owns_figure:
        cb = axes[0].figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
        cb.set_label("share of bytes dirtied", fontsize=_fs(th), color=th.foreground)
        cb.ax.tick_params(labelsize=_fs(th))
    return drawn


def migration_heat(obj, *, style: str = "light", figsize: tuple[float, float] | None = None,
                   filename=None):
    """Heat strips of the IOVA space by round, one panel per run; returns the Figure."""
    from matplotlib.figure import Figure

    from iommu_lab.render.draw import theme_axes

    data = heat_data(obj)
    th = _style.theme(style)
    with _style.rc_context(th):
        fig = Figure(figsize=figsize or _heat_size(data), layout="constrained")
        fig.set_facecolor(th.background)
        panels = list(np.atleast_1d(fig.subplots(len(data.labels), 1, sharex=True, squeeze=False)[:, 0]))
        for p in panels:
            theme_axes(p, th)
        draw_heat(panels, data, th, owns_figure=True)
    if filename is not None:
        _style.save(fig, filename, style=th)
    return fig


@dataclass(frozen=True)
class RoundsData:
    labels: tuple[str, ...]
    keys: tuple[str, ...]
    bytes: tuple[np.ndarray, ...]
    stop: tuple[bool, ...]
    budget: float


def rounds_data(obj) -> RoundsData:
    runs = _runs(obj)
    keys = tuple("mig-type1" if r.type1 else _style.pgsize_category(r.unit) for r in runs)
    return RoundsData(tuple(r.label for r in runs), keys,
                      tuple(r.rounds["bytes"].to_numpy(np.float64) for r in runs),
                      tuple(bool(r.converged) for r in runs), runs[0].bandwidth * runs[0].budget)


def _rounds_size(data: RoundsData) -> tuple[float, float]:
    return (9.0, 4.2)


def draw_rounds(ax, data: RoundsData, th, *, owns_figure: bool) -> dict[str, Any]:
    from matplotlib.ticker import FuncFormatter

    n = len(data.labels)
    width = 0.8 / n
    drawn = {}
    longest = max(len(b) for b in data.bytes)
    for i, (label, key, b) in enumerate(zip(data.labels, data.keys, data.bytes)):
        cat = _style.category(key)
        face = cat.face(th)
        x = np.arange(len(b)) + (i - (n - 1) / 2) * width
        bars = ax.bar(x, b, width=width * 0.95, color=face, edgecolor=th.foreground, lw=0.5,
                      hatch=cat.hatch or None, label=label, gid=f"migration:rounds:{i}")
        drawn[label] = bars
    ax.axhline(data.budget, color=th.foreground, ls="--", lw=1.2)
    ax.text(-0.45, data.budget * 1.08, f"stop-and-copy budget {fmt_size(int(data.budget), approx=True)}",
            va="bottom", ha="left", fontsize=_fs(th), color=th.foreground,
            bbox={"facecolor": th.axes_background, "edgecolor": "none", "pad": 1.0})
    ax.set_yscale("log", base=2)
    top = max(float(b.max()) for b in data.bytes if b.size)
    low = min([float(b[b > 0].min()) for b in data.bytes if (b > 0).any()] + [data.budget])
    k0, k1 = int(np.floor(np.log2(low))), int(np.ceil(np.log2(top))) + 1
    step = max(1, (k1 - k0) // 6)
    ticks = [2.0 ** k for k in range(k0, k1 + 1, step)]
    ax.set_yticks(ticks, [fmt_size(int(t)) for t in ticks])
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _p: ""))
    ax.set_ylim(2.0 ** k0, 2.0 ** k1)
    ax.set_xlabel("round (0 sends all memory; the last converged round is the stop-and-copy)",
                  fontsize=_fs(th), color=th.foreground)
    ax.set_ylabel("bytes sent", fontsize=_fs(th), color=th.foreground)
    ax.tick_params(labelsize=_fs(th))
    every = max(1, longest // 12)
    ax.set_xticks(range(0, longest, every))
    ax.set_xlim(-0.5, longest - 0.5)
    leg = ax.legend(fontsize=_fs(th), loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=min(n, 2),
                    frameon=False, title="bytes per pre-copy round", title_fontsize=_fs(th) + 1)
    leg._legend_box.align = "left"
    return drawn


ROUNDS = Renderer("migration_rounds", rounds_data, draw_rounds, _rounds_size)


def migration_rounds(obj, **kwargs: Any):
    """Bytes sent per round, one bar series per run, with the downtime budget; returns the Figure."""
    return figure(ROUNDS, _runs(obj), **kwargs).figure

