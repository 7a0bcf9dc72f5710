"""Run a notebook top to bottom in a fresh kernel, and say what happened.

Two users:

* ``python -m vae_prac.course.student --execute`` refreshes a solution's stored outputs
  with :func:`execute_notebook`, in the solution's own folder (trusted code, no sandbox);
* the grader runs each submission through this module's command, inside the sandbox
  (``vae_prac.course.sandbox``), in a work folder holding only that submission's copy::

      python -m vae_prac.course.run_notebook IN OUT REPORT --timeout S [--output-limit BYTES]

  It runs IN in a kernel of this Python, writes OUT (the executed notebook) and REPORT
  (JSON: ``errors`` ``[[cell, ename, evalue], ...]``, ``timed_out``, ``timed_out_cell``,
  ``dead_kernel_cell``, ``cell_seconds`` ``{cell: seconds}``, ``seconds``, and
  ``problem``: why the run could not start or finish, else null).

What the command writes is **information for the instructor, never a grade**: the
student's kernel runs in the same sandbox and may rewrite OUT and REPORT at will. The
grade comes from a second, fresh process (``vae_prac.course.verification``). So the
grader reads REPORT with :meth:`ExecutionReport.from_json`, which takes whatever it
finds there without trusting its shape.

What a submission prints is capped as it arrives, per cell (``--output-limit``, 100 kB
by default) and per notebook (50 times that): text beyond the limit is cut and a note
says how much was dropped; an image or other data that does not fit is dropped whole,
with the same note. A notebook printing 400 MB therefore costs the runner (and the
grader, who reads OUT) a bounded amount of memory, not 400 MB twice over.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":  # the grader's runner, once per submission
    # jsonschema (under nbformat) compiles an IRI grammar at import when the optional
    # rfc3987_syntax is installed, over a second of CPU; nbformat never checks IRIs.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]

import nbformat  # noqa: E402

#: Characters of output a cell keeps by default (text, and base64 of images alike).
OUTPUT_LIMIT = 100_000
#: A notebook keeps at most this many times ``output_limit`` over all its cells.
NOTEBOOK_OUTPUT_FACTOR = 50
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
    dead_kernel_cell: int | None = None
    seconds: float = 0.0
    # Wall-clock seconds of each code cell that ran, by cell index.
    cell_seconds: dict[int, float] = field(default_factory=dict)
    # Why the run could not start or finish (the command's REPORT only).
    problem: str | None = None

    def to_json(self) -> dict:
        """The REPORT written by ``python -m vae_prac.course.run_notebook``."""
        return {
            "errors": [[e.index, e.ename, e.evalue] for e in self.errors],
            "timed_out": self.timed_out,
            "timed_out_cell": self.timed_out_cell,
            "dead_kernel_cell": self.dead_kernel_cell,
            "cell_seconds": {str(i): s for i, s in self.cell_seconds.items()},
            "seconds": self.seconds,
            "problem": self.problem,
        }

    @classmethod
    def from_json(cls, data, max_errors: int = 100, max_chars: int = 500) -> ExecutionReport:
        """A report read back from REPORT, keeping only values of the right type.

        REPORT lies in a folder the submission could write to, so anything may be there:
        a value of the wrong type is left out, strings are cut to ``max_chars`` and
        the errors to ``max_errors``. Never raises.
        """

        def index(value):
            return value if type(value) is int and value >= 0 else None

        def text(value):
            return value[:max_chars] if isinstance(value, str) else ""

        def number(value):
            ok = type(value) in (int, float) and math.isfinite(value) and value >= 0
            return float(value) if ok else 0.0

        report = cls()
        if not isinstance(data, dict):
            report.problem = "the run's report is not a JSON object"
            return report
        errors = data.get("errors")
        for item in errors[:max_errors] if isinstance(errors, list) else []:
            if isinstance(item, list) and len(item) == 3 and index(item[0]) is not None:
                report.errors.append(CellError(item[0], text(item[1]), text(item[2])))
        report.timed_out = data.get("timed_out") is True
        report.timed_out_cell = index(data.get("timed_out_cell"))
        report.dead_kernel_cell = index(data.get("dead_kernel_cell"))
        report.seconds = number(data.get("seconds"))
        cells = data.get("cell_seconds")
        for key, value in list(cells.items())[:10_000] if isinstance(cells, dict) else []:
            if isinstance(key, str) and key.isdigit():
                report.cell_seconds[int(key)] = number(value)
        problem = data.get("problem")
        report.problem = text(problem) if isinstance(problem, str) else None
        return report


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
            previous["text"] = _as_text(previous.get("text", "")) + _as_text(output.get("text", ""))
        else:
            merged.append(output)
    cell["outputs"] = merged


# --------------------------------------------------------------------------
# Capping outputs.


def _as_text(value) -> str:
    """A stored text field as one string (nbformat allows a list of lines; a damaged
    notebook may hold anything)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return str(value)


