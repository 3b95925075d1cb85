"""``podmill run`` on the three corpus feeds: every episode processed, the publisher
transcripts used where they exist, speech recognised where they do not, and the
extractive topic tree finding the written topic changes (docs/corpus.md)."""

from __future__ import annotations

import pytest

from support.corpus import ProcessedCorpus
from support.wer import wer

pytestmark = pytest.mark.slow

BOUNDARY_TOLERANCE_S = 8.0  # about two sentences
REQUIRED_BOUNDARY_RECALL = 0.85


def test_every_episode_done(processed_corpus: ProcessedCorpus) -> None:
    done = processed_corpus
    print(f"\nprocessed {len(done.run_lines)} episodes in {done.seconds:.1f} s")
    for episode in processed_corpus.corpus.episodes:
        line = processed_corpus.run_lines[episode.guid]
        assert line["status"] == "done" and line["error"] is None, (episode.guid, line)
        source = processed_corpus.transcript(episode.guid)["source"]
        if episode.format == "audio":
            assert not source.startswith("feed:"), (episode.guid, source)
        else:
            assert source.startswith("feed:") and "estimated" not in source, (episode.guid, source)
        tree = processed_corpus.tree(episode.guid)
        assert tree["root"]["title"] == episode.title
        assert tree["root"]["end"] == pytest.approx(episode.duration, abs=1.0)


def test_speech_recognised_on_the_espeak_episodes(processed_corpus: ProcessedCorpus) -> None:
    for episode in (e for e in processed_corpus.corpus.episodes if e.format == "audio"):
        segments = processed_corpus.transcript(episode.guid)["segments"]
        hypothesis = " ".join(s["text"] for s in segments)
        reference = " ".join(t.text for t in episode.topics)
        # tiny.en on espeak-ng at 10 kbit/s Opus measures 0.09-0.13
        assert wer(reference, hypothesis) <= 0.25, (episode.guid, hypothesis[:300])


def test_topic_tree_finds_the_written_topic_changes(processed_corpus: ProcessedCorpus) -> None:
    """Most labelled topic changes have an L1 boundary within two sentences. The misses
    are listed: they are the segmenter's, measured here on known ground truth."""
    found, rows = 0, []
    total = 0
    for episode in processed_corpus.corpus.episodes:
        children = processed_corpus.tree(episode.guid)["root"]["children"]
        predicted = [c["start"] for c in children[1:]]
        for topic in episode.topics[1:]:
            total += 1
            nearest = min(predicted, key=lambda p: abs(p - topic.start), default=None)
            ok = nearest is not None and abs(nearest - topic.start) <= BOUNDARY_TOLERANCE_S
            found += ok
            if not ok:
                rows.append(
                    f"{episode.guid} topic {topic.index} at {topic.start:.1f} s: "
                    f"L1 boundaries {[round(p, 1) for p in predicted]}"
                )
    report = "\n".join(rows)
    print(f"\n{found}/{total} topic changes found within {BOUNDARY_TOLERANCE_S} s\n{report}")
    assert found >= REQUIRED_BOUNDARY_RECALL * total, f"{found}/{total}:\n{report}"
