"""Notebook 02 (the ELBO): answers to the Code Task `toy_elbo`.

The task: ``toy_elbo(x, m, v, n_samples, seed)``, a Monte Carlo estimate of the ELBO
of the toy model p(z) = N(0, 1), p(x|z) = N(x; z, S^2) for q(z) = N(m, v) (v is a
variance), averaging over ``n_samples`` draws from q made with ``seed`` (the same seed
gives the same number). The solution uses tfd.Normal's sample and log_prob and
tf.reduce_mean; the correct answers below get there other ways (NumPy, stateless tf.random,
keras.ops, a Python loop, Box-Muller, antithetic pairs, float64, closed-form KL or entropy).
The mistakes include hand-written log-densities with one slip each.
"""

from __future__ import annotations

import math
import random

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from catalog import Exercise, Mistake
from vae_prac.checks import elbo as check

tfd = tfp.distributions

# The notebook's globals that the answers use.
S = check.TOY_S
prior = tfd.Normal(loc=0.0, scale=1.0)
LOG_2PI = math.log(2 * math.pi)

# ---------------------------------------------------------------------------
# Correct answers, in other styles than the solution's.


def numpy_default_rng(x, m, v, n_samples=10_000, seed=(0, 0)):
    rng = np.random.default_rng(seed)  # seeded: the same seed, the same draws
    z = rng.normal(m, np.sqrt(v), size=n_samples)

    def log_normal(value, loc, scale):
        return -0.5 * np.log(2 * np.pi * scale**2) - (value - loc) ** 2 / (2 * scale**2)

    return np.mean(log_normal(x, z, S) + log_normal(z, 0.0, 1.0) - log_normal(z, m, np.sqrt(v)))


def stateless_normal_by_hand(x, m, v, n_samples=10_000, seed=(0, 0)):
    eps = tf.random.stateless_normal([n_samples], seed=seed)
    std = tf.sqrt(tf.constant(v, tf.float32))
    z = m + std * eps  # reparameterized draws

    def log_normal(value, loc, scale):
        return -0.5 * LOG_2PI - tf.math.log(scale) - 0.5 * tf.square((value - loc) / scale)

    log_w = log_normal(x, z, S) + log_normal(z, 0.0, 1.0) - log_normal(z, m, std)
    return tf.reduce_mean(log_w)


def keras_ops_with_tfd(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(loc=m, scale=math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    # N(x; z, s) = N(z; x, s): the likelihood may be written either way round.
    log_w = tfd.Normal(x, S).log_prob(z) + prior.log_prob(z) - q.log_prob(z)
    return keras.ops.mean(log_w)


def joint_distribution(x, m, v, n_samples=10_000, seed=(0, 0)):
    model = tfd.JointDistributionNamed(dict(z=tfd.Normal(0.0, 1.0), x=lambda z: tfd.Normal(z, S)))
    q = tfd.Normal(m, tf.sqrt(float(v)))
    z = q.sample(n_samples, seed=seed)
    log_joint = model.log_prob(z=z, x=tf.fill([n_samples], float(x)))
    return float(tf.reduce_mean(log_joint - q.log_prob(z)))


def closed_form_kl_to_prior(x, m, v, n_samples=10_000, seed=(0, 0)):
    # Monte Carlo reconstruction term minus the exact KL(q || p(z)): also unbiased.
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x)) - tfd.kl_divergence(q, prior)


@tf.function(reduce_retracing=True)
def compiled_with_tf_function(x, m, v, n_samples=10_000, seed=(0, 0)):
    # Compiled: the seeded, stateless draws of tfd still differ from seed to seed.
    q = tfd.Normal(loc=m, scale=tf.sqrt(tf.cast(v, tf.float32)))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z))


def tfd_sample_with_shape(x, m, v, n_samples=10_000, seed=(0, 0)):
    # A Normal with batch shape [1]: average over the samples and that axis.
    q = tfd.Normal(loc=[m], scale=[math.sqrt(v)])
    z = q.sample(n_samples, seed=seed)
    return tf.squeeze(
        tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z), axis=0)
    )


