"""Notebook 07 (beyond the ELBO): L_k from log weights, the beta-weighted ELBO, and a
convolutional encoder and decoder."""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import vae_prac
from vae_prac import Config
from vae_prac.checks import beyond
from vae_prac.model import VAE
from vae_prac.training import gradient_step

from catalog import Exercise, Mistake

tfd = tfp.distributions


# ---------------------------------------------------------------------------------------
# L_k from log importance weights [k, batch].

def iw_keras_ops(log_w):
    return keras.ops.logsumexp(log_w, axis=0) - keras.ops.log(float(log_w.shape[0]))


def iw_tfp_logmeanexp(log_w):
    return tfp.math.reduce_logmeanexp(log_w, axis=0)


def iw_manual_max_shift(log_w):
    """A careful logsumexp written out: shift by the largest weight first."""
    top = tf.reduce_max(log_w, axis=0)
    return top + tf.math.log(tf.reduce_mean(tf.exp(log_w - top), axis=0))


def iw_numpy_float64(log_w):
    a = np.asarray(log_w, np.float64)
    top = a.max(axis=0)
    return top + np.log(np.exp(a - top).sum(axis=0)) - np.log(len(a))


def iw_logaddexp_loop(log_w):
    total = log_w[0]
    for i in range(1, log_w.shape[0]):
        total = tf.experimental.numpy.logaddexp(total, log_w[i])
    return total - math.log(log_w.shape[0])


def iw_mean_of_logs(log_w):
    return tf.reduce_mean(log_w, axis=0)


def iw_no_log_k(log_w):
    return tf.reduce_logsumexp(log_w, axis=0)


def iw_log_k_added(log_w):
    return tf.reduce_logsumexp(log_w, axis=0) + math.log(log_w.shape[0])


def iw_divided_by_k(log_w):
    return tf.reduce_logsumexp(log_w, axis=0) / log_w.shape[0]


def iw_log_batch(log_w):
    """The log of the wrong axis's length."""
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(log_w.shape[1])


def iw_wrong_axis(log_w):
    return tf.reduce_logsumexp(log_w, axis=1) - math.log(log_w.shape[1])


def iw_exp_then_log(log_w):
    return tf.math.log(tf.reduce_mean(tf.exp(log_w), axis=0))


def iw_sum_over_batch(log_w):
    return tf.reduce_sum(tf.reduce_logsumexp(log_w, axis=0) - math.log(log_w.shape[0]))


def iw_max(log_w):
    return tf.reduce_max(log_w, axis=0)


def iw_sum_of_logs(log_w):
    return tf.reduce_sum(log_w, axis=0)


def iw_returns_log_weights(log_w):
    return log_w - math.log(log_w.shape[0])


def iw_squeezed(log_w):
    """tf.squeeze drops the sample axis when k = 1."""
    log_w = tf.squeeze(log_w)
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(max(1, log_w.shape[0]))


def iw_k_hard_coded(log_w):
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(10)


def iw_no_return(log_w):
    tf.reduce_logsumexp(log_w, axis=0)


def _iw_downstream(fn):
    """Cell 7: L_100 from the log weights of a model, 100 images at a time."""
    keras.utils.set_random_seed(3)
    model = VAE(latent_dim=4, hidden_size=16)
    x = (np.random.default_rng(3).random((20, 28, 28, 1)) < 0.2).astype(np.float32)
    from vae_prac.elbo import log_importance_weights, log_mean_exp
    log_w = log_importance_weights(model, x, 100, seed=(1, 2))
    got = np.asarray(fn(log_w))
    assert got.shape == (20,)
    np.testing.assert_allclose(got, log_mean_exp(log_w).numpy(), rtol=1e-5, atol=1e-3)


IWAE_BOUND = Exercise(
    name="iwae_bound",
    check=beyond.iwae_bound,
    correct={
        "keras_ops_logsumexp": iw_keras_ops,
        "tfp_reduce_logmeanexp": iw_tfp_logmeanexp,
        "manual_max_shift": iw_manual_max_shift,
        "numpy_float64": iw_numpy_float64,
        "logaddexp_loop": iw_logaddexp_loop,
    },
    mistakes={
        "mean_of_log_weights": Mistake(iw_mean_of_logs, r"average of the log weights"),
        "no_minus_log_k": Mistake(iw_no_log_k, r"log\(k\) too high"),
        "log_k_added": Mistake(iw_log_k_added, r"log k was added"),
        "divided_by_k": Mistake(iw_divided_by_k, r"divided by k"),
        "log_of_batch_size": Mistake(iw_log_batch, r"batch size"),
        "logsumexp_over_batch_axis": Mistake(iw_wrong_axis, r"combined the images"),
        "exp_then_log": Mistake(iw_exp_then_log, r"underflow.*log space"),
        "sum_over_batch": Mistake(iw_sum_over_batch, r"single number"),
        "max": Mistake(iw_max, r"largest log weight"),
        "sum_of_log_weights": Mistake(iw_sum_of_logs, r"sum of the log weights"),
        "returns_log_weights": Mistake(iw_returns_log_weights, r"log weights' shape"),
        "squeezed_samples": Mistake(iw_squeezed, r"k = 1"),
        "k_hard_coded": Mistake(iw_k_hard_coded, r"average of its k = 7 weights"),
        "no_return": Mistake(iw_no_return, r"forget the `return`"),
    },
    give_away=("reduce_logsumexp(log_w", "- tf.math.log(k)", "axis=0) -"),
    downstream=_iw_downstream,
)


# ---------------------------------------------------------------------------------------
# The beta-weighted ELBO, summed over the batch.

