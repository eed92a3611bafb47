"""Tables, tests of significance, search summaries and the report, checked against numbers
computed by hand from results folders written by hand (tests/analysis_results_folder.py)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
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
from scipy import stats as scipy_stats
from scipy.special import betainc

from attnfd.analysis import analyse, build_rows, load_study, protocol_table, write
from attnfd.analysis.cli import main
from attnfd.analysis.render import to_latex, to_markdown
from attnfd.analysis.search import importances, optuna_study, value_distribution

REPO = Path(__file__).resolve().parents[1]


def t_tail(t: float, df: float) -> float:
    """Two-sided tail of Student's t, via the regularised incomplete beta."""
    return float(betainc(df / 2, 0.5, df / (df + t * t)))


def welch_by_hand(a: list[float], b: list[float]) -> float:
    """Welch's two-sided p from its definition."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se2 = va / na + vb / nb
    t = (ma - mb) / math.sqrt(se2)
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    return t_tail(t, df)


def paired_by_hand(a: dict, b: dict) -> tuple[float, float, float, float]:
    """Mean paired difference over the shared seeds, its 95% t interval and the paired t p
    (NaN for the interval and p when the differences do not vary)."""
    d = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    n, m = len(d), sum(d) / len(d)
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
    if sd == 0:
        return m, math.nan, math.nan, math.nan
    half = scipy_stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return m, m - half, m + half, t_tail(m / (sd / math.sqrt(n)), n - 1)


def holm_by_hand(p: dict) -> dict:
    """Holm's step-down over the finite p-values, written out: the k-th smallest times (m - k + 1),
    never below the one before, at most 1."""
    tested = sorted((v, k) for k, v in p.items() if math.isfinite(v))
    out, running = {k: math.nan for k in p}, 0.0
    for i, (v, k) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - i) * v))
        out[k] = running
    return out


# per row of the resnet18 block: (mIoU % per completed seed, pixel accuracy % per seed with one)
HAND = {
    "resnet18 | none": ({0: 60, 1: 62, 2: 64}, {0: 70, 1: 71, 2: 72}),
    # seed 1 from epoch 1; seed 2 has no accuracy
    "resnet18 | attnfd | layers=backbone": ({0: 60, 1: 57, 2: 63}, {0: 70, 1: 68}),
    "resnet18 | attnfd | layers=encoder": ({0: 65, 1: 67}, {0: 75, 1: 77}),  # seed 2 never ran
    "resnet18 | attnfd | layers=decoder": ({0: 70, 1: 71, 2: 72}, {0: 80, 1: 80, 2: 83}),
    "resnet18 | attnfd | layers=backbone+decoder": ({}, {}),  # its one trial failed
    "resnet18 | attnfd | layers=backbone+encoder+decoder": ({0: 72, 1: 74}, {0: 82, 1: 84}),  # seed 2 failed
}
BASE, BEST = "resnet18 | none", "resnet18 | attnfd | layers=backbone+encoder+decoder"


def mean(v):
    v = list(v.values()) if isinstance(v, dict) else v
    return sum(v) / len(v)


def std(v):
    v = list(v.values()) if isinstance(v, dict) else v
    m = mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def hand_holm(metric: int) -> dict:
    """Holm-corrected paired p of each resnet18 row against the plain student (metric 0: mIoU, 1: accuracy)."""
    return holm_by_hand({label: paired_by_hand(values[metric], HAND[BASE][metric])[3]
                         for label, values in HAND.items() if label != BASE and values[metric]})


@pytest.fixture(scope="module")
def storage(module_tmp):
    root = module_tmp
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
    holm = (hand_holm(0), hand_holm(1))
    # the family: the rows whose paired differences vary (encoder's and all-taps' mIoU gain 5 and 12 at both seeds)
    assert {k for k, v in holm[0].items() if math.isfinite(v)} == {"resnet18 | attnfd | layers=backbone",
                                                                  "resnet18 | attnfd | layers=decoder"}
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
            assert pd.isna(r["miou_pct_delta"]) and pd.isna(r["miou_p"]) and bool(r["is_base"])
            continue
        for i, metric in enumerate(("miou", "pixel_acc")):
            mine, base = (miou, acc)[i], HAND[BASE][i]
            diff, low, high, p = paired_by_hand(mine, base)
            assert r[f"{metric}_test"] == "paired t" and r[f"{metric}_pairs"] == len(set(mine) & set(base))
            assert r[f"{metric}_pct_delta"] == pytest.approx(mean(mine) - mean(base))
            assert r[f"{metric}_pct_diff"] == pytest.approx(diff)
            for column, expected in ((f"{metric}_pct_ci_low", low), (f"{metric}_pct_ci_high", high), (f"{metric}_p", p),
                                     (f"{metric}_p_corrected", holm[i][label])):
                assert (pd.isna(r[column]) and math.isnan(expected)) or r[column] == pytest.approx(expected, rel=1e-9), column
            assert r[f"{metric}_p_welch"] == pytest.approx(welch_by_hand(list(mine.values()), list(base.values())),
                                                           rel=1e-9)
            assert bool(r[f"{metric}_significant"]) == (holm[i][label] < 0.05)
    # decoder: differences 10, 9, 8 over 3 seeds; its exact p is the sign-flip floor 2 / 2**3
    assert frame.loc["resnet18 | attnfd | layers=decoder", "miou_p_exact"] == pytest.approx(0.25)
    assert frame.loc["resnet18 | attnfd | layers=decoder", "miou_paired_seeds"] == "0,1,2"
    for label, (miou, _) in HAND.items():
        if miou and label != BEST:
            diff, _, _, p = paired_by_hand(miou, HAND[BEST][0])
            assert frame.loc[label, "miou_pct_vs_best"] == pytest.approx(diff)
            got = frame.loc[label, "miou_p_vs_best"]
            assert (pd.isna(got) and math.isnan(p)) or got == pytest.approx(p, rel=1e-9)
    assert frame.loc[BEST, "is_best"] and frame["is_best"].sum() == 2  # one per student
    assert frame.loc["resnet18 | attnfd | layers=encoder", "missing_seeds"] == "2"
    assert frame.loc[BEST, "failed"] == 1
    # differences without spread (deterministic seeds): a difference, but no test
    mobile = frame.loc["mobilenet_v2 | attnfd | layers=decoder"]
    assert mobile["miou_pct_diff"] == pytest.approx(5) and pd.isna(mobile["miou_p"]) and pd.isna(mobile["miou_pct_ci_low"])
    assert frame.loc[BASE, "params_m"] == pytest.approx(16.6) and set(frame["correction"]) == {"holm"}


def test_table3_has_the_papers_form(layers):
    table = protocol_table(layers)
    assert table.header == ["Student", "Backbone", "Encoder", "Decoder", "Seeds", "val mIoU (%)",
                            "Δ mIoU vs no distillation [95% CI]", "test", "p", "Holm p", "p exact",
                            "val Accuracy (%)", "vs best mIoU"]
    body = [" | ".join(cells) for cells in table.body]
    holm, holm_acc = hand_holm(0), hand_holm(1)

    def row(layers: str) -> str:
        return f"resnet18 | attnfd | layers={layers}"

    def gain(layers: str) -> str:
        d, low, high, _ = paired_by_hand(HAND[row(layers)][0], HAND[BASE][0])
        return f"{d:+.2f} [{low:+.2f}, {high:+.2f}]" if math.isfinite(low) else f"{d:+.2f}"

    def p(value: float) -> str:
        return "" if math.isnan(value) else "<0.001" if value < 0.001 else f"{value:.3f}"

    def corrected(value: float) -> str:
        return p(value) + (" *" if value < 0.05 else "")

    def raw(layers: str) -> str:
        return p(paired_by_hand(HAND[row(layers)][0], HAND[BASE][0])[3])

    def acc(layers: str) -> str:
        d = paired_by_hand(HAND[row(layers)][1], HAND[BASE][1])[0]
        return f"{d:+.2f}, Holm p={corrected(holm_acc[row(layers)])}"

    def vs_best(layers: str) -> str:
        d, _, _, pb = paired_by_hand(HAND[row(layers) if layers else BASE][0], HAND[BEST][0])
        return f"{d:+.2f}" + (f" (paired p={pb:.3f})" if math.isfinite(pb) else "")

    assert body == [
        f"resnet18 | n/a | n/a | n/a | 3/3 | 62.00 ± 2.00 |  |  |  |  |  | 71.00 ± 1.00 | {vs_best('')}",
        (f"resnet18 | ✓ |  |  | 3/3 † | 60.00 ± 3.00 | {gain('backbone')} | paired t, 3 seeds | {raw('backbone')} | "
         f"{corrected(holm[row('backbone')])} | 0.500 | 69.00 ± 1.41 [n=2] ({acc('backbone')}) | {vs_best('backbone')}"),
        (f"resnet18 |  | ✓ |  | 2/3 † | 66.00 ± 1.41 | {gain('encoder')} | paired t, 2 seeds |  |  | 0.500 | "
         f"76.00 ± 1.41 ({acc('encoder')}) | {vs_best('encoder')}"),
        (f"resnet18 |  |  | ✓ | 3/3 | 71.00 ± 1.00 | {gain('decoder')} | paired t, 3 seeds | {raw('decoder')} | "
         f"{corrected(holm[row('decoder')])} | 0.250 | 81.00 ± 1.73 ({acc('decoder')}) | {vs_best('decoder')}"),
        "resnet18 | ✓ |  | ✓ | 0/3 † | - | - |  |  |  |  | - | -",
        (f"resnet18 | ✓ | ✓ | ✓ | 2/3 † | 73.00 ± 1.41 | {gain('backbone+encoder+decoder')} | "
         f"paired t, 2 seeds |  |  | 0.500 | 83.00 ± 1.41 ({acc('backbone+encoder+decoder')}) | best"),
        "mobilenet_v2 | n/a | n/a | n/a | 3/3 | 50.00 ± 0.00 |  |  |  |  |  | 60.00 ± 0.00 | -5.00",
        "mobilenet_v2 |  |  | ✓ | 3/3 | 55.00 ± 0.00 | +5.00 | paired t, 3 seeds |  |  | 0.250 | 65.00 ± 0.00 (+5.00) | best",
    ]
    # the decoder row stays significant after Holm's correction; backbone's loss does not
    assert holm[row("decoder")] < 0.05 < holm[row("backbone")]
    assert table.bold == {5, 7} and table.rule_before == {6}
    notes = "\n".join(table.notes)
    assert "layers=encoder: 2 of 3 seeds (missing seed 2)" in notes
    assert "failed after epoch 1: loss is nan at epoch 2, step 1 (ce=nan)" in notes
    assert "has no val Accuracy at epoch 2" in notes
    assert "Holm's correction over each block's comparisons with its no-distillation row (resnet18: 2)" in notes
    markdown = to_markdown(table)
    assert "| **resnet18** | **✓** | **✓** | **✓** | **2/3 †** |" in markdown
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(table.body)
    assert all(len(re.split(r"(?<!\\)\|", line)) - 2 == len(table.header) for line in lines)


def test_benjamini_hochberg_on_request(layers):
    """--correction bh: the same raw p-values, stepped up instead of down."""
    frame = protocol_table(layers, correction="bh").frame.set_index("row")
    raw = {label: paired_by_hand(HAND[label][1], HAND[BASE][1])[3] for label in HAND if label != BASE and HAND[label][1]}
    ranked = sorted(raw, key=raw.get)
    m = len(ranked)
    # by hand: the k-th smallest times m / k, never above the one after it
    expected, running = {}, 1.0
    for k in range(m, 0, -1):
        running = min(running, raw[ranked[k - 1]] * m / k)
        expected[ranked[k - 1]] = running
    for label, value in expected.items():
        assert frame.loc[label, "pixel_acc_p_corrected"] == pytest.approx(value, rel=1e-9)
    assert set(frame["correction"]) == {"bh"}
    assert protocol_table(layers, correction="bh").header[9] == "BH p"


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


def test_a_file_uri_is_the_local_folder(storage, tmp_path, capsys):
    for name, results in (("path", str(storage / "ablation")), ("uri", (storage / "ablation").as_uri())):
        main(["--results", results, "--out", str(tmp_path / name)])
    capsys.readouterr()
    assert [p.read_text() for p in sorted((tmp_path / "uri").glob("*.csv"))] == \
        [p.read_text() for p in sorted((tmp_path / "path").glob("*.csv"))]
    assert len(list((tmp_path / "uri").glob("*.csv"))) >= 3


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


def readme_block(heading: str) -> str:
    """The first indented code block after a README heading, dedented."""
    text = (REPO / "README.md").read_text().split(heading, 1)[1]
    lines, started = [], False
    for line in text.splitlines():
        if line.startswith("    ") or (started and not line.strip()):
            started = True
            lines.append(line[4:])
        elif started:
            break
    return "\n".join(lines)


def every_column(study: Path) -> tuple[set[str], int]:
    """The columns of all a study's epoch files together, and their rows."""
    files = sorted((study / "results" / "epochs").glob("*.parquet"))
    return set().union(*(pq.read_schema(f).names for f in files)), sum(pq.read_metadata(f).num_rows for f in files)


