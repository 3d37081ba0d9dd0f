"""IOMMU capability registers as IOMMU_GET_HW_INFO reports them, both ways.

Forward: :func:`hw_info` gives, for a catalogue platform, what ``iommufd_get_hw_info``
(drivers/iommu/iommufd/device.c) returns for one of its devices: the driver's raw registers
(``struct iommu_hw_info_vtd`` ``cap_reg``/``ecap_reg``, ``struct iommu_hw_info_arm_smmuv3``
``idr[6]``/``iidr``/``aidr``, ``struct iommu_hw_info_amd`` ``efr``/``efr2``), the
``out_capabilities`` bits and ``out_max_pasid_log2``. Platforms whose driver has no ``hw_info``
op (RISC-V, POWER, virtio-iommu) answer type NONE with no data.

Reverse: :func:`decode` turns raw register values (typed in, or read from a VT-d debugfs
``iommu_regset`` dump with :func:`parse_regset`) into named fields and a description of the
IOMMU (address width, page sizes, nesting, PASID width, dirty tracking, caching mode), and
:func:`check_host` answers "can this host back that vIOMMU or nested setup?" with reasons, as
QEMU's ``vtd_check_hiod`` does for VT-d.

Bit positions:

* VT-d: the ``cap_*`` / ``ecap_*`` macros of drivers/iommu/intel/iommu.h (formerly
  include/linux/intel-iommu.h); the PASID count is ``2 << ecap_pss`` (dmar.c ``alloc_iommu``),
  dirty tracking is ``ssads_supported`` = scalable mode and ``ecap_slads``.
* SMMUv3: ``IDR0_*``, ``IDR1_*``, ``IDR3_*``, ``IDR5_*`` of arm-smmu-v3.h; dirty tracking
  needs ``IDR0.HTTU`` = 2 (access and dirty) and coherent walks (``arm_smmu_dbm_capable``).
* AMD: the ``FEATURE_*`` bits of amd_iommu_types.h; the PASID count is
  ``(1 << (PASMAX + 1)) - 1`` (init.c ``iommu_init_pci``), so ``ilog2`` reports PASMAX, one
  less than the PASID width; dirty tracking is ``FEATURE_HDSUP``.

The register values built for a platform are synthesised from its declared facts (a device
that reports exactly what the platform file says), not read from a specific machine.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from iommu_lab.core.bits import Field, FieldTable
from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import fmt_size
from iommu_lab.hardware import formats as _formats
from iommu_lab.hardware.platform import IommuFamily, NestingSupport, Platform, platforms

__all__ = [
    "AMD_EFR", "AMD_EFR2", "HW_CAP_DIRTY_TRACKING", "HW_CAP_PCI_ATS_NOT_SUPPORTED",
    "HW_CAP_PCI_PASID_EXEC", "HW_CAP_PCI_PASID_PRIV", "SMMU_AIDR", "SMMU_IDR", "SMMU_IIDR",
    "VTD_CAP", "VTD_ECAP", "VTD_ERRATA_772415_SPR17", "Compatibility", "Decoded", "HwInfo",
    "HwInfoType", "VIommuRequest", "check_host", "decode", "hw_info", "parse_regset",
]

U32_MAX, U64_MAX = (1 << 32) - 1, (1 << 64) - 1

# ---- out_capabilities (include/uapi/linux/iommufd.h enum iommufd_hw_capabilities) -------------
HW_CAP_DIRTY_TRACKING = 1 << 0
HW_CAP_PCI_PASID_EXEC = 1 << 1
HW_CAP_PCI_PASID_PRIV = 1 << 2
HW_CAP_PCI_ATS_NOT_SUPPORTED = 1 << 3
_CAP_NAMES = {HW_CAP_DIRTY_TRACKING: "DIRTY_TRACKING", HW_CAP_PCI_PASID_EXEC: "PCI_PASID_EXEC",
              HW_CAP_PCI_PASID_PRIV: "PCI_PASID_PRIV", HW_CAP_PCI_ATS_NOT_SUPPORTED: "PCI_ATS_NOT_SUPPORTED"}

#: ``iommu_hw_info_vtd.flags``: the SPR17 erratum (read-only stage-2 mappings are not enforced
#: while walking stage-1 tables, so the driver refuses them on a nest parent).
VTD_ERRATA_772415_SPR17 = 1 << 0


class HwInfoType(enum.IntEnum):
    """``enum iommu_hw_info_type`` (``out_data_type``). AMD's number is the one in the 2025 AMD
    nesting series; the others are in the released uAPI header."""

    NONE = 0
    INTEL_VTD = 1
    ARM_SMMUV3 = 2
    TEGRA241_CMDQV = 3
    AMD = 4


# ---- VT-d (drivers/iommu/intel/iommu.h) ------------------------------------------------
VTD_CAP = FieldTable([
    Field("ND", 0, 3, "number of domains: 2^(4+2*ND) (cap_ndoms)"),
    Field("AFL", 3, 1, "advanced fault logging"),
    Field("RWBF", 4, 1, "required write-buffer flushing"),
    Field("PLMR", 5, 1, "protected low-memory region"),
    Field("PHMR", 6, 1, "protected high-memory region"),
    Field("CM", 7, 1, "caching mode: not-present entries may be cached (a vIOMMU)"),
    Field("SAGAW", 8, 5, "supported AGAWs: bit 1 = 3-level 39-bit, 2 = 4-level 48, 3 = 5-level 57"),
    Field("MGAW", 16, 6, "maximum guest address width - 1 (cap_mgaw)"),
    Field("ZLR", 22, 1, "zero-length read"),
    Field("ISOCH", 23, 1, "isochronous"),
    Field("FRO", 24, 10, "fault-recording register offset / 16"),
    Field("SLLPS", 34, 4, "second-stage large pages: bit 0 = 2 MiB, bit 1 = 1 GiB (cap_super_page_val)"),
    Field("PSI", 39, 1, "page-selective invalidation"),
    Field("NFR", 40, 8, "number of fault-recording registers - 1"),
    Field("MAMV", 48, 6, "maximum address-mask value"),
    Field("DWD", 54, 1, "write draining"),
    Field("DRD", 55, 1, "read draining"),
    Field("FS1GP", 56, 1, "first-stage 1 GiB pages (cap_fl1gp_support)"),
    Field("PI", 59, 1, "posted interrupts"),
    Field("FS5LP", 60, 1, "first-stage 5-level paging (cap_fl5lp_support)"),
    Field("ECMDS", 61, 1, "enhanced command support"),
    Field("ESIRTPS", 62, 1, "enhanced set interrupt root-table pointer"),
    Field("ESRTPS", 63, 1, "enhanced set root-table pointer"),
], "VT-d CAP_REG")

VTD_ECAP = FieldTable([
    Field("C", 0, 1, "page-walk coherency"),
    Field("QI", 1, 1, "queued invalidation"),
    Field("DT", 2, 1, "device-TLB (ATS)"),
    Field("IR", 3, 1, "interrupt remapping"),
    Field("EIM", 4, 1, "extended interrupt mode (x2APIC)"),
    Field("PT", 6, 1, "pass-through"),
    Field("SC", 7, 1, "snoop control"),
    Field("IRO", 8, 10, "IOTLB register offset / 16"),
    Field("MHMV", 20, 4, "maximum handle-mask value"),
    Field("MTS", 25, 1, "memory-type support"),
    Field("NEST", 26, 1, "nested translation"),
    Field("PRS", 29, 1, "page requests"),
    Field("ERS", 30, 1, "execute requests"),
    Field("SRS", 31, 1, "supervisor requests"),
    Field("NWFS", 33, 1, "no-write flag"),
    Field("EAFS", 34, 1, "extended accessed flag"),
    Field("PSS", 35, 5, "PASID size supported - 1 (ecap_pss)"),
    Field("PASID", 40, 1, "PASID support"),
    Field("DIT", 41, 1, "device-TLB invalidation throttling"),
    Field("PDS", 42, 1, "page-request drain"),
    Field("SMTS", 43, 1, "scalable-mode translation"),
    Field("SSADS", 45, 1, "second-stage accessed/dirty (ecap_slads)"),
    Field("SSTS", 46, 1, "second-stage translation (ecap_slts)"),
    Field("FSTS", 47, 1, "first-stage translation (ecap_flts)"),
    Field("SMPWC", 48, 1, "scalable-mode page-walk coherency"),
    Field("RPS", 49, 1, "RID-PASID"),
    Field("PMS", 51, 1, "performance monitoring"),
], "VT-d ECAP_REG")

# ---- SMMUv3 (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h) ------------------------------
SMMU_IDR: dict[int, FieldTable] = {
    0: FieldTable([
        Field("S2P", 0, 1, "stage 2"), Field("S1P", 1, 1, "stage 1"),
        Field("TTF", 2, 2, "table format: 2 = AArch64, 3 = AArch32+64"),
        Field("COHACC", 4, 1, "coherent access (table walks)"), Field("BTM", 5, 1, "broadcast TLB maintenance"),
        Field("HTTU", 6, 2, "hardware table update: 1 = access flag, 2 = access and dirty"),
        Field("HYP", 9, 1, "EL2 stage 1"), Field("ATS", 10, 1, "PCIe ATS"), Field("ASID16", 12, 1, "16-bit ASID"),
        Field("MSI", 13, 1, "MSI"), Field("SEV", 14, 1, "SEV"), Field("PRI", 16, 1, "page requests"),
        Field("VMID16", 18, 1, "16-bit VMID"), Field("CD2L", 19, 1, "2-level CD tables"),
        Field("TTENDIAN", 21, 2, "endianness: 0 mixed, 2 LE, 3 BE"), Field("STALL_MODEL", 24, 2, "0 stall, 1 no stall, 2 forced"),
        Field("TERM_MODEL", 26, 1, "terminate model"), Field("ST_LVL", 27, 2, "stream table: 1 = 2-level"),
    ], "SMMUv3 IDR0"),
    1: FieldTable([
        Field("SIDSIZE", 0, 6, "StreamID bits"), Field("SSIDSIZE", 6, 5, "SubstreamID (PASID) bits"),
        Field("PRIQS", 11, 5, "log2 PRI queue size"), Field("EVTQS", 16, 5, "log2 event queue size"),
        Field("CMDQS", 21, 5, "log2 command queue size"), Field("ATTR_TYPES_OVR", 27, 1),
        Field("REL", 28, 1, "relative base pointers"), Field("QUEUES_PRESET", 29, 1), Field("TABLES_PRESET", 30, 1),
    ], "SMMUv3 IDR1"),
    2: FieldTable([], "SMMUv3 IDR2"),
    3: FieldTable([
        Field("FWB", 8, 1, "stage-2 forced write-back"), Field("RIL", 10, 1, "range invalidation"),
        Field("BBML", 11, 2, "break-before-make level"),
    ], "SMMUv3 IDR3"),
    4: FieldTable([], "SMMUv3 IDR4"),
    5: FieldTable([
        Field("OAS", 0, 3, "output size: 0..6 = 32, 36, 40, 42, 44, 48, 52 bits"),
        Field("GRAN4K", 4, 1, "4 KiB granule"), Field("GRAN16K", 5, 1, "16 KiB granule"),
        Field("GRAN64K", 6, 1, "64 KiB granule"), Field("VAX", 10, 2, "virtual address extend (1 = 52-bit)"),
        Field("STALL_MAX", 16, 16, "outstanding stalls"),
    ], "SMMUv3 IDR5"),
}
SMMU_IIDR = FieldTable([Field("Implementer", 0, 12), Field("Revision", 12, 4), Field("Variant", 16, 4),
                        Field("ProductID", 20, 12)], "SMMUv3 IIDR")
SMMU_AIDR = FieldTable([Field("ArchMinorRev", 0, 4, "SMMUv3.x"), Field("ArchMajorRev", 4, 4, "0 = SMMUv3")], "SMMUv3 AIDR")
_OAS_BITS = (32, 36, 40, 42, 44, 48, 52)

# ---- AMD (drivers/iommu/amd/amd_iommu_types.h) -----------------------------------------
AMD_EFR = FieldTable([
    Field("PREFSUP", 0, 1, "prefetch"), Field("PPRSUP", 1, 1, "peripheral page requests"),
    Field("XTSUP", 2, 1, "x2APIC"), Field("NXSUP", 3, 1, "no-execute"),
    Field("GTSUP", 4, 1, "guest translation (v2 tables, PASID)"), Field("IASUP", 6, 1, "invalidate all"),
    Field("GASUP", 7, 1, "guest APIC"), Field("HESUP", 8, 1, "hardware error registers"),
    Field("PCSUP", 9, 1, "performance counters"),
    Field("HATS", 10, 2, "host table levels: 4 + HATS (amd_iommu_hpt_level)"),
    Field("GATS", 12, 2, "guest table levels: 0 = 4, 1 = 5"),
    Field("GLX", 14, 2, "GCR3 table levels - 1"), Field("GAM", 21, 1, "guest virtual APIC mode"),
    Field("PASMAX", 32, 5, "PASID bits - 1"), Field("GIOSUP", 48, 1, "guest I/O protection"),
    Field("HASUP", 49, 1, "host access bit"), Field("EPHSUP", 50, 1, "enhanced PPR handling"),
    Field("HDSUP", 52, 1, "host dirty bit"), Field("SNPSUP", 63, 1, "SEV-SNP"),
], "AMD EFR")
AMD_EFR2 = FieldTable([Field("SEVSNPIO", 1, 1), Field("GCR3TRPMODE", 3, 1), Field("SNPAVICSUP", 5, 3),
                       Field("NUM_INT_REMAP", 8, 2), Field("HT_RANGE_IGNORE", 11, 1)], "AMD EFR2")


def _pasid_enabled(platform: Platform, device_pasid_bits: int) -> int:
    """``ilog2(dev->iommu->max_pasids)``: the IOMMU's count capped by the device's PCI PASID
    capability (``dev_iommu_get_max_pasids``); 0 when either side has none."""
    if not platform.pasid_bits or not device_pasid_bits:
        return 0
    iommu_max = ((1 << platform.pasid_bits) - 1) if platform.family is IommuFamily.AMD else 1 << platform.pasid_bits
    return min(iommu_max, 1 << device_pasid_bits).bit_length() - 1


def _vtd_registers(p: Platform) -> dict[str, int]:
    nested = p.nesting is NestingSupport.HARDWARE
    sllps = (1 if p.pgsizes & (1 << 21) else 0) | (2 if p.pgsizes & (1 << 30) else 0)
    sagaw = (1 << 2) | ((1 << 3) if p.ias > 48 else 0)
    cap = VTD_CAP.encode(ND=6, SAGAW=sagaw, MGAW=p.ias - 1, FRO=0x22, SLLPS=sllps, PSI=1, NFR=7,
                         MAMV=0x12, DWD=1, DRD=1, FS1GP=1, PI=1, FS5LP=int(p.ias > 48))
    pasid = p.pasid_bits > 0
    ecap = VTD_ECAP.encode(QI=1, DT=1, IR=1, EIM=1, PT=1, SC=1, IRO=0x50, MHMV=0xF, NEST=int(nested),
                           PRS=int(pasid), SRS=int(pasid), PSS=max(p.pasid_bits - 1, 0), PASID=int(pasid),
                           PDS=int(pasid), SMTS=1, SSADS=int(p.dirty_tracking), SSTS=1, FSTS=1, SMPWC=1, RPS=1)
    return {"flags": VTD_ERRATA_772415_SPR17, "cap_reg": cap, "ecap_reg": ecap}


def _smmu_registers(p: Platform) -> dict[str, int]:
    nested = p.nesting is NestingSupport.HARDWARE
    grans = {g for fmt in p.formats.values() for g in [1 << _fmt_granule(fmt)]}
    idr0 = SMMU_IDR[0].encode(S2P=int(nested or "stage2" in p.formats), S1P=1, TTF=2, COHACC=1,
                              HTTU=2 if p.dirty_tracking else 1, ATS=1, ASID16=1, MSI=1, PRI=int(p.pasid_bits > 0),
                              VMID16=1, CD2L=1, TTENDIAN=2, ST_LVL=1)
    idr1 = SMMU_IDR[1].encode(SIDSIZE=16, SSIDSIZE=p.pasid_bits, PRIQS=19, EVTQS=19, CMDQS=19)
    idr3 = SMMU_IDR[3].encode(FWB=int(nested), RIL=1, BBML=2)
    oas = _OAS_BITS.index(48) if p.ias <= 48 else _OAS_BITS.index(52)
    idr5 = SMMU_IDR[5].encode(OAS=oas, GRAN4K=int(4096 in grans), GRAN16K=int(16384 in grans),
                              GRAN64K=int(65536 in grans), STALL_MAX=0)
    return {"flags": 0, "idr": (idr0, idr1, 0, idr3, 0, idr5),
            "iidr": SMMU_IIDR.encode(Implementer=0x43B, ProductID=0x483, Revision=1),
            "aidr": SMMU_AIDR.encode(ArchMinorRev=2)}


def _fmt_granule(name: str) -> int:
    return _formats.get(name).granule_lg2


def _amd_registers(p: Platform) -> dict[str, int]:
    nested = p.nesting is NestingSupport.HARDWARE
    host_levels = max((_formats.get(f).max_format.levels for f in p.formats.values()
                       if _formats.get(f).family == "amd-v1"), default=4)
    efr = AMD_EFR.encode(PREFSUP=1, PPRSUP=int(p.pasid_bits > 0), XTSUP=1, NXSUP=1, GTSUP=int(p.pasid_bits > 0),
                         IASUP=1, GASUP=1, HESUP=1, PCSUP=1, HATS=min(max(host_levels - 4, 0), 2), GATS=0,
                         GLX=1, GAM=1, PASMAX=max(p.pasid_bits - 1, 0), GIOSUP=int(nested),
                         HASUP=int(p.dirty_tracking), EPHSUP=1, HDSUP=int(p.dirty_tracking))
    return {"efr": efr, "efr2": 0}


_STRUCTS = {
    # type: (struct name, little-endian layout, field order)
    HwInfoType.INTEL_VTD: ("iommu_hw_info_vtd", "<IIQQ", ("flags", "__reserved", "cap_reg", "ecap_reg")),
    HwInfoType.ARM_SMMUV3: ("iommu_hw_info_arm_smmuv3", "<II6III", ("flags", "__reserved", "idr", "iidr", "aidr")),
    HwInfoType.AMD: ("iommu_hw_info_amd", "<QQ", ("efr", "efr2")),
}


@dataclass(frozen=True)
class HwInfo:
    """One IOMMU_GET_HW_INFO answer: ``out_data_type``, the driver struct, the capability bits.

    ``data`` holds the struct's fields by their uAPI names (``idr`` is a 6-tuple);
    ``data_len`` is the kernel's length of that struct (``struct.calcsize``), 0 for NONE.
    """

    platform: str
    type: HwInfoType
    data: Mapping[str, Any]
    out_capabilities: int
    out_max_pasid_log2: int

    @property
    def data_len(self) -> int:
        return struct.calcsize(_STRUCTS[self.type][1]) if self.type in _STRUCTS else 0

    @property
    def struct_name(self) -> str:
        return _STRUCTS[self.type][0] if self.type in _STRUCTS else ""

    def to_bytes(self) -> bytes:
        """The struct as the kernel copies it to ``data_uptr`` (little-endian)."""
        if self.type not in _STRUCTS:
            return b""
        _, layout, names = _STRUCTS[self.type]
        values: list[int] = []
        for n in names:
            v = self.data.get(n, 0)
            values.extend(v if isinstance(v, tuple) else (v,))
        return struct.pack(layout, *values)

    def copy_out(self, data_len: int) -> tuple[bytes, int]:
        """What a user buffer of ``data_len`` bytes receives and the ``data_len`` written back:
        ``min(data_len, kernel length)`` bytes, the rest zero-filled, and the kernel's own
        length (``iommufd_get_hw_info``; a length of 0 is a query)."""
        if isinstance(data_len, bool) or not isinstance(data_len, int) or not 0 <= data_len <= U32_MAX:
            raise IommuError("EINVAL", f"data_len {data_len!r} must be a u32 byte count (struct iommu_hw_info.data_len)")
        raw = self.to_bytes()[:data_len]
        return raw + bytes(data_len - len(raw)), self.data_len

    @property
    def capabilities(self) -> tuple[str, ...]:
        return tuple(name for bit, name in _CAP_NAMES.items() if self.out_capabilities & bit)

    def decoded(self) -> Decoded:
        """The registers decoded into fields and a description (see :func:`decode`)."""
        return decode(self.type, **dict(self.data))

    def __str__(self) -> str:
        lines = [f"IOMMU_GET_HW_INFO {self.platform}: out_data_type {self.type.name} "
                 f"({self.struct_name or 'no driver data'}, {self.data_len} bytes)"]
        for k, v in self.data.items():
            lines.append(f"  {k:<10} " + (" ".join(f"{x:#010x}" for x in v) if isinstance(v, tuple) else f"{v:#x}"))
        lines.append(f"  out_capabilities   {self.out_capabilities:#x} ({', '.join(self.capabilities) or 'none'})")
        lines.append(f"  out_max_pasid_log2 {self.out_max_pasid_log2}")
        return "\n".join(lines)


def hw_info(platform: Platform | str, *, device_pasid_bits: int = 20, pasid_exec: bool = False,
            pasid_priv: bool = False, ats: bool = True) -> HwInfo:
    """What ``IOMMU_GET_HW_INFO`` answers for a device behind ``platform``.

    Parameters
    ----------
    platform : Platform or str
        A platform or a catalogue name.
    device_pasid_bits : int
        The device's PCI PASID capability width (0: none). ``out_max_pasid_log2`` is
        ``ilog2(min(IOMMU count, 1 << width))`` as ``dev_iommu_get_max_pasids`` caps it.
    pasid_exec, pasid_priv : bool
        The device's PASID control register bits; reported only with PASID enabled.
    ats : bool
        Whether ATS can be used (``IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED`` otherwise).
    """
    if isinstance(platform, str):
        platform = platforms.get(platform)
    if isinstance(device_pasid_bits, bool) or not isinstance(device_pasid_bits, int) or not 0 <= device_pasid_bits <= 20:
        raise IommuError("EINVAL", f"device_pasid_bits {device_pasid_bits!r} must be 0..20 (PCIe PASID width)")
    builders = {IommuFamily.VTD: (HwInfoType.INTEL_VTD, _vtd_registers),
                IommuFamily.SMMUV3: (HwInfoType.ARM_SMMUV3, _smmu_registers),
                IommuFamily.AMD: (HwInfoType.AMD, _amd_registers)}
    kind, build = builders.get(platform.family, (HwInfoType.NONE, lambda p: {}))
    caps = HW_CAP_DIRTY_TRACKING if platform.dirty_tracking else 0
    if not ats:
        caps |= HW_CAP_PCI_ATS_NOT_SUPPORTED
    log2 = _pasid_enabled(platform, device_pasid_bits)
    if log2:
        caps |= (HW_CAP_PCI_PASID_EXEC if pasid_exec else 0) | (HW_CAP_PCI_PASID_PRIV if pasid_priv else 0)
    return HwInfo(platform.name, kind, MappingProxyType(build(platform)), caps, log2)


# ---- reverse: registers to fields and a description ----------------------------------------
@dataclass(frozen=True)
class Decoded:
    """Registers decoded: ``fields`` per register name, and what they mean for a VMM."""

    type: HwInfoType
    fields: Mapping[str, Mapping[str, int]]
    ias: int | None
    pgsizes: int
    nesting: bool
    pasid_log2: int
    dirty_tracking: bool
    caching_mode: bool
    errata_ro_nest_parent: bool
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        sizes = ", ".join(fmt_size(1 << b) for b in range(64) if self.pgsizes >> b & 1) or "unknown"
        lines = [f"{self.type.name}: {self.ias or '?'}-bit input; page sizes {sizes}",
                 f"  hardware nesting {'yes' if self.nesting else 'no'}; PASID bits {self.pasid_log2}; "
                 f"dirty tracking {'yes' if self.dirty_tracking else 'no'}; caching mode "
                 f"{'on (this IOMMU is itself emulated)' if self.caching_mode else 'off'}"]
        if self.errata_ro_nest_parent:
            lines.append("  erratum 772415 (SPR17): read-only mappings refused on a nest parent")
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)

    def table(self) -> list[tuple[str, str, str, int, str]]:
        """(register, field, bits, value, meaning) rows."""
        tables = _tables(self.type)
        return [(reg, f.name, f.bits, self.fields[reg][f.name], f.doc) for reg, t in tables.items() for f in t]

    __str__ = describe


def _tables(kind: HwInfoType) -> dict[str, FieldTable]:
    if kind is HwInfoType.INTEL_VTD:
        return {"cap_reg": VTD_CAP, "ecap_reg": VTD_ECAP}
    if kind is HwInfoType.ARM_SMMUV3:
        return {**{f"idr[{i}]": t for i, t in SMMU_IDR.items() if len(t)}, "iidr": SMMU_IIDR, "aidr": SMMU_AIDR}
    if kind is HwInfoType.AMD:
        return {"efr": AMD_EFR, "efr2": AMD_EFR2}
    return {}


def _reg(value: Any, name: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"register {name} must be an int, got {type(value).__name__} {str(value)[:40]!r}")
    if not 0 <= value < 1 << bits:
        raise IommuError("EINVAL", f"register {name} = {value:#x} does not fit its {bits} bits "
                                   f"(struct iommu_hw_info fields are __u{bits}); allowed 0..{(1 << bits) - 1:#x}")
    return value


def decode(kind: HwInfoType | str | int, **registers: Any) -> Decoded:
    """Decode raw register values into named fields and what they mean.

    ``decode("INTEL_VTD", cap_reg=..., ecap_reg=..., flags=0)``;
    ``decode("ARM_SMMUV3", idr=(idr0, ..., idr5), iidr=..., aidr=...)``;
    ``decode("AMD", efr=..., efr2=0)``. Missing registers read as 0; unknown names, values
    that do not fit the uAPI field and a wrong ``idr`` length are refused with EINVAL.
    """
    try:
        kind = HwInfoType[kind.upper()] if isinstance(kind, str) else HwInfoType(kind)
    except (KeyError, ValueError):
        raise IommuError("EINVAL", f"unknown hw_info type {str(kind)[:40]!r}; types: "
                                   + ", ".join(t.name for t in HwInfoType)) from None
    known = {HwInfoType.INTEL_VTD: ("flags", "__reserved", "cap_reg", "ecap_reg"),
             HwInfoType.ARM_SMMUV3: ("flags", "__reserved", "idr", "iidr", "aidr"),
             HwInfoType.AMD: ("efr", "efr2")}.get(kind, ())
    for name in registers:
        if name not in known:
            raise IommuError("EINVAL", f"{kind.name} has no register {name[:40]!r}; registers: {', '.join(known) or 'none'}")
    if kind is HwInfoType.INTEL_VTD:
        cap, ecap = (_reg(registers.get(n, 0), n, 64) for n in ("cap_reg", "ecap_reg"))
        flags = _reg(registers.get("flags", 0), "flags", 32)
        c, e = VTD_CAP.decode(cap), VTD_ECAP.decode(ecap)
        sizes = (1 << 12) | ((1 << 21) if c["SLLPS"] & 1 else 0) | ((1 << 30) if c["SLLPS"] & 2 else 0)
        notes = []
        if not e["SMTS"]:
            notes.append("legacy mode only (no SMTS): no PASID, no nesting, no dirty tracking")
        return Decoded(kind, MappingProxyType({"cap_reg": c, "ecap_reg": e}), c["MGAW"] + 1, sizes,
                       bool(e["NEST"] and e["SMTS"] and e["FSTS"] and e["SSTS"]),
                       e["PSS"] + 1 if e["PASID"] and e["SMTS"] else 0, bool(e["SMTS"] and e["SSADS"]),
                       bool(c["CM"]), bool(flags & VTD_ERRATA_772415_SPR17), tuple(notes))
    if kind is HwInfoType.ARM_SMMUV3:
        idr = registers.get("idr", (0,) * 6)
        if not isinstance(idr, (tuple, list)) or len(idr) != 6:
            raise IommuError("EINVAL", f"idr must be 6 values (idr[6] of struct iommu_hw_info_arm_smmuv3), got {str(idr)[:60]}")
        idr = tuple(_reg(v, f"idr[{i}]", 32) for i, v in enumerate(idr))
        iidr, aidr = (_reg(registers.get(n, 0), n, 32) for n in ("iidr", "aidr"))
        fields = {f"idr[{i}]": SMMU_IDR[i].decode(v) for i, v in enumerate(idr) if len(SMMU_IDR[i])}
        fields |= {"iidr": SMMU_IIDR.decode(iidr), "aidr": SMMU_AIDR.decode(aidr)}
        i0, i1, i5 = fields["idr[0]"], fields["idr[1]"], fields["idr[5]"]
        sizes = 0
        for g, lg2s in (("GRAN4K", (12, 21, 30)), ("GRAN16K", (14, 25)), ("GRAN64K", (16, 29))):
            if i5[g]:
                sizes |= sum(1 << b for b in lg2s)
        oas = _OAS_BITS[i5["OAS"]] if i5["OAS"] < len(_OAS_BITS) else None
        notes = ["HTTU, BTM and MPAM are not supported for nesting (uAPI hw_info comment)"] if i0["HTTU"] else []
        return Decoded(kind, MappingProxyType(fields), oas, sizes, bool(i0["S1P"] and i0["S2P"]),
                       i1["SSIDSIZE"], bool(i0["HTTU"] == 2 and i0["COHACC"]), False, False, tuple(notes))
    if kind is HwInfoType.AMD:
        efr, efr2 = (_reg(registers.get(n, 0), n, 64) for n in ("efr", "efr2"))
        f = AMD_EFR.decode(efr)
        levels = 4 + min(f["HATS"], 2)
        return Decoded(kind, MappingProxyType({"efr": f, "efr2": AMD_EFR2.decode(efr2)}), min(12 + 9 * levels, 64),
                       ((1 << 52) - (1 << 12)) ^ (1 << 39), bool(f["GTSUP"] and f["GIOSUP"]),
                       f["PASMAX"] if f["GTSUP"] else 0, bool(f["HDSUP"]), False, False,
                       (f"host table up to {levels} levels (amd_iommu_hpt_level)",))
    return Decoded(kind, MappingProxyType({}), None, 0, False, 0, False, False, False,
                   ("the driver has no hw_info op: nothing to decode",))


_REGSET_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s+(0x[0-9a-fA-F]+)\s+(0x[0-9a-fA-F]{1,16})\s*$")
_MAX_REGSET_BYTES = 1 << 20


def parse_regset(text: str) -> dict[str, int]:
    """Register values from a VT-d debugfs ``iommu_regset`` dump (intel/debugfs.c
    ``iommu_regset_show``: ``NAME  0xOFFSET  0xVALUE`` lines); the first IOMMU's block only.

    Returns ``{"cap_reg": ..., "ecap_reg": ...}`` ready for ``decode("INTEL_VTD", **regs)``.
    """
    if not isinstance(text, str):
        raise TypeError(f"iommu_regset text must be str, got {type(text).__name__}")
    if len(text) > _MAX_REGSET_BYTES:
        raise ValueError(f"iommu_regset text of {len(text)} characters is over the {_MAX_REGSET_BYTES} "
                         "characters a dump of every DMAR unit's registers needs")
    regs: dict[str, int] = {}
    units = 0
    for line in text.splitlines():
        if line.startswith("IOMMU:"):
            units += 1
            if units > 1:
                break
            continue
        m = _REGSET_LINE.match(line)
        if m:
            regs.setdefault(m[1].upper(), int(m[3], 16))
    missing = [n for n in ("CAP", "ECAP") if n not in regs]
    if missing:
        raise IommuError("EINVAL", f"iommu_regset has no {' or '.join(missing)} line; expected lines such as "
                                   "'CAP  0x08  0x00d2008c40660462' (intel/debugfs.c iommu_regset_show)")
    return {"cap_reg": regs["CAP"], "ecap_reg": regs["ECAP"]}


# ---- compatibility: can this host back that vIOMMU? ---------------------------------------
@dataclass(frozen=True)
class VIommuRequest:
    """What a VMM's vIOMMU (or nested setup) needs from the host.

    ``aw_bits``: guest address width (QEMU ``aw-bits``); ``pgsizes``: page sizes the guest
    will map with (bitmap); ``nesting``: hardware nesting; ``pasid_bits``; ``dirty_tracking``
    (for live migration); ``dirty_on_nest_parent``: dirty tracking on the nest parent itself;
    ``readonly_on_parent``: the VMM maps read-only guest memory (ROM) into the nest parent.
    """

    aw_bits: int = 48
    pgsizes: int = (1 << 12) | (1 << 21)
    nesting: bool = True
    pasid_bits: int = 0
    dirty_tracking: bool = False
    dirty_on_nest_parent: bool = False
    readonly_on_parent: bool = False


@dataclass(frozen=True)
class Compatibility:
    """The answer: ``ok`` and one ``(check, passed, reason)`` row per rule."""

    checks: tuple[tuple[str, bool, str], ...]

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {why}" for name, passed, why in self.checks if not passed]

    def __str__(self) -> str:
        head = "host can back this vIOMMU" if self.ok else "host cannot back this vIOMMU"
        return "\n".join([head] + [f"  [{'ok' if p else 'NO'}] {n}: {w}" for n, p, w in self.checks])


def check_host(host: HwInfo | Platform | str, want: VIommuRequest | None = None) -> Compatibility:
    """Can the host IOMMU behind ``host`` back the vIOMMU ``want``? One row per rule.

    Rules: the guest address width fits the host's (QEMU ``vtd_check_hiod``: "aw-bits > host
    aw-bits"); every guest page size is a host page size; hardware nesting is offered
    (VT-d ECAP.NEST with scalable mode, SMMUv3 IDR0.S1P and S2P, AMD EFR.GTSUP and GIOSUP); the
    host is not itself an emulated VT-d (CAP.CM: caching mode); the PASID width is enough;
    dirty tracking is reported (``IOMMU_HW_CAP_DIRTY_TRACKING``); dirty tracking on a nest
    parent needs a driver that tracks stage 2 (SMMUv3 tracks dirty only on stage 1:
    io-pgtable-arm has no HD quirk for stage 2); read-only mappings on a VT-d nest parent are
    refused on parts with erratum 772415 (``intel_iommu_map`` returns -EINVAL).
    """
    want = VIommuRequest() if want is None else want
    if not isinstance(want, VIommuRequest):
        raise TypeError(f"want must be a VIommuRequest, got {type(want).__name__}")
    info = host if isinstance(host, HwInfo) else hw_info(host)
    d = info.decoded()
    rows: list[tuple[str, bool, str]] = []
    if d.ias is None:
        rows.append(("driver data", False, f"{info.platform} reports no hw_info registers (type NONE); "
                                           "a VMM cannot pass its IOMMU through as a vIOMMU"))
        return Compatibility(tuple(rows))
    rows.append(("address width", want.aw_bits <= d.ias,
                 f"guest aw-bits {want.aw_bits} vs host {d.ias} (vtd_check_hiod: aw-bits must not exceed the host's)"))
    missing = want.pgsizes & ~d.pgsizes
    rows.append(("page sizes", not missing, "every guest page size is a host page size" if not missing else
                 "host lacks " + ", ".join(fmt_size(1 << b) for b in range(64) if missing >> b & 1)))
    if want.nesting:
        rows.append(("nesting", d.nesting, "host walks stage 1 over stage 2" if d.nesting else
                     "host offers no hardware nesting (VT-d ECAP.NEST+SMTS, SMMUv3 IDR0.S1P+S2P, AMD EFR.GTSUP+GIOSUP)"))
        rows.append(("caching mode", not d.caching_mode, "host CAP.CM = 0" if not d.caching_mode else
                     "host CAP.CM = 1: the host IOMMU is itself emulated and cannot nest"))
    rows.append(("PASID width", want.pasid_bits <= info.out_max_pasid_log2,
                 f"guest wants {want.pasid_bits} bits, host reports out_max_pasid_log2 = {info.out_max_pasid_log2}"))
    if want.dirty_tracking or want.dirty_on_nest_parent:
        has = bool(info.out_capabilities & HW_CAP_DIRTY_TRACKING)
        rows.append(("dirty tracking", has, "IOMMU_HW_CAP_DIRTY_TRACKING reported" if has else
                     "no IOMMU_HW_CAP_DIRTY_TRACKING: HWPT_ALLOC with DIRTY_TRACKING answers EOPNOTSUPP"))
    if want.dirty_on_nest_parent:
        s2_dirty = info.type is not HwInfoType.ARM_SMMUV3
        rows.append(("dirty on nest parent", s2_dirty, "the parent (stage 2) carries the dirty bits" if s2_dirty else
                     "SMMUv3 tracks dirty only on stage 1 (IO_PGTABLE_QUIRK_ARM_HD): NEST_PARENT|DIRTY_TRACKING answers EOPNOTSUPP"))
    if want.readonly_on_parent and want.nesting:
        rows.append(("read-only on nest parent", not d.errata_ro_nest_parent,
                     "no erratum flag" if not d.errata_ro_nest_parent else
                     "IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17: intel_iommu_map refuses read-only maps on a nest parent (EINVAL)"))
    return Compatibility(tuple(rows))
