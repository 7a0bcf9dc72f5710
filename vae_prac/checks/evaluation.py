"""Checks for notebook 06, measuring and improving a VAE.

    from vae_prac.checks import evaluation as check
    check.iw_order(answer_iw)      # Math Task: how L_k, the ELBO and log p(x) are ordered
    check.iw_subsets(answer_sub)   # Math Task: why E[L_k] never decreases with k
    check.iw_bound(my_iw_bound)    # Code Task: the importance-weighted bound L_k

``iw_bound`` judges the values: one per image, finite, the same for the same seed and
different for another, with k samples for k = 1 and k = 20. An answer that draws its
samples as the library does (``q.sample(k, seed=seed)`` or ``vae_prac.reparameterize``
with ``n_samples=k``) must give the library's values on the same seed; one that draws
them another way must agree with the library on average over 40 seeds, paired seed by
seed. A slip is named only after its formula has been verified to give the student's
values: exactly on the same samples, or on average over the seeds. Last, the answer must
stay finite (and, with the library's samples, right) on a batch whose log weights differ
by hundreds of nats between images, as real digits' do: a logsumexp shifted by the
largest log weight of the whole batch instead of each image's own passes the first
batch, whose images differ by a few nats, and returns -inf there.

What it cannot tell apart: an answer that only calls ``vae_prac.iw_bound`` (or copies
it) behaves exactly like a correct one and passes; the check judges what the function
does, not how it was written.
"""

from __future__ import annotations

import functools
import math
import traceback

import numpy as np
import tensorflow as tf

from vae_prac.checks import Hint, check, choice, quiet_tensorflow, returned_array
from vae_prac.checks._shared import random_images, small_vae

__all__ = ["iw_bound", "iw_order", "iw_subsets"]

IW_BATCH, IW_K = 16, 20  # unequal, so a logsumexp over the wrong axis shows
IW_SEED, IW_OTHER_SEED = (3, 5), (8, 1)
IW_N_SEEDS = 40  # the average over seeds, for samples drawn another way
SIGMAS = 6.0  # how far an average may stray, in standard errors
# exp(t) is 0 below about t = -87 (TensorFlow on CPU flushes subnormals) to -104
# (NumPy) in float32, and below about -708 to -745 in float64: the log weights at which
# an image's weights all vanish, with no shift or shifted by the batch's largest.
UNDERFLOW = ((80.0, 110.0), (700.0, 760.0))
# Ink pixels per image of the spread batch: each image's largest log weight lies well
# away from those thresholds (about -140 to -1250 nats), so which images come out -inf
# tells a missing shift from a shift by the whole batch's maximum.
SPREAD_INK = (40, 56, 92, 124, 156, 188, 205, 253, 256, 301, 317, 334, 350, 366, 382, 398)


def _iw_inputs():
    # Small weights keep the log weights within a few nats of each other (so a sum, a
    # mean, a max and a logsumexp of them all differ), and near -575 (so the weights
    # themselves underflow to 0 in float32, as they do for real digits).
    return small_vae(seed=2, scale=0.5), random_images(IW_BATCH, seed=2)


def _spread_inputs():
    """A batch whose log weights differ by hundreds of nats between images.

    Real digits do: under a trained model one digit's log p(x) may be -60 and another's
    -250. Here a decoder that puts ink on few pixels (every logit near -3) and images
    with 40 to 398 ink pixels give log weights from about -140 down to about -1250 nats.
    """
    model = small_vae(seed=4, scale=0.5)
    logits_layer = [layer for layer in model.decoder.layers if layer.get_weights()][-1]
    kernel, bias = logits_layer.get_weights()
    logits_layer.set_weights([kernel, bias - 3.0])
    rng = np.random.default_rng(4)
    images = np.zeros((IW_BATCH, 28 * 28), np.float32)
    for image, ink in zip(images, SPREAD_INK):
        image[rng.permutation(28 * 28)[:ink]] = 1.0
    return model, tf.constant(images.reshape(IW_BATCH, 28, 28, 1))


