"""The design-review comparison: the frame's numbers come from the models, the figure draws the frame."""

from __future__ import annotations

import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from iommu_lab import render
from iommu_lab.core.ranges import GiB, IovaRange, MiB
from iommu_lab.hardware.platform import platforms
from iommu_lab.nesting.nested import nested_walk_refs
from iommu_lab.pagetable import PageTable
from iommu_lab.render.compare import COMPARE, compare_table
from iommu_lab.render.draw import figure
from iommu_lab.review.workload import Workload, table_tree

PLATFORMS = ["intel-vtd-48", "amd-v2", "power9-pseries", "riscv-sv39", "virtio-iommu-q35"]


@pytest.fixture(scope="module")
def guest():
    return Workload([(0, "1G"), (4 * GiB, "1G")], bars=[(0xE000_0000, "64M")], name="2 GiB guest")


@pytest.fixture(scope="module")
def frame(guest):
    return compare_table(PLATFORMS, guest)


def row(df, platform, policy):
    r = df[(df["platform"] == platform) & (df["policy"] == policy)]
    assert len(r) == 1
    return r.iloc[0]


def test_fits_follows_the_platforms_permitted_iova(guest, frame):
    assert guest.fits(platforms.get("intel-vtd-48"))
    pseries = platforms.get("power9-pseries")
    assert not guest.fits(pseries)
    outside = guest.outside(pseries)
    # POWER's 32-bit window is 1 GiB at 0: the BAR and the bank above 4 GiB are outside it.
    assert sum(r.size for r in outside) == 1 * GiB + 64 * MiB
    r = row(frame, "power9-pseries", "4K")
    assert not r["fits"] and r["bytes_outside"] == 1 * GiB + 64 * MiB
    assert row(frame, "intel-vtd-48", "largest")["fits"]


def test_table_memory_and_mix_are_those_of_a_real_page_table(guest, frame):
    pt = PageTable("vtd-ss-4level", pgsize_bitmap=0x1000)
    for r in guest.ranges:
        pt.map(r.start, r.start, r.size)
    tree = table_tree(pt)
    r = row(frame, "intel-vtd-48", "4K")
    assert r["table_bytes"] == pt.table_bytes == tree.table_bytes
    assert r["table_pages"] == len(pt.tables)
    assert r["mix_4K"] == guest.total_bytes
    big = row(frame, "intel-vtd-48", "largest")
    assert big["mix_1G"] == 2 * GiB and big["mix_2M"] == 64 * MiB
    assert big["table_bytes"] < r["table_bytes"]


def test_walk_references_native_and_nested(frame):
    r = row(frame, "intel-vtd-48", "4K")
    assert r["native_refs"] == 4.0
    assert r["nested_refs"] == nested_walk_refs(4, 4) == 24
    big = row(frame, "intel-vtd-48", "largest")
    # 1 GiB leaves in both stages: 2 levels each, (2+1)(2+1)-1.
    assert big["nested_refs"] == nested_walk_refs(2, 2) == 8
    assert big["native_refs"] == pytest.approx((2 * 2 * GiB + 3 * 64 * MiB) / (2 * GiB + 64 * MiB))
    # AMD v2: x86-64 guest table over a 6-level v1 host table.
    assert row(frame, "amd-v2", "4K")["nested_refs"] == nested_walk_refs(4, 6) == 34
    assert row(frame, "riscv-sv39", "4K")["native_refs"] == 3.0
    assert row(frame, "riscv-sv39", "4K")["nested_refs"] is pd_na()
    assert "no hardware nesting" in row(frame, "riscv-sv39", "4K")["nested_note"]


def pd_na():
    import pandas as pd

    return pd.NA


def test_tce_windows_cost_their_flat_table_and_virtio_has_none(frame):
    from iommu_lab.hardware import formats

    r = row(frame, "power9-pseries", "largest")
    # Only the 1 GiB window at 0 is used; with 64 KiB TCEs it is 16384 entries of 8 bytes.
    assert r["table_bytes"] == formats.power_tce(16, window_bits=30).table_bytes(0) == 128 * 1024
    assert r["native_refs"] == 1.0
    v = row(frame, "virtio-iommu-q35", "4K")
    assert v["fits"] and v["table_bytes"] is pd_na()


