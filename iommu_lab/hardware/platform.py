"""IOMMU platforms: what a given IOMMU offers a device, loaded from ``data/platforms/*.toml``.

A platform is the hardware half of an attach: the input address width, the permitted windows
(one aperture on most IOMMUs, two separate TCE windows on POWER), the reserved regions the Linux
driver reports (typed as ``enum iommu_resv_type``), the page-size bitmap, the page-table format
each stage uses, and whether stage-1-over-stage-2 nesting is done by hardware, by software
(shadowing) or not at all. It answers what the 2021 ``/dev/ioasid`` proposal's ``GET_INFO``
asked for (:meth:`Platform.info`) and what ``IOMMU_IOAS_IOVA_RANGES`` would report after
attaching one of its devices (:meth:`Platform.iova_ranges`).

Data files are TOML read with the standard library's ``tomllib``; nothing in a data file is ever
executed. ``data/platforms/README.md`` describes the schema and cites every fact.

Errors
------
Every error raised here is an :class:`~iommu_lab.core.errors.IommuError`:

* ``EINVAL`` for a malformed platform file (the message names the file, the key, the value and
  what is allowed) and for an unknown stage name;
* ``ENOENT`` for an unknown platform name (the message lists the known ones) or a missing file;
* ``EOPNOTSUPP`` for a stage the platform has no page-table format for.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError
from iommu_lab.core.files import FileInputError, load_toml
from iommu_lab.core.ranges import (
    IovaRange,
    RangeSet,
    check_u64,
    fmt_addr,
    fmt_size,
    parse_address,
    parse_size,
)
from iommu_lab.hardware import formats as _formats
from iommu_lab.hardware.device import Device, ReservedRegion, ResvType, pgsizes_list
from iommu_lab.hardware.families import (
    _MAX_PASID_BITS,
    FAMILY_FORMAT_FAMILIES,
    HARDWARE_NESTING,
    NEST_PARENT_RULES,
    STAGES,
    IommuFamily,
    NestingSupport,
    Stage1Binding,
    families_using_format_family,
)

__all__ = [
    "IommuFamily",
    "NestingSupport",
    "Stage1Binding",
    "Platform",
    "PlatformInfo",
    "PlatformCatalogue",
    "platforms",
    "STAGES",
    "FAMILY_FORMAT_FAMILIES",
    "HARDWARE_NESTING",
    "NEST_PARENT_RULES",
    "families_using_format_family",
    "nesting_pairs",
]

@dataclass(frozen=True)
class PlatformInfo:
    """What the ``/dev/ioasid`` RFC's ``IOASID_GET_INFO`` asked for, for one platform.

    Capabilities ("VFIO type1 map/unmap; pgtable/pasid_table binding; hardware nesting vs.
    software nesting") and attributes ("supported page sizes, reserved IOVA ranges ...; vendor
    pgtable formats"), with Gibson's request applied: ranges are given as *permitted* ranges
    (what ``IOMMU_IOAS_IOVA_RANGES`` answers), not as reserved ones.

    Attributes
    ----------
    platform : str
        Catalogue name.
    map_unmap : bool
        The DMA-mapping protocol (type1 map/unmap, iommufd ``IOMMU_IOAS_MAP``); every platform.
    pgtable_binding : bool
        A guest may bind one stage-1 page table per (device, PASID).
    pasid_table_binding : bool
        A guest may bind its whole PASID / context-descriptor / GCR3 table.
    nesting : NestingSupport
    pgsizes : list of int
        Supported page sizes, smallest first.
    permitted : RangeSet
        Usable IOVAs: the windows minus every reserved region that becomes an iommufd hole.
    windows : tuple of IovaRange
        The permitted windows themselves, unmerged.
    alignment : int
        Smallest page size (iommufd ``out_iova_alignment`` after attach).
    formats : mapping of str to str
        Vendor page-table formats per stage.
    pasid_bits : int
        PASID width; 0 means no PASID support.
    dirty_tracking : bool
        The IOMMU can report ``IOMMU_HW_CAP_DIRTY_TRACKING``.
    """

    platform: str
    map_unmap: bool
    pgtable_binding: bool
    pasid_table_binding: bool
    nesting: NestingSupport
    pgsizes: list[int]
    permitted: RangeSet
    windows: tuple[IovaRange, ...]
    alignment: int
    formats: Mapping[str, str]
    pasid_bits: int
    dirty_tracking: bool

    @property
    def capabilities(self) -> tuple[str, ...]:
        """The RFC's capability list as words: ``("map/unmap", "pgtable binding", "nesting: hardware")``."""
        caps = []
        if self.map_unmap:
            caps.append("map/unmap")
        if self.pgtable_binding:
            caps.append("pgtable binding")
        if self.pasid_table_binding:
            caps.append("pasid-table binding")
        caps.append(f"nesting: {self.nesting.value}")
        return tuple(caps)

    def __str__(self) -> str:
        return "\n".join(
            [
                f"GET_INFO {self.platform}",
                f"  capabilities : {', '.join(self.capabilities)}",
                f"  page sizes   : {', '.join(fmt_size(s) for s in self.pgsizes)}",
                f"  alignment    : {fmt_size(self.alignment)}",
                f"  permitted    : {', '.join(str(r) for r in self.permitted)}",
                f"  formats      : {_fmt_formats(self.formats)}",
                f"  PASID bits   : {self.pasid_bits}",
                f"  dirty track. : {'yes' if self.dirty_tracking else 'no'}",
            ]
        )


def _fmt_formats(formats: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in formats.items()) or "none"


@dataclass(frozen=True, eq=True)
class Platform:
    """One IOMMU platform: address width, windows, reserved regions, page sizes, formats, nesting.

    Mirrors what a Linux IOMMU driver tells iommufd about a device's domain (aperture
    ``domain->geometry``, ``pgsize_bitmap``, ``iommu_get_resv_regions``) plus the nesting, PASID
    and dirty-tracking capabilities ``IOMMU_GET_HW_INFO`` reports. Build one with
    ``platforms.get(name)`` or ``platforms.load(path)``.
    """

    name: str
    title: str
    family: IommuFamily
    ias: int
    windows: tuple[IovaRange, ...]
    reserved: tuple[ReservedRegion, ...]
    pgsizes: int
    formats: Mapping[str, str]
    nesting: NestingSupport
    stage1_binding: Stage1Binding | None
    pasid_bits: int
    dirty_tracking: bool
    notes: str = ""
    source: Path | None = field(default=None, compare=False)
    #: What to do instead of hardware nesting on this platform, as its Linux driver offers it
    #: (``nesting_hint`` in the platform file; empty on hardware-nesting platforms).
    nesting_hint: str = ""
    #: One page size per window, in ``windows`` order, where each window is its own table with
    #: one page size (POWER TCE: ``it_page_shift`` per ``iommu_table``); empty elsewhere.
    window_pgsizes: tuple[int, ...] = ()

    def __hash__(self) -> int:
        return hash((self.name, self.windows, self.reserved, self.pgsizes, tuple(self.formats.items())))

    # -- derived views ----------------------------------------------------------------
    @property
    def permitted(self) -> RangeSet:
        """The windows as one canonical set (touching windows merge here, unlike ``windows``)."""
        return RangeSet(self.windows)

    @property
    def alignment(self) -> int:
        """Smallest page size, ``1 << __ffs(pgsize_bitmap)``."""
        return self.pgsizes & -self.pgsizes

    @property
    def pgsize_list(self) -> list[int]:
        """The page sizes in the bitmap, smallest first."""
        return pgsizes_list(self.pgsizes)

    def iova_ranges(self) -> RangeSet:
        """What ``IOMMU_IOAS_IOVA_RANGES`` answers on a fresh IOAS after attaching ``device()``.

        Mirrors iommufd: the aperture complement becomes reserved (``iopt_table_add_domain``),
        and so does every device reserved region except ``direct-relaxable``
        (``iopt_table_enforce_dev_resv_regions``); the answer is the gaps
        (``iommufd_ioas_iova_ranges``).
        """
        holes = RangeSet(r.range for r in self.reserved if r.type.becomes_hole)
        return self.permitted - holes

    def device(self, name: str = "dev0") -> Device:
        """A device behind this IOMMU: its aperture, page sizes, reserved regions and paging format."""
        return Device(
            name,
            aperture=self.windows,
            pgsizes=self.pgsizes,
            reserved=self.reserved,
            format=self.formats.get("paging"),
            platform=self.name,
        )

    def info(self) -> PlatformInfo:
        """The ``GET_INFO`` answer the ``/dev/ioasid`` proposal asked for (see :class:`PlatformInfo`)."""
        hw = self.nesting is NestingSupport.HARDWARE
        return PlatformInfo(
            platform=self.name,
            map_unmap=True,
            pgtable_binding=hw and self.stage1_binding is Stage1Binding.PGTABLE,
            pasid_table_binding=hw and self.stage1_binding is Stage1Binding.PASID_TABLE,
            nesting=self.nesting,
            pgsizes=self.pgsize_list,
            permitted=self.iova_ranges(),
            windows=self.windows,
            alignment=self.alignment,
            formats=self.formats,
            pasid_bits=self.pasid_bits,
            dirty_tracking=self.dirty_tracking,
        )

    def window_of(self, iova: int) -> IovaRange:
        """The window holding ``iova`` (``EINVAL`` naming the windows when none does)."""
        check_u64(iova, "iova")
        for w in self.windows:
            if iova in w:
                return w
        raise IommuError(
            "EINVAL",
            f"IOVA {fmt_addr(iova)} is in no window of {self.name!r}; windows: "
            + ", ".join(str(w) for w in self.windows),
        )

    def window_page_size(self, window: int | IovaRange) -> int:
        """The page size mapping in ``window`` (a window or an IOVA in one) uses.

        On POWER each window is its own TCE table with one page size: the default 32-bit window
        has 4 KiB TCEs (``iommu_table_setparms_lpar`` sets ``IOMMU_PAGE_SHIFT_4K``) and a DDW the
        largest size the hypervisor offers (``enable_ddw`` → ``iommu_get_page_shift``: 64 KiB
        on QEMU sPAPR), as the platform file records per window. Platforms with one radix
        table over every window answer their smallest page size.
        """
        w = window if isinstance(window, IovaRange) else self.window_of(window)
        if w not in self.windows:  # an IovaRange that is not one of ours
            raise IommuError("EINVAL", f"{w} is not a window of {self.name!r}")
        if self.window_pgsizes:
            return self.window_pgsizes[self.windows.index(w)]
        return self.pgsizes & -self.pgsizes

    def window_format(self, window: int | IovaRange, page_size: int | None = None) -> Any:
        """The page-table format of one window (a window or an IOVA in one).

        For a platform whose windows are separate linear tables (POWER TCE) this is that window's
        own TCE table: its base, its size and its page size (``window_page_size`` unless
        ``page_size`` is given, which must be one of the platform's sizes), as ``iommu_table``
        holds ``it_offset``, ``it_size`` and ``it_page_shift``. Elsewhere it is the paging format.
        """
        w = window if isinstance(window, IovaRange) else self.window_of(window)
        page = self.window_page_size(w) if page_size is None else page_size
        if isinstance(page, bool) or not isinstance(page, int):
            raise TypeError(f"page_size must be an int number of bytes, got {type(page).__name__}")
        if page & (page - 1) or not page & self.pgsizes:
            raise IommuError("EINVAL", f"page size {page!r} is not one of {self.name!r}'s page sizes "
                             f"{', '.join(fmt_size(1 << b) for b in range(64) if self.pgsizes >> b & 1)}")
        fmt = _formats.get(self.format_name("paging"))
        if not fmt.linear:
            return fmt
        bits = w.size.bit_length() - 1
        if w.size != 1 << bits:
            raise IommuError("EINVAL", f"window {w} is not a power-of-two size, which a TCE table needs")
        return _formats.power_tce(page.bit_length() - 1, window_bits=bits, base=w.start,
                                  name=f"power-tce-{page // 1024}k@{fmt_addr(w.start)}")

    def format_name(self, stage: str = "paging") -> str:
        """The page-table format name this platform uses for ``stage`` (``paging``, ``stage1``, ``stage2``)."""
        if stage not in STAGES:
            raise IommuError(
                "EINVAL",
                f"unknown stage {stage!r}; stages are "
                + "; ".join(f"{k!r} = {v}" for k, v in STAGES.items()),
            )
        try:
            return self.formats[stage]
        except KeyError:
            have = ", ".join(repr(s) for s in self.formats) or "none"
            why = {
                NestingSupport.NONE: "it has no nesting",
                NestingSupport.SOFTWARE: "it nests only in software (map/unmap, shadowed by the VMM)",
                NestingSupport.HARDWARE: "the platform file gives none",
            }[self.nesting]
            if not self.formats:
                why = "its guests issue map/unmap requests and never write a page table the hardware walks"
            raise IommuError(
                "EOPNOTSUPP",
                f"platform {self.name!r} has no page-table format for stage {stage!r}: {why}; "
                f"its stages with a format: {have}",
            ) from None

    def format(self, stage: str = "paging") -> Any:
        """The format descriptor, ``iommu_lab.hardware.formats.get(self.format_name(stage))``.

        """
        return _formats.get(self.format_name(stage))

    # -- presentation -----------------------------------------------------------------
    def _rows(self) -> list[tuple[str, int, int, int, str]]:
        rows = [("window", w.start, w.last, w.size, "") for w in self.windows]
        rows += [("reserved", r.start, r.last, r.size, r.type.value) for r in self.reserved]
        return rows

    def to_dataframe(self):
        """One row per window and per reserved region: kind, start, last, size, type.

        Addresses are pandas ``UInt64``; ``size`` is too, except for a window covering the whole
        64-bit space (2^64 bytes does not fit), where it is an ``object`` column of Python ints.
        """
        from iommu_lab.core.frames import addr_frame

        rows = self._rows()
        return addr_frame(
            {
                "kind": [r[0] for r in rows],
                "start": [r[1] for r in rows],
                "last": [r[2] for r in rows],
                "size": [r[3] for r in rows],
                "type": [r[4] or None for r in rows],
            },
            hex_columns=["start", "last", "size"],
        )

    def _summary(self) -> str:
        return (
            f"{self.family.value}, {self.ias}-bit input; pgsizes {fmt_addr(self.pgsizes)} "
            f"({'|'.join(fmt_size(s).replace(' ', '') for s in self.pgsize_list[:6])}"
            f"{'|…' if len(self.pgsize_list) > 6 else ''}); formats {_fmt_formats(self.formats)}; "
            f"nesting {self.nesting.value}; PASID {self.pasid_bits} bits; "
            f"dirty tracking {'yes' if self.dirty_tracking else 'no'}"
        )

    def __repr__(self) -> str:
        windows = ", ".join(str(w) for w in self.windows)
        reserved = ", ".join(str(r) for r in self.reserved) or "none"
        return f"Platform({self.name!r}: {self._summary()}; windows {windows}; reserved {reserved})"

    plot = display.plot

    _repr_html_ = display.html


# -- loading and validation --------------------------------------------------------------------

_TOP_REQUIRED = ("name", "title", "family", "ias", "windows", "pgsizes", "nesting", "pasid_bits", "dirty_tracking", "notes")
_TOP_OPTIONAL = ("reserved", "formats", "stage1_binding", "nesting_hint")
_RANGE_KEYS = ("start", "last", "size")
_RESERVED_KEYS = _RANGE_KEYS + ("type",)


class _Reader:
    """Validates one parsed TOML document, naming the file and key in every error."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, message: str) -> IommuError:
        return IommuError("EINVAL", f"{self.where}: key {key!r}: {message}")

    def keys(self, table: Mapping[str, Any], key: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
        allowed = required + optional
        for k in table:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                raise self.fail(where, f"unknown key; allowed keys here are {', '.join(allowed)}")
        for k in required:
            if k not in table:
                where = f"{key}.{k}" if key else k
                raise self.fail(where, f"missing; required keys here are {', '.join(required)}")

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def int_in(self, value: Any, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(key, f"must be an integer in {lo}..{hi}, got {value!r}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def address(self, value: Any, key: str) -> int:
        if not isinstance(value, str):
            raise self.fail(
                key,
                f"must be a quoted hex string such as \"0xfee00000\" (TOML integers cannot hold "
                f"addresses >= 2^63), got {value!r}",
            )
        try:
            return parse_address(value, key)
        except (TypeError, ValueError) as exc:
            raise self.fail(key, f"{value!r} is not an address: {exc}") from None

    def size(self, value: Any, key: str) -> int:
        if not isinstance(value, str):
            raise self.fail(key, f"must be a quoted size such as \"4K\", \"1G\", \"2^45\" or \"0x1000\", got {value!r}")
        try:
            size = parse_size(value)
        except (TypeError, ValueError) as exc:
            raise self.fail(key, f"{value!r} is not a size: {exc}") from None
        if size == 0:
            raise self.fail(key, "a size must be at least 1 byte")
        return size

    def range(self, table: Any, key: str, extra: tuple[str, ...] = ()) -> IovaRange:
        if not isinstance(table, dict):
            raise self.fail(key, f"must be a table with start and last (or size), got {table!r}")
        self.keys(table, key, ("start",), ("last", "size") + extra)
        if ("last" in table) == ("size" in table):
            raise self.fail(key, "give exactly one of 'last' (inclusive) or 'size'")
        start = self.address(table["start"], f"{key}.start")
        if "last" in table:
            last = self.address(table["last"], f"{key}.last")
            if last < start:
                raise self.fail(
                    f"{key}.last",
                    f"{fmt_addr(last)} is below start {fmt_addr(start)}; a range is [start, last] "
                    f"with last inclusive and >= start",
                )
            return IovaRange(start, last)
        size = self.size(table["size"], f"{key}.size")
        try:
            return IovaRange.from_size(start, size)
        except ValueError as exc:
            raise self.fail(f"{key}.size", str(exc)) from None

    def pgsizes(self, value: Any, key: str) -> int:
        if isinstance(value, str):
            if not value.strip().lower().startswith("0x"):
                raise self.fail(
                    key,
                    f"a string here is the bitmap in hex (e.g. \"0x40201000\"), got {value!r}; "
                    f"for a list of sizes write [\"4K\", \"2M\", \"1G\"]",
                )
            bitmap = self.address(value, key)
        elif isinstance(value, list) and value:
            bitmap = 0
            for i, item in enumerate(value):
                size = self.size(item, f"{key}[{i}]")
                if size & (size - 1) or size >= 1 << 64:
                    raise self.fail(f"{key}[{i}]", f"page size {item!r} = {fmt_addr(size)} is not a power of two below 2^64")
                bitmap |= size
        else:
            raise self.fail(key, f"must be a hex bitmap string (\"0x40201000\") or a non-empty list of sizes ([\"4K\", \"2M\"]), got {value!r}")
        if bitmap == 0:
            raise self.fail(key, "the bitmap 0x0 has no page size")
        return bitmap


def _parse_platform(doc: Mapping[str, Any], where: str, source: Path | None) -> Platform:
    rd = _Reader(where)
    rd.keys(doc, "", _TOP_REQUIRED, _TOP_OPTIONAL)

    name = rd.text(doc["name"], "name")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise rd.fail("name", f"{name!r} must be lower-case letters, digits, '.', '_' or '-'")
    title = rd.text(doc["title"], "title")
    notes = rd.text(doc["notes"], "notes")
    try:
        family = IommuFamily.parse(doc["family"])
    except ValueError as exc:
        raise rd.fail("family", str(exc)) from None
    ias = rd.int_in(doc["ias"], "ias", 1, 64)
    pgsizes = rd.pgsizes(doc["pgsizes"], "pgsizes")
    align = pgsizes & -pgsizes

    raw_windows = doc["windows"]
    if not isinstance(raw_windows, list) or not raw_windows:
        raise rd.fail("windows", "must be a non-empty array of tables, e.g. [{ start = \"0x0\", last = \"0xffffffffffff\" }]")
    top = (1 << ias) - 1
    windows: list[IovaRange] = []
    window_page: dict[IovaRange, int] = {}
    for i, raw in enumerate(raw_windows):
        key = f"windows[{i}]"
        w = rd.range(raw, key, extra=("page_size",))
        if w.last > top:
            raise rd.fail(key, f"window {w} ends above the {ias}-bit input space [0x0, {fmt_addr(top)}]")
        if w.start % align or (w.last + 1) % align:
            raise rd.fail(key, f"window {w} is not aligned to the smallest page size {fmt_size(align)}")
        if "page_size" in raw:
            page = rd.size(raw["page_size"], f"{key}.page_size")
            if page & (page - 1) or not page & pgsizes:
                raise rd.fail(f"{key}.page_size", f"{fmt_size(page)} is not one of the platform's page sizes "
                              f"{', '.join(fmt_size(1 << b) for b in range(64) if pgsizes >> b & 1)}")
            if w.start % page or (w.last + 1) % page:
                raise rd.fail(f"{key}.page_size", f"window {w} is not a whole number of {fmt_size(page)} pages")
            window_page[w] = page
        windows.append(w)
    windows.sort()
    if window_page and len(window_page) != len(windows):
        raise rd.fail("windows", "give page_size for every window or for none: each window is one table "
                      "with one page size")
    for a, b in zip(windows, windows[1:]):
        if a.overlaps(b):
            raise rd.fail("windows", f"windows {a} and {b} overlap; windows are separate objects and must be disjoint")

    raw_reserved = doc.get("reserved", [])
    if not isinstance(raw_reserved, list):
        raise rd.fail("reserved", "must be an array of tables with start, last (or size) and type")
    reserved: list[ReservedRegion] = []
    for i, raw in enumerate(raw_reserved):
        key = f"reserved[{i}]"
        rng = rd.range(raw, key, extra=("type",))
        if "type" not in raw:
            raise rd.fail(f"{key}.type", "missing; Linux types are " + ", ".join(repr(t.value) for t in ResvType))
        rtype = raw["type"]
        if not isinstance(rtype, str) or rtype not in {t.value for t in ResvType}:
            raise rd.fail(f"{key}.type", f"unknown reserved-region type {rtype!r}; Linux types are " + ", ".join(repr(t.value) for t in ResvType))
        reserved.append(ReservedRegion(rng.start, rng.last, ResvType(rtype)))
    reserved.sort(key=lambda r: (r.start, r.last, r.type.value))

    raw_formats = doc.get("formats", {})
    if not isinstance(raw_formats, dict):
        raise rd.fail("formats", "must be a table such as { paging = \"vtd-ss-4level\" }")
    rd.keys(raw_formats, "formats", (), tuple(STAGES))
    formats: dict[str, str] = {}
    for stage in STAGES:
        if stage not in raw_formats:
            continue
        key = f"formats.{stage}"
        fmt = rd.text(raw_formats[stage], key)
        try:
            descriptor = _formats.get(fmt)
        except IommuError as exc:
            raise rd.fail(key, exc.message) from None
        allowed_families = FAMILY_FORMAT_FAMILIES[family]
        if descriptor.family not in allowed_families:
            allowed = ", ".join(f"{c} formats" for c in allowed_families) or "none (it has no page table)"
            raise rd.fail(
                key,
                f"format {fmt!r} is a {descriptor.family} format and does not belong to family "
                f"{family.value!r}; allowed: {allowed}",
            )
        formats[stage] = fmt

    try:
        nesting = NestingSupport.parse(doc["nesting"])
    except ValueError as exc:
        raise rd.fail("nesting", str(exc)) from None
    binding: Stage1Binding | None = None
    if nesting is NestingSupport.HARDWARE:
        for stage in ("stage1", "stage2"):
            if stage not in formats:
                raise rd.fail(f"formats.{stage}", "missing; hardware nesting needs both a stage1 and a stage2 format")
        if "stage1_binding" not in doc:
            raise rd.fail("stage1_binding", "missing; hardware nesting needs 'pgtable' or 'pasid-table'")
        raw_binding = doc["stage1_binding"]
        try:
            binding = Stage1Binding(raw_binding)
        except ValueError:
            raise rd.fail("stage1_binding", f"unknown binding {raw_binding!r}; allowed: 'pgtable', 'pasid-table'") from None
    else:
        if "stage1_binding" in doc:
            raise rd.fail("stage1_binding", f"only allowed with nesting = \"hardware\", not {nesting.value!r}")
        if nesting is NestingSupport.NONE:
            for stage in ("stage1", "stage2"):
                if stage in formats:
                    raise rd.fail(f"formats.{stage}", "a platform with nesting = \"none\" has no stage1/stage2 format")

    hint = ""
    if "nesting_hint" in doc:
        if nesting is NestingSupport.HARDWARE:
            raise rd.fail("nesting_hint", "only allowed with nesting = \"none\" or \"software\": it says what "
                          "to do instead of hardware nesting")
        hint = rd.text(doc["nesting_hint"], "nesting_hint")

    pasid_bits = rd.int_in(doc["pasid_bits"], "pasid_bits", 0, _MAX_PASID_BITS)
    dirty = rd.boolean(doc["dirty_tracking"], "dirty_tracking")

    return Platform(
        name=name,
        title=title,
        family=family,
        ias=ias,
        windows=tuple(windows),
        reserved=tuple(reserved),
        pgsizes=pgsizes,
        formats=MappingProxyType(formats),
        nesting=nesting,
        stage1_binding=binding,
        pasid_bits=pasid_bits,
        dirty_tracking=dirty,
        notes=notes,
        source=source,
        nesting_hint=hint,
        window_pgsizes=tuple(window_page.get(w, 0) for w in windows) if window_page else (),
    )


def load_platform(path: str | Path) -> Platform:
    """Read and validate one platform TOML file (never executes anything in it)."""
    path = Path(path)
    if not os.path.lexists(path):
        raise IommuError("ENOENT", f"no platform file {path}")
    # A bounded reader: a regular file of at most 4 MiB, nesting checked before tomllib runs,
    # so a FIFO, /dev/zero or a 5,000-deep document is refused, not read.
    try:
        doc = load_toml(path, what="platform file")
    except FileInputError as exc:
        raise IommuError("EINVAL", str(exc)) from None
    return _parse_platform(doc, str(path), path)


class PlatformCatalogue:
    """The platforms shipped in ``data/platforms/``, loaded on first use.

    ``platforms.names()``, ``platforms.get(name)``, ``platforms.all()``,
    ``platforms.to_dataframe()``; ``platforms.load(path)`` reads a user's own file.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._cache: dict[str, Platform] | None = None

    @property
    def directory(self) -> Path:
        if self._directory is None:
            from iommu_lab.core.paths import data_dir

            return data_dir() / "platforms"
        return self._directory

    def _load_all(self) -> dict[str, Platform]:
        if self._cache is None:
            found: dict[str, Platform] = {}
            for path in sorted(self.directory.glob("*.toml")):
                p = load_platform(path)
                if p.name != path.stem:
                    raise IommuError("EINVAL", f"{path}: key 'name': {p.name!r} must match the file name {path.stem!r}")
                found[p.name] = p
            self._cache = found
        return self._cache

    def names(self) -> list[str]:
        """Catalogue platform names, sorted."""
        return sorted(self._load_all())

    def get(self, name: str) -> Platform:
        """The platform called ``name``; ``ENOENT`` listing the known names otherwise."""
        table = self._load_all()
        if name not in table:
            raise IommuError("ENOENT", f"no platform {name!r}; known platforms: {', '.join(sorted(table))}")
        return table[name]

    def all(self) -> list[Platform]:
        """Every catalogue platform, sorted by name."""
        table = self._load_all()
        return [table[n] for n in sorted(table)]

    def load(self, path: str | Path) -> Platform:
        """A platform from a user's own TOML file (not added to the catalogue)."""
        return load_platform(path)

    def reload(self) -> None:
        """Forget the loaded files, so the next call re-reads the directory."""
        self._cache = None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._load_all()

    def __iter__(self) -> Iterator[Platform]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self._load_all())

    def to_dataframe(self):
        """One row per platform; ``pgsizes`` and the window/reserved counts are ``UInt64``."""
        from iommu_lab.core.frames import addr_frame

        ps = self.all()
        return addr_frame(
            {
                "name": [p.name for p in ps],
                "title": [p.title for p in ps],
                "family": [p.family.value for p in ps],
                "ias": [p.ias for p in ps],
                "windows": [len(p.windows) for p in ps],
                "reserved": [len(p.reserved) for p in ps],
                "pgsizes": [p.pgsizes for p in ps],
                "min_pgsize": [p.alignment for p in ps],
                "paging": [p.formats.get("paging") for p in ps],
                "stage2": [p.formats.get("stage2") for p in ps],
                "stage1": [p.formats.get("stage1") for p in ps],
                "nesting": [p.nesting.value for p in ps],
                "pasid_bits": [p.pasid_bits for p in ps],
                "dirty_tracking": [p.dirty_tracking for p in ps],
            },
            hex_columns=["pgsizes", "min_pgsize"],
        )

    def __repr__(self) -> str:
        return f"PlatformCatalogue({', '.join(self.names())})"

    _repr_html_ = display.html


#: The shipped catalogue.
platforms = PlatformCatalogue()


def nesting_pairs() -> dict[tuple[str, str], IommuFamily]:
    """Which stage-1 format family nests over which stage-2 format family, and on which IOMMU.

    Read from the catalogue: every platform with hardware nesting declares its ``stage1`` and
    ``stage2`` formats, and the descriptors say which format family each is.
    """
    pairs: dict[tuple[str, str], IommuFamily] = {}
    for p in platforms.all():
        if p.nesting is NestingSupport.HARDWARE:
            pairs.setdefault((p.format("stage1").family, p.format("stage2").family), p.family)
    return pairs
