"""Importers of Intel VT-d debugfs dumps: ``domain_translation_struct`` and ``dmar_translation_struct``.

Formats as printed by drivers/iommu/intel/debugfs.c (Linux v5.x–v6.x):

``domain_translation_struct`` (``show_device_domain_translation`` / ``pgtable_walk_level``)::

    Device 0000:00:02.0 @0x10f3b5000            (newer kernels: "Device X with pasid N @0x...")
    IOVA_PFN\\t\\tPML5E\\t\\t\\tPML4E\\t\\t\\tPDPE\\t\\t\\tPDE\\t\\t\\tPTE
    0x00000fffff000 |\\t0x0000000000000000\\t0x...\\t0x...\\t0x...\\t0x...

One row per present leaf: the IOVA's page frame number (``%013lx``), then the raw entry read at
each level on the way down (``path[5]`` .. ``path[1]``); levels above the table's top and below a
superpage leaf print as zero. The parser writes every raw word at its real table address (the
root from the ``Device`` line, each lower table at the address its parent entry points to), so
``PageTable.walk(iova)`` decodes exactly the dumped words. Rows that disagree about the same
entry are an error, not a silent overwrite.

``dmar_translation_struct`` (``root_tbl_walk`` / ``print_tbl_walk``)::

    IOMMU dmar0: Root Table Address: 0x10f3a0000
    B.D.F\\tRoot_entry\\t\\t\\t\\tContext_entry\\t\\t\\t\\tPASID\\tPASID_table_entry
    00:02.0\\t0xHI:0xLO\\t0xHI:0xLO\\t-1    \\t0xV2:0xV1:0xV0

Each row becomes a ``ContextRow`` with the root, context and PASID entries decoded (VT-d spec
§9.1–9.6: present bits, table pointers, domain id, address width, translation type).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from iommu_lab.hardware import formats
from iommu_lab.hardware.formats import EntryKind
from iommu_lab.io.parse import MAX_LINE, ParseError, hex_u64
from iommu_lab.pagetable import PageTable

__all__ = [
    "DomainDump",
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
_COLUMNS = ("PML5E", "PML4E", "PDPE", "PDE", "PTE")
_DEVICE = re.compile(r"^Device (\S+)(?: with pasid (\S+))? @(0x[0-9a-fA-F]+)$")
_DOMAIN_HEADER = "IOVA_PFN PML5E PML4E PDPE PDE PTE"
_ROW_FORM = "'0x<13 hex digits> |' then 5 raw entries 0x<16 hex digits> (PML5E PML4E PDPE PDE PTE)"


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
    """One device's (or PASID's) dumped second-level table, rebuilt at its real addresses."""

    device: str | None
    pasid: int | None
    root: int
    pagetable: PageTable = field(compare=False, repr=False)
    rows: tuple[tuple[int, tuple[int, ...]], ...] = field(repr=False)  #: (iova, raw PML5E..PTE)
    line: int = 0  #: where the section starts in the file

    @property
    def iovas(self) -> tuple[int, ...]:
        return tuple(iova for iova, _ in self.rows)


def _text(text: Union[str, bytes], source: str) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise ParseError(source, 1, repr(text[:40]), "ASCII text (the file looks binary)") from None
    if len(text) > MAX_FILE:
        raise ParseError(source, text.count("\n", 0, MAX_FILE) + 1, "...", f"a file of at most {MAX_FILE} bytes")
    return text


def _check_line(line: str, source: str, number: int) -> None:
    if len(line) > MAX_LINE:
        raise ParseError(source, number, line, f"a line of at most {MAX_LINE} characters")
    if not line.replace("\t", " ").isprintable():
        raise ParseError(source, number, line, "printable text (the file looks binary)")


def _pfn(token: str) -> int:
    if not token.lower().startswith("0x") or len(token) > 15:
        raise ValueError
    return int(token, 16)


def _parse_row(line: str, source: str, number: int) -> tuple[int, tuple[int, ...]]:
    left, bar, right = line.partition("|")
    cols = right.split()
    if not bar or len(left.split()) != 1 or len(cols) != 5:
        raise ParseError(source, number, line, _ROW_FORM)
    try:
        pfn = _pfn(left.strip())
    except ValueError:
        raise ParseError(source, number, line, "IOVA_PFN as 0x then at most 13 hex digits") from None
    raws = []
    for name, tok in zip(_COLUMNS, cols):
        try:
            raws.append(hex_u64(tok))
        except ValueError:
            raise ParseError(source, number, line, f"{name} as a raw entry 0x<16 hex digits>") from None
    return pfn << 12, tuple(raws)


def _build(device, pasid, root, rows, source, start_line, fmt_name) -> DomainDump:
    """Write every row's raw words at real table addresses; check each row walks as printed."""
    used = [i for i in range(5) if any(r[i] for _, _, r in rows)]
    levels = 5 - min(used) if used else 4
    if fmt_name is None:
        fmt_name = f"vtd-ss-{max(levels, 3)}level"
    fmt = formats.get(fmt_name)
    top = fmt.top_level
    memory = DumpMemory(fmt.oas, name=device or source)
    owner: dict[int, tuple[int, int]] = {}  # entry address -> (raw, line)
    table_level: dict[int, int] = {}
    if root is None:
        pointers = set()
        for _n, _iova, raws in rows:
            for raw in raws:
                pointers.add(raw & 0x000F_FFFF_FFFF_F000)
        root = 0x1000
        while root in pointers:
            root += 0x1000
    if root % 4096 or root >> fmt.oas:
        raise ParseError(source, start_line, hex(root), f"a 4 KiB aligned root table address below 2^{fmt.oas}")
    memory._next = root
    table_level[root] = top
    for number, iova, raws in rows:
        if iova > fmt.aperture.last:
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
                                 f"a present {fmt.level_name(level)} (table pointer or superpage leaf)")
            table = entry.address
        if leaf_at is None:
            raise ParseError(source, number, "", "a row ending at a present leaf")
        if any(raws[4 - lv] for lv in range(leaf_at)):
            raise ParseError(source, number, "", f"zero columns below the {fmt.level_name(leaf_at)} superpage leaf")
        if iova % fmt.decode(raws[4 - leaf_at], leaf_at).size:
            raise ParseError(source, number, hex(iova), "an IOVA_PFN aligned to its leaf's page size")
    for addr, (raw, _n) in owner.items():
        memory.write_u64(addr, raw)
    pt = PageTable(fmt, memory=memory)
    return DomainDump(device, pasid, root, pt, tuple((iova, raws) for _n, iova, raws in rows), start_line)


