"""Where each page-table format keeps its DMA dirty state, and what switches tracking on.

One :class:`DirtyScheme` per format family (and stage), with bit positions as the drivers
write them:

* VT-d second stage: leaf bit 9 (``DMA_SL_PTE_DIRTY_BIT``, intel/iommu.h;
  ``dma_sl_pte_test_and_clear_dirty``), written by hardware only while the PASID entry's
  SSADE bit (bit 9 of word 0, ``pasid_set_ssade`` in intel/pasid.c) is set; the IOMMU must
  report ECAP.SSADS (``ssads_supported``).
* AMD v1: leaf bit 6 (``IOMMU_PTE_HD_BIT``), written while the DTE's HAD field (bits 8:7,
  ``DTE_FLAG_HAD``) is set (``amd_iommu_set_dirty_tracking``); a replicated NL=7 leaf is dirty
  when any replica is (``pte_test_and_clear_dirty`` in amd/io_pgtable.c tests them all);
  the IOMMU must report EFR.HDSUP.
* ARM LPAE stage 1 with DBM: a writable leaf carries DBM (bit 51, ``ARM_LPAE_PTE_DBM``);
  AP[2] (bit 7, read-only) set means *writable-clean*, clear means *writable-dirty*; the SMMU
  clears AP[2] on the first write (HTTU with CD.TCR HD bit 42 and HA bit 43).
  io-pgtable-arm's ``arm_lpae_read_and_clear_dirty`` reports ``iopte_writeable_dirty``
  (``(pte & (AP_RDONLY | DBM)) == DBM``) and cleans by setting AP[2] again. Linux sets DBM at
  map time on writable stage-1 leaves (``arm_lpae_prot_to_pte`` with
  ``IO_PGTABLE_QUIRK_ARM_HD``), so a fresh mapping reads as dirty; the CD's HD is set when the
  domain is allocated and ``arm_smmu_set_dirty_tracking`` only clears stale bits.

Formats that cannot track refuse IOMMU_HWPT_ALLOC_DIRTY_TRACKING (EOPNOTSUPP): the x86-64
first-stage / AMD v2 table (``intel_iommu_domain_alloc_first_stage`` refuses the flag; AMD
tracks only v1 tables), ARM stage 2 (io-pgtable-arm accepts the HD quirk for stage 1 only),
RISC-V (no dirty ops in the driver) and POWER TCE tables (no dirty bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iommu_lab.core.bits import Field
from iommu_lab.core.errors import IommuError

__all__ = ["DirtyScheme", "refusal", "scheme_for", "supports_dirty"]

_U64 = np.uint64


@dataclass(frozen=True)
class DirtyScheme:
    """How one format records DMA writes in its leaves.

    Attributes
    ----------
    family, stage : str, int or None
        The format family (``Format.family``) and stage (None: any).
    dirty : Field
        The dirty bit (VT-d D, AMD HD) or, for DBM formats, the read-only bit AP[2] whose
        *clear* state means dirty.
    dbm : Field or None
        The dirty-bit-modifier bit that makes a read-only-looking leaf writable (ARM).
    writable : Field or None
        The leaf's write permission (VT-d W, AMD IW); None for DBM formats.
    enable_structure, enable : str, Field
        Where tracking is switched on and the field (PASID entry SSADE, DTE HAD, CD HD).
    enable_value : int
        The field's value when tracking is on.
    capability : str
        The register bit the IOMMU must report.
    always_on : bool
        Hardware updates whenever the domain exists (ARM: CD.HD is set at allocation);
        SET_DIRTY_TRACKING then only clears stale bits.
    sources : str
        Driver functions this follows.
    """

    family: str
    stage: int | None
    dirty: Field
    dbm: Field | None
    writable: Field | None
    enable_structure: str
    enable: Field
    enable_value: int
    capability: str
    always_on: bool
    sources: str

    @property
    def uses_dbm(self) -> bool:
        return self.dbm is not None

    # vectorised over uint64 arrays of leaf entries
    def is_dirty(self, raw: np.ndarray) -> np.ndarray:
        """``dma_sl_pte_test_dirty`` / ``IOMMU_PTE_DIRTY`` / ``iopte_writeable_dirty``."""
        raw = np.asarray(raw, dtype=_U64)
        if self.uses_dbm:
            mask = _U64(self.dirty.mask | self.dbm.mask)
            return (raw & mask) == _U64(self.dbm.mask)
        return (raw & _U64(self.dirty.mask)) != _U64(0)

    def is_writable(self, raw: np.ndarray) -> np.ndarray:
        """Whether a DMA write through this leaf is allowed (DBM: AP[2] clear or DBM set)."""
        raw = np.asarray(raw, dtype=_U64)
        if self.uses_dbm:
            return ((raw & _U64(self.dirty.mask)) == _U64(0)) | ((raw & _U64(self.dbm.mask)) != _U64(0))
        return (raw & _U64(self.writable.mask)) != _U64(0)

    def set_dirty(self, raw: np.ndarray) -> np.ndarray:
        """The entry after a DMA write (hardware sets D, or clears AP[2] under DBM)."""
        raw = np.asarray(raw, dtype=_U64)
        if self.uses_dbm:
            return raw & ~_U64(self.dirty.mask)
        return raw | _U64(self.dirty.mask)

    def clear_dirty(self, raw: np.ndarray) -> np.ndarray:
        """The entry after read-and-clear (D cleared, or AP[2] set again: writable-clean)."""
        raw = np.asarray(raw, dtype=_U64)
        dirty = self.is_dirty(raw)
        if self.uses_dbm:
            return np.where(dirty, raw | _U64(self.dirty.mask), raw)
        return raw & ~_U64(self.dirty.mask)

    def map_quirk(self, raw: np.ndarray) -> np.ndarray:
        """What the driver's map path writes on a writable leaf when tracking was requested:
        DBM on writable stage-1 leaves (``arm_lpae_prot_to_pte``); nothing elsewhere."""
        raw = np.asarray(raw, dtype=_U64)
        if not self.uses_dbm:
            return raw
        writable = (raw & _U64(self.dirty.mask)) == _U64(0)
        return np.where(writable, raw | _U64(self.dbm.mask), raw)

    def enable_word(self, on: bool) -> int:
        """The enabling field in place in its structure word (e.g. ``0x200`` for SSADE)."""
        return self.enable.put(self.enable_value if on else 0)

    def describe(self) -> str:
        how = (f"DBM bit {self.dbm.bits} marks writable leaves; AP[2] (bit {self.dirty.bits}) set = clean, clear = dirty"
               if self.uses_dbm else f"dirty bit {self.dirty.bits} ({self.dirty.name})")
        return (f"{self.family}{'' if self.stage is None else f' stage {self.stage}'}: {how}; enabled by "
                f"{self.enable_structure} {self.enable.name} (bits {self.enable.bits}); needs {self.capability}")


_VTD = DirtyScheme(
    "vtd-ss", None, Field("D", 9, 1, "dirty"), None, Field("W", 1, 1, "write"),
    "PASID entry word 0", Field("SSADE", 9, 1, "second-stage A/D enable"), 1, "ECAP.SSADS",
    False, "intel/iommu.h DMA_SL_PTE_DIRTY_BIT; intel/pasid.c pasid_set_ssade; intel_iommu_read_and_clear_dirty",
)
_AMD = DirtyScheme(
    "amd-v1", None, Field("HD", 6, 1, "host dirty"), None, Field("IW", 62, 1, "write"),
    "DTE word 0", Field("HAD", 7, 2, "host access/dirty update"), 0b11, "EFR.HDSUP",
    False, "amd_iommu_types.h IOMMU_PTE_HD_BIT, DTE_FLAG_HAD; amd/io_pgtable.c iommu_v1_read_and_clear_dirty",
)
_ARM = DirtyScheme(
    "arm-lpae", 1, Field("AP[2]", 7, 1, "read-only; clear = writable-dirty under DBM"), Field("DBM", 51, 1), None,
    "CD word 0 (TCR)", Field("HD", 42, 1, "hardware dirty update (CTXDESC_CD_0_TCR_HD)"), 1,
    "IDR0.HTTU = 2 and IDR0.COHACC", True,
    "io-pgtable-arm.c ARM_LPAE_PTE_DBM, iopte_writeable_dirty, arm_lpae_read_and_clear_dirty; arm-smmu-v3.h CTXDESC_CD_0_TCR_HD",
)
_SCHEMES = {("vtd-ss", None): _VTD, ("amd-v1", None): _AMD, ("arm-lpae", 1): _ARM}

_REFUSALS = {
    "x86-64": ("a first-stage (x86-64 / AMD v2) table cannot track: intel_iommu_domain_alloc_first_stage refuses "
               "IOMMU_HWPT_ALLOC_DIRTY_TRACKING and AMD tracks dirty only in v1 tables"),
    "arm-lpae": ("an ARM stage-2 table cannot track: io-pgtable-arm accepts IO_PGTABLE_QUIRK_ARM_HD for stage 1 "
                 "only, so the SMMUv3 driver refuses NEST_PARENT | DIRTY_TRACKING"),
    "riscv": "the RISC-V IOMMU driver has no dirty-tracking ops",
    "power-tce": "POWER TCE entries have no dirty bit",
}


def _lookup(fmt) -> DirtyScheme | None:
    family, stage = getattr(fmt, "family", None), getattr(fmt, "stage", None)
    return _SCHEMES.get((family, stage)) or _SCHEMES.get((family, None))


def supports_dirty(fmt) -> bool:
    """Whether a domain of format ``fmt`` can be allocated with DIRTY_TRACKING."""
    return _lookup(fmt) is not None


def refusal(fmt) -> str | None:
    """Why ``fmt`` refuses dirty tracking (None when it tracks)."""
    if supports_dirty(fmt):
        return None
    family = getattr(fmt, "family", str(fmt))
    return _REFUSALS.get(family, f"format family {family!r} has no dirty bit in this model")


def scheme_for(fmt) -> DirtyScheme:
    """The dirty scheme of ``fmt``; ``EOPNOTSUPP`` with the driver's reason when it has none
    (what IOMMU_HWPT_ALLOC with IOMMU_HWPT_ALLOC_DIRTY_TRACKING answers)."""
    found = _lookup(fmt)
    if found is None:
        raise IommuError("EOPNOTSUPP", f"{getattr(fmt, 'name', fmt)}: {refusal(fmt)}")
    return found
