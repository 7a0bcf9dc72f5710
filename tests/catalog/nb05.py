"""Notebook 05 (training): the batch ELBO, the training step, decoding the midpoint of two codes."""

from __future__ import annotations

import keras
import matplotlib
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import vae_prac
from catalog import Exercise, Mistake
from vae_prac import plotting
from vae_prac.checks import training
from vae_prac.model import VAE

matplotlib.use("Agg")
tfd = tfp.distributions


# ---------------------------------------------------------------------------------------
# my_batch_elbo(model, x, seed): the ELBO of the batch, summed over its images.


def _terms(model, x, seed):
    """The solution's pieces, for writing mistakes that change one of them."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    ell = model.likelihood(z).log_prob(x)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return mu, sigma, z, ell, kl


def _solution_elbo(model, x, seed):
    _, _, _, ell, kl = _terms(model, x, seed)
    return tf.reduce_sum(ell - kl)


# Correct answers, in styles other than the solution's.


def elbo_monte_carlo_kl(model, x, seed):
    """Notebook 04's Monte Carlo KL, log q(z|x) - log p(z), at the same z."""
    q = model.posterior(x)
    z = q.sample(seed=seed)
    log_likelihood = model.likelihood(z).log_prob(x)
    kl = q.log_prob(z) - model.prior().log_prob(z)
    return tf.reduce_sum(log_likelihood - kl)


def elbo_by_hand_tf(model, x, seed):
    """Noise, KL and Bernoulli log-likelihood written out with tf ops."""
    mu, sigma = model.encoder(x)
    eps = tf.random.stateless_normal(tf.shape(mu), seed=seed)
    z = mu + sigma * eps
    logits = model.decoder(z)
    log_px = -tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=[1, 2, 3]
    )
    kl = 0.5 * tf.reduce_sum(mu**2 + sigma**2 - 1.0 - 2.0 * tf.math.log(sigma), axis=1)
    return tf.reduce_sum(log_px - kl)


def elbo_keras_ops(model, x, seed):
    """keras.ops throughout; log p(x|z) = sum x*l - softplus(l)."""
    ops = keras.ops
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    logits = model.decoder(z)
    log_px = ops.sum(x * logits - ops.softplus(logits), axis=(1, 2, 3))
    kl = ops.sum(0.5 * (ops.square(mu) + ops.square(sigma) - 1.0) - ops.log(sigma), axis=-1)
    return ops.sum(log_px - kl)


def elbo_mvn_diag(model, x, seed):
    """tfd.MultivariateNormalDiag: its samples come from the seed in another way."""
    mu, sigma = model.encoder(x)
    q = tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma)
    p = tfd.MultivariateNormalDiag(loc=tf.zeros_like(mu), scale_diag=tf.ones_like(sigma))
    z = q.sample(seed=seed)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - tfd.kl_divergence(q, p))


def elbo_original_style(model, x, seed):
    """The original's elementwise distributions with explicit sums over axes."""
    mu, sigma = model.encoder(x)
    q = tfd.Normal(loc=mu, scale=sigma)
    z = q.sample(seed=seed)
    p_x = tfd.Bernoulli(logits=model.decoder(z))
    kl = tf.reduce_sum(tfd.kl_divergence(q, tfd.Normal(0.0, 1.0)), 1)
    expected_ll = tf.reduce_sum(p_x.log_prob(x), [1, 2, 3])
    return tf.reduce_sum(expected_ll - kl, 0)


def elbo_keras_bce(model, x, seed):
    """Keras' binary cross-entropy on logits, summed (not averaged) over the pixels."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    bce = keras.losses.binary_crossentropy(x, model.decoder(z), from_logits=True)
    log_px = -tf.reduce_sum(bce, axis=[1, 2])  # bce: [batch, 28, 28]
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(log_px - kl)


def elbo_two_samples(model, x, seed):
    """Two samples of z per image, averaged: also unbiased."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, n_samples=2, seed=seed)  # [2, batch, d]
    ell = tf.reduce_mean(model.likelihood(z).log_prob(x), axis=0)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(ell - kl)


def elbo_folded_seed(model, x, seed):
    """Its own stateless noise, from a seed derived from the given one."""
    mu, sigma = model.encoder(x)
    noise_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=noise_seed)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


# The notebook's own way: the sampler chosen in section 1 (the student's my_reparameterize
# where its check passed, else vae_prac's, called the same way).
reparameterize = training.reparameterize_reference


def my_reparameterize(mu, sigma, seed):
    """Notebook 04's task as a student writes it: stateless noise from seed."""
    return mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=seed)


def elbo_students_sampler(model, x, seed):
    """The solution's shape with the notebook's chosen sampler."""
    mu, sigma = model.encoder(x)
    z = reparameterize(mu, sigma, seed)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_own_sampler_function(model, x, seed):
    """The student's own my_reparameterize, called directly."""
    mu, sigma = model.encoder(x)
    z = my_reparameterize(mu, sigma, seed)
    log_px = -tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=model.decoder(z)), axis=[1, 2, 3]
    )
    return tf.reduce_sum(log_px - tfd.kl_divergence(model.posterior(x), model.prior()))


