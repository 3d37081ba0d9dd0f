"""The platform vocabulary: IOMMU families, nesting support, stage-1 binding, which formats
each family uses and how it nests.

The names every layer shares when it talks about a platform (``IommuFamily.VTD``,
``NestingSupport.HARDWARE``, ``Stage1Binding.PASID_TABLE``) and the per-family facts the
catalogue checks platform files against; :mod:`iommu_lab.hardware.platform` re-exports them.
"""

from __future__ import annotations

import enum

from iommu_lab.core.enums import member_of

__all__ = [
    "FAMILY_FORMAT_FAMILIES",
    "HARDWARE_NESTING",
    "NEST_PARENT_RULES",
    "STAGES",
    "IommuFamily",
    "NestingSupport",
    "Stage1Binding",
    "families_using_format_family",
]


#: Stage names a platform may give a page-table format for.
STAGES: dict[str, str] = {
    "paging": "a plain paging domain (what a device attached to an IOAS gets)",
    "stage2": "a nest parent / stage 2 (GPA -> HPA, host-owned)",
    "stage1": "a guest stage 1 nested on the stage 2 (gIOVA -> GPA, guest-owned)",
}

class IommuFamily(enum.Enum):
    """The IOMMU architecture a platform belongs to (decides which formats it may use)."""

    VTD = "VT-d"
    AMD = "AMD"
    SMMUV3 = "SMMUv3"
    POWER_TCE = "POWER TCE"
    VIRTIO_IOMMU = "virtio-iommu"
    RISCV = "RISC-V"

    @classmethod
    def parse(cls, value: str | IommuFamily) -> IommuFamily:
        return member_of(cls, value, "IOMMU family")


class NestingSupport(enum.StrEnum):
    """How stage 1 over stage 2 is done: the ``/dev/ioasid`` proposal's capability.

    The one nesting-capability type: a platform declares it, ``IOAS.info().capabilities``
    reports it and a nested pair answers it (``Nested.capability``). Its members compare equal
    to their text (``"hardware"``), as GET_INFO users write it.

    ``HARDWARE``: the IOMMU walks both tables (VT-d PGTT=NESTED, SMMUv3 STE Cfg=NESTED, AMD
    GCR3 over a v1 host table). ``SOFTWARE``: only map/unmap exists, so a VMM merges the two
    stages into one shadow table. ``NONE``: no second stage at all.
    """

    HARDWARE = "hardware"
    SOFTWARE = "software"
    NONE = "none"

    @classmethod
    def parse(cls, value: str | NestingSupport) -> NestingSupport:
        return member_of(cls, value, "nesting support")


class Stage1Binding(enum.Enum):
    """How a guest stage 1 reaches the hardware under hardware nesting.

    ``PGTABLE``: the host owns the PASID table and the guest hands over one stage-1 root per
    (device, PASID) (VT-d). ``PASID_TABLE``: the host installs one pointer to the guest's whole
    PASID/CD/GCR3 table (SMMUv3 vSTE ``S1ContextPtr``, AMD guest DTE GCR3 root).
    """

    PGTABLE = "pgtable"
    PASID_TABLE = "pasid-table"


#: Which page-table format families (``Format.family``, the codec a descriptor uses) each IOMMU
#: family's platforms may name: VT-d and AMD nest an x86-64 first stage / v2 table over their own
#: second-stage format; virtio-iommu has no page table the guest sees.
FAMILY_FORMAT_FAMILIES: dict[IommuFamily, tuple[str, ...]] = {
    IommuFamily.VTD: ("vtd-ss", "x86-64"),
    IommuFamily.AMD: ("amd-v1", "x86-64"),
    IommuFamily.SMMUV3: ("arm-lpae",),
    IommuFamily.POWER_TCE: ("power-tce",),
    IommuFamily.VIRTIO_IOMMU: (),
    IommuFamily.RISCV: ("riscv",),
}

#: What each hardware-nesting family's nested HWPT configures (iommufd's ``data_type``).
HARDWARE_NESTING: dict[IommuFamily, str] = {
    IommuFamily.VTD: "first stage (x86-64 format) over second stage, PGTT=NESTED",
    IommuFamily.AMD: "v2 guest table (x86-64 format, GCR3) over v1 host table, DTE GV=1",
    IommuFamily.SMMUV3: "LPAE stage 1 over LPAE stage 2, STE Config=NESTED",
}

#: Why a family refuses a nest parent that is not a stage-2 format, where its driver says so.
NEST_PARENT_RULES: dict[IommuFamily, str] = {
    IommuFamily.VTD: (
        "On VT-d a nest parent must be a second-stage domain: "
        "intel_iommu_domain_alloc_first_stage() refuses IOMMU_HWPT_ALLOC_NEST_PARENT."
    ),
}


def families_using_format_family(format_family: str) -> list[IommuFamily]:
    """The IOMMU families whose platforms may use page-table formats of ``format_family``."""
    return [fam for fam, codecs in FAMILY_FORMAT_FAMILIES.items() if format_family in codecs]


_MAX_PASID_BITS = 20  # PCIe PASID width
