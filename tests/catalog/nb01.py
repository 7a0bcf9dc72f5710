"""Notebook 01 (setup and data): answers to the Code Task `binarize_threshold`.

The task: grey levels uint8 [N, 28, 28] -> float32 [N, 28, 28, 1], 1.0 where
level / 255 is above 0.5, else 0.0 (a NumPy array or a tf.Tensor). The solution divides
by 255, compares with 0.5, converts to float32 and adds the channel axis with
``[..., None]``; the correct answers below get there other ways (NumPy, tf, keras.ops,
Python loops, float64, a list, debug prints). The mistakes include thresholds that look
right on MNIST alone (every digit's brightest pixel is 254 or 255) and are wrong on
fainter images.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from catalog import Exercise, Mistake
from vae_prac import data
from vae_prac.checks import data as check

# ---------------------------------------------------------------------------
# Correct answers, in other styles than the solution's.


def np_where(images):
    # Integer levels: level / 255 > 0.5 exactly when level >= 128.
    return np.where(images >= 128, 1.0, 0.0).astype(np.float32)[..., np.newaxis]


def integer_comparison(images):
    return np.expand_dims((images > 127).astype(np.float32), axis=-1)


def np_greater_reshape(images):
    bits = np.greater(np.divide(images, 255.0), 0.5)
    return bits.astype(np.float32).reshape(-1, 28, 28, 1)


def greater_equal_half(images):
    # ">= 0.5" is the same on grey levels: no level / 255 equals 0.5.
    return (images / 255 >= 0.5).astype("float32")[:, :, :, None]


def rounding(images):
    # round(level / 255) is 1 from 128 / 255 = 0.502 on; 127 / 255 = 0.498 rounds to 0.
    return np.round(images / 255.0).astype(np.float32).reshape(len(images), 28, 28, 1)


def tf_ops(images):
    intensity = tf.cast(images, tf.float32) / 255.0
    return tf.cast(intensity > 0.5, tf.float32)[..., tf.newaxis]  # a tf.Tensor


def keras_ops(images):
    ops = keras.ops
    return ops.expand_dims(ops.cast(ops.greater(ops.divide(images, 255.0), 0.5), "float32"), -1)


def tf_where_convert_dtype(images):
    intensity = tf.image.convert_image_dtype(images, tf.float32)  # level / 255
    return tf.where(intensity > 0.5, 1.0, 0.0)[..., None]


def copy_then_assign(images):
    out = images.astype(np.float32)  # a new array: writing into it is fine
    out[out <= 127] = 0.0
    out[out > 127] = 1.0
    return out.reshape(*images.shape, 1)


def pure_python_loops(images):
    out = []
    for image in images:  # any N: one image at a time
        rows = []
        for row in image:
            rows.append([[1.0 if int(level) > 127 else 0.0] for level in row])
        out.append(rows)
    return np.array(out, dtype=np.float32)


def float64_then_cast(images):
    intensity = images.astype(np.float64) / 255.0  # double precision first
    return np.expand_dims(intensity > 0.5, -1).astype(np.float32)


def debug_prints(images):
    print("binarizing", images.shape, images.dtype)  # left in while debugging
    bits = (images / 255.0 > 0.5).astype(np.float32)[..., None]
    print("fraction of 1s:", bits.mean())
    return bits


def keras_ops_where(images):
    ops = keras.ops
    intensity = ops.cast(images, "float32") / 255.0
    return ops.expand_dims(ops.where(intensity > 0.5, 1.0, 0.0), axis=-1)


def heaviside(images):
    # heaviside(t, 0) is 1 for t > 0 and 0 for t <= 0: level / 255 - 0.5 is never 0.
    return np.heaviside(images / 255.0 - 0.5, 0.0).astype(np.float32)[..., None]


def list_of_images(images):
    # A list of arrays: np.asarray and np.array_equal in later cells read it the same.
    return [(image > 127).astype(np.float32)[:, :, None] for image in images]


@tf.function
def compiled_tf_function(images):
    return tf.cast(tf.expand_dims(tf.cast(images, tf.float32) / 255.0 > 0.5, -1), tf.float32)


# ---------------------------------------------------------------------------
# Mistakes a cohort makes.


def per_image_max(images):
    # Right on MNIST, whose digits all reach 254 or 255; wrong on fainter images.
    brightest = images.max(axis=(1, 2), keepdims=True).astype(np.float32)
    return (images / brightest > 0.5).astype(np.float32)[..., None]


def per_batch_max(images):
    return (images / images.max() > 0.5).astype(np.float32)[..., None]


def per_image_min_max(images):
    low = images.min(axis=(1, 2), keepdims=True).astype(np.float32)
    high = images.max(axis=(1, 2), keepdims=True).astype(np.float32)
    return ((images - low) / np.maximum(high - low, 1.0) > 0.5).astype(np.float32)[..., None]


def mean_threshold(images):
    return (images > images.mean(axis=(1, 2), keepdims=True)).astype(np.float32)[..., None]


def stochastic(images):
    rng = np.random.default_rng()
    return (rng.random(images.shape) < images / 255.0).astype(np.float32)[..., None]


def nan_on_blank(images):
    brightest = images.max(axis=(1, 2), keepdims=True)
    return np.round(images / brightest).astype(np.float32)[..., None]  # 0 / 0 on a blank image


def flipped(images):
    return np.flip(images > 127, axis=1).astype(np.float32)[..., None]


def first_image_only(images):
    return (images[0] > 127).astype(np.float32)[..., None]


def zero_or_255(images):
    return np.where(images > 127, 255.0, 0.0).astype(np.float32)[..., None]


def int8_levels(images):
    return (images.astype(np.int8) / 255.0 > 0.5).astype(np.float32)[..., None]


def extra_parameter(images, threshold):
    return (images / 255.0 > threshold).astype(np.float32)[..., None]


def returns_a_dict(images):
    return {"bits": (images > 127).astype(np.float32)[..., None]}


def above_128(images):
    return (images > 128).astype(np.float32)[..., None]


def from_127(images):
    return (images >= 127).astype(np.float32)[..., None]


def raw_levels_at_half(images):
    return (images > 0.5).astype(np.float32)[..., None]


def inverted(images):
    return (images / 255.0 < 0.5).astype(np.float32)[..., None]


def integer_division(images):
    return (images // 255 > 0.5).astype(np.float32)[..., None]


def no_channel_axis(images):
    return (images / 255.0 > 0.5).astype(np.float32)


def channel_first(images):
    return (images / 255.0 > 0.5).astype(np.float32)[:, None]


def flattened(images):
    return (images / 255.0 > 0.5).astype(np.float32).reshape(len(images), -1)


def hard_coded_n(images):
    return (images / 255.0 > 0.5).astype(np.float32).reshape(1000, 28, 28, 1)


def uint8_bits(images):
    return (images > 127).astype(np.uint8)[..., None]


def booleans(images):
    return (images / 255.0 > 0.5)[..., None]


def float64_bits(images):
    return np.where(images / 255.0 > 0.5, 1.0, 0.0)[..., None]


def tf_int_bits(images):
    return tf.cast(tf.convert_to_tensor(images) > 127, tf.int32)[..., None]


def in_place(images):
    images[images <= 127] = 0
    images[images > 127] = 1
    return images.astype(np.float32)[..., None]


def intensities(images):
    return (images.astype(np.float32) / 255.0)[..., None]


def grey_levels(images):
    return images.astype(np.float32)[..., None]


def transposed(images):
    return (np.transpose(images, (0, 2, 1)) > 127).astype(np.float32)[..., None]


def no_return(images):
    (images / 255.0 > 0.5).astype(np.float32)[..., None]


def downstream_binarize(answer):
    """Notebook 01's later cell: the fixed evaluation set equals thresholding it yourself."""
    test_images = data.load_mnist("test")[0]  # read-only, as in the notebook
    x_eval, _ = data.eval_set_with_labels(5000, "threshold")
    if not np.array_equal(x_eval, answer(test_images[:5000])):
        raise AssertionError("binarize(test_images[:5000]) differs from the evaluation set")


