"""The total loss of a step: cross-entropy and every method's parts, weighted as
``attnfd.distill.total`` says, to the bit."""

from __future__ import annotations

import torch

from attnfd.config import TrainConfig
from attnfd.distill import DISTILLERS
from attnfd.distill.total import combine


def test_combine_is_the_hand_written_formula_for_two_methods():
    # AICSD reweights CE and its parts over training, DIST weights its parts; "dist.extra" is
    # a part its loss_weights does not name (weight 1)
    config = TrainConfig.from_dict({"distill": "aicsd,dist", "distill_options": "aicsd.kd=7,dist.inter=0.5,dist.intra=3"})
    distillers = {name: DISTILLERS[name](None, None, config) for name in ("aicsd", "dist")}
    weights = {"aicsd": 0.6, "dist": 2.5}
    torch.manual_seed(0)
    ce, kd, ics, inter, intra, extra = torch.rand(6).unbind()
    outputs = {"aicsd": {"aicsd.kd": kd, "aicsd.ics": ics},
               "dist": {"dist.inter": inter, "dist.intra": intra, "dist.extra": extra}}
    alpha, progress = 1.7, 0.3

    total, parts = combine(ce, distillers, weights, outputs, alpha, progress)

    by_hand = (progress * 1.0 * ce
               + alpha * 0.6 * ((1 - progress) * 7.0) * kd
               + alpha * 0.6 * (progress * 1.0) * ics
               + alpha * 2.5 * 0.5 * inter
               + alpha * 2.5 * 3.0 * intra
               + alpha * 2.5 * 1.0 * extra)
    assert torch.equal(total, by_hand), (total.item(), by_hand.item())
    assert list(parts) == ["ce", "aicsd.kd", "aicsd.ics", "dist.inter", "dist.intra", "dist.extra"]
    assert all(parts[k] is v for k, v in {"ce": ce, **outputs["aicsd"], **outputs["dist"]}.items())


def test_combine_without_a_reweighting_method_keeps_the_cross_entropy_as_it_is():
    config = TrainConfig.from_dict({"distill": "kd"})
    ce, kd = torch.tensor(0.75), torch.tensor(0.125)
    total, parts = combine(ce, {"kd": DISTILLERS["kd"](None, None, config)}, {"kd": 2.0}, {"kd": {"kd": kd}}, 0.5, 0.9)
    assert torch.equal(total, ce + 0.5 * 2.0 * 1.0 * kd)
    assert list(parts) == ["ce", "kd"]
