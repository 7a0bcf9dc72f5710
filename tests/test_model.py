"""Tests for vae_prac.model: the two networks, the three distributions, the sampler.

Statistical checks use many samples and a tolerance of 5 standard errors computed from
the known variance of the estimator, so they fail only when the code is wrong (a
correct sampler lands outside 5 standard errors with probability below 1e-6).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac import Config
from vae_prac.model import (
    VAE,
    decode,
    generative_network,
    inference_network,
    likelihood,
    posterior,
    prior,
    reparameterize,
)

tfd = tfp.distributions
Z = 5.0  # tolerance in standard errors


def softplus(a):
    return np.logaddexp(0.0, a)


# --- the networks -----------------------------------------------------------


@pytest.mark.parametrize("latent_dim, hidden_size", [(2, 16), (8, 64)])
def test_encoder_shapes_layers_and_parameter_count(latent_dim, hidden_size):
    d, h = latent_dim, hidden_size
    encoder = inference_network(d, h)
    dense = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [h, h, 2 * d]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "linear"]
    assert encoder.count_params() == 784 * h + h + h * h + h + h * 2 * d + 2 * d
    mu, sigma = encoder(np.zeros([5, 28, 28, 1], np.float32))
    assert mu.shape == (5, d) and sigma.shape == (5, d)


@pytest.mark.parametrize("latent_dim, hidden_size", [(2, 16), (8, 64)])
def test_decoder_shapes_layers_and_parameter_count(latent_dim, hidden_size):
    d, h = latent_dim, hidden_size
    decoder = generative_network(d, h)
    dense = [layer for layer in decoder.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [h, h, 784]
    assert decoder.count_params() == d * h + h + h * h + h + h * 784 + 784
    assert decoder(np.zeros([5, d], np.float32)).shape == (5, 28, 28, 1)


def test_sigma_is_positive_even_for_huge_pre_activations(small_vae):
    vae = small_vae(latent_dim=3, hidden_size=16)
    out = vae.encoder.get_layer("gaussian_params")
    kernel, bias = out.get_weights()
    for pre_activation in (-1e4, -100.0, 1e4):
        out.set_weights(
            [
                np.zeros_like(kernel),
                np.r_[np.zeros(3), np.full(3, pre_activation)].astype(np.float32),
            ]
        )
        x = np.ones([2, 28, 28, 1], np.float32)
        mu, sigma = vae.encoder(x)
        assert np.all(sigma.numpy() > 0), pre_activation
        np.testing.assert_allclose(sigma, 1e-6 + softplus(pre_activation), rtol=1e-5)
        # log sigma, the posterior's log-density and the KL all stay finite.
        q = vae.posterior(x)
        assert np.all(np.isfinite(q.log_prob(mu).numpy()))
        assert np.all(np.isfinite(tfd.kl_divergence(q, vae.prior()).numpy()))


def test_sigma_is_positive_for_random_inputs(small_vae):
    vae = small_vae(latent_dim=4, hidden_size=32)
    x = np.random.default_rng(0).normal(0, 50, [64, 28, 28, 1]).astype(np.float32)
    _, sigma = vae.encoder(x)
    assert np.all(sigma.numpy() >= 1e-6)


def test_decode_handles_leading_axes(small_vae):
    vae = small_vae(latent_dim=3, hidden_size=16)
    z = np.random.default_rng(1).normal(size=[2, 4, 3]).astype(np.float32)
    logits = decode(vae.decoder, z)
    assert logits.shape == (2, 4, 28, 28, 1)
    flat = vae.decoder(z.reshape(8, 3)).numpy().reshape(2, 4, 28, 28, 1)
    np.testing.assert_allclose(logits, flat, rtol=1e-6, atol=1e-6)
    assert decode(vae.decoder, z[0, 0]).shape == (28, 28, 1)  # no leading axis


def test_vae_from_config_and_get_config():
    vae = VAE.from_config(Config(latent_dim=3, hidden_size=16))
    assert (vae.latent_dim, vae.hidden_size) == (3, 16)
    assert vae.encoder.count_params() == 784 * 16 + 16 + 16 * 16 + 16 + 16 * 6 + 6
    again = VAE.from_config(vae.get_config())  # Keras' config dict
    assert (again.latent_dim, again.hidden_size) == (3, 16)


# --- the distributions ------------------------------------------------------


def test_prior_is_a_standard_normal_over_one_event():
    p = prior(3)
    assert p.event_shape == (3,) and p.batch_shape == ()
    z = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]], np.float32)
    expected = np.sum(-0.5 * z**2 - 0.5 * np.log(2 * np.pi), axis=-1)
    np.testing.assert_allclose(p.log_prob(z), expected, rtol=1e-6)


def test_posterior_event_shape_and_log_prob_sums_over_latent_dims():
    mu = np.array([[0.0, 1.0], [-1.0, 2.0], [3.0, 0.5]], np.float32)
    sigma = np.array([[1.0, 0.5], [2.0, 0.1], [0.3, 1.5]], np.float32)
    q = posterior(mu, sigma)
    assert q.event_shape == (2,) and q.batch_shape == (3,)
    z = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], np.float32)
    per_dim = -0.5 * ((z - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(q.log_prob(z), per_dim.sum(-1), rtol=1e-5)
    # Several samples per example: the log-prob has shape [samples, batch].
    assert q.log_prob(np.zeros([7, 3, 2], np.float32)).shape == (7, 3)


def test_likelihood_log_prob_is_the_sum_of_bernoulli_log_probs_from_logits(digits):
    logits = np.random.default_rng(2).normal(0, 4, [4, 28, 28, 1]).astype(np.float32)
    p_x = likelihood(logits)
    assert p_x.event_shape == (28, 28, 1) and p_x.batch_shape == (4,)
    x = digits[:4]
    by_hand = np.sum(x * logits - softplus(logits), axis=(1, 2, 3))
    np.testing.assert_allclose(p_x.log_prob(x), by_hand, rtol=1e-5)
    # Extreme logits: the logits form stays finite where log(sigmoid(l)) would not.
    extreme = np.full([1, 28, 28, 1], -200.0, np.float32)
    ones = np.ones([1, 28, 28, 1], np.float32)
    np.testing.assert_allclose(likelihood(extreme).log_prob(ones), [-200.0 * 784], rtol=1e-5)


def test_vae_distribution_methods(small_vae, digits):
    vae = small_vae(latent_dim=3, hidden_size=16)
    x = digits[:5]
    q = vae.posterior(x)
    assert q.batch_shape == (5,) and q.event_shape == (3,)
    assert vae.prior().event_shape == (3,)
    z = q.sample(2, seed=(0, 1))  # [2, 5, 3]
    p_x = vae.likelihood(z)
    assert p_x.batch_shape == (2, 5) and p_x.event_shape == (28, 28, 1)
    assert p_x.log_prob(x).shape == (2, 5)
    # decode: pixel probabilities by default, binary samples when asked.
    probs = vae.decode(z[0]).numpy()
    np.testing.assert_allclose(probs, tf.sigmoid(decode(vae.decoder, z[0])), rtol=1e-5)
    sample = vae.decode(z[0], sample=True, seed=(3, 4)).numpy()
    assert set(np.unique(sample)) <= {0.0, 1.0}


def test_predictive_samples_are_binary_and_reproducible(small_vae, digits):
    vae = small_vae(latent_dim=3, hidden_size=16)
    a = vae.prior_predictive_sample(6, seed=(1, 2)).numpy()
    assert a.shape == (6, 28, 28, 1) and set(np.unique(a)) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, vae.prior_predictive_sample(6, seed=(1, 2)))
    assert not np.array_equal(a, vae.prior_predictive_sample(6, seed=(1, 3)))
    b = vae.posterior_predictive_sample(digits[:6], seed=(5, 6)).numpy()
    assert b.shape == (6, 28, 28, 1) and set(np.unique(b)) <= {0.0, 1.0}
    np.testing.assert_array_equal(b, vae.posterior_predictive_sample(digits[:6], seed=(5, 6)))


def test_an_integer_seed_is_reproducible_everywhere(small_vae, digits):
    # TFP alone would treat a lone integer as a stateful seed (new numbers every call).
    vae = small_vae(latent_dim=3, hidden_size=16)
    for draw in (
        lambda s: vae.prior_predictive_sample(4, seed=s),
        lambda s: vae.posterior_predictive_sample(digits[:4], seed=s),
        lambda s: vae.decode(np.zeros([4, 3], np.float32), sample=True, seed=s),
        lambda s: reparameterize(MU, SIGMA, n_samples=3, seed=s),
    ):
        np.testing.assert_array_equal(draw(3), draw(3))
        assert not np.array_equal(draw(3), draw(4))


# --- the reparameterization trick ------------------------------------------

MU = np.array([[0.5, -1.0, 2.0]], np.float32)
SIGMA = np.array([[0.3, 1.0, 2.5]], np.float32)


def test_reparameterize_shapes():
    assert reparameterize(MU, SIGMA).shape == (1, 3)
    assert reparameterize(MU, SIGMA, n_samples=4).shape == (4, 1, 3)
    assert reparameterize(
        np.zeros([5, 2], np.float32), np.ones([5, 2], np.float32), n_samples=3, seed=(0, 0)
    ).shape == (3, 5, 2)


@pytest.mark.parametrize("n_samples", [0, -1])
def test_reparameterize_rejects_a_non_positive_number_of_samples(n_samples):
    with pytest.raises(ValueError, match="n_samples"):
        reparameterize(MU, SIGMA, n_samples=n_samples)


def test_reparameterized_samples_have_mean_mu_and_variance_sigma_squared():
    n = 200_000
    z = reparameterize(MU, SIGMA, n_samples=n, seed=(7, 11)).numpy()[:, 0]  # [n, 3]
    mean_se = SIGMA[0] / np.sqrt(n)
    assert np.all(np.abs(z.mean(0) - MU[0]) < Z * mean_se)
    var_se = SIGMA[0] ** 2 * np.sqrt(2.0 / (n - 1))  # sd of the sample variance
    assert np.all(np.abs(z.var(0, ddof=1) - SIGMA[0] ** 2) < Z * var_se)


def test_gradients_flow_through_the_sample_to_mu_and_sigma():
    # f = E[z^2] per dimension: d/dmu = 2 mu and d/dsigma = 2 sigma.
    n = 200_000
    mu, sigma = tf.Variable(MU), tf.Variable(SIGMA)
    with tf.GradientTape() as tape:
        z = reparameterize(mu, sigma, n_samples=n, seed=(3, 5))
        f = tf.reduce_sum(tf.reduce_mean(z**2, axis=0))
    g_mu, g_sigma = (g.numpy()[0] for g in tape.gradient(f, [mu, sigma]))
    # Exactly the pathwise derivative of the noise actually drawn: z = mu + sigma * eps.
    eps = ((z - MU) / SIGMA).numpy()[:, 0]
    zz = z.numpy()[:, 0]
    np.testing.assert_allclose(g_mu, np.mean(2 * zz, 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_sigma, np.mean(2 * zz * eps, 0), rtol=1e-4, atol=1e-4)
    # And, within Monte Carlo error, the analytic gradient of the expectation.
    m, s = MU[0], SIGMA[0]
    se_mu = 2 * s / np.sqrt(n)  # sd(2 z) / sqrt(n)
    se_sigma = np.sqrt(4 * m**2 + 8 * s**2) / np.sqrt(n)  # sd(2 z eps) / sqrt(n)
    assert np.all(np.abs(g_mu - 2 * m) < Z * se_mu)
    assert np.all(np.abs(g_sigma - 2 * s) < Z * se_sigma)


def test_which_samplers_pass_gradients():
    mu, sigma = tf.Variable(MU), tf.Variable(SIGMA)
    # TFP's Normal is itself reparameterized: its samples carry gradients.
    assert tfd.Normal(mu, sigma).reparameterization_type == tfd.FULLY_REPARAMETERIZED
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(tfd.Normal(mu, sigma).sample(seed=(1, 1)))
    np.testing.assert_allclose(tape.gradient(total, mu), np.ones_like(MU))
    # Cutting the path from (mu, sigma) to z, as sampling outside the graph would, leaves
    # no gradient for the encoder: that is what the trick is for.
    with tf.GradientTape(persistent=True) as tape:
        z = reparameterize(mu, sigma, seed=(1, 1))
        with_path = tf.reduce_sum(z)
        cut = tf.reduce_sum(tf.stop_gradient(z))
    assert all(g is not None for g in tape.gradient(with_path, [mu, sigma]))
    assert tape.gradient(cut, [mu, sigma]) == [None, None]
    # A Bernoulli sample is discrete: no reparameterization, no gradient.
    logits = tf.Variable(np.zeros([3], np.float32))
    assert tfd.Bernoulli(logits=logits).reparameterization_type == tfd.NOT_REPARAMETERIZED
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(tf.cast(tfd.Bernoulli(logits=logits).sample(seed=(2, 2)), tf.float32))
    assert tape.gradient(total, logits) is None


def test_a_stateless_seed_fixes_the_noise():
    a = reparameterize(MU, SIGMA, n_samples=5, seed=(1, 2))
    np.testing.assert_array_equal(a, reparameterize(MU, SIGMA, n_samples=5, seed=(1, 2)))
    np.testing.assert_array_equal(
        a, reparameterize(MU, SIGMA, n_samples=5, seed=tf.constant([1, 2]))
    )
    assert not np.any(a.numpy() == reparameterize(MU, SIGMA, n_samples=5, seed=(1, 3)).numpy())
    assert not np.any(a.numpy() == reparameterize(MU, SIGMA, n_samples=5, seed=(2, 2)).numpy())


def test_without_a_seed_a_compiled_function_draws_fresh_noise_on_every_call():
    # The classic TF2 VAE bug: noise drawn once while tracing and frozen into the graph
    # turns the VAE into a plain auto-encoder.
    @tf.function
    def draw():
        return reparameterize(MU, SIGMA, n_samples=4)

    first, second = draw().numpy(), draw().numpy()
    assert draw.experimental_get_tracing_count() == 1  # one graph, called twice
    assert not np.any(first == second)
    assert not np.any(reparameterize(MU, SIGMA).numpy() == reparameterize(MU, SIGMA).numpy())

    @tf.function
    def draw_seeded(seed):
        return reparameterize(MU, SIGMA, n_samples=4, seed=seed)

    s1, s2 = tf.constant([0, 1]), tf.constant([0, 2])
    np.testing.assert_array_equal(draw_seeded(s1), draw_seeded(s1))
    assert not np.any(draw_seeded(s1).numpy() == draw_seeded(s2).numpy())
    assert draw_seeded.experimental_get_tracing_count() == 1


def test_deeper_networks_and_custom_networks():
    deep = VAE(latent_dim=3, hidden_size=16, hidden_layers=3)
    dense = [layer for layer in deep.encoder.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [16, 16, 16, 6]
    shallow = VAE.from_config(Config(latent_dim=3, hidden_size=16, hidden_layers=1))
    assert shallow.decoder.count_params() == 3 * 16 + 16 + 16 * 784 + 784
    encoder = inference_network(3, 8, hidden_layers=1)
    custom = VAE(latent_dim=3, encoder=encoder)
    assert custom.encoder is encoder
    assert {id(v) for v in encoder.trainable_variables} <= {
        id(v) for v in custom.trainable_variables
    }
    assert len(custom.trainable_variables) == len(encoder.trainable_variables) + len(
        custom.decoder.trainable_variables
    )


def test_conv_networks_fit_the_vae_for_any_batch_size():
    from vae_prac.bounds import elbo
    from vae_prac.model import conv_networks

    encoder, decoder = conv_networks(latent_dim=6, filters=8)
    kinds = {type(layer).__name__ for net in (encoder, decoder) for layer in net.layers}
    assert {"Conv2D", "Conv2DTranspose"} <= kinds
    model = VAE(6, encoder=encoder, decoder=decoder)
    for batch in (1, 3):
        x = tf.constant(
            (np.random.default_rng(batch).random([batch, 28, 28, 1]) < 0.3).astype(np.float32)
        )
        mu, sigma = model.encoder(x)
        assert mu.shape == sigma.shape == (batch, 6) and np.all(sigma.numpy() > 0)
        assert model.decoder(mu).shape == (batch, 28, 28, 1)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(elbo(model, x, seed=(0, 1)).elbo)
    grads = tape.gradient(value, model.trainable_variables)
    assert np.isfinite(float(value)) and all(g is not None for g in grads)


def test_mixture_prior_is_the_mixture_of_its_components():
    from vae_prac.bounds import elbo
    from vae_prac.model import mixture_prior

    logits = tf.constant([0.0, 1.0, -1.0])
    locs = tf.constant([[0.0, 0.0], [2.0, -1.0], [-3.0, 1.0]])
    scales = tf.constant([[1.0, 1.0], [0.5, 2.0], [1.5, 0.3]])
    p = mixture_prior(logits, locs, scales)
    z = np.random.default_rng(0).normal(size=[5, 2]).astype(np.float32)
    pi = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum()
    dens = [
        np.prod(np.exp(-0.5 * ((z - m) / s) ** 2) / (s * np.sqrt(2 * np.pi)), axis=-1)
        for m, s in zip(locs.numpy(), scales.numpy())
    ]
    np.testing.assert_allclose(p.log_prob(z), np.log(np.dot(pi, dens)), rtol=1e-5)
    assert p.event_shape == [2] and p.sample(4, seed=(0, 1)).shape == (4, 2)

    # As a model's prior: the ELBO with a Monte Carlo KL (no closed form to a mixture).
    class Learned(VAE):
        def prior(self):
            return p

    model = Learned(latent_dim=2, hidden_size=8)
    x = tf.constant((np.random.default_rng(1).random([3, 28, 28, 1]) < 0.3).astype(np.float32))
    assert np.all(np.isfinite(elbo(model, x, kl="monte_carlo", seed=(0, 0)).elbo.numpy()))
