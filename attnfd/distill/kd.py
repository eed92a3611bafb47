"""KD (Hinton et al., 2015) per pixel: the student's class distribution at each pixel imitates
the teacher's, softened by a temperature T.

    L_kd = T^2 * mean over B*H*W pixels of KL(softmax(t/T) || softmax(s/T))

(KL summed over classes). This is the convention of CIRKD's ``losses/kd.py`` (``batchmean``
over the (B*H*W, C) flattened logits, times T^2), whose segmentation recipe is T=1 and weight 1.

Where the public code differs:

- CIRKD (winycg/CIRKD, ``train_cirkd.py``: ``s_outputs[0]``) applies it to the logits at
  feature-map resolution, before upsampling; here the
  logits are the ones the trainer hands over, at input size (as the AICSD/AttnFD code does).
  Upsampling is bilinear, so the two differ only at class boundaries.
- AICSD's variant (AmirMansurian/AICSD ``distiller.py``, ``pi_loss``) divides by B*C*H*W
  (PyTorch ``KLDivLoss`` 'mean'): its ``pi_lambda 10`` corresponds to 10/C here.
- torchdistill (``torchdistill/losses/mid_level.py`` ``KDLoss``) and mmrazor
  (``mmrazor/models/losses/kl_divergence.py``) use ``batchmean`` over images only (sum over
  pixels): their weights are H*W times smaller than here.

As T grows, T^2 * KL tends to the mean squared difference of the (zero-mean) logits divided
by 2C, Hinton's logit-matching limit.
"""

from __future__ import annotations

import torch

from attnfd.distill import register_distiller
from attnfd.distill.base import Distiller, Option
from attnfd.distill.common import pixel_kl

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 1.0,
    "reduction": "T^2 * KL(teacher||student) summed over classes, mean over B*H*W pixels (input size)",
    "source": "CIRKD losses/kd.py, --lambda-kd 1, T=1",
    "options": {"temperature": 1.0},
    "positive": ("temperature",),
    "table_row": 1,
}


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return pixel_kl(student_logits, teacher_logits, temperature).mean() * temperature**2


@register_distiller
class KD(Distiller):
    name = "kd"
    temperature = Option(float)

    def forward(self, logits, taps, teacher, labels):
        return {"kd": kd_loss(logits, teacher["logits"], self.temperature)}
