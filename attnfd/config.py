"""The training config: plain values only, so a study can search any of them.

Fields left at ``None`` take the data set's recipe: the ``preset`` of its entry in
``attnfd.data.registry`` (the paper's for VOC and Cityscapes, a short CPU recipe for
``shapes``). ``TrainConfig.from_dict`` rejects unknown keys and bad values with one line that
names the field.

``recipe`` names a bundle of plain field values (``RECIPES``): ``paper`` (the default, no
change) or ``official``, the choices of the official AttnFD code (AmirMansurian/AttnFD). The
bundle fills the fields the caller did not give, in ``from_dict``, so any one choice can be
set back (``recipe=official, align_corners=False``) to ablate it; each choice is read where
it acts (the models, the trainer's loss and optimiser, the distiller, the data set).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# ConfigError is also read from here (``from attnfd.config import ConfigError``)
from attnfd.config_sections import TEACHER_SECTIONS, check_sections, section_fields, setting
from attnfd.errors import ConfigError
from attnfd.names import ALL_TAPS, BACKBONES, TAPS


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(config: Any) -> None:
    """Each field holds a value of its type (numbers finite), so that a value from a JSON
    file or ``--set`` fails here with its name rather than deep in training."""
    for f in fields(config):
        value, hint = getattr(config, f.name), str(f.type)
        if value is None and "None" in hint:
            continue
        if hint.startswith("bool"):
            ok, kind = isinstance(value, bool), "true or false"
        elif hint.startswith("int"):
            ok, kind = _is_int(value), "an integer"
        elif hint.startswith("float"):
            ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
            kind = "a finite number"
        elif hint.startswith("str"):
            ok, kind = isinstance(value, str), "text"
        else:
            continue
        if not ok:
            raise ConfigError(f"{f.name} must be {kind}, got {value!r}")


ALPHA_SCHEDULES = ("constant", "linear", "cosine", "step")
TEACHER_GATES = ("learned", "parameter_free", "untrained")
NORMS = ("channel", "tensor")
TAP_RELUS = ("pre", "post")
LR_SCHEDULES = ("cosine", "poly")
MOBILENET_DILATIONS = ("stage", "last_block")
CONNECTOR_SCHEDULES = ("joint", "first_epoch")
TEACHER_MODES = ("eval", "train")
VOC_TRAIN_SPLITS = ("train_aug", "train")

# named bundles of field values; the fields a caller sets win over the bundle
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {},
    # the official code (AmirMansurian/AttnFD on jfzhang95/pytorch-deeplab-xception), each
    # value with the file it comes from (docs_official_recipe.md has the list)
    "official": {
        "multi_grid": True,  # modeling/backbone/resnet.py _make_MG_unit, blocks [1, 2, 4]
        "mobilenet_dilation": "last_block",  # modeling/backbone/mobilenet.py MobileNetV2.__init__
        "fixed_padding": True,  # modeling/backbone/mobilenet.py fixed_padding
        "align_corners": True,  # modeling/aspp.py, decoder.py, deeplab.py
        "tap_gates_inline": False,  # CBAMs beside the network: forward() never calls them
        "ce_batch_average": True,  # utils/loss.py SegmentationLosses(batch_average=True)
        "norm": "tensor",  # distiller.py: x / torch.norm(x), .pow(2).sum() / b
        "tap_relu": "post",  # modeling/aspp.py and decoder.py extract_feature
        "teacher_gate": "untrained",  # cbam.py: every CBAM is model='student', never optimised
        "lr_schedule": "poly",  # utils/lr_scheduler.py, per iteration
        "lr_batch_reference": 6,  # train_kd.py: lr / (6 * len(gpu_ids)) * batch_size
        "nesterov": True,  # README: --nesterov
        "connector_schedule": "first_epoch",  # train_kd.py: init_optimizer in epoch 0 only
        "teacher_mode": "train",  # train_kd.py: t_net.train()
        "train_student_channel_mlp": False,  # modeling/deeplab.py get_1x/10x_lr_params: Conv2d/BN only
        "voc_train_split": "train",  # dataloaders/__init__.py without SBD: 1,464 images
    },
}
# recipe values that replace a data set's preset (used only where the field is unset)
RECIPE_PRESETS: dict[str, dict[str, Any]] = {
    "official": {"alpha": 2.0},  # train_kd.py --attn_lambda 2 (README)
}


@check_sections
@dataclass
class TrainConfig:
    # each field's section and table-row role: attnfd.config_sections
    role: str = setting("student", "run")
    dataset: str = setting("shapes", "data")
    data_root: str | None = setting(None, "data", row="never")
    backbone: str | None = setting(None, "model", teacher_from="teacher_backbone")
    # the data set's recipe: resnet101 (the paper) for voc and cityscapes, resnet50 for shapes
    teacher_backbone: str | None = setting(None, "distillation", row="when_distilling")
    backbone_weights: str | None = setting(None, "model", teacher_from="teacher_backbone_weights")
    teacher_backbone_weights: str | None = setting(None, "distillation", row="when_distilling")
    output_stride: int | None = setting(None, "model")
    head_channels: int | None = setting(None, "model")
    aspp_rates: tuple[int, ...] | None = setting(None, "model")
    image_size: Any = setting(None, "data")
    train_size: int | None = setting(None, "data")
    val_size: int | None = setting(None, "data")
    data_seed: int = setting(0, "data")
    distill: str | None = setting(None, "distillation")
    # per-method options over their defaults (attnfd.distill.spec), "kd.temperature=4,at.layers=encoder+decoder"
    distill_options: str | None = setting(None, "distillation")
    alpha: float | None = setting(None, "distillation", row="when_distilling")
    alpha_schedule: str = setting("constant", "distillation", row="when_distilling")
    alpha_decay_start: float = setting(0.5, "distillation", row="when_distilling")
    layers: tuple[str, ...] = setting(TAPS, "distillation", row="when_distilling")
    teacher_gate: str = setting("learned", "distillation", row="when_distilling")
    norm: str = setting("channel", "distillation", row="when_distilling")
    tap_relu: str = setting("pre", "distillation", row="when_distilling")
    epochs: int | None = setting(None, "optimisation", teacher_from="teacher_epochs")
    teacher_epochs: int | None = setting(None, "distillation", row="when_distilling")
    batch_size: int | None = setting(None, "optimisation")
    lr: float | None = setting(None, "optimisation")
    momentum: float = setting(0.9, "optimisation")
    # None: the data set's recipe decides (shapes: Nesterov), plain momentum where it is silent
    nesterov: bool | None = setting(None, "optimisation")
    weight_decay: float | None = setting(None, "optimisation")
    head_lr_mult: float | None = setting(None, "optimisation")
    # the data set's recipe: cosine (the AttnFD paper) for voc, cityscapes and shapes, poly for the
    # recipes of the other literature
    lr_schedule: str | None = setting(None, "optimisation")
    eval_every: int = setting(1, "placement", teacher_run=True)
    seed: int = setting(0, "optimisation", row="never", teacher_from="teacher_seed")
    teacher_seed: int = setting(0, "distillation", row="when_distilling")
    workers: int | None = setting(None, "placement", row="never", teacher_run=True)
    # torch's intra-op threads for the run (None: torch's default, one per core); results repeat
    # exactly only at the same thread count, and a study trial runs with --cpus-per-trial threads
    threads: int | None = setting(None, "placement", row="never")
    device: str = setting("auto", "placement", row="never", teacher_run=True)
    amp: bool = setting(True, "placement", teacher_run=True)
    out_dir: str | None = setting(None, "placement", row="never")
    cache_dir: str | None = setting(None, "placement", row="never", teacher_run=True)
    teacher_checkpoint: str | None = setting(None, "placement", row="never")
    resume: str | None = setting(None, "placement", row="never")
    # the model carries a CBAM on each tap in its forward path (a teacher for teacher_gate=learned)
    tap_gates: bool = setting(False, "model")
    # a bundle of the values below (RECIPES); "paper" changes nothing
    recipe: str = setting("paper", "run")
    # architecture (attnfd/models): Bottleneck ResNet layer4 as a multi-grid unit (1, 2, 4);
    # MobileNetV2 dilated by the official rule and padded explicitly; bilinear align_corners;
    # tap gates held beside the forward path instead of in it
    multi_grid: bool = setting(False, "model", if_set=True)
    mobilenet_dilation: str = setting("stage", "model", if_set=True)
    fixed_padding: bool = setting(False, "model", if_set=True)
    align_corners: bool = setting(False, "model", if_set=True)
    tap_gates_inline: bool = setting(True, "model", if_set=True)
    # loss scale (trainer): cross-entropy divided once more by the batch size
    ce_batch_average: bool = setting(False, "optimisation", if_set=True)
    # lr multiplied by batch_size / lr_batch_reference (the official code's 6 images per GPU)
    lr_batch_reference: int | None = setting(None, "optimisation", if_set=True)
    # joint: connectors train with the student all along; first_epoch: epoch 0 trains only the
    # connectors, which are frozen from then on
    connector_schedule: str = setting("joint", "distillation")
    # eval: the teacher frozen in eval mode; train: BN batch statistics and active dropout
    teacher_mode: str = setting("eval", "distillation")
    # the student CBAMs' channel MLP is optimised (the official code leaves it at its init)
    train_student_channel_mlp: bool = setting(True, "distillation")
    # voc: train_aug (VOC train + SBD when SBD is found) or train (the 1,464 VOC images)
    voc_train_split: str = setting("train_aug", "data", if_set=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None = None) -> TrainConfig:
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
        recipe = values.get("recipe", "paper")
        if recipe not in RECIPES:
            raise ConfigError(f"recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
        return cls(**{**RECIPES[recipe], **values}).resolved()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def num_classes(self) -> int:
        from attnfd.data.registry import dataset_spec

        return dataset_spec(self.dataset).num_classes

    @property
    def distilling(self) -> bool:
        return self.role == "student" and bool(self.distill)

    def resolved(self) -> TrainConfig:
        """Fill the data set's recipe into unset fields, normalise types, and validate."""
        # imported here: the registry loads every data set's module, which a config that is only
        # built and saved (the study driver's, the analysis') never needs
        from attnfd.data.registry import dataset_spec

        preset = dataset_spec(self.dataset).preset
        if self.recipe not in RECIPES:
            raise ConfigError(f"recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        c = dataclasses.replace(self)
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        bundle = RECIPES[c.recipe]
        if bundle and all(getattr(c, k) == defaults[k] for k in bundle):
            # built directly, not through from_dict: the bundle was never filled in
            for key, value in bundle.items():
                setattr(c, key, value)
        alpha_unset = c.alpha is None
        for key, value in {**preset, **RECIPE_PRESETS.get(c.recipe, {})}.items():
            if getattr(c, key) is None:
                setattr(c, key, value)
        if c.nesterov is None:
            c.nesterov = False
        if c.backbone is None:
            c.backbone = c.teacher_backbone if c.role == "teacher" else "resnet18"
        from attnfd.distill.spec import default_alpha, split_layers

        c.layers = split_layers(c.layers) if isinstance(c.layers, str) else tuple(c.layers)
        if alpha_unset and c.distilling:

            # the presets' alpha is AttnFD's; other methods carry their own published weight
            c.alpha = default_alpha(c.distill, c.alpha)
        from attnfd.paths import checkpoint_files

        # a run or trial folder stands for its newest checkpoint file
        if c.resume is not None:
            c.resume = str(checkpoint_files(c.resume, want="state", what="resume checkpoint")[0])
        if c.teacher_checkpoint is not None:
            c.teacher_checkpoint = str(checkpoint_files(c.teacher_checkpoint, what="teacher_checkpoint")[0])
        if isinstance(c.aspp_rates, str):
            c.aspp_rates = tuple(v.strip() for v in c.aspp_rates.split(",") if v.strip())
        if not isinstance(c.aspp_rates, (tuple, list)) or not all(_is_int(r) for r in c.aspp_rates):
            raise ConfigError(f"aspp_rates must be integers, got {c.aspp_rates!r}")
        c.aspp_rates = tuple(int(r) for r in c.aspp_rates)
        if isinstance(c.image_size, list):
            c.image_size = tuple(c.image_size)
        c.validate()
        return c

    def validate(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        _check_types(self)
        check(self.role in ("teacher", "student"), f"role must be teacher or student, got {self.role!r}")
        check(not (self.role == "teacher" and self.distill), "distill applies to a student; a teacher trains alone")
        for name in ("backbone", "teacher_backbone"):
            value = getattr(self, name)
            check(value in BACKBONES, f"unknown {name} {value!r}; choose one of {', '.join(BACKBONES)}")
        check(self.output_stride in (8, 16), f"output_stride must be 8 or 16, got {self.output_stride}")
        check(len(self.layers) > 0, "layers must name at least one of backbone, encoder, decoder")
        bad = [t for t in self.layers if t not in ALL_TAPS]
        check(not bad, f"unknown layer(s) {', '.join(bad)}; choose from {', '.join(ALL_TAPS)}")
        check(len(set(self.layers)) == len(self.layers), f"layers repeats a name: {','.join(self.layers)}")
        check(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        check(not self.nesterov or self.momentum > 0, "nesterov needs momentum > 0")
        for name in ("train_size", "val_size"):
            value = getattr(self, name)
            check(value is None or value >= 1, f"{name} must be >= 1, got {value}")
        check(self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        check(self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}")
        sizes = self.image_size if isinstance(self.image_size, tuple) else (self.image_size,)
        check(len(sizes) in (1, 2) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in sizes),
              f"image_size must be a size >= 8 or HxW, got {self.image_size!r}")
        check(len(self.aspp_rates) > 0 and all(r >= 1 for r in self.aspp_rates),
              f"aspp_rates must be dilation rates >= 1, got {','.join(map(str, self.aspp_rates))}")
        # a generated data set reads no files: a data root would be silently ignored
        from attnfd.data.registry import dataset_spec, file_dataset_names

        check(dataset_spec(self.dataset).reads_files or self.data_root is None,
              f"data_root applies to the data sets on disk ({', '.join(file_dataset_names())}); {self.dataset} is "
              f"generated and reads no files (got {self.data_root})")
        check(self.out_dir is None or self.out_dir.strip() != "", "out_dir is empty; give a folder")
        check(self.alpha_schedule in ALPHA_SCHEDULES, f"alpha_schedule must be one of {', '.join(ALPHA_SCHEDULES)}, got {self.alpha_schedule!r}")
        check(0 <= self.alpha_decay_start < 1, f"alpha_decay_start must be in [0, 1), got {self.alpha_decay_start}")
        check(self.teacher_gate in TEACHER_GATES, f"teacher_gate must be one of {', '.join(TEACHER_GATES)}, got {self.teacher_gate!r}")
        check(self.norm in NORMS, f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        check(self.tap_relu in TAP_RELUS, f"tap_relu must be pre or post, got {self.tap_relu!r}")
        check(self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be cosine or poly, got {self.lr_schedule!r}")
        for name, choices in (("mobilenet_dilation", MOBILENET_DILATIONS), ("connector_schedule", CONNECTOR_SCHEDULES),
                              ("teacher_mode", TEACHER_MODES), ("voc_train_split", VOC_TRAIN_SPLITS)):
            value = getattr(self, name)
            check(value in choices, f"{name} must be one of {', '.join(choices)}, got {value!r}")
        check(self.lr_batch_reference is None or int(self.lr_batch_reference) >= 1,
              f"lr_batch_reference must be >= 1, got {self.lr_batch_reference}")
        for name in ("epochs", "teacher_epochs", "batch_size", "eval_every", "head_channels"):
            check(int(getattr(self, name)) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        # BatchNorm in the ASPP pooling branch cannot train on one image
        check(self.batch_size >= 2, f"batch_size must be >= 2 (BatchNorm on a 1x1 map), got {self.batch_size}")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(self.head_lr_mult > 0, f"head_lr_mult must be > 0, got {self.head_lr_mult}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        for name in ("backbone_weights", "teacher_backbone_weights"):
            path = getattr(self, name)
            check(path is None or Path(path).is_file(), f"{name} not found: {path}")
        if self.distilling and self.teacher_checkpoint is None:
            from attnfd.paths import folder_problem

            problem = folder_problem(self.resolve_cache_dir())
            check(problem is None, f"cache_dir (where teachers are cached): {problem}")
        if self.distilling:
            from attnfd.distill.spec import parse_methods

            parse_methods(self)

    @property
    def base_lr(self) -> float:
        """The learning rate the optimiser starts from: ``lr``, times batch_size /
        lr_batch_reference when that is set (the official code's linear scaling)."""
        if self.lr_batch_reference:
            return self.lr * self.batch_size / self.lr_batch_reference
        return self.lr

    def resolve_cache_dir(self) -> Path:
        return Path(self.cache_dir or os.environ.get("ATTNFD_CACHE") or Path.home() / ".cache" / "attnfd")


# bumped whenever code changes what a teacher trained on the same config would learn
# (2: shapes with plain distractors and fresh scenes per epoch, zero-initialised residuals;
# 3: shapes whose classes are the surface an object lies on)
CACHE_REVISION = 3

# what a teacher is made of, by its sections (attnfd.config_sections): two configs equal on
# these share one teacher
TEACHER_FIELDS = section_fields(TrainConfig, *TEACHER_SECTIONS)
TEACHER_CONTENT_FIELDS = tuple(f.name for f in TEACHER_FIELDS if not f.metadata["if_set"])
# fields added after teachers were cached: they enter the key only when they differ from their
# default, so every teacher cached before them keeps its key (and is reused)
TEACHER_OPTIONAL_FIELDS = tuple(f.name for f in TEACHER_FIELDS if f.metadata["if_set"])


def teacher_config(student: TrainConfig) -> TrainConfig:
    """The config that trains the teacher a distillation run needs: the student's teacher
    sections (each field from the student's ``teacher_from`` field where it names one), the
    placement a teacher's run takes from the student (``teacher_run``) and the student's recipe."""
    values = {f.name: getattr(student, f.metadata["teacher_from"] or f.name) for f in TEACHER_FIELDS}
    values.update({f.name: getattr(student, f.name) for f in section_fields(TrainConfig, "placement")
                   if f.metadata["teacher_run"]})
    values.update(
        role="teacher", recipe=student.recipe,
        # the teacher's own config names it as the student's does
        teacher_backbone=student.teacher_backbone, teacher_epochs=student.teacher_epochs,
        # always with CBAMs in its forward path: the learned gate needs them, the other gate
        # options read the raw taps, so one teacher serves a whole study over teacher_gate
        tap_gates=True,
    )
    return TrainConfig(**values).resolved()


def content_key(config: TrainConfig) -> str:
    """A digest of what determines a trained teacher: its data, model and optimisation sections."""
    content = {f.name: getattr(config, f.name) for f in TEACHER_FIELDS
               if not f.metadata["if_set"] or getattr(config, f.name) != f.default}
    # a teacher cached before a change to the generator or to model init must not be reused
    content["revision"] = CACHE_REVISION
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
