"""The settings of a VAE run, in one validated dataclass.

The names and defaults are the original Indaba 2017 practical's flags
(``latent_dim=100``, ``hidden_size=200``, ``batch_size=64``, ...), so a student can
match every setting here to the notebook they came from. A bad value fails when
the config is built, not thousands of iterations later.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
import os
import re
from dataclasses import dataclass
from typing import Optional

BINARIZATIONS = ("threshold", "stochastic")
OBJECTIVES = ("elbo", "iwae")
ACTIVATIONS = ("relu", "tanh")
OPTIMIZERS = ("rmsprop", "adam")
LR_SCHEDULES = ("constant", "burda")
IWAE_GRADIENTS = ("standard", "dreg")
#: The settings that take one of a few names, and those names.
CHOICES = {
    "binarization": BINARIZATIONS,
    "objective": OBJECTIVES,
    "activation": ACTIVATIONS,
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
    "iwae_gradient": IWAE_GRADIENTS,
}


def is_positive_int(value) -> bool:
    """True for an integer >= 1 (Python or NumPy), False for anything else, bools included."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1


def is_nonnegative_int(value) -> bool:
    """True for an integer >= 0 (Python or NumPy), False for anything else, bools included."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0


# The argument checks of the whole library: Config and every function that takes a
# count, a batch size or a seed use these, so the same value is accepted (or refused,
# with the same message) everywhere. Each returns the value as a Python int.

#: Seeds become int32 seeds of TensorFlow's stateless random ops, so they must fit in
#: 31 bits: a larger one would wrap around silently (2**32 would act as seed 0).
SEED_LIMIT = 2**31

#: TensorFlow counts the elements of a tensor, and sizes its shapes, with int32 in many
#: kernels: one tensor beyond this overflows inside the graph instead of failing clearly.
INT32_MAX = 2**31 - 1
#: The images of MNIST's training set, from which the batches are drawn.
MNIST_TRAIN_IMAGES = 60000
#: The pixels of an image, the width of the encoder's input and of the decoder's output.
PIXELS = 28 * 28


def _how_to_fix(value) -> str:
    """A hint for the usual slips: a number given as text, or an integer as a float."""
    if isinstance(value, str):
        return f" Pass a number, not the string {value!r}."
    if (
        isinstance(value, numbers.Real)
        and not isinstance(value, numbers.Integral)
        and float(value).is_integer()
    ):
        return f" Pass an int: {int(float(value))}, not {value!r}."
    return ""


def check_positive_int(value, name: str) -> int:
    """``int(value)`` for an integer >= 1 (Python or NumPy), else a ValueError naming it."""
    if not is_positive_int(value):
        raise ValueError(f"{name} must be a positive integer, got {value!r}." + _how_to_fix(value))
    return int(value)


def check_nonnegative_int(value, name: str) -> int:
    """``int(value)`` for an integer >= 0 (Python or NumPy), else a ValueError naming it."""
    if not is_nonnegative_int(value):
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}." + _how_to_fix(value))
    return int(value)


def network_weights(latent_dim: int, hidden_size: int, hidden_layers: int) -> int:
    """How many weights (kernels and biases) the encoder and the decoder have together.

    The encoder maps 784 pixels through ``hidden_layers`` layers of ``hidden_size`` to
    the 2 * ``latent_dim`` parameters of q_phi(z|x); the decoder maps ``latent_dim``
    through the same hidden layers to 784 logits.
    """
    hidden = (hidden_layers - 1) * (hidden_size * hidden_size + hidden_size)
    encoder = (
        PIXELS * hidden_size + hidden_size + hidden + hidden_size * 2 * latent_dim + 2 * latent_dim
    )
    decoder = latent_dim * hidden_size + hidden_size + hidden + hidden_size * PIXELS + PIXELS
    return encoder + decoder


def check_seed(value, name: str = "seed") -> int:
    """``int(value)`` for an integer seed in [0, 2**31), else a ValueError naming it."""
    if not is_nonnegative_int(value) or value >= SEED_LIMIT:
        raise ValueError(f"{name} must be an integer in [0, 2**31), got {value!r}.")
    return int(value)


def check_stateless_seed(value, name: str = "seed"):
    """A seed of a random function: ``None`` (fresh noise), an integer seed, or a pair.

    Returns it unchanged; a tensor is passed through (its dtype already bounds it). An
    integer, or each integer of a pair such as ``(seed, batch)``, must be in [0, 2**31).
    """
    # A tensor (e.g. from tf.random.split) is checked by TensorFlow; tested by its
    # module so that this light module need not import TensorFlow.
    if value is None or type(value).__module__.split(".")[0] == "tensorflow":
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        check_seed(value, name)
        return value
    try:
        items = list(value)
    except TypeError:
        items = None
    if (
        items is None
        or len(items) != 2
        or not all(is_nonnegative_int(v) and v < SEED_LIMIT for v in items)
    ):
        raise ValueError(
            f"{name} must be None, an integer in [0, 2**31) or a pair of them, got {value!r}."
        )
    return value


@dataclass(frozen=True)
class Config:
    """Settings for building and training a VAE.

    Attributes:
      latent_dim: Dimensionality of the latent variable z.
      hidden_size: Width of each hidden layer of both networks.
      hidden_layers: Hidden layers in each network (the original had 2).
      batch_size: Minibatch size.
      n_samples: Samples of z ~ q_phi(z|x) per example: L, averaged in the ELBO, or
        k, the importance samples of the bound L_k when ``objective="iwae"``.
      n_iterations: Training iterations (the original's ``N_ITERATIONS``).
      print_every: Evaluate on the fixed test set, checkpoint, call hooks and print
        one line every this many iterations (its examples/s is the speed over the
        last log_every iterations).
      log_every: Record the training ELBO and the examples/s every this many
        iterations (the original printed every 100).
      learning_rate: The optimizer's learning rate (the first one, with a schedule).
      binarization: ``"threshold"`` (pixel > 0.5, the original's) or
        ``"stochastic"`` (each pixel ~ Bernoulli(intensity), resampled per batch).
      n_eval: Size of the fixed evaluation set (the original's 5000 test digits).
      data_dir: Where MNIST is; ``None`` searches (see ``vae_prac.mnist_files``).
      logdir: The run folder: config, checkpoints, history and TensorBoard summaries
        (see ``vae_prac.run_folder``); ``None`` for none.
      seed: Seeds weights, data order and noise: same seed, same machine, same numbers.
      jit_compile: Compile the training step with XLA; ``None`` chooses: XLA on a
        GPU, where it helps, and not on a CPU, where this small step runs faster without.
      objective: ``"elbo"`` (the original's, a VAE) or ``"iwae"``: the
        importance-weighted bound L_k with k = ``n_samples`` (Burda et al., 2015; L_1
        is the ELBO).
      activation: The hidden layers' nonlinearity, ``"relu"`` (the original's) or
        ``"tanh"`` (Burda et al.'s).
      optimizer: ``"rmsprop"`` (the original's, TF1's rho=0.9) or ``"adam"`` (beta1 0.9,
        beta2 0.999, as Burda et al.).
      epsilon: The optimizer's epsilon; ``None`` takes the defaults used here: 1e-10
        for RMSProp (TF1's), 1e-4 for Adam (Burda et al.'s).
      lr_schedule: ``"constant"``, or ``"burda"``: eight stages i = 0..7 whose lengths
        are in the ratio 3^i (1 : 3 : ... : 2187 of ``n_iterations``), with learning rate
        ``learning_rate * 10^(-i/7)`` in stage i; with Burda et al.'s 3280 passes over
        the data this is exactly their schedule.
      n_validation: Training images held out (the last ones of the training set), as
        Burda et al.'s 400 validation images; the model never trains on them.
      iwae_gradient: How an IWAE's encoder learns: ``"standard"`` (the gradient of L_k
        with reparameterized samples, Burda et al.'s) or ``"dreg"`` (the doubly
        reparameterized gradient, Tucker et al., 2018: the same bound and decoder
        gradient, an encoder gradient without the score term whose variance grows
        with k); only with objective="iwae".
    """

    latent_dim: int = 100
    hidden_size: int = 200
    hidden_layers: int = 2
    batch_size: int = 64
    n_samples: int = 1
    n_iterations: int = 10000
    print_every: int = 1000
    log_every: int = 100
    learning_rate: float = 1e-3
    binarization: str = "threshold"
    n_eval: int = 5000
    data_dir: Optional[str] = None
    logdir: Optional[str] = None
    seed: int = 0
    jit_compile: Optional[bool] = None
    objective: str = "elbo"
    activation: str = "relu"
    optimizer: str = "rmsprop"
    epsilon: Optional[float] = None
    lr_schedule: str = "constant"
    n_validation: int = 0
    iwae_gradient: str = "standard"

    def __post_init__(self):
        positive = (
            "latent_dim",
            "hidden_size",
            "hidden_layers",
            "batch_size",
            "n_samples",
            "print_every",
            "log_every",
            "n_eval",
        )
        # A NumPy integer is accepted and stored as a Python int, so the config saves
        # to JSON and compares equal to the same config built from Python ints.
        for name in positive:
            object.__setattr__(
                self, name, check_positive_int(getattr(self, name), f"Config.{name}")
            )
        for name in ("n_iterations", "n_validation"):
            object.__setattr__(
                self, name, check_nonnegative_int(getattr(self, name), f"Config.{name}")
            )
        object.__setattr__(self, "seed", check_seed(self.seed, "Config.seed"))
        for name in ("learning_rate", "epsilon"):
            value = getattr(self, name)
            if value is None and name == "epsilon":
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not 0 < float(value) < 1
            ):
                raise ValueError(
                    f"Config.{name} must be a number in (0, 1)"
                    + (", or None for the optimizer's default here" if name == "epsilon" else "")
                    + f"; got {value!r}."
                )
            object.__setattr__(self, name, float(value))
        if self.n_eval > 10000:
            raise ValueError(
                f"Config.n_eval must be at most 10000 (the size of MNIST's test set), "
                f"got {self.n_eval}."
            )
        for name in ("data_dir", "logdir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ValueError(f"Config.{name} must be a path (a string) or None, got {value!r}.")
        if self.jit_compile is not None and not isinstance(self.jit_compile, bool):
            raise ValueError(
                f"Config.jit_compile must be True, False or None (choose automatically), "
                f"got {self.jit_compile!r}."
            )
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"Config.{name} must be one of {allowed}, got {getattr(self, name)!r}."
                )
        if self.iwae_gradient == "dreg" and self.objective != "iwae":
            raise ValueError(
                f"Config.iwae_gradient='dreg' is a gradient of the IWAE's bound L_k, but "
                f"objective={self.objective!r}: set objective='iwae' too, or leave "
                f"iwae_gradient='standard'."
            )
        if self.n_validation >= 60000:
            raise ValueError(
                f"Config.n_validation must be less than 60000 (the size of "
                f"MNIST's training set), got {self.n_validation}."
            )
        if self.log_every > self.print_every or self.print_every % self.log_every:
            raise ValueError(
                f"Config.print_every ({self.print_every}) must be a multiple of "
                f"Config.log_every ({self.log_every})."
            )
        self._check_sizes()

    def _check_sizes(self):
        """Sizes that could never run: refused here, before anything is allocated or written."""
        images = MNIST_TRAIN_IMAGES - self.n_validation
        if self.batch_size > images:
            held_out = (
                f" (MNIST's {MNIST_TRAIN_IMAGES} less n_validation={self.n_validation})"
                if self.n_validation
                else ""
            )
            raise ValueError(
                f"Config.batch_size must not exceed the {images} training "
                f"images{held_out}, got {self.batch_size}."
            )
        weights = network_weights(self.latent_dim, self.hidden_size, self.hidden_layers)
        if weights > INT32_MAX:
            raise ValueError(
                f"Config.latent_dim={self.latent_dim}, hidden_size={self.hidden_size} and "
                f"hidden_layers={self.hidden_layers} give networks of {weights:,} weights; "
                f"the limit is 2**31 - 1 = {INT32_MAX:,} (TensorFlow's int32 sizes; 8 GiB "
                f"of float32 before the optimizer's state). Choose smaller sizes."
            )
        # The widest activation of one step: n_samples * batch_size rows of the widest
        # layer (the decoder's 784 logits, unless a hidden or latent layer is wider).
        width = max(PIXELS, self.hidden_size, 2 * self.latent_dim)
        values = self.batch_size * self.n_samples * width
        if values > INT32_MAX:
            raise ValueError(
                f"Config.batch_size * Config.n_samples * {width} (one step's widest "
                f"activation) must be at most 2**31 - 1 = {INT32_MAX:,} (TensorFlow's "
                f"int32 sizes), got {self.batch_size} * {self.n_samples} * {width} = "
                f"{values:,}. Lower n_samples or batch_size."
            )

    def replace(self, **changes) -> "Config":
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """Build from a dict, rejecting unknown keys with the list of known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"Unknown setting(s) {sorted(unknown)}; known settings: {sorted(known)}."
            )
        return cls(**values)


def field_docs() -> dict:
    """Each setting's entry in the "Attributes:" section of ``Config``'s docstring, as one
    line of plain text (``literal`` markup dropped): the help of its command-line flag."""
    section = inspect.cleandoc(Config.__doc__ or "").split("Attributes:\n", 1)[1]
    docs: dict = {}
    for line in section.splitlines():
        entry = re.match(r"  (\w+): (.*)", line)
        if entry:
            name = entry.group(1)
            docs[name] = entry.group(2)
        elif line.strip():
            docs[name] += " " + line.strip()
    return {name: text.replace("``", "") for name, text in docs.items()}
