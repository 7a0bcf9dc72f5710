"""Notebook 07 (beyond the ELBO): the beta-weighted ELBO, and a convolutional encoder and
decoder. (Its other Code Tasks are in nb07_tasks.py.)"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import vae_prac
from catalog import Exercise, Mistake
from vae_prac import Config
from vae_prac.checks import beyond
from vae_prac.model import VAE
from vae_prac.training import gradient_step

tfd = tfp.distributions


# ---------------------------------------------------------------------------------------
# The beta-weighted ELBO, summed over the batch.


def be_reparameterize(model, x, seed, beta):
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    q = vae_prac.posterior(mu, sigma)
    return tf.reduce_sum(
        model.likelihood(z).log_prob(x) - beta * tfd.kl_divergence(q, model.prior())
    )


def be_monte_carlo_kl(model, x, seed, beta):
    """The KL estimated on the same z: unbiased, noisier."""
    q = model.posterior(x)
    z = q.sample(seed=seed)
    kl = q.log_prob(z) - model.prior().log_prob(z)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def be_keras_ops_by_hand(model, x, seed, beta):
    """Bernoulli log-likelihood from logits and the Gaussian KL, written out."""
    ops = keras.ops
    mu, sigma = model.encoder(x)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=seed)
    logits = model.decoder(z)
    log_lik = ops.sum(x * logits - ops.softplus(logits), axis=(1, 2, 3))
    kl = 0.5 * ops.sum(mu**2 + sigma**2 - 1.0 - 2.0 * ops.log(sigma), axis=-1)
    return ops.sum(log_lik - beta * kl)


def be_library_terms(model, x, seed, beta):
    terms = vae_prac.elbo(model, x, seed=seed)
    return tf.reduce_sum(terms.expected_log_likelihood) - beta * tf.reduce_sum(terms.kl)


def be_mvn_diag_two_samples(model, x, seed, beta):
    """tfd.MultivariateNormalDiag, and the log-likelihood averaged over two samples."""
    mu, sigma = model.encoder(x)
    q = tfd.MultivariateNormalDiag(mu, sigma)
    p = tfd.MultivariateNormalDiag(tf.zeros_like(mu), tf.ones_like(sigma))
    z = q.sample(2, seed=seed)
    log_lik = tf.reduce_mean(model.likelihood(z).log_prob(x), axis=0)
    return tf.reduce_sum(log_lik) - beta * tf.reduce_sum(tfd.kl_divergence(q, p))


def _terms(model, x, seed):
    q = model.posterior(x)
    z = q.sample(seed=seed)
    return model.likelihood(z).log_prob(x), tfd.kl_divergence(q, model.prior()), q


def be_beta_on_likelihood(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(beta * ll - kl)


def be_plus_kl(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll + beta * kl)


def be_mean_over_batch(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_mean(ll - beta * kl)


def be_kl_mean(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll) - beta * tf.reduce_mean(kl)


def be_reverse_kl(model, x, seed, beta):
    ll, _, q = _terms(model, x, seed)
    return tf.reduce_sum(ll - beta * tfd.kl_divergence(model.prior(), q))


def be_beta_ignored(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll - kl)


def be_beta_squared(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll - beta**2 * kl)


def be_divided_by_beta(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll - kl / beta)


def be_per_image(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return ll - beta * kl


def be_unseeded(model, x, seed, beta):
    q = model.posterior(x)
    z = q.sample()
    kl = tfd.kl_divergence(q, model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def be_mean_of_q(model, x, seed, beta):
    q = model.posterior(x)
    z = q.mean()
    kl = tfd.kl_divergence(q, model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def be_numpy_beta(model, x, seed, beta):
    """np.float32(beta): fine for a number, fails on a tf.Variable inside tf.function.

    (``float(beta)`` would work there: AutoGraph turns it into a cast.)"""
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll - np.float32(beta) * kl)


def be_likelihood_through_numpy(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll.numpy()) - beta * tf.reduce_sum(kl)  # .numpy() cuts the gradient


def be_float64_hand_softplus(model, x, seed, beta):
    """float64 throughout; the Bernoulli log-likelihood with a softplus written by hand."""
    mu, sigma = (tf.cast(t, tf.float64) for t in model.encoder(x))
    eps = tf.random.stateless_normal(tf.shape(mu), seed=seed, dtype=tf.float64)
    z = mu + sigma * eps
    logits = tf.cast(model.decoder(tf.cast(z, tf.float32)), tf.float64)
    x64 = tf.cast(x, tf.float64)
    softplus = tf.maximum(logits, 0.0) + tf.math.log1p(tf.exp(-tf.abs(logits)))
    log_lik = tf.reduce_sum(x64 * logits - softplus, axis=[1, 2, 3])
    kl = tf.reduce_sum(0.5 * (tf.square(mu) + tf.square(sigma) - 1.0) - tf.math.log(sigma), axis=1)
    value = tf.reduce_sum(log_lik) - tf.cast(beta, tf.float64) * tf.reduce_sum(kl)
    return tf.cast(value, tf.float32)  # train() adds the values up in float32


def be_box_muller(model, x, seed, beta):
    """Standard normal noise made from two stateless uniforms (Box-Muller)."""
    mu, sigma = model.encoder(x)
    u = tf.random.stateless_uniform(
        tf.concat([[2], tf.shape(mu)], 0), seed=seed, minval=1e-7, maxval=1.0
    )
    eps = tf.sqrt(-2.0 * tf.math.log(u[0])) * tf.cos(2.0 * math.pi * u[1])
    z = mu + sigma * eps
    q = tfd.Independent(tfd.Normal(mu, sigma), 1)
    return tf.reduce_sum(model.likelihood(z).log_prob(x)) - beta * tf.reduce_sum(
        tfd.kl_divergence(q, model.prior())
    )


def be_tfd_normal_per_dimension(model, x, seed, beta):
    """tfd.Normal and tfd.Bernoulli without Independent, summed by hand; beta as a tensor."""
    mu, sigma = model.encoder(x)
    q = tfd.Normal(mu, sigma)
    z = q.sample(seed=seed)
    log_lik = tfd.Bernoulli(logits=model.decoder(z)).log_prob(x)  # [batch, 28, 28, 1]
    kl = tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))  # [batch, latent]
    beta = tf.convert_to_tensor(beta, dtype=kl.dtype)
    return tf.reduce_sum(log_lik) - beta * tf.reduce_sum(kl)


def be_debug_prints(model, x, seed, beta):
    """A student's prints left in (they print once per trace inside tf.function)."""
    q = model.posterior(x)
    z = q.sample(seed=seed)
    print("z:", z.shape)
    log_lik = model.likelihood(z).log_prob(x)
    kl = tfd.kl_divergence(q, model.prior())
    print("terms:", log_lik.shape, kl.shape)
    return tf.reduce_sum(log_lik) - beta * tf.reduce_sum(kl)


