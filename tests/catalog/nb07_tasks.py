"""Notebook 07 (beyond the ELBO), its newer tasks: the normalized importance weights, the
beta-weighted bound on notebook 02's toy model, and a mixture-of-Gaussians prior."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import vae_prac
from catalog import Exercise, Mistake
from vae_prac.bounds import kl_monte_carlo, log_importance_weights
from vae_prac.checks import importance, kl_weight, priors
from vae_prac.checks.elbo import toy_log_evidence, toy_posterior
from vae_prac.model import VAE

tfd = tfp.distributions


# ---------------------------------------------------------------------------------------
# Normalized importance weights w~ = w / sum_i w_i over the k samples: [k, batch].


def nw_softmax(log_w):
    return tf.nn.softmax(log_w, axis=0)


def nw_keras_ops(log_w):
    return keras.ops.softmax(log_w, axis=0)


def nw_logsumexp(log_w):
    return tf.exp(log_w - tf.reduce_logsumexp(log_w, axis=0, keepdims=True))


def nw_numpy_max_shift(log_w):
    a = np.asarray(log_w)
    e = np.exp(a - a.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def nw_float64(log_w):
    a = tf.cast(log_w, tf.float64)
    top = tf.reduce_max(a, axis=0, keepdims=True)
    e = tf.exp(a - top)
    return tf.cast(e / tf.reduce_sum(e, axis=0, keepdims=True), tf.float32)


def nw_transposed_softmax(log_w):
    """Softmax over the last axis of the transpose, transposed back."""
    return tf.transpose(tf.nn.softmax(tf.transpose(log_w)))


def nw_stop_gradient(log_w):
    """Constant coefficients: no gradient through the weights (the notebook's use)."""
    return tf.stop_gradient(tf.nn.softmax(log_w, axis=0))


def nw_default_axis(log_w):
    return tf.nn.softmax(log_w)  # axis -1: the images


def nw_naive(log_w):
    w = tf.exp(log_w)
    return w / tf.reduce_sum(w, axis=0, keepdims=True)


def nw_global_shift(log_w):
    e = tf.exp(log_w - tf.reduce_max(log_w))  # one shift for the whole array
    return e / tf.reduce_sum(e, axis=0, keepdims=True)


def nw_numpy_float64_naive(log_w):
    w = np.exp(np.asarray(log_w, np.float64))
    return w / w.sum(axis=0, keepdims=True)


def nw_mean_shift(log_w):
    e = tf.exp(log_w - tf.reduce_mean(log_w, axis=0, keepdims=True))
    return e / tf.reduce_sum(e, axis=0, keepdims=True)


def nw_not_normalized(log_w):
    return tf.exp(log_w - tf.reduce_max(log_w, axis=0, keepdims=True))


def nw_whole_array(log_w):
    return tf.exp(log_w - tf.reduce_logsumexp(log_w))


def nw_divided_by_mean(log_w):
    e = tf.exp(log_w - tf.reduce_max(log_w, axis=0, keepdims=True))
    return e / tf.reduce_mean(e, axis=0, keepdims=True)


def nw_extra_one_over_k(log_w):
    return tf.nn.softmax(log_w, axis=0) / log_w.shape[0]


def nw_log_softmax(log_w):
    return tf.nn.log_softmax(log_w, axis=0)


def nw_uniform(log_w):
    return tf.ones_like(log_w) / log_w.shape[0]


def nw_log_weights_normalized(log_w):
    return log_w / tf.reduce_sum(log_w, axis=0, keepdims=True)


def nw_sign_flipped(log_w):
    return tf.nn.softmax(-log_w, axis=0)


def nw_transposed_output(log_w):
    return tf.transpose(tf.nn.softmax(log_w, axis=0))


def nw_squeezed(log_w):
    return tf.nn.softmax(tf.squeeze(log_w), axis=0)


def nw_returns_bound(log_w):
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(log_w.shape[0])


def nw_no_return(log_w):
    tf.nn.softmax(log_w, axis=0)


@tf.function
def nw_tf_function(log_w):
    """Compiled: retraced for each shape of log_w."""
    return tf.nn.softmax(log_w, axis=0)


def nw_python_loops(log_w):
    """Pure Python: per image, shift by its maximum, exp, divide; a list of lists."""
    rows = np.asarray(log_w).tolist()
    k, batch = len(rows), len(rows[0])
    out = [[0.0] * batch for _ in range(k)]
    for j in range(batch):
        top = max(rows[i][j] for i in range(k))
        e = [math.exp(rows[i][j] - top) for i in range(k)]
        for i in range(k):
            out[i][j] = e[i] / sum(e)
    return out


def nw_keras_activation(log_w):
    return keras.activations.softmax(log_w, axis=0)


def nw_categorical_probs(log_w):
    """A tfd.Categorical per image (its logits on the last axis), probabilities transposed back."""
    return tf.transpose(tfd.Categorical(logits=tf.transpose(log_w)).probs_parameter())


def nw_float64_output_with_debug_print(log_w):
    print("log_w:", log_w.shape)
    return tf.nn.softmax(tf.cast(log_w, tf.float64), axis=0)


def nw_shift_over_the_images(log_w):
    """Each *sample's* maximum over the images (axis 1) as the shift."""
    e = tf.exp(log_w - tf.reduce_max(log_w, axis=1, keepdims=True))
    return e / tf.reduce_sum(e, axis=0, keepdims=True)


def nw_sum_over_the_images(log_w):
    e = tf.exp(log_w - tf.reduce_max(log_w, axis=0, keepdims=True))
    return e / tf.reduce_sum(e, axis=1, keepdims=True)


def nw_divided_by_the_total(log_w):
    e = tf.exp(log_w - tf.reduce_max(log_w, axis=0, keepdims=True))
    return e / tf.reduce_sum(e)


def nw_min_shift(log_w):
    e = tf.exp(log_w - tf.reduce_min(log_w, axis=0, keepdims=True))
    return e / tf.reduce_sum(e, axis=0, keepdims=True)


def nw_min_shift_float64(log_w):
    a = tf.cast(log_w, tf.float64)
    e = tf.exp(a - tf.reduce_min(a, axis=0, keepdims=True))
    return e / tf.reduce_sum(e, axis=0, keepdims=True)


def nw_mean_shift_float64(log_w):
    """Fine while an image's log weights lie within about 709 nats of their mean."""
    a = np.asarray(log_w, np.float64)
    e = np.exp(a - a.mean(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def nw_log_w_unchanged(log_w):
    return log_w


def nw_exp_only(log_w):
    return tf.exp(log_w)


def nw_float16(log_w):
    return tf.nn.softmax(tf.cast(log_w, tf.float16), axis=0)


def nw_one_number(log_w):
    return 1.0


def nw_transposed_wrong_axis(log_w):
    return tf.nn.softmax(tf.transpose(log_w), axis=0)


def _nw_downstream(fn):
    """Section 1: the gradient of L_k against the w~-weighted gradients of log w_i."""
    keras.utils.set_random_seed(1)
    model = VAE(latent_dim=3, hidden_size=8)
    x = (np.random.default_rng(1).random((1, 28, 28, 1)) < 0.3).astype(np.float32)
    weights = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        log_w = log_importance_weights(model, x, 4, seed=(1, 2))  # [k, 1]
        bound = tf.reduce_logsumexp(log_w[:, 0]) - math.log(4)
        terms = tf.unstack(log_w[:, 0])
    w_tilde = np.asarray(fn(log_w))[:, 0]
    direct = tape.gradient(bound, weights)
    weighted = [sum(w_tilde[i] * tape.gradient(terms[i], v) for i in range(4)) for v in weights]
    for a, b in zip(direct, weighted):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)


NORMALIZED_WEIGHTS = Exercise(
    name="normalized_weights",
    check=importance.normalized_weights,
    correct={
        "keras_ops_softmax": nw_keras_ops,
        "exp_minus_logsumexp": nw_logsumexp,
        "numpy_max_shift": nw_numpy_max_shift,
        "float64_max_shift": nw_float64,
        "softmax_of_transpose": nw_transposed_softmax,
        "stop_gradient_inside": nw_stop_gradient,
        "tf_function": nw_tf_function,
        "python_loops": nw_python_loops,
        "keras_activations_softmax": nw_keras_activation,
        "tfd_categorical_probs": nw_categorical_probs,
        "float64_output_debug_print": nw_float64_output_with_debug_print,
    },
    mistakes={
        "softmax_default_axis": Mistake(nw_default_axis, r"batch axis.*default axis"),
        "naive_exp": Mistake(nw_naive, r"underflows to 0 in float32"),
        "one_shift_for_the_array": Mistake(nw_global_shift, r"one shift .*whole array"),
        "float64_without_shift": Mistake(nw_numpy_float64_naive, r"even float64"),
        "shift_by_the_mean": Mistake(nw_mean_shift, r"overflowed"),
        "not_normalized": Mistake(nw_not_normalized, r"largest weight is 1"),
        "normalized_over_whole_array": Mistake(nw_whole_array, r"whole array sum to 1"),
        "divided_by_the_mean": Mistake(nw_divided_by_mean, r"sum to k = 6"),
        "extra_one_over_k": Mistake(nw_extra_one_over_k, r"sum to 1/k"),
        "log_softmax": Mistake(nw_log_softmax, r"logs of the normalized weights"),
        "uniform_weights": Mistake(nw_uniform, r"ELBO's weighting"),
        "log_weights_normalized": Mistake(
            nw_log_weights_normalized, r"normalized the log weights themselves"
        ),
        "sign_flipped": Mistake(nw_sign_flipped, r"smallest log weight"),
        "transposed_output": Mistake(nw_transposed_output, r"\[batch, k\]"),
        "squeezed_samples": Mistake(nw_squeezed, r"k = 1"),
        "returns_the_bound": Mistake(nw_returns_bound, r"one value per image"),
        "no_return": Mistake(nw_no_return, r"forget the `return`"),
        "shift_by_each_samples_maximum": Mistake(
            nw_shift_over_the_images, r"each sample's maximum over the images"
        ),
        "sum_over_the_images": Mistake(
            nw_sum_over_the_images,
            r"division is by a sum over "
            r"the batch axis",
        ),
        "divided_by_the_total": Mistake(nw_divided_by_the_total, r"whole array sum to 1"),
        "shift_by_the_minimum": Mistake(nw_min_shift, r"overflowed.*smallest"),
        "shift_by_the_minimum_float64": Mistake(nw_min_shift_float64, r"-2500.*float64"),
        "shift_by_the_mean_float64": Mistake(nw_mean_shift_float64, r"-2500.*float64"),
        "log_w_unchanged": Mistake(nw_log_w_unchanged, r"log weights themselves"),
        "exp_not_normalized": Mistake(nw_exp_only, r"not normalized.*underflow"),
        "float16": Mistake(nw_float16, r"float16"),
        "one_number": Mistake(nw_one_number, r"returned one number"),
        "transposed_and_wrong_axis": Mistake(
            nw_transposed_wrong_axis, r"\[batch, k\].*Transposed back, they are not"
        ),
    },
    give_away=("softmax(log_w, axis=0)", "reduce_logsumexp(log_w, axis=0, keepdims=True)"),
    downstream=_nw_downstream,
)


# ---------------------------------------------------------------------------------------
# L_beta on notebook 02's toy model, in closed form: fn(x, q, beta, s).


def tb_identity(x, q, beta, s=0.5):
    """log p(x) - KL(q || p(z|x)) + (1 - beta) KL(q || p(z)): every term from tfd."""
    prior = tfd.Normal(0.0, 1.0)
    return (
        toy_log_evidence(x, s)
        - tfd.kl_divergence(q, toy_posterior(x, s))
        + (1.0 - beta) * tfd.kl_divergence(q, prior)
    )


def tb_numpy(x, q, beta, s=0.5):
    m, v = float(q.mean()), float(q.variance())
    ell = -0.5 * np.log(2 * np.pi * s**2) - ((x - m) ** 2 + v) / (2 * s**2)
    kl = 0.5 * (m**2 + v - 1.0 - np.log(v))
    return np.float64(ell - beta * kl)


def tb_keras_ops(x, q, beta, s=0.5):
    ops = keras.ops
    m, sd = q.loc, q.scale
    ell = -0.5 * ops.log(2 * math.pi * s * s) - (ops.square(x - m) + ops.square(sd)) / (2 * s * s)
    kl = 0.5 * (ops.square(m) + ops.square(sd) - 1.0) - ops.log(sd)
    return ell - beta * kl


def tb_float64(x, q, beta, s=0.5):
    m = tf.cast(q.mean(), tf.float64)
    v = tf.cast(q.variance(), tf.float64)
    ell = tf.cast(tfd.Normal(m, s).log_prob(x), tf.float64) - v / (2 * s * s)
    kl = 0.5 * (m * m + v - 1.0 - tf.math.log(v))
    return ell - beta * kl


def tb_python_floats(x, q, beta, s=0.5):
    """Plain Python: log N(x; m, s^2) at the mean, less the variance term, less beta KL."""
    m, sd = float(q.loc), float(q.scale)
    expected = (
        -0.5 * math.log(2 * math.pi * s * s) - (x - m) ** 2 / (2 * s * s) - sd**2 / (2 * s * s)
    )
    return expected - beta * float(tfd.kl_divergence(q, tfd.Normal(0.0, 1.0)))


def _tb_expected(x, q, s):
    m, v = q.mean(), q.variance()
    return -0.5 * tf.math.log(2 * math.pi * s * s) - ((x - m) ** 2 + v) / (2 * s * s)


def tb_reverse_kl(x, q, beta, s=0.5):
    return _tb_expected(x, q, s) - beta * tfd.kl_divergence(tfd.Normal(0.0, 1.0), q)


def tb_kl_to_posterior(x, q, beta, s=0.5):
    return _tb_expected(x, q, s) - beta * tfd.kl_divergence(q, toy_posterior(x, s))


def tb_beta_on_likelihood(x, q, beta, s=0.5):
    return beta * _tb_expected(x, q, s) - tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_plus_kl(x, q, beta, s=0.5):
    return _tb_expected(x, q, s) + beta * tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_likelihood_at_mean(x, q, beta, s=0.5):
    return tfd.Normal(q.mean(), s).log_prob(x) - beta * tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_stddev_for_variance(x, q, beta, s=0.5):
    m, v = q.mean(), q.stddev()  # a standard deviation, used as a variance
    ell = -0.5 * tf.math.log(2 * math.pi * s * s) - ((x - m) ** 2 + v) / (2 * s * s)
    return ell - beta * 0.5 * (m * m + v - 1.0 - tf.math.log(v))


def tb_likelihood_scale_s2(x, q, beta, s=0.5):
    s2 = s * s  # a variance passed as a scale
    m, v = q.mean(), q.variance()
    ell = -0.5 * tf.math.log(2 * math.pi * s2 * s2) - ((x - m) ** 2 + v) / (2 * s2 * s2)
    return ell - beta * tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_s_hard_coded(x, q, beta, s=0.5):
    return _tb_expected(x, q, 0.5) - beta * tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_identity_at_posterior(x, q, beta, s=0.5):
    """Right only where q is the posterior: the KL(q || p(z|x)) term is missing."""
    return toy_log_evidence(x, s) + (1.0 - beta) * tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_monte_carlo(x, q, beta, s=0.5):
    z = q.sample(20_000, seed=(4, 2))
    ell = tf.reduce_mean(tfd.Normal(z, s).log_prob(x))
    return ell - beta * tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_per_sample(x, q, beta, s=0.5):
    z = q.sample(100, seed=(4, 2))
    return tfd.Normal(z, s).log_prob(x) - beta * tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_ignores_beta(x, q, beta, s=0.5):
    return _tb_expected(x, q, s) - tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_no_return(x, q, beta, s=0.5):
    _tb_expected(x, q, s) - beta * tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


@tf.function
def tb_tf_function(x, q, beta, s=0.5):
    """Compiled, q passed in as a distribution."""
    return _tb_expected(x, q, s) - beta * tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_cross_entropy(x, q, beta, s=0.5):
    """N(x; z, s^2) = N(z; x, s^2), so E_q[log N(x; z, s^2)] = -H(q, N(x, s^2))."""
    return -q.cross_entropy(tfd.Normal(x, s)) - beta * q.kl_divergence(tfd.Normal(0.0, 1.0))


def tb_gauss_hermite(x, q, beta, s=0.5):
    """NumPy quadrature of the expectation (exact for a quadratic), hand-written KL."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(20)
    m, sd = float(q.mean()), float(q.stddev())
    z = m + sd * nodes
    log_lik = -0.5 * np.log(2 * np.pi * s * s) - (x - z) ** 2 / (2 * s * s)
    expected = float(weights @ log_lik) / math.sqrt(2 * math.pi)
    return expected - beta * (m * m + sd * sd - 1.0 - 2.0 * math.log(sd)) / 2


def _tb_kl(q):
    return tfd.kl_divergence(q, tfd.Normal(0.0, 1.0))


def tb_kl_without_half(x, q, beta, s=0.5):
    m, v = q.mean(), q.variance()
    return _tb_expected(x, q, s) - beta * (m * m + v - 1.0 - tf.math.log(v))


def tb_kl_log_term(x, q, beta, s=0.5):
    m, v = q.mean(), q.variance()
    return _tb_expected(x, q, s) - beta * (0.5 * (m * m + v - 1.0) - tf.math.log(v))


def tb_constant_dropped(x, q, beta, s=0.5):
    m, v = q.mean(), q.variance()
    return -((x - m) ** 2 + v) / (2 * s * s) - beta * _tb_kl(q)


def tb_constant_with_s(x, q, beta, s=0.5):
    m, v = q.mean(), q.variance()
    return -0.5 * math.log(2 * math.pi * s) - ((x - m) ** 2 + v) / (2 * s * s) - beta * _tb_kl(q)


def tb_constant_without_half(x, q, beta, s=0.5):
    m, v = q.mean(), q.variance()
    return -math.log(2 * math.pi * s * s) - ((x - m) ** 2 + v) / (2 * s * s) - beta * _tb_kl(q)


def tb_squared_error_sign(x, q, beta, s=0.5):
    m, v = q.mean(), q.variance()
    return (
        -0.5 * math.log(2 * math.pi * s * s) + ((x - m) ** 2 + v) / (2 * s * s) - beta * _tb_kl(q)
    )


def tb_beta_on_both(x, q, beta, s=0.5):
    return beta * (_tb_expected(x, q, s) - _tb_kl(q))


def tb_one_minus_beta(x, q, beta, s=0.5):
    return _tb_expected(x, q, s) - (1.0 - beta) * _tb_kl(q)


def tb_kl_over_beta(x, q, beta, s=0.5):
    return _tb_expected(x, q, s) - _tb_kl(q) / beta


def tb_prior_scale_s(x, q, beta, s=0.5):
    return _tb_expected(x, q, s) - beta * tfd.kl_divergence(q, tfd.Normal(0.0, s))


def tb_kl_to_likelihood(x, q, beta, s=0.5):
    return _tb_expected(x, q, s) - beta * tfd.kl_divergence(q, tfd.Normal(x, s))


def tb_unit_likelihood(x, q, beta, s=0.5):
    return _tb_expected(x, q, 1.0) - beta * _tb_kl(q)


def tb_negated_loss(x, q, beta, s=0.5):
    return beta * _tb_kl(q) - _tb_expected(x, q, s)


def tb_stddev_in_likelihood_only(x, q, beta, s=0.5):
    m, sd = q.mean(), q.stddev()
    expected = -0.5 * tf.math.log(2 * math.pi * s * s) - ((x - m) ** 2 + sd) / (2 * s * s)
    return expected - beta * _tb_kl(q)


def tb_at_mean_and_reverse_kl(x, q, beta, s=0.5):
    return tfd.Normal(q.mean(), s).log_prob(x) - beta * tfd.kl_divergence(tfd.Normal(0.0, 1.0), q)


def tb_no_kl(x, q, beta, s=0.5):
    return _tb_expected(x, q, s)


def tb_no_likelihood(x, q, beta, s=0.5):
    return -beta * _tb_kl(q)


def tb_s_renamed(x, q, beta, sigma=0.5):
    return _tb_expected(x, q, sigma) - beta * _tb_kl(q)


def tb_returns_text(x, q, beta, s=0.5):
    return f"{float(_tb_expected(x, q, s) - beta * _tb_kl(q)):.4f}"


def _tb_downstream(fn):
    """Section 2: L_beta at q = p(z|x) for x = 1 and beta = 0.5, 1, 2, printed as floats."""
    post = toy_posterior(1.0, 0.5)
    values = [float(fn(1.0, post, beta, s=0.5)) for beta in (0.5, 1.0, 2.0)]
    log_px = float(toy_log_evidence(1.0, 0.5))
    assert values[0] > log_px and abs(values[1] - log_px) < 1e-4 and values[2] < log_px


TOY_BETA_BOUND = Exercise(
    name="toy_beta_bound",
    check=kl_weight.toy_beta_bound,
    correct={
        "identity_with_tfd": tb_identity,
        "numpy_formulas": tb_numpy,
        "keras_ops": tb_keras_ops,
        "float64_normal_at_mean_minus_variance": tb_float64,
        "python_floats": tb_python_floats,
        "tf_function": tb_tf_function,
        "tfd_cross_entropy": tb_cross_entropy,
        "numpy_gauss_hermite": tb_gauss_hermite,
    },
    mistakes={
        "reverse_kl": Mistake(tb_reverse_kl, r"wrong way round"),
        "kl_to_posterior": Mistake(tb_kl_to_posterior, r"to the prior"),
        "beta_on_likelihood": Mistake(tb_beta_on_likelihood, r"multiplies the log-likelihood"),
        "plus_kl": Mistake(tb_plus_kl, r"wrong sign"),
        "likelihood_at_the_mean": Mistake(tb_likelihood_at_mean, r"misses q's spread"),
        "stddev_for_variance": Mistake(tb_stddev_for_variance, r"standard deviation is used"),
        "likelihood_scale_s2": Mistake(tb_likelihood_scale_s2, r"scale s\^2"),
        "s_hard_coded": Mistake(tb_s_hard_coded, r"ignores the argument s"),
        "identity_only_at_posterior": Mistake(tb_identity_at_posterior, r"only at q = p\(z\|x\)"),
        "monte_carlo": Mistake(tb_monte_carlo, r"Monte Carlo"),
        "per_sample": Mistake(tb_per_sample, r"100 numbers"),
        "ignores_beta": Mistake(tb_ignores_beta, r"does not change with beta"),
        "no_return": Mistake(tb_no_return, r"forget the `return`"),
        "kl_without_its_half": Mistake(tb_kl_without_half, r"KL is twice too large"),
        "kl_log_term": Mistake(tb_kl_log_term, r"log term is twice too large"),
        "constant_dropped": Mistake(tb_constant_dropped, r"misses its constant"),
        "constant_with_s": Mistake(tb_constant_with_s, r"has s where the variance s\^2"),
        "constant_without_half": Mistake(
            tb_constant_without_half, r"constant of log N.*twice too large"
        ),
        "squared_error_sign": Mistake(tb_squared_error_sign, r"squared error enters"),
        "beta_on_both_terms": Mistake(tb_beta_on_both, r"whole ELBO"),
        "one_minus_beta": Mistake(tb_one_minus_beta, r"weighted by 1 - beta"),
        "kl_over_beta": Mistake(tb_kl_over_beta, r"divided by beta"),
        "prior_with_scale_s": Mistake(tb_prior_scale_s, r"taken to N\(0, s\^2\)"),
        "kl_to_the_likelihood": Mistake(tb_kl_to_likelihood, r"taken to N\(x, s\^2\)"),
        "unit_variance_likelihood": Mistake(tb_unit_likelihood, r"standard deviation 1 whatever s"),
        "negated_loss": Mistake(tb_negated_loss, r"-L_beta, a loss"),
        "stddev_in_likelihood_only": Mistake(
            tb_stddev_in_likelihood_only, r"standard deviation is used"
        ),
        "at_the_mean_and_reverse_kl": Mistake(
            tb_at_mean_and_reverse_kl, r"two slips.*spread.*wrong way round"
        ),
        "no_kl": Mistake(tb_no_kl, r"KL term is missing"),
        "no_likelihood": Mistake(tb_no_likelihood, r"log-likelihood .* is missing"),
        "s_renamed": Mistake(tb_s_renamed, r"pass s by that name"),
        "returns_text": Mistake(tb_returns_text, r"returned text"),
    },
    give_away=("beta * tfd.kl_divergence(q", "- beta * kl"),
    downstream=_tb_downstream,
)


# ---------------------------------------------------------------------------------------
# A mixture-of-Gaussians prior: fn(logits [K], locs [K, d], scales [K, d]).


def mp_mvn_diag(logits, locs, scales):
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits), tfd.MultivariateNormalDiag(locs, scales)
    )


def mp_probs_softmax(logits, locs, scales):
    return tfd.MixtureSameFamily(
        tfd.Categorical(probs=tf.nn.softmax(logits)), tfd.Independent(tfd.Normal(locs, scales), 1)
    )


def mp_mixture_of_list(logits, locs, scales):
    """tfd.Mixture with a list of K components."""
    components = [tfd.MultivariateNormalDiag(locs[k], scales[k]) for k in range(locs.shape[0])]
    return tfd.Mixture(tfd.Categorical(logits=logits), components)


def mp_keras_ops_logits(logits, locs, scales):
    """Normalized log weights from keras.ops, passed as logits."""
    log_pi = logits - keras.ops.logsumexp(logits)
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=log_pi),
        tfd.Independent(tfd.Normal(loc=locs, scale=scales), reinterpreted_batch_ndims=1),
    )


def mp_scale_diag_linear_operator(logits, locs, scales):
    """MultivariateNormalLinearOperator with a diagonal operator."""
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits),
        tfd.MultivariateNormalLinearOperator(locs, tf.linalg.LinearOperatorDiag(scales)),
    )


def _independent(locs, scales):
    return tfd.Independent(tfd.Normal(locs, scales), 1)


def mp_scale_tril(logits, locs, scales):
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits), tfd.MultivariateNormalTriL(locs, tf.linalg.diag(scales))
    )


@tf.function
def mp_tf_function(logits, locs, scales):
    """Built inside a compiled function and returned from it."""
    return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), _independent(locs, scales))


def mp_bijectors(logits, locs, scales):
    """Standard Normals shifted and scaled by bijectors."""
    base = _independent(tf.zeros_like(locs), tf.ones_like(scales))
    move = tfp.bijectors.Chain([tfp.bijectors.Shift(locs), tfp.bijectors.Scale(scales)])
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits), tfd.TransformedDistribution(base, move)
    )


def mp_probs_exp_unnormalized(logits, locs, scales):
    """tfd.Categorical normalizes probabilities it is given: exp(logits) works as well."""
    return tfd.MixtureSameFamily(tfd.Categorical(probs=tf.exp(logits)), _independent(locs, scales))


def mp_no_independent(logits, locs, scales):
    return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), tfd.Normal(locs, scales))


def mp_probs_are_logits(logits, locs, scales):
    return tfd.MixtureSameFamily(tfd.Categorical(probs=logits), _independent(locs, scales))


def mp_softmax_twice(logits, locs, scales):
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=tf.nn.softmax(logits)), _independent(locs, scales)
    )


def mp_equal_weights(logits, locs, scales):
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=tf.zeros_like(logits)), _independent(locs, scales)
    )


def mp_variance_as_scale(logits, locs, scales):
    return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), _independent(locs, scales**2))


def mp_sqrt_scale(logits, locs, scales):
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits), _independent(locs, tf.sqrt(scales))
    )


def mp_first_component(logits, locs, scales):
    return _independent(locs[0], scales[0])


def mp_components_only(logits, locs, scales):
    return _independent(locs, scales)


class _HandWritten:
    """A hand-written mixture density: log of a sum of exp(), unnormalized weights."""

    def __init__(self, logits, locs, scales, normalize=True, stable=False):
        self.logits, self.locs, self.scales = logits, locs, scales
        self.normalize, self.stable = normalize, stable

    def log_prob(self, z):
        z = tf.convert_to_tensor(z)[..., None, :]  # [..., 1, d] against [K, d]
        comp = tf.reduce_sum(tfd.Normal(self.locs, self.scales).log_prob(z), axis=-1)
        log_pi = tf.nn.log_softmax(self.logits) if self.normalize else self.logits
        if self.stable:
            return tf.reduce_logsumexp(comp + log_pi, axis=-1)
        return tf.math.log(tf.reduce_sum(tf.exp(comp + log_pi), axis=-1))

    def sample(self, n, seed=None):
        return mp_mvn_diag(self.logits, self.locs, self.scales).sample(n, seed=seed)


def mp_hand_written_logsumexp(logits, locs, scales):
    """A class of one's own: log_prob by logsumexp over the components, sample from tfd."""
    return _HandWritten(logits, locs, scales, stable=True)


class _FlatOnly(_HandWritten):
    """Right for codes [n, d] only: the component axis is put in the middle by hand."""

    def log_prob(self, z):
        z = tf.convert_to_tensor(z)
        comp = tf.reduce_sum(
            tfd.Normal(self.locs[None], self.scales[None]).log_prob(z[:, None, :]), axis=-1
        )
        return tf.reduce_logsumexp(comp + tf.nn.log_softmax(self.logits), axis=-1)


def mp_codes_of_one_batch_axis_only(logits, locs, scales):
    return _FlatOnly(logits, locs, scales)


class _OwnSampler(_HandWritten):
    """A hand-written sampler: a component per draw, then its Normal, from stateless seeds."""

    def __init__(self, logits, locs, scales, spread=lambda s: s):
        super().__init__(logits, locs, scales, stable=True)
        self.spread = spread

    def sample(self, n, seed=(0, 0)):
        seeds = tf.random.experimental.stateless_split(tf.constant(seed, tf.int64), 2)
        k = tf.random.stateless_categorical(self.logits[None], n, seed=seeds[0])[0]
        noise = tf.random.stateless_normal([n, self.locs.shape[1]], seed=seeds[1])
        return tf.gather(self.locs, k) + tf.gather(self.spread(self.scales), k) * noise


def mp_own_sampler(logits, locs, scales):
    return _OwnSampler(logits, locs, scales)


def mp_sampler_scale_squared(logits, locs, scales):
    return _OwnSampler(logits, locs, scales, spread=lambda s: s**2)


class _SamplerWithoutSeed(_HandWritten):
    def sample(self, n):
        return mp_mvn_diag(self.logits, self.locs, self.scales).sample(n)


def mp_sampler_without_seed(logits, locs, scales):
    return _SamplerWithoutSeed(logits, locs, scales, stable=True)


class _MaxOrMean(_HandWritten):
    """Log-sum-exp replaced by a max, or by the pi-weighted mean of the log densities."""

    def __init__(self, logits, locs, scales, how):
        super().__init__(logits, locs, scales)
        self.how = how

    def log_prob(self, z):
        z = tf.convert_to_tensor(z)[..., None, :]
        comp = tf.reduce_sum(tfd.Normal(self.locs, self.scales).log_prob(z), axis=-1)
        if self.how == "max":
            return tf.reduce_max(comp + tf.nn.log_softmax(self.logits), axis=-1)
        if self.how == "mean":
            return tf.reduce_sum(tf.nn.softmax(self.logits) * comp, axis=-1)
        return tf.reduce_logsumexp(comp + tf.nn.softmax(self.logits), axis=-1)  # pi, not log pi


def mp_max_over_components(logits, locs, scales):
    return _MaxOrMean(logits, locs, scales, "max")


def mp_weighted_mean_of_log_densities(logits, locs, scales):
    return _MaxOrMean(logits, locs, scales, "mean")


def mp_pi_added_in_log_space(logits, locs, scales):
    return _MaxOrMean(logits, locs, scales, "pi")


def mp_float64(logits, locs, scales):
    return mp_mvn_diag(
        tf.cast(logits, tf.float64), tf.cast(locs, tf.float64), tf.cast(scales, tf.float64)
    )


def mp_softplus_scales(logits, locs, scales):
    return mp_mvn_diag(logits, locs, tf.math.softplus(scales))


def mp_exp_scales(logits, locs, scales):
    return mp_mvn_diag(logits, locs, tf.exp(scales))


def mp_covariance_diag(logits, locs, scales):
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits),
        tfd.MultivariateNormalFullCovariance(locs, tf.linalg.diag(scales)),
    )


