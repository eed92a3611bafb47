"""Default weights and options of every distillation method, per data set, in one place.

How the numbers combine. One training step's loss is (``attnfd.distill.total.combine``)

    total = c(t) * CE  +  alpha(t) * sum_m  w_m * sum_p  c_mp(t) * L_mp

- ``L_mp``: loss part ``p`` of method ``m`` exactly as its module computes it, logged as
  ``loss_<part name>`` (e.g. ``loss_cirkd.memory_pixel``). Its reduction is stated in
  ``METHODS[m].reduction`` below and in the module's docstring.
- ``c_mp``: the weight of a part inside its method: CIRKD's four lambdas, DIST's beta and
  gamma, AICSD's pi/ICS lambdas (scaled over training by its adaptive loss weighting), the
  Overhaul per-tap dividers. Options of this table (``DistillerClass.loss_weights``).
- ``w_m``: the method's weight, given in the spec (``--distill attnfd:1,kd:0.5``) or, when the
  spec gives none, ``METHODS[m].weight``: the lambda of the method's reference code *for the
  reduction stated here*. A weight copied from a paper transfers only if its code reduced the
  loss the same way (see each entry's ``reduction`` and ``source``).
- ``alpha(t)``: ``config.alpha`` under ``config.alpha_schedule``, one global scale. When the
  user leaves it unset it is the AttnFD paper's value for the data set (1 on VOC, 10 on
  Cityscapes, ``PRESETS``) if the spec includes ``attnfd``, and 1 otherwise, so that
  ``--distill attnfd`` is ``CE + alpha * L_attnfd`` as in the paper and ``--distill kd`` runs
  KD at its published weight on every data set.
- ``c(t)``: the cross-entropy weight: 1, except under AICSD's adaptive loss weighting
  (``DistillerClass.ce_weight``; the product over the methods of a spec).

Options are overridden per run with ``config.distill_options``, a comma-separated list of
``method.option=value`` (``--distill-options "kd.temperature=4,cirkd.memory_pixel=0.05"``); tap
lists are joined with ``+`` (``at.layers=encoder+decoder``). Options of methods the spec does
not use are ignored, so one study can fix options for all its methods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from attnfd.errors import ConfigError
from attnfd.names import ALL_TAPS as TAP_NAMES

ANY_DATASET = "*"
# options whose value is a "+"-joined list of taps
TAP_LIST_OPTIONS = ("layers",)
TAP_OPTIONS = ("layer",)
# options that divide or count, so 0 cannot work
POSITIVE_OPTIONS = (
    "temperature", "contrast_temperature", "contrast_kd_temperature", "tau", "p", "grid",
    "pixel_memory", "region_memory", "pixel_contrast", "region_contrast", "pixel_update",
)


@dataclass(frozen=True)
class MethodDefaults:
    weight: float
    reduction: str
    source: str
    # value, or {dataset: value, "*": value} where the recipe differs between data sets
    options: dict[str, Any] = field(default_factory=dict)


METHODS: dict[str, MethodDefaults] = {
    "attnfd": MethodDefaults(
        weight=1.0,
        reduction="per tap: norm=channel, mean over pixels of the squared distance of unit vectors (0..4); "
        "norm=tensor, summed squared distance / B",
        source="paper eq. 6 (its weight is alpha: 1 VOC, 10 Cityscapes); options are config fields",
    ),
    "kd": MethodDefaults(
        weight=1.0,
        reduction="T^2 * KL(teacher||student) summed over classes, mean over B*H*W pixels (input size)",
        source="CIRKD losses/kd.py, --lambda-kd 1, T=1",
        options={"temperature": 1.0},
    ),
    "at": MethodDefaults(
        weight=1e4,
        reduction="per tap: mean over B*H*W of the squared difference of L2-normalised attention maps",
        source="CIRKD losses/at.py, scripts train_at.sh --lambda-at 10000 (ASPP output, post-ReLU)",
        options={"layers": "encoder", "relu": True, "p": 2.0},
    ),
    "sp": MethodDefaults(
        weight=3000.0,
        reduction="per tap: squared Frobenius distance of row-normalised B x B Gram matrices / B^2",
        source="Tung & Mori; RepDistiller/ICKD SP.py (L2 rows; torchdistill SPKDLoss uses L1), beta 3000 "
        "(classification: no segmentation recipe published)",
        options={"layers": "encoder", "relu": True},
    ),
    "ickd": MethodDefaults(
        weight=2.5,
        reduction="per tap: sum of squared differences of row-normalised C x C channel Gram matrices / (C*B), "
        "averaged over grid cells",
        source="ICKD Cifar100/distiller_zoo/ICKD.py; -b 2.5 from the README and scripts/run_cifar_distill.sh "
        "(train_student.sh now says -b 4); no segmentation training code released",
        options={"layers": "backbone", "relu": True, "grid": 1},
    ),
    "overhaul": MethodDefaults(
        weight=1e-5,
        reduction="per tap: partial L2 summed over all elements / B; part weights 1/divider "
        "(stage1 8, stage2 4, stage3 2, backbone 1, encoder 1, decoder 16)",
        source="clovaai overhaul-distillation Segmentation: loss_distill.sum() / B * 1e-5, dividers [8, 4, 2, 1, 1, 16]",
        options={"layers": "stage1+stage2+stage3+backbone+encoder+decoder"},
    ),
    "cirkd": MethodDefaults(
        weight=1.0,
        reduction="kd: as kd; minibatch_pixel: row-wise KL of pixel-similarity distributions, mean over rows, "
        "mean over B^2 image pairs; memory_*: KL of anchor-to-memory similarity distributions, mean over anchors",
        source="CIRKD train_cirkd.py at 05a2753; VOC memory lambdas 0.01 from train_scripts/.../voc and CIRKD#8",
        options={
            "kd": 1.0,
            "minibatch_pixel": 1.0,
            "memory_pixel": {"voc": 0.01, ANY_DATASET: 0.1},
            "memory_region": {"voc": 0.01, ANY_DATASET: 0.1},
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
    ),
    "dist": MethodDefaults(
        weight=1.0,
        reduction="inter: 1 - mean over pixels of the Pearson correlation over classes; intra: 1 - mean over "
        "classes of the Pearson correlation over all pixels of the batch; both times tau^2",
        source="hunto/DIST_KD segmentation/losses/dist_kd.py, beta=gamma=1, tau=1, --lambda-kd 1",
        options={"inter": 1.0, "intra": 1.0, "tau": 1.0},
    ),
    "lad": MethodDefaults(
        weight=1.0,
        reduction="per tap: mean over pixels of the squared distance between unit feature vectors (0..4)",
        source="no public code; from the LAD abstract and NFD (arXiv 2207.05256); weight 1 as AttnFD's "
        "on the same 0..4 scale",
        options={"layers": "backbone+encoder+decoder"},
    ),
    "aicsd": MethodDefaults(
        weight=1.0,
        reduction="kd: KL(teacher||student) mean over B*C*H*W (PyTorch KLDivLoss 'mean', as the AICSD code); "
        "ics: mean over B*C*C of the squared difference of row-normalised inter-class KL matrices",
        source="AICSD distiller.py and README (--pi_lambda 10); no ICS lambda published (1 here); "
        "ALW alpha = training progress",
        options={"kd": 10.0, "ics": 1.0, "temperature": 1.0, "alw": True},
    ),
    "pfs": MethodDefaults(
        weight=1.0,
        reduction="similarity: mean over B*N*N of the squared difference of pixel cosine-similarity maps; "
        "prediction: mean over pixels of KL(teacher||student) weighted by its own detached value / its mean",
        source="no public code; from the PFS paper's abstract (arXiv 1910.14226); no weights published (1, 1)",
        options={"similarity": 1.0, "prediction": 1.0, "layer": "encoder", "relu": True, "temperature": 1.0,
                 "max_pixels": 4096},
    ),
}


def default_weight(method: str) -> float:
    return METHODS[method].weight


def spec_methods(spec: str) -> list[str]:
    """The method names of a distill spec, without validating them."""
    return [item.partition(":")[0].strip() for item in spec.split(",") if item.strip()]


def default_alpha(spec: str, preset_alpha: float) -> float:
    """alpha when the user left it unset: the data set's AttnFD value if the spec includes
    attnfd, 1 otherwise (every other method's weight is its own published lambda)."""
    return preset_alpha if "attnfd" in spec_methods(spec) else 1.0


def _convert(method: str, key: str, text: str, default: Any) -> Any:
    where = f"distill option {method}.{key}"
    if key in TAP_LIST_OPTIONS or key in TAP_OPTIONS:
        names = [s.strip() for s in text.split("+") if s.strip()]
        bad = [n for n in names if n not in TAP_NAMES]
        if not names or bad or (key in TAP_OPTIONS and len(names) != 1) or len(set(names)) != len(names):
            many = "one" if key in TAP_OPTIONS else "'+'-joined"
            raise ConfigError(f"{where} must name {many} of {', '.join(TAP_NAMES)}, got {text!r}")
        return "+".join(names)
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where} must be true or false, got {text!r}")
    try:
        value = int(text) if isinstance(default, int) else float(text)
    except ValueError:
        raise ConfigError(f"{where} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {text!r}")
    if value < 0 or (key in POSITIVE_OPTIONS and value == 0):
        raise ConfigError(f"{where} must be {'> 0' if key in POSITIVE_OPTIONS else '>= 0'}, got {text!r}")
    return value