def be_mc_kl_own_sample(model, x, seed, beta):
    """The KL by Monte Carlo on a second sample of its own (the seed split in two)."""
    q = model.posterior(x)
    seed_ll, seed_kl = tfp.random.split_seed(seed, n=2)
    z = q.sample(seed=seed_ll)
    z_kl = q.sample(seed=seed_kl)
    kl = q.log_prob(z_kl) - model.prior().log_prob(z_kl)
    return tf.reduce_sum(model.likelihood(z).log_prob(x)) - beta * tf.reduce_sum(kl)


def be_sticking_the_landing(model, x, seed, beta):
    """A Monte Carlo KL whose log q has its parameters cut from the gradient (Roeder et
    al., 2017): the same value, and a gradient that is still unbiased."""
    mu, sigma = model.encoder(x)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=seed)
    q_stopped = vae_prac.posterior(tf.stop_gradient(mu), tf.stop_gradient(sigma))
    kl = q_stopped.log_prob(z) - model.prior().log_prob(z)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


@tf.function
def be_compiled(model, x, seed, beta):
    """Decorated with tf.function by the student (traced again for each beta and model)."""
    q = model.posterior(x)
    z = q.sample(seed=seed)
    return tf.reduce_sum(
        model.likelihood(z).log_prob(x) - beta * tfd.kl_divergence(q, model.prior())
    )


