"""`inception`: the FID Inception-v3 (TF 2015-12-05 weights): pool3 2048-d features + 1008 unbiased logits.

Two weight formats, both resolved through `ganbench.assets`:

- TorchScript (`inception-2015-12-05.pt`, NVlabs; what clean-fid uses). This file is a TorchScript
  archive loaded with `torch.jit.load` (a serialized graph, not a Python pickle). The network is
  clean-fid's `InceptionV3W` wrapper and the resizing is clean-fid's `build_resizer`:
    * `clean` (default): PIL bicubic float resize to 299 outside the network (clean-fid "clean");
    * `legacy_tensorflow`: the network's own TF-style bilinear resize (NVlabs / TF FID numbers);
    * `legacy_pytorch`: torch bilinear resize to 299 outside the network (clean-fid "legacy_pytorch").
- state dict (`weights-inception-2015-12-05-6726825d.pth`, torch-fidelity; pytorch-fid's
  `pt_inception-2015-12-05-6726825d.pth` is the same file, same hash prefix), mode `torch_fidelity`:
  torch-fidelity's module definition with its TF1-compatible bilinear resize; the file is read with
  `torch.load(weights_only=True)`.

IS logits are the 1008 logits computed without the output bias (NVlabs, torch-fidelity's
'logits_unbiased').
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ganbench.errors import AssetError, ConfigError
from ganbench.features.base import EXTRACTORS, FeatureExtractor
from ganbench.features.resize import pil_bicubic_matrix, separable_resize, tf1_bilinear_matrix

TORCHSCRIPT_MODES = ("clean", "legacy_tensorflow", "legacy_pytorch")
MODES = TORCHSCRIPT_MODES + ("torch_fidelity",)
TORCHSCRIPT_NAME = "inception-2015-12-05.pt"  # the name clean-fid's InceptionV3W loads from its folder


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _load_cleanfid(path: Path, resize_inside: bool) -> torch.nn.Module:
    """clean-fid's InceptionV3W on `path` (linked under the name it expects when the file is named otherwise)."""
    from cleanfid.inception_torchscript import InceptionV3W

    if path.name == TORCHSCRIPT_NAME:
        return InceptionV3W(str(path.parent), download=False, resize_inside=resize_inside)
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(path.resolve(), Path(tmp) / TORCHSCRIPT_NAME)
        return InceptionV3W(tmp, download=False, resize_inside=resize_inside)


def _output_weight(module: torch.nn.Module) -> torch.Tensor | None:
    """The 1008x2048 output-layer weight of the TorchScript network, if it has one."""
    for _, p in module.named_parameters():
        if tuple(p.shape) == (1008, 2048):
            return p.detach()
        if tuple(p.shape) == (2048, 1008):
            return p.detach().T
    return None


TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
         "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
         "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool")
"""torch-fidelity's blocks from the 299 px input to the 2048-d pool, in order."""


