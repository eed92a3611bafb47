"""How many trial-epochs the Optuna (TPE) + ASHA search spends to come within 1 mIoU point of
the best config of the full grid, against the grid's total, on ``shapes``, in one run.

The grid is every layer subset x alpha-decay variant x alpha in ``--alphas`` (7 x 4 x 3 = 84
trials by default), each to its last epoch. The search draws from the same space (alpha
log-uniform between the smallest and the largest grid alpha), the paper's point first, with
ASHA stopping poor trials; its no-distillation reference trial counts among the epochs it
spends. Trials are taken in the order they ran, as the analysis's
"best so far" figure takes them. One seed per config: differences below the seed noise of
this small recipe are noise, and the grid's best is partly luck too.

The recipe is the embedded benchmark's (``shapes``' preset: its data, model pair, budget
and cached teacher). A trial takes about a minute on one core, so the default grid is about
45 minutes on 2 cores; ``--alphas 0.5,2`` (56 trials) about half an hour.

    python bench/search_vs_grid.py --alphas 0.5,2 --num-samples 12
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from attnfd.analysis.results import load_study
from attnfd.config import ALPHA_SCHEDULES
from attnfd.study.cohorts import parse_cohort
from attnfd.study.runner import LOCAL_NODE_IP, StudySpec, run_study
from attnfd.study.space import LAYER_SUBSETS, SearchSpace


def trials_in_run_order(folder: Path) -> list[dict]:
    return load_study(folder).trials.to_dict("records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the preset's)")
    parser.add_argument("--alphas", default="0.3,1,3")
    parser.add_argument("--num-samples", type=int, default=16, help="trials in the search")
    parser.add_argument("--search-seeds", type=int, default=1, help="searches, each with its own sampler seed")
    parser.add_argument("--within", type=float, default=0.01, help="how close to the grid's best counts, as mIoU")
    parser.add_argument("--cohort", default="auto", type=parse_cohort,
                        help="the grid's cells per trial (--cohort of tune/ablation.py; trial-epochs count cells)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--storage", default=None, help="where the studies go (default: a temporary folder)")
    args = parser.parse_args()

    alphas = [float(a) for a in args.alphas.split(",")]
    base = {"dataset": "shapes", "role": "student", "distill": "attnfd", "backbone": "resnet18",
            **({"epochs": args.epochs} if args.epochs else {})}
    if args.cache_dir:
        base["cache_dir"] = str(Path(args.cache_dir).resolve())
    storage = args.storage or tempfile.mkdtemp(prefix="bench-search-")
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(include_dashboard=False, _node_ip_address=LOCAL_NODE_IP, log_to_driver=False)
    try:
        cells = [{"layers": layers, "alpha_schedule": schedule, "alpha": alpha}
                 for layers in LAYER_SUBSETS for schedule in ALPHA_SCHEDULES for alpha in alphas]
        start = time.perf_counter()
        run_study(StudySpec(protocol="grid", base=base, storage=storage, name="grid", cells=cells, verbose=0,
                            cohort=args.cohort))
        grid_seconds = time.perf_counter() - start
        grid = trials_in_run_order(Path(storage) / "grid")
        done = [t for t in grid if t["status"] == "completed"]
        best = max(done, key=lambda t: t["miou"])
        grid_epochs = sum(int(t["epochs_run"]) for t in grid)
        print(f"grid: {len(grid)} trials ({len(done)} completed), {grid_epochs} trial-epochs, {grid_seconds:.0f} s; "
              f"best mIoU {100 * best['miou']:.2f} (layers {best['config/layers']}, "
              f"{best['config/alpha_schedule']}, alpha {best['config/alpha']})")
        ranked = sorted((100 * t["miou"] for t in done), reverse=True)
        print(f"grid mIoU: median {ranked[len(ranked) // 2]:.2f}, worst {ranked[-1]:.2f}; "
              f"configs within {100 * args.within:.1f} of the best: "
              f"{sum(m >= 100 * (best['miou'] - args.within) for m in ranked)} of {len(ranked)}")

        space = SearchSpace(alpha_range=(min(alphas), max(alphas)))
        for seed in range(args.search_seeds):
            name = f"search-{seed}"
            start = time.perf_counter()
            run_study(StudySpec(protocol="search", base=base, storage=storage, name=name, space=space,
                                searched=space.dimensions, num_samples=args.num_samples, sampler_seed=seed,
                                seeds=[0], verbose=0))
            seconds = time.perf_counter() - start
            spent, reached, best_found = 0, None, -1.0
            for t in trials_in_run_order(Path(storage) / name):
                spent += int(t["epochs_run"])
                if t["status"] == "completed" and t["miou"] is not None:
                    best_found = max(best_found, t["miou"])
                    if reached is None and t["miou"] >= best["miou"] - args.within:
                        reached = spent
            outcome = (f"within {100 * args.within:.1f} point(s) of the grid's best after {reached} trial-epochs "
                       f"= {reached / grid_epochs:.2f} of the grid's {grid_epochs}" if reached is not None
                       else f"never within {100 * args.within:.1f} point(s) of the grid's best")
            print(f"search seed {seed}: {args.num_samples} trials, {spent} trial-epochs, {seconds:.0f} s, "
                  f"best mIoU {100 * best_found:.2f}; {outcome}")
    finally:
        ray.shutdown()
    print(f"studies in {storage}")


if __name__ == "__main__":
    main()
