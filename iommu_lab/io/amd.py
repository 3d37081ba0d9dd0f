"""Importers of AMD-Vi debugfs files: ``devtbl`` rows, ``capability`` and ``mmio`` register reads.

As printed by drivers/iommu/amd/debugfs.c (``/sys/kernel/debug/iommu/amd/``):

* ``devtbl`` (``dump_dte``): a header ``DeviceId QWORD[3] QWORD[2] QWORD[1] QWORD[0] iommu`` and
  one row ``SSSS:BB:DD.F`` then the entry's four 64-bit words, highest first, as ``%016llx``
  without ``0x``, then ``iommuN`` (an early version of the series printed ``SSSS:BB:DD:F``);
* ``iommuNN/capability`` (``iommu_capability_show``): ``Offset:0x%x Value:0x%08x``, a 32-bit
  PCI-capability register at offset 0x00..0x14;
* ``iommuNN/mmio`` (``iommu_mmio_show``): ``Offset:0x%x Value:0x%016llx``, a 64-bit MMIO register.

A device-table entry is decoded with :data:`iommu_lab.hardware.structures.AMD_DTE` plus the fields
that layout does not name (:data:`DTE_EXTRA`: dirty tracking, PPR, the IOTLB / IoCtl / SysMgt
controls and the interrupt-remapping fields of the third quadword), positions from the
``DTE_*`` macros of amd_iommu_types.h and the AMD I/O Virtualization Technology specification's
device-table-entry format. Capability and MMIO offsets name their register by the spec's
register map (``MMIO_*_OFFSET`` in amd_iommu_types.h); the extended-feature register is decoded
by :func:`iommu_lab.hardware.registers.decode`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Union

from iommu_lab.core.bits import ADDRESS, EntryLayout, Field
from iommu_lab.core.words import plural
from iommu_lab.hardware import registers
from iommu_lab.hardware.structures import AMD_DTE
from iommu_lab.io.parse import (
    ParseError,
    decode_text,
    hex_digits,
    hex_u64,
    read_bounded,
    text_lines,
)

__all__ = ["DTE_EXTRA", "AMD_DTE_FULL", "DteRow", "RegisterRead", "parse_devtbl", "read_devtbl",
           "parse_register_reads", "read_register_reads", "CAPABILITY_REGISTERS", "MMIO_REGISTERS"]

MAX_FILE = 1 << 20


def _f(name: str, hi: int, lo: int | None, doc: str, role: str = "") -> Field:
    lo = hi if lo is None else lo
    return Field(name, lo, hi - lo + 1, doc, role, 256)


#: DTE fields the structures layout leaves out (amd_iommu_types.h DTE_*; spec's DTE format).
DTE_EXTRA = (
    _f("HAD", 8, 7, "host access/dirty update (DTE_FLAG_HAD): 3 = dirty tracking on"),
    _f("PPR", 52, None, "peripheral page requests enabled (DTE_FLAG_PPR)"),
    _f("GPRP", 53, None, "guest PPR response with PASID"),
    _f("I", 96, None, "IOTLB (ATS) enabled (DTE_FLAG_IOTLB)"),
    _f("SE", 97, None, "suppress all I/O page faults"),
    _f("SA", 98, None, "suppress repeated I/O page faults"),
    _f("IoCtl", 100, 99, "port I/O control"),
    _f("Cache", 101, None, "IOTLB cache hint"),
    _f("SD", 102, None, "snoop disable"),
    _f("EX", 103, None, "exclusion range enabled"),
    _f("SysMgt", 105, 104, "system management message control"),
    _f("IV", 128, None, "interrupt map valid (DTE_IRQ_REMAP_ENABLE)"),
    _f("IntTabLen", 132, 129, "interrupt table length: 2^IntTabLen entries (DTE_INTTABLEN)"),
    _f("IG", 133, None, "ignore unmapped interrupts"),
    _f("IntTableRootPtr", 179, 134, "interrupt remapping table, 64-byte aligned (DTE_IRQ_PHYS_ADDR_MASK)", ADDRESS),
    _f("InitPass", 184, None, "INIT interrupts pass through"),
    _f("EIntPass", 185, None, "ExtInt interrupts pass through"),
    _f("NMIPass", 186, None, "NMI pass through"),
    _f("IntCtl", 189, 188, "fixed/arbitrated interrupt control"),
    _f("Lint0Pass", 190, None, "LINT0 pass through"),
    _f("Lint1Pass", 191, None, "LINT1 pass through"),
)

#: The 256-bit DTE as this importer decodes it: the structures layout plus :data:`DTE_EXTRA`.
AMD_DTE_FULL = EntryLayout("AMD device table entry (debugfs devtbl)", 32, AMD_DTE.fields + DTE_EXTRA,
                           AMD_DTE.source + "; DTE_FLAG_*, DTE_IRQ_* and DTE_INTTABLEN_* macros")

_SBDF = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})[.:]([0-7])$")
_HEADER = ["DeviceId", "QWORD[3]", "QWORD[2]", "QWORD[1]", "QWORD[0]", "iommu"]
_ROW_FORM = "'SSSS:BB:DD.F <QWORD[3]> <QWORD[2]> <QWORD[1]> <QWORD[0]> iommuN' (16 hex digits each, dump_dte)"
_UNIT = re.compile(r"^iommu([0-9]{1,3})$")


@dataclass(frozen=True)
class DteRow:
    """One dumped device-table entry: the device, its unit and the four quadwords."""

    sbdf: str
    iommu: str
    qwords: tuple[int, int, int, int]  #: data[0] .. data[3]
    line: int = 0

    @property
    def value(self) -> int:
        return sum(q << (64 * i) for i, q in enumerate(self.qwords))

    def fields(self) -> dict[str, int]:
        """Every named field's value (addresses in place)."""
        return AMD_DTE_FULL.decode(self.value)

    @property
    def gcr3_root(self) -> int:
        """The GCR3 table root, assembled from its three pieces (bits 14:12, 30:15, 51:31)."""
        f = self.fields()
        return (f["GCR3_14_12"] << 12) | (f["GCR3_30_15"] << 15) | (f["GCR3_51_31"] << 31)

    def summary(self) -> str:
        f = self.fields()
        if not f["V"]:
            what = "not valid (DMA passes untranslated only if the unit allows it)"
        elif not f["TV"]:
            what = "valid, no translation information (TV=0)"
        elif f["Mode"] == 0:
            what = "pass-through (Mode 0)"
        elif f["Mode"] == 7:
            what = "reserved paging mode 7"
        else:
            what = f"{f['Mode']}-level host table at {f['PTRoot']:#x}"
        parts = [f"{self.sbdf} ({self.iommu}): {what}, domain {f['DomainID']:#x}",
                 f"IR={f['IR']} IW={f['IW']}"]
        if f["GV"]:
            parts.append(f"guest translation: GCR3 {self.gcr3_root:#x}, {plural(f['GLX'] + 1, 'GCR3 level')}, "
                         f"guest {'5' if f['GPTLevel'] else '4'}-level")
        if f["IV"]:
            parts.append(f"interrupts remapped: {1 << f['IntTabLen']} entries at {f['IntTableRootPtr']:#x}")
        if f["HAD"] == 3:
            parts.append("dirty tracking on")
        return "; ".join(parts)


