"""SP, similarity-preserving distillation (Tung & Mori, 2019): the student keeps the
teacher's pairwise similarities between the images of a batch.

Per tap, each image's map is flattened, the B x B Gram matrix is row-normalised, and

    L_sp = ||G_s - G_t||_F^2 / B^2

with the Gram rows L2-normalised, as in RepDistiller's ``distiller_zoo/SP.py`` (copied into
ICKD as ``Cifar100/distiller_zoo/SP.py``), whose CIFAR weight is 3000 (``-b 3000``). No
segmentation recipe from the AttnFD authors' group was found; the default tap is the ASPP
output after its ReLU (as CIRKD's feature methods use). The Gram rows are normalised, so the
loss is invariant to a positive scale of either side's features, and the maps of the two
sides may differ in channels and size. With a batch of one image the loss is always 0 (the
only similarity is the image's own).

Where the public code differs: torchdistill's ``SPKDLoss`` (``torchdistill/losses/mid_level.py``)
normalises the Gram rows with ``normalize(G, 1)``, i.e. p=1, an L1 norm, so its rows sum to
one in absolute value where RepDistiller's and these have unit length; its
``||G_t - G_s||^2 / B^2`` is otherwise the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnfd.distill import register_distiller
from attnfd.distill.per_tap import PerTapDistiller

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 3000.0,
    "reduction": "per tap: squared Frobenius distance of row-normalised B x B Gram matrices / B^2",
    "source": "Tung & Mori; RepDistiller/ICKD SP.py (L2 rows; torchdistill SPKDLoss uses L1), beta 3000 "
    "(classification: no segmentation recipe published)",
    "options": {"layers": ("encoder",), "relu": True},
    "table_row": 3,
}


def batch_similarity(f: torch.Tensor) -> torch.Tensor:
    flat = f.float().flatten(1)
    return F.normalize(flat @ flat.t(), dim=1, eps=1e-12)


def sp_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    b = student.shape[0]
    return (batch_similarity(student) - batch_similarity(teacher)).pow(2).sum() / (b * b)


@register_distiller
class SP(PerTapDistiller):
    name = "sp"
    # B x B Gram matrices compare whatever the two maps' sizes
    match_size = False
    pair_loss = staticmethod(sp_loss)
