"""Issue 15 for `ganbench eval`: no silent wrong number, no traceback on an ordinary mistake.

Each test is named after the case it pins; each fails on the code before the fix.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganbench.checkpoint import load_checkpoint, save_checkpoint, snapshot_name
from ganbench.cli import app
from ganbench.data.shapes import ShapesDataset
from ganbench.errors import ConfigError
from ganbench.evaluate import EvalOptions, evaluate
from ganbench.features.base import EXTRACTORS
from ganbench.results import read_results

from orchestrator_helpers import ToyPixels, make_run, register_toys

runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TOY_FAIL", raising=False)
    monkeypatch.delenv("GANBENCH_DEBUG", raising=False)
    register_toys()


def eval_args(run: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", str(run), "--metrics", "toy-stat,toy-score", "--n", "20", "--real", "shapes:32",
            "--extractor", "toy-pixels", "--out", str(out), "--batch-size", "10", *extra]


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def assert_one_line_error(result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    errors = error_lines(result.output)
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


# ---- 4. unknown extractor / parameter key: an error listing the valid names, before any work ------------------

def test_extractor_typo_is_an_error_listing_known_extractors_before_any_work(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runA", kimgs=(1,))
    monkeypatch.setenv("TOY_FAIL", "1")  # toy-score raises if any metric work were started
    result = runner.invoke(app, eval_args(run, tmp_path / "r.csv")[:-6] + ["--extractor", "shapes-nett",
                                                                              "--out", str(tmp_path / "r.csv")])
    line = assert_one_line_error(result, "'shapes-nett'", "did you mean 'shapes-net'", "inception", "vgg16")
    assert "known:" in line
    assert not (tmp_path / "r.csv").exists()
    # an extractor option and a metric's own extractor are checked the same way
    result = runner.invoke(app, eval_args(run, tmp_path / "r.csv")[:-6] + ["-e", "inception:mod=clean"])
    assert_one_line_error(result, "'mod'", "valid: compile, mode, weights")
    with pytest.raises(ConfigError, match="unknown feature extractor 'incepton'"):
        evaluate([run], EvalOptions(metrics=["fid"], real="shapes:32", metric_params={"fid": {"extractor": "incepton"}}))


def test_unknown_metric_parameter_lists_valid_keys(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1,))
    args = ["eval", str(run), "--metrics", "fid", "--real", "shapes:32", "-p", "fid.covarince=unbiased"]
    line = assert_one_line_error(runner.invoke(app, args), "'covarince'", "did you mean 'covariance'")
    assert "valid: covariance, extractor, n_gen, n_real" in line
    result = runner.invoke(app, ["eval", str(run), "--metrics", "fid", "-p", "fdi.covariance=unbiased"])
    assert_one_line_error(result, "'fdi'", "not among --metrics", "did you mean 'fid'")
    assert not (run / "results.csv").exists()


def test_a_metric_name_in_other_case_gets_its_suggestion(tmp_path):
    """`-m FID` (as other tools spell it) listed every metric but suggested none: difflib compares case-sensitively."""
    run = make_run(tmp_path / "runA", kimgs=(1,))
    for given, meant in (("FID", "fid"), ("Kid50K_Full", "kid50k_full"), ("PPL_WEDN", "ppl_wend")):
        result = runner.invoke(app, ["eval", str(run), "--metrics", given, "--real", "shapes:32"])
        assert_one_line_error(result, f"unknown metric '{given}'", f"did you mean '{meant}'")
    assert not (run / "results.csv").exists()


@pytest.mark.parametrize("param, problem", [
    ("fid.n_gen=abc", "must be a whole number"), ("fid.n_gen=1e400", "must be a whole number"),
    ("fid.n_gen=-5", "must be at least 1"), ("pr.k=abc", "must be a whole number"),
    ("pr.k=1.5", "must be a whole number"), ("kid.num_subsets=0", "must be at least 1"),
    ("fid.covariance=3", "must be a name"), ("pr.row_batch_size=true", "must be a whole number"),
])
def test_a_metric_parameter_of_the_wrong_type_or_range_is_one_line_before_any_work(tmp_path, param, problem):
    """Values are checked against the parameter's type (its default's), not found out by a traceback mid-run."""
    run = make_run(tmp_path / "runA", kimgs=(1,))
    args = ["eval", str(run), "--metrics", "fid,kid,pr", "--real", "shapes:32", "-p", param]
    assert_one_line_error(runner.invoke(app, args), f"bad parameter {param.split('=')[0]}", problem)
    assert not (run / "results.csv").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--seed", "-1", "--seed must be from 0"), ("--seed", str(2 ** 32), "--seed must be from 0"),
    ("--n-real", "0", "--n-real must be at least 2"),
])
def test_eval_seed_and_n_real_out_of_range_are_one_line_naming_the_option(tmp_path, option, value, message):
    run = make_run(tmp_path / "runA", kimgs=(1,))
    args = ["eval", str(run), "--metrics", "fid", "--real", "shapes:32", option, value]
    assert_one_line_error(runner.invoke(app, args), message)
    assert not (run / "results.csv").exists()


# ---- 5. non-finite generator output or features: an error naming the checkpoint, or NaN rows flagged ----------

def poison(run: Path, kimg: int) -> Path:
    """Make checkpoint `kimg` of a toy run output NaN (a diverged run)."""
    path = run / snapshot_name(kimg)
    ckpt = load_checkpoint(path)
    state = dict(ckpt.state)
    state["G_ema"] = {k: (torch.full_like(v, math.nan) if k == "fc.weight" else v) for k, v in state["G_ema"].items()}
    save_checkpoint(path, state, ckpt.metadata)
    return path


def test_nan_generator_output_stops_with_an_error_naming_the_checkpoint(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    bad = poison(run, 2)
    out = tmp_path / "r.csv"
    line = assert_one_line_error(runner.invoke(app, eval_args(run, out)), str(bad), "non-finite", "--keep-going")
    assert "generator output" in line
    table = read_results(out)   # the healthy checkpoint's rows were written and kept
    assert set(table["checkpoint"]) == {"network-snapshot-000001.pt"} and np.isfinite(table["value"]).all()


def test_nan_generator_with_keep_going_writes_nan_rows_flagged_diverged(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1, 2, 3))
    poison(run, 2)
    out = tmp_path / "r.csv"
    result = runner.invoke(app, eval_args(run, out, "--keep-going"))
    assert result.exit_code == 0, result.output
    assert "DIVERGED" in result.output and "flagged 'diverged'" in result.output
    table = read_results(out)
    bad = table[table["kimg"] == 2.0]
    assert sorted(bad["metric"]) == ["toy_gap", "toy_score", "toy_spread"]
    assert bad["value"].isna().all() and set(bad["flag"]) == {"diverged"}   # never a finite number
    good = table[table["kimg"] != 2.0]
    assert len(good) == 6 and np.isfinite(good["value"]).all() and set(good["flag"]) == {""}
    again = runner.invoke(app, eval_args(run, out, "--keep-going"))        # the diverged rows count as done
    assert again.exit_code == 0 and "added 0 rows" in again.output


class NaNFeatures(ToyPixels):
    name = "toy-nan"

    def extract(self, images):
        out = super().extract(images)
        out["features"][0, 0] = math.inf
        return out


def test_non_finite_features_stop_or_flag_the_metric(tmp_path):
    if "toy-nan" not in EXTRACTORS:
        EXTRACTORS.register("toy-nan")(NaNFeatures)
    run = make_run(tmp_path / "runA", kimgs=(1,))
    from ganbench.errors import NonFiniteError

    opts = EvalOptions(metrics=["toy-stat"], real=ShapesDataset(n=24, resolution=16), n=20, extractor="toy-nan",
                       device="cpu", batch_size=10)
    with pytest.raises(NonFiniteError, match=r"network-snapshot-000001.pt.*features has non-finite"):
        evaluate([run], opts, out=tmp_path / "a.csv")
    opts.keep_going = True
    rows = evaluate([run], opts, out=tmp_path / "b.csv").added
    assert rows["value"].isna().all() and set(rows["flag"]) == {"diverged"}


def test_nan_from_a_metric_on_finite_input_is_never_written_as_a_number(tmp_path, monkeypatch):
    from ganbench.errors import NonFiniteError
    from ganbench.metrics.base import METRICS

    run = make_run(tmp_path / "runA", kimgs=(1,))
    monkeypatch.setattr(METRICS.get("toy-score"), "compute", lambda self, ctx: {"toy_score": math.nan})
    opts = EvalOptions(metrics=["toy-score"], real=ShapesDataset(n=24, resolution=16), n=20, extractor="toy-pixels",
                       device="cpu")
    with pytest.raises(NonFiniteError, match="toy-score gave NaN for toy_score"):
        evaluate([run], opts, out=tmp_path / "a.csv")


# ---- 7. evaluation never changes the network it measures ------------------------------------------------------

def state_hash(net: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(net.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def training_generator(tmp_path_factory):
    """A StyleGAN3-T (w_avg and magnitude EMAs, an input transform) in train mode, and a real-features cache."""
    import model_zoo

    torch.manual_seed(0)
    return model_zoo.build("stylegan3-t", 16, preset="tiny").G.train(), tmp_path_factory.mktemp("cache")


def _all_metrics() -> list[str]:
    from ganbench.metrics import list_metrics

    return [m for m in list_metrics() if not m.startswith("toy")]


@pytest.mark.parametrize("name", _all_metrics())
def test_every_metric_leaves_the_generator_unchanged(name, training_generator):
    """A fresh context per metric, so every metric drives the generator itself (none reuses another's pass)."""
    from ganbench.metrics import get_metric
    from ganbench.metrics.context import MetricContext

    G, cache = training_generator
    ctx = MetricContext(generator=G, real=ShapesDataset(n=24, resolution=16, seed=1), n_gen=20, seed=0,
                        batch_size=10, cache_dir=cache)
    metric = get_metric(name)
    if hasattr(metric, "n_gen"):
        metric.n_gen = 20
    if getattr(metric, "extractor", None):  # pr50k3's VGG16 weights are not here offline: the context's shapes-net
        metric.extractor = None
    before, measured_before = state_hash(G), state_hash(ctx.generator)
    values = metric.compute(ctx)
    assert values and all(isinstance(v, float) for v in values.values())
    assert state_hash(G) == before, f"{name} changed the generator's state dict"
    assert state_hash(ctx.generator) == measured_before, f"{name} changed the network it measured"
    assert G.training  # the caller's network keeps its mode too


# ---- 9. device errors say what is wrong with the device; default auto ------------------------------------------

@pytest.mark.parametrize("device,words", [
    ("banana", ["'banana' is not a device", "auto", "cpu", "cuda"]),
    ("cuda", ["--device cuda", "CUDA is not available"]),
    ("cuda:7", ["--device cuda:7", "CUDA is not available"]),
])
def test_bad_device_is_a_device_error_not_a_corrupt_checkpoint(tmp_path, monkeypatch, device, words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = make_run(tmp_path / "runA", kimgs=(1,))
    line = assert_one_line_error(runner.invoke(app, eval_args(run, tmp_path / "r.csv", "--device", device)), *words)
    assert "checkpoint" not in line and "corrupt" not in line


def test_device_defaults_to_auto(tmp_path, monkeypatch):
    from ganbench.devices import resolve_device

    assert EvalOptions(metrics=["fid"]).device == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    import inspect

    from ganbench.cli.eval_cmd import eval_
    assert inspect.signature(eval_).parameters["device"].default.default == "auto"


@pytest.mark.parametrize("command", ["train", "generate"])
def test_train_and_generate_take_the_same_devices_as_eval(tmp_path, monkeypatch, command):
    """`--device auto` (eval's default, in README) was refused by train ('must be cpu or cuda') and crashed
    generate with a torch RuntimeError; a device this machine lacks is one line before any work."""
    import inspect

    from ganbench.cli.generate_cmd import generate
    from ganbench.cli.train_cmd import train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inspect.signature({"train": train, "generate": generate}[command]).parameters["device"].default.default \
        == "auto"
    train_args = ["train", "--model", "stylegan2", "--preset", "tiny", "--data", "shapes:8", "--resolution", "16",
                  "--kimg", "0.004", "--batch", "4", "--quiet"]
    args = {"train": train_args + ["--out", str(tmp_path / "t")],
            "generate": ["generate", str(tmp_path / "run" / "network-snapshot-000000.pt"), "--seeds", "0",
                         "--outdir", str(tmp_path / "g")]}
    if command == "generate":
        assert runner.invoke(app, train_args + ["--out", str(tmp_path / "run"), "--device", "cpu"]).exit_code == 0
    ok = runner.invoke(app, args[command] + ["--device", "auto"])
    assert ok.exit_code == 0, ok.output
    line = assert_one_line_error(runner.invoke(app, args[command] + ["--device", "cuda:1"]),
                                 "--device cuda:1", "CUDA is not available")
    assert "generating" not in line


def test_bench_suite_device_auto_is_resolved_before_training(tmp_path, monkeypatch):
    import ganbench.bench as bench
    from ganbench.config import load_suites

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    seen = []

    def stop(suite, *args, **kwargs):
        seen.append(suite.device)
        raise ConfigError("stop here")

    monkeypatch.setattr(bench, "train_model", stop)
    suite = next(iter(load_suites(Path(__file__).resolve().parents[1] / "benchmarks.toml").values()))
    with pytest.raises(ConfigError, match="stop here"):
        bench.run_suite(dataclasses.replace(suite, device="auto"), tmp_path / "out")
    assert seen == ["cpu"]


# ---- 11. user strings reach rich escaped, emoji codes stay text -----------------------------------------------

def test_markup_in_extractor_name_is_an_error_not_a_rich_crash(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1,))
    result = runner.invoke(app, eval_args(run, tmp_path / "r.csv")[:-6] + ["--extractor", "[/]"])
    assert_one_line_error(result, "'[/]'", "known:")


def test_run_folder_with_markup_and_emoji_codes_prints_literally(tmp_path):
    run = make_run(tmp_path / "run[red]:smile:", kimgs=(1,))
    result = runner.invoke(app, eval_args(run, tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "toy-score" in line]
    assert lines and lines[0].startswith("run[red]:smile:  kimg 1"), result.output
    assert "😄" not in result.output and result.output.count("run[red]:smile:") >= 3   # lines, table, file
    missing = runner.invoke(app, ["eval", str(tmp_path / "gone[bold]:smile:"), "--real", "shapes"])
    assert_one_line_error(missing, "gone[bold]:smile:", "does not exist")


def test_progress_descriptions_are_not_markup():
    from rich.console import Console
    from rich.progress import Progress

    from ganbench.cli.common import description_column

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, emoji=False)
    progress = Progress(description_column(), console=console)
    progress.add_task("run[red] @ 1 kimg: [/] :smile:", total=1)
    console.print(progress.get_renderable())
    assert "run[red] @ 1 kimg: [/] :smile:" in buf.getvalue()


def test_check_table_shows_run_names_with_markup_literally(tmp_path):
    import pandas as pd

    from ganbench.results import write_results

    rows = [{"run": "run[red]", "checkpoint": "network-snapshot-000001.pt", "kimg": 1, "metric": "fid",
             "value": v, "metric_group": "fid", "direction": "lower", "n_samples": 10, "extractor": "shapes-net"}
            for v in (1.0,)]
    write_results(tmp_path / "base.csv", pd.DataFrame(rows))
    write_results(tmp_path / "cur.csv", pd.DataFrame([{**rows[0], "value": 2.0}]))
    result = runner.invoke(app, ["check", str(tmp_path / "cur.csv"), "-b", str(tmp_path / "base.csv"), "-v"])
    assert "run[red]" in result.output, result.output


def test_consoles_turn_emoji_codes_off():
    from ganbench.cli.common import console, make_console

    for c in (console, make_console(), make_console(stderr=True)):
        with c.capture() as cap:
            c.print("x :smile: y")
        assert cap.get().strip() == "x :smile: y"


# ---- 14. unwritable output: an error before any work; a failed write keeps the rows ----------------------------

def test_output_folder_that_cannot_be_written_fails_before_any_work(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runA", kimgs=(1,))
    monkeypatch.setenv("TOY_FAIL", "1")  # toy-score raises if any metric work were started
    (tmp_path / "afile").write_text("x")
    result = runner.invoke(app, eval_args(run, tmp_path / "afile" / "r.csv"))
    assert_one_line_error(result, "cannot write results to", "afile is a file, not a folder")
    result = runner.invoke(app, eval_args(run, tmp_path))  # a folder as --out
    assert_one_line_error(result, "is a folder")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_output_folder_fails_before_any_work(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runA", kimgs=(1,))
    monkeypatch.setenv("TOY_FAIL", "1")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert_one_line_error(runner.invoke(app, eval_args(run, ro / "r.csv")), "cannot write results to", "ro")
    finally:
        ro.chmod(0o755)


def test_read_only_file_system_fails_before_any_work(tmp_path, monkeypatch):
    """What a read-only mount says (EROFS) when the probe file is created, simulated so it runs as root too."""
    import tempfile

    run = make_run(tmp_path / "runA", kimgs=(1,))
    monkeypatch.setenv("TOY_FAIL", "1")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert_one_line_error(runner.invoke(app, eval_args(run, tmp_path / "r.csv")), "Read-only file system", "r.csv")


def test_failed_write_keeps_the_computed_rows_in_a_recoverable_file(tmp_path, monkeypatch):
    import ganbench.evaluate as ev

    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    out = tmp_path / "r.csv"
    real_append, calls = ev.append_rows, []

    def disk_full_after_first(path, rows):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(path, rows)

    monkeypatch.setattr(ev, "append_rows", disk_full_after_first)
    line = assert_one_line_error(runner.invoke(app, eval_args(run, out)), "No space left on device", "kept in")
    kept = Path(line.split("kept in ")[1].split(" (")[0])
    assert kept.is_file() and kept.name.startswith("r.unsaved-")
    saved = read_results(kept)
    assert list(saved["metric"]) == ["toy_score"] and np.isfinite(saved["value"]).all()
    assert sorted(read_results(out)["metric"]) == ["toy_gap", "toy_spread"]   # what was written is intact


def test_diverged_rows_use_the_keys_the_metric_would_have_written():
    """NaN rows of a diverged checkpoint carry the same result keys as a healthy one (SWD's depend on resolution)."""
    from ganbench.metrics import compute, get_metric

    images = torch.from_numpy(np.stack([ShapesDataset(n=24, resolution=32, seed=2).image(i) for i in range(24)]))
    real = ShapesDataset(n=24, resolution=32, seed=3)
    for name in ("swd", "fid", "kid"):
        assert sorted(compute(name, images, real=real, n=24)) == sorted(get_metric(name).result_keys(32)), name
    assert get_metric("swd").result_keys(32) == ["swd32", "swd16", "swd_avg"]
    assert get_metric("ppl_zend").result_keys(32) == ["ppl_zend"]   # needs a generator; one key, its name
