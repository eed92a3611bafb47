"""The paper's tables from a study's trials: Table 3 (layer subsets), Table 1 (methods), the
alpha sweep, and a plain per-cell table for anything else.

Every table has one block per student (the no-distillation row first) and one row per cell.
A metric shows mean ± std over the cell's completed seeds in percent. Each row is compared
with its block's no-distillation row: paired over the seeds both have (the paired t-test,
its 95% CI and the exact sign-flip p), else Welch's test (attnfd.analysis.stats says why).
The p-values of a block's comparisons are corrected together (Holm, or Benjamini-Hochberg),
and a row whose corrected p stays below 0.05 is marked. The last column compares each row
with the block's best row the same way, uncorrected. A row with fewer seeds than asked, a
failed or unfinished trial, or a missing value says so in a note under the table; a missing
value is shown as "-", never as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from attnfd.analysis.results import (
    CONFIG,
    Study,
    cell_fields,
    cell_key,
    cell_label,
    format_value,
    is_finite_number,
)
from attnfd.analysis.row_roles import RowRoles
from attnfd.analysis.stats import (
    ALPHA,
    CORRECTIONS,
    EXACT_PAIRS,
    PAIRED,
    Comparison,
    Summary,
    compare,
    correct,
    format_number_p,
    format_p,
    summarise,
)
from attnfd.distill.methods import declared_methods
from attnfd.distill.spec import spec_items, split_layers
from attnfd.study_contract import COMPLETED, FAILED, SEARCH, STATUSES, STOPPED, UNFINISHED

METRICS = ("miou", "pixel_acc")
METRIC_TITLES = {"miou": "val mIoU (%)", "pixel_acc": "val Accuracy (%)"}
TAP_ORDER = ("backbone", "encoder", "decoder")
# the backbone's earlier stages get columns only in a study that distilled one (--taps)
STAGE_ORDER = ("stage1", "stage2", "stage3")
CHECK = "✓"
MISSING = "-"


@dataclass
class Row:
    key: tuple
    block: tuple
    trials: list[dict]
    seeds_asked: int | None = None
    seed_values: list | None = None
    metrics: dict[str, Summary] = field(default_factory=dict)
    # difference of the means with the block's no-distillation row
    delta: dict[str, float] = field(default_factory=dict)
    # the comparison with the block's no-distillation row, and its p corrected over the block
    vs_base: dict[str, Comparison] = field(default_factory=dict)
    p_corrected: dict[str, float] = field(default_factory=dict)
    correction: str = "holm"
    vs_best: dict[str, Comparison] = field(default_factory=dict)
    is_base: bool = False
    is_best: bool = False
    # val mIoU at each completed trial's best epoch (selection on val), beside the last epoch's
    best_epoch_miou: Summary | None = None

    @property
    def label(self) -> str:
        return cell_label(self.key)

    @property
    def block_label(self) -> str:
        return cell_label(self.block)

    @property
    def config(self) -> dict:
        """The row's config as its trials ran it (the first trial's; they differ only in seed)."""
        return {k.removeprefix(CONFIG): v for k, v in self.trials[0].items() if k.startswith(CONFIG)}

    @property
    def completed(self) -> list[dict]:
        return [t for t in self.trials if t["status"] == COMPLETED]

    @property
    def failed(self) -> list[dict]:
        return [t for t in self.trials if t["status"] == FAILED]

    @property
    def stopped(self) -> list[dict]:
        return [t for t in self.trials if t["status"] == STOPPED]

    @property
    def unfinished(self) -> list[dict]:
        return [t for t in self.trials if t["status"] in UNFINISHED]

    @property
    def seeds_done(self) -> list:
        """Seeds of the completed trials that have the study's metric."""
        return sorted({t.get(CONFIG + "seed") for t in self.completed if is_finite_number(t.get("miou"))}, key=str)

    @property
    def missing_seeds(self) -> list | None:
        if self.seed_values is None:
            return None
        done = set(map(str, self.seeds_done))
        return [s for s in self.seed_values if str(s) not in done]

    @property
    def short(self) -> bool:
        return self.seeds_asked is not None and len(self.seeds_done) < self.seeds_asked

    def by_seed(self, metric: str) -> dict:
        """The metric in percent per seed of the completed trials (a seed run twice: their mean)."""
        values: dict = {}
        for t in self.completed:
            if is_finite_number(t.get(metric)):
                values.setdefault(t.get(CONFIG + "seed"), []).append(100 * t[metric])
        return {seed: float(np.mean(v)) for seed, v in values.items()}

    def tested(self, metric: str) -> bool:
        """Whether the comparison with the block's no-distillation row has a p-value (one of the block's family)."""
        c = self.vs_base.get(metric)
        return c is not None and math.isfinite(c.p)

    def significant(self, metric: str) -> bool:
        p = self.p_corrected.get(metric, math.nan)
        return math.isfinite(p) and p < ALPHA

    @property
    def params_m(self) -> float:
        values = [t["params_m"] for t in self.trials if is_finite_number(t.get("params_m"))]
        return float(np.mean(values)) if values else math.nan

    def per_class(self) -> tuple[list[float], list[float]]:
        """Per-class IoU in percent, mean and std over the completed seeds (NaN where a class has none)."""
        vectors = [t["per_class_iou"] for t in self.completed if t.get("per_class_iou") is not None]
        if not vectors:
            return [], []
        width = max(len(v) for v in vectors)
        means, stds = [], []
        for i in range(width):
            s = summarise(100 * v[i] for v in vectors if i < len(v))
            means.append(s.mean)
            stds.append(s.std)
        return means, stds


