"""Notebook 06 (doing better): the importance-weighted bound L_k.

The check also runs every answer on a batch whose log weights differ by hundreds of nats
between images (as real digits' do): a logsumexp shifted by the whole batch's largest
log weight, or weights formed with exp in float64, pass an ordinary batch and fail there.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import vae_prac
from catalog import Exercise, Mistake
from vae_prac.checks import evaluation
from vae_prac.model import VAE

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
    z = vae_prac.reparameterize(mu, sigma, n_samples=k, seed=seed)  # [k, batch, d]
    log_q = tf.reduce_sum(tfd.Normal(mu, sigma).log_prob(z), axis=-1)
    log_p = tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(z), axis=-1)
    log_lik = tf.reduce_sum(
        tfd.Bernoulli(logits=model.decoder(tf.reshape(z, [-1, z.shape[-1]]))).log_prob(
            tf.tile(x, [k, 1, 1, 1])
        ),
        axis=[1, 2, 3],
    )
    log_w = tf.reshape(log_lik, [k, -1]) + log_p - log_q
    return tf.math.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(k, tf.float32))


def iw_keras_ops(model, x, k, seed):
    ops = keras.ops
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, n_samples=k, seed=seed)
    if k == 1:  # reparameterize adds no axis for one sample
        z = z[None]
    logits = model.decoder(ops.reshape(z, (-1, z.shape[-1])))
    logits = ops.reshape(logits, (k, -1, 28, 28, 1))
    log_lik = ops.sum(x * logits - ops.softplus(logits), axis=(2, 3, 4))
    log_p = -0.5 * ops.sum(z**2 + math.log(2 * math.pi), axis=-1)
    log_q = ops.sum(
        -0.5 * ((z - mu) / sigma) ** 2 - ops.log(sigma) - 0.5 * math.log(2 * math.pi), axis=-1
    )
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
    eps = tf.random.stateless_normal(
        [x.shape[0], k, mu.shape[-1]], seed=tf.random.experimental.stateless_fold_in(seed, 9)
    )
    z = tf.transpose(mu[:, None] + sigma[:, None] * eps, [1, 0, 2])  # [k, batch, d]
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


def iw_pure_python_loops(model, x, k, seed):
    """Pure Python floats: a loop over the images and a logsumexp written out by hand."""
    log_w = _log_w(model, x, k, seed).numpy().tolist()  # k lists of batch floats
    out = []
    for i in range(len(log_w[0])):
        values = [log_w[j][i] for j in range(k)]
        m = max(values)
        out.append(m + math.log(sum(math.exp(v - m) for v in values) / k))
    return out


def iw_float64(model, x, k, seed):
    """Every log term in float64, combined with tf.reduce_logsumexp."""
    ll, lp, lq = (tf.cast(t, tf.float64) for t in _log_terms(model, x, k, seed))
    return tf.reduce_logsumexp(ll + lp - lq, axis=0) - tf.math.log(tf.cast(k, tf.float64))


def iw_reduce_logmeanexp(model, x, k, seed):
    return tfp.math.reduce_logmeanexp(_log_w(model, x, k, seed), axis=0)


def iw_debug_prints(model, x, k, seed):
    """Right, with the debugging prints a student leaves in."""
    q = model.posterior(x)
    z = q.sample(k, seed=seed)
    print("z:", z.shape)
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    print("log_w:", log_w.shape, float(tf.reduce_min(log_w)), float(tf.reduce_max(log_w)))
    result = tf.reduce_logsumexp(log_w, axis=0) - np.log(k)
    print("L_k:", result.shape)
    return result


def iw_log_k_inside(model, x, k, seed):
    """log k subtracted from every log weight before the logsumexp: the same number."""
    return tf.reduce_logsumexp(_log_w(model, x, k, seed) - np.log(k), axis=0)


def iw_keepdims_then_index(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0, keepdims=True)[0] - math.log(k)


def iw_loop_over_images(model, x, k, seed):
    """One image at a time, each with its own seed folded in from seed: other noise."""
    values = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        q = model.posterior(xi)
        z = q.sample(k, seed=tf.random.experimental.stateless_fold_in(seed, i))
        log_w = model.likelihood(z).log_prob(xi) + model.prior().log_prob(z) - q.log_prob(z)
        values.append(tf.reduce_logsumexp(log_w, axis=0) - math.log(k))
    return tf.concat(values, axis=0)


def iw_independent_normal(model, x, k, seed):
    """tfd.Independent(tfd.Normal) built by hand: the library's own samples."""
    mu, sigma = model.encoder(x)
    q = tfd.Independent(tfd.Normal(mu, sigma), reinterpreted_batch_ndims=1)
    z = q.sample(k, seed=seed)
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.math.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(k, log_w.dtype))


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


