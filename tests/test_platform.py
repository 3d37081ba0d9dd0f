"""The platform catalogue: every shipped platform's facts, its IOVA ranges, devices, GET_INFO,
DataFrames, and clear errors for malformed platform files."""

import textwrap

import pandas as pd
import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import GiB, IovaRange, KiB, MiB, RangeSet, TiB
from iommu_lab.hardware.device import Device, ReservedRegion, ResvType
from iommu_lab.hardware.platform import (
    IommuFamily,
    NestingSupport,
    Platform,
    PlatformCatalogue,
    PlatformInfo,
    Stage1Binding,
    platforms,
)

REQUIRED = {
    "intel-vtd-48",
    "intel-vtd-57",
    "amd-v1",
    "arm-smmuv3-48",
    "power9-pseries",
    "virtio-iommu-q35",
    "riscv-sv48",
}

MSI_X86 = ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")


# -- the catalogue ---------------------------------------------------------------------------


def test_catalogue_holds_every_required_platform_and_names_are_sorted():
    names = platforms.names()
    assert REQUIRED <= set(names)
    assert names == sorted(names)
    assert [p.name for p in platforms.all()] == names
    assert len(platforms) == len(names) and "amd-v1" in platforms and "nope" not in platforms


@pytest.mark.parametrize("name", sorted(REQUIRED | {"amd-v2", "riscv-sv39", "riscv-sv57", "power9-powernv"}))
def test_every_platform_loads_with_typed_fields(name):
    p = platforms.get(name)
    assert isinstance(p, Platform) and p.name == name and p.title
    assert isinstance(p.family, IommuFamily) and isinstance(p.nesting, NestingSupport)
    assert all(isinstance(w, IovaRange) for w in p.windows) and p.windows == tuple(sorted(p.windows))
    assert all(isinstance(r, ReservedRegion) for r in p.reserved)
    assert all(w.last < 1 << p.ias for w in p.windows)
    assert p.notes and p.source is not None and p.source.name == f"{name}.toml"
    assert set(p.formats) <= {"paging", "stage1", "stage2"}
    with pytest.raises(TypeError):
        p.formats["paging"] = "x"  # read-only mapping


def test_unknown_platform_is_enoent_listing_known_names():
    with pytest.raises(IommuError) as exc:
        platforms.get("power10-imaginary")
    assert exc.value.errno == "ENOENT"
    assert "'power10-imaginary'" in exc.value.message
    assert "known platforms: " in exc.value.message
    for n in platforms.names():
        assert n in exc.value.message


def test_platforms_are_cached_values():
    assert platforms.get("amd-v1") is platforms.get("amd-v1")
    assert hash(platforms.get("amd-v1")) == hash(platforms.get("amd-v1"))


# -- facts per platform --------------------------------------------------------------------


def test_intel_vtd_48_facts():
    p = platforms.get("intel-vtd-48")
    assert p.family is IommuFamily.VTD and p.ias == 48
    assert p.windows == (IovaRange(0, 2**48 - 1),)
    assert p.reserved == (MSI_X86,)
    assert p.pgsizes == 0x40201000
    assert dict(p.formats) == {"paging": "vtd-ss-4level", "stage2": "vtd-ss-4level", "stage1": "x86-64-4level"}
    assert p.nesting is NestingSupport.HARDWARE and p.stage1_binding is Stage1Binding.PGTABLE
    assert p.pasid_bits == 20 and p.dirty_tracking is True


def test_intel_vtd_57_facts():
    p = platforms.get("intel-vtd-57")
    assert p.ias == 57 and p.windows == (IovaRange(0, 0x1FFFFFFFFFFFFFF),)
    assert p.reserved == (MSI_X86,) and p.pgsizes == 0x40201000
    assert p.format_name("paging") == "vtd-ss-5level" and p.format_name("stage2") == "vtd-ss-5level"
    assert p.format_name("stage1") == "x86-64-5level"
    assert p.nesting is NestingSupport.HARDWARE and p.pasid_bits == 20 and p.dirty_tracking


