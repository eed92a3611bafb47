"""Distillation methods, chosen by name (``--distill attnfd`` or ``attnfd:1,kd:0.5``).

Each method is one module here, declaring its defaults (``attnfd.distill.methods``, read
without importing the module, so validating a config imports no torch) and registering its
``Distiller``. The modules (torch) are imported on first use of ``DISTILLERS`` or
``build_distillers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnfd.distill.base import Distiller

_REGISTERED: dict[str, type[Distiller]] = {}


def register_distiller(cls: type[Distiller]) -> type[Distiller]:
    _REGISTERED[cls.name] = cls
    return cls


def _registry() -> dict[str, type[Distiller]]:
    import importlib

    from attnfd.distill.methods import declared_methods

    # importing a method's module registers it
    for name in declared_methods():
        if name not in _REGISTERED:
            importlib.import_module(f"{__name__}.{name}")
            if name not in _REGISTERED:
                raise TypeError(f"{__name__}.{name} declares DEFAULTS but registers no distiller named {name!r}")
    return _REGISTERED


def __getattr__(name: str):
    if name == "DISTILLERS":
        return _registry()
    raise AttributeError(f"module 'attnfd.distill' has no attribute {name!r}")


def build_distillers(config, student, teacher) -> dict[str, tuple[Distiller, float]]:
    """The config's methods (``attnfd.distill.spec.parse_methods``), built, with their weights."""
    from attnfd.distill.spec import parse_methods

    registry = _registry()
    return {m.name: (registry[m.name](student, teacher, config), m.weight) for m in parse_methods(config)}
