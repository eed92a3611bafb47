"""The distillation fields of a config as the code uses them: read once, here, from their text.

Users write (and config files and results keep) text: ``distill="attnfd:1,kd:0.5"``,
``distill_options="kd.temperature=4,at.layers=encoder+decoder"``, ``layers="backbone,encoder"``.
``parse_methods`` turns a config's into ``MethodSpec(name, weight, options)``: the weight from
the spec or the method's default (``attnfd.distill.methods``), the options a dataclass of
the method's options with its defaults for the config's data set, overridden by
``distill_options``. Tap lists are tuples inside the code; only text is joined with ``,``
(``layers``) or ``+`` (a tap list inside ``distill_options``, where ``,`` separates options).
Options of methods the spec does not use are checked but otherwise ignored, so one study
can fix options for all its methods.

How a method's weight and options enter the loss: ``attnfd.distill.total``. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from attnfd.distill.methods import MethodDefaults, declared_methods, method_defaults
from attnfd.errors import ConfigError
from attnfd.names import ALL_TAPS

# a tap list inside distill_options (where "," separates the options)
OPTION_TAP_JOIN = "+"


@dataclass(frozen=True)
class MethodSpec:
    name: str
    weight: float
    # an instance of the method's options dataclass (MethodDefaults.options_type)
    options: Any


def spec_items(distill: str | None) -> list[tuple[str, str]]:
    """``"attnfd:1,kd"`` -> [("attnfd", "1"), ("kd", "")], unchecked: also for the analysis of
    results that name methods this checkout does not have."""
    items = []
    for item in (s.strip() for s in (distill or "").split(",")):
        if item:
            name, _, weight = item.partition(":")
            items.append((name.strip(), weight.strip()))
    return items


def method_names(distill: str | None) -> list[str]:
    """The method names of a distill spec, unchecked."""
    return [name for name, _ in spec_items(distill)]


def split_layers(text: str) -> tuple[str, ...]:
    """The ``layers`` field as text (``"backbone,encoder"``, as configs and results files write it)."""
    return tuple(t.strip() for t in str(text or "").split(",") if t.strip())


def join_layers(taps) -> str:
    return ",".join(taps)


def _weight(name: str, text: str) -> float:
    if not text:
        return method_defaults(name).weight
    try:
        weight = float(text)
    except ValueError:
        raise ConfigError(f"bad weight {text!r} for distillation method {name}; give a number >= 0") from None
    if not math.isfinite(weight) or weight < 0:
        raise ConfigError(f"weight of distillation method {name} must be a finite number >= 0, got {text}")
    return weight


def parse_weights(distill: str) -> tuple[tuple[str, float], ...]:
    """``"attnfd:1,kd:0.5"`` -> (("attnfd", 1.0), ("kd", 0.5)); a method named without a
    weight gets its default. An unknown or repeated method, or a bad weight, raises ConfigError."""
    known = declared_methods()
    methods: list[tuple[str, float]] = []
    for name, text in spec_items(distill):
        if name not in known:
            raise ConfigError(f"unknown distillation method {name!r}; choose from {', '.join(known)}")
        if any(name == seen for seen, _ in methods):
            raise ConfigError(f"distillation method {name} is named twice in {distill!r}")
        methods.append((name, _weight(name, text)))
    if not methods:
        raise ConfigError(f"no distillation method in {distill!r}")
    return tuple(methods)


def convert_option(method: MethodDefaults, key: str, text: str) -> Any:
    """One option's value from its text, typed like its default."""
    where = f"distill option {method.name}.{key}"
    default = method.default(key)
    if isinstance(default, (str, tuple)):
        names = [s.strip() for s in text.split(OPTION_TAP_JOIN) if s.strip()]
        one = isinstance(default, str)
        if not names or any(n not in ALL_TAPS for n in names) or (one and len(names) != 1) or len(set(names)) != len(names):
            many = "one" if one else f"'{OPTION_TAP_JOIN}'-joined"
            raise ConfigError(f"{where} must name {many} of {', '.join(ALL_TAPS)}, got {text!r}")
        return names[0] if one else tuple(names)
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
    positive = key in method.positive
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{where} must be {'> 0' if positive else '>= 0'}, got {text!r}")
    return value


