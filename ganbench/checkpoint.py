"""Checkpoint files: one self-describing file per snapshot, written atomically, loaded without running code."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

import ganbench
from ganbench.errors import CheckpointError

FORMAT = "ganbench-checkpoint"
FORMAT_VERSION = 1
REQUIRED_METADATA = ("arch", "config", "resolution")


@dataclass
class Checkpoint:
    """A loaded checkpoint: `state` holds state dicts and tensors (G, D, G_ema, optimizers, ...)."""

    path: Path
    metadata: dict[str, Any]
    state: dict[str, Any]

    @property
    def kimg(self) -> float:
        return float(self.state.get("cur_nimg", 0)) / 1000.0


def snapshot_name(kimg: int) -> str:
    """File name of the snapshot taken at `kimg` thousand images."""
    return f"network-snapshot-{int(kimg):06d}.pt"


def default_file_mode(directory: bool = False) -> int:
    """The mode a plainly created file (0o666) or folder (0o777) gets under the umask; mkstemp's 0o600 is too tight."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Call `write(fileobj)` on a temp file beside `path`, fsync, then rename over `path`.

    Readers see either the old file or the complete new one; on any error the temp file is removed
    and the old file is left as it was.
    """
    path = Path(path)
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


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write `state` + `metadata` atomically; metadata must let `model_zoo.load` rebuild the networks."""
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise CheckpointError(f"checkpoint metadata for {path} lacks {', '.join(missing)}")
    meta = {"ganbench_version": ganbench.__version__, "torch_version": str(torch.__version__), **metadata}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": meta, "state": state}
    atomic_write_bytes(path, lambda f: torch.save(payload, f))
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint with weights_only=True: a file that would need to run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"refusing to load {path}: it holds objects other than tensors and plain data "
                              f"({first[:160]})") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ganbench checkpoint (no '{FORMAT}' header)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer ganbench (format {payload['format_version']})")
    return Checkpoint(path=path, metadata=dict(payload["metadata"]), state=dict(payload["state"]))
