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

A check judges what the student's code *does*, never its source text: it calls the
function on inputs of its own where a slip cannot hide (several latent dimensions,
unequal values), eagerly and, where later cells compile it, inside ``tf.function``.

The printed line and ``RESULTS`` are for the student. ``vae-prac grade`` trusts
neither: it runs the checks again itself after the notebook has run, through
``outcome``, which prints nothing and records nothing (see ``vae_prac.course.grading``).
"""

from __future__ import annotations

import contextlib
import functools
import re
import traceback

#: Outcome of every check run in this process: name -> True (passed) / False.
RESULTS: dict[str, bool] = {}

PASSED, NOT_YET, NOT_DONE = "passed", "not yet", "not done yet"
LINE = re.compile(r"^\[check (?P<name>[\w.-]+)\] (?P<status>passed|not yet|not done yet)\b")


class Hint(Exception):
    """Raised inside a check to report a hint for the student."""


# While ``outcome`` runs a check, its (status, detail) lands here instead of being printed.
_captured: list | None = None


def report(name: str, status: str, detail: str = "") -> None:
    """Print the one line of a check and record its outcome in ``RESULTS``.

    Checks return None, so a check cell shows its one line and nothing else.
    """
    if _captured is not None:
        _captured.append((name, status, detail))
        return
    RESULTS[name] = status == PASSED
    print(f"[check {name}] {status}" + (f": {detail}" if detail else ""))


@contextlib.contextmanager
def _capturing():
    global _captured
    saved, _captured = _captured, []
    try:
        yield _captured
    finally:
        _captured = saved


def outcome(check_fn, *args, **kwargs) -> tuple[str, str]:
    """Run a check silently: ``(status, detail)``, nothing printed, ``RESULTS`` untouched.

    The grader and the tests use this; a check cell calls the check itself.
    """
    with _capturing() as seen:
        check_fn(*args, **kwargs)
    if len(seen) != 1:
        raise RuntimeError(f"a check reported {len(seen)} outcomes; it must report one.")
    _, status, detail = seen[0]
    return status, detail


@contextlib.contextmanager
def quiet_tensorflow():
    """Silence TensorFlow's Python warnings (AutoGraph, retracing) while a check traces
    a student's function: they are noise in a check cell's one line."""
    import logging

    from vae_prac import _import_tensorflow_quietly

    _import_tensorflow_quietly()  # this package alone does not import it
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def returned_array(value, what: str, kind: str = "a tensor of numbers", dtype="float64"):
    """What a student's function returned, as a NumPy array (``dtype``; None keeps its own),
    or a hint when it returned nothing (a forgotten ``return``) or no numbers at all."""
    import numpy as np

    if value is None:
        raise Hint(f"{what} returned None: did you forget the `return`?")
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise Hint(f"{what} returned a {type(value).__name__}, not {kind}.")


def apart(a: float, b: float, style: str = "g", start: int = 4) -> tuple[str, str]:
    """``a`` and ``b`` printed with just enough digits to tell them apart, so a hint never
    reads "it should be 0.5, yours gives 0.5". ``style`` is a format type ("g" or "f")."""
    for digits in range(start, start + 9, 2):
        sa, sb = f"{a:.{digits}{style}}", f"{b:.{digits}{style}}"
        if sa != sb:
            return sa, sb
    return repr(a), repr(b)


def _library_function(value) -> bool:
    """Whether ``value`` is one of vae_prac's own functions (handed in as an answer)."""
    module = getattr(value, "__module__", None) or ""
    return callable(value) and (module == "vae_prac" or module.startswith("vae_prac."))


def check(name: str):
    """Turn ``fn(*args) -> None`` that raises ``Hint`` on a problem into a check.

    The outcome is printed and recorded in ``RESULTS``. NotImplementedError means the
    exercise is not done yet; any other exception is reported as a hint naming its
    type and message, never as a crash.
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if any(_library_function(arg) for arg in args):
                return report(
                    name,
                    NOT_YET,
                    "that is vae_prac's own implementation; the task is to write your own.",
                )
            try:
                fn(*args, **kwargs)
            except NotImplementedError:
                return report(
                    name,
                    NOT_DONE,
                    "replace `raise NotImplementedError()` with your code, "
                    "run that cell, then run this one again.",
                )
            except Hint as hint:
                return report(name, NOT_YET, str(hint))
            except Exception as err:  # a student's code may fail in any way
                where = traceback.extract_tb(err.__traceback__)[-1]
                return report(
                    name,
                    NOT_YET,
                    f"your code raised {type(err).__name__}: {err} (line {where.lineno}).",
                )
            return report(name, PASSED)

        wrapper.check_name = name
        return wrapper

    return decorate


def letter(answer):
    """The letter of an answer written "b", "(b)", "b)" or "b. Almost nothing"; else as is."""
    found = (
        re.match(r"\s*\(?\s*([a-hA-H])\s*(?:[).:,]|\s|$)", answer)
        if isinstance(answer, str)
        else None
    )
    return found[1].lower() if found else answer


def choice(name: str, answer, correct: str, hint: str) -> None:
    """Check a multiple-choice answer (a letter such as ``"b"``, also written "(b)")."""
    if answer is None or answer is Ellipsis:
        return report(
            name, NOT_DONE, "set your answer to one of the letters, then run this cell again."
        )
    if str(letter(answer)).strip().lower() == correct:
        return report(name, PASSED)
    return report(name, NOT_YET, hint)


def reference_if_needed(name: str, mine, reference):
    """``mine`` if the check ``name`` passed, else the library's ``reference``, saying so."""
    if RESULTS.get(name):
        return mine
    label = getattr(reference, "__qualname__", repr(reference))
    print(f"Using vae_prac's reference `{label}`: the check `{name}` has not passed yet.")
    return reference


def whose(parts: dict[str, str]) -> str:
    """One line saying which parts are the student's and which are vae_prac's.

    ``parts`` maps a label ("encoder") to the name of the check that decides it; a part
    is the student's where that check passed in this session.
    """
    mine = [label for label, name in parts.items() if RESULTS.get(name)]
    library = [label for label in parts if label not in mine]
    said = ([f"yours: {', '.join(mine)}"] if mine else []) + (
        [f"vae_prac's: {', '.join(library)}"] if library else []
    )
    return "Training with " + "; ".join(said) + "."
