"""Checks for notebook 04, the reparameterization trick.

    from vae_prac.checks import reparameterization as check
    check.kl_formula(answer_kl)               # Math Task: the KL of two Gaussians in 1-D
    check.kl_closed_form(kl_closed_form)      # Code Task: KL(q || p) in closed form
    check.reparameterize(my_reparameterize)   # Code Task: z = mu + sigma * eps

Each check tries the student's function on inputs of its own and compares it with
TensorFlow Probability (the KL) or with what a sample of N(mu, sigma^2) must satisfy
(the sampler): the right shape, mean and spread, gradients that reach mu and sigma,
and fresh noise on every call.
"""

from __future__ import annotations

import inspect

import numpy as np
import tensorflow as tf

from vae_prac.checks import Hint, check, choice
from vae_prac.elbo import kl_analytic
from vae_prac.model import posterior, prior

__all__ = ["kl_formula", "kl_closed_form", "reparameterize"]


def kl_formula(answer) -> bool:
    """Math Task: which expression is KL(N(mu, s^2) || N(0, 1))? (The answer is c.)"""
    return choice(
        "kl_formula", answer, "c",
        "write log N(z; mu, s^2) - log N(z; 0, 1) out in full, then take its expectation "
        "under q using E_q[z] = mu and E_q[z^2] = mu^2 + s^2. A correct formula is 0 when "
        "q = p and never negative.")


def _numpy(value, what: str) -> np.ndarray:
    """``value`` as a float64 numpy array, or a hint saying what came back instead."""
    if value is None:
        raise Hint(f"{what} returned None: did you forget the `return`?")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Hint(f"{what} returned a {type(value).__name__}, not a tensor of numbers.")


@check("kl_closed_form")
def kl_closed_form(fn) -> None:
    """``fn(mu, sigma)`` must equal tfd.kl_divergence(q, N(0, I)) for q = N(mu, diag(sigma^2)).

    mu and sigma are float32 tensors [batch, latent_dim]; the result has one KL per
    example, [batch], summed over the latent dimensions.
    """
    rng = np.random.default_rng(4)
    batch, latent_dim = 6, 5
    mu = tf.constant(rng.normal(0.0, 1.5, (batch, latent_dim)), tf.float32)
    sigma = tf.constant(rng.uniform(0.2, 2.5, (batch, latent_dim)), tf.float32)
    expected = kl_analytic(posterior(mu, sigma), prior(latent_dim)).numpy()
    got = _numpy(fn(mu, sigma), "kl_closed_form")

    if got.shape == (batch, latent_dim):
        raise Hint(f"it returned one value per latent dimension, shape {got.shape}. The KL "
                   f"of q(z|x) sums the per-dimension KLs: one number per example, shape "
                   f"[{batch}].")
    if got.shape != (batch,):
        raise Hint(f"for mu and sigma of shape [{batch}, {latent_dim}] it returned shape "
                   f"{got.shape}; expected one KL per example, shape [{batch}] (sum over "
                   f"the latent axis only, not over the batch).")
    if not np.all(np.isfinite(got)):
        raise Hint("it returned NaN or Inf for ordinary inputs (sigma between 0.2 and 2.5).")
    if np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        return

    # Diagnose the usual slips on one dimension, where the answer is easy to check by hand.
    def one(m, s):
        value = _numpy(fn(tf.constant([[m]], tf.float32), tf.constant([[s]], tf.float32)),
                       "kl_closed_form")
        return float(value.reshape(-1)[0])

    if np.allclose(got, 2 * expected, rtol=1e-4, atol=1e-4):
        raise Hint("your KL is exactly twice the right value: check the factor 1/2.")
    mu_n, sigma_n = mu.numpy().astype(np.float64), sigma.numpy().astype(np.float64)
    variance_slip = "sigma in place of the variance sigma^2 (the function gets standard deviations)"
    slips = [
        ("log sigma in place of log sigma^2 (log sigma^2 = 2 log sigma)",
         0.5 * (mu_n**2 + sigma_n**2 - 1 - np.log(sigma_n))),
        (variance_slip, 0.5 * (mu_n**2 + sigma_n - 1 - np.log(sigma_n**2))),
        (variance_slip, 0.5 * (mu_n**2 + sigma_n - 1 - np.log(sigma_n))),
        ("mu in place of mu^2", 0.5 * (mu_n + sigma_n**2 - 1 - np.log(sigma_n**2))),
    ]
    for slip, value in slips:
        if np.allclose(got, value.sum(-1), rtol=1e-4, atol=1e-4):
            raise Hint(f"it looks like you used {slip}.")
    if np.any(got < -1e-5):
        raise Hint("it returned a negative KL; a KL divergence is never negative.")
    if not np.isclose(one(0.0, 1.0), 0.0, atol=1e-5):
        raise Hint(f"KL(N(0, 1) || N(0, 1)) must be 0 (the distributions are the same), "
                   f"yours gives {one(0.0, 1.0):.4f}. Check the constant term.")
    raise Hint(f"for mu = 1, sigma = 1 the KL is 0.5, yours gives {one(1.0, 1.0):.4f}; "
               f"for mu = 0, sigma = 2 it is {0.5 * (4 - 1 - np.log(4)):.4f}, yours gives "
               f"{one(0.0, 2.0):.4f}.")


