"""Notebook 03 (the networks): answers to `my_inference_network` and `my_generative_network`.

The solution is a functional Keras model. Correct answers here use the other styles a
cohort writes: Sequential, nested models, subclassed models with their layers declared
in any order, raw weights with tf ops, keras.ops, a Lambda layer, a last layer split
into two heads. ``downstream`` uses an answer as cell 40 does (``make_encoder(100, 200)``)
and as notebooks 05/06 do (``VAE(encoder=..., decoder=...)`` trained by the compiled
training step, then ``evaluate_elbo`` with a last batch of another size).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import vae_prac
from catalog import Exercise, Mistake
from vae_prac import data
from vae_prac.checks import networks
from vae_prac.config import Config
from vae_prac.evaluate import evaluate_elbo
from vae_prac.training import make_optimizer, train_step_fn

ops = keras.ops
Dense = keras.layers.Dense
tfd = tfp.distributions


# --- downstream: how the later cells use a passing answer ---------------------------------


def _train_and_evaluate(vae, latent_dim, hidden_size):
    """A few compiled training steps (notebook 05) reach and change every weight; then
    evaluate_elbo, whose compiled function relaxes the batch size."""
    config = Config(latent_dim=latent_dim, hidden_size=hidden_size, batch_size=16)
    optimizer = make_optimizer(config)
    optimizer.build(vae.trainable_variables)
    step = train_step_fn(vae, optimizer, config, jit_compile=False)
    before = [v.numpy().copy() for v in vae.trainable_variables]
    x = data.eval_set(20)
    # Three steps: behind a last layer that starts at zero, the others move from step 2.
    for i in range(3):
        elbo, finite = step(tf.constant(x[:16]), tf.constant([0, i], tf.int32))
        assert bool(finite) and np.isfinite(float(elbo)), float(elbo)
    for v, old in zip(vae.trainable_variables, before):
        assert not np.array_equal(v.numpy(), old), f"{v.path} did not change in training"
    assert np.isfinite(evaluate_elbo(vae, x, batch_size=8))  # batches of 8, 8 and 4


def _cell_40(make_encoder, make_decoder):
    keras.utils.set_random_seed(0)
    encoder, decoder = make_encoder(100, 200), make_decoder(100, 200)
    x = data.eval_set(8)
    mu, sigma = encoder(x)
    z = vae_prac.reparameterize(mu, sigma, seed=(0, 0))
    probabilities = tf.sigmoid(decoder(z))
    assert tuple(mu.shape) == tuple(sigma.shape) == (8, 100)
    assert tuple(probabilities.shape) == (8, 28, 28, 1)
    return encoder, decoder


def encoder_downstream(make_encoder):
    encoder, _ = _cell_40(make_encoder, vae_prac.generative_network)
    assert encoder.count_params() == 237_400  # the Math Task's count of phi
    vae = vae_prac.VAE(
        4, 32, encoder=make_encoder(4, 32), decoder=vae_prac.generative_network(4, 32)
    )
    _train_and_evaluate(vae, 4, 32)


def decoder_downstream(make_decoder):
    _, decoder = _cell_40(vae_prac.inference_network, make_decoder)
    assert decoder.count_params() == 217_984  # theta, as in Challenge 5
    vae = vae_prac.VAE(
        4, 32, encoder=vae_prac.inference_network(4, 32), decoder=make_decoder(4, 32)
    )
    _train_and_evaluate(vae, 4, 32)
    samples = vae.prior_predictive_sample(3, seed=0)
    assert tuple(samples.shape) == (3, 28, 28, 1)


# --- the inference network: correct answers in other styles ------------------------------


def enc_nested_sequential(latent_dim=100, hidden_size=200):
    """A Sequential body inside a functional model; keras.ops.split and activations."""
    body = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            Dense(hidden_size, activation="relu"),
            Dense(hidden_size, activation="relu"),
            Dense(2 * latent_dim),
        ]
    )
    x = keras.Input((28, 28, 1))
    mu, a = ops.split(body(x), 2, axis=-1)
    return keras.Model(x, [mu, ops.add(keras.activations.softplus(a), 1e-6)])


class OutputFirst(keras.Model):
    """Layers declared output first; tf ops in call; returns a tuple."""

    def __init__(self, latent_dim, hidden_size):
        super().__init__()
        self.out = Dense(2 * latent_dim)
        self.second = Dense(hidden_size)
        self.first = Dense(hidden_size)

    def call(self, x):
        h = tf.nn.relu(self.first(tf.reshape(x, [-1, 784])))
        mu, a = tf.split(self.out(tf.nn.relu(self.second(h))), 2, axis=1)
        return mu, tf.math.softplus(a) + 1e-6


def enc_subclassed_output_first(latent_dim=100, hidden_size=200):
    return OutputFirst(latent_dim, hidden_size)


class TwoHeads(keras.Model):
    """Two heads of latent_dim units, one for mu and one for sigma."""

    def __init__(self, latent_dim, hidden_size):
        super().__init__()
        self.sigma_head = Dense(latent_dim, activation="softplus")
        self.mu_head = Dense(latent_dim)
        self.trunk = [
            keras.layers.Reshape((784,)),
            Dense(hidden_size, activation="relu"),
            Dense(hidden_size, activation="relu"),
        ]

    def call(self, x):
        for layer in self.trunk:
            x = layer(x)
        return [self.mu_head(x), 1e-6 + self.sigma_head(x)]


def enc_two_heads(latent_dim=100, hidden_size=200):
    return TwoHeads(latent_dim, hidden_size)


class RawWeights(keras.Model):
    """Weights made with add_weight, the maths with tf ops."""

    def __init__(self, latent_dim, hidden_size):
        super().__init__()
        self.latent_dim = latent_dim
        sizes = [784, hidden_size, hidden_size, 2 * latent_dim]
        self.kernels = [
            self.add_weight(shape=(a, b), initializer="glorot_uniform")
            for a, b in zip(sizes, sizes[1:])
        ]
        self.biases = [self.add_weight(shape=(b,), initializer="zeros") for b in sizes[1:]]

    def call(self, x):
        h = tf.reshape(x, [tf.shape(x)[0], -1])
        for w, b in zip(self.kernels[:2], self.biases[:2]):
            h = tf.nn.relu(tf.matmul(h, w) + b)
        out = tf.matmul(h, self.kernels[2]) + self.biases[2]
        return out[:, : self.latent_dim], 1e-6 + tf.nn.softplus(out[:, self.latent_dim :])


def enc_raw_weights(latent_dim=100, hidden_size=200):
    return RawWeights(latent_dim, hidden_size)


def enc_lambda(latent_dim=100, hidden_size=200):
    """A Lambda layer lets tf functions run inside a functional model."""
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    for _ in range(2):
        h = keras.layers.Activation("relu")(Dense(hidden_size)(h))
    params = Dense(2 * latent_dim)(h)
    mu = keras.layers.Lambda(lambda t: t[:, :latent_dim])(params)
    sigma = keras.layers.Lambda(lambda t: 1e-6 + tf.nn.softplus(t[:, latent_dim:]))(params)
    return keras.Model(x, [mu, sigma])


def enc_nested_models(latent_dim=100, hidden_size=200):
    """A trunk model and a head model, composed."""
    trunk = keras.Sequential(
        [
            keras.layers.Flatten(),
            Dense(hidden_size, activation="relu"),
            Dense(hidden_size, activation="relu"),
        ]
    )
    h_in = keras.Input((hidden_size,))
    params = Dense(2 * latent_dim)(h_in)
    head = keras.Model(h_in, [params[:, :latent_dim], ops.softplus(params[:, latent_dim:]) + 1e-6])
    x = keras.Input((28, 28, 1))
    return keras.Model(x, head(trunk(x)))


# --- the inference network: mistakes ---------------------------------------------------


def _encoder(
    latent_dim,
    hidden_size,
    act1="relu",
    act2="relu",
    out_act=None,
    sigma=lambda a: 1e-6 + ops.softplus(a),
    swap=False,
    bias=True,
    widths=None,
    scale=None,
):
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    if scale:
        h = h / scale
    w1, w2 = widths or (hidden_size, hidden_size)
    h = Dense(w1, activation=act1, use_bias=bias)(h)
    h = Dense(w2, activation=act2, use_bias=bias)(h)
    params = Dense(2 * latent_dim, activation=out_act, use_bias=bias)(h)
    first, second = params[:, :latent_dim], params[:, latent_dim:]
    if swap:
        first, second = second, first
    return keras.Model(x, [first, sigma(second)])


def enc_no_relu_first(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, act1=None)


def enc_tanh(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, act1="tanh", act2="tanh")


def enc_relu_output(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, out_act="relu")


def enc_sigma_raw(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, sigma=lambda a: a)


def enc_sigma_exp(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, sigma=ops.exp)


def enc_log_variance(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, sigma=lambda a: ops.exp(0.5 * a))


def enc_no_epsilon(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, sigma=ops.softplus)


def enc_naive_softplus(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, sigma=lambda a: 1e-6 + ops.log(1 + ops.exp(a)))


def enc_variance(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, sigma=lambda a: (1e-6 + ops.softplus(a)) ** 2)


def enc_swapped(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, swap=True)


def enc_sigma_from_mu_half(latent_dim=100, hidden_size=200):
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(h))
    params = Dense(2 * latent_dim)(h)
    return keras.Model(x, [params[:, :latent_dim], 1e-6 + ops.softplus(params[:, :latent_dim])])


def enc_no_bias(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, bias=False)


def enc_wrong_width(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, widths=(hidden_size, 2 * latent_dim))


def enc_hard_coded(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, 200)


def enc_one_hidden_layer(latent_dim=100, hidden_size=200):
    x = keras.Input((28, 28, 1))
    h = Dense(hidden_size, activation="relu")(keras.layers.Flatten()(x))
    params = Dense(2 * latent_dim)(h)
    return keras.Model(x, [params[:, :latent_dim], 1e-6 + ops.softplus(params[:, latent_dim:])])


def enc_one_tensor(latent_dim=100, hidden_size=200):
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(h))
    params = Dense(2 * latent_dim)(h)
    return keras.Model(
        x,
        ops.concatenate(
            [params[:, :latent_dim], 1e-6 + ops.softplus(params[:, latent_dim:])], axis=-1
        ),
    )


def enc_split_batch_axis(latent_dim=100, hidden_size=200):
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(h))
    mu, a = ops.split(Dense(2 * latent_dim)(h), 2)  # axis=0 by default
    return keras.Model(x, [mu, 1e-6 + ops.softplus(a)])


def enc_tf_op_on_keras_tensor(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, sigma=lambda a: 1e-6 + tf.nn.softplus(a))


def enc_returns_function(latent_dim=100, hidden_size=200):
    model = vae_prac.inference_network(latent_dim, hidden_size)
    return lambda x: model(x)


def enc_forgot_return(latent_dim=100, hidden_size=200):
    _encoder(latent_dim, hidden_size)


def enc_flat_input(latent_dim=100, hidden_size=200):
    x = keras.Input((784,))
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(x))
    params = Dense(2 * latent_dim)(h)
    return keras.Model(x, [params[:, :latent_dim], 1e-6 + ops.softplus(params[:, latent_dim:])])


def enc_input_without_channel(latent_dim=100, hidden_size=200):
    x = keras.Input((28, 28))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(h))
    params = Dense(2 * latent_dim)(h)
    return keras.Model(x, [params[:, :latent_dim], 1e-6 + ops.softplus(params[:, latent_dim:])])


def enc_rescaled(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, scale=255.0)


class TwoHeadsExp(TwoHeads):
    """Two heads, the sigma head declared first, with exp for sigma."""

    def __init__(self, latent_dim, hidden_size):
        super().__init__(latent_dim, hidden_size)
        self.sigma_head = Dense(latent_dim, activation="exponential")


def enc_two_heads_exp(latent_dim=100, hidden_size=200):
    return TwoHeadsExp(latent_dim, hidden_size)


class NumpySplit(OutputFirst):
    def call(self, x):
        h = tf.nn.relu(self.first(tf.reshape(x, [-1, 784])))
        mu, a = np.split(self.out(tf.nn.relu(self.second(h))), 2, axis=1)
        return tf.constant(mu), tf.math.softplus(a) + 1e-6


def enc_numpy_in_call(latent_dim=100, hidden_size=200):
    return NumpySplit(latent_dim, hidden_size)


class StopGradient(OutputFirst):
    def call(self, x):
        h = tf.stop_gradient(tf.nn.relu(self.first(tf.reshape(x, [-1, 784]))))
        mu, a = tf.split(self.out(tf.nn.relu(self.second(h))), 2, axis=1)
        return mu, tf.math.softplus(a) + 1e-6


def enc_stop_gradient(latent_dim=100, hidden_size=200):
    return StopGradient(latent_dim, hidden_size)


class BatchSizeInCall(OutputFirst):
    def call(self, x):
        h = tf.nn.relu(self.first(tf.reshape(x, [x.shape[0], 784])))
        mu, a = tf.split(self.out(tf.nn.relu(self.second(h))), 2, axis=1)
        return mu, tf.math.softplus(a) + 1e-6


def enc_batch_size_as_number(latent_dim=100, hidden_size=200):
    return BatchSizeInCall(latent_dim, hidden_size)


def enc_zero_initialised_last_layer(latent_dim=100, hidden_size=200):
    """The last layer starts at zero: mu = 0 and sigma = softplus(0) for every image at
    first. The check sets the weights itself, so the initial values do not matter."""
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(h))
    params = Dense(2 * latent_dim, kernel_initializer="zeros")(h)
    return keras.Model(x, [params[:, :latent_dim], 1e-6 + ops.softplus(params[:, latent_dim:])])


def enc_sequential_all_zero(latent_dim=100, hidden_size=200):
    """Every weight zero at first (ReLU layers of their own, ops.split): the right function
    for any weights, but its ReLUs output 0 and pass no gradient, so it never trains."""
    body = keras.Sequential(
        [
            keras.layers.Flatten(),
            Dense(hidden_size, kernel_initializer="zeros"),
            keras.layers.ReLU(),
            Dense(hidden_size, kernel_initializer="zeros"),
            keras.layers.ReLU(),
            Dense(2 * latent_dim, kernel_initializer="zeros"),
        ]
    )
    x = keras.Input((28, 28, 1))
    mu, a = ops.split(body(x), [latent_dim], axis=1)
    return keras.Model(x, [mu, ops.softplus(a) + 1e-6])


class Float64Inside(keras.Model):
    """Computes in float64 and returns float32, as the later cells need."""

    def __init__(self, latent_dim, hidden_size):
        super().__init__()
        self.latent_dim = latent_dim
        self.layers_ = [
            Dense(hidden_size, activation="relu", dtype="float64"),
            Dense(hidden_size, activation="relu", dtype="float64"),
            Dense(2 * latent_dim, dtype="float64"),
        ]

    def call(self, x):
        h = tf.cast(tf.reshape(x, [-1, 784]), tf.float64)
        for layer in self.layers_:
            h = layer(h)
        mu, a = h[:, : self.latent_dim], h[:, self.latent_dim :]
        return [tf.cast(mu, tf.float32), tf.cast(1e-6 + tf.nn.softplus(a), tf.float32)]


def enc_float64_inside(latent_dim=100, hidden_size=200):
    return Float64Inside(latent_dim, hidden_size)


def enc_hand_written_softplus(latent_dim=100, hidden_size=200):
    """softplus(a) = max(a, 0) + log(1 + exp(-|a|)): stable for any a."""
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(h))
    params = Dense(2 * latent_dim)(h)
    a = params[:, latent_dim:]
    softplus = ops.maximum(a, 0.0) + ops.log1p(ops.exp(-ops.abs(a)))
    return keras.Model(x, [params[:, :latent_dim], 1e-6 + softplus])


class DebugPrints(keras.Model):
    """Layers in a dict, keras.ops in call, and print() left in for debugging."""

    def __init__(self, latent_dim, hidden_size):
        super().__init__()
        self.latent_dim = latent_dim
        self.named = {
            "out": Dense(2 * latent_dim),
            "h1": Dense(hidden_size),
            "h2": Dense(hidden_size),
        }

    def call(self, x):
        print("input", x.shape)
        h = ops.relu(self.named["h1"](ops.reshape(x, (-1, 784))))
        h = ops.relu(self.named["h2"](h))
        params = self.named["out"](h)
        print("params", params.shape)
        return [params[:, : self.latent_dim], 1e-6 + ops.softplus(params[:, self.latent_dim :])]


def enc_debug_prints(latent_dim=100, hidden_size=200):
    return DebugPrints(latent_dim, hidden_size)


def enc_functional_two_heads(latent_dim=100, hidden_size=200):
    """Two Dense heads in a functional model, the softplus as the sigma head's activation."""
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation=keras.activations.relu)(h)
    h = Dense(hidden_size, activation=keras.activations.relu)(h)
    sigma = Dense(latent_dim, activation="softplus")(h)
    mu = Dense(latent_dim)(h)
    return keras.Model(x, [mu, keras.layers.Lambda(lambda s: s + 1e-6)(sigma)])


