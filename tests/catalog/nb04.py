"""Notebook 04: the KL in closed form (``kl_closed_form``) and the reparameterized sampler
(``reparameterize``), tried on answers in other styles and on the slips a cohort makes."""

from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops

import vae_prac
from catalog import Exercise, Mistake
from vae_prac.checks import reparameterization as check

tfd = tfp.distributions


# ---------------------------------------------------------------------------------------
# kl_closed_form(mu, sigma): [batch, latent_dim] -> [batch]. Nothing later compiles it,
# so NumPy is allowed; tfd.kl_divergence is the same closed form and passes too.


def _kl_numpy(mu, sigma):
    mu, sigma = np.asarray(mu), np.asarray(sigma)
    return np.sum(0.5 * (mu**2 + sigma**2 - 1.0 - np.log(sigma**2)), axis=1)


def _kl_keras_ops(mu, sigma):
    # log sigma^2 written as 2 log sigma: the same value, no square inside the log.
    per_dim = 0.5 * (ops.square(mu) + ops.square(sigma) - 1.0 - 2.0 * ops.log(sigma))
    return ops.sum(per_dim, axis=-1)


def _kl_log_variance(mu, sigma):
    # Kingma & Welling's form, via the log-variance.
    log_var = tf.math.log(tf.square(sigma))
    return -0.5 * tf.reduce_sum(1.0 + log_var - tf.square(mu) - tf.exp(log_var), axis=-1)


def _kl_tfd_independent(mu, sigma):
    q = tfd.Independent(tfd.Normal(mu, sigma), reinterpreted_batch_ndims=1)
    p = tfd.Independent(tfd.Normal(tf.zeros_like(mu), tf.ones_like(sigma)), 1)
    return tfd.kl_divergence(q, p)


def _kl_tfd_per_dim(mu, sigma):
    return tf.reduce_sum(tfd.kl_divergence(tfd.Normal(mu, sigma), tfd.Normal(0.0, 1.0)), 1)


def _kl_loop(mu, sigma):
    # One latent dimension at a time, added up in Python.
    total = 0.0
    for j in range(mu.shape[1]):
        m, s = mu[:, j], sigma[:, j]
        total += 0.5 * (m * m + s * s - 1.0 - tf.math.log(s * s))
    return total


def _kl_python_lists(mu, sigma):
    # Pure Python: a list with one float per example.
    mu, sigma = np.asarray(mu).tolist(), np.asarray(sigma).tolist()
    return [
        sum(0.5 * (m * m + s * s - 1.0 - math.log(s * s)) for m, s in zip(ms, ss))
        for ms, ss in zip(mu, sigma)
    ]


def _kl_tfd_method(mu, sigma):
    per_dim = tfd.Normal(mu, sigma).kl_divergence(tfd.Normal(0.0, 1.0))
    return tf.reduce_sum(per_dim, axis=1)


def _kl_float64_debug(mu, sigma):
    mu, sigma = tf.cast(mu, tf.float64), tf.cast(sigma, tf.float64)
    print("mu", mu.shape, "sigma", sigma.shape)  # a debug print left in
    return tf.reduce_sum(0.5 * (mu**2 + sigma**2 - 1.0) - tf.math.log(sigma), axis=-1)


def _kl_python_total(mu, sigma):
    return float(np.sum(_kl_numpy(mu, sigma)))


def _kl_typo(mu, sigma):
    return tf.reduce_sum(0.5 * (mu**2 + sigma**2 - 1.0 - tf.math.log(sigma**2)), axis=-1) + mu_


def _kl_per_dim(mu, sigma):
    return 0.5 * (mu**2 + sigma**2 - 1.0 - tf.math.log(sigma**2))


def _kl_monte_carlo(mu, sigma):
    q, p = tfd.Normal(mu, sigma), tfd.Normal(0.0, 1.0)
    z = q.sample(100)
    return tf.reduce_sum(tf.reduce_mean(q.log_prob(z) - p.log_prob(z), axis=0), axis=-1)


