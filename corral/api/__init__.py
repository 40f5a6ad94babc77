"""The HTTP surface: the FastAPI app factory, its routers and the problem+json error table."""

from corral.api.app import create_app

__all__ = ["create_app"]