def elbo_float64(model, x, seed):
    """Everything after the networks in float64; the result stays float64."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    logits = tf.cast(model.decoder(z), tf.float64)
    x64 = tf.cast(x, tf.float64)
    log_px = tf.reduce_sum(x64 * logits - tf.nn.softplus(logits), axis=[1, 2, 3])
    mu, sigma = tf.cast(mu, tf.float64), tf.cast(sigma, tf.float64)
    kl = 0.5 * tf.reduce_sum(mu**2 + sigma**2 - 1.0 - 2.0 * tf.math.log(sigma), axis=1)
    return tf.reduce_sum(log_px - kl)


def elbo_box_muller(model, x, seed):
    """Standard normal noise made from two stateless uniforms (Box-Muller)."""
    mu, sigma = model.encoder(x)
    seed_1, seed_2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    u1 = tf.random.stateless_uniform(tf.shape(mu), seed_1, minval=1e-7, maxval=1.0)
    u2 = tf.random.stateless_uniform(tf.shape(mu), seed_2)
    eps = tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * np.pi * u2)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(model.likelihood(mu + sigma * eps).log_prob(x) - kl)


def elbo_sticking_the_landing(model, x, seed):
    """Monte Carlo KL with q's parameters cut from the gradient (Roeder et al., 2017):
    the score term it drops has expectation 0, so the gradient stays unbiased."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    q_fixed = vae_prac.posterior(tf.stop_gradient(mu), tf.stop_gradient(sigma))
    kl = q_fixed.log_prob(z) - model.prior().log_prob(z)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_hand_written_softplus(model, x, seed):
    """log p(x|z) = x l - log(1 + e^l), softplus written out (fine below l = 88)."""
    mu, sigma = model.encoder(x)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=seed)
    logits = model.decoder(z)
    log_px = tf.reduce_sum(x * logits - tf.math.log(1.0 + tf.exp(logits)), axis=[1, 2, 3])
    kl = tf.reduce_sum(-tf.math.log(sigma) + 0.5 * (sigma**2 + mu**2) - 0.5, axis=-1)
    return tf.reduce_sum(log_px - kl)


def elbo_clipped_probabilities(model, x, seed):
    """Probabilities clipped away from 0 and 1, as Keras' cross-entropy does: finite for
    a confident decoder; the check cannot tell the clipping (see its docstring)."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    p = tf.clip_by_value(tf.sigmoid(model.decoder(z)), 1e-7, 1.0 - 1e-7)
    log_px = tf.reduce_sum(x * tf.math.log(p) + (1.0 - x) * tf.math.log(1.0 - p), [1, 2, 3])
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(log_px - kl)


def elbo_debug_prints(model, x, seed):
    """A student's debugging prints left in (Python print: once per trace)."""
    mu, sigma = model.encoder(x)
    print("mu", mu.shape, "sigma", sigma.shape)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    ell = model.likelihood(z).log_prob(x)
    kl = tfd.kl_divergence(model.posterior(x), model.prior())
    print("terms", ell.shape, kl.shape)
    return tf.reduce_sum(ell) - tf.reduce_sum(kl)


