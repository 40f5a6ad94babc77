"""Monitoring's errors; each names the objective, alert or webhook it is about."""

from __future__ import annotations

from corral.errors import Conflict, NotFound


class ObjectiveNotFound(NotFound):
    def __init__(self, objective_id: int, model: str | None = None) -> None:
        of = f" of model '{model}'" if model is not None else ""
        super().__init__(
            f"objective {objective_id}{of} does not exist; list them with "
            "`corral monitor objectives`"
        )
        self.objective_id = objective_id


class AlertNotFound(NotFound):
    def __init__(self, alert_id: int) -> None:
        super().__init__(f"alert {alert_id} does not exist; list them with `corral monitor alerts`")
        self.alert_id = alert_id


class WebhookNotFound(NotFound):
    def __init__(self, webhook_id: int) -> None:
        super().__init__(f"webhook {webhook_id} does not exist")
        self.webhook_id = webhook_id


class AlertAlreadyOpen(Conflict):
    """Another alert of the objective (or source) is open: at most one is, so breaches are
    deduplicated."""

    def __init__(self, objective_id: int, source: str = "") -> None:
        of = f"'{source}'" if source else f"objective {objective_id}"
        super().__init__(f"{of} already has an open alert; update that one instead")
        self.objective_id = objective_id
        self.source = source
