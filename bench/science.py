"""Does distillation work on the embedded benchmark? Teacher, plain student, AttnFD and every
baseline at its default weight, over seeds, with the share of the gap each recovers.

    python bench/science.py --seeds 3                      # teacher, plain, attnfd and the baselines
    python bench/science.py --seeds 3 --methods attnfd     # only AttnFD against the plain student
    python bench/science.py --seeds 3 --methods attnfd --recipe official   # the official code's choices

For each method the line gives its mean val mIoU over the seeds, the gain over the plain
student, the share of the teacher-student gap that gain is, and two p-values against the
plain student: Welch's t-test, and the paired t-test (the same seed gives both students the
same initialisation and the same batches, so the runs pair by seed). A per-pixel control
(a 1x1-conv classifier on the pixels) and a small-receptive-field control (three 3x3 convs,
7 px) show what the task asks beyond a pixel's colour or its local texture.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import torch
from scipy import stats

from attnfd.arguments import config_overrides
from attnfd.config import TrainConfig
from attnfd.data import build_dataset
from attnfd.distill import DISTILLERS
from attnfd.metrics import ConfusionMatrix
from attnfd.model_files import saved_miou
from attnfd.teachers import ensure_teacher
from attnfd.trainer import fit


def _run(base: dict, seed: int, distill: str | None, threads: int) -> tuple[str, int, float, float]:
    # a run's numbers depend on its thread count (summation order), so every run of one
    # invocation uses the same count and the pairs by seed stay exact
    config = {**base, "seed": seed, "distill": distill, "threads": threads, "out_dir": tempfile.mkdtemp(prefix="science-")}
    started = time.perf_counter()
    row = fit(config)
    return distill or "none", seed, row["miou"], time.perf_counter() - started


class PixelClassifier(torch.nn.Module):
    """Sees one pixel: 1x1 convolutions only."""

    def __init__(self, classes: int, width: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, width, 1), torch.nn.ReLU(), torch.nn.Conv2d(width, width, 1),
                                       torch.nn.ReLU(), torch.nn.Conv2d(width, classes, 1))

    def forward(self, x):
        return self.net(x)


class LocalClassifier(torch.nn.Module):
    """Sees a 7x7 window: three 3x3 convolutions, then 1x1 ones."""

    def __init__(self, classes: int, width: int = 64):
        super().__init__()
        layers, cin = [], 3
        for _ in range(3):
            layers += [torch.nn.Conv2d(cin, width, 3, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU()]
            cin = width
        self.net = torch.nn.Sequential(*layers, torch.nn.Conv2d(width, width, 1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(width, classes, 1))

    def forward(self, x):
        return self.net(x)


def control(model: torch.nn.Module, config: TrainConfig, images: int) -> float:
    """Train a control on as many new scenes as the students see (Adam: no schedule to tune),
    then score it on the same validation split."""
    torch.manual_seed(0)
    train, val = build_dataset(config, "train"), build_dataset(config, "val")
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = config.batch_size
    for start in range(0, images, batch):
        x, y = map(torch.stack, zip(*(train[i] for i in range(start, start + batch))))
        loss = torch.nn.functional.cross_entropy(model(x), y, ignore_index=255)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    matrix = ConfusionMatrix(config.num_classes)
    with torch.no_grad():
        for i in range(0, len(val), 64):
            x, y = map(torch.stack, zip(*(val[j] for j in range(i, min(i + 64, len(val))))))
            matrix.update(y, model(x).argmax(1))
    return matrix.compute()["miou"]


def compare(name: str, scores: list[float], plain: list[float], teacher: float) -> dict:
    gain = statistics.mean(scores) - statistics.mean(plain)
    gap = teacher - statistics.mean(plain)
    welch = stats.ttest_ind(scores, plain, equal_var=False).pvalue if len(scores) > 1 else float("nan")
    paired = stats.ttest_rel(scores, plain).pvalue if len(scores) > 1 else float("nan")
    return {"method": name, "miou": statistics.mean(scores), "sd": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "gain": gain, "gap_recovered": gain / gap if gap > 0 else float("nan"),
            "p_welch": float(welch), "p_paired": float(paired), "per_seed": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--methods", default=None, help="comma-separated (default: attnfd and every baseline)")
    parser.add_argument("--controls", action="store_true", help="also train the per-pixel and 7 px controls")
    parser.add_argument("--recipe", default="paper", help="paper (default) or official (README, recipe=official)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--jobs", type=int, default=1,
                        help="student runs at once, the cores shared among them (2 on 2 cores keeps both busy "
                             "through the single-threaded parts and is less hurt by other load)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="a training config field for every run, e.g. --set alpha=2 (repeatable; a teacher "
                             "field such as teacher_epochs changes the teacher too)")
    args = parser.parse_args()
    methods = args.methods.split(",") if args.methods else sorted(DISTILLERS, key=lambda m: (m != "attnfd", m))

    base = {"dataset": "shapes", "backbone": args.student, "cache_dir": args.cache_dir, "recipe": args.recipe,
            **config_overrides(args.overrides)}
    started = time.perf_counter()
    teacher_file = ensure_teacher(TrainConfig.from_dict({**base, "distill": "attnfd"}))
    teacher = saved_miou(teacher_file)
    print(json.dumps({"run": "teacher", "miou": teacher, "seconds": round(time.perf_counter() - started)}), flush=True)

    if args.controls:
        config = TrainConfig.from_dict(base)
        images = config.epochs * config.train_size
        for name, model in (("per-pixel", PixelClassifier(config.num_classes)),
                            ("7 px field", LocalClassifier(config.num_classes))):
            started = time.perf_counter()
            print(json.dumps({"run": f"control {name}", "images": images, "miou": round(control(model, config, images), 4),
                              "seconds": round(time.perf_counter() - started)}), flush=True)

    runs = [(None if method == "none" else method, seed) for method in ["none", *methods] for seed in range(args.seeds)]
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    print(f"{len(runs)} student runs, {args.jobs} at a time with {threads} thread(s) each", flush=True)
    results: dict[tuple[str, int], float] = {}
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in as_completed([pool.submit(_run, base, seed, distill, threads) for distill, seed in runs]):
            method, seed, miou, seconds = done.result()
            results[method, seed] = miou
            print(json.dumps({"run": method, "seed": seed, "miou": round(miou, 4), "seconds": round(seconds)}),
                  flush=True)
    scores = {method: [results[method, seed] for seed in range(args.seeds)] for method in ["none", *methods]}

    plain = scores.pop("none")
    print(f"\nteacher {TrainConfig.from_dict(base).teacher_backbone}: {teacher:.4f}")
    print(f"{args.student} alone: {statistics.mean(plain):.4f} ± {statistics.stdev(plain) if len(plain) > 1 else 0:.4f} "
          f"(gap to the teacher {100 * (teacher - statistics.mean(plain)):.1f} points)")
    print(f"{'method':10} {'mIoU':>8} {'sd':>7} {'gain':>7} {'of gap':>7} {'p Welch':>9} {'p paired':>9}")
    for method, values in scores.items():
        r = compare(method, values, plain, teacher)
        print(f"{method:10} {r['miou']:8.4f} {r['sd']:7.4f} {100 * r['gain']:+7.2f} {r['gap_recovered']:7.0%} "
              f"{r['p_welch']:9.4f} {r['p_paired']:9.4f}")


if __name__ == "__main__":
    main()
