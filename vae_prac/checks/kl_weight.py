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
KL(N(m, v) || N(0, 1)) = (m^2 + v - 1 - log v)/2. A slip is named only when its formula
gives the student's values on every case: L_beta is built from three parts (the expected
log-likelihood, the KL, and their combination with beta), and a slip in one or two of
them is looked up among the ones a cohort makes. A quadrature of the expectation passes
(exact here to far below the tolerance); a Monte Carlo estimate is told by its error.
"""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import tensorflow_probability as tfp

from vae_prac.checks import Hint, apart, check, choice, letter, quiet_tensorflow, returned_array

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
_CASES = [
    (1.0, "posterior", 0.5, 0.5),
    (1.0, "posterior", 1.0, 0.5),
    (1.0, "prior", 0.5, 0.5),
    (-0.7, (0.3, 0.8), 2.0, 0.5),
    (1.5, (-0.2, 1.3), 0.25, 0.8),
    (0.4, (0.9, 0.35), 0.5, 0.8),
    (2.0, "posterior", 0.3, 0.8),
]


def _cases():
    for x, q, beta, s in _CASES:
        m, v = _posterior(x, s) if q == "posterior" else (0.0, 1.0) if q == "prior" else q
        yield x, m, v, beta, s


# L_beta is built from three parts: the expected log-likelihood (a function of x, m, v, s),
# the KL (of the same) and how the two are combined with beta. A slip in one part, or in
# two, is named only when that formula gives the student's values on every case.
_SD = (
    "q's standard deviation is used where its variance belongs: a Normal's scale "
    "(q.stddev()) is the square root of its variance."
)


def _ell(x, m, v, s, const=None, sign=-1.0):
    const = -0.5 * math.log(2 * math.pi * s * s) if const is None else const
    return const + sign * ((x - m) ** 2 + v) / (2 * s * s)


def _kl(m, v, log_factor=0.5, factor=0.5):
    return factor * (m * m + v - 1.0) - log_factor * math.log(v)


def _kl_normals(m, v, m2, v2):
    """KL(N(m, v) || N(m2, v2))."""
    return 0.5 * ((m - m2) ** 2 / v2 + v / v2 - 1.0 - math.log(v / v2))


_ELLS = {
    "right": (lambda x, m, v, s: _ell(x, m, v, s), ""),
    "no variance": (
        lambda x, m, v, s: _ell(x, m, 0.0, s),
        "the expected log-likelihood misses q's spread: E_q[(x - z)^2] = "
        "(x - m)^2 + v, not (x - m)^2 (that is log p(x|z) at z = m only).",
    ),
    "sd for variance": (lambda x, m, v, s: _ell(x, m, math.sqrt(v), s), _SD),
    "scale s^2": (
        lambda x, m, v, s: _ell(x, m, v, s * s),
        "p(x|z) seems to have scale s^2; the likelihood N(x; z, s^2) has standard deviation s.",
    ),
    "s fixed": (
        lambda x, m, v, s: _ell(x, m, v, 0.5),
        "it ignores the argument s (it seems fixed at 0.5): use the s passed in.",
    ),
    "s one": (
        lambda x, m, v, s: _ell(x, m, v, 1.0),
        "the likelihood has standard deviation 1 whatever s is: p(x|z) = N(x; z, s^2), "
        "with the s passed in.",
    ),
    "no constant": (
        lambda x, m, v, s: _ell(x, m, v, s, const=0.0),
        "the log-likelihood misses its constant, the log of the Normal's "
        "normalizer: it leaves the gradient alone, but L_beta is compared with "
        "log p(x), so every term counts.",
    ),
    "constant with s": (
        lambda x, m, v, s: _ell(x, m, v, s, const=-0.5 * math.log(2 * math.pi * s)),
        "the constant of log N(x; z, s^2) has s where the variance s^2 belongs.",
    ),
    "constant without 1/2": (
        lambda x, m, v, s: _ell(x, m, v, s, const=-math.log(2 * math.pi * s * s)),
        "the constant of log N(x; z, s^2) is twice too large: a "
        "Normal's log density has a 1/2 in front of its log term.",
    ),
    "squared error sign": (
        lambda x, m, v, s: _ell(x, m, v, s, sign=1.0),
        "the squared error enters the log-likelihood with the wrong "
        "sign: log N(x; z, s^2) falls as (x - z)^2 grows.",
    ),
}

_KLS = {
    "right": (lambda x, m, v, s: _kl(m, v), ""),
    "reverse": (
        lambda x, m, v, s: _kl_normals(0.0, 1.0, m, v),
        "the KL is the wrong way round: L_beta has KL(q || p(z)), "
        "tfd.kl_divergence(q, prior), not KL(p(z) || q).",
    ),
    "to posterior": (
        lambda x, m, v, s: _kl_normals(m, v, *_posterior(x, s)),
        "the KL is taken to the posterior p(z|x); the KL in L_beta is to the prior p(z) = N(0, 1).",
    ),
    "to likelihood": (
        lambda x, m, v, s: _kl_normals(m, v, x, s * s),
        "the KL is taken to N(x, s^2), the likelihood read as a density over z; "
        "the KL in L_beta is to the prior p(z) = N(0, 1).",
    ),
    "prior scale s": (
        lambda x, m, v, s: _kl_normals(m, v, 0.0, s * s),
        "the KL is taken to N(0, s^2); the prior p(z) is N(0, 1), whatever the likelihood's s.",
    ),
    "sd for variance": (lambda x, m, v, s: _kl(m, math.sqrt(v)), _SD),
    "no 1/2": (
        lambda x, m, v, s: _kl(m, v, log_factor=1.0, factor=1.0),
        "the KL is twice too large: the closed form of KL(N(m, v) || N(0, 1)) has a "
        "1/2 in front (tfd.kl_divergence computes it for you).",
    ),
    "log term": (
        lambda x, m, v, s: _kl(m, v, log_factor=1.0),
        "the KL's log term is twice too large: it has log v where the log of the "
        "standard deviation belongs (tfd.kl_divergence computes it for you).",
    ),
}

_COMBINE = {
    "right": (lambda e, k, b: e - b * k, ""),
    "beta on likelihood": (
        lambda e, k, b: b * e - k,
        "beta multiplies the log-likelihood term; it weights the KL.",
    ),
    "beta on both": (
        lambda e, k, b: b * (e - k),
        "beta multiplies the whole ELBO; it weights the KL term alone.",
    ),
    "sign": (
        lambda e, k, b: e + b * k,
        "the KL enters with the wrong sign: L_beta subtracts beta times the KL.",
    ),
    "no beta": (
        lambda e, k, b: e - k,
        "the value does not change with beta: beta must multiply the KL.",
    ),
    "1 - beta": (
        lambda e, k, b: e - (1.0 - b) * k,
        "the KL is weighted by 1 - beta; in L_beta its weight is beta (1 - beta is "
        "the KL's weight in L_beta - ELBO).",
    ),
    "over beta": (
        lambda e, k, b: e - k / b,
        "the KL is divided by beta; L_beta multiplies it by beta.",
    ),
    "negated": (
        lambda e, k, b: -(e - b * k),
        "that is -L_beta, a loss to minimize: return the bound L_beta itself.",
    ),
    "no KL": (lambda e, k, b: e, "the KL term is missing: L_beta subtracts beta KL(q || p(z))."),
    "no likelihood": (
        lambda e, k, b: -b * k,
        "the expected log-likelihood E_q[log N(x; z, s^2)] is missing.",
    ),
}

# Whole-formula slips, tried first: (x, m, v, beta, s) -> value.
_WHOLE = {
    "identity at the posterior": (
        lambda x, m, v, beta, s: _terms(x, m, v, s)[3] + (1 - beta) * _terms(x, m, v, s)[1],
        "it is right when q is the exact posterior, but not for other q: log p(x) + (1 - beta) "
        "KL(q || p(z)) leaves out - KL(q || p(z|x)), which is 0 only at q = p(z|x).",
    ),
    "log p(x)": (
        lambda x, m, v, beta, s: _terms(x, m, v, s)[3],
        "that is log p(x), whatever q and beta are: L_beta depends on both.",
    ),
}


def _matches(got, values) -> bool:
    return bool(np.allclose(got, values, rtol=1e-5, atol=1e-4))


def _named_slip(got, cases) -> str | None:
    """The hint of the slip (or two) whose formula gives ``got`` on every case, else None."""
    for formula, hint in _WHOLE.values():
        if _matches(got, [formula(*case) for case in cases]):
            return hint
    tries = []
    for (e_name, (ell, e_hint)), (k_name, (kl, k_hint)), (
        c_name,
        (comb, c_hint),
    ) in itertools.product(_ELLS.items(), _KLS.items(), _COMBINE.items()):
        if (c_name == "no KL" and k_name != "right") or (
            c_name == "no likelihood" and e_name != "right"
        ):
            continue  # a slip in a part that is not there
        hints = list(dict.fromkeys(h for h in (e_hint, k_hint, c_hint) if h))
        if 1 <= len(hints) <= 2:
            tries.append((len(hints), ell, kl, comb, hints))
    for _, ell, kl, comb, hints in sorted(tries, key=lambda t: t[0]):
        values = [comb(ell(x, m, v, s), kl(x, m, v, s), beta) for x, m, v, beta, s in cases]
        if _matches(got, values):
            return hints[0] if len(hints) == 1 else f"two slips: (1) {hints[0]} (2) {hints[1]}"
    return None


def _takes_s(fn) -> None:
    """A hint, not the check's own TypeError, when ``fn`` cannot be called with ``s=``."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # no signature to read: just call it
    try:
        signature.bind(1.0, None, 1.0, s=0.5)
    except TypeError:
        raise Hint(
            f"it cannot be called as my_toy_beta_bound(x, q, beta, s=...): its "
            f"arguments are {signature}. Keep the task's def my_toy_beta_bound(x, q, "
            f"beta, s=0.5): the check and the notebook pass s by that name."
        )


