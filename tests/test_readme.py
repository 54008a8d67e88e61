"""README.md's code blocks are executed, so they never go stale.

Every `ganbench` line of a ```bash block runs in process in one scratch folder, in document order, with the
sizes in SHRINK scaled down (the README shows realistic sizes); the files it names are built by FIXTURES
(tiny networks in NVlabs' pickle format, `shapes` images as zips and folders). Each ```python block runs after
the shell lines before it. Lines that cannot run here (they install, need two processes or take minutes) are
in PARSE_ONLY with the test that covers them, and are still parsed by the real command line, so a renamed
command or option fails here too. A README line that names a file no fixture builds fails with that name.
"""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from foreign_formats import write_nvlabs_snapshot
from ganbench.cli import app
from ganbench.data import open_dataset
from ganbench.data.export import export_dataset

README = Path(__file__).resolve().parents[1] / "README.md"

# Realistic README sizes -> sizes a test can afford (token pattern, replacement), applied to shell and Python.
SHRINK: list[tuple[str, str]] = [
    (r"(--n|--num-gen) \d+", r"\1 48"),
    (r"--kimg \d+(\.\d+)?", "--kimg 0.008"),
    (r"network-snapshot-\d{6}\.pt", "network-snapshot-000000.008.pt"),   # the snapshot that --kimg 0.008 ends with
    (r"\bn=10000\b", "n=48"),
    (r"shapes:10000", "shapes:96"),
    (r"--real shapes(?![:\w])", "--real shapes:96"),
]
# Commands that only get parsed, with where they are exercised for real.
PARSE_ONLY: dict[str, str] = {
    "make": "the set-up commands themselves: .ci/run runs `make test`",
    "torchrun": "two processes: tests/test_train_ddp.py and tests/test_eval_distributed.py",
    "ganbench bench smoke": "minutes of training: the `slow` test of the smoke suite and `make demo`",
}


def _zip_of_shapes(resolution: int, n: int = 48) -> Callable[[Path], None]:
    return lambda path: export_dataset(open_dataset(f"shapes:{n}", resolution=resolution), path)


FIXTURES: dict[str, Callable[[Path], object]] = {
    "stylegan2-cifar10.pkl": lambda p: write_nvlabs_snapshot(p, "stylegan2-ada", 32, seed=1),
    "cifar10.zip": _zip_of_shapes(32),
    "stylegan3-r-afhqv2-512x512.pkl": lambda p: write_nvlabs_snapshot(p, "stylegan3-r", 16, seed=2),
    "cond.pkl": lambda p: write_nvlabs_snapshot(p, "stylegan3-t", 16, c_dim=5, seed=3),
    "ffhq64.pkl": lambda p: write_nvlabs_snapshot(p, "stylegan2-ada", 64, seed=4),
    "mydata.zip": _zip_of_shapes(64, n=8),
    "samples/": _zip_of_shapes(32),          # a folder (export_dataset writes a folder for a non-.zip path)
    "data/": _zip_of_shapes(32),
}


def _blocks(lang: str) -> list[tuple[int, str]]:
    """(line number, text) of each fenced block in `lang`."""
    text = README.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1))
            for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)]


def _shrink(text: str) -> str:
    for pattern, repl in SHRINK:
        text = re.sub(pattern, repl, text)
    return text


def _commands(block: str) -> list[list[str]]:
    joined = block.replace("\\\n", " ")
    return [args for line in joined.splitlines() if (args := shlex.split(line, comments=True))]


def _parse_only_reason(args: list[str]) -> str | None:
    line = " ".join(args)
    return next((why for prefix, why in PARSE_ONLY.items() if line.startswith(prefix)), None)


def _parse(args: list[str]) -> None:
    """Parse `ganbench ARGS --help` with the real command line: an unknown command or option is a usage error
    (exit 2) before the eager --help would print, so this checks every name without running anything."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"ganbench {' '.join(args)}: {result.output}"


def _named_files(args: list[str]) -> list[str]:
    return [a for a in args if a in FIXTURES]


def test_readme_has_exactly_the_two_set_up_commands():
    setup = README.read_text().split("## Set up", 1)[1].split("##", 1)[0]
    assert [c[:2] for c in _commands(_blocks("bash")[0][1])] == [["make", "demo"], ["make", "test"]]
    assert "make demo" in setup and "make test" in setup


def test_every_readme_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    steps = sorted([(line, "bash", text) for line, text in _blocks("bash")] +
                   [(line, "python", text) for line, text in _blocks("python")])
    assert len(steps) >= 5, "README lost its examples?"
    ran = 0
    for line, lang, text in steps:
        if lang == "python":
            code = _shrink(text)
            for name in FIXTURES:
                if f'"{name}"' in code and not Path(name).exists():
                    FIXTURES[name](tmp_path / name)
            exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme"})
            ran += 1
            continue
        for args in _commands(_shrink(text)):
            if args[0] == "ganbench":
                _parse(args[1:])
            if (why := _parse_only_reason(args)) is not None:
                continue
            assert args[0] == "ganbench", f"README.md:{line}: {' '.join(args)} is neither run nor listed in PARSE_ONLY"
            for name in _named_files(args):
                if not Path(name).exists():
                    FIXTURES[name](tmp_path / name)
            expanded = [m for a in args[1:] for m in (sorted(glob.glob(a)) if "*" in a else [a])]
            result = runner.invoke(app, expanded)
            assert result.exit_code == 0, f"README.md:{line}: {' '.join(args)}\n{result.output}"
            ran += 1
    assert ran >= 8


def test_readme_parse_check_catches_a_renamed_option():
    _parse(["eval", "runs/x", "--metrics", "fid"])
    with pytest.raises(AssertionError, match="--metricz"):
        _parse(["eval", "runs/x", "--metricz", "fid"])
    with pytest.raises(AssertionError, match="evaluate"):
        _parse(["evaluate", "runs/x"])
