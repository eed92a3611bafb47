"""Distillation methods, chosen by name (``--distill attnfd`` or ``attnfd:1,kd:0.5``)."""

from __future__ import annotations

from attnfd.distill.base import Distiller

DISTILLERS: dict[str, type[Distiller]] = {}


def register_distiller(cls: type[Distiller]) -> type[Distiller]:
    DISTILLERS[cls.name] = cls
    return cls


def parse_distill_spec(spec: str) -> list[tuple[str, float]]:
    """``"attnfd"`` -> [("attnfd", 1.0)]; ``"attnfd:1,kd:0.5"`` -> two methods with weights.
    A method named without a weight gets its default (``attnfd.distill.defaults``)."""
    from attnfd.distill.defaults import default_weight

    methods = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        if name not in DISTILLERS:
            raise ValueError(f"unknown distillation method {name!r}; choose from {', '.join(sorted(DISTILLERS))}")
        try:
            w = float(weight) if weight else default_weight(name)
        except ValueError:
            raise ValueError(f"bad weight {weight!r} for distillation method {name}") from None
        if w < 0:
            raise ValueError(f"weight of distillation method {name} must be >= 0, got {w}")
        if any(name == seen for seen, _ in methods):
            raise ValueError(f"distillation method {name} is named twice in {spec!r}")
        methods.append((name, w))
    if not methods:
        raise ValueError(f"no distillation method in {spec!r}")
    return methods


def build_distillers(spec: str, student, teacher, config) -> dict[str, tuple[Distiller, float]]:
    return {name: (DISTILLERS[name](student, teacher, config), w) for name, w in parse_distill_spec(spec)}


# importing the methods registers them
from attnfd.distill import attnfd as _attnfd  # noqa: E402,F401
from attnfd.distill import aicsd as _aicsd  # noqa: E402,F401
from attnfd.distill import at as _at  # noqa: E402,F401
from attnfd.distill import cirkd as _cirkd  # noqa: E402,F401
from attnfd.distill import dist as _dist  # noqa: E402,F401
from attnfd.distill import ickd as _ickd  # noqa: E402,F401
from attnfd.distill import kd as _kd  # noqa: E402,F401
from attnfd.distill import lad as _lad  # noqa: E402,F401
from attnfd.distill import overhaul as _overhaul  # noqa: E402,F401
from attnfd.distill import pfs as _pfs  # noqa: E402,F401
from attnfd.distill import sp as _sp  # noqa: E402,F401
