"""vae_prac (TensorFlow) beside a plain PyTorch loop: the same network, batch and data.

    pip install torch          # not a dependency of vae_prac: only this script needs it
    python benchmarks/bench_torch.py                 # about 10 minutes with one thread
    python benchmarks/bench_torch.py --quick         # fewer steps and repeats
    python benchmarks/bench_torch.py --threads 2 --json speed.json

On Linux a CPU-only build of PyTorch is much smaller than the default one:
``pip install torch --index-url https://download.pytorch.org/whl/cpu``.

Each case builds the same network in both frameworks, copies vae_prac's initial weights
into the PyTorch model (and checks that both encoders then agree), and times:

* TF ``train()`` loop: the compiled loop ``vae_prac.train`` runs, with its own data
  feeding (shuffled batches binarized as ``train()`` does) and its optimizer;
* TF step alone: ``vae_prac.training.train_step_fn``, called from Python on batches
  already in memory (so Python's per-call cost is in it);
* PyTorch eager: a plain loop (draw a batch, forward, loss, backward, optimizer step)
  with batches drawn the same way: a new random order of the training images every
  epoch, and for dynamic binarization each pixel ~ Bernoulli(intensity) drawn afresh.

The cases: (a) the default ``Config()`` (latent 100, hidden 200 ReLU, batch 64, RMSProp
rho 0.9 eps 1e-10, thresholded); (b) Burda et al.'s network (latent 50, 2 x 200 tanh,
dynamic binarization) at batch 20 with Adam, the ELBO with k=1 (``burda-vae-k1``);
(c) the same with the IWAE bound, k=5 (``burda-iwae-k5``); (d) log p(x) with k=5000
importance samples on n test images, extrapolated to all 10,000.

Every figure is also printed as a fraction of the machine's fp32 matrix-multiply peak,
measured at the start of the same run (the faster of the two frameworks on a 2048 x 2048
product, on the same threads): the step's matrix products in FLOP (forward, and backward
for the weights and the inputs) times steps/s, over that peak. ``--whole-run`` adds
``vae_prac.train`` itself between two evaluations (its evaluation, checkpoint and history
included), beside the same PyTorch loop.

The frameworks take turns (TF, PyTorch, TF, PyTorch, ...) so that whatever else runs on
the machine slows both alike, and each figure is the median of ``--repeats`` runs. Both
are limited to ``--threads`` threads (default 1: the figures are per thread). Besides
wall-clock steps/s it reports steps per CPU-second (the process's CPU time, all its
threads), which a machine busy with other work disturbs much less. It prints figures and
ratios; it is not a test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads each framework may use (default 1: per-thread figures)",
    )
    parser.add_argument(
        "--tf-threads-per-op",
        type=int,
        default=1,
        help="threads one TensorFlow op may use, of --threads (default 1, as vae-prac "
        "train; give --threads for log p(x)'s large products)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed runs of each variant; medians are reported (default 5)",
    )
    parser.add_argument(
        "--steps", type=int, default=1000, help="training steps per timed run (default 1000)"
    )
    parser.add_argument(
        "--cases", default="abcd", help="which cases to run, any of a, b, c, d (default abcd)"
    )
    parser.add_argument(
        "--logpx-n",
        type=int,
        default=200,
        help="test images for the k=5000 log p(x) timing, a multiple of "
        "100, the batch log_px uses (default 200)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="300 steps, 3 repeats, 100 images for log p(x)"
    )
    parser.add_argument(
        "--whole-run",
        action="store_true",
        help="also time vae_prac.train itself between two evaluations (print_every "
        "steps with its evaluation, checkpoint and history; about 30,000 steps in "
        "cases b and c)",
    )
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.logpx_n = 300, 3, 100
    for name in ("threads", "tf_threads_per_op", "repeats", "steps", "logpx_n"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.logpx_n % 100:
        parser.error(
            f"--logpx-n must be a multiple of 100 (log p(x) runs in batches of "
            f"100, whose size sets the chunks of samples), got {args.logpx_n}"
        )
    if not args.cases or set(args.cases) - set("abcd"):
        parser.error(f"--cases takes letters from abcd, got {args.cases!r}")
    return args


ARGS = parse_args() if __name__ == "__main__" else None

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit(
        "This benchmark compares against PyTorch, which vae_prac does not install. "
        "Install it into this environment first: `pip install torch` (or, smaller, "
        "`pip install torch --index-url https://download.pytorch.org/whl/cpu`)."
    )

import tensorflow as tf  # noqa: E402

import vae_prac  # noqa: E402
import vae_prac.model  # noqa: E402,F401  (first: TensorFlow's start-up lines muted)


def limit_threads(n: int, tf_per_op: int):
    """Both frameworks on n threads; TensorFlow's must be set before it runs anything.

    TensorFlow runs n ops at once, each on ``tf_per_op`` threads (``vae-prac train``'s
    default is 1); PyTorch's eager loop runs one op at a time, on n threads.
    """
    tf.config.threading.set_intra_op_parallelism_threads(min(tf_per_op, n))
    tf.config.threading.set_inter_op_parallelism_threads(n)
    torch.set_num_threads(n)
    torch.set_num_interop_threads(n)


if ARGS is not None:
    limit_threads(ARGS.threads, ARGS.tf_threads_per_op)

import arithmetic  # noqa: E402  (benchmarks/arithmetic.py, beside this script)
import keras  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

from vae_prac import data, presets, training  # noqa: E402
from vae_prac.config import Config  # noqa: E402
from vae_prac.evaluate import log_px  # noqa: E402
from vae_prac.model import VAE  # noqa: E402

LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------
# The PyTorch side: the same networks, objective and optimizer.


class TorchVAE(torch.nn.Module):
    """vae_prac's networks: dense layers, softplus(a) + 1e-6 for sigma, Bernoulli logits."""

    def __init__(self, config: Config):
        super().__init__()
        act = torch.nn.Tanh if config.activation == "tanh" else torch.nn.ReLU

        def mlp(n_in, n_out):
            layers, width = [], n_in
            for _ in range(config.hidden_layers):
                layers += [torch.nn.Linear(width, config.hidden_size), act()]
                width = config.hidden_size
            return torch.nn.Sequential(*layers, torch.nn.Linear(width, n_out))

        self.latent_dim = config.latent_dim
        self.encoder = mlp(784, 2 * config.latent_dim)
        self.decoder = mlp(config.latent_dim, 784)

    def encode(self, x):
        out = self.encoder(x)
        mu, a = out[:, : self.latent_dim], out[:, self.latent_dim :]
        return mu, 1e-6 + F.softplus(a)

    def log_weights(self, x, k):
        """log p(x|z) + log p(z) - log q(z|x) for k samples z ~ q(z|x): [k, batch]."""
        mu, sigma = self.encode(x)
        eps = torch.randn(k, *mu.shape)
        z = mu + sigma * eps
        logits = self.decoder(z)
        log_px_z = -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none"
        ).sum(-1)
        log_pz = -0.5 * (z.square() + LOG_2PI).sum(-1)
        log_qz = (-0.5 * (eps.square() + LOG_2PI) - sigma.log()).sum(-1)
        return log_px_z + log_pz - log_qz

    def objective(self, x, config: Config):
        """What vae_prac's training maximizes, summed over the batch."""
        k = config.n_samples
        if config.objective == "iwae":
            log_w = self.log_weights(x, k)
            return (torch.logsumexp(log_w, 0) - math.log(k)).sum()
        mu, sigma = self.encode(x)
        eps = torch.randn(k, *mu.shape) if k > 1 else torch.randn_like(mu)
        logits = self.decoder(mu + sigma * eps)
        log_px_z = -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none"
        ).sum(-1)
        if k > 1:
            log_px_z = log_px_z.mean(0)
        kl = (0.5 * (mu.square() + sigma.square() - 1) - sigma.log()).sum(-1)
        return (log_px_z - kl).sum()


