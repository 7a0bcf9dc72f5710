"""Checks for notebook 07, beyond the ELBO.

    from vae_prac.checks import beyond as check
    check.iwae_bound(my_iwae_bound)       # Code Task: L_k from log importance weights
    check.beta_elbo(my_beta_elbo)         # Code Task: E[log p(x|z)] - beta * KL, summed
    check.conv_networks(my_conv_networks) # Code Task: a convolutional encoder and decoder
    check.beta_bound(answer_beta)         # Math Task: for which beta is L_beta a bound?

* ``iwae_bound`` gives the student's function log weights of its own, [k, batch] with
  k != batch, near -520 nats (so that exp underflows in float32, as for real digits)
  and a few nats apart (so that a mean, a max and a logsumexp all differ), and compares
  the result with a float64 NumPy log-mean-exp; then k = 1.
* ``beta_elbo`` uses that the answer is linear in beta on one seed's noise:
  f(0) estimates the expected log-likelihood and f(0) - f(1) the KL. Averaged over
  seeds (paired with the library on the same seeds), both must agree with the
  library's, whether the KL is in closed form or a Monte Carlo estimate. beta must
  also work as a ``tf.Variable`` inside ``tf.function`` (the warm-up changes it while
  training runs), and gradients must reach both networks.
* ``conv_networks`` builds the pair for a latent size of its own and checks what
  ``VAE(encoder=..., decoder=...)`` needs: shapes for any batch size, sigma > 0,
  logits (not probabilities), at least one convolution, and a gradient for every weight.

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

from vae_prac.checks import Hint, apart, check, choice, quiet_tensorflow, returned_array
from vae_prac.checks.training import _images, _small_vae
from vae_prac.elbo import elbo as _elbo
from vae_prac.model import VAE, posterior, reparameterize

tfd = tfp.distributions

__all__ = ["iwae_bound", "beta_elbo", "conv_networks", "beta_bound"]


def _close(a, b) -> bool:
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-3))


# ---------------------------------------------------------------------------------------
# L_k from log importance weights.

IW_K, IW_BATCH = 7, 5            # unequal, so a reduction over the wrong axis shows


def _log_weights(k: int = IW_K, batch: int = IW_BATCH) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (-520.0 + rng.normal(0.0, 3.0, (k, batch))).astype(np.float32)


def log_mean_exp(log_w: np.ndarray) -> np.ndarray:
    """log (1/k) sum_i exp(log_w[i]) over axis 0, in float64: the reference."""
    a = np.asarray(log_w, np.float64)
    top = a.max(axis=0)
    return top + np.log(np.exp(a - top).mean(axis=0))


def _iw_slips(log_w: np.ndarray) -> dict:
    """{slip: (values [batch], hint)}, each computed the slip's way."""
    a = np.asarray(log_w, np.float64)
    k, batch = a.shape
    right = log_mean_exp(a)
    return {
        "no log k": (right + math.log(k),
                     "it is log(k) too high: L_k is the log of the *average* of the k "
                     "weights, so the log of their sum needs log k taken off."),
        "log k added": (right + 2 * math.log(k),
                        "log k was added; averaging divides the sum of the weights by k, "
                        "which in log space subtracts log k."),
        "log batch": (right + math.log(k) - math.log(batch),
                      "it subtracted the log of the batch size; k is the number of "
                      "samples per image, the length of the first axis."),
        "divided by k": ((right + math.log(k)) / k,
                         "the log of the sum was divided by k; in log space, dividing the "
                         "sum of the weights by k subtracts log k."),
        "mean of logs": (a.mean(axis=0),
                         "that is the average of the log weights, an ELBO estimate. L_k is "
                         "the log of the average of the weights, not the average of their "
                         "logs."),
        "sum of logs": (a.sum(axis=0),
                        "that is the sum of the log weights (the log of their product); "
                        "L_k is the log of their average."),
        "max": (a.max(axis=0),
                "that is the largest log weight; L_k averages all k weights (in log "
                "space)."),
    }


