"""A nest parent allocated on an IOAS, and a nested domain built on it."""

import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware.platform import platforms
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.nesting.nested import NestingCapability, NestParent, Stage

MiB = 1 << 20


def test_nest_parent_is_filled_from_the_ioas_and_follows_its_maps():
    ioas = IOAS.from_platform(platforms.get("intel-vtd-48"))
    assert ioas.info().capabilities.nesting == "hardware"
    ioas.map(16 * MiB, iova=0)  # guest RAM: GPA [0, 16 MiB)
    parent = NestParent(ioas)
    assert parent.capability is NestingCapability.HARDWARE
    assert parent not in ioas.domains  # user-allocated, not the attach-time auto domain
    assert parent.table.fmt.name == "vtd-ss-4level"
    assert parent.table.walk(0xAB_CDEF).ok
    ioas.map(2 * MiB, iova=0x4000_0000)  # a later IOAS map reaches the parent
    parent.sync()
    assert parent.table.walk(0x4000_0000).ok
    ioas.unmap(0x4000_0000, 2 * MiB)
    parent.sync()
    assert not parent.table.walk(0x4000_0000).ok


def test_unmapping_other_guest_ram_keeps_the_tables_and_faults_on_the_hole():
    ioas = IOAS.from_platform(platforms.get("intel-vtd-48"))
    ioas.map(4 * MiB, iova=0)  # guest RAM holding the guest's tables
    ioas.map(2 * MiB, iova=4 * MiB)  # more guest RAM, for data
    nested = NestParent(ioas).nested()
    nested.map(0x4000_0000, 0x10_0000, 0x1000)
    nested.map(0x4000_1000, 4 * MiB, 0x1000)
    before = nested.walk(0x4000_0000).output
    ioas.unmap(4 * MiB, 2 * MiB)  # the walk syncs the parent first
    assert nested.walk(0x4000_0000).output == before
    f = nested.walk(0x4000_1000).fault
    assert f.stage is Stage.STAGE2 and f.address == 4 * MiB  # the host's fault: its GPA is gone


def test_nested_domain_on_the_parent_translates_through_both_stages():
    ioas = IOAS.from_platform(platforms.get("arm-smmuv3-48"))
    ioas.map(16 * MiB, iova=0)
    parent = NestParent(ioas)
    nested = parent.nested()
    nested.map(0x4000_0000, 0x10_0000, 0x1000)
    w = nested.walk(0x4000_0123)
    assert w.ok and w.gpa == 0x10_0123
    assert w.output == parent.table.walk(0x10_0123).pa
    assert w.count(Stage.STAGE1) == 4 and w.count(Stage.STAGE2) > 0


@pytest.mark.parametrize(
    "name, word", [("virtio-iommu-q35", "software nesting only"), ("power9-pseries", "no nesting")]
)
def test_platforms_without_hardware_nesting_cannot_allocate_a_parent(name, word):
    ioas = IOAS.from_platform(platforms.get(name))
    with pytest.raises(IommuError) as e:
        NestParent(ioas)
    assert e.value.errno == "EOPNOTSUPP" and word in str(e.value)


def test_a_first_stage_format_cannot_be_the_parent():
    ioas = IOAS.from_platform(platforms.get("intel-vtd-48"))
    with pytest.raises(IommuError) as e:
        NestParent(ioas, fmt="x86-64-4level")
    assert e.value.errno == "EOPNOTSUPP" and "second-stage" in str(e.value)


def test_nesting_on_an_empty_ioas_is_enoent():
    parent = NestParent(IOAS.from_platform(platforms.get("intel-vtd-48")))
    with pytest.raises(IommuError) as e:
        parent.nested()
    assert e.value.errno == "ENOENT"
