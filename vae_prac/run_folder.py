"""A run folder: what a training run leaves on disk, and the rules for reading it back.

``train(Config(logdir=FOLDER))`` and ``vae-prac train --out FOLDER`` write one run to
one folder::

    config.json            the run's Config: the network sizes its checkpoints need
    checkpoints/           the model, the optimizer's state and the iteration, every
                           print_every iterations (the newest three are kept)
    history.csv            one row every log_every iterations (see History)
    events.out.tfevents.*  TensorBoard summaries
    vae-prac.lock          while a run writes to the folder (vae_prac.run_lock)

and the command line adds ``history.json`` (the same rows), the figures
``posterior_prior.png``, ``prior_means.png`` and ``elbo_curve.png``, and ``metrics.json``
(the final evaluation).

The rules, each kept in one place here:

* **One run at a time.** A run holds the folder's lock (``vae_prac.run_lock``) while it
  writes; two runs would delete each other's checkpoints.
* **Written whole or not at all.** Every file is written beside its place and renamed
  over it (``write_atomically``): a run killed mid-write keeps the old file, never half
  of one. TensorFlow's checkpoints follow the same idea: the ``checkpoint`` file that
  lists them is written last.
* **Resuming.** A folder with a checkpoint resumes from it, at the right iteration and
  with the same data order and noise as an uninterrupted run. The checkpoint fixes the
  network sizes (``NETWORK_SETTINGS``): a config that changes them is refused
  (``NetworkSizesChangedError``); any other setting may change, ``n_iterations`` to
  train further. A run stopped before its first checkpoint fixes nothing.
* **The history continues.** ``history.csv`` is written just before each checkpoint, so
  a run killed outright keeps every row up to it; the resumed run keeps the rows up to
  its checkpoint and measures the later ones again (``save_history``).
* **A damaged checkpoint is set aside, never deleted.** A file cut short by a crash, or
  a flipped bit, makes a checkpoint unreadable: it is renamed ``ckpt-N.damaged-TIME.*``
  and the run resumes from the newest one that reads back whole
  (``use_newest_readable_checkpoint``). None readable: ``UnreadableCheckpointError``.
* **Nothing half-made after a failure.** ``remove_debris`` removes what a failed
  command left half-written, and the folder itself if the command created it and never
  got to a checkpoint.

A folder that cannot be used as asked raises a ``RunFolderError``, whose message says
which folder and what to do; the command line prints it as its one error line (exit
status 2).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import json
import math
import os
import re
import shutil
import time
from typing import Callable, Optional

import tensorflow as tf

from vae_prac import run_lock
from vae_prac.config import Config

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
FIGURES = ("posterior_prior.png", "prior_means.png", "elbo_curve.png")
METRICS = "metrics.json"
#: The files a run writes at the top of its folder (beside checkpoints/ and the events).
RUN_FILES = (CONFIG, HISTORY_CSV, HISTORY_JSON, *FIGURES, METRICS)
EVENTS_PREFIX = "events.out.tfevents."
#: Checkpoints kept: the newest ones, so a damaged latest one has others to fall back on.
CHECKPOINTS_KEPT = 3
#: The ending of a file being written, before it is renamed into place.
PARTIAL = ".partial"

#: Settings a checkpoint fixes: its weights only fit networks of these sizes.
NETWORK_SETTINGS = ("latent_dim", "hidden_size", "hidden_layers", "activation")


# --------------------------------------------------------------------------
# Errors.


class RunFolderError(Exception):
    """A run folder that cannot be used as asked; ``folder`` is its path."""

    def __init__(self, message: str, folder):
        super().__init__(message)
        self.folder = str(folder)


class NoConfigError(RunFolderError, FileNotFoundError):
    """The folder has no ``config.json``, so the network sizes of its run are unknown."""


class NoCheckpointError(RunFolderError, FileNotFoundError):
    """The folder has no checkpoint to read back."""


class BadConfigError(RunFolderError, ValueError):
    """The folder's ``config.json`` is not a valid ``Config``; ``path`` and ``reason`` say
    which file and why."""

    def __init__(self, message: str, folder, path: str, reason: str):
        super().__init__(message, folder)
        self.path, self.reason = path, reason


class NetworkSizesChangedError(RunFolderError, ValueError):
    """A config asks for other network sizes than the checkpoint in the folder has.

    ``changes`` lists them as (setting, saved value, asked value).
    """

    def __init__(self, folder, changes: list):
        saved = ", ".join(f"{name}={old}" for name, old, _ in changes)
        asked = ", ".join(f"{name}={new}" for name, _, new in changes)
        super().__init__(
            f"{folder} holds a run with {saved}, but this config has {asked}. Its "
            f"checkpoint fixes the network sizes: use another logdir, or the same network "
            f"sizes to resume that run.",
            folder,
        )
        self.changes = changes


class UnreadableCheckpointError(RunFolderError, RuntimeError):
    """A folder has checkpoints, but none of them can be read back whole."""


# --------------------------------------------------------------------------
# The one atomic write.


def write_atomically(path, write: Callable[[str], None]):
    """``write(temporary_path)``, then rename it over ``path``: ``path`` is whole, or as it
    was. The temporary file (``path + ".partial"``) is removed if ``write`` fails; an
    error names ``path``, the file the user knows of."""
    path = os.fspath(path)
    partial = path + PARTIAL
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as e:
        if e.filename == partial:
            e.filename = path
        raise
    finally:
        if os.path.exists(partial):
            with contextlib.suppress(OSError):  # the error being raised matters more
                os.remove(partial)


def write_json(path, value, indent: int = 2):
    """Write ``value`` to ``path`` as JSON, atomically."""

    def write(target):
        with open(target, "w") as f:
            json.dump(value, f, indent=indent)

    write_atomically(path, write)


# --------------------------------------------------------------------------
# config.json and the resume rule.


def read_config(folder) -> Optional[Config]:
    """The ``Config`` saved in ``folder/config.json``, or None if there is none.

    A file written by an older version lacks the newer settings, which take their
    defaults. Raises ``BadConfigError`` for a file that is not a valid config.
    """
    path = os.path.join(folder, CONFIG)
    try:
        with open(path) as f:
            return Config.from_dict(json.load(f))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:
        raise BadConfigError(
            f"{path} is not a valid vae_prac config ({e}). Use another "
            f"folder, or delete {folder} to start again.",
            folder,
            path,
            str(e),
        ) from None


def check_resume(folder, config: Config) -> Optional[Config]:
    """Refuse ``config`` if the checkpoint in ``folder`` was trained with other network
    sizes (``NetworkSizesChangedError``); returns the saved config, or None.

    Only the settings of ``NETWORK_SETTINGS`` are fixed, and only once there is a
    checkpoint: a run stopped before its first one leaves sizes that may change.
    """
    saved = read_config(folder)
    if saved is None or latest_checkpoint(folder) is None:
        return saved
    changes = [
        (name, getattr(saved, name), getattr(config, name))
        for name in NETWORK_SETTINGS
        if getattr(saved, name) != getattr(config, name)
    ]
    if changes:
        raise NetworkSizesChangedError(folder, changes)
    return saved


def write_config(config: Config):
    """Save ``config`` as ``logdir/config.json``, so ``restore(logdir)`` can rebuild the
    model; refused (``check_resume``) if it changes the sizes of the checkpoint there."""
    folder = config.logdir
    if folder is None:
        raise ValueError("write_config needs a config with a logdir, the run folder.")
    os.makedirs(folder, exist_ok=True)
    check_resume(folder, config)
    write_json(os.path.join(folder, CONFIG), config.to_dict(), indent=1)


# --------------------------------------------------------------------------
# Checkpoints.


def checkpoint_dir(folder) -> str:
    return os.path.join(folder, CHECKPOINTS)


def checkpoint_of(model, step: tf.Variable, optimizer=None) -> tf.train.Checkpoint:
    """What a checkpoint holds: the model, the iteration (``step``) and, to resume
    training, the optimizer's state."""
    if optimizer is None:
        return tf.train.Checkpoint(model=model, step=step)
    return tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)


