"""Datasets as uint8 NCHW images plus optional labels: the embedded `shapes` set, image folders, zips, .npz."""

from ganbench.data.base import ImageDataset
from ganbench.data.shapes import ShapesDataset
from ganbench.data.sources import EMBEDDED, FORMATS, open_dataset

__all__ = ["EMBEDDED", "FORMATS", "ImageDataset", "ShapesDataset", "open_dataset"]
