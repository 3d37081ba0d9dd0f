"""Bit fields of a page-table entry, as small tables of ``(name, shift, width)``.

Modelled on chipsec's ``hal/common/paging.py`` field tables: a format's entry layout is data,
not code. Every accessor works on a Python ``int`` *and* on a numpy ``uint64`` array, so the
single-IOVA walker and the vectorised translator decode entries with the same tables.

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

import numpy as np

__all__ = ["Field", "FieldTable", "genmask"]


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
    """

    name: str
    shift: int
    width: int
    doc: str = ""

    def __post_init__(self) -> None:
        if not (0 <= self.shift < 64 and 1 <= self.width and self.shift + self.width <= 64):
            raise ValueError(
                f"field {self.name} [{self.shift + self.width - 1}:{self.shift}] does not fit 64 bits"
            )

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