def test_the_figure_draws_the_frame(guest, frame):
    drawing = figure(COMPARE, guest, platforms=PLATFORMS, frame=frame)
    axes = drawing.figure.axes
    assert len(axes) == 4
    drawn = drawing.drawn
    assert drawn["frame"] is frame and drawn["platforms"] == PLATFORMS
    for name in PLATFORMS:
        r = row(frame, name, "4K")
        assert drawn["fits"][name] == (bool(r["fits"]), int(r["bytes_outside"]))
    for (name, pol), v in drawn["table_bytes"].items():
        assert v == row(frame, name, pol)["table_bytes"]
    for (name, pol, kind), v in drawn["refs"].items():
        assert v == pytest.approx(float(row(frame, name, pol)[f"{kind}_refs"]))
    # Bar lengths on the axes are the frame's numbers.
    nested = [p for p in axes[3].patches if p.get_gid() == "compare:refs:nested:4K"]
    assert sorted(round(p.get_width()) for p in nested) == sorted(
        int(row(frame, n, "4K")["nested_refs"]) for n in PLATFORMS if row(frame, n, "4K")["nested_refs"] is not pd_na())
    assert [t.get_text() for t in axes[0].get_yticklabels()] == PLATFORMS


@pytest.mark.parametrize("st", ["light", "dark"])
def test_both_styles_are_opaque(guest, frame, st):
    fig = render.compare(PLATFORMS, guest, frame=frame, style=st)
    assert to_rgba(fig.get_facecolor())[3] == 1.0
    for a in fig.axes:
        assert to_rgba(a.get_facecolor())[3] == 1.0
        for p in a.patches:
            assert to_rgba(p.get_facecolor())[3] == 1.0


def test_ax_and_filename_keywords(guest, frame, tmp_path):
    fig = Figure(figsize=(14, 12), layout="constrained")
    top, bottom = fig.subplots(2)
    assert render.compare(PLATFORMS, guest, frame=frame, ax=bottom, filename=tmp_path / "c.svg") is fig
    assert top in fig.axes and bottom not in fig.axes and len(fig.axes) == 5
    one = (tmp_path / "c.svg").read_bytes()
    render.compare(PLATFORMS, guest, frame=frame, filename=tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    fig2 = Figure(figsize=(14, 12), layout="constrained")
    render.compare(PLATFORMS, guest, frame=frame, ax=fig2.subplots(2)[1], filename=tmp_path / "d.svg")
    assert (tmp_path / "d.svg").read_bytes() == one


def test_workload_plot_shortcut_and_input_checks(guest, frame):
    fig = guest.plot(PLATFORMS, frame=frame)
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="policy"):
        guest.cost(platforms.get("intel-vtd-48"), "huge")
    with pytest.raises(ValueError, match="at least one"):
        Workload([])
    w = Workload.pc_guest("3G")
    assert w.guest_ram == (IovaRange(0, 2 * GiB - 1), IovaRange(4 * GiB, 5 * GiB - 1))


def test_an_axes_placed_by_hand_is_split_into_four_insets(guest, frame):
    fig = Figure(figsize=(14, 10))
    ax = fig.add_axes((0.05, 0.05, 0.9, 0.9))
    assert render.compare(PLATFORMS, guest, frame=frame, ax=ax) is fig
    assert len(ax.child_axes) == 4 and not ax.axison


# -- image regression: drawn-data fingerprint + thumbnail (see test_render_walk.check_reference) --
def _entries():
    from iommu_lab.gallery import ENTRIES

    return ENTRIES


