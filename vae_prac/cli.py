"""The ``vae-prac`` command line: train, evaluate, sample, check the data, grade notebooks.

    vae-prac train --out runs/vae            # the original practical's run, outputs in runs/vae
    vae-prac evaluate --out runs/vae         # test ELBO and log p(x) of the saved model
    vae-prac sample --out runs/vae           # a PNG grid of digits drawn from the model
    vae-prac data                            # where MNIST is, and whether every file verifies
    vae-prac grade notebooks/student/*.ipynb # run notebooks and tabulate their checks

Exit status: 0 done, 1 training diverged (NaN or Inf loss), 2 bad input (a setting,
sizes that could never run, the data, a missing run or one with no readable checkpoint,
an --out another run is using), too little memory for the settings, or an output that
cannot be written (a path below a file, a read-only folder, a full disk), 130
interrupted with Ctrl-C.

TensorFlow (seconds to import) is imported only by the commands that need it, so
``vae-prac --help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import math
import os
import re
import shutil
import sys

import vae_prac
from vae_prac.config import (ACTIVATIONS, BINARIZATIONS, LR_SCHEDULES, OBJECTIVES,
                             OPTIMIZERS, Config)
from vae_prac.presets import PRESETS


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit status 2."""


# --------------------------------------------------------------------------
# Arguments.


def _int_at_least(minimum, what):
    """An argparse type: an integer >= minimum, or a message saying what was expected."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "an integer >= 0")

#: The most digits `sample` draws in one grid: 100 rows of 10, some 45 s of drawing on
#: two CPU cores (the time grows faster than the count). More: another --seed.
MAX_SAMPLES = 1000


def _sample_count(text):
    """An argparse type: how many digits `sample` draws, 1..MAX_SAMPLES."""
    value = _positive_int(text)
    if value > MAX_SAMPLES:
        raise argparse.ArgumentTypeError(
            f"expected at most {MAX_SAMPLES} digits in one grid, got {text!r}; for more, "
            f"run it again with another --seed")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (the command's usual error line)."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _seed(text):
    """An argparse type: a seed, by the library's rule (vae_prac.config.check_seed)."""
    from vae_prac.config import check_seed
    try:
        return check_seed(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**31), got {text!r}")


def _add_config_flags(parser):
    """One flag per Config field. Absent flags stay absent (argparse.SUPPRESS), so a
    resumed run keeps the settings it was started with unless a flag changes them."""
    defaults = Config()
    group = parser.add_argument_group("settings (vae_prac.Config; defaults are the original's)")

    def flag(name, type_, help_, **kw):
        field = name.lstrip("-").replace("-", "_")
        default = getattr(defaults, field)
        if default is not None:
            help_ += f" (default: {default})"
        group.add_argument(name, type=type_, default=argparse.SUPPRESS, dest=field,
                           help=help_, **kw)

    flag("--latent-dim", int, "dimensionality of z")
    flag("--hidden-size", int, "width of each hidden layer of the encoder and decoder")
    flag("--hidden-layers", int, "hidden layers in the encoder and in the decoder")
    flag("--batch-size", int, "minibatch size")
    flag("--n-samples", int, "samples of z ~ q_phi(z|x) per image in the ELBO")
    flag("--n-iterations", int, "train up to this iteration")
    flag("--print-every", int, "test ELBO, checkpoint and one printed line every this "
         "many (its examples/s is the speed over the last --log-every iterations)")
    flag("--log-every", int, "one history row (train ELBO, examples/s) every this many "
         "iterations")
    flag("--learning-rate", float, "RMSProp learning rate")
    flag("--binarization", str, "how grey levels become bits", choices=BINARIZATIONS)
    flag("--n-eval", int, "size of the fixed test set for the test ELBO")
    flag("--data-dir", str, "directory holding the four MNIST files (default: searched)")
    flag("--objective", str, "what training maximizes: the ELBO, or the IWAE bound L_k "
         "with k = --n-samples", choices=OBJECTIVES)
    flag("--activation", str, "hidden layers' nonlinearity", choices=ACTIVATIONS)
    flag("--optimizer", str, "the optimizer", choices=OPTIMIZERS)
    flag("--epsilon", float, "the optimizer's epsilon (default: 1e-10 RMSProp, 1e-4 Adam)")
    flag("--lr-schedule", str, "constant, or Burda et al.'s eight stages 3^i long, "
         "each 10^(1/7) times slower", choices=LR_SCHEDULES)
    flag("--n-validation", int, "last training images held out, never trained on")
    flag("--seed", int, "seed for weights, data order and noise")
    group.add_argument("--jit", dest="jit_compile", action=argparse.BooleanOptionalAction,
                       default=argparse.SUPPRESS,
                       help="compile the training step with XLA (default: on a GPU only)")


