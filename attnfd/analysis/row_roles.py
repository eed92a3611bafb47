"""Which config fields tell apart the rows of a study's tables, as the study said.

A study writes each config field's row role into study.json (``config_fields``, from
``attnfd.config_sections``): ``never`` for where a trial ran and its seed (the trials of one
row differ in these), ``when_distilling`` for fields that mean nothing to a student trained
alone. A study written before it did so is read with this package's own config, which
imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnfd.config import TrainConfig
from attnfd.config_sections import field_roles

STUDY_KEY = "config_fields"


@dataclass(frozen=True)
class RowRoles:
    never: frozenset[str]
    when_distilling: frozenset[str]

    @classmethod
    def of(cls, meta: dict) -> RowRoles:
        """The roles study.json ``meta`` gives, or attnfd.config's where it gives none."""
        written = meta.get(STUDY_KEY)
        described = written if isinstance(written, dict) and written else field_roles(TrainConfig)
        rows = {name: d.get("row") for name, d in described.items() if isinstance(d, dict)}
        return cls(never=frozenset(n for n, r in rows.items() if r == "never"),
                   when_distilling=frozenset(n for n, r in rows.items() if r == "when_distilling"))
