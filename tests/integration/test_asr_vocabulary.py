"""Real Whisper tiny.en with the vocabulary prompt: the feed's names reach faster-whisper
as the mode says, and a prompt does not break transcription or leak into the text.

The clip (tests/fixtures/audio/names_vocabulary.ogg, espeak-ng, CC0) says "Welcome to
Red Planet Dispatch. My guest today is Bartholomew Quist, a geologist who studies
Jezero Crater." Its prompt also names a person who is never spoken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podmill.domain import Episode, Person
from podmill.ml import asr
from podmill.ml.vocabulary import episode_vocabulary
from podmill.pipeline.context import StageContext
from podmill.pipeline.stages import run_stage
from podmill.settings import AsrSettings, Settings
from podmill.storage.artifacts import Artifact, ArtifactStore

from support.paths import FIXTURES
from support.wer import normalise

pytestmark = pytest.mark.slow

CLIP = FIXTURES / "audio" / "names_vocabulary.ogg"
UNSPOKEN = "Zanzibar Featherstonehaugh"
EPISODE = Episode(
    episode_key="vocab",
    title="Jezero Crater and the rocks of Mars",
    audio_url=None,
    feed_title="Red Planet Dispatch",
    language="en",
    persons=[Person(name=UNSPOKEN, role="host"), Person(name="Bartholomew Quist", role="guest")],
)
# words a broken decode (a prompt echoed, a window skipped) would lose; not the names
COMMON = {"welcome", "to", "my", "guest", "today", "is", "geologist", "who", "studies"}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``WhisperModel.transcribe`` call's keywords; the real model still runs."""
    import faster_whisper

    seen: list[dict[str, Any]] = []
    real = faster_whisper.WhisperModel.transcribe

    def recording(self: Any, audio: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(self, audio, *args, **kwargs)

    monkeypatch.setattr(faster_whisper.WhisperModel, "transcribe", recording)
    return seen


@pytest.mark.parametrize("mode", ["off", "initial", "hotwords"])
def test_the_prompt_reaches_whisper_and_transcription_stays_whole(
    mode: str, calls: list[dict[str, Any]]
) -> None:
    prompt = episode_vocabulary(EPISODE)
    assert UNSPOKEN in prompt and "Bartholomew Quist" in prompt

    transcript = asr.transcribe(CLIP, AsrSettings(vocabulary_prompt=mode), vocabulary=prompt)

    (kwargs,) = calls
    sent = {k: kwargs.get(k) for k in ("initial_prompt", "hotwords")}
    expected = {
        "off": {"initial_prompt": None, "hotwords": None},
        "initial": {"initial_prompt": prompt, "hotwords": None},
        "hotwords": {"initial_prompt": None, "hotwords": prompt},
    }[mode]
    assert sent == expected
    words = normalise(transcript.text)
    assert set(words) >= COMMON, transcript.text
    # the prompt is context, not text: a name it carries that nobody says never appears
    assert "zanzibar" not in words and "featherstonehaugh" not in words, transcript.text
    assert transcript.words and all(
        0 <= w.start <= w.end <= transcript.duration + 0.05 for w in transcript.words
    )
    assert transcript.source == f"asr:{asr.model_identity('tiny.en')}"


def test_the_transcribe_stage_sends_the_episodes_names(
    tmp_path: Path, calls: list[dict[str, Any]]
) -> None:
    settings = Settings(data_dir=tmp_path, asr={"vocabulary_prompt": "hotwords"})
    ctx = StageContext(settings, EPISODE, "v" * 16, ArtifactStore(tmp_path))
    media = tmp_path / "media"
    media.mkdir()
    (media / CLIP.name).write_bytes(CLIP.read_bytes())
    ctx.write_json(Artifact.SOURCE, {"kind": "audio", "path": f"media/{CLIP.name}"})

    assert run_stage("transcribe", ctx)

    prompt = episode_vocabulary(EPISODE)
    assert [c.get("hotwords") for c in calls] == [prompt]
    assert ctx.notes == [f"vocabulary prompt (hotwords): {prompt!r}"]
    text = " ".join(s["text"] for s in ctx.read_json(Artifact.TRANSCRIPT_JSON)["segments"])
    assert set(normalise(text)) >= COMMON, text
