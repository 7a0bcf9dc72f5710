"""Turn a finished training run into a shipped model: vae_prac/pretrained/NAME/.

    python tools/ship_pretrained.py runs/mnist-dynamic-iwae mnist-dynamic-iwae \
        --command "vae-prac train --preset mnist-dynamic-iwae --threads 1 --out runs/mnist-dynamic-iwae"

It restores the run's latest checkpoint and measures it with the standard protocol
(test ELBO, active units, log p(x) with k=5000 on all 10,000 dynamically binarized test
images, seed 0), then writes weights.npz, model.json (config, SHA-256, metrics),
history.csv and card.md. Re-running it replaces the folder's files.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import time

import numpy as np

import vae_prac
from vae_prac import data, pretrained, run_folder, training
from vae_prac.config import Config
from vae_prac.evaluate import active_units, evaluate_elbo, log_px
from vae_prac.presets import BURDA_PASSES, PRESETS

#: Burda et al. (2015), Table 1, MNIST, one stochastic layer: test NLL in nats.
PAPER = {
    ("elbo", 1): 86.76,
    ("elbo", 5): 86.47,
    ("iwae", 5): 85.54,
    ("elbo", 50): 86.35,
    ("iwae", 50): 84.78,
}


def training_seconds(history: run_folder.History, config: Config) -> float:
    """Time spent in training steps, from the examples/s of each history row."""
    seconds, last = 0.0, 0
    for it, rate in zip(history.iteration, history.examples_per_sec):
        seconds += (it - last) * config.batch_size / rate
        last = it
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a directory written by `vae-prac train`")
    parser.add_argument("name", help="the shipped model's name")
    parser.add_argument("--command", required=True, help="the command that trained it")
    parser.add_argument(
        "--machine", default="2 CPU cores (x86-64), no GPU", help="what it was trained on"
    )
    parser.add_argument("--notes", default="", help="a paragraph for the card")
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--n", type=int, default=10000)
    args = parser.parse_args(argv)
    import tensorflow as tf  # here: vae_prac imports it first, its start-up lines muted

    saved = run_folder.read_config(args.run)
    if saved is None:
        parser.error(f"{args.run} has no config.json: not a run written by `vae-prac train`")
    config = saved.replace(logdir=None, data_dir=None)
    model, iteration = training.restore(args.run, config)
    history = run_folder.read_history(args.run)

    x = data.eval_set(args.n, config.binarization, config.seed)
    t0 = time.perf_counter()
    test_elbo = evaluate_elbo(model, x, seed=0)
    units = active_units(model, x)
    values = log_px(model, x, k=args.k, seed=0, progress=True)
    eval_seconds = time.perf_counter() - t0
    nll = -float(np.mean(values))
    stderr = float(np.std(values, ddof=1) / np.sqrt(len(values)))

    folder = os.path.join(pretrained.HERE, args.name)
    os.makedirs(folder, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **pretrained.weight_arrays(model))
    raw = buffer.getvalue()
    with open(os.path.join(folder, "weights.npz"), "wb") as f:
        f.write(raw)
    shutil.copyfile(
        os.path.join(args.run, run_folder.HISTORY_CSV), os.path.join(folder, "history.csv")
    )
    import matplotlib

    matplotlib.use("Agg")
    from vae_prac import plotting

    fig = plotting.elbo_curve(
        history, objective=f"L_{config.n_samples}" if config.objective == "iwae" else "ELBO"
    )
    fig.savefig(os.path.join(folder, "curve.png"), dpi=80, bbox_inches="tight")
    train_s = training_seconds(history, config)
    preset = next((p for p, v in PRESETS.items() if args.name == p), None)
    metrics = {
        "test_nll": nll,
        "test_nll_stderr": stderr,
        "k": args.k,
        "n": args.n,
        "test_elbo": test_elbo,
        "active_units": units,
        "latent_dim": config.latent_dim,
        "evaluation_seconds": eval_seconds,
    }
    meta = {
        "name": args.name,
        "preset": preset,
        "iteration": iteration,
        "config": config.to_dict(),
        "weights_sha256": hashlib.sha256(raw).hexdigest(),
        "metrics": metrics,
        "training_seconds": train_s,
        "command": args.command,
        "machine": args.machine,
        "versions": {
            "vae_prac": vae_prac.__version__,
            "tensorflow": tf.__version__,
            "python": platform.python_version(),
        },
        "date": datetime.date.today().isoformat(),
    }
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    paper = PAPER.get((config.objective, config.n_samples))
    passes = iteration * config.batch_size / (60000 - config.n_validation)
    objective = (
        f"IWAE bound L_{config.n_samples}"
        if config.objective == "iwae"
        else f"ELBO ({config.n_samples} sample{'s' if config.n_samples > 1 else ''})"
    )
    # The paper's own protocol (batch 20, all 3,280 passes), or a shorter recipe.
    paper_protocol = config.batch_size == 20 and round(passes) == BURDA_PASSES
    stopped = ""
    if iteration < config.n_iterations:
        stopped = (
            f" Training was stopped at iteration {iteration:,} of the "
            f"{config.n_iterations:,} the schedule is laid out for, in its last "
            f"stage (learning rate {config.learning_rate * 0.1:g} from iteration "
            f"{int(config.n_iterations * 1093 / 3280):,} on), to fit the time "
            f"available."
        )
    card = f"""# {args.name}

