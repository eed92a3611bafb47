"""A study's results folder (README, "Results files") read into one row per trial.

A trial's result is its last evaluated epoch (a row where ``miou`` or ``pixel_acc`` is
finite); its best evaluated epoch's val mIoU is kept beside it (``best_miou``,
``best_epoch``), because the official AttnFD code and its README report that one: it is a
selection on the validation split, so it is shown next to the last epoch's, never alone; its status and error come from ``summary.parquet`` when the study has ended, else
from its last epoch row. Trials that differ only in their seed (and in where or how they
ran) form one *cell*: a row of a table, reported as mean and spread over its seeds.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from attnfd.analysis.folder import Folder, one_line, shown
from attnfd.analysis.row_roles import RowRoles
from attnfd.study_contract import (
    CONFIRM,
    EPOCHS_DIR,
    RESULTS_DIR,
    RUNNING,
    SEARCH,
    STUDY_FILE,
    SUMMARY_FILE,
    Dimension,
    described_dimensions,
)

CONFIG = "config/"
DEFAULT_STORAGE = Path("~/attnfd_results")
STORAGE_ENV = "ATTNFD_RESULTS"
# always part of a cell's identity, so every label names the model and the method
ALWAYS_IN_KEY = ("role", "backbone", "distill")


class ResultsError(ValueError):
    """A results folder that cannot be analysed; the message is one line."""


class NoRowsYet(ResultsError):
    """A study whose trials have not reported yet."""


@dataclass
class Study:
    folder: Folder
    meta: dict
    epochs: pd.DataFrame
    trials: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path | None:
        """The study folder on this machine; None for a study read from a URI."""
        return self.folder.local

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.folder.name)

    def phase(self, name: str) -> Study:
        """The trials of one phase as a study of their own: ``confirm`` is a search's confirm
        stage (with its own seeds, study.json ``confirm.seeds``); any other name the study's
        own trials, the search's or the grid's (rows written before phases were recorded among them)."""
        phases = self.trials["phase"] if "phase" in self.trials else pd.Series([None] * len(self.trials), dtype=object)
        confirming = phases.map(lambda p: p == CONFIRM).astype(bool).to_numpy()
        keep = confirming if name == CONFIRM else ~confirming
        trials = self.trials[keep].reset_index(drop=True)
        ids = set(trials["trial_id"]) if len(trials) else set()
        epochs = self.epochs[self.epochs["trial_id"].isin(ids)].reset_index(drop=True) if len(self.epochs) else self.epochs
        meta = dict(self.meta)
        if name == CONFIRM:
            meta["seeds"] = (self.meta.get("confirm") or {}).get("seeds")
        return Study(folder=self.folder, meta=meta, epochs=epochs, trials=trials, warnings=self.warnings)

    @property
    def row_roles(self) -> RowRoles:
        """Which config fields tell its rows apart (study.json ``config_fields``)."""
        return RowRoles.of(self.meta)

    @property
    def protocol(self) -> str:
        return str(self.meta.get("protocol") or SEARCH)

    @property
    def class_names(self) -> list[str]:
        names = self.meta.get("class_names")
        if names:
            return [str(n) for n in names]
        width = max((len(v) for v in self.trials.get("per_class_iou", []) if isinstance(v, list)), default=0)
        return [f"class {i}" for i in range(width)]

    @property
    def seed_values(self) -> list | None:
        """The seeds asked per cell when study.json lists them; None when it gives a count."""
        seeds = self.meta.get("seeds")
        return list(seeds) if isinstance(seeds, (list, tuple)) else None

    @property
    def seeds_asked(self) -> int | None:
        seeds = self.meta.get("seeds")
        if isinstance(seeds, (list, tuple)):
            return len(seeds)
        return int(seeds) if isinstance(seeds, (int, float)) and not isinstance(seeds, bool) else None

    @property
    def metric(self) -> str:
        return str(self.meta.get("metric") or "miou")

    @property
    def searched(self) -> list[str]:
        """The searched dimensions as config field names (study.json may list names or map them to specs)."""
        searched = self.meta.get("searched") or []
        if isinstance(searched, dict):
            names = list(searched)
        else:
            names = [s.get("name") if isinstance(s, dict) else s for s in searched]
        return [str(n).removeprefix(CONFIG) for n in names if n]

    @property
    def space(self) -> dict[str, Dimension]:
        """The searched dimensions study.json describes (kind, range, log scale) by config field;
        empty for a study written before it described them."""
        return described_dimensions(self.meta)


def _created(folder: Folder) -> float:
    """When a study was created: study.json's ``created`` if it parses, else the file's mtime."""
    meta_file = folder / STUDY_FILE
    try:
        created = json.loads(meta_file.read_text()).get("created")
        if isinstance(created, (int, float)):
            return float(created)
        return datetime.fromisoformat(str(created)).timestamp()
    except (ValueError, TypeError, OSError, AttributeError):
        return meta_file.mtime()


def default_storage() -> Path:
    return Path(os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE).expanduser()


def _holds_results(study: Folder) -> bool:
    return (study / STUDY_FILE).is_file() or (study / EPOCHS_DIR).is_dir() or (study / SUMMARY_FILE).is_file()


def find_study(path: str | Path | Folder | None = None) -> Folder:
    """The experiment folder: ``path`` itself, its parent if it is a ``results`` folder, or the
    newest study inside a storage folder (default: $ATTNFD_RESULTS or ~/attnfd_results).
    ``path`` may be a local folder or a URI of any file system pyarrow has (s3://, gs://, file://)."""
    try:
        folder = path if isinstance(path, Folder) else Folder.at(path if path else default_storage())
        if not folder.is_dir():
            raise ResultsError(f"results folder not found: {folder}")
        if folder.name == RESULTS_DIR and ((folder.parent / STUDY_FILE).is_file() or (folder.parent / EPOCHS_DIR).is_dir()):
            folder = folder.parent
        if _holds_results(folder):
            return folder
        studies = [p for p in folder.folders() if (p / STUDY_FILE).is_file()]
    except (OSError, pa.ArrowException) as err:
        raise ResultsError(f"cannot read {shown(path or default_storage())}: {type(err).__name__}: {one_line(err)}") from None
    if not studies:
        raise ResultsError(f"no study in {folder} (a study folder holds {STUDY_FILE})")
    return max(studies, key=_created)


def _read_epochs(folder: Folder, warnings: list[str], quiet: bool) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """All epoch rows, and each file's rows by its path relative to the study folder."""
    files = folder.files(".parquet")
    by_file = {}
    # each file alone: files of different trials may carry different loss columns
    for path in tqdm(files, desc="reading results", leave=False, disable=True if quiet else None):
        try:
            by_file[f"{EPOCHS_DIR}/{path.name}"] = path.read_parquet().to_pandas()
        except (OSError, pa.ArrowException) as err:  # a file being rewritten, or damaged: say so, keep the rest
            warnings.append(f"could not read {path.name}: {type(err).__name__}: {one_line(err)}")
    frames = [f for f in by_file.values() if len(f)]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), by_file


