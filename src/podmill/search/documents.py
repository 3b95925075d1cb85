"""What search indexes for one episode: its topic nodes and overlapping transcript
passages, each with a time span, text and embedding (pure functions, no I/O).

Nodes answer "which topic was about X"; passages answer "where exactly was X said",
including things a topic summary left out. The index stage writes both, with their
vectors, into ``index.npz`` (node arrays under ``ids``/``levels``/``vectors``, passage
arrays under ``passage_*``); the job's finish makes them ``search_docs`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from podmill.domain import TopicNode
from podmill.sentences import Sentence

# A passage is a few sentences, ~30 s of speech; windows overlap by half so a phrase that
# straddles one window's edge sits whole inside the next.
PASSAGE_SECONDS = 30.0
PASSAGE_MAX_SENTENCES = 5


@dataclass(frozen=True)
class Passage:
    first: int  # sentence index
    last: int  # exclusive
    start: float
    end: float
    text: str
    node_id: str


@dataclass
class SearchDoc:
    """One row of ``search_docs`` before it is written."""

    doc_key: str  # n:<node id> | p:<passage number>
    kind: str  # node | passage
    node_id: str
    level: int
    start: float
    end: float
    title: str
    body: str
    vector: Any  # (384,) float32 unit vector

    def row(self, episode_key: str, fingerprint: str) -> dict[str, Any]:
        import numpy as np

        return {
            "episode_key": episode_key,
            "fingerprint": fingerprint,
            "doc_key": self.doc_key,
            "kind": self.kind,
            "node_id": self.node_id,
            "level": self.level,
            "start_seconds": float(self.start),
            "end_seconds": float(self.end),
            "title": self.title,
            "body": self.body,
            "vector": np.asarray(self.vector, dtype=np.float32).tobytes(),
        }


def node_embedding_text(node: TopicNode) -> str:
    """What a node's vector embeds (the digest reads these vectors too)."""
    return f"{node.title}. {node.summary}"


def node_body(node: TopicNode) -> str:
    """A node's keyword text: summary, key points and keywords."""
    parts = [node.summary, *node.key_points]
    if node.keywords:
        parts.append(", ".join(node.keywords))
    return "\n".join(p for p in parts if p)


def passage_windows(
    sentences: Sequence[Sentence],
    seconds: float = PASSAGE_SECONDS,
    max_sentences: int = PASSAGE_MAX_SENTENCES,
) -> list[tuple[int, int]]:
    """``(first, last)`` sentence ranges (last exclusive): each grows until it spans
    ``seconds`` or holds ``max_sentences``; the next starts halfway through it."""
    windows: list[tuple[int, int]] = []
    n = len(sentences)
    first = 0
    while first < n:
        last = first + 1
        while (
            last < n
            and last - first < max_sentences
            and sentences[last - 1].end - sentences[first].start < seconds
        ):
            last += 1
        windows.append((first, last))
        if last >= n:
            break
        first += max(1, (last - first) // 2)
    return windows


def deepest_node(root: TopicNode, time: float) -> TopicNode:
    """The deepest node whose span holds ``time`` (the root when none does)."""
    node = root
    while True:
        child = next((c for c in node.children if c.start <= time < c.end), None)
        if child is None:
            return node
        node = child


def passages(root: TopicNode, sentences: Sequence[Sentence]) -> list[Passage]:
    """The episode's passage windows, each placed in the deepest node holding its middle."""
    found = []
    for first, last in passage_windows(sentences):
        start, end = sentences[first].start, sentences[last - 1].end
        text = " ".join(s.text.strip() for s in sentences[first:last])
        found.append(
            Passage(first, last, start, end, text, deepest_node(root, (start + end) / 2).id)
        )
    return found


def episode_documents(
    root: TopicNode,
    passage_list: Sequence[Passage],
    node_vectors: Any,
    passage_vectors: Any,
) -> list[SearchDoc]:
    """Every node (in ``root.walk()`` order, matching ``node_vectors``) and passage."""
    nodes = {n.id: n for n in root.walk()}
    docs = [
        SearchDoc(
            doc_key=f"n:{node.id}",
            kind="node",
            node_id=node.id,
            level=node.level,
            start=node.start,
            end=node.end,
            title=node.title,
            body=node_body(node),
            vector=vector,
        )
        for node, vector in zip(root.walk(), node_vectors, strict=True)
    ]
    for n, (passage, vector) in enumerate(zip(passage_list, passage_vectors, strict=True)):
        owner = nodes[passage.node_id]
        docs.append(
            SearchDoc(
                doc_key=f"p:{n}",
                kind="passage",
                node_id=passage.node_id,
                level=owner.level,
                start=passage.start,
                end=passage.end,
                title=owner.title,
                body=passage.text,
                vector=vector,
            )
        )
    return docs


def embed_episode(
    root: TopicNode, sentences: Sequence[Sentence], embed: Callable[[list[str]], Any]
) -> tuple[Any, list[Passage], Any]:
    """``(node_vectors, passages, passage_vectors)`` for an episode."""
    node_vectors = embed([node_embedding_text(n) for n in root.walk()])
    passage_list = passages(root, sentences)
    passage_vectors = embed([p.text for p in passage_list])
    return node_vectors, passage_list, passage_vectors


def index_arrays(
    root: TopicNode, node_vectors: Any, passage_list: Sequence[Passage], passage_vectors: Any
) -> dict[str, Any]:
    """The arrays of ``index.npz``: node keys as before, passages under ``passage_*``."""
    import numpy as np

    nodes = list(root.walk())
    dim = node_vectors.shape[1] if len(nodes) else 384
    return {
        "ids": np.array([n.id for n in nodes]),
        "levels": np.array([n.level for n in nodes]),
        "vectors": node_vectors,
        "passage_node_ids": np.array([p.node_id for p in passage_list], dtype=str),
        "passage_sentences": np.array(
            [[p.first, p.last] for p in passage_list], dtype=np.int64
        ).reshape(-1, 2),
        "passage_spans": np.array(
            [[p.start, p.end] for p in passage_list], dtype=np.float64
        ).reshape(-1, 2),
        "passage_vectors": np.asarray(passage_vectors, dtype=np.float32).reshape(-1, dim),
    }
