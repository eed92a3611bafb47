"""recipe=official: the official AttnFD code's architecture, loss scale and training choices,
each checked against a reference; the converter from the official key layout; stage taps."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from official_reference import OfficialDeepLab

from attnfd import checkpoint as ckpt
from attnfd.config import (
    CACHE_REVISION,
    RECIPES,
    TEACHER_CONTENT_FIELDS,
    ConfigError,
    TrainConfig,
    content_key,
    teacher_config,
)
from attnfd.distill import DISTILLERS
from attnfd.distill.overhaul import margin_from_batchnorm, partial_l2
from attnfd.model_files import load_model
from attnfd.models import build_model
from attnfd.models.convert import ConversionError, convert_file
from attnfd.trainer import Run, fit

IMAGE = 96


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.fixture(scope="module")
def converted(module_tmp):
    """Per backbone: an official-layout reference with random weights and BN statistics, its
    checkpoint converted to an attnfd model.pt, and the reference's outputs on one batch."""
    folder = module_tmp
    cache = {}

    def get(backbone: str):
        if backbone not in cache:
            torch.manual_seed(0)
            reference = OfficialDeepLab(backbone).eval()
            source = folder / f"{backbone}.pth.tar"
            # as the official Saver writes it, from a DataParallel model
            torch.save({"epoch": 3, "best_pred": 0.5,
                        "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, source)
            image = torch.randn(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                expected = reference.extract(image)
            cache[backbone] = (convert_file("official", source, folder / backbone), image, expected)
        return cache[backbone]

    return get


def our_outputs(model, image):
    model.eval().require_stage_taps()
    with torch.no_grad():
        logits, taps = model(image)
        gates = {"backbone": taps["backbone"], "encoder": F.relu(taps["encoder"]), "decoder": F.relu(taps["decoder"])}
        attention = {k: model.gates[k](v) for k, v in gates.items()} if model.gates is not None else {}
    return logits, taps, gates, attention


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v2", "resnet101"])
def test_converted_official_checkpoint_gives_the_official_logits_taps_and_attention(converted, backbone):
    path, image, expected = converted(backbone)
    model, config = load_model(path)
    assert config.backbone == backbone and config.num_classes == 21 and config.dataset == "voc"
    assert config.multi_grid and config.align_corners and not config.tap_gates_inline
    logits, taps, post_relu, attention = our_outputs(model, image)
    assert rel_err(logits, expected["logits"]) < 1e-5
    for k, stage in zip(("stage1", "stage2", "stage3"), expected["stages"], strict=True):
        assert rel_err(taps[k], stage) < 1e-5, k
    # the official taps: layer4 pre-ReLU, ASPP and decoder after their ReLU
    for k in ("backbone", "encoder", "decoder"):
        assert rel_err(post_relu[k], expected[k]) < 1e-5, k
        assert rel_err(attention[k], expected["attention"][k]) < 1e-5, f"{k} CBAM"


@pytest.mark.parametrize("backbone,field,paper_value", [
    ("resnet101", "multi_grid", False),
    ("mobilenet_v2", "mobilenet_dilation", "stage"),
    ("mobilenet_v2", "fixed_padding", False),
    ("resnet18", "align_corners", False),
    ("mobilenet_v2", "align_corners", False),
])
def test_each_architecture_option_is_what_makes_the_forward_official(converted, backbone, field, paper_value):
    path, image, expected = converted(backbone)
    model, config = load_model(path)
    paper = build_model(dataclasses.replace(config, **{field: paper_value}))
    paper.load_state_dict(model.state_dict())
    logits, _, post_relu, _ = our_outputs(paper, image)
    errors = {k: rel_err(post_relu[k], expected[k]) for k in ("backbone", "encoder", "decoder")}
    errors["logits"] = rel_err(logits, expected["logits"])
    assert max(errors.values()) > 1e-4, errors
    if field == "align_corners":
        # the backbone does not upsample: only the head's taps move
        assert errors["backbone"] < 1e-5 and errors["decoder"] > 1e-4


def test_resnet18_needs_only_align_corners_and_its_multi_grid_is_a_no_op():
    torch.manual_seed(0)
    grid = build_model(TrainConfig.from_dict({"backbone": "resnet18", "multi_grid": True}))
    plain = build_model(TrainConfig.from_dict({"backbone": "resnet18"}))
    plain.load_state_dict(grid.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(grid.eval()(x)[0], plain.eval()(x)[0])


def test_converter_rejects_what_does_not_fit(tmp_path, converted):
    path, _, _ = converted("resnet18")
    state = ckpt.load(path)
    source = tmp_path / "bad.pth"
    torch.save({"state_dict": {"backbone.features.0.0.weight": torch.zeros(32, 3, 3, 3)}}, source)
    with pytest.raises(ConversionError, match="decoder.last_conv.8.weight"):
        convert_file("official", source, tmp_path / "out")
    with pytest.raises(ConversionError, match="unknown layout"):
        convert_file("torchvision", source, tmp_path / "out")
    assert state["config"]["recipe"] == "official"


def test_a_checkpoint_without_cbams_converts_without_gates(tmp_path):
    """clovaai/overhaul-distillation's Segmentation code has the same layout, no CBAMs."""
    torch.manual_seed(0)
    reference = OfficialDeepLab("resnet18", classes=19).eval()
    source = tmp_path / "overhaul.pth"
    torch.save({"state_dict": {k: v for k, v in reference.state_dict().items() if ".cbam." not in k}}, source)
    model, config = load_model(convert_file("official", source, tmp_path / "out"))
    assert config.dataset == "cityscapes" and not config.tap_gates and model.gates is None
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(model.eval()(image)[0], reference.extract(image)["logits"]) < 1e-5


def test_recipe_official_fills_unset_fields_and_each_one_can_be_set_back():
    official = TrainConfig.from_dict({"recipe": "official", "distill": "attnfd", "dataset": "voc", "data_root": "."})
    for key, value in RECIPES["official"].items():
        assert getattr(official, key) == value, key
    assert official.alpha == 2.0 and official.base_lr == pytest.approx(0.007)
    ablated = TrainConfig.from_dict({"recipe": "official", "align_corners": False, "alpha": 1.0})
    assert ablated.align_corners is False and ablated.multi_grid is True and ablated.alpha == 1.0
    paper = TrainConfig.from_dict({})
    assert paper.recipe == "paper" and not paper.align_corners and paper.connector_schedule == "joint"
    with pytest.raises(ConfigError, match="recipe must be one of"):
        TrainConfig.from_dict({"recipe": "offical"})
    # the linear scaling of the official code: lr * batch / 6
    assert TrainConfig.from_dict({"lr_batch_reference": 6, "batch_size": 12, "lr": 0.01}).base_lr == pytest.approx(0.02)


def test_default_teacher_key_is_the_key_from_before_the_new_fields():
    config = teacher_config(TrainConfig.from_dict({"distill": "attnfd"}))
    content = {name: getattr(config, name) for name in TEACHER_CONTENT_FIELDS}
    content["revision"] = CACHE_REVISION
    old = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert content_key(config) == old
    # a field that changes what the teacher learns changes the key when it is not the default
    official = teacher_config(TrainConfig.from_dict({"distill": "attnfd", "recipe": "official"}))
    assert official.multi_grid and official.ce_batch_average and content_key(official) != old
    # the student-side choices share the default teacher
    student_side = teacher_config(TrainConfig.from_dict({"distill": "attnfd", "connector_schedule": "first_epoch",
                                                         "teacher_mode": "train", "train_student_channel_mlp": False}))
    assert content_key(student_side) == old


def save_teacher(config: TrainConfig, path) -> str:
    """A random teacher model.pt for the config (what distillation needs; no training)."""
    teacher = teacher_config(config)
    torch.manual_seed(11)
    ckpt.atomic_save({"config": teacher.to_dict(), "model": build_model(teacher).state_dict(), "history": []}, path)
    return str(path)


TINY_RUN = {"dataset": "shapes", "image_size": 32, "train_size": 8, "val_size": 4, "batch_size": 4,
            "head_channels": 16, "backbone": "resnet18", "teacher_backbone": "resnet18", "epochs": 3, "lr": 0.05,
            "device": "cpu"}


def test_official_loss_is_batch_averaged_ce_plus_attn_lambda_times_sum_over_b(tmp_path):
    values = {**TINY_RUN, "distill": "attnfd", "recipe": "official", "out_dir": str(tmp_path / "run")}
    values["teacher_checkpoint"] = save_teacher(TrainConfig.from_dict(values), tmp_path / "teacher.pt")
    run = Run(TrainConfig.from_dict(values))
    run.model.eval()
    run.distillers.eval()
    run.teacher.eval()
    torch.manual_seed(3)
    images, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4, 32, 32))
    with torch.no_grad():
        parts = run._step(images, labels, 0.0)
        logits, taps = run.model(images)
        _, t_taps = run.teacher(images)
        d = run.distillers["attnfd"]
        by_hand = F.cross_entropy(logits, labels, ignore_index=255) / 4
        for k in ("backbone", "encoder", "decoder"):
            relu = (lambda x: x) if k == "backbone" else F.relu
            s = d.connectors[k](d.student_gates[k](relu(taps[k])))
            t = d.untrained_teacher_gates[k](relu(t_taps[k]))
            by_hand = by_hand + 2.0 * (s / s.norm() - t / t.norm()).pow(2).sum() / 4
    assert parts["loss"].item() == pytest.approx(by_hand.item(), rel=1e-5)
    # the paper's recipe: the plain CE mean over pixels
    paper = Run(TrainConfig.from_dict({**TINY_RUN, "out_dir": str(tmp_path / "plain")}))
    paper.model.eval()
    with torch.no_grad():
        ce = paper._step(images, labels, 0.0)["ce"]
        assert ce.item() == pytest.approx(F.cross_entropy(paper.model(images)[0], labels, ignore_index=255).item())


def test_official_schedule_trains_only_connectors_in_epoch_0_then_freezes_them(tmp_path):
    values = {**TINY_RUN, "distill": "attnfd", "recipe": "official", "out_dir": str(tmp_path / "run")}
    values["teacher_checkpoint"] = save_teacher(TrainConfig.from_dict(values), tmp_path / "teacher.pt")
    initial = Run(TrainConfig.from_dict(values))
    snapshots = [{"model": initial.model.state_dict(), "distillers": initial.distillers.state_dict()}]
    snapshots = [{k: {n: t.clone() for n, t in v.items()} for k, v in snapshots[0].items()}]
    fit(values, lambda row, folder: snapshots.append(ckpt.load(folder)))

    def changed(a, b, prefix, part):
        keys = [k for k in a[part] if k.startswith(prefix) and "running" not in k and "num_batches" not in k]
        assert keys, prefix
        return any(not torch.equal(a[part][k], b[part][k]) for k in keys)

    start, after0, after1, after2 = snapshots
    assert changed(start, after0, "attnfd.connectors.", "distillers")
    assert not changed(start, after0, "backbone.", "model") and not changed(start, after0, "decoder.", "model")
    assert not changed(start, after0, "attnfd.student_gates.", "distillers")
    # from epoch 1 the student learns and the connectors stay as epoch 0 left them
    assert changed(after0, after1, "backbone.", "model")
    assert not changed(after0, after1, "attnfd.connectors.", "distillers")
    assert not changed(after1, after2, "attnfd.connectors.", "distillers")
    # the student CBAMs' spatial gates learn, their channel MLPs never do
    assert changed(after0, after2, "attnfd.student_gates.backbone.spatial_gate.", "distillers")
    assert not changed(start, after2, "attnfd.student_gates.backbone.channel_gate.", "distillers")


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_teacher_mode_train_uses_batch_statistics(tmp_path, mode):
    values = {**TINY_RUN, "distill": "attnfd", "teacher_mode": mode, "out_dir": str(tmp_path / "run"), "epochs": 1}
    values["teacher_checkpoint"] = save_teacher(TrainConfig.from_dict(values), tmp_path / "teacher.pt")
    run = Run(TrainConfig.from_dict(values))
    bn = run.teacher.backbone.stem[1]
    before = bn.running_mean.clone()
    run.train_epoch()
    assert torch.equal(before, bn.running_mean) == (mode == "eval")


def test_overhaul_distils_the_stage_taps_with_the_official_dividers():
    config = TrainConfig.from_dict({**TINY_RUN, "distill": "overhaul"})
    teacher = build_model(teacher_config(config)).eval()
    student = build_model(config).train()
    d = DISTILLERS["overhaul"](student, teacher, config)
    assert d.layers == ("stage1", "stage2", "stage3", "backbone", "encoder", "decoder")
    assert d.loss_weights(0.5) == {"overhaul.stage1": 1 / 8, "overhaul.stage2": 1 / 4, "overhaul.stage3": 1 / 2,
                                   "overhaul.backbone": 1.0, "overhaul.encoder": 1.0, "overhaul.decoder": 1 / 16}
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        t_logits, t_taps = teacher(image)
        targets = d.teacher_targets(t_logits, t_taps)
    logits, taps = student(image)
    assert taps["stage2"].shape[1] == 128 and t_taps["stage2"].shape[-1] == taps["stage2"].shape[-1] == 4
    parts = d(logits, taps, targets, None)
    margin = margin_from_batchnorm(teacher.backbone.layer2[-1].bn2)
    expected = partial_l2(d.connectors["stage2"](taps["stage2"]), torch.maximum(t_taps["stage2"], margin))
    assert parts["overhaul.stage2"].item() == pytest.approx(expected.item(), rel=1e-6)
    parts["overhaul.stage1"].backward()
    assert student.backbone.stem[0].weight.grad.abs().sum() > 0
    # the paper's three taps, as before, when asked for
    three = DISTILLERS["overhaul"](student, teacher, TrainConfig.from_dict(
        {**TINY_RUN, "distill": "overhaul", "distill_options": "overhaul.layers=backbone+encoder+decoder"}))
    assert three.layers == ("backbone", "encoder", "decoder")


def test_attnfd_on_a_stage_tap_and_the_learned_gate_refusing_it():
    config = TrainConfig.from_dict({**TINY_RUN, "distill": "attnfd", "layers": "stage3,decoder",
                                    "teacher_gate": "untrained"})
    teacher = build_model(teacher_config(config)).eval()
    d = DISTILLERS["attnfd"](build_model(config), teacher, config)
    assert set(d.connectors) == {"stage3", "decoder"}
    with pytest.raises(ConfigError, match="no gates on stage3"):
        DISTILLERS["attnfd"](build_model(config), teacher, dataclasses.replace(config, teacher_gate="learned"))


def test_attnfd_convert_command_writes_a_model_that_evaluates(tmp_path):
    from attnfd.cli import main

    source = tmp_path / "teacher-pascal.pth.tar"
    torch.save({"state_dict": OfficialDeepLab("resnet18").state_dict()}, source)
    main(["convert", "--from", "official", str(source), "--out", str(tmp_path / "out")])
    model, config = load_model(tmp_path / "out" / "model.pt")
    assert config.backbone == "resnet18" and config.recipe == "official" and model.gates is not None
    with pytest.raises(SystemExit):
        main(["convert", "--from", "official", str(tmp_path / "missing.pth")])


def test_a_config_built_directly_with_recipe_official_gets_the_bundle():
    config = TrainConfig(recipe="official").resolved()
    assert config.multi_grid and config.connector_schedule == "first_epoch" and config.norm == "tensor"
    assert TrainConfig().resolved().multi_grid is False


def test_voc_train_split_train_leaves_sbd_out(tmp_path):
    from attnfd.data import build_dataset
    from attnfd.data.miniature import write_voc

    ids = write_voc(tmp_path, train=3, val=2, sbd="mat", sbd_only=4)
    base = {"dataset": "voc", "data_root": str(tmp_path), "image_size": 32}
    aug = build_dataset(TrainConfig.from_dict(base), "train")
    plain = build_dataset(TrainConfig.from_dict({**base, "recipe": "official"}), "train")
    assert sorted(s.id for s in aug.samples) == sorted(ids["train"] + ids["sbd_only"])
    assert [s.id for s in plain.samples] == ids["train"]
    assert len(build_dataset(TrainConfig.from_dict({**base, "voc_train_split": "train"}), "val")) == 2
