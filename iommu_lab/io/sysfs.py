"""Importers of Linux sysfs IOMMU files: ``reserved_regions`` and whole ``iommu_groups`` trees.

``/sys/kernel/iommu_groups/<n>/reserved_regions`` has one line per region, printed by
drivers/iommu/iommu.c ``iommu_group_show_resv_regions`` as ``"0x%016llx 0x%016llx %s\\n"``:
start, *inclusive* end, type. The type strings come from ``iommu_group_resv_type_string[]``:
``direct``, ``direct-relaxable``, ``reserved``, ``msi`` — and SW_MSI prints as ``msi`` too, so
sysfs cannot tell a hardware MSI window from a software-managed one (``msi_type=`` lets the
caller say which it is; by default the kernel's software MSI window, ``MSI_IOVA_BASE``
0x8000000 for ``MSI_IOVA_LENGTH`` 1 MiB in arm-smmu-v3.c / arm-smmu.c / virtio-iommu.c, is read
as SW_MSI and every other ``msi`` line as a hardware window). The group list is built by ``iommu_insert_resv_region``:
sorted by start, same-type regions merged when they overlap *or touch*, regions of different
types never merged; ``merge_regions`` applies that rule to regions from several devices.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import U64_MAX, IovaRange, RangeSet
from iommu_lab.core.words import plural
from iommu_lab.hardware.device import Device, ReservedRegion, ResvType
from iommu_lab.io.parse import (
    Field,
    ParseError,
    decode_text,
    hex_u64,
    read_bounded,
    read_fields,
    text_lines,
)

__all__ = [
    "parse_reserved_regions",
    "read_reserved_regions",
    "merge_regions",
    "IommuGroup",
    "read_iommu_groups",
    "read_host",
    "HOST_GROUPS",
    "GROUP_TYPES",
    "RegionLayout",
    "SW_MSI_WINDOW",
]

HOST_GROUPS = Path("/sys/kernel/iommu_groups")
MAX_FILE = 1 << 20
#: At most this many group directories in one tree (a host has hundreds at most).
MAX_GROUPS = 1 << 14
#: What ``iommu_group_show_type`` prints (drivers/iommu/iommu.c).
GROUP_TYPES = ("blocked", "identity", "unmanaged", "DMA", "DMA-FQ", "unknown")
#: The software MSI window the Arm SMMU and virtio-iommu drivers reserve (MSI_IOVA_BASE,
#: MSI_IOVA_LENGTH): an ``msi`` line of exactly this range is read as SW_MSI by default.
SW_MSI_WINDOW = (0x800_0000, 0x80F_FFFF)
_GROUP_DIR = re.compile(r"[0-9]{1,9}\Z")

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


def _msi_type(msi_type) -> ResvType | None:
    if msi_type is None or (isinstance(msi_type, str) and msi_type == "auto"):
        return None
    if isinstance(msi_type, str):
        key = {"sw": "sw-msi", "software": "sw-msi", "hw": "msi", "hardware": "msi"}.get(msi_type.lower(), msi_type.lower())
        if key in ("msi", "sw-msi"):
            return ResvType(key)
    if msi_type in (ResvType.MSI, ResvType.SW_MSI):
        return msi_type
    raise ValueError(f"msi_type {str(msi_type)[:40]!r} is not one of 'auto', 'software' (ResvType.SW_MSI) or "
                     f"'hardware' (ResvType.MSI): sysfs prints both MSI kinds as 'msi'")


def parse_reserved_regions(text: Union[str, bytes], *, source: str = "reserved_regions",
                           msi_type=None) -> tuple[ReservedRegion, ...]:
    """Read the text of a sysfs ``reserved_regions`` file into ReservedRegion values.

    Parameters
    ----------
    text : str or bytes
        The file's content; blank lines are ignored.
    source : str
        Name used in error messages (the file path).
    msi_type : ResvType, "software", "hardware" or "auto"
        What ``msi`` lines are: ``ResvType.MSI`` (a hardware doorbell or the x86 interrupt
        window) or ``ResvType.SW_MSI`` (the software window iommufd maps the MSI doorbell
        into) — sysfs prints both alike. ``"auto"`` (default, also ``None``): SW_MSI for the
        kernel's software window 0x8000000..0x80fffff, MSI for every other ``msi`` line.

    Raises
    ------
    ParseError
        On the first malformed line, naming the line number and the expected form.
    """
    chosen = _msi_type(msi_type)
    text = decode_text(text, source, MAX_FILE)
    regions = []
    for number, line in text_lines(text, source):
        f = read_fields(_LINE, line.strip(), source, number)
        if f["start"] > f["end"]:
            raise ParseError(source, number, line, "start <= end (the end is inclusive)")
        kind = f["type"]
        if kind is ResvType.MSI:
            kind = chosen or (ResvType.SW_MSI if (f["start"], f["end"]) == SW_MSI_WINDOW else ResvType.MSI)
        regions.append(ReservedRegion(f["start"], f["end"], kind))
    return tuple(regions)


def read_reserved_regions(path: Union[str, os.PathLike], **kw) -> tuple[ReservedRegion, ...]:
    """Read one ``reserved_regions`` file; errors name the file and line."""
    return parse_reserved_regions(read_bounded(path, MAX_FILE), source=str(path), **kw)


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
    descriptions: tuple[str, ...] = ()  #: per device, the lspci text a wiki listing gives

    def device(self, name: str | None = None, *, aperture=None, pgsizes: int = 0x1000) -> Device:
        """A Device to attach to an IOAS, carrying this group's reserved regions.

        sysfs does not show the domain aperture or page sizes; pass them (e.g. from a catalogue
        platform: ``platform.windows``, ``platform.pgsizes``) or accept the full space and 4 KiB.
        """
        if name is None:
            name = self.devices[0] if self.devices else f"group{self.number}"
        kw = {} if aperture is None else {"aperture": aperture}
        return Device(name, pgsizes=pgsizes, reserved=self.reserved, **kw)


@dataclass(frozen=True)
class RegionLayout:
    """The IOVA space one device or group sees, with **every** reserved region kept.

    Attaching to an IOAS reserves every region but ``direct-relaxable`` ones
    (``iopt_table_enforce_dev_resv_regions``), so an IOAS layout shows a relaxable RMRR as free
    space. This view keeps them, each with :meth:`enforced` saying whether iommufd would
    reserve it; layouts draw it like a platform (``windows`` and ``reserved``).
    """

    name: str
    reserved: tuple[ReservedRegion, ...]
    windows: tuple[IovaRange, ...] = (IovaRange(0, U64_MAX),)

    @property
    def title(self) -> str:
        relaxed = sum(1 for r in self.reserved if not self.enforced(r))
        return self.name + (f" ({plural(relaxed, 'relaxable region')}, not enforced by iommufd)" if relaxed else "")

    @staticmethod
    def enforced(region: ReservedRegion) -> bool:
        """Whether iommufd reserves this region at attach (every type but direct-relaxable)."""
        return region.type.becomes_hole

    @classmethod
    def of_group(cls, group: "IommuGroup") -> "RegionLayout":
        devs = ", ".join(group.devices[:3]) + (" ..." if len(group.devices) > 3 else "")
        return cls(f"group {group.number}" + (f": {devs}" if devs else ""), group.reserved)

    def to_dataframe(self):
        from iommu_lab.core.frames import addr_frame

        return addr_frame({"start": [r.start for r in self.reserved], "last": [r.last for r in self.reserved],
                           "type": [r.type.value for r in self.reserved],
                           "enforced": [self.enforced(r) for r in self.reserved]}, hex_columns=["start", "last"])


def read_iommu_groups(path: Union[str, os.PathLike], **kw) -> tuple[IommuGroup, ...]:
    """Read a copied (or the live) ``iommu_groups`` tree: every numbered group, in number order."""
    root = Path(path)
    if not root.is_dir():
        raise ParseError(str(root), 0, "", "a directory holding numbered group directories (a copy of /sys/kernel/iommu_groups)")
    groups = []
    seen: dict[int, str] = {}
    for n, entry in enumerate(root.iterdir()):
        if n >= MAX_GROUPS:
            raise ParseError(str(root), 0, "", f"at most {MAX_GROUPS} group directories")
        if not entry.is_dir():
            continue
        if not _GROUP_DIR.match(entry.name):
            raise ParseError(str(entry), 0, entry.name, "only numbered group directories such as '0', '17'")
        number = int(entry.name)
        if number in seen:
            a, b = sorted((seen[number], entry.name))
            raise ParseError(str(root), 0, f"{a}, {b}", f"one directory per group: '{a}' and '{b}' are both group "
                                                        f"{number} (the kernel names a group '%d')")
        seen[number] = entry.name
        resv = entry / "reserved_regions"
        regions = read_reserved_regions(resv, **kw) if resv.exists() else ()
        devdir = entry / "devices"
        devices = tuple(sorted(d.name for d in devdir.iterdir())) if devdir.is_dir() else ()
        tfile = entry / "type"
        gtype = None
        if tfile.exists():
            lines = text_lines(decode_text(read_bounded(tfile, 64), str(tfile), 64), str(tfile))
            gtype = lines[0][1].strip() if lines else ""
            if len(lines) != 1 or gtype not in GROUP_TYPES:
                raise ParseError(str(tfile), lines[0][0] if lines else 1, gtype or "",
                                 "one of " + ", ".join(GROUP_TYPES) + " (iommu_group_show_type)")
        groups.append(IommuGroup(number, devices, regions, gtype))
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
