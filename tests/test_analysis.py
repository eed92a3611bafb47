"""Tables, tests of significance, search summaries and the report, checked against numbers
computed by hand from results folders written by hand (tests/analysis_results_folder.py)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from analysis_results_folder import (
    CLASSES,
    SEARCH_ALPHAS,
    SEARCH_LAYERS,
    layers_study,
    search_miou,
    search_study,
    trial,
    write_study,
)
from scipy.special import betainc

from attnfd.analysis import analyse, load_study, protocol_table, write
from attnfd.analysis.cli import main
from attnfd.analysis.render import to_latex, to_markdown
from attnfd.analysis.search import importances, optuna_study, value_distribution

REPO = Path(__file__).resolve().parents[1]


def welch_by_hand(a: list[float], b: list[float]) -> float:
    """Welch's two-sided p from its definition; the t tail via the regularised incomplete beta."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se2 = va / na + vb / nb
    t = (ma - mb) / math.sqrt(se2)
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return float(betainc(df / 2, 0.5, df / (df + t * t)))


# per row of the resnet18 block: (mIoU % per completed seed, pixel accuracy % per seed with one)
HAND = {
    "resnet18 | none": ([60, 62, 64], [70, 71, 72]),
    "resnet18 | attnfd | layers=backbone": ([60, 57, 63], [70, 68]),  # seed 1 from epoch 1; seed 2 has no accuracy
    "resnet18 | attnfd | layers=encoder": ([65, 67], [75, 77]),  # seed 2 never ran
    "resnet18 | attnfd | layers=decoder": ([70, 71, 72], [80, 80, 83]),
    "resnet18 | attnfd | layers=backbone+decoder": ([], []),  # its one trial failed
    "resnet18 | attnfd | layers=backbone+encoder+decoder": ([72, 74], [82, 84]),  # seed 2 failed
}
BASE, BEST = "resnet18 | none", "resnet18 | attnfd | layers=backbone+encoder+decoder"


def mean(v):
    return sum(v) / len(v)


def std(v):
    m = mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    root = tmp_path_factory.mktemp("storage")
    search_study(root)  # created 2026-01-02
    layers_study(root, created="2026-05-01T00:00:00")  # the newest
    return root


@pytest.fixture(scope="module")
def layers(storage):
    return load_study(storage / "ablation")


@pytest.fixture(scope="module")
def layers_analysis(layers):
    return analyse(layers)


@pytest.fixture(scope="module")
def search(storage):
    return load_study(storage / "search")


@pytest.fixture(scope="module")
def search_analysis(search):
    return analyse(search)


def test_table3_numbers_match_hand_computation(layers):
    table = protocol_table(layers)
    frame = table.frame.set_index("row")
    for label, (miou, acc) in HAND.items():
        r = frame.loc[label]
        assert r["miou_n"] == len(miou) and r["pixel_acc_n"] == len(acc)
        if not miou:  # missing is missing, never 0
            assert pd.isna(r["miou_pct_mean"]) and pd.isna(r["pixel_acc_pct_mean"]) and r["seeds_done"] == 0
            continue
        assert r["miou_pct_mean"] == pytest.approx(mean(miou))
        assert r["miou_pct_std"] == pytest.approx(std(miou))
        assert r["pixel_acc_pct_mean"] == pytest.approx(mean(acc))
        assert r["pixel_acc_pct_std"] == pytest.approx(std(acc))
        if label == BASE:
            assert pd.isna(r["miou_pct_delta"]) and bool(r["is_base"])
            continue
        base_miou, base_acc = HAND[BASE]
        assert r["miou_pct_delta"] == pytest.approx(mean(miou) - mean(base_miou))
        assert r["pixel_acc_pct_delta"] == pytest.approx(mean(acc) - mean(base_acc))
        assert r["miou_p_vs_base"] == pytest.approx(welch_by_hand(miou, base_miou), rel=1e-9)
        assert r["pixel_acc_p_vs_base"] == pytest.approx(welch_by_hand(acc, base_acc), rel=1e-9)
    for label, (miou, _) in HAND.items():
        if miou and label != BEST:
            assert frame.loc[label, "miou_pct_vs_best"] == pytest.approx(mean(miou) - 73)
            assert frame.loc[label, "miou_p_vs_best"] == pytest.approx(welch_by_hand(miou, HAND[BEST][0]), rel=1e-9)
    assert frame.loc[BEST, "is_best"] and frame["is_best"].sum() == 2  # one per student
    assert frame.loc["resnet18 | attnfd | layers=encoder", "missing_seeds"] == "2"
    assert frame.loc[BEST, "failed"] == 1
    # both sides without spread (deterministic seeds): a delta, but no test
    mobile = frame.loc["mobilenet_v2 | attnfd | layers=decoder"]
    assert mobile["miou_pct_delta"] == pytest.approx(5) and pd.isna(mobile["miou_p_vs_base"])
    assert frame.loc[BASE, "params_m"] == pytest.approx(16.6)


