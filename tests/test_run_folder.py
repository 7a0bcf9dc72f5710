"""The run folder's own rules (vae_prac.run_folder), on folders made here in a moment: an
atomic write leaves nothing half-written, the network sizes cannot change on resume, a
damaged checkpoint is set aside, the history continues, debris is removed.

The checkpoints here hold only an iteration count and one weight vector: what is checked
does not depend on what a checkpoint holds. Whole training runs are test_training's,
test_cli's and test_faults'.
"""

import errno
import json
import math
import os

import pytest
import tensorflow as tf

from vae_prac import run_folder
from vae_prac.config import Config
from vae_prac.run_folder import History


def write_checkpoints(folder, iterations=(100, 200, 300)):
    """Checkpoints of a run in ``folder/checkpoints``, as train() saves them."""
    step = tf.Variable(0, dtype=tf.int64)
    weights = tf.Variable(tf.zeros([2000]))
    checkpoint = tf.train.Checkpoint(step=step, weights=weights)
    manager = tf.train.CheckpointManager(
        checkpoint, run_folder.checkpoint_dir(folder), max_to_keep=run_folder.CHECKPOINTS_KEPT
    )
    for it in iterations:
        step.assign(it)
        weights.assign(tf.fill([2000], float(it)))
        manager.save(checkpoint_number=it)


def cut_short(folder, n):
    (path,) = (folder / "checkpoints").glob(f"ckpt-{n}.data-*")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return raw[: len(raw) // 2]


# --- the one atomic write ----------------------------------------------------------------


def test_a_write_that_fails_half_way_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "metrics.json"
    run_folder.write_json(path, {"test_elbo": -100.0})

    def half_then_full(target):
        with open(target, "w") as f:
            f.write('{"test_el')
        raise OSError(errno.ENOSPC, "No space left on device", target)

    with pytest.raises(OSError) as failed:
        run_folder.write_atomically(path, half_then_full)
    assert failed.value.filename == str(path)  # the file the user knows of, not .partial
    assert json.loads(path.read_text()) == {"test_elbo": -100.0}
    assert os.listdir(tmp_path) == ["metrics.json"]

    with pytest.raises(ValueError):  # any error: a new file is not created half-made
        run_folder.write_atomically(
            tmp_path / "new.json", lambda target: (open(target, "w").write("{"), json.loads("{"))
        )
    assert os.listdir(tmp_path) == ["metrics.json"]


# --- config.json and the resume rule -------------------------------------------------


def test_read_config_none_older_and_damaged(tmp_path):
    assert run_folder.read_config(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"latent_dim": 8}))  # an older file
    assert run_folder.read_config(tmp_path) == Config(latent_dim=8)
    (tmp_path / "config.json").write_text('{"latent_dim": 8, "colour": "blue"}')
    with pytest.raises(run_folder.BadConfigError, match="colour") as bad:
        run_folder.read_config(tmp_path)
    assert bad.value.path == str(tmp_path / "config.json") and bad.value.folder == str(tmp_path)
    assert isinstance(bad.value, ValueError)


def test_network_sizes_cannot_change_once_there_is_a_checkpoint(tmp_path):
    config = Config(latent_dim=8, hidden_size=32, logdir=str(tmp_path))
    run_folder.write_config(config)
    # Before any checkpoint, nothing is fixed: a new run may take other sizes.
    run_folder.write_config(config.replace(latent_dim=4))
    run_folder.write_config(config)
    write_checkpoints(tmp_path, [100])
    assert run_folder.checkpoint_iteration(tmp_path) == 100

    other = config.replace(latent_dim=4, activation="tanh", n_iterations=20000)
    with pytest.raises(run_folder.NetworkSizesChangedError, match="latent_dim=8") as refused:
        run_folder.write_config(other)
    assert refused.value.changes == [("latent_dim", 8, 4), ("activation", "relu", "tanh")]
    assert isinstance(refused.value, ValueError)  # as train() has always raised
    assert run_folder.read_config(tmp_path) == config  # refused before any write

    # Every other setting may change: n_iterations to train further, the learning rate...
    longer = config.replace(n_iterations=20000, learning_rate=1e-4)
    assert run_folder.check_resume(tmp_path, longer) == config
    run_folder.write_config(longer)
    assert run_folder.read_config(tmp_path) == longer


# --- checkpoints -------------------------------------------------------------------------