def latest_checkpoint(folder) -> Optional[str]:
    """The latest checkpoint listed in ``folder/checkpoints``, or None."""
    ckpt_dir = checkpoint_dir(folder)
    return tf.train.latest_checkpoint(ckpt_dir) if os.path.isdir(ckpt_dir) else None


def checkpoint_iteration(folder) -> Optional[int]:
    """The iteration of the latest checkpoint in ``folder``, or None."""
    latest = latest_checkpoint(folder)
    if latest is None:
        return None
    return int(tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def open_checkpoints(
    config: Config, checkpoint: tf.train.Checkpoint, say=print
) -> tf.train.CheckpointManager:
    """Make ``config.logdir`` ready for a run; returns its ``CheckpointManager``.

    Unreadable checkpoints are set aside (the note goes to ``say``), the resume rule is
    checked and ``config.json`` written, and the newest checkpoint, if any, is restored
    into ``checkpoint``. Call it holding the folder's lock.
    """
    ckpt_dir = checkpoint_dir(config.logdir)
    _, note = use_newest_readable_checkpoint(ckpt_dir)
    write_config(config)
    if note:
        say(note)
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=CHECKPOINTS_KEPT)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    return manager


def readable_checkpoint(folder, say=print) -> str:
    """The newest checkpoint of ``folder`` that reads back whole (newer unreadable ones
    are set aside, with a note to ``say``); ``NoCheckpointError`` if there is none."""
    ckpt_dir = checkpoint_dir(folder)
    latest, note = use_newest_readable_checkpoint(ckpt_dir)
    if note:
        say(note)
    if latest is None:
        raise NoCheckpointError(
            f"No checkpoint in {ckpt_dir}. Train first, e.g. `vae-prac train --out {folder}`.",
            folder,
        )
    return latest


