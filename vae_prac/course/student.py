"""Make the student notebooks from the solution notebooks, and refresh stored outputs.

The solution notebooks in ``notebooks/solutions`` are the source. Each student notebook
in ``notebooks/student`` is generated from the solution of the same name:

* in code cells, every region from a line ``### BEGIN SOLUTION`` to a line
  ``### END SOLUTION`` becomes ``# YOUR CODE HERE`` and ``raise NotImplementedError()``
  at the BEGIN line's indentation (nbgrader's convention) inside a function, where the
  error only comes when the function is called and its check reports "not done yet";
  a region at the top level of a cell (a Math Task's answer) becomes ``# YOUR CODE
  HERE`` alone, so "Run All" never halts there: the default set before the region
  (``answer = None``) makes its check say "not done yet";
* markdown cells tagged ``answer`` get a placeholder instead of the answer;
* outputs and execution counts are cleared, and the metadata is normalized;
* everything else is kept exactly as it is.

The same solution always gives a byte-identical student notebook, so CI can check
that the committed student versions are up to date.

Usage::

    python -m vae_prac.course.student            # regenerate every student notebook
    python -m vae_prac.course.student --check    # exit 1 if any is out of date
    python -m vae_prac.course.student --execute notebooks/solutions/02_the_elbo.ipynb
        # run the solution in place (stores fresh outputs), then regenerate its student version
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from pathlib import Path

import nbformat

from vae_prac.course import SOLUTIONS_DIR, STUDENT_DIR

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
ANSWER_TAG = "answer"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
ANSWER_PLACEHOLDER = (
    "*Your answer here.* Write it in your own words (double-click this cell to edit), "
    "then compare it with a neighbour's."
)
NBFORMAT_VERSION = 4

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
# Cell metadata that records a particular run (timings, widget state), never content.
VOLATILE_CELL_METADATA = ("execution", "widgets", "ExecuteTime")
# A solution's code cell that took at least this long when last executed records its
# measured seconds as metadata "vae_prac": {"seconds": N}: the session budget
# (tools/session_budget.py) and the test of quoted run times read them.
RECORDED_CELL_SECONDS = 1.0


class MarkerError(ValueError):
    """A solution notebook's ``### BEGIN/END SOLUTION`` markers do not pair up."""


