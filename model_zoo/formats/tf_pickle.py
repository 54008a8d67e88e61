"""TF-era network pickles (ProGAN, StyleGAN, StyleGAN2), read as data without TensorFlow."""

from __future__ import annotations

from pathlib import Path

from ganbench.errors import CheckpointError
from model_zoo.formats import NetworkFile, register, safe_pickle

TF_NETWORK_CLASSES = ("dnnlib.tflib.network.Network", "tfutil.Network")


@register("tf-pickle")
class TFPickle:
    """A (G, D, Gs) tuple of TF-era Network objects."""

    def sniff(self, path: Path) -> bool:
        return safe_pickle.first_global(path) in TF_NETWORK_CLASSES

    def snapshot_kimg(self, name: str) -> float | None:
        return None

    def read(self, path: Path) -> NetworkFile:
        raise CheckpointError(f"{path} is a TensorFlow-era network pickle; reading those is not implemented yet")
