"""Checks for notebook 01 (setup and data): binarizing MNIST.

from vae_prac.checks import data as check
check.binarize_threshold(binarize_threshold)
check.binarization_quiz(answer_binarization)
"""

from __future__ import annotations

import contextlib
import inspect
import io
import warnings

import numpy as np

from vae_prac import data
from vae_prac.checks import Hint, check, choice, returned_array
from vae_prac.checks._shared import StudentError, judged


@check("binarize_threshold")
def binarize_threshold(fn):
    """``fn(images)``: uint8 [N,28,28] -> float32 [N,28,28,1], 1 where level / 255 > 0.5.

    Judged on three batches: images that hold every grey level 0..255 at places that
    are not symmetric (a wrong boundary, a swapped axis or a hard-coded N shows);
    faint images whose brightest pixel is well below 255, one of them blank (a
    threshold that depends on the image, such as dividing by each image's or the
    batch's maximum, shows, and so does a division by zero); and 1000 real test
    digits. The same images must give the same bits twice (no random draws), and the
    images given must be left as they are. NumPy arrays, lists and tf.Tensors are all
    accepted: the later cell only compares the values with ``np.array_equal``. What the
    function prints, and NumPy's warnings, are silenced while it is judged, so the cell
    shows the check's one line.

    What it cannot tell apart: a function that calls vae_prac's ``data.binarize`` (or
    any other code that computes the same bits) passes, since only behaviour is judged.
    """
    judged(_judge, fn, what="your result")


def _judge(fn):
    _signature_hint(fn)
    batches = (_grey_level_images(), _faint_images(), data.load_mnist("test")[0][:1000])
    for k, images in enumerate(batches):
        given = np.array(images)  # a writable copy: an in-place slip must show
        try:
            out = _call(fn, given)
        except StudentError as err:
            _raise_if_size_dependent(fn, err.__cause__, images, batches[2 if k < 2 else 0])
            raise
        if not np.array_equal(given, images):
            raise Hint(
                "your function changed the images it was given (it wrote into its "
                "input); compute a new array instead. In the notebook the test digits "
                "are read-only, and other cells still need them."
            )
        if k == 0:
            again = _call(fn, np.array(images))
            if not np.array_equal(out, again, equal_nan=out.dtype.kind in "fc"):
                raise Hint(
                    "two calls on the same images gave different bits: is something "
                    "random in it (stochastic binarization)? Thresholding is "
                    "deterministic: the same image always gives the same bits."
                )
        _judge_binary_images(out, images)


def _signature_hint(fn):
    """A hint when ``fn`` cannot be called as ``fn(images)`` at all."""
    try:
        inspect.signature(fn).bind(np.zeros((1, 28, 28), np.uint8))
    except TypeError:
        raise Hint(
            f"the check calls binarize_threshold(images) with one argument, but "
            f"your function's parameters are {inspect.signature(fn)}."
        ) from None
    except ValueError:
        pass  # no signature to read (a builtin): just call it


