"""Grade students' notebooks: run each one apart from the others, then check it ourselves.

For each submission the grader

1. reads it and finds which notebook of the series it is, from its metadata
   (``{"vae_prac": {"notebook": "04_reparameterization"}}``, kept by the student
   generator), or else from its file name; the expected checks, and the check cells
   that run them, come from that notebook's *solution* (``notebooks/solutions``), never
   from the submission;
2. copies it alone into a new temporary folder and runs it there from top to bottom,
   in a fresh kernel of this environment's Python, with one time budget for the whole
   notebook and (on Linux) a memory limit; a cell that raises does not stop the rest;
3. then runs every expected check again itself, against the student's objects in that
   kernel (``vae_prac.course.verification``), and reads each result from the kernel's
   reply to the grader's own request. Only those results count. What the notebook
   printed is kept for the instructor to compare (``printed``), and never counted.

What this protects against: printed ``[check NAME] passed`` lines, writes to
``checks.RESULTS``, replaced check functions, a stored output edited by hand, a
notebook that deletes files in its folder (it only has its own copy), one that loops
forever (the time limit; checks it passed before are still counted) or kills its
kernel. What it does not: code in the same kernel can still cheat in a determined way
(patching NumPy or TensorFlow, the kernel's reply, or files outside its folder).
Real isolation needs a container or a separate user per submission.

    grades = grade_notebooks(["submissions/ada/04_reparameterization.ipynb"], timeout=600)
    print(format_table(grades))
    write_csv(grades, "grades.csv")

``vae-prac grade NOTEBOOK... [--timeout S] [--memory-limit GIB] [--csv FILE]`` does the
same from a shell.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from vae_prac.checks import LINE, NOT_DONE, NOT_YET, PASSED
from vae_prac.course import SOLUTIONS_DIR

MISSING = "missing"
STATUSES = (PASSED, NOT_YET, NOT_DONE, MISSING)
METADATA_KEY = "vae_prac"
CHECK_CELL = re.compile(r"\s*# Run me to test your (code|answer)")
CHECK_MODULE = re.compile(r"^from vae_prac\.checks import (\w+) as check\b", re.M)
#: Seconds the grader gives each check when it runs it again after the notebook.
VERIFY_TIMEOUT = 120
#: Default memory limit of a graded notebook's kernel (address space, GiB; Linux only).
MEMORY_LIMIT_GIB = 8.0
_CURRENT_ENV_KERNEL = "vae-prac-current-env"


@dataclass
class CellError:
    """An exception raised by a code cell (cell index counts every cell, from 0)."""

    index: int
    ename: str
    evalue: str


@dataclass
class ExpectedCheck:
    """A check a notebook must pass, and the solution's cell that runs it."""

    name: str
    module: str  # the vae_prac.checks module, e.g. "reparameterization"
    source: str  # the solution's check cell, run again by the grader


@dataclass
class ExecutionReport:
    """What happened when a notebook ran (and, when grading, what the grader verified)."""

    errors: list[CellError] = field(default_factory=list)
    timed_out: bool = False
    timed_out_cell: int | None = None
    dead_kernel_cell: int | None = None
    seconds: float = 0.0
    # Wall-clock seconds of each code cell that ran, by cell index.
    cell_seconds: dict[int, float] = field(default_factory=dict)
    verified: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class NotebookGrade:
    """The outcome of grading one submission.

    ``checks`` maps every expected check to the status the grader verified itself:
    "passed", "not yet", "not done yet" or "missing" (never verified: the notebook
    stopped before, or its kernel died). ``details`` holds the hint or the reason;
    ``printed`` what the notebook printed for each check (information only).
    ``problem`` says why a run stopped early or could not start.
    """

    notebook: str  # the submission's path, as given
    checks: dict[str, str]
    expected: list[str]
    identity: str | None = None  # which notebook of the series, e.g. "04_reparameterization"
    details: dict[str, str] = field(default_factory=dict)
    printed: dict[str, str] = field(default_factory=dict)
    errors: list[CellError] = field(default_factory=list)
    timed_out: bool = False
    problem: str | None = None
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


# --------------------------------------------------------------------------
# Reading check lines (stored outputs; information, never a grade).


