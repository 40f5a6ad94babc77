"""The web UI: server-rendered HTML pages over the same services the API uses.

It owns the page routes (``install_pages``), their Jinja2 templates and static files.
Pages call the services in-process, never the REST API, and work offline (no CDN).
"""

from corral.web.pages import install_pages

__all__ = ["install_pages"]
