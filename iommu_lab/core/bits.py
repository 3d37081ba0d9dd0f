"""Bit fields of a page-table entry, as small tables of ``(name, shift, width)``.

Modelled on chipsec's ``hal/common/paging.py`` field tables: a format's entry layout is data,
not code. Every accessor works on a Python ``int`` *and* on a numpy ``uint64`` array, so the
single-IOVA walker and the vectorised translator decode entries with the same tables.

Entries wider than one word (the 64-byte VT-d PASID entry, the SMMUv3 STE and CD, the AMD
DTE) are an :class:`EntryLayout`: the same fields, numbered across the whole entry as the
specifications number them (VT-d "FSPTPTR bits 140-191" is word 2, bits 12..63), read and
written one 64-bit word at a time.

Example
-------
>>> VTD = FieldTable([Field("R", 0, 1), Field("W", 1, 1), Field("ADDR", 12, 40)])
>>> VTD.decode(0x1234_5003)
{'R': 1, 'W': 1, 'ADDR': 74565}
>>> hex(VTD.encode(R=1, W=1, ADDR=0x12345))
'0x12345003'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from iommu_lab.core.errors import IommuError

__all__ = ["ADDRESS", "EntryLayout", "Field", "FieldTable", "genmask"]

#: The role of a field that holds an address in place (``value & mask``): its value reads back
#: as the address, low bits zero, as ``pasid_set_flptr`` / ``CTXDESC_CD_1_TTB0_MASK`` keep it.
ADDRESS = "address"


def genmask(high: int, low: int) -> int:
    """Bits ``high..low`` set, as the kernel's ``GENMASK_ULL(high, low)``."""
    return ((1 << (high + 1)) - 1) & ~((1 << low) - 1)


@dataclass(frozen=True, slots=True)
class Field:
    """One bit field of a 64-bit entry: ``width`` bits starting at bit ``shift``.

    Parameters
    ----------
    name : str
        The name the specification uses (``"R"``, ``"SP"``, ``"NextLevel"``, ``"AP"``...).
    shift, width : int
        Position of the lowest bit and number of bits.
    doc : str
        What the field means, for decoded displays.
    role : str
        How the hardware uses the bits, where a reader needs to know (:data:`ADDRESS`: a pointer
        kept in place); empty for plain values.
    entry_bits : int
        Width of the whole entry (64; 512 for a 64-byte PASID entry or CD).
    """

    name: str
    shift: int
    width: int
    doc: str = ""
    role: str = ""
    entry_bits: int = 64

    def __post_init__(self) -> None:
        top = self.entry_bits
        if not (0 <= self.shift < top and 1 <= self.width and self.shift + self.width <= top):
            raise ValueError(
                f"field {self.name} [{self.shift + self.width - 1}:{self.shift}] does not fit {top} bits"
            )

    @property
    def lo(self) -> int:
        """Lowest bit, counted across the whole entry."""
        return self.shift

    @property
    def hi(self) -> int:
        """Highest bit, counted across the whole entry."""
        return self.shift + self.width - 1

    @property
    def address(self) -> bool:
        """Whether the field holds an address in place (role :data:`ADDRESS`)."""
        return self.role == ADDRESS

    @property
    def mask(self) -> int:
        """The field's bits in place (e.g. SP → ``0x80``)."""
        return ((1 << self.width) - 1) << self.shift

    @property
    def bits(self) -> str:
        """The bit range as a datasheet writes it: ``"7"`` or ``"51:12"``."""
        hi = self.shift + self.width - 1
        return str(hi) if self.width == 1 else f"{hi}:{self.shift}"

    def get(self, raw):
        """The field's value from an entry (an int, or a uint64 array elementwise)."""
        if isinstance(raw, (np.ndarray, np.generic)):
            return (np.asarray(raw, dtype=np.uint64) >> np.uint64(self.shift)) & np.uint64(
                (1 << self.width) - 1
            )
        return (int(raw) >> self.shift) & ((1 << self.width) - 1)

    def put(self, value: int) -> int:
        """The field's value placed in an otherwise-zero entry; refuses values that do not fit."""
        value = int(value)
        if value < 0 or value >> self.width:
            raise ValueError(
                f"value {value:#x} does not fit field {self.name} ({self.width} bits at {self.shift})"
            )
        return value << self.shift


