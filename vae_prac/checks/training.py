"""Checks for notebook 05, training a VAE.

    from vae_prac.checks import training as check
    check.batch_elbo(my_batch_elbo)         # Code Task: the ELBO summed over a batch
    check.rmsprop_scale(answer_rmsprop)     # Math Task: sum or mean over the batch?
    check.decode_midpoint(decode_midpoint)  # Code Task: decode a z of your choice

The code checks build a small VAE of their own and compare the student's function with
the library's on the same inputs and the same stateless seed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vae_prac.checks import Hint, check, choice
from vae_prac.elbo import batch_elbo as _batch_elbo, elbo as _elbo
from vae_prac.model import VAE

__all__ = ["batch_elbo", "rmsprop_scale", "decode_midpoint", "decode_midpoint_reference"]


def _small_vae(seed: int = 0, scale: float = 1.5, latent_dim: int = 8,
               hidden_size: int = 32) -> VAE:
    """A small untrained VAE whose q(z|x) is far enough from the prior for the KL to matter.

    Its weights are drawn from a numpy generator with ``seed``, so every check run sees
    the same model; ``scale`` sets their size (a smaller one gives a smoother decoder).
    """
    model = VAE(latent_dim, hidden_size)
    rng = np.random.default_rng(seed)
    for network in (model.encoder, model.decoder):
        for layer in network.layers:
            weights = layer.get_weights()
            if weights:
                kernel, bias = weights
                fan_in = kernel.shape[0]
                layer.set_weights([
                    rng.normal(0, scale / np.sqrt(fan_in), kernel.shape).astype(np.float32),
                    rng.normal(0, 0.5, bias.shape).astype(np.float32)])
    return model


def _images(n: int, seed: int = 0) -> tf.Tensor:
    """Random binary 'images' [n, 28, 28, 1]: the checks need inputs, not digits."""
    rng = np.random.default_rng(seed)
    return tf.constant((rng.random((n, 28, 28, 1)) < 0.2).astype(np.float32))


def _scalar(value, what: str) -> float:
    if value is None:
        raise Hint(f"{what} returned None: did you forget the `return`?")
    array = np.asarray(value, dtype=np.float64)
    if array.shape != ():
        raise Hint(f"{what} returned shape {array.shape}; expected a single number.")
    return float(array)


@check("batch_elbo")
def batch_elbo(fn) -> None:
    """``fn(model, x, seed)`` must equal ``vae_prac.batch_elbo(model, x, seed=seed)``.

    That is the ELBO of each image (expected log-likelihood, one sample of z, minus the
    analytic KL) summed over the batch, with the noise drawn from ``seed``; and
    gradients must reach both networks.
    """
    model = _small_vae()
    x = _images(8)
    seed = tf.constant([7, 11], tf.int32)
    expected = float(_batch_elbo(model, x, seed=seed))
    terms = _elbo(model, x, seed=seed)
    value = fn(model, x, seed)
    if value is not None and np.shape(value) == (8,):
        raise Hint("it returned one ELBO per image, shape [8]. Sum them over the batch "
                   "(tf.reduce_sum), as the original practical did.")
    got = _scalar(value, "my_batch_elbo")
    if not np.isfinite(got):
        raise Hint(f"it returned {got}.")

    close = lambda a, b: np.isclose(a, b, rtol=1e-5, atol=1e-2)  # noqa: E731
    if not close(got, expected):
        ell = float(tf.reduce_sum(terms.expected_log_likelihood))
        kl = float(tf.reduce_sum(terms.kl))
        if close(got, -expected):
            raise Hint("it has the wrong sign: return the ELBO itself; the loss to "
                       "minimize, -ELBO, comes later.")
        if close(got, expected / 8):
            raise Hint("it averaged over the batch; here, as in the original, sum over it.")
        if close(got, ell + kl):
            raise Hint("the KL has the wrong sign: ELBO = E[log p(x|z)] - KL(q || p).")
        if close(got, ell):
            raise Hint("the KL term is missing: ELBO = E[log p(x|z)] - KL(q(z|x) || p(z)).")
        if close(got, -kl):
            raise Hint("the expected log-likelihood term is missing: "
                       "model.likelihood(z).log_prob(x).")
        again = _scalar(fn(model, x, seed), "my_batch_elbo")
        if got != again:
            raise Hint("two calls with the same seed gave different values. Draw z with "
                       "vae_prac.reparameterize(mu, sigma, seed=seed) so the noise comes "
                       "from the seed.")
        raise Hint(f"with this seed the batch ELBO is {expected:.2f}, yours is {got:.2f}. "
                   f"Check each part: z from vae_prac.reparameterize(mu, sigma, seed=seed), "
                   f"the log-likelihood of x, the KL, the sum over the batch.")

    with tf.GradientTape() as tape:
        value = fn(model, x, seed)
    encoder_grads = tape.gradient(value, model.encoder.trainable_variables)
    if any(g is None for g in encoder_grads):
        raise Hint("the value is right, but no gradient reaches the encoder: build z from "
                   "mu and sigma with TensorFlow ops (no numpy, no .numpy()).")


def rmsprop_scale(answer) -> bool:
    """Math Task: what happens with RMSProp if the batch sum becomes a batch mean? (b)"""
    return choice(
        "rmsprop_scale", answer, "b",
        "write out one RMSProp step: the update is lr * g / sqrt(v + eps), where v is a "
        "running average of g^2. What happens to it when every gradient g is divided by "
        "the batch size?")


def decode_midpoint_reference(model, x_a, x_b):
    """The decoded pixel probabilities [28, 28, 1] of the midpoint of two posterior means."""
    mu, _ = model.encoder(tf.stack([tf.reshape(tf.cast(x_a, tf.float32), [28, 28, 1]),
                                    tf.reshape(tf.cast(x_b, tf.float32), [28, 28, 1])]))
    z = tf.reduce_mean(mu, axis=0, keepdims=True)
    return model.decode(z)[0]


@check("decode_midpoint")
def decode_midpoint(fn) -> None:
    """``fn(model, x_a, x_b)``: pixel probabilities [28, 28, 1] decoded from the average of
    the posterior means of the two images."""
    model = _small_vae(seed=1)
    x = _images(2, seed=1)
    expected = decode_midpoint_reference(model, x[0], x[1]).numpy()
    value = fn(model, x[0], x[1])
    if value is None:
        raise Hint("decode_midpoint returned None: did you forget the `return`?")
    got = np.asarray(value, dtype=np.float64)
    if got.shape == (1, 28, 28, 1):
        raise Hint("it returned a batch of one image, shape [1, 28, 28, 1]; return the "
                   "image itself, shape [28, 28, 1] (index [0]).")
    if got.shape != (28, 28, 1):
        raise Hint(f"it returned shape {got.shape}; expected one image, [28, 28, 1].")
    if got.min() < 0 or got.max() > 1:
        raise Hint("some values lie outside [0, 1]: those are logits. model.decode(z) "
                   "gives pixel probabilities.")
    if np.allclose(got, expected, atol=1e-5):
        return
    if np.all((got == 0) | (got == 1)):
        raise Hint("it returned a binary sample; return pixel probabilities: "
                   "model.decode(z) with the default sample=False.")
    mu, _ = model.encoder(x)
    averaged_images = model.decode(mu).numpy().mean(axis=0)
    if np.allclose(got, averaged_images, atol=1e-5):
        raise Hint("it averaged the two decoded images. Average the two codes z first, "
                   "then decode that one z.")
    again = np.asarray(fn(model, x[0], x[1]), dtype=np.float64)
    if not np.array_equal(got, again):
        raise Hint("two calls gave different images: use the posterior means mu from "
                   "model.encoder(x), not random samples of z.")
    raise Hint("it differs from decoding the midpoint (mu_a + mu_b) / 2 of the two "
               "posterior means. Encode both images, average their means, decode.")
