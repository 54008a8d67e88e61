"""Checkpoint files: one self-describing file per snapshot, written atomically, loaded without running code.

Two formats, chosen by the file name:
- `.pt` (default): a PyTorch zip archive loaded with `torch.load(weights_only=True)`;
- `.safetensors`: tensors in safetensors, everything else as JSON (tensors replaced by references)
  inside the safetensors header, so the one file is complete and written atomically; a readable copy
  of that JSON is written beside it as `<name>.json` for people and tools (it is never read back).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import torch

import ganbench
from ganbench.errors import CheckpointError

FORMAT = "ganbench-checkpoint"
FORMAT_VERSION = 2   # 2: a StyleGAN2 config's conv_clamp None means no clamp, also with fp16 layers (see
                     # model_zoo/formats/ganbench_checkpoint.py for how version-1 files are read)
REQUIRED_METADATA = ("arch", "config", "resolution")


@dataclass
class Checkpoint:
    """A loaded checkpoint: `state` holds state dicts and tensors (G, D, G_ema, optimizers, ...)."""

    path: Path
    metadata: dict[str, Any]
    state: dict[str, Any]
    format_version: int = FORMAT_VERSION

    @property
    def kimg(self) -> float:
        return float(self.state.get("cur_nimg", 0)) / 1000.0


FINGERPRINT_EDGE = 1 << 20        # bytes read at each end of a file
FINGERPRINT_BLOCKS = 32           # and this many blocks spread between them
FINGERPRINT_BLOCK = 1 << 16


def file_fingerprint(path: str | os.PathLike) -> str:
    """16 hex digits of a sha256 over a file's size, its first and last MiB and 32 blocks of 64 KiB spread between
    them (the whole file when smaller than that): it tells a retrained or replaced network file from the one a
    result row was made from while reading ~4 MB of a file of hundreds, so `eval` can check it for every snapshot
    of a run each time. Training changes every weight, so every sampled block of a retrained file differs."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(str(size).encode())
        budget = 2 * FINGERPRINT_EDGE + FINGERPRINT_BLOCKS * FINGERPRINT_BLOCK
        if size <= budget:
            h.update(f.read())
        else:
            stride = (size - 2 * FINGERPRINT_EDGE) // (FINGERPRINT_BLOCKS + 1)
            starts = [0] + [FINGERPRINT_EDGE + k * stride for k in range(1, FINGERPRINT_BLOCKS + 1)]
            for start in starts:
                f.seek(start)
                h.update(f.read(FINGERPRINT_EDGE if start == 0 else FINGERPRINT_BLOCK))
            f.seek(size - FINGERPRINT_EDGE)
            h.update(f.read(FINGERPRINT_EDGE))
    return h.hexdigest()[:16]


SNAPSHOT_RE = re.compile(r"^network-snapshot-(\d+)(?:\.(\d{3}))?\.pt$")


def snapshot_name(kimg: float) -> str:
    """File name of the snapshot taken at `kimg` thousand images: `network-snapshot-000004.pt` on whole kimg
    (NVlabs' naming), `network-snapshot-000000.250.pt` in between, so snapshots every 0.25 kimg do not
    overwrite each other."""
    whole, frac = divmod(int(round(float(kimg) * 1000)), 1000)
    return f"network-snapshot-{whole:06d}.pt" if frac == 0 else f"network-snapshot-{whole:06d}.{frac:03d}.pt"


def snapshot_kimg(name: str) -> float | None:
    """The kimg a snapshot file name stands for, or None when `name` is not a snapshot name."""
    m = SNAPSHOT_RE.match(name)
    if m is None:
        return None
    return int(m.group(1)) + int(m.group(2) or 0) / 1000


