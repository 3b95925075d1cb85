"""Browser sessions: a login form takes an API key and sets a signed cookie.

The cookie holds the id of the key that logged in and when, signed with HMAC-SHA256 by
the server's session secret; it never holds the key. Every request looks the key up
again (:meth:`Platform.key_tenant`), so revoking the key ends its sessions, and a
session older than :data:`MAX_AGE` is refused. The cookie is ``HttpOnly``,
``SameSite=Strict``, ``Path=/`` and ``Secure`` when the page was served over HTTPS.

State-changing forms carry a CSRF token: an HMAC of the session cookie under the same
secret (a second, derived key), checked on every POST a page handles; a token is only
good with the cookie it was made for.

The secret is ``server.session_secret`` when set, else a random one kept in
``DATA_DIR/session.key`` (created once, mode 0600), so every server process of one data
dir and every restart share it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "podmill_session"
MAX_AGE = 7 * 24 * 3600  # a week; then the login form again
SECRET_FILE = "session.key"


def session_secret(configured: str | None, data_dir: Path) -> bytes:
    """The signing secret: ``configured``, else the data dir's key file (made once)."""
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another server process made it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Sessions:
    """Issue and read session cookies and their CSRF tokens under one secret."""

    secret: bytes

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self.secret, purpose + b"\0" + data, hashlib.sha256).digest()

    def issue(self, key_id: int, *, now: float | None = None) -> str:
        """The cookie value of a session of key ``key_id`` started ``now``."""
        body = json.dumps({"k": key_id, "t": int(now if now is not None else time.time())})
        data = body.encode()
        return f"{_b64(data)}.{_b64(self._mac(b'session', data))}"

    def key_id(self, cookie: str | None, *, now: float | None = None) -> int | None:
        """The key id of a valid, unexpired session cookie, else ``None``."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".")
        try:
            data, given = _unb64(body), _unb64(mac)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(given, self._mac(b"session", data)):
            return None
        try:
            fields = json.loads(data)
            key_id, started = int(fields["k"]), int(fields["t"])
        except (ValueError, KeyError, TypeError):
            return None
        age = (now if now is not None else time.time()) - started
        return key_id if 0 <= age <= MAX_AGE else None

    def csrf(self, cookie: str) -> str:
        """The CSRF token of the forms shown to the session of ``cookie``."""
        return _b64(self._mac(b"csrf", cookie.encode()))

    def csrf_ok(self, cookie: str | None, token: str | None) -> bool:
        """Whether ``token`` is the CSRF token of ``cookie``."""
        if not cookie or not token:
            return False
        return hmac.compare_digest(token, self.csrf(cookie))
