"""Label files in the NVlabs `dataset.json` format, and the per-image annotation file `attributes.json`.

`dataset.json`: `{"labels": [[relative_name, label], ...]}` (or `"labels": null` for none), where
every label is either an int class (turned into a one-hot vector of size max+1) or a list of numbers
(used as is; all the same length). ganbench also reads an optional `"label_dim"` key that fixes the
one-hot size, so a subset that happens to miss the last class keeps its label space; NVlabs' tools
ignore the key. Names are paths relative to the dataset root with `/` separators.

`attributes.json` (written by `ganbench datasets export` for datasets with known ground truth such as
`shapes`): `{"format": "ganbench-attributes", "attributes": [[relative_name, {...}], ...], ...}`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ganbench.errors import DataError

LABEL_FILE = "dataset.json"
ATTRIBUTE_FILE = "attributes.json"
ATTRIBUTE_FORMAT = "ganbench-attributes"


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
            raise DataError(f"{where}: every {key!r} entry must be [name, value], got {str(entry)[:80]}")
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


def parse_labels(raw: bytes, image_names: list[str], where: str) -> np.ndarray | None:
    """Parse a dataset.json into float32 [len(image_names), label_dim] rows in `image_names` order, or None."""
    doc = _load_json(raw, where)
    pairs = _pairs(doc, "labels", where)
    if pairs is None:
        return None
    table = _check_names(pairs, image_names, where)
    values = [table[name] for name in image_names]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        classes = np.asarray(values, dtype=np.int64)
        if classes.min() < 0:
            bad = image_names[int(np.argmin(classes))]
            raise DataError(f"{where}: class label of {bad!r} is negative ({classes.min()})")
        dim = int(classes.max()) + 1
        declared = doc.get("label_dim")
        if declared is not None:
            if not isinstance(declared, int) or declared < dim:
                raise DataError(f"{where}: label_dim {declared!r} is smaller than the largest class + 1 ({dim})")
            dim = declared
        onehot = np.zeros([len(values), dim], dtype=np.float32)
        onehot[np.arange(len(values)), classes] = 1.0
        return onehot
    if all(isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
           for v in values):
        lengths = {len(v) for v in values}
        if len(lengths) != 1 or 0 in lengths:
            raise DataError(f"{where}: label vectors must all have the same non-zero length, got lengths "
                            f"{sorted(lengths)[:5]}")
        return np.asarray(values, dtype=np.float32)
    kinds = sorted({type(v).__name__ for v in values})
    raise DataError(f"{where}: labels must be all ints (classes) or all lists of numbers, got {', '.join(kinds)}")


def labels_document(names: list[str], labels: np.ndarray | None) -> dict[str, Any]:
    """The dataset.json content for `labels` (one-hot rows are written as ints, others as lists)."""
    if labels is None or labels.shape[1] == 0:
        return {"labels": None}
    onehot = bool(np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(axis=1) == 1))
    if onehot:
        classes = labels.argmax(axis=1)
        return {"labels": [[n, int(c)] for n, c in zip(names, classes)], "label_dim": int(labels.shape[1])}
    return {"labels": [[n, [float(x) for x in row]] for n, row in zip(names, labels)]}


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
