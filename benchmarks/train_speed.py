"""Seconds per training step and peak memory per family, each config in a fresh, memory-capped subprocess.

    python benchmarks/train_speed.py [--models progan,stylegan2] [--resolutions 32,64] [--batch 4]
                                     [--preset tiny] [--steps 3] [--mem-limit-gb 12] [--csv reports/train_speed.csv]

A step is one minibatch through the real training loop (`ganbench.train.Trainer.step`). `step_s` is the
mean wall time of steps that run only the main phases (G main, D main, plus non-lazy regularisers);
`all_phases_s` is one step where every lazy regulariser (R1, path length) is also due. CPU seconds are
reported beside wall seconds because the machine may be shared. Peak memory is the subprocess's max RSS
(and CUDA max allocated on GPU). A config whose address space would pass `--mem-limit-gb` fails inside
its own process (RLIMIT_AS) and is reported as "exceeded" instead of taking the machine down.

Measured 2026-11-25, idle 2-core AMD EPYC / 24 GB box, 2 threads, batch 4, paper networks (no preset),
`--models stylegan3-t,stylegan3-r --resolutions 32,64 --steps 2` (one step = G main + D main phases, ADA on):
    stylegan3-t  32   16.0 s/step  31.7 CPU-s  all phases 17.2 s  peak RSS 3.5 GB
    stylegan3-r  32   16.3 s/step  32.3 CPU-s  all phases 17.0 s  peak RSS 4.0 GB
    stylegan3-t  64   37.2 s/step  73.2 CPU-s  all phases 45.0 s  peak RSS 4.5 GB
    stylegan3-r  64   40.9 s/step  79.2 CPU-s  all phases 47.8 s  peak RSS 5.4 GB
(benchmarks/sg3_memory.py times the bare G -> D forward + backward the StyleGAN3 issue quotes.)

Measured 2026-12-03 (issue 12.5, "today" = main at 5294b70; no model code changed since), 2-core x86_64
AMD EPYC / 24 GB box SHARED with 4-5 other sessions (load average 3.5-6 on 2 cores, while SWD benchmarks
ran beside it), 2 threads, batch 4, paper networks, `--steps 1`. sec/kimg = step_s x 1000 / batch. Wall
and even CPU seconds are inflated by the load (SG3 CPU-s 3x the idle 2026-11-25 numbers above: memory
bandwidth is shared), so compare CPU seconds, and rerun on an idle box before reading a regression into it:
    model          res   s/kimg   step_s   cpu_s  all_phases_s  peak RSS
    progan          32     3630     14.5    28.9          15.0   2.2 GB
    stylegan        32     3153     12.6    25.0          13.1   2.0 GB
    stylegan2       32     1807      7.2    14.3          16.3   1.9 GB
    stylegan2-ada   32     1763      7.1    14.0          21.7   1.9 GB
    stylegan3-t     32    26995    108.0   115.3         124.5   3.4 GB
    stylegan3-r     32    18784     75.1   105.3         124.6   4.0 GB
    progan          64    23314     93.3    71.3          72.5   3.0 GB
    stylegan        64    19145     76.6    72.0         109.6   2.6 GB
    stylegan2       64    36802    147.2    72.7         457.6   2.8 GB
    stylegan2-ada   64   (not measured: stopped for time on the loaded box)
    stylegan3-t     64   (not measured: stopped for time on the loaded box)
    stylegan3-r     64    48768    195.1   237.7         319.4   5.2 GiB (run alone after the others)
So StyleGAN3-R at 64 px, batch 4 peaked at 5295 MiB in the full training step (all phases, ADA): over the
<= 5 GB target on this run (sg3_memory.py's bare G -> D fwd + bwd stays at 4.5-4.6 GB).

Heap trimming (2026-12-04, same box, idle but for the named load; `--models stylegan2,stylegan3-r
--resolutions 64 --steps 1 --heap both`, paper networks, batch 4, 2 threads). The peak was glibc's free heap
as much as live tensors: a phase-by-phase trace of the R@64 step showed RSS 5.4 GB against 4.5 GB with
glibc's mmap threshold pinned (MALLOC_MMAP_THRESHOLD_=131072, which costs 5-9% step time, so it is not used).
The trainer now calls malloc_trim(0) before each phase once 256 MB sit free (ganbench.heap; never on the tiny
presets) and drops each phase's gradients after its step:
    model        res  heap  s/kimg  step_s  cpu_s  all_phases_s  peak RSS
    stylegan2     64  trim    6647   26.6   52.9       48.8      2770 MiB   (idle box)
    stylegan2     64  keep    6835   27.3   54.4       50.9      3031 MiB   (idle box)
    stylegan3-r   64  trim   24197   96.8  187.6      105.8      5087 MiB   (idle box, before the gradient drop)
    stylegan3-r   64  keep   28629  114.5  182.4      105.0      5238 MiB   (a test run beside it)
    stylegan3-r   64  trim   51959  207.8  192.3      284.1      4916 MiB   (with the gradient drop; a learning
                                                                           benchmark beside it, so wall time doubles)
So StyleGAN3-R 64 px batch 4 now peaks at 4916 MiB = 4.80 GiB (<= 5 GiB; 5.15e9 bytes, so not under 5e9), with
CPU seconds per step unchanged within the noise and StyleGAN2 64 px 3% faster and 9% smaller.

Allocator settings tried on top of that (2026-12-04 07:10-07:40, idle box, one run each, sequential,
`--models stylegan3-r --resolutions 64 --steps 1 --heap trim`, glibc variables set in the environment):
    setting                            s/kimg  step_s  cpu_s  all_phases_s  peak RSS
    default (what the trainer does)     19291    77.2  152.7          90.2  4926 MiB
    MALLOC_ARENA_MAX=1                  19167    76.7  151.1          87.9  4986 MiB
    MALLOC_MMAP_THRESHOLD_=8388608      23664    94.7  187.4         109.9  4467 MiB
    (same, while tests ran beside it)   20167    80.7  159.9          93.0  4457 MiB
One arena changes nothing. Pinning the mmap threshold at 8 MB would bring the peak to 4.36 GiB (4.7e9 bytes),
but every 8-32 MB activation then faults in fresh pages: 5-23 % more CPU per step, so it is not used (the
issue also asks that no family get slower).

Sign and clamp masks packed 8 to a byte (2026-12-04 09:00-09:40, another idle 2-core box, an AMD EPYC Zen 4,
faster than the one above; `--models stylegan3-t,stylegan3-r --resolutions 32,64 --steps 1`, default heap trim).
The filtered leaky ReLU's backward kept one bool per upsampled sample: 1.0 GB of the R@64 step's 3.0 GB
of saved tensors. It now keeps one bit (model_zoo/filtered_lrelu.py; the gradients are bit-identical).
Before = main at 501f798 from a worktree, run in the same session, each row in its own process:
    model        res   s/kimg  step_s  cpu_s  all_phases_s  peak RSS
    stylegan3-r   64    11228    44.9   81.3          49.5  4085 MiB   packed (run 1)
    stylegan3-r   64    11875    47.5   86.8          51.8  4911 MiB   before (run 1)
    stylegan3-t   32     4593    18.4   35.5          19.6  2812 MiB   packed (run 2)
    stylegan3-r   32     5741    23.0   42.1          22.4  3229 MiB   packed (run 2)
    stylegan3-t   64    10603    42.4   79.9          45.7  3735 MiB   packed (run 2)
    stylegan3-r   64    11474    45.9   83.9          48.1  4074 MiB   packed (run 2)
    stylegan3-t   32     4419    17.7   33.9          19.8  3093 MiB   before (run 2)
    stylegan3-r   32     5436    21.7   39.5          20.9  3626 MiB   before (run 2)
    stylegan3-t   64    10430    41.7   78.0          46.8  4176 MiB   before (run 2)
    stylegan3-r   64    11094    44.4   81.3          49.0  4942 MiB   before (run 2)
So StyleGAN3-R at 64 px, batch 4 peaks at 4074-4085 MiB = 4.27-4.28e9 bytes: under 5 GB in either unit.
Every StyleGAN3 row is 0.4-0.8 GB smaller. Speed is the same within this box's run-to-run spread (R@64:
44.9 and 45.9 s packed against 47.5 and 44.4 s before). The 32 px rows again, `--steps 2`, alternating
before / packed / before / packed (09:23-09:36):
    model        res  step_s before      step_s packed     cpu_s before    cpu_s packed
    stylegan3-t   32   17.0, 17.7         16.8, 16.3        33.0, 34.7      33.2, 32.3
    stylegan3-r   32   19.3, 19.1         18.2, 18.1        36.4, 36.6      35.1, 35.4
Packing costs a few ms per layer (numpy's packbits / unpackbits); fewer pages to fault in pays for it.

Heap reuse within each phase (2026-12-04 13:50-14:12, idle Zen 4 box as above, paper networks, batch 4,
`--models stylegan3-r,stylegan3-t,stylegan2 --resolutions 64 --steps 1`, run once with the default heap and
once with GANBENCH_TRAIN_REUSE_HEAP=1, what `--heap reuse` sets; a third run kept blocks above 64 MiB on mmap):
    model        res  heap                s/kimg  step_s  cpu_s  all_phases_s  peak RSS
    stylegan3-t   64  trim (default)       10602    42.4   83.1          52.5  3730 MiB
    stylegan3-t   64  reuse                 9792    39.2   76.4          46.9  4205 MiB
    stylegan3-t   64  reuse, mmap > 64 MiB  9216    36.9   71.7          44.1  4255 MiB
    stylegan3-r   64  trim (default)       11124    44.5   86.3          55.4  4028 MiB
    stylegan3-r   64  reuse                 9606    38.4   73.8          40.7  4708 MiB
    stylegan3-r   64  reuse, mmap > 64 MiB 10556    42.2   81.3          48.0  4607 MiB
    stylegan2     64  trim (default)        2995    12.0   23.6          23.1  2645 MiB
    stylegan2     64  reuse                 2984    11.9   23.5          22.5  2852 MiB
Reuse is 8-14 % faster on StyleGAN3 (27 % on R's all-phases step), no faster on StyleGAN2, and the peaks grow
8-17 %: R's 4708 MiB is 4.94e9 bytes, at the edge of its 5 GB budget, so it stays opt-in. Keeping the largest
blocks on mmap did not bound the peak clearly (one run each; this box varies ~5-10 % between runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _table import write_csv

FIELDS = ["model", "resolution", "batch", "preset", "device", "threads", "heap", "status", "sec_per_kimg", "step_s", "step_cpu_s",
          "all_phases_s", "all_phases_cpu_s", "first_step_s", "peak_rss_mb", "cuda_max_alloc_mb", "g_params",
          "d_params", "phases"]


def child(args: argparse.Namespace) -> None:
    """Measure one config in this process and print one JSON line."""
    import resource

    if args.mem_limit_gb > 0:
        limit = int(args.mem_limit_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import tempfile

    import torch

    torch.set_num_threads(args.threads)
    from ganbench.train import Trainer, TrainOptions

    row = {"model": args.model, "resolution": args.resolution, "batch": args.batch, "preset": args.preset or "",
           "device": args.device, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(TrainOptions(model=args.model, data="shapes:64", resolution=args.resolution, kimg=1000,
                                       batch=args.batch, seed=0, out=Path(tmp), preset=args.preset or None,
                                       resume=False, device=args.device))
        cuda = trainer.device.type == "cuda"

        def timed() -> tuple[float, float]:
            if cuda:
                torch.cuda.synchronize()
            t, c = time.perf_counter(), time.process_time()
            trainer.step()
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t, time.process_time() - c

        first, _ = timed()                     # batch_idx 0: every phase, plus one-time allocation
        walls, cpus = [], []
        for _ in range(args.steps):           # batch_idx 1..steps: main phases only (lazy regs not due)
            w, c = timed()
            walls.append(w)
            cpus.append(c)
        trainer.batch_idx = 0                  # a multiple of every interval: all phases due again
        all_w, all_c = timed()
        step_s = sum(walls) / len(walls)
        row.update(status="ok", sec_per_kimg=step_s * 1000 / args.batch, step_s=step_s,
                   step_cpu_s=sum(cpus) / len(cpus),
                   all_phases_s=all_w, all_phases_cpu_s=all_c, first_step_s=first,
                   peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   cuda_max_alloc_mb=torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else "",
                   g_params=sum(p.numel() for p in trainer.G.parameters()),
                   d_params=sum(p.numel() for p in trainer.D.parameters()),
                   phases="+".join(p.name for p in trainer.phases))
    print("RESULT " + json.dumps(row), flush=True)


def run_config(model: str, res: int, args: argparse.Namespace, heap: str = "trim") -> dict:
    """Run `child` for one config in a fresh interpreter; a crash or memory failure becomes a status.

    heap: `trim` (the trainer's default: free heap pages returned between phases once 256 MB sit free,
    ganbench.heap), `keep` (GANBENCH_TRIM_HEAP=0, glibc as is) or `reuse` (GANBENCH_TRAIN_REUSE_HEAP=1:
    each phase reuses its freed blocks, no mmap inside it; the free heap goes back to the OS after it)."""
    cmd = [sys.executable, __file__, "--child", "--model", model, "--resolution", str(res), "--batch",
           str(args.batch), "--steps", str(args.steps), "--threads", str(args.threads), "--mem-limit-gb",
           str(args.mem_limit_gb), "--device", args.device] + (["--preset", args.preset] if args.preset else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "GANBENCH_TRIM_HEAP": "0" if heap == "keep" else "1",
           "GANBENCH_TRAIN_REUSE_HEAP": "1" if heap == "reuse" else "0"}
    base = {"model": model, "resolution": res, "batch": args.batch, "preset": args.preset or "",
            "device": args.device, "threads": args.threads, "heap": heap}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {**base, "status": f"timeout>{args.timeout}s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[len("RESULT "):]), "heap": heap}
    err = proc.stderr.strip().splitlines()
    memory = proc.returncode in (-9, 137) or any(("MemoryError" in e or "out of memory" in e.lower()
                                                  or "std::bad_alloc" in e or "Cannot allocate" in e) for e in err)
    status = f"exceeded {args.mem_limit_gb:g} GB" if memory else f"failed: {err[-1][:120] if err else proc.returncode}"
    return {**base, "status": status}


def fmt(v: object, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated names (default: model_zoo.list_models())")
    ap.add_argument("--resolutions", default="32,64")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--preset", default="", help="network preset for every family, e.g. tiny (default: none)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mem-limit-gb", type=float, default=12.0, help="address-space cap per config (0 = none)")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--heap", default="trim", choices=["trim", "keep", "reuse", "both", "all"],
                    help="heap policy (ganbench.heap): the default trim between phases, keep (off), reuse within "
                         "each phase (opt-in), both (trim, keep) or all three")
    ap.add_argument("--csv", default="reports/train_speed.csv")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="", help=argparse.SUPPRESS)
    ap.add_argument("--resolution", type=int, default=32, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return

    import model_zoo

    models = [m for m in args.models.split(",") if m] or model_zoo.list_models()
    resolutions = [int(r) for r in args.resolutions.split(",") if r]
    configs = [(m, r) for r in resolutions for m in models]
    configs.sort(key=lambda mr: (mr == ("stylegan3-r", max(resolutions)), mr[1]))   # heaviest last
    rows = []
    heaps = {"both": ["trim", "keep"], "all": ["trim", "keep", "reuse"]}.get(args.heap, [args.heap])
    header = (f"{'model':14} {'res':>4} {'heap':5} {'status':10} {'s/kimg':>8} {'step_s':>8} {'cpu_s':>8} {'all_ph_s':>9} "
              f"{'rss_MB':>8}")
    print(header)
    print("-" * len(header))
    for model, res, heap in [(m, r, h) for m, r in configs for h in heaps]:
        row = run_config(model, res, args, heap)
        rows.append(row)
        print(f"{model:14} {res:>4} {heap:5} {row['status'][:10]:10} {fmt(row.get('sec_per_kimg', ''), 0):>8} "
              f"{fmt(row.get('step_s', '')):>8} "
              f"{fmt(row.get('step_cpu_s', '')):>8} {fmt(row.get('all_phases_s', '')):>9} "
              f"{fmt(row.get('peak_rss_mb', ''), 0):>8}", flush=True)
        if not row["status"].startswith("ok"):
            print(f"  {model}@{res}: {row['status']}", flush=True)
    write_csv(rows, FIELDS, args.csv)


if __name__ == "__main__":
    main()
