"""The walk results every translation target shares: a reference, a walk, a batch.

The one result protocol (``PageTable``, ``Nested``, ``ShadowNesting``, an IOAS domain):
``walk(iova)`` returns a result with ``.ok``, ``.output``, ``.fault``, ``.refs`` (each a
:class:`Reference`), ``.page_size`` and ``.to_dataframe()``; ``translate(iovas)`` returns a
:class:`TranslatedBatch`. The records mirror what the hardware reports: the entries it read
(generic_pt ``pt_walk_range``'s reads), the output address or the fault reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iommu_lab.core import display
from iommu_lab.core.faults import FaultReason
from iommu_lab.core.perm import Perm
from iommu_lab.core.ranges import fmt_addr, fmt_size
from iommu_lab.core.words import plural
from iommu_lab.hardware.formats import DecodedEntry, EntryKind, Format

__all__ = ["Reference", "TableFetchError", "TranslatedBatch", "Translation", "Walk", "WalkFault", "WalkStep"]


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
class Reference:
    """One memory reference of a walk: which table, which index, what was read, what it means.

    The one record of a page-table read every walk result carries in ``.refs``: ``address``
    (where memory was read), ``name`` (the level's name in the specification), ``raw``,
    ``fields`` (decoded) and ``stage``.
    """

    level: int
    name: str
    table: int  #: table base in the walk's address space (root or previous pointer)
    index: int
    entry_address: int  #: table + index * 8, in the walk's address space
    read_address: int  #: where memory was read (differs under a table_hook)
    raw: int
    entry: DecodedEntry
    via: Any = None  #: what the table_hook returned with the address (e.g. a stage-2 Walk)
    stage: int = 1  #: the stage whose table was read (1 or 2)

    @property
    def kind(self) -> EntryKind:
        return self.entry.kind

    @property
    def address(self) -> int:
        """Where memory was read (the physical address of the entry)."""
        return self.read_address

    @property
    def fields(self) -> dict:
        """The entry's named fields and their values."""
        return self.entry.fields


#: The older name of :class:`Reference` (one step of a single-stage walk).
WalkStep = Reference


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
    steps: tuple[Reference, ...]
    result: Translation | None = None
    fault: WalkFault | None = None
    access: Perm = Perm.NONE

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def output(self) -> int | None:
        """The translated address (None after a fault)."""
        return self.result.pa if self.result else None

    @property
    def pa(self) -> int | None:
        """The older name of :attr:`output`."""
        return self.output

    @property
    def refs(self) -> tuple[Reference, ...]:
        """Every memory reference, in order (``steps`` is the older name)."""
        return self.steps

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
        """How many memory references the walk made (``len(refs)``)."""
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
                f"=> pa {fmt_addr(r.pa)} ({fmt_size(r.size)} {self.fmt.level_name(r.level)} leaf, "
                f"{self.fmt.perm_text(r.perm)}), "
                f"{plural(self.references, 'memory reference')}"
            )
        f = self.fault
        where = f" at {self.fmt.level_name(f.level)}" if f.level is not None else ""
        return (
            f"=> FAULT {f.reason.value}{where}: {f.message} ({plural(self.references, 'memory reference')})"
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
    size: np.ndarray | None = None
    fault_level: np.ndarray | None = None
    leaf_level: np.ndarray | None = None
    entry_address: np.ndarray | None = None

    @property
    def output(self) -> np.ndarray:
        """The translated addresses (0 where faulted); ``pa`` is the same array.

        A numpy array cannot hold ``None``, so a fault reads as 0 here while ``walk(iova).output``
        is ``None``: compare the two with :meth:`output_of` / :meth:`outputs`, which give
        ``None`` where the IOVA faulted, exactly as the walk does.
        """
        return self.pa

    def output_of(self, i: int) -> int | None:
        """IOVA ``i``'s output as ``walk(iova).output`` gives it: an int, or ``None`` on a fault."""
        return None if bool(self.fault[i]) else int(self.pa[i])

    def outputs(self) -> list[int | None]:
        """Every output as ``walk`` gives it (``None`` where faulted), for element-wise comparison."""
        return [None if f else int(p) for p, f in zip(self.pa.tolist(), self.fault.tolist())]

    @property
    def ok(self) -> np.ndarray:
        """Where the translation succeeded (``~fault``)."""
        return ~self.fault

    def __len__(self) -> int:
        return int(self.iova.shape[0])

    def __iter__(self):
        # ``pa, fault = translate(...)`` keeps working: the batch unpacks as its two arrays.
        return iter((self.pa, self.fault))

    def __getitem__(self, i: int) -> np.ndarray:
        return (self.pa, self.fault)[i]

    def to_dataframe(self):
        """One row per IOVA: iova, output, fault (and size / levels when computed)."""
        from iommu_lab.core.frames import addr_frame

        cols = {"iova": self.iova, "output": self.pa, "fault": self.fault}
        for k in ("size", "fault_level", "leaf_level"):
            if getattr(self, k) is not None:
                cols[k] = getattr(self, k)
        return addr_frame(cols, hex_columns=["iova", "output"])