def test_amd_v1_facts():
    p = platforms.get("amd-v1")
    assert p.family is IommuFamily.AMD
    assert p.pgsizes == 0x000FFF7FFFFFF000
    assert 512 * GiB & p.pgsizes == 0 and 256 * GiB & p.pgsizes and 1 * TiB & p.pgsizes
    assert p.reserved == (MSI_X86, ReservedRegion(0xFD00000000, 0xFFFFFFFFFF, "reserved"))
    assert p.windows == (IovaRange(0, 2**64 - 1),) and p.ias == 64
    assert p.format_name("stage1") == "x86-64-4level"  # the v2 guest format
    assert p.format_name("stage2").startswith("amd-v1-") and p.format_name("paging").startswith("amd-v1-")
    assert p.nesting is NestingSupport.HARDWARE and p.stage1_binding is Stage1Binding.PASID_TABLE
    assert p.pasid_bits == 16 and p.dirty_tracking


def test_amd_v2_paging_domain_is_the_lower_half_of_48_bits():
    p = platforms.get("amd-v2")
    assert p.windows == (IovaRange(0, 0x7FFFFFFFFFFF),) and p.pgsizes == 0x40201000
    assert p.format_name() == "x86-64-4level" and p.format_name("stage2").startswith("amd-v1-")


def test_arm_smmuv3_48_facts():
    p = platforms.get("arm-smmuv3-48")
    assert p.family is IommuFamily.SMMUV3 and p.ias == 48
    assert p.windows == (IovaRange(0, 0xFFFFFFFFFFFF),)
    assert p.reserved == (ReservedRegion(0x08000000, 0x080FFFFF, ResvType.SW_MSI),)
    assert p.reserved[0].type.sysfs_name == "msi"
    assert p.pgsizes == 0x40201000
    assert p.format_name("paging") == "arm-lpae-s1-4k-48bit"
    assert p.format_name("stage2") == "arm-lpae-s2-4k-48bit" and p.format_name("stage1") == "arm-lpae-s1-4k-48bit"
    assert p.nesting is NestingSupport.HARDWARE and p.stage1_binding is Stage1Binding.PASID_TABLE
    assert p.pasid_bits == 20


def test_power9_pseries_is_gibsons_example_two_windows():
    p = platforms.get("power9-pseries")
    assert p.family is IommuFamily.POWER_TCE
    # Gibson, 17 Jun 2021: "0x00000000..0x3fffffff and 0x800000000000000 .. 0x8001fffffffffff".
    assert p.windows == (IovaRange(0x0, 0x3FFFFFFF), IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF))
    assert p.windows[0].size == 1 * GiB and p.windows[1].size == 2**45 and p.windows[1].start == 2**59
    assert p.reserved == ()
    assert p.nesting is NestingSupport.NONE and p.stage1_binding is None
    assert p.pgsizes == 4 * KiB | 64 * KiB
    assert p.pasid_bits == 0 and p.dirty_tracking is False
    assert p.format_name() == "power-tce-4k"


def test_power9_pseries_seed_complement_is_the_two_holes():
    p = platforms.get("power9-pseries")
    holes = p.iova_ranges().complement()
    assert holes == RangeSet([(0x40000000, 0x07FFFFFFFFFFFFFF), (0x0800200000000000, 0xFFFFFFFFFFFFFFFF)])


def test_virtio_iommu_q35_facts():
    p = platforms.get("virtio-iommu-q35")
    assert p.family is IommuFamily.VIRTIO_IOMMU and p.ias == 39
    assert p.windows == (IovaRange(0, 0x7FFFFFFFFF),)
    assert p.reserved == (MSI_X86,)
    assert p.nesting is NestingSupport.SOFTWARE and dict(p.formats) == {}
    assert p.alignment == 4 * KiB and p.pgsizes == 0xFFFFFFFFFFFFF000


def test_riscv_facts():
    sv48 = platforms.get("riscv-sv48")
    assert sv48.family is IommuFamily.RISCV and sv48.ias == 48
    assert sv48.windows == (IovaRange(0, 0x7FFFFFFFFFFF),)  # DMA_BIT_MASK(va_bits - 1)
    assert sv48.reserved == () and sv48.pgsizes == 0x8040201000
    assert sv48.format_name() == "riscv-sv48" and sv48.nesting is NestingSupport.NONE
    sv39 = platforms.get("riscv-sv39")
    assert sv39.windows == (IovaRange(0, 0x3FFFFFFFFF),) and sv39.pgsizes == 0x40201000
    sv57 = platforms.get("riscv-sv57")
    assert sv57.windows == (IovaRange(0, 0xFFFFFFFFFFFFFF),) and sv57.pgsizes == 0x8040201000


