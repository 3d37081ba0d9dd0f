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
from iommu_lab.render.compare import COMPARE, compare_data, compare_table
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


def _overlap(a, b) -> float:
    """Area (px²) two display boxes share."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def _eight_gib_guest_figure(st="light"):
    from iommu_lab.gallery import ENTRIES

    fig = ENTRIES["compare-8g-guest"](st)
    fig.canvas.draw()
    return fig


def test_value_labels_overlap_neither_each_other_nor_a_bar():
    fig = _eight_gib_guest_figure()
    r = fig._get_renderer()
    for panel, a in zip("abcd", fig.axes):
        texts = [t for t in a.texts if t.get_gid() == "compare:value"]
        boxes = [t.get_window_extent(r) for t in texts]
        for i in range(len(boxes)):
            for j in range(i):
                assert _overlap(boxes[i], boxes[j]) < 1.0, (
                    f"({panel}) {texts[i].get_text()!r} overlaps {texts[j].get_text()!r}")
        if panel == "c":
            continue  # (c) writes each page size inside its own bar segment
        for t, box in zip(texts, boxes):
            for p in a.patches:
                assert _overlap(box, p.get_window_extent(r)) < 1.0, f"({panel}) {t.get_text()!r} lies over a bar"


def test_equal_tables_are_labelled_once():
    fig = _eight_gib_guest_figure()
    labels = [t.get_text() for t in fig.axes[1].texts if t.get_gid() == "compare:value"]
    # POWER's TCE table is the same 2 MiB under both policies: one label says so.
    assert labels.count("2 MiB (512 pages) under every policy") == 1
    assert not [s for s in labels if s.startswith("2 MiB (512 pages)") and "every" not in s]


@pytest.mark.parametrize("st", ["light", "dark"])
def test_one_look_means_one_thing_across_the_panels(st):
    from matplotlib.colors import to_hex

    fig = _eight_gib_guest_figure(st)
    looks: dict[tuple, set] = {}
    for a in fig.axes:
        for p in a.patches:
            gid = (p.get_gid() or "").removeprefix("compare:")
            if gid.startswith(("refs:", "tables:")):  # a policy: one look in (b) and (d), nested hatched
                gid = "policy-" + gid.rsplit(":", 1)[1] + ("-nested" if ":nested:" in gid else "")
            looks.setdefault((to_hex(p.get_facecolor()), p.get_hatch() or ""), set()).add(gid)
    # The 4 KiB policy and 4 KiB pages share a look on purpose (every page is 4 KiB); nothing else does.
    shared = [v for v in looks.values() if len(v) > 1]
    assert shared == [{"policy-4K", "mix:0x1000"}], shared
    inside = [k for k, v in looks.items() if "inside" in v]
    assert inside == [(to_hex(fig.axes[0].get_facecolor()), "")], "inside the IOVA is an outline, not a fill"


def test_title_counts_read_as_a_person_writes_them():
    one = Workload([(0, "1G")], name="small guest")
    assert compare_data(one, platforms=["intel-vtd-48"]).title == "small guest: 1 GiB RAM in 1 bank, on 1 platform"
    two = Workload.pc_guest("8G")
    assert "in 2 banks" in compare_data(two, platforms=["intel-vtd-48", "amd-v2"]).title
    assert "(s)" not in compare_data(two, platforms=["intel-vtd-48", "amd-v2"]).title


def test_legend_entries_are_plain_and_unique():
    fig = _eight_gib_guest_figure()
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(texts) == len(set(texts))
    assert "4 KiB pages (in (b), (d): every page 4 KiB)" in texts
    assert not any("((" in t for t in texts)


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
    "compare-small-light": ("cfc595855866f65c8d95ad4baf6826f70529c931c9c13f9bc821d57a722c5d9a", "f8f6ebe8e0dee7e5e2e7dce2ebdee3dbdae0e4e4dde4e4dee7dededbe8ded9e0dfd2dbe2e6f1e9f1f0e5eae8ebeff1e6e9e3def4f3f3f1fdfffffffffffffffffff3f1eeefe4e1e2dcf4e0ebebebebebebebebebebebebebebebebebe0d4d4d5d5d4d4d4d4d5d5d4d4d5d5d4d4d4d4d5eadee7f5f1f0eef5f0f3ebf9fffffffffaeff2ede5e6e8e9d7ede6f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2e1e5edf2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2e4e2dcdffdfdfdfdfdfdfdfdfdfefffffffffffff7eef2f3f0f0f6b1bbb9b0b9b0b3bcb0acb9c6cbbdc4c7c2c2d1d1d1d1d1d1d1d1d1d1efe8f6f1f6f2e6eff2ebf3e0e7e1f8fffffffffffffffffffffffff3f1eeefe3e2e2dff4a9b0b5b5b6b1afb3ada9b4bababababababababababababab9dbdcdbe7e0e8ece9e2e8f1eee2efe2e3e9f0f2f2f9fffffffffffffffffaeff2ede5e6e8e9d7f2cfd9c7ccd1c0c7c7d7d2d4d7d5d2d6d0d2d0d3d9d4d6dde2e2e2e2e2f3f5f5f3f6f5eef4f3eff4e9eceafafdfdfdfdfdfdfdfdfffffffffffff7ecf1f2efe6f0c7c9ccc1c2b8c4b6bdc9c2bac3bab2c8beb5b1bfbbc7cbb7d6e2daddd6d3cbcbc9d6d6cfc5cfc9ced6cfc9c9cdc4d6d6c3c6e7f1f9ecfff2f1eceee2dfe0dcf3b9b2adadaeaeadadadadadadadadaeaeadadadadadadadb8d3d5c3b4adadadadadadaeaeadadadadadadadadaeaeadadadadd6fffffffaeef1ece4e5e6e8d3ecdbc9c8c4bbc7bec4cfd4d4d4d4d4d4d4d4d4d4d4d4d4d4d1cedce2dbd4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4ccc6d9f3f5fffffffffffffefffefffbb9bebcb2bbb6cad9d2d5d5dbd2dcd8dfd3dddadadaddddd9dad5dce2d7d8dddfd4dedaded4e1e2f0f7eaeeeffcfffffffffffffffffffffffff7edf3f2efeff4a0a3a2a7a6a4bfc8cccdcdccdbdbe6e6e6e6e6e6e6e6e6e6e6e6e6e6e6eeedfafefefefefefffffffffffffffffffffffffffffffffffffffffffdf3f2f0f2f5b5cccddcdbd1d2dcddf8f0f5ebedf1f6efe6f7f2ecf2f4edf4f0f1f5eceef3f3fffffffffffffffffffffffffffffffffffffffffffffff2f1ecf0eeecf1e7f7cedcd8e2ebf2fffff8f0f0eaf9ebf6f2eeefeff7f0eff5f6fffffffffffffffbfffffffffffffffffffffffffffffffffffffffffffffffffffaf1f2f2f8ebf5eaf4f4ebe9f3eef2f6f4edf2f2eef1f2f3f2f2f3f2f2f3ebf0f0f0f7f0f7fffffffffffffffffffffffffffffffffffffffffffffffffaeff1f1f1f2f4efebf0f5fdfdfdfcfcfcedfcfbfbf7fcfbfbeafcfafcfcfcfaf5edfafcfcfdfcfaf2f2fdfdfdfdfdfdf0f2fdfdfdfdfdfde9f9fdfdfefffffffffdd3dee6dfcdd5d1c9d0dbdecfd3e3e8e7e1e8e2d3eef7f5effefee3ebf2e8dde4d7e0d0f4f3f0f5eafcfedfdff3e4dadbe4d8e1eef2f7f6ebefeeecf5ffff"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    from figcheck import check_reference

    check_reference(name, REFERENCE_FIGURES[name](), REFERENCES)


def _guest():
    return Workload([(0, "1G"), (4 * GiB, "1G")], bars=[(0xE000_0000, "64M")], name="2 GiB guest")
