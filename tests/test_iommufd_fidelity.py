"""IOAS rules checked against the kernel source, each where it changed or where the model was wrong."""

from __future__ import annotations

import pytest

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware.device import Device
from iommu_lab.iommufd import IOAS


def errno_of(call, *args, **kwargs) -> str:
    with pytest.raises(IommuError) as info:
        call(*args, **kwargs)
    return info.value.errno


#: A length above SIZE_MAX - PAGE_SIZE whose end also wraps from a user VA of one page.
HUGE = 0xFFFF_FFFF_FFFF_F800


def test_map_checks_the_va_wrap_before_the_length_since_6_13():
    """iopt_alloc_user_pages (6.13) checks uptr + length before iopt_alloc_pages checks length."""
    assert errno_of(IOAS().map, HUGE, user_va=0x1000) == "EOVERFLOW"


@pytest.mark.parametrize("kernel", ["6.6", "6.12"])
def test_map_checks_the_length_first_on_older_kernels(kernel):
    assert errno_of(IOAS(kernel=kernel).map, HUGE, user_va=0x1000) == "EINVAL"


def test_map_wrap_with_a_valid_length_is_eoverflow_on_every_kernel():
    for kernel in ("6.6", "mainline"):
        assert errno_of(IOAS(kernel=kernel).map, 0x2000, user_va=0xFFFF_FFFF_FFFF_F000) == "EOVERFLOW"


@pytest.mark.parametrize("semantics, source", [("vfio-compat", "iommufd_vfio_map_dma"),
                                               ("type1", "vfio_iommu_type1_map_dma")])
def test_unknown_vfio_map_flag_bits_are_einval(semantics, source):
    ioas = IOAS(semantics=semantics)
    with pytest.raises(IommuError) as info:
        ioas.map(0x1000, 0x1000, user_va=0x1000, prot=0x13)
    assert info.value.errno == "EINVAL" and source in str(info.value)
    assert ioas.areas == ()


def test_unknown_ioas_map_flag_bits_stay_eopnotsupp():
    assert errno_of(IOAS().map, 0x1000, 0x1000, prot=0x13) == "EOPNOTSUPP"


def test_compat_page_sizes_fold_sub_page_sizes_up_to_page_size():
    """iommufd_get_pagesizes: a mock domain's 0x800 becomes PAGE_SIZE."""
    ioas = IOAS(semantics="vfio-compat")
    ioas.attach(Device("mock", pgsizes=0x800 | 0x100000))
    assert ioas.info().pgsizes == 0x1000 | 0x100000


def test_compat_page_sizes_without_a_device_are_every_size_from_page_size():
    assert IOAS(semantics="vfio-compat").info().pgsizes == 0xFFFF_FFFF_FFFF_F000


def test_iommufd_page_sizes_keep_their_own_rule():
    ioas = IOAS()
    ioas.attach(Device("mock", pgsizes=0x800 | 0x100000))
    assert ioas.info().pgsizes == 0x800 | 0x100000


def test_type1_dma_entry_limit_is_checked_before_anything():
    with pytest.raises(TypeError, match="dma_entry_limit"):
        IOAS(semantics="type1", dma_entry_limit="many")
    with pytest.raises(ValueError, match="0..0xffffffff"):
        IOAS(semantics="type1", dma_entry_limit=-1)
    assert IOAS(semantics="type1", dma_entry_limit=0xFFFF_FFFF).info().max_mappings == 0xFFFF_FFFF
