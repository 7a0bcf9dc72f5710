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

import contextlib
import inspect
import io
import math
import warnings

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac.checks import Hint, check, choice, letter, quiet_tensorflow, returned_array
from vae_prac.checks._shared import StudentError, judged

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
_CASES = [
    (1.0, 0.8, 0.2),  # the exact posterior for x = 1, s = 0.5: ELBO = log p(x)
    (1.0, 0.0, 1.0),  # the prior as q
    (1.0, 2.0, 0.1),
    (-0.5, 0.3, 0.5),
    (0.7, -0.4, 2.0),
    (2.0, 1.5, 0.05),
]
_N, _SEED = 20_000, (3, 4)  # samples and seed of every judged call
_SPREAD_CASE = (1.0, 2.0, 0.1)  # far from the posterior: single samples scatter a lot
_REPS = 8  # our own replicates of an n-sample estimate, per case

#: Unbiased estimators the task allows besides the plain average of log p(x|z_l) + log p(z_l)
#: - log q(z_l): with the KL to the prior, or the entropy of q, in closed form. Their
#: Monte Carlo errors differ (the plain one has none at the exact posterior), so a value
#: is judged with the largest.
_ALLOWED = [{}, dict(form="kl_prior"), dict(form="entropy")]

#: Slips a cohort makes, each with the hint that names it. A hint claims a slip only when
#: the student's values match that slip's estimate, within Monte Carlo error, on every
#: judged case. Keys: reduce (mean | sum | logmeanexp), signs of (log p(x|z), log p(z),
#: log q(z)), q_scale / logq_scale ("sqrt": sqrt(v), right; "v"), lik (scale s | s2 | 1 |
#: none | zero_mean), prior (z | none | s | x), sample_from (q | prior), density (how each
#: log N(value; loc, scale) is written by hand: see ``_DENSITIES``), form (kl_prior |
#: entropy, allowed; kl_plus | kl_reversed, slips).
_SLIPS = [
    (
        dict(reduce="sum"),
        "the estimate is the sum over the samples, not their mean: it grows with n_samples. "
        "The ELBO is the average over the samples.",
    ),
    (
        dict(reduce="logmeanexp"),
        "it looks like the log of the mean of the weights p(x|z) p(z) / q(z) (a log-mean-exp, "
        "the IWAE-style estimate), not the mean of their logs that the ELBO is.",
    ),
    (
        dict(signs=(-1, -1, 1)),
        "the sign of the whole estimate is flipped: that is minus the ELBO (a loss to "
        "minimize), but the task asks for the ELBO itself.",
    ),
    (
        dict(signs=(1, 1, 0)),
        "the -log q(z) term is missing: the ELBO averages log p(x|z) + log p(z) - log q(z).",
    ),
    (
        dict(signs=(1, 1, 1)),  # in expectation the same as subtracting H(q)
        "log q(z) is added, but it should be subtracted: log p(x|z) + log p(z) - log q(z). "
        "(With the entropy H(q) in closed form: it is added, since -E_q[log q(z)] = H(q).)",
    ),
    (
        dict(signs=(1, -1, -1)),
        "log p(z) is subtracted, but it should be added: log p(x|z) + log p(z) - log q(z).",
    ),
    (
        dict(signs=(-1, 1, -1)),
        "log p(x|z) is subtracted, but it should be added: log p(x|z) + log p(z) - log q(z).",
    ),
    (
        dict(q_scale="v", logq_scale="v"),
        "q seems to be built with scale v. A Normal's scale is its standard deviation, and v is "
        "the variance of q.",
    ),
    (
        dict(logq_scale="v"),
        "the samples z come from q with standard deviation sqrt(v), but log q(z) uses scale v: "
        "v is a variance, and a Normal's scale is a standard deviation.",
    ),
    (
        dict(q_scale="v"),
        "log q(z) uses standard deviation sqrt(v), but the samples z are drawn with scale v: "
        "v is a variance, and a Normal's scale is a standard deviation.",
    ),
    (
        dict(lik="s2"),
        "p(x|z) seems to have scale s^2. The likelihood N(x; z, s^2) has variance s^2, and a "
        "Normal's scale is the standard deviation s.",
    ),
    (
        dict(lik="1"),
        "p(x|z) seems to have scale 1; the likelihood N(x; z, s^2) has standard deviation s "
        "(S in the notebook).",
    ),
    (
        dict(lik="none"),
        "the log p(x|z) term is missing: the ELBO averages log p(x|z) + log p(z) - log q(z).",
    ),
    (
        dict(lik="zero_mean"),
        "log p(x|z) does not depend on the samples: the likelihood N(x; z, s^2) is centred on "
        "each sample z.",
    ),
    (
        dict(prior="none"),
        "the log p(z) term is missing: the ELBO averages log p(x|z) + log p(z) - log q(z).",
    ),
    (dict(prior="s"), "p(z) seems to have scale s; the prior is the standard normal N(0, 1)."),
    (
        dict(prior="x"),
        "log p(z) seems to be evaluated at x; the prior's log-density is evaluated at the "
        "samples z.",
    ),
    (
        dict(signs=(1, 0, 0)),
        "the estimate is the average of log p(x|z) alone: log p(z) - log q(z) is missing, or "
        "cancels (is log q(z) computed with the prior's density?).",
    ),
    (
        dict(sample_from="prior"),
        "the samples z seem to come from the prior N(0, 1), not from q = N(m, v): the ELBO is "
        "an expectation under q, so draw z from q.",
    ),
    (
        dict(density="no_2pi"),
        "the estimate is about 0.919 = log(2 pi) / 2 above the ELBO on every q: each "
        "hand-written log-density seems to lack its -log(2 pi) / 2. A Normal's log-density is "
        "-log(2 pi sigma^2) / 2 - (value - mean)^2 / (2 sigma^2).",
    ),
    (
        dict(density="unnormalized"),
        "the log-densities seem to keep only -(value - mean)^2 / (2 sigma^2): a Normal's "
        "log-density also has the term -log(2 pi sigma^2) / 2, and it does not cancel here "
        "(the three Normals have different scales).",
    ),
    (
        dict(density="precedence"),
        "the log-densities seem to compute (value - mean)^2 / 2 * sigma^2, which Python reads "
        "as multiplying by sigma^2; the term is (value - mean)^2 / (2 sigma^2): mind the "
        "parentheses.",
    ),
    (
        dict(density="log_sigma_2pi"),
        "the log-densities seem to use -log(2 pi sigma) / 2, with the standard deviation where "
        "the variance belongs: a Normal's log-density has -log(2 pi sigma^2) / 2.",
    ),
    (
        dict(form="kl_plus"),
        "the KL divergence to the prior seems to be added; the ELBO is E_q[log p(x|z)] minus "
        "KL(q || p(z)).",
    ),
    (
        dict(form="kl_reversed"),
        "the KL divergence seems to be KL(p(z) || q), the arguments swapped; the ELBO subtracts "
        "KL(q || p(z)), with q first.",
    ),
]

