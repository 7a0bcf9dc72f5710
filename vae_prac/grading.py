"""Grade notebooks: run them headless and collect the lines their checks print.

Every exercise check prints one line ``[check NAME] STATUS`` (see ``vae_prac.checks``).
Grading a notebook runs it from top to bottom in a fresh kernel of this environment's
Python, with the notebook's folder as working directory, and reads those lines. One
failing exercise does not stop the rest: errors are recorded and the next cell runs.
The whole notebook gets one time budget; when it runs out the run stops, and checks
that were never reached count as "missing".

Which checks a notebook should print is read from the solution notebook of the same
name (``notebooks/solutions``), whose stored outputs hold every check line.

    grades = grade_notebooks(["notebooks/student/01_setup_and_data.ipynb"], timeout=600)
    print(format_table(grades))
    write_csv(grades, "grades.csv")

``vae-prac grade NOTEBOOK... [--timeout S] [--csv FILE]`` does the same from a shell.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from vae_prac.checks import LINE, NOT_DONE, NOT_YET, PASSED

MISSING = "missing"
STATUSES = (PASSED, NOT_YET, NOT_DONE, MISSING)
SOLUTIONS_DIR = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"
_CURRENT_ENV_KERNEL = "vae-prac-current-env"


@dataclass
class CellError:
    """An exception raised by a code cell (cell index counts every cell, from 0)."""

    index: int
    ename: str
    evalue: str


@dataclass
class ExecutionReport:
    """What happened when a notebook ran."""

    errors: list[CellError] = field(default_factory=list)
    timed_out: bool = False
    timed_out_cell: int | None = None
    seconds: float = 0.0


@dataclass
class NotebookGrade:
    """The outcome of grading one notebook.

    ``checks`` maps every expected check (and any other check seen) to "passed",
    "not yet", "not done yet" or "missing" (expected but never printed). ``problem``
    says why a run stopped early (a timeout, a dead kernel, an unreadable file).
    """

    notebook: str
    checks: dict[str, str]
    expected: list[str]
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


# --------------------------------------------------------------------------
# Reading check lines.


def check_lines(nb) -> dict[str, str]:
    """Check name -> status from the stdout streams stored in a notebook, in order.

    A check printed twice keeps its last status (the last run is what counts).
    """
    found = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # A kernel may deliver one printed line in several stream messages: join them.
        stdout = "".join(output.get("text", "") for output in cell.get("outputs", [])
                         if output.get("output_type") == "stream"
                         and output.get("name") == "stdout")
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
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream"
                and previous.get("name") == output.get("name")):
            previous["text"] = previous.get("text", "") + output.get("text", "")
        else:
            merged.append(output)
    cell["outputs"] = merged


def grade_stored_outputs(nb) -> dict[str, str]:
    """The check lines in a notebook's stored outputs, without running it.

    ``nb`` is a notebook node or a path.
    """
    if isinstance(nb, (str, Path)):
        nb = nbformat.read(nb, as_version=4)
    return check_lines(nb)


def expected_checks(path) -> list[str] | None:
    """The checks the solution of the same name prints, or None if there is no solution.

    Looks in the sibling ``solutions`` folder of the notebook's folder (e.g. for
    notebooks/student/X.ipynb, notebooks/solutions/X.ipynb), then in the repository's.
    """
    path = Path(path)
    for folder in (path.parent.parent / "solutions", SOLUTIONS_DIR):
        solution = folder / path.name
        if solution.is_file():
            return list(grade_stored_outputs(solution))
    return None


# --------------------------------------------------------------------------
# Running a notebook.


def _kernel_manager():
    """An async kernel manager for a python3 kernel of this very environment.

    A kernelspec found on the system could point at another Python; this one is the
    interpreter running vae_prac (like nbval's --nbval-current-env).
    """
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class CurrentEnvSpecs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            if kernel_name == _CURRENT_ENV_KERNEL:
                return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES,
                                              **ipykernel.kernelspec.get_kernel_dict())
            return super().get_kernel_spec(kernel_name)

    options = {}
    if "transport_encryption" in AsyncKernelManager.class_trait_names():
        import zmq
        # Encrypt the kernel's sockets where possible (newer ipykernel warns otherwise).
        options["transport_encryption"] = "auto" if zmq.has("curve") else "disabled"
    return AsyncKernelManager(kernel_name=_CURRENT_ENV_KERNEL,
                              kernel_spec_manager=CurrentEnvSpecs(), **options)


def execute_notebook(nb, cwd, total_timeout: float | None = None,
                     cell_timeout: int | None = None) -> ExecutionReport:
    """Run every code cell of ``nb`` in place (outputs and execution counts are stored).

    Errors never stop the run; they are returned. ``total_timeout`` (seconds) bounds
    the whole run, counted from the first cell (kernel start-up is not counted):
    each cell may use what is left, and the run stops at the cell that exceeds it.
    ``cell_timeout`` bounds each cell on its own.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    report = ExecutionReport()
    started = time.monotonic()
    client = NotebookClient(nb, km=_kernel_manager(), allow_errors=True, record_timing=False,
                            timeout=cell_timeout, resources={"metadata": {"path": str(cwd)}})
    with client.setup_kernel(cleanup_kc=True):
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
            try:
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except CellTimeoutError:
                report.timed_out, report.timed_out_cell = True, index
                break
            except DeadKernelError as err:
                report.errors.append(CellError(index, "DeadKernelError", str(err)))
                break
            finally:
                coalesce_streams(cell)
            report.errors += [CellError(index, out.get("ename", ""), out.get("evalue", ""))
                              for out in cell.outputs if out.get("output_type") == "error"]
    report.seconds = time.monotonic() - started
    return report


def grade_notebook(path, timeout: float = 600) -> NotebookGrade:
    """Run one notebook (a copy; the file is not changed) and grade its check lines."""
    path = Path(path)
    started = time.monotonic()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # a damaged upload must not stop the grading of the others
        return NotebookGrade(str(path), {}, expected_checks(path) or [],
                             problem=f"could not read the notebook: {err}")
    problem = None
    try:
        report = execute_notebook(nb, path.parent.resolve(), total_timeout=timeout)
    except Exception as err:
        report = ExecutionReport()
        problem = f"could not run the notebook: {type(err).__name__}: {err}"
    if report.timed_out:
        problem = f"timed out after {timeout:g} s at cell {report.timed_out_cell}"
    elif any(e.ename == "DeadKernelError" for e in report.errors):
        problem = "the kernel died"
    seen = check_lines(nb)
    expected = expected_checks(path)
    if expected is None:
        expected = list(seen)
    checks = {name: seen.get(name, MISSING) for name in expected}
    checks.update({name: status for name, status in seen.items() if name not in checks})
    return NotebookGrade(str(path), checks, expected, errors=report.errors,
                         timed_out=report.timed_out, problem=problem,
                         seconds=time.monotonic() - started)


def grade_notebooks(paths, timeout: float = 600) -> list[NotebookGrade]:
    """Grade each notebook in turn; ``timeout`` seconds for each whole notebook."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    return [grade_notebook(path, timeout) for path in paths]


# --------------------------------------------------------------------------
# Reports.


def format_table(grades) -> str:
    """One row per notebook: checks passed out of expected, what has not passed, problems."""
    rows = [("notebook", "passed", "not passed yet", "notes")]
    for grade in grades:
        total = len(grade.checks)
        notes = [grade.problem] if grade.problem else []
        if grade.errors:
            notes.append(f"{len(grade.errors)} cell(s) raised")
        failed = ", ".join(f"{n} ({grade.checks[n]})" for n in grade.not_passed) or "-"
        rows.append((Path(grade.notebook).name, f"{len(grade.passed)}/{total}", failed,
                     "; ".join(notes) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3]
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


def write_csv(grades, path) -> None:
    """One row per notebook and check: notebook, check, status."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["notebook", "check", "status"])
        for grade in grades:
            for name, status in grade.checks.items():
                writer.writerow([grade.notebook, name, status])
