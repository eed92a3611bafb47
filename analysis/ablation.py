"""Table 3-style tables, significance tests, plots and one offline HTML report from a study.

    python analysis/ablation.py                       # the newest study in ~/attnfd_results
    python analysis/ablation.py --results DIR         # a study folder (or a storage folder)
    python analysis/ablation.py --results s3://bucket/studies/NAME   # read in place (any pyarrow URI)
    python analysis/ablation.py --protocol methods    # Table 1 instead of the study's own protocol
    python analysis/ablation.py --watch               # while the study runs, every 30 s

Writes <study>/analysis/ (./<name>-analysis/ for a study read from a URI): the tables as
.md, .tex, .csv and .html, figures/*.html and report.html. Run ``--help`` for every option.
"""

from attnfd.analysis.cli import main

if __name__ == "__main__":
    main()