def parse_domain_translation(text: Union[str, bytes], *, source: str = "domain_translation_struct",
                             fmt: str | None = None) -> tuple[DomainDump, ...]:
    """Read a ``domain_translation_struct`` dump into one ``DomainDump`` per device section.

    Parameters
    ----------
    text : str or bytes
        The file's content. Sections start with ``Device NAME @0xROOT`` (optional when the file
        holds one table: the per-device files of newer kernels, or a trimmed paste).
    source : str
        Name used in errors.
    fmt : str, optional
        Page-table format name; default ``vtd-ss-<levels>level`` from the highest non-zero column.

    Raises
    ------
    ParseError
        On the first malformed or inconsistent line; nothing is returned half-built.
    """
    text = _text(text, source)
    sections: list[list] = []  # [device, pasid, root, rows, line]
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        _check_line(line, source, number)
        stripped = line.strip()
        if not stripped:
            continue
        m = _DEVICE.match(stripped)
        if m:
            pasid = None
            if m.group(2) is not None:
                try:
                    pasid = int(m.group(2), 16)
                except ValueError:
                    raise ParseError(source, number, line, "pasid as hex, 'Device NAME with pasid N @0xROOT'") from None
            try:
                root = hex_u64(m.group(3))
            except ValueError:
                raise ParseError(source, number, line, "root as a hex address, 'Device NAME @0xROOT'") from None
            current = [m.group(1), pasid, root, [], number]
            sections.append(current)
            continue
        if " ".join(stripped.split()) == _DOMAIN_HEADER:
            if current is None:
                current = [None, None, None, [], number]
                sections.append(current)
            continue
        if stripped.startswith("Device"):
            raise ParseError(source, number, line, "'Device NAME @0xROOT' or 'Device NAME with pasid N @0xROOT'")
        if current is None:
            raise ParseError(source, number, line, f"a 'Device NAME @0xROOT' line or the header '{_DOMAIN_HEADER}' first")
        iova, raws = _parse_row(stripped, source, number)
        current[3].append((number, iova, raws))
    if not sections:
        raise ParseError(source, 1, text[:40], f"a domain_translation_struct dump (header '{_DOMAIN_HEADER}')")
    return tuple(_build(dev, pasid, root, rows, source, line, fmt) for dev, pasid, root, rows, line in sections)


def read_domain_translation(path: Union[str, os.PathLike], **kw) -> tuple[DomainDump, ...]:
    """Read one ``domain_translation_struct`` file; errors name the file and line."""
    return parse_domain_translation(_read(path), source=str(path), **kw)


def _read(path) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()[: MAX_FILE + 1]
    except OSError as e:
        raise ParseError(str(p), 0, "", f"a readable file ({e.strerror})") from None


def format_domain_translation(pt: PageTable, device: str = "0000:00:02.0") -> str:
    """The dump the kernel would print for ``pt`` (used to make fixtures and round-trip tests)."""
    lines = [f"Device {device} @0x{pt.root:x}", "IOVA_PFN\t\tPML5E\t\t\tPML4E\t\t\tPDPE\t\t\tPDE\t\t\tPTE"]
    for m in sorted(pt.mappings(), key=lambda m: m.iova):
        path = [0] * 5
        for step in pt.walk(m.iova).steps:
            path[4 - step.level] = step.raw
        lines.append(f"0x{m.iova >> 12:013x} |\t" + "\t".join(f"0x{v:016x}" for v in path))
    return "\n".join(lines) + "\n"