A VAE on dynamically binarized MNIST, trained with the {objective}: Burda et al.'s (2015)
network and data, {"trained with the paper's own protocol" if paper_protocol else "trained for less time than the paper"} (see *Recipe*).

    import vae_prac.pretrained
    model = vae_prac.pretrained.load("{args.name}")

## Metrics (test set)

| measure | value |
| --- | ---: |
| negative log-likelihood, L_{args.k} on {args.n:,} test images (nats) | **{nll:.2f}** ± {stderr:.2f} |
| Burda et al. (2015), Table 1, same network and objective, 3,280 passes | {f"{paper:.2f}" if paper else "n/a"} |
| test ELBO (nats) | {test_elbo:.2f} |
| active units (Cov_x E_q[z_u] > 0.01) | {units} of {config.latent_dim} |

Test images are binarized once with seed {config.seed} (each pixel ~ Bernoulli(intensity));
± is one standard error over images. Reproduce with
`vae-prac evaluate --pretrained {args.name} --k {args.k} --n {args.n}`.

## Protocol

- Network: encoder and decoder each {config.hidden_layers} layers of {config.hidden_size}
  {config.activation} units; latent {config.latent_dim}; Bernoulli decoder; the encoder's
  standard deviation is softplus + 1e-6 (the paper's was exp).
- Data: MNIST's 60,000 training images less the last {config.n_validation}; each pixel
  ~ Bernoulli(intensity), redrawn every time a batch is drawn.
- Optimizer: {"Adam" if config.optimizer == "adam" else "RMSProp"} (beta1 0.9, beta2 0.999, epsilon {config.epsilon:g}),
  learning rate {config.learning_rate:g} in Burda et al.'s eight stages (lengths in the
  ratio 3^i, rate times 10^(-i/7)), {"over" if paper_protocol else "compressed into"} {config.n_iterations:,} iterations.

## Recipe {"(the paper's)" if paper_protocol else "(faster than the paper's)"}

- Batch {config.batch_size} (the paper: 20), {iteration:,} iterations: {passes:,.0f} passes over
  the training images (the paper: 3,280).{stopped}
- Command: `{args.command}`
- Machine: {args.machine}. Training steps took {train_s / 60:.0f} minutes
  ({train_s / 3600:.2f} h; the test ELBO every {config.print_every:,} iterations is extra).
- Versions: vae_prac {vae_prac.__version__}, TensorFlow {tf.__version__}, Python
  {platform.python_version()}; {meta["date"]}.
{args.notes}
## Files

- `weights.npz`: every weight, by network and Keras path. SHA-256
  `{meta["weights_sha256"]}`, checked by `load`.
- `model.json`: the Config, the metrics above, the SHA-256.
- `curve.png`: the training curve, drawn from `history.csv`.
- `history.csv`: the training curve (training objective per image every
  {config.log_every:,} iterations, test ELBO on {config.n_eval:,} test images every
  {config.print_every:,}).
"""
    with open(os.path.join(folder, "card.md"), "w") as f:
        f.write(card)
    print(card)


if __name__ == "__main__":
    sys.exit(main())
