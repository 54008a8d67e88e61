"""ganbench.devices.use_exact_fp32: on CUDA no TensorFloat-32, as NVlabs' training loop and calc_metrics.py.

No GPU is needed: the backend flags can be set without one, and the test checks that training and metric
contexts ask for it with their device."""

from __future__ import annotations

import pytest
import torch

from ganbench import devices


@pytest.fixture
def tf32_on(monkeypatch):
    """PyTorch's defaults on a GPU machine (cuDNN TF32 on), put back after the test."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    monkeypatch.delenv("GANBENCH_ALLOW_TF32", raising=False)
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_cuda_turns_tf32_off_for_convolutions_and_matmuls(tf32_on):
    assert devices.use_exact_fp32(torch.device("cuda")) is True
    assert torch.backends.cudnn.allow_tf32 is False and torch.backends.cuda.matmul.allow_tf32 is False


def test_cpu_leaves_the_flags_and_the_user_can_keep_tf32(tf32_on, monkeypatch):
    assert devices.use_exact_fp32("cpu") is False
    assert torch.backends.cudnn.allow_tf32 is True
    monkeypatch.setenv("GANBENCH_ALLOW_TF32", "1")
    assert devices.use_exact_fp32("cuda:0") is False
    assert torch.backends.cudnn.allow_tf32 is True and torch.backends.cuda.matmul.allow_tf32 is True


def test_trainer_and_metric_context_ask_for_it_with_their_device(tmp_path, monkeypatch):
    import ganbench.metrics.context as context
    import ganbench.train.loop as loop
    from ganbench.train import Trainer, TrainOptions

    asked = []
    monkeypatch.setattr(loop, "use_exact_fp32", lambda d: asked.append(("train", torch.device(d).type)))
    monkeypatch.setattr(loop, "autotune_convolutions", lambda d: asked.append(("autotune", torch.device(d).type)))
    monkeypatch.setattr(context, "use_exact_fp32", lambda d: asked.append(("metrics", torch.device(d).type)))
    Trainer(TrainOptions(model="stylegan2", data="shapes:8", resolution=16, kimg=1, batch=2, seed=0,
                         out=tmp_path / "run", preset="tiny", device="cpu", quiet=True))
    context.MetricContext(generator=torch.zeros([2, 3, 8, 8], dtype=torch.uint8), device="cpu", cache_dir=False)
    assert asked == [("train", "cpu"), ("autotune", "cpu"), ("metrics", "cpu")]


def test_convolution_autotuning_is_switched_on_for_cuda_only():
    saved = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        assert devices.autotune_convolutions("cpu") is False and torch.backends.cudnn.benchmark is False
        assert devices.autotune_convolutions("cuda:0") is True and torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = saved


@pytest.mark.parametrize("spec,env,current,expected", [
    ("cpu", {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, 0, "cpu"),
    ("cuda", {}, 3, "cuda:3"),                                   # the current device, named
    ("cuda:2", {}, 0, "cuda:2"),
    ("cuda", {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, 0, "cuda:1"),  # torchrun: the local rank's GPU
    ("cuda:1", {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, 0, "cuda:1"),
])
def test_process_device_names_the_cuda_index_every_thread_must_use(spec, env, current, expected, monkeypatch):
    """A bare `cuda` in a background thread is cuda:0 (PyTorch's current device is per thread)."""
    for key in ("WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    assert devices.process_device(spec) == torch.device(expected)


def test_another_gpu_than_the_local_rank_under_torchrun_is_refused(monkeypatch):
    from ganbench.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ConfigError, match=r"--device cuda:0: under torchrun .* cuda:1"):
        devices.process_device("cuda:0")


def test_metric_context_computes_on_the_named_index(monkeypatch):
    import ganbench.metrics.context as context

    monkeypatch.setattr(context, "process_device", lambda d: torch.device("cuda", 2) if str(d) == "cuda" else d)
    monkeypatch.setattr(context, "use_exact_fp32", lambda d: False)
    ctx = context.MetricContext(generator=torch.zeros([2, 3, 8, 8], dtype=torch.uint8), device="cuda",
                                cache_dir=False)
    assert ctx.device == torch.device("cuda", 2)


def test_a_generator_function_is_probed_on_the_context_device():
    """The size probe called a function that wraps a CUDA model with a CPU latent; it now gets the context's
    device like every later call ('meta' stands in for a GPU: a device that is not the CPU)."""
    from ganbench.metrics.context import MetricContext

    seen = []

    def fn(z):
        seen.append(z.device.type)
        return torch.zeros([z.shape[0], 3, 16, 16], device=z.device)

    ctx = MetricContext(generator=fn, z_dim=4, real="shapes:4", device="meta", cache_dir=False)
    assert ctx.generator.img_resolution == 16 and seen == ["meta"]


def test_real_statistics_computed_with_tf32_are_cached_apart(tmp_path):
    """With GANBENCH_ALLOW_TF32=1 a CUDA pass is not fp32: its real statistics must not be reused by exact runs."""
    from ganbench.metrics.context import MetricContext

    ctx = MetricContext(generator=torch.zeros([2, 3, 16, 16], dtype=torch.uint8), real="shapes:4",
                        cache_dir=tmp_path)
    cpu = ctx.real_cache_path()
    saved = torch.backends.cudnn.allow_tf32
    try:
        ctx.device = torch.device("cuda", 0)  # only the cache key reads it here
        torch.backends.cudnn.allow_tf32 = False
        assert ctx.real_cache_path() == cpu    # exact fp32 on CUDA shares the CPU's statistics
        torch.backends.cudnn.allow_tf32 = True
        tf32 = ctx.real_cache_path()
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    assert tf32 != cpu and "-tf32-" in tf32.name and "tf32" not in cpu.name


def test_eval_rows_made_with_tf32_carry_it_in_their_parameters(monkeypatch):
    """With GANBENCH_ALLOW_TF32=1 on CUDA the numbers are not fp32 ones: each row's `params` says tf32, so its
    identity (rerun skipping) and its comparable group (check, report) differ from exact rows'. Exact rows, and
    any row on the CPU, keep the parameters they always had."""
    import json

    from ganbench.evaluate import EvalOptions, _Plan

    def params(device):
        plan = _Plan.make(EvalOptions(metrics=["fid", "kid"], device=device))
        return {name: json.loads(how[0]) for name, how in plan.how.items()}

    monkeypatch.delenv("GANBENCH_ALLOW_TF32", raising=False)
    exact = params("cuda:0")   # the plan only reads the device's type: no GPU is needed
    assert exact == params("cpu") and not any("tf32" in p for p in exact.values())
    monkeypatch.setenv("GANBENCH_ALLOW_TF32", "1")
    assert params("cpu") == exact   # a CPU has no TF32
    tf32 = params("cuda")
    assert {name: {k: v for k, v in p.items() if k != "tf32"} for name, p in tf32.items()} == exact
    assert all(p["tf32"] is True for p in tf32.values())
