"""Tests for vae_prac.training: learning, reproducibility, resuming, stopping, logging.

A small network (latent 8, hidden 64) trained for a few hundred steps; every check is
about the training loop, not about how good the model gets.
"""

import glob
import json
import math
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import vae_prac
from vae_prac import VAE, Config, History, NonFiniteLossError, restore, train
from vae_prac.bounds import elbo
from vae_prac.evaluate import evaluate_elbo

Z = 5.0  # tolerance in standard errors
CONFIG = Config(
    latent_dim=8,
    hidden_size=64,
    batch_size=64,
    n_iterations=400,
    print_every=100,
    log_every=50,
    n_eval=500,
)


def weights_of(model):
    return [w.numpy().copy() for w in model.weights]


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def elbo_difference_se(model, x, seed):
    """Standard error of a difference of two mean ELBOs over x (per-image spread)."""
    per_image = elbo(model, x, seed=(seed, 0)).elbo.numpy()
    return math.sqrt(2.0) * per_image.std(ddof=1) / math.sqrt(len(x))


@pytest.fixture(scope="module")
def run400():
    """400 iterations with a hook that records what it is given."""
    calls = []

    def hook(model, iteration, history):
        calls.append((model, iteration, len(history), history.iteration[-1]))

    result = train(CONFIG, hooks=[hook], progress=False, verbose=False)
    return result, calls


@pytest.fixture(scope="module")
def run200(tmp_path_factory):
    """200 iterations writing checkpoints and summaries to a logdir."""
    logdir = str(tmp_path_factory.mktemp("run200"))
    result = train(CONFIG.replace(n_iterations=200, logdir=logdir), progress=False, verbose=False)
    return result, logdir


def test_training_raises_the_test_elbo(run400, digits):
    result, _ = run400
    h = result.history
    assert result.iteration == 400 and not result.interrupted
    assert h.iteration == [50, 100, 150, 200, 250, 300, 350, 400]
    tested = [i for i, v in zip(h.iteration, h.test_elbo) if not math.isnan(v)]
    assert tested == [100, 200, 300, 400]
    assert h.last_test_elbo == h.test_elbo[-1]
    assert all(math.isfinite(v) for v in h.train_elbo)
    assert all(v > 0 and math.isfinite(v) for v in h.examples_per_sec)
    # The untrained model: train() starts from the weights the seed gives.
    keras.utils.set_random_seed(CONFIG.seed)
    untrained = VAE.from_config(CONFIG)
    start = evaluate_elbo(untrained, digits, seed=CONFIG.seed)
    se = elbo_difference_se(result.model, digits, seed=1)
    first, last = h.test_elbo[1], h.test_elbo[-1]
    assert last - first > Z * se, (first, last, se)
    assert first - start > Z * se, (start, first, se)
    assert h.train_elbo[-1] > h.train_elbo[0]
    # The history's test ELBO is evaluate_elbo on the fixed test digits.
    assert last == evaluate_elbo(result.model, digits, seed=CONFIG.seed)


def test_zero_iterations_returns_the_initial_model():
    result = train(CONFIG.replace(n_iterations=0), progress=False, verbose=False)
    assert result.iteration == 0 and len(result.history) == 0
    keras.utils.set_random_seed(CONFIG.seed)
    assert_same_weights(weights_of(result.model), weights_of(VAE.from_config(CONFIG)))


def test_hooks_are_called_every_print_every(run400):
    result, calls = run400
    assert [c[1] for c in calls] == [100, 200, 300, 400]
    for model, iteration, rows, last_row in calls:
        assert model is result.model
        assert rows == iteration // CONFIG.log_every and last_row == iteration