@tf.function
def elbo_compiled(model, x, seed):
    """Decorated with tf.function by the student: the check runs it traced."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


# Mistakes.


def elbo_wrong_sign(model, x, seed):
    return -_solution_elbo(model, x, seed)


def elbo_batch_mean(model, x, seed):
    _, _, _, ell, kl = _terms(model, x, seed)
    return tf.reduce_mean(ell - kl)


def elbo_kl_sign(model, x, seed):
    _, _, _, ell, kl = _terms(model, x, seed)
    return tf.reduce_sum(ell + kl)


def elbo_kl_sign_monte_carlo(model, x, seed):
    q = model.posterior(x)
    z = q.sample(seed=seed)
    kl = model.prior().log_prob(z) - q.log_prob(z)  # log p - log q: upside down
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_kl_missing(model, x, seed):
    _, _, _, ell, _ = _terms(model, x, seed)
    return tf.reduce_sum(ell)


def elbo_likelihood_missing(model, x, seed):
    _, _, _, _, kl = _terms(model, x, seed)
    return -tf.reduce_sum(kl)


def elbo_probs_for_logits(model, x, seed):
    mu, sigma, z, _, kl = _terms(model, x, seed)
    p_x = tfd.Independent(tfd.Bernoulli(probs=model.decoder(z)), 3)
    return tf.reduce_sum(p_x.log_prob(x) - kl)


def elbo_sigmoid_as_logits(model, x, seed):
    mu, sigma, z, _, kl = _terms(model, x, seed)
    p_x = tfd.Independent(tfd.Bernoulli(logits=tf.sigmoid(model.decoder(z))), 3)
    return tf.reduce_sum(p_x.log_prob(x) - kl)


def elbo_kl_over_batch_axis(model, x, seed):
    mu, sigma, _, ell, _ = _terms(model, x, seed)
    kl = tf.reduce_sum(tfd.kl_divergence(tfd.Normal(mu, sigma), tfd.Normal(0.0, 1.0)), axis=0)
    return tf.reduce_sum(ell - kl)


def elbo_kl_not_summed(model, x, seed):
    mu, sigma, _, ell, _ = _terms(model, x, seed)
    kl = tfd.kl_divergence(tfd.Normal(mu, sigma), tfd.Normal(0.0, 1.0))  # [batch, d]
    return tf.reduce_sum(ell[:, None] - kl)


def elbo_pixel_mean(model, x, seed):
    mu, sigma, z, _, kl = _terms(model, x, seed)
    bce = keras.losses.binary_crossentropy(
        tf.reshape(x, [-1, 784]), tf.reshape(model.decoder(z), [-1, 784]), from_logits=True
    )
    return tf.reduce_sum(-bce - kl)  # bce is a mean over the 784 pixels


def elbo_kl_latent_mean(model, x, seed):
    mu, sigma, _, ell, _ = _terms(model, x, seed)
    kl = tf.reduce_mean(tfd.kl_divergence(tfd.Normal(mu, sigma), tfd.Normal(0.0, 1.0)), -1)
    return tf.reduce_sum(ell - kl)


def elbo_z_is_mu(model, x, seed):
    mu, _, _, _, kl = _terms(model, x, seed)
    return tf.reduce_sum(model.likelihood(mu).log_prob(x) - kl)


def elbo_unseeded_noise(model, x, seed):
    mu, sigma, _, _, kl = _terms(model, x, seed)
    z = mu + sigma * tf.random.normal(tf.shape(mu))
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_numpy_noise(model, x, seed):
    mu, sigma, _, _, kl = _terms(model, x, seed)
    z = mu + sigma * np.random.standard_normal(mu.shape).astype(np.float32)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_numpy_noise_from_seed(model, x, seed):
    """NumPy noise seeded by seed: reproducible eagerly, but not inside tf.function."""
    mu, sigma, _, _, kl = _terms(model, x, seed)
    rng = np.random.default_rng(np.asarray(seed))
    z = mu + sigma * rng.standard_normal(mu.shape).astype(np.float32)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_fixed_seed(model, x, seed):
    mu, sigma, _, _, kl = _terms(model, x, seed)
    z = vae_prac.reparameterize(mu, sigma, seed=(1, 2))
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_stop_gradient(model, x, seed):
    mu, sigma, z, _, kl = _terms(model, x, seed)
    return tf.reduce_sum(model.likelihood(tf.stop_gradient(z)).log_prob(x) - kl)


def elbo_sigma_squared(model, x, seed):
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma**2, seed=seed)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma**2), model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_sigma_squared_own_noise(model, x, seed):
    mu, sigma = model.encoder(x)
    q = tfd.MultivariateNormalDiag(mu, sigma**2)
    z = q.sample(seed=seed)
    p = tfd.MultivariateNormalDiag(tf.zeros_like(mu), tf.ones_like(mu))
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - tfd.kl_divergence(q, p))


def _elbo_with_noise(model, x, eps):
    mu, sigma = model.encoder(x)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(model.likelihood(mu + sigma * eps).log_prob(x) - kl)


def elbo_noise_shared_across_dimensions(model, x, seed):
    """One noise value per image, broadcast over the latent dimensions."""
    mu, _ = model.encoder(x)
    return _elbo_with_noise(model, x, tf.random.stateless_normal([tf.shape(mu)[0], 1], seed))


def elbo_noise_shared_across_images(model, x, seed):
    """One noise vector for the whole batch."""
    mu, _ = model.encoder(x)
    return _elbo_with_noise(model, x, tf.random.stateless_normal([1, tf.shape(mu)[1]], seed))


def elbo_uniform_noise_unit_variance(model, x, seed):
    """Uniform noise scaled to mean 0 and variance 1: right moments, wrong distribution."""
    mu, _ = model.encoder(x)
    u = tf.random.stateless_uniform(tf.shape(mu), seed, minval=-(3**0.5), maxval=3**0.5)
    return _elbo_with_noise(model, x, u)


def elbo_numpy_value(model, x, seed):
    return tf.constant(_solution_elbo(model, x, seed).numpy())


def elbo_numpy_encoder(model, x, seed):
    """mu and sigma taken out of TensorFlow: the encoder gets no gradient."""
    mu, sigma = (t.numpy() for t in model.encoder(x))
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_kl_stop_gradient(model, x, seed):
    mu, sigma, z, ell, kl = _terms(model, x, seed)
    return tf.reduce_sum(ell - tf.stop_gradient(kl))


def elbo_kl_stop_gradient_on_mu_sigma(model, x, seed):
    mu, sigma, z, ell, _ = _terms(model, x, seed)
    q = vae_prac.posterior(tf.stop_gradient(mu), tf.stop_gradient(sigma))
    return tf.reduce_sum(ell - tfd.kl_divergence(q, model.prior()))


def elbo_kl_from_numpy(model, x, seed):
    """The KL written in NumPy from mu.numpy(): right value, no gradient through it."""
    mu, sigma, z, ell, _ = _terms(model, x, seed)
    m, s = mu.numpy(), sigma.numpy()
    kl = 0.5 * np.sum(m**2 + s**2 - 1.0 - np.log(s**2), axis=1)
    return tf.reduce_sum(ell - kl)


def elbo_python_float(model, x, seed):
    return float(_solution_elbo(model, x, seed))


def elbo_numpy_scalar(model, x, seed):
    return _solution_elbo(model, x, seed).numpy()


def _hand_kl(mu, sigma, log_term):
    return 0.5 * tf.reduce_sum(mu**2 + sigma**2 - 1.0 - log_term, axis=1)


def elbo_kl_log_sigma(model, x, seed):
    """The hand-written KL with log sigma where log sigma^2 belongs."""
    mu, sigma, z, ell, _ = _terms(model, x, seed)
    return tf.reduce_sum(ell - _hand_kl(mu, sigma, tf.math.log(sigma)))


def elbo_kl_log_sigma_other_noise(model, x, seed):
    mu, sigma = model.encoder(x)
    z = tfd.MultivariateNormalDiag(mu, sigma).sample(seed=seed)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - _hand_kl(mu, sigma, tf.math.log(sigma)))


def elbo_kl_without_minus_one(model, x, seed):
    mu, sigma, z, ell, _ = _terms(model, x, seed)
    kl = 0.5 * tf.reduce_sum(mu**2 + sigma**2 - tf.math.log(sigma**2), axis=1)
    return tf.reduce_sum(ell - kl)


def elbo_kl_doubled(model, x, seed):
    """A KL weight of 2 (beta = 2): biased, and no named slip."""
    _, _, _, ell, kl = _terms(model, x, seed)
    return tf.reduce_sum(ell - 2.0 * kl)


def elbo_naive_sigmoid_log_likelihood(model, x, seed):
    """log(sigmoid(l)) and log(1 - sigmoid(l)): NaN once the decoder is confident."""
    mu, sigma, z, _, kl = _terms(model, x, seed)
    p = tf.sigmoid(model.decoder(z))
    log_px = tf.reduce_sum(x * tf.math.log(p) + (1 - x) * tf.math.log(1 - p), axis=[1, 2, 3])
    return tf.reduce_sum(log_px - kl)


def elbo_likelihood_keeps_channel_axis(model, x, seed):
    """Summed over axes [1, 2] only: [batch, 1] minus [batch] broadcasts to [batch, batch]."""
    mu, sigma, z, _, kl = _terms(model, x, seed)
    log_px = tf.reduce_sum(tfd.Bernoulli(logits=model.decoder(z)).log_prob(x), axis=[1, 2])
    return tf.reduce_sum(log_px - kl)


def elbo_global_seed(model, x, seed):
    """tf.random.set_seed from the seed's values: reproducible eagerly, not in a graph."""
    mu, sigma, _, _, kl = _terms(model, x, seed)
    tf.random.set_seed(int(seed[0]) * 1000 + int(seed[1]))
    z = mu + sigma * tf.random.normal(tf.shape(mu))
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def elbo_uniform_noise(model, x, seed):
    """Noise from U(0, 1): not centred, not normal."""
    mu, _ = model.encoder(x)
    return _elbo_with_noise(model, x, tf.random.stateless_uniform(tf.shape(mu), seed))


