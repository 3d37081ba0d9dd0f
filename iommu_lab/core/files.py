"""Reading a user's file safely: open, check it is a bounded regular file, then read.

Every importer (platform and cache TOML, scenario files, sysfs and debugfs dumps, trace CSV and
Parquet) reads through here, so that no file can make the process block or fill memory before
it is refused:

- the file is opened with ``O_NONBLOCK`` (a FIFO cannot block the open) and checked with
  ``fstat`` on the open descriptor (no race between the check and the read): it must be a
  *regular* file, so a directory, a FIFO, a socket, a device or a symlink to ``/dev/zero`` is
  refused before a byte is read;
- its size must be at most ``limit`` bytes, and at most ``limit + 1`` bytes are ever read (a
  file that grows after the check is still refused);
- text is decoded as UTF-8 with an error that names the line and byte of the first bad byte (a
  NUL byte reads as "binary"); tabs and other control characters are text;
- TOML is refused when it nests deeper than ``max_depth`` *before* ``tomllib`` sees it
  (``tomllib`` parses arrays and inline tables recursively and escapes as ``RecursionError`` at
  a few thousand levels), and a ``tomllib`` error becomes ours with the file and line.

Every refusal is a :class:`FileInputError`, a ``ValueError`` carrying ``path`` and ``line``, so
``except ValueError`` keeps working and a caller can re-raise it as its own error type::

    try:
        doc = load_toml(path, what="platform file")
    except FileInputError as e:
        raise IommuError("EINVAL", str(e)) from None
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tomllib
from typing import IO, Iterator, Union

from iommu_lab.core.errors import cut

__all__ = [
    "FileInputError",
    "TEXT_LIMIT",
    "TOML_LIMIT",
    "TOML_MAX_DEPTH",
    "open_bounded",
    "read_bytes",
    "read_text",
    "parse_toml",
    "load_toml",
]

#: Default size bound for a text file (a sysfs/debugfs dump, a CSV given without a limit).
TEXT_LIMIT = 64 << 20
#: Default size bound for a TOML description (platform, cache, scenario): far above any real one.
TOML_LIMIT = 4 << 20
#: Default nesting bound for TOML (arrays and inline tables inside one another, and table paths).
TOML_MAX_DEPTH = 32

PathLike = Union[str, "os.PathLike[str]"]


class FileInputError(ValueError):
    """A file that cannot be read as asked: missing, not a regular file, too big, binary, malformed.

    The message reads ``"<what> <path>[:<line>]: <reason>"``; ``path`` and ``line`` (1-based,
    or None) are kept as attributes so a caller can re-raise with its own type.

    Parameters
    ----------
    what : str
        What the file was meant to be ("platform file", "trace CSV").
    path : str or PathLike
        The file as the user named it.
    reason : str
        What is wrong and what is allowed.
    line : int, optional
        The 1-based line the problem is on.
    """

    def __init__(self, what: str, path: PathLike, reason: str, line: int | None = None) -> None:
        self.what = what
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = _cut(self.path) + (f":{line}" if line is not None else "")
        super().__init__(f"{what} {where}: {reason}")

    def __reduce__(self):
        return (type(self), (self.what, self.path, self.reason, self.line))


_cut = cut


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise TypeError(f"limit must be a non-negative int number of bytes, got {limit!r}")
    return limit


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@contextlib.contextmanager
def open_bounded(path: PathLike, *, what: str = "file", limit: int = TEXT_LIMIT) -> Iterator[IO[bytes]]:
    """Open ``path`` for binary reading once it is known to be a regular file of at most ``limit`` bytes.

    A context manager yielding the open binary file at offset 0, for readers that take a file
    object (pandas, pyarrow). The check is made on the open descriptor, so a symlink is judged
    by what it points at (a link to ``/dev/zero`` is a character device and is refused).

    Raises
    ------
    FileInputError
        Missing, unreadable, not a regular file, or larger than ``limit``.
    TypeError
        When ``path`` is not a string or path.
    """
    limit = _check_limit(limit)
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path (str or pathlib.Path), got {type(path).__name__} {_cut(repr(path))}")
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileInputError(what, path, "no such file") from None
    except IsADirectoryError:
        raise FileInputError(what, path, "is a directory; give a regular file") from None
    except OSError as e:
        raise FileInputError(what, path, f"cannot open ({e.strerror or e})") from None
    except ValueError as e:  # an embedded NUL in the path
        raise FileInputError(what, repr(os.fspath(path)), f"not a usable path ({e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
            raise FileInputError(what, path, f"is {kind}; give a regular file")
        if st.st_size > limit:
            raise FileInputError(
                what, path, f"is {_size(st.st_size)}, larger than the {_size(limit)} allowed for a {what}"
            )
        # Back to blocking reads for the regular file (O_NONBLOCK only guarded the open).
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def read_bytes(path: PathLike, *, what: str = "file", limit: int = TEXT_LIMIT) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (see :func:`open_bounded`)."""
    with open_bounded(path, what=what, limit=limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        # It grew between the check and the read.
        raise FileInputError(what, path, f"is larger than the {_size(limit)} allowed for a {what}")
    return data


def decode_text(data: bytes, *, what: str = "file", path: PathLike = "<text>") -> str:
    """``data`` as UTF-8 text, or an error naming the line of the first binary or non-UTF-8 byte."""
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = e.start if nul < 0 else min(nul, e.start)
        line = data.count(b"\n", 0, bad) + 1
        if bad == nul:
            raise FileInputError(what, path, "contains a NUL byte: the file is binary, not text", line) from None
        raise FileInputError(
            what, path, f"byte {data[bad]:#04x} at offset {bad} is not UTF-8; save the file as UTF-8 text", line
        ) from None
    if nul >= 0:
        raise FileInputError(
            what, path, "contains a NUL byte: the file is binary, not text", data.count(b"\n", 0, nul) + 1
        )
    return text.removeprefix("\ufeff")


def read_text(path: PathLike, *, what: str = "file", limit: int = TEXT_LIMIT) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes.

    Raises
    ------
    FileInputError
        Missing, not a regular file, too big, binary (a NUL byte) or not UTF-8 (naming the line).
    """
    return decode_text(read_bytes(path, what=what, limit=limit), what=what, path=path)


# -- TOML ---------------------------------------------------------------------------------------

_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)|\(at end of document\)")


def toml_depth(text: str, max_depth: int) -> tuple[int, int] | None:
    """The first place ``text`` nests arrays/inline tables deeper than ``max_depth``: (line, depth).

    A linear scan that skips strings and comments, so brackets inside them do not count (a
    ``[[header]]`` counts two). Dotted keys nest without recursion in ``tomllib`` and are
    bounded on the parsed document instead. None when the text stays within the bound.
    """
    depth = 0
    i, n = 0, len(text)
    while True:
        m = _TOML_TOKEN.search(text, i)
        if m is None:
            return None
        i, c = m.start(), m.group()
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in "\"'":
            triple = text.startswith(c * 3, i)
            quote = c * 3 if triple else c
            end = _string_end(text, i + len(quote), quote)
            i = end
            continue
        if c in "[{":
            depth += 1
            if depth > max_depth:
                return text.count("\n", 0, i) + 1, depth
        else:
            depth = max(depth - 1, 0)
        i += 1


_TOML_TOKEN = re.compile(r"[#\"'\[\]{}]")


def _string_end(text: str, j: int, quote: str) -> int:
    """The index just past a TOML string's closing quote (or its line end when unterminated)."""
    basic = quote[0] == '"'
    triple = len(quote) == 3
    stop = re.compile(('\\\\.|' if basic else "") + re.escape(quote) + ("" if triple else "|\n"), re.S)
    while True:
        m = stop.search(text, j)
        if m is None:
            return len(text)
        if m.group().startswith("\\") and basic:
            j = m.end()
            continue
        return m.end()


def _doc_depth(doc: object, max_depth: int) -> int | None:
    """The depth of a parsed document when it exceeds ``max_depth`` (iterative, no recursion)."""
    stack = [(doc, 0)]
    while stack:
        node, d = stack.pop()
        if d > max_depth:
            return d
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return None


def parse_toml(
    text: str, *, what: str = "TOML file", path: PathLike = "<text>", max_depth: int = TOML_MAX_DEPTH
) -> dict:
    """Parse TOML ``text`` with ``tomllib`` once its nesting is known to be at most ``max_depth``.

    Raises
    ------
    FileInputError
        Nested too deep (checked before ``tomllib`` runs), or malformed (the file and line of
        ``tomllib``'s complaint).
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} text must be a str, got {type(text).__name__}")
    deep = toml_depth(text, max_depth)
    if deep is not None:
        raise FileInputError(
            what, path, f"nests {deep[1]}+ levels deep; at most {max_depth} levels of tables and arrays are allowed",
            deep[0],
        )
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_LINE.search(msg)
        line = int(m.group(1)) if m and m.group(1) else None
        reason = _TOML_LINE.sub("", msg).strip()
        raise FileInputError(what, path, f"not valid TOML: {_cut(reason, 160)}", line) from None
    except (ValueError, RecursionError) as e:
        # tomllib passes int() limits through (a 5,000-digit integer) as a plain ValueError.
        raise FileInputError(what, path, f"not valid TOML: {_cut(str(e), 160)}") from None
    deep_doc = _doc_depth(doc, max_depth)
    if deep_doc is not None:
        raise FileInputError(what, path, f"nests {deep_doc} levels deep; at most {max_depth} levels are allowed")
    return doc


def load_toml(
    path: PathLike, *, what: str = "TOML file", limit: int = TOML_LIMIT, max_depth: int = TOML_MAX_DEPTH
) -> dict:
    """Read a TOML file: a bounded regular file (:func:`read_text`), then :func:`parse_toml`.

    Parameters
    ----------
    path : str or PathLike
        The file.
    what : str
        What it is meant to be, for messages ("platform file", "scenario file").
    limit : int
        Largest size in bytes (default 4 MiB).
    max_depth : int
        Deepest nesting of tables and arrays (default 32).

    Raises
    ------
    FileInputError
        Missing, not a regular file, too big, binary, not UTF-8, nested too deep or malformed,
        naming the file and, where there is one, the line.
    """
    text = read_text(path, what=what, limit=limit)
    return parse_toml(text, what=what, path=path, max_depth=max_depth)
