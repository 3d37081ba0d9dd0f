"""The replay figure draws the replay's own numbers: running totals, flushes, cache hit rates, what-if bars."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from iommu_lab import render
from iommu_lab.dma.caches import Caches
from iommu_lab.dma.replay import Replay, replay
from iommu_lab.dma.trace import Trace, nic_rx_ring, random_working_set, storage_sg
from iommu_lab.dma.whatif import nesting_modes, what_if
from iommu_lab.hardware.platform import platforms
from iommu_lab.pagetable import PageTable
from iommu_lab.render.draw import figure
from iommu_lab.render.replay import MAX_POINTS, REPLAY, WHATIF, sizes_label

VTD = "intel-vtd-48"


def _nic_and_nvme() -> Trace:
    nic = nic_rx_ring(600, gbps=25, recycle=False, seed=1)
    nvme = storage_sg(60, segments=(1, 8), seed=2)
    return Trace.merge(nic, nvme, name="nic+nvme")


def _run(trace, policy, *, pgsize_bitmap=0x1000):
    p = platforms.get(VTD)
    return replay(trace, PageTable(p.format("paging"), pgsize_bitmap=pgsize_bitmap), Caches.for_platform(p),
                  policy=policy, progress=False)


@pytest.fixture(scope="module")
def shared():
    return _nic_and_nvme()


@pytest.fixture(scope="module")
def strict(shared):
    return _run(shared, "strict")


@pytest.fixture(scope="module")
def lazy(shared):
    return _run(shared, "lazy")


@pytest.fixture(scope="module")
def whatif():
    rws = random_working_set(4000, working_set=16 << 20, size=256, seed=3)
    # "2M" alone leaves every platform without its 4 KiB base page: a row with a note, no run.
    return what_if(rws, platforms=[VTD, "power9-pseries"], pgsizes=["4K", "4K+2M", "2M"], progress=False)


@pytest.fixture(scope="module")
def modes():
    return nesting_modes(storage_sg(12, segments=(1, 2), seed=4), VTD, progress=False)


def drawing(model, **kw):
    """The figure ``render.replay(model, **kw)`` draws and what its draw function reports drawing."""
    time_axis = kw.pop("time_axis", "time")
    if isinstance(model, Replay):
        d = figure(REPLAY, model, x=time_axis, **kw)
    else:
        d = figure(WHATIF, model, **kw)
    return d.figure, d.drawn


def drawn(model, **kw) -> dict:
    return drawing(model, **kw)[1]


def legend_texts(fig) -> list[str]:
    """Every legend entry of the figure: its own legends and its panels'."""
    from matplotlib.legend import Legend

    legends = list(fig.legends) + [x for a in fig.axes for x in a.get_children() if isinstance(x, Legend)]
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def lines(fig, gid):
    return [ln for a in fig.axes for ln in a.get_lines() if ln.get_gid() == gid]


# -- a Replay ----------------------------------------------------------------------------------
def test_cumulative_references_and_misses_end_at_the_replays_totals(lazy):
    fig, d = drawing(lazy)
    s = lazy.summary
    assert d["cum_refs"][-1] == d["total_refs"] == s["refs"]
    assert d["cum_misses"][-1] == d["total_misses"] == s["iotlb_misses"]
    (refs,) = lines(fig, "replay:cum_refs")
    assert refs.get_ydata()[-1] == s["refs"]
    legend = legend_texts(fig)
    assert f"page-table references ({int(s['refs']):,}; {float(s['refs_per_access']):.3g}/access)" in legend
    assert f"IOTLB misses ({int(s['iotlb_misses']):,} of {int(s['accesses']):,} accesses)" in legend


def test_the_curve_is_the_running_sum_of_each_accesss_references(lazy):
    d = drawn(lazy)
    running = np.cumsum(lazy.accesses["refs"].to_numpy())
    assert np.array_equal(d["cum_refs"], running[d["index"]])
    assert np.array_equal(d["pos"], lazy.accesses["t"].to_numpy()[d["index"]])
    assert d["index"][0] == 0 and d["index"][-1] == len(lazy.accesses) - 1


