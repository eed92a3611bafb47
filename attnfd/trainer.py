"""``fit(config, report)``: teacher training, plain student training and distillation;
``fit_cohort(configs, ...)``: several students on one data pipeline and one teacher forward.

The recipe follows the paper (section 4.2) and torchvision's segmentation reference: SGD
with momentum, weight decay, the head (ASPP, decoder, classifier, distiller modules) at 10x
the backbone's learning rate, a per-iteration cosine (or poly) schedule, cross-entropy with
255 ignored, and single-scale evaluation on the whole validation split.

The official AttnFD code's training choices are config fields read here (``recipe=official``
sets them all): ``ce_batch_average`` (CE divided once more by the batch size, as
``SegmentationLosses(batch_average=True)``), ``lr_batch_reference`` (``config.base_lr``),
``connector_schedule=first_epoch`` (epoch 0 optimises only the distillers' connectors, with
the backbone group's learning rate, as the official scheduler overwrites its single group;
from epoch 1 the connectors are frozen, their BN statistics still updating) and
``teacher_mode=train`` (the teacher's BN uses batch statistics and its dropout is active; its
forward stays without gradients, which changes no number).

After each epoch the run's whole state is written to ``<out_dir>/checkpoint`` and
``report(metrics, checkpoint_dir)`` is called; ``config.resume`` pointing at such a folder
continues the run as if it had never stopped.

A run is a cohort of one student. A cohort (``Cohort``) trains several students whose
configs agree on what the batches and the teacher are (``SHARED_FIELDS``, one teacher): each
batch is loaded once and the teacher runs once on it, then every student takes its own step.
Each student keeps its own model, distillers, optimiser, schedule, scaler and random streams,
so its numbers are those it gets alone (``tests/test_cohort.py`` checks them bit for bit); a
student whose loss diverges leaves the cohort and the others go on.

What a seed fixes, in whatever cohort: the student's initialisation and every random draw of
its training (dropout) come from its own stream, seeded with ``config.seed`` exactly as the
global generator used to be; the order of the batches and their augmentation come from the
data's stream, the teacher's draws (its init before loading, its dropout in train mode) from
the teacher's, and the distillers' (their modules, CIRKD's sampled pixels) from the
student's distiller stream (``attnfd.random_stream``). So two runs with the same seed and
different methods (or none) start from the same student and see the same batches, and their
results pair by seed. ``config.threads`` (torch's intra-op threads, for the run's duration)
is part of what repeats: the CPU kernels split their sums by thread, so other thread counts
give other last bits, which training grows into a different result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from attnfd import checkpoint as ckpt
from attnfd.config import ConfigError, TrainConfig
from attnfd.data import build_dataset, check_data
from attnfd.distill import build_distillers
from attnfd.distill.total import combine
from attnfd.metrics import IGNORE_INDEX, ConfusionMatrix
from attnfd.model_files import load_model, teacher_dir, teacher_file
from attnfd.models import STAGE_TAPS, build_model
from attnfd.progress import ProgressLog
from attnfd.random_stream import RandomStream
from attnfd.schedules import alpha_at, lr_factor

Report = Callable[[dict, str], None]
# a cohort's report: one row per student (None for a student that left the cohort earlier)
CohortReport = Callable[[list, str], None]
# what a state.pt holds beyond a model.pt's weights and config
RESUME_KEYS = ("model", "distillers", "optimizer", "scheduler", "scaler", "epoch", "history", "rng")
# the fields that say what the batches are and how the epochs go: the students of one cohort
# must agree on every one of them (and, when they distil, on their teacher)
SHARED_FIELDS = ("dataset", "data_root", "image_size", "train_size", "val_size", "data_seed", "voc_train_split",
                 "epochs", "batch_size", "seed", "workers", "eval_every", "device", "amp", "threads")
# a cohort's checkpoint folder: one run checkpoint per student, and who left the cohort
MEMBERS_FILE = "members.json"


class NonFiniteLossError(RuntimeError):
    pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name} asked for, but CUDA is not available")
    return torch.device(name)


class FreshScenesSampler(DistributedSampler):
    """For a generated data set with no size limit: epoch ``e`` draws scenes
    ``e * len(dataset) ...`` onwards, so no scene is seen twice and a small model cannot
    memorise the training set; ``set_epoch`` makes a resumed run draw the same scenes."""

    def __iter__(self):
        offset = self.epoch * len(self.dataset)
        return (offset + index for index in super().__iter__())


def _loader(dataset, config: TrainConfig, device: torch.device, train: bool) -> DataLoader:
    # DistributedSampler with one replica is a seeded, per-epoch shuffle (set_epoch) that a
    # resumed run replays exactly; several processes get disjoint shards from it as well
    unlimited = train and getattr(dataset, "unlimited", False)
    sampler_class = FreshScenesSampler if unlimited else DistributedSampler
    sampler = sampler_class(dataset, num_replicas=1, rank=0, shuffle=train, seed=config.seed, drop_last=False)
    return DataLoader(
        dataset,
        # evaluation is at original size: data sets whose images differ in size go one at a time
        batch_size=config.batch_size if train or not getattr(dataset, "variable_size", False) else 1,
        sampler=sampler,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.workers > 0,
        # BatchNorm cannot train on a last batch of one image
        drop_last=train,
    )


def _optimizer(config: TrainConfig, model: nn.Module, distillers: nn.ModuleDict,
               exclude: set[int] = frozenset()) -> torch.optim.Optimizer:
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    head = [p for p in model.head_parameters() if p.requires_grad]
    head += [p for p in distillers.parameters() if p.requires_grad and id(p) not in exclude]
    lr = config.base_lr
    groups = [{"params": backbone, "lr": lr}, {"params": head, "lr": lr * config.head_lr_mult}]
    return torch.optim.SGD(
        groups, lr=lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay
    )


def names_stage_taps(config: TrainConfig) -> bool:
    return any(t in config.layers or t in (config.distill_options or "") for t in STAGE_TAPS)


def connector_parameters(distillers: nn.ModuleDict) -> list[nn.Parameter]:
    """The distillers' connectors (``connectors`` of AttnFD, Overhaul, ...), what
    ``connector_schedule=first_epoch`` trains alone in epoch 0 and then freezes."""
    params = []
    for distiller in distillers.values():
        connectors = getattr(distiller, "connectors", None)
        if connectors is not None:
            params += [p for p in connectors.parameters() if p.requires_grad]
    return params


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, batch_average: bool = False) -> torch.Tensor:
    """Cross-entropy averaged over the labelled pixels; with ``batch_average`` divided once more
    by the batch size, as the official code's ``SegmentationLosses``."""
    ce = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
    return ce / logits.shape[0] if batch_average else ce


