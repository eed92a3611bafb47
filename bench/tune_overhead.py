"""What Ray Tune adds to a study: N identical trials as a study, against the same runs of
``fit`` in a plain loop, one after the other on the same cores, measured in one run.

    ratio = study wall time / loop wall time

The study runs one trial at a time with every core (``--cpus-per-trial`` = the machine's),
so it does the loop's work plus the orchestration: actors, reports and checkpoints through
Ray, the Parquet rows. ``ray.init`` and shutdown are timed apart, once per study. The goal
is at most 1.10 for trials of a minute or more.

    python bench/tune_overhead.py --trials 3 --epochs 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from attnfd.config import TrainConfig
from attnfd.study.runner import LOCAL_NODE_IP, StudySpec, run_study
from attnfd.trainer import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial (2 on shapes: about a minute)")
    parser.add_argument("--student", default="resnet18")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    base = {"dataset": "shapes", "role": "student", "backbone": args.student, "epochs": args.epochs}
    folder = tempfile.mkdtemp(prefix="bench-tune-")

    start = time.perf_counter()
    for i in range(args.trials):
        fit(TrainConfig.from_dict({**base, "out_dir": f"{folder}/loop/{i}"}))
    loop = time.perf_counter() - start

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, _node_ip_address=LOCAL_NODE_IP, log_to_driver=False)
    init = time.perf_counter() - start
    # identical cells: the grid runs the same config N times, as the loop did
    spec = StudySpec(protocol="layers", base=base, storage=f"{folder}/studies", name="overhead",
                     cells=[{"backbone": args.student, "distill": None}] * args.trials, cpus_per_trial=cores,
                     verbose=0)
    start = time.perf_counter()
    rows = run_study(spec)
    study = time.perf_counter() - start
    start = time.perf_counter()
    ray.shutdown()
    shutdown = time.perf_counter() - start

    assert len(rows) == args.trials and all(r["status"] == "completed" for r in rows), rows
    per_trial = loop / args.trials
    print(f"{args.trials} trials of {args.epochs} epochs, {cores} threads each, one at a time")
    print(f"plain loop:  {loop:7.1f} s ({per_trial:.1f} s per trial)")
    print(f"Ray Tune:    {study:7.1f} s; ray.init {init:.1f} s, shutdown {shutdown:.1f} s")
    print(f"ratio study / loop: {study / loop:.3f}; with init and shutdown: {(study + init + shutdown) / loop:.3f}")
    print(f"overhead per trial: {(study - loop) / args.trials:.1f} s")


if __name__ == "__main__":
    main()
