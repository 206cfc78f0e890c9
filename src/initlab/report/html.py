"""One static HTML page for a workspace: every experiment's spec, figures, numbers, verdicts.

:func:`build_report` reads the ``OUT/NAME/summary.json`` files that
:func:`initlab.experiments.run_experiment` writes and renders, per experiment: the verdict
sentences, the figures (PNG shown, SVG one click away, both by relative path so the folder
can be moved or zipped), a table of headline numbers, the config (value and help per key)
and, once for the whole page, the provenance (library and torch versions and machine shared
by every experiment, then each one's seed and times). A table of contents heads the page.
Headers are words, not keys; tables wrap their cells to fit the page's column. Plain HTML
and CSS; one tiny inline script counts the images that loaded
(``data-images-total`` / ``data-images-loaded`` on ``<body>``) and the tables wider than
their column (``data-tables-overflowing``) so headless checks can read them.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from initlab import __version__
from initlab.errors import InitlabError

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"

_CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
        --accent: #0969da; --good: #1a7f37; --bad: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: var(--ink); background: #fff; }
header.page { background: var(--soft); border-bottom: 1px solid var(--line);
              padding: 1.4rem 2rem 1rem; }
header.page h1 { margin: 0 0 .3rem; font-size: 1.6rem; }
header.page p { margin: 0; color: var(--muted); }
main { max-width: 1180px; margin: 0 auto; padding: 1rem 2rem 3rem; }
nav.toc { border: 1px solid var(--line); border-radius: 8px; padding: .6rem 1.2rem;
          margin: 1rem 0 2rem; background: #fff; }
nav.toc h2 { font-size: 1rem; margin: .4rem 0; border: 0; }
nav.toc ol { margin: .2rem 0 .6rem; padding-left: 1.4rem; }
nav.toc li { margin: .15rem 0; }
nav.toc .desc { color: var(--muted); }
section.experiment { border-top: 2px solid var(--line); padding-top: 1rem; margin-top: 2.5rem; }
h2 { font-size: 1.35rem; margin: .2rem 0 .3rem; }
h3 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; color: var(--ink); }
h4 { font-size: .95rem; margin: 1rem 0 .3rem; color: var(--muted); }
.meta { color: var(--muted); margin: 0 0 .8rem; }
.badge { display: inline-block; font-size: .75rem; padding: .05rem .5rem; border-radius: 1rem;
         background: var(--soft); border: 1px solid var(--line); color: var(--muted);
         margin-left: .4rem; vertical-align: middle; }
ul.verdicts { list-style: none; padding: 0; margin: .6rem 0 1rem; }
ul.verdicts li { background: #eef6ff; border-left: 4px solid var(--accent);
                 padding: .45rem .8rem; margin: .35rem 0; border-radius: 0 6px 6px 0; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px;
             background: #fff; }
figcaption { color: var(--muted); font-size: .9rem; margin-top: .35rem; }
figcaption b { color: var(--ink); }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .88rem; max-width: 100%; }
th, td { border: 1px solid var(--line); padding: .3rem .6rem; text-align: left;
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.help { color: var(--muted); }
td.list code { white-space: normal; overflow-wrap: anywhere; }
td code { overflow-wrap: anywhere; }
.provenance td { overflow-wrap: anywhere; }  /* platform strings and timestamps of any length */
td.empty { color: var(--muted); font-style: italic; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85em;
       background: var(--soft); padding: .05rem .3rem; border-radius: 4px; }
.scroll { overflow-x: auto; }
.status-diverged, .status-failed, .status-interrupted, .status-missing { color: var(--bad); }
.status-done { color: var(--good); }
.badge.partial { background: #fff8c5; border-color: #d4a72c; color: #7d4e00; }
footer { color: var(--muted); font-size: .85rem; border-top: 1px solid var(--line);
         margin-top: 3rem; padding-top: .8rem; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-loaded", String(loaded.length));
  var boxes = Array.prototype.slice.call(document.querySelectorAll("div.scroll"));
  var wide = boxes.filter(function (d) { return d.scrollWidth > d.clientWidth + 1; });
  document.body.setAttribute("data-tables-total", String(boxes.length));
  document.body.setAttribute("data-tables-overflowing", String(wide.length));
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.3e}"
    return f"{value:.4g}"


_WORDS = {"acc": "accuracy", "lr": "learning rate", "std": "std", "num": "number of"}


def header(key: str) -> str:
    """A column or row name for people: ``steps_to_loss_0_5`` -> ``steps to loss 0.5``,
    ``test_acc`` -> ``test accuracy`` (names without underscores are kept as they are)."""
    if "_" not in key:
        return _WORDS.get(key, key)
    if key.endswith("_s"):  # a duration in seconds
        return f"{header(key[:-2])} (s)"
    text = re.sub(r"(?<=\d)_(?=\d)", ".", key)
    return " ".join(_WORDS.get(word, word) for word in text.split("_") if word)


def _short(value: float) -> str:
    """A number with 3 significant digits, for lists."""
    if isinstance(value, int) or not math.isfinite(value):  # bool is an int
        return _number(value)
    return f"{value:.3g}"


def _cell(value: Any) -> str:
    """A table cell: numbers right-aligned and compact, lists inline, the rest escaped."""
    if isinstance(value, bool) or value is None:
        return f"<td>{_e('none' if value is None else str(value).lower())}</td>"
    if isinstance(value, int | float):
        return f'<td class="num">{_e(_number(value))}</td>'
    if isinstance(value, list | tuple) and value:
        items = [_short(v) if isinstance(v, int | float) else str(v) for v in value]
        return f'<td class="list"><code>{_e(", ".join(items))}</code></td>'
    if isinstance(value, list | tuple | dict) and not value:
        return '<td class="empty">empty (the default)</td>'
    if isinstance(value, dict):
        items = [
            f"{k} = {_short(v) if isinstance(v, int | float) else v}" for k, v in value.items()
        ]
        return f'<td class="list"><code>{_e(", ".join(items))}</code></td>'
    return f"<td>{_e(value)}</td>"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _is_table(value: Any) -> bool:
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())
    )


def _rows_table(rows: Mapping[str, Mapping[str, Any]], first: str = "run") -> str:
    columns: list[str] = []
    for row in rows.values():
        columns.extend(key for key in row if key not in columns)
    return _table(
        [header(first), *(header(c) for c in columns)],
        ([f"<td>{_e(k)}</td>", *(_cell(r.get(c, "")) for c in columns)] for k, r in rows.items()),
    )


def _summary_tables(summary: Mapping[str, Any], heading: str = "") -> str:
    """The headline numbers: scalars as a name/value table; ``{key: {column: value}}`` entries
    (one per run) as one table with a row per key; a nested ``{name: {key: {...}}}`` as its
    own such table, headed by its name; deeper nesting (``{name: {group: {key: {...}}}}``)
    as one such table per group, headed "name: group"."""
    scalars = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    rows = {k: v for k, v in summary.items() if isinstance(v, dict) and not _is_table(v)}
    nested = {k: v for k, v in summary.items() if _is_table(v)}
    parts = []
    if scalars:
        pairs = ([f"<td>{_e(header(k))}</td>", _cell(v)] for k, v in scalars.items())
        parts.append(_table(["quantity", "value"], pairs))
    if rows:
        parts.append(_rows_table(rows, heading or "run"))
    for name, table in nested.items():
        if all(_is_table(v) for v in table.values()):
            for group, inner in table.items():
                parts.append(f"<h4>{_e(header(name))}: {_e(group)}</h4>")
                parts.append(_summary_tables(inner, "run"))
        else:
            parts.append(_rows_table(table, name))
    return "".join(parts) or "<p class='meta'>No headline numbers.</p>"


def _config_table(config: Mapping[str, Any], helps: Mapping[str, str]) -> str:
    return _table(
        ["key", "value", "meaning"],
        (
            [
                f"<td><code>{_e(k)}</code></td>",
                _cell(v),
                f'<td class="help">{_e(helps.get(k, ""))}</td>',
            ]
            for k, v in config.items()
        ),
    )


def _relative(target: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(target, page_dir)).as_posix()


def _figures(doc: Mapping[str, Any], exp_dir: Path, page_dir: Path) -> str:
    parts = []
    for fig in doc.get("figures", []):
        png = exp_dir / fig["png"]
        svg = exp_dir / fig.get("svg", fig["png"])
        parts.append(
            "<figure>"
            f'<a href="{_e(_relative(svg, page_dir))}">'
            f'<img src="{_e(_relative(png, page_dir))}" alt="{_e(fig["title"])}"></a>'
            f"<figcaption><b>{_e(fig['title'])}.</b> {_e(fig.get('caption', ''))} "
            f'(<a href="{_e(_relative(svg, page_dir))}">SVG</a>)</figcaption>'
            "</figure>"
        )
    return "".join(parts) or "<p class='meta'>No figures.</p>"


def _runs(doc: Mapping[str, Any]) -> str:
    runs = doc.get("runs", {})
    statuses: dict[str, str] = runs.get("statuses", {})
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    text = ", ".join(
        f'<span class="status-{_e(s)}">{n} {_e(s)}</span>' for s, n in sorted(counts.items())
    )
    line = (
        f"<p class='meta'>{runs.get('planned', 0)} runs planned: {text}; "
        f"{runs.get('executed', 0)} computed in the last invocation, "
        f"{runs.get('skipped', 0)} found in the store.</p>"
    )
    bad = [(k, s) for k, s in statuses.items() if s != "done"]
    if bad:
        line += _table(
            ["run", "status"],
            ([f"<td>{_e(k)}</td>", f'<td class="status-{_e(s)}">{_e(s)}</td>'] for k, s in bad),
        )
    return line


PER_RUN_PROVENANCE = ("seed", "started", "finished", "wall_time_s")
"""Provenance items that differ from one experiment to the next (the rest, versions and
machine, is shown once per report when every experiment shares it)."""


def _provenance(docs: Sequence[Mapping[str, Any]]) -> str:
    """One provenance section for the page: what every experiment shares (versions,
    machine) once, then one row per experiment with its seed, times and mode; an item that
    differs between experiments moves into those rows."""
    provs = [dict(doc.get("provenance", {})) for doc in docs]
    keys: list[str] = []
    for prov in provs:
        keys.extend(k for k in prov if k not in keys)
    shared = [
        k
        for k in keys
        if k not in PER_RUN_PROVENANCE and len({json.dumps(p.get(k)) for p in provs}) == 1
    ]
    own = [k for k in keys if k not in shared]
    parts = []
    if shared:
        pairs = ([f"<td>{_e(header(k))}</td>", _cell(provs[0].get(k))] for k in shared)
        parts.append(_table(["item", "value"], pairs))
    rows = (
        [
            f'<td><a href="#{_e(doc["experiment"])}">{_e(doc["experiment"])}</a></td>',
            _cell(doc.get("quick", False)),
            *(_cell(prov.get(k)) for k in own),
        ]
        for doc, prov in zip(docs, provs, strict=True)
    )
    parts.append(_table(["experiment", "quick", *(header(k) for k in own)], rows))
    head = '<section class="provenance" id="provenance"><h2>Provenance</h2>'
    return head + "".join(parts) + "</section>"


def _section(doc: Mapping[str, Any], exp_dir: Path, page_dir: Path) -> str:
    name = doc["experiment"]
    quick = '<span class="badge">quick</span>' if doc.get("quick") else ""
    if doc.get("partial"):
        runs = doc.get("runs", {})
        quick += (
            f'<span class="badge partial">partial: {runs.get("finished", "?")} of '
            f"{runs.get('planned', '?')} runs</span>"
        )
    verdicts = "".join(f"<li>{_e(v)}</li>" for v in doc.get("verdicts", []))
    return (
        f'<section class="experiment" id="{_e(name)}">'
        f"<h2>{_e(name)}{quick}</h2>"
        f"<p class='meta'>{_e(doc.get('description', ''))}<br>Source: {_e(doc.get('source', ''))}"
        f" &middot; expected cost {_e(doc.get('cost', '?'))}</p>"
        f'<ul class="verdicts">{verdicts}</ul>'
        f"<h3>Figures</h3>{_figures(doc, exp_dir, page_dir)}"
        f"<h3>Headline numbers</h3>{_summary_tables(doc.get('summary', {}))}"
        f"<h3>Runs</h3>{_runs(doc)}"
        f"<h3>Settings</h3>{_config_table(doc.get('config', {}), doc.get('config_help', {}))}"
        "</section>"
    )


def find_summaries(out_dir: str | Path) -> dict[str, Path]:
    """Every ``OUT/NAME/summary.json`` in the workspace, by experiment name (sorted)."""
    out = Path(out_dir)
    found = {}
    if out.is_dir():
        for path in sorted(out.glob(f"*/{SUMMARY_FILE}")):
            found[path.parent.name] = path
    return found


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InitlabError(f"cannot read {path}: {err}; run the experiment again") from None
    if not isinstance(doc, dict) or "experiment" not in doc:
        raise InitlabError(f"{path} is not an initlab summary; run the experiment again")
    return doc


def _order(names: Iterable[str]) -> list[str]:
    """Registry order first (the order of the lessons), then the rest alphabetically."""
    from initlab.experiments.registry import experiment_names

    known = experiment_names()
    names = list(names)
    return [n for n in known if n in names] + sorted(n for n in names if n not in known)


def build_report(out_dir: str | Path, experiments: Sequence[str] | None = None) -> Path:
    """Write the workspace's HTML report and return its path.

    With ``experiments=None`` every experiment found in ``out_dir`` is included and the page
    is ``OUT/report.html``; with one name it is ``OUT/NAME/report.html``; with several,
    ``OUT/report.html`` holding those. Figures are referenced by relative paths.
    """
    out = Path(out_dir)
    found = find_summaries(out)
    if experiments is None:
        names = _order(found)
        if not names:
            raise InitlabError(
                f"no experiment results in {str(out)!r}; "
                f"run one first: initlab run NAME --out {out}"
            )
    else:
        names = list(experiments)
        from initlab.experiments.registry import experiment_names

        unknown = [n for n in names if n not in found and n not in experiment_names()]
        if unknown:
            raise InitlabError(
                f"unknown experiment {unknown[0]!r}; valid: {', '.join(experiment_names())}"
            )
        missing = [n for n in names if n not in found]
        if missing:
            raise InitlabError(
                f"no results for {', '.join(missing)} in {str(out)!r}; run it first "
                f"(initlab run {missing[0]} --out {out}); found: {', '.join(found) or 'none'}"
            )
    page = (
        out / names[0] / REPORT_FILE
        if experiments is not None and len(names) == 1
        else out / REPORT_FILE
    )
    page_dir = page.parent
    docs = [(_load(found[n]), found[n].parent) for n in names]
    toc = "".join(
        f'<li><a href="#{_e(doc["experiment"])}">{_e(doc["experiment"])}</a> '
        f'<span class="desc">&mdash; {_e(doc.get("description", ""))}</span></li>'
        for doc, _ in docs
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    title = "initlab report" if len(docs) > 1 else f"initlab report: {names[0]}"
    body = "".join(_section(doc, exp_dir, page_dir) for doc, exp_dir in docs)
    body += _provenance([doc for doc, _ in docs])
    text = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f"<script>{_SCRIPT}</script></head><body>"
        f'<header class="page"><h1>{_e(title)}</h1>'
        f"<p>Weight initialization, signal propagation and the classic training experiments "
        f"&middot; initlab {_e(__version__)} &middot; built {_e(now)} &middot; "
        f"workspace <code>{_e(out.resolve())}</code></p></header>"
        f'<main><nav class="toc"><h2>Contents</h2><ol>{toc}<li><a href="#provenance">'
        f"provenance</a></li></ol></nav>{body}"
        f"<footer>Generated by initlab {_e(__version__)}. Each figure links to its SVG; "
        f"the numbers come from <code>summary.json</code> next to the figures, the runs from "
        f"<code>runs.db</code>.</footer></main></body></html>\n"
    )
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text, "utf-8")
    return page
