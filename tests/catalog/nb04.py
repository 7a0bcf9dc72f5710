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
from vae_prac.checks import reparameterization as check

from catalog import Exercise, Mistake

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
    np.testing.assert_allclose(np.asarray(kl_closed_form(mu, sigma)), exact.numpy(),
                               rtol=1e-4)
    keras.utils.set_random_seed(0)
    encoder = vae_prac.inference_network(latent_dim=4, hidden_size=16)
    x = tf.cast(tf.random.uniform([7, 28, 28, 1]) < 0.3, tf.float32)
    mu, sigma = encoder(x)
    exact = vae_prac.kl_analytic(vae_prac.posterior(mu, sigma), vae_prac.prior(4))
    np.testing.assert_allclose(np.asarray(kl_closed_form(mu, sigma)), exact.numpy(),
                               rtol=1e-4, atol=1e-5)


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
    },
    mistakes={
        "mean_over_latent_dims": Mistake(
            lambda mu, s: tf.reduce_mean(_kl_per_dim(mu, s), axis=-1), r"mean|averag"),
        "sum_over_batch_too": Mistake(
            lambda mu, s: tf.reduce_sum(_kl_per_dim(mu, s)), r"single number.*batch"),
        "per_dimension_output": Mistake(_kl_per_dim, r"per latent dimension"),
        "wrong_axis_0": Mistake(
            lambda mu, s: tf.reduce_sum(_kl_per_dim(mu, s), axis=0), r"batch axis"),
        "keepdims": Mistake(
            lambda mu, s: tf.reduce_sum(_kl_per_dim(mu, s), axis=-1, keepdims=True),
            r"extra axis"),
        "factor_half_missing": Mistake(
            lambda mu, s: tf.reduce_sum(2 * _kl_per_dim(mu, s), -1), r"twice.*1/2"),
        "half_binds_to_mu_only": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * mu**2 + s**2 - 1.0 - tf.math.log(s**2), -1),
            r"1/2 multiplies only part"),
        "log_sigma_for_log_sigma2": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - 1.0 - tf.math.log(s)), -1),
            r"log sigma in place of log sigma\^2"),
        "sigma_for_variance": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s - 1.0 - tf.math.log(s**2)), -1),
            r"sigma in place of the variance"),
        "mu_for_mu2": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu + s**2 - 1.0 - tf.math.log(s**2)), -1),
            r"mu in place of mu\^2"),
        "constant_missing": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - tf.math.log(s**2)), -1),
            r"constant.*must be 0"),
        "all_signs_flipped": Mistake(
            lambda mu, s: -tf.reduce_sum(_kl_per_dim(mu, s), -1), r"sign.*never negative"),
        "log_term_sign": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - 1.0 + tf.math.log(s**2)), -1),
            r"log term has the wrong sign"),
        "sigma_as_log_variance": Mistake(
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + tf.exp(s) - 1.0 - s), -1),
            r"log-variance"),
        "reversed_direction_kl_p_q": Mistake(
            lambda mu, s: tf.reduce_sum(
                0.5 * (1 / s**2 + mu**2 / s**2 - 1.0 + tf.math.log(s**2)), -1),
            r"KL\(p \|\| q\).*other direction"),
        "monte_carlo_estimate": Mistake(_kl_monte_carlo, r"Monte Carlo.*closed form"),
        "monte_carlo_fixed_seed": Mistake(_kl_monte_carlo_seeded, r"closed form is exact"),
        "log_sigma_squared": Mistake(   # (log sigma)^2 for log(sigma^2): no named formula
            lambda mu, s: tf.reduce_sum(0.5 * (mu**2 + s**2 - 1.0 - tf.math.log(s)**2), -1),
            r"the KL is \d.*yours gives"),
        "forgot_return": Mistake(lambda mu, s: None, r"return"),
    },
    # The solution's code; no hint may contain it.
    give_away=("tf.square(mu)", "mu**2 + sigma**2", "reduce_sum(", "0.5 * (",
               "- 1.0 - tf.math.log"),
    downstream=_kl_downstream,
)


# ---------------------------------------------------------------------------------------
# my_reparameterize(mu, sigma): z = mu + sigma * eps, eps ~ N(0, I), any shape.

_SEEDS = keras.random.SeedGenerator(2017)                    # made once, outside
_GENERATOR = tf.random.Generator.from_non_deterministic_state()


def _rep_keras(mu, sigma):
    eps = keras.random.normal(ops.shape(mu), seed=_SEEDS)
    return ops.add(mu, ops.multiply(sigma, eps))


def _rep_keras_unseeded(mu, sigma):
    return mu + sigma * keras.random.normal(ops.shape(mu))