def _kl_monte_carlo_seeded(mu, sigma):
    # Repeatable, but still an estimate: close to the KL, not equal to it.
    q, p = tfd.Normal(mu, sigma), tfd.Normal(0.0, 1.0)
    z = q.sample(20_000, seed=(1, 2))
    return tf.reduce_sum(tf.reduce_mean(q.log_prob(z) - p.log_prob(z), axis=0), axis=-1)


def _kl_downstream(kl_closed_form):
    """Nothing later in the notebook calls it; use it as section 4 would: on the 5-D
    posterior of cell 12 (closed form 2.918 nats) and on an encoder's outputs."""
    mu = tf.constant([[0.5, -1.0, 0.2, 1.5, 0.0]])
    sigma = tf.constant([[0.8, 0.5, 1.2, 0.3, 1.0]])
    exact = vae_prac.kl_analytic(vae_prac.posterior(mu, sigma), vae_prac.prior(5))
    np.testing.assert_allclose(np.asarray(kl_closed_form(mu, sigma)), exact.numpy(), rtol=1e-4)
    keras.utils.set_random_seed(0)
    encoder = vae_prac.inference_network(latent_dim=4, hidden_size=16)
    x = tf.cast(tf.random.uniform([7, 28, 28, 1]) < 0.3, tf.float32)
    mu, sigma = encoder(x)
    exact = vae_prac.kl_analytic(vae_prac.posterior(mu, sigma), vae_prac.prior(4))
    np.testing.assert_allclose(
        np.asarray(kl_closed_form(mu, sigma)), exact.numpy(), rtol=1e-4, atol=1e-5
    )


KL = Exercise(
    name="kl_closed_form",
    check=check.kl_closed_form,
    correct={
        "numpy": _kl_numpy,
        "keras_ops_2_log_sigma": _kl_keras_ops,
        "log_variance_form": _kl_log_variance,
        "tfd_independent": _kl_tfd_independent,
        "tfd_per_dimension_summed": _kl_tfd_per_dim,
        "python_loop_over_dims": _kl_loop,
        "pure_python_lists": _kl_python_lists,
        "tfd_normal_kl_method": _kl_tfd_method,
        "float64_debug_print": _kl_float64_debug,
    },
    mistakes={
        "mean_over_latent_dims": Mistake(
            lambda mu, s: tf.reduce_mean(_kl_per_dim(mu, s), axis=-1), r"mean|averag"
        ),
        "sum_over_batch_too": Mistake(
            lambda mu, s: tf.reduce_sum(_kl_per_dim(mu, s)), r"single number.*batch"
        ),
        "per_dimension_output": Mistake(_kl_per_dim, r"per latent dimension"),
        "wrong_axis_0": Mistake(
            lambda mu, s: tf.reduce_sum(_kl_per_dim(mu, s), axis=0), r"batch axis"
        ),
        "keepdims": Mistake(
            lambda mu, s: tf.reduce_sum(_kl_per_dim(mu, s), axis=-1, keepdims=True), r"extra axis"
        ),
        "factor_half_missing": Mistake(
            lambda mu, s: tf.reduce_sum(2 * _kl_per_dim(mu, s), -1), r"twice.*1/2"
        ),
        "half_binds_to_mu_only": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * mu**2 + s**2 - 1.0 - tf.math.log(s**2), -1),
            r"1/2 multiplies only part",
        ),
        "log_sigma_for_log_sigma2": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - 1.0 - tf.math.log(s)), -1),
            r"log sigma in place of log sigma\^2",
        ),
        "sigma_for_variance": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s - 1.0 - tf.math.log(s**2)), -1),
            r"sigma in place of the variance",
        ),
        "mu_for_mu2": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu + s**2 - 1.0 - tf.math.log(s**2)), -1),
            r"mu in place of mu\^2",
        ),
        "constant_missing": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - tf.math.log(s**2)), -1),
            r"constant.*must be 0",
        ),
        "all_signs_flipped": Mistake(
            lambda mu, s: -tf.reduce_sum(_kl_per_dim(mu, s), -1), r"sign.*never negative"
        ),
        "log_term_sign": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - 1.0 + tf.math.log(s**2)), -1),
            r"log term has the wrong sign",
        ),
        "sigma_as_log_variance": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + tf.exp(s) - 1.0 - s), -1), r"log-variance"
        ),
        "reversed_direction_kl_p_q": Mistake(
            lambda mu, s: tf.reduce_sum(
                0.5 * (1 / s**2 + mu**2 / s**2 - 1.0 + tf.math.log(s**2)), -1
            ),
            r"KL\(p \|\| q\).*other direction",
        ),
        "monte_carlo_estimate": Mistake(_kl_monte_carlo, r"Monte Carlo.*closed form"),
        "monte_carlo_fixed_seed": Mistake(_kl_monte_carlo_seeded, r"closed form is exact"),
        "log_sigma_squared": Mistake(  # (log sigma)^2 for log(sigma^2): no named formula
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - 1.0 - tf.math.log(s) ** 2), -1),
            r"the KL is \d.*yours gives",
        ),
        "forgot_return": Mistake(lambda mu, s: None, r"return"),
        "mu_squared_missing": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (s**2 - 1.0 - tf.math.log(s**2)), -1),
            r"mu\^2 term is missing",
        ),
        "python_float_for_the_batch": Mistake(_kl_python_total, r"Python float.*per example"),
        "returns_the_distributions": Mistake(
            lambda mu, s: tfd.Normal(mu, s), r"returned a Normal, not a tensor"
        ),
        "error_in_own_code": Mistake(_kl_typo, r"kl_closed_form\(mu, sigma\) raised NameError"),
    },
    # The solution's code; no hint may contain it.
    give_away=(
        "tf.square(mu)",
        "mu**2 + sigma**2",
        "reduce_sum(",
        "0.5 * (",
        "- 1.0 - tf.math.log",
    ),
    downstream=_kl_downstream,
)


