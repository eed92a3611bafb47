"""A grid's cells packed into cohorts: the cells of one seed that may share batches and a
teacher (``attnfd.trainer.cohort_problem``) train as one Tune trial, one data pipeline and one
teacher forward for all of them (``--cohort``).

``--cohort 1`` is one trial per cell. ``K`` packs up to K cells per trial. ``auto`` measures,
in a Ray task with a trial's resources, what one training step of each kind of student
holds (CUDA: the allocator's peak; CPU: weights, gradients and momentum, plus the tensors
autograd saves for the backward pass) and takes, what the shared part takes (a batch of data
and the teacher's forward; each timed after a warm-up, the fastest of three), and what memory a trial has (its share of the GPU's memory, or of
the node's free memory). Of the sizes whose cohorts fit in 80% of that memory it takes the
one with the shortest estimated wall time: the cohorts of every seed, placed longest first
on the cluster's trial slots (a cohort is one process, so one big cohort leaves the other
slots idle, and many small ones repeat the shared part and a trial's start-up).

Each cohort trial's cells keep their own rows (``results/epochs/<trial>-<i>.parquet``,
``cohort`` naming the trial), so tables, the analysis and resume see cells as before.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from dataclasses import dataclass

from attnfd.config import ConfigError, TrainConfig
from attnfd.study.trainable import CELL, COHORT, trial_values

AUTO = "auto"
# the share of a trial's memory a cohort may plan to fill (activations vary a little by batch)
FILL = 0.8
# a trial's own start-up (a worker process, models built, Ray's bookkeeping): 4.7 s per trial
# in bench/cohort.py (the rest, 45 s per slot for 4 trials against 31 s for one)
TRIAL_START_SECONDS = 5.0
# sizes whose estimated wall times are this close count as equal: the fewer trials win
TIE = 0.02


@dataclass(frozen=True)
class StepProbe:
    """One training step, measured where a trial runs (bytes, seconds)."""

    student_bytes: list[int]
    teacher_bytes: int
    memory: int
    student_seconds: list[float]
    # a batch of training data, and the teacher's forward on it (0 without a teacher)
    data_seconds: float
    teacher_seconds: float
    steps: int


def parse_cohort(text: str) -> int | str:
    """``auto`` or a positive number of cells per trial."""
    if text == AUTO:
        return AUTO
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise ConfigError(f"--cohort must be auto or a number of cells >= 1, got {text!r}")
    return size


def cell_configs(base: dict, cells: list[dict], seed: int) -> list[TrainConfig]:
    return [TrainConfig.from_dict(trial_values({**base, CELL: cell, "seed": seed})) for cell in cells]


def groups(base: dict, cells: list[dict], seed: int) -> list[list[int]]:
    """The cells (by index) that may share a cohort: equal in what the batches are, and in
    their teacher; a student alone joins the first group of its batches."""
    from attnfd.trainer import shared_values, teacher_identity

    keyed: dict[tuple, list[int]] = {}
    alone: dict[str, list[int]] = {}
    for index, config in enumerate(cell_configs(base, cells, seed)):
        batches = json.dumps(shared_values(config), sort_keys=True, default=str)
        teacher = teacher_identity(config)
        if teacher is None:
            alone.setdefault(batches, []).append(index)
        else:
            keyed.setdefault((batches, teacher), []).append(index)
    for batches, indices in alone.items():
        home = next((key for key in keyed if key[0] == batches), (batches, None))
        keyed[home] = sorted(keyed.get(home, []) + indices)
    return list(keyed.values())


def chunks(indices: list[int], size: int) -> list[list[int]]:
    """``indices`` in order, cut into as few cohorts of at most ``size`` as can be, of near-equal size."""
    count = math.ceil(len(indices) / size)
    cut = [round(i * len(indices) / count) for i in range(count + 1)]
    return [indices[cut[i]:cut[i + 1]] for i in range(count)]


def pack(base: dict, cells: list[dict], seeds: list[int], size: int) -> list[list[dict]]:
    """The cohorts of a grid, as lists of cells; the same for every seed (cells do not set seeds)."""
    return [[cells[i] for i in chunk] for group in groups(base, cells, seeds[0]) for chunk in chunks(group, size)]


def cohort_configs(spec, cohorts: list[list[dict]]) -> list[dict]:
    """The Tune configs of a grid run as cohorts: each cohort at each seed."""
    return [{**spec.trial_base, COHORT: cohort, "seed": seed} for cohort in cohorts for seed in spec.seeds]


def probe_step(values: list[dict]) -> StepProbe:
    """Runs where a trial runs: what one training step of each config holds and takes, what
    the shared part takes, and the memory a trial has. Random weights and batches: a trained
    model holds and takes the same."""
    import torch

    from attnfd.config import teacher_config
    from attnfd.data import build_dataset
    from attnfd.models import build_model
    from attnfd.random_stream import RandomStream
    from attnfd.trainer import Student, names_stage_taps, resolve_device

    configs = [TrainConfig.from_dict(v) for v in values]
    first = configs[0]
    device = resolve_device(first.device)
    train = build_dataset(first, "train")
    data_seconds = _fastest(lambda: [train[i] for i in range(min(first.batch_size, len(train)))], device)
    size = first.image_size if isinstance(first.image_size, tuple) else (first.image_size,) * 2
    images = torch.randn(first.batch_size, 3, *size, device=device)
    labels = torch.randint(0, first.num_classes, (first.batch_size, *size), device=device)
    distilling = [c for c in configs if c.distilling]
    teacher = build_model(teacher_config(distilling[0])).to(device).eval() if distilling else None
    teacher_bytes = _tensor_bytes(teacher.state_dict().values()) if teacher is not None else 0
    if distilling and any(names_stage_taps(c) for c in distilling):
        teacher.require_stage_taps()
    teacher_seconds, outputs = 0.0, None
    if teacher is not None:
        with torch.inference_mode():
            outputs = teacher(images)
            teacher_seconds = _fastest(lambda: teacher(images), device)
    per_student, seconds = [], []
    for config in configs:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        model = build_model(config).to(device)
        student = Student(config, model, RandomStream(config.seed, "student", device, exact=True),
                          teacher if config.distilling else None, device, 1)
        saved = [0]

        def count(tensor, saved=saved):
            saved[0] += tensor.numel() * tensor.element_size()
            return tensor

        targets = outputs if config.distilling else None
        with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
            student.train_step(images, labels, 0, 0, targets)
        seconds.append(_fastest(functools.partial(student.train_step, images, labels, 0, 1, targets), device))
        if device.type == "cuda":
            per_student.append(int(torch.cuda.max_memory_allocated(device) - before))
        else:
            weights = _tensor_bytes([*model.state_dict().values(), *student.distillers.state_dict().values()])
            # weights, their gradients and SGD's momentum, and what the backward pass reads
            per_student.append(3 * weights + saved[0])
        del student, model
    steps = first.epochs * max(1, len(train) // first.batch_size)
    return StepProbe(per_student, teacher_bytes, _trial_memory(device), seconds, data_seconds, teacher_seconds, steps)


def _fastest(work, device, repeats: int = 3) -> float:
    """The shortest of a few timings: other load on the machine only ever adds time."""
    times = []
    for _ in range(repeats):
        started = _synchronized(device)
        work()
        times.append(_synchronized(device) - started)
    return min(times)


def _synchronized(device) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _trial_memory(device) -> int:
    import psutil
    import ray
    import torch

    if device.type == "cuda":
        gpus = ray.get_runtime_context().get_assigned_resources().get("GPU", 1.0)
        return int(torch.cuda.get_device_properties(device).total_memory * min(gpus, 1.0))
    return int(psutil.virtual_memory().available)


def measure_in_a_trial(spec, values: list[dict]) -> StepProbe:
    """``probe_step`` run as a Ray task with a trial's resources, where trials run."""
    import ray

    task = ray.remote(probe_step).options(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial)
    return ray.get(task.remote(values))