def test_flush_lines_sit_at_the_flush_events_times(lazy):
    fig, d = drawing(lazy)
    ev = lazy.events[lazy.events["op"] == "flush"]
    assert len(ev) == lazy.summary["flushes"] > 0
    assert np.array_equal(d["flushes"]["t"], ev["t"].to_numpy())
    last = lazy.accesses["t"].iloc[-1]
    inside = ev["t"][ev["t"] <= last].to_numpy()
    drawn_at = sorted({round(ln.get_xdata()[0] * d["x_scale"]) for ln in lines(fig, "replay:flush")})
    assert drawn_at == sorted(int(t) for t in inside)
    legend = " ".join(legend_texts(fig))
    assert f"domain flush ({len(ev):,}" in legend
    if len(inside) < len(ev):  # the 10 ms timer fires after the trace: counted, not drawn
        assert f"{len(ev) - len(inside):,} after the last access" in legend


def test_each_colour_means_one_thing_in_all_three_panels(lazy):
    from matplotlib.colors import to_hex

    fig, _ = drawing(lazy)
    meaning_of = {"replay:cum_refs": "page-table references", "replay:cum_misses": "IOTLB",
                  "replay:miss_rate": "IOTLB", "replay:cache:IOTLB": "IOTLB", "replay:flush": "flush",
                  "replay:map": "map", "replay:unmap": "unmap"}
    seen: dict[str, set] = {}
    for a in fig.axes:
        for art in [*a.get_lines(), *a.patches, *a.collections]:
            gid = art.get_gid() or ""
            meaning = meaning_of.get(gid, "paging-structure cache" if gid.startswith("replay:cache:PSC") else None)
            if meaning is None:
                continue
            colour = art.get_color() if hasattr(art, "get_xdata") else (
                art.get_edgecolor()[0] if gid in ("replay:map", "replay:unmap") else
                art.get_edgecolor() if gid == "replay:miss_rate" else art.get_facecolor())
            seen.setdefault(to_hex(colour), set()).add(meaning)
    assert {m for ms in seen.values() for m in ms} == set(meaning_of.values()) | {"paging-structure cache"}
    assert all(len(ms) == 1 for ms in seen.values()), seen


def test_the_legend_is_under_the_panels_and_the_map_rows_under_the_curves(lazy):
    fig, d = drawing(lazy)
    fig.canvas.draw()
    r = fig._get_renderer()
    (leg,) = fig.legends
    box = leg.get_window_extent(r)
    for a in fig.axes:
        assert box.y1 <= a.get_window_extent(r).y0, "the legend covers a panel"
    a = fig.axes[0]
    assert a.get_legend() is None
    lowest_curve = min(min(ln.get_ydata()) for ln in lines(fig, "replay:cum_refs") + lines(fig, "replay:cum_misses"))
    for rug in ("replay:map", "replay:unmap"):
        (coll,) = [c for c in a.collections if c.get_gid() == rug]
        top = max(seg[:, 1].max() for seg in coll.get_segments())
        assert top < 0 <= lowest_curve and top < a.get_ylim()[1]
        assert min(seg[:, 1].min() for seg in coll.get_segments()) > a.get_ylim()[0]
    labels = [t.get_text() for t in a.texts if t.get_gid() == "replay:rug_label"]
    assert labels == ["map", "unmap"]


def test_strict_mode_draws_no_flush_and_names_its_invalidations(strict):
    fig, d = drawing(strict)
    assert not lines(fig, "replay:flush")
    n = int(strict.summary["invalidations"])
    assert n == strict.summary["unmaps"] > 0
    assert d["totals"].startswith(f"{n:,} range invalidations · 0 flushes")
    assert d["totals"] in fig.axes[0].get_title("left")


def test_map_and_unmap_rows_are_counted_exactly(strict):
    d = drawn(strict)
    ops = strict.events["op"]
    assert d["maps"]["count"] == int((ops == "map").sum()) == strict.summary["maps"]
    assert d["unmaps"]["count"] == int((ops == "unmap").sum()) == strict.summary["unmaps"]


def test_miss_rate_windows_account_for_every_miss(lazy):
    d = drawn(lazy)
    assert d["window_sizes"].sum() == len(lazy.accesses)
    assert round(float((d["window_miss_rate"] * d["window_sizes"]).sum())) == lazy.summary["iotlb_misses"]


