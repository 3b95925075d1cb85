"""Tenants and their API keys: create, list, revoke, and which tenant a key belongs to.

Only a key's hash is stored; a key is shown once, when it is made.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from podmill.platform.context import Part
from podmill.platform.errors import Conflict, Invalid, NotFound
from podmill.platform.tables import KEYS, TENANTS
from podmill.storage.models import utcnow

KEY_PREFIX = "pm_"
# the admin tenant of a single user: every request of `podmill serve --no-auth`, and
# the tenant of a tenant-scoped CLI command not given --tenant (`podmill subscribe`)
LOCAL_TENANT = "local"


@dataclass(frozen=True)
class Tenant:
    id: int
    name: str
    is_admin: bool
    # `podmill view`'s reader of an embedded data dir (no tenants there): it sees the
    # whole catalog, and nothing is written for it (platform/episodes.py)
    sees_all: bool = False


def hash_key(key: str) -> str:
    """What is stored for a key: its SHA-256. Keys carry 256 random bits, so a plain
    hash is enough (no salt or slow hash: nothing to brute-force)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and the prefix shown in listings (``pm_`` + 8 characters)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:11]


class Tenants(Part):
    """Tenants, keys and authentication."""

    def create_tenant(self, name: str, *, admin: bool = False) -> Tenant:
        name = name.strip()
        if not name or len(name) > 100:
            raise Invalid(f"tenant name {name!r}: use 1 to 100 characters", code="invalid_tenant")
        with self.engine.begin() as conn:
            if conn.execute(select(TENANTS.c.id).where(TENANTS.c.name == name)).first():
                raise Conflict(f"tenant {name!r} exists already")
            tenant_id = conn.execute(
                TENANTS.insert().values(
                    name=name,
                    is_admin=admin,
                    webhook_secret=secrets.token_hex(32),
                    created_at=utcnow(),
                )
            ).inserted_primary_key[0]
        return Tenant(tenant_id, name, admin)

    def tenant(self, name: str) -> Tenant | None:
        with self.reader.connect() as conn:
            row = conn.execute(select(TENANTS).where(TENANTS.c.name == name)).first()
        return Tenant(row.id, row.name, row.is_admin) if row else None

    def me(self, tenant: Tenant) -> dict[str, Any]:
        """The tenant's name, role and webhook signing secret."""
        with self.reader.connect() as conn:
            secret = conn.execute(
                select(TENANTS.c.webhook_secret).where(TENANTS.c.id == tenant.id)
            ).scalar_one()
        role = "admin" if tenant.is_admin else "member"
        return {"tenant": tenant.name, "role": role, "webhook_secret": secret}

    def ensure_tenant(self, name: str, *, admin: bool) -> Tenant:
        return self.tenant(name) or self.create_tenant(name, admin=admin)

    def create_key(self, tenant_name: str) -> tuple[int, str]:
        """A new key for ``tenant_name``: ``(key id, key)``. Only the hash is stored."""
        tenant = self.tenant(tenant_name)
        if tenant is None:
            raise NotFound(
                f"no tenant {tenant_name!r}: create it with `podmill tenants create NAME`"
            )
        key, prefix = new_key()
        with self.engine.begin() as conn:
            key_id = conn.execute(
                KEYS.insert().values(
                    tenant_id=tenant.id, prefix=prefix, key_hash=hash_key(key), created_at=utcnow()
                )
            ).inserted_primary_key[0]
        return key_id, key

    def revoke_key(self, key_id: int) -> bool:
        """Revoke key ``key_id``; ``False`` if there is no such key or it was revoked."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(KEYS)
                .where(KEYS.c.id == key_id, KEYS.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return result.rowcount > 0

    def list_keys(self) -> list[dict[str, Any]]:
        with self.reader.connect() as conn:
            rows = conn.execute(
                select(
                    KEYS.c.id,
                    TENANTS.c.name.label("tenant"),
                    KEYS.c.prefix,
                    KEYS.c.created_at,
                    KEYS.c.revoked_at,
                )
                .join(TENANTS, TENANTS.c.id == KEYS.c.tenant_id)
                .order_by(KEYS.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def key_tenant(self, key_id: int) -> Tenant | None:
        """The tenant of API key ``key_id`` while the key is live (a browser session
        holds the id of the key it logged in with: revoking the key ends the session)."""
        with self.reader.connect() as conn:
            row = conn.execute(
                select(TENANTS.c.id, TENANTS.c.name, TENANTS.c.is_admin)
                .join(KEYS, KEYS.c.tenant_id == TENANTS.c.id)
                .where(KEYS.c.id == key_id, KEYS.c.revoked_at.is_(None))
            ).first()
        return Tenant(row.id, row.name, row.is_admin) if row else None

    def authenticate_key(self, key: str) -> tuple[int, Tenant] | None:
        """``(key id, tenant)`` of a live key, or ``None``: the login form's check."""
        with self.reader.connect() as conn:
            row = conn.execute(
                select(KEYS.c.id.label("key_id"), TENANTS.c.id, TENANTS.c.name, TENANTS.c.is_admin)
                .join(KEYS, KEYS.c.tenant_id == TENANTS.c.id)
                .where(KEYS.c.key_hash == hash_key(key), KEYS.c.revoked_at.is_(None))
            ).first()
        return (row.key_id, Tenant(row.id, row.name, row.is_admin)) if row else None

    def authenticate(self, key: str) -> Tenant | None:
        """The tenant of a live key, or ``None`` (unknown or revoked)."""
        found = self.authenticate_key(key)
        return None if found is None else found[1]