def _marker(line: str):
    stripped = line.strip()
    if stripped.startswith(BEGIN):
        return "begin"
    if stripped.startswith(END):
        return "end"
    return None


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each BEGIN/END SOLUTION region of ``source`` with the stub.

    ``where`` names the cell in error messages. Raises MarkerError for an END without
    a BEGIN, a BEGIN inside a region (nesting) or a BEGIN without an END.
    """
    out, begin_line = [], None
    lines = source.split("\n")
    for number, line in enumerate(lines, start=1):
        kind = _marker(line)
        if kind == "begin":
            if begin_line is not None:
                raise MarkerError(
                    f"{where}: '{BEGIN}' on line {number} comes before the '{END}' of the "
                    f"region opened on line {begin_line}; regions cannot nest. Close the "
                    "first region before opening another."
                )
            begin_line = number
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub for stub in (STUB if indent else STUB[:1]))
        elif kind == "end":
            if begin_line is None:
                raise MarkerError(
                    f"{where}: '{END}' on line {number} has no '{BEGIN}' before it. "
                    f"Add the missing '{BEGIN}' line or remove this one."
                )
            begin_line = None
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise MarkerError(
            f"{where}: '{BEGIN}' on line {begin_line} is never closed. Add a line "
            f"'{END}' after the solution."
        )
    return "\n".join(out)


def _cell_id(nb_name: str, index: int) -> str:
    """A stable id for a cell that has none (nbformat >= 4.5 wants one)."""
    return hashlib.sha1(f"{nb_name}:{index}".encode()).hexdigest()[:8]


def normalize(nb, name: str = "notebook"):
    """Make a notebook's metadata independent of where and when it was run (in place).

    Sets the kernelspec to this environment's python3, replaces the kernel's
    language_info (which records the Python version) with a fixed one, drops widget
    state and per-cell timings, and gives cells without an id a stable one. A notebook
    of the series (``name`` ends in ``.ipynb``) records which one it is under
    ``vae_prac`` -> ``notebook``, so the grader knows a renamed submission.
    """
    nb.nbformat = NBFORMAT_VERSION
    meta = nb.metadata
    meta.pop("widgets", None)
    if name.endswith(".ipynb"):
        meta["vae_prac"] = {"notebook": name[: -len(".ipynb")]}
    meta["kernelspec"] = copy.deepcopy(KERNELSPEC)
    meta["language_info"] = copy.deepcopy(LANGUAGE_INFO)
    wants_ids = nb.get("nbformat_minor", 0) >= 5
    for index, cell in enumerate(nb.cells):
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if wants_ids and not cell.get("id"):
            cell["id"] = _cell_id(name, index)
    return nb


def make_student(nb, name: str = "notebook"):
    """The student version of a solution notebook (a new notebook; ``nb`` is unchanged).

    ``name`` names the notebook in error messages.
    """
    student = copy.deepcopy(nb)
    for index, cell in enumerate(student.cells):
        where = f"{name}, cell {index}"
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("vae_prac", None)  # the solution run's timings
            if ANSWER_TAG in tags:
                raise MarkerError(
                    f"{where}: only markdown cells can be tagged "
                    f"'{ANSWER_TAG}'; this is a code cell."
                )
        else:
            if any(_marker(line) for line in cell.source.split("\n")):
                raise MarkerError(
                    f"{where}: SOLUTION markers only work in code cells. For a written "
                    f"answer use a markdown cell tagged '{ANSWER_TAG}'."
                )
            if ANSWER_TAG in tags:
                if cell.cell_type != "markdown":
                    raise MarkerError(
                        f"{where}: only markdown cells can be tagged "
                        f"'{ANSWER_TAG}'; this is a {cell.cell_type} cell."
                    )
                cell.source = ANSWER_PLACEHOLDER
                cell.pop("attachments", None)
    return normalize(student, name)


def dumps(nb) -> str:
    """The notebook as the exact text written to disk."""
    return nbformat.writes(nb, version=NBFORMAT_VERSION) + "\n"


def student_path(solution: Path) -> Path:
    """notebooks/solutions/NAME.ipynb -> notebooks/student/NAME.ipynb."""
    solution = Path(solution)
    if solution.parent.name != "solutions":
        raise ValueError(
            f"{solution} is not in a 'solutions' folder; the student version is "
            "written to the sibling 'student' folder, so give a solution notebook."
        )
    return solution.parent.parent / "student" / solution.name


def generate(solution: Path) -> str:
    """The text of the student notebook for ``solution``."""
    solution = Path(solution)
    nb = nbformat.read(solution, as_version=NBFORMAT_VERSION)
    return dumps(make_student(nb, solution.name))


def write_student(solution: Path) -> Path:
    target = student_path(solution)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(generate(solution), encoding="utf-8")
    return target


def solution_notebooks(paths=None) -> list[Path]:
    """The given notebooks, or every notebook in notebooks/solutions."""
    if paths:
        found = [Path(p) for p in paths]
        missing = [str(p) for p in found if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"No such notebook: {', '.join(missing)}")
        return found
    if not SOLUTIONS_DIR.is_dir():
        raise FileNotFoundError(
            f"No solutions folder at {SOLUTIONS_DIR}; give the notebooks to convert as arguments."
        )
    return sorted(SOLUTIONS_DIR.glob("*.ipynb"))


def out_of_date(solutions=None) -> list[str]:
    """Problems with the committed student notebooks, one line each (empty if none).

    A student notebook is out of date when it is missing or differs from what
    ``make_student`` produces from its solution now. With no ``solutions`` given, a
    student notebook without a solution is reported too.
    """
    check_orphans = not solutions
    solutions = solution_notebooks(solutions)
    problems = []
    for solution in solutions:
        target = student_path(solution)
        if not target.is_file():
            problems.append(f"{target}: missing (generate it from {solution.name})")
        elif target.read_text(encoding="utf-8") != generate(solution):
            problems.append(f"{target}: differs from what {solution.name} generates")
    if check_orphans and STUDENT_DIR.is_dir():
        names = {s.name for s in solutions}
        problems += [
            f"{p}: has no solution notebook"
            for p in sorted(STUDENT_DIR.glob("*.ipynb"))
            if p.name not in names
        ]
    return problems


def execute_in_place(solution: Path, cell_timeout: int = 1200) -> float:
    """Run a solution notebook top to bottom and store its outputs; returns seconds taken.

    The kernel is this environment's Python and the working directory is the notebook's
    folder. A cell that raises fails the run (and nothing is written), unless it is
    marked to raise: a comment ``# NBVAL_RAISES_EXCEPTION`` or the tag ``raises-exception``.
    """
    from vae_prac.course.run_notebook import execute_notebook

    solution = Path(solution)
    nb = nbformat.read(solution, as_version=NBFORMAT_VERSION)
    report = execute_notebook(nb, solution.parent, cell_timeout=cell_timeout)
    unexpected = [e for e in report.errors if not _may_raise(nb.cells[e.index])]
    if report.timed_out or unexpected:
        what = (
            f"cell {report.timed_out_cell} timed out"
            if report.timed_out
            else "; ".join(f"cell {e.index} raised {e.ename}: {e.evalue}" for e in unexpected)
        )
        raise RuntimeError(f"{solution}: {what}. The notebook was not saved.")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("vae_prac", None)
        seconds = report.cell_seconds.get(index, 0.0)
        if seconds >= RECORDED_CELL_SECONDS:
            cell.metadata["vae_prac"] = {"seconds": round(seconds, 1)}
    normalize(nb, solution.name)
    solution.write_text(dumps(nb), encoding="utf-8")
    return report.seconds


def _may_raise(cell) -> bool:
    """Whether a cell is marked (for nbval and nbclient alike) to raise on purpose."""
    marked = any(
        line.strip().lstrip("#").strip().startswith("NBVAL_RAISES_EXCEPTION")
        for line in cell.source.split("\n")
        if line.strip().startswith("#")
    )
    return marked or "raises-exception" in cell.metadata.get("tags", [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vae_prac.course.student",
        description="Generate student notebooks (notebooks/student) from solution notebooks "
        "(notebooks/solutions).",
    )
    parser.add_argument("paths", nargs="*", help="solution notebooks (default: all)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 listing student notebooks that are out of date",
    )
    mode.add_argument(
        "--execute",
        action="store_true",
        help="first run the given solution notebooks in place to refresh their stored outputs",
    )
    args = parser.parse_args(argv)
    if args.execute and not args.paths:
        parser.error(
            "--execute needs the solution notebooks to run, e.g. "
            "notebooks/solutions/01_setup_and_data.ipynb"
        )
    try:
        solutions = solution_notebooks(args.paths)
        if args.check:
            problems = out_of_date(args.paths)
            for line in problems:
                print(line)
            if problems:
                print("Regenerate with: python -m vae_prac.course.student")
                return 1
            print(f"{len(solutions)} student notebook(s) up to date.")
            return 0
        for solution in solutions:
            if args.execute:
                seconds = execute_in_place(solution)
                print(f"executed {solution} ({seconds:.0f} s)")
            print(f"wrote {write_student(solution)}")
    except (MarkerError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
