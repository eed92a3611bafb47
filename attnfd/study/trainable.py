"""``fit`` as a Ray Tune function trainable.

Every epoch becomes one ``tune.report`` carrying the epoch's metrics and the run's checkpoint
folder; a restarted trial (a retry after its worker died, or ``--resume``) gets that
checkpoint back from ``tune.get_checkpoint`` and continues from the epoch after it.

What a trial adds to the trainer's epoch row:
- ``objective``: the last evaluated val mIoU so far (0 before the first evaluation). Tune's
  searcher and scheduler read this, not ``miou``, because ``miou`` is NaN on epochs that are
  not evaluated and every report must carry the metric they compare.
- ``final``: the row closes the trial's last epoch (a trial that ends without one was stopped
  early by the scheduler).
- ``status``: ``running``, ``completed``, or ``failed`` with ``error`` for a loss that
  turned NaN/inf. Divergence is reported, not raised: Tune would retry a raised error
  ``max_failures`` times, and the same config diverges again.
- ``node_id``: the Ray node the epoch ran on; ``time``: when the epoch was reported (Unix
  seconds), which orders a search's trials (their ids carry no counter).

The teacher is never trained in a trial. The driver prepares it once per study and hands its
file to every trial through the object store; a trial writes it into its node's teacher cache.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from attnfd import checkpoint as ckpt
from attnfd.cached_files import damage, locked, move_aside, write_checksum
from attnfd.config import ConfigError, TrainConfig
from attnfd.distill.spec import options_into_config, split_option_name
from attnfd.model_files import teacher_dir
from attnfd.study_contract import CHECKPOINT_PREFIX, COMPLETED, FAILED, RUNNING, cohort_cell_id
from attnfd.trainer import RESUME_KEYS, NonFiniteLossError, fit

OBJECTIVE = "objective"
# written into each reported checkpoint, so a restarted trial knows its best-so-far score
_OBJECTIVE_FILE = "objective.json"
# a grid protocol puts the values that make a table row under this key of the Tune config
CELL = "cell"
# a cohort trial's config lists its cells under this key, and its reports each cell's row
# under MEMBERS (attnfd.study.cohorts)
COHORT = "cohort"
MEMBERS = "members"
# what a member's row takes from Tune's report of the whole cohort
_TRIAL_KEYS = ("node_ip", "pid", "training_iteration")


def _merged(config: dict) -> dict:
    values = {k: v for k, v in config.items() if k not in (CELL, COHORT)}
    values.update(config.get(CELL) or (config.get(COHORT) or [{}])[0])
    return values


def trial_values(config: dict) -> dict:
    """A Tune trial's config as TrainConfig values: the grid cell's values merged in (a
    cohort trial's: its first cell's, for what every cell shares), a searched method option
    (``kd.temperature``) moved into ``distill_options``."""
    return options_into_config(_merged(config))


def trial_options(config: dict) -> dict:
    """The method options a Tune trial's config names as its own keys (a search's option
    dimensions), as the search drew them."""
    return {k: v for k, v in _merged(config).items() if split_option_name(k) is not None}


def units(trial_id: str, config: dict, result: dict | None = None) -> list[tuple[str, dict, dict | None]]:
    """What a Tune trial trains, one cell at a time: (the cell's trial id, its Tune config,
    its part of ``result``). A plain trial is one cell; a cohort trial's cells are
    ``<trial id>-<i>``, each with the config it would have as a trial of its own."""
    if COHORT not in config:
        return [(trial_id, config, result)]
    base = {k: v for k, v in config.items() if k != COHORT}
    rows = (result or {}).get(MEMBERS) or {}
    out = []
    for index, cell in enumerate(config[COHORT]):
        row = rows.get(str(index))
        if row is not None:
            row = {**{k: result[k] for k in _TRIAL_KEYS if k in result}, **row}
        out.append((cohort_cell_id(trial_id, index), {**base, CELL: cell}, row))
    return out


def teacher_key(config: TrainConfig) -> str:
    """The name of the teacher a distillation config needs, as its cache folder names it."""
    return teacher_dir(config)[0].name


def install_teacher(config: TrainConfig, teachers: dict[str, bytes] | None) -> str:
    """The path of this config's teacher in this node's cache, written from the study's copy
    if the node does not have it yet."""
    folder, _ = teacher_dir(config)
    model_file = folder / ckpt.MODEL_FILE
    data = (teachers or {}).get(folder.name)
    with locked(folder.with_suffix(".lock")):
        problem = damage(model_file) if model_file.is_file() else None
        if problem and data is not None:
            aside = move_aside(model_file)
            print(f"attnfd: warning: the cached teacher {model_file} is damaged ({problem}); moved it to {aside.name} "
                  "and writing the study's copy", file=sys.stderr, flush=True)
        if not model_file.is_file():
            if data is None:
                raise ConfigError(f"no teacher {folder.name} was prepared for this study")
            folder.mkdir(parents=True, exist_ok=True)
            tmp = model_file.with_name(model_file.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(model_file)
            write_checksum(model_file)
    return str(model_file)


def _older_checkpoints(checkpoint) -> list:
    """The trial's kept checkpoints (Tune keeps ``num_to_keep``), newest first, starting with
    ``checkpoint``; they sit beside it as ``checkpoint_<N>`` in the trial's folder."""
    import pyarrow.fs
    from ray import tune

    parent, _, name = checkpoint.path.rstrip("/").rpartition("/")
    newest = _checkpoint_index(name)
    found = []
    if newest is not None:
        selector = pyarrow.fs.FileSelector(parent, allow_not_found=True)
        for info in checkpoint.filesystem.get_file_info(selector):
            index = _checkpoint_index(info.base_name)
            if info.type == pyarrow.fs.FileType.Directory and index is not None and index < newest:
                found.append((index, info.path))
    return [checkpoint] + [tune.Checkpoint(path, filesystem=checkpoint.filesystem) for _, path in sorted(found, reverse=True)]


