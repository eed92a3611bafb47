"""What each distillation method costs per training step, on the CPU, against plain student
training at the same batch: the extra time and the extra memory, as ratios.

    python bench/distill_overhead.py                      # shapes recipe: 64 px, batch 16
    python bench/distill_overhead.py --image-size 128 --batch-size 4 --steps 5

Every configuration (plain training first and last, then each method alone) runs in a fresh
process that builds the trainer's ``Run`` (ResNet-18 student, ResNet-101 teacher with random
weights: the cost does not depend on them) and times whole steps as the trainer takes them
(``Run._step``: student forward, teacher forward under inference mode, the method's loss;
then backward and the SGD step), one warm-up step and then the median of ``--steps``.

- time ratio: median step of the method / median plain student step (CE only) timed
  alternately with it in the same process, so both see the same load; the extra time is
  split into the teacher's forward pass (timed alone, alternately too) and the rest, the
  method's own loss, modules and backward;
- memory ratio: peak resident memory of the process during training minus its resident
  memory after importing torch, method / plain (the plain runs, first and last, in processes
  of their own). The method's share includes the teacher's
  weights and activations and the method's own state (connectors, CIRKD's queues), also
  listed alone as "state MB".

The figures come from one run on one machine; on a machine shared with other jobs the times
move with the load (the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(values: dict, steps: int) -> dict:
    """One configuration in this (fresh) process: median step seconds, the plain student step
    and the teacher's forward pass timed alternately with it, and the peak memory."""
    import torch
    import torch.nn.functional as F

    from attnfd.config import TrainConfig
    from attnfd.metrics import IGNORE_INDEX
    from attnfd.trainer import Run

    base = _rss_mb()
    run = Run(TrainConfig.from_dict(values))
    run.model.train()
    run.distillers.train()
    images, labels = next(iter(run.train_loader))

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def step(progress: float) -> None:
        parts = run._step(images, labels, progress)
        run.optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        run.optimizer.step()

    def plain_step() -> None:
        # the trainer's step without a teacher: CE only
        logits, _ = run.model(images)
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()

    def teacher_forward() -> None:
        with torch.inference_mode():
            run.teacher(images)

    step(0.0)
    times, plain, teacher = [], [], []
    for i in range(steps):
        # alternated, so the ratios within this process share the machine's load
        times.append(timed(lambda p=(i + 1) / (steps + 1): step(p)))
        if run.teacher is not None:
            plain.append(timed(plain_step))
            teacher.append(timed(teacher_forward))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    state = sum(t.numel() * t.element_size() for t in run.distillers.state_dict().values()) / 2**20
    median = statistics.median
    return {
        "seconds": median(times), "plain_seconds": median(plain) if plain else median(times),
        "teacher_seconds": median(teacher) if teacher else 0.0,
        "memory_mb": peak - base, "state_mb": state, "threads": torch.get_num_threads(),
    }


def _write_teacher(config, folder: Path) -> str:
    """An untrained teacher model file, so no run trains one."""
    from attnfd import checkpoint as ckpt
    from attnfd.config import teacher_config
    from attnfd.models import build_model

    tconfig = teacher_config(config)
    path = folder / ckpt.MODEL_FILE
    ckpt.atomic_save({"config": tconfig.to_dict(), "model": build_model(tconfig).state_dict(), "history": []}, path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--teacher", default="resnet101")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    args = parser.parse_args()

    from attnfd.config import TrainConfig
    from attnfd.distill import DISTILLERS

    methods = args.methods.split(",") if args.methods else sorted(DISTILLERS)
    base = {
        "dataset": "shapes", "image_size": args.image_size, "batch_size": args.batch_size,
        "train_size": args.batch_size, "val_size": 2, "backbone": args.student, "teacher_backbone": args.teacher,
        "device": "cpu", "workers": 0,
    }
    with tempfile.TemporaryDirectory(prefix="distill-overhead-") as tmp:
        teacher = _write_teacher(TrainConfig.from_dict({**base, "distill": "attnfd"}), Path(tmp))
        runs = [("plain", None)] + [(m, m) for m in methods] + [("plain", None)]
        load_before = os.getloadavg()
        results: dict[str, list[dict]] = {}
        for label, spec in tqdm(runs, desc="configurations", disable=None):
            values = {**base, "cache_dir": tmp, "out_dir": tmp}
            if spec:
                values.update(distill=spec, teacher_checkpoint=teacher)
            values = TrainConfig.from_dict(values).to_dict()
            # a fresh process per configuration: peak memory is per process
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                results.setdefault(label, []).append(pool.submit(measure, values, args.steps).result())
        load_after = os.getloadavg()

    plain = results.pop("plain")
    plain_mb = statistics.mean(r["memory_mb"] for r in plain)
    print(f"CPU, {plain[0]['threads']} threads; student {args.student}, teacher {args.teacher}; "
          f"batch {args.batch_size} x {args.image_size}x{args.image_size}; median of {args.steps} steps")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (a shared machine: times move with it)")
    print(f"plain student step alone: {plain[0]['seconds']:.3f} s first, {plain[1]['seconds']:.3f} s last; "
          f"peak memory {plain[0]['memory_mb']:.0f} / {plain[1]['memory_mb']:.0f} MB")
    print()
    print("time ratio = distillation step / plain step, timed alternately in one process; of the extra time,")
    print("the teacher's forward pass and the rest (the method's loss, its modules, their backward)")
    print()
    print("| method | step s | plain s | time ratio | teacher fwd | method itself | peak MB | memory ratio | state MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in methods:
        r = results[method][0]
        base_s = r["plain_seconds"]
        own = (r["seconds"] - base_s - r["teacher_seconds"]) / base_s
        print(f"| {method} | {r['seconds']:.3f} | {base_s:.3f} | {r['seconds'] / base_s:.2f} | "
              f"{r['teacher_seconds'] / base_s:+.0%} | {own:+.0%} | {r['memory_mb']:.0f} | "
              f"{r['memory_mb'] / plain_mb:.2f} | {r['state_mb']:.1f} |")


if __name__ == "__main__":
    main()
