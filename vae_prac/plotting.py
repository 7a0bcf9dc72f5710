"""Figures for the notebooks and the CLI: digits, samples, ELBO curves, latent spaces.

Every function returns a matplotlib ``Figure`` (and does not call ``plt.show``), so the
same code serves a notebook, which displays it, and the CLI, which saves it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from vae_prac.config import check_positive_int
from vae_prac.model import two_seeds


def _images(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(-1, 28, 28)


def image_grid(images, ncols: int = 10, title: str | None = None, titles=None, scale: float = 1.0):
    """A grid of 28x28 images (binary or grey), black digits on white."""
    images = _images(images)
    ncols = max(1, min(ncols, len(images)))
    nrows = math.ceil(len(images) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(scale * ncols, scale * nrows + 0.4 * bool(title)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _strip(images, gap: int = 2):
    """Images side by side in one array, NaN between them (drawn light grey)."""
    images = _images(images)
    strip = np.full((28, len(images) * (28 + gap) - gap), np.nan, np.float32)
    for i, img in enumerate(images):
        strip[:, i * (28 + gap) : i * (28 + gap) + 28] = img
    return strip


def posterior_prior(model, x, seed=None, title: str | None = None, n: int = 8):
    """Posterior predictive samples of digits beside prior predictive samples.

    The original practical's picture, for the first ``n`` digits of ``x`` (one digit is
    repeated ``n`` times, to show how its samples vary). Each column is a digit x, a
    draw x' ~ p_theta(x|z) with z ~ q_phi(z|x), which should look like x, and a draw
    with z ~ p(z) instead, which shows what the model generates on its own.
    """
    n = check_positive_int(n, "n")
    x = np.asarray(x, np.float32).reshape(-1, 28, 28, 1)[:n]
    if len(x) == 1:
        x = np.repeat(x, n, axis=0)
    posterior_seed, prior_seed = two_seeds(seed)  # one seed for both would correlate them
    posterior_sample = model.posterior_predictive_sample(
        tf.convert_to_tensor(x), seed=posterior_seed
    )
    prior_sample = model.prior_predictive_sample(len(x), seed=prior_seed)
    cmap = plt.get_cmap("gray_r").with_extremes(bad="0.9")  # the gaps between digits
    fig, axes = plt.subplots(3, 1, figsize=(max(4.0, 0.95 * len(x)), 3.9))
    for ax, img, row_title in (
        (axes[0], x, "Data $x$"),
        (
            axes[1],
            posterior_sample,
            r"Posterior samples: $x' \sim p_\theta(x \mid z)$, $z \sim q_\phi(z \mid x)$",
        ),
        (axes[2], prior_sample, r"Prior samples: $x \sim p_\theta(x \mid z)$, $z \sim p(z)$"),
    ):
        ax.imshow(_strip(np.asarray(img)), cmap=cmap, vmin=0, vmax=1)
        ax.set_title(row_title, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()  # after suptitle, so the panels make room for it
    return fig


def posterior_prior_hook(x, seed=None, show=True):
    """A training hook that plots ``posterior_prior`` every ``print_every`` iterations."""

    def hook(model, iteration, history):
        fig = posterior_prior(model, x, seed=seed, title=f"Iteration {iteration}")
        if show:
            plt.show()
        else:
            plt.close(fig)

    return hook


def elbo_curve(history, reference: float | None = None, objective: str = "ELBO"):
    """Train and test ELBO (nats per image) against iteration.

    ``objective`` names what the training column holds (e.g. "L_5" for an IWAE run).
    The axes zoom on where the curves spend most iterations; when that leaves the first
    iterations (the ELBO starts hundreds of nats lower) below the axes, an inset shows
    the whole run.
    """
    it = np.asarray(history.iteration)
    train = np.asarray(history.train_elbo, dtype=float)
    test = np.asarray(history.test_elbo, dtype=float)
    has_test = ~np.isnan(test)
    fig, ax = plt.subplots(figsize=(6, 3.5))

    def draw(axes, marker_size=None):
        axes.plot(it, train, label=f"train {objective} (batch)", alpha=0.7)
        axes.plot(
            it[has_test],
            test[has_test],
            "o-",
            markersize=marker_size,
            label="test ELBO (fixed set)",
        )
        if reference is not None:
            axes.axhline(reference, color="gray", ls="--", label=f"reference {reference:.1f}")

    draw(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel("ELBO (nats per image)")
    values = np.r_[train, test[has_test]]
    values = values[np.isfinite(values)]
    bottom = np.percentile(values, 5) - 10 if len(values) else None
    zoomed = bottom is not None and values.min() < bottom
    if zoomed:  # the zoom hides the start: show the whole run beside it
        ax.set_ylim(bottom, None)
        inset = ax.inset_axes((0.5, 0.1, 0.46, 0.42))  # where the curves are not
        draw(inset, marker_size=2)
        margin = 0.05 * (values.max() - values.min())
        inset.set_ylim(values.min() - margin, values.max() + margin)
        inset.axhspan(*ax.get_ylim(), color="0.9", zorder=0)
        inset.set_title("the whole run (shaded: the range above)", fontsize=8)
        inset.tick_params(labelsize=7)
        inset.grid(alpha=0.3)
    ax.legend(**({"loc": "lower left", "fontsize": 8} if zoomed else {}))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def prior_samples(model, n: int = 100, ncols: int = 10, seed=None, mean: bool = True):
    """Digits generated from z ~ p(z): pixel probabilities (``mean``) or binary samples."""
    z_seed, x_seed = two_seeds(seed)
    z = model.prior().sample(n, seed=z_seed)
    images = model.decode(z, sample=not mean, seed=x_seed)
    return image_grid(
        images,
        ncols=ncols,
        title=(
            "Decoder means p(x=1|z) at prior draws z ~ N(0, I)"
            if mean
            else "Prior predictive samples: z ~ N(0, I), then x ~ p(x|z)"
        ),
    )


def latent_manifold(model, n: int = 15, bound: float = 2.0):
    """For a 2-D latent space: decoded means on an n x n grid of z in [-bound, bound]^2."""
    if model.latent_dim != 2:
        raise ValueError(
            f"latent_manifold needs a model with latent_dim=2, got "
            f"{model.latent_dim}; train one with Config(latent_dim=2)."
        )
    grid = np.linspace(-bound, bound, n, dtype=np.float32)
    z = np.stack(np.meshgrid(grid, grid[::-1]), axis=-1).reshape(-1, 2)
    images = model.decode(z).numpy().reshape(n, n, 28, 28)
    canvas = images.transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, extent=(-bound, bound, -bound, bound))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title("Decoded means over the latent grid")
    return fig


def latent_scatter(model, x, labels, dims=(0, 1)):
    """Posterior means mu_phi(x) of the first two (or chosen) latent dimensions, by digit."""
    mu, _ = model.encoder(np.asarray(x, np.float32))
    mu = np.asarray(mu)
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(
        mu[:, dims[0]], mu[:, dims[1]], c=np.asarray(labels), cmap="tab10", s=4, alpha=0.7
    )
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel(f"$\\mu_{{{dims[0] + 1}}}$")
    ax.set_ylabel(f"$\\mu_{{{dims[1] + 1}}}$")
    ax.set_title("Posterior means, coloured by digit")
    return fig


def interpolation(model, x_a, x_b, n: int = 10):
    """Decoded means along the straight line between the posterior means of two digits."""
    mu, _ = model.encoder(
        np.stack(
            [
                np.asarray(x_a, np.float32).reshape(28, 28, 1),
                np.asarray(x_b, np.float32).reshape(28, 28, 1),
            ]
        )
    )
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    z = (1 - t) * mu[0] + t * mu[1]
    return image_grid(
        model.decode(z), ncols=n, title="Interpolating between two digits in latent space"
    )


def softplus_curve():
    """softplus(a) = log(1 + e^a): positive, smooth, and close to ReLU for large a."""
    a = np.linspace(-6, 6, 200)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(a, np.logaddexp(0, a), label="softplus(a) = log(1 + e$^a$)")
    ax.plot(a, np.maximum(a, 0), "--", label="ReLU(a) = max(0, a)", alpha=0.7)
    ax.set_xlabel("a")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
