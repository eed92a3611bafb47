"""A grid's cells packed into cohorts: the cells of one seed that may share batches and a
teacher (``attnfd.trainer.cohort_problem``) train as one Tune trial, one data pipeline and one
teacher forward for all of them (``--cohort``).

``--cohort 1`` is one trial per cell. ``K`` packs up to K cells per trial. ``auto`` measures,
in a Ray task with a trial's resources, what one training step of each kind of student
holds (CUDA: the allocator's peak; CPU: weights, gradients and momentum, plus the tensors
autograd saves for the backward pass) and what a trial has (its share of the GPU's memory, or
of the node's free memory); it packs as many cells as fit in 80% of that, and no more than
leave every trial slot of the cluster a cohort of its own: a cohort is one process, so
packing everything into one trial would leave the other slots idle.

Each cohort trial's cells keep their own rows (``results/epochs/<trial>-<i>.parquet``,
``cohort`` naming the trial), so tables, the analysis and resume see cells as before.
"""

from __future__ import annotations

import json
import math

from attnfd.config import ConfigError, TrainConfig
from attnfd.study.trainable import CELL, COHORT, trial_values

AUTO = "auto"
# the share of a trial's memory a cohort may plan to fill (activations vary a little by batch)
FILL = 0.8


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


def step_bytes(values: list[dict]) -> tuple[list[int], int, int]:
    """Runs where a trial runs: what one training step of each config holds, what the shared
    teacher holds, and the memory a trial has (bytes). Random weights and batches: a trained
    model holds the same."""
    import torch

    from attnfd.config import teacher_config
    from attnfd.models import build_model
    from attnfd.random_stream import RandomStream
    from attnfd.trainer import Student, names_stage_taps, resolve_device

    configs = [TrainConfig.from_dict(v) for v in values]
    device = resolve_device(configs[0].device)
    size = configs[0].image_size if isinstance(configs[0].image_size, tuple) else (configs[0].image_size,) * 2
    images = torch.randn(configs[0].batch_size, 3, *size, device=device)
    labels = torch.randint(0, configs[0].num_classes, (configs[0].batch_size, *size), device=device)
    distilling = [c for c in configs if c.distilling]
    teacher = build_model(teacher_config(distilling[0])).to(device).eval() if distilling else None
    teacher_bytes = _tensor_bytes(teacher.state_dict().values()) if teacher is not None else 0
    per_student = []
    for config in configs:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        model = build_model(config).to(device)
        if config.distilling and names_stage_taps(config):
            teacher.require_stage_taps()
        student = Student(config, model, RandomStream(config.seed, "student", device, exact=True),
                          teacher if config.distilling else None, device, 1)
        with torch.inference_mode():
            outputs = teacher(images) if config.distilling else None
        saved = [0]

        def count(tensor, saved=saved):
            saved[0] += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
            student.train_step(images, labels, 0, 0, outputs)
        if device.type == "cuda":
            per_student.append(int(torch.cuda.max_memory_allocated(device) - before))
        else:
            weights = _tensor_bytes([*model.state_dict().values(), *student.distillers.state_dict().values()])
            # weights, their gradients and SGD's momentum, and what the backward pass reads
            per_student.append(3 * weights + saved[0])
        del student, model
    return per_student, teacher_bytes, _trial_memory(device)


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


def measure_in_a_trial(spec, values: list[dict]) -> tuple[list[int], int, int]:
    """``step_bytes`` run as a Ray task with a trial's resources, where trials run."""
    import ray

    task = ray.remote(step_bytes).options(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial)
    return ray.get(task.remote(values))


def auto_size(spec, cells: list[dict], measure=measure_in_a_trial) -> int:
    """The cells per cohort for ``--cohort auto`` (see the module's docstring)."""
    distinct = list({json.dumps(c, sort_keys=True, default=str): c for c in cells}.values())
    values = [trial_values({**spec.trial_base, CELL: c, "seed": spec.seeds[0]}) for c in distinct]
    per_student, teacher, memory = measure(spec, values)
    slots = _slots(spec)
    if spec.gpus_per_trial == 0:
        memory //= slots  # the trials of a node share its memory
    fits = max(1, int((memory * FILL - teacher) // max(per_student)))
    largest = max(len(g) for g in groups(spec.trial_base, cells, spec.seeds[0]))
    # every trial slot gets a cohort: the cohorts of one group, over the seeds, fill the slots
    spread = math.ceil(largest * len(spec.seeds) / slots)
    size = max(1, min(fits, largest, spread))
    print(f"cohorts: one step of a student holds up to {max(per_student) / 2**20:.0f} MB and the teacher "
          f"{teacher / 2**20:.0f} MB; a trial has {memory / 2**30:.1f} GB, so {fits} fit; {slots} trial slots "
          f"-> {size} cells per cohort", flush=True)
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
