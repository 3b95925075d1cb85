"""Fixtures of the MCP server's tests: real data, real servers, the SDK's client.

Session-scoped, because real runs are slow: ``mcp_data`` is a data dir that ``podmill
run`` wrote from the demo feed (three episodes) and a second feed (one episode), as the
viewer's tests build it (support/browser.py: ``build_viewer_data``); ``mcp_site`` is
``podmill serve`` over a copy with tenants ``alice`` (the demo feed), ``bob`` (the other
feed) and ``root`` (admin, no subscriptions) (``start_site``). ``podmill mcp`` sessions
are opened by the tests themselves (support/mcp_client.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.browser import Site, ViewerData, build_viewer_data, start_site
from support.httpserver import TestHTTPServer

pytest.importorskip("mcp", reason="the MCP tests need the 'mcp' extra")


@pytest.fixture(scope="session")
def mcp_feeds() -> Iterator[TestHTTPServer]:
    with TestHTTPServer() as server:
        yield server


@pytest.fixture(scope="session")
def mcp_data(tmp_path_factory: pytest.TempPathFactory, mcp_feeds: TestHTTPServer) -> ViewerData:
    return build_viewer_data(tmp_path_factory.mktemp("mcp") / "data", mcp_feeds)


@pytest.fixture(scope="session")
def mcp_site(mcp_data: ViewerData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = start_site(mcp_data, tmp_path_factory.mktemp("mcp-serve"))
    try:
        yield site
    finally:
        site.stop()