@EXTRACTORS.register("inception")
class InceptionExtractor(FeatureExtractor):
    """FID Inception-v3: 'features' (pool3, 2048-d) and 'logits' (1008, no output bias).

    Speed (same numbers to float round-off): batch norms are folded into the convolutions at load
    (eval mode), each conv runs fused with its ReLU, activations are channels-last, and the `clean` /
    `torch_fidelity` resizes run as one batched separable matmul on the uint8 batch
    (`ganbench.features.resize`). `compile=True` wraps the
    torch-fidelity trunk in `torch.compile` (inductor's on-disk cache makes later runs start warm); it
    is off by default because a cold compile costs more than it saves at small N. A metric pass runs the
    batches inside `ganbench.heap.reuse_freed_memory`, so each batch reuses the pages of the one before
    (on CPU a sixth of the pass went to faulting in fresh activations).
    """

    name = "inception"
    feature_dim = 2048
    outputs = ("features", "logits")

    def __init__(self, mode: str = "clean", weights: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu", compile: bool | str = False) -> None:
        super().__init__()
        from ganbench import assets

        if mode not in MODES:
            raise ConfigError(f"unknown inception mode {mode!r}; known: {', '.join(MODES)}")
        self.mode = self.resize_mode = mode
        self.device = torch.device(device)
        self.compile = _as_bool(compile, "compile")
        self._pool = None
        self._matrices: dict[int, torch.Tensor] = {}
        _require_package(mode)  # before the weights: a missing package is not the file's fault
        if mode == "torch_fidelity":  # pytorch-fid's file is the same weights under another name
            path = assets.resolve_any(["inception-torch-fidelity", "inception-pytorch-fid"], weights)
        else:
            path = assets.resolve("inception-nvlabs", weights)
        self.weights_path = path
        self.weights_sha256 = assets.sha256_file(path)
        try:
            if mode == "torch_fidelity":
                self.net = _load_torch_fidelity(path)
                self.fc_weight = self.net.fc.weight.detach()
            else:
                from cleanfid.resize import build_resizer

                self.net = _load_cleanfid(path, resize_inside=mode == "legacy_tensorflow")
                self.fc_weight = _output_weight(self.net.base)
                self.resizer = build_resizer(mode)
        except Exception as exc:  # any failure to read the file is the file's fault: one line naming it
            raise AssetError(f"{path} is not a usable Inception weight file for mode {mode!r} "
                             f"({_first_line(exc)})") from None
        self.net.eval().requires_grad_(False).to(self.device)
        if mode == "torch_fidelity":
            trunk = torch.nn.Sequential(*[getattr(self.net, n) for n in TRUNK]).eval()
            self.trunk = _fold_batch_norms(trunk).to(memory_format=torch.channels_last)
            if self.compile:
                self.trunk = torch.compile(self.trunk, dynamic=False)
        elif mode != "legacy_tensorflow":  # that mode runs the whole network with its internal resize
            self.trunk = _freeze(self.net.layers)
        if self.fc_weight is not None:
            self.fc_weight = self.fc_weight.to(self.device)

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"inception expects uint8 Nx3xHxW images, got {tuple(images.shape)} {images.dtype}")
        images = images.to(self.device)
        if self.mode == "legacy_tensorflow":  # the TorchScript network's own TF-style resize
            x = images.float()
            feats = self.net(x)
        else:
            if self.mode == "legacy_pytorch":  # clean-fid's per-image torch resizer outside the network
                hwc = images.permute(0, 2, 3, 1).cpu().numpy()
                x = torch.from_numpy(np.stack(self._resize_all(hwc))).permute(0, 3, 1, 2).to(self.device)
            else:
                x = self._resize(images)
            x = ((x - 128) / 128).contiguous(memory_format=torch.channels_last)
            feats = self.trunk(x).reshape(x.shape[0], 2048)
        if self.fc_weight is not None:
            logits = feats @ self.fc_weight.to(feats).T
        else:  # the network only exposes probabilities (computed without the output bias): log recovers the logits
            probs = self.net.base(x, no_output_bias=True)
            logits = torch.log(probs.clamp_min(1e-30))
        return {"features": feats.float().cpu(), "logits": logits.float().cpu()}

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> float 299x299 in pixel units: TF1 bilinear (torch_fidelity) or PIL bicubic + clip (clean)."""
        if images.shape[2] == images.shape[3] == 299:  # both resizers are the identity at the network's size
            return images.float()
        out = separable_resize(images, self._matrix(images.shape[2]), self._matrix(images.shape[3]))
        return out if self.mode == "torch_fidelity" else out.clamp_(0, 255)  # clean-fid clips bicubic overshoot

    def _matrix(self, n_in: int) -> torch.Tensor:
        if n_in not in self._matrices:
            build = tf1_bilinear_matrix if self.mode == "torch_fidelity" else pil_bicubic_matrix
            self._matrices[n_in] = build(n_in, 299).to(self.device)
        return self._matrices[n_in]

    def _resize_all(self, hwc: np.ndarray) -> list[np.ndarray]:
        """clean-fid's per-image resizer over a batch, on a few threads (PIL releases the GIL while resizing)."""
        if len(hwc) < 2:
            return [self.resizer(im) for im in hwc]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
        return list(self._pool.map(self.resizer, hwc))


