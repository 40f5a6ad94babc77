"""``corral monitor drift``: a drift report on two files, or on a model's logged traffic."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from corral.cli import _output as o
from corral.errors import InvalidArgument

__all__ = ["drift_command"]

EXIT_DRIFT = 2


def drift_command(
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="Reference data: a Parquet or CSV file; with --model: 'example', "
        "'window:<duration>' or 'file:<path>'.",
    ),
    current: str | None = typer.Option(
        None, "--current", help="Current data: a Parquet or CSV file (not with --model)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Report on this model's logged inputs instead of two files."
    ),
    window: str = typer.Option("1d", "--window", help="With --model: the current window."),
    version: int | None = typer.Option(None, "--version", help="With --model: one version."),
    threshold_share: float | None = typer.Option(
        None, "--threshold-share", help="Dataset drift when this share of columns drift (0.5)."
    ),
    html: Path | None = typer.Option(None, "--html", help="Also write an HTML report here."),
    fail_on_drift: bool = typer.Option(
        False, "--fail-on-drift", help="Exit with status 2 when the dataset drifted."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Compare current data with reference data, column by column (drift and data quality)."""
    if threshold_share is not None and not 0 <= threshold_share <= 1:
        raise InvalidArgument(f"--threshold-share must be between 0 and 1, not {threshold_share}")
    if model is not None:
        if current is not None:
            raise InvalidArgument(
                "--current is for two files; with --model the current data is the model's "
                "logged inputs of the last --window"
            )
        title = f"Drift of model '{model}' over the last {window}"
        report = _model_report(model, reference, window, version, threshold_share)
    else:
        if reference is None or current is None:
            raise InvalidArgument(
                "give --reference FILE and --current FILE (Parquet or CSV), or --model NAME"
            )
        title = f"Drift of {Path(current).name} against {Path(reference).name}"
        report = _file_report(reference, current, threshold_share)
    if html is not None:
        from corral.monitoring.drift import DriftReport
        from corral.web.reports import render_drift_report

        page = render_drift_report(DriftReport.from_dict(report), title=title)
        try:
            html.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise InvalidArgument(f"cannot write the HTML report '{html}': {exc}") from exc
    if json_output:
        o.emit_json(report)
    else:
        _print(title, report, html)
    if fail_on_drift and report["dataset_drift"]:
        raise typer.Exit(EXIT_DRIFT)


def _file_report(reference: str, current: str, threshold_share: float | None) -> dict[str, Any]:
    from corral.monitoring.drift import DriftSettings, drift_report
    from corral.store.metrics.files import FileColumns

    settings = DriftSettings()
    if threshold_share is not None:
        settings = DriftSettings.from_dict({"share_threshold": threshold_share})
    with FileColumns(reference) as ref, FileColumns(current) as cur:
        # Two files have no prediction column of Corral's: every column is a feature.
        return drift_report(ref, cur, settings, prediction_column=None).to_dict()


def _model_report(
    model: str,
    reference: str | None,
    window: str,
    version: int | None,
    threshold_share: float | None,
) -> dict[str, Any]:
    from corral.cli.main import state

    report: dict[str, Any] = state.client().drift(
        model, reference=reference, window=window, version=version
    )
    if threshold_share is not None:
        # The share threshold only decides the verdict; recompute it locally.
        report = dict(report)
        report["share_threshold"] = threshold_share
        report["dataset_drift"] = bool(report["columns"]) and (
            report["drifted_share"] >= threshold_share
        )
    return report


def _percent(value: float) -> str:
    return f"{value:.2%}" if value else ""


def _print(title: str, report: dict[str, Any], html: Path | None) -> None:
    from rich.table import Table

    grid = Table(title=title, title_justify="left")
    for heading in ("column", "kind", "method", "statistic", "threshold", "drifted"):
        grid.add_column(heading, no_wrap=True)
    grid.add_column("quality")
    rows = list(report["columns"])
    if report.get("prediction"):
        rows.append({**report["prediction"], "name": f"{report['prediction']['name']} (output)"})
    for column in rows:
        quality = column["quality"]
        problems = [
            f"{quality['type_errors']} wrong type" if quality["type_errors"] else "",
            f"missing {_percent(quality['missing_share'])}" if quality["missing_share"] else "",
            f"out of range {_percent(quality['out_of_range_share'])}"
            if quality["out_of_range_share"]
            else "",
            f"unseen {_percent(quality['unseen_share'])}" if quality["unseen_share"] else "",
        ]
        statistic = column["statistic"]
        if column.get("p_value") is not None:
            statistic_text = f"{statistic:.4g} (p={column['p_value']:.3g})"
        else:
            statistic_text = "" if statistic is None else f"{statistic:.4g}"
        grid.add_row(
            column["name"],
            column["kind"],
            column["method"],
            statistic_text,
            f"{column['threshold']:g}" if column["method"] != "none" else "",
            "yes" if column["drifted"] else "no",
            "; ".join([p for p in problems if p] + ([column["note"]] if column["note"] else [])),
            style="bold red" if column["drifted"] else None,
        )
    o.out.print(grid)
    tested = sum(1 for c in report["columns"] if c["method"] != "none")
    verdict = "DRIFT" if report["dataset_drift"] else "no dataset drift"
    o.out.print(
        f"{report['drifted_count']} of {tested} tested columns drifted "
        f"({report['drifted_share']:.0%}; dataset drift at {report['share_threshold']:.0%}): "
        f"{verdict}. Reference {report['reference_rows']} rows, current "
        f"{report['current_rows']} rows."
    )
    if html is not None:
        sys.stderr.write(f"HTML report written to {html}\n")
