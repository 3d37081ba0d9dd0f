"""Importer of Intel VT-d ``dmar_translation_struct``: root, context and PASID-table entries.

As printed by drivers/iommu/intel/debugfs.c ``root_tbl_walk`` / ``print_tbl_walk`` (v4.20+)::

    IOMMU dmar0: Root Table Address: 0x10f3a0000
    B.D.F\\tRoot_entry\\t\\t\\t\\tContext_entry\\t\\t\\t\\tPASID\\tPASID_table_entry
    00:02.0\\t0xHI:0xLO\\t0xHI:0xLO\\t-1    \\t0xV2:0xV1:0xV0

One row per present context entry (legacy mode: PASID printed as ``-1`` and the PASID columns
zero) or per present PASID-table entry (scalable mode). ``DMA Remapping is not enabled on dmarN``
stands for a unit that is off. The kernel's ABI document
(Documentation/ABI/testing/debugfs-intel-iommu) prints each wide row as three half-tables
(``B.D.F Root_entry`` / ``Context_entry`` / ``PASID PASID_table_entry``); that form is stitched
back into rows here, row *i* of each block belonging together.

Each row becomes a ``ContextRow`` with the entries decoded (VT-d spec ch. 9: root entry, legacy
context entry, scalable-mode context entry and PASID-table entry; PGTT values as pasid.h
``PASID_ENTRY_PGTT_*``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Union

from iommu_lab.hardware.structures import Pgtt
from iommu_lab.io.parse import ParseError, dec_int, decode_text, hex_u64, read_bounded, text_lines

__all__ = ["ContextRow", "parse_dmar_translation", "read_dmar_translation", "MAX_FILE"]

MAX_FILE = 1 << 22
_PAGE_MASK = ~0xFFF & (2**64 - 1)
_COLUMNS = ("B.D.F", "Root_entry", "Context_entry", "PASID", "PASID_table_entry")
_BDF = re.compile(r"^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_CTX_FORM = "B.D.F  0xROOT_HI:0xROOT_LO  0xCTX_HI:0xCTX_LO  PASID  0xV2:0xV1:0xV0"
_UNIT = re.compile(r"^IOMMU (\S+): Root Table Address: (\S+)$")


def _bits(v: int, lo: int, hi: int) -> int:
    return (v >> lo) & ((1 << (hi - lo + 1)) - 1)


@dataclass(frozen=True)
class ContextRow:
    """One device's root, context and PASID-table entries, raw and decoded (VT-d spec ch. 9)."""

    iommu: str
    bdf: str
    root_hi: int
    root_lo: int
    context_hi: int
    context_lo: int
    pasid: int | None  #: None where the kernel printed -1 (legacy mode, no PASID table)
    pasid_entry: tuple[int, int, int]  #: val[0], val[1], val[2]
    line: int = 0

    @property
    def scalable(self) -> bool:
        return self.pasid is not None

    @property
    def pgtt(self) -> Pgtt | None:
        """The PASID entry's PGTT (bits 8:6 of val[0]); legacy mode walks second stage only."""
        if not self.scalable:
            return Pgtt.SECOND_STAGE if _bits(self.context_lo, 2, 3) in (0, 1) else Pgtt.PASS_THROUGH
        v = _bits(self.pasid_entry[0], 6, 8)
        return Pgtt(v) if v in Pgtt._value2member_map_ else None

    @property
    def aw(self) -> int:
        """Address width code: the table has ``aw + 2`` levels (AGAW, ``agaw + 2`` in debugfs.c)."""
        return _bits(self.pasid_entry[0], 2, 4) if self.scalable else _bits(self.context_hi, 0, 2)

    @property
    def table_root(self) -> int | None:
        """The table the PGTT selects, as ``domain_translation_struct_show`` takes it: the
        first-stage pointer (val[2]) for first stage, the second-stage pointer (val[0]) for
        second stage and nested, none for pass-through."""
        pgtt = self.pgtt
        if not self.scalable:
            return self.context_lo & _PAGE_MASK if pgtt is Pgtt.SECOND_STAGE else None
        if pgtt is Pgtt.FIRST_STAGE:
            return self.pasid_entry[2] & _PAGE_MASK
        if pgtt in (Pgtt.SECOND_STAGE, Pgtt.NESTED):
            return self.pasid_entry[0] & _PAGE_MASK
        return None

    def decoded(self, scalable: bool | None = None) -> dict[str, int | str | None]:
        """Named fields: root/context present bits and pointers, DID, AW, TT/PGTT."""
        if scalable is None:
            scalable = self.scalable
        d: dict[str, int | str | None] = {"iommu": self.iommu, "bdf": self.bdf, "pasid": self.pasid}
        d["root_present"] = self.root_lo & 1
        d["context_table"] = self.root_lo & _PAGE_MASK
        d["context_present"] = self.context_lo & 1
        if scalable:
            d["upper_context_table"] = self.root_hi & _PAGE_MASK
            d["pasid_dir"] = self.context_lo & _PAGE_MASK
            d["pasid_dir_size"] = 1 << (_bits(self.context_lo, 9, 11) + 7)
            v0, v1, v2 = self.pasid_entry
            d["pasid_present"] = v0 & 1
            pgtt = _bits(v0, 6, 8)
            d["pgtt"] = {1: "first-stage", 2: "second-stage", 3: "nested", 4: "pass-through"}.get(pgtt, "reserved")
            d["aw"] = _bits(v0, 2, 4)
            d["did"] = _bits(v1, 0, 15)
            d["ss_table"] = v0 & _PAGE_MASK
            d["fs_table"] = v2 & _PAGE_MASK
        else:
            d["tt"] = {0: "translated", 1: "translated+dev-tlb", 2: "pass-through"}.get(_bits(self.context_lo, 2, 3), "reserved")
            d["ss_table"] = self.context_lo & _PAGE_MASK
            d["aw"] = _bits(self.context_hi, 0, 2)
            d["did"] = _bits(self.context_hi, 8, 23)
        return d

    def summary(self) -> str:
        """One line: unit, device, PASID, DID, AW and the table the translation type uses."""
        d = self.decoded()
        pasid = "-" if self.pasid is None else f"{self.pasid:#x}"
        mode = d.get("tt") or d.get("pgtt")
        root = self.table_root
        pgtt = self.pgtt
        if root is None:
            where = "no page table"
        elif pgtt is Pgtt.FIRST_STAGE:
            where = f"fs table {root:#x}"
        elif pgtt is Pgtt.NESTED:
            where = f"ss table {root:#x}, fs table {d['fs_table']:#x}"
        else:
            where = f"ss table {root:#x}"
        return f"{self.iommu} {self.bdf} pasid {pasid}: did {d['did']}, aw {d['aw']}, {mode}, {where}"


