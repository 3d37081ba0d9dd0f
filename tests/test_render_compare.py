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
    "compare-small-light": ("460f877bb70fa8e3ae74f3b60c084b91e335ae29ae1340cd37e9a4ff2e8e656e", "f5e4e8e8d7d6d9cbded6d1c8dedce0d9dad3cfd3d7d5cfd2d3d4cdfaffffffffffffefecdfe5dde7efe3e9f8fffffffffffffffffffffffffffffffffffffffffff6ededb4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4b9edffffffffffffffffffcfb8c1c0c1c0c3c3c3c3c3c3c3c3c3c3dcf2f4f1f3eee9fcfffffffffffffffff8f7beb2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2c4f1ffffffffffffffffffcfb5bab4b3b7c3c3c3c3c3c3c3c3c3c3dcf2f4f1f3eee8fcfffffffffffffffff9f8bfb2b2b2b2b2b2b2b2b4b9b9b8b9b9b9b9b8b9c9f8ffffffffffffffffffc7acb8b3b1b5c5c5c5c5c5c5c5c5e1f4f2e8ddf7fffffffffffffffffffffaede4efb3a3a3a3a3a3a3a3a3a7b4b4b5b4b4b4b4b5b4c5f4ecf0ebedf6ffffffffccaaaaaaaaa9aabac0c4c2b6cdd2d9e1edfbfffffffffffffffffffffffffffdefeba9969696969696969696969696969696969696aeedffffffffffffffffffd9c6c7b8cad3d3d3d3d3d3d3d3d3d3d3e6f6f4f1f3ede5fcfffffffffffff5f0f0ea9e858585858585858585858585858585858585a2eefffffffffffffffffff2ecece9f6ecedefe9eff7ffffffffffffffffffffffffffffffffffffffffffffffe8e8ece4e6e7e5eaf1e4dae5e7e4eae7f7fcfce9f5fcfcfcfcfcfcfcfdfaebdcf3dbcfedf1d6e3e1d4d7e9e5ecf2fcf4eefcf5eff0fce9f5f4f5edf2ffffffffeaeae3ede7e2ddede6f0dadfe8dddfeee9e5ebfefefefefefefefefefeffdfcbc0e2d7e7e9e0e7e4e8e7eaece9e8f4e6eae9f1fbfffffffffffffffffff6efeebc828282828282828282828282828e8b828282828282828282828282c0ffba8a9cb0a6bacabdd3d8d7d7d7d7d8e3f5fbfffffffffffffffffffffffffffff3efbb818181818181818181818181818d8b818181818181818181818181c0ffaf7284afa4b7b8b8b8c4cabdd2d7d8d7d7d7d7d8d7e0f3f7fffffffffffffaeee5efc8c0c0c0c1c1c0c0c0c1c1c0c0c1c6c1c0c0c0c1c1c0c0c0c1c1c0c0e0ffcad7d5d7e9f0eeeeefeef1eff0fffffffffffffffffffffffffffffffffffffef7f4d5b8b8b8b8b8b8b8b8b8b8b8b8b8c1bfb8b8b8b8b8b8b8b8b8b8b8b8dcffdbbedee3eeedecf1f0f8fffffffffffffffffffffffffffffffffffffffffffef6f4ddcbcbcbcbcbcbcbcbcbcbcbcbcbd1cecbcbcbcbcbcbcbcbcbcbcbcbe5ffe3eff2e2f0fefffffffffffffffffffffffffffffffffffffffffffffffff4eeefe5efe6e4e1fafbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfcffeedfeee6e2e2f0e8e7e7e2ebf4fbfbfbfbfbfbfbfbfbfbfbfbfbfbfbfcfffffffffff0f3eceadefbecf2ece3f2ebefead2e6fffffffffffffffffffffffee8fbf5ecebf0e9e8e0f7ede7e9e8ecebfefffffffff2fffffffffff5ffffffff"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    from figcheck import check_reference

    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)


def _guest():
    return Workload([(0, "1G"), (4 * GiB, "1G")], bars=[(0xE000_0000, "64M")], name="2 GiB guest")
