"""Faults a careless user or an unlucky machine brings: damaged checkpoints, a kill between
two writes, two runs on one folder, absurd sizes, too little memory, Ctrl-C at the end,
odd paths and wrong types. Each ends with a clear message (exit 2 on the command line, a
ValueError or TypeError in Python) and nothing lost.

The command-line cases run ``python -m vae_prac`` as a subprocess, as a user meets them;
their variants run in-process (``run_cli``), which saves TensorFlow's start-up.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_cli import history_iterations, one_line, run_cli

from vae_prac import Config, run_folder, run_lock, training

TINY = dict(latent_dim=4, hidden_size=16, print_every=100, log_every=50, n_eval=100)
SMALL = ["--eval-k", "0", "--no-progress"]


def ctrl_c_reaches_it():
    """In a child, before it runs: Ctrl-C (SIGINT) raises KeyboardInterrupt there.

    A test run as a background job of a non-interactive shell has SIGINT ignored, which
    its children inherit, and Python keeps an inherited SIG_IGN: without this the
    SIGINT of the tests below would do nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(process, timeout=120):
    """``process.communicate``; on a timeout the process is killed first, so that a
    failing test leaves no run behind taking the cores from the tests after it."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def vae_prac(*argv, timeout=300):
    """``python -m vae_prac ARGV`` in a subprocess: (exit status, stdout, stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "vae_prac", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def run300(tmp_path_factory):
    """A finished 300-iteration run with checkpoints at 100, 200 and 300."""
    logdir = tmp_path_factory.mktemp("faults") / "run"
    training.train(
        Config(n_iterations=300, logdir=str(logdir), **TINY), progress=False, verbose=False
    )
    return logdir


def copy_of(run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def damage(prefix, how):
    """Damage the data file of checkpoint ``prefix``: cut it short or flip one bit."""
    (path,) = prefix.parent.glob(prefix.name + ".data-*")
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    return bytes(raw)


def listed_checkpoints(run):
    return (run / "checkpoints" / "checkpoint").read_text()


# --- 1. a damaged latest checkpoint -----------------------------------------------------


@pytest.mark.slow
def test_resume_falls_back_past_a_truncated_latest_checkpoint(run300, tmp_path):
    run = copy_of(run300, tmp_path)
    damaged = damage(run / "checkpoints" / "ckpt-300", "truncated")
    status, out, err = vae_prac("train", "--out", run, "--n-iterations", "400", *SMALL)
    assert status == 0, err
    assert "Traceback" not in err
    notes = [line for line in out.splitlines() if "cannot be read" in line]
    assert len(notes) == 1, out
    assert notes[0].startswith(
        f"Checkpoint ckpt-300 in {run / 'checkpoints'} cannot be "
        f"read (a file of it is cut short): kept aside as "
        f"ckpt-300.damaged-"
    )
    assert notes[0].endswith("using ckpt-200, the newest readable one.")
    assert f"Resuming from {run / 'checkpoints' / 'ckpt-200'} at iteration 200." in out
    # Kept aside, byte for byte, and no longer listed; the run went on to 400.
    (aside,) = (run / "checkpoints").glob("ckpt-300.damaged-*.data-*")
    assert aside.read_bytes() == damaged
    assert len(list((run / "checkpoints").glob("ckpt-300.damaged-*.index"))) == 1
    assert "damaged" not in listed_checkpoints(run)
    assert run_folder.checkpoint_iteration(str(run)) == 400
    assert history_iterations(run) == [50, 100, 150, 200, 250, 300, 350, 400]


@pytest.mark.slow
def test_evaluate_falls_back_past_a_bit_flipped_latest_checkpoint(run300, tmp_path):
    run = copy_of(run300, tmp_path)
    damage(run / "checkpoints" / "ckpt-300", "flipped")
    status, out, err = vae_prac("evaluate", "--out", run, "--k", "2", "--n", "10", "--no-progress")
    assert status == 0, err
    assert "its data fails its checksum" in out and "using ckpt-200" in out
    assert "at iteration 200" in out
    assert list((run / "checkpoints").glob("ckpt-300.damaged-*.index"))
    assert not (run / "checkpoints" / "ckpt-300.index").exists()
    assert 'model_checkpoint_path: "ckpt-200"' in listed_checkpoints(run)


def test_restore_falls_back_and_leaves_the_folder_consistent(run300, tmp_path, capsys):
    run = copy_of(run300, tmp_path)
    damage(run / "checkpoints" / "ckpt-300", "flipped")
    damage(run / "checkpoints" / "ckpt-200", "truncated")
    model, iteration = training.restore(str(run))
    assert iteration == 100
    note = capsys.readouterr().out
    assert note.count("\n") == 1
    assert "Checkpoints ckpt-300, ckpt-200 in" in note and "using ckpt-100" in note
    # Set aside once: the next restore finds the folder consistent, and says nothing.
    assert training.restore(str(run))[1] == 100 and capsys.readouterr().out == ""
    assert run_folder.newest_readable_checkpoint(str(run / "checkpoints")) == (
        str(run / "checkpoints" / "ckpt-100"),
        [],
    )


def test_no_readable_checkpoint_exits_2_saying_what_to_do(run300, tmp_path):
    run = copy_of(run300, tmp_path)
    for n in (100, 200, 300):
        damage(run / "checkpoints" / f"ckpt-{n}", "truncated")
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    for command in (["train", "--out", run, *SMALL], ["sample", "--out", run]):
        status, _, err = run_cli(*command)
        assert status == 2, err
        line = one_line(err)
        assert f"No checkpoint in {run / 'checkpoints'} can be read" in line
        assert "move" in line and "another folder" in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


# --- 2. the history is written before the checkpoint ----------------------------------


@pytest.mark.slow
def test_a_kill_between_the_history_and_the_checkpoint_loses_no_row(tmp_path):
    # Killed right after the first of the two writes at iteration 200, whichever it is.
    run = tmp_path / "run"
    script = (
        "import os\n"
        "import tensorflow as tf\n"
        "from vae_prac import Config, run_folder, training\n"
        "real_history, real_save = (run_folder.save_history,\n"
        "                           tf.train.CheckpointManager.save)\n"
        "def history(logdir, history, start):\n"
        "    merged = real_history(logdir, history, start)\n"
        "    if history.iteration[-1] == 200:\n"
        "        os._exit(3)\n"
        "    return merged\n"
        "def save(self, checkpoint_number=None, **kwargs):\n"
        "    path = real_save(self, checkpoint_number=checkpoint_number, **kwargs)\n"
        "    if checkpoint_number == 200:\n"
        "        os._exit(3)\n"
        "    return path\n"
        "run_folder.save_history = history\n"
        "tf.train.CheckpointManager.save = save\n"
        f"training.train(Config(n_iterations=400, logdir={str(run)!r}, **{TINY!r}),\n"
        "               progress=False, verbose=False)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == 3, killed.stderr
    last = run_folder.checkpoint_iteration(str(run))
    assert history_iterations(run)[-1] >= last  # every row up to the checkpoint is there

    training.train(Config(n_iterations=400, logdir=str(run), **TINY), progress=False, verbose=False)
    assert history_iterations(run) == [50, 100, 150, 200, 250, 300, 350, 400]


# --- 3. one run at a time on a folder -------------------------------------------------


@pytest.mark.slow
def test_a_second_train_on_the_same_out_exits_2_naming_the_first(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vae_prac",
            "train",
            "--out",
            run,
            "--threads",
            "1",
            "--n-iterations",
            "1000000",
            "--print-every",
            "1000",
            "--log-every",
            "100",
            "--latent-dim",
            "4",
            "--hidden-size",
            "16",
            *SMALL,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_it,
    )
    try:
        lock = run / run_lock.LOCK_NAME
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.2)
        assert json.loads(lock.read_text())["pid"] == first.pid
        # Paused, it still holds the lock, and leaves the cores to the second run.
        first.send_signal(signal.SIGSTOP)

        status, _, err = vae_prac("train", "--out", run, *SMALL)
        assert status == 2
        line = one_line(err)
        assert f"{run} is in use by another run: process {first.pid}" in line
        assert "python -m vae_prac train --out" in line and "another folder" in line
    finally:
        first.send_signal(signal.SIGCONT)
        first.send_signal(signal.SIGINT)  # Ctrl-C: the first run stops and lets go
        out, err = finish(first)
    assert first.returncode == 130, err
    assert not lock.exists()


@pytest.mark.slow
def test_a_stale_lock_is_taken_over_with_a_note(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # Left by a process that was killed (its lock ended with it; the file stayed).
    (run / run_lock.LOCK_NAME).write_text(
        json.dumps({"pid": 4194999, "started": "2026-01-01 00:00:00", "command": "vae-prac train"})
    )
    status, out, err = run_cli(
        "train",
        "--out",
        run,
        "--n-iterations",
        "100",
        "--latent-dim",
        "4",
        "--hidden-size",
        "16",
        "--print-every",
        "100",
        "--n-eval",
        "100",
        *SMALL,
    )
    assert status == 0, err
    (note,) = [line for line in out.splitlines() if "Taking over" in line]
    assert "process 4194999" in note and "ended without releasing it" in note
    assert not (run / run_lock.LOCK_NAME).exists()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_train_releases_the_lock_however_it_ends(tmp_path, error):
    logdir = tmp_path / "run"

    def stop(model, iteration, history):
        raise error("stop")

    config = Config(n_iterations=100, logdir=str(logdir), **TINY)
    if error is KeyboardInterrupt:
        assert training.train(config, hooks=[stop], progress=False, verbose=False).interrupted
    else:
        with pytest.raises(RuntimeError, match="stop"):
            training.train(config, hooks=[stop], progress=False, verbose=False)
    assert not (logdir / run_lock.LOCK_NAME).exists()
    assert training.train(config, progress=False, verbose=False).iteration == 100


@pytest.mark.skipif(sys.platform == "win32", reason="the holder below uses fcntl")
def test_another_process_holding_the_lock_stops_train_in_python(tmp_path):
    logdir = tmp_path / "run"
    logdir.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(logdir / run_lock.LOCK_NAME)!r}, 'a+')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            'f.write(\'{"pid": %d, "started": "now"}\' % __import__(\'os\').getpid())\n'
            "f.flush(); print('held', flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(run_lock.RunLockedError, match=f"process {holder.pid}"):
            training.train(
                Config(n_iterations=100, logdir=str(logdir), **TINY), progress=False, verbose=False
            )
        assert not (logdir / "config.json").exists()  # refused before any write
    finally:
        holder.kill()
        holder.wait()


# --- 4. absurd sizes and too little memory ---------------------------------------------


@pytest.mark.parametrize(
    "flag, value, says",
    [
        ("--latent-dim", "1000000000", "the limit is 2**31 - 1"),
        ("--hidden-size", "100000000", "the limit is 2**31 - 1"),
        ("--batch-size", "1000000000", "batch_size must not exceed the 60000 training images"),
        ("--batch-size", "60001", "batch_size must not exceed the 60000 training images"),
        ("--n-samples", "100000000", "batch_size * Config.n_samples * 784"),
    ],
)
def test_absurd_sizes_exit_2_before_anything_is_written(tmp_path, flag, value, says):
    out = tmp_path / "run"
    if flag == "--hidden-size":  # one as a user meets it; the others in-process
        status, _, err = vae_prac("train", "--out", out, flag, value)
    else:
        status, _, err = run_cli("train", "--out", out, flag, value)
    assert status == 2
    line = one_line(err)
    assert says in line and value in line.replace(",", "")
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux's")
def test_a_size_beyond_the_memory_exits_2_saying_how_much_and_leaves_nothing(tmp_path):
    # Within the rules (1.9e9 weights) but not within 2 GiB more than the process has.
    out = tmp_path / "run"
    script = (
        "import resource, sys\n"
        "from vae_prac import cli, data\n"
        "data.load_mnist('train'), data.load_mnist('test')\n"
        "size = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + (2 << 30), resource.RLIM_INFINITY))\n"
        f"sys.exit(cli.main(['train', '--out', {str(out)!r}, '--hidden-size', '30000',\n"
        "                    '--n-iterations', '100', '--eval-k', '0', '--no-progress']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert line.startswith("vae-prac train: error: out of memory: allocating a tensor of shape [")
    assert "1,856,160,984 weights" in line and "GiB" in line and "--hidden-size" in line
    assert not out.exists()


# --- 5. the other commands, paths, and Ctrl-C at the end -------------------------------


def test_evaluate_and_sample_without_a_checkpoint_exit_2(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(Config(**TINY).to_dict()))
    (tmp_path / "checkpoints").mkdir()
    for command in ("evaluate", "sample"):
        status, _, err = run_cli(command, "--out", tmp_path)
        assert status == 2, command
        line = one_line(err)
        assert "No checkpoint in" in line and f"vae-prac train --out {tmp_path}" in line


@pytest.mark.parametrize(
    "n, says",
    [
        ("0", "expected a positive integer"),
        ("-5", "expected a positive integer"),
        ("10000000", "at most 1000 digits"),
    ],
)
def test_sample_counts_out_of_range_exit_2_in_one_line(run300, n, says):
    status, _, err = run_cli("sample", "--out", run300, "--n", n)
    assert status == 2
    line = one_line(err)
    assert says in line and "vae-prac sample --help" in line


@pytest.mark.slow
def test_out_paths_with_spaces_and_non_ascii_characters(tmp_path):
    out = tmp_path / "my runs" / "évaluation ü 模型"
    status, stdout, err = vae_prac(
        "train",
        "--out",
        out,
        "--n-iterations",
        "100",
        "--print-every",
        "100",
        "--log-every",
        "100",
        "--n-eval",
        "100",
        "--latent-dim",
        "4",
        "--hidden-size",
        "16",
        *SMALL,
    )
    assert status == 0, err
    assert f"Outputs in {out}: config.json, checkpoints/" in stdout
    status, stdout, err = run_cli(
        "evaluate", "--out", out, "--k", "2", "--n", "10", "--no-progress"
    )
    assert status == 0 and "at iteration 100" in stdout, err
    status, stdout, err = run_cli("sample", "--out", out, "--n", "4")
    assert status == 0 and (out / "samples.png").is_file(), err


@pytest.mark.slow
def test_ctrl_c_during_the_final_evaluation_exits_130_and_loses_nothing(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vae_prac",
            "train",
            "--out",
            run,
            "--n-iterations",
            "100",
            "--print-every",
            "100",
            "--log-every",
            "100",
            "--n-eval",
            "100",
            "--latent-dim",
            "4",
            "--hidden-size",
            "16",
            "--eval-k",
            "100000",
            "--eval-n",
            "1000",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=ctrl_c_reaches_it,
    )
    lines = []
    for line in process.stdout:  # the test ELBO is printed before the long estimate
        lines.append(line)
        if line.startswith("Iteration 100: test ELBO"):
            time.sleep(1)
            process.send_signal(signal.SIGINT)
            break
    out, err = finish(process)
    out = "".join(lines) + out
    assert process.returncode == 130, out + err
    assert (
        f"Interrupted during the final evaluation. The trained model (checkpoint at "
        f"iteration 100), its history and figures are in {run}" in out
    )
    assert "Traceback" not in err
    assert not (run / "metrics.json").exists() and (run / "elbo_curve.png").is_file()
    assert not (run / run_lock.LOCK_NAME).exists()
    # The same command again measures the finished run.
    status, out, err = run_cli(
        "train", "--out", run, "--n-iterations", "100", "--n-eval", "100", *SMALL
    )
    assert status == 0 and "is finished" in out, err
    assert json.loads((run / "metrics.json").read_text())["iteration"] == 100


# --- 6. the Python API given wrong types -------------------------------------------------


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("latent_dim", "8", "Pass a number, not the string '8'"),
        ("n_iterations", 10.0, "Pass an int: 10, not 10.0"),
        ("batch_size", np.float32(64), "Pass an int: 64"),
    ],
)
def test_config_says_how_to_fix_a_number_of_the_wrong_type(field, value, says):
    with pytest.raises(ValueError, match=rf"^Config\.{field} must be .*{says}"):
        Config(**{field: value})


def test_train_refuses_wrong_arguments_before_writing(tmp_path):
    logdir = tmp_path / "run"
    config = Config(n_iterations=100, logdir=str(logdir), **TINY)
    with pytest.raises(TypeError, match=r"Config\.from_dict"):
        training.train(config.to_dict())
    grey = np.full((10, 28, 28), 200, np.uint8)  # grey levels, not binary pixels
    with pytest.raises(ValueError, match=r"eval_x must be binarized.*binarize"):
        training.train(config, eval_x=grey, progress=False)
    nan = np.zeros((10, 784), np.float32)
    nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="eval_x contains NaN"):
        training.train(config, eval_x=nan, progress=False)
    with pytest.raises(ValueError, match="divide by 255"):
        training.train(config, train_images=np.full((100, 28, 28), 200.0), progress=False)
    with pytest.raises(ValueError, match=r"shape \(100, 784\)"):
        training.train(config, train_images=np.zeros((100, 784), np.uint8), progress=False)
    assert not logdir.exists()