def _is_plain(key_or_config: dict) -> bool:
    return key_or_config.get("role", "student") == "student" and key_or_config.get("distill") in (None, "", "none")


def _block_fields(fields: list[str], roles: RowRoles) -> list[str]:
    return [f for f in fields if f not in roles.when_distilling and f != "distill"]


def build_rows(study: Study, correction: str = "holm", fields: list[str] | None = None) -> list[Row]:
    """One row per cell, grouped in blocks (student and any other non-distillation field that
    varies), each compared with its block's plain student (p corrected over the block with
    ``correction``) and with its best row. ``fields``: the config fields that make a cell
    (default: those that vary in ``study``)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    trials = study.trials.to_dict("records")
    if not trials:
        return []
    roles = study.row_roles
    fields = cell_fields(study.trials, roles) if fields is None else fields
    block_fields = _block_fields(fields, roles)
    rows: dict[tuple, Row] = {}
    for trial in trials:
        key = cell_key(trial, fields, roles)
        if key not in rows:
            block = tuple((k, v) for k, v in key if k in block_fields)
            rows[key] = Row(key=key, block=block, trials=[], seeds_asked=study.seeds_asked, seed_values=study.seed_values,
                            correction=correction)
        rows[key].trials.append(trial)
    for row in rows.values():
        for metric in METRICS:
            row.metrics[metric] = summarise(100 * t[metric] for t in row.completed if is_finite_number(t.get(metric)))
        row.best_epoch_miou = summarise(100 * t["best_miou"] for t in row.completed if is_finite_number(t.get("best_miou")))
    blocks: dict[tuple, list[Row]] = {}
    for row in rows.values():
        blocks.setdefault(row.block, []).append(row)
    primary = study.metric if study.metric in METRICS else "miou"
    for members in blocks.values():
        base = next((r for r in members if _is_plain(dict(r.key))), None)
        if base is not None:
            base.is_base = True
        scored = [r for r in members if r.metrics[primary].n]
        best = max(scored, key=lambda r: r.metrics[primary].mean) if scored else None
        if best is not None:
            best.is_best = True
        for metric in METRICS:
            for row in members:
                mine = row.by_seed(metric)
                if base is not None and row is not base:
                    row.delta[metric] = row.metrics[metric].mean - base.metrics[metric].mean
                    row.vs_base[metric] = compare(mine, base.by_seed(metric))
                if best is not None and row is not best:
                    row.vs_best[metric] = compare(mine, best.by_seed(metric))
            compared = [r for r in members if metric in r.vs_base]
            for row, p in zip(compared, correct([r.vs_base[metric].p for r in compared], correction)):
                row.p_corrected[metric] = p
    return rows_in_order(list(rows.values()))


def _layers_order(layers) -> tuple:
    taps = split_layers(layers)
    return (len(taps), tuple(TAP_ORDER.index(t) if t in TAP_ORDER else 99 for t in taps))


def _method_order(distill) -> tuple:
    name = str(distill or "none")
    if name == "none":
        return (0, 0, "")
    if name == "attnfd":
        return (3, 0, "")
    items = spec_items(name)
    if len(items) > 1 or any(weight for _, weight in items):
        return (4, 0, name)
    # Table 1's order in the paper (each method's table_row; AttnFD last); other methods sort by name before AttnFD
    method = declared_methods().get(name)
    row = method.table_row if method is not None else None
    return (1, row, "") if row is not None else (2, 0, name)


def _sortable(value) -> tuple:
    return (0, float(value), "") if is_finite_number(value) else (1, 0.0, format_value(value))


def rows_in_order(rows: list[Row]) -> list[Row]:
    """Teachers first, then students by size (the paper's Student1 before Student2); in a block
    the plain student first, then method, layer subset (paper order), alpha and the rest."""

    def block_order(block: tuple) -> tuple:
        members = [r for r in rows if r.block == block]
        params = max((r.params_m for r in members if is_finite_number(r.params_m)), default=0.0)
        role = dict(block).get("role")
        return (0 if role == "teacher" else 1, -params, cell_label(block))

    def row_order(row: Row) -> tuple:
        c = row.config
        plain = _is_plain(dict(row.key))
        rest = tuple(_sortable(v) for k, v in row.key if k not in ("layers", "alpha", "distill"))
        return (
            0 if plain else 1,
            _method_order(dict(row.key).get("distill")),
            _layers_order(c.get("layers")) if not plain else (),
            _sortable(c.get("alpha")) if not plain else (),
            rest,
        )

    blocks = sorted({r.block for r in rows}, key=block_order)
    return [r for b in blocks for r in sorted((r for r in rows if r.block == b), key=row_order)]


@dataclass
class Table:
    """A table ready to render: text cells, bold rows, rules between blocks, notes below."""

    name: str
    title: str
    header: list[str]
    body: list[list[str]]
    bold: set[int] = field(default_factory=set)
    rule_before: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    frame: pd.DataFrame | None = None  # the numbers behind the table, for CSV


# how a correction is named in a column header or a cell
CORRECTION_SHORT = {"holm": "Holm", "bh": "BH"}
SIGNIFICANT = "*"


def summary_cell(row: Row, metric: str) -> str:
    """mean ± std over the seeds (``[n=2]`` when fewer seeds than the row's have this metric)."""
    s = row.metrics[metric]
    if not s.n:
        return MISSING
    text = f"{s.mean:.2f}" if s.n < 2 else f"{s.mean:.2f} ± {s.std:.2f}"
    if s.n < len(row.seeds_done):
        text += f" [n={s.n}]"
    return text


def corrected_text(row: Row, metric: str) -> str:
    """The corrected p of the comparison with the no-distillation row, marked when it stays significant."""
    p = row.p_corrected.get(metric, math.nan)
    return format_number_p(p) + (f" {SIGNIFICANT}" if row.significant(metric) else "")


def metric_cell(row: Row, metric: str) -> str:
    """mean ± std, then in brackets the difference to the block's no-distillation row and its
    corrected p-value."""
    text = summary_cell(row, metric)
    c = row.vs_base.get(metric)
    if text == MISSING or c is None or not math.isfinite(c.diff):
        return text
    inside = [f"{c.diff:+.2f}"]
    if math.isfinite(row.p_corrected.get(metric, math.nan)):
        inside.append(f"{CORRECTION_SHORT[row.correction]} p={corrected_text(row, metric)}")
    return text + f" ({', '.join(inside)})"


def difference_cell(c: Comparison | None) -> str:
    """``+9.00 [+6.52, +11.48]``: a difference and its 95% CI (the CI left out where there is none)."""
    if c is None or not math.isfinite(c.diff):
        return MISSING
    if not (math.isfinite(c.low) and math.isfinite(c.high)):
        return f"{c.diff:+.2f}"
    return f"{c.diff:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"


def test_cell(c: Comparison | None) -> str:
    if c is None or not math.isfinite(c.diff):
        return ""
    return f"paired t, {c.n} seeds" if c.paired else "Welch"


def best_cell(row: Row, metric: str) -> str:
    if row.is_best:
        return "best"
    c = row.vs_best.get(metric)
    if c is None or not row.metrics[metric].n or not math.isfinite(c.diff):
        return MISSING
    p = format_p(c.p)
    return f"{c.diff:+.2f}" + (f" ({'paired' if c.paired else 'Welch'} {p})" if p else "")


def comparison_cells(row: Row, metric: str) -> list[str]:
    """The columns of the comparison with the block's no-distillation row: difference and CI,
    the test, its p, the corrected p, the exact permutation p."""
    if row.is_base:
        return ["", "", "", "", ""]
    c = row.vs_base.get(metric)
    if c is None or not math.isfinite(c.diff):
        return [MISSING, "", "", "", ""]
    return [difference_cell(c), test_cell(c), format_number_p(c.p), corrected_text(row, metric),
            format_number_p(c.p_exact)]


def comparison_header(correction: str) -> list[str]:
    return ["Δ mIoU vs no distillation [95% CI]", "test", "p", f"{CORRECTION_SHORT[correction]} p", "p exact"]


def statistics_note(rows: list[Row], correction: str, metric: str = "miou") -> str:
    """What the comparison columns mean, with each block's family size."""
    families = []
    for block in dict.fromkeys(r.block for r in rows):
        m = sum(1 for r in rows if r.block == block and r.tested(metric))
        if m:
            families.append(f"{cell_label(block)}: {m}")
    smallest = min((r.vs_base[metric].n for r in rows if metric in r.vs_base and r.vs_base[metric].paired
                    and r.vs_base[metric].n >= 2), default=None)
    floor = (f"; with {smallest} pairs it cannot be below 2/2^{smallest} = {2 / 2 ** smallest:.3g}"
             if smallest is not None and smallest <= EXACT_PAIRS else "")
    return (f"Δ: the row minus its block's no-distillation row, the mean of the per-seed differences over the "
            f"seeds both have ({PAIRED}-test, 95% t interval); Welch's test over each row's seeds where fewer than "
            f"two seeds are shared. {CORRECTION_SHORT[correction]} p: {CORRECTIONS[correction]}'s correction over "
            f"each block's comparisons with its no-distillation row ({', '.join(families) or 'none testable'}); "
            f"{SIGNIFICANT} stays below {ALPHA:g}. p exact: the sign-flip permutation test of the paired "
            f"differences{floor}.")


def seeds_cell(row: Row) -> str:
    done = len(row.seeds_done)
    text = f"{done}/{row.seeds_asked}" if row.seeds_asked is not None else str(done)
    return text + (" †" if row_note(row) else "")


def row_note(row: Row) -> str | None:
    parts = []
    if row.short:
        part = f"{len(row.seeds_done)} of {row.seeds_asked} seeds"
        missing = row.missing_seeds
        if missing:
            part += f" (missing seed {', '.join(map(str, missing))})"
        parts.append(part)
    for t in row.failed:
        parts.append(f"trial {t['trial_id']} (seed {format_value(t.get(CONFIG + 'seed'))}) failed "
                     f"{when_failed(t)}: {t.get('error') or 'no error message'}")
    for t in row.stopped:
        parts.append(f"trial {t['trial_id']} stopped early at epoch {t['epochs_run']}")
    for t in row.unfinished:
        parts.append(f"trial {t['trial_id']} still {t['status']} (epoch {t['epochs_run']})")
    for t in row.trials:
        if t["status"] not in STATUSES:
            parts.append(f"trial {t['trial_id']} has status {t['status']!r}, not counted")
    for t in row.completed:
        if not is_finite_number(t.get("miou")) and not is_finite_number(t.get("pixel_acc")):
            parts.append(f"trial {t['trial_id']} completed without an evaluated epoch")
        else:
            gone = [METRIC_TITLES[m].split(" (")[0] for m in METRICS if not is_finite_number(t.get(m))]
            if gone:
                parts.append(f"trial {t['trial_id']} has no {', '.join(gone)} at epoch {result_epoch(t)}")
    return f"† {row.label}: " + "; ".join(parts) if parts else None


def result_epoch(trial: dict) -> int | None:
    epoch = trial.get("result_epoch")
    return int(epoch) if is_finite_number(epoch) else None


def when_failed(trial: dict) -> str:
    done = trial.get("epochs_run") or 0
    return f"after epoch {done}" if done else "before its first epoch"


def _used_stages(rows: list[Row]) -> list[str]:
    used = {t for row in rows if not row.is_base for t in split_layers(row.config.get("layers"))}
    return [t for t in STAGE_ORDER if t in used]


def _tap_marks(row: Row, order: tuple[str, ...] = TAP_ORDER) -> list[str]:
    if row.is_base:
        return ["n/a"] * len(order)
    taps = split_layers(row.config.get("layers"))
    return [CHECK if t in taps else "" for t in order]


def _student(row: Row) -> str:
    block = dict(row.block)
    text = ("teacher " if block.get("role") == "teacher" else "") + format_value(block.get("backbone"))
    extra = [f"{k}={format_value(v)}" for k, v in row.block if k not in ("role", "backbone")]
    return " ".join([text] + extra)


def _method(row: Row) -> str:
    if dict(row.block).get("role") == "teacher":
        return "teacher"
    return "no distillation" if row.is_base or _is_plain(dict(row.key)) else str(row.config.get("distill"))


def comparison_record(prefix: str, c: Comparison | None) -> dict:
    """A comparison's numbers as CSV columns named ``<prefix>_...`` (percent points; empty where missing)."""
    c = c or Comparison("", 0, math.nan)
    return {
        f"{prefix}_test": c.test or None, f"{prefix}_pairs": c.n if c.paired else None,
        f"{prefix}_paired_seeds": ",".join(map(format_value, c.seeds)) or None,
        f"{prefix}_pct_diff": c.diff, f"{prefix}_pct_ci_low": c.low, f"{prefix}_pct_ci_high": c.high,
        f"{prefix}_pct_diff_sd": c.sd, f"{prefix}_p": c.p, f"{prefix}_p_exact": c.p_exact, f"{prefix}_p_welch": c.p_welch,
    }


def frame(rows: list[Row], study: Study) -> pd.DataFrame:
    """The numbers behind a table, one line per row (percent units; empty where missing)."""
    records = []
    for row in rows:
        record = {"block": row.block_label, "row": row.label}
        record.update({k: v for k, v in row.key})
        record.update({
            "layers_run": row.config.get("layers") if not row.is_base else None,
            "alpha_run": row.config.get("alpha") if not row.is_base else None,
            "seeds_asked": row.seeds_asked, "seeds_done": len(row.seeds_done),
            "seeds": ",".join(map(format_value, row.seeds_done)) or None,
            "missing_seeds": ",".join(map(str, row.missing_seeds or [])) or None,
            "failed": len(row.failed), "stopped": len(row.stopped), "unfinished": len(row.unfinished),
            "params_m": row.params_m, "correction": row.correction,
        })
        for metric in METRICS:
            s = row.metrics[metric]
            record.update({f"{metric}_pct_mean": s.mean, f"{metric}_pct_std": s.std, f"{metric}_n": s.n,
                           f"{metric}_pct_delta": row.delta.get(metric, math.nan)})
            record.update(comparison_record(metric, row.vs_base.get(metric)))
            record.update({f"{metric}_p_corrected": row.p_corrected.get(metric, math.nan),
                           f"{metric}_significant": row.significant(metric) if metric in row.vs_base else None})
            best = row.vs_best.get(metric)
            record.update({
                f"{metric}_pct_vs_best": best.diff if best is not None else 0.0 if row.is_best else math.nan,
                f"{metric}_p_vs_best": best.p if best is not None else math.nan,
                f"{metric}_test_vs_best": best.test if best is not None else None,
            })
        best = row.best_epoch_miou
        if best is not None:
            record.update({"best_epoch_miou_pct_mean": best.mean, "best_epoch_miou_pct_std": best.std,
                           "best_epoch_miou_n": best.n})
        record.update({"is_base": row.is_base, "is_best": row.is_best, "note": row_note(row)})
        records.append(record)
    return pd.DataFrame(records)


def _shown_fields(rows: list[Row], dedicated: tuple[str, ...]) -> list[str]:
    """Row fields that vary and have no column of their own."""
    names = []
    for row in rows:
        for k, _ in row.key:
            if k not in names and k not in dedicated and k not in dict(row.block) and k not in ("role", "backbone", "distill"):
                names.append(k)
    return names


def _no_cells(row: Row) -> list[str]:
    return []


@dataclass(frozen=True)
class ProtocolColumns:
    """A protocol's own columns: ``lead`` before the columns every table shares (seeds, the
    metrics, the comparisons) and ``tail`` after them, with each row's cells under them.
    ``dedicated``: the config fields these columns show, which get no generic column."""

    lead: list[str]
    lead_cells: Callable[[Row], list[str]]
    dedicated: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()
    tail_cells: Callable[[Row], list[str]] = _no_cells


@dataclass(frozen=True)
class ProtocolTable:
    name: str  # the files' name (<name>.md, .csv, ...)
    title: str
    columns: Callable[[list[Row]], ProtocolColumns]


# by protocol: a grid protocol's (attnfd.study.protocols) under its name, and the search's
PROTOCOL_TABLES: dict[str, ProtocolTable] = {}


def table_builder(protocol: str, name: str, title: str):
    """Register a function ``(rows) -> ProtocolColumns`` as the table of ``protocol``."""

    def register(columns: Callable[[list[Row]], ProtocolColumns]):
        PROTOCOL_TABLES[protocol] = ProtocolTable(name=name, title=title, columns=columns)
        return columns

    return register


def table_protocols() -> tuple[str, ...]:
    """The protocols the analysis has a table for: every grid protocol and the search."""
    return tuple(PROTOCOL_TABLES)


@table_builder("layers", "table3", "Table 3: distilled layers")
def _layers_columns(rows: list[Row]) -> ProtocolColumns:
    stages = _used_stages(rows)
    return ProtocolColumns(lead=["Student", *(t.capitalize() for t in stages), "Backbone", "Encoder", "Decoder"],
                           lead_cells=lambda row: [_student(row)] + _tap_marks(row, (*stages, *TAP_ORDER)),
                           dedicated=("layers",))


@table_builder("methods", "table1", "Table 1: distillation methods")
def _methods_columns(rows: list[Row]) -> ProtocolColumns:
    return ProtocolColumns(lead=["Student", "Method"], lead_cells=lambda row: [_student(row), _method(row)],
                           dedicated=("distill",), tail=("Params (M)",),
                           tail_cells=lambda row: [f"{row.params_m:.1f}" if is_finite_number(row.params_m) else MISSING])


def _alpha_cells(row: Row) -> list[str]:
    c = row.config
    plain = row.is_base or _is_plain(dict(row.key))
    return [_student(row), "n/a" if plain else str(c.get("layers")).replace(",", "+"),
            "n/a" if plain else format_value(c.get("alpha"))]


@table_builder("alpha", "alpha", "Alpha sweep")
def _alpha_columns(rows: list[Row]) -> ProtocolColumns:
    return ProtocolColumns(lead=["Student", "Layers", "alpha"], lead_cells=_alpha_cells, dedicated=("layers", "alpha"))


@table_builder(SEARCH, "cells", "Every configuration")
def _every_configuration(rows: list[Row]) -> ProtocolColumns:
    return ProtocolColumns(lead=["Student", "Method"], lead_cells=lambda row: [_student(row), _method(row)])


def protocol_table(study: Study, protocol: str | None = None, rows: list[Row] | None = None,
                   correction: str = "holm") -> Table:
    """The table of a protocol in the paper's form; ``protocol`` defaults to the study's (one
    without a table of its own gets the search's, every configuration)."""
    protocol = protocol or study.protocol
    if protocol not in PROTOCOL_TABLES:
        protocol = SEARCH
    rows = build_rows(study, correction) if rows is None else rows
    correction = rows[0].correction if rows else correction
    shape = PROTOCOL_TABLES[protocol]
    title = shape.title + (f" (mean ± std over seeds; paired difference vs no distillation with its 95% CI, "
                           f"{CORRECTIONS[correction]}-corrected p)")
    columns = shape.columns(rows)
    other = _shown_fields(rows, columns.dedicated)
    header = columns.lead + other + ["Seeds", METRIC_TITLES["miou"], *comparison_header(correction),
                                     METRIC_TITLES["pixel_acc"], "vs best mIoU", *columns.tail]
    table = Table(name=shape.name, title=title, header=header, body=[])
    previous = None
    for row in rows:
        if previous is not None and row.block != previous:
            table.rule_before.add(len(table.body))
        previous = row.block
        cells = columns.lead_cells(row)
        key = dict(row.key)
        cells += [format_value(key.get(k)) if key.get(k) is not None else ("n/a" if row.is_base else MISSING) for k in other]
        cells += [seeds_cell(row), summary_cell(row, "miou"), *comparison_cells(row, "miou"),
                  metric_cell(row, "pixel_acc"), best_cell(row, "miou"), *columns.tail_cells(row)]
        if row.is_best:
            table.bold.add(len(table.body))
        table.body.append(cells)
        note = row_note(row)
        if note:
            table.notes.append(note)
    if any(r.vs_base for r in rows):
        table.notes.append(statistics_note(rows, correction))
    table.notes.extend(f"warning: {w}" for w in study.warnings)
    table.frame = frame(rows, study)
    return table


def _summary_text(s: Summary | None) -> str:
    if s is None or not s.n:
        return MISSING
    return f"{s.mean:.2f}" if s.n < 2 else f"{s.mean:.2f} ± {s.std:.2f}"


def best_epoch_table(study: Study, rows: list[Row] | None = None) -> Table:
    """Each row's last-epoch val mIoU next to its best epoch's. The best epoch is picked on the
    validation split itself, so its score is optimistic; it is what the official AttnFD code
    keeps (``model_best.pth.tar``) and its README reports, hence shown, labelled, beside the
    last epoch's."""
    rows = build_rows(study) if rows is None else rows
    table = Table(
        name="best_epoch",
        title="Last-epoch and best-epoch val mIoU (%): the best epoch is selected on val (optimistic; "
              "the official code's model_best and its README's numbers)",
        header=["Row", "Seeds", "last-epoch val mIoU (%)", "best-epoch val mIoU (%), selection on val",
                "best - last", "best epochs"], body=[])
    previous = None
    for row in rows:
        if previous is not None and row.block != previous:
            table.rule_before.add(len(table.body))
        previous = row.block
        last, best = row.metrics["miou"], row.best_epoch_miou
        gap = f"{best.mean - last.mean:+.2f}" if best is not None and best.n and last.n else MISSING
        epochs = sorted({int(t["best_epoch"]) for t in row.completed if is_finite_number(t.get("best_epoch"))})
        table.body.append([row.label, seeds_cell(row), _summary_text(last), _summary_text(best), gap,
                           ",".join(map(str, epochs)) or MISSING])
    table.frame = frame(rows, study)
    return table