@torch.inference_mode()
def evaluate_models(models: list[nn.Module], batches, num_classes: int, device: torch.device,
                    amp: bool = False) -> list[dict]:
    """Each model's metrics on the same validation batches, read once for all of them."""
    for model in models:
        model.eval()
    matrices = [ConfusionMatrix(num_classes) for _ in models]
    for images, labels in tqdm(batches, desc="eval", leave=False, disable=None):
        images = images.to(device, non_blocking=True)
        for model, matrix in zip(models, matrices):
            with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
                logits, _ = model(images)
            matrix.update(labels, logits.argmax(1))
    return [matrix.compute() for matrix in matrices]


def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, amp: bool = False) -> dict:
    return evaluate_models([model], loader, num_classes, device, amp)[0]


def shared_values(config: TrainConfig) -> dict:
    """What a cohort's students must agree on: ``SHARED_FIELDS``."""
    return {name: getattr(config, name) for name in SHARED_FIELDS}


def teacher_identity(config: TrainConfig) -> tuple | None:
    """The teacher a student distils from (its file, or its content key, and its mode); None
    for a student alone, which may join a cohort of any teacher."""
    if not config.distilling:
        return None
    source = config.teacher_checkpoint or teacher_dir(config)[0].name
    return source, config.teacher_mode


