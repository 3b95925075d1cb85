"""``POST /subscriptions/opml`` (import a podcast app's export) and
``GET /subscriptions.opml`` (export this tenant's subscriptions): docs/opml.md."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from podmill.api.auth import PlatformDep, TenantDep
from podmill.api.errors import ERROR_SCHEMA, Problem
from podmill.api.schemas import OpmlImport
from podmill.api.validation import feed_validations
from podmill.errors import MissingExtraError
from podmill.feeds.opml import OPML_MEDIA_TYPE, InvalidOpml, OpmlList, read_opml

router = APIRouter(tags=["subscriptions"], responses={401: ERROR_SCHEMA})

# What an OPML file is sent as: its own type, the XML ones, or "just bytes" (curl
# --data-binary without -H sends application/x-www-form-urlencoded: refused, it is a
# form, not a file).
OPML_BODY_TYPES = frozenset(
    {OPML_MEDIA_TYPE, "application/xml", "text/xml", "text/plain", "application/octet-stream"}
)
_BINARY = {"type": "string", "format": "binary"}
_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "the OPML file: the body itself, or a multipart upload (field 'file')",
        "content": {
            **{media: {"schema": _BINARY} for media in sorted(OPML_BODY_TYPES)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": _BINARY},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post(
    "/subscriptions/opml",
    response_model=OpmlImport,
    openapi_extra=_IMPORT_BODY,
    responses={
        400: ERROR_SCHEMA,
        413: ERROR_SCHEMA,
        415: ERROR_SCHEMA,
        422: ERROR_SCHEMA,
        429: ERROR_SCHEMA,
        501: ERROR_SCHEMA,
    },
)
async def import_opml(request: Request, service: PlatformDep, tenant: TenantDep) -> Any:
    """Subscribe to every feed of an OPML list (a podcast app's export), sent as the
    body (``Content-Type: text/x-opml``, an XML type or ``application/octet-stream``)
    or as a multipart upload (field ``file``), at most ``server.max_body_bytes``.

    Each outline is imported as ``POST /subscriptions`` would subscribe to its
    ``xmlUrl``; one that cannot be (no ``xmlUrl``, not http(s), a duplicate, a URL
    that is not a usable feed) is listed under ``rejected`` with its reason, and the
    others still import. 422 ``invalid_opml`` when the file is not OPML at all (nothing
    imported). Counts as one of the tenant's ``server.validations_per_tenant``
    validations while it runs (429 beyond them)."""
    data = await _opml_bytes(request)
    opml = await run_in_threadpool(_read, data)
    return await feed_validations(request).run(tenant, service.import_opml, tenant, opml)


@router.get(
    "/subscriptions.opml",
    response_class=Response,
    responses={
        200: {
            "description": "the tenant's subscriptions as OPML 2.0",
            "content": {OPML_MEDIA_TYPE: {"schema": {"type": "string"}}},
        }
    },
)
def export_opml(service: PlatformDep, tenant: TenantDep) -> Response:
    """This tenant's subscriptions as an OPML 2.0 list (``text/x-opml``), oldest first:
    one ``type="rss"`` outline per feed with its ``title`` and ``xmlUrl``, what podcast
    apps (and ``POST /subscriptions/opml``) import."""
    return Response(
        service.export_opml(tenant),
        media_type=OPML_MEDIA_TYPE,
        headers={"Content-Disposition": 'attachment; filename="subscriptions.opml"'},
    )


def _read(data: bytes) -> OpmlList:
    try:
        return read_opml(data)
    except InvalidOpml as exc:
        raise Problem(422, "invalid_opml", str(exc)) from None
    except MissingExtraError as exc:  # a server installed before listparser joined the extra
        raise Problem(501, "missing_extra", str(exc)) from None


async def _opml_bytes(request: Request) -> bytes:
    """The OPML file of the request: its body, or the multipart field ``file``. The
    body was bounded before it was read (api/bodies.py: ``server.max_body_bytes``)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in OPML_BODY_TYPES or content_type.endswith("+xml"):
        return await request.body()
    if content_type != "multipart/form-data":
        raise Problem(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type or 'missing'!r}: send the OPML file as the body with "
            f"Content-Type: {OPML_MEDIA_TYPE}, or as a multipart/form-data upload with a "
            "'file' field",
        )
    try:
        form = await request.form(max_files=1, max_fields=2)
    except Exception as exc:  # starlette's MultiPartException and parser errors
        raise Problem(400, "invalid_upload", f"malformed multipart body: {exc}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Problem(
                422, "invalid_upload", "a multipart upload needs a 'file' field with the OPML"
            )
        return await upload.read()
    finally:
        await form.close()
