"""How metrics treat the generator they measure: never change it, run it in float32 where asked, trust no NaN.

- `measured_generator`: a network in train mode updates its EMAs when called (StyleGAN's `w_avg`,
  StyleGAN3's input magnitude EMAs); metrics run on an eval-mode copy of such a network, as NVlabs'
  metrics do (`copy.deepcopy(G).eval().requires_grad_(False)`). A network already in eval mode (what
  `model_zoo.load` returns) is used as it is.
- `fp32_kwargs`: NVlabs' PPL calls the synthesis network with `force_fp32=True`, so that a network with
  fp16 layers is measured in full precision; these are the keywords to pass for that.
- `require_finite`: NaN or inf in generator output or features means a diverged network; uint8
  conversion and the metrics' statistics would otherwise turn it into a plausible-looking number.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Callable

import numpy as np
import torch

from ganbench.errors import NonFiniteError


def measured_generator(G: Any) -> Any:
    """G when it is not a network or is wholly in eval mode, else an eval-mode copy without gradients."""
    if not isinstance(G, torch.nn.Module) or not any(m.training for m in G.modules()):
        return G
    return copy.deepcopy(G).eval().requires_grad_(False)


def has_fp16_layers(G: Any) -> bool:
    """Whether any layer of G runs in float16 when it can (model_zoo's `use_fp16` blocks and layers)."""
    return isinstance(G, torch.nn.Module) and any(bool(getattr(m, "use_fp16", False)) for m in G.modules())


def fp32_kwargs(G: Any, fn: Callable[..., Any]) -> dict[str, bool]:
    """{'force_fp32': True} when G has fp16 layers and `fn` (G or G.synthesis) takes the keyword, else {}."""
    if not has_fp16_layers(G):
        return {}
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    accepts = any(p.name == "force_fp32" or p.kind is p.VAR_KEYWORD for p in params)
    return {"force_fp32": True} if accepts else {}


def require_finite(values: Any, what: str, source: str) -> None:
    """Raise NonFiniteError naming `what` when `values` (tensor or array) hold NaN or inf."""
    if isinstance(values, torch.Tensor):
        finite = bool(torch.isfinite(values).all())
    else:
        finite = bool(np.isfinite(np.asarray(values, dtype=np.float64)).all())
    if not finite:
        raise NonFiniteError(f"{what} has non-finite values (NaN or inf)", source=source)