def float64_throughout(x, m, v, n_samples=10_000, seed=(0, 0)):
    m64, v64, x64 = np.float64(m), np.float64(v), np.float64(x)
    q = tfd.Normal(loc=m64, scale=np.sqrt(v64))
    z = q.sample(n_samples, seed=seed)  # float64 draws
    log_w = (
        tfd.Normal(z, np.float64(S)).log_prob(x64)
        + tfd.Normal(np.float64(0.0), np.float64(1.0)).log_prob(z)
        - q.log_prob(z)
    )
    return tf.reduce_mean(log_w)


def pure_python_loop(x, m, v, n_samples=10_000, seed=(0, 0)):
    rng = random.Random(seed[0] * 2**32 + seed[1])  # both numbers of the seed
    sd = math.sqrt(v)

    def log_normal(value, loc, scale):
        return -math.log(scale * math.sqrt(2 * math.pi)) - (value - loc) ** 2 / (2 * scale**2)

    total = 0.0
    for _ in range(n_samples):
        z = rng.gauss(m, sd)
        total += log_normal(x, z, S) + log_normal(z, 0.0, 1.0) - log_normal(z, m, sd)
    return total / n_samples


def box_muller(x, m, v, n_samples=10_000, seed=(0, 0)):
    u = tf.random.stateless_uniform([2, n_samples], seed=seed, minval=1e-7, maxval=1.0)
    eps = tf.sqrt(-2.0 * tf.math.log(u[0])) * tf.cos(2 * math.pi * u[1])
    z = m + math.sqrt(v) * eps
    q = tfd.Normal(m, math.sqrt(v))
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z))


def keras_random_and_ops(x, m, v, n_samples=10_000, seed=(0, 0)):
    ops = keras.ops
    # keras.random takes one integer seed: fold the pair into one, both numbers kept.
    eps = keras.random.normal((n_samples,), seed=seed[0] * 1_000_003 + seed[1])
    sd = math.sqrt(v)
    z = m + sd * eps

    def log_normal(value, loc, scale):
        return (
            -0.5 * math.log(2 * math.pi) - ops.log(scale) - 0.5 * ops.square((value - loc) / scale)
        )

    return ops.mean(log_normal(x, z, S) + log_normal(z, 0.0, 1.0) - log_normal(z, m, sd))


def antithetic_pairs(x, m, v, n_samples=10_000, seed=(0, 0)):
    # Draws in pairs z = m +- sd * eps: each pair averages the same as two independent ones.
    half = tf.random.stateless_normal([(n_samples + 1) // 2], seed=seed)
    eps = tf.concat([half, -half], axis=0)[:n_samples]
    q = tfd.Normal(m, math.sqrt(v))
    z = m + math.sqrt(v) * eps
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z))


def closed_form_entropy(x, m, v, n_samples=10_000, seed=(0, 0)):
    # -E_q[log q] is the entropy of q, known exactly for a Normal.
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z)) + q.entropy()


def debug_prints(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    print("z:", z.shape, float(tf.reduce_mean(z)))  # left in while debugging
    log_w = tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z)
    print("log weights:", float(tf.reduce_min(log_w)), float(tf.reduce_max(log_w)))
    return tf.reduce_mean(log_w)


# ---------------------------------------------------------------------------
# Mistakes a cohort makes. Most are the solution with one slip.


def _by_hand(x, m, v, n_samples, seed, log_normal):
    """The estimate with a hand-written log-density ``log_normal``."""
    sd = math.sqrt(v)
    z = m + sd * np.random.default_rng(seed).standard_normal(n_samples)
    return np.mean(log_normal(x, z, S) + log_normal(z, 0.0, 1.0) - log_normal(z, m, sd))


