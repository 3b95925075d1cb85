"""The result of a finished job, as every ``reply_to`` carries it (a webhook's body, a
stream entry's ``result`` field): what the job made, not only its status
(docs/delivery.md has the shape).

Links are absolute under ``server.base_url`` when it is set, else API paths; every
artifact of the job's finished set is listed with its checksum and size, and the files
the API serves carry the link that serves them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podmill.feeds.podcasting import CHAPTERS_FILE, TRANSCRIPT_FILES
from podmill.storage.artifacts import KINDS, TRANSCRIPTS, Artifact, ArtifactStore

RESULT_EVENT = "job.finished"

# The API route that serves each artifact kind (the rest are listed with no url).
_TRANSCRIPT_FORMAT = {name: fmt for fmt, name in TRANSCRIPTS.items()}


def link(base_url: str | None, path: str) -> str:
    """``path`` under ``base_url`` (``https://host/prefix`` + ``/episodes/…``), or the
    bare API path when no base URL is configured."""
    return base_url.rstrip("/") + path if base_url else path


def result_of(
    job: dict[str, Any],
    *,
    tenant: str | None,
    title: str | None,
    artifacts: ArtifactStore,
    base_url: str | None,
) -> dict[str, Any]:
    """The result message of ``job`` (``id``, ``episode_key``, ``fingerprint``, ``status``,
    ``error``, ``finished_at``) for ``tenant`` (``None``: the default stream, or the
    operator's). ``tree`` and ``artifacts`` are those of the job's own finished set:
    ``null`` and ``{}`` while it has none (a failed or cancelled job). ``job_id`` is the
    idempotency key: a delivery may repeat."""
    key, fingerprint = job["episode_key"], job["fingerprint"]
    finished_at = job.get("finished_at")
    episode_path = f"/episodes/{key}"
    finished = artifacts.finished(key, fingerprint)
    return {
        "event": RESULT_EVENT,
        "job_id": job["id"],
        "tenant": tenant,
        "job": {
            "id": job["id"],
            "episode_key": key,
            "fingerprint": fingerprint,
            "status": job["status"],
            "error": job.get("error"),
            "finished_at": finished_at.isoformat()
            if isinstance(finished_at, datetime)
            else finished_at,
            "url": link(base_url, f"/jobs/{job['id']}"),
        },
        "episode": {"key": key, "title": title, "url": link(base_url, episode_path)},
        "tree": tree_summary(artifacts, key, fingerprint) if finished else None,
        "artifacts": artifact_links(artifacts, key, fingerprint, base_url) if finished else {},
        "published": published_links(key, base_url) if finished else {},
    }


def published_links(key: str, base_url: str | None) -> dict[str, str]:
    """The Podcasting 2.0 documents the API builds from the finished set (JSON
    transcript, WebVTT and SRT captions, chapters; docs/podcasting20.md), by file name."""
    return {
        f.name: link(base_url, f"/episodes/{key}/{f.name}")
        for f in (*TRANSCRIPT_FILES, CHAPTERS_FILE)
    }


def tree_summary(artifacts: ArtifactStore, key: str, fingerprint: str) -> dict[str, Any] | None:
    """L0 (title, summary, times) and each L1 topic's title and times; ``None`` when the
    set has no topic tree. Read checked: a damaged ``topics.json`` raises
    :class:`~podmill.storage.artifacts.ArtifactDamaged`."""
    if not artifacts.exists(key, fingerprint, Artifact.TOPICS):
        return None
    root = artifacts.read_json(key, fingerprint, Artifact.TOPICS)["root"]
    return {
        "title": root.get("title", ""),
        "summary": root.get("summary", ""),
        "start": root["start"],
        "end": root["end"],
        "topics": [
            {
                "id": node["id"],
                "title": node.get("title", ""),
                "start": node["start"],
                "end": node["end"],
            }
            for node in root.get("children", [])
        ],
    }


def artifact_links(
    artifacts: ArtifactStore, key: str, fingerprint: str, base_url: str | None
) -> dict[str, dict[str, Any]]:
    """Every file of the finished set by kind (``KINDS``; other files by name):
    ``{"name", "sha256", "size", "url"}``, ``url`` the route that serves it or ``None``."""
    found: dict[str, dict[str, Any]] = {}
    for stored in artifacts.list(key, fingerprint):
        try:
            name = Artifact(stored.name)
        except ValueError:
            continue  # a per-stage scratch file (llm_usage_<stage>.json): not an artifact
        url = None
        if name in _TRANSCRIPT_FORMAT:
            url = link(base_url, f"/episodes/{key}/transcript?format={_TRANSCRIPT_FORMAT[name]}")
        elif name is Artifact.TOPICS:
            url = link(base_url, f"/episodes/{key}")
        found[KINDS.get(name, name.value)] = {
            "name": stored.name,
            "sha256": stored.sha256,
            "size": stored.size,
            "url": url,
        }
    return found