def _add_model_source(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--out", help="a directory written by `vae-prac train`")
    source.add_argument("--pretrained", metavar="NAME",
                        help="a model shipped with vae_prac (vae_prac.pretrained), e.g. "
                             "mnist-dynamic-vae or mnist-dynamic-iwae")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vae-prac",
        description="Variational auto-encoders on MNIST: train, evaluate and sample.")
    parser.add_argument("--version", action="version",
                        version=f"vae-prac {vae_prac.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a VAE (resumes if --out has a checkpoint)",
                       description="Train a VAE with the original practical's settings and "
                                   "write config, checkpoints, history and figures to --out. "
                                   "Running it again with the same --out resumes.")
    p.add_argument("--out", default=os.path.join("runs", "vae"),
                   help="output directory (default: runs/vae)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="named settings (vae_prac.presets): burda-* are Burda et al.'s "
                        "(2015) protocol exactly; mnist-dynamic-* the shipped models' "
                        "recipes. Flags given as well override the preset's values")
    p.add_argument("--threads", type=_positive_int,
                   help="CPU threads TensorFlow may use (default: all cores)")
    _add_config_flags(p)
    p.add_argument("--eval-k", type=_nonnegative_int, default=1000,
                   help="importance samples for the final log p(x) estimate; 0 skips it "
                        "(default: 1000)")
    p.add_argument("--eval-n", type=_positive_int, default=1000,
                   help="test images for the final log p(x) estimate (default: 1000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test ELBO, log p(x) and active units of a trained model",
                       description="Restore the latest checkpoint in --out (or a shipped "
                                   "model, --pretrained) and measure the test ELBO, an "
                                   "importance-sampled log p(x) and the active units. The "
                                   "defaults are the standard protocol: k=5000 on all "
                                   "10,000 test images.")
    _add_model_source(p)
    p.add_argument("--k", type=_positive_int, default=5000,
                   help="importance samples per image (default: 5000, the standard)")
    p.add_argument("--n", type=_positive_int, default=10000,
                   help="the first n test images (default: all 10000)")
    p.add_argument("--batch-size", type=_positive_int, default=100,
                   help="images per batch of the estimate (default: 100)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the noise")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", metavar="FILE", help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="a PNG grid of digits generated from the prior",
                       description="Draw z ~ p(z), decode, and save a grid of digits.")
    _add_model_source(p)
    p.add_argument("--n", type=_sample_count, default=100,
                   help=f"digits, at most {MAX_SAMPLES} (default: 100)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the noise")
    p.add_argument("--png", help="where to write the PNG (default: OUT/samples.png, "
                                 "OUT/means.png with --mean; NAME-samples.png or "
                                 "NAME-means.png with --pretrained)")
    p.add_argument("--mean", action="store_true",
                   help="show pixel probabilities instead of binary samples")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("data", help="where MNIST is and whether every file verifies")
    p.add_argument("--data-dir", help="look here first (default: searched)")
    p.add_argument("--download", action="store_true",
                   help="download missing files (verified) before checking")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("grade", help="run students' notebooks, each apart, and verify their checks",
                       description="Run each notebook in its own temporary folder and kernel, "
                                   "then run its checks again and tabulate what the grader "
                                   "verified (printed check lines do not count). See "
                                   "notebooks/README.md, 'For instructors'.")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help=".ipynb files")
    p.add_argument("--timeout", type=_positive_int, default=600,
                   help="seconds allowed for each whole notebook (default: 600)")
    p.add_argument("--memory-limit", type=_positive_int, default=8, metavar="GIB",
                   help="address-space limit of each notebook's kernel, in GiB, on Linux "
                        "(default: 8)")
    p.add_argument("--solutions", metavar="DIR",
                   help="the solution notebooks, which say what each notebook must pass "
                        "(default: notebooks/solutions of this repository)")
    p.add_argument("--csv", help="also write the grades to this CSV file")
    p.set_defaults(func=cmd_grade)
    return parser


