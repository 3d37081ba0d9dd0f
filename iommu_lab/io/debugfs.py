"""Importer of Intel VT-d ``domain_translation_struct`` page-table dumps, every kernel era.

Two generations print the same rows (drivers/iommu/intel/debugfs.c ``pgtable_walk_level`` /
``dump_page_info``), one per present leaf: the IOVA's page-frame number (``0x%013lx``), a bar,
then the raw entry read at each level on the way down.

* **v5.3–v6.6**: one top-level file over every device with a domain
  (``show_device_domain_translation``). Each device starts with ``Device <name> @0x<root>``
  (``Device <name> with pasid <%d> @0x<root>`` until the default PASID went away), then a
  tab-separated header ``IOVA_PFN PML5E PML4E PDPE PDE PTE``; every row has all five entries,
  zero above the table's top and below a superpage leaf.
* **v6.7+**: per device ``<bdf>/domain_translation_struct`` and per PASID
  ``<bdf>/<pasid>/domain_translation_struct`` (``domain_translation_struct_show``). The section
  line is ``Device SSSS:BB:DD.F @0x<root>`` or ``... with pasid <%x> @0x<root>``, the root taken
  from the PASID entry by its PGTT (first-stage pointer for PGTT 1, second-stage pointer for 2
  and 3) and nothing printed at all for pass-through, so an empty file is a valid dump; a unit
  that is off prints ``DMA Remapping is not enabled on dmarN``. The header is space-padded and
  rows are variable length (commit e8aa45f8cc2c, "iommu/vt-d: debugfs: Dump entry pointing to
  huge page"): PML5E, PML4E and PDPE always, PDE only when non-zero, PTE only when both are, so
  a 1 GiB leaf row has 3 entries and a 2 MiB leaf row 4.

Pasted forms are accepted where unambiguous: the ABI document's half-tables
(``IOVA_PFN PML5E PML4E`` rows, then ``PDPE PDE PTE`` rows, row *i* of each together), rows
rewrapped by a mail client (a line of bare entries continuing the row above), ``$ cat`` prompt
lines, ``[...]`` elisions, CRLF and upper-case hex.

The section line does not say which table format the rows are in. The format comes from, in
order: an explicit ``fmt=``; ``pgtt=``; the matching ``dmar_translation_struct`` rows
(``contexts=``: the PASID entry's PGTT and AW); else second stage, and the dump says it assumed
so. Every raw word is written at its real table address (the root from the section line, each
lower table where its parent points), so ``PageTable.walk(iova)`` decodes exactly the dumped
words; rows that disagree about one entry are an error, not a silent overwrite.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from iommu_lab.core.ranges import U64_MAX
from iommu_lab.hardware import formats
from iommu_lab.hardware.formats import EntryKind
from iommu_lab.hardware.structures import Pgtt
from iommu_lab.io.dmar import ContextRow, parse_dmar_translation, read_dmar_translation
from iommu_lab.io.parse import ParseError, decode_text, hex_u64, read_bounded, text_lines
from iommu_lab.pagetable import PageTable

__all__ = [
    "DomainDump",
    "DomainDumps",
    "ContextRow",
    "DumpMemory",
    "parse_domain_translation",
    "read_domain_translation",
    "parse_dmar_translation",
    "read_dmar_translation",
    "format_domain_translation",
    "detect_debugfs",
]

MAX_FILE = 1 << 22
#: At most this many rows in one dump: each row writes up to five words of table memory.
MAX_ROWS = 1 << 16
_COLUMNS = ("PML5E", "PML4E", "PDPE", "PDE", "PTE")
_DEVICE = re.compile(r"^Device (\S+)(?: with pasid (\S+))? @(\S+)$")
_DOMAIN_HEADER = "IOVA_PFN PML5E PML4E PDPE PDE PTE"
_ROW_FORM = ("'0x<13 hex digits> |' then 3 to 5 raw entries 0x<16 hex digits> (PML5E PML4E PDPE [PDE [PTE]])")
_PFN = re.compile(r"0[xX]([0-9a-fA-F]{1,13})\Z")
_DEC = re.compile(r"[0-9]{1,7}\Z")
_HEXNUM = re.compile(r"(?:0[xX])?([0-9a-fA-F]{1,5})\Z")
_NOT_ENABLED = re.compile(r"^DMA Remapping is not enabled on (\S+)$")
#: The table formats a VT-d unit walks: its second-stage format and, for PGTT=1, x86-64.
_VTD_TABLES = {"vtd-ss": "second stage", "x86-64": "first stage"}


class DumpMemory:
    """Sparse physical memory holding a dump's table pages at their real (dumped) addresses.

    A dict of 4 KiB frames: real dumps scatter tables over the whole physical space, which a
    dense frame index cannot afford. Implements what the walkers and ``PageTable`` read.
    """

    def __init__(self, oas: int = 52, *, name: str = "dump") -> None:
        self.base, self.size, self.name = 0, 1 << oas, name
        self._frames: dict[int, np.ndarray] = {}
        self._next = None

    @property
    def last(self) -> int:
        return self.base + self.size - 1

    @property
    def bytes_used(self) -> int:
        return len(self._frames) * 4096

    @property
    def bytes_free(self) -> int:
        return self.size - self.bytes_used

    def frames_for(self, nbytes: int) -> int:
        return max(1, -(-nbytes // 4096))

    def contains(self, addr: int, nbytes: int = 8) -> bool:
        return 0 <= addr and addr + nbytes - 1 <= self.last

    def alloc(self, nbytes: int) -> int:
        """The preset root (first call) or the first free frame above every used one."""
        if self._next is not None:
            addr, self._next = self._next, None
        else:
            addr = (max(self._frames, default=0) + 1) << 12
        self._frames.setdefault(addr >> 12, np.zeros(512, dtype=np.uint64))
        return addr

    def free(self, addr: int) -> None:
        self._frames.pop(addr >> 12, None)

    def read_u64(self, addr: int) -> int:
        page = self._frames.get(int(addr) >> 12)
        return 0 if page is None else int(page[(int(addr) >> 3) & 511])

    def write_u64(self, addr: int, value: int) -> None:
        page = self._frames.setdefault(int(addr) >> 12, np.zeros(512, dtype=np.uint64))
        page[(int(addr) >> 3) & 511] = np.uint64(value)

    def gather(self, addrs, *, consume: bool = False):
        a = np.asarray(addrs, dtype=np.uint64)
        out = np.zeros(a.shape, dtype=np.uint64)
        ok = np.zeros(a.shape, dtype=bool)
        frames = a >> np.uint64(12)
        for fr in np.unique(frames):
            page = self._frames.get(int(fr))
            if page is None:
                continue
            sel = frames == fr
            out[sel] = page[((a[sel] >> np.uint64(3)) & np.uint64(511)).astype(np.int64)]
            ok[sel] = True
        return out, ok

    def read_block(self, addr: int, nwords: int) -> np.ndarray:
        return self.gather(np.uint64(addr) + np.arange(nwords, dtype=np.uint64) * np.uint64(8))[0]

    def scatter(self, addrs, values) -> None:
        for a, v in zip(np.asarray(addrs, dtype=np.uint64).tolist(), np.asarray(values).tolist()):
            self.write_u64(a, v)

    def snapshot(self) -> bytes:
        return b"".join(k.to_bytes(8, "little") + v.tobytes() for k, v in sorted(self._frames.items()))

    def __repr__(self) -> str:
        return f"<DumpMemory {self.name}: {len(self._frames)} table frame(s)>"


@dataclass(frozen=True)
class DomainDump:
    """One device's (or PASID's) dumped page table, rebuilt at its real addresses."""

    device: str | None
    pasid: int | None
    root: int
    pagetable: PageTable = field(compare=False, repr=False)
    rows: tuple[tuple[int, tuple[int, ...]], ...] = field(repr=False)  #: (iova, raw PML5E..PTE)
    line: int = 0  #: where the section starts in the file
    era: str | None = None  #: "v5.3-v6.6", "v6.7+" or None when the text does not say
    format_source: str = ""  #: how the table format was chosen

    @property
    def iovas(self) -> tuple[int, ...]:
        return tuple(iova for iova, _ in self.rows)

    @property
    def first_stage(self) -> bool:
        return _VTD_TABLES.get(self.pagetable.fmt.family) == "first stage"


class DomainDumps(tuple):
    """The sections of one ``domain_translation_struct`` file, plus what it says besides tables.

    ``disabled``: units that printed "DMA Remapping is not enabled on dmarN". An empty result
    with nothing disabled is the empty file the kernel prints for a pass-through device (or a
    device without a domain).
    """

    disabled: tuple[str, ...] = ()

    def __new__(cls, dumps: Sequence[DomainDump], disabled: Sequence[str] = ()):
        self = super().__new__(cls, dumps)
        self.disabled = tuple(disabled)
        return self

    def describe_empty(self) -> str:
        """Why there is no table: the units that are off, or pass-through."""
        if self.disabled:
            return "; ".join(f"DMA Remapping is not enabled on {u}" for u in self.disabled)
        return "no page table: an empty dump (the device is in pass-through or has no DMA domain)"


def _pfn(token: str) -> int:
    m = _PFN.match(token)
    if m is None:
        raise ValueError(token)
    return int(m.group(1), 16)


def _pasid(token: str, radix: int) -> int:
    """The section line's PASID: ``%d`` before v6.7, ``%x`` since; ASCII digits, 0..2^20-1."""
    m = (_DEC if radix == 10 else _HEXNUM).match(token)
    if m is None:
        raise ValueError(token)
    v = int(token, 10) if radix == 10 else int(m.group(1), 16)
    if v >= 1 << 20:
        raise ValueError(token)
    return v


