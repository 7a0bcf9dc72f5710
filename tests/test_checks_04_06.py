"""The exercise checks of notebooks 04-06 (reparameterization, training, evaluation).

For each Code Task: a correct implementation passes, typical mistakes get "not yet"
with a hint that names the problem, and an unfinished stub gets "not done yet". Each
check must print exactly one line.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import vae_prac
from vae_prac import checks
from vae_prac.checks import evaluation, reparameterization, training

tfd = tfp.distributions


def run(capsys, check_fn, *args):
    """Run a check; return (whether it passed, the one line it printed)."""
    assert check_fn(*args) is None  # a check cell shows its line and nothing else
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    match = checks.LINE.match(lines[0])
    assert match, lines[0]
    return checks.RESULTS[match["name"]], lines[0]


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---------------------------------------------------------------------------------------
# Notebook 04: the KL in closed form, the reparameterization trick.


def kl_right(mu, sigma):
    return tf.reduce_sum(0.5 * (mu**2 + sigma**2 - 1.0 - tf.math.log(sigma**2)), axis=-1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda mu, s: 0.5 * (mu**2 + s**2 - 1.0 - tf.math.log(s**2)), "per latent dimension"),
        (lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - 1.0 - tf.math.log(s**2))), "shape"),
        (lambda mu, s: tf.reduce_sum(mu**2 + s**2 - 1.0 - tf.math.log(s**2), -1), "twice"),
        (lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - 1.0 - tf.math.log(s)), -1), "log sigma"),
        (lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s - 1.0 - tf.math.log(s**2)), -1), "variance"),
        (lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - tf.math.log(s**2)), -1), "must be 0"),
        (lambda mu, s: None, "return"),
    ],
)
def test_kl_closed_form_catches_mistakes(capsys, wrong, hint):
    ok, line = run(capsys, reparameterization.kl_closed_form, wrong)
    assert not ok and "not yet" in line and hint in line


def test_kl_closed_form(capsys):
    assert run(capsys, reparameterization.kl_closed_form, kl_right) == (
        True,
        "[check kl_closed_form] passed",
    )
    ok, line = run(capsys, reparameterization.kl_closed_form, stub)
    assert not ok and line.startswith("[check kl_closed_form] not done yet")


def test_kl_formula(capsys):
    assert run(capsys, reparameterization.kl_formula, "c")[0]
    assert run(capsys, reparameterization.kl_formula, " C ")[0]
    assert "not yet" in run(capsys, reparameterization.kl_formula, "a")[1]
    assert "not done yet" in run(capsys, reparameterization.kl_formula, None)[1]


def reparameterize_right(mu, sigma, seed):
    return mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=seed)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda mu, s, seed: mu + s * tf.random.stateless_normal([3], seed), "shape"),
        (lambda mu, s, seed: mu + s * tf.random.normal(tf.shape(mu)), "same seed"),
        (
            lambda mu, s, seed: mu + s * tf.random.stateless_normal(tf.shape(mu), seed=[1, 2]),
            "same z",
        ),
        (
            lambda mu, s, seed: mu + s * tf.random.stateless_normal(tf.shape(mu)[-1:], seed),
            "same noise",
        ),
        (lambda mu, s, seed: mu + s * tf.random.stateless_uniform(tf.shape(mu), seed), "uniform"),
        (
            lambda mu, s, seed: mu + s**2 * tf.random.stateless_normal(tf.shape(mu), seed),
            "variance",
        ),
        (
            lambda mu, s, seed: mu + tf.sqrt(s) * tf.random.stateless_normal(tf.shape(mu), seed),
            "sqrt(sigma)",
        ),
        (
            lambda mu, s, seed: (
                mu
                + s * tf.random.stateless_uniform(tf.shape(mu), seed, -math.sqrt(3), math.sqrt(3))
            ),
            "68.3%",
        ),
        (
            lambda mu, s, seed: (
                mu
                + s
                * np.random.default_rng(np.asarray(seed))
                .standard_normal(mu.shape)
                .astype(np.float32)
            ),
            "NumPy",
        ),
        (
            lambda mu, s, seed: tf.stop_gradient(
                mu + s * tf.random.stateless_normal(tf.shape(mu), seed)
            ),
            "no gradient",
        ),
        (lambda mu, s: mu + s * tf.random.normal(tf.shape(mu)), "seed"),
        (lambda mu, s, seed: None, "return"),
    ],
)
def test_reparameterize_catches_mistakes(capsys, wrong, hint):
    ok, line = run(capsys, reparameterization.reparameterize, wrong)
    assert not ok and "not yet" in line and hint in line, line


def test_reparameterize(capsys):
    assert run(capsys, reparameterization.reparameterize, reparameterize_right) == (
        True,
        "[check reparameterize] passed",
    )
    # A TFP sample is reparameterized too, and behaves the same: it passes.
    assert run(
        capsys,
        reparameterization.reparameterize,
        lambda mu, s, seed: tfd.Normal(mu, s).sample(seed=seed),
    )[0]
    # The library's own function is not the student's answer.
    ok, line = run(capsys, reparameterization.reparameterize, vae_prac.reparameterize)
    assert not ok and "vae_prac's own" in line
    ok, line = run(capsys, reparameterization.reparameterize, stub)
    assert not ok and "not done yet" in line


def test_reference_if_needed_follows_the_check(capsys):
    run(capsys, reparameterization.reparameterize, stub)
    assert (
        checks.reference_if_needed("reparameterize", stub, vae_prac.reparameterize)
        is vae_prac.reparameterize
    )
    assert "reference" in capsys.readouterr().out
    run(capsys, reparameterization.reparameterize, reparameterize_right)
    assert (
        checks.reference_if_needed("reparameterize", reparameterize_right, vae_prac.reparameterize)
        is reparameterize_right
    )


# ---------------------------------------------------------------------------------------
# Notebook 05: the batch ELBO, RMSProp and the sum, decoding a chosen z.
# (Many more answers, right and wrong, are in tests/catalog/nb05.py.)


def batch_elbo_right(model, x, seed):
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    expected_log_likelihood = model.likelihood(z).log_prob(x)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(expected_log_likelihood - kl)


def batch_elbo_monte_carlo_kl(model, x, seed):
    q = model.posterior(x)
    z = q.sample(seed=seed)
    return tf.reduce_sum(
        model.likelihood(z).log_prob(x) - q.log_prob(z) + model.prior().log_prob(z)
    )


def _parts(model, x, seed):
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    ell = model.likelihood(z).log_prob(x)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return ell, kl


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda m, x, s: -batch_elbo_right(m, x, s), "wrong sign"),
        (lambda m, x, s: batch_elbo_right(m, x, s) / 8, "average over the 8 images"),
        (
            lambda m, x, s: tf.reduce_sum(_parts(m, x, s)[0] + _parts(m, x, s)[1]),
            "KL has the wrong sign",
        ),
        (lambda m, x, s: tf.reduce_sum(_parts(m, x, s)[0]), "KL term is missing"),
        (lambda m, x, s: _parts(m, x, s)[0] - _parts(m, x, s)[1], "one ELBO per image"),
        (lambda m, x, s: batch_elbo_right(m, x, None), "same seed gave different values"),
        (lambda m, x, s: batch_elbo_right(m, x, tf.constant([1, 2])), "different seeds"),
        (lambda m, x, s: tf.constant(batch_elbo_right(m, x, s).numpy()), "no gradient"),
        (lambda m, x, s: None, "return"),
    ],
)
def test_batch_elbo_catches_mistakes(capsys, wrong, hint):
    # Cell 9 calls it with the keyword seed=, as the task's signature names it.
    ok, line = run(capsys, training.batch_elbo, lambda model, x, seed: wrong(model, x, seed))
    assert not ok and "not yet" in line and hint in line, line


@pytest.mark.slow
def test_batch_elbo(capsys):
    assert run(capsys, training.batch_elbo, batch_elbo_right) == (True, "[check batch_elbo] passed")
    # The task allows a Monte Carlo KL at the same z (notebook 04).
    assert run(capsys, training.batch_elbo, batch_elbo_monte_carlo_kl)[0]
    assert run(
        capsys, training.batch_elbo, lambda model, x, seed: vae_prac.batch_elbo(model, x, seed=seed)
    )[0]
    assert (
        "keyword seed="
        in run(capsys, training.batch_elbo, lambda m, x, s: batch_elbo_right(m, x, s))[1]
    )
    assert "own implementation" in run(capsys, training.batch_elbo, vae_prac.batch_elbo)[1]
    assert "not done yet" in run(capsys, training.batch_elbo, stub)[1]


def test_rmsprop_scale(capsys):
    assert run(capsys, training.rmsprop_scale, "b")[0]
    assert "not yet" in run(capsys, training.rmsprop_scale, "a")[1]
    assert "not done yet" in run(capsys, training.rmsprop_scale, None)[1]


def midpoint_right(model, x_a, x_b):
    mu, _ = model.encoder(tf.stack([x_a, x_b]))
    return model.decode(tf.reduce_mean(mu, axis=0, keepdims=True))[0]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda m, a, b: midpoint_right(m, a, b)[None], "batch of one"),
        (
            lambda m, a, b: m.decoder(
                tf.reduce_mean(m.encoder(tf.stack([a, b]))[0], 0, keepdims=True)
            )[0],
            "logits",
        ),
        (
            lambda m, a, b: m.decode(
                tf.reduce_mean(m.encoder(tf.stack([a, b]))[0], 0, keepdims=True), sample=True
            )[0],
            "binary",
        ),
        (
            lambda m, a, b: tf.reduce_mean(m.decode(m.encoder(tf.stack([a, b]))[0]), 0),
            "averaged the two decoded images",
        ),
        (
            lambda m, a, b: m.decode(
                tf.reduce_mean(m.posterior(tf.stack([a, b])).sample(), 0, keepdims=True)
            )[0],
            "posterior means",
        ),
        (lambda m, a, b: m.decode(m.encoder(a[None])[0])[0], "one image only"),
    ],
)
def test_decode_midpoint_catches_mistakes(capsys, wrong, hint):
    ok, line = run(capsys, training.decode_midpoint, wrong)
    assert not ok and "not yet" in line and hint in line, line


def test_decode_midpoint(capsys):
    assert run(capsys, training.decode_midpoint, midpoint_right) == (
        True,
        "[check decode_midpoint] passed",
    )
    assert run(
        capsys,
        training.decode_midpoint,
        lambda m, a, b: training.decode_midpoint_reference(m, a, b),
    )[0]
    assert "not done yet" in run(capsys, training.decode_midpoint, stub)[1]


# ---------------------------------------------------------------------------------------
# Notebook 06: the importance-weighted bound.
# (Many more answers, right and wrong, are in tests/catalog/nb06.py.)


def _log_w(model, x, k, seed):
    q = model.posterior(x)
    z = q.sample(k, seed=seed)
    return model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)


def iw_right(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0) - math.log(k)


def iw_own_noise(model, x, k, seed):
    """Correct, with samples from the seed drawn another way than the library's."""
    mu, sigma = model.encoder(x)
    q = vae_prac.posterior(mu, sigma)
    eps = tf.random.stateless_normal(
        tf.concat([[k], tf.shape(mu)], 0), seed=tf.random.experimental.stateless_fold_in(seed, 3)
    )
    z = mu + sigma * eps
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def iw_unseeded(model, x, k, seed):
    """Right on average, but its samples ignore the seed: not reproducible."""
    mu, sigma = model.encoder(x)
    q = vae_prac.posterior(mu, sigma)
    z = mu + sigma * tf.random.normal(tf.concat([[k], tf.shape(mu)], 0))
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda m, x, k, s: tf.reduce_logsumexp(_log_w(m, x, k, s), axis=0), "log(k) too high"),
        (lambda m, x, k, s: tf.reduce_mean(_log_w(m, x, k, s), axis=0), "ELBO estimate"),
        (lambda m, x, k, s: tf.reduce_max(_log_w(m, x, k, s), axis=0), "largest"),
        (
            lambda m, x, k, s: tf.math.log(tf.reduce_mean(tf.exp(_log_w(m, x, k, s)), axis=0)),
            "underflow",
        ),
        (
            lambda m, x, k, s: tf.reduce_logsumexp(_log_w(m, x, k, s), axis=1) - math.log(k),
            "one value per sample",
        ),
        (lambda m, x, k, s: _log_w(m, x, k, s), "log weights themselves"),
        (lambda m, x, k, s: tf.reduce_mean(iw_right(m, x, k, s)), "single number"),
        (lambda m, x, k, s: iw_own_noise(m, x, k, s) - 1.0, "averaged over 40 seeds"),
        (iw_unseeded, "same seed gave different values"),
    ],
)
def test_iw_bound_catches_mistakes(capsys, wrong, hint):
    ok, line = run(capsys, evaluation.iw_bound, wrong)
    assert not ok and "not yet" in line and hint in line, line


