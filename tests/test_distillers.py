"""The distillation methods behind the one interface: losses, gradients, invariances, state,
weights and defaults, and a one-epoch run of each through the trainer."""

from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnfd import checkpoint as ckpt
from attnfd.config import ConfigError, TrainConfig, teacher_config
from attnfd.distill import DISTILLERS
from attnfd.distill.aicsd import inter_class_kl
from attnfd.distill.cirkd import minibatch_pixel_loss
from attnfd.distill.common import pool_to_pixels
from attnfd.distill.methods import declared_methods
from attnfd.distill.overhaul import margin_from_batchnorm
from attnfd.distill.spec import parse_weights
from attnfd.models import build_model
from attnfd.trainer import Run, fit

METHOD_NAMES = sorted(DISTILLERS)
# every option a test needs to keep CIRKD's memory small
SMALL = {
    "image_size": 32, "head_channels": 16, "teacher_backbone": "resnet18", "device": "cpu",
    "distill_options": "cirkd.pixel_memory=64,cirkd.region_memory=8,cirkd.pixel_contrast=32,cirkd.region_contrast=8",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tensors here are tiny: a second intra-op thread only adds synchronisation, which on
    a shared, loaded machine costs more than the work itself."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_config(method: str, **overrides) -> TrainConfig:
    return TrainConfig.from_dict({**SMALL, "distill": method, **overrides})


@pytest.fixture(scope="module")
def models():
    """Tiny student models of both backbone families and a teacher (gated, as teacher_gate=learned
    asks), built once; tests only read them."""
    torch.manual_seed(0)
    cfg = small_config("kd")
    teacher = build_model(teacher_config(cfg)).eval().requires_grad_(False)
    students = {b: build_model(dataclasses.replace(cfg, backbone=b)) for b in ("resnet18", "mobilenet_v2")}
    return teacher, students


def random_side(model: nn.Module, batch: int = 2, size: int = 32, grow: int = 0, requires_grad: bool = False):
    """Random logits and taps shaped as the model's at ``size``; ``grow`` enlarges the feature
    maps (a student whose maps do not match the teacher's)."""
    with torch.inference_mode():
        logits, taps = model.eval()(torch.zeros(1, 3, size, size))
    shapes = {k: (batch, v.shape[1], v.shape[2] + grow, v.shape[3] + grow) for k, v in taps.items()}
    def make(shape):
        return (torch.randn(shape) * 2).requires_grad_(requires_grad)

    return make((batch, logits.shape[1], size, size)), {k: make(s) for k, s in shapes.items()}


def random_labels(batch: int = 2, size: int = 32, classes: int = 7) -> torch.Tensor:
    labels = torch.randint(0, classes, (batch, size, size))
    labels[:, :3] = 255
    return labels


def targets_of(distiller, logits, taps) -> dict[str, torch.Tensor]:
    # as the trainer: built under inference mode, cloned out of it
    with torch.inference_mode():
        out = distiller.teacher_targets(logits, taps)
    return {k: v.clone() for k, v in out.items()}


def weighted_total(distiller, parts: dict[str, torch.Tensor], progress: float = 0.5) -> torch.Tensor:
    weights = distiller.loss_weights(progress)
    return sum(weights.get(k, 1.0) * v for k, v in parts.items())


def make_identity(distiller: nn.Module) -> None:
    """Connectors, embeddings and projections that pass a map through unchanged (square 1x1
    convs as identity, BatchNorms as exact identities in eval mode)."""
    for module in distiller.modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.in_channels == module.out_channels:
            with torch.no_grad():
                module.weight.copy_(torch.eye(module.out_channels).view_as(module.weight))
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.reset_parameters()
            module.eps = 0.0
            module.eval()


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v2"])
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_finite_loss_and_student_gradients_but_none_for_the_teacher(models, method, backbone):
    teacher, students = models
    student = students[backbone]
    torch.manual_seed(1)
    d = DISTILLERS[method](student, teacher, small_config(method, backbone=backbone)).train()
    teacher_params = {id(p) for p in teacher.parameters()}
    assert not teacher_params & {id(p) for p in d.parameters()}, "the teacher must not be optimised or saved twice"
    image = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        t_logits, t_taps = teacher(image)
    # mobilenet's maps are made a pixel larger than the teacher's: methods must cope
    s_logits, s_taps = random_side(student, grow=int(backbone == "mobilenet_v2"), requires_grad=True)
    parts = d(s_logits, s_taps, targets_of(d, t_logits, t_taps), random_labels())
    assert parts and all(v.dim() == 0 and torch.isfinite(v) for v in parts.values()), parts
    weighted_total(d, parts).backward()
    student_grads = [t.grad for t in (s_logits, *s_taps.values()) if t.grad is not None]
    assert student_grads and all(torch.isfinite(g).all() for g in student_grads)
    assert any(g.abs().sum() > 0 for g in student_grads)
    own = [p.grad for p in d.parameters() if p.requires_grad and p.grad is not None]
    assert all(torch.isfinite(g).all() for g in own)
    if any(p.requires_grad for p in d.parameters()):
        assert any(g.abs().sum() > 0 for g in own), "the method's own parameters learn nothing"
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_loss_is_zero_when_the_student_is_the_teacher(models, method):
    teacher, _ = models
    torch.manual_seed(2)
    options = {"teacher_gate": "untrained"} if method == "attnfd" else {}
    d = DISTILLERS[method](teacher, teacher, small_config(method, **options)).train()
    make_identity(d)
    if method == "attnfd":
        d.untrained_teacher_gates.load_state_dict(d.student_gates.state_dict())
    logits, taps = random_side(teacher)
    parts = d(logits, taps, targets_of(d, logits, taps), random_labels())
    for name, value in parts.items():
        assert abs(value.item()) < 1e-5, f"{name} = {value.item()} for identical student and teacher"
    # and not zero when they differ
    other_logits, other_taps = random_side(teacher)
    parts = d(other_logits, other_taps, targets_of(d, logits, taps), random_labels())
    assert weighted_total(d, parts).item() > 1e-4


@pytest.mark.parametrize("method", ["at", "sp"])
def test_attention_and_similarity_ignore_the_feature_scale(models, method):
    teacher, students = models
    d = DISTILLERS[method](students["resnet18"], teacher, small_config(method, distill_options=f"{method}.layers=backbone+encoder+decoder"))
    s_logits, s_taps = random_side(students["resnet18"])
    t_logits, t_taps = random_side(teacher)
    base = d(s_logits, s_taps, targets_of(d, t_logits, t_taps), None)
    scaled = d(s_logits, {k: 3.7 * v for k, v in s_taps.items()}, targets_of(d, t_logits, {k: 0.25 * v for k, v in t_taps.items()}), None)
    for k in base:
        assert base[k].item() > 0
        assert scaled[k].item() == pytest.approx(base[k].item(), rel=1e-4)


def test_lad_ignores_the_teacher_magnitude_at_each_pixel(models):
    teacher, students = models
    d = DISTILLERS["lad"](students["resnet18"], teacher, small_config("lad")).eval()
    s_logits, s_taps = random_side(students["resnet18"])
    _, t_taps = random_side(teacher)
    rescaled = {k: v * (0.1 + torch.rand(v.shape[0], 1, *v.shape[2:])) * 5 for k, v in t_taps.items()}
    base = d(s_logits, s_taps, targets_of(d, None, t_taps), None)
    other = d(s_logits, s_taps, targets_of(d, None, rescaled), None)
    for k in base:
        assert 0 < base[k].item() <= 4
        assert other[k].item() == pytest.approx(base[k].item(), rel=1e-5)


def test_kd_is_cirkd_batchmean_over_pixels_and_tends_to_logit_matching(models):
    teacher, students = models
    s = torch.randn(2, 5, 6, 7)
    t = torch.randn(2, 5, 6, 7)
    def flat(x):
        return x.permute(0, 2, 3, 1).reshape(-1, 5)

    kd = DISTILLERS["kd"](students["resnet18"], teacher, small_config("kd"))
    reference = F.kl_div(F.log_softmax(flat(s), 1), F.softmax(flat(t), 1), reduction="batchmean")
    assert kd(s, {}, {"logits": t}, None)["kd"].item() == pytest.approx(reference.item(), rel=1e-5)
    # Hinton's limit: T^2 KL -> mean over pixels of |zs - zt|^2 / (2C) for zero-mean logits
    s, t = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
    hot = DISTILLERS["kd"](students["resnet18"], teacher, small_config("kd", distill_options="kd.temperature=500"))
    limit = (s - t).pow(2).sum(1).mean() / (2 * 5)
    assert hot(s, {}, {"logits": t}, None)["kd"].item() == pytest.approx(limit.item(), rel=1e-2)


@pytest.mark.parametrize("classes", [3, 7, 30])
def test_aicsd_similarity_is_the_kl_between_class_maps_for_any_number_of_classes(classes):
    logits = torch.randn(2, classes, 5, 4)
    kl = inter_class_kl(logits)
    p = logits.flatten(2).softmax(2)
    for b in range(2):
        for i in range(classes):
            for j in range(classes):
                expected = (p[b, i] * (p[b, i].log() - p[b, j].log())).sum()
                assert kl[b, i, j].item() == pytest.approx(expected.item(), abs=1e-5)
    assert torch.allclose(kl.diagonal(dim1=1, dim2=2), torch.zeros(2, classes), atol=1e-6)


def test_aicsd_adaptive_weighting_moves_weight_from_the_teacher_to_cross_entropy(models):
    teacher, students = models
    d = DISTILLERS["aicsd"](students["resnet18"], teacher, small_config("aicsd"))
    assert d.ce_weight(0.0) == 0.0 and d.ce_weight(1.0) == 1.0
    start, middle, end = (d.loss_weights(p) for p in (0.0, 0.5, 1.0))
    assert start["aicsd.kd"] == 10.0 and middle["aicsd.kd"] == 5.0 and end["aicsd.kd"] == 0.0
    assert start["aicsd.ics"] == 0.0 and end["aicsd.ics"] == 1.0
    fixed = DISTILLERS["aicsd"](students["resnet18"], teacher, small_config("aicsd", distill_options="aicsd.alw=false"))
    assert fixed.ce_weight(0.0) == 1.0 and fixed.loss_weights(0.0) == {"aicsd.kd": 10.0, "aicsd.ics": 1.0}


def test_overhaul_margin_is_the_mean_of_the_negative_part_of_the_bn_output():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 8.0]))
    margin = margin_from_batchnorm(bn).flatten()
    assert margin[0].item() == pytest.approx(-math.sqrt(2 / math.pi), rel=1e-5)
    # N(-1, 4) sampled: the mean of its negative values
    torch.manual_seed(0)
    x = torch.randn(2_000_000) * 2 - 1
    assert margin[1].item() == pytest.approx(x[x < 0].mean().item(), rel=1e-2)
    # almost never negative: the code's fallback of -3 sigma
    assert margin[2].item() == pytest.approx(-3.0)


