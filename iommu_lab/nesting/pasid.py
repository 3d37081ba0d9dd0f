"""PASID tables: VT-d scalable-mode PASID directory/table, SMMUv3 CD tables, AMD GCR3 tables.

A PASID (PCIe Process Address Space ID; SMMUv3 calls it a SubstreamID, SSID) selects one of many
address spaces behind one requester ID. Each IOMMU family keeps a per-device table indexed by the
PASID whose entry points at the stage-1 page table (and, on VT-d, says which stages to walk).
The three layouts (``iommu_lab.hardware.structures``) are written into physical memory as the
bit patterns the hardware reads, then walked back by reading memory, never by consulting a
Python dict:

* **VT-d scalable mode** (drivers/iommu/intel/iommu.c, pasid.[ch]): the device's root entry
  (by bus) and scalable-mode context entry (by devfn, ``iommu_context_addr``) lead to the PASID
  directory; a 20-bit PASID (``MAX_NR_PASID_BITS``)
  splits into a 14-bit directory index (``pasid >> PASID_PDE_SHIFT``, 6) and a 6-bit table index
  (``pasid & PASID_PTE_MASK``, 0x3f). Directory entries are 8 bytes, PASID entries 64 bytes, so
  one leaf table is 64 x 64 B = 4 KiB. The PGTT field (bits 8:6) picks first-stage only (1),
  second-stage only (2), nested (3) or pass-through (4). The table is **host-owned and at
  host-physical addresses**; in nesting QEMU shadows guest PASID entries into it (page-table
  binding).
* **SMMUv3 context descriptors** (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h): the STE's
  ``S1ContextPtr`` points at a linear array of 64-byte CDs (``S1FMT_LINEAR``) or at a level-1
  array of 8-byte descriptors each pointing at 1024 CDs (``S1FMT_64K_L2``). In nesting the CD
  table is **guest-owned and at IPAs**, so every CD-table fetch is itself translated by stage 2
  (PASID-table binding).
* **AMD GCR3 table** (drivers/iommu/amd/iommu.c ``get_gcr3_levels``, ``__get_gcr3_pte``): every
  level is one 4 KiB page of 512 x 8-byte entries; index at level L is ``(pasid >> 9L) & 0x1ff``;
  ``GLX`` = levels - 1. In nesting the GCR3 root and every level pointer are GPAs
  (``set_dte_nested`` in drivers/iommu/amd/nested.c).

All three are read by **one walker** (:func:`walk_structure`) over the levels each structure
declares (:class:`~iommu_lab.hardware.structures.StructureLevel`), and filled by one installer.
Page-table binding vs PASID-table binding (the 2021 ``/dev/ioasid`` RFC's terms, see
:class:`Binding`) differ in who owns the table and in which address space it lives, so they
differ in how many memory references a resolution costs: :meth:`PasidStructure.resolve` takes an
optional ``translate`` callback that performs (and records) the stage-2 walk of every structure
address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iommu_lab.core.bits import EntryLayout, Field
from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.core.faults import FaultReason
from iommu_lab.core.ranges import fmt_addr
from iommu_lab.hardware.faults import SmmuEventId, VtdReason
from iommu_lab.hardware.platform import IommuFamily
from iommu_lab.hardware.platform import Stage1Binding as Binding
from iommu_lab.hardware.structures import (
    AMD_DTE,
    AMD_GCR3_ENTRY,
    SMMU_CD,
    SMMU_CD_L1_DESC,
    SMMU_CD_L2_BITS,
    SMMU_LINEAR_CDMAX,
    SMMU_STE,
    VTD_CONTEXT_ENTRY,
    VTD_PASID_BITS,
    VTD_PASID_DIR_ENTRY,
    VTD_PASID_ENTRY,
    VTD_PDE_SHIFT,
    VTD_ROOT_ENTRY,
    Pgtt,
    SteConfig,
    StructureLevel,
    amd_gcr3_index,
    amd_gcr3_levels,
    amd_gcr3_levels_of,
    smmu_cd_index,
    smmu_cd_levels,
    vtd_context_slot,
    vtd_pasid_index,
    vtd_pasid_levels,
    vtd_pdts,
)
from iommu_lab.hardware.structures import check_pasid as _check_pasid
from iommu_lab.nesting.pasid_walk import (
    PasidFault,
    PasidLookup,
    PasidRef,
    RefKind,
    StructureFetchFault,
    Translate,
    _Abort,
    install_path,
    mem_alloc,
    walk_structure,
)

__all__ = [
    "AMD_DTE",
    "AMD_GCR3_ENTRY",
    "PASID_STRUCTURES",
    "SMMU_CD",
    "SMMU_CD_L1_DESC",
    "SMMU_STE",
    "VTD_CONTEXT_ENTRY",
    "VTD_PASID_DIR_ENTRY",
    "VTD_PASID_ENTRY",
    "VTD_ROOT_ENTRY",
    "AmdGcr3Table",
    "Binding",
    "EntryLayout",
    "Field",
    "PasidFault",
    "PasidLookup",
    "PasidRef",
    "PasidStructure",
    "RefKind",
    "Pgtt",
    "SmmuCdTable",
    "SteConfig",
    "StructureFetchFault",
    "Translate",
    "VtdPasidTable",
    "amd_gcr3_index",
    "amd_gcr3_levels",
    "smmu_cd_index",
    "vtd_pasid_index",
    "walk_structure",
]


# Structures


class PasidStructure:
    """What every PASID structure shares: where it lives, its levels, and the one walker.

    A subclass declares its ``structure_levels`` (``iommu_lab.hardware.structures``), the ``root`` table,
    what is read before the walk (``_preamble``: an STE or DTE) and what the last entry selects
    (``_selected``); :meth:`resolve` is the same for all.

    Parameters
    ----------
    memory
        The page-table-layer memory the structure is written into. For page-table binding this
        is host memory; for PASID-table binding it is the guest's physical memory (a view that
        writes through stage 2), and the addresses the structure holds are GPAs/IPAs.
    binding : Binding
    """

    #: The IOMMU family whose structure this is; ``family`` is its name for display.
    iommu_family: IommuFamily
    family = ""
    #: The bindings the family's hardware can walk.
    bindings: tuple[Binding, ...] = (Binding.PGTABLE, Binding.PASID_TABLE)
    default_pasid_bits = 20

    def __init__(self, memory: Any, binding: Binding) -> None:
        self.memory = memory
        self.binding = Binding(binding)

    # -- checks a caller runs before allocating anything ---------------------------------------
    _binding_refusal = "this IOMMU cannot walk that PASID structure"
    @classmethod
    def check_binding(cls, binding: Binding) -> None:
        """Refuse a binding the family's hardware cannot walk (``UnsupportedError``)."""
        if Binding(binding) not in cls.bindings:
            raise UnsupportedError(cls._binding_refusal)

    @classmethod
    def check_width(cls, pasid_bits: int | None) -> int:
        """The PASID width a new structure would get (``pasid_bits`` or the family default)."""
        bits = cls.default_pasid_bits if pasid_bits is None else pasid_bits
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 20:
            if not isinstance(bits, int) or isinstance(bits, bool):
                raise TypeError(f"pasid_bits must be an int, got {type(bits).__name__} {str(bits)[:40]}")
            raise IommuError("EINVAL", f"PASID width {bits} is outside 1..20 bits (PCIe PASID is 20 bits)")
        return bits

    @classmethod
    def check_index(cls, pasid: int, bits: int) -> int:
        """Refuse a PASID outside a ``bits``-wide structure (before it is allocated)."""
        return _check_pasid(pasid, bits)

    @property
    def structure_levels(self) -> tuple[StructureLevel, ...]:
        raise NotImplementedError

    @property
    def root(self) -> int:
        raise NotImplementedError

    def _leaf_address(self, pasid: int, *, allocate: bool = False) -> int | None:
        return install_path(self.structure_levels, self.root, pasid, self.memory, allocate=allocate)

    # A read of one structure entry: translate its address through stage 2 when the table is
    # guest-owned (each such read costs an m-level stage-2 walk first), then load the bytes from
    # the host memory the translation lands in.
    def _fetch(self, refs: list[PasidRef], layout: EntryLayout, structure: str, level: int, index: int,
               addr: int, translate: Translate | None, host_memory: Any) -> int:
        hpa, mem = addr, self.memory
        if translate is not None:
            if host_memory is None:
                raise ValueError("a translated (guest-owned) lookup needs host_memory to read from")
            try:
                hpa, s2refs = translate(addr)
            except StructureFetchFault as e:
                refs.extend(e.refs)
                raise _Abort(e.fault) from None
            refs.extend(s2refs)
            mem = host_memory
        raw = layout.read(mem, hpa)
        refs.append(PasidRef(structure, level, index, addr, hpa, raw, layout.decode(raw), layout))
        return raw

    def _preamble(self, refs: list[PasidRef], pasid: int) -> int:
        """Reads made before the walk (host-owned STE / DTE); returns the root table address."""
        return self.root

    def _selected(self, pasid: int, refs: tuple[PasidRef, ...], dec: Mapping[str, int],
                  addr: int) -> PasidLookup:
        raise NotImplementedError

    def resolve(self, pasid: int, *, translate: Translate | None = None,
                host_memory: Any = None) -> PasidLookup:
        """Resolve ``pasid`` the way the hardware does: the preamble, then one walk of the levels.

        With ``translate`` (a guest-owned table), every structure address is first walked
        through stage 2 and the bytes are read from ``host_memory``.
        """
        refs: list[PasidRef] = []

        def read(lv: StructureLevel, index: int, addr: int) -> int:
            return self._fetch(refs, lv.layout, lv.structure, lv.level, index, addr, translate, host_memory)

        try:
            root = self._preamble(refs, pasid)
            _, dec, addr = walk_structure(self.structure_levels, root, pasid, read)
            return self._selected(pasid, tuple(refs), dec, addr)
        except _Abort as a:
            return PasidLookup(self.family, pasid, self.binding, tuple(refs), fault=a.fault)

    lookup = resolve  #: the old name of :meth:`resolve`

    # -- nesting hooks: how a nested pair installs this structure and binds one PASID --------
    @classmethod
    def for_nesting(cls, *, owner_memory: Any, host_memory: Any, binding: Binding, pasid_bits: int | None,
                    stage1_fmt: Any, stage2_fmt: Any, stage2_root: int) -> PasidStructure:
        """Build the structure for a nested pair (and whatever host entry points at it)."""
        raise NotImplementedError

    def bind(self, pasid: int, *, stage1_fmt: Any, stage1_root: int, stage2_fmt: Any, stage2_root: int) -> None:
        """Point ``pasid`` at a stage-1 table nested on the stage 2 at ``stage2_root``."""
        raise NotImplementedError

    def stage2_changed(self, stage2: Any) -> None:
        """The nest parent grew a level (new ``root`` and ``fmt``): rewrite the host entry that
        holds its root. Nothing to do for structures whose stage-2 top never moves."""


