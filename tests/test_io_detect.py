"""One detector: every kind of file is named by its content and read, or refused as not read yet."""

from pathlib import Path

import pytest

from iommu_lab.io import Kind, NotReadYet, read
from iommu_lab.io.detect import detect

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.mark.parametrize("rel,kind", [
    ("sysfs/intel-host/iommu_groups/1/reserved_regions", Kind.RESERVED_REGIONS),
    ("sysfs/intel-host/iommu_groups", Kind.GROUPS_TREE),
    ("sysfs/listings/find-iommu_groups.txt", Kind.GROUP_LISTING),
    ("sysfs/listings/wiki-iommu_groups.txt", Kind.GROUP_LISTING),
    ("sysfs/listings/wiki-oneline-iommu_groups.txt", Kind.GROUP_LISTING),
    ("debugfs/domain_translation_struct", Kind.DOMAIN_TRANSLATION),
    ("debugfs/v6.7/0000-00-02.0_domain_translation_struct", Kind.DOMAIN_TRANSLATION),
    ("debugfs/v6.7/abi-doc-split_domain_translation_struct", Kind.DOMAIN_TRANSLATION),
    ("debugfs/v6.7/passthrough_domain_translation_struct", Kind.DOMAIN_TRANSLATION),
    ("debugfs/v6.7/disabled_domain_translation_struct", Kind.DOMAIN_TRANSLATION),
    ("debugfs/dmar_translation_struct", Kind.DMAR_TRANSLATION),
    ("debugfs/v6.7/iommu_regset", Kind.IOMMU_REGSET),
    ("amd/devtbl", Kind.AMD_DEVTBL),
    ("amd/mmio", Kind.AMD_REGISTER),
    ("amd/capability", Kind.AMD_REGISTER),
    ("dmesg/smmuv3.log", Kind.DMESG),
    ("dmesg/amd-4.x.log", Kind.DMESG),
])
def test_each_fixture_is_read_as_its_kind(rel, kind):
    assert read(DATA / rel).kind is kind


@pytest.mark.parametrize("rel,words", [("debugfs/invalidation_queue", "Intel invalidation_queue"),
                                       ("amd/cmdbuf", "AMD cmdbuf")])
def test_kinds_without_a_reader_say_so(rel, words):
    with pytest.raises(NotReadYet, match=f"this is an {words} dump; not read yet"):
        read(DATA / rel)


def test_empty_file_is_named_not_misread(tmp_path):
    (tmp_path / "x").write_text("")
    got = read(tmp_path / "x")
    assert got.kind is Kind.EMPTY and "pass-through" in got.note
    assert detect("") is Kind.EMPTY


def test_group_listings_read_as_groups_with_sysfs_device_names():
    groups = read(DATA / "sysfs/listings/wiki-iommu_groups.txt").value
    assert [g.devices for g in groups] == [("0000:00:02.0",), ("0000:00:1f.0", "0000:00:1f.3")]
    assert "HD Graphics 630" in groups[0].descriptions[0]


def test_relaxable_regions_stay_in_the_layout_marked_not_enforced():
    from iommu_lab.io.sysfs import RegionLayout

    (g1,) = [g for g in read(DATA / "sysfs/intel-host/iommu_groups").value if g.number == 1]
    lay = RegionLayout.of_group(g1)
    df = lay.to_dataframe()
    assert list(df["type"]) == ["direct-relaxable", "msi"] and list(df["enforced"]) == [False, True]
    assert "not enforced" in lay.title


def test_the_software_msi_window_is_software_msi_by_default_and_can_be_said_otherwise():
    from iommu_lab.hardware.device import ResvType
    from iommu_lab.io import parse_reserved_regions

    text = "0x0000000008000000 0x00000000080fffff msi\n0x0000000010000000 0x0000000010000fff msi\n"
    assert [r.type for r in parse_reserved_regions(text)] == [ResvType.SW_MSI, ResvType.MSI]
    assert {r.type for r in parse_reserved_regions(text, msi_type="hardware")} == {ResvType.MSI}
    assert {r.type for r in parse_reserved_regions(text, msi_type="software")} == {ResvType.SW_MSI}
