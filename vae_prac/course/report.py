"""The grader's HTML report: one page an instructor can open after grading a cohort.

``vae-prac grade ... --html report.html`` (or ``write_html(grades, path)``) writes a
single, self-contained file: its style sheet and its bar chart (SVG) are inline and it
loads nothing from anywhere, so it opens the same offline, attached to an e-mail or on a
machine with no network. It shows

* **the pass rate of every check**, notebook by notebook, as a bar chart: the checks a
  cohort stumbles on stand out as short bars;
* **the most common hints**: the "not yet" messages the most students received, which
  say what to explain again in the next session;
* **problems**, flagged: runs that timed out, kernels that died, submissions that could
  not be read or recognised, a file name that disagrees with the notebook's metadata,
  grading without the sandbox;
* **each submission's row**: which notebook, passed out of expected, what has not
  passed yet, and the notes.

Everything that comes from a submission (its path, the hints its functions provoked,
error messages) is HTML-escaped: a student who names a file ``<script>...`` gets that
text shown, not run.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from pathlib import Path

from vae_prac.checks import NOT_YET, PASSED

#: How many of the most common hints the report lists.
TOP_HINTS = 15

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 70em; padding: 0 1em; color: #1d2330; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #dde2ea;
         vertical-align: top; }
th { background: #f2f4f8; }
tr.problem td { background: #fff4e5; }
.flag { display: inline-block; border-radius: .3em; padding: 0 .4em; margin: 0 .3em .2em 0;
        font-size: .85em; background: #ffe0b2; color: #7a3e00; }
.flag.severe { background: #ffcdd2; color: #8e0000; }
.summary { display: flex; gap: 2em; flex-wrap: wrap; }
.summary div { background: #f2f4f8; border-radius: .4em; padding: .6em 1em; }
.summary b { display: block; font-size: 1.5em; }
svg text { font: 12px system-ui, sans-serif; fill: #1d2330; }
code { font-size: .9em; }
"""


def _e(value) -> str:
    """``value`` as text, HTML-escaped (quotes too: it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def flags(grade) -> list[tuple[str, bool]]:
    """What went wrong with one submission's grading: (label, severe) pairs."""
    found = []
    if getattr(grade, "timed_out", False):
        found.append(("timed out", True))
    if getattr(grade, "dead_kernel", False):
        found.append(("kernel died", True))
    problem = grade.problem or ""
    if problem and not found:
        found.append(("problem", True))
    if not getattr(grade, "sandboxed", True):
        found.append(("sandbox off", False))
    if getattr(grade, "identity_note", None):
        found.append(("name and metadata disagree", False))
    return found


def pass_rates(grades) -> dict[str, dict[str, tuple[int, int]]]:
    """Notebook -> check -> (passed, graded), in the order the checks are expected."""
    rates: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for grade in grades:
        notebook = grade.identity or "(unrecognised)"
        for name in grade.expected:
            counts = rates[notebook].setdefault(name, [0, 0])
            counts[0] += grade.checks.get(name) == PASSED
            counts[1] += 1
    return {
        notebook: {name: (p, n) for name, (p, n) in checks.items()}
        for notebook, checks in sorted(rates.items())
    }


def common_hints(grades, top: int = TOP_HINTS) -> list[tuple[int, str, str]]:
    """The most frequent (count, check, hint) among the checks graded "not yet"."""
    counter = Counter(
        (name, grade.details.get(name, ""))
        for grade in grades
        for name, status in grade.checks.items()
        if status == NOT_YET
    )
    return [(count, name, hint) for (name, hint), count in counter.most_common(top)]


