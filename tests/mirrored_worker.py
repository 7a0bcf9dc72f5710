"""Train under tf.distribute.MirroredStrategy on two logical CPUs; print JSON results.

Run by tests/test_training.py in a subprocess, because the logical devices must be
configured before TensorFlow initializes its devices, which happens once per process.

Three checks, reported as one JSON object on the last line of stdout:

* ``train``: a short training run with 2 replicas (history and replica count).
* ``sgd_step``: one plain SGD step on one batch, split between 2 replicas, compared
  with the same step on one device. The noise is switched off (z = mu), so both see the
  same loss; with SGD the weight change is the aggregated gradient times the learning
  rate, so a ratio of 1 means the replicas' gradients are summed (each replica's loss
  is the ELBO summed over its half batch) and 0.5 would mean averaged.
* ``train_equal``: a few steps of ``train`` with and without the strategy (noise off).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from vae_prac import VAE, Config, bounds, data, train  # noqa: E402
from vae_prac.bounds import elbo  # noqa: E402
from vae_prac.training import train_step_fn  # noqa: E402

REPLICAS = ["/cpu:0", "/cpu:1"]


def weights(model):
    return [np.array(w.numpy()) for w in model.weights]


def max_abs_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def check_train(images, eval_x):
    strategy = tf.distribute.MirroredStrategy(REPLICAS)
    config = Config(
        latent_dim=8,
        hidden_size=64,
        n_iterations=300,
        print_every=100,
        log_every=50,
        n_eval=len(eval_x),
    )
    result = train(
        config, strategy=strategy, progress=False, verbose=False, train_images=images, eval_x=eval_x
    )
    h = result.history
    # The standard error of a difference of two mean test ELBOs, from the per-image spread.
    per_image = elbo(result.model, eval_x, seed=(1, 0)).elbo.numpy()
    se = float(np.sqrt(2.0) * per_image.std(ddof=1) / np.sqrt(len(eval_x)))
    return {
        "replicas": strategy.num_replicas_in_sync,
        "iteration": result.iteration,
        "elbo_difference_se": se,
        "iterations": h.iteration,
        "train_elbo": h.train_elbo,
        "test_elbo": h.test_elbo,
        "weights_finite": all(bool(np.all(np.isfinite(w))) for w in weights(result.model)),
    }


def check_sgd_step(x):
    config = Config(latent_dim=8, hidden_size=64)
    seed = tf.constant([0, 0], tf.int32)

    keras.utils.set_random_seed(0)
    single = VAE.from_config(config)
    before = weights(single)
    sgd = keras.optimizers.SGD(learning_rate=1e-3)
    elbo_single, _ = train_step_fn(single, sgd, config, jit_compile=False)(tf.constant(x), seed)
    delta_single = [w - b for w, b in zip(weights(single), before)]

    strategy = tf.distribute.MirroredStrategy(REPLICAS)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        mirrored = VAE.from_config(config)
        sgd = keras.optimizers.SGD(learning_rate=1e-3)
        sgd.build(mirrored.trainable_variables)
    assert max_abs_diff(weights(mirrored), before) == 0.0, "same initial weights"
    # The step's Python body: a nested tf.function cannot all-reduce under a strategy.
    step = train_step_fn(mirrored, sgd, config, jit_compile=False).python_function
    batches = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(x)
    )  # the global batch, split in two

    @tf.function
    def distributed_step(batch):
        per_replica, _ = strategy.run(step, args=(batch, seed))
        return strategy.reduce("SUM", per_replica, axis=None)

    elbo_mirrored = distributed_step(next(iter(batches)))
    delta_mirrored = [w - b for w, b in zip(weights(mirrored), before)]
    num = sum(float(np.sum(dm * ds)) for dm, ds in zip(delta_mirrored, delta_single))
    den = sum(float(np.sum(ds * ds)) for ds in delta_single)
    return {
        "elbo_single": float(elbo_single),
        "elbo_mirrored": float(elbo_mirrored),
        "ratio": num / den,  # least-squares factor: delta_mirrored ~ ratio * delta_single
        "max_abs_diff": max_abs_diff(delta_mirrored, delta_single),
        "max_abs_delta": max(float(np.max(np.abs(d))) for d in delta_single),
    }


def check_train_equal(images, eval_x):
    config = Config(
        latent_dim=8, hidden_size=64, n_iterations=4, print_every=2, log_every=1, n_eval=len(eval_x)
    )
    runs = {}
    for name, strategy in [
        ("single", None),
        ("mirrored", tf.distribute.MirroredStrategy(REPLICAS)),
    ]:
        result = train(
            config,
            strategy=strategy,
            progress=False,
            verbose=False,
            train_images=images,
            eval_x=eval_x,
        )
        runs[name] = (result.history.train_elbo, weights(result.model))
    return {
        "train_elbo_single": runs["single"][0],
        "train_elbo_mirrored": runs["mirrored"][0],
        "max_abs_diff": max_abs_diff(runs["single"][1], runs["mirrored"][1]),
    }


def main():
    images, _ = data.load_mnist("train")
    images = images[:10000]
    eval_x = data.eval_set(500)
    out = {"logical_cpus": len(tf.config.list_logical_devices("CPU"))}
    out["train"] = check_train(images, eval_x)
    # From here on the noise is off (z = mu), so one device and two see the same loss.
    bounds.reparameterize = lambda mu, sigma, n_samples=1, seed=None: mu
    out["sgd_step"] = check_sgd_step(eval_x[:64])
    out["train_equal"] = check_train_equal(images, eval_x[:64])
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
