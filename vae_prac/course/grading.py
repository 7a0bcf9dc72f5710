"""Grade students' notebooks: each one sandboxed, its verdict from a process it never touched.

The grader is the trusted side: it never runs a student's code in its own process. For
each submission it

1. **reads** it (at most ``MAX_SUBMISSION_BYTES``) and finds which notebook of the series
   it is, from its metadata (``{"vae_prac": {"notebook": "04_reparameterization"}}``,
   kept by the student generator), else from its file name; when the two disagree the
   metadata wins and the row says so. The expected checks, and the check cells that run
   them, come from that notebook's *solution* (``notebooks/solutions``), never from the
   submission;
2. **runs** it, for information only, top to bottom in a fresh kernel inside a sandbox
   (``vae_prac.course.sandbox``: bubblewrap; a fresh folder holding only its copy, no
   network, its own process tree, a memory limit for the whole tree; the solutions and
   the other submissions invisible), through ``python -m vae_prac.course.run_notebook``.
   What that run reports (cells that raised, a time-out, a kernel that died, the check
   lines it printed) is kept for the instructor; nothing it wrote counts for a grade;
3. **verifies** every expected check in a second, fresh sandboxed process that never ran
   the student's code at top level (``vae_prac.course.verification``): it loads the
   check machinery first, then only the student's *definitions* (functions, classes,
   answers), with the library functions that answer each task replaced by stand-ins
   that report their use. Only those results count;
4. **writes** the submission's rows: the CSV is appended to and flushed as each
   submission finishes, so a grader stopped half-way keeps what it did, and
   ``--resume`` carries on from there.

Each submission's grading is caught whole: whatever goes wrong (a damaged file, a
kernel killed, a sandbox that failed) becomes that row's ``problem``, and the others are
graded as if nothing happened. Several submissions are graded at once (``jobs``, threads
waiting on sandboxed processes), or on a Dask cluster (``scheduler``).

``notebooks/README.md`` ("For instructors") has the threat model: what this defends
against, and what it does not.

    grades = grade_notebooks(paths, jobs=8, csv_path="grades.csv")
    print(format_table(grades))
    report.write_html(grades, "report.html")     # vae_prac.course.report

``vae-prac grade NOTEBOOK... [--jobs N] [--csv FILE] [--resume] [--html FILE]`` does the
same from a shell.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from vae_prac import short_runs
from vae_prac.checks import LINE, NOT_DONE, NOT_YET, PASSED
from vae_prac.course import ROOT, SOLUTIONS_DIR
from vae_prac.course.run_notebook import (  # noqa: F401 (moved there; still found here)
    CellError,
    ExecutionReport,
    coalesce_streams,
    execute_notebook,
)

MISSING = "missing"
STATUSES = (PASSED, NOT_YET, NOT_DONE, MISSING)
METADATA_KEY = "vae_prac"
CHECK_CELL = re.compile(r"\s*# Run me to test your (code|answer)")
CHECK_MODULE = re.compile(r"^from vae_prac\.checks import (\w+) as check\b", re.M)
#: Seconds the grader gives the verifying process, for all of a notebook's checks.
VERIFY_TIMEOUT = 300
#: Default memory limit of a graded notebook (GiB, for its whole process tree).
MEMORY_LIMIT_GIB = 8.0
#: The largest submission the grader reads; a larger file gets a row saying so.
MAX_SUBMISSION_BYTES = 50 * 2**20
#: The most the grader reads back of the executed notebook and of the run's report: the
#: run writes them inside the sandbox, where the student's code could write anything.
MAX_EXECUTED_BYTES = 64 * 2**20
MAX_REPORT_BYTES = 2**20
#: Seconds the run of a notebook may take beyond ``timeout`` (which counts from its first
#: cell): the kernel's start-up, writing the executed notebook, stopping the kernel.
RUN_GRACE = 90
#: What every row says when the instructor turned the sandbox off.
NO_SANDBOX_NOTE = "graded without the sandbox (--no-sandbox): the student's code ran as you"
#: How a note that is not the problem starts in the total row of the CSV.
NOTE_PREFIX = "note: "


@dataclass
class NotebookGrade:
    """The outcome of grading one submission.

    ``checks`` maps every expected check to the status the grader verified itself:
    "passed", "not yet", "not done yet" or "missing" (never verified: the verifying
    process could not answer for it). ``details`` holds the hint or the reason;
    ``printed`` what the notebook printed for each check when it ran (information only).
    ``problem`` says what went wrong with the grading of this submission, if anything;
    ``notes`` what else the instructor should know (a file name that disagrees with
    the metadata, grading without the sandbox, output cut short).
    """

    notebook: str  # the submission's path, as given
    checks: dict[str, str]
    expected: list[str]
    identity: str | None = None  # which notebook of the series, e.g. "04_reparameterization"
    details: dict[str, str] = field(default_factory=dict)
    printed: dict[str, str] = field(default_factory=dict)
    errors: list[CellError] = field(default_factory=list)
    timed_out: bool = False
    dead_kernel: bool = False
    problem: str | None = None
    notes: list[str] = field(default_factory=list)
    identity_note: str | None = None
    sandboxed: bool = True
    memory_limit: str = ""  # how the memory limit held: sandbox.Finished.memory_limit
    seconds: float = 0.0

    @property
    def passed(self) -> list[str]:
        return [name for name, status in self.checks.items() if status == PASSED]

    @property
    def not_passed(self) -> list[str]:
        return [name for name, status in self.checks.items() if status != PASSED]

    @property
    def total(self) -> str:
        """Checks passed out of expected, e.g. "3/5" ("0/?" when nothing is known)."""
        return f"{len(self.passed)}/{len(self.expected) if self.expected else '?'}"

    @property
    def all_notes(self) -> list[str]:
        """The problem, if any, then the notes."""
        return ([self.problem] if self.problem else []) + list(self.notes)


def __getattr__(name):
    """Names that moved to other modules of the course wing, still found here."""
    if name in ("ExpectedCheck", "expected_checks"):
        from vae_prac.course import verification

        return getattr(verification, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------
# Reading check lines (stored outputs; information, never a grade).


def _text(value) -> str:
    """A stored output's text: a string, or a list of strings (nbformat allows both).

    Anything else (a number, a dict: a hand-edited or hostile file) reads as no text.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(part for part in value if isinstance(part, str))
    return ""