def default_file_mode(directory: bool = False) -> int:
    """The mode a plainly created file (0o666) or folder (0o777) gets under the umask; mkstemp's 0o600 is too tight."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def probe_writable(folder: str | os.PathLike, prefix: str) -> None:
    """Write and remove a small temp file in `folder` (OSError when it cannot take one), before any work."""
    fd, probe = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
        os.unlink(probe)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Call `write(fileobj)` on a temp file beside `path`, fsync, then rename over `path`.

    Readers see either the old file or the complete new one; on any error the temp file is removed
    and the old file is left as it was. A symbolic link is written through (its target gets the new file, the
    link stays); a path that exists and is not a regular file (a fifo, a device) is an OSError, never replaced.
    """
    path = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Exactly these types load under torch.load(weights_only=True); subclasses (e.g. torch's TorchVersion,
# a str subclass, or numpy scalars) do not, so save checks types exactly.
PLAIN_TYPES: tuple[type, ...] = (str, int, float, bool, bytes, type(None), torch.Size, torch.dtype, torch.device)
CONTAINER_TYPES: tuple[type, ...] = (dict, OrderedDict, list, tuple)
TENSOR_TYPES: tuple[type, ...] = (torch.Tensor, torch.nn.Parameter)


def check_loadable(obj: Any, where: str = "state") -> None:
    """Raise CheckpointError naming the first value that torch.load(weights_only=True) would refuse."""
    kind = type(obj)
    if kind in TENSOR_TYPES or kind in PLAIN_TYPES:
        return
    if kind in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in PLAIN_TYPES:
                raise CheckpointError(f"checkpoint {where} has a key of type {type(key).__name__}; use str or int")
            check_loadable(value, f"{where}[{key!r}]")
        return
    if kind in (list, tuple):
        for i, value in enumerate(obj):
            check_loadable(value, f"{where}[{i}]")
        return
    raise CheckpointError(f"checkpoint {where} is a {kind.__module__}.{kind.__qualname__}, which a weights-only "
                          f"load refuses; store tensors, numbers, strings, lists or dicts instead")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write `state` + `metadata` atomically; metadata must let `model_zoo.load` rebuild the networks.

    Every value is checked first, so a checkpoint that could not be loaded back is never written.
    """
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise CheckpointError(f"checkpoint metadata for {path} lacks {', '.join(missing)}")
    meta = {"ganbench_version": ganbench.__version__, "torch_version": str(torch.__version__), **metadata}
    check_loadable(meta, "metadata")
    check_loadable(state, "state")
    check_contents(path, meta, state)
    if Path(path).suffix == SAFETENSORS_SUFFIX:
        return _save_safetensors(Path(path), state, meta)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": meta, "state": state}
    atomic_write_bytes(path, lambda f: torch.save(payload, f))
    return Path(path)


ZIP_MAGIC = b"PK\x03\x04"


def _check_header(path: Path, payload: Any) -> None:
    """Refuse payloads that are not ganbench checkpoints or come from a newer format (either file kind)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ganbench checkpoint (no '{FORMAT}' header)")
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer ganbench (format {version!r}); upgrade ganbench")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint with weights_only=True: a file that would need to run code is refused.

    Only PyTorch's zip format is read (what save_checkpoint writes); a bare pickle is refused unread.
    """
    path = Path(path)
    if path.suffix == ".json" and path.with_suffix(SAFETENSORS_SUFFIX).is_file():
        path = path.with_suffix(SAFETENSORS_SUFFIX)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == SAFETENSORS_SUFFIX:
        return _load_safetensors(path, map_location)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path} ({exc.strerror or type(exc).__name__})") from None
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (truncated write?)")
    if head != ZIP_MAGIC:
        raise CheckpointError(f"{path} is not a ganbench checkpoint (not a PyTorch zip archive)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing them
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"it would import {found.group(1)}" if found else "it holds objects other than tensors and plain data"
        raise CheckpointError(f"refusing to load {path}: {what}; only tensors and plain data are allowed") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__})") from None
    _check_header(path, payload)
    metadata, state = payload.get("metadata"), payload.get("state")
    if not isinstance(metadata, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path} is a damaged ganbench checkpoint (metadata or state is not a dict)")
    check_contents(path, metadata, state)
    return Checkpoint(path=path, metadata=dict(metadata), state=dict(state),
                      format_version=payload.get("format_version", 0))


# -- what a loaded checkpoint must hold ----------------------------------------------------------

NETWORK_KEYS = ("G", "D", "G_ema")


def _kind(value: Any) -> str:
    return "missing" if value is _MISSING else f"a {type(value).__name__} ({value!r:.40})"


_MISSING = object()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_contents(path: str | os.PathLike, metadata: dict[str, Any], state: dict[str, Any]) -> None:
    """Raise one CheckpointError naming the first metadata field or state entry that is missing or of the wrong type.

    A checkpoint is read by model_zoo.load, eval and resumed training; each of them would otherwise fail deep
    inside with a KeyError or TypeError that does not say which field of which file is damaged.
    """
    def bad(field: str, value: Any, expected: str) -> CheckpointError:
        return CheckpointError(f"{path} is a damaged ganbench checkpoint: metadata {field} is {_kind(value)}, "
                               f"expected {expected}")

    arch = metadata.get("arch", _MISSING)
    if not isinstance(arch, str) or not arch:
        raise bad("'arch'", arch, "a model name")
    config = metadata.get("config", _MISSING)
    if not isinstance(config, dict):
        raise bad("'config'", config, "a dict of build options")
    name = config.get("name", _MISSING)
    if not isinstance(name, str) or not name:
        raise bad("config['name']", name, "a model name")
    res = config.get("resolution", _MISSING)
    if not _is_int(res):
        raise bad("config['resolution']", res, "an integer")
    top = metadata.get("resolution", _MISSING)
    if not _is_int(top):
        raise bad("'resolution'", top, "an integer")
    if top != res:
        raise CheckpointError(f"{path} is a damaged ganbench checkpoint: metadata resolution {top} differs from "
                              f"config['resolution'] {res}")
    for field, check, expected in (("kimg", _is_number, "a number"), ("seed", _is_int, "an integer"),
                                   ("train", lambda v: isinstance(v, dict), "a dict")):
        if field in metadata and not check(metadata[field]):
            raise bad(f"'{field}'", metadata[field], expected)
    if "cur_nimg" in state and not _is_int(state["cur_nimg"]):
        raise CheckpointError(f"{path} is a damaged ganbench checkpoint: state 'cur_nimg' is "
                              f"{_kind(state['cur_nimg'])}, expected an integer")
    for key in NETWORK_KEYS:
        if key in state and not isinstance(state[key], Mapping):
            raise CheckpointError(f"{path} is a damaged ganbench checkpoint: state {key!r} is {_kind(state[key])}, "
                                  "expected a state dict")


def _first(names: list[str], n: int = 5) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", ... ({len(names) - n} more)" if len(names) > n else "")


def state_mismatch(own: Mapping[str, Any], given: Mapping[str, Any]) -> str | None:
    """What keeps `given` from loading strictly into a module whose state dict is `own`, or None when it fits.

    Names the first few missing and unexpected keys and shape mismatches, with their counts.
    """
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    wrong = [k for k in own if k in given and (not isinstance(given[k], torch.Tensor)
                                                or tuple(given[k].shape) != tuple(own[k].shape))]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_first(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
    if wrong:
        shapes = [f"{k} {tuple(given[k].shape) if isinstance(given[k], torch.Tensor) else type(given[k]).__name__}"
                  f" vs {tuple(own[k].shape)}" for k in wrong]
        parts.append(f"{len(wrong)} shape mismatch(es) (file vs network): {_first(shapes, 3)}")
    return "; ".join(parts) or None


def load_state_strict(module: torch.nn.Module, state: Any, what: str) -> None:
    """Load `state` into `module` strictly; a mismatch is one CheckpointError naming the keys at fault."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{what}: the weights are a {type(state).__name__}, not a state dict")
    problem = state_mismatch(module.state_dict(), state)
    if problem is not None:
        raise CheckpointError(f"{what} does not fit the network it describes: {problem}")
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:   # e.g. a dtype torch cannot copy; the key checks above passed
        raise CheckpointError(f"{what} does not load: {str(exc).strip().splitlines()[-1][:200]}") from None


