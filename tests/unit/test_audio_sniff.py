"""Sniffing audio from its first bytes, describing what is not audio, probing durations.

Samples are generated with ffmpeg (2.5 s tones) once per session; the speech clips are
the ones that ship in ``podmill/demo``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from podmill.audio import SNIFF_BYTES, describe_non_audio, probe_duration, sniff_audio
from podmill.errors import AudioError, MissingExtraError

from support.paths import DEMO

TONE_SECONDS = 2.5

# file name → (ffmpeg output options, what sniff_audio must say)
SAMPLES = {
    "tone.wav": ([], "wav"),
    "tone.flac": ([], "flac"),
    "tone.mp3": (["-c:a", "libmp3lame"], "mp3"),
    "tone.ogg": (["-c:a", "libvorbis"], "ogg"),
    "tone.opus": (["-c:a", "libopus"], "opus"),
    "tone.m4a": (["-c:a", "aac"], "m4a"),
    "tone.aiff": ([], "aiff"),
    "tone.webm": (["-c:a", "libopus"], "webm"),
    "tone.mka": (["-c:a", "libvorbis"], "mka"),
    "tone.aac": (["-c:a", "aac", "-f", "adts"], "aac"),
}


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    folder = tmp_path_factory.mktemp("audio-samples")
    source = f"sine=frequency=440:duration={TONE_SECONDS}:sample_rate=44100"
    for name, (options, _) in SAMPLES.items():
        subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", source,
             *options, str(folder / name)],
            check=True,
        )  # fmt: skip
    return folder


def head_of(path: Path, size: int = SNIFF_BYTES) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sniff_names_the_format(samples: Path, name: str) -> None:
    assert sniff_audio(head_of(samples / name)) == SAMPLES[name][1]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_probe_duration_matches_the_encoded_length(samples: Path, name: str) -> None:
    assert probe_duration(samples / name) == pytest.approx(TONE_SECONDS, abs=0.1)


@pytest.mark.parametrize(
    ("name", "kind", "seconds"), [("jfk.flac", "flac", 11.0), ("sonnet001.mp3", "mp3", 53.27)]
)
def test_demo_speech_clips(name: str, kind: str, seconds: float) -> None:
    path = DEMO / name
    assert sniff_audio(head_of(path)) == kind
    assert probe_duration(path) == pytest.approx(seconds, abs=0.1)


def test_sniff_works_on_a_short_head(samples: Path) -> None:
    # Callers elsewhere sniff 4 KiB; an MPEG head that short has no room for two frames.
    for name, (_, kind) in SAMPLES.items():
        assert sniff_audio(head_of(samples / name, 4096)) == kind, name


def test_id3_tag_longer_than_the_head_still_means_mp3() -> None:
    # A tag of 1 MB (cover art) declared with a syncsafe size.
    size = 1_000_000
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    head = b"ID3\x04\x00\x00" + syncsafe + b"APIC" + bytes(SNIFF_BYTES)
    assert sniff_audio(head[:SNIFF_BYTES]) == "mp3"


def test_binary_that_merely_starts_like_an_mpeg_frame_is_not_audio(samples: Path) -> None:
    real = head_of(samples / "tone.mp3")
    start = real.index(b"\xff")  # the first frame header, after the ID3 tag
    fake = real[start : start + 4] + b"\x55" * 4000  # no second frame where one must be
    assert sniff_audio(fake) is None


@pytest.mark.parametrize(
    ("head", "description"),
    [
        (b"", "an empty file"),
        (b"<!DOCTYPE html><html><head><title>Oops</title>", "an HTML page"),
        (b"\n\n  <html lang=en><body>Access denied</body></html>", "an HTML page"),
        (b'{"error": "not found", "status": 404}', "a JSON document"),
        (b'[{"id": 1, "title": "cut off mid-wa', "a JSON document"),
        (b'<?xml version="1.0"?><rss version="2.0"><channel>', "an RSS/Atom feed (XML)"),
        (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "XML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "a PDF"),
        (b"PK\x03\x04\x14\x00\x00\x00", "a ZIP archive"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (b"Access denied\r\n", 'text ("Access denied")'),
        (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08", "unrecognised binary data (first bytes 0x0001"),
    ],
)
def test_describe_non_audio(head: bytes, description: str) -> None:
    assert sniff_audio(head) is None
    assert describe_non_audio(head).startswith(description)


def test_truncated_mp3_head_sniffs_as_mp3_but_does_not_probe(tmp_path: Path) -> None:
    # The first 600 bytes of sonnet001.mp3 are LAME's "Info" frame, which declares the
    # whole file's 2041 frames (53.3 s), plus two real frames. FFmpeg reports the
    # declared 53.3 s and decodes 0.03 s; sniffing rightly says "mp3" (it looks at the
    # head only) and probing rejects the file as truncated.
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(head_of(DEMO / "sonnet001.mp3", 600))
    assert sniff_audio(cut.read_bytes()) == "mp3"
    with pytest.raises(AudioError, match=r"cannot decode cut\.mp3: it is truncated .*53\.3 s"):
        probe_duration(cut)


def test_half_a_flac_is_truncated(tmp_path: Path) -> None:
    data = (DEMO / "jfk.flac").read_bytes()
    cut = tmp_path / "half.flac"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(AudioError, match="truncated"):
        probe_duration(cut)


def test_probe_rejects_a_web_page(tmp_path: Path) -> None:
    page = tmp_path / "episode.mp3"
    page.write_bytes(b"<!DOCTYPE html><html><body>Not found</body></html>")
    with pytest.raises(AudioError) as caught:
        probe_duration(page)
    message = str(caught.value)
    assert message.startswith("cannot decode episode.mp3: ")
    assert message.endswith("; the file is damaged or not audio")


def test_probe_rejects_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(AudioError, match=r"cannot decode empty\.wav"):
        probe_duration(empty)


def test_probe_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"audio file not found: .*nowhere\.mp3"):
        probe_duration(tmp_path / "nowhere.mp3")


def test_probe_without_pyav_names_the_extra(samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(MissingExtraError, match=r"podmill\[ml\]"):
        probe_duration(samples / "tone.wav")
