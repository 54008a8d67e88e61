"""Writes nvlabs_augment.npz: NVlabs' own ADA pipeline applied to fixed images, the reference tests/test_augment.py
compares ganbench's AugmentPipe with.

    python tests/reference/make_nvlabs_augment.py PATH/TO/stylegan3   # a checkout of github.com/NVlabs/stylegan3

It runs on the CPU (NVlabs' ops fall back to their reference implementations there). The images are uniform noise
from numpy's RandomState(0), the hardest case for resampling filters; each preset is applied after
torch.manual_seed(SEED), so ganbench's pipe, drawing its random numbers in NVlabs' order, must give the same images.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import torch

SEED = 3
CASES = {"bgc": 1.0, "bgcfnc": 0.6}     # preset -> p
OUT = Path(__file__).with_name("nvlabs_augment.npz")


def main(repo: str) -> None:
    if "pkg_resources" not in sys.modules:   # NVlabs' gradfix ops import it only to compare torch versions
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            from packaging.version import parse

            sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)
    sys.path.insert(0, str(Path(repo).resolve()))
    from training.augment import AugmentPipe as NVlabsPipe

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from ganbench.train.augment import PRESETS

    torch.set_num_threads(1)
    x = np.random.RandomState(0).uniform(-1, 1, size=(3, 3, 24, 24)).astype(np.float32)
    arrays = {"x": x, "seed": np.int64(SEED)}
    for name, p in CASES.items():
        pipe = NVlabsPipe(**PRESETS[name])
        pipe.p.copy_(torch.tensor(p))
        torch.manual_seed(SEED)
        with torch.no_grad():
            arrays[f"{name}_out"] = pipe(torch.from_numpy(x)).numpy()
        arrays[f"{name}_p"] = np.float64(p)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
