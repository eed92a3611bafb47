"""The config's sections: teacher cache keys made from them, and fields that must say theirs."""

from __future__ import annotations

import dataclasses

import pytest

from attnfd.config import TrainConfig, content_key, teacher_config
from attnfd.config_sections import check_sections, field_roles, setting


def teacher_name(values: dict) -> str:
    teacher = teacher_config(TrainConfig.from_dict({**values, "cache_dir": "/unused"}))
    return f"{teacher.dataset}-{teacher.backbone}-{content_key(teacher)}"


# the cache folders of teachers trained before the config had sections: each must still be found
@pytest.mark.parametrize("values, name", [
    # the shapes recipe's lr was 0.1 and its momentum plain when these were cached; its
    # default teacher since lr 0.05 and Nesterov (the last), and its lr-0.05 one before that
    ({"distill": "attnfd"}, "shapes-resnet50-99451263f124bc26"),
    ({"distill": "attnfd", "nesterov": False}, "shapes-resnet50-ea0e5cf6f68f10b2"),
    ({"distill": "attnfd", "lr": 0.1, "nesterov": False}, "shapes-resnet50-caa70acd75811f98"),
    ({"distill": "attnfd", "recipe": "official", "lr": 0.1}, "shapes-resnet50-dfa35a7ea907fa2c"),
    ({"distill": "attnfd", "multi_grid": True, "lr": 0.1, "nesterov": False}, "shapes-resnet50-648c85ba252ee52d"),
    ({"distill": "kd", "teacher_backbone": "resnet101", "teacher_epochs": 3, "teacher_seed": 2, "threads": 3, "lr": 0.1,
      "nesterov": False},
     "shapes-resnet101-7cb25ae2318f7282"),
    ({"distill": "attnfd", "dataset": "voc", "data_root": "/nonexistent/voc"}, "voc-resnet101-d6d07a3d45ba031b"),
    ({"distill": "attnfd", "dataset": "voc", "data_root": "/x", "voc_train_split": "train", "recipe": "official"},
     "voc-resnet101-9e047d99c8ea75f8"),
    ({"distill": "attnfd", "dataset": "cityscapes", "data_root": "/x", "lr_batch_reference": 6, "eval_every": 3},
     "cityscapes-resnet101-731257efbc9b8ebb"),
    ({"distill": "at", "teacher_backbone": "mobilenet_v2", "mobilenet_dilation": "last_block", "fixed_padding": True,
      "amp": False, "device": "cpu", "lr": 0.1, "nesterov": False}, "shapes-mobilenet_v2-f347032b1611fc9d"),
])
def test_teacher_keys_are_those_of_the_teachers_already_cached(values, name):
    assert teacher_name(values) == name


def test_the_teacher_is_the_students_teacher_sections():
    student = TrainConfig.from_dict({"distill": "attnfd", "teacher_backbone": "resnet34", "teacher_epochs": 2,
                                     "teacher_seed": 5, "seed": 1, "threads": 3, "workers": 1, "lr": 0.5,
                                     "image_size": 40, "out_dir": "/tmp/student", "alpha": 3.0})
    teacher = teacher_config(student)
    assert (teacher.role, teacher.backbone, teacher.epochs, teacher.seed) == ("teacher", "resnet34", 2, 5)
    assert (teacher.lr, teacher.image_size, teacher.workers, teacher.tap_gates) == (0.5, 40, 1, True)
    # its own folder and threads (a study gives a teacher the whole node), no distillation values
    assert (teacher.out_dir, teacher.threads, teacher.distill) == (None, None, None)
    assert teacher.alpha != 3.0


def test_a_field_without_a_section_is_refused():
    @dataclasses.dataclass
    class Grown(TrainConfig):
        new_option: int = 0

    with pytest.raises(TypeError, match="new_option has no section"):
        check_sections(Grown)


def test_a_field_says_its_teacher_rules_only_where_they_apply():
    @dataclasses.dataclass
    class Misplaced(TrainConfig):
        new_option: int = setting(0, "distillation", if_set=True)

    with pytest.raises(TypeError, match="new_option: if_set and teacher_from apply to the teacher's sections"):
        check_sections(Misplaced)


def test_row_roles_are_the_tables_former_lists():
    roles = {name: described["row"] for name, described in field_roles(TrainConfig).items()}
    assert {n for n, r in roles.items() if r == "never"} == {
        "seed", "out_dir", "resume", "cache_dir", "device", "workers", "threads", "teacher_checkpoint", "data_root"}
    assert {n for n, r in roles.items() if r == "when_distilling"} == {
        "layers", "alpha", "alpha_schedule", "alpha_decay_start", "teacher_gate", "norm", "tap_relu",
        "teacher_backbone", "teacher_backbone_weights", "teacher_epochs", "teacher_seed"}