def _log_terms(model, x, k, seed, z=None):
    """log p(x|z_i), log p(z_i), log q(z_i|x) for z_i ~ q(z|x) from ``seed``: [3, k, batch]."""
    q = model.posterior(x)
    if z is None:
        z = q.sample(k, seed=seed)
    return np.stack(
        [
            model.likelihood(z).log_prob(x).numpy(),
            model.prior().log_prob(z).numpy(),
            q.log_prob(z).numpy(),
        ]
    ).astype(np.float64)


def _prior_terms(model, x, k, seed):
    """The same terms with z_i drawn from the prior p(z) instead of q(z|x)."""
    z = model.prior().sample([k, int(x.shape[0])], seed=seed)
    return _log_terms(model, x, k, seed, z=z)


def _lse(a, axis=0):
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def _iw_slips(terms, k, prior_terms=None):
    """(the right L_k, {slip: (values [batch], hint)}) from ``_log_terms``."""
    ll, lp, lq = terms[..., 0, :, :], terms[..., 1, :, :], terms[..., 2, :, :]
    log_w = ll + lp - lq
    log_k = math.log(k)
    right = _lse(log_w, -2) - log_k
    prior_hint = (
        "the log prior term log p(z) is missing from the log weights: "
        "log w = log p(x|z) + log p(z) - log q(z|x)."
    )
    slips = {
        "no log k": (
            right + log_k,
            "it is log(k) too high: L_k is the log of the average "
            "of the weights, so the logsumexp needs log k taken "
            "off.",
        ),
        "log k added": (
            right + 2 * log_k,
            "log k was added; the average of the weights "
            "divides their sum by k, which in log space "
            "subtracts log k.",
        ),
        "divided by k": (
            _lse(log_w, -2) / k,
            "the logsumexp was divided by k; in log "
            "space, dividing the sum of the weights by k "
            "subtracts log k.",
        ),
        "log10 k": (
            right + log_k - math.log10(k),
            "log k was taken in base 10; log-probabilities here are in nats, so "
            "every log, log k included, is the natural log.",
        ),
        "elbo": (
            log_w.mean(axis=-2),
            "that is the average of the log weights, an ELBO "
            "estimate. L_k is the log of the average of the "
            "weights, not the average of their logs.",
        ),
        "max": (
            log_w.max(axis=-2),
            "that is the largest log weight; L_k averages all k weights (in log space).",
        ),
        "shift not added back": (
            right - log_w.max(axis=-2),
            "the maximum subtracted before exponentiating was not "
            "added back after the log: log sum_i exp(a_i) = m + "
            "log sum_i exp(a_i - m).",
        ),
        "no log q": (
            _lse(ll + lp, -2) - log_k,
            "the log q(z|x) term is missing from the log weights: each weight "
            "divides by the proposal's density, log w = log p(x|z) + log p(z) "
            "- log q(z|x).",
        ),
        "no prior": (_lse(ll - lq, -2) - log_k, prior_hint),
        "likelihood only": (
            _lse(ll, -2) - log_k,
            "the log weights are the log-likelihoods alone: "
            "log w = log p(x|z) + log p(z) - log q(z|x).",
        ),
        "swapped": (
            _lse(ll - lp + lq, -2) - log_k,
            "log p(z) and log q(z|x) have each other's signs: log w = "
            "log p(x|z) + log p(z) - log q(z|x).",
        ),
    }
    if prior_terms is not None:
        pll, plp, plq = (prior_terms[..., i, :, :] for i in range(3))
        prior_sample_hint = (
            "the samples z_i come from the prior p(z), not from "
            "q(z|x): L_k draws them from the encoder's posterior, the "
            "proposal that the weights divide by."
        )
        slips["prior samples"] = (_lse(pll + plp - plq, -2) - log_k, prior_sample_hint)
        slips["prior samples, likelihood"] = (_lse(pll, -2) - log_k, prior_sample_hint)
    return right, slips


