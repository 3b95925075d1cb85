"""The REST API behind ``podmill serve`` (docs/api.md).

``podmill.api.create_app(settings)`` builds it; FastAPI and uvicorn come with the
``server`` extra and are imported only when the API is built, so the CLI loads without.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from podmill.errors import require

        require("fastapi", "server", "the REST API")
        from podmill.api.app import create_app

        return create_app
    raise AttributeError(name)
