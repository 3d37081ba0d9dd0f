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
from pathlib import Path

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
    assert [s.label for s in ax.segments] == ["32 TiB", "≈ 16 EiB"]


def test_power_example_has_two_windows_and_two_breaks_with_exact_sizes():
    ax = layout_data(EX_POWER).axis
    assert spans(ax) == [
        (0x0, 0x3FFF_FFFF, False),
        (0x4000_0000, 0x07FF_FFFF_FFFF_FFFF, True),
        (0x0800_0000_0000_0000, 0x0800_1FFF_FFFF_FFFF, False),
        (0x0800_2000_0000_0000, U64_MAX, True),
    ]
    assert [s.label for s in ax.breaks] == ["≈ 512 PiB", "≈ 15.5 EiB"]
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
        ((1 << 59) - GiB, "≈ 512 PiB"),
        ((1 << 64) - (1 << 59) - (1 << 45), "≈ 15.5 EiB"),
        ((1 << 64) - (1 << 45), "≈ 16 EiB"),
        (0xFEE0_0000, "≈ 3.98 GiB"),
        (0xFF00_0000 - 0x20_0000, "≈ 3.98 GiB"),
        (0x1111_0000, "≈ 273 MiB"),
        (3 * 4096 + 5, "≈ 12 KiB"),
        (512, "512 B"),
    ],
)
def test_span_sizes_read_naturally_whole_units_exact_else_approximate(size, text):
    assert fmt_span(size) == text