def copy_weights(tf_model: VAE, torch_model: TorchVAE):
    """vae_prac's weights into the PyTorch model (Keras kernels are [in, out])."""
    pairs = [(tf_model.encoder, torch_model.encoder), (tf_model.decoder, torch_model.decoder)]
    with torch.no_grad():
        for keras_net, torch_net in pairs:
            dense = [layer for layer in keras_net.layers if isinstance(layer, keras.layers.Dense)]
            linear = [m for m in torch_net if isinstance(m, torch.nn.Linear)]
            assert len(dense) == len(linear), (len(dense), len(linear))
            for d, lin in zip(dense, linear):
                lin.weight.copy_(torch.from_numpy(d.kernel.numpy().T))
                lin.bias.copy_(torch.from_numpy(d.bias.numpy()))


def check_same_network(tf_model, torch_model, x):
    """Both encoders give the same (mu, sigma) on x: the networks are the same."""
    mu_tf, sigma_tf = tf_model.encoder(x[..., None])
    with torch.no_grad():
        mu_pt, sigma_pt = torch_model.encode(torch.from_numpy(x.reshape(len(x), -1)))
    np.testing.assert_allclose(mu_pt.numpy(), mu_tf.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sigma_pt.numpy(), sigma_tf.numpy(), rtol=1e-4, atol=1e-5)


