"""Errors that carry the errno the Linux kernel would return for the same mistake.

Every model operation that the kernel can refuse raises ``IommuError`` with ``.errno`` set to
the kernel's errno *name* (``"EINVAL"``, ``"ENOENT"``, ...) and a message that names the
offending value, the rule it broke and what is allowed, e.g.::

    EINVAL: map [0x3fff_f000, 0x4000_0fff] crosses the end of window [0x0, 0x3fff_ffff]; ...

Wrong *types* (a float where an address belongs) stay ``TypeError``, as Python code expects.
"""

from __future__ import annotations

import errno as _errno

__all__ = ["IommuError", "ERRNOS", "UnsupportedError", "cut"]

def cut(text: str, limit: int = 80) -> str:
    """``text`` cut to at most ``limit`` characters for an error message (``…`` marks the cut).

    Every message that quotes a user's value goes through this, so a 100,000-character value
    makes a readable one-line error, not a page of it: ``f"... {cut(repr(value))} ..."``.
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: The errno names the models use, with what each means in iommufd/VFIO terms.
ERRNOS: dict[str, str] = {
    "EINVAL": "invalid argument (misaligned, reserved, zero length, bad flag combination)",
    "ENOENT": "no such mapping, or a range that cuts an area",
    "EEXIST": "overlaps an existing mapping",
    "ENOSPC": "no free IOVA hole fits, or the mapping-count limit is reached",
    "EOVERFLOW": "the value or start + length wraps past 2^64",
    "EBUSY": "the object is in use",
    "EADDRINUSE": "a reservation conflicts with a mapping or an allowed range",
    "EPERM": "write requested on read-only pages",
    "EMSGSIZE": "the answer does not fit the caller's buffer",
    "EOPNOTSUPP": "the hardware or mode does not support the operation",
    "EFAULT": "a user address does not resolve to memory",
    "ENODEV": "no device or IOAS is set up for the call",
    "ENOMEM": "out of memory for page-table pages",
    "ENOTTY": "the kernel has no such ioctl (the release predates it)",
}


class IommuError(Exception):
    """An operation the kernel would refuse, with the kernel's errno name.

    Parameters
    ----------
    errno : str
        One of ``ERRNOS`` (e.g. ``"EINVAL"``).
    message : str
        What value broke which rule, and what is allowed.

    Attributes
    ----------
    errno : str
        The errno name; ``code`` is its number on this machine (e.g. 22 for EINVAL).
    """

    def __init__(self, errno: str, message: str) -> None:
        if errno not in ERRNOS:
            raise ValueError(f"unknown errno name {errno!r}; known: {', '.join(ERRNOS)}")
        super().__init__(f"{errno}: {message}")
        self.errno = errno
        self.message = message

    @property
    def code(self) -> int:
        return getattr(_errno, self.errno)

    def __reduce__(self):
        return (type(self), (self.errno, self.message))


class UnsupportedError(IommuError):
    """The platform or mode lacks the capability (EOPNOTSUPP), e.g. nesting on POWER."""

    def __init__(self, message: str) -> None:
        super().__init__("EOPNOTSUPP", message)

    def __reduce__(self):
        return (type(self), (self.message,))
