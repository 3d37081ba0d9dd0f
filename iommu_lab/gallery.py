"""Every figure the renderers make, written to a folder for review: ``python -m iommu_lab.gallery OUTDIR``.

Each entry is a name and a function ``style -> Figure``; the gallery writes
``OUTDIR/<name>-<style>.svg`` and ``.png`` for the light and dark styles. Adding a figure is
one line::

    gallery.add("walk-vtd-4level", lambda style: render.walk(example_walk(), style=style))

A renderer module that brings a new *kind* of figure (faults, object graph, migration, ...)
adds one line to ``KINDS`` below: the module and the function in it that registers its gallery
entries (``register(add)``). ``kinds()`` lists the kinds the gallery holds, so the tests check
that every kind is written in every style and format.

The layout entries draw David Gibson's three window examples from the /dev/ioasid thread
(17 Jun 2021) and every platform in the catalogue.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from iommu_lab.core.ranges import U64_MAX, IovaRange
from iommu_lab.hardware.device import ReservedRegion
from iommu_lab.render import style as _style
from iommu_lab.render.layout import layout

__all__ = ["add", "ENTRIES", "KINDS", "SEED_EXAMPLES", "SeedExample", "kind_of", "kinds", "write", "main"]

ENTRIES: dict[str, Callable[[str], object]] = {}


def add(name: str, make: Callable[[str], object]) -> None:
    """Register a gallery figure: ``make(style)`` returns a Figure."""
    if name in ENTRIES:
        raise ValueError(f"gallery entry {name!r} already exists")
    ENTRIES[name] = make


@dataclass(frozen=True)
class SeedExample:
    """A platform-shaped example (``name``, ``title``, ``windows``, ``reserved``) for layout()."""

    name: str
    title: str
    windows: tuple[IovaRange, ...]
    reserved: tuple[ReservedRegion, ...] = ()


SEED_EXAMPLES = (
    SeedExample(
        "seed-45bit",
        "Gibson example 1: an IOMMU implementing 45 bits of IOVA",
        (IovaRange(0x0, 0x1FFF_FFFF_FFFF),),
    ),
    SeedExample(
        "seed-power",
        "Gibson example 2: POWER paravirtual IOMMU, 1 GiB 32-bit window + 2^45 window at 2^59",
        (IovaRange(0x0, 0x3FFF_FFFF), IovaRange(0x0800_0000_0000_0000, 0x0800_1FFF_FFFF_FFFF)),
    ),
    SeedExample(
        "seed-64bit-reserved",
        "Gibson example 3: full 64-bit IOVA with a reserved range [0xaaaa_0000, 0xbbba_ffff]",
        (IovaRange(0x0, U64_MAX),),
        (ReservedRegion(0xAAAA_0000, 0xBBBA_FFFF, "reserved"),),
    ),
)


def _register_layouts() -> None:
    for ex in SEED_EXAMPLES:
        add(f"layout-{ex.name}", lambda style, ex=ex: layout(ex, style=style))
    add("layout-seed-all", lambda style: layout(list(SEED_EXAMPLES), style=style, title="Gibson's three window examples on one axis"))
    try:
        from iommu_lab.hardware.platform import platforms
    except ImportError:  # platform catalogue not available yet
        return
    for name in platforms.names():
        add(f"layout-platform-{name}", lambda style, name=name: layout(platforms.get(name), style=style))
    try:
        from iommu_lab.iommufd.ioas import IOAS  # noqa: F401
    except ImportError:
        return
    add("layout-ioas-examples", lambda style: layout(example_ioases(), style=style, title="IOAS examples: maps, allowed ranges, a user reservation"))


def example_ioases() -> list:
    """Two small IOASes: a VT-d one with allowed ranges, a user reservation and 200 maps, and a
    POWER one with a map in each window."""
    from iommu_lab.core.ranges import GiB, KiB, MiB
    from iommu_lab.hardware.platform import platforms
    from iommu_lab.iommufd.ioas import IOAS

    vtd = IOAS.from_platform(platforms.get("intel-vtd-48"))
    vtd.reserve(IovaRange(0x4000_0000, 0x4FFF_FFFF))
    vtd.allow_iovas([IovaRange(0x1000, 0x3FFF_FFFF), IovaRange(0x1_0000_0000, 0x7FFF_FFFF_FFFF)])
    for _ in range(200):
        vtd.map(64 * KiB)
    vtd.map(GiB, iova=1 << 40)
    power = IOAS.from_platform(platforms.get("power9-pseries"))
    power.map(256 * MiB)
    power.map(GiB, iova=1 << 59)
    return [vtd, power]


_register_layouts()


def write(outdir: str | Path, *, names: list[str] | None = None, formats=(".svg", ".png"), styles=("light", "dark")) -> list[Path]:
    """Write the selected (default: all) gallery figures in every style and format."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in ENTRIES.items():
        if names and name not in names:
            continue
        for st in styles:
            fig = make(st)
            for suffix in formats:
                written.append(_style.save(fig, out / f"{name}-{st}{suffix}", style=st))
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m iommu_lab.gallery", description=__doc__.splitlines()[0])
    ap.add_argument("outdir", help="folder to write the figures into")
    ap.add_argument("--only", nargs="*", help="entry names (default: all); --list shows them")
    ap.add_argument("--list", action="store_true", help="list the entries and exit")
    ap.add_argument("--format", nargs="*", default=[".svg", ".png"], help="suffixes to write (.svg .png .pdf)")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(ENTRIES))
        return 0
    for path in write(args.outdir, names=args.only, formats=tuple(args.format)):
        print(path)
    return 0