def _shift_by_whole_batch(log_w):
    top = tf.reduce_max(log_w)  # the whole array's max, not each image's
    return top + tf.math.log(tf.reduce_mean(tf.exp(log_w - top), axis=0))


def iw_global_max_shift(model, x, k, seed):
    return _shift_by_whole_batch(_log_w(model, x, k, seed))


def iw_global_max_shift_numpy64(model, x, k, seed):
    """The same slip in NumPy float64: finite for differences up to about 700 nats."""
    log_w = _log_w(model, x, k, seed).numpy().astype(np.float64)
    top = np.max(log_w)
    return top + np.log(np.mean(np.exp(log_w - top), axis=0))


def iw_global_max_shift_other_noise(model, x, k, seed):
    mu, sigma = model.encoder(x)
    q = tfd.MultivariateNormalDiag(mu, sigma)
    z = q.sample(k, seed=seed)
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return _shift_by_whole_batch(log_w)


def iw_exp_in_float64(model, x, k, seed):
    """The weights formed with exp in float64: fine near -575, 0 below about -745."""
    log_w = _log_w(model, x, k, seed).numpy().astype(np.float64)
    return np.log(np.mean(np.exp(log_w), axis=0))


def iw_shift_not_added_back(model, x, k, seed):
    log_w = _log_w(model, x, k, seed)
    top = tf.reduce_max(log_w, axis=0)
    return tf.math.log(tf.reduce_mean(tf.exp(log_w - top), axis=0))


def iw_log10_k(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0) - np.log10(k)


def iw_integer_log_k(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0) - tf.math.log(k)


def iw_divided_by_k(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0) / k


def iw_prior_samples(model, x, k, seed):
    """z drawn from p(z) instead of q(z|x), the weights otherwise as written."""
    q = model.posterior(x)
    z = model.prior().sample([k, x.shape[0]], seed=seed)
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def iw_prior_samples_likelihood_only(model, x, k, seed):
    """Importance sampling with the prior as the proposal: valid, but not the task's L_k."""
    mu, _ = model.encoder(x)
    eps = tf.random.stateless_normal([k, *mu.shape], seed=seed)
    return tf.reduce_logsumexp(model.likelihood(eps).log_prob(x), axis=0) - math.log(k)


def iw_swapped_signs(model, x, k, seed):
    ll, lp, lq = _log_terms(model, x, k, seed)
    return tf.reduce_logsumexp(ll - lp + lq, axis=0) - math.log(k)


def iw_likelihood_only(model, x, k, seed):
    ll, _, _ = _log_terms(model, x, k, seed)
    return tf.reduce_logsumexp(ll, axis=0) - math.log(k)


def iw_keepdims(model, x, k, seed):
    return tf.reduce_logsumexp(_log_w(model, x, k, seed), axis=0, keepdims=True) - math.log(k)


def iw_transposed_unreduced(model, x, k, seed):
    """Log weights laid out [batch, k] and returned as they are."""
    return tf.transpose(_log_w(model, x, k, seed))


