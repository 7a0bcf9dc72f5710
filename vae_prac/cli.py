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
import math
import os
import re
import sys
import typing

import vae_prac
from vae_prac.config import CHOICES, Config, field_docs
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
            f"run it again with another --seed"
        )
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


#: Config's fields whose flag is not --FIELD-NAME. (logdir has none: it is train's --out.)
_FLAGS = {"jit_compile": "--jit"}


def config_flag(name: str) -> str:
    """The command-line flag of the Config field ``name``: ``--learning-rate``."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _add_config_flags(parser):
    """One flag per Config field, made from the field itself so that nothing drifts: its
    type, its choices (config.CHOICES), its default, and as help its entry in Config's
    docstring. Absent flags stay absent (argparse.SUPPRESS), so a resumed run keeps the
    settings it was started with unless a flag changes them."""
    defaults = Config()
    docs = field_docs()
    types = typing.get_type_hints(Config)
    group = parser.add_argument_group("settings (vae_prac.Config; defaults are the original's)")
    for field in dataclasses.fields(Config):
        name = field.name
        if name == "logdir":
            continue
        help_ = docs[name]
        if getattr(defaults, name) is not None:
            help_ += f" (default: {getattr(defaults, name)})"
        kind = types[name]
        if typing.get_origin(kind) is typing.Union:  # Optional[X]: None is the default
            (kind,) = [t for t in typing.get_args(kind) if t is not type(None)]
        common = dict(dest=name, default=argparse.SUPPRESS, help=help_.replace("%", "%%"))
        if kind is bool:
            group.add_argument(config_flag(name), action=argparse.BooleanOptionalAction, **common)
        else:
            group.add_argument(config_flag(name), type=kind, choices=CHOICES.get(name), **common)


def _add_model_source(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--out", help="a directory written by `vae-prac train`")
    source.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a model shipped with vae_prac (vae_prac.pretrained), e.g. "
        "mnist-dynamic-vae or mnist-dynamic-iwae",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vae-prac",
        description="Variational auto-encoders on MNIST: train, evaluate and sample.",
    )
    parser.add_argument("--version", action="version", version=f"vae-prac {vae_prac.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train a VAE (resumes if --out has a checkpoint)",
        description="Train a VAE with the original practical's settings and "
        "write config, checkpoints, history and figures to --out. "
        "Running it again with the same --out resumes.",
    )
    p.add_argument(
        "--out", default=os.path.join("runs", "vae"), help="output directory (default: runs/vae)"
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="named settings (vae_prac.presets): burda-* are Burda et al.'s "
        "(2015) protocol exactly; mnist-dynamic-* the shipped models' "
        "recipes. Flags given as well override the preset's values",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads TensorFlow may use: ops run at once (default: all cores)",
    )
    p.add_argument(
        "--threads-per-op",
        type=_positive_int,
        help="threads one op may split its work over (default: 1; a small network's step "
        "runs faster with each op on one thread and several ops at once)",
    )
    _add_config_flags(p)
    p.add_argument(
        "--eval-k",
        type=_nonnegative_int,
        default=1000,
        help="importance samples for the final log p(x) estimate; 0 skips it (default: 1000)",
    )
    p.add_argument(
        "--eval-n",
        type=_positive_int,
        default=1000,
        help="test images for the final log p(x) estimate (default: 1000)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="test ELBO, log p(x) and active units of a trained model",
        description="Restore the latest checkpoint in --out (or a shipped "
        "model, --pretrained) and measure the test ELBO, an "
        "importance-sampled log p(x) and the active units. The "
        "defaults are the standard protocol: k=5000 on all "
        "10,000 test images.",
    )
    _add_model_source(p)
    p.add_argument(
        "--k",
        type=_positive_int,
        default=5000,
        help="importance samples per image (default: 5000, the standard)",
    )
    p.add_argument(
        "--n",
        type=_positive_int,
        default=10000,
        help="the first n test images (default: all 10000)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=100,
        help="images per batch of the estimate (default: 100)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the noise")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", metavar="FILE", help="also write the figures to this JSON file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "sample",
        help="a PNG grid of digits generated from the prior",
        description="Draw z ~ p(z), decode, and save a grid of digits.",
    )
    _add_model_source(p)
    p.add_argument(
        "--n", type=_sample_count, default=100, help=f"digits, at most {MAX_SAMPLES} (default: 100)"
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the noise")
    p.add_argument(
        "--png",
        help="where to write the PNG (default: OUT/samples.png, "
        "OUT/means.png with --mean; NAME-samples.png or "
        "NAME-means.png with --pretrained)",
    )
    p.add_argument(
        "--mean", action="store_true", help="show pixel probabilities instead of binary samples"
    )
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("data", help="where MNIST is and whether every file verifies")
    p.add_argument("--data-dir", help="look here first (default: searched)")
    p.add_argument(
        "--download", action="store_true", help="download missing files (verified) before checking"
    )
    p.set_defaults(func=cmd_data)

    p = sub.add_parser(
        "grade",
        help="grade students' notebooks, each in a sandbox, and verify their checks",
        description="Run each notebook in its own sandbox (bubblewrap), then verify every "
        "check in a second sandboxed process that loads only the student's definitions, and "
        "tabulate what the grader verified (printed check lines do not count). See "
        "notebooks/README.md, 'For instructors'.",
    )
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help=".ipynb files")
    p.add_argument(
        "--timeout",
        type=_positive_int,
        default=600,
        help="seconds allowed for each whole notebook (default: 600)",
    )
    p.add_argument(
        "--memory-limit",
        type=_positive_int,
        default=8,
        metavar="GIB",
        help="memory limit of each notebook's whole process tree, in GiB (default: 8)",
    )
    p.add_argument(
        "--solutions",
        metavar="DIR",
        help="the solution notebooks, which say what each notebook must pass "
        "(default: notebooks/solutions of this repository)",
    )
    p.add_argument(
        "--csv",
        help="also write the grades to this CSV file, each submission's rows as it finishes",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="with --csv: keep the grades the CSV already holds and grade only the others",
    )
    p.add_argument("--html", metavar="FILE", help="also write a report page (self-contained HTML)")
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="grade N submissions at once (default: the number of cores)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on this Dask distributed scheduler's workers (tcp://HOST:PORT), each "
        "with this repository, its environment and bubblewrap",
    )
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run students' code without the sandbox, as you: only for notebooks you trust "
        "(every row of the report says so)",
    )
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
    files = sys.modules.get("vae_prac.mnist_files")  # never imported: not a data error
    return files is not None and isinstance(e, files.DataError)


def _is_run_error(e) -> bool:
    """A run folder that cannot be used as asked (vae_prac.run_folder: e.g. no readable
    checkpoint), or one that another run holds."""
    run_folder = sys.modules.get("vae_prac.run_folder")
    run_lock = sys.modules.get("vae_prac.run_lock")
    return (run_folder is not None and isinstance(e, run_folder.RunFolderError)) or (
        run_lock is not None and isinstance(e, run_lock.RunLockedError)
    )


def _is_out_of_memory(e) -> bool:
    tf = sys.modules.get("tensorflow")
    return isinstance(e, MemoryError) or (
        tf is not None and isinstance(e, tf.errors.ResourceExhaustedError)
    )


def _size(n_bytes) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n_bytes < 1024:
            return f"{n_bytes:,.0f} {unit}" if unit == "bytes" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:,.1f} GiB"


def _memory_message(e, args) -> str:
    """One line for an allocation that failed: what it asked for, what the settings need."""
    from vae_prac.config import PIXELS, network_weights

    shape = re.search(r"shape ?\[([\d, ]+)\]", str(e))
    if shape:
        dims = [int(d) for d in shape.group(1).split(",") if d.strip()]
        failed = (
            f"allocating a tensor of shape [{', '.join(map(str, dims))}] "
            f"({_size(4 * math.prod(dims))} as float32) failed"
        )
    else:
        failed = "an allocation failed"
    message = f"out of memory: {failed}."
    config = getattr(args, "config", None)
    if config is not None:
        weights = network_weights(config.latent_dim, config.hidden_size, config.hidden_layers)
        # Weights, gradients and the optimizer's state: RMSProp keeps one value per
        # weight, Adam two.
        copies = 4 if config.optimizer == "adam" else 3
        widest = (
            config.batch_size
            * config.n_samples
            * max(PIXELS, config.hidden_size, 2 * config.latent_dim)
        )
        message += (
            f" These settings need about {_size(4 * weights * copies)} for the "
            f"networks' {weights:,} weights with their gradients and the "
            f"optimizer's state, and {_size(4 * widest)} for each activation "
            f"of the widest layer in one step."
        )
    flags = {
        "train": "--hidden-size, --latent-dim, --batch-size or --n-samples",
        "evaluate": "--batch-size",
        "sample": "--n",
    }.get(args.command, "size")
    return message + f" Choose a smaller {flags}, or use a machine with more memory."


# --------------------------------------------------------------------------
# Files: outputs checked before the work, written whole or not at all.

# What a TensorFlow error says when the file system refused (it carries no errno).
_TF_FILESYSTEM_ERRORS = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
    "Permission denied": errno.EACCES,
    "Not a directory": errno.ENOTDIR,
    "File too large": errno.EFBIG,
}
_OUTPUT_FLAG = {
    "train": "--out",
    "evaluate": "--json",
    "sample": "--png",
    "data": "--data-dir",
    "grade": "--csv",
}


def _tf_filesystem_error(e):
    """(reason, errno) of a TensorFlow error raised by the file system, else None."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(e, tf.errors.OpError):
        return None
    return next(
        ((text, code) for text, code in _TF_FILESYSTEM_ERRORS.items() if text in e.message), None
    )


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
        message = (
            f"no space left to write {path} ({reason}). Free some space on that "
            f"disk, or give a {flag} on another disk."
        )
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        message = (
            f"cannot write {path} ({reason}). Give a {flag} in a folder you can "
            f"write to, or make it writable."
        )
    elif code == errno.ENOTDIR:
        message = (
            f"cannot create {path}: a part of that path is a file, not a folder. "
            f"Give a {flag} whose parent folders are folders."
        )
    else:
        message = f"{path}: {reason}. Check that path, or give another {flag}."
    if args.command == "train" and out and os.path.isdir(out):
        from vae_prac import run_folder

        last = run_folder.checkpoint_iteration(out)
        message += (
            f" The run in {out} is intact up to its checkpoint at iteration "
            f"{last}: run the same command again to resume from there."
            if last is not None
            else " No checkpoint was written."
        )
    return message


