"""Search documents from a finished episode's artifacts.

:func:`episode_docs_from_artifacts` reads an artifact set's ``topics.json``,
``sentences.json`` and ``index.npz`` (the vectors the index stage computed) and embeds
only what ``index.npz`` lacks (passages of artifacts written before passages were
indexed). Writing them, with the set's other rows, is
:func:`podmill.pipeline.projection.project_finished`: what every finished job and
``podmill index rebuild`` call.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podmill.domain import TopicNode
from podmill.search import documents
from podmill.sentences import sentences_from_dicts
from podmill.storage.artifacts import (
    Artifact,
    read_set_bytes,
    read_set_json,
)


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