class VtdPasidTable(PasidStructure):
    """VT-d scalable-mode translation structures of one device: root entry, context entry, PASID
    directory and lazily allocated 4 KiB PASID tables.

    A request is resolved as the hardware does in scalable mode (four host-memory reads where
    legacy mode reads two): the **root entry** of the device's bus (``iommu_context_addr``:
    ``root_entry[bus]``, its ``hi`` half for devfn >= 0x80), the 32-byte **context entry** of its
    devfn, which points at the PASID directory (``context_entry_set_pasid_table``), then the
    **directory entry** and the **PASID entry** (``intel_pasid_get_entry``: directory of
    ``max_pasid >> PASID_PDE_SHIFT`` 8-byte entries, 128 KiB for 20 bits; a leaf table allocated
    on first use with ``phys | PASID_PTE_PRESENT`` written into the directory entry). Entries are
    set up as ``intel_pasid_setup_first_level`` / ``_second_level`` / ``_nested`` /
    ``_pass_through`` write them. Everything is host-owned (page-table binding): in nesting,
    QEMU traps the guest's PASID-cache invalidations and writes PGTT=NESTED entries here.

    Parameters
    ----------
    memory
        Host memory the root table, context table and PASID tables are written into.
    pasid_bits : int
        PASID width, 1..20 (``MAX_NR_PASID_BITS``).
    bus, devfn : int
        The device's requester ID (0..255 each).
    root_table : int, optional
        An existing 4 KiB root table (one per IOMMU) to install the device in; a new one otherwise.
    """

    iommu_family = IommuFamily.VTD
    family = IommuFamily.VTD.value
    bindings = (Binding.PGTABLE,)
    _binding_refusal = (
        "VT-d hardware never walks a guest-owned PASID table: nested translation is set up "
        "per PASID in the host's scalable-mode PASID table (PGTT=NESTED, intel_pasid_setup_nested), "
        "with QEMU shadowing the guest's PASID entries; use binding='pgtable'"
    )

    def __init__(self, memory: Any, pasid_bits: int = VTD_PASID_BITS, *, bus: int = 0, devfn: int = 0,
                 root_table: int | None = None) -> None:
        super().__init__(memory, Binding.PGTABLE)
        if not 1 <= pasid_bits <= VTD_PASID_BITS:
            raise IommuError(
                "EINVAL", f"VT-d PASID width {pasid_bits} is outside 1..20 bits (MAX_NR_PASID_BITS)"
            )
        _check_pasid(bus, 8, "PCI bus")
        half, slot = vtd_context_slot(devfn)
        self.pasid_bits = pasid_bits
        n_dir = max(1, (1 << pasid_bits) >> VTD_PDE_SHIFT)
        self.dir_entries = n_dir
        self.bus, self.devfn = bus, devfn
        self.root_table = mem_alloc(memory, 0x1000, 0x1000) if root_table is None else root_table
        self.directory = mem_alloc(memory, max(n_dir * 8, 0x1000), 0x1000)
        # iommu_context_addr(..., alloc=1): a context table per root-entry half, allocated on
        # first use; then context_entry_set_pasid_table fills this device's entry.
        root_addr = self.root_table + VTD_ROOT_ENTRY.size * bus
        root = VTD_ROOT_ENTRY.decode(VTD_ROOT_ENTRY.read(memory, root_addr))
        present, ptr = ("UP", "UCTP") if half == "hi" else ("LP", "LCTP")
        if not root[present]:
            root[present], root[ptr] = 1, mem_alloc(memory, 0x1000, 0x1000)
            VTD_ROOT_ENTRY.write(memory, root_addr, VTD_ROOT_ENTRY.encode(**root))
        self.context_addr = root[ptr] + VTD_CONTEXT_ENTRY.size * slot
        VTD_CONTEXT_ENTRY.write(memory, self.context_addr, VTD_CONTEXT_ENTRY.encode(
            P=1, PASIDE=1, PDTS=vtd_pdts(pasid_bits), PASIDDIRPTR=self.directory, RID_PASID=0))

    @property
    def structure_levels(self) -> tuple[StructureLevel, ...]:
        return vtd_pasid_levels()

    @property
    def root(self) -> int:
        return self.directory

    def entry_address(self, pasid: int, *, allocate: bool = False) -> int | None:
        """Host address of the 64-byte PASID entry (allocating its table if asked)."""
        vtd_pasid_index(pasid, self.pasid_bits)
        return self._leaf_address(pasid, allocate=allocate)

    def set_entry(self, pasid: int, pgtt: Pgtt, *, fsptptr: int = 0, ssptptr: int = 0, did: int = 1,
                  aw: int = 2, flpm: int = 0, ssade: bool = False) -> int:
        """Write a present PASID entry; returns its host address.

        ``fsptptr`` is the first-stage root (a GPA for PGTT=NESTED, as ``pasid_pte_config_nestd``
        writes ``s1_cfg->pgtbl_addr``); ``ssptptr`` the second-stage root (an HPA).
        """
        pgtt = Pgtt(pgtt)
        value = VTD_PASID_ENTRY.encode(P=1, AW=aw, PGTT=int(pgtt), SSADE=int(ssade), SSPTPTR=ssptptr,
                                       DID=did, FLPM=flpm, FSPTPTR=fsptptr)
        addr = self.entry_address(pasid, allocate=True)
        assert addr is not None
        VTD_PASID_ENTRY.write(self.memory, addr, value)
        return addr

    def clear(self, pasid: int) -> None:
        """Clear the entry (``intel_pasid_tear_down_entry``): P=0, the leaf table stays."""
        addr = self.entry_address(pasid)
        if addr is not None:
            VTD_PASID_ENTRY.write(self.memory, addr, 0)

    def _preamble(self, refs: list[PasidRef], pasid: int) -> int:
        """Root entry, then context entry, each faulting as scalable mode reports it
        (``dma_remap_sm_fault_reasons`` 0x39/0x3a, 0x41/0x42, 0x45, 0x46); returns PASIDDIRPTR."""
        vtd_pasid_index(pasid, self.pasid_bits)
        half, slot = vtd_context_slot(self.devfn)
        root_addr = self.root_table + VTD_ROOT_ENTRY.size * self.bus
        raw = self._fetch(refs, VTD_ROOT_ENTRY, "root entry", 3, self.bus, root_addr, None, None)
        root = VTD_ROOT_ENTRY.decode(raw)
        present, ptr = ("UP", "UCTP") if half == "hi" else ("LP", "LCTP")

        def fault(structure, code, text, addr, reason=FaultReason.NOT_PRESENT):
            return _Abort(PasidFault(structure, f"{text} (SM fault reason {code:#04x})", addr,
                                     _vtd_code(code), "host", reason))

        if not root[present]:
            raise fault("root entry", 0x39, "Present bit in Root Entry is clear", root_addr)
        if raw & VTD_ROOT_ENTRY.reserved_mask:
            raise fault("root entry", 0x3A, "Non-zero reserved field set in Root Entry", root_addr,
                        FaultReason.RESERVED_BITS)
        ctx_addr = root[ptr] + VTD_CONTEXT_ENTRY.size * slot
        raw = self._fetch(refs, VTD_CONTEXT_ENTRY, "context entry", 2, self.devfn, ctx_addr, None, None)
        ctx = VTD_CONTEXT_ENTRY.decode(raw)
        if not ctx["P"]:
            raise fault("context entry", 0x41, "Present bit in Context Entry is clear", ctx_addr)
        if raw & VTD_CONTEXT_ENTRY.reserved_mask:
            raise fault("context entry", 0x42, "Non-zero reserved field set in the Context Entry", ctx_addr,
                        FaultReason.RESERVED_BITS)
        if pasid != ctx["RID_PASID"] and not ctx["PASIDE"]:
            raise fault("context entry", 0x45, "PASID Enable field in Context Entry is clear", ctx_addr,
                        FaultReason.INVALID_ENTRY)
        if pasid >> (ctx["PDTS"] + 7 + VTD_PDE_SHIFT):
            raise fault("context entry", 0x46, "PASID is larger than the max in Context Entry", ctx_addr,
                        FaultReason.OUT_OF_RANGE)
        return ctx["PASIDDIRPTR"]

    def _selected(self, pasid, refs, dec, addr) -> PasidLookup:
        try:
            pgtt = Pgtt(dec["PGTT"])
        except ValueError:
            raise _Abort(PasidFault("PASID table", f"Invalid Scalable-Mode PASID Table Entry (PGTT={dec['PGTT']})",
                                    addr, VtdReason.SM_PTE_INVALID, "host", FaultReason.INVALID_ENTRY)) from None
        s1 = dec["FSPTPTR"] if pgtt in (Pgtt.FIRST_STAGE, Pgtt.NESTED) else None
        s2 = dec["SSPTPTR"] if pgtt in (Pgtt.SECOND_STAGE, Pgtt.NESTED) else None
        return PasidLookup(self.family, pasid, self.binding, refs, s1, s2, f"PGTT={pgtt.name}", None, dec, pgtt)

    @classmethod
    def for_nesting(cls, *, owner_memory, host_memory, binding, pasid_bits, stage1_fmt, stage2_fmt, stage2_root):
        cls.check_binding(binding)
        return cls(owner_memory, pasid_bits or VTD_PASID_BITS)

    def bind(self, pasid, *, stage1_fmt, stage1_root, stage2_fmt, stage2_root) -> None:
        """``pasid_pte_config_nestd``: FSPTPTR = the guest's root (a GPA), SSPTPTR = the parent's
        (an HPA), FLPM for a 5-level first stage, AW from the parent's levels, PGTT=NESTED."""
        self.set_entry(pasid, Pgtt.NESTED, fsptptr=stage1_root, ssptptr=stage2_root,
                       flpm=1 if stage1_fmt.levels == 5 else 0, aw=stage2_fmt.levels - 2)

    def __repr__(self) -> str:
        return f"<VtdPasidTable {self.bus:02x}:{self.devfn >> 3:02x}.{self.devfn & 7} {self.pasid_bits}-bit, directory at {fmt_addr(self.directory)} ({self.dir_entries} entries)>"