def cohort_problem(configs: list[TrainConfig]) -> str | None:
    """Why these configs cannot train as one cohort (None if they can)."""
    if not configs:
        return "a cohort needs at least one config"
    first = shared_values(configs[0])
    for config in configs[1:]:
        differ = [name for name, value in shared_values(config).items() if first[name] != value]
        if differ:
            return f"its students differ in {', '.join(differ)}, which the batches depend on"
    teachers = {teacher_identity(c) for c in configs} - {None}
    if len(teachers) > 1:
        return "its students distil from different teachers"
    if any(c.role != "student" for c in configs) and len(configs) > 1:
        return "a teacher trains alone, not in a cohort"
    return None


class Student:
    """One student of a cohort: its model, distillers, optimiser, schedule, scaler, random
    streams and history. ``stream`` is its own generator state (its init was drawn in it);
    the cohort enters it around everything the student does."""

    def __init__(self, config: TrainConfig, model: nn.Module, stream: RandomStream, teacher: nn.Module | None,
                 device: torch.device, steps_per_epoch: int):
        self.config, self.model, self.stream, self.device = config, model, stream, device
        self.amp = config.amp and device.type == "cuda"
        self.distillers = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        # the distillers' draws, at build time and in every step, leave the student's alone
        self.distill_stream = RandomStream(config.seed, "distillers", device)
        if teacher is not None and config.distilling:
            with self.distill_stream:
                if names_stage_taps(config):
                    # any method's tap option may name a backbone stage; both sides then emit them
                    model.require_stage_taps()
                for name, (distiller, weight) in build_distillers(config, model, teacher).items():
                    self.distillers[name] = distiller.to(device)
                    self.weights[name] = weight
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        # connectors trained alone in epoch 0 and frozen after (connector_schedule=first_epoch)
        self.connectors = connector_parameters(self.distillers) if config.connector_schedule == "first_epoch" else []
        self.optimizer = _optimizer(config, model, self.distillers, exclude={id(p) for p in self.connectors})
        self.first_epoch_optimizer = None
        if self.connectors:
            self.first_epoch_optimizer = torch.optim.SGD(
                self.connectors, lr=config.base_lr, momentum=config.momentum, nesterov=config.nesterov,
                weight_decay=config.weight_decay)
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = config.epochs * steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(config.lr_schedule, step / self.total_steps)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.history: list[dict] = []
        # set when its loss diverged: it left the cohort then
        self.error: str | None = None
        self._sums: dict[str, float] = {}
        self.seconds = 0.0

    @property
    def active(self) -> bool:
        return self.error is None

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "distillers": self.distillers.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "student_rng": self.stream.state_dict(),
            "distill_rng": self.distill_stream.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.distillers.load_state_dict(state["distillers"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = list(state["history"])
        if "student_rng" in state:
            self.stream.load_state_dict(state["student_rng"])
        else:  # written before each student had a stream: the global generator was the student's
            self.stream.load_state_dict({"cpu": state["rng"]["torch"], "cuda": None})
        if "distill_rng" in state:
            self.distill_stream.load_state_dict(state["distill_rng"])

    def _step(self, images: torch.Tensor, labels: torch.Tensor, progress: float,
              teacher_outputs: tuple | None) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, enabled=self.amp):
            logits, taps = self.model(images)
            ce = segmentation_loss(logits, labels, self.config.ce_batch_average)
            loss, parts = ce, {"ce": ce}
            if self.distillers:
                with self.distill_stream:
                    loss, parts = self._distill(teacher_outputs, labels, logits, taps, ce, progress)
        parts["loss"] = loss
        return parts

    def _distill(self, teacher_outputs: tuple, labels: torch.Tensor, logits: torch.Tensor, taps: dict,
                 ce: torch.Tensor, progress: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The distillers' parts on the teacher's outputs, and the total loss with its parts."""
        t_logits, t_taps = teacher_outputs
        with torch.inference_mode():
            targets = {n: d.teacher_targets(t_logits, t_taps) for n, d in self.distillers.items()}
        # inference tensors cannot be saved for backward; a clone outside
        # inference mode is an ordinary tensor that still carries no graph
        targets = {n: {k: v.clone() for k, v in t.items()} for n, t in targets.items()}
        alpha = alpha_at(self.config.alpha, self.config.alpha_schedule, progress, self.config.alpha_decay_start)
        # in the distillers' order: CIRKD draws random numbers in its forward
        outputs = {n: d(logits, taps, targets[n], labels) for n, d in self.distillers.items()}
        return combine(ce, self.distillers, self.weights, outputs, alpha, progress)

    def epoch_optimizer(self, epoch: int) -> torch.optim.Optimizer | None:
        """The optimiser of this epoch: the student's, or under connector_schedule=first_epoch
        the connectors' alone in epoch 0 (None when the methods have no connectors: the
        student is not updated in epoch 0 either way)."""
        if self.config.connector_schedule != "first_epoch" or not self.config.distilling:
            return self.optimizer
        if epoch == 0:
            return self.first_epoch_optimizer
        for p in self.connectors:
            p.requires_grad_(False)
        return self.optimizer

    def begin_epoch(self) -> None:
        self.model.train()
        self.distillers.train()
        self._sums = {}
        self.seconds = 0.0

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, epoch: int, step: int,
                   teacher_outputs: tuple | None) -> float:
        """One optimisation step; returns the loss, or raises ``NonFiniteLossError``."""
        progress = (epoch * self.steps_per_epoch + step) / self.total_steps
        optimizer = self.epoch_optimizer(epoch)
        parts = self._step(images, labels, progress, teacher_outputs)
        loss = parts["loss"]
        value = loss.item()
        if not math.isfinite(value):
            detail = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
            raise NonFiniteLossError(f"loss is {value} at epoch {epoch + 1}, step {step + 1} ({detail})")
        self.optimizer.zero_grad(set_to_none=True)
        if optimizer is self.first_epoch_optimizer and optimizer is not None:
            # the official scheduler sets the connectors' single group to the base schedule
            optimizer.zero_grad(set_to_none=True)
            for group in optimizer.param_groups:
                group["lr"] = self.optimizer.param_groups[0]["lr"]
        self.scaler.scale(loss).backward()
        if optimizer is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        with warnings.catch_warnings():
            # in a connectors-only epoch 0 the student's optimiser does not step, yet its
            # schedule advances as the official one does
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            self.scheduler.step()
        for k, v in parts.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v.detach())
        return value

    def epoch_row(self, epoch: int) -> dict:
        """The training half of the epoch's row: mean loss parts, lr, alpha."""
        row = {f"loss_{k}" if k != "loss" else "loss": v / self.steps_per_epoch for k, v in self._sums.items()}
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        if self.config.distilling:
            end = (epoch + 1) / self.config.epochs
            row["alpha"] = alpha_at(self.config.alpha, self.config.alpha_schedule, end, self.config.alpha_decay_start)
        return row


class Cohort:
    """Students sharing one data pipeline and one teacher, built from resolved configs that
    agree on ``SHARED_FIELDS`` (``cohort_problem``). Each batch is read once (in the data's
    random stream) and the teacher runs once on it (in its own); then each student steps in
    its own streams, in order."""

    def __init__(self, configs: list[TrainConfig]):
        problem = cohort_problem(configs)
        if problem:
            raise ConfigError(f"these configs cannot share a cohort: {problem}")
        self.configs = list(configs)
        first = configs[0]
        self.config = first
        self.device = resolve_device(first.device)
        self.amp = first.amp and self.device.type == "cuda"
        # a missing data set or teacher fails here, before anything is built; the teacher is
        # trained beforehand, by whoever starts the run (attnfd.teachers.ensure_teacher)
        check_data(first)
        distilling = [c for c in configs if c.distilling]
        teacher_path = teacher_file(distilling[0]) if distilling else None
        ckpt.seed_everything(first.seed)
        self.train_set = build_dataset(first, "train")
        self.val_set = build_dataset(first, "val")
        if len(self.train_set) < first.batch_size:
            raise ConfigError(f"the train split has {len(self.train_set)} images, fewer than batch_size {first.batch_size}")
        self.train_loader = _loader(self.train_set, first, self.device, train=True)
        self.val_loader = _loader(self.val_set, first, self.device, train=False)
        # the batches' order and augmentation draw from a stream no student draws from
        self.data_stream = RandomStream(first.seed, "data", self.device)
        # each student's init is drawn first in its own stream, seeded as the global generator used to be
        models = []
        for config in configs:
            stream = RandomStream(config.seed, "student", self.device, exact=True)
            with stream:
                models.append((build_model(config).to(self.device), stream))
        self.teacher = None
        self.teacher_stream = RandomStream(first.seed, "teacher", self.device)
        if teacher_path is not None:
            with self.teacher_stream:
                self.teacher, _ = load_model(teacher_path, self.device)
                self.teacher.eval().requires_grad_(False)
                if any(names_stage_taps(c) for c in distilling):
                    self.teacher.require_stage_taps()
            if self.device.type == "cuda":
                self.teacher.to(memory_format=torch.channels_last)
        self.steps_per_epoch = len(self.train_loader)
        self._shared_seconds = 0.0
        self.students = [Student(config, model, stream, self.teacher, self.device, self.steps_per_epoch)
                         for config, (model, stream) in zip(configs, models)]
        self.epoch = 0

    @property
    def epochs(self) -> int:
        return self.config.epochs

    def active(self) -> list[Student]:
        return [s for s in self.students if s.active]

    def _batches(self, loader: DataLoader) -> Iterator:
        """The loader's batches, every draw of its making (the iterator's base seed, the
        augmentation without workers) in the data's stream."""
        with self.data_stream:
            batches = iter(loader)
        while True:
            with self.data_stream:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
            yield batch

    def teacher_outputs(self, images: torch.Tensor) -> tuple | None:
        """The teacher's logits and taps on a batch (None without a teacher), computed once for every student."""
        if self.teacher is None or not any(s.distillers for s in self.active()):
            return None
        with self.teacher_stream, torch.inference_mode(), torch.autocast(self.device.type, enabled=self.amp):
            return self.teacher(images)

    def train_epoch(self, log: ProgressLog | None = None, first_epoch: int = 0) -> list[dict | None]:
        """One pass over the training split for every active student; one row per student
        (None for one that had left before). A student whose loss diverges gets a row holding
        its ``error`` and leaves. ``log`` hears of every step, counted from ``first_epoch``
        (where this process started), for its early estimate."""
        start = time.perf_counter()
        students = self.active()
        if self.teacher is not None:
            # the students that distil agree on the teacher's mode (teacher_identity)
            self.teacher.train(any(s.config.teacher_mode == "train" for s in students if s.config.distilling))
        for student in students:
            student.begin_epoch()
        self.train_loader.sampler.set_epoch(self.epoch)
        failed: dict[int, str] = {}
        bar = tqdm(self._batches(self.train_loader), total=self.steps_per_epoch,
                   desc=f"epoch {self.epoch + 1}/{self.epochs}", leave=False, disable=None)
        for step, (images, labels) in enumerate(bar):
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            teacher_outputs = self.teacher_outputs(images)
            for student in self.active():
                began = time.perf_counter()
                try:
                    with student.stream:
                        value = student.train_step(images, labels, self.epoch, step, teacher_outputs)
                except NonFiniteLossError as err:
                    student.error = str(err)
                    failed[id(student)] = str(err)
                    continue
                finally:
                    student.seconds += time.perf_counter() - began
                if len(self.students) == 1:
                    bar.set_postfix(loss=f"{value:.3f}")
            if log is not None:
                done = (self.epoch - first_epoch) * self.steps_per_epoch + step + 1
                log.step(done, (self.epochs - first_epoch) * self.steps_per_epoch)
            if not self.active():
                break
        rows = []
        for student in self.students:
            if id(student) in failed:
                rows.append({"epoch": self.epoch + 1, "error": failed[id(student)]})
            elif student.active and student in students:
                rows.append({"epoch": self.epoch + 1, **student.epoch_row(self.epoch)})
            else:
                rows.append(None)
        self._shared_seconds = time.perf_counter() - start - sum(s.seconds for s in students)
        return rows

    def evaluate(self) -> list[dict]:
        """Every active student's val metrics, on validation batches read once."""
        students = self.active()
        began = time.perf_counter()
        metrics = evaluate_models([s.model for s in students], self._batches(self.val_loader),
                                  self.config.num_classes, self.device, self.amp)
        seconds = (time.perf_counter() - began) / max(1, len(students))
        for student in students:
            student.seconds += seconds
        return metrics

    def shared_state(self) -> dict:
        return {"epoch": self.epoch, "rng": ckpt.rng_state(), "data_rng": self.data_stream.state_dict(),
                "teacher_rng": self.teacher_stream.state_dict()}

    def load_shared_state(self, state: dict) -> None:
        self.epoch = state["epoch"]
        ckpt.set_rng_state(state["rng"])
        # a checkpoint written before these streams existed starts them afresh
        if "data_rng" in state:
            self.data_stream.load_state_dict(state["data_rng"])
        if "teacher_rng" in state:
            self.teacher_stream.load_state_dict(state["teacher_rng"])

    def run_epoch(self, log: ProgressLog | None = None, first_epoch: int = 0) -> list[dict | None]:
        """Train one epoch and, when due, evaluate; each student's complete row (None for one gone)."""
        students = self.active()
        rows = Cohort.train_epoch(self, log, first_epoch)
        self.epoch += 1
        evaluated = [s for s in self.active() if s in students]
        if evaluated and (self.epoch % self.config.eval_every == 0 or self.epoch == self.epochs):
            by_student = dict(zip(map(id, evaluated), self.evaluate()))
            for student, row in zip(self.students, rows):
                if id(student) in by_student:
                    row.update(by_student[id(student)])
        shared = self._shared_seconds / max(1, len(students))
        for student, row in zip(self.students, rows):
            if row is not None and "error" not in row:
                # its own steps and evaluation, and its share of the batches and the teacher
                row["seconds"] = student.seconds + shared
                row["shared_seconds"] = shared
                row["params_m"] = sum(p.numel() for p in student.model.parameters()) / 1e6
                student.history.append(row)
        return rows


class Run(Cohort):
    """One student's run: a cohort of one, with its student's parts at hand."""

    def __init__(self, config: TrainConfig):
        super().__init__([config])
        self.student = self.students[0]

    model = property(lambda self: self.student.model)
    distillers = property(lambda self: self.student.distillers)
    weights = property(lambda self: self.student.weights)
    optimizer = property(lambda self: self.student.optimizer)
    scheduler = property(lambda self: self.student.scheduler)
    history = property(lambda self: self.student.history)

    def _step(self, images: torch.Tensor, labels: torch.Tensor, progress: float) -> dict[str, torch.Tensor]:
        """The student's loss parts on a batch (its step without the update)."""
        teacher_outputs = self.teacher_outputs(images)
        with self.student.stream:
            return self.student._step(images, labels, progress, teacher_outputs)

    def train_epoch(self, log: ProgressLog | None = None, first_epoch: int = 0) -> dict:
        row = super().train_epoch(log, first_epoch)[0]
        if "error" in row:
            raise NonFiniteLossError(row["error"])
        return row

    def run_epoch(self, log: ProgressLog | None = None, first_epoch: int = 0) -> dict:
        row = super().run_epoch(log, first_epoch)[0]
        if row is None or "error" in row:
            raise NonFiniteLossError(self.student.error)
        return row

    def state_dict(self) -> dict:
        return student_checkpoint(self, self.student)

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state)
        self.load_shared_state(state)


