"""Tests for vae_prac.evaluate: the test ELBO and importance-weighted bounds on log p(x).

The models are small and trained for a few hundred steps, so that q_phi(z|x) and
p_theta(x|z) are informative and the gaps between the bounds are nats, not noise.
Comparisons between two noisy estimates are paired over images: the mean of the
per-image differences must be (or not be) zero within 5 standard errors.
"""

import numpy as np
import pytest
import tensorflow as tf

from vae_prac import VAE, Config, train
from vae_prac.bounds import elbo, iw_bound, log_importance_weights
from vae_prac.data import load_mnist
from vae_prac.evaluate import active_units, evaluate_elbo, log_px

Z = 5.0  # tolerance in standard errors


def _trained(digits, latent_dim, n_iterations=300):
    images, _ = load_mnist("train")
    config = Config(
        latent_dim=latent_dim,
        hidden_size=32,
        n_iterations=n_iterations,
        print_every=n_iterations,
        log_every=n_iterations,
        n_eval=100,
    )
    return train(
        config, progress=False, verbose=False, train_images=images[:10000], eval_x=digits[:100]
    ).model


@pytest.fixture(scope="module")
def vae(digits):
    """A VAE with a 4-D latent after 300 training steps."""
    return _trained(digits, latent_dim=4)


def paired_mean_and_se(a, b):
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return d.mean(), d.std(ddof=1) / np.sqrt(len(d))


def test_elbo_below_iw5_below_iw50_on_average(vae, digits):
    x = digits[:200]
    # Two independent estimates of each, averaged: E[ELBO] <= E[L_5] <= E[L_50].
    lower = np.mean([elbo(vae, x, seed=(0, s)).elbo for s in range(2)], axis=0)
    iw5 = np.mean([iw_bound(vae, x, 5, seed=(1, s)) for s in range(2)], axis=0)
    iw50 = np.mean([iw_bound(vae, x, 50, seed=(2, s)) for s in range(2)], axis=0)
    assert iw5.shape == (200,)
    for tighter, looser in [(iw5, lower), (iw50, iw5)]:
        mean, se = paired_mean_and_se(tighter, looser)
        assert mean > Z * se, (mean, se)


def test_iw1_is_the_elbo_in_expectation(vae, digits):
    # L_1 = log p(x|z) + log p(z) - log q(z|x) with one z: an unbiased ELBO estimate.
    x = digits[:300]
    mean, se = paired_mean_and_se(iw_bound(vae, x, 1, seed=(3, 0)), elbo(vae, x, seed=(3, 1)).elbo)
    assert abs(mean) < Z * se, (mean, se)
    mean, se = paired_mean_and_se(log_px(vae, x, k=1, seed=4), elbo(vae, x, seed=(4, 1)).elbo)
    assert abs(mean) < Z * se, (mean, se)


def test_log_importance_weights_by_hand(vae, digits):
    x = digits[:5]
    log_w = log_importance_weights(vae, x, 7, seed=(5, 5))
    assert log_w.shape == (7, 5)
    q = vae.posterior(x)
    z = q.sample(7, seed=(5, 5))
    by_hand = vae.likelihood(z).log_prob(x) + vae.prior().log_prob(z) - q.log_prob(z)
    np.testing.assert_allclose(log_w, by_hand, rtol=1e-5)
    # L_k is the log of the mean weight.
    log_mean_w = tf.reduce_logsumexp(log_w, axis=0) - np.log(7.0)
    assert np.all(np.isfinite(log_mean_w.numpy()))


def test_chunking_reproducible_and_unbiased(vae, digits):
    x = digits[:200]
    k = 60
    # With a seed, a given chunking is exactly reproducible...
    a = iw_bound(vae, x, k, seed=(6, 1), chunk_size=7).numpy()
    np.testing.assert_array_equal(a, iw_bound(vae, x, k, seed=(6, 1), chunk_size=7))
    # ... and the default chunk for a small batch is all k samples at once, drawn from
    # the seed itself as q.sample(k, seed=seed) draws them (training's L_k).
    np.testing.assert_array_equal(
        iw_bound(vae, x, k, seed=(6, 2)), iw_bound(vae, x, k, seed=(6, 2), chunk_size=k)
    )
    np.testing.assert_allclose(
        iw_bound(vae, x, k, seed=(6, 2)),
        tf.reduce_logsumexp(log_importance_weights(vae, x, k, seed=(6, 2)), 0) - np.log(k),
        rtol=1e-6,
    )
    # Another chunking draws other noise, but estimates the same quantity.
    b = iw_bound(vae, x, k, seed=(6, 3), chunk_size=k).numpy()
    assert not np.array_equal(a, b)
    mean, se = paired_mean_and_se(a, b)
    assert abs(mean) < Z * se, (mean, se)
    # Chunks of one sample, and a chunk larger than k, work too.
    assert np.all(np.isfinite(iw_bound(vae, x[:3], 3, seed=(6, 4), chunk_size=1).numpy()))
    np.testing.assert_array_equal(
        iw_bound(vae, x[:3], 3, seed=(6, 5), chunk_size=100),
        iw_bound(vae, x[:3], 3, seed=(6, 5), chunk_size=3),
    )


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(k=0), "k"),
        (dict(k=-5), "k"),
        (dict(k=2.5), "k"),
        (dict(k=5, chunk_size=0), "chunk_size"),
        (dict(k=5, chunk_size=-2), "chunk_size"),
    ],
)
def test_iw_bound_rejects_bad_sample_counts(vae, digits, kwargs, field):
    with pytest.raises(ValueError, match=field):
        iw_bound(vae, digits[:2], **kwargs)


