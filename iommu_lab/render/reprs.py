"""Every model's notebook view (``_repr_html_``), in one place, registered per type.

Each builder follows xarray's repr: scoped CSS, JupyterLab theme colours with fallbacks, and
the plain-text form inside, visible where a front end strips the CSS. Models only say
``_repr_html_ = display.html``; :mod:`iommu_lab.core.display` finds these by type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iommu_lab.core import display
from iommu_lab.core.ranges import RangeSet, fmt_addr, fmt_size
from iommu_lab.core.words import plural
from iommu_lab.hardware.formats import Format
from iommu_lab.hardware.platform import Platform, PlatformCatalogue, _fmt_formats
from iommu_lab.iommufd.info import Capabilities, IoasInfo
from iommu_lab.iommufd.ioas import IOAS
from iommu_lab.nesting.explain import GuestLookup
from iommu_lab.nesting.nested import Nested, NestedWalk, _fmt, _root, nested_walk_refs
from iommu_lab.nesting.pasid import PasidLookup
from iommu_lab.nesting.shadow import ShadowNesting
from iommu_lab.pagetable.table import PageTable
from iommu_lab.pagetable.walk import Walk
from iommu_lab.render.html import table_html
from iommu_lab.review.migration import Migration

if TYPE_CHECKING:  # registered by name below: importing the views does not import dma (and pandas)
    from iommu_lab.dma.caches import Caches
    from iommu_lab.dma.replay import Replay
    from iommu_lab.dma.trace import Trace
    from iommu_lab.dma.whatif import WhatIf


def _html_rangeset(obj: RangeSet) -> str:
    rows = [(fmt_addr(r.start), fmt_addr(r.last), fmt_size(r.size)) for r in obj._ranges]
    return table_html(f"RangeSet: {plural(len(obj), 'range')}, {fmt_size(obj.size)}", ("start", "last", "size"), rows, text=str(obj))


def _html_platform(obj: Platform) -> str:
    rows = [(k, fmt_addr(s), fmt_addr(last), fmt_size(z), t) for k, s, last, z, t in obj._rows()]
    return table_html(
        f"Platform {obj.name}: {obj.title}",
        ("kind", "start", "last", "size", "type"),
        rows,
        text=repr(obj),
        footer=obj._summary(),
    )


def _html_platformcatalogue(obj: PlatformCatalogue) -> str:
    rows = [
        (p.name, p.family.value, p.ias, len(p.windows), len(p.reserved), fmt_addr(p.pgsizes), _fmt_formats(p.formats), p.nesting.value, p.pasid_bits, "yes" if p.dirty_tracking else "no")
        for p in obj.all()
    ]
    return table_html(
        f"IOMMU platforms ({len(rows)})",
        ("name", "family", "ias", "windows", "reserved", "pgsizes", "formats", "nesting", "PASID bits", "dirty"),
        rows,
        text=repr(obj),
    )


def _html_format(obj: Format) -> str:
    df = obj.to_dataframe()
    return table_html(
        repr(obj), list(df.columns), df.itertuples(index=False), text=obj.describe()
    )


def _html_walk(obj: Walk) -> str:
    rows = [
        (
            s.level,
            s.name,
            f"{s.table:#x}",
            s.index,
            f"{s.read_address:#x}",
            f"{s.raw:#018x}",
            str(s.entry),
        )
        for s in obj.steps
    ]
    return table_html(
        f"walk {fmt_addr(obj.iova)} in {obj.fmt.name}",
        ["level", "name", "table", "index", "entry address", "raw", "decoded"],
        rows,
        text=str(obj),
        footer=obj.summary(),
    )


def _html_pagetable(obj: PageTable) -> str:
    rows = [
        (t.level, t.name, f"{t.address:#x}", f"{t.iova:#x}", t.used, t.entries)
        for t in obj.tables[:200]
    ]
    return table_html(
        repr(obj),
        ["level", "name", "address", "first iova", "used", "entries"],
        rows,
        text=repr(obj),
    )


def _html_nestedwalk(obj: NestedWalk) -> str:
    rows = [
        (
            r.seq,
            r.label,
            f"({r.row},{r.col})" if r.row >= 0 else "cfg",
            fmt_addr(r.address),
            f"{r.raw:#018x}",
            r.purpose,
        )
        for r in obj.refs
    ]
    return table_html(
        f"Nested walk of IOVA {fmt_addr(obj.iova)} — {obj.n_pagetable_refs} page-table references",
        ["#", "stage/level", "grid", "address read", "raw", "purpose"],
        rows,
        text=str(obj),
        footer=obj._result_line(),
        bad=bool(obj.fault),
        max_rows=80,
    )


def _html_nested(obj: Nested) -> str:
    f1, f2 = _fmt(obj.stage1), _fmt(obj.stage2)
    rows = [
        ("stage 1", "guest", f1.name, f1.levels, fmt_addr(_root(obj.stage1)) + " (GPA)"),
        ("stage 2", "host", f2.name, f2.levels, fmt_addr(_root(obj.stage2)) + " (HPA)"),
    ]
    return table_html(
        f"Nested ({obj.family}): {obj.description}",
        ["stage", "owner", "format", "levels", "root"],
        rows,
        text=repr(obj),
        footer=f"cold 2-D walk with small pages: {nested_walk_refs(f1.levels, f2.levels)} references",
    )


def _html_guestlookup(obj: GuestLookup) -> str:
    rows = []
    for e in obj.entries:
        rows.append(
            (e.name, e.index, fmt_addr(e.entry_address), f"{e.raw:#018x}", "", "", e.verdict)
        )
        for f in e.fields:
            if f.value or f.role in ("address", "present", "present/type"):
                rows.append(
                    (
                        "",
                        "",
                        "",
                        "",
                        f"{f.name} [{f.bits}]",
                        f"{f.value:#x}",
                        f"{f.role}: {f.meaning}",
                    )
                )
        if e.unnamed_bits:
            rows.append(
                ("", "", "", "", "(unnamed)", f"{e.unnamed_bits:#x}", "ignored/reserved bits")
            )
    if obj.fault is not None:
        foot = obj._fault_text()
    else:
        foot = f"GPA {fmt_addr(obj.gpa)}" + (f" -> HPA {fmt_addr(obj.hpa)}" if obj.hpa is not None else "")
    return table_html(
        f"lookup {fmt_addr(obj.iova)} in {obj.format}",
        ["entry", "index", "address", "raw", "field", "value", "interpretation"],
        rows,
        text=str(obj),
        footer=foot,
        bad=obj.fault is not None,
        max_rows=120,
    )


def _html_shadownesting(obj: ShadowNesting) -> str:
    rows = [
        (k, v if isinstance(v, int) else f"{v:.2f}") for k, v in obj.costs.as_dict().items()
    ]
    return table_html(repr(obj), ["cost", "count"], rows, text=repr(obj))


def _html_pasidlookup(obj: PasidLookup) -> str:
    return table_html(
        f"{obj.family} PASID {obj.pasid:#x} — {obj.binding.value} binding",
        [
            "#",
            "kind",
            "structure",
            "level",
            "index",
            "address",
            "host address",
            "raw (low 64 bits)",
        ],
        [(*r[:7], hex(int(r[7], 16) & ((1 << 64) - 1))) for r in obj._rows()],
        text=str(obj),
        footer=str(obj.fault)
        if obj.fault
        else f"{obj.mode}; stage-1 root {fmt_addr(obj.stage1_root or 0)}",
    )


def _html_ioas(obj: IOAS) -> str:
    rows = [(fmt_addr(a.iova), fmt_addr(a.last), fmt_size(a.length), fmt_addr(a.user_va), a.prot.text) for a in obj.areas]
    footer = "reserved: " + ("; ".join(str(r) for r in obj.reserved) or "none")
    footer += f" · iova_ranges: {obj.iova_ranges()}"
    return table_html(obj._summary(), ("iova", "last", "length", "user_va", "prot"), rows, text=repr(obj), footer=footer)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _capability_rows(c: Capabilities) -> list[tuple[str, str, str]]:
    pasids = (f"{c.max_pasid_log2}-bit ({1 << c.max_pasid_log2:,} PASIDs)" if c.max_pasid_log2
              else "none (out_max_pasid_log2 = 0)")
    return [
        ("map/unmap (type1)", _yes(c.type1_map_unmap), "IOMMU_IOAS_MAP / UNMAP on a kernel-managed table"),
        ("page-table binding", _yes(c.pgtable_binding), "one guest stage-1 table per device and PASID"),
        ("PASID-table binding", _yes(c.pasid_table_binding), "the guest's whole PASID / CD / GCR3 table"),
        ("nesting", c.nesting.value, "hardware walks both stages" if c.nesting.value == "hardware"
         else "the VMM shadows the guest table through map/unmap" if c.nesting.value == "software"
         else "one stage only"),
        ("dirty tracking", _yes(c.dirty_tracking), "IOMMU_HW_CAP_DIRTY_TRACKING"),
        ("PASIDs", pasids, "out_max_pasid_log2"),
    ]


def _html_capabilities(obj: Capabilities) -> str:
    return table_html(f"Capabilities: {obj}", ("capability", "answer", "meaning"), _capability_rows(obj), text=str(obj))


def _html_ioasinfo(obj: IoasInfo) -> str:
    def size(n: int) -> str:
        return f"{n} B" if n < 1024 else fmt_size(n)

    rows: list[tuple[str, str]] = [
        ("page sizes", obj.page_sizes_text),
        ("IOVA alignment", size(obj.iova_alignment)),
        ("mappings", "no limit" if obj.max_mappings is None else f"at most {obj.max_mappings:,}"),
    ]
    shown = obj.permitted[:16]
    for i, r in enumerate(shown):
        rows.append(("permitted" if i == 0 else "",
                     f"{fmt_addr(r.start)} – {fmt_addr(r.last)} ({fmt_size(r.size, approx=True)})"))
    if len(obj.permitted) > len(shown):
        rows.append(("", f"… {len(obj.permitted) - len(shown)} more " + ("range" if len(obj.permitted) - len(shown) == 1 else "ranges")))
    rows += [(f"capability: {k}", v) for k, v, _why in _capability_rows(obj.capabilities)]
    return table_html(f"GET_INFO ({obj.semantics.value}): {plural(len(obj.permitted), 'permitted range')}, "
                      f"{fmt_size(sum(r.size for r in obj.permitted), approx=True)}",
                      ("", "answer"), rows, text=str(obj), max_rows=40)


def _html_trace(obj: Trace) -> str:
    import pandas as pd

    from iommu_lab.dma.trace import COLUMNS

    shown = obj.frame.head(10)
    rows = []
    for rec in shown.itertuples(index=False):
        rows.append(
            [
                rec.t,
                rec.op,
                rec.device,
                "" if pd.isna(rec.pasid) else rec.pasid,
                fmt_addr(int(rec.iova)),
                int(rec.length),
                fmt_addr(int(rec.pa)) if rec.op == "map" else "",
                rec.stage,
            ]
        )
    more = len(obj) - len(shown)
    footer = (
        f"… {plural(more, 'more row')}; trace.frame.il.hex() shows them all in hex" if more > 0 else ""
    )
    return table_html(repr(obj), COLUMNS, rows, text=repr(obj), footer=footer)


def _html_caches(obj: Caches) -> str:
    rows = [
        (cache, "" if level is None else level, cfg.entries, "full" if cfg.ways is None else cfg.ways, cfg.sets, cfg.replacement.value)
        for cache, level, cfg in obj._rows()
    ]
    return table_html(
        f"Caches {obj.name or '(unnamed)'}",
        ("cache", "level", "entries", "ways", "sets", "replacement"),
        rows,
        text=str(obj),
        footer=obj.source,
    )


def _html_replay(obj: Replay) -> str:
    rows = [(name, value) for name, value in obj.summary.items()]
    return table_html(repr(obj), ("measure", "value"), rows, text=repr(obj), max_rows=100)


def _html_whatif(obj: WhatIf) -> str:
    frame = obj.frame
    return table_html(obj.question, list(frame.columns), frame.itertuples(index=False),
                      text=f"{obj.question}\n{frame.to_string(index=False)}", max_rows=100)


def _html_migration(obj: Migration) -> str:
    rows = [
        (int(r.round), fmt_size(int(r.bytes), approx=True), f"{r.seconds * 1e3:.1f} ms",
         fmt_size(int(r.remaining), approx=True), "stop-and-copy" if r.stop_copy else "pre-copy")
        for r in obj.rounds.itertuples(index=False)
    ]
    return table_html(obj.label, ("round", "sent", "time", "dirty after", "phase"), rows, text=str(obj),
                      footer=str(obj), bad=not obj.converged, max_rows=20)


for _cls, _builder in (
    (RangeSet, _html_rangeset),
    (Platform, _html_platform),
    (PlatformCatalogue, _html_platformcatalogue),
    (Format, _html_format),
    (Walk, _html_walk),
    (PageTable, _html_pagetable),
    (NestedWalk, _html_nestedwalk),
    (Nested, _html_nested),
    (GuestLookup, _html_guestlookup),
    (ShadowNesting, _html_shadownesting),
    (PasidLookup, _html_pasidlookup),
    (IOAS, _html_ioas),
    (IoasInfo, _html_ioasinfo),
    (Capabilities, _html_capabilities),
    ("iommu_lab.dma.trace.table.Trace", _html_trace),
    ("iommu_lab.dma.caches.Caches", _html_caches),
    ("iommu_lab.dma.replay.Replay", _html_replay),
    ("iommu_lab.dma.whatif.WhatIf", _html_whatif),
    (Migration, _html_migration),
):
    display.register(_cls, display.Output.HTML, _builder)