def test_span_sizes_can_still_be_written_as_signed_powers_of_two_on_request():
    assert fmt_span((1 << 59) - GiB, max_terms=2) == "2^59 − 1 GiB"


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
    assert texts == ["1 GiB", "gap ≈ 512 PiB", "32 TiB", "gap ≈ 15.5 EiB"]
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
    assert "compressed gap" in entries
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
    assert "≈ 512 PiB" in rows[1] and "outside" in rows[1] and "seed-power" in rows[1]
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
    """The SHA-256 of the SVG that ``render.save`` writes (the bytes a user gets), taken after
    the figure was already drawn for its fingerprint and thumbnail, as a notebook would."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = style.save(fig, Path(d) / "f.svg")
        return hashlib.sha256(path.read_bytes()).hexdigest()


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
    "ioas-light": ("4ad631e21caf62f0cf334de6a210759e6cc388aafcd5d5f8e520fbf2a5c3aaca", "fffffffffff8cedee9e0e0d8e0dee1c5e2d4d9f7fffffffffeecf9f6f0faf7f6fffffffffffffffffffffffffffffffffffffffffffffff6f0f5f8f7f1f3f2efffffffffffffebf0d3ffe3d7e9e4eae9e0e4e8e7e5d5e2e4e6eceeeadef5f2e9e0eae8e1f8dee2dce5d2e9ffe8e8dafdffffd8e5d2e2d8d8edf6f8f2eef2f6f0eee0e6e1e0e3c8c8c8c7c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c7c8c8c8c8c7c8c8c8c8c8c8c8c8c8c8c8c7c8c8c8c8c8c8c8c8d2f1f1f1fffffff0f1f7f0ececd5d5d5c9babababab9b9bab9bab9b9bababab9b9bab9bababab9babababab8b9babababab9b9bababab9b8bababababababab9cff1f1f1ffffffffe3dae4caf3ffffffc66a6a69696a6a6a6a6a6a696a69696a6a6a6a6a6a6a6969696a6a696a6a6a6a6a69696a6a6a6a696a6a6a69696a6a6abbf1f1f1fffffff4dae6ebdaf6fffffffcfffffffffadbc7c6d3dbfafffffffdfdffffffffffbca6a6a6a6d9fffffffffff9889da2a789d0ffffffffffffffffb9b9b9b7fffffffdf0f6f9f1fcfffffffbfbfbfbfbf7e8e6f0efe8e8edececeafafbfbfbfbfbd4c9c9c9c9e5fbfbfbfbfbf7b7c4cac8b9e0fbfbfbfbfbfbfbfbc7cecfcbffffffffdecdd8cdf3fffffff5e8e8e8e8e8fdfffffffd8d8d8d8e8ee8e8e8e8e8e8f5ffffffffeee8e8e8e8e8e8fdffffffffeee8e8e8e8e8e8e8e7def1f1f1fffffffffffffff6dffafaf1cefafafaf8d4f0fafaf7d1f6fafaf7d1f5fafafafae6dafafaf8e1e3fafafafafae7edfafafaf5e0fafafafafafaf8dbe0f4e6d2f7ffffffffffffe3fde6e4ddf8ebdedbcaf3e6d6dad4f4e6ddd9d4f6fff6d0decfe0ebd1e2c8edffffe0d2dfc6e3edcee1cdd3faffffffdcd5dfb9c3e4cce2f6fdfffffffffffffffffffffffffffffffffff7fffffffff7ffffffffe4ecfeffffdbf2fffffffffedaf0fbffffe2e9f9fffffef2d6ccd2d0d0e3e0fefffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeddd7d3d7eaebfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff3e6edf2e0e6ecebe3e3efe1e2dcebe4e4e6e3daebddede2ebe8e8e0dbeddce3e3dde7ffffffe9cad7dbd5d4d8ccddddccdcecffffffffffffffffc0a6ded4ddd0d7d5e6d1f5fffffffffffffffce5e7f2c6c3dfddd1d0c7d0ccffffffffffffffffffffffffdba0bcdbe3d8ccd9dcc9e1fffdfffffefdfffdfdffccb9e3d4ddd0d5d6d6edd2daf3fffffefffffcb3b5e3d9c5cac6d6cdc7decdbad8dfcee9cee9ddd3dfdcf0f2e5e9dedec6d9cbd4d1d3d8e0d5cedad3d1c2f7ffd9ceeae0d3dcc0d9d6cad5cdf6ddd1d9d0fffff7f7fcd3d6cfc9d1cfdcb9ccffffffffffffffffffffffff", "db7cd2f3a195476d1d7395f30d4ef1bb59f2011762a63aaa5887744dfd895738"),
    "seed-45bit-light": ("a439b93f07656294f18e1cc6a6ab5b66977a2a676e714b637dc3192463e0e010", "ffffffffffeac3dcd3dfe5cfcbd4e0f3cff0cae4e3ead9d1cdcfded2cae7ddd0d2dfe1cee1fffffffffffffffffffffffffffffffffff2fcfffffcffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffc5e5d1f6fffffffffffffffffffffffffffffffffffffef5fafad3d7edeed8dcd8fafafafaffffffffffffedcececececececececececececececececececececececececececececececececececececececececececccaebf1f1f1f1f1f1f1f1f1f1f1f1ffdac8d9cac1d0a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6abebf1f1f1f1f1f1f1f1f1f1f1f1ffffffffffffedcececececececececececececececececececececececececececececececececececececececececececccaebf1f1f1f1f1f1f1f1f1f1f1f1fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffbcfbbbcbcbcbcbcbdbdbcbbbcbcb8fff0c0d5e1c2f1fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffbcca5a9a9a9a9a8a8a8a8aaa8a8a4ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdccfd5d4d4d4d4d5d5d5d5d3d6d1ffffffffffe7d7f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9cecff7f7f7f7f7f7f7f7f7f7ecd6c8f7ffffffffe6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd5cabce6ffffffffffffffffe5ced0c2e8faffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe1c0bfe4feffffffffffffffefc4c7e0fafeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd9d4defefffffffffffffff4c2ced7f9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffebd0cef9fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffadbeaf1e2dee8dce4d9e8e9d8d6e4e9dedfe2e3dddeecdde2d9e2e1d6dae2e4dbdfdae5fffffffffffffffffffee7e8f5ececf1e6eef8f1ecf7fff6e8e7fbf6efeaeaf2e8ecefeff3ecebf4eefbfaf5ecf0e6ebe9e5f4e1f0f0f5f8fbfafcfce8f6f6fbfffffffffffffffffffdd5d6eec7dde4c6d6e9e5cce2ffedd7d6f2d7d7d9decacbdddbe4eee2d5dee4fffdfafbe6dfe1d4cde3cbd1d4e3ffffffffffffffffffff", "defd2e29474a9afff9628c0733f84acb011055cf3b4ace611d0c462fc2be0b23"),
    "seed-64bit-light": ("14ad06a98d7a2a685bc970b0ab1bf5818bc58f8fb7c42bb6de1ab75ab86507ce", "ffffffffffeac3dcd3dfdbc3cbd4daeed3ebced0d8e0dce5dbdad0d0dbd2d3dbcfdcbae5dad3c4d4d7dbcdf4dacdb3cecdbef5fffffffffffffffffffffffffffffffffffffffffffffff4f2ddd0e7c9f1fffffffffefffffffae5dcd0efe3e1fffffffefeffffffffffffffffffeef1cadbd2feffffffffffffffffffffffffffffffffffedcecececececececececececececececdcecececececececececececececdcdcecececececececececececececececececececececececececcfbdac8d8cac2d0a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a1f7ffffffffffedcecececececececececececececececdcecececececececececececececdcdcecececececececececececececececececececececececececcfbffffffffffffffffffffffffffffffffffffffffffbea6a6a7a7a6a6a7a7a7a7a6a6a7a5fafffffffffffffffffffffffffffffffffffffffffffffffffffffff0c1d6e2c2f1ffffffffffffffffffffffffffffffa0818180808181808080808181807ef8ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd9d1d1d2d2d1d1d0d0d0d0d1d1d2d0fcfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0d9f9f9f9f9f9f9f9f9f9f9f9f9f9f5dadcf9f9f9f9f9f9f9f9f9f9f9f9f9dde8f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f2e0ccf8ffffffffdcfefffffffffffffffffffffddeceb5e8fffffffffffffffffffffee8dcacdffdffffffffffffffffffffffffffffffffffffffffecd2d6bedef7feffffffffffffffffffffffffffffffcbced6fffffffffffffffffffffffecbc5dcf8fffffffffffffffffffffffffffffffffffffffff4cacbd9f6f8fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffcfffffffffffffffffffffffffffffffffffffffff8c8d3d2f3fbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffecd3c9f4fafffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffefdffefe9f4efe0e2ede9e6f1defffffffffffffffffffffffffffffffffffffff5e8e7f9ececf0e8f2f4f2eff8fff2e1ebf6ebeef5e5f5eaf4f6fffffffffffffffff9f6f3fbf4f5f7f6edfaf4ffffffffffffffffffffffffffffffffffffffeed6d5e9cde1decae1e1ded4e9ffebc7d4efcfdae8caedb9dbedffffffffffffffffffffffffffffffffffffffff", "8616ee5738cc7e574f13c1ad09d164e9c2ed3568d4585e64d5d9bd9f1438cf89"),
    "seed-all-light": ("ce99de9b04234fc875d9690f1846f06f748a677520864d5c7d3088ebac0b75a6", "fffffffffff2e6dbfafffffff2fdfefbfbfbf2f1e4e9f0e8f7fff3fffffffffffffffff3fffffffffffffffffffffffffffffffffff5fcfffffffffffffffffffffffffffffffbede8dcfffef0f0ebeee8defdfffffffffff9ffeeefe5ede0fbfdfff8eee4e3ece3f1fffdffffe6ebe7edfffefefff2f5dae3e5dfffffffffffffffffffffedc2c4c6d1c6c2bfc4ced3c3d3c8cacad2c8bdc0c6c2c4c3cabdcdc9ebe1dce9e7fffffffffcfffffffffffffffdfdffffffffffffffffffffffffe6dde5dcd8e3cbcbcbcbcbcacacbcbcbcbcbc9cbcbcbcbcbc9cbcbcbcbcbcbcbd0f2f2f2f2f2f3f3f3f2eff2f2f2f2f2f3f3f1f1f2f2f2f2f2f2f3f3f1f4f1fff5d8e6ebd9f6fffffffffffdfdfffffffffffcfffffffffffcffffffffffffffe2c2c2c2c2c2c2c2c2c2c1c2c2c2c2c2c2c2c1c2c2c2c2c2c2c2c2c1c3c1bffffffffffffff5d1d9dbe6dcd6d6d7e3e8dfe1dcd3dfd9dae3d4d6ece0e1e2eee9d7e2d7dadbe5e4d4dfedebe4f6d9e5e2ddd0e1e2e1ebdfe5ffffffffffffffffe6dae5dcd6dbb6b6b6b6b6b3f9fffffffffffcfffffffffffcfffffffffffffffcffffffffffffffffffdeb6b6b6b6b6b6b6b3f9fffffffffffffffffffffffff5d5e4ebd7f6fffffffffff9aaaeaeaeaeaeaeaeaeaeaeaeadaeaeaeaeaeaeaeadaeaeaeaeaeaeaeaeaebffffffffffffffff9aaaeaeaeaeaeaeaeadaeaea8fffffffffffff6d4dadde8ddd9d4d5dee6d2e2dbd9d9e3e0dce4e0e2e4d5d7dbdbdbd7d1d2dce3d4dbdae3d6dfede5cbd4dcd4c1fbfdfdfdfdfdfdfdfdfdfdfdffe6dde5dcd8dfc1c1c1c1c1c0c0c1c1c1c1c1c0c1c1c1c1c1c0c1c1c1c1c1c1c1c0c1c1c1c1c1c1c1c1c1c0c1c1c1c1c1c1c1c0c0c1c1c1c1c1c1c1c1c1c1bdf9f5d8e6ebd9f1f2f2f2f2f2f1f1f2f2f2f2f2bba9a9a9a9a9d3f2f2f2f2f2f2f2eff2f2f2f2f2f2f2f2f2eff2f2f2f2f2f2f2f1f1f2f2f2f2f2f2f2f2f2f2f2fefffffffffdebfbfbfbfbfbe7f7fbfbfbfbf7d1dcdcdcdcdce4fbfbfbfbfbfbf8e6fbfbfbfbfbfbfbfbf8e6fbfbfbfbfbfbfbe7f7fbfbfbfbfbfbfbfbfbf6e8fbffffffffe3f7f6dcdae2daecf9e1d6e4d7dffbeddfe0dbd8ebfffbf1ddd9dedef2fffffffbf1dddadedef2fffcfcd8dae3daebfffffffffbefe0e1e4d6e1effdfffffffffff7f3ffffffffffeefdffffffffe9f7fffffff0e8dcdceefffffffae4d9e2dadceefffbeedae6d5dee9fbfffffffbe3dae3e0dff0feffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeefdfffffffffffff1fafffffffffffffffff4e9f9f3edf2f4e8e9f0eee7f4e6ffffffffffffffffffffe4dbe4e6dbe5dbd7ede6e2e3f7fdcfcfecdce4dfdfe7dbd9e4f7ffe4dcf1e9e2e8d4e6e4dbe4dff8e8e0e6e0ffffffffffffffffffffff", "743d3fce1798cffc170e0602667d230ad3b7226eeab5e9b7d32efae721a5850b"),
    "seed-power-dark": ("9255073fd03e1ef5adb4ffdeb60242cb4b1f94ae1b587a29e9fcab25843dc387", "1c1c1c1c1c2f513b433833464a423a28453d463554462d444829543434353643463b3f46393d4240352a392e3f323850363b4428393b1c1c24221d1c1d1d201d1c1c1c1c1c1c1c1c1c1c1c1c1c303552241c1c1c1c1c1c313e332e3538313c281c1c1c1c1c1c1c1c1c3e383b381c1c1c1c1c1c1c1c1c3c412b283e2b3b3a2f3a1c1c1c1c1c356464646464646464646464646464646464644828282828284769646464646464646464646464646464646464646464646632282828282828221c3d4d3e4b5358a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a65e28282828285ba6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a734282828282828221c1c1c1c1c1c356464646464646464646464646464646464644728282828284a69646464646464646464646464646464646464646464646730282828282828221c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c22565959595959571d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2d5e5959595a59593d1c2954413653281c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c22606d6d6d6d6c60211c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2b726d6d6d6c6d6d491c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d48434242424244211c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c274a424242424440321c1c1c1c1c313f212121212121212121212121212121212c4c36232323233a55212121212121212121212121212121212121212121212f5926232323232e424c1d1c1c1c1c321c1c1c1c1c1c1c1c1c1c1c1c1c1c26464759241c1c2e5c4f391e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2b5a4b451d1c1c3842524a2f1f1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c4c3f2a1c1c2b5b4b431e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c2a5245521e1c1c304b5134201d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c265346501e1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c24494654211c1c27534b3a211d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c403c211c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c3c392c1c1c1c324542211d1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c213c2e293537303b3238312f3f3b342f3838323538382c39343e34363e3937343b383c2f1c1c1c1c1c1c1c1c1c1d3c3c282d2d29332b22282d231d2431321f242a2f2e27302d2b2a262d2d262b2021242c29312e2f3325362929252220201f212d27211f1c1c1c1c1c1c1c1c1c1e5857324d3a344f40303349361c2d40412840403e394b4a3a3c342b36423a341c1e201f3239374249354b4542351c1c1c1c1c1c1c1c1c1c", "f49dfbf4c401e2ab9aa61a46804deb791bdee40524158354dc23b6617a0eefc9"),
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


def test_relaxable_firmware_regions_are_drawn_as_not_enforced():
    from pathlib import Path

    from iommu_lab.io.sysfs import RegionLayout, read_iommu_groups

    groups = read_iommu_groups(Path(__file__).resolve().parent.parent / "data" / "sysfs" / "intel-host" / "iommu_groups")
    layout = RegionLayout.of_group(next(g for g in groups if g.number == 1))
    relaxed = [r for r in layout.reserved if not layout.enforced(r)]
    assert [r.type for r in relaxed] == [ResvType.DIRECT_RELAXABLE]
    for st in ("light", "dark"):
        th = style.THEMES[st]
        fig = render.layout(layout, style=st)
        colls = collections_by_gid(fig)
        relax, msi = colls["layout:resv-direct-relaxable"], colls["layout:resv-msi"]
        cat = style.category("resv-direct-relaxable")
        # A light tint inside a dashed edge in the category's colour; the enforced MSI region
        # stays a solid block with a plain edge.
        assert to_hex(relax.get_edgecolor()[0]) == to_hex(cat.color)
        assert relax.get_linestyle()[0][1] is not None and msi.get_linestyle()[0][1] is None
        face, bg = np.array(to_rgba(relax.get_facecolor()[0])[:3]), np.array(to_rgba(th.axes_background)[:3])
        assert np.abs(face - bg).max() < np.abs(np.array(to_rgba(cat.color)[:3]) - bg).max() / 2
        assert to_rgba(relax.get_facecolor()[0])[3] == 1.0
        (leg,) = fig.legends
        labels = [t.get_text() for t in leg.get_texts()]
        assert "direct-relaxable (not enforced)" in labels and "reserved: msi" in labels