def test_table3_has_the_papers_form(layers):
    table = protocol_table(layers)
    assert table.header == ["Student", "Backbone", "Encoder", "Decoder", "Seeds", "val mIoU (%)",
                            "val Accuracy (%)", "vs best mIoU"]
    body = [" | ".join(cells) for cells in table.body]
    by_layers = {k.partition("layers=")[2] or "none": v for k, v in HAND.items()}
    b, b_acc = by_layers["none"]
    bb, bb_acc = by_layers["backbone"]
    e, e_acc = by_layers["encoder"]
    d, d_acc = by_layers["decoder"]
    a, a_acc = by_layers["backbone+encoder+decoder"]

    def p(x, y):
        return f"p={welch_by_hand(x, y):.3f}"

    assert body == [
        f"resnet18 | n/a | n/a | n/a | 3/3 | 62.00 ± 2.00 | 71.00 ± 1.00 | -11.00 ({p(b, a)})",
        f"resnet18 | ✓ |  |  | 3/3 † | 60.00 ± 3.00 (-2.00, {p(bb, b)}) | 69.00 ± 1.41 (-2.00, {p(bb_acc, b_acc)}) [n=2] | -13.00 ({p(bb, a)})",
        f"resnet18 |  | ✓ |  | 2/3 † | 66.00 ± 1.41 (+4.00, {p(e, b)}) | 76.00 ± 1.41 (+5.00, {p(e_acc, b_acc)}) | -7.00 ({p(e, a)})",
        f"resnet18 |  |  | ✓ | 3/3 | 71.00 ± 1.00 (+9.00, {p(d, b)}) | 81.00 ± 1.73 (+10.00, {p(d_acc, b_acc)}) | -2.00 ({p(d, a)})",
        "resnet18 | ✓ |  | ✓ | 0/3 † | - | - | -",
        f"resnet18 | ✓ | ✓ | ✓ | 2/3 † | 73.00 ± 1.41 (+11.00, {p(a, b)}) | 83.00 ± 1.41 (+12.00, {p(a_acc, b_acc)}) | best",
        "mobilenet_v2 | n/a | n/a | n/a | 3/3 | 50.00 ± 0.00 | 60.00 ± 0.00 | -5.00",
        "mobilenet_v2 |  |  | ✓ | 3/3 | 55.00 ± 0.00 (+5.00) | 65.00 ± 0.00 (+5.00) | best",
    ]
    assert table.bold == {5, 7} and table.rule_before == {6}
    notes = "\n".join(table.notes)
    assert "layers=encoder: 2 of 3 seeds (missing seed 2)" in notes
    assert "failed after epoch 1: loss is nan at epoch 2, step 1 (ce=nan)" in notes
    assert "has no val Accuracy at epoch 2" in notes
    markdown = to_markdown(table)
    assert "| **resnet18** | **✓** | **✓** | **✓** | **2/3 †** |" in markdown
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(table.body)
    assert all(len(re.split(r"(?<!\\)\|", line)) - 2 == len(table.header) for line in lines)


def test_latex_is_booktabs_with_balanced_braces_and_full_rows(layers):
    table = protocol_table(layers)
    tex = to_latex(table)
    depth = 0
    for ch in tex.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    spec = re.search(r"\\begin\{tabular\}\{([lcr]+)\}", tex).group(1)
    assert len(spec) == len(table.header)
    inner = tex.split(r"\toprule")[1].split(r"\bottomrule")[0]
    rows = [line for line in inner.splitlines() if line.endswith(r"\\")]
    assert len(rows) == 1 + len(table.body)
    assert all(len(re.split(r"(?<!\\)&", row)) == len(table.header) for row in rows)
    assert tex.count(r"\midrule") == 2 and r"\textbf{best}" in tex and "mobilenet\\_v2" in tex
    assert r"$\checkmark$" in tex and r"$\pm$" in tex and "✓" not in tex