# ---------------------------------------------------------------------------------------
# my_reparameterize(mu, sigma, seed): z = mu + sigma * eps, eps ~ N(0, I) of mu's shape,
# drawn statelessly from seed (a pair of integers or an int tensor of shape [2]).


def _rep_keras_ops(mu, sigma, seed):
    # The noise from TensorFlow's stateless op; the arithmetic in keras.ops (Keras's own
    # random functions take no pair or tensor as a seed).
    eps = tf.random.stateless_normal(tf.shape(mu), seed=seed, dtype=mu.dtype)
    return ops.add(mu, ops.multiply(sigma, eps))


def _rep_tfd_sample(mu, sigma, seed):
    # TFP's Normal is FULLY_REPARAMETERIZED, and a pair or tensor seed is stateless.
    return tfd.Normal(mu, sigma).sample(seed=seed)


def _rep_mvn_diag(mu, sigma, seed):
    return tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma).sample(seed=seed)


def _rep_box_muller(mu, sigma, seed):
    # Two independent uniforms per entry; 1 - u lies in (0, 1], so the log is finite.
    u = tf.random.stateless_uniform(tf.concat([[2], tf.shape(mu)], 0), seed=seed, dtype=mu.dtype)
    radius = tf.sqrt(-2.0 * tf.math.log(1.0 - u[0]))
    return mu + sigma * radius * tf.cos(2.0 * math.pi * u[1])


def _rep_mean_stddev(mu, sigma, seed):
    # stateless_normal scales and shifts its noise itself: the same mu + sigma * eps.
    return tf.random.stateless_normal(tf.shape(mu), seed, mean=mu, stddev=sigma)


def _rep_float64_inside(mu, sigma, seed):
    eps = tf.random.stateless_normal(tf.shape(mu), seed, dtype=tf.float64)
    z = tf.cast(mu, tf.float64) + tf.cast(sigma, tf.float64) * eps
    return tf.cast(z, mu.dtype)


