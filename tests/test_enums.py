"""One rule for reading enum members from text: every enum that parses names agrees on it."""

import pytest

from iommu_lab.core.enums import member_of
from iommu_lab.dma.caches import Replacement
from iommu_lab.dma.replay import FlushPolicy
from iommu_lab.hardware.device import ResvType
from iommu_lab.hardware.platform import IommuFamily, NestingSupport
from iommu_lab.iommufd.type1 import Semantics


@pytest.mark.parametrize("cls", [IommuFamily, NestingSupport, Replacement, ResvType, Semantics, FlushPolicy])
def test_every_member_parses_from_its_value_in_any_case(cls):
    for m in cls:
        assert cls.parse(m.value) is m if hasattr(cls, "parse") else True
        assert member_of(cls, f"  {str(m.value).upper()} ", "x") is m
        assert member_of(cls, m, "x") is m


def test_errors_name_the_thing_the_value_and_every_allowed_value():
    with pytest.raises(ValueError, match=r"unknown flush policy 'eager'; allowed: 'strict', 'lazy'"):
        member_of(FlushPolicy, "eager", "flush policy")
    with pytest.raises(TypeError, match=r"flush policy must be one of 'strict', 'lazy', got int 3"):
        member_of(FlushPolicy, 3, "flush policy", non_text=TypeError)
    with pytest.raises(ValueError, match="got int 3"):
        member_of(FlushPolicy, 3, "flush policy")


def test_underscores_read_as_dashes_only_where_asked():
    assert member_of(ResvType, "SW_MSI", "type", underscores=True) is ResvType.parse("sw-msi")
    with pytest.raises(ValueError):
        member_of(ResvType, "sw_msi", "type")