def mp_negated_logits(logits, locs, scales):
    return mp_mvn_diag(-logits, locs, scales)


def mp_locs_ignored(logits, locs, scales):
    return mp_mvn_diag(logits, tf.zeros_like(locs), scales)


def mp_scales_ignored(logits, locs, scales):
    return mp_mvn_diag(logits, locs, tf.ones_like(scales))


def mp_tf_constant(logits, locs, scales):
    return mp_mvn_diag(tf.constant(logits), tf.constant(locs), tf.constant(scales))


def mp_stop_gradient_scales(logits, locs, scales):
    return mp_mvn_diag(logits, locs, tf.stop_gradient(scales))


def mp_debug_print_with_float(logits, locs, scales):
    """Fine eagerly; inside tf.function float() of a tensor fails."""
    print(f"smallest scale {float(tf.reduce_min(scales)):.3f}")
    return mp_mvn_diag(logits, locs, scales)


def mp_numpy_for_the_size(logits, locs, scales):
    """A list of K components sized with .numpy(): fine eagerly, fails in tf.function."""
    components = [
        tfd.MultivariateNormalDiag(locs[k], scales[k]) for k in range(logits.numpy().shape[0])
    ]
    return tfd.Mixture(tfd.Categorical(logits=logits), components)


def mp_log_of_sum_of_exp(logits, locs, scales):
    return _HandWritten(logits, locs, scales)


