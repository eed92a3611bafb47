"""How many seeds a table block needs: from the spread of its paired differences, the smallest
difference its seed count detects, and the seeds a given difference would need.

The spread is the sd of the per-seed differences between each row and the block's
no-distillation row, pooled over the block's rows (each row about its own mean difference).
Power is that of the two-sided paired t-test, solved on the noncentral t
(``attnfd.analysis.stats.paired_power``), at the uncorrected alpha and at alpha / m, the
strictest step of a correction over the block's m comparisons: the row with the smallest p
must pass that one under Holm's and Benjamini-Hochberg's corrections alike.
"""

from __future__ import annotations

import math

import pandas as pd

from attnfd.analysis.stats import ALPHA, POWER, detectable_difference, pooled_sd, seeds_needed
from attnfd.analysis.tables import MISSING, Row, Table, cell_label


def paired_differences(row: Row, base: Row, metric: str = "miou") -> list[float]:
    """The row's per-seed differences with the base row, in percent points, over their shared seeds."""
    mine, theirs = row.by_seed(metric), base.by_seed(metric)
    return [mine[s] - theirs[s] for s in sorted(set(mine) & set(theirs), key=str)]


def block_power(rows: list[Row], detect: float, metric: str = "miou") -> list[dict]:
    """One record per block that has a no-distillation row."""
    records = []
    for block in dict.fromkeys(r.block for r in rows):
        members = [r for r in rows if r.block == block]
        base = next((r for r in members if r.is_base), None)
        if base is None:
            continue
        differences = [paired_differences(r, base, metric) for r in members if r is not base]
        sd, df = pooled_sd(differences)
        seeds = len(base.by_seed(metric))
        m = sum(1 for r in members if r.tested(metric))
        strict = ALPHA / m if m > 1 else ALPHA
        records.append({
            "block": cell_label(block), "comparisons": m, "seeds": seeds, "paired_sd_pct": sd, "paired_sd_df": df,
            "detectable_pct": detectable_difference(sd, seeds), "detectable_pct_strict": detectable_difference(sd, seeds, strict),
            "detect_pct": detect, "seeds_needed": seeds_needed(detect, sd),
            "seeds_needed_strict": seeds_needed(detect, sd, strict), "alpha": ALPHA, "alpha_strict": strict,
            "power": POWER,
        })
    return records


def _points(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else MISSING


def _count(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else MISSING


def seeds_table(rows: list[Row], detect: float = 1.0, metric: str = "miou") -> Table:
    records = block_power(rows, detect, metric)
    table = Table(
        name="seeds_needed",
        title=f"Seeds needed: what each block's seeds can detect ({POWER:.0%} power, two-sided paired t-test, "
              f"val mIoU points)",
        header=["Block", "Seeds", "sd of paired differences (df)", f"detectable at α {ALPHA:g}",
                "detectable at α/m", f"seeds for Δ {detect:g}", f"seeds for Δ {detect:g} at α/m"],
        body=[], frame=pd.DataFrame(records))
    for r in records:
        spread = f"{_points(r['paired_sd_pct'])} ({r['paired_sd_df']})" if r["paired_sd_df"] else MISSING
        table.body.append([r["block"], str(r["seeds"]), spread, _points(r["detectable_pct"]),
                           f"{_points(r['detectable_pct_strict'])} (m={r['comparisons']})",
                           _count(r["seeds_needed"]), _count(r["seeds_needed_strict"])])
    table.notes.append(
        "sd: of the per-seed differences between each row and its block's no-distillation row, pooled over the "
        "block's rows. detectable: the smallest true difference the paired t-test finds with "
        f"{POWER:.0%} power at the block's seed count; α/m is the strictest step of the correction over the "
        f"block's m comparisons. Seeds for Δ: the fewest seeds that detect a true difference of {detect:g} val mIoU "
        "points "
        "(--detect). Missing where no row shares two seeds with the no-distillation row, or the differences "
        "have no spread.")
    return table
