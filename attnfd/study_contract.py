"""The results contract: what a study (``attnfd.study``) writes and the analysis
(``attnfd.analysis``) reads, defined once for both (README, "Results files").

It imports nothing beyond the standard library, so the analysis can take it on a machine
without torch or ray, and a study's layout cannot drift from what the analysis expects.

- The layout of a study folder ``<storage>/<study>/``: its ``results/`` (one Parquet file of
  epoch rows per trial, the summary, ``study.json``), Ray's trial folders and the checkpoints
  in them, the confirm stage's experiment, the Optuna journal.
- The statuses a row's ``status`` column takes, and the phases its ``phase`` column takes.
- The study kinds: a search, or a grid protocol. The grid protocols are registered by name in
  ``attnfd.study.protocols`` (their cells) and ``attnfd.analysis.tables`` (their table); a
  search is the one kind that is no grid protocol, so neither side lists the others here.
- The search space's description that study.json carries (``space``): each searched
  dimension's kind, range or choices, and whether it is searched on a log scale.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- layout: paths relative to the study folder, "/"-joined (they also name objects in a bucket)
RESULTS_DIR = "results"
EPOCHS_DIR = f"{RESULTS_DIR}/epochs"
SUMMARY_FILE = f"{RESULTS_DIR}/summary.parquet"
STUDY_FILE = f"{RESULTS_DIR}/study.json"
# the Optuna study's journal (attnfd.study.optuna_study), when it lives in the study folder
OPTUNA_JOURNAL = "optuna.journal"
# Ray's folder of one trial, and the checkpoints Tune keeps in it (checkpoint_<N>, N counting up)
TRIAL_FOLDER_PREFIX = "trial_"
CHECKPOINT_PREFIX = "checkpoint_"


def epoch_file(trial_id: str) -> str:
    """A trial's epoch rows (a cohort's cell's trial id included: ``cohort_cell_id``)."""
    return f"{EPOCHS_DIR}/{trial_id}.parquet"


def trial_folder(trial_id: str) -> str:
    return f"{TRIAL_FOLDER_PREFIX}{trial_id}"


def cohort_cell_id(trial_id: str, index: int) -> str:
    """The trial id a cohort trial's ``index``-th cell writes its rows under."""
    return f"{trial_id}-{index}"


# --- statuses of a row (a trial's last row: how it ended)
RUNNING, COMPLETED, STOPPED, FAILED = "running", "completed", "stopped", "failed"
# no study writes it; a results folder put together by other tools may
PENDING = "pending"
UNFINISHED = (RUNNING, PENDING)
FINISHED = (COMPLETED, STOPPED, FAILED)
STATUSES = (*FINISHED, *UNFINISHED)

# --- phases of a study, as its rows name them (column ``phase``): a grid protocol's trials;
# a search's Optuna trials (and its reference), then the confirm stage's cells x fresh seeds
GRID, SEARCH, CONFIRM = "grid", "search", "confirm"
# the confirm stage is a Ray experiment of its own, in this folder of the study folder
CONFIRM_DIR = CONFIRM



def is_search(protocol: str | None) -> bool:
    """A study's protocol (study.json, the rows' ``protocol``) is SEARCH or a grid protocol's name."""
    return protocol == SEARCH


# --- the search space, as study.json's ``space`` describes it: {field: {"kind": ..., ...}}
SPACE_KEY = "space"
FLOAT, INT, CATEGORICAL = "float", "int", "categorical"
KINDS = (FLOAT, INT, CATEGORICAL)


@dataclass(frozen=True)
class Dimension:
    """One searched config field: a number in [low, high] (on a log scale or not), or one of ``choices``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def to_json(self) -> dict:
        if self.kind == CATEGORICAL:
            return {"kind": self.kind, "choices": list(self.choices)}
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log}

    @classmethod
    def from_json(cls, name: str, value: dict) -> Dimension | None:
        """None for a description this contract does not know (a newer or a hand-edited study.json)."""
        if not isinstance(value, dict) or value.get("kind") not in KINDS:
            return None
        if value["kind"] == CATEGORICAL:
            return cls(name, CATEGORICAL, choices=tuple(value.get("choices") or ()))
        return cls(name, value["kind"], value.get("low"), value.get("high"), bool(value.get("log", False)))


def space_json(dimensions: list[Dimension]) -> dict:
    """The value of study.json's ``space``."""
    return {d.name: d.to_json() for d in dimensions}


def described_dimensions(meta: dict) -> dict[str, Dimension]:
    """The dimensions study.json's ``space`` describes; empty for a study written before it did."""
    space = meta.get(SPACE_KEY)
    if not isinstance(space, dict):
        return {}
    found = {name: Dimension.from_json(name, value) for name, value in space.items()}
    return {name: d for name, d in found.items() if d is not None}