def check_lines(nb) -> dict[str, str]:
    """Check name -> status from the stdout streams stored in a notebook, in order.

    A check printed twice keeps its last status (the last run is what counts). ``nb`` is
    a notebook node or the plain JSON of one; whatever is malformed in it (cells that are
    not objects, a ``text`` that is a number) is skipped, never raised on.
    """
    found = {}
    cells = nb.get("cells") if isinstance(nb, dict) else None
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        outputs = cell.get("outputs")
        # A kernel may deliver one printed line in several stream messages: join them.
        stdout = "".join(
            _text(output.get("text"))
            for output in (outputs if isinstance(outputs, list) else [])
            if isinstance(output, dict)
            and output.get("output_type") == "stream"
            and output.get("name") == "stdout"
        )
        for line in stdout.splitlines():
            match = LINE.match(line)
            if match:
                found[match["name"]] = match["status"]
    return found


def grade_stored_outputs(nb) -> dict[str, str]:
    """The check lines in a notebook's stored outputs, without running it.

    ``nb`` is a notebook node or a path. For the solutions' own stored outputs; a
    submission's stored outputs prove nothing.
    """
    if isinstance(nb, (str, Path)):
        nb = nbformat.read(nb, as_version=4)
    return check_lines(nb)


# --------------------------------------------------------------------------
# Which notebook a submission is, and what it must pass.


def identity(nb) -> str | None:
    """The series notebook a notebook says it is (its metadata), or None."""
    metadata = nb.get("metadata") if isinstance(nb, dict) else None
    meta = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    name = meta.get("notebook") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and re.fullmatch(r"[\w.-]+", name) else None


def find_solution(path, nb=None, solutions=SOLUTIONS_DIR) -> Path | None:
    """The solution notebook for a submission: by its metadata, else by its file name."""
    names = [identity(nb)] if nb is not None else []
    names.append(Path(path).stem)
    for name in names:
        if name and (Path(solutions) / f"{name}.ipynb").is_file():
            return Path(solutions) / f"{name}.ipynb"
    return None


