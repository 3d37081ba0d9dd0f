"""Every public model shows itself: repr, notebook HTML, DataFrame and figure, without raising.

The types are read from the package (``iommu_lab.__all__``, ``dir(iommu_lab)``, each layer
package's ``__all__`` and every type with a registered view), so a new public type without an
example below fails ``test_every_public_type_has_an_example``. Enums, exceptions and the
names listed in ``NOT_MODELS`` are not models and have no views.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import typing
from pathlib import Path
from typing import Any, Callable

import matplotlib.figure
import pandas as pd
import pytest

import iommu_lab as il
from iommu_lab.core import display
from iommu_lab.core.ranges import GiB, IovaRange, MiB, RangeSet
from iommu_lab.dma.caches import CacheConfig, Caches, Iotlb
from iommu_lab.dma.nested_iotlb import NestedIotlb
from iommu_lab.dma.replay import FlushQueue, replay
from iommu_lab.dma.trace import random_working_set, storage_sg
from iommu_lab.dma.whatif import what_if
from iommu_lab.hardware.device import Device, ReservedRegion
from iommu_lab.hardware.platform import platforms
from iommu_lab.io import read
from iommu_lab.io.debugfs import read_dmar_translation, read_domain_translation
from iommu_lab.io.dmesg import read_dmesg
from iommu_lab.io.faultwalk import explain
from iommu_lab.io.scenario import Scenario
from iommu_lab.io.sysfs import read_iommu_groups
from iommu_lab.iommufd.context import IommufdContext
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.nesting.explain import lookup as guest_lookup
from iommu_lab.nesting.nested import Nested, NestParent
from iommu_lab.nesting.pasid import AmdGcr3Table, Pgtt, SmmuCdTable, VtdPasidTable
from iommu_lab.nesting.shadow import DmaPattern, ShadowNesting
from iommu_lab.pagetable.census import Periodic, table_census
from iommu_lab.pagetable.memory import PhysicalMemory
from iommu_lab.pagetable.table import PageTable
from iommu_lab.review.migration import DirtyRate, Writes, migrate
from iommu_lab.review.workload import Workload, table_tree

DATA = Path(__file__).resolve().parent.parent / "data"
LAYERS = ("core", "hardware", "pagetable", "nesting", "iommufd", "dma", "review", "io")

#: Public names that are not models (no repr/HTML/plot contract), with the reason.
NOT_MODELS: dict[object, str] = {
    typing.Any: "a typing name re-exported for annotations",
    il._OldPathFinder: "the import hook that keeps the old flat module paths importable",
}


def _is_model(cls: type) -> bool:
    return not (issubclass(cls, (enum.Enum, BaseException)) or cls in NOT_MODELS)


def public_types() -> set[type]:
    """Every class a user can reach by a public name, and every type with a registered view."""
    names = set(getattr(il, "__all__", ())) | set(il.__dir__())
    found = [getattr(il, n) for n in names]
    for layer in LAYERS:
        module = importlib.import_module(f"iommu_lab.{layer}")
        found += [getattr(module, n) for n in getattr(module, "__all__", ())]
    found += [cls for cls, _ in display.registered()]  # loads the rendering layer and its registrations
    return {o for o in found if inspect.isclass(o) and _is_model(o)}


# -- one example of each ---------------------------------------------------------------------
class World:
    """The models the examples are cut from, built once."""

    def __init__(self) -> None:
        self.platform = platforms.get("intel-vtd-48")
        self.ioas = IOAS.from_platform(self.platform)
        self.area = self.ioas.map(4 * MiB + 0x3000)
        self.pt = self.ioas.domains[0]
        self.walk = self.pt.walk(self.area.iova)
        self.fault_walk = self.pt.walk(0x7000_0000_0000)
        self.nested = Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * MiB)
        self.nested.stage1.map(0x4000_0000, 0x10_0000, 0x1000)
        self.nested_walk = self.nested.walk(0x4000_0000)
        self.nested_fault = self.nested.walk(0x5000_0000)
        host = PhysicalMemory(name="host")
        self.vtd_pasid = VtdPasidTable(host)
        self.vtd_pasid.set_entry(0x40, Pgtt.FIRST_STAGE, fsptptr=0x5000)
        self.smmu_cds = SmmuCdTable(host, 8)
        self.smmu_cds.set_cd(3, 0x7000, asid=9)
        self.amd_gcr3 = AmdGcr3Table(host)
        self.amd_gcr3.set_gcr3(1, 0x8000)
        self.caches = Caches.for_platform(self.platform)
        trace = storage_sg(12, segments=(1, 2), seed=4)
        self.trace = trace
        self.replay = replay(trace, PageTable(self.platform.format("paging")), self.caches, policy="lazy",
                             progress=False)
        self.whatif = what_if(random_working_set(200, working_set=1 << 20, size=256, seed=3),
                              platforms=["intel-vtd-48"], pgsizes=["4K", "4K+2M"], progress=False)
        self.workload = Workload([(0, "1G"), (4 * GiB, "1G")], name="2 GiB guest")


def _first(xs):
    return next(iter(xs))


def _context() -> IommufdContext:
    ctx = IommufdContext()
    dev = ctx.bind("intel-vtd-48")
    ctx.attach(dev, ctx.hwpt_alloc(dev, ctx.ioas_alloc(), "NEST_PARENT"))
    return ctx


def _examples() -> dict[str, Callable[[World], Any]]:
    """Examples by class name (the qualified name, as the test ids show it)."""
    return {
        "IovaRange": lambda w: IovaRange(0x1000, 0x1FFF),
        "RangeSet": lambda w: RangeSet.bits(45),
        "FieldTable": lambda w: w.pt.fmt.fields(0, w.walk.steps[-1].entry.kind),
        "Field": lambda w: _first(w.pt.fmt.fields(0, w.walk.steps[-1].entry.kind)),
        "Format": lambda w: w.pt.fmt,
        "DecodedEntry": lambda w: w.walk.steps[0].entry,
        "Device": lambda w: Device("nic0", aperture=IovaRange(0x10_0000, 0xFFFF_FFFF),
                                   reserved=[ReservedRegion(0xFEE0_0000, 0xFEEF_FFFF, "msi")]),
        "ReservedRegion": lambda w: ReservedRegion(0xFEE0_0000, 0xFEEF_FFFF, "msi"),
        "Platform": lambda w: w.platform,
        "DomainDumps": lambda w: read_domain_translation(DATA / "debugfs" / "domain_translation_struct"),
        "Imported": lambda w: read(DATA / "amd" / "devtbl"),
        "DteRow": lambda w: read(DATA / "amd" / "devtbl").value[0],
        "RegisterRead": lambda w: read(DATA / "amd" / "mmio").value[0],
        "RegsetUnit": lambda w: read(DATA / "debugfs" / "v6.7" / "iommu_regset").value[0],
        "FaultLog": lambda w: read_dmesg(DATA / "dmesg" / "intel-pre5.1.log"),
        "FaultRecord": lambda w: read_dmesg(DATA / "dmesg" / "intel-pre5.1.log")[0],
        "FaultExplanation": lambda w: explain(
            read_dmesg(DATA / "dmesg" / "intel-pre5.1.log")[0],
            read_domain_translation(DATA / "debugfs" / "domain_translation_struct")),
        "PlatformCatalogue": lambda w: platforms,
        "PlatformInfo": lambda w: w.platform.info(),
        "PhysicalMemory": lambda w: PhysicalMemory(name="host"),
        "HostMemory": lambda w: w.ioas.host_memory,
        "GuestMemory": lambda w: w.nested.guest_memory,
        "PageTable": lambda w: w.pt,
        "Mapping": lambda w: _first(w.pt.mappings()),
        "TablePage": lambda w: w.pt.tables[0],
        "Walk": lambda w: w.walk,
        "Reference": lambda w: w.walk.refs[0],
        "Translation": lambda w: w.walk.result,
        "WalkFault": lambda w: w.fault_walk.fault,
        "TranslatedBatch": lambda w: w.pt.translate([w.area.iova, w.area.iova + 0x1000], paths=True),
        "TableTree": lambda w: table_tree(w.pt),
        "Nested": lambda w: w.nested,
        "NestedWalk": lambda w: w.nested_walk,
        "NestedRef": lambda w: w.nested_walk.refs[0],
        "NestedFault": lambda w: w.nested_fault.fault,
        "SmmuEvent": lambda w: w.nested_fault.fault.smmu_event(),
        "VtdFault": lambda w: w.nested_fault.fault.vtd_fault(),
        "AmdEvent": lambda w: w.nested_fault.fault.amd_event(),
        "NestParent": lambda w: NestParent(IOAS.from_platform(w.platform)),
        "GuestLookup": lambda w: guest_lookup(w.nested, 0x4000_0000),
        "ShadowNesting": lambda w: ShadowNesting.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * MiB),
        "DmaPattern": lambda w: DmaPattern.dynamic(8),
        "VtdPasidTable": lambda w: w.vtd_pasid,
        "SmmuCdTable": lambda w: w.smmu_cds,
        "AmdGcr3Table": lambda w: w.amd_gcr3,
        "Periodic": lambda w: Periodic(0, 4096, 2 * MiB, 4096),
        "TableCensus": lambda w: table_census("vtd-ss-4level", Periodic(0, 4096, 2 * MiB, 4096)),
        "DirtyRate": lambda w: DirtyRate(1000, 1 << 30),
        "Writes": lambda w: Writes.synthetic(1000, 1 << 30),
        "Migration": lambda w: migrate(DirtyRate(1000, 1 << 30), memory=1 << 30, bandwidth=1e9),
        "PasidLookup": lambda w: w.vtd_pasid.resolve(0x40),
        "IOAS": lambda w: w.ioas,
        "Area": lambda w: w.area,
        "Access": lambda w: IOAS.from_platform(w.platform).add_access(),
        "Reservation": lambda w: _first(w.ioas.reserved),
        "Lookup": lambda w: w.ioas.lookup(w.area.iova),
        "IoasInfo": lambda w: w.ioas.info(),
        "Capabilities": lambda w: w.ioas.info().capabilities,
        "IommufdContext": lambda w: _context(),
        "ObjectInfo": lambda w: _context().objects()[-1],
        "Trace": lambda w: w.trace,
        "CacheConfig": lambda w: CacheConfig(16),
        "Caches": lambda w: w.caches,
        "Iotlb": lambda w: Iotlb(CacheConfig(16)),
        "CacheStats": lambda w: Iotlb(CacheConfig(16)).stats,
        "NestedIotlb": lambda w: NestedIotlb(w.nested),
        "FlushQueue": lambda w: FlushQueue(),
        "Replay": lambda w: w.replay,
        "WhatIf": lambda w: w.whatif,
        "Workload": lambda w: w.workload,
        "WorkloadCost": lambda w: w.workload.cost(w.platform),
        "Scenario": lambda w: Scenario.load(DATA / "scenarios" / "vtd-nic.toml"),
        "IommuGroup": lambda w: read_iommu_groups(DATA / "sysfs" / "intel-host" / "iommu_groups")[0],
        "DomainDump": lambda w: read_domain_translation(DATA / "debugfs" / "domain_translation_struct")[0],
        "ContextRow": lambda w: read_dmar_translation(DATA / "debugfs" / "dmar_translation_struct")[0],
    }


#: What ``.plot()`` needs besides the model (a comparison draws a workload on platforms).
PLOT_ARGS: dict[str, tuple] = {"Workload": (["intel-vtd-48", "power9-pseries"],)}


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def _by_name() -> dict[str, type]:
    return {cls.__name__: cls for cls in public_types()}


def test_every_public_type_has_an_example():
    missing = sorted(set(_by_name()) - set(_examples()))
    assert missing == [], f"add an example to tests/test_display.py for: {', '.join(missing)}"


@pytest.mark.parametrize("name", sorted(_examples()))
def test_every_view_of_a_public_type_works(world, name):
    obj = _examples()[name](world)
    assert type(obj).__name__ == name or name in {c.__name__ for c in type(obj).__mro__}
    text = repr(obj)
    assert isinstance(text, str) and text
    if hasattr(obj, "_repr_html_"):
        html = obj._repr_html_()
        assert "il-repr" in html and "<script" not in html
        assert "&amp;#x27;" not in html and "&amp;lt;" not in html and "&amp;gt;" not in html  # escaped once
    if callable(getattr(obj, "to_dataframe", None)):
        assert isinstance(obj.to_dataframe(), pd.DataFrame)
    if callable(getattr(obj, "plot", None)):
        assert isinstance(obj.plot(*PLOT_ARGS.get(name, ())), matplotlib.figure.Figure)


def _registered() -> list[tuple[str, str]]:
    return sorted({(cls.__name__, output.value) for cls, output in display.registered()})


@pytest.mark.parametrize("name, output", _registered())
def test_draw_works_for_every_registered_type_and_output(world, name, output):
    obj = _examples()[name](world)
    result = il.render.draw(obj, output=output, **({"platforms": PLOT_ARGS[name][0]} if name in PLOT_ARGS else {}))
    expected = {"mpl": matplotlib.figure.Figure, "text": str, "html": str}[output]
    assert isinstance(result, expected) and (output == "mpl" or result)


# -- the HTML repr: text fallback without CSS, rich view with it, escaped once ----------------
def _without_style(html: str) -> str:
    """What a front end that strips ``<style>`` keeps."""
    start, end = html.index("<style>"), html.index("</style>") + len("</style>")
    return html[:start] + html[end:]


def test_without_css_the_text_form_shows_and_the_rich_view_is_hidden(world):
    html = world.ioas._repr_html_()
    bare = _without_style(html)
    pre = bare[bare.index("<pre class='il-text'>"):bare.index("</pre>")]
    assert "style=" not in pre and " area" in pre  # the repr text, visible
    assert "<div class='il-rich' style='display: none'>" in bare  # the table waits for the CSS
    assert bare.index("</pre>") < bare.index("<table>")


def test_with_css_the_rich_view_shows_and_the_text_form_is_hidden():
    from iommu_lab.render.html import CSS

    assert ".il-repr .il-text { display: none; }" in CSS
    assert ".il-repr .il-rich { display: block !important; }" in CSS  # beats the inline style


def test_every_part_of_a_table_is_escaped_exactly_once():
    from iommu_lab.render.html import table_html

    html = table_html("o'k<>", ["a<b"], [["x&y"]], text="t<'>", footer="f'<>", bad=True)
    assert "o&#x27;k&lt;&gt;" in html and "a&lt;b" in html and "x&amp;y" in html
    assert "t&lt;&#x27;&gt;" in html and "<div class='il-bad'>f&#x27;&lt;&gt;</div>" in html
    assert "&amp;#x27;" not in html and "&amp;lt;" not in html


def test_an_ioas_footer_with_quotes_and_brackets_is_escaped_once():
    ioas = IOAS()
    ioas.reserve(IovaRange(0x1000, 0x1FFF), owner="o'k<>")
    html = ioas._repr_html_()
    assert "o&#x27;k&lt;&gt;" in html and "&amp;#x27;" not in html
