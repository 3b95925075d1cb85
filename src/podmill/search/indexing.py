"""Writing search documents: from a finished episode's artifacts into ``search_docs``.

The index stage calls :func:`index_episode` with the vectors it has just computed;
``podmill index rebuild`` calls :func:`rebuild_from_artifacts`, which reads every
episode's ``topics.json``, ``sentences.json`` and ``index.npz`` from the data directory
and embeds only what ``index.npz`` lacks (passages of artifacts written before passages
were indexed), then builds a new vector generation.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from podmill.domain import Episode, TopicNode
from podmill.search import documents, store
from podmill.sentences import sentences_from_dicts
from podmill.storage import repo
from podmill.storage.artifacts import (
    EPISODES_DIR,
    Artifact,
    ArtifactDamaged,
    ArtifactStore,
    read_set_bytes,
    read_set_json,
)


@dataclass
class RebuildReport:
    episodes: int = 0
    documents: int = 0
    embedded: int = 0  # vectors computed because index.npz lacked them
    skipped: list[str] = field(default_factory=list)  # "key: why"
    vectors: int = 0  # in the new generation


def episode_docs_from_artifacts(
    folder: Path, embed: Callable[[list[str]], Any]
) -> tuple[list[documents.SearchDoc], int]:
    """The search documents of one artifact set, and how many vectors had to be embedded."""
    import numpy as np

    root = TopicNode.from_dict(read_set_json(folder, Artifact.TOPICS)["root"])
    sentences = sentences_from_dicts(read_set_json(folder, Artifact.SENTENCES))
    nodes = list(root.walk())
    passage_list = documents.passages(root, sentences)
    node_vectors = passage_vectors = None
    if (folder / Artifact.INDEX).is_file():
        with np.load(io.BytesIO(read_set_bytes(folder, Artifact.INDEX))) as data:
            if [str(i) for i in data["ids"]] == [n.id for n in nodes]:
                node_vectors = data["vectors"]
            spans = [[p.first, p.last] for p in passage_list]
            if "passage_vectors" in data and data["passage_sentences"].tolist() == spans:
                passage_vectors = data["passage_vectors"]
    embedded = 0
    if node_vectors is None:
        node_vectors = embed([documents.node_embedding_text(n) for n in nodes])
        embedded += len(nodes)
    if passage_vectors is None:
        passage_vectors = embed([p.text for p in passage_list])
        embedded += len(passage_list)
    docs = documents.episode_documents(root, passage_list, node_vectors, passage_vectors)
    return docs, embedded


def _ensure_catalog_row(session: Session, folder: Path, key: str) -> None:
    """A data directory copied without its database: the episode's catalog row comes
    back from its manifest (feed links do not: the manifest has no feed row)."""
    if repo.episode_row(session, key) is not None:
        return
    episode = Episode.from_dict(read_set_json(folder, Artifact.MANIFEST)["episode"])
    repo.upsert_episode(session, episode, feed_id=None)


def rebuild_from_artifacts(
    data_dir: Path,
    sessions: sessionmaker[Session],
    embed: Callable[[list[str]], Any],
    on_episode: Callable[[str], None] | None = None,
) -> RebuildReport:
    """Make ``search_docs`` hold every episode's newest artifact set, one transaction
    per episode (searches running meanwhile see each episode whole, old or new)."""
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
        folder = artifacts.episode_dir(key, fingerprint)
        try:
            docs, embedded = episode_docs_from_artifacts(folder, embed)
        except ArtifactDamaged as exc:  # `podmill run` again repairs it (docs/security.md)
            report.skipped.append(f"{key}: {exc}")
            continue
        with sessions.begin() as session:
            _ensure_catalog_row(session, folder, key)
            store.replace_episode(session, key, folder.name, docs)
        report.episodes += 1
        report.documents += len(docs)
        report.embedded += embedded
        if on_episode is not None:
            on_episode(key)
    return report
