"""Platform commands: ``serve``, ``scheduler``, ``tenants`` and ``keys``.

Their database is the one of every command (:mod:`podmill.cli.settings`): ``--db``, else
the ``db`` setting / ``PODMILL_DB``, else ``DATA_DIR/podmill.db``; each creates or
migrates it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from podmill.cli import settings as cli_settings
from podmill.cli.options import (
    ConfigOpt,
    DataDirOpt,
    DbOpt,
    JsonOpt,
    LogFormatOpt,
    LogLevelOpt,
    MetricsHostOpt,
    QuietOpt,
    metrics_port_option,
    metrics_port_taken,
)
from podmill.cli.output import err, print_json, print_lines
from podmill.errors import PodmillError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from podmill.platform import Platform
    from podmill.settings import Settings

tenants_app = typer.Typer(help="Tenants of a shared install: create, list.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create (printed once), list, revoke.", no_args_is_help=True)

TenantArg = Annotated[str, typer.Argument(help="tenant name")]


def _platform(config: Path | None, db: str | None, data_dir: Path | None) -> Platform:
    """The platform service on the command's database, migrated to head."""
    return _migrated_platform(cli_settings.load(config, db=db, data_dir=data_dir))


def _migrated_platform(settings: Settings) -> Platform:
    from podmill.platform import Platform
    from podmill.storage import db as storage_db

    storage_db.upgrade(settings.database_url)
    return Platform(settings)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_address(host: str) -> tuple[str, str]:
    """``(address to bind, host as written in a URL)``: an IPv6 literal binds without
    brackets (``[::1]`` → ``::1``) and is written with them (``http://[::1]:8000``)."""
    address = host.strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    return address, f"[{address}]" if ":" in address else address


def check_port_free(host: str, url_host: str, port: int, *, single_process: bool) -> None:
    """Raise the one error line of ``serve`` when uvicorn could not listen on
    ``host:port``, by binding every address it would bind, as it binds them, and letting go.

    One process binds each address ``host`` resolves to (asyncio's ``create_server``);
    ``--workers N`` binds one socket in the parent, IPv6 when ``host`` has a colon. Both
    set ``SO_REUSEADDR``, so a port whose last connections linger in TIME_WAIT is free.
    """
    import socket

    if single_process:
        try:
            addresses = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise PodmillError(
                f"--host {host}: cannot resolve it ({exc.strerror}); give an address such "
                "as 127.0.0.1 or 0.0.0.0"
            ) from None
        targets = [(family, address) for family, _, _, _, address in addresses]
    else:
        targets = [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]
    for family, address in targets:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio binds it: IPv6 only, IPv4 apart
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise port_unavailable(url_host, port, exc) from None


def port_unavailable(url_host: str, port: int, exc: OSError) -> PodmillError:
    """The error line of a ``--port`` (or ``--host``) the server cannot listen on."""
    import errno

    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        advice = "another program is listening there: stop it, or choose a free port with --port N"
    elif exc.errno == errno.EACCES:
        advice = "ports below 1024 need privileges: choose one above with --port N"
    else:
        advice = "choose another address with --host or another port with --port N"
    return PodmillError(f"--port {port}: cannot listen on {url_host}:{port} ({reason}); {advice}")


