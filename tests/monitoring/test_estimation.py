"""Confidence-based performance estimation on synthetic streams whose true figures are known."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy.special import expit

from corral.monitoring.estimation import Calibrator, estimate_buckets

WINDOW = 2000
MINUTE_US = 60_000_000
Floats = npt.NDArray[np.float64]


def _rows(rng: np.random.Generator, x: Floats) -> tuple[Floats, Floats]:
    """Scores of an overconfident (but monotone) model and labels drawn from P(y=1|x)."""
    labels = (rng.random(x.size) < expit(x)).astype(np.float64)
    return expit(2.5 * x), labels


def _shifted(rng: np.random.Generator, centre: float, n: int) -> Floats:
    # Covariate shift: the inputs move towards the decision boundary, so accuracy drops,
    # while P(y=1|x) stays the same (no concept drift).
    return rng.choice([-1.0, 1.0], n) * centre + rng.normal(0.0, 0.5, n)


@pytest.fixture
def calibrator() -> Calibrator:
    rng = np.random.default_rng(1)
    scores, labels = _rows(rng, rng.normal(0.0, 2.5, 20_000))  # labelled reference
    return Calibrator().fit(scores, labels)


def _accuracy(scores: Floats, labels: Floats) -> float:
    return float(((scores > 0.5) == (labels == 1)).mean())


def _f1(scores: Floats, labels: Floats) -> float:
    predicted, actual = scores > 0.5, labels == 1
    tp = (predicted & actual).sum()
    return float(2 * tp / (predicted.sum() + actual.sum()))


def _roc_auc(scores: Floats, labels: Floats) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    positives = labels == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_estimates_track_accuracy_falling_from_0_9_to_0_7_under_covariate_shift(
    calibrator: Calibrator,
) -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([_shifted(rng, 2.3, 5 * WINDOW), _shifted(rng, 0.85, 5 * WINDOW)])
    scores, labels = _rows(rng, x)
    stamps = np.arange(x.size, dtype=np.int64) * MINUTE_US // WINDOW  # one window a minute
    edges = np.arange(11, dtype=np.int64) * MINUTE_US

    estimates = estimate_buckets(calibrator, scores, stamps, edges)

    assert [e["estimated_rows"] for e in estimates] == [WINDOW] * 10
    truth = [
        slice_figures(scores[i * WINDOW : (i + 1) * WINDOW], labels[i * WINDOW : (i + 1) * WINDOW])
        for i in range(10)
    ]
    assert np.mean([t["accuracy"] for t in truth[:5]]) == pytest.approx(0.9, abs=0.02)
    assert np.mean([t["accuracy"] for t in truth[5:]]) == pytest.approx(0.7, abs=0.02)
    for estimate, true in zip(estimates, truth, strict=True):
        assert estimate["estimated_accuracy"] == pytest.approx(true["accuracy"], abs=0.03)
        assert estimate["estimated_f1"] == pytest.approx(true["f1"], abs=0.03)
        assert estimate["estimated_roc_auc"] == pytest.approx(true["roc_auc"], abs=0.04)


def slice_figures(scores: Floats, labels: Floats) -> dict[str, float]:
    return {
        "accuracy": _accuracy(scores, labels),
        "f1": _f1(scores, labels),
        "roc_auc": _roc_auc(scores, labels),
    }


def test_uncalibrated_scores_overestimate_an_overconfident_model() -> None:
    rng = np.random.default_rng(3)
    scores, labels = _rows(rng, _shifted(rng, 0.85, WINDOW))
    raw = Calibrator().estimate(scores)["estimated_accuracy"]
    assert raw is not None
    assert raw > _accuracy(scores, labels) + 0.1


def test_calibrator_without_both_classes_is_the_identity() -> None:
    scores = np.array([0.2, 0.7, 0.9])
    calibrator = Calibrator().fit(scores, np.array([1.0, 1.0, np.nan]))
    assert not calibrator.fitted
    np.testing.assert_allclose(calibrator.calibrate(scores), scores)


def test_calibration_is_monotone_and_clipped_to_the_reference_range() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    calibrator = Calibrator().fit(scores, labels)
    calibrated = calibrator.calibrate(np.array([0.0, 0.1, 0.25, 0.5, 0.85, 1.0]))
    assert np.all(np.diff(calibrated) >= 0)
    assert calibrated[0] == calibrated[1]  # below the reference: the lowest knot's value
    assert calibrated[-1] == 1.0
    # Pooled adjacent violators: 0.2-0.4 pool to 1/3; between knots it interpolates.
    np.testing.assert_allclose(
        calibrator.calibrate(np.array([0.3, 0.15, 0.65])), [1 / 3, 1 / 6, 0.5]
    )


def test_empty_bucket_and_one_class_bucket_have_no_estimate_they_cannot_make() -> None:
    scores = np.array([0.9, 0.8, 1.0])
    stamps = np.array([5, 6, 7], dtype=np.int64)
    empty, full = estimate_buckets(None, scores, stamps, [0, 5, 10])
    assert empty == {
        "estimated_rows": 0,
        "estimated_accuracy": None,
        "estimated_f1": None,
        "estimated_roc_auc": None,
    }
    assert full["estimated_rows"] == 3
    assert full["estimated_accuracy"] == pytest.approx(0.9)
    # Certain positives only (p = 1): no expected negative to rank against.
    only = Calibrator().estimate(np.array([1.0, 1.0]))
    assert only["estimated_roc_auc"] is None
    assert only["estimated_f1"] == 1.0


def test_rows_outside_the_edges_and_nan_scores_are_left_out() -> None:
    estimates = estimate_buckets(
        None, np.array([0.9, np.nan, 0.2, 0.7]), np.array([-1, 1, 2, 99]), [0, 10]
    )
    assert estimates[0]["estimated_rows"] == 1
    assert estimates[0]["estimated_accuracy"] == pytest.approx(0.8)


def test_explicit_predictions_override_the_half_threshold() -> None:
    scores = np.array([0.4, 0.4])
    default = Calibrator().estimate(scores)
    flipped = Calibrator().estimate(scores, predictions=np.array([1, 1]))
    assert default["estimated_accuracy"] == pytest.approx(0.6)
    assert flipped["estimated_accuracy"] == pytest.approx(0.4)