def test_cirkd_minibatch_loss_is_the_pairwise_kl_of_the_paper_and_pooling_bounds_the_maps():
    torch.manual_seed(3)
    s, t = torch.randn(3, 4, 3, 5), torch.randn(3, 6, 3, 5)
    sn, tn = F.normalize(s, dim=1).flatten(2), F.normalize(t, dim=1).flatten(2)
    expected = 0.0
    for i in range(3):
        for j in range(3):
            log_p_s = F.log_softmax(sn[i].t() @ sn[j] / 0.1, dim=1)
            p_t = F.softmax(tn[i].t() @ tn[j] / 0.1, dim=1)
            expected += F.kl_div(log_p_s, p_t, reduction="batchmean").item()
    assert minibatch_pixel_loss(s, t, 0.1, 0).item() == pytest.approx(expected / 9, rel=1e-5)
    pooled = pool_to_pixels(torch.randn(1, 2, 129, 129), 1024)
    assert pooled.shape[-1] * pooled.shape[-2] <= 1024


def test_cirkd_memory_holds_the_classes_it_has_seen(models):
    teacher, students = models
    d = DISTILLERS["cirkd"](students["resnet18"], teacher, small_config("cirkd")).train()
    s_logits, s_taps = random_side(students["resnet18"])
    t_logits, t_taps = random_side(teacher)
    labels = torch.full((2, 32, 32), 255)
    labels[0, :, :16], labels[1, :, 16:] = 1, 3
    d(s_logits, s_taps, targets_of(d, t_logits, t_taps), labels)
    seen = (d.pixel_filled > 0).nonzero().flatten().tolist()
    assert seen == [1, 3] and (d.region_filled > 0).nonzero().flatten().tolist() == [1, 3]
    entries = d.pixel_queue[1, : d.pixel_filled[1]]
    assert torch.allclose(entries.norm(dim=1), torch.ones(len(entries)), atol=1e-5)
    before = (d.pixel_filled.clone(), d.pixel_queue.clone())
    d.eval()(s_logits, s_taps, targets_of(d, t_logits, t_taps), labels)  # evaluation does not enqueue
    assert torch.equal(d.pixel_filled, before[0]) and torch.equal(d.pixel_queue, before[1])


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_state_survives_a_save_and_load(models, method):
    teacher, students = models
    torch.manual_seed(4)
    config = small_config(method)
    first = DISTILLERS[method](students["resnet18"], teacher, config).train()
    s_logits, s_taps = random_side(students["resnet18"])
    t_logits, t_taps = random_side(teacher)
    labels = random_labels()
    first(s_logits, s_taps, targets_of(first, t_logits, t_taps), labels)  # queues, BN statistics
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    torch.manual_seed(5)
    second = DISTILLERS[method](students["resnet18"], teacher, config)
    second.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    first.eval(), second.eval()
    outputs = []
    for d in (first, second):
        torch.manual_seed(6)
        outputs.append(d(s_logits, s_taps, targets_of(d, t_logits, t_taps), labels))
    assert outputs[0].keys() == outputs[1].keys()
    for k in outputs[0]:
        assert outputs[0][k].item() == pytest.approx(outputs[1][k].item(), rel=1e-6, abs=1e-9)