def student_checkpoint(cohort: Cohort, student: Student) -> dict:
    """A student's whole state with the cohort's: a run checkpoint that ``fit`` resumes alone."""
    return {**student.state_dict(), **cohort.shared_state()}


def _resolve(config: TrainConfig | dict) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config.resolved()
    return TrainConfig.from_dict(config)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op threads set to ``threads`` (unchanged when None), restored afterwards."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cpu_speed() -> None:
    # weight decay drives the zero-initialised residual scales of a from-scratch ResNet into
    # denormal floats, which the CPU computes several times slower (measured: a ResNet-101
    # teacher's steps slowed 5x within its first epoch); flushing them to zero changes no result
    # that matters and keeps every step at full speed
    torch.set_flush_denormal(True)


def fit(config: TrainConfig | dict, report: Report | None = None, progress: ProgressLog | None = None) -> dict:
    """Train as the config says; returns the last epoch's metrics.

    ``report(metrics, checkpoint_dir)`` is called after every epoch with the folder that
    holds the run's full state at that point; ``progress`` (if given) prints an early
    estimate and one line per epoch. The run uses ``config.threads`` torch threads. A
    distillation run loads its teacher (``config.teacher_checkpoint`` or the cached one) and
    raises ConfigError if there is none: ``attnfd.teachers.ensure_teacher`` trains it.
    """
    config = _resolve(config)
    with torch_threads(config.threads):
        return _fit(config, report, progress)


