"""Checks for notebook 03 (the networks): the inference and generative networks.

    from vae_prac.checks import networks as check
    check.inference_network(my_inference_network)    # Code Task: x -> [mu, sigma]
    check.phi_count_quiz(answer_phi_count)           # Math Task
    check.generative_network(my_generative_network)  # Code Task: z -> logits

A check judges the *function* a network computes, never its list of layers. It builds
the student's network as the later cells do, ``fn(latent_dim, hidden_size)``, with
small sizes (latent_dim=5, hidden_size=16) for which every weight array of the task's
network has a shape of its own, apart from the two hidden biases. It sets each weight
array to known values chosen by its shape (the two hidden biases get the same values,
so which is which does not matter) and compares the outputs with the task's network
computed in NumPy from those values. So any Keras style passes: functional,
Sequential, subclassed with its layers declared in any order, nested models, keras.ops
or tf ops inside a subclassed ``call``, and for the encoder a last layer split into two
dense layers of ``latent_dim`` units (one for mu, one for sigma).

It then calls the network the way training and evaluation do: inside ``tf.function``
with the batch size unknown, with gradients that must reach every weight, and on a
smaller batch (each image's output may not depend on the others in the batch).
A hint names a slip only after checking that the slip reproduces the outputs seen.
Because the check judges the function with weights it sets itself, a network's initial
outputs never decide anything: a correct network whose last layer starts at zero (all
outputs 0 at first) passes, and a ReLU, sigmoid or tanh on the last layer is caught
whatever it was initialised to. The initial weights are used for one thing only: from
them, a few gradient steps must move every weight array, which fails for hidden layers
initialised to zero (their ReLUs output 0 and pass no gradient, so they never train).

What the checks cannot tell apart, and so accept: a function that returns vae_prac's own
network (it computes exactly the task's function); layers that only act in training,
such as Dropout (the check calls the network as inference does); a network that
computes in float64 inside and returns float32; and sigma = max(softplus(a), 1e-6)
instead of 1e-6 + softplus(a), which differ by at most 1e-6.
"""

from __future__ import annotations

import itertools
from collections import Counter

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from vae_prac.checks import Hint, check, choice, quiet_tensorflow
from vae_prac.checks._shared import error_line, judged

tfd = tfp.distributions

__all__ = ["inference_network", "generative_network", "phi_count_quiz"]

LATENT, HIDDEN, BATCH = 5, 16, 6
PIXELS = 28 * 28
# Biases of sigma's pre-activations: moderate ones (where softplus, exp and ReLU differ),
# a very negative one (softplus rounds to 0 in float32) and a large one (exp overflows).
SIGMA_BIAS = np.array([0.5, -200.0, -1.0, 100.0, 1.5])
MODERATE = np.abs(SIGMA_BIAS) < 10
VERY_NEGATIVE, VERY_LARGE = SIGMA_BIAS < -10, SIGMA_BIAS > 10


# --- the task's networks in NumPy -------------------------------------------------------


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


ACTIVATIONS = {
    "ReLU": lambda a: np.maximum(a, 0.0),
    "no activation": lambda a: a,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "softplus": lambda a: np.logaddexp(0.0, a),
}


def _params(inputs, n_out: int, seed: int, in_scale: float, out_centre=0.0) -> dict:
    """Known weights for a Dense-ReLU-Dense-ReLU-Dense network, float64.

    Scaled so that pre-activations are of order 1 with both signs, and the last bias
    centres each output on ``inputs`` around ``out_centre``: ReLU, tanh, sigmoid and no
    activation all give different outputs. Both hidden layers share one bias vector.
    """
    rng = np.random.default_rng(seed)
    p = {
        "W1": rng.normal(0, 1.5 / in_scale, (inputs.shape[1], HIDDEN)),
        "b": rng.normal(0, 0.5, HIDDEN),
        "W2": rng.normal(0, 2.0 / np.sqrt(HIDDEN), (HIDDEN, HIDDEN)),
        "W3": rng.normal(0, 2.0 / np.sqrt(HIDDEN), (HIDDEN, n_out)),
        "b3": np.zeros(n_out),
    }
    p["b3"] = out_centre - np.median(_mlp(p, inputs), axis=0)
    return p


def _mlp(p: dict, inputs, act1="ReLU", act2="ReLU"):
    h = ACTIVATIONS[act1](inputs @ p["W1"] + p["b"])
    h = ACTIVATIONS[act2](h @ p["W2"] + p["b"])
    return h @ p["W3"] + p["b3"]


