"""A guest stage-1 table nested on a host stage-2 table: construction, PASID binding, the verbs.

Ownership (iommufd's ``IOMMU_HWPT_ALLOC`` of a nested HWPT on a nest parent): stage 1 (VT-d first stage, SMMU stage 1, AMD guest/v2 table) maps
gIOVA -> GPA and is **owned by the guest**; its table pointers, the root included, are GPAs.
Stage 2 (VT-d second stage, SMMU stage 2, AMD host/v1 table) maps GPA -> HPA and is **owned by
the host**: the iommufd nest parent (``IOMMU_HWPT_ALLOC_NEST_PARENT``) filled from an IOAS.

:class:`NestedPair` holds the pair and answers the walk verbs (``walk`` one IOVA, ``translate``
arrays, ``resolve_pasid``); :class:`iommu_lab.nesting.nested.Nested` adds the views built on
top of it (``explain``, ``shadow``), so those modules can depend on this one and not the
other way round.
"""

from __future__ import annotations

from typing import Any

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.core.ranges import fmt_addr
from iommu_lab.hardware import formats as _formats
from iommu_lab.hardware.platform import NestingSupport, platforms
from iommu_lab.hardware.structures import DEFAULT_STAGE1_BINDING
from iommu_lab.nesting.memory import GuestMemory, _fmt, _memory, _root, host_memory_for
from iommu_lab.nesting.pasid import PASID_STRUCTURES, Binding
from iommu_lab.nesting.rules import NestingCapability, check_nest_pair, nest_family
from iommu_lab.nesting.walk import NestedWalk, nested_walk, resolve_pasid, translate_batch
from iommu_lab.pagetable.table import PageTable

__all__ = ["NestedPair"]