def main(argv=None) -> int:
    """Entry point of ``vae-prac`` and ``python -m vae_prac``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _remove_debris(args)
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except Exception as e:
        if isinstance(e, UsageError) or _is_data_error(e) or _is_run_error(e):
            message = str(e)
        elif _is_filesystem_error(e):
            message = _filesystem_message(e, args)
        elif _is_out_of_memory(e):
            message = _memory_message(e, args)
        else:
            raise
        _remove_debris(args)
        _error(args.command, message)
        return 2


def _error(command, message):
    print(f"vae-prac {command}: error: {message}", file=sys.stderr)


def _is_data_error(e) -> bool:
    data = sys.modules.get("vae_prac.data")   # never imported yet: not a data error
    return data is not None and isinstance(e, data.DataError)


def _is_run_error(e) -> bool:
    """A folder another run holds, or whose checkpoints are all unreadable."""
    training = sys.modules.get("vae_prac.training")
    run_lock = sys.modules.get("vae_prac.run_lock")
    return ((training is not None and isinstance(e, training.UnreadableCheckpointError))
            or (run_lock is not None and isinstance(e, run_lock.RunLockedError)))


def _is_out_of_memory(e) -> bool:
    tf = sys.modules.get("tensorflow")
    return isinstance(e, MemoryError) or (
        tf is not None and isinstance(e, tf.errors.ResourceExhaustedError))


def _size(n_bytes) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:,.0f} {unit}" if unit == "bytes" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1024


def _memory_message(e, args) -> str:
    """One line for an allocation that failed: what it asked for, what the settings need."""
    from vae_prac.config import PIXELS, network_weights

    shape = re.search(r"shape ?\[([\d, ]+)\]", str(e))
    if shape:
        dims = [int(d) for d in shape.group(1).split(",") if d.strip()]
        failed = (f"allocating a tensor of shape [{', '.join(map(str, dims))}] "
                  f"({_size(4 * math.prod(dims))} as float32) failed")
    else:
        failed = "an allocation failed"
    message = f"out of memory: {failed}."
    config = getattr(args, "config", None)
    if config is not None:
        weights = network_weights(config.latent_dim, config.hidden_size, config.hidden_layers)
        # Weights, gradients and the optimizer's state: RMSProp keeps one value per
        # weight, Adam two.
        copies = 4 if config.optimizer == "adam" else 3
        widest = config.batch_size * config.n_samples * max(
            PIXELS, config.hidden_size, 2 * config.latent_dim)
        message += (f" These settings need about {_size(4 * weights * copies)} for the "
                    f"networks' {weights:,} weights with their gradients and the "
                    f"optimizer's state, and {_size(4 * widest)} for each activation "
                    f"of the widest layer in one step.")
    flags = {"train": "--hidden-size, --latent-dim, --batch-size or --n-samples",
             "evaluate": "--batch-size", "sample": "--n"}.get(args.command, "size")
    return message + f" Choose a smaller {flags}, or use a machine with more memory."


# --------------------------------------------------------------------------
# Files: outputs checked before the work, written whole or not at all.

# What a TensorFlow error says when the file system refused (it carries no errno).
_TF_FILESYSTEM_ERRORS = {
    "No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES,
    "Not a directory": errno.ENOTDIR, "File too large": errno.EFBIG,
}
_OUTPUT_FLAG = {"train": "--out", "evaluate": "--json", "sample": "--png",
                "data": "--data-dir", "grade": "--csv"}


def _tf_filesystem_error(e):
    """(reason, errno) of a TensorFlow error raised by the file system, else None."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(e, tf.errors.OpError):
        return None
    return next(((text, code) for text, code in _TF_FILESYSTEM_ERRORS.items()
                 if text in e.message), None)


def _is_filesystem_error(e) -> bool:
    # Anything else (a GPU out of memory, a bug) keeps its traceback.
    return (isinstance(e, OSError) and e.errno is not None) or bool(_tf_filesystem_error(e))


