"""LAD (Liu et al., WACV 2024): distillation of raw features that keeps only their angular
part. No public code was found; this follows the paper's abstract and its precursor NFD
(normalised feature distillation, arXiv 2207.05256, same authors): the student should not
spend capacity imitating the magnitude of the teacher's responses, only their direction.

Per tap, the student's pre-ReLU map goes through a connector (1x1 conv + BN to the teacher's
channels, needed whenever the channel counts differ); at each pixel both feature vectors are
scaled to unit length and

    L_lad,k = mean over B*H*W of || s/|s| - t/|t| ||^2 = mean of 2 (1 - cos(s, t))

(0 to 4 per tap). This is AttnFD's ``norm=channel`` distance without the CBAM refinement, so
the two compare the effect of attention alone; the default weight is therefore AttnFD's (1)
and the default taps are the same three. The loss is invariant to any positive per-pixel
scale of either side's features.

Where the public code differs: no public code was found for LAD, so there is nothing to
differ from; the choices above are this project's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnfd.distill import register_distiller
from attnfd.distill.per_tap import PerTapDistiller

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 1.0,
    "reduction": "per tap: mean over pixels of the squared distance between unit feature vectors (0..4)",
    "source": "no public code; from the LAD abstract and NFD (arXiv 2207.05256); weight 1 as AttnFD's "
    "on the same 0..4 scale",
    "options": {"layers": ("backbone", "encoder", "decoder")},
    "table_row": 8,
}


def angular_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    s = F.normalize(student.float(), dim=1, eps=1e-12)
    t = F.normalize(teacher.float(), dim=1, eps=1e-12)
    return (s - t).pow(2).sum(dim=1).mean()


@register_distiller
class LAD(PerTapDistiller):
    name = "lad"
    connectors_name = "connectors"
    pair_loss = staticmethod(angular_distance)