def serve(
    host: Annotated[
        str, typer.Option(help="address to bind (an IPv6 one as ::1 or [::1])")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="no API keys: every request is the admin tenant 'local' (loopback addresses only)",
        ),
    ] = False,
    background: Annotated[
        bool,
        typer.Option(
            help="poll subscribed feeds and send webhooks in this process "
            "(--no-background: run `podmill scheduler` instead)"
        ),
    ] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="server processes (each answers requests; share nothing)")
    ] = 1,
    log_format: LogFormatOpt = None,
    log_level: LogLevelOpt = None,
    quiet: QuietOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs, Prometheus metrics at /metrics) and poll
    subscribed feeds. It logs each request (method, route, status, ms) at INFO."""
    from podmill.errors import require

    uvicorn = require("uvicorn", "server", "podmill serve")
    require("fastapi", "server", "podmill serve")
    require("multipart", "server", "podmill serve")
    from podmill.api.app import create_app
    from podmill.storage import db as storage_db

    if no_auth and not is_loopback(host):
        raise PodmillError(
            f"--no-auth on {host}: without API keys anyone who reaches the port controls the "
            "server; bind 127.0.0.1 (the default), or drop --no-auth and create keys with "
            "`podmill keys create TENANT`"
        )
    host, url_host = bind_address(host)
    # before anything is announced or started: a busy port is the first and only thing said
    check_port_free(host, url_host, port, single_process=workers == 1)
    cli = {"db": db, "data_dir": data_dir, "log_format": log_format, "log_level": log_level}
    settings = cli_settings.load(config, long_running=True, quiet=quiet, role="podmill-api", **cli)
    storage_db.upgrade(settings.database_url)
    err.print(
        f"podmill API on http://{url_host}:{port} (docs at /docs), database "
        f"{storage_db.display_url(settings.database_url)}{', no auth' if no_auth else ''}",
        markup=False,
    )
    # uvicorn's records go through podmill's root handler (its format, correlation ids),
    # and its access log is off: the API's middleware logs one line per request
    # (podmill.access), with the route template and the correlation id.
    uvicorn_logging: dict[str, Any] = {
        "log_level": settings.log_level.lower(),
        "log_config": None,
        "access_log": False,
        # GET /events streams never end by themselves: on SIGTERM they (and any other
        # request still running) get this long, then are cut; clients reconnect elsewhere
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
    }
    if workers == 1:
        app = create_app(settings, auth=not no_auth, background=background)
        uvicorn.run(app, host=host, port=port, **uvicorn_logging)
        return
    _share_metrics_between_processes()
    # Each worker process builds the app from the same options (and inherits the
    # environment, so it reads the same settings); the poller's and the webhooks'
    # claims make it safe for every process to run them.
    os.environ[SERVE_OPTIONS] = json.dumps(
        {
            "cli": {
                "db": db,
                "data_dir": str(data_dir) if data_dir else None,
                "log_format": settings.log_format,
                "log_level": "WARNING" if quiet else log_level,
            },
            "config": str(config) if config else None,
            "auth": not no_auth,
            "background": background,
        }
    )
    uvicorn.run(
        "podmill.cli.serve:app_of_server_process",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **uvicorn_logging,
    )


SHUTDOWN_GRACE_SECONDS = 10
SERVE_OPTIONS = "_PODMILL_SERVE_OPTIONS"  # serve --workers N: its options, for each process


def app_of_server_process() -> FastAPI:
    """The app of one ``podmill serve --workers N`` process (uvicorn's factory): the
    command's options are in ``_PODMILL_SERVE_OPTIONS``, and its settings are loaded as
    every command loads them."""
    from podmill.api.app import create_app

    options = json.loads(os.environ[SERVE_OPTIONS])
    config = Path(options["config"]) if options["config"] else None
    settings = cli_settings.load(config, long_running=True, role="podmill-api", **options["cli"])
    return create_app(settings, auth=options["auth"], background=options["background"])


def _share_metrics_between_processes() -> None:
    """``serve --workers N``: each request may reach any of the N processes, so their
    counters and histograms must add up. prometheus_client's multiprocess mode keeps
    them in files under ``PROMETHEUS_MULTIPROC_DIR`` (inherited by the processes
    uvicorn starts); a fresh directory per run, so a restart starts from zero."""
    import atexit
    import shutil
    import tempfile

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return  # the operator chose one (and cleans it between runs)
    path = tempfile.mkdtemp(prefix="podmill-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)


SchedulerMetricsPortOpt = metrics_port_option(
    "GET /metrics (build info, disk) and GET /health (database, disk)"
)


def scheduler(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    log_format: LogFormatOpt = None,
    log_level: LogLevelOpt = None,
    quiet: QuietOpt = False,
    metrics_port: SchedulerMetricsPortOpt = 0,
    metrics_host: MetricsHostOpt = "0.0.0.0",
    config: ConfigOpt = None,
) -> None:
    """Poll subscribed feeds, queue new episodes and send webhooks, until SIGTERM/SIGINT."""
    from podmill.api.background import background_threads
    from podmill.storage import db as storage_db

    cli = {"db": db, "data_dir": data_dir, "log_format": log_format, "log_level": log_level}
    settings = cli_settings.load(config, long_running=True, quiet=quiet, **cli)
    exposition = None
    if metrics_port:
        from podmill.obs.metrics import process_exposition

        exposition = process_exposition(settings.data_dir)  # a missing extra: said first
    service = _migrated_platform(settings)
    endpoints = None
    if exposition is not None:
        from podmill.engine.health import process_health
        from podmill.obs.exposure import metrics_token
        from podmill.obs.server import serve_worker_endpoints

        try:
            endpoints = serve_worker_endpoints(
                metrics_host,
                metrics_port,
                exposition,
                lambda: process_health(settings, service.reader),
                metrics_token=metrics_token(settings),
            )
        except OSError as exc:
            service.close()
            raise metrics_port_taken(metrics_host, metrics_port, exc) from None
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    shown = storage_db.display_url(settings.database_url)
    err.print(f"scheduler polling feeds in {shown}", markup=False)
    threads = background_threads(service, stop)
    for thread in threads:
        thread.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        if endpoints is not None:
            endpoints.close()
        service.close()


@tenants_app.command("create")
def tenants_create(
    name: TenantArg,
    admin: Annotated[bool, typer.Option("--admin", help="may use /feeds and /admin")] = False,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a tenant (a member, or an admin with --admin)."""
    service = _platform(config, db, data_dir)
    tenant = service.create_tenant(name, admin=admin)
    err.print(f"tenant {tenant.name} ({'admin' if admin else 'member'}) created", markup=False)


@tenants_app.command("list")
def tenants_list(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    from sqlalchemy import select

    from podmill.platform.tables import TENANTS

    service = _platform(config, db, data_dir)
    with service.reader.connect() as conn:
        rows = conn.execute(select(TENANTS).order_by(TENANTS.c.id)).mappings().all()
    print_lines([dict(row) for row in rows], as_json, _tenant_line)


def _tenant_line(row: dict[str, Any]) -> str:
    return f"{row['id']}\t{row['name']}\t{'admin' if row['is_admin'] else 'member'}"


@keys_app.command("create")
def keys_create(
    tenant: TenantArg,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Create an API key for a tenant. The key is printed once; only its hash is kept."""
    service = _platform(config, db, data_dir)
    key_id, key = service.create_key(tenant)
    if as_json:
        print_json({"id": key_id, "tenant": tenant, "key": key})
        return
    typer.echo(key)
    err.print(f"key {key_id} for {tenant}: store it now, it is not shown again", markup=False)


@keys_app.command("list")
def keys_list(
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Keys with their tenant, prefix and whether they are revoked (never the key)."""
    service = _platform(config, db, data_dir)
    print_lines(service.list_keys(), as_json, _key_line)


def _key_line(row: dict[str, Any]) -> str:
    state = "revoked" if row["revoked_at"] else "live"
    return f"{row['id']}\t{row['tenant']}\t{row['prefix']}…\t{state}"


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="key id (podmill keys list)")],
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    service = _platform(config, db, data_dir)
    if not service.revoke_key(key_id):
        raise PodmillError(f"no live key {key_id} (see `podmill keys list`)")
    err.print(f"key {key_id} revoked")