def torch_optimizer(config: Config, params):
    """The optimizer vae_prac's ``make_optimizer`` builds, in PyTorch's own version.

    The learning rate is held constant: over a few thousand steps Burda's schedule does
    not change it (vae_prac's schedule still costs its few ops in every TF step).
    """
    if config.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=config.learning_rate, betas=(0.9, 0.999), eps=config.epsilon or 1e-4
        )
    return torch.optim.RMSprop(
        params, lr=config.learning_rate, alpha=0.9, eps=config.epsilon or 1e-10
    )


class TorchBatches:
    """Batches as ``train()`` draws them: a new order each epoch, binarized per draw."""

    def __init__(self, images: np.ndarray, config: Config):
        self.images = torch.from_numpy(np.array(images.reshape(len(images), -1)))
        self.batch_size = config.batch_size
        self.stochastic = config.binarization == "stochastic"
        self.order = torch.randperm(len(self.images))
        self.position = 0

    def next(self):
        if self.position + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.images))
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        p = self.images[index].float() / 255.0
        if self.stochastic:
            return (torch.rand_like(p) < p).float()
        return (p > 0.5).float()


def torch_train_runner(torch_model, config, images):
    optimizer = torch_optimizer(config, torch_model.parameters())
    batches = TorchBatches(images, config)

    def run(n):
        value = 0.0
        for _ in range(n):
            x = batches.next()
            loss = -torch_model.objective(x, config)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value = loss
        return value.item()

    return run


