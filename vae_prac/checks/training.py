"""Checks for notebook 05, training a VAE.

    from vae_prac.checks import training as check
    check.inference_network(my_inference_network)    # notebook 03's, pasted
    check.generative_network(my_generative_network)  # notebook 03's, pasted
    check.reparameterize(my_reparameterize)          # notebook 04's, pasted
    check.batch_elbo(my_batch_elbo)         # Code Task: the ELBO summed over a batch
    check.train_step(my_train_step)         # Code Task: one step of RMSProp on -ELBO
    check.rmsprop_scale(answer_rmsprop)     # Math Task: sum or mean over the batch?
    check.decode_midpoint(decode_midpoint)  # Code Task: decode a z of your choice

The code checks build a small VAE of their own (fixed weights, several latent
dimensions, unequal values) and judge what the student's function computes.

* ``batch_elbo`` accepts any unbiased estimate of the batch's ELBO whose noise comes
  from ``seed``: z from the student's sampler, ``vae_prac.reparameterize`` or
  ``q.sample(seed=...)`` (or any other seeded draw of standard normal noise, Box-Muller
  included), the KL in closed form or by Monte Carlo, in float32 or float64. It must be
  a scalar tensor, give the same value for the same seed (a tuple or a tensor) and
  different values for different seeds, let gradients reach every weight of both
  networks, stay finite for a confident decoder (logits of +-40, as after training),
  and work inside ``tf.function`` with a seed tensor, as the training step uses it.
  Then, over 300 seeds, its values and its gradients (along the log-likelihood's and
  the KL's directions for the encoder) must agree on average with the library's
  (paired on the same seeds, so a student drawing the same z differs only by the KL's
  Monte Carlo noise). A slip is named only after its formula has been verified: on the
  same seed exactly, or on average over the seeds.
  What it cannot tell apart: a function that calls ``vae_prac.batch_elbo`` passes (it
  judges behaviour), and so does one that draws z with ``vae_prac.reparameterize``
  instead of the student's own sampler (the same seeded noise); so does a
  log-likelihood that clips probabilities (``log(p + 1e-7)``), which on the check's
  models differs from the exact one by less than the tolerance; and the Monte Carlo KL
  with ``stop_gradient`` on q's parameters ("sticking the landing", Roeder et al. 2017)
  passes because it is unbiased, as it should.
* ``train_step`` is judged by the update it makes (see its docstring). It cannot tell a
  step that computes extra things it then ignores from the plain one.
* ``decode_midpoint`` is compared with the decoded midpoint of the posterior means;
  the usual slips (logits, a batch of one, a binary sample, averaged images, samples of
  z, one image only, sigma) are each verified before they are named.
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac.bounds import elbo as _elbo_terms
from vae_prac.checks import Hint, apart, check, choice, quiet_tensorflow, returned_array
from vae_prac.checks._shared import (
    ELBO_BATCH,
    ELBO_LATENT,
    ELBO_N_SAMPLES,
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
    small_vae,
    unit,
)
from vae_prac.model import VAE, posterior, stateless_seed
from vae_prac.model import reparameterize as _library_reparameterize

tfd = tfp.distributions

__all__ = [
    "batch_elbo",
    "rmsprop_scale",
    "train_step",
    "decode_midpoint",
    "decode_midpoint_reference",
    "inference_network",
    "generative_network",
    "reparameterize",
    "reparameterize_reference",
]

# Notebook 05 trains the student's own networks and sampler: their checks (notebook 03's
# and 04's) run here too.
from vae_prac.checks.networks import generative_network, inference_network  # noqa: E402,F401
from vae_prac.checks.reparameterization import reparameterize  # noqa: E402,F401


def reparameterize_reference(mu, sigma, seed):
    """``vae_prac.reparameterize`` called as ``my_reparameterize(mu, sigma, seed)`` is:
    z = mu + sigma * eps, with eps standard normal drawn from the stateless ``seed``."""
    return _library_reparameterize(mu, sigma, seed=seed)


# ---------------------------------------------------------------------------------------
# The batch ELBO. Its model, batch, seeds, slips and judges of the noise, the gradients
# and the averages are in ``_shared``: notebook 07's beta-weighted ELBO check uses them too.


def _ell_direction(model, x, variables):
    """A unit direction in ``variables``: the library's gradient of E[log p(x|z)]."""
    with tf.GradientTape() as tape:
        mu, sigma = model.encoder(x)
        eps = tf.random.stateless_normal([ELBO_N_SAMPLES // 4, *mu.shape], seed=[5, 5])
        ell = tf.reduce_sum(tf.reduce_mean(model.likelihood(mu + sigma * eps).log_prob(x), axis=0))
    return unit(tape.gradient(ell, variables))


def _elbo_probe(fn, model, x, directions):
    """A compiled seed -> [value, d value along each of ``directions``].

    The seed is a symbolic int32 tensor of shape [2], as in the training step;
    ``directions`` are (encoder, decoder, encoder) lists of arrays shaped like the
    weights: the unit gradients of E[log p(x|z)] for each network, and of the KL.
    """
    encoder, decoder = model.encoder.trainable_variables, model.decoder.trainable_variables
    to_ell, to_decoder, to_kl = ([tf.constant(v) for v in d] for d in directions)

    @tf.function(input_signature=[tf.TensorSpec([2], tf.int32)])
    def probe(seed):
        with tf.GradientTape() as tape:
            value = tf.cast(fn(model, x, seed=seed), tf.float32)
        g_enc, g_dec = tape.gradient(value, [encoder, decoder])
        return tf.stack(
            [value, along(g_enc, to_ell), along(g_dec, to_decoder), along(g_enc, to_kl)]
        )

    return probe


def _library_batch_elbo(model, x, seed):
    mu, sigma = model.encoder(x)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=seed)
    return tf.reduce_sum(
        model.likelihood(z).log_prob(x) - tfd.kl_divergence(posterior(mu, sigma), model.prior())
    )


@functools.lru_cache(maxsize=1)
def _elbo_reference():
    """Everything the check compares with; the same numbers on every run."""
    model, x = elbo_model(), random_images(ELBO_BATCH)
    mu, _ = model.encoder(x)
    eps = tf.random.stateless_normal(tf.shape(mu), seed=stateless_seed(ELBO_SEED))
    right, same_seed = elbo_slips(model, x, eps)
    eps = tf.random.stateless_normal(tf.shape(mu), seed=stateless_seed(ELBO_OTHER_SEED))
    _, other_seed = elbo_slips(model, x, eps)
    many = tf.random.stateless_normal([ELBO_N_SAMPLES, *mu.shape], seed=[3, 3])
    expected, on_average = elbo_slips(model, x, many)
    encoder, decoder = model.encoder.trainable_variables, model.decoder.trainable_variables
    with tf.GradientTape() as tape:
        kl = tf.reduce_sum(tfd.kl_divergence(model.posterior(x), model.prior()))
    kl_grads = tape.gradient(kl, encoder)
    directions = (
        _ell_direction(model, x, encoder),
        _ell_direction(model, x, decoder),
        unit(kl_grads),
    )
    probe = _elbo_probe(_library_batch_elbo, model, x, directions)
    per_seed = np.array([probe(s).numpy() for s in elbo_seeds()], np.float64)
    # d KL / d phi along the two encoder directions (the probe's columns 1 and 3): what
    # the gradient is when z is cut off, and what is missing when the KL is.
    kl_along = np.array(
        [
            float(tf.add_n([tf.reduce_sum(g * v) for g, v in zip(kl_grads, d)]))
            for d in (directions[0], directions[2])
        ]
    )
    return dict(
        right=right,
        same_seed=same_seed,
        other_seed=other_seed,
        expected=expected,
        on_average=on_average,
        per_seed=per_seed,
        kl_along=kl_along,
        directions=directions,
    )


def _error_line(err) -> str:
    """``Type: message`` of an error raised in a student's traced code: the message's last
    line (tf.function puts a trace of "user code" before it), the type said once."""
    name = type(err).__name__
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if last.startswith(name + ":"):
        last = last[len(name) + 1 :].strip()
    return f"{name}: {last[:200]}"


def _close(a, b) -> bool:
    return bool(np.isclose(a, b, rtol=1e-5, atol=1e-2))


def _call_elbo(fn, model, x, seed, where=""):
    """``fn(model, x, seed=seed)`` as a float, or a hint saying what came back instead."""
    try:
        value = fn(model, x, seed=seed)
    except TypeError as err:
        if "keyword argument 'seed'" in str(err):
            raise Hint(
                "keep the signature my_batch_elbo(model, x, seed): later cells "
                "call it with the keyword seed=."
            )
        raise
    except (tf.errors.InvalidArgumentError, ValueError) as err:
        text = str(err)
        if "ncompatible shapes" in text or "not compatible" in text or "broadcast" in text:
            raise Hint(
                f"the shapes of your terms do not line up ({type(err).__name__}). "
                f"The log-likelihood of an image is a sum over its pixels and its KL "
                f"a sum over its latent dimensions: each term has one value per "
                f"image, shape [batch], before the sum over the batch."
            )
        raise
    array = returned_array(value, "my_batch_elbo", "a number")
    if array.shape == (ELBO_BATCH,):
        raise Hint(
            f"it returned one ELBO per image, shape [{ELBO_BATCH}]; the task asks "
            f"for their sum over the batch, one number."
        )
    if array.shape != ():
        raise Hint(
            f"it returned shape {list(array.shape)}{where}; expected one number, "
            f"the ELBO summed over the batch."
        )
    if not tf.is_tensor(value):
        # A number taken out of TensorFlow carries no gradient: training needs the tensor.
        kind = (
            "a Python float"
            if type(value) is float
            else f"a {type(value).__module__.split('.')[0]} {type(value).__name__}"
        )
        raise Hint(
            f"it returned {kind}, not a TensorFlow tensor: float(), .numpy() or "
            f"NumPy took the value out of TensorFlow, so no gradient can reach the "
            f"weights and training could not learn from it. Return the tensor "
            f"itself."
        )
    return float(array)


@check("batch_elbo")
def batch_elbo(fn) -> None:
    """``fn(model, x, seed)``: an unbiased estimate of the ELBO summed over the batch.

    The noise must come from ``seed``; gradients must reach both networks; it must work
    inside ``tf.function``. See the module's docstring for how it is judged, and for
    what it cannot tell apart.
    """
    ref = _elbo_reference()
    model, x = elbo_model(), random_images(ELBO_BATCH)
    got = _call_elbo(fn, model, x, tf.constant(ELBO_SEED, tf.int32))
    if not np.isfinite(got):
        if not np.isfinite(_probs_from_logits(model, x)):
            raise Hint(
                f"it returned {got}: the decoder's outputs were used as pixel "
                f"probabilities, but they are logits (any real number); a "
                f"probability must lie in [0, 1]."
            )
        raise Hint(
            f"it returned {got}: look for a log of 0 or of a negative number, or a division by 0."
        )

    # The noise comes from the seed: the same seed (as a tuple, as cell 9 passes it)
    # gives the same value, another seed another value.
    again = _call_elbo(fn, model, x, ELBO_SEED)
    if not _close(got, again):
        a, b = apart(got, again, "f", 2)
        raise Hint(
            f"two calls with the same seed gave different values ({a} and {b}): "
            f"the noise must come from seed (stateless), so that the same seed "
            f"gives the same z."
        )
    other = _call_elbo(fn, model, x, tf.constant(ELBO_OTHER_SEED, tf.int32))

    # Slips on the same noise as the library's (z from the seed, as the task suggests):
    # named only when the slip's formula gives the student's value on both seeds.
    if not _close(got, ref["right"]):
        name_slip(got, other, ref)
    if got == other:
        raise Hint(
            "two different seeds gave exactly the same value: z must be a random "
            "draw from q(z|x), with its noise taken from seed."
        )

    # Gradients reach every weight of both networks (training updates them all).
    with tf.GradientTape() as tape:
        value = fn(model, x, seed=tf.constant(ELBO_SEED, tf.int32))
    g_enc, g_dec = tape.gradient(
        value, [model.encoder.trainable_variables, model.decoder.trainable_variables]
    )
    judge_gradients_reach(g_enc, g_dec)

    judge_noise(fn, model, x)
    _judge_confident(fn, model, x)

    # Inside tf.function with a seed tensor, as the training step compiles it.
    try:
        with quiet_tensorflow():
            probe = _elbo_probe(fn, model, x, ref["directions"])
            first = probe(tf.constant(ELBO_SEED, tf.int32)).numpy()
    except Hint:
        raise
    except Exception as err:
        raise Hint(
            f"it works eagerly but fails inside tf.function, which the training step "
            f"compiles it into: {_error_line(err)} (inside tf.function tensors have "
            f"no values yet: no NumPy, .numpy() or Python int() on them)"
        )
    if not _close(first[0], got):
        a, b = apart(float(first[0]), got, "f", 2)
        raise Hint(
            f"inside tf.function it gives {a} for the seed that gives {b} eagerly: "
            f"draw the noise with TensorFlow from seed (NumPy or Python random "
            f"numbers are frozen when the function is traced)."
        )
    mine = np.array([probe(s).numpy() for s in elbo_seeds()], np.float64)
    judge_seeds_differ(mine[:, 0])
    _judge_on_average(mine, ref)


class _Confident(keras.Model):
    """A decoder whose logits are ``factor`` times another's: as sure of each pixel as a
    trained decoder is of many (logits beyond +-17, where sigmoid rounds to 0 or 1)."""

    def __init__(self, decoder, factor):
        super().__init__(name="confident_decoder")
        self.decoder, self.factor = decoder, factor

    def call(self, z):
        return self.factor * self.decoder(z)


CONFIDENT_LOGIT = 40.0  # the largest |logit| of the confident decoder: float32's
# sigmoid is exactly 1 beyond about 17, exp overflows beyond 88


def _judge_confident(fn, model, x) -> None:
    """The value must stay finite when the decoder is sure of its pixels, as after some
    training: a log-likelihood written as log(sigmoid(l)) and log(1 - sigmoid(l)) passes
    on the untrained model and turns into NaN there."""
    mu, _ = model.encoder(x)
    factor = CONFIDENT_LOGIT / float(tf.reduce_max(tf.abs(model.decoder(mu))))
    confident = VAE(ELBO_LATENT, encoder=model.encoder, decoder=_Confident(model.decoder, factor))
    value = returned_array(
        fn(confident, x, seed=tf.constant(ELBO_SEED, tf.int32)), "my_batch_elbo", "a number"
    )
    if not np.all(np.isfinite(value)):
        raise Hint(
            f"for a decoder that is sure of its pixels (logits up to "
            f"+-{CONFIDENT_LOGIT:.0f}, as training soon makes them) it returns "
            f"{float(np.sum(value))}: in float32, sigmoid(l) rounds to exactly 1 once "
            f"l > 17, so log(1 - sigmoid(l)) is log 0 (and 0 x -inf is nan). "
            f"Training would stop with a NaN loss. Compute the log-likelihood from "
            f"the logits themselves, as in notebook 03, not from probabilities."
        )


def _judge_on_average(mine: np.ndarray, ref: dict) -> None:
    """Compare ``mine`` [seeds, 4] with the library's on the same seeds (see the probe):
    the value, then the gradient along the encoder's and the decoder's directions."""
    lib = ref["per_seed"]
    diff = mine - lib
    n = len(diff)
    if biased(diff[:, 0], ref["expected"]):
        average = mine[:, 0].mean()
        error = mine[:, 0].std() / math.sqrt(n)
        # The slip whose expectation the average matches, if one clearly apart from the
        # ELBO does (0.5 and 2%: the error of the library's own expectations).
        matches = []
        for value, hint in ref["on_average"].values():
            distance = abs(value - ref["expected"])
            if abs(average - value) < SIGMAS * error + 0.5 + 0.02 * distance and distance > 4 * (
                SIGMAS * error + 0.5
            ):
                matches.append((abs(average - value), hint))
        if matches:
            raise Hint(min(matches)[1])
        a, b = apart(float(average), float(lib[:, 0].mean()), "f", 2)
        raise Hint(
            f"over {n} seeds its average is {a}, while the library's ELBO of the "
            f"same batch averages {b} on the same seeds: the estimate is biased. "
            f"Check each part: z drawn from q(z|x) with the noise from seed, the "
            f"log-likelihood summed over pixels, the KL summed over latent "
            f"dimensions, the sum over the batch."
        )

    # The encoder's gradient, along two directions: E[log p(x|z)]'s and the KL's.
    encoder = [1, 3]
    if any(biased(diff[:, c], lib[:, c].mean()) for c in encoder):

        def near(values, target):
            error = values.std() / math.sqrt(n)
            return abs(values.mean() - target) < SIGMAS * error + 0.01 + 1e-3 * abs(target)

        kl_along = ref["kl_along"]
        # KL cut off: the encoder's gradient lacks -d KL / d phi, on every seed.
        if all(near(diff[:, c], k) for c, k in zip(encoder, kl_along)):
            raise Hint(
                "the value is right, but no gradient flows through the KL term back "
                "to mu and sigma (tf.stop_gradient on the KL, or on mu and sigma "
                "inside it, or values taken out of TensorFlow): the encoder would "
                "learn only from the log-likelihood, and nothing would pull q(z|x) "
                "towards the prior."
            )
        # z cut off: only the KL's gradient is left (closed form), or none on average
        # (a Monte Carlo KL at a fixed z).
        for cut_off in (-kl_along, np.zeros(2)):
            if all(near(mine[:, c], k) for c, k in zip(encoder, cut_off)):
                raise Hint(
                    "the value is right, but its gradient does not flow through z "
                    "back to mu and sigma (is z built with tf.stop_gradient, or "
                    "from values taken out of TensorFlow?), so the encoder would "
                    "learn only from the KL."
                )
        raise Hint(
            "the value is right on average, but its gradient with respect to the "
            "encoder's weights phi is not: check how z is built from mu and sigma "
            "(a draw from q(z|x) = N(mu, sigma^2), computed with TensorFlow "
            "operations so that gradients flow through it) and that the KL is a "
            "TensorFlow computation of mu and sigma."
        )
    if biased(diff[:, 2], lib[:, 2].mean()):
        raise Hint(
            "the value is right on average, but its gradient with respect to the "
            "decoder's weights theta is not: compute the log-likelihood from the "
            "decoder's output with TensorFlow operations all the way."
        )


def _probs_from_logits(model, x) -> float:
    """The batch ELBO with the decoder's logits taken for probabilities (the slip)."""
    mu, sigma = model.encoder(x)
    z = mu + sigma * tf.random.stateless_normal(tf.shape(mu), seed=stateless_seed(ELBO_SEED))
    ell = tfd.Independent(tfd.Bernoulli(probs=model.decoder(z)), 3).log_prob(x)
    return float(tf.reduce_sum(ell - tfd.kl_divergence(posterior(mu, sigma), model.prior())))


def rmsprop_scale(answer) -> bool:
    """Math Task: what happens with RMSProp if the batch sum becomes a batch mean? (b)"""
    return choice(
        "rmsprop_scale",
        answer,
        "b",
        "write out one RMSProp step: the update is lr * g / sqrt(v + eps), where v is a "
        "running average of g^2. What happens to it when every gradient g is divided by "
        "the batch size?",
    )


# ---------------------------------------------------------------------------------------
# The training step.

STEP_LR = 0.01
STEP_SEED = (5, 9)
STEP_OTHER_SEED = (6, 1)


def _library_batch_elbo_sum(model, x, seed):
    """The library's batch ELBO, ``vae_prac.batch_elbo``: what a step that ignores the
    ``batch_elbo`` it is handed would most likely call instead."""
    return tf.reduce_sum(_elbo_terms(model, x, seed=seed).elbo)


def _handed_batch_elbo(model, x, seed):
    """The ELBO function handed to the student's step: the library's on noise of its own
    (from the seed folded with 1), so that a step calling another ELBO shows."""
    if seed is None:
        raise Hint(
            "the step called batch_elbo with seed=None: pass on the seed the step "
            "was given, batch_elbo(model, x, seed), so that its noise comes from it."
        )
    seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int32), 1)
    return _library_batch_elbo_sum(model, x, seed)


