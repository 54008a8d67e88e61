"""Separable matmul resizes equal the peers' per-image resizers (torch-fidelity TF1 bilinear, clean-fid PIL bicubic)."""

import numpy as np
import pytest
import torch

from ganbench.features.resize import pil_bicubic_matrix, separable_resize, tf1_bilinear_matrix

SIZES = [(32, 32), (64, 48), (299, 299), (400, 320)]  # upsampling, non-square, identity, shrinking


@pytest.mark.parametrize("h,w", SIZES)
def test_tf1_bilinear_matches_torch_fidelity(h, w):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(h + w))
    ref = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299), align_corners=False)
    ours = separable_resize(x, tf1_bilinear_matrix(h), tf1_bilinear_matrix(w))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-4)  # pixel units 0..255: float32 round-off only


@pytest.mark.parametrize("h,w", SIZES)
def test_pil_bicubic_matches_clean_fid(h, w):
    from cleanfid.resize import build_resizer

    x = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(h * w))
    resizer = build_resizer("clean")
    ref = np.stack([resizer(im) for im in x.permute(0, 2, 3, 1).numpy()])
    ours = separable_resize(x, pil_bicubic_matrix(h), pil_bicubic_matrix(w)).clamp(0, 255)
    np.testing.assert_allclose(ours.permute(0, 2, 3, 1).numpy(), ref, rtol=0, atol=2e-4)
    assert ref.max() > 0 and np.abs(ref - ref.mean()).max() > 10  # not a constant image
