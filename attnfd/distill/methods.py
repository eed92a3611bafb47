"""The distillation methods of this package, each declared in its own module and read
without importing it.

A method is a module of ``attnfd.distill`` with a module-level ``DEFAULTS = {...}``: its default
weight, the reduction of its parts, where the numbers come from, its options, and optionally
which options must stay > 0 and its row in the paper's Table 1. ``DEFAULTS`` is a literal (numbers,
strings, tuples, dicts), read from the module's syntax tree, so config validation, the CLIs,
the search space and the analysis know every method without importing torch; the module
itself (its torch ``Distiller``) is imported only to train. Adding a method is adding its
module: nothing else lists the methods.

An option's default also gives its type: a bool, an int, a float, a tap name (a str: one of
``attnfd.names.ALL_TAPS``) or a tuple of taps. A default that differs between data sets is
a dict, ``{"voc": 0.01, "*": 0.1}``, ``"*"`` standing for every other data set.
"""

from __future__ import annotations

import ast
import functools
import pkgutil
import sys
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

DECLARATION = "DEFAULTS"
ANY_DATASET = "*"


@dataclass(frozen=True)
class MethodDefaults:
    name: str
    weight: float
    reduction: str
    source: str
    # option -> default, or {dataset: default, "*": default} where the recipe differs between data sets
    options: dict[str, Any] = field(default_factory=dict)
    # options that divide or count, so 0 cannot work
    positive: tuple[str, ...] = ()
    # the method's row in the paper's Table 1 (the analysis orders rows by it); None: not in it
    table_row: int | None = None

    def default(self, option: str, dataset: str = ANY_DATASET) -> Any:
        value = self.options[option]
        if isinstance(value, dict):
            return value.get(dataset, value[ANY_DATASET])
        return value

    @functools.cached_property
    def options_type(self) -> type:
        """A frozen dataclass of the options, each typed by its default, defaulting to its
        value for any data set (``default(option)``)."""
        fields = [(k, type(self.default(k)), field(default=self.default(k))) for k in self.options]
        return make_dataclass(f"{self.name}_options", fields, frozen=True)

    def defaults_for(self, dataset: str) -> dict[str, Any]:
        return {k: self.default(k, dataset) for k in self.options}


def _declaration(path: Path) -> dict | None:
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [DECLARATION]:
            try:
                return ast.literal_eval(node.value)
            except ValueError as err:
                raise TypeError(f"{path}: {DECLARATION} must be a literal (numbers, strings, tuples, dicts): {err}") from None
    return None


@functools.lru_cache(maxsize=8)
def _read(folders: tuple[str, ...]) -> dict[str, MethodDefaults]:
    methods = {}
    for module in pkgutil.iter_modules(list(folders)):
        path = Path(module.module_finder.path) / f"{module.name}.py"
        if module.ispkg or not path.is_file():
            continue
        declared = _declaration(path)
        if declared is None:
            continue
        try:
            methods[module.name] = MethodDefaults(name=module.name, **declared)
        except TypeError as err:  # a key MethodDefaults does not have, or a required one missing
            raise TypeError(f"{path}: {DECLARATION}: {err}") from None
    return dict(sorted(methods.items()))


def declared_methods() -> dict[str, MethodDefaults]:
    """Every method's defaults, by name (its module's name), sorted by name."""
    # the package's path, read each time: a test may add a folder of methods to it. The package
    # is imported before any of its modules, so it is looked up, not imported (no import circle)
    return _read(tuple(sys.modules[__package__].__path__))


def method_defaults(name: str) -> MethodDefaults:
    return declared_methods()[name]