def _read_whole(prefix: str):
    """Read every tensor of checkpoint ``prefix``: raises if a file is missing, cut short,
    or fails its checksums (each tensor's is checked as it is read)."""
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)


def _why_unreadable(error: Exception) -> str:
    text = str(error)
    if isinstance(error, IndexError) or "Read less bytes" in text:
        return "a file of it is cut short"
    if "hecksum" in text or "checksum mismatch" in text:
        return "its data fails its checksum"
    if isinstance(error, tf.errors.NotFoundError) or "No such file" in text:
        return "a file of it is missing"
    if "bad magic number" in text or "sstable" in text:
        return "its index file is damaged"
    return text.splitlines()[0][:120] if text else type(error).__name__


def newest_readable_checkpoint(ckpt_dir: str) -> tuple[Optional[str], list]:
    """The newest checkpoint in ``ckpt_dir`` that reads back whole, or None; and the newer
    ones that do not, as (path, why) pairs, newest first. Changes nothing."""
    state = tf.train.get_checkpoint_state(ckpt_dir) if os.path.isdir(ckpt_dir) else None
    if state is None:
        return None, []
    paths = list(state.all_model_checkpoint_paths)
    if state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    unreadable: list = []
    for path in reversed(paths):
        try:
            _read_whole(path)
            return path, unreadable
        except (tf.errors.OpError, IndexError, ValueError) as e:
            unreadable.append((path, _why_unreadable(e)))
    return None, unreadable


def use_newest_readable_checkpoint(ckpt_dir: str) -> tuple[Optional[str], Optional[str]]:
    """(the newest readable checkpoint of ``ckpt_dir`` or None, a one-line note or None).

    Newer checkpoints that cannot be read (a file cut short by a crash, a flipped bit)
    are renamed ``ckpt-N.damaged-TIME.*``, kept for inspection and never deleted, and
    the folder's ``checkpoint`` file no longer lists them, so training resumes from the
    newest readable one. The note says which, and why. Raises UnreadableCheckpointError
    when there are checkpoints and none can be read.
    """
    newest, unreadable = newest_readable_checkpoint(ckpt_dir)
    if not unreadable:
        return newest, None
    names = ", ".join(os.path.basename(p) for p, _ in unreadable)
    why = (
        unreadable[0][1]
        if len(unreadable) == 1
        else "; ".join(f"{os.path.basename(p)}: {reason}" for p, reason in unreadable)
    )
    folder = os.path.dirname(ckpt_dir)
    if newest is None:
        raise UnreadableCheckpointError(
            f"No checkpoint in {ckpt_dir} can be read ({why}). To train from iteration 0, "
            f"move {ckpt_dir} aside (or delete it); or use another folder.",
            folder,
        )
    try:
        # Under the folder's lock: not while another run writes its checkpoints.
        with run_lock.hold(folder, say=lambda line: None):
            aside = _set_aside(ckpt_dir, [p for p, _ in unreadable], newest)
        kept = f"kept aside as {', '.join(aside)}"
    except run_lock.RunLockedError:
        kept = "left in place while another run writes to this folder"
    except OSError as e:
        kept = f"left in place, as it could not be renamed ({e.strerror or e})"
    s = "s" if len(unreadable) > 1 else ""
    return newest, (
        f"Checkpoint{s} {names} in {ckpt_dir} cannot be read ({why}): {kept}; "
        f"using {os.path.basename(newest)}, the newest readable one."
    )


