"""Attention-guided feature distillation (AttnFD) for semantic segmentation."""

from attnfd.config import ConfigError, TrainConfig

__version__ = "0.1.0"


def fit(config, report=None):
    from attnfd.trainer import fit as _fit

    return _fit(config, report)


__all__ = ["ConfigError", "TrainConfig", "fit", "__version__"]