# -- iova_ranges: what IOMMU_IOAS_IOVA_RANGES answers -------------------------------------------

IOVA_RANGES = {
    "intel-vtd-48": [(0x0, 0xFEDFFFFF), (0xFEF00000, 0xFFFFFFFFFFFF)],
    "intel-vtd-57": [(0x0, 0xFEDFFFFF), (0xFEF00000, 0x1FFFFFFFFFFFFFF)],
    "amd-v1": [(0x0, 0xFEDFFFFF), (0xFEF00000, 0xFCFFFFFFFF), (0x10000000000, 0xFFFFFFFFFFFFFFFF)],
    "amd-v2": [(0x0, 0xFEDFFFFF), (0xFEF00000, 0xFCFFFFFFFF), (0x10000000000, 0x7FFFFFFFFFFF)],
    "arm-smmuv3-48": [(0x0, 0x7FFFFFF), (0x8100000, 0xFFFFFFFFFFFF)],
    "power9-pseries": [(0x0, 0x3FFFFFFF), (0x800000000000000, 0x8001FFFFFFFFFFF)],
    "power9-powernv": [(0x0, 0x7FFFFFFF), (0x800000000000000, 0x8001FFFFFFFFFFF)],
    "virtio-iommu-q35": [(0x0, 0xFEDFFFFF), (0xFEF00000, 0x7FFFFFFFFF)],
    "riscv-sv39": [(0x0, 0x3FFFFFFFFF)],
    "riscv-sv48": [(0x0, 0x7FFFFFFFFFFF)],
    "riscv-sv57": [(0x0, 0xFFFFFFFFFFFFFF)],
}


def test_iova_ranges_table_covers_the_whole_catalogue():
    assert set(IOVA_RANGES) == set(platforms.names())


@pytest.mark.parametrize("name", sorted(IOVA_RANGES))
def test_iova_ranges_are_windows_minus_reserved(name):
    p = platforms.get(name)
    got = p.iova_ranges()
    assert isinstance(got, RangeSet)
    assert [(r.start, r.last) for r in got] == IOVA_RANGES[name]


def test_iova_ranges_keep_direct_relaxable_regions_usable(tmp_path):
    path = tmp_path / "relax.toml"
    path.write_text(
        _toml(
            reserved='reserved = [{ start = "0x0", last = "0xffffff", type = "direct-relaxable" },'
            ' { start = "0x1000000", last = "0x1ffffff", type = "direct" }]'
        )
    )
    p = platforms.load(path)
    assert p.iova_ranges() == RangeSet([(0x2000000, 0xFFFFFFFFFFFF), (0x0, 0xFFFFFF)])


def test_permitted_merges_touching_windows_but_windows_stay_separate(tmp_path):
    path = tmp_path / "touch.toml"
    path.write_text(
        _toml(windows='windows = [{ start = "0x40000000", last = "0x7fffffff" }, { start = "0x0", last = "0x3fffffff" }]')
    )
    p = platforms.load(path)
    assert p.windows == (IovaRange(0, 0x3FFFFFFF), IovaRange(0x40000000, 0x7FFFFFFF))
    assert p.permitted == RangeSet([(0, 0x7FFFFFFF)])


# -- device() and info() --------------------------------------------------------------------


def test_device_carries_the_platform_description():
    p = platforms.get("power9-pseries")
    d = p.device("phb-dev")
    assert isinstance(d, Device)
    assert d.name == "phb-dev" and d.platform == "power9-pseries" and d.format == "power-tce-4k"
    assert d.windows == p.windows and len(d.windows) == 2
    assert d.pgsizes == p.pgsizes and d.reserved == ()
    assert platforms.get("arm-smmuv3-48").device().name == "dev0"


def test_device_of_vtd_has_msi_region_and_second_stage_format():
    d = platforms.get("intel-vtd-48").device()
    assert d.reserved == (MSI_X86,) and d.format == "vtd-ss-4level"
    assert d.aperture == (IovaRange(0, 0xFFFFFFFFFFFF),) and d.pgsizes == 0x40201000


def test_device_of_virtio_iommu_has_no_page_table_format():
    assert platforms.get("virtio-iommu-q35").device().format is None


