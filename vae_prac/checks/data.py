"""Checks for notebook 01 (setup and data): binarizing MNIST.

    from vae_prac.checks import data as check
    check.binarize_threshold(binarize_threshold)
    check.binarization_quiz(answer_binarization)
"""

from __future__ import annotations

import numpy as np

from vae_prac import data
from vae_prac.checks import Hint, check, choice


def _all_grey_levels():
    """One image [1, 28, 28] whose first 256 pixels are the grey levels 0..255 (the rest 0)."""
    levels = np.zeros(28 * 28, dtype=np.uint8)
    levels[:256] = np.arange(256, dtype=np.uint8)
    return levels.reshape(1, 28, 28)


@check("binarize_threshold")
def binarize_threshold(fn):
    """``fn(images)``: uint8 [N,28,28] -> float32 [N,28,28,1], 1 where intensity > 0.5."""
    images = data.load_mnist("test")[0][:1000]
    original = images.copy()
    out = fn(images)
    if not np.array_equal(images, original):
        raise Hint("your function changed its input; compute a new array instead of "
                   "writing into `images`.")
    out = np.asarray(out)
    if out.shape == (1000, 28, 28):
        raise Hint("the shape is [N, 28, 28]; the model wants a channel axis too: "
                   "[N, 28, 28, 1] (try `[..., None]`).")
    if out.shape != (1000, 28, 28, 1):
        raise Hint(f"for 1000 images of shape [28, 28] the result should have shape "
                   f"(1000, 28, 28, 1), got {out.shape}.")
    if out.dtype != np.float32:
        raise Hint(f"the result has dtype {out.dtype}; the model computes in float32 "
                   "(use `.astype(np.float32)`).")
    values = np.unique(out)
    if not set(values.tolist()) <= {0.0, 1.0}:
        raise Hint(f"every pixel should be 0 or 1, but the result holds {len(values)} "
                   f"different values between {values.min():g} and {values.max():g}.")

    levels = _all_grey_levels()
    binary = np.asarray(fn(levels)).reshape(-1)[:256]
    expected = data.binarize(levels).reshape(-1)[:256]
    for got, should in ((1, 0), (0, 1)):
        wrong = np.flatnonzero((binary == got) & (expected == should))
        if wrong.size:
            which = (f"grey level {wrong[0]}" if wrong.size == 1
                     else f"{wrong.size} grey levels between {wrong.min()} and {wrong.max()}")
            raise Hint(f"{which} should give {should} but give{'s' if wrong.size == 1 else ''} "
                       f"{got}. The intensity is level / 255, and a pixel is 1 when its "
                       "intensity is above 0.5: level 127 gives 0, level 128 gives 1.")
    differ = int(np.sum(out != data.binarize(images)))
    if differ:
        raise Hint(f"{differ} pixels of the first 1000 test digits differ from "
                   "vae_prac.data.binarize(images, 'threshold').")


def binarization_quiz(answer):
    """Which binarization gives the model a different data set every epoch?"""
    return choice("binarization_quiz", answer, "b",
                  "think about what happens to one pixel of grey level 100 the first and "
                  "the second time the model sees its image, under each method.")
