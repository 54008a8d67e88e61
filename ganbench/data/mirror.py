"""x-flip doubling (NVlabs' `--mirror`): the dataset followed by every image flipped left-right."""

from __future__ import annotations

import numpy as np

from ganbench.data.base import ImageDataset


class MirroredDataset(ImageDataset):
    """2N images: index i < N is the base image i, index N + i is it flipped left-right; labels are shared.

    As NVlabs' `xflip`: for training, and for the real data of `eval --mirror`, which scores a run trained so
    against the flipped reals too, as NVlabs' metrics do (eval warns when such a run is scored without it). Flipped
    copies have no ground-truth annotations (positions and rotations would change), so `annotations` gives None.
    """

    def __init__(self, base: ImageDataset) -> None:
        self.base = base
        self.name = base.name
        self.resolution, self.num_channels, self.label_dim = base.resolution, base.num_channels, base.label_dim

    @property
    def identity(self) -> str:
        return f"{self.base.identity}-xflip"

    @property
    def source(self) -> str:
        return self.base.source

    def __len__(self) -> int:
        return 2 * len(self.base)

    def _base_index(self, index: int) -> tuple[int, bool]:
        n = len(self.base)
        if not 0 <= index < 2 * n:
            raise IndexError(f"index {index} out of range for {2 * n} images")
        return index % n, index >= n

    def image(self, index: int) -> np.ndarray:
        i, flipped = self._base_index(index)
        img = self.base.image(i)
        return np.ascontiguousarray(img[:, :, ::-1]) if flipped else img

    def label(self, index: int) -> np.ndarray:
        return self.base.label(self._base_index(index)[0])

    def annotations(self, index: int) -> dict | None:
        i, flipped = self._base_index(index)
        return None if flipped else self.base.annotations(i)