def _identify(path: Path, nb, solutions) -> tuple[Path | None, str | None]:
    """The solution to grade ``nb`` against, and a note when name and metadata disagree."""
    stem = path.stem
    meta = identity(nb)
    solution = find_solution(path, nb, solutions)
    by_name = (Path(solutions) / f"{stem}.ipynb").is_file()
    note = None
    if meta and solution is not None and solution.stem == meta and by_name and stem != meta:
        note = (
            f"the file is named {path.name} but its metadata says {meta}: "
            f"graded as {meta}, as its metadata says"
        )
    elif meta and solution is not None and solution.stem != meta:
        note = (
            f"its metadata names {meta!r}, which is not a notebook of this series: "
            f"graded as {solution.stem}, by its file name"
        )
    return solution, note


def _expected(solution) -> list:
    from vae_prac.course import verification

    return verification.expected_checks(solution)


# --------------------------------------------------------------------------
# Grading one submission.


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _read_capped(path: Path, limit: int, untrusted: bool = False) -> bytes | None:
    """The file's bytes, or None when it is missing or larger than ``limit``.

    With ``untrusted`` (a file the sandboxed run wrote), only a regular file is read, and
    not through a symbolic link: a FIFO would block the grader forever, and a link could
    point at one of the grader's own files.
    """
    flags = os.O_RDONLY | (os.O_NOFOLLOW | os.O_NONBLOCK if untrusted else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    with open(fd, "rb") as f:
        if untrusted and not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        data = f.read(limit + 1)
    return None if len(data) > limit else data


def _remove(folder: Path) -> None:
    """Delete a work folder, even one whose sandboxed run took its own permissions away."""

    def allow_and_retry(function, path, _):
        try:
            for parent in (Path(path).parent, Path(path)):
                if parent.is_dir() and not parent.is_symlink():
                    os.chmod(parent, stat.S_IRWXU)
            function(path)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=allow_and_retry)
    else:
        shutil.rmtree(folder, onerror=allow_and_retry)


def _run_report(raw: bytes | None) -> ExecutionReport | None:
    """The run's report (JSON written inside the sandbox, so checked field by field), or
    None when there is none to read."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        data = None
    return ExecutionReport.from_json(data)


def _safe_name(name: str) -> str:
    """A file name to give the submission's copy: its own, unless that is odd."""
    return name if re.fullmatch(r"[\w ().,+-]{1,120}\.ipynb", name) else "submission.ipynb"


@functools.lru_cache(maxsize=1)
def _data_dir() -> str | None:
    """Where MNIST is, for the sandboxed runs (they cannot download it), if it is here."""
    from vae_prac import mnist_files

    try:
        return str(mnist_files.find_data_dir(download=False))
    except Exception:
        return None


def run_env() -> dict[str, str]:
    """The environment of the sandboxed runs: short training runs, and where MNIST is."""
    env = {short_runs.ENV_VAR: "1"}
    data_dir = _data_dir()
    if data_dir:
        env["VAE_PRAC_DATA_DIR"] = data_dir
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def grade_notebook(
    path,
    *,
    timeout: float = 600,
    solutions=SOLUTIONS_DIR,
    memory_limit_gib: float | None = MEMORY_LIMIT_GIB,
    sandbox: bool = True,
    workroot=None,
    hide: Sequence = (),
    data: bytes | None = None,
    verify_timeout: float = VERIFY_TIMEOUT,
    env: dict[str, str] | None = None,
) -> NotebookGrade:
    """Grade one submission; the file itself is never changed, nor run where it lies.

    ``workroot`` is the folder under which this submission gets its two fresh work
    folders (a temporary one when None, removed after). ``hide`` lists paths the
    sandbox must not show (the other submissions). ``data`` is the submission's bytes
    when they travel instead of the path (Dask workers). ``env`` overrides the runs'
    environment (``run_env()`` by default); ``solutions`` None means this repository's.
    Never raises: whatever goes wrong is the returned grade's ``problem``.
    """
    path = Path(path)
    started = time.monotonic()
    solutions = SOLUTIONS_DIR if solutions is None else solutions
    grade = NotebookGrade(str(path), {}, [], sandboxed=sandbox)
    own_root = workroot is None
    root = Path(tempfile.mkdtemp(prefix="vae_prac_grade_")) if own_root else Path(workroot)
    try:
        _grade(
            grade,
            path,
            data,
            solutions,
            timeout,
            memory_limit_gib,
            sandbox,
            root,
            hide,
            verify_timeout,
            env,
        )
    except Exception as err:  # one submission must never cost the others their grades
        grade.problem = f"the grader could not grade this submission: {_first_line(err)}"
        for name in grade.expected:
            if grade.checks.get(name) is None:
                grade.checks[name] = MISSING
                grade.details[name] = "never verified"
    finally:
        if own_root:
            _remove(root)
    if not sandbox and NO_SANDBOX_NOTE not in grade.notes:
        grade.notes.append(NO_SANDBOX_NOTE)
    grade.seconds = time.monotonic() - started
    return grade