def _check_output_path(path, flag, folder):
    """Refuse, before any work, an output path that cannot be written: one below a file,
    the wrong kind (a folder for a file or the reverse), or in a read-only folder."""
    full = os.path.abspath(path)
    if os.path.exists(full):
        if os.path.isdir(full) != folder:
            raise UsageError(
                f"{flag} {path} is {'a file' if folder else 'a folder'}; give "
                f"{'a folder for the outputs' if folder else 'a file name'}."
            )
        # A file is replaced by renaming a new one beside it: its folder must be writable.
        where = full if folder else os.path.dirname(full)
    else:
        where = os.path.dirname(full)
        while not os.path.exists(where):
            where = os.path.dirname(where)
        if not os.path.isdir(where):
            raise UsageError(
                f"{flag} {path} is below {where}, which is a file, not a "
                f"folder. Give a {flag} whose parent folders are folders."
            )
    if not os.access(where, os.W_OK | os.X_OK):
        raise UsageError(
            f"{flag} {path}: {where} is read-only (or not yours to write). "
            f"Give a {flag} you can write to, or make it writable."
        )


def _save_png(fig, path):
    import matplotlib.pyplot as plt

    from vae_prac import run_folder

    try:
        run_folder.save_figure(fig, path)
    finally:
        plt.close(fig)