def parse_options(text: str | None) -> dict[str, dict[str, Any]]:
    """``"kd.temperature=4,at.layers=encoder+decoder"`` -> {"kd": {"temperature": 4.0}, ...},
    typed like the defaults; an unknown method, option or bad value raises ConfigError."""
    parsed: dict[str, dict[str, Any]] = {}
    for item in (s.strip() for s in (text or "").split(",")):
        if not item:
            continue
        name, eq, value = item.partition("=")
        method, dot, key = name.strip().partition(".")
        if not eq or not dot or not key:
            raise ConfigError(f"distill option {item!r} must look like method.option=value")
        if method not in METHODS:
            raise ConfigError(f"distill option {item!r}: unknown method {method!r}; choose from {', '.join(sorted(METHODS))}")
        options = METHODS[method].options
        if key not in options:
            known = ", ".join(sorted(options)) or "none"
            raise ConfigError(f"distill option {item!r}: {method} has no option {key!r} (options: {known})")
        default = _for_dataset(options[key], ANY_DATASET)
        parsed.setdefault(method, {})[key] = _convert(method, key, value.strip(), default)
    return parsed


def _for_dataset(value: Any, dataset: str) -> Any:
    if isinstance(value, dict):
        return value.get(dataset, value[ANY_DATASET])
    return value


def method_options(method: str, config) -> dict[str, Any]:
    """The options a method runs with: this table's values for the config's data set, then
    the config's ``distill_options`` for that method."""
    resolved = {k: _for_dataset(v, config.dataset) for k, v in METHODS[method].options.items()}
    resolved.update(parse_options(getattr(config, "distill_options", None)).get(method, {}))
    return resolved


def taps_option(value: str) -> tuple[str, ...]:
    return tuple(value.split("+"))
