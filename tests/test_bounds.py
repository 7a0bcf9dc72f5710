"""Tests for vae_prac.bounds: the KL term, the expected log-likelihood and their sum (the
ELBO), and L_k from log weights. (L_k's chunks and log p(x): test_evaluate.py; L_k as a
training objective: test_iwae.py.)

Monte Carlo estimates are compared with exact values within 5 standard errors, each
computed from the spread of the very samples the estimate averages.
"""

import numpy as np
import pytest
import tensorflow as tf

from vae_prac.bounds import batch_elbo, elbo, kl_analytic, kl_monte_carlo
from vae_prac.evaluate import log_px
from vae_prac.model import posterior, prior, reparameterize

Z = 5.0  # tolerance in standard errors

rng = np.random.default_rng(0)
MU = rng.normal(0, 1.5, [6, 4]).astype(np.float32)
SIGMA = rng.uniform(0.2, 2.0, [6, 4]).astype(np.float32)


def test_kl_analytic_is_the_textbook_formula():
    kl = kl_analytic(posterior(MU, SIGMA), prior(4)).numpy()
    textbook = 0.5 * np.sum(MU**2 + SIGMA**2 - 1 - 2 * np.log(SIGMA), axis=-1)
    assert kl.shape == (6,)
    np.testing.assert_allclose(kl, textbook, rtol=1e-5)
    # Zero exactly when q is the prior, positive otherwise.
    same = kl_analytic(
        posterior(np.zeros([1, 4], np.float32), np.ones([1, 4], np.float32)), prior(4)
    )
    np.testing.assert_allclose(same, [0.0], atol=1e-6)
    assert np.all(kl > 0)


def test_kl_monte_carlo_matches_the_closed_form_within_monte_carlo_error():
    q, p = posterior(MU, SIGMA), prior(4)
    n = 50_000
    z = reparameterize(MU, SIGMA, n_samples=n, seed=(4, 2))  # [n, 6, 4]
    estimate = kl_monte_carlo(q, p, z).numpy()
    log_ratio = (q.log_prob(z) - p.log_prob(z)).numpy()  # [n, 6]
    np.testing.assert_allclose(estimate, log_ratio.mean(0), rtol=1e-4)
    se = log_ratio.std(0) / np.sqrt(n)
    exact = kl_analytic(q, p).numpy()
    assert np.all(np.abs(estimate - exact) < Z * se), (estimate, exact, se)
    # One sample per example (z of rank 2): the single log-ratio, shape [batch].
    one = kl_monte_carlo(q, p, z[0]).numpy()
    np.testing.assert_allclose(one, log_ratio[0], rtol=1e-5)


def test_elbo_is_expected_log_likelihood_minus_kl(small_vae, digits):
    vae = small_vae()
    x = digits[:16]
    terms = elbo(vae, x, seed=(1, 1))
    for t in terms:
        assert t.shape == (16,)
    np.testing.assert_allclose(terms.elbo, terms.expected_log_likelihood - terms.kl, rtol=1e-6)
    # The pieces, computed by hand from the model's distributions and the same noise.
    mu, sigma = vae.encoder(x)
    z = reparameterize(mu, sigma, seed=(1, 1))
    np.testing.assert_allclose(
        terms.expected_log_likelihood, vae.likelihood(z).log_prob(x), rtol=1e-6
    )
    np.testing.assert_allclose(terms.kl, kl_analytic(vae.posterior(x), vae.prior()), rtol=1e-6)
    # A log-probability of binary pixels is negative; a KL is not.
    assert np.all(terms.expected_log_likelihood.numpy() < 0)
    assert np.all(terms.kl.numpy() >= 0)


