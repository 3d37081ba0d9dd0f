"""One detector for every kernel artefact a debugging user has: name the kind by content, then read it.

:func:`detect` looks at the text the kernel (or a user's shell) put in a file — headers, section
lines and line shapes, never the file name alone — and names its :class:`Kind`. :func:`read`
reads the kinds we have a reader for and, for the kinds we recognise but do not read, raises
:class:`NotReadYet` ("this is an AMD cmdbuf dump; not read yet"), so no file gets a parse error
written for some other format.

Recognised by content:

========================= ===========================================================
sysfs ``reserved_regions``  ``0x<16 hex> 0x<16 hex> direct|direct-relaxable|reserved|msi``
``iommu_groups`` listing    ``.../iommu_groups/N/devices/DEV`` (find) or ``IOMMU Group N``
Intel debugfs               ``IOVA_PFN`` / ``Device ... @0x``; ``Root Table Address``;
                            ``Register Base Address`` + ``Name Offset Contents``;
                            ``Invalidation queue on IOMMU``; ``IR table address``
AMD debugfs                 ``DeviceId QWORD[3]``; ``DeviceId SSSS:..`` + ``IRT[``;
                            ``Offset:0x.. Value:0x..``; ``CMD Buffer Head Offset``
kernel log (dmesg)          DMAR / AMD-Vi / arm-smmu fault lines (:mod:`iommu_lab.io.dmesg`)
========================= ===========================================================
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from iommu_lab.io import amd, debugfs, dmar, dmesg, groups, regset, sysfs
from iommu_lab.io.parse import ParseError, decode_text, read_bounded, text_lines

__all__ = ["Kind", "NotReadYet", "Imported", "detect", "read", "MAX_FILE"]

MAX_FILE = 1 << 22


class Kind(enum.Enum):
    """What a file is, as a person would name it."""

    RESERVED_REGIONS = "sysfs reserved_regions file"
    GROUPS_TREE = "copied iommu_groups tree"
    GROUP_LISTING = "iommu_groups listing"
    DOMAIN_TRANSLATION = "Intel domain_translation_struct dump"
    DMAR_TRANSLATION = "Intel dmar_translation_struct dump"
    IOMMU_REGSET = "Intel iommu_regset dump"
    INVALIDATION_QUEUE = "Intel invalidation_queue dump"
    IR_TRANSLATION = "Intel ir_translation_struct dump"
    DMAR_PERF_LATENCY = "Intel dmar_perf_latency dump"
    AMD_DEVTBL = "AMD devtbl dump"
    AMD_IRQTBL = "AMD irqtbl dump"
    AMD_REGISTER = "AMD mmio/capability read"
    AMD_CMDBUF = "AMD cmdbuf dump"
    DMESG = "kernel log with IOMMU fault lines"
    EMPTY = "empty file"

    @property
    def readable(self) -> bool:
        return self not in _NOT_READ


_NOT_READ = {Kind.INVALIDATION_QUEUE, Kind.IR_TRANSLATION, Kind.DMAR_PERF_LATENCY, Kind.AMD_IRQTBL, Kind.AMD_CMDBUF}


class NotReadYet(ParseError):
    """A file of a kind we recognise but have no reader for."""

    def __init__(self, source: str, kind: Kind) -> None:
        readable = ", ".join(k.value for k in Kind if k.readable and k is not Kind.EMPTY)
        ValueError.__init__(self, f"{source}: this is an {kind.value}; not read yet (iommu-lab reads: {readable})")
        self.source, self.line, self.text, self.expected, self.kind = source, 0, "", "a kind we read", kind


@dataclass(frozen=True)
class Imported:
    """What :func:`read` found: the kind, the value its reader returned, and where from."""

    kind: Kind
    value: Any
    source: str
    note: str = ""


_RESV = re.compile(r"^\s*0[xX][0-9a-fA-F]{1,16}\s+0[xX][0-9a-fA-F]{1,16}\s+[a-z-]+\s*$")
_DEVICE = re.compile(r"^\s*Device \S+( with pasid \S+)? @\S+\s*$")


def detect(text: Union[str, bytes], *, name: str = "") -> Kind | None:
    """The kind of a file from its content (``name``, the file name, only breaks the tie of an
    empty file). None when nothing matches."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text[:16384]).decode("ascii", "replace")
    head = text[:16384]
    try:
        lines = [ln.strip() for _n, ln in text_lines(head, name or "file")][:40]
    except ParseError:
        lines = [ln.strip() for ln in head.splitlines() if ln.strip()][:40]
    if not lines:
        return Kind.EMPTY
    joined = "\n".join(lines)
    if dmesg.looks_like_dmesg(lines):
        return Kind.DMESG
    if "IOVA_PFN" in joined or any(_DEVICE.match(ln) for ln in lines):
        return Kind.DOMAIN_TRANSLATION
    if "Root Table Address" in joined or any(ln.split()[:2] == ["B.D.F", "Root_entry"] for ln in lines):
        return Kind.DMAR_TRANSLATION
    if "Register Base Address" in joined:
        if "inv_iotlb" in joined or "inv_devtlb" in joined or "<0.1us" in joined:
            return Kind.DMAR_PERF_LATENCY
        return Kind.IOMMU_REGSET
    if "Invalidation queue on IOMMU" in joined:
        return Kind.INVALIDATION_QUEUE
    if "IR table address" in joined or "Interrupt supported on IOMMU" in joined:
        return Kind.IR_TRANSLATION
    if all(ln.startswith("DMA Remapping is not enabled on ") for ln in lines):
        return Kind.DOMAIN_TRANSLATION if "dmar_translation" not in name else Kind.DMAR_TRANSLATION
    if "QWORD[3]" in joined and "DeviceId" in joined:
        return Kind.AMD_DEVTBL
    if "IRT[" in joined or (lines[0].startswith("DeviceId ") and len(lines[0].split()) == 2):
        return Kind.AMD_IRQTBL
    if lines[0].startswith("CMD Buffer Head Offset"):
        return Kind.AMD_CMDBUF
    if lines[0].startswith("Offset:0x"):
        return Kind.AMD_REGISTER
    if groups.listing_kind(head) is not None:
        return Kind.GROUP_LISTING
    if _RESV.match(lines[0]):
        return Kind.RESERVED_REGIONS
    return None