def run_readme_block(heading: str, study: Path) -> dict:
    """A README code block run as written, its ``STUDY = ...`` line pointed at ``study``; its names."""
    code = re.sub(r'^STUDY = .*$', f"STUDY = {str(study)!r}", readme_block(heading), count=1, flags=re.MULTILINE)
    found: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy on rows with one seed or no spread
        exec(compile(code, "README.md", "exec"), found)  # noqa: S102 - the README's own text, run as documented
    return found


def test_the_readmes_way_to_read_the_rows_keeps_every_column(storage):
    """README, "Results files": the trials' files differ in their columns (the plain student's,
    the first, has no alpha and no loss_attnfd.<tap>); the loader it shows drops none."""
    columns, count = every_column(storage / "ablation")
    assert {"alpha", "loss_attnfd.backbone", "loss_attnfd.encoder", "loss_attnfd.decoder"} <= columns
    found = run_readme_block("## Results files", storage / "ablation")
    assert set(found["rows"].columns) == columns and len(found["rows"]) == count
    assert len(found["trials"]) == len(list((storage / "ablation" / "results" / "epochs").glob("*.parquet")))


def test_the_readmes_pandas_expressions_rebuild_table3(storage):
    """README, "Every number from the rows": run as written on the study's rows, it gives the CSV's
    numbers, from rows that keep every column of every file."""
    found = run_readme_block("### Every number from the rows", storage / "ablation")
    columns, count = every_column(storage / "ablation")
    assert set(found["rows"].columns) == columns and len(found["rows"]) == count
    holm_frame = protocol_table(load_study(storage / "ablation")).frame.set_index("row")
    bh_frame = protocol_table(load_study(storage / "ablation"), correction="bh").frame.set_index("row")
    assert set(found["table"]) == {"backbone", "encoder", "decoder", "backbone,encoder,decoder"}  # the failed row has none
    for layers, values in found["table"].items():
        row = holm_frame.loc[f"resnet18 | attnfd | layers={layers.replace(',', '+')}"]
        for key, column in (("mean", "miou_pct_mean"), ("std", "miou_pct_std"), ("n", "miou_n"), ("diff", "miou_pct_diff"),
                            ("ci_low", "miou_pct_ci_low"), ("ci_high", "miou_pct_ci_high"), ("p", "miou_p"),
                            ("p_welch", "miou_p_welch")):
            expected = row[column]
            assert (pd.isna(expected) and math.isnan(values[key])) or values[key] == pytest.approx(expected, rel=1e-9), \
                (layers, key)
    for layers in found["p"].index:
        label = f"resnet18 | attnfd | layers={layers.replace(',', '+')}"
        assert found["holm"][layers] == pytest.approx(holm_frame.loc[label, "miou_p_corrected"], rel=1e-9)
        assert found["bh"][layers] == pytest.approx(bh_frame.loc[label, "miou_p_corrected"], rel=1e-9)


