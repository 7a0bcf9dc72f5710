"""Checks for notebook 06, measuring and improving a VAE.

    from vae_prac.checks import evaluation as check
    check.iw_bound(my_iw_bound)    # Code Task: the importance-weighted bound L_k
    check.iw_order(answer_iw)      # Math Task: how L_k, the ELBO and log p(x) are ordered

``iw_bound`` judges the values: one per image, finite, the same for the same seed and
different for another, with k samples for k = 1 and k = 20. An answer that draws its
samples as the library does (``q.sample(k, seed=seed)`` or ``vae_prac.reparameterize``
with ``n_samples=k``) must give the library's values on the same seed; one that draws
them another way must agree with the library on average over 40 seeds, paired seed by
seed. A slip is named only after its formula has been verified to give the student's
values: exactly on the same samples, or on average over the seeds.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import tensorflow as tf

from vae_prac.checks import Hint, check, choice, quiet_tensorflow, returned_array
from vae_prac.checks.training import _images, _small_vae

__all__ = ["iw_bound", "iw_order"]

IW_BATCH, IW_K = 16, 20          # unequal, so a logsumexp over the wrong axis shows
IW_SEED, IW_OTHER_SEED = (3, 5), (8, 1)
IW_N_SEEDS = 40                  # the average over seeds, for samples drawn another way
SIGMAS = 6.0                     # how far an average may stray, in standard errors


def _iw_inputs():
    # Small weights keep the log weights within a few nats of each other (so a sum, a
    # mean, a max and a logsumexp of them all differ), and near -575 (so the weights
    # themselves underflow to 0 in float32, as they do for real digits).
    return _small_vae(seed=2, scale=0.5), _images(IW_BATCH, seed=2)


def _log_terms(model, x, k, seed):
    """log p(x|z_i), log p(z_i), log q(z_i|x) for z_i ~ q(z|x) from ``seed``: [3, k, batch]."""
    q = model.posterior(x)
    z = q.sample(k, seed=seed)
    return np.stack([model.likelihood(z).log_prob(x).numpy(),
                     model.prior().log_prob(z).numpy(),
                     q.log_prob(z).numpy()]).astype(np.float64)


def _lse(a, axis=0):
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def _iw_slips(terms, k):
    """(the right L_k, {slip: (values [batch], hint)}) from ``_log_terms``."""
    ll, lp, lq = terms[..., 0, :, :], terms[..., 1, :, :], terms[..., 2, :, :]
    log_w = ll + lp - lq
    log_k = math.log(k)
    right = _lse(log_w, -2) - log_k
    prior_hint = ("the log prior term log p(z) is missing from the log weights: "
                  "log w = log p(x|z) + log p(z) - log q(z|x).")
    return right, {
        "no log k": (right + log_k, "it is log(k) too high: L_k is the log of the average "
                                    "of the weights, so the logsumexp needs log k taken "
                                    "off."),
        "log k added": (right + 2 * log_k, "log k was added; the average of the weights "
                                           "divides their sum by k, which in log space "
                                           "subtracts log k."),
        "divided by k": (_lse(log_w, -2) / k, "the logsumexp was divided by k; in log "
                                              "space, dividing the sum of the weights by k "
                                              "subtracts log k."),
        "elbo": (log_w.mean(axis=-2), "that is the average of the log weights, an ELBO "
                                      "estimate. L_k is the log of the average of the "
                                      "weights, not the average of their logs."),
        "max": (log_w.max(axis=-2), "that is the largest log weight; L_k averages all k "
                                    "weights (in log space)."),
        "no log q": (_lse(ll + lp, -2) - log_k,
                     "the log q(z|x) term is missing from the log weights: each weight "
                     "divides by the proposal's density, log w = log p(x|z) + log p(z) "
                     "- log q(z|x)."),
        "no prior": (_lse(ll - lq, -2) - log_k, prior_hint),
        "likelihood only": (_lse(ll, -2) - log_k,
                            "the log weights are the log-likelihoods alone: "
                            "log w = log p(x|z) + log p(z) - log q(z|x)."),
        "swapped": (_lse(ll - lp + lq, -2) - log_k,
                    "log p(z) and log q(z|x) have each other's signs: log w = "
                    "log p(x|z) + log p(z) - log q(z|x)."),
    }


def _per_image(value, batch: int, k: int) -> np.ndarray:
    got = returned_array(value, "my_iw_bound")
    if got.shape == (batch,):
        return got
    if got.shape == (k,):
        raise Hint(f"with k = {k} it returned shape [{k}], one value per sample: it combined "
                   f"the images instead of the samples. Combine the k samples of each image "
                   f"(the log weights have shape [k, batch]): one value per image, shape "
                   f"[{batch}].")
    if got.shape == (k, batch):
        raise Hint(f"it returned the log weights themselves, shape [{k}, {batch}]; combine "
                   f"them over the k samples into one value per image.")
    if got.shape == ():
        raise Hint(f"with k = {k} it returned a single number; return one value per "
                   f"image, shape [{batch}] (don't reduce over the batch).")
    raise Hint(f"with k = {k} it returned shape {list(got.shape)}; expected one value per "
               f"image, [{batch}].")


def _call(fn, model, x, k, seed) -> np.ndarray:
    got = _per_image(fn(model, x, k, tf.constant(seed, tf.int32)), IW_BATCH, k)
    if not np.all(np.isfinite(got)):
        raise Hint(_not_finite(got, model, x, k, seed))
    return got


def _not_finite(got, model, x, k, seed) -> str:
    """Name the underflow only where it happens: exp of these log weights is 0."""
    terms = _log_terms(model, x, k, tf.constant(seed, tf.int32))
    log_w = (terms[0] + terms[1] - terms[2]).astype(np.float32)
    with np.errstate(divide="ignore"):
        naive = np.log(np.exp(log_w).mean(axis=0))
    if np.any(np.isinf(got)) and np.all(np.isinf(naive)):
        return (f"it returned -inf: the weights w_i = exp(log w_i) underflow to 0 (here the "
                f"log weights are near {log_w.mean():.0f}), so their average is 0 and its "
                f"log -inf. Stay in log space: a logsumexp never forms the weights.")
    return "it returned NaN or Inf for some images."


@functools.lru_cache(maxsize=1)
def _iw_reference():
    """The library's log terms on every seed the check uses; the same on every run."""
    model, x = _iw_inputs()
    seeds = [IW_SEED, IW_OTHER_SEED] + [(s, 77) for s in range(IW_N_SEEDS)]
    terms = {(seed, k): _log_terms(model, x, k, tf.constant(seed, tf.int32))
             for seed in seeds[:2] for k in (1, IW_K)}
    many = np.stack([_log_terms(model, x, IW_K, tf.constant(s, tf.int32))
                     for s in seeds[2:]])                           # [seeds, 3, k, batch]
    mu, _ = model.encoder(x)
    at_mu = model.likelihood(mu).log_prob(x) + model.prior().log_prob(mu) \
        - model.posterior(x).log_prob(mu)
    return dict(terms=terms, seeds=seeds[2:], many=many, at_mu=at_mu.numpy())