def _rep_generator(mu, sigma):
    return mu + sigma * _GENERATOR.normal(tf.shape(mu))


def _rep_tfd_standard(mu, sigma):
    eps = tfd.Normal(0.0, 1.0).sample(tf.shape(mu))
    return mu + sigma * eps


def _rep_tfd_sample(mu, sigma):
    # TFP's Normal is FULLY_REPARAMETERIZED: it draws mu + sigma * eps itself.
    return tfd.Normal(mu, sigma).sample()


def _rep_mvn_diag(mu, sigma):
    return tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma).sample()


def _rep_minus(mu, sigma):
    # -eps is standard normal too, so this is an equally valid sample.
    return mu - sigma * tf.random.normal(tf.shape(mu))


def _rep_stateless_fresh_seed(mu, sigma):
    seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)   # new every call
    return mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=seed)


def _rep_comment_mentions_sample(mu, sigma):
    # Same as tfd.Normal(mu, sigma).sample(), written out by hand.
    eps = tf.random.normal(mu.shape)
    return sigma * eps + mu


def _rep_op_seed(mu, sigma):
    return mu + sigma * tf.random.normal(tf.shape(mu), seed=7)


# Mistakes.
def _rep_numpy_noise(mu, sigma):
    return mu + sigma * np.random.normal(size=mu.shape).astype(np.float32)


_counter = itertools.count()


def _rep_python_counter_seed(mu, sigma):
    # Fresh eagerly, but the Python counter is read once, when tf.function traces it.
    return mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=[next(_counter), 0])


def _rep_numpy_round_trip(mu, sigma):
    z = mu.numpy() + sigma.numpy() * np.random.standard_normal(mu.shape)
    return tf.constant(z, tf.float32)


def _rep_set_seed(mu, sigma):
    tf.random.set_seed(0)
    return mu + sigma * tf.random.normal(tf.shape(mu))


def _rep_downstream(reparameterize):
    """Cells 29 and 33 of the notebook, with the student's sampler."""
    # Cell 29: 100,000 draws of a 3-D Gaussian; d E[z]/d mu = 1, d E[z^2]/d sigma = 2 sigma.
    tf.random.set_seed(0)
    n = 100_000
    mu = tf.Variable([0.5, -1.0, 2.0])
    sigma = tf.Variable([1.0, 0.5, 2.0])
    with tf.GradientTape(persistent=True) as tape:
        z = reparameterize(tf.broadcast_to(mu, [n, 3]), tf.broadcast_to(sigma, [n, 3]))
        mean_z = tf.reduce_sum(tf.reduce_mean(z, axis=0))
        mean_z2 = tf.reduce_sum(tf.reduce_mean(z**2, axis=0))
    np.testing.assert_allclose(tape.gradient(mean_z, mu).numpy(), 1.0, atol=0.01)
    np.testing.assert_allclose(tape.gradient(mean_z2, sigma).numpy(), 2 * sigma.numpy(),
                               rtol=0.05)
    del tape

    # Cells 33 and 35: reparameterized versus score-function gradients, [L, repeats, d].
    def gradient_estimates(d, n_samples=10, repeats=2000, seed=0):
        tf.random.set_seed(seed)
        mu = tf.Variable(tf.ones([repeats, d]))
        sigma = tf.ones([repeats, d])
        with tf.GradientTape(persistent=True) as tape:
            z = reparameterize(tf.broadcast_to(mu, [n_samples, repeats, d]),
                               tf.broadcast_to(sigma, [n_samples, repeats, d]))
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
        assert 0.3 < reparam.var() < 0.5, reparam.var()        # 4 sigma^2 / L = 0.4
        assert np.all(np.isfinite(score))


