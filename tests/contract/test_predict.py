"""``Client.predict`` in every mode: the same answers and the same errors, local or remote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corral import Client
from corral.errors import Conflict, InvalidArgument, NotFound
from tests.fixtures.serving import FEATURES, example_records, register_classifiers, training_data


@pytest.fixture
def classifiers(client: Client, tmp_path: Path) -> tuple[object, object]:
    return register_classifiers(client, tmp_path / "models")


def test_predict_takes_records_arrays_and_dataframes(client: Client, classifiers) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    first, _ = classifiers
    rows, _ = training_data(seed=5, rows=6)
    expected = first.predict(rows).tolist()
    for inputs in (example_records(rows), rows, pd.DataFrame(rows, columns=FEATURES)):
        answer = client.predict("clf", inputs)
        assert answer.model == "clf"
        assert answer.version == 1
        assert answer.alias == "champion"
        assert answer.outputs.tolist() == expected
        assert answer.rows == 6


def test_predict_by_version_alias_and_consumer(client: Client, classifiers) -> None:  # type: ignore[no-untyped-def]
    _, flipped = classifiers
    rows, _ = training_data(seed=6, rows=3)
    assert client.predict("clf", rows, version=2).outputs.tolist() == flipped.predict(rows).tolist()
    assert client.predict("clf", rows, alias="latest").version == 2
    client.create_consumer("billing", "clf", version=2)
    pinned = client.predict("clf", rows, consumer="billing")
    assert (pinned.version, pinned.consumer) == (2, "billing")
    with pytest.raises(Conflict, match="pinned to version 2"):
        client.predict("clf", rows, consumer="billing", version=1)


def test_predict_errors_are_the_same_classes_in_every_mode(client: Client, classifiers) -> None:  # type: ignore[no-untyped-def]
    record = example_records(training_data(rows=1)[0])[0]
    del record["f3"]
    with pytest.raises(InvalidArgument, match="'f3'"):
        client.predict("clf", [record])
    with pytest.raises(NotFound, match="ghost"):
        client.predict("ghost", [record])
    with pytest.raises(NotFound, match="version 9"):
        client.predict("clf", np.zeros((1, 20)), version=9)


def test_nan_and_infinity_from_the_sdk_are_refused_like_nulls(client: Client, classifiers) -> None:  # type: ignore[no-untyped-def]
    rows = training_data(seed=7, rows=2)[0]
    for bad in (np.nan, np.inf):
        data = rows.copy()
        data[1, 4] = bad
        with pytest.raises(InvalidArgument, match="row 1, column 'f4'"):
            client.predict("clf", data)