def _run_step(
    fn, optimizer: str, compiled: bool = False, seed=STEP_SEED, batch_elbo=_handed_batch_elbo
):
    """Run one step on a fresh small VAE; (returned value, weight changes, n encoder vars).

    With plain gradient descent (``"sgd"``) the change of each weight is exactly
    -learning rate x its gradient, so the step's gradients can be read off the change.
    """
    model = small_vae(seed=3, latent_dim=ELBO_LATENT)
    opt = (
        keras.optimizers.SGD(STEP_LR)
        if optimizer == "sgd"
        else keras.optimizers.RMSprop(STEP_LR, rho=0.9, epsilon=1e-10)
    )
    opt.build(model.trainable_variables)
    before = [v.numpy().copy() for v in model.trainable_variables]
    x = random_images(ELBO_BATCH, seed=3)

    def call(x, seed):
        return fn(model, opt, batch_elbo, x, seed)

    if compiled:
        call = tf.function(call)
    value = call(x, tf.constant(seed, tf.int32))
    deltas = [v.numpy() - b for v, b in zip(model.trainable_variables, before)]
    return value, deltas, len(model.encoder.trainable_variables)


def _flat(arrays, part=slice(None)):
    return np.concatenate([a.ravel() for a in arrays[part]]).astype(np.float64)


