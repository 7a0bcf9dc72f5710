"""The VAE: an inference network, a generative network and the distributions they define.

Notation (used everywhere in vae_prac): x is an image, z its latent code.

* q_phi(z|x) = N(z; mu_phi(x), diag(sigma_phi(x)^2)): the approximate posterior. Its
  parameters phi are the weights of the *inference network* (the encoder).
* p_theta(x|z) = prod_pixels Bernoulli(x_i; logits_theta(z)_i): the likelihood. Its
  parameters theta are the weights of the *generative network* (the decoder).
* p(z) = N(0, I): the prior. It has no parameters. (``mixture_prior`` is a prior with
  parameters, a mixture of Gaussians, for a model that learns its prior: notebook 07.)

Distributions are ``tfp.distributions`` objects, so log-probabilities, samples and
KL divergences come from TFP rather than from hand-written formulas.
"""

from __future__ import annotations

import numbers

import keras
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability import distributions as tfd

from vae_prac.config import is_positive_int

IMAGE_SHAPE = (28, 28, 1)
N_PIXELS = 28 * 28


def inference_network(
    latent_dim: int = 100,
    hidden_size: int = 200,
    hidden_layers: int = 2,
    name: str = "encoder",
    activation: str = "relu",
) -> keras.Model:
    """The inference network x -> (mu, sigma) of q_phi(z|x); its weights are phi.

    flatten -> dense(hidden_size, ReLU) x hidden_layers (2, as in the original) ->
    dense(2*latent_dim). ``activation="tanh"`` gives Burda et al.'s hidden layers. The
    first ``latent_dim`` outputs are the means, which may be any real number. The rest
    become standard deviations, which must be positive: softplus(a) = log(1 + e^a) is
    positive and smooth, and 1e-6 keeps sigma away from 0 so log sigma stays finite.
    """
    x = keras.Input(shape=IMAGE_SHAPE, name="x")
    h = keras.layers.Flatten(name="flatten")(x)
    for i in range(1, hidden_layers + 1):
        h = keras.layers.Dense(hidden_size, activation=activation, name=f"hidden_{i}")(h)
    gaussian_params = keras.layers.Dense(2 * latent_dim, name="gaussian_params")(h)
    mu = gaussian_params[:, :latent_dim]
    sigma = 1e-6 + keras.ops.softplus(gaussian_params[:, latent_dim:])
    return keras.Model(x, [mu, sigma], name=name)


def generative_network(
    latent_dim: int = 100,
    hidden_size: int = 200,
    hidden_layers: int = 2,
    name: str = "decoder",
    activation: str = "relu",
) -> keras.Model:
    """The generative network z -> logits of p_theta(x|z); its weights are theta.

    dense(hidden_size, ReLU) x hidden_layers -> dense(784) -> reshape to [28, 28, 1].
    It returns logits, not probabilities: Bernoulli(logits=l) computes
    log p(x|z) = x*l - softplus(l) stably, whereas log(sigmoid(l)) underflows to
    -inf once a probability rounds to 0.
    """
    z = keras.Input(shape=(latent_dim,), name="z")
    h = z
    for i in range(1, hidden_layers + 1):
        h = keras.layers.Dense(hidden_size, activation=activation, name=f"hidden_{i}")(h)
    logits = keras.layers.Dense(N_PIXELS, name="bernoulli_logits")(h)
    logits = keras.layers.Reshape(IMAGE_SHAPE, name="to_image")(logits)
    return keras.Model(z, logits, name=name)


def reparameterize(mu, sigma, n_samples: int = 1, seed=None):
    """Draw z ~ N(mu, sigma^2) as z = mu + sigma * eps with eps ~ N(0, I).

    The noise eps has no parameters, so z is a differentiable function of mu and
    sigma: gradients of anything computed from z flow back to the encoder (phi).

    Args:
      mu, sigma: Tensors of shape [batch, latent_dim].
      n_samples: Samples per example. With n_samples > 1 the result gets a leading
        sample axis: [n_samples, batch, latent_dim].
      seed: ``None`` for fresh noise on every call, or a seed for reproducible noise:
        an integer, or a stateless seed (a pair of integers, an int tensor of shape [2]).
    """
    if not tf.is_tensor(n_samples):
        if not is_positive_int(n_samples):
            raise ValueError(
                f"n_samples must be a positive integer (samples of z per example), "
                f"got {n_samples!r}."
            )
        n_samples = int(n_samples)
    mu = tf.convert_to_tensor(mu)
    sigma = tf.convert_to_tensor(sigma, dtype=mu.dtype)
    shape = tf.shape(mu)
    if n_samples > 1:
        shape = tf.concat([[n_samples], shape], axis=0)
    if seed is None:
        eps = tf.random.normal(shape, dtype=mu.dtype)
    else:
        eps = tf.random.stateless_normal(shape, seed=stateless_seed(seed), dtype=mu.dtype)
    return mu + sigma * eps