def _set_aside(ckpt_dir: str, damaged: list, newest: str) -> list:
    """Rename the files of the ``damaged`` checkpoints and list only the others in the
    folder's ``checkpoint`` file, with ``newest`` as the latest; returns the new names."""
    from google.protobuf import text_format

    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = []
    for prefix in damaged:
        aside = f"{prefix}.damaged-{stamp}"
        for path in glob.glob(glob.escape(prefix) + ".index") + glob.glob(
            glob.escape(prefix) + ".data-*"
        ):
            os.replace(path, aside + path[len(prefix) :])
        names.append(os.path.basename(aside))
    state = tf.train.get_checkpoint_state(ckpt_dir)
    paths = list(state.all_model_checkpoint_paths)
    times = list(state.all_model_checkpoint_timestamps)
    kept = [i for i, p in enumerate(paths) if p not in damaged]
    del state.all_model_checkpoint_paths[:], state.all_model_checkpoint_timestamps[:]
    # Relative names, as CheckpointManager writes them: the folder may be moved.
    state.all_model_checkpoint_paths.extend(os.path.basename(paths[i]) for i in kept)
    if len(times) == len(paths):
        state.all_model_checkpoint_timestamps.extend(times[i] for i in kept)
    state.model_checkpoint_path = os.path.basename(newest)

    def write(target):
        with open(target, "w") as f:
            f.write(text_format.MessageToString(state))

    write_atomically(os.path.join(ckpt_dir, "checkpoint"), write)
    return names


# --------------------------------------------------------------------------
# The history.


@dataclasses.dataclass
class History:
    """What training measured: one row every ``log_every`` iterations.

    ``test_elbo`` is filled every ``print_every`` iterations (NaN otherwise); ELBOs are
    nats per image; ``examples_per_sec`` is measured over the steps since the last row.
    """

    iteration: list = dataclasses.field(default_factory=list)
    train_elbo: list = dataclasses.field(default_factory=list)
    test_elbo: list = dataclasses.field(default_factory=list)
    examples_per_sec: list = dataclasses.field(default_factory=list)

    FIELDS = ("iteration", "train_elbo", "test_elbo", "examples_per_sec")

    def append(self, iteration, train_elbo, test_elbo=math.nan, examples_per_sec=math.nan):
        self.iteration.append(int(iteration))
        self.train_elbo.append(float(train_elbo))
        self.test_elbo.append(float(test_elbo))
        self.examples_per_sec.append(float(examples_per_sec))

    def __len__(self):
        return len(self.iteration)

    def rows(self):
        return [dict(zip(self.FIELDS, r)) for r in zip(*(getattr(self, f) for f in self.FIELDS))]

    def to_csv(self, path):
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.FIELDS)
            writer.writeheader()
            writer.writerows(self.rows())

    @classmethod
    def from_csv(cls, path) -> "History":
        history = cls()
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                history.append(*(float(row[k]) for k in cls.FIELDS))
        return history

    def to_json(self, path):
        """Write the history as JSON; a missing test ELBO (NaN) becomes null."""

        def clean(values):
            return [None if isinstance(v, float) and math.isnan(v) else v for v in values]

        with open(path, "w") as f:
            json.dump({k: clean(getattr(self, k)) for k in self.FIELDS}, f, indent=1)

    @property
    def last_test_elbo(self) -> float:
        tested = [v for v in self.test_elbo if not math.isnan(v)]
        return tested[-1] if tested else math.nan


