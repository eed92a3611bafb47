"""PFS, pixel-wise feature similarities (Shan, 2019, arXiv 1910.14226). No public code was
found; this follows the paper's abstract: distil (1) the similarity of every pixel to every
other pixel of high-level features, which encodes the scene's spatial structure, and (2) a
pixel-level soft-prediction imitation weighted by each pixel's knowledge gap, so the student
mimics the teacher most where it lags behind.

- ``similarity``: on one tap (default: the ASPP output after its ReLU), average-pooled to at
  most ``max_pixels`` positions, each pixel's feature vector is L2-normalised and the N x N
  cosine-similarity map S = F^T F is formed per image; the loss is the mean over B*N*N of
  (S_s - S_t)^2. Channels need not match, so there is no connector.
- ``prediction``: with g the per-pixel KL(teacher || student) at temperature T, the loss is
  mean(w * g) with w = g / mean(g) (w detached): pixels with a larger gap weigh more, and
  the weights average to 1 over the batch. It is 0 when the predictions agree.

Both part weights are 1 (none published).

Where the public code differs: no public code was found, so nothing here is checked against
one; the tap, the pooling and the gap weighting are this project's reading of the abstract.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnfd.distill import register_distiller
from attnfd.distill.base import Distiller, Option
from attnfd.distill.common import activate, pixel_kl, pool_to_pixels, resize_to

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 1.0,
    "reduction": "similarity: mean over B*N*N of the squared difference of pixel cosine-similarity maps; "
    "prediction: mean over pixels of KL(teacher||student) weighted by its own detached value / its mean",
    "source": "no public code; from the PFS paper's abstract (arXiv 1910.14226); no weights published (1, 1)",
    "options": {"similarity": 1.0, "prediction": 1.0, "layer": "encoder", "relu": True, "temperature": 1.0,
                "max_pixels": 4096},
    "positive": ("temperature",),
    "table_row": 10,
}


def pixel_similarity(f: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, N) cosine similarities between the N = H*W pixels."""
    flat = F.normalize(f.float().flatten(2), dim=1, eps=1e-12)
    return torch.bmm(flat.transpose(1, 2), flat)


def weighted_imitation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    gap = pixel_kl(student_logits, teacher_logits, temperature)
    weight = gap.detach() / gap.detach().mean().clamp_min(1e-12)
    return (weight * gap).mean()


@register_distiller
class PFS(Distiller):
    name = "pfs"
    layer = Option(str)
    relu = Option(bool)
    max_pixels = Option(int)
    temperature = Option(float)

    def teacher_targets(self, logits, taps):
        feature = pool_to_pixels(activate(taps[self.layer], self.relu).float(), self.max_pixels)
        return {"logits": logits, "feature": feature}

    def forward(self, logits, taps, teacher, labels):
        target = teacher["feature"]
        feature = resize_to(pool_to_pixels(activate(taps[self.layer], self.relu), self.max_pixels), target.shape[-2:])
        return {
            "pfs.similarity": (pixel_similarity(feature) - pixel_similarity(target)).pow(2).mean(),
            "pfs.prediction": weighted_imitation(logits, teacher["logits"], self.temperature),
        }

    def loss_weights(self, progress: float) -> dict[str, float]:
        return {"pfs.similarity": float(self.options.similarity), "pfs.prediction": float(self.options.prediction)}
