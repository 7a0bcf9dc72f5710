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

from vae_prac.checks import Hint, check, choice, returned_array

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


# The check judges on these (x, m, v): unequal, asymmetric numbers and v != 1 (but one),
# so a variance passed as a scale, s^2 for s, a missing term or a flipped sign all show.
_CASES = [(1.0, 0.8, 0.2),      # the exact posterior for x = 1, s = 0.5: ELBO = log p(x)
          (1.0, 0.0, 1.0),      # the prior as q
          (1.0, 2.0, 0.1),
          (-0.5, 0.3, 0.5),
          (0.7, -0.4, 2.0),
          (2.0, 1.5, 0.05)]
_N, _SEED = 20_000, (3, 4)        # samples and seed of every judged call
_SPREAD_CASE = (1.0, 2.0, 0.1)    # far from the posterior: single samples scatter a lot
_REPS = 8                         # our own replicates of an n-sample estimate, per case

#: Unbiased estimators the task allows besides the plain average of log p(x|z_l) + log p(z_l)
#: - log q(z_l): with the KL to the prior, or the entropy of q, in closed form. Their
#: Monte Carlo errors differ (the plain one has none at the exact posterior), so a value
#: is judged with the largest.
_ALLOWED = [{}, dict(form="kl_prior"), dict(form="entropy")]

#: Slips a cohort makes, each with the hint that names it. A hint claims a slip only when
#: the student's values match that slip's estimate, within Monte Carlo error, on every
#: judged case. Keys: reduce (mean | sum | logmeanexp), signs of (log p(x|z), log p(z),
#: log q(z)), q_scale / logq_scale ("sqrt": sqrt(v), right; "v"), lik (scale s | s2 | 1 |
#: none | zero_mean), prior (z | none | s | x).
_SLIPS = [
    (dict(reduce="sum"),
     "the estimate is the sum over the samples, not their mean: it grows with n_samples. "
     "The ELBO is the average over the samples."),
    (dict(reduce="logmeanexp"),
     "it looks like the log of the mean of the weights p(x|z) p(z) / q(z) (a log-mean-exp, "
     "the IWAE-style estimate), not the mean of their logs that the ELBO is."),
    (dict(signs=(-1, -1, 1)),
     "the sign of the whole estimate is flipped: that is minus the ELBO (a loss to "
     "minimize), but the task asks for the ELBO itself."),
    (dict(signs=(1, 1, 0)),
     "the -log q(z) term is missing: the ELBO averages log p(x|z) + log p(z) - log q(z)."),
    (dict(signs=(1, 1, 1)),
     "log q(z) is added, but it should be subtracted: log p(x|z) + log p(z) - log q(z)."),
    (dict(signs=(1, -1, -1)),
     "log p(z) is subtracted, but it should be added: log p(x|z) + log p(z) - log q(z)."),
    (dict(signs=(-1, 1, -1)),
     "log p(x|z) is subtracted, but it should be added: log p(x|z) + log p(z) - log q(z)."),
    (dict(q_scale="v", logq_scale="v"),
     "q seems to be built with scale v. A Normal's scale is its standard deviation, and v is "
     "the variance of q."),
    (dict(logq_scale="v"),
     "the samples z come from q with standard deviation sqrt(v), but log q(z) uses scale v: "
     "v is a variance, and a Normal's scale is a standard deviation."),
    (dict(q_scale="v"),
     "log q(z) uses standard deviation sqrt(v), but the samples z are drawn with scale v: "
     "v is a variance, and a Normal's scale is a standard deviation."),
    (dict(lik="s2"),
     "p(x|z) seems to have scale s^2. The likelihood N(x; z, s^2) has variance s^2, and a "
     "Normal's scale is the standard deviation s."),
    (dict(lik="1"),
     "p(x|z) seems to have scale 1; the likelihood N(x; z, s^2) has standard deviation s "
     "(S in the notebook)."),
    (dict(lik="none"),
     "the log p(x|z) term is missing: the ELBO averages log p(x|z) + log p(z) - log q(z)."),
    (dict(lik="zero_mean"),
     "log p(x|z) does not depend on the samples: the likelihood N(x; z, s^2) is centred on "
     "each sample z."),
    (dict(prior="none"),
     "the log p(z) term is missing: the ELBO averages log p(x|z) + log p(z) - log q(z)."),
    (dict(prior="s"),
     "p(z) seems to have scale s; the prior is the standard normal N(0, 1)."),
    (dict(prior="x"),
     "log p(z) seems to be evaluated at x; the prior's log-density is evaluated at the "
     "samples z."),
]


