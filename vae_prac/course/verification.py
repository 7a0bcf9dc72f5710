"""The grader's side of a graded notebook's kernel: each check run again, by the grader.

After a submission's cells have run, ``vae_prac.course.grading`` asks the kernel to
evaluate ``run(...)`` once per expected check, as a *user expression* of an otherwise
empty execute request. The answer comes back in the kernel's reply to that request, not
in any cell's output, so nothing the notebook printed counts. ``run`` executes the
solution notebook's own check cell against the student's objects, with fresh copies
of the check modules, so nothing the notebook wrote into ``checks.RESULTS`` or
replaced in those modules counts either. The nonce, made by the grader for this one
request, ties the answer to the question.
"""

from __future__ import annotations

import importlib
import json
import sys


def _fresh_check_modules(module: str):
    """New copies of ``vae_prac.checks`` and ``vae_prac.checks.<module>``."""
    for name in [
        m for m in sys.modules if m == "vae_prac.checks" or m.startswith("vae_prac.checks.")
    ]:
        del sys.modules[name]
    return (
        importlib.import_module("vae_prac.checks"),
        importlib.import_module(f"vae_prac.checks.{module}"),
    )


def run(name: str, module: str, source: str, nonce: str) -> str:
    """Run the check cell ``source`` (the solution's) in the notebook's namespace; JSON out.

    ``check`` and ``checks`` in that cell mean the fresh modules, whatever the notebook
    bound to those names. Returns ``{"nonce", "status", "detail"}`` for check ``name``.
    """
    from IPython import get_ipython

    checks, check = _fresh_check_modules(module)
    namespace = dict(get_ipython().user_ns)
    namespace.update(check=check, checks=checks)
    with checks._capturing() as seen:
        try:
            exec(compile(source, f"<check {name}>", "exec"), namespace)
        except Exception as err:  # e.g. the student's function was never defined
            seen.append(
                (
                    name,
                    checks.NOT_YET,
                    f"the grader could not run this check: {type(err).__name__}: {err}",
                )
            )
    mine = [(status, detail) for reported, status, detail in seen if reported == name]
    status, detail = mine[-1] if mine else ("missing", "the check cell reported nothing")
    return json.dumps({"nonce": nonce, "status": status, "detail": detail})
