"""``GET /search``: hybrid keyword + vector search over the tenant's episodes."""

from __future__ import annotations

from fastapi import APIRouter

from podmill.api.errors import ERROR_SCHEMA

router = APIRouter(tags=["search"], responses={401: ERROR_SCHEMA})
