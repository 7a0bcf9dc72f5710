"""Trained models shipped with vae_prac: load one without training it.

    import vae_prac.pretrained
    model = vae_prac.pretrained.load("mnist-dynamic-iwae")
    print(vae_prac.pretrained.card("mnist-dynamic-iwae"))   # how it was trained, its metrics

Each model is a folder beside this file: ``weights.npz`` (each weight by its Keras path),
``model.json`` (its ``Config``, the weights' SHA-256 and the measured metrics),
``card.md`` (protocol, command, wall time, machine, metrics) and ``history.csv`` (its
training curve). The weights are checked against the SHA-256 on every load, and
nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


class PretrainedError(Exception):
    """A shipped model is unknown, missing or does not verify."""


def names() -> list[str]:
    """The shipped models' names."""
    return sorted(
        d for d in os.listdir(HERE) if os.path.isfile(os.path.join(HERE, d, "model.json"))
    )


def path(name: str) -> str:
    """The folder of the shipped model ``name``."""
    folder = os.path.join(HERE, name)
    if not os.path.isfile(os.path.join(folder, "model.json")):
        known = ", ".join(names()) or "none"
        raise PretrainedError(f"No shipped model named {name!r}; the shipped models are: {known}.")
    return folder


def info(name: str) -> dict:
    """``model.json`` of ``name``: its config, weights' SHA-256 and metrics."""
    with open(os.path.join(path(name), "model.json")) as f:
        return json.load(f)


def card(name: str) -> str:
    """The model card of ``name`` (Markdown)."""
    with open(os.path.join(path(name), "card.md")) as f:
        return f.read()


def config(name: str):
    """The ``vae_prac.Config`` the model was trained with."""
    from vae_prac.config import Config

    return Config.from_dict(info(name)["config"])


def load(name: str):
    """A ``vae_prac.VAE`` with the shipped weights of ``name``, verified by SHA-256."""
    from vae_prac.model import VAE

    meta = info(name)
    weights_path = os.path.join(path(name), "weights.npz")
    try:
        with open(weights_path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise PretrainedError(
            f"Cannot read {weights_path} ({e.strerror}); reinstall vae_prac to restore it."
        ) from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != meta["weights_sha256"]:
        raise PretrainedError(
            f"{weights_path} does not verify: its SHA-256 is {digest}, the card says "
            f"{meta['weights_sha256']}. The file is damaged or was replaced; reinstall "
            f"vae_prac (or `git checkout` it) to restore it."
        )
    model = VAE.from_config(config(name))
    with np.load(io.BytesIO(raw)) as arrays:
        set_weights(model, dict(arrays))
    return model


def _named_weights(model) -> dict:
    # Keras paths repeat between the networks (both have hidden_1): prefix the network.
    return {
        f"{net}/{v.path}": v for net in ("encoder", "decoder") for v in getattr(model, net).weights
    }


def weight_arrays(model) -> dict:
    """Every weight of ``model`` by network and path (e.g. ``encoder/hidden_1/kernel``)."""
    return {name: v.numpy() for name, v in _named_weights(model).items()}


def set_weights(model, arrays: dict):
    """Assign ``arrays`` (from ``weight_arrays``) to ``model``; every weight must match."""
    mine = _named_weights(model)
    if set(mine) != set(arrays):
        raise PretrainedError(
            f"The weights do not fit this network: missing {sorted(set(mine) - set(arrays))}, "
            f"unexpected {sorted(set(arrays) - set(mine))}."
        )
    for name, variable in mine.items():
        if tuple(variable.shape) != arrays[name].shape:
            raise PretrainedError(
                f"{name} has shape {arrays[name].shape}, the network wants {tuple(variable.shape)}."
            )
        variable.assign(arrays[name])
