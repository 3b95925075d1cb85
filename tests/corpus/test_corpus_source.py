"""The test corpus itself is what docs/corpus.md says it is (no models, a second)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from podmill.feeds.parse import parse_feed
from podmill.feeds.transcripts import parse_transcript

from support.corpus import (
    CORPUS_DIR,
    Corpus,
    expected_episode_key,
    generator,
    published_at,
    render_feed,
)
from support.wer import normalise


def normalise_words(text: str) -> str:
    return " ".join(normalise(text))


def test_generator_output_matches_committed_files() -> None:
    """Every text output is what make_corpus.py makes from the source and the audio
    timings; a source edit without a regeneration fails here."""
    files = generator().build_outputs()
    stale = [p for p, text in files.items() if (CORPUS_DIR / p).read_text("utf-8") != text]
    assert not stale, f"run tests/fixtures/corpus/make_corpus.py; stale: {stale}"
    on_disk = {p.relative_to(CORPUS_DIR).as_posix() for p in CORPUS_DIR.glob("transcripts/*")}
    assert on_disk == {p for p in files if p.startswith("transcripts/")}, "stray transcripts"


def test_shape(corpus_labels: Corpus) -> None:
    assert len(corpus_labels.feeds) == 3
    assert len(corpus_labels.episodes) >= 20
    per_feed = Counter(e.feed for e in corpus_labels.episodes)
    assert set(per_feed) == {f.id for f in corpus_labels.feeds} and min(per_feed.values()) >= 6
    assert all(3 <= len(e.topics) <= 4 for e in corpus_labels.episodes)
    assert len({e.guid for e in corpus_labels.episodes}) == len(corpus_labels.episodes)
    assert len({e.title for e in corpus_labels.episodes}) == len(corpus_labels.episodes)
    audio = [e for e in corpus_labels.episodes if e.format == "audio"]
    assert len(audio) >= 3 and {e.feed for e in audio} == {f.id for f in corpus_labels.feeds}
    for episode in audio:
        size = (CORPUS_DIR / episode.media).stat().st_size
        assert size <= 200_000, f"{episode.media} is {size} bytes; keep the fixtures small"
    # Publication dates spread over about three weeks, some inside a 7-day window.
    days = sorted(e.days_ago for e in corpus_labels.episodes)
    assert days[0] <= 2 and days[-1] >= 18
    assert 6 <= sum(d < 7 for d in days) < len(days) - 6


def test_topics_tile_each_episode(corpus_labels: Corpus) -> None:
    for episode in corpus_labels.episodes:
        topics = episode.topics
        assert [t.index for t in topics] == list(range(len(topics)))
        assert topics[0].start == 0.0 and topics[-1].end == episode.duration
        for a, b in zip(topics, topics[1:]):
            assert a.end == b.start, (episode.guid, a.index)
        for topic in topics:
            # the speaking time of a topic, at least 30 s: podmill's shortest L1 topic
            assert topic.end - topic.start >= 30, (episode.guid, topic.index)
            assert len(topic.text.split(". ")) >= 6, (episode.guid, topic.index)


def test_planted_stories_span_feeds(corpus_labels: Corpus) -> None:
    used = {t.story for t in corpus_labels.topics if t.story}
    assert used == set(corpus_labels.stories), "every story is used, every used story named"
    assert len(used) >= 5
    for story in used:
        topics = corpus_labels.story_topics(story)
        feeds = {corpus_labels.episode(t.guid).feed for t in topics}
        assert 2 <= len(topics) <= 3 and len(feeds) == len(topics), (story, feeds)
    singletons = [t for t in corpus_labels.topics if t.story is None]
    assert len(singletons) >= 2 * (len(corpus_labels.topics) - len(singletons))


def test_transcripts_parse_to_the_source_text(corpus_labels: Corpus) -> None:
    """podmill reads each publisher transcript back to exactly the written words, with
    the labelled topic starts on word boundaries."""
    for episode in corpus_labels.episodes:
        if episode.format == "audio":
            continue
        data = (CORPUS_DIR / episode.media).read_bytes()
        transcript = parse_transcript(data, episode.mime_type, url=episode.media)
        words = transcript.words
        expected = " ".join(t.text for t in episode.topics)
        assert normalise_words(" ".join(w.text for w in words)) == normalise_words(expected)
        starts = {w.start for w in words}
        for topic in episode.topics[1:]:
            assert topic.start in starts, (episode.guid, topic.index)
        assert transcript.duration <= episode.duration


def test_audio_timings_belong_to_the_audio(corpus_labels: Corpus) -> None:
    from podmill.audio import probe_duration

    for episode in (e for e in corpus_labels.episodes if e.format == "audio"):
        duration = probe_duration(CORPUS_DIR / episode.media)
        assert duration == pytest.approx(episode.duration, abs=0.1), episode.guid


def test_rendered_feed_parses_with_stable_keys(corpus_labels: Corpus) -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    for feed in corpus_labels.feeds:
        xml = render_feed(corpus_labels, feed.id, "http://127.0.0.1:9", now)
        parsed = parse_feed(xml, "http://127.0.0.1:9/feed.xml", is_local=False)
        assert not parsed.skipped
        mine = [e for e in corpus_labels.episodes if e.feed == feed.id]
        assert len(parsed.episodes) == len(mine)
        for got in parsed.episodes:
            want = next(e for e in mine if e.title == got.title)
            assert got.episode_key == expected_episode_key(corpus_labels, want.guid)
            assert got.published == published_at(corpus_labels, want.guid, now)
            if want.format == "audio":
                assert got.audio_url and got.audio_url.endswith(want.media)
            else:
                assert [t.url for t in got.transcripts] == [f"http://127.0.0.1:9/{want.media}"]
    last_week = [
        e
        for e in corpus_labels.episodes
        if published_at(corpus_labels, e.guid, now) > now - timedelta(days=7)
    ]
    assert {e.guid for e in last_week} == {e.guid for e in corpus_labels.episodes if e.days_ago < 7}


def test_queries_name_labelled_topics(corpus_labels: Corpus) -> None:
    queries = json.loads((CORPUS_DIR / "queries.json").read_text("utf-8"))["queries"]
    assert len(queries) == 30 and len({q["query"] for q in queries}) == 30
    for q in queries:
        topic = corpus_labels.topic(q["guid"], q["topic"])
        # written, not pasted: no query is a run of six words from its topic
        words = normalise(q["query"])
        text = normalise_words(topic.text)
        runs = (" ".join(words[i : i + 6]) for i in range(max(0, len(words) - 5)))
        assert not any(run in text for run in runs), q["query"]
    assert {corpus_labels.episode(q["guid"]).feed for q in queries} == {
        f.id for f in corpus_labels.feeds
    }
    assert any(corpus_labels.episode(q["guid"]).format == "audio" for q in queries)
