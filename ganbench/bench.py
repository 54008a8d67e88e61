"""One benchmark suite end to end: train (or reuse) each model, evaluate, report, check against the baseline.

Layout under the output folder: `runs/<suite>/<model>-<preset>-s<seed>/` (checkpoints, grids, stats),
`results-<suite>.csv` (the results table), `leaderboard-<suite>.csv` / `.html`, and the suite's
baseline (default `baseline-<suite>.csv`; the first run writes it, later runs are checked against it).
Every step resumes: finished runs are not retrained and evaluated rows are not recomputed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ganbench.config import ModelEntry, Suite
from ganbench.devices import resolve_device
from ganbench.errors import ConfigError, ResumeMismatch
from ganbench.regress import CheckReport


@dataclass
class BenchResult:
    """What a suite run produced, and the regression verdict."""

    runs: list[Path]
    results: Path
    leaderboard_csv: Path
    leaderboard_html: Path
    baseline: Path
    baseline_created: bool
    check: CheckReport | None
    refused: str = ""       # why no baseline could be made from this run's results (a diverged model)

    @property
    def passed(self) -> bool:
        return not self.refused and (self.check is None or self.check.passed)


def validate_suite(suite: Suite) -> None:
    """Fail fast, before any training, on names the registries do not know or bad metric parameters."""
    import model_zoo
    from ganbench.features import list_extractors
    from ganbench.metrics import get_metric

    models = model_zoo.list_models()
    for entry in suite.models:
        if entry.name not in models:
            raise ConfigError(f"suite {suite.name!r}: unknown model {entry.name!r}; known: {', '.join(models)}")
    extractors = list_extractors()
    if suite.extractor not in extractors:
        raise ConfigError(f"suite {suite.name!r}: unknown extractor {suite.extractor!r}; known: {', '.join(extractors)}")
    metrics = {name: get_metric(name, **suite.metric_params.get(name, {})) for name in suite.metrics}
    _refuse_metrics_that_fit_no_model(suite, metrics)
    stray = sorted(set(suite.metric_params) - set(suite.metrics))
    if stray:
        raise ConfigError(f"suite {suite.name!r}: metric_params for {stray[0]!r}, which is not in its metrics")
    from ganbench.regress import validate_tolerance_file, validate_tolerances

    # Tolerances as written in the file (so errors name it), then as parsed (a suite built without a file):
    # a sign pointing the better way would otherwise surface only at the check, after all the training.
    if suite.source is not None:
        validate_tolerance_file(suite.source, suite.name)
    where = f"{suite.source or 'benchmarks'}"
    validate_tolerances(suite.check_defaults.tolerances, f"{where} [check]")
    validate_tolerances(suite.tolerances, f"{where} [suites.{suite.name}]")


def _refuse_metrics_that_fit_no_model(suite: Suite, metrics: dict[str, Any]) -> None:
    """A metric that applies to none of the suite's models (EQ without a StyleGAN3, W-space PPL without a W space)
    would be found out only after all the training; each family is built on the meta device (no memory, no
    weights) and asked. A metric that fits some of the models stays: the others get eval's quiet line."""
    import torch

    import model_zoo

    generators = []
    for entry in suite.models:
        try:
            with torch.device("meta"):
                generators.append(model_zoo.build(entry.name, suite.resolution).G)
        except Exception:   # a family that cannot be built this way is not judged here; training will say
            return
    for name, metric in metrics.items():
        reasons = [metric.not_applicable_to(G) for G in generators]
        if generators and all(reasons):
            families = ", ".join(entry.name for entry in suite.models)
            raise ConfigError(f"suite {suite.name!r}: metric {name!r} applies to none of its models ({families}): "
                              f"{reasons[0]}")


def run_dir_for(suite: Suite, entry: ModelEntry, seed: int, out_dir: Path) -> Path:
    """The run folder of one (model, seed) of a suite."""
    return Path(out_dir) / "runs" / suite.name / f"{entry.label}-s{seed}"


