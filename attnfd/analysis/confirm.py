"""A search's confirm stage: its best configs, the paper's setting and the student alone, each
rerun over fresh seeds, all paired; which one is best over those seeds, whether it beats the
paper's setting and the plain student, and how the search's ranking held up.

study.json ``confirm`` says what the stage ran (written by ``attnfd.study.confirm``): the
seeds, and per cell its searched values, its rank among the search's completed configs,
whether it is the paper's setting or the reference (the student alone), and the search trial
it came from. The numbers come from the rows whose ``phase`` is ``confirm``.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

from attnfd.analysis.noise import seed_noise
from attnfd.analysis.results import Study, cell_fields, cell_key, format_value
from attnfd.analysis.stats import ALPHA, CORRECTIONS, Comparison, compare, correct, format_number_p
from attnfd.analysis.tables import (
    CORRECTION_SHORT,
    MISSING,
    SIGNIFICANT,
    Row,
    Table,
    build_rows,
    comparison_record,
    difference_cell,
    seeds_cell,
    summary_cell,
    test_cell,
)
from attnfd.study_contract import COMPLETED, CONFIRM, SEARCH

PAPER, REFERENCE = "the paper's setting", "no distillation"


def _same(a, b) -> bool:
    if a in (None, "none") or b in (None, "none"):
        return a in (None, "none") and b in (None, "none")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def _cell_of(row: Row, cells: list[dict]) -> dict | None:
    """The cell a row ran: the reference for the student alone (whose config still carries the
    base's alpha and layers), else the distilled cell with the row's searched values."""
    config = row.config
    for cell in cells:
        if bool(cell.get("reference")) != row.is_base:
            continue
        if all(_same(config.get(k), v) for k, v in (cell.get("values") or {}).items()):
            return cell
    return None


def role(cell: dict | None) -> str:
    if cell is None:
        return MISSING
    if cell.get("reference"):
        return REFERENCE
    rank = cell.get("search_rank")
    searched = f"search #{rank}" if rank else "search"
    return f"{PAPER} ({searched})" if cell.get("paper") else searched


class Confirmation:
    """The confirm stage's rows with their comparisons, ranks and noise."""

    def __init__(self, study: Study, correction: str = "holm"):
        self.study, self.correction = study, correction
        self.meta = study.meta.get("confirm") or {}
        self.cells = list(self.meta.get("cells") or [])
        fields = cell_fields(study.trials, study.row_roles)
        confirm = study.phase(CONFIRM)
        self.rows = build_rows(confirm, correction, fields=fields)
        self.cell = {id(r): _cell_of(r, self.cells) for r in self.rows}
        self.base = next((r for r in self.rows if r.is_base), None)
        self.paper = next((r for r in self.rows if (self.cell[id(r)] or {}).get("paper")), None)
        # the search's single-seed result of each confirmed config
        search = study.phase(SEARCH)
        by_key: dict[tuple, list[float]] = {}
        for t in search.trials.to_dict("records"):
            if t["status"] == COMPLETED and isinstance(t.get("miou"), float) and math.isfinite(t["miou"]):
                by_key.setdefault(cell_key(t, fields, study.row_roles), []).append(100 * t["miou"])
        self.search_miou = {id(r): (sum(v) / len(v) if (v := by_key.get(r.key)) else math.nan) for r in self.rows}
        scored = [r for r in self.rows if r.metrics["miou"].n]
        self.ranked = sorted(scored, key=lambda r: -r.metrics["miou"].mean)
        self.confirmed_rank = {id(r): i for i, r in enumerate(self.ranked, 1)}
        searched = sorted((r for r in self.rows if math.isfinite(self.search_miou[id(r)])),
                          key=lambda r: -self.search_miou[id(r)])
        # these rows in the order of their search results (the reference among them)
        self.search_order = {id(r): i for i, r in enumerate(searched, 1)}
        # every distilled row against the paper's setting, corrected over those comparisons
        self.vs_paper: dict[int, Comparison] = {}
        self.p_paper: dict[int, float] = {}
        if self.paper is not None:
            others = [r for r in self.rows if r is not self.paper and not r.is_base]
            for r in others:
                self.vs_paper[id(r)] = compare(r.by_seed("miou"), self.paper.by_seed("miou"))
            for r, p in zip(others, correct([self.vs_paper[id(r)].p for r in others], correction)):
                self.p_paper[id(r)] = p
        self.noise = seed_noise(self.rows, "the confirm stage")

    @property
    def best(self) -> Row | None:
        distilled = [r for r in self.ranked if not r.is_base]
        return distilled[0] if distilled else None

    def _verdict(self, c: Comparison | None, p_corrected: float, against: str, family: int) -> str:
        if c is None or not math.isfinite(c.diff):
            return f"against {against}: no comparison (no result on one side)"
        text = f"against {against}: {difference_cell(c)} points ({test_cell(c)}"
        if math.isfinite(c.p):
            text += f", p={format_number_p(c.p)}, {CORRECTION_SHORT[self.correction]} p={format_number_p(p_corrected)}"
            text += f" over {family} comparison{'s' if family != 1 else ''})"
            beats = p_corrected < ALPHA and c.diff > 0
            text += ": beats it" if beats else ": not significant" if p_corrected >= ALPHA else ": significantly worse"
        else:
            text += "; no test: fewer than two paired seeds or no spread)"
        return text

    def summary_lines(self) -> list[str]:
        """What the confirm stage found, in sentences (the table's notes and the study's last lines)."""
        seeds = ", ".join(map(str, self.meta.get("seeds") or []))
        lines = []
        top, completed = self.meta.get("top"), self.meta.get("completed")
        if top is not None and completed is not None and completed < top:
            lines.append(f"the search completed {completed} searched configs at its full budget (the scheduler stopped "
                         f"the others), so {completed} were confirmed where --confirm asked for {top}")
        best = self.best
        if best is None:
            return lines + ["no confirmed result yet"]
        lines.append(f"confirmed best: {role(self.cell[id(best)])}, {best.label}: val mIoU {summary_cell(best, 'miou')} "
                     f"over seeds {seeds} ({best.metrics['miou'].n} completed)")
        if self.paper is best:
            lines.append("the confirmed best is the paper's setting itself")
        elif self.paper is not None:
            lines.append(self._verdict(self.vs_paper.get(id(best)), self.p_paper.get(id(best), math.nan), PAPER,
                                       sum(1 for p in self.p_paper.values() if math.isfinite(p))))
        if self.base is not None:
            family = sum(1 for r in self.rows if r.tested("miou"))
            lines.append(self._verdict(best.vs_base.get("miou"), best.p_corrected.get("miou", math.nan), REFERENCE,
                                       family))
        lines.append(self.ranking_line())
        if self.noise is not None:
            lines.append(self.noise.describe())
        return lines

    def ranking_line(self) -> str:
        both = [r for r in self.rows if id(r) in self.search_order and id(r) in self.confirmed_rank]
        named = next((r for r in self.rows if (self.cell[id(r)] or {}).get("search_rank") == 1), None)
        text = (f"ranking: the search's best ({role(self.cell[id(named)])}) is confirmed rank "
                f"{self.confirmed_rank.get(id(named), MISSING)} of {len(self.confirmed_rank)}") if named else \
            "ranking: no confirmed config has a search result"
        if len(both) >= 3:
            tau = stats.kendalltau([self.search_order[id(r)] for r in both], [self.confirmed_rank[id(r)] for r in both])
            text += (f"; Kendall's tau between the search's order (one run each) and the confirmed order (mean over "
                     f"the seeds) {tau.statistic:+.2f} over {len(both)} configs")
        return text

    def table(self) -> Table:
        short = CORRECTION_SHORT[self.correction]
        dims = [d for d in self.study.searched if any(d in (c.get("values") or {}) for c in self.cells)]
        seeds = ", ".join(map(str, self.meta.get("seeds") or []))
        search_seed = self.meta.get("search_seed")
        header = ["Rank", "Config", *dims, "Seeds", "val mIoU (%)", "Search order",
                  f"Search val mIoU (%), seed {format_value(search_seed)}",
                  "Δ vs no distillation [95% CI]", "p vs none", f"{short} p vs none",
                  "Δ vs paper's setting [95% CI]", "p vs paper", f"{short} p vs paper"]
        table = Table(name="confirm", body=[], header=header,
                      title=f"Confirmation over seeds {seeds}: the search's best configs, {PAPER} and the student alone "
                            f"(paired; {CORRECTIONS[self.correction]}-corrected p)")
        records = []
        for row in self.ranked + [r for r in self.rows if id(r) not in self.confirmed_rank]:
            cell = self.cell[id(row)]
            c_base, c_paper = row.vs_base.get("miou"), self.vs_paper.get(id(row))
            p_base, p_paper = row.p_corrected.get("miou", math.nan), self.p_paper.get(id(row), math.nan)
            values = ["n/a" if row.is_base else format_value(row.config.get(d)) for d in dims]
            search = self.search_miou[id(row)]

            def mark(p: float) -> str:
                return format_number_p(p) + (f" {SIGNIFICANT}" if math.isfinite(p) and p < ALPHA else "")

            table.body.append([
                str(self.confirmed_rank.get(id(row), MISSING)), role(cell), *values, seeds_cell(row),
                summary_cell(row, "miou"), str(self.search_order.get(id(row), MISSING)),
                f"{search:.2f}" if math.isfinite(search) else MISSING,
                "" if row.is_base else difference_cell(c_base), "" if c_base is None else format_number_p(c_base.p),
                "" if row.is_base else mark(p_base),
                "" if c_paper is None else difference_cell(c_paper), "" if c_paper is None else format_number_p(c_paper.p),
                "" if c_paper is None else mark(p_paper),
            ])
            if row is self.best:
                table.bold.add(len(table.body) - 1)
            s = row.metrics["miou"]
            records.append({
                "confirmed_rank": self.confirmed_rank.get(id(row)), "config": role(cell), "row": row.label,
                **{d: None if row.is_base else row.config.get(d) for d in dims},
                "seeds": ",".join(map(format_value, row.seeds_done)) or None, "miou_n": s.n, "miou_pct_mean": s.mean,
                "miou_pct_std": s.std, "search_rank": (cell or {}).get("search_rank"),
                "search_order": self.search_order.get(id(row)), "search_miou_pct": search,
                "search_trial": (cell or {}).get("search_trial"), "correction": self.correction,
                **comparison_record("vs_none", c_base), "vs_none_p_corrected": p_base,
                **comparison_record("vs_paper", c_paper), "vs_paper_p_corrected": p_paper,
                "is_best": row is self.best,
            })
        table.notes.extend(self.summary_lines())
        table.notes.append(f"{SIGNIFICANT}: the corrected p stays below {ALPHA:g}. Δ vs none is corrected over the "
                           "distilled rows, Δ vs the paper's setting over the other distilled rows. Rank: by the mean over "
                           "the confirm stage's seeds; Search order: the same rows by their search result (one run each "
                           f"at seed {format_value(search_seed)}; the confirm stage's seeds are fresh).")
        table.frame = pd.DataFrame(records)
        return table


def has_confirm_stage(study: Study) -> bool:
    return "phase" in study.trials and bool((study.trials["phase"] == CONFIRM).any())


def confirm_table(study: Study, correction: str = "holm") -> Table:
    return Confirmation(study, correction).table()
