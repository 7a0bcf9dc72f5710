"""Every Code Task's check, tried on the catalog (tests/catalog): answers in other styles
pass and work downstream; the mistakes a cohort makes fail with a hint that names the
slip, never gives the answer and never contradicts itself."""

from __future__ import annotations

import importlib
import re

import pytest
from catalog import Exercise

from vae_prac import checks

MODULES = ["nb01", "nb02", "nb03", "nb04", "nb05", "nb06", "nb07", "nb07_tasks"]
MIN_CORRECT, MIN_MISTAKES = 4, 8


def _exercises() -> list[Exercise]:
    found = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"catalog.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"catalog.{name}":
                raise
            continue
        found += module.EXERCISES
    return found


EXERCISES = _exercises()
CORRECT = [(ex, label) for ex in EXERCISES for label in ex.correct]
MISTAKES = [(ex, label) for ex in EXERCISES for label in ex.mistakes]
NUMBER = r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)"
# "it should be A, yours is B" with A == B would contradict itself.
CLAIM = re.compile(rf"(?:is|be|gives?|of)\s+{NUMBER}[^.;]*?yours\s+(?:is|gives?)\s+{NUMBER}")


def ids(pairs):
    return [f"{ex.name}-{label}" for ex, label in pairs]


def params(pairs, fast):
    """(check, answer) pairs as test parameters: the first ``fast`` of each check are
    what `pytest -m "not slow"` tries; the rest of the catalog (minutes, as many answers
    train a few steps downstream) is marked slow."""
    seen = dict.fromkeys((ex.name for ex, _ in pairs), 0)
    out = []
    for (ex, label), name in zip(pairs, ids(pairs)):
        seen[ex.name] += 1
        marks = pytest.mark.slow if seen[ex.name] > fast else ()
        out.append(pytest.param(ex, label, id=name, marks=marks))
    return out


@pytest.mark.parametrize("exercise", EXERCISES, ids=[ex.name for ex in EXERCISES])
def test_catalog_is_large_enough(exercise):
    assert len(exercise.correct) >= MIN_CORRECT, (
        f"{exercise.name}: {len(exercise.correct)} correct answers"
    )
    assert len(exercise.mistakes) >= MIN_MISTAKES, (
        f"{exercise.name}: {len(exercise.mistakes)} mistakes"
    )


@pytest.mark.parametrize("exercise, label", params(CORRECT, fast=1))
def test_correct_answer_passes_and_works_downstream(exercise, label):
    answer = exercise.correct[label]
    status, detail = checks.outcome(exercise.check, answer)
    assert status == checks.PASSED, f"{label} was rejected: {detail}"
    if exercise.downstream is not None:
        exercise.downstream(answer)


@pytest.mark.parametrize("exercise, label", params(MISTAKES, fast=2))
def test_mistake_fails_with_a_hint_that_names_it(exercise, label):
    mistake = exercise.mistakes[label]
    status, detail = checks.outcome(exercise.check, mistake.answer)
    assert status == checks.NOT_YET, f"{label}: {status}: {detail}"
    assert re.search(mistake.hint, detail, flags=re.I), (
        f"{label}: the hint does not name the slip ({mistake.hint!r}): {detail}"
    )
    for fragment in exercise.give_away:
        assert fragment not in detail, f"{label}: the hint gives the answer away: {detail}"
    for claimed, got in CLAIM.findall(detail):
        assert float(claimed) != float(got), f"{label}: the hint contradicts itself: {detail}"


def test_a_check_reports_once_and_prints_nothing_under_outcome(capsys):
    for exercise in EXERCISES:
        checks.outcome(exercise.check, next(iter(exercise.correct.values())))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("written", ["b", " B ", "(b)", "b)", "b. Almost nothing", "b: the same"])
def test_a_math_task_answer_may_be_written_around_its_letter(written):
    assert (
        checks.outcome(lambda a: checks.choice("quiz", a, "b", "hint"), written)[0] == checks.PASSED
    )
    assert (
        checks.outcome(lambda a: checks.choice("quiz", a, "b", "hint"), "(c)")[0] == checks.NOT_YET
    )
