"""Checks for notebook 04, the reparameterization trick.

    from vae_prac.checks import reparameterization as check
    check.kl_formula(answer_kl)               # Math Task: the KL of two Gaussians in 1-D
    check.kl_closed_form(kl_closed_form)      # Code Task: KL(q || p) in closed form
    check.reparameterize(my_reparameterize)   # Code Task: z = mu + sigma * eps, from a seed

Both checks judge what the student's function computes, never its source text.

* ``kl_closed_form`` is compared with the closed form on inputs where a slip cannot hide
  (6 examples, 5 latent dimensions, unequal values, one row where q = p). When the values
  are wrong, the slip is named only after its formula has been verified to give exactly
  the student's values on those same inputs.
* ``reparameterize`` is judged as a seeded sampler, ``fn(mu, sigma, seed=seed)`` with a
  stateless seed (a pair of integers, or an int tensor of shape [2]), as the later
  cells call it: the same seed gives the same z (as a pair or as a tensor), different
  seeds give different, uncorrelated noise, and nothing else (NumPy, TensorFlow's global
  random state) feeds the noise; the shape and dtype of z; independent noise for every
  entry (between examples, latent dimensions and a leading samples axis); the noise
  ``(z - mu) / sigma`` standard normal; the pathwise gradients dz/dmu = 1 and
  dz/dsigma = eps; and the same behaviour inside ``tf.function`` with the seed a
  symbolic tensor, as in training. Any code that behaves like this passes: TFP's
  ``tfd.Normal(mu, sigma).sample(seed=seed)``, Box-Muller noise from stateless uniforms,
  ``tf.random.stateless_normal`` with ``mean=mu, stddev=sigma``.

What the checks cannot tell apart, and so accept: a function that calls vae_prac's own
``reparameterize(mu, sigma, seed=seed)`` or TFP's sampler inside instead of building z
from eps (it behaves exactly like a correct answer, and no check reads sources), and a
KL computed with ``tfd.kl_divergence`` (the same closed form).
"""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac.checks import Hint, apart, check, choice, quiet_tensorflow, returned_array
from vae_prac.checks._shared import error_line, judged

__all__ = ["kl_formula", "kl_closed_form", "reparameterize"]

tfd = tfp.distributions


def kl_formula(answer) -> bool:
    """Math Task: which expression is KL(N(mu, s^2) || N(0, 1))? (The answer is c.)"""
    return choice(
        "kl_formula",
        answer,
        "c",
        "write log N(z; mu, s^2) - log N(z; 0, 1) out in full, then take its expectation "
        "under q using E_q[z] = mu and E_q[z^2] = mu^2 + s^2. A correct formula is 0 when "
        "q = p and never negative.",
    )


def _student(call, what: str):
    """``call()``, the student's code: an error it raises becomes a hint naming it (a
    ``NotImplementedError`` still means the task is not done yet)."""
    try:
        return call()
    except (Hint, NotImplementedError):
        raise
    except Exception as err:
        raise Hint(f"{what} raised {error_line(err)}.") from None


def _python_number(value) -> str | None:
    """ "a Python float" (or int, bool) when ``value`` is a plain Python number, else None."""
    if isinstance(value, (bool, int, float)):
        return f"a Python {type(value).__name__}"
    return None


# ---------------------------------------------------------------------------------------
# The KL in closed form.

KL_BATCH, KL_LATENT = 6, 5
KL_SAME_ROW = 2  # the row where mu = 0 and sigma = 1, i.e. q = p: its KL is 0


def _kl_inputs():
    """[6, 5] float32 mu and sigma, unequal everywhere except row 2, where q = p."""
    rng = np.random.default_rng(4)
    mu = rng.normal(0.0, 1.5, (KL_BATCH, KL_LATENT)).astype(np.float32)
    sigma = rng.uniform(0.15, 2.8, (KL_BATCH, KL_LATENT)).astype(np.float32)
    mu[KL_SAME_ROW], sigma[KL_SAME_ROW] = 0.0, 1.0
    return mu, sigma