def test_seeds_needed_from_the_blocks_paired_spread(layers):
    from attnfd.analysis import stats
    from attnfd.analysis.seeds import seeds_table

    frame = seeds_table(build_rows(layers), detect=1.0).frame.set_index("block")
    r = frame.loc["resnet18"]
    # by hand, the per-seed differences with the plain student: backbone 0, -5, -1 (mean -2), encoder 5, 5,
    # decoder 10, 9, 8 (mean 9), all three taps 12, 12; squares about their means 14 + 0 + 2 + 0 over 2+1+2+1 df
    sd = math.sqrt(16 / 6)
    assert r["paired_sd_pct"] == pytest.approx(sd) and r["paired_sd_df"] == 6
    assert r["seeds"] == 3 and r["comparisons"] == 2 and r["alpha_strict"] == pytest.approx(0.025)
    assert stats.paired_power(r["detectable_pct"], sd, 3) == pytest.approx(0.8, abs=1e-6)
    assert stats.paired_power(r["detectable_pct_strict"], sd, 3, alpha=0.025) == pytest.approx(0.8, abs=1e-6)
    n = int(r["seeds_needed"])
    assert stats.paired_power(1.0, sd, n) >= 0.8 > stats.paired_power(1.0, sd, n - 1)
    assert r["seeds_needed_strict"] > n
    # mobilenet_v2's differences never vary: nothing to say
    assert pd.isna(frame.loc["mobilenet_v2", "detectable_pct"]) and pd.isna(frame.loc["mobilenet_v2", "seeds_needed"])