def _student_line(err, fn) -> str:
    """Where in the student's function an error was raised, if that can be told."""
    code = getattr(fn, "__code__", None)
    frames = traceback.extract_tb(err.__traceback__)
    mine = [f for f in frames if code is not None and f.filename == code.co_filename]
    return f" (line {mine[-1].lineno} of your function)" if mine else ""


def _run(fn, model, x, k, seed):
    """The student's ``fn``; an error it raises becomes a hint that says so."""
    try:
        return fn(model, x, k, seed)
    except (NotImplementedError, Hint):
        raise
    except Exception as err:  # a student's code may fail in any way
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        extra = ""
        if "int32" in str(err) and "allowed values" in str(err):
            extra = (
                " A TensorFlow function that needs floats was given an integer: k is a Python int."
            )
        raise Hint(
            f"calling it with k = {k} raised {type(err).__name__}: {message}"
            f"{_student_line(err, fn)}.{extra}"
        ) from None


def _per_image(value, batch: int, k: int) -> np.ndarray:
    got = returned_array(value, "my_iw_bound")
    if got.shape == (batch,):
        return got
    shape = list(got.shape)
    if got.shape == (k,) and k > 1:
        raise Hint(
            f"with k = {k} it returned shape [{k}], one value per sample: it combined "
            f"the images instead of the samples. Combine the k samples of each image "
            f"(the log weights have shape [k, batch] = [{k}, {batch}]): one value per "
            f"image, shape [{batch}]."
        )
    if got.shape == (k, batch) and k == 1:
        raise Hint(
            f"with k = 1 it returned shape {shape}, the log weight of each image with "
            f"the sample axis still there; L_1 too is one value per image, shape "
            f"[{batch}]: combine over the sample axis for every k."
        )
    if got.shape == (k, batch):
        raise Hint(
            f"with k = {k} it returned shape {shape}, the log weights themselves; "
            f"combine them over the k samples into one value per image, shape "
            f"[{batch}]."
        )
    if got.shape == (1, batch):
        raise Hint(
            f"with k = {k} it returned shape {shape}: the combined sample axis was "
            f"kept (keepdims); return one value per image, shape [{batch}]."
        )
    if got.shape == (batch, k):
        raise Hint(
            f"with k = {k} it returned shape {shape}: the log weights, laid out "
            f"[batch, k]; combine them over the k samples into one value per "
            f"image, shape [{batch}]."
        )
    if got.shape == () and k == 1:
        raise Hint(
            f"with k = 1 it returned a single number, though with k = {IW_K} it "
            f"returned one value per image: with one sample the sample axis was "
            f"dropped (by a squeeze or an index), so the combination ran over the "
            f"images. Keep the sample axis for every k, k = 1 included."
        )
    if got.shape == ():
        raise Hint(
            f"with k = {k} it returned a single number; return one value per "
            f"image, shape [{batch}] (don't reduce over the batch)."
        )
    raise Hint(f"with k = {k} it returned shape {shape}; expected one value per image, [{batch}].")


def _call(fn, model, x, k, seed, log_w=None) -> np.ndarray:
    """``fn``'s values [batch]; ``log_w`` (the library's on these samples) names an
    underflow when they are not finite."""
    got = _per_image(_run(fn, model, x, k, tf.constant(seed, tf.int32)), int(x.shape[0]), k)
    if not np.all(np.isfinite(got)):
        if log_w is None:
            terms = _log_terms(model, x, k, tf.constant(seed, tf.int32))
            log_w = terms[0] + terms[1] - terms[2]
        raise Hint(_not_finite(got, log_w))
    return got