def _log_normal(value, loc, scale):
    return -0.5 * np.log(2 * np.pi * scale ** 2) - 0.5 * ((value - loc) / scale) ** 2


def _terms(x, m, v, s, eps, slip):
    """Per-sample values of an estimator with ``slip`` ({}: the right one), float64."""
    sd = {"sqrt": math.sqrt(v), "v": v}
    z = m + sd[slip.get("q_scale", "sqrt")] * eps
    log_lik = {"s": lambda: _log_normal(x, z, s), "s2": lambda: _log_normal(x, z, s * s),
               "1": lambda: _log_normal(x, z, 1.0), "none": lambda: 0.0 * z,
               "zero_mean": lambda: _log_normal(x, 0.0, s) + 0.0 * z}[slip.get("lik", "s")]()
    log_prior = {"z": lambda: _log_normal(z, 0.0, 1.0), "none": lambda: 0.0 * z,
                 "s": lambda: _log_normal(z, 0.0, s),
                 "x": lambda: _log_normal(x, 0.0, 1.0) + 0.0 * z}[slip.get("prior", "z")]()
    log_q = _log_normal(z, m, sd[slip.get("logq_scale", "sqrt")])
    if slip.get("form") == "kl_prior":         # log p(x|z_l) - KL(q || p(z)), exact KL
        return log_lik - 0.5 * (m * m + v - 1.0 - math.log(v))
    if slip.get("form") == "entropy":          # log p(x|z_l) + log p(z_l) + H(q), exact H
        return log_lik + log_prior + 0.5 * math.log(2 * math.pi * math.e * v)
    a, b, c = slip.get("signs", (1, 1, -1))
    return a * log_lik + b * log_prior + c * log_q


def _estimates(terms, slip):
    """The estimates an n-sample estimator with ``slip`` returns, one per row of ``terms``."""
    n = terms.shape[-1]
    if slip.get("reduce") == "sum":
        return terms.sum(axis=-1)
    if slip.get("reduce") == "logmeanexp":
        top = terms.max(axis=-1, keepdims=True)
        return np.log(np.mean(np.exp(terms - top), axis=-1)) + top[..., 0]
    return terms.sum(axis=-1) / n


def _expected(x, m, v, s, n, slip, eps):
    """(mean, tolerance) of ``slip``'s n-sample estimate, from our replicates ``eps``."""
    terms = _terms(x, m, v, s, eps, slip)
    if slip.get("reduce") == "logmeanexp":
        reps = _estimates(terms, slip)                  # [_REPS] replicates of n samples
        mean, error = float(np.mean(reps)), float(np.std(reps))
    else:
        scale = n if slip.get("reduce") == "sum" else 1
        mean = scale * float(np.mean(terms))
        error = scale * float(np.std(terms)) / math.sqrt(n)
    return mean, 5 * error + 1e-3 + 1e-5 * abs(mean)


def _call(fn, x, m, v, n, seed):
    """``fn``'s estimate as a Python float, or a hint when it is not one finite number."""
    what = f"toy_elbo({x}, {m}, {v}, n_samples={n}, seed={seed})"
    value = fn(x, m, v, n_samples=n, seed=seed)
    arr = returned_array(value, what, "a number")
    if arr.ndim != 0:
        if arr.size == 1:
            raise Hint(f"{what} returned an array of shape {arr.shape}; return one number "
                       "(shape ()): later cells turn it into a Python float, which fails "
                       "for a tensor of that shape.")
        if arr.size == n:
            raise Hint(f"{what} returned an array of shape {arr.shape}, one value per sample. "
                       "The ELBO estimate is one number: their average.")
        raise Hint(f"{what} should be one number (the average over the samples), but it is "
                   f"an array of shape {arr.shape}.")
    value = float(arr.reshape(()))
    if not np.isfinite(value):
        raise Hint(f"{what} is {value}; check each log-probability term (a scale of 0 or a "
                   "square root of a negative number?).")
    return value


def _spread(fn, x, m, v, n, k=8):
    return float(np.std([_call(fn, x, m, v, n, (100 + i, 7)) for i in range(k)]))