def option_text(value: Any) -> str:
    """An option's value as ``distill_options`` writes it."""
    if isinstance(value, (tuple, list)):
        return OPTION_TAP_JOIN.join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def split_option_name(name: str) -> tuple[str, str] | None:
    """``"kd.temperature"`` -> ("kd", "temperature"); None for a name without a method."""
    method, dot, key = name.partition(".")
    return (method, key) if dot and method and key else None


def check_option_name(name: str, where: str) -> MethodDefaults:
    """The method of an option named ``method.option``; an unknown one raises ConfigError."""
    parts = split_option_name(name)
    if parts is None:
        raise ConfigError(f"{where} must look like method.option=value")
    method, key = parts
    known = declared_methods()
    if method not in known:
        raise ConfigError(f"{where}: unknown method {method!r}; choose from {', '.join(known)}")
    options = known[method].options
    if key not in options:
        raise ConfigError(f"{where}: {method} has no option {key!r} (options: {', '.join(sorted(options)) or 'none'})")
    return known[method]


def parse_options(text: str | None) -> dict[str, dict[str, Any]]:
    """``"kd.temperature=4,at.layers=encoder+decoder"`` -> {"kd": {"temperature": 4.0},
    "at": {"layers": ("encoder", "decoder")}}, typed like the defaults; an unknown method,
    option or a bad value raises ConfigError."""
    parsed: dict[str, dict[str, Any]] = {}
    for item in (s.strip() for s in (text or "").split(",")):
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"distill option {item!r} must look like method.option=value")
        method = check_option_name(name.strip(), f"distill option {item!r}")
        key = name.strip().partition(".")[2]
        parsed.setdefault(method.name, {})[key] = convert_option(method, key, value.strip())
    return parsed


def method_options(name: str, config) -> Any:
    """The options method ``name`` runs with under ``config``: its defaults for the config's
    data set, then the config's ``distill_options`` for it."""
    method = method_defaults(name)
    values = {**method.defaults_for(config.dataset), **parse_options(getattr(config, "distill_options", None)).get(name, {})}
    return method.options_type(**values)


def parse_methods(config) -> tuple[MethodSpec, ...]:
    """The methods a config distils with, in its spec's order, each with its weight and options;
    a bad spec or option raises ConfigError."""
    return tuple(MethodSpec(name, weight, method_options(name, config)) for name, weight in parse_weights(config.distill))


def default_alpha(distill: str, preset_alpha: float) -> float:
    """alpha when the user left it unset: the data set's AttnFD value if the spec includes
    attnfd, 1 otherwise (every other method's weight is its own published lambda)."""
    return preset_alpha if "attnfd" in method_names(distill) else 1.0


def options_into_config(values: dict) -> dict:
    """Config values with any ``method.option`` keys (a search's option dimensions, a confirm
    stage's cells) moved into ``distill_options``, after the options it already holds."""
    named = {k: v for k, v in values.items() if split_option_name(k) is not None}
    if not named:
        return values
    rest = {k: v for k, v in values.items() if k not in named}
    given = [s.strip() for s in str(rest.get("distill_options") or "").split(",") if s.strip()]
    kept = [s for s in given if s.partition("=")[0].strip() not in named]
    rest["distill_options"] = ",".join(kept + [f"{k}={option_text(v)}" for k, v in named.items()])
    return rest


def fixed_options(distill_options: str | None) -> set[str]:
    """The ``method.option`` names a ``distill_options`` text sets."""
    return {s.partition("=")[0].strip() for s in str(distill_options or "").split(",") if s.strip()}

