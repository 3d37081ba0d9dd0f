"""The hardware two-dimensional walk: stage 1 over stage 2, one reference at a time.

The 2-D walk (QEMU ``smmu-common.c`` ``translate_table_addr_ipa`` translates every
stage-1 table address through stage 2, and VT-d's PGTT=NESTED PASID entry holds a GPA first-stage
pointer next to an HPA second-stage pointer): before each stage-1 entry can be read, the GPA of
the table holding it is walked through stage 2, and the entry is then loaded from *host* memory
at the resulting HPA; finally the output GPA is walked through stage 2. An n-level stage 1 over
an m-level stage 2 costs ``n*m + n + m = (n+1)(m+1) - 1`` page-table references (4x4 -> 24,
5x5 -> 35); a large leaf in either stage shortens its side. The data access itself is not
counted (the "25" sometimes quoted includes it).

Both stages are walked by the page-table layer's single walker (``iommu_lab.pagetable``): the
stage-1 walk runs with a *table-address hook* that the walker calls for every table it is about
to read, which is where the stage-2 walk is interposed. There is no second walk loop here.

With a PASID the walk first resolves the PASID structures bound to the pair
(``iommu_lab.nesting.pasid``): host-owned ones directly, guest-owned ones (SMMUv3 CD table, AMD
GCR3 table) each after a stage-2 walk of their GPA.

Every reference carries a :class:`RefRole` (what it was for) beside its human ``purpose`` text;
code branches on the role, never on the text.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError
from iommu_lab.core.faults import FaultKind, FaultReason
from iommu_lab.core.ranges import fmt_addr
from iommu_lab.core.words import plural
from iommu_lab.hardware.structures import Pgtt
from iommu_lab.nesting.faults import FaultSite, NestedFault, Stage
from iommu_lab.nesting.memory import _fmt, _root, _walk
from iommu_lab.nesting.pasid import Binding, PasidRef, RefKind, StructureFetchFault
from iommu_lab.pagetable.walk import TableFetchError, TranslatedBatch, translate

__all__ = ["NestedRef", "NestedWalk", "RefRole", "nested_walk", "nested_walk_refs", "resolve_pasid",
           "translate_batch"]


def nested_walk_refs(n: int, m: int | Sequence[int]) -> int:
    """Page-table references of a cold 2-D walk: ``n`` stage-1 levels over an ``m``-level stage 2.

    ``(n+1)(m+1) - 1 = n*m + n + m`` (Bhargava et al., ASPLOS 2008): each of the
    ``n`` stage-1 table addresses (root included) costs an ``m``-reference stage-2 walk before the
    stage-1 entry is read, and the output GPA costs one more stage-2 walk. ``m`` may be a list of
    the ``n + 1`` actual stage-2 walk depths when stage-2 large leaves shorten some of them.

    >>> nested_walk_refs(4, 4), nested_walk_refs(5, 5), nested_walk_refs(4, 5), nested_walk_refs(3, 3)
    (24, 35, 29, 15)
    """
    if n < 0:
        raise ValueError(f"stage-1 depth {n} is negative")
    if isinstance(m, int):
        if m < 0:
            raise ValueError(f"stage-2 depth {m} is negative")
        return (n + 1) * (m + 1) - 1
    depths = list(m)
    if len(depths) != n + 1:
        raise ValueError(
            f"need {n + 1} stage-2 walk depths (one per stage-1 table and one for the output), got {len(depths)}"
        )
    return n + sum(depths)


class RefRole(enum.Enum):
    """What one reference of a nested translation was for (the machine-readable ``purpose``)."""

    S1_ENTRY = "stage-1 entry"  #: a stage-1 entry read (grid column m)
    S1_TABLE = "stage-2 walk of a stage-1 table's GPA"  #: before reading that table
    OUTPUT_GPA = "stage-2 walk of the output GPA"  #: the last row of the grid
    S2_INPUT = "stage-2-only walk of the IOVA"  #: PGTT=SECOND_STAGE: no stage 1
    CONFIG = "PASID-structure entry"  #: a root/context/PASID/CD/GCR3/STE/DTE read
    CONFIG_GPA = "stage-2 walk of a guest-owned structure's GPA"  #: before that read


@dataclass(frozen=True)
class NestedRef:
    """One memory reference of a nested translation.

    ``row``/``col`` place it on the 2-D walk grid: row ``i`` is stage-1 step ``i`` (row ``n`` is
    the output GPA), column ``j < m`` is stage-2 step ``j`` of translating that row's GPA, and
    column ``m`` (``col == s2_depth``) is the stage-1 entry read itself. PASID-structure reads
    use ``row = -1``. ``role`` says what the reference was for; ``purpose`` says it in words.
    """

    seq: int
    stage: Stage
    level: int
    address: int
    raw: int
    decoded: Mapping[str, int]
    row: int
    col: int
    purpose: str
    table: int | None = None
    index: int | None = None
    gpa: int | None = None
    role: RefRole = RefRole.S1_ENTRY
    name: str = ""

    @property
    def label(self) -> str:
        """The stage and the level's name as its specification writes it (``S1 PML4E``,
        ``S2 L1``); a configuration read without a spec name reads ``entry``."""
        stage = {Stage.CONFIG: "cfg", Stage.STAGE1: "S1", Stage.STAGE2: "S2"}[self.stage]
        return f"{stage} {self.name or 'entry'}"


@dataclass
class NestedWalk:
    """The result of :meth:`Nested.walk`: every reference in order, the output or the fault.

    Follows the one result protocol (``ok``, ``output``, ``fault``, ``refs``, ``page_size``,
    ``to_dataframe()``); ``gpa`` and the 2-D ``grid`` are what nesting adds.

    Attributes
    ----------
    iova : int
    refs : tuple of NestedRef
        Every memory reference, in the order the hardware makes them.
    output : int or None
        Final host-physical address.
    gpa : int or None
        Intermediate (guest-physical) address stage 1 produced.
    fault : NestedFault or None
    n, m : int
        Stage-1 and stage-2 depths (levels walked from the root on a cold walk).
    pasid : int or None
        The PASID when the walk started from a PASID table (its reads are ``Stage.CONFIG`` refs).
    """

    iova: int
    refs: tuple[NestedRef, ...]
    output: int | None
    gpa: int | None
    fault: NestedFault | None
    n: int
    m: int
    s1_page_size: int | None = None
    s2_page_size: int | None = None
    pasid: int | None = None
    platform: str = ""

    @property
    def ok(self) -> bool:
        return self.fault is None

    @property
    def n_refs(self) -> int:
        """All references, PASID-structure reads included."""
        return len(self.refs)

    # The same names a single-stage ``Walk`` answers to, so code can treat both alike.
    @property
    def pa(self) -> int | None:
        """The host-physical output address (``output``), or None on a fault."""
        return self.output

    @property
    def references(self) -> int:
        """Memory references made (``n_refs``)."""
        return len(self.refs)

    @property
    def n_pagetable_refs(self) -> int:
        """References of the 2-D page-table walk itself (the (n+1)(m+1)-1 figure)."""
        return sum(1 for r in self.refs if r.row >= 0)

    @property
    def n_pasid_refs(self) -> int:
        """References made to resolve the PASID: structure reads plus the stage-2 walks of
        guest-owned structure addresses."""
        return sum(1 for r in self.refs if r.row < 0)

    def count(self, stage: Stage | int) -> int:
        """References of one stage within the 2-D walk (PASID-structure resolution excluded)."""
        return sum(1 for r in self.refs if r.stage == stage and r.row >= 0)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "pasid_structures": sum(1 for r in self.refs if r.stage is Stage.CONFIG),
            "pasid_stage2": sum(1 for r in self.refs if r.row < 0 and r.stage is Stage.STAGE2),
            "stage1": self.count(Stage.STAGE1),
            "stage2": self.count(Stage.STAGE2),
            "pagetable": self.n_pagetable_refs,
            "total": self.n_refs,
        }

    @property
    def page_size(self) -> int | None:
        """Largest page a combined IOTLB entry could cache: the smaller of the two leaves."""
        if self.s1_page_size is None or self.s2_page_size is None:
            return None
        return min(self.s1_page_size, self.s2_page_size)

    def grid(self):
        """The 2-D walk grid as a numpy array: ``grid[row, col]`` = 1-based order of the reference.

        Rows are stage-1 steps (last row: output GPA), columns stage-2 steps then the stage-1
        entry read; 0 where no reference was made (a large leaf or a fault cut the walk short).
        """
        rows = max([r.row for r in self.refs if r.row >= 0] + [self.n]) + 1
        cols = max([r.col for r in self.refs if r.row >= 0] + [self.m]) + 1
        g = np.zeros((rows, cols), dtype=np.int64)
        for k, r in enumerate(self.refs, start=1):
            if r.row >= 0:
                g[r.row, r.col] = k
        return g

    def to_dataframe(self):
        """One row per reference: seq, stage, role, level, grid row/col, address, raw, purpose."""
        from iommu_lab.core.frames import addr_frame

        return addr_frame(
            {
                "seq": [r.seq for r in self.refs],
                "stage": [int(r.stage) for r in self.refs],
                "role": [r.role.name for r in self.refs],
                "level": [r.level for r in self.refs],
                "row": [r.row for r in self.refs],
                "col": [r.col for r in self.refs],
                "address": [r.address for r in self.refs],
                "raw": [r.raw for r in self.refs],
                "gpa": [r.gpa for r in self.refs],
                "purpose": [r.purpose for r in self.refs],
            },
            hex_columns=["address", "raw", "gpa"],
        )

    def _result_line(self) -> str:
        if self.fault:
            f = self.fault
            return f"FAULT — {f}\n  SMMUv3: {f.smmu_event()}\n  VT-d:   {f.vtd_fault()}"
        return f"IOVA {fmt_addr(self.iova)} -> GPA {fmt_addr(self.gpa or 0)} -> HPA {fmt_addr(self.output or 0)}"

    def __str__(self) -> str:
        c = self.counts
        head = (
            f"nested walk of IOVA {fmt_addr(self.iova)}: {plural(c['pagetable'], 'page-table reference')} "
            f"(S1 {c['stage1']}, S2 {c['stage2']}"
            + (f"; PASID resolution {self.n_pasid_refs}" if self.n_pasid_refs else "")
            + f"); cold formula for {self.n}x{self.m}: {nested_walk_refs(self.n, self.m)}"
        )
        lines = [head]
        for r in self.refs:
            pos = f"({r.row},{r.col})" if r.row >= 0 else "(cfg)"
            lines.append(
                f"  {r.seq:>3} {r.label:<7} {pos:<7} read {fmt_addr(r.address):<22} = {r.raw:#018x}  {r.purpose}"
            )
        lines.append("  " + self._result_line().replace("\n", "\n  "))
        return "\n".join(lines)

    def __repr__(self) -> str:
        state = (
            f"fault={self.fault.kind.value}@S{int(self.fault.stage)}"
            if self.fault
            else f"hpa={fmt_addr(self.output or 0)}"
        )
        return f"<NestedWalk iova={fmt_addr(self.iova)} refs={self.n_refs} {state}>"

    plot = display.plot

    _repr_html_ = display.html


# ----------------------------------------------------------------------------------------------
# The walk
# ----------------------------------------------------------------------------------------------


class _Refs:
    """The reference list of one nested walk, appended in the order the hardware reads."""

    def __init__(self) -> None:
        self.refs: list[NestedRef] = []

    def add(self, stage, level, address, raw, decoded, row, col, purpose, role, table=None, index=None,
            gpa=None, name="") -> None:
        self.refs.append(NestedRef(len(self.refs), stage, level, address, raw, decoded, row, col, purpose,
                                   table, index, gpa, role, name))

    def stage2(self, w2: Any, row: int, purpose: str, gpa: int, role: RefRole) -> None:
        for j, st in enumerate(w2.steps):
            self.add(Stage.STAGE2, st.level, st.read_address, st.raw, st.entry.fields, row, j, purpose, role,
                     st.table, st.index, gpa, st.name)


def _is_write(access: Any) -> bool:
    if access is None:
        return False
    if isinstance(access, str):
        return "w" in access.lower()
    return bool(int(access) & 2)


def resolve_pasid(pair: Any, pasid: int):
    """Resolve ``pasid`` through the structure bound to ``pair`` (:meth:`Nested.bind_pasid`).

    A host-owned structure (page-table binding) is read directly; for a guest-owned one every
    fetch is a stage-2 walk of its GPA first, recorded as stage-2 references.
    """
    t = pair.pasid_table
    if t is None:
        raise IommuError("ENOENT", f"no PASID table: bind_pasid({pasid:#x}) first")
    if t.binding is Binding.PGTABLE:
        return t.resolve(pasid)

    def through_stage2(gpa: int):
        w2 = _walk(pair.stage2, gpa, access="r")
        s2refs = [
            PasidRef(f"{type(t).__name__} @GPA {fmt_addr(gpa)}", st.level, st.index, gpa, st.read_address,
                     st.raw, dict(st.entry.fields), None, RefKind.STAGE2)
            for st in w2.steps
        ]
        if not w2.ok:
            raise StructureFetchFault(
                NestedFault.from_walk(Stage.STAGE2, w2, FaultSite.CONFIG, 0, gpa,
                                      entry_address=None, raw=None),
                s2refs,
            )
        return w2.pa, s2refs

    return t.resolve(pasid, translate=through_stage2, host_memory=pair.host_memory)


def nested_walk(pair: Any, iova: int, *, access: Any = "r", pasid: int | None = None) -> NestedWalk:
    """Translate ``iova`` through ``pair`` the way the IOMMU does on a cold IOTLB: the 2-D walk.

    With ``pasid``, the PASID structures are read first and the stage-1 root comes from the
    entry found there.
    """
    if pair.parent is not None:
        pair.parent.sync()
    r = _Refs()
    f1, f2 = _fmt(pair.stage1), _fmt(pair.stage2)
    host = pair.host_memory
    s1_root = _root(pair.stage1)
    n, m = f1.levels, f2.levels
    label = getattr(pair.platform, "name", "") or pair.family

    def result(gpa=None, out=None, fault=None, s1ps=None, s2ps=None) -> NestedWalk:
        return NestedWalk(iova, tuple(r.refs), out, gpa, fault, n, m, s1ps, s2ps, pasid, label)

    if pasid is not None:
        look = resolve_pasid(pair, pasid)
        for p in look.refs:
            on_s2 = p.kind is RefKind.STAGE2
            r.add(Stage.STAGE2 if on_s2 else Stage.CONFIG, p.level, p.host_address, p.raw & ((1 << 64) - 1),
                  dict(p.decoded), -1, -1, f"stage-2 walk of {p.structure}" if on_s2 else p.structure,
                  RefRole.CONFIG_GPA if on_s2 else RefRole.CONFIG, None, p.index, p.address if on_s2 else None)
        if not look.ok:
            pf = look.fault
            if isinstance(pf, NestedFault):
                return result(fault=replace(pf, iova=iova))
            return result(fault=NestedFault.from_structure(pf, iova))
        if look.stage1_root is None:
            # PGTT=PASS_THROUGH: no translation; PGTT=SECOND_STAGE: stage 2 alone walks the IOVA.
            if look.pgtt is Pgtt.PASS_THROUGH:
                return result(gpa=iova, out=iova)
            w2 = _walk(pair.stage2, iova, access=access, root=look.stage2_root)
            r.stage2(w2, 0, "second-stage-only walk of the IOVA (PGTT=SECOND_STAGE)", iova, RefRole.S2_INPUT)
            if not w2.ok:
                return result(gpa=iova, fault=NestedFault.from_walk(
                    Stage.STAGE2, w2, FaultSite.INPUT, iova, iova, entry_address=None, raw=None))
            return result(gpa=iova, out=w2.pa, s2ps=w2.page_size)
        if look.pgtt is Pgtt.FIRST_STAGE:
            # PGTT=FIRST_STAGE (``intel_pasid_setup_first_level``): FSPTPTR is a host-physical
            # root and the first stage alone translates -- no stage-2 walk of its tables or of
            # its output (VT-d spec, "first-stage translation"; ``pasid_pte_config_first_level``).
            w1 = _walk(pair.stage1, iova, access=access, root=look.stage1_root, memory=host)
            for i, st in enumerate(w1.steps):
                r.add(Stage.STAGE1, st.level, st.read_address, st.raw, st.entry.fields, i, 0,
                      f"S1 {st.name} entry [{st.index}] (PGTT=FIRST_STAGE, host-physical table)",
                      RefRole.S1_ENTRY, st.table, st.index, name=st.name)
            if not w1.ok:
                return result(fault=NestedFault.from_walk(Stage.STAGE1, w1, FaultSite.INPUT, iova, iova,
                                                          write=_is_write(access)))
            return result(out=w1.pa, s1ps=w1.page_size)
        s1_root = look.stage1_root

    # Stage 1, through the page-table layer's walker; its seam translates every entry address.
    last_s2: list[Any] = [None]

    def through_stage2(entry_gpa: int, level: int):
        w2 = _walk(pair.stage2, entry_gpa, access="r")
        last_s2[0] = w2
        if not w2.ok:
            raise TableFetchError(w2)
        return w2.pa, w2

    w1 = _walk(pair.stage1, iova, access=access, table_hook=through_stage2, root=s1_root, memory=host)
    for i, st in enumerate(w1.steps):
        r.stage2(st.via, i, f"stage-2 walk of the S1 {st.name} table (GPA {fmt_addr(st.table)})",
                 st.entry_address, RefRole.S1_TABLE)
        r.add(Stage.STAGE1, st.level, st.read_address, st.raw, st.entry.fields, i, m,
              f"S1 {st.name} entry [{st.index}]", RefRole.S1_ENTRY, st.table, st.index, name=st.name)
    if not w1.ok:
        return result(fault=_stage1_fault(r, w1, last_s2[0], f1, f2, iova, access))
    gpa = w1.pa
    w2 = _walk(pair.stage2, gpa, access=access)
    r.stage2(w2, len(w1.steps), f"stage-2 walk of the output GPA {fmt_addr(gpa)}", gpa, RefRole.OUTPUT_GPA)
    if not w2.ok:
        fault = NestedFault.from_walk(Stage.STAGE2, w2, FaultSite.OUTPUT, iova, gpa,
                                      write=_is_write(access))
        return result(gpa=gpa, fault=fault, s1ps=w1.page_size)
    return result(gpa=gpa, out=w2.pa, s1ps=w1.page_size, s2ps=w2.page_size)


def _stage1_fault(r: _Refs, w1: Any, last_s2: Any, f1: Any, f2: Any, iova: int, access: Any) -> NestedFault:
    """Attribute a stage-1 walk that stopped: a stage-2 fault fetching a table, a table that
    stage 2 put outside host RAM, or the guest's own entry."""
    wf = w1.fault
    row = len(w1.steps)
    top = wf.level == f1.top_level
    if wf.reason is FaultReason.TABLE_TRANSLATION:
        w2 = wf.detail
        gpa = w2.iova
        r.stage2(w2, row, f"stage-2 walk of the S1 {f1.level_name(wf.level)} table (GPA {fmt_addr(gpa)})", gpa,
                 RefRole.S1_TABLE)
        return NestedFault.from_walk(Stage.STAGE2, w2, FaultSite.S1_TABLE, iova, gpa,
                                     s1_level=wf.level, s1_top=top, write=False,
                                     s1_level_name=f1.level_name(wf.level))
    if wf.reason is FaultReason.TABLE_ADDRESS:
        # Stage 2 translated the table's GPA to an HPA outside host RAM: the host's stage-2
        # leaf is bad (VT-d: "Second-level entry address beyond the max").
        w2 = last_s2
        gpa = w2.iova if w2 is not None else 0
        if w2 is not None:
            r.stage2(w2, row, f"stage-2 walk of the S1 table (GPA {fmt_addr(gpa)})", gpa, RefRole.S1_TABLE)
        return NestedFault(
            Stage.STAGE2, FaultKind.ADDRESS_SIZE, FaultSite.S1_TABLE,
            w2.result.level if w2 is not None and w2.ok else None, iova, gpa,
            w2.pa if w2 is not None else None, None, s1_level=wf.level, s1_top=top, detail=wf.message,
            output_beyond_host=True, reason=wf.reason, s1_level_name=f1.level_name(wf.level),
        )
    return NestedFault.from_walk(Stage.STAGE1, w1, FaultSite.INPUT, iova, iova, write=_is_write(access))


