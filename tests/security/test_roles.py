"""Roles are enforced by the services: the SDK in local mode (``acting_as``) and a real server
with real tokens refuse and allow the same calls."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral import Client
from corral.access import Principal, Role, acting_as
from corral.api.app import create_app
from corral.config import Settings
from corral.errors import PermissionDenied, Unauthenticated
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import example_records, register_classifiers, training_data

ROWS = example_records(training_data(seed=3, rows=2)[0])


def on_clf(name: str, role: Role) -> Principal:
    return Principal(name=name, model_roles={"clf": role})


VIEWER = on_clf("vera", Role.VIEWER)
CONSUMER = on_clf("carl", Role.CONSUMER)
CONTRIBUTOR = on_clf("cora", Role.CONTRIBUTOR)
MAINTAINER = on_clf("mia", Role.MAINTAINER)
ADMIN = Principal(name="ada", global_role=Role.ADMIN)


@dataclass
class Home:
    client: Client
    corral: Corral
    tmp: Path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A local home with model 'clf' (versions 1 = champion and 2) and model 'other'."""
    tmp = tmp_path_factory.mktemp("roles")
    settings = Settings(home=tmp / "home", outbound_allow_private=True)
    with Client(settings=settings, actor="tester") as client:
        register_classifiers(client, tmp / "models")
        client.register("other", tmp / "models" / "v1", flavor="sklearn")
        wired = open_corral(settings)
        try:
            yield Home(client, wired, tmp)
        finally:
            wired.close()


# -- local mode: the SDK's calls as a principal --------------------------------------------


def test_local_mode_without_a_principal_acts_as_an_admin(home: Home) -> None:
    assert home.client.list_audit(limit=1).total > 0
    assert home.client.predict("clf", ROWS).version == 1


def test_a_route_the_gateway_cached_lets_no_stranger_through(home: Home) -> None:
    gateway = home.corral.gateway
    assert gateway.predict_sync("clf", ROWS).version == 1  # as the system: the route is cached
    with acting_as(Principal(name="stranger", model_roles={"other": Role.ADMIN})):
        with pytest.raises(PermissionDenied, match="model 'clf'"):
            gateway.resolve("clf")
        with pytest.raises(PermissionDenied, match="model 'clf'"):
            gateway.predict_sync("clf", ROWS)
    with acting_as(CONSUMER):
        assert gateway.predict_sync("clf", ROWS).version == 1


def test_a_viewer_reads_and_downloads_but_cannot_predict(home: Home) -> None:
    client = home.client
    with acting_as(VIEWER):
        assert client.get_model("clf").name == "clf"
        assert client.list_versions("clf").total == 2
        assert client.resolve("clf", "champion").version == 1
        assert [a.name for a in client.list_aliases("clf")] == ["champion"]
        client.download("clf", 1, home.tmp / "viewer-download")
        assert home.corral.monitoring.status("clf")["model"] == "clf"
        with pytest.raises(PermissionDenied, match="vera needs the consumer role on model 'clf'"):
            client.predict("clf", ROWS)
        with pytest.raises(PermissionDenied):
            home.corral.monitoring.record_feedback("clf", [{"request_id": "x", "label": 1}])
        with pytest.raises(PermissionDenied, match="model 'other'"):
            client.get_model("other")
    assert (home.tmp / "viewer-download" / "model.skops").exists()


def test_a_consumer_predicts_and_sends_feedback_but_cannot_move_aliases(home: Home) -> None:
    client = home.client
    with acting_as(CONSUMER):
        assert client.predict("clf", ROWS).version == 1
        receipt = home.corral.monitoring.record_feedback("clf", [{"request_id": "x", "label": 1}])
        assert receipt.received == 1
        with pytest.raises(PermissionDenied, match="maintainer role on model 'clf'"):
            client.set_alias("clf", "champion", 2, reason="try")
        with pytest.raises(PermissionDenied):
            client.predict("other", ROWS)
    assert client.get_alias("clf", "champion").version == 1


