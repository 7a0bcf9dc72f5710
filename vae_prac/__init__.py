"""vae_prac: variational auto-encoders in TensorFlow 2 and TensorFlow Probability.

The library behind the vae_prac notebook series (grown out of the Deep Learning Indaba
2017 VAE practical). Notation: q_phi(z|x) is the encoder, p_theta(x|z) the decoder,
p(z) = N(0, I) the prior.
"""

import os

# TensorFlow's C++ start-up messages are noise for students; keep them out unless asked.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from vae_prac.config import Config  # noqa: E402
from vae_prac.elbo import ElboTerms, batch_elbo, elbo, kl_analytic, kl_monte_carlo  # noqa: E402
from vae_prac.evaluate import evaluate_elbo, iw_bound, log_px  # noqa: E402
from vae_prac.model import (VAE, generative_network, inference_network,  # noqa: E402
                            likelihood, posterior, prior, reparameterize)
from vae_prac.training import History, NonFiniteLossError, TrainResult, restore, train  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Config", "VAE", "inference_network", "generative_network", "reparameterize",
    "prior", "posterior", "likelihood", "elbo", "batch_elbo", "ElboTerms",
    "kl_analytic", "kl_monte_carlo", "iw_bound", "log_px", "evaluate_elbo",
    "train", "restore", "History", "TrainResult", "NonFiniteLossError",
]
