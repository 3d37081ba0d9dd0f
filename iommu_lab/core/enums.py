"""Parsing an enum member from the text a user or a data file gives (one rule for every enum).

A member's value is its spelling ("VT-d", "lazy", "sw-msi"); text matches it with surrounding
spaces and letter case ignored (and, where the enum says so, ``_`` read as ``-``). A member
passes through unchanged. Anything else is an error that names what was being parsed, the value
given and every value allowed.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from iommu_lab.core.errors import cut as _cut

E = TypeVar("E", bound=enum.Enum)


def member_of(
    cls: type[E],
    value: object,
    what: str,
    *,
    underscores: bool = False,
    non_text: type[Exception] = ValueError,
) -> E:
    """The member of ``cls`` that ``value`` names.

    ``underscores=True`` also accepts ``_`` for ``-`` (Linux spells reserved-region types both
    ways). ``non_text`` is the exception for a value that is neither a member nor a string
    (ValueError where a data-file loader reports it with its file and key; TypeError for API
    arguments).
    """
    if isinstance(value, cls):
        return value
    allowed = ", ".join(repr(m.value) for m in cls)
    if not isinstance(value, str):
        raise non_text(f"{what} must be one of {allowed}, got {type(value).__name__} {_cut(repr(value))}")
    key = value.strip().lower()
    if underscores:
        key = key.replace("_", "-")
    for m in cls:
        if str(m.value).lower() == key:
            return m
    raise ValueError(f"unknown {what} {_cut(repr(value))}; allowed: {allowed}")