def _encoder_out_act(latent_dim, hidden_size, act):
    """An activation on the last layer, which starts at zero (as in the issue's report)."""
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(h))
    params = Dense(2 * latent_dim, activation=act, kernel_initializer="zeros")(h)
    return keras.Model(x, [params[:, :latent_dim], 1e-6 + ops.softplus(params[:, latent_dim:])])


def enc_relu_output_zero_init(latent_dim=100, hidden_size=200):
    return _encoder_out_act(latent_dim, hidden_size, "relu")


def enc_sigmoid_output(latent_dim=100, hidden_size=200):
    return _encoder_out_act(latent_dim, hidden_size, "sigmoid")


def enc_tanh_output(latent_dim=100, hidden_size=200):
    return _encoder_out_act(latent_dim, hidden_size, "tanh")


def enc_returns_sigma_first(latent_dim=100, hidden_size=200):
    """Two heads, returned in the wrong order."""
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(h))
    mu, a = Dense(latent_dim)(h), Dense(latent_dim)(h)
    return keras.Model(x, [1e-6 + ops.softplus(a), mu])


def enc_both_from_second_half(latent_dim=100, hidden_size=200):
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(h))
    params = Dense(2 * latent_dim)(h)
    return keras.Model(x, [params[:, latent_dim:], 1e-6 + ops.softplus(params[:, latent_dim:])])