def elbo_box_muller_without_cosine(model, x, seed):
    """Box-Muller's radius alone: always positive noise."""
    mu, _ = model.encoder(x)
    u = tf.random.stateless_uniform(tf.shape(mu), seed, minval=1e-7, maxval=1.0)
    return _elbo_with_noise(model, x, tf.sqrt(-2.0 * tf.math.log(u)))


def elbo_noise_of_latent_shape(model, x, seed):
    """Noise of shape [latent_dim] only: every image of the batch gets the same."""
    mu, _ = model.encoder(x)
    return _elbo_with_noise(model, x, tf.random.stateless_normal(tf.shape(mu)[1:], seed))


def elbo_per_image(model, x, seed):
    _, _, _, ell, kl = _terms(model, x, seed)
    return ell - kl


def elbo_mean_over_batch_own_noise(model, x, seed):
    """Averaged over the batch, with samples the check cannot reproduce exactly."""
    return elbo_mvn_diag(model, x, seed) / x.shape[0]


def elbo_no_return(model, x, seed):
    _solution_elbo(model, x, seed)


ELBO_GIVE_AWAY = (
    "reduce_sum(",
    "kl_divergence(",
    "log_prob(x)",
    "reparameterize(mu",
    "expected_log_likelihood - kl",
)


def _elbo_downstream(fn):
    """Cell 9 (eagerly, seed=(0, 0)) and a few compiled RMSProp steps on -ELBO with a seed
    tensor per step, as vae_prac.train's step does; both networks must change."""
    keras.utils.set_random_seed(0)
    model = VAE(latent_dim=4, hidden_size=16)
    x = tf.constant((np.random.default_rng(0).random((16, 28, 28, 1)) < 0.3).astype(np.float32))
    value = float(fn(model, x, seed=(0, 0)))
    assert np.isfinite(value) and value < 0, value
    optimizer = keras.optimizers.RMSprop(1e-3, rho=0.9, epsilon=1e-10)
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]

    @tf.function
    def step(x, seed):
        with tf.GradientTape() as tape:
            loss = -fn(model, x, seed)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    losses = [
        float(step(x, tf.stack([tf.constant(0, tf.int32), tf.constant(i, tf.int32)])))
        for i in range(3)
    ]
    assert np.all(np.isfinite(losses)), losses
    for v, old in zip(variables, before):
        assert not np.array_equal(v.numpy(), old), f"{v.name} did not change"