def torch_log_px(torch_model, x, k, batch_size=100):
    """log p(x) per image with k importance samples, chunked as vae_prac's ``iw_bound``."""
    out = []
    with torch.no_grad():
        x = torch.from_numpy(x.reshape(len(x), -1))
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            chunk = max(1, min(k, 20_000 // len(xb)))
            total = torch.full([len(xb)], -math.inf)
            for s in range(0, k, chunk):
                log_w = torch_model.log_weights(xb, min(chunk, k - s))
                total = torch.logaddexp(total, torch.logsumexp(log_w, 0))
            out.append(total - math.log(k))
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------
# The TensorFlow side: vae_prac itself.


def tf_setup(config):
    keras.utils.set_random_seed(config.seed)
    model = VAE.from_config(config)
    optimizer = training.make_optimizer(config)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def tf_loop_runner(config, images):
    """``train()``'s compiled loop and data feeding, run n steps at a time."""
    model, optimizer = tf_setup(config)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
    run_steps = training._compile_train_loop(
        model, optimizer, step, None, config, train_images=images, start=0
    )

    def run(n):
        total, done = run_steps(tf.constant(n, tf.int64))
        return float(total)

    return model, run


def tf_step_runner(config, images):
    """``train_step_fn`` called from Python, on 50 batches drawn in advance."""
    model, optimizer = tf_setup(config)
    step = training.train_step_fn(model, optimizer, config)
    dataset = data.train_dataset(images, config.batch_size, config.binarization, config.seed)
    batches = [x for x, _ in zip(dataset, range(50))]
    counter = [0]

    def run(n):
        for _ in range(n):
            i = counter[0]
            value, _ = step(batches[i % len(batches)], tf.constant([config.seed, i], tf.int32))
            counter[0] += 1
        return float(value)

    return model, run


# --------------------------------------------------------------------------
# The machine's limit: arithmetic per step, and the fp32 matrix-multiply peak.


def matmul_peak(threads: int, size: int = 2048, repeats: int = 5) -> dict:
    """The fp32 matrix-multiply rate each framework reaches on large products, GFLOP/s.

    TensorFlow's from ``arithmetic.tf_matmul_peak`` (one product, or ``threads`` at
    once); PyTorch's the best of ``repeats`` products on its threads. The higher of the
    two is the peak the fractions use.
    """
    rates = {"TensorFlow": arithmetic.tf_matmul_peak(threads, size, repeats)}
    pa = torch.from_numpy(np.random.default_rng(0).standard_normal((size, size), dtype=np.float32))
    torch.mm(pa, pa)
    best = min(_seconds(lambda: float(torch.mm(pa, pa).sum())) for _ in range(repeats))
    rates["PyTorch"] = 2.0 * size**3 / best / 1e9
    rates["peak"] = max(rates.values())
    print(
        f"fp32 matrix-multiply peak on {threads} thread(s), {size} x {size}: "
        f"TensorFlow {rates['TensorFlow']:.0f} GFLOP/s, PyTorch {rates['PyTorch']:.0f} "
        f"GFLOP/s; the fractions below are of {rates['peak']:.0f}",
        flush=True,
    )
    return rates


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --------------------------------------------------------------------------
# Timing.


def timed(run, n):
    """(wall seconds, CPU seconds of this process) of run(n)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(n)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(runners: dict, n: int, repeats: int):
    """Median steps/s (wall and per CPU-second) of each runner, taking turns."""
    for run in runners.values():  # warm-up: tracing, first allocations
        run(max(n // 10, 20))
    walls = {name: [] for name in runners}
    cpus = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            wall, cpu = timed(run, n)
            walls[name].append(n / wall)
            cpus[name].append(n / cpu)
    return {
        name: {
            "steps_per_sec": statistics.median(walls[name]),
            "steps_per_cpu_sec": statistics.median(cpus[name]),
            "runs_steps_per_sec": walls[name],
            "runs_steps_per_cpu_sec": cpus[name],
        }
        for name in runners
    }


CASES = {
    "a": ("default Config(): latent 100, 2 x 200 ReLU, batch 64, RMSProp, thresholded", Config()),
    "b": (
        "Burda's network, batch 20, Adam, ELBO k=1 (burda-vae-k1)",
        presets.preset("burda-vae-k1"),
    ),
    "c": (
        "Burda's network, batch 20, Adam, IWAE k=5 (burda-iwae-k5)",
        presets.preset("burda-iwae-k5"),
    ),
}


def training_images(config):
    images, _ = data.load_mnist("train", config.data_dir)
    return images[: len(images) - config.n_validation] if config.n_validation else images


def whole_run(config, images):
    """``vae_prac.train`` itself in steady state: steps/s between two evaluations.

    The interval holds what a user's run does besides the steps: the loop's return to
    Python every ``log_every`` steps, the evaluation on ``n_eval`` digits, the history
    and the checkpoint written every ``print_every``.
    """
    marks = []

    def mark(model, iteration, history):
        marks.append((time.perf_counter(), time.process_time()))

    with tempfile.TemporaryDirectory() as logdir:
        run = config.replace(n_iterations=2 * config.print_every, logdir=logdir)
        training.train(run, hooks=[mark], progress=False, verbose=False, train_images=images)
    (wall0, cpu0), (wall1, cpu1) = marks
    return {
        "steps_per_sec": config.print_every / (wall1 - wall0),
        "steps_per_cpu_sec": config.print_every / (cpu1 - cpu0),
        "steps": config.print_every,
    }


def bench_training(case, args, peak):
    title, config = CASES[case]
    flops = arithmetic.step_flops(config)
    print(f"({case}) {title}: {flops / 1e6:.1f} MFLOP of matrix products a step", flush=True)
    images = training_images(config)
    tf_model, tf_loop = tf_loop_runner(config, images)
    _, tf_step = tf_step_runner(config, images)
    torch.manual_seed(config.seed)
    torch_model = TorchVAE(config)
    copy_weights(tf_model, torch_model)
    check_same_network(
        tf_model, torch_model, (images[:50].astype(np.float32) / 255.0 > 0.5).astype(np.float32)
    )
    results = interleaved(
        {
            "TF train() loop": tf_loop,
            "TF step alone": tf_step,
            "PyTorch eager": torch_train_runner(torch_model, config, images),
        },
        args.steps,
        args.repeats,
    )
    if args.whole_run:
        results["vae-prac train run"] = whole_run(config, images)
    base = results["PyTorch eager"]
    for name, r in results.items():
        r["fraction_of_peak"] = r["steps_per_sec"] * flops / (peak * 1e9)
        ratio = (
            ""
            if name == "PyTorch eager"
            else (
                f"   TF/PyTorch {r['steps_per_sec'] / base['steps_per_sec']:.2f}x wall, "
                f"{r['steps_per_cpu_sec'] / base['steps_per_cpu_sec']:.2f}x CPU"
            )
        )
        print(
            f"    {name:<18s} {r['steps_per_sec']:7.0f} steps/s "
            f"({r['steps_per_cpu_sec']:5.0f} per CPU-s), "
            f"{100 * r['fraction_of_peak']:4.1f}% of peak{ratio}",
            flush=True,
        )
    return {"title": title, "config": config.to_dict(), "mflop_per_step": flops / 1e6, **results}


def bench_log_px(args, peak):
    k, n = 5000, args.logpx_n
    config = presets.preset("burda-iwae-k5")
    print(
        f"(d) log p(x), k={k}, on {n} test images (Burda's network, batch 100), "
        f"extrapolated to 10,000",
        flush=True,
    )
    keras.utils.set_random_seed(config.seed)
    tf_model = VAE.from_config(config)
    torch_model = TorchVAE(config)
    copy_weights(tf_model, torch_model)
    x = data.eval_set(n, "stochastic", seed=0)
    log_px(tf_model, x[:10], k=10)  # trace once, untimed
    torch_log_px(torch_model, x[:10], 10)
    seconds = {"TF log_px": [], "PyTorch": []}
    estimates = {}
    for _ in range(max(1, min(args.repeats, 3))):
        wall = time.perf_counter()
        estimates["TF log_px"] = float(np.mean(log_px(tf_model, x, k=k)))
        seconds["TF log_px"].append(time.perf_counter() - wall)
        wall = time.perf_counter()
        estimates["PyTorch"] = float(np.mean(torch_log_px(torch_model, x, k)))
        seconds["PyTorch"].append(time.perf_counter() - wall)
    results = {}
    for name, s in seconds.items():
        full = statistics.median(s) * 10_000 / n
        results[name] = {
            "seconds": statistics.median(s),
            "runs_seconds": s,
            "n": n,
            "k": k,
            "seconds_for_10000": full,
            "mean_log_px": estimates[name],
        }
    ratio = results["PyTorch"]["seconds"] / results["TF log_px"]["seconds"]
    flops = arithmetic.log_px_flops(config, k, n)
    for name, r in results.items():
        r["fraction_of_peak"] = flops / r["seconds"] / (peak * 1e9)
        print(
            f"    {name:<18s} {r['seconds']:7.1f} s on {n}: about "
            f"{r['seconds_for_10000'] / 60:5.1f} min for 10,000, "
            f"{100 * r['fraction_of_peak']:4.1f}% of peak "
            f"(mean log p(x) of the untrained model {r['mean_log_px']:.2f})"
            + (f"   TF {ratio:.2f}x as fast" if name == "TF log_px" else ""),
            flush=True,
        )
    results["tf_speedup"] = ratio
    return results


def main(args):
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "threads": args.threads,
        "tf_threads_per_op": min(args.threads, args.tf_threads_per_op),
        "steps": args.steps,
        "repeats": args.repeats,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__,
            "keras": keras.__version__,
            "torch": torch.__version__,
            "vae_prac": vae_prac.__version__,
        },
    }
    print(
        f"vae_prac beside PyTorch, {report['date']}: {args.threads} thread(s) per "
        f"framework (TensorFlow: {args.threads} op(s) at once, each on "
        f"{report['tf_threads_per_op']}), medians of "
        f"{args.repeats} interleaved runs of {args.steps} steps; {os.cpu_count()} CPU "
        f"cores, load average {report['machine']['load_average'][0]:.1f}; "
        f"TF {tf.__version__}, PyTorch {torch.__version__}",
        flush=True,
    )
    report["matmul_gflops"] = matmul_peak(args.threads)
    peak = report["matmul_gflops"]["peak"]
    for case in "abc":
        if case in args.cases:
            report[case] = bench_training(case, args, peak)
    if "d" in args.cases:
        report["d"] = bench_log_px(args, peak)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"Wrote {args.json}")
    return report


if __name__ == "__main__":
    main(ARGS)
