"""Distillation methods, chosen by name (``--distill attnfd`` or ``attnfd:1,kd:0.5``)."""

from __future__ import annotations

from attnfd.distill.base import Distiller

DISTILLERS: dict[str, type[Distiller]] = {}


def register_distiller(cls: type[Distiller]) -> type[Distiller]:
    DISTILLERS[cls.name] = cls
    return cls


def parse_distill_spec(spec: str) -> list[tuple[str, float]]:
    """``"attnfd"`` -> [("attnfd", 1.0)]; ``"attnfd:1,kd:0.5"`` -> two methods with weights."""
    methods = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        if name not in DISTILLERS:
            raise ValueError(f"unknown distillation method {name!r}; choose from {', '.join(sorted(DISTILLERS))}")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"bad weight {weight!r} for distillation method {name}") from None
        if w < 0:
            raise ValueError(f"weight of distillation method {name} must be >= 0, got {w}")
        methods.append((name, w))
    if not methods:
        raise ValueError(f"no distillation method in {spec!r}")
    return methods


def build_distillers(spec: str, student, teacher, config) -> dict[str, tuple[Distiller, float]]:
    return {name: (DISTILLERS[name](student, teacher, config), w) for name, w in parse_distill_spec(spec)}


# importing the methods registers them
from attnfd.distill import attnfd as _attnfd  # noqa: F401
