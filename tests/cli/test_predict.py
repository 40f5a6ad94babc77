"""``corral predict`` with JSON and CSV files, locally and against a server."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from corral import Client
from corral.config import Settings
from tests.cli.conftest import Cli
from tests.fixtures.serving import FEATURES, example_records, register_classifiers, training_data


def _models(cli: Cli, tmp_path: Path) -> tuple[object, object]:
    with Client(settings=Settings(home=Path(cli.env["CORRAL_HOME"]))) as client:
        return register_classifiers(client, tmp_path / "models")


def test_predict_reads_json_and_csv_files(cli: Cli, tmp_path: Path) -> None:
    first, flipped = _models(cli, tmp_path)
    rows, _ = training_data(seed=9, rows=4)
    as_json = tmp_path / "rows.json"
    as_json.write_text(json.dumps({"inputs": example_records(rows)}))
    as_csv = tmp_path / "rows.csv"
    with as_csv.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FEATURES)
        writer.writerows(rows.tolist())
    answer = cli.json("predict", "clf", "--input", str(as_json))
    assert answer["version"] == 1
    assert answer["predictions"] == first.predict(rows).tolist()  # type: ignore[attr-defined]
    from_csv = cli.json("predict", "clf", "--input", str(as_csv), "--version", "2")
    assert from_csv["predictions"] == flipped.predict(rows).tolist()  # type: ignore[attr-defined]
    table = " ".join(cli.run("predict", "clf", "--input", str(as_csv)).stdout.split())
    assert "clf version 1 (alias champion)" in table


def test_predict_errors_name_the_problem(cli: Cli, tmp_path: Path) -> None:
    _models(cli, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"f0": 1.0}]))
    done = cli.run("predict", "clf", "--input", str(bad), ok=False)
    assert done.returncode != 0
    assert "missing input columns" in done.stderr
    assert "'f1'" in done.stderr
    missing = cli.run("predict", "clf", "--input", str(tmp_path / "nope.json"), ok=False)
    assert "cannot read input file" in missing.stderr
