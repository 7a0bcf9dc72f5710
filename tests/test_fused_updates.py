"""The fused update is Keras's update: the same weights and optimizer state, step for step.

Two optimizers of one kind start from the same weights and take the same gradients, one
with Keras's ``optimizer.apply``, one with ``fused_updates.apply``; after every step their
weights, slots and iteration counts agree within float32 rounding. The gradients are
drawn afresh for each step (with a few exactly zero, as for pixels that are always
off), so every part of the update is exercised; a learning-rate schedule whose stages
change within the steps shows the rate is read at the right iteration.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_prac import fused_updates, training
from vae_prac.config import Config

SHAPES = [(7, 5), (5,), (5, 3)]


def twin_variables(seed=0):
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    return (
        [keras.Variable(v, name=f"w{i}") for i, v in enumerate(values)],
        [keras.Variable(v, name=f"w{i}") for i, v in enumerate(values)],
    )


def gradient_draws(n, seed=1):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        grads = []
        for s in SHAPES:
            g = (rng.standard_normal(s) * rng.choice([1e-4, 1.0, 30.0])).astype(np.float32)
            g[rng.random(s) < 0.2] = 0.0  # weights that get no signal this step
            grads.append(tf.constant(g))
        yield grads


def float32_rtol(optimizer) -> float:
    """The relative difference float32 allows between the two updates.

    TensorFlow's kernels take 1 - beta from beta in float32, Keras from Python's float: for
    Adam's beta2 = 0.999 that is 0.00099998713 against 0.001, up to half a unit in the last
    place of beta over 1 - beta (6e-5 for 0.999, 6e-7 for 0.9), on top of the rounding
    of the arithmetic itself.
    """
    decays = (
        [optimizer.beta_1, optimizer.beta_2] if hasattr(optimizer, "beta_2") else [optimizer.rho]
    )
    return 1e-5 + max(np.spacing(np.float32(b)) / (1 - b) for b in decays)


def assert_float32_close(actual, desired, rtol, what):
    """Equal within ``rtol``, and a few units in the last place of the array's largest
    entry (the two round a sum of terms of that size differently)."""
    ulp = np.finfo(np.float32).eps * max(1.0, float(np.abs(desired).max()))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=16 * ulp, err_msg=what)


OPTIMIZERS = {
    "adam, Burda's schedule": Config(
        optimizer="adam", epsilon=1e-4, lr_schedule="burda", n_iterations=60
    ),
    "adam, constant rate": Config(optimizer="adam", learning_rate=3e-3),
    "rmsprop, TF1's epsilon": Config(optimizer="rmsprop", learning_rate=1e-3),
    "rmsprop, Burda's schedule": Config(
        optimizer="rmsprop", lr_schedule="burda", n_iterations=60, epsilon=1e-7
    ),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_fused_update_is_keras_update_step_for_step(name, compiled):
    config = OPTIMIZERS[name]
    keras_vars, fused_vars = twin_variables()
    keras_opt, fused_opt = training.make_optimizer(config), training.make_optimizer(config)
    keras_opt.build(keras_vars)
    fused_opt.build(fused_vars)
    assert fused_updates.covers(fused_opt)
    rtol = float32_rtol(fused_opt)

    def keras_step(grads):
        keras_opt.apply(grads, keras_vars)

    def fused_step(grads):
        assert fused_updates.apply(fused_opt, grads, fused_vars)

    if compiled:
        keras_step, fused_step = tf.function(keras_step), tf.function(fused_step)
    for t, grads in enumerate(gradient_draws(60)):
        keras_step(grads)
        fused_step(grads)
        pairs = zip([*keras_opt.variables, *keras_vars], [*fused_opt.variables, *fused_vars])
        for a, b in pairs:
            assert_float32_close(b.numpy(), a.numpy(), rtol, f"{a.path} at step {t + 1}")
    assert int(fused_opt.iterations) == 60
    # Over the 60 steps the schedule moved through its stages: the rates differ.
    if config.lr_schedule == "burda":
        assert float(fused_opt.learning_rate) < config.learning_rate / 5


@pytest.mark.parametrize(
    "optimizer",
    [
        keras.optimizers.Adam(amsgrad=True),
        keras.optimizers.Adam(clipnorm=1.0),
        keras.optimizers.Adam(weight_decay=1e-4),
        keras.optimizers.Adam(use_ema=True),
        keras.optimizers.RMSprop(momentum=0.9),
        keras.optimizers.RMSprop(centered=True),
        keras.optimizers.SGD(),
        keras.optimizers.AdamW(),  # a subclass of Adam, with weight decay
    ],
    ids=["amsgrad", "clipnorm", "weight_decay", "ema", "momentum", "centered", "sgd", "adamw"],
)
def test_what_it_does_not_cover_is_left_to_keras(optimizer):
    variables, _ = twin_variables()
    optimizer.build(variables)
    before = [v.numpy() for v in variables]
    assert not fused_updates.covers(optimizer)
    assert not fused_updates.apply(optimizer, next(gradient_draws(1)), variables)
    for b, v in zip(before, variables):
        np.testing.assert_array_equal(v.numpy(), b)
    assert int(optimizer.iterations) == 0


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_training_with_the_fused_update_follows_keras(digits, jit):
    """train_step_fn, fused and not, on the same batches: the same weights after 20 steps.

    Here the gradients come from each model's own weights, so rounding differences may
    grow a little from step to step: the tolerance is wider than for one update.
    """
    config = Config(
        latent_dim=4,
        hidden_size=16,
        optimizer="adam",
        epsilon=1e-4,
        lr_schedule="burda",
        n_iterations=20,
        batch_size=16,
    )
    runs = []
    for fused in (False, True):
        keras.utils.set_random_seed(0)
        model = training.VAE.from_config(config)
        optimizer = training.make_optimizer(config)
        optimizer.build(model.trainable_variables)
        step = training.train_step_fn(model, optimizer, config, jit_compile=jit, fused_update=fused)
        for i in range(20):
            x = tf.constant(digits[16 * i : 16 * (i + 1)])
            value, finite = step(x, tf.constant([0, i]))
            assert bool(finite)
        runs.append((model, optimizer))
    (keras_model, keras_opt), (fused_model, fused_opt) = runs
    assert int(fused_opt.iterations) == int(keras_opt.iterations) == 20
    for a, b in zip(keras_model.trainable_variables, fused_model.trainable_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)


def test_float64_weights_and_sparse_gradients_are_left_to_keras():
    """The kernels abort the process on a dtype they do not expect: never reach them."""
    weights = [keras.Variable(np.ones(3), dtype="float64")]
    optimizer = keras.optimizers.Adam()
    optimizer.build(weights)
    assert not fused_updates.apply(optimizer, [tf.constant(np.ones(3))], weights)
    table = [keras.Variable(np.ones((4, 2), np.float32))]
    optimizer = keras.optimizers.RMSprop()
    optimizer.build(table)
    sparse = tf.IndexedSlices(tf.ones([1, 2]), tf.constant([1]), tf.constant([4, 2]))
    assert not fused_updates.apply(optimizer, [sparse], table)
    assert int(optimizer.iterations) == 0
