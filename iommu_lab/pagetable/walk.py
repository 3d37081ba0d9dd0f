"""The one page-table walker, for every format, and its vectorised twin ``translate``.

A walk starts at the root table, reads one raw 64-bit word per level from a memory object
(anything with ``read_u64(addr)``), classifies it with the format's codec, and either descends
to the table the entry points at, stops at a leaf, or faults. It never consults a record of
"what was mapped": the entries are the only truth, as for the hardware (generic_pt
``pt_walk_range`` / ``__iova_to_phys``; io-pgtable-arm ``arm_lpae_iova_to_phys``; VT-d
``pfn_to_dma_pte``; AMD ``fetch_pte``).

Interposition seam (for nested, two-dimensional walks)
------------------------------------------------------
A stage-1 table lives in guest-physical memory: its root and every next-level pointer are
GPAs/IPAs, and the hardware translates each *entry address* through stage 2 before reading it
(QEMU ``smmu-common.c`` ``translate_table_addr_ipa``). ``walk`` exposes exactly that step:

``table_hook(entry_address, level) -> read_address | (read_address, detail)``
    Called before every entry read with the address of the entry in the walk's own address
    space (root or pointer + index * 8) and the level being read. It returns the address at
    which ``memory`` is read, optionally with a ``detail`` object (e.g. the stage-2 ``Walk``)
    stored on the ``WalkStep`` as ``via``. Raise ``TableFetchError(detail)`` to fault the
    walk with ``FaultReason.TABLE_TRANSLATION`` (a stage-2 fault on a stage-1 table fetch).

Example: a stage-1 walk over a stage-2 table, counting the 2-D references::

    def through_s2(gpa, level):
        w2 = s2.walk(gpa, access="r")          # s2: a PageTable over host memory
        if not w2.ok:
            raise TableFetchError(w2)
        return w2.pa, w2

    w1 = walk(s1.fmt, host_memory, s1.root, iova, table_hook=through_s2)
    refs = w1.references + sum(s.via.references for s in w1.steps)   # + the final s2 walk of w1.pa

``translate`` takes the same seam vectorised: ``table_hook_vec(addresses, level) ->
(read_addresses, ok_mask)`` over uint64 arrays; its ``memory`` needs ``gather(addresses) ->
(words, ok_mask)`` (``PhysicalMemory`` has it).

The memory protocol the walkers use is small: ``read_u64(addr)`` for ``walk`` and
``gather(uint64_array)`` for ``translate``. A nesting model can pass its own object (e.g. a
guest-physical view that resolves frames through stage 2) as long as it provides these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from iommu_lab.core import display
from iommu_lab.core.faults import FaultReason
from iommu_lab.core.ranges import check_u64, fmt_addr, fmt_size
from iommu_lab.hardware.codecs import EntryKind, Perm, parse_perm
from iommu_lab.hardware.formats import DecodedEntry, Format
from iommu_lab.pagetable.memory import PhysicalMemory

__all__ = [
    "FaultReason",
    "TableFetchError",
    "TranslatedBatch",
    "Translation",
    "Walk",
    "WalkFault",
    "WalkStep",
    "translate",
    "walk",
]

_U64 = np.uint64


_KIND_FAULT = {
    EntryKind.EMPTY: FaultReason.NOT_PRESENT,
    EntryKind.RESERVED: FaultReason.RESERVED_BITS,
    EntryKind.BAD_TYPE: FaultReason.INVALID_ENTRY,
    EntryKind.LEVEL_SKIP: FaultReason.LEVEL_SKIP,
    EntryKind.MISALIGNED: FaultReason.MISALIGNED_SUPERPAGE,
}


class TableFetchError(Exception):
    """Raised by a ``table_hook`` when an entry address does not translate."""

    def __init__(self, detail: Any = None, message: str = "") -> None:
        super().__init__(message or "table fetch did not translate")
        self.detail = detail


@dataclass(frozen=True)
class WalkFault:
    """Where and why a walk faulted. ``level`` is None for input checks before any read."""

    level: int | None
    reason: FaultReason
    message: str = ""
    detail: Any = None


@dataclass(frozen=True)
class WalkStep:
    """One level of a walk: which table, which index, what was read and what it means."""

    level: int
    name: str
    table: int  #: table base in the walk's address space (root or previous pointer)
    index: int
    entry_address: int  #: table + index * 8, in the walk's address space
    read_address: int  #: where memory was read (differs under a table_hook)
    raw: int
    entry: DecodedEntry
    via: Any = None  #: what the table_hook returned with the address (e.g. a stage-2 Walk)

    @property
    def kind(self) -> EntryKind:
        return self.entry.kind


@dataclass(frozen=True)
class Translation:
    """A successful walk's result."""

    pa: int
    size: int
    perm: Perm
    level: int
    page_base: int


