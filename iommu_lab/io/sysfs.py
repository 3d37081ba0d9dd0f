"""Importers of Linux sysfs IOMMU files: ``reserved_regions`` and whole ``iommu_groups`` trees.

``/sys/kernel/iommu_groups/<n>/reserved_regions`` has one line per region, printed by
drivers/iommu/iommu.c ``iommu_group_show_resv_regions`` as ``"0x%016llx 0x%016llx %s\\n"``:
start, *inclusive* end, type. The type strings come from ``iommu_group_resv_type_string[]``:
``direct``, ``direct-relaxable``, ``reserved``, ``msi`` — and SW_MSI prints as ``msi`` too, so
sysfs cannot tell a hardware MSI window from a software-managed one (``msi_type=`` lets the
caller say which it is; default MSI). The group list is built by ``iommu_insert_resv_region``:
sorted by start, same-type regions merged when they overlap *or touch*, regions of different
types never merged; ``merge_regions`` applies that rule to regions from several devices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import IovaRange, RangeSet
from iommu_lab.hardware.device import Device, ReservedRegion, ResvType
from iommu_lab.io.parse import Field, ParseError, hex_u64, read_fields

__all__ = [
    "parse_reserved_regions",
    "read_reserved_regions",
    "merge_regions",
    "IommuGroup",
    "read_iommu_groups",
    "read_host",
    "HOST_GROUPS",
]

HOST_GROUPS = Path("/sys/kernel/iommu_groups")
MAX_FILE = 1 << 20

_SYSFS_TYPES = {"direct": ResvType.DIRECT, "direct-relaxable": ResvType.DIRECT_RELAXABLE,
                "reserved": ResvType.RESERVED, "msi": ResvType.MSI}


def _sysfs_type(token: str) -> ResvType:
    if token not in _SYSFS_TYPES:
        raise ValueError(token)
    return _SYSFS_TYPES[token]


_LINE = (
    Field("start", hex_u64, "a hex address such as 0x00000000fee00000"),
    Field("end", hex_u64, "a hex address (inclusive end) such as 0x00000000feefffff"),
    Field("type", _sysfs_type, "one of " + ", ".join(_SYSFS_TYPES)),
)


def parse_reserved_regions(text: Union[str, bytes], *, source: str = "reserved_regions",
                           msi_type: ResvType = ResvType.MSI) -> tuple[ReservedRegion, ...]:
    """Read the text of a sysfs ``reserved_regions`` file into ReservedRegion values.

    Parameters
    ----------
    text : str or bytes
        The file's content; blank lines are ignored.
    source : str
        Name used in error messages (the file path).
    msi_type : ResvType
        What ``msi`` lines are: ``ResvType.MSI`` (x86 interrupt window, default) or
        ``ResvType.SW_MSI`` (ARM SMMU / virtio-iommu software window) — sysfs prints both alike.

    Raises
    ------
    ParseError
        On the first malformed line, naming the line number and the expected form.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise ParseError(source, 1, repr(text[:40]), "ASCII text (the file looks binary)") from None
    if len(text) > MAX_FILE:
        raise ParseError(source, text.count("\n", 0, MAX_FILE) + 1, "...", f"a file of at most {MAX_FILE} bytes")
    if msi_type not in (ResvType.MSI, ResvType.SW_MSI):
        raise ValueError(f"msi_type must be ResvType.MSI or ResvType.SW_MSI, got {msi_type!r}")
    regions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        f = read_fields(_LINE, line.strip(), source, number)
        if f["start"] > f["end"]:
            raise ParseError(source, number, line, "start <= end (the end is inclusive)")
        kind = msi_type if f["type"] is ResvType.MSI else f["type"]
        regions.append(ReservedRegion(f["start"], f["end"], kind))
    return tuple(regions)


def read_reserved_regions(path: Union[str, os.PathLike], **kw) -> tuple[ReservedRegion, ...]:
    """Read one ``reserved_regions`` file; errors name the file and line."""
    p = Path(path)
    try:
        data = p.read_bytes()[: MAX_FILE + 1]
    except OSError as e:
        raise ParseError(str(p), 0, "", f"a readable file ({e.strerror})") from None
    return parse_reserved_regions(data, source=str(p), **kw)


def merge_regions(regions: Iterable[ReservedRegion]) -> tuple[ReservedRegion, ...]:
    """Combine regions into a group list as ``iommu_insert_resv_region`` does.

    Sorted by (start, type); same-type regions that overlap or touch
    (``start <= previous_end + 1``) merge; different types stay separate even if they overlap.
    """
    by_type: dict[ResvType, list[IovaRange]] = {}
    for r in regions:
        by_type.setdefault(r.type, []).append(r.range)
    merged = [ReservedRegion(rng.start, rng.last, t) for t, rngs in by_type.items() for rng in RangeSet(rngs)]
    order = list(ResvType)
    return tuple(sorted(merged, key=lambda r: (r.start, order.index(r.type))))


@dataclass(frozen=True)
class IommuGroup:
    """One ``/sys/kernel/iommu_groups/<n>`` directory: its devices, domain type and regions."""

    number: int
    devices: tuple[str, ...]
    reserved: tuple[ReservedRegion, ...]
    type: str | None = None

    def device(self, name: str | None = None, *, aperture=None, pgsizes: int = 0x1000) -> Device:
        """A Device to attach to an IOAS, carrying this group's reserved regions.

        sysfs does not show the domain aperture or page sizes; pass them (e.g. from a catalogue
        platform: ``platform.windows``, ``platform.pgsizes``) or accept the full space and 4 KiB.
        """
        if name is None:
            name = self.devices[0] if self.devices else f"group{self.number}"
        kw = {} if aperture is None else {"aperture": aperture}
        return Device(name, pgsizes=pgsizes, reserved=self.reserved, **kw)


def read_iommu_groups(path: Union[str, os.PathLike], **kw) -> tuple[IommuGroup, ...]:
    """Read a copied (or the live) ``iommu_groups`` tree: every numbered group, in number order."""
    root = Path(path)
    if not root.is_dir():
        raise ParseError(str(root), 0, "", "a directory holding numbered group directories (a copy of /sys/kernel/iommu_groups)")
    groups = []
    for entry in root.iterdir():
        if not entry.is_dir():
            continue
        if not entry.name.isdigit():
            raise ParseError(str(entry), 0, entry.name, "only numbered group directories such as '0', '17'")
        resv = entry / "reserved_regions"
        regions = read_reserved_regions(resv, **kw) if resv.exists() else ()
        devdir = entry / "devices"
        devices = tuple(sorted(d.name for d in devdir.iterdir())) if devdir.is_dir() else ()
        tfile = entry / "type"
        gtype = tfile.read_text(errors="replace").strip() if tfile.exists() else None
        groups.append(IommuGroup(int(entry.name), devices, regions, gtype))
    return tuple(sorted(groups, key=lambda g: g.number))


def read_host(path: Union[str, os.PathLike] = HOST_GROUPS) -> tuple[IommuGroup, ...]:
    """This machine's IOMMU groups, read-only; a clear ENODEV error when there are none."""
    root = Path(path)
    if not root.is_dir() or not any(root.iterdir()):
        raise IommuError(
            "ENODEV",
            f"{root} does not exist or is empty on this machine: the kernel has no IOMMU groups "
            f"(no IOMMU, IOMMU disabled, or not Linux); copy a machine's iommu_groups tree and "
            f"use read_iommu_groups(path) instead",
        )
    return read_iommu_groups(root)
