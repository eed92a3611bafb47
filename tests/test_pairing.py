"""The same seed gives the same student initialisation, the same batches and the same random
draws of the student in every cell of a study, whichever distiller a cell adds: what lets the
analysis pair rows by seed.

On the VOC layout (whose training augmentation is random) with a teacher in train mode (its
dropout draws) and CIRKD (its sampled pixels): the places where a distiller used to draw from
the student's generator. With the teacher's and distillers' own streams switched off, the
student's draws shift; with the data's and the teacher's, its batches do.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
from conftest import TINY, with_teacher

from attnfd import random_stream, trainer
from attnfd.data.miniature import write_voc

CELLS = {
    "attnfd, teacher in train mode": {"distill": "attnfd", "teacher_mode": "train"},
    # small memories: the sampling is what matters here
    "cirkd": {"distill": "cirkd", "distill_options": "cirkd.pixel_memory=64,cirkd.region_memory=16,"
                                                     "cirkd.pixel_contrast=32,cirkd.region_contrast=8"},
}


def digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def what_the_student_sees(config: dict) -> dict:
    """The student's weights once built, and per training step: the batch, and the state of
    torch's generator when the step starts (what the student's dropout will draw from)."""
    seen = {"steps": []}
    step, init = trainer.Student._step, trainer.Student.__init__
    # the teacher is trained (the first time one is needed) before anything is recorded
    with_teacher(config)

    def recording_init(self, run_config, model, *args):
        if run_config.role == "student":
            seen["student"] = digest(*model.state_dict().values())
        init(self, run_config, model, *args)

    def recording_step(self, images, labels, progress, teacher_outputs):
        if self.config.role == "student":
            seen["steps"].append((digest(images, labels), digest(torch.get_rng_state())))
        return step(self, images, labels, progress, teacher_outputs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer.Student, "__init__", recording_init)
        patch.setattr(trainer.Student, "_step", recording_step)
        trainer.fit(config)
    return seen


@pytest.fixture(scope="module")
def base(module_tmp, teacher_cache):
    root = module_tmp / "voc"
    write_voc(root, train=8, val=2, sizes=[(40, 48), (36, 44)])
    return {**TINY, "dataset": "voc", "data_root": str(root), "cache_dir": teacher_cache, "epochs": 1, "workers": 0,
            "seed": 3, "out_dir": str(module_tmp / "runs" / "run")}


@pytest.fixture(scope="module")
def plain(base):
    """The student alone: what every cell must give it too."""
    return what_the_student_sees({**base, "distill": None, "out_dir": base["out_dir"] + "-plain"})


def test_every_cell_gives_the_student_the_same_start_batches_and_draws(base, plain):
    assert len(plain["steps"]) == 2  # 8 images in batches of 4
    for i, (name, cell) in enumerate(CELLS.items()):
        seen = what_the_student_sees({**base, **cell, "out_dir": f"{base['out_dir']}-{i}"})
        assert seen["student"] == plain["student"], name
        assert [batch for batch, _ in seen["steps"]] == [batch for batch, _ in plain["steps"]], name
        assert [state for _, state in seen["steps"]] == [state for _, state in plain["steps"]], name


def shared_streams(*names: str) -> type:
    """The broken design: the streams ``names`` draw from whatever generator is current (the
    student's, during its step)."""

    class SharedStream(random_stream.RandomStream):
        def __init__(self, seed, name, device, exact=False):
            super().__init__(seed, name, device, exact)
            self.shared = name in names

        def __enter__(self):
            return self if self.shared else super().__enter__()

        def __exit__(self, *exc):
            return None if self.shared else super().__exit__(*exc)

    return SharedStream


def test_without_their_own_stream_a_distiller_shifts_the_students_draws(monkeypatch, base, plain):
    monkeypatch.setattr(trainer, "RandomStream", shared_streams("teacher", "distillers"))
    seen = what_the_student_sees({**base, **CELLS["cirkd"], "out_dir": base["out_dir"] + "-x"})
    # the student's weights are built first, and its batches come from the data's stream ...
    assert seen["student"] == plain["student"]
    assert [b for b, _ in seen["steps"]] == [b for b, _ in plain["steps"]]
    # ... but CIRKD samples its pixels inside the student's step: its dropout's draws shift
    assert [s for _, s in seen["steps"]] != [s for _, s in plain["steps"]]


def test_without_the_datas_own_stream_a_teacher_shifts_the_batches(monkeypatch, base, plain):
    monkeypatch.setattr(trainer, "RandomStream", shared_streams("teacher", "data"))
    seen = what_the_student_sees({**base, **CELLS["attnfd, teacher in train mode"], "out_dir": base["out_dir"] + "-y"})
    assert seen["steps"][1][0] != plain["steps"][1][0]
