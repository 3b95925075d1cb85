"""The database rows of a finished artifact set: one function for every path that
finishes a job.

The files are the truth and the rows are their projection (docs/engine.md, "Finishing a
job"). :func:`project_finished` writes them all from the set's files, in the caller's
transaction:

- the feed (its title and URL from the episode), where the episode has no feed yet;
- the episode's catalog row, where there is none (a submit writes it first), linked to
  that feed;
- the media facts (duration, audio checksum) from ``source.json`` and ``topics.json``;
- a pointer row per file (``artifacts``);
- the search documents, from ``topics.json``, ``sentences.json`` and the vectors the
  index stage kept in ``index.npz`` (vectors it lacks are embedded).

Who calls it: the job's last stage, ``publish``, whether it ran or found its outputs
already there (:func:`podmill.pipeline.stages.run_stage`: a job whose set was finished
earlier, e.g. for another database, or a database lost and made again), in the embedded
runner and in distributed workers alike; and ``podmill index rebuild``
(:func:`rebuild_from_artifacts`), for every finished set on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from podmill.domain import Episode
from podmill.search import store as search_store
from podmill.search.indexing import episode_docs_from_artifacts
from podmill.storage import repo
from podmill.storage.artifacts import (
    EPISODES_DIR,
    KINDS,
    Artifact,
    ArtifactDamaged,
    ArtifactStore,
)

Embed = Callable[[list[str]], Any]


@dataclass(frozen=True)
class Projected:
    """What :func:`project_finished` wrote."""

    episode_key: str
    feed_id: int | None
    documents: int  # search documents
    embedded: int  # vectors computed because index.npz lacked them


def project_finished(
    session: Session, artifacts: ArtifactStore, episode_key: str, fingerprint: str, embed: Embed
) -> Projected:
    """Write the rows of the finished set ``(episode_key, fingerprint)`` (its manifest
    names the episode) in the caller's transaction. Raises
    :class:`~podmill.storage.artifacts.ArtifactDamaged` for a damaged file, and
    ``FileNotFoundError`` when the set is not finished."""
    manifest = artifacts.read_json(episode_key, fingerprint, Artifact.MANIFEST)
    episode = Episode.from_dict(manifest["episode"])
    topics = artifacts.read_json(episode_key, fingerprint, Artifact.TOPICS)
    source = artifacts.read_json(episode_key, fingerprint, Artifact.SOURCE)
    docs, embedded = episode_docs_from_artifacts(
        artifacts.episode_dir(episode_key, fingerprint), embed
    )

    feed_id = _catalog_rows(session, episode)
    repo.update_episode_media(
        session,
        episode_key,
        duration_seconds=source.get("duration") or topics.get("duration"),
        audio_sha256=source.get("sha256"),
    )
    for stored in artifacts.list(episode_key, fingerprint):
        kind = KINDS.get(stored.name, stored.name)
        repo.record_artifact(session, episode_key, fingerprint, stored, kind)
    search_store.replace_episode(session, episode_key, fingerprint, docs)
    return Projected(episode_key, feed_id, len(docs), embedded)


def _catalog_rows(session: Session, episode: Episode) -> int | None:
    """The episode's catalog row and its feed's; returns the episode's feed id."""
    row = repo.episode_row(session, episode.episode_key)
    feed_id = row["feed_id"] if row is not None else None
    if feed_id is None and episode.feed_key and episode.feed_url:
        feed_id = repo.ensure_feed(
            session, feed_key=episode.feed_key, url=episode.feed_url, title=episode.feed_title
        )
    repo.ensure_episode(session, episode, feed_id=feed_id)
    return feed_id


@dataclass
class RebuildReport:
    episodes: int = 0
    documents: int = 0
    embedded: int = 0  # vectors computed because index.npz lacked them
    skipped: list[str] = field(default_factory=list)  # "key: why"
    vectors: int = 0  # in the new generation


def rebuild_from_artifacts(
    data_dir: Path,
    sessions: sessionmaker[Session],
    embed: Embed,
    on_episode: Callable[[str], None] | None = None,
) -> RebuildReport:
    """Project every episode's newest finished set (:func:`project_finished`), one
    transaction per episode: searches running meanwhile see each episode whole, old or
    new. A data directory copied without its database gets its catalog back too."""
    report = RebuildReport()
    artifacts = ArtifactStore(data_dir)
    root = data_dir / EPISODES_DIR
    for episode_dir in sorted(root.iterdir() if root.is_dir() else []):
        if not episode_dir.is_dir():
            continue
        key = episode_dir.name
        fingerprint = artifacts.newest_finished(key)
        if fingerprint is None or not artifacts.exists(key, fingerprint, Artifact.SENTENCES):
            report.skipped.append(f"{key}: no finished run")
            continue
        try:
            with sessions.begin() as session:
                projected = project_finished(session, artifacts, key, fingerprint, embed)
        except ArtifactDamaged as exc:  # `podmill run` again repairs it (docs/security.md)
            report.skipped.append(f"{key}: {exc}")
            continue
        report.episodes += 1
        report.documents += projected.documents
        report.embedded += projected.embedded
        if on_episode is not None:
            on_episode(key)
    return report