def test_several_samples_are_averaged_per_example(small_vae, digits):
    vae = small_vae()
    x = digits[:8]
    terms = elbo(vae, x, n_samples=7, seed=(2, 3))
    assert terms.elbo.shape == (8,) and terms.expected_log_likelihood.shape == (8,)
    mu, sigma = vae.encoder(x)
    z = reparameterize(mu, sigma, n_samples=7, seed=(2, 3))  # [7, 8, d]
    per_sample = vae.likelihood(z).log_prob(x).numpy()  # [7, 8]
    np.testing.assert_allclose(terms.expected_log_likelihood, per_sample.mean(0), rtol=1e-6)
    # The samples differ, so averaging is not just taking one of them.
    assert np.all(per_sample.std(0) > 0)


def test_monte_carlo_kl_is_unbiased_and_uses_the_same_samples(small_vae, digits):
    vae = small_vae()
    x = digits[:8]
    n = 2000
    analytic = elbo(vae, x, n_samples=n, kl="analytic", seed=(5, 5))
    mc = elbo(vae, x, n_samples=n, kl="monte_carlo", seed=(5, 5))
    # Same seed, same z: the expected log-likelihood is identical; only the KL differs.
    np.testing.assert_array_equal(analytic.expected_log_likelihood, mc.expected_log_likelihood)
    np.testing.assert_allclose(mc.elbo, mc.expected_log_likelihood - mc.kl, rtol=1e-6)
    q, p = vae.posterior(x), vae.prior()
    mu, sigma = vae.encoder(x)
    z = reparameterize(mu, sigma, n_samples=n, seed=(5, 5))
    se = (q.log_prob(z) - p.log_prob(z)).numpy().std(0) / np.sqrt(n)
    assert np.all(np.abs(mc.kl.numpy() - analytic.kl.numpy()) < Z * se)
    # With one sample the Monte Carlo KL is one noisy draw, not the closed form.
    one = elbo(vae, x, kl="monte_carlo", seed=(5, 6))
    assert not np.allclose(one.kl, analytic.kl, rtol=1e-3)


@pytest.mark.parametrize("name", ["closed_form", "mc", "Analytic", None])
def test_an_unknown_kl_estimator_is_refused(small_vae, digits, name):
    with pytest.raises(ValueError, match="analytic.*monte_carlo"):
        elbo(small_vae(), digits[:2], kl=name)


def test_batch_elbo_is_the_sum_over_the_batch(small_vae, digits):
    vae = small_vae()
    x = digits[:32]
    total = batch_elbo(vae, x, n_samples=3, seed=(9, 9))
    assert total.shape == ()
    np.testing.assert_allclose(total, tf.reduce_sum(elbo(vae, x, 3, seed=(9, 9)).elbo), rtol=1e-6)


def test_same_seed_same_elbo_and_fresh_noise_without_a_seed(small_vae, digits):
    vae = small_vae()
    x = digits[:8]
    a = elbo(vae, x, seed=(3, 4)).elbo.numpy()
    np.testing.assert_array_equal(a, elbo(vae, x, seed=(3, 4)).elbo)
    assert not np.array_equal(a, elbo(vae, x, seed=(3, 5)).elbo)
    assert not np.array_equal(elbo(vae, x).elbo, elbo(vae, x).elbo)


def test_the_elbo_is_below_the_log_likelihood(small_vae, digits):
    # log p(x) - ELBO = KL(q_phi(z|x) || p_theta(z|x)) >= 0. Both sides are estimated
    # with many samples; the gap must be positive well beyond its standard error.
    vae = small_vae(latent_dim=2, hidden_size=16)
    x = digits[:100]
    lower = elbo(vae, x, n_samples=200, seed=(0, 1)).elbo.numpy()
    log_p = log_px(vae, x, k=200, seed=1)
    gap = log_p - lower
    assert gap.mean() > Z * gap.std(ddof=1) / np.sqrt(len(gap)), gap


# --- notebook 07: L_k from log weights, the beta-weighted ELBO ----------------------


