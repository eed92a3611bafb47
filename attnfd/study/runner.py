"""One study on Ray: validate every config, prepare the teachers once, run the trials, write results.

A study is either a search (Optuna's TPE over a ``SearchSpace``, the paper's setting first,
ASHA stopping poor trials; then, with ``confirm``, its confirm stage: the best configs rerun
as a grid over fresh seeds, ``attnfd.study.confirm``) or a grid (a protocol's cells x seeds,
every trial to the end). Its folder ``<storage>/<name>/`` holds Ray's experiment state (so
``resume`` continues it; a confirm stage's is in ``<name>/confirm/``), the trials'
checkpoints and the ``results/`` Parquet files, each row marked with its ``phase``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from attnfd.config import ConfigError, TrainConfig
from attnfd.names import RESUME_AUTO
from attnfd.study import results as res
from attnfd.study.space import SearchSpace
from attnfd.study.trainable import CELL, COHORT, OBJECTIVE, teacher_key, train_trial, trial_values
from attnfd.study_contract import (
    COMPLETED,
    CONFIRM,
    CONFIRM_DIR,
    GRID,
    SEARCH,
    SPACE_KEY,
    is_search,
    space_json,
    trial_folder,
)

# Ray rewrites 127.0.0.1/localhost to the machine's outward address; another loopback
# address keeps a local instance on loopback
LOCAL_NODE_IP = "127.0.0.2" if sys.platform.startswith("linux") else None


@dataclass
class StudySpec:
    protocol: str  # SEARCH, or a grid protocol registered in attnfd.study.protocols
    base: dict  # TrainConfig values every trial shares
    storage: str
    name: str
    cells: list[dict] = field(default_factory=list)  # grid protocols
    seeds: list[int] = field(default_factory=lambda: [0])
    space: SearchSpace | None = None  # search
    searched: list[str] = field(default_factory=list)
    num_samples: int = 1
    sampler_seed: int = 0
    asha: bool = True
    # a search also runs the student alone once, on the same budget, to compare with
    reference: bool = True
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 2
    address: str | None = None
    node_ip: str | None = LOCAL_NODE_IP
    # True: continue the study (it must exist); RESUME_AUTO: continue it if it exists, else start it
    resume: bool | str = False
    # -1: the minute summaries only; 0: one line per trial event too; 1: Ray's tables and warnings as well
    verbose: int = 0
    # a search's confirm stage: this many of its best configs, the paper's setting and the student
    # alone, each over confirm_seeds fresh seeds (0: none)
    confirm: int = 0
    confirm_seeds: int = 3
    # which phase of the study this spec runs (default: the protocol's own, search or grid)
    phase: str | None = None
    # where the study's Optuna study is kept: None, a journal in the study folder; an SQLAlchemy
    # URL; "none", nowhere (attnfd.study.optuna_study)
    optuna_storage: str | None = None
    # experiment trackers every trial reports to (attnfd.study.trackers), and MLflow's tracking URI
    trackers: tuple[str, ...] = ()
    mlflow_uri: str | None = None
    # a grid phase's cells of one seed per trial (attnfd.study.cohorts): "auto", or a number (1: a trial per cell)
    cohort: int | str = 1

    @property
    def stage(self) -> str:
        return self.phase or (SEARCH if is_search(self.protocol) else GRID)

    @property
    def search(self) -> bool:
        """Optuna chooses the trials; otherwise they are cells x seeds."""
        return self.stage == SEARCH

    @property
    def folder(self) -> str:
        return res.join(self.storage, self.name)

    @property
    def label(self) -> str:
        """The name trackers and the Optuna study show: a confirm stage's is <name>/confirm."""
        return f"{self.name}/{CONFIRM}" if self.stage == CONFIRM else self.name

    @property
    def experiment(self) -> str:
        """Ray's experiment folder of this phase."""
        return res.join(self.folder, CONFIRM_DIR) if self.stage == CONFIRM else self.folder

    @property
    def trial_base(self) -> dict:
        """What every trial's config shares: the base, with the threads --cpus-per-trial gives it
        (recorded in the rows as config/threads) unless the base fixes them."""
        return {"threads": _threads(self), **self.base}