def _same_update(mine, ref) -> bool:
    return np.allclose(_flat(mine), _flat(ref), rtol=1e-3, atol=1e-7)


def _step_or_hint(fn, optimizer: str, compiled: bool = False, seed=STEP_SEED):
    import warnings

    try:
        with warnings.catch_warnings(), quiet_tensorflow():
            warnings.simplefilter("ignore")  # Keras warns about missing gradients
            return _run_step(fn, optimizer, compiled, seed)
    except (Hint, NotImplementedError):
        raise
    except Exception as err:
        text = str(err)
        if "no gradients provided" in text.lower() or "'NoneType'" in text:
            raise Hint(
                "no gradients came back (they are None): compute the loss inside the "
                "`with tf.GradientTape() as tape:` block, from TensorFlow operations, "
                "and ask the tape for the gradient of that same loss."
            )
        if compiled:
            raise Hint(
                f"it works eagerly but fails inside tf.function, which train() "
                f"compiles it into: {_error_line(err)} (no .numpy(), float() or "
                f"NumPy on tensors inside the step)"
            )
        raise


def _judge_sgd_update(fn, mine, ref) -> None:
    """Name what makes the plain gradient-descent update ``mine`` differ from ``ref``."""
    from vae_prac.training import gradient_step

    flat_mine, flat_ref = _flat(mine), _flat(ref)
    ratio = float(flat_mine @ flat_ref / (flat_ref @ flat_ref))
    if np.allclose(flat_mine, ratio * flat_ref, rtol=1e-3, atol=1e-7):
        if ratio < 0:
            raise Hint(
                "the weights moved the wrong way: the step lowered the ELBO. "
                "Optimizers minimize, so the loss is -ELBO, and the gradients "
                "are those of that loss (not of the ELBO itself)."
            )
        if np.isclose(ratio, 1 / ELBO_BATCH, rtol=1e-2):
            raise Hint(
                f"the update is {ELBO_BATCH} times smaller than the gradient of "
                f"-ELBO summed over the batch: the loss was averaged over the "
                f"{ELBO_BATCH} images. Here, as in the original, it is the sum "
                f"(with RMSProp the factor nearly cancels; with other optimizers "
                f"it does not)."
            )
        if np.isclose(ratio, 2.0, rtol=1e-2):
            raise Hint(
                "the update is twice the gradient step: the gradients were "
                "applied twice (or the loss counted twice)."
            )
        raise Hint(
            f"the update points the way of the gradient step on -ELBO but is "
            f"{ratio:.3g} times its size: the loss or its gradients were scaled "
            f"(averaged, clipped, or multiplied by a learning rate of your own). "
            f"Apply the gradients of -ELBO, summed over the batch, as they are: "
            f"the optimizer brings its own learning rate."
        )
    # Another ELBO than the one handed in (vae_prac.batch_elbo, or my_batch_elbo).
    _, other_elbo, _ = _run_step(
        lambda m, o, b, x, s: gradient_step(m, o, _library_batch_elbo_sum, x, s), "sgd"
    )
    if _same_update(mine, other_elbo):
        raise Hint(
            "the step computed the ELBO with another function than the batch_elbo "
            "it was handed (vae_prac.batch_elbo, or your my_batch_elbo by name): "
            "call the batch_elbo argument, so that training runs the ELBO it is "
            "given."
        )
    # The seed: the same seed must give the same update, another seed another one.
    _, again, _ = _step_or_hint(fn, "sgd")
    if not _same_update(mine, again):
        raise Hint(
            "two steps from the same weights with the same seed moved them "
            "differently: pass the step's seed on to batch_elbo(model, x, seed), "
            "so that its noise comes from that seed."
        )
    _, other_seed, _ = _step_or_hint(fn, "sgd", seed=STEP_OTHER_SEED)
    if _same_update(mine, other_seed):
        raise Hint(
            "two different seeds gave the same update: the seed the step was "
            "given never reached batch_elbo. Pass it on: batch_elbo(model, x, seed)."
        )
    raise Hint(
        "with plain gradient descent one step should move each weight by the "
        "learning rate times the gradient of -ELBO; this step moves them "
        "differently. Compute the loss -ELBO from batch_elbo(model, x, seed) "
        "inside the tape, differentiate it with respect to "
        "model.trainable_variables, and apply those gradients once with the "
        "optimizer you were given."
    )