def _rep_split_seed(mu, sigma, seed):
    # A new stateless seed derived from the given one: still the same z for the same seed.
    derived = tf.random.experimental.stateless_split(seed, num=1)[0]
    return mu - sigma * tf.random.stateless_normal(tf.shape(mu), derived)


def _rep_tfp_split_debug(mu, sigma, seed):
    noise_seed, _ = tfp.random.split_seed(seed, n=2)
    eps = tf.random.stateless_normal(tf.shape(mu), noise_seed)
    print("eps", eps.shape)  # a debug print left in
    return sigma * eps + mu


# Mistakes.
_counter = itertools.count()
_FIXED_EPS = tf.random.stateless_normal([2, 3], (0, 0))


def _rep_numpy_from_seed(mu, sigma, seed):
    # Right eagerly; inside tf.function NumPy cannot read the seed tensor.
    rng = np.random.default_rng(np.asarray(seed))
    return mu + sigma * rng.standard_normal(mu.shape).astype(np.float32)


def _rep_numpy_global(mu, sigma, seed):
    return mu + sigma * np.random.normal(size=mu.shape).astype(np.float32)


def _rep_set_seed_inside(mu, sigma, seed):
    tf.random.set_seed(int(seed[0]) * 1000 + int(seed[1]))
    return mu + sigma * tf.random.normal(tf.shape(mu))


def _rep_keras_int_seed(mu, sigma, seed):
    # Keras's int seeds are stateless, but int(seed[0]) needs a Python value.
    return mu + sigma * keras.random.normal(ops.shape(mu), seed=int(seed[0]) * 1000 + int(seed[1]))


def _rep_counter_in_seed(mu, sigma, seed):
    shifted = tf.stack([tf.cast(seed[0], tf.int32) + next(_counter), tf.cast(seed[1], tf.int32)])
    return mu + sigma * tf.random.stateless_normal(tf.shape(mu), shifted)


_cache = {}


def _rep_cached_by_seed(mu, sigma, seed):
    # NumPy noise kept per seed in a dict: a tensor seed cannot be a dict key.
    if seed not in _cache:
        _cache[seed] = np.random.standard_normal(mu.shape).astype(np.float32)
    return mu + sigma * _cache[seed]


def _rep_fixed_eps(mu, sigma, seed):
    return mu + sigma * _FIXED_EPS


def _rep_mostly_fixed(mu, sigma, seed):
    # Fixed noise plus a little from the seed: different z per seed, yet nearly the same.
    fixed = tf.random.stateless_normal(tf.shape(mu), (0, 0))
    return mu + sigma * (fixed + 1e-3 * tf.random.stateless_normal(tf.shape(mu), seed))


def _rep_sign_flip(mu, sigma, seed):
    sign = tf.cast(1 - 2 * (seed[1] % 2), mu.dtype)
    return mu + sigma * sign * tf.random.stateless_normal(tf.shape(mu), (7, 7))


def _rep_box_muller_same_uniforms(mu, sigma, seed):
    u = tf.random.stateless_uniform(tf.shape(mu), seed=seed)
    return mu + sigma * tf.sqrt(-2.0 * tf.math.log(1.0 - u)) * tf.cos(2.0 * math.pi * u)


def _rep_box_muller_no_2(mu, sigma, seed):
    u = tf.random.stateless_uniform(tf.concat([[2], tf.shape(mu)], 0), seed=seed)
    return mu + sigma * tf.sqrt(-tf.math.log(1.0 - u[0])) * tf.cos(2.0 * math.pi * u[1])


def _stateless(shape, seed):
    return tf.random.stateless_normal(shape, seed)


def _rep_numpy_round_trip(mu, sigma, seed):
    eps = tf.random.stateless_normal(tf.shape(mu), seed).numpy()
    return tf.constant(mu.numpy() + sigma.numpy() * eps)