def test_a_contributor_registers_versions_but_cannot_move_aliases(home: Home) -> None:
    client = home.client
    folder = home.tmp / "models" / "v1"
    with acting_as(CONTRIBUTOR):
        version = client.register("clf", folder, flavor="sklearn", create_model=False)
        assert version.created_by == "tester"  # the SDK's actor; the server uses the principal
        with pytest.raises(PermissionDenied, match="maintainer"):
            client.set_alias("clf", "champion", version.number, reason="mine")
        # Naming an alias at registration is moving it: refused before any version is made.
        with pytest.raises(PermissionDenied, match="maintainer"):
            client.register("clf", folder, flavor="sklearn", alias="champion")
        with pytest.raises(PermissionDenied, match="contributor"):
            client.register("other", folder, flavor="sklearn", create_model=False)
        with pytest.raises(PermissionDenied, match="contributor"):
            client.create_model("brand-new")  # creating models needs the role globally
    assert client.list_versions("clf").total == version.number
    assert client.get_alias("clf", "champion").version == 1


def test_a_maintainer_moves_aliases_on_its_model_only(home: Home) -> None:
    client = home.client
    with acting_as(MAINTAINER):
        client.set_alias("clf", "staging", 2, reason="review")
        client.create_consumer("billing", "clf", alias="staging")
        client.create_config("clf", "fast", {"batching": {"max_batch_rows": 8}})
        home.corral.monitoring.create_objective("clf", "accuracy >= 0.5 over 1d")
        with pytest.raises(PermissionDenied, match="model 'other'"):
            client.set_alias("other", "staging", 1, reason="not mine")
        with pytest.raises(PermissionDenied, match="admin"):
            client.trust_version("clf", 1, reason="looked at it")
        with pytest.raises(PermissionDenied, match="admin"):
            client.delete_model("clf")
        with pytest.raises(PermissionDenied, match="admin"):
            client.list_audit()
    assert client.get_alias("clf", "staging").version == 2


def test_the_owner_of_a_model_maintains_it_without_a_grant(home: Home) -> None:
    client = home.client
    creator = Principal(name="olga", global_role=Role.CONTRIBUTOR)
    with acting_as(creator):
        model = client.create_model("olgas-model")
        assert model.owner == "olga"  # the authenticated creator, not the SDK's actor
        client.register("olgas-model", home.tmp / "models" / "v1", flavor="sklearn")
        client.set_alias("olgas-model", "champion", 1, reason="owner")
        client.update_model("olgas-model", description="mine")
        with pytest.raises(PermissionDenied):
            client.set_alias("clf", "champion", 1, reason="not the owner")
    # The owning team's members maintain it too (reading it needs their viewer role).
    team_member = Principal(name="tom", global_role=Role.VIEWER, teams=frozenset({"ml"}))
    client.update_model("olgas-model", owner="ml")
    with acting_as(team_member):
        client.set_alias("olgas-model", "stable", 1, reason="the owning team")
        with pytest.raises(PermissionDenied, match="admin"):
            client.delete_model("olgas-model")
    # A read-only token of an owner cannot write, even on its own model.
    read_only = dataclasses.replace(team_member, read_only=True)
    with acting_as(read_only), pytest.raises(PermissionDenied, match="read-only"):
        client.set_alias("olgas-model", "stable", 1, reason="read-only")


def test_an_admin_trusts_and_releases(home: Home) -> None:
    client = home.client
    with acting_as(ADMIN):
        assert client.trust_version("clf", 2, reason="reviewed").trusted
        client.set_quarantine("clf", 2, quarantined=True, reason="suspicious")
        assert not client.set_quarantine("clf", 2, quarantined=False, reason="fine").quarantined
        assert client.list_audit(action="version.release").total >= 1
    with acting_as(MAINTAINER), pytest.raises(PermissionDenied, match="admin"):
        client.set_quarantine("clf", 2, quarantined=False, reason="mine")


def test_lists_show_only_the_models_a_principal_can_see(home: Home) -> None:
    client = home.client
    with acting_as(VIEWER):
        assert [m.name for m in client.list_models().items] == ["clf"]
        assert client.list_models().total == 1
        found = client.search_versions()
        assert {v.model for v in found.items} == {"clf"}
        assert found.total == client.list_versions("clf").total
        assert {c.model for c in client.list_consumers()} <= {"clf"}
    scoped = Principal(name="sam", global_role=Role.ADMIN, scope=frozenset({"other"}))
    with acting_as(scoped):
        assert [m.name for m in client.list_models().items] == ["other"]
        with pytest.raises(PermissionDenied, match="scoped"):
            client.get_model("clf")
        with pytest.raises(PermissionDenied, match="scoped"):
            client.create_model("not-in-scope")
    with acting_as(Principal(name="nobody")), pytest.raises(PermissionDenied):
        client.list_models()
    anonymous = Principal(name="anonymous", authenticated=False)
    with acting_as(anonymous), pytest.raises(Unauthenticated, match="needs a token"):
        client.list_models()