def _fmt_for(fmt, pgtt, levels: int, source: str, line: int):
    """The page-table format of one section: explicit, by PGTT, or assumed second stage."""
    if fmt is not None:
        f = fmt if not isinstance(fmt, str) else None
        if f is None:
            try:
                f = formats.get(fmt)
            except Exception as e:  # formats.get raises our errors; re-raise as one ParseError
                raise ParseError(source, line, str(fmt)[:60], f"a page-table format name ({str(e)[:160]})") from None
        if _VTD_TABLES.get(f.family) is None:
            raise ParseError(source, line, f.name, "a VT-d table format for a VT-d dump: vtd-ss-<3|4|5>level "
                                                   "(second stage) or x86-64-<4|5>level (first stage)")
        return f, f"fmt={f.name}"
    if pgtt is None:
        return formats.get(f"vtd-ss-{max(levels, 3)}level"), "assumed second stage (no PGTT given)"
    if pgtt is Pgtt.FIRST_STAGE:
        return formats.get(f"x86-64-{min(max(levels, 4), 5)}level"), "PGTT=1 (first stage)"
    if pgtt in (Pgtt.SECOND_STAGE, Pgtt.NESTED):
        return formats.get(f"vtd-ss-{max(levels, 3)}level"), f"PGTT={int(pgtt)} ({pgtt.name.lower().replace('_', ' ')})"
    return None, "PGTT=4 (pass-through)"