def be_stop_gradient_z(model, x, seed, beta):
    q = model.posterior(x)
    z = tf.stop_gradient(q.sample(seed=seed))
    kl = tfd.kl_divergence(q, model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def be_stop_gradient_mu_in_z(model, x, seed, beta):
    mu, sigma = model.encoder(x)
    z = tf.stop_gradient(mu) + sigma * tf.random.stateless_normal(tf.shape(mu), seed=seed)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def be_stop_gradient_kl(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll - beta * tf.stop_gradient(kl))


def be_kl_of_stopped_mu(model, x, seed, beta):
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    kl = tfd.kl_divergence(vae_prac.posterior(tf.stop_gradient(mu), sigma), model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def _with_noise(model, x, beta, eps, scale=lambda sigma: sigma):
    mu, sigma = model.encoder(x)
    z = mu + scale(sigma) * eps
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma), model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def be_noise_shared_by_images(model, x, seed, beta):
    eps = tf.random.stateless_normal([1, model.latent_dim], seed=seed)
    return _with_noise(model, x, beta, eps)


def be_noise_shared_by_dimensions(model, x, seed, beta):
    eps = tf.random.stateless_normal([x.shape[0], 1], seed=seed)
    return _with_noise(model, x, beta, eps)


def be_numpy_noise_from_seed(model, x, seed, beta):
    """NumPy noise seeded from seed: reproducible eagerly, impossible inside tf.function."""
    rng = np.random.default_rng(np.asarray(seed))
    eps = rng.standard_normal((x.shape[0], model.latent_dim)).astype(np.float32)
    return _with_noise(model, x, beta, eps)


def be_global_noise(model, x, seed, beta):
    eps = tf.random.normal([x.shape[0], model.latent_dim])
    return _with_noise(model, x, beta, eps)


def be_uniform_noise(model, x, seed, beta):
    """Noise of mean 0 and variance 1, but uniform, not normal."""
    eps = tf.random.stateless_uniform(
        [x.shape[0], model.latent_dim], seed=seed, minval=-math.sqrt(3.0), maxval=math.sqrt(3.0)
    )
    return _with_noise(model, x, beta, eps)


def be_sigma_squared_in_z(model, x, seed, beta):
    eps = tf.random.stateless_normal([x.shape[0], model.latent_dim], seed=seed)
    return _with_noise(model, x, beta, eps, scale=tf.square)


def be_sigma_squared_in_kl(model, x, seed, beta):
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    kl = tfd.kl_divergence(vae_prac.posterior(mu, sigma**2), model.prior())
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def be_beta_on_both(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return beta * tf.reduce_sum(ll - kl)


def be_pixel_mean(model, x, seed, beta):
    q = model.posterior(x)
    z = q.sample(seed=seed)
    log_lik = tf.reduce_mean(tfd.Bernoulli(logits=model.decoder(z)).log_prob(x), axis=[1, 2, 3])
    return tf.reduce_sum(log_lik - beta * tfd.kl_divergence(q, model.prior()))


def be_latent_mean(model, x, seed, beta):
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    kl = tf.reduce_mean(0.5 * (mu**2 + sigma**2 - 1.0) - tf.math.log(sigma), axis=-1)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def be_half_log_sigma(model, x, seed, beta):
    """The closed-form KL with log sigma where log sigma^2 belongs."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    kl = 0.5 * tf.reduce_sum(mu**2 + sigma**2 - 1.0 - tf.math.log(sigma), axis=-1)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * kl)


def be_biased_monte_carlo_kl(model, x, seed, beta):
    """Gaussian log densities by hand, without the 1/2 of the square: a biased KL."""
    mu, sigma = model.encoder(x)
    eps = tf.random.stateless_normal(tf.shape(mu), seed=seed)
    z = mu + sigma * eps
    log_q = tf.reduce_sum(-tf.math.log(sigma) - tf.square(eps), axis=-1)
    log_p = tf.reduce_sum(-tf.square(z), axis=-1)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - beta * (log_q - log_p))


def be_kl_per_dimension_broadcast(model, x, seed, beta):
    """The log-likelihood keeps the channel axis, [batch, 1], and the KL is left per
    latent dimension, [batch, latent]: their difference broadcasts to [batch, latent]."""
    mu, sigma = model.encoder(x)
    q = tfd.Normal(mu, sigma)
    z = q.sample(seed=seed)
    log_lik = tf.reduce_sum(tfd.Bernoulli(logits=model.decoder(z)).log_prob(x), axis=[1, 2])
    kl = tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))
    return tf.reduce_sum(log_lik - beta * kl)


def be_likelihood_batch_mean(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_mean(ll) - beta * tf.reduce_sum(kl)


def be_float64_result(model, x, seed, beta):
    """The same computation in float64, returned as float64 (train() sums float32)."""
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(
        tf.cast(ll, tf.float64) - tf.cast(beta, tf.float64) * tf.cast(kl, tf.float64)
    )


def be_python_float(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return float(tf.reduce_sum(ll - beta * kl))


def be_numpy_value(model, x, seed, beta):
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll - beta * kl).numpy()


def be_beta_renamed(model, x, seed, weight):
    """beta under another name: functools.partial(fn, beta=...) cannot pass it."""
    ll, kl, _ = _terms(model, x, seed)
    return tf.reduce_sum(ll - weight * kl)


def _be_downstream(fn):
    """Cell 17: train with functools.partial(fn, beta=...), a number and a warm-up Variable."""
    images = (np.random.default_rng(0).random((256, 28, 28)) * 255).astype(np.uint8)
    config = Config(
        latent_dim=4, hidden_size=16, n_iterations=20, print_every=20, log_every=10, n_eval=16
    )
    vae_prac.train(
        config,
        train_images=images,
        progress=False,
        verbose=False,
        batch_elbo=functools.partial(fn, beta=2.0),
    )
    beta = tf.Variable(0.0, trainable=False)

    def warmup_step(model, optimizer, batch_elbo, x, seed):
        beta.assign(tf.minimum(1.0, tf.cast(optimizer.iterations, tf.float32) / 10.0))
        return gradient_step(model, optimizer, batch_elbo, x, seed)

    result = vae_prac.train(
        config,
        train_images=images,
        progress=False,
        verbose=False,
        batch_elbo=functools.partial(fn, beta=beta),
        train_step=warmup_step,
    )
    assert result.iteration == 20 and float(beta.numpy()) == 1.0


BETA_ELBO = Exercise(
    name="beta_elbo",
    check=beyond.beta_elbo,
    correct={
        "reparameterize_closed_form": be_reparameterize,
        "monte_carlo_kl": be_monte_carlo_kl,
        "keras_ops_by_hand": be_keras_ops_by_hand,
        "library_elbo_terms": be_library_terms,
        "mvn_diag_two_samples": be_mvn_diag_two_samples,
        "float64_hand_softplus": be_float64_hand_softplus,
        "box_muller": be_box_muller,
        "tfd_normal_per_dimension": be_tfd_normal_per_dimension,
        "debug_prints": be_debug_prints,
        "monte_carlo_kl_own_sample": be_mc_kl_own_sample,
        "sticking_the_landing": be_sticking_the_landing,
        "compiled_with_tf_function": be_compiled,
    },
    mistakes={
        "beta_on_likelihood": Mistake(be_beta_on_likelihood, r"multiplies the log-likelihood"),
        "beta_on_both_terms": Mistake(be_beta_on_both, r"whole objective"),
        "plus_kl": Mistake(be_plus_kl, r"wrong sign"),
        "mean_over_batch": Mistake(be_mean_over_batch, r"average over the 8 images"),
        "kl_mean_over_batch": Mistake(be_kl_mean, r"KL term is averaged over the batch"),
        "likelihood_mean_over_batch": Mistake(
            be_likelihood_batch_mean, r"log-likelihood term is averaged over the batch"
        ),
        "pixel_mean": Mistake(be_pixel_mean, r"averaged over the pixels"),
        "latent_mean": Mistake(be_latent_mean, r"averaged over the latent dimensions"),
        "kl_per_dimension_broadcast": Mistake(
            be_kl_per_dimension_broadcast, r"once per latent dimension"
        ),
        "reverse_kl": Mistake(be_reverse_kl, r"other way round"),
        "half_log_sigma": Mistake(be_half_log_sigma, r"log sigma\^2"),
        "sigma_squared_in_z": Mistake(be_sigma_squared_in_z, r"sigma squared|variance"),
        "sigma_squared_in_kl": Mistake(be_sigma_squared_in_kl, r"sigma squared|variance"),
        "biased_monte_carlo_kl": Mistake(be_biased_monte_carlo_kl, r"the KL is biased"),
        "beta_ignored": Mistake(be_beta_ignored, r"beta must multiply the KL"),
        "beta_squared": Mistake(be_beta_squared, r"not linear in beta"),
        "divided_by_beta": Mistake(be_divided_by_beta, r"division by beta"),
        "per_image": Mistake(be_per_image, r"one value per image"),
        "unseeded": Mistake(be_unseeded, r"same seed gave different values"),
        "global_noise": Mistake(be_global_noise, r"same seed gave different values"),
        "numpy_noise_from_seed": Mistake(be_numpy_noise_from_seed, r"inside tf\.function"),
        "mean_of_q": Mistake(be_mean_of_q, r"not a sample"),
        "noise_shared_by_images": Mistake(be_noise_shared_by_images, r"every image"),
        "noise_shared_by_dimensions": Mistake(
            be_noise_shared_by_dimensions, r"every latent dimension"
        ),
        "uniform_noise": Mistake(be_uniform_noise, r"standard normal"),
        "stop_gradient_z": Mistake(be_stop_gradient_z, r"z is cut from mu and sigma"),
        "stop_gradient_mu_in_z": Mistake(
            be_stop_gradient_mu_in_z, r"z must be a differentiable function"
        ),
        "stop_gradient_kl": Mistake(be_stop_gradient_kl, r"KL is cut from the gradient"),
        "kl_of_stopped_mu": Mistake(be_kl_of_stopped_mu, r"part of the KL is cut"),
        "numpy_beta": Mistake(be_numpy_beta, r"tf\.Variable"),
        "likelihood_through_numpy": Mistake(
            be_likelihood_through_numpy, r"no gradient reaches the decoder"
        ),
        "float64_result": Mistake(be_float64_result, r"float64 tensor.*float32"),
        "python_float": Mistake(be_python_float, r"Python float, not a TensorFlow tensor"),
        "numpy_value": Mistake(be_numpy_value, r"NumPy float32 number, not a TensorFlow tensor"),
        "beta_renamed": Mistake(be_beta_renamed, r"signature"),
    },
    give_away=("beta * kl", "beta * tfd.kl_divergence", "- beta *"),
    downstream=_be_downstream,
)


# ---------------------------------------------------------------------------------------
# A convolutional encoder and decoder.


def _split(params, latent_dim, positive=keras.ops.softplus):
    return params[:, :latent_dim], 1e-6 + positive(params[:, latent_dim:])


def _conv_decoder(latent_dim, last_activation=None, start=7, out_channels=1, flat=False):
    z = keras.Input(shape=(latent_dim,))
    h = keras.layers.Dense(start * start * 16, activation="relu")(z)
    h = keras.layers.Reshape((start, start, 16))(h)
    h = keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(h)
    logits = keras.layers.Conv2D(out_channels, 3, padding="same", activation=last_activation)(h)
    if flat:
        logits = keras.layers.Flatten()(logits)
    return keras.Model(z, logits)


def _conv_encoder(latent_dim, positive=keras.ops.softplus, concatenated=False):
    x = keras.Input(shape=(28, 28, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    h = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(h)
    params = keras.layers.Dense(2 * latent_dim)(keras.layers.Flatten()(h))
    if concatenated:
        return keras.Model(x, params)
    return keras.Model(x, list(_split(params, latent_dim, positive)))


def cn_sequential_trunk(latent_dim):
    """A Sequential trunk with two Dense heads; a Sequential decoder with UpSampling2D."""
    trunk = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Flatten(),
        ]
    )
    x = keras.Input(shape=(28, 28, 1))
    h = trunk(x)
    mu = keras.layers.Dense(latent_dim)(h)
    sigma = keras.layers.Dense(latent_dim, activation="softplus")(h)
    encoder = keras.Model(x, [mu, keras.layers.Lambda(lambda s: s + 1e-6)(sigma)])
    decoder = keras.Sequential(
        [
            keras.Input(shape=(latent_dim,)),
            keras.layers.Dense(7 * 7 * 16, activation="relu"),
            keras.layers.Reshape((7, 7, 16)),
            keras.layers.UpSampling2D(2),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.UpSampling2D(2),
            keras.layers.Conv2D(1, 3, padding="same"),
        ]
    )
    return encoder, decoder


class ConvEncoder(keras.Model):
    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.conv1 = keras.layers.Conv2D(8, 3, padding="valid", activation="relu")  # 26
        self.pool = keras.layers.MaxPooling2D(2)  # 13
        self.conv2 = keras.layers.Conv2D(16, 3, padding="valid", activation="relu")  # 11
        self.flatten = keras.layers.Flatten()
        self.mu = keras.layers.Dense(latent_dim)
        self.log_sigma = keras.layers.Dense(latent_dim)

    def call(self, x):
        h = self.flatten(self.conv2(self.pool(self.conv1(x))))
        return self.mu(h), keras.ops.exp(self.log_sigma(h))


class ConvDecoder(keras.Model):
    def __init__(self, latent_dim):
        super().__init__()
        self.dense = keras.layers.Dense(7 * 7 * 8, activation="relu")
        self.up1 = keras.layers.Conv2DTranspose(8, 4, strides=2, padding="same", activation="relu")
        self.up2 = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same")

    def call(self, z):
        h = keras.ops.reshape(self.dense(z), (-1, 7, 7, 8))
        return self.up2(self.up1(h))


def cn_subclassed(latent_dim):
    """Subclassed models: valid convolutions and pooling; exp of a log-sigma."""
    return ConvEncoder(latent_dim), ConvDecoder(latent_dim)


def cn_conv_only_at_the_end(latent_dim):
    """An encoder with convolutions; a decoder that is dense, then one convolution."""
    z = keras.Input(shape=(latent_dim,))
    h = keras.layers.Dense(256, activation="relu")(z)
    h = keras.layers.Reshape((28, 28, 1))(keras.layers.Dense(784, activation="relu")(h))
    logits = keras.layers.Conv2D(1, 5, padding="same")(h)
    return _conv_encoder(latent_dim), keras.Model(z, logits)


def cn_functional_small(latent_dim):
    return _conv_encoder(latent_dim), _conv_decoder(latent_dim)


def cn_no_softplus(latent_dim):
    return _conv_encoder(latent_dim, positive=lambda s: s), _conv_decoder(latent_dim)


def cn_sigmoid_output(latent_dim):
    return _conv_encoder(latent_dim), _conv_decoder(latent_dim, last_activation="sigmoid")


def cn_relu_output(latent_dim):
    return _conv_encoder(latent_dim), _conv_decoder(latent_dim, last_activation="relu")


def cn_flat_output(latent_dim):
    return _conv_encoder(latent_dim), _conv_decoder(latent_dim, flat=True)


def cn_no_channel_axis(latent_dim):
    dec = _conv_decoder(latent_dim)
    out = keras.layers.Reshape((28, 28))(dec.outputs[0])
    return _conv_encoder(latent_dim), keras.Model(dec.inputs, out)


def cn_32_pixels(latent_dim):
    return _conv_encoder(latent_dim), _conv_decoder(latent_dim, start=8)


def cn_latent_hard_coded(latent_dim):
    return _conv_encoder(16), _conv_decoder(16)


def cn_concatenated(latent_dim):
    return _conv_encoder(latent_dim, concatenated=True), _conv_decoder(latent_dim)


def cn_no_convolution(latent_dim):
    model = VAE(latent_dim, hidden_size=32)
    return model.encoder, model.decoder


def cn_swapped(latent_dim):
    return _conv_decoder(latent_dim), _conv_encoder(latent_dim)


def cn_single_model(latent_dim):
    return _conv_encoder(latent_dim)


def cn_no_return(latent_dim):
    _conv_encoder(latent_dim), _conv_decoder(latent_dim)


def _encoder_trunk():
    x = keras.Input(shape=(28, 28, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    h = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(h)
    return x, keras.layers.Flatten()(h)


def _encoder_from_params(latent_dim, mu_of, sigma_of, **dense):
    """An encoder whose last Dense layer gives params; mu and sigma computed from them."""
    x, h = _encoder_trunk()
    params = keras.layers.Dense(2 * latent_dim, **dense)(h)
    return keras.Model(x, [mu_of(params, latent_dim), sigma_of(params, latent_dim)])


def _mu(params, d):
    return params[:, :d]


def _sigma(params, d):
    return 1e-6 + keras.ops.softplus(params[:, d:])


def _zero_decoder(latent_dim, last_activation=None):
    dec = _conv_decoder(latent_dim)
    h = dec.layers[-2].output
    logits = keras.layers.Conv2D(
        1,
        3,
        padding="same",
        activation=last_activation,
        kernel_initializer="zeros",
        bias_initializer="zeros",
    )(h)
    return keras.Model(dec.inputs, logits)


def cn_zero_initialised_last_layers(latent_dim):
    """Both last layers start at zero: at first mu = 0, sigma = softplus(0), logits = 0."""
    encoder = _encoder_from_params(
        latent_dim, _mu, _sigma, kernel_initializer="zeros", bias_initializer="zeros"
    )
    return encoder, _zero_decoder(latent_dim)


def cn_two_heads_log_variance(latent_dim):
    """Two Dense heads, mu and a log-variance, sigma = exp(log_var / 2); a decoder whose
    last layer is a transposed convolution to one channel."""
    x, h = _encoder_trunk()
    mu = keras.layers.Dense(latent_dim, name="mu")(h)
    log_var = keras.layers.Dense(latent_dim, name="log_var")(h)
    encoder = keras.Model(x, [mu, keras.ops.exp(0.5 * log_var)])
    decoder = keras.Sequential(
        [
            keras.Input(shape=(latent_dim,)),
            keras.layers.Dense(7 * 7 * 16, activation="relu"),
            keras.layers.Reshape((7, 7, 16)),
            keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same"),
        ]
    )
    return encoder, decoder


class HandSoftplusEncoder(keras.Model):
    """tf operations in call, a softplus written out, and a debug print."""

    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.convs = [
            keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        ]
        self.params = keras.layers.Dense(2 * latent_dim)

    def call(self, x):
        h = x
        for conv in self.convs:
            h = conv(h)
        params = self.params(tf.reshape(h, [-1, 7 * 7 * 16]))
        print("encoder params:", params.shape)
        mu, a = tf.split(params, 2, axis=-1)
        softplus = tf.maximum(a, 0.0) + tf.math.log1p(tf.exp(-tf.abs(a)))
        return mu, softplus + 1e-6


class PerPixelDenseDecoder(keras.Model):
    """Upsampling and convolutions; the last layer a Dense of one unit on every pixel."""

    def __init__(self, latent_dim):
        super().__init__()
        self.dense = keras.layers.Dense(7 * 7 * 8, activation="relu")
        self.up = keras.layers.UpSampling2D(4)
        self.conv = keras.layers.Conv2D(8, 3, padding="same", activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, z):
        h = keras.ops.reshape(self.dense(z), (-1, 7, 7, 8))
        return self.out(self.conv(self.up(h)))


def cn_subclassed_hand_softplus(latent_dim):
    return HandSoftplusEncoder(latent_dim), PerPixelDenseDecoder(latent_dim)


def cn_batchnorm_dense_784_end(latent_dim):
    """Batch normalisation and dropout in the encoder; a decoder ending in Dense(784)."""
    x = keras.Input(shape=(28, 28, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    h = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(h))
    h = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Dropout(0.1)(keras.layers.Flatten()(h))
    params = keras.layers.Dense(2 * latent_dim)(h)
    encoder = keras.Model(x, [_mu(params, latent_dim), _sigma(params, latent_dim)])
    z = keras.Input(shape=(latent_dim,))
    h = keras.layers.Reshape((7, 7, 8))(keras.layers.Dense(7 * 7 * 8, activation="relu")(z))
    h = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(h)
    logits = keras.layers.Dense(784)(keras.layers.Flatten()(h))
    decoder = keras.Model(z, keras.layers.Reshape((28, 28, 1))(logits))
    return encoder, decoder


def cn_sigma_from_mu_half(latent_dim):
    sigma_of_mu_half = lambda p, d: 1e-6 + keras.ops.softplus(p[:, :d])  # noqa: E731
    return _encoder_from_params(latent_dim, _mu, sigma_of_mu_half), _conv_decoder(latent_dim)


def cn_relu_on_params(latent_dim):
    """A ReLU on the layer that gives mu and sigma: mu >= 0, sigma >= log 2."""
    return _encoder_from_params(latent_dim, _mu, _sigma, activation="relu"), _conv_decoder(
        latent_dim
    )


def cn_relu_on_params_zero_init(latent_dim):
    return (
        _encoder_from_params(
            latent_dim, _mu, _sigma, activation="relu", kernel_initializer="zeros"
        ),
        _conv_decoder(latent_dim),
    )


def cn_swapped_halves(latent_dim):
    return (
        _encoder_from_params(
            latent_dim, lambda p, d: p[:, d:], lambda p, d: 1e-6 + keras.ops.softplus(p[:, :d])
        ),
        _conv_decoder(latent_dim),
    )


def cn_mu_tanh(latent_dim):
    return (
        _encoder_from_params(latent_dim, lambda p, d: keras.ops.tanh(p[:, :d]), _sigma),
        _conv_decoder(latent_dim),
    )


def cn_sigma_relu(latent_dim):
    return (
        _encoder_from_params(latent_dim, _mu, lambda p, d: 1e-6 + keras.ops.relu(p[:, d:])),
        _conv_decoder(latent_dim),
    )


def cn_sigma_head_relu(latent_dim):
    """Two heads; sigma's has a ReLU before the softplus (so sigma >= log 2)."""
    x, h = _encoder_trunk()
    mu = keras.layers.Dense(latent_dim)(h)
    pre = keras.layers.Dense(latent_dim, activation="relu")(h)
    return keras.Model(x, [mu, 1e-6 + keras.ops.softplus(pre)]), _conv_decoder(latent_dim)


def cn_sigma_of_mu_one_head(latent_dim):
    """One Dense of latent_dim units; sigma computed from mu itself."""
    x, h = _encoder_trunk()
    mu = keras.layers.Dense(latent_dim)(h)
    return keras.Model(x, [mu, 1e-6 + keras.ops.softplus(mu)]), _conv_decoder(latent_dim)


def cn_tanh_output(latent_dim):
    return _conv_encoder(latent_dim), _conv_decoder(latent_dim, last_activation="tanh")


def cn_log_sigmoid_output(latent_dim):
    return _conv_encoder(latent_dim), _conv_decoder(latent_dim, last_activation="log_sigmoid")


def cn_sigmoid_zero_init(latent_dim):
    """A sigmoid at the end of a last layer that starts at zero: 0.5 everywhere at first."""
    return _conv_encoder(latent_dim), _zero_decoder(latent_dim, last_activation="sigmoid")


def cn_decoder_ignores_z(latent_dim):
    z = keras.Input(shape=(latent_dim,))
    h = keras.layers.Dense(7 * 7 * 16, activation="relu")(0.0 * z)
    h = keras.layers.Reshape((7, 7, 16))(h)
    h = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(h)
    logits = keras.layers.Conv2D(1, 3, padding="same")(h)
    return _conv_encoder(latent_dim), keras.Model(z, logits)


def _cn_downstream(fn):
    """Cells 29-30: VAE(32, encoder=..., decoder=...) trains with vae_prac.train."""
    images = (np.random.default_rng(0).random((256, 28, 28)) * 255).astype(np.uint8)
    encoder, decoder = fn(8)
    config = Config(latent_dim=8, n_iterations=10, print_every=10, log_every=10, n_eval=16)
    result = vae_prac.train(
        config,
        model=VAE(8, encoder=encoder, decoder=decoder),
        train_images=images,
        progress=False,
        verbose=False,
    )
    assert np.isfinite(result.history.test_elbo[-1])


CONV_NETWORKS = Exercise(
    name="conv_networks",
    check=beyond.conv_networks,
    correct={
        "sequential_trunk_upsampling": cn_sequential_trunk,
        "subclassed_exp_log_sigma": cn_subclassed,
        "conv_only_at_the_end": cn_conv_only_at_the_end,
        "functional_small": cn_functional_small,
        "zero_initialised_last_layers": cn_zero_initialised_last_layers,
        "two_heads_log_variance_transposed_end": cn_two_heads_log_variance,
        "subclassed_hand_softplus_per_pixel_dense": cn_subclassed_hand_softplus,
        "batchnorm_dense_784_end": cn_batchnorm_dense_784_end,
    },
    mistakes={
        "sigma_not_positive": Mistake(cn_no_softplus, r"must be positive"),
        "sigmoid_output": Mistake(cn_sigmoid_output, r"probabilities"),
        "relu_output": Mistake(cn_relu_output, r"never negative"),
        "flat_output": Mistake(cn_flat_output, r"28, 28, 1"),
        "no_channel_axis": Mistake(cn_no_channel_axis, r"28, 28, 1"),
        "32_pixels": Mistake(cn_32_pixels, r"start from 7x7"),
        "latent_dim_hard_coded": Mistake(cn_latent_hard_coded, r"latent_dim argument"),
        "concatenated_mu_sigma": Mistake(
            cn_concatenated, r"one tensor of shape \[5, 12\], not two"
        ),
        "no_convolution": Mistake(cn_no_convolution, r"no convolution"),
        "swapped": Mistake(cn_swapped, r"swapped"),
        "single_model": Mistake(cn_single_model, r"return two networks"),
        "no_return": Mistake(cn_no_return, r"return two networks"),
        "sigma_from_mu_half": Mistake(cn_sigma_from_mu_half, r"the ones that give mu"),
        "relu_on_params": Mistake(cn_relu_on_params, r"ReLU.*log 2"),
        "relu_on_params_zero_init": Mistake(cn_relu_on_params_zero_init, r"ReLU.*log 2"),
        "swapped_halves": Mistake(cn_swapped_halves, r"mu and sigma are swapped"),
        "mu_tanh": Mistake(cn_mu_tanh, r"mu goes through a tanh"),
        "sigma_relu": Mistake(cn_sigma_relu, r"sigma uses a ReLU"),
        "sigma_head_relu": Mistake(cn_sigma_head_relu, r"ReLU before the softplus"),
        "sigma_of_mu_one_head": Mistake(cn_sigma_of_mu_one_head, r"sigma is computed from mu"),
        "tanh_output": Mistake(cn_tanh_output, r"tanh.*0\.27 and 0\.73"),
        "log_sigmoid_output": Mistake(cn_log_sigmoid_output, r"log-probabilities"),
        "sigmoid_zero_init": Mistake(cn_sigmoid_zero_init, r"probabilities"),
        "decoder_ignores_z": Mistake(cn_decoder_ignores_z, r"must depend on z"),
    },
    give_away=("Conv2DTranspose(32, 3, strides=2", "Reshape((7, 7"),
    downstream=_cn_downstream,
)


EXERCISES = [BETA_ELBO, CONV_NETWORKS]
