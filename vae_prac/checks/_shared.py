"""What several check modules share (a private module: notebooks import the checks).

* Telling the student's errors from a check's own: ``judged`` runs a check's body and
  reports an error of the check itself as the check failing, never as the student's
  mistake; ``StudentError`` marks an error that came from the student's code;
  ``error_line`` says an error in one line.
* The fixtures of notebook 05's batch-ELBO check, which notebook 07's beta-weighted ELBO
  check reuses on the same model, batch and seeds: a small VAE with fixed weights and
  random binary images, the ELBO's usual slips computed the slip's way, the judge of
  the noise behind the decoded z, and the statistics that compare averages over seeds.
"""

from __future__ import annotations

import math
import re

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac.checks import Hint
from vae_prac.model import VAE, posterior

tfd = tfp.distributions


# ---------------------------------------------------------------------------------------
# The student's errors and the check's own.


def error_line(err: Exception) -> str:
    """The error in one line. From a traced function TensorFlow gives the traceback first
    ("in user code: ...") and the error after it; Keras adds its message in bold and
    the call's arguments last."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)  # TF's kernel prefix
    bold = re.findall(r"\x1b\[1m(.*?)\x1b\[0m", str(err), flags=re.S)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^\w+(Error|Exception|Warning)\b", line)]
    if bold:
        line = " ".join(bold[-1].split())
        name = errors[-1].split(":")[0] if errors else type(err).__name__
    elif lines and lines[0].startswith("in user code") and errors:
        name, _, line = errors[-1].partition(": ")
    else:
        name, line = type(err).__name__, lines[0] if lines else ""
    line = re.sub(r"\s*\[Op:\w+\].*$", "", line)  # TF's "[Op:Mul] name:" suffix
    line = line[:200].rstrip(". ")
    return f"{name}: {line}" if line else name


class StudentError(Exception):
    """Raised ``from`` an error of the student's code where a check calls it, so that
    ``judged`` reports that error as the student's, not as the check's own."""


def judged(body, *args, what: str = "your function") -> None:
    """Run a check's body, telling the student's errors from the check's own.

    A hint, a task not done (NotImplementedError) and an error of the student's code
    (a ``StudentError`` raised from it, or a Hint a helper made of it) are reported as
    such; any other error is the check failing, never blamed on the student.
    """
    try:
        body(*args)
    except (Hint, NotImplementedError):
        raise
    except StudentError as err:
        raise err.__cause__  # reported by check() as an error in the student's code
    except Exception as err:
        raise Hint(
            f"the check could not finish judging {what}: it failed itself "
            f"({error_line(err)}). That is not a mistake in your code; please tell "
            "your instructor."
        ) from None


# ---------------------------------------------------------------------------------------
# A small VAE and its inputs.


def small_vae(seed: int = 0, scale=1.5, latent_dim: int = 8, hidden_size: int = 32) -> VAE:
    """A small untrained VAE whose q(z|x) is far enough from the prior for the KL to matter.

    Its weights are drawn from a numpy generator with ``seed``, so every check run sees
    the same model; ``scale`` sets their size, one number or (encoder, decoder): a
    smaller one gives a smoother network.
    """
    model = VAE(latent_dim, hidden_size)
    rng = np.random.default_rng(seed)
    scales = scale if isinstance(scale, tuple) else (scale, scale)
    for network, size in zip((model.encoder, model.decoder), scales):
        for layer in network.layers:
            weights = layer.get_weights()
            if weights:
                kernel, bias = weights
                fan_in = kernel.shape[0]
                layer.set_weights(
                    [
                        rng.normal(0, size / np.sqrt(fan_in), kernel.shape).astype(np.float32),
                        rng.normal(0, 0.5, bias.shape).astype(np.float32),
                    ]
                )
    return model


def random_images(n: int, seed: int = 0) -> tf.Tensor:
    """Random binary 'images' [n, 28, 28, 1]: the checks need inputs, not digits."""
    rng = np.random.default_rng(seed)
    return tf.constant((rng.random((n, 28, 28, 1)) < 0.2).astype(np.float32))


# ---------------------------------------------------------------------------------------
# Notebook 05's batch ELBO: its model, batch, seeds and slips (07's beta-ELBO reuses them).

ELBO_BATCH, ELBO_LATENT = 8, 5  # unequal, so a KL summed over the wrong axis shows
ELBO_SEED = (7, 11)
ELBO_OTHER_SEED = (12, 5)
ELBO_N_SEEDS = 300  # the averages over seeds
ELBO_N_SAMPLES = 2000  # the library's expectations
SIGMAS = 6.0  # how far an average may stray, in standard errors


def elbo_model() -> VAE:
    """The model of the batch-ELBO checks (05's and 07's)."""
    # A strong encoder (a KL of about 90 nats over the batch) and a smooth decoder (the
    # log-likelihood varies by a few nats between samples of z): the KL's slips stand
    # far out of the Monte Carlo noise.
    return small_vae(seed=0, scale=(1.5, 0.5), latent_dim=ELBO_LATENT)


def elbo_seeds():
    """The seeds of the averages (symbolic-shaped int32 tensors, as the training step's)."""
    return [tf.constant([i, 101], tf.int32) for i in range(ELBO_N_SEEDS)]


def _log_likelihood(model, z, x, logits_fn=None):
    """log p(x|z) per image (summed over pixels); ``logits_fn`` alters the logits."""
    logits = model.decoder(z)
    if logits_fn is not None:
        logits = logits_fn(logits)
    return tfd.Independent(tfd.Bernoulli(logits=logits), 3).log_prob(x)


def elbo_slips(model, x, eps):
    """The batch ELBO and its usual slips, each computed the slip's way on the noise ``eps``.

    ``eps`` is [batch, d] (one draw) or [L, batch, d] (then the log-likelihoods are
    averaged over the L draws: expectations). Returns (the ELBO, {slip: (value, hint)}).
    """
    mu, sigma = model.encoder(x)
    q, p = posterior(mu, sigma), model.prior()
    kl = tfd.kl_divergence(q, p).numpy().astype(np.float64)
    kl_sq = tfd.kl_divergence(posterior(mu, sigma**2), p).numpy().astype(np.float64)
    # The closed form written by hand with log sigma where log sigma^2 belongs.
    kl_log_sigma = kl + 0.5 * np.sum(np.log(sigma.numpy().astype(np.float64)), axis=-1)

    def ell(z, logits_fn=None):
        flat = tf.reshape(z, [-1, ELBO_LATENT])
        values = _log_likelihood(model, flat, tf.tile(x, [len(flat) // len(x), 1, 1, 1]), logits_fn)
        return tf.reduce_mean(tf.reshape(values, [-1, len(x)]), axis=0).numpy().astype(np.float64)

    z = mu + sigma * eps
    ll, ll_sq = ell(z), ell(mu + sigma**2 * eps)
    ll_mu = ell(mu)
    ll_sigmoid = ell(z, tf.sigmoid)
    # The Monte Carlo KL on the same z; its expectation is the closed form.
    if eps.shape.rank == 2:
        mc = (q.log_prob(z) - p.log_prob(z)).numpy().astype(np.float64)
    else:
        mc = kl
    right = np.sum(ll - kl)
    kl_hint = (
        "the KL has the wrong sign: the ELBO is the expected log-likelihood minus "
        "KL(q(z|x) || p(z)), and a KL is never negative."
    )
    sq_hint = (
        "sigma squared is used where the standard deviation belongs: the encoder's "
        "sigma is already the standard deviation (the scale) of q(z|x)."
    )
    return right, {
        "sign": (
            -right,
            "it has the wrong sign: return the ELBO itself, which is "
            "negative; the loss that training minimizes, -ELBO, comes later.",
        ),
        "batch mean": (
            right / ELBO_BATCH,
            f"that is the average over the {ELBO_BATCH} images; the task asks "
            f"for the sum over the batch, as the original practical did.",
        ),
        "kl sign": (np.sum(ll + kl), kl_hint),
        "kl sign mc": (np.sum(ll + mc), kl_hint),
        "kl missing": (
            np.sum(ll),
            "the KL term is missing: the ELBO is the expected "
            "log-likelihood minus KL(q(z|x) || p(z)).",
        ),
        "ll missing": (
            -np.sum(kl),
            "the log-likelihood term is missing: the ELBO is "
            "log p(x|z), with z drawn from q(z|x), minus the KL.",
        ),
        "ll missing mc": (
            -np.sum(mc),
            "the log-likelihood term is missing: the ELBO is "
            "log p(x|z), with z drawn from q(z|x), minus the KL.",
        ),
        "pixel mean": (
            np.sum(ll / 784 - kl),
            "the log-likelihood is averaged over the pixels: log p(x|z) of an "
            "image is the sum over its 784 pixels (a mean would weigh the KL "
            "784 times too much).",
        ),
        "latent mean": (
            np.sum(ll - kl / ELBO_LATENT),
            "the KL is averaged over the latent dimensions: the KL of an image "
            "is the sum over its latent dimensions.",
        ),
        "kl not summed": (
            np.sum(ELBO_LATENT * ll - kl),
            "the KL of each image was left as one value per latent "
            "dimension, so each image's log-likelihood was counted once per "
            "latent dimension: the KL of an image is one number, summed over "
            "the latent dimensions.",
        ),
        "sigmoid": (
            np.sum(ll_sigmoid - kl),
            "the likelihood was given probabilities (a sigmoid of the decoder's "
            "output) where it expects logits: the decoder's outputs are already "
            "logits.",
        ),
        "sigma squared": (np.sum(ll_sq - kl_sq), sq_hint),
        "sigma squared in z": (np.sum(ll_sq - kl), sq_hint),
        "sigma squared in kl": (np.sum(ll - kl_sq), sq_hint),
        "kl log sigma": (
            np.sum(ll - kl_log_sigma),
            "the KL's log term is half what it should be: the closed form "
            "has log sigma^2, which is 2 log sigma, not log sigma.",
        ),
        "kl without -1": (
            np.sum(ll - kl - 0.5 * ELBO_LATENT),
            "the KL is too large by 1/2 per latent dimension: a constant "
            "term of the closed form is missing (the KL of q = p, mu = 0 "
            "and sigma = 1, must be 0).",
        ),
        "batch times": (
            ELBO_BATCH * right,
            f"the value is {ELBO_BATCH} times the batch ELBO: one term kept an "
            f"extra axis (e.g. the log-likelihood summed over axes [1, 2] "
            f"only, shape [batch, 1]), so subtracting the KL, shape [batch], "
            f"broadcast to [batch, batch]. Each term needs shape [batch].",
        ),
        "z = mu": (
            np.sum(ll_mu - kl),
            "z is the posterior mean mu, not a sample: the expectation over q(z|x) "
            "needs z drawn from q(z|x), with its noise taken from seed.",
        ),
    }


def unit(grads):
    """``grads`` scaled to length 1 (all of them together), as NumPy arrays."""
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(g**2) for g in grads]))
    return [(g / norm).numpy() for g in grads]


def along(grads, direction):
    """The directional derivative: gradients dotted with a direction (None counts as 0)."""
    return tf.add_n(
        [
            tf.reduce_sum(tf.cast(g, tf.float32) * v)
            for g, v in zip(grads, direction)
            if g is not None
        ]
        + [0.0]
    )


def same(a, b) -> bool:
    """Equal up to float32 rounding (sums of ~5000 nats): a slip's formula reproduced."""
    return bool(np.isclose(a, b, rtol=1e-6, atol=5e-3))


def biased(diff: np.ndarray, scale: float) -> bool:
    """Whether paired differences are too far from 0 on average to be Monte Carlo noise."""
    error = diff.std() / math.sqrt(len(diff))
    return abs(diff.mean()) > SIGMAS * error + 0.01 + 1e-5 * abs(scale)


def name_slip(got: float, other: float, ref: dict) -> None:
    """The hint of the slip whose formula gives the student's values on both seeds' noise
    (``ref["same_seed"]`` and ``ref["other_seed"]``, from ``elbo_slips``), if one does."""
    for (value, hint), (value_other, _) in zip(
        ref["same_seed"].values(), ref["other_seed"].values()
    ):
        if same(got, value) and same(other, value_other):
            raise Hint(hint)


def judge_gradients_reach(g_enc, g_dec) -> None:
    """Gradients must reach every weight of both networks: training updates them all.
    ``g_enc`` and ``g_dec`` are the value's gradients for the encoder's and decoder's."""
    cut = "(NumPy, .numpy(), float() or tf.stop_gradient cut the path)"
    if all(g is None for g in g_enc + g_dec):
        raise Hint(
            f"no gradient reaches the weights: the value was not computed with "
            f"TensorFlow operations all the way {cut}, so training could not learn "
            f"from it."
        )
    if any(g is None for g in g_enc):
        raise Hint(
            f"no gradient reaches the encoder's weights phi {cut}: both the "
            f"sample z and the KL must be TensorFlow computations of mu and sigma."
        )
    if any(g is None for g in g_dec):
        raise Hint(
            f"no gradient reaches the decoder's weights theta {cut}: the "
            f"log-likelihood must be a TensorFlow computation of the decoder's "
            f"output."
        )


def judge_seeds_differ(values: np.ndarray) -> None:
    """The compiled function's values over ``elbo_seeds()`` must not all be the same."""
    if np.ptp(values) == 0:
        raise Hint(
            "inside tf.function it gives the same value for every seed: the noise "
            "was drawn once, when the function was traced (NumPy or Python random "
            "numbers become constants of the graph). Draw it with TensorFlow from "
            "seed."
        )


class _Watched(keras.Model):
    """A decoder that remembers every z it is given eagerly, then decodes it.

    Inside a ``tf.function`` (a student may compile the ELBO) z has no value yet, and
    nothing is recorded: the value checks judge such a function.
    """

    def __init__(self, decoder):
        super().__init__(name="watched_decoder")
        self.decoder, self.seen = decoder, []

    def call(self, z):
        if tf.executing_eagerly():
            self.seen.append(np.asarray(z, np.float64))
        return self.decoder(z)


NOISE_SEEDS = 60  # x 8 images x 5 dimensions: 2400 draws of the noise


def judge_noise(fn, model, x) -> None:
    """The noise behind the z the student decodes: eps = (z - mu) / sigma must be standard
    normal, independent across images and latent dimensions.

    A biased or shared noise can hide in the average of a smooth decoder's
    log-likelihood, so the check looks at z itself, as the decoder receives it.
    """
    watched = VAE(ELBO_LATENT, encoder=model.encoder, decoder=_Watched(model.decoder))
    mu, sigma = (np.asarray(t, np.float64) for t in model.encoder(x))
    draws = []
    for i in range(NOISE_SEEDS):
        watched.decoder.seen.clear()
        fn(watched, x, seed=tf.constant([i, 202], tf.int32))
        draws += [
            z.reshape(-1, *mu.shape)
            for z in watched.decoder.seen
            if z.shape[-1] == mu.shape[-1] and z.size % mu.size == 0
        ]
    if not draws:
        return  # it never decoded a z of q(z|x)'s shape: the value checks judge it
    eps = (np.concatenate(draws) - mu) / sigma  # [draws, batch, latent]
    if np.allclose(eps, eps[..., :1], atol=1e-4):
        raise Hint(
            "every latent dimension of an image got the same noise: draw the "
            "noise with the full shape of mu, [batch, latent_dim], so that each "
            "dimension gets its own."
        )
    if np.allclose(eps, eps[:, :1], atol=1e-4):
        raise Hint(
            "every image of the batch got the same noise: draw the noise with the "
            "full shape of mu, [batch, latent_dim], so that each image gets its own."
        )

    def standard_normal(e):
        within = np.mean(np.abs(e) < 1.0)
        return abs(e.mean()) < 0.1 and abs(e.std() - 1.0) < 0.1 and abs(within - 0.6827) < 0.04

    if standard_normal(eps):
        return
    offset = eps * sigma  # z - mu
    for scale, name in (
        (sigma**2, "sigma squared, the variance"),
        (np.sqrt(sigma), "the square root of sigma"),
    ):
        if standard_normal(offset / scale):
            raise Hint(
                f"z's noise is scaled by {name}: sigma is already the standard "
                f"deviation of q(z|x); scale the standard normal noise by sigma itself."
            )
    within = np.mean(np.abs(eps) < 1.0)
    raise Hint(
        f"the noise behind z, (z - mu) / sigma, has mean {eps.mean():.2f} and "
        f"standard deviation {eps.std():.2f}, with {within:.0%} of it within 1 of 0: "
        f"standard normal noise has mean 0, standard deviation 1 and 68% within 1. "
        f"Draw it from a standard normal distribution."
    )
