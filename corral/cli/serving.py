"""``corral predict``: predictions from a JSON or CSV file, locally or through a server."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import typer

from corral.cli import _output as o
from corral.errors import InvalidArgument

JSON = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _number(text: str) -> Any:
    """A CSV cell: a number when it reads as one, None when empty, else the text."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def read_inputs(path: str) -> Any:
    """Inputs from a .json file (a body with "inputs", or the inputs themselves), a .csv
    file with a header row, or ``-`` for JSON on stdin."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read input file '{path}': {exc.strerror}") from exc
    if path.lower().endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows:
            raise InvalidArgument(f"'{path}' has a header but no rows")
        return [{k: _number(v) for k, v in row.items()} for row in rows]
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"'{path}' is not valid JSON: {exc}") from exc
    return body["inputs"] if isinstance(body, dict) and "inputs" in body else body


def install(app: typer.Typer, state: Any) -> None:
    @app.command("predict")
    def predict(
        name: str,
        input_file: str = typer.Option(
            ..., "--input", "-i", help="A .json or .csv file of inputs ('-' reads JSON on stdin)."
        ),
        version: int | None = typer.Option(None, "--version", help="Version number to ask."),
        alias: str | None = typer.Option(None, "--alias", help="Alias to ask."),
        consumer: str | None = typer.Option(None, "--consumer", help="Ask as this consumer."),
        as_json: bool = JSON,
    ) -> None:
        """Predict with a model (its champion unless --version/--alias/--consumer say)."""
        inputs = read_inputs(input_file)
        answer = state.client().predict(
            name, inputs, version=version, alias=alias, consumer=consumer
        )
        outputs = answer.outputs
        predictions = (
            {k: v.tolist() for k, v in outputs.items()}
            if isinstance(outputs, dict)
            else outputs.tolist()
        )
        if as_json:
            return o.emit_json(
                {
                    "model": answer.model,
                    "version": answer.version,
                    "alias": answer.alias,
                    "consumer": answer.consumer,
                    "request_id": answer.request_id,
                    "predictions": predictions,
                }
            )
        served = f"{answer.model} version {answer.version}"
        if answer.alias:
            served += f" (alias {answer.alias})"
        columns = list(predictions) if isinstance(predictions, dict) else ["prediction"]
        values = (
            list(zip(*predictions.values(), strict=True))
            if isinstance(predictions, dict)
            else [[p] for p in predictions]
        )
        o.table(served, ["row", *columns], [[i, *row] for i, row in enumerate(values)])