def test_a_damaged_checkpoint_is_set_aside_and_the_newest_readable_one_used(tmp_path):
    write_checkpoints(tmp_path)
    ckpt_dir = run_folder.checkpoint_dir(tmp_path)
    damaged = cut_short(tmp_path, 300)
    assert run_folder.newest_readable_checkpoint(ckpt_dir) == (
        os.path.join(ckpt_dir, "ckpt-200"),
        [(os.path.join(ckpt_dir, "ckpt-300"), "a file of it is cut short")],
    )

    latest, note = run_folder.use_newest_readable_checkpoint(ckpt_dir)
    assert latest == os.path.join(ckpt_dir, "ckpt-200")
    assert note.startswith(
        f"Checkpoint ckpt-300 in {ckpt_dir} cannot be read (a file of "
        f"it is cut short): kept aside as ckpt-300.damaged-"
    )
    # Kept byte for byte, no longer listed; the folder is consistent again.
    (aside,) = (tmp_path / "checkpoints").glob("ckpt-300.damaged-*.data-*")
    assert aside.read_bytes() == damaged
    assert not (tmp_path / "checkpoints" / "ckpt-300.index").exists()
    assert "ckpt-300" not in (tmp_path / "checkpoints" / "checkpoint").read_text()
    assert run_folder.checkpoint_iteration(tmp_path) == 200
    assert run_folder.use_newest_readable_checkpoint(ckpt_dir) == (latest, None)
    assert not list((tmp_path / "checkpoints").glob("*.partial"))


def test_no_readable_checkpoint_changes_nothing_and_says_what_to_do(tmp_path):
    write_checkpoints(tmp_path, [100, 200])
    for n in (100, 200):
        cut_short(tmp_path, n)
    before = sorted(os.listdir(tmp_path / "checkpoints"))
    with pytest.raises(
        run_folder.UnreadableCheckpointError, match="move .* aside .*another folder"
    ) as unreadable:
        run_folder.readable_checkpoint(tmp_path)
    assert unreadable.value.folder == str(tmp_path)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == before
    with pytest.raises(run_folder.NoCheckpointError, match="Train first"):
        run_folder.readable_checkpoint(tmp_path / "elsewhere")


# --- the history ----------------------------------------------------------------------------


def test_the_history_continues_from_the_checkpoint(tmp_path):
    first = History()
    for it in (50, 100, 150):  # a run stopped after its row at 150, checkpoint at 100
        first.append(it, -200.0 + it, -210.0 if it % 100 == 0 else math.nan, 1000.0)
    assert run_folder.save_history(tmp_path, first, start=0).iteration == [50, 100, 150]
    resumed = History()
    for it in (150, 200):
        resumed.append(it, -40.0, math.nan, 900.0)
    merged = run_folder.save_history(tmp_path, resumed, start=100)
    assert merged.iteration == [50, 100, 150, 200]
    assert merged.train_elbo[2] == -40.0  # measured again, not repeated
    saved = run_folder.read_history(tmp_path)
    assert (saved.iteration, saved.train_elbo) == (merged.iteration, merged.train_elbo)
    run_folder.save_history_json(tmp_path, merged)
    assert json.loads((tmp_path / "history.json").read_text())["test_elbo"] == [
        None,
        -210.0,
        None,
        None,
    ]


# --- clean-up after a failure --------------------------------------------------------------


def test_debris_is_removed_and_the_saved_checkpoints_stay(tmp_path):
    write_checkpoints(tmp_path, [100])
    ckpt = tmp_path / "checkpoints"
    (ckpt / "ckpt-200_temp").mkdir()  # a save that failed half-way
    (ckpt / "ckpt-200.index").write_bytes(b"half")  # never listed
    (ckpt / "ckpt-50.damaged-20260101-000000.index").write_bytes(b"kept aside")
    (tmp_path / "history.csv.partial").write_text("iteration,")
    run_folder.remove_debris(tmp_path, created=True)  # it has a checkpoint: it stays
    assert sorted(os.listdir(ckpt)) == [
        "checkpoint",
        "ckpt-100.data-00000-of-00001",
        "ckpt-100.index",
        "ckpt-50.damaged-20260101-000000.index",
    ]
    assert os.listdir(tmp_path) == ["checkpoints"]


def test_a_folder_created_by_a_failed_run_without_checkpoint_is_removed(tmp_path):
    folder = tmp_path / "run"
    run_folder.write_config(Config(logdir=str(folder)))
    (folder / "events.out.tfevents.1.host").write_bytes(b"")
    (folder / "notes.txt").write_text("mine")  # not a file of a run: kept, and so is folder
    run_folder.remove_debris(folder, created=True)
    assert os.listdir(folder) == ["notes.txt"]
    (folder / "notes.txt").unlink()
    run_folder.write_config(Config(logdir=str(folder)))
    run_folder.remove_debris(folder, created=False)  # not created by this command: kept
    assert os.listdir(folder) == ["config.json"]
    run_folder.remove_debris(folder, created=True)
    assert not folder.exists()
