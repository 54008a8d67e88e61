"""Wall/CPU time of SWD, MS-SSIM (beside pytorch-msssim), PPL, linear separability and EQ on CPU-sized inputs.

    python benchmarks/metrics2_speed.py [--n 512] [--resolution 64] [--threads 1]
                                        [--csv reports/metrics2_speed.csv]

- swd: N `shapes` images vs N other `shapes` images at the resolution (pure function over uint8 batches).
- ms_ssim: N/2 consecutive pairs of 256 px shapes area-resized to 192 px (pytorch-msssim needs more than
  160 px), ganbench and pytorch-msssim 1.0.0 on the same pairs; `note` gives the max |difference| per pair.
- ppl_wend, ls, eqt50k_int/eqt50k_frac/eqr50k: random-init `tiny` networks from model_zoo at 32 px
  (StyleGAN2 for PPL/LS, StyleGAN3-T for EQ) with N samples; PPL uses the shapes-net distance
  (offline), LS uses shapes-net's attribute logits.
The machine may be shared, so CPU seconds are printed beside wall seconds.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from _table import emit

FIELDS = ["metric", "what", "n", "resolution", "wall_s", "cpu_s", "items_per_s", "value", "note"]


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", default="reports/metrics2_speed.csv")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import model_zoo
    from ganbench.data.shapes import ShapesDataset
    from ganbench.metrics import compute
    from ganbench.metrics.ms_ssim import ms_ssim
    from ganbench.metrics.swd import swd

    n, res = args.n, args.resolution
    rows: list[dict[str, Any]] = []

    def add(metric: str, what: str, count: int, resolution: int, wall: float, cpu: float, value: Any,
            note: str = "") -> None:
        rows.append({"metric": metric, "what": what, "n": count, "resolution": resolution, "wall_s": round(wall, 2),
                     "cpu_s": round(cpu, 2), "items_per_s": round(count / wall, 1) if wall else "",
                     "value": value if isinstance(value, str) else round(float(value), 4), "note": note})

    def images(count: int, resolution: int, seed: int) -> torch.Tensor:
        data = ShapesDataset(n=count, resolution=resolution, seed=seed)
        return torch.stack([data[i][0] for i in range(count)])

    a, b = images(n, res, 0), images(n, res, 1)
    out, wall, cpu = timed(lambda: swd(a.split(64), b.split(64)))
    add("swd", "ganbench swd()", n, res, wall, cpu, out["swd_avg"], "images per set")

    big = torch.nn.functional.interpolate(images(n, 256, 2).float(), size=(192, 192), mode="area").round()
    big = big.to(torch.uint8)
    ours, wall, cpu = timed(lambda: ms_ssim(big[0::2], big[1::2]))
    add("ms_ssim", "ganbench ms_ssim()", n // 2, 192, wall, cpu, ours.mean(), "pairs")
    try:
        import pytorch_msssim

        ref, wall, cpu = timed(lambda: pytorch_msssim.ms_ssim(big[0::2].float(), big[1::2].float(), data_range=255,
                                                              size_average=False))
        diff = float((ours - ref.double()).abs().max())
        add("ms_ssim", "pytorch-msssim 1.0.0", n // 2, 192, wall, cpu, ref.mean(), f"max |diff| {diff:.2e}")
    except ImportError:
        add("ms_ssim", "pytorch-msssim", 0, 192, 0.0, 0.0, "n/a", "not installed")

    torch.manual_seed(0)
    g2 = model_zoo.build("stylegan2", 32, preset="tiny").G.eval()
    for metric in ("ppl_wend", "ls"):
        out, wall, cpu = timed(lambda: compute(metric, g2, n=n, cache_dir=False, batch_size=64))
        add(metric, "stylegan2 tiny", n, 32, wall, cpu, "; ".join(f"{k}={v:.4g}" for k, v in out.items()),
            "shapes-net distance" if metric.startswith("ppl") else "shapes-net attributes")
    torch.manual_seed(0)
    g3 = model_zoo.build("stylegan3-t", 32, preset="tiny").G.eval()
    for metric in ("eqt50k_int", "eqt50k_frac", "eqr50k"):
        out, wall, cpu = timed(lambda: compute(metric, g3, n=n, cache_dir=False))
        add(metric, "stylegan3-t tiny", n, 32, wall, cpu, out[metric], "PSNR dB")

    emit(rows, FIELDS, args.csv)


if __name__ == "__main__":
    main()