def _vtd_code(code: int) -> VtdReason | None:
    """The scalable-mode reason as a :class:`VtdReason` where the vocabulary names it."""
    try:
        return VtdReason(code)
    except ValueError:
        return None


class SmmuCdTable(PasidStructure):
    """SMMUv3 context-descriptor table, linear or two-level, plus the STE that points at it.

    Mirrors ``arm_smmu_alloc_cd_tables``: linear (``S1FMT_LINEAR``) when ``s1cdmax`` is at most
    ``CTXDESC_LINEAR_CDMAX`` (10: 1024 CDs x 64 B = 64 KiB) or the SMMU lacks ``CD2L``; otherwise
    ``S1FMT_64K_L2`` with ``2^(s1cdmax-10)`` 8-byte L1 descriptors, each leaf (1024 CDs, 64 KiB)
    allocated on first use (``arm_smmu_get_cd_ptr``). Under nesting the table is guest-owned:
    build it in guest memory and pass ``translate`` to :meth:`resolve`.
    """

    iommu_family = IommuFamily.SMMUV3
    family = IommuFamily.SMMUV3.value

    pasid_bits = property(lambda self: self.s1cdmax, doc="The SSID width the STE's S1CDMax gives.")

    @classmethod
    def check_index(cls, pasid: int, bits: int) -> int:
        return _check_pasid(pasid, bits, "SSID")

    def __init__(self, memory: Any, s1cdmax: int, *, two_level: bool | None = None,
                 binding: Binding = Binding.PASID_TABLE) -> None:
        super().__init__(memory, binding)
        if not 0 <= s1cdmax <= 20:
            raise IommuError(
                "EINVAL", f"S1CDMax {s1cdmax} is outside 0..20 (IDR1.SSIDSIZE is at most 20)"
            )
        if two_level is None:
            two_level = s1cdmax > SMMU_LINEAR_CDMAX
        # Linux caps the linear tables it builds at 64 KiB (arm_smmu_alloc_cd_tables); a guest's own
        # table (its vSTE; arm_smmu_validate_vste checks fields, not size) may be 2^S1CDMax CDs.
        if not two_level and s1cdmax > SMMU_LINEAR_CDMAX and self.binding is Binding.PGTABLE:
            raise IommuError(
                "EINVAL",
                f"a linear CD table with S1CDMax {s1cdmax} would be {64 << s1cdmax:#x} bytes; Linux caps "
                f"linear tables at 64 KiB (CTXDESC_LINEAR_CDMAX = 10) and uses two levels above that",
            )
        if two_level and s1cdmax <= SMMU_LINEAR_CDMAX:
            raise IommuError(
                "EINVAL",
                f"two-level CD tables split SSID[S1CDMax-1:10]; S1CDMax {s1cdmax} leaves no L1 index",
            )
        self.s1cdmax = s1cdmax
        self.two_level = two_level
        self.ste_addr: int | None = None
        self.ste_memory: Any = None
        if two_level:
            n = 1 << (s1cdmax - SMMU_CD_L2_BITS)
            self.base = mem_alloc(memory, max(8 * n, 64), max(8 * n, 64))
        else:
            size = 64 << s1cdmax
            self.base = mem_alloc(memory, size, max(size, 64))

    @property
    def structure_levels(self) -> tuple[StructureLevel, ...]:
        return smmu_cd_levels(self.two_level)

    @property
    def root(self) -> int:
        return self.base

    @property
    def s1fmt(self) -> int:
        return 2 if self.two_level else 0

    def cd_address(self, ssid: int, *, allocate: bool = False) -> int | None:
        smmu_cd_index(ssid, self.s1cdmax, self.two_level)
        return self._leaf_address(ssid, allocate=allocate)

    def set_cd(self, ssid: int, ttb0: int, *, asid: int = 1, ias: int = 48, granule: int = 4096,
               ips: int = 5) -> int:
        """Write a valid AArch64 CD for ``ssid`` (``arm_smmu_make_s1_cd``); returns its address."""
        tg0 = {4096: 0, 65536: 1, 16384: 2}[granule]
        value = SMMU_CD.encode(T0SZ=64 - ias, TG0=tg0, EPD1=1, V=1, IPS=ips, AA64=1, R=1, A=1, ASET=1,
                               ASID=asid, TTB0=ttb0)
        addr = self.cd_address(ssid, allocate=True)
        assert addr is not None
        SMMU_CD.write(self.memory, addr, value)
        return addr

    def make_ste(self, host_memory: Any, *, config: SteConfig = SteConfig.NESTED, s2ttb: int = 0,
                 vmid: int = 1, ste_addr: int | None = None) -> int:
        """Write the STE that points at this CD table into host memory; returns its address.

        ``arm_smmu_make_nested_cd_table_ste``: Config NESTED (7), the guest's S1ContextPtr /
        S1Fmt / S1CDMax, the parent's S2TTB and VMID.
        """
        if ste_addr is None:
            ste_addr = mem_alloc(host_memory, 64, 64)
        value = SMMU_STE.encode(V=1, Config=int(config), S1Fmt=self.s1fmt, S1ContextPtr=self.base,
                                S1CDMax=self.s1cdmax, S2VMID=vmid, S2AA64=1, S2TTB=s2ttb)
        SMMU_STE.write(host_memory, ste_addr, value)
        self.ste_addr = ste_addr
        self.ste_memory = host_memory
        return ste_addr

    def _preamble(self, refs: list[PasidRef], pasid: int) -> int:
        """The STE (host PA) if one was made, then the SSID range check: ``C_BAD_SUBSTREAMID``
        (0x08) for an SSID at or beyond 2^S1CDMax."""
        if self.ste_addr is not None:
            raw = SMMU_STE.read(self.ste_memory, self.ste_addr)
            refs.append(PasidRef("STE", 2, 0, self.ste_addr, self.ste_addr, raw, SMMU_STE.decode(raw), SMMU_STE))
        if pasid < 0 or pasid >> self.s1cdmax:
            raise _Abort(PasidFault("CD table", f"SSID {pasid:#x} >= 2^S1CDMax ({1 << self.s1cdmax:#x})",
                                    self.base, SmmuEventId.C_BAD_SUBSTREAMID, "host", FaultReason.OUT_OF_RANGE))
        return self.base

    def _selected(self, pasid, refs, dec, addr) -> PasidLookup:
        nested = self.ste_addr is not None and refs[0].decoded["Config"] == SteConfig.NESTED
        return PasidLookup(self.family, pasid, self.binding, refs, dec["TTB0"], None, "CD valid, TTB0",
                           None, dec, Pgtt.NESTED if nested else Pgtt.FIRST_STAGE)

    @classmethod
    def for_nesting(cls, *, owner_memory, host_memory, binding, pasid_bits, stage1_fmt, stage2_fmt, stage2_root):
        t = cls(owner_memory, pasid_bits or 20, binding=binding)
        t.make_ste(host_memory, s2ttb=stage2_root)
        return t

    def bind(self, pasid, *, stage1_fmt, stage1_root, stage2_fmt, stage2_root) -> None:
        self.set_cd(pasid, stage1_root, ias=stage1_fmt.va_bits, granule=1 << stage1_fmt.granule_lg2)

    def __repr__(self) -> str:
        kind = "two-level" if self.two_level else "linear"
        return f"<SmmuCdTable {kind} S1CDMax={self.s1cdmax} at {fmt_addr(self.base)} ({self.binding.value})>"