def _kl_slips(mu: np.ndarray, sigma: np.ndarray):
    """(what the slip is, the per-example values it gives), for the usual slips."""
    m2, s2, log_s2 = mu**2, sigma**2, np.log(sigma**2)
    right = 0.5 * (m2 + s2 - 1 - log_s2)
    per_example = lambda per_dim: per_dim.sum(-1)  # noqa: E731
    return [
        (
            "it averages the per-dimension KLs over the latent dimensions. The KL of q(z|x) "
            "is their sum over the latent dimensions, not their mean",
            right.mean(-1),
        ),
        ("your KL is exactly twice the right value: check the factor 1/2", per_example(2 * right)),
        (
            "your KL is exactly half the right value: is the factor 1/2 applied twice?",
            per_example(right / 2),
        ),
        (
            "the factor 1/2 multiplies only part of the expression: check the brackets",
            per_example(0.5 * m2 + s2 - 1 - log_s2),
        ),
        (
            "the factor 1/2 multiplies only part of the expression: check the brackets",
            per_example(0.5 * (m2 + s2 - 1) - log_s2),
        ),
        (
            "it looks like you used log sigma in place of log sigma^2 (log sigma^2 = 2 log sigma)",
            per_example(0.5 * (m2 + s2 - 1 - np.log(sigma))),
        ),
        (
            "it looks like you used sigma in place of the variance sigma^2 (the function "
            "gets standard deviations)",
            per_example(0.5 * (m2 + sigma - 1 - log_s2)),
        ),
        (
            "it looks like you used sigma in place of the variance sigma^2 (the function "
            "gets standard deviations)",
            per_example(0.5 * (m2 + sigma - 1 - np.log(sigma))),
        ),
        ("it looks like you used mu in place of mu^2", per_example(0.5 * (mu + s2 - 1 - log_s2))),
        (
            "the mu^2 term is missing: the KL grows as the mean moves away from the prior's 0",
            per_example(0.5 * (s2 - 1 - log_s2)),
        ),
        (
            "it looks like you treated sigma as a log-variance; it is the standard deviation "
            "itself",
            per_example(0.5 * (m2 + np.exp(sigma) - 1 - sigma)),
        ),
        (
            "the constant -1 inside the bracket is missing: in the row where mu = 0 and "
            "sigma = 1 (q = p) the KL must be 0",
            per_example(0.5 * (m2 + s2 - log_s2)),
        ),
        (
            "the log term has the wrong sign: in the row where mu = 0 and sigma = 1 it is 0, "
            "but elsewhere a KL is never negative and grows as sigma shrinks",
            per_example(0.5 * (m2 + s2 - 1 + log_s2)),
        ),
        (
            "every sign is flipped: your values are the negative of the KL, and a KL is "
            "never negative",
            -per_example(right),
        ),
        (
            "that is KL(p || q), the other direction. The task asks for KL(q || p), with "
            "q = N(mu, sigma^2) the encoder's posterior and p = N(0, I) the prior",
            per_example(0.5 * (1 / s2 + m2 / s2 - 1 + log_s2)),
        ),
    ]


@check("kl_closed_form")
def kl_closed_form(fn) -> None:
    """``fn(mu, sigma)`` must equal KL(N(mu, diag(sigma^2)) || N(0, I)) in closed form.

    mu and sigma are float32 tensors [batch, latent_dim]; the result has one KL per
    example, [batch], summed over the latent dimensions. Any code computing the exact
    value passes (tf, keras.ops, NumPy, a Python loop returning a list, or
    tfd.kl_divergence, which is the same closed form); nothing later compiles this
    function, so NumPy is fine. A Monte Carlo estimate with a fixed seed (so repeatable)
    is told apart only by its error: with thousands of samples it misses by hundredths
    and the hint says it is close but not exact; with hundreds of millions of samples it
    would come within the tolerance (1e-4) and pass.
    """
    judged(_kl_closed_form, fn)