def parse_devtbl(text: Union[str, bytes], *, source: str = "devtbl") -> tuple[DteRow, ...]:
    """Read a ``devtbl`` dump (one or several pasted reads) into :class:`DteRow` values."""
    text = decode_text(text, source, MAX_FILE)
    out, seen_header = [], False
    for number, line in text_lines(text, source):
        words = line.split()
        if words == _HEADER:
            seen_header = True
            continue
        if not seen_header:
            raise ParseError(source, number, line, "the devtbl header 'DeviceId QWORD[3] QWORD[2] QWORD[1] QWORD[0] iommu' first")
        m = _SBDF.match(words[0]) if words else None
        if len(words) != 6 or m is None or not _UNIT.match(words[5]):
            raise ParseError(source, number, line, _ROW_FORM)
        try:
            q3, q2, q1, q0 = (hex_digits(w, 16) for w in words[1:5])
        except ValueError:
            raise ParseError(source, number, line, _ROW_FORM) from None
        sbdf = f"{m.group(1)}:{m.group(2)}:{m.group(3)}.{m.group(4)}".lower()
        out.append(DteRow(sbdf, words[5], (q0, q1, q2, q3), number))
    if not seen_header:
        raise ParseError(source, 1, text[:40], "an AMD devtbl dump (header 'DeviceId QWORD[3] ... iommu')")
    return tuple(out)


