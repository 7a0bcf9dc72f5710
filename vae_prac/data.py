"""MNIST as the model reads it: load it, binarize it, batch it.

The model in this library is a Bernoulli VAE: every pixel of an image is a coin
flip, so the data it sees must be binary. This module turns MNIST's grey levels
(0..255) into binary images, for training (`train_dataset`, an endless stream of
shuffled batches) and for evaluation (`eval_set`, a fixed set), and checks what a
user hands the model (`validate_batch`). Finding, downloading and verifying the
files is `vae_prac.mnist_files`'s business; `load_mnist` asks it for a split.

Two binarizations, and why their numbers must not be compared
-------------------------------------------------------------
* ``"threshold"``: a pixel is 1 when its intensity is above 0.5. This is what
  the original practical did. It is deterministic, so the model always sees
  the same fixed bits: the data set is easier and less noisy, log-likelihoods
  come out several nats higher, and a model can overfit those fixed bits.
* ``"stochastic"`` (dynamic binarization): each pixel is drawn as
  Bernoulli(intensity), and the training pipeline redraws it every time a
  batch is drawn. This is the standard benchmark protocol (e.g. Burda et al.
  2015, "Importance Weighted Autoencoders", Table 1: about 86.76 nats test NLL
  for a one-layer VAE). Only numbers measured this way compare with the
  literature.

A number measured on thresholded data and one measured on dynamically
binarized data are measurements on two different data sets: never put them in
the same table without saying so.

The rule is written once for each kind of array: `binarize` for NumPy arrays (a fixed
evaluation set, drawn with NumPy's generator), `binarize_batch` for tensors inside
TensorFlow (the training batches, redrawn from a stateless seed per batch), which both
training pipelines call.
"""

from __future__ import annotations

import sys

import numpy as np

from vae_prac import mnist_files
from vae_prac.config import check_positive_int, check_seed

# Raised by load_mnist (and so by eval_set and train()); defined with the files. The
# splits and their sizes, too, are the files' own.
from vae_prac.mnist_files import (  # noqa: F401 (re-exported)
    MNIST_FILES,
    SPLIT_SIZES,
    ChecksumError,
    DataError,
    DataNotFoundError,
)

BINARIZATIONS = ("threshold", "stochastic")
#: "threshold" turns a pixel on where its intensity (grey level / 255) is above this.
THRESHOLD = 0.5


def _tensorflow():
    """TensorFlow, imported on first need: finding, verifying and loading the files
    does not need it, so `vae-prac data` answers without its seconds of start-up."""
    if "tensorflow" not in sys.modules:
        import vae_prac

        vae_prac._import_tensorflow_quietly()  # its C++ start-up lines kept off stderr
    import tensorflow as tf

    return tf


# --------------------------------------------------------------------------
# Loading.