class AmdGcr3Table(PasidStructure):
    """AMD GCR3 table: ``levels`` of 4 KiB pages, 512 entries each, plus the DTE pointing at it.

    Mirrors ``setup_gcr3_table`` / ``__get_gcr3_pte``: ``GLX = levels - 1``; non-leaf entries are
    ``next_level_phys | GCR3_VALID``; the leaf entry holds the guest CR3 (stage-1 root) with the
    valid bit. With nesting the GCR3 root in the guest DTE and every level pointer are GPAs,
    walked through the host v1 table (``set_dte_nested`` in drivers/iommu/amd/nested.c).
    """

    iommu_family = IommuFamily.AMD
    family = IommuFamily.AMD.value
    default_pasid_bits = 16

    @classmethod
    def check_width(cls, pasid_bits: int | None) -> int:
        bits = cls.default_pasid_bits if pasid_bits is None else pasid_bits
        amd_gcr3_levels(bits)  # 0..20: a one-PASID table (GLX 0) included
        return bits

    def __init__(self, memory: Any, pasid_bits: int = 16, *, binding: Binding = Binding.PASID_TABLE) -> None:
        super().__init__(memory, binding)
        self.pasid_bits = pasid_bits
        self.levels = amd_gcr3_levels(pasid_bits)
        self.table_root = mem_alloc(memory, 0x1000, 0x1000)
        self.dte_addr: int | None = None
        self.dte_memory: Any = None

    @property
    def structure_levels(self) -> tuple[StructureLevel, ...]:
        return amd_gcr3_levels_of(self.levels)

    @property
    def root(self) -> int:
        return self.table_root

    @property
    def glx(self) -> int:
        return self.levels - 1

    def set_gcr3(self, pasid: int, cr3: int) -> int:
        """Point ``pasid`` at the stage-1 root ``cr3``; allocates missing levels. Returns the leaf address.

        ``cr3`` is checked before any level is allocated: the entry holds bits 51:12 of a
        4 KiB-aligned table (``update_gcr3`` writes ``__sme_set(gcr3) | GCR3_VALID``).
        """
        _check_pasid(pasid, self.pasid_bits)
        if isinstance(cr3, bool) or not isinstance(cr3, int):
            raise TypeError(f"cr3 must be an int address, got {type(cr3).__name__} {cr3!r}")
        if cr3 < 0 or cr3 >> 52 or cr3 & 0xFFF:
            raise IommuError(
                "EINVAL",
                f"guest CR3 {cr3:#x} must be a 4 KiB-aligned address below 2^52: a GCR3 entry holds "
                f"bits 51:12 (update_gcr3)",
            )
        addr = self._leaf_address(pasid, allocate=True)
        assert addr is not None
        AMD_GCR3_ENTRY.write(self.memory, addr, AMD_GCR3_ENTRY.encode(V=1, Addr=cr3))
        return addr

    def make_dte(self, host_memory: Any, *, host_root: int = 0, host_mode: int = 4, domain_id: int = 1,
                 gpt_5level: bool = False, dte_addr: int | None = None) -> int:
        """Write the (host) DTE: v1 root and mode, GV, GLX and the split GCR3 root pointer."""
        if dte_addr is None:
            dte_addr = mem_alloc(host_memory, 32, 32)
        g = self.table_root
        value = AMD_DTE.encode(
            V=1, TV=1, Mode=host_mode, PTRoot=host_root, GV=1, GIOV=1, GLX=self.glx,
            GCR3_14_12=(g >> 12) & 0x7, IR=1, IW=1, DomainID=domain_id,
            GCR3_30_15=(g >> 15) & 0xFFFF, GCR3_51_31=(g >> 31) & 0x1FFFFF, GPTLevel=int(gpt_5level),
        )
        AMD_DTE.write(host_memory, dte_addr, value)
        self.dte_addr = dte_addr
        self.dte_memory = host_memory
        return dte_addr

    def stage2_changed(self, stage2: Any) -> None:
        """Rewrite the DTE's host root and mode after the v1 table grew, as
        ``increase_address_space`` → ``amd_iommu_domain_update`` → ``set_dte_entry`` does
        (generic_pt's ``change_top`` op); the rest of the DTE (GCR3, GLX, GV) is kept."""
        if self.dte_addr is None:
            return
        raw = AMD_DTE.read(self.dte_memory, self.dte_addr)
        raw = AMD_DTE.put(AMD_DTE.put(raw, "Mode", stage2.fmt.levels), "PTRoot", stage2.root)
        AMD_DTE.write(self.dte_memory, self.dte_addr, raw)

    def _preamble(self, refs: list[PasidRef], pasid: int) -> int:
        """The DTE (host) if one was made: the GCR3 root reassembled from its three fields."""
        root = self.table_root
        if self.dte_addr is not None:
            raw = AMD_DTE.read(self.dte_memory, self.dte_addr)
            d = AMD_DTE.decode(raw)
            refs.append(PasidRef("DTE", self.levels, 0, self.dte_addr, self.dte_addr, raw, d, AMD_DTE))
            root = (d["GCR3_14_12"] << 12) | (d["GCR3_30_15"] << 15) | (d["GCR3_51_31"] << 31)
        _check_pasid(pasid, self.pasid_bits)
        return root

    def _selected(self, pasid, refs, dec, addr) -> PasidLookup:
        cr3 = dec["Addr"]
        gv = self.dte_addr is not None and refs[0].decoded["GV"] == 1
        return PasidLookup(self.family, pasid, self.binding, refs, cr3, None, "GV=1, guest CR3", None,
                           {"GCR3": cr3}, Pgtt.NESTED if gv else Pgtt.FIRST_STAGE)

    @classmethod
    def for_nesting(cls, *, owner_memory, host_memory, binding, pasid_bits, stage1_fmt, stage2_fmt, stage2_root):
        t = cls(owner_memory, 16 if pasid_bits is None else pasid_bits, binding=binding)
        t.make_dte(host_memory, host_root=stage2_root, host_mode=stage2_fmt.levels,
                   gpt_5level=stage1_fmt.levels == 5)
        return t

    def bind(self, pasid, *, stage1_fmt, stage1_root, stage2_fmt, stage2_root) -> None:
        self.set_gcr3(pasid, stage1_root)

    def __repr__(self) -> str:
        return f"<AmdGcr3Table {self.pasid_bits}-bit, GLX={self.glx}, root {fmt_addr(self.table_root)} ({self.binding.value})>"


#: The PASID structure each hardware-nesting family walks.
PASID_STRUCTURES: dict[IommuFamily, type[PasidStructure]] = {
    cls.iommu_family: cls for cls in (VtdPasidTable, SmmuCdTable, AmdGcr3Table)
}


def describe_layout(layout: EntryLayout) -> list[tuple[str, str, str]]:
    """The field table of a layout as (name, bits, meaning) rows, for docs and notebooks."""
    return [(f.name, f.bits, f.doc) for f in layout.fields]