@check("train_step")
def train_step(fn) -> None:
    """``fn(model, optimizer, batch_elbo, x, seed)``: one optimizer step on -ELBO; returns
    the batch ELBO.

    It is run once with plain gradient descent, where each weight's change is the
    learning rate times its gradient, so the update tells which loss was differentiated
    with respect to which weights; then with RMSProp, as training uses it, eagerly and
    inside ``tf.function``, as ``train()`` compiles it. Every change must match the
    library's step (``vae_prac.gradient_step``) on the same weights, batch and seed.
    The ``batch_elbo`` handed to the step draws its own noise from the seed, so a step
    that calls another ELBO, or drops the seed, shows in its update. What it cannot
    tell apart: a step that also computes things it does not use, or that calls
    ``vae_prac.gradient_step`` itself (it judges behaviour, not source).
    """
    from vae_prac.training import gradient_step

    _, ref, n_enc = _run_step(gradient_step, "sgd")
    value, mine, _ = _step_or_hint(fn, "sgd")
    encoder, decoder = slice(0, n_enc), slice(n_enc, None)
    if not np.any(_flat(mine)):
        raise Hint(
            "the weights did not change: after taking the gradients, apply them "
            "with the optimizer (optimizer.apply or optimizer.apply_gradients)."
        )
    for part, name, other in (
        (encoder, "encoder's weights phi", "decoder"),
        (decoder, "decoder's weights theta", "encoder"),
    ):
        if not np.any(_flat(mine, part)):
            raise Hint(
                f"the {name} were not updated, only the {other}'s: take the gradient "
                f"with respect to model.trainable_variables, which holds both "
                f"networks' weights."
            )
    if not _same_update(mine, ref):
        _judge_sgd_update(fn, mine, ref)

    # What it returns: the batch ELBO of this step (train() logs it).
    if value is None:
        raise Hint(
            "the step returned None: return the batch ELBO it computed (train() "
            "prints and records it)."
        )
    expected = float(
        _handed_batch_elbo(
            small_vae(seed=3, latent_dim=ELBO_LATENT),
            random_images(ELBO_BATCH, seed=3),
            tf.constant(STEP_SEED, tf.int32),
        )
    )
    got = returned_array(value, "the step", "a number")
    if got.shape != ():
        raise Hint(f"the step returned shape {list(got.shape)}; return the batch ELBO, one number.")
    got = float(got)
    if not np.isclose(got, expected, rtol=1e-4, atol=1e-3):
        if np.isclose(got, -expected, rtol=1e-4, atol=1e-3):
            raise Hint(
                "the update is right, but the step returned the loss -ELBO; return "
                "the ELBO itself (train() reports the ELBO)."
            )
        a, b = apart(got, expected, "f", 2)
        raise Hint(
            f"the update is right, but the step returned {a} where the batch ELBO, "
            f"computed before the update, is {b}: return the value batch_elbo gave "
            f"inside the tape."
        )

    # With RMSProp, eagerly and compiled, as train() runs it.
    _, ref_rms, _ = _run_step(gradient_step, "rmsprop")
    for compiled in (False, True):
        _, mine_rms, _ = _step_or_hint(fn, "rmsprop", compiled)
        if not _same_update(mine_rms, ref_rms):
            if _same_update(mine_rms, ref):
                raise Hint(
                    "with RMSProp the weights moved by exactly the learning rate "
                    "times the gradient, a plain gradient-descent step: the "
                    "gradients were applied by hand, not by the optimizer. Let the "
                    "optimizer you were given apply them (optimizer.apply)."
                )
            where = "inside tf.function" if compiled else "with RMSProp"
            raise Hint(
                f"{where} the step's update differs from the library's on the same "
                f"weights and batch: use the optimizer passed in (never a new one), "
                f"once per step, and TensorFlow operations only."
            )


