"""The evaluation orchestrator: checkpoints x metrics -> rows of the results table, resumable.

Each checkpoint gets one MetricContext, so every metric shares one generator pass per extractor and
the cached real statistics. Rows are appended atomically after each metric, so an interrupted
evaluation keeps everything it finished, and a rerun skips computations whose rows already exist.
Under `torchrun` (WORLD_SIZE > 1) `init_distributed` joins the process group, MetricContext shards
each feature pass across the processes and gathers the outputs, and only rank 0 writes the table.

Before any work: every metric, parameter and extractor name is checked (a typo is an error listing the
valid names), the device is resolved, and every output folder is checked to be writable. While it works,
`evaluate` tells an `EvalProgress` what it is doing (the CLI draws one bar and prints one line per
checkpoint x metric). A metric that does not apply to a model (`NotApplicable`) is recorded, not an
error; NaN or inf in generator output or features stops with an error naming the checkpoint, or, with
`keep_going`, writes NaN rows flagged `diverged`.

A target may also be a set of images (a folder without snapshots, a `.zip`, `.npz` or `.npy`; see
ganbench/data/imagesets.py): its rows name the set as `run`, `images-<content hash>` as `checkpoint` and
leave `kimg` empty, `--n` defaults to every image of the set, and metrics that need a generator network
(PPL, LS, EQ) do not apply to it. Real data may be a statistics file (`real_stats`: FID) or a features file
(`real_features`: FID, KID, PR) instead of images (ganbench/metrics/stats_files.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

import ganbench
from ganbench.errors import ConfigError, DataError, NonFiniteError, NotApplicable, OutputError
from ganbench.results import (append_rows, done_keys, identity_key, read_results, run_folders, shard_dir,
                              write_results)

RESULTS_NAME = "results.csv"


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint file found on disk: its run (folder name), path and training progress.

    For a set of images, `content` is its content hash, `dataset` the opened images and `kimg` NaN.
    """

    run: str
    path: Path
    kimg: float
    content: str = ""
    dataset: Any = field(default=None, compare=False, repr=False)
    stamp: str = field(default="", compare=False, repr=False)   # the file's fingerprint, taken once (`stamped`)

    @property
    def is_image_set(self) -> bool:
        return bool(self.content)

    @property
    def name(self) -> str:
        """The `checkpoint` column: the file name, or `images-<content hash>` for an image set."""
        return f"images-{self.content}" if self.content else self.path.name

    @property
    def run_dir(self) -> Path:
        return self.path.resolve().parent if self.content else self.path.parent

    @property
    def fingerprint(self) -> str:
        """Which model the rows measure (results.py): the file's fingerprint, or an image set's content hash."""
        from ganbench.checkpoint import file_fingerprint

        return self.content or self.stamp or file_fingerprint(self.path)

    def stamped(self) -> "CheckpointRef":
        """This ref with its file's fingerprint taken now: the rows say which file was measured even if the file is
        moved or replaced later in the evaluation (train --no-resume moves a run aside)."""
        if self.content or self.stamp:
            return self
        try:
            return dataclasses.replace(self, stamp=self.fingerprint)
        except OSError as exc:
            raise ConfigError(f"cannot read checkpoint {self.path} ({exc.strerror or type(exc).__name__})") from None

    @property
    def label(self) -> str:
        """How progress lines name it: 'run @ 12 kimg', or 'samples (images 0123abcd…)' for an image set."""
        return f"{self.run} ({self.name})" if self.content else f"{self.run} @ {self.kimg:g} kimg"


DEFAULT_BATCH_SIZE = 64


@dataclass
class EvalOptions:
    """What to measure and how: metric names (+ parameters), real data, sample count, extractor, seed."""

    metrics: list[str]
    real: Any = None                      # dataset spec for ganbench.data.open_dataset, or an ImageDataset
    n: int | None = None                  # generated images; sets every metric's n_gen (None: each metric's own)
    n_real: int | None = None
    extractor: str = "shapes-net"
    seed: int = 0
    device: str = "auto"                  # auto: CUDA when present, else CPU
    batch_size: int = DEFAULT_BATCH_SIZE  # latents and noise are drawn per batch: another size, other images
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_dir: str | os.PathLike | None = None
    keep_going: bool = False              # non-finite output: write NaN rows flagged 'diverged' and go on
    skip_unknown: bool = False            # non-image files in a --real folder or zip: skip them (a warning)
    mirror: bool = False                  # add x-flipped copies of the real images, as NVlabs scores --mirror runs
    real_stats: str | os.PathLike | None = None     # an .npz of mu/sigma (FID) instead of real images
    real_features: str | os.PathLike | None = None  # an .npz of features (FID, KID, PR) instead of real images

    def __post_init__(self) -> None:
        if isinstance(self.metrics, str):   # "fid,kid" as on the command line (was read letter by letter: 'f')
            self.metrics = [m.strip() for m in self.metrics.split(",") if m.strip()]