def _kl_closed_form(fn) -> None:
    mu_np, sigma_np = _kl_inputs()
    mu, sigma = tf.constant(mu_np), tf.constant(sigma_np)
    mu64, sigma64 = mu_np.astype(np.float64), sigma_np.astype(np.float64)
    expected = (0.5 * (mu64**2 + sigma64**2 - 1 - np.log(sigma64**2))).sum(-1)
    batch, latent = KL_BATCH, KL_LATENT
    value = _student(lambda: fn(mu, sigma), "kl_closed_form(mu, sigma)")
    number = _python_number(value)
    if number:
        raise Hint(
            f"it returned {number}, one number for the whole batch: return one KL "
            f"per example, a tensor (or array) of shape [{batch}]."
        )
    got = returned_array(value, "kl_closed_form")

    if got.shape == (batch, latent):
        raise Hint(
            f"it returned one value per latent dimension, shape {got.shape}. The KL "
            f"of q(z|x) adds up the KLs of its latent dimensions: one number per "
            f"example, shape [{batch}]."
        )
    if got.shape == (latent,):
        raise Hint(
            f"for mu and sigma of shape [{batch}, {latent}] it returned shape "
            f"{got.shape}: it summed over the batch axis (axis 0). Sum over the "
            f"latent dimensions instead, to get one KL per example, shape [{batch}]."
        )
    if got.size == 1:
        raise Hint(
            f"for mu and sigma of shape [{batch}, {latent}] it returned a single "
            f"number (shape {got.shape}): it summed or averaged over the batch too. "
            f"Return one KL per example, shape [{batch}]."
        )
    if got.shape == (batch, 1):
        raise Hint(
            f"it returned shape {got.shape}, with an extra axis of length 1; the "
            f"result should have shape [{batch}] (drop keepdims)."
        )
    if got.shape != (batch,):
        raise Hint(
            f"for mu and sigma of shape [{batch}, {latent}] it returned shape "
            f"{got.shape}; expected one KL per example, shape [{batch}] (sum over "
            f"the latent axis only, not over the batch)."
        )
    again = returned_array(
        _student(lambda: fn(mu, sigma), "kl_closed_form(mu, sigma)"), "kl_closed_form"
    )
    if not np.array_equal(np.nan_to_num(got), np.nan_to_num(again)):
        raise Hint(
            "two calls with the same mu and sigma gave different values: that is a "
            "random (Monte Carlo) estimate. The task asks for the closed form, which "
            "is exact and uses no sampling."
        )
    if not np.all(np.isfinite(got)):
        raise Hint(
            f"it returned NaN or Inf for ordinary inputs (sigma between 0.15 and "
            f"2.8): {np.round(got, 4).tolist()}."
        )
    if np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        return

    # Name a slip only if its formula gives exactly these values on these inputs.
    for slip, value in _kl_slips(mu64, sigma64):
        if np.allclose(got, value, rtol=1e-4, atol=1e-4):
            raise Hint(slip + ".")
    same = float(got[KL_SAME_ROW])
    if not np.isclose(same, 0.0, atol=1e-4):
        raise Hint(
            f"in the row where mu = 0 and sigma = 1 (q = p, so the KL must be 0) "
            f"yours gives {apart(0.0, same)[1]}. Check the constant term."
        )
    if np.any(got < -1e-4):
        raise Hint(
            "it returned a negative KL for some examples; a KL divergence is never "
            "negative. Check the signs."
        )
    row = int(np.argmax(np.abs(got - expected)))
    want, have = apart(float(expected[row]), float(got[row]))
    close = abs(got[row] - expected[row]) < 0.1 * abs(expected[row])
    shown = lambda values: np.round(values.astype(np.float64), 3).tolist()  # noqa: E731
    raise Hint(
        f"for mu = {shown(mu_np[row])} and sigma = {shown(sigma_np[row])} the KL "
        f"is {want}, yours gives "
        f"{have}"
        + ("; close, but the closed form is exact: no sampling or approximation." if close else ".")
    )


# ---------------------------------------------------------------------------------------
# The reparameterized sampler, drawn from a stateless seed.

