"""Tests for vae_prac.data: loading, binarizing and batching MNIST for the model.

(The files themselves, found, downloaded and verified: test_mnist_files.py.) Each test
isolates the environment (no VAE_PRAC_* variables, a temporary cache) so the result does
not depend on the machine it runs on.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from vae_prac import data, mnist_files

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("VAE_PRAC_DATA_DIR", "VAE_PRAC_MNIST_MIRROR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAE_PRAC_CACHE_DIR", str(tmp_path / "cache"))


# --- loading ---------------------------------------------------------------


@pytest.mark.parametrize("split, counts", [("train", TRAIN_COUNTS), ("test", TEST_COUNTS)])
def test_load_shapes_dtypes_and_label_counts(split, counts):
    images, labels = data.load_mnist(split)
    n = sum(counts)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == counts
    if split == "train":
        assert images.mean() == pytest.approx(33.3184, abs=1e-4)


def test_load_is_cached_and_read_only():
    first, _ = data.load_mnist("test")
    second, _ = data.load_mnist("test")
    assert first is second
    with pytest.raises(ValueError):
        first[0, 0, 0] = 1


def test_unknown_split():
    with pytest.raises(ValueError, match="train"):
        data.load_mnist("validation")


def test_the_errors_of_loading_are_the_files_own():
    # Users catch data.DataError around load_mnist; it is mnist_files' class itself.
    assert data.DataError is mnist_files.DataError
    assert data.DataNotFoundError is mnist_files.DataNotFoundError
    assert data.ChecksumError is mnist_files.ChecksumError
    assert data.MNIST_FILES is mnist_files.MNIST_FILES
    assert data.SPLIT_SIZES is mnist_files.SPLIT_SIZES


# --- binarization ----------------------------------------------------------


@pytest.fixture(scope="module")
def test_images():
    return data.load_mnist("test")[0]


def test_threshold_binarization(test_images):
    x = test_images[:500]
    b = data.binarize(x)
    assert b.shape == (500, 28, 28, 1) and b.dtype == np.float32
    np.testing.assert_array_equal(b[..., 0], (x / 255 > 0.5).astype(np.float32))
    # floats in [0,1], a trailing channel axis and a single image give the same bits
    np.testing.assert_array_equal(data.binarize(x[..., None] / 255.0), b)
    np.testing.assert_array_equal(data.binarize(x[0]), b[:1])
    assert data.binarize(np.full((28, 28), 0.5)).max() == 0.0  # strictly above one half


def test_stochastic_binarization(test_images):
    x = test_images[:1000]
    b = data.binarize(x, "stochastic", seed=1)
    assert set(np.unique(b)) <= {0.0, 1.0}
    assert b.mean() == pytest.approx((x / 255).mean(), abs=0.003)
    np.testing.assert_array_equal(b, data.binarize(x, "stochastic", seed=1))
    assert not np.array_equal(b, data.binarize(x, "stochastic", seed=2))
    # black pixels stay 0, white ones stay 1
    assert np.all(b[..., 0][x == 0] == 0) and np.all(b[..., 0][x == 255] == 1)


def test_binarize_batch_is_the_rule_of_binarize_in_tensorflow(test_images):
    # One rule: in a graph, on uint8 grey levels or float intensities, the bits of binarize.
    x = test_images[:300]
    in_graph = tf.function(lambda b: data.binarize_batch(b, "threshold"))
    for images in (x, x / np.float32(255.0)):
        got = in_graph(tf.constant(data._image_array(images))).numpy()
        np.testing.assert_array_equal(got, data.binarize(images))
    # Stochastic: Bernoulli(intensity), a draw of its own for each (seed, batch index).
    grey = tf.constant(data._image_array(x))
    draw = data.binarize_batch(grey, "stochastic", seed=3, index=7).numpy()
    assert set(np.unique(draw)) == {0.0, 1.0} and draw.dtype == np.float32
    assert draw.mean() == pytest.approx((x / 255).mean(), abs=0.005)
    np.testing.assert_array_equal(draw, data.binarize_batch(grey, "stochastic", 3, 7))
    assert not np.array_equal(draw, data.binarize_batch(grey, "stochastic", 3, 8))
    assert np.all(draw[..., 0][x == 0] == 0) and np.all(draw[..., 0][x == 255] == 1)
    with pytest.raises(ValueError, match="threshold, stochastic"):
        data.binarize_batch(grey, "dynamic")


def test_train_dataset_binarizes_each_batch_with_binarize_batch(test_images):
    # A shuffle buffer of one keeps the order: batch i holds images [i*B, (i+1)*B).
    x = test_images[:96]
    for method in ("threshold", "stochastic"):
        batches = take(data.train_dataset(x, 32, method, seed=5, shuffle_buffer=1), 4)
        for i, batch in enumerate(batches):
            images = tf.constant(data._image_array(x[i % 3 * 32 : (i % 3 + 1) * 32]))
            np.testing.assert_array_equal(
                batch, data.binarize_batch(images, method, seed=5, index=i)
            )


def test_binarize_rejects_bad_input():
    with pytest.raises(ValueError, match="threshold, stochastic"):
        data.binarize(np.zeros((2, 28, 28), np.uint8), method="dynamic")
    with pytest.raises(ValueError, match="shape"):
        data.binarize(np.zeros((2, 784), np.uint8))
    with pytest.raises(ValueError, match="255"):
        data.binarize(np.full((2, 28, 28), 200.0))  # grey levels given as floats


# --- training pipeline -----------------------------------------------------


def indexed_images(n):
    """n distinct images; image i has its index written in binary in the first pixels."""
    bits = (np.arange(n)[:, None] >> np.arange(16)) & 1
    x = np.zeros((n, 784), np.uint8)
    x[:, :16] = bits * 255
    return x.reshape(n, 28, 28)


def decode(batch):
    bits = np.asarray(batch).reshape(len(batch), 784)[:, :16].astype(np.int64)
    return (bits << np.arange(16)).sum(axis=1)


def take(ds, k):
    return [b.numpy() for b in ds.take(k)]


def test_train_dataset_shape_values_and_epochs():
    n, bs = 128, 32
    batches = take(data.train_dataset(indexed_images(n), batch_size=bs, seed=0), 8)
    for b in batches:
        assert b.shape == (bs, 28, 28, 1) and b.dtype == np.float32
        assert set(np.unique(b)) <= {0.0, 1.0}
    epoch1 = np.concatenate([decode(b) for b in batches[:4]])
    epoch2 = np.concatenate([decode(b) for b in batches[4:]])
    # each image once per epoch
    assert sorted(epoch1) == list(range(n)) and sorted(epoch2) == list(range(n))
    assert not np.array_equal(epoch1, np.arange(n))  # shuffled
    assert not np.array_equal(epoch1, epoch2)  # reshuffled each epoch


@pytest.mark.parametrize("binarization", ["threshold", "stochastic"])
def test_train_dataset_is_deterministic_given_seed(test_images, binarization):
    x = test_images[:256]
    a = take(data.train_dataset(x, 64, binarization, seed=3), 6)
    b = take(data.train_dataset(x, 64, binarization, seed=3), 6)
    c = take(data.train_dataset(x, 64, binarization, seed=4), 6)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))


def test_train_dataset_threshold_matches_binarize(test_images):
    x = test_images[:100]
    expected = {b.tobytes() for b in data.binarize(x)}
    for batch in take(data.train_dataset(x, 50, seed=0), 4):
        assert all(img.tobytes() in expected for img in batch)


def test_train_dataset_stochastic_redraws_every_batch(test_images):
    x = np.repeat(test_images[:1], 128, axis=0)  # one digit, many times
    batches = np.stack(take(data.train_dataset(x, 64, "stochastic", seed=0), 4))
    assert not np.array_equal(batches[0, 0], batches[0, 1])  # fresh bits per image
    assert not np.array_equal(batches[0], batches[2])  # and per batch, across epochs
    assert batches.mean() == pytest.approx((x[0] / 255).mean(), abs=0.01)


def test_train_dataset_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        data.train_dataset(indexed_images(10), batch_size=64)
    with pytest.raises(ValueError, match="threshold, stochastic"):
        data.train_dataset(indexed_images(10), batch_size=2, binarization="dynamic")


# --- evaluation set and user input --------------------------------------------


def test_eval_set_is_fixed():
    a = data.eval_set()
    assert a.shape == (5000, 28, 28, 1) and a.dtype == np.float32
    np.testing.assert_array_equal(a, data.eval_set())
    s = data.eval_set(1000, "stochastic")
    np.testing.assert_array_equal(s, data.eval_set(1000, "stochastic"))
    assert not np.array_equal(s, a[:1000])
    x, y = data.eval_set_with_labels(100)
    np.testing.assert_array_equal(x, a[:100])
    np.testing.assert_array_equal(y, data.load_mnist("test")[1][:100])
    with pytest.raises(ValueError, match="10000"):
        data.eval_set(20000)


def test_validate_batch_accepts_the_three_layouts():
    x = (np.random.default_rng(0).random((3, 28, 28, 1)) > 0.5).astype(np.float32)
    for layout in (x, x[..., 0], x.reshape(3, 784), tf.constant(x), x.astype(bool)):
        out = data.validate_batch(layout)
        assert out.dtype == tf.float32 and out.shape == (3, 28, 28, 1)
        np.testing.assert_array_equal(out.numpy(), x)


def test_validate_batch_errors():
    with pytest.raises(ValueError, match=r"\(28, 28\).*\[B,28,28,1\]"):
        data.validate_batch(np.zeros((28, 28)))
    with pytest.raises(ValueError, match="784"):
        data.validate_batch(np.zeros((4, 28, 27)))
    with pytest.raises(ValueError, match=r"vae_prac\.data\.binarize"):
        data.validate_batch(np.full((2, 28, 28), 255, np.uint8))
    nan = np.zeros((2, 784), np.float32)
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        data.validate_batch(nan)
    with pytest.raises(TypeError, match="eager"):
        tf.function(data.validate_batch)(tf.zeros((2, 784)))


def test_data_functions_check_counts_and_seeds_by_the_common_rules(test_images):
    x = test_images[:10]
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*31\)"):
        data.binarize(x, "stochastic", seed=2**40)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*31\)"):
        data.train_dataset(x, batch_size=2, seed=-1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 2.5"):
        data.train_dataset(x, batch_size=2.5)
    with pytest.raises(ValueError, match="n must be a positive integer, got 2.5"):
        data.eval_set(2.5)
    # NumPy integers are integers.
    batch = next(iter(data.train_dataset(x, batch_size=np.int64(4), seed=np.int32(3))))
    assert batch.shape == (4, 28, 28, 1)
    assert data.eval_set(np.int64(3)).shape == (3, 28, 28, 1)


# --- TensorFlow only when a tensor is made (not for the files: `vae-prac data`) -------


def _run_python(code):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VAE_PRAC_")}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )


def test_the_data_command_does_not_import_tensorflow():
    # Comparing checksums needs no TensorFlow, whose import takes seconds (tens on a
    # busy laptop); `vae-prac data` must answer without it.
    result = _run_python(
        "import sys\n"
        "from vae_prac import cli\n"
        "code = cli.main(['data'])\n"
        "print('exit', code, 'tensorflow imported:', 'tensorflow' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "raw SHA-256 OK" in result.stdout
    assert "exit 0 tensorflow imported: False" in result.stdout


def test_tensors_from_the_data_module_alone_keep_stderr_quiet():
    # Imported first, the data module brings TensorFlow in itself when a function makes
    # a tensor, as quietly as the rest of the library (no C++ start-up lines on stderr).
    result = _run_python(
        "import sys\n"
        "from vae_prac import data\n"
        "assert 'tensorflow' not in sys.modules\n"
        "images, _ = data.load_mnist('test')\n"
        "batch = next(iter(data.train_dataset(images[:64], batch_size=8)))\n"
        "x = data.validate_batch(batch.numpy())\n"
        "print(type(x).__name__, tuple(x.shape))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["EagerTensor", "(8,", "28,", "28,", "1)"]
    assert result.stderr == ""
