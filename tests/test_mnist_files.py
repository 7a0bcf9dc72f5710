"""Tests for vae_prac.mnist_files: finding, downloading and verifying MNIST's files.

Each test isolates the environment (no VAE_PRAC_* variables, a temporary
cache) so the result does not depend on the machine it runs on. Damaged files are
read through ``data.load_mnist``, the way every user reads them.
"""

import gzip
import hashlib
import os
import shutil
import stat

import numpy as np
import pytest

from vae_prac import data, mnist_files

TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
ALL_FILES = [name for pair in mnist_files.MNIST_FILES.values() for name in pair]
REPO_MNIST = mnist_files.REPO_DATA_DIR  # captured before any test monkeypatches it


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("VAE_PRAC_DATA_DIR", "VAE_PRAC_MNIST_MIRROR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAE_PRAC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def no_repo_data(monkeypatch, tmp_path):
    """Pretend the repository ships no data."""
    monkeypatch.setattr(mnist_files, "REPO_DATA_DIR", tmp_path / "no-repo-data")


def placeholder_dir(path):
    """A directory that *looks* complete (the search only checks the names)."""
    path.mkdir(parents=True)
    for name in ALL_FILES:
        (path / name).touch()
    return path


def copy_test_split(path):
    """A real copy of the test split (and placeholders for train)."""
    placeholder_dir(path)
    for name in mnist_files.MNIST_FILES["test"]:
        shutil.copy(REPO_MNIST / name, path / name)
    return path


# --- search order ------------------------------------------------------------


def test_search_order_explicit_then_env_then_repo_then_cache(monkeypatch, tmp_path):
    explicit = placeholder_dir(tmp_path / "explicit")
    env = placeholder_dir(tmp_path / "env")
    repo = placeholder_dir(tmp_path / "repo")
    cache = placeholder_dir(tmp_path / "cache" / "mnist")
    monkeypatch.setattr(mnist_files, "REPO_DATA_DIR", repo)
    monkeypatch.setenv("VAE_PRAC_DATA_DIR", str(env))

    assert mnist_files.find_data_dir(explicit, download=False) == explicit
    assert mnist_files.find_data_dir(download=False) == env
    monkeypatch.delenv("VAE_PRAC_DATA_DIR")
    assert mnist_files.find_data_dir(download=False) == repo
    monkeypatch.setattr(mnist_files, "REPO_DATA_DIR", tmp_path / "nothing")
    assert mnist_files.find_data_dir(download=False) == cache


def test_uncompressed_files_are_accepted(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    for name in ALL_FILES:
        (d / name[:-3]).touch()
    assert mnist_files.find_data_dir(d, download=False) == d


def test_explicit_dir_without_data_is_an_error_not_a_fallback(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(mnist_files.DataNotFoundError) as e:
        # the repo copy exists, but was not asked for
        mnist_files.find_data_dir(empty, download=False)
    assert str(empty) in str(e.value) and "VAE_PRAC_DATA_DIR" in str(e.value)


# --- damaged files -------------------------------------------------------------


def test_corrupted_file_raises_checksum_error(tmp_path):
    d = copy_test_split(tmp_path / "bad")
    name = "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress((d / name).read_bytes()))
    raw[100] ^= 0x01  # one label changed: structure intact, content wrong
    (d / name).write_bytes(gzip.compress(bytes(raw), compresslevel=1))

    with pytest.raises(mnist_files.ChecksumError) as e:
        data.load_mnist("test", data_dir=d)
    msg = str(e.value)
    assert name in msg
    assert mnist_files.RAW_SHA256["t10k-labels-idx1-ubyte"] in msg
    assert hashlib.sha256(bytes(raw)).hexdigest() in msg


def test_truncated_gzip_raises_data_error(tmp_path):
    d = copy_test_split(tmp_path / "short")
    name = "t10k-images-idx3-ubyte.gz"
    content = (d / name).read_bytes()
    (d / name).write_bytes(content[: len(content) // 2])
    with pytest.raises(mnist_files.DataError, match=name):
        data.load_mnist("test", data_dir=d)


def test_wrong_magic_raises_data_error(tmp_path):
    d = copy_test_split(tmp_path / "magic")
    name = "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress((d / name).read_bytes()))
    raw[3] = 0x03  # labels now claim to be images
    (d / name).write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    with pytest.raises(mnist_files.DataError, match="magic"):
        data.load_mnist("test", data_dir=d)


# --- download ----------------------------------------------------------------


def test_no_data_and_no_network_lists_searched_places(monkeypatch, tmp_path, no_repo_data):
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", (tmp_path / "no-such-mirror").as_uri())
    with pytest.raises(mnist_files.DataNotFoundError) as e:
        mnist_files.find_data_dir()
    msg = str(e.value)
    assert str(mnist_files.REPO_DATA_DIR) in msg and str(mnist_files.cache_dir()) in msg
    assert "no-such-mirror" in msg and "data_dir" in msg and "VAE_PRAC_DATA_DIR" in msg


def test_download_from_file_mirror_into_cache(monkeypatch, tmp_path, no_repo_data):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", mirror.as_uri())

    found = mnist_files.find_data_dir()
    assert found == mnist_files.cache_dir()
    assert sorted(p.name for p in found.iterdir()) == sorted(ALL_FILES)  # no .part files left
    _, labels = data.load_mnist("test")
    assert np.bincount(labels).tolist() == TEST_COUNTS


def test_download_into_explicit_dir(monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", mirror.as_uri())
    target = tmp_path / "mine"
    assert mnist_files.find_data_dir(target, download=True) == target
    assert sorted(p.name for p in target.iterdir()) == sorted(ALL_FILES)


def test_download_with_wrong_content_is_rejected(monkeypatch, tmp_path, no_repo_data):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    name = "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress((mirror / name).read_bytes()))
    raw[-1] ^= 0x01
    (mirror / name).write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", mirror.as_uri())

    with pytest.raises(mnist_files.DataNotFoundError, match="SHA-256"):
        mnist_files.find_data_dir()
    assert not (mnist_files.cache_dir() / name).exists()
    assert not list(mnist_files.cache_dir().glob("*.part"))


def test_falls_back_to_the_next_mirror(monkeypatch, tmp_path, no_repo_data):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    monkeypatch.setattr(mnist_files, "MIRRORS", [(tmp_path / "down").as_uri(), mirror.as_uri()])
    assert mnist_files.find_data_dir() == mnist_files.cache_dir()


def test_describe_data():
    text = mnist_files.describe_data()
    assert str(REPO_MNIST) in text
    assert text.count("OK") == 4


# --- an explicit setting is never skipped; an installed package says what it has ----


@pytest.mark.parametrize("state", ["empty", "incomplete", "absent"])
def test_a_data_dir_variable_without_the_files_is_an_error_naming_it(monkeypatch, tmp_path, state):
    # The repository copy exists and is complete: it must not be used in its place.
    assert not mnist_files._missing(REPO_MNIST)
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", (tmp_path / "no-mirror").as_uri())
    folder = tmp_path / "mine"
    if state != "absent":
        folder.mkdir()
    if state == "incomplete":
        shutil.copy(REPO_MNIST / ALL_FILES[0], folder / ALL_FILES[0])
    monkeypatch.setenv("VAE_PRAC_DATA_DIR", str(folder))
    for download in (False, True):
        with pytest.raises(mnist_files.DataNotFoundError) as e:
            mnist_files.find_data_dir(download=download)
        message = str(e.value)
        assert "VAE_PRAC_DATA_DIR" in message and str(folder) in message
        assert {
            "empty": "none of the four",
            "incomplete": "lacks 3 of the four",
            "absent": "does not exist",
        }[state] in message
        assert "unset it" in message and "--download --data-dir" in message
    # Nothing was downloaded into (or created at) a path that may be a typo.
    if state == "absent":
        assert not folder.exists()
    else:
        assert sorted(p.name for p in folder.iterdir()) == (
            [ALL_FILES[0]] if state == "incomplete" else []
        )
    with pytest.raises(mnist_files.DataNotFoundError, match="VAE_PRAC_DATA_DIR"):
        data.load_mnist("test")
    # An explicit data_dir still wins over the variable.
    assert mnist_files.find_data_dir(REPO_MNIST, download=False) == REPO_MNIST


def test_only_a_clone_of_the_repository_has_a_repository_copy(tmp_path):
    assert mnist_files._is_checkout(REPO_MNIST.parents[1])  # these tests run from a clone
    site = tmp_path / "site-packages"
    (site / "vae_prac").mkdir(parents=True)
    (site / "data" / "mnist").mkdir(parents=True)  # another package's folder, say
    assert not mnist_files._is_checkout(site)


def test_installed_search_report_says_what_is_there(monkeypatch, tmp_path):
    # As installed from a wheel (e.g. in Colab): vae_prac sits in site-packages.
    monkeypatch.setattr(mnist_files, "_FROM_CHECKOUT", False)
    monkeypatch.setattr(mnist_files, "REPO_DATA_DIR", tmp_path / "site-packages" / "data" / "mnist")
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", (tmp_path / "no-mirror").as_uri())
    for call in (lambda: mnist_files.find_data_dir(download=False), mnist_files.find_data_dir):
        with pytest.raises(mnist_files.DataNotFoundError) as e:
            call()
        message = str(e.value)
        assert "- repository copy:" not in message and str(mnist_files.REPO_DATA_DIR) not in message
        assert "copy the four files into" not in message  # not into site-packages
        assert "no repository copy: vae_prac is installed" in message
        assert "git clone" in message and str(mnist_files.cache_dir()) in message
    # The search goes on to the cache: a complete cache is found.
    mnist_files.cache_dir().mkdir(parents=True, exist_ok=True)
    for name in ALL_FILES:
        (mnist_files.cache_dir() / name).touch()
    assert mnist_files.find_data_dir(download=False) == mnist_files.cache_dir()
    assert mnist_files.describe_data().startswith(
        f"MNIST found in {mnist_files.cache_dir()} (download cache)"
    )


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_downloaded_files_have_the_usual_mode_and_progress_goes_to_stdout(
    monkeypatch, tmp_path, no_repo_data, capsys, umask
):
    mirror = tmp_path / "mirror"
    shutil.copytree(REPO_MNIST, mirror)
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", mirror.as_uri())
    old = os.umask(umask)
    try:
        found = mnist_files.find_data_dir()
    finally:
        os.umask(old)
    for name in ALL_FILES:
        assert stat.S_IMODE((found / name).stat().st_mode) == 0o666 & ~umask, name
    printed = capsys.readouterr()
    assert printed.out.count("vae_prac: downloading") == 4 and printed.err == ""