# A small input: unequal values in every row and latent dimension.
SMALL_MU = np.array([[0.0, 1.0, -2.0], [3.0, 0.5, -0.7]], np.float32)
SMALL_SIGMA = np.array([[1.5, 0.5, 2.0], [0.1, 0.8, 3.0]], np.float32)
SEEDS = [(1, 2), (1, 3), (2, 2), (2, 1)]  # pairwise different, also in sum and product
N_ROWS, N_DIMS = 4000, 5  # the statistical test: 20,000 draws
STAT_SEED, OTHER_SEEDS = (2017, 4), [(2017, 5), (2018, 4)]
SAMPLES_SHAPE = (8, 500, 5)  # [samples, batch, latent_dim], as section 8 uses
SAMPLES_SEED = (36715, 1)
CALL = "my_reparameterize(mu, sigma, seed=seed)"

IGNORES_SEED = (
    "two calls with the same seed {seed} gave different z: the noise must come from the "
    "seed alone, so that the same seed always gives the same z (training relies on it). A "
    "global tf.random.normal, NumPy's random numbers, or a stateful random op given the "
    "seed as its op seed all carry state from call to call. Draw eps with a stateless "
    "random op from seed (notebook 02 explains stateless seeds)."
)


def _show(seed) -> str:
    if tf.is_tensor(seed):
        return f"tf.constant({seed.numpy().tolist()}, {seed.dtype.name})"
    return str(tuple(seed))


def _check_signature(fn) -> None:
    """Later cells call ``reparameterize(mu, sigma, seed=seed)``, by name (vae_prac's own
    version, their fallback, takes ``n_samples`` third)."""
    try:
        signature = inspect.signature(getattr(fn, "python_function", fn))
    except (TypeError, ValueError):  # a builtin or a callable object with no signature
        return
    try:
        signature.bind(0, 0, seed=0)
        return
    except TypeError:
        pass
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) >= 3 and positional[2].name != "seed":
        raise Hint(
            f"your function's third argument is called {positional[2].name!r}: name "
            f"it seed, since the later cells pass it by name, as {CALL}."
        )
    raise Hint(
        f"your function takes no argument seed: the task's function is "
        f"my_reparameterize(mu, sigma, seed), and the later cells call it as {CALL}."
    )


def _call(fn, mu, sigma, seed, where: str = ""):
    return _student(
        lambda: fn(mu, sigma, seed=seed),
        f"calling {CALL} with mu of shape {list(mu.shape)} and seed {_show(seed)}{where}",
    )


def _z(value, mu, where: str = "") -> np.ndarray:
    """The student's z as float64 numpy, after checking its type, shape, dtype and values."""
    if value is None:
        raise Hint("my_reparameterize returned None: did you forget the `return`?")
    number = _python_number(value)
    if number:
        raise Hint(
            f"it returned {number}, not a tensor: z must be a TensorFlow tensor of "
            f"the shape of mu, computed from mu and sigma with TensorFlow operations "
            f"so that gradients reach them."
        )
    if isinstance(value, (np.ndarray, np.generic)):
        raise Hint(
            "it returned a NumPy array, not a TensorFlow tensor: z must stay a "
            "TensorFlow computation of mu and sigma, or no gradient can reach them "
            "(NumPy and .numpy() cut the path)."
        )
    if isinstance(value, tfd.Distribution):
        raise Hint(
            "it returned a distribution (a TFP object), not a sample: return z "
            "itself, a tensor of the shape of mu drawn from the seed."
        )
    if isinstance(value, (tuple, list, dict)):
        raise Hint(
            f"it returned a {type(value).__name__} of {len(value)}; return z alone, "
            f"one tensor of the shape of mu."
        )
    if not tf.is_tensor(value):
        raise Hint(
            f"it returned a {type(value).__name__}; return z alone, a TensorFlow "
            f"tensor of the shape of mu."
        )
    shape, got = tuple(mu.shape), tuple(value.shape)
    if got != shape:
        if got == shape[::-1]:
            raise Hint(
                f"for mu and sigma of shape {list(shape)}{where} it returned shape "
                f"{list(got)}: z is transposed. z must have the shape of mu."
            )
        if got == shape[:-1]:
            raise Hint(
                f"for mu and sigma of shape {list(shape)}{where} it returned shape "
                f"{list(got)}: one number per example. z must have the shape of "
                f"mu, one draw for every latent dimension (no sum or mean)."
            )
        raise Hint(
            f"for mu and sigma of shape {list(shape)}{where} it returned shape "
            f"{list(got)}; z must have the shape of mu, with its own noise value "
            f"for every entry."
        )
    if value.dtype != mu.dtype:
        raise Hint(
            f"z has dtype {value.dtype.name}, but mu and sigma are {mu.dtype.name}: "
            f"draw the noise in the dtype of mu, so z keeps it."
        )
    values = np.asarray(value, np.float64)
    if not np.all(np.isfinite(values)):
        raise Hint(f"it returned NaN or Inf for finite mu and sigma > 0{where}.")
    return values