def iw_one_draw_repeated(model, x, k, seed):
    """One sample per image, repeated k times: the k samples are all the same."""
    q = model.posterior(x)
    z = tf.repeat(q.sample(1, seed=seed), k, axis=0)
    log_w = model.likelihood(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def iw_k1_returns_log_weights(model, x, k, seed):
    """'With one sample there is nothing to combine': returns [1, batch] for k = 1."""
    log_w = _log_w(model, x, k, seed)
    if k == 1:
        return log_w
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def iw_debug_print_elbo(model, x, k, seed):
    log_w = _log_w(model, x, k, seed)
    print("log weights", log_w.shape)
    return tf.reduce_mean(log_w, axis=0)


def _iw_downstream(fn):
    """Cell 13, on fewer images: tf.constant seeds, k = 1, 5, 50, 500, two batches of 20."""
    keras.utils.set_random_seed(3)
    model = VAE(latent_dim=4, hidden_size=16)
    x_test = (np.random.default_rng(3).random((40, 28, 28, 1)) < 0.2).astype(np.float32)
    iw_bound = fn

    def mean_iw_bound(model, x, k, batch=20):
        values = [
            iw_bound(model, x[i : i + batch], k, tf.constant([k, i]))
            for i in range(0, len(x), batch)
        ]
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
        "pure_python_loops": iw_pure_python_loops,
        "float64": iw_float64,
        "tfp_reduce_logmeanexp": iw_reduce_logmeanexp,
        "debug_prints": iw_debug_prints,
        "log_k_inside": iw_log_k_inside,
        "keepdims_then_index": iw_keepdims_then_index,
        "loop_over_images": iw_loop_over_images,
        "independent_normal": iw_independent_normal,
    },
    mistakes={
        "no_minus_log_k": Mistake(iw_no_log_k, r"log\(k\) too high"),
        "no_minus_log_k_other_noise": Mistake(iw_no_log_k_other_noise, r"log\(k\) too high"),
        "log_k_added": Mistake(iw_log_k_added, r"log k was added"),
        "mean_of_log_weights": Mistake(iw_mean_of_log_weights, r"average of the log weights"),
        "mean_of_log_weights_other_noise": Mistake(
            iw_elbo_other_noise, r"average of the log weights"
        ),
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
        "squeezed_samples": Mistake(iw_squeezed_samples, r"k = 1 .*sample axis was\s+dropped"),
        "no_return": Mistake(iw_no_return, r"forget the `return`"),
        "max_shift_over_whole_array": Mistake(iw_global_max_shift, r"over the whole\s+array"),
        "max_shift_over_whole_array_numpy64": Mistake(
            iw_global_max_shift_numpy64, r"over the whole\s+array"
        ),
        "max_shift_over_whole_array_other_noise": Mistake(
            iw_global_max_shift_other_noise, r"over the whole\s+array"
        ),
        "exp_in_float64": Mistake(iw_exp_in_float64, r"underflow.*float64.*log space"),
        "shift_not_added_back": Mistake(iw_shift_not_added_back, r"not\s+added back"),
        "log10_k": Mistake(iw_log10_k, r"base 10"),
        "integer_log_k": Mistake(
            iw_integer_log_k,
            r"raised InvalidArgumentError.*line \d+ of your function"
            r".*integer",
        ),
        "divided_by_k": Mistake(iw_divided_by_k, r"divided by k"),
        "prior_samples": Mistake(iw_prior_samples, r"from the prior p\(z\), not from q"),
        "prior_samples_likelihood_only": Mistake(
            iw_prior_samples_likelihood_only, r"from the prior p\(z\), not from q"
        ),
        "swapped_signs": Mistake(iw_swapped_signs, r"each other's signs"),
        "likelihood_only": Mistake(iw_likelihood_only, r"log-likelihoods alone"),
        "keepdims": Mistake(iw_keepdims, r"keepdims"),
        "transposed_unreduced": Mistake(iw_transposed_unreduced, r"laid out \[batch, k\]"),
        "one_draw_repeated": Mistake(iw_one_draw_repeated, r"all the same draw"),
        "k1_returns_log_weights": Mistake(
            iw_k1_returns_log_weights, r"k = 1 .*sample axis still there"
        ),
        "debug_print_elbo": Mistake(iw_debug_print_elbo, r"average of the log weights"),
    },
    give_away=(
        "reduce_logsumexp(log_w",
        "q.sample(k, seed=seed)",
        "- tf.math.log(float(k))",
        "- math.log(k)",
    ),
    downstream=_iw_downstream,
)


EXERCISES = [IW_BOUND]
