"""Translation caches of an IOMMU: the IOTLB and the paging-structure (walk) caches.

An IOMMU keeps three kinds of translation state on chip:

* the **IOTLB** (VT-d "IOTLB", SMMU TBU TLB, AMD "IOTLB"): final input-address -> output-address
  entries, tagged by domain (VT-d DID, SMMU VMID/ASID, AMD DomainID) and PASID. An entry maps
  one page of the size the walk found; for hardware nesting the combined entry is no larger than
  the smaller of the stage-1 and stage-2 pages that cover the address, since one entry can only
  describe a range that is contiguous in both stages (:func:`nested_entry_lg2`; the research
  notes' section 2.3, "What the caches hold");
* **paging-structure caches** (VT-d "paging-structure caches": PML5E, PML4E, PDPE and PDE caches;
  the SMMU TCU "walk cache"; the AMD IOMMU's cached page-directory entries, which its
  INVALIDATE_IOMMU_PAGES command drops when the PDE bit is set, Linux
  ``CMD_INV_IOMMU_PAGES_PDE_MASK``): non-leaf entries, each a pointer to the next-lower table,
  so a walk can start part-way down;
* for nesting, **stage-2 entries** (GPA -> HPA) used for the stage-1 table pointers and the final
  GPA.

:class:`Cache` is the storage all of them share: a set-associative cache of hashable keys with
LRU, FIFO or random replacement. :class:`Iotlb` and :class:`PagingStructureCache` give it the
keys and invalidation rules of the real structures. :class:`Caches` is the configuration of one
whole hierarchy, with per-family defaults from ``data/caches/defaults.toml`` (figures cited in
``data/caches/README.md``).

How a walk-cache hit shortens a walk, and the level numbering the caches use, is in
:mod:`iommu_lab.dma.psc`.
"""


from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from iommu_lab.core import display
from iommu_lab.core.errors import IommuError
from iommu_lab.dma.cache import (
    Cache,
    CacheConfig,
    CacheStats,
    Replacement,
    as_config,
    check_level,
)
from iommu_lab.dma.iotlb import Iotlb, nested_entry_lg2
from iommu_lab.dma.psc import PagingStructureCache, walk_references
from iommu_lab.hardware.platform import (
    IommuFamily,
    Platform,
    families_using_format_family,
    platforms,
)

__all__ = [
    "Replacement",
    "CacheConfig",
    "Cache",
    "CacheStats",
    "Iotlb",
    "PagingStructureCache",
    "Caches",
    "walk_references",
    "nested_entry_lg2",
    "CacheDefaults",
    "load_defaults",
]

# -- the configuration of a whole hierarchy ------------------------------------------------------