def _grade(
    grade,
    path,
    data,
    solutions,
    timeout,
    memory_limit_gib,
    sandbox,
    root,
    hide,
    verify_timeout,
    env,
):
    """Fill ``grade`` in, step by step (see the module's docstring)."""
    from vae_prac.course import sandbox as sandbox_module
    from vae_prac.course import verification

    def expect(solution) -> list:
        expected = _expected(solution)
        grade.identity = solution.stem
        grade.expected = [c.name for c in expected]
        grade.checks = dict.fromkeys(grade.expected, MISSING)
        grade.details = dict.fromkeys(grade.expected, "never verified")
        return expected

    # 1. Read it, and find which notebook it is.
    if data is None:
        try:
            size = path.stat().st_size
        except OSError as err:
            size, grade.problem = 0, f"could not read the notebook: {_first_line(err)}"
        if size > MAX_SUBMISSION_BYTES:
            grade.problem = (
                f"the file is {size / 2**20:.0f} MB, over the grader's limit of "
                f"{MAX_SUBMISSION_BYTES // 2**20} MB: not read (clear its outputs and resubmit)"
            )
        elif grade.problem is None:
            data = _read_capped(path, MAX_SUBMISSION_BYTES)
            if data is None:
                grade.problem = "could not read the notebook: it is missing or grew while read"
    elif len(data) > MAX_SUBMISSION_BYTES:
        grade.problem = (
            f"the file is {len(data) / 2**20:.0f} MB, over the grader's limit of "
            f"{MAX_SUBMISSION_BYTES // 2**20} MB: not read"
        )
        data = None
    nb = None
    if data is not None:
        try:
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        except Exception as err:
            grade.problem = f"could not read the notebook: {_first_line(err)}"
    if nb is None:
        solution = find_solution(path, solutions=solutions)  # by its file name, then
        if solution is not None:
            expect(solution)
        return
    solution, grade.identity_note = _identify(path, nb, solutions)
    if solution is None:
        grade.problem = (
            f"not a notebook of this series: its metadata names no notebook "
            f"('{METADATA_KEY}' -> 'notebook') and no solution is named {path.name}"
        )
        return
    if grade.identity_note:
        grade.notes.append(grade.identity_note)
    expected = expect(solution)
    env = run_env() if env is None else env
    root.mkdir(parents=True, exist_ok=True)

    # 2. Run it, sandboxed, in a folder holding only its copy: information only.
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    name = _safe_name(path.name)
    (run_dir / name).write_bytes(data)
    argv = [sys.executable, "-m", "vae_prac.course.run_notebook", name, "executed.ipynb",
            "report.json", "--timeout", f"{timeout:g}"]  # fmt: skip
    finished = sandbox_module.run(
        argv,
        run_dir,
        timeout=timeout + RUN_GRACE,
        memory_limit_gib=memory_limit_gib,
        sandbox=sandbox,
        env=env,
        hide=hide,
    )
    grade.memory_limit = finished.memory_limit
    report = _run_report(_read_capped(run_dir / "report.json", MAX_REPORT_BYTES, True))
    grade.problem = _run_problem(report, finished, timeout)
    if report is not None:
        grade.errors = report.errors
        grade.timed_out = report.timed_out
        grade.dead_kernel = report.dead_kernel_cell is not None
    grade.timed_out = grade.timed_out or finished.timed_out
    grade.dead_kernel = grade.dead_kernel or (report is None and not finished.timed_out)
    raw = _read_capped(run_dir / "executed.ipynb", MAX_EXECUTED_BYTES, True)
    try:
        executed = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        executed = None
    grade.printed = check_lines(executed)
    _remove(run_dir)

    # 3. Verify, in a second fresh folder and process that never ran the notebook.
    verify_dir = Path(tempfile.mkdtemp(prefix="verify-", dir=root))
    verified = verification.verify(
        nb,
        expected,
        verify_dir,
        timeout=verify_timeout,
        memory_limit_gib=memory_limit_gib,
        sandbox=sandbox,
        env=env,
        hide=hide,
    )
    _remove(verify_dir)

    # 4. Merge: what was verified counts; what was printed only explains.
    for check in grade.expected:
        answer = verified.get(check) if isinstance(verified, dict) else None
        status, detail = answer if _is_answer(answer) else (MISSING, "never verified")
        grade.checks[check], grade.details[check] = status, detail
        if grade.printed.get(check) == PASSED and status != PASSED:
            grade.details[check] = (
                f"the notebook printed 'passed' but the grader's own run of the "
                f"check says {status}" + (f": {detail}" if detail else "")
            )


