"""End-to-end tests of the `vae-prac` command line, on small real training runs.

The commands run in-process (``cli.main``), which saves TensorFlow's start-up time per
call; one test runs ``python -m vae_prac`` as a subprocess to check the module entry.
The runs are small (latent 8, hidden 32, a few hundred iterations): what is checked
(files, resuming, error handling) does not depend on the network size.
"""

import argparse
import contextlib
import dataclasses
import errno
import inspect
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from vae_prac import cli, run_folder, training
from vae_prac.config import CHOICES, Config

SMALL = [
    "--print-every",
    "100",
    "--log-every",
    "100",
    "--n-eval",
    "500",
    "--eval-k",
    "20",
    "--eval-n",
    "50",
    "--latent-dim",
    "8",
    "--hidden-size",
    "32",
    "--no-progress",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(*argv):
    """Run ``vae-prac ARGV`` in-process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as e:  # argparse's own errors, --help, --version
            status = e.code
    return status, out.getvalue(), err.getvalue()


def history_iterations(run_dir):
    return [int(r["iteration"]) for r in training.History.from_csv(run_dir / "history.csv").rows()]


def number_after(label, text):
    """The float printed right after ``label`` (e.g. 'test ELBO -91.23')."""
    match = re.search(re.escape(label) + r" (-?\d+(?:\.\d+)?)", text)
    assert match, f"no {label!r} followed by a number in:\n{text}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 200-iteration run: (directory, exit status, stdout, stderr)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    status, out, err = run_cli("train", "--out", run_dir, "--n-iterations", "200", *SMALL)
    return run_dir, status, out, err


def test_train_writes_every_output(trained):
    run_dir, status, out, err = trained
    assert status == 0, err
    for name in (
        "config.json",
        "history.csv",
        "history.json",
        "posterior_prior.png",
        "prior_means.png",
        "elbo_curve.png",
        "metrics.json",
    ):
        assert (run_dir / name).is_file(), name
    for name in ("posterior_prior.png", "prior_means.png", "elbo_curve.png"):
        assert (run_dir / name).read_bytes()[:8] == PNG_MAGIC, name
    # The last line lists what is really there, the metrics and the events included.
    listed = out.strip().splitlines()[-1]
    events = ", events.out.tfevents.* (TensorBoard summaries, 1 file)"
    assert listed.startswith(f"Outputs in {run_dir}: config.json, checkpoints/, ")
    assert listed.endswith(events)
    for entry in listed[: -len(events)].split(": ", 1)[1].split(", "):
        assert (run_dir / entry.rstrip("/")).exists(), entry
    assert "metrics.json" in listed and "prior_means.png" in listed
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert list((run_dir / "checkpoints").glob("ckpt-200.index"))

    config = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert (config.latent_dim, config.hidden_size, config.n_iterations) == (8, 32, 200)
    assert config.logdir == str(run_dir)

    assert history_iterations(run_dir) == [100, 200]
    history = json.loads((run_dir / "history.json").read_text())
    assert history["iteration"] == [100, 200]
    assert all(math.isfinite(v) for v in history["test_elbo"])  # print_every = log_every


def test_train_prints_finite_test_elbo_and_log_px(trained):
    run_dir, status, out, _ = trained
    assert status == 0
    test_elbo = number_after("Iteration 200: test ELBO", out)
    log_px = number_after("log p(x)", out)
    for value in (test_elbo, log_px):
        assert math.isfinite(value) and value < 0
    # A Bernoulli model of 784 pixels starts near -543 nats (every pixel a coin flip);
    # 200 steps must have learned something.
    assert test_elbo > -400
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["iteration"] == 200 and metrics["k"] == 20 and metrics["n"] == 50
    assert round(metrics["test_elbo"], 2) == test_elbo


@pytest.mark.slow
def test_train_resumes_from_the_checkpoint(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    before = training.History.from_csv(run_dir / "history.csv").rows()

    status, out, err = run_cli(
        "train", "--out", run_dir, "--n-iterations", "300", "--eval-k", "0", "--no-progress"
    )
    assert status == 0, err
    assert re.search(r"Resuming from .*ckpt-200 at iteration 200", out), out
    assert "Iteration    100" not in out  # the first 200 iterations were not redone
    # The flags not given were taken from the saved config.json (latent 8, hidden 32).
    assert "latent_dim=8, hidden_size=32" in out
    assert history_iterations(run_dir) == [100, 200, 300]
    assert training.History.from_csv(run_dir / "history.csv").rows()[:2] == before
    assert run_folder.checkpoint_iteration(str(run_dir)) == 300
    assert "log p(x)" not in out  # --eval-k 0 skips the estimate


def test_train_refuses_to_resume_with_other_network_sizes(trained):
    run_dir = trained[0]
    status, _, err = run_cli("train", "--out", run_dir, "--hidden-size", "64")
    assert status == 2
    assert "--hidden-size 64 (saved: 32)" in err and "another --out" in err
    assert "Traceback" not in err


def test_evaluate_restores_and_measures(trained):
    run_dir = trained[0]
    status, out, err = run_cli(
        "evaluate", "--out", run_dir, "--k", "10", "--n", "100", "--no-progress"
    )
    assert status == 0, err
    assert "at iteration 200" in out and "threshold binarization" in out
    assert math.isfinite(number_after("test ELBO", out))
    assert re.search(r"log p\(x\) -\d+\.\d+ ± \d+\.\d+ nats per image", out), out


def test_sample_writes_a_png(trained, tmp_path):
    run_dir = trained[0]
    status, out, err = run_cli("sample", "--out", run_dir, "--n", "12")
    assert status == 0, err
    assert (run_dir / "samples.png").read_bytes()[:8] == PNG_MAGIC
    png = tmp_path / "figures" / "means.png"
    status, out, err = run_cli("sample", "--out", run_dir, "--n", "4", "--mean", "--png", png)
    assert status == 0, err
    assert png.read_bytes()[:8] == PNG_MAGIC and "prior means" in out
    # Binary draws and decoder means get different default names.
    status, out, err = run_cli("sample", "--out", run_dir, "--n", "4", "--mean")
    assert status == 0, err
    assert (run_dir / "means.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_interrupted_training_keeps_outputs_and_resumes(tmp_path, monkeypatch):
    """Ctrl-C during training: train() stops cleanly, the CLI writes what it has."""
    run_dir = tmp_path / "run"
    calls = []

    def interrupt_on_second_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # at iteration 200, after the checkpoint at 100
            raise KeyboardInterrupt
        return real_evaluate_elbo(*args, **kwargs)

    real_evaluate_elbo = training.evaluate_elbo
    monkeypatch.setattr(training, "evaluate_elbo", interrupt_on_second_call)
    status, out, err = run_cli("train", "--out", run_dir, "--n-iterations", "200", *SMALL)
    assert status == 130, err
    assert "Interrupted at iteration 200" in out
    assert "last checkpoint is at iteration 100" in out
    assert history_iterations(run_dir) == [100]
    assert (run_dir / "elbo_curve.png").is_file()

    monkeypatch.setattr(training, "evaluate_elbo", real_evaluate_elbo)
    status, out, err = run_cli("train", "--out", run_dir, "--n-iterations", "200", *SMALL)
    assert status == 0, err
    assert "at iteration 100" in out
    assert history_iterations(run_dir) == [100, 200]


def test_non_finite_loss_exits_1_with_the_message(tmp_path, monkeypatch):
    def diverge(config, **kwargs):
        raise training.NonFiniteLossError(
            7, training.TrainResult(model=None, history=training.History(), iteration=7)
        )

    monkeypatch.setattr(training, "train", diverge)
    status, _, err = run_cli("train", "--out", tmp_path / "run", *SMALL)
    assert status == 1
    assert "NaN or Inf at iteration 7" in err and "Traceback" not in err


def test_data_prints_verified_files():
    status, out, err = run_cli("data")
    assert status == 0, err
    assert out.startswith("MNIST found in")
    assert len(re.findall(r"raw SHA-256 OK$", out, flags=re.M)) == 4


def test_bad_setting_exits_2_with_a_message(tmp_path):
    status, _, err = run_cli("train", "--out", tmp_path / "run", "--latent-dim", "0")
    assert status == 2
    assert "latent_dim must be a positive integer, got 0" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written for a bad setting
    (tmp_path / "a-file").write_text("not a directory")
    status, _, err = run_cli("train", "--out", tmp_path / "a-file")
    assert status == 2 and "is a file" in err


def test_missing_data_dir_exits_2_naming_it(tmp_path, monkeypatch):
    # A mirror that does not exist: the download fails at once, without the network.
    monkeypatch.setenv("VAE_PRAC_MNIST_MIRROR", (tmp_path / "no-mirror").as_uri())
    missing = tmp_path / "no-mnist-here"
    status, _, err = run_cli("train", "--out", tmp_path / "run", "--data-dir", missing, *SMALL)
    assert status == 2
    assert str(missing) in err and "Traceback" not in err
    status, _, err = run_cli("data", "--data-dir", missing)
    assert status == 2
    assert str(missing) in err and "vae-prac data --download" in err


def test_evaluate_and_sample_need_a_trained_run(tmp_path):
    for command in ("evaluate", "sample"):
        status, _, err = run_cli(command, "--out", tmp_path)
        assert status == 2, command
        assert "Train first: vae-prac train --out" in err
    (tmp_path / "config.json").write_text(json.dumps(Config().to_dict()))
    status, _, err = run_cli("evaluate", "--out", tmp_path)
    assert status == 2 and "No checkpoint in" in err


def test_no_command_and_bad_arguments_exit_2():
    assert run_cli()[0] == 2
    status, _, err = run_cli("evaluate", "--out", "x", "--k", "0")
    assert status == 2 and "positive integer" in err


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "vae_prac", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    from vae_prac import __version__

    assert result.stdout.strip() == f"vae-prac {__version__}"


def test_grade_delegates_to_the_grading_module(tmp_path):
    pytest.importorskip("vae_prac.course.grading")
    nbformat = pytest.importorskip("nbformat")
    status, _, err = run_cli("grade", tmp_path / "missing.ipynb")
    assert status == 2 and "no such notebook" in err

    # Not a notebook of the series, and its printed line proves nothing: a row saying so.
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('[check demo] passed')")]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    csv_path = tmp_path / "grades.csv"
    status, out, err = run_cli(
        "grade", path, "--timeout", "120", "--memory-limit", "4", "--csv", csv_path
    )
    assert status == 0, err
    assert "demo" in out and "0/?" in out and "not a notebook of this series" in out
    assert csv_path.is_file() and "not a notebook of this series" in csv_path.read_text()
    status, _, err = run_cli("grade", path, "--memory-limit", "0")
    assert status == 2 and "memory-limit" in err
    status, _, err = run_cli("grade", path, "--solutions", tmp_path / "nowhere")
    assert status == 2 and "no solution notebooks" in err and "--solutions" in err


@pytest.mark.slow
def test_train_may_change_network_sizes_before_any_checkpoint(tmp_path):
    # A run interrupted before its first checkpoint left only config.json: a new run with
    # other sizes starts afresh instead of failing.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"latent_dim": 8, "hidden_size": 32}))
    status, out, err = run_cli(
        "train",
        "--out",
        run_dir,
        "--latent-dim",
        "4",
        "--hidden-size",
        "16",
        "--n-iterations",
        "100",
        "--print-every",
        "100",
        "--log-every",
        "100",
        "--n-eval",
        "100",
        "--eval-k",
        "0",
        "--no-progress",
    )
    assert status == 0, err
    assert json.loads((run_dir / "config.json").read_text())["latent_dim"] == 4


@pytest.mark.slow
def test_history_survives_a_hard_kill(tmp_path):
    # A run killed outright (SIGKILL: no cleanup at all) right after its checkpoint at
    # iteration 200, then resumed from the command line: one continuous history.
    run_dir = tmp_path / "run"
    script = (
        "import os, signal\n"
        "from vae_prac import Config, train\n"
        "def kill(model, iteration, history):\n"
        "    if iteration == 200:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "train(Config(latent_dim=4, hidden_size=16, n_iterations=400, print_every=100,\n"
        f"             log_every=50, n_eval=100, logdir={str(run_dir)!r}),\n"
        "      hooks=[kill], progress=False, verbose=False)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert history_iterations(run_dir) == [50, 100, 150, 200]
    before = training.History.from_csv(run_dir / "history.csv").rows()
    assert not list(run_dir.glob("*.partial"))

    status, out, err = run_cli(
        "train", "--out", run_dir, "--n-iterations", "400", "--eval-k", "0", "--no-progress"
    )
    assert status == 0, err
    assert "Resuming" in out
    assert history_iterations(run_dir) == [50, 100, 150, 200, 250, 300, 350, 400]
    after = training.History.from_csv(run_dir / "history.csv").rows()[:4]
    assert [(r["iteration"], r["train_elbo"]) for r in after] == [
        (r["iteration"], r["train_elbo"]) for r in before
    ]  # kept, not measured again
    assert json.loads((run_dir / "history.json").read_text())["iteration"][-1] == 400


# --- the file system refusing: one line, exit 2, nothing half-written ---------------


def _is_root():
    return sys.platform.startswith("linux") and os.geteuid() == 0


@contextlib.contextmanager
def read_only(folder):
    """``folder`` made read-only: by its mode, or for root (whom modes do not stop) by a
    read-only bind mount of it onto itself."""
    if not _is_root():
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(mode)
        return
    if subprocess.run(["mount", "--bind", folder, folder], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here, so no read-only folder for root")
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", folder, folder], check=True, capture_output=True
        )
        yield
    finally:
        subprocess.run(["umount", "-l", folder], capture_output=True)


@contextlib.contextmanager
def small_disk(folder, size_kib):
    """A real file system of ``size_kib`` KiB at ``folder`` (a tmpfs: Linux, as root)."""
    if not _is_root():
        pytest.skip("a full disk is a small tmpfs here, which only root may mount")
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", folder],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], capture_output=True)


def one_line(err):
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vae-prac "), err
    return lines[0]


def no_debris(run_dir):
    assert not list(run_dir.rglob("*_temp")), list(run_dir.rglob("*_temp"))
    assert not list(run_dir.rglob("*.partial")) and not list(run_dir.rglob("*.tmp*"))


def test_out_below_a_file_exits_2_naming_it(tmp_path, trained):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    status, _, err = run_cli("train", "--out", blocker / "run", *SMALL)
    assert status == 2
    line = one_line(err)
    assert f"is below {blocker}, which is a file, not a folder" in line
    assert blocker.read_text() == "not a folder"
    # evaluate --json and sample --png are checked before any work is done.
    status, _, err = run_cli("evaluate", "--out", trained[0], "--json", blocker / "m.json")
    assert status == 2 and str(blocker) in one_line(err) and "--json" in err
    status, _, err = run_cli("sample", "--out", trained[0], "--png", blocker / "s.png")
    assert status == 2 and str(blocker) in one_line(err) and "--png" in err


def test_a_read_only_out_exits_2_naming_it(tmp_path, trained):
    folder = tmp_path / "shared"
    folder.mkdir()
    shutil.copytree(trained[0], folder / "run")
    with read_only(folder):
        status, _, err = run_cli("train", "--out", folder / "new", *SMALL)
        assert status == 2
        assert f"{folder} is read-only" in one_line(err) and "--out" in err
        status, _, err = run_cli("train", "--out", folder / "run", "--n-iterations", "300", *SMALL)
        assert status == 2 and f"{folder / 'run'} is read-only" in one_line(err)
        status, _, err = run_cli("sample", "--out", folder / "run")
        assert status == 2 and "read-only" in one_line(err) and "--png" in err
    assert not (folder / "new").exists()
    assert sorted(p.name for p in (folder / "run").iterdir()) == sorted(
        p.name for p in trained[0].iterdir()
    )


def test_a_write_refused_during_the_run_exits_2_and_removes_the_empty_out(tmp_path, monkeypatch):
    # What the check beforehand cannot foresee (permissions changed meanwhile, a network
    # file system's own rules): the OSError itself becomes the one line.
    run_dir = tmp_path / "run"

    def refuse(config):
        path = os.path.join(config.logdir, "config.json")
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(run_folder, "write_config", refuse)
    status, _, err = run_cli("train", "--out", run_dir, *SMALL)
    assert status == 2
    line = one_line(err)
    assert f"cannot write {run_dir / 'config.json'} (Permission denied)" in line
    assert "No checkpoint was written" in line
    assert not run_dir.exists()  # created by this command, left empty: removed


def test_a_full_disk_exits_2_keeping_the_last_checkpoint_whole(tmp_path, trained):
    # Room for two checkpoints of this network and not for a third.
    size = sum(p.stat().st_size for p in (trained[0] / "checkpoints").glob("ckpt-200.*"))
    with small_disk(tmp_path / "disk", size_kib=size * 5 // 2 // 1024 + 64) as disk:
        run_dir = disk / "run"
        status, out, err = run_cli("train", "--out", run_dir, "--n-iterations", "600", *SMALL)
        assert status == 2, err
        line = one_line(err)
        assert "No space left on device" in line and "Free some space" in line
        no_debris(run_dir)
        last = run_folder.checkpoint_iteration(str(run_dir))
        assert last in (100, 200, 300, 400, 500)
        assert f"The run in {run_dir} is intact up to its checkpoint at iteration {last}" in line
        kept = {p.name.split(".")[0] for p in (run_dir / "checkpoints").glob("ckpt-*")}
        assert kept == {f"ckpt-{i}" for i in range(100, last + 1, 100)}
        # The history is written just before each checkpoint: it may hold the row of the
        # checkpoint the disk had no room for (a resumed run measures it again).
        assert history_iterations(run_dir) in (
            list(range(100, last + 1, 100)),
            list(range(100, last + 101, 100)),
        )


def test_a_failed_checkpoint_save_leaves_nothing_half_written(tmp_path, monkeypatch):
    # Anywhere (no root needed): a save that fails as TensorFlow's does on a full disk,
    # after writing part of its temporary folder and of its index.
    import tensorflow as tf

    real_save = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **kwargs):
        if checkpoint_number != 200:
            return real_save(self, checkpoint_number=checkpoint_number, **kwargs)
        temp = os.path.join(self.directory, "ckpt-200_temp")
        os.makedirs(temp)
        with open(os.path.join(temp, "part-00000-of-00001.data-00000-of-00001"), "wb") as f:
            f.write(b"half")
        with open(os.path.join(self.directory, "ckpt-200.index"), "wb") as f:
            f.write(b"half")
        raise tf.errors.ResourceExhaustedError(
            None,
            None,
            f"{temp}/part-00000-of-00001.data-00000-of-00001.tempstate1; "
            f"No space left on device [Op:SaveV2]",
        )

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    run_dir = tmp_path / "run"
    status, _, err = run_cli("train", "--out", run_dir, "--n-iterations", "300", *SMALL)
    assert status == 2
    line = one_line(err)
    assert f"no space left to write {run_dir}" in line
    assert "intact up to its checkpoint at iteration 100" in line
    no_debris(run_dir)
    assert not list(run_dir.glob("checkpoints/ckpt-200*"))
    assert run_folder.checkpoint_iteration(str(run_dir)) == 100


@pytest.mark.slow
def test_a_figure_that_cannot_be_written_is_left_as_it_was(trained, tmp_path, monkeypatch):
    import matplotlib.figure

    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    (run_dir / "metrics.json").unlink()  # so that `train` writes the figures again
    before = {p.name: p.read_bytes() for p in run_dir.glob("*.png")}

    def half_then_full(self, target, **kwargs):
        with open(target, "wb") as f:
            f.write(PNG_MAGIC)
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_full)
    status, _, err = run_cli("train", "--out", run_dir, "--n-iterations", "200", *SMALL)
    assert status == 2 and "No space left on device" in one_line(err)
    assert {p.name: p.read_bytes() for p in run_dir.glob("*.png")} == before
    no_debris(run_dir)


def test_a_data_error_leaves_no_out_folder(tmp_path):
    from vae_prac import mnist_files

    damaged = tmp_path / "mnist"
    shutil.copytree(mnist_files.REPO_DATA_DIR, damaged)
    name = "train-labels-idx1-ubyte.gz"
    whole = (damaged / name).read_bytes()
    (damaged / name).write_bytes(whole[: len(whole) // 2])  # truncated
    status, _, err = run_cli("train", "--out", tmp_path / "run", "--data-dir", damaged, *SMALL)
    assert status == 2
    assert str(damaged / name) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# --- running train again on a finished run ------------------------------------------


def test_train_on_a_finished_run_says_so_and_prints_the_saved_figures(
    trained, tmp_path, monkeypatch
):
    import vae_prac.evaluate

    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    events = sorted(run_dir.glob("events.out.tfevents.*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished run was trained or estimated again")

    monkeypatch.setattr(training, "train", must_not_run)
    monkeypatch.setattr(vae_prac.evaluate, "log_px", must_not_run)
    status, out, err = run_cli("train", "--out", run_dir, "--n-iterations", "200", *SMALL)
    assert status == 0, err
    assert out.startswith(f"The run in {run_dir} is finished: its checkpoint is at iteration 200")
    assert "Resuming" not in out and "Training" not in out
    assert f"test ELBO {metrics['test_elbo']:.2f}" in out
    assert f"log p(x) {metrics['log_px']:.2f} ± {metrics['log_px_stderr']:.2f}" in out
    assert "metrics.json" in out.strip().splitlines()[-1]
    assert sorted(run_dir.glob("events.out.tfevents.*")) == events  # no empty one added

    # The library's train() on it: says so, and adds no empty events file either.
    monkeypatch.undo()
    config = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = training.train(config, progress=False, verbose=True)
    assert result.iteration == 200 and len(result.history) == 0
    assert "at iteration 200: nothing to train (n_iterations is 200)." in buffer.getvalue()
    assert sorted(run_dir.glob("events.out.tfevents.*")) == events


@pytest.mark.slow
def test_train_on_a_finished_run_without_its_metrics_measures_them(trained, tmp_path):
    # E.g. stopped during the final log p(x) estimate: the figures are measured, once.
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    saved = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").unlink()
    status, out, err = run_cli("train", "--out", run_dir, "--n-iterations", "200", *SMALL)
    assert status == 0, err
    assert "is finished" in out and "Resuming" not in out
    assert out.count("log p(x)") == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # The same weights, seeds and images: the same figures.
    assert metrics.keys() == saved.keys()
    for key, value in saved.items():
        assert metrics[key] == (
            value if isinstance(value, str) else pytest.approx(value, rel=1e-6)
        ), key


# --- small frictions ----------------------------------------------------------------


def _fresh_python(code):
    """Run ``code`` in a new Python: what it imports is then its own doing."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def test_help_does_not_import_tensorflow():
    # TensorFlow takes seconds to import; --help must not wait for it.
    code = (
        "import sys\n"
        "from vae_prac import cli\n"
        "for argv in (['--help'], ['train', '--help'], ['evaluate', '--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('imported:', [m for m in ('tensorflow', 'matplotlib', 'numpy')\n"
        "                    if m in sys.modules], file=sys.stderr)\n"
    )
    result = _fresh_python(code)
    assert "imported: []" in result.stderr
    assert "--log-every" in result.stdout and "examples/s" in result.stdout


def test_the_grader_imports_without_tensorflow():
    # The grader starts the processes that need TensorFlow (each submission's kernel and
    # verifier); itself, and each Dask worker that grades, should not wait for it.
    code = (
        "import sys\n"
        "import vae_prac.course.grading, vae_prac.course.report, vae_prac.course.verification\n"
        "from vae_prac import checks\n"
        "print('imported:', 'tensorflow' in sys.modules)\n"
    )
    assert "imported: False" in _fresh_python(code).stdout


@pytest.mark.parametrize(
    "code",
    [
        "import vae_prac.bounds; import vae_prac",
        # A fresh Python with TensorFlow each: the other orders are slow.
        *[
            pytest.param(code, marks=pytest.mark.slow)
            for code in (
                "from vae_prac.bounds import iw_bound; import vae_prac",
                "import vae_prac; vae_prac.elbo; import vae_prac.bounds",
                "import vae_prac.training; import vae_prac",
            )
        ],
    ],
)
def test_vae_prac_elbo_is_the_function_whichever_way_it_was_imported(code):
    # The names are imported on first use, from vae_prac.bounds: vae_prac.elbo is the
    # function, whatever the user's code imported first.
    check = (
        "\nimport sys\n"
        "assert callable(vae_prac.elbo) and vae_prac.elbo.__module__ == 'vae_prac.bounds'"
        ", vae_prac.elbo\n"
        "assert vae_prac.elbo is sys.modules['vae_prac.bounds'].elbo\n"
        "print(vae_prac.train.__name__, vae_prac.Config.__name__)\n"
    )
    result = _fresh_python(code + check)
    assert result.stdout == "train Config\n"
    assert result.stderr == ""  # TensorFlow's start-up lines stay muted


def test_seeds_out_of_range_are_refused_by_the_commands(trained):
    for command in ("evaluate", "sample"):
        status, _, err = run_cli(command, "--out", trained[0], "--seed", str(2**40))
        assert status == 2 and "[0, 2**31)" in err, command


def test_every_config_setting_has_a_flag_made_from_it():
    # Config's docstring entries, read here on their own (not by config.field_docs).
    doc = inspect.cleandoc(Config.__doc__).split("Attributes:\n", 1)[1]
    entries = re.findall(r"^  (\w+): (.*(?:\n    .*)*)", doc, flags=re.M)
    docs = {name: " ".join(text.split()).replace("``", "") for name, text in entries}
    fields = [f.name for f in dataclasses.fields(Config)]
    assert list(docs) == fields
    train = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["train"]
    actions = {a.dest: a for a in train._actions}
    defaults = Config()
    assert actions["out"].option_strings == ["--out"]  # logdir's flag
    for name in fields:
        if name == "logdir":
            continue
        action, default = actions[name], getattr(defaults, name)
        assert action.option_strings[0] == cli.config_flag(name)
        assert action.help == docs[name] + ("" if default is None else f" (default: {default})")
        assert action.choices == CHOICES.get(name)
        # Absent, a flag stays absent (a resumed run keeps its saved value); given
        # Config's default, it parses to that very value.
        assert action.default is argparse.SUPPRESS
        if default is not None and not isinstance(default, bool):
            given = vars(train.parse_args([cli.config_flag(name), str(default)]))
            assert given[name] == default and type(given[name]) is type(default), name
    assert "RMSProp" not in actions["learning_rate"].help  # the optimizer may be Adam
    # The flag names the README, notebooks and benchmarks use, jit's switch included.
    args = train.parse_args(
        [
            "--jit",
            "--n-iterations",
            "5",
            "--lr-schedule",
            "burda",
            "--learning-rate",
            "0.01",
            "--n-validation",
            "400",
        ]
    )
    assert (args.jit_compile, args.n_iterations, args.lr_schedule) == (True, 5, "burda")


def test_threads_are_ops_at_once_each_on_one_thread_by_default():
    """--threads N: N ops at once; --threads-per-op (default 1): the threads of each.

    One process tries each setting in turn (they can change until TensorFlow runs);
    the first, with neither given, sees TensorFlow's own inter-op default (0)."""
    cases = [("None, None", "0 1"), ("2, None", "2 1"), ("3, 2", "3 2")]
    script = "from vae_prac import cli\nimport tensorflow as tf\nt = tf.config.threading\n"
    for args, _ in cases:
        script += (
            f"cli._set_threads({args})\n"
            "print(t.get_inter_op_parallelism_threads(), t.get_intra_op_parallelism_threads())\n"
        )
    out = _fresh_python(script).stdout.splitlines()
    assert len(out) == len(cases), out
    for (args, expected), line in zip(cases, out):
        assert line.split() == expected.split(), (args, line)


def test_threads_after_tensorflow_ran_say_so(tmp_path):
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow has run in this process
    status, out, err = run_cli("train", "--out", tmp_path / "run", "--threads", "1", *SMALL)
    assert status == 2
    assert "must be set before TensorFlow runs" in err
    assert not (tmp_path / "run" / "config.json").exists()
