"""Measuring a trained VAE: the test ELBO, log p(x) estimated by importance sampling, and
how many latent dimensions it uses.

The bounds themselves are in ``vae_prac.bounds``: the ELBO sits below log p_theta(x) by
KL(q_phi(z|x) || p_theta(z|x)), how far q_phi is from the true posterior, and the
importance-weighted bound L_k (Burda et al., 2015) closes that gap as k grows. Here they
are applied to a whole test set, a batch at a time with reproducible noise: the mean
ELBO per image (``evaluate_elbo``), and L_5000 per image (``log_px``), the standard
estimate of the test log-likelihood. ``active_units`` counts the latent dimensions whose
posterior mean moves with the image (Burda et al.'s criterion).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vae_prac.bounds import LatentVariableModel, elbo, iw_bound
from vae_prac.config import check_positive_int, check_seed
from vae_prac.data import validate_batch


def log_px(
    model: LatentVariableModel,
    x,
    k: int = 5000,
    batch_size: int = 100,
    seed: int = 0,
    progress: bool = False,
):
    """Estimate log p_theta(x) per image with k importance samples; numpy [n].

    L_k of ``vae_prac.bounds.iw_bound`` on batches of ``batch_size`` images, batch b with
    the stateless seed (seed, b), so the estimate is reproducible. ``progress`` shows a
    progress bar (useful for k in the thousands).
    """
    k = check_positive_int(k, "k")
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    x = validate_batch(x).numpy()  # a clear error for grey levels, NaN or a wrong shape
    out = []
    starts = range(0, len(x), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"log p(x), k={k}", unit="batch")
    for b, start in enumerate(starts):
        out.append(iw_bound(model, x[start : start + batch_size], k, seed=(seed, b)).numpy())
    return np.concatenate(out) if out else np.zeros([0], np.float32)


def evaluate_elbo(
    model: LatentVariableModel, x, batch_size: int = 1000, n_samples: int = 1, seed: int = 0
) -> float:
    """The mean ELBO per image over ``x`` (nats), with reproducible noise."""
    batch_size = check_positive_int(batch_size, "batch_size")
    n_samples = check_positive_int(n_samples, "n_samples")
    seed = check_seed(seed)
    x = validate_batch(x).numpy()  # a clear error for grey levels, NaN or a wrong shape
    if len(x) == 0:
        raise ValueError("evaluate_elbo needs at least one image; x is empty.")
    fn = _elbo_fn(model)
    total = 0.0
    for b, start in enumerate(range(0, len(x), batch_size)):
        total += float(
            fn(x[start : start + batch_size], n_samples, tf.constant([seed, b], tf.int32))
        )
    return total / len(x)


def _elbo_fn(model: LatentVariableModel):
    """A compiled sum of ``elbo`` over a batch for ``model``, made once per model."""
    fn = getattr(model, "_vae_prac_elbo_sum", None)
    if fn is None:

        @tf.function(reduce_retracing=True)
        def fn(x, n_samples, seed):
            return tf.reduce_sum(elbo(model, x, n_samples=n_samples, seed=seed).elbo)

        setattr(model, "_vae_prac_elbo_sum", fn)
    return fn


#: Burda et al.'s threshold: a latent unit is active if Cov_x(E_q[z_u]) > 10^-2.
ACTIVE_UNIT_THRESHOLD = 1e-2


def posterior_mean_variance(model: LatentVariableModel, x, batch_size: int = 1000):
    """The variance over the images x of each posterior mean E_{q_phi(z|x)}[z_u]; [d]."""
    batch_size = check_positive_int(batch_size, "batch_size")
    x = validate_batch(x).numpy()
    if len(x) == 0:
        raise ValueError("posterior_mean_variance needs at least one image; x is empty.")
    mus = [
        model.encoder(x[start : start + batch_size])[0].numpy()
        for start in range(0, len(x), batch_size)
    ]
    return np.var(np.concatenate(mus).astype(np.float64), axis=0)


def active_units(
    model: LatentVariableModel, x, threshold: float = ACTIVE_UNIT_THRESHOLD, batch_size: int = 1000
) -> int:
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
