"""Writing search documents: from a finished episode's artifacts into ``search_docs``.

The index stage calls :func:`index_episode` with the vectors it has just computed;
``podmill index rebuild`` calls :func:`rebuild_from_artifacts`, which reads every
episode's ``topics.json``, ``sentences.json`` and ``index.npz`` from the data directory
and embeds only what ``index.npz`` lacks (passages of artifacts written before passages
were indexed), then builds a new vector generation.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from podmill.domain import Episode, TopicNode
from podmill.pipeline.sentences import sentences_from_dicts
from podmill.search import documents, store
from podmill.storage import repo
from podmill.storage.artifacts import (
    EPISODES_DIR,
    ArtifactDamaged,
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


def newest_artifact_dir(episode_dir: Path) -> Path | None:
    """The episode's newest finished artifact set (the one with the newest topics.json)."""
    done = [p for p in episode_dir.iterdir() if (p / "topics.json").is_file()]
    return max(done, key=lambda p: (p / "topics.json").stat().st_mtime) if done else None


def episode_docs_from_artifacts(
    folder: Path, embed: Callable[[list[str]], Any]
) -> tuple[list[documents.SearchDoc], int]:
    """The search documents of one artifact set, and how many vectors had to be embedded."""
    import numpy as np

    root = TopicNode.from_dict(read_set_json(folder, "topics.json")["root"])
    sentences = sentences_from_dicts(read_set_json(folder, "sentences.json"))
    nodes = list(root.walk())
    passage_list = documents.passages(root, sentences)
    node_vectors = passage_vectors = None
    if (folder / "index.npz").is_file():
        with np.load(io.BytesIO(read_set_bytes(folder, "index.npz"))) as data:
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
    manifest = folder / "manifest.json"
    if manifest.is_file():
        episode = Episode.from_dict(json.loads(manifest.read_text())["episode"])
    else:
        title = json.loads((folder / "topics.json").read_text()).get("title") or key
        episode = Episode(episode_key=key, title=title, audio_url=None)
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
    root = data_dir / EPISODES_DIR
    for episode_dir in sorted(root.iterdir() if root.is_dir() else []):
        if not episode_dir.is_dir():
            continue
        key = episode_dir.name
        folder = newest_artifact_dir(episode_dir)
        if folder is None or not (folder / "sentences.json").is_file():
            report.skipped.append(f"{key}: no finished run")
            continue
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
