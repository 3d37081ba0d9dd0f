"""Page-table formats: one descriptor type, one file per family, and the registry of named formats.

Each family file (``vtd``, ``x86``, ``amd``, ``arm``, ``riscv``, ``power``) names every bit of
its entries once as a :class:`~iommu_lab.core.bits.Field`, writes its rules with those names,
and provides a factory that derives the geometry from ias and granule, as generic_pt's
``fmt/*.h`` do. Only these files know a family; everything above asks the descriptor
(``fmt.level_name``, ``fmt.linear``, ``fmt.fault_reason``, ``fmt.fixed_leaf_size``, ...).

>>> from iommu_lab.hardware import formats
>>> f = formats.get("vtd-ss-4level")
>>> f.levels, f.index_bits, hex(f.pgsize_bitmap)
(4, (9, 9, 9, 9), '0x40201000')
>>> formats.arm_lpae(stage=2, granule=4096, ias=40, oas=40).top_entries   # 2 concatenated L1 tables
1024
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from iommu_lab.core.errors import IommuError
from iommu_lab.core.perm import Perm
from iommu_lab.hardware.formats.amd import AMD_IOMMU_PGSIZES, amd_v1
from iommu_lab.hardware.formats.arm import arm_lpae
from iommu_lab.hardware.formats.descriptor import (
    DecodedEntry,
    EntryKind,
    Format,
    Rules,
    UnmapPolicy,
)
from iommu_lab.hardware.formats.power import power_tce
from iommu_lab.hardware.formats.riscv import riscv
from iommu_lab.hardware.formats.vtd import vtd_ss
from iommu_lab.hardware.formats.x86 import x86_64

__all__ = [
    "AMD_IOMMU_PGSIZES",
    "DecodedEntry",
    "EntryKind",
    "Format",
    "Perm",
    "Rules",
    "UnmapPolicy",
    "amd_v1",
    "arm_lpae",
    "get",
    "names",
    "parse_perm",
    "power_tce",
    "register",
    "riscv",
    "vtd_ss",
    "x86_64",
]

#: The older name of ``Perm.parse``.
parse_perm = Perm.parse

_FACTORIES: dict[str, Callable[[], Format]] = {}
#: Names built on demand by ``get`` (every ARM stage/granule/ias combination).
_ARM_NAME = re.compile(r"arm-lpae-s([12])-(4|16|64)k-(\d+)bit")


def register(name: str, factory: Callable[[], Format]) -> None:
    """Add a named format (the factory is called once, on first ``get``)."""
    _FACTORIES[name] = factory
    _cached.cache_clear()


@cache
def _cached(name: str) -> Format:
    return _FACTORIES[name]()


def names() -> list[str]:
    """Registered format names."""
    return list(_FACTORIES)


def get(name) -> Format:
    """The registered format ``name`` (a ``Format`` passes through).

    Names of the ``arm-lpae-s{1,2}-{4,16,64}k-{ias}bit`` pattern that are not registered are
    built on the fly with ``arm_lpae`` (oas = ias).
    """
    if isinstance(name, Format):
        return name
    if not isinstance(name, str):
        raise TypeError(f"format name must be a string, got {type(name).__name__} {name!r}")
    if name in _FACTORIES:
        return _cached(name)
    m = _ARM_NAME.fullmatch(name)
    if m:
        try:
            return arm_lpae(int(m[1]), int(m[2]) * 1024, int(m[3]))
        except ValueError as e:
            raise IommuError("EINVAL", f"format {name!r}: {e}") from None
    shown = name if len(name) <= 60 else name[:57] + "..."
    raise IommuError(
        "EINVAL",
        f"unknown page-table format {shown!r}; known formats: "
        f"{', '.join(n for n in names() if not n.startswith('arm-lpae-'))}, "
        f"arm-lpae-s{{1,2}}-{{4,16,64}}k-{{ias}}bit (formats.names() lists every one)",
    )


for _lv in (3, 4, 5):
    register(f"vtd-ss-{_lv}level", lambda lv=_lv: vtd_ss(lv))
for _lv in (4, 5):
    register(f"x86-64-{_lv}level", lambda lv=_lv: x86_64(lv))
for _m in range(1, 7):
    register(f"amd-v1-{_m}level", lambda m=_m: amd_v1(m))
for _st in (1, 2):
    for _gk, _ias_list in ((4, (32, 36, 39, 40, 42, 44, 48)), (16, (36, 40, 47, 48)), (64, (42, 48, 52))):
        for _ias in _ias_list:
            register(f"arm-lpae-s{_st}-{_gk}k-{_ias}bit", lambda st=_st, gk=_gk, ias=_ias: arm_lpae(st, gk * 1024, ias))
# The AMD v1 table as Linux builds it: mode 3 at allocation, a new root added whenever a mapping
# needs more (``increase_address_space``; generic_pt ``PT_FEAT_DYNAMIC_TOP``), up to
# ``amd_iommu_hpt_level``. The platforms use this one; ``amd-v1-6level`` is the fixed 6-level table.
register("amd-v1-dynamic", lambda: amd_v1(3, grow_to=6, name="amd-v1-dynamic"))
for _lv in (3, 4, 5):
    register(f"riscv-sv{12 + 9 * _lv}", lambda lv=_lv: riscv(lv))
# Svnapot 64 KiB leaves: an optional RISC-V feature, selected by name.
for _lv in (3, 4, 5):
    register(f"riscv-sv{12 + 9 * _lv}-napot", lambda lv=_lv: riscv(lv, napot=True))
register("power-tce-4k", lambda: power_tce(12, window_bits=31, base=0, name="power-tce-4k"))
register("power-tce-64k", lambda: power_tce(16, window_bits=36, base=1 << 59, name="power-tce-64k"))
