"""StyleGAN3 speed and memory: one G -> D forward + backward per configuration, each in its own process.

Prints a table and writes a CSV. Per configuration: wall seconds and CPU seconds (time.process_time, all
threads) of each step, the split G forward / D forward / backward, and peak RSS (getrusage maxrss of the
worker process). The load average is recorded because the machine may be shared: on a loaded box wall time
is inflated while CPU seconds stay comparable.

`--impl reference` swaps in NVlabs' pure-PyTorch formulation of the filtered leaky ReLU (zero-insertion
upfirdn2d, bias_act, upfirdn2d, every intermediate kept by autograd, fused grouped modulated conv) built
from model_zoo.layers, so both paths can be timed on the same machine. A worker whose RSS passes `--max-gb`
is stopped and reported as such instead of taking the machine down.

    python benchmarks/sg3_memory.py                               # T@32, R@32, R@64 at batch 4 (ours)
    python benchmarks/sg3_memory.py --configs t32 --impl both     # ours vs the reference path
    python benchmarks/sg3_memory.py --filters                     # 2-D vs separable depthwise filtering
    python benchmarks/sg3_memory.py --configs t32 --allocator both  # glibc malloc as is vs retaining freed memory

Measured 2026-11-25 on the idle 2-core / 24 GB dev box (AMD EPYC, 2 threads, load average 0.5-1.9),
best of 2 steps, each configuration in its own worker:
    T@32 b4  ours       11.4 s wall  22.6 s CPU   2.6 GB   | reference 37.3 s wall  63.6 s CPU  10.7 GB
                                                           |   (a second run: 39.0 s wall, 66.9 s CPU)
    R@32 b4  ours       12.5 s wall  24.7 s CPU   3.3 GB
    R@64 b4  ours       26.0 s wall  51.0 s CPU   4.6 GB   (NVlabs' reference path: > 24 GB)
So T@32 is 3.3x faster than the reference path on the same idle machine (2.8x in CPU seconds) and 4.6x
faster than the 52.7 s the issue quotes for it. The same box shared with other jobs (load 4-5, wall ~ CPU):
    T@32 b4  ours       33.4 s wall  31.2 s CPU   2.5 GB   | reference 57.8 s wall  56.8 s CPU  10.5 GB
    T@16 b4  ours       19.5 s wall  19.4 s CPU   2.0 GB   | reference 44.6 s wall  41.6 s CPU   7.3 GB
    R@32 b4  ours       43.1 s wall  31.3 s CPU   3.4 GB
    R@64 b4  ours       57.4 s wall  56.8 s CPU   4.5 GB
    filtered_lrelu fwd+bwd alone: T layer 0.47 s vs 2.49 s reference; R layer (jinc) 1.31 s vs 4.24 s.
About 72% of our T step is the modulated 3x3 convolutions themselves (FLOPs fixed by the architecture); oneDNN
runs them at ~110 GFLOP per CPU-second, and NHWC makes their backward ~1.5x slower. Winograd F(2x2,3x3)
(2.25x fewer multiplies, exact to 5e-7) was tried and dropped: its batched GEMMs go through MKL, which on
this AMD CPU reaches ~55 GFLOP per CPU-second (1x1 convolutions through oneDNN: 45-78), so a [4,512,52,52]
layer's forward+backward took 0.83 s against 0.76 s for the direct convolution.
Page faults are the next cost: with glibc's defaults a T@32 step takes 0.7-2 M minor faults (every map over
the mmap threshold is mapped and zero-filled afresh). `--allocator retain` (MALLOC_MMAP_MAX_=0, no trimming)
cuts that to ~0.2 M. Measured 2026-11-25, same box, load ~4 (a demo running): T@32 b4 ours 30.9 -> 28.2 s wall
(separate workers); in one process alternating the two settings step by step (mallopt), CPU seconds
32.5/31.4/31.7/29.1 (glibc) vs 28.7/26.0/28.3/27.9 (retain), i.e. ~11% less, same numerics and peak RSS
(2.63 -> 2.59 GB). A rerun at load ~2.5: ours 30.7 -> 29.5 s; reference 53.0 s wall with glibc, while with
`retain` it passed 12 GB (its many differently sized maps fragment a heap that never shrinks): the setting
suits allocation patterns like ours, not arbitrary code.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from _table import print_table, write_csv

CONFIGS = {"t32": ("stylegan3-t", 32), "r32": ("stylegan3-r", 32), "t64": ("stylegan3-t", 64),
           "r64": ("stylegan3-r", 64), "t16": ("stylegan3-t", 16), "r16": ("stylegan3-r", 16)}
FIELDS = ["config", "model", "resolution", "batch", "impl", "allocator", "status", "iters", "wall_s", "cpu_s", "wall_first_s",
          "cpu_first_s", "g_fwd_s", "d_fwd_s", "backward_s", "peak_rss_gb", "threads", "load_start", "load_end"]


# --------------------------------------------------------------------------------------------------------------
# Worker (one configuration per process, so maxrss is that configuration's peak).

def nvlabs_reference_filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=(0, 0, 0, 0),
                                    gain=math.sqrt(2), slope=0.2, clamp=None):
    """NVlabs' reference formulation: upfirdn2d(up) -> bias_act(lrelu, gain, clamp) -> upfirdn2d(down)."""
    from model_zoo.layers import bias_act, upfirdn2d

    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=list(padding), gain=up ** 2)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down)


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def _watchdog(limit_gb: float, config: dict) -> None:
    """Stop this process (exit 3, with a result line) once its RSS passes `limit_gb`."""
    while True:
        if _rss_gb() > limit_gb:
            print(json.dumps({**config, "status": f"stopped above {limit_gb:g} GB"}), flush=True)
            os._exit(3)
        time.sleep(0.05)