def _owners(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """The (study, protocol) pairs a file's rows name."""
    if not len(frame) or not ({"study", "protocol"} & set(frame.columns)):
        return set()
    studies = frame["study"] if "study" in frame else pd.Series([None] * len(frame))
    protocols = frame["protocol"] if "protocol" in frame else pd.Series([None] * len(frame))
    return {(str(_plain(a)), str(_plain(b))) for a, b in zip(studies, protocols)}


def check_one_study(meta: dict, sources: dict[str, pd.DataFrame]) -> None:
    """Refuse a results folder whose files hold rows of another study or protocol (a copied
    parquet file): one table must not mix them. Against study.json when it names the study,
    else the files must agree with each other."""
    owners = {source: _owners(frame) for source, frame in sources.items()}
    if meta.get("name") and meta.get("protocol"):
        expected = (str(meta["name"]), str(meta["protocol"]))
        said = f"study {expected[0]!r} (protocol {expected[1]!r}) that study.json names"
    else:
        counts: dict[tuple[str, str], int] = {}
        for pairs in owners.values():
            for pair in pairs:
                counts[pair] = counts.get(pair, 0) + 1
        if len(counts) <= 1:
            return
        expected = max(counts, key=counts.get)
        said = f"study {expected[0]!r} (protocol {expected[1]!r}) of most files"
    foreign = {source: sorted(pairs - {expected}) for source, pairs in owners.items() if pairs - {expected}}
    if not foreign:
        return
    shown = [f"{source} (study {pairs[0][0]!r}, protocol {pairs[0][1]!r})" for source, pairs in list(foreign.items())[:3]]
    more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
    raise ResultsError(f"rows of another study or protocol: {', '.join(shown)}{more}, not of the {said}; "
                       "move those files out to analyse this study")


def _plain(value: Any) -> Any:
    """A cell value as plain Python, with every kind of missing as None."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _floats(value: Any) -> list[float] | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return [float("nan") if v is None else float(v) for v in value]


def is_missing(value: Any) -> bool:
    return _plain(value) is None


def is_finite_number(value: Any) -> bool:
    """A cell holds a real, finite number (numpy scalars included; a bool is not one)."""
    value = _plain(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def trial_sort_key(trial_id: str) -> tuple:
    """Ray trial ids end in a creation counter (``abc12_00007``): sort by it, not as text."""
    head, _, tail = str(trial_id).rpartition("_")
    return (head, int(tail), "") if tail.isdigit() else (str(trial_id), -1, str(trial_id))


def _trial_row(trial_id: str, rows: pd.DataFrame | None, summary: dict | None) -> dict:
    last = rows.iloc[-1].to_dict() if rows is not None and len(rows) else dict(summary)
    evaluated = None
    if rows is not None and len(rows):
        mask = rows["miou"].map(is_finite_number)
        if "pixel_acc" in rows:
            mask = mask | rows["pixel_acc"].map(is_finite_number)
        if mask.any():
            evaluated = rows[mask].iloc[-1].to_dict()
    elif summary is not None and (is_finite_number(summary.get("miou")) or is_finite_number(summary.get("pixel_acc"))):
        evaluated = summary
    best = None
    if rows is not None and len(rows) and rows["miou"].map(is_finite_number).any():
        scored = rows[rows["miou"].map(is_finite_number)]
        best = scored.loc[scored["miou"].astype(float).idxmax()].to_dict()
    source = summary if summary is not None else last
    status = _plain(source.get("status")) or _plain(last.get("status")) or RUNNING
    error = _plain(source.get("error"))
    if error is None and rows is not None and "error" in rows:
        errors = [e for e in map(_plain, rows["error"]) if e]
        error = errors[-1] if errors else None
    params = [_plain(v) for v in (rows["params_m"] if rows is not None and "params_m" in rows else [last.get("params_m")])]
    params = [p for p in params if is_finite_number(p)]
    row = {
        "trial_id": trial_id,
        "phase": _plain(last.get("phase")),
        "status": str(status),
        "error": error,
        "node": _plain(last.get("node")),
        "epochs_run": int(_plain(last.get("epoch")) or 0),
        "result_epoch": int(evaluated["epoch"]) if evaluated is not None and is_finite_number(evaluated.get("epoch")) else None,
        "miou": _plain(evaluated.get("miou")) if evaluated is not None else None,
        "pixel_acc": _plain(evaluated.get("pixel_acc")) if evaluated is not None else None,
        "per_class_iou": _floats(evaluated.get("per_class_iou")) if evaluated is not None else None,
        "best_miou": _plain(best.get("miou")) if best is not None else None,
        "best_epoch": int(best["epoch"]) if best is not None and is_finite_number(best.get("epoch")) else None,
        "params_m": params[-1] if params else None,
        "started": _started(rows),
    }
    for key, value in last.items():
        if str(key).startswith(CONFIG):
            row[key] = _plain(value)
    if summary is not None:
        for key, value in summary.items():
            if str(key).startswith(CONFIG) and row.get(key) is None:
                row[key] = _plain(value)
    return row


def _started(rows: pd.DataFrame | None) -> float | None:
    """When the trial first reported (Unix seconds), if its rows carry the time."""
    if rows is None or "time" not in rows:
        return None
    times = [t for t in map(_plain, rows["time"]) if is_finite_number(t)]
    return min(times) if times else None


def _run_order(trial: dict) -> tuple:
    # a search's trial ids carry no counter: the time of their first report orders them
    started = trial.get("started")
    return (started if started is not None else math.inf, trial_sort_key(trial["trial_id"]))


def _trials(epochs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    by_trial = {}
    if len(epochs):
        ordered = epochs.sort_values(["trial_id", "epoch"], kind="stable")
        by_trial = {str(t): g for t, g in ordered.groupby("trial_id", sort=False)}
    summaries = {str(r["trial_id"]): r for r in summary.to_dict("records")} if len(summary) else {}
    ids = sorted(set(by_trial) | set(summaries), key=trial_sort_key)
    rows = sorted((_trial_row(t, by_trial.get(t), summaries.get(t)) for t in ids), key=_run_order)
    trials = pd.DataFrame(rows)
    for column in ("miou", "pixel_acc", "params_m"):
        if column in trials:
            trials[column] = pd.to_numeric(trials[column], errors="coerce").astype(float)
    return trials


def load_study(path: str | Path | Folder | None = None, quiet: bool = False) -> Study:
    """A study read from its results files; ``path`` as ``find_study`` takes it. Its warnings
    (files that could not be read, a missing study.json) go to stderr too, and a bar shows the
    reading, unless ``quiet`` (for a caller that reports itself)."""
    folder = find_study(path)
    try:
        study = _load(folder, quiet)
    except (OSError, pa.ArrowException) as err:
        raise ResultsError(f"cannot read {folder}: {type(err).__name__}: {one_line(err)}") from None
    if not quiet:
        for message in study.warnings:
            print(f"attnfd: warning: {message}", file=sys.stderr)
    return study


def _load(folder: Folder, quiet: bool) -> Study:
    warnings: list[str] = []
    meta_file = folder / STUDY_FILE
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as err:
            raise ResultsError(f"{meta_file} is not valid JSON: {err}") from None
    else:
        meta = {}
        warnings.append(f"{meta_file} is missing: protocol and class names are taken from the rows")
    if not isinstance(meta, dict):
        raise ResultsError(f"{meta_file} is not a JSON object")
    epochs, sources = _read_epochs(folder / EPOCHS_DIR, warnings, quiet)
    summary = pd.DataFrame()
    if (folder / SUMMARY_FILE).is_file():
        try:
            summary = (folder / SUMMARY_FILE).read_parquet().to_pandas()
            sources[SUMMARY_FILE] = summary
        except (OSError, pa.ArrowException) as err:
            warnings.append(f"could not read summary.parquet: {type(err).__name__}: {one_line(err)}")
    check_one_study(meta, sources)
    if not len(epochs) and not len(summary):
        raise NoRowsYet(f"{folder / RESULTS_DIR} holds no result rows yet")
    if len(epochs):
        epochs = epochs.sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)
    if not meta.get("protocol"):
        source = epochs if len(epochs) else summary
        if "protocol" in source and source["protocol"].notna().any():
            meta["protocol"] = str(source["protocol"].dropna().iloc[0])
    meta.setdefault("name", folder.name)
    return Study(folder=folder, meta=meta, epochs=epochs, trials=_trials(epochs, summary), warnings=warnings)


def config_fields(trials: pd.DataFrame) -> list[str]:
    return [c.removeprefix(CONFIG) for c in trials.columns if str(c).startswith(CONFIG)]


def _identity(trial: dict, field_name: str, roles: RowRoles) -> Any:
    value = trial.get(CONFIG + field_name)
    if field_name in roles.when_distilling and trial.get(CONFIG + "distill") in (None, "none", ""):
        return None
    if field_name == "distill" and value in (None, ""):
        return "none"
    return value


def varying_fields(trials: pd.DataFrame, roles: RowRoles) -> list[str]:
    """Config fields (seed and run placement aside) whose value differs between trials."""
    records = trials.to_dict("records")
    out = []
    for name in config_fields(trials):
        if name in roles.never:
            continue
        # a plain student's blanked distillation fields do not make a field vary
        values = {json.dumps(_identity(r, name, roles), default=str) for r in records}
        if name in roles.when_distilling:
            values.discard("null")
        if len(values) > 1:
            out.append(name)
    return out


def cell_fields(trials: pd.DataFrame, roles: RowRoles) -> list[str]:
    present = set(config_fields(trials))
    return [f for f in ALWAYS_IN_KEY if f in present] + [f for f in varying_fields(trials, roles)
                                                          if f not in ALWAYS_IN_KEY]


def cell_key(trial: dict, fields: list[str], roles: RowRoles) -> tuple:
    return tuple((name, _identity(trial, name, roles)) for name in fields)


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def cell_label(key: tuple) -> str:
    """A row's name: ``resnet18 | attnfd | layers=encoder+decoder | alpha=2``."""
    values = dict(key)
    parts = []
    if values.get("role") == "teacher":
        parts.append("teacher")
    if "backbone" in values:
        parts.append(format_value(values["backbone"]))
    if "distill" in values and values.get("role") != "teacher":
        parts.append(format_value(values["distill"]))
    for name, value in key:
        if name in ALWAYS_IN_KEY or value is None:
            continue
        shown = format_value(value).replace(",", "+") if name == "layers" else format_value(value)
        parts.append(f"{name}={shown}")
    return " | ".join(parts)