EXERCISES = [
    Exercise(
        name="binarize_threshold",
        check=check.binarize_threshold,
        correct={
            "np.where on levels >= 128": np_where,
            "integer comparison > 127, expand_dims": integer_comparison,
            "np.greater, reshape": np_greater_reshape,
            ">= 0.5 on the intensity": greater_equal_half,
            "np.round of the intensity": rounding,
            "tf ops, a tf.Tensor": tf_ops,
            "keras.ops": keras_ops,
            "tf.image.convert_image_dtype and tf.where": tf_where_convert_dtype,
            "writes into its own float copy": copy_then_assign,
            "pure-Python loops over images, rows and pixels": pure_python_loops,
            "float64, cast to float32 at the end": float64_then_cast,
            "debug prints left in": debug_prints,
            "keras.ops.where": keras_ops_where,
            "np.heaviside": heaviside,
            "a list of per-image arrays": list_of_images,
            "compiled with tf.function": compiled_tf_function,
        },
        mistakes={
            "> 128": Mistake(above_128, r"grey level 128 gives 0 but should give 1"),
            ">= 127": Mistake(from_127, r"grey level 127 gives 1 but should give 0"),
            "levels compared with 0.5": Mistake(
                raw_levels_at_half, r"grey levels 0\.\.255 compared with 0\.5 directly"
            ),
            "inverted": Mistake(inverted, r"inverted"),
            "integer division": Mistake(integer_division, r"integer division"),
            "no channel axis": Mistake(no_channel_axis, r"channel axis is missing"),
            "channel axis first": Mistake(channel_first, r"channel axis is first"),
            "flattened": Mistake(flattened, r"flattened"),
            "hard-coded N": Mistake(hard_coded_n, r"fixed number of images"),
            "uint8": Mistake(uint8_bits, r"integers \(uint8\).*float32"),
            "booleans": Mistake(booleans, r"booleans.*float32"),
            "float64": Mistake(float64_bits, r"float64.*float32"),
            "tf int32": Mistake(tf_int_bits, r"integers \(int32\)"),
            "in place": Mistake(in_place, r"changed the images it was given"),
            "intensities": Mistake(intensities, r"intensities"),
            "grey levels unchanged": Mistake(grey_levels, r"grey levels 0\.\.255 themselves"),
            "transposed": Mistake(transposed, r"rows and columns are swapped"),
            "no return": Mistake(no_return, r"returned None.*return"),
            "divided by each image's maximum": Mistake(per_image_max, r"each image's maximum"),
            "divided by the batch's maximum": Mistake(per_batch_max, r"batch's maximum"),
            "rescaled by each image's min and max": Mistake(
                per_image_min_max, r"its own minimum and maximum"
            ),
            "each image's mean as threshold": Mistake(mean_threshold, r"each image's mean"),
            "random bits (stochastic)": Mistake(stochastic, r"different bits.*random"),
            "NaN on a blank image": Mistake(nan_on_blank, r"NaN.*blank image"),
            "flipped upside down": Mistake(flipped, r"right number of 1s.*wrong places"),
            "first image only": Mistake(first_image_only, r"only the first image"),
            "0 and 255": Mistake(zero_or_255, r"should be 0 or 1"),
            "int8 overflow": Mistake(int8_levels, r"every pixel is 0.*int8"),
            "an extra parameter": Mistake(extra_parameter, r"one argument.*\(images, threshold\)"),
            "returns a dict": Mistake(returns_a_dict, r"returned a dict, not an array"),
        },
        give_away=(
            "> 0.5)",
            "> 127",
            ">= 128",
            ".astype(np.float32)",
            "[..., None]",
            "np.newaxis",
            "expand_dims",
        ),
        downstream=downstream_binarize,
    ),
]