def _checkpoint_index(name: str) -> int | None:
    tail = name.removeprefix(CHECKPOINT_PREFIX)
    return int(tail) if tail != name and tail.isdigit() else None


def _run_epoch(folder: Path) -> int:
    """The epoch a run checkpoint folder was written after; raises if it cannot be read."""
    return ckpt.load(folder / ckpt.STATE_FILE, needs=RESUME_KEYS)["epoch"]


def _cohort_epoch(folder: Path) -> int:
    """The epoch a cohort checkpoint folder was written after; raises if a student's state cannot be read."""
    from attnfd.trainer import cohort_states

    states, errors = cohort_states(folder)
    return max((s["epoch"] for i, s in enumerate(states) if s is not None and i not in errors), default=0)


def _restored(work: Path, readable=_run_epoch) -> tuple[Path | None, object]:
    """The checkpoint Tune hands back to a restarted trial, copied locally, and the objective
    it kept (``objective.json``). If that (the newest) cannot be read (``readable`` raises),
    the newest older one that can; each one skipped is named on stdout."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, None
    candidates = _older_checkpoints(checkpoint)
    for index, candidate in enumerate(candidates):
        name = candidate.path.rstrip("/").rpartition("/")[2]
        folder = Path(candidate.to_directory(str(work / f"restored-{index}")))
        try:
            epoch = readable(folder)
        except (ckpt.CheckpointError, FileNotFoundError, ValueError) as err:
            print(f"attnfd: trial checkpoint {name} is unreadable ({err})", flush=True)
            continue
        if index:
            print(f"attnfd: resuming from {name} (epoch {epoch}), the newest readable checkpoint", flush=True)
        objective_file = folder / _OBJECTIVE_FILE
        objective = json.loads(objective_file.read_text())[OBJECTIVE] if objective_file.is_file() else None
        return folder, objective
    print(f"attnfd: none of the trial's {len(candidates)} checkpoints is readable; it starts again from epoch 1",
          flush=True)
    return None, None


def train_trial(config: dict, teachers: dict[str, bytes] | None = None, verbose: bool = False) -> None:
    """One trial: ``fit`` with the trial's config (its ``threads`` included: the study sets them
    from --cpus-per-trial, and the rows record them), or a cohort's ``fit_cohort``."""
    import ray
    from ray import tune

    if not verbose:
        # the study's console reports each trial; library warnings from every worker would bury it
        warnings.filterwarnings("ignore")
    # Ray logs every persisted checkpoint at INFO, one line per trial and epoch on the driver
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    if COHORT in config:
        return _train_cohort(config, teachers)
    train_config = TrainConfig.from_dict(trial_values(config))
    node_id = ray.get_runtime_context().get_node_id()
    # inside Tune the cwd is the trial's working folder in Ray's session folder, so what a killed
    # trial leaves (a ~90 MB checkpoint) is left there, not in /tmp
    in_tune_cwd = "TUNE_ORIG_WORKING_DIR" in os.environ
    with tempfile.TemporaryDirectory(prefix="attnfd-trial-", dir=os.getcwd() if in_tune_cwd else None) as tmp:
        work = Path(tmp)
        folder, objective = _restored(work)
        teacher = install_teacher(train_config, teachers) if train_config.distilling else None
        train_config = dataclasses.replace(train_config, out_dir=str(work / "run"), teacher_checkpoint=teacher,
                                           resume=str(folder / ckpt.STATE_FILE) if folder else None)
        state = {OBJECTIVE: objective or 0.0, "epoch": 0}

        def report(row: dict, checkpoint_dir: str) -> None:
            if math.isfinite(row.get("miou", math.nan)):
                state[OBJECTIVE] = row["miou"]
            state["epoch"] = row["epoch"]
            final = row["epoch"] == train_config.epochs
            (Path(checkpoint_dir) / _OBJECTIVE_FILE).write_text(json.dumps({OBJECTIVE: state[OBJECTIVE]}))
            metrics = {**row, OBJECTIVE: state[OBJECTIVE], "final": final, "time": time.time(),
                       "status": COMPLETED if final else RUNNING, "node_id": node_id}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

        try:
            fit(train_config, report)
        except NonFiniteLossError as err:
            tune.report({"epoch": state["epoch"] + 1, OBJECTIVE: state[OBJECTIVE], "final": False, "time": time.time(),
                         "status": FAILED, "error": str(err), "node_id": node_id})
        finally:
            if torch.cuda.is_available():
                # with reused actors the next trial runs in this process
                torch.cuda.empty_cache()