def test_a_search_flags_importances_from_too_few_trials(tmp_path, search):
    from attnfd.analysis.noise import NO_NOISE
    from attnfd.analysis.search import importance_table, importance_trials_needed, values_table

    # Optuna's PED-ANOVA asks for 5 trials in its top 10%: ceil(0.1 n) >= 5 first holds at n = 41
    assert importance_trials_needed() == 41
    flagged = importance_table(search, ["alpha", "layers"])
    assert flagged.title.endswith("12 completed trials): too few trials to be a finding (41 needed)")
    assert flagged.notes[0].startswith("not a finding: computed from 12 completed trials")
    assert not flagged.frame["enough"].any()
    assert NO_NOISE in values_table(search, ["alpha", "layers"]).notes

    def study_of(n: int):
        trials = [trial(f"many_{i:05d}", [(0.5 + 0.001 * i, 0.6, [0.5] * 3, 1.0)], distill="attnfd",
                        alpha=SEARCH_ALPHAS[i % len(SEARCH_ALPHAS)], layers=SEARCH_LAYERS[i % 3]) for i in range(n)]
        return load_study(write_study(tmp_path / str(n), f"s{n}", trials, protocol="search", seeds=1,
                                      class_names=CLASSES, searched=["alpha", "layers"]))

    assert "too few" in importance_table(study_of(40), ["alpha", "layers"]).title
    enough = importance_table(study_of(41), ["alpha", "layers"])
    assert "too few" not in enough.title and enough.frame["enough"].all()
    assert not any(n.startswith("not a finding") for n in enough.notes)