def _check_pgtt(pgtt) -> Pgtt | None:
    if pgtt is None or isinstance(pgtt, Pgtt):
        return pgtt
    if isinstance(pgtt, str):
        key = pgtt.strip().upper().replace("-", "_").replace(" ", "_")
        alias = {"FS": "FIRST_STAGE", "SS": "SECOND_STAGE", "PT": "PASS_THROUGH", "FIRST": "FIRST_STAGE",
                 "SECOND": "SECOND_STAGE"}
        key = alias.get(key, key)
        if key in Pgtt.__members__:
            return Pgtt[key]
    elif isinstance(pgtt, int) and not isinstance(pgtt, bool) and pgtt in Pgtt._value2member_map_:
        return Pgtt(pgtt)
    raise ValueError(f"pgtt {str(pgtt)[:40]!r} is not a PASID-entry PGTT; use 1 / 'first-stage', 2 / 'second-stage', "
                     f"3 / 'nested' or 4 / 'pass-through' (PASID_ENTRY_PGTT_* in pasid.h)")


def _context_for(contexts, device: str | None, pasid: int | None) -> ContextRow | None:
    if not contexts or device is None:
        return None
    bdf = device.lower().split(":", 1)[1] if device.count(":") == 2 else device.lower()
    for row in contexts:
        if row.bdf == bdf and (row.pasid == pasid or (pasid is None and row.pasid in (None, 0))):
            return row
    return None


