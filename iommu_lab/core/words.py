"""Counts written as a person writes them: "1 area", "0 areas", "3 vDEVICEs".

Figures and tables print counts beside nouns; "area(s)" reads as machine output, so every
view that counts something goes through :func:`plural`.
"""

from __future__ import annotations

__all__ = ["plural"]

_IRREGULAR = {"entry": "entries", "directory": "directories", "index": "indices", "is": "are"}


def plural(n: int, noun: str, many: str | None = None, *, sep: str = ",") -> str:
    """``n`` and ``noun``, the noun in the plural unless ``n`` is 1 (``plural(2, "range")``).

    ``many`` gives an irregular plural; otherwise a known irregular word or ``noun + "s"``.
    Counts of 1,000 and more are grouped with ``sep`` (a comma), as the tables print them.
    """
    n = int(n)
    word = noun if n == 1 else (many or _IRREGULAR.get(noun) or noun + "s")
    return f"{n:,}".replace(",", sep) + f" {word}"
