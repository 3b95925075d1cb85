"""Bearer API keys and roles. A key names a tenant; a tenant is an admin or a member.

``podmill serve --no-auth`` (loopback only) serves every request as the built-in admin
tenant ``local``: for a single user on their own machine.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from podmill.api.errors import Problem
from podmill.platform import Platform, Tenant
from podmill.platform.tenants import LOCAL_TENANT as LOCAL_TENANT  # the routes' name

bearer = HTTPBearer(
    auto_error=False,
    description="an API key: `podmill keys create TENANT` prints one",
)


def platform(request: Request) -> Platform:
    """The app's one :class:`Platform`."""
    return request.app.state.platform


# what a route declares it needs: `service: PlatformDep, tenant: TenantDep`
PlatformDep = Annotated[Platform, Depends(platform)]
# the bearer scheme is declared so OpenAPI shows it; the header is read by authenticate
_Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def current_tenant(request: Request, _credentials: _Credentials) -> Tenant:
    """The tenant of the request's key; 401 when it is missing, unknown or revoked."""
    # A request with a body was authenticated before its body was read (api/bodies.py).
    known: Tenant | None = getattr(request.state, "tenant", None)
    if known is not None:
        return known
    return await authenticate(request.app.state, request.headers.get("authorization"))


async def authenticate(state: Any, authorization: str | None) -> Tenant:
    """The tenant of an ``Authorization: Bearer KEY`` header value, given the app's
    ``state``; raises a 401 :class:`Problem` when the key is missing, unknown or revoked."""
    local: Tenant | None = state.local_tenant
    if local is not None:
        return local
    scheme, _, key = (authorization or "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Problem(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer KEY' "
            "(an admin creates keys with `podmill keys create TENANT`)",
        )
    tenant = await run_in_threadpool(state.platform.authenticate, key)
    if tenant is None:
        raise Problem(401, "unauthorized", "unknown or revoked API key: ask an admin for a new one")
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]


async def admin_tenant(tenant: TenantDep) -> Tenant:
    """The tenant, if it is an admin; 403 for members."""
    if not tenant.is_admin:
        raise Problem(
            403, "forbidden", f"tenant {tenant.name!r} is a member; this route is for admins"
        )
    return tenant


AdminDep = Annotated[Tenant, Depends(admin_tenant)]
