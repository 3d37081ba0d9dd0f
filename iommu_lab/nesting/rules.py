"""Which page tables nest: the capability words and the stage-1 / stage-2 pairing rule.

The pairs come from declared data, not from a table here: every catalogue platform with hardware
nesting names its ``stage1`` and ``stage2`` formats, and each format descriptor says which
format family it is (``iommu_lab.hardware.platform.nesting_pairs``); what each family's nested
HWPT configures is ``hardware.platform.HARDWARE_NESTING``.
"""

from __future__ import annotations

from typing import Any

from iommu_lab.core.errors import IommuError
from iommu_lab.hardware.platform import (
    HARDWARE_NESTING,
    NEST_PARENT_RULES,
    IommuFamily,
    NestingSupport,
    families_using_format_family,
    nesting_pairs,
)

__all__ = ["NestingCapability", "check_nest_pair", "nest_family"]


#: How a pair of tables nests: the platform's one nesting-capability type, under its older name.
NestingCapability = NestingSupport


def nest_family(stage1_fmt: Any, stage2_fmt: Any) -> IommuFamily:
    """The IOMMU family that nests ``stage1_fmt`` over ``stage2_fmt`` (see :func:`check_nest_pair`)."""
    s1f, s2f = stage1_fmt.family, stage2_fmt.family
    if stage2_fmt.stage != 2:
        notes = {NEST_PARENT_RULES[f] for f in families_using_format_family(s2f) if f in NEST_PARENT_RULES}
        why = "".join(" " + n for n in sorted(notes))
        raise IommuError(
            "EOPNOTSUPP",
            f"{stage2_fmt.name} is a stage-{stage2_fmt.stage} format and cannot be a nest parent (stage 2); "
            f"stage-2 formats are vtd-ss-*, amd-v1-*, arm-lpae-s2-*.{why}",
        )
    if stage1_fmt.stage != 1:
        raise IommuError(
            "EINVAL",
            f"{stage1_fmt.name} is a stage-{stage1_fmt.stage} format; a nested (child) table must be a "
            f"stage-1 format: x86-64-* over vtd-ss/amd-v1, arm-lpae-s1-* over arm-lpae-s2-*",
        )
    pairs = nesting_pairs()
    nesting_iommu = pairs.get((s1f, s2f))
    if nesting_iommu is None:
        allowed = "; ".join(f"{a} over {b} ({fam.value})" for (a, b), fam in pairs.items())
        raise IommuError(
            "EOPNOTSUPP",
            f"no IOMMU nests a {s1f} stage 1 ({stage1_fmt.name}) on a {s2f} stage 2 ({stage2_fmt.name}); "
            f"hardware nesting pairs: {allowed}",
        )
    return nesting_iommu


def check_nest_pair(stage1_fmt: Any, stage2_fmt: Any) -> tuple[str, str]:
    """Refuse a stage-1/stage-2 pair the hardware cannot nest; return (family, description).

    Rules: the parent must be a stage-2 format (VT-d: ``NEST_PARENT`` goes only to
    ``intel_iommu_domain_alloc_second_stage``; ``intel_iommu_domain_alloc_first_stage`` rejects
    it); the child must be a stage-1 format of the same IOMMU family; a VT-d first stage must be
    4- or 5-level (``addr_width`` 48 or 57).
    """
    iommu = nest_family(stage1_fmt, stage2_fmt)
    return iommu.value, HARDWARE_NESTING[iommu]
