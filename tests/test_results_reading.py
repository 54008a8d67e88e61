"""Reading results tables and baselines strictly: a UTF-8 BOM, ragged baseline rows and text in numeric columns."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.errors import ConfigError
from ganbench.regress import read_baseline, write_baseline
from ganbench.results import NUMERIC, append_rows, read_results, shard_dir, write_results

BOM = b"\xef\xbb\xbf"


def row(**kw) -> dict:
    base = {"run": "a", "checkpoint": "network-snapshot-000002.pt", "kimg": 2.0, "metric": "fid", "value": 10.0,
            "metric_group": "fid", "direction": "lower", "n_samples": 128, "n_real": 2000, "extractor": "shapes-net",
            "extractor_sha256": "ab" * 32, "resize_mode": "none", "dataset": "shapes-123", "seed": 0,
            "params": json.dumps({"covariance": "biased", "n_gen": 128}), "wall_s": 1.5,
            "timestamp": "2025-01-01T00:00:00+00:00"}
    return {**base, **kw}


def two_seeds() -> pd.DataFrame:
    return pd.DataFrame([row(), row(seed=1, value=12.0)])


def check(results, baseline) -> object:
    return CliRunner().invoke(app, ["check", str(results), "--baseline", str(baseline)])


def edit_csv(path, line: int, column: str, text: str) -> None:
    """Set `column` of CSV line `line` (the header is line 1) to `text`."""
    with open(path, newline="", encoding="utf-8") as f:
        records = list(csv.reader(f))
    records[line - 1][records[0].index(column)] = text
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(records)


def one_error_line(r, *parts: str) -> None:
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    for part in parts:
        assert part in r.output, r.output


# ---- 1: a UTF-8 byte order mark (Excel writes one) -----------------------------------------------------------------

def test_results_and_baseline_saved_with_a_bom_are_read(tmp_path):
    res, base = tmp_path / "results.csv", tmp_path / "baseline.csv"
    write_results(res, two_seeds())
    write_baseline(base, two_seeds())
    plain_results, plain_base = read_results(res), read_baseline(base)
    for path in (res, base):
        path.write_bytes(BOM + path.read_bytes())
    pd.testing.assert_frame_equal(read_results(res), plain_results)
    pd.testing.assert_frame_equal(read_baseline(base), plain_base)
    r = check(res, base)
    assert r.exit_code == 0 and "check passed" in r.output, r.output


def test_a_shard_saved_with_a_bom_is_read(tmp_path):
    path = tmp_path / "results.csv"
    append_rows(path, [row()])
    shard = next(shard_dir(path).glob("*.csv"))
    shard.write_bytes(BOM + shard.read_bytes())
    path.unlink()
    assert read_results(path)["run"].tolist() == ["a"]


# ---- 2: baselines are read as strictly as results files ------------------------------------------------------------

@pytest.mark.parametrize("change", ["extra", "missing"])
def test_baseline_row_with_a_wrong_number_of_fields_is_named(tmp_path, change):
    """pandas took an extra field's row as index + shifted fields ('direction 14.28 disagrees with the registry');
    a missing field became an empty one silently. Now: the row, its field count and the header's."""
    res, base = tmp_path / "results.csv", tmp_path / "baseline.csv"
    write_results(res, two_seeds())
    write_baseline(base, two_seeds())
    lines = base.read_text().splitlines()
    width = len(lines[0].split(","))
    lines[1] = lines[1] + ",14.28" if change == "extra" else lines[1].rsplit(",", 1)[0]
    base.write_text("\n".join(lines) + "\n")
    fields = width + 1 if change == "extra" else width - 1
    expected = f"baseline {base} row 2 has {fields} fields, its header {width}"
    with pytest.raises(ConfigError) as err:
        read_baseline(base)
    assert str(err.value) == expected
    one_error_line(check(res, base), "row 2 has", "fields, its header")


def test_a_column_named_twice_is_an_error(tmp_path):
    """pandas renamed a baseline's second 'mean' to 'mean.1'; the csv reader would give two columns of one name."""
    res, base = tmp_path / "results.csv", tmp_path / "baseline.csv"
    write_results(res, two_seeds())
    write_baseline(base, two_seeds())
    for path, column in ((res, "seed"), (base, "mean")):
        path.write_text(path.read_text().replace(",flag,", f",{column},", 1))
    with pytest.raises(ConfigError, match=r"results file .* has column\(s\) 'seed' twice in its header"):
        read_results(res)
    with pytest.raises(ConfigError, match=r"baseline .* has column\(s\) 'mean' twice in its header"):
        read_baseline(base)


