"""An endless, resumable, sharded stream of real minibatches.

The order is a pure function of (seed, epoch): each epoch is a fresh permutation, and process `rank`
of `world` takes every world-th index of it. The stream's whole state is two integers, so a resumed
run continues with exactly the images the uninterrupted run would have seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ganbench.data.base import ImageDataset

CACHE_LIMIT_BYTES = 1 << 29   # keep decoded images of datasets up to 512 MiB in memory


class DataStream:
    """Yields (uint8 NCHW, float32 labels) minibatches of `batch` images for one process."""

    def __init__(self, dataset: ImageDataset, batch: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.dataset, self.batch, self.seed, self.rank, self.world = dataset, int(batch), int(seed), rank, world
        self.epoch, self.pos = 0, 0
        size = len(dataset) * dataset.num_channels * dataset.resolution ** 2
        self._cache: dict[int, np.ndarray] | None = {} if size <= CACHE_LIMIT_BYTES else None
        self._order: np.ndarray | None = None
        self._order_epoch = -1

    def _shard(self) -> np.ndarray:
        if self._order_epoch != self.epoch:
            perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.dataset))
            shard = perm[self.rank::self.world]
            self._order = shard if len(shard) else perm[:1]
            self._order_epoch = self.epoch
        assert self._order is not None
        return self._order

    def _image(self, index: int) -> np.ndarray:
        if self._cache is None:
            return self.dataset.image(index)
        img = self._cache.get(index)
        if img is None:
            img = self._cache[index] = np.ascontiguousarray(self.dataset.image(index))
        return img

    def next_indices(self) -> list[int]:
        """Dataset indices of the next minibatch (advances the stream)."""
        out: list[int] = []
        while len(out) < self.batch:
            order = self._shard()
            take = order[self.pos:self.pos + self.batch - len(out)]
            out.extend(int(i) for i in take)
            self.pos += len(take)
            if self.pos >= len(order):
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next minibatch as (uint8 NCHW tensor, float32 [N, label_dim] tensor)."""
        idx = self.next_indices()
        images = torch.from_numpy(np.stack([self._image(i) for i in idx]))
        labels = torch.from_numpy(np.stack([self.dataset.label(i) for i in idx]).astype(np.float32))
        return images, labels

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": int(self.epoch), "pos": int(self.pos)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