def _build(sec, source, fmt, pgtt, contexts) -> DomainDump | None:
    """Write every row's raw words at real table addresses; check each row walks as printed."""
    device, pasid, root, rows, start_line, era = sec
    used = [i for i in range(5) if any(r[i] for _, _, r in rows)]
    levels = 5 - min(used) if used else 4
    how = None
    ctx = _context_for(contexts, device, pasid) if fmt is None and pgtt is None else None
    if ctx is not None:
        pgtt, levels = ctx.pgtt, max(levels, ctx.aw + 2)
        how = f"PGTT from {ctx.iommu} {ctx.bdf} line {ctx.line}"
    fmt, chosen = _fmt_for(fmt, pgtt, levels, source, start_line)
    if fmt is None:
        if rows:
            raise ParseError(source, rows[0][0], "", "no rows for a pass-through PASID entry (PGTT=4 has no page table)")
        return None
    top = fmt.top_level
    memory = DumpMemory(fmt.oas, name=device or source)
    owner: dict[int, tuple[int, int]] = {}  # entry address -> (raw, line)
    table_level: dict[int, int] = {}
    if root is None:
        pointers = {raw & 0x000F_FFFF_FFFF_F000 for _n, _iova, raws in rows for raw in raws}
        root = 0x1000
        while root in pointers:
            root += 0x1000
    if root % 4096 or root >> fmt.oas:
        raise ParseError(source, start_line, hex(root), f"a 4 KiB aligned root table address below 2^{fmt.oas}")
    memory._next = root
    table_level[root] = top
    out_rows = []
    for number, iova, raws in rows:
        if fmt.sign_extend and iova >> (fmt.va_bits - 1):
            # pgtable_walk_level counts the IOVA up from 0 without sign extension
            iova = (iova | ~((1 << fmt.va_bits) - 1)) & U64_MAX
        if not fmt.aperture.start <= iova <= fmt.aperture.last and not (fmt.sign_extend and fmt.is_canonical(iova)):
            raise ParseError(source, number, hex(iova), f"an IOVA inside the {fmt.name} aperture")
        for k in range(5 - (top + 1)):
            if raws[k]:
                raise ParseError(source, number, f"{_COLUMNS[k]}=0x{raws[k]:016x}",
                                 f"zero {_COLUMNS[k]}: a {fmt.levels}-level table has no such level")
        table = root
        leaf_at = None
        for level in range(top, -1, -1):
            raw = raws[4 - level]
            entry = fmt.decode(raw, level)
            if table_level.setdefault(table, level) != level:
                raise ParseError(source, number, f"table 0x{table:x}",
                                 "each table page used at one level only (this one is reached at two)")
            addr = table + fmt.index(level, iova) * 8
            prev = owner.get(addr)
            if prev is not None and prev[0] != raw:
                raise ParseError(source, number, f"{_COLUMNS[4 - level]}=0x{raw:016x}",
                                 f"the same entry as line {prev[1]} (0x{prev[0]:016x} at 0x{addr:x})")
            owner[addr] = (raw, number)
            if entry.kind is EntryKind.LEAF:
                leaf_at = level
                break
            if entry.kind is not EntryKind.TABLE:
                raise ParseError(source, number, f"{_COLUMNS[4 - level]}=0x{raw:016x}",
                                 f"a present {fmt.level_name(level)} (table pointer or superpage leaf) in {fmt.name}")
            table = entry.address
        if leaf_at is None:
            raise ParseError(source, number, "", "a row ending at a present leaf")
        if any(raws[4 - lv] for lv in range(leaf_at)):
            raise ParseError(source, number, "", f"zero columns below the {fmt.level_name(leaf_at)} superpage leaf")
        if iova % fmt.decode(raws[4 - leaf_at], leaf_at).size:
            raise ParseError(source, number, hex(iova), "an IOVA_PFN aligned to its leaf's page size")
        out_rows.append((iova, raws))
    for addr, (raw, _n) in owner.items():
        memory.write_u64(addr, raw)
    pt = PageTable(fmt, memory=memory)
    return DomainDump(device, pasid, root, pt, tuple(out_rows), start_line, era, how or chosen)


def _entries(tokens: list[str], source: str, number: int, line: str, first: int) -> list[int]:
    out = []
    for k, tok in enumerate(tokens):
        try:
            out.append(hex_u64(tok))
        except ValueError:
            name = _COLUMNS[first + k] if first + k < 5 else "entry"
            raise ParseError(source, number, line, f"{name} as a raw entry 0x<16 hex digits> in a row {_ROW_FORM}") from None
    return out