def _sample(fn, mu, sigma, seed, where: str = "") -> np.ndarray:
    return _z(_call(fn, mu, sigma, seed, where), mu, where)


def _check_independent(eps: np.ndarray, axis: int, what: str, where: str) -> None:
    """Noise must differ, and be uncorrelated, between neighbours along ``axis``."""
    eps = np.moveaxis(eps, axis, 0)
    if np.all(np.std(eps, axis=0) < 1e-6):
        raise Hint(
            f"every {what} got the same noise{where}. Each entry of z needs its own "
            f"noise value: draw eps with the full shape of mu."
        )
    a, b = eps[:-1].ravel(), eps[1:].ravel()
    corr = np.corrcoef(a, b)[0, 1]
    if abs(corr) > 6 / np.sqrt(a.size) + 0.02:
        raise Hint(
            f"the noise of neighbouring {what}s is correlated (correlation "
            f"{corr:.2f}){where}; each entry of z needs its own independent noise."
        )


# Scales a student might multiply eps by instead of sigma: (what it is, the scale).
_SCALE_SLIPS = [
    (
        "you scaled eps by the variance sigma^2. sigma is already the standard deviation",
        lambda s: s**2,
    ),
    ("you scaled eps by sqrt(sigma). sigma is already the standard deviation", np.sqrt),
    (
        "you scaled eps by exp(sigma), as if sigma were a log standard deviation. sigma is "
        "already the standard deviation",
        np.exp,
    ),
    (
        "you scaled eps by exp(sigma / 2), as if sigma were a log-variance. sigma is already "
        "the standard deviation",
        lambda s: np.exp(s / 2),
    ),
    ("the noise is not multiplied by sigma: z spreads the same whatever sigma is", np.ones_like),
    (
        "you scaled eps by log(sigma). sigma is already the standard deviation",
        lambda s: np.abs(np.log(s)),
    ),
]


def _spread_matches(dev: np.ndarray, sigma: np.ndarray, scale=None) -> bool:
    """Whether dev / scale (default: sigma) has standard deviation 1, for the small and
    the large half of sigma alike (a wrong scale cannot fit both halves)."""
    scale = sigma if scale is None else scale
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = dev / np.maximum(scale, 1e-12)
    ok = True
    for part in (sigma <= np.median(sigma), sigma > np.median(sigma)):
        sd = np.sqrt(np.mean(ratio[part] ** 2))
        ok &= abs(sd - 1) < 6 / np.sqrt(2 * part.sum()) + 0.01
    return bool(ok)


