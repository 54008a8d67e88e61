"""Start a new run from a pretrained network (NVlabs' `--resume`) and freeze D's first layers (`--freezed`).

`--resume-from PATH` takes any network file `model_zoo` reads (a ganbench checkpoint, an NVlabs or TF-era
pickle). The run is new: its image count starts at 0 and only G, D and G_ema's weights come from the file.
The networks are built from the file's config, with the run's own network options (the dataset's channels and
labels, `--set` options) on top; a resolution, family or architecture that does not fit stops with one line
before any training. As in NVlabs' train.py, a run started this way skips the EMA ramp-up, lets ADA react
faster (ada_kimg 100) and starts without StyleGAN3-R's D blur, unless those options are set explicitly.

`--freeze-d N` freezes the first N layers of a StyleGAN2/3 discriminator, counted as NVlabs counts them:
block by block from the highest resolution, each block's fromrgb (if it has one), conv0, conv1, skip (if
residual); the 4x4 epilogue never freezes. Frozen weights become buffers, as NVlabs' `trainable=False` layers
do, so no optimizer or `requires_grad_` call can move them, and state-dict names do not change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ganbench.errors import CheckpointError, ConfigError

# Families whose networks are built by the same code (only training defaults differ).
SAME_NETWORKS = ({"stylegan2", "stylegan2-ada"},)
# NVlabs train.py's changes for a resumed (transfer-learning) run, applied unless the user sets them.
RESUME_TRAIN_DEFAULTS = {"ema_rampup": None, "ada_kimg": 100, "blur_sigma": 0.0}


def compatible(family: str, model: str) -> bool:
    """True when a network of `family` can seed a `model` run (same family or the same networks)."""
    return family == model or any({family, model} <= group for group in SAME_NETWORKS)


@dataclass
class TransferSetup:
    """What `--resume-from` / `--freeze-d` change in a run: its options, network options, and initial weights."""

    opts: Any                                    # TrainOptions, with the resume defaults filled in
    net_kw: dict[str, Any]                       # model_zoo.build overrides
    source: Any = None                           # model_zoo.formats.NetworkFile, or None without --resume-from
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, opts: Any, net_kw: dict[str, Any]) -> "TransferSetup":
        """Check the pretrained file against the run and merge its config under the run's own options."""
        freeze = int(getattr(opts, "freeze_d", 0) or 0)
        if freeze < 0:
            raise ConfigError(f"--freeze-d must be >= 0, got {freeze}")
        path = getattr(opts, "resume_from", None)
        if path is None:
            return cls(opts=opts, net_kw=dict(net_kw))
        import model_zoo

        src = model_zoo.open_network_file(path)
        if not compatible(src.family, opts.model):
            raise ConfigError(f"--resume-from {path} holds a {src.family} network; a {opts.model} run cannot start "
                              f"from it (use --model {src.family})")
        if src.resolution != opts.resolution:
            raise ConfigError(f"--resume-from {path} is a {src.resolution}px network, not {opts.resolution}px; "
                              f"train at --resolution {src.resolution} on data of that size")
        if "D" in src.unavailable:
            raise CheckpointError(f"--resume-from needs D: {src.unavailable['D']}")
        missing = [k for k in ("D",) if k not in src.states] + ([] if {"G", "G_ema"} & set(src.states) else ["G"])
        if missing:
            raise CheckpointError(f"--resume-from {path} holds no {' or '.join(missing)}; a run needs G and D")
        theirs = src.overrides
        c_dim = int(theirs.get("c_dim", 0) or 0)
        if c_dim and not opts.cond:
            raise ConfigError(f"--resume-from {path} is conditional ({c_dim} classes): pass --cond with a labelled "
                              "dataset")
        if opts.cond and net_kw.get("c_dim") != c_dim:
            raise ConfigError(f"--resume-from {path} has {c_dim} classes but the dataset has {net_kw.get('c_dim')}; "
                              "labels must match the pretrained network")
        if "img_channels" in theirs and net_kw.get("img_channels", theirs["img_channels"]) != theirs["img_channels"]:
            raise ConfigError(f"--resume-from {path} makes {theirs['img_channels']}-channel images; the dataset has "
                              f"{net_kw['img_channels']}")
        train = {**RESUME_TRAIN_DEFAULTS, **dict(opts.train)}
        return cls(opts=dataclasses.replace(opts, train=train), net_kw={**theirs, **net_kw}, source=src)

    def metadata(self) -> dict[str, Any]:
        """What a run's snapshots record about its start: the pretrained file and the frozen D layers."""
        out: dict[str, Any] = {}
        if self.source is not None:
            out.update(resume_from=str(Path(self.source.path).expanduser().resolve()),   # rerun from any folder
                       resume_from_format=self.source.format)
        if self.notes.get("frozen"):
            out["freeze_d"] = len(self.notes["frozen"])
        return out

    def apply(self, G: nn.Module, D: nn.Module, G_ema: nn.Module) -> None:
        """Load the pretrained weights (strictly) and freeze D's first layers."""
        from ganbench.checkpoint import load_state_strict

        if self.source is not None:
            states = self.source.states
            for net, which, fallback in ((G, "G", "G_ema"), (G_ema, "G_ema", "G"), (D, "D", "D")):
                state = states.get(which, states.get(fallback))
                load_state_strict(net, state, f"--resume-from {self.source.path} ({which}) for a "
                                              f"{self.opts.model} run")
        freeze = int(getattr(self.opts, "freeze_d", 0) or 0)
        if freeze:
            self.notes["frozen"] = freeze_d(D, freeze)


def discriminator_layers(D: nn.Module) -> list[tuple[str, nn.Module]]:
    """D's layers in NVlabs' freeze order: per block from the highest resolution, fromrgb, conv0, conv1, skip."""
    if not hasattr(D, "block_resolutions"):
        raise ConfigError(f"--freeze-d applies to StyleGAN2/3 discriminators (blocks b<res>); "
                          f"{type(D).__name__} has none")
    layers = []
    for res in D.block_resolutions:
        block = getattr(D, f"b{res}")
        for name in ("fromrgb", "conv0", "conv1", "skip"):
            layer = getattr(block, name, None)
            if isinstance(layer, nn.Module):
                layers.append((f"b{res}.{name}", layer))
    return layers


def freeze_d(D: nn.Module, n: int) -> list[str]:
    """Turn the parameters of D's first `n` layers into buffers (values unchanged); returns the layers frozen."""
    layers = discriminator_layers(D)
    if n > len(layers):
        raise ConfigError(f"--freeze-d {n}: this discriminator has {len(layers)} freezable layers "
                          "(its 4x4 epilogue always trains)")
    frozen = []
    for name, layer in layers[:n]:
        for pname in list(layer._parameters):
            param = layer._parameters.pop(pname)
            layer.register_buffer(pname, None if param is None else param.detach())
        frozen.append(name)
    return frozen