MODE_PACKAGES = {"torch_fidelity": ("torch_fidelity", "torch-fidelity"),
                 **{mode: ("cleanfid", "clean-fid") for mode in TORCHSCRIPT_MODES}}
"""The package whose network module each mode runs: (import name, pip name)."""


def _require_package(mode: str) -> None:
    """A ConfigError naming the package `mode` needs and how to install it, when it cannot be imported."""
    import importlib.util

    module, pip_name = MODE_PACKAGES[mode]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken install
        found = False
    if not found:
        raise ConfigError(f"inception mode {mode!r} runs the {pip_name} package's network, which is not "
                          f"installed: pip install {pip_name}")


def _as_bool(value: bool | str, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"inception option {what}={value!r} is not a boolean (use 1/0, true/false)")


class _ConvReLU(torch.nn.Module):
    """A BasicConv2d with its eval-mode batch norm folded in: conv + bias + ReLU as one oneDNN call on CPU.

    relu(conv(x)) to float round-off (oneDNN may pick another kernel than the eager conv: ~1e-6 on the
    2048-d features), 3-5 % faster on the whole trunk; other devices, dtypes, autocast and torch.compile run
    the pair."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if (_FUSED_CONV_RELU and x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad
                and not torch.is_autocast_enabled("cpu")  # autocast applies to the eager conv, not to this op
                and not torch.compiler.is_compiling()):  # torch.compile fuses the eager pair itself
            return torch.ops.mkldnn._convolution_pointwise(x, c.weight, c.bias, list(c.padding), list(c.stride),
                                                          list(c.dilation), c.groups, "relu", [], "")
        return torch.relu(c(x))


_FUSED_CONV_RELU = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def _fold_batch_norms(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every eval-mode `conv` + `bn` (+ ReLU) block (torch-fidelity's BasicConv2d) by one fused conv.

    The folded weights are torch's own `fuse_conv_bn_weights`, written into the block's conv (no copy of
    the module, which took a sixth of the extractor's build)."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    for parent in list(module.modules()):
        for name, block in list(parent.named_children()):
            conv, bn = getattr(block, "conv", None), getattr(block, "bn", None)
            if type(block).__name__ == "BasicConv2d" and isinstance(conv, torch.nn.Conv2d) \
                    and isinstance(bn, torch.nn.BatchNorm2d) and not bn.training:
                conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean,
                                                              bn.running_var, bn.eps, bn.weight, bn.bias)
                setattr(parent, name, _ConvReLU(conv))
    return module


def _freeze(layers: torch.nn.Module) -> torch.nn.Module:
    """The TorchScript trunk frozen (constants inlined, conv+BN folded); the trunk itself if freezing fails."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, not removed
            return torch.jit.freeze(layers.eval())
    except Exception:  # an exotic TorchScript file: still correct, just unfused
        return layers


def _load_torch_fidelity(path: Path) -> torch.nn.Module:
    """torch-fidelity's Inception module with a state dict read by torch.load(weights_only=True).

    torch-fidelity itself would unpickle the file unrestricted and fill its layers with a random init
    first. It is built on the meta device instead, handed an in-memory file of tensor shapes only, and
    then given the tensors we already loaded safely (`assign=True`: no copy).
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("expected a flat state dict of tensors")
    shapes = io.BytesIO()
    torch.save({k: v.to("meta") for k, v in state.items()}, shapes)
    shapes.seek(0)
    with torch.device("meta"):
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                          feature_extractor_weights_path=shapes)
    net.load_state_dict(state, assign=True)
    return net.to(torch.float32)
