"""benchmarks/gpu_suite.py's CPU path with tiny sizes runs end to end, so the GPU script cannot rot."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def suite(monkeypatch, tmp_path):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("gpu_suite", BENCH / "gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("part", ["train", "inception", "metric"])
def test_gpu_suite_cpu_tiny_path_runs(suite, tmp_path, part, monkeypatch):
    import model_zoo.layers

    # the "mixed" rows run the fp16 blocks in float16 here as they would on CUDA (see test_mixed_precision.py)
    monkeypatch.setattr(model_zoo.layers, "HALF_PRECISION_DEVICES", {"cuda", "cpu"})
    out = tmp_path / "suite.csv"
    args = ["--device", "cpu", "--tiny", "--parts", part, "--csv", str(out)]
    if part == "train":
        args += ["--models", "stylegan2,stylegan3-t"]
    rows = suite.main(args)
    written = list(csv.DictReader(out.open()))
    assert len(written) == len(rows) > 0 and set(written[0]) == set(suite.FIELDS)
    assert all(r["status"] == "ok" for r in written), [(r["name"], r["variant"], r["status"]) for r in written]
    timed = [r for r in written if r["images_per_s"]]
    assert timed and all(float(r["images_per_s"]) > 0 and float(r["peak_mem_mb"]) > 0 for r in timed)
    if part == "train":
        assert {r["variant"] for r in written} == {"fp32", "mixed", "mixed+channels_last"}
        assert all(float(r["sec_per_kimg"]) > 0 for r in written)
        # fp32 rows are NVlabs' --fp32 (the families' defaults are mixed precision), mixed rows have fp16 layers
        for r in written:
            counts = [int(v) for v in r["note"].split()[3::2]]  # "fp16 layers G a D b"
            assert (sum(counts) == 0) == (r["variant"] == "fp32") and len(counts) == 2, r
    if part == "inception":
        diff = [r for r in written if r["name"] == "fid half - fp32"]
        assert len(diff) == 1 and abs(float(diff[0]["value"])) < 1e3


def test_gpu_suite_refuses_cuda_without_a_device(suite, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit, match="no CUDA device"):
        suite.main(["--device", "cuda", "--csv", str(tmp_path / "x.csv")])


def test_a_row_that_breaks_is_failed_with_its_traceback_and_missing_weights_are_skipped(suite, capsys):
    from ganbench.errors import AssetError

    def broken():
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")

    def missing():
        raise AssetError("vgg16 weights not found")

    failed = suite.guarded({"part": "metric", "name": "swd", "variant": "fp32"}, broken)
    skipped = suite.guarded({"part": "metric", "name": "pr", "variant": "fp32"}, missing)
    assert failed["status"] == "failed: RuntimeError: CUDA error: an illegal memory access was encountered"
    assert skipped["status"] == "skipped: vgg16 weights not found"
    assert "Traceback" in capsys.readouterr().err
