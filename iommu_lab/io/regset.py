"""Importer of Intel VT-d ``iommu_regset``: every unit's registers, decoded as a VMM reads them.

As printed by drivers/iommu/intel/debugfs.c ``iommu_regset_show``::

    IOMMU: dmar0 Register Base Address: 26be37000
    Name\\t\\t\\tOffset\\t\\tContents
    VER             \\t0x00\\t\\t0x0000000000000010
    ...

one block per active unit: the unit and its register base (``%llx``, no ``0x``), the header, then
one ``%-16s\\t0x%02x\\t\\t0x%016llx`` row per register of ``iommu_regs_32`` / ``iommu_regs_64``.
Each block becomes a :class:`RegsetUnit`: register name → value and offset, the capability and
extended-capability registers decoded by :func:`iommu_lab.hardware.registers.decode` (address
widths, page sizes, nesting, PASID, dirty tracking, caching mode: the raw registers behind
IOMMU_GET_HW_INFO), and the global status bits (``DMA_GSTS_*`` in intel/iommu.h) and the root
table's scalable-mode bit (``DMA_RTADDR_SMT``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Union

from iommu_lab.hardware import registers
from iommu_lab.io.parse import (
    ParseError,
    decode_text,
    hex_digits,
    hex_u64,
    read_bounded,
    text_lines,
)

__all__ = ["RegsetUnit", "parse_iommu_regset", "read_iommu_regset", "GSTS_BITS"]

MAX_FILE = 1 << 20
_UNIT = re.compile(r"^IOMMU: (\S+) Register Base Address: (\S+)$")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_ROW_FORM = "'NAME  0xOFFSET  0x<16 hex digits>' (iommu_regset_show)"

#: Global status register bits (``DMA_GSTS_*``, intel/iommu.h).
GSTS_BITS = {"TES": 31, "RTPS": 30, "FLS": 29, "AFLS": 28, "WBFS": 27, "QIES": 26, "IRES": 25, "IRTPS": 24, "CFIS": 23}
_RTADDR_SMT = 1 << 10  # DMA_RTADDR_SMT: the root table is a scalable-mode root table


@dataclass(frozen=True)
class RegsetUnit:
    """One VT-d unit's dumped registers (``iommu_regset``)."""

    iommu: str
    base: int
    registers: Mapping[str, int] = field(repr=False)  #: name -> value
    offsets: Mapping[str, int] = field(repr=False)  #: name -> offset
    line: int = 0

    def decoded(self) -> registers.Decoded:
        """CAP_REG and ECAP_REG decoded as GET_HW_INFO's ``iommu_hw_info_vtd`` would carry them."""
        missing = [n for n in ("CAP", "ECAP") if n not in self.registers]
        if missing:
            raise ValueError(f"{self.iommu}: the dump has no {' or '.join(missing)} row to decode "
                             f"(iommu_regset_show prints CAP at 0x08 and ECAP at 0x10)")
        return registers.decode("INTEL_VTD", cap_reg=self.registers["CAP"], ecap_reg=self.registers["ECAP"])

    @property
    def status(self) -> dict[str, bool]:
        """Global status: translation enabled (TES), interrupt remapping (IRES), queued
        invalidation (QIES) and the rest of ``DMA_GSTS_*``; empty without a GSTS row."""
        g = self.registers.get("GSTS")
        return {} if g is None else {n: bool(g >> b & 1) for n, b in GSTS_BITS.items()}

    @property
    def scalable(self) -> bool | None:
        """Whether the root table is scalable-mode (RTADDR bit 10); None without an RTADDR row."""
        rt = self.registers.get("RTADDR")
        return None if rt is None else bool(rt & _RTADDR_SMT)

    def describe(self) -> str:
        lines = [f"{self.iommu} at {self.base:#x}: {len(self.registers)} registers"]
        if self.status:
            on = [n for n, v in self.status.items() if v]
            lines.append("  status: " + (", ".join(on) or "nothing enabled"))
        if self.scalable is not None:
            lines.append(f"  root table: {'scalable' if self.scalable else 'legacy'} mode")
        if "CAP" in self.registers and "ECAP" in self.registers:
            lines.append(self.decoded().describe())
        return "\n".join(lines)


def parse_iommu_regset(text: Union[str, bytes], *, source: str = "iommu_regset") -> tuple[RegsetUnit, ...]:
    """Read an ``iommu_regset`` dump: one :class:`RegsetUnit` per ``IOMMU:`` block.

    Raises
    ------
    ParseError
        On a malformed line (naming it), a row before any unit line, or a register listed twice
        in one unit.
    """
    text = decode_text(text, source, MAX_FILE)
    units: list[list] = []
    for number, line in text_lines(text, source):
        s = line.strip()
        if s == "[...]":
            continue
        m = _UNIT.match(s)
        if m:
            try:
                base = hex_digits(m.group(2))
            except ValueError:
                raise ParseError(source, number, line, "'IOMMU: dmarN Register Base Address: <hex>'") from None
            units.append([m.group(1), base, {}, {}, number])
            continue
        words = s.split()
        if words == ["Name", "Offset", "Contents"]:
            if not units:
                raise ParseError(source, number, line, "an 'IOMMU: dmarN Register Base Address: ...' line first")
            continue
        if not units:
            raise ParseError(source, number, line, "an 'IOMMU: dmarN Register Base Address: ...' line first")
        if len(words) != 3 or not _NAME.match(words[0]):
            raise ParseError(source, number, line, _ROW_FORM)
        try:
            off, val = hex_u64(words[1]), hex_u64(words[2])
        except ValueError:
            raise ParseError(source, number, line, _ROW_FORM) from None
        if off > 0xFFF:
            raise ParseError(source, number, line, "an offset inside the unit's 4 KiB register page")
        regs, offs = units[-1][2], units[-1][3]
        if words[0] in regs:
            raise ParseError(source, number, line, f"each register once per unit ({words[0]} is listed twice in {units[-1][0]})")
        regs[words[0]], offs[words[0]] = val, off
    if not units:
        raise ParseError(source, 1, text[:40], "an iommu_regset dump ('IOMMU: dmarN Register Base Address: ...')")
    return tuple(RegsetUnit(u, b, MappingProxyType(r), MappingProxyType(o), n) for u, b, r, o, n in units)


def read_iommu_regset(path: Union[str, os.PathLike]) -> tuple[RegsetUnit, ...]:
    """Read one ``iommu_regset`` file (bounded); errors name the file and line."""
    return parse_iommu_regset(read_bounded(path, MAX_FILE), source=str(path))
