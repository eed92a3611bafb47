"""The grid protocols, each the grid of cells it runs; each cell is one table row, repeated over seeds.

- ``layers`` (Table 3): per student, the student alone and AttnFD on each of the 7 layer subsets
  (on each subset of ``taps`` when the backbone stages are added to the paper's three).
- ``methods`` (Table 1): per student, the student alone and every registered distillation method.
- ``alpha``: per student, the student alone and AttnFD at each alpha for each layer subset given.

A protocol is one ``grid_protocol`` entry here, and the analysis tabulates it with the table
builder registered under its name (``attnfd.analysis.tables.protocol_columns``); a search is
the study kind that is no grid protocol (``attnfd.study_contract.SEARCH``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from attnfd.errors import ConfigError
from attnfd.names import TAPS
from attnfd.study.space import PAPER_LAYERS, check_taps
from attnfd.study.space import layer_subsets as subsets_of
from attnfd.study_contract import is_search


@dataclass(frozen=True)
class CellOptions:
    """What the command line gives the protocols; each protocol reads the options it needs."""

    alphas: list[float] | None = None
    layer_subsets: list[str] | None = None
    methods: list[str] | None = None
    taps: tuple[str, ...] = TAPS


@dataclass(frozen=True)
class GridProtocol:
    # the config fields its cells vary (study.json's "searched")
    varied: tuple[str, ...]
    # a student's cells besides the student alone, which every protocol runs first
    cells: Callable[[str, CellOptions], list[dict]]


GRID_PROTOCOLS: dict[str, GridProtocol] = {}


def grid_protocol(name: str, varied: tuple[str, ...]):
    """Register a function ``(student, options) -> cells`` as the grid protocol ``name``."""
    if is_search(name):
        raise ValueError(f"{name!r} is the search's study kind, not a grid protocol")

    def register(cells: Callable[[str, CellOptions], list[dict]]):
        GRID_PROTOCOLS[name] = GridProtocol(varied=tuple(varied), cells=cells)
        return cells

    return register


def _alone(student: str) -> dict:
    return {"backbone": student, "distill": None}


@grid_protocol("layers", varied=("layers",))
def _layers(student: str, options: CellOptions) -> list[dict]:
    return [{"backbone": student, "distill": "attnfd", "layers": s} for s in subsets_of(options.taps)]


@grid_protocol("methods", varied=("distill",))
def _methods(student: str, options: CellOptions) -> list[dict]:
    return [{"backbone": student, "distill": m} for m in options.methods or _registered_methods()]


@grid_protocol("alpha", varied=("alpha", "layers"))
def _alpha(student: str, options: CellOptions) -> list[dict]:
    if not options.alphas:
        raise ConfigError("the alpha protocol needs --alphas, e.g. 0.1,1,10")
    return [{"backbone": student, "distill": "attnfd", "layers": s, "alpha": a}
            for s in options.layer_subsets or [PAPER_LAYERS] for a in options.alphas]


def protocol_cells(protocol: str, students: list[str], *, alphas: list[float] | None = None,
                   layer_subsets: list[str] | None = None, methods: list[str] | None = None,
                   taps: tuple[str, ...] = TAPS) -> list[dict]:
    if protocol not in GRID_PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(GRID_PROTOCOLS)}")
    if not students:
        raise ConfigError("no student given")
    options = CellOptions(alphas=alphas, layer_subsets=layer_subsets, methods=methods, taps=check_taps(tuple(taps)))
    cells = []
    for student in students:
        cells += [_alone(student), *GRID_PROTOCOLS[protocol].cells(student, options)]
    return cells


def _registered_methods() -> list[str]:
    from attnfd.distill.methods import declared_methods

    # AttnFD first, as in the paper's table
    return sorted(declared_methods(), key=lambda name: (name != "attnfd", name))
