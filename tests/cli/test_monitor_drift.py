"""``corral monitor drift`` on two standalone files, run as a user runs it: a real process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from tests.cli.conftest import Cli
from tests.monitoring.drift_data import DRIFTED, drift_tables


@pytest.fixture
def local_cli(tmp_path: Path) -> Cli:
    env = {**os.environ, "CORRAL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.pop("CORRAL_SERVER_URL", None)
    return Cli([], env)


def write_pair(folder: Path, suffix: str) -> tuple[str, str]:
    paths = []
    for name, columns in zip(("reference", "current"), drift_tables(3000, seed=31), strict=True):
        table = pa.table(columns)
        path = folder / f"{name}.{suffix}"
        if suffix == "parquet":
            pq.write_table(table, path)
        else:
            pcsv.write_csv(table, path)
        paths.append(str(path))
    return paths[0], paths[1]


@pytest.fixture(params=["parquet", "csv"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return write_pair(tmp_path, request.param)


@pytest.fixture
def parquet_files(tmp_path: Path) -> tuple[str, str]:
    return write_pair(tmp_path, "parquet")


def test_json_report_flags_the_drifted_columns(local_cli: Cli, files: tuple[str, str]) -> None:
    reference, current = files
    report = local_cli.json("monitor", "drift", "--reference", reference, "--current", current)
    assert set(report) >= {
        "reference_rows",
        "current_rows",
        "columns",
        "drifted_count",
        "drifted_share",
        "dataset_drift",
        "share_threshold",
        "prediction",
    }
    assert (report["reference_rows"], report["current_rows"]) == (3000, 3000)
    assert sorted(c["name"] for c in report["columns"] if c["drifted"]) == sorted(DRIFTED)
    column = report["columns"][0]
    assert set(column) == {
        "name",
        "kind",
        "method",
        "statistic",
        "threshold",
        "drifted",
        "p_value",
        "note",
        "quality",
        "histogram",
    }
    assert set(column["quality"]) == {
        "missing_share",
        "out_of_range_share",
        "unseen_share",
        "type_errors",
    }
    assert report["dataset_drift"] is False


def test_table_and_html_report_name_every_column(
    local_cli: Cli, parquet_files: tuple[str, str], tmp_path: Path
) -> None:
    reference, current = parquet_files
    page = tmp_path / "report.html"
    done = local_cli.run(
        "monitor",
        "drift",
        "--reference",
        reference,
        "--current",
        current,
        "--html",
        str(page),
        "--fail-on-drift",
    )
    assert "mean_shift" in done.stdout
    assert "wasserstein" in done.stdout
    assert "5 of 25 tested columns drifted" in done.stdout
    assert "no dataset drift" in done.stdout
    text = page.read_text()
    for name in [*DRIFTED, "stable_0", "category_3"]:
        assert f"<td>{name}</td>" in text
    assert "<svg" in text
    assert "<script" not in text
    assert "http" not in text.split("</head>")[0]


def test_fail_on_drift_exits_2_past_the_threshold_share(
    local_cli: Cli, parquet_files: tuple[str, str]
) -> None:
    reference, current = parquet_files
    done = local_cli.run(
        "monitor",
        "drift",
        "--reference",
        reference,
        "--current",
        current,
        "--threshold-share",
        "0.2",
        "--fail-on-drift",
        "--json",
        ok=False,
    )
    assert done.returncode == 2
    report = json.loads(done.stdout)
    assert (report["dataset_drift"], report["share_threshold"]) == (True, 0.2)


def test_malformed_file_gives_a_clear_error(local_cli: Cli, parquet_files: tuple[str, str]) -> None:
    reference, current = parquet_files
    bad = Path(current).with_name("bad.parquet")
    bad.write_bytes(b"PAR1 this is not really parquet")
    done = local_cli.run(
        "monitor", "drift", "--reference", reference, "--current", str(bad), ok=False
    )
    assert done.returncode == 1
    assert "cannot read" in done.stderr
    assert "bad.parquet" in done.stderr
    assert "as Parquet" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_arguments_say_what_to_give(local_cli: Cli) -> None:
    done = local_cli.run("monitor", "drift", "--reference", "a.csv", ok=False)
    assert done.returncode == 1
    assert "--current FILE" in done.stderr
    done = local_cli.run("monitor", "drift", "--model", "churn", "--current", "a.csv", ok=False)
    assert done.returncode == 1
    assert "--current is for two files" in done.stderr


def test_model_mode_names_an_unknown_model(local_cli: Cli) -> None:
    done = local_cli.run("monitor", "drift", "--model", "nosuch", ok=False)
    assert done.returncode == 1
    assert "model 'nosuch' does not exist" in done.stderr
