"""What the zoo holds, as plain data: each model's presets, and one model's parameter counts and training defaults."""

from __future__ import annotations

from typing import Any

import torch

from model_zoo import MODELS, build, list_models
from model_zoo.layers import count_params


def _family(name: str) -> Any:
    """The `Family` behind a builder: its `family` attribute, else the module's `Family` of that name, else None."""
    import sys

    from model_zoo._options import Family

    builder = MODELS.get(name)
    family = getattr(builder, "family", None)
    if family is None:
        module = sys.modules.get(getattr(builder, "__module__", None) or "")
        members = vars(module).values() if module is not None else ()
        family = next((v for v in members if isinstance(v, Family) and v.name == name), None)
    return family


def describe_models() -> list[dict[str, Any]]:
    """One row per registered model: name, presets, default preset, one-line description."""
    rows = []
    for name in list_models():
        builder = MODELS.get(name)
        family = _family(name)
        doc = (builder.__doc__ or "").strip().splitlines()
        rows.append({
            "name": name,
            "presets": sorted(family.presets) if family is not None else [],
            "default_preset": family.default_preset if family is not None else None,
            "min_resolution": family.min_resolution if family is not None else 4,
            "description": doc[0] if doc else "",
        })
    return rows


def model_info(name: str, resolution: int, preset: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Parameter counts of G (mapping / synthesis where style-based) and D, the config, the training defaults and
    where each value comes from (`sources`: the reference file and setting, the preset, or "override").

    Networks are built on the meta device, so even 1024px models cost no memory or time.
    """
    with torch.device("meta"):
        spec = build(name, resolution, preset=preset, **overrides)
    G, D = spec.G, spec.D
    params: dict[str, int] = {"G": count_params(G)}
    for part in ("mapping", "synthesis"):
        if isinstance(getattr(G, part, None), torch.nn.Module):
            params[f"G.{part}"] = count_params(getattr(G, part))
    params["D"] = count_params(D)
    shape = {"z_dim": G.z_dim, "c_dim": G.c_dim, "img_resolution": G.img_resolution,
             "img_channels": G.img_channels}
    for attr in ("w_dim", "num_ws"):
        if hasattr(G, attr):
            shape[attr] = int(getattr(G, attr))
    config, train = dict(spec.config), dict(spec.train)
    family = _family(name)
    sources: dict[str, str] = {}
    if family is not None:
        from model_zoo._options import value_sources

        keys = [k for k in (*config, *train) if k not in ("name", "resolution", "preset")]
        sources = value_sources(family, preset, keys, overrides)
    if "kimg" in train and sources.get("kimg") != "override":   # a reference length, not what a run does
        from ganbench.config import DEFAULT_TRAIN_KIMG

        sources["kimg"] = (f"{sources.get('kimg', '')} (reference run length; `ganbench train` runs --kimg, "
                           f"default {DEFAULT_TRAIN_KIMG:g}, and `bench` the suite's kimg)").strip()
    return {"name": name, "resolution": resolution, "preset": preset, "params": params, "network": shape,
            "config": config, "train": train, "sources": sources}
