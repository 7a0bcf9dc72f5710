"""Grading a cohort as an instructor would, including the submissions that try to cheat,
crash, loop forever, delete files, arrive damaged, renamed or under the same name.

Every case runs a real kernel on a small notebook of two real checks (notebook 01's
``binarize_threshold`` and ``binarization_quiz``) whose solution lives in a temporary
solutions folder.
"""

import csv
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from vae_prac.course import grading

IMPORTS = (
    "import numpy as np\nfrom vae_prac import checks\nfrom vae_prac.checks import data as check"
)
RIGHT = "def binarize_threshold(images):\n    return (images > 127).astype(np.float32)[..., None]"
WRONG = "def binarize_threshold(images):\n    return (images < 128).astype(np.float32)[..., None]"
CHECK_FN = "# Run me to test your code\ncheck.binarize_threshold(binarize_threshold)"
CHECK_QUIZ = "# Run me to test your answer\ncheck.binarization_quiz(answer)"
EXPECTED = ["binarize_threshold", "binarization_quiz"]


def _stdout(text):
    return new_output("stream", name="stdout", text=text)


def submission(*middle, answer="b", function=RIGHT, name="quiz", after=()):
    """A notebook of the series 'quiz': the two tasks, their checks, extra cells between
    the answer and its check (``middle``) and at the end (``after``)."""
    nb = new_notebook(
        cells=[
            new_code_cell(IMPORTS),
            new_code_cell(function),
            new_code_cell(CHECK_FN),
            new_code_cell(f"answer = {answer!r}"),
            *[new_code_cell(source) for source in middle],
            new_code_cell(CHECK_QUIZ),
            *[new_code_cell(source) for source in after],
        ]
    )
    if name:
        nb.metadata[grading.METADATA_KEY] = {"notebook": name}
    return nb


@pytest.fixture(scope="module")
def solutions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("solutions")
    nb = submission()
    nb.cells[2].outputs = [_stdout("[check binarize_threshold] passed\n")]
    nb.cells[-1].outputs = [_stdout("[check binarization_quiz] passed\n")]
    for cell in nb.cells:
        cell.execution_count = 1
    nbformat.write(nb, folder / "quiz.ipynb")
    return folder


def write(path, nb):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def grade(paths, solutions, timeout=120):
    return grading.grade_notebooks(paths, timeout=timeout, solutions=solutions)


def test_expected_checks_come_from_the_solution(solutions):
    found = grading.expected_checks(solutions / "quiz.ipynb")
    assert [c.name for c in found] == EXPECTED
    assert {c.module for c in found} == {"data"}


# The one grading of real kernels that `pytest -m "not slow"` keeps; the others are slow.
def test_honest_right_wrong_and_blank_submissions(tmp_path, solutions):
    right = write(tmp_path / "ada" / "quiz.ipynb", submission())
    wrong = write(tmp_path / "bob" / "quiz.ipynb", submission(answer="a", function=WRONG))
    blank = write(
        tmp_path / "cy" / "quiz.ipynb",
        submission(
            answer=None, function="def binarize_threshold(images):\n    raise NotImplementedError()"
        ),
    )
    before = {p: p.read_bytes() for p in (right, wrong, blank)}
    g_right, g_wrong, g_blank = grade([right, wrong, blank], solutions)

    assert g_right.checks == dict.fromkeys(EXPECTED, "passed") and g_right.total == "2/2"
    assert g_wrong.checks == dict.fromkeys(EXPECTED, "not yet") and g_wrong.total == "0/2"
    assert "grey level" in g_wrong.details["binarize_threshold"]
    assert g_blank.checks == dict.fromkeys(EXPECTED, "not done yet")
    # Two files of the same name are told apart by their paths; none was changed.
    assert [g.notebook for g in (g_right, g_wrong, g_blank)] == [str(right), str(wrong), str(blank)]
    assert all(p.read_bytes() == b for p, b in before.items())

    out = tmp_path / "grades.csv"
    grading.write_csv([g_right, g_wrong], out)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == grading.CSV_HEADER
    assert rows[1][:4] == [str(right), "quiz", "binarize_threshold", "passed"]
    assert rows[3] == [str(right), "quiz", grading.TOTAL_ROW, "2/2", ""]
    assert rows[4][:4] == [str(wrong), "quiz", "binarize_threshold", "not yet"]
    assert rows[6][2:4] == [grading.TOTAL_ROW, "0/2"]
    table = grading.format_table([g_right, g_wrong])
    assert str(right) in table and str(wrong) in table and "0/2" in table


@pytest.mark.slow
def test_forged_lines_results_and_checks_earn_nothing(tmp_path, solutions):
    forgeries = {
        "printed": [
            "print('[check binarize_threshold] passed')\nprint('[check binarization_quiz] passed')"
        ],
        "results": [
            "checks.RESULTS['binarize_threshold'] = True\n"
            "checks.RESULTS['binarization_quiz'] = True"
        ],
        "replaced": [
            "check.binarize_threshold = "
            "lambda fn: print('[check binarize_threshold] passed')\n"
            "check.binarization_quiz = "
            "lambda a: print('[check binarization_quiz] passed')\n"
            "checks.report = lambda *a, **k: None"
        ],
        "library": ["from vae_prac import data\nbinarize_threshold = data.binarize"],
    }
    paths = [
        write(tmp_path / name / "quiz.ipynb", submission(answer="a", function=WRONG, after=cells))
        for name, cells in forgeries.items()
    ]
    grades = grade(paths, solutions)
    for name, g in zip(forgeries, grades):
        if name == "library":  # the library's own function is not the student's answer
            assert g.checks["binarize_threshold"] == "not yet", name
            assert "vae_prac's own" in g.details["binarize_threshold"]
            continue
        assert g.passed == [], f"{name}: {g.checks}"
        if name == "printed":  # a forged line is pointed out in the CSV
            assert g.printed == dict.fromkeys(EXPECTED, "passed")
            assert "printed 'passed' but the grader" in g.details["binarization_quiz"]