def _activation_hint(act1: str, act2: str) -> str:
    """Name the hidden activations (act1, act2) that reproduced the outputs."""

    def does(act, plural=False):
        if act == "no activation":
            return "have no activation" if plural else "has no activation"
        return ("use " if plural else "uses ") + f"{act} instead of ReLU"

    if act1 == act2:
        return f"the hidden layers {does(act1, True)}: each hidden layer uses ReLU."
    if act2 == "ReLU":
        return f"the first hidden layer {does(act1)}: both hidden layers use ReLU."
    if act1 == "ReLU":
        return f"the second hidden layer {does(act2)}: both hidden layers use ReLU."
    return (
        f"the first hidden layer {does(act1)} and the second {does(act2)}: both "
        "hidden layers use ReLU."
    )


def _close(got, expected, rtol=1e-4, atol=1e-4) -> bool:
    with np.errstate(all="ignore"):
        return got.shape == expected.shape and bool(np.allclose(got, expected, rtol, atol))


# --- building and calling the student's network ---------------------------------------


def _build(fn, name):
    try:
        net = fn(LATENT, HIDDEN)  # as the later cells call it: (latent_dim, hidden_size)
    except NotImplementedError:
        raise
    except Exception as err:
        if "KerasTensor" in str(err):
            raise Hint(
                "a TensorFlow function (tf.*) was given the symbolic tensors of a "
                "functional Keras model, which it cannot take: in a functional "
                "model use keras.ops or Keras layers (or write a subclassed "
                "model)."
            ) from None
        raise Hint(
            f"building your network, {name}({LATENT}, {HIDDEN}), raised {error_line(err)}."
        ) from None
    if net is None:
        raise Hint("your function returned None: did you forget to return the model?")
    if not isinstance(net, keras.Model):
        kind = "Keras layer" if isinstance(net, keras.layers.Layer) else type(net).__name__
        raise Hint(
            f"your function returned a {kind}, not a keras.Model: build the model "
            "and return it (the later cells call its weights and train it)."
        )
    return net


def _call(net, inputs, what="a batch"):
    """Call the network eagerly; its errors become hints (a NotImplementedError raised
    by the network itself would otherwise read as "not done yet")."""
    try:
        return net(inputs)
    except Exception as err:
        raise Hint(
            f"calling your network on {what} of shape {list(inputs.shape)} "
            f"raised {error_line(err)}."
        ) from None


def _array(t, what: str) -> np.ndarray:
    if isinstance(t, (bool, int, float)):
        raise Hint(
            f"{what} is a Python {type(t).__name__}, not a tensor: return the "
            f"tensor the network computes for the whole batch."
        )
    if isinstance(t, tfd.Distribution):
        raise Hint(
            f"{what} is a distribution (a TFP object), not a tensor: the network "
            f"returns the numbers that parameterize it."
        )
    if not (tf.is_tensor(t) or isinstance(t, np.ndarray)):
        raise Hint(f"{what} is a {type(t).__name__}, not a tensor.")
    a = np.asarray(t)
    if a.dtype != np.float32:
        raise Hint(f"{what} has dtype {a.dtype}; the networks compute in float32.")
    return a


def _trainable(net):
    seen, found = set(), []
    for v in net.trainable_variables:
        if id(v) not in seen:
            seen.add(id(v))
            found.append(v)
    return found


def _shapes_text(shapes) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes) or "none"


def _hidden_widths(kernels, n_in):
    """The widths met following the kernels from the input, by their shapes (data flow):
    every layer's output size but the last."""
    left, dims = list(kernels), [n_in]
    while True:
        nxt = [k for k in left if k[0] == dims[-1]]
        if not nxt:
            return dims[1:-1]
        # A layer that another one follows is a hidden layer; otherwise these are the
        # output layer (or its two heads).
        going_on = [k for k in nxt if any(j[0] == k[1] for j in left if j is not k)]
        for k in going_on[:1] or nxt:
            left.remove(k)
        dims.append((going_on or nxt)[0][1])


