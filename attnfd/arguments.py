"""Argument parsing that ends bad input with one line: ``prog: error: <what was wrong>``.

argparse's own error prints the whole usage first, which for ``attnfd train`` (a flag per
config field) is a screenful in front of the one line that matters. The value types here name
the value given and what would be accepted.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import typing

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def spoken_list(names, conjunction: str = "and") -> str:
    """"a", "a and b", "a, b and c" (or "a, b or c"): names in a help text or a message."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def fail(message: str, prog: str = "attnfd", status: int = 2) -> typing.NoReturn:
    """Bad input ends a command with one line on stderr."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def true_or_false(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false ({'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}), "
                                     f"got {text!r}")


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def integers(text: str, sep: str = ",") -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(sep)]
    if not text.strip() or not all(p.lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected integers separated by {sep!r}, got {text!r}")
    return tuple(int(p) for p in parts)


def image_size(text: str) -> int | tuple[int, ...]:
    """``64`` or ``512x1024``."""
    if "x" in text:
        return integers(text, "x")
    return integer(text)


def field_type(field: dataclasses.Field):
    """The value type of a training config field's flag, read from its annotation."""
    hint = str(field.type)
    if "bool" in hint:
        return true_or_false
    if "tuple[int" in hint:
        return integers
    if "int" in hint and "float" not in hint:
        return integer
    if "float" in hint:
        return finite_float
    if field.name == "image_size":
        return image_size
    return str


def config_overrides(items: list[str]) -> dict:
    """``FIELD=VALUE`` items (``--set``) as training config values, each typed as its flag."""
    from attnfd.config import ConfigError, TrainConfig

    types = {f.name: f for f in dataclasses.fields(TrainConfig)}
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            raise ConfigError(f"--set takes FIELD=VALUE with a training config field, got {item!r}")
        try:
            values[key] = field_type(types[key])(text)
        except (argparse.ArgumentTypeError, ValueError) as err:
            raise ConfigError(f"--set {key}: {err}") from None
    return values
