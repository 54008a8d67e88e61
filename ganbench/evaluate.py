"""The evaluation orchestrator: checkpoints x metrics -> rows of the results table, resumable.

Each checkpoint gets one MetricContext, so every metric shares one generator pass per extractor and
the cached real statistics. Rows are appended atomically after each metric, so an interrupted
evaluation keeps everything it finished, and a rerun skips computations whose rows already exist.
Under `torchrun` (WORLD_SIZE > 1) `init_distributed` joins the process group, MetricContext shards
each feature pass across the processes and gathers the outputs, and only rank 0 writes the table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

import ganbench
from ganbench.errors import ConfigError
from ganbench.results import append_rows, done_keys, identity_key, read_results

RESULTS_NAME = "results.csv"


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint file found on disk: its run (folder name), path and training progress."""

    run: str
    path: Path
    kimg: float

    @property
    def run_dir(self) -> Path:
        return self.path.parent


@dataclass
class EvalOptions:
    """What to measure and how: metric names (+ parameters), real data, sample count, extractor, seed."""

    metrics: list[str]
    real: Any = None                      # dataset spec for ganbench.data.open_dataset, or an ImageDataset
    n: int | None = None                  # generated images; sets every metric's n_gen (None: each metric's own)
    n_real: int | None = None
    extractor: str = "shapes-net"
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 64
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_dir: str | os.PathLike | None = None


@dataclass
class EvalSummary:
    """What an evaluation did: rows added (as a table), computations skipped, files written."""

    added: pd.DataFrame
    skipped: int
    outputs: list[Path]
    not_computed: list[tuple[str, str, str, str]] = field(default_factory=list)  # (run, checkpoint, metric, why)


def _snapshots(folder: Path) -> list[Path]:
    from model_zoo import snapshot_kimg   # ganbench's and NVlabs' snapshot names

    return [p for p in folder.iterdir() if p.is_file() and snapshot_kimg(p.name) is not None]


def find_checkpoints(targets: Sequence[str | os.PathLike]) -> list[CheckpointRef]:
    """Checkpoints named by `targets` (files, run folders, or folders of run folders), sorted by kimg per run."""
    from model_zoo import snapshot_kimg   # ganbench's and NVlabs' snapshot names

    found: list[CheckpointRef] = []
    for target in targets:
        target = Path(target)
        if target.is_file():
            kimg = snapshot_kimg(target.name)
            if kimg is None:
                kimg = _kimg_from_metadata(target)
            found.append(CheckpointRef(run=target.resolve().parent.name, path=target, kimg=kimg))
            continue
        if not target.is_dir():
            raise ConfigError(f"{target} does not exist")
        files = _snapshots(target)
        if not files:
            files = [p for sub in sorted(target.iterdir()) if sub.is_dir() for p in _snapshots(sub)]
        if not files:
            raise ConfigError(f"no network-snapshot-*.pt in {target} or its subfolders")
        for p in files:
            found.append(CheckpointRef(run=p.resolve().parent.name, path=p,
                                       kimg=snapshot_kimg(p.name)))
    unique = {ref.path.resolve(): ref for ref in found}
    runs: dict[str, Path] = {}
    for ref in unique.values():
        if runs.setdefault(ref.run, ref.run_dir.resolve()) != ref.run_dir.resolve():
            raise ConfigError(f"two run folders share the name {ref.run!r} ({runs[ref.run]} and {ref.run_dir}); "
                              "rename one so their rows can be told apart")
    order = list(dict.fromkeys(ref.run for ref in found))
    return sorted(unique.values(), key=lambda r: (order.index(r.run), r.kimg, r.path.name))


def _kimg_from_metadata(path: Path) -> float:
    import model_zoo

    return float(model_zoo.describe(path)["kimg"] or 0.0)   # any network file model_zoo reads; 0 if unrecorded


def default_output(ref: CheckpointRef) -> Path:
    """Where a checkpoint's rows go without --out: the run folder's results.csv."""
    return ref.run_dir / RESULTS_NAME


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def metric_extractor(metric: Any, options: EvalOptions) -> str:
    """The extractor a metric runs on: its own `extractor` parameter, else the evaluation's."""
    return getattr(metric, "extractor", None) or options.extractor


def metric_n(metric: Any, n_ctx: int) -> int:
    """Generated images a metric sees: its own `n_gen`, else the context's."""
    return int(getattr(metric, "n_gen", None) or n_ctx)


