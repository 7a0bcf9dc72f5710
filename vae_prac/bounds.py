"""Lower bounds on log p_theta(x): the ELBO, the importance-weighted bound L_k, and their parts.

Notation: q_phi(z|x) is the encoder's approximate posterior (its weights are phi),
p_theta(x|z) the decoder's likelihood (its weights are theta), p(z) the prior. log
p_theta(x) = log E_{p(z)}[p_theta(x|z)] is what we would like to maximize and to report,
but it is an integral over z that has no closed form. A *bound* is a quantity we can
estimate that never exceeds it (in expectation), so that raising the bound raises
log p_theta(x) or closes the gap to it. This module holds the two bounds of the course.

The ELBO (``elbo``), for one image x:

    log p_theta(x) >= E_{q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z)) = ELBO.

* The expected log-likelihood is estimated by Monte Carlo with L reparameterized
  samples z^(l) = mu_phi(x) + sigma_phi(x) * eps^(l): (1/L) sum_l log p_theta(x|z^(l)),
  where log p_theta(x|z) sums over the 784 pixels.
* The KL divergence between two diagonal Gaussians has a closed form, summed over the
  latent dimensions (``kl_analytic``); ``kl="monte_carlo"`` estimates it from the same
  samples instead (``kl_monte_carlo``), (1/L) sum_l [log q_phi(z^(l)|x) - log p(z^(l))],
  which is unbiased but noisier, and the only choice when the KL has no closed form (a
  learned prior such as ``vae_prac.model.mixture_prior``).
* The gap, log p_theta(x) - ELBO, is KL(q_phi(z|x) || p_theta(z|x)): how far the
  encoder's posterior is from the true one.

``elbo`` returns per-example values; the original practical optimized their sum over
the batch (``batch_elbo``). Maximizing it trains theta and phi together. ``beta_elbo``
weighs the KL term by beta (the beta-VAE; beta = 1 is the ELBO).

The importance-weighted bound L_k (``iw_bound``; Burda et al., 2015) uses q_phi as the
proposal of importance sampling, with k samples z_i ~ q_phi(z|x):

    L_k(x) = log (1/k) sum_{i=1}^k w_i,   w_i = p_theta(x|z_i) p(z_i) / q_phi(z_i|x).

``log_importance_weights`` gives the log w_i, ``log_mean_exp`` combines them without
forming the w_i (they under- or overflow in float32). Averaging k samples inside the log
(L_k) instead of outside it (the ELBO with L = k samples) is the whole difference.

E[L_1] is the ELBO, and E[L_k] never decreases with k: the mean of k+1 weights is the
average, over the k-subsets I of them, of the subset means, so by Jensen's inequality
E[L_{k+1}] = E log E_I[mean_I w] >= E E_I[log mean_I w] = E[L_k] (Burda et al.). By
Jensen again E[L_k] <= log p_theta(x), so L_k is a lower bound in expectation; a single
estimate can exceed log p_theta(x). As k -> infinity, L_k -> log p_theta(x) almost
surely by the strong law of large numbers, since E_q[w] = p_theta(x) is finite; E[L_k]
-> log p_theta(x) as well when the ELBO is finite (L_k then lies between the average of
the log weights and a tangent to the log at p_theta(x), both convergent in mean; Burda
et al.'s Theorem 1 assumes bounded weights). The bias log p_theta(x) - E[L_k] can
shrink slowly, more slowly than 1/k when q_phi(z|x) has much lighter tails than the
posterior (the weights then have infinite variance). With k = 5000, L_k is the standard
estimate of the test log-likelihood (``vae_prac.evaluate.log_px``).

As a training objective (the IWAE), L_k's gradient with reparameterized z_i is
sum_i w~_i grad log w_i, with the normalized weights w~_i = w_i / sum_j w_j of
``normalized_weights``; the gradient of the ELBO estimated with the same k samples
weights every sample by 1/k.
``iw_bound_dreg`` gives the doubly reparameterized gradient of L_k (DReG; Tucker et
al., 2018): the same bound and decoder gradient, and an unbiased encoder gradient
without the score term, whose variance grows with k.

Every function here takes the model as a ``LatentVariableModel``: anything with an
encoder, a prior and a likelihood (``vae_prac.VAE`` is one).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Protocol

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability import distributions as tfd

from vae_prac.config import check_positive_int, check_stateless_seed, is_positive_int
from vae_prac.model import posterior, reparameterize

KL_ESTIMATORS = ("analytic", "monte_carlo")

# iw_bound keeps one chunk's decoder outputs (chunk * batch * 784 floats) near 64 MB.
_MAX_SAMPLES_PER_CHUNK = 20_000


class LatentVariableModel(Protocol):
    """What the bounds need from a model: q_phi(z|x)'s parameters, p(z) and p_theta(x|z).

    ``vae_prac.VAE`` is one; so is a subclass with a prior or a likelihood of its own
    (notebook 07 learns a mixture prior this way). The posterior is always the diagonal
    Gaussian N(mu, diag(sigma^2)) of ``vae_prac.model.posterior``, sampled by
    reparameterization, which is why the bounds ask for its parameters.
    """

    #: The inference network: images [batch, 28, 28, 1] -> (mu, sigma), each
    #: [batch, latent_dim]; its weights are phi.
    encoder: Callable

    def prior(self) -> tfd.Distribution:
        """p(z), one event of size latent_dim."""
        ...

    def likelihood(self, z) -> tfd.Distribution:
        """p_theta(x|z) for codes z [..., latent_dim]; log_prob(x) sums over the pixels."""
        ...


class ElboTerms(NamedTuple):
    """Per-example terms of the ELBO, each of shape [batch]."""

    elbo: tf.Tensor
    expected_log_likelihood: tf.Tensor
    kl: tf.Tensor


def kl_analytic(q: tfd.Distribution, p: tfd.Distribution):
    """KL(q || p) in closed form; for ``Independent`` Gaussians, summed over latent dims."""
    return tfd.kl_divergence(q, p)


def kl_monte_carlo(q: tfd.Distribution, p: tfd.Distribution, z):
    """Monte Carlo KL(q || p) = mean over samples z ~ q of log q(z) - log p(z).

    ``z`` has shape [batch, d] (one sample) or [L, batch, d] (L samples).
    """
    log_ratio = q.log_prob(z) - p.log_prob(z)
    return log_ratio if z.shape.rank == 2 else tf.reduce_mean(log_ratio, axis=0)


def elbo(
    model: LatentVariableModel, x, n_samples: int = 1, kl: str = "analytic", seed=None
) -> ElboTerms:
    """The ELBO of each image in the batch ``x`` under ``model`` (a ``vae_prac.VAE``).

    Args:
      model: Has ``encoder``, ``prior()`` and ``likelihood(z)`` (a ``LatentVariableModel``).
      x: Binary images, float32 [batch, 28, 28, 1].
      n_samples: L, the number of samples of z per image.
      kl: ``"analytic"`` (closed form) or ``"monte_carlo"``.
      seed: ``None`` for fresh noise, or a stateless seed for reproducible noise.
    """
    if kl not in KL_ESTIMATORS:
        raise ValueError(f"kl must be one of {KL_ESTIMATORS}, got {kl!r}.")
    mu, sigma = model.encoder(x)
    q_z = posterior(mu, sigma)
    p_z = model.prior()
    z = reparameterize(mu, sigma, n_samples=n_samples, seed=seed)
    log_likelihood = model.likelihood(z).log_prob(x)  # [batch] or [L, batch]
    if n_samples > 1:
        log_likelihood = tf.reduce_mean(log_likelihood, axis=0)
    kl_term = kl_analytic(q_z, p_z) if kl == "analytic" else kl_monte_carlo(q_z, p_z, z)
    return ElboTerms(log_likelihood - kl_term, log_likelihood, kl_term)


def batch_elbo(model: LatentVariableModel, x, seed=None, n_samples: int = 1):
    """The original practical's objective: the ELBO summed over the batch (a scalar).

    The signature is notebook 05's Code Task's, ``(model, x, seed)``, so the two can
    stand in for each other (``train(..., batch_elbo=...)``, the training step).
    """
    return tf.reduce_sum(elbo(model, x, n_samples=n_samples, seed=seed).elbo)


def beta_elbo(model: LatentVariableModel, x, seed=None, beta=1.0):
    """E_q[log p_theta(x|z)] - beta * KL(q_phi(z|x) || p(z)), summed over the batch.

    The objective of the beta-VAE (Higgins et al., 2017); beta = 1 is the ELBO. ``beta``
    may be a ``tf.Variable`` (a KL warm-up changes it while training runs). With
    ``functools.partial(beta_elbo, beta=...)`` it is a ``batch_elbo`` for ``train``.
    """
    terms = elbo(model, x, seed=seed)
    beta = tf.cast(beta, terms.kl.dtype)
    return tf.reduce_sum(terms.expected_log_likelihood - beta * terms.kl)


def log_importance_weights(
    model: LatentVariableModel,
    x,
    k,
    seed=None,
    log_likelihood: Callable | None = None,
    hold_posterior: bool = False,
):
    """log w_i = log p_theta(x|z_i) + log p(z_i) - log q_phi(z_i|x); shape [k, batch].

    The z_i ~ q_phi(z|x) are reparameterized samples, so the weights are differentiable
    in phi as well as theta. ``log_likelihood(z)``, if given, computes log p_theta(x|z)
    in place of ``model.likelihood(z).log_prob(x)`` (``iw_bound`` passes a faster
    formula for binary images). With ``hold_posterior``, q_phi's parameters are held
    constant inside log q_phi(z_i|x), so that phi reaches the weights only through the
    z_i (the same numbers; ``iw_bound_dreg`` needs this gradient).
    """
    mu, sigma = model.encoder(x)
    q_z = posterior(mu, sigma)
    z = q_z.sample(k, seed=seed)  # [k, batch, d]
    log_p_x_given_z = (
        log_likelihood(z) if log_likelihood is not None else model.likelihood(z).log_prob(x)
    )
    q_density = posterior(tf.stop_gradient(mu), tf.stop_gradient(sigma)) if hold_posterior else q_z
    return log_p_x_given_z + model.prior().log_prob(z) - q_density.log_prob(z)


def log_mean_exp(log_w, axis: int = 0):
    """log (1/k) sum_i exp(log_w_i) over ``axis`` (of length k), without forming exp(log_w).

    Applied to log importance weights [k, batch] it gives L_k per image (notebook 07
    measures the shipped models with it): the weights themselves underflow in float32
    for real images.
    """
    log_w = tf.convert_to_tensor(log_w)
    k = tf.cast(tf.shape(log_w)[axis], log_w.dtype)
    return tf.reduce_logsumexp(log_w, axis=axis) - tf.math.log(k)


def normalized_weights(log_w, axis: int = 0):
    """w~_i = w_i / sum_j w_j over ``axis`` (the k samples), from log weights ``log_w``.

    A softmax over the sample axis, which shifts each image's log weights by their own
    maximum before exponentiating: log weights of real digits lie hundreds of nats apart,
    between images and within one, and exp(log_w) itself underflows (notebook 07's Code
    Task). The gradient of L_k is sum_i w~_i grad log w_i.
    """
    return tf.nn.softmax(tf.convert_to_tensor(log_w), axis=axis)


def iw_bound(model: LatentVariableModel, x, k: int, seed=None, chunk_size: int | None = None):
    """The importance-weighted bound L_k of each image of ``x``; shape [batch].

    ``log_mean_exp(log_importance_weights(model, x, k, seed))``, the k samples drawn as
    ``q.sample(k, seed=seed)`` draws them, as long as they fit in one chunk: the
    training objective of an IWAE (differentiable in theta and phi) and notebook 06's
    Code Task. For the large k of evaluation (k = 5000) the samples are drawn
    ``chunk_size`` at a time, each chunk from its own seed split from ``seed``, and
    combined with a running logsumexp, so any k fits in memory; by default the chunk is
    chosen from the batch size (about 64 MB of decoder outputs). With ``seed`` (a
    stateless seed) the result is reproducible; ``None`` draws fresh noise.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    k = check_positive_int(k, "k")
    if chunk_size is not None and not is_positive_int(chunk_size):
        raise ValueError(
            f"chunk_size must be a positive number of samples per chunk, or None to "
            f"choose one from the batch size; got {chunk_size!r}."
        )
    check_stateless_seed(seed)
    seed = tfp.random.sanitize_seed(seed)  # with seed=None, a fresh random one
    batch = x.shape[0]
    if chunk_size is None:  # a batch of unknown size (in a graph): all at once
        chunk_size = max(1, min(k, _MAX_SAMPLES_PER_CHUNK // max(batch, 1))) if batch else k
    # Inside a tf.function (training) the images can't be checked and the caller's graph
    # compiles the plain weights; eagerly, a compiled function made once per model,
    # with a faster log p(x|z) for binary images (see _log_weights_fn).
    if tf.executing_eagerly():
        binary = bool(tf.reduce_all((x == 0) | (x == 1)))
        compiled = _log_weights_fn(model, binary)

        def log_weights(n, chunk_seed):
            return compiled(x, tf.constant(n), chunk_seed)
    else:

        def log_weights(n, chunk_seed):
            return log_importance_weights(model, x, n, seed=chunk_seed)

    if chunk_size >= k:
        return log_mean_exp(log_weights(k, seed))
    seeds = tf.random.experimental.stateless_split(seed, num=-(-k // chunk_size))
    total = tf.fill(tf.shape(x)[:1], -np.inf)
    for i, start in enumerate(range(0, k, chunk_size)):
        log_w = log_weights(min(chunk_size, k - start), seeds[i])
        total = tf.experimental.numpy.logaddexp(total, tf.reduce_logsumexp(log_w, axis=0))
    return total - tf.math.log(float(k))


def _log_weights_fn(model: LatentVariableModel, binary: bool = False):
    """A compiled ``log_importance_weights`` for ``model``, made once per model.

    With ``binary`` (every pixel of x is 0 or 1) and the library's Bernoulli likelihood
    and N(0, I) prior, log p_theta(x|z) is computed with one softplus per pixel instead
    of two: TFP's Bernoulli gives x * -softplus(-l) + (1 - x) * -softplus(l) for logits
    l, which for x in {0, 1} is exactly -softplus((1 - 2x) l), the same number to the
    last bit. That is a third of the time of L_5000 (the samples, and so the results,
    are those of ``log_importance_weights``).
    """
    from vae_prac.model import VAE, decode

    decoder = model.decoder if isinstance(model, VAE) else None
    fast = (
        binary
        and decoder is not None
        and type(model).likelihood is VAE.likelihood
        and type(model).prior is VAE.prior
    )
    name = "_vae_prac_log_weights_binary" if fast else "_vae_prac_log_weights"
    fn = getattr(model, name, None)
    if fn is None:

        @tf.function(reduce_retracing=True)
        def fn(x, k, seed):
            def binary_log_likelihood(z):
                logits = decode(decoder, z)
                return -tf.reduce_sum(tf.math.softplus((1.0 - 2.0 * x) * logits), axis=[-3, -2, -1])

            return log_importance_weights(
                model, x, k, seed=seed, log_likelihood=binary_log_likelihood if fast else None
            )

        setattr(model, name, fn)
    return fn


def iw_bound_dreg(model: LatentVariableModel, x, k: int, seed=None):
    """L_k of each image, and the surrogate whose gradient in phi is DReG's; each [batch].

    The doubly reparameterized gradient of L_k (DReG; Tucker, Lawson, Gu and Maddison,
    2018). L_k's gradient in the encoder's weights phi has two parts: the path through
    the samples z_i = mu_phi(x) + sigma_phi(x) * eps_i, and the score part through
    log q_phi(z_i|x)'s own dependence on phi, whose expectation is zero but whose
    variance grows with k (the IWAE's encoder learns worse as k grows). Applying the
    reparameterization trick to the score part once more turns it into a path term,
    and the two combine into

        grad_phi L_k  ~=  sum_i w~_i^2 (d log w_i / d z_i) (d z_i / d phi),

    with the normalized weights w~_i; the decoder's gradient (in theta, and in a learned
    prior's weights) is L_k's own, sum_i w~_i grad_theta log w_i. Both are unbiased;
    Tucker et al. measure a higher signal-to-noise ratio for the encoder's gradient,
    growing with k (not a law for every model: ``tests/test_iwae.py`` finds the two
    about equally noisy for a small untrained one).

    Returns ``(bound, surrogate)``. ``bound`` is L_k, computed with q_phi's parameters
    held constant inside log q_phi(z_i|x) (the same number as ``iw_bound``'s with the
    same samples): its gradient in theta is L_k's. ``surrogate`` is
    sum_i stop(w~_i^2) log w_i: its gradient in phi is DReG's. Train theta on the first
    and phi on the second (``vae_prac.training`` does, with
    ``Config(objective="iwae", iwae_gradient="dreg")``).
    """
    check_positive_int(k, "k")
    log_w = log_importance_weights(model, x, k, seed=seed, hold_posterior=True)
    squared = tf.stop_gradient(tf.square(normalized_weights(log_w)))
    return log_mean_exp(log_w), tf.reduce_sum(squared * log_w, axis=0)