@dataclass(frozen=True)
class Walk:
    """A complete single-IOVA walk: every step, then a translation or a fault."""

    fmt: Format
    iova: int
    root: int
    steps: tuple[WalkStep, ...]
    result: Translation | None = None
    fault: WalkFault | None = None
    access: Perm = Perm.NONE

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def pa(self) -> int | None:
        return self.result.pa if self.result else None

    @property
    def page_size(self) -> int | None:
        return self.result.size if self.result else None

    @property
    def perm(self) -> Perm | None:
        return self.result.perm if self.result else None

    @property
    def accesses(self) -> list[int]:
        """Physical addresses of the memory references the walk made, in order."""
        return [s.read_address for s in self.steps]

    @property
    def references(self) -> int:
        return len(self.steps)

    def to_dataframe(self):
        from iommu_lab.core.frames import addr_frame

        cols: dict[str, list] = {
            k: []
            for k in (
                "level",
                "name",
                "table",
                "index",
                "entry_address",
                "read_address",
                "raw",
                "kind",
                "decoded",
            )
        }
        for s in self.steps:
            for k, v in (
                ("level", s.level),
                ("name", s.name),
                ("table", s.table),
                ("index", s.index),
                ("entry_address", s.entry_address),
                ("read_address", s.read_address),
                ("raw", s.raw),
                ("kind", s.kind.name.lower()),
                ("decoded", str(s.entry)),
            ):
                cols[k].append(v)
        return addr_frame(cols, hex_columns=["table", "entry_address", "read_address", "raw"])

    def summary(self) -> str:
        if self.result:
            r = self.result
            return (
                f"=> pa {fmt_addr(r.pa)} ({fmt_size(r.size)} {self.fmt.level_name(r.level)} leaf, {r.perm}), "
                f"{self.references} memory reference(s)"
            )
        f = self.fault
        where = f" at {self.fmt.level_name(f.level)}" if f.level is not None else ""
        return (
            f"=> FAULT {f.reason.value}{where}: {f.message} ({self.references} memory reference(s))"
        )

    def __str__(self) -> str:
        lines = [f"walk {fmt_addr(self.iova)} in {self.fmt.name}, root {fmt_addr(self.root)}"]
        for s in self.steps:
            lines.append(
                f"  {s.name:>9} table {s.table:#x} [{s.index:4d}] @ {s.read_address:#x} = {s.raw:#018x}  {s.entry}"
            )
        lines.append("  " + self.summary())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Walk {fmt_addr(self.iova)} {self.fmt.name}: {self.summary()[3:]}>"

    plot = display.plot

    _repr_html_ = display.html


def _access(access) -> Perm:
    if access is None:
        return Perm.NONE
    return parse_perm(access)


def _input_fault(fmt: Format, iova: int) -> WalkFault | None:
    if not fmt.is_canonical(iova):
        return WalkFault(
            None,
            FaultReason.NON_CANONICAL,
            f"{fmt_addr(iova)}: bits 63..{fmt.va_bits - 1} must all equal bit {fmt.va_bits - 1}",
        )
    if not fmt.sign_extend and iova not in fmt.input_ranges:
        return WalkFault(
            None, FaultReason.OUT_OF_RANGE, f"{fmt_addr(iova)} is outside {fmt.input_ranges}"
        )
    return None


