"""Network files of every supported format, read as data: one module per format, chosen by sniffing the file.

A format module registers itself with `@register(name)` on a reader class with `sniff(path) -> bool` and
`read(path) -> NetworkFile`. A `NetworkFile` is what every format reduces to: the ganbench family, the
resolution, the `model_zoo.build` overrides that rebuild the same networks, and each network's state dict
in ganbench's parameter names. `NetworkFile.build(which)` builds with `model_zoo.build` and loads strictly.
Only this package knows that foreign formats exist.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from ganbench.errors import CheckpointError
from ganbench.registry import Registry

NETWORKS = ("G_ema", "G", "D")


@dataclass
class NetworkFile:
    """The networks of one file, in ganbench terms."""

    path: Path
    format: str                                   # registered format name
    family: str                                   # model_zoo name, e.g. "stylegan2-ada"
    resolution: int
    overrides: dict[str, Any]                     # model_zoo.build keyword arguments (besides the resolution)
    states: dict[str, dict[str, torch.Tensor]]    # "G_ema" / "G" / "D" -> state dict in ganbench names
    kimg: float | None = None                     # training progress, when the file records it
    data: str | None = None                       # training data spec, when recorded and present here
    data_options: dict[str, Any] = field(default_factory=dict)  # how it was opened: crop, resize, mirror (if not default)
    notes: dict[str, Any] = field(default_factory=dict)  # format facts worth showing (e.g. recorded data path)
    unavailable: dict[str, str] = field(default_factory=dict)   # network -> why it cannot be expressed
    fixed_buffers: tuple[str, ...] = ()           # buffer names the config fixes and the file does not store

    @property
    def config(self) -> dict[str, Any]:
        """What `model_zoo.build(**config)` takes to rebuild these networks."""
        return {"name": self.family, "resolution": self.resolution, **self.overrides}

    def describe(self) -> dict[str, Any]:
        """Plain-data summary: format, family, resolution, config, kimg, training data, networks held."""
        return {"path": str(self.path), "format": self.format, "family": self.family, "resolution": self.resolution,
                "config": self.config, "kimg": self.kimg, "data": self.data,
                "networks": [n for n in NETWORKS if n in self.states],
                **({"unavailable": dict(self.unavailable)} if self.unavailable else {}), **self.notes}

    def build(self, which: str = "G_ema", device: str | torch.device = "cpu") -> nn.Module:
        """Network `which` built by `model_zoo.build` with the weights loaded strictly, in eval mode."""
        import model_zoo
        from ganbench.checkpoint import load_state_strict

        if which not in NETWORKS:
            raise CheckpointError(f"which must be one of {', '.join(NETWORKS)}, got {which!r}")
        if which in self.unavailable:
            raise CheckpointError(self.unavailable[which])
        if which not in self.states:
            held = ", ".join(n for n in NETWORKS if n in self.states) or "no networks"
            raise CheckpointError(f"{self.path} holds no {which} (it has {held})")
        spec = model_zoo.build(self.family, self.resolution, **self.overrides)
        net = spec.D if which == "D" else spec.G
        state = self.states[which]
        if self.fixed_buffers:
            fixed = {k: v for k, v in net.state_dict().items() if k.rsplit(".", 1)[-1] in self.fixed_buffers}
            state = {**fixed, **state}
        load_state_strict(net, state, f"{self.path} ({which})")
        return net.to(device).eval().requires_grad_(False)


class Reader(Protocol):
    """One file format."""

    def sniff(self, path: Path) -> bool: ...

    def read(self, path: Path) -> NetworkFile: ...

    def snapshot_kimg(self, name: str) -> float | None: ...


FORMATS: Registry[Reader] = Registry("network file format")
_ORDER: list[str] = []   # sniffed in registration order: specific formats before catch-alls


def register(name: str) -> Callable[[type], type]:
    """Class decorator registering a reader (instantiated once) under `name`."""

    def deco(cls: type) -> type:
        FORMATS.register(name)(cls())
        _ORDER.append(name)
        return cls

    return deco


def _import_formats() -> None:
    from model_zoo.formats import ganbench_checkpoint, nvlabs_pickle, tf_pickle  # noqa: F401


def sniff(path: str | Path) -> str | None:
    """Name of the format `path` is in, or None."""
    _import_formats()
    path = Path(path)
    for name in _ORDER:
        if FORMATS.get(name).sniff(path):
            return name
    return None


def snapshot_kimg(name: str) -> float | None:
    """The kimg a snapshot file name stands for in any registered format, or None."""
    _import_formats()
    for fmt in _ORDER:
        kimg = FORMATS.get(fmt).snapshot_kimg(name)
        if kimg is not None:
            return kimg
    return None


def open_file(path: str | Path) -> NetworkFile:
    """Read a network file of any registered format as data (no code from the file runs)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a network file")
    name = sniff(path)
    if name is None:
        raise CheckpointError(f"{path} is not a network file ganbench can read (expected a ganbench checkpoint "
                              f".pt / .safetensors, an NVlabs PyTorch .pkl or a TensorFlow-era .pkl)")
    return FORMATS.get(name).read(path)


