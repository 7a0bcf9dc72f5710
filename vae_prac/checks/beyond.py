"""Checks for notebook 07, beyond the ELBO.

    from vae_prac.checks import beyond as check
    check.beta_elbo(my_beta_elbo)         # Code Task: E[log p(x|z)] - beta * KL, summed
    check.conv_networks(my_conv_networks) # Code Task: a convolutional encoder and decoder
    check.beta_bound(answer_beta)         # Math Task: for which beta is L_beta a bound?

* ``beta_elbo`` is notebook 05's batch ELBO at beta = 1, so it runs on 05's model, batch
  and seeds, with 05's slips (``vae_prac.checks._shared``), and must pass what 05's
  check asks: a scalar float32 tensor (train() sums it in float32), the same value for
  the same seed (a tuple or a tensor), 05's slips named on the same noise, gradients
  reaching both networks, the noise behind the decoded z standard normal and drawn for
  every image and latent dimension (05's ``judge_noise``), and the same values inside
  ``tf.function``. The objective is linear in beta: on one seed's noise f(0) is the
  log-likelihood term and f(0) - f(1) the KL term. So beta must sit on the KL alone (not
  squared, not dividing, not on the log-likelihood or on both), no gradient may be cut
  from z (f(0) must reach the encoder) or from the KL (f(0) - f(1) must), and over 05's
  300 seeds, paired with the library on the same seeds, each term and its gradients
  along phi and theta must agree on average with the library's, whether the KL is in
  closed form or a Monte Carlo estimate; a slip (a mean over pixels, latent dimensions
  or the batch, sigma^2, the KL reversed ...) is named when the term's average matches
  it. Finally beta must work as a ``tf.Variable`` inside ``tf.function`` (the warm-up
  changes it while training runs). It cannot tell apart estimates with the right
  expectations and gradients: another unbiased estimator of either term passes, as it
  should; nor a log-likelihood from probabilities, finite on its untrained model.
* ``conv_networks`` builds the pair for a latent size of its own and checks what
  ``VAE(encoder=..., decoder=...)`` needs: shapes for any batch size and at least one
  convolution. Then it sets every Dense and convolution weight to values of its own,
  drawn by shape (so a network initialised at zero is judged like any other), and
  judges what the last layers compute: the encoder's last Dense layer (2 * latent_dim
  units, or two of latent_dim) is given kernel 0 and biases of the check's choosing,
  so mu must be those biases exactly and sigma an allowed positive function of the
  other half (1e-6 + softplus; exp of a log-sigma or of half a log-variance too), and
  with its kernel negated mu must be negated; the decoder's last layer (a convolution
  to one channel, or a Dense of 784 units) is given kernel 0 and a bias b, so every
  logit must be b, and negated with its kernel. A ReLU, tanh, sigmoid or the like at
  the end, sigma computed from mu's half and swapped halves are each named after their
  formula reproduced the outputs. Last, sigma > 0, mu and the logits depend on their
  inputs, and every weight gets a gradient from the ELBO. Where no such last layer is
  found (another kind of layer, no bias), only the outputs' signs are judged, so an
  activation at the end that keeps both signs (a tanh) would pass there.

As everywhere in ``vae_prac.checks``, a slip is named only after its formula has been
verified to give the student's values.
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac.bounds import elbo as _elbo
from vae_prac.checks import Hint, apart, check, choice, quiet_tensorflow, returned_array

# Notebook 05's batch ELBO check: its model, batch, seeds, slips and noise judge.
from vae_prac.checks._shared import (
    ELBO_BATCH,
    ELBO_LATENT,
    ELBO_OTHER_SEED,
    ELBO_SEED,
    SIGMAS,
    along,
    biased,
    elbo_model,
    elbo_seeds,
    elbo_slips,
    judge_gradients_reach,
    judge_noise,
    judge_seeds_differ,
    name_slip,
    random_images,
    same,
    unit,
)
from vae_prac.model import VAE, posterior

tfd = tfp.distributions

__all__ = ["beta_elbo", "conv_networks", "beta_bound"]


def _close(a, b) -> bool:
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-3))


# ---------------------------------------------------------------------------------------
# The beta-weighted ELBO.
#
# At beta = 1 the answer is notebook 05's batch ELBO, so it is judged on 05's model, batch
# and seeds, with 05's slips. The objective is linear in beta: on one seed's noise
# f(0) is the log-likelihood term and f(0) - f(1) the KL term, so each term's value and
# gradient can be judged on its own, and a slip named by the term it is in.


def _beta_call(fn, model, x, seed, beta):
    """``fn`` called as train() calls ``functools.partial(fn, beta=beta)``."""
    try:
        return fn(model, x, seed, beta=beta)
    except TypeError as err:
        if "argument 'beta'" in str(err):  # unexpected, or given twice
            raise Hint(
                "keep the signature my_beta_elbo(model, x, seed, beta): later cells "
                "call it as functools.partial(my_beta_elbo, beta=...)(model, x, "
                "seed)."
            ) from None
        raise


def _value(fn, model, x, seed, beta) -> float:
    """The student's value as a float, or a hint saying what came back instead."""
    value = _beta_call(fn, model, x, seed, beta)
    got = returned_array(value, "my_beta_elbo", "a number")
    if got.shape == (ELBO_BATCH,):
        raise Hint(
            f"it returned one value per image, shape [{ELBO_BATCH}]; return their "
            f"sum over the batch, a single number (what train() maximizes)."
        )
    if got.shape != ():
        raise Hint(
            f"it returned shape {list(got.shape)}; expected a single number, the "
            f"objective summed over the batch."
        )
    if not tf.is_tensor(value):
        kind = (
            f"NumPy {np.asarray(value).dtype} number"
            if isinstance(value, (np.generic, np.ndarray))
            else f"Python {type(value).__name__}"
        )
        raise Hint(
            f"it returned a {kind}, not a TensorFlow tensor: training takes the "
            f"gradient of this value, so it must stay a tensor to the end (float(), "
            f".numpy() or NumPy take it out of TensorFlow, and no gradient could "
            f"reach the weights)."
        )
    if value.dtype != tf.float32:
        raise Hint(
            f"it returned a {value.dtype.name} tensor, and train() adds the values "
            f"up in float32 (as the weights are): compute in any precision, but "
            f"return a float32 tensor."
        )
    if not np.isfinite(got):
        raise Hint(
            f"it returned {float(got)} for beta = {beta}: look for a log of 0, or a "
            f"division by beta."
        )
    return float(got)


