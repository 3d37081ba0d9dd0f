"""Building blocks every explorer shares: hex-aware inputs, inline errors and figure views.

Nothing here knows an IOMMU rule. An :class:`AddressInput` reads text with
:func:`iommu_lab.core.ranges.parse_address` (or ``parse_size`` / ``RangeSet.parse``) and says what it
read; an :class:`ErrorView` shows an :class:`~iommu_lab.core.errors.IommuError` as the kernel would
report it (errno name, then the model's message); a :class:`FigureView` shows a
``matplotlib.figure.Figure`` as PNG bytes in an ``ipywidgets.Image``, so there is one display
path (no ipympl canvas, no double display) and tests can compare bytes.

All widgets here are ipywidgets 8 widgets: they work in plain pytest (``comm`` gives a dummy
comm without a kernel) and are tested by reading their traits and ``get_state()``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ipywidgets as W
import traitlets

from iommu_lab.core.errors import IommuError
from iommu_lab.core.ranges import RangeSet, fmt_addr, fmt_size, parse_address, parse_size
from iommu_lab.render.html import CSS, esc, table_html

__all__ = [
    "PNG_DPI",
    "AddressInput",
    "ErrorView",
    "FigureView",
    "Outcome",
    "action_button",
    "close_tree",
    "frame_html",
    "not_replayed",
    "reporting",
    "rows_html",
]

#: Resolution of figures shown in a notebook: twice the 96 px/in they are displayed at
#: (crisp on HiDPI screens); the view's CSS width is the figure's width at 96 px/in.
PNG_DPI = 192

_KINDS = ("address", "size", "ranges")


class AddressInput(W.Text):
    """A text box for an address, a size or a set of ranges, written the way engineers write them.

    Accepts ``0x1000``, ``0x1_0000``, ``4096``, ``4K``, ``2MiB`` (addresses and sizes) or
    ``0x0..0xffff, 0x10_0000+1M`` (ranges), parsed by :mod:`iommu_lab.core.ranges`. The text is read
    when the user presses Enter or leaves the box (``continuous_update=False``), and
    :attr:`message` echoes what was read (``= 0x1000``) or why it could not be read.

    Attributes
    ----------
    value: str (default: "")
        The text as typed (synced with the browser).
    kind: str (default: "address")
        ``"address"``, ``"size"`` or ``"ranges"``: which parser reads the text.
    label: str (default: "address")
        The name used in error messages (``"cannot read iova 'zz' ..."``).
    optional: bool (default: False)
        Blank text is allowed and reads as ``None`` (e.g. "let the allocator pick the IOVA").
    parsed: int, RangeSet or None (default: None)
        What the text reads as; ``None`` when blank or invalid. Python side only.
    problem: str (default: "")
        Why the text cannot be read; ``""`` when it can. Python side only.
    message: ipywidgets.HTML
        The inline echo or validation message; place it next to the box (see :meth:`row`).
    """

    kind = traitlets.Enum(_KINDS, default_value="address")
    label = traitlets.Unicode("address")
    optional = traitlets.Bool(False)
    parsed = traitlets.Any(None)
    problem = traitlets.Unicode("")

    def __init__(
        self,
        value: str = "",
        *,
        kind: str = "address",
        label: str | None = None,
        optional: bool = False,
        css_class: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("continuous_update", False)
        kwargs.setdefault("layout", W.Layout(width="16em"))
        self.message = W.HTML(layout=W.Layout(margin="0 12px 0 6px", min_width="10em"))
        self.message.add_class("il-input-message")
        super().__init__(value=value, kind=kind, label=label or kind, optional=optional, **kwargs)
        self.add_class("il-address-input")
        if css_class:
            self.add_class(css_class)
        self._validate()

    @traitlets.observe("value", "kind", "optional")
    def _on_value(self, change: dict) -> None:
        if hasattr(self, "message"):
            self._validate()

    def _read(self, text: str) -> Any:
        if self.kind == "address":
            return parse_address(text, self.label)
        if self.kind == "size":
            try:
                return parse_size(text)
            except ValueError as exc:
                raise ValueError(f"{self.label}: {exc}") from None
        rs = RangeSet.parse(text)
        if not rs:
            raise ValueError(f"{self.label}: no range in {text!r}; write e.g. '0x0..0xffff_ffff'")
        return rs

    def _validate(self) -> None:
        text = self.value.strip()
        if not text:
            self.parsed, self.problem = None, ""
            self.message.value = ""
            return
        try:
            value = self._read(text)
        except (ValueError, TypeError) as exc:
            self.parsed, self.problem = None, str(exc)
            self.message.value = _span("il-bad", str(exc))
            return
        self.parsed, self.problem = value, ""
        self.message.value = _span("il-muted", "= " + _echo(value, self.kind))

    def parse(self) -> Any:
        """The value the text reads as; ``None`` if blank and optional.

        Raises
        ------
        ValueError
            The text cannot be read, or it is blank and the input is not optional.
        """
        if self.problem:
            raise ValueError(self.problem)
        if self.parsed is None and not self.optional:
            raise ValueError(
                f"enter {_article(self.label)} {self.label} (e.g. {_EXAMPLE[self.kind]!r})"
            )
        return self.parsed

    def row(self, description: str | None = None) -> W.HBox:
        """The box and its message side by side, with an optional leading label."""
        parts: list[W.Widget] = []
        if description:
            parts.append(W.Label(description, layout=W.Layout(width="7em")))
        return W.HBox(parts + [self, self.message])


_EXAMPLE = {"address": "0x1000", "size": "4K", "ranges": "0x0..0xffff_ffff"}


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeio" else "a"


def _echo(value: Any, kind: str) -> str:
    if kind == "address":
        return fmt_addr(value)
    if kind == "size":
        return f"{fmt_addr(value)} ({fmt_size(value)})"
    return ", ".join(str(r) for r in value)


def _span(cls: str, text: str) -> str:
    return f"{CSS}<span class='il-repr'><span class='{cls}'>{esc(text)}</span></span>"


class ErrorView(W.HTML):
    """Shows the last refused operation inline: the errno name, then the model's message.

    Attributes
    ----------
    value: str (default: "")
        The HTML shown; empty when the last operation succeeded.
    errno: str (default: "")
        The errno name of the error shown (``"EINVAL"``), ``""`` for input errors and for none.
    text: str (default: "")
        The error as plain text (``"EINVAL: map ... crosses ..."``), ``""`` when none.
    """

    errno = traitlets.Unicode("")
    text = traitlets.Unicode("")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("il-error")

    def show(self, exc: BaseException, *, note: str = "") -> None:
        """Display ``exc``: an ``IommuError`` with its errno, anything else as an input error.

        ``note`` (plain text) is shown under it, e.g. which of several replayed calls failed.
        """
        if isinstance(exc, IommuError):
            self.errno, head, body = exc.errno, exc.errno, exc.message
        else:
            self.errno, head, body = "", "input", str(exc)
        self.text = f"{head}: {body}" + (f"\n{note}" if note else "")
        extra = f"<div class='il-muted'>{esc(note)}</div>" if note else ""
        self.value = (
            f"{CSS}<div class='il-repr'><span class='il-bad'>{esc(head)}</span>: "
            f"{esc(body)}{extra}</div>"
        )

    def clear(self) -> None:
        """Remove the message (the last operation succeeded)."""
        self.errno = self.text = ""
        self.value = ""


@dataclass
class Outcome:
    """Whether the guarded block of :func:`reporting` ran to the end, and what stopped it."""

    ok: bool = True
    error: BaseException | None = None


@contextmanager
def reporting(error: ErrorView) -> Iterator[Outcome]:
    """Run a block of model calls; show a refusal in ``error`` instead of raising it.

    Catches ``IommuError`` (the model refused: it is unchanged, as every model promises) and
    ``ValueError`` (an input the parsers could not read). Anything else is a bug and propagates.
    """
    outcome = Outcome()
    error.clear()
    try:
        yield outcome
    except (IommuError, ValueError) as exc:
        outcome.ok, outcome.error = False, exc
        error.show(exc)


class FigureView(W.Image):
    """Shows a ``matplotlib.figure.Figure`` as PNG bytes (no ipympl, no pyplot).

    The figure is rendered once and dropped: the view keeps only the bytes, so no figure
    accumulates across redraws.

    Attributes
    ----------
    value: bytes (default: b"")
        The PNG of the last figure shown.
    format: str (default: "png")
    renders: int (default: 0)
        How many figures this view has shown (tests use it to see that a redraw happened).
    """

    renders = traitlets.Int(0)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("format", "png")
        kwargs.setdefault("layout", W.Layout(max_width="100%", height="auto"))
        super().__init__(**kwargs)
        self.add_class("il-figure")

    def show(self, fig: Any, *, dpi: int = PNG_DPI) -> None:
        """Render ``fig`` to PNG and display it."""
        buf = io.BytesIO()
        fig.savefig(
            buf, format="png", dpi=dpi, facecolor=fig.get_facecolor(), metadata={"Software": None}
        )
        self.layout.width = f"{round(fig.get_figwidth() * 96)}px"
        fig.clear()
        self.value = buf.getvalue()
        self.renders += 1

    def clear(self) -> None:
        self.value = b""


def _cell(value: Any, hex_col: bool) -> str:
    if value is None:
        return ""
    try:
        import pandas as pd

        if value is pd.NA or (not isinstance(value, (str, bytes)) and pd.isna(value)):
            return ""
    except (TypeError, ValueError):
        pass
    if hex_col and not isinstance(value, bool):
        try:
            return fmt_addr(int(value))
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def frame_html(df: Any, title: str, *, empty: str = "(none)", max_rows: int = 200) -> str:
    """A themed HTML table of a model's ``to_dataframe()``, address columns in hex.

    Uses the frame's ``attrs["hex_columns"]`` (set by every model's ``to_dataframe``).
    """
    hex_cols = set(df.attrs.get("hex_columns", []))
    headers = [str(c) for c in df.columns]
    rows = [
        [_cell(v, c in hex_cols) for c, v in zip(df.columns, row)]
        for row in df.itertuples(index=False, name=None)
    ]
    if not rows:
        return table_html(title, headers, [], footer=esc(empty), max_rows=max_rows)
    return table_html(title, headers, rows, max_rows=max_rows)


def rows_html(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, footer: str = ""
) -> str:
    """A themed HTML table of already formatted rows."""
    return table_html(title, headers, rows, footer=footer)


def not_replayed(refused: Sequence[tuple[tuple, BaseException | None]], what: str = "map") -> str:
    """Say which replayed ``(iova, address, size, ...)`` calls the new model refused."""
    (iova, addr, size, *_), _exc = refused[0]
    more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
    return f"not replayed: {what} {fmt_addr(iova)} -> {fmt_addr(addr)} ({fmt_size(size)}){more}"


def action_button(description: str, css_class: str, tooltip: str, style: str = "") -> W.Button:
    """A button that runs one model call; ``tooltip`` names the call (``"ioas.map(...)"``)."""
    b = W.Button(
        description=description,
        tooltip=tooltip,
        button_style=style,
        layout=W.Layout(width="auto"),
    )
    b.add_class(css_class)
    return b


def close_tree(widget: W.Widget) -> None:
    """Close ``widget`` and every widget below it (boxes close only themselves), so a notebook
    that rebuilds an explorer many times leaks no comms or observers."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    W.Widget.close(widget)