def test_default_weights_per_method_and_data_set():
    assert parse_weights("at") == (("at", 1e4),)
    assert parse_weights("attnfd,kd:0.5") == (("attnfd", 1.0), ("kd", 0.5))
    with pytest.raises(ValueError, match="twice"):
        parse_weights("kd,kd:2")
    for dataset, memory in (("voc", 0.01), ("cityscapes", 0.1)):
        config = TrainConfig.from_dict({**SMALL, "distill": "cirkd", "dataset": dataset, "distill_options": None})
        student = build_model(config)
        teacher = build_model(dataclasses.replace(config, backbone="resnet18"))
        weights = DISTILLERS["cirkd"](student, teacher, config).loss_weights(0.0)
        assert weights == {"cirkd.kd": 1.0, "cirkd.minibatch_pixel": 1.0, "cirkd.memory_pixel": memory, "cirkd.memory_region": memory}


def test_alpha_defaults_to_attnfd_value_only_when_attnfd_is_distilled():
    city = {"dataset": "cityscapes", "role": "student"}
    assert TrainConfig.from_dict({**city, "distill": "attnfd"}).alpha == 10.0
    assert TrainConfig.from_dict({**city, "distill": "attnfd:1,kd:0.5"}).alpha == 10.0
    assert TrainConfig.from_dict({**city, "distill": "kd"}).alpha == 1.0
    assert TrainConfig.from_dict({**city, "distill": "kd", "alpha": 3.0}).alpha == 3.0
    # a resolved config keeps its alpha when resolved again (resume, Ray trial configs)
    again = TrainConfig.from_dict(TrainConfig.from_dict({**city, "distill": "kd"}).to_dict())
    assert again.alpha == 1.0


