"""The one permission type: what an access may do, as the IOMMU API's protection bits.

``READ`` and ``WRITE`` are bit for bit the kernel's ``IOMMU_READ`` (1) and ``IOMMU_WRITE`` (2)
(include/linux/iommu.h), which iommufd derives from ``IOMMU_IOAS_MAP_READABLE|WRITEABLE``.
``EXEC`` is the absence of ``IOMMU_NOEXEC``; ``USER`` is x86 U/S, RISC-V U and ARM AP[1] (EL0).
An IOAS area uses only READ and WRITE; a page-table entry may carry all four, as its format
defines them.
"""

from __future__ import annotations

import enum

from iommu_lab.core.errors import cut as _cut


class Perm(enum.IntFlag):
    """Access permissions (``IOMMU_READ``/``IOMMU_WRITE``, execute, user)."""

    NONE = 0
    READ = 1
    WRITE = 2
    RW = 3
    EXEC = 4
    USER = 8

    @classmethod
    def parse(cls, value: "str | int | Perm") -> "Perm":
        """Read ``"rw"``, ``"r"``, ``"w"``, ``"rwx"``, ``"r-"``, ``""``, a ``Perm`` or an int of these bits.

        Raises
        ------
        TypeError
            For anything but a string, an int or a ``Perm`` (a ``bool`` included).
        ValueError
            For an unknown letter, a negative int or bits outside READ|WRITE|EXEC|USER.
        """
        if isinstance(value, Perm):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(
                f"prot must be a string such as 'rw', an int of IOMMU_READ|IOMMU_WRITE bits or a Perm, "
                f"got {type(value).__name__} {_cut(repr(value))}"
            )
        if isinstance(value, int):
            if value < 0 or value & ~0xF:
                raise ValueError(f"permission {value:#x} has bits outside READ|WRITE|EXEC|USER (0xf)")
            return cls(value)
        out = cls.NONE
        for ch in value.lower():
            letter = _LETTERS.get(ch)
            if letter is None:
                if ch in " -|":
                    continue
                raise ValueError(f"prot {_cut(repr(value))} has unknown letter {ch!r}; use r, w, x (and u for user)")
            out |= letter
        return out

    @property
    def text(self) -> str:
        """The read/write part as two letters: ``"rw"``, ``"r-"``, ``"-w"`` or ``"--"``."""
        return ("r" if self & Perm.READ else "-") + ("w" if self & Perm.WRITE else "-")

    @property
    def letters(self) -> str:
        """The form ``parse`` reads back: ``"rw"``, ``"r"``, ``"w"``, ``""`` (plus ``x``, ``u``)."""
        return "".join(c for c, p in _ORDER if self & p)

    def __str__(self) -> str:
        return "".join(c if self & p else "-" for c, p in _ORDER[:3]) + ("u" if self & Perm.USER else "")


_LETTERS = {"r": Perm.READ, "w": Perm.WRITE, "x": Perm.EXEC, "u": Perm.USER}
_ORDER = (("r", Perm.READ), ("w", Perm.WRITE), ("x", Perm.EXEC), ("u", Perm.USER))
