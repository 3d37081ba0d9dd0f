"""A claim a tutorial makes, checked where it is made: ``check("24 references", refs == 24, refs=refs)``.

A tutorial's prose says things like "a cold nested walk makes 24 references". The cell that
computes the number states the same sentence through :func:`check`, which prints it with a tick
and the values it rests on, and stops the notebook with :class:`ClaimFailed` the moment the
model no longer agrees. So the prose cannot drift from the model without a test failing, and a
reader sees which value backs which sentence::

    >>> check("a 4-level walk reads 4 entries", 4 == 4, reads=4)
    ✓ a 4-level walk reads 4 entries (reads=4)
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["ClaimFailed", "check"]


class ClaimFailed(AssertionError):
    """A claim stopped being true; the message names it and the values it was checked on.

    Attributes
    ----------
    claim : str
        The sentence that no longer holds.
    shown : dict
        The values passed to :func:`check` beside it.
    """

    def __init__(self, claim: str, shown: dict[str, Any]):
        self.claim = claim
        self.shown = dict(shown)
        values = _values(shown)
        super().__init__(f"claim no longer holds: {claim}" + (f" ({values})" if values else ""))


def _value(v: Any) -> str:
    # Enough digits to compare with the prose, and thousands separated as the prose writes them.
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1e15 else f"{v:.6g}"
    text = str(v)
    return text if len(text) <= 120 else text[:117] + "..."


def _values(shown: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in shown.items())


def check(claim: str, holds: bool | Callable[[], bool], **shown: Any) -> None:
    """State ``claim``, print it with a tick if ``holds``, raise :class:`ClaimFailed` if not.

    Parameters
    ----------
    claim : str
        The sentence the prose says, as the reader should read it.
    holds : bool or callable
        Whether it is true; a callable is called with no arguments (for a test that would raise
        on a wrong model, e.g. a lookup that is not there). numpy booleans count as booleans.
    **shown
        The values the claim rests on, printed beside it (``refs=24``).

    Raises
    ------
    ClaimFailed
        If ``holds`` is false, naming the claim and the values.
    TypeError
        If ``claim`` is not a non-empty string, or ``holds`` is not a boolean (a claim is a yes
        or no: ``check("...", len(x))`` would hide what was meant).
    """
    if not isinstance(claim, str) or not claim.strip():
        raise TypeError(f"check: the claim must be a sentence (a non-empty str), got {claim!r:.60}")
    value = holds() if callable(holds) else holds
    # numpy's bool_ is not a bool subclass; accept it by its type's name to keep core free of numpy.
    if not isinstance(value, bool) and type(value).__name__ not in ("bool_", "bool"):
        raise TypeError(
            f"check({claim!r:.60}): holds must be True or False (or a callable returning one), "
            f"got {type(value).__name__} {value!r:.40}; compare explicitly, e.g. n == 24"
        )
    if not bool(value):
        raise ClaimFailed(claim, shown)
    values = _values(shown)
    print(f"✓ {claim}" + (f" ({values})" if values else ""))