class ReturnsNormal(OutputFirst):
    def call(self, x):
        mu, sigma = super().call(x)
        return tfd.Normal(mu, sigma)


def enc_returns_tfd_normal(latent_dim=100, hidden_size=200):
    return ReturnsNormal(latent_dim, hidden_size)


class SigmaFloat(OutputFirst):
    """sigma fixed to a Python number."""

    def call(self, x):
        mu, _ = super().call(x)
        return [mu, 1.0]


def enc_sigma_python_float(latent_dim=100, hidden_size=200):
    return SigmaFloat(latent_dim, hidden_size)


class Float64Out(Float64Inside):
    def call(self, x):
        h = tf.cast(tf.reshape(x, [-1, 784]), tf.float64)
        for layer in self.layers_:
            h = layer(h)
        return [h[:, : self.latent_dim], 1e-6 + tf.nn.softplus(h[:, self.latent_dim :])]


def enc_float64_outputs(latent_dim=100, hidden_size=200):
    return Float64Out(latent_dim, hidden_size)


def enc_epsilon_inside_softplus(latent_dim=100, hidden_size=200):
    return _encoder(latent_dim, hidden_size, sigma=lambda a: ops.softplus(a + 1e-6))


def enc_typo_raises(latent_dim=100, hidden_size=200):
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = Dense(hidden_size, activation="relu")(hidden)  # noqa: F821 (the typo)
    return keras.Model(x, h)