def _iw_call(fn, log_w: np.ndarray) -> np.ndarray:
    k, batch = log_w.shape
    got = returned_array(fn(tf.constant(log_w)), "my_iwae_bound")
    if got.shape == (batch,):
        pass
    elif got.shape == (k,):
        raise Hint(f"it returned shape [{k}], one value per sample: it combined the images "
                   f"instead of the samples. log_w has shape [k, batch] = [{k}, {batch}]; "
                   f"combine the k samples of each image (axis 0).")
    elif got.shape == (k, batch):
        raise Hint(f"it returned the log weights' shape [{k}, {batch}]; combine them over "
                   f"the k samples (axis 0) into one value per image.")
    elif got.shape == () and k > 1:
        raise Hint("it returned a single number; return one value per image, shape "
                   "[batch] (don't reduce over the batch).")
    elif got.shape == () or got.shape == (1, batch):
        raise Hint(f"with k = 1 it returned shape {list(got.shape)} instead of [{batch}]: "
                   f"a k of 1 is still an axis of length 1 (tf.squeeze would drop it).")
    else:
        raise Hint(f"it returned shape {list(got.shape)}; expected one value per image, "
                   f"[{batch}].")
    if not np.all(np.isfinite(got)):
        with np.errstate(divide="ignore"):
            naive = np.log(np.exp(log_w).mean(axis=0))
        if np.any(np.isinf(got)) and np.all(np.isinf(naive)):
            raise Hint(f"it returned -inf: the weights exp(log w) underflow to 0 in float32 "
                       f"(these log weights are near {log_w.mean():.0f}), so their average "
                       f"is 0 and its log -inf. Stay in log space: a logsumexp never forms "
                       f"the weights.")
        raise Hint("it returned NaN or Inf for some images.")
    return got


@check("iwae_bound")
def iwae_bound(fn) -> None:
    """``fn(log_w)``: L_k = log (1/k) sum_i exp(log_w[i]) per image; log_w is [k, batch]."""
    log_w = _log_weights()
    got = _iw_call(fn, log_w)
    if not _close(got, log_mean_exp(log_w)):
        for values, hint in _iw_slips(log_w).values():
            if _close(got, values):
                raise Hint(hint)
        mine, right = apart(float(got[0]), float(log_mean_exp(log_w)[0]), "f", 2)
        raise Hint(f"for the first image it gives {mine}, but the log of the average of "
                   f"its k = {IW_K} weights is {right}.")
    # k = 1: one weight per image, so L_1 is that log weight.
    one = log_w[:1]
    got = _iw_call(fn, one)
    if not _close(got, one[0]):
        raise Hint("with k = 1 it does not return the single log weight itself: the "
                   "average of one weight is that weight.")


# ---------------------------------------------------------------------------------------
# The beta-weighted ELBO.

BETA_BATCH, BETA_LATENT = 8, 5
BETA_N_SEEDS = 60                # the averages over seeds
SIGMAS = 6.0                     # how far an average may stray, in standard errors


def _beta_model() -> VAE:
    # As notebook 05's batch_elbo check: a KL of about 90 nats over the batch and a
    # smooth decoder, so the KL's slips stand far out of the Monte Carlo noise.
    return _small_vae(seed=0, scale=(1.5, 0.5), latent_dim=BETA_LATENT)


def _seed(i: int):
    return tf.constant([i, 202], tf.int32)


@functools.lru_cache(maxsize=1)
def _beta_reference():
    """The library's terms on the check's seeds: log p(x|z) with z from ``reparameterize``
    on each seed (summed over the batch), and the KL in closed form, and its slips."""
    model, x = _beta_model(), _images(BETA_BATCH)
    mu, sigma = model.encoder(x)
    q, p = posterior(mu, sigma), model.prior()
    ell = np.array([float(tf.reduce_sum(model.likelihood(
        reparameterize(mu, sigma, seed=_seed(i))).log_prob(x)))
        for i in range(BETA_N_SEEDS)])
    kl = float(tf.reduce_sum(tfd.kl_divergence(q, p)))
    reverse = float(tf.reduce_sum(tfd.kl_divergence(p, q)))
    return dict(ell=ell, kl=kl, kl_slips={
        "sign": (-kl, "the KL enters with the wrong sign: the objective is the expected "
                      "log-likelihood *minus* beta times KL(q(z|x) || p(z))."),
        "mean": (kl / BETA_BATCH, "the KL is averaged over the batch while the "
                                  "log-likelihood is summed: sum both over the batch."),
        "reverse": (reverse, "that is KL(p(z) || q(z|x)), the divergence the other way "
                             "round; the ELBO has KL(q(z|x) || p(z))."),
    })


