"""``podmill mcp``: podmill's MCP server over stdio, for an AI assistant on this machine.

The assistant starts it as a subprocess (docs/mcp.md has the config snippet) and talks
JSON-RPC over its stdin/stdout. It reads the embedded data dir ``podmill run`` wrote —
every episode, nothing written, like ``podmill view`` — so its ``submit_url`` tool says
how to process a URL instead of queueing it. ``podmill serve`` serves the same tools
at ``/mcp`` (streamable HTTP) for many tenants, behind the API keys.
"""

from __future__ import annotations

from podmill.cli import settings as cli_settings
from podmill.cli.options import ConfigOpt, DataDirOpt, DbOpt, LogLevelOpt


def mcp(
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    log_level: LogLevelOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve search, episodes, transcripts and digests to an AI assistant over stdio
    (MCP; read-only over what `podmill run` made)."""
    from podmill.cli.view import check_schema
    from podmill.errors import require

    require("mcp", "mcp", "podmill mcp")
    require("fastapi", "mcp", "podmill mcp")
    # stdout is the protocol's: logs go to stderr, warnings and errors only by default
    cli = {"db": db, "data_dir": data_dir, "log_level": log_level or "WARNING"}
    settings = cli_settings.load(config, **cli)
    url = cli_settings.existing_database(
        settings, "run `podmill run FEED_OR_FILE` (or `podmill demo`) first"
    )
    check_schema(url, "podmill mcp")
    from podmill.api.mcp_tools import run_stdio

    run_stdio(settings)
