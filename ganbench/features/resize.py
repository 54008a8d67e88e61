"""Image resizing for feature extractors as two small interpolation matrices (one batched matmul per axis).

Bilinear and bicubic resizing are linear and separable: out = Ry @ img @ Rx^T per channel. Building
Ry/Rx once per input size and applying them to the whole uint8 batch replaces a per-image resize call
(and its Python loop) with two matmuls, and the uint8 -> float conversion happens on the small input.

- `tf1_bilinear_matrix`: TensorFlow 1.x `resize_bilinear(align_corners=False)` as torch-fidelity
  reproduces it (source position = i * in/out in float32, floor, clamp the upper neighbour).
- `pil_bicubic_matrix`: PIL's bicubic resize of a float ('F') image (clean-fid's "clean" resizer).
  The coefficients are read off PIL itself by resizing an identity image, so they are PIL's own
  (including its antialiasing support when shrinking), not a re-derivation.
"""

from __future__ import annotations

import numpy as np
import torch


def tf1_bilinear_matrix(n_in: int, n_out: int = 299) -> torch.Tensor:
    """[n_out, n_in] float32 matrix of TF1 bilinear resizing along one axis (align_corners=False)."""
    pos = torch.arange(n_out, dtype=torch.float32) * torch.tensor(n_in / n_out, dtype=torch.float32)
    lo = pos.long()
    hi = (lo + 1).clamp_max(n_in - 1)
    frac = (pos - lo.float()).double()
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, lo), 1 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m.float()


def pil_bicubic_matrix(n_in: int, n_out: int = 299) -> torch.Tensor:
    """[n_out, n_in] float32 matrix of PIL's bicubic resize of a float image along one axis."""
    from PIL import Image

    if n_in == n_out:
        return torch.eye(n_out)
    eye = Image.fromarray(np.eye(n_in, dtype=np.float32), mode="F")
    rows = np.asarray(eye.resize((n_out, n_in), resample=Image.BICUBIC))  # horizontal pass only
    return torch.from_numpy(np.ascontiguousarray(rows.T, dtype=np.float32))


def separable_resize(images: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor) -> torch.Tensor:
    """Resize uint8 (or float) NCHW `images` with row matrix `ry` [H', H] and column matrix `rx` [W', W]."""
    x = images.to(ry.dtype)
    return torch.matmul(torch.matmul(ry, x), rx.T)


__all__ = ["pil_bicubic_matrix", "separable_resize", "tf1_bilinear_matrix"]
