"""The monitoring domain: prediction logs, feedback, performance, drift, objectives, alerts.

Owns the entities and the rules (drift tests, estimated performance, objective states,
alert lifecycle) and ``MonitoringService``; declares the storage it needs as protocols
(``MonitoringStore``, ``LogStore``, ``Notifier``) that ``corral.store`` implements.
Imports no infrastructure: numpy and scipy do the arithmetic.
"""

from corral.monitoring.entities import (
    Alert,
    AlertState,
    Delivery,
    Evaluation,
    FeedbackReceipt,
    Objective,
    ObjectiveState,
    Webhook,
)

__all__ = [
    "Alert",
    "AlertState",
    "Delivery",
    "Evaluation",
    "FeedbackReceipt",
    "Objective",
    "ObjectiveState",
    "Webhook",
]
