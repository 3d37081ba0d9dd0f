"""How a model reaches a view without importing one: pandas' plotting-backend pattern.

A model class says ``_repr_html_ = display.html`` and ``plot = display.plot``; nothing else.
The views live in the rendering layer (``iommu_lab.render``), which registers one handler per
model type and output when it is imported. This module imports that layer *by name*, on the
first request for a view, exactly as pandas' ``DataFrame.plot`` loads the module named by the
``plotting.backend`` option, so no model module ever imports the rendering layer.

>>> from iommu_lab.core import display
>>> display.Output.parse("html")
<Output.HTML: 'html'>
"""

from __future__ import annotations

import enum
import importlib
from typing import Any, Callable

from iommu_lab.core.enums import member_of

#: The module that registers the views, imported by name on the first request.
BACKEND = "iommu_lab.render"


class Output(enum.Enum):
    """The three kinds of view of a model, as ``render.draw(obj, output=...)`` names them."""

    MPL = "mpl"  #: a matplotlib Figure
    TEXT = "text"  #: a string for terminals and the CLI
    HTML = "html"  #: the notebook's rich repr

    @classmethod
    def parse(cls, value: "Output | str") -> "Output":
        return member_of(cls, value, what="output")


_HANDLERS: dict[tuple[type, Output], Callable[..., Any]] = {}
#: Views registered by the type's qualified name, before its module is imported (see register).
_BY_NAME: dict[tuple[str, Output], Callable[..., Any]] = {}
_backend_loaded = False


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: "type | str", output: "Output | str", handler: Callable[..., Any]) -> None:
    """Make ``handler(obj, **kwargs)`` the ``output`` view of ``cls`` and its subclasses.

    ``cls`` may be the type's qualified name (``"iommu_lab.dma.replay.Replay"``: its
    ``__module__`` and ``__qualname__``), so a view can be registered without importing the
    type's module -- importing the views then does not import every model and what it needs.
    """
    if isinstance(cls, str):
        _BY_NAME[(cls, Output.parse(output))] = handler
    elif isinstance(cls, type):
        _HANDLERS[(cls, Output.parse(output))] = handler
    else:
        raise TypeError(f"register() takes a type or its qualified name, got {type(cls).__name__}")


def _lookup(cls: type, output: Output) -> Callable[..., Any] | None:
    for klass in cls.__mro__:
        handler = _HANDLERS.get((klass, output))
        if handler is None and _BY_NAME:
            handler = _BY_NAME.get((_type_name(klass), output))
            if handler is not None:
                _HANDLERS[(klass, output)] = handler
        if handler is not None:
            return handler
    return None


def registered() -> list[tuple[type, Output]]:
    """Every ``(type, output)`` with a view, the rendering layer loaded and named types imported."""
    global _backend_loaded
    if not _backend_loaded:
        importlib.import_module(BACKEND)
        _backend_loaded = True
    for (name, output), handler in list(_BY_NAME.items()):
        module, _, qualname = name.rpartition(".")  # a module-level class
        cls = getattr(importlib.import_module(module), qualname)
        _HANDLERS.setdefault((cls, output), handler)
    return list(_HANDLERS)


def handler_for(obj: Any, output: "Output | str") -> Callable[..., Any]:
    """The registered ``output`` view of ``obj``'s type (the rendering layer loaded on demand).

    Raises
    ------
    TypeError
        When no view of that kind exists for the type; the message lists the types that have one.
    """
    global _backend_loaded
    output = Output.parse(output)
    handler = _lookup(type(obj), output)
    if handler is None and not _backend_loaded:
        importlib.import_module(BACKEND)
        _backend_loaded = True
        handler = _lookup(type(obj), output)
    if handler is None:
        known = sorted({k.__name__ for (k, o) in _HANDLERS if o is output}
                       | {k.rpartition(".")[2] for (k, o) in _BY_NAME if o is output})
        raise TypeError(
            f"no {output.value!r} view for {type(obj).__name__}; "
            f"types with one: {', '.join(known) or 'none'}"
        )
    return handler


def html(obj: Any) -> str:
    """``_repr_html_``: the notebook's rich view of ``obj`` (plain text inside, for stripped CSS)."""
    return handler_for(obj, Output.HTML)(obj)


def plot(obj: Any, *args: Any, **kwargs: Any) -> Any:
    """``.plot()``: draw ``obj`` with its registered figure renderer (``ax=``, ``filename=``, ``style=``)."""
    return handler_for(obj, Output.MPL)(obj, *args, **kwargs)


def text(obj: Any, **kwargs: Any) -> str:
    """The terminal view of ``obj``, as the CLI prints it."""
    return handler_for(obj, Output.TEXT)(obj, **kwargs)
