"""GPU benchmark suite: training sec/kimg, Inception pass fp32 vs fp16, SWD/PR/PPL throughput, peak memory.

    python benchmarks/gpu_suite.py                       # CUDA, 256 px, the numbers issue 12 asks for
    python benchmarks/gpu_suite.py --device cpu --tiny   # seconds-long smoke run (the test suite runs this)

Rows (all written to one CSV, default reports/gpu_suite.csv):
- train: sec/kimg of `Trainer.step` for stylegan2, stylegan3-t, stylegan3-r at `--resolution` (256), in
  fp32 (NVlabs' `--fp32`: num_fp16_res=0, conv_clamp=None in G and D), mixed precision (num_fp16_res=4,
  conv_clamp=256, NVlabs' defaults) and mixed precision with every network converted to channels_last;
  16 timed steps, so R1 and path-length phases run in proportion; peak GPU memory per row; `note` counts
  the fp16 layers of G and D.
- inception: feature pass images/s in fp32 and under fp16 autocast on the same images, and the FID of
  two image sets computed from each (the fp16 - fp32 difference is the cost of half precision).
  Without `--inception-weights` a random-weight (Kaiming) file in torch-fidelity's format is used, so the
  speed is real but the FID values are not comparable with published ones.
- swd / pr / ppl: images/s of each metric on a generator of the suite (PR with `--pr-extractor`,
  default vgg16; PPL with LPIPS when its weights are present, else shapes-net distance: see ppl.py).
  A metric whose weights cannot be resolved offline is a row with status 'skipped: ...', not a crash.

Peak memory: torch.cuda.max_memory_allocated per row on CUDA (after collecting what earlier rows left);
on CPU the process's max RSS so far. fp32 means IEEE fp32: TF32 is off (ganbench.devices.use_exact_fp32),
as in NVlabs' training loop and calc_metrics.py. A row whose weights cannot be resolved is 'skipped: ...';
any other error is 'failed: ...' with its traceback on stderr, and the remaining rows still run.

No GPU was available when this script was written (2026-12-03): no CUDA table yet. Only the CPU path
(`--device cpu --tiny`) has been run, by tests/test_gpu_suite.py; put the first CUDA table here.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from _table import emit
from ganbench.devices import autotune_convolutions, use_exact_fp32

FIELDS = ["part", "name", "variant", "resolution", "batch", "n", "status", "seconds", "sec_per_kimg",
          "images_per_s", "peak_mem_mb", "value", "note"]
# Network settings per precision, as NVlabs' train.py: the families' defaults are mixed precision, and
# `--fp32` sets num_fp16_res=0 and conv_clamp=None for G and D.
PRECISIONS = {
    "stylegan2": {"fp32": {"num_fp16_res": 0, "conv_clamp": None},
                  "mixed": {"num_fp16_res": 4, "conv_clamp": 256}},
    "stylegan3": {"fp32": {"num_fp16_res": 0, "conv_clamp": None, "d_num_fp16_res": 0, "d_conv_clamp": None},
                  "mixed": {"num_fp16_res": 4, "conv_clamp": 256, "d_num_fp16_res": 4, "d_conv_clamp": 256}},
}


def precision(model: str, variant: str) -> dict[str, Any]:
    """The network settings of `model` ('stylegan2', 'stylegan3-t', ...) for 'fp32' or 'mixed'."""
    return dict(PRECISIONS["stylegan3" if model.startswith("stylegan3") else "stylegan2"][variant])


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    """Free what earlier rows left (a Trainer lives in reference cycles until collected), then reset."""
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed(device, fn: Callable[[], Any]) -> tuple[Any, float]:
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def guarded(row: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """row updated by fn(); missing weights make the row 'skipped', any other error 'failed' (traceback
    on stderr): a benchmark row, not a crash, so the remaining rows still run."""
    from ganbench.errors import AssetError

    try:
        row.update(status="ok", **fn())
    except Exception as exc:
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        if isinstance(exc, AssetError):
            row["status"] = f"skipped: {text}"
        else:
            traceback.print_exc()
            row["status"] = f"failed: {type(exc).__name__}: {text}"
    print(f"done: {row['part']} {row['name']} {row['variant']}: {row['status']}", flush=True)
    return row


def train_rows(args: argparse.Namespace, device) -> list[dict[str, Any]]:
    """sec/kimg of the real training step per family x precision x memory format."""
    import torch

    from ganbench.train import Trainer, TrainOptions

    rows = []
    for model in args.models.split(","):
        for variant in ("fp32", "mixed", "mixed+channels_last"):
            row = {"part": "train", "name": model, "variant": variant, "resolution": args.resolution,
                   "batch": args.batch}

            def run() -> dict[str, Any]:
                network = precision(model, "fp32" if variant == "fp32" else "mixed")
                with tempfile.TemporaryDirectory() as tmp:
                    trainer = Trainer(TrainOptions(
                        model=model, data=f"shapes:{max(64, args.batch)}", resolution=args.resolution, kimg=1000,
                        batch=args.batch, seed=0, out=Path(tmp), preset="tiny" if args.tiny else None, resume=False,
                        device=str(device), quiet=True, network=network))
                    if variant.endswith("channels_last"):
                        for net in (trainer.G, trainer.D, getattr(trainer, "G_ema", None)):
                            if net is not None:
                                net.to(memory_format=torch.channels_last)
                    fp16 = [sum(bool(getattr(m, "use_fp16", False)) for m in net.modules())
                            for net in (trainer.G, trainer.D)]
                    trainer.step()  # first step: every phase, allocation, kernel selection
                    reset_peak(device)
                    _, wall = timed(device, lambda: [trainer.step() for _ in range(args.steps)])
                    peak = peak_mb(device)
                step = wall / args.steps
                return {"seconds": round(step, 4), "sec_per_kimg": round(step / args.batch * 1000, 2),
                        "images_per_s": round(args.batch / step, 2), "peak_mem_mb": peak,
                        "note": f"fp16 layers G {fp16[0]} D {fp16[1]}"}

            rows.append(guarded(row, run))
    return rows


def inception_rows(args: argparse.Namespace, device) -> list[dict[str, Any]]:
    """Inception pass images/s in fp32 and fp16 autocast on the same images, and the FID difference."""
    import numpy as np
    import torch

    from ganbench.features._random_weights import write_torch_fidelity_inception
    from ganbench.features.inception import InceptionExtractor
    from ganbench.metrics.context import Moments
    from ganbench.metrics.fid import frechet_distance

    n, res = args.inception_n, args.image_resolution
    gen = torch.randint(0, 256, (n, 3, res, res), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    real = torch.randint(0, 256, (n, 3, res, res), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    rows, feats = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.inception_weights or write_torch_fidelity_inception(Path(tmp) / "inception-random.pth")
        ext = InceptionExtractor(mode="torch_fidelity", weights=weights, device=device)
        amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16  # CPU autocast: bf16
        for variant in ("fp32", "fp16-autocast" if device.type == "cuda" else "bf16-autocast"):
            row = {"part": "inception", "name": "torch_fidelity", "variant": variant, "resolution": res,
                   "batch": args.inception_batch, "n": 2 * n}

            def run() -> dict[str, Any]:
                def passes() -> list[np.ndarray]:
                    out = []
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=variant != "fp32"):
                        for images in (gen, real):
                            out.append(np.concatenate([ext.extract(images[i:i + args.inception_batch])["features"]
                                                       .double().numpy() for i in range(0, n, args.inception_batch)]))
                    return out

                with torch.autocast(device.type, dtype=amp_dtype, enabled=variant != "fp32"):
                    ext.extract(gen[:args.inception_batch])  # warm-up at the timed batch size (cuDNN autotuning)
                reset_peak(device)
                out, wall = timed(device, passes)
                feats[variant] = out
                return {"seconds": round(wall, 3), "images_per_s": round(2 * n / wall, 2),
                        "peak_mem_mb": peak_mb(device)}

            rows.append(guarded(row, run))
    if len(feats) == 2:
        fids = {}
        for variant, (g, r) in feats.items():
            mg = Moments(n=len(g), total=g.sum(0), outer=g.T @ g)
            mr = Moments(n=len(r), total=r.sum(0), outer=r.T @ r)
            fids[variant] = frechet_distance(mg.mean, mg.cov("unbiased"), mr.mean, mr.cov("unbiased"))
        fp32, half = fids["fp32"], [v for k, v in fids.items() if k != "fp32"][0]
        rows.append({"part": "inception", "name": "fid half - fp32", "variant": "same images", "n": 2 * n,
                     "status": "ok", "value": f"{half - fp32:.6g}",
                     "note": f"fid fp32 {fp32:.6g}, half {half:.6g}, relative {(half - fp32) / max(abs(fp32), 1e-12):.3g}"})
    return rows


def metric_rows(args: argparse.Namespace, device) -> list[dict[str, Any]]:
    """images/s of SWD, PR and PPL on a generator of the suite."""
    import model_zoo
    from ganbench.metrics import get_metric
    from ganbench.metrics.context import MetricContext

    G = model_zoo.build("stylegan2", args.image_resolution, preset="tiny" if args.tiny else None,
                        **precision("stylegan2", "fp32")).G.to(device).eval()
    specs = {"swd": get_metric("swd", n_gen=args.metric_n),
             "pr": get_metric("pr", n_gen=args.metric_n, n_real=args.metric_n, extractor=args.pr_extractor),
             "ppl_wend": get_metric("ppl_wend", n_gen=args.metric_n)}
    rows = []
    for name, metric in specs.items():
        row = {"part": "metric", "name": name, "variant": "fp32", "resolution": args.image_resolution,
               "batch": args.batch, "n": args.metric_n}

        def run() -> dict[str, Any]:
            ctx = MetricContext(generator=G, real=f"shapes:{args.metric_n}", n_gen=args.metric_n,
                                extractor="shapes-net", batch_size=args.batch, device=device, cache_dir=False)
            reset_peak(device)
            values, wall = timed(device, lambda: metric.compute(ctx))
            shown = ";".join(f"{k}={float(v):.5g}" for k, v in list(values.items())[:3])
            return {"seconds": round(wall, 3), "images_per_s": round(args.metric_n / wall, 2),
                    "peak_mem_mb": peak_mb(device), "value": shown}

        rows.append(guarded(row, run))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and presets: a smoke run that takes seconds")
    parser.add_argument("--models", default="stylegan2,stylegan3-t,stylegan3-r")
    parser.add_argument("--resolution", type=int, default=None, help="training resolution (default 256; tiny 16)")
    parser.add_argument("--batch", type=int, default=None, help="training batch (default 32; tiny 2)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed training steps (default 16: every lazy-regularisation phase in proportion; tiny 1)")
    parser.add_argument("--inception-n", type=int, default=None, help="images per set (default 2048; tiny 2)")
    parser.add_argument("--inception-batch", type=int, default=None, help="default 128; tiny 2")
    parser.add_argument("--inception-weights", default=None, help="torch-fidelity format Inception file")
    parser.add_argument("--metric-n", type=int, default=None, help="images per metric (default 10000; tiny 8)")
    parser.add_argument("--pr-extractor", default=None, help="default vgg16; tiny shapes-net")
    parser.add_argument("--parts", default="train,inception,metric")
    parser.add_argument("--csv", default="reports/gpu_suite.csv")
    args = parser.parse_args(argv)
    tiny = args.tiny
    defaults = {"resolution": (256, 16), "batch": (32, 2), "steps": (16, 1), "inception_n": (2048, 2),
                "inception_batch": (128, 2), "metric_n": (10000, 8), "pr_extractor": ("vgg16", "shapes-net")}
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if tiny else full)
    args.image_resolution = 32 if tiny else args.resolution
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import torch

    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but this machine has no CUDA device (use --device cpu --tiny to smoke-test)")
    autotune_convolutions(device)  # cudnn.benchmark on CUDA, as NVlabs' training loop
    use_exact_fp32(device)  # "fp32" rows are IEEE fp32 (no TF32), as NVlabs' training loop and calc_metrics
    rows: list[dict[str, Any]] = []
    parts = set(args.parts.split(","))
    if "train" in parts:
        rows += train_rows(args, device)
    if "inception" in parts:
        rows += inception_rows(args, device)
    if "metric" in parts:
        rows += metric_rows(args, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"gpu_suite on {name}, torch {torch.__version__}")
    emit(rows, FIELDS, args.csv)
    return rows


if __name__ == "__main__":
    main()