def configure_metrics(options: EvalOptions) -> tuple[dict[str, Any], int]:
    """Instantiate the metrics (an explicit --n sets each one's n_gen unless its own params set it) and
    the context's sample count: the most any metric asks for."""
    from ganbench.metrics import get_metric
    from ganbench.metrics.api import DEFAULT_N

    if options.n is not None and options.n < 2:
        raise ConfigError(f"--n must be at least 2, got {options.n}")
    unknown = sorted(set(options.metric_params) - set(options.metrics))
    if unknown:
        raise ConfigError(f"parameters given for metric {unknown[0]!r}, which is not among --metrics")
    metrics = {}
    for name in options.metrics:
        params = options.metric_params.get(name, {})
        metric = get_metric(name, **params)
        if options.n is not None and hasattr(metric, "n_gen") and "n_gen" not in params:
            metric.n_gen = int(options.n)
        metrics[name] = metric
    wanted = [m.n_gen for m in metrics.values() if getattr(m, "n_gen", None)]
    n_ctx = max(wanted) if wanted else (options.n or DEFAULT_N)
    return metrics, int(n_ctx)


def metric_rows(ref: CheckpointRef, name: str, params_json: str, values: dict[str, float],
                outputs: dict[str, Any], described: dict[str, Any], options: EvalOptions, dataset: str,
                wall_s: float, extractor: str, n: int) -> list[dict[str, Any]]:
    """One row per result key of one metric computed on one checkpoint."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = []
    for key, value in values.items():
        direction = outputs.get(key)
        rows.append({
            "run": ref.run, "checkpoint": ref.path.name, "kimg": ref.kimg, "metric": key, "value": float(value),
            "metric_group": name, "direction": direction or "", "n_samples": n,
            "n_real": described.get("n_real", options.n_real), "extractor": extractor,
            "extractor_sha256": described.get("weights_sha256", ""), "resize_mode": described.get("resize_mode", ""),
            "dataset": dataset, "seed": options.seed, "params": params_json, "wall_s": round(wall_s, 3),
            "ganbench_version": ganbench.__version__, "timestamp": stamp, "run_dir": str(ref.run_dir.resolve()),
        })
    return rows


def _with_recorded_kimg(ref: CheckpointRef, meta: dict[str, Any]) -> CheckpointRef:
    """The checkpoint with the exact kimg from its metadata (file names round it down to whole kimg)."""
    kimg = meta.get("kimg")
    if isinstance(kimg, (int, float)) and int(kimg) == int(ref.kimg):
        return dataclasses.replace(ref, kimg=round(float(kimg), 3))
    return ref


def _open_real(real: Any, resolution: int, cache: dict[Any, Any]) -> Any:
    if real is None:
        raise ConfigError("no real data given and the checkpoint does not record its training data "
                          "(pass --real, e.g. --real shapes)")
    if not isinstance(real, str):
        return real
    if (real, resolution) not in cache:
        from ganbench.data import open_dataset

        cache[(real, resolution)] = open_dataset(real, resolution=resolution)
    return cache[(real, resolution)]


def _describe(ctx: Any, extractor: str) -> dict[str, Any]:
    """Extractor hash, resize mode and N of a context; {} when the extractor cannot be built (unused by the metric)."""
    from ganbench.errors import GanbenchError

    try:
        return dict(ctx.describe(extractor))
    except GanbenchError:
        return {}


def _identity(ref: CheckpointRef, name: str, how: tuple[str, str, int], options: EvalOptions) -> tuple:
    params_json, extractor, n = how
    return identity_key({"run": ref.run, "checkpoint": ref.path.name, "metric_group": name,
                         "extractor": extractor, "n_samples": n, "seed": options.seed, "params": params_json})


def dist_info() -> tuple[int, int]:
    """(rank, world size) of the current process group, (0, 1) outside torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str = "cpu") -> tuple[int, int]:
    """Join the torchrun process group (gloo on CPU, nccl on CUDA) when WORLD_SIZE > 1; returns (rank, world)."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist_info()


def leave_distributed() -> None:
    """Leave the process group `init_distributed` joined, once every rank is done with it.

    Exiting with the group still alive (or destroying it while a peer still talks to it) lets gloo abort a
    rank at interpreter exit ('terminate called without an active exception'), which torchrun reports as
    a failed run even though every result was written.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@dataclass