def prior(latent_dim: int) -> tfd.Distribution:
    """p(z) = N(0, I), with the latent dimensions as one event."""
    return tfd.Independent(
        tfd.Normal(loc=tf.zeros([latent_dim]), scale=tf.ones([latent_dim])),
        reinterpreted_batch_ndims=1,
        name="prior",
    )


def mixture_prior(logits, locs, scales) -> tfd.Distribution:
    """A mixture of K diagonal Gaussians over R^d, a prior p(z) with learnable parameters.

    ``logits`` [K] are the unnormalized log mixing weights (pi = softmax(logits)),
    ``locs`` and ``scales`` [K, d] the components' means and (positive) standard
    deviations: p(z) = sum_k pi_k N(z; locs_k, diag(scales_k^2)), one event of size d.
    With it as the prior, KL(q_phi(z|x) || p(z)) has no closed form: estimate it by Monte
    Carlo (``vae_prac.bounds.elbo(..., kl="monte_carlo")``, notebook 04). Notebook 07's
    Code Task.
    """
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=logits),
        components_distribution=tfd.Independent(
            tfd.Normal(locs, scales), reinterpreted_batch_ndims=1
        ),
        name="mixture_prior",
    )


def posterior(mu, sigma) -> tfd.Distribution:
    """q_phi(z|x) = N(mu, diag(sigma^2)); log_prob and KL sum over latent dimensions."""
    return tfd.Independent(
        tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1, name="posterior"
    )


def likelihood(logits) -> tfd.Distribution:
    """p_theta(x|z): independent Bernoulli pixels; log_prob sums over the 28x28x1 pixels."""
    return tfd.Independent(
        tfd.Bernoulli(logits=logits, dtype=tf.float32),
        reinterpreted_batch_ndims=3,
        name="likelihood",
    )


def decode(decoder: keras.Model, z):
    """Logits of p_theta(x|z) for z of shape [..., latent_dim] (any leading axes)."""
    z = tf.convert_to_tensor(z, dtype=tf.float32)
    leading = tf.shape(z)[:-1]
    logits = decoder(tf.reshape(z, [-1, z.shape[-1]]))
    return tf.reshape(logits, tf.concat([leading, IMAGE_SHAPE], axis=0))