def _cutoffs(finite, top):
    """The range (low, high) of c such that exactly the images with top > c are finite,
    or None when the finite images are not the ones with the largest log weights."""
    low = top[~finite].max() if (~finite).any() else -np.inf
    high = top[finite].min() if finite.any() else np.inf
    return (low, high) if low < high else None


def _not_finite(got, log_w) -> str:
    """Name the underflow only where its pattern fits: which images came out -inf."""
    finite = np.isfinite(got)
    top = log_w.max(axis=0)  # each image's largest log weight
    cut = _cutoffs(finite, top)
    if cut is not None and (~finite).any():
        low, high = cut

        def fits(start):  # a cutoff start - T, T an underflow threshold, fits the pattern
            return any(max(low, start - hi) < min(high, start - lo) for lo, hi in UNDERFLOW)

        # No shift: an image is lost when all its log weights are below -T.
        unshifted = fits(0.0)
        # A shift by the largest log weight of the whole batch: lost below that - T.
        whole = finite.any() and fits(top.max())
        if whole and not unshifted:
            return (
                "on a batch whose log weights differ by hundreds of nats between "
                "images (as real digits' do under a trained model), it returned -inf "
                "for the images furthest below the batch's largest log weight: the "
                "maximum subtracted before exponentiating was taken over the whole "
                "array (or across the images), not over each image's own k log "
                "weights, so their shifted weights still underflow to 0. Shift each "
                "image by the largest of its own k log weights."
            )
        if unshifted and not whole:
            where = (
                f"here the log weights are near {log_w.mean():.0f}"
                if np.ptp(top) < 50
                else f"here the images' log weights range from {top.max():.0f} down to "
                f"{top.min():.0f}"
            )
            return (
                f"it returned -inf: the weights w_i = exp(log w_i) underflow to 0 "
                f"(below about -87 in float32, -745 in float64; {where}), so their "
                f"average is 0 and its log -inf. Stay in log space: a logsumexp never "
                f"forms the weights."
            )
    if np.ptp(top) > 100:
        return (
            "on a batch whose log weights differ by hundreds of nats between images "
            "(as real digits' do) it returned NaN or Inf for some images; look for a "
            "step that forms exp of a log weight far below 0, or of a difference "
            "between log weights of different images."
        )
    return "it returned NaN or Inf for some images."


@functools.lru_cache(maxsize=1)
def _iw_reference():
    """The library's log terms on every seed the check uses; the same on every run."""
    model, x = _iw_inputs()
    seeds = [IW_SEED, IW_OTHER_SEED] + [(s, 77) for s in range(IW_N_SEEDS)]
    terms = {
        (seed, k): _log_terms(model, x, k, tf.constant(seed, tf.int32))
        for seed in seeds[:2]
        for k in (1, IW_K)
    }
    prior = _prior_terms(model, x, IW_K, tf.constant(IW_SEED, tf.int32))
    many = np.stack(
        [_log_terms(model, x, IW_K, tf.constant(s, tf.int32)) for s in seeds[2:]]
    )  # [seeds, 3, k, batch]
    many_prior = np.stack(
        [_prior_terms(model, x, IW_K, tf.constant(s, tf.int32)) for s in seeds[2:]]
    )
    mu, _ = model.encoder(x)
    at_mu = (
        model.likelihood(mu).log_prob(x)
        + model.prior().log_prob(mu)
        - model.posterior(x).log_prob(mu)
    )
    spread_model, spread_x = _spread_inputs()
    spread = _log_terms(spread_model, spread_x, IW_K, tf.constant(IW_SEED, tf.int32))
    return dict(
        terms=terms,
        prior=prior,
        seeds=seeds[2:],
        many=many,
        many_prior=many_prior,
        at_mu=at_mu.numpy(),
        spread=spread,
    )


def _close(a, b) -> bool:
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-3))


