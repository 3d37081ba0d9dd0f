"""Stage 1 over stage 2: the nested pair a notebook builds, and the nest parent on an IOAS.

:class:`Nested` is one nested HWPT on its parent: the walk verbs come from
:class:`~iommu_lab.nesting.pair.NestedPair` (``walk`` one IOVA, ``translate`` arrays,
``resolve_pasid``), and it adds the two views built on them, each in its own module:
``explain`` (the guest lookup aid, :mod:`iommu_lab.nesting.explain`) and ``shadow`` (software
nesting, :mod:`iommu_lab.nesting.shadow`). :class:`NestParent` allocates the stage 2 on an IOAS
(``IOMMU_HWPT_ALLOC_NEST_PARENT``) and builds nested domains on it.

The concepts live in their own modules and are re-exported here for existing imports: guest
memory (``memory``), fault attribution (``faults``), which pairs nest (``rules``), the 2-D walk
and its result (``walk``), PASID structures (``pasid``).
"""

from __future__ import annotations

from typing import Any

from iommu_lab.core.errors import IommuError, UnsupportedError
from iommu_lab.core.faults import FaultKind
from iommu_lab.core.words import plural
from iommu_lab.hardware import formats as _formats
from iommu_lab.hardware.faults import AMD_EVENT_FLAGS, SMMU_CLASS, SMMU_EVENT_IDS, VTD_SM_REASONS
from iommu_lab.nesting.explain import GuestLookup, explain
from iommu_lab.nesting.faults import (
    AmdEvent,
    FaultOwner,
    FaultSite,
    NestedFault,
    SmmuEvent,
    Stage,
    VtdFault,
)
from iommu_lab.nesting.memory import (
    GuestMemory,
    _fmt,
    _host_memory_for,
    _memory,
    _root,
    _translate_one,
    _walk,
    host_memory_for,
)
from iommu_lab.nesting.pair import NestedPair
from iommu_lab.nesting.rules import NestingCapability, check_nest_pair
from iommu_lab.nesting.shadow import ShadowNesting
from iommu_lab.nesting.walk import NestedRef, NestedWalk, RefRole, _is_write, nested_walk_refs
from iommu_lab.pagetable.table import PageTable

__all__ = [
    "AMD_EVENT_FLAGS",
    "SMMU_CLASS",
    "SMMU_EVENT_IDS",
    "VTD_SM_REASONS",
    "AmdEvent",
    "FaultKind",
    "FaultOwner",
    "FaultSite",
    "GuestMemory",
    "NestParent",
    "Nested",
    "NestedFault",
    "NestedRef",
    "NestedWalk",
    "NestingCapability",
    "RefRole",
    "SmmuEvent",
    "Stage",
    "VtdFault",
    "_fmt",
    "_host_memory_for",
    "_is_write",
    "_memory",
    "_root",
    "_translate_one",
    "_walk",
    "check_nest_pair",
    "nested_walk_refs",
]


