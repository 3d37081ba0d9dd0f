"""The object-graph view: one box per object, coloured by kind, edges for attach and for the
references IOMMU_DESTROY checks, legible at 900 px, the same facts as text and HTML."""

from __future__ import annotations

import matplotlib.figure
import pytest

from iommu_lab import render
from iommu_lab.iommufd import IommufdContext, ObjType
from iommu_lab.render.draw import figure
from iommu_lab.render.objects import OBJECT_GRAPH, TEXT_PT, object_graph_data


@pytest.fixture
def ctx():
    c = IommufdContext()
    ioas = c.ioas_alloc()
    vtd = c.bind("intel-vtd-48")
    parent = c.hwpt_alloc(vtd, ioas, "NEST_PARENT|PASID")
    nested = c.hwpt_alloc(vtd, parent, "PASID", data_type="VTD_S1")
    c.attach(vtd, nested)
    c.attach(vtd, parent, pasid=5)
    smmu = c.bind("arm-smmuv3-48")
    sparent = c.hwpt_alloc(smmu, ioas, "NEST_PARENT")
    viommu = c.viommu_alloc(smmu, sparent, "ARM_SMMUV3")
    c.vdevice_alloc(viommu, smmu, 0x10)
    c.attach(smmu, c.hwpt_alloc(smmu, viommu, data_type="ARM_SMMUV3"))
    return c


def edges(data):
    return {(e.source, e.target, e.relation, e.label) for e in data.edges}


def test_every_object_is_a_box_and_every_reference_an_edge(ctx):
    data = object_graph_data(ctx)
    assert [n.id for n in data.nodes] == sorted(ctx.objects_by_id)
    assert edges(data) == {
        (2, 4, "attached to", ""), (2, 3, "attached to", "pasid 5"),
        (3, 1, "built on", ""), (4, 3, "built on", ""),
        (6, 1, "built on", ""), (7, 6, "built on", ""), (8, 7, "built on", ""), (8, 5, "virtual id of", ""),
        (9, 7, "built on", ""), (5, 9, "attached to", ""),
    }


def test_boxes_sit_in_columns_from_devices_to_the_ioas(ctx):
    data = object_graph_data(ctx)
    x = {n.kind: n.x for n in data.nodes}
    assert x[ObjType.DEVICE] < x[ObjType.HWPT_NESTED] < x[ObjType.VIOMMU] < x[ObjType.HWPT_PAGING] < x[ObjType.IOAS]
    for a in data.nodes:  # no two boxes overlap
        for b in data.nodes:
            if a.id < b.id and a.column == b.column:
                assert a.y + a.height <= b.y or b.y + b.height <= a.y


def test_boxes_carry_the_key_flags_and_the_device_its_attachments(ctx):
    data = object_graph_data(ctx)
    assert data.node(3).lines[:2] == ("NEST_PARENT", "PASID")
    assert "VTD_S1" in data.node(4).lines
    assert "RID → HWPT 4" in data.node(2).lines and "pasid 5 → HWPT 3" in data.node(2).lines
    assert "virt_id 0x10" in data.node(8).lines


def test_an_automatic_hwpt_says_so_and_disappears_with_its_device():
    c = IommufdContext()
    ioas = c.ioas_alloc()
    dev = c.bind("amd-v1")
    hwpt = c.attach(dev, ioas)
    assert object_graph_data(c).node(hwpt).lines[0] == "auto (attach)"
    c.detach(dev)
    assert hwpt not in {n.id for n in object_graph_data(c).nodes}


@pytest.mark.parametrize("style", ["light", "dark"])
def test_the_figure_is_legible_at_900_px_with_one_colour_per_kind_and_no_duplicate_legend(ctx, style):
    fig = render.object_graph(ctx, style=style)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig.get_figwidth() <= 9.0  # shown at 100 dpi: 900 px, so 10 pt stays 10 pt
    texts = [t for ax in fig.axes for t in ax.texts] + list(fig.legends[0].get_texts())
    assert min(t.get_fontsize() for t in texts) >= TEXT_PT
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(set(labels))
    assert labels == ["DEVICE", "HWPT_NESTED", "VDEVICE", "VIOMMU", "HWPT_PAGING", "IOAS",
                      "attached to", "built on", "virtual id of"]
    ax = fig.axes[0]
    faces = {}
    for p in ax.patches:
        gid = p.get_gid() or ""
        if gid.startswith("objects:kind:"):
            kind = object_graph_data(ctx).node(int(gid.rsplit(":", 1)[1])).kind
            faces.setdefault(kind, set()).add(p.get_facecolor())
    assert all(len(f) == 1 for f in faces.values())
    assert len({next(iter(f)) for f in faces.values()}) == len(faces)


