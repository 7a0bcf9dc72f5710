"""Check for notebook 07's Code Task on a learned prior: a mixture of Gaussians.

    from vae_prac.checks import priors
    priors.mog_prior(my_mog_prior)   # p(z) = sum_k softmax(logits)_k N(z; locs_k, diag(scales_k^2))

Why. A prior with learnable weights, means and scales can follow the aggregate posterior
that the N(0, I) prior cannot (notebook 06); its KL from q_phi(z|x) has no closed form,
so the ELBO estimates it by Monte Carlo (notebook 04), which needs exactly two things of
the prior: ``log_prob`` of a batch of codes (one number per code: a density over all d
dimensions) and gradients of it for the three parameter sets. The notebook also draws
codes from it (``sample``).

What it judges. The student's ``fn(logits, locs, scales)`` gets K = 3 components in d = 4
dimensions with unequal mixing logits (one negative), means and scales (none equal to
1, so a variance passed as a scale shows), as ``tf.Variable``s. Its ``log_prob`` is
compared with a float64 log-sum-exp of the mixture's terms on codes near the components
and on one code 40 units from all of them (where a sum of exp() underflows), also laid
out [k, batch, d] as the importance-weighted bound has them; the gradient of the log
density must reach ``logits``, ``locs`` and ``scales``, eagerly and inside
``tf.function`` (the notebook's training step builds the prior there, so a ``.numpy()``
or ``float()`` of an argument, harmless eagerly, fails there); its dtype must stay
float32, the encoder's; and its ``sample(n, seed=...)`` must give [n, d] codes whose
mean and variance are the mixture's. Slips are named only when their formula gives the
student's values (the weights, the scales, the log-sum-exp: max or a mean of logs in its
place). Weights given as unnormalized probabilities (``probs=exp(logits)``) pass:
``tfd.Categorical`` normalizes them itself, so density and samples are right.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import tensorflow as tf

from vae_prac.checks import Hint, apart, check, quiet_tensorflow, returned_array

__all__ = ["mog_prior"]

LOGITS = np.array([0.4, -1.1, 0.9], np.float32)
LOCS = np.array([[1.5, -0.5, 0.2, 2.0], [-2.0, 1.0, -0.8, 0.3], [0.3, 2.5, 1.2, -1.5]], np.float32)
SCALES = np.array([[0.6, 1.4, 0.8, 0.5], [1.2, 0.4, 0.9, 1.7], [0.7, 0.9, 2.1, 0.3]], np.float32)
K, D = LOCS.shape
# Codes to judge log_prob on: near each component, between them, and one far from all.
CODES = np.concatenate(
    [LOCS + 0.3, [[0.0, 0.0, 0.0, 0.0], [-0.5, 1.8, 0.4, 0.9]], [[40.0, -40.0, 40.0, -40.0]]]
).astype(np.float32)
N_SAMPLES = 4000


def _log_normal(z, loc, scale):
    return -0.5 * np.log(2 * np.pi * scale**2) - 0.5 * ((z - loc) / scale) ** 2


def _lse(a, axis=-1):
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def _components(z, locs=LOCS, scales=SCALES):
    """log N(z; locs_k, diag(scales_k^2)) per code and component, float64; [n, K]."""
    z = np.asarray(z, np.float64)[:, None, :]  # [n, 1, d]
    return _log_normal(z, locs.astype(np.float64), scales.astype(np.float64)).sum(-1)


def _mixture(z, log_pi, locs=LOCS, scales=SCALES):
    """log sum_k pi_k N(z; locs_k, diag(scales_k^2)) per code, float64; z [n, d]."""
    return _lse(_components(z, locs, scales) + log_pi)


def _log_softmax(a):
    a = np.asarray(a, np.float64)
    return a - _lse(a)


def _slips():
    """{slip: (log_prob on CODES, hint)}, each computed the slip's way."""
    right_pi = _log_softmax(LOGITS)
    return {
        "softmax twice": (
            _mixture(CODES, _log_softmax(np.exp(right_pi))),
            "the mixing weights are softmax(softmax(logits)): a Categorical "
            "given logits= applies the softmax itself (or pass "
            "probs=softmax(logits)).",
        ),
        "equal weights": (
            _mixture(CODES, np.full(K, -math.log(K))),
            "every component gets the weight 1/K: the mixing weights must "
            "come from logits, pi = softmax(logits).",
        ),
        "unnormalized": (
            _mixture(CODES, LOGITS.astype(np.float64)),
            "the mixing weights are exp(logits), not normalized: pi = "
            "softmax(logits), i.e. subtract logsumexp(logits).",
        ),
        "variance as scale": (
            _mixture(CODES, right_pi, scales=SCALES**2),
            "the components' scale seems to be scales**2: a Normal's scale "
            "is its standard deviation, and `scales` are standard "
            "deviations already.",
        ),
        "sqrt scale": (
            _mixture(CODES, right_pi, scales=np.sqrt(SCALES)),
            "the components' scale seems to be sqrt(scales) (as with a covariance "
            "diag(scales)): `scales` are standard deviations already; pass them "
            "as they are.",
        ),
        "first component": (
            _mixture(CODES, np.array([0.0, -np.inf, -np.inf])),
            "that is the first component alone: the prior mixes all K "
            "components, weighted by softmax(logits).",
        ),
        "softplus scale": (
            _mixture(CODES, right_pi, scales=np.log1p(np.exp(SCALES))),
            "the components' scale seems to be softplus(scales): `scales` are "
            "positive standard deviations already (whoever calls the prior "
            "makes them positive, as the notebook's softplus does); pass them "
            "as they are.",
        ),
        "exp scale": (
            _mixture(CODES, right_pi, scales=np.exp(SCALES)),
            "the components' scale seems to be exp(scales): `scales` are standard "
            "deviations, not their logs; pass them as they are.",
        ),
        "scales ignored": (
            _mixture(CODES, right_pi, scales=np.ones_like(SCALES)),
            "every component seems to have scale 1: use `scales`, the "
            "components' standard deviations.",
        ),
        "locs ignored": (
            _mixture(CODES, right_pi, locs=np.zeros_like(LOCS)),
            "every component seems to have mean 0: use `locs`, the components' means.",
        ),
        "negated logits": (
            _mixture(CODES, _log_softmax(-LOGITS)),
            "the mixing weights are softmax(-logits): a sign is flipped, so "
            "the largest logit gets the smallest weight.",
        ),
        "pi as log weight": (
            _mixture(CODES, np.exp(right_pi)),
            "the mixing weights enter the log-sum-exp as pi_k itself; in log "
            "space a weight enters as its log, log pi_k = log_softmax(logits).",
        ),
        "max component": (
            (_components(CODES) + right_pi).max(axis=-1),
            "log_prob is the largest of log pi_k + log N(z; locs_k, ...), not "
            "the log of the sum over the components: use logsumexp, not max.",
        ),
        "mean of logs": (
            (_components(CODES) * np.exp(right_pi)).sum(axis=-1),
            "log_prob is sum_k pi_k log N(z; locs_k, ...), the weighted mean of "
            "the components' log densities (below the mixture's, by Jensen); "
            "the mixture's is log sum_k pi_k N(z; locs_k, ...).",
        ),
    }