def mp_unnormalized_weights(logits, locs, scales):
    return _HandWritten(logits, locs, scales, normalize=False, stable=True)


def mp_numpy_parameters(logits, locs, scales):
    """The parameters copied out through NumPy: right values, no gradient."""
    return mp_mvn_diag(logits.numpy(), locs.numpy(), scales.numpy())


def mp_new_variables(logits, locs, scales):
    """Fresh tf.Variables inside: the prior no longer depends on the ones passed in."""
    return mp_mvn_diag(tf.Variable(logits), tf.Variable(locs), tf.Variable(scales))


def mp_no_return(logits, locs, scales):
    mp_mvn_diag(logits, locs, scales)


def _mp_downstream(fn):
    """Section 6: the prior of a VAE, log_prob of sampled codes with the MC KL, and
    gradients for its parameters; draws to decode."""
    logits = tf.Variable(tf.zeros([5]))
    locs = tf.Variable(tf.random.stateless_normal([5, 3], seed=(1, 1)))
    raw = tf.Variable(tf.zeros([5, 3]))
    q = vae_prac.posterior(tf.zeros([2, 3]), tf.ones([2, 3]))
    with tf.GradientTape() as tape:
        prior = fn(logits, locs, tf.math.softplus(raw) + 1e-4)
        z = q.sample(seed=(2, 2))
        kl = kl_monte_carlo(q, prior, z)
    assert kl.shape == (2,)
    assert all(g is not None for g in tape.gradient(kl, [logits, locs, raw]))
    assert prior.sample(8, seed=(3, 3)).shape == (8, 3)
    assert prior.log_prob(q.sample(4, seed=(4, 4))).shape == (4, 2)  # [k, batch, d], as L_k


