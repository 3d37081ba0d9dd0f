"""Models' .plot() shortcuts call their renderer and return its Figure."""

import matplotlib.figure

import iommu_lab as il


def _ok(fig, kind):
    assert isinstance(fig, matplotlib.figure.Figure)
    assert any(hasattr(ax, kind) for ax in fig.axes), f"no {kind} data on the figure"


def test_plot_shortcuts_draw_the_models_renderer(tmp_path):
    ioas = il.IOAS.from_platform(il.platforms.get("intel-vtd-48"))
    ioas.map(2 * il.MiB)
    _ok(ioas.plot(), "_iommu_layout")
    _ok(il.platforms.get("power9-pseries").plot(style="dark"), "_iommu_layout")
    _ok(il.RangeSet.bits(45).plot(), "_iommu_layout")
    pt = ioas.domains[0]
    _ok(pt.plot(), "_iommu_pagetable")
    _ok(pt.walk(ioas.areas[0].iova).plot(filename=tmp_path / "w.svg"), "_iommu_walk")
    assert (tmp_path / "w.svg").stat().st_size > 1000
    n = il.Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * il.MiB)
    n.stage1.map(0x4000_0000, 0x10_0000, 0x1000)
    _ok(n.walk(0x4000_0000).plot(), "_iommu_nested")