def test_info_for_vtd_answers_get_info():
    info = platforms.get("intel-vtd-48").info()
    assert isinstance(info, PlatformInfo)
    assert info.map_unmap and info.pgtable_binding and not info.pasid_table_binding
    assert info.nesting is NestingSupport.HARDWARE
    assert info.pgsizes == [4 * KiB, 2 * MiB, 1 * GiB] and info.alignment == 4 * KiB
    assert info.permitted == RangeSet([(0x0, 0xFEDFFFFF), (0xFEF00000, 0xFFFFFFFFFFFF)])
    assert info.capabilities == ("map/unmap", "pgtable binding", "nesting: hardware")
    assert info.formats["stage1"] == "x86-64-4level" and info.pasid_bits == 20 and info.dirty_tracking


def test_info_for_smmu_and_amd_binds_pasid_tables():
    for name in ("arm-smmuv3-48", "amd-v1"):
        info = platforms.get(name).info()
        assert info.pasid_table_binding and not info.pgtable_binding
        assert "pasid-table binding" in info.capabilities


def test_info_for_power_has_no_binding_and_permitted_windows_not_reserved():
    info = platforms.get("power9-pseries").info()
    assert info.map_unmap and not info.pgtable_binding and not info.pasid_table_binding
    assert info.nesting is NestingSupport.NONE
    assert info.pgsizes == [4 * KiB, 64 * KiB] and info.alignment == 4 * KiB
    assert list(info.permitted) == [IovaRange(0, 0x3FFFFFFF), IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF)]
    assert info.capabilities == ("map/unmap", "nesting: none")
    assert "0x800_0000_0000_0000" in str(info)


def test_info_for_virtio_is_software_nesting():
    info = platforms.get("virtio-iommu-q35").info()
    assert info.nesting is NestingSupport.SOFTWARE and not info.pgtable_binding
    assert info.capabilities[-1] == "nesting: software"


# -- formats per stage ----------------------------------------------------------------------


def test_format_name_for_missing_stage_is_eopnotsupp():
    with pytest.raises(IommuError) as exc:
        platforms.get("power9-pseries").format_name("stage2")
    assert exc.value.errno == "EOPNOTSUPP" and "'stage2'" in exc.value.message and "'paging'" in exc.value.message
    with pytest.raises(IommuError, match="EOPNOTSUPP.*map/unmap requests"):
        platforms.get("virtio-iommu-q35").format_name()


def test_format_name_for_unknown_stage_is_einval():
    with pytest.raises(IommuError, match=r"EINVAL: unknown stage 'stage3'; stages are 'paging'"):
        platforms.get("intel-vtd-48").format_name("stage3")


@pytest.mark.parametrize("name", platforms.names())
def test_every_format_a_platform_names_is_a_real_descriptor_of_its_width(name):
    p = platforms.get(name)
    for stage, fmt_name in p.formats.items():
        fmt = p.format(stage)
        assert fmt.name == fmt_name
        if stage == "paging" and p.family.value not in ("POWER TCE", "AMD"):
            # the domain's format must cover the platform's aperture
            assert fmt.aperture.last >= p.windows[-1].last, (stage, fmt.aperture, p.windows)


# -- DataFrames and reprs -------------------------------------------------------------------


def test_platform_dataframe_rows_and_uint64_dtypes():
    df = platforms.get("amd-v1").to_dataframe()
    assert list(df["kind"]) == ["window", "reserved", "reserved"]
    assert str(df["start"].dtype) == "UInt64" and str(df["last"].dtype) == "UInt64"
    assert int(df["last"][0]) == 2**64 - 1  # beyond int64, kept exact
    assert list(df["type"])[1:] == ["msi", "reserved"]


@pytest.mark.parametrize("name", sorted(IOVA_RANGES))
def test_platform_dataframe_addresses_are_uint64(name):
    p = platforms.get(name)
    df = p.to_dataframe()
    assert len(df) == len(p.windows) + len(p.reserved)
    assert str(df["start"].dtype) == "UInt64" and str(df["last"].dtype) == "UInt64"
    if all(w.size < 2**64 for w in p.windows):
        assert str(df["size"].dtype) == "UInt64"