def test_seed_noise_pools_the_rows_with_several_seeds(layers, tmp_path):
    from attnfd.analysis.noise import seed_noise

    noise = seed_noise(build_rows(layers), "test")
    # by hand: squares about each row's mean over its seeds: 8 (60, 62, 64), 18 (60, 57, 63), 2 (65, 67),
    # 2 (70, 71, 72), 2 (72, 74), 0 and 0 (mobilenet_v2's constant rows), over 2+2+1+2+1+2+2 = 12 df
    assert noise.configs == 7 and noise.run_df == 12 and noise.run_sd == pytest.approx(math.sqrt(32 / 12))
    # two rows at the same seeds: decoder minus the plain student, 10, 9, 8, among the pooled pairs
    assert noise.pair_df > 0 and math.isfinite(noise.pair_sd)
    single = load_study(write_study(tmp_path, "single", [
        trial("one_00000", [(0.5, 0.6, [0.5] * 3, 1.0)]), trial("one_00001", [(0.6, 0.6, [0.5] * 3, 1.0)], distill="attnfd")],
        protocol="search", seeds=1, class_names=CLASSES))
    assert seed_noise(build_rows(single), "test") is None  # one seed per config: nothing measured it


def test_figures_label_log_ticks_with_values_and_wrap_long_titles(layers_analysis, search_analysis):
    from attnfd.analysis.figures import TITLE_WIDTH, _log_ticks

    axis = search_analysis.figures["alpha_sweep"].layout.xaxis
    assert axis.type == "log" and list(axis.tickvals) == SEARCH_ALPHAS
    assert list(axis.ticktext) == ["0.1", "0.15", "0.2", "0.3", "0.5", "0.7", "1", "1.5", "2", "3", "5", "10"]
    # a search's alphas, many and close together: 1, 2 and 5 times the powers of ten, with their values
    crowded = _log_ticks(sorted(0.1 * 100 ** (i / 39) for i in range(40)))
    assert crowded["tickvals"] == pytest.approx([0.1, 0.2, 0.5, 1, 2, 5, 10])
    assert crowded["ticktext"] == ["0.1", "0.2", "0.5", "1", "2", "5", "10"]
    for analysis in (layers_analysis, search_analysis):
        fig = analysis.figures["per_class_1"]
        lines = fig.layout.title.text.split("<br>")
        assert all(len(line) <= TITLE_WIDTH for line in lines), lines
        # both rows are named in full, the second after "vs"
        a, b = (trace.name for trace in fig.data)
        assert " | ".join(lines[1:]).replace("vs ", "", 1) == f"{a} | {b}"