def _filesystem_message(e, args) -> str:
    """One line for an error of the file system (an OSError, or TensorFlow's): the path
    and what to do."""
    if isinstance(e, OSError):
        code, path, reason = e.errno, e.filename, e.strerror
    else:
        (reason, code), path = _tf_filesystem_error(e), None
    out = getattr(args, "out", None) if args.command in ("train", "sample") else None
    path = path or out or "the output"
    flag = _OUTPUT_FLAG.get(args.command, "the output path")
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        message = (f"no space left to write {path} ({reason}). Free some space on that "
                   f"disk, or give a {flag} on another disk.")
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        message = (f"cannot write {path} ({reason}). Give a {flag} in a folder you can "
                   f"write to, or make it writable.")
    elif code == errno.ENOTDIR:
        message = (f"cannot create {path}: a part of that path is a file, not a folder. "
                   f"Give a {flag} whose parent folders are folders.")
    else:
        message = f"{path}: {reason}. Check that path, or give another {flag}."
    if args.command == "train" and out and os.path.isdir(out):
        last = _checkpoint_iteration(out)
        message += (f" The run in {out} is intact up to its checkpoint at iteration "
                    f"{last}: run the same command again to resume from there."
                    if last is not None else " No checkpoint was written.")
    return message


def _check_output_path(path, flag, folder):
    """Refuse, before any work, an output path that cannot be written: one below a file,
    the wrong kind (a folder for a file or the reverse), or in a read-only folder."""
    full = os.path.abspath(path)
    if os.path.exists(full):
        if os.path.isdir(full) != folder:
            raise UsageError(f"{flag} {path} is {'a file' if folder else 'a folder'}; give "
                             f"{'a folder for the outputs' if folder else 'a file name'}.")
        # A file is replaced by renaming a new one beside it: its folder must be writable.
        where = full if folder else os.path.dirname(full)
    else:
        where = os.path.dirname(full)
        while not os.path.exists(where):
            where = os.path.dirname(where)
        if not os.path.isdir(where):
            raise UsageError(f"{flag} {path} is below {where}, which is a file, not a "
                             f"folder. Give a {flag} whose parent folders are folders.")
    if not os.access(where, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {where} is read-only (or not yours to write). "
                         f"Give a {flag} you can write to, or make it writable.")


def _write_whole(path, write):
    """Call ``write(temporary_path)``, then rename: ``path`` is whole, or untouched."""
    partial = path + ".partial"
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as e:
        if e.filename == partial:
            e.filename = path   # the file the user knows of
        raise
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _write_json(path, value):
    def write(target):
        with open(target, "w") as f:
            json.dump(value, f, indent=2)
    _write_whole(path, write)


def _save_png(fig, path):
    import matplotlib.pyplot as plt
    try:
        _write_whole(path, lambda target: fig.savefig(target, format="png", dpi=100,
                                                      bbox_inches="tight"))
    finally:
        plt.close(fig)


def _remove_debris(args):
    """After a failure: remove what a command left half-written, and an --out it created
    and left without a checkpoint (with the files it wrote there: nothing half-made is
    left). Only the files this program writes are touched."""
    out = getattr(args, "out", None) if args.command == "train" else None
    if not out or not os.path.isdir(out):
        return
    try:
        for name in os.listdir(out):
            if name.endswith(".partial"):
                os.remove(os.path.join(out, name))
        checkpoints = os.path.join(out, "checkpoints")
        _remove_checkpoint_debris(checkpoints)
        if getattr(args, "created_out", False) and not os.path.exists(
                os.path.join(checkpoints, "checkpoint")):
            for name in os.listdir(out):
                if name in _RUN_FILES or name.startswith("events.out.tfevents."):
                    os.remove(os.path.join(out, name))
            if os.path.isdir(checkpoints) and not os.listdir(checkpoints):
                os.rmdir(checkpoints)
            if not os.listdir(out):
                os.rmdir(out)
    except OSError:
        pass   # cleaning up is a courtesy; the error being reported matters more


#: The files `train` writes at the top of --out.
_RUN_FILES = {"config.json", "history.csv", "history.json", "posterior_prior.png",
              "prior_means.png", "elbo_curve.png", "metrics.json"}


def _remove_checkpoint_debris(folder):
    """A save that failed half-way leaves ``ckpt-N_temp/`` (TensorFlow writes there
    first), a temporary state file, or files of checkpoint N that the state file, which
    is written last, never listed: remove those; the saved checkpoints stay."""
    if not os.path.isdir(folder):
        return
    import tensorflow as tf
    try:
        state = tf.train.get_checkpoint_state(folder)
        latest = (int(re.search(r"ckpt-(\d+)$", state.model_checkpoint_path).group(1))
                  if state and state.model_checkpoint_path else -1)
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            # (not ckpt-N.damaged-*: unreadable checkpoints kept aside on purpose)
            number = re.match(r"ckpt-(\d+)(_temp|\.index$|\.data-)", name)
            if (name.startswith("checkpoint.tmp") or (number and (
                    number.group(2) == "_temp" or int(number.group(1)) > latest))):
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    except (OSError, ValueError, AttributeError, tf.errors.OpError):
        pass   # a courtesy: the saved checkpoints and the error being reported matter more


