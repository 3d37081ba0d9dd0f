"""The ``iommu-lab`` command: figures and tables for design reviews, without Jupyter.

Each sub-command is a thin wrapper: it parses arguments, calls a model and a renderer, and
writes SVG/PNG/PDF/CSV by the output's suffix or text to the terminal.

Exit status, as argparse and most Unix tools use it: 0 on success; 2 for bad input (an unknown
command, flag or platform, a value that breaks a rule, an unreadable or malformed file, an
output path that cannot be written), with one line on stderr naming the value, the rule and
what is allowed; 1 for an unexpected internal error, with one line saying so and where to
report it. No input makes it print a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from iommu_lab.core.errors import IommuError, cut

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors turned into one line (``UsageError``), not usage + error."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise UsageError(f"{message} (see '{self.prog} --help')")


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
    raise UsageError(f"output {cut(repr(path))} has an unknown suffix; use .svg, .png, .pdf (figure), .csv (table) or .txt")


def _check_output(path: str | None) -> None:
    """Refuse an output that cannot be written before any work is done (its folder must exist)."""
    if path is None:
        return
    _out_kind(path)
    if "\0" in path:
        raise UsageError(f"output {cut(repr(path))} contains a NUL character")
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"output {cut(repr(path))}: folder {cut(str(parent))} does not exist; create it first")
    if target.is_dir():
        raise UsageError(f"output {cut(repr(path))} is a directory; give a file name such as out.svg")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"output {cut(repr(path))}: folder {cut(str(parent))} is not writable")


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
    from iommu_lab.hardware.platform import platforms

    _emit(args, text=lambda: "\n".join(f"{n:20s} {platforms.get(n).title}" for n in platforms.names()),
          frame=platforms.to_dataframe)


def _suggest(name: str, known) -> str:
    """``"; did you mean 'x'?"`` for a near miss among ``known``, else an empty string."""
    close = difflib.get_close_matches(name.lower(), list(known), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _get_platform(name: str):
    from iommu_lab.hardware.platform import platforms

    try:
        return platforms.get(name)
    except (IommuError, KeyError, LookupError):
        names = platforms.names()
        raise UsageError(
            f"no platform {cut(repr(name))}{_suggest(name, names)} known platforms: {', '.join(names)} "
            f"(list them with 'iommu-lab platforms')"
        ) from None


def _cmd_info(args) -> None:
    p = _get_platform(args.platform)
    _emit(args, text=lambda: str(p.info()), frame=p.to_dataframe)


def _load_layout_subject(spec: str, msi_type: str = "auto"):
    """A platform name, a sysfs reserved_regions file, a copied iommu_groups tree or a scenario.

    Reserved regions are shown as the device sees them (``RegionLayout``: relaxable regions kept
    and marked not enforced), not as an IOAS after attach, where relaxable regions vanish.
    """
    from iommu_lab.iommufd.ioas import IOAS

    path = Path(spec)
    if path.exists():
        if path.suffix == ".toml":
            from iommu_lab.io.scenario import Scenario

            return Scenario.load(path).replay()
        from iommu_lab.io import read
        from iommu_lab.io.detect import Kind
        from iommu_lab.io.sysfs import RegionLayout

        got = read(path, msi_type=msi_type)
        if got.kind is Kind.GROUPS_TREE:
            if not got.value:
                raise UsageError(f"{spec}: the directory holds no numbered group directories")
            return [RegionLayout.of_group(g) for g in got.value]
        if got.kind is Kind.RESERVED_REGIONS:
            return RegionLayout(path.name if path.name != "reserved_regions" else str(path), got.value)
        raise UsageError(f"{spec}: this is an {got.kind.value}, which has no IOVA layout; layout takes a platform "
                         f"name, a reserved_regions file, an iommu_groups directory or a scenario .toml")
    return IOAS.from_platform(_get_platform(spec))


def _cmd_layout(args) -> None:
    from iommu_lab import render

    subjects = []
    for s in args.subject:
        got = _load_layout_subject(s, args.msi)
        subjects.extend(got if isinstance(got, list) else [got])
    subject = subjects[0] if len(subjects) == 1 else subjects
    _emit(
        args,
        text=lambda: render.layout_text(subject),
        frame=(lambda: subject.to_dataframe()) if len(subjects) == 1 else None,
        figure=lambda f: render.layout(subject, filename=f, style=args.style),
    )


def _cmd_import(args) -> None:
    from iommu_lab.io import read, read_dmar_translation
    from iommu_lab.io.detect import Kind

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"{args.file}: no such file or directory")
    contexts = read_dmar_translation(args.context) if args.context else None
    got = read(path, fmt=args.fmt, pgtt=args.pgtt, contexts=contexts, msi_type=args.msi)
    if got.kind is Kind.DOMAIN_TRANSLATION or got.kind is Kind.DMAR_TRANSLATION:
        _import_debugfs(args, got)
        return
    from iommu_lab.core.frames import addr_frame

    if got.kind is Kind.EMPTY:
        _emit(args, text=lambda: f"{path}: {got.note}")
        return
    if got.kind in (Kind.GROUPS_TREE, Kind.GROUP_LISTING):
        from iommu_lab.io.sysfs import RegionLayout

        groups = got.value
        lines = []
        for g in groups:
            lines.append(f"group {g.number} ({g.type or 'type unknown'}): {', '.join(g.devices) or 'no devices'}")
            lines.extend(f"    {d}  {info}" for d, info in zip(g.devices, g.descriptions) if info)
            lines.extend(f"    {r}" + ("" if RegionLayout.enforced(r) else "  (not enforced)") for r in g.reserved)
        layouts = [RegionLayout.of_group(g) for g in groups]

        def gframe():
            import pandas as pd

            return pd.DataFrame({"group": [g.number for g in groups for _ in g.devices],
                                 "device": [d for g in groups for d in g.devices],
                                 "type": [g.type or "" for g in groups for _ in g.devices]})

        def gfigure(f):
            from iommu_lab import render

            if got.kind is Kind.GROUP_LISTING or not any(g.reserved for g in groups):
                raise UsageError(f"{path}: a group listing shows no reserved regions, so there is no layout to draw")
            render.layout(layouts if len(layouts) > 1 else layouts[0], filename=f, style=args.style)

        _emit(args, text=lambda: "\n".join(lines) or "no groups", frame=gframe, figure=gfigure)
        return
    if got.kind is Kind.RESERVED_REGIONS:
        from iommu_lab.io.sysfs import RegionLayout

        regions = got.value
        lay = RegionLayout(path.name, regions)

        def rfigure(f):
            from iommu_lab import render

            render.layout(lay, filename=f, style=args.style)

        _emit(args, text=lambda: "\n".join(str(r) + ("" if lay.enforced(r) else "  (not enforced)") for r in regions)
              or f"{path}: no reserved regions", frame=lambda: lay.to_dataframe().drop(columns=["enforced"]),
              figure=rfigure)
        return
    if got.kind is Kind.DMESG:
        log = got.value

        def dfigure(f):
            from iommu_lab import render

            render.faults.faults(log, filename=f, style=args.style)

        supp = [f"{n}: {c} callbacks suppressed" for n, c in log.suppressed.items()]
        _emit(args, text=lambda: "\n".join([f"line {r.line}: {r}" for r in log] + supp) or "no IOMMU fault lines",
              frame=log.to_dataframe, figure=dfigure)
        return
    if got.kind is Kind.IOMMU_REGSET:
        units = got.value
        _emit(args, text=lambda: "\n\n".join(u.describe() for u in units),
              frame=lambda: addr_frame({"iommu": [u.iommu for u in units for _ in u.registers],
                                        "register": [n for u in units for n in u.registers],
                                        "offset": [u.offsets[n] for u in units for n in u.registers],
                                        "value": [v for u in units for v in u.registers.values()]},
                                       hex_columns=["offset", "value"]))
        return
    if got.kind is Kind.AMD_DEVTBL:
        rows = got.value
        _emit(args, text=lambda: "\n".join(r.summary() for r in rows) or "no device-table rows",
              frame=lambda: __import__("pandas").DataFrame([{"sbdf": r.sbdf, "iommu": r.iommu, **{k: f"{v:#x}" for k, v in r.fields().items()}} for r in rows]))
        return
    reads = got.value  # Kind.AMD_REGISTER
    _emit(args, text=lambda: "\n".join(r.describe() for r in reads),
          frame=lambda: addr_frame({"space": [r.space for r in reads], "offset": [r.offset for r in reads],
                                    "register": [r.name or "" for r in reads], "value": [r.value for r in reads]},
                                   hex_columns=["offset", "value"]))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
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
    msi_help = ("what sysfs 'msi' lines are: software (the SW_MSI window iommufd maps), hardware (a doorbell "
                "or the x86 interrupt window), or auto: software for the kernel's 0x8000000 window (default)")
    sp = add("layout", _cmd_layout, "the IOVA layout of a platform, a reserved_regions file, a groups directory or a scenario")
    sp.add_argument("subject", nargs="+", help="platform name, sysfs reserved_regions file, copied iommu_groups "
                                               "directory, or scenario .toml (several: side by side)")
    sp.add_argument("--msi", choices=("auto", "software", "hardware"), default="auto", help=msi_help)
    sp = add("import", _cmd_import, "read any IOMMU artefact, recognised by its content: sysfs, Intel/AMD debugfs, dmesg")
    sp.add_argument("file", help="a reserved_regions file, an iommu_groups directory or listing, an Intel debugfs "
                                 "dump (domain_translation_struct, dmar_translation_struct, iommu_regset), an AMD "
                                 "debugfs file (devtbl, mmio, capability) or dmesg lines with IOMMU faults")
    sp.add_argument("--fmt", help="domain_translation_struct: the table format (vtd-ss-4level, x86-64-4level, ...)")
    sp.add_argument("--pgtt", choices=("first-stage", "second-stage", "nested", "pass-through"),
                    help="domain_translation_struct: the PASID entry's PGTT (first stage = x86-64 entries)")
    sp.add_argument("--context", metavar="DMAR_TRANSLATION_STRUCT",
                    help="domain_translation_struct: take each device's PGTT from this dmar_translation_struct")
    sp.add_argument("--msi", choices=("auto", "software", "hardware"), default="auto", help=msi_help)
    _add_issue7_commands(add)
    return p


def _where_to_report() -> str:
    """The project's issue tracker, from the installed package's metadata when it names one."""
    try:
        from importlib.metadata import metadata

        for entry in metadata("iommu-lab").get_all("Project-URL") or ():
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("issues", "bug tracker", "tracker", "bugs"):
                return url.strip()
    except Exception:  # noqa: BLE001 - reporting must never fail
        pass
    return "the iommu-lab repository's issue tracker"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``iommu-lab argv``; return the exit status (0 ok, 2 bad input, 1 internal error)."""
    parser = build_parser()
    command = "iommu-lab"
    try:
        args = parser.parse_args(argv)
        command = f"iommu-lab {args.command}"
        _check_output(getattr(args, "output", None))
        args.func(args)
    except UsageError as e:
        print(f"{command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (IommuError, ValueError, TypeError) as e:
        # Our errors name the value, the rule and what is allowed; ParseError is a ValueError;
        # IommuError carries its errno in the message.
        print(f"{command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``iommu-lab import dump | head``): as the Python docs advise,
        # point stdout at devnull so the interpreter's final flush is silent, and stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        # Writing the output (a full disk, a path that vanished): name the file and why.
        where = e.filename if e.filename is not None else "a file"
        print(f"{command}: error: cannot write or read {cut(str(where))}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except RecursionError as e:
        print(f"{command}: internal error: input nested too deeply ({cut(str(e))}); "
              f"please report it at {_where_to_report()}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the CLI's promise: never a traceback
        print(f"{command}: internal error: {type(e).__name__}: {cut(_one_line(e), 160)}; this is a bug in "
              f"iommu-lab, please report it with the command line at {_where_to_report()}", file=sys.stderr)
        return 1
    return 0


# -- walks, nesting, comparisons, scenarios, debugfs --------------------------------------------
def _u64_arg(text: str, what: str) -> int:
    """An address or size from the command line, in core's one grammar (``parse_size``)."""
    from iommu_lab.core.ranges import U64_MAX, parse_size

    try:
        v = parse_size(text)
    except (ValueError, TypeError) as e:
        raise UsageError(f"{what} {cut(repr(text))}: {e}") from None
    if not 0 <= v <= U64_MAX:
        raise UsageError(f"{what} {cut(repr(text))} does not fit in 64 bits (at most 0xffff_ffff_ffff_ffff)")
    return v


def _map_arg(text: str, *, prot: bool = True) -> tuple:
    parts = text.split(":")
    n = 4 if prot else 3
    if not n - 1 <= len(parts) <= n:
        form = "IOVA:PA:SIZE[:PROT]" if prot else "IOVA:GPA:SIZE"
        raise UsageError(f"--map {cut(repr(text))} is not {form} (e.g. 0x100000:0x40000000:2M" + (":rw)" if prot else ")"))
    out = tuple(_u64_arg(x, f"--map {name}") for x, name in zip(parts[:3], ("IOVA", "GPA" if not prot else "PA", "SIZE")))
    return out + ((parts[3] if len(parts) == 4 else "rw"),)


def _import_debugfs(args, got) -> None:
    """Show an Intel ``domain_translation_struct`` (every leaf walked) or ``dmar_translation_struct``."""
    from iommu_lab.core.frames import addr_frame
    from iommu_lab.io.detect import Kind

    if got.kind is Kind.DOMAIN_TRANSLATION:
        dumps = got.value
        lines, cols = [], {"device": [], "pasid": [], "iova": [], "pa": [], "size": [], "perm": [], "level": []}
        if not dumps:
            lines.append(f"{got.source}: {dumps.describe_empty()}")
        for d in dumps:
            pt = d.pagetable
            lines.append(f"device {d.device or '?'}" + (f" pasid {d.pasid:#x}" if d.pasid is not None else "")
                         + f": {pt.fmt.name}, root {d.root:#x}, {len(d.rows)} leaf entries"
                         + f" (format: {d.format_source}" + (f"; kernel {d.era})" if d.era else ")"))
            for iova, _raws in d.rows:
                w = pt.walk(iova)
                lines.append(f"    {iova:#018x} -> {w.pa:#x} ({w.page_size:#x}, {w.result.level})" if w.ok
                             else f"    {iova:#018x} -> fault {w.fault}")
                cols["device"].append(d.device or "")
                cols["pasid"].append("" if d.pasid is None else f"{d.pasid:#x}")
                cols["iova"].append(iova)
                cols["pa"].append(w.pa if w.ok else None)
                cols["size"].append(w.page_size if w.ok else None)
                cols["perm"].append(str(w.perm) if w.ok else "")
                cols["level"].append(w.result.level if w.ok else None)

        def figure(f):
            from iommu_lab import render

            if len(dumps) != 1:
                raise UsageError(f"{got.source}: a figure draws one table; this dump has {len(dumps)} "
                                 f"(split the file per device)")
            render.pagetable(dumps[0].pagetable, filename=f, style=args.style)

        _emit(args, text=lambda: "\n".join(lines), frame=lambda: addr_frame(cols, hex_columns=["iova", "pa", "size"]),
              figure=figure)
        return
    rows = got.value
    decoded = [r.decoded() for r in rows]

    def frame():
        keys = sorted({k for d in decoded for k in d}, key=lambda k: list(decoded[0]).index(k) if k in decoded[0] else 99)
        import pandas as pd

        # Legacy and scalable rows have different fields; addresses are written as hex text so a
        # field one mode lacks stays empty rather than a missing-value integer.
        def cell(k, v):
            if v is None:
                return ""
            return f"{v:#x}" if k.endswith("table") or k == "pasid_dir" else v

        return pd.DataFrame({k: [cell(k, d.get(k)) for d in decoded] for k in keys})

    _emit(args, text=lambda: "\n".join(r.summary() for r in rows) or "no present context entries", frame=frame)


def _cmd_walk(args) -> None:
    from iommu_lab import render
    from iommu_lab.hardware import formats
    from iommu_lab.pagetable import PageTable

    known = formats.names()
    if args.format not in known:
        hint = _suggest(args.format, known) or f"; known formats include {', '.join(known[:6])}, ..."
        raise UsageError(f"unknown page-table format {cut(repr(args.format))}{hint} ({len(known)} formats: "
                         f"vtd-ss-*, x86-64-*, amd-v1-*, arm-lpae-*, riscv-sv*, ...)")
    try:
        pt = PageTable(args.format)
    except IommuError as e:
        raise UsageError(str(e)) from None
    for spec in args.map or ():
        iova, pa, size, prot = _map_arg(spec)
        pt.map(iova, pa, size, prot=prot)
    w = pt.walk(_u64_arg(args.iova, "IOVA"), access=args.access)
    _emit(args, text=lambda: render.walk_text(w), frame=w.to_dataframe,
          figure=lambda f: render.walk(w, filename=f, style=args.style))


def _cmd_nested(args) -> None:
    from iommu_lab import render
    from iommu_lab.nesting.nested import Nested

    p = _get_platform(args.platform)
    nested = Nested.for_platform(p, guest_ram=_u64_arg(args.ram, "--ram"), backing="eager")
    for spec in args.map or ():
        iova, gpa, size, _prot = _map_arg(spec, prot=False)
        nested.map(iova, gpa, size)
    nw = nested.walk(_u64_arg(args.iova, "IOVA"))
    _emit(args, text=lambda: render.nested_walk_text(nw), figure=lambda f: render.nested_walk(nw, filename=f, style=args.style))


def _cmd_compare(args) -> None:
    from iommu_lab import render
    from iommu_lab.review.workload import Workload

    plats = [_get_platform(n) for n in args.platform]
    if args.workload:
        wl = _scenario_workload(args.workload)
    else:
        wl = Workload.pc_guest(args.ram)
    _emit(args, text=lambda: render.compare_table(plats, wl).to_string(index=False),
          frame=lambda: render.compare_table(plats, wl),
          figure=lambda f: render.compare(plats, wl, filename=f, style=args.style))


def _scenario_workload(path: str):
    """The DMA-visible memory a scenario maps: the IOVA ranges of the areas its replay leaves."""
    from iommu_lab.io.scenario import Scenario
    from iommu_lab.review.workload import Workload

    if not Path(path).exists():
        raise UsageError(f"{path}: no such scenario file")
    sc = Scenario.load(path)
    areas = sc.replay().areas
    if not areas:
        raise UsageError(f"{path}: the scenario maps nothing, so there is no workload to compare")
    return Workload([(a.iova, a.length) for a in areas], name=getattr(sc, "title", None) or Path(path).stem)


def _cmd_scenario(args) -> None:
    from iommu_lab import render
    from iommu_lab.io.scenario import Scenario

    sc = Scenario.load(args.file)
    if args.diff:
        from iommu_lab.io.scenario import diff

        d = diff(sc, Scenario.load(args.diff))
        _emit(args, text=lambda: str(d), frame=d.to_dataframe)
        return
    ioas = sc.replay()

    def text() -> str:
        parts = [render.layout_text(ioas)]
        parts += [str(r) for r in sc.results]
        return "\n\n".join(parts)

    _emit(args, text=text, frame=ioas.to_dataframe, figure=lambda f: render.layout(ioas, filename=f, style=args.style))


def _cmd_replay(args) -> None:
    from iommu_lab.dma.trace import Trace
    from iommu_lab.dma.whatif import what_if

    for name in args.platform or ():
        _get_platform(name)
    path = Path(args.trace)
    if not path.exists():
        raise UsageError(f"{path}: no such trace file (a .csv or .parquet in the iommu_lab.dma.trace schema; see data/traces/)")
    trace = Trace.read(path)
    w = what_if(
        trace,
        platforms=args.platform or ["intel-vtd-48"],
        pgsizes=args.pgsizes or None,
        nested=args.nested,
        policy=args.policy or ["strict"],
        progress=False,
    )
    cols = [c for c in w.frame.columns if c not in ("note",)] + (["note"] if w.frame["note"].ne("").any() else [])
    _emit(
        args,
        text=lambda: w.question + "\n" + w.frame[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"),
        frame=lambda: w.frame,
        figure=lambda f: w.plot(filename=f, style=args.style),
    )


def _add_issue7_commands(add) -> None:
    sp = add("walk", _cmd_walk, "map pages into a page table of a format and show the walk of one IOVA")
    sp.add_argument("format", help="a page-table format, e.g. vtd-ss-4level, arm-lpae-s2-4k-40bit")
    sp.add_argument("iova", help="the IOVA to walk, e.g. 0x200000")
    sp.add_argument("--map", action="append", metavar="IOVA:PA:SIZE[:PROT]", help="a mapping (repeatable)")
    sp.add_argument("--access", choices=("r", "w", "x"), default=None, help="check this access")
    sp = add("nested", _cmd_nested, "a hardware nested (2-D) walk on a platform")
    sp.add_argument("platform", help="a catalogue platform with hardware nesting, e.g. intel-vtd-48")
    sp.add_argument("iova", help="the guest IOVA to walk")
    sp.add_argument("--map", action="append", metavar="IOVA:GPA:SIZE", help="a stage-1 mapping (repeatable)")
    sp.add_argument("--ram", default="4G", help="guest RAM size (default 4G)")
    sp = add("compare", _cmd_compare, "one PC guest's DMA memory on several platforms: fit, table memory, walk cost")
    sp.add_argument("platform", nargs="+", help="catalogue platform names")
    which = sp.add_mutually_exclusive_group()
    which.add_argument("--ram", default="16G", help="a PC guest of this much RAM (default 16G)")
    which.add_argument("--workload", metavar="SCENARIO", help="the areas a scenario .toml maps, instead of a PC guest")
    sp = add("replay", _cmd_replay, "replay a DMA trace file through each platform's IOTLB and walk caches")
    sp.add_argument("trace", help="a trace .csv or .parquet (columns t, op, device, pasid, iova, length, pa, stage)")
    sp.add_argument("--platform", nargs="+", help="catalogue platforms (default intel-vtd-48)")
    sp.add_argument("--pgsizes", nargs="+", metavar="SIZES", help="page-size policies, e.g. 4K 4K+2M (default: the platform's)")
    sp.add_argument("--policy", nargs="+", choices=("strict", "lazy"), help="flush policies to compare (default strict)")
    sp.add_argument("--nested", action="store_true", help="replay through the platform's hardware-nested pair")
    sp = add("scenario", _cmd_scenario, "replay a scenario .toml and show its layout and walk results")
    sp.add_argument("file", help="a scenario file (see data/scenarios/)")
    sp.add_argument("--diff", metavar="OTHER", help="show how OTHER's resulting layout differs from FILE's")