def test_iw_bound(capsys):
    assert run(capsys, evaluation.iw_bound, iw_right) == (True, "[check iw_bound] passed")
    assert run(capsys, evaluation.iw_bound, iw_own_noise)[0]
    assert "not done yet" in run(capsys, evaluation.iw_bound, stub)[1]


def test_iw_order(capsys):
    assert run(capsys, evaluation.iw_order, "d")[0]
    assert "not yet" in run(capsys, evaluation.iw_order, "a")[1]
    assert "not done yet" in run(capsys, evaluation.iw_order, None)[1]


def test_whose_says_which_parts_are_the_students(monkeypatch):
    monkeypatch.setattr(checks, "RESULTS", {"a": True, "b": False})
    assert (
        checks.whose({"encoder": "a", "decoder": "b", "step": "c"})
        == "Training with yours: encoder; vae_prac's: decoder, step."
    )
    monkeypatch.setattr(checks, "RESULTS", {"a": True})
    assert checks.whose({"encoder": "a"}) == "Training with yours: encoder."


def test_iw_subsets(capsys):
    assert run(capsys, evaluation.iw_subsets, "b")[0]
    assert run(capsys, evaluation.iw_subsets, "(b)")[0]
    for wrong in ("a", "c", "d"):
        ok, line = run(capsys, evaluation.iw_subsets, wrong)
        assert not ok and "not yet" in line and "(b)" not in line
    assert "not done yet" in run(capsys, evaluation.iw_subsets, None)[1]
