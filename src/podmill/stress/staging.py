"""One distinct copy of the audio per job, so deduplication cannot collapse the workload.

The API keys an upload by the SHA-256 of its bytes (docs/api.md, "process once, serve
many"): twelve uploads of one file would be one job. Each copy is the same audio
stream, remuxed by ffmpeg without re-encoding (``-c copy``) with a different
``comment`` tag naming the run and the job, so the bytes (and the episode key) differ
while every job transcribes exactly the same speech.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from podmill.errors import PodmillError


@dataclass(frozen=True)
class StagedAudio:
    path: Path
    sha256: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_audio(audio: Path) -> Path:
    """``audio`` as a readable file, or a one-line error saying what to pass."""
    if not audio.is_file():
        raise PodmillError(
            f"audio file {audio} does not exist: pass --audio FILE (a short speech clip, "
            "e.g. the bundled podmill/demo/jfk.flac)"
        )
    if shutil.which("ffmpeg") is None:
        raise PodmillError(
            "ffmpeg is not on PATH: the stress harness needs it to make a distinct copy "
            "of the audio per job (apt-get install ffmpeg)"
        )
    return audio


def stage_copies(audio: Path, count: int, folder: Path, tag: str) -> list[StagedAudio]:
    """``count`` copies of ``audio`` in ``folder`` whose bytes all differ (and differ from
    every other run's: ``tag`` carries the run id). Raises if the container drops the
    tag, so a collapsed workload is caught before anything is submitted."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = audio.suffix or ".audio"
    staged: list[StagedAudio] = []
    for index in range(count):
        target = folder / f"{audio.stem}-{tag}-{index:04d}{suffix}"
        result = subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(audio),
                "-map",
                "0:a",
                "-c",
                "copy",
                "-metadata",
                f"comment=podmill-stress {tag} job {index}",
                str(target),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise PodmillError(
                f"ffmpeg could not copy {audio} for job {index}: "
                f"{result.stderr.strip().splitlines()[-1:] or ['no detail']}"
            )
        staged.append(StagedAudio(target, sha256_file(target)))
    if len({s.sha256 for s in staged}) != count:
        raise PodmillError(
            f"ffmpeg made identical copies of {audio} (its container keeps no comment "
            "tag): convert it to flac, mp3 or ogg and pass that as --audio"
        )
    return staged