@dataclass
class EvalSummary:
    """What an evaluation did: rows added (as a table), computations skipped, files written.

    `not_computed` lists the metrics that do not apply to a checkpoint's model (shown as "–");
    `diverged` the (run, checkpoint, metric) written as NaN rows flagged 'diverged' under keep_going.
    """

    added: pd.DataFrame
    skipped: int
    outputs: list[Path]
    not_computed: list[tuple[str, str, str, str]] = field(default_factory=list)  # (run, checkpoint, metric, why)
    diverged: list[tuple[str, str, str]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)  # the metrics asked for, in order (tables follow it)
    # Identity (results.identity_key) of every computation this evaluation stands for, computed now or found done:
    # the rows of its settings, told apart from rows an earlier evaluation with other settings left in the table.
    identities: set[tuple] = field(default_factory=set)
    kimgs: dict[tuple[str, str], float] = field(default_factory=dict)   # (run, checkpoint) -> recorded kimg
    # seconds spent on: real_images (0 when cached), generation, gen_features (pass incl. generation), metrics (rest)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)   # what a person must know about the numbers (one line each)

    def warn(self, line: str) -> None:
        """Add a warning line once (each checkpoint of a run would give it again)."""
        if line not in self.warnings:
            self.warnings.append(line)


class EvalProgress:
    """What `evaluate` reports while it works; the CLI draws a bar and prints lines, this base ignores it all.

    Work is counted in generated samples (each metric's n times its `work_per_sample`; feature-based
    metrics on one extractor share one pass per checkpoint, so only the first of them carries its n).
    """

    def begin(self, total: float, jobs: int) -> None:
        """The evaluation starts: `jobs` checkpoint x metric computations worth `total` units of work."""

    def working(self, description: str, done: float) -> None:
        """Now doing `description`; `done` units of work are finished in all."""

    def computed(self, ref: "CheckpointRef", metric: str, rows: list[dict[str, Any]], wall_s: float) -> None:
        """One metric on one checkpoint is finished and its rows are written (values may be NaN: diverged)."""

    def not_applicable(self, ref: "CheckpointRef", metric: str, why: str) -> None:
        """Metric `metric` does not apply to this checkpoint's model."""


FEATURE_NEEDS = frozenset({"real_features", "gen_features", "real_logits", "gen_logits"})


def _snapshots(folder: Path) -> list[Path]:
    from model_zoo import snapshot_kimg   # ganbench's and NVlabs' snapshot names

    return [p for p in folder.iterdir() if p.is_file() and snapshot_kimg(p.name) is not None]


def image_set_ref(path: str | os.PathLike, skip_unknown: bool = False, cache_dir: Any = None) -> CheckpointRef:
    """An image set as an evaluation target: named by its folder/file stem and keyed by its content hash."""
    from ganbench.data.imagesets import content_hash, open_image_set, set_name

    dataset = open_image_set(path, skip_unknown=skip_unknown)
    digest = content_hash(dataset, False if cache_dir is False else None)
    return CheckpointRef(run=set_name(path), path=Path(path), kimg=math.nan, content=digest, dataset=dataset)