def worker(config: str, impl: str, batch: int, iters: int, max_gb: float) -> None:
    import torch
    import torch.nn.functional as F

    import model_zoo
    import model_zoo.stylegan3 as sg3

    name, resolution = CONFIGS[config]
    row = {"config": config, "model": name, "resolution": resolution, "batch": batch, "impl": impl,
           "threads": torch.get_num_threads(), "load_start": round(os.getloadavg()[0], 2)}
    threading.Thread(target=_watchdog, args=(max_gb, row), daemon=True).start()
    torch.manual_seed(0)
    spec = model_zoo.build(name, resolution)
    G, D = spec.G.train(), spec.D.train()
    kwargs = {}
    if impl == "reference":
        sg3.filtered_lrelu = nvlabs_reference_filtered_lrelu  # the layers look the op up at call time
        kwargs["fused_modconv"] = True                          # NVlabs always runs one grouped conv
    walls, cpus, parts = [], [], []
    for _ in range(iters):
        z = torch.randn(batch, G.z_dim)
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        t0, c0 = time.perf_counter(), time.process_time()
        img = G(z, **kwargs)
        t1 = time.perf_counter()
        loss = F.softplus(-D(img)).mean()
        t2 = time.perf_counter()
        loss.backward()
        t3, c3 = time.perf_counter(), time.process_time()
        del img, loss
        walls.append(t3 - t0)
        cpus.append(c3 - c0)
        parts.append((t1 - t0, t2 - t1, t3 - t2))
    best = min(range(iters), key=lambda i: walls[i])
    row.update(status="ok", iters=iters, wall_s=round(walls[best], 2), cpu_s=round(cpus[best], 2),
               wall_first_s=round(walls[0], 2), cpu_first_s=round(cpus[0], 2),
               g_fwd_s=round(parts[best][0], 2), d_fwd_s=round(parts[best][1], 2),
               backward_s=round(parts[best][2], 2),
               peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
               load_end=round(os.getloadavg()[0], 2))
    print(json.dumps(row), flush=True)


# --------------------------------------------------------------------------------------------------------------
# Filter micro-benchmark: why filtered_lrelu applies a separable filter as one 2-D depthwise pass.

