"""The session budget (tools/session_budget.py): the core path fits a 2.5-hour session with
slack, each outline plans what its notebook really asks of a student, the tables and
waypoints shown are the computed ones, and every run time a notebook quotes is the one it
measured."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "session_budget", ROOT / "tools" / "session_budget.py"
)
budget = sys.modules["session_budget"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(budget)

SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
BUDGETS = budget.budgets(SOLUTIONS)
# Outlines plan in whole minutes: a notebook of a few minutes may be off by one.
ROUNDING = 1.0
RUN_TIME_FACTOR = 1.5


def by_notebook(items):
    return pytest.mark.parametrize("b", items, ids=[b.name for b in items])


def markdown(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(seconds=None):
    meta = {"vae_prac": {"seconds": seconds}} if seconds is not None else {}
    return {"cell_type": "code", "metadata": meta, "source": "pass", "outputs": []}


# The model itself, on a notebook made up for the purpose.

TITLE = (
    "# A notebook\n\n**Outline.**\n\n1. One (Beginner) · core · 13 min\n"
    "2. Two (Advanced) · take-home · 5 min\n"
)


def test_the_model_counts_reading_tasks_questions_and_runs():
    words = " ".join(["word"] * 300)
    nb = {
        "cells": [
            markdown(TITLE),
            markdown(
                f"## 1. One (Beginner)\n\n{words}\n\n<details><summary>About the 2017 original"
                f"</summary>\n\n{words}\n\n</details>"
            ),
            markdown("### Code Task: write it\n\n**Question.** Why?"),
            markdown("<details><summary>Answer</summary>**Question.** not counted</details>"),
            code(seconds=30),
            markdown("## 2. Two (Advanced)\n\n### Math Task\n\n**Questions.**\n\n- a?\n- b?\n- c?"),
            code(seconds=60),
            markdown("## 3. Not in the outline\n\n### Code Task"),
        ]
    }
    one, two = budget.sections(nb)
    assert (one.words, one.code_tasks, one.math_tasks, one.questions, one.run_seconds) == (
        311,
        1,
        0,
        1,
        30,
    )  # 300 words, the heading's 3, "### Code Task: write it"'s 5...
    assert one.minutes == pytest.approx(311 / 150 + 10 + 3 + 0.5)
    assert (two.math_tasks, two.questions, two.run_seconds) == (1, 3, 60)
    assert two.minutes == pytest.approx(two.words / 150 + 4 + 9 + 1)
    assert (one.kind, one.planned, two.kind, two.planned) == ("core", 13, "take-home", 5)


def test_run_time_claims_are_read_and_matched_to_the_cell_they_introduce():
    nb = {
        "cells": [
            markdown("# T\n\nThe whole notebook takes about two minutes."),
            markdown("Training runs in about 40 s on 2 CPU cores, and takes about a minute busy."),
            code(),
            code(seconds=45),
            code(seconds=75),
            markdown("The shipped models were trained for 105 minutes (no claim)."),
        ]
    }
    assert list(budget.quoted_run_times(nb)) == [
        (0, 120.0, 120.0),
        (1, 40.0, 45.0),
        (1, 60.0, 45.0),
    ]


def test_waypoints_spread_the_session_over_the_planned_core():
    notebooks = [
        budget.Budget(name, [budget.Section(1, "x", "core", minutes)])
        for name, minutes in (("a", 40), ("b", 30), ("c", 30))
    ]
    assert budget.waypoints(notebooks) == {"a": "0:10", "b": "1:06", "c": "1:48"}


# The series, held to the model.


def test_the_core_path_fits_in_two_hours_leaving_half_an_hour_of_slack():
    computed = sum(b.computed("core") for b in BUDGETS)
    planned = sum(b.planned("core") for b in BUDGETS)
    assert computed <= budget.CORE_LIMIT, f"the core path computes to {computed:.0f} minutes"
    assert planned <= budget.CORE_LIMIT, f"the outlines plan {planned} core minutes"


@by_notebook(BUDGETS)
def test_the_outline_plans_the_minutes_the_notebook_asks_for(b):
    assert b.sections, f"{b.name}: the outline marks no section core or take-home"
    computed, planned = b.computed("core"), b.planned("core")
    assert abs(planned - computed) <= max(budget.TOLERANCE * computed, ROUNDING), (
        f"{b.name}: the outline plans {planned} core minutes, the notebook computes to "
        f"{computed:.1f} (python tools/session_budget.py --sections)"
    )


@by_notebook(BUDGETS)
def test_every_planned_section_exists(b):
    text = "\n".join(
        budget.source(c)
        for c in budget.read(ROOT / "notebooks" / "solutions" / f"{b.name}.ipynb")["cells"]
    )
    for s in b.sections:
        assert re.search(rf"^## {s.number}\. ", text, re.M), f"{b.name}: no section {s.number}"


@by_notebook(BUDGETS)
def test_the_title_states_the_planned_time_and_the_waypoint(b):
    title = budget.source(
        budget.read(ROOT / "notebooks" / "solutions" / f"{b.name}.ipynb")["cells"][0]
    )
    assert (
        f"**Time:** about {b.planned('core')} minutes on the core path, "
        f"{b.planned('take-home')} more for the take-home sections"
    ) in title, b.name
    start = budget.waypoints(BUDGETS)[b.name]
    assert f"start this notebook by about {start}" in title, (
        f"{b.name}: the waypoint should read 'start this notebook by about {start}'"
    )


def test_the_readmes_show_the_computed_table_and_total():
    notebooks_readme = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")
    assert budget.table(BUDGETS) in notebooks_readme, (
        "notebooks/README.md: paste the table that python tools/session_budget.py prints"
    )
    core = sum(b.planned("core") for b in BUDGETS)
    assert f"The core path, about {core} minutes" in (ROOT / "README.md").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_quoted_run_times_agree_with_the_measured_ones(path):
    nb = budget.read(path)
    assert any(budget.recorded_seconds(c) for c in nb["cells"] if c["cell_type"] == "code"), (
        f"{path.name} records no cell's run time: "
        f"python -m vae_prac.course.student --execute {path}"
    )
    for index, claimed, measured in budget.quoted_run_times(nb):
        assert measured, (
            f"{path.name}, cell {index}: a run time is quoted but no later cell records one"
        )
        ratio = max(claimed, measured) / min(claimed, measured)
        assert ratio <= RUN_TIME_FACTOR, (
            f"{path.name}, cell {index}: says {claimed:.0f} s, measured {measured:.0f} s"
        )


def test_write_follows_a_changed_outline(tmp_path, monkeypatch):
    # On a copy: plan 5 more core minutes in 01, and every later waypoint and the table move.
    import shutil

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    monkeypatch.setattr(budget, "ROOT", tmp_path)
    monkeypatch.setattr(budget, "SOLUTIONS_DIR", tmp_path / "notebooks" / "solutions")
    assert budget.write(budget.budgets()) == []  # in step: nothing to rewrite
    first = sorted(budget.SOLUTIONS_DIR.glob("*.ipynb"))[0]
    nb = budget.read(first)
    title = budget.source(nb["cells"][0])
    line = budget.PLAN_LINE.search(title)
    assert line and line.group(3) == "core", "the first section of 01 is no longer core"
    moved = title.replace(
        line.group(0),
        line.group(0).replace(f"· {line.group(4)} min", f"· {int(line.group(4)) + 5} min"),
    )
    nb["cells"][0]["source"] = moved
    first.write_text(__import__("json").dumps(nb), encoding="utf-8")
    after = budget.budgets()
    changed = budget.write(after)
    assert {"notebooks/README.md", f"notebooks/solutions/{first.name}"} <= set(changed)
    assert budget.table(after) in (tmp_path / "notebooks" / "README.md").read_text(encoding="utf-8")
    starts = budget.waypoints(after)
    assert starts != budget.waypoints(BUDGETS)
    for b in after:
        title = budget.source(budget.read(budget.SOLUTIONS_DIR / f"{b.name}.ipynb")["cells"][0])
        assert f"start this notebook by about {starts[b.name]}" in title
        assert f"**Time:** about {b.planned('core')} minutes on the core path" in title
    assert budget.write(after) == []  # and now in step again