def find_checkpoints(targets: Sequence[str | os.PathLike], skip_unknown: bool = False,
                     cache_dir: Any = None) -> list[CheckpointRef]:
    """Checkpoints named by `targets` (files, run folders, or folders of run folders), sorted by kimg per run;
    image sets (see ganbench/data/imagesets.py) in the order given."""
    from ganbench.data.imagesets import is_image_set
    from model_zoo import snapshot_kimg   # ganbench's and NVlabs' snapshot names

    found: list[CheckpointRef] = []
    for target in targets:
        target = Path(target)
        if is_image_set(target):
            found.append(image_set_ref(target, skip_unknown, cache_dir))
            continue
        if target.is_file():
            kimg = snapshot_kimg(target.name)
            run = target.resolve().parent.name
            if kimg is None:   # a model file of its own (stylegan2-ffhq-1024x1024.pkl, best.pt): its own run
                kimg, run = _kimg_from_metadata(target), target.stem
            found.append(CheckpointRef(run=run, path=target, kimg=kimg))
            continue
        if not target.is_dir():
            raise ConfigError(f"{target} does not exist")
        files = _snapshots(target)
        runs_inside = [sub for sub in sorted(target.iterdir()) if sub.is_dir() and not sub.name.startswith("replaced-")
                       and _snapshots(sub)]   # replaced-<time>/: an earlier run train moved aside
        if files and runs_inside:   # one stray snapshot made the folder a run and hid every run inside it
            raise ConfigError(f"{target} holds snapshots of its own ({files[0].name}) and run folders with snapshots "
                              f"({', '.join(s.name for s in runs_inside[:3])}{', ...' if len(runs_inside) > 3 else ''})"
                              f": pass the run folders themselves, or move the stray snapshot")
        if not files:
            files = [p for sub in runs_inside for p in _snapshots(sub)]
        if not files:
            raise ConfigError(f"no network-snapshot-*.pt in {target} or its subfolders")
        for p in files:
            found.append(CheckpointRef(run=p.resolve().parent.name, path=p,
                                       kimg=snapshot_kimg(p.name)))
    unique = {ref.path.resolve(): ref for ref in found}
    runs: dict[str, Path] = {}
    for ref in unique.values():
        if ref.is_image_set:
            continue   # told apart by their content hash; the same images anywhere are the same set
        if runs.setdefault(ref.run, ref.run_dir.resolve()) != ref.run_dir.resolve():
            raise ConfigError(f"two runs share the name {ref.run!r} (in {runs[ref.run]} and {ref.run_dir}); "
                              "rename one so their rows can be told apart")
    order = list(dict.fromkeys(ref.run for ref in found))
    return sorted(unique.values(), key=lambda r: (order.index(r.run), 0.0 if r.content else r.kimg, r.path.name))


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
    the context's sample count: the most any metric asks for.

    Every name is checked here, before any work: metrics, their parameters, and every extractor
    (the evaluation's and any a metric names), each error listing the valid names.
    """
    from ganbench.features import check_extractor
    from ganbench.metrics import get_metric, list_metrics
    from ganbench.metrics.api import DEFAULT_N
    from ganbench.registry import unknown_name

    if options.n is not None and options.n < 2:
        raise ConfigError(f"--n must be at least 2, got {options.n}")
    if options.batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {options.batch_size}")
    if options.n_real is not None and options.n_real < 2:
        raise ConfigError(f"--n-real must be at least 2, got {options.n_real}")
    if not 0 <= options.seed < 2 ** 32:   # numpy's RandomState takes 32-bit seeds, as `train --seed` does
        raise ConfigError(f"--seed must be from 0 to 2**32-1, got {options.seed}")
    unknown = sorted(set(options.metric_params) - set(options.metrics))
    if unknown:
        hint = "" if unknown[0] in list_metrics() else f" ({unknown_name('metric', unknown[0], list_metrics())})"
        raise ConfigError(f"parameters given for metric {unknown[0]!r}, which is not among --metrics{hint}")
    check_extractor(options.extractor)
    metrics = {}
    for name in options.metrics:
        params = options.metric_params.get(name, {})
        metric = get_metric(name, **params)
        if options.n is not None and hasattr(metric, "n_gen") and "n_gen" not in params:
            metric.n_gen = int(options.n)
        metrics[name] = metric
        for attr in ("extractor", "classifier"):  # extractors a metric names itself (fid's, ls's classifier)
            if isinstance(getattr(metric, attr, None), str):
                check_extractor(getattr(metric, attr))
    wanted = [m.n_gen for m in metrics.values() if getattr(m, "n_gen", None)]
    n_ctx = max(wanted) if wanted else (options.n or DEFAULT_N)
    return metrics, int(n_ctx)


def row_seed(ref: CheckpointRef, metric: Any, seed: int) -> int:
    """The seed a row records: 0 where the number is the same for every seed (`Metric.seed_free_on_images` on an
    image set). Rows of seeds 0..4 of such a set were five identical numbers, later read as five repeats with
    std 0; now a rerun with another seed finds the computation done."""
    return 0 if ref.is_image_set and getattr(metric, "seed_free_on_images", False) else int(seed)


def count_warnings(metrics: dict[str, Any], extractors: dict[str, str] | None = None) -> list[str]:
    """A line for each metric whose name promises what it did not measure: a sample count (`fid50k_full`: 50k)
    other than its --n or n_gen, or a feature network (`fid50k_full`: Inception) other than the one in
    `extractors` (name -> extractor used). Its rows are honest (n_samples and extractor say what was used), but
    the name invites a comparison with the published numbers it cannot stand."""
    lines = []
    for name, metric in metrics.items():
        promised = re.search(r"(\d+)k(?![a-z])", name)
        n_gen = getattr(metric, "n_gen", None)
        if promised and n_gen is not None and int(n_gen) != int(promised.group(1)) * 1000:
            lines.append(f"{name} measured {int(n_gen)} generated images, not the {promised.group(1)}k its name says: "
                         f"compare its numbers only with rows of the same n_samples, not with published {name}")
        used = (extractors or {}).get(name, "")
        published = getattr(metric, "published_extractor", "")
        if published and used and used.split(":")[0] != published:
            lines.append(f"{name} measured {used} features, not the {published} features its published numbers use: "
                         f"compare its numbers only with rows of the same extractor (--extractor {published} "
                         f"to reproduce them)")
    return lines


def _warn_counts(summary: "EvalSummary", plan: "_Plan", names: Sequence[str]) -> None:
    """`count_warnings` of the metrics in `names` that have rows (computed or found done), once each: a metric that
    did not apply measured nothing, so it was not 'measured with 50 images'."""
    for line in count_warnings({n: plan.metrics[n] for n in names}, {n: plan.how[n][1] for n in names}):
        summary.warn(line)


def metric_rows(ref: CheckpointRef, name: str, params_json: str, values: dict[str, float],
                outputs: dict[str, Any], described: dict[str, Any], options: EvalOptions, dataset: str,
                wall_s: float, extractor: str, n: int, flag: str = "", seed: int | None = None) -> list[dict[str, Any]]:
    """One row per result key of one metric computed on one checkpoint (`flag`: '' or 'diverged'); `seed`: the
    seed recorded (default: the evaluation's, see `row_seed`)."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = []
    for key, value in values.items():
        direction = outputs.get(key)
        rows.append({
            "run": ref.run, "checkpoint": ref.name, "kimg": ref.kimg, "metric": key, "value": float(value),
            "metric_group": name, "direction": direction or "", "n_samples": n,
            "n_real": described.get("n_real", options.n_real), "extractor": extractor,
            "extractor_sha256": described.get("weights_sha256", ""), "resize_mode": described.get("resize_mode", ""),
            "dataset": dataset, "seed": options.seed if seed is None else seed, "params": params_json,
            "wall_s": round(wall_s, 3),
            "ganbench_version": ganbench.__version__, "timestamp": stamp,
            "run_dir": str(ref.path.resolve() if ref.is_image_set else ref.run_dir.resolve()),
            "flag": flag, "fingerprint": ref.fingerprint,
        })
    return rows


def _with_recorded_kimg(ref: CheckpointRef, meta: dict[str, Any]) -> CheckpointRef:
    """The checkpoint with the exact kimg from its metadata (file names round it down to whole kimg)."""
    kimg = meta.get("kimg")
    if isinstance(kimg, (int, float)) and int(kimg) == int(ref.kimg):
        return dataclasses.replace(ref, kimg=round(float(kimg), 3))
    return ref


def _open_real(real: Any, resolution: int, cache: dict[Any, Any], skip_unknown: bool = False,
               how: dict[str, Any] | None = None) -> Any:
    """Real data `real` at `resolution`, opened once per evaluation; `how`: open_dataset options (a run's recorded
    crop / resize, eval's --mirror)."""
    if real is None:
        raise ConfigError("no real data given and the checkpoint does not record its training data "
                          "(pass --real, e.g. --real shapes)")
    if not isinstance(real, str):
        return real
    how = dict(how or {})
    key = (real, resolution, tuple(sorted(how.items())))
    if key not in cache:
        from ganbench.data import open_dataset

        kw = {"skip_unknown": True} if skip_unknown and _takes_skip_unknown(real) else {}
        cache[key] = open_dataset(real, resolution=resolution, **kw, **how)
    return cache[key]


def _takes_skip_unknown(spec: str) -> bool:
    """Whether dataset spec `spec` names a format that can hold non-image files (a folder or a zip)."""
    from ganbench.data import FORMATS

    path = Path(spec).expanduser()
    return path.exists() and any("skip_unknown" in FORMATS.get(f).options and FORMATS.get(f).matches is not None
                                 and FORMATS.get(f).matches(path) for f in FORMATS.names())


def _describe(ctx: Any, extractor: str) -> dict[str, Any]:
    """Extractor hash, resize mode and N of a context; {} when the extractor cannot be built (unused by the metric)."""
    from ganbench.errors import GanbenchError

    try:
        return dict(ctx.describe(extractor))
    except GanbenchError:
        return {}


def _identity(ref: CheckpointRef, name: str, plan: "_Plan", options: EvalOptions, real: tuple[str, int]) -> tuple:
    params_json, extractor, n = plan.how[name]
    dataset, n_real = real
    seed = row_seed(ref, plan.metrics[name], options.seed)
    return identity_key({"run": ref.run, "checkpoint": ref.name, "metric_group": name,
                         "extractor": extractor, "n_samples": n, "seed": seed, "params": params_json,
                         "dataset": dataset, "n_real": n_real})


def _refuse_model_conflicts(refs: Sequence[CheckpointRef], tables: dict[Path, Any], out: Any) -> None:
    """Before any work: the rows this evaluation adds must not make a table every reader refuses
    (results.model_conflict: two runs or image sets of one name from two folders, also when one folder is gone; a
    network run and an image set of one name), nor be taken for another existing folder's run of the same name
    (`_refuse_another_run_of_the_same_name`)."""
    from ganbench.results import model_conflict

    planned: dict[Path, list[dict[str, Any]]] = {}
    homes = {path: run_folders(table) for path, table in tables.items()}
    for ref in refs:
        path = Path(out) if out is not None else default_output(ref)
        _refuse_another_run_of_the_same_name(ref, path, homes[path])
        planned.setdefault(path, []).append({
            "run": ref.run, "checkpoint": ref.name, "kimg": ref.kimg, "fingerprint": ref.fingerprint,
            "run_dir": str(ref.path.resolve() if ref.is_image_set else ref.run_dir.resolve()), "timestamp": "~"})
    cols = ["run", "checkpoint", "kimg", "fingerprint", "run_dir", "timestamp"]
    for path, rows in planned.items():
        table = tables.get(path)
        frame = pd.DataFrame(rows, columns=cols) if table is None else pd.concat([table[cols], pd.DataFrame(rows)])
        why = model_conflict(frame.reset_index(drop=True))
        if why:
            raise ConfigError(f"{path}: {why}")


def _refuse_another_run_of_the_same_name(ref: CheckpointRef, out: Path, homes: dict[str, set[str]]) -> None:
    """Rows are keyed by run name and snapshot: a second folder with the same name, evaluated into a table that
    holds the first one's rows, would have its snapshots skipped as done and the first run's numbers reported for
    it. A run whose recorded folder no longer exists was moved, and goes on."""
    if ref.is_image_set or not homes.get(ref.run):
        return
    mine = str(ref.run_dir.resolve())
    others = sorted(d for d in homes[ref.run] if d != mine and Path(d).is_dir())
    if mine not in homes[ref.run] and others:
        raise ConfigError(f"{out} already holds rows of run {ref.run!r} from {others[0]}, and {ref.run_dir} is another "
                          f"folder of that name: its snapshots would be taken as done; give it its own --out (or "
                          "rename the folder)")


class _RealData:
    """The real dataset each checkpoint is measured against, opened once per (spec, resolution).

    A run folder's snapshots share their resolution and training data (resume refuses other data), so one
    network file per folder tells both; the rows' `dataset` and `n_real` are known before any metric runs,
    and a rerun with other real data computes instead of skipping."""

    def __init__(self, options: EvalOptions) -> None:
        self.options = options
        self.datasets: dict[Any, Any] = {}
        self._per_dir: dict[Path, tuple[Any, int, dict[str, Any]]] = {}
        self.trained_mirrored: dict[Path, bool] = {}
        self.file = real_file(options)
        if self.file is not None and options.n_real is not None:   # it was silently ignored
            count = f"its {self.file.n}" if self.file.n else "its own"
            raise ConfigError(f"--n-real {options.n_real} does not apply to {self.file.path}: a statistics or "
                              f"features file holds what {count} real images gave")
        if self.file is not None and options.mirror:
            raise ConfigError(f"--mirror does not apply to {self.file.path}: a statistics or features file holds what "
                              f"its real images gave (pass the real data with --real to add their x-flips)")

    def of(self, ref: CheckpointRef) -> tuple[Any, Any]:
        """(spec, dataset) for `ref`; (file path, None) when the reals are a statistics or features file."""
        import model_zoo

        if self.file is not None:
            return str(self.file.path), None
        if ref.is_image_set:
            if self.options.real is None:
                raise ConfigError(f"{ref.path} is a set of images and records no real data: pass --real DATA, "
                                  f"--real-stats FILE.npz or --real-features FILE.npz")
            spec, resolution = self.options.real, int(ref.dataset.resolution)
            return spec, _open_real(spec, resolution, self.datasets, self.options.skip_unknown, self._mirror({}))
        key = self._key(ref)
        if key not in self._per_dir:
            nets = model_zoo.open_network_file(ref.path)
            # the run's own data is opened as the run opened it (its --crop / --resize); --real data by default
            recorded = {k: v for k, v in nets.data_options.items() if k != "mirror"}
            spec, how = (self.options.real, {}) if self.options.real is not None else (nets.data, recorded)
            self._per_dir[key] = (spec, int(nets.resolution), how)
            self.trained_mirrored[key] = bool(nets.data_options.get("mirror"))
        spec, resolution, how = self._per_dir[key]
        return spec, _open_real(spec, resolution, self.datasets, self.options.skip_unknown, self._mirror(how))

    def _mirror(self, how: dict[str, Any]) -> dict[str, Any]:
        return {**how, "mirror": True} if self.options.mirror else how

    def unmirrored_run(self, ref: CheckpointRef) -> bool:
        """Whether `ref` was trained with x-flips (--mirror, NVlabs' xflip) but is scored against unflipped reals."""
        if ref.is_image_set or self.options.mirror or self.file is not None:
            return False
        return self.trained_mirrored.get(self._key(ref), False)

    @staticmethod
    def _key(ref: CheckpointRef) -> Path:
        """One network file per run folder tells its data and resolution; a lone model file stands for itself."""
        import model_zoo

        return ref.run_dir.resolve() if model_zoo.snapshot_kimg(ref.path.name) is not None else ref.path.resolve()

    def identity(self, ref: CheckpointRef) -> tuple[str, int | None]:
        """(dataset identity, real images used) as the rows of `ref` record them."""
        if self.file is not None:
            return self.file.identity, self.file.n
        from ganbench.metrics.context import check_n_real

        spec, real = self.of(ref)
        check_n_real(self.options.n_real, real, spec)
        n = len(real) if self.options.n_real is None else int(self.options.n_real)
        return str(getattr(real, "identity", spec)), n


def real_file(options: EvalOptions) -> Any:
    """The checked statistics or features file standing in for real images, or None."""
    from ganbench.metrics.stats_files import load_real_file

    given = [(flag, value) for flag, value in (("--real", options.real), ("--real-stats", options.real_stats),
                                               ("--real-features", options.real_features)) if value is not None]
    if len(given) > 1:
        raise ConfigError(f"{given[0][0]} and {given[1][0]} both name the real data: give one")
    if options.real_stats is not None:
        return load_real_file(options.real_stats, "stats")
    if options.real_features is not None:
        return load_real_file(options.real_features, "features")
    return None


def _check_real_file(file: Any, plan: "_Plan", options: EvalOptions) -> None:
    """Before any work: a statistics file (mu/sigma) serves FID only, and only with all its images (a metric's own
    n_real below the file's count cannot be cut from moments); KID, PR, SWD... need features or images; and one
    that records its extractor is refused for another by name, before that extractor's weights are fetched."""
    from ganbench.metrics.fid import FID

    if file is None:
        return
    for name, metric in plan.metrics.items():
        wanted = str(metric_extractor(metric, options)).partition(":")[0]
        if file.extractor and "features" in "".join(getattr(metric, "needs", ())) and wanted != file.extractor:
            raise DataError(f"{file.path}: statistics were computed with extractor {file.extractor!r}, not "
                            f"{wanted!r} (pass --extractor {file.extractor})")
        needs = set(getattr(metric, "needs", ()))
        if "real_images" in needs:
            raise ConfigError(f"{name} needs real images; {file.path} holds only statistics (pass --real DATA)")
        if "real_features" in needs and file.features is None and not isinstance(metric, FID):
            raise ConfigError(f"{name} needs real features; {file.path} holds only mu/sigma (export them with "
                              f"`ganbench stats export --features` and pass --real-features FILE)")
        if isinstance(metric, FID):
            file.check_n_real(metric.n_real)


def needs_generator(metric: Any) -> bool:
    """Whether a metric runs the generator network itself (PPL, LS, EQ), so an image set cannot serve it."""
    return "generator" in getattr(metric, "needs", ())


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
    def make(cls, options: EvalOptions, real_file: Any = None) -> "_Plan":
        from ganbench.devices import tf32_allowed

        metrics, n_ctx = configure_metrics(options)
        # Settings of the whole evaluation that change its numbers, recorded only where they differ from the
        # default so rows written before they were recorded keep their identity: TF32 (not fp32 numbers), and a
        # batch size other than 64 (latents and noise are drawn per batch, so the generated images differ).
        extra: dict[str, Any] = {"tf32": True} if tf32_allowed(options.device) else {}
        if options.batch_size != DEFAULT_BATCH_SIZE:
            extra["batch_size"] = int(options.batch_size)
        how = {name: (_json({**m.params(), **extra, **_real_covariance(m, real_file)}), metric_extractor(m, options),
                      metric_n(m, n_ctx)) for name, m in metrics.items()}
        return cls(metrics=metrics, n_ctx=n_ctx, how=how)

    def work(self, todo: Sequence[str]) -> dict[str, float]:
        """Units of work (generated samples) of each metric in `todo` on one checkpoint.

        Feature-based metrics on one extractor share the checkpoint's generator + feature pass, which the
        first of them pays for; the others only compute on its outputs.
        """
        out, passes = {}, set()
        for name in todo:
            metric = self.metrics[name]
            _, extractor, n = self.how[name]
            if set(getattr(metric, "needs", ())) <= FEATURE_NEEDS and metric.needs:
                out[name] = float(self.n_ctx) if extractor not in passes else 0.02 * n
                passes.add(extractor)
            else:
                out[name] = float(n) * float(getattr(metric, "work_per_sample", 1.0) or 1.0)
        return out


def _real_covariance(metric: Any, file: Any) -> dict[str, str]:
    """`real_covariance` for a row whose real sigma a statistics file gives in another convention than the
    metric's `covariance` and cannot be converted (N unknown: pytorch-fid / clean-fid files are ÷(N-1)); the
    row said "biased" although its real side was not."""
    wanted = getattr(metric, "covariance", None)
    given = file.sigma_as_given(wanted) if file is not None and isinstance(wanted, str) else None
    return {"real_covariance": f"{given} (as in the file, N unknown)"} if given else {}


class _Plans:
    """The plan of each target: the evaluation's, or for an image set one whose --n defaults to its size."""

    def __init__(self, options: EvalOptions, plan: _Plan, real_file: Any = None) -> None:
        self.options, self.plan, self.real_file = options, plan, real_file
        self._by_n: dict[int, _Plan] = {}

    def of(self, ref: CheckpointRef) -> _Plan:
        if ref.is_image_set and self.options.n is not None and self.options.n > len(ref.dataset):
            raise ConfigError(f"--n {self.options.n}, but the image set {ref.path} has {len(ref.dataset)} images "
                              f"(leave --n out to score all of them)")   # was 'n_gen=100 but only 62 ... given'
        if not ref.is_image_set or self.options.n is not None:
            return self.plan
        n = len(ref.dataset)
        if n not in self._by_n:
            self._by_n[n] = _Plan.make(dataclasses.replace(self.options, n=n), self.real_file)
        return self._by_n[n]


def check_writable(path: Path) -> None:
    """Fail before any work when results cannot be written to `path` (folder read-only, full, or not a folder)."""
    from ganbench.checkpoint import probe_writable

    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write results to {path}: it is a folder (give a .csv file)")
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():   # /dev/null, a fifo: found only after every metric was computed
        raise OutputError(f"cannot write results to {path}: not a regular file (give a .csv file)")
    blocker = next((a for a in path.parents if a.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputError(f"cannot write results to {path}: {blocker} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe_writable(path.parent, f".{path.name}.probe.")
    except OSError as exc:
        raise OutputError(f"cannot write results to {path}: {exc.strerror or exc}") from None


def save_unwritten(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Keep rows that could not be appended to `path` in a results CSV elsewhere; None if nowhere works."""
    from ganbench.assets import cache_root

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{path.stem}.unsaved-{stamp}-{os.getpid()}.csv"
    for folder in (path.parent, Path.cwd(), Path(tempfile.gettempdir()), cache_root()):
        try:
            write_results(folder / name, pd.DataFrame(rows))
            return folder / name
        except OSError:
            continue
    return None


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows to the results table; on a write error keep them in a recoverable file and say where."""
    try:
        append_rows(path, rows)
    except OSError as exc:
        kept = save_unwritten(rows, path)
        where = (f"the {len(rows)} computed row(s) are kept in {kept} (a results CSV: pass it to report/check "
                 f"or append its rows to {path.name})") if kept else "no folder could take the computed rows"
        raise OutputError(f"cannot write results to {path} ({exc.strerror or exc}); {where}") from None


def not_applicable_line(items: Sequence[tuple[str, str, str, str]]) -> str:
    """One quiet line for metrics that do not apply to some models, e.g. 'eqr50k for progan-s0, stylegan-s0'."""
    runs: dict[str, list[str]] = {}
    for run, _, metric, _ in items:
        if run not in runs.setdefault(metric, []):
            runs[metric].append(run)
    groups: dict[tuple[str, ...], list[str]] = {}
    for metric, names in runs.items():
        groups.setdefault(tuple(names), []).append(metric)
    parts = [f"{', '.join(metrics)} for {', '.join(names)}" for names, metrics in groups.items()]
    return "not applicable (shown as –): " + "; ".join(parts) if parts else ""


def evaluate(targets: Sequence[str | os.PathLike] | Sequence[CheckpointRef], options: EvalOptions,
             out: str | os.PathLike | None = None, progress: EvalProgress | None = None) -> EvalSummary:
    """Evaluate every metric on every checkpoint, appending rows to `out` (default: each run's results.csv)."""
    import torch

    from ganbench.devices import resolve_device

    if isinstance(targets, (str, os.PathLike, CheckpointRef)):   # one target (a string was read letter by letter)
        targets = [targets]  # type: ignore[list-item]

    options = dataclasses.replace(options, device=str(resolve_device(options.device)))
    reals = _RealData(options)   # a statistics file checked before any work
    plan = _Plan.make(options, reals.file)   # every name checked before any work (a file's sigma may be in params)
    refs = ([t for t in targets if isinstance(t, CheckpointRef)]
            or find_checkpoints(targets, options.skip_unknown, options.cache_dir))  # type: ignore[arg-type]
    refs = [ref.stamped() for ref in refs]
    plans = _Plans(options, plan, reals.file)
    _check_real_file(reals.file, plan, options)
    if refs and all(ref.is_image_set for ref in refs) and all(needs_generator(m) for m in plan.metrics.values()):
        raise ConfigError(f"{', '.join(plan.metrics)} need(s) a generator network; an image set "
                          f"({refs[0].path}) has only images: ask for fid, kid, is, pr, swd or ms_ssim")
    progress = progress if progress is not None else EvalProgress()
    rank, world = dist_info()
    done: dict[Path, dict[tuple, str]] = {}
    tables: dict[Path, Any] = {}
    for ref in refs:
        path = Path(out) if out is not None else default_output(ref)
        if path not in done:
            check_writable(path)   # on every rank: one that failed alone left the others a gloo traceback
            # the table is the file and its shards: a removed file whose shards remain still holds those rows (every
            # reader sees them), so they are done
            table = read_results(path) if path.is_file() or shard_dir(path).is_dir() else None
            done[path] = done_keys(table) if table is not None else {}
            tables[path] = table
    _refuse_model_conflicts(refs, tables, out)
    if world > 1:
        torch.distributed.barrier()  # every rank has read the done rows before rank 0 appends any
    summary = EvalSummary(added=pd.DataFrame(), skipped=0, outputs=sorted(done), metrics=list(plan.metrics))
    jobs = []
    for ref in refs:
        path = Path(out) if out is not None else default_output(ref)
        real = reals.identity(ref)
        mine = plans.of(ref)
        keys = {n: _identity(ref, n, mine, options, real) for n in mine.metrics}
        summary.identities.update(keys.values())
        # done when its rows exist and measured this file (a snapshot retrained under the same name is measured again)
        todo = [n for n in mine.metrics if done[path].get(keys[n]) not in ("", ref.fingerprint)]
        summary.skipped += len(mine.metrics) - len(todo)
        _warn_counts(summary, mine, [n for n in mine.metrics if n not in todo])   # their rows exist
        if len(todo) < len(mine.metrics):
            _warn_resized(ref, summary)
        jobs.append((ref, path, todo, mine.work(todo), real))
    progress.begin(sum(sum(job[3].values()) for job in jobs), sum(len(job[2]) for job in jobs))
    added: list[dict[str, Any]] = []
    base = 0.0
    extractors: dict[str, Any] = {}  # built once per evaluation (Inception ~0.3 s, VGG16 ~0.8 s), not per checkpoint
    for ref, path, todo, work, real in jobs:
        if not todo:
            continue
        mine = plans.of(ref)
        for exact, name, rows, wall in _evaluate_checkpoint(ref, todo, mine, options, reals, progress, summary,
                                                            base, work, extractors):
            if rank == 0:
                _append(path, rows)
            done[path][_identity(ref, name, mine, options, real)] = ref.fingerprint
            _warn_counts(summary, mine, [name])
            added.extend(rows)
            progress.computed(exact, name, rows, wall)
        base += sum(work.values())
        progress.working(f"{ref.label}: done", base)
    if world > 1:
        torch.distributed.barrier()
    summary.added = pd.DataFrame(added)
    if not added and not summary.skipped and summary.not_computed and not summary.diverged:
        run, checkpoint, metric, why = summary.not_computed[0]
        raise ConfigError(f"nothing was measured: {', '.join(plan.metrics)} do(es) not apply to "
                          f"{'these checkpoints' if len(refs) > 1 else checkpoint} ({metric}: {why})")
    return summary


def _context_progress(progress: EvalProgress, label: str, start: float, weight: float) -> Any:
    """MetricContext's callable(stage, done, total), mapped onto the job's bar: generated passes move it."""
    state = {"pos": start}

    def report(stage: str, done: int, total: int) -> None:
        if not stage.startswith("real") and total:
            state["pos"] = max(state["pos"], start + 0.98 * weight * min(done / total, 1.0))
        progress.working(f"{label} ({stage} {done}/{total})", state["pos"])

    return report


def _diverged_message(ref: CheckpointRef, name: str, exc: NonFiniteError) -> str:
    return (f"checkpoint {ref.path}: {exc} while computing {name}; the network diverged "
            f"(pass --keep-going to record NaN rows flagged 'diverged' and go on)")


def _add_timings(summary: EvalSummary, timings: dict[str, float], spent: float, reported: dict[str, float]) -> None:
    """Fold one checkpoint's time split so far into the summary; `reported` holds what was already added."""
    mine = dict(timings)
    mine["metrics"] = max(0.0, spent - mine["real_images"] - mine["gen_features"])
    for key, value in mine.items():
        summary.timings[key] = summary.timings.get(key, 0.0) + value - reported.get(key, 0.0)
    reported.update(mine)


def _warn_resized(ref: CheckpointRef, summary: EvalSummary) -> None:
    """An image set whose images are not a square power of two is cropped and resized (the --real rule) before any
    metric; said once, because its numbers then differ from those clean-fid or torch-fidelity give for the same
    files (they resize straight to 299 px, without a crop)."""
    if not ref.is_image_set or ref.dataset is None or ref.dataset.source_size is None:
        return
    (w, h), r = ref.dataset.source_size, int(ref.dataset.resolution)
    if (w, h) == (r, r):
        return
    how = "resized" if w == h else "center-cropped and resized"
    line = (f"{ref.run}: its {w}x{h} images are {how} to {r}x{r} px (the largest power of two within, as --real "
            f"data) before every metric; clean-fid and torch-fidelity resize them straight to 299 px, so their FID "
            f"of these files differs")
    summary.warn(line)


def _warn_channels(ref: CheckpointRef, G: Any, real: Any, spec: Any, summary: EvalSummary) -> None:
    """Gray images are scored as RGB (the gray repeated, as NVlabs does), so colour images against gray real data
    (or the reverse) gave a large FID without a word; one warning per run and real data."""
    made = getattr(G, "img_channels", None) or getattr(G, "num_channels", None)
    given = getattr(real, "num_channels", None)
    if made is None or given is None or (int(made) == 1) == (int(given) == 1):
        return
    what = "an image set" if ref.is_image_set else "a generator"
    line = (f"{ref.run} is {what} of {int(made)}-channel images but the real data {spec} has {int(given)}: both are "
            f"scored as RGB (gray repeated), so the distance includes colour against gray")
    summary.warn(line)


def _evaluate_checkpoint(ref: CheckpointRef, todo: list[str], plan: _Plan, options: EvalOptions,
                         reals: _RealData, progress: EvalProgress, summary: EvalSummary,
                         base: float = 0.0, work: dict[str, float] | None = None,
                         extractors: dict[str, Any] | None = None
                         ) -> Iterator[tuple[CheckpointRef, str, list[dict[str, Any]], float]]:
    """Yield (checkpoint with its exact kimg, name, rows, seconds) of each metric in `todo` on one checkpoint
    as soon as it is computed (one shared context)."""
    import torch

    import model_zoo
    from ganbench.metrics.context import MetricContext

    work = work or {name: 0.0 for name in todo}
    if ref.is_image_set:
        G, resolution = ref.dataset, int(ref.dataset.resolution)
    else:
        nets = model_zoo.open_network_file(ref.path)   # a ganbench checkpoint or a foreign network file
        ref = _with_recorded_kimg(ref, {"kimg": nets.kimg})
        summary.kimgs[(ref.run, ref.name)] = ref.kimg
        G = nets.build("G_ema", device=options.device)
        resolution = int(G.img_resolution)
    if reals.file is not None:
        reals.file.check_resolution(resolution)
    spec, real = reals.of(ref)
    _warn_channels(ref, G, real, spec, summary)
    _warn_resized(ref, summary)
    if reals.unmirrored_run(ref):
        summary.warn(f"{ref.run} was trained with x-flipped copies of its data (--mirror); NVlabs scores such runs "
                     f"against the x-flipped real images too (its published FIDs): pass --mirror to reproduce them")
    label = ref.label
    ctx = MetricContext(generator=G, real=real, n_gen=plan.n_ctx, n_real=options.n_real, extractor=options.extractor,
                        seed=options.seed, batch_size=options.batch_size, device=options.device,
                        cache_dir=options.cache_dir, real_file=reals.file, extractors=extractors)
    dataset_id = reals.file.identity if reals.file is not None else getattr(real, "identity", str(spec))
    described: dict[str, dict[str, Any]] = {}
    devices = [torch.device(options.device)] if torch.device(options.device).type == "cuda" else []
    diverged = False
    spent, reported = 0.0, {}
    for name in todo:
        metric = plan.metrics[name]
        params_json, ext, n = plan.how[name]
        ctx.progress = _context_progress(progress, f"{label}: {name}", base, work[name])
        progress.working(f"{label}: {name}", base)
        start = time.perf_counter()
        values, flag = None, ""
        try:
            if ref.is_image_set and needs_generator(metric):
                raise NotApplicable(f"{name} needs a generator network; {ref.path} is a set of images")
            if not diverged:
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(options.seed)  # metrics that draw from the global RNG repeat for a seed
                    values = metric.compute(ctx)
                nan = [key for key, value in values.items() if math.isnan(float(value))]
                if nan:
                    raise NonFiniteError(f"{name} gave NaN for {', '.join(nan)}", source="value")
        except NotApplicable as exc:
            # e.g. PPL in W on ProGAN (no W space): expected for this family; shown as "–", the rest go on.
            summary.not_computed.append((ref.run, ref.name, name, str(exc)))
            progress.not_applicable(ref, name, str(exc))
            base += work[name]
            continue
        except NonFiniteError as exc:
            if not options.keep_going:
                raise NonFiniteError(_diverged_message(ref, name, exc), source=exc.source) from None
            diverged = diverged or exc.source == "generator"  # a NaN generator fails every later metric too
        wall = time.perf_counter() - start
        spent += wall
        _add_timings(summary, ctx.timings, spent, reported)
        if values is None:  # diverged, kept going: NaN rows that say so
            values, flag = {key: float("nan") for key in metric.result_keys(resolution)}, "diverged"
            summary.diverged.append((ref.run, ref.name, name))
        if ext not in described:
            described[ext] = _describe(ctx, ext)
        base += work[name]
        progress.working(f"{label}: {name}", base)
        rows = metric_rows(ref, name, params_json, values, dict(metric.outputs), described[ext], options, dataset_id,
                           wall, ext, n, flag=flag, seed=row_seed(ref, metric, options.seed))
        yield ref, name, rows, wall
