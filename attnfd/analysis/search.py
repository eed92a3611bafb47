"""What a free search found: its best configurations, how much each searched dimension
matters, and the spread of mIoU over each dimension's values.

The importances come from Optuna's own evaluators, run on an in-memory Optuna study rebuilt
from the result rows: a completed trial with an mIoU is COMPLETE (its value in percent), an
early-stopped one PRUNED (with its per-epoch mIoU as intermediate values), a failed one or
one that finished without an mIoU FAIL; unfinished trials are left out. PED-ANOVA needs
nothing more; fANOVA and mean decrease impurity are added when scikit-learn is installed.

A search says how much it can know: importances computed from fewer completed trials than
PED-ANOVA needs are flagged as no finding, a value with one trial has no spread, and the seed
noise (from the confirm stage, or from configs run at several seeds) stands next to the
differences between configs, which a search measures at one seed each.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd

from attnfd.analysis.noise import NO_NOISE, SeedNoise
from attnfd.analysis.results import CONFIG, Study, format_value, is_missing, varying_fields
from attnfd.analysis.stats import format_p, summarise
from attnfd.analysis.tables import MISSING, Row, Table, result_epoch, seeds_cell, summary_cell, when_failed
from attnfd.study_contract import COMPLETED, FAILED, STOPPED, UNFINISHED

# more distinct numeric values than this are grouped into quantile bins for the distribution
MAX_VALUES = 8
BINS = 4
# PED-ANOVA's top quantile (Optuna's default gamma'), and how many trials Optuna's documentation
# asks to have in it: "it is preferable to include at least 5 trials above target_quantile"
PED_ANOVA_TOP = 0.1
PED_ANOVA_TOP_TRIALS = 5


def importance_trials_needed(top: float = PED_ANOVA_TOP, in_top: int = PED_ANOVA_TOP_TRIALS) -> int:
    """The fewest completed trials whose top quantile holds ``in_top`` trials (as PED-ANOVA
    counts it: ceil(top * n))."""
    n = 1
    while math.ceil(top * n) < in_top:
        n += 1
    return n


def dimensions(study: Study) -> list[str]:
    """The searched config fields (study.json ``searched``), else every field that varies."""
    present = {c.removeprefix(CONFIG) for c in study.trials.columns if str(c).startswith(CONFIG)}
    searched = [d for d in study.searched if d in present]
    return searched or [d for d in varying_fields(study.trials, study.row_roles) if d != "role"]


def _spec(study: Study, dim: str):
    searched = study.meta.get("searched")
    if isinstance(searched, dict):
        return searched.get(dim, searched.get(CONFIG + dim))
    return None


def is_log_scale(study: Study, dim: str, low: float, high: float) -> bool:
    """Whether ``dim`` (its values in [low, high]) was searched on a log scale: as study.json's
    ``space`` says; in a study written before it said, as a spec under ``searched`` says (a
    results folder put together by hand), else guessed: values spanning two decades or more."""
    described = study.space.get(dim)
    if described is not None:
        return described.log
    spec = _spec(study, dim)
    if isinstance(spec, dict) and "log" in spec:
        return bool(spec["log"])
    if spec is not None and "log" in str(spec).lower():
        return True
    return low > 0 and high / low >= 100


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def distribution(study: Study, dim: str):
    """An Optuna distribution that holds every value the trials took for ``dim``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    values = [v for v in study.trials.get(CONFIG + dim, pd.Series(dtype=object)) if not is_missing(v)]
    if values and all(_number(v) for v in values):
        low, high = min(values), max(values)
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(low), int(high))
        log = low > 0 and is_log_scale(study, dim, float(low), float(high))
        return FloatDistribution(float(low), float(high), log=log)
    return CategoricalDistribution(sorted({format_value(v) for v in values}))


def _param(value, dist):
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return format_value(value)
    return int(value) if isinstance(dist, IntDistribution) else float(value)