def parse_domain_translation(text: Union[str, bytes], *, source: str = "domain_translation_struct",
                             fmt=None, pgtt=None, contexts: Sequence[ContextRow] | None = None) -> DomainDumps:
    """Read a ``domain_translation_struct`` dump of any era into one ``DomainDump`` per section.

    Parameters
    ----------
    text : str or bytes
        The file's content. Sections start with a ``Device ...`` line (optional when the file
        holds one table, as a trimmed paste). Empty, or only "DMA Remapping is not enabled"
        lines, is a valid dump with no table.
    source : str
        Name used in errors.
    fmt : str or format, optional
        The table format; must be a VT-d one (``vtd-ss-*`` second stage, ``x86-64-*`` first stage).
    pgtt : Pgtt, int or str, optional
        The PASID entry's PGTT: first-stage rows are x86-64 entries; pass-through has no table.
    contexts : sequence of ContextRow, optional
        ``dmar_translation_struct`` rows: each section takes the PGTT and AW of its device's row.

    Raises
    ------
    ParseError
        On the first malformed or inconsistent line; nothing is returned half-built.
    ValueError
        When ``pgtt`` is not a PGTT value.
    """
    pgtt = _check_pgtt(pgtt)
    text = decode_text(text, source, MAX_FILE)
    lines = text_lines(text, source)
    # Era evidence decides the section line's PASID radix (%d before v6.7, %x since).
    short = any("|" in ln and 0 < len(ln.split("|", 1)[1].split()) < 5 for _n, ln in lines)
    sections: list[list] = []  # [device, pasid token + line, root, rows, line, era]
    disabled: list[str] = []
    current = None
    half = None  # (first column after IOVA_PFN that the first half-table lacks, block start)
    second = None  # [first column of the second half, next row to fill]
    last_row = None  # the last row read, which a rewrapped line right below it continues
    last_at = 0
    total_rows = 0
    for number, line in lines:
        stripped = line.strip()
        if stripped == "[...]":
            continue
        m = _NOT_ENABLED.match(stripped)
        if m:
            disabled.append(m.group(1))
            continue
        m = _DEVICE.match(stripped)
        if m:
            try:
                root = hex_u64(m.group(3))
            except ValueError:
                raise ParseError(source, number, line, "root as a hex address, 'Device NAME @0xROOT'") from None
            current = [m.group(1), (m.group(2), number, line), root, [], number, "v6.7+" if short else None]
            sections.append(current)
            half = second = last_row = None
            continue
        words = stripped.split()
        if words[0] == "IOVA_PFN" and tuple(words[1:]) == _COLUMNS[:len(words) - 1]:
            if current is None:
                current = [None, None, None, [], number, None]
                sections.append(current)
            if current[5] is None:
                current[5] = "v5.3-v6.6" if "\t" in line and "  " not in line else ("v6.7+" if "   " in line else None)
            half = (len(words) - 1, len(current[3])) if len(words) < 6 else None
            second = last_row = None
            continue
        if current is not None and half is not None and len(words) < 5 and tuple(words) == _COLUMNS[half[0]:half[0] + len(words)] \
                and len(words) == 5 - half[0]:
            block = current[3][half[1]:]
            if any(len(r[2]) != half[0] for r in block):
                raise ParseError(source, number, line, f"every row of the first half-table with exactly {half[0]} entries "
                                                       f"(a shorter row cannot be paired with its second half)")
            second = [half[0], half[1]]
            last_row = None
            continue
        if stripped.startswith("Device") or words[0] == "IOVA_PFN":
            raise ParseError(source, number, line, "'Device NAME @0xROOT', 'Device NAME with pasid N @0xROOT' "
                                                   f"or the header '{_DOMAIN_HEADER}'")
        if current is None:
            raise ParseError(source, number, line, f"a 'Device NAME @0xROOT' line or the header '{_DOMAIN_HEADER}' first")
        if "|" in stripped:
            left, _bar, right = stripped.partition("|")
            if len(left.split()) != 1:
                raise ParseError(source, number, line, _ROW_FORM)
            try:
                pfn = _pfn(left.strip())
            except ValueError:
                raise ParseError(source, number, line, "IOVA_PFN as 0x then at most 13 hex digits") from None
            cols = right.split()
            if len(cols) > 5:
                raise ParseError(source, number, line, _ROW_FORM)
            total_rows += 1
            if total_rows > MAX_ROWS:
                raise ParseError(source, number, line, f"at most {MAX_ROWS} rows in one dump")
            last_row = [number, pfn, _entries(cols, source, number, line, 0)]
            last_at = number
            current[3].append(last_row)
            continue
        if second is not None:
            block = current[3]
            if second[1] >= len(block):
                raise ParseError(source, number, line, f"no more rows in the second half-table than in the first "
                                                       f"({len(block) - half[1]})")
            row = block[second[1]]
            row[2].extend(_entries(words, source, number, line, second[0]))
            if len(row[2]) > 5:
                raise ParseError(source, number, line, _ROW_FORM)
            second[1] += 1
            continue
        if last_row is not None and number == last_at + 1:
            row, last_at = last_row, number
            if len(row[2]) + len(words) > 5:
                raise ParseError(source, number, line, f"a continuation of line {row[0]} with at most "
                                                       f"{5 - len(row[2])} more entries (a rewrapped row)")
            row[2].extend(_entries(words, source, number, line, len(row[2])))
            continue
        raise ParseError(source, number, line, _ROW_FORM)
    if not sections and not disabled and any(True for _ in lines):
        n, ln = lines[0]
        raise ParseError(source, n, ln, f"a domain_translation_struct dump (header '{_DOMAIN_HEADER}')")
    built = []
    for dev, ptok, root, rows, start, era in sections:
        pasid = None
        if ptok is not None and ptok[0] is not None:
            radix = 16 if era == "v6.7+" or re.search(r"[a-fA-FxX]", ptok[0]) else (10 if era else 16)
            try:
                pasid = _pasid(ptok[0], radix)
            except ValueError:
                raise ParseError(source, ptok[1], ptok[2], "pasid as a number 0..2^20-1 ('%d' before v6.7, hex since): "
                                                           "'Device NAME with pasid N @0xROOT'") from None
        full = []
        for number, pfn, ents in rows:
            if len(ents) < 3:
                raise ParseError(source, number, f"{len(ents)} entries", _ROW_FORM)
            full.append((number, pfn << 12, tuple(ents) + (0,) * (5 - len(ents))))
        d = _build([dev, pasid, root, full, start, era], source, fmt, pgtt, contexts)
        if d is not None:
            built.append(d)
    return DomainDumps(built, disabled)