def load_mnist(split="train", data_dir=None, download=True):
    """Load one split of MNIST as ``(images uint8 [N,28,28], labels uint8 [N])``.

    N is 60000 for "train" and 10000 for "test". The files are found (or downloaded,
    with ``download=True``) by `vae_prac.mnist_files.find_data_dir`, and every file read
    is verified against its SHA-256. Results are cached in-process (verifying 47 MB costs
    a fraction of a second); the arrays are read-only, copy them to modify.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be one of {sorted(MNIST_FILES)}, got {split!r}.")
    directory = mnist_files.find_data_dir(data_dir, download=download)
    return mnist_files.read_split(directory, split)


# --------------------------------------------------------------------------
# Binarization.


def _check_method(method):
    if method not in BINARIZATIONS:
        raise ValueError(
            f"Unknown binarization {method!r}; valid ones are {', '.join(BINARIZATIONS)}."
        )


def _image_array(images):
    """Images as an array of shape [N,28,28,1]: uint8 0..255, or float32 in [0,1]."""
    x = np.asarray(images)
    if x.shape == (28, 28):
        x = x[None]
    if x.ndim == 3 and x.shape[1:] == (28, 28):
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != (28, 28, 1):
        raise ValueError(
            f"images have shape {x.shape}; expected [N,28,28], [N,28,28,1] or a single "
            f"[28,28] image."
        )
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ValueError("integer images must hold grey levels 0..255.")
        return x.astype(np.uint8)
    if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
        if x.size and not (np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0):
            raise ValueError(
                "float images must be intensities in [0, 1] (no NaN); "
                "pass uint8 grey levels 0..255, or divide by 255 first."
            )
        return x
    raise TypeError(f"images have dtype {x.dtype}; expected uint8 grey levels or floats in [0, 1].")


def _intensity(x):
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x


def binarize(images, method="threshold", seed=None):
    """Binary float32 images [N,28,28,1] from grey levels.

    `images`: uint8 0..255 or float in [0,1], of shape [N,28,28], [N,28,28,1]
    or [28,28]. method="threshold": 1 where intensity > 0.5 (deterministic).
    method="stochastic": each pixel ~ Bernoulli(intensity), drawn with
    ``np.random.default_rng(seed)``. See the module docstring for why the two
    must not be compared. (`binarize_batch` is the same rule inside TensorFlow.)
    """
    _check_method(method)
    if seed is not None:
        seed = check_seed(seed)
    p = _intensity(_image_array(images))
    if method == "threshold":
        return (p > THRESHOLD).astype(np.float32)
    # u < p with u ~ Uniform[0, 1) is 1 with probability p.
    u = np.random.default_rng(seed).random(p.shape, dtype=np.float32)
    return (u < p).astype(np.float32)


def binarize_batch(batch, method="threshold", seed=0, index=0):
    """`binarize`'s rule in TensorFlow, for a batch inside tf.data or a tf.function.

    ``batch`` is a tensor of grey levels (uint8 0..255) or intensities (float in [0,1])
    with a static shape, as `_image_array` makes them. "threshold" gives the bits of
    `binarize`. "stochastic" draws each pixel ~ Bernoulli(intensity) with
    ``stateless_uniform(seed=[seed, index])``: batch ``index`` of a run seeded ``seed``
    gets a draw of its own, the same on every machine and after a resumption. Both
    training pipelines (`train_dataset` and the one of ``vae_prac.training``) binarize
    their batches with it.
    """
    tf = _tensorflow()
    _check_method(method)
    p = tf.cast(batch, tf.float32)
    if batch.dtype == tf.uint8:
        p = p / 255.0
    if method == "threshold":
        return tf.cast(p > THRESHOLD, tf.float32)
    u = tf.random.stateless_uniform(
        batch.shape, seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
    )
    return tf.cast(u < p, tf.float32)


# --------------------------------------------------------------------------
# Pipelines and evaluation data.

#: train_dataset's default shuffle buffer: all of MNIST's training images. train()
#: shuffles its batches' indices with the same one.
SHUFFLE_BUFFER = 60000


def train_dataset(
    images, batch_size=64, binarization="threshold", seed=0, shuffle_buffer=SHUFFLE_BUFFER
):
    """An infinite, shuffled tf.data pipeline of binary batches [B,28,28,1] float32.

    Shuffling is seeded and reshuffles each epoch; batches are full
    (drop_remainder). For "stochastic", each batch's pixels are drawn inside
    the pipeline by `binarize_batch`, with ``stateless_uniform(seed=[seed,
    batch_index])``: a fresh draw every time an image is seen, yet the whole
    sequence of batches is the same for the same seed.
    """
    tf = _tensorflow()
    _check_method(binarization)
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    x = _image_array(images)  # uint8 stays uint8 here: 4x less memory than float32
    n = len(x)
    if not 1 <= batch_size <= n:
        # Otherwise drop_remainder leaves no batch and repeat() would spin forever.
        raise ValueError(
            f"batch_size must be between 1 and the number of images ({n}), got {batch_size}."
        )

    def to_binary(index, batch):
        return binarize_batch(batch, binarization, seed, index)

    return (
        tf.data.Dataset.from_tensor_slices(x)
        .shuffle(min(shuffle_buffer, n), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .enumerate()
        .map(to_binary, num_parallel_calls=tf.data.AUTOTUNE)  # deterministic order by default
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_set_with_labels(n=5000, binarization="threshold", seed=0, data_dir=None, split="test"):
    """The fixed evaluation set: the first `n` digits of `split`, binarized once.

    Returns ``(x float32 [n,28,28,1], labels uint8 [n])``. "stochastic" uses the
    fixed `seed`, so the set is the same on every call and every machine.
    """
    n = check_positive_int(n, "n")
    seed = check_seed(seed)
    images, labels = load_mnist(split, data_dir=data_dir)
    if not 1 <= n <= len(images):
        raise ValueError(f"n must be between 1 and {len(images)} for split {split!r}, got {n}.")
    return binarize(images[:n], binarization, seed=seed), labels[:n].copy()


def eval_set(n=5000, binarization="threshold", seed=0, data_dir=None, split="test"):
    """The fixed evaluation images (see `eval_set_with_labels`), float32 [n,28,28,1]."""
    return eval_set_with_labels(n, binarization, seed, data_dir, split)[0]


def validate_batch(x, name="x"):
    """Check user input for the model; return it as float32 [B,28,28,1].

    Accepts numpy arrays or eager tensors of shape [B,28,28,1], [B,28,28] or
    [B,784] holding binary pixels (0 or 1). The value checks use numpy, so call
    this eagerly, before any tf.function, not inside one.
    """
    tf = sys.modules.get("tensorflow")  # x is a tf.Tensor only if TensorFlow is loaded
    if tf is not None and isinstance(x, tf.Tensor) and tf.is_symbolic_tensor(x):
        raise TypeError(
            f"validate_batch got a symbolic tensor for {name}; it checks values with numpy "
            "and works only eagerly. Call it on the data before the tf.function."
        )
    arr = np.asarray(x)
    if not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"{name} has dtype {arr.dtype}; expected numbers (0 or 1).")
    shape = arr.shape
    ok = (
        (arr.ndim == 4 and shape[1:] == (28, 28, 1))
        or (arr.ndim == 3 and shape[1:] == (28, 28))
        or (arr.ndim == 2 and shape[1] == 784)
    )
    if not ok:
        hint = (
            " For a single image add a batch axis: x[None]."
            if shape in ((28, 28), (28, 28, 1), (784,))
            else ""
        )
        raise ValueError(
            f"{name} has shape {shape}; expected [B,28,28,1], [B,28,28] or [B,784].{hint}"
        )
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN values; the model needs binary pixels (0 or 1).")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(
            f"{name} must be binarized: every pixel 0 or 1, but its values range from "
            f"{arr.min()} to {arr.max()}. The model's likelihood is Bernoulli per pixel; "
            "convert grey-level images with vae_prac.data.binarize(images)."
        )
    return _tensorflow().convert_to_tensor(arr.reshape(-1, 28, 28, 1).astype(np.float32))