# --------------------------------------------------------------------------
# train


class _RunLock:
    """The lock of --out (vae_prac.run_lock) for the whole command: taken at once if --out
    exists, else by ``take()`` once it is created; released however the command ends."""

    def __init__(self, out):
        self.out, self.path = out, None

    def take(self):
        from vae_prac import run_lock
        if self.path is None:
            self.path = run_lock.acquire(self.out)

    def __enter__(self):
        if os.path.isdir(self.out):
            self.take()
        return self

    def __exit__(self, *exc):
        if self.path is not None:
            from vae_prac import run_lock
            run_lock.release(self.path)


def cmd_train(args) -> int:
    _check_output_path(args.out, "--out", folder=True)
    if args.threads:   # before anything else of TensorFlow's runs
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    with _RunLock(args.out) as lock:
        return _train(args, lock)


def _train(args, lock) -> int:
    out = args.out
    from vae_prac import data, training

    # Checkpoints that cannot be read are set aside now, so that every step below sees
    # the newest readable one (none readable: an error, exit 2).
    _, note = training.use_newest_readable_checkpoint(os.path.join(out, "checkpoints"))
    if note:
        print(note)
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
             if hasattr(args, f.name)}
    if args.preset:
        flags = {**PRESETS[args.preset], **flags}
    config, changed = _train_config(out, flags)
    args.config = config   # for the message of a failed allocation
    resume_from = _checkpoint_iteration(out)

    # Find and verify the data before anything is written to --out (load_mnist keeps
    # what it read, so training does not read it again).
    where = data.find_data_dir(config.data_dir)
    for split in data.MNIST_FILES:
        data.load_mnist(split, config.data_dir)

    if resume_from is not None and resume_from >= config.n_iterations:
        return _finished_run(out, resume_from, config, args)

    args.created_out = not os.path.exists(out)
    os.makedirs(out, exist_ok=True)
    lock.take()
    what = (f"an IWAE (objective L_{config.n_samples})" if config.objective == "iwae"
            else "a VAE")
    print(f"Training {what} (latent_dim={config.latent_dim}, hidden_size={config.hidden_size}) "
          f"to iteration {config.n_iterations} on MNIST from {where} "
          f"({config.binarization} binarization); writing to {out}")
    if changed:
        print("Resuming with changed settings: " + ", ".join(changed))

    try:
        result = training.train(config, progress=not args.no_progress, verbose=True)
    except training.NonFiniteLossError as e:
        _save_history(out, e.result.history, resume_from)
        _error("train", e)
        return 1
    finally:
        _remove_checkpoint_debris(os.path.join(out, "checkpoints"))   # e.g. after Ctrl-C

    history = _save_history(out, result.history, resume_from)
    _save_figures(out, result.model, history, config)
    if result.interrupted:
        last = _checkpoint_iteration(out)
        print(f"Interrupted at iteration {result.iteration}. History and figures are in "
              f"{out}; " + (f"the last checkpoint is at iteration {last}: run the same "
                            f"command to resume from there." if last is not None
                            else "no checkpoint was written yet."))
        return 130

    return _measure(out, result.model, result.iteration, config, args)


def _measure(out, model, iteration, config, args) -> int:
    """The final evaluation, into metrics.json; Ctrl-C during it keeps the trained run."""
    try:
        metrics = _final_evaluation(model, iteration, config, args)
    except KeyboardInterrupt:
        print(f"Interrupted during the final evaluation. The trained model (checkpoint at "
              f"iteration {_checkpoint_iteration(out)}), its history and figures are in "
              f"{out}: run the same command again to measure it.")
        return 130
    _write_json(os.path.join(out, "metrics.json"), metrics)
    print(_outputs_line(out))
    return 0


