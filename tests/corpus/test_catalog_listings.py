"""``podmill feeds list`` and ``podmill episodes list`` over what ``podmill run`` wrote:
the corpus's three feeds with their titles and counts, every episode with its key (what
``podmill show`` takes), newest first, and the filters a user reaches for
(docs/cli.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import run_cli
from support.corpus import ProcessedCorpus

pytestmark = pytest.mark.slow


def listing(corpus: ProcessedCorpus, *args: str) -> list[dict]:
    result = run_cli(*args, "--data-dir", corpus.data_dir, "--json")
    assert result.code == 0, result.stderr
    return result.json_lines()


def test_feeds_list_names_every_feed_with_its_counts(processed_corpus: ProcessedCorpus) -> None:
    feeds = listing(processed_corpus, "feeds", "list")
    assert sorted(f["title"] for f in feeds) == sorted(
        f.title for f in processed_corpus.corpus.feeds
    )
    for feed in processed_corpus.corpus.feeds:
        [row] = [f for f in feeds if f["title"] == feed.title]
        expected = sum(1 for e in processed_corpus.corpus.episodes if e.feed == feed.id)
        assert row["episodes"] == expected and row["done"] == expected
    table = run_cli("feeds", "list", "--data-dir", processed_corpus.data_dir)
    assert table.code == 0
    for feed in processed_corpus.corpus.feeds:
        assert feed.title in table.stdout


def test_episodes_list_shows_what_was_processed_newest_first(
    processed_corpus: ProcessedCorpus,
) -> None:
    corpus = processed_corpus.corpus
    episodes = listing(processed_corpus, "episodes", "list", "--limit", "1000")
    assert {e["episode_key"] for e in episodes} == set(processed_corpus.episode_keys.values())
    assert {e["status"] for e in episodes} == {"done"}
    published = [e["published_at"] for e in episodes]
    assert published == sorted(published, reverse=True)
    by_key = {e["episode_key"]: e for e in episodes}
    for labelled in corpus.episodes:
        row = by_key[processed_corpus.episode_keys[labelled.guid]]
        assert row["title"] == labelled.title
        feed_title = next(f.title for f in corpus.feeds if f.id == labelled.feed)
        assert row["feed_title"] == feed_title
    # the key it prints is the one `podmill show` takes
    first = episodes[0]["episode_key"]
    shown = run_cli("show", first, "--data-dir", processed_corpus.data_dir)
    assert shown.code == 0 and by_key[first]["title"] in shown.stdout


def test_episodes_list_filters_by_feed_status_and_limit(processed_corpus: ProcessedCorpus) -> None:
    corpus = processed_corpus.corpus
    feed = corpus.feeds[0]
    of_feed = listing(processed_corpus, "episodes", "list", "--feed", feed.title)
    assert of_feed and {e["feed_title"] for e in of_feed} == {feed.title}
    assert len(of_feed) == sum(1 for e in corpus.episodes if e.feed == feed.id)
    assert listing(processed_corpus, "episodes", "list", "--status", "failed") == []
    assert len(listing(processed_corpus, "episodes", "list", "--limit", "2")) == 2
    wrong = run_cli(
        "episodes", "list", "--status", "finished", "--data-dir", processed_corpus.data_dir
    )
    assert wrong.code != 0 and "new, pending, running, done" in wrong.error_line


def test_listings_on_an_empty_data_dir_say_what_to_run(tmp_path: Path) -> None:
    for words in (("feeds", "list"), ("episodes", "list")):
        result = run_cli(*words, "--data-dir", tmp_path / "nothing")
        assert result.code == 1
        assert "podmill run FEED_OR_FILE" in result.error_line, result.stderr
