"""The record of what was done to an I/O address space, and its replay.

Each successful IOAS operation appends one ``IoasOp`` (plus the one failed call that still
changed state: an UNMAP that removed earlier areas before refusing a later one, as io_pagetable.c
``iopt_unmap_iova_range`` does). ``apply`` performs recorded operations again through the IOAS's
public methods, which is how ``IOAS.replay`` and scenario files rebuild a layout. There is no
kernel counterpart: this is the model's journal of the ioctls (``IOMMU_IOAS_MAP``, ``_UNMAP``,
``_COPY``, ``_ALLOW_IOVAS``, ``IOMMU_OPTION_HUGE_PAGES``, device attach and detach, the
selftest's reservations and accesses) a VMM issued.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Iterable

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import IovaRange, fmt_addr
from iommu_lab.hardware.device import Device

__all__ = [
    "IoasOp",
    "MapOp",
    "UnmapOp",
    "UnmapAllOp",
    "CopyOp",
    "AllowOp",
    "ReserveOp",
    "AttachOp",
    "DetachOp",
    "HugePagesOp",
    "AddAccessOp",
    "RemoveAccessOp",
    "apply",
]


@dataclass(frozen=True)
class IoasOp:
    """One recorded operation; ``op`` is its name. Replay with ``IOAS.replay``."""

    op: ClassVar[str] = "op"

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            if not f.repr:
                continue
            v = getattr(self, f.name)
            parts.append(f"{f.name}={fmt_addr(v) if isinstance(v, int) and not isinstance(v, bool) else repr(v)}")
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class MapOp(IoasOp):
    op: ClassVar[str] = "map"
    length: int
    iova: int | None
    user_va: int | None
    prot: str
    result: int


@dataclass(frozen=True, repr=False)
class UnmapOp(IoasOp):
    """A range unmap; ``errno`` is set for the one failed call that still changed state (an UNMAP
    that removed earlier areas before refusing a later one, as ``iopt_unmap_iova_range``)."""

    op: ClassVar[str] = "unmap"
    iova: int
    length: int
    result: int
    errno: str | None = None


@dataclass(frozen=True, repr=False)
class UnmapAllOp(IoasOp):
    op: ClassVar[str] = "unmap_all"
    result: int


@dataclass(frozen=True, repr=False)
class CopyOp(IoasOp):
    """``src`` is None when the copy came from the same IOAS."""

    op: ClassVar[str] = "copy"
    src_iova: int
    length: int
    iova: int | None
    prot: str
    result: int
    src: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, repr=False)
class AllowOp(IoasOp):
    op: ClassVar[str] = "allow_iovas"
    ranges: tuple[IovaRange, ...]


@dataclass(frozen=True, repr=False)
class ReserveOp(IoasOp):
    op: ClassVar[str] = "reserve"
    start: int
    last: int
    owner: str | None


@dataclass(frozen=True, repr=False)
class AttachOp(IoasOp):
    op: ClassVar[str] = "attach"
    device: Device
    force_writeable: bool = False


@dataclass(frozen=True, repr=False)
class DetachOp(IoasOp):
    op: ClassVar[str] = "detach"
    device: Device


@dataclass(frozen=True, repr=False)
class HugePagesOp(IoasOp):
    op: ClassVar[str] = "set_huge_pages"
    enabled: bool


@dataclass(frozen=True, repr=False)
class AddAccessOp(IoasOp):
    op: ClassVar[str] = "add_access"
    iova_alignment: int


@dataclass(frozen=True, repr=False)
class RemoveAccessOp(IoasOp):
    """``index`` counts accesses in the order ``add_access`` created them."""

    op: ClassVar[str] = "remove_access"
    index: int


def apply(ioas: Any, ops: Iterable[IoasOp]) -> None:
    """Perform recorded operations on ``ioas`` in order, through its public methods; an op
    recorded with an errno must fail with it."""
    made: list[Any] = []
    for op in ops:
        if isinstance(op, MapOp):
            ioas.map(op.length, op.iova, user_va=op.user_va, prot=op.prot)
        elif isinstance(op, UnmapOp):
            if op.errno is None:
                ioas.unmap(op.iova, op.length)
            else:
                try:
                    ioas.unmap(op.iova, op.length)
                except IommuError as e:
                    if e.errno != op.errno:
                        raise
                else:
                    raise AssertionError(f"replayed {op} succeeded but was recorded as failing")
        elif isinstance(op, UnmapAllOp):
            ioas.unmap_all()
        elif isinstance(op, CopyOp):
            ioas.copy(op.src if op.src is not None else ioas, op.src_iova, op.length, op.iova, prot=op.prot)
        elif isinstance(op, AllowOp):
            ioas.allow_iovas(op.ranges)
        elif isinstance(op, ReserveOp):
            ioas.reserve(IovaRange(op.start, op.last), owner=op.owner)
        elif isinstance(op, AttachOp):
            ioas.attach(op.device, force_writeable=op.force_writeable)
        elif isinstance(op, DetachOp):
            ioas.detach(op.device)
        elif isinstance(op, HugePagesOp):
            ioas.set_huge_pages(op.enabled)
        elif isinstance(op, AddAccessOp):
            made.append(ioas.add_access(op.iova_alignment))
        elif isinstance(op, RemoveAccessOp):
            ioas.remove_access(made[op.index])
        else:
            raise TypeError(f"cannot replay {op!r}")