@check("iw_bound")
def iw_bound(fn) -> None:
    """``fn(model, x, k, seed)``: L_k = log (1/k) sum_i w_i per image, shape [batch]."""
    ref = _iw_reference()
    model, x = _iw_inputs()
    terms = ref["terms"][IW_SEED, IW_K]
    got = _call(fn, model, x, IW_K, IW_SEED, terms[0] + terms[1] - terms[2])
    right, slips = _iw_slips(terms, IW_K, ref["prior"])
    if _close(got, right):
        exact = True
    else:
        exact = False
        for values, hint in slips.values():
            if _close(got, values):
                raise Hint(hint)
        if _close(got, ref["at_mu"]):
            raise Hint(
                "every sample is the mean of q(z|x): L_k needs k random samples "
                "z_i drawn from q(z|x), with their noise taken from seed."
            )

    again = _call(fn, model, x, IW_K, IW_SEED)
    if not _close(got, again):
        raise Hint(
            "two calls with the same seed gave different values: draw the samples "
            "from seed (stateless), so that the same seed gives the same L_k."
        )
    other = _call(fn, model, x, IW_K, IW_OTHER_SEED)
    if np.array_equal(got, other):
        raise Hint(
            "two different seeds gave exactly the same values: the k samples must "
            "be random draws from q(z|x), with their noise taken from seed."
        )

    # k = 1 works (notebook 06 uses it), and k sets the number of samples.
    one = _call(fn, model, x, 1, IW_SEED)
    if _close(one, got):
        raise Hint(
            f"k = 1 and k = {IW_K} gave the same values: either k is ignored or "
            f"the k samples of an image are all the same draw. Draw k independent "
            f"samples per image and average their weights."
        )
    if _close(one - got, math.log(IW_K)):
        raise Hint(
            f"k = 1 and k = {IW_K} differ only by log {IW_K}: the same samples were "
            f"used for both, so the number of samples does not follow k."
        )
    if exact:
        one_right, _ = _iw_slips(ref["terms"][IW_SEED, 1], 1)
        if not _close(one, one_right):
            raise Hint(
                f"it is right for k = {IW_K} but not for k = 1, where L_1 is the "
                f"single log weight of each image."
            )
    else:
        _judge_on_average(fn, model, x, ref)
    _judge_spread(fn, ref["spread"], exact)


def _judge_spread(fn, terms, exact: bool) -> None:
    """Finite (and, with the library's samples, right) where images differ by hundreds
    of nats: a shift by the whole batch's largest log weight fails here."""
    model, x = _spread_inputs()
    log_w = terms[0] + terms[1] - terms[2]
    got = _call(fn, model, x, IW_K, IW_SEED, log_w)
    right = _lse(log_w, 0) - math.log(IW_K)
    if exact and not _close(got, right):
        worst = int(np.argmax(np.abs(got - right)))
        raise Hint(
            f"it is right on the check's first batch, whose images' log weights lie "
            f"within a few nats of each other, but not on one where they differ by "
            f"hundreds of nats (one image: yours {got[worst]:.2f}, the library's "
            f"{right[worst]:.2f} on the same samples). Look for a step that depends "
            f"on the size of the log weights: a clip, a fixed shift, a maximum over "
            f"the wrong axis."
        )


def _on_seeds(fn, model, x, seeds) -> list[np.ndarray]:
    """``fn``'s L_k on each seed: compiled if it can be (fast), else eagerly."""
    try:
        with quiet_tensorflow():
            traced = tf.function(lambda seed: fn(model, x, IW_K, seed))
            first = traced(tf.constant(seeds[0], tf.int32))
        if _close(_per_image(first, IW_BATCH, IW_K), _call(fn, model, x, IW_K, seeds[0])):
            values = [_per_image(traced(tf.constant(s, tf.int32)), IW_BATCH, IW_K) for s in seeds]
            if all(np.all(np.isfinite(v)) for v in values):
                return values
    except (Hint, NotImplementedError):
        raise
    except Exception:  # e.g. NumPy inside: fine eagerly, which is all the notebook needs
        pass
    return [_call(fn, model, x, IW_K, seed) for seed in seeds]


