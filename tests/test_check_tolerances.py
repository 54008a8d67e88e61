"""Tolerance specs of `ganbench check` (--tolerance and the [check] / [suites.NAME] tables of a .toml): every spec
outside the documented grammar is a one-line error (exit 2) that names the spec, where it came from and the
accepted forms, before any file is read or written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.errors import ConfigError
from ganbench.results import write_results

from test_regress import rows

SUITE = '[suites.x]\ndataset = "shapes"\nresolution = 16\nmodels = ["stylegan2"]\nmetrics = ["fid"]\n'


def files(tmp_path: Path) -> tuple[Path, Path, bytes, bytes]:
    res, base = tmp_path / "results.csv", tmp_path / "baseline.csv"
    write_results(res, rows([20.0]))
    write_results(base, rows([20.0]))
    return res, base, res.read_bytes(), base.read_bytes()


def run_check(tmp_path: Path, *args: str, update: bool = False):
    """`ganbench check` on a passing pair of files (with --update-baseline when asked); the files must come back
    unchanged whatever the outcome."""
    res, base, res_bytes, base_bytes = files(tmp_path)
    config = tmp_path / "none.toml"
    if not any(a in ("--config", "-c") for a in args):
        config.write_text("")  # not the repo's benchmarks.toml: only the tolerances under test apply
        args = (*args, "--config", str(config))
    r = CliRunner().invoke(app, ["check", str(res), "--baseline", str(base), *args,
                                 *(["--update-baseline"] if update else [])])
    assert res.read_bytes() == res_bytes and base.read_bytes() == base_bytes
    return r


def one_line_error(r) -> str:
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert len(line.splitlines()) == 1, r.output
    return line


# ---- --tolerance ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, bad", [
    ("*=+1", "'*=+1'"),                  # the default is unsigned: + would be wrong for higher-is-better metrics
    ("*=-2%", "'*=-2%'"),
    ("fid=", "'fid='"),
    ("=1", "'=1'"),
    ("fid", "'fid'"),
    ("fid=1%%", "'fid=1%%'"),
    ("fid=%", "'fid=%'"),
    ("fid=nan", "'fid=nan'"),
    ("fid=inf", "'fid=inf'"),
    ("fid=-inf", "'fid=-inf'"),
    ("fid=1e999", "'fid=1e999'"),
    ("fid=1_0", "'fid=1_0'"),            # float() would read 10
    ("fid=5 %", "'fid=5 %'"),
    ("fid=+-1", "'fid=+-1'"),
    ("fid=0x1", "'fid=0x1'"),
    ("fid=1=2", "'fid=1=2'"),
    ("fid=+1,,is=-1", "empty"),
    (",", "empty"),
    ("fid=+1,", "empty"),
])
def test_specs_outside_the_grammar_are_one_line_errors(tmp_path, spec, bad):
    for update in (False, True):
        line = one_line_error(run_check(tmp_path, "--tolerance", spec, update=update))
        assert "--tolerance" in line and bad in line, line
        assert "accepted:" in line and "NAME=+0.5" in line and "NAME=+5%" in line and "*=1%" in line, line
    assert not (tmp_path / "results.csv.tmp").exists()


@pytest.mark.parametrize("spec, fix", [
    ("is=+1", "is=-1"),            # higher is better: worse is down
    ("precision=+0.1", "precision=-0.1"),
    ("pr=+2%", "pr=-2%"),
    ("kid=-5%", "kid=+5%"),
    ("kid_mean=-1", "kid_mean=+1"),
    ("ppl_zend=-1", "ppl_zend=+1"),
    ("eqt50k_int=+1", "eqt50k_int=-1"),
])
def test_wrong_sign_is_known_from_the_registry_before_any_file_is_read(tmp_path, spec, fix):
    """Not only when the results happen to hold that metric: `is=+1` is wrong whatever is compared."""
    (tmp_path / "none.toml").write_text("")
    r = CliRunner().invoke(app, ["check", str(tmp_path / "no.csv"), "--baseline", str(tmp_path / "b.csv"),
                                 "--tolerance", spec, "--config", str(tmp_path / "none.toml")])
    line = one_line_error(r)
    assert f"'{spec}'" in line and "wrong way" in line and f"write {fix}" in line and "does not exist" not in line
    assert not (tmp_path / "b.csv").exists()


@pytest.mark.parametrize("spec", ["fid=+0.5,is=-0.2,kid=+5%", "*=1%", "*=0.5", "fid=0.5", "fid=+1e-3", "fid=.5",
                                  "fid=+0", "fid=-0", "fid=0", " fid = +0.5 , is=-0.2 ", "fid=+0.5,fid=+2%",
                                  "is_std=1", "fid=2.", "fid=+1E2%", ""])
def test_specs_of_the_grammar_are_accepted(tmp_path, spec):
    r = run_check(tmp_path, "--tolerance", spec)
    assert r.exit_code == 0 and "check passed" in r.output, r.output


def test_unknown_key_in_another_case_suggests_the_known_one(tmp_path):
    line = one_line_error(run_check(tmp_path, "--tolerance", "FID=+1"))
    assert "unknown tolerance key 'FID'" in line and "did you mean 'fid'" in line, line
    line = one_line_error(run_check(tmp_path, "--tolerance", "kid_maen=+1"))
    assert "did you mean 'kid_mean'" in line, line


# ---- tolerances from a .toml --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, bad, why", [
    ('"-1"', "'fid=-1'", "wrong way"),
    ("-1", "'fid=-1'", "wrong way"),
    ('"nan"', "'fid=nan'", "accepted:"),
    ("nan", "'fid=nan'", "accepted:"),
    ('"1_0"', "'fid=1_0'", "accepted:"),
    ('"lots"', "'fid=lots'", "accepted:"),
    ('["+1", "-2%"]', "'fid=-2%'", "wrong way"),
    ('["+1", "+2"]', "fid", "absolute part twice"),
    ("true", "'fid=true'", "accepted:"),
])
def test_a_bad_tolerance_in_the_check_table_names_the_file(tmp_path, value, bad, why):
    toml = tmp_path / "bench.toml"
    toml.write_text(f"[check]\nk = 0.0\n[check.tolerances]\nfid = {value}\n")
    for update in (False, True):
        line = one_line_error(run_check(tmp_path, "--config", str(toml), update=update))
        assert f"{toml} [check] tolerance" in line and bad in line and why in line, line


def test_a_signed_default_in_the_check_table_names_the_file(tmp_path):
    toml = tmp_path / "bench.toml"
    toml.write_text('[check.tolerances]\n"*" = "+1"\n')
    line = one_line_error(run_check(tmp_path, "--config", str(toml)))
    assert f"{toml} [check] tolerance '*=+1'" in line and "unsigned" in line, line


def test_a_bad_suite_tolerance_names_the_file_and_the_suite(tmp_path):
    toml = tmp_path / "bench.toml"
    toml.write_text('[check.tolerances]\nfid = "+1"\n' + SUITE + '[suites.x.tolerances]\nis = "+1"\n')
    line = one_line_error(run_check(tmp_path, "--config", str(toml), "--suite", "x"))
    assert f"{toml} [suites.x] tolerance 'is=+1'" in line and "write is=-1" in line, line
    toml.write_text('[check.tolerances]\nkid = "-1"\n' + SUITE)
    line = one_line_error(run_check(tmp_path, "--config", str(toml), "--suite", "x"))
    assert f"{toml} [check] tolerance 'kid=-1'" in line and "write kid=+1" in line, line


def test_the_shipped_benchmarks_toml_passes(tmp_path):
    from ganbench.config import load_suites

    repo_toml = Path(__file__).resolve().parents[1] / "benchmarks.toml"
    r = run_check(tmp_path, "--config", str(repo_toml), "--tolerance", "fid=+1")
    assert r.exit_code == 0, r.output
    for name in load_suites(repo_toml):
        r = run_check(tmp_path, "--config", str(repo_toml), "--suite", name)
        assert r.exit_code == 0, r.output


def test_bench_refuses_a_wrong_sign_before_training(tmp_path):
    """`ganbench bench` validates the suite up front: a wrong sign would otherwise surface after the training."""
    from ganbench.bench import validate_suite
    from ganbench.config import load_suite

    toml = tmp_path / "bench.toml"
    toml.write_text(SUITE + '[suites.x.tolerances]\nis = "+1"\n')
    with pytest.raises(ConfigError, match=r"bench\.toml \[suites\.x\] tolerance 'is=\+1': .*write is=-1"):
        validate_suite(load_suite("x", toml))
    toml.write_text('[check.tolerances]\n"*" = "-1"\n' + SUITE)
    with pytest.raises(ConfigError, match=r"bench\.toml \[check\] tolerance '\*=-1': .*unsigned"):
        validate_suite(load_suite("x", toml))
    toml.write_text(SUITE + '[suites.x.tolerances]\nfid = "1_0"\n')
    with pytest.raises(ConfigError, match=r"bench\.toml \[suites\.x\] tolerance 'fid=1_0': .*accepted:"):
        validate_suite(load_suite("x", toml))
    toml.write_text(SUITE + '[suites.x.tolerances]\nfid = "nan"\n')   # refused while loading, before validate_suite
    with pytest.raises(ConfigError, match=r"bench\.toml \[suites\.x\]: tolerance for 'fid' must be finite"):
        load_suite("x", toml)