def train_model(suite: Suite, entry: ModelEntry, seed: int, out_dir: Path, progress: bool = False) -> Path:
    """Train one model of the suite (resuming its folder). A finished run is not trained again, but it still goes
    through training's resume check, so a suite whose settings changed since (resolution, batch, overrides...)
    is refused instead of scoring the old model under the new settings ('check passed' on the wrong model)."""
    run_dir = run_dir_for(suite, entry, seed, out_dir)
    kimg = entry.kimg if entry.kimg is not None else suite.kimg
    from ganbench.train import run_training

    snapshot = suite.snapshot_kimg if suite.snapshot_kimg is not None else kimg
    overrides: dict[str, Any] = dict(entry.overrides)
    if suite.device != "cpu":
        overrides.setdefault("device", suite.device)
    try:
        return Path(run_training(entry.name, suite.dataset, suite.resolution, kimg,
                                 entry.batch if entry.batch is not None else suite.batch, seed, run_dir,
                                 preset=entry.preset, snapshot_kimg=snapshot, resume=True, progress=progress,
                                 skip_unknown=suite.skip_unknown, **overrides))
    except ResumeMismatch as exc:
        raise ConfigError(f"suite {suite.name!r}: {exc.why}: the suite's settings changed since this run was "
                          f"trained; delete {run_dir} (or bench into another --out) to train it again") from None


def run_suite(suite: Suite, out_dir: str | os.PathLike, progress: Callable[[], Any] | None = None,
              train_progress: bool = False, log: Callable[[str], None] = lambda msg: None) -> BenchResult:
    """Train, evaluate, report and check one suite; returns paths and the check verdict.

    `progress` makes the evaluation's progress display (a context manager such as rich's Progress);
    `train_progress` shows the trainer's own bar (they are not shown at once: rich allows one live display).
    """
    from ganbench.evaluate import EvalOptions, evaluate, not_applicable_line
    from ganbench.regress import compare, read_baseline, summarize, unfit_for_baseline, write_baseline
    from ganbench.report import find_run_dirs, write_report
    from ganbench.results import identity_key, read_results

    validate_suite(suite)
    suite = dataclasses.replace(suite, device=str(resolve_device(suite.device)))  # auto: CUDA when present
    out = Path(out_dir)
    runs = []
    for entry in suite.models:
        for seed in suite.seeds:
            log(f"train {entry.label} seed {seed}")
            runs.append(train_model(suite, entry, seed, out, progress=train_progress))
    results_path = out / f"results-{suite.name}.csv"
    options = EvalOptions(metrics=suite.metrics, real=suite.dataset, n=suite.n, n_real=suite.n_real,
                          extractor=suite.extractor, seed=suite.eval_seed, device=suite.device,
                          metric_params=suite.metric_params, skip_unknown=suite.skip_unknown,
                          keep_going=True)   # a diverged model is a finding (NaN rows flagged), not bad input
    log(f"evaluate {len(runs)} run(s) on {', '.join(suite.metrics)}")
    if progress is None:
        summary = evaluate(runs, options, out=results_path)
    else:
        with progress() as bar:
            summary = evaluate(runs, options, out=results_path, progress=bar)
    if summary.not_computed:  # expected (EQ needs StyleGAN3, W-space PPL a W space): one quiet line
        log(not_applicable_line(summary.not_computed))
    for warning in summary.warnings:  # e.g. a 50k preset measured with the suite's n
        log(f"warning: {warning}")
    table = read_results(results_path)
    # Only this evaluation's rows: the table keeps rows of earlier settings (another n, extractor or metric
    # parameters), which would otherwise be reported and checked as if they were today's numbers.
    table = table[[identity_key(row) in summary.identities for row in table.to_dict("records")]]
    files = write_report(table, out, run_dirs=find_run_dirs(table), title=f"ganbench {suite.name} suite",
                         sources=[str(results_path)], stem=f"leaderboard-{suite.name}")
    baseline = suite.baseline_path(out)
    if not baseline.is_file():
        why = unfit_for_baseline(summarize(table))
        if why:
            return BenchResult(runs, results_path, files.csv, files.html, baseline, False, None, refused=why)
        write_baseline(baseline, table)
        log(f"no baseline yet: wrote {baseline} from these results")
        return BenchResult(runs, results_path, files.csv, files.html, baseline, True, None)
    settings = suite.check_settings()
    check = compare(table, read_baseline(baseline), settings.tolerances, k=settings.k)
    return BenchResult(runs, results_path, files.csv, files.html, baseline, False, check)