class VAE(keras.Model):
    """An encoder (phi) and a decoder (theta) with the distributions they define.

    ``vae.encoder`` and ``vae.decoder`` are the two Keras networks above;
    ``vae.encoder.trainable_weights`` are phi and ``vae.decoder.trainable_weights``
    are theta. The methods return ``tfp.distributions`` objects or samples.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        hidden_size: int = 200,
        hidden_layers: int = 2,
        encoder: keras.Model | None = None,
        decoder: keras.Model | None = None,
        activation: str = "relu",
        **kwargs,
    ):
        """The original practical's networks, or your own ``encoder`` and ``decoder``.

        A custom ``encoder`` must map [batch, 28, 28, 1] to (mu, sigma), each
        [batch, latent_dim]; a custom ``decoder`` must map [batch, latent_dim] to
        logits [batch, 28, 28, 1].
        """
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.hidden_size = hidden_size
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.encoder = encoder or inference_network(
            latent_dim, hidden_size, hidden_layers, activation=activation
        )
        self.decoder = decoder or generative_network(
            latent_dim, hidden_size, hidden_layers, activation=activation
        )
        # A network of your own may make its weights on its first call (a subclassed
        # model, a Sequential without an Input): make them now, so that the optimizer,
        # which train() builds before the first step, and checkpoints see every weight.
        if not self.encoder.built:
            self.encoder(tf.zeros([1, *IMAGE_SHAPE]))
        if not self.decoder.built:
            self.decoder(tf.zeros([1, latent_dim]))

    @classmethod
    def from_config(cls, config):
        """Build from a ``vae_prac.Config`` (or a Keras config dict)."""
        if hasattr(config, "latent_dim") and hasattr(config, "hidden_size"):
            return cls(
                config.latent_dim,
                config.hidden_size,
                config.hidden_layers,
                activation=config.activation,
            )
        return cls(**config)

    def get_config(self):
        return {
            "latent_dim": self.latent_dim,
            "hidden_size": self.hidden_size,
            "hidden_layers": self.hidden_layers,
            "activation": self.activation,
        }

    def posterior(self, x) -> tfd.Distribution:
        """q_phi(z|x) for a batch of images x of shape [batch, 28, 28, 1]."""
        mu, sigma = self.encoder(x)
        return posterior(mu, sigma)

    def prior(self) -> tfd.Distribution:
        """p(z) = N(0, I)."""
        return prior(self.latent_dim)

    def likelihood(self, z) -> tfd.Distribution:
        """p_theta(x|z) for latent codes z of shape [..., latent_dim]."""
        return likelihood(decode(self.decoder, z))

    def call(self, x, seed=None):
        """Logits of p_theta(x|z) with z ~ q_phi(z|x): a stochastic reconstruction."""
        mu, sigma = self.encoder(x)
        return decode(self.decoder, reparameterize(mu, sigma, seed=seed))

    def posterior_predictive_sample(self, x, seed=None):
        """x' ~ p_theta(x|z), z ~ q_phi(z|x): a digit like x, drawn through the model."""
        z_seed, x_seed = two_seeds(seed)
        return likelihood(self(x, seed=z_seed)).sample(seed=x_seed)

    def prior_predictive_sample(self, n: int = 1, seed=None):
        """x ~ p_theta(x|z), z ~ p(z): new digits drawn from the model alone."""
        z_seed, x_seed = two_seeds(seed)
        z = self.prior().sample(n, seed=z_seed)
        return self.likelihood(z).sample(seed=x_seed)

    def decode(self, z, sample: bool = False, seed=None):
        """Decode latent codes of your choice: pixel probabilities, or a sample if asked."""
        p_x = self.likelihood(z)
        return p_x.sample(seed=stateless_seed(seed)) if sample else p_x.mean()


def stateless_seed(seed):
    """``None`` stays ``None`` (fresh noise); an integer n becomes the stateless seed (n, 0).

    TFP and ``tf.random.stateless_*`` want a pair of integers; TFP would treat a lone
    integer as a *stateful* seed and give different numbers on every call.
    """
    if seed is None or tf.is_tensor(seed) or not isinstance(seed, numbers.Integral):
        return seed
    return (int(seed), 0)


def two_seeds(seed):
    """Two independent stateless seeds from one (or two ``None``), one per random draw."""
    if seed is None:
        return None, None
    first, second = tfp.random.split_seed(stateless_seed(seed), n=2)
    return first, second


def conv_networks(latent_dim: int = 32, filters: int = 32):
    """A convolutional encoder and decoder for 28x28x1 images: ``(encoder, decoder)``.

    Encoder: two 3x3 convolutions with stride 2 (28 -> 14 -> 7 pixels, ``filters`` and
    2 * ``filters`` channels, ReLU) -> flatten -> dense(2 * latent_dim) -> (mu, sigma),
    sigma = 1e-6 + softplus. Decoder: dense to 7x7x``filters`` (ReLU) -> two 3x3
    transposed convolutions with stride 2 (7 -> 14 -> 28) -> a 3x3 convolution to one
    channel of logits. Pass them on as ``VAE(latent_dim, encoder=..., decoder=...)``.
    """
    x = keras.Input(shape=IMAGE_SHAPE, name="x")
    h = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    h = keras.layers.Conv2D(2 * filters, 3, strides=2, padding="same", activation="relu")(h)
    params = keras.layers.Dense(2 * latent_dim)(keras.layers.Flatten()(h))
    mu = params[:, :latent_dim]
    sigma = 1e-6 + keras.ops.softplus(params[:, latent_dim:])
    encoder = keras.Model(x, [mu, sigma], name="conv_encoder")

    z = keras.Input(shape=(latent_dim,), name="z")
    h = keras.layers.Dense(7 * 7 * filters, activation="relu")(z)
    h = keras.layers.Reshape((7, 7, filters))(h)
    h = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Conv2DTranspose(filters // 2, 3, strides=2, padding="same", activation="relu")(
        h
    )
    logits = keras.layers.Conv2D(1, 3, padding="same")(h)  # no activation: logits
    decoder = keras.Model(z, logits, name="conv_decoder")
    return encoder, decoder
