"""The dataset interface every source (embedded shapes, folder, zip, npz) implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class ImageDataset(Dataset, ABC):
    """Images as uint8 CHW tensors at one power-of-two resolution, with float32 label vectors.

    `identity` is a string that changes whenever the pixels could change (source, size, resolution,
    seed, ...); it keys every on-disk cache of real-data statistics.
    """

    name: str = "dataset"
    resolution: int
    num_channels: int
    label_dim: int = 0
    # The first image's stored (width, height), before any crop or resize; None where the images are made, not read
    source_size: tuple[int, int] | None = None

    @property
    @abstractmethod
    def identity(self) -> str:
        """Cache key for everything derived from these pixels."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def image(self, index: int) -> np.ndarray:
        """One image as uint8 CHW numpy array."""

    def label(self, index: int) -> np.ndarray:
        """One label vector (float32, shape [label_dim]); empty when the dataset is unlabelled."""
        return np.zeros([self.label_dim], dtype=np.float32)

    def annotations(self, index: int) -> dict[str, Any] | None:
        """Per-image ground truth beyond the label (e.g. shapes attributes), or None when unknown."""
        return None

    def describe(self) -> dict[str, Any]:
        """What `ganbench datasets info` prints: size, resolution, channels, label_dim, identity."""
        return {"name": self.name, "source": self.source, "images": len(self), "resolution": self.resolution,
                "channels": self.num_channels, "label_dim": self.label_dim, "identity": self.identity}

    @property
    def source(self) -> str:
        """Where the pixels come from (a path, or `embedded`)."""
        return "embedded"

    def verify(self, progress: Callable[[int], None] | None = None) -> None:
        """Decode every image and label once, raising DataError at the first bad one; `progress(k)` per image."""
        for i in range(len(self)):
            self.image(i)
            self.label(i)
            if progress is not None:
                progress(1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = np.ascontiguousarray(self.image(index))
        if not image.flags.writeable:   # a decoded grayscale PNG is a read-only view: torch warns on those
            image = image.copy()
        return torch.from_numpy(image), torch.from_numpy(self.label(index))

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0, num_workers: int = 0,
               drop_last: bool = False) -> DataLoader:
        """A DataLoader yielding (uint8 NCHW, float32 labels [N, label_dim]) batches, seeded when shuffled."""
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, generator=generator,
                          num_workers=num_workers, drop_last=drop_last)
