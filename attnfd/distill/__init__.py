"""Distillation methods, chosen by name (``--distill attnfd`` or ``attnfd:1,kd:0.5``).

The methods (torch modules) are imported on first use of ``DISTILLERS`` or
``build_distillers``; a spec is checked against the names in ``attnfd.distill.defaults``, so
validating a config imports no torch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnfd.distill.base import Distiller

_REGISTERED: dict[str, type[Distiller]] = {}


def register_distiller(cls: type[Distiller]) -> type[Distiller]:
    _REGISTERED[cls.name] = cls
    return cls


def _registry() -> dict[str, type[Distiller]]:
    import importlib
    import pkgutil

    # importing a method's module registers it; so a new method is a new module here
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return _REGISTERED


def __getattr__(name: str):
    if name == "DISTILLERS":
        return _registry()
    raise AttributeError(f"module 'attnfd.distill' has no attribute {name!r}")


def parse_distill_spec(spec: str) -> list[tuple[str, float]]:
    """``"attnfd"`` -> [("attnfd", 1.0)]; ``"attnfd:1,kd:0.5"`` -> two methods with weights.
    A method named without a weight gets its default (``attnfd.distill.defaults``)."""
    from attnfd.distill.defaults import METHODS, default_weight

    known = set(METHODS) | set(_REGISTERED)
    methods = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        if name not in known:
            raise ValueError(f"unknown distillation method {name!r}; choose from {', '.join(sorted(known))}")
        try:
            w = float(weight) if weight else default_weight(name)
        except ValueError:
            raise ValueError(f"bad weight {weight!r} for distillation method {name}; give a number >= 0") from None
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"weight of distillation method {name} must be a finite number >= 0, got {weight}")
        if any(name == seen for seen, _ in methods):
            raise ValueError(f"distillation method {name} is named twice in {spec!r}")
        methods.append((name, w))
    if not methods:
        raise ValueError(f"no distillation method in {spec!r}")
    return methods


def build_distillers(spec: str, student, teacher, config) -> dict[str, tuple[Distiller, float]]:
    registry = _registry()
    return {name: (registry[name](student, teacher, config), w) for name, w in parse_distill_spec(spec)}
