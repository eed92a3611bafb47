"""The study's figures, as plotly figures.

Values go into the figures as plain lists (missing as null), so a report's HTML carries every
number as readable JSON rather than packed binary arrays.
"""

from __future__ import annotations

import math
from itertools import pairwise

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from attnfd.analysis.results import CONFIG, Study, format_value, trial_sort_key
from attnfd.analysis.search import dimensions, distribution, finished, value_labels
from attnfd.analysis.tables import Row
from attnfd.study_contract import COMPLETED

TEMPLATE = "plotly_white"
PALETTE = qualitative.Plotly + qualitative.Dark24
# characters per title line: about 500 px at plotly's 17 px title font, inside a figure on a narrow screen
TITLE_WIDTH = 60
TITLE_LINE_PX = 22  # the height of a title line at that font
# a log axis gets a tick at each value it shows when there are at most this many, none closer
# than 1/MAX_VALUE_TICKS_SPAN of the axis (a label is about 30 px, the axis 600 px or more)
MAX_VALUE_TICKS, MAX_VALUE_TICKS_SPAN = 12, 20
# legends name rows, whose labels run long: below the plot, where they take height, not the plot's width
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0}
LEGEND_ROW_PX = 30


def _list(values) -> list:
    return [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]


def _colours(labels: list[str]) -> dict[str, str]:
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(dict.fromkeys(labels))}


def per_class(study: Study, a: Row, b: Row) -> go.Figure:
    """Per-class IoU of two rows side by side (the paper's Figs. 7 and 8), with the seeds' std."""
    names = study.class_names
    fig = go.Figure()
    for row in (a, b):
        means, stds = row.per_class()
        width = max(len(means), len(names))
        classes = names + [f"class {i}" for i in range(len(names), width)]
        fig.add_bar(name=row.label, x=classes[: len(means)], y=_list(means),
                    error_y={"type": "data", "array": _list(stds), "visible": True})
    # row labels run long (every varying field): one per line, broken between fields, so the
    # title stays inside the figure; the top margin makes room for its lines
    lines = ["Per-class IoU (%)", *_wrapped(a.label), *_wrapped(f"vs {b.label}")]
    fig.update_layout(title={"text": "<br>".join(lines), "y": 1, "yref": "container", "yanchor": "top",
                             "pad": {"t": 16}},
                      margin={"t": 40 + TITLE_LINE_PX * len(lines)}, barmode="group", template=TEMPLATE,
                      yaxis_title="IoU (%)", legend=LEGEND_BELOW)
    return fig


def _legend_below(fig: go.Figure, height: int, y: float = LEGEND_BELOW["y"]) -> None:
    """The legend below the plot, one entry a row at most, the figure taller by its rows so the plot keeps its size."""
    entries = sum(1 for trace in fig.data if trace.showlegend is not False)
    fig.update_layout(legend={**LEGEND_BELOW, "y": y}, height=height + LEGEND_ROW_PX * entries)


def _wrapped(label: str, width: int = TITLE_WIDTH) -> list[str]:
    """A row label as lines of at most ``width`` characters, broken at its `` | `` separators."""
    lines: list[str] = []
    for part in label.split(" | "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " | " + part
        else:
            lines.append(part)
    return lines


def _log_ticks(values: list[float]) -> dict:
    """Ticks of a log axis, labelled with their values (plotly labels those between powers of
    ten with their first digit only: "2", "5"): at the values themselves where they are few and
    far enough apart for their labels, else at 1, 2 and 5 times the powers of ten."""
    low, high = math.log10(values[0]), math.log10(values[-1])
    gaps = [math.log10(b / a) for a, b in pairwise(values)]
    if len(values) <= MAX_VALUE_TICKS and min(gaps) >= (high - low) / MAX_VALUE_TICKS_SPAN:
        ticks = list(values)
    else:
        ticks = [m * 10.0**k for k in range(math.floor(low), math.ceil(high) + 1) for m in (1, 2, 5)
                 if values[0] <= m * 10.0**k <= values[-1]]
    return {"tickmode": "array", "tickvals": ticks, "ticktext": [format_value(v) for v in ticks]}


def alpha_sweep(rows: list[Row], log: bool | None = None) -> go.Figure | None:
    """Mean mIoU against alpha, one line per student and layer subset (and any other varying
    field); the no-distillation student as a dashed line. None when alpha takes one value.
    ``log``: whether alpha's axis is logarithmic (a search's study.json says); None guesses
    it from the alphas (a decade or more)."""
    distilled = [r for r in rows if not r.is_base and r.metrics["miou"].n and r.config.get("alpha") is not None]
    alphas = sorted({float(r.config["alpha"]) for r in distilled})
    if len(alphas) < 2:
        return None
    lines: dict[str, list[Row]] = {}
    for r in distilled:
        extra = [f"{k}={format_value(v)}" for k, v in r.key if k not in ("role", "backbone", "distill", "alpha", "layers")
                 and k not in dict(r.block) and v is not None]
        name = " | ".join([r.block_label, str(r.config.get("distill")), "layers=" + str(r.config.get("layers")).replace(",", "+")] + extra)
        lines.setdefault(name, []).append(r)
    fig = go.Figure()
    for name, members in lines.items():
        members.sort(key=lambda r: float(r.config["alpha"]))
        fig.add_scatter(name=name, mode="lines+markers", x=[float(r.config["alpha"]) for r in members],
                        y=_list(r.metrics["miou"].mean for r in members),
                        error_y={"type": "data", "array": _list(r.metrics["miou"].std for r in members), "visible": True})
    for base in (r for r in rows if r.is_base and r.metrics["miou"].n):
        fig.add_scatter(name=f"{base.block_label} | no distillation", mode="lines", line={"dash": "dash"},
                        x=[alphas[0], alphas[-1]], y=_list([base.metrics["miou"].mean] * 2))
    if log is None:
        log = alphas[0] > 0 and alphas[-1] / alphas[0] >= 10
    log = log and alphas[0] > 0
    fig.update_layout(title="val mIoU (%) against alpha", template=TEMPLATE, xaxis_title="alpha",
                      yaxis_title="val mIoU (%)", xaxis_type="log" if log else "linear")
    _legend_below(fig, 450)
    if log:
        fig.update_xaxes(**_log_ticks(alphas))
    return fig


def learning_curves(study: Study, rows: list[Row]) -> go.Figure | None:
    """val mIoU and training loss per epoch, one line per trial, coloured by its row."""
    if not len(study.epochs):
        return None
    cell_of = {t["trial_id"]: r.label for r in rows for t in r.trials}
    colours = _colours([cell_of.get(t, "?") for t in sorted(cell_of, key=trial_sort_key)])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("val mIoU (%)", "training loss"))
    shown = set()
    for trial_id, group in study.epochs.groupby("trial_id", sort=False):
        trial_id = str(trial_id)
        cell = cell_of.get(trial_id, "?")
        common = {"legendgroup": cell, "line": {"color": colours.get(cell)}, "hovertext": f"{trial_id}: {cell}"}
        evaluated = group[group["miou"].notna()]
        fig.add_scatter(row=1, col=1, name=cell, showlegend=cell not in shown, mode="lines+markers",
                        x=[int(e) for e in evaluated["epoch"]], y=_list(100 * evaluated["miou"]), **common)
        shown.add(cell)
        if "loss" in group:
            fig.add_scatter(row=2, col=1, name=cell, showlegend=False, mode="lines",
                            x=[int(e) for e in group["epoch"]], y=_list(group["loss"]), **common)
    fig.update_layout(title="Learning curves (one line per trial)", template=TEMPLATE)
    _legend_below(fig, 650, y=-0.1)
    fig.update_xaxes(title_text="epoch", row=2, col=1)
    if study.epochs["epoch"].max() <= 30:
        fig.update_xaxes(dtick=1)
    return fig


