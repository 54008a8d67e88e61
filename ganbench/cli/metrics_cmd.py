"""`ganbench metrics list` and `ganbench extractors list`: what can be measured, with what, at what cost."""

from __future__ import annotations

import json
from typing import Any

import typer

from ganbench.cli import app
from ganbench.cli.common import handle_errors, make_console, plain

metrics_app = typer.Typer(no_args_is_help=True, help="The registered metrics: list.")
extractors_app = typer.Typer(no_args_is_help=True, help="The registered feature extractors: list.")
app.add_typer(metrics_app, name="metrics")
app.add_typer(extractors_app, name="extractors")

ARROWS = {"lower": "↓", "higher": "↑", None: ""}


def describe_metrics() -> list[dict[str, Any]]:
    """One record per registered metric: result keys (with direction), needs, default parameters, reference, cost."""
    from ganbench.metrics import get_metric, list_metrics

    rows = []
    for name in list_metrics():
        metric = get_metric(name)
        rows.append({"name": name, "outputs": {k: v for k, v in metric.outputs.items()},
                     "needs": sorted(metric.needs), "defaults": metric.params(),
                     "reference": metric.reference, "cost": metric.cost,
                     "description": _first_line(type(metric).__doc__)})
    return rows


def describe_extractors() -> list[dict[str, Any]]:
    """One record per registered extractor: feature size, outputs, resize mode, options, weights asset."""
    import inspect

    from ganbench.features import EXTRACTORS, extractor_options, list_extractors

    rows = []
    for name in list_extractors():
        factory = EXTRACTORS.get(name)
        params = inspect.signature(factory).parameters
        options = {p: (None if params[p].default is inspect.Parameter.empty else params[p].default)
                   for p in (extractor_options(factory) or [])}
        choice = [o for o in options if o in ("mode", "variant")]  # these set the resize too
        resize = f"by {choice[0]}" if choice else getattr(factory, "resize_mode", "")
        rows.append({"name": name, "feature_dim": getattr(factory, "feature_dim", None),
                     "outputs": list(getattr(factory, "outputs", ())), "resize_mode": resize, "options": options,
                     "description": _first_line(factory.__doc__)})
    return rows


def _first_line(doc: str | None) -> str:
    return next(iter((doc or "").strip().splitlines()), "")


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in params.items()) or "-"


@metrics_app.command("list")
@handle_errors
def list_metrics_(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Every metric: its result keys (↓ lower / ↑ higher is better), what it needs, defaults, reference, cost."""
    from rich.table import Table

    rows = describe_metrics()
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="metrics (eval --metrics NAME, -p NAME.PARAM=VALUE)", title_justify="left", show_lines=True)
    for column in ("name", "results", "needs", "default parameters", "matches", "typical cost"):
        table.add_column(column, overflow="fold")
    for row in rows:
        results = " ".join(f"{k}{ARROWS.get(v, '')}" for k, v in row["outputs"].items())
        table.add_row(plain(row["name"]), plain(results), plain(", ".join(row["needs"]) or "-"),
                      plain(_params_text(row["defaults"])), plain(row["reference"] or "-"), plain(row["cost"] or "-"))
    make_console().print(table)


@extractors_app.command("list")
@handle_errors
def list_extractors_(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Every feature extractor: feature size, outputs, resize mode and options (`-e NAME:OPTION=VALUE`)."""
    from rich.table import Table

    rows = describe_extractors()
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="feature extractors (eval --extractor NAME[:OPTION=VALUE,...])", title_justify="left")
    for column in ("name", "features", "outputs", "resize", "options", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(plain(row["name"]), plain(row["feature_dim"]), plain(", ".join(row["outputs"])),
                      plain(row["resize_mode"]), plain(_params_text(row["options"])), plain(row["description"]))
    make_console().print(table)