REPARAMETERIZE = Exercise(
    name="reparameterize",
    check=check.reparameterize,
    correct={
        "keras_ops_seed_generator": _rep_keras,
        "keras_random_unseeded": _rep_keras_unseeded,
        "tf_random_generator": _rep_generator,
        "tfd_standard_normal_noise": _rep_tfd_standard,
        "tfd_normal_sample": _rep_tfd_sample,
        "tfd_mvn_diag_sample": _rep_mvn_diag,
        "mu_minus_sigma_eps": _rep_minus,
        "stateless_with_fresh_seed": _rep_stateless_fresh_seed,
        "comment_mentions_sample": _rep_comment_mentions_sample,
        "op_level_seed": _rep_op_seed,
    },
    mistakes={
        "noise_shared_across_latent_dims": Mistake(
            lambda mu, s: mu + s * tf.random.normal([tf.shape(mu)[0], 1]),
            r"every latent dimension got the same noise"),
        "noise_shared_across_batch": Mistake(
            lambda mu, s: mu + s * tf.random.normal(tf.shape(mu)[-1:]),
            r"every example got the same noise"),
        "noise_only_for_rank_2": Mistake(
            lambda mu, s: mu + s * tf.random.normal([tf.shape(mu)[0], tf.shape(mu)[1]]),
            r"samples"),
        "noise_shared_across_samples_axis": Mistake(
            lambda mu, s: mu + s * tf.random.normal(tf.shape(mu)[-2:]),
            r"every sample got the same noise"),
        "numpy_noise": Mistake(_rep_numpy_noise, r"tf\.function.*traced"),
        "numpy_noise_decorated_tf_function": Mistake(
            tf.function(_rep_numpy_noise), r"tf\.function.*traced"),
        "laplace_noise": Mistake(
            lambda mu, s: mu + s * tfd.Laplace(0.0, 1 / math.sqrt(2.0)).sample(tf.shape(mu)),
            r"68\.3%.*not normal"),
        "python_counter_seed": Mistake(_rep_python_counter_seed, r"tf\.function.*traced"),
        "numpy_round_trip": Mistake(_rep_numpy_round_trip, r"no gradient"),
        "returns_numpy_array": Mistake(
            lambda mu, s: mu.numpy() + s.numpy() * np.random.standard_normal(mu.shape),
            r"not a TensorFlow tensor.*gradient"),
        "fixed_stateless_seed": Mistake(
            lambda mu, s: mu + s * tf.random.stateless_normal(tf.shape(mu), seed=[1, 2]),
            r"same z"),
        "set_seed_inside": Mistake(_rep_set_seed, r"same z"),
        "uniform_noise": Mistake(
            lambda mu, s: mu + s * tf.random.uniform(tf.shape(mu)), r"uniform"),
        "uniform_noise_unit_variance": Mistake(
            lambda mu, s: mu + s * tf.random.uniform(tf.shape(mu), -math.sqrt(3), math.sqrt(3)),
            r"68\.3%.*not normal"),
        "truncated_normal_noise": Mistake(
            lambda mu, s: mu + s * tf.random.truncated_normal(tf.shape(mu)),
            r"standard deviation 0\.8\d"),
        "variance_for_std": Mistake(
            lambda mu, s: mu + s**2 * tf.random.normal(tf.shape(mu)), r"variance sigma\^2"),
        "sqrt_sigma": Mistake(
            lambda mu, s: mu + tf.sqrt(s) * tf.random.normal(tf.shape(mu)), r"sqrt\(sigma\)"),
        "sigma_as_log_variance": Mistake(
            lambda mu, s: mu + tf.exp(0.5 * s) * tf.random.normal(tf.shape(mu)), r"log-variance"),
        "exp_sigma": Mistake(
            lambda mu, s: mu + tf.exp(s) * tf.random.normal(tf.shape(mu)), r"exp\(sigma\)"),
        "sigma_forgotten": Mistake(
            lambda mu, s: mu + tf.random.normal(tf.shape(mu)), r"not multiplied by sigma"),
        "stop_gradient_mu": Mistake(
            lambda mu, s: tf.stop_gradient(mu) + s * tf.random.normal(tf.shape(mu)),
            r"no gradient reaches mu\b"),
        "stop_gradient_sigma": Mistake(
            lambda mu, s: mu + tf.stop_gradient(s) * tf.random.normal(tf.shape(mu)),
            r"no gradient reaches sigma"),
        "stop_gradient_all": Mistake(
            lambda mu, s: tf.stop_gradient(mu + s * tf.random.normal(tf.shape(mu))),
            r"no gradient reaches mu or sigma"),
        "returns_eps_only": Mistake(
            lambda mu, s: tf.random.normal(tf.shape(mu)), r"noise eps itself"),
        "returns_mu_only": Mistake(lambda mu, s: mu, r"mu itself.*no noise"),
        "summed_over_latent": Mistake(
            lambda mu, s: tf.reduce_sum(mu + s * tf.random.normal(tf.shape(mu)), -1),
            r"one number per example"),
        "float64": Mistake(
            lambda mu, s: tf.cast(mu, tf.float64)
            + tf.cast(s, tf.float64) * tf.random.normal(tf.shape(mu), dtype=tf.float64),
            r"dtype float64"),
        "transposed": Mistake(
            lambda mu, s: tf.transpose(mu + s * tf.random.normal(tf.shape(mu))), r"transposed"),
        "forgot_return": Mistake(lambda mu, s: None, r"None.*return"),
    },
    give_away=("tf.shape(mu)", "random.normal(", "dtype=mu.dtype", "stateless_normal(",
               "mu + sigma * tf."),
    downstream=_rep_downstream,
)


EXERCISES = [KL, REPARAMETERIZE]
