"""The short-runs setting: a Config in, a shorter Config out, with the same history rows.

Pure Python (no TensorFlow, no training): what a shortened run records follows from its
Config alone, by the rules of ``vae_prac.training``'s loop, which ``rows`` restates.
"""

import math

import pytest

from vae_prac import short_runs
from vae_prac.config import Config


def rows(config):
    """(iteration, evaluated?) of each history row a run of ``config`` records, from 0.

    The training loop runs up to the next multiple of log_every (or to n_iterations),
    records a row, and evaluates when the row is a multiple of print_every or the last.
    """
    out, it = [], 0
    while it < config.n_iterations:
        it = min(it + config.log_every - it % config.log_every, config.n_iterations)
        out.append((it, it % config.print_every == 0 or it == config.n_iterations))
    return out


@pytest.fixture
def on(monkeypatch):
    monkeypatch.setenv(short_runs.ENV_VAR, "1")


@pytest.mark.parametrize(
    "value, expected",
    [(None, False), ("", False), ("0", False), ("1", True), ("yes", True), ("true", True)],
)
def test_active_reads_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(short_runs.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(short_runs.ENV_VAR, value)
    assert short_runs.active() is expected


def test_off_the_config_itself(monkeypatch):
    monkeypatch.delenv(short_runs.ENV_VAR, raising=False)
    config = Config(n_iterations=123, print_every=20, log_every=5, n_eval=5000)
    assert short_runs.shorten(config) is config


def test_the_defaults_become_a_hundred_iterations(on):
    short = short_runs.shorten(Config())
    assert (short.n_iterations, short.print_every, short.log_every) == (100, 10, 1)
    assert short.n_eval == short_runs.N_EVAL_CAP


CONFIGS = [
    Config(),  # 05
    Config(n_iterations=100),  # 06's warm-up
    Config(n_iterations=3000),
    Config(n_iterations=6000),  # 06's baseline, resumed
    Config(n_iterations=3000, print_every=600, n_eval=500),  # 07's beta runs
    Config(n_iterations=3000, print_every=100, n_eval=500),  # 07's timed runs
    Config(n_iterations=600, print_every=100, n_eval=500),
    Config(n_iterations=250, print_every=200, log_every=50),  # a partial last period
    Config(n_iterations=7, print_every=4, log_every=2),
    Config(n_iterations=10, print_every=3, log_every=1),  # nothing to divide
    Config(n_iterations=0),
]


@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: f"{c.n_iterations}-{c.print_every}-{c.log_every}"
)
def test_same_rows_and_evaluations(on, config):
    short = short_runs.shorten(config)
    assert short.print_every % short.log_every == 0  # a valid Config, as built
    assert short.n_iterations <= config.n_iterations
    assert short.log_every == 1
    real, shortened = rows(config), rows(short)
    assert [evaluated for _, evaluated in shortened] == [evaluated for _, evaluated in real]
    # Each row stands for log_every real iterations (the last one rounded up).
    assert [it for it, _ in shortened] == [math.ceil(it / config.log_every) for it, _ in real]


def test_only_the_lengths_and_n_eval_change(on):
    config = Config(
        latent_dim=8,
        hidden_size=32,
        n_samples=5,
        objective="iwae",
        seed=3,
        optimizer="adam",
        lr_schedule="burda",
        n_eval=1000,
        logdir="run",
    )
    short = short_runs.shorten(config)
    changed = {k for k, v in short.to_dict().items() if config.to_dict()[k] != v}
    assert changed == {"n_iterations", "print_every", "log_every", "n_eval"}
    assert short.n_eval == short_runs.N_EVAL_CAP
    assert short_runs.shorten(config.replace(n_eval=50)).n_eval == 50  # a cap, not a size


def test_idempotent_so_a_shortened_run_resumes_as_itself(on):
    for config in CONFIGS:
        once = short_runs.shorten(config)
        assert short_runs.shorten(once) == once


def test_a_resumed_run_continues_the_shortened_one(on):
    # 06 resumes its 3000-iteration baseline to 6000 in the same folder.
    first = short_runs.shorten(Config(n_iterations=3000))
    longer = short_runs.shorten(Config(n_iterations=6000))
    assert longer.n_iterations == 2 * first.n_iterations
    assert longer.print_every == first.print_every and longer.log_every == first.log_every
