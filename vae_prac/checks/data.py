"""Checks for notebook 01 (setup and data): binarizing MNIST.

    from vae_prac.checks import data as check
    check.binarize_threshold(binarize_threshold)
    check.binarization_quiz(answer_binarization)
"""

from __future__ import annotations

import numpy as np

from vae_prac import data
from vae_prac.checks import Hint, check, choice, returned_array


@check("binarize_threshold")
def binarize_threshold(fn):
    """``fn(images)``: uint8 [N,28,28] -> float32 [N,28,28,1], 1 where level / 255 > 0.5.

    Judged on real digits and on images that hold every grey level 0..255 at places
    that are not symmetric, so a wrong boundary, a swapped axis or a hard-coded N shows.
    NumPy arrays and tf.Tensors are both accepted: the later cell only compares the
    values with ``np.array_equal``.
    """
    batches = (_grey_level_images(), data.load_mnist("test")[0][:1000])
    for k, images in enumerate(batches):
        given = np.array(images)            # a writable copy: an in-place slip must show
        try:
            out = returned_array(fn(given), "your function", "an array of images", dtype=None)
        except Hint:
            raise
        except Exception as err:
            _raise_if_size_dependent(fn, err, images, batches[1 - k])
            raise
        if not np.array_equal(given, images):
            raise Hint("your function changed the images it was given (it wrote into its "
                       "input); compute a new array instead. In the notebook the test digits "
                       "are read-only, and other cells still need them.")
        _judge_binary_images(out, images)


def _grey_level_images():
    """Three images [3, 28, 28] that hold each grey level 0..255 at known, asymmetric places."""
    levels = np.arange(256, dtype=np.uint8)
    flat = np.zeros((3, 28 * 28), dtype=np.uint8)
    flat[0, :256] = levels                          # the top rows, in order
    flat[1, -256:] = levels[::-1]                   # the bottom rows, backwards
    flat[2] = np.random.default_rng(0).permutation(np.resize(levels, 28 * 28))
    return flat.reshape(3, 28, 28)


def _raise_if_size_dependent(fn, err, images, other):
    """A hint when ``fn`` fails on ``images`` but runs on a batch of another size."""
    try:
        fn(np.array(other))
    except Exception:
        return                              # it fails either way: report the error itself
    raise Hint(f"your code runs on {len(other)} images but raises {type(err).__name__} on "
               f"{len(images)} images ({err}): does it assume a fixed number of images? "
               "It should work for any N.")


def _judge_binary_images(out, images):
    n = len(images)
    expected = (images.astype(np.float64) / 255.0 > 0.5)[..., None]     # [N, 28, 28, 1]
    if out.shape != (n, 28, 28, 1):
        if out.shape == (n, 28, 28):
            raise Hint("the result has shape [N, 28, 28]: the channel axis is missing. The "
                       "networks expect [N, 28, 28, 1], with the single channel last.")
        if out.shape == (n, 1, 28, 28):
            raise Hint("the result has shape [N, 1, 28, 28]: the channel axis is first. The "
                       "networks expect it last: [N, 28, 28, 1].")
        if out.shape == (n, 28 * 28) or out.shape == (n, 28 * 28, 1):
            raise Hint(f"the result has shape {out.shape}: the images were flattened. Keep "
                       "each image 28 by 28 and add the channel axis: [N, 28, 28, 1].")
        raise Hint(f"for {n} images of shape [28, 28] the result should have shape "
                   f"({n}, 28, 28, 1), but it has shape {out.shape}. (Does your code work "
                   "for any number N of images?)")
    if out.dtype != np.float32:
        if out.dtype == np.bool_:
            kind = "booleans (True/False)"
        elif np.issubdtype(out.dtype, np.integer):
            kind = f"integers ({out.dtype})"
        elif out.dtype == np.float64:
            kind = "float64 numbers (double precision)"
        else:
            kind = f"values of dtype {out.dtype}"
        raise Hint(f"the result holds {kind}; the task asks for float32 numbers 0.0 and "
                   "1.0, which is what the model computes with.")
    values = np.unique(out)
    if not set(values.tolist()) <= {0.0, 1.0}:
        intensity = images[..., None] / 255.0
        if np.allclose(out, intensity, atol=1e-6):
            raise Hint("the result holds the intensities level / 255 (numbers between 0 and "
                       "1), not bits: every pixel should be 0 or 1.")
        if np.array_equal(out, images[..., None]):
            raise Hint("the result holds the grey levels 0..255 themselves: every pixel "
                       "should be 0 or 1.")
        raise Hint(f"every pixel should be 0 or 1, but the result holds {len(values)} "
                   f"different values between {values.min():g} and {values.max():g}.")
    got = out.astype(bool)
    if np.array_equal(got, expected):
        return
    if np.array_equal(got, np.swapaxes(expected, 1, 2)):
        raise Hint("the bits are right but in the wrong places: rows and columns are "
                   "swapped (each image is transposed).")
    level_hint = _boundary_hint(got, images)
    if level_hint:
        raise Hint(level_hint)
    differ = int(np.sum(got != expected))
    raise Hint(f"{differ} pixels of these {n} images are wrong, and not in a way that "
               "depends only on their grey level: is every image (and every pixel of it) "
               "thresholded on its own?")


def _boundary_hint(got, images):
    """When each grey level always gives the same bit, say which levels give the wrong one."""
    levels = images.reshape(-1).astype(int)
    bits = got.reshape(-1)
    bit_of = {}
    for level in np.unique(levels):
        seen = np.unique(bits[levels == level])
        if seen.size != 1:
            return None            # the same level gives 0 in one place, 1 in another
        bit_of[int(level)] = bool(seen[0])
    wrong = sorted(level for level, bit in bit_of.items() if bit != (level / 255 > 0.5))
    if not wrong:
        return None
    ones = [level for level in wrong if bit_of[level]]
    zeros = [level for level in wrong if not bit_of[level]]
    if len(wrong) == len(bit_of):
        return ("the bits are inverted: dark ink (high grey levels) gives 0 and white paper "
                "gives 1. A pixel should be 1 where its intensity is above 0.5.")
    if ones == [lv for lv in range(1, 128) if lv in bit_of] and not zeros:
        return ("every grey level from 1 to 127 gives 1, so every pixel that is not pure "
                "white is 1: were the grey levels 0..255 compared with 0.5 directly? The "
                "intensity is level / 255.")
    if zeros == [lv for lv in range(128, 255) if lv in bit_of] and not ones:
        return ("only grey level 255 gives 1; levels 128 to 254 give 0. Integer division "
                "(level // 255 is 0 below 255) or rounding down before comparing?")

    def describe(group, bit):
        if len(group) == 1:
            which = f"grey level {group[0]}"
        elif group[-1] - group[0] + 1 == len(group):
            which = f"grey levels {group[0]} to {group[-1]}"
        else:
            which = f"{len(group)} grey levels between {group[0]} and {group[-1]}"
        verb = "gives" if len(group) == 1 else "give"
        return f"{which} {verb} {bit} but should give {1 - bit}"

    parts = [describe(group, bit) for group, bit in ((ones, 1), (zeros, 0)) if group]
    return ("; ".join(parts) + ". A pixel is 1 when its intensity level / 255 is strictly "
            "above 0.5: 127 / 255 = 0.498 is not, 128 / 255 = 0.502 is.")


def binarization_quiz(answer):
    """Which binarization gives the model a different data set every epoch?"""
    return choice("binarization_quiz", answer, "b",
                  "think about what happens to one pixel of grey level 100 the first and "
                  "the second time the model sees its image, under each method.")
