"""Datasets as uint8 NCHW images plus optional labels: the embedded `shapes` set, image folders, zips, .npz."""

from ganbench.data.base import ImageDataset
from ganbench.data.shapes import ShapesDataset

__all__ = ["ImageDataset", "ShapesDataset"]
