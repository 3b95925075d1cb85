"""Titles and leads: the ``keyphrases`` titler and old summaries against the ``phrases``
titler and whole-sentence summaries (issue 22, items 2 and 3).

The nodes are labelled topics, so the benchmark measures titles and leads, not the
segmenter:

- **corpus**: the 69 labelled topics of ``tests/fixtures/corpus`` (21 episodes; the 18
  publisher transcripts parsed as the fetch stage does, cue by cue, so their sentences
  cross cue boundaries; the 3 audio episodes from their label text);
- **paragraphs**: the 16 single-subject paragraphs of ``bench/data/topics`` as the
  topics of one episode;
- **demo**: the 3 topics of ``podmill/demo/three-topics.json``;
- **speech** (unlabelled, topics from the segmenter): a real Buzzsprout episode's
  publisher SRT (``tests/fixtures/transcripts``, fillers and sentences cut across
  speakers), and, when the shared corpus is present, LibriVox's Sonnet 1 timed line by
  line (its syncmap): one long sentence of verse, cut into 40-word units by the
  sentence splitter, as Whisper's transcript of the demo's sonnet is.

Per node, with the real embedder (MiniLM) and the real spaCy model:

- share of titles of the form "A and B";
- share of titles with a finite verb (spaCy's Penn tags VBD/VBP/VBZ/MD on the title
  in lower case, so both titlers' titles are tagged alike);
- share of digest leads (``podmill.digest.build._lead`` of the node's summary) that
  start mid-sentence (the summary's first unit does not start a sentence) or open
  with a filler ("So,", "Yeah,", "Um");
- seconds per node for each titler.

"before" is the ``keyphrases`` titler with the summaries podmill made before (the most
central units, whole or not, as spoken); "after" is ``phrases`` with today's summaries.

    PYTHONPATH=src python bench/phrases.py [--out FILE]

Needs the ``ml`` and ``phrases`` extras. docs/quality.md ("Titles and leads") has the
numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from podmill.digest.build import _lead
from podmill.domain import Segment, Transcript, Word
from podmill.feeds.transcripts import parse_transcript
from podmill.ml import phrases
from podmill.ml.embed import get_embedder
from podmill.pipeline import topics
from podmill.sentences import Sentence, at_boundary, dehedge, split_sentences
from podmill.settings import TopicSettings

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "corpus"
PARAGRAPHS = ROOT / "bench" / "data" / "topics"
DEMO = ROOT / "src" / "podmill" / "demo" / "three-topics.json"
BUZZSPROUT = (
    ROOT / "tests" / "fixtures" / "transcripts" / "podcast-namespace__buzzsprout-10-things.srt"
)
SONNET = Path("/work/shared/corpus/audio/sonnet001.syncmap.json")


@dataclass
class Episode:
    name: str
    sentences: list[Sentence]
    spans: list[topics.Span]


def _timed(texts: Sequence[Sequence[str]]) -> tuple[list[Sentence], list[topics.Span]]:
    """Sentences of topics given as text, timed at 2.6 words/s, one segment each."""
    segments, bounds, t = [], [], 0.0
    for sentences in texts:
        first = len(segments)
        for sentence in sentences:
            words = []
            for token in sentence.split():
                words.append(Word(token, t, t + 0.35))
                t += 1 / 2.6
            segments.append(Segment(words[0].start, words[-1].end, sentence, words))
            t += 0.5
        bounds.append((first, len(segments)))
    transcript = Transcript("en", t, segments, "bench")
    sentences = split_sentences(transcript)
    return sentences, _spans_by_time(sentences, [segments[a].start for a, _ in bounds])


def _spans_by_time(sentences: list[Sentence], starts: list[float]) -> list[topics.Span]:
    firsts = [next(i for i, s in enumerate(sentences) if s.start >= b - 1e-6) for b in starts]
    edges = [*firsts, len(sentences)]
    return [topics.Span(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def corpus_episodes() -> list[Episode]:
    labels = json.loads((CORPUS / "labels.json").read_text())
    out = []
    for ep in labels["episodes"]:
        media = CORPUS / ep["media"]
        if ep["format"] == "audio" or not media.is_file():
            sentences, spans = _timed([_split(t["text"]) for t in ep["topics"]])
        else:
            transcript = parse_transcript(media.read_bytes(), ep["mime_type"], url=str(media))
            sentences = split_sentences(transcript)
            spans = _spans_by_time(sentences, [t["speech_start"] for t in ep["topics"]])
        out.append(Episode(f"corpus/{ep['guid']}", sentences, spans))
    return out


def paragraph_episode() -> Episode:
    files = sorted(p for p in PARAGRAPHS.glob("*.txt"))
    sentences, spans = _timed(
        [[ln for ln in p.read_text().splitlines() if ln.strip()] for p in files]
    )
    return Episode("paragraphs", sentences, spans)


def demo_episode() -> Episode:
    data = json.loads(DEMO.read_text())
    sentences, spans = _timed([_split(t["text"]) for t in data["topics"]])
    return Episode("demo/three-topics", sentences, spans)


def speech_episodes(embed) -> list[Episode]:
    transcripts = [
        ("speech/buzzsprout", parse_transcript(BUZZSPROUT.read_bytes(), "application/srt"))
    ]
    if SONNET.is_file():
        segments = []
        for fragment in json.loads(SONNET.read_text())["fragments"]:
            text = " ".join(fragment["lines"]).strip()
            begin, end = float(fragment["begin"]), float(fragment["end"])
            tokens = text.split()
            if not tokens or text.isdigit():
                continue
            step = (end - begin) / len(tokens)
            words = [
                Word(t, begin + i * step, begin + (i + 1) * step) for i, t in enumerate(tokens)
            ]
            segments.append(Segment(begin, end, text, words))
        transcripts.append(
            ("speech/sonnet001", Transcript("en", segments[-1].end, segments, "bench"))
        )
    out = []
    for name, transcript in transcripts:
        sentences = split_sentences(transcript)
        vectors = embed([s.text for s in sentences])
        windows = embed(topics.window_texts(sentences, TopicSettings().window_sentences))
        spans = topics.segment_l1(sentences, windows, vectors, transcript.duration, TopicSettings())
        out.append(Episode(name, sentences, spans))
    return out


def _split(text: str) -> list[str]:
    import re

    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def legacy_summary(sentences: list[Sentence], vectors: np.ndarray, span: topics.Span) -> str:
    """The summary podmill made before issue 22: the most central units, as spoken."""
    part = vectors[span.first : span.last]
    central = part @ topics.centroid(part)
    count = max(1, min(TopicSettings().summary_sentences, math.ceil(len(part) / 3)))
    picks = sorted(sorted(range(len(part)), key=lambda i: (-central[i], i))[:count])
    return " ".join(sentences[span.first + i].text for i in picks)


def lead_problem(lead: str, sentences: list[Sentence], span: topics.Span) -> str | None:
    """``mid-sentence``, ``filler`` or None for a lead of a node of ``span``."""
    for k in range(span.first, span.last):
        text = sentences[k].text
        if lead.startswith(text[:40]) or lead.startswith(dehedge(text)[:40]):
            if not at_boundary(sentences, k):
                return "mid-sentence"
            return "filler" if dehedge(lead) != lead else None
    return "mid-sentence"  # the lead is not the start of any unit


def _counts(rows: list[dict[str, object]]) -> str:
    from collections import Counter

    kinds = Counter(str(r["episode"]).split("/")[0] for r in rows)
    return ", ".join(f"{kind} {count}" for kind, count in kinds.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    parser.add_argument("--show", action="store_true", help="print every node's titles")
    args = parser.parse_args(argv)
    phrases.check_installed()
    embed = get_embedder().embed
    tagger = phrases.get_model()
    episodes = [*corpus_episodes(), paragraph_episode(), demo_episode(), *speech_episodes(embed)]
    rows: dict[str, list[dict[str, object]]] = {"before": [], "after": []}
    seconds = {"before": 0.0, "after": 0.0}
    titler = {"before": "keyphrases", "after": "phrases"}
    for ep in episodes:
        vectors = embed([s.text for s in ep.sentences])
        background = topics.centroid(vectors)
        for span in ep.spans:
            for side in ("before", "after"):
                settings = TopicSettings(titles=titler[side])
                started = time.perf_counter()
                node = topics.summarise(
                    ep.sentences, vectors, span, embed, settings, background=background
                )
                seconds[side] += time.perf_counter() - started
                summary = (
                    node.summary if side == "after" else legacy_summary(ep.sentences, vectors, span)
                )
                lead = _lead(summary)
                tags = tagger.tags(node.title.lower())
                rows[side].append(
                    {
                        "episode": ep.name,
                        "title": node.title,
                        "joined": " and " in node.title,
                        "verb": any(tag in phrases.FINITE_VERB_TAGS for _, _, tag in tags),
                        "lead": lead,
                        "lead_problem": lead_problem(lead, ep.sentences, span),
                    }
                )
    n = len(rows["after"])
    lines = [
        f"{n} topics ({len(episodes)} episodes: {_counts(rows['after'])})",
        "",
        "| | before (keyphrases) | after (phrases) |",
        "|---|---|---|",
    ]

    def share(side: str, test) -> str:
        hits = sum(1 for r in rows[side] if test(r))
        return f"{hits / n:.1%} ({hits})"

    for label, test in (
        ('"A and B" titles', lambda r: r["joined"]),
        ("titles with a finite verb", lambda r: r["verb"]),
        ("leads starting mid-sentence", lambda r: r["lead_problem"] == "mid-sentence"),
        ("leads opening with a filler", lambda r: r["lead_problem"] == "filler"),
    ):
        lines.append(f"| {label} | {share('before', test)} | {share('after', test)} |")
    lines.append(
        f"| ms per node (summarise) | {1000 * seconds['before'] / n:.0f} | "
        f"{1000 * seconds['after'] / n:.0f} |"
    )
    if args.show:
        lines += ["", "| episode | before | after |", "|---|---|---|"]
        for b, a in zip(rows["before"], rows["after"]):
            lines.append(f"| {a['episode']} | {b['title']} | {a['title']} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