def trial_configs(spec: StudySpec) -> list[dict]:
    """The configs the study can run, as Tune configs (the search: its first point)."""
    if spec.search:
        paper_alpha = TrainConfig.from_dict({**spec.base, "alpha": None}).alpha
        return [{**spec.trial_base, **spec.space.paper_point(paper_alpha), "seed": spec.seeds[0]}]
    return [{**spec.trial_base, CELL: cell, "seed": seed} for cell in spec.cells for seed in spec.seeds]


def validate(spec: StudySpec) -> list[TrainConfig]:
    """Every trial's config, resolved; a bad one stops the study here, before Ray starts."""
    if spec.search and spec.space is None:
        raise ConfigError("a search needs a search space")
    if not spec.search and not spec.cells:
        raise ConfigError("a grid study needs at least one cell")
    if spec.num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, got {spec.num_samples}")
    from attnfd.study.trackers import check_trackers

    check_trackers(spec.trackers)
    if spec.mlflow_uri and "mlflow" not in spec.trackers:
        raise ConfigError("--mlflow-uri is for --tracker mlflow")
    if spec.cohort != "auto" and not (isinstance(spec.cohort, int) and spec.cohort >= 1):
        raise ConfigError(f"--cohort must be auto or a number of cells >= 1, got {spec.cohort!r}")
    if spec.confirm < 0 or spec.confirm_seeds < 1:
        raise ConfigError(f"--confirm must be >= 0 and --confirm-seeds >= 1, got {spec.confirm} and {spec.confirm_seeds}")
    if not (spec.cpus_per_trial > 0 and spec.gpus_per_trial >= 0):  # NaN fails both
        raise ConfigError("cpus per trial must be > 0 and gpus per trial >= 0")
    if "://" not in spec.storage:
        from attnfd.paths import folder_problem

        problem = folder_problem(spec.storage)
        if problem:
            raise ConfigError(f"--storage: {problem}")
    configs = [TrainConfig.from_dict(trial_values(c)) for c in trial_configs(spec)]
    datasets = sorted({c.dataset for c in configs})
    if len(datasets) > 1:
        # study.json and the analysis read one data set's class names for every row
        raise ConfigError(f"a study's trials share one data set; these cells use {', '.join(datasets)}")
    if spec.address is None:
        # a local Ray instance reads the data where the driver runs: check it here (on a
        # cluster the data need only be on the workers, which the teacher task checks)
        from attnfd.data import check_data

        for config in {(c.dataset, c.data_root): c for c in configs}.values():
            check_data(config)
    if spec.search and spec.space is not None:
        from attnfd.distill.spec import fixed_options

        fixed = set(spec.base) | fixed_options(spec.base.get("distill_options"))
        for name in spec.space.dimensions:
            if name in fixed:
                raise ConfigError(f"{name} is searched; do not also fix it")
    return configs


def _threads(spec: StudySpec) -> int:
    return max(1, int(spec.cpus_per_trial))


def _init_ray(spec: StudySpec) -> bool:
    """Connect to the cluster (or start a local instance); True if this call started Ray."""
    import ray

    if not sys.stdout.isatty():
        # the lines Ray forwards from its workers would carry colour codes into a log file
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    if ray.is_initialized():
        return False
    # the usage-stats report would dial out of the machine
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's INFO lines and its warnings are written for Ray's developers; --verbose shows them
    quiet = {} if spec.verbose > 0 else {"logging_level": logging.ERROR}
    if spec.verbose <= 0:
        logging.getLogger("ray").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module="ray")
    if spec.address:
        host = spec.address.rsplit(":", 1)[0]
        # a cluster on this machine's loopback: the driver must stay on the same address
        ray.init(address=spec.address, _node_ip_address=host if host.startswith("127.") else None, **quiet)
    else:
        ray.init(include_dashboard=False, _node_ip_address=spec.node_ip, **quiet)
    return True


