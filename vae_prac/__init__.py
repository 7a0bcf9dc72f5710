"""vae_prac: variational auto-encoders in TensorFlow 2 and TensorFlow Probability.

The library behind the vae_prac notebook series (grown out of the Deep Learning Indaba
2017 VAE practical). Notation: q_phi(z|x) is the encoder, p_theta(x|z) the decoder,
p(z) = N(0, I) the prior.

Its names (``vae_prac.train``, ``vae_prac.Config``, ...) are imported on first use, and
TensorFlow only with the first module that needs it, so ``vae-prac --help`` answers at
once instead of after TensorFlow's few seconds of start-up.
"""

import importlib
import os
import sys


def _import_tensorflow_quietly():
    """Import TensorFlow and TFP without their C++ start-up lines on stderr.

    Those lines (oneDNN, CUDA drivers) are noise for students, carry timestamps that
    make notebook outputs differ on every run, and since TF 2.17 some are written
    before any log level applies; so stderr's file descriptor is muted for the import.
    Once both are imported it does nothing.
    """
    if "tensorflow_probability" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
        import tensorflow_probability  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# The modules that do not need TensorFlow at import (the command line's own, for --help;
# mnist_files, which `vae-prac data` uses; data, which imports TensorFlow when needed; the
# course wing's package, whose paths the site's build reads; the grader, its report, its
# sandbox and notebook runner, which start the processes that import it (kernel and
# verifier); and the checks' package, whose modules each import it).
_WITHOUT_TENSORFLOW = {
    f"{__name__}.{m}"
    for m in (
        "__main__",
        "checks",
        "cli",
        "config",
        "course",
        "course.grading",
        "course.report",
        "course.run_notebook",
        "course.sandbox",
        "course.verification",
        "data",
        "mnist_files",
        "presets",
        "run_lock",
        "short_runs",
    )
}


class _TensorFlowFirst:
    """Imports TensorFlow quietly just before the first module of vae_prac that needs it
    (whichever way it is imported), then lets the usual finders import that module.
    (A finder of sys.meta_path needs only find_spec; importlib.abc costs an import.)"""

    done = False

    def find_spec(self, fullname, path=None, target=None):
        if (
            not self.done
            and fullname.startswith(__name__ + ".")
            and fullname not in _WITHOUT_TENSORFLOW
        ):
            self.done = True  # (removing itself from sys.meta_path here would make
            _import_tensorflow_quietly()  # the import machinery skip the next finder)
        return None


sys.meta_path.insert(0, _TensorFlowFirst())

__version__ = "0.1.0"
#: Where the course lives; the notebooks' Colab badges and install cell point here.
REPO_URL = "https://github.com/vae-prac/vae_prac"

# name -> the module that defines it, imported on first use (PEP 562).
_EXPORTS = {
    "Config": "config",
    "ElboTerms": "bounds",
    "batch_elbo": "bounds",
    "elbo": "bounds",
    "iw_bound": "bounds",
    "kl_analytic": "bounds",
    "kl_monte_carlo": "bounds",
    "evaluate_elbo": "evaluate",
    "log_px": "evaluate",
    "VAE": "model",
    "generative_network": "model",
    "inference_network": "model",
    "likelihood": "model",
    "posterior": "model",
    "prior": "model",
    "reparameterize": "model",
    "History": "training",
    "NonFiniteLossError": "training",
    "TrainResult": "training",
    "gradient_step": "training",
    "restore": "training",
    "train": "training",
}


# As before: `import vae_prac` then `vae_prac.training.make_optimizer(...)` works.
_SUBMODULES = {
    "bounds",
    "checks",
    "cli",
    "config",
    "course",
    "data",
    "evaluate",
    "mnist_files",
    "model",
    "plotting",
    "presets",
    "pretrained",
    "run_folder",
    "run_lock",
    "short_runs",
    "training",
}


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)


__all__ = [
    "Config",
    "VAE",
    "inference_network",
    "generative_network",
    "reparameterize",
    "prior",
    "posterior",
    "likelihood",
    "elbo",
    "batch_elbo",
    "ElboTerms",
    "kl_analytic",
    "kl_monte_carlo",
    "iw_bound",
    "log_px",
    "evaluate_elbo",
    "train",
    "restore",
    "History",
    "TrainResult",
    "NonFiniteLossError",
]
