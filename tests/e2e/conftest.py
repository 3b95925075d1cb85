"""Fixtures for end-to-end runs: demo audio, feeds served over HTTP, converted formats."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support.paths import DEMO


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The JFK clip in every format podmill must decode (made with ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is required for format tests (scripts/test installs it)")
    out = tmp_path_factory.mktemp("formats")
    source = DEMO / "jfk.flac"
    recipes = {
        "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
        "m4a": ["-c:a", "aac", "-b:a", "64k"],
        "opus": ["-c:a", "libopus", "-b:a", "32k"],
        "ogg": ["-c:a", "libvorbis", "-q:a", "3"],
        "wav": ["-c:a", "pcm_s16le", "-ar", "16000", "-ac", "1"],
    }
    files = {"flac": source}
    for ext, codec in recipes.items():
        target = out / f"jfk.{ext}"
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), *codec, str(target)],
            check=True,
        )
        files[ext] = target
    return files