@check("reparameterize")
def reparameterize(fn) -> None:
    """``fn(mu, sigma, seed)`` must return z ~ N(mu, diag(sigma^2)) as a differentiable
    function of mu and sigma, with standard normal noise drawn from the stateless ``seed``.

    It is called as the later cells call it, ``fn(mu, sigma, seed=seed)``, with mu and
    sigma float32 and unequal in every row and dimension. What is tested: the shape and
    dtype of z (also with a leading samples axis); that the same seed gives the same z,
    given as a pair of integers or as an int32 tensor; that different seeds
    give different, uncorrelated noise, changing with both integers of the seed; that
    the function leaves TensorFlow's global random state alone (no tf.random.set_seed);
    independent noise between examples, latent dimensions and samples; that
    eps = (z - mu) / sigma has mean 0, standard deviation 1 for small and large sigma, and
    68.3% of its draws within one standard deviation (normal noise); the pathwise
    gradients, dz/dmu = 1 and dz/dsigma = eps, for every entry; and all of it inside
    ``tf.function`` with the seed a symbolic int32 tensor, as the training step passes it
    (NumPy cannot read such a seed, and Python numbers made from it do not exist there).

    It cannot tell apart, and accepts, a function that calls vae_prac's own
    ``reparameterize`` inside: its behaviour is a correct answer's.
    """
    with quiet_tensorflow():
        judged(_reparameterize, fn)


