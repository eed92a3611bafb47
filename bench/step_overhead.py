"""Cost of an AttnFD training step against its parts, measured in one run.

    ratio = distillation step / (plain student step + teacher inference)

with the same batch, models and trainer code (``attnfd.trainer.Run``). The three timings
are interleaved, repeat after repeat, so that load from other processes hits them alike.
The goal is a ratio of at most 1.10: the teacher adds its inference and nothing more.

    python bench/step_overhead.py --student resnet18 --batch 16 --repeats 10
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from attnfd import checkpoint
from attnfd.config import TrainConfig, teacher_config
from attnfd.models import build_model
from attnfd.trainer import Run


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--teacher", default="resnet101")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--layers", default="backbone,encoder,decoder")
    args = parser.parse_args()

    base = TrainConfig.from_dict({"backbone": args.student, "teacher_backbone": args.teacher,
                                  "batch_size": args.batch, "train_size": args.batch, "val_size": 2})
    folder = Path(tempfile.mkdtemp(prefix="bench-step-"))
    # a randomly initialised teacher costs the same per step as a trained one
    tconf = teacher_config(base)
    checkpoint.atomic_save({"config": tconf.to_dict(), "model": build_model(tconf).state_dict(), "history": []},
                           folder / "teacher.pt")
    plain = Run(dataclasses.replace(base, out_dir=str(folder / "plain")))
    distil = Run(dataclasses.replace(base, distill="attnfd", layers=tuple(args.layers.split(",")), out_dir=str(folder / "distil"),
                                     teacher_checkpoint=str(folder / "teacher.pt")))
    images, labels = next(iter(plain.train_loader))

    def train_step(run: Run) -> None:
        run.model.train(), run.distillers.train()
        loss = run._step(images, labels, 0.0)["loss"]
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()

    def teacher_inference() -> None:
        with torch.inference_mode():
            distil.teacher(images)

    steps = {"plain": lambda: train_step(plain), "teacher": teacher_inference, "distil": lambda: train_step(distil)}
    for fn in steps.values():  # warm-up
        fn()
    times = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, fn in steps.items():
            times[name].append(_timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"batch {args.batch} x {base.image_size}px, student {args.student}, teacher {args.teacher}, "
          f"layers {args.layers}, {args.repeats} repeats, {torch.get_num_threads()} threads (medians)")
    for k, v in med.items():
        print(f"  {k:8s} {v * 1000:8.1f} ms")
    print(f"distillation / (plain + teacher inference) = {med['distil'] / (med['plain'] + med['teacher']):.3f}")


if __name__ == "__main__":
    main()
