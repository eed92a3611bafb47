"""A search's confirm stage: after the search's trials, its best configs, the paper's setting
and the student alone, each rerun over fresh seeds, all paired.

A search runs every config at one seed, so the config it ranks first is partly that seed's
luck. The confirm stage reruns the ``confirm`` best configs the search completed (ranked by
val mIoU at the full budget; trials the scheduler stopped early are not comparable with them
and are left out), the paper's setting (when it is not among them) and the student alone,
over ``confirm_seeds`` seeds the search did not use (its seed + 1, + 2, ...). The same seeds
for every config: the runs pair by seed.

Its trials are an ordinary grid (``attnfd.study.runner``), a Ray experiment of their own in
the study's folder (``<name>/confirm/``), their rows marked ``phase=confirm``. What it chose is
written into study.json (``confirm``) before its first trial starts, so a resumed study runs
the same cells and skips the trials that finished; it starts only once every search trial
has ended.
"""

from __future__ import annotations

import dataclasses
import math

from attnfd.config import TrainConfig
from attnfd.study import results as res
from attnfd.study_contract import COMPLETED, CONFIRM, EPOCHS_DIR, FINISHED, SEARCH

CONFIG = "config/"


def confirm_seeds(spec) -> list[int]:
    first = spec.seeds[0]
    return [first + k for k in range(1, spec.confirm_seeds + 1)]


def confirm_plan(spec) -> dict:
    """What study.json records before the search starts; the cells are added once it has ended."""
    return {"top": spec.confirm, "seeds": confirm_seeds(spec), "search_seed": spec.seeds[0]}


def search_rows(spec) -> list[dict]:
    """The last row of every search trial written so far (the reference trial among them)."""
    last_rows = []
    for path in res.list_files(spec.storage, f"{spec.name}/{EPOCHS_DIR}"):
        rows = res.read_rows(spec.storage, path)
        if rows:
            last = max(rows, key=lambda r: r["epoch"])
            if (last.get("phase") or SEARCH) == SEARCH:
                last_rows.append(last)
    return last_rows


def search_ended(rows: list[dict], trials: int) -> bool:
    return sum(1 for r in rows if r.get("status") in FINISHED) >= trials


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _same_values(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)


def _is_reference(row: dict) -> bool:
    return row.get(CONFIG + "distill") in (None, "none")


def choose_cells(spec, rows: list[dict]) -> tuple[list[dict], int]:
    """The confirm stage's cells (best first, then the paper's setting if it is not among them,
    then the student alone) and how many distinct searched configs the search completed."""
    done = [r for r in rows if r.get("status") == COMPLETED and not _is_reference(r)
            and isinstance(r.get("miou"), float) and math.isfinite(r["miou"])]
    done.sort(key=lambda r: (-r["miou"], r.get("time") or 0.0))
    ranked: list[dict] = []
    for r in done:
        values = {d: r.get(CONFIG + d) for d in spec.searched}
        if not any(_same_values(values, c["values"]) for c in ranked):
            ranked.append({"values": values, "search_rank": len(ranked) + 1, "search_trial": r["trial_id"],
                           "search_miou": r["miou"], "paper": False, "reference": False})
    paper_alpha = TrainConfig.from_dict({**spec.base, "alpha": None}).alpha
    paper_values = spec.space.paper_point(paper_alpha)
    cells = [dict(c) for c in ranked[:spec.confirm]]
    paper = next((c for c in cells if _same_values(c["values"], paper_values)), None)
    if paper is None:
        searched = next((c for c in ranked if _same_values(c["values"], paper_values)), None)
        paper = dict(searched) if searched is not None else {"values": paper_values, "search_rank": None,
                                                               "search_trial": None, "search_miou": None,
                                                               "reference": False}
        cells.append(paper)
    paper["paper"] = True
    reference = next((r for r in rows if _is_reference(r)), None)
    cells.append({"values": {"distill": None}, "search_rank": None, "paper": False, "reference": True,
                  "search_trial": reference["trial_id"] if reference else None,
                  "search_miou": reference.get("miou") if reference else None})
    return cells, len(ranked)


def describe(cell: dict) -> str:
    if cell["reference"]:
        return "the student alone"
    searched = f"search #{cell['search_rank']}" if cell.get("search_rank") else "not completed in the search"
    return f"the paper's setting ({searched})" if cell["paper"] else searched


def confirm_spec(spec, plan: dict):
    """The confirm stage as a grid spec of its own: the chosen cells x the fresh seeds."""
    return dataclasses.replace(spec, phase=CONFIRM, cells=[dict(c["values"]) for c in plan["cells"]],
                               seeds=list(plan["seeds"]), num_samples=1, asha=False, confirm=0, reference=False)


def confirm_stage(spec, search_trials: int) -> tuple[object, str] | None:
    """The confirm stage as a grid spec, its cells chosen from the search's rows (or read back
    on resume), and the line that announces it; None while a search trial has not ended."""
    rows = search_rows(spec)
    if not search_ended(rows, search_trials):
        print(f"the confirm stage starts once every search trial has ended; continue with --resume --name {spec.name}",
              flush=True)
        return None
    meta = res.read_study_meta(spec.storage, spec.name) or {}
    plan = {**confirm_plan(spec), **(meta.get("confirm") or {})}
    if not plan.get("cells"):
        plan["cells"], plan["completed"] = choose_cells(spec, rows)
        res.write_study_meta(spec.storage, spec.name, {**meta, "confirm": plan})
    shown = ", ".join(describe(c) for c in plan["cells"])
    return confirm_spec(spec, plan), (f"confirm stage: {len(plan['cells'])} configs ({shown}) x seeds "
                                      f"{', '.join(map(str, plan['seeds']))} = "
                                      f"{len(plan['cells']) * len(plan['seeds'])} trials")
