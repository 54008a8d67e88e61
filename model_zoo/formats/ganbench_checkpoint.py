"""ganbench's own checkpoints (`.pt` zip archives and `.safetensors`): the stored config rebuilds the networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganbench.checkpoint import SAFETENSORS_SUFFIX, ZIP_MAGIC, load_checkpoint, snapshot_kimg
from model_zoo.formats import NETWORKS, NetworkFile, register


def upgrade_config(name: str, config: dict[str, Any], version: int) -> dict[str, Any]:
    """The network options of a checkpoint in today's meaning.

    Format 1: the StyleGAN2 builder clamped activations at 256 whenever fp16 layers were on, even with
    conv_clamp None (so ADA `cifar` runs, whose preset then said None, trained with a clamp). From format 2
    None means no clamp, as in NVIDIA's code; a version-1 file gets the 256 it was trained with.
    """
    if (version < 2 and name in ("stylegan2", "stylegan2-ada") and config.get("conv_clamp") is None
            and int(config.get("num_fp16_res") or 0) > 0):
        return {**config, "conv_clamp": 256}
    return config


def training_data(metadata: dict[str, Any]) -> str | None:
    """The dataset spec a run was trained on, when its metadata records one."""
    train = metadata.get("train")
    spec = train.get("data") if isinstance(train, dict) else None
    return spec if isinstance(spec, str) and spec else None


def training_data_options(metadata: dict[str, Any]) -> dict[str, Any]:
    """The --crop / --resize a run opened its data with, when recorded and not the default (eval opens its real
    data the same way, else a run trained on center-wide crops was scored against centre crops), and `mirror`
    when it trained with x-flips (eval warns that NVlabs scores such runs against x-flipped reals)."""
    train = metadata.get("train")
    if not isinstance(train, dict):
        return {}
    out = {k: train[k] for k in ("crop", "resize") if isinstance(train.get(k), str) and train[k]}
    return {**out, "mirror": True} if train.get("mirror") is True else out


@register("ganbench-checkpoint")
class GanbenchCheckpoint:
    """A file written by `ganbench.checkpoint.save_checkpoint`."""

    def sniff(self, path: Path) -> bool:
        if path.suffix == SAFETENSORS_SUFFIX or (path.suffix == ".json"
                                                 and path.with_suffix(SAFETENSORS_SUFFIX).is_file()):
            return True
        try:
            with open(path, "rb") as f:
                return f.read(4) == ZIP_MAGIC
        except OSError:
            return False

    def snapshot_kimg(self, name: str) -> float | None:
        return snapshot_kimg(name)

    def read(self, path: Path) -> NetworkFile:
        ckpt = load_checkpoint(path)     # validates the metadata fields used below
        config = dict(ckpt.metadata["config"])
        name, resolution = config.pop("name"), config.pop("resolution")
        config = upgrade_config(name, config, ckpt.format_version)
        kimg = ckpt.metadata.get("kimg", ckpt.kimg)
        return NetworkFile(path=ckpt.path, format="ganbench-checkpoint", family=name, resolution=resolution,
                           overrides=config, states={k: ckpt.state[k] for k in NETWORKS if k in ckpt.state},
                           kimg=float(kimg), data=training_data(ckpt.metadata),
                           data_options=training_data_options(ckpt.metadata),
                           notes={"arch": ckpt.metadata["arch"]})
