"""The paper's protocols as grids of cells; each cell is one table row, repeated over seeds.

- ``layers`` (Table 3): per student, the student alone and AttnFD on each of the 7 layer subsets
  (on each subset of ``taps`` when the backbone stages are added to the paper's three).
- ``methods`` (Table 1): per student, the student alone and every registered distillation method.
- ``alpha``: per student, the student alone and AttnFD at each alpha for each layer subset given.
"""

from __future__ import annotations

from attnfd.errors import ConfigError
from attnfd.names import TAPS
from attnfd.study.space import PAPER_LAYERS, check_taps
from attnfd.study.space import layer_subsets as subsets_of

PROTOCOLS = ("layers", "methods", "alpha")
# the config fields a protocol varies (study.json's "searched")
VARIED = {"layers": ["layers"], "methods": ["distill"], "alpha": ["alpha", "layers"]}


def _alone(student: str) -> dict:
    return {"backbone": student, "distill": None}


def protocol_cells(protocol: str, students: list[str], *, alphas: list[float] | None = None,
                   layer_subsets: list[str] | None = None, methods: list[str] | None = None,
                   taps: tuple[str, ...] = TAPS) -> list[dict]:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if not students:
        raise ConfigError("no student given")
    taps = check_taps(tuple(taps))
    cells = []
    for student in students:
        cells.append(_alone(student))
        if protocol == "layers":
            cells += [{"backbone": student, "distill": "attnfd", "layers": s} for s in subsets_of(taps)]
        elif protocol == "methods":
            cells += [{"backbone": student, "distill": m} for m in methods or _registered_methods()]
        else:
            if not alphas:
                raise ConfigError("the alpha protocol needs --alphas, e.g. 0.1,1,10")
            cells += [{"backbone": student, "distill": "attnfd", "layers": s, "alpha": a}
                      for s in layer_subsets or [PAPER_LAYERS] for a in alphas]
    return cells


def _registered_methods() -> list[str]:
    from attnfd.distill.methods import declared_methods

    # AttnFD first, as in the paper's table
    return sorted(declared_methods(), key=lambda name: (name != "attnfd", name))