BATCH_ELBO = Exercise(
    name="batch_elbo",
    check=training.batch_elbo,
    correct={
        "monte_carlo_kl_same_z": elbo_monte_carlo_kl,
        "by_hand_tf": elbo_by_hand_tf,
        "keras_ops": elbo_keras_ops,
        "mvn_diag_other_noise": elbo_mvn_diag,
        "original_style_axes": elbo_original_style,
        "keras_bce_summed": elbo_keras_bce,
        "two_samples": elbo_two_samples,
        "folded_seed_other_noise": elbo_folded_seed,
        "students_sampler": elbo_students_sampler,
        "own_sampler_function_cross_entropy": elbo_own_sampler_function,
        "float64": elbo_float64,
        "box_muller_noise": elbo_box_muller,
        "sticking_the_landing": elbo_sticking_the_landing,
        "hand_written_softplus_and_kl": elbo_hand_written_softplus,
        "clipped_probabilities": elbo_clipped_probabilities,
        "debug_prints": elbo_debug_prints,
        "tf_function_decorated": elbo_compiled,
    },
    mistakes={
        "wrong_sign": Mistake(elbo_wrong_sign, r"wrong sign"),
        "mean_over_batch": Mistake(elbo_batch_mean, r"average over the 8 images"),
        "mean_over_batch_other_noise": Mistake(
            elbo_mean_over_batch_own_noise, r"average over the 8 images"
        ),
        "kl_sign": Mistake(elbo_kl_sign, r"KL has the wrong sign"),
        "kl_sign_monte_carlo": Mistake(elbo_kl_sign_monte_carlo, r"KL has the wrong sign"),
        "kl_missing": Mistake(elbo_kl_missing, r"KL term is missing"),
        "likelihood_missing": Mistake(elbo_likelihood_missing, r"log-likelihood term is missing"),
        "probs_for_logits": Mistake(elbo_probs_for_logits, r"logits.*probabilit"),
        "sigmoid_as_logits": Mistake(elbo_sigmoid_as_logits, r"probabilities.*expects logits"),
        "kl_summed_over_batch_axis": Mistake(elbo_kl_over_batch_axis, r"shapes.*latent"),
        "kl_not_summed": Mistake(elbo_kl_not_summed, r"one value per latent dimension"),
        "likelihood_mean_over_pixels": Mistake(elbo_pixel_mean, r"averaged over the pixels"),
        "kl_mean_over_latents": Mistake(elbo_kl_latent_mean, r"averaged over the latent"),
        "z_is_mu": Mistake(elbo_z_is_mu, r"posterior mean mu, not a sample"),
        "unseeded_noise": Mistake(elbo_unseeded_noise, r"same seed gave different values"),
        "numpy_noise": Mistake(elbo_numpy_noise, r"same seed gave different values"),
        "numpy_noise_from_seed": Mistake(elbo_numpy_noise_from_seed, r"inside tf\.function"),
        "seed_ignored": Mistake(elbo_fixed_seed, r"different seeds gave exactly the same"),
        "stop_gradient_on_z": Mistake(elbo_stop_gradient, r"does not flow through z"),
        "noise_shared_across_dimensions": Mistake(
            elbo_noise_shared_across_dimensions, r"every latent dimension .* same noise"
        ),
        "noise_shared_across_images": Mistake(
            elbo_noise_shared_across_images, r"every image .* same noise"
        ),
        "uniform_noise_unit_variance": Mistake(
            elbo_uniform_noise_unit_variance, r"standard normal"
        ),
        "sigma_squared": Mistake(elbo_sigma_squared, r"sigma squared"),
        "sigma_squared_other_noise": Mistake(elbo_sigma_squared_own_noise, r"sigma squared"),
        "numpy_value": Mistake(elbo_numpy_value, r"no gradient reaches the weights"),
        "numpy_encoder": Mistake(elbo_numpy_encoder, r"no gradient reaches the encoder"),
        "per_image": Mistake(elbo_per_image, r"one ELBO per image"),
        "no_return": Mistake(elbo_no_return, r"forget the `return`"),
        "kl_stop_gradient": Mistake(elbo_kl_stop_gradient, r"no gradient flows through the KL"),
        "kl_stop_gradient_on_mu_sigma": Mistake(
            elbo_kl_stop_gradient_on_mu_sigma, r"no gradient flows through the KL"
        ),
        "kl_from_numpy": Mistake(elbo_kl_from_numpy, r"inside tf\.function.*numpy"),
        "python_float": Mistake(elbo_python_float, r"returned a Python float"),
        "numpy_scalar": Mistake(elbo_numpy_scalar, r"numpy float32, not a TensorFlow tensor"),
        "kl_log_sigma": Mistake(elbo_kl_log_sigma, r"log sigma\^2.*2 log sigma"),
        "kl_log_sigma_other_noise": Mistake(
            elbo_kl_log_sigma_other_noise, r"log sigma\^2.*2 log sigma"
        ),
        "kl_without_minus_one": Mistake(
            elbo_kl_without_minus_one, r"1/2 per latent dimension.*constant"
        ),
        "kl_doubled_no_named_slip": Mistake(elbo_kl_doubled, r"average is .* biased"),
        "naive_sigmoid_log_likelihood": Mistake(
            elbo_naive_sigmoid_log_likelihood, r"sure of its pixels.*log 0"
        ),
        "likelihood_keeps_channel_axis": Mistake(
            elbo_likelihood_keeps_channel_axis, r"8 times the batch ELBO.*extra axis"
        ),
        "global_seed_reset": Mistake(elbo_global_seed, r"inside tf\.function"),
        "uniform_noise": Mistake(elbo_uniform_noise, r"standard normal"),
        "box_muller_without_cosine": Mistake(elbo_box_muller_without_cosine, r"standard normal"),
        "noise_of_latent_shape": Mistake(elbo_noise_of_latent_shape, r"every image .* same noise"),
    },
    give_away=ELBO_GIVE_AWAY,
    downstream=_elbo_downstream,
)


# ---------------------------------------------------------------------------------------
# decode_midpoint(model, x_a, x_b): pixel probabilities of the midpoint of the two means.


def _means(model, x_a, x_b):
    mu, _ = model.encoder(tf.stack([x_a, x_b]))
    return mu


# Correct answers, in styles other than the solution's.


def midpoint_keras_ops(model, x_a, x_b):
    ops = keras.ops
    mu, _ = model.encoder(ops.stack([x_a, x_b]))
    z = ops.mean(mu, axis=0, keepdims=True)
    return ops.sigmoid(model.decoder(z))[0]


def midpoint_concat_likelihood_mean(model, x_a, x_b):
    x = tf.concat([x_a[None], x_b[None]], axis=0)
    mu, _ = model.encoder(x)
    z = 0.5 * (mu[0:1] + mu[1:2])
    return model.likelihood(z).mean()[0]


def midpoint_separately(model, x_a, x_b):
    mu_a, _ = model.encoder(x_a[np.newaxis])
    mu_b, _ = model.encoder(x_b[np.newaxis])
    return model.decode((mu_a + mu_b) / 2)[0]


def midpoint_decode_path_then_index(model, x_a, x_b):
    """Decode x_a's code, the midpoint and x_b's code together; keep the middle one."""
    mu = model.posterior(tf.stack([x_a, x_b])).mean()
    path = tf.stack([mu[0], (mu[0] + mu[1]) / 2, mu[1]])
    return model.decode(path)[1]


def midpoint_numpy(model, x_a, x_b):
    mu = model.encoder(np.stack([x_a, x_b]))[0].numpy()
    z = mu.mean(axis=0, keepdims=True)
    logits = model.decoder(z).numpy()[0]
    return 1.0 / (1.0 + np.exp(-logits))


def midpoint_tfd_probs(model, x_a, x_b):
    mu, _ = model.encoder(tf.stack([x_a, x_b]))
    z = tf.reduce_mean(mu, axis=0)[tf.newaxis]
    return tf.reshape(tfd.Bernoulli(logits=model.decoder(z)).probs_parameter(), [28, 28, 1])


def midpoint_squeeze(model, x_a, x_b):
    return tf.squeeze(
        tf.sigmoid(model.decoder(tf.reduce_mean(_means(model, x_a, x_b), axis=0, keepdims=True))),
        axis=0,
    )


