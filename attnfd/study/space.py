"""What a search varies: alpha, the layer subset, the alpha-decay variant, and more by flag.

Besides the config fields of ``EXTRA_DIMENSIONS`` and ``method``, any option of a distillation
method is a dimension by its ``method.option`` name (``--search kd.temperature``): its kind and
range follow from its default for the data set (``option_choices``), and a trial's value
reaches the run through ``distill_options`` (``attnfd.distill.spec.options_into_config``).

The space is define-by-run (Optuna's ``trial.suggest_*``) so that it can grow dimensions
that only some studies search. What it suggests is its description (``described``), the one
study.json records for the analysis (``attnfd.study_contract``: kind, range, log scale). It is a class at module level because Ray pickles the
searcher, space included, into the experiment state, and ``--resume`` must unpickle it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

from attnfd.config import ALPHA_SCHEDULES, NORMS, TAP_RELUS, TEACHER_GATES, ConfigError
from attnfd.distill.methods import ANY_DATASET, declared_methods
from attnfd.distill.spec import OPTION_TAP_JOIN, check_option_name, option_text, split_option_name
from attnfd.names import ALL_TAPS, TAPS
from attnfd.study_contract import CATEGORICAL, FLOAT, INT, Dimension


def layer_subsets(taps: tuple[str, ...] = TAPS, sep: str = ",") -> tuple[str, ...]:
    """The non-empty subsets of ``taps`` as the comma-joined strings configs take (strings
    because Optuna keeps categorical choices as plain values; a method's tap list option
    joins them with ``sep="+"``)."""
    return tuple(sep.join(c) for n in range(1, len(taps) + 1) for c in combinations(taps, n))


def check_taps(taps: tuple[str, ...]) -> tuple[str, ...]:
    """``--taps``: the paper's three and any of the backbone stages, in the models' order."""
    bad = [t for t in taps if t not in ALL_TAPS]
    if bad:
        raise ConfigError(f"unknown tap(s) {', '.join(bad)}; choose from {', '.join(ALL_TAPS)}")
    missing = [t for t in TAPS if t not in taps]
    if missing:
        raise ConfigError(f"--taps must keep the paper's taps ({', '.join(TAPS)}); missing {', '.join(missing)}")
    return tuple(t for t in ALL_TAPS if t in taps)


# the 7 non-empty subsets of the paper's taps
LAYER_SUBSETS: tuple[str, ...] = layer_subsets()
PAPER_LAYERS = ",".join(TAPS)


def _method_choices() -> tuple[str, ...]:
    return tuple(declared_methods())


# a searched number's range around its default d: d / OPTION_SCALE to d * OPTION_SCALE, log-uniform
OPTION_SCALE = 10.0


def option_choices(name: str, taps: tuple[str, ...], dataset: str = ANY_DATASET) -> tuple[str, tuple]:
    """How a search draws option ``name`` (``method.option``): ("categorical", choices) for a
    flag or taps (the default first), ("float"/"int", (low, high)) log-uniform a decade either
    side of a default > 0, or uniform from 0 for a default of 0."""
    method, key = split_option_name(name)
    default = declared_methods()[method].default(key, dataset)
    if isinstance(default, bool):
        return CATEGORICAL, (default, not default)
    if isinstance(default, str):
        return CATEGORICAL, (default, *(t for t in taps if t != default))
    if isinstance(default, tuple):
        first = option_value(default)
        return CATEGORICAL, (first, *(s for s in layer_subsets(taps, OPTION_TAP_JOIN) if s != first))
    scale = OPTION_SCALE
    kind = INT if isinstance(default, int) else FLOAT
    if default == 0:
        return kind, (0, 10) if kind == INT else (0.0, 1.0)
    if kind == INT:
        return kind, (max(1, int(default / scale)), int(default * scale))
    return kind, (default / scale, default * scale)


# the extra dimensions a study may search, by their config field, with the paper's value first
EXTRA_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "teacher_gate": TEACHER_GATES,
    "norm": NORMS,
    "tap_relu": TAP_RELUS,
}
# "method" is what a user calls the distillation method; its config field is "distill"
METHOD = "method"


@dataclass
class SearchSpace:
    """alpha (log-uniform in ``alpha_range``), ``layers``, ``alpha_schedule`` and ``extra``."""

    alpha_range: tuple[float, float] = (0.1, 30.0)
    extra: tuple[str, ...] = ()
    methods: tuple[str, ...] = field(default_factory=tuple)
    # the taps whose subsets are searched: the paper's three unless --taps adds stages
    taps: tuple[str, ...] = TAPS
    # whose defaults a searched method option starts from (its value in the paper's setting)
    dataset: str = ANY_DATASET

    def __post_init__(self) -> None:
        self.taps = check_taps(tuple(self.taps))
        low, high = self.alpha_range
        if not 0 < low < high:
            raise ConfigError(f"alpha range must be 0 < low < high, got {low}:{high}")
        unknown = [d for d in self.extra if d not in EXTRA_DIMENSIONS and d != METHOD and split_option_name(d) is None]
        if unknown:
            names = ", ".join([*EXTRA_DIMENSIONS, METHOD, "a method's option (method.option)"])
            raise ConfigError(f"cannot search {', '.join(unknown)}; searchable extra dimensions: {names}")
        for name in self.extra:
            if split_option_name(name) is not None:
                check_option_name(name, f"--search {name}")
        if METHOD in self.extra and not self.methods:
            self.methods = _method_choices()

    @property
    def dimensions(self) -> list[str]:
        """The searched config fields, in the order they are suggested."""
        return [d.name for d in self.described()]

    def described(self) -> list[Dimension]:
        """Each searched config field's kind, range or choices and scale, in the order they are suggested."""
        low, high = self.alpha_range
        dims = [Dimension("alpha", FLOAT, low=float(low), high=float(high), log=True),
                Dimension("layers", CATEGORICAL, choices=layer_subsets(self.taps)),
                Dimension("alpha_schedule", CATEGORICAL, choices=tuple(ALPHA_SCHEDULES))]
        for name in self.extra:
            if name == METHOD:
                dims.append(Dimension("distill", CATEGORICAL, choices=tuple(self.methods)))
            elif name in EXTRA_DIMENSIONS:
                dims.append(Dimension(name, CATEGORICAL, choices=tuple(EXTRA_DIMENSIONS[name])))
            else:
                kind, values = option_choices(name, self.taps, self.dataset)
                if kind == CATEGORICAL:
                    dims.append(Dimension(name, CATEGORICAL, choices=tuple(values)))
                else:
                    dims.append(Dimension(name, kind, low=values[0], high=values[1], log=values[0] > 0))
        return dims

    def __call__(self, trial) -> None:
        for dim in self.described():
            if dim.kind == CATEGORICAL:
                trial.suggest_categorical(dim.name, dim.choices)
            else:
                suggest = trial.suggest_int if dim.kind == INT else trial.suggest_float
                suggest(dim.name, dim.low, dim.high, log=dim.log)

    def paper_point(self, paper_alpha: float) -> dict:
        """The paper's setting (all three taps, constant alpha, its gate/norm/ReLU choices),
        evaluated first so a study never ends below it."""
        low, high = self.alpha_range
        if not low <= paper_alpha <= high:
            raise ConfigError(f"the alpha range {low}:{high} leaves out the paper's alpha {paper_alpha} for this data set")
        point = {"alpha": paper_alpha, "layers": PAPER_LAYERS, "alpha_schedule": "constant"}
        for name in self.extra:
            if name == METHOD:
                point["distill"] = "attnfd" if "attnfd" in self.methods else self.methods[0]
            elif name in EXTRA_DIMENSIONS:
                point[name] = EXTRA_DIMENSIONS[name][0]
            else:
                method, key = split_option_name(name)
                point[name] = option_value(declared_methods()[method].default(key, self.dataset))
        return point


def option_value(default):
    """A method option's default as a search draws it: taps as the text a categorical holds."""
    return option_text(default) if isinstance(default, tuple) else default