def _remove_debris(args):
    """After a failure of `train`: what it left half-written in --out, and --out itself
    if this command created it and wrote no checkpoint (run_folder.remove_debris)."""
    out = getattr(args, "out", None) if args.command == "train" else None
    if out and os.path.isdir(out):
        from vae_prac import run_folder

        run_folder.remove_debris(out, created=getattr(args, "created_out", False))


# --------------------------------------------------------------------------
# train


def _set_threads(threads, per_op):
    """TensorFlow's threads: ``threads`` ops at once, each on ``per_op`` threads (default 1).

    Burda et al.'s step at batch 20 took 0.98 ms with one thread per op and two ops at
    once, 1.25 ms with two and two, on 2 cores (benchmarks/profile_step.py): its ops are
    too small to split well. Only a process whose TensorFlow has not run yet can change
    them; there (cli.main called in a notebook) the default is left as it is.
    """
    import vae_prac.training  # noqa: F401  (first: TensorFlow's start-up lines muted)

    # isort: split
    import tensorflow as tf

    try:
        each = per_op or 1
        tf.config.threading.set_intra_op_parallelism_threads(min(each, threads or each))
        if threads:
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        if threads or per_op:
            raise UsageError(
                "--threads and --threads-per-op must be set before TensorFlow runs: "
                "TensorFlow has already run in this process. Give them to a new "
                "`vae-prac train` command."
            ) from None


