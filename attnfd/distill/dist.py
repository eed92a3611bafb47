"""DIST, knowledge distillation from a stronger teacher (Huang et al., NeurIPS 2022), on the
class predictions at every pixel.

The logits are reshaped to (B*H*W, C) and turned into probabilities (softmax at tau; the
segmentation code uses no temperature, i.e. tau=1). With Pearson's correlation rho:

    inter = tau^2 * (1 - mean over pixels of rho(y_s[n, :], y_t[n, :]))      (over classes)
    intra = tau^2 * (1 - mean over classes of rho(y_s[:, c], y_t[:, c]))    (over all pixels)

and the loss is beta * inter + gamma * intra with beta = gamma = 1 (``loss_weights``), method
weight 1 (``--lambda-kd 1``), as in hunto/DIST_KD ``segmentation/losses/dist_kd.py``. Each part
is in [0, 2] and 0 when the student's probabilities are the teacher's.

Where the public code differs: hunto/DIST_KD ``segmentation/train_kd.py`` applies the loss to
the logits before upsampling and to the auxiliary head's (x0.4); here it gets the input-size
logits and there is no auxiliary head. mmrazor's and
torchdistill's ``DISTLoss`` have a temperature and are oriented for (N, C) classification.
"""

from __future__ import annotations

import torch

from attnfd.distill import register_distiller
from attnfd.distill.base import Distiller, Option

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 1.0,
    "reduction": "inter: 1 - mean over pixels of the Pearson correlation over classes; intra: 1 - mean over "
    "classes of the Pearson correlation over all pixels of the batch; both times tau^2",
    "source": "hunto/DIST_KD segmentation/losses/dist_kd.py, beta=gamma=1, tau=1, --lambda-kd 1",
    "options": {"inter": 1.0, "intra": 1.0, "tau": 1.0},
    "positive": ("tau",),
    "table_row": 6,
}


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def class_probabilities(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, C)."""
    c = logits.shape[1]
    return (logits.float() / tau).softmax(dim=1).permute(0, 2, 3, 1).reshape(-1, c)


@register_distiller
class DIST(Distiller):
    name = "dist"
    tau = Option(float)

    def forward(self, logits, taps, teacher, labels):
        y_s = class_probabilities(logits, self.tau)
        y_t = class_probabilities(teacher["logits"], self.tau)
        scale = self.tau**2
        return {
            "dist.inter": scale * (1 - pearson_rows(y_s, y_t).mean()),
            "dist.intra": scale * (1 - pearson_rows(y_s.t(), y_t.t()).mean()),
        }

    def loss_weights(self, progress: float) -> dict[str, float]:
        return {"dist.inter": float(self.options.inter), "dist.intra": float(self.options.intra)}