def _check_weights(net, layouts, n_in, what):
    """The student's trainable weights must have the shapes of one of ``layouts``.

    Returns (variables, layout). Otherwise a hint naming what differs.
    """
    variables = _trainable(net)
    shapes = [tuple(v.shape) for v in variables]
    for layout in layouts:
        if Counter(shapes) == Counter(shape for shape, _ in layout):
            return variables, layout
    kernels = [s for s in shapes if len(s) == 2]
    biases = [s for s in shapes if len(s) == 1]
    expected = [s for s, _ in layouts[0]]
    if not shapes:
        raise Hint(
            "Keras sees no trainable weights in your model, so nothing could be "
            "trained: create the weights with Keras layers (or add_weight)."
        )
    if kernels and len(biases) < len(kernels):
        raise Hint(
            "some of your dense layers have no bias (use_bias=False?): each "
            "dense layer of the task has a bias."
        )
    widths = _hidden_widths(kernels, n_in)
    if kernels and len(widths) != 2:
        raise Hint(
            f"your {what} has {len(widths)} hidden layer(s) before the output "
            "layer; the task has exactly two, each of hidden_size units with ReLU."
        )
    if kernels and widths != [HIDDEN, HIDDEN]:
        fixed = (
            ""
            if set(widths) <= {PIXELS, LATENT, HIDDEN, 2 * LATENT}
            else " (from the argument, not a fixed number)"
        )
        raise Hint(
            f"with hidden_size={HIDDEN} your hidden layers have "
            f"{' and '.join(map(str, widths))} units; each should have "
            f"hidden_size units{fixed}."
        )
    raise Hint(
        f"with latent_dim={LATENT} and hidden_size={HIDDEN} the {what}'s weights "
        f"should have the shapes {_shapes_text(expected)} (a kernel and a bias "
        f"per dense layer); yours have {_shapes_text(shapes)}."
    )


def _assignments(variables, layout):
    """Every way to give the student's variables the layout's values, matching shapes.

    Arrays of the same shape with the same values (the hidden biases) need one way only.
    """
    by_shape = {}
    for shape, value in layout:
        by_shape.setdefault(shape, []).append(value)
    groups = [[v for v in variables if tuple(v.shape) == shape] for shape in by_shape]
    options = []
    for shape, group in zip(by_shape, groups):
        values = by_shape[shape]
        if all(np.array_equal(values[0], value) for value in values[1:]):
            options.append([values])
        else:
            options.append(list(itertools.permutations(values)))
    for choice_ in itertools.product(*options):
        yield [
            (v, value) for group, values in zip(groups, choice_) for v, value in zip(group, values)
        ]


def _set(assignment):
    for variable, value in assignment:
        variable.assign(np.asarray(value, np.float32))


def _compiled(net, spec, n_outputs):
    """The network inside tf.function with an unknown batch size, as training and
    ``evaluate_elbo`` run it, and the gradients of its outputs with respect to its
    trainable weights."""
    variables = _trainable(net)

    @tf.function(input_signature=[spec])
    def run(inputs):
        with tf.GradientTape() as tape:
            out = net(inputs)
            outs = list(out) if n_outputs > 1 else [out]
            loss = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32)) for o in outs])
        return outs, tape.gradient(loss, variables)

    return run, variables


def _run_compiled(net, inputs, n_outputs, what):
    spec = tf.TensorSpec([None, *inputs.shape[1:]], tf.float32)
    try:
        run, variables = _compiled(net, spec, n_outputs)
        outs, grads = run(tf.constant(inputs))
    except Exception as err:
        raise Hint(
            f"your {what} fails inside tf.function, where training runs it (with "
            f"the batch size unknown): {error_line(err)}. Write it with Keras "
            "layers, keras.ops or tf operations, not NumPy, and do not use the "
            "batch size as a Python number."
        ) from None
    unused = [v.path for v, g in zip(variables, grads) if g is None]
    if unused:
        raise Hint(
            f"the weights {', '.join(unused)} get no gradient from your {what}'s "
            "outputs, so training could not change them: is every layer used on "
            "the way to the outputs, with no stop_gradient?"
        )
    return [np.asarray(o) for o in outs]


