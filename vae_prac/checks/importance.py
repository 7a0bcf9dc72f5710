"""Check for notebook 07's Code Task on the normalized importance weights.

    from vae_prac.checks import importance
    importance.normalized_weights(my_normalized_weights)   # w~_i = w_i / sum_j w_j

What it judges, and why. The gradient of the importance-weighted bound is
sum_i w~_i grad log w_i, so the normalized weights w~ [k, batch] say how much each of an
image's k samples counts. They come from log weights, and real log weights are far
apart: near -90 nats under a trained model and -540 under an untrained one, and hundreds
of nats apart within one digit. So the check's own log weights [k, batch]
(k != batch, so that an axis mistake shows) put one image near -40, one near -120
(exp underflows in float32: a division of the raw weights fails there), one near -800
(a shift by the whole array's maximum fails there too, and exp underflows even in
float64) and one whose six log weights lie hundreds of nats apart (a shift by anything
but that image's own maximum overflows in float32). The answer is compared with a
float64 softmax over the samples of each image. Then it is tried on two images with k = 3,
one of whose log weights lies 2,480 nats below its others (a confident decoder's
log-likelihood of 784 pixels can fall that far for one sample): a shift by each image's
mean or minimum overflows there even in float64 (above about 709), where the first log
weights let it pass. Last with k = 1, where every weight is 1.

A slip is named only after its formula has been computed and found to give the
student's numbers; a NaN or Inf is named by the image it appears for. Whether the
answer carries a gradient is not judged: the notebook uses w~ as constant coefficients
and applies ``tf.stop_gradient`` itself where it differentiates. Which wrong shift left
an image's exponents all below -745 (none, the whole array's maximum, or each sample's
maximum over the images) gives the same NaN, so that hint names all three.
"""

from __future__ import annotations

import warnings

import numpy as np

from vae_prac.checks import Hint, apart, check, returned_array

__all__ = ["normalized_weights", "LOG_W", "FAR_APART"]

#: The check's log weights [k = 6, batch = 4]: columns are images.
LOG_W = np.array(
    [
        # near -40   near -120   near -800   hundreds of nats apart
        [-40.3, -121.7, -798.2, -60.0],
        [-38.9, -118.4, -801.9, -300.0],
        [-41.6, -119.9, -799.5, -61.0],
        [-39.4, -123.2, -797.6, -500.0],
        [-42.8, -120.6, -803.0, -62.5],
        [-40.0, -117.8, -800.4, -59.0],
    ],
    dtype=np.float32,
)
K, BATCH = LOG_W.shape


def _softmax(a, axis=0):
    a = np.asarray(a, np.float64)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _slips():
    """{slip: (values [k, batch], hint)}; each computed the slip's way."""
    a = LOG_W.astype(np.float64)
    right = _softmax(a)
    return {
        "wrong axis": (
            _softmax(a, axis=1),
            "each *sample's* weights sum to 1 across the images: it normalized "
            "over the batch axis (axis 1; the default axis of a softmax is the "
            "last one). Normalize the k weights of each image: over axis 0.",
        ),
        "whole array": (
            _softmax(a.reshape(-1)).reshape(a.shape),
            "the weights of the whole array sum to 1, so each image's only to "
            "a part of it: normalize the k weights of each image separately "
            "(over axis 0).",
        ),
        "not normalized": (
            np.exp(a - a.max(axis=0, keepdims=True)),
            "each image's largest weight is 1 and they do not sum to 1: that "
            "is exp(log w - max), which still needs dividing by its sum "
            "over the k samples.",
        ),
        "mean": (
            right * K,
            f"each image's weights sum to k = {K}, not 1: divide by their sum, not their mean.",
        ),
        "divided by k": (
            right / K,
            f"each image's weights sum to 1/k = 1/{K}: w~ divides by the sum "
            f"of the weights, and then needs no 1/k.",
        ),
        "log": (
            np.log(right),
            "these are the logs of the normalized weights (all negative): return "
            "the weights w~ themselves, which are positive and sum to 1.",
        ),
        "uniform": (
            np.full_like(a, 1.0 / K),
            f"every sample gets 1/k = 1/{K}, whatever its log weight: that is the "
            f"ELBO's weighting. w~_i is proportional to w_i = exp(log w_i).",
        ),
        "log weights normalized": (
            a / a.sum(axis=0, keepdims=True),
            "it normalized the log weights themselves; w~ "
            "normalizes the weights w_i = exp(log w_i).",
        ),
        "unchanged": (
            a,
            "it returned the log weights themselves: w~_i = w_i / sum_j w_j, "
            "with w_i = exp(log w_i), normalized over each image's k samples.",
        ),
        "reversed": (
            _softmax(-a),
            "the smallest log weight gets the most weight: w~_i grows with "
            "log w_i (a sign is flipped).",
        ),
    }