def optuna_study(study: Study, dims: list[str] | None = None):
    """An in-memory Optuna study holding one frozen trial per finished result-folder trial."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dims = dimensions(study) if dims is None else dims
    dists = {d: distribution(study, d) for d in dims}
    curves = {}
    if len(study.epochs) and "miou" in study.epochs:
        for trial_id, group in study.epochs.groupby("trial_id"):
            curves[str(trial_id)] = {int(e): 100 * float(m) for e, m in zip(group["epoch"], group["miou"])
                                     if m is not None and math.isfinite(float(m))}
    ostudy = optuna.create_study(direction="maximize", study_name=study.name)
    frozen = []
    for t in study.trials.to_dict("records"):
        if t["status"] in UNFINISHED or is_reference(t):
            continue
        params = {d: _param(t.get(CONFIG + d), dists[d]) for d in dims if t.get(CONFIG + d) is not None}
        has_value = t["miou"] is not None and math.isfinite(t["miou"])
        if t["status"] == COMPLETED and has_value:
            state, value = TrialState.COMPLETE, 100 * t["miou"]
        elif t["status"] == STOPPED:
            state, value = TrialState.PRUNED, None
        else:
            state, value = TrialState.FAIL, None
        frozen.append(create_trial(
            state=state, value=value, params=params, distributions={d: dists[d] for d in params},
            intermediate_values=curves.get(str(t["trial_id"]), {}),
            user_attrs={"trial_id": str(t["trial_id"]), "status": t["status"]},
        ))
    ostudy.add_trials(frozen)
    return ostudy


def _evaluators() -> dict:
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        PedAnovaImportanceEvaluator,
    )

    evaluators = {"ped_anova": PedAnovaImportanceEvaluator(target_quantile=PED_ANOVA_TOP)}
    try:
        import sklearn  # noqa: F401

        evaluators["fanova"] = FanovaImportanceEvaluator(seed=0)
        evaluators["mean_decrease_impurity"] = MeanDecreaseImpurityImportanceEvaluator(seed=0)
    except ImportError:
        pass
    return evaluators


def importances(study: Study, dims: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Normalised importance of each searched dimension per evaluator, and notes on what could
    not be computed."""
    import optuna

    dims = dimensions(study) if dims is None else dims
    ostudy = optuna_study(study, dims)
    complete = [t for t in ostudy.trials if t.state == optuna.trial.TrialState.COMPLETE]
    notes = []
    table = pd.DataFrame({"dimension": dims})
    if len(complete) < 2:
        notes.append(f"importance needs at least 2 completed trials with an mIoU; the study has {len(complete)}")
        return table, notes
    for name, evaluator in _evaluators().items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(ostudy, evaluator=evaluator, params=dims)
        except Exception as err:  # noqa: BLE001 - one evaluator failing must not cost the report the others
            notes.append(f"{name}: {type(err).__name__}: {err}")
            continue
        table[name] = [found.get(d, math.nan) for d in dims]
    if "fanova" not in table:
        notes.append("fANOVA and mean decrease impurity need scikit-learn (not installed)")
    if "ped_anova" in table:
        table = table.sort_values("ped_anova", ascending=False, kind="stable").reset_index(drop=True)
    return table, notes


def value_labels(study: Study, dim: str, trials: pd.DataFrame | None = None) -> tuple[pd.Series, list[str]]:
    """Each trial's value of ``dim`` as a label, numeric dimensions with many values grouped in
    quantile bins; and the labels in order."""
    trials = study.trials if trials is None else trials
    column = trials.get(CONFIG + dim, pd.Series([None] * len(trials), index=trials.index))
    present = [v for v in column if not is_missing(v)]
    if present and all(_number(v) for v in present) and len(set(present)) > MAX_VALUES:
        edges = np.unique(np.quantile(np.asarray(present, dtype=float), np.linspace(0, 1, BINS + 1)))
        names = [f"[{a:.3g}, {b:.3g}{']' if i == len(edges) - 2 else ')'}" for i, (a, b) in enumerate(itertools.pairwise(edges))]

        def bin_of(v):
            if is_missing(v):
                return MISSING
            i = min(int(np.searchsorted(edges, float(v), side="right")) - 1, len(names) - 1)
            return names[max(i, 0)]

        return column.map(bin_of), names
    order = sorted(set(present), key=lambda v: (0, float(v), "") if _number(v) else (1, 0.0, str(v)))
    return column.map(lambda v: MISSING if is_missing(v) else format_value(v)), [format_value(v) for v in order]