def no_two_pi(x, m, v, n_samples=10_000, seed=(0, 0)):
    return _by_hand(
        x,
        m,
        v,
        n_samples,
        seed,
        lambda value, loc, scale: -np.log(scale) - (value - loc) ** 2 / (2 * scale**2),
    )


def unnormalized_density(x, m, v, n_samples=10_000, seed=(0, 0)):
    return _by_hand(
        x, m, v, n_samples, seed, lambda value, loc, scale: -((value - loc) ** 2) / (2 * scale**2)
    )


def operator_precedence(x, m, v, n_samples=10_000, seed=(0, 0)):
    return _by_hand(
        x,
        m,
        v,
        n_samples,
        seed,
        lambda value, loc, scale: (
            -0.5 * np.log(2 * np.pi * scale**2) - (value - loc) ** 2 / 2 * scale**2
        ),
    )


def sigma_for_variance_in_log(x, m, v, n_samples=10_000, seed=(0, 0)):
    return _by_hand(
        x,
        m,
        v,
        n_samples,
        seed,
        lambda value, loc, scale: (
            -0.5 * np.log(2 * np.pi * scale) - (value - loc) ** 2 / (2 * scale**2)
        ),
    )


def samples_from_prior(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = prior.sample(n_samples, seed=seed)  # z from p(z), not q
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z))


def kl_added(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x)) + tfd.kl_divergence(q, prior)


def kl_reversed(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x)) - tfd.kl_divergence(prior, q)


def log_q_with_prior(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - prior.log_prob(z))


def exact_closed_form(x, m, v, n_samples=10_000, seed=(0, 0)):
    # No draws at all: log p(x) - KL(q || p(z|x)), known only for this toy model.
    posterior = tfd.Normal(x / (1 + S**2), math.sqrt(S**2 / (1 + S**2)))
    evidence = tfd.Normal(0.0, math.sqrt(1 + S**2))
    return evidence.log_prob(x) - tfd.kl_divergence(tfd.Normal(m, math.sqrt(v)), posterior)


def other_parameter_names(x, m, v, L=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(L, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z))


def returns_the_distribution(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    q.sample(n_samples, seed=seed)
    return q


def _log_w(x, m, v, n_samples, seed, q_scale=None, lik_scale=S, p=prior, logq_scale=None):
    q = tfd.Normal(m, math.sqrt(v) if q_scale is None else q_scale)
    z = q.sample(n_samples, seed=seed)
    q_for_log = q if logq_scale is None else tfd.Normal(m, logq_scale)
    return tfd.Normal(z, lik_scale).log_prob(x) + p.log_prob(z) - q_for_log.log_prob(z)


def sum_not_mean(x, m, v, n_samples=10_000, seed=(0, 0)):
    return tf.reduce_sum(_log_w(x, m, v, n_samples, seed))


def missing_log_q(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z))


def plus_log_q(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) + q.log_prob(z))


def log_mean_exp(x, m, v, n_samples=10_000, seed=(0, 0)):
    log_w = _log_w(x, m, v, n_samples, seed)
    return tf.reduce_logsumexp(log_w) - math.log(n_samples)


def negative_elbo(x, m, v, n_samples=10_000, seed=(0, 0)):
    return -tf.reduce_mean(_log_w(x, m, v, n_samples, seed))


def variance_as_scale(x, m, v, n_samples=10_000, seed=(0, 0)):
    return tf.reduce_mean(_log_w(x, m, v, n_samples, seed, q_scale=v))


def log_q_with_variance(x, m, v, n_samples=10_000, seed=(0, 0)):
    return tf.reduce_mean(_log_w(x, m, v, n_samples, seed, logq_scale=v))


def likelihood_scale_s_squared(x, m, v, n_samples=10_000, seed=(0, 0)):
    return tf.reduce_mean(_log_w(x, m, v, n_samples, seed, lik_scale=S**2))


def prior_with_scale_s(x, m, v, n_samples=10_000, seed=(0, 0)):
    return tf.reduce_mean(_log_w(x, m, v, n_samples, seed, p=tfd.Normal(0.0, S)))


