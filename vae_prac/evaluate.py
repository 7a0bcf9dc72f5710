"""Measuring a trained VAE: the test ELBO and importance-sampled estimates of log p(x).

The ELBO is a lower bound on log p_theta(x); how far below it sits depends on how good
q_phi(z|x) is. Importance sampling with q_phi as the proposal gives a tighter bound
(Burda et al., 2015):

    L_k(x) = log (1/k) sum_{i=1}^k w_i,   w_i = p_theta(x|z_i) p(z_i) / q_phi(z_i|x),
    z_i ~ q_phi(z|x).

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
estimate of the test log-likelihood. The sum of weights is formed with logsumexp, since
the w_i themselves under- or overflow, and the k samples are processed in chunks so
memory stays bounded whatever k is.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac.config import (check_positive_int, check_seed, check_stateless_seed,
                             is_positive_int)
from vae_prac.data import validate_batch
from vae_prac.elbo import elbo, log_importance_weights  # noqa: F401 (re-exported)

# Keep one chunk's decoder outputs (chunk * batch * 784 floats) near 64 MB.
_MAX_SAMPLES_PER_CHUNK = 20_000


def iw_bound(model, x, k: int, seed=None, chunk_size: int | None = None):
    """The importance-weighted bound L_k for each image of ``x``; shape [batch].

    Samples are drawn ``chunk_size`` at a time and combined with a running logsumexp,
    so any k fits in memory. With ``seed`` (a stateless seed) the result is reproducible.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    k = check_positive_int(k, "k")
    if chunk_size is not None and not is_positive_int(chunk_size):
        raise ValueError(
            f"chunk_size must be a positive number of samples per chunk, or None to "
            f"choose one from the batch size; got {chunk_size!r}.")
    check_stateless_seed(seed)
    batch = int(x.shape[0])
    chunk = chunk_size or max(1, min(k, _MAX_SAMPLES_PER_CHUNK // max(batch, 1)))
    # One stateless seed per chunk; with seed=None, a fresh random one.
    seeds = tf.random.experimental.stateless_split(
        tfp.random.sanitize_seed(seed), num=-(-k // chunk))
    # Binary images allow a faster log p(x|z) (see _log_weights_fn); checked eagerly only.
    binary = tf.executing_eagerly() and bool(tf.reduce_all((x == 0) | (x == 1)))
    log_weights = _log_weights_fn(model, binary)
    total = tf.fill([batch], -np.inf)
    for i, start in enumerate(range(0, k, chunk)):
        n = min(chunk, k - start)
        log_w = log_weights(x, tf.constant(n), seeds[i])
        total = tf.experimental.numpy.logaddexp(total, tf.reduce_logsumexp(log_w, axis=0))
    return total - tf.math.log(float(k))


def log_px(model, x, k: int = 5000, batch_size: int = 100, seed: int = 0,
           progress: bool = False):
    """Estimate log p_theta(x) per image with k importance samples; numpy [n].

    ``progress`` shows a progress bar (useful for k in the thousands).
    """
    k = check_positive_int(k, "k")
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    x = validate_batch(x).numpy()   # a clear error for grey levels, NaN or a wrong shape
    out = []
    starts = range(0, len(x), batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=f"log p(x), k={k}", unit="batch")
    for b, start in enumerate(starts):
        out.append(iw_bound(model, x[start:start + batch_size], k, seed=(seed, b)).numpy())
    return np.concatenate(out) if out else np.zeros([0], np.float32)


def evaluate_elbo(model, x, batch_size: int = 1000, n_samples: int = 1, seed: int = 0):
    """The mean ELBO per image over ``x`` (nats), with reproducible noise."""
    batch_size = check_positive_int(batch_size, "batch_size")
    n_samples = check_positive_int(n_samples, "n_samples")
    seed = check_seed(seed)
    x = validate_batch(x).numpy()   # a clear error for grey levels, NaN or a wrong shape
    if len(x) == 0:
        raise ValueError("evaluate_elbo needs at least one image; x is empty.")
    fn = _elbo_fn(model)
    total = 0.0
    for b, start in enumerate(range(0, len(x), batch_size)):
        total += float(fn(x[start:start + batch_size], n_samples,
                          tf.constant([seed, b], tf.int32)))
    return total / len(x)


def _log_weights_fn(model, binary: bool = False):
    """A compiled ``log_importance_weights`` for ``model``, made once per model.

    With ``binary`` (every pixel of x is 0 or 1) and the library's Bernoulli likelihood
    and N(0, I) prior, log p_theta(x|z) is computed with one softplus per pixel instead
    of two: TFP's Bernoulli gives x * -softplus(-l) + (1 - x) * -softplus(l) for logits
    l, which for x in {0, 1} is exactly -softplus((1 - 2x) l), the same number to the
    last bit. That is a third of the time of L_5000 (the samples, and so the results,
    are those of ``log_importance_weights``).
    """
    from vae_prac.model import VAE, decode

    fast = (binary and isinstance(model, VAE)
            and type(model).likelihood is VAE.likelihood and type(model).prior is VAE.prior)
    name = "_vae_prac_log_weights_binary" if fast else "_vae_prac_log_weights"
    fn = getattr(model, name, None)
    if fn is None:
        @tf.function(reduce_retracing=True)
        def fn(x, k, seed):
            def binary_log_likelihood(z):
                logits = decode(model.decoder, z)
                return -tf.reduce_sum(tf.math.softplus((1.0 - 2.0 * x) * logits),
                                      axis=[-3, -2, -1])
            return log_importance_weights(model, x, k, seed=seed,
                                          log_likelihood=binary_log_likelihood if fast else None)
        setattr(model, name, fn)
    return fn


def _elbo_fn(model):
    """A compiled sum of ``elbo`` over a batch for ``model``, made once per model."""
    fn = getattr(model, "_vae_prac_elbo_sum", None)
    if fn is None:
        @tf.function(reduce_retracing=True)
        def fn(x, n_samples, seed):
            return tf.reduce_sum(elbo(model, x, n_samples=n_samples, seed=seed).elbo)
        model._vae_prac_elbo_sum = fn
    return fn


#: Burda et al.'s threshold: a latent unit is active if Cov_x(E_q[z_u]) > 10^-2.
ACTIVE_UNIT_THRESHOLD = 1e-2


def posterior_mean_variance(model, x, batch_size: int = 1000):
    """The variance over the images x of each posterior mean E_{q_phi(z|x)}[z_u]; [d]."""
    batch_size = check_positive_int(batch_size, "batch_size")
    x = validate_batch(x).numpy()
    if len(x) == 0:
        raise ValueError("posterior_mean_variance needs at least one image; x is empty.")
    mus = [model.encoder(x[start:start + batch_size])[0].numpy()
           for start in range(0, len(x), batch_size)]
    return np.var(np.concatenate(mus).astype(np.float64), axis=0)


def active_units(model, x, threshold: float = ACTIVE_UNIT_THRESHOLD,
                 batch_size: int = 1000) -> int:
    """How many latent dimensions the model uses: Burda et al.'s (2015) criterion.

    A unit u is active if A_u = Cov_x(E_{q_phi(z|x)}[z_u]) > ``threshold`` (10^-2):
    its posterior mean moves with the image. The criterion looks only at the posterior
    mean: an inactive unit's mean barely moves with x, but its standard deviation may
    still vary with x, and a posterior that is the same for every x need not be the
    prior, so its KL term need not be small. In a trained model such units usually also
    have q_phi(z_u|x) close to p(z_u), a KL near 0; count the units whose average KL
    exceeds a threshold to see that side.
    """
    return int(np.sum(posterior_mean_variance(model, x, batch_size) > threshold))