def cmd_train(args) -> int:
    from vae_prac import run_lock

    _check_output_path(args.out, "--out", folder=True)
    with run_lock.FolderLock(args.out) as lock:  # a second run on --out stops here, at once
        _set_threads(args.threads, args.threads_per_op)
        return _train(args, lock)


def _train(args, lock) -> int:
    out = args.out
    from vae_prac import data, mnist_files, run_folder, training

    # Checkpoints that cannot be read are set aside now, so that every step below sees
    # the newest readable one (none readable: an error, exit 2).
    _, note = run_folder.use_newest_readable_checkpoint(run_folder.checkpoint_dir(out))
    if note:
        print(note)
    flags = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)
    }
    if args.preset:
        flags = {**PRESETS[args.preset], **flags}
    config, changed = _train_config(out, flags)
    args.config = config  # for the message of a failed allocation
    resume_from = run_folder.checkpoint_iteration(out)

    # Find and verify the data before anything is written to --out (load_mnist keeps
    # what it read, so training does not read it again).
    where = mnist_files.find_data_dir(config.data_dir)
    for split in data.MNIST_FILES:
        data.load_mnist(split, config.data_dir)

    if resume_from is not None and resume_from >= config.n_iterations:
        return _finished_run(out, resume_from, config, args)

    args.created_out = not os.path.exists(out)
    os.makedirs(out, exist_ok=True)
    lock.take()
    what = f"an IWAE (objective L_{config.n_samples})" if config.objective == "iwae" else "a VAE"
    print(
        f"Training {what} (latent_dim={config.latent_dim}, hidden_size={config.hidden_size}) "
        f"to iteration {config.n_iterations} on MNIST from {where} "
        f"({config.binarization} binarization); writing to {out}"
    )
    if changed:
        print("Resuming with changed settings: " + ", ".join(changed))

    try:
        result = training.train(config, progress=not args.no_progress, verbose=True)
    except training.NonFiniteLossError as e:
        _save_history(out, e.result.history, resume_from)
        _error("train", e)
        return 1
    finally:
        run_folder.remove_checkpoint_debris(out)  # e.g. after Ctrl-C

    history = _save_history(out, result.history, resume_from)
    _save_figures(out, result.model, history, config)
    if result.interrupted:
        last = run_folder.checkpoint_iteration(out)
        print(
            f"Interrupted at iteration {result.iteration}. History and figures are in "
            f"{out}; "
            + (
                f"the last checkpoint is at iteration {last}: run the same "
                f"command to resume from there."
                if last is not None
                else "no checkpoint was written yet."
            )
        )
        return 130

    return _measure(out, result.model, result.iteration, config, args)