def enc_batch_norm(latent_dim=100, hidden_size=200):
    x = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(x)
    h = keras.layers.BatchNormalization()(Dense(hidden_size, activation="relu")(h))
    h = Dense(hidden_size, activation="relu")(h)
    params = Dense(2 * latent_dim)(h)
    return keras.Model(x, [params[:, :latent_dim], 1e-6 + ops.softplus(params[:, latent_dim:])])


# --- the generative network: correct answers in other styles ------------------------------


def dec_sequential(latent_dim=100, hidden_size=200):
    return keras.Sequential(
        [
            keras.Input((latent_dim,)),
            Dense(hidden_size, activation="relu"),
            Dense(hidden_size, activation="relu"),
            Dense(784),
            keras.layers.Reshape((28, 28, 1)),
        ]
    )


def dec_sequential_unbuilt(latent_dim=100, hidden_size=200):
    """No Input: Keras builds the weights on the first call."""
    return keras.Sequential(
        [
            Dense(hidden_size),
            keras.layers.ReLU(),
            Dense(hidden_size),
            keras.layers.ReLU(),
            Dense(28 * 28),
            keras.layers.Reshape((28, 28, 1)),
        ]
    )


class DecoderOutputFirst(keras.Model):
    def __init__(self, hidden_size):
        super().__init__()
        self.logits = Dense(784)
        self.h2 = Dense(hidden_size, activation="relu")
        self.h1 = Dense(hidden_size, activation="relu")

    def call(self, z):
        return tf.reshape(self.logits(self.h2(self.h1(z))), [-1, 28, 28, 1])