# -- helpers shared by the format modules -------------------------------------------------------------

def _is_number(value: Any) -> bool:
    """A real number: Python or numpy ints and floats, never a bool (True is no channel count or multiplier)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(value: numbers.Real) -> bool:
    """Whether a real number is finite and fits a float (a pickled int can be too big for one)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def require_int(value: Any, what: str, path: Path) -> int:
    """`value` as an int (numpy ints and integral floats accepted), else a CheckpointError naming `what`."""
    if not (_is_number(value) and (isinstance(value, numbers.Integral) or _finite(value)
                                   and float(value).is_integer())):
        raise CheckpointError(f"{path}: {what} must be an integer, got {value!r}")
    return int(value)


def require_float(value: Any, what: str, path: Path, *, optional: bool = False) -> float | None:
    """`value` as a finite float (ints and numpy numbers accepted; None too when `optional`), else a
    CheckpointError naming `what`: strings, bools, NaN and infinities are refused."""
    if value is None and optional:
        return None
    if not _is_number(value) or not _finite(value):
        kind = "a finite number" + (" or None" if optional else "")
        raise CheckpointError(f"{path}: {what} must be {kind}, got {value!r}")
    return float(value)


def require_bool(value: Any, what: str, path: Path) -> bool:
    """`value` as a bool (numpy bools accepted), else a CheckpointError naming `what` (a string such as
    'False' would otherwise read as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise CheckpointError(f"{path}: {what} must be True or False, got {value!r}")
    return bool(value)


def require_choice(value: Any, what: str, choices: tuple[str, ...], path: Path) -> str:
    """`value` if it is one of the strings `choices`, else a CheckpointError naming `what` and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise CheckpointError(f"{path}: {what} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return str(value)


def require_conv_clamp(value: Any, what: str, path: Path) -> int | float | None:
    """A conv_clamp: None (no clamp) or a finite number, kept an int when recorded as one."""
    clamp = require_float(value, what, path, optional=True)
    return int(value) if isinstance(value, numbers.Integral) else clamp


ARCHITECTURES = ("orig", "skip", "resnet")   # NVlabs' StyleGAN2 G and D architectures, as ganbench builds them


def check_power_of_two(resolution: int, path: Path) -> int:
    if resolution < 4 or 2 ** int(math.log2(resolution)) != resolution:
        raise CheckpointError(f"{path}: resolution {resolution} is not a power of two >= 4")
    return resolution


class Kwargs:
    """Recorded constructor kwargs read against the defaults of the code that wrote them.

    `get(name)` returns the recorded value or that code's default; `done()` raises a CheckpointError naming
    any recorded kwarg nobody asked for, so a pickle with an option ganbench cannot express is refused
    instead of silently loaded into a different network.
    """

    def __init__(self, recorded: dict[str, Any], defaults: dict[str, Any], where: str, path: Path) -> None:
        if not isinstance(recorded, dict):
            raise CheckpointError(f"{path}: {where} must be a dict of options, got {recorded!r}")
        self.recorded, self.defaults, self.where, self.path = dict(recorded), defaults, where, path
        self.used: set[str] = set()

    def get(self, name: str) -> Any:
        self.used.add(name)
        return self.recorded[name] if name in self.recorded else self.defaults[name]

    def ignore(self, *names: str) -> None:
        """Kwargs that do not change the function (speed or training-only options)."""
        self.used.update(names)

    def expect(self, name: str, allowed: Callable[[Any], bool], why: str) -> Any:
        """The value of `name`, which must satisfy `allowed`, else one clear error saying what ganbench lacks."""
        value = self.get(name)
        try:
            ok = bool(allowed(value))
        except (TypeError, ValueError):   # e.g. list(3) for a filter, or an array where a number belongs
            ok = False
        if not ok:
            raise CheckpointError(f"{self.path}: {self.where} {name}={value!r} cannot be expressed in ganbench "
                                  f"({why})")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.recorded) - self.used)
        if unknown:
            raise CheckpointError(f"{self.path}: {self.where} has option(s) ganbench cannot express: "
                                  f"{', '.join(f'{k}={self.recorded[k]!r}' for k in unknown)}")