def test_cache_panel_draws_every_caches_hit_rate(lazy):
    fig = render.replay(lazy)
    stats = lazy.cache_stats
    bars = {p.get_gid(): p.get_width() for p in fig.axes[2].patches}
    for _, row in stats.iterrows():
        label = "IOTLB" if row["cache"] == "IOTLB" else f"{row['cache']} L{int(row['level'])}"
        if row["lookups"]:
            assert bars[f"replay:cache:{label}"] == pytest.approx(row["hit_rate"])
    ticks = [t.get_text() for t in fig.axes[2].get_yticklabels()]
    assert ticks[0] == f"IOTLB ({int(stats.iloc[0]['entries'])})"


def test_a_nested_replay_shows_the_stage_2_caches(modes):
    nested = next(r for r in modes.runs.values() if r.kind == "nested")
    d = drawn(nested)
    names = {c["cache"] for c in d["caches"]}
    assert {"IOTLB", "PSC", "S2 TLB", "S2 PSC"} <= names
    assert d["cum_refs"][-1] == nested.summary["refs"]


def test_access_axis_places_each_event_at_the_first_access_at_or_after_it(lazy):
    d = drawn(lazy, time_axis="access")
    t = lazy.accesses["t"].to_numpy()
    assert np.array_equal(d["pos"], d["index"])
    assert np.array_equal(d["flushes"]["x"], np.searchsorted(t, d["flushes"]["t"], side="left"))
    with pytest.raises(ValueError, match="'time'"):
        render.replay(lazy, time_axis="row")


def test_rendering_never_changes_the_replay(lazy):
    before = copy.deepcopy(lazy)
    render.replay(lazy, style="dark", time_axis="access")
    assert lazy.accesses.equals(before.accesses) and lazy.events.equals(before.events)
    assert lazy.summary.equals(before.summary) and lazy.cache_stats.equals(before.cache_stats)
    assert list(lazy.accesses.columns) == list(before.accesses.columns)


@pytest.fixture(scope="module")
def million():
    trace = random_working_set(1_000_000, working_set=1 << 20, size=4096, seed=5)
    return _run(trace, "strict")


def test_a_million_access_replay_renders_quickly_from_a_few_thousand_points(million):
    assert len(million.accesses) == 1_000_000
    start = time.perf_counter()
    fig, d = drawing(million)
    assert time.perf_counter() - start < 2.0
    assert len(d["index"]) <= MAX_POINTS
    assert all(len(ln.get_xdata()) <= MAX_POINTS for ln in fig.axes[0].get_lines())
    assert d["cum_refs"][-1] == million.summary["refs"]  # totals stay exact


# -- a WhatIf ----------------------------------------------------------------------------------
def test_whatif_bars_are_the_frames_numbers(whatif):
    fig, d = drawing(whatif)
    f = whatif.frame
    ran = f[f["note"] == ""]
    assert sorted(d["refs_per_access"]) == sorted(d["iotlb_hit_rate"]) == [f.index.get_loc(i) for i in ran.index]
    for pos, v in d["refs_per_access"].items():
        assert v == f.iloc[pos]["refs_per_access"]
        assert d["iotlb_hit_rate"][pos] == f.iloc[pos]["iotlb_hit_rate"]
    ends = sorted(p.get_x() + p.get_width() for p in fig.axes[0].patches if p.get_gid() == "replay:refs_per_access")
    assert ends == pytest.approx(sorted(ran["refs_per_access"]))
    rates = sorted(p.get_width() for p in fig.axes[1].patches if p.get_gid() == "replay:iotlb_hit_rate")
    assert rates == pytest.approx(sorted(ran["iotlb_hit_rate"]))


def test_runs_that_could_not_be_made_are_annotated_gaps(whatif):
    fig, d = drawing(whatif)
    noted = whatif.frame[whatif.frame["note"] != ""]
    assert sorted(d["notes"]) == [whatif.frame.index.get_loc(i) for i in noted.index] and len(noted) == 2
    texts = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "replay:note"]
    for note in noted["note"]:
        assert f"not run: {note}" in texts
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [r["label"] for r in d["rows"]]


def test_whatif_title_is_the_question_and_wide_ranges_use_a_log_scale(whatif):
    fig = render.replay(whatif)
    assert " ".join(fig.get_suptitle().split()) == " ".join(whatif.question.split())
    vals = whatif.frame["refs_per_access"].dropna()
    assert max(vals) / min(v for v in vals if v > 0) > 20
    assert fig.axes[0].get_xscale() == "log"