def test_catalogue_dataframe_one_row_per_platform():
    df = platforms.to_dataframe()
    assert isinstance(df, pd.DataFrame)
    assert list(df["name"]) == platforms.names()
    assert str(df["pgsizes"].dtype) == "UInt64"
    row = df.set_index("name").loc["amd-v1"]
    assert int(row["pgsizes"]) == 0x000FFF7FFFFFF000 and row["nesting"] == "hardware"
    assert df.set_index("name").loc["power9-pseries", "windows"] == 2


def test_reprs_are_readable_and_html_is_themed():
    p = platforms.get("power9-pseries")
    text = repr(p)
    assert "power9-pseries" in text and "[0x800_0000_0000_0000, 0x800_1fff_ffff_ffff]" in text
    assert "nesting none" in text
    html = p._repr_html_()
    assert "il-repr" in html and "0x800_1fff_ffff_ffff" in html and "power-tce-4k" in html
    assert "power9-pseries" in repr(platforms) and "il-repr" in platforms._repr_html_()


# -- loading users' files, and every malformed case ----------------------------------------------

_BASE = {
    "name": 'name = "my-iommu"',
    "title": 'title = "test platform"',
    "family": 'family = "VT-d"',
    "ias": "ias = 48",
    "pgsizes": 'pgsizes = "0x40201000"',
    "nesting": 'nesting = "none"',
    "pasid_bits": "pasid_bits = 0",
    "dirty_tracking": "dirty_tracking = false",
    "notes": 'notes = "illustrative"',
    "windows": 'windows = [{ start = "0x0", last = "0xffffffffffff" }]',
    "reserved": 'reserved = [{ start = "0xfee00000", last = "0xfeefffff", type = "msi" }]',
    "extra": "",
    "formats": '[formats]\npaging = "vtd-ss-4level"',
}


def _toml(**override: str) -> str:
    parts = dict(_BASE)
    parts.update(override)
    formats = parts.pop("formats")
    return "\n".join(v for v in parts.values() if v) + "\n" + formats + "\n"