def _value(fn, model, x, seed, beta, what="my_beta_elbo") -> float:
    got = returned_array(fn(model, x, seed, beta), what)
    if got.shape == (BETA_BATCH,):
        raise Hint(f"it returned one value per image, shape [{BETA_BATCH}]; return their "
                   f"sum over the batch, a single number (what train() maximizes).")
    if got.shape != ():
        raise Hint(f"it returned shape {list(got.shape)}; expected a single number, the "
                   f"objective summed over the batch.")
    if not np.isfinite(got):
        raise Hint(f"it returned {float(got)} for beta = {beta}: look for a log of 0, or a "
                   f"division by beta.")
    return float(got)


def _agrees(mine, ref, scale) -> bool:
    """Whether ``mine`` and ``ref`` (per seed) agree on average, in standard errors."""
    diff = np.asarray(mine, np.float64) - ref
    error = diff.std() / math.sqrt(len(diff))
    return abs(diff.mean()) <= SIGMAS * error + 1e-4 * abs(scale) + 1e-3


@check("beta_elbo")
def beta_elbo(fn) -> None:
    """``fn(model, x, seed, beta)``: sum over the batch of E[log p(x|z)] - beta * KL."""
    ref = _beta_reference()
    model, x = _beta_model(), _images(BETA_BATCH)
    s = _seed(0)
    v0, v1, v25 = (_value(fn, model, x, s, b) for b in (0.0, 1.0, 2.5))
    if not _close(v1, _value(fn, model, x, tuple(s.numpy()), 1.0)):
        raise Hint("two calls with the same seed gave different values: draw z from "
                   "q(z|x) with the seed, so that the same seed gives the same z.")
    if _close(v0, v1):
        raise Hint("beta = 0 and beta = 1 gave the same value: beta must multiply the KL "
                   "term.")
    # Linear in beta on one seed's noise: f(beta) = f(0) - beta * (f(0) - f(1)).
    if not np.isclose(v25, v0 - 2.5 * (v0 - v1), rtol=1e-4, atol=1e-2):
        raise Hint("the value is not linear in beta: beta should multiply the KL term "
                   "exactly once (not beta squared, not a division by beta).")
    if abs(v0) < abs(v0 - v1):
        raise Hint("with beta = 0 it gives a number smaller in size than the KL: beta seems "
                   "to multiply the log-likelihood, not the KL.")

    # Over the seeds: f(0) estimates E[log p(x|z)], f(0) - f(1) the KL.
    zero = [_value(fn, model, x, _seed(i), 0.0) for i in range(BETA_N_SEEDS)]
    one = [_value(fn, model, x, _seed(i), 1.0) for i in range(BETA_N_SEEDS)]
    kl = np.array(zero) - np.array(one)
    if np.ptp(zero) == 0:
        raise Hint("every seed gave the same value: z must be a random draw from q(z|x) "
                   "(a sample, not its mean), with its noise taken from seed.")
    if not _agrees(kl, ref["kl"], ref["kl"]):
        if _agrees(zero, ref["ell"] / BETA_BATCH, ref["ell"].mean()):
            raise Hint("the objective is averaged over the batch: sum it over the images, "
                       "as train() expects (a batch ELBO is a sum over the batch).")
        for value, hint in ref["kl_slips"].values():
            if _agrees(kl, value, value):
                raise Hint(hint)
        mine, right = apart(float(kl.mean()), ref["kl"], "f", 2)
        raise Hint(f"f(beta=0) - f(beta=1), the KL term, averages {mine} over "
                   f"{BETA_N_SEEDS} seeds; KL(q(z|x) || p(z)) summed over the batch is "
                   f"{right}.")
    if not _agrees(zero, ref["ell"], ref["ell"].mean()):
        mine, right = apart(float(np.mean(zero)), float(ref["ell"].mean()), "f", 2)
        raise Hint(f"with beta = 0 it averages {mine} over {BETA_N_SEEDS} seeds, but "
                   f"E[log p(x|z)] summed over the batch is about {right}: check the "
                   f"log-likelihood (the decoder gives logits; z is a sample of q(z|x)).")

    # Gradients reach both networks (training updates them all).
    with tf.GradientTape() as tape:
        value = fn(model, x, s, 1.0)
    g_enc, g_dec = tape.gradient(value, [model.encoder.trainable_variables,
                                         model.decoder.trainable_variables])
    cut = "(NumPy, .numpy(), float() or tf.stop_gradient cut the path)"
    if any(g is None for g in g_enc):
        raise Hint(f"no gradient reaches the encoder's weights phi {cut}.")
    if any(g is None for g in g_dec):
        raise Hint(f"no gradient reaches the decoder's weights theta {cut}.")

    # beta as a tf.Variable inside tf.function: the warm-up changes it between steps of
    # one compiled training loop, so its current value must be read at every call.
    beta = tf.Variable(0.0, trainable=False)
    try:
        with quiet_tensorflow():
            compiled = tf.function(lambda seed: fn(model, x, seed, beta))
            at_zero = float(compiled(s))
            beta.assign(1.0)
            at_one = float(compiled(s))
    except Exception as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise Hint(f"it fails inside tf.function with beta a tf.Variable, as the warm-up "
                   f"uses it: {type(err).__name__}: {lines[-1][:200] if lines else ''} "
                   f"(use beta as the tensor it is: no NumPy or .numpy() on it).")
    if not (_close(at_zero, v0) and _close(at_one, v1)):
        raise Hint("inside tf.function, with beta a tf.Variable changed between calls, the "
                   "value did not follow beta (it was read once, when the function was "
                   "traced): multiply by beta itself, not by a copy of its value.")