def prepare_teachers(spec: StudySpec, configs: list[TrainConfig]) -> dict[str, bytes]:
    """Train (or find in the cache) each teacher the study needs, once, before any trial
    starts, on one whole node (all its CPUs, or a GPU); its file reaches the trials through
    the object store."""
    import ray
    from ray.exceptions import RayTaskError

    needed = {}
    for config in configs:
        if config.distilling:
            needed.setdefault(teacher_key(config), config)
    if not needed:
        return {}
    cpus, gpus = _whole_node(spec)
    task = ray.remote(prepare_teacher_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=spec.max_failures)
    teachers = {}
    for key, config in needed.items():
        print(f"teacher {key}: preparing it on one node ({cpus:g} CPUs{f', {gpus:g} GPU' if gpus else ''}) "
              "before the trials start", flush=True)
        start = time.perf_counter()
        try:
            teachers[key] = ray.get(task.remote(dataclasses.asdict(config), max(1, int(cpus))))
        except RayTaskError as err:
            # a bad data root or cache on the worker: its one line, not the worker's traceback
            if isinstance(err.cause, ConfigError):
                raise ConfigError(f"teacher {key}: {err.cause}") from None
            raise
        print(f"teacher {key}: ready in {time.perf_counter() - start:.0f} s ({len(teachers[key]) / 1e6:.0f} MB)",
              flush=True)
    return teachers


def _whole_node(spec: StudySpec) -> tuple[float, float]:
    """The CPUs (and one GPU, if trials use GPUs) of the largest node: no trial runs while a
    teacher trains, so it may have the whole machine."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if spec.gpus_per_trial > 0:
        nodes = [n for n in nodes if n.get("GPU", 0) >= 1] or nodes
    best = max(nodes, key=lambda n: n.get("CPU", 0), default={})
    return max(float(best.get("CPU", spec.cpus_per_trial)), spec.cpus_per_trial), 1.0 if spec.gpus_per_trial > 0 else 0.0


def prepare_teacher_task(values: dict, threads: int) -> bytes:
    """Runs as a Ray task: its printed lines reach the study's console with Ray's prefix."""
    import torch

    from attnfd.teachers import ensure_teacher

    torch.set_num_threads(threads)
    config = TrainConfig.from_dict(values)
    return Path(ensure_teacher(config)).read_bytes()


def total_trials(spec: StudySpec) -> int:
    if spec.search:
        return spec.num_samples + int(spec.reference)
    return len(spec.cells) * len(spec.seeds)


def _console(spec: StudySpec, trials: int | None = None):
    from attnfd.study.console import TrialEvents

    epochs = TrainConfig.from_dict(trial_values(trial_configs(spec)[0])).epochs
    shown = [] if spec.verbose < 0 else spec.searched
    return TrialEvents(trials or total_trials(spec), epochs, shown, events=spec.verbose >= 0)


def grid_cohorts(spec: StudySpec) -> list[list[dict]] | None:
    """A grid phase's cohorts (lists of cells), or None where every cell runs alone."""
    from attnfd.study.cohorts import AUTO, auto_size, pack

    size = auto_size(spec, spec.cells) if spec.cohort == AUTO else spec.cohort
    if size <= 1:
        return None
    cohorts = pack(spec.trial_base, spec.cells, spec.seeds, size)
    return cohorts if any(len(c) > 1 for c in cohorts) else None


def trial_dirname(trial) -> str:
    # the default name spells out the whole config and runs past file-name limits
    return trial_folder(trial.trial_id)


