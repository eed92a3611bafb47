import math

import torch

from attnfd.metrics import ConfusionMatrix


def test_metrics_match_a_hand_computed_confusion_matrix():
    labels = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    preds = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(4)
    cm.update(labels, preds)
    # rows true, columns predicted; the two 255 pixels are ignored
    assert cm.matrix.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    m = cm.compute()
    iou = [1 / 3, 2 / 3, 1 / 2]  # class 0: tp 1, fp 1, fn 1; class 1: 2/(2+1); class 2: 1/(1+1)
    assert m["per_class_iou"][:3] == [float(v) for v in torch.tensor(iou, dtype=torch.float64)]
    assert math.isnan(m["per_class_iou"][3])  # absent from labels and predictions
    assert abs(m["miou"] - sum(iou) / 3) < 1e-12
    assert abs(m["pixel_acc"] - 4 / 6) < 1e-12


def test_metrics_accumulate_over_batches():
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    x, y = torch.randint(0, 3, (2, 8, 8)), torch.randint(0, 3, (2, 8, 8))
    a.update(x, y)
    b.update(x[:1], y[:1])
    b.update(x[1:], y[1:])
    assert torch.equal(a.matrix, b.matrix)