def test_a_read_only_principal_reads_and_predicts_but_writes_nothing(home: Home) -> None:
    client = home.client
    reader = Principal(name="rita", global_role=Role.ADMIN, read_only=True)
    with acting_as(reader):
        assert client.get_model("clf").name == "clf"
        assert client.predict("clf", ROWS).version == 1
        with pytest.raises(PermissionDenied, match="read-only"):
            client.update_model("clf", description="changed")
        with pytest.raises(PermissionDenied, match="read-only"):
            client.begin_upload()


def test_monitoring_lists_are_filtered_and_global_webhooks_are_for_admins(home: Home) -> None:
    monitoring = home.corral.monitoring
    monitoring.create_webhook("http://127.0.0.1:9/all", "s" * 32)
    monitoring.create_webhook("http://127.0.0.1:9/other", "s" * 32, model="other")
    with acting_as(MAINTAINER):
        mine = monitoring.create_webhook("http://127.0.0.1:9/clf", "s" * 32, model="clf")
        assert {w.model for w in monitoring.list_webhooks()} == {"clf"}
        assert all(a.model == "clf" for a in monitoring.list_alerts())
        with pytest.raises(PermissionDenied, match="admin"):
            monitoring.create_webhook("http://127.0.0.1:9/x", "s" * 32)
        with pytest.raises(PermissionDenied, match="admin"):
            monitoring.list_deliveries()
        monitoring.delete_webhook(mine.id)
    with acting_as(VIEWER), pytest.raises(PermissionDenied, match="maintainer"):
        monitoring.apply("clf", {"objectives": []})


# -- a real server: the same refusals with real tokens -----------------------------------------


