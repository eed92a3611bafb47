"""One training step's loss from its parts:

    total = prod_m c_m(t) * CE  +  sum_m sum_p  alpha(t) * w_m * c_mp(t) * L_mp

``L_mp`` is part ``p`` as method ``m``'s forward returned it, ``c_mp(t)`` its weight inside the
method (``loss_weights``; 1 where it names none), ``w_m`` the method's weight, ``alpha(t)`` the
global scale at this point of training and ``c_m(t)`` the method's weight on the cross-entropy
(``ce_weight``; 1 unless the method reweights it, as AICSD's adaptive loss weighting does).
Where each number comes from is in ``attnfd.distill.defaults``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from torch import Tensor

from attnfd.distill.base import Distiller


def combine(ce: Tensor, distillers: Mapping[str, Distiller], weights: Mapping[str, float],
            outputs: Mapping[str, Mapping[str, Tensor]], alpha: float, progress: float) -> tuple[Tensor, dict[str, Tensor]]:
    """The total loss and its parts (``ce`` and every method's parts, by name); ``outputs[m]`` is
    what method ``m``'s forward returned. The terms are added in the methods' order and each
    method's parts in its order, so a run's loss is reproducible to the bit."""
    total = math.prod(d.ce_weight(progress) for d in distillers.values()) * ce
    parts = {"ce": ce}
    for name, distiller in distillers.items():
        part_weights = distiller.loss_weights(progress)
        for part, value in outputs[name].items():
            parts[part] = value
            total = total + alpha * weights[name] * part_weights.get(part, 1.0) * value
    return total, parts