def decode_midpoint_reference(model, x_a, x_b):
    """The decoded pixel probabilities [28, 28, 1] of the midpoint of two posterior means."""
    mu, _ = model.encoder(
        tf.stack(
            [
                tf.reshape(tf.cast(x_a, tf.float32), [28, 28, 1]),
                tf.reshape(tf.cast(x_b, tf.float32), [28, 28, 1]),
            ]
        )
    )
    z = tf.reduce_mean(mu, axis=0, keepdims=True)
    return model.decode(z)[0]


MIDPOINT_SEED = 1


def _midpoint_inputs():
    """A small VAE and two unequal images x_a, x_b (numpy [28, 28, 1], as cell 44 passes)."""
    model = small_vae(seed=MIDPOINT_SEED)
    x = random_images(2, seed=MIDPOINT_SEED).numpy()
    return model, x[0], x[1]


def _midpoint_slips(model, x_a, x_b):
    """{hint: image [28, 28, 1]} for the usual slips, each computed the slip's way."""
    x = tf.constant(np.stack([x_a, x_b]))
    mu, sigma = model.encoder(x)
    probs = lambda z: tf.sigmoid(model.decoder(z)).numpy()  # noqa: E731
    logits_of = lambda z: model.decoder(z).numpy()[0]  # noqa: E731
    mid = tf.reduce_mean(mu, axis=0, keepdims=True)
    averaged = (
        "it averaged the two decoded images; average the two codes first, then "
        "decode that one code."
    )
    one = (
        "it decodes the code of one image only; the task asks for the point halfway "
        "between the codes of x_a and x_b."
    )
    return {
        "logits": (
            logits_of(mid),
            "those are logits (any real number), not pixel probabilities: the "
            "decoder's raw output still needs to become probabilities.",
        ),
        "averaged images": (probs(mu).mean(axis=0), averaged),
        "averaged logits": (
            tf.sigmoid(tf.reduce_mean(model.decoder(mu), axis=0)).numpy(),
            averaged,
        ),
        "x_a only": (probs(mu[:1])[0], one),
        "x_b only": (probs(mu[1:])[0], one),
        "sum": (
            probs(tf.reduce_sum(mu, axis=0, keepdims=True))[0],
            "it decodes the sum of the two codes; the midpoint is their average.",
        ),
        "difference": (
            probs((mu[:1] - mu[1:]) / 2)[0],
            "it decodes half the difference of the two codes; the midpoint is their average.",
        ),
        "sigma": (
            probs(tf.reduce_mean(sigma, axis=0, keepdims=True))[0],
            "it decodes the average of the two sigmas (the posterior standard "
            "deviations); the codes to average are the posterior means.",
        ),
        "mu + sigma": (
            probs(tf.reduce_mean(mu + sigma, axis=0, keepdims=True))[0],
            "sigma was added to the codes; the codes to average are the posterior means mu alone.",
        ),
        "images averaged": (
            probs(model.encoder(tf.reduce_mean(x, 0, keepdims=True))[0])[0],
            "it averaged the two images and encoded that; encode each "
            "image, then average their codes.",
        ),
    }