def _optuna_callbacks(spec: StudySpec, storage) -> list:
    from attnfd.study.optuna_study import GridRecorder, JournalCopy, journal_is_copied

    callbacks = [] if spec.search or storage is None else [GridRecorder(storage, spec.label, spec.cells)]
    return callbacks + ([JournalCopy(spec)] if journal_is_copied(spec) else [])


def _tuner(spec: StudySpec, trainable):
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from attnfd.study.optuna_study import open_storage
    from attnfd.study.trackers import tracker_callbacks

    if spec.verbose <= 0:
        import optuna

        # Optuna's INFO line about the study it creates and its notice that grouped TPE is
        # experimental are for people tuning Optuna, not for the study's console
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    cohorts = None if spec.search else grid_cohorts(spec)
    writer = res.ResultsWriter(spec.storage, spec.name, spec.protocol, spec.stage)
    optuna_storage = open_storage(spec)
    storage_path = spec.storage if "://" in spec.storage else str(Path(spec.storage).expanduser().resolve())
    # a confirm stage is an experiment of its own inside the study's folder
    storage_path, name = (res.join(storage_path, spec.name), CONFIRM_DIR) if spec.stage == CONFIRM else \
        (storage_path, spec.name)
    run_config = tune.RunConfig(
        name=name, storage_path=storage_path, verbose=max(spec.verbose, 0),
        # Ray's own JSON/CSV logs stay; its TensorBoard logger comes only with --tracker
        # tensorboard (Tune's automatic loggers are off, see run_study)
        callbacks=[writer, JsonLoggerCallback(), CSVLoggerCallback(),
                   _console(spec, len(cohorts) * len(spec.seeds) if cohorts else None),
                   *_optuna_callbacks(spec, optuna_storage), *tracker_callbacks(spec)],
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )
    if spec.search:
        import optuna

        from attnfd.study.searcher import REFERENCE, StudyASHA, StudySearch


        epochs = TrainConfig.from_dict(spec.base).epochs
        paper_alpha = TrainConfig.from_dict({**spec.base, "alpha": None}).alpha
        searcher = StudySearch(
            spec.space, metric=OBJECTIVE, mode="max", points_to_evaluate=[spec.space.paper_point(paper_alpha)],
            sampler=optuna.samplers.TPESampler(seed=spec.sampler_seed, multivariate=True, group=True),
            reference=REFERENCE if spec.reference else None, trial_seed=spec.seeds[0],
            **({"storage": optuna_storage, "study_name": spec.label} if optuna_storage is not None else {}),
        )
        scheduler = None
        if spec.asha and epochs > 1:
            scheduler = StudyASHA(time_attr="training_iteration", max_t=epochs,
                                  grace_period=max(1, epochs // 4), reduction_factor=2)
        param_space = {**spec.trial_base, "seed": spec.seeds[0]}
        tune_config = tune.TuneConfig(metric=OBJECTIVE, mode="max", search_alg=searcher, scheduler=scheduler,
                                      num_samples=spec.num_samples + int(spec.reference),
                                      max_concurrent_trials=spec.max_concurrent,
                                      reuse_actors=True, trial_dirname_creator=trial_dirname)
    else:
        cells = {COHORT: tune.grid_search(cohorts)} if cohorts else {CELL: tune.grid_search(spec.cells)}
        param_space = {**spec.trial_base, **cells, "seed": tune.grid_search(spec.seeds)}
        tune_config = tune.TuneConfig(metric=OBJECTIVE, mode="max", num_samples=1,
                                      max_concurrent_trials=spec.max_concurrent, reuse_actors=True,
                                      trial_dirname_creator=trial_dirname)
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


@contextlib.contextmanager
def _tune_console(verbose: int):
    """Tune's newer console prints a box at the start at every verbosity; its older one is
    silent at verbosity 0, which leaves the console to TrialEvents. Read by Tune when the
    run starts, so it is set for this run only (a user's own setting wins)."""
    if verbose > 0 or "RAY_AIR_NEW_OUTPUT" in os.environ:
        yield
        return
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        del os.environ["RAY_AIR_NEW_OUTPUT"]


def run_study(spec: StudySpec) -> list[dict]:
    """Run (or resume) the study, its confirm stage included; returns each trial's last row, as
    in summary.parquet."""
    configs = validate(spec)
    # read by Tune in this process: our loggers are given explicitly (see _tuner), and short
    # trials checkpoint often enough to trigger a warning meant for slow storage
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    from ray import tune

    meta = res.read_study_meta(spec.storage, spec.name)
    auto = spec.resume == RESUME_AUTO
    if auto:
        spec = dataclasses.replace(spec, resume=meta is not None)
    if spec.resume and meta is None:
        raise ConfigError(f"no study {spec.name!r} to resume in {spec.storage}")
    if not spec.resume and meta is not None:
        raise ConfigError(f"a study {spec.name!r} exists in {spec.storage}; pass --resume to continue it, "
                          "or another --name")
    if meta is not None and meta.get("protocol", spec.protocol) != spec.protocol:
        # Ray would continue that study's trials, not the ones this command describes
        raise ConfigError(f"the study {spec.name!r} in {spec.storage} is a {meta['protocol']} study, not a "
                          f"{spec.protocol} one; pick another --name")
    if meta is None:
        from attnfd.study.optuna_study import check_new

        check_new(spec)
    if auto:
        print(f"study {spec.name}: " + (f"continuing it ({spec.folder})" if meta else f"not in {spec.storage}, "
                                        "starting it"), flush=True)
    started = _init_ray(spec)
    try:
        if meta is None:
            from attnfd.config_sections import field_roles
            from attnfd.data import dataset_class_names
            from attnfd.study.confirm import confirm_plan

            res.write_study_meta(spec.storage, spec.name, {
                "protocol": spec.protocol, "dataset": configs[0].dataset,
                "class_names": list(dataset_class_names(configs[0].dataset)), "seeds": spec.seeds,
                "metric": "miou", "searched": spec.searched, "num_samples": spec.num_samples,
                # which config fields tell rows apart, for the analysis (which imports no torch)
                "config_fields": field_roles(TrainConfig),
                "trials": total_trials(spec),  # the first phase's, so a watcher knows how far it is
                **({"confirm": confirm_plan(spec)} if spec.search and spec.confirm else {}),
                # the analysis reads each dimension's scale here rather than guessing it from the values
                **({SPACE_KEY: space_json(spec.space.described())} if spec.search and spec.space else {}),
            })
        teachers = prepare_teachers(spec, configs)
        trainable = tune.with_resources(
            tune.with_parameters(train_trial, teachers=teachers, verbose=spec.verbose > 0),
            {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial},
        )
        run_phase(spec, trainable)
        if spec.search and spec.confirm:
            from attnfd.study.confirm import confirm_stage

            stage = confirm_stage(spec, total_trials(spec))
            if stage is not None:
                validate(stage[0])
                print(stage[1], flush=True)
                run_phase(stage[0], trainable)
        return res.write_summary(spec.storage, spec.name)
    finally:
        if started:
            import ray

            ray.shutdown()


def run_phase(spec: StudySpec, trainable) -> None:
    """Run one phase's trials on Ray, continuing its experiment when the study is resumed."""
    from ray import tune

    if spec.resume and tune.Tuner.can_restore(spec.experiment):
        tuner = tune.Tuner.restore(spec.experiment, trainable=trainable, resume_errored=True)
    else:
        tuner = _tuner(spec, trainable)
    with _tune_console(spec.verbose):
        tuner.fit()


def best_row(rows: list[dict]) -> dict | None:
    """The completed trial with the highest val mIoU."""
    done = [r for r in rows if r.get("status") == COMPLETED and math.isfinite(r.get("miou", math.nan))]
    return max(done, key=lambda r: r["miou"]) if done else None
