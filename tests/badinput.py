"""The bad-input catalogue's harness: one row per bad input, one runner for every surface.

A catalogue file (``tests/test_bad_<surface>.py``) holds a list ``CASES`` of :class:`Bad` rows
and ends with ``test_bad_input = parametrize(CASES)``. Each row names the surface and the class
of mistake it guards, performs the bad call, and states what must come out: the exception class
(ours: ``IommuError``, ``ValueError`` or ``TypeError``), the kernel errno where one applies, the
words the message must contain, and a snapshot of the model that must be equal before and after.

Rows that could exhaust memory or hang run in a forked child under an address-space cap and a
timer (``isolate=True``), so a regression fails the test instead of taking the machine down.
``tests/test_bad_catalogue.py`` counts the rows by surface and class.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import resource
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

#: Where a bad input arrives. Keep this list short and stable: the note counts by it.
SURFACES = (
    "api",            # the Python API of a model (IOAS, page table, nesting, caches, ...)
    "cli",            # an iommu-lab command line
    "sysfs",          # reserved_regions files, iommu_groups directories
    "debugfs",        # Intel / AMD debugfs dumps
    "dmesg",          # kernel fault lines
    "platform-toml",  # platform description files
    "cache-toml",     # cache configuration files
    "scenario-toml",  # design-review scenario files
    "trace-csv",      # DMA trace CSV files
    "trace-parquet",  # DMA trace Parquet files
    "text",           # a size, range, permission or address given as text to any parser
)

#: The kind of mistake a row guards against (the classes of the bad-input issue).
KINDS = (
    "memory",      # would allocate without bound
    "time",        # would run or block without bound
    "leak",        # an exception from inside numpy/pandas/pyarrow/tomllib or a raw Key/Index/Attr
    "silent",      # accepted or truncated without a word
    "changed",     # a failed call that changed the model
    "refused",     # reasonable input refused
    "message",     # the error is ours but unreadable (too long, no value, no rule)
)


@dataclass(frozen=True)
class Bad:
    """One bad input and what must come out of it.

    ``call`` performs the bad operation (a zero-argument callable). ``error`` is the exception
    class that must come out, or ``None`` when the row checks reasonable input that must be
    *accepted* (then ``check`` receives the call's result and asserts on it). ``snapshot``,
    when given, is called before and after; the two results must be equal.
    """

    id: str
    surface: str
    kind: str
    call: Callable[[], Any]
    error: type[BaseException] | tuple[type[BaseException], ...] | None = ValueError
    errno: str | None = None
    words: Sequence[str] = ()
    snapshot: Callable[[], Any] | None = None
    check: Callable[[Any], Any] | None = None
    isolate: bool = False
    mem_mb: int = 1500
    seconds: int = 20
    max_message: int = 600
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        assert self.surface in SURFACES, f"{self.id}: unknown surface {self.surface!r}"
        assert self.kind in KINDS, f"{self.id}: unknown kind {self.kind!r}"


def _ours(exc: BaseException) -> bool:
    """An error a user may see: ours, never one leaking from a library's insides."""
    from iommu_lab.core.errors import IommuError

    if isinstance(exc, (IommuError, CliError)):
        # A CLI row's refusal is raised by cli_call after the CLI itself was checked.
        return True
    if type(exc) not in (ValueError, TypeError) and not (
        isinstance(exc, (ValueError, TypeError)) and type(exc).__module__.startswith("iommu_lab")
    ):
        return False
    # Raised by our code: the innermost frame is in iommu_lab (not numpy/pandas/pyarrow/tomllib).
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and "iommu_lab" in last.tb_frame.f_code.co_filename


def _run_here(case: Bad):
    """Run the call in this process; return ("ok", result) or ("raised", exc)."""
    try:
        return ("ok", case.call())
    except BaseException as exc:  # noqa: BLE001 - the catalogue inspects everything
        if isinstance(exc, KeyboardInterrupt):
            raise
        return ("raised", exc)


def _run_isolated(case: Bad):
    """Run the call in a forked child under a memory cap and a timer.

    The child reports the outcome as picklable facts (class name, module, message, errno, whether
    the innermost frame is ours); the parent rebuilds just enough to check them.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        status = 0
        try:
            cap = case.mem_mb * 1024 * 1024
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            # The cap is on top of what the interpreter already holds.
            used = _vm_size()
            resource.setrlimit(resource.RLIMIT_AS, (used + cap, hard))
            signal.alarm(case.seconds)
            kind, val = _run_here(case)
            if kind == "ok":
                facts = {"kind": "ok", "repr": repr(val)[:200]}
            else:
                facts = {"kind": "raised", "cls": type(val).__name__,
                         "module": type(val).__module__, "msg": str(val),
                         "errno": getattr(val, "errno", None), "ours": _ours(val),
                         "tb": "".join(traceback.format_exception(val))[-3000:]}
            data = pickle.dumps(facts)
        except BaseException as exc:  # noqa: BLE001
            data = pickle.dumps({"kind": "crash", "msg": repr(exc)[:500]})
            status = 3
        with os.fdopen(w, "wb") as f:
            f.write(data)
        os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        pytest.fail(f"{case.id}: the child died (signal {sig}): the input exhausted time or memory")
    return pickle.loads(data)


def _vm_size() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _errno_name(errno: Any) -> str | None:
    if errno is None:
        return None
    if isinstance(errno, int):
        import errno as errno_mod

        return errno_mod.errorcode.get(errno, str(errno))
    return str(errno)


def check(case: Bad) -> None:
    """Run one catalogue row and assert everything it states."""
    before = case.snapshot() if case.snapshot is not None else None
    if case.isolate:
        facts = _run_isolated(case)
        if facts["kind"] == "crash":
            pytest.fail(f"{case.id}: harness crash in child: {facts['msg']}")
    else:
        kind, val = _run_here(case)
        if kind == "ok":
            facts = {"kind": "ok", "val": val}
        else:
            facts = {"kind": "raised", "cls": type(val).__name__, "exc": val,
                     "module": type(val).__module__, "msg": str(val),
                     "errno": getattr(val, "errno", None), "ours": _ours(val),
                     "tb": "".join(traceback.format_exception(val))[-3000:]}
    if case.error is None:
        assert facts["kind"] == "ok", (
            f"{case.id}: reasonable input refused: {facts.get('cls')}: {facts.get('msg')}")
        if case.check is not None and "val" in facts:
            case.check(facts["val"])
    else:
        assert facts["kind"] == "raised", f"{case.id}: accepted without a word: {facts}"
        expected = case.error if isinstance(case.error, tuple) else (case.error,)
        names = {c.__name__ for c in expected}
        exc = facts.get("exc")
        matches = isinstance(exc, expected) if exc is not None else facts["cls"] in names
        assert matches, (f"{case.id}: expected {sorted(names)}, got {facts['cls']}: "
                         f"{facts['msg'][:300]}\n{facts['tb']}")
        assert facts["ours"], f"{case.id}: not raised by iommu_lab's own code:\n{facts['tb']}"
        if case.errno is not None:
            assert _errno_name(facts["errno"]) == case.errno, (
                f"{case.id}: errno {facts['errno']!r}, want {case.errno}")
        msg = facts["msg"]
        for word in case.words:
            assert word.lower() in msg.lower(), f"{case.id}: {word!r} not in message: {msg[:400]}"
        assert len(msg) <= case.max_message, (
            f"{case.id}: message of {len(msg)} characters (limit {case.max_message}): {msg[:200]}…")
    if case.snapshot is not None:
        after = case.snapshot()
        assert after == before, f"{case.id}: the failed call changed the model"


def parametrize(cases: Sequence[Bad]):
    """The one test function a catalogue file exports: ``test_bad_input = parametrize(CASES)``."""
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids), "catalogue ids must be unique"

    @pytest.mark.parametrize("case", cases, ids=ids)
    def test_bad_input(case: Bad) -> None:
        check(case)

    return test_bad_input


@contextlib.contextmanager
def captured():
    """Capture stdout and stderr (for CLI rows run in-process)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """Run ``iommu-lab argv`` in-process; return (exit code, stdout, stderr)."""
    from iommu_lab.cli import main

    with captured() as (out, err):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse exits with 2 on usage errors
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


class CliError(ValueError):
    """Raised by :func:`cli_call` so a CLI row is checked like any other row."""


def cli_call(argv: Sequence[str], *, exit_code: int = 2) -> Callable[[], Any]:
    """A row's ``call`` for the CLI: bad input must exit ``exit_code`` with one line, no traceback."""

    def run():
        code, out, err = cli(argv)
        assert "Traceback" not in err + out, f"traceback printed for {argv}:\n{err}"
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert code == exit_code, f"exit {code} (want {exit_code}) for {argv}: {err[-500:]}"
        assert len(lines) >= 1, f"no message for {argv}"
        raise _cli_refusal(lines[-1])

    return run


def _cli_refusal(line: str) -> CliError:
    return CliError(line)


if sys.version_info < (3, 11):  # pragma: no cover
    raise RuntimeError("the catalogue needs Python 3.11")
