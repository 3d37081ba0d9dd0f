"""The IOVA layout figure and its segmented axis: tests on the data each figure draws.

Image regression (documented choice): pytest-mpl is not installed, and pixel hashes break on
every FreeType/font change. Each reference figure is therefore checked three ways:

1. a *drawn-data fingerprint* -- SHA-256 of every rectangle's vertices (rounded to 1e-6 axis
   units), face colour and hatch per category, every text string with its data position, the
   tick labels and the legend entries. It does not depend on fonts, so it always runs.
2. a *thumbnail*: the PNG at 20 dpi, block-averaged to 64x16 grey levels, compared with a
   stored thumbnail with a mean-absolute-difference tolerance, so a moved bar or a lost
   category fails while anti-aliasing and glyph differences do not.
3. the exact SHA-256 of the SVG, only when the matplotlib and FreeType versions equal the
   ones the hash was recorded with (skipped otherwise).

To update after an intended change: run with ``IOMMU_LAB_UPDATE_REFS=1`` and paste the printed
values into ``REFERENCE``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from dataclasses import dataclass
from fractions import Fraction

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgba
from matplotlib.figure import Figure

from iommu_lab import render
from iommu_lab.core.ranges import U64_MAX, GiB, IovaRange, MiB, RangeSet, TiB, fmt_size
from iommu_lab.gallery import ENTRIES, SEED_EXAMPLES
from iommu_lab.hardware.device import ResvType
from iommu_lab.hardware.platform import platforms
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.render import style
from iommu_lab.render.axis import SegmentedAxis, cluster_ranges, fmt_span, region_width
from iommu_lab.render.draw import figure
from iommu_lab.render.layout import LAYOUT, layout_data, rect_count

EX_45BIT, EX_POWER, EX_64BIT = SEED_EXAMPLES


# -- a stand-in IOAS with the agreed read API --------------------------------------------------
@dataclass(frozen=True)
class FakeArea:
    iova: int
    length: int
    prot: str = "rw"

    @property
    def last(self) -> int:
        return self.iova + self.length - 1


@dataclass(frozen=True)
class FakeResv:
    start: int
    last: int
    owner: str | None
    kind: str
    type: ResvType | None = None


class FakeIOAS:
    def __init__(self, windows, reserved=(), areas=(), allowed=()):
        self._windows = tuple(windows)
        self.reserved = tuple(reserved)
        self.areas = tuple(areas)
        self.allowed = RangeSet(allowed)
        self.devices = ()

    def permitted(self):
        return self._windows

    def iova_ranges(self):
        # As iommufd: the holes of the reserved tree; allowed ranges do not change it.
        return RangeSet.full() - RangeSet(IovaRange(r.start, r.last) for r in self.reserved)


def vtd_ioas(areas=()):
    return FakeIOAS(
        [IovaRange(0, (1 << 48) - 1)],
        [
            FakeResv(0xFEE0_0000, 0xFEEF_FFFF, "nic0", "region", ResvType.MSI),
            FakeResv(0x000E_0000, 0x000F_FFFF, "gpu0", "region", ResvType.DIRECT_RELAXABLE),
            FakeResv(0x4000_0000, 0x4000_FFFF, None, "user"),
            FakeResv(1 << 48, U64_MAX, "nic0", "aperture"),
        ],
        areas,
        allowed=[IovaRange(0x1000, 0xFFFF_FFFF_FFFF)],
    )


def collections_by_gid(fig):
    return {c.get_gid(): c for c in fig.axes[0].collections}


def spans(axis):
    return [(s.start, s.last, s.is_break) for s in axis.segments]


# -- the segmented axis: pure data ------------------------------------------------------------
def test_45bit_example_is_one_window_then_one_break_labelled_with_its_size():
    ax = layout_data(EX_45BIT).axis
    assert spans(ax) == [(0, 0x1FFF_FFFF_FFFF, False), (0x2000_0000_0000, U64_MAX, True)]
    assert [s.label for s in ax.segments] == ["32 TiB", "2^64 − 32 TiB"]


def test_power_example_has_two_windows_and_two_breaks_with_exact_sizes():
    ax = layout_data(EX_POWER).axis
    assert spans(ax) == [
        (0x0, 0x3FFF_FFFF, False),
        (0x4000_0000, 0x07FF_FFFF_FFFF_FFFF, True),
        (0x0800_0000_0000_0000, 0x0800_1FFF_FFFF_FFFF, False),
        (0x0800_2000_0000_0000, U64_MAX, True),
    ]
    assert [s.label for s in ax.breaks] == ["2^59 − 1 GiB", "2^64 − 2^59 − 32 TiB"]
    assert [s.label for s in ax.regions] == ["1 GiB", "32 TiB"]


def test_full_64bit_example_has_no_break_and_the_reserved_range_its_own_segment():
    ax = layout_data(EX_64BIT).axis
    assert spans(ax) == [
        (0x0, 0xAAA9_FFFF, False),
        (0xAAAA_0000, 0xBBBA_FFFF, False),
        (0xBBBB_0000, U64_MAX, False),
    ]
    assert ax.breaks == ()
    assert ax.segments[1].size == 0x1111_0000


def test_every_region_is_readable_and_breaks_are_narrow_but_visible():
    ax = layout_data(EX_POWER).axis
    for s in ax.regions:
        assert s.width >= 1.0
    for s in ax.breaks:
        assert 0.05 * ax.total_width <= s.width < min(r.width for r in ax.regions)
    # Log-scaled: the 32 TiB window is drawn wider than the 1 GiB one, but not 32768 times.
    one_gib, big = ax.regions
    assert 1.0 < big.width / one_gib.width < 2.0


def test_segments_tile_the_space_contiguously_in_address_and_in_x():
    ax = layout_data(list(SEED_EXAMPLES)).axis
    assert ax.segments[0].start == 0 and ax.segments[-1].last == U64_MAX
    for a, b in zip(ax.segments, ax.segments[1:]):
        assert b.start == a.last + 1
        assert b.x0 == a.x1
    assert ax.x([0])[0] == 0.0
    assert ax.x_end([U64_MAX])[0] == pytest.approx(ax.total_width)


def test_address_mapping_is_exact_above_2_to_the_53():
    ax = SegmentedAxis.from_ranges([IovaRange(1 << 63, (1 << 63) + 4095)])
    base = 1 << 63
    xs = ax.x([base, base + 1, base + 2, base + 4095])
    seg = ax.segment_of(base)
    step = seg.width / 4096
    assert xs[1] - xs[0] == pytest.approx(step, rel=1e-9)
    assert xs[2] - xs[1] == pytest.approx(step, rel=1e-9)
    assert ax.x_end([base + 4095])[0] == pytest.approx(seg.x1)
    # What float64 arithmetic would have done: all four collapse onto one position.
    assert float(base + 1) - float(base) == 0.0


def test_vectorised_mapping_matches_an_exact_rational_reference():
    rng = random.Random(5)
    ax = layout_data(list(SEED_EXAMPLES) + [vtd_ioas()]).axis
    addrs = [0, U64_MAX, 0x3FFF_FFFF, 0x4000_0000, 0xFEE0_0000] + [rng.getrandbits(64) for _ in range(500)]
    got = ax.x(addrs)
    for a, x in zip(addrs, got):
        s = ax.segment_of(a)
        exact = Fraction(s.x0) + Fraction(a - s.start, s.size) * Fraction(s.width)
        assert x == pytest.approx(float(exact), abs=1e-9)
    assert np.all(np.diff(ax.x(sorted(addrs))) >= 0)


def test_mapping_accepts_uint64_arrays_and_refuses_floats():
    ax = layout_data(EX_POWER).axis
    arr = np.array([0, 1 << 59, U64_MAX], dtype=np.uint64)
    assert list(ax.x(arr)) == list(ax.x([0, 1 << 59, U64_MAX]))
    with pytest.raises(TypeError, match="float64"):
        ax.x([1.0])
    with pytest.raises(TypeError, match="float64"):
        ax.x(np.array([1.0]))


def test_inverse_mapping_finds_the_segment_of_a_drawn_position():
    ax = layout_data(EX_POWER).axis
    for s in ax.segments:
        assert s.start <= ax.address((s.x0 + s.x1) / 2) <= s.last


def test_no_populated_range_leaves_one_break_over_the_whole_space():
    ax = SegmentedAxis.from_ranges([])
    assert spans(ax) == [(0, U64_MAX, True)]
    assert ax.segments[0].label == "16 EiB"


def test_from_segments_refuses_gaps_and_partial_cover():
    with pytest.raises(ValueError, match="whole 64-bit space"):
        SegmentedAxis.from_segments([(0, 10, False)])
    with pytest.raises(ValueError, match="contiguous"):
        SegmentedAxis.from_segments([(0, 10, False), (12, U64_MAX, True)])


@pytest.mark.parametrize(
    "size, text",
    [
        (GiB, "1 GiB"),
        (1 << 59, "512 PiB"),
        (1 << 64, "16 EiB"),
        ((1 << 59) - GiB, "2^59 − 1 GiB"),
        ((1 << 64) - (1 << 59) - (1 << 45), "2^64 − 2^59 − 32 TiB"),
        ((1 << 64) - (1 << 45), "2^64 − 32 TiB"),
        (0xFEE0_0000, "4 GiB − 16 MiB − 2 MiB"),
        (0x1111_0000, "≈ 273 MiB"),
        (3 * 4096 + 5, "≈ 12 KiB"),
        (512, "512 B"),
    ],
)
def test_span_sizes_read_as_an_engineer_writes_them(size, text):
    assert fmt_span(size) == text


def test_approximate_sizes_say_so():
    assert fmt_size(0xAAAA_0000, approx=True) == "≈ 2.67 GiB"
    assert fmt_size(2 * GiB, approx=True) == "2 GiB"


def test_region_width_grows_with_log_size_and_has_a_floor():
    assert region_width(1) == region_width(4096) == 1.0
    assert region_width(1 << 64) == pytest.approx(2.6)
    assert region_width(GiB) < region_width(TiB)


# -- area clusters --------------------------------------------------------------------------
def test_back_to_back_areas_form_one_cluster():
    starts = [0x1000 * i for i in range(1, 1001)]
    got = cluster_ranges(starts, [s + 0xFFF for s in starts])
    assert got == [IovaRange(0x1000, 0x1000 * 1001 - 1)]


def test_far_apart_groups_form_separate_clusters():
    a = [0x1000 * i for i in range(1, 11)]
    b = [(1 << 40) + 0x1000 * i for i in range(10)]
    got = cluster_ranges(a + b, [s + 0xFFF for s in a + b])
    assert got == [IovaRange(0x1000, 0xAFFF), IovaRange(1 << 40, (1 << 40) + 0x9FFF)]


def test_randomly_scattered_areas_stay_one_cluster_and_clusters_are_capped():
    rng = np.random.default_rng(3)
    slots = np.sort(rng.choice(1 << 20, size=5000, replace=False)).astype(np.uint64)
    starts = (1 << 40) + slots * np.uint64(1 << 20)
    got = cluster_ranges(starts, starts + np.uint64(0xFFFF))
    assert len(got) == 1
    many = [(1 << 44) * i for i in range(20)]
    assert len(cluster_ranges(many, [m + 0xFFF for m in many], max_clusters=5)) == 5


def test_clusters_become_axis_segments_so_small_areas_are_not_lost_in_a_big_window():
    areas = [FakeArea(0x8000_0000_0000 + i * 0x1000, 0x1000) for i in range(16)]
    data = layout_data(vtd_ioas(areas))
    (cluster,) = data.tracks[0].clusters
    assert cluster == IovaRange(0x8000_0000_0000, 0x8000_0000_FFFF)
    seg = data.axis.segment_of(0x8000_0000_0000)
    assert (seg.start, seg.last) == (cluster.start, cluster.last)
    assert seg.width >= 1.0


# -- figures: what is drawn ---------------------------------------------------------------------
def test_layout_returns_an_oo_api_figure_with_hex_ticks_at_every_boundary():
    fig = render.layout(EX_POWER)
    assert isinstance(fig, Figure)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["0x0", "0x4000_0000", "0x800_0000_0000_0000", "0x800_2000_0000_0000", "0xffff_ffff_ffff_ffff"]


def test_break_sizes_are_written_on_the_figure():
    fig = render.layout(EX_POWER)
    texts = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "layout:segment-size"]
    assert texts == ["1 GiB", "gap 2^59 − 1 GiB", "32 TiB", "gap 2^64 − 2^59 − 32 TiB"]
    markers = [l for l in fig.axes[0].lines if l.get_gid() == "layout:break-marker"]
    assert len(markers) == 3  # both edges of the inner gap, the left edge of the outer one


def test_rectangles_per_category_and_their_colours_and_hatches():
    areas = [FakeArea(0x10_0000 + i * 0x1000, 0x1000) for i in range(3)] + [FakeArea(1 << 40, 2 * MiB)]
    fig = render.layout(vtd_ioas(areas))
    colls = collections_by_gid(fig)
    counts = {gid: rect_count(c) for gid, c in colls.items()}
    assert counts == {
        "layout:window": 1,
        "layout:allowed": 1,
        "layout:resv-direct-relaxable": 1,
        "layout:resv-msi": 1,
        "layout:resv-user": 1,
        "layout:resv-aperture": 1,
        "layout:free": 4,  # allowed ∩ window minus the direct-relaxable, user and msi holes
        "layout:mapped": 4,  # one per area; merging starts only above 2,000
    }
    th = style.THEMES["light"]
    for gid, c in colls.items():
        cat = style.category(gid.split(":", 1)[1])
        assert to_hex(c.get_facecolor()[0]) == to_hex(cat.face(th))
        assert (c.get_hatch() or "") == cat.hatch


def test_legend_lists_each_category_present_with_its_colour_and_hatch():
    fig = render.layout(vtd_ioas([FakeArea(0x10_0000, 0x1000)]), style="dark")
    (leg,) = fig.legends
    entries = {t.get_text(): h for t, h in zip(leg.get_texts(), leg.legend_handles)}
    th = style.THEMES["dark"]
    for key in ("window", "allowed", "resv-direct-relaxable", "resv-msi", "resv-user", "resv-aperture", "free", "mapped"):
        cat = style.category(key)
        h = entries[cat.label]
        assert to_hex(h.get_facecolor()) == to_hex(cat.face(th))
        assert (h.get_hatch() or "") == cat.hatch
    assert "compressed gap (size above)" in entries
    assert style.category("resv-reserved").label not in entries


def test_owner_of_device_reservations_is_written_on_the_bar():
    fig = render.layout(vtd_ioas())
    owners = sorted(t.get_text() for t in fig.axes[0].texts if t.get_gid() == "layout:owner")
    assert owners == ["gpu0", "nic0"]


def test_platform_reserved_regions_are_drawn_by_linux_type():
    p = EX_64BIT
    data = layout_data(p)
    (resv,) = data.tracks[0].bands_of("resv-reserved")
    assert (int(resv.starts[0]), int(resv.lasts[0])) == (0xAAAA_0000, 0xBBBA_FFFF)
    assert data.tracks[0].lanes == ("permitted", "reserved")


def test_rangeset_members_are_drawn_as_windows_by_default_or_as_asked():
    rs = RangeSet([IovaRange(0, 0x3FFF_FFFF), IovaRange(1 << 59, (1 << 59) + (1 << 45) - 1)])
    fig = render.layout(rs)
    assert rect_count(collections_by_gid(fig)["layout:window"]) == 2
    fig = render.layout(rs, rangeset_as="allowed")
    assert set(collections_by_gid(fig)) == {"layout:allowed"}
    assert layout_data(IovaRange(0, 0xFFF)).tracks[0].kind == "rangeset"


def test_a_list_shares_one_axis_and_draws_one_row_per_model():
    drawing = figure(LAYOUT, list(SEED_EXAMPLES), title="three")
    ax = drawing.figure.axes[0]
    data = drawing.data
    assert len(data.tracks) == 3
    assert [t.get_text() for t in ax.get_yticklabels()] == ["permitted", "reserved"] * 3
    titles = [t.get_text() for t in ax.texts if t.get_gid() == "layout:track-title"]
    assert titles == [e.title for e in SEED_EXAMPLES]
    # Every model's windows line up on the shared axis.
    assert data.axis.segment_of(0x3FFF_FFFF).last == 0x3FFF_FFFF
    assert data.axis.segment_of(0xAAAA_0000).start == 0xAAAA_0000


@pytest.mark.parametrize("st", ["light", "dark"])
def test_both_styles_produce_opaque_facecolours(st):
    fig = render.layout(EX_POWER, style=st)
    assert to_rgba(fig.get_facecolor())[3] == 1.0
    assert to_rgba(fig.axes[0].get_facecolor())[3] == 1.0
    for c in fig.axes[0].collections:
        assert np.all(c.get_facecolor()[:, 3] == 1.0)
    th = style.THEMES[st]
    for t in fig.axes[0].get_xticklabels():
        assert to_hex(t.get_color()) == to_hex(th.foreground)


def test_ax_keyword_draws_into_the_given_axes_and_returns_its_figure():
    fig = Figure(figsize=(10, 6))
    ax1, ax2 = fig.subplots(2)
    got = render.layout(EX_45BIT, ax=ax2)
    assert got is fig
    assert len(fig.axes) == 2
    assert len(ax1.collections) == 0 and len(ax2.collections) > 0
    assert ax2.get_legend() is not None


def test_ax_in_a_subfigure_returns_the_top_level_figure(tmp_path):
    fig = Figure(figsize=(12, 6))
    left, _right = fig.subfigures(1, 2)
    ax = left.add_subplot()
    assert render.layout(EX_POWER, ax=ax, filename=tmp_path / "sub.svg") is fig
    assert (tmp_path / "sub.svg").exists()


def test_filename_keyword_saves_by_suffix(tmp_path):
    fig = render.layout(EX_POWER, filename=tmp_path / "power.svg")
    assert (tmp_path / "power.svg").read_bytes().lstrip().startswith(b"<?xml")
    render.layout(EX_POWER, filename=str(tmp_path / "power.png"), style="dark")
    assert (tmp_path / "power.png").read_bytes()[:4] == b"\x89PNG"
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="suffix|\\.svg"):
        render.layout(EX_POWER, filename=tmp_path / "power.bmp")


def test_layout_does_not_mutate_the_model():
    areas = [FakeArea(0x10_0000, 0x1000)]
    ioas = vtd_ioas(areas)
    before = (ioas.areas, ioas.reserved, ioas.allowed, ioas.permitted())
    render.layout(ioas)
    render.layout_text(ioas)
    assert (ioas.areas, ioas.reserved, ioas.allowed, ioas.permitted()) == before


def test_unknown_model_is_a_clear_type_error():
    with pytest.raises(TypeError, match="IOAS, a Platform, a RangeSet"):
        render.layout(42)
    with pytest.raises(ValueError, match="at least one"):
        render.layout([])


def test_area_category_hook_splits_mapped_areas():
    areas = [FakeArea(0x10_0000, 0x1000), FakeArea(1 << 40, 2 * MiB)]
    key = lambda a: style.mapped_category(4096 if a.length == 0x1000 else 2 * MiB)  # noqa: E731
    fig = render.layout(vtd_ioas(areas), area_category=key)
    gids = set(collections_by_gid(fig))
    assert {f"layout:{style.pgsize_category(0x1000)}", f"layout:{style.pgsize_category(2 * MiB)}"} <= gids
    assert "layout:mapped" not in gids


def test_touching_windows_keep_their_own_outlines():
    rs = [IovaRange(0, 0xFFF), IovaRange(0x1000, 0x1FFF)]
    fig = render.layout(FakeIOAS(rs))
    assert rect_count(collections_by_gid(fig)["layout:window"]) == 2


def test_100k_areas_draw_as_a_few_collections_not_100k_patches():
    areas = [FakeArea(0x1000 + i * 0x1000, 0x1000) for i in range(100_000)]
    fig = render.layout(vtd_ioas(areas))
    ax = fig.axes[0]
    assert len(ax.patches) < 10
    assert len(ax.collections) == 8
    assert rect_count(collections_by_gid(fig)["layout:mapped"]) == 1


def test_more_than_2000_areas_merge_only_below_one_pixel():
    # 3,000 areas 4 GiB apart in one 12 TiB cluster: far closer than a pixel, so they merge ...
    areas = [FakeArea(0x1000 + i * (1 << 32), 0x1000) for i in range(3000)]
    fig = render.layout(vtd_ioas(areas), max_clusters=1)
    assert rect_count(collections_by_gid(fig)["layout:mapped"]) < 10
    # ... while 3,000 areas in 3 far-apart clusters keep every cluster separate.
    areas = [FakeArea(base + i * 0x2000, 0x1000) for base in (1 << 20, 1 << 36, 1 << 44) for i in range(1000)]
    data = layout_data(vtd_ioas(areas))
    assert len(data.tracks[0].clusters) == 3
    fig = render.layout(vtd_ioas(areas))
    assert 3 <= rect_count(collections_by_gid(fig)["layout:mapped"]) <= 3 * 1000


# -- catalogue platforms and the real models ---------------------------------------------------
def test_every_catalogue_platform_draws_its_windows_and_reserved_regions():
    for name in platforms.names():
        p = platforms.get(name)
        data = layout_data(p)
        (win,) = data.tracks[0].bands_of("window")
        assert [(int(a), int(b)) for a, b in zip(win.starts, win.lasts)] == [(w.start, w.last) for w in p.windows]
        drawn = sorted(
            (int(a), int(b)) for band in data.tracks[0].bands if band.category not in ("window", "resv-aperture")
            for a, b in zip(band.starts, band.lasts)
        )
        assert drawn == sorted((r.start, r.last) for r in p.reserved), name
        fig = render.layout(p, style="dark")
        assert fig.axes[0].get_xticklabels()[0].get_text() == "0x0"


def test_a_real_ioas_from_a_platform_draws_its_windows_and_areas():
    ioas = IOAS.from_platform(platforms.get("power9-pseries"))
    area = ioas.map(64 * MiB)
    data = layout_data(ioas)
    assert any(w.start == 1 << 59 for w in data.axis.regions)
    (mapped,) = data.tracks[0].bands_of("mapped")
    assert (int(mapped.starts[0]), int(mapped.lasts[0])) == (area.iova, area.last)
    assert "mapped ×1" in render.layout_text(ioas)


# -- text renderer ------------------------------------------------------------------------------
def test_text_layout_lists_every_region_with_hex_bounds_size_kind_and_owner():
    text = render.layout_text(EX_POWER)
    lines = text.splitlines()
    assert lines[0] == EX_POWER.title
    rows = [l for l in lines if l.startswith("0x")]
    assert [r.split()[:2] for r in rows] == [
        ["0x0", "0x3fff_ffff"],
        ["0x4000_0000", "0x7ff_ffff_ffff_ffff"],
        ["0x800_0000_0000_0000", "0x800_1fff_ffff_ffff"],
        ["0x800_2000_0000_0000", "0xffff_ffff_ffff_ffff"],
    ]
    assert "2^59 − 1 GiB" in rows[1] and "outside" in rows[1] and "seed-power" in rows[1]
    assert "window" in rows[0] and "1 GiB" in rows[0]
    assert all(len(l) <= 100 for l in lines if not l.startswith("≈"))


def test_text_layout_compressed_bars_mark_gaps_and_reservations():
    lines = render.layout_text(EX_POWER, width=80).splitlines()
    permitted = next(l for l in lines if l.startswith("permitted"))
    reserved = next(l for l in lines if l.startswith("reserved"))
    assert len(permitted) == 80 and "≈" in permitted and "█" in permitted
    assert "/" in reserved
    ioas_text = render.layout_text(vtd_ioas([FakeArea(0x10_0000 + i * 0x1000, 0x1000) for i in range(10)]))
    assert "mapped ×10" in ioas_text and "msi" in ioas_text and "nic0" in ioas_text and "user-reserved" in ioas_text


def test_text_layout_refuses_a_width_too_narrow_to_read():
    with pytest.raises(ValueError, match="at least 60"):
        render.layout_text(EX_POWER, width=40)


# -- gallery --------------------------------------------------------------------------------
def test_gallery_has_the_seed_examples_and_writes_light_and_dark(tmp_path):
    from iommu_lab import gallery

    assert {"layout-seed-45bit", "layout-seed-power", "layout-seed-64bit-reserved", "layout-seed-all"} <= set(ENTRIES)
    written = gallery.write(tmp_path, names=["layout-seed-power"], formats=(".svg",))
    assert sorted(p.name for p in written) == ["layout-seed-power-dark.svg", "layout-seed-power-light.svg"]
    with pytest.raises(ValueError, match="already exists"):
        gallery.add("layout-seed-power", lambda st: None)


# -- image regression -------------------------------------------------------------------------
def fingerprint(fig) -> str:
    """Font-independent digest of what a layout figure draws (see the module docstring)."""
    ax = fig.axes[0]
    items = []
    for c in ax.collections:
        verts = [np.round(p.vertices, 6).tolist() for p in c.get_paths()]
        items.append(("coll", c.get_gid(), to_hex(c.get_facecolor()[0]), c.get_hatch() or "", verts))
    for t in ax.texts:
        x, y = t.xy if hasattr(t, "xy") else t.get_position()
        items.append(("text", t.get_gid(), t.get_text(), round(float(x), 6), round(float(y), 6)))
    items.append(("xticks", [(round(float(v), 6)) for v in ax.get_xticks()], [t.get_text() for t in ax.get_xticklabels()]))
    items.append(("yticks", [t.get_text() for t in ax.get_yticklabels()]))
    for leg in fig.legends + ([ax.get_legend()] if ax.get_legend() else []):
        items.append(("legend", [t.get_text() for t in leg.get_texts()]))
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()


def thumbnail(fig) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=20, facecolor=fig.get_facecolor())
    buf.seek(0)
    img = matplotlib.image.imread(buf, format="png")[..., :3].mean(axis=2)
    h, w = img.shape
    rows = np.array_split(np.arange(h), 16)
    cols = np.array_split(np.arange(w), 64)
    return np.array([[img[np.ix_(r, c)].mean() for c in cols] for r in rows])


def thumb_hex(t: np.ndarray) -> str:
    return bytes(np.clip(np.round(t * 255), 0, 255).astype(np.uint8).ravel()).hex()


def svg_sha(fig) -> str:
    buf = io.BytesIO()
    with style.rc_context(style.THEMES["light"]):
        fig.savefig(buf, format="svg", metadata={"Date": None}, facecolor=fig.get_facecolor())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _versions() -> str:
    return f"mpl {matplotlib.__version__} ft {matplotlib.ft2font.__freetype_version__}"


REFERENCE_FIGURES = {
    "seed-45bit-light": lambda: render.layout(EX_45BIT),
    "seed-power-dark": lambda: render.layout(EX_POWER, style="dark"),
    "seed-64bit-light": lambda: render.layout(EX_64BIT),
    "seed-all-light": lambda: render.layout(list(SEED_EXAMPLES), title="three"),
    "ioas-light": lambda: render.layout(vtd_ioas([FakeArea(0x10_0000 + i * 0x1000, 0x1000) for i in range(64)])),
}
THUMB_TOLERANCE = 6 / 255  # mean absolute difference over the 64x16 grey thumbnail

# name -> (fingerprint, thumbnail hex, svg sha256); the svg hash holds for REFERENCE_VERSIONS.
REFERENCE_VERSIONS = "mpl 3.11.2 ft 2.14.3"
REFERENCE: dict[str, tuple[str, str, str]] = {
    "ioas-light": ("a5b47450a8978a8655c8730b17ad7a9c4f41878698ec4ba8c250b25a9349b003", "ffffffffdbd5e4d7d2e0cac4d8cceffdfcffffffeaf0fff8e5f2f4e9edf4f5f9f6f5fffff5fcf6fafffffffefcfffffffffff4ebeae8fdffffeaf7f7f3f3f4f1fffffffffdf5edfcfbfcdfecfcfbfce0edfcfbfce6f1fcf5edfcf4f4eeeff4f3f6f4fbfcf4eedfeffcfbfcf3ebfcfbfcfcfcf9f2e5ebfafcfcede4e9f5ebeff5d1d3d1c8b9a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5c4f1f1f1faffffffffffe5ddddddcbbcbdbdbdbcbcbdbdbdbcbcbdbdbdbcbcbdbdbdbdbcbcbdbdbdbbbdbdbdbdbcbdbcbdbdbcbdbcbdbdbdbdbdbdbdbdbdbdbdcef1f1f1faffffd7d7c6ffffffffa355545454545554545454555454545455545454545554545454555454545455545454545554545454555554545454545454aef1f1f1faffffffffffffffffffe9d8d9d9d9ceb7b8b7b7c6d8d9d9d9d7d8d9d9d9d8d6bdbebebdc1d9d9d9d8d8d9c4b6b4b5b5bcd9d8d8d8d8d8d8d9d9d9d8c9ddddddf4ffdac5dabdfffffffffdffffffffd470778370b0fffffffffdfffffffffffa858787879effffffffffffa85e76875f80ffffffffffffffffffffffada9a9a9ddfffffffffffffffffffdffffffffecc2c1c1c1ddfffffffffdfffffffffffcc8c9c9c9d2ffffffffffffd7b9b8b8b8c6ffffffffffffffffffffffcbcfceceeefff4e1dbd6fffffffff0e4e4e4e4eaffffffffaf61616161a3e4e4e4e4e4e4fefffffff7e4e4e4e4e4e4f0fffffffff7e4e4e4e4e4e4e4e4e4e4e4dbf1f1f1fafffcebe0e7fffffffff5efefefeff1ffffffffcea0a0a0a0c7efefefefefeefefffffff9efefefefefeff5fffffffff9efefefefefefefefefefefdef1f1f1fafffffffffff0f8f8f7ebf8f8f8f8ebf8f8f8f8ebf8f8f8f8ebf8f8f8f8f8f5eef8f8f8ebf8f8f8f8f8f8ebf8f8f8f8ebf7f8f8f8f8f8f8f8f8f8f6dff2f2f0e4fffffffff0f4ffffdde2ffffffd1d4fffff0cddcfffff0d2dcfffffffad3c7f6fff5cccbfeffffffe8bed9fffff6c5cbfefffffffffffffee3c0c5e3e6bdc3e6fffffffffffffffffffffffffffffffffffffffffffffffffffffffffcfafffffff7fffffffffffff7fffffffff7ffffffffffffffffe6c6dff5c8c2defffffffffffffffffffffffffffffffffee7eceee6f5ecfdfffedcf1e1e8f1fcf7e8f4eae6e9f1f8ebf8ece3eee4e8fbfffffffffffffffffffffffff5fefffffffffffffffffffffffffffffffffffffc9ac1d7bfcfe6fdfffca1d9b1c7d7def0d3dabbbaa8c4f9e8f8e6dbc7bab8cfe5d2d5fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdbcd5d1d6d1d7cec5fbfffffffffffffefcffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "22d32668e7e7bf73e64631660032398a8c0f25487b9967635bdfb448c5af6be1"),
    "seed-45bit-light": ("645f8a8f901badff7d16fbfb4fee1c2b1a1de6da6faa5fb0829013b9eed304a0", "ffffffffd0c6d1d4d3cad7e0d0d4dbdddacec5ccceced0d4d6d0cbe4fffffffffffffffffffffffffffffffffffffffffffffffffffffff6fefffeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdbe0fffffffffffffffffffffffffffffffffffffffdf5f9f9f9f9dbe1e2f0e7e0e8f9f9f9f9fdffffffffdfd6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6cfe6f1f1f1f1f1f1f1f1f1f1f1f1f1f1fad0d0cfc4baa6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a5abe9f1f1f1f1f1f1f1f1f1f1f1f1f1f1faf2f9f7f4baa6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a5a9eef1f1f1f1f1f1f1f1f1f1f1f1f1f1faffffffffe9e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2dae4f1f1f1f1f1f1f1f1f1f1f1f1f1f1fafffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffbd4b3b4b3b4b4b4b4b4b4b4b4b4b3b4b4e4e3d9e1d1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd8a1a8a9a9a8a8a8a8a8a8a8a8a9a9a8ddf0e0efddfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffbd0a8a8a8a8a9a9a8a8a8a8a8a8a8a8a9deffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe8cbd8d8d8d8d8d9d9d9d8d8d8d8d8d8f2fffffffff5f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f5e6efefefefefefefefefefefefefefeff5ffffffece8ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe6bfffffffffffffffffffffffffffebbcd1fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffab6ccfffffffffffffffffffffffee2b4c2f7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdbfdffffffffffffffffffffffe4b2d0fefffffffffffffffffffffffffffffffffffffffee1f6fffdfdfaffefe9fffafffffffdfdfffafcfffffdfefcfdfdfffffffffffffffffffffffffffffdfffffffffffffffffffffffffffffffffffffffffffffee1e6d0cee4d3f5eee8d6cbcdd5e9e8d6f0fafacdc8cdccdec8d7ffffffffffffffffffffffffffffffffffffffffff", "81a99e1830a9a9cbf05f5cfd25a4cc0148876b3f5b7c24d56983847bb4414714"),
    "seed-64bit-light": ("3acd4c8ef8feaf6089f4fb01d74d0f8152d07af30c799ed976fcdcc2e143de8d", "ffffffffd0c6d1d4d3cac9dacad6c8dccce0ccd6d6c9dfc6d1b6d1d5c8c8d5cbe2d2bdc6c0cefffffffffffffff5fbfdfffffffffffffffffffffffffffffffffffffffffffffffffffff1dae6ecfffffffffffefffffffffff1ddebe9fffffffffffefffffffffffffffffffff5dadafeffffffffffffffffffffffffffffffffffffffdfd6d6d6d6d6d6d6d6d6d6d6d6d6d6d5d6d6d6d6d6d6d6d6d6d6d6d6d6d6d5d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6eed5d2d2c9baa6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6d8edf6f2eebaa6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6d8ffffffffe9e2e2e2e2e2e2e2e2e2e2e2e2e2e2e0e2e2e2e2e2e2e2e2e2e2e2e2e2e2e0e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2f3ffffffffffffffffffffffffffffffffffffffe8b9b9bbb9b9b9b9bbb9b9b9b9bbb9e8ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe8e1ebdbffffffffffffffffffffffffffffffd88081808180808180818080818081d7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe7d2e5ceffffffffffffffffffffffffffffffd98280808082828080808282808080daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe8b9b9bbb9b9b9b9bbb9b9b9b9bbb9e8fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f3f6f6f6f6f6f6f6f6f6f6f6f6f6f6f3f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f9ffffffece7fffffffffffffffffffffffffffbb8ffffffffffffffffffffffffffd7dbfffffffffffffffffffffffffffffffffffffffffffffffffffff6cbcfffffffffffffffffffffffffffffffffffe4affbffffffffffffffffffffffffc2deffffffffffffffffffffffffffffffffffffffffffffffffffecb9b7e9fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff2b0c6f8fffffffffffffffffffffffffffffffffffffffffffffffffffffcfdfffefefdfffefbfffffefffeffffffffffffffffffffffffffffffffffffffffefffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd3dbc4d6d3d9ede8b8d0c6d9b5ceffffffffffffffffffffffffffffffffffffffffffffffffffffff", "52e48a862ac5b39507a1e328af61d9e5ee093887b6c336d6f65f179107617d73"),
    "seed-all-light": ("728e2600e43fa51fdbbf6445b9fa3f89d0e81fad1830780da4d226406d8e2d5e", "ffffffffe4d1f1e4f9ffffffebe9e9f4ffffeee9f7f6fffffff7e5e9fcffffffffffeaeaece8ffffffffffffebedffffffffffffefe8f2efdef3e3efefffffffffffffffe0d3d9e2d8d3dae5d6e2e0e0e1d3d5d4d8d3dfd6d8e0dce2f4fffefefffffffffffffffffdfffffffffffffffffcffffffffffffffffffffffffffffe9e5e7e3dacfcfcfcfcdcecfcfcfcfcfcecdcfcfcfcacecfcfcfcfcfcfcfcdfcfffffffffffffffffdfffffffffffffffffcfffffffffffffffffffffffffffff2f8f5f1e3dadadadadad9dadadadadad9dadadadadad9dadadadadadadad7d8dbdbdbdbdbdbdbdbdadbdbdbdbdbdbdbdbd9dbdbdbdbdbdbdbdbdbdbdbdbdbf2e4d5e5d0fffffffffffffdfffffffffffdfffffffffffdfffffffffffffffbc7cacacacac9cacacac9c9cacacacac9cac9c8cacacac9c9cac9c9c9cacacacaeaffffffffddcdd4dcd4cad4ded4decbd6c9ded0dad9dad9ead4d0d3d4ddced4e9e4f3d5ddced6ded5e9d6fffffffffffffffcffffffffffffffffffffffffffffd7d9d8cfc1afafafafafd0fffffffffffdfffffffffffdfffffffffffffffefeffffffffffffffffe4afafafafafafafafdbfffffffffffffffffffffffffffffcfdfdfbf2eeeeeeeeeeddd6d6d6d6d6d4d6d6d6d6d6d5d6d6d6d6d6d6d6d5d5d6d6d6d6d6d6d6d6d6eeeeeeeeeeeeeeeed7d6d6d6d6d6d6d6d6d6d6d6d6d6f0e8d9e6d5ffffffffffffdecacacac9cac9cacac9cacac9cac9cacacacac9c9c9cacac9cacacacac9d2ffffffffffffffffd4c9c9c9cacacacac9c9cac9c9c9ecffffffffdccdd4dfd4cad6ddcadad7d4d7d8e5cde4cbcfd2d6cebfd7d4cad7d1d2e5d0c2d8b5e9fffdfffffffffffffffffcffffffffffffffffffffffffffffd9dad8d1c1afafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafafddf6f4f7f1f2eeeeeeeeeeeceeeeeeeeeedcb4b5b5b5b5bfeeeeeeeeeeeeeeededeeeeeeeeeeeeeeeeeceeeeeeeeeeeeeeeeeceeeeeeeeeeeeeeeeeeeeeeeeeef8eee1ecddfafafafafafaf7fafafafafae6c0c0c0c0c0cafafafafafafafaf9f8fafafafafafafafaf7fafafafafafafafaf6fafafafafafafafafafafafafafcfffffff4f1fffffff5d4e0fffffffdd4d2fefffffddad2fdfffffffffedbd3f5fffffffffffffdd6d2fdfffffffffedbd3e2fffffffffffffffffffff4d3d4e3fffffffffffffffff3fffffffffff5fdfffffffff5fdfffffffffff4d8f7fffffffffffff4d8d6fbfffffffff8d7d5f7ffffffffffffffffffefd2d3dffdffffffffffffffffffffffffffffffffffffffffe4ece1e6e6ebeff1d4efe4e7dee3fedeece8dee1e9f6e5f2ffffffffffffffffffffffffffffffffffffffffffff", "ae4bfd902e6b375ed809ecc6b187beda48f395b4e4ecdf560425c843d23b7032"),
    "seed-power-dark": ("f6a4c1e47c9b7ee2822f3854884b50b3c8705d2717f88b147d775a1c02c2ba1c", "1c1c1c1c464e4542434b403a4d473c514943453c3f3d3842414e4b4049473d352f3b435134473a4b221d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c231f1c251f1c1e1c1c1c1c1c1c1c1c1c1c1c1c28372b1c1c1c1c1c1c1c253433382f312f1e1c1c1c1c1c1c1c1c1c1c393d1c1c1c1c1c1c1c1c1c1c1c1c3f36342a2d322e2f352f1c1c1c1c4957575757575757575757575757575757574c28282828282b60575757575757575757575757575757575757575757575757532c28282828282828204646475185a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a672282828282830a7a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6862b28282828282828202822242685a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a671282828282832a7a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6872828282828282828201c1c1c1c3a43434343434343434343434343434343434128282828282b4e434343434343434343434343434343434343434343434343442d28282828282828201c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c4e616161606166251c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c4b606060606161616134353e36451c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c516c6c6c6e6c6f2d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c46706d6d6d6d6c6c6d3b2a382b3a1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c556c6c6e6c6c72241c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c4f6d6d6d6d6d6d6d6c3a1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c393f3f3e3e3e402b1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c37423d3e3f3f3f3f3f271c1c1c1c2524242424242424242424242424242424243029292929292d29242424242424242424242424242424242424242424242424332929292929292929241c1c1c2d301c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c34521c1c1c1c1f52311c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1f465b1c1c1c1c1c1c2d57451c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c35481c1c1c1c455b291c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1f585e331c1c1c1c1e365e52241c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1f58371c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c5158251c1c1c1c1c345f461d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d44271c1e1e201c2b301c201c1c1c1e1e1c201f1c1c1e1d1f1e1e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d443546473443252c31404a49413030412a2021494d4949394d3f1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c", "0e5579f7087020a7a8d27a48c10e41405b8b390a34a5f23a7fa0cff3b10e15da"),
}


def test_thumbnail_tolerance_tells_different_figures_apart():
    a = thumbnail(REFERENCE_FIGURES["seed-45bit-light"]())
    b = thumbnail(REFERENCE_FIGURES["seed-64bit-light"]())
    assert float(np.abs(a - b).mean()) > 2 * THUMB_TOLERANCE


@pytest.mark.parametrize("name", sorted(REFERENCE_FIGURES))
def test_reference_figures_draw_what_they_drew(name):
    fig = REFERENCE_FIGURES[name]()
    fp, th, svg = fingerprint(fig), thumbnail(fig), svg_sha(fig)
    if os.environ.get("IOMMU_LAB_UPDATE_REFS") or name not in REFERENCE:
        print(f'\n    "{name}": ("{fp}", "{thumb_hex(th)}", "{svg}"),')
        if name not in REFERENCE:
            pytest.fail(f"no reference for {name!r}; paste the printed line into REFERENCE")
    ref_fp, ref_thumb, ref_svg = REFERENCE[name]
    assert fp == ref_fp, "the drawn data changed (rectangles, colours, hatches, texts, ticks or legend)"
    ref = np.frombuffer(bytes.fromhex(ref_thumb), dtype=np.uint8).reshape(16, 64) / 255
    diff = float(np.abs(ref - th).mean())
    assert diff <= THUMB_TOLERANCE, f"thumbnail differs by {diff * 255:.1f}/255 on average"
    if _versions() != REFERENCE_VERSIONS:
        pytest.skip(f"exact SVG hash recorded with {REFERENCE_VERSIONS}, running {_versions()}")
    assert svg == ref_svg


def test_with_a_page_table_domain_mapped_areas_are_drawn_by_page_size():
    import iommu_lab as il
    from iommu_lab.render.layout import layout_data

    ioas = il.IOAS.from_platform(il.platforms.get("intel-vtd-48"))
    ioas.map(4 * MiB + 0x3000)  # 2 x 2 MiB + 3 x 4 KiB, as iommu_pgsize splits it
    (track,) = layout_data(ioas).tracks
    mapped = {b.category: b for b in track.bands if b.lane == "mapped" and b.category != "free"}
    assert set(mapped) == {style.pgsize_category(0x1000), style.pgsize_category(2 * MiB)}
    two_m = mapped[style.pgsize_category(2 * MiB)]
    assert len(two_m) == 1 and int(two_m.lasts[0]) - int(two_m.starts[0]) + 1 == 4 * MiB  # touching leaves merge
    four_k = mapped[style.pgsize_category(0x1000)]
    assert int(four_k.lasts[0]) - int(four_k.starts[0]) + 1 == 0x3000