def _reparameterize(fn) -> None:
    _check_signature(fn)
    mu_small, sigma_small = tf.constant(SMALL_MU), tf.constant(SMALL_SIGMA)
    first = SEEDS[0]
    z = _sample(fn, mu_small, sigma_small, first)
    if np.array_equal(z, SMALL_MU):
        raise Hint(
            "it returned mu itself: z has no noise. z = mu + sigma * eps needs "
            "standard normal noise eps."
        )

    # The seed alone decides the noise: the same seed, as a pair or a tensor, the same z.
    if not np.array_equal(z, _sample(fn, mu_small, sigma_small, first)):
        raise Hint(IGNORES_SEED.format(seed=first))
    # A function that resets the global seed leaves the next unseeded draw the same.
    after = []
    for _ in range(2):
        _call(fn, mu_small, sigma_small, first)
        after.append(tf.random.normal([8]).numpy())
    if np.array_equal(*after):
        raise Hint(
            "your function resets TensorFlow's global random state (it calls "
            "tf.random.set_seed?), which changes every other random draw of the "
            "notebook too: draw eps with a stateless random op from seed, which "
            "needs no global state."
        )
    # int32, as the training step passes it (TFP's samplers take no int64 seed).
    as_tensor = _sample(
        fn, mu_small, sigma_small, tf.constant(first, tf.int32), " (the seed as an int32 tensor)"
    )
    if not np.allclose(as_tensor, z, rtol=1e-6, atol=1e-6):
        raise Hint(
            f"the seed {first} given as an int32 tensor gave another z than the "
            f"pair of integers {first}: both are the same stateless seed (the "
            f"training step passes a tensor). Use seed as it is."
        )

    # Different seeds, different z: each of the seed's two integers matters.
    draws = {seed: _sample(fn, mu_small, sigma_small, seed) for seed in SEEDS[1:]}
    draws[first] = z
    same = [
        (a, b)
        for a, b in itertools.combinations(SEEDS, 2)
        if np.allclose(draws[a], draws[b], rtol=1e-6, atol=1e-6)
    ]
    if len(same) == len(list(itertools.combinations(SEEDS, 2))):
        raise Hint(
            f"the seeds {', '.join(map(str, SEEDS))} all gave the same z: the "
            "noise does not come from seed (a fixed seed inside the function?). "
            "Each seed must give its own noise."
        )
    if same:
        a, b = same[0]
        raise Hint(
            f"the seeds {a} and {b} gave the same z: the noise must depend on the "
            f"whole seed, both of its integers, as a stateless random op uses it."
        )

    # The statistical test, with a gradient tape: [4000, 5] entries, all different.
    rng = np.random.default_rng(2017)
    mu_np = rng.normal(0.0, 2.0, (N_ROWS, N_DIMS)).astype(np.float32)
    sigma_np = rng.uniform(0.3, 3.0, (N_ROWS, N_DIMS)).astype(np.float32)
    mu_v, sigma_v = tf.Variable(mu_np), tf.Variable(sigma_np)
    with tf.GradientTape() as tape:
        z_t = _call(fn, tf.identity(mu_v), tf.identity(sigma_v), STAT_SEED)
        total = tf.reduce_sum(z_t) if tf.is_tensor(z_t) and z_t.dtype.is_floating else None
    z = _z(z_t, mu_v)
    mu64, sigma64 = mu_np.astype(np.float64), sigma_np.astype(np.float64)
    dev = z - mu64
    if abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05:
        raise Hint(
            "z has mean 0 and standard deviation 1 whatever mu and sigma are: it "
            "looks like the noise eps itself. z must be built from mu, sigma and "
            "eps."
        )
    eps = dev / sigma64
    _check_independent(eps, 0, "example", "")
    _check_independent(eps, 1, "latent dimension", "")
    corr = np.corrcoef(eps.T)
    off = np.abs(corr - np.eye(N_DIMS)).max()
    if off > 6 / np.sqrt(N_ROWS) + 0.02:
        raise Hint(
            f"the noise of different latent dimensions is correlated (up to "
            f"{off:.2f}); each dimension needs its own independent noise."
        )

    n = eps.size
    if abs(eps.mean()) > 6 / np.sqrt(n) + 1e-3:
        if abs(eps.mean() - 0.5) < 0.05 and eps.min() >= -1e-6:
            raise Hint(
                "the noise eps = (z - mu) / sigma lies in [0, 1) with mean 0.5: that "
                "is uniform noise. eps must be standard normal, N(0, 1)."
            )
        raise Hint(
            f"the noise eps = (z - mu) / sigma has mean {eps.mean():.2f}; standard "
            f"normal noise has mean 0, so that z has mean mu."
        )
    if not _spread_matches(dev, sigma64):
        for slip, scale in _SCALE_SLIPS:
            if _spread_matches(dev, sigma64, scale(sigma64)):
                raise Hint(f"the spread of z does not follow sigma: {slip}.")
        raise Hint(
            f"the noise eps = (z - mu) / sigma has standard deviation "
            f"{eps.std():.2f}, where standard normal noise has 1. Is eps drawn from "
            f"N(0, 1), and multiplied by sigma?"
        )
    within = np.mean(np.abs(eps) < 1.0)
    if abs(within - 0.6827) > 0.02:  # 6 standard errors for 20,000 draws
        raise Hint(
            f"z has the right mean and spread, but {within:.1%} of the draws lie "
            f"within one sigma of mu, where a normal distribution has 68.3%: the "
            f"noise is not normal. eps must be standard normal, N(0, 1)."
        )

    # Other seeds: fresh noise, unrelated to this seed's (training takes one seed a step).
    for other in OTHER_SEEDS:
        eps_other = (_sample(fn, tf.constant(mu_np), tf.constant(sigma_np), other) - mu64) / sigma64
        shared = np.mean(np.isclose(eps_other, eps, rtol=1e-6, atol=1e-7))
        r = np.corrcoef(eps.ravel(), eps_other.ravel())[0, 1]
        if shared > 0.01 or abs(r) > 6 / np.sqrt(n) + 0.02:
            how = (
                f"{shared:.0%} of it is the same"
                if shared > 0.01
                else f"their correlation is {r:.2f}"
            )
            raise Hint(
                f"the noise for the seeds {STAT_SEED} and {other} is related "
                f"({how}): each seed must give its own independent noise, as a "
                f"stateless random op does."
            )

    grad_mu, grad_sigma = _student(
        lambda: tape.gradient(total, [mu_v, sigma_v]),
        "the gradient of your z with respect to mu and sigma",
    )
    blocked = [name for name, g in (("mu", grad_mu), ("sigma", grad_sigma)) if g is None]
    if blocked:
        raise Hint(
            f"no gradient reaches {' or '.join(blocked)}. z must be computed from mu "
            f"and sigma with TensorFlow operations all the way: NumPy, .numpy() or "
            f"tf.stop_gradient cut the path the gradient needs."
        )
    grad_mu = np.asarray(tf.convert_to_tensor(grad_mu))
    grad_sigma = np.asarray(tf.convert_to_tensor(grad_sigma))
    if not np.allclose(grad_mu, 1.0, atol=1e-4):
        raise Hint(
            "the gradient of z with respect to mu is not 1 for every entry: moving mu "
            "should shift z by the same amount. Is z exactly mu plus the scaled noise?"
        )
    if not np.allclose(grad_sigma, eps, rtol=1e-3, atol=1e-3):
        raise Hint(
            "the gradient of z with respect to sigma is not the noise eps that z was "
            "built with. Is z exactly mu plus sigma times the noise, with the noise "
            "drawn independently of mu and sigma?"
        )

    # A leading samples axis, as section 8 uses: [samples, batch, latent_dim].
    rng = np.random.default_rng(36715)
    mu3 = rng.normal(0.0, 2.0, SAMPLES_SHAPE).astype(np.float32)
    sigma3 = rng.uniform(0.3, 3.0, SAMPLES_SHAPE).astype(np.float32)
    where = " (with a leading samples axis, as section 8 uses)"
    try:
        z3_t = fn(tf.constant(mu3), tf.constant(sigma3), seed=SAMPLES_SEED)
    except Exception as err:  # e.g. noise of shape [batch, latent_dim] that cannot broadcast
        raise Hint(
            f"later cells pass mu and sigma of shape [samples, batch, latent_dim]; "
            f"for shape {list(SAMPLES_SHAPE)} your function raised "
            f"{error_line(err)}. z must have the shape of mu, whatever its "
            f"rank."
        ) from None
    z3 = _z(z3_t, tf.constant(mu3), where)
    eps3 = (z3 - mu3) / sigma3
    for axis, what in enumerate(("sample", "example", "latent dimension")):
        _check_independent(eps3, axis, what, where)
    if not _spread_matches(z3 - mu3, sigma3.astype(np.float64)):
        raise Hint(f"the spread of z does not follow sigma{where}.")

    _check_compiled(fn, mu_small, sigma_small, draws)