def test_per_class_figure_compares_the_plain_student_with_the_best_row(layers_analysis):
    fig = layers_analysis.figures["per_class_1"]
    plain, best = fig.data
    assert plain.name == BASE and best.name == BEST
    assert list(plain.x) == CLASSES
    # seeds' per-class IoU: [90,50,40], [92,52,nan], [94,54,44] and [95,60,nan], [97,62,nan]
    assert plain.y == pytest.approx((92, 52, 42)) and plain.error_y.array == pytest.approx((2, 2, std([40, 44])))
    assert best.y[:2] == pytest.approx((96, 61)) and best.y[2] is None
    assert layers_analysis.figures["per_class_2"].data[0].name == "mobilenet_v2 | none"
    assert "alpha_sweep" not in layers_analysis.figures  # alpha never varied in this study


def test_methods_and_alpha_protocols_from_the_same_rows(layers):
    methods = protocol_table(layers, "methods")
    assert methods.header[:2] == ["Student", "Method"] and methods.header[-1] == "Params (M)"
    assert methods.body[0][:2] == ["resnet18", "no distillation"] and methods.body[0][-1] == "16.6"
    assert methods.body[-1][-1] == "5.9"
    alpha = protocol_table(layers, "alpha")
    assert alpha.body[3][:3] == ["resnet18", "decoder", "1"]


def test_search_summary(search, search_analysis):
    results = {i: 100 * search_miou(i) for i in range(len(SEARCH_ALPHAS))}
    ostudy = optuna_study(search)
    states = pd.Series([t.state.name for t in ostudy.trials]).value_counts().to_dict()
    assert states == {"COMPLETE": 12, "PRUNED": 1, "FAIL": 1}  # the running trial is left out
    complete = [t for t in ostudy.trials if t.state.name == "COMPLETE"]
    assert [t.value for t in complete] == pytest.approx(list(results.values()))
    assert complete[0].distributions["alpha"].log and complete[0].intermediate_values[1] == pytest.approx(results[0] - 5)

    found, _ = importances(search)
    found = found.set_index("dimension")["ped_anova"]
    assert found.sum() == pytest.approx(1) and found["alpha"] > 0.8 > found["layers"]

    best = search_analysis.tables[0]
    assert best.body[0][:4] == ["1", "1", "encoder", "1/1"] and best.body[0][4] == "70.00"
    assert best.body[0][-1] == "srch_00006" and len(best.body) == 10
    assert "12 completed, 1 failed, 1 running, 1 stopped" in best.notes[0]
    values = value_distribution(search).set_index(["dimension", "value"])
    for k, layer in enumerate(SEARCH_LAYERS):
        mine = [results[i] for i in results if i % 3 == k]
        assert values.loc[("layers", layer), "miou_pct_mean"] == pytest.approx(mean(mine))
        assert values.loc[("layers", layer), "miou_pct_std"] == pytest.approx(std(mine))
    alpha_bins = values.loc["alpha"]
    assert len(alpha_bins) == 4 and list(alpha_bins["trials"]) == [3, 3, 3, 3]
    assert alpha_bins["miou_pct_mean"].iloc[0] == pytest.approx(mean([results[0], results[1], results[2]]))

    curve = search_analysis.figures["best_so_far"].data[0]
    spent, best_so_far = [], []
    for i in range(12):  # trials in creation order, two epochs each
        spent.append(2 * (i + 1))
        best_so_far.append(max(results[j] for j in range(i + 1)))
    spent += [25, 26, 27]  # failed, stopped and running trials spent one epoch each
    best_so_far += [best_so_far[-1]] * 3
    assert list(curve.x) == spent and curve.y == pytest.approx(best_so_far)
    sweep = {trace.name: trace for trace in search_analysis.figures["alpha_sweep"].data}
    assert len(sweep) == 3  # one line per layer subset, no plain student in this search
    for k, layer in enumerate(SEARCH_LAYERS):
        line = sweep[f"resnet18 | attnfd | layers={layer.replace(',', '+')}"]
        assert list(line.x) == [a for i, a in enumerate(SEARCH_ALPHAS) if i % 3 == k]
        assert line.y == pytest.approx([results[i] for i in results if i % 3 == k])
    parallel = search_analysis.figures["parallel_coordinates"].data[0]
    assert [d.label for d in parallel.dimensions] == ["log10(alpha)", "layers", "val mIoU (%)"]
    assert parallel.dimensions[0].values == pytest.approx([math.log10(a) for a in SEARCH_ALPHAS])


