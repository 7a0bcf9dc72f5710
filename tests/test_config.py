"""Tests for vae_prac.Config: the original's defaults, and bad values failing early."""

import dataclasses
import pathlib

import pytest

from vae_prac import Config


def test_defaults_are_the_original_practicals():
    c = Config()
    assert (c.latent_dim, c.hidden_size, c.batch_size, c.n_samples) == (100, 200, 64, 1)
    assert (c.n_iterations, c.print_every, c.log_every) == (10000, 1000, 100)
    assert c.learning_rate == 1e-3
    assert c.binarization == "threshold"  # the original thresholded at 0.5
    assert c.n_eval == 5000  # its 5000 fixed test digits


@pytest.mark.parametrize(
    "field, value",
    [
        # positive integers
        *[
            (name, bad)
            for name in ("latent_dim", "hidden_size", "batch_size", "n_samples", "n_eval")
            for bad in (0, -3, 2.0, "8", True, None)
        ],
        ("print_every", 0),
        ("print_every", 1.5),
        ("log_every", 0),
        ("log_every", -1),
        # integers >= 0
        ("n_iterations", -1),
        ("n_iterations", 10.0),
        ("n_iterations", False),
        ("seed", -1),
        ("seed", 2**31),
        ("seed", 1.0),
        ("seed", "0"),
        ("seed", True),
        ("seed", None),
        # a rate in (0, 1)
        ("learning_rate", 0),
        ("learning_rate", 0.0),
        ("learning_rate", -1e-3),
        ("learning_rate", 1),
        ("learning_rate", 5.0),
        ("learning_rate", float("nan")),
        ("learning_rate", "1e-3"),
        ("learning_rate", True),
        ("learning_rate", None),
        # choices and sizes
        ("binarization", "dynamic"),
        ("binarization", None),
        ("binarization", "THRESHOLD"),
        ("n_eval", 10001),
        # optional values with a type
        ("jit_compile", "yes"),
        ("jit_compile", 1),
        ("data_dir", 3),
        ("logdir", 3.5),
        ("logdir", ["runs"]),
    ],
)
def test_an_invalid_value_fails_at_construction_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"Config\.{field}\b"):
        Config(**{field: value})


def test_print_every_must_be_a_multiple_of_log_every():
    with pytest.raises(ValueError, match=r"print_every.*log_every"):
        Config(print_every=1000, log_every=300)
    with pytest.raises(ValueError, match=r"print_every.*log_every"):
        Config(print_every=100, log_every=200)
    assert Config(print_every=300, log_every=100).print_every == 300


@pytest.mark.parametrize(
    "changes",
    [
        dict(n_iterations=0),
        dict(learning_rate=0.5),
        dict(jit_compile=True),
        dict(jit_compile=False),
        dict(binarization="stochastic"),
        dict(n_eval=10000),
        dict(logdir="runs/a", data_dir=pathlib.Path("somewhere")),
        dict(seed=2**31 - 1),
    ],
)
def test_valid_edge_values_are_accepted(changes):
    c = Config(**changes)
    for name, value in changes.items():
        assert getattr(c, name) == value


def test_config_is_frozen_and_replace_validates_again():
    c = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.latent_dim = 2
    d = c.replace(latent_dim=2, hidden_size=16)
    assert (d.latent_dim, d.hidden_size, c.latent_dim) == (2, 16, 100)
    with pytest.raises(ValueError, match=r"Config\.latent_dim"):
        c.replace(latent_dim=0)


def test_to_dict_from_dict_round_trip():
    c = Config(latent_dim=2, hidden_size=16, logdir="runs/x", jit_compile=False)
    d = c.to_dict()
    assert d["latent_dim"] == 2 and d["logdir"] == "runs/x"
    assert set(d) == {f.name for f in dataclasses.fields(Config)}
    assert Config.from_dict(d) == c
    assert Config.from_dict({}) == Config()  # missing keys take the defaults


def test_from_dict_rejects_unknown_keys_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"latent_size") as err:
        Config.from_dict({"latent_size": 2, "batch_size": 32})
    assert "latent_dim" in str(err.value)  # the fix is in the message
    with pytest.raises(ValueError, match=r"Config\.batch_size"):
        Config.from_dict({"batch_size": 0})  # known keys are still validated


# --- the library's argument checks (one module, the same rules everywhere) ----------


def test_the_argument_checks_name_the_argument_and_the_allowed_range():
    import numpy as np

    from vae_prac.config import (
        check_nonnegative_int,
        check_positive_int,
        check_seed,
        check_stateless_seed,
    )

    for good in (1, np.int64(7), np.uint8(3)):
        value = check_positive_int(good, "batch_size")
        assert value == good and type(value) is int
    for bad in (0, -1, 2.0, 2.5, "3", True, None, np.float32(2)):
        with pytest.raises(ValueError, match=r"^batch_size must be a positive integer, got"):
            check_positive_int(bad, "batch_size")
    assert check_nonnegative_int(np.int16(0), "n") == 0
    with pytest.raises(ValueError, match=r"^n must be an integer >= 0, got -1"):
        check_nonnegative_int(-1, "n")

    assert check_seed(0) == 0 and check_seed(np.int64(2**31 - 1)) == 2**31 - 1
    for bad in (-1, 2**31, 2**40, 1.0, "0", True, None):
        with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*31\)"):
            check_seed(bad)

    for good in (None, 0, (3, 4), [np.int64(1), 2], np.array([5, 6])):
        assert check_stateless_seed(good) is good
    for bad in (-1, 2**40, (1,), (1, 2, 3), (-1, 0), (0, 2**31), 1.5, "ab", True):
        with pytest.raises(ValueError, match=r"^seed must be"):
            check_stateless_seed(bad)


def test_config_uses_the_same_checks_and_stores_numpy_integers_as_int():
    import numpy as np

    c = Config(latent_dim=np.int64(5), n_iterations=np.int32(0), seed=np.uint16(7))
    assert (c.latent_dim, c.n_iterations, c.seed) == (5, 0, 7)
    assert all(type(v) is int for v in (c.latent_dim, c.n_iterations, c.seed))
    with pytest.raises(ValueError, match=r"^Config\.seed must be an integer in \[0, 2\*\*31\)"):
        Config(seed=2**40)
