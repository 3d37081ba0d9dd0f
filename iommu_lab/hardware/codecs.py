"""The older home of the entry rules, kept so existing imports work: each family's rules now
live in its own file under ``iommu_lab.hardware.formats`` (``vtd``, ``x86``, ``amd``, ``arm``,
``riscv``, ``power``); ``Perm`` is ``iommu_lab.core.perm.Perm``."""

from iommu_lab.core.perm import Perm
from iommu_lab.hardware.formats import parse_perm
from iommu_lab.hardware.formats.amd import AmdV1Rules as AmdV1Codec
from iommu_lab.hardware.formats.arm import ArmLpaeRules as ArmLpaeCodec
from iommu_lab.hardware.formats.descriptor import EntryKind
from iommu_lab.hardware.formats.descriptor import Rules as Codec
from iommu_lab.hardware.formats.power import TceRules as TceCodec
from iommu_lab.hardware.formats.riscv import RiscvRules as RiscvCodec
from iommu_lab.hardware.formats.vtd import VtdSSRules as VtdSSCodec
from iommu_lab.hardware.formats.x86 import X86Rules as X86Codec

__all__ = ["AmdV1Codec", "ArmLpaeCodec", "Codec", "EntryKind", "Perm", "RiscvCodec", "TceCodec", "VtdSSCodec",
           "X86Codec", "parse_perm"]
