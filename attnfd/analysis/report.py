"""A study's analysis: its tables and figures, written beside its results.

``<study>/analysis/`` (``./<study name>-analysis/`` for a study read from a URI) receives each table as ``.md``, ``.tex``, ``.csv`` and ``.html``, each
figure as ``figures/<name>.html`` (sharing one ``figures/plotly.min.js``), and ``report.html``:
every table and figure in one file with plotly.js inlined, so it opens offline anywhere.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from attnfd.analysis import figures as figs
from attnfd.analysis import render
from attnfd.analysis.confirm import Confirmation, has_confirm_stage
from attnfd.analysis.noise import search_noise
from attnfd.analysis.results import ResultsError, Study
from attnfd.analysis.search import best_table, dimensions, importance_table, values_table
from attnfd.analysis.seeds import seeds_table
from attnfd.analysis.stats import CORRECTIONS
from attnfd.analysis.tables import Row, Table, best_epoch_table, build_rows, protocol_table, table_protocols
from attnfd.study_contract import SEARCH, is_search

FIGURE_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass
class Analysis:
    study: Study
    protocol: str
    rows: list[Row]
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, go.Figure] = field(default_factory=dict)


def find_row(rows: list[Row], name: str) -> Row:
    """A row by its label, or by a piece of it that names one row only."""
    exact = [r for r in rows if r.label == name]
    if exact:
        return exact[0]
    partial = [r for r in rows if name in r.label]
    if len(partial) == 1:
        return partial[0]
    known = "; ".join(r.label for r in rows)
    if not partial:
        raise ResultsError(f"no row is named {name!r}; rows: {known}")
    raise ResultsError(f"{name!r} names {len(partial)} rows; give more of the label. Rows: {known}")


def default_pairs(rows: list[Row]) -> list[tuple[Row, Row]]:
    """Per block: the plain student against the best row, else the two best rows."""
    pairs = []
    for block in dict.fromkeys(r.block for r in rows):
        members = [r for r in rows if r.block == block and r.per_class()[0]]
        ranked = sorted(members, key=lambda r: -r.metrics["miou"].mean if r.metrics["miou"].n else float("inf"))
        base = next((r for r in members if r.is_base), None)
        best = next((r for r in ranked if r.is_best), None)
        if base is not None and best is not None and base is not best:
            pairs.append((base, best))
        elif len(ranked) >= 2:
            pairs.append((ranked[0], ranked[1]))
    return pairs


def analyse(study: Study, protocol: str | None = None, compare: tuple[str, str] | None = None, top: int = 10,
            correction: str = "holm", detect: float = 1.0) -> Analysis:
    """Every table and figure of a study. ``correction`` (holm or bh) corrects each block's
    comparisons with its no-distillation row; ``detect`` is the difference (val mIoU points)
    the seeds-needed table says how many seeds would detect."""
    protocol = protocol or study.protocol
    if protocol not in table_protocols():
        raise ResultsError(f"unknown protocol {protocol!r}; choose one of {', '.join(table_protocols())}")
    if correction not in CORRECTIONS:
        raise ResultsError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    if not (detect > 0 and math.isfinite(detect)):
        raise ResultsError(f"the difference to detect must be a finite number > 0, got {detect}")
    # a search's confirm stage reruns its configs at other seeds: its trials get their own table
    own = study.phase(SEARCH) if is_search(protocol) else study
    rows = build_rows(own, correction)
    analysis = Analysis(study=study, protocol=protocol, rows=rows)
    if is_search(protocol):
        dims = dimensions(own)
        noise = search_noise(study)
        analysis.tables += [best_table(own, rows, dims, top, noise), importance_table(own, dims),
                            values_table(own, dims, noise)]
        if has_confirm_stage(study):
            confirmation = Confirmation(study, correction)
            analysis.tables += [confirmation.table(), seeds_table(confirmation.rows, detect)]
    else:
        analysis.tables += [protocol_table(own, protocol, rows), seeds_table(rows, detect)]
    analysis.tables.append(best_epoch_table(own, rows))
    pairs = [(find_row(rows, compare[0]), find_row(rows, compare[1]))] if compare else default_pairs(rows)
    for i, (a, b) in enumerate(pairs):
        analysis.figures[f"per_class_{i + 1}"] = figs.per_class(own, a, b)
    alpha = own.space.get("alpha")
    optional = {
        "alpha_sweep": figs.alpha_sweep(rows, log=alpha.log if alpha is not None else None),
        "learning_curves": figs.learning_curves(own, rows),
    }
    if is_search(protocol):
        optional.update({
            "parallel_coordinates": figs.parallel_coordinates(own),
            "best_so_far": figs.best_so_far(own),
            "value_distributions": figs.value_distributions(own),
        })
    analysis.figures.update({k: v for k, v in optional.items() if v is not None})
    return analysis


def _summary(study: Study) -> str:
    counts = study.trials["status"].value_counts().to_dict()
    facts = [
        f"protocol: {study.protocol}",
        f"dataset: {study.meta.get('dataset', '?')}",
        f"created: {study.meta.get('created', '?')}",
        f"seeds per cell: {study.meta.get('seeds', '?')}",
        "trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        f"folder: {study.folder}",
    ]
    return "<p>" + "<br>".join(html.escape(f) for f in facts) + "</p>"


def report_html(analysis: Analysis) -> str:
    """One self-contained page: tables, then figures, plotly.js inlined once."""
    study = analysis.study
    parts = [f"<h1>{html.escape(study.name)}</h1>", _summary(study)]
    parts += [render.to_html(t) for t in analysis.tables]
    if analysis.figures:
        parts.append("<h2>Figures</h2>")
    for i, (name, fig) in enumerate(analysis.figures.items()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=f"figure-{name}", config=FIGURE_CONFIG))
    return render.html_page(f"{study.name}: analysis", "\n".join(parts))


def default_out(study: Study) -> Path:
    """Beside the results; a study read from a URI (a bucket) gets a local folder named after it."""
    return study.path / "analysis" if study.path is not None else Path(f"{study.name}-analysis")


def write(analysis: Analysis, out_dir: str | Path | None = None) -> list[Path]:
    """Write every table, figure and the report; returns the files written."""
    out = Path(out_dir) if out_dir else default_out(analysis.study)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in analysis.tables:
        for suffix, text in (
            (".md", render.to_markdown(table)),
            (".tex", render.to_latex(table)),
            (".html", render.html_page(table.title, render.to_html(table))),
        ):
            path = out / f"{table.name}{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
        if table.frame is not None:
            path = out / f"{table.name}.csv"
            table.frame.to_csv(path, index=False)
            written.append(path)
    figure_dir = out / "figures"
    for name, fig in analysis.figures.items():
        figure_dir.mkdir(exist_ok=True)
        path = figure_dir / f"{name}.html"
        fig.write_html(path, include_plotlyjs="directory", config=FIGURE_CONFIG)
        written.append(path)
    path = out / "report.html"
    path.write_text(report_html(analysis), encoding="utf-8")
    written.append(path)
    return written