def _not_finite(got) -> str:
    """Name the numerical slip that gives NaN or Inf for these images, and only these."""
    bad = ~np.isfinite(got).all(axis=0)  # per image
    near = [f"{LOG_W[:, j].mean():.0f}" for j in range(BATCH)]
    if bad[3]:
        return (
            "NaN or Inf for the image whose log weights lie hundreds of nats apart: an "
            "exp() overflowed, so the shift was not that image's largest log weight "
            "(its mean, or its smallest?). Subtract each image's maximum, so that every "
            "exponent is at most 0."
        )
    if bad[1]:
        return (
            f"NaN or Inf for the images whose log weights are near {near[1]} and "
            f"{near[2]}: exp(log w) underflows to 0 in float32 there, and 0/0 is NaN. "
            f"Stay in log space: subtract each image's largest log weight (or its "
            f"logsumexp) before exp."
        )
    if bad[2]:
        return (
            f"NaN or Inf for the image whose log weights are near {near[2]}, hundreds "
            f"of nats below the others': all its exp() underflow to 0 (even float64 "
            f"does below about -745), so the shift that served this image was not its "
            f"own maximum: nothing subtracted, one shift (the whole array's maximum) "
            f"for every image, or each sample's maximum over the images (axis 1). "
            f"Shift each image by its own maximum (over axis 0)."
        )
    return "it returned NaN or Inf for some images."


#: Two images, k = 3: the first image's second sample lies 2,480 nats below its others.
FAR_APART = np.array([[-20.0, -5.0], [-2500.0, -7.0], [-22.0, -6.0]], dtype=np.float32)


def _call(fn, log_w) -> np.ndarray:
    k, batch = log_w.shape
    import tensorflow as tf

    # The student's own warnings (a NumPy 0/0, Keras on a softmax over an axis of one)
    # are not the check's line: the hints name the slip instead.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        got = returned_array(fn(tf.constant(log_w)), "my_normalized_weights")
    if got.shape == (k, batch):
        return got
    if got.shape == (batch, k) and k != batch:
        also = (
            ""
            if _close(got.T, _softmax(log_w))
            else " Transposed back, they are not each image's normalized weights either: "
            "normalize over the k samples, axis 0 of log_w."
        )
        raise Hint(
            f"it returned shape [{batch}, {k}], that is [batch, k]; return the "
            f"weights in the layout of log_w, [k, batch] = [{k}, {batch}].{also}"
        )
    if got.shape == ():
        raise Hint(
            f"it returned one number; return one weight per sample and image, "
            f"shape [k, batch] = [{k}, {batch}]."
        )
    if got.shape in ((batch,), (1, batch)) and k > 1:
        raise Hint(
            f"it returned one value per image, shape {list(got.shape)}: that is a "
            f"bound or a sum, not the weights. Return one weight per sample, "
            f"shape [k, batch] = [{k}, {batch}]."
        )
    if got.shape == (k,) and k != batch:
        raise Hint(
            f"it returned one value per sample, shape [{k}]: it combined the images. "
            f"Return one weight per sample and image, [{k}, {batch}]."
        )
    if k == 1:
        raise Hint(
            f"with k = 1 it returned shape {list(got.shape)} instead of [1, {batch}]: "
            f"a k of 1 is still an axis of length 1 (tf.squeeze would drop it)."
        )
    raise Hint(
        f"it returned shape {list(got.shape)}; expected the shape of log_w, "
        f"[k, batch] = [{k}, {batch}]."
    )