def read_domain_translation(path: Union[str, os.PathLike], **kw) -> DomainDumps:
    """Read one ``domain_translation_struct`` file (bounded); errors name the file and line."""
    return parse_domain_translation(read_bounded(path, MAX_FILE), source=str(path), **kw)


def format_domain_translation(pt: PageTable, device: str = "0000:00:02.0", *, era: str = "v5.3-v6.6",
                              pasid: int | None = None, split: bool = False) -> str:
    """The dump the kernel would print for ``pt`` (fixtures and round-trip tests).

    ``era="v5.3-v6.6"``: tab header, five entries per row, ``with pasid %d``. ``era="v6.7+"``:
    the space-padded header, rows cut after PDPE/PDE at a superpage leaf, ``with pasid %x``.
    ``split=True`` prints the ABI document's two half-tables.
    """
    if era not in ("v5.3-v6.6", "v6.7+"):
        raise ValueError(f"era {era!r} is not 'v5.3-v6.6' or 'v6.7+'")
    new = era == "v6.7+"
    ptxt = "" if pasid is None else (f" with pasid {pasid:x}" if new else f" with pasid {pasid:d}")
    lines = [f"Device {device}{ptxt} @0x{pt.root:x}"]
    rows = []
    for m in sorted(pt.mappings(), key=lambda m: m.iova):
        path = [0] * 5
        for step in pt.walk(m.iova).steps:
            path[4 - step.level] = step.raw
        n = 5
        if new:
            n = 3 + (1 if path[3] else 0) + (1 if path[3] and path[4] else 0)
        rows.append((m.iova, path[:n]))
    if new:
        # "%-17s\t%-18s\t%-18s\t%-18s\t%-18s\t%-s" in domain_translation_struct_show
        header = "\t".join([f"{'IOVA_PFN':<17}"] + [f"{c:<18}" for c in _COLUMNS[:-1]] + [_COLUMNS[-1]])
    else:
        header = "IOVA_PFN\t\tPML5E\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE"
    if not split:
        lines.append(header)
        lines += [f"0x{iova >> 12:013x} |\t" + "\t".join(f"0x{v:016x}" for v in ents) for iova, ents in rows]
    else:
        lines.append("IOVA_PFN                PML5E                   PML4E")
        lines += [f"0x{iova >> 12:013x} |       " + "      ".join(f"0x{v:016x}" for v in ents[:2]) for iova, ents in rows]
        lines += ["", "PDPE                    PDE                     PTE"]
        lines += ["      ".join(f"0x{v:016x}" for v in ents[2:]) for _iova, ents in rows]
    return "\n".join(lines) + "\n"


def detect_debugfs(text: Union[str, bytes]) -> str | None:
    """``"domain"``, ``"dmar"`` or None, from the header line the kernel prints."""
    head = text[:4096]
    if isinstance(head, bytes):
        head = head.decode("ascii", "replace")
    if "IOVA_PFN" in head:
        return "domain"
    if "B.D.F" in head and "Root_entry" in head:
        return "dmar"
    return None
