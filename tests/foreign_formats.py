"""Test helpers that write network files in foreign formats from ganbench networks.

NVlabs PyTorch pickles: every module becomes what `torch_utils.persistence` stores, a call of
`_reconstruct_persistent_obj(meta)` with `meta = {type, version, module_src, class_name, state}` whose state
holds `_init_args`, `_init_kwargs` (dnnlib EasyDicts) and the nn.Module internals (`_parameters`, `_buffers`,
`_modules`, ...), tensors pickled by torch itself (`_rebuild_tensor_v2` / `_rebuild_parameter` over
`torch.storage._load_from_bytes`). The globals are written under NVlabs' module names by temporarily
registering stand-in modules; `armed_nvlabs_modules()` installs stand-ins that behave like NVlabs' own
(compiling `module_src`), to prove a test pickle would run code in a loader that trusts it.

TF-era pickles: a tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network` objects (NEWOBJ + BUILD(state)), the
state holding `version`, `name`, `static_kwargs`, `components`, `build_module_src`, `build_func_name` and
`variables` as a list of (name, numpy array) pairs.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

GANBENCH_ONLY_BUFFERS = ("blur_sigma_value",)   # ganbench's StyleGAN3 D keeps its blur in a buffer; NVIDIA's has none
HARMLESS_SRC = "# module source as NVlabs' persistence stores it; ganbench never compiles it\n"


def _fake_module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        if isinstance(value, (types.FunctionType, type)):
            value.__module__ = name
            value.__qualname__ = key
        setattr(mod, key, value)
    return mod


class EasyDict(dict):
    """dnnlib's EasyDict: a dict with attribute access (pickled as dnnlib.util.EasyDict)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _reconstruct_persistent_obj(meta: dict) -> Any:  # what the stand-in records; NVlabs' compiles meta's source
    return meta


class Network:
    """A TF-era Network's state; pickles as NEWOBJ(<module>.Network) + BUILD(state), like the real class."""

    def __init__(self, state: dict, module: str = "dnnlib.tflib.network") -> None:
        self._state = state
        self.__dict__["module"] = module

    def __getstate__(self) -> dict:
        return self._state

    def retype(self) -> "Network":
        """This network (and its components) as instances of the registered stand-in class of its module."""
        self.__class__ = sys.modules[self.module].Network
        for comp in self._state.get("components", {}).values():
            comp.retype()
        return self

    def __setstate__(self, state: dict) -> None:
        self._state = state


@contextlib.contextmanager
def nvlabs_modules(reconstruct: Any = _reconstruct_persistent_obj, network_setstate: Any = None) -> Iterator[None]:
    """Register stand-ins for torch_utils.persistence, dnnlib.util and dnnlib.tflib.network while pickling."""
    body = {} if network_setstate is None else {"__setstate__": network_setstate}
    net_cls, tfutil_cls = type("Network", (Network,), dict(body)), type("Network", (Network,), dict(body))
    mods = {
        "torch_utils": _fake_module("torch_utils"),
        "torch_utils.persistence": _fake_module("torch_utils.persistence", _reconstruct_persistent_obj=reconstruct),
        "dnnlib": _fake_module("dnnlib", EasyDict=EasyDict),
        "dnnlib.util": _fake_module("dnnlib.util", EasyDict=EasyDict),
        "dnnlib.tflib": _fake_module("dnnlib.tflib"),
        "dnnlib.tflib.network": _fake_module("dnnlib.tflib.network", Network=net_cls),
        "tfutil": _fake_module("tfutil", Network=tfutil_cls),    # ProGAN's own repository
    }
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = old


@contextlib.contextmanager
def armed_nvlabs_modules() -> Iterator[None]:
    """Stand-ins that act like NVlabs' own loaders: module_src / build_module_src are compiled on load."""
    def reconstruct(meta: dict) -> Any:
        exec(compile(meta["module_src"], "<module_src>", "exec"), {})
        return meta

    def setstate(self: Any, state: dict) -> None:
        exec(compile(state["build_module_src"], "<build_module_src>", "exec"), {})
        self._state = state

    with nvlabs_modules(reconstruct, setstate):
        yield


