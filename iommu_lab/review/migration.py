"""Live migration of a VM with an assigned device: pre-copy rounds over IOMMU dirty tracking.

The design-review question: "does this VM converge, and how much does a 2 MiB page amplify
dirty tracking?" A pre-copy migration (QEMU's RAM migration loop, with the device's DMA
writes read from IOMMU_HWPT_GET_DIRTY_BITMAP) sends all guest memory once, then in each round
re-sends what was dirtied while the previous round was on the wire, until the remainder fits
the downtime budget (stop-and-copy) or a round limit is hit.

What the IOMMU contributes is the *dirty unit*: a write dirties a whole leaf (the hardware
sets one bit per leaf entry; a read of a 2 MiB leaf sets all 512 bits of a 4 KiB bitmap), and
a bitmap bit covers ``page_size`` bytes, so each round re-sends ``max(leaf, page_size)``
bytes per distinct unit written. The VFIO type1 baseline has no IOMMU dirty tracking: type1
reports every pinned page dirty in every round (Kirti Wankhede's VFIO migration series for
QEMU, 2020), so a VM converges there only if all its pinned memory fits the downtime.

Sources of writes: :class:`Writes` (timestamped IOVAs: a DMA trace's write rows, or
:meth:`Writes.synthetic`), replayed periodically when the migration outlasts them; or
:class:`DirtyRate` (writes per second spread evenly over a working set; expected distinct
units ``U * (1 - (1 - 1/U) ** n)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from iommu_lab.core.ranges import fmt_size

__all__ = ["DirtyRate", "Migration", "Writes", "compare", "migrate"]

_PAGE = 4096
#: Writes a source may hold (each a 4 KiB page index): keeps a synthetic trace under ~100 MB.
MAX_WRITES = 10_000_000
MAX_ROUNDS = 1000
HEAT_BINS = 256


def _pos_number(value, name: str, *, integer: bool = False, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {str(value)[:40]!r}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} = {value!r} must be a finite number {'>= 0' if allow_zero else '> 0'}")
    if integer and int(value) != value:
        raise ValueError(f"{name} = {value!r} must be a whole number of bytes")
    return int(value) if integer else float(value)


def _pow2(value, name: str) -> int:
    v = _pos_number(value, name, integer=True)
    if v & (v - 1) or v < _PAGE:
        raise ValueError(f"{name} = {value!r} must be a power of two of at least 4 KiB (a leaf or bitmap page)")
    return v


@dataclass(frozen=True)
class Writes:
    """DMA writes as ``times`` (seconds, sorted) and 4 KiB ``pages`` (IOVA >> 12), repeating
    every ``period`` seconds (a steady workload outlasting its sample)."""

    times: np.ndarray
    pages: np.ndarray
    period: float

    def __post_init__(self) -> None:
        if self.times.shape != self.pages.shape:
            raise ValueError(f"times ({self.times.size}) and pages ({self.pages.size}) must have one entry per write")
        _pos_number(self.period, "period")

    @classmethod
    def synthetic(cls, rate: float, working_set: int, period: float = 1.0, *, base: int = 0,
                  hot_fraction: float = 0.1, hot_share: float = 0.8, seed: int = 0) -> Writes:
        """``rate`` 4 KiB writes per second for ``period`` seconds over ``working_set`` bytes
        from IOVA ``base``: ``hot_share`` of them land in the first ``hot_fraction`` of the set
        (a ring or a hot buffer), the rest uniformly."""
        rate, period = _pos_number(rate, "rate"), _pos_number(period, "period")
        ws = _pos_number(working_set, "working_set", integer=True)
        if ws < _PAGE:
            raise ValueError(f"working_set {ws} must be at least one 4 KiB page")
        n = int(round(rate * period))
        if n > MAX_WRITES:
            raise ValueError(f"rate x period = {n} writes is over the {MAX_WRITES} a sample may hold; "
                             "use DirtyRate for a larger rate, or a shorter period (it repeats)")
        for v, name in ((hot_fraction, "hot_fraction"), (hot_share, "hot_share")):
            if not 0 <= _pos_number(v, name, allow_zero=True) <= 1:
                raise ValueError(f"{name} = {v!r} must be in [0, 1]")
        rng = np.random.default_rng(seed)
        npages = ws // _PAGE
        hot = max(1, int(npages * hot_fraction))
        in_hot = rng.random(n) < hot_share
        pages = np.where(in_hot, rng.integers(0, hot, n), rng.integers(0, npages, n)).astype(np.uint64)
        times = np.sort(rng.random(n) * period)
        return cls(times, pages + np.uint64(base // _PAGE), period)

    @classmethod
    def from_trace(cls, trace, *, t_scale: float = 1e-9, period: float | None = None) -> Writes:
        """The write rows of a DMA trace (``t`` in units of ``t_scale`` seconds), each write
        expanded to the 4 KiB pages it touches."""
        df = trace.frame if hasattr(trace, "frame") else trace
        w = df[df["op"].astype(str) == "write"]
        first = w["iova"].to_numpy(np.uint64) // np.uint64(_PAGE)
        last = (w["iova"].to_numpy(np.uint64) + np.maximum(w["length"].to_numpy(np.uint64), 1) - np.uint64(1)) // np.uint64(_PAGE)
        counts = (last - first + np.uint64(1)).astype(np.int64)
        if int(counts.sum()) > MAX_WRITES:
            raise ValueError(f"the trace's writes touch {int(counts.sum())} pages, over the {MAX_WRITES} a source may hold")
        t = w["t"].to_numpy(np.float64) * t_scale
        rep = np.repeat(np.arange(len(w)), counts)
        offs = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        pages = first[rep] + offs.astype(np.uint64)
        times = t[rep] - (t.min() if t.size else 0.0)
        order = np.argsort(times, kind="stable")
        span = float(times.max()) if times.size else 0.0
        return cls(times[order], pages[order], period or max(span, 1e-6) * (1 + 1e-9))

    def units(self, t0: float, t1: float, unit: int) -> np.ndarray:
        """Distinct ``unit``-sized blocks (indices) written in ``[t0, t1)``."""
        shift = np.uint64(unit.bit_length() - 1 - 12)
        if t1 - t0 >= self.period:
            sel = self.pages
        else:
            a, b = t0 % self.period, t1 % self.period
            if a <= b:
                sel = self.pages[np.searchsorted(self.times, a):np.searchsorted(self.times, b)]
            else:
                sel = np.concatenate([self.pages[np.searchsorted(self.times, a):], self.pages[:np.searchsorted(self.times, b)]])
        return np.unique(sel >> shift)

    def count(self, t0: float, t1: float, unit: int) -> float:
        return float(self.units(t0, t1, unit).size)


@dataclass(frozen=True)
class DirtyRate:
    """``rate`` 4 KiB writes per second, evenly over ``working_set`` bytes from ``base``."""

    rate: float
    working_set: int
    base: int = 0

    def __post_init__(self) -> None:
        _pos_number(self.rate, "rate", allow_zero=True)
        _pos_number(self.working_set, "working_set", integer=True)

    def count(self, t0: float, t1: float, unit: int) -> float:
        """Expected distinct units written: ``U * (1 - (1 - 1/U) ** n)``, U units in the set."""
        u = max(1, -(-self.working_set // unit))
        n = self.rate * (t1 - t0)
        return float(u * -np.expm1(n * np.log1p(-1.0 / u))) if u > 1 else float(n > 0)


@dataclass(frozen=True)
class Migration:
    """One pre-copy run: a row per round (the last row is the stop-and-copy when it converged)."""

    rounds: pd.DataFrame
    converged: bool
    downtime: float
    leaf: int
    page_size: int
    bandwidth: float
    budget: float
    type1: bool = False
    heat: np.ndarray | None = field(default=None, repr=False)
    heat_range: tuple[int, int] = (0, 0)

    @property
    def unit(self) -> int:
        return max(self.leaf, self.page_size)

    @property
    def total_bytes(self) -> int:
        return int(self.rounds["bytes"].sum())

    @property
    def total_seconds(self) -> float:
        return float(self.rounds["seconds"].sum())

    @property
    def label(self) -> str:
        if self.type1:
            return "VFIO type1 (every pinned page dirty)"
        return f"{fmt_size(self.leaf)} leaves, {fmt_size(self.page_size)} bitmap"

    def __str__(self) -> str:
        end = (f"converged after {len(self.rounds) - 1} round{'s' if len(self.rounds) != 2 else ''}, downtime {self.downtime * 1e3:.1f} ms"
               if self.converged else f"did not converge in {len(self.rounds)} rounds "
               f"(remaining {fmt_size(int(self.rounds['remaining'].iloc[-1]), approx=True)})")
        return f"{self.label}: {end}; sent {fmt_size(self.total_bytes, approx=True)} in {self.total_seconds:.2f} s"



def migrate(source, *, memory: int, bandwidth: float, downtime: float = 0.3, leaf: int = _PAGE,
            page_size: int = _PAGE, max_rounds: int = 30, type1: bool = False, base: int = 0,
            heat_bins: int = HEAT_BINS) -> Migration:
    """Run pre-copy over ``memory`` bytes of guest memory mapped from IOVA ``base``.

    Parameters
    ----------
    source : Writes or DirtyRate
    memory : int
        Bytes mapped for the device (pinned, under type1).
    bandwidth : float
        Link bytes per second.
    downtime : float
        Allowed stop-and-copy seconds; the loop stops when the remainder fits.
    leaf, page_size : int
        IOMMU leaf size and GET_DIRTY_BITMAP ``page_size``.
    type1 : bool
        The VFIO type1 baseline: every round re-sends all of ``memory``.
    """
    memory = _pos_number(memory, "memory", integer=True)
    bandwidth = _pos_number(bandwidth, "bandwidth")
    downtime = _pos_number(downtime, "downtime", allow_zero=True)
    leaf, page_size = _pow2(leaf, "leaf"), _pow2(page_size, "page_size")
    max_rounds = _pos_number(max_rounds, "max_rounds", integer=True)
    if max_rounds > MAX_ROUNDS:
        raise ValueError(f"max_rounds {max_rounds} is over {MAX_ROUNDS}")
    if not isinstance(source, (Writes, DirtyRate)):
        raise TypeError(f"source must be Writes or DirtyRate, got {type(source).__name__}")
    unit = max(leaf, page_size)
    bins = max(1, int(heat_bins))
    heat_rows = []
    rows = []
    t = 0.0
    send = memory  # round 0: everything
    converged = False
    for k in range(max_rounds):
        secs = send / bandwidth
        if type1:
            dirty = memory
            heat_rows.append(np.ones(bins))
        elif isinstance(source, Writes):
            units = source.units(t, t + secs, unit)
            lo, hi = base // unit, (base + memory - 1) // unit
            units = units[(units >= lo) & (units <= hi)]
            dirty = min(int(units.size) * unit, memory)
            h = np.zeros(bins)
            if units.size:
                pos = ((units - lo) * unit * bins // max(memory, 1)).astype(np.int64)
                np.add.at(h, np.clip(pos, 0, bins - 1), unit)
            heat_rows.append(np.minimum(h / (memory / bins), 1.0))
        else:
            dirty = min(int(round(source.count(t, t + secs, unit))) * unit, memory)
            h = np.zeros(bins)
            lo = max(0, (source.base - base) * bins // memory)
            hi = min(bins, -(-(source.base + source.working_set - base) * bins // memory))
            if hi > lo:
                h[lo:hi] = dirty / max(1, min(source.working_set, memory))
            heat_rows.append(np.minimum(h, 1.0))
        rows.append({"round": k, "start": t, "seconds": secs, "bytes": send, "remaining": dirty, "stop_copy": False})
        t += secs
        if dirty / bandwidth <= downtime:
            rows.append({"round": k + 1, "start": t, "seconds": dirty / bandwidth, "bytes": dirty,
                         "remaining": 0, "stop_copy": True})
            converged = True
            break
        send = dirty
    frame = pd.DataFrame(rows)
    down = float(frame["seconds"].iloc[-1]) if converged else float(frame["remaining"].iloc[-1]) / bandwidth
    return Migration(frame, converged, down, leaf, page_size, bandwidth, downtime, type1,
                     np.vstack(heat_rows) if heat_rows else None, (base, base + memory))


def compare(source, *, memory: int, bandwidth: float, downtime: float = 0.3,
            leaves=(_PAGE, 2 << 20), page_sizes=(_PAGE, 2 << 20), max_rounds: int = 30,
            base: int = 0) -> pd.DataFrame:
    """One row per (leaf, bitmap page size) and one for the VFIO type1 baseline: rounds,
    converged, downtime, bytes sent, the first re-send round's bytes, and amplification (that
    round over the first run's, by default 4 KiB leaves with a 4 KiB bitmap)."""
    runs = [migrate(source, memory=memory, bandwidth=bandwidth, downtime=downtime, leaf=lf, page_size=ps,
                    max_rounds=max_rounds, base=base) for lf in leaves for ps in page_sizes]
    runs.append(migrate(source, memory=memory, bandwidth=bandwidth, downtime=downtime, type1=True,
                        max_rounds=max_rounds, base=base))
    first = [r for r in runs if not r.type1][0]
    ref = max(1, int(first.rounds["remaining"].iloc[0]))
    return pd.DataFrame([{
        "setup": r.label, "leaf": None if r.type1 else r.leaf, "page_size": None if r.type1 else r.page_size,
        "rounds": len(r.rounds), "converged": r.converged, "downtime_ms": round(r.downtime * 1e3, 3),
        "bytes_sent": r.total_bytes, "first_resend": int(r.rounds["remaining"].iloc[0]),
        "amplification": int(r.rounds["remaining"].iloc[0]) / ref, "seconds": r.total_seconds,
    } for r in runs])
