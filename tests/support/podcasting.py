"""The Podcasting 2.0 document shapes, as their specs write them, checked test-side so
podmill's own code is not the judge of its output.

- JSON transcript:
  https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/examples/transcripts/transcripts.md
  ``version`` (string) and ``segments`` (array); each segment ``startTime`` (number),
  ``body`` (string), optional ``endTime`` (number) and ``speaker`` (string).
- JSON chapters 1.2:
  https://github.com/Podcastindex-org/podcast-namespace/blob/main/chapters/jsonChapters.md
  ``version`` (string) and ``chapters`` (array) required; optional ``author``, ``title``,
  ``podcastName``, ``description``, ``fileName`` (strings), ``waypoints`` (boolean); each
  chapter ``startTime`` (number) required; optional ``title``, ``img``, ``url`` (strings),
  ``toc`` (boolean), ``endTime`` (number), ``location`` (object with ``name``, ``geo``).
  Chapters are in ascending ``startTime``; served as ``application/json+chapters``.
- The ``podcast:transcript`` and ``podcast:chapters`` tags:
  https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md
  (``url`` and ``type`` required; ``language`` and ``rel`` optional on transcripts).
"""

from __future__ import annotations

from typing import Any

PODCAST_NS = "https://podcastindex.org/namespace/1.0"
_NUMBER = (int, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def check_json_transcript(document: Any) -> list[str]:
    """The ways ``document`` breaks the JSON transcript spec (empty: none)."""
    problems: list[str] = []
    if not isinstance(document, dict):
        return [f"not an object: {type(document).__name__}"]
    if not isinstance(document.get("version"), str):
        problems.append("version: a string is required")
    segments = document.get("segments")
    if not isinstance(segments, list):
        return [*problems, "segments: an array is required"]
    for i, segment in enumerate(segments):
        if not isinstance(segment, dict):
            problems.append(f"segments[{i}]: not an object")
            continue
        if not _is_number(segment.get("startTime")):
            problems.append(f"segments[{i}].startTime: a number is required")
        if not isinstance(segment.get("body"), str):
            problems.append(f"segments[{i}].body: a string is required")
        if "endTime" in segment and not _is_number(segment["endTime"]):
            problems.append(f"segments[{i}].endTime: must be a number")
        if "speaker" in segment and not isinstance(segment["speaker"], str):
            problems.append(f"segments[{i}].speaker: must be a string")
    return problems


_CHAPTERS_STRINGS = ("author", "title", "podcastName", "description", "fileName")
_CHAPTER_STRINGS = ("title", "img", "url")


def check_chapters(document: Any) -> list[str]:
    """The ways ``document`` breaks the JSON chapters 1.2 spec (empty: none)."""
    problems: list[str] = []
    if not isinstance(document, dict):
        return [f"not an object: {type(document).__name__}"]
    if not isinstance(document.get("version"), str):
        problems.append("version: a string is required")
    for key in _CHAPTERS_STRINGS:
        if key in document and not isinstance(document[key], str):
            problems.append(f"{key}: must be a string")
    if "waypoints" in document and not isinstance(document["waypoints"], bool):
        problems.append("waypoints: must be a boolean")
    chapters = document.get("chapters")
    if not isinstance(chapters, list):
        return [*problems, "chapters: an array is required"]
    starts = []
    for i, chapter in enumerate(chapters):
        if not isinstance(chapter, dict):
            problems.append(f"chapters[{i}]: not an object")
            continue
        if not _is_number(chapter.get("startTime")):
            problems.append(f"chapters[{i}].startTime: a number is required")
        else:
            starts.append(chapter["startTime"])
        for key in _CHAPTER_STRINGS:
            if key in chapter and not isinstance(chapter[key], str):
                problems.append(f"chapters[{i}].{key}: must be a string")
        if "toc" in chapter and not isinstance(chapter["toc"], bool):
            problems.append(f"chapters[{i}].toc: must be a boolean")
        if "endTime" in chapter and not _is_number(chapter["endTime"]):
            problems.append(f"chapters[{i}].endTime: must be a number")
        location = chapter.get("location")
        if location is not None and not (
            isinstance(location, dict)
            and isinstance(location.get("name"), str)
            and isinstance(location.get("geo"), str)
        ):
            problems.append(f"chapters[{i}].location: an object with name and geo strings")
    if starts != sorted(starts):
        problems.append(f"chapters are not in ascending startTime: {starts}")
    return problems