def test_a_users_file_loads(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(_toml())
    p = platforms.load(path)
    assert p.name == "my-iommu" and p.source == path and p.iova_ranges() == IOVA_RANGES["intel-vtd-48"]


def test_sizes_and_lists_are_accepted(tmp_path):
    path = tmp_path / "sizes.toml"
    path.write_text(
        _toml(
            pgsizes='pgsizes = ["4K", "2MiB", "1G"]',
            windows='windows = [{ start = "0x0", size = "1G" }, { start = "0x800000000000000", size = "2^45" }]',
            ias="ias = 64",
        )
    )
    p = platforms.load(path)
    assert p.pgsizes == 0x40201000
    assert p.windows == (IovaRange(0, 0x3FFFFFFF), IovaRange(0x800000000000000, 0x8001FFFFFFFFFFF))


BAD_FILES = [
    # (id, override, fragments the message must contain)
    ("malformed-toml", {"extra": "ias = = 4"}, ["not valid TOML", ":12"]),
    ("unknown-key", {"extra": 'colour = "blue"'}, ["'colour'", "unknown key", "allowed keys"]),
    ("missing-key", {"ias": ""}, ["'ias'", "missing"]),
    ("missing-notes", {"notes": ""}, ["'notes'", "missing"]),
    ("bad-hex", {"windows": 'windows = [{ start = "0x0", last = "0xffffzz" }]'}, ["'windows[0].last'", "'0xffffzz'", "not an address"]),
    ("int-address", {"windows": "windows = [{ start = 0, last = 4095 }]"}, ["'windows[0].start'", "quoted hex string"]),
    ("reversed-range", {"windows": 'windows = [{ start = "0x2000", last = "0x0fff" }]'}, ["'windows[0].last'", "below start"]),
    ("last-and-size", {"windows": 'windows = [{ start = "0x0", last = "0xfff", size = "4K" }]'}, ["'windows[0]'", "exactly one of 'last'"]),
    ("unknown-window-key", {"windows": 'windows = [{ start = "0x0", end = "0xfff" }]'}, ["'windows[0].end'", "unknown key"]),
    (
        "overlapping-windows",
        {"windows": 'windows = [{ start = "0x0", last = "0x3fffffff" }, { start = "0x20000000", last = "0x4fffffff" }]'},
        ["'windows'", "overlap"],
    ),
    ("empty-windows", {"windows": "windows = []"}, ["'windows'", "non-empty"]),
    ("window-beyond-ias", {"windows": 'windows = [{ start = "0x0", last = "0x1ffffffffffff" }]'}, ["'windows[0]'", "48-bit input space"]),
    ("misaligned-window", {"windows": 'windows = [{ start = "0x0", last = "0x7ff" }]'}, ["'windows[0]'", "not aligned", "4 KiB"]),
    ("unknown-reserved-type", {"reserved": 'reserved = [{ start = "0x0", last = "0xfff", type = "mmio" }]'}, ["'reserved[0].type'", "'mmio'", "'direct-relaxable'", "'sw-msi'"]),
    ("missing-reserved-type", {"reserved": 'reserved = [{ start = "0x0", last = "0xfff" }]'}, ["'reserved[0].type'", "missing"]),
    ("unknown-family", {"family": 'family = "Alpha"'}, ["'family'", "'Alpha'", "'VT-d'", "'POWER TCE'"]),
    ("unknown-nesting", {"nesting": 'nesting = "partial"'}, ["'nesting'", "'partial'", "'hardware'", "'software'", "'none'"]),
    ("ias-out-of-range", {"ias": "ias = 65"}, ["'ias'", "1..64"]),
    ("ias-not-int", {"ias": 'ias = "48"'}, ["'ias'", "integer"]),
    ("pasid-too-wide", {"pasid_bits": "pasid_bits = 21"}, ["'pasid_bits'", "0..20"]),
    ("dirty-not-bool", {"dirty_tracking": 'dirty_tracking = "yes"'}, ["'dirty_tracking'", "true or false"]),
    ("pgsizes-zero", {"pgsizes": 'pgsizes = "0x0"'}, ["'pgsizes'", "no page size"]),
    ("pgsizes-size-string", {"pgsizes": 'pgsizes = "4K"'}, ["'pgsizes'", "bitmap in hex"]),
    ("pgsize-not-power-of-two", {"pgsizes": 'pgsizes = ["4K", "12K"]'}, ["'pgsizes[1]'", "power of two"]),
    ("unknown-format", {"formats": '[formats]\npaging = "vtd-ss-6level"'}, ["'formats.paging'", "'vtd-ss-6level'", "riscv-sv39, riscv-sv48, riscv-sv57"]),
    ("format-of-other-family", {"formats": '[formats]\npaging = "riscv-sv48"'}, ["'formats.paging'", "family 'VT-d'"]),
    ("unknown-stage", {"formats": '[formats]\nstage3 = "vtd-ss-4level"'}, ["'formats.stage3'", "unknown key", "paging, stage2, stage1"]),
    (
        "hardware-nesting-without-stage1",
        {"nesting": 'nesting = "hardware"', "extra": 'stage1_binding = "pgtable"', "formats": '[formats]\nstage2 = "vtd-ss-4level"'},
        ["'formats.stage1'", "hardware nesting"],
    ),
    (
        "hardware-nesting-without-binding",
        {"nesting": 'nesting = "hardware"', "formats": '[formats]\nstage1 = "x86-64-4level"\nstage2 = "vtd-ss-4level"'},
        ["'stage1_binding'", "'pasid-table'"],
    ),
    ("binding-without-nesting", {"extra": 'stage1_binding = "pgtable"'}, ["'stage1_binding'", "only allowed"]),
    ("stage2-without-nesting", {"formats": '[formats]\nstage2 = "vtd-ss-4level"'}, ["'formats.stage2'", "nesting = \"none\""]),
    ("bad-name", {"name": 'name = "My IOMMU"'}, ["'name'", "lower-case"]),
]


@pytest.mark.parametrize("override, fragments", [(o, f) for _, o, f in BAD_FILES], ids=[i for i, _, _ in BAD_FILES])
def test_malformed_platform_file_names_file_and_key(tmp_path, override, fragments):
    path = tmp_path / "broken.toml"
    path.write_text(_toml(**override))
    with pytest.raises(IommuError) as exc:
        platforms.load(path)
    assert exc.value.errno == "EINVAL"
    assert str(path) in exc.value.message
    for frag in fragments:
        assert frag in exc.value.message, (frag, exc.value.message)


def test_missing_file_is_enoent(tmp_path):
    with pytest.raises(IommuError) as exc:
        platforms.load(tmp_path / "absent.toml")
    assert exc.value.errno == "ENOENT" and "absent.toml" in exc.value.message


def test_catalogue_file_name_must_match_platform_name(tmp_path):
    (tmp_path / "other-name.toml").write_text(_toml())
    cat = PlatformCatalogue(tmp_path)
    with pytest.raises(IommuError, match=r"other-name.toml: key 'name': 'my-iommu' must match the file name 'other-name'"):
        cat.names()


def test_a_private_catalogue_directory_loads_its_files(tmp_path):
    (tmp_path / "my-iommu.toml").write_text(_toml())
    cat = PlatformCatalogue(tmp_path)
    assert cat.names() == ["my-iommu"] and cat.get("my-iommu").ias == 48
    with pytest.raises(IommuError, match="known platforms: my-iommu"):
        cat.get("intel-vtd-48")


def test_data_files_contain_no_code():
    # Guard against a data file growing anything other than plain TOML values.
    for p in platforms.all():
        text = p.source.read_text()
        for word in ("import ", "eval(", "exec(", "__"):
            assert word not in text, (p.source, word)


def test_readme_cites_every_platform():
    readme = (platforms.directory / "README.md").read_text()
    for name in platforms.names():
        assert f"### {name}" in readme, name


def test_schema_example_in_docstring_matches(tmp_path):
    # The README's schema example must load as written.
    readme = (platforms.directory / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.toml"
    path.write_text(textwrap.dedent(block))
    assert platforms.load(path).name == "example-iommu"


def test_nesting_hint_is_a_platform_fact_only_where_nesting_is_not_hardware(tmp_path):
    """Every platform without hardware nesting says what it offers instead; a hardware-nesting
    platform may not carry a hint (it would contradict its nested domain)."""
    for p in platforms.all():
        assert bool(p.nesting_hint) == (p.nesting.value != "hardware"), p.name
    src = (platforms.directory / "intel-vtd-48.toml").read_text()
    bad = tmp_path / "intel-vtd-48.toml"
    bad.write_text(src.replace('nesting = "hardware"', 'nesting = "hardware"\nnesting_hint = "x"'))
    with pytest.raises(IommuError, match="nesting_hint"):
        platforms.load(bad)


def test_power_windows_each_have_their_own_tce_size():
    """pseries: the default 32-bit window has 4 KiB TCEs (iommu_table_setparms_lpar), the DDW the
    hypervisor's largest, 64 KiB on QEMU sPAPR (enable_ddw -> iommu_get_page_shift)."""
    p = platforms.get("power9-pseries")
    assert p.window_pgsizes == (4 * KiB, 64 * KiB)
    assert p.window_page_size(0x1000) == 4 * KiB and p.window_page_size(1 << 59) == 64 * KiB
    low, ddw = p.window_format(0x1000), p.window_format(1 << 59)
    assert low.pgsize_bitmap == 4 * KiB and low.va_base == 0 and low.table_bytes(0) == 8 * (GiB // (4 * KiB))
    assert ddw.pgsize_bitmap == 64 * KiB and ddw.va_base == 1 << 59
    assert ddw.table_bytes(0) == 8 << (45 - 16)  # 2^45 window / 64 KiB TCEs x 8 bytes
    # mapping in the default window writes 4 KiB TCEs
    from iommu_lab.pagetable.table import PageTable

    pt = PageTable(low)
    pt.map(0x10000, 0x2000_0000, 64 * KiB)
    assert len(pt.walk(0x10000).refs) == 1 and pt.walk(0x1f000).page_size == 4 * KiB
    with pytest.raises(IommuError, match="no window"):
        p.window_page_size(GiB)  # between the windows
    assert platforms.get("intel-vtd-48").window_page_size(0x1000) == 4 * KiB  # one radix table


def test_window_page_size_must_be_a_platform_size_and_fit_the_window(tmp_path):
    src = (platforms.directory / "power9-pseries.toml").read_text()
    for old, new, word in [('page_size = "64K"', 'page_size = "2M"', "not one of"),
                           (", page_size = \"4K\"", "", "every window or for none")]:
        bad = tmp_path / "power9-pseries.toml"
        bad.write_text(src.replace(old, new))
        with pytest.raises(IommuError, match=word):
            platforms.load(bad)
