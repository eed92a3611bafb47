"""``fit(config, report)``: teacher training, plain student training and distillation.

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

What a seed fixes: the student's initialisation, the order of its batches and every random
draw of its training (dropout, augmentation) come from the global generators seeded with
``config.seed``; the teacher and the distillers draw from a stream of their own
(``attnfd.random_stream``). So two runs with the same seed and different methods (or none)
start from the same student and see the same batches, and their results pair by seed.
``config.threads`` (torch's intra-op threads, for the run's duration) is part of what repeats:
the CPU kernels split their sums by thread, so other thread counts give other last bits,
which training grows into a different result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import tempfile
import time
import warnings
from collections.abc import Callable
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
from attnfd.metrics import IGNORE_INDEX, ConfusionMatrix
from attnfd.models import STAGE_TAPS, build_model
from attnfd.progress import ProgressLog
from attnfd.random_stream import RandomStream
from attnfd.schedules import alpha_at, lr_factor
from attnfd.teachers import load_model, prepare_teacher

Report = Callable[[dict, str], None]
# what a state.pt holds beyond a model.pt's weights and config
RESUME_KEYS = ("model", "distillers", "optimizer", "scheduler", "scaler", "epoch", "history", "rng")


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


def _names_stage_taps(config: TrainConfig) -> bool:
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
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device, amp: bool = False) -> dict:
    model.eval()
    matrix = ConfusionMatrix(num_classes)
    for images, labels in tqdm(loader, desc="eval", leave=False, disable=None):
        images = images.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits, _ = model(images)
        matrix.update(labels, logits.argmax(1))
    return matrix.compute()


class Run:
    """The state of one training run, built from a resolved config."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.device = resolve_device(config.device)
        self.amp = config.amp and self.device.type == "cuda"
        # the teacher first: training it reseeds, and a run must not depend on whether
        # its teacher was cached or trained just now
        check_data(config)
        teacher_file = prepare_teacher(config) if config.distilling else None
        ckpt.seed_everything(config.seed)
        self.train_set = build_dataset(config, "train")
        self.val_set = build_dataset(config, "val")
        if len(self.train_set) < config.batch_size:
            raise ConfigError(f"the train split has {len(self.train_set)} images, fewer than batch_size {config.batch_size}")
        self.train_loader = _loader(self.train_set, config, self.device, train=True)
        self.val_loader = _loader(self.val_set, config, self.device, train=False)
        self.model = build_model(config).to(self.device)
        self.teacher = None
        self.distillers = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        # the teacher's and the distillers' draws, at build time and in every step, leave the student's alone
        self.side_stream = RandomStream(config.seed, "teacher and distillers", self.device)
        if teacher_file is not None:
            with self.side_stream:
                self.teacher, _ = load_model(teacher_file, self.device)
                self.teacher.eval().requires_grad_(False)
                if _names_stage_taps(config):
                    # any method's tap option may name a backbone stage; both sides then emit them
                    self.model.require_stage_taps()
                    self.teacher.require_stage_taps()
                for name, (distiller, weight) in build_distillers(config.distill, self.model, self.teacher,
                                                                  config).items():
                    self.distillers[name] = distiller.to(self.device)
                    self.weights[name] = weight
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
            if self.teacher is not None:
                self.teacher.to(memory_format=torch.channels_last)
        # connectors trained alone in epoch 0 and frozen after (connector_schedule=first_epoch)
        self.connectors = connector_parameters(self.distillers) if config.connector_schedule == "first_epoch" else []
        self.optimizer = _optimizer(config, self.model, self.distillers, exclude={id(p) for p in self.connectors})
        self.first_epoch_optimizer = None
        if self.connectors:
            self.first_epoch_optimizer = torch.optim.SGD(
                self.connectors, lr=config.base_lr, momentum=config.momentum, nesterov=config.nesterov,
                weight_decay=config.weight_decay)
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(config.lr_schedule, step / self.total_steps)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch = 0
        self.history: list[dict] = []

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "distillers": self.distillers.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "rng": ckpt.rng_state(),
            "side_rng": self.side_stream.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.distillers.load_state_dict(state["distillers"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = state["epoch"]
        self.history = list(state["history"])
        ckpt.set_rng_state(state["rng"])
        if "side_rng" in state:  # a checkpoint written before the stream existed starts it afresh
            self.side_stream.load_state_dict(state["side_rng"])

    def _step(self, images: torch.Tensor, labels: torch.Tensor, progress: float) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, enabled=self.amp):
            logits, taps = self.model(images)
            parts = {"ce": segmentation_loss(logits, labels, self.config.ce_batch_average)}
            loss = parts["ce"]
            if self.teacher is not None:
                with self.side_stream:
                    loss = self._distill(images, labels, logits, taps, loss, parts, progress)
        parts["loss"] = loss
        return parts

    def _distill(self, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor, taps: dict,
                 loss: torch.Tensor, parts: dict, progress: float) -> torch.Tensor:
        """The teacher's forward and the distillers' parts, added to ``loss`` (each part into ``parts``)."""
        with torch.inference_mode():
            t_logits, t_taps = self.teacher(images)
            targets = {n: d.teacher_targets(t_logits, t_taps) for n, d in self.distillers.items()}
        # inference tensors cannot be saved for backward; a clone outside
        # inference mode is an ordinary tensor that still carries no graph
        targets = {n: {k: v.clone() for k, v in t.items()} for n, t in targets.items()}
        alpha = alpha_at(self.config.alpha, self.config.alpha_schedule, progress, self.config.alpha_decay_start)
        # a method may reweight CE and its own parts over training (AICSD's ALW)
        loss = math.prod(d.ce_weight(progress) for d in self.distillers.values()) * loss
        for name, distiller in self.distillers.items():
            part_weights = distiller.loss_weights(progress)
            for part, value in distiller(logits, taps, targets[name], labels).items():
                parts[part] = value
                loss = loss + alpha * self.weights[name] * part_weights.get(part, 1.0) * value
        return loss

    def _epoch_optimizer(self) -> torch.optim.Optimizer | None:
        """The optimiser of this epoch: the student's, or under connector_schedule=first_epoch
        the connectors' alone in epoch 0 (None when the methods have no connectors: the
        student is not updated in epoch 0 either way)."""
        if self.config.connector_schedule != "first_epoch" or not self.config.distilling:
            return self.optimizer
        if self.epoch == 0:
            return self.first_epoch_optimizer
        for p in self.connectors:
            p.requires_grad_(False)
        return self.optimizer

    def train_epoch(self, log: ProgressLog | None = None, first_epoch: int = 0) -> dict:
        """One pass over the training split; ``log`` hears of every step, counted from
        ``first_epoch`` (where this process started), for its early estimate."""
        self.model.train()
        if self.teacher is not None:
            self.teacher.train(self.config.teacher_mode == "train")
        self.distillers.train()
        optimizer = self._epoch_optimizer()
        self.train_loader.sampler.set_epoch(self.epoch)
        sums: dict[str, float] = {}
        bar = tqdm(self.train_loader, desc=f"epoch {self.epoch + 1}/{self.config.epochs}", leave=False, disable=None)
        for step, (images, labels) in enumerate(bar):
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            progress = (self.epoch * self.steps_per_epoch + step) / self.total_steps
            parts = self._step(images, labels, progress)
            loss = parts["loss"]
            value = loss.item()
            if not math.isfinite(value):
                detail = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
                raise NonFiniteLossError(f"loss is {value} at epoch {self.epoch + 1}, step {step + 1} ({detail})")
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
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            bar.set_postfix(loss=f"{value:.3f}")
            if log is not None:
                done = (self.epoch - first_epoch) * self.steps_per_epoch + step + 1
                log.step(done, (self.config.epochs - first_epoch) * self.steps_per_epoch)
        row = {f"loss_{k}" if k != "loss" else "loss": v / self.steps_per_epoch for k, v in sums.items()}
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        if self.teacher is not None:
            end = (self.epoch + 1) / self.config.epochs
            row["alpha"] = alpha_at(self.config.alpha, self.config.alpha_schedule, end, self.config.alpha_decay_start)
        return row


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


def fit(config: TrainConfig | dict, report: Report | None = None, progress: ProgressLog | None = None) -> dict:
    """Train as the config says; returns the last epoch's metrics.

    ``report(metrics, checkpoint_dir)`` is called after every epoch with the folder that
    holds the run's full state at that point; ``progress`` (if given) prints an early
    estimate and one line per epoch. The run uses ``config.threads`` torch threads.
    """
    config = _resolve(config)
    with torch_threads(config.threads):
        return _fit(config, report, progress)


def _fit(config: TrainConfig, report: Report | None, progress: ProgressLog | None) -> dict:
    # weight decay drives the zero-initialised residual scales of a from-scratch ResNet into
    # denormal floats, which the CPU computes several times slower (measured: a ResNet-101
    # teacher's steps slowed 5x within its first epoch); flushing them to zero changes no result
    # that matters and keeps every step at full speed
    torch.set_flush_denormal(True)
    # read before anything is built or trained, so a damaged checkpoint fails in seconds
    resume_state = ckpt.load(config.resume, needs=RESUME_KEYS) if config.resume else None
    out_dir = Path(config.out_dir) if config.out_dir else Path(tempfile.mkdtemp(prefix="attnfd-"))
    run = Run(dataclasses.replace(config, out_dir=str(out_dir)))
    if resume_state is not None:
        try:
            run.load_state_dict(resume_state)
        except (RuntimeError, ValueError, KeyError) as err:
            raise ckpt.CheckpointError(f"{config.resume} does not fit this run's config (was it written by another "
                                       f"architecture or method?): {ckpt.first_line(err)}") from None
    checkpoint_dir = out_dir / "checkpoint"
    # the trained model's size, for tables that list it next to the score (Table 1)
    params_m = sum(p.numel() for p in run.model.parameters()) / 1e6
    first_epoch = run.epoch
    if progress is not None:
        progress.begin()
    while run.epoch < config.epochs:
        start = time.perf_counter()
        row = {"epoch": run.epoch + 1, **run.train_epoch(progress, first_epoch)}
        run.epoch += 1
        if run.epoch % config.eval_every == 0 or run.epoch == config.epochs:
            row.update(evaluate(run.model, run.val_loader, config.num_classes, run.device, run.amp))
        row["seconds"] = time.perf_counter() - start
        row["params_m"] = params_m
        run.history.append(row)
        ckpt.atomic_save(run.state_dict(), checkpoint_dir / ckpt.STATE_FILE)
        if progress is not None:
            progress.epoch(row, config.epochs)
        if report is not None:
            report(row, str(checkpoint_dir))
    final = {"config": config.to_dict(), "model": run.model.state_dict(), "history": run.history}
    ckpt.atomic_save(final, out_dir / ckpt.MODEL_FILE)
    return run.history[-1] if run.history else {}
