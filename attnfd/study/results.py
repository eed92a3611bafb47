"""A study's results as Parquet, in the layout the README documents ("Results files").

``ResultsWriter`` is a Tune callback in the driver: it rewrites
``<storage>/<name>/results/epochs/<trial_id>.parquet`` (``attnfd.study_contract``) whenever its trial reports, so a study
killed at any point keeps every epoch it finished. The file itself is the state: a resumed
study reads it back before adding rows, keyed by epoch, so nothing is lost or written twice.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq
from ray.tune import Callback

from attnfd.config import ConfigError, TrainConfig
from attnfd.study.trainable import COHORT, trial_options, trial_values, units
from attnfd.study_contract import COMPLETED, EPOCHS_DIR, FAILED, STOPPED, STUDY_FILE, SUMMARY_FILE, epoch_file

# what a trial's report carries that belongs in an epoch row (besides loss_* parts)
METRIC_KEYS = ("epoch", "miou", "pixel_acc", "per_class_iou", "loss", "lr", "alpha", "seconds", "shared_seconds",
               "params_m",
               "status", "error", "node_id", "time")


def storage_fs(storage: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The file system and the path in it of a local folder or a URI (s3://bucket/path, gs://...)."""
    if "://" in storage:
        return pyarrow.fs.FileSystem.from_uri(storage)
    return pyarrow.fs.LocalFileSystem(), str(Path(storage).expanduser().resolve())


def on_object_store(storage: str) -> bool:
    """An s3://, gs://... storage (no local files); a plain folder or file:// is not."""
    return "://" in storage and not storage.startswith("file://")


def join(storage: str, *parts: str) -> str:
    """A folder under a storage folder or URI; a URI's query (``?endpoint_override=...``) stays at the end."""
    base, mark, query = storage.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + mark + query



def flat_config(config: dict) -> dict:
    """Every TrainConfig field of a Tune trial's config as a ``config/<field>`` scalar."""
    values = TrainConfig.from_dict(trial_values(config)).to_dict()
    out = {}
    for key, value in values.items():
        if isinstance(value, (tuple, list)):
            value = ",".join(str(v) for v in value)
        if key == "distill" and not value:
            value = "none"
        out[f"config/{key}"] = value
    # a searched option's own column too, beside distill_options: the analysis reads searched dimensions so
    out.update({f"config/{key}": value for key, value in trial_options(config).items()})
    return out