class NestedPair:
    """A guest stage-1 table nested on a host stage-2 table (one nested HWPT on its parent).

    Mirrors iommufd's ``IOMMU_HWPT_ALLOC`` of a nested HWPT (``IOMMU_HWPT_DATA_VTD_S1``,
    ``_ARM_SMMUV3``, ``_AMD_GUEST``) on a ``NEST_PARENT`` paging HWPT: the parent is the host's
    stage 2 (GPA -> HPA), the child the guest's stage 1 (IOVA -> GPA) whose tables are in guest
    memory. Build one from two page tables, with :meth:`build` from two formats, or with
    :meth:`for_platform` from the catalogue.

    Parameters
    ----------
    stage1 : PageTable
        The guest's table; its memory must be a :class:`GuestMemory` backed through ``stage2``
        (the tables are at GPAs and their bytes live in host RAM).
    stage2 : PageTable
        The host's nest-parent table over host memory.
    platform : Platform, optional
        Where the pair runs (names the fault records and the capability).
    """

    def __init__(self, stage1: Any, stage2: Any, *, platform: Any = None) -> None:
        #: The IOMMU family nesting the pair (declared by the catalogue's hardware-nesting platforms).
        self.iommu_family = nest_family(_fmt(stage1), _fmt(stage2))
        self.family, self.description = check_nest_pair(_fmt(stage1), _fmt(stage2))
        mem = _memory(stage1)
        if not isinstance(mem, GuestMemory):
            raise IommuError(
                "EINVAL",
                f"the stage-1 table's memory is {mem!r}, not guest-physical memory backed by the stage-2 "
                f"table; create it with PageTable(fmt, memory=GuestMemory(stage2)) (or use "
                f"Nested.build(...)) so its table pages are GPAs whose bytes live in host RAM",
            )
        if mem.stage2 is not stage2:
            raise IommuError(
                "EINVAL",
                "the stage-1 table's guest memory is backed by a different stage-2 table than the one "
                "given; a nested HWPT must use the parent that maps the guest's RAM",
            )
        self.stage1 = stage1
        self.stage2 = stage2
        self.platform = platform
        self.pasid_table: Any = None
        self._pasid_roots: dict[int, int] = {}
        #: The :class:`NestParent` this pair was built on, synced with its IOAS before each walk.
        self.parent: Any = None
        self._check_widths()

    def _check_widths(self) -> None:
        f1, f2 = _fmt(self.stage1), _fmt(self.stage2)
        gm: GuestMemory = _memory(self.stage1)
        if gm.last >> f2.va_bits:
            raise IommuError(
                "EINVAL",
                f"guest RAM ends at GPA {fmt_addr(gm.last)}, beyond the {f2.va_bits}-bit input of the "
                f"stage-2 format {f2.name}",
            )
        if f1.oas < 1 or f1.oas > 64:  # pragma: no cover - formats guarantee this
            raise IommuError("EINVAL", f"{f1.name} has output width {f1.oas}")

    # -- construction helpers ---------------------------------------------------------------
    @classmethod
    def build(
        cls,
        stage1_format: Any,
        stage2_format: Any,
        *,
        guest_ram: int = 16 << 20,
        guest_base: int = 0,
        backing: str = "eager",
        host: Any = None,
        platform: Any = None,
    ) -> NestedPair:
        """Host memory, a stage-2 table mapping guest RAM, and an empty guest stage-1 table.

        ``backing="eager"`` maps all of guest RAM in stage 2 at start-up (as QEMU maps guest RAM
        into the nest parent's IOAS) with the largest pages ``iommu_pgsize`` allows;
        ``"lazy"`` backs each guest table page with its own 4 KiB stage-2 mapping.
        """

        f1, f2 = _formats.get(stage1_format), _formats.get(stage2_format)
        check_nest_pair(f1, f2)
        host = host if host is not None else host_memory_for(f2)
        s2 = PageTable(f2, memory=host)
        gm = GuestMemory(s2, host, base=guest_base, size=guest_ram, backing=backing)
        s1 = PageTable(f1, memory=gm)
        return cls(s1, s2, platform=platform)

    @classmethod
    def for_platform(
        cls, platform: Any, stage1: Any = None, stage2: Any = None, **kwargs: Any
    ) -> NestedPair:
        """The nested pair a catalogue platform offers for hardware nesting.

        Raises ``EOPNOTSUPP`` on platforms without hardware nesting, saying what each offers
        instead as its platform file records it (``Platform.nesting_hint``): POWER maps guest
        IOVAs with H_PUT_TCE into TCE windows, the RISC-V IOMMU has a G-stage Linux does not
        nest, virtio-iommu has only MAP/UNMAP requests so the host shadows
        (:class:`iommu_lab.nesting.shadow.ShadowNesting`).
        """

        p = platforms.get(platform) if isinstance(platform, str) else platform
        if p.nesting is not NestingSupport.HARDWARE:
            what = ("has no nesting" if p.nesting is NestingSupport.NONE
                    else "has no hardware nesting (software only)")
            hint = p.nesting_hint or "it offers no nested domain (no domain_alloc_nested in its driver)"
            raise UnsupportedError(f"platform {p.name!r} ({p.title}) {what}: {hint}")
        f1 = stage1 if stage1 is not None else p.format_name("stage1")
        f2 = stage2 if stage2 is not None else p.format_name("stage2")
        return cls.build(f1, f2, platform=p, **kwargs)

    # -- properties -------------------------------------------------------------------------
    @property
    def capability(self) -> NestingCapability:
        return NestingCapability.HARDWARE

    @property
    def guest_memory(self) -> GuestMemory:
        return _memory(self.stage1)

    @property
    def host_memory(self) -> Any:
        return _memory(self.stage2)

    @property
    def n(self) -> int:
        return _fmt(self.stage1).levels

    @property
    def m(self) -> int:
        return _fmt(self.stage2).levels

    def map(self, iova: int, gpa: int, size: int, prot: str = "rw") -> None:
        """The guest maps IOVA -> GPA in its stage-1 table (guest PTE writes into guest RAM)."""
        self.stage1.map(iova, gpa, size, prot=prot)

    def unmap(self, iova: int, size: int):
        return self.stage1.unmap(iova, size)

    # -- PASID binding -------------------------------------------------------------------------
    # -- PASID binding -------------------------------------------------------------------------
    def bind_pasid(
        self, pasid: int, *, binding: Any = None, pasid_bits: int | None = None, stage1: Any = None
    ):
        """Bind a stage-1 table (default: this pair's) to ``pasid`` and return the PASID structure.

        ``binding`` defaults to the family's native mode (``hardware.structures.
        DEFAULT_STAGE1_BINDING``): VT-d page-table binding (a host-owned scalable-mode PASID table
        in host memory, entry PGTT=NESTED with the guest's FSPTPTR (a GPA) and the parent's
        SSPTPTR (an HPA), as ``pasid_pte_config_nestd`` writes it); SMMUv3 and AMD PASID-table
        binding (the guest's CD / GCR3 table in guest memory, found through an STE / DTE in host
        memory that the host writes once). Page-table binding on SMMUv3/AMD puts the CD/GCR3
        table in host memory instead (what the RFC's per-PASID ``BIND_PGTABLE`` would have
        done); PASID-table binding on VT-d is refused: its hardware never walks a guest PASID
        table (QEMU shadows guest PASID entries, ``vtd_pasid_cache_sync``) -- refused on every
        call, also once other PASIDs are bound. All PASIDs of one pair share one structure, so a
        binding different from the one already in place is refused (EINVAL).

        The PASID, the width and the binding are checked before anything is allocated: a
        refused call leaves no PASID directory, CD table or GCR3 table behind.
        """
        family = self.iommu_family
        structure = PASID_STRUCTURES[family]
        try:
            binding = Binding(binding if binding is not None else DEFAULT_STAGE1_BINDING[family])
        except ValueError:
            raise ValueError(
                f"binding {str(binding)[:40]!r} is not one of {', '.join(repr(b.value) for b in Binding)}"
            ) from None
        # Every check runs before anything is allocated or written, so a refused call leaves
        # the pair -- its PASID structure, host and guest memory -- exactly as it was.
        structure.check_binding(binding)
        table = self.pasid_table
        if table is not None and table.binding is not binding:
            raise IommuError(
                "EINVAL",
                f"this nested domain's PASIDs are already bound through a {table.binding.value} "
                f"({table!r}); one device has one PASID structure, so PASID {pasid} cannot use "
                f"{binding.value} binding",
            )
        if table is not None and pasid_bits is not None and pasid_bits != table.pasid_bits:
            raise IommuError(
                "EINVAL",
                f"pasid_bits {pasid_bits} differs from the {table.pasid_bits}-bit PASID structure already "
                f"bound; the width is fixed when the structure is allocated",
            )
        bits = table.pasid_bits if table is not None else structure.check_width(pasid_bits)
        structure.check_index(pasid, bits)
        s1 = stage1 if stage1 is not None else self.stage1
        if s1 is not self.stage1:
            check_nest_pair(_fmt(s1), _fmt(self.stage2))
        mems = [self.host_memory, self.guest_memory]
        before = [set(m.allocations()) for m in mems]
        try:
            if table is None:
                owner_mem = self.host_memory if binding is Binding.PGTABLE else self.guest_memory
                table = structure.for_nesting(
                    owner_memory=owner_mem, host_memory=self.host_memory, binding=binding, pasid_bits=bits,
                    stage1_fmt=_fmt(s1), stage2_fmt=_fmt(self.stage2), stage2_root=_root(self.stage2),
                )
            table.bind(pasid, stage1_fmt=_fmt(s1), stage1_root=_root(s1), stage2_fmt=_fmt(self.stage2),
                       stage2_root=_root(self.stage2))
        except BaseException:
            for m, old in zip(mems, before):  # give back what this call allocated
                for addr, _n in set(m.allocations()) - old:
                    m.free(addr)
            raise
        if self.pasid_table is None:
            # The host entry holding the nest parent's root follows it when the parent grows a
            # level (amd_iommu_domain_update after increase_address_space).
            self.stage2.watch_top(table.stage2_changed)
        self.pasid_table = table
        self._pasid_roots[pasid] = _root(s1)
        return self.pasid_table

    def resolve_pasid(self, pasid: int):
        """Resolve ``pasid`` through the bound PASID structure (a ``PasidLookup``): host-owned
        structures are read directly, guest-owned ones each after a stage-2 walk of their GPA."""
        return resolve_pasid(self, pasid)

    #: The old name of :meth:`resolve_pasid`.
    _pasid_lookup = resolve_pasid

    # -- the walk verbs -----------------------------------------------------------------------
    def walk(self, iova: int, *, access: Any = "r", pasid: int | None = None) -> NestedWalk:
        """Translate ``iova`` the way the IOMMU does on a cold IOTLB: the full 2-D walk.

        With ``pasid``, the PASID structures are read first (host-owned ones directly,
        guest-owned ones each through a stage-2 walk) and the stage-1 root comes from the entry
        found there, not from this object.
        """
        return nested_walk(self, iova, access=access, pasid=pasid)

    def translate(self, iovas: Any, access: Any = "r", *, pasid: int | None = None):
        """Translate an array of IOVAs through both stages: a ``TranslatedBatch`` (``output``,
        ``fault``, ``size`` per IOVA; see :func:`iommu_lab.nesting.walk.translate_batch`).

        One IOVA's host-physical address (raising on a fault) is :meth:`translate_one`.
        """
        return translate_batch(self, iovas, access=access, pasid=pasid)

    def translate_one(self, iova: int, *, access: Any = "r", pasid: int | None = None) -> int:
        """The host-physical address for one ``iova``, or ``IommuError("EFAULT")`` naming the fault."""
        w = self.walk(iova, access=access, pasid=pasid)
        if w.fault:
            raise IommuError("EFAULT", str(w.fault))
        return int(w.output)

    def __repr__(self) -> str:
        f1, f2 = _fmt(self.stage1), _fmt(self.stage2)
        return f"<Nested {self.family}: {f1.name} (guest, {f1.levels} levels) over {f2.name} (host, {f2.levels} levels)>"

    _repr_html_ = display.html
