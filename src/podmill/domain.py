"""Plain types shared by every layer: episodes, words, transcripts, topic nodes, and the
status vocabularies of jobs and steps.

Nothing here does I/O or imports a model library; stage functions take and return
these, and artifacts are their JSON form (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """A job's status (``jobs.status``): live while pending or running."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """A step's status (``steps.status``). ``waiting``: a predecessor is not done yet;
    ``pending``: ready to be claimed. A failed try goes back to ``pending`` (after its
    backoff) or to ``dead``; ``failed`` is kept for rows written by older versions."""

    WAITING = "waiting"
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


# A live job may still change; a terminal one will not, unless it is revived or retried.
JOB_LIVE = frozenset({JobStatus.PENDING, JobStatus.RUNNING})
JOB_TERMINAL = frozenset(JobStatus) - JOB_LIVE
STEP_LIVE = frozenset({StepStatus.WAITING, StepStatus.PENDING, StepStatus.RUNNING})
STEP_TERMINAL = frozenset(StepStatus) - STEP_LIVE


@dataclass(frozen=True)
class TranscriptLink:
    """A ``podcast:transcript`` tag: where a publisher's transcript lives and its format."""

    url: str
    mime_type: str
    language: str | None = None
    rel: str | None = None


@dataclass(frozen=True)
class Chapter:
    start: float
    title: str
    url: str | None = None


@dataclass(frozen=True)
class Person:
    name: str
    role: str | None = None
    group: str | None = None
    href: str | None = None
    img: str | None = None


@dataclass
class Episode:
    """One item to process: from a feed item, an audio URL or a local audio file."""

    episode_key: str
    title: str
    audio_url: str | None
    feed_key: str | None = None
    feed_title: str | None = None
    feed_url: str | None = None
    guid: str | None = None
    published: datetime | None = None
    mime_type: str | None = None
    enclosure_length: int | None = None
    duration: float | None = None  # seconds, as the feed states it (itunes:duration)
    description: str | None = None
    transcripts: list[TranscriptLink] = field(default_factory=list)
    chapters_url: str | None = None
    chapters: list[Chapter] = field(default_factory=list)
    persons: list[Person] = field(default_factory=list)
    # The feed's <language> (the item's own, else the channel's), as the feed wrote it:
    # the spoken language ASR is told (docs/models.md).
    language: str | None = None
    # file:// enclosures are only honoured for feeds that were themselves local files.
    allow_file_urls: bool = False
    # Why the item gave no audio URL (e.g. "its <enclosure> has no url attribute"), for
    # an episode kept for its podcast:transcript: said if no transcript is usable.
    enclosure_problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["published"] = self.published.isoformat() if self.published else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        data = dict(data)
        if data.get("published"):
            data["published"] = datetime.fromisoformat(data["published"])
        data["transcripts"] = [TranscriptLink(**t) for t in data.get("transcripts") or []]
        data["chapters"] = [Chapter(**c) for c in data.get("chapters") or []]
        data["persons"] = [Person(**p) for p in data.get("persons") or []]
        return cls(**data)


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    probability: float = 1.0
    speaker: str | None = None


@dataclass(frozen=True)
class SpeakerTurn:
    """A diarizer's finding: one speaker talks from ``start`` to ``end`` (seconds)."""

    start: float
    end: float
    speaker: str


@dataclass
class Segment:
    """A run of words as the recogniser (or the feed's cue) produced it."""

    start: float
    end: float
    text: str
    words: list[Word]
    speaker: str | None = None


@dataclass
class Transcript:
    language: str
    duration: float
    segments: list[Segment]
    source: str  # "asr:<model>" or "feed:<mime>"
    # Cues of a publisher's file whose timing line could not be read (so they are not in
    # ``segments``); 0 for recogniser output.
    unreadable_cues: int = 0

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def to_dict(self) -> dict[str, Any]:
        extra = {"unreadable_cues": self.unreadable_cues} if self.unreadable_cues else {}
        return {
            "language": self.language,
            "duration": self.duration,
            "source": self.source,
            **extra,
            "segments": [
                {
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "speaker": s.speaker,
                    "words": [asdict(w) for w in s.words],
                }
                for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            language=data["language"],
            duration=float(data["duration"]),
            source=data["source"],
            unreadable_cues=int(data.get("unreadable_cues") or 0),
            segments=[
                Segment(
                    start=float(s["start"]),
                    end=float(s["end"]),
                    text=s["text"],
                    speaker=s.get("speaker"),
                    words=[Word(**w) for w in s["words"]],
                )
                for s in data["segments"]
            ],
        )


@dataclass
class TopicNode:
    """A node of the topic tree: L0 episode, L1 topic or L2 sub-topic.

    ``word_start``/``word_end`` index the transcript's flat word list (end exclusive).
    """

    id: str
    level: int
    start: float
    end: float
    word_start: int
    word_end: int
    title: str = ""
    summary: str = ""
    key_points: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    children: list[TopicNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "word_start": self.word_start,
            "word_end": self.word_end,
            "title": self.title,
            "summary": self.summary,
            "key_points": list(self.key_points),
            "keywords": list(self.keywords),
            "children": [c.to_dict() for c in self.children],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TopicNode:
        return cls(
            id=data["id"],
            level=int(data["level"]),
            start=float(data["start"]),
            end=float(data["end"]),
            word_start=int(data["word_start"]),
            word_end=int(data["word_end"]),
            title=data.get("title", ""),
            summary=data.get("summary", ""),
            key_points=list(data.get("key_points") or []),
            keywords=list(data.get("keywords") or []),
            children=[cls.from_dict(c) for c in data.get("children") or []],
        )

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()
