"""MNIST's files: find them, download them, verify them, read them.

The four files of MNIST (training and test images and labels) are the original IDX
files, gzip-compressed. This module knows where they may be, how to fetch them, and
how to tell the right bytes from anything else; what the model reads from them, and
how it is binarized and batched, is ``vae_prac.data``'s business. Nothing here needs
TensorFlow, so `vae-prac data` answers at once.

Where the data comes from (see `find_data_dir` for the exact search order): an
explicit ``data_dir``, the ``VAE_PRAC_DATA_DIR`` environment variable, the copy shipped
in the repository (``data/mnist``, when running from a clone), or a user cache directory
that is filled by downloading from public mirrors (`cache_dir`, `MIRRORS`).

Every file is identified by the SHA-256 of its *uncompressed* IDX bytes (`RAW_SHA256`),
so the same data compressed differently is still accepted, and anything else is
rejected: a wrong or damaged file fails loudly (a `DataError` that says what was wrong
and how to fix it) instead of quietly giving odd numbers. Downloads are verified before
they are renamed into place, so other processes see no file or the complete one.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------
# Errors. Every message says what was wrong and how to fix it.


class DataError(Exception):
    """Something is wrong with the MNIST data (missing, damaged, malformed)."""


class DataNotFoundError(DataError):
    """No directory with the MNIST files was found and none could be downloaded."""


class ChecksumError(DataError):
    """A data file's content is not the expected MNIST bytes; it is not used."""


# --------------------------------------------------------------------------
# The four files and their identities.

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SPLIT_SIZES = {"train": 60000, "test": 10000}

# SHA-256 of the uncompressed IDX files, keyed by the uncompressed file name
# (as in data/mnist's SHA256SUMS.raw). This is the identity of the data: it
# does not depend on how (or whether) the file was gzip-compressed.
RAW_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# SHA-256 of the .gz files shipped in data/mnist, for information only: the
# mirrors serve differently compressed files with the same raw content.
GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "train-labels-idx1-ubyte.gz": "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
    "t10k-images-idx3-ubyte.gz": "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    "t10k-labels-idx1-ubyte.gz": "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
}

MIRRORS = [
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
]

# The copy that ships with the repository. An installed vae_prac (a wheel, as in Colab)
# has none: there this path would point into site-packages, which holds no data of ours.
REPO_DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "mnist"


