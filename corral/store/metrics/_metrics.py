"""Realised performance per bucket, from the ``labelled`` view (predictions joined to feedback).

Classification: SQL counts a confusion matrix per bucket (a handful of rows) and ranks the
scores for the ROC AUC; the ratios are taken here. Regression: SQL sums the errors.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import duckdb

_NEGATIVE = {"0": "1", "false": "true"}
_EPSILON = 1e-15  # probabilities are clipped to [ε, 1-ε] in the log loss, as scikit-learn does


@dataclass(frozen=True)
class Task:
    """What kind of model the window's rows come from, and its classes when it classifies."""

    name: str | None  # "classification", "regression" or None
    classes: tuple[str, ...] = ()  # sorted, so the positive class of a binary model is last
    n_classes: int = 0

    @property
    def binary(self) -> bool:
        return self.name == "classification" and self.n_classes <= 2

    @property
    def positive(self) -> str | None:
        if not self.binary or not self.classes:
            return None
        if len(self.classes) == 1 and self.classes[0] in _NEGATIVE:
            return _NEGATIVE[self.classes[0]]  # only negatives seen: the positive is still 1
        return self.classes[-1]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def add_classification(
    con: duckdb.DuckDBPyConnection, bucket: str, task: Task, result: list[dict[str, Any]]
) -> None:
    """Accuracy, precision, recall, F1, ROC AUC and log loss of each bucket, in place."""
    confusion: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    for b, predicted, actual, count in con.sql(
        f"SELECT {bucket} AS b, prediction_label, label_text, count(*) FROM labelled "
        "WHERE prediction_label IS NOT NULL AND label_text IS NOT NULL GROUP BY ALL"
    ).fetchall():
        confusion[int(b)][(str(predicted), str(actual))] = int(count)
    for b, counts in confusion.items():
        figures = result[b]
        total = sum(counts.values())
        figures["accuracy"] = _ratio(sum(n for (p, y), n in counts.items() if p == y), total)
        if task.binary and task.positive is not None:
            tp, fp, fn = _outcomes(counts, task.positive)
            figures["precision"] = _ratio(tp, tp + fp)
            figures["recall"] = _ratio(tp, tp + fn)
            figures["f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
        else:
            figures.update(_macro(counts))
    if task.binary and task.positive is not None:
        _add_roc_auc(con, bucket, task.positive, result)
    _add_log_loss(con, bucket, task, result)


def _outcomes(counts: dict[tuple[str, str], int], label: str) -> tuple[int, int, int]:
    tp = counts.get((label, label), 0)
    predicted = sum(n for (p, _), n in counts.items() if p == label)
    actual = sum(n for (_, y), n in counts.items() if y == label)
    return tp, predicted - tp, actual - tp


def _macro(counts: dict[tuple[str, str], int]) -> dict[str, float | None]:
    # Unweighted mean over the classes seen in the bucket (labels or predictions); a class
    # never predicted has precision 0, as in scikit-learn.
    labels = sorted({label for pair in counts for label in pair})
    precision, recall, f1 = [], [], []
    for label in labels:
        tp, fp, fn = _outcomes(counts, label)
        precision.append(_ratio(tp, tp + fp) or 0.0)
        recall.append(_ratio(tp, tp + fn) or 0.0)
        f1.append(_ratio(2 * tp, 2 * tp + fp + fn) or 0.0)
    return {
        "precision": sum(precision) / len(labels),
        "recall": sum(recall) / len(labels),
        "f1": sum(f1) / len(labels),
    }


def _add_roc_auc(
    con: duckdb.DuckDBPyConnection, bucket: str, positive: str, result: list[dict[str, Any]]
) -> None:
    # Mann-Whitney: AUC = (sum of the positives' ranks - n₊(n₊+1)/2) / (n₊ n₋), ties at the
    # mean of their ranks.
    rows = con.sql(
        f"WITH scored AS (SELECT {bucket} AS b, score AS s, "
        f"(label_text = {_quote(positive)})::INTEGER AS pos FROM labelled "
        "WHERE label_text IS NOT NULL), "
        "ranked AS (SELECT b, pos, rank() OVER (PARTITION BY b ORDER BY s) "
        "+ (count(*) OVER (PARTITION BY b, s) - 1) / 2.0 AS r FROM scored WHERE s IS NOT NULL) "
        "SELECT b, sum(pos), count(*) - sum(pos), sum(r) FILTER (WHERE pos = 1) "
        "FROM ranked GROUP BY b"
    ).fetchall()
    for b, positives, negatives, rank_sum in rows:
        if positives and negatives:
            auc = (float(rank_sum) - positives * (positives + 1) / 2) / (positives * negatives)
            result[int(b)]["roc_auc"] = auc


def _add_log_loss(
    con: duckdb.DuckDBPyConnection, bucket: str, task: Task, result: list[dict[str, Any]]
) -> None:
    clip = f"greatest(least(q, {1 - _EPSILON!r}), {_EPSILON!r})"
    if task.binary and task.positive is not None:
        probability = (
            f"CASE WHEN label_text = {_quote(task.positive)} THEN score ELSE 1 - score END"
        )
        source = "labelled"
    elif len(task.classes) == task.n_classes and task.classes:
        # The probabilities are in the model's class order, which is the sorted order.
        index = ", ".join(f"({_quote(label)}, {i + 1})" for i, label in enumerate(task.classes))
        probability = "list_extract(proba, c.i)"
        source = (
            f"labelled JOIN (VALUES {index}) c(label, i) ON label_text = c.label "
            f"WHERE len(proba) = {task.n_classes}"
        )
    else:
        return
    rows = con.sql(
        f"SELECT b, avg(-ln({clip})) FROM (SELECT {bucket} AS b, {probability} AS q "
        f"FROM {source}) WHERE q IS NOT NULL GROUP BY b"
    ).fetchall()
    for b, loss in rows:
        if loss is not None and math.isfinite(loss):
            result[int(b)]["log_loss"] = float(loss)


def add_regression(
    con: duckdb.DuckDBPyConnection, bucket: str, result: list[dict[str, Any]]
) -> None:
    """MAE, RMSE and R² of each bucket, in place."""
    for b, count, mae, mse, variance in con.sql(
        f"SELECT {bucket} AS b, count(*), avg(abs(prediction_value - label_value)), "
        "avg((prediction_value - label_value) ** 2), var_pop(label_value) FROM labelled "
        "WHERE prediction_value IS NOT NULL AND label_value IS NOT NULL GROUP BY b"
    ).fetchall():
        if not count:
            continue
        figures = result[int(b)]
        figures.update(mae=float(mae), rmse=math.sqrt(mse))
        figures["r2"] = 1 - mse / variance if count > 1 and variance > 0 else None