BETA_N_SAMPLES = 2000  # the expectations of 05's slips


def _library_beta_elbo(model, x, seed, beta):
    mu, sigma = model.encoder(x)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=seed)
    return tf.reduce_sum(
        model.likelihood(z).log_prob(x)
        - beta * tfd.kl_divergence(posterior(mu, sigma), model.prior())
    )


@functools.lru_cache(maxsize=1)
def _beta_reference():
    """Everything the check compares with, on notebook 05's model, batch and seeds; the
    same numbers on every run.

    05's slips of the batch ELBO (beta = 1) on the noise of two seeds and in expectation;
    the directions along which gradients are compared (the unit gradients of E[log
    p(x|z)] in phi and in theta, and of the KL in phi); the library's terms per seed (the
    columns of ``per_seed``: see ``_beta_probe``); the slips of each term.
    """
    model, x = elbo_model(), random_images(ELBO_BATCH)
    encoder, decoder = model.encoder.trainable_variables, model.decoder.trainable_variables
    mu, sigma = model.encoder(x)
    noise = {
        name: tf.random.stateless_normal(tf.shape(mu), seed=seed)
        for name, seed in (("same", ELBO_SEED), ("other", ELBO_OTHER_SEED))
    }
    right, same_seed = elbo_slips(model, x, noise["same"])
    _, other_seed = elbo_slips(model, x, noise["other"])
    many = tf.random.stateless_normal([BETA_N_SAMPLES, *mu.shape], seed=[3, 3])
    expected, on_average = elbo_slips(model, x, many)

    with tf.GradientTape(persistent=True) as tape:
        mu, sigma = model.encoder(x)
        q, p = posterior(mu, sigma), model.prior()
        kl_sum = tf.reduce_sum(tfd.kl_divergence(q, p))
        ell = tf.reduce_sum(
            tf.reduce_mean(
                model.likelihood(mu + sigma * many[: BETA_N_SAMPLES // 4]).log_prob(x), axis=0
            )
        )
    directions = (
        unit(tape.gradient(ell, encoder)),
        unit(tape.gradient(ell, decoder)),
        unit(tape.gradient(kl_sum, encoder)),
    )
    del tape
    with quiet_tensorflow():
        probe = _beta_probe(_library_beta_elbo, model, x, directions)
        per_seed = np.array([probe(s).numpy() for s in elbo_seeds()], np.float64)
    kl, ll = float(kl_sum), float(per_seed[:, 0].mean())

    def kl_of(q_):
        return float(tf.reduce_sum(tfd.kl_divergence(q_, p)))

    log_sigma = float(tf.reduce_sum(tf.math.log(sigma)))
    sq = "sigma squared is used where the standard deviation belongs in the KL: "
    kl_slips = {
        "sign": (
            -kl,
            "the KL term enters with the wrong sign: the objective is the expected "
            "log-likelihood *minus* beta times KL(q(z|x) || p(z)), and a KL is "
            "never negative.",
        ),
        "batch mean": (
            kl / ELBO_BATCH,
            "the KL term is averaged over the batch while the "
            "log-likelihood is summed: sum both over the "
            "batch.",
        ),
        "latent mean": (
            kl / ELBO_LATENT,
            "the KL is averaged over the latent dimensions: "
            "the KL of an image is the sum over its latent "
            "dimensions.",
        ),
        "reverse": (
            float(tf.reduce_sum(tfd.kl_divergence(p, q))),
            "that is KL(p(z) || q(z|x)), the divergence the other way round; the "
            "objective has KL(q(z|x) || p(z)).",
        ),
        "sigma squared": (
            kl_of(posterior(mu, sigma**2)),
            sq + "the encoder's sigma is already the standard deviation of "
            "q(z|x), so its variance is sigma^2.",
        ),
        "variance": (
            kl_of(posterior(mu, tf.sqrt(sigma))),
            "in the KL, sigma is taken for the variance of q(z|x); it is the "
            "standard deviation (the variance is sigma^2).",
        ),
        "half log": (
            kl + 0.5 * log_sigma,
            "the KL's log term is log sigma where it should be log sigma^2 = "
            "2 log sigma (per latent dimension, KL = (mu^2 + sigma^2 - 1 - "
            "log sigma^2) / 2).",
        ),
        "without -1": (
            kl + 0.5 * ELBO_LATENT * ELBO_BATCH,
            "the KL is too large by 1/2 per latent dimension: a constant term of "
            "the closed form is missing (the KL of q = p, mu = 0 and sigma = 1, "
            "must be 0).",
        ),
    }
    ll_slips = {
        "batch mean": (
            ll / ELBO_BATCH,
            "the log-likelihood term is averaged over the batch "
            "while the KL is summed: sum both over the batch.",
        ),
        "pixel mean": (
            ll / 784,
            "the log-likelihood is averaged over the pixels: log "
            "p(x|z) of an image is the sum over its 784 pixels (a "
            "mean would weigh the KL 784 times too much).",
        ),
        "per latent": (
            ll * ELBO_LATENT,
            "each image's log-likelihood was counted once per latent dimension: "
            "the KL was left as one value per latent dimension. The KL of an "
            "image is one number, the sum over its latent dimensions.",
        ),
    }
    return dict(
        right=right,
        same_seed=same_seed,
        other_seed=other_seed,
        expected=expected,
        on_average=on_average,
        per_seed=per_seed,
        kl=kl,
        ll=ll,
        kl_slips=kl_slips,
        ll_slips=ll_slips,
        directions=directions,
    )


def _beta_probe(fn, model, x, directions):
    """A compiled seed -> [f(0), f(0) - f(1), d f(0) along phi, along theta, d (f(0) -
    f(1)) along phi], with the seed a symbolic int32 tensor as in the training step."""
    encoder, decoder = model.encoder.trainable_variables, model.decoder.trainable_variables
    enc_ll, dec_ll, enc_kl = ([tf.constant(v) for v in d] for d in directions)

    @tf.function(input_signature=[tf.TensorSpec([2], tf.int32)])
    def probe(seed):
        with tf.GradientTape(persistent=True) as tape:
            f0 = tf.cast(fn(model, x, seed, beta=0.0), tf.float32)
            f1 = tf.cast(fn(model, x, seed, beta=1.0), tf.float32)
            kl = f0 - f1
        a_enc, a_dec = tape.gradient(f0, [encoder, decoder])
        k_enc = tape.gradient(kl, encoder)
        return tf.stack([f0, kl, along(a_enc, enc_ll), along(a_dec, dec_ll), along(k_enc, enc_kl)])

    return probe


def _near(values, target, right) -> bool:
    """Whether per-seed ``values`` average to a slip's ``target``, when that is clearly
    apart from the ``right`` expectation (0.5 and 2%: the error of the references)."""
    values = np.asarray(values, np.float64)
    error = SIGMAS * values.std() / math.sqrt(len(values)) + 0.5
    gap = abs(target - right)
    return gap > 4 * error and abs(values.mean() - target) < error + 0.02 * gap


def _judge_terms(mine: np.ndarray, beta_ref: dict) -> None:
    """Each term's value, then its gradient, on average over 05's seeds (paired)."""
    lib, kl, ll = beta_ref["per_seed"], beta_ref["kl"], beta_ref["ll"]
    n = len(mine)
    a, k = mine[:, 0], mine[:, 1]
    a_bad = biased(a - lib[:, 0], ll)
    k_bad = biased(k - lib[:, 1], kl)
    if a_bad or k_bad:
        if _near(a, -kl, ll) and _near(k, -ll, kl):
            raise Hint(
                "beta multiplies the log-likelihood, not the KL: with beta = 0 "
                "what is left should be the expected log-likelihood."
            )
        if _near(a, ll / ELBO_BATCH, ll) and _near(k, kl / ELBO_BATCH, kl):
            raise Hint(
                "the objective is averaged over the batch: sum it over the images, "
                "as train() expects (a batch ELBO is a sum over the batch)."
            )
        if k_bad:
            for value, hint in beta_ref["kl_slips"].values():
                if _near(k, value, kl):
                    raise Hint(hint)
        if a_bad:
            for value, hint in beta_ref["ll_slips"].values():
                if _near(a, value, ll):
                    raise Hint(hint)
        # At beta = 1 it is notebook 05's batch ELBO: 05's slips, on average.
        for value, hint in beta_ref["on_average"].values():
            if _near(a - k, value, beta_ref["expected"]):
                raise Hint(hint)
        if k_bad:
            mine_, right = apart(float(k.mean()), kl, "f", 2)
            raise Hint(
                f"f(beta=0) - f(beta=1), the KL term, averages {mine_} over {n} "
                f"seeds, but KL(q(z|x) || p(z)) summed over the batch is {right}: "
                f"the KL is biased (if it is a Monte Carlo estimate, log q(z|x) - "
                f"log p(z) on the sample z, check both densities)."
            )
        mine_, right = apart(float(a.mean()), float(lib[:, 0].mean()), "f", 2)
        raise Hint(
            f"with beta = 0 it averages {mine_} over {n} seeds, while the library's "
            f"expected log-likelihood of the same batch averages {right} on the same "
            f"seeds: the estimate is biased. Check z (drawn from q(z|x) with the "
            f"noise from seed) and the log-likelihood (the decoder gives logits; "
            f"summed over pixels and over the batch)."
        )
    if biased(mine[:, 2] - lib[:, 2], lib[:, 2].mean()):
        raise Hint(
            "the log-likelihood term (all that is left at beta = 0) is right on "
            "average, but not its gradient with respect to the encoder's weights "
            "phi: the sample z must be a differentiable function of mu and sigma, "
            "with neither cut from the gradient (tf.stop_gradient, or values taken "
            "out of TensorFlow)."
        )
    if biased(mine[:, 3] - lib[:, 3], lib[:, 3].mean()):
        raise Hint(
            "the value is right on average, but its gradient with respect to the "
            "decoder's weights theta is not: compute the log-likelihood from the "
            "decoder's output with TensorFlow operations all the way."
        )
    if biased(mine[:, 4] - lib[:, 4], lib[:, 4].mean()):
        raise Hint(
            "the KL term, f(beta=0) - f(beta=1), is right on average, but not its "
            "gradient with respect to the encoder's weights phi: part of the KL is "
            "cut from the gradient (tf.stop_gradient on mu, sigma or the KL, or "
            "values taken out of TensorFlow), so training could not shrink it."
        )


def _error_line(err: Exception) -> str:
    """The last line of an error raised inside tf.function (the traceback comes first)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    last, name = (lines[-1][:200].rstrip(". ") if lines else ""), type(err).__name__
    return last if last.startswith(name) else f"{name}: {last}"


def _none_or_zero(grads) -> bool:
    return all(g is None or not np.any(np.asarray(g)) for g in grads)


@check("beta_elbo")
def beta_elbo(fn) -> None:
    """``fn(model, x, seed, beta)``: sum over the batch of E[log p(x|z)] - beta * KL.

    See the module's docstring. What it cannot tell apart: any estimate of the two terms
    whose values and gradients are unbiased passes (a Monte Carlo KL, on the same z or
    on a sample of its own, "sticking the landing" included), as it should; and a
    log-likelihood computed from probabilities (log sigmoid) is finite on the check's
    untrained model, so it passes here although it overflows once a trained decoder is
    sure of its pixels.
    """
    ref = _beta_reference()
    model, x = elbo_model(), random_images(ELBO_BATCH)
    seed = tf.constant(ELBO_SEED, tf.int32)

    # The noise comes from the seed: the same seed, as a tensor or a tuple, the same value.
    v1 = _value(fn, model, x, seed, 1.0)
    again = _value(fn, model, x, ELBO_SEED, 1.0)
    if not _close(v1, again):
        a, b = apart(v1, again, "f", 2)
        raise Hint(
            f"two calls with the same seed gave different values ({a} and {b}): "
            f"draw z from q(z|x) with its noise taken from seed (stateless), so that "
            f"the same seed gives the same z."
        )

    # Linear in beta on one seed's noise, with beta on the KL alone.
    v0, v25 = (_value(fn, model, x, seed, b) for b in (0.0, 2.5))
    if _close(v0, v1):
        raise Hint("beta = 0 and beta = 1 gave the same value: beta must multiply the KL term.")
    if not np.isclose(v25, v0 - 2.5 * (v0 - v1), rtol=1e-4, atol=1e-2):
        raise Hint(
            "the value is not linear in beta: beta should multiply the KL term "
            "exactly once (not beta squared, not a division by beta)."
        )
    if abs(v0) < 1e-3 * abs(v1):
        raise Hint(
            "with beta = 0 it gives 0: beta multiplies the whole objective, but it "
            "weighs the KL term alone; the log-likelihood term stays as it is."
        )
    if _close(v0, -ref["kl"]):
        raise Hint(
            "beta multiplies the log-likelihood, not the KL: with beta = 0 what is "
            "left is minus the KL, where it should be the expected log-likelihood."
        )

    # At beta = 1, notebook 05's slips on the same noise, named when the slip's formula
    # gives the student's value on two seeds.
    other = _value(fn, model, x, tf.constant(ELBO_OTHER_SEED, tf.int32), 1.0)
    if not same(v1, ref["right"]):
        name_slip(v1, other, ref)
    if v1 == other:
        raise Hint(
            "two different seeds gave exactly the same value: z must be a random "
            "draw from q(z|x) (a sample, not its mean), with its noise taken from "
            "seed."
        )

    # Gradients: both networks at beta = 1; the encoder through z (beta = 0 leaves the
    # log-likelihood alone) and through the KL term (f(0) - f(1)).
    encoder, decoder = model.encoder.trainable_variables, model.decoder.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        f0 = _beta_call(fn, model, x, seed, 0.0)
        f1 = _beta_call(fn, model, x, seed, 1.0)
        k = tf.cast(f0, tf.float32) - tf.cast(f1, tf.float32)
    g_enc, g_dec = tape.gradient(f1, [encoder, decoder])
    judge_gradients_reach(g_enc, g_dec)
    if _none_or_zero(tape.gradient(f0, encoder)):
        raise Hint(
            "with beta = 0 only the log-likelihood term is left, and no gradient "
            "from it reaches the encoder's weights phi: the sample z is cut from mu "
            "and sigma (tf.stop_gradient, or values taken out of TensorFlow), so the "
            "encoder could learn only from the KL."
        )
    if _none_or_zero(tape.gradient(k, encoder)):
        raise Hint(
            "no gradient from the KL term, f(beta=0) - f(beta=1), reaches the "
            "encoder's weights phi: the KL is cut from the gradient (tf.stop_gradient "
            "or values taken out of TensorFlow), so training could not shrink it."
        )
    del tape

    # The noise behind the z it decodes (05's judge): standard normal, one draw per image
    # and latent dimension.
    judge_noise(lambda model_, x_, seed: fn(model_, x_, seed, beta=1.0), model, x)

    # Inside tf.function with a seed tensor, as the training step compiles it; then each
    # term on average over 05's seeds.
    try:
        with quiet_tensorflow():
            probe = _beta_probe(fn, model, x, ref["directions"])
            first = probe(seed).numpy()
    except Hint:
        raise
    except Exception as err:
        raise Hint(
            f"it works eagerly but fails inside tf.function, which the training step "
            f"compiles it into: {_error_line(err)} (inside tf.function tensors have "
            f"no values yet: no NumPy, .numpy() or Python int() on them)."
        )
    if not np.allclose([first[0], first[0] - first[1]], [v0, v1], rtol=1e-4, atol=1e-2):
        a, b = apart(float(first[0] - first[1]), v1, "f", 2)
        raise Hint(
            f"inside tf.function it gives {a} for the seed that gives {b} eagerly: "
            f"draw the noise with TensorFlow from seed (NumPy or Python random "
            f"numbers are frozen when the function is traced)."
        )
    with quiet_tensorflow():
        mine = np.array([probe(s).numpy() for s in elbo_seeds()], np.float64)
    judge_seeds_differ(mine[:, 0])
    _judge_terms(mine, ref)

    # beta as a tf.Variable inside tf.function: the warm-up changes it between steps of
    # one compiled training loop, so its current value must be read at every call.
    beta = tf.Variable(0.0, trainable=False)
    try:
        with quiet_tensorflow():
            compiled = tf.function(lambda seed: fn(model, x, seed, beta=beta))
            at_zero = float(compiled(seed))
            beta.assign(1.0)
            at_one = float(compiled(seed))
    except Exception as err:
        raise Hint(
            f"it fails inside tf.function with beta a tf.Variable, as the warm-up "
            f"uses it: {_error_line(err)} (use beta as the tensor it is: no NumPy or "
            f".numpy() on it)."
        )
    if not np.allclose([at_zero, at_one], [v0, v1], rtol=1e-4, atol=1e-2):
        raise Hint(
            "inside tf.function, with beta a tf.Variable changed between calls, the "
            "value did not follow beta (it was read once, when the function was "
            "traced): multiply by beta itself, not by a copy of its value."
        )


# ---------------------------------------------------------------------------------------
# A convolutional encoder and decoder.

CONV_LATENT = 6
_CONV_LAYERS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv2D,
)
_TRANSPOSED = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
# The biases the check gives the encoder's last layer (mu's half, sigma's half) and the
# decoder's: both signs and moderate sizes, where no activation, ReLU, softplus, exp,
# tanh and sigmoid all differ, and mu's values unlike sigma's.
CONV_MU = np.array([-1.5, 0.8, -0.4, 2.2, -2.6, 0.3])
CONV_SIGMA = np.array([-2.2, 1.1, -0.6, 0.35, 1.9, -1.3])
CONV_LOGITS = (-2.0, 0.5, 3.0)


def _softplus(a):
    return np.logaddexp(0.0, a)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


# What may stand between a last layer's outputs and what the network returns: the slips
# (a last activation) and, for sigma, the positive functions the task allows.
_SLIPS = {
    "ReLU": lambda a: np.maximum(a, 0.0),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "exp": np.exp,
    "log sigmoid": lambda a: -_softplus(-a),
    "absolute value": np.abs,
    "square": np.square,
}
_POSITIVE = {"softplus": _softplus, "exp": np.exp, "exp of half": lambda a: np.exp(a / 2)}


def _layers(network):
    """Every layer inside ``network``, however it was built (nested models included)."""
    try:
        return list(network._flatten_layers(include_self=False, recursive=True))
    except AttributeError:  # a private Keras helper: fall back to the public list
        return list(getattr(network, "layers", []))


def _input_shape(network):
    """The shape of one input of ``network`` without its batch axis, if it declares one."""
    try:
        return tuple(network.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _as_array(value, what):
    if isinstance(value, (tuple, list, dict)):
        raise Hint(f"{what} returned a {type(value).__name__} where one tensor belongs.")
    return returned_array(value, what, dtype="float64")


def _same_values(got, expected, atol=1e-4) -> bool:
    got = np.asarray(got, np.float64)
    return bool(np.allclose(got, np.broadcast_to(expected, got.shape), rtol=1e-4, atol=atol))


def _weighted(network):
    """The Dense and convolution layers of ``network`` with their weight variables."""
    found = []
    for layer in _layers(network):
        kernel = getattr(layer, "kernel", None)
        if isinstance(kernel, keras.Variable) and isinstance(
            layer, (keras.layers.Dense,) + _CONV_LAYERS
        ):
            found.append(layer)
    return found


class _Weights:
    """Sets the networks' Dense and convolution weights to the check's own, by shape,
    so that nothing depends on how the student initialised them; restores them after."""

    def __init__(self, *networks):
        self.layers = [layer for net in networks for layer in _weighted(net)]
        self.saved = [(v, v.numpy()) for v in self._variables()]

    def _variables(self):
        for layer in self.layers:
            yield layer.kernel
            if getattr(layer, "bias", None) is not None:
                yield layer.bias

    def draw(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            shape = tuple(layer.kernel.shape)
            outputs = shape[-2] if isinstance(layer, _TRANSPOSED) else shape[-1]
            fan_in = max(1, int(np.prod(shape)) // max(1, outputs))
            kernel = rng.normal(0, math.sqrt(2.0 / fan_in), shape)
            layer.kernel.assign(kernel.astype(np.float32))
            if getattr(layer, "bias", None) is not None:
                bias = rng.normal(0, 0.1, tuple(layer.bias.shape))
                layer.bias.assign(bias.astype(np.float32))

    def restore(self):
        for v, value in self.saved:
            v.assign(value)


def _set_last(layers, biases, kernel_sign):
    """Each of ``layers`` gets a bias from ``biases``; its kernel is multiplied by
    ``kernel_sign`` (0 makes the output its bias alone, whatever the input)."""
    for layer, bias in zip(layers, biases):
        if kernel_sign != 1:
            layer.kernel.assign(layer.kernel.numpy() * kernel_sign)
        layer.bias.assign(np.broadcast_to(bias, tuple(layer.bias.shape)).astype(np.float32))


class _Trial:
    """Runs ``network`` with its last layers' weights changed, then puts them back."""

    def __init__(self, network, inputs, layers):
        self.network, self.inputs, self.layers = network, inputs, layers

    def __call__(self, biases, kernel_sign):
        saved = [(v, v.numpy()) for layer in self.layers for v in (layer.kernel, layer.bias)]
        try:
            _set_last(self.layers, biases, kernel_sign)
            out = self.network(self.inputs)
            if isinstance(out, (tuple, list)):
                return [np.asarray(t, np.float64) for t in out]
            return np.asarray(out, np.float64)
        finally:
            for v, value in saved:
                v.assign(value)


def _positive_of(sigma, a) -> bool:
    """Whether ``sigma`` is an allowed positive function of ``a``, plus a small constant."""
    for g in _POSITIVE.values():
        offset = np.asarray(sigma, np.float64) - g(a)
        if np.ptp(offset) < 1e-4 and -1e-6 <= offset.mean() <= 1e-2:
            return True
    return False


def _heads(encoder):
    """The candidates for the encoder's last layer: one Dense of 2 * latent_dim units, or
    two of latent_dim (mu's first), each with a bias."""
    dense = [
        layer
        for layer in _weighted(encoder)
        if isinstance(layer, keras.layers.Dense) and getattr(layer, "bias", None) is not None
    ]
    one = [(layer,) for layer in dense if layer.units == 2 * CONV_LATENT]
    two = [(a, b) for a in dense for b in dense if a is not b and a.units == b.units == CONV_LATENT]
    return one + two


def _head_biases(head):
    both = np.concatenate([CONV_MU, CONV_SIGMA])
    return [both] if len(head) == 1 else [CONV_MU, CONV_SIGMA]


def _encoder_slip(mu, sigma, one_head: bool) -> str | None:
    """Why an encoder whose last layer outputs (CONV_MU, CONV_SIGMA) for every image
    returns ``mu``, ``sigma``: a hint, verified on those values, or None. (With two
    heads both ways round are tried, so a swap is no slip there.)"""
    if np.ptp(mu, axis=0).max() > 1e-4 or np.ptp(sigma, axis=0).max() > 1e-4:
        return None
    mu, sigma = mu[0], sigma[0]
    if one_head and _same_values(mu, CONV_SIGMA) and _positive_of(sigma, CONV_MU):
        return (
            "mu and sigma are swapped: mu is the first latent_dim outputs of the last "
            "layer, sigma comes from the other latent_dim."
        )
    if _same_values(mu, np.maximum(CONV_MU, 0)) and _positive_of(sigma, np.maximum(CONV_SIGMA, 0)):
        return (
            "the last dense layer has a ReLU, so mu is never negative and sigma never "
            "below softplus(0) = log 2: the means can be any real number and sigma any "
            "positive one. Leave the last dense layer linear."
        )
    for name, act in _SLIPS.items():
        if _same_values(mu, act(CONV_MU)):
            return (
                f"mu goes through a {name}, so it cannot take every real value: the "
                f"means come straight from the last dense layer, with no activation."
            )
    if not _same_values(mu, CONV_MU):
        return None
    if _positive_of(sigma, CONV_MU):
        return (
            "sigma is computed from the first latent_dim outputs of the last layer, "
            "the ones that give mu: sigma comes from the other latent_dim."
        )
    if np.any(sigma <= 0):
        return (
            "some of sigma are 0 or negative: a standard deviation must be positive "
            "(softplus, or exp of a log-sigma, plus a small constant)."
        )
    for name, act in _SLIPS.items():
        if _positive_of(sigma, act(CONV_SIGMA)):
            return (
                f"sigma's inputs go through a {name} before the softplus, so sigma "
                f"cannot take every positive value: sigma is 1e-6 + softplus of the "
                f"last layer's other latent_dim outputs themselves."
            )
    why = {
        "ReLU": "it is 0 (or just the small constant) for every negative input, and "
        "passes no gradient there",
        "sigmoid": "it can never exceed 1",
        "absolute value": "it is not increasing: a negative and a positive input give "
        "the same sigma",
        "square": "it is not increasing: a negative and a positive input give the same sigma",
    }
    for name, act in _SLIPS.items():
        if _same_values(sigma, act(CONV_SIGMA)) or _same_values(sigma, 1e-6 + act(CONV_SIGMA)):
            return (
                f"sigma uses a {name} of the last layer's other latent_dim outputs "
                f"instead of a softplus"
                + (f": {why[name]}." if name in why else ".")
                + " sigma is 1e-6 + softplus of those outputs."
            )
    return (
        "with the same outputs of the last dense layer, sigma differs from 1e-6 + "
        "softplus of its latent_dim outputs."
    )


def _judge_encoder(encoder, x) -> None:
    """The last layer gives mu and sigma as the task says: tried with that layer's
    kernel 0 and biases of the check's own, then with its kernel and minus it."""
    heads = _heads(encoder)
    if not heads:
        return  # no last layer found: the shape and sign tests are all there is
    hints = []
    for head in heads:
        trial = _Trial(encoder, x, head)
        mu, sigma = trial(_head_biases(head), 0)
        if not (
            _same_values(mu, CONV_MU)
            and np.ptp(sigma, axis=0).max() < 1e-5
            and _positive_of(sigma[0], CONV_SIGMA)
        ):
            hints.append(_encoder_slip(mu, sigma, len(head) == 1))
            continue
        # Linear in the kernel, with the biases 0: mu(-W) = -mu(W).
        zero = [np.zeros_like(b) for b in _head_biases(head)]
        plus, minus = trial(zero, 1)[0], trial(zero, -1)[0]
        if _same_values(minus, -plus):
            return
        hints.append(
            "mu is not a linear function of the last dense layer's inputs: with "
            "that layer's kernel negated, mu should be negated; is there an "
            "activation or another layer after it?"
        )
    hint = next((h for h in hints if h), None)
    raise Hint(
        hint
        or "with the last dense layer's kernel set to 0 and its biases to "
        "values of the check's own, mu should be the first latent_dim of "
        "those biases and sigma 1e-6 + softplus of the rest, for every "
        "image; yours are not: leave the last dense layer linear, with "
        "nothing after it but the split into mu and sigma."
    )


def _ends(decoder):
    """The candidates for the decoder's last layer: a convolution to one channel, or a
    Dense of 784 units (or of 1, applied to every pixel), with a bias."""
    return [
        layer
        for layer in _weighted(decoder)
        if getattr(layer, "bias", None) is not None
        and (getattr(layer, "filters", None) == 1 or getattr(layer, "units", None) in (1, 784))
    ]


def _decoder_slip(outputs) -> str | None:
    """Why a decoder whose last layer outputs the constants CONV_LOGITS returns
    ``outputs`` (one array per constant): a hint, verified on them, or None."""
    if any(np.ptp(out) > 1e-5 for out in outputs):
        return None
    got = np.array([out.flat[0] for out in outputs])
    b = np.array(CONV_LOGITS)
    for name, act in _SLIPS.items():
        if _same_values(got, act(b)):
            break
    else:
        return None
    if name == "sigmoid":
        return (
            "the decoder's outputs go through a sigmoid: they are probabilities, but the "
            "Bernoulli likelihood takes logits (any real number). Leave the last layer "
            "linear."
        )
    if name == "tanh":
        return (
            "the decoder's outputs go through a tanh, so they stay within (-1, 1) and "
            "every pixel probability is stuck between 0.27 and 0.73: logits must be "
            "free to take any real value. Leave the last layer linear."
        )
    if name == "log sigmoid":
        return (
            "the decoder's outputs are log-probabilities (log sigmoid), not logits: "
            "leave the last layer linear."
        )
    return (
        f"the decoder's outputs go through a {name}, so they are never negative: logits "
        f"must be free to take any real value; leave the last layer linear."
    )


def _judge_decoder(decoder, z) -> None:
    """The last layer's output is returned as it is: tried with that layer's kernel 0 and
    a bias of the check's own, then with its kernel and minus it."""
    ends = _ends(decoder)
    if not ends:
        return  # no last layer found: the shape and sign tests are all there is
    hints = []
    for end in ends:
        trial = _Trial(decoder, z, [end])
        outputs = [trial([b], 0) for b in CONV_LOGITS]
        if not all(_same_values(out, b, 1e-5) for out, b in zip(outputs, CONV_LOGITS)):
            hints.append(_decoder_slip(outputs))
            continue
        plus, minus = trial([0.0], 1), trial([0.0], -1)
        if _same_values(minus, -plus):
            return
        hints.append(
            "the logits are not a linear function of the last layer's inputs: "
            "with its kernel negated they should be negated; is there an "
            "activation or another layer after it?"
        )
    hint = next((h for h in hints if h), None)
    raise Hint(
        hint
        or "with the last layer's kernel set to 0 and its bias to a value b of "
        "the check's own, every logit should be b; yours are not: leave the "
        "last layer (a convolution to one channel) linear, with nothing after "
        "it but a reshape."
    )


@check("conv_networks")
def conv_networks(fn) -> None:
    """``fn(latent_dim)`` -> (encoder, decoder), Keras models as ``VAE`` takes them.

    See the module's docstring. The last layers are found by their sizes (a Dense of
    2 * latent_dim units or two of latent_dim; a convolution to one channel or a Dense
    of 784 units). Where there is none (a last layer of another kind, a Dense without a
    bias), the check cannot tell an activation after it from none, and judges the
    outputs' shapes and signs only.
    """
    pair = fn(CONV_LATENT)
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise Hint("return two networks, `return encoder, decoder`.")
    encoder, decoder = pair
    for net, name in ((encoder, "encoder"), (decoder, "decoder")):
        if not isinstance(net, keras.Model):
            raise Hint(
                f"the {name} is a {type(net).__name__}, not a Keras model "
                f"(keras.Model, keras.Sequential or a subclass of keras.Model)."
            )
    if _input_shape(encoder) == (CONV_LATENT,) and _input_shape(decoder) == (28, 28, 1):
        raise Hint(
            "the two networks seem swapped: the first takes codes and the second "
            "images. Return them as `encoder, decoder`."
        )
    x = random_images(5, seed=3)
    z = tf.random.stateless_normal([5, CONV_LATENT], seed=(3, 3))

    # The encoder: (mu, sigma), each [batch, latent_dim], for any batch size.
    out = encoder(x)
    if isinstance(out, dict):
        raise Hint(
            "the encoder returned a dict; return mu and sigma as two tensors, "
            "`[mu, sigma]` (VAE unpacks them as `mu, sigma = encoder(x)`)."
        )
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        what = (
            f"{len(out)} tensors"
            if isinstance(out, (tuple, list))
            else f"one tensor of shape {list(np.shape(out))}"
        )
        raise Hint(
            f"the encoder returned {what}, not two: return mu and sigma "
            f"separately, each [batch, latent_dim]."
        )
    mu, sigma = (_as_array(t, "the encoder") for t in out)
    for t, name in ((mu, "mu"), (sigma, "sigma")):
        if t.shape != (5, CONV_LATENT):
            hint = (
                f" It should follow the latent_dim argument ({CONV_LATENT} here)."
                if t.ndim == 2 and t.shape[0] == 5
                else ""
            )
            raise Hint(
                f"for 5 images and latent_dim={CONV_LATENT} the encoder's {name} has "
                f"shape {list(t.shape)}; expected [5, {CONV_LATENT}].{hint}"
            )
    other = _as_array(encoder(random_images(3, seed=4))[0], "the encoder")
    if other.shape != (3, CONV_LATENT):
        raise Hint(
            "the encoder does not work for another batch size (3 images): don't "
            "write the batch size into a reshape; use -1 or keras.layers.Flatten."
        )

    # The decoder: logits [batch, 28, 28, 1].
    logits = _as_array(decoder(z), "the decoder")
    if logits.shape != (5, 28, 28, 1):
        if logits.shape in ((5, 784), (5, 28, 28)):
            raise Hint(
                f"the decoder's output has shape {list(logits.shape)}; the "
                f"likelihood wants images [batch, 28, 28, 1] (reshape)."
            )
        if logits.ndim == 4 and logits.shape[1] != 28:
            raise Hint(
                f"the decoder makes images of {logits.shape[1]}x{logits.shape[2]} "
                f"pixels, not 28x28: with stride 2 and padding 'same', each "
                f"transposed convolution doubles the size, so start from 7x7."
            )
        raise Hint(
            f"for 5 codes the decoder returned shape {list(logits.shape)}; expected "
            f"logits [5, 28, 28, 1]."
        )
    z3 = tf.random.stateless_normal([3, CONV_LATENT], seed=(4, 4))
    if _as_array(decoder(z3), "the decoder").shape != (3, 28, 28, 1):
        raise Hint(
            "the decoder does not work for another batch size (3 codes): don't "
            "write the batch size into a reshape; use -1 or keras.layers.Reshape."
        )
    if not any(isinstance(layer, _CONV_LAYERS) for net in pair for layer in _layers(net)):
        raise Hint(
            "there is no convolution in either network: use keras.layers.Conv2D in the "
            "encoder and Conv2DTranspose (or UpSampling2D + Conv2D) in the decoder."
        )

    # What they compute, on weights of the check's own (never the student's initial ones).
    weights = _Weights(encoder, decoder)
    try:
        weights.draw()
        _judge_encoder(encoder, x)
        _judge_decoder(decoder, z)
        _judge_outputs(encoder, decoder, x, z)
        _judge_gradients(encoder, decoder, x)
    finally:
        weights.restore()


def _judge_outputs(encoder, decoder, x, z) -> None:
    """Signs and dependence on the input, with every weight drawn by the check."""
    mu, sigma = (np.asarray(t, np.float64) for t in encoder(x))
    logits = np.asarray(decoder(z), np.float64)
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma)) and np.all(np.isfinite(logits))):
        raise Hint("with weights of moderate size the networks give NaN or Inf.")
    if np.any(sigma <= 0):
        raise Hint(
            "some of sigma are 0 or negative: a standard deviation must be positive "
            "(softplus, or exp of a log-sigma, plus a small constant)."
        )
    if np.allclose(mu, mu[:1], atol=1e-6):
        raise Hint("the encoder gives the same mu for different images: mu must depend on x.")
    if _positive_of(sigma, mu):
        raise Hint(
            "sigma is computed from mu (the same outputs of the last layer): sigma "
            "comes from latent_dim outputs of its own."
        )
    if np.allclose(logits, logits[:1], atol=1e-6):
        raise Hint(
            "the decoder gives the same logits for different codes z: the logits must depend on z."
        )
    if np.all(mu >= 0):
        raise Hint(
            "mu is never negative, but the means can be any real number: the last "
            "dense layer has no activation, and mu is not transformed."
        )
    if np.all((logits >= 0) & (logits <= 1)):
        raise Hint(
            "the decoder's outputs all lie in [0, 1]: they look like probabilities "
            "(a sigmoid at the end?). Return logits, any real number: the Bernoulli "
            "likelihood takes logits."
        )
    if np.all(logits >= 0):
        raise Hint(
            "the decoder's outputs are never negative (a ReLU at the end?): logits "
            "must be free to take any real value; leave the last layer linear."
        )


def _judge_gradients(encoder, decoder, x) -> None:
    """As a VAE: a finite ELBO, and a gradient for every weight."""
    with quiet_tensorflow():
        model = VAE(CONV_LATENT, encoder=encoder, decoder=decoder)
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(_elbo(model, x, seed=(1, 2)).elbo)
        grads = tape.gradient(value, model.trainable_variables)
    if not np.isfinite(float(value)):
        raise Hint(f"the ELBO with these networks is {float(value)}.")
    unused = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
    if unused:
        raise Hint(
            f"these weights get no gradient from the ELBO: {unused[:3]}: every layer "
            f"made must be used on the way from input to output."
        )


# ---------------------------------------------------------------------------------------
# Math Task: for which beta is the beta-weighted objective a bound on log p(x)?


def beta_bound(answer) -> None:
    """Math Task: for which beta is L_beta a lower bound on log p(x)? (The answer is b.)"""
    return choice(
        "beta_bound",
        answer,
        "b",
        "write L_beta = ELBO - (beta - 1) * KL. The KL is never negative and the ELBO is "
        "at most log p(x): for which beta can the second term only lower the value?",
    )
