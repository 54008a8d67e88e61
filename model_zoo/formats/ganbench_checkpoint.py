"""ganbench's own checkpoints (`.pt` zip archives and `.safetensors`): the stored config rebuilds the networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganbench.checkpoint import SAFETENSORS_SUFFIX, ZIP_MAGIC, load_checkpoint, snapshot_kimg
from model_zoo.formats import NETWORKS, NetworkFile, register


def training_data(metadata: dict[str, Any]) -> str | None:
    """The dataset spec a run was trained on, when its metadata records one."""
    train = metadata.get("train")
    spec = train.get("data") if isinstance(train, dict) else None
    return spec if isinstance(spec, str) and spec else None


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
        kimg = ckpt.metadata.get("kimg", ckpt.kimg)
        return NetworkFile(path=ckpt.path, format="ganbench-checkpoint", family=name, resolution=resolution,
                           overrides=config, states={k: ckpt.state[k] for k in NETWORKS if k in ckpt.state},
                           kimg=float(kimg), data=training_data(ckpt.metadata),
                           notes={"arch": ckpt.metadata["arch"]})