def dec_subclassed_output_first(latent_dim=100, hidden_size=200):
    return DecoderOutputFirst(hidden_size)


def dec_keras_ops(latent_dim=100, hidden_size=200):
    z = keras.Input((latent_dim,))
    h = ops.relu(Dense(hidden_size)(z))
    h = ops.relu(Dense(hidden_size)(h))
    return keras.Model(z, ops.reshape(Dense(784)(h), (-1, 28, 28, 1)))


def dec_nested(latent_dim=100, hidden_size=200):
    trunk = keras.Sequential(
        [Dense(hidden_size, activation="relu"), Dense(hidden_size, activation="relu")]
    )
    z = keras.Input((latent_dim,))
    logits = keras.layers.Reshape((28, 28, 1))(Dense(784)(trunk(z)))
    return keras.Model(z, logits)


def dec_zero_initialised_last_layer(latent_dim=100, hidden_size=200):
    """All logits exactly 0 at first (every pixel probability 1/2): still correct."""
    z = keras.Input((latent_dim,))
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(z))
    logits = Dense(784, kernel_initializer="zeros", bias_initializer="zeros")(h)
    return keras.Model(z, keras.layers.Reshape((28, 28, 1))(logits))


class DecoderDebug(keras.Model):
    """keras.ops and a debug print in call; layers in a list."""

    def __init__(self, hidden_size):
        super().__init__()
        self.stack = [Dense(hidden_size), Dense(hidden_size), Dense(784)]

    def call(self, z):
        h = ops.relu(self.stack[0](z))
        h = ops.relu(self.stack[1](h))
        print("decoder hidden", h.shape)
        return ops.expand_dims(ops.reshape(self.stack[2](h), (-1, 28, 28)), -1)


