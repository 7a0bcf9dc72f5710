"""Short runs: one setting that makes every training run a few seconds long.

Set the environment variable ``VAE_PRAC_SHORT_RUNS`` (to anything but ``0``) and every
call of ``vae_prac.train`` (so every notebook and ``vae-prac train``) trains a shortened
copy of its ``Config``:

* ``n_iterations``, ``print_every`` and ``log_every`` are divided by the same factor,
  ``log_every`` itself, so that one iteration stands for each ``log_every`` of the real
  run. The history has the same rows, the test ELBO is measured as many times, hooks
  run as often, and a run resumed from a shortened run's checkpoint continues it:
  whatever a notebook does with the history (plots it, reads its sixth test ELBO) still
  works. Only the iteration numbers (and so ``result.iteration``) are the real run's
  divided by the factor.
* ``n_eval``, the size of the fixed evaluation set, is capped at ``N_EVAL_CAP`` digits.

Nothing else changes (sizes, objective, optimizer, seeds), and nothing is printed.

**The results are then meaningless**: a model trained for 100 iterations instead of
10,000 has not learned much, and its ELBO, samples and active units say nothing about
the real run. The setting exists so that a notebook can be run to the end quickly where
only that matters: the tests run the student notebooks (blank and half done) with it,
and the grader runs submissions with it, since what they judge is the student's code,
not a trained model. Students and instructors should leave it unset; nbval runs the
solution notebooks without it, and compares their real outputs.

Shortening is idempotent (a shortened config is its own shortening), so a config read
back from a shortened run's folder resumes as the same run. Do not resume a real run
with the setting on, or a shortened one with it off: the iteration counts differ.
"""

from __future__ import annotations

import os

from vae_prac.config import Config

#: The environment variable: set to a non-empty value other than "0" to shorten runs.
ENV_VAR = "VAE_PRAC_SHORT_RUNS"

#: The most test digits a shortened run evaluates on (the real default is 5000).
N_EVAL_CAP = 200


def active() -> bool:
    """True when ``VAE_PRAC_SHORT_RUNS`` is set to a non-empty value other than ``"0"``."""
    return os.environ.get(ENV_VAR, "") not in ("", "0")


def shorten(config: Config) -> Config:
    """``config`` itself when short runs are off; else its shortened copy (see above).

    The factor is ``config.log_every``: with the defaults (10,000 iterations, a test ELBO
    every 1000, a history row every 100), the shortened run trains 100 iterations, with a
    test ELBO every 10 and a row every iteration, on at most ``N_EVAL_CAP`` test digits.
    Iteration counts are rounded up, so a run whose last row is a partial period keeps
    that row too.
    """
    if not active():
        return config
    factor = config.log_every
    # print_every is a multiple of log_every (Config checks it), so both divide exactly;
    # ceil(ceil(n / f) / (p / f)) = ceil(n / p): the same rows and evaluations.
    return config.replace(
        n_iterations=-(-config.n_iterations // factor),
        print_every=config.print_every // factor,
        log_every=1,
        n_eval=min(config.n_eval, N_EVAL_CAP),
    )
