"""The Fig. 1 picture grid from a tiny distilled run: teacher and student, raw and refined."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import with_teacher
from PIL import Image
from plotly.colors import sample_colorscale, unlabel_rgb

from attnfd.attention_maps import HEADER, KINDS, SWATCH
from attnfd.attention_maps_cli import main
from attnfd.data.shapes import PALETTE
from attnfd.trainer import fit

SIZE = 40


@pytest.fixture(scope="module")
def run(module_tmp):
    root = module_tmp
    config = {
        "dataset": "shapes", "image_size": 32, "head_channels": 16, "train_size": 2, "val_size": 3, "epochs": 1, "teacher_epochs": 1,
        "batch_size": 2, "teacher_backbone": "resnet18", "backbone": "resnet18", "workers": 0, "device": "cpu",
        "cache_dir": str(root / "cache"), "out_dir": str(root / "student"), "distill": "attnfd", "layers": "encoder,decoder",
        "teacher_gate": "learned",
    }
    fit(with_teacher(config))
    return root


def test_grid_shows_raw_and_refined_maps_of_both_sides_and_what_the_colours_mean(run, capsys):
    out = run / "maps.png"
    main(["--checkpoint", str(run / "student" / "model.pt"), "--images", "3", "--size", str(SIZE), "--out", str(out)])
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    grid = np.asarray(Image.open(out).convert("RGB")).astype(int)
    columns = 2 + len(KINDS) * 2  # image, labels, then 4 pictures per tap for encoder and decoder
    # the pictures, with the key under them
    assert grid.shape[1:] == (columns * SIZE, 3) and grid.shape[0] > HEADER + 3 * SIZE

    def cell(row: int, col: int) -> np.ndarray:
        return grid[HEADER + row * SIZE: HEADER + (row + 1) * SIZE, col * SIZE: (col + 1) * SIZE]

    for row in range(3):
        for col in range(columns):
            assert cell(row, col).std() > 0, f"picture {row},{col} is flat"
        for tap in range(2):
            teacher_raw, teacher_refined, student_raw, student_refined = (cell(row, 2 + 4 * tap + k) for k in range(4))
            # the gates change the maps (a gate that did nothing would leave them equal)
            assert np.abs(teacher_raw - teacher_refined).mean() > 1
            assert np.abs(student_raw - student_refined).mean() > 1
    # different images give different pictures
    assert np.abs(cell(0, 0) - cell(1, 0)).mean() > 1

    # the key under the pictures: the maps' colour bar, and the label pictures' colours
    key = {tuple(int(v) for v in c): n for c, n in zip(*np.unique(grid[HEADER + 3 * SIZE:].reshape(-1, 3), axis=0,
                                                                 return_counts=True))}
    viridis = [tuple(int(v) for v in unlabel_rgb(c)) for c in sample_colorscale("Viridis", list(np.linspace(0, 1, 256)))]
    assert viridis[0] in key and viridis[-1] in key and sum(c in key for c in viridis) >= 100
    # a swatch for each class the label pictures show, none for the others (black is the text's colour too)
    labels = grid[HEADER: HEADER + 3 * SIZE, SIZE: 2 * SIZE].reshape(-1, 3)
    shown = {tuple(int(v) for v in c) for c in np.unique(labels, axis=0)} & set(PALETTE) - {(0, 0, 0)}
    assert len(shown) >= 2
    assert {c for c in PALETTE if c != (0, 0, 0) and key.get(c, 0) >= (SWATCH - 2) ** 2} == shown


def test_a_model_without_attnfd_is_refused_in_one_line(run, capsys):
    teacher = next((run / "cache" / "teachers").glob("*/model.pt"))
    with pytest.raises(SystemExit) as stop:
        main(["--checkpoint", str(teacher)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("attnfd: error: ") and "is not an AttnFD student" in err and err.count("\n") == 1