def read_devtbl(path: Union[str, os.PathLike]) -> tuple[DteRow, ...]:
    return parse_devtbl(read_bounded(path, MAX_FILE), source=str(path))


#: PCI capability registers by offset (IOMMU capability block, spec "IOMMU Base Capability").
CAPABILITY_REGISTERS = {
    0x00: ("Capability Header", [("CapID", 0, 8), ("CapPtr", 8, 8), ("CapType", 16, 3), ("CapRev", 19, 5),
                                 ("IotlbSup", 24, 1), ("HtTunnel", 25, 1), ("NpCache", 26, 1), ("EFRSup", 27, 1),
                                 ("CapExt", 28, 1)]),
    0x04: ("Base Address Low", [("Enable", 0, 1), ("BaseAddress_31_14", 14, 18)]),
    0x08: ("Base Address High", [("BaseAddress_63_32", 0, 32)]),
    0x0C: ("Range", [("UnitID", 0, 5), ("RngValid", 7, 1), ("BusNumber", 8, 8), ("FirstDevice", 16, 8), ("LastDevice", 24, 8)]),
    0x10: ("Misc 0", [("MsiNum", 0, 5), ("GVAsize", 5, 3), ("PAsize", 8, 7), ("VAsize", 15, 7), ("HtAtsResv", 22, 1),
                      ("MsiNumPPR", 27, 5)]),
    0x14: ("Misc 1", [("MsiNumGA", 0, 5)]),
}

#: MMIO registers by offset (``MMIO_*_OFFSET``, amd_iommu_types.h).
MMIO_REGISTERS = {
    0x0000: ("Device Table Base", [("Size", 0, 9), ("DevTabBase", 12, 40)]),
    0x0008: ("Command Buffer Base", [("ComBase", 12, 40), ("ComLen", 56, 4)]),
    0x0010: ("Event Log Base", [("EventBase", 12, 40), ("EventLen", 56, 4)]),
    0x0018: ("Control", [("IommuEn", 0, 1), ("HtTunEn", 1, 1), ("EventLogEn", 2, 1), ("EventIntEn", 3, 1),
                         ("ComWaitIntEn", 4, 1), ("InvTimeOut", 5, 3), ("PassPW", 8, 1), ("ResPassPW", 9, 1),
                         ("Coherent", 10, 1), ("Isoc", 11, 1), ("CmdBufEn", 12, 1), ("PPRLogEn", 13, 1),
                         ("PprIntEn", 14, 1), ("PPREn", 15, 1), ("GTEn", 16, 1), ("GAEn", 17, 1)]),
    0x0020: ("Exclusion Base", [("ExEn", 0, 1), ("Allow", 1, 1), ("ExclusionBase", 12, 40)]),
    0x0028: ("Exclusion Range Limit", [("ExclusionLimit", 12, 40)]),
    0x0030: ("Extended Feature", []),
    0x01A0: ("Extended Feature 2", []),
    0x2000: ("Command Buffer Head", [("CmdHdPtr", 4, 15)]),
    0x2008: ("Command Buffer Tail", [("CmdTailPtr", 4, 15)]),
    0x2010: ("Event Log Head", [("EventHdPtr", 4, 15)]),
    0x2018: ("Event Log Tail", [("EventTailPtr", 4, 15)]),
    0x2020: ("Status", [("EventOverflow", 0, 1), ("EventLogInt", 1, 1), ("ComWaitInt", 2, 1), ("EventLogRun", 3, 1),
                        ("CmdBufRun", 4, 1), ("PprOverflow", 5, 1), ("PprInt", 6, 1), ("PprLogRun", 7, 1),
                        ("GALogRun", 8, 1), ("GALOverflow", 9, 1), ("GAInt", 10, 1)]),
}