# -- dmar_translation_struct ------------------------------------------------------------------
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

    def decoded(self, scalable: bool | None = None) -> dict[str, int | str | None]:
        """Named fields: root/context present bits and pointers, DID, AW, TT/PGTT."""
        if scalable is None:
            scalable = self.pasid is not None
        d: dict[str, int | str | None] = {"iommu": self.iommu, "bdf": self.bdf, "pasid": self.pasid}
        d["root_present"] = self.root_lo & 1
        d["context_table"] = self.root_lo & ~0xFFF & (2**64 - 1)
        d["context_present"] = self.context_lo & 1
        if scalable:
            d["upper_context_table"] = self.root_hi & ~0xFFF & (2**64 - 1)
            d["pasid_dir"] = self.context_lo & ~0xFFF & (2**64 - 1)
            d["pasid_dir_size"] = 1 << (_bits(self.context_lo, 9, 11) + 7)
            v0, v1, v2 = self.pasid_entry
            d["pasid_present"] = v0 & 1
            d["pgtt"] = {1: "first-stage", 2: "second-stage", 3: "nested", 4: "pass-through"}.get(_bits(v0, 6, 8), "reserved")
            d["aw"] = _bits(v0, 2, 4)
            d["did"] = _bits(v1, 0, 15)
            d["ss_table"] = v0 & ~0xFFF & (2**64 - 1)
            d["fs_table"] = v2 & ~0xFFF & (2**64 - 1)
        else:
            d["tt"] = {0: "translated", 1: "translated+dev-tlb", 2: "pass-through"}.get(_bits(self.context_lo, 2, 3), "reserved")
            d["ss_table"] = self.context_lo & ~0xFFF & (2**64 - 1)
            d["aw"] = _bits(self.context_hi, 0, 2)
            d["did"] = _bits(self.context_hi, 8, 23)
        return d


_BDF = re.compile(r"^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_CTX_FORM = "B.D.F  0xROOT_HI:0xROOT_LO  0xCTX_HI:0xCTX_LO  PASID  0xV2:0xV1:0xV0"


def _hex_pair(token: str, n: int) -> tuple[int, ...]:
    parts = token.split(":")
    if len(parts) != n:
        raise ValueError
    return tuple(hex_u64(p) for p in parts)


def parse_dmar_translation(text: Union[str, bytes], *, source: str = "dmar_translation_struct") -> tuple[ContextRow, ...]:
    """Read a ``dmar_translation_struct`` dump: one ``ContextRow`` per present device/PASID."""
    text = _text(text, source)
    rows = []
    iommu = None
    seen_header = False
    for number, line in enumerate(text.splitlines(), start=1):
        _check_line(line, source, number)
        s = line.strip()
        if not s:
            continue
        if s.startswith("IOMMU ") and ": Root Table Address: " in s:
            iommu = s[6:].split(":", 1)[0]
            try:
                hex_u64(s.rsplit(" ", 1)[1])
            except ValueError:
                raise ParseError(source, number, line, "'IOMMU NAME: Root Table Address: 0x...'") from None
            continue
        if s.startswith("DMA Remapping is not enabled on "):
            continue
        if s.split()[:1] == ["B.D.F"]:
            seen_header = True
            continue
        if iommu is None or not seen_header:
            raise ParseError(source, number, line, "'IOMMU NAME: Root Table Address: 0x...' and the B.D.F header first")
        tok = s.split()
        if len(tok) != 5 or not _BDF.match(tok[0]):
            raise ParseError(source, number, line, _CTX_FORM)
        try:
            rhi, rlo = _hex_pair(tok[1], 2)
            chi, clo = _hex_pair(tok[2], 2)
            pasid = int(tok[3], 10)
            v2, v1, v0 = _hex_pair(tok[4], 3)
        except ValueError:
            raise ParseError(source, number, line, _CTX_FORM) from None
        if pasid < -1 or pasid >= 1 << 20:
            raise ParseError(source, number, line, "PASID -1 (legacy) or 0..2^20-1")
        rows.append(ContextRow(iommu, tok[0], rhi, rlo, chi, clo, None if pasid == -1 else pasid, (v0, v1, v2), number))
    if not seen_header:
        raise ParseError(source, 1, text[:40], "a dmar_translation_struct dump (a 'B.D.F Root_entry ...' header)")
    return tuple(rows)


def read_dmar_translation(path: Union[str, os.PathLike]) -> tuple[ContextRow, ...]:
    """Read one ``dmar_translation_struct`` file; errors name the file and line."""
    return parse_dmar_translation(_read(path), source=str(path))


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