def test_distill_options_override_defaults_and_bad_ones_fail_in_one_line(models):
    teacher, students = models
    config = small_config("kd", distill_options="kd.temperature=4,at.layers=encoder+decoder")
    assert DISTILLERS["kd"](students["resnet18"], teacher, config).temperature == 4.0
    assert DISTILLERS["at"](students["resnet18"], teacher, config).layers == ("encoder", "decoder")
    for bad, message in (
        ("kd.temp=4", "no option 'temp'"),
        ("kx.temperature=4", "unknown method"),
        ("kd.temperature=hot", "must be a number"),
        ("kd.temperature=0", "> 0"),
        ("at.layers=encoder+head", "must name"),
        ("kd.temperature", "method.option=value"),
    ):
        with pytest.raises(ConfigError, match=message):
            small_config("kd", distill_options=bad)


def test_every_method_has_documented_defaults():
    assert set(declared_methods()) == set(DISTILLERS)
    for name, entry in declared_methods().items():
        assert entry.weight > 0 and entry.reduction and entry.source, name
        module_doc = __import__(DISTILLERS[name].__module__, fromlist=["_"]).__doc__
        assert "differ" in module_doc or "No public code" in module_doc or "no public code" in module_doc.lower(), name


# --- through the trainer -------------------------------------------------------------------