REFERENCE_FIGURES = {
    "compare-small-light": lambda: render.compare(PLATFORMS, _guest(), frame=compare_table(PLATFORMS, _guest())),
}
REFERENCES: dict[str, tuple[str, str]] = {
    "compare-small-light": ("35a26a971b3d15f7a614fcd57c8751d7406242861ed4cd9b874e40c4b47aabb8", "f8f6ece9e2e0e9e7e4e8dbe0e9dce0dad8dedee3e2dae4e4e2dbdbdcdde2d9dee0d2d3e1dceee6eeede3e8e5e8eceee4ebe5e0f5f3f4f2fdfffffffffffffffffff3f2eff0e5e3e4e1f4e4ececececececececececececececececece0d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2ede4e9f6f2f1eff6f1f4ebfafffffffffbf0f3eee7e7e9ead7f2e1e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e8e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9f1e4e0fdfdfdfdfdfdfdfdfdfefffffffffffff8eef3f4f0f0f1bec9c8bec8c0c2cbc1bfc8d1d6c9d0d2cecdccd1d8dcdcdcdcdcdcdcf3f0f8f5f8f7f0f5f6e4eae1eeecfbfffffffffffffffffffffffffefefcfbf1f0eef1f6a2abb1afb1aba9ada59faebabbbbbbbbbbbbbbbbbbbbbbbbbbd5d6d5e6e3e9eaeae1e3f2f6f2f7eceeecfbfffffffffffffffffffffffff5f4eee8e7e6efdbf4bec7bfc6c3b8bcb9c9ccccccd5d0ccd7cdd5cbd1cdc5d2dbdcdcdcdcf3f1f8f5f8f7f0f5f6f2f6eceeecfbfffffffffffffffffffffffbf0f2f2f3f3f5f0e5f1d9e4e3d5dfd1ded4dde2ddd9e0d5d3e0d9d0cfdfd9e5efe1f0f4f4fdfdfaf3f3f1fdfdf7eef6f1f6fdf7f1f2f5edfdfdeceffaf3faeefffffff8eee7e8e2e5f2c1ada2a3a3a2a2a3a1a3a3a3a3a3a1a3a2a3a1a3a3a3a3a3a4caafa3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3d1fffffffff3f2ebe3e5e3ecd9f4bdb3aeadadadadaeadadadadaeadadadadaeadadadadaeafb2cab5aeadadadadaeadadadadaeadadadadaeadadadadaeadaed5fffffffbf0f3f2f3f3f5f0eaf2e8e4e4d8d8dfdbe6e5ececf2e9f3eff6ebf4f1f1f1f4f4eee1e1f3f9efeff4f6ecf5f0f5eceeefeff6e9edeffafdfdfdf6f0eff5f6fffffffff8eef3f4f0f0f5adb1b0b4c0d2d7d7dce0e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9eff1fdfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff3f3f0f4f6a4aeb0b4c1d2d7d7d7d7d7d7d7d7d7e0dce8e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9f0f0fbfffffffffffffffffffffffffffffff3f2eef0f0eef2ebf7c2d6e5eceef3eff3f6f5f1eaf4f4f7eff5f4eff4f2f7f3f1f8f6f5eff3ecfffffffffffffffffffffffffffffffffffffffffffffffffffffffbf2f3f2f9ebf5eaf5f3f2fffff1eeecf0f7f5efeef1eef1f0eff0ecf7f1f0f5fffffffefffffffffffffffffffffffffffffffffffffffffffffffffffaeff2f2f2f2f4f0e9f0f5fdfaedefebf4f1f2ebdfe6ebf0f3f1ebf2f2f1ebe9e0efeaeef5f1f5fdfdfdf3f2fdfdfdfdfdfdfdfdfdf9effdfdfdfdfdfeffffffffffeed4eee0dbd8cdd3cfd4dae0cfdde8ebeeefe8eff7f1f5fcffe1d7fbd6dbcedcc6c6d8f5f7f2eff4ffe9e2f3e7dfdcdfdedaf5f0f5f7f0eeefedf6ffffff"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    from figcheck import check_reference

    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)


def _guest():
    return Workload([(0, "1G"), (4 * GiB, "1G")], bars=[(0xE000_0000, "64M")], name="2 GiB guest")
