"""``python analysis/ablation.py``: print a study's table and write its tables, figures and report."""

from __future__ import annotations

import argparse

from attnfd.analysis.folder import is_uri
from attnfd.analysis.render import to_text
from attnfd.analysis.report import Analysis, analyse, write
from attnfd.analysis.results import DEFAULT_STORAGE, STORAGE_ENV, ResultsError, Study, load_study
from attnfd.analysis.stats import CORRECTIONS
from attnfd.analysis.tables import table_protocols
from attnfd.arguments import OneLineParser, fail, finite_float, integer


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="ablation.py",
        description="Tables (Markdown, LaTeX, CSV, HTML), plotly figures and one offline HTML report from a "
                    "study's results folder. Needs no torch and no ray.",
    )
    p.add_argument("--results", default=None,
                   help=f"a study folder, its results/ folder, or a storage folder (its newest study is taken), "
                        f"local or a URI pyarrow reads (s3://bucket/path, gs://..., file://...); "
                        f"default: ${STORAGE_ENV} or {DEFAULT_STORAGE}")
    p.add_argument("--protocol", choices=table_protocols(), default=None,
                   help="which tables: layers (Table 3), methods (Table 1), alpha (sweep) or search "
                        "(best configs, importances, mIoU per value); default: the study's own")
    p.add_argument("--out", default=None,
                   help="a local folder to write into (default: <study>/analysis; ./<study name>-analysis for a "
                        "study read from a URI)")
    p.add_argument("--watch", nargs="?", type=finite_float, const=30.0, default=None, metavar="SECONDS",
                   help="while the study runs: rebuild the tables and report every SECONDS (default 30) and say how "
                        "many trials completed, run, failed or stopped; ends when every planned trial has ended, "
                        "or on Ctrl-C")
    p.add_argument("--compare", nargs=2, metavar=("ROW_A", "ROW_B"), default=None,
                   help="two row labels (or unique parts of them) for the per-class IoU figure; "
                        "default: per student, no distillation against the best row")
    p.add_argument("--top", type=integer, default=10, help="best configurations listed for a search (default 10)")
    p.add_argument("--correction", choices=tuple(CORRECTIONS), default="holm",
                   help="how the p-values of a block's comparisons with its no-distillation row are corrected: holm "
                        "(Holm's step-down, family-wise error; the default) or bh (Benjamini-Hochberg, false discovery rate)")
    p.add_argument("--detect", type=finite_float, default=1.0, metavar="POINTS",
                   help="the seeds-needed table says how many seeds detect a difference of this many val mIoU points "
                        "(80%% power, alpha 0.05; default 1.0)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.top < 1:
        fail(f"--top must be >= 1, got {args.top}")
    if not args.detect > 0:
        fail(f"--detect must be > 0 (val mIoU points), got {args.detect:g}")
    if args.watch is not None and not args.watch > 0:
        fail(f"--watch must be > 0 seconds, got {args.watch:g}")
    if args.out is not None and is_uri(args.out):
        fail(f"--out must be a local folder, got the URI {args.out.split('?', 1)[0]}; write here, then copy it up")

    def build(study: Study) -> tuple[Analysis, list]:
        analysis = analyse(study, protocol=args.protocol, compare=tuple(args.compare) if args.compare else None,
                           top=args.top, correction=args.correction, detect=args.detect)
        return analysis, write(analysis, args.out)

    try:
        if args.watch is None:
            built = build(load_study(args.results))
        else:
            from attnfd.analysis.watch import watch

            built = watch(args.results, args.watch, build)
            if built is None:
                print("no trial reported: nothing written")
                return
    except ResultsError as err:
        fail(str(err))
    except OSError as err:
        fail(f"{type(err).__name__}: {err}")
    analysis, written = built
    for table in analysis.tables:
        print(to_text(table))
    print(f"wrote {len(written)} files to {written[-1].parent}; open {written[-1]}")


if __name__ == "__main__":
    main()