class _Plan:
    """The metrics of one evaluation and how each one's rows are identified."""

    metrics: dict[str, Any]
    n_ctx: int
    how: dict[str, tuple[str, str, int]]  # name -> (params JSON, extractor, n generated)

    @classmethod
    def make(cls, options: EvalOptions) -> "_Plan":
        metrics, n_ctx = configure_metrics(options)
        how = {name: (_json(m.params()), metric_extractor(m, options), metric_n(m, n_ctx)) for name, m in metrics.items()}
        return cls(metrics=metrics, n_ctx=n_ctx, how=how)


def evaluate(targets: Sequence[str | os.PathLike] | Sequence[CheckpointRef], options: EvalOptions,
             out: str | os.PathLike | None = None, progress: Any = None) -> EvalSummary:
    """Evaluate every metric on every checkpoint, appending rows to `out` (default: each run's results.csv)."""
    import torch

    refs = [t for t in targets if isinstance(t, CheckpointRef)] or find_checkpoints(targets)  # type: ignore[arg-type]
    plan = _Plan.make(options)
    rank, world = dist_info()
    done: dict[Path, set[tuple]] = {}
    for ref in refs:
        path = Path(out) if out is not None else default_output(ref)
        if path not in done:
            done[path] = done_keys(read_results(path)) if path.is_file() else set()
    if world > 1:
        torch.distributed.barrier()  # every rank has read the done rows before rank 0 appends any
    summary = EvalSummary(added=pd.DataFrame(), skipped=0, outputs=sorted(done))
    added: list[dict[str, Any]] = []
    datasets: dict[Any, Any] = {}
    ckpt_task = progress.add_task("checkpoints", total=len(refs)) if progress is not None else None
    for ref in refs:
        path = Path(out) if out is not None else default_output(ref)
        todo = [n for n in plan.metrics if _identity(ref, n, plan.how[n], options) not in done[path]]
        summary.skipped += len(plan.metrics) - len(todo)
        if todo:
            before = set(progress.task_ids) if progress is not None else set()
            for name, rows in _evaluate_checkpoint(ref, todo, plan, options, datasets, progress, summary):
                if rank == 0:
                    append_rows(path, rows)
                done[path].add(_identity(ref, name, plan.how[name], options))
                added.extend(rows)
            if progress is not None:
                for task in set(progress.task_ids) - before:
                    progress.remove_task(task)
        if progress is not None:
            progress.advance(ckpt_task)
    if world > 1:
        torch.distributed.barrier()
    summary.added = pd.DataFrame(added)
    return summary


def _evaluate_checkpoint(ref: CheckpointRef, todo: list[str], plan: _Plan, options: EvalOptions,
                         datasets: dict[Any, Any], progress: Any, summary: EvalSummary
                         ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield (name, rows) of each metric in `todo` on one checkpoint as soon as it is computed (one shared context)."""
    import torch

    import model_zoo
    from ganbench.metrics.context import MetricContext

    nets = model_zoo.open_network_file(ref.path)   # a ganbench checkpoint or a foreign network file
    ref = _with_recorded_kimg(ref, {"kimg": nets.kimg})
    G = nets.build("G_ema", device=options.device)
    spec = options.real if options.real is not None else nets.data
    real = _open_real(spec, int(G.img_resolution), datasets)
    ctx = MetricContext(generator=G, real=real, n_gen=plan.n_ctx, n_real=options.n_real, extractor=options.extractor,
                        seed=options.seed, batch_size=options.batch_size, device=options.device,
                        cache_dir=options.cache_dir, progress=progress)
    dataset_id = getattr(real, "identity", str(spec))
    described: dict[str, dict[str, Any]] = {}
    task = progress.add_task(f"{ref.run} @ {ref.kimg:g} kimg", total=len(todo)) if progress is not None else None
    devices = [torch.device(options.device)] if torch.device(options.device).type == "cuda" else []
    for name in todo:
        metric = plan.metrics[name]
        if progress is not None:
            progress.update(task, description=f"{ref.run} @ {ref.kimg:g} kimg: {name}")
        start = time.perf_counter()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(options.seed)  # metrics that draw from the global RNG repeat for a seed
                values = metric.compute(ctx)
        except ConfigError as exc:
            # e.g. PPL in W on ProGAN (no W space): the metric does not apply to this model; the rest go on.
            summary.not_computed.append((ref.run, ref.path.name, name, str(exc)))
            values = None
        wall = time.perf_counter() - start
        if values is not None:
            params_json, ext, n = plan.how[name]
            if ext not in described:
                described[ext] = _describe(ctx, ext)
            yield name, metric_rows(ref, name, params_json, values, dict(metric.outputs), described[ext], options,
                                    dataset_id, wall, ext, n)
        if progress is not None:
            progress.advance(task)
