"""Issue 15 item 11 / issue 11: rich renders `--help` as markup, so a bracketed word in a help text vanished.

`ganbench check --help` said "overrides the  table of benchmarks.toml" and "(default:  k, else 3)": rich took
`[check]` for a style tag. Every bracketed word of every command's help must reach the screen.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ganbench.cli import app

runner = CliRunner()
BRACKETED = re.compile(r"\\?\[([A-Za-z_][\w.-]*)\]")


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, group)] if path else []
    for name, sub in getattr(group, "commands", {}).items():
        out += _commands(sub, (*path, name))
    return out


COMMANDS = _commands(typer.main.get_command(app))


def _bracketed_words(command: Any) -> set[str]:
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    return {f"[{m}]" for text in texts for m in BRACKETED.findall(text)}


def test_some_help_text_has_bracketed_words():
    """The test below checks something: `check` names the [check] table of benchmarks.toml."""
    assert "[check]" in _bracketed_words(dict(COMMANDS)[("check",)])


@pytest.mark.parametrize("path,command", [c for c in COMMANDS if _bracketed_words(c[1])],
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_bracketed_words_in_help_texts_are_shown_literally(path, command):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = re.sub(r"\s+", " ", result.output)
    for word in sorted(_bracketed_words(command)):
        assert word in text, f"`ganbench {' '.join(path)} --help` lost {word}"
        assert "\\" + word not in text, f"`ganbench {' '.join(path)} --help` shows the escape of {word}"


def test_the_torchrun_entry_point_names_itself_as_ganbench_train():
    """`python -m ganbench.train --help` (torchrun's entry point) printed "Usage: ganbench train train"."""
    out = subprocess.run([sys.executable, "-m", "ganbench.train", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "100"}, check=True).stdout
    assert "Usage: ganbench train [OPTIONS]" in out and "train train" not in out, out
