"""The generic training loop: the family supplies networks, loss and schedule; the loop does the rest.

Per minibatch, phases run in StyleGAN2-ADA's order (G main, G reg, D main, D reg); a regulariser with
interval k runs every k-th minibatch with gain k, and its optimizer gets the lazy-regularisation
correction lr * r, betas ** r with r = k / (k + 1). Then the EMA generator moves towards G with a
half-life of `ema_kimg` thousand images (ramped up over the first images), ADA's p is updated, and
ticks (a stats line), snapshots (a checkpoint and an image grid) and the progress bar follow.

Everything a run depends on (weights, optimizers, augment p, ADA statistics, pl_mean, image count,
minibatch index, every RNG, the data order) is in each snapshot, so a resumed run continues exactly;
a run folder is only resumed with the settings recorded in its snapshot (options.py), and every option
is validated before any work. Multi-process runs (torchrun) all-reduce gradients, shard the data and
seed each rank differently; only rank 0 prints and writes (output.py: tick lines, stats, TensorBoard).
A loss that becomes NaN or inf (a diverged run) is one warning line naming the loss and kimg, repeated in the
closing `done:` line; like NVlabs' loop the run goes on, unless `stop_on_nan` (then it stops with an error at
that minibatch, writing no snapshot of the diverged networks).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import resource
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ganbench.checkpoint import load_checkpoint, load_state_strict, save_checkpoint, snapshot_kimg, snapshot_name
from ganbench.devices import autotune_convolutions, process_device, resolve_device, use_exact_fp32
from ganbench.errors import CheckpointError, ConfigError, NonFiniteError, ResumeMismatch
from ganbench.heap import training_phase
from ganbench.train.augment import AdaController, AugmentPipe, build_augment_pipe
from ganbench.train.data_stream import DataStream
from ganbench.train.losses import GANLoss, build_loss
from ganbench.train.options import (REG_INTERVAL_KEYS, check_run_options, check_train_settings,
                                    settings_mismatch)
from ganbench.train.output import RunOutput, format_time, memory_gb, summary_writer
from ganbench.train.progressive import (LodSchedule, has_lod, level_changed, level_settings, make_schedule,
                                        per_level_table, process_reals, set_lod)
from ganbench.train.transfer import TransferSetup

# Keys of `spec.train` (overridable per run) and the loop's defaults for those a family leaves out.
TRAIN_DEFAULTS: dict[str, Any] = {
    "loss": "ns-r1", "lr_g": 0.002, "lr_d": 0.002, "betas": (0.0, 0.99), "eps": 1e-8,
    # r1_interval / pl_interval None: no lazy regularisation, as 1 (NVlabs' D_reg_interval / G_reg_interval None)
    "r1_gamma": 10.0, "r1_interval": None, "pl_weight": None, "pl_interval": None, "pl_decay": 0.01,
    "pl_batch_shrink": 2, "style_mixing": 0.0, "ema_kimg": 10.0, "ema_rampup": 0.05,
    "augment": None, "ada_target": 0.6, "ada_interval": 4, "ada_kimg": 500.0, "augment_p": 0.0,
    "progressive": None, "blur_sigma": 0.0, "blur_fade_kimg": 0.0,
    "gp_lambda": 10.0, "drift": 1e-3,
    "ema_update": None, "zero_terms": None,   # the family's reference policy (losses.py); None: the loss's default
    # The TF loops of ProGAN / StyleGAN (progressive.py): per-level minibatch and lr tables (resolution -> value;
    # --batch, lr_g and lr_d are the fallbacks), settings re-evaluated every `sched_repeats` minibatches, Adam
    # reset at each new level, D before G with G_ema updated in the D step, a fixed per-step EMA decay (ProGAN).
    "batch_schedule": None, "lr_schedule": None, "sched_repeats": 1, "reset_adam_per_level": False,
    "step_order": "g_first", "ema_step_beta": None,
}
DEFAULT_AUGMENT_PIPE = "bgc"
# Keys a preset's `spec.train` records as its published recipe but the run takes from its own options.
RUN_FLAGS = {"kimg": "--kimg", "batch": "--batch"}
TRAIN_DEFAULTS_ADA_TARGET = 0.6


@dataclass
class TrainOptions:
    """Everything that defines a run besides the family's own defaults."""

    model: str
    data: str
    resolution: int
    kimg: float
    batch: int | None                        # None: the preset's (or family's) published batch
    seed: int
    out: Path
    preset: str | None = None
    snapshot_kimg: float = 4.0
    initial_snapshot: bool = True            # a new run first writes its initial networks as kimg 0, as NVlabs' loop
    resume: bool = True
    cond: bool = False
    augment: bool | str | None = None       # None: family default; True: family pipe or bgc; str: pipe name
    device: str | None = None
    tick_kimg: float | None = None           # stats line interval (default min(1, snapshot_kimg))
    grid: tuple[int, int] = (8, 4)
    progress: bool = False                   # a progress bar, drawn only when stderr is a terminal
    quiet: bool = False                      # no printed lines (stats.jsonl and TensorBoard are still written)
    stop_kimg: float | None = None           # stop after the first snapshot at or past this (time-boxed runs)
    stop_on_nan: bool = False                # stop (an error) at the first non-finite loss; NVlabs keeps going
    resume_from: Path | None = None          # start a new run from this network file's weights (NVlabs --resume)
    freeze_d: int = 0                        # freeze D's first N layers (NVlabs --freezed)
    mirror: bool = False                     # x-flip doubling of the dataset (NVlabs --mirror)
    crop: str | None = None                  # center (default), center-wide[:H] or none; see ganbench.data
    resize: str | None = None                # lanczos (default) or box
    skip_unknown: bool = False               # ignore non-image files in a dataset folder or zip
    network: dict[str, Any] = field(default_factory=dict)   # model_zoo.build overrides
    train: dict[str, Any] = field(default_factory=dict)     # spec.train overrides