# ---------------------------------------------------------------------------------------
# A convolutional encoder and decoder.

CONV_LATENT = 6
_CONV_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
                keras.layers.Conv2DTranspose, keras.layers.Conv1DTranspose,
                keras.layers.Conv3DTranspose, keras.layers.SeparableConv2D,
                keras.layers.DepthwiseConv2D)


def _layers(network):
    """Every layer inside ``network``, however it was built (nested models included)."""
    try:
        return list(network._flatten_layers(include_self=False, recursive=True))
    except AttributeError:   # a private Keras helper: fall back to the public list
        return list(getattr(network, "layers", []))


def _input_shape(network):
    """The shape of one input of ``network`` without its batch axis, if it declares one."""
    try:
        return tuple(network.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _as_array(value, what):
    return returned_array(value, what, dtype="float64")


@check("conv_networks")
def conv_networks(fn) -> None:
    """``fn(latent_dim)`` -> (encoder, decoder), Keras models as ``VAE`` takes them."""
    pair = fn(CONV_LATENT)
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise Hint("return two networks, `return encoder, decoder`.")
    encoder, decoder = pair
    for net, name in ((encoder, "encoder"), (decoder, "decoder")):
        if not isinstance(net, keras.Model):
            raise Hint(f"the {name} is a {type(net).__name__}, not a Keras model "
                       f"(keras.Model, keras.Sequential or a subclass of keras.Model).")
    if _input_shape(encoder) == (CONV_LATENT,) and _input_shape(decoder) == (28, 28, 1):
        raise Hint("the two networks seem swapped: the first takes codes and the second "
                   "images. Return them as `encoder, decoder`.")
    x = _images(5, seed=3)

    # The encoder: (mu, sigma), each [batch, latent_dim], for any batch size.
    out = encoder(x)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        shape = list(np.shape(out)) if not isinstance(out, (tuple, list)) else len(out)
        raise Hint(f"the encoder returned {shape}, not two tensors: return mu and sigma "
                   f"separately, each [batch, latent_dim].")
    mu, sigma = (_as_array(t, "the encoder") for t in out)
    for t, name in ((mu, "mu"), (sigma, "sigma")):
        if t.shape != (5, CONV_LATENT):
            hint = (f" It should follow the latent_dim argument ({CONV_LATENT} here)."
                    if t.ndim == 2 and t.shape[0] == 5 else "")
            raise Hint(f"for 5 images and latent_dim={CONV_LATENT} the encoder's {name} has "
                       f"shape {list(t.shape)}; expected [5, {CONV_LATENT}].{hint}")
    if np.any(sigma <= 0):
        raise Hint("some of sigma are 0 or negative: a standard deviation must be positive "
                   "(softplus, or exp of a log-sigma, plus a small constant).")
    other = _as_array(encoder(_images(3, seed=4))[0], "the encoder")
    if other.shape != (3, CONV_LATENT):
        raise Hint("the encoder does not work for another batch size (3 images): don't "
                   "write the batch size into a reshape; use -1 or keras.layers.Flatten.")
    if np.allclose(mu[:3], other, atol=1e-6):
        raise Hint("the encoder gives the same mu for different images: mu must depend "
                   "on x.")

    # The decoder: logits [batch, 28, 28, 1].
    z = tf.random.stateless_normal([5, CONV_LATENT], seed=(3, 3))
    logits = _as_array(decoder(z), "the decoder")
    if logits.shape != (5, 28, 28, 1):
        if logits.shape in ((5, 784), (5, 28, 28)):
            raise Hint(f"the decoder's output has shape {list(logits.shape)}; the "
                       f"likelihood wants images [batch, 28, 28, 1] (reshape).")
        if logits.ndim == 4 and logits.shape[1] != 28:
            raise Hint(f"the decoder makes images of {logits.shape[1]}x{logits.shape[2]} "
                       f"pixels, not 28x28: with stride 2 and padding 'same', each "
                       f"transposed convolution doubles the size, so start from 7x7.")
        raise Hint(f"for 5 codes the decoder returned shape {list(logits.shape)}; expected "
                   f"logits [5, 28, 28, 1].")
    if np.all(logits >= 0) and np.any(logits == 0):    # a sigmoid is never exactly 0
        raise Hint("the decoder's outputs are never negative (a ReLU at the end?): logits "
                   "must be free to take any real value; leave the last layer linear.")
    if np.all((logits >= 0) & (logits <= 1)):
        raise Hint("the decoder's outputs all lie in [0, 1]: they look like probabilities "
                   "(a sigmoid at the end?). Return logits, any real number: the Bernoulli "
                   "likelihood takes logits.")
    if np.all(logits >= 0):
        raise Hint("the decoder's outputs are never negative (a ReLU at the end?): logits "
                   "must be free to take any real value; leave the last layer linear.")
    z3 = tf.random.stateless_normal([3, CONV_LATENT], seed=(4, 4))
    if _as_array(decoder(z3), "the decoder").shape != (3, 28, 28, 1):
        raise Hint("the decoder does not work for another batch size (3 codes): don't "
                   "write the batch size into a reshape; use -1 or keras.layers.Reshape.")

    if not any(isinstance(layer, _CONV_LAYERS) for net in pair for layer in _layers(net)):
        raise Hint("there is no convolution in either network: use keras.layers.Conv2D in the "
                   "encoder and Conv2DTranspose (or UpSampling2D + Conv2D) in the decoder.")

    # As a VAE: a finite ELBO, and a gradient for every weight.
    with quiet_tensorflow():
        model = VAE(CONV_LATENT, encoder=encoder, decoder=decoder)
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(_elbo(model, x, seed=(1, 2)).elbo)
        grads = tape.gradient(value, model.trainable_variables)
    if not np.isfinite(float(value)):
        raise Hint(f"the ELBO with these networks is {float(value)}.")
    unused = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
    if unused:
        raise Hint(f"these weights get no gradient from the ELBO: {unused[:3]}: every layer "
                   f"made must be used on the way from input to output.")


# ---------------------------------------------------------------------------------------
# Math Task: for which beta is the beta-weighted objective a bound on log p(x)?

def beta_bound(answer) -> None:
    """Math Task: for which beta is L_beta a lower bound on log p(x)? (The answer is b.)"""
    return choice(
        "beta_bound", answer, "b",
        "write L_beta = ELBO - (beta - 1) * KL. The KL is never negative and the ELBO is "
        "at most log p(x): for which beta can the second term only lower the value?")
