"""Tests of the notebook series itself.

* The committed student notebooks are exactly what
  ``python -m vae_prac.course.student`` generates from the solutions.
* Every solution notebook follows the template (badges, objectives, prerequisites,
  outline, levels; every task followed by a check) and its stored outputs are clean
  (no errors, no stderr, no paths of the machine that ran it) and pass every check.
  nbval, which pytest runs over notebooks/solutions, checks that those stored outputs
  are what the notebook produces now.
* Every blank student notebook survives "Run All" (which stops at the first error):
  no cell raises, and every check, as the grader verifies it, says "not done yet".
  These runs, and the half-done ones below, train with ``VAE_PRAC_SHORT_RUNS``
  (``vae_prac.short_runs``): their outputs are not compared, only that they run and
  what the grader says.
* A notebook half done (the first half of its tasks answered) runs to the end and the
  grader passes exactly the checks of the tasks that were done, though it was renamed.
  This is tried on notebooks 05-07, where a done task's answer trains the models that
  later cells use, beside the library's stand-ins for the blank ones. Notebooks 01-04
  are not run half done: the same mechanism mixes the answers there, and each run
  costs three processes (about 13 s of the suite). Their solutions pass every check in
  ``tests/test_verification.py`` and run in nbval, and their blank notebooks are
  graded above.
"""

import re
from pathlib import Path

import nbformat
import pytest

