"""AICSD, adaptive inter-class similarity distillation (Mansourian et al., 2023).

Two parts on the logits (input size) and a schedule:

- ``ics`` (inter-class similarity): for each image and class, the class's logits over all
  H*W positions become a spatial distribution P_c = softmax(logits_c / T) over the flattened
  map. The C x C matrix M[i, j] = KL(P_i || P_j) has its rows L2-normalised, and the loss is
  the mean over B*C*C of (M_s - M_t)^2. It is computed for any number of classes at once
  (M = sum_x P_i log P_i - P log P^T), not for a hard-coded 21.
- ``kd`` (the code's ``pi_loss``): pixel KD with PyTorch ``KLDivLoss`` 'mean' reduction, i.e.
  KL(teacher || student) summed and divided by B*C*H*W, so the README's ``--pi_lambda 10``
  copies over as it is (this part's default weight).
- adaptive loss weighting (ALW): with a = training progress in [0, 1] (the code's
  epoch / 120), ``total = a * (CE + lambda_ics * ics) + (1 - a) * lambda_kd * kd``: the
  teacher's pixel-wise targets dominate early and fade out, cross-entropy takes over.
  ``alw=false`` keeps CE at 1 and both parts at their lambdas.

Where the public code differs (AmirMansurian/AICSD, ``distiller.py`` ``lo_loss``; methods.md):

- it reshapes to (B, C, H*W) but then applies the softmax to the 4-D tensor, over H only (the
  reshape is discarded);
- ``KLDivLoss(batchmean)(p_i, p_j)`` gets probabilities where it expects log-probabilities as
  its first argument;
- it loops over a hard-coded 21 classes and computes only i <= j, writing the value into both
  [i, j] and [j, i]; so both entries hold KL(P_j || P_i) (as coded), where here M[i, j] =
  KL(P_i || P_j) and M[j, i] = KL(P_j || P_i) differ;
- ``batchmean`` sums over the batch and the positions and divides by B, so there is one
  batch-averaged C x C matrix before the row normalisation; here each image has its own
  matrix, normalised and compared per image;
- the squared difference's mean is divided by B once more (``.mean() / b``);
- ALW exists only as commented code (``train_kd.py``), and that version drops the pairwise
  loss ``pa_loss``.

Here the README's intent (softmax over the whole map, a true KL, per image) is implemented.
No ICS lambda was published; 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnfd.distill import register_distiller
from attnfd.distill.base import Distiller, Option

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 1.0,
    "reduction": "kd: KL(teacher||student) mean over B*C*H*W (PyTorch KLDivLoss 'mean', as the AICSD code); "
    "ics: mean over B*C*C of the squared difference of row-normalised inter-class KL matrices",
    "source": "AICSD distiller.py and README (--pi_lambda 10); no ICS lambda published (1 here); "
    "ALW alpha = training progress",
    "options": {"kd": 10.0, "ics": 1.0, "temperature": 1.0, "alw": True},
    "positive": ("temperature",),
    "table_row": 9,
}


def inter_class_kl(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) with [b, i, j] = KL(P_i || P_j) of the classes' spatial
    distributions in image b."""
    with torch.autocast(logits.device.type, enabled=False):
        log_p = F.log_softmax(logits.float().flatten(2) / temperature, dim=2)
        p = log_p.exp()
        self_term = (p * log_p).sum(dim=2)
        kl = self_term[:, :, None] - torch.bmm(p, log_p.transpose(1, 2))
    return kl.clamp_min(0.0)


def similarity_matrix(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return F.normalize(inter_class_kl(logits, temperature), dim=2, eps=1e-12)


@register_distiller
class AICSD(Distiller):
    name = "aicsd"
    temperature = Option(float)
    alw = Option(bool)

    def teacher_targets(self, logits, taps):
        return {"logits": logits, "similarity": similarity_matrix(logits, self.temperature)}

    def forward(self, logits, taps, teacher, labels):
        t = self.temperature
        log_s = F.log_softmax(logits.float() / t, dim=1)
        log_t = F.log_softmax(teacher["logits"].float() / t, dim=1)
        return {
            # KLDivLoss 'mean': the sum over B*C*H*W elements divided by their number
            "aicsd.kd": F.kl_div(log_s, log_t, log_target=True, reduction="sum") / log_s.numel(),
            "aicsd.ics": (similarity_matrix(logits, t) - teacher["similarity"]).pow(2).mean(),
        }

    def _shift(self, progress: float) -> float:
        return min(max(progress, 0.0), 1.0)

    def loss_weights(self, progress: float) -> dict[str, float]:
        kd, ics = float(self.options.kd), float(self.options.ics)
        if not self.alw:
            return {"aicsd.kd": kd, "aicsd.ics": ics}
        a = self._shift(progress)
        return {"aicsd.kd": (1.0 - a) * kd, "aicsd.ics": a * ics}

    def ce_weight(self, progress: float) -> float:
        return self._shift(progress) if self.alw else 1.0