def _measure(out, model, iteration, config, args) -> int:
    """The final evaluation, into metrics.json; Ctrl-C during it keeps the trained run."""
    from vae_prac import run_folder

    try:
        metrics = _final_evaluation(model, iteration, config, args)
    except KeyboardInterrupt:
        print(
            f"Interrupted during the final evaluation. The trained model (checkpoint at "
            f"iteration {run_folder.checkpoint_iteration(out)}), its history and "
            f"figures are in {out}: run the same command again to measure it."
        )
        return 130
    run_folder.write_metrics(out, metrics)
    print(_outputs_line(out))
    return 0


def _finished_run(out, iteration, config, args) -> int:
    """``train`` on a run already at --n-iterations: nothing to train. Print its saved
    figures, or measure them if the run stopped before its final evaluation."""
    from vae_prac import run_folder, training

    print(
        f"The run in {out} is finished: its checkpoint is at iteration {iteration} and "
        f"--n-iterations is {config.n_iterations}, so there is nothing to train. Raise "
        f"--n-iterations to train further."
    )
    metrics = run_folder.read_metrics(out)
    if metrics and metrics.get("iteration") == iteration:
        print(
            f"Saved in {os.path.join(out, run_folder.METRICS)}: test ELBO "
            f"{metrics['test_elbo']:.2f} nats per image ({metrics['n_eval']} test "
            f"images, {metrics['binarization']} binarization)"
        )
        if "log_px" in metrics:
            _print_log_px(
                metrics["log_px"],
                metrics["log_px_stderr"],
                metrics["k"],
                metrics["n"],
                metrics["binarization"],
            )
        print(f"For another estimate: vae-prac evaluate --out {out} --k K --n N")
    else:
        # Training ended but its final figures were never written (e.g. stopped during
        # the log p(x) estimate): write them now, from the checkpoint.
        model, iteration = training.restore(out, config)
        history = run_folder.read_history(out)
        run_folder.save_history_json(out, history)
        _save_figures(out, model, history, config)
        return _measure(out, model, iteration, config, args)
    print(_outputs_line(out))
    return 0


def _outputs_line(out) -> str:
    """'Outputs in OUT: ...': what is really there, the usual files first."""
    from vae_prac import run_folder
    from vae_prac.run_lock import LOCK_NAME

    first = [
        run_folder.CONFIG,
        run_folder.CHECKPOINTS,
        *(n for n in run_folder.RUN_FILES if n != run_folder.CONFIG),
    ]
    names = [n for n in os.listdir(out) if n != LOCK_NAME]  # (held until the command ends)
    events = [n for n in names if n.startswith(run_folder.EVENTS_PREFIX)]
    listed = [n for n in first if n in names] + sorted(
        n for n in names if n not in first and n not in events
    )
    shown = [n + "/" if os.path.isdir(os.path.join(out, n)) else n for n in listed]
    if events:
        shown.append(
            f"events.out.tfevents.* (TensorBoard summaries, {len(events)} "
            f"file{'s' if len(events) > 1 else ''})"
        )
    return f"Outputs in {out}: {', '.join(shown)}"


def _train_config(out, flags):
    """The run's Config: the flags, on top of the saved config.json when resuming; and
    the settings a resumed run changes, as 'name old -> new' lines."""
    from vae_prac import run_folder

    saved = _saved_config(out, f" Use another --out, or delete {out} to start again.")
    resuming = run_folder.checkpoint_iteration(out) is not None
    if saved is None and resuming:
        raise UsageError(
            f"{out} has checkpoints but no config.json, so the network sizes they were "
            f"trained with are unknown. Use another --out, or delete {out} to start again."
        )
    base = saved.to_dict() if saved else {}
    try:
        config = Config.from_dict({**base, **flags, "logdir": out})
    except ValueError as e:
        raise UsageError(str(e))
    try:
        run_folder.check_resume(out, config)
    except run_folder.NetworkSizesChangedError as e:
        clashes = [f"{config_flag(name)} {new} (saved: {old})" for name, old, new in e.changes]
        raise UsageError(
            f"{out} holds a run with other settings: {', '.join(clashes)}. The "
            f"checkpoint fixes the network sizes, so it cannot continue with these. "
            f"Drop those flags to resume it, or choose another --out for a new run."
        )
    changed = [
        f"{k} {base[k]} -> {flags[k]}"
        for k in flags
        if resuming and k in base and flags[k] != base[k] and k not in ("n_iterations", "logdir")
    ]
    return config, changed


