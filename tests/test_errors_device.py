"""IommuError carries the kernel's errno; devices validate windows, page sizes and regions."""

import errno

import pytest

import iommu_lab as il
from iommu_lab.core.errors import IommuError
from iommu_lab.hardware.device import ResvType, pgsizes_list


def test_error_carries_errno_name_number_and_message():
    e = IommuError("EOVERFLOW", "iova 0xffff_ffff_ffff_f000 + length 0x2000 wraps past 2^64")
    assert e.errno == "EOVERFLOW" and e.code == errno.EOVERFLOW
    assert str(e).startswith("EOVERFLOW: iova 0xffff")


def test_unknown_errno_name_is_refused():
    with pytest.raises(ValueError, match="unknown errno name"):
        IommuError("EWHATEVER", "x")


def test_every_errno_the_issue_names_exists():
    for name in ["EINVAL", "ENOENT", "EEXIST", "ENOSPC", "EOVERFLOW", "EBUSY", "EADDRINUSE", "EPERM", "EMSGSIZE", "EOPNOTSUPP"]:
        assert IommuError(name, "m").code == getattr(errno, name)


def test_reserved_region_types_and_sysfs_names():
    assert ResvType.SW_MSI.sysfs_name == "msi" and ResvType.MSI.sysfs_name == "msi"
    assert not ResvType.DIRECT_RELAXABLE.becomes_hole and ResvType.DIRECT.becomes_hole
    r = il.ReservedRegion(0xFEE00000, 0xFEEFFFFF, "msi")
    assert r.type is ResvType.MSI and r.size == 1 << 20
    with pytest.raises(ValueError, match="unknown reserved-region type 'mmio'"):
        il.ReservedRegion(0, 1, "mmio")


def test_device_keeps_touching_windows_separate():
    d = il.Device("phb0", aperture=[il.IovaRange(0x40000000, 0x7FFFFFFF), il.IovaRange(0, 0x3FFFFFFF)])
    assert d.windows == (il.IovaRange(0, 0x3FFFFFFF), il.IovaRange(0x40000000, 0x7FFFFFFF))
    assert d.permitted == il.RangeSet(["0x0..0x7fffffff"])


def test_device_rejects_overlapping_windows_and_empty_pgsizes():
    with pytest.raises(ValueError, match="overlap"):
        il.Device("x", aperture=[il.IovaRange(0, 0x2000), il.IovaRange(0x1000, 0x3000)])
    with pytest.raises(ValueError, match="has no page size"):
        il.Device("x", pgsizes=0)


def test_min_pgsize_is_lowest_set_bit():
    d = il.Device("nic0", pgsizes=0x40201000)
    assert d.min_pgsize == 0x1000
    assert pgsizes_list(0x40201000) == [0x1000, 0x200000, 0x40000000]
