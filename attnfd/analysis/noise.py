"""How much a result moves with its seed alone, measured where a config ran with several seeds:
a search's confirm stage, or any config repeated at different seeds.

Two numbers: the sd of one run over seeds (pooled over the configs), and the sd of the
difference between two configs run at the same seed (pooled over every pair of configs, over
the seeds they share). A search runs every config at one seed, so the differences between
its configs carry the second kind of noise: the same seed fixes the initialisation and the
batches, which cancel in part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

from attnfd.analysis.results import Study, cell_fields
from attnfd.analysis.stats import pooled_sd
from attnfd.analysis.tables import Row, build_rows
from attnfd.study_contract import CONFIRM, SEARCH


@dataclass(frozen=True)
class SeedNoise:
    run_sd: float  # percent points
    run_df: int
    pair_sd: float  # of the difference between two configs at the same seed
    pair_df: int
    configs: int
    source: str

    def describe(self) -> str:
        pair = (f"; two configs at the same seed differ by sd {self.pair_sd:.2f} points from the seed alone "
                f"(pooled over every pair of them, {self.pair_df} df)" if math.isfinite(self.pair_sd) else "")
        return (f"seed noise ({self.source}): one run varies by sd {self.run_sd:.2f} val mIoU points over seeds "
                f"(pooled over {self.configs} configs, {self.run_df} df){pair}")


def seed_noise(rows: list[Row], source: str, metric: str = "miou") -> SeedNoise | None:
    """The noise of the rows that have two seeds or more; None when no row has."""
    repeated = [r.by_seed(metric) for r in rows if len(r.by_seed(metric)) >= 2]
    if not repeated:
        return None
    run_sd, run_df = pooled_sd(list(values.values()) for values in repeated)
    differences = []
    for a, b in combinations(repeated, 2):
        shared = sorted(set(a) & set(b), key=str)
        if len(shared) >= 2:
            differences.append([a[s] - b[s] for s in shared])
    pair_sd, pair_df = pooled_sd(differences)
    return SeedNoise(run_sd, run_df, pair_sd, pair_df, len(repeated), source)


def search_noise(study: Study) -> SeedNoise | None:
    """A search's seed noise: from its confirm stage, else from configs it ran at several seeds."""
    confirm = study.phase(CONFIRM)
    fields = cell_fields(study.trials, study.row_roles) if len(study.trials) else []
    if len(confirm.trials):
        seeds = ", ".join(map(str, (study.meta.get("confirm") or {}).get("seeds") or []))
        found = seed_noise(build_rows(confirm, fields=fields), f"the confirm stage, seeds {seeds}".rstrip(", "))
        if found is not None:
            return found
    own = study.phase(SEARCH)
    return seed_noise(build_rows(own, fields=fields), "configs the search ran at several seeds") if len(own.trials) \
        else None


NO_NOISE = ("no seed-noise estimate: every config ran at one seed, so nothing here says how much of a difference "
            "between configs is the seed's (the confirm stage, tune/search.py --confirm, measures it)")