def walk(
    fmt: Format,
    memory,
    root: int,
    iova: int,
    *,
    access=None,
    table_hook: Callable[[int, int], int | tuple] | None = None,
) -> Walk:
    """Walk ``iova`` through the tables rooted at ``root`` in ``memory``; see the module doc.

    Parameters
    ----------
    fmt : Format
    memory : object with ``read_u64(addr)``
    root : int
        Top table address (in the walk's address space).
    iova : int
    access : "r", "w", "x", Perm or None
        Permission the access needs; a leaf (ANDed with its tables) that lacks it faults.
    table_hook : callable, optional
        The interposition seam: translate each entry address before it is read.
    """
    iova = check_u64(iova, "iova")
    need = _access(access)
    bad = _input_fault(fmt, iova)
    if bad:
        return Walk(fmt, iova, root, (), fault=bad, access=need)
    steps: list[WalkStep] = []
    table = root
    allowed = 0xF
    for level in range(fmt.top_level, -1, -1):
        idx = fmt.index(level, iova)
        eaddr = table + idx * fmt.entry_size
        via = None
        read_at = eaddr
        if table_hook is not None:
            try:
                got = table_hook(eaddr, level)
            except TableFetchError as e:
                return Walk(
                    fmt,
                    iova,
                    root,
                    tuple(steps),
                    fault=WalkFault(
                        level,
                        FaultReason.TABLE_TRANSLATION,
                        f"entry address {fmt_addr(eaddr)} did not translate",
                        e.detail,
                    ),
                    access=need,
                )
            read_at, via = got if isinstance(got, tuple) else (got, None)
        try:
            raw = memory.read_u64(read_at)
        except Exception as e:  # noqa: BLE001 - any memory refusal is a walk fault
            return Walk(
                fmt,
                iova,
                root,
                tuple(steps),
                fault=WalkFault(level, FaultReason.TABLE_ADDRESS, str(e)),
                access=need,
            )
        entry = fmt.decode(raw, level)
        steps.append(
            WalkStep(level, fmt.level_name(level), table, idx, eaddr, read_at, raw, entry, via)
        )
        if entry.kind == EntryKind.TABLE:
            allowed &= int(entry.allows)
            table = entry.address
            continue
        if entry.kind == EntryKind.LEAF:
            perm = Perm(int(entry.perm) & allowed)
            if need & ~perm:
                return Walk(
                    fmt,
                    iova,
                    root,
                    tuple(steps),
                    fault=WalkFault(
                        level,
                        FaultReason.PERMISSION,
                        f"needs {Perm(need)} but the entry grants {perm}",
                    ),
                    access=need,
                )
            pa = entry.address + (iova & (entry.size - 1))
            return Walk(
                fmt,
                iova,
                root,
                tuple(steps),
                result=Translation(pa, entry.size, perm, level, entry.address),
                access=need,
            )
        reason = _KIND_FAULT[entry.kind]
        return Walk(
            fmt,
            iova,
            root,
            tuple(steps),
            fault=WalkFault(
                level, reason, f"entry {raw:#018x} at {fmt.level_name(level)} index {idx}"
            ),
            access=need,
        )
    raise AssertionError("unreachable: level 0 entries are leaves or faults")  # pragma: no cover


def _as_iova_array(iovas) -> np.ndarray:
    a = np.asarray(iovas)
    if a.dtype.kind == "u":
        return a.astype(_U64, copy=False).reshape(-1)
    if a.dtype.kind == "i":
        if a.size and a.min() < 0:
            raise ValueError("iovas must be non-negative; pass a uint64 array")
        return a.astype(_U64).reshape(-1)
    if a.dtype == object:
        return np.array(
            [check_u64(int(v) if isinstance(v, np.integer) else v, "iova") for v in a.reshape(-1)],
            dtype=_U64,
        )
    raise TypeError(f"iovas must be an integer array (uint64), got dtype {a.dtype}")