def prior_at_x(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(x) - q.log_prob(z))


def missing_likelihood(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(n_samples, seed=seed)
    return tf.reduce_mean(prior.log_prob(z) - q.log_prob(z))


def no_seed(x, m, v, n_samples=10_000, seed=(0, 0)):
    return tf.reduce_mean(_log_w(x, m, v, n_samples, seed=None))


def numpy_unseeded(x, m, v, n_samples=10_000, seed=(0, 0)):
    z = np.random.normal(m, np.sqrt(v), size=n_samples).astype(np.float32)
    q = tfd.Normal(m, math.sqrt(v))
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z))


def fixed_seed(x, m, v, n_samples=10_000, seed=(0, 0)):
    return tf.reduce_mean(_log_w(x, m, v, n_samples, seed=(0, 0)))


def first_half_of_seed(x, m, v, n_samples=10_000, seed=(0, 0)):
    rng = np.random.default_rng(seed[0])
    z = rng.normal(m, math.sqrt(v), size=n_samples).astype(np.float32)
    q = tfd.Normal(m, math.sqrt(v))
    return tf.reduce_mean(tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z))


def fixed_sample_size(x, m, v, n_samples=10_000, seed=(0, 0)):
    return tf.reduce_mean(_log_w(x, m, v, 10_000, seed))


def one_sample(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(m, math.sqrt(v))
    z = q.sample(seed=seed)  # one z, whatever n_samples says
    return tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z)


def per_sample_values(x, m, v, n_samples=10_000, seed=(0, 0)):
    return _log_w(x, m, v, n_samples, seed)


def keeps_an_axis(x, m, v, n_samples=10_000, seed=(0, 0)):
    q = tfd.Normal(loc=[m], scale=[math.sqrt(v)])
    z = q.sample(n_samples, seed=seed)  # [n_samples, 1]
    log_w = tfd.Normal(z, S).log_prob(x) + prior.log_prob(z) - q.log_prob(z)
    return tf.reduce_mean(log_w, axis=0)  # shape [1]


def no_return(x, m, v, n_samples=10_000, seed=(0, 0)):
    tf.reduce_mean(_log_w(x, m, v, n_samples, seed))


# ---------------------------------------------------------------------------


def downstream_toy_elbo(answer):
    """Notebook 02's later cells: a table at 100,000 samples, then a curve at 2,000."""
    x, s = 1.0, S
    posterior = check.toy_posterior(x, s)
    log_px = float(check.toy_log_evidence(x, s))
    for m, v in [(0.8, 0.2), (0.0, 1.0), (0.8, 1.0), (2.0, 0.2), (-1.0, 0.05)]:
        estimate = float(answer(x, m, v, n_samples=100_000, seed=(1, 2)))
        exact = log_px - float(tfd.kl_divergence(tfd.Normal(m, math.sqrt(v)), posterior))
        # Generous: five standard errors of a one-sample estimate over sqrt(100,000).
        if not abs(estimate - exact) < 0.05:
            raise AssertionError(f"q = N({m}, {v}): ELBO {estimate} against {exact}")
    means = np.linspace(-1.0, 2.6, 31).tolist()
    for v in (0.2, 1.0):
        estimates = [
            float(answer(x, m, v, n_samples=2000, seed=(7, i))) for i, m in enumerate(means)
        ]
        if not all(math.isfinite(e) and e <= log_px + 0.05 for e in estimates):
            raise AssertionError(f"the curve for v = {v} is broken: {estimates}")


