"""Line-numbered parse errors, bounded file reads and the number readers shared by the importers.

Every importer turns a kernel artefact into models line by line. A bad line raises
``ParseError`` naming the source, the line number, the text and what was expected — never a
traceback from deep inside, and never a half-built model (importers build into locals and
return only when the whole input has been read).

Files are opened, checked to be regular files of a bounded size, and only then read
(:func:`read_bounded`): a symlink to ``/dev/zero`` or a FIFO is refused before a byte is read.
Numbers are read with ASCII-only patterns: Python's ``int()`` would also take ``1_000`` and
non-ASCII digits, which no kernel prints.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

__all__ = [
    "ParseError",
    "Field",
    "read_fields",
    "hex_u64",
    "hex_digits",
    "dec_int",
    "read_bounded",
    "decode_text",
    "text_lines",
    "MAX_LINE",
]

MAX_LINE = 4096

_HEX_0X = re.compile(r"0[xX]([0-9a-fA-F]{1,16})\Z")
_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_DEC = re.compile(r"-?[0-9]{1,20}\Z")
#: A shell prompt line a user pasted with the file: ``$ cat ...``, ``# cat ...``,
#: ``user@host:~$ sudo cat ...``.
_PROMPT = re.compile(r"^\s*(?:[\w.-]+@[\w.-]+(?::[^\s$#]*)?\s*)?[$#]\s+\S")


class ParseError(ValueError):
    """A line of an imported file does not have the documented form."""

    def __init__(self, source: str, line: int, text: str, expected: str) -> None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        # Line 0 is the file as a whole (its kind, size or encoding): there is no line to quote.
        where = f"{source}: expected {expected}" if line == 0 and not text else (
            f"{source}:{line}: {expected}; got {shown!r}")
        super().__init__(where)
        self.source, self.line, self.text, self.expected = source, line, text, expected


@dataclass(frozen=True)
class Field:
    """One whitespace-separated field: its name, a converter, and what it should look like."""

    name: str
    convert: Callable[[str], object]
    expected: str


def hex_u64(token: str) -> int:
    """A kernel-printed hex number (``0x%016llx``): ``0x`` then 1..16 ASCII hex digits."""
    m = _HEX_0X.match(token)
    if m is None:
        raise ValueError(token)
    return int(m.group(1), 16)


def hex_digits(token: str, max_digits: int = 16) -> int:
    """Hex digits printed without ``0x`` (``%016llx``, ``%08x``): 1..``max_digits`` ASCII digits."""
    if not 1 <= len(token) <= max_digits or _HEX.match(token) is None:
        raise ValueError(token)
    return int(token, 16)


def dec_int(token: str, lo: int, hi: int) -> int:
    """A decimal the kernel printed with ``%d``/``%u``: ASCII digits, an optional minus, in range."""
    if _DEC.match(token) is None:
        raise ValueError(token)
    v = int(token, 10)
    if not lo <= v <= hi:
        raise ValueError(token)
    return v


def read_bounded(path: Union[str, os.PathLike], limit: int) -> bytes:
    """Read at most ``limit`` bytes of a regular file, checked before reading.

    The file is opened without blocking (a FIFO must not hang the open), ``fstat``-ed, and
    refused unless it is a regular file; a file larger than ``limit`` is refused by its size,
    and, because debugfs and sysfs files report a size of 0 or 4096 whatever they hold, the read
    itself stops at ``limit + 1`` bytes and refuses a file that reaches it.

    Raises
    ------
    ParseError
        Naming the path (line 0) and what is allowed.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ParseError(str(p), 0, "", f"a readable file ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = "a directory" if stat.S_ISDIR(st.st_mode) else "a device, FIFO or socket"
            raise ParseError(str(p), 0, "", f"a regular file (this is {what})")
        if st.st_size > limit:
            raise ParseError(str(p), 0, "", f"a file of at most {limit} bytes (this one has {st.st_size})")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise ParseError(str(p), 0, "", f"a file of at most {limit} bytes")
        return b"".join(chunks)
    except OSError as e:
        raise ParseError(str(p), 0, "", f"a readable file ({e.strerror})") from None
    finally:
        os.close(fd)


def decode_text(text: Union[str, bytes], source: str, limit: int) -> str:
    """``text`` as a str of at most ``limit`` characters, or a ParseError (binary, too large)."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > limit:
            raise ParseError(source, 0, "", f"a file of at most {limit} bytes")
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError as e:
            line = bytes(text[: e.start]).count(b"\n") + 1
            raise ParseError(source, line, repr(bytes(text[e.start:e.start + 20])),
                             "ASCII text (the file looks binary)") from None
    if not isinstance(text, str):
        raise TypeError(f"{source}: expected the file's text as str or bytes, got {type(text).__name__}")
    if len(text) > limit:
        raise ParseError(source, text.count("\n", 0, limit) + 1, "...", f"a file of at most {limit} bytes")
    return text


def text_lines(text: str, source: str, *, prompts: bool = True) -> list[tuple[int, str]]:
    """The non-blank lines of a pasted file as ``(line number, text)``, CR stripped.

    Shell prompt lines (``$ cat ...``) are dropped when ``prompts``; every kept line is checked
    to be at most :data:`MAX_LINE` printable characters (tabs allowed).
    """
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if len(line) > MAX_LINE:
            raise ParseError(source, number, line, f"a line of at most {MAX_LINE} characters")
        if not line.replace("\t", " ").isprintable():
            raise ParseError(source, number, line, "printable text (the file looks binary)")
        if not line.strip():
            continue
        if prompts and _PROMPT.match(line):
            continue
        out.append((number, line))
    return out


def read_fields(fields: Sequence[Field], text: str, source: str, line: int) -> dict[str, object]:
    """Split ``text`` into exactly ``len(fields)`` fields and convert each, or raise ParseError."""
    if len(text) > MAX_LINE:
        raise ParseError(source, line, text, f"a line of at most {MAX_LINE} characters")
    if not text.replace("\t", " ").isprintable():
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

