"""A ``Table`` as console text, Markdown, LaTeX (booktabs), HTML and CSV."""

from __future__ import annotations

import html

from attnfd.analysis.tables import Table

# one pass, character by character, so the braces of inserted commands are never escaped again
_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"$<$", ">": r"$>$", "|": r"\textbar{}",
    "±": r"$\pm$", "✓": r"$\checkmark$", "†": r"$\dagger$", "−": r"$-$", "≈": r"$\approx$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_text(table: Table) -> str:
    widths = [max(len(r[i]) for r in [table.header] + table.body) for i in range(len(table.header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    out = [table.title, rule, line(table.header), rule]
    for i, cells in enumerate(table.body):
        if i in table.rule_before:
            out.append(rule)
        out.append(line(cells))
    out.append(rule)
    out.extend(table.notes)
    return "\n".join(out) + "\n"


def to_markdown(table: Table) -> str:
    def line(cells: list[str], bold: bool = False) -> str:
        cells = [c.replace("|", "\\|") for c in cells]
        if bold:
            cells = [f"**{c}**" if c else c for c in cells]
        return "| " + " | ".join(cells) + " |"

    out = [f"### {table.title}", "", line(table.header), "|" + "|".join("---" for _ in table.header) + "|"]
    out += [line(cells, i in table.bold) for i, cells in enumerate(table.body)]
    if table.notes:
        out.append("")
        out += [f"- {note}" for note in table.notes]
    return "\n".join(out) + "\n"


def to_latex(table: Table) -> str:
    spec = "l" * 1 + "c" * (len(table.header) - 1)

    def line(cells: list[str], bold: bool = False) -> str:
        cells = [latex_escape(c) for c in cells]
        if bold:
            cells = [rf"\textbf{{{c}}}" if c else c for c in cells]
        return " & ".join(cells) + r" \\"

    out = [
        r"% needs \usepackage{booktabs} and \usepackage{amssymb} (for \checkmark)",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(table.title)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        line(table.header),
        r"\midrule",
    ]
    for i, cells in enumerate(table.body):
        if i in table.rule_before:
            out.append(r"\midrule")
        out.append(line(cells, i in table.bold))
    out += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        out.append(r"\par\footnotesize")
        out += [latex_escape(note) + r"\par" for note in table.notes]
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def to_html(table: Table) -> str:
    """An HTML fragment: the table and its notes."""
    out = [f'<table class="results" id="table-{html.escape(table.name)}">',
           f"<caption>{html.escape(table.title)}</caption>", "<thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in table.header]
    out.append("</tr></thead><tbody>")
    for i, cells in enumerate(table.body):
        classes = [c for c, on in (("best", i in table.bold), ("block", i in table.rule_before)) if on]
        attr = f' class="{" ".join(classes)}"' if classes else ""
        out.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in table.notes) + "</ul>")
    return "\n".join(out)


TABLE_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #111; background: #fff; }
table.results { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
table.results caption { text-align: left; font-weight: bold; padding-bottom: 0.4em; white-space: nowrap; }
table.results th, table.results td { padding: 0.25em 0.7em; text-align: center; white-space: nowrap; }
table.results th { border-top: 2px solid #111; border-bottom: 1px solid #111; }
table.results tbody tr:last-child td { border-bottom: 2px solid #111; }
table.results tr.block td { border-top: 1px solid #111; }
table.results tr.best td { font-weight: bold; }
table.results td:first-child { text-align: left; }
ul.notes { font-size: 0.85em; color: #333; }
"""


def html_page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{TABLE_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
