"""Tests for vae_prac.data: finding, verifying, loading and binarizing MNIST.

Each test isolates the environment (no VAE_PRAC_* variables, a temporary
cache) so the result does not depend on the machine it runs on.
"""

import gzip
import hashlib
import os
import shutil
import stat

import numpy as np
import pytest
import tensorflow as tf

from vae_prac import data

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
ALL_FILES = [name for pair in data.MNIST_FILES.values() for name in pair]
REPO_MNIST = data.REPO_DATA_DIR  # captured before any test monkeypatches it


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("VAE_PRAC_DATA_DIR", "VAE_PRAC_MNIST_MIRROR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAE_PRAC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def no_repo_data(monkeypatch, tmp_path):
    """Pretend the repository ships no data."""
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path / "no-repo-data")


def placeholder_dir(path):
    """A directory that *looks* complete (the search only checks the names)."""
    path.mkdir(parents=True)
    for name in ALL_FILES:
        (path / name).touch()
    return path


def copy_test_split(path):
    """A real copy of the test split (and placeholders for train)."""
    placeholder_dir(path)
    for name in data.MNIST_FILES["test"]:
        shutil.copy(REPO_MNIST / name, path / name)
    return path


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


# --- search order ------------------------------------------------------------


def test_search_order_explicit_then_env_then_repo_then_cache(monkeypatch, tmp_path):
    explicit = placeholder_dir(tmp_path / "explicit")
    env = placeholder_dir(tmp_path / "env")
    repo = placeholder_dir(tmp_path / "repo")
    cache = placeholder_dir(tmp_path / "cache" / "mnist")
    monkeypatch.setattr(data, "REPO_DATA_DIR", repo)
    monkeypatch.setenv("VAE_PRAC_DATA_DIR", str(env))

    assert data.find_data_dir(explicit, download=False) == explicit
    assert data.find_data_dir(download=False) == env
    monkeypatch.delenv("VAE_PRAC_DATA_DIR")
    assert data.find_data_dir(download=False) == repo
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path / "nothing")
    assert data.find_data_dir(download=False) == cache


