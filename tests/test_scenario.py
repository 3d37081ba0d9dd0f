"""Scenario files: TOML data in, a replayed IOAS out; recorded back from history; diffed."""

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import iommu_lab as il
from iommu_lab.io.scenario import Scenario, ScenarioError, diff

DATA = Path(__file__).resolve().parent.parent / "data" / "scenarios"


def _write(tmp_path, body: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(body)
    return p


def test_fixture_replays_to_the_areas_it_maps_and_records_its_walks():
    sc = Scenario.load(DATA / "vtd-nic.toml")
    ioas = sc.replay()
    assert [(a.iova, a.length) for a in ioas.areas] == [(0x10_0000, 0x20_0000), (0x40_0000, 0x1000)]
    assert [(r.index, r.iova) for r in sc.results] == [(3, 0x10_0000), (4, 0xFEE0_0000)]
    assert sc.results[0].lookup.walk.ok and "msi" in str(sc.results[1].lookup)


def test_addresses_above_2_63_are_hex_strings_and_work(tmp_path):
    p = _write(tmp_path, '''
[[devices]]
name = "d"
aperture = [["0x8000_0000_0000_0000", "0x8000_0000_ffff_ffff"]]
pgsizes = "0x1000"
[[ops]]
op = "attach"
device = "d"
[[ops]]
op = "map"
iova = "0x8000_0000_0001_0000"
length = "64K"
''')
    ioas = Scenario.load(p).replay()
    assert ioas.areas[0].iova == 0x8000_0000_0001_0000


def test_record_then_dump_then_load_reproduces_the_layout(tmp_path):
    ioas = il.IOAS.from_platform(il.platforms.get("intel-vtd-48"))
    ioas.map(0x20_0000, prot="r")
    ioas.map(0x1000, iova=0x8000_0000)
    ioas.unmap(0x8000_0000, 0x1000)
    ioas.reserve(il.IovaRange(0x1_0000_0000, 0x1_0000_ffff), owner="vmm")
    sc = Scenario.record(ioas)
    sc.dump(tmp_path / "rec.toml")
    again = Scenario.load(tmp_path / "rec.toml").replay()
    assert diff(ioas, again).empty
    assert [(a.iova, a.length, a.prot) for a in again.areas] == [(a.iova, a.length, a.prot) for a in ioas.areas]


def test_diff_names_removed_areas_new_reservations_and_lost_ranges():
    d = diff(Scenario.load(DATA / "vtd-nic.toml"), Scenario.load(DATA / "vtd-nic-unmapped.toml"))
    assert d.areas_removed == ((0x40_0000, 0x1000, "r-"),) and d.areas_added == ()
    assert d.reserved_added == ((0x4000_0000, 0x4000_FFFF, "user"),)
    assert list(d.ranges_lost) == [il.IovaRange(0x4000_0000, 0x4000_FFFF)]
    assert "- area" in str(d) and "+ reserved" in str(d)
    df = d.to_dataframe()
    assert list(df["what"]) == ["area", "reserved", "iova_range"]


@pytest.mark.parametrize(
    "body,message",
    [
        ('[[ops]]\nop = "map"\n', "ops[0]: map needs key 'length'"),
        ('[[ops]]\nop = "fly"\n', "ops[0]: key 'op' must be one of"),
        ('[[ops]]\nop = "map"\nlength = "4K"\ncolour = "red"\n', "ops[0]: map does not take key(s) ['colour']"),
        ('[[ops]]\nop = "unmap_all"\n[[ops]]\nop = "map"\nlength = "lots"\n', "ops[1].length: expected a 64-bit address"),
        ('[[ops]]\nop = "attach"\ndevice = "ghost"\n', "ops[0].device: 'ghost' is not declared"),
        ('platform = "sparc"\n', "platform"),
        ('wat = 1\n', "unknown top-level key"),
        ('[[ops]\n', "not valid TOML"),
    ],
)
def test_bad_scenarios_name_the_file_the_op_index_and_the_key(tmp_path, body, message):
    p = _write(tmp_path, body)
    with pytest.raises(ScenarioError) as e:
        Scenario.load(p).replay()
    assert str(e.value).startswith(str(p)) and message in str(e.value)


def test_a_failing_operation_names_its_index_and_errno(tmp_path):
    p = _write(tmp_path, 'platform = "intel-vtd-48"\n[[ops]]\nop = "map"\niova = "0xfee0_0000"\nlength = "4K"\n')
    with pytest.raises(ScenarioError, match=r"ops\[0\] \(map\): EINVAL|ops\[0\] \(map\): E"):
        Scenario.load(p).replay()


def test_a_scenario_is_data_never_code(tmp_path):
    p = _write(tmp_path, '[[ops]]\nop = "map"\nlength = "__import__(\'os\').system(\'false\')"\n')
    with pytest.raises(ScenarioError, match="expected a 64-bit address"):
        Scenario.load(p)


_VALUES = st.one_of(st.sampled_from(["0x1000", "0x20_0000", "2M", "4K", "0xffff_ffff_ffff_f000", "rw", "r", "nic0", "lots", ""]),
                    st.integers(-5, 2**70), st.booleans(), st.lists(st.sampled_from(["0x0", "0xfff", "x"]), max_size=3),
                    st.just([["0x0", "0xffff"]]), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_KEYS = st.sampled_from(["iova", "length", "prot", "device", "src_iova", "ranges", "start", "last", "owner", "enabled", "user_va", "bogus"])
_OPS = st.fixed_dictionaries({"op": st.sampled_from(["attach", "detach", "map", "unmap", "unmap_all", "copy", "allow",
                                                     "reserve", "huge_pages", "walk", "fly", 3])},
                             optional={}).flatmap(lambda base: st.dictionaries(_KEYS, _VALUES, max_size=4).map(lambda extra: {**extra, **base}))


@settings(max_examples=200, deadline=None)
@given(st.lists(_OPS, max_size=6), st.sampled_from([None, "intel-vtd-48", "power9-pseries", "nope"]))
def test_any_scenario_data_replays_or_raises_scenario_error_never_crashes(ops, platform):
    data = {"devices": [{"name": "nic0"}], "ops": [{"op": "attach", "device": "nic0"}] + ops}
    if platform:
        data["platform"] = platform
    try:
        Scenario.from_dict(data, source="fuzz.toml").replay()
    except ScenarioError as e:
        assert str(e).startswith("fuzz.toml: ")


def test_a_device_not_from_the_catalogue_is_recorded_field_by_field():
    ioas = il.IOAS(permitted=il.IovaRange(0, 2**40 - 1), reserved=[il.IovaRange(0xFEE0_0000, 0xFEEF_FFFF)], pgsizes=0x201000)
    ioas.map(0x20_0000)
    ioas.allow_iovas([il.IovaRange(0x1000_0000, 0x1FFF_FFFF)])
    sc = Scenario.record(ioas)
    assert sc.devices[0]["aperture"] == [["0x0", "0xffffffffff"]] and sc.devices[0]["pgsizes"] == "0x201000"
    assert diff(ioas, Scenario.from_dict(tomllib.loads(sc.dumps())).replay()).empty


def test_a_catalogue_device_is_recorded_by_platform_name_even_with_windows():
    ioas = il.IOAS.from_platform(il.platforms.get("power9-pseries"))
    ioas.map(0x10000)
    sc = Scenario.record(ioas)
    assert sc.devices == [{"name": "dev0", "platform": "power9-pseries"}] and sc.platform == "power9-pseries"
    assert diff(ioas, Scenario.from_dict(tomllib.loads(sc.dumps())).replay()).empty
