"""Checks for the notebooks' exercises: "run me to test your code".

Each check prints exactly one line, so a notebook's stored output is the same every
run and ``vae-prac grade`` can read it:

    [check NAME] passed
    [check NAME] not yet: HINT
    [check NAME] not done yet: ...

A hint says what is wrong, never the answer. Checks never raise: an exercise left
blank (``raise NotImplementedError()``) or one that crashes is reported, and the
notebook goes on. ``reference_if_needed`` then hands later cells the library's own
implementation, saying so, so a student who skips an exercise is never stuck.

The checks for each notebook live in a module named after its topic, e.g.
``from vae_prac.checks import reparameterization as check``.
"""

from __future__ import annotations

import functools
import re
import traceback

#: Outcome of every check run in this process: name -> True (passed) / False.
RESULTS: dict[str, bool] = {}

PASSED, NOT_YET, NOT_DONE = "passed", "not yet", "not done yet"
LINE = re.compile(r"^\[check (?P<name>[\w.-]+)\] (?P<status>passed|not yet|not done yet)\b")


class Hint(Exception):
    """Raised inside a check to report a hint for the student."""


def report(name: str, status: str, detail: str = "") -> None:
    """Print the one line of a check and record its outcome in ``RESULTS``.

    Checks return None, so a check cell shows its one line and nothing else.
    """
    RESULTS[name] = status == PASSED
    print(f"[check {name}] {status}" + (f": {detail}" if detail else ""))


def check(name: str):
    """Turn ``fn(*args) -> None`` that raises ``Hint`` on a problem into a check.

    The outcome is printed and recorded in ``RESULTS``. NotImplementedError means the
    exercise is not done yet; any other exception is reported as a hint naming its
    type and message, never as a crash.
    """
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                fn(*args, **kwargs)
            except NotImplementedError:
                return report(name, NOT_DONE,
                              "replace `raise NotImplementedError()` with your code, "
                              "run that cell, then run this one again.")
            except Hint as hint:
                return report(name, NOT_YET, str(hint))
            except Exception as err:   # a student's code may fail in any way
                where = traceback.extract_tb(err.__traceback__)[-1]
                return report(name, NOT_YET,
                              f"your code raised {type(err).__name__}: {err} "
                              f"(line {where.lineno}).")
            return report(name, PASSED)
        wrapper.check_name = name
        return wrapper
    return decorate


def choice(name: str, answer, correct: str, hint: str) -> None:
    """Check a multiple-choice answer (a letter such as ``"b"``)."""
    if answer is None or answer is Ellipsis:
        return report(name, NOT_DONE, "set your answer to one of the letters, "
                                      "then run this cell again.")
    if str(answer).strip().lower() == correct:
        return report(name, PASSED)
    return report(name, NOT_YET, hint)


def reference_if_needed(name: str, mine, reference):
    """``mine`` if the check ``name`` passed, else the library's ``reference``, saying so."""
    if RESULTS.get(name):
        return mine
    label = getattr(reference, "__qualname__", repr(reference))
    print(f"Using vae_prac's reference `{label}`: the check `{name}` has not passed yet.")
    return reference