def _rep_downstream(reparameterize):
    """The notebook's later cells with the student's sampler, called as they call it."""
    # Section 7: 100,000 draws of a 3-D Gaussian; d E[z]/d mu = 1, d E[z^2]/d sigma = 2 sigma.
    n = 100_000
    mu = tf.Variable([0.5, -1.0, 2.0])
    sigma = tf.Variable([1.0, 0.5, 2.0])
    with tf.GradientTape(persistent=True) as tape:
        z = reparameterize(
            tf.broadcast_to(mu, [n, 3]), tf.broadcast_to(sigma, [n, 3]), seed=(2017, 0)
        )
        mean_z = tf.reduce_sum(tf.reduce_mean(z, axis=0))
        mean_z2 = tf.reduce_sum(tf.reduce_mean(z**2, axis=0))
    np.testing.assert_allclose(tape.gradient(mean_z, mu).numpy(), 1.0, atol=0.01)
    np.testing.assert_allclose(tape.gradient(mean_z2, sigma).numpy(), 2 * sigma.numpy(), rtol=0.05)
    del tape

    # Section 8: reparameterized versus score-function gradients, [L, repeats, d].
    def gradient_estimates(d, n_samples=10, repeats=2000, seed=0):
        mu = tf.Variable(tf.ones([repeats, d]))
        sigma = tf.ones([repeats, d])
        with tf.GradientTape(persistent=True) as tape:
            z = reparameterize(
                tf.broadcast_to(mu, [n_samples, repeats, d]),
                tf.broadcast_to(sigma, [n_samples, repeats, d]),
                seed=(2017, seed),
            )
            f = tf.reduce_sum(z**2, axis=-1)
            pathwise_objective = tf.reduce_sum(tf.reduce_mean(f, axis=0))
            log_q = tfd.Independent(tfd.Normal(mu, sigma), 1).log_prob(tf.stop_gradient(z))
            score_objective = tf.reduce_sum(tf.reduce_mean(tf.stop_gradient(f) * log_q, 0))
        reparameterized = tape.gradient(pathwise_objective, mu)[:, 0].numpy()
        score_function = tape.gradient(score_objective, mu)[:, 0].numpy()
        return reparameterized, score_function

    for d in (1, 100):
        reparam, score = gradient_estimates(d)
        assert reparam.shape == score.shape == (2000,)
        assert abs(reparam.mean() - 2) < 6 * reparam.std() / math.sqrt(2000), reparam.mean()
        assert 0.3 < reparam.var() < 0.5, reparam.var()  # 4 sigma^2 / L = 0.4
        assert np.all(np.isfinite(score))

    # Section 8: f(z) = sin(omega z), where the pathwise variance grows like omega^2.
    mu = tf.Variable(tf.zeros([20_000, 1]))
    with tf.GradientTape() as tape:
        z = reparameterize(mu, tf.ones([20_000, 1]), seed=(2020, 1))
        pathwise = tf.reduce_sum(tf.sin(30.0 * z))
    assert 400 < tape.gradient(pathwise, mu).numpy().var() < 500  # about 30^2 / 2 = 450


