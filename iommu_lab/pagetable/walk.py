"""The one page-table walker, for every format, and its vectorised twin ``translate``.

A walk starts at the root table, reads one raw 64-bit word per level from a memory object
(anything with ``read_u64(addr)``), classifies it with the format's rules, and either descends
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

import numpy as np

from iommu_lab.core.faults import FaultReason
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import check_u64, fmt_addr
from iommu_lab.hardware.formats import EntryKind, Format
from iommu_lab.pagetable.memory import PhysicalMemory
from iommu_lab.pagetable.result import (
    Reference,
    TableFetchError,
    TranslatedBatch,
    Translation,
    Walk,
    WalkFault,
    WalkStep,
)
from iommu_lab.pagetable.walker import entry_addresses, next_table, step_address

__all__ = [
    "FaultReason",
    "Reference",
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


def _access(access) -> Perm:
    if access is None:
        return Perm.NONE
    return Perm.parse(access)


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
        idx, eaddr = step_address(fmt, level, table, iova)
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
            Reference(level, entry.level_name, table, idx, eaddr, read_at, raw, entry, via, fmt.stage)
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
        reason = entry.fault
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

    Returns a :class:`TranslatedBatch`: uint64 ``output`` addresses (0 where faulted) and a
    bool ``fault`` mask (it unpacks as ``pa, fault = translate(...)``). Each level is one
    gather from ``memory`` and the same stepping rules and format rules ``walk`` uses
    (``walker.entry_addresses``, ``walker.next_table``). With ``paths=True`` the batch also
    holds each IOVA's leaf size, fault level, leaf level and the address of the entry read at
    each level (``entry_address[level, i]``, in the walk's own address space: GPAs for a
    stage-1 table in guest memory), the vectorised counterpart of ``Reference.entry_address``.
    ``details=True`` (without ``paths``) returns the tuple ``(pa, fault, size, fault_level)``.
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
    codec = fmt.rules
    for level in range(fmt.top_level, -1, -1):
        if cur.shape[0] == 0:
            break
        eaddr = entry_addresses(fmt, level, table, cur)
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
        table = next_table(fmt, level, tr)
        if need:
            tp = codec.table_perm(fmt, tr, level)
            allowed = tp if allowed is None else (allowed & tp)
    if details and not paths:
        return pa, fault, size_out, flevel
    return TranslatedBatch(iv, pa, fault, size_out, flevel, leaf_level, entry_addr)