class Nested(NestedPair):
    """A guest stage-1 table nested on a host stage-2 table (one nested HWPT on its parent).

    Mirrors iommufd's ``IOMMU_HWPT_ALLOC`` of a nested HWPT (``IOMMU_HWPT_DATA_VTD_S1``,
    ``_ARM_SMMUV3``, ``_AMD_GUEST``) on a ``NEST_PARENT`` paging HWPT: the parent is the host's
    stage 2 (GPA -> HPA), the child the guest's stage 1 (IOVA -> GPA) whose tables are in guest
    memory. Build one from two page tables, with :meth:`build` from two formats, or with
    :meth:`for_platform` from the catalogue.

    Verbs: ``walk(iova)`` (one IOVA, a :class:`NestedWalk`), ``translate(iovas)`` (arrays, a
    ``TranslatedBatch``; ``translate_one`` for one IOVA as an int), ``explain(iova)`` (the guest
    lookup aid; ``lookup`` is its old name), ``resolve_pasid(pasid)``, ``shadow()``.

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

    def explain(self, iova: int, *, access: Any = "r") -> GuestLookup:
        """Explain, entry by entry, how the hardware reads the guest's table for ``iova``
        (see :func:`iommu_lab.nesting.explain.explain`)."""
        return explain(self, iova, access=access)

    #: The old name of :meth:`explain` (``lookup`` now means the IOAS question).
    lookup = explain

    def shadow(self, **kwargs: Any) -> ShadowNesting:
        """Software nesting: compose both stages into one host-format table
        (see :class:`iommu_lab.nesting.shadow.ShadowNesting`)."""
        return ShadowNesting.from_nested(self, **kwargs)


# ----------------------------------------------------------------------------------------------
# IOAS integration: a nest parent filled from an IOAS
# ----------------------------------------------------------------------------------------------


class NestParent:
    """A nest-parent paging domain on an IOAS (``IOMMU_HWPT_ALLOC`` with
    ``IOMMU_HWPT_ALLOC_NEST_PARENT``, ``pt_id`` = the IOAS).

    Like ``iopt_table_add_domain`` + ``iopt_fill_domain`` it holds every area of the IOAS, and
    follows later maps and unmaps (:meth:`sync`, run before every walk of a nested domain built
    on it): the IOAS's IOVAs are the guest's GPAs. A kernel nest parent is allocated by the user,
    never the domain auto-created at attach ("an HWPT that was auto-created at attach cannot be
    a parent"), so it is a table of its own beside ``ioas.domains``. The IOAS's pinned pages are
    not readable storage in the model, so the parent backs each area with a block of its own host
    memory (what ``pin_user_pages`` would have found), where the guest's tables then live.
    The parent must be a stage-2 format (VT-d: ``intel_iommu_domain_alloc_second_stage``), and
    only platforms with hardware nesting allocate one; the others report ``EOPNOTSUPP`` and say
    what they offer.

    Parameters
    ----------
    ioas : IOAS
        An IOAS made with ``IOAS.from_platform(p)`` (the platform decides the capability).
    fmt : format name, optional
        Default: the platform's ``stage2`` format.
    """

    def __init__(self, ioas: Any, *, fmt: Any = None, platform: Any = None) -> None:

        p = platform if platform is not None else getattr(ioas, "_platform", None)
        cap = ioas.info().capabilities.nesting
        if cap is not NestingCapability.HARDWARE:
            name = getattr(p, "name", "this IOAS")
            offer = (
                "software nesting only: shadow the guest's mappings (iommu_lab.nesting.shadow.ShadowNesting)"
                if cap is NestingCapability.SOFTWARE
                else "no nesting at all"
            )
            raise UnsupportedError(
                f"{name} cannot allocate a nest parent (IOMMU_HWPT_ALLOC_NEST_PARENT): it reports {offer}"
            )
        if fmt is None:
            if p is None:
                raise IommuError(
                    "EINVAL", "the IOAS has no platform; give the stage-2 format (fmt=...)"
                )
            fmt = p.format_name("stage2")
        f2 = _formats.get(fmt)
        if f2.stage != 2:
            raise IommuError(
                "EOPNOTSUPP",
                f"{f2.name} is a stage-{f2.stage} format; a nest parent must be a stage-2 (second-stage) "
                f"domain, as intel_iommu_domain_alloc_first_stage() refuses NEST_PARENT",
            )
        self.ioas = ioas
        self.platform = p
        self.table = PageTable(f2, memory=host_memory_for(f2))
        #: (iova, length, prot) of each area mapped -> HPA of its first byte
        self._areas: dict[tuple[int, int, int], int] = {}
        #: host blocks: HPA -> (first IOVA it backs, bytes)
        self._blocks: dict[int, tuple[int, int]] = {}
        self.sync()

    @property
    def capability(self) -> NestingCapability:
        return NestingCapability.HARDWARE

    @property
    def host_memory(self) -> Any:
        return self.table.memory

    def sync(self) -> None:
        """Follow the IOAS: unmap areas that are gone, map new ones (``iopt_area_fill_domains``
        / ``iopt_area_unfill_domains``). A piece left by a partial unmap keeps its bytes: it is
        mapped to the same host block, as pinned pages stay where they are."""
        want = {(a.iova, a.length, int(a.prot) & 3) for a in self.ioas.areas}
        gone = [k for k in self._areas if k not in want]
        new = sorted(k for k in want if k not in self._areas)
        for k in gone:
            if k[2]:
                self.table.unmap(k[0], k[1])
            del self._areas[k]
        for iova, length, prot in new:
            hpa = None
            for base, (b_iova, b_len) in self._blocks.items():
                if b_iova <= iova and iova + length <= b_iova + b_len:
                    hpa = base + (iova - b_iova)
                    break
            if hpa is None:
                hpa = int(self.host_memory.alloc(length))
                self._blocks[hpa] = (iova, length)
            if prot:
                self.table.map(iova, hpa, length, prot=prot)
            self._areas[(iova, length, prot)] = hpa
        for base, (b_iova, b_len) in list(self._blocks.items()):
            if not any(b_iova <= k[0] < b_iova + b_len for k in self._areas):
                self.host_memory.free(base)
                del self._blocks[base]

    def nested(
        self,
        stage1_format: Any = None,
        *,
        guest_base: int | None = None,
        guest_size: int | None = None,
    ) -> Nested:
        """A nested domain on this parent (``IOMMU_HWPT_ALLOC`` with a stage-1 ``data_type``).

        The guest's RAM is an IOAS area (default: the first); its stage-1 tables are allocated
        in it and reached through this parent.
        """

        self.sync()
        if guest_base is None:
            areas = self.ioas.areas
            if not areas:
                raise IommuError(
                    "ENOENT",
                    "the IOAS maps no guest RAM yet; map it (ioas.map) before nesting on it",
                )
            guest_base, guest_size = areas[0].iova, areas[0].length
        if guest_size is None:
            raise IommuError("EINVAL", "give guest_size with guest_base")
        if stage1_format is None:
            if self.platform is None:
                raise IommuError("EINVAL", "the IOAS has no platform; give the stage-1 format")
            stage1_format = self.platform.format_name("stage1")
        gm = GuestMemory(
            self.table, self.host_memory, base=guest_base, size=guest_size, backing="external"
        )
        s1 = PageTable(_formats.get(stage1_format), memory=gm)
        nested = Nested(s1, self.table, platform=self.platform)
        nested.parent = self
        return nested

    def __repr__(self) -> str:
        return f"<NestParent {self.table.fmt.name} on IOAS with {plural(len(self.ioas.areas), 'area')}>"