def be_reparameterize(model, x, seed, beta):
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    q = vae_prac.posterior(mu, sigma)
    return tf.reduce_sum(model.likelihood(z).log_prob(x)
                         - beta * tfd.kl_divergence(q, model.prior()))


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
    kl = 0.5 * ops.sum(mu ** 2 + sigma ** 2 - 1.0 - 2.0 * ops.log(sigma), axis=-1)
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
    return tf.reduce_sum(ll - beta ** 2 * kl)


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
    return tf.reduce_sum(ll.numpy()) - beta * tf.reduce_sum(kl)      # .numpy() cuts the gradient


def _be_downstream(fn):
    """Cell 17: train with functools.partial(fn, beta=...), a number and a warm-up Variable."""
    images = (np.random.default_rng(0).random((256, 28, 28)) * 255).astype(np.uint8)
    config = Config(latent_dim=4, hidden_size=16, n_iterations=20, print_every=20,
                    log_every=10, n_eval=16)
    vae_prac.train(config, train_images=images, progress=False, verbose=False,
                   batch_elbo=functools.partial(fn, beta=2.0))
    beta = tf.Variable(0.0, trainable=False)

    def warmup_step(model, optimizer, batch_elbo, x, seed):
        beta.assign(tf.minimum(1.0, tf.cast(optimizer.iterations, tf.float32) / 10.0))
        return gradient_step(model, optimizer, batch_elbo, x, seed)

    result = vae_prac.train(config, train_images=images, progress=False, verbose=False,
                            batch_elbo=functools.partial(fn, beta=beta), train_step=warmup_step)
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
    },
    mistakes={
        "beta_on_likelihood": Mistake(be_beta_on_likelihood, r"multiply the log-likelihood"),
        "plus_kl": Mistake(be_plus_kl, r"wrong sign"),
        "mean_over_batch": Mistake(be_mean_over_batch, r"averaged over the batch"),
        "kl_mean_over_batch": Mistake(be_kl_mean, r"KL is averaged"),
        "reverse_kl": Mistake(be_reverse_kl, r"other way round"),
        "beta_ignored": Mistake(be_beta_ignored, r"beta must multiply the KL"),
        "beta_squared": Mistake(be_beta_squared, r"not linear in beta"),
        "divided_by_beta": Mistake(be_divided_by_beta, r"division by beta"),
        "per_image": Mistake(be_per_image, r"one value per image"),
        "unseeded": Mistake(be_unseeded, r"same seed gave different values"),
        "mean_of_q": Mistake(be_mean_of_q, r"every seed gave the same value"),
        "numpy_beta": Mistake(be_numpy_beta, r"tf\.Variable"),
        "likelihood_through_numpy": Mistake(be_likelihood_through_numpy,
                                            r"no gradient reaches the decoder"),
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
    trunk = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten()])
    x = keras.Input(shape=(28, 28, 1))
    h = trunk(x)
    mu = keras.layers.Dense(latent_dim)(h)
    sigma = keras.layers.Dense(latent_dim, activation="softplus")(h)
    encoder = keras.Model(x, [mu, keras.layers.Lambda(lambda s: s + 1e-6)(sigma)])
    decoder = keras.Sequential([
        keras.Input(shape=(latent_dim,)),
        keras.layers.Dense(7 * 7 * 16, activation="relu"),
        keras.layers.Reshape((7, 7, 16)),
        keras.layers.UpSampling2D(2),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.UpSampling2D(2),
        keras.layers.Conv2D(1, 3, padding="same")])
    return encoder, decoder


class ConvEncoder(keras.Model):
    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.conv1 = keras.layers.Conv2D(8, 3, padding="valid", activation="relu")   # 26
        self.pool = keras.layers.MaxPooling2D(2)                                     # 13
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


def _cn_downstream(fn):
    """Cells 29-30: VAE(32, encoder=..., decoder=...) trains with vae_prac.train."""
    images = (np.random.default_rng(0).random((256, 28, 28)) * 255).astype(np.uint8)
    encoder, decoder = fn(8)
    config = Config(latent_dim=8, n_iterations=10, print_every=10, log_every=10, n_eval=16)
    result = vae_prac.train(config, model=VAE(8, encoder=encoder, decoder=decoder),
                            train_images=images, progress=False, verbose=False)
    assert np.isfinite(result.history.test_elbo[-1])


CONV_NETWORKS = Exercise(
    name="conv_networks",
    check=beyond.conv_networks,
    correct={
        "sequential_trunk_upsampling": cn_sequential_trunk,
        "subclassed_exp_log_sigma": cn_subclassed,
        "conv_only_at_the_end": cn_conv_only_at_the_end,
        "functional_small": cn_functional_small,
    },
    mistakes={
        "sigma_not_positive": Mistake(cn_no_softplus, r"must be positive"),
        "sigmoid_output": Mistake(cn_sigmoid_output, r"probabilities"),
        "relu_output": Mistake(cn_relu_output, r"never negative"),
        "flat_output": Mistake(cn_flat_output, r"28, 28, 1"),
        "no_channel_axis": Mistake(cn_no_channel_axis, r"28, 28, 1"),
        "32_pixels": Mistake(cn_32_pixels, r"start from 7x7"),
        "latent_dim_hard_coded": Mistake(cn_latent_hard_coded, r"latent_dim argument"),
        "concatenated_mu_sigma": Mistake(cn_concatenated, r"not two tensors"),
        "no_convolution": Mistake(cn_no_convolution, r"no convolution"),
        "swapped": Mistake(cn_swapped, r"swapped"),
        "single_model": Mistake(cn_single_model, r"return two networks"),
        "no_return": Mistake(cn_no_return, r"return two networks"),
    },
    give_away=("Conv2DTranspose(32, 3, strides=2", "Reshape((7, 7"),
    downstream=_cn_downstream,
)


EXERCISES = [IWAE_BOUND, BETA_ELBO, CONV_NETWORKS]