def dec_debug_print_keras_ops(latent_dim=100, hidden_size=200):
    return DecoderDebug(hidden_size)


class DecoderFloat64(keras.Model):
    def __init__(self, hidden_size):
        super().__init__()
        self.stack = [
            Dense(hidden_size, activation="relu", dtype="float64"),
            Dense(hidden_size, activation="relu", dtype="float64"),
            Dense(784, dtype="float64"),
        ]

    def call(self, z):
        h = tf.cast(z, tf.float64)
        for layer in self.stack:
            h = layer(h)
        return tf.cast(tf.reshape(h, [-1, 28, 28, 1]), tf.float32)


def dec_float64_inside(latent_dim=100, hidden_size=200):
    return DecoderFloat64(hidden_size)


def _decoder_out_act_zero(latent_dim, hidden_size, act):
    z = keras.Input((latent_dim,))
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(z))
    out = Dense(784, activation=act, kernel_initializer="zeros")(h)
    return keras.Model(z, keras.layers.Reshape((28, 28, 1))(out))


def dec_tanh_at_end(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, out_act="tanh")


def dec_softplus_at_end(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, out_act="softplus")


def dec_sigmoid_zero_init(latent_dim=100, hidden_size=200):
    return _decoder_out_act_zero(latent_dim, hidden_size, "sigmoid")


def dec_relu_zero_init(latent_dim=100, hidden_size=200):
    return _decoder_out_act_zero(latent_dim, hidden_size, "relu")


class DecoderBernoulli(DecoderOutputFirst):
    def call(self, z):
        return tfd.Independent(tfd.Bernoulli(logits=super().call(z)), 3)


def dec_returns_bernoulli(latent_dim=100, hidden_size=200):
    return DecoderBernoulli(hidden_size)


def dec_channels_first(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, shape=(1, 28, 28))


class DecoderFloat(DecoderOutputFirst):
    def call(self, z):
        super().call(z)
        return 0.0


def dec_returns_python_float(latent_dim=100, hidden_size=200):
    return DecoderFloat(hidden_size)


def dec_typo_raises(latent_dim=100, hidden_size=200):
    z = keras.Input((latent_dim,))
    h = Dense(hidden_size, activation="relu")(z)
    return keras.Model(z, Dense(784)(hiden))  # noqa: F821 (the typo)


# --- the generative network: mistakes ---------------------------------------------------


def _decoder(
    latent_dim,
    hidden_size,
    act1="relu",
    act2="relu",
    out_act=None,
    bias=True,
    shape=(28, 28, 1),
    widths=None,
    one_hidden=False,
):
    z = keras.Input((latent_dim,))
    w1, w2 = widths or (hidden_size, hidden_size)
    h = Dense(w1, activation=act1, use_bias=bias)(z)
    if not one_hidden:
        h = Dense(w2, activation=act2, use_bias=bias)(h)
    logits = Dense(784, activation=out_act, use_bias=bias)(h)
    if shape:
        logits = keras.layers.Reshape(shape)(logits)
    return keras.Model(z, logits)


def dec_sigmoid(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, out_act="sigmoid")


def dec_relu_output(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, out_act="relu")


def dec_log_sigmoid(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, out_act="log_sigmoid")


def dec_no_reshape(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, shape=None)


def dec_no_channel(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, shape=(28, 28))


def dec_no_relu_second(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, act2=None)


def dec_tanh(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, act1="tanh", act2="tanh")


def dec_no_bias(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, bias=False)


def dec_one_hidden_layer(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, one_hidden=True)


def dec_wrong_width(latent_dim=100, hidden_size=200):
    return _decoder(latent_dim, hidden_size, widths=(hidden_size, 2 * hidden_size))


def dec_hard_coded_latent(latent_dim=100, hidden_size=200):
    return _decoder(100, hidden_size)


