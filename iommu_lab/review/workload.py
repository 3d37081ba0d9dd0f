"""A DMA workload for design reviews: a guest RAM layout plus device BARs, and what it costs.

The question a design review asks -- "will this guest's memory fit the IOMMU's windows on
platform X, how much page-table memory does it cost there, which page sizes end up in the
table, and how many memory references does an IOTLB miss take, natively and nested?" -- is
answered here from the real models, never from a table of numbers:

* *fits*: each range is compared with ``Platform.iova_ranges()`` (the permitted windows minus
  the reserved holes, as ``IOMMU_IOAS_IOVA_RANGES`` answers), with the guest's DMA addresses
  equal to its guest-physical addresses (what a VMM does when it maps all guest RAM into the
  IOAS at start-up, and what a guest without a vIOMMU needs).
* *table memory* and *page-size mix*: the table pages the fitting ranges need in the platform's
  paging format, counted by :func:`iommu_lab.pagetable.census.table_census` -- each range split
  into pages as ``iommu_map``'s ``iommu_pgsize`` does under a page-size policy, then the
  distinct aligned blocks each level's tables cover counted by interval arithmetic -- so a
  16 GiB guest in 4 KiB pages (4 M leaves) costs the same few microseconds as one in 1 GiB
  pages, and no table page is allocated. The count is exact: it equals what ``PageTable.map``
  builds and :func:`table_tree` reads back (tests check both on the same workloads). A POWER
  TCE window is one flat table whose size is fixed by the window, so each window the workload
  uses costs ``Platform.window_format(w).table_bytes(0)`` at that window's own page size (4 KiB
  TCEs in the default 32-bit window, the DDW's larger size in the DDW).
* *walk references*: native, the byte-weighted number of levels from the root to each leaf;
  nested, a real two-dimensional walk (``iommu_lab.nesting.Nested``) of one page of the
  workload's dominant page size over a stage 2 built with the same policy.

:func:`table_tree` is what ``render.pagetable`` draws: a vectorised read of every table page of
a built table (one gather per level), fast enough for tens of thousands of table pages.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError, cut
from iommu_lab.core.ranges import (
    U64_MAX,
    IovaRange,
    RangeSet,
    fmt_addr,
    fmt_size,
    parse_address,
    parse_size,
)
from iommu_lab.hardware import formats as _formats
from iommu_lab.hardware.platform import NestingSupport, Platform, platforms
from iommu_lab.nesting import GuestMemory, Nested
from iommu_lab.nesting.memory import host_memory_for
from iommu_lab.pagetable.census import TableCensus, TableTree, table_census, table_tree
from iommu_lab.pagetable.table import PageTable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TableTree", "table_tree", "Workload", "WorkloadCost", "POLICIES"]

_U64 = np.uint64

#: Page-size policies: ``"4K"`` (the smallest page only, e.g. ``intel_iommu=sp_off``) and
#: ``"largest"`` (every size the platform advertises and the format can hold).
POLICIES = ("4K", "largest")

#: The most leaf entries :meth:`Workload.cost` accepts in one table (2^25: a 128 GiB guest in
#: 4 KiB pages, about 256 MiB of table pages had it been built). The cost is counted, not built,
#: so this is the size of table a design review is meant to weigh, not a memory limit; a larger
#: workload is refused, naming the policy that would fit.
MAX_LEAVES = 1 << 25


# ============================================================================== workload
def _ranges(items: Iterable[Any], what: str) -> tuple[IovaRange, ...]:
    """``items`` as ranges: IovaRange or ``(start, size)`` with exact integers or size text.

    Addresses and sizes are read with core's one grammar (``parse_address``/``parse_size``); a
    float is refused, never truncated.
    """
    if items is None:
        return ()
    if isinstance(items, (str, bytes, IovaRange)) or not isinstance(items, Iterable):
        raise TypeError(f"{what} must be a sequence of IovaRange or (start, size) pairs, "
                        f"got {type(items).__name__} {cut(repr(items))}")
    out = []
    for i, it in enumerate(items):
        if isinstance(it, IovaRange):
            out.append(it)
        elif isinstance(it, (tuple, list)) and len(it) == 2:
            start = parse_address(it[0], f"{what}[{i}] start")
            size = parse_size(it[1])
            if size <= 0:
                raise ValueError(f"{what} range at {fmt_addr(start)} has size {size}; sizes must be positive")
            if start + size - 1 > U64_MAX:
                raise ValueError(f"{what} range of {fmt_size(size)} at {fmt_addr(start)} wraps past the top of "
                                 f"the 64-bit space 0xffff_ffff_ffff_ffff")
            out.append(IovaRange(start, start + size - 1))
        else:
            raise TypeError(f"{what} entries are IovaRange or (start, size) pairs, got {type(it).__name__} "
                            f"{cut(repr(it))}")
    return tuple(out)


@dataclass(frozen=True)
class WorkloadCost:
    """One platform × policy row of :meth:`Workload.cost` (see ``compare_table`` for the columns)."""

    platform: str
    policy: str
    format: str
    fits: bool
    bytes_total: int
    bytes_outside: int
    outside: tuple[IovaRange, ...]
    table_bytes: int | None
    table_pages: int | None
    mix: dict = field(default_factory=dict)
    native_refs: float | None = None
    nested_refs: int | None = None
    nested_note: str = ""


@dataclass(frozen=True)
class Workload:
    """A guest's DMA-visible memory: RAM ranges plus device BARs, at their guest-physical addresses.

    Parameters
    ----------
    guest_ram : sequence of IovaRange or (start, size)
        RAM banks (size may be a string such as ``"4G"``).
    bars : sequence of IovaRange or (start, size)
        Device BARs a peer device DMAs into (peer-to-peer), mapped like RAM.
    name : str
        Title used in figures.

    Example
    -------
    >>> w = Workload.pc_guest(ram="16G")     # 0-3G RAM, 32-bit MMIO hole, the rest above 4G
    """

    guest_ram: tuple[IovaRange, ...]
    bars: tuple[IovaRange, ...] = ()
    name: str = "workload"

    def __init__(self, guest_ram: Sequence[Any], bars: Sequence[Any] = (), name: str = "workload") -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__} {cut(repr(name))}")
        object.__setattr__(self, "guest_ram", _ranges(guest_ram, "guest_ram"))
        object.__setattr__(self, "bars", _ranges(bars, "bars"))
        object.__setattr__(self, "name", name)
        if not self.guest_ram:
            raise ValueError("a workload needs at least one guest RAM range")

    @classmethod
    def pc_guest(cls, ram: int | str = "16G", *, bars: Sequence[Any] = ((0xE000_0000, "256M"),), low: int | str = "2G",
                 name: str | None = None) -> "Workload":
        """A PC-style guest: ``low`` bytes of RAM at 0, the rest from 4 GiB (the 32-bit MMIO
        hole in between holds the BARs), as QEMU's q35 machine lays it out."""
        total, low_size = parse_size(ram), parse_size(low)
        if total <= 0:
            raise ValueError(f"guest RAM {cut(repr(ram))} is empty; give a positive size such as '4G'")
        lo = min(total, low_size)
        if total > lo and (1 << 32) + (total - lo) - 1 > U64_MAX:
            raise ValueError(f"guest RAM {cut(repr(ram))} does not fit the 64-bit space above 4 GiB, where a PC "
                             f"guest's high RAM starts; at most {fmt_size(U64_MAX + 1 - (1 << 32) + lo, approx=True)}")
        banks = [(0, lo)] + ([(1 << 32, total - lo)] if total > lo else [])
        return cls(banks, bars, name or f"{fmt_size(total)} PC guest")

    @property
    def ranges(self) -> tuple[IovaRange, ...]:
        return self.guest_ram + self.bars

    @property
    def total_bytes(self) -> int:
        return sum(r.size for r in self.ranges)

    def outside(self, platform: Any) -> tuple[IovaRange, ...]:
        """The parts of the workload outside ``platform.iova_ranges()`` (a Platform or its name)."""
        return tuple((RangeSet(self.ranges) - _platform(platform).iova_ranges()))

    def fits(self, platform: Any) -> bool:
        """Whether every RAM and BAR range lies in the IOVA the platform lets a device use."""
        return not self.outside(_platform(platform))

    # ------------------------------------------------------------------ costs
    #: ``workload.plot(platforms, **kw)``: the comparison figure (``render.compare``).
    plot = display.plot

    def compare_table(self, platforms: Sequence[Any], *, policies: Sequence[str] = POLICIES) -> "pd.DataFrame":
        """One row per platform × policy (:func:`compare_table`)."""
        return compare_table(platforms, self, policies=policies)

    def cost(self, platform: Any, policy: str = "largest") -> WorkloadCost:
        """Table memory, page-size mix and walk references of this workload on ``platform``.

        ``platform`` is a ``Platform`` or a catalogue name (``"intel-vtd-48"``).

        Raises
        ------
        ValueError
            An unknown policy, or a workload that needs more than ``MAX_LEAVES`` leaf entries
            under the policy.
        IommuError
            ENOENT for an unknown platform name.
        """
        platform = _platform(platform)
        _check_policy(policy)
        c = _cached_cost(self, platform, policy)
        return replace(c, mix=dict(c.mix))  # the cached row stays the model's answer

    def _cost(self, platform: Platform, policy: str) -> WorkloadCost:
        outside = self.outside(platform)
        inside = RangeSet(self.ranges) & platform.iova_ranges()
        out_bytes = sum(r.size for r in outside)
        try:
            fname = platform.format_name("paging")
        except IommuError:
            fname = ""
        base = dict(platform=platform.name, policy=policy, format=fname or "-", fits=not outside,
                    bytes_total=self.total_bytes, bytes_outside=out_bytes, outside=outside)
        if not fname:
            return WorkloadCost(**base, table_bytes=None, table_pages=None,
                                nested_note="no page table: map/unmap requests only")

        fmt = _formats.get(fname)
        if fmt.linear:
            # Each window is its own TCE table with its own page shift (ibm,create-pe-dma-window).
            return self._tce_cost(platform, policy, inside, base)
        bitmap = self._bitmap(platform.pgsizes & fmt.leaf_bitmap, policy)
        _check_leaves(inside, bitmap, platform.name, policy)
        census = _census(fmt, bitmap, inside)
        mix = _census_mix(census)
        nested, note = self._nested_refs(platform, policy, mix)
        return WorkloadCost(**base, table_bytes=census.table_bytes, table_pages=census.table_count, mix=mix,
                            native_refs=_census_refs(census), nested_refs=nested, nested_note=note)

    @staticmethod
    def _bitmap(bitmap: int, policy: str) -> int:
        return bitmap & -bitmap if policy == "4K" else bitmap

    @staticmethod
    def _tce_cost(platform: Any, policy: str, inside: RangeSet, base: dict) -> WorkloadCost:
        """Each window the workload uses is its own flat TCE table with its own page size.

        As Linux's pseries/powernv code builds them: the default 32-bit window always has 4 KiB
        TCEs (``iommu_table_setparms_lpar`` sets ``IOMMU_PAGE_SHIFT_4K``) and the dynamic DMA
        window the size ``enable_ddw`` picks (``Platform.window_page_size``); under the "4K"
        policy every window uses 4 KiB TCEs. The table's size is fixed by its window
        (``Platform.window_format(w).table_bytes(0)``), however little of it is mapped; the
        ``format`` column names the TCE format of each window used (``power-tce-4k``,
        ``power-tce-64k``), in window order.
        """
        total = pages = 0
        mix: dict[int, int] = {}
        names: list[str] = []
        smallest = platform.pgsizes & -platform.pgsizes
        for w in platform.windows:
            used = inside & RangeSet([w])
            if not used:
                continue
            page = smallest if policy == "4K" else platform.window_page_size(w)
            wf = platform.window_format(w, page)
            total += wf.table_bytes(0)
            pages += -(-wf.table_bytes(0) // 4096)
            mix[page] = mix.get(page, 0) + sum(r.size for r in used)
            names.append(wf.name.split("@", 1)[0])
        if names:
            base = {**base, "format": "+".join(dict.fromkeys(names))}
        return WorkloadCost(**base, table_bytes=total, table_pages=pages, mix=dict(sorted(mix.items())),
                            native_refs=1.0 if mix else None, nested_refs=None,
                            nested_note="no stage 2: TCE windows have no nesting")

    def _nested_refs(self, platform: Any, policy: str, mix: dict[int, int]) -> tuple[int | None, str]:

        if platform.nesting is not NestingSupport.HARDWARE:
            return None, ("no hardware nesting" if platform.nesting.value == "none" else f"{platform.nesting.value} nesting only")
        if not mix:
            return None, "nothing mapped"

        dominant = max(mix, key=lambda s: (mix[s], s))
        try:
            f1 = _formats.get(platform.format_name("stage1"))
            s1 = self._bitmap(platform.pgsizes & f1.leaf_bitmap, policy) & ((dominant << 1) - 1)
            page = 1 << (s1.bit_length() - 1) if s1 else dominant
            note = f"{fmt_size(page)} pages in both stages"
            if page != dominant:
                note += f" (stage 1 {f1.name} has no {fmt_size(dominant)} page)"
            return _nested_walk_refs(platform, policy, page), note
        except (IommuError, ValueError) as e:  # a pair the models refuse: say why
            return None, str(e)


@functools.lru_cache(maxsize=256)
def _cached_cost(workload: Workload, platform: Platform, policy: str) -> WorkloadCost:
    """``Workload.cost`` computed once per (workload, platform, policy): a notebook that draws a
    comparison and then exports it asks for the same rows again. Both keys are frozen values."""
    return workload._cost(platform, policy)


def _nested_walk_refs(platform: Any, policy: str, page: int) -> int:
    """References of a real cold 2-D walk of one ``page``-sized stage-1 leaf over a stage 2 that
    maps the guest's RAM with the same policy (``Nested`` over ``GuestMemory``)."""

    f1 = _formats.get(platform.format_name("stage1"))
    f2 = _formats.get(platform.format_name("stage2"))
    ram = max(2 * page, 16 << 20)
    b2 = Workload._bitmap(platform.pgsizes & f2.leaf_bitmap, policy) & ((page << 1) - 1)
    b1 = Workload._bitmap(platform.pgsizes & f1.leaf_bitmap, policy)
    if not b2 or page not in _formats.get(f1).leaf_sizes or not b1 & page:
        raise ValueError(f"{fmt_size(page)} pages are not available in both stages ({f1.name} over {f2.name})")
    host = host_memory_for(f2)
    # Guest RAM at an aligned host address past the stage-2 tables; the host memory backs a
    # frame when it is first written, so only the guest's table pages take room.
    hpa = -(-(host.base + (64 << 20)) // page) * page
    if hpa + ram - 1 > host.last:
        raise ValueError(f"a {fmt_size(ram)} guest with {fmt_size(page)} pages does not fit the model's host memory")
    s2 = PageTable(f2, memory=host, pgsize_bitmap=b2)
    s2.map(0, hpa, ram)
    s1 = PageTable(f1, memory=GuestMemory(s2, host, base=0, size=ram, backing="external"), pgsize_bitmap=b1)
    nested = Nested(s1, s2)
    iova = max(page, 1 << 30)
    nested.map(iova, page, page)
    w = nested.walk(iova)
    if not w.ok:  # pragma: no cover - the set-up above maps everything the walk reads
        raise ValueError(str(w.fault))
    return int(w.n_pagetable_refs)


def _layout(fmt: Any, bitmap: int, inside: RangeSet) -> list[tuple[int, int]]:
    """The ``map`` calls a VMM makes for ``inside``: each range trimmed to the smallest page and
    kept when it lies in one of the format's input ranges (identity GPA -> HPA, so output
    addresses are aligned like the IOVA)."""
    m = bitmap & -bitmap
    out = []
    for r in inside:
        lo = (r.start + m - 1) & ~(m - 1)
        hi = (r.last + 1) & ~(m - 1)
        if hi > lo and any(IovaRange(lo, hi - 1) in ir for ir in fmt.input_ranges):
            out.append((lo, hi - lo))
    return out


def _census(fmt: Any, bitmap: int, inside: RangeSet) -> TableCensus | None:
    """The table pages ``inside`` needs, counted (``table_census``), or None when nothing maps."""
    layout = _layout(fmt, bitmap, inside)
    return table_census(fmt, layout, pgsize_bitmap=bitmap) if layout else _EmptyCensus(fmt)


class _EmptyCensus:
    """A table with nothing mapped: its root page only."""

    def __init__(self, fmt: Any) -> None:
        self.fmt = fmt
        self.leaves: dict[int, int] = {}
        self.table_bytes = fmt.table_bytes(fmt.top_level)
        self.table_count = 1


def _census_mix(census: Any) -> dict[int, int]:
    """``{page size: bytes mapped}``, smallest page first (``TableTree.mix`` from the count)."""
    return {int(s): int(s) * int(n) for s, n in sorted(census.leaves.items()) if n}


def _census_refs(census: Any) -> float | None:
    """Byte-weighted levels a cold single-stage walk reads, root to leaf (``TableTree.native_refs``)."""
    f = census.fmt
    weights = {f.level_for_size(s): 0 for s in census.leaves}
    total = 0
    for s, n in census.leaves.items():
        weights[f.level_for_size(s)] += s * n
        total += s * n
    if not total:
        return None
    return float(sum((f.top_level - lv + 1) * w for lv, w in weights.items()) / total)


def size_label(size: int) -> str:
    """``4096`` -> ``"4K"``, ``2 MiB`` -> ``"2M"`` (column names of the mix)."""
    return fmt_size(size).replace(" ", "").replace("iB", "").replace("B", "")


def _platform(p: Any) -> Platform:
    """A ``Platform`` from a platform or its catalogue name (ENOENT naming the known ones)."""
    if isinstance(p, Platform):
        return p
    if isinstance(p, str):
        return platforms.get(p)
    raise TypeError(f"platform must be a Platform or a catalogue name such as 'intel-vtd-48', "
                    f"got {type(p).__name__} {cut(repr(p))}")


def _platform_list(ps: Any) -> list[Platform]:
    if isinstance(ps, (str, Platform)):
        return [_platform(ps)]
    if ps is None or not isinstance(ps, Iterable):
        raise TypeError(f"platforms must be a list of Platform objects or catalogue names, "
                        f"got {type(ps).__name__} {cut(repr(ps))}")
    out = [_platform(p) for p in ps]
    if not out:
        raise ValueError("platforms is empty; give at least one Platform or catalogue name")
    return out


def _check_policy(policy: Any) -> None:
    if not isinstance(policy, str) or policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(map(repr, POLICIES))}, not {cut(repr(policy))}")


def _check_leaves(inside: RangeSet, bitmap: int, platform: str, policy: str) -> None:
    """Refuse a table of more than ``MAX_LEAVES`` leaf entries.

    An upper bound of ``iommu_map``'s page split (``iommu_pgsize``): per range, the bytes over
    the largest page plus, for each smaller size, the entries that can fill one larger page at
    either end.
    """
    if not bitmap:
        return
    sizes = [1 << b for b in range(64) if bitmap >> b & 1]
    edge = 2 * sum(sizes[i + 1] // sizes[i] for i in range(len(sizes) - 1))
    leaves = sum(r.size // sizes[-1] + edge for r in inside)
    if leaves > MAX_LEAVES:
        raise ValueError(
            f"the workload needs about {leaves:,} leaf entries on {platform} with policy {policy!r} "
            f"({fmt_size(inside.size, approx=True)} in {fmt_size(sizes[-1])} pages), more than the "
            f"{MAX_LEAVES:,} a cost accepts; use a smaller guest or larger pages (policy 'largest')"
        )


def compare_table(platforms: Sequence[Any], workload: Workload, *, policies: Sequence[str] = POLICIES):
    """One row per platform × policy: fit, table memory, page-size mix, walk references.

    Columns: ``platform``, ``policy``, ``format``, ``fits``, ``bytes_total``, ``bytes_outside``,
    ``table_bytes``, ``table_pages``, ``native_refs`` (byte-weighted levels per cold walk),
    ``nested_refs`` (a real 2-D walk of the dominant page size), ``nested_note``, and one
    ``mix_<size>`` column per page size with the bytes mapped at that size. Values that do not
    apply (no page table, no nesting) are missing (``<NA>``/NaN).
    """
    plats = _platform_list(platforms)
    if not isinstance(workload, Workload):
        raise TypeError(f"workload must be a Workload, got {type(workload).__name__} {cut(repr(workload))}")
    if isinstance(policies, str):
        policies = [policies]
    policies = list(policies)
    for pol in policies:
        _check_policy(pol)
    rows = []
    sizes: set[int] = set()
    for p in plats:
        for pol in policies:
            c = workload.cost(p, pol)
            sizes.update(c.mix)
            rows.append(c)
    order = sorted(sizes)
    data: dict[str, list] = {k: [] for k in ("platform", "policy", "format", "fits", "bytes_total", "bytes_outside",
                                             "table_bytes", "table_pages", "native_refs", "nested_refs", "nested_note")}
    for s in order:
        data[f"mix_{size_label(s)}"] = []
    for c in rows:
        data["platform"].append(c.platform)
        data["policy"].append(c.policy)
        data["format"].append(c.format)
        data["fits"].append(bool(c.fits))
        data["bytes_total"].append(c.bytes_total)
        data["bytes_outside"].append(c.bytes_outside)
        data["table_bytes"].append(c.table_bytes)
        data["table_pages"].append(c.table_pages)
        data["native_refs"].append(np.nan if c.native_refs is None else c.native_refs)
        data["nested_refs"].append(c.nested_refs)
        data["nested_note"].append(c.nested_note)
        for s in order:
            data[f"mix_{size_label(s)}"].append(int(c.mix.get(s, 0)))
    import pandas as pd  # only here: the models and the text views above need no pandas

    df = pd.DataFrame(data)
    for col in ("table_bytes", "table_pages", "nested_refs", "bytes_total", "bytes_outside"):
        df[col] = df[col].astype("Int64")
    df.attrs["workload"] = workload.name
    df.attrs["mix_sizes"] = order
    return df