def test_report_is_one_offline_file_with_every_figure(layers_analysis, search_analysis, tmp_path):
    from plotly.io.json import to_json_plotly

    for analysis in (layers_analysis, search_analysis):
        written = write(analysis, tmp_path / analysis.protocol)
        report = (tmp_path / analysis.protocol / "report.html").read_text()
        assert written[-1].name == "report.html"
        # nothing is fetched: no script has a src, and the markup outside the scripts links nowhere
        assert all("src" not in tag for tag in re.findall(r"<script[^>]*>", report))
        markup = re.sub(r"<script[^>]*>.*?</script>", "", report, flags=re.DOTALL)
        assert not re.search(r"(src|href)\s*=", markup)
        assert report.count("Plotly.newPlot(") == len(analysis.figures) >= 3
        assert report.count("plotly.js v") == 1  # the bundle, inlined once
        for name, fig in analysis.figures.items():
            assert f'id="figure-{name}"' in report
            assert to_json_plotly(fig.to_dict()["data"]) in report, name
        for table in analysis.tables:
            for suffix in (".md", ".tex", ".csv", ".html"):
                assert (tmp_path / analysis.protocol / f"{table.name}{suffix}").is_file()
            assert f'id="table-{table.name}"' in report
        for name in analysis.figures:
            assert (tmp_path / analysis.protocol / "figures" / f"{name}.html").is_file()
    assert {"alpha_sweep", "learning_curves", "parallel_coordinates", "best_so_far", "value_distributions",
            "per_class_1"} <= set(search_analysis.figures)


def test_script_takes_the_newest_study_without_torch_or_ray(storage):
    check = (
        "import runpy, sys; sys.argv = ['ablation.py', '--results', sys.argv[1]];"
        "runpy.run_path('analysis/ablation.py', run_name='__main__');"
        "heavy = sorted(m for m in ('torch', 'ray', 'torchvision') if m in sys.modules);"
        "print('HEAVY', heavy)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", check, str(storage)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Table 3: distilled layers") and "HEAVY []" in out.stdout
    analysis = storage / "ablation" / "analysis"
    assert {"table3.md", "table3.tex", "table3.csv", "table3.html", "report.html"} <= {p.name for p in analysis.iterdir()}
    csv = pd.read_csv(analysis / "table3.csv").set_index("row")
    assert csv.loc["resnet18 | attnfd | layers=decoder", "miou_pct_mean"] == pytest.approx(71)
    assert pd.isna(csv.loc["resnet18 | attnfd | layers=backbone+decoder", "miou_pct_mean"])


def test_bad_input_is_one_line_and_exit_2(tmp_path, storage, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--results", str(tmp_path / "nowhere")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == f"attnfd: error: results folder not found: {tmp_path / 'nowhere'}"
    with pytest.raises(SystemExit):
        main(["--results", str(storage / "ablation"), "--compare", "resnet18 | none", "layers=decoder"])
    err = capsys.readouterr().err
    assert err.startswith("attnfd: error: 'layers=decoder' names 2 rows") and err.count("\n") == 1


def test_search_trials_run_in_the_order_of_their_first_report(tmp_path):
    # a search's trial ids are random: the rows' time orders the trials and the best-so-far curve
    runs = {"f00d": (30.0, 0.4), "0bad": (10.0, 0.2), "beef": (20.0, 0.5)}
    trials = []
    for trial_id, (started, miou) in runs.items():
        rows = trial(trial_id, [(miou - 0.1, miou - 0.1, [0.5] * 3, 1.0), (miou, miou, [0.5] * 3, 0.9)])
        for i, row in enumerate(rows):
            row["time"] = started + i
        trials.append(rows)
    folder = write_study(tmp_path, "order", trials, protocol="search", seeds=[0], class_names=CLASSES)

    study = load_study(folder)
    assert list(study.trials["trial_id"]) == ["0bad", "beef", "f00d"]
    from attnfd.analysis.figures import best_so_far

    curve = best_so_far(study).data[0]
    assert list(curve.x) == [2, 4, 6] and list(curve.y) == pytest.approx([20.0, 50.0, 50.0])
