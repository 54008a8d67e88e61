"""Issue 15 item 14 beyond `eval`: every command that writes reports an output it cannot write in one line.

`train` checks its run folder before any training; `report`, `datasets export/convert` and `generate` end with
one line naming the path (exit 2) instead of a traceback; a file-system error that is a bug keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.cli.common import handle_errors
from ganbench.results import append_rows

runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANBENCH_DEBUG", raising=False)


def one_error_line(result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def train_args(out: Path) -> list[str]:
    return ["train", "--model", "stylegan2", "--preset", "tiny", "--data", "shapes:8", "-r", "8", "--kimg", "0.008",
            "--batch", "4", "--out", str(out), "--device", "cpu", "--no-progress"]


def test_issue15_14_train_into_a_path_under_a_file_fails_before_any_work(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    result = runner.invoke(app, train_args(blocker / "run"))
    one_error_line(result, str(blocker / "run"), "is a file, not a folder")
    assert "tick " not in result.output and "new run" not in result.output    # no training happened
    assert blocker.read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_issue15_14_train_into_a_read_only_folder_fails_before_any_work(tmp_path, monkeypatch):
    """Tests run as root, which chmod cannot stop: the file system's refusal is simulated where the probe writes."""
    import ganbench.checkpoint as checkpoint
    import ganbench.train.output as output

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", read_only)   # where probe_writable makes its probe
    parent = tmp_path / "ro"
    parent.mkdir()
    result = runner.invoke(app, train_args(parent / "run"))
    one_error_line(result, str(parent / "run"), "Read-only file system")
    assert "tick " not in result.output and os.listdir(parent) == []
    monkeypatch.undo()
    # the probe the check writes is removed at once: a run that starts leaves only its own files
    output.check_writable(parent / "run")
    output.check_writable(parent)
    assert os.listdir(parent) == []


@pytest.fixture()
def results_csv(tmp_path):
    path = tmp_path / "results.csv"
    append_rows(path, [{"run": "a", "checkpoint": "network-snapshot-000001.pt", "kimg": 1, "metric": "fid",
                        "value": 10.0, "metric_group": "fid", "n_samples": 16, "extractor": "shapes-net"}])
    return path


def _blocked(tmp_path: Path) -> Path:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    return blocker


def test_issue15_14_report_into_a_path_under_a_file_is_one_line(tmp_path, results_csv):
    blocker = _blocked(tmp_path)
    result = runner.invoke(app, ["report", str(results_csv), "--out", str(blocker / "reports")])
    one_error_line(result, "notes.txt is a file, not a folder")
    assert blocker.read_text() == "mine"


def test_issue15_14_report_on_a_read_only_file_system_is_one_line_naming_the_file(tmp_path, results_csv, monkeypatch):
    import ganbench.report as report

    def refuse(path, write):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(report, "atomic_write_bytes", refuse)
    result = runner.invoke(app, ["report", str(results_csv), "--out", str(tmp_path / "reports")])
    one_error_line(result, "leaderboard", "Read-only file system")


@pytest.mark.parametrize("command", [
    ["datasets", "export", "shapes", "{out}.zip", "--n", "4", "-r", "8"],
    ["datasets", "export", "shapes", "{out}", "--n", "4", "-r", "8"],
    ["datasets", "convert", "shapes:4", "{out}.zip", "--resolution", "8"],
])
def test_issue15_14_dataset_export_into_a_path_under_a_file_is_one_line(tmp_path, command):
    blocker = _blocked(tmp_path)
    args = [a.format(out=blocker / "data") for a in command]
    one_error_line(runner.invoke(app, args), "notes.txt", "is a file, not a folder")
    assert blocker.read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_issue15_14_dataset_export_on_a_full_disk_names_the_zip_not_a_temp_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / ".data.zip.k2j3h4.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", full)
    line = one_error_line(runner.invoke(app, ["datasets", "export", "shapes", str(tmp_path / "data.zip"), "--n",
                                              "4", "-r", "8"]), "No space left on device")
    assert str(tmp_path / "data.zip") in line and ".tmp" not in line


@pytest.mark.parametrize("option", ["--outdir", "--grid"])
def test_issue15_14_generate_into_a_path_under_a_file_is_one_line(tmp_path, option):
    import model_zoo
    from ganbench.checkpoint import save_checkpoint

    spec = model_zoo.build("stylegan2", 8, preset="tiny")
    ckpt = save_checkpoint(tmp_path / "network-snapshot-000001.pt",
                           {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(),
                            "cur_nimg": 1000}, {"arch": "stylegan2", "config": spec.config, "resolution": 8})
    blocker = _blocked(tmp_path)
    target = blocker / ("imgs" if option == "--outdir" else "grid.png")
    result = runner.invoke(app, ["generate", str(ckpt), "--seeds", "0-1",
                                 option, str(target)])
    one_error_line(result, "notes.txt", "is a file, not a folder")
    assert blocker.read_text() == "mine"


def test_os_errors_that_are_not_about_a_users_file_keep_their_traceback():
    @handle_errors
    def no_file():
        raise OSError(errno.EACCES, "Permission denied")     # no file named: nothing the user can act on

    @handle_errors
    def odd_errno():
        raise OSError(errno.EBADF, "Bad file descriptor", "x")   # a bug in our code, not the user's file system

    @handle_errors
    def named():
        raise PermissionError(errno.EACCES, "Permission denied", "/data/out.csv")

    with pytest.raises(OSError):
        no_file()
    with pytest.raises(OSError):
        odd_errno()
    with pytest.raises(typer.Exit) as exit_:
        named()
    assert exit_.value.exit_code == 2
