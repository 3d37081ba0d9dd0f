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
    # AMD v2: x86-64 guest table over a v1 host table Linux starts at 3 levels (it grows on demand).
    assert row(frame, "amd-v2", "4K")["nested_refs"] == nested_walk_refs(4, 3) == 19
    # 1 GiB leaves: 2 levels of the guest table over a 1 GiB leaf in the 3-level table's root.
    assert row(frame, "amd-v2", "largest")["nested_refs"] == nested_walk_refs(2, 1) == 5
    assert row(frame, "riscv-sv39", "4K")["native_refs"] == 3.0
    assert row(frame, "riscv-sv39", "4K")["nested_refs"] is pd_na()
    assert "no hardware nesting" in row(frame, "riscv-sv39", "4K")["nested_note"]


def pd_na():
    import pandas as pd

    return pd.NA


def test_tce_windows_cost_their_flat_table_and_virtio_has_none(frame):
    from iommu_lab.hardware import formats

    pseries = platforms.get("power9-pseries")
    for policy in ("4K", "largest"):
        r = row(frame, "power9-pseries", policy)
        # Only the 1 GiB default window at 0 is used, and Linux gives it 4 KiB TCEs whatever
        # the policy: 262,144 entries of 8 bytes.
        assert r["format"] == "power-tce-4k"
        assert r["table_bytes"] == pseries.window_format(0).table_bytes(0) == formats.power_tce(
            12, window_bits=30).table_bytes(0) == 2 * MiB
        assert r["mix_4K"] == 1 * GiB and r["native_refs"] == 1.0
    v = row(frame, "virtio-iommu-q35", "4K")
    assert v["fits"] and v["table_bytes"] is pd_na()


def test_ddw_maps_with_its_own_page_size_and_names_that_format():
    pseries = platforms.get("power9-pseries")
    ddw = pseries.windows[1]
    guest = Workload([(ddw.start, "4G")], name="RAM mapped through the DDW")
    df = compare_table(["power9-pseries"], guest)
    big, small = row(df, "power9-pseries", "largest"), row(df, "power9-pseries", "4K")
    assert pseries.window_page_size(ddw) == 64 * 1024
    assert big["format"] == "power-tce-64k" and big["mix_64K"] == 4 * GiB
    assert big["table_bytes"] == pseries.window_format(ddw).table_bytes(0)
    # The "4K" policy maps the DDW in 4 KiB TCEs: 16 times the entries.
    assert small["format"] == "power-tce-4k" and small["mix_4K"] == 4 * GiB
    assert small["table_bytes"] == 16 * big["table_bytes"]
    # A workload in both windows names both formats, in window order.
    both = Workload([(0, "512M"), (ddw.start, "1G")]).cost(pseries, "largest")
    assert both.format == "power-tce-4k+power-tce-64k" and both.mix == {4096: 512 * MiB, 65536: 1 * GiB}


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
    "compare-small-light": ("16533194ed4c9d75f7f0eee6de83b53220b5cafa3397f5b3b60b3cfdaa08bf2f", "f6f3e7e5e2dbe9e7e9e6d7dbe7d6dcd3d2d9d9e0ded3e1e1ded5d5d7d7ded2dadbcacaddd6eee4efeedfe6e3e7ecefe1e8deddf1eff0edfcffffffffffffffffffefeee5e0d5d1d1c6eedfe7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7dbcccccccbcbcccccbcbcccccccccbcbcccccbcbead6daf2ededebf2ecf0e5f8fffffffff8e9ede6dcdddfe1c5e8dfeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaeaead4d8e4eaeaeaeaeaeaeaeaeaeaeaeaeaeaeaead8dfccd2fcfcfcfcfcfcfcfcfcfdfffffffffffff5e7eeefeaecf6c6cfcec3cec5cbd5cbc7d0d6dbc9d3d6cfcee2e4e4e5e5e5e5e5e5e5f6eaf4f1f4f3e8f0f1eaf2e0e6e2f9fffffffffffffffffffffffff4f1ededdedcdad8f2a9b3b8b8bcb1adb4a79fb6c6c5c5c5c5c5c5c5c5c5c5c5c5c5dbdcdae6d6e1e4e3d9d7ebf1ecf3e3e6e4f9fffffffffffffffffffffffbe8ede4dadadee4caf0bbc8b8c1beadb2b0c3bec0c2bebec2b9bfbbbdc4bec2c7ccccd1d2d1e1dde3e5e3d9d9eef1ecf2e1e7e2f9fffffffffffffffffffffffdfafafbfcfcf9f9e7f1d2e1e7d2decddfcedce3dad2dfd0cae4d6cac9dad4e2ecd3eaefeefcfcf8eeeeeafcfcf3e6f2ebf2fcf3ebebf0e4fcfce3e8f8edf8e5fffffff4e6dcddd4daefc5b4aaacacaaabaca8acacacacaca8acabaca8acacacacacadd9b6acacacacacacacacacacacacacacacacacacacacacacacd6fffffffadcddd1c7c9cbd3b2edaf9899958e978f929fa4a4a4a4a4a4a4a4a4a4a4a4a4a4a4bad3aaa4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4d2fffffffefcfcfcfdfdfbfaf5f3e1e9e3d7dddde1eddfe4e4ece0eee8f2e2efe9ebebefefe6d2d2edf6e7e7eff2e2f1eaf0e2e7e8e8f2e0e5e7f8fcfcfcf2e9e8f0f3fffffffff4e6edeeeae9f3aeb2b2b9bdbacbd3d6d6d6d6e2dce8e8e8e9e9e9e9e9e9e8e8e8e8e9e9e9e9e9e9e8e8e8e8f2ecffffffffffffffffffffffffffffffffffffffffeeedeaeef4a2aea6b5b6b1c9d7d3e7e6e7e5e5e5e7e4e4e8e5e4e7e7e3e7e5e5e7e4ede5f7ffffffffffffffffffffffffffffffffffffffffffffffeeece1dcded9e6cff2cbdad3daeae5eaeee0e5dad9e1d1e5e4d9cce1e8d7dce5dbe4dbdef3ecedf2ebfffffffffffffffffffffffffffffffffffffffffffff8e9edebe8e8ece7d6f3f2faf6f0e3eee6edf3efe3e8ece5ececefeaedeeeeeaefe7e8e9eaf4ebf1fffffffffffffffffffffffffffffffffffffffffffffffffffffaf6faf0eeeaeee1e4e2ebebe1ece9daf6fcfcfcfcfcfbe4fbf1ecfaeae1d8dce1e5e2f0f1ead9defce7dff1f0e5d8d3e1e0f9fcfcfce2f7fcfcfdffffffffffeaccece3dedccbd5cedddee5d9dff2f2ece9dde8f4ebf2fafff0ebfdf2f2eaeddfe8f4fffffffffffff7f3faeaeae2eeece8f4e9f1f4eae8e8e6f2ffffff"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    from figcheck import check_reference

    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)


def _guest():
    return Workload([(0, "1G"), (4 * GiB, "1G")], bars=[(0xE000_0000, "64M")], name="2 GiB guest")