# -- walks, nested walks, page-table trees, comparisons ----------------------------------------
def example_pagetable():
    """A VT-d 4-level table with 2 GiB of 1 GiB pages at 0, 2 MiB of 4 KiB pages just past 4 GiB,
    three 4 KiB pages high up, and a 1 GiB page at 512 GiB."""
    from iommu_lab.pagetable import PageTable

    pt = PageTable("vtd-ss-4level")
    pt.map(0, 0, 0x8000_0000)
    pt.map(0x1_0000_1000, 0x1000, 0x20_0000)
    pt.map(0x7F_1234_5000, 0x2_0000_0000, 0x3000)
    pt.map(0x80_0000_0000, 0x4000_0000, 1 << 30)
    return pt


def example_big_pagetable():
    """8 GiB of 4 KiB pages (4,106 table pages), with a 1 MiB hole."""
    from iommu_lab.pagetable import PageTable

    pt = PageTable("vtd-ss-4level", pgsize_bitmap=0x1000)
    pt.populate(0, 0x1_0000_0000, 8 << 30, 4096)
    pt.unmap(0x1000_0000, 0x10_0000)
    return pt


def example_nested(backing: str = "lazy"):
    """An x86-64 guest table over a VT-d second stage, the guest mapping one 4 KiB page at
    0x4000_0000 (lazy backing: 4 KiB stage-2 pages everywhere, the 24-reference case)."""
    from iommu_lab.nesting.nested import Nested

    n = Nested.build("x86-64-4level", "vtd-ss-4level", backing=backing)
    n.map(0x4000_0000, 0x10_0000, 0x1000)
    if backing == "lazy":
        n.guest_memory.back(0x10_0000, 0x1000)
    return n


def example_workload():
    from iommu_lab.review.workload import Workload

    return Workload.pc_guest("8G")


def _nested_figure(n, iova: int, style: str):
    from iommu_lab.render.nested import nested_walk

    return nested_walk(n.walk(iova), style=style, formats=(n.stage1.fmt, n.stage2.fmt))


COMPARE_PLATFORMS = ("intel-vtd-48", "amd-v1", "arm-smmuv3-48", "power9-pseries", "riscv-sv48", "virtio-iommu-q35")


def _register_table_figures() -> None:
    from iommu_lab.render.compare import compare
    from iommu_lab.render.pagetable import pagetable
    from iommu_lab.render.walk import walk

    add("walk-vtd-4k", lambda style: walk(example_pagetable().walk(0x1_0000_1678), style=style))
    add("walk-vtd-1g", lambda style: walk(example_pagetable().walk(0x80_0123_4567), style=style))
    add("walk-vtd-fault", lambda style: walk(example_pagetable().walk(0x7F_1230_0000), style=style))
    add("nested-4x4", lambda style: _nested_figure(example_nested(), 0x4000_0123, style))
    add("nested-guest-fault", lambda style: _nested_figure(example_nested(), 0x5000_0000, style))
    add("nested-eager-1g-s2", lambda style: _nested_figure(example_nested("eager"), 0x4000_0123, style))
    add("pagetable-mixed", lambda style: pagetable(example_pagetable(), style=style))
    add("pagetable-8g-4k", lambda style: pagetable(example_big_pagetable(), style=style))
    add("compare-8g-guest", lambda style: compare(COMPARE_PLATFORMS, example_workload(), style=style))


_register_table_figures()


def example_replay(policy: str = "lazy"):
    """A NIC (per-packet DMA API) and an NVMe queue sharing a VT-d domain, replayed."""
    from iommu_lab.dma.caches import Caches
    from iommu_lab.dma.replay import replay as run
    from iommu_lab.dma.trace import Trace, nic_rx_ring, storage_sg
    from iommu_lab.pagetable import PageTable

    tr = Trace.merge(
        nic_rx_ring(300, gbps=25, recycle=False, seed=1),
        storage_sg(30, segments=(1, 4), seed=2),
        name="NIC RX + NVMe",
    )
    domain = PageTable("vtd-ss-4level", pgsize_bitmap=0x1000)
    return run(tr, domain, Caches.for_platform("intel-vtd-48"), policy=policy, progress=False)


def example_whatif():
    """A random working set on two platforms, 4 KiB pages against 2 MiB pages."""
    from iommu_lab.dma.trace import random_working_set
    from iommu_lab.dma.whatif import what_if

    tr = random_working_set(2000, working_set=8 << 20, size=256, seed=3)
    return what_if(tr, platforms=["intel-vtd-48", "power9-pseries"], pgsizes=["4K", "4K+2M"], progress=False)


def _register_replay_figures() -> None:
    from iommu_lab.render.replay import replay

    add("replay-nic-nvme-lazy", lambda style: replay(example_replay(), style=style))
    add("whatif-working-set", lambda style: replay(example_whatif(), style=style))


_register_replay_figures()


#: Figure kinds other renderer modules add: ``(module, function)``; the function is called with
#: ``add`` and registers that module's gallery entries. One line per module.
KINDS: list[tuple[str, str]] = [
    ("iommu_lab.render.census", "gallery"),
    ("iommu_lab.render.migration", "gallery"),
    ("iommu_lab.render.objects", "gallery"),
    ("iommu_lab.render.faults", "gallery"),
]


def _register_kinds() -> None:
    import importlib

    for module, func in KINDS:
        try:
            mod = importlib.import_module(module)
        except ImportError:  # that renderer is not installed in this tree
            continue
        getattr(mod, func)(add)


_register_kinds()


def kind_of(name: str) -> str:
    """The figure kind of a gallery entry: the part of its name before the first '-'."""
    return name.split("-", 1)[0]


def kinds() -> list[str]:
    """Every figure kind the gallery writes (layout, walk, nested, pagetable, compare, ...)."""
    return list(dict.fromkeys(kind_of(n) for n in ENTRIES))


if __name__ == "__main__":
    sys.exit(main())
