"""What watching a study costs: the same small grid study run with nothing to watch it
(``--optuna-storage none``), with its Optuna journal, and with the journal and each tracker,
one after another in one run, on one Ray instance.

Two figures per variant:
- the study's wall time against the bare study's (a ratio; its noise is that of the trials);
- the time spent inside the watching callbacks (the journal's recorder, the trackers) per
  trial report, measured around each of their hooks, against the bare study's time per
  report (a ratio that the trials' noise does not blur).

    python bench/watch_overhead.py --trials 4 --epochs 8
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import tempfile
import time

HOOKS = ("setup", "on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error", "on_experiment_end",
         "on_checkpoint")
spent: collections.Counter = collections.Counter()  # seconds inside each watching callback class's hooks
reports = collections.Counter()


def _timed(cls, hook):
    original = getattr(cls, hook)

    @functools.wraps(original)
    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[cls.__name__] += time.perf_counter() - start

    return timed


def instrument() -> list[str]:
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.logger import TBXLoggerCallback

    from attnfd.study import results as res
    from attnfd.study.optuna_study import GridRecorder
    classes = [GridRecorder, TBXLoggerCallback, MLflowLoggerCallback]
    for cls in classes:
        for hook in HOOKS:
            if hook in cls.__dict__ or any(hook in base.__dict__ for base in cls.__mro__[1:-1]):
                setattr(cls, hook, _timed(cls, hook))
    original = res.ResultsWriter.on_trial_result

    def counted(self, *args, **kwargs):
        reports["all"] += 1
        return original(self, *args, **kwargs)

    res.ResultsWriter.on_trial_result = counted
    return [cls.__name__ for cls in classes]


VARIANTS = {
    "bare (--optuna-storage none)": {"optuna_storage": "none"},
    "optuna journal": {},
    "journal + tensorboard": {"trackers": ("tensorboard",)},
    "journal + mlflow": {"trackers": ("mlflow",)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from attnfd.study.runner import LOCAL_NODE_IP, StudySpec, run_study

    names = instrument()
    # its studies' checkpoints take gigabytes; nothing in them is read afterwards
    scratch = tempfile.TemporaryDirectory(prefix="bench-watch-")
    folder = scratch.name
    base = {"dataset": "shapes", "image_size": 32, "train_size": 16, "val_size": 8, "batch_size": 8,
            "head_channels": 16, "backbone": "resnet18", "epochs": args.epochs, "role": "student",
            "cache_dir": f"{folder}/cache"}
    cells = [{"backbone": "resnet18", "distill": None}] * args.trials
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address=LOCAL_NODE_IP, log_to_driver=False)
    try:
        measured = {}
        for label, changes in VARIANTS.items():
            spent.clear()
            reports.clear()
            spec = StudySpec(protocol="layers", base=base, storage=f"{folder}/studies", name=label.split()[0] +
                             str(len(measured)), cells=cells, seeds=[0], verbose=-1, **changes)
            start = time.perf_counter()
            rows = run_study(spec)
            wall = time.perf_counter() - start
            assert len(rows) == args.trials and all(r["status"] == "completed" for r in rows), rows
            measured[label] = (wall, reports["all"], sum(spent[n] for n in names))
    finally:
        ray.shutdown()
        scratch.cleanup()

    bare_wall, bare_reports, _ = measured[next(iter(VARIANTS))]
    per_report = bare_wall / bare_reports
    print(f"{args.trials} trials x {args.epochs} epochs, one study per variant, {bare_reports} reports each; "
          f"bare study {bare_wall:.1f} s, {per_report * 1000:.0f} ms per report")
    print(f"{'variant':32s} {'wall':>7s} {'ratio':>6s} {'in callbacks/report':>20s} {'ratio':>7s}")
    for label, (wall, count, inside) in measured.items():
        print(f"{label:32s} {wall:6.1f}s {wall / bare_wall:6.3f} {inside / count * 1000:17.1f} ms "
              f"{1 + inside / count / per_report:7.4f}")


if __name__ == "__main__":
    main()
