"""How much of the teacher-student gap AttnFD recovers on the built-in ``shapes`` data.

Trains (or finds in the cache) the ResNet-101 teacher, then for each seed a plain student
and an AttnFD student with the same recipe, and prints val mIoU per run and the fraction of
the gap recovered: (AttnFD - plain) / (teacher - plain).

    python bench/shapes_gain.py --seeds 3 --student resnet18
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from attnfd.config import TrainConfig
from attnfd.teachers import load_model, prepare_teacher
from attnfd.trainer import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    base = {"dataset": "shapes", "backbone": args.student, "cache_dir": args.cache_dir}
    if args.alpha is not None:
        base["alpha"] = args.alpha
    started = time.perf_counter()
    teacher_path = prepare_teacher(TrainConfig.from_dict({**base, "distill": "attnfd"}))
    teacher_seconds = time.perf_counter() - started
    _, teacher_cfg = load_model(teacher_path)
    teacher_miou = _saved_miou(teacher_path)
    print(json.dumps({"run": "teacher", "backbone": teacher_cfg.backbone, "miou": teacher_miou,
                      "seconds": round(teacher_seconds)}), flush=True)

    results = {"plain": [], "attnfd": []}
    for seed in range(args.seeds):
        for kind, scores in results.items():
            config = {**base, "seed": seed, "out_dir": tempfile.mkdtemp(prefix=f"bench-{kind}-")}
            if kind == "attnfd":
                config["distill"] = "attnfd"
            started = time.perf_counter()
            row = fit(config)
            scores.append(row["miou"])
            print(json.dumps({"run": kind, "seed": seed, "miou": row["miou"], "pixel_acc": row["pixel_acc"],
                              "seconds": round(time.perf_counter() - started)}), flush=True)

    plain, attn = statistics.mean(results["plain"]), statistics.mean(results["attnfd"])
    spread = {k: statistics.pstdev(v) for k, v in results.items()}
    print(f"teacher {teacher_cfg.backbone}: {teacher_miou:.4f}")
    print(f"plain {args.student}: {plain:.4f} ± {spread['plain']:.4f}")
    print(f"attnfd {args.student}: {attn:.4f} ± {spread['attnfd']:.4f}")
    gap = teacher_miou - plain
    print(f"gap recovered: {(attn - plain) / gap:.2f}" if gap > 0 else "the teacher does not beat the plain student")


def _saved_miou(path) -> float:
    from attnfd import checkpoint

    return checkpoint.load(path)["history"][-1]["miou"]


if __name__ == "__main__":
    main()
