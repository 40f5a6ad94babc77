"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from corral._version import __version__
from corral.api.auth import Authenticator, refresh_forever
from corral.api.errors import install_error_handlers
from corral.api.schedule import compact_forever, evaluate_forever
from corral.config import Settings
from corral.wiring import Corral, open_corral


class CorralApp(FastAPI):
    """FastAPI behind Corral's ``FrontDoor``: predictions skip FastAPI's middleware stack."""

    front_door: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front_door is None:
            await super().__call__(scope, receive, send)
        else:
            await self.front_door(scope, receive, send)


def create_app(
    settings: Settings | None = None, corral: Corral | None = None, *, schedule: bool = True
) -> FastAPI:
    """Build the app on a wired Corral (opened from ``settings`` when not given).

    ``schedule`` runs the objective evaluations (one process of a ``--workers`` server does).
    """
    from corral.api.docs import install_docs
    from corral.api.inference import FrontDoor
    from corral.api.routes import aliases, audit, identity, models, monitoring, serving

    owned = corral is None
    wired = corral or open_corral(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = wired.gateway
        recorder = gateway.recorder
        if recorder is not None:
            recorder.start()
        watcher = asyncio.create_task(gateway.watch())
        seconds = wired.settings.monitor_evaluate_seconds
        evaluator = (
            asyncio.create_task(evaluate_forever(wired, seconds))
            if schedule and seconds > 0
            else None
        )
        compactor = asyncio.create_task(compact_forever(wired)) if schedule else None
        # Revocations and grant changes made by other processes reach this one's token cache.
        refresher = asyncio.create_task(refresh_forever(wired, wired.settings.route_poll_seconds))
        try:
            yield
        finally:
            for task in (evaluator, compactor, refresher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            gateway.stop_watching()
            await watcher
            await gateway.aclose()
            await wired.aclose()  # rate-limit storage connections belong to this loop
            if recorder is not None:
                # Every answered request's log rows are written before the process exits.
                await asyncio.to_thread(recorder.close if owned else recorder.flush)
            if owned:
                wired.close()

    app = CorralApp(
        title="Corral",
        version=__version__,
        description="Registry, serving and monitoring of models — the REST API.",
        lifespan=lifespan,
        docs_url=None,  # install_docs: the same pages without a CDN
        redoc_url=None,
    )
    app.state.corral = wired
    install_error_handlers(app)
    app.include_router(models.router)
    app.include_router(aliases.router)
    app.include_router(serving.router)
    app.include_router(audit.router)
    app.include_router(monitoring.router)
    app.include_router(identity.router)
    app.front_door = FrontDoor(
        partial(FastAPI.__call__, app),
        gateway=lambda: wired.gateway,
        max_request_bytes=wired.settings.max_request_bytes,
        authenticator=Authenticator(lambda: wired.identity, wired.settings.anonymous_role),
        gatekeeper=wired.gatekeeper,  # built now: a bad rate-limit setting fails at start
        max_json_depth=wired.settings.max_json_depth,
    )
    from corral.web import install_pages

    install_docs(app)  # before install_pages: /static/api-docs comes before /static
    install_pages(app)
    return app
