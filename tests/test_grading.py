"""Grading a cohort as an instructor would, including the submissions that try to cheat,
crash, loop forever, delete files, kill the grader, arrive damaged, renamed or under the
same name; and the cohort-scale parts: the CSV written as it goes, --resume, --jobs,
Dask, the HTML report.

Most cases grade a small notebook of two real checks (notebook 01's
``binarize_threshold`` and ``binarization_quiz``) whose solution lives in a temporary
solutions folder: each runs a real kernel in the sandbox, then verifies in another
sandboxed process. The series' own notebooks go through the grader in
``tests/test_notebooks.py`` (each blank, and 05-07 half done), and every solution
through the verifier in ``tests/test_verification.py``. The bookkeeping of a cohort
(CSV, resume, escaping) is tested with a stand-in for ``grade_notebook``, in a blink.
"""

import csv
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from vae_prac import short_runs
from vae_prac.course import SOLUTIONS_DIR, STUDENT_DIR, grading, report, sandbox

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
IMPORTS = (
    "import numpy as np\nfrom vae_prac import checks\nfrom vae_prac.checks import data as check"
)
RIGHT = "def binarize_threshold(images):\n    return (images > 127).astype(np.float32)[..., None]"
WRONG = "def binarize_threshold(images):\n    return (images < 128).astype(np.float32)[..., None]"
BLANK = "def binarize_threshold(images):\n    raise NotImplementedError()"
CHECK_FN = "# Run me to test your code\ncheck.binarize_threshold(binarize_threshold)"
CHECK_QUIZ = "# Run me to test your answer\ncheck.binarization_quiz(answer)"
EXPECTED = ["binarize_threshold", "binarization_quiz"]

needs_sandbox = pytest.mark.skipif(
    sandbox.unavailable_reason() is not None,
    reason=f"the sandbox cannot run here: {sandbox.unavailable_reason()}",
)


@pytest.fixture(autouse=True)
def short(monkeypatch):
    monkeypatch.setenv(short_runs.ENV_VAR, "1")


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
    """Two 'series' notebooks, quiz and quiz2 (the same tasks), as solutions."""
    folder = tmp_path_factory.mktemp("solutions")
    for name in ("quiz", "quiz2"):
        nb = submission(name=name)
        nb.cells[2].outputs = [_stdout("[check binarize_threshold] passed\n")]
        nb.cells[-1].outputs = [_stdout("[check binarization_quiz] passed\n")]
        for cell in nb.cells:
            cell.execution_count = 1
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def write(path, nb):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def grade(paths, solutions, timeout=120, **options):
    return grading.grade_notebooks(paths, timeout=timeout, solutions=solutions, **options)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def totals(path):
    return {row[0]: row for row in read_rows(path) if row[2] == grading.TOTAL_ROW}


# ---------------------------------------------------------------------------- fast


def test_expected_checks_come_from_the_solution(solutions):
    found = grading.expected_checks(solutions / "quiz.ipynb")
    assert [c.name for c in found] == EXPECTED
    assert {c.module for c in found} == {"data"}


def test_check_lines_never_raise_on_odd_stored_outputs():
    odd = {
        "cells": [
            "not a cell",
            {"cell_type": "code", "outputs": "not a list"},
            {
                "cell_type": "code",
                "outputs": [
                    7,
                    {"output_type": "stream", "name": "stdout", "text": 5},
                    {"output_type": "stream", "name": "stdout", "text": {"a": 1}},
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": ["[check a] ", 3, "passed\n"],
                    },
                    {"output_type": "stream", "name": "stdout", "text": None},
                ],
            },
        ]
    }
    assert grading.check_lines(odd) == {"a": "passed"}
    for nothing in (None, 5, [], {"cells": 3}, {"cells": [None]}):
        assert grading.check_lines(nothing) == {}


