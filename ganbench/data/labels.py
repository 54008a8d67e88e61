"""Label files in the NVlabs `dataset.json` format, and the per-image annotation file `attributes.json`.

`dataset.json`: `{"labels": [[relative_name, label], ...]}` (or `"labels": null` for none), where
every label is either an int class (turned into a one-hot vector of size max+1) or a list of numbers
(used as is; all the same length). ganbench also reads an optional `"label_dim"` key that fixes the
one-hot size, so a subset that happens to miss the last class keeps its label space; NVlabs' tools
ignore the key. Names are paths relative to the dataset root with `/` separators.

`attributes.json` (written by `ganbench datasets export` for datasets with known ground truth such as
`shapes`): `{"format": "ganbench-attributes", "attributes": [[relative_name, {...}], ...], ...}`.

Labels are kept compact (`LabelTable`: one int per image for classes, one-hot only on access), and
every size is checked before anything is allocated: at most `MAX_LABEL_DIM` classes or vector entries,
finite values only, and JSON nested too deeply for the parser is an error rather than a RecursionError.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ganbench.errors import DataError

LABEL_FILE = "dataset.json"
ATTRIBUTE_FILE = "attributes.json"
ATTRIBUTE_FORMAT = "ganbench-attributes"
# Far above any real class count (ImageNet-21k: 21841) and small enough that one one-hot row, or a
# conditional network's label embedding, still fits in memory.
MAX_LABEL_DIM = 1 << 16


@dataclass(frozen=True)
class LabelTable:
    """Per-image labels: int classes (`classes`, one-hot of size `dim` on access) or float32 `vectors`."""

    dim: int
    classes: np.ndarray | None = None   # int64 [N]
    vectors: np.ndarray | None = None   # float32 [N, dim]

    def __len__(self) -> int:
        return len(self.classes if self.classes is not None else self.vectors)

    def row(self, index: int) -> np.ndarray:
        """The float32 label vector of image `index` (a fresh array the caller owns)."""
        if self.classes is None:
            return self.vectors[index].copy()
        onehot = np.zeros([self.dim], dtype=np.float32)
        onehot[self.classes[index]] = 1.0
        return onehot

    def head(self, n: int | None) -> "LabelTable":
        """The labels of the first `n` images (all when None); the label space stays the same."""
        if n is None:
            return self
        return LabelTable(self.dim, None if self.classes is None else self.classes[:n],
                          None if self.vectors is None else self.vectors[:n])


def class_labels(classes: np.ndarray, where: str, names: list[str] | None = None,
                 declared_dim: Any = None) -> LabelTable:
    """Validate int classes (non-negative, fewer than MAX_LABEL_DIM) into a LabelTable."""
    def name(i: int) -> str:
        return f"{names[i]!r}" if names is not None else f"image {i}"

    if len(classes) and classes.min() < 0:
        i = int(np.argmin(classes))
        raise DataError(f"{where}: class label of {name(i)} is negative ({classes[i]})")
    dim = int(classes.max()) + 1 if len(classes) else 0
    if dim > MAX_LABEL_DIM:
        i = int(np.argmax(classes))
        raise DataError(f"{where}: class label of {name(i)} is {classes[i]}; at most {MAX_LABEL_DIM} classes "
                        f"(0..{MAX_LABEL_DIM - 1}) are supported")
    if declared_dim is not None:
        if (not isinstance(declared_dim, int) or isinstance(declared_dim, bool) or declared_dim < dim
                or declared_dim > MAX_LABEL_DIM):
            raise DataError(f"{where}: label_dim {str(declared_dim)[:40]} must be an int from the largest class + 1 "
                            f"({dim}) to {MAX_LABEL_DIM}")
        dim = declared_dim
    return LabelTable(dim, classes=classes.astype(np.int64, copy=False))


def vector_labels(vectors: np.ndarray, where: str, names: list[str] | None = None) -> LabelTable:
    """Validate float label vectors [N, D] (finite, D <= MAX_LABEL_DIM) into a LabelTable."""
    if vectors.shape[1] > MAX_LABEL_DIM:
        raise DataError(f"{where}: label vectors have {vectors.shape[1]} entries; at most {MAX_LABEL_DIM} are supported")
    vectors = vectors.astype(np.float32)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        who = f"{names[i]!r}" if names is not None else f"image {i}"
        raise DataError(f"{where}: the label of {who} is not finite ({vectors[i].tolist()[:4]}); "
                        f"labels must be finite numbers")
    return LabelTable(int(vectors.shape[1]), vectors=vectors)


def _preview(value: Any) -> str:
    """The first characters of `value` as text, also for values nested too deeply to print."""
    try:
        return str(value)[:80]
    except RecursionError:
        return "<deeply nested value>"


def normalise_name(name: str) -> str:
    """A relative image name with `/` separators and no leading `./`."""
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _load_json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{where} is not valid JSON ({exc})") from None
    except RecursionError:
        raise DataError(f"{where} is nested too deeply to be a label file") from None


def _pairs(doc: Any, key: str, where: str) -> list[tuple[str, Any]] | None:
    """The `[[name, value], ...]` list under `key`, with names normalised; None when the value is null."""
    if not isinstance(doc, dict) or key not in doc:
        raise DataError(f"{where} must be a JSON object with a {key!r} key")
    entries = doc[key]
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise DataError(f"{where}: {key!r} must be a list of [name, value] pairs or null")
    pairs, seen = [], set()
    for entry in entries:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DataError(f"{where}: every {key!r} entry must be [name, value], got {_preview(entry)}")
        name = normalise_name(entry[0])
        if name in seen:
            raise DataError(f"{where} lists {name!r} twice")
        seen.add(name)
        pairs.append((name, entry[1]))
    return pairs


def _check_names(pairs: list[tuple[str, Any]], image_names: list[str], where: str) -> dict[str, Any]:
    """Map name -> value; every entry must name an image and every image must have an entry."""
    table = dict(pairs)
    known = set(image_names)
    missing = [name for name in table if name not in known]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{where} references {missing[0]!r}{more}, which is not an image of the dataset")
    unlabelled = [name for name in image_names if name not in table]
    if unlabelled:
        more = f" (and {len(unlabelled) - 1} more)" if len(unlabelled) > 1 else ""
        raise DataError(f"{where} has no entry for image {unlabelled[0]!r}{more}")
    return table


def parse_labels(raw: bytes, image_names: list[str], where: str) -> LabelTable | None:
    """Parse a dataset.json into labels in `image_names` order, or None when it says `"labels": null`."""
    doc = _load_json(raw, where)
    pairs = _pairs(doc, "labels", where)
    if pairs is None:
        return None
    table = _check_names(pairs, image_names, where)
    values = [table[name] for name in image_names]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        # Range-check Python ints before numpy sees them: 10**30 would overflow int64.
        for name, v in zip(image_names, values):
            if not 0 <= v < MAX_LABEL_DIM:
                why = "negative" if v < 0 else "too large"
                raise DataError(f"{where}: class label of {name!r} is {why} ({_preview(v)}); classes must be from 0 "
                                f"to {MAX_LABEL_DIM - 1}")
        return class_labels(np.asarray(values, dtype=np.int64), where, image_names, doc.get("label_dim"))
    if all(isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
           for v in values):
        lengths = {len(v) for v in values}
        if len(lengths) != 1 or 0 in lengths:
            raise DataError(f"{where}: label vectors must all have the same non-zero length, got lengths "
                            f"{sorted(lengths)[:5]}")
        for name, v in zip(image_names, values):
            if not all(math.isfinite(x) for x in v):
                raise DataError(f"{where}: the label of {name!r} is not finite ({_preview(v)}); labels must be "
                                f"finite numbers")
        if lengths.pop() > MAX_LABEL_DIM:
            raise DataError(f"{where}: label vectors have more than {MAX_LABEL_DIM} entries")
        try:
            return vector_labels(np.asarray(values, dtype=np.float64), where, image_names)
        except OverflowError:
            raise DataError(f"{where}: a label value is out of range for a number") from None
    kinds = sorted({type(v).__name__ for v in values})
    raise DataError(f"{where}: labels must be all ints (classes) or all lists of numbers, got {', '.join(kinds)}")


def written_as_classes(labels: list[int | np.ndarray], label_dim: int) -> bool:
    """Whether `labels` (int classes or vectors) may be written as int classes: all are classes and the largest is
    label_dim - 1, since NVlabs' loaders (and ganbench's for a file without `label_dim`) take max + 1 as the label
    size; otherwise they are written as vectors, which every reader keeps as they are."""
    return bool(labels) and all(isinstance(x, (int, np.integer)) for x in labels) and \
        max(int(x) for x in labels) + 1 == label_dim


def labels_document(names: list[str], labels: list[int | np.ndarray] | None, label_dim: int = 0) -> dict[str, Any]:
    """The dataset.json content: NVlabs' `{"labels": [[name, class or vector], ...]}`.

    `labels` holds one entry per name: an int class, or a float vector. Classes are written as ints (plus
    ganbench's `label_dim`, which NVlabs' readers ignore) only when the largest class present is label_dim - 1:
    NVlabs' loader takes max + 1 as the label size, so a subset holding classes 0-2 of 6 (or one-hot vectors of 5
    with classes 0-2) would be a 3-class dataset there and a 6-class one here. Otherwise, and as soon as one entry
    is a vector, all are written as vectors, which both read as they are.
    """
    if labels is None or label_dim == 0:
        return {"labels": None}
    if written_as_classes(labels, label_dim):
        return {"labels": [[n, int(c)] for n, c in zip(names, labels)], "label_dim": int(label_dim)}
    rows = []
    for x in labels:
        if isinstance(x, (int, np.integer)):
            x = np.eye(label_dim, dtype=np.float32)[int(x)]
        rows.append([float(v) for v in x])
    return {"labels": [[n, row] for n, row in zip(names, rows)]}


def compact_label(row: np.ndarray) -> int | np.ndarray:
    """A one-hot row as its class index, any other row unchanged (keeps exported label lists small)."""
    nonzero = np.flatnonzero(row)
    if len(nonzero) == 1 and row[nonzero[0]] == 1 and np.all((row == 0) | (row == 1)):
        return int(nonzero[0])
    return row


def parse_attributes(raw: bytes, image_names: list[str], where: str) -> list[dict[str, Any]]:
    """Parse an attributes.json into one dict per image, in `image_names` order."""
    doc = _load_json(raw, where)
    if not isinstance(doc, dict) or doc.get("format") != ATTRIBUTE_FORMAT:
        raise DataError(f"{where} is not a ganbench attributes file (format {ATTRIBUTE_FORMAT!r})")
    pairs = _pairs(doc, "attributes", where) or []
    table = _check_names(pairs, image_names, where)
    rows = [table[name] for name in image_names]
    for name, row in zip(image_names, rows):
        if not isinstance(row, dict):
            raise DataError(f"{where}: attributes of {name!r} must be an object")
    return rows
