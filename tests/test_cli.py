"""End-to-end tests of the `vae-prac` command line, on small real training runs.

The commands run in-process (``cli.main``), which saves TensorFlow's start-up time per
call; one test runs ``python -m vae_prac`` as a subprocess to check the module entry.
The runs are small (latent 8, hidden 32, a few hundred iterations): what is checked
(files, resuming, error handling) does not depend on the network size.
"""

import contextlib
import io
import json
import math
import re
import shutil
import signal
import subprocess
import sys

import pytest

from vae_prac import cli, training
from vae_prac.config import Config

SMALL = ["--print-every", "100", "--log-every", "100", "--n-eval", "500",
         "--eval-k", "20", "--eval-n", "50", "--latent-dim", "8", "--hidden-size", "32",
         "--no-progress"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(*argv):
    """Run ``vae-prac ARGV`` in-process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as e:   # argparse's own errors, --help, --version
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
    for name in ("config.json", "history.csv", "history.json", "posterior_prior.png",
                 "prior_samples.png", "elbo_curve.png", "metrics.json"):
        assert (run_dir / name).is_file(), name
    for name in ("posterior_prior.png", "prior_samples.png", "elbo_curve.png"):
        assert (run_dir / name).read_bytes()[:8] == PNG_MAGIC, name
    assert list((run_dir / "checkpoints").glob("ckpt-200.index"))

    config = Config.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert (config.latent_dim, config.hidden_size, config.n_iterations) == (8, 32, 200)
    assert config.logdir == str(run_dir)

    assert history_iterations(run_dir) == [100, 200]
    history = json.loads((run_dir / "history.json").read_text())
    assert history["iteration"] == [100, 200]
    assert all(math.isfinite(v) for v in history["test_elbo"])   # print_every = log_every


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


def test_train_resumes_from_the_checkpoint(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained[0], run_dir)
    before = training.History.from_csv(run_dir / "history.csv").rows()

    status, out, err = run_cli("train", "--out", run_dir, "--n-iterations", "300",
                               "--eval-k", "0", "--no-progress")
    assert status == 0, err
    assert re.search(r"Resuming from .*ckpt-200 at iteration 200", out), out
    assert "Iteration    100" not in out   # the first 200 iterations were not redone
    # The flags not given were taken from the saved config.json (latent 8, hidden 32).
    assert "latent_dim=8, hidden_size=32" in out
    assert history_iterations(run_dir) == [100, 200, 300]
    assert training.History.from_csv(run_dir / "history.csv").rows()[:2] == before
    assert cli._checkpoint_iteration(str(run_dir)) == 300
    assert "log p(x)" not in out   # --eval-k 0 skips the estimate


def test_train_refuses_to_resume_with_other_network_sizes(trained):
    run_dir = trained[0]
    status, _, err = run_cli("train", "--out", run_dir, "--hidden-size", "64")
    assert status == 2
    assert "--hidden-size 64 (saved: 32)" in err and "another --out" in err
    assert "Traceback" not in err


def test_evaluate_restores_and_measures(trained):
    run_dir = trained[0]
    status, out, err = run_cli("evaluate", "--out", run_dir, "--k", "10", "--n", "100",
                               "--no-progress")
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


def test_interrupted_training_keeps_outputs_and_resumes(tmp_path, monkeypatch):
    """Ctrl-C during training: train() stops cleanly, the CLI writes what it has."""
    run_dir = tmp_path / "run"
    calls = []

    def interrupt_on_second_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:   # at iteration 200, after the checkpoint at 100
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
            7, training.TrainResult(model=None, history=training.History(), iteration=7))

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
    assert not (tmp_path / "run").exists()   # nothing written for a bad setting
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
    result = subprocess.run([sys.executable, "-m", "vae_prac", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    from vae_prac import __version__
    assert result.stdout.strip() == f"vae-prac {__version__}"


def test_grade_delegates_to_the_grading_module(tmp_path):
    pytest.importorskip("vae_prac.grading")
    nbformat = pytest.importorskip("nbformat")
    status, _, err = run_cli("grade", tmp_path / "missing.ipynb")
    assert status == 2 and "no such notebook" in err

    # Not a notebook of the series, and its printed line proves nothing: a row saying so.
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('[check demo] passed')")]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    csv_path = tmp_path / "grades.csv"
    status, out, err = run_cli("grade", path, "--timeout", "120", "--memory-limit", "4",
                               "--csv", csv_path)
    assert status == 0, err
    assert "demo" in out and "0/?" in out and "not a notebook of this series" in out
    assert csv_path.is_file() and "not a notebook of this series" in csv_path.read_text()
    status, _, err = run_cli("grade", path, "--memory-limit", "0")
    assert status == 2 and "memory-limit" in err
    status, _, err = run_cli("grade", path, "--solutions", tmp_path / "nowhere")
    assert status == 2 and "no solution notebooks" in err and "--solutions" in err


def test_train_may_change_network_sizes_before_any_checkpoint(tmp_path):
    # A run interrupted before its first checkpoint left only config.json: a new run with
    # other sizes starts afresh instead of failing.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"latent_dim": 8, "hidden_size": 32}))
    status, out, err = run_cli("train", "--out", run_dir, "--latent-dim", "4",
                               "--hidden-size", "16", "--n-iterations", "100",
                               "--print-every", "100", "--log-every", "100",
                               "--n-eval", "100", "--eval-k", "0", "--no-progress")
    assert status == 0, err
    assert json.loads((run_dir / "config.json").read_text())["latent_dim"] == 4


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
        "      hooks=[kill], progress=False, verbose=False)\n")
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert history_iterations(run_dir) == [50, 100, 150, 200]
    before = training.History.from_csv(run_dir / "history.csv").rows()
    assert not list(run_dir.glob("*.partial"))

    status, out, err = run_cli("train", "--out", run_dir, "--n-iterations", "400",
                               "--eval-k", "0", "--no-progress")
    assert status == 0, err
    assert "Resuming" in out
    assert history_iterations(run_dir) == [50, 100, 150, 200, 250, 300, 350, 400]
    after = training.History.from_csv(run_dir / "history.csv").rows()[:4]
    assert [(r["iteration"], r["train_elbo"]) for r in after] == \
        [(r["iteration"], r["train_elbo"]) for r in before]   # kept, not measured again
    assert json.loads((run_dir / "history.json").read_text())["iteration"][-1] == 400
