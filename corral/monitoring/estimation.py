"""Performance estimated from predicted probabilities before labels arrive (as NannyML's CBPE).

A binary classifier's scores are first calibrated on reference data that has labels (isotonic
regression of the label on the score). Under the assumption that only the inputs drift and
not the relation between inputs and labels (no concept drift), a calibrated probability ``p``
is the chance that the row's label is positive, so every row adds ``p`` to the expected
true positives (or false negatives) and ``1 - p`` to the expected false positives (or true
negatives). The expected confusion matrix gives accuracy and F1; the ROC AUC is the area under
the expected ROC curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import isotonic_regression

Floats = npt.NDArray[np.float64]

_THRESHOLD = 0.5  # a binary classifier predicts the positive class when P(positive) > 0.5


class Calibrator:
    """Maps a classifier's scores to calibrated probabilities (the identity until fitted)."""

    def __init__(self) -> None:
        self.knots: Floats = np.empty(0)  # distinct reference scores
        self.values: Floats = np.empty(0)  # P(positive) at each knot

    def fit(self, scores: npt.ArrayLike, labels: npt.ArrayLike) -> Calibrator:
        """Isotonic fit of ``labels`` (1/0; NaN = unlabelled) on ``scores``; returns ``self``.

        Without labels of both classes there is nothing to learn: it stays the identity.
        """
        score = np.asarray(scores, dtype=np.float64)
        label = np.asarray(labels, dtype=np.float64)
        usable = np.isfinite(score) & np.isfinite(label)
        score, label = score[usable], label[usable]
        self.knots, self.values = np.empty(0), np.empty(0)
        if score.size == 0 or np.unique(label).size < 2:
            return self
        knots, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
        means = np.bincount(inverse, weights=label) / counts
        fitted = isotonic_regression(means, weights=counts.astype(np.float64), increasing=True)
        self.knots, self.values = knots, np.clip(fitted.x, 0.0, 1.0)
        return self

    @property
    def fitted(self) -> bool:
        return self.knots.size > 0

    def calibrate(self, scores: npt.ArrayLike) -> Floats:
        """Calibrated probabilities; scores outside the reference range take the nearest end."""
        score = np.asarray(scores, dtype=np.float64)
        if not self.fitted:
            return np.clip(score, 0.0, 1.0)
        if self.knots.size == 1:
            return np.full(score.shape, float(self.values[0]))
        return np.asarray(np.interp(score, self.knots, self.values), dtype=np.float64)

    def estimate(
        self, scores: npt.ArrayLike, predictions: npt.ArrayLike | None = None
    ) -> dict[str, float | None]:
        """``estimated_accuracy``, ``estimated_f1`` and ``estimated_roc_auc`` of the rows.

        Args:
            scores: the model's P(positive class) per row (NaN rows are ignored).
            predictions: the predicted class per row as 1/0; by default ``score > 0.5``.
        """
        score = np.asarray(scores, dtype=np.float64)
        predicted = (
            score > _THRESHOLD
            if predictions is None
            else np.asarray(predictions, dtype=np.float64) > _THRESHOLD
        )
        usable = np.isfinite(score)
        return _estimate(self.calibrate(score[usable]), predicted[usable])


def _estimate(probability: Floats, predicted: npt.NDArray[np.bool_]) -> dict[str, float | None]:
    if probability.size == 0:
        return {"estimated_accuracy": None, "estimated_f1": None, "estimated_roc_auc": None}
    tp = float(probability[predicted].sum())
    fp = float((1 - probability[predicted]).sum())
    fn = float(probability[~predicted].sum())
    tn = float((1 - probability[~predicted]).sum())
    f1_denominator = 2 * tp + fp + fn
    return {
        "estimated_accuracy": (tp + tn) / probability.size,
        "estimated_f1": 2 * tp / f1_denominator if f1_denominator > 0 else None,
        "estimated_roc_auc": _expected_roc_auc(probability),
    }


def _expected_roc_auc(probability: Floats) -> float | None:
    # Thresholds from high to low: above each, a row counts p expected true positives and
    # 1 - p expected false positives; ties share one point of the curve.
    ordered = np.sort(probability)[::-1]
    positives = np.cumsum(ordered)
    negatives = np.cumsum(1 - ordered)
    if positives[-1] <= 0 or negatives[-1] <= 0:
        return None
    last_of_tie = np.r_[np.diff(ordered) != 0, True]
    tpr = np.r_[0.0, positives[last_of_tie] / positives[-1]]
    fpr = np.r_[0.0, negatives[last_of_tie] / negatives[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids (numpy 1.26)


def estimate_buckets(
    calibrator: Calibrator | None,
    scores: npt.ArrayLike,
    timestamps_us: npt.ArrayLike,
    edges_us: Sequence[int] | npt.NDArray[np.int64],
    *,
    predictions: npt.ArrayLike | None = None,
) -> list[dict[str, Any]]:
    """Estimates per bucket ``[edges[i], edges[i+1])`` (µs), with ``estimated_rows``.

    Args:
        calibrator: fitted on labelled reference rows; None uses the scores as they are.
    """
    calibrator = calibrator or Calibrator()
    score = np.asarray(scores, dtype=np.float64)
    stamps = np.asarray(timestamps_us, dtype=np.int64)
    edges = np.asarray(edges_us, dtype=np.int64)
    predicted = (
        score > _THRESHOLD
        if predictions is None
        else np.asarray(predictions, dtype=np.float64) > _THRESHOLD
    )
    which = np.searchsorted(edges, stamps, side="right") - 1
    keep = np.isfinite(score) & (which >= 0) & (which < edges.size - 1)
    which, probability = which[keep], calibrator.calibrate(score[keep])
    predicted = predicted[keep]
    # One sort puts each bucket's rows side by side, so each bucket is a slice.
    order = np.argsort(which, kind="stable")
    which, probability, predicted = which[order], probability[order], predicted[order]
    bounds = np.searchsorted(which, np.arange(max(edges.size, 1)))
    result: list[dict[str, Any]] = []
    for index in range(max(edges.size - 1, 0)):
        rows = slice(bounds[index], bounds[index + 1])
        figures: dict[str, Any] = {"estimated_rows": int(bounds[index + 1] - bounds[index])}
        figures.update(_estimate(probability[rows], predicted[rows]))
        result.append(figures)
    return result


__all__ = ["Calibrator", "estimate_buckets"]