def _saved_config(out, fix=""):
    """The Config saved in ``out`` or None; a damaged one is a UsageError, ending ``fix``."""
    from vae_prac import run_folder

    try:
        return run_folder.read_config(out)
    except run_folder.BadConfigError as e:
        raise UsageError(f"{e.path} is not a valid vae_prac config ({e.reason}).{fix}")


def _save_history(out, history, resume_from):
    """Write history.csv and history.json, continuing the saved history when resuming."""
    from vae_prac import run_folder

    history = run_folder.save_history(out, history, resume_from or 0)
    run_folder.save_history_json(out, history)
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
        "prior_means.png": plotting.prior_samples(model, 100, seed=(config.seed, 1), mean=True),
        "elbo_curve.png": plotting.elbo_curve(
            history, objective=f"L_{config.n_samples}" if config.objective == "iwae" else "ELBO"
        ),
    }
    for name, fig in figures.items():
        _save_png(fig, os.path.join(out, name))


def _final_evaluation(model, iteration, config, args) -> dict:
    from vae_prac import data
    from vae_prac.evaluate import evaluate_elbo

    eval_x = data.eval_set(config.n_eval, config.binarization, config.seed, config.data_dir)
    test_elbo = evaluate_elbo(model, eval_x, seed=config.seed)
    print(
        f"Iteration {iteration}: test ELBO {test_elbo:.2f} nats per image "
        f"({config.n_eval} test images, {config.binarization} binarization)"
    )
    metrics = {
        "iteration": iteration,
        "binarization": config.binarization,
        "test_elbo": test_elbo,
        "n_eval": config.n_eval,
    }
    if args.eval_k:
        mean, stderr = _log_px(
            model, config, args.eval_k, args.eval_n, seed=config.seed, progress=not args.no_progress
        )
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
    print(
        f"log p(x) {mean:.2f} ± {stderr:.2f} nats per image (importance-sampled, k={k}, "
        f"first {n} test images, {binarization} binarization; ± one standard error)"
    )


# --------------------------------------------------------------------------
# evaluate, sample


def _restore(out):
    """(model, iteration, config) of the run in ``out``, or a UsageError saying why not."""
    from vae_prac import training

    if not os.path.isdir(out):
        raise UsageError(f"{out} does not exist. Train first: vae-prac train --out {out}")
    config = _saved_config(out)
    if config is None:
        raise UsageError(
            f"{out} has no config.json, so it is not a run written by "
            f"`vae-prac train`. Train first: vae-prac train --out {out}"
        )
    model, iteration = training.restore(out, config)  # no checkpoint: a RunFolderError
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
    args.config = config  # for the message of a failed allocation
    return model, iteration, config, f"model in {args.out}"


def cmd_evaluate(args) -> int:
    from vae_prac import data
    from vae_prac.evaluate import active_units, evaluate_elbo

    if args.json:  # checked now, not after minutes of evaluation
        _check_output_path(args.json, "--json", folder=False)
    model, iteration, config, what = _load_model(args)
    n = args.n
    if n > data.SPLIT_SIZES["test"]:
        raise UsageError(f"MNIST has {data.SPLIT_SIZES['test']} test images; got --n {n}.")
    x = data.eval_set(n, config.binarization, config.seed, config.data_dir)
    print(
        f"The {what} at iteration {iteration} "
        f"(latent_dim={config.latent_dim}, hidden_size={config.hidden_size}, "
        f"{config.activation}); first {n} test images, {config.binarization} binarization"
    )
    test_elbo = evaluate_elbo(model, x, seed=args.seed)
    print(f"test ELBO {test_elbo:.2f} nats per image")
    units = active_units(model, x)
    print(
        f"active units {units} of {config.latent_dim} (variance over the images of the "
        f"posterior mean above 0.01, Burda et al.'s criterion)"
    )
    mean, stderr = _log_px(
        model,
        config,
        args.k,
        n,
        seed=args.seed,
        progress=not args.no_progress,
        batch_size=args.batch_size,
    )
    _print_log_px(mean, stderr, args.k, n, config.binarization)
    if args.json:
        from vae_prac import run_folder

        run_folder.write_json(
            args.json,
            {
                "iteration": iteration,
                "n": n,
                "k": args.k,
                "seed": args.seed,
                "binarization": config.binarization,
                "test_elbo": test_elbo,
                "log_px": mean,
                "log_px_stderr": stderr,
                "nll": -mean,
                "active_units": units,
            },
        )
    return 0


