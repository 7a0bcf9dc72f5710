"""The optimizer's step as one TensorFlow op per weight: Keras's arithmetic, fewer ops.

A small VAE's training step is bound by overhead, not arithmetic: Keras's
``optimizer.apply`` builds some forty small ops for every weight (casts, powers of the
betas, reads, the distribution machinery), and at batch 20 they took about as long as the
forward and backward passes together. TensorFlow's training kernels do the same update in
one op per weight:

* ``ResourceApplyAdam``: m <- beta1 m + (1 - beta1) g, v <- beta2 v + (1 - beta2) g^2,
  w <- w - lr sqrt(1 - beta2^t) / (1 - beta1^t) m / (sqrt(v) + epsilon), Keras's Adam;
* ``ResourceApplyRMSProp`` with momentum 0: ms <- rho ms + (1 - rho) g^2,
  w <- w - lr g / sqrt(ms + epsilon), Keras's RMSprop.

One difference is rounding: the kernels take 1 - beta from beta in float32 (0.00099998713
for Adam's beta2 = 0.999), Keras from Python's float (0.001), so Adam's v differs by about
1e-5 relatively.

``apply(optimizer, grads, variables)`` does this on the optimizer's own slot variables
(its checkpoints are unchanged, and it resumes either way), with the learning rate its
schedule gives, and counts the step in ``optimizer.iterations`` as Keras does. It
returns False, changing nothing, for an optimizer or an option it does not cover
(AMSGrad, momentum, centred RMSprop, clipping, weight decay, EMA, gradient
accumulation, or a subclass), or for weights other than float32 or sparse gradients: use
``optimizer.apply`` then. ``tests/test_fused_updates.py`` holds it to Keras's step, step
for step.
"""

from __future__ import annotations

import keras
import tensorflow as tf

#: Options under which Keras's step does more than the plain update.
_EXTRAS = (
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "weight_decay",
    "use_ema",
    "gradient_accumulation_steps",
    "loss_scale_factor",
)


def covers(optimizer) -> bool:
    """Whether ``apply`` does ``optimizer``'s step exactly: plain Adam or RMSprop."""
    if any(getattr(optimizer, name, None) for name in _EXTRAS):
        return False
    if type(optimizer) is keras.optimizers.Adam:
        return not optimizer.amsgrad
    if type(optimizer) is keras.optimizers.RMSprop:
        return not optimizer.centered and not optimizer.momentum
    return False


def apply(optimizer, grads, variables) -> bool:
    """One step of ``optimizer`` on ``variables``, one op each; False if not covered.

    ``optimizer`` must be built on ``variables`` (``optimizer.build(variables)``).
    """
    if not covers(optimizer):
        return False
    # The kernels check their dtypes with an abort, not an exception: leave float64
    # weights (a student's network may have them) and sparse gradients to Keras.
    if any(tf.as_dtype(v.dtype) != tf.float32 for v in variables) or any(
        isinstance(g, tf.IndexedSlices) for g in grads
    ):
        return False
    # A Keras variable wraps a tf.Variable (its .value); the kernels take the handles.
    handles = [_handle(v) for v in variables]
    lr = tf.cast(optimizer.learning_rate, tf.float32)  # the schedule, at this iteration
    grads = [tf.cast(g, tf.float32) for g in grads]  # as Keras casts them
    if isinstance(optimizer, keras.optimizers.Adam):
        t = tf.cast(optimizer.iterations + 1, tf.float32)
        beta_1, beta_2 = tf.constant(optimizer.beta_1), tf.constant(optimizer.beta_2)
        beta_1_power, beta_2_power = tf.pow(beta_1, t), tf.pow(beta_2, t)
        epsilon = tf.constant(optimizer.epsilon)
        for v, handle, g in zip(variables, handles, grads):
            i = optimizer._get_variable_index(v)
            tf.raw_ops.ResourceApplyAdam(
                var=handle,
                m=_handle(optimizer._momentums[i]),
                v=_handle(optimizer._velocities[i]),
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=epsilon,
                grad=g,
            )
    else:
        rho, epsilon = tf.constant(optimizer.rho), tf.constant(optimizer.epsilon)
        zero = tf.constant(0.0)
        for v, handle, g in zip(variables, handles, grads):
            i = optimizer._get_variable_index(v)
            tf.raw_ops.ResourceApplyRMSProp(
                var=handle,
                ms=_handle(optimizer._velocities[i]),
                # With momentum 0 the kernel's "mom" is only the step just taken: a
                # scratch variable, not part of the optimizer's state.
                mom=_handle(_scratch(optimizer, v, i)),
                lr=lr,
                rho=rho,
                momentum=zero,
                epsilon=epsilon,
                grad=g,
            )
    optimizer.iterations.assign_add(1)
    return True


def _handle(variable):
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def _scratch(optimizer, variable, index):
    """A variable shaped as ``variable`` for RMSProp's kernel to write its step into."""
    scratch = optimizer.__dict__.setdefault("_fused_rmsprop_steps", {})
    if index not in scratch:
        with tf.init_scope():  # created once, outside any tf.function being traced
            scratch[index] = tf.Variable(tf.zeros(variable.shape, variable.dtype), trainable=False)
    return scratch[index]
