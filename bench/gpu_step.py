"""Training steps on a CUDA device at VOC size, as the trainer takes them (AMP, channels_last),
measured in one run:

- per method: the plain student's step, the teacher's inference, the distillation step, and
  the peak memory of a distillation step;
- cohorts of K = 1, 2, 4, 8 students (AttnFD) on one teacher forward, against K separate
  processes, each with its own teacher, sharing the GPU: images per second over all students;
- whether each method's step fits a 24 GB card at batch 8 (its measured peak).

Random weights and random batches (513 x 513, batch 6, 21 classes): a step costs the same
with trained ones. Without a CUDA device it says so and exits 0; ``--smoke`` runs every part
on the CPU at a tiny size instead, so the code cannot rot (tests/test_gpu_step.py).

    python bench/gpu_step.py                # on a GPU machine
    python bench/gpu_step.py --smoke        # every code path on the CPU, in seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from attnfd.config import TrainConfig, teacher_config
from attnfd.distill.methods import declared_methods
from attnfd.models import build_model
from attnfd.random_stream import RandomStream
from attnfd.trainer import Student, names_stage_taps

CARD_24GB = 24 * 2**30


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, steps: int) -> float:
    """The median of ``steps`` timings after one warm-up call (seconds)."""
    fn()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Setup:
    """The batch, the teacher and a way to build students, for one size."""

    def __init__(self, args, batch_size: int):
        self.args, self.device = args, torch.device(args.device)
        self.base = {"dataset": "voc", "image_size": args.image_size, "batch_size": batch_size, "device": args.device,
                     "backbone": args.student, "teacher_backbone": args.teacher, "amp": True}
        if args.smoke:
            self.base.update(head_channels=16, aspp_rates=(1, 2))
        config = TrainConfig.from_dict({**self.base, "distill": "attnfd", "teacher_checkpoint": None,
                                        "cache_dir": args.cache_dir})
        size = (args.image_size, args.image_size)
        self.images = torch.randn(batch_size, 3, *size, device=self.device)
        self.labels = torch.randint(0, config.num_classes, (batch_size, *size), device=self.device)
        if self.device.type == "cuda":
            self.images = self.images.contiguous(memory_format=torch.channels_last)
        self.teacher = build_model(teacher_config(config)).to(self.device).eval().requires_grad_(False)
        if self.device.type == "cuda":
            self.teacher.to(memory_format=torch.channels_last)
        self.amp = self.device.type == "cuda"

    def student(self, method: str | None) -> Student:
        config = TrainConfig.from_dict({**self.base, "distill": method, "cache_dir": self.args.cache_dir})
        stream = RandomStream(0, "student", self.device, exact=True)
        with stream:
            model = build_model(config).to(self.device)
        if config.distilling and names_stage_taps(config):
            self.teacher.require_stage_taps()
        return Student(config, model, stream, self.teacher if method else None, self.device, 1000)

    def teacher_outputs(self):
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=self.amp):
            return self.teacher(self.images)

    def step(self, student: Student, outputs=None) -> None:
        with student.stream:
            student.train_step(self.images, self.labels, 1, 0, outputs)


def _peak(device: torch.device, fn) -> float | None:
    """The allocator's peak during ``fn`` (GiB), None on the CPU."""
    if device.type != "cuda":
        fn()
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    return torch.cuda.max_memory_allocated(device) / 2**30


def per_method(args) -> None:
    setup = Setup(args, args.batch_size)
    plain = setup.student(None)
    plain_s = _timed(lambda: setup.step(plain), setup.device, args.steps)
    teacher_s = _timed(setup.teacher_outputs, setup.device, args.steps)
    plain = None
    print(f"batch {args.batch_size} x {args.image_size}^2, {args.student} student, {args.teacher} teacher, "
          f"AMP {'on' if setup.amp else 'off'}; medians of {args.steps} steps")
    print(f"  plain student step {plain_s * 1000:8.1f} ms   teacher inference {teacher_s * 1000:8.1f} ms")
    print(f"  {'method':10s} {'step ms':>9s} {'x plain':>8s} {'peak GiB':>9s}")
    for method in args.methods:
        student = setup.student(method)
        outputs = setup.teacher_outputs()
        peak = _peak(setup.device, lambda s=student, o=outputs: setup.step(s, o))
        step = _timed(lambda s=student: setup.step(s, setup.teacher_outputs()), setup.device, args.steps)
        print(f"  {method:10s} {step * 1000:9.1f} {step / plain_s:8.2f} {peak if peak is not None else float('nan'):9.2f}")
        student = outputs = None  # freed before the next method's peak is measured