def _check_compiled(fn, mu, sigma, draws) -> None:
    """Inside tf.function, with the seed a symbolic int32 tensor as the training step
    passes it: the same z as eagerly, a gradient for mu and sigma."""
    spec = tf.TensorSpec(mu.shape, mu.dtype)

    @tf.function(input_signature=[spec, spec, tf.TensorSpec([2], tf.int32)])
    def run(mu, sigma, seed):
        with tf.GradientTape() as tape:
            tape.watch([mu, sigma])
            z = fn(mu, sigma, seed=seed)
            total = tf.reduce_sum(z)
        return z, tape.gradient(total, [mu, sigma])

    where = " inside tf.function"
    results = {}
    for seed in (SEEDS[0], SEEDS[2], SEEDS[0]):
        try:
            z, grads = run(mu, sigma, tf.constant(seed, tf.int32))
        except Exception as err:  # NotImplementedError too: NumPy on a symbolic tensor
            numpy = "numpy" in str(err).lower()
            raise Hint(
                f"inside tf.function, where seed is a symbolic tensor as in the training "
                f"step, your function raised {error_line(err)}. "
                + (
                    "NumPy cannot draw noise from a seed tensor there. "
                    if numpy
                    else "There the seed has no Python value (no int(seed), no .numpy(), no "
                    "NumPy). "
                )
                + "Draw the noise with a TensorFlow stateless random op that takes seed as "
                "it is."
            ) from None
        if any(g is None for g in grads):
            raise Hint(
                "inside tf.function no gradient reaches mu or sigma: z must be "
                "computed from them with TensorFlow operations all the way."
            )
        got = _z(z, mu, where)
        if seed in results and not np.array_equal(got, results[seed]):
            raise Hint(IGNORES_SEED.format(seed=seed) + " (This happened inside tf.function.)")
        results.setdefault(seed, got)
        if not np.allclose(got, draws[seed], rtol=1e-5, atol=1e-5):
            raise Hint(
                f"inside tf.function, with the seed {seed} as a tensor, your "
                f"function gives another z than when called directly: something is "
                f"fixed when tf.function traces it (a Python number or NumPy value "
                f"made from the seed, or a counter). Use seed as it is, with "
                f"TensorFlow operations."
            )