def test_what_a_run_wrote_is_read_only_if_it_is_a_small_regular_file(tmp_path):
    (tmp_path / "report.json").write_text('{"timed_out": true}')
    os.mkfifo(tmp_path / "fifo")  # opening it to read would wait for a writer forever
    os.symlink("/etc/hostname", tmp_path / "link")  # one of the grader's files
    (tmp_path / "big").write_bytes(b"x" * 2000)
    assert grading._read_capped(tmp_path / "report.json", 1000, True) == b'{"timed_out": true}'
    for name in ("fifo", "link", "big", "missing"):
        assert grading._read_capped(tmp_path / name, 1000, True) is None, name
    # A work folder whose run took its own permissions away is removed all the same.
    locked = tmp_path / "work" / "locked"
    locked.mkdir(parents=True)
    (locked / "f").write_text("x")
    locked.chmod(0)
    grading._remove(tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_identity_follows_the_metadata_and_notes_a_disagreement(tmp_path, solutions):
    nb = submission(name="quiz")
    solution, note = grading._identify(tmp_path / "quiz2.ipynb", nb, solutions)
    assert solution.stem == "quiz"
    assert "named quiz2.ipynb but its metadata says quiz" in note
    # Renamed freely, or the name agreeing: nothing to note.
    assert grading._identify(tmp_path / "my homework.ipynb", nb, solutions) == (
        solutions / "quiz.ipynb",
        None,
    )
    assert grading._identify(tmp_path / "quiz.ipynb", nb, solutions)[1] is None
    # Metadata naming no notebook of the series: the file name decides, and it is said.
    solution, note = grading._identify(tmp_path / "quiz2.ipynb", submission(name="zz"), solutions)
    assert solution.stem == "quiz2" and "'zz', which is not a notebook of this series" in note


def fake_grade(path, **options):
    """A stand-in for grade_notebook: 'ok' in the path passes both checks."""
    passed = "ok" in Path(path).name
    status = "passed" if passed else "not yet"
    return grading.NotebookGrade(
        str(path),
        dict.fromkeys(EXPECTED, status),
        list(EXPECTED),
        identity="quiz",
        details=dict.fromkeys(EXPECTED, "" if passed else "=cmd|' /C calc'!A0"),
        sandboxed=options.get("sandbox", True),
    )


def test_csv_rows_are_written_as_each_submission_finishes_and_resume_skips_them(
    tmp_path, monkeypatch
):
    graded = []
    monkeypatch.setattr(
        grading, "grade_notebook", lambda path, **o: graded.append(path) or fake_grade(path, **o)
    )
    out = tmp_path / "grades.csv"
    paths = [tmp_path / f"{name}.ipynb" for name in ("a_ok", "b", "c_ok")]
    seen = []

    def progress(done, total, grade):
        # When a submission's progress is reported, its rows are on disk already.
        seen.append((done, total, len(totals(out))))

    grading.grade_notebooks(
        paths[:2], csv_path=out, sandbox=False, jobs=1, progress=progress, timeout=1
    )
    assert seen == [(1, 2, 1), (2, 2, 2)]
    assert read_rows(out)[0] == grading.CSV_HEADER

    # A grader stopped mid-write left a submission without its total row: it is graded
    # again, and its stray rows are dropped.
    with open(out, "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow([str(paths[2]), "quiz", "binarize_threshold", "passed", ""])
    graded.clear()
    grades = grading.grade_notebooks(
        paths, csv_path=out, resume=True, sandbox=False, jobs=2, timeout=1
    )
    assert graded == [paths[2]]
    assert [g.notebook for g in grades] == [str(p) for p in paths]
    assert [g.total for g in grades] == ["2/2", "0/2", "2/2"]
    assert grades[1].details["binarize_threshold"] == "=cmd|' /C calc'!A0"  # read back whole
    rows = read_rows(out)
    assert sum(row[0] == str(paths[2]) for row in rows) == 3  # two checks and the total
    assert rows.count(grading.CSV_HEADER) == 1
    with pytest.raises(ValueError, match="csv"):
        grading.grade_notebooks(paths, resume=True, sandbox=False)


def test_csv_cells_a_spreadsheet_would_run_are_escaped(tmp_path):
    hostile = grading.NotebookGrade(
        '=HYPERLINK("http://x")/quiz.ipynb',
        {"binarize_threshold": "not yet", "binarization_quiz": "passed"},
        list(EXPECTED),
        identity="quiz",
        details={"binarize_threshold": "@SUM(A1)", "binarization_quiz": "-1+2"},
        problem="+cmd",
        notes=["\tnote", "'quoted"],
    )
    out = tmp_path / "grades.csv"
    grading.write_csv([hostile], out)
    for row in read_rows(out)[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    rows = read_rows(out)
    assert rows[1][0] == '\'=HYPERLINK("http://x")/quiz.ipynb'
    assert rows[1][4] == "'@SUM(A1)" and rows[2][4] == "'-1+2"
    [back] = grading.read_csv(out).values()
    assert back.notebook == hostile.notebook and back.details == hostile.details
    assert back.problem == "+cmd" and back.notes == ["\tnote", "'quoted"]


def test_the_grader_refuses_without_a_sandbox_unless_told(monkeypatch, tmp_path, capsys):
    from vae_prac import cli

    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: "bwrap is not installed")
    with pytest.raises(sandbox.SandboxUnavailable, match="bwrap is not installed"):
        grading.grade_notebooks([tmp_path / "a.ipynb"])
    path = write(tmp_path / "a.ipynb", submission())
    assert cli.main(["grade", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bwrap is not installed" in err and "--no-sandbox" in err


def test_bad_arguments():
    with pytest.raises(ValueError, match="timeout"):
        grading.grade_notebooks([], timeout=0)
    with pytest.raises(ValueError, match="memory_limit_gib"):
        grading.grade_notebooks([], memory_limit_gib=0)
    with pytest.raises(ValueError, match="jobs"):
        grading.grade_notebooks([], jobs=0)


def test_an_oversized_submission_gets_a_row_saying_so(tmp_path, monkeypatch):
    monkeypatch.setattr(grading, "MAX_SUBMISSION_BYTES", 1000)
    big = tmp_path / "quiz.ipynb"
    big.write_text(" " * 2000 + "{}", encoding="utf-8")
    g = grading.grade_notebook(big, sandbox=False, solutions=SOLUTIONS_DIR)
    assert "over the grader's limit" in g.problem
    assert grading.NO_SANDBOX_NOTE in g.notes


# ---------------------------------------------------------------- real kernels, sandboxed


@pytest.mark.slow
@needs_sandbox
def test_honest_right_wrong_and_blank_submissions(tmp_path, solutions):
    right = write(tmp_path / "ada" / "quiz.ipynb", submission())
    # A stored output whose text is a number (a hand-edited file) must not crash anything.
    content = json.loads(right.read_text(encoding="utf-8"))
    content["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": 5}]
    right.write_text(json.dumps(content), encoding="utf-8")
    wrong = write(tmp_path / "bob" / "quiz.ipynb", submission(answer="a", function=WRONG))
    blank = write(tmp_path / "cy" / "quiz.ipynb", submission(answer=None, function=BLANK))
    # Named quiz2, but its metadata says quiz: graded as quiz, and the row says so.
    misfiled = write(tmp_path / "dee" / "quiz2.ipynb", submission())
    before = {p: p.read_bytes() for p in (right, wrong, blank, misfiled)}
    out = tmp_path / "grades.csv"
    # Two at a time: the grades come back in the submissions' order; the CSV's rows
    # in the order the submissions finished, each submission's rows together.
    g_right, g_wrong, g_blank, g_misfiled = grade(
        [right, wrong, blank, misfiled], solutions, jobs=2, csv_path=out
    )

    assert g_right.checks == dict.fromkeys(EXPECTED, "passed") and g_right.total == "2/2"
    assert g_right.problem is None and g_right.sandboxed, g_right
    assert g_wrong.checks == dict.fromkeys(EXPECTED, "not yet") and g_wrong.total == "0/2"
    assert "grey level" in g_wrong.details["binarize_threshold"]
    assert g_blank.checks == dict.fromkeys(EXPECTED, "not done yet")
    assert g_blank.printed == dict.fromkeys(EXPECTED, "not done yet")  # what the run printed
    assert g_misfiled.identity == "quiz" and g_misfiled.total == "2/2"
    assert "named quiz2.ipynb but its metadata says quiz" in g_misfiled.identity_note
    # Two files of the same name are told apart by their paths; none was changed.
    assert [g.notebook for g in (g_right, g_wrong, g_blank)] == [str(right), str(wrong), str(blank)]
    assert all(p.read_bytes() == b for p, b in before.items())

    header, *rows = read_rows(out)
    assert header == grading.CSV_HEADER and len(rows) == 4 * 3
    blocks = {block[0][0]: block for block in (rows[i : i + 3] for i in range(0, 12, 3))}
    assert set(blocks) == {str(p) for p in before}
    assert blocks[str(right)][0][:4] == [str(right), "quiz", "binarize_threshold", "passed"]
    assert blocks[str(right)][2] == [str(right), "quiz", grading.TOTAL_ROW, "2/2", ""]
    assert blocks[str(wrong)][0][:4] == [str(wrong), "quiz", "binarize_threshold", "not yet"]
    assert blocks[str(wrong)][2][2:4] == [grading.TOTAL_ROW, "0/2"]
    assert "its metadata says quiz" in totals(out)[str(misfiled)][4]
    table = grading.format_table([g_right, g_wrong, g_misfiled])
    assert str(right) in table and str(wrong) in table and "0/2" in table
    assert "its metadata says quiz" in table


@pytest.mark.slow
@needs_sandbox
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
@needs_sandbox
def test_a_notebook_that_deletes_files_only_deletes_its_own_copy(tmp_path, solutions):
    victim = write(tmp_path / "cohort" / "ada.ipynb", submission())
    vandal = write(
        tmp_path / "cohort" / "bob.ipynb",
        submission(
            "import glob, os\n"
            "for f in os.listdir('.'):\n    os.remove(f)\n"
            # Where notebooks lie: the grading folders around it, /tmp, home, the course's
            # own notebooks (found from the package); not a walk of the whole disk.
            "repo = os.path.dirname(os.path.dirname(os.path.dirname(checks.__file__)))\n"
            "roots = ['..', '../..', '/tmp', os.path.expanduser('~'), repo + '/notebooks']\n"
            "for root in roots:\n"
            "    for f in glob.glob(root + '/**/*.ipynb', recursive=True):\n"
            "        try:\n            os.remove(f)\n        except OSError:\n            pass\n"
            "print(sorted(os.listdir('.')))"
        ),
    )
    instructor_file = write(tmp_path / "grades_so_far.ipynb", new_notebook())
    g_vandal, g_victim = grade([vandal, victim], solutions, jobs=2)
    assert victim.is_file() and vandal.is_file() and instructor_file.is_file()
    assert any(SOLUTIONS_DIR.glob("*.ipynb")) and any(STUDENT_DIR.glob("*.ipynb"))
    assert g_vandal.total == "2/2" and g_victim.total == "2/2"


@pytest.mark.slow
@needs_sandbox
def test_os_exit_unreadable_renamed_and_unknown(tmp_path, solutions):
    exiting = write(tmp_path / "exit" / "quiz.ipynb", submission("import os\nos._exit(0)"))
    unreadable = tmp_path / "broken" / "quiz.ipynb"
    unreadable.parent.mkdir()
    unreadable.write_text('{"cells": [', encoding="utf-8")
    renamed = write(tmp_path / "renamed" / "my homework (final).ipynb", submission())
    unknown = write(tmp_path / "unknown" / "notes.ipynb", submission(name=None))
    out = tmp_path / "grades.csv"
    g_exit, g_broken, g_renamed, g_unknown = grade(
        [exiting, unreadable, renamed, unknown], solutions, csv_path=out
    )

    assert "kernel died" in g_exit.problem and g_exit.dead_kernel
    # The run died, but the definitions were verified apart.
    assert g_exit.checks == dict.fromkeys(EXPECTED, "passed")
    assert "could not read" in g_broken.problem
    assert g_broken.checks == dict.fromkeys(EXPECTED, "missing")  # known by its file name
    assert g_renamed.identity == "quiz" and g_renamed.total == "2/2"
    assert g_renamed.identity_note is None
    assert "not a notebook of this series" in g_unknown.problem and g_unknown.total == "0/?"

    rows = totals(out)
    assert set(rows) == {str(exiting), str(unreadable), str(renamed), str(unknown)}
    assert "kernel died" in rows[str(exiting)][4]
    assert "could not read" in rows[str(unreadable)][4]


@pytest.mark.slow
@needs_sandbox
def test_the_grader_survives_a_submission_killing_its_parent(tmp_path, solutions):
    killer = write(
        tmp_path / "eve" / "quiz.ipynb",
        submission("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"),
    )
    other = write(tmp_path / "ada" / "quiz.ipynb", submission())
    out = tmp_path / "grades.csv"
    grades = grade([killer, other], solutions, jobs=2, csv_path=out)
    assert [g.total for g in grades] == ["2/2", "2/2"]
    assert grades[1].problem is None
    assert grades[0].problem and grades[0].dead_kernel  # its run stopped short, and says so
    assert set(totals(out)) == {str(p) for p in (killer, other)}


@pytest.mark.slow
def test_no_sandbox_is_stated_on_every_row(tmp_path, solutions):
    paths = [write(tmp_path / "ada" / "quiz.ipynb", submission())]
    out = tmp_path / "grades.csv"
    grades = grade(paths, solutions, sandbox=False, csv_path=out)
    assert [g.total for g in grades] == ["2/2"]
    assert all(not g.sandboxed and grading.NO_SANDBOX_NOTE in g.notes for g in grades)
    assert all(grading.NO_SANDBOX_NOTE in row[4] for row in totals(out).values())
    assert grading.NO_SANDBOX_NOTE in grading.format_table(grades)


@pytest.mark.slow
@needs_sandbox
@pytest.mark.skipif(os.uname().sysname != "Linux", reason="the sandbox's memory limit")
def test_the_memory_limit_stops_a_runaway_notebook(tmp_path, solutions):
    hog = write(
        tmp_path / "hog.ipynb",
        submission(
            "hog = bytearray(6 * 2**30)\nfor i in range(0, len(hog), 4096):\n    hog[i] = 1"
        ),
    )
    [g] = grade([hog], solutions, memory_limit_gib=4)
    # Refused inside the cell (MemoryError) or the kernel stopped: either way, it stops.
    assert any(e.ename == "MemoryError" for e in g.errors) or g.dead_kernel, g
    assert g.total == "2/2"  # the definitions are verified apart


@pytest.mark.slow
@needs_sandbox
def test_timeouts_keep_their_rows_checks_and_the_kernels_console_out_of_the_graders(
    tmp_path, solutions, capfd
):
    looping = write(tmp_path / "loop.ipynb", submission("while True:\n    pass", name="quiz"))
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
    out = tmp_path / "grades.csv"
    g_loop, g = grade([looping, path], solutions, timeout=10, jobs=2, csv_path=out)

    assert g_loop.timed_out and "timed out after 10 s" in g_loop.problem
    assert g_loop.seconds < 120
    # The verdict comes from the definitions, which the loop does not touch.
    assert g_loop.checks == dict.fromkeys(EXPECTED, "passed")
    assert "timed out after 10 s" in totals(out)[str(looping)][4]

    assert g.timed_out and g.problem == "timed out after 10 s at cell 1"
    captured = capfd.readouterr()
    assert "ZMQError" not in captured.err and "Traceback" not in captured.err
    assert "kernel stdout" not in captured.out
    table = grading.format_table([g])
    assert "noisy.ipynb" in table and "timed out after 10 s" in table


@pytest.mark.slow
@needs_sandbox
def test_grading_on_a_dask_cluster_of_two_workers(tmp_path, solutions):
    distributed = pytest.importorskip("distributed")
    paths = [
        write(tmp_path / "ada" / "quiz.ipynb", submission()),
        write(tmp_path / "bob" / "quiz.ipynb", submission(answer="a", function=WRONG)),
    ]
    out = tmp_path / "grades.csv"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        grades = grade(paths, solutions, scheduler=cluster.scheduler_address, csv_path=out)
    assert [g.total for g in grades] == ["2/2", "0/2"]
    assert all(g.sandboxed for g in grades)
    assert "grey level" in grades[1].details["binarize_threshold"]
    assert set(totals(out)) == {str(p) for p in paths}


# ------------------------------------------------------------------ the HTML report


def sample_grades():
    """A small cohort's grades, with every kind of problem the report flags."""

    def g(path, statuses, **extra):
        checks = dict(zip(EXPECTED, statuses))
        details = {
            n: "the threshold is 127: try > 127" for n, s in checks.items() if s == "not yet"
        }
        return grading.NotebookGrade(path, checks, list(EXPECTED), "quiz", details, **extra)

    return [
        g("ada/quiz.ipynb", ["passed", "passed"]),
        g("bob/quiz.ipynb", ["not yet", "passed"]),
        g(
            "cy/quiz.ipynb",
            ["not yet", "not done yet"],
            timed_out=True,
            problem="timed out after 600 s at cell 12",
        ),  # fmt: skip
        g(
            "dee/quiz2.ipynb",
            ["missing", "missing"],
            dead_kernel=True,
            problem="the kernel died at cell 3",
            identity_note="named quiz2 but quiz",
        ),  # fmt: skip
        g(
            "<script>alert(1)</script>.ipynb",
            ["not yet", "not yet"],
            sandboxed=False,
            notes=[grading.NO_SANDBOX_NOTE],
        ),  # fmt: skip
    ]


def test_the_html_report_escapes_what_submissions_wrote(tmp_path):
    page = report.write_html(sample_grades(), tmp_path / "report.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count('class="bar"') == 2  # one per check
    assert "3 students" not in page and ">3</td>" in page  # the commonest hint, 3 times


@pytest.mark.browser
def test_the_html_report_in_headless_chromium(tmp_path):
    from test_site import CHROMIUM_ARGS, chromium_path, in_a_thread_of_its_own, sync_playwright

    path = report.write_html(sample_grades(), tmp_path / "report.html")
    requests, errors = [], []

    def look():
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("dialog", lambda d: errors.append(f"dialog: {d.message}") or d.dismiss())
            page.goto(path.as_uri())
            bars = page.locator("#pass-rates rect.bar")
            assert bars.count() == 2
            widths = [float(bars.nth(i).get_attribute("width")) for i in range(2)]
            assert widths[0] < widths[1]  # binarize_threshold: 1/5; binarization_quiz: 2/5
            assert page.locator("#pass-rates").bounding_box()["width"] > 300
            assert page.locator("#submissions tr.student").count() == 5
            assert page.locator("#submissions tr.problem").count() == 3
            for flag in ("timed out", "kernel died", "sandbox off", "name and metadata disagree"):
                assert page.locator(".flag", has_text=flag).count() >= 1, flag
            assert page.get_by_text("<script>alert(1)</script>.ipynb").count() >= 1
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "grading-report.png", full_page=True)
            browser.close()

    in_a_thread_of_its_own(look)
    assert requests == [path.as_uri()] and errors == []
