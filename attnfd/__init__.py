"""Attention-guided feature distillation (AttnFD) for semantic segmentation.

The package root imports nothing heavy: ``attnfd.analysis`` must work on a machine without
torch or ray, so the training API is loaded on first use.
"""

__version__ = "0.1.0"

_LAZY = {"TrainConfig": "attnfd.config", "ConfigError": "attnfd.errors", "fit": "attnfd.trainer"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnfd' has no attribute {name!r}")


__all__ = ["ConfigError", "TrainConfig", "__version__", "fit"]