# ---------------------------------------------------------------------------------------------------
# Small pure helpers.

def lazy_adam_params(lr: float, betas: tuple[float, float], interval: int | None) -> tuple[float, tuple[float, float]]:
    """Adam lr and betas corrected for a regulariser that runs every `interval` minibatches."""
    if not interval or interval <= 1:
        return lr, (float(betas[0]), float(betas[1]))
    ratio = interval / (interval + 1)
    return lr * ratio, (float(betas[0]) ** ratio, float(betas[1]) ** ratio)


def ema_beta(batch: int, cur_nimg: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """Per-step EMA decay giving a half-life of `ema_kimg` thousand images (shorter early with ramp-up)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """Move G_ema's parameters towards G's by (1 - beta); copy buffers."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def images_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] to uint8 the NVlabs way: clamp(x * 127.5 + 128), truncate."""
    return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def grid_png(images: torch.Tensor, grid_w: int) -> Callable[[Any], None]:
    """A writer of a PNG tiling uint8 NCHW `images` in rows of `grid_w`."""
    from PIL import Image

    n, c, h, w = images.shape
    grid_h = (n + grid_w - 1) // grid_w
    canvas = torch.zeros([c, grid_h * h, grid_w * w], dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, grid_w)
        canvas[:, r * h:(r + 1) * h, col * w:(col + 1) * w] = images[i]
    arr = canvas.permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[:, :, 0] if c == 1 else arr, "L" if c == 1 else "RGB")
    return lambda f: img.save(f, format="PNG")