def _resumed(config: TrainConfig, load) -> None:
    try:
        load()
    except (RuntimeError, ValueError, KeyError) as err:
        raise ckpt.CheckpointError(f"{config.resume} does not fit this run's config (was it written by another "
                                   f"architecture or method?): {ckpt.first_line(err)}") from None


def _fit(config: TrainConfig, report: Report | None, progress: ProgressLog | None) -> dict:
    _cpu_speed()
    # read before anything is built or trained, so a damaged checkpoint fails in seconds
    resume_state = ckpt.load(config.resume, needs=RESUME_KEYS) if config.resume else None
    out_dir = Path(config.out_dir) if config.out_dir else Path(tempfile.mkdtemp(prefix="attnfd-"))
    run = Run(dataclasses.replace(config, out_dir=str(out_dir)))
    if resume_state is not None:
        _resumed(config, lambda: run.load_state_dict(resume_state))
    checkpoint_dir = out_dir / "checkpoint"
    first_epoch = run.epoch
    if progress is not None:
        progress.begin()
    while run.epoch < config.epochs:
        row = run.run_epoch(progress, first_epoch)
        ckpt.atomic_save(run.state_dict(), checkpoint_dir / ckpt.STATE_FILE)
        if progress is not None:
            progress.epoch(row, config.epochs)
        if report is not None:
            report(row, str(checkpoint_dir))
    final = {"config": config.to_dict(), "model": run.model.state_dict(), "history": run.history}
    ckpt.atomic_save(final, out_dir / ckpt.MODEL_FILE)
    return run.history[-1] if run.history else {}


