"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from corral._version import __version__
from corral.api.errors import install_error_handlers
from corral.config import Settings
from corral.wiring import Corral, open_corral


def create_app(settings: Settings | None = None, corral: Corral | None = None) -> FastAPI:
    """Build the app on a wired Corral (opened from ``settings`` when not given)."""
    from corral.api.inference import FrontDoor
    from corral.api.routes import aliases, models, serving

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

    app = FastAPI(
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
    app.add_middleware(
        FrontDoor,
        gateway=lambda: wired.gateway,
        max_request_bytes=wired.settings.max_request_bytes,
    )
    from corral.web import install_pages

    install_pages(app)
    return app