_READ = re.compile(r"^Offset:(\S+) Value:(\S+)$")


@dataclass(frozen=True)
class RegisterRead:
    """One ``Offset:... Value:...`` read of an AMD IOMMU ``capability`` or ``mmio`` file."""

    space: str  #: "capability" (32-bit PCI config) or "mmio" (64-bit)
    offset: int
    value: int
    line: int = 0

    @property
    def name(self) -> str | None:
        table = CAPABILITY_REGISTERS if self.space == "capability" else MMIO_REGISTERS
        entry = table.get(self.offset)
        return None if entry is None else entry[0]

    def fields(self) -> dict[str, int]:
        """The register's fields as the spec names them; empty where the offset is not documented here."""
        table = CAPABILITY_REGISTERS if self.space == "capability" else MMIO_REGISTERS
        _name, fields = table.get(self.offset, (None, []))
        out = {n: (self.value >> lo) & ((1 << w) - 1) for n, lo, w in fields}
        if self.space == "mmio" and self.offset == 0x0000:
            out["DevTabBase"] <<= 12
            out["entries"] = (out["Size"] + 1) * 4096 // 32
        return out

    def describe(self) -> str:
        head = f"{self.space} {self.offset:#x} = {self.value:#x}" + (f" ({self.name})" if self.name else " (offset not decoded)")
        if self.space == "mmio" and self.offset == 0x0030:
            return head + "\n" + registers.decode("AMD", efr=self.value).describe()
        f = self.fields()
        return head + ("\n  " + ", ".join(f"{k}={v:#x}" for k, v in f.items()) if f else "")


def parse_register_reads(text: Union[str, bytes], *, space: str | None = None,
                         source: str = "mmio") -> tuple[RegisterRead, ...]:
    """Read ``Offset:0x.. Value:0x..`` lines; ``space`` from the value width when not given
    (8 hex digits: ``capability``, 16: ``mmio``)."""
    if space not in (None, "capability", "mmio"):
        raise ValueError(f"space {str(space)[:30]!r} is not 'capability' or 'mmio'")
    text = decode_text(text, source, MAX_FILE)
    out = []
    for number, line in text_lines(text, source):
        m = _READ.match(line.strip())
        if m is None:
            raise ParseError(source, number, line, "'Offset:0x<offset> Value:0x<value>' (iommu_mmio_show / iommu_capability_show)")
        try:
            off, val = hex_u64(m.group(1)), hex_u64(m.group(2))
        except ValueError:
            raise ParseError(source, number, line, "offset and value as 0x<hex digits>") from None
        sp = space or ("capability" if len(m.group(2)) == 10 else "mmio")
        if sp == "capability" and (off > 0x14 or off % 4 or val >> 32):
            raise ParseError(source, number, line, "a capability read: offset 0x0..0x14, 4-aligned, 32-bit value "
                                                   "(iommu_capability_write refuses offsets above 0x14)")
        if sp == "mmio" and (off % 4 or off > 0x7FFFF):
            raise ParseError(source, number, line, "an MMIO offset inside the unit's register space, 4-aligned")
        out.append(RegisterRead(sp, off, val, number))
    if not out:
        raise ParseError(source, 1, "", "at least one 'Offset:0x.. Value:0x..' line")
    return tuple(out)


def read_register_reads(path: Union[str, os.PathLike], **kw) -> tuple[RegisterRead, ...]:
    return parse_register_reads(read_bounded(path, MAX_FILE), source=str(path), **kw)
