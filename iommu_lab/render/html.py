"""Small HTML building blocks for ``_repr_html_``, themed after xarray's repr.

Scoped class names (``il-``), colours from JupyterLab theme variables with fallbacks, so the
same markup reads in light and dark themes. As xarray's ``xr-text-repr-fallback`` /
``xr-wrap`` pair: the plain-text ``<pre>`` is visible by default and hidden by the stylesheet,
while the rich view carries an inline ``display: none`` that only the stylesheet overrides.
A front end that strips ``<style>`` (GitHub's notebook viewer, some e-mail and doc tools)
therefore shows the text form alone, and one that keeps it shows the rich form alone.
"""

from __future__ import annotations

import html
from typing import Iterable, Sequence

from iommu_lab.core.words import plural

CSS = """<style>
.il-repr { --il-fg: var(--jp-content-font-color0, rgba(0,0,0,1));
  --il-fg2: var(--jp-content-font-color2, rgba(0,0,0,.54));
  --il-bg: var(--jp-layout-color0, white); --il-bg2: var(--jp-layout-color2, #eeeeee);
  --il-border: var(--jp-border-color2, #e0e0e0); --il-bad: var(--jp-error-color1, #d32f2f);
  --il-good: var(--jp-success-color1, #388e3c);
  color: var(--il-fg); background: var(--il-bg); font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 12px); }
html[theme=dark] .il-repr, body[data-theme-light=false] .il-repr, body.vscode-dark .il-repr {
  --il-fg: var(--jp-content-font-color0, rgba(255,255,255,1));
  --il-fg2: var(--jp-content-font-color2, rgba(255,255,255,.54));
  --il-bg: var(--jp-layout-color0, #111111); --il-bg2: var(--jp-layout-color2, #313131);
  --il-border: var(--jp-border-color2, #1f1f1f); }
.il-repr .il-title { font-weight: bold; margin: 2px 0 4px 0; }
.il-repr table { border-collapse: collapse; }
.il-repr th { background: var(--il-bg2); color: var(--il-fg); text-align: left; padding: 1px 8px; }
.il-repr td { border-top: 1px solid var(--il-border); padding: 1px 8px; color: var(--il-fg); }
.il-repr .il-muted { color: var(--il-fg2); }
.il-repr .il-bad { color: var(--il-bad); font-weight: bold; }
.il-repr .il-good { color: var(--il-good); font-weight: bold; }
.il-repr .il-text { display: none; }
.il-repr .il-rich { display: block !important; }
</style>"""


def esc(value: object) -> str:
    return html.escape(str(value))


def table_html(
    title: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    text: str = "",
    footer: str = "",
    max_rows: int = 50,
    bad: bool = False,
) -> str:
    """A titled table; rows past ``max_rows`` are summarised, never silently dropped.

    Every argument is plain text, escaped here exactly once; ``footer`` keeps its line breaks,
    and ``bad=True`` shows it as a fault. ``text`` is the plain-text form shown where the CSS is
    stripped (default: the title).
    """
    rows = list(rows)
    shown = rows[:max_rows]
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in shown)
    more = ""
    if len(rows) > max_rows:
        more = f"<tr><td class='il-muted' colspan='{len(headers)}'>… {plural(len(rows) - max_rows, 'more row')}; use to_dataframe() for all</td></tr>"
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    cls = "il-bad" if bad else "il-muted"
    foot = f"<div class='{cls}'>{esc(footer).replace(chr(10), '<br>')}</div>" if footer else ""
    return (
        f"{CSS}<div class='il-repr'><pre class='il-text'>{esc(text or title)}</pre>"
        f"<div class='il-rich' style='display: none'><div class='il-title'>{esc(title)}</div>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}{more}</tbody></table>{foot}</div></div>"
    )