def _empty_kind(name: str) -> str:
    if "domain_translation" in name:
        return "domain"
    if "reserved_regions" in name:
        return "resv"
    return ""


def read(path: Union[str, os.PathLike], *, fmt=None, pgtt=None, contexts=None, msi_type=None) -> Imported:
    """Read any artefact we know, chosen by its content.

    Parameters
    ----------
    path : path
        A file, or a directory holding a copy of ``/sys/kernel/iommu_groups``.
    fmt, pgtt, contexts
        For a ``domain_translation_struct`` dump: the table format or the PASID entry's PGTT,
        or ``dmar_translation_struct`` rows to take it from (see
        :func:`iommu_lab.io.debugfs.parse_domain_translation`).
    msi_type
        For ``reserved_regions``: what ``msi`` lines are ("auto", "software", "hardware").

    Raises
    ------
    NotReadYet
        For a kind we recognise but do not read (a ``ParseError``, so a ``ValueError``).
    ParseError
        For a file of no kind we know, or a malformed one (file and line named).
    """
    p = Path(path)
    source = str(p)
    if p.is_dir():
        return Imported(Kind.GROUPS_TREE, sysfs.read_iommu_groups(p, msi_type=msi_type), source)
    data = read_bounded(p, MAX_FILE)
    text = decode_text(data, source, MAX_FILE)
    kind = detect(text, name=p.name)
    if kind is None:
        first = next(iter(text_lines(text, source)), (1, text[:60]))
        raise ParseError(source, first[0], first[1],
                         "a kind of file iommu-lab knows: sysfs reserved_regions or an iommu_groups listing, an "
                         "Intel or AMD debugfs dump, or dmesg lines with DMAR / AMD-Vi / arm-smmu faults")
    if not kind.readable:
        raise NotReadYet(source, kind)
    if kind is Kind.EMPTY:
        hint = _empty_kind(p.name)
        if hint == "domain":
            return Imported(Kind.DOMAIN_TRANSLATION, debugfs.parse_domain_translation(text, source=source), source,
                            "empty: the device is in pass-through or has no DMA domain")
        if hint == "resv":
            return Imported(Kind.RESERVED_REGIONS, (), source, "empty: the group has no reserved regions")
        return Imported(Kind.EMPTY, None, source, "an empty file: an empty reserved_regions (no regions) and an empty "
                                                  "per-device domain_translation_struct (pass-through) both look like this")
    if kind is Kind.RESERVED_REGIONS:
        return Imported(kind, sysfs.parse_reserved_regions(text, source=source, msi_type=msi_type), source)
    if kind is Kind.GROUP_LISTING:
        return Imported(kind, groups.parse_group_listing(text, source=source), source)
    if kind is Kind.DOMAIN_TRANSLATION:
        d = debugfs.parse_domain_translation(text, source=source, fmt=fmt, pgtt=pgtt, contexts=contexts)
        return Imported(kind, d, source, "" if len(d) else d.describe_empty())
    if kind is Kind.DMAR_TRANSLATION:
        return Imported(kind, dmar.parse_dmar_translation(text, source=source), source)
    if kind is Kind.IOMMU_REGSET:
        return Imported(kind, regset.parse_iommu_regset(text, source=source), source)
    if kind is Kind.AMD_DEVTBL:
        return Imported(kind, amd.parse_devtbl(text, source=source), source)
    if kind is Kind.AMD_REGISTER:
        space = "capability" if "capability" in p.name else ("mmio" if "mmio" in p.name else None)
        return Imported(kind, amd.parse_register_reads(text, source=source, space=space), source)
    return Imported(kind, dmesg.parse_dmesg(text, source=source), source)