def _finished_run(out, iteration, config, args) -> int:
    """``train`` on a run already at --n-iterations: nothing to train. Print its saved
    figures, or measure them if the run stopped before its final evaluation."""
    from vae_prac import training

    print(f"The run in {out} is finished: its checkpoint is at iteration {iteration} and "
          f"--n-iterations is {config.n_iterations}, so there is nothing to train. Raise "
          f"--n-iterations to train further.")
    metrics_path = os.path.join(out, "metrics.json")
    try:
        with open(metrics_path) as f:
            metrics = json.load(f)
    except (OSError, ValueError):
        metrics = None
    if metrics and metrics.get("iteration") == iteration:
        print(f"Saved in {metrics_path}: test ELBO {metrics['test_elbo']:.2f} nats per "
              f"image ({metrics['n_eval']} test images, {metrics['binarization']} "
              f"binarization)")
        if "log_px" in metrics:
            _print_log_px(metrics["log_px"], metrics["log_px_stderr"], metrics["k"],
                          metrics["n"], metrics["binarization"])
        print(f"For another estimate: vae-prac evaluate --out {out} --k K --n N")
    else:
        # Training ended but its final figures were never written (e.g. stopped during
        # the log p(x) estimate): write them now, from the checkpoint.
        model, iteration = training.restore(out, config)
        history_path = os.path.join(out, "history.csv")
        history = (training.History.from_csv(history_path) if os.path.exists(history_path)
                   else training.History())
        _write_whole(os.path.join(out, "history.json"), history.to_json)
        _save_figures(out, model, history, config)
        return _measure(out, model, iteration, config, args)
    print(_outputs_line(out))
    return 0


def _outputs_line(out) -> str:
    """'Outputs in OUT: ...': what is really there, the usual files first."""
    first = ["config.json", "checkpoints", "history.csv", "history.json",
             "posterior_prior.png", "prior_means.png", "elbo_curve.png", "metrics.json"]
    from vae_prac.run_lock import LOCK_NAME

    names = [n for n in os.listdir(out) if n != LOCK_NAME]   # (held until the command ends)
    events = [n for n in names if n.startswith("events.out.tfevents.")]
    listed = ([n for n in first if n in names]
              + sorted(n for n in names if n not in first and n not in events))
    shown = [n + "/" if os.path.isdir(os.path.join(out, n)) else n for n in listed]
    if events:
        shown.append(f"events.out.tfevents.* (TensorBoard summaries, {len(events)} "
                     f"file{'s' if len(events) > 1 else ''})")
    return f"Outputs in {out}: {', '.join(shown)}"


def _train_config(out, flags):
    """The run's Config: the flags, on top of the saved config.json when resuming; and
    the settings a resumed run changes, as 'name old -> new' lines."""
    from vae_prac import training

    saved_path = os.path.join(out, "config.json")
    base = {}
    changed = []
    if os.path.exists(saved_path):
        try:
            with open(saved_path) as f:
                base = Config.from_dict(json.load(f)).to_dict()
        except (ValueError, TypeError) as e:
            raise UsageError(f"{saved_path} is not a valid vae_prac config ({e}). "
                             f"Use another --out, or delete {out} to start again.")
        clashes = [f"--{k.replace('_', '-')} {flags[k]} (saved: {base[k]})"
                   for k in training.NETWORK_SETTINGS if k in flags and flags[k] != base[k]]
        if clashes and _checkpoint_iteration(out) is not None:
            raise UsageError(
                f"{out} holds a run with other settings: {', '.join(clashes)}. The "
                f"checkpoint fixes the network sizes, so it cannot continue with these. "
                f"Drop those flags to resume it, or choose another --out for a new run.")
        if _checkpoint_iteration(out) is not None:
            changed = [f"{k} {base[k]} -> {flags[k]}" for k in flags
                       if k in base and flags[k] != base[k]
                       and k not in ("n_iterations", "logdir")]
    elif _checkpoint_iteration(out) is not None:
        raise UsageError(
            f"{out} has checkpoints but no config.json, so the network sizes they were "
            f"trained with are unknown. Use another --out, or delete {out} to start again.")
    try:
        return Config.from_dict({**base, **flags, "logdir": out}), changed
    except ValueError as e:
        raise UsageError(str(e))