@dataclass
class Served:
    url: str
    tokens: dict[str, str]
    tmp: Path

    def http(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def sdk(self, who: str) -> Client:
        return Client(self.url, token=self.tokens[who], cache_dir=self.tmp / "cache" / who)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server (no anonymous access) on a home like ``home``'s, with a token per role."""
    tmp = tmp_path_factory.mktemp("served")
    settings = Settings(home=tmp / "home", anonymous_role="none", monitor_evaluate_seconds=0)
    with Client(settings=settings, actor="seeder") as client:
        register_classifiers(client, tmp / "models")
        client.register("other", tmp / "models" / "v1", flavor="sklearn")
    people: dict[str, list[tuple[Role, str | None]]] = {
        "vera": [(Role.VIEWER, "clf")],
        "carl": [(Role.CONSUMER, "clf")],
        "cora": [(Role.CONTRIBUTOR, "clf")],
        "mia": [(Role.MAINTAINER, "clf"), (Role.VIEWER, "other")],
        "olga": [(Role.CONTRIBUTOR, None)],
        "ada": [(Role.ADMIN, None)],
        "gil": [(Role.VIEWER, None)],
    }
    wired = open_corral(settings)
    try:
        identity = wired.identity
        tokens = {}
        for name, grants in people.items():
            identity.create_user(name)
            for role, model in grants:
                identity.grant(role, user=name, model=model)
            _, tokens[name] = identity.create_token(name, name="roles")
        _, tokens["gil-scoped"] = identity.create_token("gil", name="scoped", models=["clf"])
        _, tokens["mia-read-only"] = identity.create_token("mia", name="ro", read_only=True)
    finally:
        wired.close()
    with ServerThread(create_app(settings)) as server:
        yield Served(server.url, tokens, tmp)


PREDICT = {"inputs": ROWS}
_MATRIX = training_data(seed=3, rows=2)[0]
OIP = {
    "inputs": [
        {"name": "x", "shape": [2, 20], "datatype": "FP64", "data": _MATRIX.ravel().tolist()}
    ]
}


def test_over_http_without_a_token_everything_but_the_probes_is_401(served: Served) -> None:
    with served.http(None) as http:
        assert http.get("/v2/health/ready").status_code == 200
        refused = http.get("/api/v1/models/clf")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert http.post("/api/v1/models/clf/predict", json=PREDICT).status_code == 401


def test_over_http_a_viewer_reads_but_cannot_predict(served: Served) -> None:
    with served.http("vera") as http:
        assert http.get("/api/v1/models/clf").json()["name"] == "clf"
        assert http.get("/api/v1/models/clf/versions/1/files/model.skops").status_code == 200
        refused = http.post("/api/v1/models/clf/predict", json=PREDICT)
        assert refused.status_code == 403
        assert refused.json()["code"] == "permission_denied"
        assert "consumer" in refused.json()["detail"]
        oip = http.post("/v2/models/clf/infer", json=OIP)
        assert oip.status_code == 403
        assert "error" in oip.json()
        assert http.get("/api/v1/models/other").status_code == 403


def test_over_http_a_consumer_predicts_but_cannot_set_aliases(served: Served) -> None:
    with served.http("carl") as http:
        answer = http.post("/api/v1/models/clf/predict", json=PREDICT)
        assert answer.status_code == 200, answer.text
        moved = http.put("/api/v1/models/clf/aliases/champion", json={"version": 2})
        assert moved.status_code == 403
        assert http.get("/api/v1/models/clf/aliases/champion").json()["version"] == 1


def test_over_http_a_contributor_registers_but_cannot_move_aliases(served: Served) -> None:
    with served.sdk("cora") as client:
        version = client.register("clf", served.tmp / "models" / "v1", create_model=False)
        assert version.created_by == "cora"  # the token's user, whatever the client claims
        with pytest.raises(PermissionDenied, match="maintainer"):
            client.set_alias("clf", "champion", version.number, reason="mine")
        with pytest.raises(PermissionDenied):
            client.create_model("cora-model")


def test_over_http_a_maintainer_moves_aliases_on_its_model_only(served: Served) -> None:
    with served.sdk("mia") as client:
        assert client.set_alias("clf", "staging", 2, reason="review").version == 2
        with pytest.raises(PermissionDenied, match="model 'other'"):
            client.set_alias("other", "staging", 1, reason="not mine")
        with pytest.raises(PermissionDenied, match="admin"):
            client.trust_version("clf", 1, reason="reviewed")
    events = served_audit(served, "alias.set")
    assert any(e["actor"] == "mia" and e["target"] == "model:clf/alias:staging" for e in events)


def test_over_http_the_creator_of_a_model_owns_and_maintains_it(served: Served) -> None:
    with served.sdk("olga") as client:
        version = client.register("olgas-model", served.tmp / "models" / "v1", alias="champion")
        assert client.get_model("olgas-model").owner == "olga"
        assert client.get_alias("olgas-model", "champion").version == version.number
        client.update_model("olgas-model", description="mine")
        with pytest.raises(PermissionDenied):
            client.set_alias("clf", "champion", 2, reason="not the owner")


def test_over_http_an_admin_trusts_and_releases(served: Served) -> None:
    with served.sdk("ada") as client:
        assert client.trust_version("clf", 2, reason="reviewed").trusted
        client.quarantine_version("clf", 2, "suspicious")
        assert not client.release_version("clf", 2, "looked again").quarantined
    with served.sdk("mia") as client, pytest.raises(PermissionDenied, match="admin"):
        client.release_version("clf", 2, "mine")


def test_over_http_a_scoped_token_sees_only_its_models(served: Served) -> None:
    with served.sdk("gil") as everything, served.sdk("gil-scoped") as scoped:
        assert {m.name for m in everything.list_models().items} >= {"clf", "other"}
        assert [m.name for m in scoped.list_models().items] == ["clf"]
        assert {v.model for v in scoped.search_versions().items} == {"clf"}
        with pytest.raises(PermissionDenied, match="scoped"):
            scoped.get_model("other")


def test_over_http_a_read_only_token_cannot_write(served: Served) -> None:
    with served.http("mia-read-only") as http:
        assert http.get("/api/v1/models/clf").status_code == 200
        refused = http.put("/api/v1/models/clf/aliases/staging", json={"version": 1})
        assert refused.status_code == 403
        assert "read-only" in refused.json()["detail"]


def served_audit(served: Served, action: str) -> list[dict[str, Any]]:
    with served.http("ada") as http:
        page = http.get("/api/v1/audit", params={"action": action}).json()
    return list(page["items"])
