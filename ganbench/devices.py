"""Device names from the command line -> torch devices, checked before any work starts."""

from __future__ import annotations

import os
from typing import Any

from ganbench.errors import ConfigError

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda, cuda:N"


def resolve_device(spec: Any = "auto") -> Any:
    """`auto`/None -> CUDA when available else CPU; `cpu`, `cuda`, `cuda:N`, `mps` checked against this machine.

    A name torch does not know, or a device this machine lacks, is a ConfigError naming the value (rather
    than a failure deep inside checkpoint loading that blames the file).
    """
    import torch

    text = "auto" if spec is None else str(spec).strip()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"--device {text!r} is not a device; use {DEVICE_HELP}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {text}: CUDA is not available on this machine "
                              f"(use --device cpu, or auto to pick CUDA when present)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {text}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {text}: MPS is not available on this machine")
    elif device.type != "cpu":
        raise ConfigError(f"--device {text}: {device.type} devices are not supported; use {DEVICE_HELP}")
    return device


def use_exact_fp32(device: Any) -> bool:
    """On CUDA, turn TensorFloat-32 off for convolutions and matmuls, as NVlabs' training loop and
    calc_metrics.py do; True when it did. Returns False elsewhere (CPU has no TF32).

    PyTorch lets cuDNN convolutions use TF32 on Ampere and newer GPUs by default (10-bit mantissa inputs):
    training would then not follow NVIDIA's recipe, and an "fp32" Inception pass would drift from the
    numbers published with NVlabs' code. Process-wide, as in NVlabs' scripts; GANBENCH_ALLOW_TF32=1 keeps
    PyTorch's default for a user who wants the speed and says so.
    """
    import torch

    if torch.device(device).type != "cuda" or tf32_allowed(device):
        return False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return True


def tf32_allowed(device: Any) -> bool:
    """Whether work on `device` runs with TensorFloat-32 (CUDA and GANBENCH_ALLOW_TF32=1): its numbers are then
    not IEEE fp32 ones, so eval records it in each row's parameters and such rows are never compared with
    exact ones."""
    import torch

    device = resolve_device(device) if str(device) == "auto" else torch.device(device)
    return device.type == "cuda" and os.environ.get("GANBENCH_ALLOW_TF32", "0") == "1"


def process_device(device: Any) -> Any:
    """The device this process computes on, with an explicit CUDA index.

    A bare `cuda` means the current device, but PyTorch keeps the current device per thread: a background
    thread (eval's generation prefetch) would put its tensors on cuda:0 while the networks sit on
    cuda:LOCAL_RANK. Under torchrun (WORLD_SIZE > 1) every process computes on cuda:LOCAL_RANK; another
    explicit index would put every rank on one GPU, so it is a ConfigError.
    """
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.index is not None and device.index != local:
            raise ConfigError(f"--device {device}: under torchrun each process computes on cuda:LOCAL_RANK "
                              f"(this one on cuda:{local}); pass --device cuda")
        return torch.device("cuda", local)
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


def autotune_convolutions(device: Any) -> bool:
    """On CUDA, let cuDNN time its convolution algorithms once per shape and keep the fastest
    (`cudnn.benchmark`), as NVlabs' training loop does (cudnn_benchmark=True); True when it did.

    Training repeats the same shapes every step, so the one-time search pays for itself at once."""
    import torch

    if torch.device(device).type != "cuda":
        return False
    torch.backends.cudnn.benchmark = True
    return True