def test_baseline_keeps_its_own_wording_for_other_problems(tmp_path):
    base = tmp_path / "baseline.csv"
    base.write_text("")
    with pytest.raises(ConfigError, match=r"baseline .* is empty; recreate it with --update-baseline"):
        read_baseline(base)
    base.write_text("run,kimg,metric,value\n")
    with pytest.raises(ConfigError, match=r"has no rows \(only a header\)"):
        read_baseline(base)
    base.write_bytes(b"run,kimg\n\xff\xfe,1\n")
    with pytest.raises(ConfigError, match=r"baseline .* is not a readable CSV \("):
        read_baseline(base)
    base.write_text("run,kimg\na,1\n")
    with pytest.raises(ConfigError, match=r"neither 'mean' \(a baseline\) nor 'value'"):
        read_baseline(base)
    write_baseline(base, two_seeds())
    edit_csv(base, 2, "count", "")
    with pytest.raises(ConfigError, match=r"row 2: count '' is not a positive number"):
        read_baseline(base)


# ---- 3: text in any numeric column is an error naming file, row and column ----------------------------------------

@pytest.mark.parametrize("column", NUMERIC)
def test_text_in_a_numeric_results_column_is_an_error(tmp_path, column):
    path = tmp_path / "results.csv"
    write_results(path, two_seeds())
    edit_csv(path, 3, column, "5OO")
    with pytest.raises(ConfigError) as err:
        read_results(path)
    assert str(err.value) == f"results file {path} row 3: {column} '5OO' is not a number"


@pytest.mark.parametrize("column, text", [("seed", "zero"), ("n_samples", "5OO"), ("n_real", "x"),
                                          ("wall_s", "fast")])
def test_check_refuses_text_in_numeric_results_columns(tmp_path, column, text):
    """A `seed` of 'zero' passed the check; an `n_samples` of '5OO' made the row a new group ('1 new')."""
    res, base = tmp_path / "results.csv", tmp_path / "baseline.csv"
    write_results(res, two_seeds())
    write_baseline(base, two_seeds())
    edit_csv(res, 3, column, text)
    one_error_line(check(res, base), f"results file {res} row 3: {column} {text!r} is not a number")


def test_the_first_bad_row_is_named_whatever_its_column(tmp_path):
    path = tmp_path / "results.csv"
    write_results(path, pd.DataFrame([row(), row(seed=1), row(seed=2)]))
    edit_csv(path, 4, "kimg", "abc")
    edit_csv(path, 3, "wall_s", "fast")
    with pytest.raises(ConfigError, match=r"row 3: wall_s 'fast' is not a number"):
        read_results(path)


@pytest.mark.parametrize("column", ["kimg", "n_samples", "n_real", "mean", "std"])
def test_text_in_a_numeric_baseline_column_is_an_error(tmp_path, column):
    res, base = tmp_path / "results.csv", tmp_path / "baseline.csv"
    write_results(res, two_seeds())
    write_baseline(base, two_seeds())
    edit_csv(base, 2, column, "abc")
    with pytest.raises(ConfigError) as err:
        read_baseline(base)
    assert str(err.value) == f"baseline {base} row 2: {column} 'abc' is not a number"
    one_error_line(check(res, base), f"row 2: {column} 'abc' is not a number")


def test_empty_and_nan_numbers_and_older_rows_still_read(tmp_path):
    """No number ('' or nan) is not text; rows from older versions lack columns and still read."""
    path = tmp_path / "results.csv"
    write_results(path, two_seeds())
    for column, text in [("seed", ""), ("wall_s", "nan"), ("n_real", "NaN"), ("value", "nan"), ("kimg", "")]:
        edit_csv(path, 3, column, text)
    table = read_results(path)
    assert table[["seed", "wall_s", "n_real", "value", "kimg"]].iloc[1].isna().all()
    assert table["n_samples"].tolist() == [128.0, 128.0]
    old = tmp_path / "old.csv"
    old.write_text("run,checkpoint,kimg,metric,value,n_samples,seed\n"
                   "a,network-snapshot-000002.pt,2,fid,10.5,128,0\n"
                   "a,network-snapshot-000002.pt,2,fid,11.5,,\n")
    table = read_results(old)
    assert table["value"].tolist() == [10.5, 11.5] and table["n_real"].isna().all()
    assert table["seed"].iloc[0] == 0 and pd.isna(table["seed"].iloc[1])
    new = tmp_path / "mixed.csv"                             # a table file and an older writer's shard, read together
    write_results(new, pd.DataFrame([row(run="b")]))
    shard_dir(new).mkdir()
    (shard_dir(new) / "old-1-abc.csv").write_text(old.read_text())
    table = read_results(new).set_index(["run", "value"])
    assert table.loc[("b", 10.0), "wall_s"] == 1.5 and table.loc[("a", 10.5), ["wall_s", "n_real"]].isna().all()
    base = tmp_path / "baseline.csv"
    write_baseline(base, pd.DataFrame([row()]))              # one seed: std is empty
    edit_csv(base, 2, "n_real", "")
    back = read_baseline(base)
    assert back["std"].isna().all() and back["n_real"].isna().all() and back["mean"].tolist() == [10.0]