def parallel_coordinates(study: Study, dims: list[str] | None = None) -> go.Figure | None:
    """One line per completed trial across the searched dimensions, ending at its mIoU."""
    dims = dimensions(study) if dims is None else dims
    done = finished(study)
    if not len(done) or not dims:
        return None
    axes = []
    for dim in dims:
        column = list(done.get(CONFIG + dim, [None] * len(done)))
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column if v is not None)
        if numeric and any(v is not None for v in column):
            # parallel coordinates have no log axes: a log-searched dimension is drawn as its log10
            if getattr(distribution(study, dim), "log", False):
                axes.append({"label": f"log10({dim})", "values": _list(None if v is None else math.log10(v) for v in column)})
            else:
                axes.append({"label": dim, "values": _list(column)})
        else:
            levels = sorted({format_value(v) for v in column})
            axes.append({"label": dim, "values": [levels.index(format_value(v)) for v in column],
                             "tickvals": list(range(len(levels))), "ticktext": levels})
    miou = _list(100 * done["miou"])
    axes.append({"label": "val mIoU (%)", "values": miou})
    fig = go.Figure(go.Parcoords(dimensions=axes, line={"color": miou, "colorscale": "Viridis", "showscale": True}))
    fig.update_layout(title="The search in parallel coordinates (completed trials)", template=TEMPLATE)
    return fig


def best_so_far(study: Study) -> go.Figure | None:
    """The best completed mIoU so far against the trial-epochs spent, trials taken in the order
    they ran (``study.trials`` is in that order)."""
    trials = study.trials.to_dict("records")
    spent, best, xs, ys, points = 0, -math.inf, [], [], []
    for t in trials:
        spent += int(t["epochs_run"])
        if t["status"] == COMPLETED and t["miou"] is not None and math.isfinite(t["miou"]):
            best = max(best, 100 * t["miou"])
            points.append((spent, 100 * t["miou"], t["trial_id"]))
        if math.isfinite(best):
            xs.append(spent)
            ys.append(best)
    if not xs:
        return None
    fig = go.Figure()
    fig.add_scatter(name="best so far", mode="lines", line_shape="hv", x=xs, y=ys)
    fig.add_scatter(name="trial result", mode="markers", x=[p[0] for p in points], y=[p[1] for p in points],
                    hovertext=[p[2] for p in points])
    fig.update_layout(title="Best val mIoU (%) against trial-epochs spent", template=TEMPLATE,
                      xaxis_title="trial-epochs spent", yaxis_title="val mIoU (%)")
    return fig


def value_distributions(study: Study, dims: list[str] | None = None) -> go.Figure | None:
    """Box plots of the completed trials' mIoU per value of each dimension."""
    dims = dimensions(study) if dims is None else dims
    done = finished(study)
    if not len(done) or not dims:
        return None
    cols = min(3, len(dims))
    fig = make_subplots(rows=math.ceil(len(dims) / cols), cols=cols, subplot_titles=dims)
    for i, dim in enumerate(dims):
        labels, order = value_labels(study, dim, done)
        for value in order:
            values = done.loc[labels == value, "miou"]
            fig.add_box(row=i // cols + 1, col=i % cols + 1, name=value, y=_list(100 * values), boxpoints="all",
                        showlegend=False)
    fig.update_layout(title="val mIoU (%) per value of each dimension", template=TEMPLATE,
                      height=350 * math.ceil(len(dims) / cols))
    return fig