def member_folder(root: str | Path, index: int) -> Path:
    """Where student ``index`` of a cohort keeps its state (under the checkpoint folder) or its model.pt."""
    return Path(root) / f"member-{index}"


def fit_cohort(configs: list[TrainConfig | dict], out_dir: str | Path, report: CohortReport | None = None,
               resume: str | Path | None = None) -> list[dict]:
    """Train the configs as one cohort; returns each student's last row (its error row if it diverged).

    After every epoch ``<out_dir>/checkpoint`` holds ``member-<i>/state.pt`` for each student
    (a run checkpoint: ``fit`` with ``resume`` on it continues that student alone, to the same
    numbers) and ``members.json``, who has left; ``report(rows, checkpoint_dir)`` gets one row
    per student, None for a student that left at an earlier epoch. ``resume`` is such a
    checkpoint folder. Each student's model.pt goes to ``<out_dir>/member-<i>/``.
    """
    configs = [_resolve(c) for c in configs]
    out_dir = Path(out_dir)
    configs = [dataclasses.replace(c, out_dir=str(member_folder(out_dir, i)), resume=None)
               for i, c in enumerate(configs)]
    with torch_threads(configs[0].threads):
        _cpu_speed()
        states, errors = cohort_states(resume, len(configs)) if resume else (None, {})
        cohort = Cohort(configs)
        if states is not None:
            for index, (student, state) in enumerate(zip(cohort.students, states)):
                if state is not None:
                    _resumed(dataclasses.replace(configs[index], resume=str(resume)),
                             lambda student=student, state=state: student.load_state_dict(state))
                student.error = errors.get(index)
            # the shared streams and epoch: any student still training holds them
            written = [s for i, s in enumerate(states) if s is not None and i not in errors] or \
                [s for s in states if s is not None]
            if written:
                cohort.load_shared_state(written[0])
        checkpoint_dir = out_dir / "checkpoint"
        last: list[dict] = [({"epoch": cohort.epoch, "error": s.error} if s.error else {}) for s in cohort.students]
        while cohort.epoch < cohort.epochs and cohort.active():
            rows = cohort.run_epoch()
            for index, (student, row) in enumerate(zip(cohort.students, rows)):
                if row is not None:
                    last[index] = row
                if student.active:
                    ckpt.atomic_save(student_checkpoint(cohort, student),
                                     member_folder(checkpoint_dir, index) / ckpt.STATE_FILE)
            _write_members(checkpoint_dir, cohort)
            if report is not None:
                report(rows, str(checkpoint_dir))
        for index, student in enumerate(cohort.students):
            if student.active:
                ckpt.atomic_save({"config": student.config.to_dict(), "model": student.model.state_dict(),
                                  "history": student.history}, member_folder(out_dir, index) / ckpt.MODEL_FILE)
    return last