def _uses_a_sampler(fn) -> bool:
    """True if ``fn``'s source calls a distribution's ``.sample(``."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return False
    return ".sample(" in source


@check("reparameterize")
def reparameterize(fn, n: int = 20000) -> None:
    """``fn(mu, sigma)`` must return z ~ N(mu, diag(sigma^2)) as a differentiable function
    of mu and sigma, with fresh standard normal noise on every call.

    What is tested: the shape; two calls differ; every example gets its own noise; the
    sample mean and standard deviation of ``n`` draws per dimension match mu and sigma
    within Monte Carlo error; about 68% of draws lie within one sigma of mu (normal
    noise); gradients reach mu and sigma and have the right expected values,
    d/dmu E[z] = 1 and d/dsigma E[z^2] = 2 sigma.
    """
    if _uses_a_sampler(fn):
        raise Hint("build z yourself: draw eps with tf.random.normal and transform it, "
                   "rather than calling a distribution's .sample().")
    mu_small = tf.constant([[0.0, 1.0, -2.0], [3.0, 0.5, 0.0]])
    sigma_small = tf.constant([[1.0, 0.5, 2.0], [0.1, 1.0, 3.0]])
    z = _numpy(fn(mu_small, sigma_small), "my_reparameterize")
    if z.shape != (2, 3):
        raise Hint(f"for mu and sigma of shape [2, 3] it returned shape {z.shape}; z must "
                   f"have the shape of mu (draw eps with tf.shape(mu)).")
    if not np.all(np.isfinite(z)):
        raise Hint("it returned NaN or Inf.")
    z_again = _numpy(fn(mu_small, sigma_small), "my_reparameterize")
    if np.array_equal(z, z_again):
        raise Hint("two calls gave exactly the same z. Draw fresh noise on every call: "
                   "call tf.random.normal inside the function, without a fixed seed or a "
                   "tensor made once outside it.")

    mu_row = np.array([-1.0, 0.5, 2.0], np.float32)
    sigma_row = np.array([0.5, 1.0, 3.0], np.float32)
    mu_v = tf.Variable(mu_row)
    sigma_v = tf.Variable(sigma_row)
    with tf.GradientTape(persistent=True) as tape:
        mu = tf.broadcast_to(mu_v, [n, 3])
        sigma = tf.broadcast_to(sigma_v, [n, 3])
        z = fn(mu, sigma)
        mean_z = tf.reduce_mean(tf.reduce_sum(tf.cast(z, tf.float32), axis=-1))
        mean_z2 = tf.reduce_mean(tf.reduce_sum(tf.square(tf.cast(z, tf.float32)), axis=-1))
    z = _numpy(z, "my_reparameterize")
    eps = (z - mu_row) / sigma_row   # the noise it used, if z = mu + sigma * eps

    if np.all(np.std(eps, axis=0) < 1e-6):
        raise Hint("every example got the same noise. Draw eps with the full shape of mu "
                   "(tf.shape(mu)), so each example and each dimension gets its own.")
    mean, std = z.mean(axis=0), z.std(axis=0)
    mean_err = 6 * sigma_row / np.sqrt(n) + 1e-3
    std_err = 6 * sigma_row / np.sqrt(2 * n) + 1e-3
    if np.any(np.abs(mean - mu_row) > mean_err):
        if np.allclose(mean, mu_row + sigma_row / 2, atol=0.05):
            raise Hint("the mean of z is mu + sigma/2: that is uniform noise on [0, 1). "
                       "Use standard normal noise, eps ~ N(0, 1): tf.random.normal.")
        raise Hint(f"the sample mean of z should be mu = {mu_row.tolist()}, yours is "
                   f"{np.round(mean, 2).tolist()}. Is eps drawn with mean 0?")
    if np.any(np.abs(std - sigma_row) > std_err):
        shown = (f"for sigma = {sigma_row.tolist()} the standard deviation of z is "
                 f"{np.round(std, 2).tolist()}")
        if np.allclose(std, sigma_row**2, rtol=0.05):
            raise Hint(f"{shown}: you scaled eps by the variance sigma^2. sigma is already "
                       f"the standard deviation.")
        if np.allclose(std, np.sqrt(sigma_row), rtol=0.05):
            raise Hint(f"{shown}: you scaled eps by sqrt(sigma). sigma is already the "
                       f"standard deviation.")
        raise Hint(f"{shown}; it should equal sigma. Is eps standard normal, and "
                   f"multiplied by sigma?")
    within = np.mean(np.abs(eps) < 1.0)
    if abs(within - 0.6827) > 0.015:
        raise Hint(f"z has the right mean and spread, but {within:.1%} of the draws lie "
                   f"within one sigma of mu, where a normal distribution has 68.3%. Use "
                   f"standard normal noise: tf.random.normal.")

    grads = {name: tape.gradient(target, var) for name, target, var in (
        ("d/dmu E[sum z]", mean_z, mu_v), ("d/dsigma E[sum z]", mean_z, sigma_v),
        ("d/dmu E[sum z^2]", mean_z2, mu_v), ("d/dsigma E[sum z^2]", mean_z2, sigma_v))}
    del tape
    if any(g is None for g in grads.values()):
        blocked = sorted({name.split()[0][2:] for name, g in grads.items() if g is None})
        raise Hint(f"no gradient reaches {' or '.join(blocked)}. Compute z from mu and "
                   f"sigma with TensorFlow ops (mu + sigma * eps); numpy, .numpy() or "
                   f"tf.stop_gradient cut the path the gradient needs.")
    grads = {name: g.numpy() for name, g in grads.items()}
    eps_mean = eps.mean(axis=0)
    expected = {
        "d/dmu E[sum z]": np.ones(3),
        "d/dsigma E[sum z]": eps_mean,                        # E[eps] = 0, up to MC error
        "d/dmu E[sum z^2]": 2 * mean,                         # E[2 z] = 2 mu
        "d/dsigma E[sum z^2]": 2 * (z * eps).mean(axis=0),    # E[2 z eps] = 2 sigma
    }
    for name, value in expected.items():
        if not np.allclose(grads[name], value, rtol=1e-3, atol=1e-3):
            raise Hint(f"the gradient {name} is {np.round(grads[name], 3).tolist()}; for "
                       f"z = mu + sigma * eps it should be {np.round(value, 3).tolist()} on "
                       f"these draws. Is z exactly mu + sigma * eps?")
    # And the expected values themselves, within Monte Carlo error.
    if np.any(np.abs(grads["d/dsigma E[sum z^2]"] - 2 * sigma_row)
              > 12 * np.sqrt(mu_row**2 + 2 * sigma_row**2) / np.sqrt(n) + 1e-2):
        raise Hint("d/dsigma E[z^2] should be close to 2 sigma on average.")
