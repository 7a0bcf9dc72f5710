"""How long the series takes a student, computed from the solution notebooks themselves.

The planning model (notebooks/README.md states it, tests/test_session_budget.py holds the
notebooks to it). A section runs from its ``## N.`` heading to the next ``## `` heading;
its minutes are

* reading: the words of its markdown at 150 words per minute. Words folded in
  ``<details>`` are not counted: answers (the task minutes below cover reading them) and
  optional boxes such as "About the 2017 original";
* 10 minutes per Code Task (a ``### Code Task`` heading), 4 per Math Task
  (``### Math Task``), 3 per written question (``**Question.**``, or each item of a
  ``**Questions.**`` list);
* the measured run time of its code cells, as recorded in each cell's metadata
  (``"vae_prac": {"seconds": N}``) when the solution was last run with
  ``python -m vae_prac.course.student --execute``.

Each notebook's outline plans its sections as ``N. Title (Level) · core · M min``. The core
path of the whole series must fit in CORE_LIMIT minutes, leaving the rest of a 2.5-hour
session for installs, start-up and getting stuck; waypoints in each outline say when a
student on that pace should start the notebook.

Run ``python tools/session_budget.py`` to print the table that notebooks/README.md shows
(``--sections`` adds a line per section); after changing an outline, ``--write`` rewrites
every title's Time line and waypoint, and that table.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"

WORDS_PER_MINUTE = 150
CODE_TASK_MINUTES, MATH_TASK_MINUTES, QUESTION_MINUTES = 10, 4, 3
SESSION_MINUTES = 150
CORE_LIMIT = 120  # the other 30 minutes: installs, start-up, getting stuck
TOLERANCE = 0.20  # how far an outline's core minutes may stray from the computed
FIRST_START = 10  # minutes of a session spent on setup before notebook 01

PLAN_LINE = re.compile(r"^(\d+)\.\s+(.*?)\s+·\s+(core|take-home)\s+·\s+(\d+)\s+min\b", re.M)
SECTION = re.compile(r"^##\s+(\d+)\.")
DETAILS = re.compile(r"<details>.*?</details>", re.S | re.I)
TAG = re.compile(r"<[^>]+>")
CODE_TASK = re.compile(r"^###\s+Code Task", re.M)
MATH_TASK = re.compile(r"^###\s+Math Task", re.M)
QUESTIONS = re.compile(r"\*\*Questions?\b[^*]*\*\*")
LIST_ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s", re.M)
# A run-time claim: "takes about 40 s", "runs in about two minutes", "takes about a minute".
NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
LEVEL_OR_TASK = re.compile(r" [(](?:Beginner|Intermediate|Advanced)[^)]*[)]| · (?:Code|Math) Task")
WAYPOINT = re.compile(r"start this notebook by about \d+:\d\d")
TIME_LINE = re.compile(
    r"\*\*Time:\*\* about \d+ minutes on the core path, \d+ more for the "
    r"take-home sections"
)
# notebooks/README.md's table: from its header row to the first line that is not a row.
TABLE = re.compile(r"^\| notebook \| start by \|.*?(?=\n(?!\|))", re.M | re.S)
RUN_TIME = re.compile(
    r"\b(?:takes?|took|runs? in) about (\d+(?:\.\d+)?|"
    + "|".join(NUMBER_WORDS)
    + r") (seconds?|s|minutes?|min)\b",
    re.I,
)


@dataclass
class Section:
    number: int
    title: str
    kind: str  # "core" or "take-home"
    planned: int  # minutes, from the outline
    words: int = 0
    code_tasks: int = 0
    math_tasks: int = 0
    questions: int = 0
    run_seconds: float = 0.0

    @property
    def minutes(self) -> float:
        return (
            self.words / WORDS_PER_MINUTE
            + CODE_TASK_MINUTES * self.code_tasks
            + MATH_TASK_MINUTES * self.math_tasks
            + QUESTION_MINUTES * self.questions
            + self.run_seconds / 60
        )


def read(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return text if isinstance(text, str) else "".join(text)


def reading_words(markdown: str) -> int:
    return len(TAG.sub(" ", DETAILS.sub(" ", markdown)).split())


def count_questions(markdown: str) -> int:
    unfolded = DETAILS.sub(" ", markdown)
    count = 0
    for match in QUESTIONS.finditer(unfolded):
        if match.group(0).startswith("**Questions"):
            rest = unfolded[match.end() :]
            count += max(2, len(LIST_ITEM.findall(rest)))
        else:
            count += 1
    return count


def recorded_seconds(cell: dict) -> float:
    return float(cell.get("metadata", {}).get("vae_prac", {}).get("seconds", 0.0))


def sections(nb: dict) -> list[Section]:
    """The notebook's sections as its outline plans them, with what they hold."""
    cells = nb["cells"]
    plan = {
        int(n): Section(int(n), title, kind, int(minutes))
        for n, title, kind, minutes in PLAN_LINE.findall(source(cells[0]))
    }
    current = None
    for cell in cells[1:]:
        text = source(cell)
        if cell["cell_type"] == "markdown":
            heading = SECTION.match(text)
            if heading:
                current = plan.get(int(heading.group(1)))
            elif text.startswith("## "):
                current = None
        if current is None:
            continue
        if cell["cell_type"] == "markdown":
            current.words += reading_words(text)
            current.code_tasks += len(CODE_TASK.findall(text))
            current.math_tasks += len(MATH_TASK.findall(text))
            current.questions += count_questions(text)
        elif cell["cell_type"] == "code":
            current.run_seconds += recorded_seconds(cell)
    return list(plan.values())