def table(rows: list[dict]) -> pa.Table:
    """Rows with possibly different keys as one table; a column whose values mix types is text."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return pa.table(columns)


def write_table(storage: str, path: str, rows: list[dict]) -> None:
    fs, base = storage_fs(storage)
    full = f"{base}/{path}"
    fs.create_dir(full.rsplit("/", 1)[0], recursive=True)
    # write then move, so a reader (or a kill) never sees half a file
    pq.write_table(table(rows), full + ".tmp", filesystem=fs)
    fs.move(full + ".tmp", full)


def read_rows(storage: str, path: str) -> list[dict]:
    fs, base = storage_fs(storage)
    full = f"{base}/{path}"
    if fs.get_file_info(full).type != pyarrow.fs.FileType.File:
        return []
    return pq.read_table(full, filesystem=fs).to_pylist()


def list_files(storage: str, path: str) -> list[str]:
    fs, base = storage_fs(storage)
    selector = pyarrow.fs.FileSelector(f"{base}/{path}", allow_not_found=True)
    return sorted(info.path[len(base) + 1:] for info in fs.get_file_info(selector)
                  if info.type == pyarrow.fs.FileType.File and info.path.endswith(".parquet"))


def write_study_meta(storage: str, name: str, meta: dict) -> None:
    fs, base = storage_fs(storage)
    path = f"{base}/{name}/{STUDY_FILE}"
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    meta = {"name": name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **meta}
    text = json.dumps(meta, indent=1).encode()
    # write then move, as write_table does: a kill mid-write must not leave half a study.json
    with fs.open_output_stream(f"{path}.tmp") as out:
        out.write(text)
    fs.move(f"{path}.tmp", path)


def read_study_meta(storage: str, name: str) -> dict | None:
    fs, base = storage_fs(storage)
    path = f"{base}/{name}/{STUDY_FILE}"
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as handle:
        text = handle.read().decode(errors="replace")
    try:
        meta = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{path} is damaged (not JSON: {err}); move it aside or pick another --name") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path} is damaged (not a JSON object); move it aside or pick another --name")
    return meta


class ResultsWriter(Callback):
    """``phase``: what every row it writes says in its ``phase`` column (search, confirm or grid)."""

    # a writer restored from a study started before phases were recorded has none
    phase: str | None = None

    def __init__(self, storage: str, name: str, protocol: str, phase: str):
        self.storage, self.name, self.protocol, self.phase = storage, name, protocol, phase
        self._rows: dict[str, dict[int, dict]] = {}

    def __getstate__(self) -> dict:
        # the files are the state; a restored study reads them back
        return {**self.__dict__, "_rows": {}}

    def _file(self, trial_id: str) -> str:
        return f"{self.name}/{epoch_file(trial_id)}"

    def _trial_rows(self, trial_id: str) -> dict[int, dict]:
        if trial_id not in self._rows:
            self._rows[trial_id] = {int(r["epoch"]): r for r in read_rows(self.storage, self._file(trial_id))}
        return self._rows[trial_id]

    def _save(self, trial_id: str) -> None:
        rows = self._trial_rows(trial_id)
        write_table(self.storage, self._file(trial_id), [rows[e] for e in sorted(rows)])

    def _row_start(self, trial, trial_id: str) -> dict:
        """What every row of a cell's trial starts with; a cohort's cells also name their ``cohort``."""
        row = {"study": self.name, "protocol": self.protocol, "phase": self.phase, "trial_id": trial_id}
        if COHORT in trial.config:
            row["cohort"] = trial.trial_id
        return row

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        for trial_id, config, part in units(trial.trial_id, trial.config, result):
            if part is None:  # a cohort's cell that left at an earlier epoch
                continue
            row = {**self._row_start(trial, trial_id), "node": part.get("node_ip"), "pid": part.get("pid")}
            row.update({k: v for k, v in part.items() if k in METRIC_KEYS or k.startswith("loss_")})
            for key in ("miou", "pixel_acc"):
                row[key] = float(row.get(key, math.nan))
            row.setdefault("error", None)
            row.update(flat_config(config))
            self._trial_rows(trial_id)[int(row["epoch"])] = row
            self._save(trial_id)

    def _close(self, trial, status: str | None, error: str | None = None) -> None:
        for trial_id, config, _ in units(trial.trial_id, trial.config):
            rows = self._trial_rows(trial_id)
            if not rows:
                # a trial that failed before its first epoch still gets a row with its error
                rows[0] = {**self._row_start(trial, trial_id), "node": None, "status": status, "error": error,
                           "epoch": 0, "miou": math.nan, "pixel_acc": math.nan, **flat_config(config)}
            last = rows[max(rows)]
            finished = last.get("status") == COMPLETED and COHORT in trial.config
            if last.get("status") == FAILED or finished:
                # a cell that diverged keeps its error; a cohort's cell that had completed stays so
                self._save(trial_id)
                continue
            last["status"] = status or (COMPLETED if last.get("status") == COMPLETED else STOPPED)
            if error:
                last["error"] = error
            self._save(trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._close(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        text = trial.get_error() or "the trial errored"
        lines = [line for line in str(text).strip().splitlines() if line.strip()]
        self._close(trial, FAILED, lines[-1] if lines else str(text))


def write_summary(storage: str, name: str) -> list[dict]:
    """``results/summary.parquet``: each trial's last epoch row."""
    last_rows = []
    for path in list_files(storage, f"{name}/{EPOCHS_DIR}"):
        rows = read_rows(storage, path)
        if rows:
            last_rows.append(max(rows, key=lambda r: r["epoch"]))
    if last_rows:
        write_table(storage, f"{name}/{SUMMARY_FILE}", last_rows)
    return last_rows


__all__ = ["ResultsWriter", "write_study_meta", "write_summary"]