REPARAMETERIZE = Exercise(
    name="reparameterize",
    check=check.reparameterize,
    correct={
        "stateless_normal_keras_ops": _rep_keras_ops,
        "tfd_normal_sample_seed": _rep_tfd_sample,
        "tfd_mvn_diag_sample_seed": _rep_mvn_diag,
        "box_muller_stateless_uniform": _rep_box_muller,
        "stateless_normal_mean_stddev": _rep_mean_stddev,
        "float64_inside": _rep_float64_inside,
        "stateless_split_mu_minus_sigma_eps": _rep_split_seed,
        "tfp_split_seed_debug_print": _rep_tfp_split_debug,
    },
    mistakes={
        # The seed: ignored, used statefully, read as Python numbers, or partly.
        "ignores_seed_global_normal": Mistake(
            lambda mu, s, seed: mu + s * tf.random.normal(tf.shape(mu)),
            r"same seed.*different z.*stateless",
        ),
        "numpy_global_noise": Mistake(_rep_numpy_global, r"same seed.*different z"),
        "stateful_op_seed": Mistake(
            lambda mu, s, seed: mu + s * tf.random.normal(tf.shape(mu), seed=int(seed[0])),
            r"same seed.*different z.*op seed",
        ),
        "tfd_sample_without_seed": Mistake(
            lambda mu, s, seed: tfd.Normal(mu, s).sample(), r"same seed.*different z"
        ),
        "counter_added_to_seed": Mistake(_rep_counter_in_seed, r"same seed.*different z"),
        "numpy_noise_from_seed": Mistake(_rep_numpy_from_seed, r"tf\.function.*NumPy cannot"),
        "numpy_noise_cached_per_seed": Mistake(
            _rep_cached_by_seed, r"int32 tensor.*raised TypeError"
        ),
        "set_seed_inside": Mistake(_rep_set_seed_inside, r"global random state"),
        "keras_int_seed_from_python_ints": Mistake(
            _rep_keras_int_seed, r"tf\.function.*no Python value"
        ),
        "fixed_stateless_seed": Mistake(
            lambda mu, s, seed: mu + s * tf.random.stateless_normal(tf.shape(mu), seed=[1, 2]),
            r"all gave the same z",
        ),
        "noise_made_once_outside": Mistake(_rep_fixed_eps, r"all gave the same z"),
        "first_integer_of_seed_only": Mistake(
            lambda mu, s, seed: mu + s * _stateless(tf.shape(mu), [seed[0], 0]),
            r"\(1, 2\) and \(1, 3\).*both of its integers",
        ),
        "seed_integers_added": Mistake(
            lambda mu, s, seed: mu + s * _stateless(tf.shape(mu), [seed[0] + seed[1], 0]),
            r"same z.*both of its integers",
        ),
        "sign_of_fixed_noise_from_seed": Mistake(_rep_sign_flip, r"gave the same z"),
        "mostly_fixed_noise": Mistake(_rep_mostly_fixed, r"related.*correlation"),
        "no_seed_argument": Mistake(
            lambda mu, s: mu + s * tf.random.normal(tf.shape(mu)), r"takes no argument seed"
        ),
        "seed_argument_renamed": Mistake(
            lambda mu, s, key: mu + s * _stateless(tf.shape(mu), key), r"name it seed"
        ),
        # The shape of the noise.
        "noise_shared_across_latent_dims": Mistake(
            lambda mu, s, seed: mu + s * _stateless(tf.concat([tf.shape(mu)[:-1], [1]], 0), seed),
            r"every latent dimension got the same noise",
        ),
        "noise_shared_across_batch": Mistake(
            lambda mu, s, seed: mu + s * _stateless(tf.shape(mu)[-1:], seed),
            r"every example got the same noise",
        ),
        "noise_only_for_rank_2": Mistake(
            lambda mu, s, seed: mu + s * _stateless([tf.shape(mu)[0], tf.shape(mu)[1]], seed),
            r"\[samples, batch, latent_dim\].*whatever its rank",
        ),
        "noise_shared_across_samples_axis": Mistake(
            lambda mu, s, seed: mu + s * _stateless(tf.shape(mu)[-2:], seed),
            r"every sample got the same noise",
        ),
        # The distribution of the noise and its scale.
        "uniform_noise": Mistake(
            lambda mu, s, seed: mu + s * tf.random.stateless_uniform(tf.shape(mu), seed), r"uniform"
        ),
        "uniform_noise_unit_variance": Mistake(
            lambda mu, s, seed: (
                mu
                + s * tf.random.stateless_uniform(tf.shape(mu), seed, -math.sqrt(3), math.sqrt(3))
            ),
            r"68\.3%.*not normal",
        ),
        "laplace_noise": Mistake(
            lambda mu, s, seed: (
                mu + s * tfd.Laplace(0.0, 1 / math.sqrt(2.0)).sample(tf.shape(mu), seed=seed)
            ),
            r"68\.3%.*not normal",
        ),
        "truncated_normal_noise": Mistake(
            lambda mu, s, seed: mu + s * tf.random.stateless_truncated_normal(tf.shape(mu), seed),
            r"standard deviation 0\.8\d",
        ),
        "box_muller_same_uniforms_twice": Mistake(_rep_box_muller_same_uniforms, r"mean"),
        "box_muller_without_the_2": Mistake(_rep_box_muller_no_2, r"standard deviation 0\.7\d"),
        "variance_for_std": Mistake(
            lambda mu, s, seed: mu + s**2 * _stateless(tf.shape(mu), seed), r"variance sigma\^2"
        ),
        "sqrt_sigma": Mistake(
            lambda mu, s, seed: mu + tf.sqrt(s) * _stateless(tf.shape(mu), seed), r"sqrt\(sigma\)"
        ),
        "sigma_as_log_variance": Mistake(
            lambda mu, s, seed: mu + tf.exp(0.5 * s) * _stateless(tf.shape(mu), seed),
            r"log-variance",
        ),
        "sigma_forgotten": Mistake(
            lambda mu, s, seed: mu + _stateless(tf.shape(mu), seed), r"not multiplied by sigma"
        ),
        # The gradient path.
        "stop_gradient_mu": Mistake(
            lambda mu, s, seed: tf.stop_gradient(mu) + s * _stateless(tf.shape(mu), seed),
            r"no gradient reaches mu\b",
        ),
        "stop_gradient_sigma": Mistake(
            lambda mu, s, seed: mu + tf.stop_gradient(s) * _stateless(tf.shape(mu), seed),
            r"no gradient reaches sigma",
        ),
        "stop_gradient_all": Mistake(
            lambda mu, s, seed: tf.stop_gradient(mu + s * _stateless(tf.shape(mu), seed)),
            r"no gradient reaches mu or sigma",
        ),
        "numpy_round_trip": Mistake(_rep_numpy_round_trip, r"no gradient"),
        # What is returned.
        "returns_numpy_array": Mistake(
            lambda mu, s, seed: mu.numpy() + s.numpy() * np.ones(mu.shape, np.float32),
            r"not a TensorFlow tensor.*gradient",
        ),
        "returns_python_float": Mistake(lambda mu, s, seed: 0.0, r"Python float, not a tensor"),
        "returns_the_distribution": Mistake(
            lambda mu, s, seed: tfd.Normal(mu, s), r"distribution.*not a sample"
        ),
        "returns_z_and_eps": Mistake(
            lambda mu, s, seed: (
                mu + s * _stateless(tf.shape(mu), seed),
                _stateless(tf.shape(mu), seed),
            ),
            r"tuple of 2.*z alone",
        ),
        "returns_eps_only": Mistake(
            lambda mu, s, seed: _stateless(tf.shape(mu), seed), r"noise eps itself"
        ),
        "returns_mu_only": Mistake(lambda mu, s, seed: mu, r"mu itself.*no noise"),
        "summed_over_latent": Mistake(
            lambda mu, s, seed: tf.reduce_sum(mu + s * _stateless(tf.shape(mu), seed), -1),
            r"one number per example",
        ),
        "float64": Mistake(
            lambda mu, s, seed: (
                tf.cast(mu, tf.float64)
                + tf.cast(s, tf.float64)
                * tf.random.stateless_normal(tf.shape(mu), seed, dtype=tf.float64)
            ),
            r"dtype float64",
        ),
        "transposed": Mistake(
            lambda mu, s, seed: tf.transpose(mu + s * _stateless(tf.shape(mu), seed)), r"transposed"
        ),
        "forgot_return": Mistake(lambda mu, s, seed: None, r"None.*return"),
    },
    # The solution's code; no hint may contain it.
    give_away=(
        "tf.shape(mu)",
        "stateless_normal(",
        "dtype=mu.dtype",
        "sample(seed=seed)",
        "mu + sigma * tf.",
    ),
    downstream=_rep_downstream,
)


EXERCISES = [KL, REPARAMETERIZE]