def _call(fn, x, m, v, beta, s) -> float:
    q = tfd.Normal(float(m), math.sqrt(v))
    what = f"my_toy_beta_bound(x={x}, q=N({m:.3g}, {v:.3g}), beta={beta}, s={s})"
    _takes_s(fn)
    value = fn(x, q, beta, s=s)
    if isinstance(value, (str, bytes)):
        raise Hint(f"{what} returned text ({value!r}); return the number itself.")
    got = returned_array(value, what, "a number")
    if got.shape != ():
        if got.size == 1:
            raise Hint(
                f"{what} returned an array of shape {list(got.shape)}; return one "
                f"number (shape [])."
            )
        raise Hint(
            f"{what} returned {got.size} numbers (shape {list(got.shape)}); L_beta "
            f"is one number. In closed form no samples are needed."
        )
    value = float(got)
    if not math.isfinite(value):
        raise Hint(f"{what} is {value}: look for a log of 0 or of a negative number.")
    return value


@check("toy_beta_bound")
def toy_beta_bound(fn) -> None:
    """``fn(x, q, beta, s)``: L_beta of the toy model in closed form, q a tfd.Normal."""
    cases = list(_cases())
    with quiet_tensorflow():  # a tf.function retraces for each case
        got = [_call(fn, *case) for case in cases]
    right = [_terms(x, m, v, s)[0] - beta * _terms(x, m, v, s)[1] for x, m, v, beta, s in cases]
    if np.allclose(got, right, rtol=1e-5, atol=1e-4):
        return
    hint = _named_slip(got, cases)
    if hint is not None:
        raise Hint(hint)
    if np.allclose(got, right, atol=0.05):
        raise Hint(
            "the values are close to L_beta but not equal (within a few hundredths): "
            "a Monte Carlo estimate? Every term has a closed form here: "
            "tfd.kl_divergence for the KL, and E_q[(x - z)^2] = (x - m)^2 + v."
        )
    i = int(np.argmax(np.abs(np.subtract(got, right))))
    x, m, v, beta, s = cases[i]
    mine, theirs = apart(got[i], right[i], "f", 4)
    raise Hint(
        f"for x = {x}, q = N({m:.3g}, {v:.3g}), beta = {beta} and s = {s}, L_beta is "
        f"{theirs}, yours gives {mine}. L_beta = E_q[log N(x; z, s^2)] "
        f"- beta KL(q || N(0, 1))."
    )