def test_same_seed_same_numbers(run400):
    first, _ = run400
    again = train(CONFIG, progress=False, verbose=False)
    for field in History.FIELDS[:3]:  # examples/s is a timing
        np.testing.assert_array_equal(getattr(first.history, field), getattr(again.history, field))
    assert_same_weights(weights_of(first.model), weights_of(again.model))


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(run200, run400, tmp_path, capsys):
    short, logdir = run200
    full, _ = run400
    # Writing checkpoints and summaries does not change the numbers.
    for field in History.FIELDS[:3]:
        assert getattr(short.history, field) == getattr(full.history, field)[:4]
    assert short.checkpoint_dir == os.path.join(logdir, "checkpoints")

    resumed_dir = str(tmp_path / "resumed")
    shutil.copytree(logdir, resumed_dir)
    resumed = train(CONFIG.replace(logdir=resumed_dir), progress=False, verbose=True)
    out = capsys.readouterr().out
    assert "Resuming from" in out and "at iteration 200" in out
    assert "Iteration    400  train ELBO" in out
    assert resumed.iteration == 400
    assert resumed.history.iteration == [250, 300, 350, 400]
    # Same data order (the pipeline skips the batches already seen) and same noise
    # (seeded by the iteration): the same numbers as one uninterrupted run.
    for field in History.FIELDS[:3]:
        assert getattr(resumed.history, field) == getattr(full.history, field)[4:]
    assert_same_weights(weights_of(resumed.model), weights_of(full.model))
    assert tf.train.latest_checkpoint(os.path.join(resumed_dir, "checkpoints")).endswith("ckpt-400")
    # restore() reads the latest checkpoint into a new model.
    model, iteration = restore(resumed_dir, CONFIG)
    assert iteration == 400
    assert_same_weights(weights_of(model), weights_of(full.model))
    # Nothing left to do: training again returns at once, at the same iteration.
    done = train(CONFIG.replace(logdir=resumed_dir), progress=False, verbose=False)
    assert done.iteration == 400 and len(done.history) == 0
    assert_same_weights(weights_of(done.model), weights_of(full.model))


def test_restore_and_its_errors(run200, tmp_path):
    short, logdir = run200
    model, iteration = restore(logdir, CONFIG)
    assert iteration == 200
    assert_same_weights(weights_of(model), weights_of(short.model))
    # train() wrote config.json, so the network sizes need not be given again.
    model, iteration = restore(logdir)
    assert iteration == 200 and model.latent_dim == CONFIG.latent_dim
    assert_same_weights(weights_of(model), weights_of(short.model))
    with pytest.raises(ValueError, match="latent_dim=8"):
        train(CONFIG.replace(logdir=logdir, latent_dim=4), progress=False, verbose=False)
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        restore(str(tmp_path), CONFIG)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config="):
        restore(str(empty))


