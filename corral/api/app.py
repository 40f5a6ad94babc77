"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from corral._version import __version__
from corral.api.errors import install_error_handlers
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


def create_app(settings: Settings | None = None, corral: Corral | None = None) -> FastAPI:
    """Build the app on a wired Corral (opened from ``settings`` when not given)."""
    from corral.api.inference import FrontDoor
    from corral.api.routes import aliases, audit, models, serving

    owned = corral is None
    wired = corral or open_corral(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gateway = wired.gateway
        watcher = asyncio.create_task(gateway.watch())
        try:
            yield
        finally:
            gateway.stop_watching()
            await watcher
            await gateway.aclose()
            if owned:
                wired.close()

    app = CorralApp(
        title="Corral",
        version=__version__,
        description="Registry, serving and monitoring of models — the REST API.",
        lifespan=lifespan,
    )
    app.state.corral = wired
    install_error_handlers(app)
    app.include_router(models.router)
    app.include_router(aliases.router)
    app.include_router(serving.router)
    app.include_router(audit.router)
    app.front_door = FrontDoor(
        partial(FastAPI.__call__, app),
        gateway=lambda: wired.gateway,
        max_request_bytes=wired.settings.max_request_bytes,
    )
    from corral.web import install_pages

    install_pages(app)
    return app
