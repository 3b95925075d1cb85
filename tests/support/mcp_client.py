"""An MCP client from the official SDK (``mcp``), driven from synchronous tests.

    with stdio_session(data_dir) as mcp:          # spawns `python -m podmill mcp`
        result = mcp.call("search", {"query": "rose"})
    with http_session(server.url, key) as mcp:    # podmill serve's /mcp
        mcp.read("podmill://episodes/KEY")

The SDK is async; a blocking portal (anyio) runs its event loop in a thread and the
session stays open for the whole ``with`` block, so a test makes many calls over one
connection, as an assistant does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from support.api import podmill_env

TIMEOUT = 180  # seconds a call may take: the first search loads the embedding model


@dataclass
class SyncClient:
    """One open MCP session: ``call`` a tool, ``read`` a resource, ``list_*``."""

    portal: BlockingPortal
    client: Any

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        """The tool's ``CallToolResult`` (``is_error``, ``content``, ``structured_content``)."""
        return self.portal.call(self.client.call_tool, name, arguments or {})

    def ok(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """The structured result of a call that must succeed; its text content is the
        same JSON (what a model without structured output reads)."""
        result = self.call(name, arguments)
        assert not result.is_error, (name, arguments, result.content)
        [text] = [c.text for c in result.content if c.type == "text"]
        assert json.loads(text) == result.structured_content, text
        return result.structured_content

    def error(self, name: str, arguments: dict[str, Any] | None = None) -> str:
        """The message of a call that must fail as a tool error (``is_error``)."""
        result = self.call(name, arguments)
        assert result.is_error, (name, arguments, result.structured_content)
        return " ".join(c.text for c in result.content if c.type == "text")

    def read(self, uri: str) -> str:
        result = self.portal.call(self.client.read_resource, uri)
        [content] = result.contents
        return content.text

    def tools(self) -> dict[str, Any]:
        return {t.name: t for t in self.portal.call(self.client.list_tools).tools}

    def templates(self) -> list[str]:
        listed = self.portal.call(self.client.list_resource_templates)
        return [t.uri_template for t in listed.resource_templates]


@contextmanager
def _session(opened: Any) -> Iterator[SyncClient]:
    """``opened``, an async context manager that yields an SDK ``Client``, held open in a
    portal's event loop."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(opened) as client:
        yield SyncClient(portal, client)


def stdio_params(data_dir: Path, *extra: str) -> Any:
    """``python -m podmill mcp --data-dir DATA_DIR`` as the SDK launches a server."""
    from mcp import StdioServerParameters

    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "podmill", "mcp", "--data-dir", str(data_dir), *extra],
        env=podmill_env(),
    )


@contextmanager
def stdio_session(data_dir: Path) -> Iterator[SyncClient]:
    """A session with a real ``podmill mcp`` subprocess over ``data_dir``."""
    from mcp import Client

    with _session(Client(stdio_params(data_dir), read_timeout_seconds=TIMEOUT)) as client:
        yield client


@asynccontextmanager
async def _over_http(url: str, key: str | None) -> AsyncIterator[Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=TIMEOUT) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, read_timeout_seconds=TIMEOUT) as client:
            yield client


@contextmanager
def http_session(base_url: str, key: str | None) -> Iterator[SyncClient]:
    """A session with ``podmill serve``'s ``/mcp`` sending ``Authorization: Bearer KEY``."""
    with _session(_over_http(base_url + "/mcp", key)) as client:
        yield client
