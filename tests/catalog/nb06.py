"""Notebook 06 (doing better): the importance-weighted bound L_k."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import vae_prac
from vae_prac.checks import evaluation
from vae_prac.model import VAE

from catalog import Exercise, Mistake

tfd = tfp.distributions


def _log_w(model, x, k, seed):
    """The solution's log weights [k, batch], for writing mistakes that combine them."""
    q = model.posterior(x)
    z = q.sample(k, seed=seed)
    return model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)


def _log_terms(model, x, k, seed):
    q = model.posterior(x)
    z = q.sample(k, seed=seed)
    return model.likelihood(z).log_prob(x), model.prior().log_prob(z), q.log_prob(z)


# Correct answers, in styles other than the solution's.

def iw_tfd_by_hand(model, x, k, seed):
    """Elementwise tfd.Normal densities summed over the latent axis by hand."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, n_samples=k, seed=seed)      # [k, batch, d]
    log_q = tf.reduce_sum(tfd.Normal(mu, sigma).log_prob(z), axis=-1)
    log_p = tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(z), axis=-1)
    log_lik = tf.reduce_sum(tfd.Bernoulli(logits=model.decoder(tf.reshape(z, [-1, z.shape[-1]])))
                            .log_prob(tf.tile(x, [k, 1, 1, 1])), axis=[1, 2, 3])
    log_w = tf.reshape(log_lik, [k, -1]) + log_p - log_q
    return tf.math.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(k, tf.float32))


def iw_keras_ops(model, x, k, seed):
    ops = keras.ops
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, n_samples=k, seed=seed)
    if k == 1:                                   # reparameterize adds no axis for one sample
        z = z[None]
    logits = model.decoder(ops.reshape(z, (-1, z.shape[-1])))
    logits = ops.reshape(logits, (k, -1, 28, 28, 1))
    log_lik = ops.sum(x * logits - ops.softplus(logits), axis=(2, 3, 4))
    log_p = -0.5 * ops.sum(z**2 + math.log(2 * math.pi), axis=-1)
    log_q = ops.sum(-0.5 * ((z - mu) / sigma) ** 2 - ops.log(sigma)
                    - 0.5 * math.log(2 * math.pi), axis=-1)
    return ops.logsumexp(log_lik + log_p - log_q, axis=0) - ops.log(float(k))


def iw_manual_max_shift(model, x, k, seed):
    """A numerically careful logsumexp written out: shift by the max first."""
    log_w = _log_w(model, x, k, seed)
    top = tf.reduce_max(log_w, axis=0)
    return top + tf.math.log(tf.reduce_mean(tf.exp(log_w - top), axis=0))


def iw_numpy_combination(model, x, k, seed):
    """Log weights from TensorFlow, combined in NumPy (scipy-style logsumexp)."""
    log_w = _log_w(model, x, k, seed).numpy().astype(np.float64)
    top = log_w.max(axis=0)
    return top + np.log(np.exp(log_w - top).sum(axis=0)) - np.log(k)


def iw_mvn_diag(model, x, k, seed):
    """tfd.MultivariateNormalDiag: the samples come from the seed in another way."""
    mu, sigma = model.encoder(x)
    q = tfd.MultivariateNormalDiag(mu, sigma)
    p = tfd.MultivariateNormalDiag(tf.zeros_like(mu[0]), tf.ones_like(mu[0]))
    z = q.sample(k, seed=seed)
    log_w = model.likelihood(z).log_prob(x) + p.log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def iw_own_stateless_noise(model, x, k, seed):
    """Its own stateless noise from a derived seed, laid out [batch, k, d]."""
    mu, sigma = model.encoder(x)
    q = vae_prac.posterior(mu, sigma)
    eps = tf.random.stateless_normal([x.shape[0], k, mu.shape[-1]],
                                     seed=tf.random.experimental.stateless_fold_in(seed, 9))
    z = tf.transpose(mu[:, None] + sigma[:, None] * eps, [1, 0, 2])       # [k, batch, d]
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - np.log(k)


def iw_loop_over_samples(model, x, k, seed):
    """One sample at a time, each from its own seed, combined with logaddexp."""
    q = model.posterior(x)
    seeds = tf.random.experimental.stateless_split(seed, num=k)
    total = None
    for i in range(k):
        z = q.sample(seed=seeds[i])
        log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
        total = log_w if total is None else tf.experimental.numpy.logaddexp(total, log_w)
    return total - math.log(k)


# Mistakes.

def iw_no_log_k(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0)


def iw_log_k_added(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0) + math.log(k)


def iw_mean_of_log_weights(model, x, k, seed):
    return tf.reduce_mean(_log_w(model, x, k, seed), axis=0)


def iw_max(model, x, k, seed):
    return tf.reduce_max(_log_w(model, x, k, seed), axis=0)


def iw_exp_then_log(model, x, k, seed):
    return tf.math.log(tf.reduce_mean(tf.exp(_log_w(model, x, k, seed)), axis=0))


def iw_sum_over_batch(model, x, k, seed):
    return tf.reduce_sum(tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0) - math.log(k))


def iw_wrong_axis(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=1) - math.log(k)


def iw_no_log_q(model, x, k, seed):
    ll, lp, _ = _log_terms(model, x, k, seed)
    return tf.reduce_logsumexp(ll + lp, axis=0) - math.log(k)


def iw_no_prior(model, x, k, seed):
    ll, _, lq = _log_terms(model, x, k, seed)
    return tf.reduce_logsumexp(ll - lq, axis=0) - math.log(k)


def iw_returns_log_weights(model, x, k, seed):
    return _log_w(model, x, k, seed)


def iw_k_ignored(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, 10, seed), axis=0) - math.log(10)


def iw_k_fixed_samples(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, 10, seed), axis=0) - math.log(k)


def iw_mean_of_q(model, x, k, seed):
    q = model.posterior(x)
    z = tf.repeat(q.mean()[None], k, axis=0)
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def iw_unseeded(model, x, k, seed):
    q = model.posterior(x)
    z = q.sample(k)
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def iw_no_log_k_other_noise(model, x, k, seed):
    """No -log k, with samples the check cannot reproduce: caught on average."""
    return iw_mvn_diag(model, x, k, seed) + math.log(k)


def iw_elbo_other_noise(model, x, k, seed):
    mu, sigma = model.encoder(x)
    q = tfd.MultivariateNormalDiag(mu, sigma)
    z = q.sample(k, seed=seed)
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_mean(log_w, axis=0)


def iw_squeezed_samples(model, x, k, seed):
    """tf.squeeze drops the sample axis when k = 1."""
    log_w = tf.squeeze(_log_w(model, x, k, seed))
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def iw_no_return(model, x, k, seed):
    tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0) - math.log(k)


def _iw_downstream(fn):
    """Cell 13: mean_iw_bound with tf.constant seeds, k = 1, 5, 50, 500, 50 images a time."""
    keras.utils.set_random_seed(3)
    model = VAE(latent_dim=4, hidden_size=16)
    x_test = (np.random.default_rng(3).random((100, 28, 28, 1)) < 0.2).astype(np.float32)
    iw_bound = fn

    def mean_iw_bound(model, x, k, batch=50):
        values = [iw_bound(model, x[i:i + batch], k, tf.constant([k, i]))
                  for i in range(0, len(x), batch)]
        return float(np.mean(np.concatenate(values)))

    bounds = [mean_iw_bound(model, x_test, k) for k in [1, 5, 50, 500]]
    assert np.all(np.isfinite(bounds)), bounds
    assert bounds[0] < bounds[-1], bounds


IW_BOUND = Exercise(
    name="iw_bound",
    check=evaluation.iw_bound,
    correct={
        "tfd_by_hand": iw_tfd_by_hand,
        "keras_ops_logsumexp": iw_keras_ops,
        "manual_max_shift": iw_manual_max_shift,
        "numpy_combination": iw_numpy_combination,
        "mvn_diag_other_noise": iw_mvn_diag,
        "own_stateless_noise": iw_own_stateless_noise,
        "loop_over_samples": iw_loop_over_samples,
    },
    mistakes={
        "no_minus_log_k": Mistake(iw_no_log_k, r"log\(k\) too high"),
        "no_minus_log_k_other_noise": Mistake(iw_no_log_k_other_noise, r"log\(k\) too high"),
        "log_k_added": Mistake(iw_log_k_added, r"log k was added"),
        "mean_of_log_weights": Mistake(iw_mean_of_log_weights, r"average of the log weights"),
        "mean_of_log_weights_other_noise": Mistake(iw_elbo_other_noise,
                                                   r"average of the log weights"),
        "max": Mistake(iw_max, r"largest log weight"),
        "exp_then_log": Mistake(iw_exp_then_log, r"underflow.*log space"),
        "sum_over_batch": Mistake(iw_sum_over_batch, r"single number"),
        "logsumexp_over_batch_axis": Mistake(iw_wrong_axis, r"combined the images"),
        "no_log_q": Mistake(iw_no_log_q, r"log q\(z\|x\) term is missing"),
        "no_prior": Mistake(iw_no_prior, r"log prior term .* missing"),
        "returns_log_weights": Mistake(iw_returns_log_weights, r"log weights themselves"),
        "k_ignored": Mistake(iw_k_ignored, r"k is ignored"),
        "k_fixed_samples": Mistake(iw_k_fixed_samples, r"does not follow k"),
        "mean_of_q": Mistake(iw_mean_of_q, r"mean of q"),
        "unseeded_samples": Mistake(iw_unseeded, r"same seed gave different values"),
        "squeezed_samples": Mistake(iw_squeezed_samples, r"k = 1"),
        "no_return": Mistake(iw_no_return, r"forget the `return`"),
    },
    give_away=("reduce_logsumexp(log_w", "q.sample(k, seed=seed)", "- tf.math.log(float(k))",
               "- math.log(k)"),
    downstream=_iw_downstream,
)


EXERCISES = [IW_BOUND]
