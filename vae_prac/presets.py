"""Named settings: Burda et al.'s benchmark protocol, and the recipes of the shipped models.

Burda, Grosse and Salakhutdinov (2015), "Importance Weighted Autoencoders", Table 1,
MNIST with one stochastic layer:

* 60,000 training images, the last 400 held out for validation; pixels binarized
  dynamically (each pixel ~ Bernoulli(intensity), redrawn every time a batch is drawn);
* latent 50; encoder and decoder each two deterministic layers of 200 tanh units;
  Bernoulli decoder;
* Adam (beta1 0.9, beta2 0.999, epsilon 1e-4), batch 20; 3^i passes over the data at
  learning rate 1e-3 * 10^(-i/7) for i = 0..7: 3,280 passes in all;
* the objective: the ELBO with k samples averaged (VAE) or the bound L_k (IWAE).

Test negative log-likelihoods reported there (nats, L_5000 on the 10,000 test images):
k=1 86.76; k=5 VAE 86.47, IWAE 85.54; k=50 VAE 86.35, IWAE 84.78.

One difference remains: the encoder's standard deviation here is softplus(a) + 1e-6, where
theirs was exp(a). ``vae-prac train --preset burda-iwae-k5`` runs a protocol exactly;
the ``mnist-dynamic-*`` recipes are the same network and data trained for less time
(batch 100, fewer passes, the same schedule compressed), as the shipped models were.
"""

from __future__ import annotations

from vae_prac.config import Config

#: Training images left after the 400 held out.
BURDA_TRAIN_IMAGES = 60000 - 400
#: 3^0 + 3^1 + ... + 3^7 passes over the data.
BURDA_PASSES = 3280

_NETWORK_AND_DATA = dict(
    latent_dim=50,
    hidden_size=200,
    hidden_layers=2,
    activation="tanh",
    binarization="stochastic",
    n_validation=400,
    optimizer="adam",
    epsilon=1e-4,
    learning_rate=1e-3,
    lr_schedule="burda",
)


def _burda(objective: str, k: int) -> dict:
    steps_per_pass = BURDA_TRAIN_IMAGES // 20  # 2,980 steps of 20 images
    return dict(
        _NETWORK_AND_DATA,
        objective=objective,
        n_samples=k,
        batch_size=20,
        n_iterations=BURDA_PASSES * steps_per_pass,
        log_every=steps_per_pass,
        print_every=10 * steps_per_pass,
        n_eval=1000,
    )


def _fast(objective: str, k: int, n_iterations: int) -> dict:
    return dict(
        _NETWORK_AND_DATA,
        objective=objective,
        n_samples=k,
        batch_size=100,
        n_iterations=n_iterations,
        log_every=1000,
        print_every=10000,
        n_eval=1000,
    )


#: Each preset's settings, as keyword arguments of ``Config``.
PRESETS = {
    "burda-vae-k1": _burda("elbo", 1),
    "burda-vae-k5": _burda("elbo", 5),
    "burda-vae-k50": _burda("elbo", 50),
    "burda-iwae-k5": _burda("iwae", 5),
    "burda-iwae-k50": _burda("iwae", 50),
    # Beyond the paper: the same protocol with the doubly reparameterized gradient.
    "burda-iwae-dreg-k5": dict(_burda("iwae", 5), iwae_gradient="dreg"),
    # The shipped models (vae_prac.pretrained): about 2,010 and 755 passes at batch 100.
    "mnist-dynamic-vae": _fast("elbo", 1, 1_200_000),
    "mnist-dynamic-iwae": _fast("iwae", 5, 450_000),
}


def preset(name: str, **changes) -> Config:
    """The ``Config`` of a preset, with any setting changed by keyword."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; the presets are: {', '.join(PRESETS)}.")
    return Config(**{**PRESETS[name], **changes})
