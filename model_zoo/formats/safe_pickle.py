"""A pickle reader that builds data, never runs code: an explicit allow-list of globals, everything else refused.

Foreign network pickles are Python pickles written by code that expected to be imported on load: NVlabs'
persistence layer compiles the module source stored in the file, TF-era `Network.__setstate__` compiles its
build function, and torch's `_load_from_bytes` runs an unrestricted `torch.load`. Here each allowed global
maps to a stand-in that only builds data:

- `torch_utils.persistence._reconstruct_persistent_obj` -> `PersistentRecord` (class name, init kwargs,
  module state); the embedded `module_src` stays a string and is never compiled;
- `dnnlib.tflib.network.Network` (and ProGAN's `tfutil.Network`) -> `TFNetworkRecord` holding its
  `__setstate__` dict;
- `dnnlib.util.EasyDict` -> a plain dict;
- torch's tensor, parameter and storage rebuild functions -> plain tensors, the storage bytes read with
  `torch.load(weights_only=True)`;
- numpy scalars, dtypes and arrays (`numpy.core` as released pickles spell it, `numpy._core` for numpy 2);
- `collections.OrderedDict`, `builtins.set` / `frozenset`.

Any other global stops the load with one line naming the refused `module.name`.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ganbench.errors import CheckpointError


@dataclass
class PersistentRecord:
    """What NVlabs' persistence layer stores for one object: its class name, source text and pickled state."""

    class_name: str
    module_src: str
    version: Any
    kind: str
    state: dict[str, Any]

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args") or ())

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return plain(self.state.get("_init_kwargs") or {})

    def modules(self) -> dict[str, "PersistentRecord"]:
        """Named child records (`_modules`), skipping empty slots."""
        return {k: v for k, v in (self.state.get("_modules") or {}).items() if v is not None}

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of this record and its children, named like `nn.Module.state_dict`."""
        out: dict[str, torch.Tensor] = {}
        for name, value in (self.state.get("_parameters") or {}).items():
            if value is not None:
                out[prefix + name] = _tensor(value, prefix + name)
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for name, value in (self.state.get("_buffers") or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = _tensor(value, prefix + name)
        for name, child in self.modules().items():
            if not isinstance(child, PersistentRecord):
                raise CheckpointError(f"module {prefix + name} is a {type(child).__name__}, not a network record")
            out.update(child.state_dict(f"{prefix}{name}."))
        return out


def _tensor(value: Any, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{name} is a {type(value).__name__}, not a tensor")
    return value


@dataclass
class TFNetworkRecord:
    """A TF-era `Network` as data: the dict its `__setstate__` would have received."""

    state: dict[str, Any] = field(default_factory=dict)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise CheckpointError(f"a TensorFlow Network's state is a {type(state).__name__}, not a dict")
        self.state = state

    @property
    def name(self) -> str:
        return str(self.state.get("name", ""))

    @property
    def version(self) -> int:
        return int(self.state.get("version", 0))

    @property
    def build_func_name(self) -> str:
        return str(self.state.get("build_func_name", ""))

    @property
    def static_kwargs(self) -> dict[str, Any]:
        return plain(self.state.get("static_kwargs") or {})

    @property
    def components(self) -> dict[str, "TFNetworkRecord"]:
        return dict(self.state.get("components") or {})

    def variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every variable of this network and its components, named `component/scope/name` as in NVlabs' code."""
        out: dict[str, np.ndarray] = {}
        for item in self.state.get("variables") or []:
            name, value = item
            out[prefix + str(name)] = np.asarray(value)
        for name, comp in self.components.items():
            if not isinstance(comp, TFNetworkRecord):
                raise CheckpointError(f"component {name!r} is a {type(comp).__name__}, not a Network")
            out.update(comp.variables(f"{prefix}{name}/"))
        return out


class _EasyDict(dict):
    """Stand-in for dnnlib's EasyDict (a dict with attribute access): attributes set on it are items."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


def plain(obj: Any) -> Any:
    """Containers turned into plain dicts / lists (EasyDict and OrderedDict become dict; tuples stay tuples)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# -- stand-ins for the allowed globals ---------------------------------------------------------------

def _reconstruct_persistent(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict):
        raise CheckpointError(f"a persistent object's metadata is a {type(meta).__name__}, not a dict")
    state = meta.get("state")
    src = meta.get("module_src", "")
    return PersistentRecord(class_name=str(meta.get("class_name", "")), module_src=src if isinstance(src, str) else "",
                            version=meta.get("version"), kind=str(meta.get("type", "")),
                            state=dict(state) if isinstance(state, dict) else {})


def _storage_from_bytes(data: Any) -> Any:
    """What torch.storage._load_from_bytes returns, read with weights_only=True (the stock one allows code)."""
    if not isinstance(data, (bytes, bytearray)):
        raise CheckpointError(f"tensor storage is a {type(data).__name__}, not bytes")
    try:
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"a tensor's storage would need code to load ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise CheckpointError(f"tensor storage holds a {type(storage).__name__}, not a storage")
    return storage


def _rebuild_tensor(storage: Any, storage_offset: int, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    """A plain tensor over `storage`; requires_grad, hooks and metadata are dropped (they are training state)."""
    if not isinstance(storage, torch.TypedStorage):
        raise CheckpointError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
    return torch._utils._rebuild_tensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *_: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise CheckpointError(f"parameter rebuilt from a {type(data).__name__}, not a tensor")
    return data


def _numpy(name: str) -> Any:
    """numpy's own array / scalar reconstructor, whichever module the installed numpy keeps it in."""
    core = np._core if hasattr(np, "_core") else np.core
    return getattr(core.multiarray, name)


def _allowed() -> dict[tuple[str, str], Callable[..., Any]]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
        ("dnnlib.util", "EasyDict"): _EasyDict,
        ("dnnlib", "EasyDict"): _EasyDict,
        ("dnnlib.tflib.network", "Network"): TFNetworkRecord,
        ("tfutil", "Network"): TFNetworkRecord,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(core, "scalar")] = _numpy("scalar")
        allowed[(core, "_reconstruct")] = _numpy("_reconstruct")
    return allowed


ALLOWED = _allowed()


class RefusedGlobal(CheckpointError):
    """The pickle names a global outside the allow-list."""

    def __init__(self, path: Path, name: str) -> None:
        super().__init__(f"refusing to load {path}: it would import {name}, which is not plain data "
                         "(only network weights, numbers and containers are read from pickles)")
        self.name = name


class SafeUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose globals come only from ALLOWED; persistent ids are refused too."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(self.path, f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"refusing to load {self.path}: it refers to external objects (persistent id)")


def load(path: str | Path) -> Any:
    """Unpickle `path` into data (records, tensors, arrays, containers) without running any of its code."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f, path).load()
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, MemoryError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt ({type(exc).__name__})") from None


def first_global(path: str | Path, limit: int = 1 << 20) -> str | None:
    """`module.name` of the first global a pickle file names, read from its opcodes (nothing is executed).

    None when the file is not a pickle, or names no global within its first `limit` bytes.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(limit)
    except OSError:
        return None
    if not head.startswith(b"\x80"):
        return None
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(head)):
            if op.name in ("GLOBAL", "INST"):
                return str(arg).replace(" ", ".", 1)
            if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
            if isinstance(arg, str):
                strings.append(arg)
    except (ValueError, EOFError, pickle.UnpicklingError, TypeError):
        return None
    return None