def _write_members(checkpoint_dir: Path, cohort: Cohort) -> None:
    members = [{"epoch": cohort.epoch if s.active else len(s.history), "error": s.error} for s in cohort.students]
    tmp = checkpoint_dir / (MEMBERS_FILE + ".tmp")
    tmp.write_text(json.dumps(members, indent=1))
    tmp.replace(checkpoint_dir / MEMBERS_FILE)


def cohort_states(folder: str | Path, count: int | None = None) -> tuple[list[dict | None], dict[int, str]]:
    """The students' states in a cohort checkpoint folder (None for one that left before writing
    any), and the students that had left, with their errors; ``count``: how many it must hold."""
    folder = Path(folder)
    members_file = folder / MEMBERS_FILE
    if not members_file.is_file():
        raise ckpt.CheckpointError(f"{folder} is not a cohort checkpoint: it has no {MEMBERS_FILE}")
    try:
        members = json.loads(members_file.read_text())
    except ValueError as err:
        raise ckpt.CheckpointError(f"{members_file} is damaged: {err}") from None
    if count is not None and len(members) != count:
        raise ckpt.CheckpointError(f"{folder} holds {len(members)} students, this cohort has {count}")
    errors = {i: m["error"] for i, m in enumerate(members) if m.get("error")}
    # a student that diverged in its first epoch never wrote a state
    states = [None if i in errors and not (member_folder(folder, i) / ckpt.STATE_FILE).is_file()
              else ckpt.load(member_folder(folder, i), needs=RESUME_KEYS) for i in range(len(members))]
    return states, errors
