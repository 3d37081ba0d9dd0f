"""The ``iommu-lab`` command: figures and tables for design reviews, without Jupyter.

Each sub-command is a thin wrapper: it parses arguments, calls a model and a renderer, and
writes SVG/PNG/PDF/CSV by the output's suffix or text to the terminal. Bad input exits with
status 2 and one line naming what was wrong (argparse's own convention), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import IommuError

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


def _out_kind(path: str | None) -> str:
    if path is None:
        return "text"
    suffix = Path(path).suffix.lower()
    if suffix in (".svg", ".png", ".pdf"):
        return "figure"
    if suffix == ".csv":
        return "csv"
    if suffix in (".txt", ".text"):
        return "textfile"
    raise UsageError(f"output {path!r} has an unknown suffix; use .svg, .png, .pdf (figure), .csv (table) or .txt")


def _emit(args, *, text: Callable[[], str], frame: Callable[[], object] | None = None,
          figure: Callable[[str], object] | None = None) -> None:
    kind = _out_kind(args.output)
    if kind == "text":
        print(text())
    elif kind == "textfile":
        Path(args.output).write_text(text() + "\n")
    elif kind == "csv":
        if frame is None:
            raise UsageError(f"{args.command} has no table to write as CSV; use .svg/.png/.pdf or .txt")
        df = frame()
        hex_cols = df.attrs.get("hex_columns", [])
        out = df.copy()
        for c in hex_cols:
            out[c] = [f"{int(v):#x}" if v is not None and v == v else "" for v in out[c]]
        out.to_csv(args.output, index=False)
    else:
        if figure is None:
            raise UsageError(f"{args.command} has no figure; write text (.txt) or a table (.csv)")
        figure(args.output)
    if args.output:
        print(f"wrote {args.output}", file=sys.stderr)


# -- sub-commands -------------------------------------------------------------------------
def _cmd_platforms(args) -> None:
    from .platform import platforms

    _emit(args, text=lambda: "\n".join(f"{n:20s} {platforms.get(n).title}" for n in platforms.names()),
          frame=platforms.to_dataframe)


def _get_platform(name: str):
    from .platform import platforms

    try:
        return platforms.get(name)
    except (IommuError, KeyError, LookupError) as e:
        raise UsageError(str(e).strip("'\"")) from None


def _cmd_info(args) -> None:
    p = _get_platform(args.platform)
    _emit(args, text=lambda: str(p.info()), frame=p.to_dataframe)


def _load_layout_subject(spec: str):
    """A platform name, a sysfs reserved_regions file, or a scenario file."""
    from .ioas import IOAS

    path = Path(spec)
    if path.exists():
        if path.suffix == ".toml":
            from .scenario import Scenario

            return Scenario.load(path).replay()
        from .io import read_reserved_regions

        from .device import Device

        ioas = IOAS()
        ioas.attach(Device(path.name, reserved=read_reserved_regions(path)))
        return ioas
    return IOAS.from_platform(_get_platform(spec))


def _cmd_layout(args) -> None:
    from . import render

    subjects = [_load_layout_subject(s) for s in args.subject]
    subject = subjects[0] if len(subjects) == 1 else subjects
    _emit(
        args,
        text=lambda: render.layout_text(subject),
        frame=(lambda: subject.to_dataframe()) if len(subjects) == 1 else None,
        figure=lambda f: render.layout(subject, filename=f, style=args.style),
    )


def _cmd_import(args) -> None:
    from .io import read_iommu_groups, read_reserved_regions

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"{args.file}: no such file or directory")
    if path.is_dir():
        groups = read_iommu_groups(path)
        lines = []
        for g in groups:
            lines.append(f"group {g.number} ({g.type or 'type unknown'}): {', '.join(g.devices) or 'no devices'}")
            lines.extend(f"    {r}" for r in g.reserved)
        _emit(args, text=lambda: "\n".join(lines))
        return
    regions = read_reserved_regions(path)

    def frame():
        from ._frames import addr_frame

        return addr_frame({"start": [r.start for r in regions], "last": [r.last for r in regions],
                           "type": [r.type.value for r in regions]}, hex_columns=["start", "last"])

    _emit(args, text=lambda: "\n".join(str(r) for r in regions), frame=frame)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iommu-lab",
        description="IOMMU address spaces, page tables and walks as figures and tables.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help: str, **kw) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, **kw)
        sp.set_defaults(func=func)
        sp.add_argument("-o", "--output", metavar="FILE",
                        help="write .svg/.png/.pdf (figure), .csv (table) or .txt; default: text to the terminal")
        sp.add_argument("--style", choices=("light", "dark"), default="light", help="figure theme")
        return sp

    add("platforms", _cmd_platforms, "list the platform catalogue")
    sp = add("info", _cmd_info, "what GET_INFO answers for a platform: capabilities, page sizes, windows")
    sp.add_argument("platform", help="a catalogue name, e.g. power9-pseries")
    sp = add("layout", _cmd_layout, "the IOVA layout of a platform, a reserved_regions file or a scenario")
    sp.add_argument("subject", nargs="+", help="platform name, sysfs reserved_regions file, or scenario .toml (several: side by side)")
    sp = add("import", _cmd_import, "read a sysfs reserved_regions file or a copied iommu_groups tree")
    sp.add_argument("file", help="a reserved_regions file or an iommu_groups directory")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (UsageError, IommuError, ValueError, TypeError) as e:
        # ParseError is a ValueError; IommuError carries its errno in the message.
        print(f"iommu-lab {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