def fits_24gb(args) -> None:
    setup = Setup(args, args.fit_batch)
    print(f"fits a 24 GB card at batch {args.fit_batch} (peak of one distillation step):")
    for method in args.methods:
        student = setup.student(method)
        try:
            peak = _peak(setup.device, lambda s=student: setup.step(s, setup.teacher_outputs()))
        except torch.OutOfMemoryError:
            peak = float("inf")
        verdict = "n/a on the CPU" if peak is None else "yes" if peak * 2**30 <= CARD_24GB else "no"
        print(f"  {method:10s} {verdict}" + (f" ({peak:.1f} GiB)" if peak is not None else ""))
        student = None


def cohort_throughput(args, k: int) -> float:
    """Images per second over K AttnFD students on one teacher forward per batch."""
    setup = Setup(args, args.batch_size)
    students = [setup.student("attnfd") for _ in range(k)]

    def step():
        outputs = setup.teacher_outputs()
        for student in students:
            setup.step(student, outputs)

    return k * args.batch_size / _timed(step, setup.device, args.steps)


def separate_throughput(args, k: int) -> float:
    """Images per second over K processes, each one AttnFD student with its own teacher, started together."""
    command = [sys.executable, __file__, "--worker", *sys.argv[1:]]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    reports = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
    if any(w.returncode for w in workers):
        raise SystemExit("a worker process failed")
    # they overlap only between the latest start and the earliest end of their timed steps
    start, end = max(r["start"] for r in reports), min(r["end"] for r in reports)
    images = sum(r["images_per_s"] * (end - start) for r in reports)
    return images / (end - start) if end > start else sum(r["images_per_s"] for r in reports)


def worker(args) -> None:
    setup = Setup(args, args.batch_size)
    student = setup.student("attnfd")
    for _ in range(2):
        setup.step(student, setup.teacher_outputs())
    _sync(setup.device)
    start = time.time()
    steps = max(args.steps, 3)
    for _ in range(steps):
        setup.step(student, setup.teacher_outputs())
    _sync(setup.device)
    end = time.time()
    print(json.dumps({"start": start, "end": end, "images_per_s": steps * args.batch_size / (end - start)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="every part on the CPU at a tiny size")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--teacher", default="resnet101")
    parser.add_argument("--methods", default=",".join(declared_methods()))
    parser.add_argument("--cohorts", default="1,2,4,8")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    args.cohorts = [int(k) for k in args.cohorts.split(",") if k]
    if args.smoke:
        args.device, args.image_size, args.batch_size, args.fit_batch = "cpu", 32, 2, 2
        args.steps, args.teacher = 1, "resnet18"
        args.cohorts = [k for k in args.cohorts if k <= 2]
    elif not torch.cuda.is_available():
        print("no CUDA device here: bench/gpu_step.py measures GPU steps only (--smoke runs its code on the CPU)")
        return
    else:
        args.device, args.image_size, args.batch_size, args.fit_batch = "cuda", 513, 6, 8
        torch.backends.cudnn.benchmark = True
    torch.set_flush_denormal(True)
    if args.worker:
        return worker(args)
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    per_method(args)
    fits_24gb(args)
    print(f"cohorts against separate processes sharing the device (AttnFD students, batch {args.batch_size}):")
    print(f"  {'K':>2s} {'cohort img/s':>13s} {'separate img/s':>15s} {'ratio':>6s}")
    for k in args.cohorts:
        together, apart = cohort_throughput(args, k), separate_throughput(args, k)
        print(f"  {k:2d} {together:13.1f} {apart:15.1f} {together / apart:6.2f}")


if __name__ == "__main__":
    main()
