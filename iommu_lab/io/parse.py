"""Line-numbered parse errors and a tiny table-driven field reader shared by the importers.

Every importer turns a kernel artefact into models line by line. A bad line raises
``ParseError`` naming the source, the line number, the text and what was expected — never a
traceback from deep inside, and never a half-built model (importers build into locals and
return only when the whole input has been read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from iommu_lab.core.ranges import U64_MAX

__all__ = ["ParseError", "Field", "read_fields", "hex_u64"]

MAX_LINE = 4096


class ParseError(ValueError):
    """A line of an imported file does not have the documented form."""

    def __init__(self, source: str, line: int, text: str, expected: str) -> None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"{source}:{line}: {expected}; got {shown!r}")
        self.source, self.line, self.text, self.expected = source, line, text, expected


@dataclass(frozen=True)
class Field:
    """One whitespace-separated field: its name, a converter, and what it should look like."""

    name: str
    convert: Callable[[str], object]
    expected: str


def hex_u64(token: str) -> int:
    """A kernel-printed hex number (``0x%016llx``): ``0x`` then 1..16 hex digits."""
    if not token.lower().startswith("0x") or not 3 <= len(token) <= 18:
        raise ValueError
    value = int(token, 16)
    if value > U64_MAX:
        raise ValueError
    return value


def read_fields(fields: Sequence[Field], text: str, source: str, line: int) -> dict[str, object]:
    """Split ``text`` into exactly ``len(fields)`` fields and convert each, or raise ParseError."""
    if len(text) > MAX_LINE:
        raise ParseError(source, line, text, f"a line of at most {MAX_LINE} characters")
    if not text.isprintable():
        raise ParseError(source, line, text, "printable text (the file looks binary)")
    tokens = text.split()
    shape = " ".join(f.name.upper() for f in fields)
    if len(tokens) != len(fields):
        raise ParseError(source, line, text, f"{len(fields)} fields '{shape}'")
    out = {}
    for f, tok in zip(fields, tokens):
        try:
            out[f.name] = f.convert(tok)
        except (ValueError, TypeError):
            raise ParseError(source, line, text, f"{f.name} as {f.expected} (line form '{shape}')") from None
    return out