def test_log_mean_exp_is_l_k_and_never_forms_the_weights():
    from vae_prac.bounds import iw_bound, log_importance_weights, log_mean_exp
    from vae_prac.model import VAE

    log_w = tf.constant(rng.normal(-600.0, 3.0, [7, 5]), tf.float32)  # exp underflows
    a = log_w.numpy().astype(np.float64)
    expected = a.max(0) + np.log(np.exp(a - a.max(0)).mean(0))
    np.testing.assert_allclose(log_mean_exp(log_w), expected, rtol=1e-6)
    np.testing.assert_allclose(log_mean_exp(log_w[:1]), a[0], rtol=1e-6)  # k = 1

    model = VAE(latent_dim=3, hidden_size=8)
    x = tf.constant((rng.random([4, 28, 28, 1]) < 0.3).astype(np.float32))
    np.testing.assert_allclose(
        log_mean_exp(log_importance_weights(model, x, 10, seed=(1, 2))),
        iw_bound(model, x, 10, seed=(1, 2)),
        rtol=1e-6,
    )


def test_beta_elbo_is_the_batch_elbo_at_beta_1_and_linear_in_beta():
    from vae_prac.bounds import beta_elbo
    from vae_prac.model import VAE

    model = VAE(latent_dim=3, hidden_size=8)
    x = tf.constant((rng.random([4, 28, 28, 1]) < 0.3).astype(np.float32))
    terms = elbo(model, x, seed=(3, 4))
    at = {b: float(beta_elbo(model, x, (3, 4), b)) for b in (0.0, 1.0, 2.5)}
    np.testing.assert_allclose(at[1.0], float(batch_elbo(model, x, seed=(3, 4))), rtol=1e-6)
    np.testing.assert_allclose(
        at[0.0], float(tf.reduce_sum(terms.expected_log_likelihood)), rtol=1e-6
    )
    np.testing.assert_allclose(at[0.0] - at[2.5], 2.5 * float(tf.reduce_sum(terms.kl)), rtol=1e-4)
    # A tf.Variable beta is read at every call of a compiled function (the KL warm-up).
    beta = tf.Variable(0.0)
    compiled = tf.function(lambda: beta_elbo(model, x, (3, 4), beta))
    first = float(compiled())
    beta.assign(1.0)
    np.testing.assert_allclose([first, float(compiled())], [at[0.0], at[1.0]], rtol=1e-6)


def test_the_bounds_take_any_model_with_an_encoder_a_prior_and_a_likelihood():
    # A LatentVariableModel is what the bounds call, not a class: here a plain object.
    from vae_prac.bounds import iw_bound
    from vae_prac.model import VAE

    vae = VAE(latent_dim=3, hidden_size=8)

    class Plain:
        encoder = vae.encoder

        def prior(self):
            return vae.prior()

        def likelihood(self, z):
            return vae.likelihood(z)

    x = tf.constant((rng.random([4, 28, 28, 1]) < 0.3).astype(np.float32))
    np.testing.assert_array_equal(
        elbo(Plain(), x, seed=(1, 2)).elbo, elbo(vae, x, seed=(1, 2)).elbo
    )
    for chunk in (None, 2):
        np.testing.assert_allclose(
            iw_bound(Plain(), x, 5, seed=(1, 2), chunk_size=chunk),
            iw_bound(vae, x, 5, seed=(1, 2), chunk_size=chunk),
            rtol=1e-6,
        )


def test_iw_bound_in_a_graph_is_the_training_objective_and_has_gradients():
    # Training calls iw_bound inside its compiled step: all k samples in one chunk,
    # drawn from the step's seed tensor, differentiable in theta and phi.
    from vae_prac.bounds import iw_bound, log_importance_weights, log_mean_exp
    from vae_prac.model import VAE

    model = VAE(latent_dim=3, hidden_size=8)
    x = tf.constant((rng.random([6, 28, 28, 1]) < 0.3).astype(np.float32))

    @tf.function
    def both(seed):
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(iw_bound(model, x, 5, seed=seed))
        plain = tf.reduce_sum(log_mean_exp(log_importance_weights(model, x, 5, seed=seed)))
        return value, plain, tape.gradient(value, model.trainable_variables)

    value, plain, grads = both(tf.constant([3, 4], tf.int32))
    assert float(value) == float(plain)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