def _bar_chart(rates) -> str:
    """An inline SVG of horizontal bars, one per check, grouped by notebook."""
    rows = []
    for notebook, checks in rates.items():
        rows.append(("heading", notebook, None))
        rows += [("bar", name, counts) for name, counts in checks.items()]
    if not rows:
        return "<p>No checks were graded.</p>"
    label_w, bar_w, row_h = 300, 420, 22
    width, height = label_w + bar_w + 110, row_h * len(rows) + 10
    parts = [
        f'<svg id="pass-rates" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Pass rate per check">'
    ]
    for i, (kind, name, counts) in enumerate(rows):
        y = 5 + i * row_h
        if kind == "heading":
            parts.append(f'<text x="0" y="{y + 15}" font-weight="bold">{_e(name)}</text>')
            continue
        passed, graded = counts
        rate = passed / graded if graded else 0.0
        colour = "#2e7d32" if rate >= 0.8 else "#f9a825" if rate >= 0.5 else "#c62828"
        parts.append(f'<text x="12" y="{y + 15}">{_e(name)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 6}" fill="#eceff4"/>'
        )
        parts.append(
            f'<rect class="bar" data-check="{_e(name)}" x="{label_w}" y="{y + 3}" '
            f'width="{bar_w * rate:.1f}" height="{row_h - 6}" fill="{colour}">'
            f"<title>{_e(name)}: {passed}/{graded} passed</title></rect>"
        )
        parts.append(
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}">'
            f"{passed}/{graded} ({100 * rate:.0f}%)</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _flag_html(grade) -> str:
    return "".join(
        f'<span class="flag{" severe" if severe else ""}">{_e(label)}</span>'
        for label, severe in flags(grade)
    )


def _notes(grade) -> list[str]:
    notes = [grade.problem] if grade.problem else []
    notes += list(getattr(grade, "notes", []) or [])
    if grade.errors:
        notes.append(f"{len(grade.errors)} cell(s) raised")
    return notes


def render(grades, title: str = "Grades") -> str:
    """The report as one HTML document (a string)."""
    grades = list(grades)
    rates = pass_rates(grades)
    flagged = [g for g in grades if flags(g)]
    complete = sum(1 for g in grades if g.expected and len(g.passed) == len(g.expected))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may be fetched: not even a favicon, not a script.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<div class="summary">',
        f"<div><b>{len(grades)}</b>submissions</div>",
        f"<div><b>{len(rates)}</b>notebooks</div>",
        f"<div><b>{complete}</b>with every check passed</div>",
        f"<div><b>{len(flagged)}</b>flagged</div>",
        "</div>",
        "<h2>Pass rate per check</h2>",
        _bar_chart(rates),
        "<h2>Most common hints</h2>",
    ]
    hints = common_hints(grades)
    if hints:
        out.append('<table id="hints"><tr><th>students</th><th>check</th><th>hint</th></tr>')
        out += [
            f"<tr><td>{count}</td><td><code>{_e(name)}</code></td><td>{_e(hint)}</td></tr>"
            for count, name, hint in hints
        ]
        out.append("</table>")
    else:
        out.append("<p>No check was graded \u201cnot yet\u201d.</p>")
    out.append("<h2>Problems</h2>")
    if flagged:
        out.append('<table id="problems"><tr><th>submission</th><th>flags</th><th>notes</th></tr>')
        out += [
            f"<tr><td>{_e(g.notebook)}</td><td>{_flag_html(g)}</td>"
            f"<td>{'<br>'.join(_e(n) for n in _notes(g))}</td></tr>"
            for g in flagged
        ]
        out.append("</table>")
    else:
        out.append("<p>None: every submission ran to the end in the sandbox.</p>")
    out += [
        "<h2>Submissions</h2>",
        '<table id="submissions"><tr><th>submission</th><th>notebook</th><th>passed</th>'
        "<th>not passed yet</th><th>notes</th></tr>",
    ]
    for g in grades:
        not_passed = ", ".join(f"{n} ({g.checks[n]})" for n in g.not_passed) or "-"
        notes = "<br>".join(_e(n) for n in _notes(g))
        row_class = ' class="student problem"' if flags(g) else ' class="student"'
        out.append(
            f"<tr{row_class}><td>{_e(g.notebook)}</td><td>{_e(g.identity or '?')}</td>"
            f"<td>{_e(g.total)}</td><td>{_e(not_passed)}</td>"
            f"<td>{_flag_html(g)}{notes}</td></tr>"
        )
    out += ["</table>", "</body></html>", ""]
    return "\n".join(out)


def write_html(grades, path, title: str = "Grades") -> Path:
    """Write the report of ``grades`` (``NotebookGrade``s) to ``path``; returns the path."""
    path = Path(path)
    path.write_text(render(grades, title), encoding="utf-8")
    return path