def rng_state(device: torch.device = torch.device("cpu")) -> dict[str, Any]:
    """Every RNG this process uses, as tensors and plain data (loadable with weights_only); on CUDA the
    generator of the training device (saved by device, not by position among the visible GPUs)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_device"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device = torch.device("cpu")) -> None:
    """Restore what `rng_state` captured; the CUDA generator goes to the training `device` (a run may resume
    on another index, or with fewer GPUs visible)."""
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].cpu().numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if device.type != "cuda" or not torch.cuda.is_available():
        return
    cuda = state.get("cuda_device")
    if cuda is None and state.get("cuda"):  # older snapshots: every visible GPU's state by position
        old = state["cuda"]
        cuda = old[device.index or 0] if (device.index or 0) < len(old) else None
    if cuda is not None:
        torch.cuda.set_rng_state(cuda.cpu(), device)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and python random."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    random.seed(seed)


def latest_snapshot(out: Path) -> Path | None:
    """The newest `network-snapshot-*.pt` in `out`, or None."""
    snaps = [(kimg, p) for p in out.glob("network-snapshot-*.pt") if (kimg := snapshot_kimg(p.name)) is not None]
    return max(snaps)[1] if snaps else None


def open_training_data(spec: str, resolution: int, **options: Any) -> tuple[Any, list[str]]:
    """The dataset behind `spec` at `resolution` (shapes, shapes:N or a path) and its warnings as lines.

    `options` are the data options the user set (mirror, crop, resize, skip_unknown); unset ones are
    left out, so each source keeps its defaults and rejects options that do not apply to it.
    """
    from ganbench.data import open_dataset

    kw = {k: v for k, v in options.items() if v not in (None, False)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        dataset = open_dataset(spec, resolution=resolution, **kw)
    return dataset, [f"warning: {' '.join(str(w.message).split())}" for w in caught]


# ---------------------------------------------------------------------------------------------------
# Distributed helpers (no-ops in a single process).

@dataclass
class Dist:
    """Rank, world size and the collectives the loop needs."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False
    device: torch.device = torch.device("cpu")   # where collective buffers live (CUDA for nccl)

    @classmethod
    def from_env(cls, device_type: str) -> "Dist":
        """Join the torchrun process group when WORLD_SIZE > 1."""
        import torch.distributed as dist

        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cpu")
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        owns = False
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
            owns = True
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, owns, device)

    def all_reduce_grads(self, module: nn.Module) -> None:
        """Average gradients over processes; sanitise non-finite values.

        As NVIDIA's loop, only parameters that have a gradient take part: one that no rank's loss reached
        keeps grad None, so Adam skips it (no step count, no moment decay). A parameter reached on some
        ranks only (a random branch) counts as zero on the others, so every replica steps the same set.
        """
        params = [p for p in module.parameters() if p.requires_grad]
        if self.world > 1 and params:
            import torch.distributed as dist

            has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=self.device)
            dist.all_reduce(has)
            params = [p for p, n in zip(params, has.tolist()) if n > 0]
            if not params:
                return
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
            dist.all_reduce(flat)
            flat /= self.world
            torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad = g.reshape(p.shape).clone()
        else:
            for p in params:
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)

    def average_buffers(self, module: nn.Module) -> None:
        """Average floating-point buffers (w_avg, magnitude EMAs) so every replica holds the same state."""
        bufs = [b for b in module.buffers() if b.is_floating_point()]
        if self.world <= 1 or not bufs:
            return
        import torch.distributed as dist

        flat = torch.cat([b.detach().flatten().to(torch.float64) for b in bufs])
        dist.all_reduce(flat)
        flat /= self.world
        for b, v in zip(bufs, flat.split([b.numel() for b in bufs])):
            b.copy_(v.reshape(b.shape).to(b.dtype))

    def sum_floats(self, values: list[float]) -> list[float]:
        """Sum a list of floats over processes."""
        if self.world <= 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.cpu().tolist()

    def broadcast_module(self, module: nn.Module) -> None:
        """Give every process rank 0's parameters and buffers."""
        if self.world <= 1:
            return
        import torch.distributed as dist

        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order."""
        if self.world <= 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self, ok: bool = True) -> None:
        """Leave the process group. On a normal finish every rank first waits for the others (rank 0 is
        still writing the last snapshot), so no rank tears its gloo connections down under a peer that is
        still using them; after an error it leaves at once (a barrier could wait forever)."""
        if self.owns_group:
            import torch.distributed as dist

            if ok:
                dist.barrier()
            dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------

@dataclass
class Phase:
    """One optimisation phase: which network, which optimizer, every how many minibatches."""

    name: str
    module: nn.Module
    opt: torch.optim.Optimizer
    interval: int


class Trainer:
    """One run: built from TrainOptions, resumed from the newest snapshot if asked, then `run()`."""

    def __init__(self, opts: TrainOptions) -> None:
        import model_zoo

        check_run_options(opts)
        if opts.batch is None:
            opts = dataclasses.replace(opts, batch=model_zoo.default_batch(opts.model, opts.resolution, opts.preset))
        self.opts = opts
        self.out = Path(opts.out)
        dev = resolve_device(opts.device)  # None / auto: CUDA when present; a device this machine lacks is refused
        if dev.type not in ("cpu", "cuda"):
            raise ConfigError(f"--device {opts.device}: training runs on cpu or cuda")
        self.device = process_device(dev)  # cuda -> cuda:LOCAL_RANK under torchrun, else the current index
        self.dist = Dist.from_env(self.device.type)
        use_exact_fp32(self.device)  # CUDA: no TF32, as NVlabs' training loop
        autotune_convolutions(self.device)  # CUDA: cudnn.benchmark, as NVlabs' training loop
        if opts.batch < 1 or opts.batch % self.dist.world:
            raise ConfigError(f"--batch {opts.batch} must be a positive multiple of the process count "
                              f"{self.dist.world}")
        self.batch_gpu = opts.batch // self.dist.world

        self.dataset, self.data_notes = open_training_data(
            opts.data, opts.resolution, mirror=opts.mirror, crop=opts.crop, resize=opts.resize,
            skip_unknown=opts.skip_unknown)
        if self.dataset.resolution != opts.resolution:
            raise ConfigError(f"dataset {opts.data} has resolution {self.dataset.resolution}, "
                              f"not --resolution {opts.resolution}")
        if opts.cond and self.dataset.label_dim == 0:
            raise ConfigError(f"--cond needs labels, but dataset {opts.data} has none")

        net_kw = {"img_channels": self.dataset.num_channels, **dict(opts.network)}
        if opts.cond:
            net_kw["c_dim"] = self.dataset.label_dim
        if opts.preset is not None:
            net_kw["preset"] = opts.preset
        self.transfer = TransferSetup.from_options(opts, net_kw)   # --resume-from config / --freeze-d (train/transfer.py)
        self.opts = opts = self.transfer.opts
        net_kw = self.transfer.net_kw
        seed_everything(opts.seed)     # identical initial weights on every rank
        try:
            spec = model_zoo.build(opts.model, opts.resolution, batch=opts.batch, **net_kw)
        except (TypeError, ValueError, ZeroDivisionError) as exc:   # a value the builder cannot use
            raise ConfigError(f"model {opts.model!r}: bad option ({str(exc).splitlines()[0][:200]})") from None
        self.config = spec.config
        self.G, self.D = spec.G.to(self.device).train(), spec.D.to(self.device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.transfer.apply(self.G, self.D, self.G_ema)   # pretrained weights, frozen D layers
        for m in (self.G, self.D, self.G_ema):
            self.dist.broadcast_module(m)
        self.c_dim = int(getattr(self.G, "c_dim", 0) or 0)

        for key, flag in RUN_FLAGS.items():   # a preset's recipe values the loop does not read: the run uses flags
            if key in opts.train:
                raise ConfigError(f"--set {key}={opts.train[key]!r}: the run's {key} is set with {flag}, not --set")
        unknown = [k for k in opts.train if k not in TRAIN_DEFAULTS and k not in spec.train]
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(sorted(unknown))}; known: "
                              f"{', '.join(sorted(set(TRAIN_DEFAULTS) | set(spec.train)))}")
        self.train_cfg = {**TRAIN_DEFAULTS, **spec.train, **opts.train}
        check_train_settings(self.train_cfg, given=set(opts.train))
        tc = self.train_cfg

        pipe_name = tc["augment"]
        if opts.augment is False:
            pipe_name = None
        elif opts.augment is True:
            pipe_name = pipe_name or DEFAULT_AUGMENT_PIPE
        elif isinstance(opts.augment, str):
            pipe_name = opts.augment
        self.augment_name = pipe_name
        self.augment_pipe: AugmentPipe | None = None
        self.ada: AdaController | None = None
        if pipe_name:
            self.augment_pipe = build_augment_pipe(pipe_name, p=float(tc["augment_p"])).to(self.device)
            target = tc["ada_target"]
            if target is None and opts.augment not in (None, False):
                target = TRAIN_DEFAULTS_ADA_TARGET   # ADA forced on for a family without its own target
            if target is not None:
                self.ada = AdaController(self.augment_pipe, float(target), int(tc["ada_interval"]),
                                         float(tc["ada_kimg"]))

        # None: the loss's default, except for the lazy-regularisation intervals, where None is NVlabs' "no lazy
        # regularisation" (one *both phase, Adam unscaled: interval 1), so it is passed on
        loss_kw = {k: v for k, v in tc.items() if k != "loss" and (v is not None or k in REG_INTERVAL_KEYS)}
        self.loss: GANLoss = build_loss(tc["loss"], self.G, self.D, self.augment_pipe, **loss_kw)
        if self.ada is not None:
            self.loss.on_real_logits = self.ada.accumulate
        intervals = self.loss.reg_intervals()
        self.phases: list[Phase] = []
        for name, module, lr in (("G", self.G, float(tc["lr_g"])), ("D", self.D, float(tc["lr_d"]))):
            interval = intervals[name]
            lr_, betas = lazy_adam_params(lr, tuple(tc["betas"]), interval)
            opt = torch.optim.Adam(module.parameters(), lr=lr_, betas=betas, eps=float(tc["eps"]))
            if interval is None:
                self.phases.append(Phase(name + "both", module, opt, 1))
            else:
                self.phases += [Phase(name + "main", module, opt, 1), Phase(name + "reg", module, opt, interval)]
        self.optimizers = {"G": self.phases[0].opt, "D": self.phases[-1].opt}

        self.progressive = has_lod(self.G) or has_lod(self.D)
        self.schedule: LodSchedule | None = (make_schedule(tc["progressive"], opts.resolution, opts.kimg)
                                             if self.progressive else None)
        self.lod = 0.0
        self.batch_table = per_level_table(tc["batch_schedule"], "batch_schedule", int)
        self.lr_table = per_level_table(tc["lr_schedule"], "lr_schedule", float)
        if (self.batch_table or self.lr_table) and self.schedule is None:
            raise ConfigError(f"batch_schedule / lr_schedule are per-level tables of progressive growing; "
                              f"{opts.model} does not grow")
        small = {r: b for r, b in self.batch_table.items() if b < self.dist.world}
        if small:
            raise ConfigError(f"batch_schedule {small}: fewer images than the {self.dist.world} processes")
        if tc["ema_kimg"] is None and tc["ema_step_beta"] is None:
            raise ConfigError("ema_kimg=None needs ema_step_beta (a fixed G_ema decay per minibatch)")
        self.sched_repeats = int(tc["sched_repeats"])
        self.sched_nimg = 0                      # cur_nimg when the level settings in force were evaluated
        self.prev_lod: float | None = None       # the lod of the previous evaluation (TF's prev_lod; Adam reset)
        self.batch_now = opts.batch

        self.stream = DataStream(self.dataset, self.batch_gpu, opts.seed, self.dist.rank, self.dist.world)
        self.labels = (torch.from_numpy(np.stack([self.dataset.label(i) for i in range(len(self.dataset))]))
                       if self.c_dim else None)
        self.cur_nimg = 0
        self.batch_idx = 0
        self.total_nimg = int(round(opts.kimg * 1000))
        self.resumed_from: Path | None = None
        self.diverged: str | None = None        # "loss/G is NaN at kimg 0.012": the first non-finite losses
        seed_everything(opts.seed * self.dist.world + self.dist.rank)
        if opts.resume:
            snap = latest_snapshot(self.out)
            if snap is not None:
                self._restore(snap)
        self.output = RunOutput(self.out, enabled=self.dist.rank == 0, quiet=opts.quiet, progress=opts.progress,
                                resume_nimg=self.cur_nimg)

    # -- state ---------------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """Self-description stored with every snapshot."""
        train = {k: v for k, v in self.train_cfg.items()}
        # `kimg` and `batch` of a preset are its published recipe; what ran is --kimg and --batch (the loop never
        # reads the preset's kimg), so the record says those: a report's config shows this run's length.
        train.update({"kimg": self.opts.kimg, "batch": self.opts.batch, "total_kimg": self.opts.kimg,
                      "augment_pipe": self.augment_name,
                      "world_size": self.dist.world, "data": self.opts.data, "crop": self.opts.crop,
                      "resize": self.opts.resize, "mirror": self.opts.mirror, **self.transfer.metadata()})
        return {"arch": self.opts.model, "config": self.config, "dataset": self.dataset.identity,
                "resolution": self.opts.resolution, "seed": self.opts.seed, "kimg": self.cur_nimg / 1000,
                "train": train}

    def local_state(self) -> dict[str, Any]:
        """What differs between processes: RNGs, data order, ADA statistics, loss running values."""
        return {"rng": rng_state(self.device), "data_order": self.stream.state_dict(),
                "ada": self.ada.state_dict() if self.ada is not None else None, "loss": self.loss.state_dict()}

    def state(self, ranks: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything needed to continue exactly; per-process parts are lists indexed by rank."""
        return {
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "augment_p": float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0,
            "pl_mean": float(self.loss.state_dict().get("pl_mean", torch.zeros([]))),
            "cur_nimg": int(self.cur_nimg), "batch_idx": int(self.batch_idx), "world_size": self.dist.world,
            "schedule": {"nimg": int(self.sched_nimg), "prev_lod": self.prev_lod},
            **{key: [r[key] for r in ranks] for key in ("rng", "data_order", "ada", "loss")},
        }

    def _restore(self, path: Path) -> None:
        # On the CPU: load_state_dict moves weights and Adam's moments to the parameters' device, and the
        # RNG states and Adam's step counts must stay CPU tensors (as in a fresh run).
        ckpt = load_checkpoint(path, map_location="cpu")
        meta = ckpt.metadata
        if meta.get("arch") != self.opts.model or meta.get("resolution") != self.opts.resolution:
            why = (f"{path} is a {meta.get('arch')} run at {meta.get('resolution')}px, not {self.opts.model} at "
                   f"{self.opts.resolution}px")
            raise ResumeMismatch(f"{why}; use another --out or --no-resume", why)
        if meta.get("config") != self.config:
            why = f"{path} was trained with network config {meta.get('config')}, not {self.config}"
            raise ResumeMismatch(f"{why}; use another --out or --no-resume", why)
        differ = settings_mismatch(meta, self.metadata())
        old_kimg = (meta.get("train") or {}).get("total_kimg")
        if (self.schedule is not None and isinstance(old_kimg, (int, float))
                and make_schedule(self.train_cfg["progressive"], self.opts.resolution, float(old_kimg)) != self.schedule):
            differ.append(f"--kimg: recorded {old_kimg:g}, now {self.opts.kimg:g} (the growing schedule is fitted to "
                          f"the run's length, so it would change)")
        if differ:
            more = f" (and {len(differ) - 1} more: {'; '.join(differ[1:])})" if len(differ) > 1 else ""
            why = f"{self.out} holds a run with other settings, {differ[0]}{more}"
            raise ResumeMismatch(f"{why}; resume it with the recorded settings, or start fresh with --no-resume "
                                 f"(moves the old run's files into replaced-<time>/) or another --out", why)
        st = ckpt.state
        for name in ("G", "D", "G_ema"):   # a mismatch names the missing / unexpected keys
            load_state_strict(getattr(self, name), st.get(name), f"{path}: {name}")
        try:
            for k, o in self.optimizers.items():
                o.load_state_dict(st["optimizers"][k])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{path} cannot be resumed: {str(exc).splitlines()[0][:200]}") from None
        same_world = st.get("world_size") == self.dist.world
        mine = self.dist.rank if same_world else 0
        if self.augment_pipe is not None:
            self.augment_pipe.p.fill_(float(st.get("augment_p", 0.0)))
            if self.ada is not None and st["ada"][mine]:
                self.ada.load_state_dict(st["ada"][mine])
        self.loss.load_state_dict(st["loss"][mine] or {})
        self.cur_nimg, self.batch_idx = int(st["cur_nimg"]), int(st.get("batch_idx", 0))
        sched = st.get("schedule") or {}
        self.sched_nimg = int(sched.get("nimg", self.cur_nimg))
        self.prev_lod = sched.get("prev_lod")
        if "schedule" not in st and self.schedule is not None:   # older snapshot: no reset on resuming
            self.prev_lod = self.schedule.lod(self.sched_nimg / 1000)
        if self.schedule is not None and self.batch_idx % self.sched_repeats != 0:
            self._apply_level(reset=False)    # resumed inside a group of minibatches: its settings, no reset
        if same_world:
            set_rng_state(st["rng"][self.dist.rank], self.device)
            self.stream.load_state_dict(st["data_order"][self.dist.rank])
        else:   # different process count: continue deterministically, but not identically
            seed_everything(self.opts.seed * self.dist.world + self.dist.rank + self.cur_nimg)
            self.stream.load_state_dict({"epoch": self.cur_nimg // max(len(self.dataset), 1) + 1, "pos": 0})
        self.resumed_from = path

    # -- one minibatch -------------------------------------------------------------------------------
    def _sample_c(self, n: int) -> torch.Tensor | None:
        if not self.c_dim or self.labels is None:
            return None
        idx = torch.randint(len(self.labels), [n])
        return self.labels[idx].to(self.device)

    def _apply_level(self, reset: bool) -> None:
        """Evaluate the growing schedule at `sched_nimg`; set lod, minibatch and lrs; reset Adam on a new level."""
        assert self.schedule is not None
        tc = self.train_cfg
        lv = level_settings(self.schedule, self.opts.resolution, self.sched_nimg / 1000, self.opts.batch,
                            float(tc["lr_g"]), float(tc["lr_d"]), self.batch_table, self.lr_table, self.dist.world)
        if reset and tc["reset_adam_per_level"] and level_changed(lv.lod, self.prev_lod):
            for opt in self.optimizers.values():
                opt.state.clear()             # TF's reset_optimizer_state: moments and step count start over
        self.prev_lod = lv.lod
        self.lod = lv.lod
        set_lod([self.G, self.D, self.G_ema], self.lod)
        intervals = self.loss.reg_intervals()
        for name, lr in (("G", lv.lr_g), ("D", lv.lr_d)):
            scaled, _ = lazy_adam_params(lr, tuple(tc["betas"]), intervals[name])
            for group in self.optimizers[name].param_groups:
                group["lr"] = scaled
        self.batch_now = lv.batch
        self.stream.batch = lv.batch // self.dist.world

    def _run_phases(self, phases: list[tuple[Phase, tuple]], real: torch.Tensor, real_c: torch.Tensor | None,
                    stats: dict[str, float]) -> None:
        for phase, (gen_z, gen_c) in phases:
            if self.batch_idx % phase.interval != 0:
                continue
            self.G.requires_grad_(phase.module is self.G)
            self.D.requires_grad_(phase.module is self.D)
            with training_phase(self.device):  # CPU: free heap returned first; opt-in reuse (ganbench.heap)
                stats.update(self.loss.accumulate_gradients(phase.name, real, real_c, gen_z, gen_c,
                                                            gain=float(phase.interval)))
                self.dist.all_reduce_grads(phase.module)
                phase.opt.step()
            # every phase starts with no gradients (NVIDIA zeroes them at the phase's start); dropping them right
            # after the step also keeps them out of the next phases' peak memory
            phase.opt.zero_grad(set_to_none=True)
        self.G.requires_grad_(False)
        self.D.requires_grad_(False)

    def _sync_buffers(self) -> None:
        self.dist.average_buffers(self.G)
        self.dist.average_buffers(self.D)

    def _update_ema(self) -> None:
        tc = self.train_cfg
        if tc["ema_step_beta"] is not None:
            beta = float(tc["ema_step_beta"])     # ProGAN: a fixed decay per minibatch, whatever its size
        else:
            beta = ema_beta(self.batch_now, self.cur_nimg, float(tc["ema_kimg"]), tc["ema_rampup"])
        update_ema(self.G_ema, self.G, beta)

    def step(self) -> dict[str, float]:
        """Train on one minibatch (all due phases), update EMA and ADA; returns the phases' stats."""
        if self.schedule is not None and self.batch_idx % self.sched_repeats == 0:   # a new group of minibatches
            self.sched_nimg = self.cur_nimg
            self._apply_level(reset=True)
        self.loss.set_progress(self.cur_nimg)
        images, labels = self.stream.next()
        real = images.to(self.device).to(torch.float32) / 127.5 - 1
        real = process_reals(real, self.lod)
        real_c = labels.to(self.device) if self.c_dim else None
        z_dim = int(self.G.z_dim)
        n = self.batch_now // self.dist.world
        gen = [(torch.randn([n, z_dim]).to(self.device), self._sample_c(n)) for _ in self.phases]
        work = list(zip(self.phases, gen))

        stats: dict[str, float] = {}
        if self.train_cfg["step_order"] == "d_first":
            # ProGAN / StyleGAN TF: run([D_train_op, Gs_update_op]) then run([G_train_op]) per minibatch.
            self._run_phases([w for w in work if w[0].module is self.D], real, real_c, stats)
            self._sync_buffers()
            self._update_ema()
            self._run_phases([w for w in work if w[0].module is self.G], real, real_c, stats)
            self._sync_buffers()
        else:
            self._run_phases(work, real, real_c, stats)
            self._sync_buffers()
            self._update_ema()
        self.cur_nimg += self.batch_now
        self.batch_idx += 1
        if self.ada is not None:
            rt = self.ada.step(self.batch_now, reduce=self.dist.sum_floats)
            if rt is not None:
                stats["ada/rt"] = rt
        return stats

    # -- outputs -------------------------------------------------------------------------------------
    def _grid_inputs(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = self.opts.grid[0] * self.opts.grid[1]
        z = torch.randn([n, int(self.G.z_dim)], generator=torch.Generator().manual_seed(self.opts.seed))
        c = None
        if self.c_dim:
            c = torch.eye(self.c_dim)[torch.arange(n) % self.c_dim]
        return z.to(self.device), (c.to(self.device) if c is not None else None)

    @torch.no_grad()
    def _grid_writer(self) -> Callable[[Any], None]:
        """A PNG writer of G_ema on the fixed grid latents (const noise), rendered now."""
        z, c = self._grid_inputs()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            imgs = torch.cat([self.G_ema(zb, None if c is None else c[i:i + len(zb)], noise_mode="const")
                              for i, zb in zip(range(0, len(z), 16), z.split(16))])
        return grid_png(images_to_uint8(imgs).cpu(), self.opts.grid[0])

    def write_grid(self, name: str) -> None:
        """G_ema on the fixed grid latents, as a PNG written atomically into the run folder (rank 0)."""
        self.output.write(name, self._grid_writer())

    def _reals_writer(self) -> Callable[[Any], None]:
        """The first grid's worth of real images, for comparison with the fakes grids."""
        n = min(self.opts.grid[0] * self.opts.grid[1], len(self.dataset))
        imgs = torch.from_numpy(np.stack([self.dataset.image(i) for i in range(n)]))
        return grid_png(imgs, self.opts.grid[0])

    def snapshot(self, label_nimg: int | None = None) -> Path | None:
        """Checkpoint + grid (rank 0 writes; every rank contributes its RNG and data-order state).

        The file is named after `label_nimg` (default: the current image count), the snapshot boundary the
        step crossed, as NVlabs names snapshots by the kimg they stand for rather than the exact count.
        """
        ranks = self.dist.gather(self.local_state())
        if self.dist.rank != 0:
            return None
        name = snapshot_name((self.cur_nimg if label_nimg is None else label_nimg) / 1000)
        self.output.open()
        path = save_checkpoint(self.out / name, self.state(ranks), self.metadata())
        self.write_grid(name.replace("network-snapshot-", "fakes").replace(".pt", ".png"))
        return path

    # -- what a person sees --------------------------------------------------------------------------
    def announce(self) -> str:
        """The run's first line: new or resumed, model, dataset, parameters, device."""
        if self.resumed_from is not None:
            what = f"resuming from {self.resumed_from.name} at kimg {self.cur_nimg / 1000:g}"
        else:
            what = "new run"
        ds = self.dataset
        preset = f" (preset {self.opts.preset})" if self.opts.preset else ""
        g = sum(p.numel() for p in self.G.parameters())
        d = sum(p.numel() for p in self.D.parameters())
        procs = f" x {self.dist.world} processes" if self.dist.world > 1 else ""
        extras = []
        if self.augment_name:
            extras.append(f"augment {self.augment_name}")
        if self.c_dim:
            extras.append(f"conditional on {self.c_dim} labels")
        logs = "stats.jsonl + TensorBoard" if summary_writer() is not None else "stats.jsonl"
        batch = f"batch {self.opts.batch}"
        levels = {r: b for r, b in sorted(self.batch_table.items()) if r <= self.opts.resolution}
        if levels:
            batch = f"batch per level {', '.join(f'{r}px {b}' for r, b in levels.items())} (else {self.opts.batch})"
        return (f"{what}: {self.opts.model}{preset} {self.opts.resolution}px, {self.opts.kimg:g} kimg, "
                f"{batch}{', ' + ', '.join(extras) if extras else ''} | data {self.opts.data} "
                f"({len(ds)} images, {ds.num_channels} ch, {ds.identity}) | G {g / 1e6:.2f}M + D {d / 1e6:.2f}M "
                f"parameters | device {self.device}{procs} | {logs} in {self.out}")

    def _tick_record(self, tick: int, acc: dict[str, list[float]], now: float, t_start: float, t_tick: float,
                     cpu_tick: float, kimg_tick: float, maintenance: float) -> dict[str, Any]:
        record = {
            "tick": tick, "kimg": self.cur_nimg / 1000, "cur_nimg": self.cur_nimg,
            "sec": round(now - t_start, 3), "sec_per_tick": round(now - t_tick, 3),
            "s_per_kimg": round((now - t_tick) / kimg_tick, 3),
            "cpu_sec_per_kimg": round((time.process_time() - cpu_tick) / kimg_tick, 3),
            "maintenance_sec": round(maintenance, 3),
            "augment_p": float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0,
            "lod": self.lod, "batch": self.batch_now, "blur_sigma": self.loss.blur_sigma,
            "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "cpumem_gb": round(memory_gb(), 3),
        }
        if self.device.type == "cuda":
            record["gpumem_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 2 ** 30, 3)
            record["gpumem_reserved_gb"] = round(torch.cuda.max_memory_reserved(self.device) / 2 ** 30, 3)
            torch.cuda.reset_peak_memory_stats(self.device)
        record.update({k: v[0] / max(v[1], 1) for k, v in acc.items()})
        return record

    # -- divergence ----------------------------------------------------------------------------------
    def _check_losses(self, stats: dict[str, float]) -> bool:
        """Note the first minibatch whose losses are non-finite (a diverged run) and log one warning line for it.

        NVlabs' loop trains on with NaN losses (and writes NaN snapshots); so does this one by default, saying
        so once here and again in the closing line. Returns whether the run should stop now (`stop_on_nan`;
        in a multi-process run every process takes the same decision).
        """
        bad = {k: float(v) for k, v in stats.items() if k.startswith("loss/") and not math.isfinite(float(v))}
        if bad and self.diverged is None:
            kinds = {"NaN" if math.isnan(v) else "inf" for v in bad.values()}
            if len(kinds) == 1:
                what = f"{' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} {kinds.pop()}"
            else:
                what = ", ".join(f"{k} is {'NaN' if math.isnan(v) else 'inf'}" for k, v in bad.items())
            self.diverged = f"{what} at kimg {self.cur_nimg / 1000:g}"
            if not self.opts.stop_on_nan:
                self.output.line(f"warning: {self.diverged}: the run has diverged; snapshots from here on will "
                                 f"likely not evaluate or generate (--stop-on-nan stops a run at this point)")
        if not self.opts.stop_on_nan:
            return False
        if self.dist.world > 1:
            return self.dist.sum_floats([1.0 if bad else 0.0])[0] > 0
        return bool(bad)

    def _stop_error(self, last_snapshot: Path | None) -> NonFiniteError:
        what = self.diverged or f"a loss of another process is non-finite at kimg {self.cur_nimg / 1000:g}"
        newest = f"newest snapshot {last_snapshot}" if last_snapshot is not None else "no snapshot written"
        return NonFiniteError(f"{what}: the run diverged; stopped (--stop-on-nan) without a snapshot of the "
                              f"diverged networks; {newest}", source="value")

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> Path:
        """Train until `kimg` (or `stop_kimg`); returns the run folder."""
        opts = self.opts
        out = self.output
        ok = False
        try:
            out.claim()
            if self.cur_nimg == 0:      # rendered now, written with the first output
                out.defer("reals.png", self._reals_writer())
                out.defer("fakes_init.png", self._grid_writer())
            out.line(self.announce())
            for note in self.data_notes:
                out.line(note)
            tick = out.ticks_so_far
            snap_nimg = int(round(opts.snapshot_kimg * 1000))
            tick_nimg = int(round((opts.tick_kimg or min(1.0, opts.snapshot_kimg)) * 1000))
            next_snap = (self.cur_nimg // snap_nimg + 1) * snap_nimg
            next_tick = (self.cur_nimg // tick_nimg + 1) * tick_nimg     # ticks on multiples, also when resumed
            tick_start_nimg = self.cur_nimg
            t_start = t_tick = time.time()
            cpu_tick = time.process_time()
            maintenance = 0.0
            acc: dict[str, list[float]] = {}
            extra = ("lod", "batch") if self.progressive else ()
            last_snapshot: Path | None = None
            if opts.initial_snapshot and self.cur_nimg == 0 and self.resumed_from is None:
                # NVlabs writes network-snapshot-000000 at its first tick, so a run's metrics start from the
                # initial networks; here it is exactly the state before the first step (resumable as such).
                last_snapshot = self.snapshot(0)
            out.start_progress(opts.model, self.total_nimg / 1000, self.cur_nimg / 1000)
            while self.cur_nimg < self.total_nimg:
                stats = self.step()
                for k, v in stats.items():
                    a = acc.setdefault(k, [0.0, 0])
                    a[0] += v
                    a[1] += 1
                halt = self._check_losses(stats)
                done = self.cur_nimg >= self.total_nimg
                out.update_progress(self.cur_nimg / 1000, " ".join(
                    f"{k.split('/')[-1]}={v[0] / max(v[1], 1):.3f}" for k, v in acc.items() if k in ("loss/G", "loss/D")))
                ticked = done or halt or self.cur_nimg >= next_tick
                if ticked:
                    tick_end = time.time()
                    kimg_tick = max(self.cur_nimg - tick_start_nimg, 1) / 1000
                    out.tick(self._tick_record(tick, acc, tick_end, t_start, t_tick, cpu_tick, kimg_tick,
                                               maintenance), extra)
                    acc, tick = {}, tick + 1
                    tick_start_nimg = self.cur_nimg
                    next_tick = (self.cur_nimg // tick_nimg + 1) * tick_nimg
                if halt:          # the diverged minibatch is logged above; its networks are not snapshotted
                    raise self._stop_error(last_snapshot)
                stop = False
                if done or self.cur_nimg >= next_snap:
                    # the last boundary crossed (1.0 kimg for a step ending at 1008 images), or the run's length
                    last_snapshot = self.snapshot(self.total_nimg if done else self.cur_nimg // snap_nimg * snap_nimg)
                    next_snap = (self.cur_nimg // snap_nimg + 1) * snap_nimg
                    stop = opts.stop_kimg is not None and self.cur_nimg >= opts.stop_kimg * 1000
                if ticked:      # as NVlabs: time after a tick's measurement (snapshots, logs) is maintenance
                    t_tick, cpu_tick = time.time(), time.process_time()
                    maintenance = t_tick - tick_end
                if stop:
                    break
            out.stop_progress()
            if last_snapshot is not None:
                of = f" of {opts.kimg:g} (stop_kimg)" if self.cur_nimg < self.total_nimg else ""
                diverged = (f"; diverged: {self.diverged}, so snapshots from then on will likely not evaluate"
                            if self.diverged else "")
                out.line(f"done: {self.cur_nimg / 1000:g} kimg{of} in {format_time(time.time() - t_start)}; "
                         f"newest snapshot {last_snapshot}{diverged}")
            elif self.resumed_from is not None:
                out.line(f"done: the run is already at kimg {self.cur_nimg / 1000:g} (--kimg {opts.kimg:g}); "
                         f"nothing to train")
            ok = True
        finally:
            out.close()
            self.dist.close(ok)
        return self.out
