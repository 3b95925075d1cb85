"""``podmill subscribe URL`` and ``podmill subscribe --opml FILE``: a tenant's
subscriptions from the command line, on the database every command uses (``--db``,
else ``PODMILL_DB``, else ``DATA_DIR/podmill.db``), as ``POST /subscriptions`` and
``POST /subscriptions/opml`` make them (docs/opml.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from podmill.cli.options import ConfigOpt, DataDirOpt, DbOpt
from podmill.cli.output import err, out, print_json, table
from podmill.errors import PodmillError

if TYPE_CHECKING:
    from podmill.platform import Platform, Tenant

# the outcome of an outline, as the tables name it
_OUTCOMES = (
    ("imported", "imported"),
    ("already_subscribed", "already subscribed"),
    ("rejected", "rejected"),
)


def subscribe(
    url: Annotated[
        str | None, typer.Argument(help="a feed's URL (or give --opml FILE)", show_default=False)
    ] = None,
    opml: Annotated[
        Path | None,
        typer.Option(
            "--opml",
            help="import every feed of an OPML file (a podcast app's export)",
            dir_okay=False,
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="whose subscriptions (`podmill tenants list`); default: the admin tenant "
            "'local' that `podmill serve --no-auth` serves",
        ),
    ] = None,
    db: DbOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the outcome as one JSON object")] = False,
    config: ConfigOpt = None,
) -> None:
    """Subscribe a tenant to a feed, or to every feed of an OPML file: each feed is
    fetched and checked as `POST /subscriptions` checks it, and its newest
    server.backfill episodes are queued for `podmill worker`. An OPML import lists what
    it imported, what was subscribed already, and each outline it rejected with the
    reason; it exits 1 when it rejected any."""
    from podmill.cli.serve import _platform

    if (url is None) == (opml is None):
        raise PodmillError("give a feed URL or --opml FILE (one of them)")
    data = _read_file(opml) if opml is not None else None
    service = _platform(config, db, data_dir)
    try:
        who = _tenant(service, tenant)
        if data is not None:
            _import(service, who, data, as_json)
        else:
            assert url is not None
            _subscribe_one(service, who, url, as_json)
    finally:
        service.close()


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PodmillError(f"--opml {path}: cannot read it ({exc.strerror or exc})") from None


def _tenant(service: Platform, name: str | None) -> Tenant:
    from podmill.platform.tenants import LOCAL_TENANT

    if name is None:
        return service.ensure_tenant(LOCAL_TENANT, admin=True)
    found = service.tenant(name)
    if found is None:
        raise PodmillError(
            f"--tenant {name}: no such tenant; `podmill tenants list` shows them, "
            f"`podmill tenants create {name}` makes it"
        )
    return found


def _subscribe_one(service: Platform, tenant: Tenant, url: str, as_json: bool) -> None:
    from podmill.feeds.urls import fetchable_url

    try:
        fetchable_url(url)
    except ValueError as exc:
        raise PodmillError(str(exc)) from None
    subscription, created = service.subscribe(tenant, url)
    if as_json:
        print_json({**subscription, "created": created})
        return
    state = "subscribed" if created else "already subscribed"
    err.print(
        f"{tenant.name} {state}: {subscription['title'] or subscription['url']} "
        f"(subscription {subscription['id']}, feed {subscription['feed_id']})",
        markup=False,
    )


def _import(service: Platform, tenant: Tenant, data: bytes, as_json: bool) -> None:
    from podmill.feeds.opml import read_opml

    answer = service.import_opml(tenant, read_opml(data))
    if as_json:
        print_json(answer)
    else:
        out.print(_outcome_table(answer))
        counts = ", ".join(f"{len(answer[key])} {name}" for key, name in _OUTCOMES)
        err.print(f"{tenant.name}: {counts}", markup=False)
    if answer["rejected"]:
        raise PodmillError(
            f"{len(answer['rejected'])} outline(s) rejected, each with its reason above; "
            "the others were imported"
        )


def _outcome_table(answer: dict[str, Any]) -> Table:
    title = answer["title"] or "OPML list"
    shown = table(escape(title), "outline", "outcome", "title", "url", "reason")
    rows: list[tuple[int, str, dict[str, Any]]] = []
    for key, name in _OUTCOMES:
        rows += [(item["outline"], name, item) for item in answer[key]]
    for position, name, item in sorted(rows, key=lambda row: row[0]):
        shown.add_row(
            str(position),
            name,
            escape(item["title"] or ""),
            escape(item["url"] or ""),
            escape(item.get("reason", "")),
        )
    return shown