from vae_prac import short_runs
from vae_prac.course import grading, student

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
# The notebooks whose done tasks train what their later cells use (see the docstring).
TRAINING = [p for p in SOLUTIONS if p.stem[:2] in ("05", "06", "07")]
STUDENTS = sorted((ROOT / "notebooks" / "student").glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/vae-prac/vae_prac/blob/main/notebooks"
LEVELS = ("Beginner", "Intermediate", "Advanced")
# Level-2 headings that are not teaching sections and need no level.
UNLEVELLED = re.compile(r"summary|conclusion|further reading|references|next steps", re.I)
CHECK_CELL = re.compile(r"# Run me to test your (code|answer)")
# The repository's own location, and folders that only appear in a machine's paths.
MACHINE_PATHS = (str(ROOT) + "/", "/root/", "/home/", "/Users/", "site-packages")


def read(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def output_texts(cell):
    """Every piece of text a cell's stored outputs show."""
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            yield out.text
        elif out.output_type in ("execute_result", "display_data"):
            for mime, value in out.data.items():
                if mime.startswith("text/"):
                    yield value if isinstance(value, str) else "".join(value)
        elif out.output_type == "error":
            yield "\n".join([out.ename, out.evalue] + out.traceback)


def by_name(paths):
    return pytest.mark.parametrize("path", paths, ids=[p.stem for p in paths])


def test_the_series_exists():
    assert SOLUTIONS, "no solution notebooks in notebooks/solutions"
    assert [p.name for p in STUDENTS] == [p.name for p in SOLUTIONS]


def test_student_notebooks_are_generated_from_the_solutions():
    problems = student.out_of_date()
    assert not problems, "\n".join(
        problems + ["Regenerate with: python -m vae_prac.course.student"]
    )


@by_name(SOLUTIONS)
def test_solution_follows_the_template(path):
    nb = read(path)
    title = nb.cells[0].source
    assert nb.cells[0].cell_type == "markdown"
    for version in ("student", "solutions"):
        assert f"({COLAB}/{version}/{path.name})" in title, (
            f"no Colab badge for the {version} version"
        )
    assert title.count("colab-badge.svg") >= 2
    for part in ("Learning objectives", "Prerequisites", "Outline", "**Level:**"):
        assert part in title, f"the title cell has no {part!r}"
    assert any(level in title for level in LEVELS)

    install = nb.cells[1].source
    assert nb.cells[1].cell_type == "code"
    assert '"google.colab" in sys.modules' in install and "%pip install" in install

    for cell in nb.cells[1:]:
        if cell.cell_type != "markdown":
            continue
        for heading in re.findall(r"^## (.+)$", cell.source, flags=re.M):
            if not UNLEVELLED.search(heading):
                assert any(level in heading for level in LEVELS), (
                    f"section {heading!r} is not tagged Beginner / Intermediate / Advanced"
                )


@by_name(SOLUTIONS)
def test_every_task_is_followed_by_a_check(path):
    cells = code_cells(read(path))
    checks = [i for i, c in cells if CHECK_CELL.match(c.source)]
    assert checks, "the notebook has no check cell"
    for position, (index, cell) in enumerate(cells):
        if student.BEGIN in cell.source:
            following = cells[position + 1] if position + 1 < len(cells) else (None, None)
            assert following[1] is not None and CHECK_CELL.match(following[1].source), (
                f"the task in cell {index} is not followed by a '# Run me to test your code' cell"
            )


@by_name(SOLUTIONS)
def test_solution_outputs_are_clean(path):
    nb = read(path)
    for index, cell in code_cells(nb):
        outputs = cell.get("outputs", [])
        if outputs:
            assert cell.execution_count is not None, (
                f"cell {index} has outputs but no execution count"
            )
        for out in outputs:
            assert out.output_type != "error", (
                f"cell {index} stored an error: {out.ename}: {out.evalue}"
            )
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"cell {index} stored stderr output: {out.text[:200]!r}"
            )
        for text in output_texts(cell):
            for fragment in MACHINE_PATHS:
                assert fragment not in text, (
                    f"cell {index} shows a path of this machine ({fragment})"
                )
    assert "widgets" not in nb.metadata


@by_name(SOLUTIONS)
def test_solution_outputs_pass_every_check(path):
    nb = read(path)
    statuses = grading.grade_stored_outputs(nb)
    assert statuses, "the stored outputs hold no check lines"
    assert {name: s for name, s in statuses.items() if s != "passed"} == {}
    for index, cell in code_cells(nb):
        if CHECK_CELL.match(cell.source):
            one_cell = nbformat.v4.new_notebook(cells=[cell])
            assert grading.grade_stored_outputs(one_cell), (
                f"check cell {index} printed no check line"
            )


@by_name(SOLUTIONS)
def test_solution_records_which_notebook_it_is(path):
    # The grader recognises a renamed submission by this (the student version keeps it).
    assert grading.identity(read(path)) == path.stem


@pytest.fixture
def short(monkeypatch):
    """Short training runs in the kernels the grader starts (they inherit os.environ)."""
    monkeypatch.setenv(short_runs.ENV_VAR, "1")


@pytest.mark.notebook
@by_name(STUDENTS)
def test_blank_student_notebook_runs_all_to_the_end(path, short):
    # Jupyter's Run All stops at the first error: a blank notebook must raise none.
    [grade] = grading.grade_notebooks([path], timeout=900)
    assert grade.problem is None, grade.problem
    assert grade.expected, "the solution notebook has no check lines to expect"
    assert grade.errors == [], (
        f"Run All would stop at cell {grade.errors[0].index}: "
        f"{grade.errors[0].ename}: {grade.errors[0].evalue}"
    )
    assert grade.checks == dict.fromkeys(grade.expected, "not done yet"), grade.details
    assert grade.printed == grade.checks  # what the student saw agrees with the grader


def half_done(solution):
    """The solution with the tasks of its second half left blank, as a student mid-way."""
    nb = read(solution)
    tasks = [i for i, c in code_cells(nb) if student.BEGIN in c.source]
    middle = tasks[len(tasks) // 2]
    for index, cell in code_cells(nb):
        cell.outputs, cell.execution_count = [], None
        if index >= middle:
            cell.source = student.strip_solutions(cell.source)
    return nb, middle


@pytest.mark.notebook
@by_name(TRAINING)
def test_half_done_notebook_runs_to_the_end_and_grades_what_was_done(path, tmp_path, short):
    nb, middle = half_done(path)
    done = {
        name
        for index, cell in code_cells(read(path))
        if index < middle
        for name in grading.check_lines(nbformat.v4.new_notebook(cells=[cell]))
    }
    submission = tmp_path / "renamed by the student.ipynb"
    nbformat.write(nb, submission)
    [grade] = grading.grade_notebooks([submission], timeout=900)
    assert grade.problem is None and grade.errors == [], (grade.problem, grade.errors)
    assert done and set(done) < set(grade.expected)
    assert grade.checks == {
        name: "passed" if name in done else "not done yet" for name in grade.expected
    }, grade.details