def _close(a, b) -> bool:
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-3))


@check("iw_bound")
def iw_bound(fn) -> None:
    """``fn(model, x, k, seed)``: L_k = log (1/k) sum_i w_i per image, shape [batch]."""
    ref = _iw_reference()
    model, x = _iw_inputs()
    got = _call(fn, model, x, IW_K, IW_SEED)
    right, slips = _iw_slips(ref["terms"][IW_SEED, IW_K], IW_K)
    if _close(got, right):
        exact = True
    else:
        exact = False
        for values, hint in slips.values():
            if _close(got, values):
                raise Hint(hint)
        if _close(got, ref["at_mu"]):
            raise Hint("every sample is the mean of q(z|x): L_k needs k random samples "
                       "z_i drawn from q(z|x), with their noise taken from seed.")

    again = _call(fn, model, x, IW_K, IW_SEED)
    if not _close(got, again):
        raise Hint("two calls with the same seed gave different values: draw the samples "
                   "from seed (stateless), so that the same seed gives the same L_k.")
    other = _call(fn, model, x, IW_K, IW_OTHER_SEED)
    if np.array_equal(got, other):
        raise Hint("two different seeds gave exactly the same values: the k samples must "
                   "be random draws from q(z|x), with their noise taken from seed.")

    # k = 1 works (notebook 06 uses it), and k sets the number of samples.
    one = _call(fn, model, x, 1, IW_SEED)
    if _close(one, got):
        raise Hint("k = 1 and k = 20 gave the same values: k is ignored. Draw k samples "
                   "per image and average their weights.")
    if _close(one - got, math.log(IW_K)):
        raise Hint("k = 1 and k = 20 differ only by log 20: the same samples were used for "
                   "both, so the number of samples does not follow k.")
    if exact:
        one_right, _ = _iw_slips(ref["terms"][IW_SEED, 1], 1)
        if not _close(one, one_right):
            raise Hint("it is right for k = 20 but not for k = 1, where L_1 is the single "
                       "log weight of each image.")
        return
    _judge_on_average(fn, model, x, ref)