class _Levels(Mapping):
    """An immutable, hashable ``{level: CacheConfig}`` mapping (levels are ints >= 1)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[int, CacheConfig]) -> None:
        self._items = dict(sorted(items.items()))

    def __getitem__(self, level: int) -> CacheConfig:
        return self._items[level]

    def __iter__(self) -> Iterator[int]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in self._items.items()) + "}"



def _as_levels(value: Any, where: str) -> _Levels:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: {value!r} must be a mapping {{level: CacheConfig or entries}}, e.g. {{1: 32, 2: 16}}")
    items = {}
    for level, cfg in value.items():
        check_level(level, where)
        items[level] = as_config(cfg, f"{where}[{level}]")
    return _Levels(items)


@dataclass(frozen=True)
class Caches:
    """The cache hierarchy one replay uses.

    Parameters
    ----------
    iotlb : CacheConfig
        Final-translation entries (:class:`Iotlb`).
    psc : Mapping[int, CacheConfig] (default: {})
        Paging-structure caches of stage 1 (or of the only stage), by level.
    stage2_tlb : CacheConfig (default: CacheConfig(0))
        Nested only: GPA -> HPA leaf entries (the SMMU's stage-2 entries, VT-d second-stage
        translations) used for stage-1 table pointers and the final GPA.
    stage2_psc : Mapping[int, CacheConfig] (default: {})
        Nested only: stage-2 paging-structure caches by level.
    name : str (default: "")
    source : str (default: "")
        Where the figures come from.

    Plain ints stand for ``CacheConfig(entries)`` and mappings of levels are frozen, so a
    ``Caches`` is immutable and hashable.
    """

    iotlb: CacheConfig
    psc: Mapping[int, CacheConfig] = field(default_factory=dict)
    stage2_tlb: CacheConfig = CacheConfig(0)
    stage2_psc: Mapping[int, CacheConfig] = field(default_factory=dict)
    name: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "iotlb", as_config(self.iotlb, "iotlb"))
        object.__setattr__(self, "stage2_tlb", as_config(self.stage2_tlb, "stage2_tlb"))
        object.__setattr__(self, "psc", _as_levels(self.psc, "psc"))
        object.__setattr__(self, "stage2_psc", _as_levels(self.stage2_psc, "stage2_psc"))
        for key in ("name", "source"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(f"{key}={getattr(self, key)!r} must be a string")

    @classmethod
    def none(cls) -> Caches:
        """No caches at all: every translation is a cold walk."""
        return cls(CacheConfig(0), name="none", source="no caches (every access walks)")

    @classmethod
    def for_platform(cls, platform: Any) -> Caches:
        """Defaults for a platform: a :class:`~iommu_lab.hardware.platform.Platform` or a catalogue name.

        Taken from ``data/caches/defaults.toml``: the platform's own table if there is one,
        laid over its family's table. A string that names no platform is tried as a family
        (see :meth:`for_family`); ``ENOENT`` lists both kinds of name otherwise.
        """

        if isinstance(platform, IommuFamily):
            return cls.for_family(platform)
        if not isinstance(platform, (str, Platform)):
            text = repr(platform)
            raise TypeError(
                f"platform={text if len(text) <= 60 else text[:57] + '...'} is not a platform; give a "
                f"Platform, a catalogue name such as 'intel-vtd-48', or an IOMMU family ('VT-d')"
            )
        if isinstance(platform, str):
            if platform in platforms:
                platform = platforms.get(platform)
            else:
                try:
                    return cls.for_family(platform)
                except IommuError as exc:
                    if exc.errno != "ENOENT":
                        raise
                    raise IommuError(
                        "ENOENT",
                        f"no platform or IOMMU family {platform!r}; platforms: "
                        f"{', '.join(platforms.names())}; families: {_family_names()}",
                    ) from None
        family = getattr(platform.family, "value", platform.family)
        return _defaults().for_platform(platform.name, family)

    @classmethod
    def for_family(cls, family: Any) -> Caches:
        """Defaults for an IOMMU family: an :class:`~iommu_lab.hardware.platform.IommuFamily`, its name
        (``"VT-d"``, ``"smmuv3"``), or a page-table format family that belongs to exactly one
        IOMMU family (``"vtd-ss"``, ``"arm-lpae"``; not ``"x86-64"``, used by VT-d and AMD).
        """

        try:
            fam = IommuFamily.parse(family)
        except ValueError:
            fam = _family_of_format(family)
        return _defaults().for_platform("", fam.value).replace(name=fam.value)

    def replace(self, **changes: Any) -> Caches:
        """A copy with some fields changed (ints and plain mappings are coerced)."""
        allowed = [f.name for f in dataclasses.fields(self)]
        unknown = [k for k in changes if k not in allowed]
        if unknown:
            raise ValueError(f"Caches.replace: unknown field(s) {', '.join(unknown)}; fields are {', '.join(allowed)}")
        return dataclasses.replace(self, **changes)

    def _rows(self) -> list[tuple[str, int | None, CacheConfig]]:
        rows: list[tuple[str, int | None, CacheConfig]] = [("iotlb", None, self.iotlb)]
        rows += [("psc", lv, c) for lv, c in self.psc.items()]
        rows.append(("stage2_tlb", None, self.stage2_tlb))
        rows += [("stage2_psc", lv, c) for lv, c in self.stage2_psc.items()]
        return rows

    def describe(self):
        """One row per cache: cache, level, entries, ways (NA = fully associative), sets, replacement."""
        import pandas as pd

        rows = self._rows()
        return pd.DataFrame(
            {
                "cache": [r[0] for r in rows],
                "level": pd.array([r[1] for r in rows], dtype="Int64"),
                "entries": [r[2].entries for r in rows],
                "ways": pd.array([r[2].ways for r in rows], dtype="Int64"),
                "sets": [r[2].sets for r in rows],
                "replacement": [r[2].replacement.value for r in rows],
            }
        )

    def to_dataframe(self):
        """One row per cache (:meth:`describe`)."""
        return self.describe()

    _repr_html_ = display.html

    def __str__(self) -> str:
        lines = [f"Caches {self.name or '(unnamed)'}"]
        for cache, level, cfg in self._rows():
            label = cache if level is None else f"{cache} L{level}"
            lines.append(f"  {label:<14} {cfg}")
        if self.source:
            lines.append(f"  source: {self.source}")
        return "\n".join(lines)


def _family_names() -> str:

    return ", ".join(f.value for f in IommuFamily)


def _family_of_format(name: Any):
    """The IOMMU family whose platforms may use page-table formats called ``name``."""

    owners = families_using_format_family(name) if isinstance(name, str) else []
    if len(owners) == 1:
        return owners[0]
    if owners:
        raise IommuError(
            "EINVAL",
            f"format family {name!r} is used by {' and '.join(f.value for f in owners)}; "
            f"pass the platform or the IOMMU family instead",
        )
    raise IommuError("ENOENT", f"{name!r} is neither an IOMMU family ({_family_names()}) nor a format family")


# -- defaults from data/caches/defaults.toml -----------------------------------------------------

_TABLE_KEYS = ("iotlb", "psc", "stage2_tlb", "stage2_psc", "source")


class CacheDefaults:
    """A parsed defaults file: one table per family, optional per-platform overrides.

    ``for_platform(name, family)`` gives the :class:`Caches` for a platform: the family's
    table with the platform's own table (if any) laid over it key by key.
    """

    def __init__(self, families: dict[str, dict], platforms: dict[str, dict], where: str) -> None:
        self.families = families
        self.platforms = platforms
        self.where = where

    def for_platform(self, name: str, family: str) -> Caches:
        base = self.families.get(family)
        if base is None:
            raise IommuError("ENOENT", f"{self.where}: no [families.{family!r}] table; families with defaults: {', '.join(sorted(self.families))}")
        table = {**base, **self.platforms.get(name, {})}
        return _caches_from_table(table, f"{self.where}: {name}", name)


def _levels_of(table: Mapping[str, Any], key: str, where: str) -> dict:
    levels = table.get(key, {})
    if not isinstance(levels, Mapping):
        raise IommuError("EINVAL", f"{where}: {key} = {str(levels)[:60]!r} must be a table of levels, e.g. "
                                   f"{key} = {{ 1 = {{ entries = 32 }} }}")
    out = {}
    for k, v in levels.items():
        if not (isinstance(k, str) and k.isascii() and k.isdigit() and len(k) <= 2):
            raise IommuError("EINVAL", f"{where}: {key} level {str(k)[:30]!r} is not a table level; levels are "
                                       f"decimal integers 1 .. 6")
        out[int(k)] = v
    return out


def _caches_from_table(table: Mapping[str, Any], where: str, name: str) -> Caches:
    psc, psc2 = _levels_of(table, "psc", where), _levels_of(table, "stage2_psc", where)
    try:
        return Caches(
            iotlb=table.get("iotlb", 0),
            psc=psc,
            stage2_tlb=table.get("stage2_tlb", 0),
            stage2_psc=psc2,
            name=name,
            source=table.get("source", ""),
        )
    except (ValueError, TypeError) as exc:
        raise IommuError("EINVAL", f"{where}: {exc}") from None


#: Most bytes a cache defaults file may have (the shipped one is a few KiB).
MAX_TOML_BYTES = 1 << 20


def _read_toml(path: Any) -> dict:
    """Parse a TOML file checked first: a regular file (never a FIFO or a device) of at most
    ``MAX_TOML_BYTES``, UTF-8, nested no deeper than the parser can go. Errors name the path."""
    import os
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise IommuError("ENOENT", f"no cache defaults file {path}") from None
    except OSError as exc:
        raise IommuError("EINVAL", f"{path}: cannot stat the cache defaults file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, device or socket)"
        raise IommuError("EINVAL", f"{path}: {kind}; cache defaults are one regular .toml file")
    if st.st_size > MAX_TOML_BYTES:
        raise IommuError("EINVAL", f"{path}: {st.st_size:,} bytes; a cache defaults file may have at most "
                                   f"{MAX_TOML_BYTES:,} bytes")
    with open(path, "rb") as fh:
        data = fh.read(MAX_TOML_BYTES + 1)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IommuError("EINVAL", f"{path}: not UTF-8 text (byte offset {exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise IommuError("EINVAL", f"{path}: malformed TOML: {str(exc)[:200]}") from None
    except RecursionError:
        raise IommuError("EINVAL", f"{path}: tables or arrays nested too deep; cache defaults nest 3 levels") from None


def load_defaults(path: Any = None) -> CacheDefaults:
    """Read and check a defaults file (default: the shipped ``data/caches/defaults.toml``)."""
    from pathlib import Path

    if path is None:
        from iommu_lab.core.paths import data_dir

        path = data_dir() / "caches" / "defaults.toml"
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    doc = _read_toml(path)
    unknown = set(doc) - {"families", "platforms"}
    if unknown:
        raise IommuError("EINVAL", f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; allowed: families, platforms")
    tables: dict[str, dict[str, dict]] = {}
    for section in ("families", "platforms"):
        if not isinstance(doc.get(section, {}), dict):
            raise IommuError("EINVAL", f"{path}: {section} = {str(doc[section])[:60]!r} must be a table of tables, "
                                       f"e.g. [{section}.\"VT-d\"]")
        tables[section] = dict(doc.get(section, {}))
        for key, table in tables[section].items():
            if not isinstance(table, dict):
                raise IommuError("EINVAL", f"{path}: [{section}.{key}] = {str(table)[:60]!r} must be a table with "
                                           f"keys {', '.join(_TABLE_KEYS)}")
            bad = set(table) - set(_TABLE_KEYS)
            if bad:
                raise IommuError("EINVAL", f"{path}: [{section}.{key}]: unknown key(s) {', '.join(sorted(bad))}; allowed: {', '.join(_TABLE_KEYS)}")
    defaults = CacheDefaults(tables["families"], tables["platforms"], str(path))
    for family, table in defaults.families.items():
        _caches_from_table(table, f"{path}: [families.{family}]", family)
    return defaults


_loaded: CacheDefaults | None = None


def _defaults() -> CacheDefaults:
    global _loaded
    if _loaded is None:
        _loaded = load_defaults()
    return _loaded
