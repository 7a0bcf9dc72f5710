"""A catalog of answers to every Code Task, for testing the checks as a cohort would.

Each module here (``nb01`` ... ``nb07``) defines ``EXERCISES``: a list of ``Exercise``,
one per Code Task of its notebook. An exercise holds

* ``correct``: answers written in other styles than the solution's (functional,
  Sequential or subclassed Keras; tf, keras.ops, NumPy or tfd where the task allows
  it). Each must pass the check, and then work the way the notebook's later cells use
  it (``downstream``).
* ``mistakes``: the slips a real cohort makes. Each must fail with "not yet" and a
  hint that matches ``Mistake.hint`` (a regular expression naming the slip), that
  contains none of the exercise's ``give_away`` fragments (the answer itself), and
  that does not contradict itself (see ``tests/test_catalog.py``).

``tests/test_catalog.py`` runs every entry; the counts are asserted there too (at
least 4 correct answers and 8 mistakes per exercise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Mistake:
    """A wrong answer and a regular expression (searched, case-insensitive) its hint must match."""

    answer: object
    hint: str


@dataclass
class Exercise:
    """One Code Task: its check, and the answers to try it on.

    ``check`` is called as ``check(answer)``; ``downstream(answer)`` runs a passing
    answer the way the notebook's later cells use it and raises if it does not work.
    """

    name: str
    check: Callable
    correct: dict[str, object]
    mistakes: dict[str, Mistake]
    give_away: tuple[str, ...] = ()
    downstream: Callable | None = None
    extra: dict = field(default_factory=dict)