def translate_batch(pair: Any, iovas: Any, *, access: Any = "r", pasid: int | None = None) -> TranslatedBatch:
    """Translate an array of IOVAs through both stages with the vectorised walker.

    Stage 1 reads its tables through guest memory (every table frame translated by stage 2, as
    the hardware does) and the output GPAs are then translated by stage 2. ``pa`` is the HPA,
    ``fault`` is set where either stage faulted, ``size`` is the smaller of the two leaves (what a
    combined IOTLB entry could cache); ``leaf_level``, ``fault_level`` and ``entry_address`` are
    stage 1's (entry addresses are GPAs). With ``pasid`` the stage-1 root comes from the bound
    PASID structure (an unresolvable PASID faults every IOVA).
    """
    if pair.parent is not None:
        pair.parent.sync()
    f1 = _fmt(pair.stage1)
    root = _root(pair.stage1)
    if pasid is not None:
        look = resolve_pasid(pair, pasid)
        if look.ok and look.stage1_root is None:
            if look.pgtt is Pgtt.PASS_THROUGH:
                iv = np.asarray(iovas, dtype=np.uint64).reshape(-1)
                z = np.zeros(iv.shape, dtype=np.int8)
                return TranslatedBatch(iv, iv.copy(), np.zeros(iv.shape, bool), np.zeros(iv.shape, np.uint64),
                                       z - 1, z - 1, np.zeros((f1.top_level + 1, iv.size), np.uint64))
            b = pair.stage2.translate(iovas, access, paths=True)
            return TranslatedBatch(b.iova, b.pa, b.fault, b.size, b.fault_level, b.leaf_level,
                                   np.zeros((f1.top_level + 1, len(b)), np.uint64))
        if not look.ok:
            iv = np.asarray(iovas, dtype=np.uint64).reshape(-1)
            z = np.full(iv.shape, -1, dtype=np.int8)
            return TranslatedBatch(iv, np.zeros_like(iv), np.ones(iv.shape, bool), np.zeros_like(iv), z, z.copy(),
                                   np.zeros((f1.top_level + 1, iv.size), np.uint64))
        if look.pgtt is Pgtt.FIRST_STAGE:  # host-physical first stage alone (see nested_walk)
            return translate(f1, pair.host_memory, look.stage1_root, iovas, access=access, paths=True)
        root = look.stage1_root
    b1 = translate(f1, pair.guest_memory, root, iovas, access=access, paths=True)
    pa = np.zeros_like(b1.pa)
    fault = b1.fault.copy()
    size = np.zeros_like(b1.size)
    ok = np.nonzero(~b1.fault)[0]
    if ok.size:
        b2 = pair.stage2.translate(b1.pa[ok], access, paths=True)
        pa[ok] = np.where(b2.fault, np.uint64(0), b2.pa)
        fault[ok] = b2.fault
        size[ok] = np.where(b2.fault, np.uint64(0), np.minimum(b1.size[ok], b2.size))
    return TranslatedBatch(b1.iova, pa, fault, size, b1.fault_level, b1.leaf_level, b1.entry_address)
