"""64-bit I/O address arithmetic: inclusive ranges, canonical range sets and size parsing.

Ranges are inclusive ``[start, last]``, as the kernel's ``struct iommu_iova_range`` and
its interval trees are, so the top of the 64-bit space (``0xffff_ffff_ffff_ffff``) needs
no ``2**64``. Everything here is a pure value: nothing mutates after construction.

This is layer 1 of the design: it imports nothing else of ``iommu_lab``, and it reports
bad input with ``TypeError`` (wrong kind of value) or ``ValueError`` (a value that breaks
a rule); the models above translate those into kernel errnos where the kernel would.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Union

from iommu_lab.core import display
from iommu_lab.core.errors import cut

__all__ = [
    "U64_MAX",
    "KiB",
    "MiB",
    "GiB",
    "TiB",
    "PiB",
    "EiB",
    "IovaRange",
    "RangeSet",
    "parse_size",
    "parse_address",
    "parse_u64",
    "MAX_NUMBER_TEXT",
    "fmt_addr",
    "fmt_size",
    "check_u64",
    "exact_int",
]

U64_MAX = (1 << 64) - 1
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
PiB = 1 << 50
EiB = 1 << 60

_UNITS = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB, "P": PiB, "E": EiB}


def exact_int(value: object, name: str, *, integral_floats: bool = False) -> int:
    """``value`` as an exact Python int: ints and numpy integer scalars pass.

    ``bool`` (and numpy's ``bool_``) is always refused: ``True`` is not a count. A ``float``
    (numpy's included) is refused by default, since an address that arrived as a float has
    already lost the bits above 2**53; a reader of data (a TOML number, a column of a table)
    passes ``integral_floats=True`` to accept a float that is exactly integral and at most
    2**53 in size (``4096.0``), never one with a fraction (``4096.7``) or beyond 2**53.

    Raises
    ------
    TypeError
        Naming ``name``, the type and the value given (cut to a readable length).
    ValueError
        For a float with a fraction, or one too large to be exact, when ``integral_floats``.
    """
    if type(value) is int:
        return value
    kind = getattr(getattr(value, "dtype", None), "kind", "") if type(value).__module__ == "numpy" else ""
    if isinstance(value, bool) or kind == "b":
        raise TypeError(f"{name} must be an int, got bool {value!r}")
    if isinstance(value, int):
        return int(value)
    if kind in ("i", "u"):
        # numpy integer scalars are ints in every way that matters here.
        return int(value)  # type: ignore[call-overload]
    if isinstance(value, float) or kind == "f":
        if not integral_floats:
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {_cut(repr(value))}")
        f = float(value)  # type: ignore[arg-type]
        if f != f or f in (float("inf"), float("-inf")) or not f.is_integer():
            raise ValueError(f"{name} {_cut(repr(value))} is not a whole number; give an int")
        if abs(f) > 2**53:
            raise ValueError(
                f"{name} {_cut(repr(value))} is a float above 2^53, where floats lose bits; give an int"
            )
        return int(f)
    raise TypeError(f"{name} must be an int, got {type(value).__name__} {_cut(repr(value))}")


def check_u64(value: object, name: str, *, integral_floats: bool = False) -> int:
    """The one u64 validator: ``value`` if it is an int in ``[0, 2**64)``, else a clear error.

    ``integral_floats`` as for :func:`exact_int`.

    Raises
    ------
    TypeError
        When ``value`` is not an exact int (see :func:`exact_int`).
    ValueError
        When it lies outside ``[0x0, 0xffff_ffff_ffff_ffff]``.
    """
    if type(value) is not int:
        try:
            value = exact_int(value, name, integral_floats=integral_floats)
        except TypeError:
            raise TypeError(
                f"{name} must be an int in [0x0, 0xffff_ffff_ffff_ffff], "
                f"got {type(value).__name__} {_cut(repr(value))}"
            ) from None
    if value < 0 or value > U64_MAX:
        raise ValueError(
            f"{name} {_show(value)} is outside the 64-bit address space "
            f"[0x0, 0xffff_ffff_ffff_ffff]"
        )
    return value


_cut = cut


def _show(value: int) -> str:
    if value.bit_length() > 256:
        return f"{'-' if value < 0 else ''}(a {value.bit_length()}-bit number)"
    return f"-{fmt_addr(-value)}" if value < 0 else fmt_addr(value)


def fmt_addr(value: int) -> str:
    """Hex with ``_`` every four digits, as the style guide shows addresses to people."""
    return f"{value:#_x}"


def fmt_size(size: int, *, approx: bool = False) -> str:
    """A size the way an engineer says it: ``4 KiB``, ``2 MiB``, ``2^45 B``, else hex bytes.

    With ``approx=True`` a size that is not a whole number of its largest unit reads as three
    significant digits of it (``≈ 3.98 GiB``), as a figure label or a summary line wants;
    whole sizes stay exact (``16 MiB``).
    """
    if size <= 0:
        return f"{size} B"
    if approx:
        unit, scale = next(((u, s) for u, s in _SIZE_UNITS if size >= s), ("B", 1))
        if size % scale == 0:
            return f"{size // scale} {unit}"
        return f"≈ {size / scale:.3g} {unit}" if size < 1000 * scale else f"≈ {size / scale:,.0f} {unit}"
    for unit, scale in _SIZE_UNITS:
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    if size & (size - 1) == 0:
        return f"2^{size.bit_length() - 1} B"
    if size < KiB:
        return f"{size} B"
    return f"{fmt_addr(size)} B"


_SIZE_UNITS = (("EiB", EiB), ("PiB", PiB), ("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB))


#: The longest text a number, size or address may be: ``0b`` + 64 binary digits + 63 ``_``
#: separators fits with room to spare. Longer text is refused before any number is computed.
MAX_NUMBER_TEXT = 160

_HEX = r"0[xX](?:_?[0-9a-fA-F])+"
_BIN = r"0[bB](?:_?[01])+"
_DEC = r"[0-9](?:_?[0-9])*"
_NUMBER = rf"(?:{_HEX}|{_BIN}|{_DEC})"
_NUMBER_RE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*$", re.ASCII)
_BARE_HEX_RE = re.compile(r"^\s*(?:0[xX])?(?P<num>[0-9a-fA-F](?:_?[0-9a-fA-F])*)\s*$", re.ASCII)
_SIZE_RE = re.compile(
    rf"""^\s*(?:
        2\s*(?:\^|\*\*)\s*(?P<exp>[0-9]+)                    # 2^45, 2**45
      | (?P<bits>[0-9]+)\s*-?\s*bits?                         # 45-bit, 45 bits
      | (?P<num>{_NUMBER})                                    # 0x1000, 4096, 0b1, 1_000
        \s*(?:(?P<unit>[kKmMgGtTpPeE])(?:i?[bB])?|[bB])?      # K, KiB, KB, B
    )\s*$""",
    re.VERBOSE | re.ASCII,
)

_SIZE_FORMS = (
    "write a byte count with an optional binary unit ('4096', '0x1000', '4K', '2MiB', '1G'), "
    "a power of two ('2^45') or a width ('45-bit')"
)


def _check_text(text: str, what: str) -> None:
    if len(text) > MAX_NUMBER_TEXT:
        raise ValueError(
            f"cannot read {_cut(repr(text))} ({len(text)} characters) as {what}: longer than any "
            f"64-bit value is written (at most {MAX_NUMBER_TEXT} characters)"
        )


def _size_of_int(value: object) -> int:
    value = exact_int(value, "size")
    if value < 0 or value > 1 << 64:
        raise ValueError(f"size {_show(value)} is outside [0, 2^64]")
    return value


def parse_size(text: Union[str, int]) -> int:
    """Read a size in bytes: ``"4K"``, ``"2MiB"``, ``"1G"``, ``"2^45"``, ``"45-bit"``, ``"0x1000"``.

    The one size grammar, used by every surface (the API, the CLI, platform, cache and
    scenario files, range text)::

        size    := number [unit] | "2^" dec | "2**" dec | dec ["-"] "bit" ["s"]
        number  := "0x" hex-digits | "0b" binary-digits | decimal-digits
        unit    := K | M | G | T | P | E, each optionally followed by "iB" or "B"; or "B" alone

    Digits are ASCII only; a single ``_`` may separate two digits (``0xfee0_0000``, as
    :func:`fmt_addr` writes addresses). Units are binary (``K`` = 1024), as page sizes always
    are; ``"45-bit"`` is the size of a 45-bit space, ``2**45``. Spaces around the parts are
    ignored. The result lies in ``[0, 2**64]`` (``2**64`` is the whole 64-bit space). An
    exponent, a width or a digit string is checked against that bound *before* anything is
    computed, so no text makes this slow. An ``int`` (or numpy integer) passes through after
    the range check; a ``bool`` or ``float`` is a ``TypeError``.

    Raises
    ------
    TypeError
        For anything but a string or an exact integer.
    ValueError
        Naming the text (cut to a readable length), the forms allowed, or the 2^64 bound.
    """
    if not isinstance(text, str):
        if isinstance(text, bool) or not (isinstance(text, int) or type(text).__module__ == "numpy"):
            raise TypeError(
                f"size must be an int or a string such as '4K', got {type(text).__name__} {_cut(repr(text))}"
            )
        try:
            return _size_of_int(text)
        except TypeError:
            raise TypeError(
                f"size must be an int or a string such as '4K', got {type(text).__name__} {_cut(repr(text))}"
            ) from None
    _check_text(text, "a size")
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"cannot read {_cut(repr(text))} as a size; {_SIZE_FORMS}")
    if m["exp"] is not None or m["bits"] is not None:
        exp = int(m["exp"] if m["exp"] is not None else m["bits"])
        if exp > 64:
            raise ValueError(
                f"size {_cut(repr(text))} is 2^{_cut(str(exp), 24)}, larger than the 64-bit space; "
                f"a power or width is at most 64 (2^64 bytes)"
            )
        return 1 << exp
    value = int(m["num"], 0) * _UNITS[(m["unit"] or "").upper()]
    if value > 1 << 64:
        raise ValueError(f"size {_cut(repr(text))} = {_show(value)} is larger than the 64-bit space (2^64)")
    return value


def parse_u64(text: Union[str, int], name: str = "value", *, base: int = 0, underscores: bool = True) -> int:
    """Read one u64 number written as a program writes it: no unit, no power, no width.

    ``base=0`` reads ``0x`` hex, ``0b`` binary or decimal (:func:`parse_size`'s ``number``);
    ``base=16`` reads hex with or without ``0x``, as kernel dumps print it (``fee00000``).
    Digits are ASCII only. ``underscores=False`` refuses ``_`` between digits, for machine
    output that never has them (debugfs, sysfs). An int passes through :func:`check_u64`.

    Raises
    ------
    TypeError
        For anything but a string or an exact integer.
    ValueError
        Naming ``name``, the text (cut) and what is allowed; or a value outside u64.
    """
    if not isinstance(text, str):
        return check_u64(text, name)
    if base not in (0, 16):
        raise ValueError(f"base must be 0 (prefix decides) or 16, got {base!r}")
    _check_text(text, name)
    m = None if (not underscores and "_" in text) else (_BARE_HEX_RE if base == 16 else _NUMBER_RE).match(text)
    if not m:
        forms = "hex digits, with or without 0x" if base == 16 else "'0x' hex, '0b' binary or decimal digits"
        sep = "" if underscores else "; no '_' separators"
        raise ValueError(f"cannot read {name} {_cut(repr(text))} as a number; write {forms}{sep}")
    return check_u64(int(m["num"], 16 if base == 16 else 0), name)


def parse_address(text: Union[str, int], name: str = "address") -> int:
    """Read an address: an int, or text in :func:`parse_size`'s grammar (``0xfee0_0000``, ``1G``).

    Sizes with units are accepted (``"1G"`` is the address 0x4000_0000), which is how people
    write window bases; the result must lie in ``[0x0, 0xffff_ffff_ffff_ffff]``.
    """
    if isinstance(text, str):
        _check_text(text, name)
        try:
            value = parse_size(text)
        except ValueError:
            raise ValueError(
                f"cannot read {name} {_cut(repr(text))} as an address; write it in hex such as "
                f"'0xfee0_0000' (or decimal, or a size such as '1G')"
            ) from None
        return check_u64(value, name)
    return check_u64(text, name)


@dataclass(frozen=True, order=True, slots=True)
class IovaRange:
    """An inclusive range of I/O virtual addresses ``[start, last]``.

    Mirrors the kernel's ``struct iommu_iova_range`` and interval-tree nodes, whose ``last``
    is inclusive so the range ending at ``0xffff_ffff_ffff_ffff`` is representable.

    Parameters
    ----------
    start, last : int
        First and last address, ``0 <= start <= last < 2**64``.
    """

    start: int
    last: int

    def __post_init__(self) -> None:
        check_u64(self.start, "range start")
        check_u64(self.last, "range last")
        if self.start > self.last:
            raise ValueError(
                f"range start {fmt_addr(self.start)} is above its last address {fmt_addr(self.last)}; "
                f"a range is [start, last] with start <= last (last is inclusive)"
            )

    @classmethod
    def from_size(cls, start: int, size: int) -> IovaRange:
        """The range of ``size`` bytes from ``start``; refuses an empty or wrapping range."""
        start = check_u64(start, "range start")
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"range size must be an int, got {type(size).__name__} {size!r}")
        if size <= 0:
            raise ValueError(f"range size {size} must be at least 1 byte")
        if start + size - 1 > U64_MAX:
            raise ValueError(
                f"range of {fmt_size(size)} from {fmt_addr(start)} wraps past the top of the "
                f"64-bit space 0xffff_ffff_ffff_ffff"
            )
        return cls(start, start + size - 1)

    @classmethod
    def bits(cls, width: int, base: int = 0) -> IovaRange:
        """The ``width``-bit space ``[base, base + 2**width - 1]``, e.g. 45 bits → ``[0x0, 0x1fff_ffff_ffff]``."""
        if isinstance(width, bool) or not isinstance(width, int):
            raise TypeError(f"address width must be an int number of bits, got {type(width).__name__} {width!r}")
        if not 1 <= width <= 64:
            raise ValueError(f"address width {width} bits is outside 1..64")
        return cls.from_size(base, 1 << width)

    @classmethod
    def parse(cls, text: str) -> IovaRange:
        """Read one range from text; the one range grammar, shared with :meth:`RangeSet.parse`::

            range := "[" inner "]" | inner
            inner := address ".." address     inclusive: "0x0..0x3fff_ffff"
                   | address "," address      inclusive, as str() writes it: "[0x1000, 0x1fff]"
                   | address "+" size         start and size: "0x8000_0000_0000_000+2^45"
                   | size                     from 0: "1G" is [0x0, 0x3fff_ffff], "45-bit"

        ``address`` and ``size`` are :func:`parse_size`'s grammar (an address may carry a unit,
        ``"1G..2G"``). ``str(r)`` reads back as ``r``.

        Raises
        ------
        TypeError
            For anything but a string (an ``IovaRange`` passes through).
        ValueError
            Naming the text (cut), the forms allowed, or the bound it breaks.
        """
        if isinstance(text, IovaRange):
            return text
        if not isinstance(text, str):
            raise TypeError(f"range text must be a string, got {type(text).__name__} {_cut(repr(text))}")
        if len(text) > 3 * MAX_NUMBER_TEXT:
            raise ValueError(
                f"cannot read {_cut(repr(text))} ({len(text)} characters) as a range: longer than "
                f"any 64-bit range is written (at most {3 * MAX_NUMBER_TEXT} characters)"
            )
        s = text.strip()
        if s.startswith("[") and s.endswith("]"):
            s = s[1:-1].strip()
        for sep in ("..", ",", "+"):
            if sep in s:
                a, _, b = s.partition(sep)
                if not a.strip() or not b.strip():
                    break
                start = parse_address(a.strip(), "range start")
                if sep == "+":
                    return cls.from_size(start, parse_size(b.strip()))
                return cls(start, parse_address(b.strip(), "range last"))
        else:
            if "[" not in s and "]" not in s:
                try:
                    size = parse_size(s)
                except ValueError:
                    pass
                else:
                    return cls.from_size(0, size)
        raise ValueError(
            f"cannot read {_cut(repr(text))} as a range; write 'START..LAST' or '[START, LAST]' "
            f"(inclusive), 'START+SIZE', a size such as '1G' or a width such as '45-bit'"
        )

    @property
    def size(self) -> int:
        """Number of bytes, ``last - start + 1`` (``2**64`` for the whole space)."""
        return self.last - self.start + 1

    @property
    def end(self) -> int:
        """Exclusive end, ``last + 1`` (may be ``2**64``)."""
        return self.last + 1

    def __contains__(self, item: object) -> bool:
        if isinstance(item, IovaRange):
            return self.start <= item.start and item.last <= self.last
        if isinstance(item, int) and not isinstance(item, bool):
            return self.start <= item <= self.last
        return False

    def overlaps(self, other: IovaRange) -> bool:
        """True when the two ranges share at least one address."""
        return self.start <= other.last and other.start <= self.last

    def intersection(self, other: IovaRange) -> IovaRange | None:
        """The common part, or None when the ranges are disjoint."""
        if not self.overlaps(other):
            return None
        return IovaRange(max(self.start, other.start), min(self.last, other.last))

    def __str__(self) -> str:
        return f"[{fmt_addr(self.start)}, {fmt_addr(self.last)}]"

    def __repr__(self) -> str:
        return f"IovaRange({self.start:#x}, {self.last:#x})"


RangeLike = Union[IovaRange, tuple, str]


def _top_level_commas(text: str) -> list[str]:
    """``text`` split at the commas outside ``[...]``."""
    return re.split(r",(?![^\[]*\])", text)


def _explicit_range(part: str) -> bool:
    return ".." in part or "+" in part or part.startswith("[")


def _as_range(item: RangeLike) -> IovaRange:
    if isinstance(item, IovaRange):
        return item
    if isinstance(item, str):
        return IovaRange.parse(item)
    if isinstance(item, tuple) and len(item) == 2:
        return IovaRange(item[0], item[1])
    # Duck-type anything with start/last (reserved regions, areas, windows).
    if hasattr(item, "start") and hasattr(item, "last"):
        return IovaRange(item.start, item.last)
    raise TypeError(
        f"cannot read {item!r} as a range; give an IovaRange, a (start, last) tuple "
        f"or text such as '0x0..0x3fffffff'"
    )


class RangeSet:
    """A canonical set of addresses: sorted, disjoint ranges, merged where they touch.

    The algebra behind iommufd's ``IOMMU_IOAS_IOVA_RANGES`` answer (the holes of the reserved
    interval tree, lib/interval_tree.c span iteration, where adjacent nodes merge into one
    used span) and behind Gibson's "permitted IOVA ranges" (windows). Immutable; every
    operation returns a new set.

    Parameters
    ----------
    ranges : iterable of IovaRange, (start, last) tuples or range text
        In any order, overlapping or not.
    """

    __slots__ = ("_ranges", "_starts")

    def __init__(self, ranges: Iterable[RangeLike] | RangeLike = ()) -> None:
        if isinstance(ranges, (IovaRange, str)):
            ranges = [ranges]
        items = sorted(_as_range(r) for r in ranges)
        merged: list[IovaRange] = []
        for r in items:
            if merged and r.start <= merged[-1].last + 1:
                if r.last > merged[-1].last:
                    merged[-1] = IovaRange(merged[-1].start, r.last)
            else:
                merged.append(r)
        self._ranges: tuple[IovaRange, ...] = tuple(merged)
        self._starts = [r.start for r in merged]

    # -- constructors ---------------------------------------------------------------
    @classmethod
    def bits(cls, width: int, base: int = 0) -> RangeSet:
        """One range covering a ``width``-bit space: ``RangeSet.bits(45)`` is ``[0x0, 0x1fff_ffff_ffff]``."""
        return cls([IovaRange.bits(width, base)])

    @classmethod
    def full(cls) -> RangeSet:
        """The whole 64-bit space ``[0x0, 0xffff_ffff_ffff_ffff]``."""
        return cls([IovaRange(0, U64_MAX)])

    @classmethod
    def parse(cls, text: str) -> RangeSet:
        """Read a set of ranges, each in :meth:`IovaRange.parse`'s grammar.

        Ranges are separated by ``;`` or a newline, or by commas between ranges written
        explicitly (``START..LAST``, ``START+SIZE`` or ``[START, LAST]``); the ``{...}`` that
        ``str()`` writes around a set is accepted, so ``str(s)`` reads back as ``s``. Text that
        :meth:`IovaRange.parse` reads as one range means the same range here:
        ``"0x1000,0x1fff"`` is ``{[0x1000, 0x1fff]}``, never two sizes. A bare number in a
        comma list of more ranges is refused as ambiguous.

        Raises
        ------
        TypeError
            For anything but a string.
        ValueError
            Naming the part (cut) that cannot be read, and the forms allowed.
        """
        if not isinstance(text, str):
            raise TypeError(f"range-set text must be a string, got {type(text).__name__} {_cut(repr(text))}")
        body = text.strip()
        if body.startswith("{") and body.endswith("}"):
            body = body[1:-1]
        ranges: list[IovaRange] = []
        for chunk in re.split(r"[;\n]", body):
            parts = [p.strip() for p in _top_level_commas(chunk)]
            if not any(parts):
                continue
            if len(parts) == 2 and all(p and not _explicit_range(p) for p in parts):
                ranges.append(IovaRange.parse(chunk))  # "START, LAST"
                continue
            for p in parts:
                if not p:
                    raise ValueError(f"empty range in {_cut(repr(chunk.strip()))}; separate ranges by one ',' or ';'")
                if len(parts) > 1 and not _explicit_range(p):
                    raise ValueError(
                        f"{_cut(repr(p))} in {_cut(repr(chunk.strip()))} is ambiguous in a list of ranges; "
                        f"write each as 'START..LAST', 'START+SIZE' or '[START, LAST]'"
                    )
                ranges.append(IovaRange.parse(p))
        return cls(ranges)

    # -- container protocol ----------------------------------------------------------
    def __iter__(self) -> Iterator[IovaRange]:
        return iter(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)

    def __getitem__(self, i: int) -> IovaRange:
        return self._ranges[i]

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RangeSet):
            return self._ranges == other._ranges
        if isinstance(other, (list, tuple)):
            try:
                return self._ranges == RangeSet(other)._ranges
            except (TypeError, ValueError):
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._ranges)

    @property
    def ranges(self) -> tuple[IovaRange, ...]:
        return self._ranges

    @property
    def size(self) -> int:
        """Total bytes covered."""
        return sum(r.size for r in self._ranges)

    def find(self, address: int) -> IovaRange | None:
        """The range holding ``address``, or None."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and self._ranges[i].last >= address:
            return self._ranges[i]
        return None

    def __contains__(self, item: object) -> bool:
        if isinstance(item, IovaRange):
            r = self.find(item.start)
            return r is not None and item.last <= r.last
        if isinstance(item, int) and not isinstance(item, bool):
            return self.find(item) is not None
        return False

    def overlapping(self, rng: IovaRange) -> list[IovaRange]:
        """Every member range that shares an address with ``rng``, in order."""
        i = max(bisect.bisect_right(self._starts, rng.start) - 1, 0)
        out = []
        for r in self._ranges[i:]:
            if r.start > rng.last:
                break
            if r.last >= rng.start:
                out.append(r)
        return out

    def overlaps(self, rng: IovaRange) -> bool:
        return bool(self.overlapping(rng))

    # -- algebra ---------------------------------------------------------------------
    def union(self, *others: Iterable[RangeLike]) -> RangeSet:
        items = list(self._ranges)
        for o in others:
            items.extend(o if isinstance(o, RangeSet) else RangeSet(o))
        return RangeSet(items)

    def intersection(self, other: Iterable[RangeLike]) -> RangeSet:
        other = other if isinstance(other, RangeSet) else RangeSet(other)
        out, i, j = [], 0, 0
        a, b = self._ranges, other._ranges
        while i < len(a) and j < len(b):
            lo, hi = max(a[i].start, b[j].start), min(a[i].last, b[j].last)
            if lo <= hi:
                out.append(IovaRange(lo, hi))
            if a[i].last < b[j].last:
                i += 1
            else:
                j += 1
        return RangeSet(out)

    def complement(self, within: RangeLike | RangeSet | None = None) -> RangeSet:
        """The addresses of ``within`` (default: the whole 64-bit space) not in this set."""
        if within is None:
            within = RangeSet.full()
        elif not isinstance(within, RangeSet):
            within = RangeSet([_as_range(within)])
        return within.difference(self)

    def difference(self, other: Iterable[RangeLike]) -> RangeSet:
        other = other if isinstance(other, RangeSet) else RangeSet(other)
        out: list[IovaRange] = []
        j = 0
        b = other._ranges
        for r in self._ranges:
            cur = r.start
            while j < len(b) and b[j].last < cur:
                j += 1
            k = j
            while k < len(b) and b[k].start <= r.last and cur <= r.last:
                if b[k].start > cur:
                    out.append(IovaRange(cur, b[k].start - 1))
                if b[k].last >= r.last:
                    cur = None
                    break
                cur = b[k].last + 1
                k += 1
            if cur is not None and cur <= r.last:
                out.append(IovaRange(cur, r.last))
        return RangeSet(out)

    __or__ = union
    __and__ = intersection
    __sub__ = difference

    def __invert__(self) -> RangeSet:
        return self.complement()

    # -- presentation ----------------------------------------------------------------
    def __str__(self) -> str:
        if not self._ranges:
            return "{}"
        return "{" + ", ".join(str(r) for r in self._ranges) + "}"

    def __repr__(self) -> str:
        inner = ", ".join(f"({r.start:#x}, {r.last:#x})" for r in self._ranges)
        return f"RangeSet([{inner}])"

    def to_dataframe(self):
        """One row per range: start, last, size (pandas ``UInt64``; size of the full space is 2^64
        and does not fit, so ``size`` is a Python-int ``object`` column only in that case)."""
        from iommu_lab.core.frames import addr_frame

        return addr_frame(
            {
                "start": [r.start for r in self._ranges],
                "last": [r.last for r in self._ranges],
                "size": [r.size for r in self._ranges],
            }
        )

    plot = display.plot

    _repr_html_ = display.html
