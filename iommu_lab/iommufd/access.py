"""In-kernel users of an I/O address space and the pages they pin: ``struct iommufd_access``.

Mirrors drivers/iommu/iommufd/device.c: an access (an mdev driver, the selftest's access object)
is added with its own ``iova_alignment``, which joins the IOAS's (``iopt_add_access``,
``iopt_calculate_iova_alignment``); it pins IOVA ranges (``iommufd_access_pin_pages``), and an
UNMAP over pinned pages is not refused: the access is told (``iommufd_access_notify_unmap``) and
drops its pins, then the unmap goes on (io_pagetable.c ``iopt_unmap_iova_range``).
"""

from __future__ import annotations

from typing import Any, Iterable

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, fmt_addr
from iommu_lab.iommufd.area import Area, Prot, uapi_int

__all__ = ["Access", "notify_unmap", "pinned_by_any"]


class Access:
    """An in-kernel user of the IOAS, ``struct iommufd_access``.

    Parameters
    ----------
    ioas : IOAS
        The address space the user holds (what ``access.ioas`` answers).
    iova_alignment : int
        Joins the IOAS alignment while the access exists.
    iopt : object
        The IOVA space pins are looked up in; anything with ``contiguous(start, last)``
        (``IoPagetable``). Default: ``ioas.iopt``.
    index : int
        Which access of its IOAS this is, counting every one ``add_access`` made (history).
    """

    def __init__(self, ioas: Any, iova_alignment: int, *, iopt: Any = None, index: int = 0) -> None:
        self.ioas = ioas
        self.iopt = iopt if iopt is not None else ioas.iopt
        self.iova_alignment = iova_alignment
        self.index = index
        self.pins: list[IovaRange] = []
        self.notifications: list[IovaRange] = []
        self.attached = True

    def pin(self, iova: int, length: int, *, write: bool = False) -> None:
        """Pin ``[iova, iova+length-1]`` as ``iommufd_access_pin_pages``: length 0 → EINVAL, wrap
        → EOVERFLOW, not covered by contiguous areas → ENOENT, write on a read-only area → EPERM."""
        iova = uapi_int(iova, "iova")
        length = uapi_int(length, "length")
        if not self.attached:
            raise IommuError("ENOENT", "this access was removed from its IOAS")
        if length == 0:
            raise IommuError("EINVAL", "pin of 0 bytes")
        if iova + length - 1 > U64_MAX:
            raise IommuError("EOVERFLOW", f"pin [{fmt_addr(iova)} + {fmt_addr(length)}] wraps past 2^64")
        rng = IovaRange(iova, iova + length - 1)
        pieces = self.iopt.contiguous(rng.start, rng.last)
        if pieces is None:
            raise IommuError("ENOENT", f"pin {rng} is not fully mapped by contiguous areas")
        if write and any(not a.prot & Prot.WRITE for a, _, _ in pieces):
            raise IommuError("EPERM", f"write pin of {rng} covers a read-only area")
        self.pins.append(rng)

    def unpin(self, iova: int, length: int) -> None:
        """Drop one pin made by ``pin`` (``iommufd_access_unpin_pages``)."""
        rng = IovaRange.from_size(iova, length)
        if rng not in self.pins:
            raise ValueError(f"{rng} was not pinned by this access; pins are {[str(p) for p in self.pins]}")
        self.pins.remove(rng)

    def pinned(self, area: Area) -> bool:
        """Whether any pin of this access lies in ``area``."""
        return any(p.overlaps(area.range) for p in self.pins)

    def notify_unmap(self, area: Area) -> None:
        """``iommufd_access_notify_unmap``: the area goes away; the pins inside it are dropped."""
        self.notifications.append(area.range)
        self.pins = [p for p in self.pins if not p.overlaps(area.range)]

    def detach(self) -> None:
        """``iommufd_access_detach``: the access leaves its IOAS and drops every pin."""
        self.attached = False
        self.pins.clear()

    def __repr__(self) -> str:
        return f"Access(iova_alignment={fmt_addr(self.iova_alignment)}, pins=[{', '.join(str(p) for p in self.pins)}])"


def notify_unmap(accesses: Iterable[Access], area: Area) -> None:
    """Tell every access pinning part of ``area`` that it is being unmapped."""
    for acc in accesses:
        if acc.pinned(area):
            acc.notify_unmap(area)


def pinned_by_any(accesses: Iterable[Access], area: Area) -> bool:
    """Whether some access has part of ``area`` pinned (an ``iopt_area_split`` refuses it)."""
    return any(acc.pinned(area) for acc in accesses)