def filter_micro(batch: int = 4, channels: int = 512, size: int = 54, reps: int = 5) -> list[dict]:
    """CPU seconds of StyleGAN3's x2 up / down filtering: one 2-D pass vs two 1-D passes, two layouts."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    k = 12
    w2, wh, ww = torch.randn(channels, 1, k, k), torch.randn(channels, 1, k, 1), torch.randn(channels, 1, 1, k)
    ops = {
        "up 2-D": lambda x: F.conv_transpose2d(x, w2, stride=2, groups=channels),
        "up 2x1-D": lambda x: F.conv_transpose2d(F.conv_transpose2d(x, wh, stride=(2, 1), groups=channels),
                                                 ww, stride=(1, 2), groups=channels),
        "down 2-D": lambda x: F.conv2d(x, w2, stride=2, groups=channels),
        "down 2x1-D": lambda x: F.conv2d(F.conv2d(x, wh, stride=(2, 1), groups=channels), ww, stride=(1, 2),
                                         groups=channels),
    }
    rows = []
    for layout in ("channels_last", "nchw"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        for name, op in ops.items():
            side = size if name.startswith("up") else 2 * size
            x = torch.randn(batch, channels, side, side).contiguous(memory_format=fmt)
            op(x)
            times = []
            for _ in range(reps):
                c0 = time.process_time()
                op(x)
                times.append(time.process_time() - c0)
            rows.append({"op": name, "layout": layout, "input": f"{batch}x{channels}x{side}x{side}",
                         "cpu_ms": round(min(times) * 1e3, 1)})
    return rows


def op_micro(reps: int = 3) -> list[dict]:
    """CPU seconds of one filtered_lrelu forward + backward, ours vs the reference, on StyleGAN3 layer shapes."""
    import torch

    from model_zoo.filtered_lrelu import design_lowpass_filter, filtered_lrelu

    torch.manual_seed(0)
    shapes = {  # (name, input, up, radial down filter, padding) as in T@32 L6 and R@32 L5
        "T@32 layer (3x3 conv out 54, up 2)": ([4, 512, 54, 54], False),
        "R@32 layer (1x1 conv out 52, up 2, jinc)": ([4, 1024, 52, 52], True),
    }
    rows = []
    for name, (shape, radial) in shapes.items():
        fu = design_lowpass_filter(12, 11.3, 2 * 4.7, 64)
        fd = design_lowpass_filter(12, 11.3, 2 * 4.7, 64, radial=radial)
        x = torch.randn(shape, requires_grad=True)
        b = torch.zeros(shape[1], requires_grad=True)
        for impl, fn in (("ours", filtered_lrelu), ("reference", nvlabs_reference_filtered_lrelu)):
            def step() -> None:
                y = fn(x, fu, fd, b, 2, 2, (9, 8, 9, 8), math.sqrt(2), 0.2, 256)
                y.backward(torch.ones_like(y))
            step()
            times = []
            for _ in range(reps):
                c0 = time.process_time()
                step()
                times.append(time.process_time() - c0)
            rows.append({"op": f"filtered_lrelu fwd+bwd, {name}", "layout": impl, "input": "x".join(map(str, shape)),
                         "cpu_ms": round(min(times) * 1e3, 1)})
    return rows


# --------------------------------------------------------------------------------------------------------------
# Driver.

# glibc malloc settings per `--allocator`. glibc serves every block over its mmap threshold (at most 32 MB;
# a 4x512x114x114 float map is 106 MB) with a fresh mmap and unmaps it on free, and trims the heap top, so
# each step page-faults its large temporaries in again (~70k faults per T filtered_lrelu call, ~20% of the
# step on this VM). `retain` keeps freed memory in the process: no mmap, no trimming. Same numerics; peak RSS
# is unchanged but memory is not handed back to the OS until the process exits.
ALLOCATORS = {"glibc": {}, "retain": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2 ** 62)}}

def run_one(config: str, impl: str, batch: int, iters: int, max_gb: float, threads: int | None,
            allocator: str = "glibc") -> dict:
    """Run one configuration in a fresh interpreter (glibc malloc set per `allocator`) and parse its result line."""
    env = {**os.environ, **ALLOCATORS[allocator]}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--worker", config, "--impl", impl, "--batch", str(batch),
           "--iters", str(iters), "--max-gb", str(max_gb)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return {**json.loads(line), "allocator": allocator}
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"config": config, "impl": impl, "allocator": allocator, "batch": batch,
            "status": f"failed (rc {proc.returncode}): {tail}"}


TABLE = ["config", "impl", "allocator", "batch", "status", "wall_s", "cpu_s", "g_fwd_s", "d_fwd_s", "backward_s",
         "peak_rss_gb", "threads", "load_start", "load_end"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="t32,r32,r64", help=f"comma list of {', '.join(CONFIGS)}")
    ap.add_argument("--impl", default="ours", choices=["ours", "reference", "both"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=2, help="steps per configuration (the fastest is reported)")
    ap.add_argument("--max-gb", type=float, default=12.0, help="stop a worker whose RSS passes this")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the workers")
    ap.add_argument("--allocator", default="glibc", choices=[*ALLOCATORS, "both"],
                    help="glibc malloc as configured by the environment, or 'retain' (MALLOC_MMAP_MAX_=0, "
                         "no heap trimming: no page faults on reused memory)")
    ap.add_argument("--out", type=Path, default=Path("reports/sg3_memory.csv"))
    ap.add_argument("--filters", action="store_true",
                    help="only micro-benchmarks: 2-D vs 1-D filter passes, filtered_lrelu ours vs reference")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.impl, args.batch, args.iters, args.max_gb)
        return
    if args.filters:
        rows = filter_micro(batch=args.batch) + op_micro()
        for r in rows:
            print(f"{r['op']:58s} {r['layout']:14s} {r['input']:16s} {r['cpu_ms']:9.1f} ms")
        write_csv(rows, list(rows[0]), args.out.with_name(args.out.stem + "_filters.csv"))
        return
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    impls = ["ours", "reference"] if args.impl == "both" else [args.impl]
    allocators = list(ALLOCATORS) if args.allocator == "both" else [args.allocator]
    rows = []
    for config in configs:
        for impl in impls:
            for allocator in allocators:
                rows.append(run_one(config, impl, args.batch, args.iters, args.max_gb, args.threads, allocator))
                print(json.dumps(rows[-1]), flush=True)
    print_table(rows, TABLE)
    write_csv(rows, FIELDS, args.out)


if __name__ == "__main__":
    main()
