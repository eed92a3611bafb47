"""One training step's loss from its parts:

    total = prod_m c_m(t) * CE  +  sum_m sum_p  alpha(t) * w_m * c_mp(t) * L_mp

- ``L_mp``: loss part ``p`` of method ``m`` exactly as its forward returned it, logged as
  ``loss_<part name>`` (e.g. ``loss_cirkd.memory_pixel``). Its reduction is stated in the
  method's ``DEFAULTS["reduction"]`` and in its module's docstring.
- ``c_mp(t)``: the weight of a part inside its method (``loss_weights``; 1 where it names
  none): CIRKD's four lambdas, DIST's beta and gamma, AICSD's pi/ICS lambdas (scaled over
  training by its adaptive loss weighting), the Overhaul per-tap dividers. Most are options.
- ``w_m``: the method's weight, given in the spec (``--distill attnfd:1,kd:0.5``) or, when the
  spec gives none, its ``DEFAULTS["weight"]``: the lambda of the method's reference code *for
  the reduction stated there*. A weight copied from a paper transfers only if its code reduced
  the loss the same way (see each method's ``reduction`` and ``source``).
- ``alpha(t)``: ``config.alpha`` under ``config.alpha_schedule``, one global scale. When the
  user leaves it unset it is the AttnFD paper's value for the data set (1 on VOC, 10 on
  Cityscapes, the data set's preset) if the spec includes ``attnfd``, and 1 otherwise, so
  that ``--distill attnfd`` is ``CE + alpha * L_attnfd`` as in the paper and ``--distill kd``
  runs KD at its published weight on every data set (``attnfd.distill.spec.default_alpha``).
- ``c_m(t)``: the method's weight on the cross-entropy (``ce_weight``; 1 unless the method
  reweights it, as AICSD's adaptive loss weighting does).

Options are overridden per run with ``config.distill_options``
(``--distill-options "kd.temperature=4,cirkd.memory_pixel=0.05"``; ``attnfd.distill.spec``).
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
