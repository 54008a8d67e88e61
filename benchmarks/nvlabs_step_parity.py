"""Loss for loss against NVIDIA's training code: ganbench's step beside NVlabs' loss.py, same weights, data, latents.

    python benchmarks/nvlabs_step_parity.py --stylegan3 PATH/TO/stylegan3 --ada PATH/TO/stylegan2-ada-pytorch
                                            [--iters 20] [--cases sg2,sg2-nomix,...]

PATH are checkouts of github.com/NVlabs/stylegan3 and github.com/NVlabs/stylegan2-ada-pytorch (only their
`training/loss.py`, `torch_utils` and `dnnlib` are imported; their custom CUDA ops fall back to the reference
PyTorch path on CPU). Nothing of NVIDIA's is shipped with ganbench: bring the checkouts yourself.

Each case runs in its own process (the two repositories both name their package `training`). Two copies of
the same tiny network (16 px, batch 4) are trained side by side for `--iters` iterations:
- ganbench: `build_loss` with the family's own training options, phases and lazy Adam parameters as the
  Trainer builds them (`lazy_adam_params`), `Dist.all_reduce_grads`, `update_ema` with `ema_beta`;
- NVIDIA: `StyleGAN2Loss` of the family's reference repository, phases built as its training_loop.py builds
  them (lr x k/(k+1), betas ** (k/(k+1)) for a lazy interval k; G_reg_interval from its train.py), its
  nan_to_num of the gradients, and its G_ema update (lerp of parameters, buffers copied).
Every phase starts from the same global RNG seed and takes the same real batch and latents; after each
phase the Adam step counts of every parameter must agree (NVIDIA skips parameters whose grad is None), and
after each iteration the script prints the largest relative difference of G, D, G_ema (parameters and
buffers) and pl_mean.

Measured 2026-12-03, 2-core x86_64 CPU, shared box, `--iters 20`, current main (after the training-fidelity
changes): every case below ends with max relative difference 0.000e+00 (bit-identical in float32; the Adam
step counts agree at every phase):
    case            reference                 what it exercises
    sg2             stylegan3 repo            mixing 0.9, PL every 4 (lazy), R1 every 16, EMA passes, no *0 terms
    sg2-nomix       stylegan3 repo            style_mixing 0
    sg2-aug         stylegan3 repo            AugmentPipe bgc at fixed p 0.5 (identical draws)
    sg3t            stylegan3 repo            StyleGAN3-T, magnitude EMA, no lazy G phase
    sg3t-gamma0     stylegan3 repo            r1_gamma 0: interval and lr/beta scaling kept
    sg3r            stylegan3 repo            StyleGAN3-R, blur 10 fading over the run, blur then augment
    sg3r-aug        stylegan3 repo            as sg3r with ADA at p 0.5
    ada             stylegan2-ada-pytorch     w_avg in every mapping call but mixing's, '* 0' terms kept
    ada-cifar       stylegan2-ada-pytorch     pl_weight 0, mixing 0, G_reg_interval still 4
    ada-aug         stylegan2-ada-pytorch     AugmentPipe bgc at fixed p 0.5
The same script on main before those changes (5294b70) failed the Adam step-count check for sg2 at the first
Greg phase and drifted to 2.45 relative difference for ada. Not covered: ADA's p controller, DDP, and
ganbench's data/latent drawing (both sides are fed the same batches here).
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import types
from pathlib import Path

# name: (family, reference repo, option overrides, augmentation p)
CASES: dict[str, tuple[str, str, dict[str, float], float]] = {
    "sg2": ("stylegan2", "stylegan3", {}, 0.0),
    "sg2-nomix": ("stylegan2", "stylegan3", {"style_mixing": 0.0}, 0.0),
    "sg2-aug": ("stylegan2", "stylegan3", {}, 0.5),
    "sg3t": ("stylegan3-t", "stylegan3", {}, 0.0),
    "sg3t-gamma0": ("stylegan3-t", "stylegan3", {"r1_gamma": 0.0}, 0.0),
    "sg3r": ("stylegan3-r", "stylegan3", {}, 0.0),
    "sg3r-aug": ("stylegan3-r", "stylegan3", {}, 0.5),
    "ada": ("stylegan2-ada", "ada", {}, 0.0),
    "ada-cifar": ("stylegan2-ada", "ada", {"pl_weight": 0.0, "style_mixing": 0.0}, 0.0),
    "ada-aug": ("stylegan2-ada", "ada", {}, 0.5),
}
BATCH, RES = 4, 16


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def run_case(name: str, checkout: Path, iters: int) -> float:
    """Train both copies side by side; returns the largest relative difference seen."""
    import packaging.version

    # NVIDIA's torch_utils imports pkg_resources only for parse_version (gone from recent setuptools).
    sys.modules.setdefault("pkg_resources", types.SimpleNamespace(parse_version=packaging.version.parse))
    sys.path.insert(0, str(checkout))
    import torch
    from torch import nn
    from training.loss import StyleGAN2Loss   # NVIDIA's, from the checkout

    import model_zoo
    from ganbench.train.augment import build_augment_pipe
    from ganbench.train.loop import Dist, ema_beta, lazy_adam_params, update_ema
    from ganbench.train.losses import build_loss

    family, ref, overrides, aug_p = CASES[name]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    extra = {"d_num_fp16_res": 0} if family.startswith("stylegan3") else {}
    spec = model_zoo.build(family, RES, preset="tiny", num_fp16_res=0, **extra, **overrides)
    tc = dict(spec.train)
    G1, D1 = spec.G.train(), spec.D.train()
    G2, D2 = copy.deepcopy(G1), copy.deepcopy(D1)
    ema1, ema2 = copy.deepcopy(G1).eval(), copy.deepcopy(G1).eval()
    if hasattr(D2, "blur_sigma"):
        D2.blur_sigma = 0.0    # NVIDIA's D never blurs; its loss does
    pipe = build_augment_pipe("bgc", p=aug_p) if aug_p > 0 else None
    ours = build_loss(tc["loss"], G1, D1, pipe, **{k: v for k, v in tc.items() if k != "loss" and v is not None})

    class Disc(nn.Module):      # NVIDIA's loss passes labels and update_emas to D
        def __init__(self, D):
            super().__init__()
            self.D = D

        def forward(self, img, c, update_emas=False):
            return self.D(img, None)

    if ref == "stylegan3":
        class Gen:              # stylegan3's loss calls G.mapping(z, c, update_emas=...) and G.synthesis(ws, ...)
            def __init__(self, G):
                self.mapping = lambda z, c, update_emas=False: G.mapping(z, None, update_emas=update_emas)
                self.synthesis = G.synthesis

        theirs = StyleGAN2Loss("cpu", Gen(G2), Disc(D2), pipe, r1_gamma=tc["r1_gamma"],
                               style_mixing_prob=tc["style_mixing"], pl_weight=tc["pl_weight"],
                               pl_batch_shrink=tc["pl_batch_shrink"], pl_decay=tc["pl_decay"],
                               blur_init_sigma=tc.get("blur_sigma") or 0, blur_fade_kimg=tc.get("blur_fade_kimg") or 0)
        g_interval = tc["pl_interval"] if tc["pl_interval"] and tc["pl_interval"] > 1 else None
    else:
        class Mapping(nn.Module):   # stylegan2-ada-pytorch's loss calls G_mapping(z, c, skip_w_avg_update=...)
            def __init__(self, G):
                super().__init__()
                self.G = G

            def forward(self, z, c, skip_w_avg_update=False):
                return self.G.mapping(z, None, update_emas=not skip_w_avg_update)

        class Synthesis(nn.Module):
            def __init__(self, G):
                super().__init__()
                self.G = G

            def forward(self, ws):
                return self.G.synthesis(ws)

        theirs = StyleGAN2Loss("cpu", Mapping(G2), Synthesis(G2), Disc(D2), pipe, style_mixing_prob=tc["style_mixing"],
                               r1_gamma=tc["r1_gamma"], pl_batch_shrink=tc["pl_batch_shrink"],
                               pl_decay=tc["pl_decay"], pl_weight=tc["pl_weight"])
        g_interval = 4    # stylegan2-ada-pytorch train.py: G_reg_interval 4 for every cfg
    d_interval = tc["r1_interval"]

    def our_phases():
        out = []
        for net, mod, lr in (("G", G1, tc["lr_g"]), ("D", D1, tc["lr_d"])):
            k = ours.reg_intervals()[net]
            lr_k, betas = lazy_adam_params(lr, tuple(tc["betas"]), k)
            opt = torch.optim.Adam(mod.parameters(), lr=lr_k, betas=betas, eps=1e-8)
            out += [(net + "both", mod, opt, 1)] if k is None else [(net + "main", mod, opt, 1), (net + "reg", mod, opt, k)]
        return out

    def their_phases():        # training_loop.py's phase construction, written out
        out = []
        for net, mod, lr, k in (("G", G2, tc["lr_g"], g_interval), ("D", D2, tc["lr_d"], d_interval)):
            if k is None:
                out.append((net + "both", mod, torch.optim.Adam(mod.parameters(), lr=lr, betas=tc["betas"], eps=1e-8), 1))
            else:
                r = k / (k + 1)
                opt = torch.optim.Adam(mod.parameters(), lr=lr * r, betas=[b ** r for b in tc["betas"]], eps=1e-8)
                out += [(net + "main", mod, opt, 1), (net + "reg", mod, opt, k)]
        return out

    P1, P2 = our_phases(), their_phases()
    names1, names2 = [(p[0], p[3]) for p in P1], [(p[0], p[3]) for p in P2]
    if names1 != names2:
        raise SystemExit(f"{name}: phases differ: ganbench {names1}, NVIDIA {names2}")
    nimg, worst, empty = 0, 0.0, torch.zeros([BATCH, 0])
    for it in range(iters):
        gen = torch.Generator().manual_seed(100 + it)
        real = torch.rand([BATCH, 3, RES, RES], generator=gen) * 2 - 1
        zs = [torch.randn([BATCH, G1.z_dim], generator=gen) for _ in P1]
        ours.set_progress(nimg)
        for k, ((phase, mod1, opt1, interval), (_, mod2, opt2, _)) in enumerate(zip(P1, P2)):
            if it % interval:
                continue
            G1.requires_grad_(mod1 is G1)
            D1.requires_grad_(mod1 is D1)
            opt1.zero_grad(set_to_none=True)
            torch.manual_seed(1000 * it + k)
            ours.accumulate_gradients(phase, real, None, zs[k], None, gain=float(interval))
            Dist().all_reduce_grads(mod1)
            opt1.step()
            G1.requires_grad_(False)
            D1.requires_grad_(False)

            opt2.zero_grad(set_to_none=True)
            mod2.requires_grad_(True)
            torch.manual_seed(1000 * it + k)
            if ref == "stylegan3":
                theirs.accumulate_gradients(phase, real, empty, zs[k], empty, gain=interval, cur_nimg=nimg)
            else:
                theirs.accumulate_gradients(phase, real, empty, zs[k], empty, sync=True, gain=interval)
            mod2.requires_grad_(False)
            for p in mod2.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt2.step()
            steps1 = [int(opt1.state[p]["step"]) if p in opt1.state else 0 for p in mod1.parameters()]
            steps2 = [int(opt2.state[p]["step"]) if p in opt2.state else 0 for p in mod2.parameters()]
            if steps1 != steps2:
                raise SystemExit(f"{name}: iteration {it} {phase}: Adam stepped other parameters than NVIDIA's")
        beta = ema_beta(BATCH, nimg, tc["ema_kimg"], tc["ema_rampup"])
        update_ema(ema1, G1, beta)
        with torch.no_grad():
            for pe, p in zip(ema2.parameters(), G2.parameters()):
                pe.copy_(p.lerp(pe, beta))
            for be, b in zip(ema2.buffers(), G2.buffers()):
                be.copy_(b)
        nimg += BATCH
        diffs = {tag: max(_rel(x, y) for x, y in zip([*a.parameters(), *a.buffers()], [*b.parameters(), *b.buffers()])
                          if x.is_floating_point())
                 for tag, a, b in (("G", G1, G2), ("D", D1, D2), ("G_ema", ema1, ema2))}
        diffs["pl_mean"] = _rel(ours.pl_mean, theirs.pl_mean) if float(theirs.pl_mean) else 0.0
        worst = max(worst, *diffs.values())
        print(f"{name} iter {it:2d} " + " ".join(f"{k}={v:.2e}" for k, v in diffs.items()), flush=True)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stylegan3", type=Path, help="checkout of NVlabs/stylegan3")
    ap.add_argument("--ada", type=Path, help="checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        checkout = args.stylegan3 if CASES[args.one][1] == "stylegan3" else args.ada
        print(f"RESULT {args.one} {run_case(args.one, checkout, args.iters):.3e}")
        return
    rows = []
    for name in args.cases.split(","):
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; known: {', '.join(CASES)}")
        checkout = args.stylegan3 if CASES[name][1] == "stylegan3" else args.ada
        if checkout is None:
            rows.append((name, "skipped (no checkout given)"))
            continue
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--iters", str(args.iters),
                               "--stylegan3", str(args.stylegan3 or ""), "--ada", str(args.ada or "")],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        last = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
        rows.append((name, f"max rel. difference {last[0].split()[-1]}" if last and proc.returncode == 0
                     else f"FAILED: {(proc.stdout + proc.stderr).strip().splitlines()[-1]}"))
        print(f"{name:12s} {CASES[name][0]:14s} {rows[-1][1]}", flush=True)
    if any("FAILED" in r[1] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