TINY = {
    "dataset": "shapes", "image_size": 32, "train_size": 4, "val_size": 2, "batch_size": 2, "head_channels": 16,
    "teacher_backbone": "resnet18", "teacher_epochs": 1, "epochs": 1, "device": "cpu", "amp": False, "lr": 0.02,
}


@pytest.fixture(scope="session")
def teacher_checkpoint(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("teacher")
    config = teacher_config(TrainConfig.from_dict({**TINY, "distill": "attnfd", "cache_dir": str(folder)}))
    fit(dataclasses.replace(config, out_dir=str(folder)))
    return str(folder / ckpt.MODEL_FILE)


@pytest.mark.parametrize("spec", METHOD_NAMES + ["attnfd:1,kd:0.5"])
def test_one_epoch_through_the_trainer(tmp_path, teacher_checkpoint, spec):
    backbone = "mobilenet_v2" if METHOD_NAMES.index(spec.split(":")[0]) % 2 else "resnet18"
    config = TrainConfig.from_dict({
        **TINY, "distill": spec, "backbone": backbone, "teacher_checkpoint": teacher_checkpoint,
        "cache_dir": str(tmp_path / "cache"), "out_dir": str(tmp_path / "run"),
        "distill_options": "cirkd.pixel_memory=500,cirkd.region_memory=50",
    })
    row = fit(config)
    names = [n for n, _ in parse_weights(spec)]
    logged = [k for k in row if k.startswith("loss_") and k != "loss_ce"]
    assert logged and all(any(k.startswith(f"loss_{n}") for n in names) for k in logged)
    assert all(math.isfinite(row[k]) for k in logged) and math.isfinite(row["miou"])

    # the distillers' state (connectors, queues, margins) comes back from the checkpoint
    state = ckpt.load(tmp_path / "run" / "checkpoint")
    run = Run(config)
    run.load_state_dict(state)
    for key, value in state["distillers"].items():
        assert torch.equal(run.distillers.state_dict()[key], value), key
    if names == ["cirkd"]:
        assert state["distillers"]["cirkd.pixel_filled"].sum() > 0

    # the step adds up as documented: c(t) * CE + alpha * sum_m w_m * sum_p c_p(t) * L_p
    images, labels = next(iter(run.train_loader))
    # BN on the batch's statistics: after two steps of two images its running statistics can
    # send an eval-mode forward to 1e23 and SP's Gram rows to NaN. Dropout off, though the parts
    # and the total come from one graph anyway
    run.model.train()
    for module in run.model.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
    parts = run._step(images, labels, progress=0.25)
    expected = math.prod(d.ce_weight(0.25) for d in run.distillers.values()) * parts["ce"]
    for name, distiller in run.distillers.items():
        weights = distiller.loss_weights(0.25)
        for part in [p for p in parts if p == name or p.startswith(name + ".")]:
            expected = expected + run.config.alpha * run.weights[name] * weights.get(part, 1.0) * parts[part]
    assert parts["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
