"""The science guard: on a small copy of the embedded benchmark, AttnFD must beat the plain
student by a margin, and each way of quietly breaking distillation must lose that margin.

A teacher (a ResNet-18 trained three times longer than the student) is trained once per
test run. The plain and the distilled student share the seed, so they start from the same
weights and see the same batches; on the CPU every number here is deterministic. The breaks
are the bugs that would leave a run training and its loss falling while distillation no
longer does anything: the distiller's own modules left out of the optimiser, alpha ignored,
and the teacher's targets taken from the student itself.
"""

import tempfile

import pytest
from torch import nn

from attnfd import checkpoint as ckpt
from attnfd import trainer
from attnfd.config import TrainConfig
from attnfd.model_files import saved_miou
from attnfd.teachers import ensure_teacher

GUARD = dict(
    dataset="shapes", image_size=32, head_channels=32, train_size=1024, val_size=128, batch_size=16, lr=0.1,
    epochs=2, teacher_epochs=6, backbone="resnet18", teacher_backbone="resnet18",
    # plain momentum, as when the figures below were measured (the guard holds with Nesterov too)
    nesterov=False,
)
# measured: the plain student is still at background only (val mIoU 0.198), the teacher at
# 0.356, AttnFD at alpha 1 reaches 0.338 and at alpha 0.05 0.199; so the guard asks for a
# gain of 5 points at alpha 1 and less than that at a twentieth of it (alpha must matter)
ALPHA, TINY_ALPHA = 1.0, 0.05
MARGIN = 0.05


@pytest.fixture(scope="module")
def guard_cache(module_tmp):
    cache = str(module_tmp / "teacher")
    teacher = ensure_teacher(TrainConfig.from_dict({**GUARD, "cache_dir": cache, "distill": "attnfd"}), quiet=True)
    assert saved_miou(teacher) > 0.3  # well past the plain student, which is at background only
    return cache


def run(cache: str, **changes) -> tuple[float, dict]:
    """The final val mIoU, and how far each distiller tensor moved from its initial value."""
    with tempfile.TemporaryDirectory(prefix="guard-") as out_dir:
        config = TrainConfig.from_dict({**GUARD, "cache_dir": cache, "out_dir": out_dir, **changes})
        moved = {}
        if config.distilling:
            start = {k: v.clone() for k, v in trainer.Run(config).distillers.state_dict().items()}
        miou = trainer.fit(config)["miou"]
        if config.distilling:
            end = ckpt.load(f"{config.out_dir}/checkpoint/{ckpt.STATE_FILE}")["distillers"]
            moved = {k: float((end[k].float() - v.float()).abs().max()) for k, v in start.items()
                     if v.is_floating_point()}
    return miou, moved


@pytest.fixture(scope="module")
def plain(guard_cache):
    return run(guard_cache)[0]


def guard_holds(cache: str, plain: float) -> bool:
    """Distillation at alpha 1 gains the margin, with its own modules (CBAMs, connectors)
    trained; at a twentieth of that alpha it does not gain the margin."""
    miou, moved = run(cache, distill="attnfd", alpha=ALPHA)
    if miou - plain < MARGIN:
        return False
    # measured: on this small benchmark a student distilled through frozen random connectors
    # gains as much (val mIoU 0.350 against 0.338), so the margin alone cannot tell that bug;
    # the guard also asks that every weight of the distiller's modules moved
    weights = {k: d for k, d in moved.items() if k.endswith("weight")}
    if not weights or min(weights.values()) == 0:
        return False
    return run(cache, distill="attnfd", alpha=TINY_ALPHA)[0] - plain < MARGIN


def test_distillation_beats_the_plain_student(guard_cache, plain):
    assert guard_holds(guard_cache, plain)


def _distillers_not_optimised(monkeypatch):
    original = trainer._optimizer
    monkeypatch.setattr(trainer, "_optimizer", lambda config, model, distillers, exclude=frozenset():
                        original(config, model, nn.ModuleDict(), exclude))


def _alpha_ignored(monkeypatch):
    original = trainer.alpha_at
    monkeypatch.setattr(trainer, "alpha_at", lambda alpha, *args: original(1.0, *args))


class _StudentAsTeacher(nn.Module):
    """The student's own outputs where the teacher's belong (its tap gates stay the teacher's)."""

    def __init__(self, student, gates):
        super().__init__()
        self.student = [student]  # not a submodule: it must not be frozen with the teacher
        self.gates = gates

    def forward(self, images):
        return self.student[0](images)


def _targets_from_the_student(monkeypatch):
    original = trainer.Run.__init__

    def init(self, config):
        original(self, config)
        if self.teacher is not None:
            self.teacher = _StudentAsTeacher(self.model, self.teacher.gates)

    monkeypatch.setattr(trainer.Run, "__init__", init)


@pytest.mark.parametrize("break_it", [_distillers_not_optimised, _alpha_ignored, _targets_from_the_student],
                         ids=["distillers-not-optimised", "alpha-ignored", "targets-from-the-student"])
def test_the_guard_fails_when_distillation_is_broken(guard_cache, plain, monkeypatch, break_it):
    break_it(monkeypatch)
    assert not guard_holds(guard_cache, plain)