def _close(a, b) -> bool:
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-6))


def _judge_first(got) -> None:
    """The answer on LOG_W: finite, then right, else the slip its numbers match."""
    if not np.all(np.isfinite(got)):
        raise Hint(_not_finite(got))
    right = _softmax(LOG_W)
    if _close(got, right):
        return
    for values, hint in _slips().values():
        with np.errstate(all="ignore"):
            if _close(got, values):
                raise Hint(hint)
    # exp(log w) itself: tiny numbers (most 0 in float32), so compared relatively.
    w = np.exp(LOG_W.astype(np.float64))
    shown = w > 1e-30
    if np.allclose(got[shown], w[shown], rtol=1e-4, atol=0) and np.all(np.abs(got[~shown]) < 1e-30):
        raise Hint(
            "these are the weights w_i = exp(log w_i), not normalized (and most "
            "underflow to 0): divide each image's by their sum, staying in log "
            "space until the exp."
        )
    i, j = np.unravel_index(np.argmax(np.abs(got - right)), right.shape)
    mine, theirs = apart(float(got[i, j]), float(right[i, j]), "g", 4)
    if np.allclose(got, right, atol=0.05) and np.allclose(got.sum(axis=0), 1.0, atol=0.01):
        raise Hint(
            f"the weights are near w_i / sum_j w_j but off by up to a few hundredths: "
            f"for image {j}, sample {i} (counting from 0) it is {theirs}, yours is "
            f"{mine}. Computed in low precision (float16)? float32 is enough."
        )
    sums = got.sum(axis=0)
    if np.allclose(got.sum(axis=1), 1.0, atol=1e-4) and not np.allclose(sums, 1.0, atol=1e-4):
        raise Hint(
            "each *sample's* weights sum to 1 across the images: the division is by a "
            "sum over the batch axis (axis 1). Divide by the sum of each image's k "
            "weights: over axis 0."
        )
    if np.isclose(got.sum(), 1.0, atol=1e-4) and not np.allclose(sums, 1.0, atol=1e-4):
        raise Hint(
            "the weights of the whole array sum to 1, so each image's only to a part "
            "of it: divide by the sum of each image's k weights (over axis 0)."
        )
    if not np.allclose(sums, 1.0, atol=1e-4):
        raise Hint(
            f"the weights of each image should sum to 1 over its k samples; "
            f"for the first image yours sum to {sums[0]:.4g}."
        )
    raise Hint(
        f"the weights sum to 1 but are not w_i / sum_j w_j: for image {j}, "
        f"sample {i} (counting from 0) should get {theirs}, yours gets {mine}."
    )


@check("normalized_weights")
def normalized_weights(fn) -> None:
    """``fn(log_w)``: w~ = w / sum_i w_i over the k samples of each image; [k, batch]."""
    _judge_first(_call(fn, LOG_W))
    # One sample 2,480 nats below its image's others: a mean or minimum shift overflows.
    got = _call(fn, FAR_APART)
    right = _softmax(FAR_APART)
    if not np.all(np.isfinite(got[:, 0])):
        raise Hint(
            "NaN or Inf for an image whose log weights are -20, -2500 and -22: an "
            "exp() overflowed (float64 does above about 709), so the shift was not "
            "that image's largest log weight (its mean, or its smallest?). Subtract "
            "each image's maximum, so that every exponent is at most 0."
        )
    if not np.all(np.isfinite(got)):
        raise Hint(
            f"it returned NaN or Inf for an image with log weights {FAR_APART[:, 1].tolist()}."
        )
    if not _close(got, right):
        i, j = np.unravel_index(np.argmax(np.abs(got - right)), right.shape)
        mine, theirs = apart(float(got[i, j]), float(right[i, j]), "g", 4)
        raise Hint(
            f"for an image with log weights {FAR_APART[:, j].tolist()}, sample {i} "
            f"(counting from 0) should get {theirs}, yours gets {mine}."
        )
    # k = 1: the one weight of each image is all of it.
    one = _call(fn, LOG_W[:1])
    if not _close(one, np.ones((1, BATCH))):
        raise Hint("with k = 1 each image's single weight should be 1 (it is all of the sum).")