def translate(
    fmt: Format,
    memory,
    root: int,
    iovas,
    *,
    access=None,
    table_hook_vec: Callable[[np.ndarray, int], tuple] | None = None,
    details: bool = False,
    paths: bool = False,
):
    """Translate many IOVAs at once, level by level, with no per-IOVA Python loop.

    Returns ``(pa, fault)``: uint64 physical addresses (0 where faulted) and a bool mask.
    With ``details=True`` also returns ``(size, fault_level)`` arrays (size 0 and level -1
    where not applicable). Each level is one gather from ``memory`` and the same codec rules
    ``walk`` uses.

    With ``paths=True`` the result is a :class:`TranslatedBatch` instead, which adds what a
    cache model needs of every walk: the level of the leaf and the address of the entry read
    at each level (``entry_address[level, i]``, in the walk's own address space: GPAs for a
    stage-1 table in guest memory), the vectorised counterpart of ``WalkStep.entry_address``.
    """
    iv = _as_iova_array(iovas)
    n = iv.shape[0]
    need = int(_access(access))
    pa = np.zeros(n, dtype=_U64)
    fault = np.ones(n, dtype=bool)
    details = details or paths
    size_out = np.zeros(n, dtype=_U64) if details else None
    flevel = np.full(n, -1, dtype=np.int8) if details else None
    leaf_level = np.full(n, -1, dtype=np.int8) if paths else None
    entry_addr = np.zeros((fmt.top_level + 1, n), dtype=_U64) if paths else None
    if fmt.sign_extend:
        top = iv >> _U64(fmt.va_bits - 1)
        ok = (top == 0) | (top == _U64((1 << (65 - fmt.va_bits)) - 1))
    else:
        rng = fmt.input_ranges[0]
        ok = (iv >= _U64(rng.start)) & (iv <= _U64(rng.last))
    sel = np.nonzero(ok)[0] if not ok.all() else None
    cur = iv if sel is None else iv[sel]
    table = np.full(cur.shape[0], root, dtype=_U64)
    allowed = None
    codec = fmt.codec
    base = _U64(fmt.va_base)
    for level in range(fmt.top_level, -1, -1):
        if cur.shape[0] == 0:
            break
        eaddr = np.subtract(cur, base) if fmt.va_base else None
        eaddr = np.right_shift(cur if eaddr is None else eaddr, _U64(fmt.shift(level)), out=eaddr)
        eaddr &= _U64((1 << fmt.bits(level)) - 1)
        eaddr <<= _U64(3)
        eaddr += table
        if paths:
            entry_addr[level, slice(None) if sel is None else sel] = eaddr
        if table_hook_vec is not None:
            eaddr, hook_ok = table_hook_vec(eaddr, level)
        if table_hook_vec is None and isinstance(memory, PhysicalMemory):
            raw, inside = memory.gather(eaddr, consume=True)  # eaddr is ours: reuse it
        else:
            raw, inside = memory.gather(eaddr)
        kind = codec.classify(fmt, raw, level)
        if table_hook_vec is not None:
            kind[~hook_ok] = -1
        if not inside.all():
            kind[~inside] = -1
        leaf = kind == EntryKind.LEAF
        all_leaf = bool(leaf.all())
        if all_leaf or leaf.any():
            lraw = raw if all_leaf else raw[leaf]
            lcur = cur if all_leaf else cur[leaf]
            if codec.fixed_leaf_size:
                mask = _U64((1 << fmt.item_lg2(level)) - 1)
                out = (codec.oa_decode(fmt, lraw) & ~mask) | (lcur & mask)
            else:
                lg2 = codec.leaf_lg2(fmt, lraw, level)
                mask = (_U64(1) << lg2.astype(_U64)) - _U64(1)
                out = codec.leaf_base(fmt, lraw, level, lg2) + (lcur & mask)
            if all_leaf:
                dest = sel if sel is not None else slice(None)
                where = slice(None)
            else:
                where = np.nonzero(leaf)[0]
                dest = where if sel is None else sel[where]
            good = None
            if need:
                perm = codec.leaf_perm(fmt, lraw, level)
                if allowed is not None:
                    perm = perm & allowed[where]
                good = (perm & np.uint8(need)) == np.uint8(need)
                out = np.where(good, out, _U64(0))
            pa[dest] = out
            if good is None:
                fault[dest] = False
            else:
                fault[dest] = ~good
            if paths:
                leaf_level[dest] = level
            if details:
                size_out[dest] = mask + _U64(1)
                if good is not None:
                    flevel[dest] = np.where(good, np.int8(-1), np.int8(level))
        tbl = kind == EntryKind.TABLE
        if details:
            other = ~(tbl | leaf)
            if other.any():
                flevel[(np.nonzero(other)[0] if sel is None else sel[other])] = level
        if level == 0:
            break
        if tbl.all():
            tr = raw
        else:
            keep = np.nonzero(tbl)[0]
            sel = keep if sel is None else sel[keep]
            cur = cur[keep]
            tr = raw[keep]
            if allowed is not None:
                allowed = allowed[keep]
        table = codec.table_addr(fmt, tr, level)
        if need:
            tp = codec.table_perm(fmt, tr, level)
            allowed = tp if allowed is None else (allowed & tp)
    if paths:
        return TranslatedBatch(iv, pa, fault, size_out, flevel, leaf_level, entry_addr)
    if details:
        return pa, fault, size_out, flevel
    return pa, fault


@dataclass(frozen=True)
class TranslatedBatch:
    """Everything :func:`translate` learnt about a batch of IOVAs (``paths=True``).

    ``size`` is the leaf size (0 where the walk found none), ``fault_level`` the level whose
    entry stopped the walk (-1: no fault, or an input-range fault before any read),
    ``leaf_level`` the level of the leaf entry (-1 when none was read), ``entry_address`` a
    ``(top_level + 1, n)`` array of the entry read at each level (0 where that level was not
    read). A walk reads the levels from the top down to ``leaf_level`` (or ``fault_level``).
    """

    iova: np.ndarray
    pa: np.ndarray
    fault: np.ndarray
    size: np.ndarray
    fault_level: np.ndarray
    leaf_level: np.ndarray
    entry_address: np.ndarray

    def __len__(self) -> int:
        return int(self.iova.shape[0])