def test_tensorboard_summaries_are_written(run200):
    short, logdir = run200
    files = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
    assert files
    scalars = {}
    for path in files:
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                scalars[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    for it, train_elbo, test_elbo in zip(
        short.history.iteration, short.history.train_elbo, short.history.test_elbo
    ):
        assert scalars[("elbo/train", it)] == pytest.approx(train_elbo, rel=1e-6)
        assert ("examples_per_sec", it) in scalars
        if math.isnan(test_elbo):
            assert ("elbo/test", it) not in scalars
        else:
            assert scalars[("elbo/test", it)] == pytest.approx(test_elbo, rel=1e-6)


def test_a_nan_loss_stops_training_without_applying_the_step(tmp_path):
    logdir = str(tmp_path / "run")
    snapshots = {}

    def break_encoder(model, iteration, history):
        # Means of 1e20 make the KL term 0.5 * mu^2 overflow to Inf on the next step.
        if iteration == 200:
            snapshots["good"] = weights_of(model)
            out = model.encoder.get_layer("gaussian_params")
            kernel, bias = out.get_weights()
            bias[: CONFIG.latent_dim] = 1e20
            out.set_weights([kernel, bias])
            snapshots["broken"] = weights_of(model)

    with pytest.raises(NonFiniteLossError) as caught:
        train(CONFIG.replace(logdir=logdir), hooks=[break_encoder], progress=False, verbose=False)
    err = caught.value
    assert err.iteration == 201  # the step whose loss was not finite
    assert "iteration 201" in str(err) and "learning_rate" in str(err)
    assert err.result.checkpoint_dir in str(err)
    result = err.result
    assert result.iteration == 200 and not result.interrupted
    assert result.history.iteration == [50, 100, 150, 200]
    # The bad step changed no weight, and none became NaN.
    after = weights_of(result.model)
    assert all(np.all(np.isfinite(w)) for w in after)
    assert_same_weights(after, snapshots["broken"])
    # The checkpoint on disk is the last good one (saved before the hook ran).
    ckpt_dir = os.path.join(logdir, "checkpoints")
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-200")
    model, iteration = restore(logdir, CONFIG)
    assert iteration == 200
    assert_same_weights(weights_of(model), snapshots["good"])


def test_keyboard_interrupt_keeps_the_model_and_history(run200, capsys):
    short, _ = run200

    def interrupt(model, iteration, history):
        if iteration == 200:
            raise KeyboardInterrupt

    result = train(CONFIG, hooks=[interrupt], progress=False, verbose=True)
    assert result.interrupted and result.iteration == 200
    assert result.history.iteration == [50, 100, 150, 200]
    assert "Interrupted at iteration 200" in capsys.readouterr().out
    assert_same_weights(weights_of(result.model), weights_of(short.model))


def test_history_round_trips_through_csv_and_json(run400, tmp_path):
    history = run400[0].history
    history.to_csv(tmp_path / "h.csv")
    back = History.from_csv(tmp_path / "h.csv")
    assert len(back) == len(history) and back.iteration == history.iteration
    for field in History.FIELDS:
        np.testing.assert_array_equal(getattr(back, field), getattr(history, field))
    assert back.last_test_elbo == history.last_test_elbo
    history.to_json(tmp_path / "h.json")
    with open(tmp_path / "h.json") as f:
        loaded = json.load(f)
    assert set(loaded) == set(History.FIELDS)
    # A missing test ELBO is null in JSON (strict JSON has no NaN).
    assert any(v is None for v in loaded["test_elbo"])
    np.testing.assert_array_equal(
        [np.nan if v is None else v for v in loaded["test_elbo"]], history.test_elbo
    )
    empty = History()
    empty.to_csv(tmp_path / "empty.csv")
    assert len(History.from_csv(tmp_path / "empty.csv")) == 0
    assert math.isnan(empty.last_test_elbo)


@pytest.mark.slow
def test_mirrored_strategy_with_two_replicas():
    """Runs tests/mirrored_worker.py: 2 logical CPUs must be set before TF starts."""
    worker = os.path.join(os.path.dirname(__file__), "mirrored_worker.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, worker], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["logical_cpus"] == 2
    run = out["train"]
    assert run["replicas"] == 2 and run["iteration"] == 300
    assert all(math.isfinite(v) for v in run["train_elbo"]) and run["weights_finite"]
    tested = [v for v in run["test_elbo"] if not math.isnan(v)]
    assert tested[-1] - tested[0] > Z * run["elbo_difference_se"], run
    # One SGD step on one batch: 2 replicas summing their half-batch gradients take the
    # same step as one device (a ratio of 0.5 would mean the gradients were averaged).
    sgd = out["sgd_step"]
    assert sgd["ratio"] == pytest.approx(1.0, abs=1e-4), sgd
    assert sgd["max_abs_diff"] < 1e-4 * sgd["max_abs_delta"], sgd
    assert sgd["elbo_mirrored"] == pytest.approx(sgd["elbo_single"], rel=1e-5)
    # train() itself, noise off: the same ELBOs and weights with and without the strategy.
    same = out["train_equal"]
    np.testing.assert_allclose(same["train_elbo_mirrored"], same["train_elbo_single"], rtol=1e-5)
    assert same["max_abs_diff"] < 1e-5


def test_weights_without_a_gradient_are_named():
    # Replacing an attribute leaves the old network's weights tracked but unused.
    model = VAE(latent_dim=2, hidden_size=8)
    model.encoder = vae_prac.inference_network(2, 8)
    with pytest.raises(ValueError, match="get no gradient"):
        train(
            Config(
                latent_dim=2, hidden_size=8, n_iterations=1, print_every=1, log_every=1, n_eval=10
            ),
            model=model,
            progress=False,
            verbose=False,
        )


# --- a student's own parts (notebooks 03 and 05) -----------------------------------------


def student_encoder(latent_dim, hidden_size):
    """Notebook 03's inference network, written as a student would (functional)."""
    x = keras.Input(shape=(28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = keras.layers.Dense(hidden_size, activation="relu")(h)
    h = keras.layers.Dense(hidden_size, activation="relu")(h)
    params = keras.layers.Dense(2 * latent_dim)(h)
    return keras.Model(
        x, [params[:, :latent_dim], 1e-6 + keras.ops.softplus(params[:, latent_dim:])]
    )


def student_decoder(latent_dim, hidden_size):
    z = keras.Input(shape=(latent_dim,))
    h = keras.layers.Dense(hidden_size, activation="relu")(z)
    h = keras.layers.Dense(hidden_size, activation="relu")(h)
    return keras.Model(z, keras.layers.Reshape((28, 28, 1))(keras.layers.Dense(784)(h)))


def student_batch_elbo(model, x, seed):
    """Notebook 05's ELBO: the KL written out, z from the same stateless draw."""
    mu, sigma = model.encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=seed)
    kl = 0.5 * tf.reduce_sum(mu**2 + sigma**2 - 1.0 - tf.math.log(sigma**2), axis=-1)
    return tf.reduce_sum(model.likelihood(z).log_prob(x) - kl)


def student_step(model, optimizer, batch_elbo, x, seed):
    """Notebook 05's training step, with apply_gradients instead of apply."""
    with tf.GradientTape() as tape:
        value = batch_elbo(model, x, seed)
        loss = -value
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return value


def test_train_runs_a_students_own_parts_like_the_library():
    config = Config(
        latent_dim=8, hidden_size=64, n_iterations=300, print_every=100, log_every=100, n_eval=300
    )
    # The library's parts with Keras's optimizer.apply, as the student's step uses: the
    # default fused update rounds differently, and 300 RMSprop steps magnify that.
    reference = train(config, train_step=vae_prac.gradient_step, progress=False, verbose=False)
    keras.utils.set_random_seed(config.seed)  # as train() does before it builds a model
    model = VAE(
        config.latent_dim,
        config.hidden_size,
        encoder=student_encoder(config.latent_dim, config.hidden_size),
        decoder=student_decoder(config.latent_dim, config.hidden_size),
    )
    mine = train(
        config,
        model=model,
        batch_elbo=student_batch_elbo,
        train_step=student_step,
        progress=False,
        verbose=False,
    )
    assert mine.iteration == reference.iteration == 300
    # Same initial weights, same noise, same data order: the same numbers, up to
    # float32 round-off (the KL written out differs from TFP's in the last bits).
    np.testing.assert_allclose(mine.history.train_elbo, reference.history.train_elbo, rtol=1e-4)
    np.testing.assert_allclose(mine.history.test_elbo, reference.history.test_elbo, rtol=1e-4)
    assert reference.history.test_elbo[-1] > reference.history.test_elbo[0] + 20  # it learned


def test_train_with_a_step_that_updates_nothing_learns_nothing():
    def lazy_step(model, optimizer, batch_elbo, x, seed):
        return batch_elbo(model, x, seed)

    config = Config(
        latent_dim=4, hidden_size=16, n_iterations=100, print_every=100, log_every=100, n_eval=100
    )
    keras.utils.set_random_seed(0)
    model = VAE(config.latent_dim, config.hidden_size)
    before = weights_of(model)
    result = train(config, model=model, train_step=lazy_step, progress=False, verbose=False)
    assert result.iteration == 100
    assert_same_weights(weights_of(model), before)


def test_the_library_parts_stand_in_for_the_students():
    # Notebook 05 falls back on these where a check has not passed: same signatures.
    config = Config(
        latent_dim=4, hidden_size=16, n_iterations=100, print_every=100, log_every=100, n_eval=100
    )
    result = train(
        config,
        batch_elbo=vae_prac.batch_elbo,
        train_step=vae_prac.gradient_step,
        progress=False,
        verbose=False,
    )
    reference = train(config, progress=False, verbose=False)
    np.testing.assert_allclose(result.history.test_elbo, reference.history.test_elbo, rtol=1e-5)


def test_train_accepts_a_students_elbo_in_float64():
    # 05's check accepts an ELBO computed in float64; train() must then sum it, not fail.
    def elbo64(model, x, seed):
        return tf.cast(vae_prac.batch_elbo(model, x, seed), tf.float64)

    config = Config(
        latent_dim=4, hidden_size=16, n_iterations=100, print_every=100, log_every=100, n_eval=100
    )
    result = train(config, batch_elbo=elbo64, progress=False, verbose=False)
    reference = train(config, progress=False, verbose=False)
    np.testing.assert_allclose(result.history.train_elbo, reference.history.train_elbo, rtol=1e-5)