@contextlib.contextmanager
def _quiet_numpy():
    """NumPy's warnings (0 / 0 and the like) and the student's own prints would bury the
    check's one line under the output of its several calls: both are silenced."""
    with (
        warnings.catch_warnings(),
        np.errstate(all="ignore"),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


def _call(fn, images):
    """What ``fn(images)`` returned, as an array; its own exceptions wrapped."""
    with _quiet_numpy():
        try:
            value = fn(images)
        except NotImplementedError:
            raise
        except Exception as err:
            raise StudentError(str(err)) from err
        out = returned_array(value, "your function", "an array of images", dtype=None)
    if not (np.issubdtype(out.dtype, np.number) or out.dtype == np.bool_):
        raise Hint(
            f"your function returned a {type(value).__name__}, not an array of "
            "numbers: the task asks for float32 numbers 0.0 and 1.0."
        )
    return out


def _grey_level_images():
    """Three images [3, 28, 28] that hold each grey level 0..255 at known, asymmetric places."""
    levels = np.arange(256, dtype=np.uint8)
    flat = np.zeros((3, 28 * 28), dtype=np.uint8)
    flat[0, :256] = levels  # the top rows, in order
    flat[1, -256:] = levels[::-1]  # the bottom rows, backwards
    flat[2] = np.random.default_rng(0).permutation(np.resize(levels, 28 * 28))
    return flat.reshape(3, 28, 28)


def _faint_images():
    """Four faint images [4, 28, 28]: brightest pixels 150, 100 and 200 (on a background of
    grey level 40), and a blank one. Thresholded, the second and the last are all 0."""
    rng = np.random.default_rng(1)
    flat = np.zeros((4, 28 * 28), dtype=np.uint8)
    flat[0] = rng.permutation(np.resize(np.arange(151), 28 * 28))  # levels 0..150
    flat[1] = rng.permutation(np.resize(np.arange(101), 28 * 28))  # levels 0..100
    flat[2] = rng.permutation(np.resize(np.arange(40, 201), 28 * 28))  # levels 40..200
    return flat.reshape(4, 28, 28)  # flat[3]: blank


def _raise_if_size_dependent(fn, err, images, other):
    """A hint when ``fn`` fails on ``images`` but runs on a batch of another size."""
    if len(other) == len(images):
        return
    try:
        _call(fn, np.array(other))
    except (StudentError, Hint):
        return  # it fails either way: report the error itself
    raise Hint(
        f"your code runs on {len(other)} images but raises {type(err).__name__} on "
        f"{len(images)} images ({err}): does it assume a fixed number of images? "
        "It should work for any N."
    )


#: Thresholds that depend on the images, not only on each pixel's grey level: slips a
#: cohort makes, each with the hint that names it. A slip is named only when the result
#: equals its bits exactly.
_IMAGE_DEPENDENT = [
    (
        lambda x: x / _safe(x.max(axis=(1, 2), keepdims=True)) > 0.5,
        "on faint images (brightest pixel below 255) the bits depend on each image's brightest "
        "pixel: were the grey levels divided by each image's maximum? On MNIST digits (maximum "
        "254 or 255) that looks right, but the intensity is level / 255 for every image.",
    ),
    (
        lambda x: x / _safe(x.max()) > 0.5,
        "on a batch of faint images (none reaching 255) the bits depend on the brightest pixel "
        "of the batch: were the grey levels divided by the batch's maximum? The intensity is "
        "level / 255, whatever the other images hold.",
    ),
    (
        lambda x: (
            (x - x.min(axis=(1, 2), keepdims=True)) / _safe(np.ptp(x, axis=(1, 2), keepdims=True))
            > 0.5
        ),
        "on faint images the bits depend on each image's darkest and brightest pixels: was "
        "each image rescaled to [0, 1] by its own minimum and maximum? The intensity is "
        "level / 255 for every image.",
    ),
    (
        lambda x: (x - x.min()) / _safe(np.ptp(x)) > 0.5,
        "on a batch of faint images the bits depend on the batch's darkest and brightest "
        "pixels: was the batch rescaled to [0, 1] by its minimum and maximum? The intensity "
        "is level / 255.",
    ),
    (
        lambda x: x > x.mean(axis=(1, 2), keepdims=True),
        "the threshold seems to be each image's mean grey level; a pixel is 1 where level / 255 "
        "is above the fixed number 0.5.",
    ),
    (
        lambda x: x > x.mean(),
        "the threshold seems to be the batch's mean grey level; a pixel is 1 where level / 255 "
        "is above the fixed number 0.5.",
    ),
]


def _safe(maximum):
    """A divisor with zeros replaced by ones, so the slips above can be computed for a
    blank image (the student's division by zero gives NaN or 0 there; see below)."""
    return np.where(maximum == 0, 1, maximum).astype(np.float64)


def _judge_binary_images(out, images):
    n = len(images)
    expected = (images.astype(np.float64) / 255.0 > 0.5)[..., None]  # [N, 28, 28, 1]
    if out.shape != (n, 28, 28, 1):
        if out.shape == (n, 28, 28):
            raise Hint(
                "the result has shape [N, 28, 28]: the channel axis is missing. The "
                "networks expect [N, 28, 28, 1], with the single channel last."
            )
        if out.shape == (n, 1, 28, 28):
            raise Hint(
                "the result has shape [N, 1, 28, 28]: the channel axis is first. The "
                "networks expect it last: [N, 28, 28, 1]."
            )
        if out.shape == (n, 28 * 28) or out.shape == (n, 28 * 28, 1):
            raise Hint(
                f"the result has shape {out.shape}: the images were flattened. Keep "
                "each image 28 by 28 and add the channel axis: [N, 28, 28, 1]."
            )
        if out.shape in ((28, 28), (28, 28, 1)):
            raise Hint(
                f"for {n} images the result has shape {out.shape}, the shape of one "
                f"image: is only the first image binarized? The result should have "
                f"shape ({n}, 28, 28, 1)."
            )
        raise Hint(
            f"for {n} images of shape [28, 28] the result should have shape "
            f"({n}, 28, 28, 1), but it has shape {out.shape}. (Does your code work "
            "for any number N of images?)"
        )
    if out.dtype != np.float32:
        if out.dtype == np.bool_:
            kind = "booleans (True/False)"
        elif np.issubdtype(out.dtype, np.integer):
            kind = f"integers ({out.dtype})"
        elif out.dtype == np.float64:
            kind = "float64 numbers (double precision)"
        else:
            kind = f"values of dtype {out.dtype}"
        raise Hint(
            f"the result holds {kind}; the task asks for float32 numbers 0.0 and "
            "1.0, which is what the model computes with."
        )
    nan = np.isnan(out)
    if nan.any():
        blank = [i for i in range(n) if nan[i].any() and images[i].max() == 0]
        why = (
            " Only the blank image (every pixel 0) gives NaN: a division by its "
            "maximum, 0? The intensity is level / 255."
            if blank and len(blank) == int(nan.any(axis=(1, 2, 3)).sum())
            else ""
        )
        raise Hint(f"the result holds NaN (not a number) at {int(nan.sum())} pixels.{why}")
    values = np.unique(out)
    if not set(values.tolist()) <= {0.0, 1.0}:
        intensity = images[..., None] / 255.0
        if np.allclose(out, intensity, atol=1e-6):
            raise Hint(
                "the result holds the intensities level / 255 (numbers between 0 and "
                "1), not bits: every pixel should be 0 or 1."
            )
        if np.array_equal(out, images[..., None]):
            raise Hint(
                "the result holds the grey levels 0..255 themselves: every pixel should be 0 or 1."
            )
        raise Hint(
            f"every pixel should be 0 or 1, but the result holds {len(values)} "
            f"different values between {values.min():g} and {values.max():g}."
        )
    got = out.astype(bool)
    if np.array_equal(got, expected):
        return
    if np.array_equal(got, np.swapaxes(expected, 1, 2)):
        raise Hint(
            "the bits are right but in the wrong places: rows and columns are "
            "swapped (each image is transposed)."
        )
    levels = images.astype(np.float64)
    for slip, hint in _IMAGE_DEPENDENT:  # before the boundary: a batch's maximum
        if np.array_equal(got, slip(levels)[..., None]):  # moves it for every level
            raise Hint(hint)
    level_hint = _boundary_hint(got, images)
    if level_hint:
        raise Hint(level_hint)
    per_image = got.sum(axis=(1, 2, 3))
    if np.array_equal(per_image, expected.sum(axis=(1, 2, 3))):
        raise Hint(
            "each image has the right number of 1s, but some are in the wrong "
            "places: are the pixels moved (flipped, rolled, or reshaped in another "
            "order)? Each pixel's bit belongs where its grey level was."
        )
    differ = int(np.sum(got != expected))
    raise Hint(
        f"{differ} pixels of these {n} images are wrong, and not in a way that "
        "depends only on their grey level: the same grey level gives 1 in one place "
        "and 0 in another. Each pixel's bit should depend on its own grey level "
        "alone (1 where level / 255 is above 0.5)."
    )


def _boundary_hint(got, images):
    """When each grey level always gives the same bit, say which levels give the wrong one."""
    levels = images.reshape(-1).astype(int)
    bits = got.reshape(-1)
    bit_of = {}
    for level in np.unique(levels):
        seen = np.unique(bits[levels == level])
        if seen.size != 1:
            return None  # the same level gives 0 in one place, 1 in another
        bit_of[int(level)] = bool(seen[0])
    wrong = sorted(level for level, bit in bit_of.items() if bit != (level / 255 > 0.5))
    if not wrong:
        return None
    ones = [level for level in wrong if bit_of[level]]
    zeros = [level for level in wrong if not bit_of[level]]
    if len(wrong) == len(bit_of):
        return (
            "the bits are inverted: dark ink (high grey levels) gives 0 and white paper "
            "gives 1. A pixel should be 1 where its intensity is above 0.5."
        )
    if ones == [lv for lv in range(1, 128) if lv in bit_of] and not zeros:
        return (
            "every grey level from 1 to 127 gives 1, so every pixel that is not pure "
            "white is 1: were the grey levels 0..255 compared with 0.5 directly? The "
            "intensity is level / 255."
        )
    if zeros == [lv for lv in range(128, 255) if lv in bit_of] and not ones:
        return (
            "only grey level 255 gives 1; levels 128 to 254 give 0. Integer division "
            "(level // 255 is 0 below 255) or rounding down before comparing?"
        )
    if zeros == [lv for lv in range(128, 256) if lv in bit_of] and not ones:
        return (
            "every pixel is 0, whatever its grey level: the comparison is never true. "
            "Are the grey levels converted to a type that cannot hold them (int8 holds "
            "only -128..127, and uint8 arithmetic wraps around above 255), or compared "
            "with the wrong number?"
        )

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
    return (
        "; ".join(parts) + ". A pixel is 1 when its intensity level / 255 is strictly "
        "above 0.5: 127 / 255 = 0.498 is not, 128 / 255 = 0.502 is."
    )


#: The binarization Math Task: a pixel of grey level 200 (intensity 0.784), seen in two
#: epochs; the probability that it is 1 both times. The right answer is "b": 1 when
#: thresholded, 0.784^2 = 0.615 with vae_prac's (dynamic) stochastic binarization.
_BINARIZATION_HINTS = {
    "a": "under thresholding, is the pixel's bit random at all? Compare 200 / 255 with 0.5.",
    "c": "that would hold if the bits were drawn once and kept (static binarization). "
    "vae_prac's 'stochastic' draws them anew every time the image is used: what is "
    "the chance that two independent draws both give 1?",
    "d": "under thresholding, is the pixel's bit random at all? Compare 200 / 255 with 0.5.",
}


def binarization_quiz(answer):
    """A pixel of grey level 200, seen in two epochs: how likely is it 1 both times?"""
    letter = str(answer).strip().lower() if isinstance(answer, str) else None
    hint = _BINARIZATION_HINTS.get(
        letter,
        "answer with one of the letters a, b, c or d. Think of one pixel under "
        "each method: is its bit random, and is it drawn again in the second epoch?",
    )
    return choice("binarization_quiz", answer, "b", hint)