def _on_seeds(fn, model, x, seeds) -> list[np.ndarray]:
    """``fn``'s L_k on each seed: compiled if it can be (fast), else eagerly."""
    try:
        with quiet_tensorflow():
            traced = tf.function(lambda seed: fn(model, x, IW_K, seed))
            first = traced(tf.constant(seeds[0], tf.int32))
        if _close(_per_image(first, IW_BATCH, IW_K),
                  _call(fn, model, x, IW_K, seeds[0])):
            return [_per_image(traced(tf.constant(s, tf.int32)), IW_BATCH, IW_K)
                    for s in seeds]
    except Hint:
        raise
    except Exception:   # e.g. NumPy inside: fine eagerly, which is all the notebook needs
        pass
    return [_call(fn, model, x, IW_K, seed) for seed in seeds]



def _judge_on_average(fn, model, x, ref) -> None:
    """Samples drawn another way: compare with the library seed by seed, on average."""
    many = ref["many"]
    mine = np.stack(_on_seeds(fn, model, x, ref["seeds"]))
    right, slips = _iw_slips(many, IW_K)                              # [seeds, batch]

    def agrees(values):
        diff = (mine - values).mean(axis=1)                           # over the images
        error = diff.std() / math.sqrt(len(diff))
        return abs(diff.mean()) <= SIGMAS * error + 0.01, SIGMAS * error + 0.01

    ok, tolerance = agrees(right)
    if ok:
        return
    for values, hint in slips.values():
        # Only a slip clearly apart from the right answer is named.
        if agrees(values)[0] and abs((values - right).mean()) > 4 * tolerance:
            raise Hint(hint)
    average, library = mine.mean(), right.mean()
    a, b = (f"{v:.{d}f}" for v, d in zip((average, library), (2, 2)))
    if a == b:
        a, b = f"{average:.4f}", f"{library:.4f}"
    raise Hint(f"averaged over {len(mine)} seeds and {IW_BATCH} images, yours is {a}, "
               f"while the library's L_{IW_K} on the same seeds averages {b}. Check the log "
               f"weights (log p(x|z) + log p(z) - log q(z|x), with z drawn from q(z|x)) and "
               f"how they are combined over the k samples.")


def iw_order(answer) -> bool:
    """Math Task: which ordering of ELBO, E[L_k] and log p(x) holds? (The answer is d.)"""
    return choice(
        "iw_order", answer, "d",
        "L_1 uses one sample, so its expectation is the ELBO. Jensen's inequality (log is "
        "concave) says E[log of an average] <= log of E[average]; and an average of more "
        "weights is closer to its expectation.")