@dataclass
class Budget:
    name: str
    sections: list[Section]

    def planned(self, kind: str) -> int:
        return sum(s.planned for s in self.sections if s.kind == kind)

    def computed(self, kind: str) -> float:
        return sum(s.minutes for s in self.sections if s.kind == kind)


def budgets(paths=None) -> list[Budget]:
    paths = sorted(SOLUTIONS_DIR.glob("*.ipynb")) if paths is None else paths
    return [Budget(Path(p).stem, sections(read(p))) for p in paths]


def waypoints(all_budgets: list[Budget]) -> dict[str, str]:
    """When to start each notebook, as "H:MM" into the session, on the planned pace.

    The time left after setup is shared out in proportion to each notebook's planned
    core minutes, so the slack for runs and getting stuck is spread along the way.
    """
    total = sum(b.planned("core") for b in all_budgets)
    pace = (SESSION_MINUTES - FIRST_START) / total if total else 1.0
    starts, elapsed = {}, float(FIRST_START)
    for b in all_budgets:
        minutes = round(elapsed)
        starts[b.name] = f"{minutes // 60}:{minutes % 60:02d}"
        elapsed += b.planned("core") * pace
    return starts


def quoted_run_times(nb: dict):
    """Each run-time claim in the markdown: (cell index, claimed seconds, measured seconds).

    A claim in the title cell is about the whole notebook; any other is about the next
    code cell that recorded its run time.
    """
    cells = nb["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        for value, unit in RUN_TIME.findall(source(cell)):
            amount = float(NUMBER_WORDS.get(value.lower(), 0) or value)
            claimed = amount * (60 if unit.lower().startswith("m") else 1)
            if index == 0:
                measured = sum(recorded_seconds(c) for c in cells if c["cell_type"] == "code")
            else:
                measured = next(
                    (
                        recorded_seconds(c)
                        for c in cells[index + 1 :]
                        if c["cell_type"] == "code" and recorded_seconds(c)
                    ),
                    None,
                )
            yield index, claimed, measured


def core_sections(b: Budget) -> str:
    """The numbers and short titles of a notebook's core sections."""
    return "; ".join(
        f"{s.number}. {LEVEL_OR_TASK.sub('', s.title)}" for s in b.sections if s.kind == "core"
    )


def table(all_budgets: list[Budget]) -> str:
    """The markdown table of planned and computed minutes that notebooks/README.md shows."""
    rows = [
        "| notebook | start by | core sections | core: planned | core: computed "
        "| take-home: planned | take-home: computed |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    starts = waypoints(all_budgets)
    for b in all_budgets:
        rows.append(
            f"| {b.name} | {starts[b.name]} | {core_sections(b)} | {b.planned('core')} "
            f"| {b.computed('core'):.0f} | {b.planned('take-home')} "
            f"| {b.computed('take-home'):.0f} |"
        )
    rows.append(
        f"| **all** | | | **{sum(b.planned('core') for b in all_budgets)}** "
        f"| **{sum(b.computed('core') for b in all_budgets):.0f}** "
        f"| {sum(b.planned('take-home') for b in all_budgets)} "
        f"| {sum(b.computed('take-home') for b in all_budgets):.0f} |"
    )
    return "\n".join(rows)


def write(all_budgets: list[Budget]) -> list[str]:
    """Rewrite what follows from the outlines: each title's Time line and waypoint, and the
    table in notebooks/README.md. Returns what changed. (The outlines' own minutes are the
    author's to set, from ``--sections``.)"""
    from vae_prac.course import student  # the notebooks' one format

    changed, starts = [], waypoints(all_budgets)
    for b in all_budgets:
        path = SOLUTIONS_DIR / f"{b.name}.ipynb"
        nb = read(path)
        title = source(nb["cells"][0])
        new = WAYPOINT.sub(f"start this notebook by about {starts[b.name]}", title)
        new = TIME_LINE.sub(
            f"**Time:** about {b.planned('core')} minutes on the core path, "
            f"{b.planned('take-home')} more for the take-home sections",
            new,
        )
        if new != title:
            nb["cells"][0]["source"] = new
            path.write_text(student.dumps(student.nbformat.from_dict(nb)), encoding="utf-8")
            changed.append(str(path.relative_to(ROOT)))
    readme = ROOT / "notebooks" / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = TABLE.sub(lambda _: table(all_budgets), text)
    if new != text:
        readme.write_text(new, encoding="utf-8")
        changed.append(str(readme.relative_to(ROOT)))
    return changed


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    all_budgets = budgets()
    if "--write" in args:
        for path in write(all_budgets):
            print(f"wrote {path}")
        print("Regenerate the student notebooks: python -m vae_prac.course.student")
        return 0
    print(table(all_budgets))
    if "--sections" in args:
        for b in all_budgets:
            for s in b.sections:
                print(
                    f"{b.name} §{s.number} {s.kind:9} planned {s.planned:3} computed "
                    f"{s.minutes:5.1f} (words {s.words}, code {s.code_tasks}, "
                    f"math {s.math_tasks}, questions {s.questions}, run {s.run_seconds:.0f} s)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