def is_reference(trial: dict) -> bool:
    """The search's reference trial: the student alone, outside what the search varies."""
    return trial.get(CONFIG + "distill") == "none"


def finished(study: Study) -> pd.DataFrame:
    """Completed searched trials with an mIoU: the results a distribution is made of."""
    t = study.trials
    searched = t[CONFIG + "distill"] != "none" if CONFIG + "distill" in t else True
    return t[(t["status"] == COMPLETED) & t["miou"].notna() & searched]


def value_distribution(study: Study, dims: list[str] | None = None) -> pd.DataFrame:
    """mIoU (percent) of the completed trials per value of each dimension."""
    dims = dimensions(study) if dims is None else dims
    done = finished(study)
    records = []
    for dim in dims:
        labels, order = value_labels(study, dim, done)
        for value in order + ([MISSING] if (labels == MISSING).any() else []):
            s = summarise(100 * done.loc[labels == value, "miou"])
            records.append({"dimension": dim, "value": value, "trials": s.n, "miou_pct_mean": s.mean,
                            "miou_pct_std": s.std, "miou_pct_min": min(s.values, default=math.nan),
                            "miou_pct_max": max(s.values, default=math.nan)})
    return pd.DataFrame(records, columns=["dimension", "value", "trials", "miou_pct_mean", "miou_pct_std",
                                          "miou_pct_min", "miou_pct_max"])


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else MISSING