def test_without_a_seed_iw_bound_draws_fresh_noise(vae, digits):
    x = digits[:4]
    assert not np.array_equal(iw_bound(vae, x, 5), iw_bound(vae, x, 5))


def test_log_px_batches_seeds_and_progress(vae, digits):
    x = digits[:150]
    a = log_px(vae, x, k=20, batch_size=64, seed=7)
    assert isinstance(a, np.ndarray) and a.shape == (150,)
    np.testing.assert_array_equal(a, log_px(vae, x, k=20, batch_size=64, seed=7))
    np.testing.assert_array_equal(a, log_px(vae, x, k=20, batch_size=64, seed=7, progress=True))
    # Each batch b uses the seed (seed, b): same as calling iw_bound on that batch.
    np.testing.assert_array_equal(a[64:128], iw_bound(vae, x[64:128], 20, seed=(7, 1)))
    other = log_px(vae, x, k=20, batch_size=150, seed=8)
    mean, se = paired_mean_and_se(a, other)
    assert abs(mean) < Z * se, (mean, se)
    assert log_px(vae, x[:0], k=5).shape == (0,)


def test_evaluate_elbo_is_the_mean_elbo_and_reproducible(vae, digits):
    x = digits[:300]
    value = evaluate_elbo(vae, x, batch_size=128, seed=3)
    assert isinstance(value, float)
    assert value == evaluate_elbo(vae, x, batch_size=128, seed=3)
    assert value != evaluate_elbo(vae, x, batch_size=128, seed=4)
    # Batch b uses the stateless seed [seed, b].
    by_hand = np.concatenate(
        [
            elbo(vae, x[i : i + 128], seed=(3, b)).elbo.numpy()
            for b, i in enumerate(range(0, 300, 128))
        ]
    )
    np.testing.assert_allclose(value, by_hand.mean(), rtol=1e-5)
    # Several samples per image lower the noise, not the expectation.
    many = evaluate_elbo(vae, x, batch_size=300, n_samples=20, seed=5)
    per_image_se = by_hand.std(ddof=1) / np.sqrt(len(x))  # generous: includes images
    assert abs(many - value) < Z * per_image_se


# --- log p(x) against numerical integration in one dimension ---------------


def _log_integral(log_f, dz):
    """log of the trapezoid rule for integral exp(log_f) dz along axis -1, stably."""
    log_w = np.full(log_f.shape[-1], np.log(dz))
    log_w[[0, -1]] -= np.log(2.0)
    a = log_f + log_w
    top = a.max(-1, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(-1, keepdims=True)))[..., 0]