def _as_image(value, what="decode_midpoint"):
    got = returned_array(value, what, "an image")
    if got.shape == (1, 28, 28, 1):
        raise Hint(
            "it returned a batch of one image, shape [1, 28, 28, 1]; return the "
            "image itself, shape [28, 28, 1]."
        )
    if got.shape == (2, 28, 28, 1):
        raise Hint(
            "it returned two images, shape [2, 28, 28, 1]; return one image, the "
            "decoded midpoint, shape [28, 28, 1]."
        )
    if got.shape in ((28, 28), (784,), (1, 784)):
        raise Hint(
            f"it returned shape {list(got.shape)}; return the image with its "
            f"channel axis, shape [28, 28, 1]."
        )
    if got.shape != (28, 28, 1):
        raise Hint(f"it returned shape {list(got.shape)}; expected one image, [28, 28, 1].")
    if not np.all(np.isfinite(got)):
        raise Hint("it returned NaN or Inf.")
    return got


@check("decode_midpoint")
def decode_midpoint(fn) -> None:
    """``fn(model, x_a, x_b)``: pixel probabilities [28, 28, 1] decoded from the average of
    the posterior means of the two images.

    The images come as numpy arrays [28, 28, 1], as cell 44 passes them; the result may be
    a tensor or an array. A slip is named only after its own image has been computed and
    found equal to the student's.
    """
    model, x_a, x_b = _midpoint_inputs()
    expected = decode_midpoint_reference(model, x_a, x_b).numpy().astype(np.float64)
    got = _as_image(fn(model, x_a.copy(), x_b.copy()))
    close = lambda a, b: np.allclose(a, b, rtol=1e-4, atol=1e-5)  # noqa: E731
    if close(got, expected):
        again = _as_image(fn(model, x_a.copy(), x_b.copy()))
        if not close(again, expected):
            raise Hint(
                "a second call gave a different image: use the posterior means, nothing random."
            )
        # The same in the other order: the midpoint is symmetric.
        swapped = _as_image(fn(model, x_b.copy(), x_a.copy()))
        if not close(swapped, expected):
            raise Hint(
                "swapping x_a and x_b changed the image; the midpoint of two codes "
                "does not depend on their order."
            )
        return
    for image, hint in _midpoint_slips(model, x_a, x_b).values():
        if close(got, image):
            raise Hint(hint)
    if np.all((got == 0) | (got == 1)):
        raise Hint(
            "it returned only 0s and 1s (a binary sample, or probabilities "
            "rounded); return the pixel probabilities of the decoded midpoint "
            "themselves."
        )
    again = _as_image(fn(model, x_a.copy(), x_b.copy()))
    if not np.array_equal(got, again):
        raise Hint(
            "two calls gave different images: something in it is random. Use the "
            "posterior means from the encoder, not samples of z."
        )
    if got.min() < 0 or got.max() > 1:
        raise Hint("some values lie outside [0, 1], so they are not pixel probabilities.")
    raise Hint(
        "it differs from the decoded midpoint of the two posterior means: encode "
        "both images, average their means, and decode that code to pixel "
        "probabilities."
    )