class Persistent:
    """Pickles as NVlabs' persistence layer pickles a network: _reconstruct_persistent_obj(meta)."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta

    def __reduce__(self) -> tuple:
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,))


def _easy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return EasyDict({k: _easy(v) for k, v in obj.items()})
    return obj


def persistent(module: nn.Module, class_name: str, init_kwargs: dict | None = None, module_src: str = HARMLESS_SRC,
               version: int = 6, extra: dict | None = None) -> Persistent:
    """`module` and its children as persistent records (children get their class names and no kwargs)."""
    state: dict[str, Any] = {
        "training": False,
        "_parameters": OrderedDict((k, None if v is None else nn.Parameter(v.detach().clone(), requires_grad=False))
                                   for k, v in module._parameters.items()),
        "_buffers": OrderedDict((k, None if v is None else v.detach().clone()) for k, v in module._buffers.items()
                                if k not in GANBENCH_ONLY_BUFFERS),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_backward_hooks": OrderedDict(), "_forward_hooks": OrderedDict(), "_forward_pre_hooks": OrderedDict(),
        "_state_dict_hooks": OrderedDict(), "_load_state_dict_pre_hooks": OrderedDict(),
        "_modules": OrderedDict((k, None if v is None else persistent(v, type(v).__name__, module_src=module_src))
                                for k, v in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": _easy(init_kwargs or {}),
    }
    for attr in ("weight_gain", "bias_gain", "act_gain"):   # numpy scalars, as NVlabs' layers keep them
        if isinstance(getattr(module, attr, None), (int, float)):
            state[attr] = np.float64(getattr(module, attr))
    if hasattr(module, "size") and isinstance(getattr(module, "size"), int):
        state["size"] = np.broadcast_to(np.asarray(module.size), [2])   # a numpy array (SynthesisInput)
    state.update(extra or {})
    return Persistent(dict(type="class", version=version, module_src=module_src, class_name=class_name, state=state))


def write_pickle(path: Path, obj: Any, protocol: int = 3, numpy_core: str | None = None) -> Path:
    """Pickle `obj` with the NVlabs stand-in modules registered; `numpy_core` rewrites numpy's module name
    (released pickles spell `numpy.core`, numpy 2 writes `numpy._core`; protocol <= 3 keeps names as text)."""
    with nvlabs_modules():
        data = pickle.dumps(obj, protocol=protocol)
    if numpy_core is not None:
        assert protocol <= 3
        data = data.replace(b"numpy._core.multiarray", f"{numpy_core}.multiarray".encode())
    path.write_bytes(data)
    return path


def snapshot(G: nn.Module, D: nn.Module, G_ema: nn.Module, g_kwargs: dict, d_kwargs: dict,
             module_src: str = HARMLESS_SRC, augment_pipe: Any = "default", **extra: Any) -> dict:
    """What NVlabs' training loops pickle: G, D, G_ema, augment_pipe, training_set_kwargs."""
    if augment_pipe == "default":
        aug = nn.Module()
        aug.register_buffer("p", torch.tensor(0.25))
        aug.register_buffer("Hz_geom", torch.randn(12))
        augment_pipe = persistent(aug, "AugmentPipe", {"xflip": 1, "rotate90": 1}, module_src)
    return {"G": persistent(G, "Generator", g_kwargs, module_src), "D": persistent(D, "Discriminator", d_kwargs,
                                                                                   module_src),
            "G_ema": persistent(G_ema, "Generator", g_kwargs, module_src), "augment_pipe": augment_pipe,
            "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": "/no/such/data.zip",
                                    "use_labels": False, "max_size": 100, "xflip": False, "resolution": 16},
            **extra}


def tf_network(name: str, build_func_name: str, static_kwargs: dict, variables: dict[str, np.ndarray],
               components: dict | None = None, version: int = 4,
               build_module_src: str = "import tensorflow as tf  # never runs in ganbench\n") -> Network:
    """A TF-era Network as its pickled state (version 2, ProGAN's repository, pickles as tfutil.Network)."""
    state = {"version": version, "name": name, "static_kwargs": dict(static_kwargs),
             "build_module_src": build_module_src, "build_func_name": build_func_name,
             "variables": list(variables.items())}
    if version >= 3:
        state["components"] = dict(components or {})
    return Network(state, module="tfutil" if version == 2 else "dnnlib.tflib.network")


def write_tf_pickle(path: Path, G: Network, D: Network, Gs: Network) -> Path:
    """The (G, D, Gs) tuple, protocol 4, as the TF-era training loops saved it."""
    with nvlabs_modules():
        path.write_bytes(pickle.dumps(tuple(net.retype() for net in (G, D, Gs)), protocol=4))
    return path


def nvlabs_kwargs(spec: Any) -> tuple[dict, dict]:
    """G and D init kwargs as NVlabs' train.py records them for a ganbench StyleGAN2(-ADA) or StyleGAN3 build
    (stylegan2-ada-pytorch nests `synthesis_kwargs`; stylegan3 keeps G's flat and doubles R's channels)."""
    c, G = spec.config, spec.G
    dims = dict(z_dim=G.z_dim, c_dim=G.c_dim, w_dim=G.w_dim, img_resolution=G.img_resolution,
                img_channels=G.img_channels)
    d = {"c_dim": spec.D.c_dim, "img_resolution": G.img_resolution, "img_channels": G.img_channels,
         "channel_base": c["channel_base"], "channel_max": c["channel_max"], "block_kwargs": EasyDict(),
         "mapping_kwargs": EasyDict(), "epilogue_kwargs": EasyDict(mbstd_group_size=c["mbstd_group_size"])}
    mapping = EasyDict(num_layers=c["mapping_layers"])
    if "g_channel_mult" not in c:          # StyleGAN2 / ADA
        return {**dims, "mapping_kwargs": mapping,
                "synthesis_kwargs": EasyDict(channel_base=c["channel_base"], channel_max=c["channel_max"])}, d
    mult = c["g_channel_mult"]
    g = {**dims, "mapping_kwargs": mapping, "channel_base": c["channel_base"] * mult,
         "channel_max": c["channel_max"] * mult, "num_layers": c["num_layers"], "filter_size": c["filter_size"],
         "margin_size": c["margin_size"], "magnitude_ema_beta": c["magnitude_ema_beta"]}
    if mult == 2:
        g.update(conv_kernel=1, use_radial_filters=True)
    return g, d


def write_nvlabs_snapshot(path: Path, family: str, resolution: int, c_dim: int = 0, seed: int = 0) -> Path:
    """An NVlabs-format snapshot pickle of a freshly built `tiny` ganbench network of `family`."""
    import model_zoo

    torch.manual_seed(seed)
    spec = model_zoo.build(family, resolution, preset="tiny", c_dim=c_dim)
    g, d = nvlabs_kwargs(spec)
    return write_pickle(path, snapshot(spec.G, spec.D, spec.G, g, d), protocol=4)


def assert_generate_refuses(path: Path, out: Path, message: str) -> None:
    """`ganbench generate` on a bad network file: exit 2, one line containing `message`, no output folder."""
    from typer.testing import CliRunner

    from ganbench.cli import app

    result = CliRunner().invoke(app, ["generate", str(path), "--seeds", "0", "--outdir", str(out), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0, result.output
    assert not out.exists()
