"""The fault figure puts each logged fault on its device's layout: markers at the logged
addresses, the subject's mappings beside them, readable ticks and honest counts."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from iommu_lab import gallery
from iommu_lab.core.faults import FaultKind
from iommu_lab.core.ranges import IovaRange, RangeSet
from iommu_lab.hardware.platform import platforms
from iommu_lab.io.debugfs import read_domain_translation
from iommu_lab.io.dmesg import read_dmesg
from iommu_lab.render.draw import figure
from iommu_lab.render.faults import (
    FAULTS,
    NO_SUBJECT_NOTE,
    fault_table,
    faults,
    faults_data,
    thin_ticks,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def _log(name):
    return read_dmesg(DATA / "dmesg" / name)


def _dump():
    return read_domain_translation(DATA / "debugfs/domain_translation_struct")


def test_title_counts_faults_and_devices_in_real_plurals_and_the_records_left_out():
    assert faults_data(_log("intel-pre5.1.log")).title == (
        "2 logged IOMMU faults on 1 device; 1 record without an address left out")
    assert faults_data(_log("amd-5.x+.log")).title == "3 logged IOMMU faults on 3 devices"
    assert faults_data(_log("smmuv2.log")).title == "1 logged IOMMU fault on 1 device"
    data = faults_data(_log("intel-5.14+.log"))
    assert (data.placed, data.left_out) == (2, 1)


def test_markers_sit_at_the_logged_addresses_beside_the_mapping_they_hit():
    drawing = figure(FAULTS, _log("intel-pre5.1.log"), subject=_dump())
    (track,) = drawing.data.tracks
    assert track.addresses == (0x7C00_0000, 0x7C00_1000)
    assert all(k is FaultKind.PERMISSION for k in track.kinds)
    (markers,) = drawing.drawn["markers"]["0000:00:02.0"]
    xs = markers.get_offsets()[:, 0]
    assert np.allclose(xs, drawing.data.axis.x(track.addresses))
    # A permission fault hits a page the dump maps: the 1 GiB leaf at 0x4000_0000.
    assert IovaRange(0x4000_0000, 0x7FFF_FFFF) in track.mapped
    assert all(RangeSet(track.mapped).find(a) is not None for a in track.addresses)
    assert drawing.data.note is None


def test_every_device_gets_its_own_track_and_faulting_page():
    data = faults_data(_log("amd-5.x+.log"))
    assert [t.who for t in data.tracks] == ["0000:01:00.0", "0000:c4:00.0", "0000:00:00.2"]
    assert data.tracks[1].pages == (IovaRange(0x1000, 0x1FFF),)
    assert data.tracks[0].pages == (IovaRange(0xFFFF_FFFD_F800_0000, 0xFFFF_FFFD_F800_0FFF),)


def test_without_a_subject_the_faulting_pages_are_drawn_and_the_axis_says_how_to_add_mappings():
    drawing = figure(FAULTS, _log("amd-5.x+.log"))
    assert drawing.data.note == NO_SUBJECT_NOTE
    assert drawing.drawn["pages"] == 3 and drawing.drawn["mapped"] == 0
    ax = drawing.figure.axes[0]
    label = ax.get_xlabel().replace("\n", " ")
    assert "not to scale" in label and "no mapping information: pass subject=" in label


def test_compressed_gaps_are_marked_with_their_size_and_the_axis_is_not_to_scale():
    drawing = figure(FAULTS, _log("intel-pre5.1.log"), subject=_dump())
    axis = drawing.data.axis
    assert axis.breaks and drawing.drawn["breaks"] == len(axis.breaks)
    ax = drawing.figure.axes[0]
    gaps = [t.get_text() for t in ax.texts if t.get_gid() == "faults:gap-size"]
    assert gaps == [f"gap {s.label}" for s in axis.breaks]
    assert "gap 1020 MiB" in gaps
    zigzags = [ln for ln in ax.lines if ln.get_gid() == "faults:break-marker"]
    assert len(zigzags) == sum((0 < s.x0 < axis.total_width) + (0 < s.x1 < axis.total_width) for s in axis.breaks)
    assert ax.get_xlabel().startswith("IOVA, not to scale; shaded zig-zag bands are compressed gaps")


def test_a_fault_at_address_zero_is_drawn_whole_inside_the_axes():
    drawing = figure(FAULTS, _log("amd-4.x.log"))
    fig = drawing.figure
    fig.canvas.draw()
    ax = fig.axes[0]
    (markers,) = drawing.drawn["markers"]["0000:04:00.0"]
    assert markers.get_offsets()[0, 0] == 0.0
    left_px = ax.transData.transform((0.0, 0.0))[0] - ax.transData.transform((ax.get_xlim()[0], 0.0))[0]
    radius_px = math.sqrt(markers.get_sizes()[0]) / 2 * fig.dpi / 72
    assert left_px >= radius_px


def _slanted_boxes(labels, renderer):
    """Each rotated label as the rectangle its glyphs fill, projected on its own two axes."""
    out = []
    for t in labels:
        bb = t.get_window_extent(renderer)
        th = math.radians(t.get_rotation())
        c, s = math.cos(th), math.sin(th)
        det = c * c - s * s
        w = (bb.width * c - bb.height * s) / det
        h = (bb.height * c - bb.width * s) / det
        assert w > 0 and h > 0, t.get_text()
        corners = np.array([(bb.x0 + h * s, bb.y0), (bb.x0 + h * s + w * c, bb.y0 + w * s),
                            (bb.x0 + w * c, bb.y0 + w * s + h * c), (bb.x0, bb.y0 + h * c)])
        u, v = corners @ np.array([c, s]), corners @ np.array([-s, c])
        out.append((t.get_text(), (u.min(), u.max()), (v.min(), v.max())))
    return out


def _overlapping_ticks(fig):
    canvas = FigureCanvasAgg(fig)  # a real canvas: constrained layout runs and text gets its extent
    canvas.draw()
    renderer = canvas.get_renderer()
    labels = [t for t in fig.axes[0].get_xticklabels() if t.get_visible() and t.get_text()]
    boxes = _slanted_boxes(labels, renderer)
    clashes = []
    for i, (a, ua, va) in enumerate(boxes):
        for b, ub, vb in boxes[i + 1:]:
            if ua[0] < ub[1] and ub[0] < ua[1] and va[0] < vb[1] and vb[0] < va[1]:
                clashes.append((a, b))
    return labels, clashes


def _scattered_log(n=24):
    """One device faulting on ``n`` pages spread over 2^40 bytes: dozens of axis boundaries."""
    (first,) = _log("smmuv3.log")
    return [dataclasses.replace(first, address=(i * 0x9_1234_5000) % (1 << 40)) for i in range(n)]


CASES = {
    "scattered-pages": lambda st: faults(_scattered_log(), style=st),
    "vtd-dump": lambda st: faults(_log("intel-pre5.1.log"), subject=_dump(), style=st),
    "vtd-log-only": lambda st: faults(_log("intel-pre5.1.log"), style=st),
    "amd-log-only": lambda st: faults(_log("amd-5.x+.log"), style=st),
    "amd-on-platform": lambda st: faults(_log("amd-4.x.log"), subject=platforms.get("amd-v1"), style=st),
    "smmuv3": lambda st: faults(_log("smmuv3.log"), style=st),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("st", ["light", "slides"])
def test_address_tick_labels_do_not_overlap_once_drawn(case, st):
    labels, clashes = _overlapping_ticks(CASES[case](st))
    assert not clashes, clashes
    texts = [t.get_text() for t in labels]
    assert texts[0] == "0x0" and texts[-1] == "0xffff_ffff_ffff_ffff"


def test_unthinned_labels_of_crowded_boundaries_would_overlap(monkeypatch):
    # The overlap measure finds real clashes: without thinning, the scattered log's labels collide.
    import iommu_lab.render.faults as module

    monkeypatch.setattr(module, "thin_ticks", lambda ticks, min_gap: list(ticks))
    _labels, clashes = _overlapping_ticks(CASES["scattered-pages"]("light"))
    assert clashes


def test_crowded_boundaries_keep_a_tick_but_lose_the_clashing_label():
    ticks = [(0.0, 0, "0x0"), (1.0, 1, "a"), (1.1, 2, "b"), (1.15, 3, "c"), (3.0, 4, "d"), (3.1, 5, "top")]
    assert [lab for _x, _a, lab in thin_ticks(ticks, 0.5)] == ["0x0", "a", "top"]
    drawing = figure(FAULTS, _log("intel-pre5.1.log"), subject=_dump())
    ax = drawing.figure.axes[0]
    ticked = set(ax.get_xticks()) | set(ax.get_xticks(minor=True))
    assert {s.x0 for s in drawing.data.axis.segments} <= ticked


def test_an_ioas_or_platform_subject_draws_its_windows_and_reservations_in_the_layout_colours():
    data = faults_data(_log("amd-4.x.log"), subject=platforms.get("amd-v1"))
    keys = {k for k, _r in data.tracks[0].context}
    assert "window" in keys and "resv-msi" in keys
    assert data.tracks[0].context == data.tracks[1].context


def test_a_list_of_dumps_is_matched_by_device_and_a_device_without_one_is_named():
    dumps = _dump()
    data = faults_data(_log("intel-5.14+.log"), subject=dumps)
    by_who = {t.who: t for t in data.tracks}
    assert by_who["0000:3a:00.1"].mapped == (IovaRange(1 << 48, (1 << 48) + 0xFFF),)
    assert data.note is None
    data = faults_data(_log("amd-5.x+.log"), subject=dumps)
    assert data.note.startswith("no dump in subject for 0000:01:00.0")


def test_a_subject_of_another_type_is_refused_by_name():
    with pytest.raises(TypeError, match="got str"):
        faults_data(_log("amd-5.x+.log"), subject="domain_translation_struct")


def test_a_log_without_addresses_is_refused_with_its_record_count():
    log = [r for r in _log("intel-pre5.1.log") if r.address is None]
    with pytest.raises(ValueError, match="among 1 log record"):
        faults_data(log)


def test_the_count_table_counts_per_device_and_reason():
    table = fault_table(_log("intel-pre5.1.log"))
    rows = [tuple(r) for r in table[["who", "reason", "faults"]].itertuples(index=False)]
    assert rows == [("0000:00:02.0", "0x05", 1), ("0000:00:02.0", "0x06", 1), ("0000:f0:1f.0", "0x25", 1)]


def test_the_gallery_holds_the_fault_figure_with_and_without_a_subject():
    assert {"faults-vtd-on-dump", "faults-amd-log-only"} <= set(gallery.ENTRIES)
    assert "faults" in gallery.kinds()
