"""The explorers' building blocks, in plain pytest: no kernel (comm gives a dummy comm)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from matplotlib.figure import Figure

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import RangeSet
from iommu_lab.widgets.common import AddressInput, ErrorView, FigureView, frame_html, reporting


def test_importing_iommu_lab_and_its_widgets_package_does_not_import_ipywidgets():
    code = (
        "import sys, iommu_lab, iommu_lab.widgets as w\n"
        "assert 'ipywidgets' not in sys.modules, 'ipywidgets imported eagerly'\n"
        "assert 'LayoutExplorer' in dir(w)\n"
        "w.PlatformExplorer\n"
        "assert 'ipywidgets' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, MPLBACKEND="Agg"))


def test_unknown_widget_name_is_an_attribute_error_listing_the_explorers():
    import iommu_lab.widgets as w

    with pytest.raises(AttributeError, match="WalkExplorer"):
        _ = w.NoSuchExplorer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0x1000", 0x1000),
        ("0x1_0000", 0x1_0000),
        ("4K", 0x1000),
        ("4096", 4096),
        ("0xffff_ffff_ffff_ffff", 2**64 - 1),
    ],
)
def test_address_input_reads_hex_grouped_and_unit_forms(text, expected):
    box = AddressInput(label="iova")
    box.value = text
    assert box.parsed == expected
    assert box.problem == ""
    assert box.parse() == expected
    assert "0x" in box.message.value


def test_address_input_explains_text_it_cannot_read_and_parse_raises():
    box = AddressInput(label="iova")
    box.value = "0xzz"
    assert box.parsed is None
    assert "iova" in box.problem and "0xzz" in box.problem
    assert "il-bad" in box.message.value
    with pytest.raises(ValueError, match="0xzz"):
        box.parse()


def test_address_input_refuses_addresses_past_64_bits():
    box = AddressInput(label="iova", value="0x1_0000_0000_0000_0000")
    assert box.parsed is None and "64-bit" in box.problem


def test_blank_address_input_is_none_when_optional_and_an_error_otherwise():
    assert AddressInput(optional=True).parse() is None
    with pytest.raises(ValueError, match="enter an iova"):
        AddressInput(label="iova").parse()


def test_address_input_is_a_synced_text_box_updated_only_on_submit():
    box = AddressInput("0x1000", css_class="il-test-box")
    state = box.get_state()
    assert state["value"] == "0x1000"
    assert state["continuous_update"] is False
    assert "il-test-box" in state["_dom_classes"]


def test_size_and_ranges_inputs_echo_what_they_read():
    size = AddressInput("2M", kind="size", label="length")
    assert size.parsed == 0x20_0000 and "2 MiB" in size.message.value
    ranges = AddressInput("0x0..0xfff, 0x10_0000+1M", kind="ranges", label="allowed")
    assert ranges.parsed == RangeSet.parse("0x0..0xfff, 0x10_0000+1M")


def test_error_view_shows_errno_then_message_and_clears():
    view = ErrorView()
    view.show(IommuError("EINVAL", "map [0x0, 0xfff] crosses <window>"))
    assert view.errno == "EINVAL"
    assert view.text.startswith("EINVAL: map")
    assert "EINVAL" in view.get_state()["value"]
    assert "&lt;window&gt;" in view.value  # escaped, never raw HTML from a message
    view.clear()
    assert view.value == "" and view.errno == ""


def test_reporting_catches_model_refusals_and_bad_input_but_not_bugs():
    view = ErrorView()
    with reporting(view) as out:
        raise IommuError("EEXIST", "overlaps")
    assert not out.ok and view.errno == "EEXIST"
    with reporting(view) as out:
        pass
    assert out.ok and view.value == ""
    with reporting(view) as out:
        raise ValueError("cannot read")
    assert not out.ok and view.text == "input: cannot read"
    with pytest.raises(KeyError), reporting(view):
        raise KeyError("bug")


def test_figure_view_shows_png_bytes_and_counts_renders():
    view = FigureView()
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    view.show(fig)
    assert view.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert view.renders == 1
    assert view.get_state()["format"] == "png"


def test_frame_html_shows_hex_columns_in_hex_and_escapes_text():
    from iommu_lab.core.frames import addr_frame

    df = addr_frame({"iova": [0x1000, 2**64 - 4096], "prot": ["<rw>", "r"]}, hex_columns=["iova"])
    out = frame_html(df, "areas")
    assert "0x1000" in out and "0xffff_ffff_ffff_f000" in out
    assert "&lt;rw&gt;" in out
    empty = frame_html(addr_frame({"iova": []}), "areas", empty="no areas")
    assert "no areas" in empty


def test_il_widgets_is_reached_lazily_from_the_package():
    code = (
        "import sys, iommu_lab as il\n"
        "assert 'ipywidgets' not in sys.modules\n"
        "assert il.widgets.WalkExplorer.__name__ == 'WalkExplorer'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, MPLBACKEND="Agg"))


@pytest.mark.parametrize(
    "name", ["LayoutExplorer", "WalkExplorer", "NestingExplorer", "PlatformExplorer"]
)
def test_every_explorer_builds_with_no_arguments_and_closes_all_its_parts(name):
    import iommu_lab.widgets as w

    x = getattr(w, name)()
    assert x.error.value == ""
    parts = [x.error, x.figure_view, *x.children]
    x.close()
    assert all(p.comm is None for p in parts)
