"""CIRKD, cross-image relational KD (Yang et al., CVPR 2022), as in its code at 05a2753.

Four parts, on the logits and on one feature tap (default: the ASPP output after its ReLU,
``layer=encoder``, the map CIRKD calls ``x_feat_after_aspp``):

- ``kd``: pixel KD at temperature T (as ``kd``), lambda 1.
- ``minibatch_pixel``: both sides' features L2-normalised per pixel; for every ordered pair
  of images (i, j) of the batch, each pixel of i gets a distribution over the pixels of j,
  softmax(sim / 0.1); the loss is KL(teacher || student) per row, mean over rows, mean over
  the B^2 pairs. Lambda 1.
- ``memory_pixel`` and ``memory_region``: the student's feature goes through a projection head
  (1x1 conv-BN-ReLU-1x1 conv to the teacher's channels). Per class, a queue keeps teacher
  pixel embeddings (``pixel_memory`` = 20000 per class, ``pixel_update`` = 16 random pixels
  per class and image enqueued each step) and region embeddings (``region_memory`` = 2000,
  one per class and image: the mean embedding of its pixels). Each step samples
  ``pixel_contrast // K + 1`` pixel and ``region_contrast // K + 1`` region entries per class;
  every labelled pixel (the anchors) gets a distribution over them, softmax(sim / 0.1), and
  the loss is KL(teacher || student) at ``contrast_kd_temperature``, mean over anchors.
  Lambdas 0.1 on Cityscapes and 0.01 on VOC (``DEFAULTS`` below; CIRKD#8).

Memory: the pairwise maps are (H*W)^2 per image pair, so the features are average-pooled to
at most ``max_pixels`` (4096) positions first (CIRKD's own pooling option halves them); with
a 513 crop at output stride 16 (33 x 33) or Cityscapes' 512 x 1024 (32 x 64) no pooling is
needed, and a batch of 8 needs well under 24 GB. The queues take K * (20000 + 2000) * D
floats (430 MB for VOC at D=256) and are saved with every checkpoint.

Where the public code differs (winycg/CIRKD at 05a2753, ``losses/cirkd_memory.py``):

- the memory update of a class enqueues ``this_feat[:, perm[:K]]``: ``perm`` is a permutation
  of that class's pixel count, but ``this_feat`` holds every pixel of the image, so the entries
  are the image's first positions, not pixels of the class. Only about 8% of its queue entries
  belong to their class; here every entry is a pixel of its class (the method's intent), so
  this implementation fixes that bug rather than copying it;
- the queues start as random unit vectors and are sampled from as if full; here each queue
  records how many entries it holds and samples only those (uniformly, with replacement), so
  early steps are not pulled towards noise.

The teacher features are enqueued before the loss is computed, as there. The projection head
is optimised at the head learning rate (the code puts it in the single SGD group).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnfd.distill import register_distiller
from attnfd.distill.base import Distiller, Option
from attnfd.distill.common import activate, pool_to_pixels, resize_to, zero_like_graph
from attnfd.distill.kd import kd_loss
from attnfd.metrics import IGNORE_INDEX

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 1.0,
    "reduction": "kd: as kd; minibatch_pixel: row-wise KL of pixel-similarity distributions, mean over rows, "
    "mean over B^2 image pairs; memory_*: KL of anchor-to-memory similarity distributions, mean over anchors",
    "source": "CIRKD train_cirkd.py at 05a2753; VOC memory lambdas 0.01 from train_scripts/.../voc and CIRKD#8",
    "options": {
        "kd": 1.0,
        "minibatch_pixel": 1.0,
        "memory_pixel": {"voc": 0.01, "*": 0.1},
        "memory_region": {"voc": 0.01, "*": 0.1},
        "layer": "encoder",
        "relu": True,
        "temperature": 1.0,
        "contrast_temperature": 0.1,
        "contrast_kd_temperature": 1.0,
        "pixel_memory": 20000,
        "region_memory": 2000,
        "pixel_contrast": 4096,
        "region_contrast": 1024,
        "pixel_update": 16,
        "max_pixels": 4096,
    },
    "positive": ("temperature", "contrast_temperature", "contrast_kd_temperature", "pixel_memory", "region_memory",
                 "pixel_contrast", "region_contrast", "pixel_update"),
    "table_row": 7,
}

PARTS = ("kd", "minibatch_pixel", "memory_pixel", "memory_region")


def minibatch_pixel_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float, max_pixels: int) -> torch.Tensor:
    s = F.normalize(pool_to_pixels(student.float(), max_pixels), dim=1).flatten(2)
    t = F.normalize(pool_to_pixels(teacher.float(), max_pixels), dim=1).flatten(2)
    b, n = s.shape[0], s.shape[2]
    # every pixel of every image as a column, so one product gives image i against all j
    s_all = s.transpose(0, 1).reshape(s.shape[1], b * n)
    t_all = t.transpose(0, 1).reshape(t.shape[1], b * n)
    total = s.new_zeros(())
    for i in range(b):
        log_s = F.log_softmax((s[i].t() @ s_all).view(n, b, n) / tau, dim=-1)
        log_t = F.log_softmax((t[i].t() @ t_all).view(n, b, n) / tau, dim=-1)
        total = total + F.kl_div(log_s, log_t, log_target=True, reduction="sum") / n
    return total / (b * b)


def similarity_kd(s_logits: torch.Tensor, t_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    log_s = F.log_softmax(s_logits / temperature, dim=1)
    log_t = F.log_softmax(t_logits / temperature, dim=1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="batchmean") * temperature**2


@register_distiller
class CIRKD(Distiller):
    name = "cirkd"
    layer = Option(str)
    relu = Option(bool)

    def __init__(self, student: nn.Module, teacher: nn.Module, config):
        super().__init__(student, teacher, config)
        o = self.options
        self.num_classes = config.num_classes
        s_ch, dim = student.tap_channels[self.layer], teacher.tap_channels[self.layer]
        self.project = nn.Sequential(
            nn.Conv2d(s_ch, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1, bias=False)
        )
        k = self.num_classes
        self.pixel_per_class = int(o.pixel_contrast) // k + 1
        self.region_per_class = int(o.region_contrast) // k + 1
        for kind, size in (("pixel", int(o.pixel_memory)), ("region", int(o.region_memory))):
            self.register_buffer(f"{kind}_queue", torch.zeros(k, size, dim))
            self.register_buffer(f"{kind}_ptr", torch.zeros(k, dtype=torch.long))
            self.register_buffer(f"{kind}_filled", torch.zeros(k, dtype=torch.long))

    def teacher_targets(self, logits, taps):
        return {"logits": logits, "feature": activate(taps[self.layer], self.relu)}

    def forward(self, logits, taps, teacher, labels):
        o = self.options
        t_feat = teacher["feature"].float()
        s_feat = resize_to(activate(taps[self.layer], self.relu), t_feat.shape[-2:])
        parts = {
            "cirkd.kd": kd_loss(logits, teacher["logits"], float(o.temperature)),
            "cirkd.minibatch_pixel": minibatch_pixel_loss(
                s_feat, t_feat, float(o.contrast_temperature), int(o.max_pixels)
            ),
        }
        s_emb = F.normalize(self.project(s_feat).float(), dim=1)
        t_emb = F.normalize(t_feat, dim=1)
        small = F.interpolate(labels[:, None].float(), size=t_emb.shape[-2:], mode="nearest")[:, 0].long()
        if self.training:
            self._enqueue(t_emb, small)
        valid = ((small != IGNORE_INDEX) & (small >= 0) & (small < self.num_classes)).flatten()
        dim = t_emb.shape[1]
        s_anchor = s_emb.permute(0, 2, 3, 1).reshape(-1, dim)[valid]
        t_anchor = t_emb.permute(0, 2, 3, 1).reshape(-1, dim)[valid]
        for kind, per_class in (("pixel", self.pixel_per_class), ("region", self.region_per_class)):
            bank = self._sample(kind, per_class)
            if bank is None or s_anchor.shape[0] == 0:
                parts[f"cirkd.memory_{kind}"] = zero_like_graph(s_emb)
                continue
            tau = float(o.contrast_temperature)
            parts[f"cirkd.memory_{kind}"] = similarity_kd(
                s_anchor @ bank.t() / tau, t_anchor @ bank.t() / tau, float(o.contrast_kd_temperature)
            )
        return parts

    def loss_weights(self, progress: float) -> dict[str, float]:
        return {f"cirkd.{p}": float(getattr(self.options, p)) for p in PARTS}

    def _sample(self, kind: str, per_class: int) -> torch.Tensor | None:
        queue, filled = getattr(self, f"{kind}_queue"), getattr(self, f"{kind}_filled")
        present = filled > 0
        if not bool(present.any()):
            return None
        k = queue.shape[0]
        index = (torch.rand(k, per_class, device=queue.device) * filled[:, None]).long()
        bank = queue[torch.arange(k, device=queue.device)[:, None], index]
        return bank[present].reshape(-1, queue.shape[2])

    @torch.no_grad()
    def _enqueue(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        b, dim = embeddings.shape[:2]
        flat = embeddings.permute(0, 2, 3, 1).reshape(b, -1, dim)
        flat_labels = labels.reshape(b, -1)
        update = int(self.options.pixel_update)
        for i in range(b):
            for c in torch.unique(flat_labels[i]).tolist():
                if c < 0 or c >= self.num_classes:
                    continue
                members = (flat_labels[i] == c).nonzero().squeeze(1)
                region = F.normalize(flat[i, members].mean(dim=0), dim=0)
                self._push("region", c, region[None])
                chosen = members[torch.randperm(members.numel(), device=members.device)[:update]]
                self._push("pixel", c, flat[i, chosen])

    def _push(self, kind: str, c: int, rows: torch.Tensor) -> None:
        queue, ptr, filled = (getattr(self, f"{kind}_{n}") for n in ("queue", "ptr", "filled"))
        size = queue.shape[1]
        rows = rows[-size:]
        n = rows.shape[0]
        positions = (ptr[c] + torch.arange(n, device=queue.device)) % size
        queue[c, positions] = rows.to(queue.dtype)
        ptr[c] = (ptr[c] + n) % size
        filled[c] = torch.clamp(filled[c] + n, max=size)
