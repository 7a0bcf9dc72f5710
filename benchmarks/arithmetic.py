"""The arithmetic a VAE step does, and the CPU's fp32 matrix-multiply peak to set it against.

Shared by ``bench_torch.py`` and ``profile_step.py``, which print each timing as a
fraction of the peak they measure in the same run.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from vae_prac.config import Config


def dense_macs(config: Config) -> tuple[int, int, int]:
    """Multiply-adds per example of (the encoder, one decoder pass, the encoder's first layer).

    The networks are dense layers: 784 -> hidden x layers -> 2 * latent, and latent ->
    hidden x layers -> 784. Biases and activations are left out (a few per cent).
    """
    hidden = [config.hidden_size] * config.hidden_layers
    enc = [784, *hidden, 2 * config.latent_dim]
    dec = [config.latent_dim, *hidden, 784]
    macs = lambda sizes: sum(a * b for a, b in zip(sizes, sizes[1:]))  # noqa: E731
    return macs(enc), macs(dec), enc[0] * enc[1]


def step_flops(config: Config) -> float:
    """Floating-point operations of the matrix products in one training step.

    Forward: the encoder once and the decoder once per sample (k = n_samples); backward:
    the products for the weights' gradients and for the inputs' gradients, except the
    input gradient of the encoder's first layer (the data need none). 2 FLOP per
    multiply-add.
    """
    enc, dec, first = dense_macs(config)
    forward = enc + config.n_samples * dec
    backward = 2 * forward - first
    return 2.0 * (forward + backward) * config.batch_size


def log_px_flops(config: Config, k: int, n: int) -> float:
    """Matrix-product FLOPs of log p(x) with k samples on n images (forward only)."""
    enc, dec, _ = dense_macs(config)
    return 2.0 * (enc + k * dec) * n


def tf_matmul_peak(ops_at_once: int, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of TensorFlow's best fp32 products of two size x size matrices on the CPU.

    The faster of one product and ``ops_at_once`` independent products at once, so that
    the peak is the machine's whether one op or several ops at once use its threads.
    """
    rng = np.random.default_rng(0)
    best = 0.0
    with tf.device("/CPU:0"):
        mats = [
            tf.constant(rng.standard_normal((size, size), dtype=np.float32))
            for _ in range(ops_at_once)
        ]
        for n in sorted({1, ops_at_once}):
            product = tf.function(lambda ms: tf.add_n([tf.reduce_sum(m @ m) for m in ms]))
            product(mats[:n])  # trace and warm up
            for _ in range(repeats):
                start = time.perf_counter()
                float(product(mats[:n]))
                best = max(best, n * 2.0 * size**3 / (time.perf_counter() - start) / 1e9)
    return best
