"""``GET /digest`` and ``GET /digests``: cross-feed digests for the tenant."""

from __future__ import annotations

from fastapi import APIRouter

from podmill.api.errors import ERROR_SCHEMA

router = APIRouter(tags=["digest"], responses={401: ERROR_SCHEMA})
