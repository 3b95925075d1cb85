"""Redis for the reply_to stream tests: the local server (127.0.0.1:6379, or
``PODMILL_TEST_REDIS_URL``), a stream name of the test's own, and a finished artifact set
whose result has a tree and artifacts to link."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest

from podmill.storage.artifacts import Artifact, ArtifactStore

REDIS_URL = os.environ.get("PODMILL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_HOSTPORT = REDIS_URL.split("://", 1)[1].rsplit("/", 1)[0]


def redis_client() -> Any:
    """A client of the test Redis, or a skip saying why there is none."""
    redis = pytest.importorskip("redis", reason="pip install 'podmill[streams]'")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    return client


def stream_url(name: str) -> str:
    return f"{REDIS_URL}#{name}"


def unique_stream(prefix: str = "podmill-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def entries(client: Any, stream: str) -> list[dict[str, str]]:
    """Every entry of ``stream``, oldest first, fields decoded."""
    return [
        {k.decode(): v.decode() for k, v in fields.items()} for _id, fields in client.xrange(stream)
    ]


def results(client: Any, stream: str) -> list[dict[str, Any]]:
    """The ``result`` JSON of every entry of ``stream``."""
    return [json.loads(entry["result"]) for entry in entries(client, stream)]


# A small finished set, as publish leaves one: a tree with two L1 topics, transcripts.
TREE = {
    "id": "t0",
    "level": 0,
    "start": 0.0,
    "end": 20.0,
    "word_start": 0,
    "word_end": 4,
    "title": "A show about rivers",
    "summary": "Rivers, then bridges.",
    "key_points": [],
    "keywords": [],
    "children": [
        {"id": "t1", "level": 1, "start": 0.0, "end": 12.5, "word_start": 0, "word_end": 2,
         "title": "Rivers", "summary": "s", "key_points": [], "keywords": [], "children": []},
        {"id": "t2", "level": 1, "start": 12.5, "end": 20.0, "word_start": 2, "word_end": 4,
         "title": "Bridges", "summary": "s", "key_points": [], "keywords": [], "children": []},
    ],
}  # fmt: skip


def publish_set(artifacts: ArtifactStore, key: str, fingerprint: str) -> None:
    """Write a finished artifact set for ``(key, fingerprint)``."""
    artifacts.write_json(key, fingerprint, Artifact.TOPICS, {"episode_key": key, "root": TREE})
    artifacts.write_json(key, fingerprint, Artifact.TRANSCRIPT_JSON, {"words": []})
    artifacts.write_text(key, fingerprint, Artifact.TRANSCRIPT_VTT, "WEBVTT\n")
    artifacts.write_text(key, fingerprint, Artifact.SUMMARY_MD, "# A show about rivers\n")
    artifacts.write_manifest(key, fingerprint, {})