def _log_prob(dist, z) -> np.ndarray:
    if not hasattr(dist, "log_prob"):
        raise Hint(
            f"it returned an object of type {type(dist).__name__}, which has no "
            f"log_prob: return a tfp distribution (tfd.MixtureSameFamily)."
        )
    batch = getattr(dist, "batch_shape", None)
    if batch is not None and batch.rank == 1 and batch[0] == K:
        raise Hint(
            f"it returned a batch of K = {K} distributions, one per component: that "
            f"is the components alone; mix them with the weights softmax(logits) "
            f"into one density (tfd.MixtureSameFamily with a tfd.Categorical)."
        )
    event = getattr(dist, "event_shape", None)
    if event is not None and event.rank is not None and event.rank == 0:
        raise Hint(
            f"its event shape is [], a density of one number: each component must be "
            f"one density over all d = {D} dimensions (tfd.Independent(tfd.Normal("
            f"locs, scales), 1), or tfd.MultivariateNormalDiag)."
        )
    n = len(z)
    dtype = getattr(dist, "dtype", None)
    if dtype is not None and dtype != tf.float32:
        raise Hint(
            f"the distribution's dtype is {getattr(dtype, 'name', dtype)}: its log_prob "
            f"refuses the encoder's float32 codes. Build it from the float32 arguments "
            f"as they are, without a cast."
        )
    try:
        value = dist.log_prob(tf.constant(z))
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise Hint(
            f"its log_prob of {n} codes of shape [{n}, {D}] failed "
            f"({type(err).__name__}: {lines[0][:160] if lines else ''}): the prior "
            f"must be one density over codes of {D} numbers."
        )
    got = returned_array(value, "its log_prob")
    if got.shape == (n,):
        return got
    if got.shape == (n, D):
        raise Hint(
            f"log_prob of {n} codes of {D} dimensions gives shape [{n}, {D}], one "
            f"density per dimension: each component must be one density over all d "
            f"dimensions (tfd.Independent(tfd.Normal(locs, scales), 1), or "
            f"tfd.MultivariateNormalDiag)."
        )
    if got.shape in ((n, K), (K,)):
        raise Hint(
            f"log_prob gives one value per component (shape {list(got.shape)}): "
            f"that is the components alone; mix them with the weights "
            f"(tfd.MixtureSameFamily with a tfd.Categorical)."
        )
    raise Hint(
        f"log_prob of {n} codes, shape [{n}, {D}], gives shape {list(got.shape)}; "
        f"expected one log density per code, [{n}]."
    )


