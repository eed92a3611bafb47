"""The official code's numbers in the analysis (best epoch beside the last, labelled as a
selection on val) and the backbone stage taps in the layer ablation and the search."""

from __future__ import annotations

import pytest
from analysis_results_folder import CLASSES, trial, write_study

from attnfd.analysis import analyse, load_study
from attnfd.config import ConfigError
from attnfd.study.protocols import protocol_cells
from attnfd.study.space import LAYER_SUBSETS, SearchSpace


def test_best_epoch_is_reported_next_to_the_last_and_labelled_as_selection_on_val(tmp_path):
    curve = [(0.50, 0.8, None, 1.0), (0.70, 0.9, None, 0.8), (0.60, 0.85, None, 0.7)]
    other = [(0.40, 0.8, None, 1.0), (0.45, 0.8, None, 0.9), (0.55, 0.85, None, 0.8)]
    trials = [trial("t0", curve, seed=0), trial("t1", other, seed=1)]
    write_study(tmp_path, "s", trials, protocol="methods", seeds=2, class_names=CLASSES)
    analysis = analyse(load_study(tmp_path / "s"))
    table = next(t for t in analysis.tables if t.name == "best_epoch")
    assert "selection on val" in " ".join(table.header)
    (row,) = table.body
    # last epochs 60 and 55; best epochs 70 (epoch 2) and 55 (epoch 3)
    assert row[2] == "57.50 ± 3.54" and row[3] == "62.50 ± 10.61" and row[4] == "+5.00" and row[5] == "2,3"
    frame = table.frame.iloc[0]
    assert frame["best_epoch_miou_pct_mean"] == pytest.approx(62.5) and frame["miou_pct_mean"] == pytest.approx(57.5)


def test_stage_taps_enter_the_layer_ablation_and_the_search_only_when_asked():
    default = protocol_cells("layers", ["resnet18"])
    assert [c["layers"] for c in default[1:]] == list(LAYER_SUBSETS) and len(LAYER_SUBSETS) == 7
    wider = protocol_cells("layers", ["resnet18"], taps=("backbone", "encoder", "decoder", "stage3", "stage1"))
    subsets = [c["layers"] for c in wider[1:]]
    assert len(subsets) == 31 and "stage1,stage3,backbone,encoder,decoder" in subsets and "stage3" in subsets
    with pytest.raises(ConfigError, match="must keep the paper's taps"):
        protocol_cells("layers", ["resnet18"], taps=("stage1", "backbone"))
    with pytest.raises(ConfigError, match="unknown tap"):
        SearchSpace(taps=("backbone", "encoder", "decoder", "layer9"))

    class Trial:
        def __init__(self):
            self.choices = {}

        def suggest_float(self, name, low, high, log=False):
            return low

        def suggest_categorical(self, name, choices):
            self.choices[name] = choices
            return choices[0]

    seen = Trial()
    SearchSpace(taps=("backbone", "encoder", "decoder", "stage2"))(seen)
    assert len(seen.choices["layers"]) == 15 and "stage2,backbone" in seen.choices["layers"]
    plain = Trial()
    SearchSpace()(plain)
    assert tuple(plain.choices["layers"]) == LAYER_SUBSETS


def test_layer_table_gets_a_column_for_a_distilled_stage_tap(tmp_path):
    curve = [(0.50, 0.8, None, 1.0)]
    trials = [trial("t0", curve), trial("t1", curve, distill="attnfd", layers="stage3,decoder"),
              trial("t2", curve, distill="attnfd", layers="decoder")]
    write_study(tmp_path, "s", trials, protocol="layers", seeds=1, class_names=CLASSES)
    table = analyse(load_study(tmp_path / "s")).tables[0]
    assert table.header[:5] == ["Student", "Stage3", "Backbone", "Encoder", "Decoder"]
    marks = {tuple(row[1:5]) for row in table.body}
    assert ("✓", "", "", "✓") in marks and ("", "", "", "✓") in marks and ("n/a",) * 4 in marks