def midpoint_float64_numpy(model, x_a, x_b):
    """NumPy in float64 after the networks, the logistic function written out."""
    mu_a = model.encoder(x_a[None])[0].numpy().astype(np.float64)
    mu_b = model.encoder(x_b[None])[0].numpy().astype(np.float64)
    logits = model.decoder((0.5 * (mu_a + mu_b)).astype(np.float32)).numpy()
    return np.exp(-np.logaddexp(0.0, -logits[0].astype(np.float64)))


def midpoint_debug_print_posterior_mean(model, x_a, x_b):
    q = model.posterior(np.stack([x_a, x_b]))
    print("means:", q.mean().shape)
    z = 0.5 * q.mean()[0] + 0.5 * q.mean()[1]
    return model.likelihood(z[None]).mean()[0]


# Mistakes.


def midpoint_thresholded(model, x_a, x_b):
    z = tf.reduce_mean(_means(model, x_a, x_b), axis=0, keepdims=True)
    return tf.round(model.decode(z))[0]


def midpoint_unequal_weights(model, x_a, x_b):
    mu = _means(model, x_a, x_b)
    return model.decode(0.25 * mu[:1] + 0.75 * mu[1:])[0]


def midpoint_averaged_images(model, x_a, x_b):
    return tf.reduce_mean(model.decode(_means(model, x_a, x_b)), axis=0)


def midpoint_averaged_logits(model, x_a, x_b):
    return tf.sigmoid(tf.reduce_mean(model.decoder(_means(model, x_a, x_b)), axis=0))


def midpoint_samples_of_z(model, x_a, x_b):
    z = model.posterior(tf.stack([x_a, x_b])).sample()
    return model.decode(tf.reduce_mean(z, axis=0, keepdims=True))[0]


def midpoint_seeded_samples_of_z(model, x_a, x_b):
    z = model.posterior(tf.stack([x_a, x_b])).sample(seed=(1, 2))
    return model.decode(tf.reduce_mean(z, axis=0, keepdims=True))[0]


def midpoint_logits(model, x_a, x_b):
    return model.decoder(tf.reduce_mean(_means(model, x_a, x_b), axis=0, keepdims=True))[0]


def midpoint_batch_of_one(model, x_a, x_b):
    return model.decode(tf.reduce_mean(_means(model, x_a, x_b), axis=0, keepdims=True))


def midpoint_both_images(model, x_a, x_b):
    return model.decode(_means(model, x_a, x_b))


def midpoint_no_channel(model, x_a, x_b):
    return model.decode(tf.reduce_mean(_means(model, x_a, x_b), 0, keepdims=True))[0, ..., 0]


def midpoint_sigma(model, x_a, x_b):
    _, sigma = model.encoder(tf.stack([x_a, x_b]))
    return model.decode(tf.reduce_mean(sigma, axis=0, keepdims=True))[0]


def midpoint_images_then_encode(model, x_a, x_b):
    mu, _ = model.encoder(((x_a + x_b) / 2)[None])
    return model.decode(mu)[0]


def midpoint_binary_sample(model, x_a, x_b):
    z = tf.reduce_mean(_means(model, x_a, x_b), axis=0, keepdims=True)
    return model.decode(z, sample=True)[0]


def midpoint_one_image(model, x_a, x_b):
    mu, _ = model.encoder(tf.stack([x_a, x_a]))
    return model.decode(tf.reduce_mean(mu, axis=0, keepdims=True))[0]


def midpoint_sum(model, x_a, x_b):
    return model.decode(tf.reduce_sum(_means(model, x_a, x_b), axis=0, keepdims=True))[0]


def midpoint_no_return(model, x_a, x_b):
    model.decode(tf.reduce_mean(_means(model, x_a, x_b), axis=0, keepdims=True))[0]


def _midpoint_downstream(fn):
    """Cell 44: the midpoint of two digits under a (briefly) trained model, plotted."""
    import matplotlib.pyplot as plt

    keras.utils.set_random_seed(1)
    model = VAE(latent_dim=4, hidden_size=16)
    x = (np.random.default_rng(1).random((8, 28, 28, 1)) < 0.3).astype(np.float32)
    optimizer = keras.optimizers.RMSprop(1e-3)
    for i in range(2):
        with tf.GradientTape() as tape:
            loss = -vae_prac.batch_elbo(model, x, seed=(0, i))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
    x_a, x_b = x[0], x[1]
    image = fn(model, x_a, x_b)
    assert np.asarray(image).shape == (28, 28, 1)
    fig = plotting.image_grid(
        [x_a, image, x_b], ncols=3, scale=1.5, titles=["x_a", "decoded midpoint", "x_b"]
    )
    plt.close(fig)


DECODE_MIDPOINT = Exercise(
    name="decode_midpoint",
    check=training.decode_midpoint,
    correct={
        "keras_ops": midpoint_keras_ops,
        "concat_likelihood_mean": midpoint_concat_likelihood_mean,
        "means_separately": midpoint_separately,
        "decode_path_then_index": midpoint_decode_path_then_index,
        "numpy": midpoint_numpy,
        "tfd_probs_parameter": midpoint_tfd_probs,
        "squeeze_sigmoid": midpoint_squeeze,
        "float64_numpy": midpoint_float64_numpy,
        "debug_print_posterior_mean": midpoint_debug_print_posterior_mean,
    },
    mistakes={
        "averaged_decoded_images": Mistake(midpoint_averaged_images, r"averaged the two decoded"),
        "averaged_decoded_logits": Mistake(midpoint_averaged_logits, r"averaged the two decoded"),
        "samples_of_z": Mistake(midpoint_samples_of_z, r"random.*not samples"),
        "seeded_samples_of_z": Mistake(midpoint_seeded_samples_of_z, r"posterior means"),
        "returns_logits": Mistake(midpoint_logits, r"logits"),
        "batch_of_one": Mistake(midpoint_batch_of_one, r"batch of one"),
        "both_images": Mistake(midpoint_both_images, r"two images"),
        "channel_dropped": Mistake(midpoint_no_channel, r"channel axis"),
        "uses_sigma": Mistake(midpoint_sigma, r"sigma"),
        "images_averaged_then_encoded": Mistake(
            midpoint_images_then_encode, r"averaged the two images and encoded"
        ),
        "binary_sample": Mistake(midpoint_binary_sample, r"binary sample"),
        "one_image_twice": Mistake(midpoint_one_image, r"one image only"),
        "sum_of_codes": Mistake(midpoint_sum, r"sum of the two codes"),
        "no_return": Mistake(midpoint_no_return, r"forget the `return`"),
        "thresholded": Mistake(midpoint_thresholded, r"rounded"),
        "unequal_weights": Mistake(midpoint_unequal_weights, r"differs from the decoded midpoint"),
    },
    give_away=("reduce_mean(mu", "decode(z)[0]", "stack([x_a, x_b])", "(mu_a + mu_b) / 2"),
    downstream=_midpoint_downstream,
)


