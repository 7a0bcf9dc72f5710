"""The shipped models: they load offline, verify, measure what their cards say, and
ship inside the wheel (Colab installs a wheel, not the repository)."""

import json
import shutil
import subprocess
import sys

import pytest

from vae_prac import pretrained

SHIPPED = ("mnist-dynamic-vae", "mnist-dynamic-iwae", "burda-vae-k1")


def test_the_models_are_shipped():
    assert set(SHIPPED) <= set(pretrained.names())


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_gives_the_test_elbo_its_card_states(name):
    from vae_prac import data
    from vae_prac.evaluate import evaluate_elbo

    meta = pretrained.info(name)
    model = pretrained.load(name)
    config = pretrained.config(name)
    assert (config.latent_dim, config.hidden_size, config.activation) == (50, 200, "tanh")
    assert config.logdir is None and config.data_dir is None  # no path of the trainer's
    metrics = meta["metrics"]
    x = data.eval_set(metrics["n"], config.binarization, config.seed)
    assert evaluate_elbo(model, x, seed=0) == pytest.approx(metrics["test_elbo"], abs=1e-3)
    card = pretrained.card(name)
    assert meta["weights_sha256"] in card and f"{metrics['test_nll']:.2f}" in card


def test_a_damaged_weights_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    name = SHIPPED[0]
    shutil.copytree(pretrained.path(name), tmp_path / name)
    weights = tmp_path / name / "weights.npz"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    monkeypatch.setattr(pretrained, "HERE", str(tmp_path))
    with pytest.raises(pretrained.PretrainedError, match="does not verify.*reinstall"):
        pretrained.load(name)
    with pytest.raises(pretrained.PretrainedError, match="No shipped model named 'nope'"):
        pretrained.load("nope")


def test_weights_must_fit_the_network():
    from vae_prac.model import VAE

    arrays = pretrained.weight_arrays(VAE(3, 8))
    with pytest.raises(pretrained.PretrainedError, match="shape"):
        pretrained.set_weights(VAE(4, 8), arrays)
    del arrays["decoder/bernoulli_logits/bias"]
    with pytest.raises(pretrained.PretrainedError, match="missing.*bernoulli_logits/bias"):
        pretrained.set_weights(VAE(3, 8), arrays)


@pytest.mark.slow
def test_cli_evaluates_and_samples_a_shipped_model(tmp_path):
    name = SHIPPED[1]
    out = tmp_path / "e.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vae_prac",
            "evaluate",
            "--pretrained",
            name,
            "--k",
            "20",
            "--n",
            "100",
            "--no-progress",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert f"shipped model {name}" in run.stdout and "active units" in run.stdout
    figures = json.loads(out.read_text())
    # L_20 is a tighter bound than the ELBO on the same images.
    assert figures["log_px"] > figures["test_elbo"]
    assert 0 < figures["active_units"] <= 50
    # The sample command in this process (the command line's own path is tried above).
    from vae_prac import cli

    png = tmp_path / "s.png"
    assert cli.main(["sample", "--pretrained", name, "--n", "16", "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_wheel_carries_every_file_of_the_shipped_models():
    # Colab installs a wheel: pyproject's package-data must match every shipped file
    # (an editable install sees them all, so only this catches one left out).
    import fnmatch
    import os

    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")

    root = pretrained.HERE.rsplit("vae_prac", 1)[0]
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["vae_prac.pretrained"]
    for name in SHIPPED:
        files = os.listdir(pretrained.path(name))
        assert {"weights.npz", "model.json", "card.md", "history.csv"} <= set(files)
        for file in files:
            assert any(fnmatch.fnmatch(f"{name}/{file}", p) for p in patterns), (
                f"vae_prac/pretrained/{name}/{file} would be left out of the wheel: add "
                f"a pattern for it to [tool.setuptools.package-data] in pyproject.toml"
            )