@pytest.mark.slow
def test_log_px_matches_numerical_integration_with_a_1d_latent(digits):
    """With z in 1-D, log p(x) = log integral p(x|z) p(z) dz is a quadrature.

    Importance sampling with proposal q has relative variance chi^2(p(z|x) || q) per
    weight, so L_k has standard error sqrt(chi^2 / k) and bias about chi^2 / (2k). We
    compute chi^2 on the same grid and allow 5 standard errors, plus 2e-3 nats for
    float32 round-off in the sums of 784 pixels. The q that a short training run leaves
    in 1-D is narrower than the tails of p(z|x), where chi^2 is infinite and no k is
    enough; so sigma is widened, making q a valid proposal with finite chi^2.
    """
    vae = _trained(digits, latent_dim=1)
    params = vae.encoder.get_layer("gaussian_params")
    kernel, bias = params.get_weights()
    params.set_weights([kernel, bias + np.array([0.0, 2.0], np.float32)])  # wider q

    x = digits[100:140]
    k = 10_000
    estimate = log_px(vae, x, k=k, batch_size=len(x), seed=0)

    # log p(x|z) on a grid, with the Bernoulli log-probability written out: x*l - softplus(l).
    z = np.linspace(-10.0, 10.0, 5001)
    dz = z[1] - z[0]
    logits = vae.decoder(z[:, None].astype(np.float32)).numpy().reshape(len(z), 784)
    logits = logits.astype(np.float64)
    flat_x = x.reshape(len(x), 784).astype(np.float64)
    log_lik = flat_x @ logits.T - np.logaddexp(0.0, logits).sum(1)  # [n, grid]
    log_joint = log_lik - 0.5 * z**2 - 0.5 * np.log(2 * np.pi)
    # The integrand at +-10 is negligible (so truncating the range costs nothing).
    assert np.all(log_joint[:, [0, -1]].max(1) < log_joint.max(1) - 25)
    exact = _log_integral(log_joint, dz)

    mu, sigma = (t.numpy().astype(np.float64) for t in vae.encoder(x))  # [n, 1]
    log_q = -0.5 * ((z - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    log_post = log_joint - exact[:, None]
    chi2 = np.exp(_log_integral(2 * log_post - log_q, dz)) - 1.0
    se = np.sqrt(chi2 / k)
    assert np.median(se) < 0.02  # the proposal is good: the check is tight
    error = estimate - exact
    assert np.all(np.abs(error) < Z * se + chi2 / (2 * k) + 2e-3), (error, se)
    assert np.median(np.abs(error)) < 0.05
    # The ELBO, with the network's own (narrower) q, is below the exact log p(x).
    params.set_weights([kernel, bias])
    lower = elbo(vae, x, n_samples=500, seed=(1, 1)).elbo.numpy()
    mean, se_gap = paired_mean_and_se(exact, lower)
    assert mean > Z * se_gap


def test_evaluation_rejects_grey_levels_and_wrong_shapes():
    model = VAE(latent_dim=2, hidden_size=8)
    grey = np.full([3, 28, 28, 1], 0.5, np.float32)
    with pytest.raises(ValueError, match="binarize"):
        evaluate_elbo(model, grey)
    with pytest.raises(ValueError, match="shape"):
        log_px(model, np.zeros([3, 27, 27], np.float32), k=2)


# --- bad arguments: a ValueError naming the argument and its range ---------------------


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda m, x: evaluate_elbo(m, x, batch_size=-1), "batch_size must be a positive integer"),
        (lambda m, x: evaluate_elbo(m, x, batch_size=0), "batch_size must be a positive integer"),
        (lambda m, x: evaluate_elbo(m, x, batch_size=2.5), "batch_size must be a positive integer"),
        (lambda m, x: evaluate_elbo(m, x, n_samples=0), "n_samples must be a positive integer"),
        (
            lambda m, x: evaluate_elbo(m, x, seed=2**40),
            r"seed must be an integer in \[0, 2\*\*31\)",
        ),
        (lambda m, x: evaluate_elbo(m, x, seed=-1), r"seed must be an integer in \[0, 2\*\*31\)"),
        (lambda m, x: log_px(m, x, k=2, batch_size=-1), "batch_size must be a positive integer"),
        (lambda m, x: log_px(m, x, k=2, batch_size=0), "batch_size must be a positive integer"),
        (lambda m, x: log_px(m, x, k=0), "k must be a positive integer"),
        (lambda m, x: log_px(m, x, k=2, seed=2**32), r"seed must be an integer in \[0, 2\*\*31\)"),
        (lambda m, x: iw_bound(m, x, k=True), "k must be a positive integer"),
        (lambda m, x: iw_bound(m, x, k=2, seed=2**40), r"seed must be"),
        (lambda m, x: iw_bound(m, x, k=2, seed=(1, -1)), r"seed must be"),
        (lambda m, x: active_units(m, x, batch_size=0), "batch_size must be a positive integer"),
    ],
)
def test_bad_arguments_raise_a_value_error_naming_them(call, argument, digits):
    model = VAE(latent_dim=2, hidden_size=8)
    with pytest.raises(ValueError, match=argument):
        call(model, digits[:4])


def test_numpy_integers_are_accepted_and_large_seeds_are_not_wrapped(digits):
    model = VAE(latent_dim=2, hidden_size=8)
    x = digits[:6]
    a = evaluate_elbo(model, x, batch_size=np.int64(4), n_samples=np.int32(2), seed=np.int64(3))
    assert a == evaluate_elbo(model, x, batch_size=4, n_samples=2, seed=3)
    np.testing.assert_array_equal(
        log_px(model, x, k=np.int64(3), batch_size=np.int32(4)), log_px(model, x, k=3, batch_size=4)
    )
    # 2**31 - 1 is the largest seed, and a seed of its own (not seed 0 wrapped round).
    assert evaluate_elbo(model, x, seed=2**31 - 1) != evaluate_elbo(model, x, seed=0)
