"""IOMMU_GET_HW_INFO both ways: registers a device reports, and registers decoded back."""

from __future__ import annotations

import struct

import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware import registers as R
from iommu_lab.hardware.platform import NestingSupport, platforms


@pytest.mark.parametrize("name", platforms.names())
def test_every_platform_round_trips_through_its_registers(name):
    p = platforms.get(name)
    info = R.hw_info(p)
    d = info.decoded()
    if info.type is R.HwInfoType.NONE:
        assert info.data_len == 0 and info.to_bytes() == b"" and d.ias is None
        return
    assert d.ias >= p.ias or p.ias == 64
    assert d.pgsizes & p.format("paging").pgsize_bitmap & 0xFFFFF000
    assert d.nesting == (p.nesting is NestingSupport.HARDWARE)
    assert d.dirty_tracking == p.dirty_tracking
    assert bool(info.out_capabilities & R.HW_CAP_DIRTY_TRACKING) == p.dirty_tracking
    assert len(info.to_bytes()) == info.data_len


def test_vtd_struct_layout_matches_the_uapi():
    info = R.hw_info("intel-vtd-48")
    flags, rsv, cap, ecap = struct.unpack("<IIQQ", info.to_bytes())
    assert info.data_len == 24 and rsv == 0
    assert flags == R.VTD_ERRATA_772415_SPR17
    assert (cap >> 16) & 0x3F == 47  # cap_mgaw - 1
    assert (ecap >> 45) & 1 == 1  # ecap_slads: dirty tracking
    assert (ecap >> 35) & 0x1F == 19  # ecap_pss: 20-bit PASIDs
    assert info.out_max_pasid_log2 == 20  # ilog2(2 << pss)


def test_smmu_struct_is_forty_bytes_with_six_idrs():
    info = R.hw_info("arm-smmuv3-48")
    words = struct.unpack("<II6III", info.to_bytes())
    assert info.data_len == 40
    idr0, idr1, idr5 = words[2], words[3], words[7]
    assert (idr0 >> 6) & 3 == 2  # HTTU access+dirty
    assert idr0 & 3 == 3  # S1P and S2P
    assert (idr1 >> 6) & 0x1F == 20  # SSIDSIZE
    assert idr5 & 7 == 5 and (idr5 >> 4) & 1  # OAS 48 bits, 4K granule


def test_amd_reports_pasmax_not_the_pasid_width():
    info = R.hw_info("amd-v1")
    efr = info.data["efr"]
    assert (efr >> 32) & 0x1F == 15 and (efr >> 52) & 1  # PASMAX, HDSUP
    # max_pasids = (1 << (PASMAX + 1)) - 1, so ilog2 gives PASMAX: one less than 16 bits
    assert info.out_max_pasid_log2 == 15


def test_pasid_capabilities_need_pasid_enabled():
    on = R.hw_info("intel-vtd-48", pasid_exec=True, pasid_priv=True)
    assert on.capabilities == ("DIRTY_TRACKING", "PCI_PASID_EXEC", "PCI_PASID_PRIV")
    off = R.hw_info("intel-vtd-48", device_pasid_bits=0, pasid_exec=True)
    assert off.out_max_pasid_log2 == 0 and off.out_capabilities == R.HW_CAP_DIRTY_TRACKING
    narrow = R.hw_info("intel-vtd-48", device_pasid_bits=8)
    assert narrow.out_max_pasid_log2 == 8
    assert R.hw_info("intel-vtd-48", ats=False).out_capabilities & R.HW_CAP_PCI_ATS_NOT_SUPPORTED


def test_copy_out_truncates_and_zero_fills_like_get_hw_info():
    info = R.hw_info("intel-vtd-48")
    short, kernel_len = info.copy_out(8)
    assert kernel_len == 24 and short == info.to_bytes()[:8]
    long, _ = info.copy_out(32)
    assert long[:24] == info.to_bytes() and long[24:] == bytes(8)
    assert info.copy_out(0) == (b"", 24)


def test_decoding_a_real_legacy_mode_cap_pair():
    # A client-class VT-d unit without scalable mode: 39-bit, 2M/1G, no nesting.
    d = R.decode("INTEL_VTD", cap_reg=0x00D2008C40660462, ecap_reg=0x0000000000F0101A)
    assert d.ias == 39 and d.pgsizes == 0x40201000
    assert not d.nesting and not d.dirty_tracking and d.pasid_log2 == 0
    assert d.fields["cap_reg"]["SAGAW"] == 0b00100
    assert any(row[1] == "SSADS" for row in d.table())


def test_decode_of_smmu_and_amd_fields():
    d = R.decode("ARM_SMMUV3", idr=(0b11 | (2 << 6) | (1 << 4), 20 << 6, 0, 0, 0, 5 | (1 << 4)))
    assert d.ias == 48 and d.nesting and d.dirty_tracking and d.pasid_log2 == 20
    a = R.decode("AMD", efr=(1 << 52) | (1 << 4) | (1 << 48) | (15 << 32) | (2 << 10))
    assert a.nesting and a.dirty_tracking and a.pasid_log2 == 15 and a.ias == 64


def test_parse_regset_reads_cap_and_ecap():
    text = """IOMMU: dmar0 Register Base Address: 0xfed90000
Name			Offset		Contents
VER			0x00		0x0000000000000010
CAP			0x08		0x00d2008c40660462
ECAP			0x10		0x0000000000f0101a
IOMMU: dmar1 Register Base Address: 0xfed91000
CAP			0x08		0x0000000000000000
"""
    regs = R.parse_regset(text)
    assert regs == {"cap_reg": 0x00D2008C40660462, "ecap_reg": 0xF0101A}
    assert R.decode("INTEL_VTD", **regs).ias == 39


def test_compatibility_reasons():
    ok = R.check_host("intel-vtd-48", R.VIommuRequest(aw_bits=48, dirty_tracking=True, dirty_on_nest_parent=True))
    assert ok.ok, str(ok)
    too_wide = R.check_host("intel-vtd-48", R.VIommuRequest(aw_bits=57))
    assert not too_wide.ok and "aw-bits 57" in too_wide.failures[0]
    ro = R.check_host("intel-vtd-57", R.VIommuRequest(readonly_on_parent=True))
    assert [f.split(":")[0] for f in ro.failures] == ["read-only on nest parent"]
    smmu = R.check_host("arm-smmuv3-48", R.VIommuRequest(dirty_on_nest_parent=True))
    assert [f.split(":")[0] for f in smmu.failures] == ["dirty on nest parent"]
    none = R.check_host("riscv-sv48")
    assert not none.ok and "type NONE" in none.failures[0]
    pasid = R.check_host("amd-v1", R.VIommuRequest(pasid_bits=16))
    assert "PASID width" in pasid.failures[0]


def test_caching_mode_host_cannot_nest():
    info = R.hw_info("intel-vtd-48")
    cm = R.HwInfo(info.platform, info.type, {**info.data, "cap_reg": info.data["cap_reg"] | (1 << 7)},
                  info.out_capabilities, info.out_max_pasid_log2)
    res = R.check_host(cm)
    assert not res.ok and "CAP.CM = 1" in res.failures[0]


def test_bad_registers_are_refused_with_the_field_named():
    with pytest.raises(IommuError) as e:
        R.decode("INTEL_VTD", cap_reg=1 << 64)
    assert e.value.errno == "EINVAL" and "cap_reg" in str(e.value)
    with pytest.raises(IommuError, match="no register"):
        R.decode("AMD", cap_reg=0)