def makespan(costs: list[float], slots: int) -> float:
    """The wall time of trials of these durations on ``slots`` slots, each started on the
    slot that frees first, longest first."""
    loads = [0.0] * max(1, slots)
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)


def estimated_seconds(probe: StepProbe, distilling: list[bool], cohorts: list[list[int]], seeds: int,
                      slots: int) -> float:
    """The estimated wall time of these cohorts (cell indices into ``probe``) at every seed."""
    costs = []
    for cohort in cohorts:
        step = probe.data_seconds + sum(probe.student_seconds[i] for i in cohort)
        if any(distilling[i] for i in cohort):
            step += probe.teacher_seconds
        costs += [TRIAL_START_SECONDS + probe.steps * step] * seeds
    return makespan(costs, slots)


def auto_size(spec, cells: list[dict], measure=measure_in_a_trial) -> int:
    """The cells per cohort for ``--cohort auto`` (see the module's docstring)."""
    keys = [json.dumps(c, sort_keys=True, default=str) for c in cells]
    distinct = list(dict(zip(keys, cells)).values())
    position = {key: i for i, key in enumerate(dict(zip(keys, cells)))}
    values = [trial_values({**spec.trial_base, CELL: c, "seed": spec.seeds[0]}) for c in distinct]
    probe = measure(spec, values)
    # the probe measured each distinct cell once; index its figures by cell
    probe = dataclasses.replace(probe, student_bytes=[probe.student_bytes[position[k]] for k in keys],
                                student_seconds=[probe.student_seconds[position[k]] for k in keys])
    distilling = [config.distilling for config in cell_configs(spec.trial_base, cells, spec.seeds[0])]
    slots = _slots(spec)
    memory = probe.memory // slots if spec.gpus_per_trial == 0 else probe.memory  # a node's trials share its memory
    fits = max(1, int((memory * FILL - probe.teacher_bytes) // max(probe.student_bytes)))
    grouped = groups(spec.trial_base, cells, spec.seeds[0])
    largest = max(len(g) for g in grouped)
    estimates, packings = {}, set()
    for size in range(1, max(1, min(fits, largest)) + 1):
        cohorts = [chunk for group in grouped for chunk in chunks(group, size)]
        if str(cohorts) in packings:
            continue  # a larger size that packs the same cohorts as a smaller one
        packings.add(str(cohorts))
        estimates[size] = (estimated_seconds(probe, distilling, cohorts, len(spec.seeds), slots), len(cohorts))
    best = min(seconds for seconds, _ in estimates.values())
    # among the near-fastest, the fewest trials
    size = min((trials, size) for size, (seconds, trials) in estimates.items() if seconds <= best * (1 + TIE))[1]
    shown = ", ".join(f"{k}: {v[0] / 60:.1f} min" for k, v in estimates.items())
    print(f"cohorts: one step of a student holds up to {max(probe.student_bytes) / 2**20:.0f} MB and the teacher "
          f"{probe.teacher_bytes / 2**20:.0f} MB; a trial has {memory / 2**30:.1f} GB, so {fits} fit; {slots} trial "
          f"slots; estimated wall time by cells per cohort: {shown} -> {size} cells per cohort", flush=True)
    return size


def _slots(spec) -> int:
    """How many trials the cluster runs at once."""
    import ray

    resources = ray.cluster_resources()
    if spec.gpus_per_trial > 0:
        slots = resources.get("GPU", 0) / spec.gpus_per_trial
    else:
        slots = resources.get("CPU", 1) / spec.cpus_per_trial
    if spec.max_concurrent:
        slots = min(slots, spec.max_concurrent)
    return max(1, int(slots))