def test_nesting_modes_are_the_series_and_vm_exits_are_shown(modes):
    fig, d = drawing(modes)
    assert d["by"] == "mode" and list(d["series"].values()) == ["native", "nested", "shadowed"]
    assert fig.axes[0].get_xscale() == "linear"
    shadowed = modes.frame[modes.frame["mode"] == "shadowed"].iloc[0]
    assert shadowed["traps"] > 0
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert f"{shadowed['refs_per_access']:.3g} · {int(shadowed['traps']):,} VM exits" in texts


# -- the keywords every renderer takes -----------------------------------------------------------
@pytest.mark.parametrize("st", ["light", "dark"])
def test_both_styles_are_opaque_and_draw_the_same_data(lazy, whatif, st):
    from figcheck import drawn_fingerprint

    for model in (lazy, whatif):
        fig = render.replay(model, style=st)
        assert to_rgba(fig.get_facecolor())[3] == 1.0
        for a in fig.axes:
            assert to_rgba(a.get_facecolor())[3] == 1.0
        assert drawn_fingerprint(fig) == drawn_fingerprint(render.replay(model, style=st))
    if st == "dark":
        assert fig.get_facecolor()[:3] == to_rgba("#1b1b1f")[:3]


def test_filename_saves_svg_byte_identically_and_png(lazy, tmp_path):
    render.replay(lazy, filename=tmp_path / "a.svg")
    render.replay(lazy, filename=tmp_path / "b.svg")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    render.replay(lazy, filename=tmp_path / "a.png", style="dark")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("which", ["replay", "whatif"])
def test_ax_draws_into_the_callers_figure(lazy, whatif, which):
    model = lazy if which == "replay" else whatif
    fig = Figure(figsize=(14, 12), layout="constrained")
    top, bottom = fig.subplots(2)
    assert render.replay(model, ax=bottom) is fig
    assert top in fig.axes and bottom not in fig.axes
    assert len(fig.axes) == 1 + (3 if which == "replay" else 2)
    hand = Figure(figsize=(12, 6))
    ax = hand.add_axes((0.05, 0.05, 0.9, 0.9))
    assert render.replay(model, ax=ax) is hand
    assert not ax.axison and len(ax.child_axes) == (3 if which == "replay" else 2)


def test_plot_shortcuts_and_what_cannot_be_drawn(lazy, whatif):
    assert any(ln.get_gid() == "replay:cum_refs" for a in lazy.plot().axes for ln in a.get_lines())
    assert any(p.get_gid() == "replay:iotlb_hit_rate" for a in whatif.plot().axes for p in a.patches)
    assert drawn(lazy)["total_refs"] == lazy.summary["refs"]
    assert drawn(whatif)["question"] == whatif.question
    with pytest.raises(TypeError, match="Replay"):
        render.replay(lazy.summary)


def test_page_sizes_read_as_a_person_says_them():
    assert sizes_label("4 KiB+2 MiB") == "4 KiB + 2 MiB"
    assert sizes_label("4 KiB") == "4 KiB only"
    assert sizes_label("platform (4 KiB+2 MiB+1 GiB)") == "platform's sizes: 4 KiB + 2 MiB + 1 GiB"
    assert sizes_label("platform (4 KiB+8 KiB+16 KiB+2 PiB)") == "platform's sizes: 4 KiB … 2 PiB (4 sizes)"


def test_whatif_policies_are_named_plainly_and_a_reduced_run_says_so_on_its_row(whatif):
    fig, d = drawing(whatif)
    legend = legend_texts(fig)
    assert legend == ["4 KiB only", "4 KiB + 2 MiB", "2 MiB only"]
    assert not any("/" in t or "4K" in t for t in legend)
    (vtd, power) = ([r for r in d["rows"] if r["platform"] == p] for p in (VTD, "power9-pseries"))
    assert [r["label"] for r in vtd] == [r["label"] for r in power] == legend
    # POWER's TCE table has no 2 MiB pages: its "4 KiB + 2 MiB" run used 4 KiB only, and its row says so.
    assert power[1]["pgsizes"] == "4 KiB" and power[1]["reduced"] == "ran as 4 KiB only: no 2 MiB here"
    assert vtd[1]["reduced"] == "" and power[0]["reduced"] == ""
    texts = [t.get_text() for a in fig.axes for t in a.texts]
    assert any(t.endswith("· ran as 4 KiB only: no 2 MiB here") for t in texts)
    assert not any(lab.get_text() in ("4K", "4K+2M") for a in fig.axes for lab in a.get_yticklabels())