#: Math Task on MSE + KL: a hint for each wrong letter.
_MSE_HINTS = {
    "a": "sigma^2 = 1 gives -ELBO = ||x - x_hat||^2 / 2 + KL + const: the squared error summed "
    "over the pixels, halved. The loss here divides that sum by D = 784 and leaves the "
    "KL alone: which sigma^2 puts that factor in front of ||x - x_hat||^2?",
    "b": "sigma^2 = 1/2 gives -ELBO = ||x - x_hat||^2 + KL + const, the squared error summed "
    "over the pixels (the section's sigma^2 = beta/2 with beta = 1). The loss here takes "
    "the mean over the D = 784 pixels, so it divides that sum by D and leaves the KL "
    "alone: which sigma^2 does that correspond to?",
    "d": "with a fixed sigma^2, -log N(x; x_hat, sigma^2 I) = ||x - x_hat||^2 / (2 sigma^2) "
    "+ const: a squared error is a Gaussian negative log-likelihood up to a factor and a "
    "constant (the section's first equation). Which sigma^2 makes the factor 1/D?",
}


def mse_beta(answer) -> None:
    """Math Task: the fixed decoder variance that MSE (a mean over D pixels) + KL implies.
    (The answer is c: sigma^2 = D/2.)"""
    return choice(
        "mse_beta",
        answer,
        "c",
        _MSE_HINTS.get(
            letter(answer), 'answer with one of the letters a, b, c or d, as a string such as "a".'
        ),
    )