def _judge_on_average(fn, model, x, ref) -> None:
    """Samples drawn another way: compare with the library seed by seed, on average."""
    mine = np.stack(_on_seeds(fn, model, x, ref["seeds"]))
    right, slips = _iw_slips(ref["many"], IW_K, ref["many_prior"])  # [seeds, batch]

    def agrees(values):
        diff = (mine - values).mean(axis=1)  # over the images
        error = diff.std() / math.sqrt(len(diff))
        return abs(diff.mean()) <= SIGMAS * error + 0.01, SIGMAS * error + 0.01

    ok, tolerance = agrees(right)
    if ok:
        return
    for values, hint in slips.values():
        # Only a slip clearly apart from the right answer is named.
        if agrees(values)[0] and abs((values - right).mean()) > 4 * tolerance:
            raise Hint(hint)
    average, library = mine.mean(), right.mean()
    a, b = (f"{v:.{d}f}" for v, d in zip((average, library), (2, 2)))
    if a == b:
        a, b = f"{average:.4f}", f"{library:.4f}"
    raise Hint(
        f"averaged over {len(mine)} seeds and {IW_BATCH} images, yours is {a}, "
        f"while the library's L_{IW_K} on the same seeds averages {b}. Check the log "
        f"weights (log p(x|z) + log p(z) - log q(z|x), with z drawn from q(z|x)) and "
        f"how they are combined over the k samples."
    )


def _choice(name, answer, correct: str, hints: dict[str, str]) -> None:
    """``choice`` with a hint for each wrong letter, and one for anything else."""
    if answer is None or answer is Ellipsis:
        return choice(name, answer, correct, "")
    letter = str(answer).strip().lower().strip("()")
    letters = ", ".join(sorted(set(hints) | {correct}))
    return choice(
        name,
        letter,
        correct,
        hints.get(letter, f'answer with one of the letters {letters}, as a string such as "a".'),
    )


def iw_order(answer) -> None:
    """Math Task: which ordering of ELBO, E[L_k] and log p(x) holds? (The answer is d.)"""
    _choice(
        "iw_order",
        answer,
        "d",
        {
            "a": "this puts log p(x) below the ELBO, but the ELBO is a lower bound on "
            "log p(x). Start from L_1: with one sample, L_1 = log w_1; what is its "
            "expectation over z_1 ~ q(z|x)?",
            "b": "this has the bound getting worse as the samples grow, and lying above "
            "log p(x). L_k is the log of an average of weights whose expectation is "
            "p(x): which way does Jensen's inequality go for the concave log, and so on "
            "which side of log p(x) does E[L_k] lie?",
            "c": "the average of the weights is unbiased for p(x), but L_k is its log, and "
            "the log of an unbiased estimate is not unbiased for the log. Which way does "
            "Jensen's inequality go for the concave log?",
        },
    )


def iw_subsets(answer) -> None:
    """Math Task: the reasons for the two steps of Burda et al.'s subset-average
    argument that E[L_{k+1}] >= E[L_k]. (The answer is b.)"""
    _choice(
        "iw_subsets",
        answer,
        "b",
        {
            "a": "is the mean of k+1 numbers always at least the mean of k of them? Try the "
            "weights 1, 1 and 0 with k = 2. Then look at what differs between the two "
            "sides of step (1).",
            "c": "the law of large numbers says where the mean ends up as k grows, not that "
            "each extra sample brings it closer; and step (1) must hold for every draw "
            "of the weights. Look at what differs between its two sides.",
            "d": "Jensen's inequality over z ~ q gives E[log Y] <= log E[Y], which puts E[L_k] "
            "below log p(x); it says nothing about L_{k+1} against L_k. In step (1), "
            "which expectation moves across the log?",
        },
    )