def _run_problem(report: ExecutionReport | None, finished, timeout: float) -> str | None:
    """What went wrong with the (informational) run, in a line, or None."""
    if report is not None and report.timed_out:
        cell = report.timed_out_cell
        return f"timed out after {timeout:g} s" + (f" at cell {cell}" if cell is not None else "")
    if finished.timed_out:
        return (
            f"the run was stopped whole after {timeout + RUN_GRACE:g} s (the time limit, "
            f"{timeout:g} s, plus {RUN_GRACE} s to start and stop the kernel)"
        )
    if report is None:
        return (
            f"the run ended without its report (exit status {finished.returncode}): it was "
            "killed, or ran out of memory; the checks were verified apart"
        )
    if report.dead_kernel_cell is not None:
        return (
            f"the kernel died at cell {report.dead_kernel_cell} (the process exited, "
            "crashed or ran out of memory); the checks were verified apart"
        )
    if report.problem:
        return report.problem
    return None


def _is_answer(answer) -> bool:
    return (
        isinstance(answer, tuple)
        and len(answer) == 2
        and answer[0] in STATUSES
        and isinstance(answer[1], str)
    )


# --------------------------------------------------------------------------
# Grading a cohort.


def _check_arguments(timeout, memory_limit_gib, jobs) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    if memory_limit_gib is not None and not memory_limit_gib > 0:
        raise ValueError(
            f"memory_limit_gib must be positive (or None for no limit), got {memory_limit_gib!r}."
        )
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be a whole number of at least 1, got {jobs!r}.")


def hidden_paths(paths) -> list[Path]:
    """What the sandbox hides from every submission: the folders the submissions are in.

    A folder that also holds what the runs need (this environment, vae_prac itself, the
    data) cannot be hidden whole; the submissions in it are hidden one by one.
    """
    needed = [Path(sys.prefix).resolve(), ROOT.resolve(), Path(sys.executable).resolve()]
    data_dir = _data_dir()
    if data_dir:
        needed.append(Path(data_dir).resolve())
    hidden = set()
    for path in paths:
        path = Path(path).resolve()
        folder = path.parent
        holds_needed = any(n == folder or folder in n.parents for n in needed)
        hidden.add(path if holds_needed or folder == Path(folder.anchor) else folder)
    return sorted(hidden)


