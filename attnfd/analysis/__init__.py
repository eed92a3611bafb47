"""Tables, statistics and figures from a study's results folder.

Reads only the Parquet and JSON files described in the README ("Results files"); imports
neither torch nor ray, so a copied results folder can be analysed on any machine.

    from attnfd.analysis import load_study, analyse, write
    analysis = analyse(load_study("~/attnfd_results/my_study"))   # or "s3://bucket/studies/my_study"
    write(analysis)            # tables, figures and report.html in <study>/analysis/
"""

from attnfd.analysis.report import Analysis, analyse, report_html, write
from attnfd.analysis.results import ResultsError, Study, find_study, load_study
from attnfd.analysis.tables import Row, Table, build_rows, protocol_table

__all__ = [
    "Analysis", "ResultsError", "Row", "Study", "Table", "analyse", "build_rows", "find_study", "load_study",
    "protocol_table", "report_html", "write",
]
