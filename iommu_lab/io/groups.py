"""Importers of IOMMU group *listings*: the text users paste instead of a copied sysfs tree.

Two forms describe groups and their devices, not reserved regions:

* ``find /sys/kernel/iommu_groups/ -type l`` — one device link per line,
  ``/sys/kernel/iommu_groups/<group>/devices/<device>`` (the sysfs-kernel-iommu_groups ABI
  document's layout; the group directory is named ``%d`` by ``iommu_group_alloc``);
* the distribution-wiki script's listing — ``IOMMU Group N:`` followed by indented
  ``lspci -nns`` lines, or ``IOMMU Group N <lspci line>`` / ``IOMMU Group N: <lspci line>``
  one per device.

Each becomes the same :class:`~iommu_lab.io.sysfs.IommuGroup` a copied tree gives, with no
reserved regions (a listing does not show them) and devices named as sysfs names them
(``0000:bb:dd.f``; a listing without a segment gets segment 0000, as ``lspci`` omits it).
"""

from __future__ import annotations

import os
import re
from typing import Union

from iommu_lab.io.parse import ParseError, decode_text, read_bounded, text_lines
from iommu_lab.io.sysfs import IommuGroup

__all__ = ["parse_group_listing", "read_group_listing", "listing_kind"]

MAX_FILE = 1 << 20
_FIND = re.compile(r"^(?:\S*/)?iommu_groups/([0-9]{1,9})/devices/([0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]|[^/\s]+)/?$")
_WIKI = re.compile(r"^IOMMU [Gg]roup ([0-9]{1,9})(?::|\s)\s*(.*)$")
_LSPCI = re.compile(r"^((?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])(?:\s+(.*))?$")


def listing_kind(text: str) -> str | None:
    """``"find"``, ``"wiki"`` or None, from the first non-blank line that is not a prompt."""
    try:
        lines = text_lines(text[:4096], "listing")[:3]
    except ParseError:
        return None
    for _n, line in lines:
        s = line.strip()
        if _FIND.match(s):
            return "find"
        if _WIKI.match(s):
            return "wiki"
    return None


def _device(bdf: str) -> str:
    return (bdf if bdf.count(":") == 2 else "0000:" + bdf).lower()


def parse_group_listing(text: Union[str, bytes], *, source: str = "iommu_groups listing") -> tuple[IommuGroup, ...]:
    """Read a ``find`` or wiki listing of IOMMU groups, in group-number order.

    Raises
    ------
    ParseError
        On a line of neither form (naming it), a device listed in two groups, or a group
        written two ways (``3`` and ``03``).
    """
    text = decode_text(text, source, MAX_FILE)
    groups: dict[int, list[str]] = {}
    info: dict[int, list[str]] = {}
    spelled: dict[int, str] = {}
    owner: dict[str, tuple[int, int]] = {}
    current = None
    kind = None
    for number, line in text_lines(text, source):
        s = line.strip()
        m = _FIND.match(s)
        if m and kind in (None, "find"):
            kind = "find"
            gtxt, dev, desc = m.group(1), m.group(2), ""
        else:
            w = _WIKI.match(s)
            if w and kind in (None, "wiki"):
                kind = "wiki"
                gtxt, rest = w.group(1), w.group(2)
                current = gtxt
                groups.setdefault(int(gtxt), [])
                info.setdefault(int(gtxt), [])
                if spelled.setdefault(int(gtxt), gtxt) != gtxt:
                    raise ParseError(source, number, line, f"one spelling per group: '{spelled[int(gtxt)]}' and "
                                                           f"'{gtxt}' are both group {int(gtxt)}")
                if not rest:
                    continue
                d = _LSPCI.match(rest)
                if d is None:
                    raise ParseError(source, number, line, "'IOMMU Group N: bb:dd.f <lspci -nns text>'")
                dev, desc = d.group(1), d.group(2) or ""
            elif kind == "wiki" and current is not None and line[:1] in (" ", "\t"):
                d = _LSPCI.match(s)
                if d is None:
                    raise ParseError(source, number, line, "an indented 'bb:dd.f <lspci -nns text>' device line")
                gtxt, dev, desc = current, d.group(1), d.group(2) or ""
            else:
                form = {"find": "'/sys/kernel/iommu_groups/N/devices/DEVICE' (find -type l)",
                        "wiki": "'IOMMU Group N:' or an indented lspci line",
                        None: "a group listing line: '/sys/kernel/iommu_groups/N/devices/DEVICE' or 'IOMMU Group N: ...'"}[kind]
                raise ParseError(source, number, line, form)
        g = int(gtxt)
        if spelled.setdefault(g, gtxt) != gtxt:
            raise ParseError(source, number, line, f"one spelling per group: '{spelled[g]}' and '{gtxt}' are both group {g}")
        name = _device(dev) if _LSPCI.match(dev) else dev
        if name in owner and owner[name][0] != g:
            raise ParseError(source, number, line, f"each device in one group ({name} is in group {owner[name][0]} "
                                                   f"at line {owner[name][1]})")
        owner.setdefault(name, (g, number))
        if name not in groups.setdefault(g, []):
            groups[g].append(name)
            info.setdefault(g, []).append(desc.strip())
    if kind is None:
        raise ParseError(source, 1, text[:40], "a group listing ('find /sys/kernel/iommu_groups/ -type l' or "
                                               "'IOMMU Group N: ...' lines)")
    return tuple(IommuGroup(g, tuple(groups[g]), (), None, tuple(info[g])) for g in sorted(groups))


def read_group_listing(path: Union[str, os.PathLike]) -> tuple[IommuGroup, ...]:
    """Read a group listing file (bounded); errors name the file and line."""
    return parse_group_listing(read_bounded(path, MAX_FILE), source=str(path))
