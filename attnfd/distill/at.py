"""AT, attention transfer (Zagoruyko & Komodakis, 2017), on feature taps.

The attention map of a feature map f is its channel mean of |f|^p (p=2), flattened and
L2-normalised per image; the loss per tap is

    L_at = mean over B*H*W of (a_s - a_t)^2

which is CIRKD's ``losses/at.py`` (and mmrazor's), with CIRKD's weight 10000 on the feature
after ASPP (post-ReLU, hence ``relu=True`` and ``layers=encoder`` by default). The maps are
invariant to a positive scale of either side's features.

Where the public code differs:

- the AT paper's form (torchdistill ``torchdistill/losses/mid_level.py`` ``ATLoss``, mode
  ``paper``) sums over channels and takes the L2 norm of the difference per image (not
  squared), summed over images / B, with weight 1000;
- AICSD (AmirMansurian/AICSD ``distiller.py``, commented lines) normalises the attention
  map along H only (a bug relative to the paper) on the decoder's pre-ReLU feature.

Neither is reproduced. When the two maps' sizes differ, the student's features
are resized to the teacher's first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnfd.distill import register_distiller
from attnfd.distill.base import Option
from attnfd.distill.per_tap import PerTapDistiller

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 1e4,
    "reduction": "per tap: mean over B*H*W of the squared difference of L2-normalised attention maps",
    "source": "CIRKD losses/at.py, scripts train_at.sh --lambda-at 10000 (ASPP output, post-ReLU)",
    "options": {"layers": ("encoder",), "relu": True, "p": 2.0},
    "positive": ("p",),
    "table_row": 2,
}


def attention_map(f: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W), unit L2 norm per image."""
    a = f.float().abs().pow(p).mean(dim=1)
    return F.normalize(a.flatten(1), dim=1, eps=1e-12)


@register_distiller
class AT(PerTapDistiller):
    name = "at"
    p = Option(float)

    def pair_loss(self, student, teacher):
        return (attention_map(student, self.p) - attention_map(teacher, self.p)).pow(2).mean()
