"""Training a VAE: the original practical's loop, in TensorFlow 2.

Each step draws a batch x, computes the ELBO summed over the batch and takes an RMSProp
step on -ELBO, updating theta (decoder) and phi (encoder) together. For speed the step
is compiled (``tf.function``, with XLA when ``config.jit_compile``), and ``log_every``
steps run inside one compiled loop so Python is not on the hot path.

Every ``print_every`` iterations ``train`` measures the ELBO of the fixed evaluation set
(the original's 5000 test digits), writes TensorBoard summaries, a checkpoint and the
history so far (``history.csv``) to ``config.logdir`` and calls the hooks (e.g. to plot a
posterior sample beside a prior sample). It stops cleanly on KeyboardInterrupt, keeping
the model and history so far, and stops on a NaN or Inf loss without updating the
weights or the checkpoint. What the logdir holds, and how a run resumes from it, is
``vae_prac.run_folder``'s.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Callable, Iterable, Optional

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from vae_prac import data, fused_updates, run_folder, run_lock, short_runs
from vae_prac.bounds import elbo, iw_bound, iw_bound_dreg
from vae_prac.config import Config
from vae_prac.evaluate import evaluate_elbo
from vae_prac.model import VAE
from vae_prac.run_folder import History

Hook = Callable[["VAE", int, "History"], None]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; training stopped before applying that step.

    ``iteration`` is the iteration whose loss was not finite. ``result`` holds the
    model (weights from the last finite step) and the history so far; the checkpoint
    in ``logdir``, if any, is the last good one.
    """

    def __init__(self, iteration: int, result: "TrainResult"):
        super().__init__(
            f"The loss was NaN or Inf at iteration {iteration}; training stopped and that "
            f"step was not applied. Try a smaller learning_rate, or check the data "
            f"(vae_prac.data.validate_batch). The model and history so far are in "
            f"this exception's .result"
            + (
                f"; the last good checkpoint is in {result.checkpoint_dir}."
                if result.checkpoint_dir
                else "."
            )
        )
        self.iteration = iteration
        self.result = result


@dataclasses.dataclass
class TrainResult:
    """The trained model, its history, and how training ended."""

    model: VAE
    history: History
    iteration: int
    interrupted: bool = False
    checkpoint_dir: Optional[str] = None


def make_optimizer(config: Config) -> keras.optimizers.Optimizer:
    """The optimizer ``config`` asks for, with its learning-rate schedule.

    RMSProp has TF1's defaults (rho=0.9, epsilon=1e-10), which the original used. One
    difference remains: TF1 started the running average of squared gradients at 1, Keras
    starts it at 0, so the very first steps are larger here. Adam has Burda et al.'s
    settings (beta1 0.9, beta2 0.999, epsilon 1e-4).
    """
    learning_rate = learning_rate_schedule(config)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(
            learning_rate=learning_rate, beta_1=0.9, beta_2=0.999, epsilon=config.epsilon or 1e-4
        )
    return keras.optimizers.RMSprop(
        learning_rate=learning_rate, rho=0.9, epsilon=config.epsilon or 1e-10
    )


#: Burda et al.'s schedule: stage i (0..7) lasts 3^i passes at learning rate 1e-3 * 10^(-i/7).
BURDA_STAGES = 8


