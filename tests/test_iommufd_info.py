"""The seed's GET_INFO answered from IOMMU_GET_HW_INFO: capabilities a device reports, and a
readable IoasInfo."""

from __future__ import annotations

import dataclasses

from iommu_lab.hardware.platform import NestingSupport, platforms
from iommu_lab.hardware.registers import HW_CAP_DIRTY_TRACKING, hw_info
from iommu_lab.iommufd import IOAS


def test_capabilities_carry_get_hw_info_dirty_tracking_and_pasid_width():
    for name in ("intel-vtd-48", "arm-smmuv3-48", "amd-v1", "riscv-sv39", "power9-pseries"):
        caps = IOAS.from_platform(name).info().capabilities
        hw = hw_info(platforms.get(name))
        assert caps.dirty_tracking == bool(hw.out_capabilities & HW_CAP_DIRTY_TRACKING)
        assert caps.max_pasid_log2 == hw.out_max_pasid_log2
    vtd = IOAS.from_platform("intel-vtd-48").info().capabilities
    assert vtd.dirty_tracking and vtd.max_pasid_log2 == 20 and vtd.nesting == "hardware"


def test_a_vtd_without_ssads_or_nest_reports_neither():
    plain = dataclasses.replace(platforms.get("intel-vtd-48"), name="vtd-plain", dirty_tracking=False,
                                nesting=NestingSupport.SOFTWARE)
    caps = IOAS.from_platform(plain).info().capabilities
    assert not caps.dirty_tracking
    assert caps.nesting == "software" and not caps.pgtable_binding  # ECAP.NEST clear: the declared value


def test_ioas_info_reads_page_sizes_in_words():
    text = str(IOAS.from_platform("intel-vtd-48").info())
    assert "4 KiB, 2 MiB, 1 GiB" in text and "1075843072" not in text
    assert "dirty tracking" in text and "20-bit PASIDs" in text
    assert "every power of two from 1 B" in str(IOAS().info())
