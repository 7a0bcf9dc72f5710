"""The evidence lower bound (ELBO), built from its parts.

For one image x:

    log p_theta(x) >= E_{q_phi(z|x)}[log p_theta(x|z)] - KL(q_phi(z|x) || p(z)) = ELBO.

* The expected log-likelihood is estimated by Monte Carlo with L reparameterized
  samples z^(l) = mu_phi(x) + sigma_phi(x) * eps^(l): (1/L) sum_l log p_theta(x|z^(l)),
  where log p_theta(x|z) sums over the 784 pixels.
* The KL divergence between two diagonal Gaussians has a closed form, summed over the
  latent dimensions; ``kl="monte_carlo"`` estimates it from the same samples instead,
  (1/L) sum_l [log q_phi(z^(l)|x) - log p(z^(l))], which is unbiased but noisier.

``elbo`` returns per-example values; the original practical optimized their sum over
the batch (``batch_elbo``). Maximizing it trains theta and phi together.

``iwae_bound`` is the importance-weighted bound of Burda et al. (2015), a tighter
objective built from the same k samples:

    L_k(x) = log (1/k) sum_{i=1}^k p_theta(x|z_i) p(z_i) / q_phi(z_i|x),  z_i ~ q_phi(z|x),

with ELBO = E[L_1] <= E[L_k] <= E[L_{k+1}] <= log p_theta(x). Averaging k samples inside
the log (IWAE) instead of outside it (the ELBO with L = k samples) is the whole difference.
Its gradient (reparameterized z_i) is sum_i w~_i grad log w_i, with the normalized weights
w~_i = w_i / sum_j w_j of ``normalized_weights``; the gradient of the ELBO estimated with
the same k samples weights every sample by 1/k.

``mixture_prior`` is a learned prior, a mixture of diagonal Gaussians; the KL from
q_phi(z|x) to it has no closed form, so the ELBO then uses ``kl="monte_carlo"``.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac.model import posterior, reparameterize

tfd = tfp.distributions

KL_ESTIMATORS = ("analytic", "monte_carlo")


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


def elbo(model, x, n_samples: int = 1, kl: str = "analytic", seed=None) -> ElboTerms:
    """The ELBO of each image in the batch ``x`` under ``model`` (a ``vae_prac.VAE``).

    Args:
      model: Has ``encoder``, ``posterior(x)``, ``prior()`` and ``likelihood(z)``.
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
    log_likelihood = model.likelihood(z).log_prob(x)   # [batch] or [L, batch]
    if n_samples > 1:
        log_likelihood = tf.reduce_mean(log_likelihood, axis=0)
    kl_term = kl_analytic(q_z, p_z) if kl == "analytic" else kl_monte_carlo(q_z, p_z, z)
    return ElboTerms(log_likelihood - kl_term, log_likelihood, kl_term)


def log_importance_weights(model, x, k: int, seed=None, log_likelihood=None):
    """log w_i = log p_theta(x|z_i) + log p(z_i) - log q_phi(z_i|x); shape [k, batch].

    The z_i ~ q_phi(z|x) are reparameterized samples, so the weights are differentiable
    in phi as well as theta. ``log_likelihood(z)``, if given, computes log p_theta(x|z)
    in place of ``model.likelihood(z).log_prob(x)`` (``vae_prac.evaluate`` passes a
    faster formula for binary images).
    """
    mu, sigma = model.encoder(x)
    q_z = posterior(mu, sigma)
    z = q_z.sample(k, seed=seed)                                   # [k, batch, d]
    log_p_x_given_z = (log_likelihood(z) if log_likelihood is not None
                       else model.likelihood(z).log_prob(x))
    return log_p_x_given_z + model.prior().log_prob(z) - q_z.log_prob(z)


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


def mixture_prior(logits, locs, scales) -> tfd.Distribution:
    """A mixture of K diagonal Gaussians over R^d, a prior p(z) with learnable parameters.

    ``logits`` [K] are the unnormalized log mixing weights (pi = softmax(logits)),
    ``locs`` and ``scales`` [K, d] the components' means and (positive) standard
    deviations: p(z) = sum_k pi_k N(z; locs_k, diag(scales_k^2)), one event of size d.
    With it as the prior, KL(q_phi(z|x) || p(z)) has no closed form: estimate it by Monte
    Carlo (``elbo(..., kl="monte_carlo")``, notebook 04). Notebook 07's Code Task.
    """
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=logits),
        components_distribution=tfd.Independent(tfd.Normal(locs, scales),
                                                reinterpreted_batch_ndims=1),
        name="mixture_prior")


def iwae_bound(model, x, k: int, seed=None):
    """The importance-weighted bound L_k of each image of ``x``; shape [batch].

    The sum of weights is formed with logsumexp (``log_mean_exp``): the weights
    themselves under- or overflow in float32. For large k at test time,
    ``vae_prac.evaluate.iw_bound`` draws the samples in chunks.
    """
    return log_mean_exp(log_importance_weights(model, x, k, seed=seed))


def batch_elbo(model, x, seed=None, n_samples: int = 1):
    """The original practical's objective: the ELBO summed over the batch (a scalar).

    The signature is notebook 05's Code Task's, ``(model, x, seed)``, so the two can
    stand in for each other (``train(..., batch_elbo=...)``, the training step).
    """
    return tf.reduce_sum(elbo(model, x, n_samples=n_samples, seed=seed).elbo)


def beta_elbo(model, x, seed=None, beta=1.0):
    """E_q[log p_theta(x|z)] - beta * KL(q_phi(z|x) || p(z)), summed over the batch.

    The objective of the beta-VAE (Higgins et al., 2017); beta = 1 is the ELBO. ``beta``
    may be a ``tf.Variable`` (a KL warm-up changes it while training runs). With
    ``functools.partial(beta_elbo, beta=...)`` it is a ``batch_elbo`` for ``train``.
    """
    terms = elbo(model, x, seed=seed)
    beta = tf.cast(beta, terms.kl.dtype)
    return tf.reduce_sum(terms.expected_log_likelihood - beta * terms.kl)