MOG_PRIOR = Exercise(
    name="mog_prior",
    check=priors.mog_prior,
    correct={
        "multivariate_normal_diag": mp_mvn_diag,
        "categorical_probs_softmax": mp_probs_softmax,
        "tfd_mixture_of_a_list": mp_mixture_of_list,
        "keras_ops_normalized_logits": mp_keras_ops_logits,
        "linear_operator_diag": mp_scale_diag_linear_operator,
        "hand_written_class_logsumexp": mp_hand_written_logsumexp,
        "scale_tril": mp_scale_tril,
        "tf_function": mp_tf_function,
        "bijectors_shift_scale": mp_bijectors,
        "categorical_probs_exp_unnormalized": mp_probs_exp_unnormalized,
        "own_stateless_sampler": mp_own_sampler,
    },
    mistakes={
        "normal_without_independent": Mistake(mp_no_independent, r"all d = 4 dimensions"),
        "probs_given_logits": Mistake(mp_probs_are_logits, r"given as probabilities"),
        "softmax_twice": Mistake(mp_softmax_twice, r"softmax\(softmax"),
        "equal_weights": Mistake(mp_equal_weights, r"weight 1/K"),
        "variance_as_scale": Mistake(mp_variance_as_scale, r"scales\*\*2"),
        "sqrt_of_scale": Mistake(mp_sqrt_scale, r"sqrt\(scales\)"),
        "first_component_only": Mistake(mp_first_component, r"first component alone"),
        "components_only": Mistake(mp_components_only, r"components alone"),
        "log_of_sum_of_exp": Mistake(mp_log_of_sum_of_exp, r"underflows.*logsumexp"),
        "unnormalized_weights": Mistake(mp_unnormalized_weights, r"not normalized"),
        "through_numpy": Mistake(mp_numpy_parameters, r"no gradient reaches `logits`"),
        "new_variables_inside": Mistake(mp_new_variables, r"no gradient reaches"),
        "codes_of_one_batch_axis_only": Mistake(
            mp_codes_of_one_batch_axis_only, r"any leading axes must work"
        ),
        "no_return": Mistake(mp_no_return, r"forget the `return`"),
        "float64": Mistake(mp_float64, r"dtype is float64"),
        "softplus_of_scales": Mistake(mp_softplus_scales, r"softplus\(scales\)"),
        "exp_of_scales": Mistake(mp_exp_scales, r"exp\(scales\)"),
        "covariance_diag_scales": Mistake(mp_covariance_diag, r"sqrt\(scales\).*covariance"),
        "negated_logits": Mistake(mp_negated_logits, r"softmax\(-logits\)"),
        "locs_ignored": Mistake(mp_locs_ignored, r"mean 0"),
        "scales_ignored": Mistake(mp_scales_ignored, r"scale 1"),
        "max_over_components": Mistake(mp_max_over_components, r"not max"),
        "weighted_mean_of_log_densities": Mistake(mp_weighted_mean_of_log_densities, r"Jensen"),
        "pi_added_in_log_space": Mistake(mp_pi_added_in_log_space, r"enters as its log"),
        "tf_constant": Mistake(mp_tf_constant, r"no gradient reaches `logits`"),
        "stop_gradient_on_scales": Mistake(
            mp_stop_gradient_scales, r"no gradient reaches `scales`"
        ),
        "debug_print_with_float": Mistake(mp_debug_print_with_float, r"not inside tf.function"),
        "numpy_for_the_size": Mistake(mp_numpy_for_the_size, r"not inside tf.function"),
        "sampler_scale_squared": Mistake(mp_sampler_scale_squared, r"not its spread"),
        "sampler_without_seed": Mistake(
            mp_sampler_without_seed, r"must take a number of draws and a seed"
        ),
    },
    give_away=("tfd.MixtureSameFamily(tfd.Categorical(logits=logits)",),
    downstream=_mp_downstream,
)


EXERCISES = [NORMALIZED_WEIGHTS, TOY_BETA_BOUND, MOG_PRIOR]
