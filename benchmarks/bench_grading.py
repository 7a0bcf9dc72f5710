"""How fast does ``vae-prac grade`` get through a cohort? Submissions per minute, projected.

    python benchmarks/bench_grading.py                          # every notebook, 1 of each kind
    python benchmarks/bench_grading.py --per-kind 1 --notebooks 01,04 --jobs 2
    python benchmarks/bench_grading.py --json bench_grading.json

It builds a mixed cohort in a temporary folder, for every notebook of the series (or
those of ``--notebooks``), ``--per-kind`` submissions of each kind:

* **blank**: the student notebook as handed out;
* **half**: the solution with the tasks of its second half left blank, as a student
  mid-way (as ``tests/test_notebooks.py`` makes them);
* **complete**: the solution, its outputs cleared;
* **broken**: the half-done notebook with a cell that raises near its top and one that
  does not parse: "Run All" stops at the first, the grader goes on.

Then it grades them all as an instructor would (``grade_notebooks``: each submission
run in the sandbox, then verified in a second sandboxed process, with the short-runs
setting the grader always sets), ``--jobs`` at once (default: the cores), and prints
the wall time, each kind's mean time per submission, the submissions per minute, and
the time 300 students times 7 notebooks would take on 1, 8 and 64 cores.

The projection assumes the time scales **linearly with the cores**, with one
submission per core: a submission's run and check are single-process work, and the
grader only waits on them; it needs memory for each job at once (``--memory-limit``
each, 8 GiB by default, though a notebook uses far less) and no contention on disk.
It also assumes the cohort's mix of notebooks and kinds is the one measured: with
``--notebooks 01,04`` the projection is for a course made of notebooks like those.

This prints figures; it is not a test. Timings vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from vae_prac.course import SOLUTIONS_DIR, STUDENT_DIR, grading, student

KINDS = ("blank", "half", "complete", "broken")
STUDENTS, NOTEBOOKS = 300, 7
CORES = (1, 8, 64)


def _cleared(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def half_done(solution: Path):
    """The solution with the tasks of its second half left blank."""
    nb = _cleared(nbformat.read(solution, as_version=4))
    tasks = [
        i for i, c in enumerate(nb.cells) if c.cell_type == "code" and student.BEGIN in c.source
    ]
    middle = tasks[len(tasks) // 2] if tasks else len(nb.cells)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and index >= middle:
            cell.source = student.strip_solutions(cell.source)
    return nb


def make(kind: str, solution: Path):
    """One submission of ``kind`` for the notebook whose solution is ``solution``."""
    if kind == "blank":
        return nbformat.read(STUDENT_DIR / solution.name, as_version=4)
    if kind == "complete":
        return _cleared(nbformat.read(solution, as_version=4))
    nb = half_done(solution)
    if kind == "broken":
        first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        nb.cells.insert(first_code + 1, nbformat.v4.new_code_cell("1 / 0  # a slip"))
        nb.cells.insert(first_code + 2, nbformat.v4.new_code_cell("def broken(:\n    pass"))
    return nb


def build_cohort(folder: Path, notebooks: list[Path], per_kind: int) -> list[tuple[str, Path]]:
    """(kind, path) of every submission, one folder per (pretend) student."""
    cohort = []
    number = 0
    for solution in notebooks:
        for kind in KINDS:
            for _ in range(per_kind):
                number += 1
                path = folder / f"student{number:04d}" / solution.name
                path.parent.mkdir(parents=True)
                nbformat.write(make(kind, solution), path)
                cohort.append((kind, path))
    return cohort


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=1, help="submissions of each kind")
    parser.add_argument(
        "--notebooks", help="comma-separated prefixes, e.g. 01,04 (default: every notebook)"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="default: cores")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per notebook")
    parser.add_argument("--no-sandbox", action="store_true", help="time without the sandbox")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    solutions = sorted(SOLUTIONS_DIR.glob("*.ipynb"))
    if args.notebooks:
        prefixes = tuple(p.strip() for p in args.notebooks.split(",") if p.strip())
        solutions = [s for s in solutions if s.name.startswith(prefixes)]
    if not solutions:
        parser.error(f"no solution notebook starts with {args.notebooks!r}")
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores, {cpu_model()}; python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench_grading_") as folder:
        cohort = build_cohort(Path(folder), solutions, args.per_kind)
        print(
            f"cohort: {len(cohort)} submissions ({', '.join(s.stem for s in solutions)}; "
            f"{args.per_kind} of each kind: {', '.join(KINDS)}); grading with "
            f"--jobs {args.jobs}{' --no-sandbox' if args.no_sandbox else ''} ..."
        )

        def progress(done, total, grade):
            print(f"  [{done}/{total}] {grade.seconds:5.1f} s  {grade.total:>5}  "
                  f"{Path(grade.notebook).parent.name}/{Path(grade.notebook).name}",
                  flush=True)  # fmt: skip

        started = time.monotonic()
        grades = grading.grade_notebooks(
            [path for _, path in cohort],
            timeout=args.timeout,
            jobs=args.jobs,
            sandbox=not args.no_sandbox,
            csv_path=Path(folder) / "grades.csv",
            progress=progress,
        )
        wall = time.monotonic() - started

    by_kind = {
        kind: statistics.mean(g.seconds for (k, _), g in zip(cohort, grades) if k == kind)
        for kind in KINDS
    }
    per_minute = len(cohort) / wall * 60
    per_core_minute = per_minute / min(args.jobs, cores)
    total = STUDENTS * NOTEBOOKS
    projected = {c: total / (per_core_minute * c) for c in CORES}
    problems = sum(1 for g in grades if g.problem)
    print(f"\nwall time: {wall:.0f} s for {len(cohort)} submissions ({problems} with a problem)")
    for kind, seconds in by_kind.items():
        print(f"  {kind:9} {seconds:6.1f} s per submission (mean, one job)")
    print(f"throughput: {per_minute:.1f} submissions per minute on {args.jobs} jobs")
    print(
        f"projected for {STUDENTS} students x {NOTEBOOKS} notebooks = {total} submissions "
        "(assuming time linear in the cores, one job per core, this mix of notebooks):"
    )
    for c, minutes in projected.items():
        print(f"  {c:3} cores: {minutes / 60:6.1f} h ({minutes:,.0f} min)")
    if args.json:
        figures = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "cores": cores,
            "cpu": cpu_model(),
            "jobs": args.jobs,
            "submissions": len(cohort),
            "notebooks": [s.stem for s in solutions],
            "wall_s": wall,
            "mean_s_by_kind": by_kind,
            "per_minute": per_minute,
            "projected_min": {str(c): m for c, m in projected.items()},
        }
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