def _thread_env(jobs: int) -> dict[str, str]:
    """The runs' environment, with TensorFlow's threads shared among ``jobs`` at once."""
    env = run_env()
    if jobs > 1:
        share = str(max(1, (os.cpu_count() or 1) // jobs))
        for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
            env.setdefault(name, share)
        env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    return env


def grade_notebooks(
    paths,
    *,
    timeout: float = 600,
    solutions=SOLUTIONS_DIR,
    memory_limit_gib: float | None = MEMORY_LIMIT_GIB,
    sandbox: bool = True,
    jobs: int | None = None,
    csv_path=None,
    resume: bool = False,
    scheduler=None,
    workroot=None,
    progress: Callable[[int, int, NotebookGrade], None] | None = None,
) -> list[NotebookGrade]:
    """Grade every submission, ``jobs`` at once (default: the cores); grades in input order.

    ``timeout`` bounds each whole notebook's run (seconds, from its first cell). With
    ``csv_path``, each submission's rows are appended and flushed as it finishes; with
    ``resume`` too, the submissions the CSV already holds whole (with their total row)
    are not graded again, and their grades are read back from it. ``scheduler`` (a Dask
    scheduler's address, ``"tcp://host:8786"``) grades on that cluster's workers
    instead, each in the same sandbox; they need this repository, its environment and
    bubblewrap. ``progress(done, total, grade)`` is called as each submission finishes.

    Raises ``sandbox.SandboxUnavailable`` (saying why, and what to install) before
    grading anything when the sandbox cannot run here and ``sandbox`` was not turned off.
    """
    _check_arguments(timeout, memory_limit_gib, jobs)
    if resume and csv_path is None:
        raise ValueError("resume carries on from a CSV: give csv_path too.")
    paths = [Path(p) for p in paths]
    if sandbox and scheduler is None:
        from vae_prac.course import sandbox as sandbox_module

        reason = sandbox_module.unavailable_reason()
        if reason:
            raise sandbox_module.SandboxUnavailable(reason)
    jobs = jobs or os.cpu_count() or 1
    done: dict[int, NotebookGrade] = {}
    if csv_path is not None and resume:
        previous = read_csv(csv_path, keep_whole_only=True)
        for index, path in enumerate(paths):
            if str(path) in previous:
                done[index] = previous[str(path)]
    elif csv_path is not None:
        _start_csv(csv_path)
    todo = [i for i in range(len(paths)) if i not in done]
    lock = threading.Lock()
    finished_count = [len(done)]

    def finish(index: int, grade: NotebookGrade) -> None:
        with lock:  # one writer at a time; rows of one submission stay together
            done[index] = grade
            if csv_path is not None:
                append_csv([grade], csv_path)
            finished_count[0] += 1
            if progress is not None:
                progress(finished_count[0], len(paths), grade)

    own_root = workroot is None
    root = Path(tempfile.mkdtemp(prefix="vae_prac_grade_")) if own_root else Path(workroot)
    # Hidden from every sandbox: the submissions' folders, the other work folders, the CSV.
    hide = hidden_paths(paths) + [root.resolve()]
    if csv_path is not None:
        hide.append(Path(csv_path).resolve())
    options = dict(timeout=timeout, solutions=solutions, memory_limit_gib=memory_limit_gib,
                   sandbox=sandbox)  # fmt: skip
    try:
        if scheduler is not None:
            _grade_on_cluster(scheduler, paths, todo, hide, options, finish)
        else:
            env = _thread_env(min(jobs, max(1, len(todo))))
            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grade") as pool:
                futures = {
                    pool.submit(
                        grade_notebook, paths[i], workroot=root, hide=hide, env=env, **options
                    ): i
                    for i in todo
                }
                try:
                    for future in as_completed(futures):
                        finish(futures[future], future.result())  # grade_notebook never raises
                except KeyboardInterrupt:
                    # Stopped by the instructor: start nothing new, but write the rows of
                    # the submissions being graded, so that --resume carries on from here.
                    running = [f for f in futures if not f.cancel()]
                    for future in running:
                        if futures[future] not in done:
                            finish(futures[future], future.result())
                    raise
    finally:
        if own_root:
            _remove(root)
    return [done[i] for i in range(len(paths))]


def _grade_on_cluster(scheduler, paths, todo, hide, options, finish) -> None:
    """Grade ``todo`` on a Dask distributed cluster; rows are written here, as they come.

    The submissions' bytes travel with the tasks (the workers need no shared disk); the
    solutions are read on the workers, from their own clone of this repository.
    """
    try:
        import distributed
    except ImportError as err:
        raise RuntimeError(
            "grading on a cluster (--scheduler) needs Dask distributed: "
            "pip install 'dask[distributed]'"
        ) from err
    if Path(options["solutions"]) == Path(SOLUTIONS_DIR):  # each worker's own clone's
        options = {**options, "solutions": None}
    with distributed.Client(scheduler, set_as_default=False) as client:
        futures = {}
        for index in todo:
            data = _read_capped(paths[index], MAX_SUBMISSION_BYTES)
            if data is None:  # graded here: the row says why it was not read
                finish(index, grade_notebook(paths[index], **options))
                continue
            future = client.submit(
                grade_notebook, str(paths[index]), data=data, hide=hide, pure=False, **options
            )
            futures[future] = index
        for future in distributed.as_completed(list(futures), loop=client.loop):
            index = futures[future]
            try:
                grade = future.result()
            except Exception as err:  # the worker died, or could not unpickle
                grade = NotebookGrade(
                    str(paths[index]),
                    {},
                    [],
                    problem=f"the cluster could not grade this submission: {_first_line(err)}",
                    sandboxed=options["sandbox"],
                )
            finish(index, grade)


# --------------------------------------------------------------------------
# Reports.


def format_table(grades) -> str:
    """One row per submission (its path): passed out of expected, what has not passed, notes."""
    rows = [("submission", "passed", "not passed yet", "notes")]
    for grade in grades:
        notes = grade.all_notes
        if grade.errors:
            notes.append(f"{len(grade.errors)} cell(s) raised")
        failed = ", ".join(f"{n} ({grade.checks[n]})" for n in grade.not_passed) or "-"
        rows.append((grade.notebook, grade.total, failed, "; ".join(notes) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3]
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


CSV_HEADER = ["submission", "notebook", "check", "status", "note"]
TOTAL_ROW = "(total)"
#: What a spreadsheet would read as the start of a formula (and the escape's own mark).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: one beginning ``=``, ``+``, ``-``, ``@``
    (or a tab or carriage return) gets a leading apostrophe, so ``=HYPERLINK(...)`` in a
    hint or a file name is shown, not run. A leading apostrophe is doubled, so
    ``unescape_cell`` gives back exactly what was written."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def unescape_cell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_START) else text


def _rows(grade: NotebookGrade) -> list[list[str]]:
    rows = [
        [grade.notebook, grade.identity or "", name, status, grade.details.get(name, "")]
        for name, status in grade.checks.items()
    ]
    note = "; ".join(
        ([grade.problem] if grade.problem else []) + [NOTE_PREFIX + n for n in grade.notes]
    )
    rows.append([grade.notebook, grade.identity or "", TOTAL_ROW, grade.total, note])
    return [[escape_cell(cell) for cell in row] for row in rows]


def _start_csv(path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(CSV_HEADER)


def append_csv(grades, path) -> None:
    """Append each grade's rows to the CSV at ``path`` (its header first if it is new),
    flushed to disk before returning: a grader stopped later loses none of them."""
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(CSV_HEADER)
        for grade in grades:
            writer.writerows(_rows(grade))
        f.flush()
        os.fsync(f.fileno())


def write_csv(grades, path) -> None:
    """One row per submission and expected check, then a ``(total)`` row per submission.

    Columns: submission (its path), notebook (which one of the series), check, status
    (verified by the grader), note (the hint, or why it was not verified). The total
    row's status is "passed/expected" and its note the problem, if any, then the notes
    (each beginning "note: "). Cells that a spreadsheet would take for a formula are
    escaped (``escape_cell``).
    """
    _start_csv(path)
    append_csv(grades, path)


def read_csv(path, keep_whole_only: bool = False) -> dict[str, NotebookGrade]:
    """The grades a CSV written by the grader holds, by submission path.

    Only submissions with their total row count (a grader stopped mid-write leaves a
    submission without one). With ``keep_whole_only``, the file is rewritten (atomically)
    without the rows of the incomplete ones, so that appending to it stays clean.
    """
    path = Path(path)
    if not path.exists():
        _start_csv(path)
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = [
            [unescape_cell(cell) for cell in row]
            for row in csv.reader(f)
            if len(row) == len(CSV_HEADER)
        ]
    if rows and rows[0] == CSV_HEADER:
        rows = rows[1:]
    whole = {row[0] for row in rows if row[2] == TOTAL_ROW}
    grades: dict[str, NotebookGrade] = {}
    for submission, notebook, check, status, note in rows:
        if submission not in whole:
            continue
        grade = grades.setdefault(submission, NotebookGrade(submission, {}, [], notebook or None))
        if check != TOTAL_ROW:
            grade.checks[check], grade.details[check] = status, note
            grade.expected.append(check)
            continue
        parts = note.split("; " + NOTE_PREFIX) if note else []
        if parts and parts[0].startswith(NOTE_PREFIX):
            parts[0] = parts[0][len(NOTE_PREFIX) :]
            grade.notes = parts
        elif parts:
            grade.problem, grade.notes = parts[0], parts[1:]
        grade.sandboxed = NO_SANDBOX_NOTE not in grade.notes
        grade.timed_out = bool(grade.problem and "timed out" in grade.problem)
        grade.dead_kernel = bool(grade.problem and "kernel died" in grade.problem)
        grade.identity_note = next((n for n in grade.notes if "its metadata" in n), None)
    if keep_whole_only:
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(CSV_HEADER)
        for grade in grades.values():
            writer.writerows(_rows(grade))
        temporary = path.with_name(path.name + ".partial")
        temporary.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        os.replace(temporary, path)
    return grades