def _checkpoint_iteration(out):
    """The iteration of the latest checkpoint in out/checkpoints, or None."""
    folder = os.path.join(out, "checkpoints")
    if not os.path.isdir(folder):
        return None   # (and TensorFlow need not be imported to say so)
    import tensorflow as tf
    latest = tf.train.latest_checkpoint(folder)
    if latest is None:
        return None
    return int(tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def _save_history(out, history, resume_from):
    """Write history.csv and history.json, continuing the saved history when resuming."""
    from vae_prac import training

    history = training.save_history_beside_checkpoints(out, history, resume_from or 0)
    _write_whole(os.path.join(out, "history.json"), history.to_json)
    return history


def _plotting():
    """vae_prac.plotting, drawing off screen: the CLI only writes PNG files."""
    import matplotlib
    matplotlib.use("Agg")
    from vae_prac import plotting
    return plotting


def _save_figures(out, model, history, config):
    from vae_prac import data

    plotting = _plotting()
    x = data.eval_set(1, config.binarization, config.seed, config.data_dir)
    figures = {
        "posterior_prior.png": plotting.posterior_prior(model, x, seed=(config.seed, 0)),
        # Decoder means p(x=1|z) (the figure's title says so); `vae-prac sample` draws
        # binary samples.
        "prior_means.png": plotting.prior_samples(model, 100, seed=(config.seed, 1),
                                                  mean=True),
        "elbo_curve.png": plotting.elbo_curve(
            history, objective=f"L_{config.n_samples}" if config.objective == "iwae"
            else "ELBO"),
    }
    for name, fig in figures.items():
        _save_png(fig, os.path.join(out, name))


def _final_evaluation(model, iteration, config, args) -> dict:
    from vae_prac import data
    from vae_prac.evaluate import evaluate_elbo

    eval_x = data.eval_set(config.n_eval, config.binarization, config.seed, config.data_dir)
    test_elbo = evaluate_elbo(model, eval_x, seed=config.seed)
    print(f"Iteration {iteration}: test ELBO {test_elbo:.2f} nats per image "
          f"({config.n_eval} test images, {config.binarization} binarization)")
    metrics = {"iteration": iteration, "binarization": config.binarization,
               "test_elbo": test_elbo, "n_eval": config.n_eval}
    if args.eval_k:
        mean, stderr = _log_px(model, config, args.eval_k, args.eval_n, seed=config.seed,
                               progress=not args.no_progress)
        _print_log_px(mean, stderr, args.eval_k, args.eval_n, config.binarization)
        metrics.update(log_px=mean, log_px_stderr=stderr, k=args.eval_k, n=args.eval_n)
    return metrics


def _log_px(model, config, k, n, seed, progress, batch_size=100):
    import numpy as np

    from vae_prac import data
    from vae_prac.evaluate import log_px

    if n > data.SPLIT_SIZES["test"]:
        raise UsageError(f"MNIST has {data.SPLIT_SIZES['test']} test images; got n={n}.")
    x = data.eval_set(n, config.binarization, config.seed, config.data_dir)
    values = log_px(model, x, k=k, batch_size=batch_size, seed=seed, progress=progress)
    stderr = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else math.nan
    return float(np.mean(values)), stderr


def _print_log_px(mean, stderr, k, n, binarization):
    print(f"log p(x) {mean:.2f} ± {stderr:.2f} nats per image (importance-sampled, k={k}, "
          f"first {n} test images, {binarization} binarization; ± one standard error)")


# --------------------------------------------------------------------------
# evaluate, sample


def _restore(out):
    """(model, iteration, config) of the run in ``out``, or a UsageError saying why not."""
    from vae_prac import training

    config_path = os.path.join(out, "config.json")
    if not os.path.isdir(out):
        raise UsageError(f"{out} does not exist. Train first: vae-prac train --out {out}")
    if not os.path.exists(config_path):
        raise UsageError(f"{out} has no config.json, so it is not a run written by "
                         f"`vae-prac train`. Train first: vae-prac train --out {out}")
    try:
        with open(config_path) as f:
            config = Config.from_dict(json.load(f))
        model, iteration = training.restore(out, config)
    except FileNotFoundError as e:
        raise UsageError(str(e))
    except (ValueError, TypeError) as e:
        raise UsageError(f"{config_path} is not a valid vae_prac config ({e}).")
    return model, iteration, config


def _load_model(args):
    """(model, iteration, config, description) from --out or --pretrained."""
    if args.pretrained:
        from vae_prac import pretrained
        try:
            model = pretrained.load(args.pretrained)
            meta = pretrained.info(args.pretrained)
        except pretrained.PretrainedError as e:
            raise UsageError(str(e))
        config = Config.from_dict(meta["config"])
        return model, meta["iteration"], config, f"shipped model {args.pretrained}"
    model, iteration, config = _restore(args.out)
    args.config = config   # for the message of a failed allocation
    return model, iteration, config, f"model in {args.out}"


def cmd_evaluate(args) -> int:
    from vae_prac import data
    from vae_prac.evaluate import active_units, evaluate_elbo

    if args.json:   # checked now, not after minutes of evaluation
        _check_output_path(args.json, "--json", folder=False)
    model, iteration, config, what = _load_model(args)
    n = args.n
    if n > data.SPLIT_SIZES["test"]:
        raise UsageError(f"MNIST has {data.SPLIT_SIZES['test']} test images; got --n {n}.")
    x = data.eval_set(n, config.binarization, config.seed, config.data_dir)
    print(f"The {what} at iteration {iteration} "
          f"(latent_dim={config.latent_dim}, hidden_size={config.hidden_size}, "
          f"{config.activation}); first {n} test images, {config.binarization} binarization")
    test_elbo = evaluate_elbo(model, x, seed=args.seed)
    print(f"test ELBO {test_elbo:.2f} nats per image")
    units = active_units(model, x)
    print(f"active units {units} of {config.latent_dim} (variance over the images of the "
          f"posterior mean above 0.01, Burda et al.'s criterion)")
    mean, stderr = _log_px(model, config, args.k, n, seed=args.seed,
                           progress=not args.no_progress, batch_size=args.batch_size)
    _print_log_px(mean, stderr, args.k, n, config.binarization)
    if args.json:
        _write_json(args.json, {"iteration": iteration, "n": n, "k": args.k,
                                "seed": args.seed, "binarization": config.binarization,
                                "test_elbo": test_elbo, "log_px": mean,
                                "log_px_stderr": stderr, "nll": -mean,
                                "active_units": units})
    return 0


def cmd_sample(args) -> int:
    kind = "means" if args.mean else "samples"
    default = (f"{args.pretrained}-{kind}.png" if args.pretrained
               else os.path.join(args.out, f"{kind}.png"))
    path = args.png or default
    _check_output_path(path, "--png", folder=False)
    model, iteration, _, what = _load_model(args)
    plotting = _plotting()
    fig = plotting.prior_samples(model, args.n, ncols=min(10, args.n),
                                 seed=(args.seed, 0), mean=args.mean)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    _save_png(fig, path)
    print(f"Wrote {args.n} prior {'means' if args.mean else 'samples'} of the {what} at "
          f"iteration {iteration} to {path}")
    return 0


# --------------------------------------------------------------------------
# data, grade


def cmd_data(args) -> int:
    from vae_prac import data

    if args.download:
        data.find_data_dir(args.data_dir, download=True)
    try:
        print(data.describe_data(args.data_dir))
    except data.DataNotFoundError as e:
        if args.data_dir is None and os.environ.get("VAE_PRAC_DATA_DIR"):
            raise   # its message says what to do with the variable
        raise data.DataNotFoundError(
            f"{e}\nFrom the command line: `vae-prac data --download` fetches and verifies "
            f"the files.") from None
    # Loading verifies every file again and raises a DataError (exit 2) on a bad one.
    for split in data.MNIST_FILES:
        data.load_mnist(split, args.data_dir, download=False)
    return 0


def cmd_grade(args) -> int:
    try:   # imported here: it pulls in the notebook machinery, a [dev] dependency
        from vae_prac import grading
    except ImportError as e:
        raise UsageError(f"grading needs the notebook tools ({e.name} is missing): "
                         f"pip install 'vae_prac[dev]'")

    missing = [p for p in args.notebooks if not os.path.isfile(p)]
    if missing:
        raise UsageError(f"no such notebook: {', '.join(missing)}")
    solutions = args.solutions or grading.SOLUTIONS_DIR
    if not os.path.isdir(solutions):
        raise UsageError(f"no solution notebooks at {solutions}: grading reads what each "
                         f"notebook must pass from them. Grade from a clone of the "
                         f"repository, or pass --solutions DIR.")
    grades = grading.grade_notebooks(args.notebooks, timeout=args.timeout, solutions=solutions,
                                     memory_limit_gib=args.memory_limit)
    print(grading.format_table(grades))
    if args.csv:
        grading.write_csv(grades, args.csv)
        print(f"Wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