# -- .safetensors + JSON ------------------------------------------------------------------------

SAFETENSORS_SUFFIX = ".safetensors"
_HEADER_KEY = "ganbench"
_TAGS = ("__tensor__", "__tuple__", "__bytes__", "__size__", "__dtype__", "__device__", "__dict__")


def encode_plain(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able form of a checked state: tensors move into `tensors` and leave a reference behind."""
    kind = type(obj)
    if kind in TENSOR_TYPES:
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous().clone()  # clone: safetensors refuses shared storage
        return {"__tensor__": key}
    if kind in (str, int, float, bool, type(None)):
        return obj
    if kind is torch.Size:
        return {"__size__": list(obj)}
    if kind is torch.dtype:
        return {"__dtype__": str(obj).removeprefix("torch.")}
    if kind is torch.device:
        return {"__device__": str(obj)}
    if kind is bytes:
        return {"__bytes__": base64.b64encode(obj).decode("ascii")}
    if kind is tuple:
        return {"__tuple__": [encode_plain(v, tensors) for v in obj]}
    if kind is list:
        return [encode_plain(v, tensors) for v in obj]
    if kind in (dict, OrderedDict):
        if all(type(k) is str for k in obj) and not (len(obj) == 1 and next(iter(obj)) in _TAGS):
            return {k: encode_plain(v, tensors) for k, v in obj.items()}
        return {"__dict__": [[encode_plain(k, tensors), encode_plain(v, tensors)] for k, v in obj.items()]}
    raise CheckpointError(f"cannot store a {kind.__qualname__} in a checkpoint")


def decode_plain(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """Inverse of `encode_plain`."""
    if isinstance(obj, list):
        return [decode_plain(v, tensors, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1 and next(iter(obj)) in _TAGS:
        tag, value = next(iter(obj.items()))
        try:
            if tag == "__tensor__":
                return tensors[value]
            if tag == "__tuple__":
                return tuple(decode_plain(v, tensors, where) for v in value)
            if tag == "__bytes__":
                return base64.b64decode(value)
            if tag == "__size__":
                return torch.Size(value)
            if tag == "__dtype__":
                dtype = getattr(torch, value)
                if not isinstance(dtype, torch.dtype):
                    raise ValueError(value)
                return dtype
            if tag == "__device__":
                return torch.device(value)
            return {decode_plain(k, tensors, where): decode_plain(v, tensors, where) for k, v in value}
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            raise CheckpointError(f"{where} is damaged: bad {tag} entry ({type(exc).__name__}: {exc})") from None
    return {k: decode_plain(v, tensors, where) for k, v in obj.items()}


def _save_safetensors(path: Path, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": encode_plain(meta, tensors),
           "state": encode_plain(state, tensors)}
    text = json.dumps(doc, sort_keys=False)
    blob = save(tensors, metadata={_HEADER_KEY: text})
    atomic_write_bytes(path, lambda f: f.write(blob))
    readable = {**doc, "tensors_sha256": hashlib.sha256(blob).hexdigest(), "note": f"a copy; {path.name} is authoritative"}
    atomic_write_bytes(path.with_suffix(".json"), lambda f: f.write(json.dumps(readable, indent=1).encode()))
    return path


def _load_safetensors(path: Path, map_location: str | torch.device) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    device = str(map_location) if not isinstance(map_location, str) else map_location
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            header = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({first})") from None
    if _HEADER_KEY not in header:
        raise CheckpointError(f"{path} is not a ganbench checkpoint (no '{_HEADER_KEY}' entry in its header)")
    try:
        doc = json.loads(header[_HEADER_KEY])
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} is a damaged ganbench checkpoint (its header JSON does not parse)") from None
    _check_header(path, doc)
    metadata = decode_plain(doc.get("metadata"), tensors, str(path))
    state = decode_plain(doc.get("state"), tensors, str(path))
    if not isinstance(metadata, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path} is a damaged ganbench checkpoint (metadata or state is not a dict)")
    check_contents(path, metadata, state)
    return Checkpoint(path=path, metadata=metadata, state=state, format_version=doc.get("format_version", 0))
