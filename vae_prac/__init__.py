"""vae_prac: variational auto-encoders in TensorFlow 2 and TensorFlow Probability.

The library behind the vae_prac notebook series (grown out of the Deep Learning Indaba
2017 VAE practical). Notation: q_phi(z|x) is the encoder, p_theta(x|z) the decoder,
p(z) = N(0, I) the prior.
"""

import os


def _import_tensorflow_quietly():
    """Import TensorFlow and TFP without their C++ start-up lines on stderr.

    Those lines (oneDNN, CUDA drivers) are noise for students, carry timestamps that
    make notebook outputs differ on every run, and since TF 2.17 some are written
    before any log level applies; so stderr's file descriptor is muted for the import.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
        import tensorflow_probability  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

from vae_prac.config import Config  # noqa: E402
from vae_prac.elbo import ElboTerms, batch_elbo, elbo, kl_analytic, kl_monte_carlo  # noqa: E402
from vae_prac.evaluate import evaluate_elbo, iw_bound, log_px  # noqa: E402
from vae_prac.model import (VAE, generative_network, inference_network,  # noqa: E402
                            likelihood, posterior, prior, reparameterize)
from vae_prac.training import (History, NonFiniteLossError, TrainResult,  # noqa: E402
                               gradient_step, restore, train)

__version__ = "0.1.0"
#: Where the course lives; the notebooks' Colab badges and install cell point here.
REPO_URL = "https://github.com/vae-prac/vae_prac"

__all__ = [
    "Config", "VAE", "inference_network", "generative_network", "reparameterize",
    "prior", "posterior", "likelihood", "elbo", "batch_elbo", "ElboTerms",
    "kl_analytic", "kl_monte_carlo", "iw_bound", "log_px", "evaluate_elbo",
    "train", "restore", "History", "TrainResult", "NonFiniteLossError",
]