#: A Normal's log-density written by hand, right and with a cohort's slips.
_DENSITIES = {
    "right": lambda value, loc, scale: (
        -0.5 * np.log(2 * np.pi * scale**2) - 0.5 * ((value - loc) / scale) ** 2
    ),
    "no_2pi": lambda value, loc, scale: (
        -0.5 * np.log(scale**2) - 0.5 * ((value - loc) / scale) ** 2
    ),
    "unnormalized": lambda value, loc, scale: -0.5 * ((value - loc) / scale) ** 2,
    "precedence": lambda value, loc, scale: (
        -0.5 * np.log(2 * np.pi * scale**2) - (value - loc) ** 2 / 2 * scale**2
    ),
    "log_sigma_2pi": lambda value, loc, scale: (
        -0.5 * np.log(2 * np.pi * scale) - 0.5 * ((value - loc) / scale) ** 2
    ),
}


def _terms(x, m, v, s, eps, slip):
    """Per-sample values of an estimator with ``slip`` ({}: the right one), float64."""
    _log_normal = _DENSITIES[slip.get("density", "right")]
    sd = {"sqrt": math.sqrt(v), "v": v}
    if slip.get("sample_from") == "prior":
        z = 0.0 + 1.0 * eps
    else:
        z = m + sd[slip.get("q_scale", "sqrt")] * eps
    log_lik = {
        "s": lambda: _log_normal(x, z, s),
        "s2": lambda: _log_normal(x, z, s * s),
        "1": lambda: _log_normal(x, z, 1.0),
        "none": lambda: 0.0 * z,
        "zero_mean": lambda: _log_normal(x, 0.0, s) + 0.0 * z,
    }[slip.get("lik", "s")]()
    log_prior = {
        "z": lambda: _log_normal(z, 0.0, 1.0),
        "none": lambda: 0.0 * z,
        "s": lambda: _log_normal(z, 0.0, s),
        "x": lambda: _log_normal(x, 0.0, 1.0) + 0.0 * z,
    }[slip.get("prior", "z")]()
    log_q = _log_normal(z, m, sd[slip.get("logq_scale", "sqrt")])
    kl_prior = 0.5 * (m * m + v - 1.0 - math.log(v))  # KL(q || p(z)), exact
    entropy = 0.5 * math.log(2 * math.pi * math.e * v)  # H(q), exact
    form = slip.get("form")
    if form == "kl_prior":  # log p(x|z_l) - KL(q || p(z))
        return log_lik - kl_prior
    if form == "kl_plus":
        return log_lik + kl_prior
    if form == "kl_reversed":  # KL(p(z) || q) instead
        return log_lik - 0.5 * ((1.0 + m * m) / v - 1.0 + math.log(v))
    if form == "entropy":  # log p(x|z_l) + log p(z_l) + H(q)
        return log_lik + log_prior + entropy
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
        reps = _estimates(terms, slip)  # [_REPS] replicates of n samples
        mean, error = float(np.mean(reps)), float(np.std(reps))
    else:
        scale = n if slip.get("reduce") == "sum" else 1
        mean = scale * float(np.mean(terms))
        error = scale * float(np.std(terms)) / math.sqrt(n)
    return mean, 5 * error + 1e-3 + 1e-5 * abs(mean)