class FieldTable:
    """An ordered, non-overlapping set of fields describing one kind of entry.

    ``decode(raw)`` returns ``{name: value}``; ``encode(**values)`` builds an entry;
    ``reserved_mask`` (bits no field claims) is available to formats whose rules say
    unnamed bits must be zero.
    """

    def __init__(self, fields: Iterable[Field], name: str = "") -> None:
        self.fields: tuple[Field, ...] = tuple(fields)
        self.name = name
        used = 0
        for f in self.fields:
            if used & f.mask:
                raise ValueError(f"field {f.name} overlaps another field in table {name!r}")
            used |= f.mask
        self._by_name = {f.name: f for f in self.fields}
        self.claimed_mask = used

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __getitem__(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"no field {name!r} in {self.name or 'this table'}; fields: {', '.join(self._by_name)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def reserved_mask(self) -> int:
        """Bits that no field names."""
        return ((1 << 64) - 1) & ~self.claimed_mask

    def decode(self, raw: int) -> dict[str, int]:
        """Every field's value, in table order."""
        raw = int(raw)
        return {f.name: (raw >> f.shift) & ((1 << f.width) - 1) for f in self.fields}

    def encode(self, **values: int) -> int:
        """Build an entry from field values; unknown names are an error, missing ones are 0."""
        raw = 0
        for name, value in values.items():
            raw |= self[name].put(value)
        return raw

    def rows(self, raw: int) -> list[tuple[str, str, int]]:
        """``(name, bits, value)`` for display."""
        raw = int(raw)
        return [(f.name, f.bits, (raw >> f.shift) & ((1 << f.width) - 1)) for f in self.fields]

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}[{f.bits}]" for f in self.fields)
        return f"FieldTable({self.name}: {inner})"


class EntryLayout(FieldTable):
    """A hardware structure entry of one or more 64-bit words: its size and field table.

    Fields are numbered across the whole entry, word 0 lowest. An address field
    (role :data:`ADDRESS`) reads and writes the address itself: its bits stay in place within
    their word, so ``decode`` gives ``raw << (lo % 64)`` and ``encode`` refuses an address that
    is not aligned to ``1 << (lo % 64)``. Bits no field names are reserved (must be zero).

    Parameters
    ----------
    name : str
    size : int
        Bytes (8 for a directory entry, 64 for a PASID entry, STE or CD).
    fields : iterable of Field
    source : str
        Where the layout comes from (header, structure, macros).
    """

    def __init__(self, name: str, size: int, fields: Iterable[Field], source: str = "") -> None:
        if size % 8 or size <= 0:
            raise ValueError(f"{name}: an entry is a whole number of 64-bit words, not {size} bytes")
        fields = tuple(fields)
        for f in fields:
            if f.hi >= 8 * size:
                raise ValueError(f"{name}: field {f.name} [{f.hi}:{f.lo}] is beyond its {size}-byte entry")
        super().__init__(fields, name)
        self.size = size
        self.source = source

    @property
    def words(self) -> int:
        return self.size // 8

    @property
    def reserved_mask(self) -> int:
        """Bits no field names, across the whole entry."""
        return ((1 << (8 * self.size)) - 1) & ~self.claimed_mask

    def field(self, name: str) -> Field:
        """The field called ``name`` (``KeyError`` listing the fields otherwise)."""
        return self[name]

    def get(self, name: str, value: int) -> int:
        """One field's value (an address field: the address in place)."""
        f = self[name]
        raw = (int(value) >> f.shift) & ((1 << f.width) - 1)
        return raw << (f.shift % 64) if f.address else raw

    def put(self, value: int, name: str, field_value: int) -> int:
        """``value`` with field ``name`` replaced; ``EINVAL`` for a value that does not fit."""
        f = self[name]
        field_value = int(field_value)
        if f.address:
            shift = f.shift % 64
            if field_value & ((1 << shift) - 1):
                raise IommuError(
                    "EINVAL",
                    f"{f.name} = {field_value:#x} is not {1 << shift:#x}-aligned; the field holds "
                    f"address bits [{shift + f.width - 1}:{shift}]",
                )
            field_value >>= shift
        if field_value < 0 or field_value >> f.width:
            raise IommuError(
                "EINVAL",
                f"{f.name} = {field_value:#x} does not fit its {f.width}-bit field (bits {f.bits})",
            )
        return (int(value) & ~f.mask) | (field_value << f.shift)

    def encode(self, **values: int) -> int:
        value = 0
        for name, v in values.items():
            value = self.put(value, name, v)
        return value

    def decode(self, raw: int) -> dict[str, int]:
        return {f.name: self.get(f.name, raw) for f in self.fields}

    def read(self, memory: Any, addr: int) -> int:
        """Read the whole entry (``words`` 64-bit loads) as one integer, word 0 lowest."""
        value = 0
        for i in range(self.words):
            value |= int(memory.read_u64(addr + 8 * i)) << (64 * i)
        return value

    def write(self, memory: Any, addr: int, value: int) -> None:
        """Store the entry one 64-bit word at a time."""
        for i in range(self.words):
            memory.write_u64(addr + 8 * i, (int(value) >> (64 * i)) & ((1 << 64) - 1))

    def describe(self, value: int) -> list[tuple[str, str, int, str]]:
        """(field, bits, value, meaning) rows for a decoded entry, reserved bits last."""
        rows = [(f.name, f.bits, self.get(f.name, value), f.doc) for f in self.fields]
        rsv = int(value) & self.reserved_mask
        if rsv:
            rows.append(("RESERVED", "must be 0", rsv, "non-zero reserved bits: the hardware faults"))
        return rows

    def __repr__(self) -> str:
        return f"EntryLayout({self.name}, {self.size} bytes, {len(self.fields)} fields)"
