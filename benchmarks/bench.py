"""How fast is vae_prac? Training steps, the full default run, and the log p(x) estimate.

    python benchmarks/bench.py            # everything (a few minutes on 2 CPU cores)
    python benchmarks/bench.py --quick    # fewer steps, no full run (under a minute)
    python benchmarks/bench.py --json bench.json

What it measures, for the default network (latent 100, hidden 200) at batch 64 on
thresholded MNIST:

1. The training step (``vae_prac.training.train_step_fn``) run eagerly (its Python
   function, no ``tf.function``), compiled with ``tf.function``, and compiled with XLA.
   These time the step alone on batches already in memory.
2. The in-graph loop ``train()`` uses (many steps per ``tf.function`` call, batches
   from the tf.data pipeline): the examples/s that ``train()`` records in its history.
3. The full default run, ``train(Config())``: 10,000 iterations plus 10 evaluations
   of the test ELBO on 5000 digits; wall time split into training and evaluation.
4. The importance-sampled log p(x) estimate (k=1000 on 1000 test images), and what
   the standard k=5000 on all 10,000 would take, from its linear cost in k * n.
5. Peak memory: the process's maximum resident set size.

This prints figures; it is not a test. Timings vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import vae_prac
from vae_prac import data, training  # first: TensorFlow's start-up lines muted
from vae_prac.config import Config
from vae_prac.evaluate import evaluate_elbo, log_px
from vae_prac.model import VAE


def peak_rss_mb() -> float:
    """Maximum resident set size of this process so far, in MB (Linux reports KB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 2**20


def time_step(step, batches, n_steps, repeats=3, warmup=5):
    """Median steps/s of ``step(x, seed)`` over ``repeats`` runs of ``n_steps``."""
    for i in range(warmup):  # the first call traces (and with XLA compiles)
        step(batches[i % len(batches)], tf.constant([0, i], tf.int32))
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        for i in range(n_steps):
            out, _ = step(batches[i % len(batches)], tf.constant([r + 1, i], tf.int32))
        float(out)  # make sure the last step has finished
        rates.append(n_steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_steps(config, train_images, n_steps):
    """Steps/s of one training step: eager, tf.function, tf.function with XLA."""
    dataset = data.train_dataset(train_images, config.batch_size, config.binarization, config.seed)
    batches = [x for x, _ in zip(dataset, range(50))]
    results = {}
    for name, jit, steps in (
        ("eager", False, max(n_steps // 8, 20)),
        ("tf.function", False, n_steps),
        ("tf.function + XLA", True, n_steps),
    ):
        keras.utils.set_random_seed(config.seed)
        model = VAE.from_config(config)
        optimizer = training.make_optimizer(config)
        optimizer.build(model.trainable_variables)
        step = training.train_step_fn(model, optimizer, config, jit_compile=jit)
        if name == "eager":
            step = step.python_function  # the same code, run op by op from Python
        rate = time_step(step, batches, steps)
        results[name] = {
            "steps_per_sec": rate,
            "examples_per_sec": rate * config.batch_size,
            "steps_timed": steps,
        }
        print(f"  {name:<28s} {rate:8.1f} steps/s", flush=True)
    return results


def bench_loop(config, train_images, eval_x, n_iterations):
    """Examples/s of train()'s compiled loop, from the history it records."""
    config = config.replace(
        n_iterations=n_iterations, print_every=n_iterations, log_every=min(100, n_iterations)
    )
    result = training.train(
        config, progress=False, verbose=False, train_images=train_images, eval_x=eval_x
    )
    # The first row includes tracing the loop; the rest are steady state.
    rates = result.history.examples_per_sec[1:] or result.history.examples_per_sec
    rate = statistics.median(rates)
    print(f"  {'train() in-graph loop':<28s} {rate / config.batch_size:8.1f} steps/s", flush=True)
    return {
        "steps_per_sec": rate / config.batch_size,
        "examples_per_sec": rate,
        "iterations": n_iterations,
    }


def bench_full_run():
    """The default run, ``train(Config())``, timed; evaluation time measured apart."""
    eval_seconds = []
    real_evaluate = training.evaluate_elbo

    def timed_evaluate(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return real_evaluate(*args, **kwargs)
        finally:
            eval_seconds.append(time.perf_counter() - t0)

    training.evaluate_elbo = timed_evaluate  # train() looks it up in its module
    try:
        t0 = time.perf_counter()
        result = training.train(Config(), progress=False, verbose=False)
        wall = time.perf_counter() - t0
    finally:
        training.evaluate_elbo = real_evaluate
    history = result.history
    # Time inside the compiled loop: each history row covers log_every steps.
    examples_per_row = Config().log_every * Config().batch_size
    step_seconds = sum(examples_per_row / r for r in history.examples_per_sec)
    figures = {
        "wall_seconds": wall,
        "training_loop_seconds": step_seconds,
        "evaluation_seconds": sum(eval_seconds),
        "evaluations": len(eval_seconds),
        "other_seconds": wall - step_seconds - sum(eval_seconds),
        "iterations": result.iteration,
        "test_elbo": history.last_test_elbo,
    }
    print(
        f"  wall {wall:.1f} s = training loop {step_seconds:.1f} s + "
        f"{len(eval_seconds)} test-ELBO evaluations {sum(eval_seconds):.1f} s + other "
        f"{figures['other_seconds']:.1f} s (data, tracing, checkpoints); "
        f"test ELBO {figures['test_elbo']:.2f}",
        flush=True,
    )
    return result.model, figures


def bench_log_px(model, k, n, seed=0):
    """Seconds for log_px with k samples on the first n test images; and the mean."""
    x = data.eval_set(n, "threshold", seed=0)
    log_px(model, x[:100], k=10, seed=seed)  # trace once, untimed
    t0 = time.perf_counter()
    values = log_px(model, x, k=k, seed=seed)
    seconds = time.perf_counter() - t0
    mean = float(np.mean(values))
    stderr = float(np.std(values, ddof=1) / np.sqrt(len(values)))
    elbo = evaluate_elbo(model, x, seed=seed)  # on the same images, for comparison
    print(
        f"  k={k:<5d} n={n:<6d} {seconds:7.1f} s   log p(x) {mean:.2f} ± {stderr:.2f}"
        f"   (ELBO on these images {elbo:.2f})",
        flush=True,
    )
    return {
        "k": k,
        "n": n,
        "seconds": seconds,
        "log_px": mean,
        "log_px_stderr": stderr,
        "elbo_same_images": elbo,
        "seconds_per_million_samples": seconds / (k * n) * 1e6,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer steps, skip the full 10,000-iteration run"
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    config = Config()
    train_images, _ = data.load_mnist("train")
    eval_x = data.eval_set(config.n_eval, config.binarization, config.seed)
    n_steps = 200 if args.quick else 800
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "gpus": len(tf.config.list_physical_devices("GPU")),
        },
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "vae_prac": vae_prac.__version__,
        },
        "quick": args.quick,
    }
    print(
        f"vae_prac benchmark, {report['date']}: {os.cpu_count()} CPU cores, "
        f"{report['machine']['gpus']} GPUs; TF {tf.__version__}, TFP {tfp.__version__}, "
        f"Keras {keras.__version__}"
    )

    print("Training step, default network, batch 64 (batches in memory):")
    report["step"] = bench_steps(config, train_images, n_steps)
    print("Training loop:")
    report["step"]["train() in-graph loop"] = bench_loop(
        config, train_images, eval_x, 1000 if args.quick else 3000
    )
    report["peak_rss_mb_after_steps"] = peak_rss_mb()

    if args.quick:
        print("Training 1000 iterations for the log p(x) timing (--quick):")
        model = training.train(
            config.replace(n_iterations=1000),
            progress=False,
            verbose=False,
            train_images=train_images,
            eval_x=eval_x,
        ).model
    else:
        print("Full default run, train(Config()):")
        model, report["full_run"] = bench_full_run()
        report["full_run"]["test_elbo_5000"] = evaluate_elbo(model, eval_x, seed=0)

    print("log p(x) estimate (importance sampling):")
    small = bench_log_px(model, 1000, 1000 if not args.quick else 200)
    k5000 = bench_log_px(model, 5000, 200 if not args.quick else 50)
    report["log_px"] = {
        "k1000": small,
        "k5000_subset": k5000,
        "k5000_n10000_seconds_estimated": k5000["seconds_per_million_samples"] * 5000 * 10000 / 1e6,
    }
    report["peak_rss_mb"] = peak_rss_mb()

    print()
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"Wrote {args.json}")
    return report


def format_table(report) -> str:
    """The figures as a Markdown table (pasted into README.md)."""
    lines = ["| what | figure |", "| --- | --- |"]
    for name, fig in report["step"].items():
        lines.append(
            f"| training step, {name} | {fig['steps_per_sec']:.0f} steps/s "
            f"({fig['examples_per_sec']:,.0f} examples/s) |"
        )
    if "full_run" in report:
        run = report["full_run"]
        lines.append(
            f"| full default run (10,000 iterations) | {run['wall_seconds']:.0f} s: "
            f"training {run['training_loop_seconds']:.0f} s, "
            f"{run['evaluations']} test-ELBO evaluations "
            f"{run['evaluation_seconds']:.1f} s, other {run['other_seconds']:.1f} s |"
        )
        lines.append(
            f"| test ELBO after it (5000 test digits) | {run['test_elbo_5000']:.2f} "
            f"nats per image |"
        )
    lp = report["log_px"]
    for key in ("k1000", "k5000_subset"):
        f = lp[key]
        lines.append(
            f"| log p(x), k={f['k']} on {f['n']} test images | {f['seconds']:.1f} s; "
            f"{f['log_px']:.2f} ± {f['log_px_stderr']:.2f} nats per image "
            f"(ELBO {f['elbo_same_images']:.2f}) |"
        )
    lines.append(
        f"| log p(x), k=5000 on all 10,000 (from the cost per sample) | "
        f"about {lp['k5000_n10000_seconds_estimated'] / 60:.0f} min |"
    )
    lines.append(f"| peak memory (max RSS) | {report['peak_rss_mb']:,.0f} MB |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
