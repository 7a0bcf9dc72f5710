"""Checks for notebook 02 (the ELBO), and the toy model it computes by hand.

The toy model has one latent number z and one observed number x:

    p(z) = N(0, 1),   p(x|z) = N(x; z, s^2)
    =>  p(x) = N(x; 0, 1 + s^2),   p(z|x) = N(z; x / (1 + s^2), s^2 / (1 + s^2)).

Everything is known exactly, so an ELBO estimate can be compared with the truth:
ELBO(q) = log p(x) - KL(q || p(z|x)) for every q.

    from vae_prac.checks import elbo as check
    check.jensen_quiz(answer_jensen)
    check.toy_elbo(toy_elbo, s=S)
    check.phi_quiz(answer_phi)
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac.checks import Hint, check, choice

tfd = tfp.distributions

#: The toy likelihood's standard deviation s used in notebook 02.
TOY_S = 0.5


def toy_log_evidence(x, s=TOY_S):
    """log p(x) = log N(x; 0, 1 + s^2), exactly."""
    return tfd.Normal(0.0, math.sqrt(1.0 + s * s)).log_prob(float(x))


def toy_posterior(x, s=TOY_S):
    """The exact posterior p(z|x) = N(x / (1 + s^2), s^2 / (1 + s^2))."""
    return tfd.Normal(float(x) / (1.0 + s * s), math.sqrt(s * s / (1.0 + s * s)))


def toy_elbo_reference(x, m, v, n_samples=10_000, seed=(0, 0), s=TOY_S):
    """The library's version of the exercise: a Monte Carlo ELBO with q(z) = N(m, v).

    ELBO ~= (1/L) sum_l [log p(x|z_l) + log p(z_l) - log q(z_l)],  z_l ~ q.
    """
    q = tfd.Normal(float(m), math.sqrt(float(v)))
    z = q.sample(n_samples, seed=seed)
    log_joint = tfd.Normal(z, s).log_prob(float(x)) + tfd.Normal(0.0, 1.0).log_prob(z)
    return tf.reduce_mean(log_joint - q.log_prob(z))


def _log_weights(x, m, v, s, n, seed):
    q = tfd.Normal(float(m), math.sqrt(float(v)))
    z = q.sample(n, seed=seed)
    return (tfd.Normal(z, s).log_prob(float(x)) + tfd.Normal(0.0, 1.0).log_prob(z)
            - q.log_prob(z)).numpy()


def _scalar(value, what):
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise Hint(f"{what} should be one number (the average over the samples), got an "
                   f"array of shape {arr.shape}. Did you forget the mean?")
    value = float(arr.reshape(()))
    if not np.isfinite(value):
        raise Hint(f"{what} is {value}; check each log-probability term.")
    return value


@check("toy_elbo")
def toy_elbo(fn, s=TOY_S):
    """``fn(x, m, v, n_samples, seed)``: Monte Carlo ELBO of q = N(m, v) in the toy model."""
    n = 20_000
    post_var = s * s / (1.0 + s * s)
    cases = [(1.0, 1.0 / (1.0 + s * s), post_var),   # the exact posterior for x = 1
             (1.0, 0.0, 1.0),                          # the prior
             (1.0, 2.0, 0.1),
             (-0.5, 0.3, 0.5),
             (2.0, 1.5, 0.05)]
    for x, m, v in cases:
        what = f"toy_elbo({x}, {m:.3g}, {v:.3g})"
        value = _scalar(fn(x, m, v, n_samples=n, seed=(3, 4)), what)
        log_px = float(toy_log_evidence(x, s))
        kl = float(tfd.kl_divergence(tfd.Normal(m, math.sqrt(v)), toy_posterior(x, s)))
        # Five standard errors of the Monte Carlo mean, plus float32 round-off.
        tol = 5 * np.std(_log_weights(x, m, v, s, n, (3, 4))) / math.sqrt(n) + 1e-3
        if value > log_px + tol:
            raise Hint(f"{what} = {value:.4f} is above log p(x) = {log_px:.4f}; a lower "
                       "bound cannot be. Check the signs: log p(x|z) + log p(z) - log q(z).")
        if abs(value - (log_px - kl)) > tol:
            raise Hint(
                f"{what} = {value:.4f}, but it should be close to log p(x) - KL(q || p(z|x))"
                f" = {log_px - kl:.4f}. Is q given the standard deviation sqrt(v) (not the "
                "variance v)? Is p(x|z) = N(x; z, s^2) with scale s, and p(z) = N(0, 1)?")
    first = _scalar(fn(1.0, 2.0, 0.1, n_samples=n, seed=(3, 4)), "toy_elbo(1.0, 2, 0.1)")
    again = _scalar(fn(1.0, 2.0, 0.1, n_samples=n, seed=(3, 4)), "a second call")
    if again != first:
        raise Hint("two calls with the same seed gave different values; pass `seed` to "
                   "q.sample(n_samples, seed=seed) so the estimate is reproducible.")
    other = _scalar(fn(1.0, 2.0, 0.1, n_samples=100, seed=(5, 6)), "a call with another seed")
    if other == first:
        raise Hint("another seed and sample size gave exactly the same value: the ELBO "
                   "should be a Monte Carlo average over z_1..z_L drawn from q.")


def jensen_quiz(answer):
    """Why does Jensen's inequality give log p(x) >= ELBO?"""
    return choice("jensen_quiz", answer, "b",
                  "is a chord of the curve y -> log y above or below the curve? Look at the "
                  "sign of the second derivative of log y.")


def phi_quiz(answer):
    """Which network's weights are phi?"""
    return choice("phi_quiz", answer, "b",
                  "phi are the parameters of q_phi(z|x): which network maps an image x to "
                  "the mean and standard deviation of a distribution over z?")