def _size(value) -> int:
    """Characters in an output's content (strings, lists and dicts of them)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    if isinstance(value, dict):
        return sum(len(str(k)) + _size(v) for k, v in value.items())
    return len(str(value))


def _shrink(output, budget: int) -> int:
    """Cut ``output`` in place to about ``budget`` characters; returns characters dropped.

    Text (a stream's, an error's, a ``text/*`` or JSON representation) is cut; any other
    representation (an image, HTML widgets' state, ...) that does not fit is dropped whole.
    """
    budget = max(budget, 0)
    before = _size(dict(output))
    kind = output.get("output_type")
    if kind == "stream":
        output["text"] = _as_text(output.get("text", ""))[:budget]
    elif kind == "error":
        output["ename"] = _as_text(output.get("ename", ""))[:200]
        output["evalue"] = _as_text(output.get("evalue", ""))[: budget // 2]
        kept, left = [], budget - len(output["evalue"])
        traceback = output.get("traceback", [])
        for line in traceback if isinstance(traceback, list) else [traceback]:
            line = _as_text(line)
            if len(line) > left:
                break
            kept.append(line)
            left -= len(line)
        output["traceback"] = kept
    else:
        data = output.get("data")
        kept, left = {}, budget
        for mime, value in data.items() if isinstance(data, dict) else []:
            if _size(value) <= left:
                kept[mime] = value
            elif str(mime).startswith("text/") and left > 0:
                kept[mime] = _as_text(value)[:left]
            else:
                continue
            left -= _size(kept[mime])
        if "data" in output:
            output["data"] = kept
        output["metadata"] = {}
    return max(before - _size(dict(output)), 0)


def _note(dropped: int, limit: int):
    return nbformat.v4.new_output(
        "stream",
        name="stderr",
        text=f"\n[vae_prac: {dropped:,} more characters of this cell's output were dropped: "
        f"a graded cell keeps {limit:,}]\n",
    )


def cap_outputs(cell, limit: int) -> int:
    """Cap a cell's stored outputs at ``limit`` characters in all (a note says what was
    dropped); returns the characters dropped. For outputs that did not pass through the
    runner's own cap (a display updated in place)."""
    kept, left, dropped = [], limit, 0
    for output in cell.get("outputs", []):
        if not isinstance(output, dict):
            continue
        size = _size(dict(output))
        if size > left:
            dropped += _shrink(output, left)
            size = _size(dict(output))
        if size:
            kept.append(output)
        left -= size
    if dropped:
        kept.append(_note(dropped, limit))
    cell["outputs"] = kept
    return dropped


def _client_class():
    """nbclient's NotebookClient, capping each cell's outputs as they arrive."""
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        """Keeps at most ``output_limit`` characters of output per cell and
        ``notebook_output_limit`` per notebook; the rest is counted, not stored."""

        def __init__(self, *args, output_limit=None, notebook_output_limit=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.output_limit = output_limit
            self.notebook_left = notebook_output_limit
            self.cell_left: dict[int, int] = {}
            self.dropped: dict[int, int] = {}

        def output(self, outs, msg, display_id, cell_index):
            out = super().output(outs, msg, display_id, cell_index)
            if out is None or self.output_limit is None:
                return out
            if cell_index not in self.cell_left:
                self.cell_left[cell_index] = min(self.output_limit, self.notebook_left)
            left = self.cell_left[cell_index]
            size = _size(dict(out))
            if size > left:
                self.dropped[cell_index] = self.dropped.get(cell_index, 0) + _shrink(out, left)
                size = _size(dict(out))  # what is left of it (its keys) stays in place
            self.cell_left[cell_index] = left - size
            self.notebook_left -= size
            return out

        def finish_cell(self, cell, cell_index):
            """Add the note on what was dropped; a last cap for displays updated in place."""
            dropped = self.dropped.pop(cell_index, 0)
            if dropped:
                cell.outputs.append(_note(dropped, self.output_limit))
            coalesce_streams(cell)
            if self.output_limit is not None:
                cap_outputs(cell, self.output_limit + 1_000)  # the note fits

    return CappedClient


# --------------------------------------------------------------------------
# Running a notebook.


def _kernel_manager(memory_limit_gib: float | None = None):
    """An async kernel manager for a python3 kernel of this very environment.

    A kernelspec found on the system could point at another Python; this one is the
    interpreter running vae_prac (like nbval's --nbval-current-env). With
    ``memory_limit_gib`` the kernel's address space is capped (Linux), so a runaway
    notebook fails alone instead of taking the machine down. (In the grader's sandbox
    the sandbox limits the memory of the whole process tree instead.)
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


def execute_notebook(
    nb,
    cwd,
    total_timeout: float | None = None,
    cell_timeout: int | None = None,
    memory_limit_gib: float | None = None,
    output_limit: int | None = None,
) -> ExecutionReport:
    """Run every code cell of ``nb`` in place (outputs and execution counts are stored).

    Errors never stop the run; they are returned. ``total_timeout`` (seconds) bounds
    the whole run, counted from the first cell (kernel start-up is not counted):
    each cell may use what is left, and the run stops at the cell that exceeds it (the
    kernel is then killed, not asked to stop: it may ignore the interrupt).
    ``cell_timeout`` bounds each cell on its own. ``output_limit`` caps the characters
    of output kept per cell (``NOTEBOOK_OUTPUT_FACTOR`` times that per notebook).
    """
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbclient.util import run_sync

    report = ExecutionReport()
    started = time.monotonic()
    client = _client_class()(
        nb,
        km=_kernel_manager(memory_limit_gib),
        allow_errors=True,
        record_timing=False,
        timeout=cell_timeout,
        resources={"metadata": {"path": str(cwd)}},
        output_limit=output_limit,
        notebook_output_limit=(
            None if output_limit is None else output_limit * NOTEBOOK_OUTPUT_FACTOR
        ),
    )
    # The kernel's own console (its stdout and stderr) is not ours: whatever a notebook
    # prints reaches it through the kernel's messages anyway, and a kernel stopped after
    # a timeout may write a zmq traceback there as it shuts down (older ipykernels do).
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
                client.finish_cell(cell, index)
                report.cell_seconds[index] = time.monotonic() - cell_started
            report.errors += [
                CellError(index, _as_text(out.get("ename", "")), _as_text(out.get("evalue", "")))
                for out in cell.outputs
                if out.get("output_type") == "error"
            ]
        if report.timed_out:
            # A kernel that ignores the interrupt would hold a graceful shutdown: kill it.
            client.shutdown_kernel = "immediate"
    report.seconds = time.monotonic() - started
    return report


# --------------------------------------------------------------------------
# The command the grader runs in the sandbox.


def _clear_outputs(nb) -> None:
    """Forget the submission's stored outputs: OUT holds only what this run printed."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None


def run(in_path, out_path, report_path, timeout: float, output_limit: int = OUTPUT_LIMIT) -> int:
    """Run ``in_path``, write ``out_path`` and ``report_path``; 0, or 1 when the run could
    not start or its results could not be written (REPORT then says why)."""
    started = time.monotonic()
    report = ExecutionReport()
    nb = None
    try:
        nb = nbformat.read(in_path, as_version=4)
        _clear_outputs(nb)
        report = execute_notebook(
            nb, Path(in_path).resolve().parent, total_timeout=timeout, output_limit=output_limit
        )
    except Exception as err:  # the report must still be written, saying what went wrong
        report.problem = f"could not run the notebook: {type(err).__name__}: {err}"[:2000]
    if nb is not None:
        try:
            nbformat.write(nb, out_path)
        except Exception as err:
            report.problem = (
                report.problem
                or (f"could not write the executed notebook: {type(err).__name__}: {err}"[:2000])
            )
    report.seconds = time.monotonic() - started
    Path(report_path).write_text(json.dumps(report.to_json()), encoding="utf-8")
    return 1 if report.problem else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vae_prac.course.run_notebook",
        description="Run a notebook in a fresh kernel of this Python; write the executed "
        "notebook and a JSON report of what happened (errors, time-out, dead kernel).",
    )
    parser.add_argument("notebook", help="the notebook to run (IN)")
    parser.add_argument("out", help="where to write the executed notebook (OUT)")
    parser.add_argument("report", help="where to write the JSON report (REPORT)")
    parser.add_argument(
        "--timeout",
        type=float,
        required=True,
        help="seconds for the whole notebook, counted from its first cell",
    )
    parser.add_argument(
        "--output-limit",
        type=int,
        default=OUTPUT_LIMIT,
        help=f"characters of output kept per cell (default {OUTPUT_LIMIT:,}); "
        f"{NOTEBOOK_OUTPUT_FACTOR} times that per notebook",
    )
    args = parser.parse_args(argv)
    if not args.timeout > 0 or not args.output_limit > 0:
        parser.error("--timeout and --output-limit must be positive.")
    return run(args.notebook, args.out, args.report, args.timeout, args.output_limit)


if __name__ == "__main__":
    sys.exit(main())
