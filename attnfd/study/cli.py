"""The command lines of ``tune/search.py`` and ``tune/ablation.py``.

Both take the data set, the student(s), the recipe's epochs, where results go and how trials
are placed; ``--set KEY=VALUE`` fixes any other training config field for every trial. Bad
input ends the program with one line on stderr and exit status 2, before Ray starts.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime
from pathlib import Path

from attnfd.arguments import OneLineParser, config_overrides, fail, finite_float, integer, spoken_list
from attnfd.data.registry import file_dataset_names
from attnfd.errors import ConfigError
from attnfd.names import RESUME_AUTO
from attnfd.study.trackers import TRACKERS
from attnfd.study_contract import CONFIRM, RESULTS_DIR, RUNNING, SEARCH, STUDY_FILE


def _floats(text: str, flag: str) -> list[float]:
    values = []
    for item in (v.strip() for v in text.replace(":", ",").split(",")):
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"{flag} takes numbers, got {item!r} in {text!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{flag} takes finite numbers, got {item!r} in {text!r}")
        values.append(value)
    return values


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _resume(text: str) -> str:
    if text != RESUME_AUTO:
        raise argparse.ArgumentTypeError(f"takes no value (continue a study) or {RESUME_AUTO}, got {text!r}")
    return text


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="shapes",
                        help="shapes (built in, the default) or a data set on disk: "
                             f"{spoken_list(file_dataset_names(), 'or')}")
    parser.add_argument("--data-root", default=None, help="the data set's folder (default: $ATTNFD_DATA/<dataset>)")
    parser.add_argument("--epochs", type=integer, default=None, help="epochs per trial (default: the data set's recipe)")
    parser.add_argument("--storage", default=None,
                        help="a local folder or a URI such as s3://bucket/path (default: $ATTNFD_RESULTS or "
                             "~/attnfd_results); on a multi-node cluster use a URI or a shared folder")
    parser.add_argument("--name", default=None, help="the study's name (default: protocol, data set and time)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, type=_resume, metavar="auto",
                        help="continue the study --name (default: the newest one of this kind in --storage); "
                             "--resume auto continues the study --name if --storage holds it and starts it otherwise, "
                             "so a requeued job can rerun its command unchanged")
    parser.add_argument("--address", default=None, help="an existing Ray cluster, e.g. auto on a cluster's head")
    parser.add_argument("--cpus-per-trial", type=finite_float, default=1.0)
    parser.add_argument("--gpus-per-trial", type=finite_float, default=None,
                        help="0.5 lets two trials share a GPU (default: 1 when CUDA is visible, else 0)")
    parser.add_argument("--max-concurrent", type=integer, default=None, help="at most this many trials at once")
    parser.add_argument("--max-failures", type=integer, default=2,
                        help="retries of a trial whose worker died, each from its last checkpoint")
    parser.add_argument("--cache-dir", default=None, help="where teachers are cached (default: ~/.cache/attnfd)")
    parser.add_argument("--cohort", default="auto", metavar="auto|K|1",
                        help="grid cells of one seed per trial, sharing one data pipeline and one teacher forward, each "
                             "with the numbers it gets alone: auto (of the sizes that fit a trial's memory, the one with "
                             "the shortest estimated wall time on the cluster's trial slots; the default), K, or 1 (a trial per cell); a search's own trials run alone, "
                             "its confirm stage in cohorts")
    parser.add_argument("--optuna-storage", default=None, metavar="URL",
                        help="the study's Optuna study in a database by SQLAlchemy URL, e.g. postgresql://user@host/db "
                             "(default: a journal file, <study>/optuna.journal; none: no persistent study); "
                             "optuna-dashboard shows it")
    parser.add_argument("--tracker", dest="trackers", action="append", default=[], choices=tuple(TRACKERS),
                        help="also report every trial to this experiment tracker (repeatable; needs its package: "
                             "pip install 'attnfd[<tracker>]')")
    parser.add_argument("--mlflow-uri", default=None,
                        help="MLflow's tracking URI for --tracker mlflow (default: a file store, <study>/mlruns)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="any training config field for every trial, e.g. --set image_size=96 (repeatable)")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("--verbose", action="store_true",
                      help="also Ray's status tables (every trial's whole config, every 30 s) and Ray's own warnings")
    loud.add_argument("--quiet", action="store_true",
                      help="only the teacher's lines, a summary every minute and the outcome; no line per trial event")


def _storage(args) -> str:
    if args.storage:
        return args.storage
    from attnfd.analysis.results import default_storage

    return str(default_storage())


def _gpus(args) -> float:
    if args.gpus_per_trial is not None:
        return args.gpus_per_trial
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0


def _base(args) -> dict:
    base = config_overrides(args.overrides)
    base["dataset"] = args.dataset
    for key in ("data_root", "cache_dir"):
        value = getattr(args, key)
        if value:
            # trials run in other working directories, on other nodes
            base[key] = str(Path(value).expanduser().resolve())
    if args.epochs is not None:
        base["epochs"] = args.epochs
    return base


def _study_protocol(meta_file: Path) -> str | None:
    try:
        return json.loads(meta_file.read_text()).get("protocol")
    except (OSError, ValueError, AttributeError):  # a damaged study.json is no candidate
        return None


def _study_name(args, storage: str, protocol: str, default: str) -> str:
    if args.name:
        return args.name
    if args.resume == RESUME_AUTO:
        raise ConfigError("--resume auto continues or starts the study --name; give its --name")
    if args.resume:
        folder = Path(storage).expanduser()
        found = [p for p in folder.glob(f"*/{STUDY_FILE}") if "://" not in storage
                 and _study_protocol(p) == protocol]
        if not found:
            raise ConfigError(f"no {protocol} study to resume in {storage}; name one with --name")
        return max(found, key=lambda p: p.stat().st_mtime).relative_to(folder).parts[0]
    return f"{default}-{datetime.now():%Y%m%d-%H%M%S}"


def _check_placement(args) -> None:
    if args.cpus_per_trial <= 0:
        raise ConfigError(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial:g}")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise ConfigError(f"--gpus-per-trial must be >= 0, got {args.gpus_per_trial:g}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.max_failures < 0:
        raise ConfigError(f"--max-failures must be >= 0, got {args.max_failures}")
    for flag, value in (("--name", args.name), ("--storage", args.storage)):
        if value is not None and not value.strip():
            raise ConfigError(f"{flag} is empty")
    if args.name is not None and ("/" in args.name or args.name in (".", "..")):
        raise ConfigError(f"--name must be a plain folder name, got {args.name!r}")


def _spec_kwargs(args, storage: str) -> dict:
    from attnfd.study.cohorts import parse_cohort

    return {"storage": storage, "resume": args.resume, "cohort": parse_cohort(args.cohort), "address": args.address, "cpus_per_trial": args.cpus_per_trial,
            "gpus_per_trial": _gpus(args), "max_concurrent": args.max_concurrent, "max_failures": args.max_failures,
            "verbose": 1 if args.verbose else -1 if args.quiet else 0, "optuna_storage": args.optuna_storage,
            "trackers": tuple(dict.fromkeys(args.trackers)), "mlflow_uri": args.mlflow_uri}


def _run(prog: str, args, make_spec) -> None:
    try:
        _check_placement(args)
        spec = make_spec()
        from attnfd.study.runner import best_row, run_study

        rows = run_study(spec)
    except ConfigError as err:
        fail(str(err), prog)
    except OSError as err:  # storage that fails once the study runs (a full disk, a revoked bucket)
        fail(f"{type(err).__name__}: {err}", prog)
    # the search's own best trial; the confirm stage's verdict is printed beside it
    _print_outcome(spec, rows, best_row([r for r in rows if r.get("phase") != CONFIRM]))


def _print_outcome(spec, rows: list[dict], best: dict | None) -> None:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("status") or "unknown"] = counts.get(row.get("status") or "unknown", 0) + 1
    print(f"\nstudy {spec.name}: {len(rows)} trials (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")")
    if best is not None:
        shown = {k.removeprefix("config/"): best[k] for k in ("config/backbone", "config/distill", "config/alpha",
                                                              "config/layers", "config/alpha_schedule", "config/seed")}
        shown.update({k: best[f"config/{k}"] for k in spec.searched if f"config/{k}" in best})
        one = " (one run, one seed)" if spec.search else ""
        print(f"best trial{one}: val mIoU {best['miou']:.4f}, pixel acc {best['pixel_acc']:.4f}, trial {best['trial_id']}")
        print("best config: " + json.dumps(shown))
    for line in _confirmation(spec, rows):
        print(line)
    if counts.get(RUNNING):
        print(f"unfinished trials remain; continue with --resume --name {spec.name}")
    print(f"results: {spec.folder}/{RESULTS_DIR} (analyse with: python analysis/ablation.py --results {spec.folder})")


def _confirmation(spec, rows: list[dict]) -> list[str]:
    """What the confirm stage found, computed by the analysis from the results folder."""
    if not spec.search or not any(r.get("phase") == CONFIRM for r in rows):
        return []
    from attnfd.analysis.confirm import Confirmation
    from attnfd.analysis.results import load_study

    return [f"confirm stage: {line}" for line in Confirmation(load_study(spec.folder)).summary_lines()]


def search_main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(
        prog="search", description="Optuna (TPE) search over alpha, the distilled layer subset and the alpha-decay "
        "variant, one Ray Tune trial per config; the paper's setting is evaluated first and ASHA stops poor trials. "
        "Then the confirm stage reruns the best configs, the paper's setting and the student alone over fresh seeds.")
    _common(parser)
    parser.add_argument("--student", default="resnet18", help="the student backbone")
    parser.add_argument("--num-samples", type=integer, default=6,
                        help="trials in the search, besides the reference trial of the student alone (default 6)")
    parser.add_argument("--seed", type=integer, default=0, help="the sampler's and every trial's seed")
    parser.add_argument("--alpha-range", default="0.1:30", help="alpha's log-uniform range, LOW:HIGH")
    parser.add_argument("--search", default="",
                        help="more dimensions to search: teacher_gate, norm, tap_relu, method, or a method's option "
                             "(kd.temperature: a decade either side of its default; --set distill=kd to distil with it)")
    parser.add_argument("--no-asha", action="store_true", help="run every trial to its last epoch")
    parser.add_argument("--taps", default="backbone,encoder,decoder",
                        help="the taps whose subsets are tried: the paper's backbone,encoder,decoder (default) plus any of "
                             "stage1,stage2,stage3 (the backbone's earlier stages)")
    parser.add_argument("--confirm", type=integer, default=3, metavar="K",
                        help="after the search, rerun its K best completed configs, the paper's setting and the student "
                             "alone over --confirm-seeds fresh seeds, paired (default 3; 0: no confirm stage)")
    parser.add_argument("--confirm-seeds", type=integer, default=3, metavar="N",
                        help="seeds of the confirm stage: --seed + 1 ... --seed + N (default 3)")
    args = parser.parse_args(argv)

    def make_spec():
        if args.confirm < 0:
            raise ConfigError(f"--confirm must be >= 0, got {args.confirm}")
        if args.confirm_seeds < 1:
            raise ConfigError(f"--confirm-seeds must be >= 1, got {args.confirm_seeds}")
        alpha_range = _floats(args.alpha_range, "--alpha-range")
        if len(alpha_range) != 2:
            raise ConfigError(f"--alpha-range takes LOW:HIGH, got {args.alpha_range!r}")
        from attnfd.study.space import SearchSpace

        space = SearchSpace(alpha_range=tuple(alpha_range), extra=tuple(_names(args.search)),
                            taps=tuple(_names(args.taps)), dataset=args.dataset)
        # a search distils with AttnFD unless --set distill= says otherwise, or the method is searched
        distill = {} if "distill" in space.dimensions else {"distill": "attnfd"}
        # the flags' values first: the runner imports torch and ray
        base = {**distill, **_base(args), "backbone": args.student, "role": "student"}
        from attnfd.study.runner import StudySpec

        storage = _storage(args)
        name = _study_name(args, storage, SEARCH, f"{SEARCH}-{args.dataset}-{args.student}")
        return StudySpec(protocol=SEARCH, base=base, name=name, space=space, searched=space.dimensions,
                         seeds=[args.seed], num_samples=args.num_samples, sampler_seed=args.seed,
                         asha=not args.no_asha, confirm=args.confirm, confirm_seeds=args.confirm_seeds,
                         **_spec_kwargs(args, storage))

    _run("search", args, make_spec)


def ablation_main(argv: list[str] | None = None) -> None:
    from attnfd.study.protocols import GRID_PROTOCOLS

    parser = OneLineParser(
        prog="ablation", description="The paper's protocols as grids, each cell repeated over seeds: layers "
        "(Table 3), methods (Table 1) or an alpha sweep; every trial runs to its last epoch.")
    _common(parser)
    parser.add_argument("--protocol", default="layers", choices=tuple(GRID_PROTOCOLS))
    parser.add_argument("--students", default="resnet18,mobilenet_v2", help="comma-separated student backbones")
    parser.add_argument("--seeds", type=integer, default=3, help="seeds per cell (0, 1, ...)")
    parser.add_argument("--alphas", default="0.1,0.3,1,3,10", help="alpha protocol: the alphas to sweep")
    parser.add_argument("--layer-subsets", default="backbone,encoder,decoder",
                        help="alpha protocol: the layer subsets, separated by ';' (e.g. 'encoder;encoder,decoder')")
    parser.add_argument("--methods", default=None, help="methods protocol: the methods (default: every registered)")
    parser.add_argument("--taps", default="backbone,encoder,decoder",
                        help="layers protocol: the taps whose subsets are tried: the paper's backbone,encoder,decoder (default) plus any of "
                             "stage1,stage2,stage3 (the backbone's earlier stages)")
    args = parser.parse_args(argv)

    def make_spec():
        if args.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
        layer_subsets = [s.strip() for s in args.layer_subsets.split(";") if s.strip()]
        if args.protocol == "alpha" and not layer_subsets:
            raise ConfigError(f"--layer-subsets {args.layer_subsets!r} names no layer subset; "
                              "give e.g. 'encoder;backbone,encoder,decoder'")
        methods = None
        if args.methods is not None:
            methods = _names(args.methods)
            if not methods:
                raise ConfigError(f"--methods {args.methods!r} names no method; give e.g. attnfd,kd")
        alphas = _floats(args.alphas, "--alphas")
        base = {**_base(args), "role": "student"}
        # the flags' values first: the runner imports torch and ray
        from attnfd.study.protocols import protocol_cells
        from attnfd.study.runner import StudySpec

        cells = protocol_cells(args.protocol, _names(args.students), alphas=alphas, layer_subsets=layer_subsets,
                               methods=methods, taps=tuple(_names(args.taps)))
        storage = _storage(args)
        name = _study_name(args, storage, args.protocol, f"{args.protocol}-{args.dataset}")
        return StudySpec(protocol=args.protocol, base=base, name=name, cells=cells, searched=list(GRID_PROTOCOLS[args.protocol].varied),
                         seeds=list(range(args.seeds)), **_spec_kwargs(args, storage))

    _run("ablation", args, make_spec)
