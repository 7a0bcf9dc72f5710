"""Checks for notebook 07's two tasks on what a weight on the KL term means.

    from vae_prac.checks import kl_weight
    kl_weight.toy_beta_bound(my_toy_beta_bound)   # Code Task: L_beta on notebook 02's toy model
    kl_weight.mse_beta(answer_mse)                 # Math Task: the variance an MSE loss implies

Why these two. L_beta = E_q[log p(x|z)] - beta KL(q || p(z)) is a lower bound on log p(x)
for every q only when beta >= 1; with beta < 1 it exceeds log p(x) exactly when
(1 - beta) KL(q || p(z)) > KL(q || p(z|x)). Notebook 02's toy Gaussian makes every term
exact, so the student can compute L_beta in closed form and see it cross log p(x). And an
MSE loss plus a KL is the ELBO of a Gaussian decoder with a fixed variance: the variance
sets an implicit beta, and the mean over pixels that most libraries take makes it huge.

``toy_beta_bound`` calls the student's ``fn(x, q, beta, s=s)`` on cases of its own:
several q (the exact posterior, the prior, and others with unequal means and variances,
so that a variance passed as a scale shows), several beta, and s = 0.5 and 0.8 (so that a
hard-coded s shows). It compares with the closed form
E_q[log N(x; z, s^2)] = -log(2 pi s^2)/2 - ((x - m)^2 + v)/(2 s^2) and
KL(N(m, v) || N(0, 1)) = (m^2 + v - 1 - log v)/2; a slip is named only when its formula
gives the student's values on every case.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow_probability as tfp

from vae_prac.checks import Hint, apart, check, choice, returned_array

tfd = tfp.distributions

__all__ = ["toy_beta_bound", "toy_beta_bound_reference", "mse_beta"]


def _terms(x, m, v, s):
    """(E_q[log p(x|z)], KL(q || p(z)), KL(q || p(z|x)), log p(x)) in float64, q = N(m, v)."""
    ell = -0.5 * math.log(2 * math.pi * s * s) - ((x - m) ** 2 + v) / (2 * s * s)
    kl_prior = 0.5 * (m * m + v - 1.0 - math.log(v))
    post_m, post_v = x / (1 + s * s), s * s / (1 + s * s)
    kl_post = 0.5 * ((m - post_m) ** 2 / post_v + v / post_v - 1.0 - math.log(v / post_v))
    log_px = -0.5 * math.log(2 * math.pi * (1 + s * s)) - x * x / (2 * (1 + s * s))
    return ell, kl_prior, kl_post, log_px


def toy_beta_bound_reference(x, q, beta, s=0.5):
    """L_beta = E_q[log N(x; z, s^2)] - beta KL(q || N(0, 1)) for a Normal q, in closed form.

    vae_prac's version of notebook 07's Code Task, used where the task is left blank.
    """
    m, sd = float(q.mean()), float(q.stddev())
    ell = -0.5 * math.log(2 * math.pi * s * s) - ((float(x) - m) ** 2 + sd * sd) / (2 * s * s)
    return ell - beta * float(tfd.kl_divergence(q, tfd.Normal(0.0, 1.0)))


def _posterior(x, s):
    return (x / (1 + s * s), s * s / (1 + s * s))


# (x, (m, v) of q or "posterior" / "prior", beta, s): unequal numbers throughout.
_CASES = [(1.0, "posterior", 0.5, 0.5),
          (1.0, "posterior", 1.0, 0.5),
          (1.0, "prior", 0.5, 0.5),
          (-0.7, (0.3, 0.8), 2.0, 0.5),
          (1.5, (-0.2, 1.3), 0.25, 0.8),
          (0.4, (0.9, 0.35), 0.5, 0.8),
          (2.0, "posterior", 0.3, 0.8)]


def _cases():
    for x, q, beta, s in _CASES:
        m, v = (_posterior(x, s) if q == "posterior" else (0.0, 1.0) if q == "prior" else q)
        yield x, m, v, beta, s


def _slip_value(slip, x, m, v, beta, s):
    ell, kl, kl_post, log_px = _terms(x, m, v, s)
    sd = math.sqrt(v)
    reverse = 0.5 * (1.0 / v + m * m / v - 1.0 + math.log(v))       # KL(N(0,1) || q)
    return {
        "reverse": ell - beta * reverse,
        "to posterior": ell - beta * kl_post,
        "beta on likelihood": beta * ell - kl,
        "sign": ell + beta * kl,
        "no beta": ell - kl,
        "no variance": ell + v / (2 * s * s) - beta * kl,
        "sd for variance": _terms(x, m, sd, s)[0] - beta * _terms(x, m, sd, s)[1],
        "likelihood scale s^2": _terms(x, m, v, s * s)[0] - beta * kl,
        "s fixed": _terms(x, m, v, 0.5)[0] - beta * kl,
        "identity at the posterior": log_px + (1 - beta) * kl,
        "log p(x)": log_px,
    }[slip]


_HINTS = {
    "reverse": "the KL is the wrong way round: L_beta has KL(q || p(z)), "
               "tfd.kl_divergence(q, prior), not KL(p(z) || q).",
    "to posterior": "the KL is taken to the posterior p(z|x); the KL in L_beta is to the "
                    "prior p(z) = N(0, 1).",
    "beta on likelihood": "beta multiplies the log-likelihood term; it weights the KL.",
    "sign": "the KL enters with the wrong sign: L_beta subtracts beta times the KL.",
    "no beta": "the value does not change with beta: beta must multiply the KL.",
    "no variance": "the expected log-likelihood misses q's spread: E_q[(x - z)^2] = "
                   "(x - m)^2 + v, not (x - m)^2 (that is log p(x|z) at z = m only).",
    "sd for variance": "q's standard deviation is used where its variance belongs: a "
                       "Normal's scale (q.stddev()) is the square root of its variance.",
    "likelihood scale s^2": "p(x|z) seems to have scale s^2; the likelihood N(x; z, s^2) "
                            "has standard deviation s.",
    "s fixed": "it ignores the argument s (it seems fixed at 0.5): use the s passed in.",
    "identity at the posterior": "it is right when q is the exact posterior, but not for "
                                 "other q: log p(x) + (1 - beta) KL(q || p(z)) leaves out "
                                 "- KL(q || p(z|x)), which is 0 only at q = p(z|x).",
    "log p(x)": "that is log p(x), whatever q and beta are: L_beta depends on both.",
}


def _call(fn, x, m, v, beta, s) -> float:
    q = tfd.Normal(float(m), math.sqrt(v))
    what = f"my_toy_beta_bound(x={x}, q=N({m:.3g}, {v:.3g}), beta={beta}, s={s})"
    got = returned_array(fn(x, q, beta, s=s), what, "a number")
    if got.shape != ():
        if got.size == 1:
            raise Hint(f"{what} returned an array of shape {list(got.shape)}; return one "
                       f"number (shape []).")
        raise Hint(f"{what} returned {got.size} numbers (shape {list(got.shape)}); L_beta "
                   f"is one number. In closed form no samples are needed.")
    value = float(got)
    if not math.isfinite(value):
        raise Hint(f"{what} is {value}: look for a log of 0 or of a negative number.")
    return value


@check("toy_beta_bound")
def toy_beta_bound(fn) -> None:
    """``fn(x, q, beta, s)``: L_beta of the toy model in closed form, q a tfd.Normal."""
    cases = list(_cases())
    got = [_call(fn, *case) for case in cases]
    right = [_terms(x, m, v, s)[0] - beta * _terms(x, m, v, s)[1] for x, m, v, beta, s in cases]
    if np.allclose(got, right, rtol=1e-5, atol=1e-4):
        return
    for slip, hint in _HINTS.items():
        values = [_slip_value(slip, *case) for case in cases]
        if np.allclose(got, values, rtol=1e-5, atol=1e-4):
            raise Hint(hint)
    if np.allclose(got, right, atol=0.05):
        raise Hint("the values are close to L_beta but not equal (within a few hundredths): "
                   "a Monte Carlo estimate? Every term has a closed form here: "
                   "tfd.kl_divergence for the KL, and E_q[(x - z)^2] = (x - m)^2 + v.")
    i = int(np.argmax(np.abs(np.subtract(got, right))))
    x, m, v, beta, s = cases[i]
    mine, theirs = apart(got[i], right[i], "f", 4)
    raise Hint(f"for x = {x}, q = N({m:.3g}, {v:.3g}), beta = {beta} and s = {s}, L_beta is "
               f"{theirs}, yours gives {mine}. L_beta = E_q[log N(x; z, s^2)] "
               f"- beta KL(q || N(0, 1)).")


def mse_beta(answer) -> None:
    """Math Task: the fixed decoder variance that MSE (a mean over D pixels) + KL implies.
    (The answer is c: sigma^2 = D/2.)"""
    return choice(
        "mse_beta", answer, "c",
        "write -log N(x; mu, sigma^2 I) = ||x - mu||^2 / (2 sigma^2) + const, and the loss "
        "as (1/D) (||x - mu||^2 + D KL). Which sigma^2 makes the second proportional to "
        "-ELBO = ||x - mu||^2 / (2 sigma^2) + KL?")