@pytest.mark.slow
def test_a_notebook_that_deletes_files_only_deletes_its_own_copy(tmp_path, solutions):
    victim = write(tmp_path / "cohort" / "ada.ipynb", submission())
    vandal = write(
        tmp_path / "cohort" / "bob.ipynb",
        submission(
            "import os\nfor f in os.listdir('.'):\n    os.remove(f)\nprint(sorted(os.listdir('.')))"
        ),
    )
    instructor_file = write(tmp_path / "grades_so_far.ipynb", new_notebook())
    g_vandal, g_victim = grade([vandal, victim], solutions)
    assert victim.is_file() and vandal.is_file() and instructor_file.is_file()
    assert g_vandal.total == "2/2" and g_victim.total == "2/2"


@pytest.mark.slow
def test_an_infinite_loop_times_out_and_keeps_what_passed_before(tmp_path, solutions):
    looping = write(tmp_path / "loop.ipynb", submission("while True:\n    pass", name="quiz"))
    [g] = grade([looping], solutions, timeout=20)
    assert g.timed_out and "timed out after 20 s" in g.problem
    assert g.seconds < 120
    # The function task passed before the loop; the quiz's answer was also set before it.
    assert g.checks == dict.fromkeys(EXPECTED, "passed")


@pytest.mark.slow
def test_os_exit_unreadable_renamed_and_unknown(tmp_path, solutions):
    exiting = write(tmp_path / "exit" / "quiz.ipynb", submission("import os\nos._exit(0)"))
    unreadable = tmp_path / "broken" / "quiz.ipynb"
    unreadable.parent.mkdir()
    unreadable.write_text('{"cells": [', encoding="utf-8")
    renamed = write(tmp_path / "renamed" / "my homework (final).ipynb", submission())
    unknown = write(tmp_path / "unknown" / "notes.ipynb", submission(name=None))
    g_exit, g_broken, g_renamed, g_unknown = grade(
        [exiting, unreadable, renamed, unknown], solutions
    )

    assert "kernel died" in g_exit.problem
    assert g_exit.checks == dict.fromkeys(EXPECTED, "missing") and g_exit.total == "0/2"
    assert "could not read" in g_broken.problem
    assert g_broken.checks == dict.fromkeys(EXPECTED, "missing")  # known by its file name
    assert g_renamed.identity == "quiz" and g_renamed.total == "2/2"
    assert "not a notebook of this series" in g_unknown.problem and g_unknown.total == "0/?"

    out = tmp_path / "grades.csv"
    grading.write_csv([g_exit, g_broken, g_renamed, g_unknown], out)
    with open(out, newline="") as f:
        totals = {row[0]: row for row in csv.reader(f) if row[2] == grading.TOTAL_ROW}
    assert set(totals) == {str(exiting), str(unreadable), str(renamed), str(unknown)}
    assert "kernel died" in totals[str(exiting)][4]
    assert "could not read" in totals[str(unreadable)][4]


@pytest.mark.slow
@pytest.mark.skipif(
    not hasattr(os, "fork") or os.uname().sysname != "Linux",
    reason="the memory limit is Linux's RLIMIT_AS",
)
def test_the_memory_limit_stops_a_runaway_notebook(tmp_path, solutions):
    hog = write(tmp_path / "hog.ipynb", submission("hog = bytearray(6 * 2**30)"))
    [g] = grading.grade_notebooks([hog], timeout=120, solutions=solutions, memory_limit_gib=4)
    # The allocation fails inside the cell (MemoryError); the kernel lives on.
    assert any(e.ename == "MemoryError" for e in g.errors)
    assert g.total == "2/2"


def test_bad_arguments():
    with pytest.raises(ValueError, match="timeout"):
        grading.grade_notebooks([], timeout=0)
    with pytest.raises(ValueError, match="memory_limit_gib"):
        grading.grade_notebooks([], memory_limit_gib=0)


@pytest.mark.slow
def test_a_timeout_keeps_its_row_and_the_kernels_console_out_of_the_graders(
    tmp_path, solutions, capfd
):
    # What a kernel writes to its own stderr, such as the zmq traceback an older
    # ipykernel prints when it is shut down after a timeout, stays off the grader's.
    noisy = new_notebook(
        cells=[
            new_code_cell(
                "import os\n"
                "os.write(2, b'Traceback (most recent call last):\\n'\n"
                "            b'zmq.error.ZMQError: Socket operation on non-socket\\n')\n"
                "os.write(1, b'kernel stdout\\n')"
            ),
            new_code_cell("while True:\n    pass"),
        ]
    )
    noisy.metadata[grading.METADATA_KEY] = {"notebook": "quiz"}
    path = write(tmp_path / "noisy.ipynb", noisy)
    [g] = grade([path], solutions, timeout=20)
    assert g.timed_out and g.problem == "timed out after 20 s at cell 1"
    captured = capfd.readouterr()
    assert "ZMQError" not in captured.err and "Traceback" not in captured.err
    assert "kernel stdout" not in captured.out
    table = grading.format_table([g])
    assert "noisy.ipynb" in table and "timed out after 20 s" in table