EXERCISES = [
    Exercise(
        name="toy_elbo",
        check=check.toy_elbo,
        correct={
            "NumPy default_rng(seed), log-density by hand": numpy_default_rng,
            "tf.random.stateless_normal, reparameterized, by hand": stateless_normal_by_hand,
            "tfd with keras.ops.mean": keras_ops_with_tfd,
            "tfd.JointDistributionNamed, a Python float": joint_distribution,
            "closed-form KL to the prior": closed_form_kl_to_prior,
            "compiled with tf.function": compiled_with_tf_function,
            "batch shape [1], tf.squeeze": tfd_sample_with_shape,
            "float64 throughout": float64_throughout,
            "pure-Python loop, random.Random": pure_python_loop,
            "Box-Muller from stateless uniforms": box_muller,
            "keras.random and keras.ops, log-density by hand": keras_random_and_ops,
            "antithetic pairs": antithetic_pairs,
            "closed-form entropy of q": closed_form_entropy,
            "debug prints left in": debug_prints,
        },
        mistakes={
            "sum instead of mean": Mistake(sum_not_mean, r"sum over the samples, not their mean"),
            "missing -log q": Mistake(missing_log_q, r"-log q\(z\) term is missing"),
            "+log q": Mistake(plus_log_q, r"log q\(z\) is added"),
            "log-mean-exp (IWAE)": Mistake(log_mean_exp, r"log-mean-exp"),
            "minus the ELBO": Mistake(negative_elbo, r"minus the ELBO"),
            "variance as scale": Mistake(variance_as_scale, r"q seems to be built with scale v"),
            "log q with the variance": Mistake(log_q_with_variance, r"log q\(z\) uses scale v"),
            "likelihood scale s^2": Mistake(
                likelihood_scale_s_squared, r"p\(x\|z\) seems to have scale s\^2"
            ),
            "prior scale s": Mistake(prior_with_scale_s, r"prior is the standard normal"),
            "prior at x": Mistake(prior_at_x, r"evaluated at x"),
            "missing log p(x|z)": Mistake(missing_likelihood, r"log p\(x\|z\) term is missing"),
            "no seed": Mistake(no_seed, r"same seed gave different numbers"),
            "NumPy, unseeded": Mistake(numpy_unseeded, r"same seed gave different numbers"),
            "a fixed seed": Mistake(fixed_seed, r"another seed.*exactly the same"),
            "first number of the seed only": Mistake(first_half_of_seed, r"whole seed"),
            "fixed sample size": Mistake(fixed_sample_size, r"n_samples"),
            "one sample": Mistake(one_sample, r"n_samples"),
            "per-sample values": Mistake(per_sample_values, r"one value per sample"),
            "result of shape [1]": Mistake(keeps_an_axis, r"shape \(1,\).*one number"),
            "no return": Mistake(no_return, r"returned None.*return"),
            "log-density without 2 pi": Mistake(no_two_pi, r"0\.919.*log\(2 pi\) / 2"),
            "log-density without its constant": Mistake(
                unnormalized_density, r"keep only -\(value - mean\)\^2"
            ),
            "operator precedence: / 2 * sigma^2": Mistake(operator_precedence, r"parentheses"),
            "log(2 pi sigma) for log(2 pi sigma^2)": Mistake(
                sigma_for_variance_in_log, r"-log\(2 pi sigma\) / 2"
            ),
            "samples from the prior": Mistake(samples_from_prior, r"come from the prior"),
            "KL added": Mistake(kl_added, r"KL divergence to the prior seems to be added"),
            "KL(p || q)": Mistake(kl_reversed, r"arguments swapped"),
            "log q with the prior": Mistake(log_q_with_prior, r"log p\(x\|z\) alone"),
            "exact ELBO, no sampling": Mistake(
                exact_closed_form, r"closed form, not a Monte Carlo"
            ),
            "n_samples named L": Mistake(other_parameter_names, r"parameters are \(x, m, v, L="),
            "returns the distribution q": Mistake(
                returns_the_distribution, r"returned a Normal, not a number"
            ),
        },
        give_away=(
            "tf.reduce_mean(",
            "log_joint",
            "scale=tf.sqrt(v)",
            "q.log_prob(z)",
            "prior.log_prob(z)",
            "tfd.Normal(loc=z, scale=S)",
        ),
        downstream=downstream_toy_elbo,
    ),
]
