"""Where a training step's time goes: train()'s in-graph loop, built up one part at a time.

    python benchmarks/profile_step.py                    # batch 20 and 64, 2 ops at once
    python benchmarks/profile_step.py --threads-per-op 2 # TensorFlow's default on 2 cores
    python benchmarks/profile_step.py --threads 1 --jit  # one thread, XLA

Each variant is a compiled loop of ``--steps`` steps, as ``train()`` runs them (one
``tf.function`` call, a ``tf.range`` loop inside), that does a little more than the one
before it:

1. feed: draw the batch (shuffled indices, gather, binarize), as ``train()`` does;
2. + forward: the objective (ELBO or L_k) on it;
3. + backward: its gradients (each summed into the result, so none is pruned);
4. + update: the optimizer applied, with the NaN guard: ``train_step_fn``'s step, with
   Keras's ``optimizer.apply`` or with ``vae_prac.fused_updates`` (train()'s default);
5. the loop ``train()`` runs: the fused step plus its step counter and early exit.

The difference between neighbours is that part's cost per step. Beside it: the part's
matrix products in FLOP, the graph's node count (ops run each step, near enough), and
the lower bound the fp32 matrix-multiply peak (measured here, in the same run) puts on
the step. A run of ``vae-prac train`` adds, every ``print_every`` steps, an evaluation on
``n_eval`` digits, a checkpoint and the history, timed here on their own. It prints
figures; it is not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

ARGS = None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads", type=int, default=2, help="TensorFlow's ops at once (default 2)"
    )
    parser.add_argument(
        "--threads-per-op",
        type=int,
        default=1,
        help="threads one op may use (default 1, as vae-prac train)",
    )
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; medians reported")
    parser.add_argument(
        "--presets",
        default="burda-vae-k1,default,burda-iwae-k5",
        help="configs to profile: preset names, or 'default' for Config() "
        "(default: burda-vae-k1,default,burda-iwae-k5)",
    )
    parser.add_argument("--jit", action="store_true", help="compile the step with XLA")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args()

import tensorflow as tf  # noqa: E402

if ARGS is not None:  # TensorFlow's threads are set before it runs anything
    tf.config.threading.set_intra_op_parallelism_threads(min(ARGS.threads_per_op, ARGS.threads))
    tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)

import arithmetic  # noqa: E402  (benchmarks/arithmetic.py, beside this script)
import keras  # noqa: E402

from vae_prac import data, presets, run_folder, training  # noqa: E402
from vae_prac.config import Config  # noqa: E402
from vae_prac.evaluate import evaluate_elbo  # noqa: E402
from vae_prac.model import VAE  # noqa: E402


def config_of(name: str) -> Config:
    return Config() if name == "default" else presets.preset(name)


def variants(config: Config, images, jit: bool) -> dict:
    """The five loops, each ``run(n)`` -> a scalar, on fresh models of the same seed."""
    keras.utils.set_random_seed(config.seed)
    model = VAE.from_config(config)
    optimizer = training.make_optimizer(config)
    optimizer.build(model.trainable_variables)
    objective = training.objective_fn(config)
    next_batch = training._batch_feed(images, config, 0)
    keras_step = training.train_step_fn(
        model, optimizer, config, jit_compile=jit, fused_update=False
    )
    fused_step = training.train_step_fn(model, optimizer, config, jit_compile=jit)
    counter = tf.Variable(0, dtype=tf.int64, trainable=False)

    def seed_of(i):
        return tf.stack([tf.constant(config.seed, tf.int32), tf.cast(i, tf.int32)])

    def loop(body):
        @tf.function
        def run(n):
            total = tf.constant(0.0)
            for i in tf.range(n):
                total += body(i)
            return total

        return run

    def feed(i):
        return tf.reduce_sum(next_batch(i))

    def forward(i):
        return objective(model, next_batch(i), seed_of(i))

    def backward(i):
        with tf.GradientTape() as tape:
            value = objective(model, next_batch(i), seed_of(i))
            loss = -value
        grads = tape.gradient(loss, model.trainable_variables)
        return value + tf.add_n([tf.reduce_sum(g) for g in grads])

    def keras_update(i):
        value, _ = keras_step(next_batch(i), seed_of(i))
        return value

    def fused_update(i):
        value, _ = fused_step(next_batch(i), seed_of(i))
        return value

    loop_model = VAE.from_config(config)
    loop_optimizer = training.make_optimizer(config)
    loop_optimizer.build(loop_model.trainable_variables)
    run_steps = training._compile_train_loop(
        loop_model,
        loop_optimizer,
        counter,
        None,
        config.replace(jit_compile=jit),
        None,
        None,
        images,
        0,
    )

    @tf.function
    def whole_loop(n):
        total, _ = run_steps(tf.cast(n, tf.int64))
        return total

    return {
        "feed": loop(feed),
        "+ forward": loop(forward),
        "+ backward": loop(backward),
        "+ Keras's update": loop(keras_update),
        "+ fused update": loop(fused_update),
        "train()'s loop": whole_loop,
    }, model


def node_count(run) -> int:
    """Nodes in the loop's functions: the ops one step runs, near enough."""
    graph = run.get_concrete_function(tf.TensorSpec([], tf.int32)).graph.as_graph_def()
    return sum(len(f.node_def) for f in graph.library.function)


