"""Checks for notebook 06, measuring and improving a VAE.

    from vae_prac.checks import evaluation as check
    check.iw_bound(my_iw_bound)    # Code Task: the importance-weighted bound L_k
    check.iw_order(answer_iw)      # Math Task: how L_k, the ELBO and log p(x) are ordered

``iw_bound`` compares the student's L_k with one computed from
``vae_prac.evaluate.log_importance_weights`` on the same seed. A version that draws its
samples differently is still accepted when it agrees on average over many seeds.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from vae_prac.checks import Hint, check, choice
from vae_prac.checks.training import _images, _small_vae
from vae_prac.evaluate import log_importance_weights

__all__ = ["iw_bound", "iw_order"]


def _reference(model, x, k, seed):
    log_w = log_importance_weights(model, x, k, seed=seed)          # [k, batch]
    return (tf.reduce_logsumexp(log_w, axis=0) - math.log(k)).numpy(), log_w.numpy()


def _per_image(value, batch: int, k: int) -> np.ndarray:
    if value is None:
        raise Hint("my_iw_bound returned None: did you forget the `return`?")
    got = np.asarray(value, dtype=np.float64)
    if got.shape == (batch,):
        return got
    if got.shape == (k,):
        raise Hint(f"it returned shape [{k}], one value per sample. Combine the k samples "
                   f"of each image (axis 0 of the log weights [k, batch]): one value per "
                   f"image, shape [{batch}].")
    if got.shape == (k, batch):
        raise Hint(f"it returned the log weights themselves, shape [{k}, {batch}]; combine "
                   f"them over the k samples into one value per image.")
    if got.shape == ():
        raise Hint(f"it returned a single number; return one value per image, shape "
                   f"[{batch}] (don't reduce over the batch).")
    raise Hint(f"it returned shape {got.shape}; expected one value per image, [{batch}].")


@check("iw_bound")
def iw_bound(fn) -> None:
    """``fn(model, x, k, seed)``: L_k = log (1/k) sum_i w_i per image, shape [batch]."""
    # Small weights keep the log weights within a few nats of each other, so that a sum,
    # a mean, a max and a logsumexp of them all come out different.
    model = _small_vae(seed=2, scale=0.5)
    batch, k = 16, 20
    x = _images(batch, seed=2)
    seed = tf.constant([3, 5], tf.int32)
    expected, log_w = _reference(model, x, k, seed)
    got = _per_image(fn(model, x, k, seed), batch, k)
    if not np.all(np.isfinite(got)):
        raise Hint("it returned -inf or NaN. The weights w_i = exp(log w_i) underflow to 0 "
                   "for log weights near -500: stay in log space with tf.reduce_logsumexp.")
    close = lambda a, b: np.allclose(a, b, rtol=1e-5, atol=1e-3)  # noqa: E731
    if close(got, expected):
        return
    if close(got, expected + math.log(k)):
        raise Hint("it is log(k) too high: L_k averages the weights, so subtract log k "
                   "after the logsumexp.")
    if close(got, log_w.mean(axis=0)):
        raise Hint("that is the average of the log weights, an ELBO estimate. L_k is the "
                   "log of the average of the weights, not the average of their logs.")
    if close(got, log_w.max(axis=0)):
        raise Hint("that is the largest log weight; L_k averages all k weights.")

    # Different samples (e.g. drawn another way) are fine if it agrees on average.
    seeds = [tf.constant([s, 1], tf.int32) for s in range(10)]
    mine = np.array([_per_image(fn(model, x, k, s), batch, k).mean() for s in seeds])
    ref = np.array([_reference(model, x, k, s)[0].mean() for s in seeds])
    spread = np.std(ref - ref.mean()) + np.std(mine - mine.mean())
    if abs(mine.mean() - ref.mean()) > 4 * spread / math.sqrt(len(seeds)) + 0.05:
        raise Hint(f"averaged over 10 seeds and {batch} images, L_{k} is "
                   f"{ref.mean():.2f}, yours is {mine.mean():.2f}. Use log w = "
                   f"log p(x|z) + log p(z) - log q(z|x) with z ~ q(z|x) drawn by "
                   f"q.sample(k, seed=seed).")
    low = np.mean([_per_image(fn(model, x, 1, s), batch, 1).mean() for s in seeds])
    high = np.mean([_per_image(fn(model, x, 100, s), batch, 100).mean() for s in seeds])
    if not high > low:
        raise Hint(f"on average L_100 ({high:.2f}) should exceed L_1 ({low:.2f}).")


def iw_order(answer) -> bool:
    """Math Task: which ordering of ELBO, E[L_k] and log p(x) holds? (The answer is d.)"""
    return choice(
        "iw_order", answer, "d",
        "L_1 uses one sample, so its expectation is the ELBO. Jensen's inequality (log is "
        "concave) says E[log of an average] <= log of E[average]; and an average of more "
        "weights is closer to its expectation.")
