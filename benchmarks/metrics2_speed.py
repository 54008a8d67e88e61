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

Heavy rows (issue 12.4), each in its own fresh process; peak_rss_mb is that child's maxrss from os.wait4, so
rows never contaminate each other (`--rows` picks them; `light` is the quick set above):
- swd_old: main@5294b70's swd.py read with `git show` into a throwaway module (every descriptor in memory)
  beside swd_shared (new code, same shared patch protocol: the value must be equal) and swd (new default,
  ProGAN's independent patches), n=10000 per set at 32 px; the ratio is printed in `note`. swd_threads is
  swd with GANBENCH_SORT_PROCESSES=0: sorted by threads of the process even on a CPU where
  ganbench.metrics.row_sort would hand the sorts to worker processes (AMD Zen 4).
- swd256: 256 px, `--swd256-n` images per set streamed in batches of 64; n=10000 RSS extrapolated from the
  per-image store (214 kB per image per set).
- ms_ssim10k: `--msssim-pairs` consecutive pairs of shapes at `--resolution`; ppl_lpips: ppl_wend of a tiny
  StyleGAN2 at 32 px with LPIPS(VGG16) built offline by `lpips.LPIPS(net="vgg", pnet_rand=True)` (random
  weights: same cost as the real ones); pr50k: random float32 [N, 4096] features (VGG16 fc2 shape), time
  extrapolated to N=50000 by N^2.

Measured 2026-12-04 09:49-10:00 on an AMD EPYC Zen 4 box (family 25 model 17, AVX-512; 2 cores / 24 GB, no
other session), `--rows swd_old,swd_shared,swd,swd_threads --threads 2`, two runs one after the other.
CPU seconds include the sort workers (second run only; the first counted this process alone):
    metric  what                            n      res  wall_s  cpu_s   peak_rss_mb  value   note
    swd     main@5294b70 (shared patches)   10000  32   137.1   164.7   9077         4.1538  run 1
    swd     new, patches=shared             10000  32    23.1    -      1869         4.1538  5.93x faster, 4.9x less RSS
    swd     new, patches=independent        10000  32    28.8    -      1871         4.0794  4.75x faster, 4.9x less RSS
    swd     new, independent, threads sort  10000  32    63.0   123.0   1875         4.0794  2.18x faster
    swd     main@5294b70 (shared patches)   10000  32   140.4   167.5   8857         4.1538  run 2
    swd     new, patches=shared             10000  32    27.4    52.4   1870         4.1538  5.12x faster, 4.7x less RSS
    swd     new, patches=independent        10000  32    25.1    48.9   1870         4.0794  5.59x faster, 4.7x less RSS
    swd     new, independent, threads sort  10000  32    63.2   123.6   1873         4.0794  2.22x faster
On this CPU numpy's float32 sort takes 42 ms per 1.28M values with its AVX-512 kernel (what it picks here)
against 7 ms with its AVX2 kernel: the old code's sorts, and the new code's when sorted by threads, pay
that. ganbench.metrics.row_sort sorts in worker processes whose numpy runs the AVX2 kernel, on shared
memory. So target 4's "4x faster" holds on this Zen 4 machine (4.75-5.6x), not on the earlier box below
(1.9x), where numpy's in-process sort already took ~14 ms and the workers are not used. The peak RSS is
the SWD process's, whose projection buffers are the shared memory the workers sort; each worker adds
~30 MB of its own (numpy).

Measured 2026-12-04 07:00-07:45, 2-core x86_64 AMD EPYC / 24 GB box with no other session (load < 0.7
before each run; the same old-code row took 82.5 s in an earlier idle run, so the box itself varies ~15 %),
`--threads 2`, one run for the four SWD rows (`--rows swd_old,swd_shared,swd,swd256`) and one for PR
(`--rows pr50k --pr-n 50000`, run alone):
    metric  what                           n      res  wall_s  cpu_s   peak_rss_mb  value   note
    swd     main@5294b70 (shared patches)  10000  32   94.0    128.3   8856         4.1538
    swd     new, patches=shared            10000  32   48.5    93.4    1856         4.1538  1.94x faster, 4.8x less RSS
    swd     new, patches=independent       10000  32   50.2    96.4    1858         4.0794  1.87x faster, 4.8x less RSS
    swd     new, patches=independent   1000   256  35.1    54.1    1558         8.4550  streamed, gen. included;
                                                                                   n=10000 extrapolated ~5250 MB
    pr      random 4096-d features     50000  -    592.2   1174.0  3172         0.2961  measured, not extrapolated:
            both feature sets are 1.6 GB of it; ~2 N^2 distances (symmetric radius blocks, one shared gen x real
            pass), i.e. 4.5e13 FLOP at ~76 GFLOP/s. The code before this change computed 4 N^2: at N=5000 it took
            11.0 s against 7.9 s now (1.4x; at N=50000, 5 blocks per set, the saving is 1.8x)
SWD on that box: <= 2 GB at n=10k, 32 px is met (1.86 GB); >= 4x faster is NOT (1.9x). Per level, each set's 1.28M
descriptors are projected on 512 directions (~770 GFLOP in all, a 147-deep product that runs at ~50 GFLOP/s
here) and every projection is sorted (2048 sorts of 1.28M floats at ~14 ms each with numpy's AVX2 sort, on
both cores): ~14 s + ~14 s of the ~45 s is that work, and it is the same work the old code did. 4x would need
the old code's 82-94 s in ~21-23 s, below what the projections and sorts alone take on 2 cores.

Rows from earlier runs (SWD and PR superseded above; MS-SSIM and PPL code unchanged since):
    ms_ssim ganbench ms_ssim metric    10000  64   39.6    39.6    658          0.2334  252.7 pairs/s, streamed in
            batches of 64 images as the metric runs (2026-12-04 00:15, load ~3; the row used to call the bare
            function on all 10k pairs at once: 85.7 s / 9321 MB, which is not what `eval` does)
    ppl_wend stylegan2 tiny, LPIPS VGG 1000   32   122.8   122.5   1226         1.0421  8.1 samples/s; n=10000
            extrapolated ~1230 s (2026-12-03, box shared with 4-5 other sessions, load 3.5-6)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any, Callable

from _table import emit

FIELDS = ["metric", "what", "n", "resolution", "wall_s", "cpu_s", "items_per_s", "peak_rss_mb", "value", "note"]
BASELINE = "5294b70"  # main before the bounded-memory SWD: the "today" of issue 12 target 4
HEAVY = ("swd_old", "swd_shared", "swd", "swd_threads", "swd256", "ms_ssim10k", "ppl_lpips", "pr50k")


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (SWD's sort workers on Zen 4)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t, c = time.perf_counter(), _cpu_seconds()
    out = fn()
    return out, time.perf_counter() - t, _cpu_seconds() - c


def _shapes(count: int, resolution: int, seed: int, batch: int = 256):
    """`shapes` images as uint8 batches (generated lazily, so a large set never sits in memory at once)."""
    import torch
    from ganbench.data.shapes import ShapesDataset

    data = ShapesDataset(n=count, resolution=resolution, seed=seed)
    for start in range(0, count, batch):
        yield torch.stack([data[i][0] for i in range(start, min(count, start + batch))])


def _old_swd():
    """main@BASELINE's ganbench/metrics/swd.py loaded from git as a throwaway module (the old algorithm)."""
    import importlib.util
    import subprocess
    import sys
    import tempfile

    src = subprocess.run(["git", "show", f"{BASELINE}:ganbench/metrics/swd.py"], capture_output=True, text=True,
                         check=True).stdout
    path = Path(tempfile.mkdtemp()) / "swd_old.py"
    path.write_text(src[:src.index("@METRICS.register")])  # the functions only: "swd" is registered already
    spec = importlib.util.spec_from_file_location("swd_old", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["swd_old"] = mod
    spec.loader.exec_module(mod)
    return mod.swd


def child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One heavy row, measured in this (fresh) process; the parent reads its peak RSS from wait4."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if name.startswith("swd"):
        from ganbench.metrics.swd import swd

        if name == "swd_threads":  # the in-process sort even where worker processes would be chosen
            os.environ["GANBENCH_SORT_PROCESSES"] = "0"

        res, n = (256, args.swd256_n) if name == "swd256" else (32, args.swd_n)
        fn = _old_swd() if name == "swd_old" else swd
        kw = {} if name == "swd_old" else {"patches": "shared" if name == "swd_shared" else "independent"}
        if res == 32:  # both sets generated before timing
            a, b = list(_shapes(n, res, 0)), list(_shapes(n, res, 1))
            out, wall, cpu = timed(lambda: fn(iter(a), iter(b), **kw))
        else:  # streamed in batches of 64 as a generator would deliver them (the images never all in memory)
            out, wall, cpu = timed(lambda: fn(_shapes(n, res, 0, 64), _shapes(n, res, 1, 64), **kw))
        what = {"swd_old": f"main@{BASELINE} (shared patches)", "swd_shared": "new, patches=shared",
                "swd": "new, patches=independent", "swd256": "new, patches=independent",
                "swd_threads": "new, independent, threads sort"}[name]
        note = ("images per set; both sets generated before timing" if res == 32 else
                "images per set, streamed in batches of 64; generating the shapes images is included in the time")
        return dict(metric="swd", what=what, n=n, resolution=res, wall=wall, cpu=cpu, value=out["swd_avg"],
                    note=note)
    if name == "ms_ssim10k":
        from ganbench.metrics.ms_ssim import mean_ms_ssim

        # As the metric runs: pairs streamed in the generator's batches of 64 images (generation of the shapes
        # images included in the time), never all pairs at once.
        out, wall, cpu = timed(lambda: mean_ms_ssim(_shapes(2 * args.msssim_pairs, args.resolution, 2, 64)))
        return dict(metric="ms_ssim", what="ganbench ms_ssim metric (streamed)", n=args.msssim_pairs,
                    resolution=args.resolution, wall=wall, cpu=cpu, value=float(out),
                    note="pairs, streamed in batches of 64 images (items/s = pairs/s)")
    if name == "ppl_lpips":
        import warnings

        import lpips

        import model_zoo
        from ganbench.metrics.ppl import filtered_mean, path_lengths

        torch.manual_seed(0)
        G = model_zoo.build("stylegan2", 32, preset="tiny").G.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()  # offline: random VGG weights

        def dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return net(x, y)

        out, wall, cpu = timed(lambda: path_lengths(G, dist, args.ppl_n, space="w", sampling="end", batch_size=64))
        return dict(metric="ppl_wend", what="stylegan2 tiny, LPIPS VGG16 (random weights)", n=args.ppl_n,
                    resolution=32, wall=wall, cpu=cpu, value=filtered_mean(out), note="samples (2 images each)")
    if name == "pr50k":
        from ganbench.metrics.precision_recall import precision_recall

        rng = np.random.default_rng(0)
        real = rng.standard_normal((args.pr_n, 4096), dtype=np.float32)
        gen = rng.standard_normal((args.pr_n, 4096), dtype=np.float32)
        out, wall, cpu = timed(lambda: precision_recall(gen, real))
        return dict(metric="pr", what="random 4096-d features (VGG16 fc2 shape)", n=args.pr_n, resolution="",
                    wall=wall, cpu=cpu, value=float(out[0]), note="features per set; value = precision")
    raise SystemExit(f"unknown row {name!r}; known: {', '.join(HEAVY)}")


def run_child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """`child(name)` in a fresh interpreter; its own peak RSS comes from os.wait4 (no row contaminates another)."""
    import json
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryFile("w+") as out:
        cmd = [sys.executable, __file__, "--child", name, "--threads", str(args.threads), "--swd-n", str(args.swd_n),
               "--swd256-n", str(args.swd256_n), "--msssim-pairs", str(args.msssim_pairs), "--ppl-n",
               str(args.ppl_n), "--pr-n", str(args.pr_n), "--resolution", str(args.resolution)]
        proc = subprocess.Popen(cmd, stdout=out, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        _pid, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("RESULT ")]
    if status != 0 or not lines:
        return {"metric": name, "what": f"failed (status {status})", "peak_rss_mb": round(usage.ru_maxrss / 1024)}
    row = json.loads(lines[-1][len("RESULT "):])
    row["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", default="reports/metrics2_speed.csv")
    parser.add_argument("--rows", default="light," + ",".join(HEAVY),
                        help="comma-separated: light (the quick rows above) and/or " + ", ".join(HEAVY))
    parser.add_argument("--swd-n", type=int, default=10000, help="images per set for the 32 px SWD rows")
    parser.add_argument("--swd256-n", type=int, default=1000, help="images per set for the 256 px SWD row")
    parser.add_argument("--msssim-pairs", type=int, default=10000)
    parser.add_argument("--ppl-n", type=int, default=1000)
    parser.add_argument("--pr-n", type=int, default=5000, help="features per set for the PR row")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import json

        r = child(args.child, args)
        print("RESULT " + json.dumps(r), flush=True)
        return
    wanted = [r for r in args.rows.split(",") if r]
    rows: list[dict[str, Any]] = []
    for name in [w for w in wanted if w in HEAVY]:
        r = run_child(name, args)
        if "wall" in r:
            wall = r.pop("wall")
            r.update(wall_s=round(wall, 2), cpu_s=round(r.pop("cpu"), 2), items_per_s=round(r["n"] / wall, 1),
                     value=round(float(r["value"]), 4))
        print(r, flush=True)
        rows.append(r)
    by = {(r["metric"], r.get("what", "")): r for r in rows}
    old = next((r for r in rows if str(r.get("what", "")).startswith("main@")), None)
    for r in rows:
        if old and r is not old and r["metric"] == "swd" and r.get("resolution") == old["resolution"] and "wall_s" in r:
            r["note"] += f"; {old['wall_s'] / r['wall_s']:.2f}x faster than main@{BASELINE}, " \
                         f"{old['peak_rss_mb'] / r['peak_rss_mb']:.1f}x less peak RSS"
        if r["metric"] == "swd" and r.get("resolution") == 256 and "peak_rss_mb" in r and r["n"] < 10000:
            # What grows with n is the per-set store: at 256 px levels 256 and 128 keep 128 x 147 float32
            # descriptors per image, levels 64/32/16 their pixels: 214 kB per image per set.
            per_image = 2 * (2 * 128 * 147 + 3 * (64**2 + 32**2 + 16**2)) * 4 / 2**20
            r["note"] += f"; extrapolated peak RSS at n=10000: ~{r['peak_rss_mb'] + (10000 - r['n']) * per_image:.0f} MB"
        if r["metric"] == "pr" and "wall_s" in r and r["n"] < 50000:
            scale = (50000 / r["n"]) ** 2
            r["note"] += f"; extrapolated to N=50000: ~{r['wall_s'] * scale:.0f} s (N^2 distances)"
        if r["metric"] == "ppl_wend" and "wall_s" in r and r["n"] < 10000:
            r["note"] += f"; extrapolated to n=10000: ~{r['wall_s'] * 10000 / r['n']:.0f} s"
    del by
    if "light" not in wanted:
        emit(rows, FIELDS, args.csv)
        return

    import torch

    torch.set_num_threads(args.threads)
    import model_zoo
    from ganbench.data.shapes import ShapesDataset
    from ganbench.metrics import compute
    from ganbench.metrics.ms_ssim import ms_ssim
    from ganbench.metrics.swd import swd

    n, res = args.n, args.resolution

    def add(metric: str, what: str, count: int, resolution: int, wall: float, cpu: float, value: Any,
            note: str = "") -> None:
        rows.append({"metric": metric, "what": what, "n": count, "resolution": resolution, "wall_s": round(wall, 2),
                     "peak_rss_mb": "",
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