def _train_cohort(config: dict, teachers: dict[str, bytes] | None) -> None:
    """A cohort trial: its cells' students trained together (``fit_cohort``); each report
    carries under MEMBERS, keyed by the cell's index, the row each cell would have reported as a
    trial of its own (none for a cell that left earlier), and the best objective of them all for Tune."""
    import ray
    from ray import tune

    from attnfd.trainer import fit_cohort

    configs = [TrainConfig.from_dict(trial_values(c)) for _, c, _ in units("", config)]
    node_id = ray.get_runtime_context().get_node_id()
    in_tune_cwd = "TUNE_ORIG_WORKING_DIR" in os.environ
    with tempfile.TemporaryDirectory(prefix="attnfd-cohort-", dir=os.getcwd() if in_tune_cwd else None) as tmp:
        work = Path(tmp)
        folder, objectives = _restored(work, _cohort_epoch)
        objectives = list(objectives) if objectives else [0.0] * len(configs)
        configs = [dataclasses.replace(c, teacher_checkpoint=install_teacher(c, teachers)) if c.distilling else c
                   for c in configs]

        def report(rows: list, checkpoint_dir: str) -> None:
            # keyed by the cell's index: trackers log a nested dict's numbers (members/<i>/miou), not a list's
            members = {}
            for index, row in enumerate(rows):
                if row is None:
                    continue
                if math.isfinite(row.get("miou", math.nan)):
                    objectives[index] = row["miou"]
                if "error" in row:
                    member = {**row, OBJECTIVE: objectives[index], "final": False, "status": FAILED}
                else:
                    final = row["epoch"] == configs[index].epochs
                    member = {**row, OBJECTIVE: objectives[index], "final": final,
                              "status": COMPLETED if final else RUNNING}
                members[str(index)] = {**member, "time": time.time(), "node_id": node_id}
            (Path(checkpoint_dir) / _OBJECTIVE_FILE).write_text(json.dumps({OBJECTIVE: objectives}))
            epoch = max(r["epoch"] for r in rows if r is not None)
            final = all(m["final"] or m["status"] == FAILED for m in members.values())
            tune.report({"epoch": epoch, OBJECTIVE: max(objectives), "final": final, "time": time.time(),
                         "status": COMPLETED if final else RUNNING, "node_id": node_id, MEMBERS: members},
                        checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

        try:
            fit_cohort(configs, work / "run", report, resume=folder)
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
