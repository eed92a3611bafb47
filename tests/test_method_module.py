"""Adding a distillation method is adding its module: a throwaway one, written into a folder
of the attnfd.distill package at run time, is known to config validation (without torch),
to the search space and to the trainer, with no other file touched."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import with_teacher

import attnfd.distill
from attnfd.config import ConfigError, TrainConfig

ROOT = Path(__file__).resolve().parents[1]

TOY = '''"""Toy: the student's logits pulled towards the teacher's, for a test."""

from __future__ import annotations

from attnfd.distill import register_distiller
from attnfd.distill.base import Distiller, Option

DEFAULTS = {
    "weight": 2.0,
    "reduction": "mean over B*C*H*W of the absolute difference of the logits, times scale",
    "source": "tests/test_method_module.py",
    "options": {"scale": {"voc": 3.0, "*": 0.5}, "layer": "encoder", "squared": False},
    "positive": ("scale",),
}


@register_distiller
class Toy(Distiller):
    name = "toy"
    scale = Option(float)

    def forward(self, logits, taps, teacher, labels):
        gap = (logits - teacher["logits"]).abs()
        return {"toy.logits": self.scale * (gap.pow(2) if self.options.squared else gap).mean()}
'''


@pytest.fixture
def toy_folder(tmp_path, monkeypatch):
    """A folder holding toy.py, searched for methods as part of the attnfd.distill package."""
    folder = tmp_path / "methods"
    folder.mkdir()
    (folder / "toy.py").write_text(TOY)
    monkeypatch.setattr(attnfd.distill, "__path__", [*attnfd.distill.__path__, str(folder)])
    yield folder
    sys.modules.pop("attnfd.distill.toy", None)
    attnfd.distill._REGISTERED.pop("toy", None)


def test_a_new_module_is_a_method_config_validation_knows_without_torch(toy_folder):
    config = TrainConfig.from_dict({"distill": "attnfd,toy", "distill_options": "toy.squared=true"})
    from attnfd.distill.spec import parse_methods

    toy = parse_methods(config)[1]
    assert (toy.name, toy.weight) == ("toy", 2.0)
    assert (toy.options.scale, toy.options.layer, toy.options.squared) == (0.5, "encoder", True)
    voc = parse_methods(TrainConfig.from_dict({"dataset": "voc", "distill": "toy:1"}))[0]
    assert (voc.weight, voc.options.scale) == (1.0, 3.0)
    for bad, message in (("toy.scale=0", "> 0"), ("toy.layer=head", "must name one"), ("toy.size=2", "no option 'size'")):
        with pytest.raises(ConfigError, match=message):
            TrainConfig.from_dict({"distill": "toy", "distill_options": bad})

    probe = (
        "import sys, json; import attnfd.distill; attnfd.distill.__path__.append(sys.argv[1]);"
        "from attnfd.config import TrainConfig; from attnfd.study.space import SearchSpace;"
        "c = TrainConfig.from_dict({'distill': 'toy', 'distill_options': 'toy.scale=2'});"
        "s = SearchSpace(extra=('toy.scale', 'method'));"
        "print(json.dumps([c.alpha, 'toy' in s.methods, s.paper_point(1.0)['toy.scale'], 'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(toy_folder)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout) == [1.0, True, 0.5, False]


def test_a_new_module_trains_through_the_trainer(toy_folder, tiny):
    from attnfd.distill import DISTILLERS
    from attnfd.trainer import fit

    assert DISTILLERS["toy"].__module__ == "attnfd.distill.toy"
    values = {**tiny, "distill": "toy", "distill_options": "toy.scale=4", "epochs": 1}
    with_teacher(values)
    row = fit(values)
    assert row["loss_toy.logits"] > 0