def _n_samples_hint(fn):
    """A hint when the estimate does not average ``n_samples`` draws, else None.

    An average of n draws scatters sqrt(n) times less than one draw; compare the
    student's own estimates with 1 and with 400 samples over eight seeds.
    """
    x, m, v = _SPREAD_CASE
    one, many = _spread(fn, x, m, v, 1), _spread(fn, x, m, v, 400)
    if one == 0.0:
        return ("the estimate is the same number for every seed, even with one sample: the "
                "task asks for a Monte Carlo average over draws z_1..z_L from q, made with "
                "`seed`.")
    if many > one / 4:       # expected one / 20
        return (f"over a few seeds, estimates with n_samples=400 scatter about as much as "
                f"with n_samples=1 (spread {many:.3f} with 400 samples, {one:.3f} with 1), "
                "but an average of 400 draws scatters 20 times less: does the estimate "
                "use n_samples draws? (A fixed number of samples, or one sample, ignores it.)")
    return None


def _diagnose(fn, s, values, eps):
    """The hint for values that miss the ELBO: a named slip when one fits every case."""
    fits = []
    for slip, hint in _SLIPS:
        expected = [_expected(x, m, v, s, _N, slip, e) for (x, m, v), e in zip(_CASES, eps)]
        if all(abs(got - mean) <= tol for got, (mean, tol) in zip(values, expected)):
            fits.append(hint)
    if len(fits) == 1:
        return fits[0]
    return _n_samples_hint(fn)


@check("toy_elbo")
def toy_elbo(fn, s=TOY_S):
    """``fn(x, m, v, n_samples, seed)``: a Monte Carlo ELBO of q = N(m, v) in the toy model.

    Judged on what it computes, whatever it is written with (tfd, tf.random, NumPy):
    on six (x, m, v) its estimate from 20,000 draws must be within Monte Carlo error of
    the truth log p(x) - KL(q || p(z|x)); the same seed must give the same number and
    another seed (either of its two numbers) another number; and it must average
    n_samples draws (its estimates scatter less with more samples). A value that misses
    is compared with the slips of ``_SLIPS`` on the same cases before one is named.
    The notebook calls it only eagerly, so it is not run inside tf.function.
    """
    values = [_call(fn, x, m, v, _N, _SEED) for x, m, v in _CASES]
    rng = np.random.default_rng(0)
    eps = [rng.standard_normal((_REPS, _N)) for _ in _CASES]
    for (x, m, v), e, value in zip(_CASES, eps, values):
        log_px = float(toy_log_evidence(x, s))
        truth = log_px - float(tfd.kl_divergence(tfd.Normal(m, math.sqrt(v)), toy_posterior(x, s)))
        tol = max(_expected(x, m, v, s, _N, form, e)[1] for form in _ALLOWED)
        if abs(value - truth) <= tol:
            continue
        named = _diagnose(fn, s, values, eps)
        if named:
            raise Hint(named)
        above = (f" It is even above log p(x) = {log_px:.4f}, which a lower bound cannot be."
                 if value > log_px + tol else "")
        raise Hint(f"toy_elbo({x}, {m}, {v}) = {value:.4f}, but it should be close to "
                   f"log p(x) - KL(q || p(z|x)) = {truth:.4f} (give or take {tol:.3f}, the "
                   f"Monte Carlo error).{above} Check each term of log p(x|z) + log p(z) - "
                   "log q(z), the scales (standard deviations) of the three Normals, and "
                   "that the estimate is the average over the samples.")

    x, m, v = _SPREAD_CASE
    first = values[_CASES.index(_SPREAD_CASE)]

    def same(other):
        return abs(other - first) <= 1e-6 * (1.0 + abs(first))   # float round-off only

    if not same(_call(fn, x, m, v, _N, _SEED)):
        raise Hint("two calls with the same arguments and the same seed gave different "
                   "numbers: the draws do not use `seed`. Drawing the samples with the seed "
                   "makes the estimate reproducible.")
    if same(_call(fn, x, m, v, _N, (4, 4))):
        raise Hint("with another seed the estimate is exactly the same number: the draws "
                   "z_1..z_L ~ q must be made with `seed` (the task asks for a Monte Carlo "
                   "estimate, and a new seed gives new draws).")
    if same(_call(fn, x, m, v, _N, (3, 5))):
        raise Hint("seed=(3, 5) gives exactly the same estimate as seed=(3, 4): the draws "
                   "use only part of the seed. Later cells change only its second number "
                   "to get new draws, so use the whole seed.")
    hint = _n_samples_hint(fn)
    if hint:
        raise Hint(hint)


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