def _is_checkout(root) -> bool:
    """Whether ``root`` is a clone of the repository (its pyproject names vae_prac)."""
    try:
        text = (Path(root) / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return 'name = "vae_prac"' in text and (Path(root) / "vae_prac").is_dir()


# Searched for the repository copy only when running from a clone (an editable install
# included); an installed package has no repository around it.
_FROM_CHECKOUT = _is_checkout(Path(__file__).resolve().parents[1])

_ALL_FILES = [name for pair in MNIST_FILES.values() for name in pair]


def _raw_name(name):
    return name[:-3] if name.endswith(".gz") else name


# --------------------------------------------------------------------------
# Finding the data.


def cache_dir():
    """Where downloaded MNIST goes: $VAE_PRAC_CACHE_DIR/mnist, else
    $XDG_CACHE_HOME/vae_prac/mnist, else ~/.cache/vae_prac/mnist."""
    if os.environ.get("VAE_PRAC_CACHE_DIR"):
        return Path(os.environ["VAE_PRAC_CACHE_DIR"]).expanduser() / "mnist"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "vae_prac" / "mnist"


def _file_path(directory, name):
    """The .gz file if present, else the uncompressed one, else None."""
    for candidate in (Path(directory) / name, Path(directory) / _raw_name(name)):
        if candidate.is_file():
            return candidate
    return None


def _missing(directory):
    return [name for name in _ALL_FILES if _file_path(directory, name) is None]


def _candidates(data_dir=None):
    """The places searched, in order, as (description, path) pairs."""
    places = []
    if data_dir is not None:
        places.append(("data_dir argument", Path(data_dir).expanduser().absolute()))
    if os.environ.get("VAE_PRAC_DATA_DIR"):
        places.append(("$VAE_PRAC_DATA_DIR", _env_data_dir()))
    if _FROM_CHECKOUT:
        places.append(("repository copy", REPO_DATA_DIR))
    places.append(("download cache", cache_dir()))
    return places


def _env_data_dir():
    return Path(os.environ["VAE_PRAC_DATA_DIR"]).expanduser().absolute()


def _installed_note():
    """What an installed vae_prac has instead of the repository copy: a line of the report."""
    package = Path(__file__).resolve().parent
    return (
        f"  - no repository copy: vae_prac is installed ({package}), not run from a "
        f"clone of the repository, so there is no data/mnist beside it"
    )


def _how_to_provide():
    files = ", ".join(_ALL_FILES)
    if _FROM_CHECKOUT:
        third = f"  3. copy the four files into the repository's data/mnist ({REPO_DATA_DIR});\n"
    else:
        import vae_prac

        third = (
            "  3. work from a clone of the repository, whose data/mnist holds them "
            f"(git clone {vae_prac.REPO_URL}; pip install -e .);\n"
        )
    return (
        "Provide the data in any one of these ways:\n"
        "  1. pass data_dir='/path/to/mnist' (a directory holding the four files);\n"
        "  2. set the environment variable VAE_PRAC_DATA_DIR=/path/to/mnist;\n"
        + third
        + f"  4. allow download (download=True) with network access; it goes to {cache_dir()}.\n"
        "     A different mirror can be given as VAE_PRAC_MNIST_MIRROR=<base URL> "
        "(file:// works).\n"
        f"The four files are: {files} (uncompressed copies without .gz are accepted too)."
    )


def _state(path):
    if not path.exists():
        return "does not exist"
    if not path.is_dir():
        return "not a directory"
    missing = _missing(path)
    return "complete" if not missing else f"missing {', '.join(missing)}"


def _searched_report(places):
    lines = [f"  - {label}: {path} ({_state(path)})" for label, path in places]
    if not _FROM_CHECKOUT:
        lines.append(_installed_note())
    return "\n".join(lines)


def find_data_dir(data_dir=None, download=True):
    """Return a directory that holds the four MNIST files.

    Search order: the explicit `data_dir`; $VAE_PRAC_DATA_DIR; the repository's
    data/mnist (when running from a clone of the repository); the download cache
    (see `cache_dir`). An explicit setting is never silently skipped: a `data_dir`
    that lacks files gets them downloaded into it (download=True) or raises
    DataNotFoundError, and so does a $VAE_PRAC_DATA_DIR that lacks files (it is
    not downloaded into: a mistyped path should not fill a new folder). If no
    place has the data and download=True, the files are downloaded into the cache.
    """
    places = _candidates(data_dir)
    if data_dir is not None:
        explicit = places[0][1]
        if not _missing(explicit):
            return explicit
        if not download:
            raise DataNotFoundError(
                f"data_dir={str(data_dir)!r} does not hold the MNIST files "
                f"(missing: {', '.join(_missing(explicit))}); download=False, so nothing "
                f"was fetched.\n{_how_to_provide()}"
            )
        _download(explicit, places)
        return explicit

    if os.environ.get("VAE_PRAC_DATA_DIR"):
        env = _env_data_dir()
        missing = _missing(env)
        if missing:
            fallback = "the repository copy" if _FROM_CHECKOUT else "the download cache"
            state = _state(env)
            what = {"does not exist": "does not exist", "not a directory": "is not a folder"}.get(
                state,
                "holds none of the four MNIST files"
                if len(missing) == 4
                else f"lacks {len(missing)} of the four MNIST files ({', '.join(missing)})",
            )
            raise DataNotFoundError(
                f"VAE_PRAC_DATA_DIR is set to {os.environ['VAE_PRAC_DATA_DIR']}, but {env} "
                f"{what}. A setting you made is not skipped. Put the "
                f"four files there (`vae-prac data --download --data-dir {env}` fetches and "
                f"verifies them), point VAE_PRAC_DATA_DIR at the folder that holds them, or "
                f"unset it to use {fallback}."
            )

    for _, path in places:
        if not _missing(path):
            return path
    if not download:
        raise DataNotFoundError(
            "MNIST was not found. Searched, in order:\n"
            f"{_searched_report(places)}\ndownload=False, so nothing was fetched.\n"
            f"{_how_to_provide()}"
        )
    target = cache_dir()
    _download(target, places)
    return target


def _mirrors():
    mirror = os.environ.get("VAE_PRAC_MNIST_MIRROR")
    return [mirror] if mirror else list(MIRRORS)


def _download(target, places):
    """Fetch the missing files into `target`, verified, one atomic rename each."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataNotFoundError(
            f"Cannot create the directory {target} to download MNIST into ({e}).\n"
            f"Searched, in order:\n{_searched_report(places)}\n{_how_to_provide()}"
        ) from e

    for name in _missing(target):
        failures = []
        for base in _mirrors():
            url = base.rstrip("/") + "/" + name
            try:
                _fetch_verified(url, target / name)
                break
            except (
                OSError,
                ValueError,
                EOFError,
                zlib.error,
                http.client.HTTPException,
                DataError,
            ) as e:
                failures.append(f"  - {url}: {e}")
        else:
            raise DataNotFoundError(
                f"MNIST was not found and downloading {name} failed.\n"
                f"Searched, in order:\n{_searched_report(places)}\n"
                "Download attempts:\n" + "\n".join(failures) + f"\n{_how_to_provide()}"
            )


def _fetch_verified(url, dest):
    """Download `url` to a temporary file beside `dest`, check, then rename."""
    # stdout: progress, not a problem (Jupyter shows stderr in red).
    print(f"vae_prac: downloading {url}", file=sys.stdout, flush=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                f.write(chunk)
        raw = gzip.decompress(Path(tmp).read_bytes())
        actual = hashlib.sha256(raw).hexdigest()
        expected = RAW_SHA256[_raw_name(dest.name)]
        if actual != expected:
            raise ChecksumError(f"downloaded content has SHA-256 {actual}, expected {expected}")
        # mkstemp made the file private (0600); data files get the usual mode, 0666
        # less the umask (read with the only portable call, which also sets it).
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        # Atomic: other processes see either no file or the complete, verified one.
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# --------------------------------------------------------------------------
# Reading and checking IDX files.

_IDX_MAGIC = {2051: 3, 2049: 1}  # images: 3 dims (N, 28, 28); labels: 1 dim (N,)


def _read_raw(path):
    """The uncompressed bytes of an IDX file (.gz or not)."""
    data = Path(path).read_bytes()
    if Path(path).name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(
                f"{path} is not a complete gzip file ({e}); it is probably truncated or "
                "damaged. Delete it and copy or download it again."
            ) from e
    return data


def _parse_idx(path, raw, magic, shape):
    """Check an IDX header against the expected magic and shape; return the array."""
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise DataError(
            f"{path} has IDX magic number {got_magic}, expected {magic} "
            f"({'images' if magic == 2051 else 'labels'}); it is not the right MNIST file. "
            "Replace it with the original file."
        )
    ndim = _IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if dims != shape or len(raw) != header + int(np.prod(shape)):
        raise DataError(
            f"{path} has dimensions {dims} and {len(raw) - header} data bytes, expected "
            f"{shape} and {int(np.prod(shape))}; the file is damaged or not MNIST. "
            "Replace it with the original file."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _verify(path, raw):
    expected = RAW_SHA256[_raw_name(Path(path).name)]
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        raise ChecksumError(
            f"{path} does not contain the expected MNIST data.\n"
            f"  expected SHA-256 (uncompressed): {expected}\n"
            f"  actual SHA-256   (uncompressed): {actual}\n"
            "The file was not used. "
            + (
                "Delete it and copy it again from the repository's data/mnist (or let "
                "vae_prac download it)."
                if _FROM_CHECKOUT
                else "Delete it and let vae_prac download it again."
            )
        )


@functools.lru_cache(maxsize=4)
def _load_split(images_path, labels_path, split, stamp):
    # `stamp` (size, mtime of both files) is only part of the cache key, so a
    # re-copied file is read and verified again.
    n = SPLIT_SIZES[split]
    arrays = []
    for path, magic, shape in ((images_path, 2051, (n, 28, 28)), (labels_path, 2049, (n,))):
        raw = _read_raw(path)
        array = _parse_idx(path, raw, magic, shape)
        _verify(path, raw)
        array.flags.writeable = False  # shared by every caller: keep it read-only
        arrays.append(array)
    return tuple(arrays)


def read_split(directory, split):
    """``(images uint8 [N,28,28], labels uint8 [N])`` of ``split`` from ``directory``.

    Every file read is verified against `RAW_SHA256`; the arrays are read-only and cached
    in-process, read again when a file's size or time stamp changes.
    """
    paths = [_file_path(directory, name) for name in MNIST_FILES[split]]
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    return _load_split(str(paths[0].resolve()), str(paths[1].resolve()), split, stamp)


# --------------------------------------------------------------------------
# A report for the command line (`vae-prac data`).


def describe_data(data_dir=None):
    """Where the data was found, each file's size and whether its digest verifies.

    Does not download; raises DataNotFoundError (with the places searched) when
    there is no data.
    """
    directory = find_data_dir(data_dir, download=False)
    source = next(label for label, path in _candidates(data_dir) if path == directory)
    lines = [f"MNIST found in {directory} ({source})"]
    all_ok = True
    for name in _ALL_FILES:
        path = _file_path(directory, name)
        try:
            raw = _read_raw(path)
            actual = hashlib.sha256(raw).hexdigest()
            status = "OK" if actual == RAW_SHA256[_raw_name(name)] else f"FAIL (SHA-256 {actual})"
        except (OSError, DataError) as e:
            status = f"FAIL ({e})"
        all_ok &= status == "OK"
        lines.append(f"  {path.name:28s} {path.stat().st_size:>10,d} bytes  raw SHA-256 {status}")
    if not all_ok:
        lines.append(
            "Some files FAILED: delete them and copy them again (or let vae_prac download them)."
        )
    return "\n".join(lines)
