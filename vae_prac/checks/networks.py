"""Checks for notebook 03 (the networks): the inference and generative networks.

Each check builds the student's network with small sizes, looks at its Dense layers,
then copies their weights into vae_prac's own network of the same sizes: with the same
weights, the two must compute the same function.

    from vae_prac.checks import networks as check
    check.inference_network(my_inference_network)
    check.generative_network(my_generative_network)
    check.phi_count_quiz(answer_phi_count)
"""

from __future__ import annotations

import keras
import numpy as np

from vae_prac import data, model
from vae_prac.checks import Hint, check, choice

LATENT, HIDDEN, BATCH = 5, 16, 7


def _build(fn):
    net = fn(latent_dim=LATENT, hidden_size=HIDDEN)
    if not isinstance(net, keras.Model):
        raise Hint(f"your function returned a {type(net).__name__}; return a keras.Model, "
                   "e.g. keras.Model(inputs, outputs).")
    return net


def _dense_layers(net):
    """The Dense layers of a model, in order, looking inside nested models too."""
    found = []
    for layer in net.layers:
        if isinstance(layer, keras.layers.Dense):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found += _dense_layers(layer)
    return found


def _check_dense(net, widths, what):
    dense = _dense_layers(net)
    got = [layer.units for layer in dense]
    if got != widths:
        raise Hint(f"with latent_dim={LATENT}, hidden_size={HIDDEN} the {what} should have "
                   f"exactly three Dense layers of widths {widths}; yours has {got}.")
    return dense


def _copy_weights(dense, reference, names):
    for layer, name in zip(dense, names):
        reference.get_layer(name).set_weights(layer.get_weights())


@check("inference_network")
def inference_network(fn):
    """``fn(latent_dim, hidden_size)`` -> keras.Model mapping x [B,28,28,1] to [mu, sigma]."""
    net = _build(fn)
    x = data.eval_set(BATCH)
    out = net(x)
    if not (isinstance(out, (list, tuple)) and len(out) == 2):
        raise Hint("the network should return two tensors, [mu, sigma] "
                   "(keras.Model(x, [mu, sigma])).")
    mu, sigma = (np.asarray(t) for t in out)
    for name, t in (("mu", mu), ("sigma", sigma)):
        if t.shape != (BATCH, LATENT):
            raise Hint(f"for {BATCH} images and latent_dim={LATENT}, {name} should have shape "
                       f"({BATCH}, {LATENT}), got {t.shape}.")
    dense = _check_dense(net, [HIDDEN, HIDDEN, 2 * LATENT], "inference network")
    reference = model.inference_network(LATENT, HIDDEN)
    if net.count_params() != reference.count_params():
        raise Hint(f"the network has {net.count_params()} parameters; with these sizes it "
                   f"should have {reference.count_params()}. Does every Dense layer have a bias?")
    _copy_weights(dense, reference, ["hidden_1", "hidden_2", "gaussian_params"])
    ref_mu, ref_sigma = (np.asarray(t) for t in reference(x))
    if not np.allclose(mu, ref_mu, rtol=1e-4, atol=1e-5):
        raise Hint("mu is not what the network should compute with these weights: the first "
                   "latent_dim outputs of the last layer are the means, and both hidden "
                   "layers use ReLU.")
    if not np.allclose(sigma, ref_sigma, rtol=1e-4, atol=1e-5):
        raise Hint("sigma is not what the network should compute with these weights: it is "
                   "1e-6 + softplus of the last latent_dim outputs of the last layer.")
    # Extreme pre-activations: softplus underflows to exactly 0, or is huge.
    kernel, bias = dense[-1].get_weights()
    for value, problem in ((-200.0, "is not positive"), (200.0, "is not finite")):
        bias[LATENT:] = value
        dense[-1].set_weights([kernel, bias])
        sigma = np.asarray(net(x)[1])
        if not (np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
            raise Hint(f"when the last layer's sigma outputs are {value:g}, sigma {problem}. "
                       "Use sigma = 1e-6 + softplus(...): softplus rounds to 0 for very "
                       "negative inputs, and the 1e-6 keeps sigma > 0.")


@check("generative_network")
def generative_network(fn):
    """``fn(latent_dim, hidden_size)`` -> keras.Model mapping z [B,latent] to logits [B,28,28,1]."""
    net = _build(fn)
    z = np.random.default_rng(0).standard_normal((BATCH, LATENT)).astype(np.float32)
    logits = np.asarray(net(z))
    if logits.shape == (BATCH, 784):
        raise Hint("the logits have shape [B, 784]; reshape them to images "
                   "[B, 28, 28, 1] (keras.layers.Reshape((28, 28, 1))).")
    if logits.shape != (BATCH, 28, 28, 1):
        raise Hint(f"for {BATCH} latent codes the logits should have shape "
                   f"({BATCH}, 28, 28, 1), got {logits.shape}.")
    dense = _check_dense(net, [HIDDEN, HIDDEN, 784], "generative network")
    reference = model.generative_network(LATENT, HIDDEN)
    if net.count_params() != reference.count_params():
        raise Hint(f"the network has {net.count_params()} parameters; with these sizes it "
                   f"should have {reference.count_params()}. Does every Dense layer have a bias?")
    _copy_weights(dense, reference, ["hidden_1", "hidden_2", "bernoulli_logits"])
    expected = np.asarray(reference(z))
    if np.allclose(logits, 1 / (1 + np.exp(-expected)), rtol=1e-4, atol=1e-5):
        raise Hint("these are probabilities, not logits: leave out the sigmoid on the last "
                   "layer (activation=None).")
    if not np.allclose(logits, expected, rtol=1e-4, atol=1e-4):
        raise Hint("the logits are not what the network should compute with these weights: "
                   "two Dense layers with ReLU, then a Dense layer of 784 units with no "
                   "activation, reshaped to [28, 28, 1].")


def phi_count_quiz(answer):
    """How many parameters does phi have for latent_dim=100, hidden_size=200?"""
    return choice("phi_count_quiz", answer, "c",
                  "count each Dense layer as inputs x outputs weights plus outputs biases; "
                  "the last layer has 2 * latent_dim outputs.")