def dec_transposed(latent_dim=100, hidden_size=200):
    z = keras.Input((latent_dim,))
    h = Dense(hidden_size, activation="relu")(Dense(hidden_size, activation="relu")(z))
    logits = keras.layers.Reshape((28, 28, 1))(Dense(784)(h))
    return keras.Model(z, ops.transpose(logits, (0, 2, 1, 3)))


class DecoderBatchSize(DecoderOutputFirst):
    def call(self, z):
        return tf.reshape(self.logits(self.h2(self.h1(z))), [z.shape[0], 28, 28, 1])


def dec_batch_size_as_number(latent_dim=100, hidden_size=200):
    return DecoderBatchSize(hidden_size)


def dec_returns_layers(latent_dim=100, hidden_size=200):
    return [
        Dense(hidden_size, activation="relu"),
        Dense(hidden_size, activation="relu"),
        Dense(784),
        keras.layers.Reshape((28, 28, 1)),
    ]


EXERCISES = [
    Exercise(
        name="inference_network",
        check=networks.inference_network,
        correct={
            "nested_sequential_ops_split": enc_nested_sequential,
            "subclassed_output_layer_first_tf_ops": enc_subclassed_output_first,
            "subclassed_two_heads": enc_two_heads,
            "subclassed_add_weight_tf_matmul": enc_raw_weights,
            "functional_lambda_layers": enc_lambda,
            "nested_models": enc_nested_models,
            # Keras drops the trailing axis of size 1 for an Input of shape (28, 28).
            "functional_input_28x28": enc_input_without_channel,
            "zero_initialised_last_layer": enc_zero_initialised_last_layer,
            "subclassed_float64_inside": enc_float64_inside,
            "hand_written_stable_softplus": enc_hand_written_softplus,
            "subclassed_dict_of_layers_debug_prints": enc_debug_prints,
            "functional_two_heads_softplus_activation": enc_functional_two_heads,
        },
        mistakes={
            "no_relu_first_layer": Mistake(enc_no_relu_first, r"first hidden layer.*ReLU"),
            "tanh_hidden": Mistake(enc_tanh, r"tanh instead of ReLU"),
            "relu_on_output_layer": Mistake(enc_relu_output, r"last dense layer has a ReLU"),
            "relu_on_zero_initialised_output_layer": Mistake(
                enc_relu_output_zero_init, r"last dense layer has a ReLU"
            ),
            "sigmoid_on_output_layer": Mistake(
                enc_sigmoid_output, r"last dense layer has a sigmoid"
            ),
            "tanh_on_output_layer": Mistake(enc_tanh_output, r"last dense layer has a tanh"),
            "returns_sigma_then_mu": Mistake(enc_returns_sigma_first, r"swapped.*\[sigma, mu\]"),
            "mu_and_sigma_from_second_half": Mistake(
                enc_both_from_second_half, r"same outputs.*as mu"
            ),
            "returns_tfd_normal": Mistake(enc_returns_tfd_normal, r"distribution.*\[mu, sigma\]"),
            "sigma_a_python_float": Mistake(enc_sigma_python_float, r"sigma is a Python float"),
            "float64_outputs": Mistake(enc_float64_outputs, r"dtype float64.*float32"),
            "epsilon_inside_softplus": Mistake(enc_epsilon_inside_softplus, r"1e-6"),
            "error_while_building": Mistake(
                enc_typo_raises, r"building your network.*raised NameError"
            ),
            "extra_batch_normalization": Mistake(enc_batch_norm, r"shapes"),
            "every_layer_initialised_to_zero": Mistake(
                enc_sequential_all_zero, r"initialised to zero"
            ),
            "sigma_raw": Mistake(enc_sigma_raw, r"raw output.*softplus"),
            "sigma_exp": Mistake(enc_sigma_exp, r"uses exp.*softplus"),
            "two_heads_sigma_exp": Mistake(enc_two_heads_exp, r"uses exp.*softplus"),
            "sigma_log_variance": Mistake(enc_log_variance, r"log-variance"),
            "no_1e-6": Mistake(enc_no_epsilon, r"1e-6 is missing"),
            "naive_softplus_overflows": Mistake(enc_naive_softplus, r"overflows"),
            "sigma_squared_variance": Mistake(enc_variance, r"variance"),
            "mu_sigma_swapped": Mistake(enc_swapped, r"swapped"),
            "sigma_from_mu_half": Mistake(enc_sigma_from_mu_half, r"first latent_dim outputs"),
            "no_bias": Mistake(enc_no_bias, r"no bias"),
            "wrong_hidden_width": Mistake(enc_wrong_width, r"hidden layers have 16 and 10 units"),
            "hard_coded_hidden_size": Mistake(enc_hard_coded, r"not a fixed number"),
            "one_hidden_layer": Mistake(enc_one_hidden_layer, r"1 hidden layer.*two"),
            "one_concatenated_tensor": Mistake(enc_one_tensor, r"one tensor.*two tensors"),
            "split_along_batch_axis": Mistake(enc_split_batch_axis, r"batch axis"),
            "tf_op_on_keras_tensor": Mistake(enc_tf_op_on_keras_tensor, r"keras\.ops"),
            "returns_a_function": Mistake(enc_returns_function, r"not a keras\.Model"),
            "forgot_return": Mistake(enc_forgot_return, r"returned None"),
            "flat_input": Mistake(enc_flat_input, r"only takes flat vectors"),
            "divides_by_255": Mistake(enc_rescaled, r"255"),
            "numpy_in_call": Mistake(enc_numpy_in_call, r"tf\.function.*NumPy"),
            "stop_gradient": Mistake(enc_stop_gradient, r"no gradient"),
            "batch_size_as_python_number": Mistake(
                enc_batch_size_as_number, r"tf\.function.*batch size"
            ),
        },
        give_away=(
            "keras.ops.softplus(",
            "tf.nn.softplus(",
            "[:, :latent_dim]",
            "[:, latent_dim:]",
            "Dense(hidden_size",
            "Dense(2 * latent_dim",
            'activation="relu"',
            "keras.Model(x, [mu, sigma])",
        ),
        downstream=encoder_downstream,
    ),
    Exercise(
        name="generative_network",
        check=networks.generative_network,
        correct={
            "sequential": dec_sequential,
            "sequential_built_on_first_call": dec_sequential_unbuilt,
            "subclassed_output_layer_first_tf_reshape": dec_subclassed_output_first,
            "functional_keras_ops": dec_keras_ops,
            "nested_trunk": dec_nested,
            "zero_initialised_last_layer": dec_zero_initialised_last_layer,
            "subclassed_keras_ops_debug_print": dec_debug_print_keras_ops,
            "subclassed_float64_inside": dec_float64_inside,
        },
        mistakes={
            "sigmoid_probabilities": Mistake(dec_sigmoid, r"probabilities, not logits"),
            "relu_on_logits": Mistake(dec_relu_output, r"ReLU.*no activation"),
            "log_sigmoid": Mistake(dec_log_sigmoid, r"log-probabilities"),
            "no_reshape_784": Mistake(dec_no_reshape, r"\[batch, 784\].*reshape"),
            "no_channel_axis": Mistake(dec_no_channel, r"channel axis"),
            "no_relu_second_layer": Mistake(dec_no_relu_second, r"second hidden layer.*ReLU"),
            "tanh_hidden": Mistake(dec_tanh, r"tanh instead of ReLU"),
            "no_bias": Mistake(dec_no_bias, r"no bias"),
            "one_hidden_layer": Mistake(dec_one_hidden_layer, r"1 hidden layer.*two"),
            "wrong_hidden_width": Mistake(dec_wrong_width, r"hidden layers have 16 and 32 units"),
            "hard_coded_latent_dim": Mistake(
                dec_hard_coded_latent, r"latent_dim=5.*not a fixed number"
            ),
            "transposed_image": Mistake(dec_transposed, r"transposed"),
            "batch_size_as_python_number": Mistake(
                dec_batch_size_as_number, r"tf\.function.*batch size"
            ),
            "returns_list_of_layers": Mistake(dec_returns_layers, r"not a keras\.Model"),
            "tanh_at_the_end": Mistake(dec_tanh_at_end, r"tanh.*0\.27 and 0\.73"),
            "softplus_at_the_end": Mistake(dec_softplus_at_end, r"softplus at the end"),
            "sigmoid_on_zero_initialised_last_layer": Mistake(
                dec_sigmoid_zero_init, r"probabilities, not logits"
            ),
            "relu_on_zero_initialised_last_layer": Mistake(
                dec_relu_zero_init, r"ReLU at the end.*never negative"
            ),
            "returns_bernoulli_distribution": Mistake(
                dec_returns_bernoulli, r"distribution.*logits"
            ),
            "channels_first": Mistake(dec_channels_first, r"channels first"),
            "returns_python_float": Mistake(dec_returns_python_float, r"Python float"),
            "error_while_building": Mistake(
                dec_typo_raises, r"building your network.*raised NameError"
            ),
        },
        give_away=(
            "Reshape((28, 28, 1))",
            "Dense(28 * 28)",
            "Dense(784",
            "activation=None",
            'activation="relu"',
            "Dense(hidden_size",
        ),
        downstream=decoder_downstream,
    ),
]