def _hex_pair(token: str, n: int) -> tuple[int, ...]:
    parts = token.split(":")
    if len(parts) != n:
        raise ValueError(token)
    return tuple(hex_u64(p) for p in parts)


def _header(words: list[str]) -> int | None:
    """The first column index of a (full or partial) header line, or None."""
    n = len(words)
    for j in range(len(_COLUMNS)):
        if tuple(words) == _COLUMNS[j:j + n]:
            return j
    return None


def parse_dmar_translation(text: Union[str, bytes], *, source: str = "dmar_translation_struct") -> tuple[ContextRow, ...]:
    """Read a ``dmar_translation_struct`` dump: one ``ContextRow`` per present device/PASID.

    Accepts the kernel's one-row form and the documentation's half-table form, prompt lines,
    CRLF and upper-case hex.

    Raises
    ------
    ParseError
        On the first malformed line, naming it and the expected form.
    """
    text = decode_text(text, source, MAX_FILE)
    rows: list[tuple[str, int, dict]] = []  # (unit, line, column -> token)
    unit = None
    seen_header = False
    block: list[tuple[str, int, dict]] = []  # rows of the current first-column block
    cols: tuple[int, int] | None = None  # column range the current header names
    fill = 0  # next row of ``block`` a later half-table fills
    for number, line in text_lines(text, source):
        s = line.strip()
        if s == "[...]":
            continue
        m = _UNIT.match(s)
        if m:
            try:
                hex_u64(m.group(2))
            except ValueError:
                raise ParseError(source, number, line, "'IOMMU NAME: Root Table Address: 0x...'") from None
            unit, block, cols = m.group(1), [], None
            continue
        if s.startswith("DMA Remapping is not enabled on "):
            continue
        words = s.split()
        j = _header(words)
        if j is not None:
            seen_header = True
            if j == 0:
                block, fill = [], 0
            elif not block or cols is None or cols[1] != j:
                raise ParseError(source, number, line, f"the half-table '{' '.join(words)}' after the half holding "
                                                       f"{_COLUMNS[j - 1]} (the documentation's split form)")
            elif cols[0] > 0 and fill != len(block):
                raise ParseError(source, number, line, f"as many rows in each half-table ({len(block)} before, {fill} here)")
            else:
                fill = 0
            cols = (j, j + len(words))
            continue
        if unit is None or cols is None:
            raise ParseError(source, number, line, "'IOMMU NAME: Root Table Address: 0x...' and the B.D.F header first")
        lo, hi = cols
        if len(words) != hi - lo:
            raise ParseError(source, number, line, _CTX_FORM if lo == 0 and hi == 5 else
                             f"{hi - lo} field(s) {' '.join(_COLUMNS[lo:hi])}")
        if lo == 0:
            row = (unit, number, dict(zip(range(lo, hi), words)))
            block.append(row)
            rows.append(row)
        else:
            if fill >= len(block):
                raise ParseError(source, number, line, f"at most {len(block)} rows in this half-table (one per B.D.F row)")
            block[fill][2].update(zip(range(lo, hi), words))
            fill += 1
    if not seen_header:
        raise ParseError(source, 1, text[:40], "a dmar_translation_struct dump (a 'B.D.F Root_entry ...' header)")
    out = []
    for unit, number, tok in rows:
        if len(tok) != 5:
            missing = ", ".join(_COLUMNS[k] for k in range(5) if k not in tok)
            raise ParseError(source, number, " ".join(tok.values()), f"every column; the half-tables never gave {missing}")
        if not _BDF.match(tok[0]):
            raise ParseError(source, number, tok[0], "B.D.F as bb:dd.f in hex (e.g. 00:02.0)")
        try:
            rhi, rlo = _hex_pair(tok[1], 2)
            chi, clo = _hex_pair(tok[2], 2)
            v2, v1, v0 = _hex_pair(tok[4], 3)
        except ValueError:
            raise ParseError(source, number, " ".join(tok.values()), _CTX_FORM) from None
        try:
            pasid = dec_int(tok[3], -1, (1 << 20) - 1)
        except ValueError:
            raise ParseError(source, number, tok[3], "PASID as -1 (legacy mode) or a decimal 0..2^20-1 "
                                                     "(print_tbl_walk prints it with %-6d)") from None
        out.append(ContextRow(unit, tok[0].lower(), rhi, rlo, chi, clo, None if pasid == -1 else pasid, (v0, v1, v2), number))
    return tuple(out)


def read_dmar_translation(path: Union[str, os.PathLike]) -> tuple[ContextRow, ...]:
    """Read one ``dmar_translation_struct`` file (bounded); errors name the file and line."""
    return parse_dmar_translation(read_bounded(path, MAX_FILE), source=str(path))
