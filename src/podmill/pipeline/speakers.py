"""Speaker labels for a transcript, from a diarizer's speaker turns.

Pure functions, no model: the transcribe stage runs the diarizer
(:mod:`podmill.ml.diarize`) and hands its turns here.

- Each **word** takes the speaker whose turns overlap it longest; a word that falls in
  no turn (diarizers drop short pauses and breaths that ASR still times) takes the
  nearest turn.
- Each **segment** is split where the speaker changes, so that a subtitle cue never
  holds two voices; every resulting segment has one speaker, which is also the majority
  of its words.
- Labels are renumbered ``SPEAKER_1``, ``SPEAKER_2``, … in order of first appearance
  in the transcript, so the first voice heard is always ``SPEAKER_1``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from podmill.domain import Segment, SpeakerTurn, Transcript, Word


def assign_speakers(transcript: Transcript, turns: Sequence[SpeakerTurn]) -> Transcript:
    """A copy of ``transcript`` with a speaker on every word and segment.

    With no turns (the diarizer heard nobody) the transcript comes back unchanged.
    """
    if not turns:
        return transcript
    finder = _TurnFinder(turns)
    raw = [[finder.speaker_of(w) for w in s.words] for s in transcript.segments]
    names = _first_appearance_names(label for labels in raw for label in labels)
    segments: list[Segment] = []
    for segment, labels in zip(transcript.segments, raw):
        words = [replace(w, speaker=names[label]) for w, label in zip(segment.words, labels)]
        segments.extend(split_at_speaker_changes(segment, words))
    return Transcript(
        language=transcript.language,
        duration=transcript.duration,
        segments=segments,
        source=transcript.source,
    )


def split_at_speaker_changes(segment: Segment, words: list[Word]) -> list[Segment]:
    """``segment`` with ``words`` (speakers set), cut wherever the speaker changes."""
    if not words:
        return [replace(segment, words=[])]
    runs: list[list[Word]] = [[words[0]]]
    for word in words[1:]:
        if word.speaker == runs[-1][-1].speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) == 1:
        return [replace(segment, words=words, speaker=majority_speaker(words))]
    pieces = []
    for i, run in enumerate(runs):
        # The segment's own bounds hold at its edges; inside, pieces meet at word bounds.
        start = segment.start if i == 0 else run[0].start
        end = segment.end if i == len(runs) - 1 else run[-1].end
        text = " ".join(w.text.strip() for w in run)
        pieces.append(Segment(start, max(start, end), text, run, run[0].speaker))
    return pieces


def majority_speaker(words: Sequence[Word]) -> str | None:
    """The speaker of most of ``words``' speaking time (ties: the first to speak)."""
    time: Counter[str] = Counter()
    for word in words:
        if word.speaker is not None:
            time[word.speaker] += max(word.end - word.start, 1e-3)
    if not time:
        return None
    order = {w.speaker: i for i, w in reversed(list(enumerate(words)))}
    return max(time, key=lambda s: (time[s], -order[s]))


def speaker_shares(words: Sequence[Word]) -> list[tuple[str, float]]:
    """``(speaker, share of speaking time)`` for ``words``, the most talkative first."""
    time: Counter[str] = Counter()
    for word in words:
        if word.speaker is not None:
            time[word.speaker] += max(word.end - word.start, 1e-3)
    total = sum(time.values())
    return [(s, t / total) for s, t in sorted(time.items(), key=lambda kv: (-kv[1], kv[0]))]


def _first_appearance_names(labels) -> dict[str, str]:
    names: dict[str, str] = {}
    for label in labels:
        if label not in names:
            names[label] = f"SPEAKER_{len(names) + 1}"
    return names


class _TurnFinder:
    """Which turn a word belongs to, in O(log n) per word for turns that barely overlap."""

    def __init__(self, turns: Sequence[SpeakerTurn]) -> None:
        self.turns = sorted((t for t in turns if t.end > t.start), key=lambda t: t.start)
        if not self.turns:
            self.turns = sorted(turns, key=lambda t: t.start)
        self.starts = [t.start for t in self.turns]
        # max end of turns[0..i]: scanning back from a word can stop once this is behind it
        self.max_end: list[float] = []
        for turn in self.turns:
            self.max_end.append(max(turn.end, self.max_end[-1] if self.max_end else turn.end))

    def speaker_of(self, word: Word) -> str:
        after = bisect.bisect_left(self.starts, word.end)  # turns[after:] start after the word
        overlap: Counter[str] = Counter()
        j = after - 1
        while j >= 0 and self.max_end[j] > word.start:
            turn = self.turns[j]
            shared = min(turn.end, word.end) - max(turn.start, word.start)
            if shared > 0:
                overlap[turn.speaker] += shared
            j -= 1
        if overlap:
            return max(overlap, key=lambda s: overlap[s])
        return self._nearest(word, after)

    def _nearest(self, word: Word, after: int) -> str:
        candidates: list[tuple[float, int]] = []
        if after < len(self.turns):
            candidates.append((self.turns[after].start - word.end, after))
        if after > 0:
            before = self._last_ending(after)  # the closest turn on that side
            candidates.append((word.start - self.turns[before].end, before))
        return self.turns[min(candidates)[1]].speaker

    def _last_ending(self, after: int) -> int:
        """Index of the turn among ``turns[:after]`` that ends last."""
        target = self.max_end[after - 1]
        j = after - 1
        while self.turns[j].end != target:
            j -= 1
        return j