def _trainable_as_built(net, inputs, initial, n_outputs, what):
    """From the weights the network was built with, a few gradient steps must change every
    weight array. A last layer that starts at zero passes (the others move from the second
    step); hidden layers that start at zero do not: their ReLUs output 0 and pass no
    gradient, so training could never move them. The weights are restored afterwards."""
    variables = _trainable(net)
    signs = np.random.default_rng(7).choice([-1.0, 1.0], size=inputs.shape[:1])
    for v, value in zip(variables, initial):
        v.assign(value)
    try:
        for _ in range(3):
            with tf.GradientTape() as tape:
                out = _call(net, inputs)
                outs = list(out) if n_outputs > 1 else [out]
                loss = tf.add_n(
                    [
                        tf.reduce_sum(
                            tf.reshape(tf.cast(o, tf.float32), [len(signs), -1])
                            * signs[:, None].astype(np.float32)
                        )
                        for o in outs
                    ]
                )
            for v, g in zip(variables, tape.gradient(loss, variables)):
                if g is not None:
                    v.assign_sub(0.1 * tf.cast(tf.convert_to_tensor(g), v.dtype))
        stuck = [
            v.path
            for v, value in zip(variables, initial)
            if np.array_equal(np.asarray(v.numpy()), value)
        ]
    finally:
        for v, value in zip(variables, initial):
            v.assign(value)
    if stuck:
        raise Hint(
            f"with the weights your {what} starts from, training cannot change "
            f"{', '.join(stuck)}: their gradient is 0 and stays 0. Are the hidden "
            "layers initialised to zero? Then every ReLU outputs 0 and passes no "
            "gradient back. Keep Keras's default initialisers for the hidden layers "
            "(a last layer that starts at zero is fine)."
        )


def _same_outputs_eager_compiled_small_batch(net, inputs, eager, n_outputs, what):
    compiled = _run_compiled(net, inputs, n_outputs, what)
    for got, expected in zip(compiled, eager):
        if not _close(got, expected, 1e-4, 1e-5):
            raise Hint(
                f"your {what} computes something else inside tf.function than when "
                "called directly: is something fixed when it is traced (NumPy "
                "values, Python randomness)?"
            )
    small = _call(net, inputs[2:4])
    small = list(small) if n_outputs > 1 else [small]
    for got, expected in zip(small, eager):
        if not _close(np.asarray(got), expected[2:4], 1e-4, 1e-5):
            raise Hint(
                f"your {what}'s output for an image depends on the other images in "
                "the batch (it changes with the batch size): each example must be "
                "computed on its own."
            )


# --- the inference network ---------------------------------------------------------------


def _encoder_inputs():
    """Images [BATCH, 28, 28, 1] with values in [0, 1]."""
    return np.random.default_rng(30).random((BATCH, 28, 28, 1)).astype(np.float32)


def _encoder_params(x):
    centre = np.concatenate([np.random.default_rng(32).normal(0, 0.5, LATENT), SIGMA_BIAS])
    return _params(
        x.reshape(BATCH, PIXELS).astype(np.float64),
        2 * LATENT,
        seed=31,
        in_scale=np.sqrt(PIXELS / 3),
        out_centre=centre,
    )


def _encoder_layouts(p):
    b = p["b"]
    hidden = [
        ((PIXELS, HIDDEN), p["W1"]),
        ((HIDDEN,), b),
        ((HIDDEN, HIDDEN), p["W2"]),
        ((HIDDEN,), b),
    ]
    one_head = hidden + [((HIDDEN, 2 * LATENT), p["W3"]), ((2 * LATENT,), p["b3"])]
    two_heads = hidden + [
        ((HIDDEN, LATENT), p["W3"][:, :LATENT]),
        ((HIDDEN, LATENT), p["W3"][:, LATENT:]),
        ((LATENT,), p["b3"][:LATENT]),
        ((LATENT,), p["b3"][LATENT:]),
    ]
    return [one_head, two_heads]


def _sigma(a):
    return 1e-6 + np.logaddexp(0.0, a)