def read_history(folder) -> History:
    """The history saved in ``folder/history.csv`` (empty if there is none)."""
    path = os.path.join(folder, HISTORY_CSV)
    return History.from_csv(path) if os.path.exists(path) else History()


def save_history(folder, history: History, start: int) -> History:
    """Write ``folder/history.csv``: the rows up to ``start`` it already held, then
    ``history``; returns the whole history written.

    ``train`` calls this just before every checkpoint, so a run killed outright (``kill
    -9``, out of memory, a power cut) keeps every row up to its last checkpoint, and a
    resumed run's history continues it with no row lost or repeated (rows after the
    checkpoint are measured again).
    """
    merged = History()
    if start:
        for row in read_history(folder).rows():
            if row["iteration"] <= start:
                merged.append(**row)
    for row in history.rows():
        merged.append(**row)
    write_atomically(os.path.join(folder, HISTORY_CSV), merged.to_csv)
    return merged


def save_history_json(folder, history: History):
    """Write ``folder/history.json``: the same rows, for programs that read JSON."""
    write_atomically(os.path.join(folder, HISTORY_JSON), history.to_json)


# --------------------------------------------------------------------------
# Figures and metrics.


def save_figure(fig, path):
    """Save a Matplotlib figure as a PNG file, atomically (closing it is the caller's)."""
    write_atomically(
        path, lambda target: fig.savefig(target, format="png", dpi=100, bbox_inches="tight")
    )


def read_metrics(folder) -> Optional[dict]:
    """The final evaluation saved in ``folder/metrics.json``, or None (none, or unreadable)."""
    try:
        with open(os.path.join(folder, METRICS)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_metrics(folder, metrics: dict):
    write_json(os.path.join(folder, METRICS), metrics)


# --------------------------------------------------------------------------
# Clean-up after a failure.


def remove_debris(folder, created: bool = False):
    """After a failure: remove what was left half-written in ``folder``; and if this
    command ``created`` it and no checkpoint was written, the files a run writes and the
    folder itself (nothing half-made is left). Only the files of a run are touched, and
    nothing is raised: cleaning up is a courtesy, the error being reported matters more.
    """
    if not os.path.isdir(folder):
        return
    try:
        for name in os.listdir(folder):
            if name.endswith(PARTIAL):
                os.remove(os.path.join(folder, name))
        remove_checkpoint_debris(folder)
        checkpoints = checkpoint_dir(folder)
        if created and not os.path.exists(os.path.join(checkpoints, "checkpoint")):
            for name in os.listdir(folder):
                if name in RUN_FILES or name.startswith(EVENTS_PREFIX):
                    os.remove(os.path.join(folder, name))
            if os.path.isdir(checkpoints) and not os.listdir(checkpoints):
                os.rmdir(checkpoints)
            if not os.listdir(folder):
                os.rmdir(folder)
    except OSError:
        pass


def remove_checkpoint_debris(folder):
    """Remove what a checkpoint save that failed half-way left in ``folder/checkpoints``:
    ``ckpt-N_temp/`` (TensorFlow writes there first), a temporary state file, or files of
    checkpoint N that the state file, which is written last, never listed. The saved
    checkpoints, and those set aside as damaged, stay. Raises nothing."""
    ckpt_dir = checkpoint_dir(folder)
    if not os.path.isdir(ckpt_dir):
        return
    try:
        state = tf.train.get_checkpoint_state(ckpt_dir)
        listed = re.search(r"ckpt-(\d+)$", state.model_checkpoint_path) if state else None
        latest = int(listed.group(1)) if listed else -1
        for name in os.listdir(ckpt_dir):
            path = os.path.join(ckpt_dir, name)
            # (not ckpt-N.damaged-*: unreadable checkpoints kept aside on purpose)
            number = re.match(r"ckpt-(\d+)(_temp|\.index$|\.data-)", name)
            if (
                name.startswith("checkpoint.tmp")
                or name.endswith(PARTIAL)
                or (number and (number.group(2) == "_temp" or int(number.group(1)) > latest))
            ):
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    except (OSError, ValueError, AttributeError, tf.errors.OpError):
        pass
