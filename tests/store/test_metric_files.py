from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from corral.errors import InvalidArgument, NotFound
from corral.monitoring.drift import drift_report
from corral.store.metrics.files import FileColumns
from tests.monitoring.drift_data import DRIFTED, drift_tables


def write_parquet(path: Path, columns: dict[str, object]) -> str:
    pq.write_table(pa.table(columns), path)
    return str(path)


def test_parquet_kinds_and_columns(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "data.parquet",
        {
            "age": pa.array([30, None, 45], pa.int64()),
            "income": [1.5, float("nan"), 3.0],
            "city": ["Oslo", None, "Lima"],
            "member": [True, False, None],
            "vector": [[1.0, 2.0], [3.0], None],
            "empty": pa.nulls(3),
        },
    )
    with FileColumns(path) as source:
        assert source.rows == 3
        assert source.kinds() == {
            "age": "numeric",
            "income": "numeric",
            "city": "categorical",
            "member": "categorical",
            "vector": "other",
            "empty": "numeric",
        }
        np.testing.assert_array_equal(source.column("age"), [30.0, np.nan, 45.0])
        assert source.column("city").tolist() == ["Oslo", None, "Lima"]
        assert source.column("member").tolist() == ["true", "false", None]
        assert np.isnan(source.column("empty")).all()
        categories, codes = source.encoded("city")
        assert [categories[c] if c >= 0 else None for c in codes] == ["Oslo", None, "Lima"]
        assert source.type_errors("city") == 0


def test_text_column_of_mostly_numbers_is_numeric_with_type_errors(tmp_path: Path) -> None:
    values = [str(x) for x in range(90)] + ["n/a"] * 7 + [None] * 3
    path = write_parquet(tmp_path / "data.parquet", {"amount": values})
    source = FileColumns(path)
    assert source.kinds() == {"amount": "numeric"}
    assert source.type_errors("amount") == 7
    column = source.column("amount")
    assert column[:90].tolist() == [float(x) for x in range(90)]
    assert np.isnan(column[90:]).all()


def test_csv_column_changing_type_mid_stream_is_flagged(tmp_path: Path) -> None:
    # Far enough down that pyarrow's type inference has already settled on numbers.
    lines = ["amount,city"] + [f"{i}.5,Oslo" for i in range(200_000)] + ["oops,Lima"] * 5
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    source = FileColumns(str(path))
    assert source.kinds() == {"amount": "numeric", "city": "categorical"}
    assert source.type_errors("amount") == 5
    assert source.rows == 200_005
    assert np.isnan(source.column("amount")[-5:]).all()
    report = drift_report(source, source)
    amount = next(c for c in report.columns if c.name == "amount")
    assert amount.quality.type_errors == 5
    assert not amount.drifted


def test_csv_and_parquet_give_the_same_report(tmp_path: Path) -> None:
    ref, cur = drift_tables(3000, seed=21)
    sources = {}
    for name, table in (("ref", ref), ("cur", cur)):
        arrow = pa.table(table)
        pq.write_table(arrow, tmp_path / f"{name}.parquet")
        pcsv.write_csv(arrow, tmp_path / f"{name}.csv")
        sources[name] = table
    from_parquet = drift_report(
        FileColumns(str(tmp_path / "ref.parquet")), FileColumns(str(tmp_path / "cur.parquet"))
    )
    from_csv = drift_report(
        FileColumns(str(tmp_path / "ref.csv")), FileColumns(str(tmp_path / "cur.csv"))
    )
    assert sorted(c.name for c in from_parquet.columns if c.drifted) == sorted(DRIFTED)
    for a, b in zip(from_parquet.columns, from_csv.columns, strict=True):
        assert (a.name, a.kind, a.method, a.drifted) == (b.name, b.kind, b.method, b.drifted)
        assert a.statistic == pytest.approx(b.statistic, rel=1e-6)


def test_parquet_detected_by_content_not_name(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "data.csv", {"x": [1.0, 2.0]})
    assert FileColumns(path).kinds() == {"x": "numeric"}


def test_fsspec_url_is_read(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    with fs.open("/corral-test/data.parquet", "wb") as handle:
        pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}), handle)
    try:
        source = FileColumns("memory://corral-test/data.parquet")
        assert source.rows == 3
        assert source.column("x").tolist() == [1.0, 2.0, 3.0]
        source.close()
    finally:
        fs.rm("/corral-test", recursive=True)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        FileColumns(str(tmp_path / "nope.parquet"))


def test_truncated_parquet_is_refused_clearly(tmp_path: Path) -> None:
    good = Path(write_parquet(tmp_path / "good.parquet", {"x": list(range(1000))}))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InvalidArgument, match=r"cannot read '.*bad\.parquet' as Parquet"):
        FileColumns(str(bad))


@pytest.mark.parametrize("text", ["", "a,b\n1,2,3,4\n5\n"])
def test_malformed_csv_is_refused_clearly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match="as CSV"):
        FileColumns(str(path))


def test_unknown_column_is_not_found(tmp_path: Path) -> None:
    source = FileColumns(write_parquet(tmp_path / "d.parquet", {"x": [1.0]}))
    with pytest.raises(NotFound, match="no column 'y'"):
        source.column("y")