def cmd_sample(args) -> int:
    kind = "means" if args.mean else "samples"
    default = (
        f"{args.pretrained}-{kind}.png"
        if args.pretrained
        else os.path.join(args.out, f"{kind}.png")
    )
    path = args.png or default
    _check_output_path(path, "--png", folder=False)
    model, iteration, _, what = _load_model(args)
    plotting = _plotting()
    fig = plotting.prior_samples(
        model, args.n, ncols=min(10, args.n), seed=(args.seed, 0), mean=args.mean
    )
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    _save_png(fig, path)
    print(
        f"Wrote {args.n} prior {'means' if args.mean else 'samples'} of the {what} at "
        f"iteration {iteration} to {path}"
    )
    return 0


# --------------------------------------------------------------------------
# data, grade


def cmd_data(args) -> int:
    from vae_prac import data, mnist_files

    if args.download:
        mnist_files.find_data_dir(args.data_dir, download=True)
    try:
        print(mnist_files.describe_data(args.data_dir))
    except data.DataNotFoundError as e:
        if args.data_dir is None and os.environ.get("VAE_PRAC_DATA_DIR"):
            raise  # its message says what to do with the variable
        raise data.DataNotFoundError(
            f"{e}\nFrom the command line: `vae-prac data --download` fetches and verifies "
            f"the files."
        ) from None
    # Loading verifies every file again and raises a DataError (exit 2) on a bad one.
    for split in data.MNIST_FILES:
        data.load_mnist(split, args.data_dir, download=False)
    return 0


def cmd_grade(args) -> int:
    try:  # imported here: it pulls in the notebook machinery, a [dev] dependency
        from vae_prac.course import SOLUTIONS_DIR, grading
    except ImportError as e:
        raise UsageError(
            f"grading needs the notebook tools ({e.name} is missing): pip install 'vae_prac[dev]'"
        )

    missing = [p for p in args.notebooks if not os.path.isfile(p)]
    if missing:
        raise UsageError(f"no such notebook: {', '.join(missing)}")
    solutions = args.solutions or SOLUTIONS_DIR
    if not os.path.isdir(solutions):
        raise UsageError(
            f"no solution notebooks at {solutions}: grading reads what each "
            f"notebook must pass from them. Grade from a clone of the "
            f"repository, or pass --solutions DIR."
        )
    if args.resume and not args.csv:
        raise UsageError("--resume carries on from a CSV: pass --csv FILE too.")
    from vae_prac.course import sandbox

    def progress(done, total, grade):
        print(f"[{done}/{total}] {grade.notebook}: {grade.total}", file=sys.stderr, flush=True)

    try:
        grades = grading.grade_notebooks(
            args.notebooks,
            timeout=args.timeout,
            solutions=solutions,
            memory_limit_gib=args.memory_limit,
            sandbox=not args.no_sandbox,
            jobs=args.jobs,
            csv_path=args.csv,
            resume=args.resume,
            scheduler=args.scheduler,
            progress=progress,
        )
    except sandbox.SandboxUnavailable as e:
        raise UsageError(f"{e}\nOr grade without it, as you: --no-sandbox.") from None
    print(grading.format_table(grades))
    if any(g.memory_limit == sandbox.RLIMIT for g in grades):
        print(
            "Note: no control group could be made here, so the memory limit held per process "
            "(RLIMIT_AS), not for each notebook's whole process tree."
        )
    if args.csv:
        print(f"Wrote {args.csv}")
    if args.html:
        from vae_prac.course import report

        report.write_html(grades, args.html)
        print(f"Wrote {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
