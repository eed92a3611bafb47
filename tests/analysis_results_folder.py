"""Results folders written by hand, in the README's "Results files" layout, for the analysis tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

NAN = math.nan
TYPES = {
    "study": pa.string(), "protocol": pa.string(), "trial_id": pa.string(), "node": pa.string(),
    "status": pa.string(), "error": pa.string(), "epoch": pa.int64(), "miou": pa.float64(),
    "pixel_acc": pa.float64(), "per_class_iou": pa.list_(pa.float64()), "loss": pa.float64(),
    "loss_ce": pa.float64(), "lr": pa.float64(), "alpha": pa.float64(), "seconds": pa.float64(),
    "params_m": pa.float64(),
}
CONFIG_DEFAULTS = {
    "role": "student", "dataset": "shapes", "backbone": "resnet18", "teacher_backbone": "resnet101",
    "distill": "none", "alpha": 1.0, "alpha_schedule": "constant", "layers": "backbone,encoder,decoder",
    "teacher_gate": "learned", "norm": "channel", "tap_relu": "pre", "epochs": 2, "batch_size": 16,
    "lr": 0.02, "image_size": 64, "aspp_rates": "1,2,3", "backbone_weights": None, "amp": True,
    "out_dir": None, "device": "auto", "workers": 0,
}


def _table(rows: list[dict]) -> pa.Table:
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns = {}
    for name in names:
        values = [r.get(name) for r in rows]
        columns[name] = pa.array(values, type=TYPES.get(name))
    return pa.table(columns)


def trial(trial_id: str, epochs: list[tuple], *, status: str = "completed", error: str | None = None,
          params_m: float = 16.6, node: str = "127.0.0.2", phase: str | None = None, **config) -> list[dict]:
    """Epoch rows of one trial; ``epochs`` holds (miou, pixel_acc, per_class_iou, loss) per epoch;
    ``phase`` fills the column of that name (rows without one were written before phases existed).

    Every row carries ``running`` but the last, which carries ``status`` (as the tune callback
    rewrites a trial's file when it ends)."""
    values = {**CONFIG_DEFAULTS, **config}
    out = []
    for i, (miou, acc, per_class, loss) in enumerate(epochs, 1):
        last = i == len(epochs)
        row = {
            "study": "s", "protocol": "p", "trial_id": trial_id, "node": node,
            "status": status if last else "running", "error": error if last else None, "epoch": i,
            "miou": miou, "pixel_acc": acc, "per_class_iou": per_class, "loss": loss, "loss_ce": loss,
            "lr": 0.01, "seconds": 1.5, "params_m": params_m,
        }
        if phase is not None:
            row["phase"] = phase
        if values["distill"] != "none":
            row["alpha"] = values["alpha"]
            for tap in str(values["layers"]).split(","):
                row[f"loss_attnfd.{tap}"] = loss / 10
        row.update({f"config/{k}": v for k, v in values.items()})
        out.append(row)
    return out


def write_trial(folder: Path, rows: list[dict], *, protocol: str) -> Path:
    """One trial's epoch file in a study folder, rewritten whole as the study's writer does when it reports."""
    for row in rows:
        row["study"], row["protocol"] = Path(folder).name, protocol
    epochs = Path(folder) / "results" / "epochs"
    epochs.mkdir(parents=True, exist_ok=True)
    path = epochs / f"{rows[0]['trial_id']}.parquet"
    pq.write_table(_table(rows), path)
    return path


def write_meta(folder: Path, *, protocol: str, seeds, class_names, searched=(), created: str = "2026-01-02T03:04:05",
               **more) -> None:
    """study.json; ``more`` adds keys (``trials``, ``confirm``)."""
    meta = {"name": Path(folder).name, "protocol": protocol, "dataset": "shapes", "class_names": class_names,
            "seeds": seeds, "metric": "miou", "searched": searched, "created": created, **more}
    (Path(folder) / "results").mkdir(parents=True, exist_ok=True)
    (Path(folder) / "results" / "study.json").write_text(json.dumps(meta))


def write_study(storage: Path, name: str, trials: list[list[dict]], *, protocol: str, seeds, class_names,
                searched=(), summary: bool = True, created: str = "2026-01-02T03:04:05") -> Path:
    folder = Path(storage) / name
    for rows in trials:
        write_trial(folder, rows, protocol=protocol)
    if summary:
        last_rows = [rows[-1] for rows in trials]
        pq.write_table(_table(last_rows), folder / "results" / "summary.parquet")
    write_meta(folder, protocol=protocol, seeds=seeds, class_names=class_names, searched=searched, created=created)
    return folder


CLASSES = ["background", "disk stripes", "square checker"]
# the search study's alphas and layer subsets, in trial order; mIoU peaks at alpha 1
SEARCH_ALPHAS = [0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]
SEARCH_LAYERS = ["encoder", "decoder", "encoder,decoder"]


def search_miou(i: int) -> float:
    return 0.60 + 0.10 * (1 - abs(math.log10(SEARCH_ALPHAS[i]))) + 0.001 * (i % 3)


def layers_study(storage: Path, name: str = "ablation", created: str = "2026-01-02T03:04:05") -> Path:
    """Table 3 rows with known numbers (see test_analysis.py for the hand computation)."""
    counter = iter(range(1000))
    t = []

    def tid() -> str:
        return f"abc_{next(counter):05d}"

    early = (0.5, 0.5, [0.5, 0.5, 0.5], 2.0)
    base_pc = [[0.9, 0.5, 0.4], [0.92, 0.52, NAN], [0.94, 0.54, 0.44]]
    for seed, (m, a) in enumerate([(0.60, 0.70), (0.62, 0.71), (0.64, 0.72)]):
        t.append(trial(tid(), [(m - 0.1, a - 0.1, [0.5, 0.1, 0.1], 2.0), (m, a, base_pc[seed], 1.0)], seed=seed))
    for seed, (m, a) in enumerate([(0.70, 0.80), (0.71, 0.80), (0.72, 0.83)]):
        t.append(trial(tid(), [early, (m, a, [0.9, 0.6, 0.5], 1.0)], seed=seed, distill="attnfd", layers="decoder"))
    for seed, (m, a) in enumerate([(0.65, 0.75), (0.67, 0.77)]):  # seed 2 never ran
        t.append(trial(tid(), [early, (m, a, [0.9, 0.6, 0.5], 1.0)], seed=seed, distill="attnfd", layers="encoder"))
    best_pc = [[0.95, 0.6, NAN], [0.97, 0.62, NAN]]
    for seed, (m, a) in enumerate([(0.72, 0.82), (0.74, 0.84)]):
        t.append(trial(tid(), [early, (m, a, best_pc[seed], 1.0)], seed=seed, distill="attnfd",
                       layers="backbone,encoder,decoder"))
    t.append(trial(tid(), [early], seed=2, distill="attnfd", layers="backbone,encoder,decoder", status="failed",
                   error="loss is nan at epoch 2, step 1 (ce=nan)"))
    # seed 1's last epoch was not evaluated, so its result is epoch 1; seed 2 has no pixel accuracy
    t.append(trial(tid(), [early, (0.60, 0.70, [0.9, 0.6, 0.5], 1.0)], seed=0, distill="attnfd", layers="backbone"))
    t.append(trial(tid(), [(0.57, 0.68, [0.5, 0.5, 0.5], 2.0), (NAN, NAN, None, 1.0)], seed=1, distill="attnfd",
                   layers="backbone"))
    t.append(trial(tid(), [early, (0.63, NAN, [0.9, 0.6, 0.5], 1.0)], seed=2, distill="attnfd", layers="backbone"))
    # a row whose only trial failed before reporting an evaluated epoch
    t.append(trial(tid(), [(NAN, NAN, None, 9.0)], seed=0, distill="attnfd", layers="backbone,decoder",
                   status="failed", error="loss is inf at epoch 1, step 3"))
    for seed in range(3):
        t.append(trial(tid(), [(0.50, 0.60, [0.8, 0.3, 0.4], 1.0)], seed=seed, params_m=5.9, backbone="mobilenet_v2"))
        t.append(trial(tid(), [(0.55, 0.65, [0.8, 0.4, 0.45], 1.0)], seed=seed, params_m=5.9,
                       backbone="mobilenet_v2", distill="attnfd", layers="decoder"))
    return write_study(storage, name, t, protocol="layers", seeds=[0, 1, 2], class_names=CLASSES, created=created)


def search_study(storage: Path, name: str = "search") -> Path:
    """A free search over alpha and layers: 12 completed trials, one failed, one stopped, one running."""
    t = []
    for i, alpha in enumerate(SEARCH_ALPHAS):
        m = search_miou(i)
        t.append(trial(f"srch_{i:05d}", [(m - 0.05, m, [0.9, m, NAN], 2.0), (m, m + 0.1, [0.9, m, NAN], 1.0)],
                       distill="attnfd", alpha=alpha, layers=SEARCH_LAYERS[i % 3]))
    t.append(trial("srch_00012", [(0.5, 0.6, [0.9, 0.5, NAN], 2.0)], distill="attnfd", alpha=1.2, layers="decoder",
                   status="failed", error="loss is nan at epoch 2, step 4"))
    t.append(trial("srch_00013", [(0.40, 0.5, [0.9, 0.4, NAN], 2.0)], distill="attnfd", alpha=0.12, layers="decoder",
                   status="stopped"))
    t.append(trial("srch_00014", [(0.45, 0.5, [0.9, 0.45, NAN], 2.0)], distill="attnfd", alpha=2.5, layers="encoder",
                   status="running"))
    searched = {"alpha": {"type": "loguniform", "low": 0.1, "high": 10.0},
                "layers": {"type": "choice", "values": SEARCH_LAYERS}}
    return write_study(storage, name, t, protocol="search", seeds=1, class_names=CLASSES, searched=searched,
                       summary=False)
