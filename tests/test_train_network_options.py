"""Issue 15 item 13 for network options: `--set` values the model builder cannot use are one-line errors up front.

`--set channel_base=0` was a ZeroDivisionError and `--set mapping_layers=-2` a RuntimeError in the first
backward pass; `--set w_avg_beta=2` (an EMA that diverges) and `num_fp16_res=-1` trained silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.errors import ConfigError
from ganbench.train.loop import TrainOptions
from ganbench.train.options import check_run_options

runner = CliRunner()


@pytest.mark.parametrize("model,setting,words", [
    ("stylegan2", "mapping_layers=-2", ["mapping_layers", "integer >= 1"]),
    ("stylegan", "mapping_layers=0", ["mapping_layers", "integer >= 1"]),
    ("stylegan2", "channel_base=0", ["channel_base", "integer >= 1"]),
    ("stylegan2", "channel_base=1", ["channel_base=1", "no channels at 8 px", "at least 8"]),
    ("stylegan3-t", "channel_base=4", ["channel_base=4", "at least 8"]),
    ("progan", "fmap_base=2", ["fmap_base=2", "at least 4"]),
    ("stylegan2", "channel_base=512.5", ["channel_base", "integer"]),
    ("stylegan2", "num_fp16_res=-1", ["num_fp16_res", "integer >= 0"]),
    ("stylegan2", "w_avg_beta=2", ["w_avg_beta", "[0, 1]"]),
    ("stylegan2", "conv_clamp=-5", ["conv_clamp", "> 0"]),
    ("stylegan2", "z_dim='abc'", ["z_dim", "integer"]),
])
def test_issue15_13_bad_network_options_are_one_line_before_the_run(tmp_path: Path, model: str, setting: str,
                                                                   words: list[str]) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", model, "--preset", "tiny", "--data", "shapes:8", "-r", "8",
                                 "--kimg", "0.004", "--batch", "4", "--out", str(out), "--device", "cpu",
                                 "--set", setting])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1, result.output
    for word in words:
        assert word in result.output, result.output
    assert not out.exists()


@pytest.mark.parametrize("network", [
    {"mapping_layers": 1}, {"channel_base": 8}, {"fmap_base": 4}, {"num_fp16_res": 0}, {"conv_clamp": None},
    {"mbstd_group_size": None}, {"mbstd_num_channels": 0}, {"w_avg_beta": 0.995}, {"fmap_base": 2, "fmap_decay": 0.5},
    {"some_family_option": "anything"},
])
def test_network_options_the_builders_accept_pass_the_checks(tmp_path: Path, network: dict) -> None:
    opts = TrainOptions(model="stylegan2", data="shapes:8", resolution=8, kimg=0.004, batch=4, seed=0,
                        out=tmp_path, network=network)
    check_run_options(opts)


def test_smallest_accepted_channel_counts_build_and_run() -> None:
    """The lower limits are where the builders stop working: the limit itself builds and runs a forward pass."""
    import torch

    import model_zoo

    for name, key, least in [("stylegan2", "channel_base", 8), ("stylegan3-t", "channel_base", 8),
                             ("progan", "fmap_base", 4)]:
        spec = model_zoo.build(name, 8, preset="tiny", **{key: least})
        assert spec.G(torch.randn(2, spec.G.z_dim)).shape == (2, 3, 8, 8)
        opts = TrainOptions(model=name, data="shapes:8", resolution=8, kimg=0.004, batch=4, seed=0, out=Path("x"),
                            network={key: least - 1})
        with pytest.raises(ConfigError, match=key):
            check_run_options(opts)
