"""docs/api.md lists the routes ``podmill serve`` has, and only those.

Both ways: every route a client can call (the OpenAPI schema's, plus ``/metrics``) is
documented as ``METHOD /path`` in docs/api.md, and every ``METHOD /path`` docs/api.md
names is a route of the app built as tests/api builds it (``create_app(settings)``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from podmill.storage.db import upgrade

from support.api import make_settings
from support.paths import ROOT

pytest.importorskip("fastapi", reason="pip install 'podmill[server]'")

from podmill.api.app import create_app

API_DOC = ROOT / "docs" / "api.md"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_ROUTE = re.compile(rf"`({'|'.join(_METHODS)}) (/[^`\s?]*)[^`]*`")


def _shape(path: str) -> str:
    """``/jobs/{job_id}`` and ``/jobs/{id}`` are one route."""
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def documented(text: str) -> dict[tuple[str, str], int]:
    """(method, route shape) → the line docs/api.md first names it on."""
    found: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        for method, path in _ROUTE.findall(line):
            found.setdefault((method, _shape(path)), number)
    return found


def _enum_expanded(path: str, method: str, schema: dict[str, Any]) -> list[str]:
    """A path parameter with a fixed set of values (``{action}``: pause, resume) is one
    route per value, as a client calls it."""
    operation = schema["paths"].get(path, {}).get(method.lower(), {})
    paths = [path]
    for parameter in operation.get("parameters", []):
        values = parameter.get("schema", {}).get("enum")
        if parameter.get("in") == "path" and values:
            token = "{" + parameter["name"] + "}"
            paths = [p.replace(token, str(v)) for p in paths for v in values]
    return paths


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], bool]:
    """(method, route shape) → whether a client is meant to call it (in the OpenAPI
    schema, or /metrics)."""
    import fastapi.routing

    tmp = tmp_path_factory.mktemp("api")
    url = f"sqlite:///{tmp / 'podmill.db'}"
    upgrade(url)
    app = create_app(make_settings(tmp, url))
    schema = app.openapi()
    routes: dict[tuple[str, str], bool] = {}
    # FastAPI 0.16x keeps included routers nested; iter_route_contexts flattens them
    flat = getattr(fastapi.routing, "iter_route_contexts", lambda routes: routes)
    for route in flat(app.routes):
        for method in sorted((getattr(route, "methods", None) or set()) - {"HEAD"}):
            endpoint = getattr(route, "route", route)
            in_schema = bool(getattr(endpoint, "include_in_schema", False))
            for path in _enum_expanded(route.path, method, schema):
                key = (method, _shape(path))
                routes[key] = routes.get(key, False) or in_schema or path == "/metrics"
    return routes


def test_the_app_has_the_routes_this_test_reads() -> None:
    """So a change in how routes are listed cannot make both checks pass vacuously."""
    assert ("GET", "/jobs/{}") in documented(API_DOC.read_text(encoding="utf-8"))


def test_every_route_of_the_app_is_in_docs_api_md(
    app_routes: dict[tuple[str, str], bool],
) -> None:
    assert ("POST", "/admin/queues/{}/resume") in app_routes
    assert ("GET", "/metrics") in app_routes
    doc = documented(API_DOC.read_text(encoding="utf-8"))
    missing = sorted(key for key, api in app_routes.items() if api and key not in doc)
    assert not missing, "routes docs/api.md does not list:\n" + "\n".join(
        f"  {method} {path}" for method, path in missing
    )


def test_every_route_docs_api_md_names_exists(app_routes: dict[tuple[str, str], bool]) -> None:
    doc = documented(API_DOC.read_text(encoding="utf-8"))
    unknown = sorted((line, m, p) for (m, p), line in doc.items() if (m, p) not in app_routes)
    assert not unknown, "docs/api.md names routes the app does not have:\n" + "\n".join(
        f"  docs/api.md:{line}: {method} {path}" for line, method, path in unknown
    )


def test_a_route_shape_ignores_parameter_names_and_queries() -> None:
    text = (
        "| `GET /jobs?status=&limit=` | `GET /feeds`, `GET /feeds/{id}` |\n`POST /x/{a}/b {json}`"
    )
    assert documented(text) == {
        ("GET", "/jobs"): 1,
        ("GET", "/feeds"): 1,
        ("GET", "/feeds/{}"): 1,
        ("POST", "/x/{}/b"): 2,
    }