def test_uncompressed_files_are_accepted(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    for name in ALL_FILES:
        (d / name[:-3]).touch()
    assert data.find_data_dir(d, download=False) == d


def test_explicit_dir_without_data_is_an_error_not_a_fallback(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataNotFoundError) as e:
        data.find_data_dir(empty, download=False)  # the repo copy exists, but was not asked for
    assert str(empty) in str(e.value) and "VAE_PRAC_DATA_DIR" in str(e.value)


# --- damaged files -------------------------------------------------------------


def test_corrupted_file_raises_checksum_error(tmp_path):
    d = copy_test_split(tmp_path / "bad")
    name = "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress((d / name).read_bytes()))
    raw[100] ^= 0x01  # one label changed: structure intact, content wrong
    (d / name).write_bytes(gzip.compress(bytes(raw), compresslevel=1))

    with pytest.raises(data.ChecksumError) as e:
        data.load_mnist("test", data_dir=d)
    msg = str(e.value)
    assert name in msg
    assert data.RAW_SHA256["t10k-labels-idx1-ubyte"] in msg
    assert hashlib.sha256(bytes(raw)).hexdigest() in msg


def test_truncated_gzip_raises_data_error(tmp_path):
    d = copy_test_split(tmp_path / "short")
    name = "t10k-images-idx3-ubyte.gz"
    content = (d / name).read_bytes()
    (d / name).write_bytes(content[: len(content) // 2])
    with pytest.raises(data.DataError, match=name):
        data.load_mnist("test", data_dir=d)


def test_wrong_magic_raises_data_error(tmp_path):
    d = copy_test_split(tmp_path / "magic")
    name = "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress((d / name).read_bytes()))
    raw[3] = 0x03  # labels now claim to be images
    (d / name).write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    with pytest.raises(data.DataError, match="magic"):
        data.load_mnist("test", data_dir=d)


# --- download ----------------------------------------------------------------


def test_no_data_and_no_network_lists_searched_places(monkeypatch, tmp_path, no_repo_data):
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", (tmp_path / "no-such-mirror").as_uri())
    with pytest.raises(data.DataNotFoundError) as e:
        data.find_data_dir()
    msg = str(e.value)
    assert str(data.REPO_DATA_DIR) in msg and str(data.cache_dir()) in msg
    assert "no-such-mirror" in msg and "data_dir" in msg and "VAE_PRAC_DATA_DIR" in msg


def test_download_from_file_mirror_into_cache(monkeypatch, tmp_path, no_repo_data):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", mirror.as_uri())

    found = data.find_data_dir()
    assert found == data.cache_dir()
    assert sorted(p.name for p in found.iterdir()) == sorted(ALL_FILES)  # no .part files left
    _, labels = data.load_mnist("test")
    assert np.bincount(labels).tolist() == TEST_COUNTS


def test_download_into_explicit_dir(monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", mirror.as_uri())
    target = tmp_path / "mine"
    assert data.find_data_dir(target, download=True) == target
    assert sorted(p.name for p in target.iterdir()) == sorted(ALL_FILES)


def test_download_with_wrong_content_is_rejected(monkeypatch, tmp_path, no_repo_data):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    name = "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress((mirror / name).read_bytes()))
    raw[-1] ^= 0x01
    (mirror / name).write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", mirror.as_uri())

    with pytest.raises(data.DataNotFoundError, match="SHA-256"):
        data.find_data_dir()
    assert not (data.cache_dir() / name).exists()
    assert not list(data.cache_dir().glob("*.part"))



def test_falls_back_to_the_next_mirror(monkeypatch, tmp_path, no_repo_data):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    monkeypatch.setattr(data, "MIRRORS", [(tmp_path / "down").as_uri(), mirror.as_uri()])
    assert data.find_data_dir() == data.cache_dir()


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
    assert sorted(epoch1) == list(range(n)) and sorted(epoch2) == list(range(n))  # each image once per epoch
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


def test_describe_data():
    text = data.describe_data()
    assert str(REPO_MNIST) in text
    assert text.count("OK") == 4


# --- an explicit setting is never skipped; an installed package says what it has ----


@pytest.mark.parametrize("state", ["empty", "incomplete", "absent"])
def test_a_data_dir_variable_without_the_files_is_an_error_naming_it(monkeypatch, tmp_path,
                                                                      state):
    # The repository copy exists and is complete: it must not be used in its place.
    assert not data._missing(REPO_MNIST)
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", (tmp_path / "no-mirror").as_uri())
    folder = tmp_path / "mine"
    if state != "absent":
        folder.mkdir()
    if state == "incomplete":
        shutil.copy(REPO_MNIST / ALL_FILES[0], folder / ALL_FILES[0])
    monkeypatch.setenv("VAE_PRAC_DATA_DIR", str(folder))
    for download in (False, True):
        with pytest.raises(data.DataNotFoundError) as e:
            data.find_data_dir(download=download)
        message = str(e.value)
        assert "VAE_PRAC_DATA_DIR" in message and str(folder) in message
        assert {"empty": "none of the four", "incomplete": "lacks 3 of the four",
                "absent": "does not exist"}[state] in message
        assert "unset it" in message and "--download --data-dir" in message
    # Nothing was downloaded into (or created at) a path that may be a typo.
    if state == "absent":
        assert not folder.exists()
    else:
        assert sorted(p.name for p in folder.iterdir()) == (
            [ALL_FILES[0]] if state == "incomplete" else [])
    with pytest.raises(data.DataNotFoundError, match="VAE_PRAC_DATA_DIR"):
        data.load_mnist("test")
    # An explicit data_dir still wins over the variable.
    assert data.find_data_dir(REPO_MNIST, download=False) == REPO_MNIST


def test_only_a_clone_of_the_repository_has_a_repository_copy(tmp_path):
    assert data._is_checkout(REPO_MNIST.parents[1])   # these tests run from a clone
    site = tmp_path / "site-packages"
    (site / "vae_prac").mkdir(parents=True)
    (site / "data" / "mnist").mkdir(parents=True)   # another package's folder, say
    assert not data._is_checkout(site)


def test_installed_search_report_says_what_is_there(monkeypatch, tmp_path):
    # As installed from a wheel (e.g. in Colab): vae_prac sits in site-packages.
    monkeypatch.setattr(data, "_FROM_CHECKOUT", False)
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path / "site-packages" / "data" / "mnist")
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", (tmp_path / "no-mirror").as_uri())
    for call in (lambda: data.find_data_dir(download=False), data.find_data_dir):
        with pytest.raises(data.DataNotFoundError) as e:
            call()
        message = str(e.value)
        assert "- repository copy:" not in message and str(data.REPO_DATA_DIR) not in message
        assert "copy the four files into" not in message   # not into site-packages
        assert "no repository copy: vae_prac is installed" in message
        assert "git clone" in message and str(data.cache_dir()) in message
    # The search goes on to the cache: a complete cache is found.
    data.cache_dir().mkdir(parents=True, exist_ok=True)
    for name in ALL_FILES:
        (data.cache_dir() / name).touch()
    assert data.find_data_dir(download=False) == data.cache_dir()
    assert data.describe_data().startswith(f"MNIST found in {data.cache_dir()} (download cache)")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_downloaded_files_have_the_usual_mode_and_progress_goes_to_stdout(
        monkeypatch, tmp_path, no_repo_data, capsys, umask):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", mirror.as_uri())
    old = os.umask(umask)
    try:
        found = data.find_data_dir()
    finally:
        os.umask(old)
    for name in ALL_FILES:
        assert stat.S_IMODE((found / name).stat().st_mode) == 0o666 & ~umask, name
    printed = capsys.readouterr()
    assert printed.out.count("vae_prac: downloading") == 4 and printed.err == ""


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


# --- TensorFlow only when a tensor is made ------------------------------------------


def _run_python(code):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VAE_PRAC_")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)


def test_the_data_command_does_not_import_tensorflow():
    # Comparing checksums needs no TensorFlow, whose import takes seconds (tens on a
    # busy laptop); `vae-prac data` must answer without it.
    result = _run_python(
        "import sys\n"
        "from vae_prac import cli\n"
        "code = cli.main(['data'])\n"
        "print('exit', code, 'tensorflow imported:', 'tensorflow' in sys.modules)\n")
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
        "print(type(x).__name__, tuple(x.shape))\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["EagerTensor", "(8,", "28,", "28,", "1)"]
    assert result.stderr == ""
