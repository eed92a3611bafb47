"""Table 3 as independent trials against the same cells in cohorts, with the same resources,
measured in one run:

    ratio = cohort study wall time / independent study wall time   (goal <= 0.65)

Both studies are the layers protocol (the student alone and the 7 layer subsets) for one
student and one seed on the embedded benchmark, on one local Ray instance with the same CPUs
and --cpus-per-trial; the teacher is prepared before either starts, so neither pays for it.
Peak memory is the largest sum, sampled every 0.2 s, of the resident memory of the Ray
worker processes running trials. The cohort study's rows must equal the independent
study's, cell by cell (every value but times and ids), and the bench says whether they do.

Where the cohorts' time goes, from their rows: each student's own steps and evaluation (the
floor: a cohort cannot go below it), its share of the batches and the teacher's forward
(``shared_seconds``), and the rest of the wall time (process start, model building, Ray).

    python bench/cohort.py                     # the embedded benchmark, ResNet-18, 2 CPUs
    python bench/cohort.py --cohort 8 --cohort-cpus-per-trial 2   # one cohort of all 8 on both cores
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from attnfd.config import TrainConfig
from attnfd.study.protocols import protocol_cells
from attnfd.study.runner import LOCAL_NODE_IP, StudySpec, run_study
from attnfd.teachers import ensure_teacher

IDENTITY = {"study", "trial_id", "cohort", "node", "pid", "time", "seconds", "shared_seconds", "node_id"}


class PeakMemory:
    """The largest total RSS of this process's Ray trial workers while it runs."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.2):
            total = 0
            for child in me.children(recursive=True):
                try:
                    if child.name().startswith("ray::") and "IDLE" not in child.name():
                        total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def cell_rows(folder: Path) -> dict:
    cells = {}
    for path in sorted((folder / "results" / "epochs").glob("*.parquet")):
        rows = pq.read_table(path).to_pylist()
        key = (rows[0]["config/distill"], rows[0]["config/layers"] if rows[0]["config/distill"] != "none" else "")
        cells[key] = rows
    return cells


def comparable(rows: list[dict]) -> list[dict]:
    fix = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v
    return [{k: [fix(x) for x in v] if isinstance(v, list) else fix(v) for k, v in r.items() if k not in IDENTITY}
            for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="the Ray instance's CPUs")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--cohort", default="auto", help="the cohort study's --cohort (auto or K)")
    parser.add_argument("--cohort-cpus-per-trial", type=float, default=None,
                        help="the cohort study's --cpus-per-trial (default: --cpus-per-trial); its trials then run "
                             "with other thread counts, so its rows are not the independent ones' digits")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="a config field for every trial, e.g. epochs=1")
    args = parser.parse_args()

    import ray

    from attnfd.arguments import config_overrides
    from attnfd.study.cohorts import parse_cohort

    base = {"dataset": "shapes", "role": "student", **config_overrides(args.overrides)}
    cells = protocol_cells("layers", [args.student])
    print(f"Table 3 protocol: {len(cells)} cells of {args.student}, seed 0, on shapes; {args.cpus} CPUs, "
          f"{args.cpus_per_trial:g} per trial", flush=True)
    print(f"teacher: {ensure_teacher(TrainConfig.from_dict({**base, 'distill': 'attnfd'}))}", flush=True)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address=LOCAL_NODE_IP, log_to_driver=False)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-cohort-") as storage:
        cohort_cpus = args.cohort_cpus_per_trial or args.cpus_per_trial
        for name, cohort, cpus in (("independent", 1, args.cpus_per_trial),
                                   ("cohorts", parse_cohort(args.cohort), cohort_cpus)):
            spec = StudySpec(protocol="layers", base=base, storage=storage, name=name, cells=cells, seeds=[0],
                             cpus_per_trial=cpus, verbose=-1, cohort=cohort)
            with PeakMemory() as memory:
                start = time.perf_counter()
                run_study(spec)
                wall = time.perf_counter() - start
            rows = cell_rows(Path(storage) / name)
            trials = len({r[0].get("cohort") or r[0]["trial_id"] for r in rows.values()})
            results[name] = {"wall": wall, "memory": memory.peak, "rows": rows, "trials": trials}
            print(f"{name}: {trials} trials, wall {wall:.0f} s, peak worker memory {memory.peak / 2**30:.2f} GB",
                  flush=True)
    ray.shutdown()

    independent, cohorts = results["independent"], results["cohorts"]
    same = all(comparable(cohorts["rows"][cell]) == comparable(rows) for cell, rows in independent["rows"].items())
    print(f"ratio {cohorts['wall'] / independent['wall']:.3f} (cohorts / independent; goal <= 0.65); "
          f"peak memory ratio {cohorts['memory'] / max(independent['memory'], 1):.2f}")
    print(f"every cell's rows identical in both studies: {'yes' if same else 'NO'}")
    for name, result in results.items():
        all_rows = [r for rows in result["rows"].values() for r in rows]
        shared = sum(r.get("shared_seconds") or 0.0 for r in all_rows)
        own = sum(r["seconds"] for r in all_rows) - shared
        slots = args.cpus / (args.cpus_per_trial if name == "independent" else cohort_cpus)
        rest = result["wall"] - (own + shared) / slots
        print(f"{name}: per trial slot, students' own steps and evaluation {own / slots:.0f} s (the floor), "
              f"batches and teacher {shared / slots:.0f} s, the rest (start-up, building, Ray, idle slots) {rest:.0f} s")


if __name__ == "__main__":
    main()
