"""`ganbench zoo list | info`: the registered networks, their presets, parameter counts and training defaults."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.table import Table

from ganbench.cli import app
from ganbench.cli.common import handle_errors, make_console, plain

zoo_app = typer.Typer(no_args_is_help=True, help="List and inspect the registered networks.")
app.add_typer(zoo_app, name="zoo")


def _parse_value(text: str) -> Any:
    """A --set value as JSON when it parses (numbers, null, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_sets(items: list[str]) -> dict[str, Any]:
    from ganbench.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = _parse_value(value)
    return out


@zoo_app.command("list")
@handle_errors
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every registered model with its presets."""
    from model_zoo.summary import describe_models

    rows = describe_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="models", title_justify="left")
    for column in ("name", "presets", "default", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(plain(row["name"]), plain(", ".join(row["presets"]) or "-"), plain(row["default_preset"] or "-"),
                      plain(row["description"]))
    make_console().print(table)


@zoo_app.command("info")
@handle_errors
def info(
    name: str = typer.Argument(..., help="Model name, e.g. stylegan2 (see `ganbench zoo list`)."),
    resolution: int = typer.Option(..., "--resolution", "-r", help="Output resolution (a power of two)."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Named preset, e.g. tiny, cifar, paper256."),
    sets: list[str] = typer.Option([], "--set", help="Override a hyperparameter, KEY=VALUE (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Parameter counts of G (mapping / synthesis) and D, and the model's settings, each with its source."""
    from model_zoo.summary import model_info

    data = model_info(name, resolution, preset=preset, **_parse_sets(sets))
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    out = make_console()
    params = Table(title=plain(f"{name} at {resolution}px" + (f", preset {preset}" if preset else "")),
                   title_justify="left")
    params.add_column("network")
    params.add_column("parameters", justify="right")
    for part, count in data["params"].items():
        params.add_row(plain(part), f"{count:,}")
    out.print(params)
    sources = data.get("sources", {})
    for title, values in (("network", {**data["network"], **data["config"]}), ("training defaults", data["train"])):
        table = Table(title=title, title_justify="left")
        table.add_column("key")
        table.add_column("value", overflow="fold")
        table.add_column("source", overflow="fold")
        for key, value in values.items():
            table.add_row(plain(key), plain(json.dumps(value, default=str) if not isinstance(value, str) else value),
                          plain(sources.get(key, "")))
        out.print(table)
    from ganbench.train.losses import describe_step_policy   # which NVIDIA training code the step follows

    if (policy := describe_step_policy(data["train"])) is not None:
        out.print(plain(policy))