def _check_encoder_outputs(out):
    if isinstance(out, tfd.Distribution):
        raise Hint(
            "your network returns a distribution (a TFP object); return the list "
            "[mu, sigma] of two tensors (the later cells unpack it as "
            "`mu, sigma = encoder(x)` and build q_phi(z|x) from them)."
        )
    if isinstance(out, dict):
        raise Hint(
            "your network returns a dict; return a list of two tensors, mu then "
            "sigma (the later cells unpack it as `mu, sigma = encoder(x)`)."
        )
    if not isinstance(out, (list, tuple)):
        shape = tuple(getattr(out, "shape", ()))
        if shape == (BATCH, 2 * LATENT):
            raise Hint(
                f"your network returns one tensor of shape {shape}; split it and "
                "return two tensors, mu and sigma, each [batch, latent_dim]."
            )
        raise Hint(
            "your network should return two tensors, mu and sigma (a list "
            f"[mu, sigma]); it returns one {type(out).__name__}."
        )
    if len(out) != 2:
        raise Hint(f"your network returns {len(out)} tensors; it should return two, mu and sigma.")
    arrays = [_array(t, name) for t, name in zip(out, ("mu", "sigma"))]
    for name, a in zip(("mu", "sigma"), arrays):
        if a.shape == (BATCH, LATENT):
            continue
        where = (
            f"for {BATCH} images and latent_dim={LATENT}, {name} should have shape "
            f"({BATCH}, {LATENT}); yours has shape {a.shape}"
        )
        if a.ndim == 4:
            raise Hint(f"{where}: flatten each image to 784 pixels before the dense layers.")
        if a.shape == (BATCH // 2, 2 * LATENT):
            raise Hint(
                f"{where}: it was split along the batch axis (axis 0); mu and "
                "sigma are the two halves of the last axis."
            )
        if a.shape == (BATCH, HIDDEN):
            raise Hint(
                f"{where}, with hidden_size columns: your function is called as "
                "f(latent_dim, hidden_size), in that order, as the later cells do."
            )
        if a.shape == (BATCH, 2 * LATENT):
            raise Hint(f"{where}: each is one half of the last layer's 2 * latent_dim outputs.")
        if a.ndim == 2 and a.shape[0] == BATCH:
            raise Hint(
                f"{where}: the number of columns must come from the argument "
                "latent_dim, not a fixed number."
            )
        raise Hint(where + ".")
    return arrays


def _encoder_input_hint(net, x):
    """The network refused images [B, 28, 28, 1]: does it want another shape?"""
    for other, what in (
        (x.reshape(BATCH, PIXELS), "flat vectors [batch, 784]"),
        (x[..., 0], "images without the channel axis [batch, 28, 28]"),
    ):
        try:
            net(other)
        except Exception:
            continue
        raise Hint(
            f"your network only takes {what}; it must take images of shape "
            "[batch, 28, 28, 1] (as data.eval_set gives them) and flatten them "
            "itself."
        )


_RANGES = {
    "ReLU": "never negative",
    "sigmoid": "between 0 and 1",
    "tanh": "between -1 and 1",
    "softplus": "always positive",
}


def _outputs_hint(mu, sigma, params):
    """Slips that concern both outputs: swapped, from one half, an activation on the last
    layer. ``params`` are the last layer's outputs of the task's network."""
    a_mu, a_sigma = params[:, :LATENT], params[:, LATENT:]
    if _close(mu, _sigma(a_sigma), 1e-4, 1e-7) and _close(sigma, a_mu):
        return (
            "mu and sigma are swapped: your network returns [sigma, mu]. It returns "
            "the list [mu, sigma], mu first."
        )
    with np.errstate(all="ignore"):
        if _close(sigma, _sigma(mu), 1e-4, 1e-7) or _close(sigma, np.logaddexp(0.0, mu)):
            return (
                "sigma is computed from the same outputs of the last layer as mu: mu "
                "is its first latent_dim outputs, and sigma comes from the other "
                "latent_dim."
            )
    for act in ("ReLU", "sigmoid", "tanh", "softplus"):
        out = ACTIVATIONS[act](params)
        if _close(mu, out[:, :LATENT]) and _close(sigma, _sigma(out[:, LATENT:]), 1e-4, 1e-7):
            return (
                f"the last dense layer has a {act} activation, so mu is "
                f"{_RANGES[act]}: that layer has no activation (the means can be any "
                f"real number, and sigma's softplus is applied to its raw outputs)."
            )
    return None


def _mu_hint(mu, p, x, sigma_half):
    """Why mu differs from the task's, tried on the same inputs; None if unknown."""
    ref = _mlp(p, x)[:, :LATENT]
    if sigma_half is not None and _close(mu, sigma_half):
        return (
            "mu and sigma are swapped: mu comes from the first latent_dim outputs "
            "of the last layer, sigma from the other latent_dim."
        )
    for act1, act2 in itertools.product(ACTIVATIONS, repeat=2):
        if (act1, act2) == ("ReLU", "ReLU") or not _close(mu, _mlp(p, x, act1, act2)[:, :LATENT]):
            continue
        return _activation_hint(act1, act2)
    if _close(mu, _mlp(p, x / 255.0)[:, :LATENT]):
        return (
            "your network divides the images by 255, but they are already in [0, 1] "
            "(binary pixels): use them as they are."
        )
    for act in ("ReLU", "sigmoid", "tanh", "softplus"):
        fn = ACTIVATIONS[act]
        if _close(mu, fn(ref)) or _close(mu, 1e-6 + fn(ref)):
            return (
                f"mu goes through a {act}, so it cannot take every real value: the "
                "means come straight from the last dense layer, with no activation."
            )
    if (mu >= 0).all() and (ref < 0).any():
        return (
            "mu is never negative, but the means can be any real number: the last "
            "dense layer has no activation, and mu is not transformed."
        )
    return None


def _sigma_hint(sigma, p, x):
    """Why sigma differs from the task's, tried on the same inputs; None if unknown."""
    params = _mlp(p, x)
    a, a_mu = params[:, LATENT:], params[:, :LATENT]
    ref = _sigma(a)
    m = MODERATE
    with np.errstate(all="ignore"):
        moderate = {
            "raw": a,
            "exp": np.exp(a),
            "exp+": 1e-6 + np.exp(a),
            "logvar": np.exp(a / 2),
            "logvar+": 1e-6 + np.exp(a / 2),
            "relu": np.maximum(a, 0.0),
            "relu+": 1e-6 + np.maximum(a, 0.0),
            "abs": np.abs(a),
            "abs+": 1e-6 + np.abs(a),
            "sigmoid": _sigmoid(a),
            "sigmoid+": 1e-6 + _sigmoid(a),
            "square": ref**2,
            "sqrt": np.sqrt(ref),
        }
    if _close(sigma, _sigma(a_mu)) or _close(sigma, np.logaddexp(0.0, a_mu)):
        return (
            "sigma is computed from the first latent_dim outputs, the ones that give "
            "mu: sigma comes from the other latent_dim outputs of the last layer."
        )
    found = next(
        (name for name, value in moderate.items() if _close(sigma[:, m], value[:, m], 1e-4, 1e-7)),
        None,
    )
    hints = {
        "raw": "sigma is the raw output of the last layer, which can be negative: it "
        "must go through a softplus (plus 1e-6) to be a positive standard deviation.",
        "exp": "sigma uses exp: that is a positive standard deviation, but the task asks "
        "for 1e-6 + softplus, which grows linearly instead of exponentially "
        "(exp overflows to inf for large inputs).",
        "logvar": "sigma = exp(a / 2) reads the outputs as a log-variance; in this network "
        "they go through 1e-6 + softplus and give the standard deviation itself.",
        "relu": "sigma uses a ReLU instead of a softplus: it is 0 (or just 1e-6) for every "
        "negative input, and its gradient there is 0.",
        "abs": "sigma uses an absolute value instead of a softplus.",
        "sigmoid": "sigma uses a sigmoid instead of a softplus: it can never exceed 1.",
        "square": "sigma is squared: that is a variance; the network returns the standard "
        "deviation 1e-6 + softplus(...) itself.",
        "sqrt": "sigma has a square root taken: 1e-6 + softplus(...) is already the "
        "standard deviation, not a variance.",
    }
    if found:
        return hints[found.rstrip("+")]
    if not _close(sigma[:, m], ref[:, m], 1e-4, 1e-7):
        offset = sigma[:, m] - np.logaddexp(0.0, a[:, m])
        if np.ptp(offset) < 1e-6 * max(1.0, abs(offset.mean())):
            if abs(offset.mean()) < 5e-7:
                return (
                    "sigma is softplus(...) alone: the 1e-6 is missing. It keeps sigma "
                    "above 0 where softplus underflows to exactly 0 in float32."
                )
            return (
                f"sigma = softplus(...) + {offset.mean():.3g}: the constant added should be 1e-6."
            )
        return None
    tiny = sigma[:, VERY_NEGATIVE]
    if not (tiny > 0).all():
        return (
            "sigma is 0 when the last layer's output is very negative (here -200): "
            "softplus underflows to exactly 0 in float32, and log sigma becomes "
            "-inf. The 1e-6 is missing."
        )
    if not _close(tiny, ref[:, VERY_NEGATIVE], 1e-2, 0):
        return (
            f"for a very negative output of the last layer (here -200) sigma should "
            f"be 1e-6; yours gives {tiny.min():.3g}."
        )
    if not np.isfinite(sigma[:, VERY_LARGE]).all():
        return (
            "sigma is inf when the last layer's output is large (here 100): "
            "log(1 + exp(a)) overflows in float32. Use a numerically stable softplus "
            "(Keras and TensorFlow each have one)."
        )
    return None


@check("inference_network")
def inference_network(fn):
    """``fn(latent_dim, hidden_size)`` -> keras.Model mapping x [B,28,28,1] to [mu, sigma].

    Named slips, each verified on the outputs with the check's weights: a ReLU, sigmoid,
    tanh or softplus on the last layer; mu and sigma swapped (returned as [sigma, mu], or
    taken from the wrong halves); sigma computed from the outputs that give mu; sigma
    through exp, a log-variance, ReLU, abs, sigmoid, a square or a square root instead of
    1e-6 + softplus; the 1e-6 missing or another constant; a softplus that underflows or
    overflows in float32; other hidden activations; images divided by 255 again.
    """
    with quiet_tensorflow():
        net = _build(fn, "my_inference_network")
        judged(_inference_network, net, what="your network")


def _inference_network(net):
    x = _encoder_inputs()
    try:
        out = net(x)
    except Exception as err:
        _encoder_input_hint(net, x)
        raise Hint(
            f"calling your network on images of shape {list(x.shape)} raised {error_line(err)}."
        ) from None
    _check_encoder_outputs(out)
    initial = [np.array(v.numpy()) for v in _trainable(net)]
    p = _encoder_params(x)
    variables, layout = _check_weights(net, _encoder_layouts(p), PIXELS, "inference network")
    xf = x.reshape(BATCH, PIXELS).astype(np.float64)
    params = _mlp(p, xf)
    ref_mu, ref_sigma = params[:, :LATENT], _sigma(params[:, LATENT:])
    tried = []
    for assignment in _assignments(variables, layout):
        _set(assignment)
        mu, sigma = _check_encoder_outputs(_call(net, x))
        if _close(mu, ref_mu) and _close(sigma, ref_sigma, 1e-4, 1e-7):
            break
        tried.append((mu, sigma))
    else:
        # A hint only for a slip that reproduces the outputs. With two heads, trying
        # both ways round also gives mu's values to the sigma head: a swap is no slip
        # there, so look at sigma where mu came out right first.
        for mu, sigma in tried:
            hint = _outputs_hint(mu, sigma, params)
            if hint:
                raise Hint(hint)
        mu_right = [(mu, sigma) for mu, sigma in tried if _close(mu, ref_mu)]
        for mu, sigma in mu_right:
            hint = _sigma_hint(sigma, p, xf)
            if hint:
                raise Hint(hint)
        if mu_right:
            raise Hint(
                "with the same weights, your mu is right but sigma differs: sigma "
                "is 1e-6 + softplus of the last latent_dim outputs of the last "
                "layer."
            )
        one_head = layout[4][0] == (HIDDEN, 2 * LATENT)
        for mu, sigma in tried:
            hint = _mu_hint(mu, p, xf, params[:, LATENT:] if one_head else None)
            if hint:
                raise Hint(hint)
        raise Hint(
            "with the same weights, your mu differs from the task's network: "
            "flatten, two dense layers of hidden_size units with ReLU, a dense "
            "layer of 2 * latent_dim units with no activation, whose first "
            "latent_dim outputs are mu."
        )
    _same_outputs_eager_compiled_small_batch(net, x, [mu, sigma], 2, "inference network")
    _trainable_as_built(net, x, initial, 2, "inference network")


# --- the generative network ------------------------------------------------------------


def _decoder_inputs():
    return np.random.default_rng(40).normal(0, 1, (BATCH, LATENT)).astype(np.float32)


def _decoder_params(z):
    centre = np.random.default_rng(42).normal(0, 1.0, PIXELS)
    return _params(
        z.astype(np.float64), PIXELS, seed=41, in_scale=np.sqrt(LATENT), out_centre=centre
    )


def _decoder_layout(p):
    return [
        ((LATENT, HIDDEN), p["W1"]),
        ((HIDDEN,), p["b"]),
        ((HIDDEN, HIDDEN), p["W2"]),
        ((HIDDEN,), p["b"]),
        ((HIDDEN, PIXELS), p["W3"]),
        ((PIXELS,), p["b3"]),
    ]


def _check_decoder_output(out):
    if isinstance(out, tfd.Distribution):
        raise Hint(
            "your network returns a distribution (a TFP object); return its "
            "logits, one tensor [batch, 28, 28, 1]: the later cells build the "
            "Bernoulli distribution from them."
        )
    if isinstance(out, (list, tuple, dict)):
        raise Hint(
            f"your network returns a {type(out).__name__}; it should return one tensor, the logits."
        )
    logits = _array(out, "the output")
    if logits.shape == (BATCH, PIXELS):
        raise Hint(
            f"the logits have shape {logits.shape}, [batch, 784]: reshape them to "
            "images [batch, 28, 28, 1]."
        )
    if logits.shape == (BATCH, 28, 28):
        raise Hint(
            f"the logits have shape {logits.shape}: the images need their channel "
            "axis too, [batch, 28, 28, 1]."
        )
    if logits.shape == (BATCH, 1, 28, 28):
        raise Hint(
            f"the logits have shape {logits.shape}, channels first: the images "
            "are [batch, 28, 28, 1], with the channel axis last."
        )
    if logits.shape != (BATCH, 28, 28, 1):
        raise Hint(
            f"for {BATCH} codes the logits should have shape "
            f"({BATCH}, 28, 28, 1); yours have shape {logits.shape}."
        )
    return logits


def _logits_hint(logits, p, z):
    ref = _mlp(p, z).reshape(BATCH, 28, 28, 1)
    if _close(logits, _sigmoid(ref), 1e-4, 1e-5):
        return (
            "these are probabilities, not logits: the last dense layer has no "
            "activation (the Bernoulli distribution applies the sigmoid itself, stably)."
        )
    with np.errstate(all="ignore"):
        if _close(logits, -np.logaddexp(0.0, -ref)):
            return (
                "these are log-probabilities (log sigmoid), not logits: the last dense "
                "layer has no activation."
            )
    effects = {
        "ReLU": "never negative, so no pixel probability is below 1/2",
        "tanh": "squeezed into [-1, 1], so every pixel probability is stuck "
        "between sigmoid(-1) = 0.27 and 0.73",
        "softplus": "always positive, so no pixel probability is below 1/2",
    }
    for act in ("ReLU", "tanh", "softplus"):
        if _close(logits, ACTIVATIONS[act](ref)):
            return (
                f"the logits go through a {act} at the end: they are {effects[act]}. "
                "Logits can be any real number, so the last dense layer has no "
                "activation."
            )
    if _close(logits, ref.transpose(0, 2, 1, 3)):
        return (
            "the images come out transposed (rows and columns swapped): reshape the "
            "784 outputs straight to [28, 28, 1], row by row."
        )
    for act1, act2 in itertools.product(ACTIVATIONS, repeat=2):
        if (act1, act2) == ("ReLU", "ReLU") or not _close(
            logits, _mlp(p, z, act1, act2).reshape(logits.shape)
        ):
            continue
        return _activation_hint(act1, act2)
    if (logits >= 0).all() and (ref < 0).any():
        return (
            "the logits are never negative: logits can be any real number, so the "
            "last dense layer has no activation."
        )
    return None


@check("generative_network")
def generative_network(fn):
    """``fn(latent_dim, hidden_size)`` -> keras.Model mapping z [B,latent] to logits [B,28,28,1].

    Named slips, each verified on the outputs with the check's weights: probabilities
    (a sigmoid at the end) or log-probabilities instead of logits; a ReLU, tanh or
    softplus at the end; images transposed; other hidden activations.
    """
    with quiet_tensorflow():
        net = _build(fn, "my_generative_network")
        judged(_generative_network, net, what="your network")


def _generative_network(net):
    z = _decoder_inputs()
    inputs = getattr(net, "inputs", None) or []  # a functional model's declared inputs
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[-1] != LATENT:
        raise Hint(
            f"your network's input takes codes of {inputs[0].shape[-1]} numbers, "
            f"but latent_dim={LATENT}: its size must come from the argument "
            "latent_dim, not a fixed number."
        )
    out = _call(net, z, f"codes z (latent_dim={LATENT})")
    _check_decoder_output(out)
    initial = [np.array(v.numpy()) for v in _trainable(net)]
    p = _decoder_params(z)
    variables, layout = _check_weights(net, [_decoder_layout(p)], LATENT, "generative network")
    (assignment,) = _assignments(variables, layout)
    _set(assignment)
    logits = _check_decoder_output(_call(net, z))
    expected = _mlp(p, z.astype(np.float64)).reshape(BATCH, 28, 28, 1)
    if not _close(logits, expected):
        raise Hint(
            _logits_hint(logits, p, z.astype(np.float64))
            or "with the same weights, your logits differ from the task's network: "
            "two dense layers of hidden_size units with ReLU, then a dense layer "
            "of 784 units with no activation, reshaped to [28, 28, 1]."
        )
    _same_outputs_eager_compiled_small_batch(net, z, [logits], 1, "generative network")
    _trainable_as_built(net, z, initial, 1, "generative network")


def phi_count_quiz(answer):
    """How many parameters does phi have for latent_dim=100, hidden_size=200?"""
    return choice(
        "phi_count_quiz",
        answer,
        "c",
        "count each Dense layer as inputs x outputs weights plus outputs biases; "
        "the last layer has 2 * latent_dim outputs.",
    )
