"""What each IOMMU driver's ``iommu_ops`` answer when iommufd asks for a domain or a vIOMMU.

iommufd checks the generic rules and then asks the driver: ``domain_alloc_paging_flags`` for a
HWPT_PAGING, ``domain_alloc_nested`` for a HWPT_NESTED on a parent (VT-d), or a vIOMMU's
``alloc_domain_nested`` for one made through a vIOMMU (SMMUv3, AMD). A driver is a small
declarative record: the flag combinations its paging allocator takes (each switch case of the
real function), whether it nests on a parent or through a vIOMMU, the data and vIOMMU types it
takes. The capabilities that vary per machine (nesting, dirty tracking, PASID width) are read
from the platform, never assumed from the driver.

Sources: drivers/iommu/intel/iommu.c ``intel_iommu_domain_alloc_paging_flags`` (first stage
refuses every flag but PASID, so NEST_PARENT and DIRTY_TRACKING go to
``intel_iommu_domain_alloc_second_stage``, which needs ``nested_supported`` /
``ssads_supported``), drivers/iommu/intel/nested.c ``intel_iommu_domain_alloc_nested``;
drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c ``arm_smmu_domain_alloc_paging_flags`` (dirty
tracking is a stage-1 HTTU feature, so NEST_PARENT|DIRTY_TRACKING falls to ``default:`` →
EOPNOTSUPP) and arm-smmu-v3-iommufd.c ``arm_vsmmu_alloc_domain_nested``;
drivers/iommu/amd/iommu.c ``amd_iommu_domain_alloc_paging_flags`` (v1 table for DIRTY_TRACKING
and/or NEST_PARENT, v2 for PASID, nothing else) and amd/nested.c.

The SMMUv3 cases were read against ``arm_smmu_domain_alloc_paging_flags``' switch: ``case 0`` and
``case IOMMU_HWPT_ALLOC_PASID`` (the default stage), ``case IOMMU_HWPT_ALLOC_NEST_PARENT`` (needs
ARM_SMMU_FEAT_NESTING; ``smmu_domain->stage = ARM_SMMU_DOMAIN_S2``, ``nest_parent = true``),
``case IOMMU_HWPT_ALLOC_DIRTY_TRACKING`` and ``DIRTY_TRACKING | PASID`` (a stage-1 domain with
the HD quirk), ``default:`` EOPNOTSUPP; and against arm-smmu-v3-iommufd.c ``arm_vsmmu_alloc``
(EOPNOTSUPP for any type but IOMMU_VIOMMU_TYPE_ARM_SMMUV3; the S2 parent must belong to the same
SMMU). VT-d's nest parent refuses read-only maps (``__domain_mapping``: ``!(prot &
DMA_PTE_WRITE) && domain->nested_parent`` → EINVAL, ERRATA_772415_SPR17; generic_pt keeps the
rule as PT_FEAT_VTDSS_FORCE_WRITEABLE in ``vtdss_pt_iommu_set_prot``), which the IOAS enforces on
every map into an IOAS that holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iommu_lab.hardware import formats as _formats
from iommu_lab.hardware.dirty import refusal as dirty_refusal
from iommu_lab.hardware.dirty import supports_dirty
from iommu_lab.hardware.platform import IommuFamily, NestingSupport
from iommu_lab.hardware.registers import HW_CAP_DIRTY_TRACKING, hw_info
from iommu_lab.iommufd.objects import HwptData, HwptFlag, ViommuType

__all__ = ["IommuDriver", "DRIVERS", "driver_for", "GENERIC", "dirty_capable"]

_N, _D, _P = HwptFlag.NEST_PARENT, HwptFlag.DIRTY_TRACKING, HwptFlag.PASID


@dataclass(frozen=True)
class IommuDriver:
    """One IOMMU driver's answers to iommufd.

    Attributes
    ----------
    name : str
        The driver (``"intel-iommu"``, ``"arm-smmu-v3"``, ``"amd-iommu"``, ``"generic"``).
    paging_flags_op : bool
        Whether it has ``domain_alloc_paging_flags`` (without it any flag is EOPNOTSUPP).
    paging_combos : frozenset of int
        The flag combinations (FAULT_ID_VALID removed) its paging allocator accepts.
    paging_source : str
        The function those combinations come from.
    nests_on_parent : bool
        Whether it has ``ops->domain_alloc_nested`` (HWPT_NESTED with ``pt_id`` = the parent).
    viommu_type : ViommuType or None
        The vIOMMU type it allocates (``get_viommu_size`` answers non-zero only for it).
    nested_data : HwptData
        The ``data_type`` its nested allocation takes.
    nested_flags : HwptFlag
        Flags its nested allocation accepts (FAULT_ID_VALID removed by iommufd first).
    nested_source : str
        The function that allocates its nested domain.
    ro_nest_parent_erratum : bool
        VT-d (SPR erratum 772415): read-only mappings are refused on a nest parent.
    second_stage_for : HwptFlag
        Flags that make its paging allocator build the platform's ``stage2`` format (VT-d and
        AMD: NEST_PARENT or DIRTY_TRACKING pick the second-stage / v1 table; SMMUv3: NEST_PARENT
        picks stage 2, while DIRTY_TRACKING alone stays a stage-1 table).
    spans_iommus : bool
        Whether one domain may serve devices behind several IOMMU instances of this driver
        (VT-d's and AMD's domains may, each attach checked for compatibility; an SMMUv3 domain
        belongs to one SMMU).
    """

    name: str
    paging_flags_op: bool
    paging_combos: frozenset
    paging_source: str
    nests_on_parent: bool
    viommu_type: ViommuType | None
    nested_data: HwptData
    nested_flags: HwptFlag
    nested_source: str
    ro_nest_parent_erratum: bool = False
    second_stage_for: HwptFlag = HwptFlag.NONE
    spans_iommus: bool = False

    def domain_stage(self, flags: HwptFlag) -> str:
        """The platform stage (``"paging"`` or ``"stage2"``) whose format a paging domain
        allocated with ``flags`` uses."""
        return "stage2" if int(flags) & int(self.second_stage_for) else "paging"

    def domain_format(self, flags: HwptFlag, platform: Any) -> str | None:
        """The format name of the paging domain ``flags`` make on ``platform`` (None: no table)."""
        formats = getattr(platform, "formats", None) or {}
        return formats.get(self.domain_stage(flags)) or formats.get("paging")

    def paging_refusal(self, flags: HwptFlag, platform: Any) -> str | None:
        """Why ``domain_alloc_paging_flags(flags)`` answers EOPNOTSUPP on ``platform``, or None."""
        bare = int(flags) & ~int(HwptFlag.FAULT_ID_VALID)
        if bare not in self.paging_combos:
            return (f"{self.name} allocates no paging domain with flags {HwptFlag(bare).text}; it accepts "
                    + ", ".join(HwptFlag(c).text for c in sorted(self.paging_combos)) + f" ({self.paging_source})")
        if bare & _N and getattr(platform, "nesting", None) is not NestingSupport.HARDWARE:
            return (f"NEST_PARENT needs hardware nesting, and {_name(platform)} reports "
                    f"nesting={getattr(platform, 'nesting', 'none')} ({self.paging_source})")
        if bare & _P and not getattr(platform, "pasid_bits", 0):
            return f"ALLOC_PASID needs PASID support, and {_name(platform)} reports no PASID bits ({self.paging_source})"
        if bare & _D:
            fmt_name = self.domain_format(flags, platform)
            fmt = _formats.get(fmt_name) if fmt_name else None
            if fmt is None or not supports_dirty(fmt):
                why = dirty_refusal(fmt) if fmt is not None else "the domain has no page table to hold dirty bits"
                return f"DIRTY_TRACKING on a {fmt_name or 'table-less'} domain: {why} ({self.paging_source})"
        return None


def dirty_capable(platform: Any) -> bool:
    """``device_iommu_capable(dev, IOMMU_CAP_DIRTY_TRACKING)``: what IOMMU_GET_HW_INFO reports
    as ``IOMMU_HW_CAP_DIRTY_TRACKING`` for a device behind ``platform`` (False without one)."""
    if platform is None:
        return False
    return bool(hw_info(platform).out_capabilities & HW_CAP_DIRTY_TRACKING)


def _name(platform: Any) -> str:
    return f"platform {platform.name!r}" if platform is not None else "this device's IOMMU"


INTEL = IommuDriver(
    name="intel-iommu",
    paging_flags_op=True,
    paging_combos=frozenset({0, _N, _D, _P, _N | _D, _N | _P, _D | _P, _N | _D | _P}),
    paging_source="intel_iommu_domain_alloc_second_stage",
    nests_on_parent=True,
    viommu_type=None,
    nested_data=HwptData.VTD_S1,
    nested_flags=HwptFlag.PASID,
    nested_source="intel_iommu_domain_alloc_nested",
    ro_nest_parent_erratum=True,
    second_stage_for=_N | _D,
    spans_iommus=True,
)
SMMUV3 = IommuDriver(
    name="arm-smmu-v3",
    paging_flags_op=True,
    paging_combos=frozenset({0, _N, _D, _D | _P, _P}),
    paging_source="arm_smmu_domain_alloc_paging_flags",
    nests_on_parent=False,
    viommu_type=ViommuType.ARM_SMMUV3,
    nested_data=HwptData.ARM_SMMUV3,
    nested_flags=HwptFlag.PASID,
    nested_source="arm_vsmmu_alloc_domain_nested",
    second_stage_for=_N,
)
AMD = IommuDriver(
    name="amd-iommu",
    paging_flags_op=True,
    paging_combos=frozenset({0, _N, _D, _N | _D, _P}),
    paging_source="amd_iommu_domain_alloc_paging_flags",
    nests_on_parent=False,
    viommu_type=ViommuType.AMD,
    nested_data=HwptData.AMD_GUEST,
    nested_flags=HwptFlag.NONE,
    nested_source="amd_iommu_alloc_domain_nested",
    second_stage_for=_N | _D,
    spans_iommus=True,
)
#: A driver without ``domain_alloc_paging_flags`` (POWER's SPAPR TCE, virtio-iommu, RISC-V in
#: the version read): only a plain paging domain, through ``iommu_paging_domain_alloc``.
GENERIC = IommuDriver(
    name="generic",
    paging_flags_op=False,
    paging_combos=frozenset({0}),
    paging_source="iommufd_hwpt_paging_alloc",
    nests_on_parent=False,
    viommu_type=None,
    nested_data=HwptData.NONE,
    nested_flags=HwptFlag.NONE,
    nested_source="iommufd_hwpt_nested_alloc",
)

#: Which driver serves each IOMMU family's platforms (the family is a hardware fact; which
#: iommu_ops it gets is the driver's).
DRIVERS: dict[IommuFamily, IommuDriver] = {
    IommuFamily.VTD: INTEL,
    IommuFamily.SMMUV3: SMMUV3,
    IommuFamily.AMD: AMD,
}


def driver_for(platform: Any) -> IommuDriver:
    """The driver behind a platform's devices; ``GENERIC`` for a device with no platform."""
    if platform is None:
        return GENERIC
    return DRIVERS.get(getattr(platform, "family", None), GENERIC)