def check_lines(nb) -> dict[str, str]:
    """Check name -> status from the stdout streams stored in a notebook, in order.

    A check printed twice keeps its last status (the last run is what counts).
    """
    found = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # A kernel may deliver one printed line in several stream messages: join them.
        stdout = "".join(
            output.get("text", "")
            for output in cell.get("outputs", [])
            if output.get("output_type") == "stream" and output.get("name") == "stdout"
        )
        for line in stdout.splitlines():
            match = LINE.match(line)
            if match:
                found[match["name"]] = match["status"]
    return found


def coalesce_streams(cell) -> None:
    """Merge consecutive stream outputs of the same name (stdout, stderr) in place.

    The kernel sends printed text in pieces whose boundaries depend on timing; merged,
    a cell's stored output is the same on every run.
    """
    merged = []
    for output in cell.get("outputs", []):
        previous = merged[-1] if merged else None
        if (
            output.get("output_type") == "stream"
            and previous is not None
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            previous["text"] = previous.get("text", "") + output.get("text", "")
        else:
            merged.append(output)
    cell["outputs"] = merged


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
    meta = nb.metadata.get(METADATA_KEY)
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


def expected_checks(solution) -> list[ExpectedCheck]:
    """The checks a solution notebook runs, in order, each with the cell that runs it.

    A check cell starts ``# Run me to test your code`` (or ``answer``) and its stored
    output is one check line; the ``vae_prac.checks`` module is the one the notebook
    imports ``as check``.
    """
    nb = nbformat.read(solution, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    module = CHECK_MODULE.search(code)
    found = []
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECK_CELL.match(cell.source):
            names = list(check_lines(nbformat.v4.new_notebook(cells=[cell])))
            if len(names) != 1 or module is None:
                raise ValueError(
                    f"{solution}: the check cell {cell.source!r} must import its "
                    "checks `as check` and store exactly one check line."
                )
            found.append(ExpectedCheck(names[0], module[1], cell.source))
    return found


# --------------------------------------------------------------------------
# Running a notebook.


def _kernel_manager(memory_limit_gib: float | None = None):
    """An async kernel manager for a python3 kernel of this very environment.

    A kernelspec found on the system could point at another Python; this one is the
    interpreter running vae_prac (like nbval's --nbval-current-env). With
    ``memory_limit_gib`` the kernel's address space is capped (Linux), so a runaway
    submission fails alone instead of taking the machine down.
    """
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec = ipykernel.kernelspec.get_kernel_dict()
    if memory_limit_gib and sys.platform.startswith("linux"):
        limit = int(memory_limit_gib * 2**30)
        spec["argv"] = [
            sys.executable,
            "-c",
            "import resource; "
            f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
            "from ipykernel.kernelapp import launch_new_instance; "
            "launch_new_instance()",
            "-f",
            "{connection_file}",
        ]

    class CurrentEnvSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            if kernel_name == _CURRENT_ENV_KERNEL:
                return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES, **spec)
            return super().get_kernel_spec(kernel_name)

    options = {}
    if "transport_encryption" in AsyncKernelManager.class_trait_names():
        import zmq

        # Encrypt the kernel's sockets where possible (newer ipykernel warns otherwise).
        options["transport_encryption"] = "auto" if zmq.has("curve") else "disabled"
    return AsyncKernelManager(
        kernel_name=_CURRENT_ENV_KERNEL, kernel_spec_manager=CurrentEnvSpecs(), **options
    )


async def _ask(client, expression: str, timeout: float):
    """Evaluate ``expression`` in the kernel as a user expression; its repr, or an error.

    Returns ``("ok", text)``, ``("error", "ENAME: EVALUE")`` or ``("timeout", "")``.
    """
    msg_id = client.kc.execute(
        "",
        silent=True,
        store_history=False,
        user_expressions={"result": expression},
        stop_on_error=False,
    )
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout", ""
        try:
            reply = await client.kc.get_shell_msg(timeout=remaining)
        except Exception:  # queue.Empty: nothing within the time left
            if not await client.km.is_alive():
                raise
            continue
        if reply.get("parent_header", {}).get("msg_id") != msg_id:
            continue  # the reply to a cell the grader stopped, arriving late
        result = reply["content"].get("user_expressions", {}).get("result", {})
        if result.get("status") == "ok":
            return "ok", result.get("data", {}).get("text/plain", "")
        return "error", f"{result.get('ename', 'error')}: {result.get('evalue', '')}"


def _verify(client, expected: list[ExpectedCheck], timeout: float) -> dict[str, tuple[str, str]]:
    """Run each expected check again in the kernel; name -> (status, detail)."""
    from nbclient.util import run_sync

    verified = {}
    for check in expected:
        nonce = secrets.token_hex(16)
        expression = (
            f"__import__('importlib').import_module('vae_prac.course.verification')"
            f".run({check.name!r}, {check.module!r}, {check.source!r}, {nonce!r})"
        )
        try:
            kind, text = run_sync(_ask)(client, expression, timeout)
        except Exception:
            break  # the kernel died: what was not verified stays missing
        if kind == "timeout":
            run_sync(client.km.interrupt_kernel)()
            verified[check.name] = (
                NOT_YET,
                f"the check did not finish within {timeout:g} s when the grader ran it",
            )
            continue
        if kind == "error":
            verified[check.name] = (NOT_YET, f"the grader's run of this check failed: {text}")
            continue
        try:
            answer = json.loads(ast.literal_eval(text))
            ok = answer["nonce"] == nonce and answer["status"] in STATUSES
        except (ValueError, SyntaxError, TypeError, KeyError):
            ok = False
        verified[check.name] = (
            (answer["status"], answer["detail"])
            if ok
            else (NOT_YET, "the kernel's answer was not the grader's own check result")
        )
    return verified


def execute_notebook(
    nb,
    cwd,
    total_timeout: float | None = None,
    cell_timeout: int | None = None,
    verify: list[ExpectedCheck] = (),
    memory_limit_gib: float | None = None,
    verify_timeout: float = VERIFY_TIMEOUT,
) -> ExecutionReport:
    """Run every code cell of ``nb`` in place (outputs and execution counts are stored).

    Errors never stop the run; they are returned. ``total_timeout`` (seconds) bounds
    the whole run, counted from the first cell (kernel start-up is not counted):
    each cell may use what is left, and the run stops at the cell that exceeds it.
    ``cell_timeout`` bounds each cell on its own. After the cells (or the timeout), the
    checks in ``verify`` are run again in the same kernel: ``report.verified``.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    report = ExecutionReport()
    started = time.monotonic()
    client = NotebookClient(
        nb,
        km=_kernel_manager(memory_limit_gib),
        allow_errors=True,
        record_timing=False,
        timeout=cell_timeout,
        resources={"metadata": {"path": str(cwd)}},
    )
    # The kernel's own console (its stdout and stderr) is not the grader's: whatever a
    # submission prints reaches the notebook through the kernel's messages anyway, and
    # a kernel stopped after a timeout may write a zmq traceback there as it shuts down
    # (older ipykernels do), which would bury the table under noise.
    with client.setup_kernel(cleanup_kc=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        first_cell = time.monotonic()
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if total_timeout is not None:
                remaining = total_timeout - (time.monotonic() - first_cell)
                if remaining <= 0:
                    report.timed_out, report.timed_out_cell = True, index
                    break
                limit = math.ceil(remaining)
                client.timeout = limit if cell_timeout is None else min(limit, cell_timeout)
            cell_started = time.monotonic()
            try:
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except CellTimeoutError:
                report.timed_out, report.timed_out_cell = True, index
                run_sync(client.km.interrupt_kernel)()  # stop the cell; keep what it defined
                break
            except DeadKernelError as err:
                report.dead_kernel_cell = index
                report.errors.append(CellError(index, "DeadKernelError", str(err)))
                break
            finally:
                coalesce_streams(cell)
                report.cell_seconds[index] = time.monotonic() - cell_started
            report.errors += [
                CellError(index, out.get("ename", ""), out.get("evalue", ""))
                for out in cell.outputs
                if out.get("output_type") == "error"
            ]
        if verify and report.dead_kernel_cell is None:
            report.verified = _verify(client, list(verify), verify_timeout)
    report.seconds = time.monotonic() - started
    return report


def grade_notebook(
    path,
    timeout: float = 600,
    solutions=SOLUTIONS_DIR,
    memory_limit_gib: float | None = MEMORY_LIMIT_GIB,
) -> NotebookGrade:
    """Grade one submission (run in a temporary copy; the file is never changed)."""
    path = Path(path)
    started = time.monotonic()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # a damaged upload must not stop the grading of the others
        solution = find_solution(path, solutions=solutions)
        expected = [c.name for c in expected_checks(solution)] if solution else []
        return NotebookGrade(
            str(path),
            {name: MISSING for name in expected},
            expected,
            identity=solution.stem if solution else None,
            problem=f"could not read the notebook: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}".rstrip(": "),
        )
    solution = find_solution(path, nb, solutions)
    if solution is None:
        return NotebookGrade(
            str(path),
            {},
            [],
            problem=(
                f"not a notebook of this series: its metadata names no notebook "
                f"('{METADATA_KEY}' -> 'notebook') and no solution is named {path.name}"
            ),
        )
    expected = expected_checks(solution)
    names = [c.name for c in expected]
    problem = None
    with tempfile.TemporaryDirectory(prefix="vae_prac_grade_") as folder:
        shutil.copyfile(path, Path(folder) / path.name)  # what it deletes there is its own
        try:
            report = execute_notebook(
                nb,
                folder,
                total_timeout=timeout,
                verify=expected,
                memory_limit_gib=memory_limit_gib,
            )
        except Exception as err:
            report = ExecutionReport()
            problem = f"could not run the notebook: {type(err).__name__}: {err}"
    if report.timed_out:
        problem = f"timed out after {timeout:g} s at cell {report.timed_out_cell}"
    elif report.dead_kernel_cell is not None:
        problem = (
            f"the kernel died at cell {report.dead_kernel_cell} (the process exited, "
            "crashed or ran out of memory); no check could be verified"
        )
    printed = check_lines(nb)
    checks, details = {}, {}
    for name in names:
        status, detail = report.verified.get(name, (MISSING, "never verified"))
        checks[name], details[name] = status, detail
        if printed.get(name) == PASSED and status != PASSED:
            details[name] = (
                f"the notebook printed 'passed' but the grader's own run of the "
                f"check says {status}" + (f": {detail}" if detail else "")
            )
    return NotebookGrade(
        str(path),
        checks,
        names,
        identity=solution.stem,
        details=details,
        printed=printed,
        errors=report.errors,
        timed_out=report.timed_out,
        problem=problem,
        seconds=time.monotonic() - started,
    )


def grade_notebooks(
    paths,
    timeout: float = 600,
    solutions=SOLUTIONS_DIR,
    memory_limit_gib: float | None = MEMORY_LIMIT_GIB,
) -> list[NotebookGrade]:
    """Grade each submission in turn; ``timeout`` seconds for each whole notebook."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    if memory_limit_gib is not None and not memory_limit_gib > 0:
        raise ValueError(
            f"memory_limit_gib must be positive (or None for no limit), got {memory_limit_gib!r}."
        )
    return [grade_notebook(path, timeout, solutions, memory_limit_gib) for path in paths]


# --------------------------------------------------------------------------
# Reports.


def format_table(grades) -> str:
    """One row per submission (its path): passed out of expected, what has not passed, notes."""
    rows = [("submission", "passed", "not passed yet", "notes")]
    for grade in grades:
        notes = [grade.problem] if grade.problem else []
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


def write_csv(grades, path) -> None:
    """One row per submission and expected check, then a ``(total)`` row per submission.

    Columns: submission (its path), notebook (which one of the series), check, status
    (verified by the grader), note (the hint, or why it was not verified). The total
    row's status is "passed/expected" and its note the problem, if any.
    """
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        for grade in grades:
            for name, status in grade.checks.items():
                writer.writerow(
                    [
                        grade.notebook,
                        grade.identity or "",
                        name,
                        status,
                        grade.details.get(name, ""),
                    ]
                )
            writer.writerow(
                [grade.notebook, grade.identity or "", TOTAL_ROW, grade.total, grade.problem or ""]
            )
