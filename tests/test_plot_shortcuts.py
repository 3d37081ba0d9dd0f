"""Models' .plot() shortcuts call their renderer and return its Figure."""

import matplotlib.figure

import iommu_lab as il


def _ok(fig, renderer):
    """``fig`` is a Figure holding the artists ``renderer`` draws (their gids start with its name)."""
    assert isinstance(fig, matplotlib.figure.Figure)
    gids = {str(a.get_gid()) for ax in fig.axes for a in ax.findobj() if a.get_gid()}
    assert any(g.startswith(f"{renderer}:") for g in gids), f"no {renderer} artists on the figure"


def test_plot_shortcuts_draw_the_models_renderer(tmp_path):
    ioas = il.IOAS.from_platform(il.platforms.get("intel-vtd-48"))
    ioas.map(2 * il.MiB)
    _ok(ioas.plot(), "layout")
    _ok(il.platforms.get("power9-pseries").plot(style="dark"), "layout")
    _ok(il.RangeSet.bits(45).plot(), "layout")
    pt = ioas.domains[0]
    _ok(pt.plot(), "pagetable")
    _ok(pt.walk(ioas.areas[0].iova).plot(filename=tmp_path / "w.svg"), "walk")
    assert (tmp_path / "w.svg").stat().st_size > 1000
    n = il.Nested.build("x86-64-4level", "vtd-ss-4level", guest_ram=4 * il.MiB)
    n.stage1.map(0x4000_0000, 0x10_0000, 0x1000)
    _ok(n.walk(0x4000_0000).plot(), "nested")
