"""The fast paths of training and evaluation give the numbers of the plain ones, bit for bit.

``train()`` gathers and binarizes its batches inside the compiled loop instead of
taking them from ``data.train_dataset``'s tf.data pipeline: a faster way to compute the
same batches, which these tests compare with the pipeline's, exactly; and a whole run
with a plain step-by-step loop over that pipeline. ``iw_bound`` computes log p(x|z) of
binary images with one softplus per pixel instead of TFP's two: compared with
``log_importance_weights``, exactly.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_prac import VAE, Config, data, fused_updates, train
from vae_prac.bounds import iw_bound, log_importance_weights
from vae_prac.evaluate import log_px
from vae_prac.presets import preset
from vae_prac.training import (
    _batch_feed,
    _index_blocks,
    make_optimizer,
    objective_fn,
    train_step_fn,
)


def images(n, seed=0):
    return (np.random.default_rng(seed).random([n, 28, 28]) * 255).astype(np.uint8)


def feed_batches(x, config, start, count):
    next_batch = _batch_feed(x, config, start)
    index = tf.Variable(start, dtype=tf.int64)

    @tf.function
    def one():
        batch = next_batch(index.read_value())
        index.assign_add(1)
        return batch

    return [one().numpy() for _ in range(count)]


def assert_feed_gives_train_datasets_batches(x, config, start, count):
    """``_batch_feed``'s batches from ``start`` on are ``data.train_dataset``'s; returns them."""
    keras.utils.set_random_seed(config.seed)  # as train() does before making either
    expected = [
        b.numpy()
        for b, _ in zip(
            data.train_dataset(x, config.batch_size, config.binarization, config.seed).skip(start),
            range(count),
        )
    ]
    keras.utils.set_random_seed(config.seed)
    got = feed_batches(x, config, start, count)
    assert len(got) == len(expected) == count
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    return got


@pytest.mark.parametrize(
    "n, batch_size, binarization, seed, start, count",
    [
        (300, 20, "stochastic", 0, 0, 47),  # several epochs; batches straddle their ends
        (97, 8, "threshold", 3, 0, 38),  # a remainder at every epoch's end
        (97, 8, "stochastic", 5, 17, 38),  # resumed at batch 17
        # Past the end of the first blocks of indices the feed takes from tf.data (409
        # batches of 20; 2 batches of 3000), resumed or not.
        (300, 20, "threshold", 1, 0, 900),
        (7000, 3000, "stochastic", 2, 0, 9),
        (7000, 3000, "stochastic", 2, 3, 7),
    ],
)
def test_the_feed_gives_the_batches_of_train_dataset(
    n, batch_size, binarization, seed, start, count
):
    config = Config(batch_size=batch_size, binarization=binarization, seed=seed)
    got = assert_feed_gives_train_datasets_batches(images(n), config, start, count)
    # Stochastic batches are redrawn: not a fixed binarization of each image.
    if binarization == "stochastic":
        assert set(np.unique(got[0])) == {0.0, 1.0}


def test_the_feed_starts_no_autotuning_thread():
    # An autotuning thread made the feed's iterator, when Python's collector freed it
    # after train(), wait for that thread's next wake-up: up to a minute, CPU idle.
    blocks = _index_blocks(300, 40, seed=0, skip=0)
    assert blocks.options().autotune.enabled is False


def test_the_feed_shuffles_with_train_datasets_buffer():
    # More images than the 60,000 of the shuffle buffer: the order depends on its size.
    x = np.zeros([60_010, 28, 28], np.uint8)
    x[:, 0, :16] = (np.arange(60_010)[:, None] >> np.arange(16) & 1) * 255  # its index
    config = Config(batch_size=64, binarization="threshold", seed=1)
    assert_feed_gives_train_datasets_batches(x, config, 0, 3)


def test_the_feed_takes_float_images_as_train_dataset_does():
    x = images(50).astype(np.float32) / 255.0
    config = Config(batch_size=10, binarization="stochastic", seed=2)
    assert_feed_gives_train_datasets_batches(x, config, 0, 7)


def reference_run(config, x, steps):
    """The plain way: data.train_dataset's batches and the update, step by step.

    The update is the one train() applies, ``fused_updates.apply``; that it is Keras's
    ``optimizer.apply`` up to rounding is tests/test_fused_updates.py's to show.
    """
    keras.utils.set_random_seed(config.seed)
    model = VAE.from_config(config)
    optimizer = make_optimizer(config)
    optimizer.build(model.trainable_variables)
    objective = objective_fn(config)
    batches = data.train_dataset(x, config.batch_size, config.binarization, config.seed)

    @tf.function
    def step(batch, i):
        with tf.GradientTape() as tape:
            value = objective(model, batch, tf.stack([tf.constant(config.seed), i]))
            loss = -value
        grads = tape.gradient(loss, model.trainable_variables)
        assert fused_updates.apply(optimizer, grads, model.trainable_variables)
        return value

    values = [float(step(batch, tf.constant(i))) for i, batch in zip(range(steps), batches)]
    return values, [w.numpy() for w in model.weights]


@pytest.mark.parametrize(
    "config",
    [
        Config(latent_dim=4, hidden_size=32, batch_size=16),
        preset("burda-iwae-k5", latent_dim=4, hidden_size=32, batch_size=10, n_iterations=60),
    ],
    ids=["default-settings", "burda-iwae"],
)
def test_train_computes_what_the_plain_loop_computes(config):
    x = images(120)
    config = config.replace(n_iterations=60, log_every=1, print_every=60, n_eval=10, n_validation=0)
    result = train(
        config,
        train_images=x,
        eval_x=np.zeros([10, 28, 28, 1], np.float32),
        progress=False,
        verbose=False,
    )
    values, weights = reference_run(config, x, 60)
    np.testing.assert_array_equal(
        np.array(result.history.train_elbo) * config.batch_size, np.array(values, np.float32)
    )
    for a, b in zip([w.numpy() for w in result.model.weights], weights):
        np.testing.assert_array_equal(a, b)


def test_a_non_finite_step_leaves_weights_and_adam_state_alone():
    config = Config(latent_dim=3, hidden_size=16, optimizer="adam", batch_size=4)
    keras.utils.set_random_seed(0)
    model = VAE.from_config(config)
    optimizer = make_optimizer(config)
    optimizer.build(model.trainable_variables)
    step = train_step_fn(model, optimizer, config)
    x = tf.constant((images(4) > 127).astype(np.float32)[..., None])
    for i in range(3):  # momentum to carry on with, if the update ran
        _, finite = step(x, tf.constant([0, i]))
        assert bool(finite)
    before = [v.numpy() for v in model.weights + list(optimizer.variables)]
    layer = model.encoder.get_layer("gaussian_params")
    kernel, bias = layer.get_weights()
    broken = bias.copy()
    broken[:3] = 1e20  # 0.5 * mu^2 in the KL overflows to Inf
    layer.set_weights([kernel, broken])
    value, finite = step(x, tf.constant([0, 3]))
    assert not bool(finite) and not np.isfinite(float(value))
    layer.set_weights([kernel, bias])
    after = [v.numpy() for v in model.weights + list(optimizer.variables)]
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def plain_iw_bound(model, x, k, seed, chunk):
    """L_k the plain way: log_importance_weights (TFP's Bernoulli), chunk by chunk.

    Compiled, as iw_bound compiles it: eagerly TF would not fuse the dense layers'
    operations as it does in a graph, and the last bits would differ for that reason.
    """
    weights = tf.function(
        lambda x, n, s: log_importance_weights(model, x, n, seed=s), reduce_retracing=True
    )
    # One chunk draws from the seed itself; several, each from its own split seed.
    seeds = (
        [tf.constant(seed, tf.int32)]
        if chunk >= k
        else tf.random.experimental.stateless_split(tf.constant(seed, tf.int32), num=-(-k // chunk))
    )
    total = tf.fill([len(x)], -np.inf)
    for i, start in enumerate(range(0, k, chunk)):
        log_w = weights(x, tf.constant(min(chunk, k - start)), seeds[i])
        total = tf.experimental.numpy.logaddexp(total, tf.reduce_logsumexp(log_w, axis=0))
    return (total - tf.math.log(float(k))).numpy()


def a_model(activation="tanh"):
    keras.utils.set_random_seed(1)
    model = VAE(latent_dim=5, hidden_size=32, activation=activation)
    for w in model.trainable_weights:  # larger weights: logits far from 0, as in training
        w.assign(w + tf.random.stateless_normal(w.shape, seed=[3, 4]) * 0.3)
    return model


@pytest.mark.parametrize("activation, k, chunk", [("tanh", 50, 7), ("relu", 30, 30)])
def test_iw_bound_on_binary_images_is_the_plain_bound_to_the_last_bit(digits, activation, k, chunk):
    model = a_model(activation)
    x = tf.constant(digits[:40])
    fast = iw_bound(model, x, k, seed=(2, 9), chunk_size=chunk).numpy()
    np.testing.assert_array_equal(fast, plain_iw_bound(model, x, k, (2, 9), chunk))
    assert hasattr(model, "_vae_prac_log_weights_binary")  # the fast path ran
    # log_px runs iw_bound on batches with seeds (seed, b).
    np.testing.assert_array_equal(
        log_px(model, digits[:40], k=k, batch_size=20, seed=3)[20:],
        plain_iw_bound(model, x[20:], k, (3, 1), k),
    )


def test_iw_bound_keeps_tfps_likelihood_where_the_shortcut_would_not_hold(digits):
    model = a_model()
    grey = tf.constant(digits[:10] * 0.5 + 0.25)  # not binary: TFP's formula stays
    np.testing.assert_array_equal(
        iw_bound(model, grey, 12, seed=(1, 1), chunk_size=5),
        plain_iw_bound(model, grey, 12, (1, 1), 5),
    )

    class Tempered(VAE):  # a likelihood of one's own
        def likelihood(self, z):
            return super().likelihood(z * 0.5)

    keras.utils.set_random_seed(1)
    other = Tempered(latent_dim=5, hidden_size=32)
    x = tf.constant(digits[:10])
    np.testing.assert_array_equal(
        iw_bound(other, x, 12, seed=(1, 2), chunk_size=5), plain_iw_bound(other, x, 12, (1, 2), 5)
    )
    # Inside a tf.function the images can't be checked: the plain way, same numbers.
    in_graph = tf.function(lambda x: iw_bound(model, x, 12, seed=(1, 3), chunk_size=4))
    np.testing.assert_array_equal(in_graph(x), plain_iw_bound(model, x, 12, (1, 3), 4))