def best_table(study: Study, rows: list[Row], dims: list[str], top: int = 10, noise: SeedNoise | None = None) -> Table:
    """The best configurations over the whole search, each compared with the very best, and
    the seed noise those differences stand against."""
    scored = sorted((r for r in rows if r.metrics["miou"].n), key=lambda r: -r.metrics["miou"].mean)
    shown = scored[:top]
    best = shown[0] if shown else None
    header = ["Rank"] + dims + ["Seeds", "val mIoU (%)", "val Accuracy (%)", "Epochs", "vs best mIoU",
                                "vs no distillation", "Trials"]
    table = Table(name="search_best", title=f"Best configurations ({len(shown)} of {len(scored)} with a result)",
                  header=header, body=[])
    records = []
    for rank, row in enumerate(shown, 1):
        config = row.config
        gap = row.metrics["miou"].mean - best.metrics["miou"].mean
        c = row.vs_best.get("miou")
        p = c.p if c is not None and row is not best else math.nan
        epochs = sorted({result_epoch(t) for t in row.completed if result_epoch(t) is not None})
        versus = "best" if row is best else f"{gap:+.2f}" + (f" ({format_p(p)})" if format_p(p) else "")
        reference = row.is_base
        # the reference trial is the student alone: the searched fields do not apply to it
        cells = ["no distillation (reference)"] + [""] * (len(dims) - 1) if reference and dims else \
            [format_value(config.get(d)) for d in dims]
        gained = row.delta.get("miou", math.nan)
        against = "reference" if reference else f"{gained:+.2f}" if math.isfinite(gained) else MISSING
        table.body.append([str(rank)] + cells + [
            seeds_cell(row), summary_cell(row, "miou"), summary_cell(row, "pixel_acc"),
            ",".join(map(str, epochs)) or MISSING, versus, against, " ".join(t["trial_id"] for t in row.completed)])
        if row is best:
            table.bold.add(len(table.body) - 1)
        records.append({"rank": rank, **{d: config.get(d) for d in dims}, "seeds_done": len(row.seeds_done),
                        "miou_pct_mean": row.metrics["miou"].mean, "miou_pct_std": row.metrics["miou"].std,
                        "pixel_acc_pct_mean": row.metrics["pixel_acc"].mean,
                        "pixel_acc_pct_std": row.metrics["pixel_acc"].std, "miou_pct_vs_best": gap,
                        "miou_p_vs_best": p, "reference": reference, "miou_pct_vs_no_distillation": gained,
                        "seed_noise_pair_sd_pct": noise.pair_sd if noise is not None else math.nan,
                        "trials": " ".join(t["trial_id"] for t in row.completed)})
    counts = study.trials["status"].value_counts().to_dict()
    table.notes.append("trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    table.notes.append(noise_note(noise))
    for t in study.trials.to_dict("records"):
        if t["status"] == FAILED:
            table.notes.append(f"trial {t['trial_id']} failed {when_failed(t)}: {t.get('error') or 'no error message'}")
    table.frame = pd.DataFrame(records)
    return table


def noise_note(noise: SeedNoise | None) -> str:
    """The seed noise next to the differences between configs, each of which ran at one seed."""
    if noise is None:
        return NO_NOISE
    text = noise.describe()
    if math.isfinite(noise.pair_sd):
        text += (f"; a gap between two single runs smaller than about 2 x {noise.pair_sd:.2f} = "
                 f"{2 * noise.pair_sd:.2f} points is within that noise")
    return text


def importance_table(study: Study, dims: list[str]) -> Table:
    found, notes = importances(study, dims)
    evaluators = [c for c in found.columns if c != "dimension"]
    titles = {"ped_anova": "PED-ANOVA", "fanova": "fANOVA", "mean_decrease_impurity": "Mean decrease impurity"}
    completed = len(finished(study))
    needed = importance_trials_needed()
    title = f"Importance of each searched dimension (Optuna, normalised to 1; {completed} completed trials)"
    if completed < needed:
        title += f": too few trials to be a finding ({needed} needed)"
        why = (f"not a finding: computed from {completed} completed trials. PED-ANOVA compares the top "
               f"{PED_ANOVA_TOP:.0%} of the completed trials with all of them, and Optuna's documentation asks for "
               f"at least {PED_ANOVA_TOP_TRIALS} trials in that top {PED_ANOVA_TOP:.0%}: {needed} completed trials. "
               f"With {completed}, the top holds {math.ceil(PED_ANOVA_TOP * completed)}, and an importance only says "
               "in which dimension those trials' values stand out, not what matters")
        notes = [why, *notes]
    found = found.assign(completed_trials=completed, trials_needed=needed, enough=completed >= needed)
    table = Table(name="search_importance", title=title,
                  header=["Dimension"] + [titles.get(e, e) for e in evaluators], body=[], notes=notes, frame=found)
    for record in found.to_dict("records"):
        table.body.append([record["dimension"]] + [_num(record[e], 3) for e in evaluators])
    return table


def values_table(study: Study, dims: list[str], noise: SeedNoise | None = None) -> Table:
    """mIoU per value of each dimension, each mean with the part of the seed noise it carries."""
    found = value_distribution(study, dims)
    # the noise that does not cancel between configs run at the same seed is the paired sd / sqrt(2);
    # a mean over n trials carries that over sqrt(n)
    share = noise.pair_sd / math.sqrt(2) if noise is not None and math.isfinite(noise.pair_sd) else math.nan
    found["seed_noise_pct"] = [share / math.sqrt(n) if n else math.nan for n in found["trials"]]
    few = int((found["trials"] < 2).sum())
    title = "val mIoU (%) of the completed trials per value of each dimension"
    if few:
        title += f" ({few} values with fewer than 2 trials: no spread)"
    table = Table(name="search_values", title=title,
                  header=["Dimension", "Value", "Trials", "mean ± std", "± seed noise", "min", "max"], body=[],
                  frame=found)
    previous = None
    for r in found.to_dict("records"):
        if previous is not None and r["dimension"] != previous:
            table.rule_before.add(len(table.body))
        previous = r["dimension"]
        spread = _num(r["miou_pct_mean"]) + (f" ± {_num(r['miou_pct_std'])}" if r["trials"] >= 2 else "")
        table.body.append([r["dimension"], r["value"], str(r["trials"]), spread if r["trials"] else MISSING,
                           _num(r["seed_noise_pct"]), _num(r["miou_pct_min"]), _num(r["miou_pct_max"])])
    if few:
        table.notes.append("a value needs at least 2 completed trials for a spread, and a difference between two "
                           "values needs that on both sides to be tested (Welch's test needs 2 per side)")
    table.notes.append(noise_note(noise))
    if math.isfinite(share):
        table.notes.append(f"± seed noise: the seed's share of a value's mean, {share:.2f} / sqrt(trials) points "
                           "(the paired sd over sqrt 2: the part that does not cancel between configs at one seed)")
    return table
