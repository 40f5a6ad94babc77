"""The quickstart demo: small scikit-learn models trained on data shipped with scikit-learn."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corral.errors import NotFound

Say = Callable[[str], None]


def _complete(client: Any, name: str) -> bool:
    """Whether a demo model exists whole; a half-built demo model is deleted."""
    try:
        model = client.get_model(name)
    except NotFound:
        return False
    if model.tags.get("demo") != "true":
        return True  # someone's own model of that name: never touch it
    if len(client.list_consumers(name)) == 2:
        return True
    client.delete_model(name)
    return False


def _datasets() -> dict[str, tuple[Any, str, str]]:
    from sklearn import datasets

    return {
        "iris-classifier": (
            datasets.load_iris(),
            "classification",
            "Iris species from sepal and petal measurements",
        ),
        "wine-classifier": (
            datasets.load_wine(),
            "classification",
            "Grape cultivar of a wine from its chemical analysis",
        ),
        "breast-cancer-screening": (
            datasets.load_breast_cancer(),
            "classification",
            "Malignant or benign tumour from digitised biopsy images",
        ),
        "diabetes-progression": (
            datasets.load_diabetes(),
            "regression",
            "Disease progression one year after baseline",
        ),
    }


def _candidates(task: str) -> list[tuple[dict[str, Any], Any]]:
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "regression":
        return [
            ({"model": "ridge", "alpha": "10"}, Ridge(alpha=10.0)),
            ({"model": "ridge", "alpha": "1"}, Ridge(alpha=1.0)),
            (
                {"model": "gbr", "n_estimators": "100"},
                GradientBoostingRegressor(n_estimators=100, random_state=0),
            ),
        ]
    return [
        (
            {"model": "logreg", "C": "0.01"},
            make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=500)),
        ),
        (
            {"model": "logreg", "C": "1"},
            make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)),
        ),
        (
            {"model": "random_forest", "n_estimators": "50"},
            RandomForestClassifier(n_estimators=50, random_state=0),
        ),
    ]


def _score(task: str, estimator: Any, x: Any, y: Any) -> dict[str, float]:
    from sklearn import metrics

    predicted = estimator.predict(x)
    if task == "regression":
        return {
            "mae": float(metrics.mean_absolute_error(y, predicted)),
            "rmse": float(metrics.root_mean_squared_error(y, predicted)),
            "r2": float(metrics.r2_score(y, predicted)),
        }
    return {
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "f1_macro": float(metrics.f1_score(y, predicted, average="macro")),
    }


def seed_demo(client: Any, say: Say = lambda _: None) -> list[str]:
    """Fill a Corral with demo models, versions, aliases, a config and consumers.

    Complete demo models are left alone, so running it twice changes nothing; a demo
    model left half-built by an interrupted run is rebuilt.
    """
    import skops.io
    from sklearn.model_selection import train_test_split

    created: list[str] = []
    for name, (bunch, task, description) in _datasets().items():
        if _complete(client, name):
            say(f"model '{name}' already exists: left as it is")
            continue
        client.create_model(
            name,
            description=description,
            task=task,
            framework="scikit-learn",
            license="BSD-3-Clause",
            source="internal",
            tags={"demo": "true", "dataset": name.split("-")[0]},
        )
        x_train, x_test, y_train, y_test = train_test_split(
            bunch.data, bunch.target, test_size=0.3, random_state=0
        )
        names = [str(n) for n in bunch.feature_names]
        example = [dict(zip(names, map(float, row), strict=True)) for row in x_test[:5]]
        numbers: list[int] = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, (params, estimator) in enumerate(_candidates(task)):
                estimator.fit(x_train, y_train)
                path = Path(tmp) / f"v{i + 1}" / "model.skops"
                path.parent.mkdir()
                skops.io.dump(estimator, path)
                version = client.register(
                    name,
                    path,
                    flavor="sklearn",
                    metrics=_score(task, estimator, x_test, y_test),
                    params=params,
                    tags={"trained_on": "sklearn-dataset"},
                    example=example,
                    description=f"{params['model']} trained by the quickstart demo",
                    parent_version=numbers[-1] if numbers else None,
                )
                numbers.append(version.number)
                say(f"registered {name} version {version.number} ({params['model']})")
        client.create_config(
            name, "default", {"batching": {"max_batch_rows": 64, "max_wait_ms": 2}}
        )
        client.create_config(
            name,
            "default",
            {"batching": {"max_batch_rows": 32, "max_wait_ms": 1}},
            comment="lower latency",
        )
        client.set_alias(name, "champion", numbers[0], reason="first release")
        client.set_alias(
            name, "champion", numbers[1], config="default", config_revision=1, reason="better"
        )
        client.set_alias(name, "champion", numbers[2], config="default", reason="try the newest")
        client.rollback_alias(name, "champion", reason="demo: newest was worse in production")
        client.set_alias(name, "challenger", numbers[2], reason="keep evaluating")
        client.create_consumer(
            "reporting", name, version=numbers[0], description="nightly report, pinned"
        )
        client.create_consumer(
            "web-app", name, alias="champion", description="follows the champion"
        )
        client.deprecate_version(
            name, numbers[0], "superseded by version 2; move off before next quarter"
        )
        _monitor(client, name, task, names, x_test, y_test)
        say(f"{name}: champion -> v{numbers[1]} (after a rollback), 2 consumers, monitored")
        created.append(name)
    return created


def _monitor(client: Any, name: str, task: str, names: list[str], x_test: Any, y_test: Any) -> None:
    """Objectives, some served traffic (the held-out rows) and its ground truth."""
    quality = "accuracy >= 0.8 over 1d, min 20" if task != "regression" else "r2 >= 0.3 over 1d"
    client.apply_monitoring(
        name,
        {
            "objectives": [
                quality,
                "p95_latency_ms <= 100 over 1h",
                "error_rate <= 0.01 over 1h",
                "drift_share <= 0.3 over 1d, min 20",
            ],
            "reference": "example",
        },
    )
    labels = []
    for start in range(0, len(x_test), 10):
        rows = [dict(zip(names, map(float, r), strict=True)) for r in x_test[start : start + 10]]
        answer = client.predict(name, rows)
        truth = y_test[start : start + 10]
        labels += [
            {"request_id": answer.request_id, "row": i, "label": float(value)}
            for i, value in enumerate(truth)
        ]
    client.send_feedback(name, labels)