def test_a_long_line_is_cut_in_the_figure_but_whole_in_the_text(ctx):
    ctx.bind("intel-vtd-48", name="a-very-long-device-name-for-a-box")
    fig = render.object_graph(ctx)
    shown = [t.get_text() for t in fig.axes[0].texts]
    assert any(s.endswith("…") and s.startswith("a-very-long") for s in shown)
    assert "a-very-long-device-name-for-a-box" in render.object_graph_text(ctx)


def test_text_and_html_views_list_every_object_and_edge(ctx):
    text = render.draw(ctx, output="text")
    assert "HWPT_NESTED 4: VTD_S1, PASID, intel-iommu" in text
    assert "-> attached to HWPT_PAGING 3 (pasid 5)" in text
    assert "-> virtual id of DEVICE 5" in text
    html = ctx._repr_html_()
    assert "il-repr" in html and "built on VIOMMU 7" in html and "<script" not in html


def test_an_object_row_draws_as_its_own_box_with_what_it_holds(ctx):
    row = ctx.objects()[3]  # HWPT_NESTED 4
    data = object_graph_data(row)
    assert [n.id for n in data.nodes] == [4] and data.edges == ()
    assert data.node(4).lines[-1] == "holds 3"
    assert isinstance(row.plot(), matplotlib.figure.Figure)
    assert "holds 3" in row._repr_html_()


def test_an_empty_context_says_how_to_start():
    fig = render.object_graph(IommufdContext())
    assert any("allocate an IOAS" in t.get_text() for t in fig.axes[0].texts)
    assert "(no objects)" in render.object_graph_text(IommufdContext())


def test_drawing_does_not_change_the_context(ctx):
    before = (ctx.objects(), ctx.attachments())
    render.object_graph(ctx)
    render.object_graph_text(ctx)
    ctx._repr_html_()
    assert (ctx.objects(), ctx.attachments()) == before


def test_object_graph_refuses_other_models():
    with pytest.raises(TypeError, match="IommufdContext or an ObjectInfo"):
        object_graph_data(object())


def test_an_edge_that_skips_a_column_passes_above_the_boxes_it_skips(ctx):
    drawing = figure(OBJECT_GRAPH, ctx)
    viommu = drawing.data.node(7)
    route = drawing.drawn["routes"][(4, 3)]  # the VT-d nested HWPT to its parent, past the SMMUv3 vIOMMU
    crossing = [(p, q) for p, q in zip(route, route[1:])
                if min(p[0], q[0]) < viommu.x + viommu.width and max(p[0], q[0]) > viommu.x]
    assert crossing and all(min(p[1], q[1]) > viommu.y + viommu.height for p, q in crossing)


def _rich(html: str) -> str:
    return html[html.index("<div class='il-rich'"):]


def test_get_info_html_says_page_sizes_in_words_and_windows_as_ranges():
    from iommu_lab.core import display
    from iommu_lab.hardware.platform import platforms
    from iommu_lab.iommufd.ioas import IOAS

    info = IOAS.from_platform(platforms.get("power9-pseries")).info()
    rich = _rich(display.html(info))
    assert "4 KiB, 64 KiB" in rich and "0x11000" not in rich
    # Each permitted window is a range with its size, never an object dump.
    assert "0x0 – 0x3fff_ffff (1 GiB)" in rich
    assert "0x800_0000_0000_0000 – 0x800_1fff_ffff_ffff (32 TiB)" in rich
    assert "IovaRange(" not in rich and "Capabilities(" not in rich
    assert "nesting</td><td>none" in rich
    # A device-less IOAS accepts every power of two: said as a run, not 64 sizes.
    assert "every power of two from 1 B to 8 EiB (64 sizes)" in _rich(display.html(IOAS().info()))


def test_capabilities_html_answers_each_capability_in_words():
    from iommu_lab.core import display
    from iommu_lab.hardware.platform import platforms
    from iommu_lab.iommufd.info import capabilities_of

    rich = _rich(display.html(capabilities_of(platforms.get("intel-vtd-48"))))
    for row in ("page-table binding</td><td>yes", "PASID-table binding</td><td>no", "nesting</td><td>hardware",
                "dirty tracking</td><td>yes", "20-bit (1,048,576 PASIDs)"):
        assert row in rich
    assert "NestingSupport" not in rich
