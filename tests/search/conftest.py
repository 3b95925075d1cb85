"""A small search corpus, embedded once per session with the real MiniLM embedder and
written through the finish's own function (``store.replace_episode``) into each
test's database (SQLite file or Postgres schema).

Three feeds, six episodes, each episode two or three L1 topics of a few sentences with
known subjects; published on different days so date filters have something to cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from podmill.domain import Episode, TopicNode
from podmill.search import documents, store
from podmill.sentences import Sentence
from podmill.storage import repo
from podmill.storage.db import make_engine, session_factory

pytest.importorskip("onnxruntime", reason="pip install 'podmill[ml]'")

FEEDS = {
    "science": "Science Hour",
    "city": "City Desk",
    "home": "Home and Garden",
}

# (episode key, feed, published day of November 2026, title, topics)
EPISODES: list[tuple[str, str, int, str, list[tuple[str, list[str]]]]] = [
    (
        "sci0001mars",
        "science",
        2,
        "Rovers and telescopes",
        [
            (
                "Mars rover",
                [
                    "The Perseverance rover landed in Jezero crater in 2021.",
                    "It drills rock cores that a later mission will bring back to Earth.",
                    "The rover looks for traces of ancient microbial life in the old lake bed.",
                ],
            ),
            (
                "Space telescope",
                [
                    "The Webb telescope sees infrared light from the first galaxies.",
                    "Its gold mirror unfolded in space after launch.",
                    "Astronomers measured the atmosphere of a distant exoplanet with it.",
                ],
            ),
        ],
    ),
    (
        "sci0002vacc",
        "science",
        9,
        "Vaccines and sleep",
        [
            (
                "mRNA vaccines",
                [
                    "Messenger RNA vaccines teach cells to make a harmless spike protein.",
                    "The immune system then learns to recognise the real virus.",
                    "Researchers now test the same platform against influenza.",
                ],
            ),
            (
                "Why we sleep",
                [
                    "During deep sleep the brain consolidates memories from the day.",
                    "Adults who sleep under six hours make more mistakes at work.",
                    "Caffeine late in the afternoon delays the onset of sleep.",
                ],
            ),
        ],
    ),
    (
        "city001taxx",
        "city",
        3,
        "Budget night",
        [
            (
                "Property tax",
                [
                    "The city council approved a new property tax plan on Tuesday.",
                    "Commercial buildings pay two percent more from January.",
                    "Homeowners below the median income receive a rebate.",
                ],
            ),
            (
                "Transit funding",
                [
                    "The bus network loses riders because service is slow.",
                    "Council members want dedicated bus lanes on the main avenues.",
                    "A new tram line would take ten years to build.",
                ],
            ),
        ],
    ),
    (
        "city002flood",
        "city",
        16,
        "After the storm",
        [
            (
                "River flooding",
                [
                    "The river burst its banks after three days of heavy rain.",
                    "Hundreds of basements in the old town were under water.",
                    "Engineers will raise the levee by one metre.",
                ],
            ),
            (
                "School closures",
                [
                    "Four schools stayed closed while the buildings dried out.",
                    "Pupils followed lessons online for a week.",
                    "Parents asked for clearer messages from the district.",
                ],
            ),
        ],
    ),
    (
        "home001toma",
        "home",
        5,
        "Summer vegetables",
        [
            (
                "Growing tomatoes",
                [
                    "Tomatoes need at least six hours of direct sunlight every day.",
                    "Water the plants deeply at the base rather than on the leaves.",
                    "Pinch off the side shoots so the plant puts its energy into fruit.",
                ],
            ),
            (
                "Composting",
                [
                    "A compost heap needs a mix of green and brown material.",
                    "Turn the pile every two weeks so air reaches the middle.",
                    "Finished compost smells like forest soil.",
                ],
            ),
        ],
    ),
    (
        "home002coff",
        "home",
        20,
        "Kitchen habits",
        [
            (
                "Brewing coffee",
                [
                    "Fresh beans with a roast date make the biggest difference.",
                    "Grind the beans just before brewing for the best flavour.",
                    "A pour over needs a medium coarse grind and water just off the boil.",
                ],
            ),
            (
                "Sourdough bread",
                [
                    "A sourdough starter is flour and water full of wild yeast.",
                    "Feed the starter daily and keep it at room temperature.",
                    "A long cold proof gives the loaf its tangy flavour.",
                ],
            ),
        ],
    ),
]


@dataclass
class Indexed:
    key: str
    feed: str
    published: datetime
    title: str
    docs: list[documents.SearchDoc]


def build_episode(key: str, title: str, topics: list[tuple[str, list[str]]]) -> tuple[Any, Any]:
    """A topic tree and sentences shaped like the pipeline's (5 s per sentence)."""
    sentences: list[Sentence] = []
    root = TopicNode(id="0", level=0, start=0.0, end=0.0, word_start=0, word_end=0, title=title)
    words = 0
    for n, (topic, lines) in enumerate(topics, 1):
        first = len(sentences)
        for line in lines:
            start = 5.0 * len(sentences)
            count = len(line.split())
            sentences.append(
                Sentence(len(sentences), line, start, start + 4.5, words, words + count)
            )
            words += count
        node = TopicNode(
            id=str(n),
            level=1,
            start=sentences[first].start,
            end=sentences[-1].end,
            word_start=sentences[first].word_start,
            word_end=words,
            title=topic,
            summary=" ".join(lines[:2]),
            key_points=[lines[-1]],
            keywords=[w.lower() for w in topic.split()],
        )
        root.children.append(node)
    root.end, root.word_end = sentences[-1].end, words
    root.summary = " ".join(t[1][0] for t in topics)
    return root, sentences


@pytest.fixture(scope="session")
def embed() -> Any:
    from podmill.ml.embed import embed as real_embed

    return real_embed


@pytest.fixture(scope="session")
def corpus(embed: Any) -> list[Indexed]:
    """Every corpus episode with its search documents (embedded once)."""
    found = []
    for key, feed, day, title, topics in EPISODES:
        root, sentences = build_episode(key, title, topics)
        node_vectors, passages, passage_vectors = documents.embed_episode(root, sentences, embed)
        docs = documents.episode_documents(root, passages, node_vectors, passage_vectors)
        published = datetime(2026, 11, day, 10, tzinfo=UTC)
        found.append(Indexed(key, feed, published, title, docs))
    return found


def load_corpus(url: str, corpus: list[Indexed]) -> dict[str, int]:
    """Write the corpus's catalog rows and search documents; returns feed ids by name."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    feed_ids: dict[str, int] = {}
    with sessions.begin() as session:
        for name, title in FEEDS.items():
            feed_ids[name] = repo.upsert_feed(
                session,
                feed_key=f"feed{name}",
                url=f"https://example.invalid/{name}.xml",
                title=title,
                podcast_guid=None,
            )
        for ep in corpus:
            episode = Episode(
                episode_key=ep.key, title=ep.title, audio_url=None, published=ep.published
            )
            repo.upsert_episode(session, episode, feed_id=feed_ids[ep.feed])
            store.replace_episode(session, ep.key, "fp", ep.docs)
    engine.dispose()
    return feed_ids


@pytest.fixture
def loaded(db_url: str, corpus: list[Indexed]) -> tuple[str, dict[str, int]]:
    """A migrated database holding the corpus: ``(url, feed ids)``."""
    return db_url, load_corpus(db_url, corpus)


@pytest.fixture
def engine(loaded: tuple[str, dict[str, int]]) -> Any:
    engine: Engine = make_engine(loaded[0])
    yield engine
    engine.dispose()