def profile(name: str, args, peak: float) -> None:
    config = config_of(name)
    images, _ = data.load_mnist("train", config.data_dir)
    loops, model = variants(config, images, args.jit)
    n = args.steps
    for run in loops.values():  # trace and warm up
        float(run(tf.constant(max(20, n // 10))))
    seconds = {part: [] for part in loops}
    for _ in range(args.repeats):
        for part, run in loops.items():
            start = time.perf_counter()
            float(run(tf.constant(n)))
            seconds[part].append((time.perf_counter() - start) / n)
    per_step = {part: statistics.median(s) for part, s in seconds.items()}
    flops = arithmetic.step_flops(config)
    bound = flops / (peak * 1e9)
    print(
        f"\n{name}: batch {config.batch_size}, k={config.n_samples}, {config.objective}, "
        f"{config.optimizer}; {flops / 1e6:.1f} MFLOP of "
        f"matrix products a step, {1e6 * bound:.0f} us at the peak"
    )
    print(
        f"    {'loop':<22s} {'us/step':>8s} {'part':>8s} {'steps/s':>8s} {'of peak':>8s} "
        f"{'nodes':>6s}"
    )
    # Each loop's part: what it adds to the loop it builds on.
    builds_on = {
        "+ forward": "feed",
        "+ backward": "+ forward",
        "+ Keras's update": "+ backward",
        "+ fused update": "+ backward",
        "train()'s loop": "+ fused update",
    }
    for part, t in per_step.items():
        cost = t - per_step.get(builds_on.get(part), 0.0)
        print(
            f"    {part:<22s} {1e6 * t:8.0f} {1e6 * cost:+8.0f} {1 / t:8.0f} "
            f"{100 * bound / t:7.1f}% {node_count(loops[part]):6d}"
        )
    # What a CLI run adds every print_every steps.
    eval_x = data.eval_set(config.n_eval, config.binarization, config.seed, config.data_dir)
    evaluate_elbo(model, eval_x, seed=config.seed)
    start = time.perf_counter()
    evaluate_elbo(model, eval_x, seed=config.seed)
    evaluation = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as logdir:
        step = tf.Variable(0, dtype=tf.int64)
        optimizer = training.make_optimizer(config)
        optimizer.build(model.trainable_variables)
        manager = run_folder.open_checkpoints(
            config.replace(logdir=logdir),
            run_folder.checkpoint_of(model, step, optimizer),
            lambda line: None,
        )
        manager.save(checkpoint_number=0)
        start = time.perf_counter()
        manager.save(checkpoint_number=1)
        checkpoint = time.perf_counter() - start
    train_time = config.print_every * per_step["train()'s loop"]
    print(
        f"    every {config.print_every} steps ({train_time:.1f} s of training): evaluation "
        f"on {config.n_eval} digits {evaluation:.2f} s, checkpoint {checkpoint:.2f} s: "
        f"{100 * (evaluation + checkpoint) / (train_time + evaluation + checkpoint):.1f}% "
        f"of a run"
    )


def main(args):
    peak = arithmetic.tf_matmul_peak(args.threads)
    print(
        f"TensorFlow {tf.__version__}, {args.threads} op(s) at once on "
        f"{min(args.threads_per_op, args.threads)} thread(s) each, "
        f"XLA {'on' if args.jit else 'off'}; "
        f"fp32 matrix-multiply peak {peak:.0f} GFLOP/s (2048 x 2048); medians of "
        f"{args.repeats} runs of {args.steps} steps"
    )
    for name in args.presets.split(","):
        profile(name, args, peak)


if __name__ == "__main__":
    main(ARGS)