@contextlib.contextmanager
def _quiet():
    """Warnings (TensorFlow, TFP, NumPy) and the student's own prints would bury the check's
    one line under the output of its thirty-odd calls: both are silenced."""
    with (
        quiet_tensorflow(),
        warnings.catch_warnings(),
        np.errstate(all="ignore"),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


def _call(fn, x, m, v, n, seed):
    """``fn``'s estimate as a Python float, or a hint when it is not one finite number."""
    what = f"toy_elbo({x}, {m}, {v}, n_samples={n}, seed={seed})"
    with _quiet():
        try:
            value = fn(x, m, v, n_samples=n, seed=seed)
        except NotImplementedError:
            raise
        except Exception as err:
            raise StudentError(str(err)) from err
        arr = returned_array(value, what, "a number")
    if arr.ndim != 0:
        if arr.size == 1:
            raise Hint(
                f"{what} returned an array of shape {arr.shape}; return one number "
                "(shape ()): later cells turn it into a Python float, which fails "
                "for a tensor of that shape."
            )
        if arr.size == n:
            raise Hint(
                f"{what} returned an array of shape {arr.shape}, one value per sample. "
                "The ELBO estimate is one number: their average."
            )
        raise Hint(
            f"{what} should be one number (the average over the samples), but it is "
            f"an array of shape {arr.shape}."
        )
    value = float(arr.reshape(()))
    if not np.isfinite(value):
        raise Hint(
            f"{what} is {value}; check each log-probability term (a scale of 0, the "
            "square root or log of a negative number?) and that the average is over "
            "n_samples values (an average of no values is NaN)."
        )
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
        return (
            "the estimate is the same number for every seed, even with one sample: the "
            "task asks for a Monte Carlo average over draws z_1..z_L from q, made with "
            "`seed`."
        )
    if many > one / 4:  # expected one / 20
        return (
            f"over a few seeds, estimates with n_samples=400 scatter about as much as "
            f"with n_samples=1 (spread {many:.3f} with 400 samples, {one:.3f} with 1), "
            "but an average of 400 draws scatters 20 times less: does the estimate "
            "use n_samples draws? (A fixed number of samples, or one sample, ignores it.)"
        )
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

    Judged on what it computes, whatever it is written with (tfd, tf.random, keras.ops,
    NumPy, a Python loop, float32 or float64): on six (x, m, v) its estimate from 20,000
    draws must be within Monte Carlo error of the truth log p(x) - KL(q || p(z|x)); the
    same seed must give the same number and another seed (either of its two numbers)
    another number; and it must average n_samples draws (its estimates scatter less with
    more samples). A value that misses is compared with the slips of ``_SLIPS`` on the
    same cases before one is named; the exact ELBO in closed form, with no draws, is
    named too. The notebook calls it only eagerly, so it is not run inside tf.function.
    What the function prints, and the warnings of TensorFlow and NumPy, are silenced
    while it is judged, so the cell shows the check's one line.

    What it cannot tell apart: an answer that calls the library's ``toy_elbo_reference``
    computes the same numbers as the intended one and passes; so would the exact value
    plus seeded noise made to shrink like 1 / sqrt(n_samples). Slips whose estimates lie
    within Monte Carlo error of the ELBO on all six cases would pass too; the cases are
    chosen so that every slip of ``_SLIPS`` is far outside it.
    """
    judged(_judge, fn, s, what="your function")


def _signature_hint(fn):
    """A hint when ``fn`` cannot be called as the check and the notebook call it."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # no signature to read: just call it
    try:
        signature.bind(1.0, 0.0, 1.0, n_samples=10, seed=(0, 0))
    except TypeError:
        raise Hint(
            f"the notebook calls toy_elbo(x, m, v, n_samples=..., seed=...), with "
            f"those two names, but your function's parameters are {signature}."
        ) from None


def _judge(fn, s):
    _signature_hint(fn)
    values = [_call(fn, x, m, v, _N, _SEED) for x, m, v in _CASES]
    rng = np.random.default_rng(0)
    eps = [rng.standard_normal((_REPS, _N)) for _ in _CASES]
    truths = []
    for x, m, v in _CASES:
        log_px = float(toy_log_evidence(x, s))
        kl = float(tfd.kl_divergence(tfd.Normal(m, math.sqrt(v)), toy_posterior(x, s)))
        truths.append((log_px, log_px - kl))
    for (x, m, v), e, value, (log_px, truth) in zip(_CASES, eps, values, truths):
        tol = max(_expected(x, m, v, s, _N, form, e)[1] for form in _ALLOWED)
        if abs(value - truth) <= tol:
            continue
        named = _diagnose(fn, s, values, eps)
        if named:
            raise Hint(named)
        above = (
            f" It is even above log p(x) = {log_px:.4f}, which a lower bound cannot be."
            if value > log_px + tol
            else ""
        )
        raise Hint(
            f"toy_elbo({x}, {m}, {v}) = {value:.4f}, but it should be close to "
            f"log p(x) - KL(q || p(z|x)) = {truth:.4f} (give or take {tol:.3f}, the "
            f"Monte Carlo error).{above} Check each term of log p(x|z) + log p(z) - "
            "log q(z), the scales (standard deviations) of the three Normals, and "
            "that the estimate is the average over the samples."
        )

    spread = _CASES.index(_SPREAD_CASE)
    x, m, v = _SPREAD_CASE
    first = values[spread]

    def same(other):
        return abs(other - first) <= 1e-6 * (1.0 + abs(first))  # float round-off only

    if not same(_call(fn, x, m, v, _N, _SEED)):
        raise Hint(
            "two calls with the same arguments and the same seed gave different "
            "numbers: the draws do not use `seed`. Drawing the samples with the seed "
            "makes the estimate reproducible."
        )
    if same(_call(fn, x, m, v, _N, (4, 4))):
        if all(abs(value - truth) <= 1e-4 for value, (_, truth) in zip(values, truths)):
            raise Hint(
                "your values are the exact ELBO, log p(x) - KL(q || p(z|x)), whatever "
                "the seed: a closed form, not a Monte Carlo estimate. The task is the "
                "estimate from n_samples draws z_1..z_L ~ q, made with `seed` (for a "
                "VAE no closed form exists)."
            )
        raise Hint(
            "with another seed the estimate is exactly the same number: the draws "
            "z_1..z_L ~ q must be made with `seed` (the task asks for a Monte Carlo "
            "estimate, and a new seed gives new draws)."
        )
    if same(_call(fn, x, m, v, _N, (3, 5))):
        raise Hint(
            "seed=(3, 5) gives exactly the same estimate as seed=(3, 4): the draws "
            "use only part of the seed. Later cells change only its second number "
            "to get new draws, so use the whole seed."
        )
    hint = _n_samples_hint(fn)
    if hint:
        raise Hint(hint)


#: The Jensen Math Task: Y is 1 or 4 with probability 1/2 each, so log E[Y] = log 2.5 =
#: 0.916 and E[log Y] = log 2 = 0.693; the order holds for every Y because log is concave.
#: The right answer is "c"; each wrong letter has its own hint.
_JENSEN_HINTS = {
    "a": "recompute the two numbers: log E[Y] is the log of the average (1 + 4) / 2, and "
    "E[log Y] is the average of log 1 and log 4 (natural logs).",
    "b": "recompute the two numbers: log E[Y] is the log of the average (1 + 4) / 2, and "
    "E[log Y] is the average of log 1 and log 4 (natural logs).",
    "d": "the two numbers are right. Is their order special to 1 and 4? Draw y -> log y and "
    "the straight line (a chord) between its points at y = 1 and y = 4: E[log Y] lies "
    "on the chord, log E[Y] on the curve. Is the chord above or below the curve, and "
    "would that change for other points, or for a q that is not Gaussian?",
}


def jensen_quiz(answer):
    """Y is 1 or 4, each with probability 1/2: log E[Y] against E[log Y], and why it is a
    lower bound."""
    return choice(
        "jensen_quiz",
        answer,
        "c",
        _JENSEN_HINTS.get(
            letter(answer),
            "answer with one of the letters a, b, c or d: compute log E[Y] and "
            "E[log Y] for this Y, then ask whether their order could flip.",
        ),
    )


#: The phi Math Task: which of the listed networks holds phi. The right answer is "b".
_PHI_HINTS = {
    "a": "the network that turns a code z into pixel probabilities gives p_theta(x|z): its "
    "weights are theta. Which network gives the distribution q_phi(z|x)?",
    "c": "maximizing over phi and theta together does not make them the same numbers: which "
    "network takes an image x, and which gives a distribution over z?",
    "d": "the cell above shows that the prior p(z) = N(0, I) has no trainable parameters.",
}


def phi_quiz(answer):
    """Which network's weights are phi?"""
    return choice(
        "phi_quiz",
        answer,
        "b",
        _PHI_HINTS.get(
            letter(answer),
            "answer with one of the letters a, b, c or d: phi are the "
            "parameters of q_phi(z|x). Which network computes it?",
        ),
    )