# ---------------------------------------------------------------------------------------
# my_train_step(model, optimizer, batch_elbo, x, seed): one step on -ELBO.


def step_apply_gradients(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return elbo


def step_trainable_weights_keras_ops(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = keras.ops.negative(elbo)
    grads = tape.gradient(loss, model.trainable_weights)
    optimizer.apply(grads, model.trainable_weights)
    return elbo


def step_two_networks(model, optimizer, batch_elbo, x, seed):
    """phi and theta listed network by network."""
    weights = model.encoder.trainable_variables + model.decoder.trainable_variables
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = tf.negative(elbo)
    grads = tape.gradient(loss, weights)
    optimizer.apply_gradients(list(zip(grads, weights)))
    return elbo


def step_negated_outside_the_tape(model, optimizer, batch_elbo, x, seed):
    """The minus sign after the tape closed: the tape never saw it."""
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
    grads = tape.gradient(-elbo, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return elbo


def step_persistent_tape(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape(persistent=True) as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -1.0 * elbo
    grads = tape.gradient(loss, model.trainable_variables)
    del tape
    optimizer.apply(grads, model.trainable_variables)
    return tf.identity(elbo)


def step_compiled(model, optimizer, batch_elbo, x, seed):
    """A student who decorates an inner function with tf.function."""

    @tf.function
    def inner(x, seed):
        return step_apply_gradients(model, optimizer, batch_elbo, x, seed)

    return inner(x, seed)


def step_maximizes_loss(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = elbo  # minimizes the ELBO
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return elbo


def step_gradient_of_plus_elbo(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    grads = tape.gradient(elbo, model.trainable_variables)  # of +ELBO, not of the loss
    optimizer.apply(grads, model.trainable_variables)
    return elbo


def step_decoder_only(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    grads = tape.gradient(loss, model.decoder.trainable_variables)
    optimizer.apply(grads, model.decoder.trainable_variables)
    return elbo


def step_encoder_only(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        loss = -batch_elbo(model, x, seed)
    grads = tape.gradient(loss, model.encoder.trainable_variables)
    optimizer.apply(grads, model.encoder.trainable_variables)
    return -loss


def step_mean_over_batch(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo / tf.cast(tf.shape(x)[0], tf.float32)
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return elbo


def step_loss_outside_the_tape(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        pass
    elbo = batch_elbo(model, x, seed)
    grads = tape.gradient(-elbo, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return elbo


def step_no_update(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    tape.gradient(loss, model.trainable_variables)
    return elbo


def step_applied_twice(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return elbo


def step_returns_loss(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        loss = -batch_elbo(model, x, seed)
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return loss


def step_no_return(model, optimizer, batch_elbo, x, seed):
    step_apply_gradients(model, optimizer, batch_elbo, x, seed)


def step_numpy_value(model, optimizer, batch_elbo, x, seed):
    """Works eagerly; .numpy() has no value inside tf.function."""
    return step_apply_gradients(model, optimizer, batch_elbo, x, seed).numpy()


def step_new_optimizer(model, optimizer, batch_elbo, x, seed):
    """Ignores the optimizer it was given."""
    mine = keras.optimizers.Adam(1e-3)
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    mine.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return elbo


def step_loss_as_mean_of_one_number(model, optimizer, batch_elbo, x, seed):
    """keras.ops throughout; the mean of one number is that number."""
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = keras.ops.mean(keras.ops.negative(elbo))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return elbo


def step_apply_without_variables(model, optimizer, batch_elbo, x, seed):
    """Keras 3's optimizer.apply(grads) uses the variables it was built with."""
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = tf.negative(elbo)
    optimizer.apply(tape.gradient(loss, model.trainable_variables))
    return elbo


def step_float64_loss(model, optimizer, batch_elbo, x, seed):
    """The loss in float64; the gradients come back in the weights' float32."""
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -tf.cast(elbo, tf.float64)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return elbo


def step_debug_print(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    grads = tape.gradient(loss, model.trainable_variables)
    print("gradients:", len(grads), "loss:", loss)
    optimizer.apply(grads, model.trainable_variables)
    return elbo


def step_elbo_again_same_seed(model, optimizer, batch_elbo, x, seed):
    """Returns a second evaluation, before the update, with the same seed: the same value."""
    returned = batch_elbo(model, x, seed)
    with tf.GradientTape() as tape:
        loss = -batch_elbo(model, x, seed)
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return returned


def step_manual_sgd(model, optimizer, batch_elbo, x, seed):
    """Updates the weights by hand with the optimizer's learning rate."""
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    grads = tape.gradient(loss, model.trainable_variables)
    for v, g in zip(model.trainable_variables, grads):
        v.assign_sub(optimizer.learning_rate * g)
    return elbo


def step_watches_nothing(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return elbo


def step_library_elbo(model, optimizer, batch_elbo, x, seed):
    """Calls vae_prac.batch_elbo by name instead of the batch_elbo it is handed."""
    with tf.GradientTape() as tape:
        elbo = vae_prac.batch_elbo(model, x, seed=seed)
        loss = -elbo
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return elbo


def step_fixed_seed(model, optimizer, batch_elbo, x, seed):
    return step_apply_gradients(model, optimizer, batch_elbo, x, tf.constant([0, 0]))


def step_seed_none(model, optimizer, batch_elbo, x, seed):
    return step_apply_gradients(model, optimizer, batch_elbo, x, None)


def step_clipped_gradients(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    grads, _ = tf.clip_by_global_norm(tape.gradient(loss, model.trainable_variables), 1.0)
    optimizer.apply(grads, model.trainable_variables)
    return elbo


def step_own_learning_rate(model, optimizer, batch_elbo, x, seed):
    with tf.GradientTape() as tape:
        elbo = batch_elbo(model, x, seed)
        loss = -elbo
    grads = [1e-3 * g for g in tape.gradient(loss, model.trainable_variables)]
    optimizer.apply(grads, model.trainable_variables)
    return elbo


def step_returns_elbo_after_update(model, optimizer, batch_elbo, x, seed):
    step_apply_gradients(model, optimizer, batch_elbo, x, seed)
    return batch_elbo(model, x, seed)


def step_returns_dict(model, optimizer, batch_elbo, x, seed):
    return {"elbo": step_apply_gradients(model, optimizer, batch_elbo, x, seed)}


def step_returns_elbo_and_loss(model, optimizer, batch_elbo, x, seed):
    elbo = step_apply_gradients(model, optimizer, batch_elbo, x, seed)
    return elbo, -elbo


def step_returns_python_float(model, optimizer, batch_elbo, x, seed):
    """float() of the ELBO: a Python number eagerly, and inside tf.function AutoGraph
    turns float() into a cast, so train() gets its tensor."""
    return float(step_apply_gradients(model, optimizer, batch_elbo, x, seed))


def _step_downstream(fn):
    """Cell 28's run, short: vae_prac.train with the step (compiled), learning something."""
    config = vae_prac.Config(
        latent_dim=4, hidden_size=32, n_iterations=200, print_every=100, log_every=100, n_eval=200
    )
    keras.utils.set_random_seed(config.seed)
    model = VAE(config.latent_dim, config.hidden_size)
    result = vae_prac.train(config, model=model, train_step=fn, progress=False, verbose=False)
    assert result.iteration == 200
    first, last = result.history.test_elbo[0], result.history.test_elbo[-1]
    assert np.isfinite(last) and last > first, (first, last)


TRAIN_STEP = Exercise(
    name="train_step",
    check=training.train_step,
    correct={
        "apply_gradients_zip": step_apply_gradients,
        "trainable_weights_keras_ops": step_trainable_weights_keras_ops,
        "two_networks_loss_at_gradient": step_two_networks,
        "persistent_tape": step_persistent_tape,
        "inner_tf_function": step_compiled,
        "loss_as_mean_of_one_number": step_loss_as_mean_of_one_number,
        "returns_python_float": step_returns_python_float,
        "apply_without_variables": step_apply_without_variables,
        "float64_loss": step_float64_loss,
        "debug_print": step_debug_print,
        "elbo_evaluated_twice_same_seed": step_elbo_again_same_seed,
    },
    mistakes={
        "maximizes_the_loss": Mistake(step_maximizes_loss, r"wrong way"),
        "gradient_of_plus_elbo": Mistake(step_gradient_of_plus_elbo, r"wrong way.*gradients"),
        "decoder_only": Mistake(step_decoder_only, r"encoder's weights phi were not updated"),
        "encoder_only": Mistake(step_encoder_only, r"decoder's weights theta were not updated"),
        "mean_over_batch": Mistake(step_mean_over_batch, r"averaged over the 8 images"),
        "loss_outside_the_tape": Mistake(step_loss_outside_the_tape, r"gradients came back"),
        "negated_outside_the_tape": Mistake(step_negated_outside_the_tape, r"gradients came back"),
        "no_update": Mistake(step_no_update, r"did not change.*apply"),
        "applied_twice": Mistake(step_applied_twice, r"twice"),
        "returns_the_loss": Mistake(step_returns_loss, r"returned the loss"),
        "no_return": Mistake(step_no_return, r"returned None"),
        "numpy_value": Mistake(step_numpy_value, r"inside tf\.function"),
        "new_optimizer": Mistake(
            step_new_optimizer, r"optimizer you were given|optimizer passed in"
        ),
        "manual_sgd_update": Mistake(step_manual_sgd, r"applied by hand"),
        "tape_watches_nothing": Mistake(step_watches_nothing, r"gradients came back"),
        "library_elbo_by_name": Mistake(step_library_elbo, r"another function than the batch_elbo"),
        "fixed_seed": Mistake(step_fixed_seed, r"different seeds gave the same update"),
        "seed_none": Mistake(step_seed_none, r"seed=None"),
        "clipped_gradients": Mistake(step_clipped_gradients, r"times its size.*clipped"),
        "own_learning_rate": Mistake(step_own_learning_rate, r"times its size.*learning rate"),
        "returns_elbo_after_update": Mistake(
            step_returns_elbo_after_update, r"computed before the update"
        ),
        "returns_dict": Mistake(step_returns_dict, r"returned a dict"),
        "returns_elbo_and_loss": Mistake(step_returns_elbo_and_loss, r"shape \[2\]"),
    },
    give_away=(
        "tape.gradient(loss",
        "optimizer.apply(grads",
        "loss = -elbo",
        "with tf.GradientTape() as tape:\n",
    ),
    downstream=_step_downstream,
)

EXERCISES = [BATCH_ELBO, TRAIN_STEP, DECODE_MIDPOINT]