def _build(fn, logits, locs, scales):
    try:
        return fn(logits, locs, scales)
    except (ValueError, tf.errors.InvalidArgumentError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        message = lines[0][:200] if lines else type(err).__name__
        if "batch" in str(err).lower() or "shape" in str(err).lower():
            raise Hint(
                f"building the mixture failed ({type(err).__name__}: {message}). Its "
                f"components must form a batch of K = {K} densities, each over all "
                f"d = {D} dimensions: tfd.Independent(tfd.Normal(locs, scales), 1) "
                f"has batch shape [K] and event shape [d]."
            )
        raise


@check("mog_prior")
def mog_prior(fn) -> None:
    """``fn(logits, locs, scales)``: a mixture of K diagonal Gaussians over R^d."""
    logits, locs, scales = (tf.Variable(a) for a in (LOGITS, LOCS, SCALES))
    with quiet_tensorflow(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _judge(fn, logits, locs, scales)


def _judge(fn, logits, locs, scales) -> None:
    dist = _build(fn, logits, locs, scales)
    if dist is None:
        raise Hint("my_mog_prior returned None: did you forget the `return`?")
    right = _mixture(CODES, _log_softmax(LOGITS))
    got = _log_prob(dist, CODES)
    slips = _slips()
    if not np.all(np.isfinite(got)):
        if np.isfinite(got[:-1]).all():
            raise Hint(
                "log_prob is -inf (or NaN) for a code 40 units from every component: "
                "the mixture's density was formed as the log of a sum of exp(), which "
                "underflows. Use logsumexp over the components (as "
                "tfd.MixtureSameFamily does)."
            )
        if np.isnan(got).any() and np.any(LOGITS < 0):
            raise Hint(
                "log_prob is NaN: the mixing weights were given as probabilities, "
                "but logits may be negative; tfd.Categorical(logits=logits) turns "
                "them into weights softmax(logits)."
            )
        raise Hint("log_prob returned NaN or Inf for some codes.")
    if not np.allclose(got, right, rtol=1e-4, atol=1e-3):
        for values, hint in slips.values():
            if np.allclose(got, values, rtol=1e-4, atol=1e-3):
                raise Hint(hint)
        # Name a code near the components if one is off (easier to read), else the far one.
        near = np.abs(got - right)[:-1]
        i = (
            int(np.argmax(near))
            if not np.allclose(got[:-1], right[:-1], rtol=1e-4, atol=1e-3)
            else len(right) - 1
        )
        mine, theirs = apart(float(got[i]), float(right[i]), "f", 3)
        code = CODES[i].astype(np.float64).round(2).tolist()
        raise Hint(
            f"log_prob of the code {code} should be {theirs}, yours is {mine}: "
            f"log sum_k pi_k N(z; locs_k, diag(scales_k^2)) with pi = softmax(logits)."
        )

    # Codes with two batch axes, [k, batch, d], as the importance-weighted bound has them.
    stacked = CODES.reshape(3, 2, D)
    try:
        got3 = returned_array(dist.log_prob(tf.constant(stacked)), "its log_prob")
    except (ValueError, tf.errors.InvalidArgumentError) as err:
        raise Hint(
            f"log_prob of codes of shape [3, 2, {D}] (k samples for each of a batch "
            f"of images, as L_k uses them) failed: {type(err).__name__}. Any leading "
            f"axes must work, as for a tfp distribution."
        )
    if got3.shape != (3, 2):
        raise Hint(
            f"log_prob of codes of shape [3, 2, {D}] gives shape {list(got3.shape)}, not "
            f"[3, 2]: any leading axes must work, as for a tfp distribution (L_k "
            f"evaluates the prior on [k, batch, d])."
        )
    if not np.allclose(got3.reshape(-1), right, rtol=1e-4, atol=1e-3):
        raise Hint(
            f"log_prob of codes of shape [3, 2, {D}] differs from that of the same codes "
            f"laid out [{len(CODES)}, {D}]: any leading axes must work, as for a tfp "
            f"distribution (L_k evaluates the prior on [k, batch, d])."
        )

    # Gradients reach all three sets of parameters (training moves them all).
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(_build(fn, logits, locs, scales).log_prob(tf.constant(CODES[:-1])))
    grads = tape.gradient(value, [logits, locs, scales])
    cut = "(NumPy, .numpy(), tf.constant, a new tf.Variable or tf.stop_gradient cut the path)"
    for g, name in zip(grads, ("logits", "locs", "scales")):
        if g is None or not np.any(np.asarray(g)):
            raise Hint(f"no gradient reaches `{name}` {cut}: training could not move them.")

    # Inside tf.function, as the notebook's training step builds the prior.
    _judge_in_graph(fn, logits, locs, scales, right)

    # Samples: [n, d], with the mixture's mean.
    if not hasattr(dist, "sample"):
        raise Hint(
            "the distribution has no `sample` method; the notebook draws codes from the prior."
        )
    try:
        draws = dist.sample(N_SAMPLES, seed=(5, 7))
    except TypeError as err:
        raise Hint(
            f"its sample({N_SAMPLES}, seed=(5, 7)) failed (TypeError: {err}): sample "
            f"must take a number of draws and a seed, as a tfp distribution's does "
            f"(the notebook passes seed=)."
        )
    draws = returned_array(draws, "its sample")
    if draws.shape != (N_SAMPLES, D):
        raise Hint(
            f"sample({N_SAMPLES}) gives shape {list(draws.shape)}; expected "
            f"[{N_SAMPLES}, {D}], one code of {D} numbers per draw."
        )
    pi = np.exp(_log_softmax(LOGITS))
    mean = pi @ LOCS.astype(np.float64)
    var = pi @ (SCALES.astype(np.float64) ** 2 + LOCS**2) - mean**2
    error = np.sqrt(var / N_SAMPLES)
    if np.any(np.abs(draws.mean(axis=0) - mean) > 6 * error + 1e-3):
        raise Hint(
            "the samples' mean is not the mixture's mean sum_k pi_k locs_k: sample "
            "must draw a component with probability pi_k, then a code from it."
        )
    # Their spread: the variance's standard error estimated from the draws themselves.
    centred = draws - draws.mean(axis=0)
    spread = (centred**2).mean(axis=0)
    spread_error = np.sqrt(np.maximum((centred**4).mean(axis=0) - spread**2, 0) / N_SAMPLES)
    if np.any(np.abs(spread - var) > 6 * spread_error + 1e-3):
        raise Hint(
            "the samples have the mixture's mean but not its spread: each code must "
            "be drawn from its component N(locs_k, diag(scales_k^2)), whose standard "
            "deviations are `scales`."
        )


def _judge_in_graph(fn, logits, locs, scales, right) -> None:
    """The prior built, evaluated and differentiated inside tf.function."""

    @tf.function
    def in_graph(z):
        with tf.GradientTape() as tape:
            value = fn(logits, locs, scales).log_prob(z)
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, [logits, locs, scales])

    try:
        value, grads = in_graph(tf.constant(CODES[:-1]))
    except Exception as err:  # any error of the student's code, NotImplementedError too
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[-1][:160] if lines else ""
        if not detail.startswith(type(err).__name__):
            detail = f"{type(err).__name__}: {detail}"
        raise Hint(
            f"it works eagerly but not inside tf.function, where the notebook's "
            f"training step builds the prior ({detail}): use TensorFlow operations "
            f"only, with no .numpy(), float(), int() or NumPy on the arguments and no "
            f"Python `if` on their values."
        )
    if not np.allclose(np.asarray(value, np.float64), right[:-1], rtol=1e-4, atol=1e-3):
        raise Hint(
            "inside tf.function its log_prob differs from the one computed eagerly: "
            "a Python value (a float() or .numpy() of a tensor) was frozen when the "
            "function was traced."
        )
    for g, name in zip(grads, ("logits", "locs", "scales")):
        if g is None:
            raise Hint(
                f"inside tf.function, as the notebook trains it, no gradient reaches `{name}`."
            )