def learning_rate_schedule(config: Config):
    """``config.learning_rate``, or a schedule of the optimizer's iteration count.

    ``"burda"`` splits ``config.n_iterations`` into eight stages in the ratio
    1 : 3 : 9 : ... : 2187 (sum 3280), with the rate divided by 10^(1/7) at each stage.
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    weights = [3**i for i in range(BURDA_STAGES)]
    ends = np.cumsum(weights) / sum(weights) * config.n_iterations
    # PiecewiseConstantDecay keeps values[i] while step <= boundaries[i]; the step of
    # 0-based iteration t is t, so stage i ends at its last iteration, end_i - 1.
    boundaries = [int(round(e)) - 1 for e in ends[:-1]]
    values = [config.learning_rate * 10 ** (-i / 7) for i in range(BURDA_STAGES)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def objective_fn(config: Config) -> Callable:
    """``batch_objective(model, x, seed)``: what training maximizes, summed over the batch.

    The ELBO averaged over ``n_samples`` samples (a VAE), or the importance-weighted bound
    L_k with k = ``n_samples`` (an IWAE).
    """
    k = config.n_samples
    if config.objective == "iwae":

        def batch_objective(model, x, seed):
            return tf.reduce_sum(iw_bound(model, x, k, seed=seed))
    else:

        def batch_objective(model, x, seed):
            return tf.reduce_sum(elbo(model, x, n_samples=k, seed=seed).elbo)

    return batch_objective


def gradient_step(model, optimizer, batch_elbo, x, seed):
    """One step of RMSProp (or any optimizer) on -ELBO of the batch x; returns the ELBO.

    ``batch_elbo(model, x, seed)`` is the ELBO summed over the batch. This is the
    reference for notebook 05's Code Task, and ``train(..., train_step=...)`` runs a
    function of this signature (compiled) in place of its own step.
    """
    with tf.GradientTape() as tape:
        elbo_value = batch_elbo(model, x, seed)
        loss = -elbo_value  # optimizers minimize: minimize -ELBO
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return elbo_value


def train(
    config: Config = Config(),
    model: Optional[VAE] = None,
    hooks: Iterable[Hook] = (),
    strategy: Optional[tf.distribute.Strategy] = None,
    progress: bool = True,
    verbose: bool = True,
    train_images=None,
    eval_x=None,
    batch_elbo: Optional[Callable] = None,
    train_step: Optional[Callable] = None,
) -> TrainResult:
    """Train a VAE with ``config``; returns a ``TrainResult``.

    Args:
      config: The settings (``vae_prac.Config``).
      model: A ``VAE`` to train further; by default a new one seeded by ``config.seed``.
      hooks: Callables ``hook(model, iteration, history)`` run every ``print_every``.
      strategy: A ``tf.distribute.Strategy`` (e.g. ``MirroredStrategy`` on several
        GPUs); the global batch of ``batch_size`` is split between its replicas.
      progress: Show a progress bar (in a notebook, a widget when available).
      verbose: Print one line every ``print_every`` iterations; its examples/s is the
        speed over the last ``log_every`` iterations (as in ``History``).
      train_images: uint8 images [N, 28, 28] to train on (default: MNIST's training set).
      eval_x: Binary images [n, 28, 28, 1] for the test ELBO (default: the first
        ``config.n_eval`` test digits).
      batch_elbo: Your ELBO, ``batch_elbo(model, x, seed)`` -> the ELBO summed over the
        batch (default: ``objective_fn(config)``, the ELBO or, with
        ``config.objective="iwae"``, the bound L_k, summed).
      train_step: Your step, ``train_step(model, optimizer, batch_elbo, x, seed)`` ->
        the batch ELBO, as ``gradient_step`` (default: the library's step, which also
        refuses to apply a NaN or Inf update). Both are compiled with the loop; pass
        your own networks as ``model=VAE(encoder=..., decoder=...)``.

    If ``config.logdir`` holds a checkpoint, training resumes from the newest one that
    reads back whole, at the right iteration, with the same data order and noise as an
    uninterrupted run; the network sizes cannot change. While it runs, ``train`` holds
    the logdir's lock (``vae_prac.run_lock``): another run on the same logdir raises
    ``RunLockedError`` at once. ``vae_prac.run_folder`` says what a logdir holds, and
    the rules of resuming.
    """
    if not isinstance(config, Config):
        raise TypeError(
            f"config must be a vae_prac.Config, got {type(config).__name__}; "
            f"build one with Config(**settings) or Config.from_dict(settings)."
        )
    config = short_runs.shorten(config)  # VAE_PRAC_SHORT_RUNS: see vae_prac.short_runs
    # Wrong images fail here, not after a first write or a thousand iterations.
    if train_images is not None:
        data._image_array(train_images)
    if eval_x is not None:
        data.validate_batch(eval_x, "eval_x")
    keras.utils.set_random_seed(config.seed)
    if train_images is None:
        train_images, _ = data.load_mnist("train", config.data_dir)
    if config.n_validation:
        if config.n_validation >= len(train_images):
            raise ValueError(
                f"Config.n_validation ({config.n_validation}) leaves no training images "
                f"out of {len(train_images)}."
            )
        train_images = train_images[: len(train_images) - config.n_validation]
    if eval_x is None:
        eval_x = data.eval_set(config.n_eval, config.binarization, config.seed, config.data_dir)

    with (strategy or tf.distribute.get_strategy()).scope():
        model = model or VAE.from_config(config)
        optimizer = make_optimizer(config)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
    checkpoint = run_folder.checkpoint_of(model, step, optimizer)
    loop = dict(
        config=config,
        model=model,
        optimizer=optimizer,
        step=step,
        strategy=strategy,
        hooks=hooks,
        progress=progress,
        verbose=verbose,
        train_images=train_images,
        eval_x=eval_x,
        batch_elbo=batch_elbo,
        train_step=train_step,
    )
    if not config.logdir:
        return _train_loop(manager=None, **loop)
    # One run at a time in a logdir: two would delete each other's checkpoints.
    say = print if verbose else (lambda line: None)
    with run_lock.hold(config.logdir, say=say):
        manager = run_folder.open_checkpoints(config, checkpoint, say)
        if manager.latest_checkpoint:
            _resumed(config, optimizer, step, manager.latest_checkpoint, say)
        return _train_loop(manager=manager, **loop)


def _resumed(config, optimizer, step, path, say):
    """After restoring checkpoint ``path``: the config's learning rate, and a line."""
    # The checkpoint restores the old learning rate; the config's is the one asked
    # for. (A schedule is a function of the restored iteration count instead.)
    if config.lr_schedule == "constant":
        optimizer.learning_rate.assign(config.learning_rate)
    at = int(step.numpy())
    say(
        f"Resuming from {path} at iteration {at}"
        + (
            "."
            if at < config.n_iterations
            else f": nothing to train (n_iterations is {config.n_iterations})."
        )
    )


def _train_loop(
    config,
    model,
    optimizer,
    step,
    strategy,
    hooks,
    progress,
    verbose,
    train_images,
    eval_x,
    batch_elbo,
    train_step,
    manager,
) -> TrainResult:
    """``train`` from the iteration in ``step`` to ``config.n_iterations``."""
    start = int(step.numpy())

    # The batches of data.train_dataset, from batch `start` on: the data order of an
    # uninterrupted run.
    run_steps = _compile_train_loop(
        model, optimizer, step, strategy, config, batch_elbo, train_step, train_images, start
    )

    # A writer creates its events file at once: none when there is nothing to train.
    writer = (
        tf.summary.create_file_writer(config.logdir)
        if config.logdir and start < config.n_iterations
        else None
    )
    history = History()
    result = TrainResult(
        model, history, start, checkpoint_dir=manager.directory if manager else None
    )
    bar = _progress_bar(config.n_iterations, start, progress)
    it = start  # the iterations done so far, kept in step to be checkpointed
    try:
        while it < config.n_iterations:
            # Run up to the next multiple of log_every (a resumed run may start mid-way).
            n = min(config.log_every - it % config.log_every, config.n_iterations - it)
            t0 = time.perf_counter()
            elbo_sum, n_done = run_steps(tf.constant(n, tf.int64))
            elapsed = time.perf_counter() - t0
            n_done = int(n_done)
            it = result.iteration = int(step.numpy())  # int() can't read a MirroredVariable
            if n_done < n:
                raise NonFiniteLossError(it + 1, result)
            train_elbo = float(elbo_sum) / (n_done * config.batch_size)
            bar.update(n_done)
            bar.set_postfix(elbo=f"{train_elbo:.2f}")
            test_elbo = math.nan
            if it % config.print_every == 0 or it == config.n_iterations:
                test_elbo = evaluate_elbo(model, eval_x, seed=config.seed)
            history.append(it, train_elbo, test_elbo, n_done * config.batch_size / elapsed)
            if writer:
                with writer.as_default(step=it):
                    _scalar("elbo/train", train_elbo)
                    _scalar("examples_per_sec", history.examples_per_sec[-1])
                    if not math.isnan(test_elbo):
                        _scalar("elbo/test", test_elbo)
            if not math.isnan(test_elbo):
                if manager:
                    # History first: a run stopped between the two writes keeps every
                    # row, and its resumed run drops the rows after its checkpoint.
                    run_folder.save_history(config.logdir, history, start)
                    manager.save(checkpoint_number=it)
                if verbose:
                    _write(
                        bar,
                        f"Iteration {it:>6d}  train ELBO {train_elbo:9.3f}  "
                        f"test ELBO {test_elbo:9.3f}  "
                        f"examples/s {history.examples_per_sec[-1]:,.0f}",
                    )
                for hook in hooks:
                    hook(model, it, history)
    except KeyboardInterrupt:
        result.interrupted = True
        if verbose:
            _write(
                bar,
                f"Interrupted at iteration {int(step.numpy())}; the model and the "
                f"history so far are kept in the returned result.",
            )
    finally:
        bar.close()
        if writer:
            writer.flush()
    result.iteration = int(step.numpy())
    return result


def restore(logdir: str, config: Optional[Config] = None, verbose: bool = True) -> tuple[VAE, int]:
    """Load the latest checkpoint in ``logdir`` into a new VAE; returns (model, iteration).

    ``config`` gives the network sizes; by default they are read from the
    ``config.json`` that ``train`` writes next to the checkpoints. A newer checkpoint
    that cannot be read is set aside, as ``train`` does, and the newest readable one
    loaded; ``verbose`` prints a line saying so.
    """
    if config is None:
        config = run_folder.read_config(logdir)
        if config is None:
            raise run_folder.NoConfigError(
                f"No config.json in {logdir}: pass config= with the network sizes used "
                f"for training.",
                logdir,
            )
    latest = run_folder.readable_checkpoint(logdir, say=print if verbose else (lambda line: None))
    model = VAE.from_config(config)
    step = tf.Variable(0, dtype=tf.int64)
    run_folder.checkpoint_of(model, step).restore(latest).expect_partial()
    return model, int(step)


def train_step_fn(
    model,
    optimizer,
    config: Config,
    jit_compile: Optional[bool] = None,
    batch_elbo: Optional[Callable] = None,
    train_step: Optional[Callable] = None,
    fused_update: bool = True,
):
    """One training step on a batch x: returns the batch ELBO and whether it was finite.

    A step whose loss is NaN or Inf changes neither the weights nor the optimizer's
    state; with XLA or under a strategy it applies zero gradients instead, which leave
    RMSProp's weights as they were but not Adam's (its momentum moves them). ``seed`` is
    a stateless seed: fresh noise every step, yet reproducible. With ``batch_elbo`` and
    ``train_step`` (see ``train``) the step is yours, compiled the same way; a step of
    your own applies whatever update it computes. ``fused_update`` applies Adam's or
    RMSprop's update with one op per weight (``vae_prac.fused_updates``: Keras's
    arithmetic, fewer ops; not under a strategy, whose update all-reduces).
    """
    jit = config.jit_compile if jit_compile is None else jit_compile
    if jit is None:  # XLA pays off on a GPU; on a CPU this small step runs faster without
        jit = bool(tf.config.list_physical_devices("GPU"))
    dreg = config.iwae_gradient == "dreg"
    if dreg and (batch_elbo is not None or train_step is not None):
        raise ValueError(
            "Config.iwae_gradient='dreg' trains with the library's own bound and step; "
            "leave batch_elbo and train_step unset, or use iwae_gradient='standard'."
        )
    if batch_elbo is None:
        batch_elbo = objective_fn(config)

    if train_step is not None:

        @tf.function(jit_compile=jit)
        def own_step(x, seed):
            value = tf.cast(train_step(model, optimizer, batch_elbo, x, seed), tf.float32)
            return value, tf.math.is_finite(value)

        return own_step

    def gradients(x, seed):
        """The objective on the batch and the gradients of its negative (the loss)."""
        if not dreg:
            with tf.GradientTape() as tape:
                value = batch_elbo(model, x, seed)
                loss = -value  # optimizers minimize: minimize -ELBO
            return value, tape.gradient(loss, model.trainable_variables)
        # DReG: the encoder (phi) follows its surrogate, every other weight (theta, a
        # learned prior's) L_k itself; one forward pass, a backward pass for each.
        variables = model.trainable_variables
        in_phi = {id(v) for v in model.encoder.trainable_variables}
        phi = [v for v in variables if id(v) in in_phi]
        theta = [v for v in variables if id(v) not in in_phi]
        with tf.GradientTape(persistent=True) as tape:
            bound, surrogate = iw_bound_dreg(model, x, config.n_samples, seed=seed)
            value = tf.reduce_sum(bound)
            loss, phi_loss = -value, -tf.reduce_sum(surrogate)
        found = dict(zip(map(id, phi), tape.gradient(phi_loss, phi)))
        found.update(zip(map(id, theta), tape.gradient(loss, theta)))
        del tape
        return value, [found[id(v)] for v in variables]

    variables = model.trainable_variables

    def update(grads):
        if fused_update and not tf.distribute.has_strategy():
            if fused_updates.apply(optimizer, grads, variables):
                return
        optimizer.apply(grads, variables)

    @tf.function(jit_compile=jit)
    def default_step(x, seed):
        batch_elbo_value, grads = gradients(x, seed)
        loss = -batch_elbo_value
        unused = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
        if unused:
            raise ValueError(
                f"These weights get no gradient from the ELBO: {unused}. Every weight "
                f"of model.encoder and model.decoder must be used; to change a "
                f"network, pass it to VAE(encoder=..., decoder=...) instead of "
                f"replacing the attribute."
            )
        finite = tf.math.is_finite(loss)
        if jit or tf.distribute.has_strategy():
            # Zero gradients instead. Under a strategy the update all-reduces them (a
            # merge_call), which TF refuses inside a branch of tf.cond; under XLA the
            # branch would round differently from the runs before it.
            grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
            update(grads)
        else:
            # Not even a zero gradient: Adam's momentum alone would still move the weights.
            def apply():
                update(grads)
                return tf.constant(True)

            tf.cond(finite, apply, lambda: tf.constant(False))
        return batch_elbo_value, finite

    return default_step


def _index_blocks(n: int, block_size: int, seed: int, skip: int) -> tf.data.Dataset:
    """0..n-1 shuffled as ``data.train_dataset`` shuffles its images, in blocks, forever."""
    blocks = (
        tf.data.Dataset.range(n)
        .shuffle(min(data.SHUFFLE_BUFFER, n), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .skip(skip)
        .batch(block_size)
        .prefetch(1)
    )
    # No autotuning: nothing here is AUTOTUNE, and its thread would outlive train(). The
    # iterator, freed from inside a compiled function, waits for that thread's next
    # wake-up, up to a minute away, in whatever code runs Python's garbage collector then.
    options = tf.data.Options()
    options.autotune.enabled = False
    return blocks.with_options(options)


def _batch_feed(train_images, config: Config, start: int):
    """``next_batch(index)``: the training batches of ``data.train_dataset``, in the graph.

    ``data.train_dataset`` (shuffle, batch, binarize in tf.data) defines the batches;
    this gives the same ones, bit for bit, for less work per step: tf.data only shuffles
    the indices 0..N-1 (its shuffle depends on the seed and on N, not on what is
    shuffled) and hands them over a block of many batches at a time, and the compiled
    loop gathers the images and binarizes them as the pipeline does (``data.binarize_batch``,
    stateless seed [seed, batch index]). ``start`` batches are skipped, as when resuming.
    Call ``next_batch`` once per step, with consecutive indices from ``start`` on.
    """
    images = data._image_array(train_images)  # checked as data.train_dataset checks them
    n = len(images)
    batch_size = config.batch_size
    # A call into tf.data costs about a quarter of a small training step: make one per
    # block of about 8,000 indices instead of one per batch.
    per_block = max(1, 8192 // batch_size)
    iterator = iter(_index_blocks(n, per_block * batch_size, config.seed, start * batch_size))
    block = tf.Variable(tf.zeros([per_block * batch_size], tf.int64), trainable=False)
    used = tf.Variable(per_block, dtype=tf.int64, trainable=False)  # batches of it used
    pixels = tf.constant(images)

    def next_indices():
        def refill():
            block.assign(next(iterator))
            used.assign(0)
            return tf.constant(True)

        tf.cond(used >= per_block, refill, lambda: tf.constant(False))
        first = used.read_value() * batch_size
        used.assign_add(1)
        return tf.slice(block, [first], [batch_size])  # a static shape: [batch_size]

    def next_batch(index):
        batch = tf.gather(pixels, next_indices())
        return data.binarize_batch(batch, config.binarization, config.seed, index)

    return next_batch


def _compile_train_loop(
    model,
    optimizer,
    step,
    strategy,
    config,
    batch_elbo=None,
    own_step=None,
    train_images=None,
    start=0,
):
    """A compiled loop running up to n steps; returns (ELBO summed, steps done).

    ``run_steps(n)`` trains on ``train_images`` from batch ``step``, the batches of
    ``data.train_dataset`` from ``start`` on.
    """
    train_step = train_step_fn(model, optimizer, config, batch_elbo=batch_elbo, train_step=own_step)
    distributed = strategy is not None
    # data.train_dataset checks the images and the batch size, and defines the batches.
    dataset = data.train_dataset(train_images, config.batch_size, config.binarization, config.seed)
    if distributed:
        # Under a strategy the optimizer all-reduces the gradients (a merge_call), which
        # TF refuses inside a nested tf.function: run the step's Python body instead.
        train_step = train_step.python_function
        # Skipping `start` batches reproduces the data order of an uninterrupted run.
        iterator = iter(strategy.experimental_distribute_dataset(dataset.skip(start)))
    else:
        next_batch = _batch_feed(train_images, config, start)

    def replica_step(x, it):
        ctx = tf.distribute.get_replica_context()
        # Distinct noise on every step and every replica, fixed by config.seed.
        replica = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
        it = tf.cast(it, tf.int32) * ctx.num_replicas_in_sync + replica
        return train_step(x, tf.stack([tf.constant(config.seed, tf.int32), it]))

    def one_step():
        if not distributed:  # strategy.run costs ~30% of a small step on a CPU
            index = step.read_value()
            return train_step(
                next_batch(index),
                tf.stack([tf.constant(config.seed, tf.int32), tf.cast(index, tf.int32)]),
            )
        batch_elbo, finite = strategy.run(replica_step, args=(next(iterator), step))
        return (
            strategy.reduce("SUM", batch_elbo, axis=None),
            tf.reduce_all(strategy.experimental_local_results(finite)),
        )

    @tf.function
    def run_steps(n):
        total = tf.constant(0.0)
        done = tf.constant(0, tf.int64)
        for _ in tf.range(n):
            batch_elbo, finite = one_step()
            if not finite:
                break
            total += tf.cast(batch_elbo, total.dtype)  # a student's ELBO may be float64
            done += 1
            step.assign_add(1)
        return total, done

    return run_steps


def _scalar(tag, value):
    """Write a scalar summary that TensorBoard shows, without needing TensorBoard.

    ``tf.summary.scalar`` lives in the tensorboard package, which TensorFlow no longer
    installs; ``tf.summary.write`` with the "scalars" plugin tag writes the same event.
    """
    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    tf.summary.write(tag, tf.constant(value, tf.float32), metadata=metadata)


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def _progress_bar(total, initial, enabled):
    if not enabled:
        return _NoBar()
    try:
        import ipywidgets  # noqa: F401  (tqdm.auto needs it for a notebook widget)
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm import tqdm
    return tqdm(
        total=total,
        initial=initial,
        desc="training",
        unit="it",
        file=sys.stdout,
        dynamic_ncols=True,
        leave=True,
    )


def _write(bar, line):
    if isinstance(bar, _NoBar):
        print(line)
    else:
        bar.write(line, file=sys.stdout)
